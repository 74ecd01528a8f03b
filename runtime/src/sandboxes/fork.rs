//! Forking a whole sandbox (E2B's `fork`): each copy is a new sandbox with the source's
//! template, metadata, environment and packages, a copy of its files, and a copy of every
//! code context's live interpreter state under the same context ids. The source goes on
//! unaffected; each copy succeeds or fails on its own.

use super::{SandboxSpec, Sandboxes, Sbx, SbxError};
use crate::sandbox::snapstore::copy_tree;
use crate::sandbox::{Caller, Extras};
use std::sync::Arc;

impl Sandboxes {
    /// Forks `sbx` into `count` new sandboxes ending `timeout_s` from now (the server's
    /// default when absent). A paused sandbox is resumed first. Refuses as a whole when the
    /// count is out of range; otherwise answers one result per copy.
    pub async fn fork(
        &self,
        sbx: &Sbx,
        count: usize,
        timeout_s: Option<u64>,
    ) -> Result<Vec<Result<Arc<Sbx>, SbxError>>, SbxError> {
        self.sandbox.check_fork_count(&sbx.tenant, count).map_err(|r| match r.code {
            crate::codes::QUOTA_EXCEEDED => SbxError::Quota(r.message),
            _ => SbxError::Invalid(r.message),
        })?;
        if sbx.paused() {
            self.resume(sbx, None).await?;
        }
        let mut copies: Vec<Result<Arc<Sbx>, SbxError>> = Vec::with_capacity(count);
        for _ in 0..count {
            let spec = SandboxSpec {
                template: sbx.template.clone(),
                timeout_s,
                metadata: sbx.metadata.clone(),
                env: sbx.env.clone(),
                home: sbx.files.home.clone(),
            };
            let copy = match self.create(&sbx.tenant, spec).await {
                Ok(copy) => copy,
                Err(e) => {
                    copies.push(Err(e));
                    continue;
                }
            };
            *copy.packages() = sbx.packages().clone();
            let (from, to) = (sbx.files.host.clone(), copy.files.host.clone());
            match tokio::task::spawn_blocking(move || copy_tree(&from, &to)).await {
                Ok(Ok(())) => copies.push(Ok(copy)),
                failed => {
                    let why = match failed {
                        Ok(Err(e)) => e.to_string(),
                        Err(e) => e.to_string(),
                        Ok(Ok(())) => String::new(),
                    };
                    self.end(&copy).await;
                    copies.push(Err(SbxError::Io(format!("cannot copy the sandbox's files: {why}"))));
                }
            }
        }
        for ctx in self.contexts(sbx) {
            // The copies still standing, and where each context's copy goes.
            let live: Vec<(usize, Arc<Sbx>)> =
                copies.iter().enumerate().filter_map(|(i, c)| c.as_ref().ok().map(|c| (i, c.clone()))).collect();
            if live.is_empty() {
                break;
            }
            let targets: Vec<(Caller, Extras)> = live
                .iter()
                .map(|(_, copy)| {
                    let caller = Caller { tenant: copy.tenant.clone(), worker_id: ctx.worker_in(&copy.id) };
                    (caller, self.context_extras(copy))
                })
                .collect();
            let results = match self.sandbox.fork_session_into(&ctx.caller, ctx.language.name(), targets.clone()).await
            {
                Ok(results) => results,
                Err(r) => targets.iter().map(|_| Err(r.clone())).collect(),
            };
            for (((i, copy), (caller, _)), result) in live.into_iter().zip(targets).zip(results) {
                match result {
                    Ok(_) => copy.contexts().push(Arc::new(ctx.copy_for(caller))),
                    Err(r) => {
                        self.end(&copy).await;
                        copies[i] = Err(SbxError::Refused { code: r.code, message: r.message });
                    }
                }
            }
        }
        let made = copies.iter().filter(|c| c.is_ok()).count();
        tracing::info!(tenant = %sbx.tenant, sandbox_id = %sbx.id, copies = made, "sandbox forked");
        Ok(copies)
    }
}
