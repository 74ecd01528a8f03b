//! HTTP load benchmark: `execute` of `kv:get` on a live kv session over keep-alive
//! connections, against a minimal axum JSON echo route (the ceiling) in the same run.
//!
//! Run with: `cargo bench -p cella-runtime --bench load`
//! Settings: `CELLA_LOAD_SECONDS` (default 10 per target), `CELLA_LOAD_CONNECTIONS` (default 32).
//! Traffic goes to 127.0.0.1 only, and every loop is bounded in time.
// A benchmark that cannot set up stops with a panic: that is its failure report.
#![allow(clippy::unwrap_used)]
// criterion_group! makes undocumented public functions.
#![allow(missing_docs)]

use axum::Json;
use axum::routing::post;
use cella_runtime::{Sandbox, http};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[allow(dead_code)]
mod common;

struct Stats {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

/// Drives `url` with `connections` keep-alive clients for `seconds`.
async fn drive(url: String, body: Value, connections: usize, seconds: f64) -> Stats {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (url, body) = (url.clone(), body.to_string());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap();
            let mut latencies = Vec::new();
            let mut errors = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                match client.post(&url).header("content-type", "application/json").body(body.clone()).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        latencies.push(t.elapsed());
                    }
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or_default()
    };
    Stats { requests: all.len(), errors, elapsed, p50: pct(0.50), p99: pct(0.99) }
}

fn report(name: &str, s: &Stats) -> f64 {
    let rps = s.requests as f64 / s.elapsed.as_secs_f64();
    println!(
        "{name:<28} {rps:>10.0} req/s   p50 {:>7.1} µs   p99 {:>8.1} µs   requests {}   errors {}",
        s.p50.as_secs_f64() * 1e6,
        s.p99.as_secs_f64() * 1e6,
        s.requests,
        s.errors
    );
    rps
}

fn main() {
    let seconds: f64 = std::env::var("CELLA_LOAD_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10.0);
    let connections: usize = std::env::var("CELLA_LOAD_CONNECTIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(32);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        // The ceiling: a minimal axum route that parses and returns JSON.
        let echo = axum::Router::new().route("/echo", post(|Json(v): Json<Value>| async move { Json(v) }));
        let echo_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let echo_url = format!("http://{}/echo", echo_listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(echo_listener, echo).await });

        let config = common::config(&["kv"], json!({"server": {"connection_close": "never"}}));
        let sandbox = Sandbox::start(config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(http::serve(listener, sandbox, async {
            let _ = stop_rx.await;
        }));
        let client = reqwest::Client::new();
        let create = json!({"worker_id": "load", "resource_type": "kv"});
        client.post(format!("{base}/api/v1/session/create")).json(&create).send().await.unwrap();
        let set = json!({"worker_id": "load", "action": "kv:set", "params": {"key": "k", "value": "hello"}});
        client.post(format!("{base}/api/v1/execute")).json(&set).send().await.unwrap();

        let call = json!({"worker_id": "load", "action": "kv:get", "params": {"key": "k"}});
        println!("{connections} keep-alive connections, {seconds} s per target, client and servers in one process on 127.0.0.1");
        // Warm both paths, then measure.
        drive(echo_url.clone(), call.clone(), connections, 1.0).await;
        drive(format!("{base}/api/v1/execute"), call.clone(), connections, 1.0).await;
        let echo_stats = drive(echo_url, call.clone(), connections, seconds).await;
        let cella_stats = drive(format!("{base}/api/v1/execute"), call, connections, seconds).await;
        let echo_rps = report("axum JSON echo (ceiling)", &echo_stats);
        let cella_rps = report("cella execute kv:get", &cella_stats);
        println!("cella / echo throughput: {:.1}%", cella_rps / echo_rps * 100.0);
        let _ = stop_tx.send(());
        let _ = server.await;
    });
}
