//! A loaded backend: its component (compiled once, cached on disk), its `InstancePre`s
//! (cold and warm), its manifest, and its warm state (loaded → warm → shut down).

use crate::config::{Config, Limits, ResourceConfig};
use crate::engine::bindings::BackendPre;
use crate::engine::cache::{ComponentCache, Origin};
use crate::engine::fault::Fault;
use crate::engine::host::{HostState, Tags};
use crate::engine::instance::{CallError, Instance};
use crate::engine::tools::ToolSpec;
use crate::engine::warm;
use crate::error::{Error, Result};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use wasmtime::component::Linker;
use wasmtime::{Engine, Store, UpdateDeadline};

/// How long after a failed warmup the next use of the backend tries again.
const WARMUP_RETRY_AFTER: Duration = Duration::from_secs(5);

/// What every backend shares: the engine, the linker and the cache.
pub struct Shared {
    /// The engine.
    pub engine: Engine,
    /// The engine settings fingerprint (part of cache keys).
    pub fingerprint: String,
    /// WASI p2 and the `host` interface, linked once.
    pub linker: Linker<HostState>,
    /// The on-disk cache.
    pub cache: ComponentCache,
    /// Server-wide limits.
    pub limits: Limits,
    /// Metrics.
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
}

impl Shared {
    /// Links WASI p2 (granting nothing by itself) and the `host` interface.
    pub fn new(engine: Engine, fingerprint: String, cache: ComponentCache, limits: Limits) -> Result<Shared> {
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| Error::Engine(format!("linking WASI: {e}")))?;
        crate::engine::bindings::Backend::add_to_linker::<HostState, wasmtime::component::HasSelf<HostState>>(
            &mut linker,
            |s| s,
        )
        .map_err(|e| Error::Engine(format!("linking the host interface: {e}")))?;
        Ok(Shared { engine, fingerprint, linker, cache, limits, metrics: Default::default() })
    }
}

/// Where the warm state of a backend stands.
pub enum WarmState {
    /// Loaded, not warmed yet.
    Cold,
    /// Warm: every instance starts from the snapshot image.
    Snapshot {
        /// The warm image, pre-linked.
        pre: BackendPre<HostState>,
        /// The image's cache key: the component, its config and grants, and the engine's
        /// settings. A session snapshot restores only into the image it was taken from.
        key: String,
        /// Whether the image came from the cache or was built now.
        origin: Origin,
        /// The preopened directories its guest holds, handed to each new instance.
        preopens: u32,
    },
    /// Warm without an image: warmup runs in every new instance.
    PerInstance {
        /// Why there is no image.
        reason: String,
    },
    /// The last warmup failed; instances start cold until a retry succeeds.
    Failed {
        /// What went wrong.
        error: String,
        /// When.
        at: Instant,
    },
}

/// A backend's warm state, as reported by warmup status.
#[derive(Debug, Clone, Serialize)]
pub struct WarmReport {
    /// Always true for a backend in the registry.
    pub loaded: bool,
    /// Whether warmup succeeded.
    pub warmed_up: bool,
    /// `cold`, `snapshot`, `per_instance` or `failed`.
    pub mode: &'static str,
    /// For a snapshot: `cached` or `compiled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<Origin>,
    /// Why there is no image, or why warmup failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How many times this process ran the guest's `warmup`.
    pub warmup_runs: u64,
    /// Whether the compiled component came from the cache.
    pub component: Origin,
}

/// A loaded backend.
pub struct Backend {
    /// The resource type (the config key).
    pub name: Arc<str>,
    /// The name the component gives itself (its tools are `<guest_name>:<action>`).
    pub guest_name: String,
    /// The component's description.
    pub description: String,
    /// The component's version.
    pub version: String,
    /// The tools, named with the resource type.
    pub tools: Vec<ToolSpec>,
    /// The resource's configuration.
    pub resource: ResourceConfig,
    /// Where relative grant paths resolve.
    pub base_dir: PathBuf,
    /// The component file.
    pub path: PathBuf,
    /// sha256 of the component bytes.
    pub sha256: String,
    /// Whether the compiled component came from the cache.
    pub origin: Origin,
    shared: Arc<Shared>,
    /// The component without warmup, pre-linked.
    cold: BackendPre<HostState>,
    /// The warm state; read on every instantiation, written only when warming.
    warm: RwLock<Arc<WarmState>>,
    /// Serialises warming so warmup runs once however many callers wait for it.
    warming: tokio::sync::Mutex<()>,
    /// How many times this process ran the guest's `warmup`.
    warmup_runs: AtomicU64,
    /// The warm image's page hashes, which session snapshots are taken against; made on the
    /// first snapshot.
    pub(crate) baseline: tokio::sync::Mutex<Option<(String, Arc<crate::engine::snapshot::Baseline>)>>,
}

