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
    /// Pause instead of ending when the TTL runs out (`on_timeout: "pause"`).
    pub pause_on_timeout: bool,
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

/// What a door may ask of a new session beyond the seeds' create: its own TTL, and a
/// shared directory to mount.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// The session's TTL instead of the server's `session_ttl`.
    pub ttl: Option<Duration>,
    /// A read-write directory the instance mounts.
    pub mount: Option<Mount>,
    /// Pause instead of ending when the TTL runs out (`on_timeout: "pause"`).
    pub pause_on_timeout: bool,
    /// The name and id to register the session under (a session brought back after a
    /// restart keeps its own) instead of new ones.
    pub identity: Option<(String, String)>,
}

/// A session just put in the registry, with its instance lock held: whoever holds this
/// initialises the session; everyone else waits on the instance lock.
pub struct Fresh {
    /// The session.
    pub session: Arc<Session>,
    /// The instance slot, locked.
    pub slot: OwnedMutexGuard<Option<Instance>>,
}

/// The outcome of [`Sessions::get_or_create`].
pub enum Lookup {
    /// A session already existed.
    Existing(Arc<Session>),
    /// A new session was registered; initialise it.
    Created(Fresh),
    /// The tenant holds as many sessions as its quota allows.
    QuotaExceeded(usize),
}

#[derive(Default)]
struct Table {
    /// caller → resource type → session.
    workers: HashMap<Caller, BTreeMap<String, Arc<Session>>>,
    /// (caller, resource type) → sessions created so far; never reset (AgentFlow's NNN).
    counters: HashMap<(Caller, String), u64>,
    /// tenant → live sessions, kept in step with `workers` for the session quota.
    per_tenant: HashMap<Arc<str>, usize>,
}

impl Table {
    fn forget(&mut self, session: &Session) {
        if let Some(n) = self.per_tenant.get_mut(&session.caller.tenant) {
            *n = n.saturating_sub(1);
        }
    }
}

/// The registry of sessions.
pub struct Sessions {
    table: Mutex<Table>,
    ttl: Duration,
}

/// `worker_id` with every character outside `[A-Za-z0-9_-]` replaced by `-`, trimmed of
/// `-`, `worker` when empty, at most 32 characters.
pub fn safe_worker(worker_id: &str) -> String {
    let s: String = worker_id.chars().map(|c| if crate::config::is_name_char(c) { c } else { '-' }).collect();
    let s = s.trim_matches('-');
    let s = if s.is_empty() { "worker" } else { s };
    s.chars().take(32).collect()
}

/// A custom session name made safe; `None` when nothing is left.
pub fn safe_custom(name: &str) -> Option<String> {
    let s: String = name.chars().map(|c| if crate::config::is_name_char(c) { c } else { '-' }).collect();
    let s: String = s.trim_matches(|c| c == '-' || c == '_').chars().take(32).collect();
    (!s.is_empty()).then_some(s)
}

