//! Live-session memory: RSS per kv session for 1,000 and 10,000 sessions, or the counts given.
//! Run with: `cargo bench -p cella-runtime --bench memory [-- COUNT...]`
//! (e.g. `-- 1000 50000`; `CELLA_MEMORY_SESSIONS=1000,50000` works too).
//!
//! Each pooled linear memory reserves wasmtime's default address space (4 GiB plus guard), so
//! one process holds at most about 10,500 pool slots whatever `vm.max_map_count` is (issue
//! #17); when creating a session fails, the report says how many were held.
// A benchmark that cannot set up stops with a panic: that is its failure report.
#![allow(clippy::unwrap_used)]
// criterion_group! makes undocumented public functions.
#![allow(missing_docs)]

use cella_runtime::sandbox::params;
use cella_runtime::{Caller, Sandbox};
use serde_json::{Value, json};

#[allow(dead_code)]
mod common;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// The session counts to measure: the numbers among the arguments (`cargo bench` adds
/// `--bench`, which is skipped), else `CELLA_MEMORY_SESSIONS`, else 1,000 and 10,000.
fn counts() -> Vec<usize> {
    let from_args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.replace('_', "").parse().ok()).collect();
    if !from_args.is_empty() {
        return from_args;
    }
    let from_env: Vec<usize> = std::env::var("CELLA_MEMORY_SESSIONS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|c| c.trim().replace('_', "").parse().ok())
        .collect();
    if from_env.is_empty() { vec![1_000, 10_000] } else { from_env }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    for count in counts() {
        let config =
            common::config(&["kv"], json!({"server": {"limits": {"max_instances": count + 100, "memory_mb": 16}}}));
        rt.block_on(async {
            let sb = Sandbox::start(config).await.unwrap();
            sb.warmup(None).await;
            // One session first, so one-time costs are not counted per session.
            sb.create_session(&Caller::new("first"), "kv", Value::Null, None).await.unwrap();
            let before = rss_bytes();
            let mut held = 0;
            for i in 0..count {
                let caller = Caller::new(format!("mem-{i}"));
                match sb.create_session(&caller, "kv", Value::Null, None).await {
                    Ok(c) if c.session.status == "active" => held += 1,
                    Ok(c) => {
                        println!("session {i} failed: {:?}", c.session.error);
                        break;
                    }
                    Err(e) => {
                        println!("session {i} refused: {}", e.message);
                        break;
                    }
                }
                let env =
                    sb.execute(&caller, "kv:set", params(json!({"key": "k", "value": i})), Default::default()).await;
                assert_eq!(env.code, 0, "{env:?}");
            }
            let after = rss_bytes();
            let per = (after.saturating_sub(before)) as f64 / held.max(1) as f64;
            println!(
                "kv sessions: {held} live (asked {count}); RSS {:.1} MiB -> {:.1} MiB; {:.1} KiB per session",
                before as f64 / 1048576.0,
                after as f64 / 1048576.0,
                per / 1024.0
            );
            sb.shutdown().await;
        });
    }
}
