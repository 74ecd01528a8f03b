//! The same `kv` backend in every guest language (issue #6's report), with the core
//! benchmarks' measures. Run with: `cargo bench -p cella-runtime --bench languages`
//!
//! - `languages/create_<lang>`: create_session through the facade (store + instance from the
//!   warm image + initialize + registry), as `session/create_kv` in the runtime benchmarks.
//! - `languages/call_<lang>`: `kv:get` on a live session through the facade, as
//!   `session/execute_kv_get`.
//!
//! Printed once per language before the criterion runs: the `.wasm` size and the time to
//! compile it with Cranelift and take its warm image (a fresh cache folder, so nothing is
//! reused).
// A benchmark that cannot set up stops with a panic: that is its failure report.
#![allow(clippy::unwrap_used)]
// criterion_group! makes undocumented public functions.
#![allow(missing_docs)]

use cella_runtime::sandbox::params;
use cella_runtime::{Caller, Config, ExecOptions, Sandbox};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// (language, path of its kv component): the product's Rust kv and the test programs'.
fn kv_components() -> [(&'static str, String); 4] {
    let kv = cella_runtime::config::home::home().component("kv").expect("the kv component is built");
    [
        ("rust", kv.display().to_string()),
        ("python", cella_test_programs::KV_PYTHON.to_string()),
        ("javascript", cella_test_programs::KV_JS.to_string()),
        ("c", cella_test_programs::KV_C.to_string()),
    ]
}

#[allow(dead_code)]
mod common;

fn config(component: &str, cache: &Path) -> Config {
    let patch = json!({"server": {"cache_dir": cache, "limits": {"max_instances": 2000}},
                       "resources": {"kv": {"component": component}}});
    common::config(&["kv"], patch)
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let mut group = c.benchmark_group("languages");
    let counter = AtomicU64::new(0);
    for (language, component) in kv_components() {
        let component = component.as_str();
        let path = component;
        let size = std::fs::metadata(path).unwrap().len();
        let fresh = tempfile::tempdir().unwrap();
        let started = Instant::now();
        rt.block_on(async {
            let sb = Sandbox::start(config(component, fresh.path())).await.unwrap();
            sb.warmup(None).await;
        });
        println!(
            "{language}: {component} {:.1} KiB; compile + warm image {:.2} s",
            size as f64 / 1024.0,
            started.elapsed().as_secs_f64()
        );

        let cache = common::cache_dir();
        let sandbox: Sandbox = rt.block_on(async {
            let sb = Sandbox::start(config(component, &cache)).await.unwrap();
            sb.warmup(None).await;
            sb
        });
        group.bench_function(format!("create_{language}"), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let sb = sandbox.clone();
                let base = counter.fetch_add(iters, Ordering::Relaxed);
                let prefix = format!("bench-{language}");
                async move { common::time_creates(&sb, "kv", &prefix, base, iters, 500).await }
            })
        });
        let caller = Caller::new(format!("bench-live-{language}"));
        rt.block_on(async {
            sandbox.create_session(&caller, "kv", Value::Null, None).await.unwrap();
            let env = sandbox
                .execute(&caller, "kv:set", params(json!({"key": "k", "value": 42})), ExecOptions::default())
                .await;
            assert_eq!(env.code, 0, "{}", env.message);
        });
        group.bench_function(format!("call_{language}"), |b| {
            b.to_async(&rt)
                .iter(|| sandbox.execute(&caller, "kv:get", params(json!({"key": "k"})), ExecOptions::default()))
        });
    }
    group.finish();
}

criterion_group!(name = languages; config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1)); targets = benches);
criterion_main!(languages);
