//! Durable sandboxes: every sandbox is a record in the snapshot store beside its contexts'
//! sessions ([`KeptSandbox`]), written when it is made, paused, resumed or renewed, and at a
//! graceful stop, so that it outlives a restart of its server with its id, token, metadata,
//! environment, contexts, files and the time it had left:
//!
//! - a graceful stop copies each sandbox's files into the store and leaves its contexts'
//!   sessions to be kept like every session (shutdown records); the next start brings the
//!   sandbox back, live or paused as it was, each context restored on its first use;
//! - a pause copies the files too, and its contexts' sessions are pause records, so a paused
//!   sandbox survives a crash as well; a live one comes back after a crash from its
//!   contexts' last checkpoints (`checkpoint_interval_s`), with the files directory this
//!   node still has (or the store's copy, on another node);
//! - ending a sandbox (kill, timeout) deletes its record and copy.
//!
//! With checkpoints (`checkpoint_interval_s`), each live sandbox a request reached since the
//! last round gets its files copied into the store too, so that another node taking it over
//! after a crash finds them as of then.
//!
//! On only with `server.snapshots.keep_on_shutdown` (the default), as sessions are kept.

use super::context::{Context, Language, worker_in};
use super::{Files, Inner, Sandboxes, Sbx, token_key};
use crate::sandbox::snapstore::{Attributes, KeptContext, KeptSandbox, Owned, Record};
use crate::sandbox::{BroughtBack, Caller};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn parse(at: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(at).ok().map(|t| t.with_timezone(&Utc))
}

impl Sandboxes {
    /// Whether sandboxes are kept in the store (`server.snapshots.keep_on_shutdown`).
    pub fn durable(&self) -> bool {
        let s = &self.sandbox.config().server.snapshots;
        s.enabled && s.keep_on_shutdown
    }

    /// The record of `sbx` as it is now, but for its files' metadata.
    fn kept_of(&self, sbx: &Sbx, stopped: bool) -> KeptSandbox {
        KeptSandbox {
            id: sbx.id.clone(),
            tenant: sbx.tenant.to_string(),
            template: sbx.template.clone(),
            token: sbx.token.clone(),
            metadata: sbx.metadata.clone(),
            env: sbx.env.clone(),
            home: sbx.files.home.clone(),
            packages: sbx.packages().clone(),
            started_at: rfc3339(sbx.started_at),
            end_at: rfc3339(sbx.end_at()),
            stopped_at: stopped.then(|| rfc3339(Utc::now())),
            paused: sbx.paused(),
            node: self.sandbox.node().map(str::to_string),
            files_stored: sbx.files_stored.load(Ordering::Acquire),
            contexts: sbx
                .contexts()
                .iter()
                .map(|c| KeptContext {
                    id: c.id.clone(),
                    language: c.language.name().to_string(),
                    cwd: c.cwd.clone(),
                    default: c.default,
                })
                .collect(),
        }
    }

    /// Writes `sbx`'s record as it is now (with `files`, a copy of its files first; with
    /// `stopped`, marked kept by a graceful stop); one write at a time per sandbox, none once
    /// it ended. Whether it was written: a failure is logged, and the sandbox goes on
    /// without the guarantee.
    pub(super) async fn remember(&self, sbx: &Sbx, files: bool, stopped: bool) -> bool {
        if !self.durable() {
            return true;
        }
        let _one = sbx.kept.lock().await;
        if sbx.ended() {
            return false;
        }
        if files {
            sbx.files_stored.store(true, Ordering::Release);
        }
        let record = self.kept_of(sbx, stopped);
        let mut attributes = Attributes::new();
        if files {
            // Their metadata, from a walk of the disk: off the async threads.
            let tree = sbx.files.clone();
            attributes = tokio::task::spawn_blocking(move || {
                let all = tree.list(&tree.home, u32::MAX).unwrap_or_default();
                all.into_iter().filter(|e| !e.metadata.is_empty()).map(|e| (e.path, e.metadata)).collect()
            })
            .await
            .unwrap_or_default();
        }
        let store = self.sandbox.snapshot_store();
        match store.put_kept(&record, files.then_some((sbx.files.host.as_path(), &attributes))).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(tenant = %sbx.tenant, sandbox_id = %sbx.id, error = %e, "cannot keep the sandbox's record in the snapshot store");
                false
            }
        }
    }

    /// [`Sandboxes::remember`] in the background, for callers that cannot wait (a renewal).
    pub(super) fn remember_later(&self, sbx: &Arc<Sbx>) {
        if self.durable() {
            let (this, sbx) = (self.clone(), sbx.clone());
            tokio::spawn(async move { this.remember(&sbx, false, false).await });
        }
    }

    /// Deletes an ended sandbox's record and copy.
    pub(super) async fn forget(&self, sbx: &Sbx) {
        if !self.durable() {
            return;
        }
        let _one = sbx.kept.lock().await;
        let store = self.sandbox.snapshot_store();
        if let Err(e) = store.delete_kept(&sbx.tenant, &sbx.id).await {
            tracing::warn!(tenant = %sbx.tenant, sandbox_id = %sbx.id, error = %e, "cannot delete the ended sandbox's record");
        }
        if self.clustered()
            && let Err(e) = store.disown(Owned::Sandbox(&sbx.id)).await
        {
            tracing::warn!(sandbox_id = %sbx.id, error = %e, "cannot delete the ended sandbox's owner");
        }
        if self.clustered() {
            let _ = store.drop_token(&super::cluster::token_hash(&sbx.token)).await;
        }
    }
}

