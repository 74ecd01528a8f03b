//! Sessions: one store and instance per (tenant, worker, resource type), with a TTL that
//! every call renews, names as AgentFlow makes them, and the registry that holds them.
//!
//! The registry is a plain `std::sync::Mutex` over a map: every operation under it is a
//! short map update, never an await. The instance of a session sits behind its own
//! `tokio::sync::Mutex`, which serialises calls into one session (a store is single-threaded)
//! while different sessions run in parallel.

use crate::engine::host::Mount;
use crate::engine::instance::Instance;
use crate::envelope::timestamp;
use crate::sandbox::scratch::ScratchDir;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::OwnedMutexGuard;

/// Who is asking: a worker of a tenant. Worker ids are namespaced per tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Caller {
    /// The tenant (`default` when the server runs without tenants).
    pub tenant: Arc<str>,
    /// The worker id the client chose.
    pub worker_id: String,
}

impl Caller {
    /// A worker of the default tenant.
    pub fn new(worker_id: impl Into<String>) -> Caller {
        Caller { tenant: Arc::from("default"), worker_id: worker_id.into() }
    }

    /// A worker of a named tenant.
    pub fn of_tenant(tenant: &str, worker_id: impl Into<String>) -> Caller {
        Caller { tenant: Arc::from(tenant), worker_id: worker_id.into() }
    }
}

/// A session's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// `initialize` is running.
    Initializing,
    /// Ready for calls.
    Active,
    /// Snapshotted and its instance freed; the next call (or a resume) restores it.
    Paused,
    /// `initialize` failed, or a fault ended the instance; calls get 4007.
    Error(String),
}

impl Status {
    /// The status as AgentFlow names it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Initializing => "initializing",
            Status::Active => "active",
            Status::Paused => "paused",
            Status::Error(_) => "error",
        }
    }
}

/// The mutable bookkeeping of a session.
#[derive(Debug)]
struct Book {
    status: Status,
    /// What `initialize` returned.
    data: Value,
    last_activity: DateTime<Utc>,
    /// When the reaper may end the session.
    expires: Instant,
    expires_at: DateTime<Utc>,
    /// Calls in progress; the reaper leaves busy sessions alone.
    busy: u32,
}

/// One session.
pub struct Session {
    /// `<session_name>_<8 hex>`.
    pub id: String,
    /// `<rt>_<safe worker>_<NNN>[_<custom>]`.
    pub name: String,
    /// Who owns it.
    pub caller: Caller,
    /// The resource type.
    pub resource_type: String,
    /// True when `execute` created it implicitly.
    pub auto_created: bool,
    /// The config `initialize` got (backend default merged with the caller's).
    pub config: Value,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// A shared directory its instance mounts, if the door asked for one.
    pub mount: Option<Mount>,
    ttl: Duration,
    book: Mutex<Book>,
    /// The live instance; `None` before initialisation and after a fault or cleanup.
    pub instance: Arc<tokio::sync::Mutex<Option<Instance>>>,
    /// The scratch directory, removed when the session ends (or when the last handle to it is
    /// dropped, whatever the path).
    scratch: Mutex<Option<ScratchDir>>,
    /// While paused: the snapshot that holds its state.
    parked: Mutex<Option<String>>,
    /// The session's latest checkpoint (`server.snapshots.checkpoint_interval_s`).
    checkpoint: Mutex<Option<String>>,
    /// A call ended since the last checkpoint (or none was taken yet).
    dirty: std::sync::atomic::AtomicBool,
    /// Pause instead of ending when the TTL runs out (`on_timeout: "pause"`).
    pub pause_on_timeout: bool,
    /// This node claimed the session in the snapshot store (see `sandbox::restarts`).
    pub claimed: std::sync::atomic::AtomicBool,
}

/// A call in progress in a session (see [`Session::begin_call`]); dropping it ends the call
/// and renews the TTL.
pub struct Busy<'a> {
    session: &'a Session,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        {
            let mut b = self.session.book();
            b.busy = b.busy.saturating_sub(1);
        }
        self.session.dirty.store(true, std::sync::atomic::Ordering::Release);
        self.session.touch();
    }
}

/// A session as listed (S-9b); the wire type is `cella-protocol`'s.
pub use cella_protocol::SessionInfo;

