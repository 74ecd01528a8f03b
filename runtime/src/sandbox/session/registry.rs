//! The registry of sessions: one per (tenant, worker, resource type), AgentFlow's names and
//! counters, the session quota, and the reaper's view of what expired.

use super::*;

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
            checkpoint: Mutex::new(None),
            claimed: std::sync::atomic::AtomicBool::new(false),
            dirty: std::sync::atomic::AtomicBool::new(true),
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

    /// Whether the worker holds a session.
    pub fn has_any(&self, caller: &Caller) -> bool {
        self.table().workers.get(caller).is_some_and(|m| !m.is_empty())
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

    /// Every session of every worker.
    pub fn all(&self) -> Vec<Arc<Session>> {
        self.table().workers.values().flat_map(|m| m.values().cloned()).collect()
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