impl Sessions {
    /// An empty registry whose sessions live `ttl` unless used.
    pub fn new(ttl: Duration) -> Sessions {
        Sessions { table: Mutex::new(Table::default()), ttl }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The TTL.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Takes the next session number for (caller, resource type) and makes a name and id.
    fn next_name(table: &mut Table, caller: &Caller, rt: &str, custom: Option<&str>) -> (String, String) {
        let n = table.counters.entry((caller.clone(), rt.to_string())).or_insert(0);
        *n += 1;
        let mut name = format!("{rt}_{}_{:03}", safe_worker(&caller.worker_id), n);
        if let Some(custom) = custom.and_then(safe_custom) {
            name.push('_');
            name.push_str(&custom);
        }
        let id = format!("{name}_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        (name, id)
    }

    /// A name and id for a temporary session (counted like any other creation).
    pub fn temporary_name(&self, caller: &Caller, rt: &str) -> (String, String) {
        Self::next_name(&mut self.table(), caller, rt, None)
    }

    fn new_session(
        &self,
        caller: &Caller,
        rt: &str,
        name: String,
        id: String,
        config: Value,
        extras: &Extras,
    ) -> Arc<Session> {
        let now = Utc::now();
        Arc::new(Session {
            id,
            name,
            caller: caller.clone(),
            resource_type: rt.to_string(),
            // Registered sessions are always explicit: temporary ones are never listed.
            auto_created: false,
            config,
            created_at: now,
            mount: extras.mount.clone(),
            ttl: extras.ttl.unwrap_or(self.ttl),
            book: Mutex::new(Book {
                status: Status::Initializing,
                data: Value::Null,
                last_activity: now,
                expires: Instant::now() + self.ttl,
                expires_at: now + chrono::Duration::from_std(self.ttl).unwrap_or_default(),
                busy: 0,
            }),
            instance: Arc::new(tokio::sync::Mutex::new(None)),
            scratch: Mutex::new(None),
            parked: Mutex::new(None),
            pause_on_timeout: extras.pause_on_timeout,
        })
    }

    /// The session of (caller, rt), or a new one registered in `initializing` state whose
    /// instance lock the caller now holds. `max` is the tenant's session quota, checked
    /// under the same lock as the insertion.
    pub fn get_or_create(
        &self,
        caller: &Caller,
        rt: &str,
        config: Value,
        custom: Option<&str>,
        max: Option<usize>,
        extras: &Extras,
    ) -> Lookup {
        let mut table = self.table();
        if let Some(existing) = table.workers.get(caller).and_then(|m| m.get(rt)) {
            return Lookup::Existing(existing.clone());
        }
        let live = table.per_tenant.get(&caller.tenant).copied().unwrap_or(0);
        if let Some(max) = max
            && live >= max
        {
            return Lookup::QuotaExceeded(max);
        }
        *table.per_tenant.entry(caller.tenant.clone()).or_insert(0) += 1;
        let (name, id) = match &extras.identity {
            Some(identity) => identity.clone(),
            None => Self::next_name(&mut table, caller, rt, custom),
        };
        let session = self.new_session(caller, rt, name, id, config, extras);
        let slot = match session.instance.clone().try_lock_owned() {
            Ok(slot) => slot,
            Err(_) => unreachable!("a new mutex is unlocked"),
        };
        table.workers.entry(caller.clone()).or_default().insert(rt.to_string(), session.clone());
        Lookup::Created(Fresh { session, slot })
    }

    /// The session of (caller, rt).
    pub fn get(&self, caller: &Caller, rt: &str) -> Option<Arc<Session>> {
        self.table().workers.get(caller).and_then(|m| m.get(rt)).cloned()
    }

    /// Removes and returns the session of (caller, rt). The worker stays known.
    pub fn remove(&self, caller: &Caller, rt: &str) -> Option<Arc<Session>> {
        let mut table = self.table();
        let removed = table.workers.get_mut(caller).and_then(|m| m.remove(rt));
        if let Some(s) = &removed {
            table.forget(s);
        }
        removed
    }

    /// Removes the given session if it is still the one registered for its key.
    pub fn remove_exact(&self, session: &Arc<Session>) -> bool {
        let mut table = self.table();
        let Some(map) = table.workers.get_mut(&session.caller) else {
            return false;
        };
        if map.get(&session.resource_type).is_some_and(|s| Arc::ptr_eq(s, session)) {
            map.remove(&session.resource_type);
            table.forget(session);
            return true;
        }
        false
    }

    /// Removes a worker and returns its sessions.
    pub fn remove_worker(&self, caller: &Caller) -> Vec<Arc<Session>> {
        let mut table = self.table();
        let removed: Vec<Arc<Session>> =
            table.workers.remove(caller).map(|m| m.into_values().collect()).unwrap_or_default();
        removed.iter().for_each(|s| table.forget(s));
        removed
    }

    /// The sessions of a worker, by resource type.
    pub fn list(&self, caller: &Caller) -> Vec<Arc<Session>> {
        self.table().workers.get(caller).map(|m| m.values().cloned().collect()).unwrap_or_default()
    }

    /// The workers of `tenant` whose id starts with `prefix`, with their sessions.
    pub fn workers_of(&self, tenant: &str, prefix: &str) -> Vec<(Caller, Vec<Arc<Session>>)> {
        self.table()
            .workers
            .iter()
            .filter(|(c, _)| &*c.tenant == tenant && c.worker_id.starts_with(prefix))
            .map(|(c, m)| (c.clone(), m.values().cloned().collect()))
            .collect()
    }

    /// Whether the worker is known (it has or had sessions and has not disconnected).
    pub fn knows_worker(&self, caller: &Caller) -> bool {
        self.table().workers.contains_key(caller)
    }

    /// Removes and returns every expired session that has no call in progress; with
    /// `pausing`, live sessions that asked to be paused at their TTL are returned in the second
    /// list and stay registered.
    pub fn take_expired(&self, pausing: bool) -> (Vec<Arc<Session>>, Vec<Arc<Session>>) {
        let now = Instant::now();
        let mut table = self.table();
        let mut expired = Vec::new();
        let mut to_pause = Vec::new();
        let table = &mut *table;
        for map in table.workers.values_mut() {
            map.retain(|_, s| {
                if s.expired(now) {
                    if pausing && s.pause_on_timeout && s.parked().is_none() {
                        // Not again until the pause has parked it (or failed).
                        s.book().expires = now + Duration::from_secs(3600);
                        to_pause.push(s.clone());
                        return true;
                    }
                    expired.push(s.clone());
                    false
                } else {
                    true
                }
            });
        }
        expired.iter().for_each(|s| table.forget(s));
        (expired, to_pause)
    }

    /// Drops the session counters of a worker that has no sessions left.
    pub fn forget_counters(&self, caller: &Caller) {
        let mut table = self.table();
        if table.workers.get(caller).is_none_or(|m| m.is_empty()) {
            table.workers.remove(caller);
            table.counters.retain(|(c, _), _| c != caller);
        }
    }

    /// Removes and returns every session of every worker, and forgets the workers.
    pub fn drain(&self) -> Vec<Arc<Session>> {
        let mut table = self.table();
        table.per_tenant.clear();
        table.workers.drain().flat_map(|(_, m)| m.into_values()).collect()
    }

    /// Live sessions by (tenant, resource type).
    pub fn by_tenant_and_type(&self) -> Vec<((String, String), usize)> {
        let table = self.table();
        let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
        for (caller, map) in &table.workers {
            for rt in map.keys() {
                *counts.entry((caller.tenant.to_string(), rt.clone())).or_insert(0) += 1;
            }
        }
        counts.into_iter().collect()
    }

    /// (known workers, live sessions).
    pub fn counts(&self) -> (usize, usize) {
        let table = self.table();
        (table.workers.len(), table.workers.values().map(BTreeMap::len).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_agentflow() {
        assert_eq!(safe_worker("e2e worker!"), "e2e-worker");
        assert_eq!(safe_worker("!!!"), "worker");
        assert_eq!(safe_worker(&"x".repeat(40)).len(), 32);
        assert_eq!(safe_custom("my run").as_deref(), Some("my-run"));
        assert_eq!(safe_custom("__"), None);
        let sessions = Sessions::new(Duration::from_secs(5));
        let caller = Caller::new("w2");
        let (n1, _) = sessions.temporary_name(&caller, "kv");
        let (n2, id2) = sessions.temporary_name(&caller, "kv");
        assert_eq!(n1, "kv_w2_001");
        assert_eq!(n2, "kv_w2_002");
        assert!(id2.starts_with("kv_w2_002_") && id2.len() == "kv_w2_002_".len() + 8);
    }

    #[test]
    fn a_retired_worker_leaves_no_counters_but_a_live_one_keeps_them() {
        let sessions = Sessions::new(Duration::from_secs(5));
        let (gone, live) = (Caller::new("sbx-1-a"), Caller::new("w"));
        sessions.temporary_name(&gone, "python");
        let Lookup::Created(_fresh) = sessions.get_or_create(&live, "kv", Value::Null, None, None, &Extras::default())
        else {
            panic!("a new session")
        };
        sessions.forget_counters(&gone);
        sessions.forget_counters(&live);
        let table = sessions.table();
        assert!(!table.counters.keys().any(|(c, _)| *c == gone), "the retired worker's counter stayed");
        assert!(table.counters.keys().any(|(c, _)| *c == live), "a worker with a session lost its counter");
    }
}
