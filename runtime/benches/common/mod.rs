//! What the benchmarks share: the embedded default configuration (`config/default.json`, the
//! backends `cella serve` runs), narrowed to the backends a benchmark measures, and the
//! benchmarks' compile cache.

use cella_runtime::Config;

// Every benchmark runs with the `cella` binary's allocator (glibc's malloc was about 15% of
// `session/create_kv` and is not what the server uses).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// Where the benchmarks cache compiled components: `target/bench-cache`.
pub fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("target").join("bench-cache")
}

/// The default configuration with only the `keep` backends, the benchmarks' cache, and
/// `patch` merged over it.
pub fn config(keep: &[&str], patch: Value) -> Config {
    let mut value: Value = serde_json::from_str(cella_runtime::config::DEFAULT_CONFIG).unwrap();
    value["resources"].as_object_mut().unwrap().retain(|name, _| keep.contains(&name.as_str()));
    value["server"]["cache_dir"] = json!(cache_dir());
    cella_runtime::config::merge_json(&mut value, patch);
    Config::from_json(&value.to_string(), &cella_runtime::config::home::home().dir).unwrap()
}

/// The time `iters` new `resource` sessions take to create, in batches of `batch` (each batch
/// destroyed untimed before the next, so the pool never fills): workers `{prefix}-{base + i}`.
pub async fn time_creates(
    sb: &cella_runtime::Sandbox,
    resource: &str,
    prefix: &str,
    base: u64,
    iters: u64,
    batch: usize,
) -> std::time::Duration {
    use cella_runtime::Caller;
    let mut elapsed = std::time::Duration::ZERO;
    for chunk in (0..iters).collect::<Vec<_>>().chunks(batch) {
        let callers: Vec<Caller> = chunk.iter().map(|i| Caller::new(format!("{prefix}-{}", base + i))).collect();
        let start = std::time::Instant::now();
        for caller in &callers {
            sb.create_session(caller, resource, Value::Null, None).await.unwrap();
        }
        elapsed += start.elapsed();
        for caller in &callers {
            sb.destroy_session(caller, resource).await.unwrap();
        }
    }
    elapsed
}
