//! Runtime benchmarks (criterion). Run with: `cargo bench -p cella-runtime --bench runtime`
//!
//! - `session/create_kv`: create_session through the facade (store + instantiate from the
//!   warm image + initialize + registry), sessions destroyed outside the timed part.
//! - `session/execute_kv_get`: execute on a live kv session through the facade.
//! - `session/instance_call_kv_get`: the same call straight into the instance (no facade),
//!   the closest measure of the guest's own work plus the component-model round trip.
//! - `stateless/fresh_call`: a stateless tool in a fresh warm instance (faulty:fresh).
//! - `stateless/rag_search`: a real stateless search.
//! - `warm/rag_from_image` vs `warm/rag_instantiate_plus_warmup`: a warm rag instance from the
//!   snapshot vs instantiating cold and running warmup.
//! - `start/cached` vs `start/cold`: Sandbox::start plus warmup of every backend with a
//!   filled cache vs an empty one.
// A benchmark that cannot set up stops with a panic: that is its failure report.
#![allow(clippy::unwrap_used)]
// criterion_group! makes undocumented public functions.
#![allow(missing_docs)]

use cella_runtime::host::Tags;
use cella_runtime::sandbox::params;
use cella_runtime::{Caller, Config, ExecOptions, Sandbox};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

#[allow(dead_code)]
mod common;

fn config(cache: &Path, rag_image: bool) -> Config {
    config_sized(cache, rag_image, 4000)
}

/// A configuration with `instances` pool slots (each pool reserves address space: keep the
/// start-up benchmarks, which hold several sandboxes at once, small).
fn config_sized(cache: &Path, rag_image: bool, instances: u32) -> Config {
    common::config(
        &["kv", "rag"],
        json!({
            "server": {"cache_dir": cache, "limits": {"max_instances": instances}},
            "resources": {"rag": {"warm_image": rag_image}, "faulty": {"component": cella_test_programs::FAULTY}}
        }),
    )
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let cache = common::cache_dir();
    let sandbox: Sandbox = rt.block_on(async {
        let sb = Sandbox::start(config(&cache, true)).await.unwrap();
        sb.warmup(None).await;
        sb
    });

    let mut group = c.benchmark_group("session");
    let counter = std::sync::atomic::AtomicU64::new(0);
    group.bench_function("create_kv", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let sb = sandbox.clone();
            let base = counter.fetch_add(iters, std::sync::atomic::Ordering::Relaxed);
            // Batches under the pool's size: criterion asks for more iterations the faster a
            // session starts.
            async move { common::time_creates(&sb, "kv", "bench", base, iters, 1000).await }
        })
    });

    let caller = Caller::new("bench-live");
    rt.block_on(async {
        sandbox.create_session(&caller, "kv", Value::Null, None).await.unwrap();
        let env =
            sandbox.execute(&caller, "kv:set", params(json!({"key": "k", "value": 42})), ExecOptions::default()).await;
        assert_eq!(env.code, 0);
    });
    group.bench_function("execute_kv_get", |b| {
        b.to_async(&rt).iter(|| sandbox.execute(&caller, "kv:get", params(json!({"key": "k"})), ExecOptions::default()))
    });
    let mut instance = rt.block_on(async {
        let backend = sandbox.backend("kv").unwrap();
        let mut i = backend.instantiate(Tags::default()).await.unwrap();
        i.initialize("w", &"{}".to_string(), Duration::from_secs(5)).await.unwrap();
        let ctx = cella_runtime::bindings::types::CallContext {
            worker_id: "w".into(),
            session_id: None,
            trace_id: "t".into(),
        };
        i.call("kv:set", &r#"{"key":"k","value":42}"#.to_string(), &ctx, Duration::from_secs(5)).await.unwrap();
        i
    });
    let ctx =
        cella_runtime::bindings::types::CallContext { worker_id: "w".into(), session_id: None, trace_id: "t".into() };
    let raw = r#"{"key":"k"}"#.to_string();
    group.bench_function("instance_call_kv_get", |b| {
        b.iter(|| rt.block_on(instance.call("kv:get", &raw, &ctx, Duration::from_secs(5))).unwrap())
    });
    group.finish();

    let mut group = c.benchmark_group("stateless");
    let w = Caller::new("bench-stateless");
    group.bench_function("fresh_call", |b| {
        b.to_async(&rt).iter(|| sandbox.execute(&w, "faulty:fresh", params(json!({})), ExecOptions::default()))
    });
    group.bench_function("rag_search", |b| {
        b.to_async(&rt).iter(|| {
            sandbox.execute(&w, "rag:search", params(json!({"query": "epoch deadline"})), ExecOptions::default())
        })
    });
    group.finish();

    let cold_sandbox: Sandbox = rt.block_on(async {
        let sb = Sandbox::start(config(&cache, false)).await.unwrap();
        sb.warmup(None).await;
        sb
    });
    let mut group = c.benchmark_group("warm");
    group.bench_function("rag_from_image", |b| {
        let backend = sandbox.backend("rag").unwrap();
        b.to_async(&rt).iter(|| async { backend.instantiate(Tags::default()).await.unwrap() })
    });
    group.bench_function("rag_instantiate_plus_warmup", |b| {
        let backend = cold_sandbox.backend("rag").unwrap();
        b.to_async(&rt).iter(|| async { backend.instantiate(Tags::default()).await.unwrap() })
    });
    group.finish();

    let mut group = c.benchmark_group("start");
    group.sample_size(10);
    group.bench_function("cached", |b| {
        b.to_async(&rt).iter(|| async {
            let sb = Sandbox::start(config_sized(&cache, true, 64)).await.unwrap();
            sb.warmup(None).await;
            sb
        })
    });
    group.bench_function("cold", |b| {
        b.to_async(&rt).iter(|| async {
            let empty = tempfile::tempdir().unwrap();
            let sb = Sandbox::start(config_sized(empty.path(), true, 64)).await.unwrap();
            sb.warmup(None).await;
            (sb, empty)
        })
    });
    group.finish();
}

criterion_group!(name = runtime; config = Criterion::default().measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1)); targets = benches);
criterion_main!(runtime);
