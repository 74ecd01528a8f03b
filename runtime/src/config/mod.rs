//! The server configuration: one JSON file in the seeds' format, extended.
//!
//! ```json
//! {"server": {"host": "127.0.0.1", "port": 18890, "session_ttl": 300, "limits": {...}},
//!  "resources": {"kv": {"enabled": true, "component": "builtin:kv", "config": {}}},
//!  "warmup": {"enabled": false, "resources": []}}
//! ```
//!
//! `${VAR}` and `${VAR:-default}` expand in every string, keys that start with `_` are
//! comments, unknown keys are rejected, and every error names the field.

mod cluster;
mod env;
pub mod home;
mod snapshots;
pub use cluster::ClusterConfig;
pub use snapshots::{SnapshotsConfig, valid_node};
pub mod keys;
mod validate;

pub use env::{expand_str, expand_with};

use crate::error::{Error, Result};
use env::{expand_env, strip_comments};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Server-wide settings.
    #[serde(default)]
    pub server: ServerConfig,
    /// The backends, by resource type name.
    #[serde(default)]
    pub resources: BTreeMap<String, ResourceConfig>,
    /// Backends to warm at start-up.
    #[serde(default)]
    pub warmup: WarmupConfig,
    /// Tenants, by id. Without tenants the server is open (and may only listen on loopback).
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantConfig>,
    /// The directory relative paths in this file are resolved against.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// Server-wide settings (`server`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on (default 127.0.0.1).
    pub host: String,
    /// Port to listen on (default 18890, as AgentFlow).
    pub port: u16,
    /// Seconds an unused explicit session lives (default 300); every call renews it.
    pub session_ttl: f64,
    /// Where compiled components and warm images are cached (default: the user cache dir).
    pub cache_dir: Option<PathBuf>,
    /// AgentFlow configs name a title and a URL; they are accepted and not used (host and
    /// port say where Cella listens).
    #[serde(rename = "title")]
    pub(crate) _title: serde::de::IgnoredAny,
    #[serde(rename = "url")]
    pub(crate) _url: serde::de::IgnoredAny,
    /// Resource limits.
    pub limits: Limits,
    /// The largest request body accepted, in bytes (default 10 MiB).
    pub max_body_bytes: usize,
    /// The only directory `init/from-config` may read files from; the route is disabled
    /// without it.
    pub init_config_dir: Option<PathBuf>,
    /// When to send `Connection: close` (AgentFlow's Python client needs it).
    pub connection_close: ConnectionClose,
    /// sha256 hashes (hex, optionally `sha256:`-prefixed) of the keys that may shut the
    /// server down, warm backends and read metrics.
    pub admin_keys: Vec<String>,
    /// The MCP front door (`/mcp` and `cella mcp-stdio`).
    pub mcp: McpConfig,
    /// The sandboxes of E2B's and Scalebox's SDKs (`server.sandboxes`).
    pub sandboxes: SandboxesConfig,
    /// Session snapshots: the store, retention, and what survives a restart.
    pub snapshots: SnapshotsConfig,
    /// Several servers as one cluster over a shared store (`server.cluster`).
    pub cluster: ClusterConfig,
    /// The `host:port` the control planes hand back as a sandbox's domain (Scalebox's SDK
    /// reaches in-sandbox routes there, over HTTPS unless it is a loopback name): the public
    /// name behind which the server runs. When absent, the `Host` the client used.
    pub sandbox_domain: Option<String>,
    /// A PEM certificate chain: with `tls_key`, the port serves HTTPS as well as HTTP
    /// (relative to the configuration file).
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Origins (`https://app.example`) whose web pages may call the API from a browser
    /// (CORS), or `["*"]` for any origin without credentials. Empty (the default) sends no
    /// CORS headers, so no web page can read an answer from this server.
    pub cors_origins: Vec<String>,
    /// Host names (or `host:port`) the `Host` header may carry besides the loopback names,
    /// when the server listens on loopback; on another address, the only names allowed when
    /// set. Guards a local server against DNS rebinding.
    pub allowed_hosts: Vec<String>,
}

/// The MCP front door (`server.mcp`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpConfig {
    /// Serve `/mcp` (default true).
    pub enabled: bool,
    /// Host names (or `host:port`) the `Host` header of an `/mcp` request may carry; the
    /// default is the loopback names, which guards a local server against DNS rebinding.
    /// Set it to the public name when hosting; an empty list turns the check off.
    pub allowed_hosts: Vec<String>,
}

impl Default for McpConfig {
    fn default() -> Self {
        McpConfig { enabled: true, allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()] }
    }
}