impl Sandboxes {
    /// At a graceful stop: keeps every sandbox (its processes end, its files are copied into
    /// the store, its record is marked stopped) without ending its contexts, whose sessions
    /// are then kept with every session. A sandbox that cannot be kept is ended, and logged
    /// with its id. Returns (the ids kept, how many ended). In a cluster, the caller releases
    /// the kept ones ([`Sandboxes::leave`]) once their contexts' sessions are kept too: a
    /// node that took one over earlier would restore an older checkpoint.
    pub async fn keep_all(&self) -> (Vec<String>, usize) {
        let all: Vec<Arc<Sbx>> = self.boxes().values().cloned().collect();
        let (mut kept, mut ended) = (Vec::new(), 0);
        for sbx in &all {
            sbx.kill_processes();
            if self.remember(sbx, true, true).await {
                // Let go of it here: the store holds it now (this node's copy of its files
                // goes; the next start fetches the store's).
                sbx.ended.store(true, Ordering::Release);
                self.boxes().remove(&sbx.id);
                self.by_token().remove(&token_key(&sbx.token));
                let dir = sbx.files.host.clone();
                let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
                kept.push(sbx.id.clone());
            } else {
                tracing::warn!(tenant = %sbx.tenant, sandbox_id = %sbx.id, "sandbox not kept over the restart: ended");
                self.end(sbx).await;
                ended += 1;
            }
        }
        if !kept.is_empty() {
            tracing::info!(sandboxes = kept.len(), "sandboxes kept for the next start");
        }
        (kept, ended)
    }

    /// At start: brings back every sandbox the store keeps for this node (or for any node),
    /// live or paused as it was, with its id, token, metadata, environment, files and the
    /// time it had left; each context's session comes back paused and is restored on first
    /// use. Returns how many came back.
    pub async fn bring_back(&self) -> usize {
        if !self.durable() {
            return 0;
        }
        let store = self.sandbox.snapshot_store().clone();
        let ours = self.sandbox.node().map(str::to_string);
        let mut count = 0;
        for tenant in store.tenants().await {
            let kept = store.kept(&tenant).await;
            if kept.is_empty() {
                continue;
            }
            let sessions = self.sandbox.kept_records(&tenant).await;
            for record in kept {
                if record.node.is_some() && record.node != ours {
                    continue;
                }
                // In a cluster, only what the store says is still this node's: the others
                // may have taken the rest, and released ones are taken on their first use.
                if self.clustered() {
                    let owner = store.owner_of(Owned::Sandbox(&record.id)).await.ok().flatten();
                    if owner.is_none_or(|o| Some(&o.node) != ours.as_ref()) {
                        continue;
                    }
                }
                let id = record.id.clone();
                match self.bring_back_one(record, &sessions).await {
                    Ok(()) => count += 1,
                    Err(why) => {
                        tracing::warn!(tenant = %tenant, sandbox_id = %id, reason = %why, "a kept sandbox is not back")
                    }
                }
            }
        }
        if count > 0 {
            tracing::info!(sandboxes = count, "sandboxes kept by the previous run are back");
        }
        count
    }

