//! The state every store holds, and the host side of the `host` interface.
//!
//! `HostState` exposes WASI through [`WasiView`] (granting only what the resource's
//! configuration grants), enforces the memory cap as a [`ResourceLimiter`], and carries the
//! deadline of the call in progress and the tags the guest's log lines get.

use crate::config::Grants;
use crate::engine::bindings::cella::backend::host::{Host, Level};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

/// Who an instance works for; attached to its log lines.
#[derive(Debug, Clone, Default)]
pub struct Tags {
    /// The backend (resource type).
    pub backend: Arc<str>,
    /// The tenant, when the instance belongs to one.
    pub tenant: Option<Arc<str>>,
    /// The worker, for session instances.
    pub worker_id: Option<String>,
    /// The session, for session instances.
    pub session_id: Option<String>,
    /// A memory cap below the server's (the tenant's quota), in MiB.
    pub memory_mb: Option<u64>,
    /// The host directory backing the instance's scratch grant.
    pub scratch: Option<std::path::PathBuf>,
    /// A writable directory shared with other sessions (a sandbox's files).
    pub mount: Option<Mount>,
}

/// A host directory an instance may read and write, seen by the guest at `guest`; several
/// sessions may mount the same one (the code contexts of one sandbox share their files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The host directory; it exists.
    pub host: std::path::PathBuf,
    /// The absolute guest path.
    pub guest: String,
}

/// A piece of a call's output, streamed by the guest's `emit` while the call runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// `stdout` or `stderr` (other names are passed through).
    pub channel: String,
    /// The text.
    pub text: String,
}

/// Where a watched call's [`Output`] goes.
pub type OutputSink = tokio::sync::mpsc::UnboundedSender<Output>;

/// The most output one call may stream (further pieces are dropped; the result still
/// carries everything the guest returns).
pub const MAX_STREAMED_BYTES: usize = 64 * 1024 * 1024;

/// The memory cap of one store, with a flag saying the guest hit it.
#[derive(Debug)]
pub struct MemoryLimiter {
    /// Bytes of linear memory the instance may have in all.
    pub max_bytes: usize,
    /// Set when a grow was refused, so a following trap is reported as a memory-limit fault.
    pub hit: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// The data of every store.
pub struct HostState {
    /// WASI state: only what the grants allow.
    wasi: WasiCtx,
    /// Host resources handed to the guest.
    table: ResourceTable,
    /// The memory cap.
    pub limiter: MemoryLimiter,
    /// When the call in progress must end; checked on every epoch tick.
    pub deadline: Instant,
    /// Log tags.
    pub tags: Tags,
    /// Where the call in progress streams its output, when somebody watches it.
    pub output: Option<OutputSink>,
    /// Bytes streamed by the call in progress.
    pub streamed: usize,
    /// How many directories the guest is granted (`wasi:filesystem/preopens`).
    pub preopens: usize,
}

impl HostState {
    /// A store state granting exactly `grants` (directories resolved against `base`).
    pub fn new(grants: &Grants, base: &Path, memory_bytes: usize, tags: Tags) -> wasmtime::Result<HostState> {
        let mut builder = WasiCtx::builder();
        let preopens = grants.dirs.len()
            + usize::from(grants.scratch.is_some() && tags.scratch.is_some())
            + usize::from(tags.mount.is_some());
        for dir in &grants.dirs {
            let host = dir.host_path(base);
            builder.preopened_dir(&host, &dir.guest, FsPerms::ReadOnly)?;
        }
        for (k, v) in &grants.env {
            builder.env(k, v);
        }
        if let (Some(grant), Some(dir)) = (&grants.scratch, &tags.scratch) {
            builder.preopened_dir(dir, &grant.guest, FsPerms::ReadWrite)?;
        }
        if let Some(mount) = &tags.mount {
            builder.preopened_dir(&mount.host, &mount.guest, FsPerms::ReadWrite)?;
        }
        Ok(HostState {
            wasi: builder.build(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter { max_bytes: memory_bytes, hit: false },
            deadline: Instant::now(),
            tags,
            output: None,
            streamed: 0,
            preopens,
        })
    }
}

impl HostState {
    /// True when the guest holds no host resources (no WASI stream, file or socket handle).
    pub fn holds_no_resources(&self) -> bool {
        self.table.is_empty()
    }

    /// The host resources the guest holds, by table index, each named by its kind
    /// (`directory`, `file` or `other`).
    pub fn held_resources(&mut self) -> Vec<(u32, &'static str)> {
        let mut out = Vec::new();
        let mut misses = 0;
        let mut index = 0u32;
        // The table hands out the lowest free index first; stop after a long run of free ones.
        while misses < 256 {
            match self.table.get_any_mut(index) {
                Ok(entry) => {
                    misses = 0;
                    let kind = match entry.downcast_ref::<wasmtime_wasi::filesystem::Descriptor>() {
                        Some(wasmtime_wasi::filesystem::Descriptor::Dir(_)) => "directory",
                        Some(wasmtime_wasi::filesystem::Descriptor::File(_)) => "file",
                        None => "other",
                    };
                    out.push((index, kind));
                }
                Err(_) => misses += 1,
            }
            index += 1;
        }
        out
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        let t = &self.tags;
        let (backend, tenant, worker, session) =
            (&*t.backend, t.tenant.as_deref(), t.worker_id.as_deref(), t.session_id.as_deref());
        match level {
            Level::Trace => {
                tracing::trace!(target: "cella::guest", backend, tenant, worker_id = worker, session_id = session, "{message}")
            }
            Level::Debug => {
                tracing::debug!(target: "cella::guest", backend, tenant, worker_id = worker, session_id = session, "{message}")
            }
            Level::Info => {
                tracing::info!(target: "cella::guest", backend, tenant, worker_id = worker, session_id = session, "{message}")
            }
            Level::Warn => {
                tracing::warn!(target: "cella::guest", backend, tenant, worker_id = worker, session_id = session, "{message}")
            }
            Level::Error => {
                tracing::error!(target: "cella::guest", backend, tenant, worker_id = worker, session_id = session, "{message}")
            }
        }
    }

    fn emit(&mut self, channel: String, text: String) {
        let Some(sink) = &self.output else { return };
        self.streamed += text.len();
        if self.streamed > MAX_STREAMED_BYTES {
            return;
        }
        // The watcher may have gone away; the call goes on regardless.
        let _ = sink.send(Output { channel, text });
    }
}

impl crate::engine::bindings::cella::backend::types::Host for HostState {}