/// The sandboxes E2B's and Scalebox's SDKs create (`server.sandboxes`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxesConfig {
    /// The timeout of a sandbox whose creator names none, in seconds (E2B's default: 300).
    pub default_timeout_s: u64,
    /// The longest timeout a sandbox may ask for, in seconds; longer ones are cut to it.
    pub max_timeout_s: u64,
    /// The most a sandbox's files directory may hold, in MiB.
    pub files_quota_mb: u64,
}

impl Default for SandboxesConfig {
    fn default() -> Self {
        SandboxesConfig { default_timeout_s: 300, max_timeout_s: 3600, files_quota_mb: 256 }
    }
}

/// One tenant (`tenants.<id>`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// sha256 hashes of the tenant's API keys (hex, optionally `sha256:`-prefixed); the keys
    /// themselves are never stored. `cella hash-key` prints the hash of a key.
    pub keys: Vec<String>,
    /// The resources the tenant may use; all when absent.
    #[serde(default)]
    pub resources: Option<Vec<String>>,
    /// The tenant's quotas.
    #[serde(default)]
    pub quotas: Quotas,
}

/// A tenant's quotas; each absent one falls back to the server's limit (or none).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quotas {
    /// Live explicit sessions at most.
    pub max_sessions: Option<usize>,
    /// Linear memory per instance, in MiB (at most the server's).
    pub memory_mb: Option<u64>,
    /// Call deadline in seconds (at most the server's).
    pub call_timeout_s: Option<f64>,
    /// Tool calls per minute.
    pub calls_per_minute: Option<u32>,
    /// Request body size in bytes (at most the server's).
    pub max_body_bytes: Option<usize>,
    /// Bytes the tenant's stored snapshots may hold, in MiB.
    pub snapshot_mb: Option<u64>,
    /// The most copies one fork may make (at most the server's `snapshots.max_fork`).
    pub max_fork: Option<u32>,
}

/// When responses carry `Connection: close`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionClose {
    /// Only for AgentFlow's Python client (user agent `python-httpx`).
    #[default]
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "127.0.0.1".into(),
            port: 18890,
            session_ttl: 300.0,
            cache_dir: None,
            _title: serde::de::IgnoredAny,
            _url: serde::de::IgnoredAny,
            limits: Limits::default(),
            max_body_bytes: 10 * 1024 * 1024,
            init_config_dir: None,
            connection_close: ConnectionClose::Auto,
            admin_keys: Vec::new(),
            mcp: McpConfig::default(),
            sandboxes: SandboxesConfig::default(),
            snapshots: SnapshotsConfig::default(),
            cluster: ClusterConfig::default(),
            sandbox_domain: None,
            tls_cert: None,
            tls_key: None,
            cors_origins: Vec::new(),
            allowed_hosts: Vec::new(),
        }
    }
}

/// Limits on instances, memory and time (`server.limits`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Live instances the server holds at most (sessions plus calls in flight); sizes the
    /// pooling allocator.
    pub max_instances: u32,
    /// Linear memory per instance, in MiB.
    pub memory_mb: u64,
    /// The longest a single call may run, in seconds; a request may ask for less.
    pub call_timeout_s: f64,
    /// The longest `warmup` may run, in seconds.
    pub warmup_timeout_s: f64,
    /// Instructions budget per call (fuel); off when absent.
    pub fuel: Option<u64>,
    /// Native stack a guest may use, in KiB.
    pub max_wasm_stack_kb: usize,
    /// KiB at the start of each pooled linear memory kept resident between instances (reset
    /// in place rather than released): fewer page faults per new instance. Only pages the
    /// last instance touched are kept (on Linux 6.7+), and never more than
    /// `resident_budget_mb` over the whole pool. 0 releases everything.
    pub keep_resident_kb: usize,
    /// The most memory, in MiB, that freed pool slots keep resident in all (see
    /// `keep_resident_kb`): the per-slot amount is cut so that every slot of the pool
    /// together stays under it.
    pub resident_budget_mb: u64,
    /// Address space reserved for each pooled linear memory, in MiB. 4096 lets wasmtime
    /// drop bounds checks on 32-bit memories (faster guest code), at 4 GiB of address space
    /// per memory: about 11,000 instances per process; `memory_mb` allows 100,000+. Unset:
    /// 4096 when `max_instances` fits that way, else `memory_mb`.
    pub memory_reservation_mb: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_instances: 1000,
            memory_mb: 128,
            call_timeout_s: 30.0,
            warmup_timeout_s: 120.0,
            fuel: None,
            max_wasm_stack_kb: 512,
            keep_resident_kb: 384,
            resident_budget_mb: 256,
            memory_reservation_mb: None,
        }
    }
}

