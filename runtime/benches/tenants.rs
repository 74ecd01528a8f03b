//! Multi-tenant load: 10,000 live sessions across 10 tenants over HTTP, then a stream of
//! calls, then every session checked: no call lost, none routed to another session, and
//! each tenant's session quota holding exactly.
//!
//! Run with: `cargo bench -p cella-runtime --bench tenants`
//! Settings: `CELLA_LOAD_SECONDS` (default 60), `CELLA_LOAD_SESSIONS` (default 10000).
//! Traffic goes to 127.0.0.1 only; every loop is bounded in count and time.
// A benchmark that cannot set up stops with a panic: that is its failure report.
#![allow(clippy::unwrap_used)]
// criterion_group! makes undocumented public functions.
#![allow(missing_docs)]

use cella_runtime::tenancy::hash_key;
use cella_runtime::{Sandbox, http};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[allow(dead_code)]
mod common;

const TENANTS: usize = 10;

fn main() {
    let seconds: f64 = std::env::var("CELLA_LOAD_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(60.0);
    let sessions: usize = std::env::var("CELLA_LOAD_SESSIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let per_tenant = sessions / TENANTS;
    let tenants: serde_json::Map<String, Value> = (0..TENANTS)
        .map(|t| {
            (format!("t{t}"), json!({"keys": [hash_key(&format!("key-{t}"))], "quotas": {"max_sessions": per_tenant}}))
        })
        .collect();
    let config = common::config(
        &["kv"],
        json!({
            "server": {"connection_close": "never", "limits": {"max_instances": sessions + 200, "memory_mb": 16}},
            "tenants": tenants
        }),
    );
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let sandbox = Sandbox::start(config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = Arc::new(format!("http://{}", listener.local_addr().unwrap()));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(http::serve(listener, sandbox, async {
            let _ = stop_rx.await;
        }));
        let client = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
        let post = move |key: String, path: &'static str, body: Value| {
            let (client, base) = (client.clone(), base.clone());
            async move {
                let r = client.post(format!("{base}{path}")).bearer_auth(key).json(&body).send().await.unwrap();
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap())
            }
        };

        // 1. Sessions: every tenant fills its quota; each session records its owner.
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        let gate = Arc::new(tokio::sync::Semaphore::new(64));
        for i in 0..per_tenant * TENANTS {
            let (post, gate) = (post.clone(), gate.clone());
            tasks.spawn(async move {
                let _permit = gate.acquire().await.unwrap();
                let (t, w) = (i % TENANTS, format!("w{}", i / TENANTS));
                let key = format!("key-{t}");
                let (s, _) = post(key.clone(), "/api/v1/session/create", json!({"worker_id": w, "resource_type": "kv"})).await;
                assert_eq!(s, 200);
                let owner = json!({"worker_id": w, "action": "kv:set", "params": {"key": "owner", "value": format!("t{t}/{w}")}});
                assert_eq!(post(key, "/api/v1/execute", owner).await.0, 200);
            });
        }
        while tasks.join_next().await.is_some() {}
        println!("{} sessions across {TENANTS} tenants created in {:.1} s", per_tenant * TENANTS, started.elapsed().as_secs_f64());
        // The quota holds exactly: one more session per tenant is refused.
        for t in 0..TENANTS {
            let (s, body) = post(format!("key-{t}"), "/api/v1/session/create", json!({"worker_id": "extra", "resource_type": "kv"})).await;
            assert_eq!((s, body["code"].as_i64()), (429, Some(7009)), "tenant t{t} quota");
        }
        println!("quota: the {}th session of every tenant was refused with 429", per_tenant + 1);

        // 2. A stream of calls: each task owns a slice of sessions and counts its calls.
        let counts: Arc<Vec<AtomicU64>> = Arc::new((0..per_tenant * TENANTS).map(|_| AtomicU64::new(0)).collect());
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        let errors = Arc::new(AtomicU64::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        const STREAMS: usize = 32;
        for s in 0..STREAMS {
            let (post, counts, errors) = (post.clone(), counts.clone(), errors.clone());
            tasks.spawn(async move {
                let mut latencies = Vec::new();
                // This stream owns the sessions i ≡ s (mod STREAMS), and no other stream does,
                // so it knows each of their counters exactly.
                let own: Vec<usize> = (s..counts.len()).step_by(STREAMS).collect();
                let mut next = 0;
                while Instant::now() < deadline && !own.is_empty() {
                    let i = own[next % own.len()];
                    next += 1;
                    let (t, w) = (i % TENANTS, format!("w{}", i / TENANTS));
                    let call = json!({"worker_id": w, "action": "kv:incr", "params": {"key": "n"}});
                    let at = Instant::now();
                    let (status, body) = post(format!("key-{t}"), "/api/v1/execute", call).await;
                    latencies.push(at.elapsed());
                    if status == 200 && body["data"]["value"].as_u64() == Some(counts[i].load(Ordering::Relaxed) + 1) {
                        counts[i].fetch_add(1, Ordering::Relaxed);
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                latencies
            });
        }
        let mut latencies = Vec::new();
        while let Some(l) = tasks.join_next().await {
            latencies.extend(l.unwrap());
        }
        latencies.sort();
        let calls = latencies.len();
        let pct = |p: f64| latencies[((calls as f64 * p) as usize).min(calls - 1)].as_secs_f64() * 1e6;
        println!(
            "stream: {calls} calls in {seconds} s ({:.0}/s) over {STREAMS} connections; p50 {:.0} µs, p99 {:.0} µs; errors {}",
            calls as f64 / seconds,
            pct(0.5),
            pct(0.99),
            errors.load(Ordering::Relaxed)
        );

        // 3. Every session: its counter equals the calls the client made, its owner is itself.
        let mut lost = 0;
        let mut misrouted = 0;
        for i in 0..counts.len() {
            let (t, w) = (i % TENANTS, format!("w{}", i / TENANTS));
            let key = format!("key-{t}");
            let (_, n) = post(key.clone(), "/api/v1/execute", json!({"worker_id": w, "action": "kv:get", "params": {"key": "n"}})).await;
            let expected = counts[i].load(Ordering::Relaxed);
            let got = n["data"]["value"].as_u64().unwrap_or(0);
            if got != expected {
                lost += 1;
            }
            let (_, o) = post(key, "/api/v1/execute", json!({"worker_id": w, "action": "kv:get", "params": {"key": "owner"}})).await;
            if o["data"]["value"] != json!(format!("t{t}/{w}")) {
                misrouted += 1;
            }
        }
        println!("check: {} sessions; lost {lost}; misrouted {misrouted}", counts.len());
        let _ = stop_tx.send(());
        let _ = server.await;
        assert_eq!((lost, misrouted, errors.load(Ordering::Relaxed)), (0, 0, 0));
    });
}