impl Session {
    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The status.
    pub fn status(&self) -> Status {
        self.book().status.clone()
    }

    /// Marks initialisation done with the data `initialize` returned.
    pub fn activate(&self, data: Value) {
        let mut b = self.book();
        b.status = Status::Active;
        b.data = data;
    }

    /// Puts the session in `error` (initialisation failed, or a fault ended its instance).
    pub fn fail(&self, reason: String) {
        self.book().status = Status::Error(reason);
    }

    /// Renews the TTL (every call and every refresh does).
    pub fn touch(&self) -> DateTime<Utc> {
        let mut b = self.book();
        let now = Utc::now();
        b.last_activity = now;
        b.expires = Instant::now() + self.ttl;
        b.expires_at = now + chrono::Duration::from_std(self.ttl).unwrap_or_default();
        b.expires_at
    }

    /// Marks a call in progress and renews the TTL, until the returned guard is dropped: the
    /// mark is released on every path, cancellation and panics included, so the reaper never
    /// skips a session forever.
    pub fn begin_call(&self) -> Busy<'_> {
        self.touch();
        self.book().busy += 1;
        Busy { session: self }
    }

    /// Hands the session its scratch directory, removed when the session ends or is dropped.
    pub fn own_scratch(&self, dir: Option<ScratchDir>) {
        *self.scratch.lock().unwrap_or_else(|p| p.into_inner()) = dir;
    }

    /// Marks the session paused, its state in snapshot `id`, kept until `retention` passes.
    pub fn park(&self, id: String, retention: Duration) {
        *self.parked.lock().unwrap_or_else(|p| p.into_inner()) = Some(id);
        let mut b = self.book();
        b.status = Status::Paused;
        b.expires = Instant::now() + retention;
        b.expires_at = Utc::now() + chrono::Duration::from_std(retention).unwrap_or_default();
    }

    /// True, once, when a call ended since the last time this was asked: the session has a
    /// state its checkpoint does not hold.
    pub fn take_dirty(&self) -> bool {
        self.dirty.swap(false, std::sync::atomic::Ordering::AcqRel)
    }

    /// Records `id` as the session's latest checkpoint; returns the one it replaces.
    pub fn set_checkpoint(&self, id: Option<String>) -> Option<String> {
        std::mem::replace(&mut *self.checkpoint.lock().unwrap_or_else(|p| p.into_inner()), id)
    }

    /// The snapshot holding a paused session's state.
    pub fn parked(&self) -> Option<String> {
        self.parked.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Marks a paused session live again.
    pub fn unpark(&self) {
        *self.parked.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.book().status = Status::Active;
        self.touch();
    }

    /// The TTL left before the reaper ends (or pauses) the session.
    pub fn ttl_left(&self) -> Duration {
        self.book().expires.saturating_duration_since(Instant::now())
    }

    /// Hands the session its scratch directory unless it has one already (a session brought
    /// back after a restart gets it on its first resume).
    pub fn own_scratch_once(&self, path: &std::path::Path) {
        let mut slot = self.scratch.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            // Made only here: a `ScratchDir` removes its directory when dropped.
            *slot = Some(ScratchDir::new(path.to_path_buf()));
        }
    }

    /// Removes the session's scratch directory now (it ended, or went over its quota).
    pub fn drop_scratch(&self) {
        let dir = self.scratch.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(dir);
    }

    fn expired(&self, now: Instant) -> bool {
        let b = self.book();
        b.busy == 0 && b.expires <= now
    }

    /// The session as listed.
    pub fn info(&self) -> SessionInfo {
        let b = self.book();
        SessionInfo {
            resource_type: self.resource_type.clone(),
            session_id: self.id.clone(),
            session_name: self.name.clone(),
            status: b.status.as_str().to_string(),
            auto_created: self.auto_created,
            created_at: timestamp(self.created_at),
            last_activity: timestamp(b.last_activity),
            expires_at: timestamp(b.expires_at),
            error: match &b.status {
                Status::Error(e) => Some(e.clone()),
                _ => None,
            },
            data: b.data.clone(),
            config: self.config.clone(),
        }
    }
}

mod registry;
pub use registry::{Extras, Fresh, Lookup, Sessions};
