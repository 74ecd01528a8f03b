//! Session snapshots: snapshot, restore, fork (per copy) and pause + auto-resume, for a
//! scientific Python session holding a 10 MB pandas DataFrame and for a kv session; with the bytes stored
//! against the bytes of memory that changed. Medians and p95 over the samples.
//! Run with: `cargo bench -p cella-runtime --bench snapshots [-- SAMPLES] [FILTER]` (default
//! 30 samples; FILTER runs only the measurements whose name contains it, e.g. `fork_python`).
// A benchmark that cannot set up stops with a panic: that is its failure report.
#![allow(clippy::unwrap_used)]
#![allow(missing_docs)]

use cella_runtime::sandbox::params;
use cella_runtime::{Caller, ExecOptions, Sandbox};
use serde_json::json;
use std::time::{Duration, Instant};

#[allow(dead_code)]
mod common;

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "snapshots/{name:<28} median {:>9.3} ms   p95 {:>9.3} ms   ({} samples)",
        at(0.5).as_secs_f64() * 1e3,
        at(0.95).as_secs_f64() * 1e3,
        samples.len()
    );
}

async fn run(sb: &Sandbox, w: &Caller, tool: &str, args: serde_json::Value) -> serde_json::Value {
    let envelope = sb.execute(w, tool, params(args), ExecOptions::default()).await;
    assert_eq!(envelope.code, 0, "{envelope:?}");
    envelope.data
}

/// Times `body` `n` times; `after` runs untimed after each (to tidy up).
async fn sample<T, F, A>(n: usize, mut body: impl FnMut(usize) -> F, mut after: impl FnMut(T) -> A) -> Vec<Duration>
where
    F: std::future::Future<Output = T>,
    A: std::future::Future<Output = ()>,
{
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let start = Instant::now();
        let value = body(i).await;
        out.push(start.elapsed());
        after(value).await;
    }
    out
}

fn main() {
    let samples: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(30);
    let filter = std::env::args().skip(1).find(|a| a.parse::<usize>().is_err() && !a.starts_with('-'));
    let wanted = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let store = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let config = common::config(
            &["python", "kv"],
            json!({"server": {"limits": {"max_instances": 200, "memory_mb": 1024},
                              "snapshots": {"dir": store.path(), "keep_on_shutdown": false}}}),
        );
        let sb = Sandbox::start(config).await.unwrap();
        sb.warmup(None).await;

        // A Python session with ~10 MB of user data (random bytes: nothing compresses it away).
        let py = Caller::new("bench-python");
        sb.create_session(&py, "python", serde_json::Value::Null, None).await.unwrap();
        // The scientific Python holds it as a pandas DataFrame of random floats.
        run(&sb, &py, "python:run", json!({"code": "import numpy as np, pandas as pd\ndata = pd.DataFrame(np.random.default_rng(1).random((131072, 10)))\nsmall = {'k': list(range(1000))}"})).await;
        let kv = Caller::new("bench-kv");
        sb.create_session(&kv, "kv", serde_json::Value::Null, None).await.unwrap();
        run(&sb, &kv, "kv:set", json!({"key": "a", "value": {"nested": [1, 2, 3]}})).await;

        for (name, w, rt_name) in [("python_10mb", &py, "python"), ("kv", &kv, "kv")] {
            let info = sb.snapshot_session(w, rt_name).await.unwrap();
            println!(
                "snapshots/{name:<28} memory {:.1} MiB, changed {:.2} MiB, stored {:.2} MiB (zstd level 1)",
                info.memory_bytes as f64 / 1048576.0,
                info.changed_bytes as f64 / 1048576.0,
                info.stored_bytes as f64 / 1048576.0
            );
            sb.delete_snapshot("default", &info.snapshot_id).await.unwrap();

            if wanted(&format!("snapshot_{name}")) {
            let times = sample(
                samples,
                |_| sb.snapshot_session(w, rt_name),
                |info| {
                    let sb = sb.clone();
                    async move {
                        let _ = sb.delete_snapshot("default", &info.unwrap().snapshot_id).await;
                    }
                },
            )
            .await;
            report(&format!("snapshot_{name}"), times);
            }

            if wanted(&format!("restore_{name}")) {
            let kept = sb.snapshot_session(w, rt_name).await.unwrap();
            let times = sample(
                samples,
                |i| {
                    let target = Caller::new(format!("restore-{name}-{i}"));
                    let id = kept.snapshot_id.clone();
                    let sb = sb.clone();
                    async move {
                        sb.restore_snapshot(&target, &id).await.unwrap();
                        target
                    }
                },
                |target| {
                    let sb = sb.clone();
                    let rt_name = rt_name.to_string();
                    async move {
                        sb.destroy_session(&target, &rt_name).await.unwrap();
                    }
                },
            )
            .await;
            report(&format!("restore_{name}"), times);
            }

            for (copies, runs, label) in [(1, samples, "per_copy"), (8, samples.min(10), "x8")] {
                if !wanted(&format!("fork_{name}_{label}")) {
                    continue;
                }
                let times = sample(
                    runs,
                    |_| sb.fork_session(w, rt_name, copies, vec![]),
                    |made| {
                        let sb = sb.clone();
                        let rt_name = rt_name.to_string();
                        async move {
                            for (worker, _) in made.unwrap() {
                                sb.destroy_session(&Caller::new(worker), &rt_name).await.unwrap();
                            }
                        }
                    },
                )
                .await;
                report(&format!("fork_{name}_{label}"), times);
            }

            if !wanted(&format!("pause_and_resume_{name}")) {
                continue;
            }
            let probe = if rt_name == "python" {
                ("python:run", json!({"code": "len(data)"}))
            } else {
                ("kv:get", json!({"key": "a"}))
            };
            let times = sample(
                samples,
                |_| {
                    let sb = sb.clone();
                    let w = w.clone();
                    let probe = probe.clone();
                    async move {
                        sb.pause_session(&w, rt_name).await.unwrap();
                        run(&sb, &w, probe.0, probe.1).await
                    }
                },
                |_| async {},
            )
            .await;
            report(&format!("pause_and_resume_{name}"), times);
        }
    });
}
