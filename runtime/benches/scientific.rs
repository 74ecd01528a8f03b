//! The scientific Python (`python`, `builtin:python-sci`), issue #34's speed figures, in
//! process (through the facade, no HTTP). Medians, p95 and p99 over the samples:
//!
//! - `first_result`: a new session, then its first cell `import numpy, pandas; print(1)`
//!   (the warm image has both imported), timed together; the session is ended untimed.
//! - `print`: `print(1)` in a live session.
//! - `groupby_1m`, `linalg_2000`, `line_chart_png`: `df.groupby('k').mean()` over 1,000,000
//!   rows, a 2,000×2,000 `numpy` matrix product, a matplotlib line chart saved as PNG; each
//!   timed inside the cell with `time.perf_counter` (what the interpreter takes, the same
//!   clock the native baseline uses), next to native CPython with the same numpy, pandas and
//!   matplotlib from PyPI: `scripts/sci-native.sh` installs them (a CPython 3.12+ is needed
//!   for numpy 2.5) and runs the same cells.
//!
//! Run with: `cargo bench -p cella-runtime --bench scientific [-- SAMPLES]` (default 50; the
//! heavy cells take a fifth of it, at least 5). Fork, pause and restore of a session holding
//! a 10 MB DataFrame are in the `snapshots` bench; unshared memory per session in `memory
//! -- python`.
// A benchmark that cannot set up stops with a panic: that is its failure report.
#![allow(clippy::unwrap_used)]
#![allow(missing_docs)]

use cella_runtime::sandbox::params;
use cella_runtime::{Caller, ExecOptions, Sandbox};
use serde_json::{Value, json};
use std::time::Instant;

#[allow(dead_code)]
mod common;

/// The cells the in-cell timings run: (name, setup, timed statement). Shared with
/// `scripts/sci-native.sh` through `scripts/sci_cells.py`.
const CELLS: &str = include_str!("../../scripts/sci_cells.py");

fn report(name: &str, mut ms: Vec<f64>) -> f64 {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "scientific/{name:<16} median {:>9.3} ms   p95 {:>9.3} ms   p99 {:>9.3} ms   ({} samples)",
        at(0.5),
        at(0.95),
        at(0.99),
        ms.len()
    );
    at(0.5)
}

async fn run(sb: &Sandbox, w: &Caller, code: &str) -> Value {
    let envelope = sb.execute(w, "python:run", params(json!({"code": code})), ExecOptions::default()).await;
    assert_eq!(envelope.code, 0, "{envelope:?}");
    assert!(envelope.data["error"].is_null(), "{}", envelope.data);
    envelope.data
}

fn main() {
    let samples: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(50);
    let heavy = (samples / 5).max(5);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let config = common::config(
            &["python"],
            json!({"server": {"limits": {"max_instances": 100, "memory_mb": 1024, "call_timeout_s": 300}}}),
        );
        let started = Instant::now();
        let sb = Sandbox::start(config).await.unwrap();
        let loaded = started.elapsed();
        let outcome = sb.warmup(None).await;
        assert_eq!(outcome.status, "success", "{:?}", outcome.errors);
        println!(
            "scientific/start: loaded in {:.2} s, warm in {:.2} s ({:?}; the first run compiles and builds the warm image)",
            loaded.as_secs_f64(),
            started.elapsed().as_secs_f64(),
            sb.backend("python").unwrap().report().image
        );

        let mut first = Vec::with_capacity(samples);
        for i in 0..samples {
            let w = Caller::new(format!("sci-first-{i}"));
            let at = Instant::now();
            sb.create_session(&w, "python", Value::Null, None).await.unwrap();
            run(&sb, &w, "import numpy, pandas; print(1)").await;
            first.push(at.elapsed().as_secs_f64() * 1e3);
            sb.destroy_session(&w, "python").await.unwrap();
        }
        report("first_result", first);

        let w = Caller::new("sci-live");
        sb.create_session(&w, "python", Value::Null, None).await.unwrap();
        let mut prints = Vec::with_capacity(samples);
        for _ in 0..samples {
            let at = Instant::now();
            run(&sb, &w, "print(1)").await;
            prints.push(at.elapsed().as_secs_f64() * 1e3);
        }
        report("print", prints);

        // The shared cells define `CELLS` (name -> (setup, statement)) and `timed(stmt, n)`.
        run(&sb, &w, CELLS).await;
        let native = native_medians(heavy);
        for name in ["groupby_1m", "linalg_2000", "line_chart_png"] {
            run(&sb, &w, &format!("exec(CELLS['{name}'][0])")).await;
            let data = run(&sb, &w, &format!("import json; print(json.dumps(timed(CELLS['{name}'][1], {heavy})))")).await;
            let ms: Vec<f64> = serde_json::from_str(data["stdout"].as_str().unwrap().trim()).unwrap();
            let median = report(name, ms);
            match native.get(name).and_then(Value::as_f64) {
                Some(n) => println!("scientific/{name:<16} native {n:.3} ms: {:.2}x native", median / n),
                None => println!("scientific/{name:<16} native: not measured (scripts/sci-native.sh)"),
            }
        }
        sb.shutdown().await;
    });
}

/// The native medians `scripts/sci-native.sh` prints (name -> ms), or none when it cannot
/// run (no CPython 3.12+, no registry).
fn native_medians(samples: usize) -> serde_json::Map<String, Value> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = std::process::Command::new("bash")
        .arg(root.join("scripts/sci-native.sh"))
        .arg(samples.to_string())
        .stderr(std::process::Stdio::inherit())
        .output();
    match out {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let last = text.lines().last().unwrap_or_default();
            match serde_json::from_str::<Value>(last) {
                Ok(Value::Object(map)) => {
                    println!("scientific/native: {}", map.get("python").and_then(Value::as_str).unwrap_or("?"));
                    map
                }
                _ => Default::default(),
            }
        }
        Ok(out) => {
            println!("scientific/native: scripts/sci-native.sh failed ({})", out.status);
            Default::default()
        }
        Err(e) => {
            println!("scientific/native: cannot run scripts/sci-native.sh: {e}");
            Default::default()
        }
    }
}