impl Backend {
    /// Loads, compiles (or loads from the cache) and describes the component of `name`.
    pub async fn load(name: &str, resource: &ResourceConfig, config: &Config, shared: Arc<Shared>) -> Result<Backend> {
        let path = config.component_path(name, resource)?;
        let pinned = resource.sha256.is_some();
        let mut source = super::source::open(&path, &shared.cache, pinned).map_err(|e| Error::load(name, e))?;
        let sha256 = source.sha256.clone();
        if let Some(pinned) = &resource.sha256 {
            let pinned = pinned.strip_prefix("sha256:").unwrap_or(pinned).to_ascii_lowercase();
            if pinned != sha256 {
                return Err(Error::load(
                    name,
                    format!(
                        "{} does not match its pinned sha256 (expected {pinned}, found {sha256}); refusing to load it",
                        path.display()
                    ),
                ));
            }
        }
        let key = ComponentCache::key("component", &[&sha256, &shared.fingerprint]);
        let (component, origin) = shared
            .cache
            .load_or_compile(&shared.engine, &key, || match source.bytes.take() {
                Some(bytes) => Ok(bytes),
                None => super::source::read_again(&path, &sha256).map_err(wasmtime::Error::msg),
            })
            .map_err(|e| Error::load(name, format!("{} is not a valid component: {e:#}", path.display())))?;
        shared.metrics.cache("component", origin == Origin::Cached);
        let cold = instantiate_pre(name, &shared, &component)?;

        let mut backend = Backend {
            name: name.into(),
            guest_name: String::new(),
            description: String::new(),
            version: String::new(),
            tools: Vec::new(),
            resource: resource.clone(),
            base_dir: config.base_dir.clone(),
            path,
            sha256,
            origin,
            shared,
            cold,
            warm: RwLock::new(Arc::new(WarmState::Cold)),
            warming: tokio::sync::Mutex::new(()),
            warmup_runs: AtomicU64::new(0),
            baseline: tokio::sync::Mutex::new(None),
        };
        let mut instance =
            backend.new_instance(&backend.cold, Tags::default()).await.map_err(|f| Error::load(name, f))?;
        let manifest = instance
            .describe(backend.timeout())
            .await
            .map_err(|f| Error::load(name, format!("describe failed: {f}")))?;
        backend.guest_name = manifest.name.clone();
        backend.description = manifest.description;
        backend.version = manifest.version;
        backend.tools = ToolSpec::from_manifest(name, &manifest.name, &backend.description, manifest.tools)
            .map_err(|m| Error::load(name, m))?;
        Ok(backend)
    }

    /// The server's call deadline.
    pub fn timeout(&self) -> Duration {
        crate::config::seconds(self.shared.limits.call_timeout_s)
    }

    fn warmup_timeout(&self) -> Duration {
        crate::config::seconds(self.shared.limits.warmup_timeout_s)
    }

