//! Code-interpreter benchmarks (criterion), issue #4's speed figures at the engine level.
//! Run with: `cargo bench -p cella-runtime --bench interpreters`
//!
//! - `interpreters/create_python`, `interpreters/create_python-lite`,
//!   `interpreters/create_javascript`: a new session ready to run (store + instance from the
//!   warm image + `initialize` + registry), through the facade. `python` is the scientific
//!   one (`builtin:python-sci`) since 2026-12-07; `python-lite` the componentize-py one, which
//!   was `python` before (the figures in docs/benchmarks.md until then are of it).
//! - `interpreters/run_print_python`, `…_python-lite`, `interpreters/run_print_javascript`: `print(1)` /
//!   `console.log(1)` in a live session, through the facade (no HTTP).
//! - `interpreters/compute_python`: `sum(i*i for i in range(10**6))` in a live session (the
//!   interpreter's own speed: Cranelift's code, bounds checks, epoch checks).
//! - `interpreters/process_python3_c`: `python3 -S -c 'print(1)'` as a process, the baseline:
//!   the real interpreter (`sys.executable`, not a version manager's shim on PATH), without
//!   `site`.
//!
//! `CELLA_MEMORY_RESERVATION_MB=4096` runs it with wasmtime's default 4 GiB reservation per
//! memory (no explicit bounds checks) instead of Cella's default (`memory_mb`), to measure
//! what bounds checks cost.
//!
//! The HTTP figures (`/api/v1/run`) come from `scripts/run_bench.py`.
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
use std::time::Duration;

#[allow(dead_code)]
mod common;

fn config(cache: &Path) -> Config {
    let reservation: Option<u64> = std::env::var("CELLA_MEMORY_RESERVATION_MB").ok().and_then(|v| v.parse().ok());
    common::config(
        &["python", "python-lite", "javascript"],
        json!({"server": {"cache_dir": cache,
                          "limits": {"max_instances": 1000, "memory_reservation_mb": reservation}}}),
    )
}

/// The real Python 3 binary behind `python3` on PATH (which may be a version manager's shim).
fn real_python() -> String {
    let out = std::process::Command::new("python3").args(["-c", "import sys; print(sys.executable)"]).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let cache = common::cache_dir();
    let sandbox: Sandbox = rt.block_on(async {
        let sb = Sandbox::start(config(&cache)).await.unwrap();
        sb.warmup(None).await;
        sb
    });
    let counter = AtomicU64::new(0);
    let mut group = c.benchmark_group("interpreters");
    group.sample_size(30);

    for (resource, tool, code) in [
        ("python", "python:run", "print(1)"),
        ("python-lite", "python-lite:run", "print(1)"),
        ("javascript", "javascript:run", "console.log(1)"),
    ] {
        group.bench_function(format!("create_{resource}"), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let sb = sandbox.clone();
                let base = counter.fetch_add(iters, Ordering::Relaxed);
                let prefix = format!("bench-{resource}");
                // Bounded batches: every live interpreter session holds its memory.
                async move { common::time_creates(&sb, resource, &prefix, base, iters, 50).await }
            })
        });

        let caller = Caller::new(format!("bench-live-{resource}"));
        rt.block_on(async {
            sandbox.create_session(&caller, resource, Value::Null, None).await.unwrap();
            let env = sandbox.execute(&caller, tool, params(json!({"code": code})), ExecOptions::default()).await;
            assert_eq!(env.code, 0, "{}", env.message);
        });
        group.bench_function(format!("run_print_{resource}"), |b| {
            b.to_async(&rt)
                .iter(|| sandbox.execute(&caller, tool, params(json!({"code": code})), ExecOptions::default()))
        });
    }

    let caller = Caller::new("bench-compute-python");
    let compute = params(json!({"code": "print(sum(i*i for i in range(10**6)))"}));
    rt.block_on(async {
        sandbox.create_session(&caller, "python", Value::Null, None).await.unwrap();
    });
    group.sample_size(10);
    group.bench_function("compute_python", |b| {
        b.to_async(&rt).iter(|| async {
            let env = sandbox.execute(&caller, "python:run", compute.clone(), ExecOptions::default()).await;
            assert_eq!(env.code, 0, "{}", env.message);
        })
    });

    group.sample_size(20);
    let python = real_python();
    group.bench_function("process_python3_c", |b| {
        b.iter(|| {
            let status = std::process::Command::new(&python).args(["-S", "-c", "print(1)"]).output().unwrap();
            assert!(status.status.success());
        })
    });
    group.finish();
}

criterion_group!(name = interpreters; config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1)); targets = benches);
criterion_main!(interpreters);
