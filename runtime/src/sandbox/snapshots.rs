//! Session snapshots: snapshot, fork, pause and resume, restore from a stored snapshot, and
//! sessions that outlive a restart. A snapshot is taken under the session's instance lock,
//! so never mid-call: a call in progress finishes first.

use super::snapstore::{Record, SnapshotStore, StoreError, encode, read_files, write_files};
use super::verbs::{denied, internal};
use super::*;
use crate::engine::snapshot::{Blank, CaptureError, Captured, Keep};
use cella_protocol::SnapshotInfo;

/// Why a snapshot was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Asked for; kept until deleted.
    Snapshot,
    /// The session was paused; deleted when it resumes or ends.
    Pause,
    /// The server stopped; deleted when the session resumes or ends.
    Shutdown,
    /// A periodic checkpoint; replaced by the next, deleted when the session ends.
    Checkpoint,
    /// Part of a sandbox's snapshot (E2B's template snapshots); deleted with it.
    Sandbox,
}

impl Reason {
    /// The name records carry.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Snapshot => "snapshot",
            Reason::Pause => "pause",
            Reason::Shutdown => "shutdown",
            Reason::Checkpoint => "checkpoint",
            Reason::Sandbox => "sandbox",
        }
    }
}

fn refused(e: CaptureError) -> Refusal {
    let code = match e {
        CaptureError::Mismatch(_) => codes::SNAPSHOT_INVALID,
        _ => codes::SNAPSHOT_REFUSED,
    };
    Refusal::new(code, e.to_string(), Value::Null)
}

/// Runs `work` on tokio's blocking pool (compression, checksums, file reads of many MiB),
/// off the threads that serve calls; a task that fails answers like a failed store.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> std::result::Result<T, Refusal> {
    tokio::task::spawn_blocking(work).await.map_err(|e| stored(StoreError::Io(e.to_string())))
}

pub(super) fn stored(e: StoreError) -> Refusal {
    match e {
        StoreError::NotFound(id) => {
            Refusal::new(codes::SNAPSHOT_NOT_FOUND, format!("no snapshot '{id}'"), json!({"snapshot_id": id}))
        }
        StoreError::Corrupted(id, why) => Refusal::new(
            codes::SNAPSHOT_INVALID,
            format!("snapshot '{id}' is corrupted: {why}"),
            json!({"snapshot_id": id}),
        ),
        e @ StoreError::Io(_) => Refusal::new(codes::UNEXPECTED_ERROR, e.to_string(), Value::Null),
    }
}

fn no_session(rt: &str) -> Refusal {
    Refusal::new(codes::RESOURCE_NOT_INITIALIZED, format!("No session found for {rt}"), json!({"resource_type": rt}))
}

impl Sandbox {
    /// The snapshot store.
    pub(super) fn store(&self) -> &SnapshotStore {
        &self.inner.snapshots
    }

    pub(super) fn snapshots_on(&self) -> std::result::Result<(), Refusal> {
        if !self.inner.config.server.snapshots.enabled {
            return Err(Refusal::new(
                codes::SNAPSHOT_REFUSED,
                "snapshots are off on this server (server.snapshots.enabled)",
                Value::Null,
            ));
        }
        self.refuse_if_closing()
    }

    pub(super) fn session_of(&self, caller: &Caller, rt: &str) -> std::result::Result<Arc<Session>, Refusal> {
        self.inner.sessions.get(caller, rt).ok_or_else(|| no_session(rt))
    }

    /// Captures a live session whose instance lock is held: its instance state and its
    /// scratch files, its pages kept as `keep` says: on the heap to be stored, or where a
    /// fork's copies map or move them (see [`crate::engine::overlay`]).
    pub(super) async fn capture_locked(
        &self,
        session: &Session,
        slot: &mut Option<Instance>,
        keep: Keep,
    ) -> std::result::Result<(Captured, Vec<(String, Vec<u8>)>), Refusal> {
        let backend = self.backend_for(&session.resource_type)?.clone();
        let Some(instance) = slot.as_mut() else {
            return Err(Refusal::new(
                codes::SNAPSHOT_REFUSED,
                format!("the session is {}, not live", session.status().as_str()),
                json!({"session_id": session.id}),
            ));
        };
        let captured = backend.capture(instance, keep).await.map_err(refused)?;
        let files = match self.session_scratch(session) {
            // File reads off the async threads; a failed task fails the capture, never drops files.
            Some(dir) => blocking(move || read_files(&dir)).await?,
            None => Vec::new(),
        };
        Ok((captured, files))
    }