/// One backend (`resources.<name>`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceConfig {
    /// Whether the backend is loaded (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The component: a path to a `.wasm` (relative to the config file) or `builtin:<name>`
    /// for a component built from this repository.
    pub component: String,
    /// A description (kept for AgentFlow configs).
    #[serde(default)]
    pub description: Option<String>,
    /// Handed to `warmup` as the backend config, and the default session config that a
    /// caller's session config is merged over.
    #[serde(default = "empty_object")]
    pub config: Value,
    /// The sha256 (hex) the component file must have; a mismatch refuses to load it.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Capabilities granted to the component; none by default.
    #[serde(default)]
    pub grants: Grants,
    /// Whether to snapshot `warmup` into a warm image (default true). When false, or when
    /// the snapshot fails, warmup runs in every new instance.
    #[serde(default = "yes")]
    pub warm_image: bool,
    /// Linear memory an instance of this backend may have, in MiB: at most
    /// `server.limits.memory_mb` (the pool's slot size), which applies when absent.
    #[serde(default)]
    pub memory_mb: Option<u64>,
}

/// Capabilities granted to a component (`resources.<name>.grants`). Nothing is granted by
/// default: no directory, no environment variable, no network, no stdin.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Host directories the component may read, each mounted at a guest path.
    #[serde(default)]
    pub dirs: Vec<DirGrant>,
    /// Environment variables the component sees.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// A writable directory of its own for every session (and every stateless call), empty
    /// at the start and removed at the end, with a size quota.
    #[serde(default)]
    pub scratch: Option<ScratchGrant>,
}

/// A per-session scratch directory (`grants.scratch`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScratchGrant {
    /// Where the guest sees it, e.g. `/scratch`.
    pub guest: String,
    /// The most it may hold, in MiB; a call that leaves more ends the session (7009).
    pub quota_mb: u64,
}

/// A read-only directory grant.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirGrant {
    /// The host directory (relative to the config file).
    pub host: PathBuf,
    /// Where the guest sees it, e.g. `/corpus`.
    pub guest: String,
}

impl DirGrant {
    /// The host directory, resolved against the configuration's folder `base`.
    pub fn host_path(&self, base: &Path) -> PathBuf {
        if self.host.is_absolute() { self.host.clone() } else { base.join(&self.host) }
    }
}

/// Start-up warmup (`warmup`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmupConfig {
    /// Whether to warm at start-up.
    #[serde(default)]
    pub enabled: bool,
    /// Which backends; all enabled ones when empty.
    #[serde(default)]
    pub resources: Vec<String>,
}

