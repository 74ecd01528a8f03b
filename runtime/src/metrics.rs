//! Prometheus metrics: calls by tenant, tool and code, call and instantiation latencies,
//! live sessions by tenant and backend, cache hits, warm-image use and faults.
//!
//! Counters are updated where things happen; the live-session gauge is computed from the
//! session table when the metrics are read.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Mutex;

/// Labels of a call (built on every call, so the tenant is shared, not copied, and the
/// code stays a number).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// The tenant.
    pub tenant: SharedLabel,
    /// The tool (`kv:get`).
    pub tool: String,
    /// The result code.
    pub code: i32,
}

/// A label value shared with the rest of the server (a tenant's name).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct SharedLabel(pub std::sync::Arc<str>);

impl prometheus_client::encoding::EncodeLabelValue for SharedLabel {
    fn encode(&self, encoder: &mut prometheus_client::encoding::LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(&self.0)
    }
}

/// Labels naming a backend.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabels {
    /// The backend.
    pub backend: String,
}

/// Labels of an instance creation: backend and where it started from.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InstanceLabels {
    /// The backend.
    pub backend: String,
    /// `snapshot`, `per_instance` or `cold`.
    pub mode: String,
}

/// Labels of a cache lookup.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `component` or `warm_image`.
    pub kind: String,
    /// `hit` or `miss`.
    pub result: String,
}

/// Labels of a fault.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FaultLabels {
    /// The backend.
    pub backend: String,
    /// `trap`, `timeout`, `memory_limit`, ...
    pub kind: String,
}

/// Labels of the live-session gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SessionLabels {
    /// The tenant.
    pub tenant: String,
    /// The backend.
    pub backend: String,
}

/// Every metric of the runtime.
pub struct Metrics {
    registry: Registry,
    /// Tool calls by tenant, tool and code.
    pub calls: Family<CallLabels, Counter>,
    /// Call latency by tool, seconds.
    pub call_seconds: Family<BackendLabels, Histogram>,
    /// Instantiation latency by backend, seconds.
    pub instantiate_seconds: Family<BackendLabels, Histogram>,
    /// Instances created by backend and mode.
    pub instances: Family<InstanceLabels, Counter>,
    /// Cache lookups.
    pub cache: Family<CacheLabels, Counter>,
    /// Faults by backend and kind.
    pub faults: Family<FaultLabels, Counter>,
    /// Live sessions by tenant and backend (set when read).
    pub sessions: Family<SessionLabels, Gauge>,
    /// Bytes kept ready for captures (set when read).
    pub spare_bytes: Gauge,
    /// Sessions a graceful stop could not keep for the next start, by backend.
    pub sessions_not_kept: Family<BackendLabels, Counter>,
    /// Serialises encoding (the gauge is reset and refilled for each read).
    encoding: Mutex<()>,
}

fn latency() -> Histogram {
    // 10 µs … ~10 s.
    Histogram::new(exponential_buckets(0.000_01, 4.0, 11))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("cella");
        let calls = Family::<CallLabels, Counter>::default();
        let call_seconds = Family::<BackendLabels, Histogram>::new_with_constructor(latency as fn() -> Histogram);
        let instantiate_seconds =
            Family::<BackendLabels, Histogram>::new_with_constructor(latency as fn() -> Histogram);
        let instances = Family::<InstanceLabels, Counter>::default();
        let cache = Family::<CacheLabels, Counter>::default();
        let faults = Family::<FaultLabels, Counter>::default();
        let sessions = Family::<SessionLabels, Gauge>::default();
        let spare_bytes = Gauge::default();
        let sessions_not_kept = Family::<BackendLabels, Counter>::default();
        registry.register("calls", "Tool calls by tenant, tool and result code", calls.clone());
        registry.register("call_duration_seconds", "Tool call latency by backend", call_seconds.clone());
        registry.register(
            "instantiate_duration_seconds",
            "Instance creation latency by backend",
            instantiate_seconds.clone(),
        );
        registry.register(
            "instances",
            "Instances created, by backend and start (snapshot = warm image)",
            instances.clone(),
        );
        registry.register("cache_lookups", "Compile cache lookups by kind and result", cache.clone());
        registry.register("faults", "Guest faults (traps, timeouts, memory) by backend and kind", faults.clone());
        registry.register("live_sessions", "Live sessions by tenant and backend", sessions.clone());
        registry.register(
            "snapshot_spare_bytes",
            "Memory kept ready for snapshot and fork captures (server.snapshots.spare_mb)",
            spare_bytes.clone(),
        );
        registry.register(
            "sessions_not_kept",
            "Sessions a graceful stop could not snapshot for the next start (each logged with its id)",
            sessions_not_kept.clone(),
        );
        Metrics {
            registry,
            calls,
            call_seconds,
            instantiate_seconds,
            instances,
            cache,
            faults,
            sessions,
            spare_bytes,
            sessions_not_kept,
            encoding: Mutex::new(()),
        }
    }
}

impl Metrics {
    /// Counts a cache lookup.
    pub fn cache(&self, kind: &str, hit: bool) {
        self.cache
            .get_or_create(&CacheLabels { kind: kind.into(), result: if hit { "hit" } else { "miss" }.into() })
            .inc();
    }

    /// The metrics in the OpenMetrics text format, with the live sessions given.
    pub fn encode(&self, live: &[((String, String), usize)]) -> String {
        let _guard = self.encoding.lock().unwrap_or_else(|p| p.into_inner());
        self.sessions.clear();
        for ((tenant, backend), n) in live {
            self.sessions
                .get_or_create(&SessionLabels { tenant: tenant.clone(), backend: backend.clone() })
                .set(*n as i64);
        }
        #[cfg(target_os = "linux")]
        self.spare_bytes.set(i64::try_from(crate::engine::pages::spares::held()).unwrap_or(i64::MAX));
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