    /// Stores a captured session; returns its record.
    pub(super) async fn put(
        &self,
        session: &Session,
        captured: Captured,
        files: Vec<(String, Vec<u8>)>,
        reason: Reason,
    ) -> std::result::Result<Record, Refusal> {
        let file_count = files.len() as u64;
        let changed_bytes = captured.image.changed_bytes() as u64;
        let memory_bytes = captured.image.memories.iter().map(|m| m.bytes).sum();
        let image_key = captured.key.clone();
        // Compression and checksum of many MiB (a Python session's): off the async threads,
        // which serve every other call meanwhile.
        let packed = blocking(move || encode(&captured, files)).await?.map_err(stored)?;
        if matches!(reason, Reason::Pause | Reason::Shutdown | Reason::Checkpoint) {
            // Owned before a restart could bring it back (see `restarts`).
            self.claim(session).await?;
        }
        let tenant = &session.caller.tenant;
        if let Some(quota) = self.inner.tenancy.snapshot_mb(tenant) {
            let used = self.store().bytes_of(tenant).await;
            if used + packed.len > quota << 20 {
                return Err(Refusal::new(
                    codes::QUOTA_EXCEEDED,
                    format!(
                        "tenant '{tenant}' stores {:.1} MiB of snapshots; this one ({:.1} MiB) would pass its quota of {quota} MiB",
                        used as f64 / 1048576.0,
                        packed.len as f64 / 1048576.0
                    ),
                    json!({"snapshot_mb": quota}),
                ));
            }
        }
        let info = session.info();
        let snapshot_id = format!("snap_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
        let record = Record {
            // Both filled in as the blob is stored.
            blob: None,
            content: String::new(),
            info: SnapshotInfo {
                snapshot_id,
                reason: reason.as_str().into(),
                worker_id: session.caller.worker_id.clone(),
                resource_type: session.resource_type.clone(),
                session_id: session.id.clone(),
                session_name: session.name.clone(),
                created_at: timestamp(chrono::Utc::now()),
                stored_bytes: packed.len,
                changed_bytes,
                memory_bytes,
                files: file_count,
                ttl_remaining_s: session.ttl_left().as_secs_f64(),
                config: info.config,
                data: info.data,
            },
            tenant: tenant.to_string(),
            image_key,
            pause_on_timeout: session.pause_on_timeout,
            mounted: session.mount.is_some(),
        };
        // The blob's parts as they are: its pages are the capture's, not a copy.
        self.store().put_new(record, packed).await.map_err(stored)
    }

    /// Snapshots the caller's live session of `rt` into the store; the session goes on.
    pub async fn snapshot_session(&self, caller: &Caller, rt: &str) -> std::result::Result<SnapshotInfo, Refusal> {
        self.snapshot_session_for(caller, rt, Reason::Snapshot).await
    }

    /// [`Sandbox::snapshot_session`], the record marked with `reason` (a sandbox's snapshot
    /// marks its sessions' [`Reason::Sandbox`], so that they are deleted with it).
    pub async fn snapshot_session_for(
        &self,
        caller: &Caller,
        rt: &str,
        reason: Reason,
    ) -> std::result::Result<SnapshotInfo, Refusal> {
        self.snapshots_on()?;
        let session = self.session_of(caller, rt)?;
        let this = self.clone();
        let work = async move {
            // The state is taken under the session's lock (never mid-call); the lock is let go
            // before it is compressed and stored, so the session's next call waits for the
            // capture only.
            let (captured, files) = {
                let _busy = session.begin_call();
                let mut slot = session.instance.lock().await;
                this.resume_locked(&session, &mut slot).await?;
                this.capture_locked(&session, &mut slot, Keep::Store).await?
            };
            let record = this.put(&session, captured, files, reason).await?;
            tracing::info!(snapshot_id = %record.info.snapshot_id, stored_bytes = record.info.stored_bytes, "session snapshotted");
            Ok(record.info)
        };
        detached(work, internal).await
    }

    /// Registers a new session for `caller` and writes `captured` and `files` into it.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn restore_into_new(
        &self,
        caller: &Caller,
        rt: &str,
        config: &Value,
        data: &Value,
        captured: &Captured,
        files: &[(String, Vec<u8>)],
        extras: Extras,
    ) -> std::result::Result<Arc<Session>, Refusal> {
        let backend = self.backend_for(rt)?.clone();
        let fresh = self.register_new(caller, rt, config, &extras)?;
        self.fill(&backend, fresh, data, captured, files, None).await
    }