    /// The current warm state.
    pub fn warm_state(&self) -> Arc<WarmState> {
        match self.warm.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set_warm_state(&self, state: WarmState) {
        match self.warm.write() {
            Ok(mut guard) => *guard = Arc::new(state),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(state),
        }
    }

    /// How many times this process ran the guest's `warmup`.
    pub fn warmup_runs(&self) -> u64 {
        self.warmup_runs.load(Ordering::Relaxed)
    }

    /// The warm state as reported by warmup status.
    pub fn report(&self) -> WarmReport {
        let state = self.warm_state();
        let (warmed_up, mode, image, reason) = match &*state {
            WarmState::Cold => (false, "cold", None, None),
            WarmState::Snapshot { origin, .. } => (true, "snapshot", Some(*origin), None),
            WarmState::PerInstance { reason } => (true, "per_instance", None, Some(reason.clone())),
            WarmState::Failed { error, .. } => (false, "failed", None, Some(error.clone())),
        };
        WarmReport {
            loaded: true,
            warmed_up,
            mode,
            image,
            reason,
            warmup_runs: self.warmup_runs(),
            component: self.origin,
        }
    }

    /// Warms the backend if it is not warm (S-2, S-11): builds or loads its warm image, or
    /// falls back to warmup per instance. Runs once however many callers ask at once.
    /// A failed warmup is retried by `force`, or by a later use after a pause.
    pub async fn warm_up(&self, force: bool) -> std::result::Result<(), String> {
        if let Some(result) = self.settled(force) {
            return result;
        }
        let _guard = self.warming.lock().await;
        if let Some(result) = self.settled(force) {
            return result;
        }
        let started = Instant::now();
        let state = self.build_warm_state().await;
        let result = match &state {
            WarmState::Failed { error, .. } => Err(error.clone()),
            _ => Ok(()),
        };
        match &state {
            WarmState::Snapshot { origin, .. } => {
                tracing::info!(backend = %self.name, image = ?origin, elapsed_ms = started.elapsed().as_millis() as u64, "backend warm (snapshot image)")
            }
            WarmState::PerInstance { reason } => {
                tracing::warn!(backend = %self.name, %reason, "backend warm without an image: warmup runs in every instance")
            }
            WarmState::Failed { error, .. } => {
                tracing::error!(backend = %self.name, %error, "warmup failed")
            }
            WarmState::Cold => {}
        }
        self.set_warm_state(state);
        result
    }

    /// `Some(result)` when warming now would be pointless: already warm, or failed recently.
    fn settled(&self, force: bool) -> Option<std::result::Result<(), String>> {
        match &*self.warm_state() {
            WarmState::Snapshot { .. } | WarmState::PerInstance { .. } => Some(Ok(())),
            WarmState::Failed { error, at } if !force && at.elapsed() < WARMUP_RETRY_AFTER => Some(Err(error.clone())),
            _ => None,
        }
    }

    async fn build_warm_state(&self) -> WarmState {
        let config = self.resource.config.to_string();
        if !self.resource.warm_image {
            return self.per_instance_probe(&config, "warm_image is off for this resource".into()).await;
        }
        let key = ComponentCache::key(
            "warm",
            &[
                &self.sha256,
                &config,
                &warm::grants_fingerprint(&self.resource.grants, &self.base_dir),
                &self.shared.fingerprint,
                // Images carry the snapshot accessors (engine::access) since this version;
                // access-3 refuses them to modules whose code can change a table; access-4 replays stdio.
                "access-4",
            ],
        );
        // One build per image even when several sandboxes of one process start at once.
        let _building = self.shared.cache.lock_async(&key).await;
        if let Some(component) = self.shared.cache.get(&self.shared.engine, &key) {
            match instantiate_pre(&self.name, &self.shared, &component) {
                Ok(pre) => {
                    let preopens = super::preopens::load_count(&self.shared.cache, &key);
                    return WarmState::Snapshot { pre, key, origin: Origin::Cached, preopens };
                }
                Err(e) => {
                    tracing::warn!(backend = %self.name, error = %e, "cached warm image unusable; rebuilding")
                }
            }
        }
        let mut store = match self.new_store(Tags { backend: self.name.clone(), ..Tags::default() }) {
            Ok(s) => s,
            Err(f) => {
                return WarmState::Failed { error: f.to_string(), at: Instant::now() };
            }
        };
        if self.shared.limits.fuel.is_some() {
            // Warmup is bounded by its deadline, not by the per-call budget.
            let _ = store.set_fuel(u64::MAX);
        }
        self.shared.metrics.cache("warm_image", false);
        tracing::info!(
            backend = %self.name,
            component_mb = std::fs::metadata(&self.path).map_or(0, |m| m.len() / 1_000_000),
            "building the warm image (compile, warmup, snapshot, compile again: minutes for a large interpreter, once per cache)"
        );
        self.warmup_runs.fetch_add(1, Ordering::Relaxed);
        let wasm = match super::source::read_again(&self.path, &self.sha256) {
            Ok(wasm) => wasm,
            Err(error) => return WarmState::Failed { error, at: Instant::now() },
        };
        match warm::snapshot(store, &self.shared.linker, &wasm, &config, self.warmup_timeout()).await {
            Ok(image) => {
                let wasm = instrumented(&self.name, image.wasm);
                match self.shared.cache.compile_and_store(&self.shared.engine, &key, &wasm) {
                    Ok(component) => match instantiate_pre(&self.name, &self.shared, &component) {
                        Ok(pre) => {
                            super::preopens::save_count(&self.shared.cache, &key, image.preopens);
                            WarmState::Snapshot { pre, key, origin: Origin::Compiled, preopens: image.preopens }
                        }
                        Err(e) => self.per_instance_probe(&config, format!("the warm image does not link: {e}")).await,
                    },
                    Err(e) => self.per_instance_probe(&config, format!("the warm image does not compile: {e:#}")).await,
                }
            }
            Err(warm::SnapshotError::Guest(message)) => WarmState::Failed { error: message, at: Instant::now() },
            Err(warm::SnapshotError::Unsupported(reason)) => {
                self.warmup_runs.fetch_sub(1, Ordering::Relaxed);
                self.per_instance_probe(&config, format!("cannot snapshot warmup: {reason}")).await
            }
        }
    }

    /// Runs warmup once in a cold instance to check it works, for the per-instance mode.
    async fn per_instance_probe(&self, config: &String, reason: String) -> WarmState {
        let result = async {
            let mut instance = self
                .new_instance(&self.cold, Tags { backend: self.name.clone(), ..Tags::default() })
                .await
                .map_err(|f| f.to_string())?;
            self.warmup_runs.fetch_add(1, Ordering::Relaxed);
            instance.warmup(config, self.warmup_timeout()).await.map_err(warmup_error)
        }
        .await;
        match result {
            Ok(()) => WarmState::PerInstance { reason },
            Err(error) => WarmState::Failed { error, at: Instant::now() },
        }
    }

    /// A new, warm instance (from the image, or cold plus warmup in per-instance mode).
    /// Warms the backend first if needed (auto-warmup, S-11); when warmup has failed, the
    /// instance starts cold.
    pub async fn instantiate(&self, tags: Tags) -> std::result::Result<Instance, CallError> {
        if !matches!(&*self.warm_state(), WarmState::Snapshot { .. } | WarmState::PerInstance { .. }) {
            let _ = self.warm_up(false).await;
        }
        let state = self.warm_state();
        let started = Instant::now();
        let mode = match &*state {
            WarmState::Snapshot { .. } => "snapshot",
            WarmState::PerInstance { .. } => "per_instance",
            _ => "cold",
        };
        let instance = self.instantiate_from(&state, tags).await;
        let metrics = &self.shared.metrics;
        metrics
            .instances
            .get_or_create(&crate::metrics::InstanceLabels { backend: self.name.to_string(), mode: mode.into() })
            .inc();
        metrics
            .instantiate_seconds
            .get_or_create(&crate::metrics::BackendLabels { backend: self.name.to_string() })
            .observe(started.elapsed().as_secs_f64());
        instance
    }

    async fn instantiate_from(&self, state: &WarmState, tags: Tags) -> std::result::Result<Instance, CallError> {
        match state {
            WarmState::Snapshot { pre, preopens, .. } => {
                let mut instance = self.new_instance(pre, tags).await?;
                if *preopens > 0 {
                    let (store, handle, _) = instance.parts();
                    let handle = *handle;
                    super::preopens::replay_into(store, &handle, *preopens)
                        .await
                        .map_err(|e| Fault::Capacity(format!("cannot hand the instance its directories: {e}")))?;
                }
                Ok(instance)
            }
            WarmState::PerInstance { .. } => {
                let mut instance = self.new_instance(&self.cold, tags).await?;
                self.warmup_runs.fetch_add(1, Ordering::Relaxed);
                instance.warmup(&self.resource.config.to_string(), self.warmup_timeout()).await?;
                Ok(instance)
            }
            WarmState::Cold | WarmState::Failed { .. } => Ok(self.new_instance(&self.cold, tags).await?),
        }
    }

    fn new_store(&self, tags: Tags) -> std::result::Result<Store<HostState>, Fault> {
        let cap = self.resource.memory_mb.map_or(self.shared.limits.memory_mb, |m| m.min(self.shared.limits.memory_mb));
        let memory_mb = tags.memory_mb.map_or(cap, |m| m.min(cap));
        let memory = (memory_mb as usize) * 1024 * 1024;
        let state = HostState::new(&self.resource.grants, &self.base_dir, memory, tags)
            .map_err(|e| Fault::Capacity(format!("cannot grant capabilities: {e}")))?;
        let mut store = Store::new(&self.shared.engine, state);
        store.limiter(|s| &mut s.limiter);
        if let Some(fuel) = self.shared.limits.fuel {
            // Instantiation runs guest code too (start functions): it needs a budget before
            // the first call re-arms it.
            store.set_fuel(fuel).map_err(|e| Fault::Trap(format!("{e}")))?;
        }
        store.epoch_deadline_callback(|ctx| {
            if Instant::now() >= ctx.data().deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        Ok(store)
    }

    pub(crate) async fn new_instance(
        &self,
        pre: &BackendPre<HostState>,
        tags: Tags,
    ) -> std::result::Result<Instance, Fault> {
        let mut store = self.new_store(tags)?;
        store.data_mut().deadline = Instant::now() + self.timeout();
        store.set_epoch_deadline(1);
        let made = async {
            let handle = pre.instance_pre().instantiate_async(&mut store).await?;
            let bindings = crate::engine::bindings::Backend::new(&mut store, &handle)?;
            Ok::<_, wasmtime::Error>((handle, bindings))
        }
        .await;
        let (handle, bindings) = made.map_err(|e| {
            if store.data().limiter.hit {
                Fault::MemoryLimit {
                    limit_mb: store.data().limiter.max_bytes as u64 / (1024 * 1024),
                    detail: format!("{e}"),
                }
            } else {
                Fault::Capacity(format!("{e}"))
            }
        })?;
        let memory_mb = store.data().limiter.max_bytes as u64 / (1024 * 1024);
        Ok(Instance::new(store, handle, bindings, self.shared.limits.fuel, memory_mb))
    }

    /// The metrics.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.shared.metrics
    }

    /// Calls the guest's `shutdown` in a fresh instance (S-7). Errors are logged.
    pub async fn shutdown(&self) {
        match self.instantiate(Tags { backend: self.name.clone(), ..Tags::default() }).await {
            Ok(mut instance) => {
                if let Err(f) = instance.shutdown(self.timeout()).await {
                    tracing::warn!(backend = %self.name, fault = %f, "shutdown hook failed");
                }
            }
            Err(e) => {
                tracing::warn!(backend = %self.name, error = ?e, "no instance for the shutdown hook")
            }
        }
    }
}

fn instantiate_pre(
    name: &str,
    shared: &Shared,
    component: &wasmtime::component::Component,
) -> Result<BackendPre<HostState>> {
    let pre = shared
        .linker
        .instantiate_pre(component)
        .map_err(|e| Error::load(name, format!("the component imports something Cella does not offer: {e:#}")))?;
    BackendPre::new(pre).map_err(|e| {
        Error::load(name, format!("the component does not implement the world cella:backend/backend@0.1.0: {e:#}"))
    })
}

/// The warm image with the snapshot accessors added, or as it is when it cannot take them
/// (its sessions then cannot be snapshotted; the reason is logged).
fn instrumented(name: &str, image: Vec<u8>) -> Vec<u8> {
    match crate::engine::access::instrument(&image) {
        Ok(wasm) => wasm,
        Err(e) => {
            tracing::warn!(backend = %name, error = %e, "the warm image cannot carry snapshot accessors; its sessions cannot be snapshotted");
            image
        }
    }
}

fn warmup_error(e: CallError) -> String {
    match e {
        CallError::Guest(g) => format!("warmup failed (code {}): {}", g.code, g.message),
        CallError::Fault(f) => format!("warmup failed: {f}"),
    }
}