    pub(super) async fn bring_back_one(&self, kept: KeptSandbox, sessions: &[Record]) -> Result<(), String> {
        if self.boxes().contains_key(&kept.id) {
            return Err("a sandbox with its id runs".into());
        }
        let host = self.inner.root.join(&kept.id);
        // The newest copy of its files: this node's directory after a crash here, else the
        // store's (a graceful stop removed this node's).
        let ours = self.sandbox.node().map(str::to_string);
        let local = kept.stopped_at.is_none() && kept.node == ours && host.is_dir();
        if !local {
            let stale = host.clone();
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(stale)).await;
        }
        let files = Files::create(host, &kept.home, self.inner.config.files_quota_mb)
            .map_err(|e| format!("cannot make its files directory: {e}"))?;
        if !local && kept.files_stored {
            let store = self.sandbox.snapshot_store();
            let attributes = store
                .fetch_kept_files(&kept.tenant, &kept.id, &files.host)
                .await
                .map_err(|e| format!("cannot fetch its files: {e}"))?;
            for (path, metadata) in &attributes {
                if let Err(e) = files.set_metadata(path, metadata) {
                    tracing::warn!(sandbox_id = %kept.id, path = %path, error = %e, "a file's metadata is not back");
                }
            }
        }
        let now = Utc::now();
        let end = match (parse(&kept.end_at), kept.stopped_at.as_deref().and_then(parse)) {
            (Some(end), Some(stopped)) => now + (end - stopped).max(chrono::Duration::zero()),
            (Some(end), None) => end,
            _ => now,
        };
        let tenant: Arc<str> = Arc::from(kept.tenant.as_str());
        let started_at = parse(&kept.started_at).unwrap_or(now);
        let sbx = Arc::new(Sbx::new(
            kept.id.clone(),
            tenant.clone(),
            kept.token.clone(),
            super::SandboxSpec {
                template: kept.template.clone(),
                timeout_s: None,
                metadata: kept.metadata.clone(),
                env: kept.env.clone(),
                home: kept.home.clone(),
            },
            started_at,
            end,
            files,
        ));
        sbx.paused.store(kept.paused, Ordering::Release);
        sbx.files_stored.store(kept.files_stored, Ordering::Release);
        *sbx.packages() = kept.packages.clone();
        let mut by_worker: HashMap<&str, Vec<&Record>> = HashMap::new();
        for record in sessions.iter().filter(|r| r.mounted) {
            by_worker.entry(record.info.worker_id.as_str()).or_default().push(record);
        }
        for ctx in &kept.contexts {
            let language = Language::parse(Some(&ctx.language)).map_err(|e| e.to_string())?;
            let caller = Caller { tenant: tenant.clone(), worker_id: worker_in(&kept.id, &ctx.id) };
            // Newest first: the older records of a session already back are deleted.
            for record in by_worker.get(caller.worker_id.as_str()).into_iter().flatten() {
                if self.sandbox.bring_back(record, self.context_extras(&sbx)).await == BroughtBack::Theirs {
                    return Err(format!("its context {} is claimed by another node", ctx.id));
                }
            }
            let context = Context::restored(ctx.id.clone(), language, ctx.cwd.clone(), ctx.default, caller);
            sbx.contexts().push(Arc::new(context));
        }
        self.boxes().insert(kept.id.clone(), sbx.clone());
        self.by_token().insert(token_key(&sbx.token), kept.id.clone());
        // Running here now, not stopped.
        self.remember(&sbx, false, false).await;
        tracing::info!(tenant = %tenant, sandbox_id = %kept.id, paused = kept.paused, "sandbox back");
        Ok(())
    }
}

impl Sandboxes {
    /// How often live sandboxes' files are copied into the store: with checkpoints on.
    pub(super) fn file_checkpoints(&self) -> Option<std::time::Duration> {
        let s = &self.sandbox.config().server.snapshots;
        (self.durable() && s.checkpoint_interval_s > 0.0).then(|| crate::config::seconds(s.checkpoint_interval_s))
    }
}

/// Every `every`, copies the files of each live sandbox a request reached since the last
/// round into the store, until the sandboxes are dropped.
pub(super) async fn checkpoint_files(
    inner: std::sync::Weak<Inner>,
    sandbox: crate::sandbox::Sandbox,
    every: std::time::Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(strong) = inner.upgrade() else { return };
        let due: Vec<Arc<Sbx>> = {
            let boxes = strong.boxes.lock().unwrap_or_else(|p| p.into_inner());
            boxes.values().filter(|b| !b.paused() && b.touched.swap(false, Ordering::AcqRel)).cloned().collect()
        };
        let this = Sandboxes { sandbox: sandbox.clone(), inner: strong };
        for sbx in due {
            this.remember(&sbx, true, false).await;
        }
    }
}