    /// Registers a new session of `rt` for `caller`, to be restored into ([`Sandbox::fill`]):
    /// refused when the tenant may not use `rt`, holds its quota of sessions, or the worker
    /// has a session of `rt` already.
    pub(super) fn register_new(
        &self,
        caller: &Caller,
        rt: &str,
        config: &Value,
        extras: &Extras,
    ) -> std::result::Result<Fresh, Refusal> {
        self.inner.tenancy.check_resource(&caller.tenant, rt).map_err(denied)?;
        let max = self.inner.tenancy.max_sessions(&caller.tenant);
        match self.inner.sessions.get_or_create(caller, rt, config.clone(), None, max, extras) {
            Lookup::QuotaExceeded(max) => Err(Refusal::new(
                codes::QUOTA_EXCEEDED,
                format!("tenant '{}' holds its quota of {max} live sessions", caller.tenant),
                json!({"max_sessions": max}),
            )),
            Lookup::Existing(existing) => Err(Refusal::new(
                codes::INVALID_INPUT,
                format!("worker '{}' already has a session of {rt} ({})", caller.worker_id, existing.id),
                json!({"worker_id": caller.worker_id, "session_id": existing.id}),
            )),
            Lookup::Created(fresh) => Ok(fresh),
        }
    }

    /// Writes `captured` and `files` into a session [`Sandbox::register_new`] made (into
    /// `blank`, when one was made for it: [`Sandbox::blank_for`]) and makes it live; ends it
    /// when that fails.
    pub(super) async fn fill(
        &self,
        backend: &Backend,
        mut fresh: Fresh,
        data: &Value,
        captured: &Captured,
        files: &[(String, Vec<u8>)],
        blank: Option<Blank>,
    ) -> std::result::Result<Arc<Session>, Refusal> {
        let session = fresh.session.clone();
        if self.inner.sessions.list(&session.caller).len() == 1 {
            self.own_worker(&session.caller).await;
        }
        let busy = session.begin_call();
        let restored = self.restore_instance(backend, &session, captured, files, blank).await;
        drop(busy);
        match restored {
            Ok(instance) => {
                *fresh.slot = Some(instance);
                session.activate(data.clone());
                Ok(session)
            }
            Err(refusal) => {
                self.abandon(&session);
                Err(refusal)
            }
        }
    }

    /// Ends a registered session that was never made live.
    pub(super) fn abandon(&self, session: &Arc<Session>) {
        self.inner.sessions.remove_exact(session);
        session.drop_scratch();
    }

    /// A fresh instance of `backend`'s warm image for `session` (its tags, its scratch
    /// directory made and owned), for a restore to write into.
    pub(super) async fn blank_for(&self, backend: &Backend, session: &Session) -> std::result::Result<Blank, Refusal> {
        backend.warm_up(false).await.map_err(|e| Refusal::new(codes::BACKEND_NOT_INITIALIZED, e, Value::Null))?;
        let mut tags = self.tags(backend, &session.caller, Some(&session.id));
        tags.mount = session.mount.clone();
        if let Some(dir) = &tags.scratch {
            session.own_scratch_once(dir);
        }
        backend.blank(tags).await.map_err(refused)
    }

    /// A restored instance for `session` (written into `blank`, or a new one), its scratch
    /// files written back.
    async fn restore_instance(
        &self,
        backend: &Backend,
        session: &Session,
        captured: &Captured,
        files: &[(String, Vec<u8>)],
        blank: Option<Blank>,
    ) -> std::result::Result<Instance, Refusal> {
        let blank = match blank {
            Some(blank) => blank,
            None => {
                backend
                    .warm_up(false)
                    .await
                    .map_err(|e| Refusal::new(codes::BACKEND_NOT_INITIALIZED, e, Value::Null))?;
                backend.fits(captured).map_err(refused)?;
                self.blank_for(backend, session).await?
            }
        };
        if let Some(dir) = self.session_scratch(session) {
            write_files(&dir, files).map_err(|e| {
                Refusal::new(codes::UNEXPECTED_ERROR, format!("cannot restore files: {e}"), Value::Null)
            })?;
        }
        backend.restore_into(blank, captured).await.map_err(refused)
    }

    /// Pauses the caller's session of `rt`: snapshots it, frees its instance, and keeps it
    /// listed as `paused` for `server.snapshots.retention_s`. Its next call resumes it.
    pub async fn pause_session(&self, caller: &Caller, rt: &str) -> std::result::Result<SnapshotInfo, Refusal> {
        self.snapshots_on()?;
        let session = self.session_of(caller, rt)?;
        let this = self.clone();
        detached(async move { this.pause(&session).await }, internal).await
    }

