//! Sandboxes: the unit E2B's and Scalebox's SDKs work in (ARCHITECTURE.md, "Sandboxes").
//!
//! A sandbox is a tenant-owned group of ordinary Cella sessions, one per code context (a
//! Python or JavaScript interpreter with its own namespace), that share one files directory
//! mounted at the sandbox's home. It has an id, an access token for its in-sandbox routes, a
//! timeout after which the reaper ends it unless it was renewed, metadata and environment
//! variables. Each context is a worker of the sandbox's tenant (`sbx-<sandbox>-<context>`),
//! so the tenant's session quota counts contexts and a context's calls are serialised like
//! any session's. This layer sits on the [`Sandbox`] facade and never sees HTTP; the doors
//! translate their protocols onto it.

mod cluster;
mod commands;
mod context;
mod durable;
mod files;
mod fork;
mod metadata;
mod processes;
mod shell;
mod snapshots;

use crate::codes;
use crate::config::SandboxesConfig;
use crate::sandbox::Sandbox;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

pub use cluster::Located;
pub use commands::{CommandResult, OFFERED};
pub use context::{CellError, CellResult, Context, Language, by_line};
pub use files::{Entry, Files, Kind};
pub use processes::{Ended, MAX_PROCESSES, Process, ProcessEvent, ProcessSpec};

/// Why a sandbox operation failed; each door maps these onto its protocol's errors.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SbxError {
    /// No such sandbox, context or file (or not the caller's).
    #[error("{0}")]
    NotFound(String),
    /// The request cannot be done as asked.
    #[error("{0}")]
    Invalid(String),
    /// The thing to make exists already.
    #[error("{0}")]
    Exists(String),
    /// The in-sandbox access token is missing or wrong.
    #[error("{0}")]
    Denied(String),
    /// A quota (sandboxes, sessions, files) is reached.
    #[error("{0}")]
    Quota(String),
    /// The facade refused, with its code (capacity, shutting down, forbidden resource).
    #[error("{message}")]
    Refused {
        /// The Cella code.
        code: i32,
        /// Why.
        message: String,
    },
    /// A file operation failed on the host.
    #[error("{0}")]
    Io(String),
}

/// A timeout a client asked for, in seconds: positive.
pub fn timeout_s(asked: i64) -> Result<u64, SbxError> {
    u64::try_from(asked)
        .ok()
        .filter(|t| *t > 0)
        .ok_or_else(|| SbxError::Invalid(format!("timeout must be a positive number of seconds, not {asked}")))
}

/// What a new sandbox is made of.
#[derive(Debug, Clone, Default)]
pub struct SandboxSpec {
    /// The template the client asked for (recorded; every template is the code interpreter).
    pub template: String,
    /// Seconds until it ends, unless renewed; the server's default when absent.
    pub timeout_s: Option<u64>,
    /// The client's labels.
    pub metadata: BTreeMap<String, String>,
    /// Environment variables every cell sees.
    pub env: BTreeMap<String, String>,
    /// Where code sees the files: `/home/user` (E2B) or `/workspace` (Scalebox).
    pub home: String,
}

/// One sandbox.
pub struct Sbx {
    /// Its id.
    pub id: String,
    /// The tenant that owns it.
    pub tenant: Arc<str>,
    /// The template asked for.
    pub template: String,
    /// The token its in-sandbox routes require.
    pub token: String,
    /// The client's labels.
    pub metadata: BTreeMap<String, String>,
    /// Environment variables every cell sees.
    pub env: BTreeMap<String, String>,
    /// When it was created.
    pub started_at: DateTime<Utc>,
    end_at: Mutex<DateTime<Utc>>,
    /// Its files.
    pub files: Files,
    contexts: Mutex<Vec<Arc<Context>>>,
    /// Packages `pip install` (the command) put in every Python context.
    packages: Mutex<Vec<String>>,
    ended: AtomicBool,
    /// Paused: its sessions are snapshotted and their instances freed.
    paused: AtomicBool,
    /// Its command lines, running.
    processes: Mutex<processes::Processes>,
    /// One write of its record in the snapshot store at a time ([`durable`]).
    kept: tokio::sync::Mutex<()>,
    /// Whether the store holds a copy of its files.
    files_stored: AtomicBool,
    /// A request reached it since its files were last copied at a checkpoint.
    touched: AtomicBool,
}

