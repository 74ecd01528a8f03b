//! What the benchmarks share: the embedded default configuration (`config/default.json`, the
//! backends `cella serve` runs), narrowed to the backends a benchmark measures, and the
//! benchmarks' compile cache.

use cella_runtime::Config;
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