    /// Pauses a session (see [`Sandbox::pause_session`]).
    pub(super) async fn pause(&self, session: &Arc<Session>) -> std::result::Result<SnapshotInfo, Refusal> {
        let mut slot = session.instance.lock().await;
        if let Some(id) = session.parked() {
            return self.store().record(&session.caller.tenant, &id).await.map(|r| r.info).map_err(stored);
        }
        let (captured, files) = self.capture_locked(session, &mut slot, Keep::Store).await?;
        let record = self.put(session, captured, files, Reason::Pause).await?;
        self.forget_checkpoint(session).await;
        // The instance is dropped without `cleanup`: the session goes on after a resume.
        *slot = None;
        session.park(record.info.snapshot_id.clone(), self.retention());
        tracing::info!(snapshot_id = %record.info.snapshot_id, "session paused");
        Ok(record.info)
    }

    pub(super) fn retention(&self) -> Duration {
        crate::config::seconds(self.inner.config.server.snapshots.retention_s)
    }

    /// Resumes the caller's paused session of `rt` now (a call would resume it too).
    pub async fn resume_session(&self, caller: &Caller, rt: &str) -> std::result::Result<SessionInfo, Refusal> {
        self.snapshots_on()?;
        let session = self.session_of(caller, rt)?;
        let this = self.clone();
        let work = async move {
            let mut slot = session.instance.lock().await;
            this.resume_locked(&session, &mut slot).await?;
            Ok(session.info())
        };
        detached(work, internal).await
    }

    /// Restores a paused session whose instance lock is held; nothing to do when it is live.
    pub(super) async fn resume_locked(
        &self,
        session: &Session,
        slot: &mut Option<Instance>,
    ) -> std::result::Result<(), Refusal> {
        let Some(id) = session.parked() else { return Ok(()) };
        if slot.is_some() {
            return Ok(());
        }
        let tenant = &session.caller.tenant;
        let record = self.store().record(tenant, &id).await.map_err(stored)?;
        let (image, files) = self.store().body(&record).await.map_err(stored)?;
        let backend = self.backend_for(&session.resource_type)?.clone();
        let captured = Captured { image, key: record.image_key.clone() };
        let instance = self.restore_instance(&backend, session, &captured, &files, None).await?;
        *slot = Some(instance);
        session.unpark();
        // Pause and shutdown snapshots belong to the session: gone once it is live again.
        let _ = self.store().delete(tenant, &id).await;
        tracing::info!(snapshot_id = %id, "session resumed");
        Ok(())
    }

    /// A new session for `caller` from the stored snapshot `id` of its tenant.
    pub async fn restore_snapshot(&self, caller: &Caller, id: &str) -> std::result::Result<SessionInfo, Refusal> {
        self.restore_snapshot_with(caller, id, Extras::default()).await
    }

    /// [`Sandbox::restore_snapshot`] with the new session's extras (TTL, mount).
    pub async fn restore_snapshot_with(
        &self,
        caller: &Caller,
        id: &str,
        extras: Extras,
    ) -> std::result::Result<SessionInfo, Refusal> {
        self.snapshots_on()?;
        let record = self.store().record(&caller.tenant, id).await.map_err(stored)?;
        let (image, files) = self.store().body(&record).await.map_err(stored)?;
        let this = self.clone();
        let caller = caller.clone();
        let work = async move {
            let captured = Captured { image, key: record.image_key.clone() };
            let rt = record.info.resource_type.clone();
            let session = this
                .restore_into_new(&caller, &rt, &record.info.config, &record.info.data, &captured, &files, extras)
                .await?;
            Ok(session.info())
        };
        detached(work, internal).await
    }

    /// The snapshot store (shared with the sandboxes layer's snapshots).
    pub fn snapshot_store(&self) -> &SnapshotStore {
        self.store()
    }

    /// The stored snapshots of `tenant`, oldest first.
    pub async fn list_snapshots(&self, tenant: &str) -> Vec<SnapshotInfo> {
        self.store().list(tenant).await.into_iter().map(|r| r.info).collect()
    }

    /// Deletes a stored snapshot of `tenant`.
    pub async fn delete_snapshot(&self, tenant: &str, id: &str) -> std::result::Result<SnapshotInfo, Refusal> {
        self.store().delete(tenant, id).await.map(|r| r.info).map_err(stored)
    }
}