impl Sbx {
    /// A sandbox as `spec` says (its timeout aside: it ends at `end`), running, without
    /// contexts.
    fn new(
        id: String,
        tenant: Arc<str>,
        token: String,
        spec: SandboxSpec,
        started_at: DateTime<Utc>,
        end: DateTime<Utc>,
        files: Files,
    ) -> Sbx {
        Sbx {
            id,
            tenant,
            template: spec.template,
            token,
            metadata: spec.metadata,
            env: spec.env,
            started_at,
            end_at: Mutex::new(end),
            files,
            contexts: Mutex::new(Vec::new()),
            packages: Mutex::new(Vec::new()),
            ended: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            processes: Mutex::default(),
            kept: tokio::sync::Mutex::new(()),
            files_stored: AtomicBool::new(false),
            touched: AtomicBool::new(true),
        }
    }

    /// When it ends unless renewed.
    pub fn end_at(&self) -> DateTime<Utc> {
        *self.end_at.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether it is paused.
    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    /// Whether it was killed or reaped.
    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    fn contexts(&self) -> MutexGuard<'_, Vec<Arc<Context>>> {
        self.contexts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn packages(&self) -> MutexGuard<'_, Vec<String>> {
        self.packages.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Compares a presented token with the sandbox's, in time independent of where they differ.
    fn token_matches(&self, presented: &str) -> bool {
        let (a, b) = (token_key(presented), token_key(&self.token));
        a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// The key a token is found by: its sha256 (a lookup by the secret itself could leak it
/// through timing; its hash cannot).
fn token_key(token: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes()).into()
}

struct Inner {
    boxes: Mutex<HashMap<String, Arc<Sbx>>>,
    /// Sandbox ids by their token's key.
    by_token: Mutex<HashMap<[u8; 32], String>>,
    config: SandboxesConfig,
    root: std::path::PathBuf,
    /// One takeover at a time ([`cluster`]).
    taking: tokio::sync::Mutex<()>,
}

/// The sandboxes of a server, over its facade.
#[derive(Clone)]
pub struct Sandboxes {
    sandbox: Sandbox,
    inner: Arc<Inner>,
}

/// How often the reaper looks for sandboxes past their end.
const REAP_EVERY: Duration = Duration::from_millis(500);

impl Sandboxes {
    /// The sandboxes of `sandbox`'s server; starts their reaper (it stops when the last
    /// handle is dropped). Call inside a Tokio runtime.
    pub fn new(sandbox: Sandbox) -> Sandboxes {
        let config = sandbox.config().server.sandboxes.clone();
        let root = sandbox.state_dir("sandboxes");
        let inner = Arc::new(Inner {
            boxes: Mutex::new(HashMap::new()),
            by_token: Mutex::new(HashMap::new()),
            config,
            root,
            taking: tokio::sync::Mutex::new(()),
        });
        let this = Sandboxes { sandbox, inner };
        tokio::spawn(reap(Arc::downgrade(&this.inner), this.sandbox.clone()));
        if let Some(every) = this.file_checkpoints() {
            tokio::spawn(durable::checkpoint_files(Arc::downgrade(&this.inner), this.sandbox.clone(), every));
        }
        this
    }

    fn boxes(&self) -> MutexGuard<'_, HashMap<String, Arc<Sbx>>> {
        self.inner.boxes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn by_token(&self) -> MutexGuard<'_, HashMap<[u8; 32], String>> {
        self.inner.by_token.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The facade the sandboxes run on.
    pub fn facade(&self) -> &Sandbox {
        &self.sandbox
    }

    /// The timeout a request gets: the server's default when absent, cut to its maximum.
    fn timeout(&self, asked: Option<u64>) -> Duration {
        let c = &self.inner.config;
        Duration::from_secs(asked.unwrap_or(c.default_timeout_s).min(c.max_timeout_s))
    }

    /// Creates a sandbox for `tenant`. Its contexts start on first use.
    pub async fn create(&self, tenant: &Arc<str>, spec: SandboxSpec) -> Result<Arc<Sbx>, SbxError> {
        if let Some(max) = self.sandbox.tenancy().max_sessions(tenant) {
            let held = self.boxes().values().filter(|b| b.tenant == *tenant).count();
            if held >= max {
                return Err(SbxError::Quota(format!(
                    "tenant '{tenant}' holds {held} sandboxes, its quota of live sessions is {max}"
                )));
            }
        }
        let id = uuid::Uuid::new_v4().simple().to_string()[..20].to_string();
        let files = Files::create(self.inner.root.join(&id), &spec.home, self.inner.config.files_quota_mb)
            .map_err(|e| SbxError::Io(format!("cannot make the sandbox's files directory: {e}")))?;
        let now = Utc::now();
        let end = now + chrono::Duration::from_std(self.timeout(spec.timeout_s)).unwrap_or_default();
        let token = uuid::Uuid::new_v4().simple().to_string();
        let sbx = Arc::new(Sbx::new(id.clone(), tenant.clone(), token, spec, now, end, files));
        self.boxes().insert(id.clone(), sbx.clone());
        self.by_token().insert(token_key(&sbx.token), id.clone());
        // In a cluster, this node owns it before any other node can be asked for it.
        self.own(&sbx).await;
        self.remember_later(&sbx);
        tracing::info!(tenant = %tenant, sandbox_id = %id, "sandbox created");
        Ok(sbx)
    }

    /// The tenant's sandbox `id`; another tenant's is not found.
    pub fn get(&self, tenant: &str, id: &str) -> Result<Arc<Sbx>, SbxError> {
        self.boxes()
            .get(id)
            .filter(|b| &*b.tenant == tenant && !b.ended())
            .inspect(|b| b.touched.store(true, Ordering::Relaxed))
            .cloned()
            .ok_or_else(|| SbxError::NotFound(format!("sandbox '{id}' not found (it ended, or never existed)")))
    }

    /// Sandbox `id` for an in-sandbox route that presents `token`.
    pub fn enter(&self, id: &str, token: Option<&str>) -> Result<Arc<Sbx>, SbxError> {
        let sbx = self.boxes().get(id).filter(|b| !b.ended()).cloned();
        let sbx =
            sbx.ok_or_else(|| SbxError::NotFound(format!("sandbox '{id}' not found (it ended, or never existed)")))?;
        match token {
            Some(t) if sbx.token_matches(t) => {
                sbx.touched.store(true, Ordering::Relaxed);
                Ok(sbx)
            }
            Some(_) => Err(SbxError::Denied(format!("the access token is not sandbox '{id}''s"))),
            None => Err(SbxError::Denied(format!("sandbox '{id}' needs its access token (X-Access-Token)"))),
        }
    }

    /// The sandbox whose access token is `token`, for clients that present only the token
    /// (Scalebox's file routes).
    pub fn enter_by_token(&self, token: Option<&str>) -> Result<Arc<Sbx>, SbxError> {
        let token =
            token.ok_or_else(|| SbxError::Denied("the sandbox's access token (X-Access-Token) is required".into()))?;
        let id = self.by_token().get(&token_key(token)).cloned();
        let found = id.and_then(|id| self.boxes().get(&id).filter(|b| !b.ended()).cloned());
        if let Some(sbx) = &found {
            sbx.touched.store(true, Ordering::Relaxed);
        }
        found.ok_or_else(|| SbxError::Denied("no running sandbox has this access token".into()))
    }

    /// Sandbox `id` without a token (health probes answer whether it runs, nothing more):
    /// a paused one does not run until it is resumed.
    pub fn running(&self, id: &str) -> bool {
        self.boxes().get(id).is_some_and(|b| !b.ended() && !b.paused())
    }

    /// The tenant's sandboxes, oldest first.
    pub fn list(&self, tenant: &str) -> Vec<Arc<Sbx>> {
        let mut all: Vec<Arc<Sbx>> =
            self.boxes().values().filter(|b| &*b.tenant == tenant && !b.ended()).cloned().collect();
        all.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
        all
    }

    /// Ends the sandbox `timeout_s` from now (cut to the server's maximum), and renews its
    /// contexts so that none expires before.
    pub fn set_timeout(&self, sbx: &Sbx, timeout_s: u64) {
        let end = Utc::now() + chrono::Duration::from_std(self.timeout(Some(timeout_s))).unwrap_or_default();
        *sbx.end_at.lock().unwrap_or_else(|p| p.into_inner()) = end;
        for ctx in sbx.contexts().iter() {
            let _ = self.sandbox.refresh_sessions(&ctx.caller, None);
        }
        let found = self.boxes().get(&sbx.id).cloned();
        if let Some(sbx) = found {
            self.remember_later(&sbx);
        }
    }

    /// Renews the sandbox to end `timeout_s` from now unless it already ends later
    /// (connecting never shortens a sandbox's life).
    pub fn renew_at_least(&self, sbx: &Sbx, timeout_s: u64) {
        let until = Utc::now() + chrono::Duration::from_std(self.timeout(Some(timeout_s))).unwrap_or_default();
        if until > sbx.end_at() {
            self.set_timeout(sbx, timeout_s);
        }
    }

    /// Ends the tenant's sandbox `id`; false when there was none.
    pub async fn kill(&self, tenant: &str, id: &str) -> bool {
        match self.get(tenant, id) {
            Ok(sbx) => {
                self.end(&sbx).await;
                true
            }
            Err(_) => false,
        }
    }

    /// Pauses a sandbox: every context's session is snapshotted and its instance freed; the
    /// sandbox does not time out while paused. Its files stay where they are.
    pub async fn pause(&self, sbx: &Sbx) -> Result<(), SbxError> {
        let contexts: Vec<Arc<Context>> = sbx.contexts().clone();
        for ctx in contexts {
            match self.sandbox.pause_session(&ctx.caller, ctx.language.name()).await {
                // A context whose interpreter never started has nothing to pause.
                Ok(_) => {}
                Err(r) if r.code == codes::RESOURCE_NOT_INITIALIZED => {}
                Err(r) => return Err(SbxError::Refused { code: r.code, message: r.message }),
            }
        }
        sbx.paused.store(true, Ordering::Release);
        // Its files and record in the store: a paused sandbox outlives a crash too.
        self.remember(sbx, true, false).await;
        tracing::info!(tenant = %sbx.tenant, sandbox_id = %sbx.id, "sandbox paused");
        Ok(())
    }

    /// Resumes a paused sandbox (its sessions are restored) and renews its timeout; a running
    /// one is left as it is.
    pub async fn resume(&self, sbx: &Sbx, timeout_s: Option<u64>) -> Result<(), SbxError> {
        if sbx.paused() {
            let contexts: Vec<Arc<Context>> = sbx.contexts().clone();
            for ctx in contexts {
                match self.sandbox.resume_session(&ctx.caller, ctx.language.name()).await {
                    Ok(_) => {}
                    Err(r) if r.code == codes::RESOURCE_NOT_INITIALIZED => {}
                    Err(r) => return Err(SbxError::Refused { code: r.code, message: r.message }),
                }
            }
            sbx.paused.store(false, Ordering::Release);
            self.remember(sbx, false, false).await;
            tracing::info!(tenant = %sbx.tenant, sandbox_id = %sbx.id, "sandbox resumed");
        }
        self.renew_at_least(sbx, timeout_s.unwrap_or(self.inner.config.default_timeout_s));
        Ok(())
    }

    /// Ends a sandbox: its contexts' sessions end (cleanup runs), its files are removed.
    async fn end(&self, sbx: &Arc<Sbx>) {
        if sbx.ended.swap(true, Ordering::AcqRel) {
            return;
        }
        self.boxes().remove(&sbx.id);
        self.by_token().remove(&token_key(&sbx.token));
        sbx.kill_processes();
        let contexts: Vec<Arc<Context>> = std::mem::take(&mut *sbx.contexts());
        for ctx in contexts {
            self.sandbox.retire(&ctx.caller).await;
        }
        let dir = sbx.files.host.clone();
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
        self.forget(sbx).await;
        tracing::info!(tenant = %sbx.tenant, sandbox_id = %sbx.id, "sandbox ended");
    }

    /// Ends every sandbox (the server stops).
    pub async fn end_all(&self) -> usize {
        let all: Vec<Arc<Sbx>> = self.boxes().values().cloned().collect();
        for sbx in &all {
            self.end(sbx).await;
        }
        all.len()
    }
}

/// Ends sandboxes past their end, until the sandboxes are dropped.
async fn reap(inner: Weak<Inner>, sandbox: Sandbox) {
    let mut tick = tokio::time::interval(REAP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(strong) = inner.upgrade() else { return };
        let now = Utc::now();
        let due: Vec<Arc<Sbx>> = {
            let boxes = strong.boxes.lock().unwrap_or_else(|p| p.into_inner());
            boxes.values().filter(|b| b.end_at() <= now && !b.paused()).cloned().collect()
        };
        if due.is_empty() {
            continue;
        }
        let this = Sandboxes { sandbox: sandbox.clone(), inner: strong };
        for sbx in due {
            tracing::info!(tenant = %sbx.tenant, sandbox_id = %sbx.id, "sandbox timed out");
            this.end(&sbx).await;
        }
    }
}
