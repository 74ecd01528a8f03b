//! Fork: new sessions from the live state of one, taken once under its lock (so never
//! mid-call) and written into each copy. The source goes on unaffected.

use super::verbs::internal;
use super::*;
use crate::engine::snapshot::Keep;

impl Sandbox {
    /// Refuses a fork of `count` copies beyond the server's `snapshots.max_fork` (4000) or
    /// the tenant's `quotas.max_fork` (7009).
    pub fn check_fork_count(&self, tenant: &str, count: usize) -> std::result::Result<(), Refusal> {
        let server = self.inner.config.server.snapshots.max_fork as usize;
        let quota = self.inner.tenancy.max_fork(tenant).map(|q| q as usize);
        if count == 0 || count > server {
            return Err(Refusal::new(
                codes::INVALID_INPUT,
                format!("a fork makes 1 to {server} copies (server.snapshots.max_fork); {count} asked"),
                json!({"max_fork": server}),
            ));
        }
        if let Some(quota) = quota.filter(|q| count > *q) {
            return Err(Refusal::new(
                codes::QUOTA_EXCEEDED,
                format!("tenant '{tenant}' may make {quota} copies per fork (its max_fork quota); {count} asked"),
                json!({"max_fork": quota}),
            ));
        }
        Ok(())
    }

    /// Makes `count` new sessions from the live state of the caller's session of `rt`, one
    /// per worker in `workers` (new worker ids `<worker>-fork-<8 hex>` where it has none);
    /// returns each copy's worker and session. All or nothing: when one copy cannot be made,
    /// those made are ended and the refusal is returned. A sandbox's context (a session
    /// mounting the sandbox's files) is forked with its sandbox, not alone.
    pub async fn fork_session(
        &self,
        caller: &Caller,
        rt: &str,
        count: usize,
        workers: Vec<String>,
    ) -> std::result::Result<Vec<(String, SessionInfo)>, Refusal> {
        let count = count.max(workers.len());
        let session = self.session_of(caller, rt)?;
        if session.mount.is_some() {
            return Err(Refusal::new(
                codes::SNAPSHOT_REFUSED,
                "this session is a sandbox's code context and shares its files: fork the sandbox (E2B's fork) instead",
                json!({"session_id": session.id}),
            ));
        }
        let targets: Vec<(Caller, Extras)> = (0..count)
            .map(|k| {
                let worker = workers.get(k).cloned().unwrap_or_else(|| {
                    format!("{}-fork-{}", caller.worker_id, &uuid::Uuid::new_v4().simple().to_string()[..8])
                });
                let extras = Extras { pause_on_timeout: session.pause_on_timeout, ..Extras::default() };
                (Caller { tenant: caller.tenant.clone(), worker_id: worker }, extras)
            })
            .collect();
        let made = self.fork_session_into(caller, rt, targets.clone()).await?;
        let mut copies = Vec::with_capacity(made.len());
        let mut failed = None;
        for ((target, _), result) in targets.into_iter().zip(made) {
            match result {
                Ok(info) => copies.push((target, info)),
                Err(refusal) => failed = failed.or(Some(refusal)),
            }
        }
        if let Some(refusal) = failed {
            for (target, _) in &copies {
                self.retire(target).await;
            }
            return Err(refusal);
        }
        Ok(copies.into_iter().map(|(target, info)| (target.worker_id, info)).collect())
    }

    /// Makes one new session per target (its worker and its extras: TTL, mount) from the
    /// live state of the caller's session of `rt`; each copy succeeds or fails on its own.
    /// Refuses as a whole when the source cannot be captured or the count is out of range.
    pub async fn fork_session_into(
        &self,
        caller: &Caller,
        rt: &str,
        targets: Vec<(Caller, Extras)>,
    ) -> std::result::Result<Vec<std::result::Result<SessionInfo, Refusal>>, Refusal> {
        self.snapshots_on()?;
        self.check_fork_count(&caller.tenant, targets.len())?;
        let session = self.session_of(caller, rt)?;
        let backend = self.backend_for(rt)?.clone();
        let this = self.clone();
        let work = async move {
            // One copy takes the captured pages as they are; several share them.
            let keep = if targets.len() == 1 { Keep::Move } else { Keep::Share };
            // One copy is registered first and its instance made on another thread while the
            // source is captured: the two do not depend on each other.
            let early = match &targets[..] {
                [(target, extras)] => {
                    match this.register_new(target, &session.resource_type, &session.info().config, extras) {
                        Ok(fresh) => {
                            let (this, backend, copy) = (this.clone(), backend.clone(), fresh.session.clone());
                            let blank = tokio::spawn(async move { this.blank_for(&backend, &copy).await });
                            Some((fresh, blank))
                        }
                        Err(refusal) => return Ok(vec![Err(refusal)]),
                    }
                }
                _ => None,
            };
            let taken = {
                let _busy = session.begin_call();
                let mut slot = session.instance.lock().await;
                match this.resume_locked(&session, &mut slot).await {
                    Ok(()) => this.capture_locked(&session, &mut slot, keep).await,
                    Err(refusal) => Err(refusal),
                }
            };
            let info = session.info();
            let (captured, files) = match taken {
                Ok(taken) => taken,
                Err(refusal) => {
                    if let Some((fresh, blank)) = early {
                        blank.abort();
                        this.abandon(&fresh.session);
                    }
                    return Err(refusal);
                }
            };
            let made = match early {
                Some((fresh, blank)) => {
                    let blank = match blank.await {
                        Ok(Ok(blank)) => Some(blank),
                        Ok(Err(refusal)) => {
                            this.abandon(&fresh.session);
                            return Ok(vec![Err(refusal)]);
                        }
                        // The task panicked (or was cancelled): the restore makes its own.
                        Err(_) => None,
                    };
                    let copy = this.fill(&backend, fresh, &info.data, &captured, &files, blank).await;
                    vec![copy.map(|s| s.info())]
                }
                None => {
                    let mut made = Vec::with_capacity(targets.len());
                    for (target, extras) in targets {
                        let copy = this
                            .restore_into_new(
                                &target,
                                &session.resource_type,
                                &info.config,
                                &info.data,
                                &captured,
                                &files,
                                extras,
                            )
                            .await;
                        made.push(copy.map(|s| s.info()));
                    }
                    made
                }
            };
            tracing::info!(copies = made.iter().filter(|m| m.is_ok()).count(), "session forked");
            Ok(made)
        };
        detached(work, internal).await
    }
}
