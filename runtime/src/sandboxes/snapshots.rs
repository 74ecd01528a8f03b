//! Sandbox snapshots (E2B's template snapshots): the state of a whole sandbox (every code
//! context's interpreter, its files, metadata, environment and packages) kept in the snapshot
//! store, from which new sandboxes start (`Sandbox.create(template=<snapshot id or name>)`).
//! The source goes on unaffected; a snapshot lasts until it is deleted.

use super::context::{Context, Language, worker_in};
use super::{SandboxSpec, Sandboxes, Sbx, SbxError};
use crate::sandbox::snapstore::{ContextManifest, SandboxManifest};
use crate::sandbox::{Caller, SnapshotReason};
use std::sync::Arc;

fn refused(r: crate::sandbox::Refusal) -> SbxError {
    match r.code {
        crate::codes::QUOTA_EXCEEDED => SbxError::Quota(r.message),
        crate::codes::SNAPSHOT_NOT_FOUND => SbxError::NotFound(r.message),
        code => SbxError::Refused { code, message: r.message },
    }
}

impl Sandboxes {
    /// Snapshots `sbx` (resumed first when paused) under `name` (else its id).
    pub async fn snapshot(&self, sbx: &Sbx, name: Option<String>) -> Result<SandboxManifest, SbxError> {
        if sbx.paused() {
            self.resume(sbx, None).await?;
        }
        let store = self.sandbox.snapshot_store().clone();
        let files_bytes = crate::sandbox::dir_size(&sbx.files.host);
        if let Some(quota) = self.sandbox.tenancy().snapshot_mb(&sbx.tenant) {
            let used = store.bytes_of(&sbx.tenant).await;
            if used + files_bytes > quota << 20 {
                return Err(SbxError::Quota(format!(
                    "tenant '{}' stores {:.1} MiB of snapshots; this sandbox's files ({:.1} MiB) would pass its quota of {quota} MiB",
                    sbx.tenant,
                    used as f64 / 1048576.0,
                    files_bytes as f64 / 1048576.0
                )));
            }
        }
        let id = format!("sbxsnap_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
        let mut contexts = Vec::new();
        for ctx in self.contexts(sbx) {
            let taken =
                self.sandbox.snapshot_session_for(&ctx.caller, ctx.language.name(), SnapshotReason::Sandbox).await;
            match taken {
                Ok(info) => contexts.push(ContextManifest {
                    id: ctx.id.clone(),
                    language: ctx.language.name().to_string(),
                    cwd: ctx.cwd.clone(),
                    default: ctx.default,
                    snapshot_id: info.snapshot_id,
                }),
                Err(r) => {
                    for taken in &contexts {
                        let _ = self.sandbox.delete_snapshot(&sbx.tenant, &taken.snapshot_id).await;
                    }
                    return Err(refused(r));
                }
            }
        }
        let manifest = SandboxManifest {
            names: vec![name.unwrap_or_else(|| id.clone())],
            id,
            tenant: sbx.tenant.to_string(),
            source: sbx.id.clone(),
            created_at: chrono::Utc::now().to_rfc3339(),
            template: sbx.template.clone(),
            metadata: sbx.metadata.clone(),
            env: sbx.env.clone(),
            home: sbx.files.home.clone(),
            packages: sbx.packages().clone(),
            files_bytes,
            contexts,
        };
        if let Err(why) = store.put_sandbox(&manifest, &sbx.files.host).await {
            self.delete_sandbox_snapshot(&sbx.tenant, &manifest.id).await;
            return Err(SbxError::Io(format!("cannot store the sandbox's files: {why}")));
        }
        tracing::info!(tenant = %sbx.tenant, sandbox_id = %sbx.id, snapshot_id = %manifest.id, "sandbox snapshotted");
        Ok(manifest)
    }

    /// The tenant's sandbox snapshots, oldest first: of one source sandbox, or with one name
    /// (or id), when asked.
    pub async fn sandbox_snapshots(
        &self,
        tenant: &str,
        source: Option<&str>,
        name: Option<&str>,
    ) -> Vec<SandboxManifest> {
        let named = |m: &SandboxManifest, n: &str| m.id == n || m.names.iter().any(|x| x == n);
        self.sandbox
            .snapshot_store()
            .sandboxes(tenant)
            .await
            .into_iter()
            .filter(|m| source.is_none_or(|s| m.source == s) && name.is_none_or(|n| named(m, n)))
            .collect()
    }

    /// The tenant's sandbox snapshot with this id, or the newest with this name.
    pub async fn find_sandbox_snapshot(&self, tenant: &str, id_or_name: &str) -> Option<SandboxManifest> {
        self.sandbox_snapshots(tenant, None, Some(id_or_name)).await.pop()
    }

    /// Deletes a sandbox snapshot and its sessions' snapshots; false when there is none.
    pub async fn delete_sandbox_snapshot(&self, tenant: &str, id: &str) -> bool {
        let store = self.sandbox.snapshot_store();
        let Some(manifest) = store.sandboxes(tenant).await.into_iter().find(|m| m.id == id) else {
            return false;
        };
        for ctx in &manifest.contexts {
            let _ = self.sandbox.delete_snapshot(tenant, &ctx.snapshot_id).await;
        }
        store.delete_sandbox(tenant, id).await.is_ok()
    }

    /// A new sandbox from a snapshot: its files, packages and contexts (same ids, each
    /// interpreter restored); `spec`'s timeout, metadata and environment, else the snapshot's.
    pub async fn create_from_snapshot(
        &self,
        tenant: &Arc<str>,
        manifest: &SandboxManifest,
        mut spec: SandboxSpec,
    ) -> Result<Arc<Sbx>, SbxError> {
        if spec.metadata.is_empty() {
            spec.metadata = manifest.metadata.clone();
        }
        if spec.env.is_empty() {
            spec.env = manifest.env.clone();
        }
        spec.home = manifest.home.clone();
        spec.template = manifest.id.clone();
        let sbx = self.create(tenant, spec).await?;
        let made = self.fill_from_snapshot(&sbx, manifest).await;
        if let Err(e) = made {
            self.end(&sbx).await;
            return Err(e);
        }
        tracing::info!(tenant = %tenant, sandbox_id = %sbx.id, snapshot_id = %manifest.id, "sandbox made from a snapshot");
        Ok(sbx)
    }

    async fn fill_from_snapshot(&self, sbx: &Arc<Sbx>, manifest: &SandboxManifest) -> Result<(), SbxError> {
        *sbx.packages() = manifest.packages.clone();
        self.sandbox
            .snapshot_store()
            .fetch_sandbox_files(&manifest.tenant, &manifest.id, &sbx.files.host)
            .await
            .map_err(|e| SbxError::Io(format!("cannot copy the snapshot's files: {e}")))?;
        for ctx in &manifest.contexts {
            let language = Language::parse(Some(&ctx.language))?;
            let caller = Caller { tenant: sbx.tenant.clone(), worker_id: worker_in(&sbx.id, &ctx.id) };
            self.sandbox
                .restore_snapshot_with(&caller, &ctx.snapshot_id, self.context_extras(sbx))
                .await
                .map_err(refused)?;
            let context = Context::restored(ctx.id.clone(), language, ctx.cwd.clone(), ctx.default, caller);
            sbx.contexts().push(Arc::new(context));
        }
        Ok(())
    }
}