fn yes() -> bool {
    true
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// The configuration `cella serve` uses without `--config`: the example backends, with the
/// rag corpus and notebook glossary shipped in `examples/`.
pub const DEFAULT_CONFIG: &str = include_str!("default.json");

impl Config {
    /// Parses a configuration from JSON text; relative paths resolve against `base_dir`.
    pub fn from_json(text: &str, base_dir: &Path) -> Result<Config> {
        let mut value: Value = serde_json::from_str(text).map_err(|e| Error::Config(format!("not valid JSON: {e}")))?;
        expand_env(&mut value)?;
        strip_comments(&mut value);
        if let Some(resources) = value.get("resources").and_then(Value::as_object) {
            for (name, resource) in resources {
                if resource.get("backend_class").is_some() {
                    return Err(Error::Config(format!(
                        "resources.{name}.backend_class: Cella loads WebAssembly components; use \"component\": \"path/to/{name}.wasm\""
                    )));
                }
            }
        }
        let mut config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            Error::Config(format!("{}: {}", if path == "." { "(top level)".into() } else { path }, e.into_inner()))
        })?;
        config.base_dir = base_dir.to_path_buf();
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses a configuration file.
    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Config::from_json(&text, &base).map_err(|e| match e {
            Error::Config(m) => Error::Config(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// The embedded default configuration (example backends), rooted at the Cella home
    /// ([`home::home`]), which holds the example data it grants.
    pub fn default_config() -> Config {
        Config::from_json(DEFAULT_CONFIG, &home::home().dir).expect("the embedded default configuration is valid")
    }

    /// Resolves a path from this file against its directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() { path.to_path_buf() } else { self.base_dir.join(path) }
    }

    /// The state directory: `server.cache_dir` (compiled components, the default snapshot
    /// store, the node id), else the user's cache directory.
    pub fn state_dir(&self) -> PathBuf {
        self.server.cache_dir.as_ref().map_or_else(home::user_cache_dir, |d| self.resolve(d))
    }

    /// Resolves a resource's `component` to a file path.
    pub fn component_path(&self, name: &str, resource: &ResourceConfig) -> Result<PathBuf> {
        match resource.component.strip_prefix("builtin:") {
            Some(builtin) => {
                let home = home::home();
                home.component(builtin).ok_or_else(|| {
                    Error::Config(format!(
                        "resources.{name}.component: no builtin component '{builtin}' in {} (the product's are {:?}; \
                         set CELLA_HOME to the folder holding components/)",
                        home.dir.join("components").display(),
                        home::BUILTIN_NAMES
                    ))
                })
            }
            None => Ok(self.resolve(Path::new(&resource.component))),
        }
    }
}

/// The longest duration a configuration may give: a year, in seconds.
pub const MAX_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// Whether `c` may appear in a name Cella accepts or makes (resource types, tenant ids, the
/// safe forms of worker ids and session names): an ASCII letter or digit, `_` or `-`.
pub fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Seconds as a [`Duration`], saturating: at most [`MAX_SECONDS`], and zero for a negative
/// number or NaN. Unlike `Duration::from_secs_f64` it never panics, so it is safe on values
/// a request brings.
pub fn seconds(s: f64) -> Duration {
    Duration::from_secs_f64(if s > 0.0 { s.min(MAX_SECONDS) } else { 0.0 })
}

/// Merges `patch` into `base`: objects key by key, recursively; anything else is replaced.
/// Useful to derive a configuration from another (tests, tools).
pub fn merge_json(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge_json(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_parses_and_names_builtins() {
        let c = Config::default_config();
        assert_eq!(c.server.port, 18890);
        assert!(c.component_path("kv", &c.resources["kv"]).unwrap().ends_with("kv.wasm"));
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_path() {
        let err = Config::from_json(r#"{"server": {"portt": 1}}"#, Path::new(".")).unwrap_err().to_string();
        assert!(err.contains("server") && err.contains("portt"), "{err}");
        let err = Config::from_json(r#"{"resources": {"kv": {"component": "x", "grant": {}}}}"#, Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(err.contains("resources.kv") && err.contains("grant"), "{err}");
    }

    #[test]
    fn backend_class_gets_a_hint() {
        let err = Config::from_json(r#"{"resources": {"kv": {"backend_class": "a.B"}}}"#, Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(err.contains("component"), "{err}");
    }

    #[test]
    fn comments_and_env_expand() {
        let c = Config::from_json(
            r#"{"_note": "x", "server": {"_c": 1, "host": "${CELLA_TEST_HOST:-0.0.0.0}"}}"#,
            Path::new("."),
        )
        .unwrap();
        assert_eq!(c.server.host, "0.0.0.0");
        let lookup = |name: &str| (name == "CELLA_TEST_PORT").then(|| "19999".to_string());
        assert_eq!(expand_with("p=${CELLA_TEST_PORT}", &lookup).unwrap(), "p=19999");
        assert_eq!(expand_with("${CELLA_TEST_HOST:-h}:${CELLA_TEST_PORT}", &lookup).unwrap(), "h:19999");
        assert!(expand_with("${CELLA_SURELY_UNSET_VAR}", &lookup).is_err());
        assert!(expand_str("${CELLA_SURELY_UNSET_VAR}").is_err());
    }

    #[test]
    fn bad_values_name_the_field() {
        let err = Config::from_json(r#"{"server": {"session_ttl": 0}}"#, Path::new(".")).unwrap_err().to_string();
        assert!(err.contains("server.session_ttl"), "{err}");
        // Durations past a year are refused, not a panic when the server turns them into a
        // `Duration` (1e300 s does not fit one).
        for json in [
            r#"{"server": {"session_ttl": 1e300}}"#,
            r#"{"server": {"limits": {"call_timeout_s": 1e300}}}"#,
            r#"{"tenants": {"t": {"keys": ["sha256:0000000000000000000000000000000000000000000000000000000000000000"], "quotas": {"call_timeout_s": -1}}}}"#,
        ] {
            let err = Config::from_json(json, Path::new(".")).unwrap_err().to_string();
            assert!(err.contains("at most 31536000"), "{json}: {err}");
        }
        assert_eq!(seconds(1e300), Duration::from_secs(31_536_000));
        assert_eq!(seconds(f64::NAN), Duration::ZERO);
        assert_eq!(seconds(-1.0), Duration::ZERO);
        let err = Config::from_json(r#"{"server": {"port": "x"}}"#, Path::new(".")).unwrap_err().to_string();
        assert!(err.contains("server.port"), "{err}");
        for node in ["", "a/b", "node 1", &"n".repeat(65)] {
            let json = serde_json::json!({"server": {"snapshots": {"node": node}}}).to_string();
            let err = Config::from_json(&json, Path::new(".")).unwrap_err().to_string();
            assert!(err.contains("server.snapshots.node"), "{node}: {err}");
        }
        assert!(Config::from_json(r#"{"server": {"snapshots": {"node": "web-1_a"}}}"#, Path::new(".")).is_ok());
    }
}
