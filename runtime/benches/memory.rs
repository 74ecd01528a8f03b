//! Live-session memory: per kv session, for 1,000 and 10,000 sessions or the counts given,
//! the resident memory (RSS), the unshared part (private pages, from `smaps_rollup`), the
//! page tables (`VmPTE`) and the memory mappings; then how long ending them all takes, and
//! the RSS after (memory after churn).
//! Run with: `cargo bench -p cella-runtime --bench memory [-- [BACKEND] COUNT...]`
//! (e.g. `-- 1000 100000`; `CELLA_MEMORY_SESSIONS=1000,100000` works too). BACKEND is `kv`
//! (the default), `python` (the scientific one), `python-lite` or `javascript`: each session then runs one small cell
//! (`x = 1`, `let x = 1`) instead of a `kv:set`, in the backend's own memory limit.
//!
//! Each session holds about four memory mappings: 100,000 sessions need `vm.max_map_count`
//! above 400,000 (Linux's default is 65,530). When creating a session fails, the report says
//! how many were held.
// A benchmark that cannot set up stops with a panic: that is its failure report.
#![allow(clippy::unwrap_used)]
// criterion_group! makes undocumented public functions.
#![allow(missing_docs)]

use cella_runtime::sandbox::params;
use cella_runtime::{Caller, Sandbox};
use serde_json::{Value, json};

#[allow(dead_code)]
mod common;

/// The process's memory now, in bytes: resident, private (unshared) and page tables; and its
/// count of memory mappings.
#[derive(Clone, Copy)]
struct Usage {
    rss: u64,
    private: u64,
    page_tables: u64,
    maps: u64,
}

/// The value in KiB of `field` in a `/proc` file of `Name:  123 kB` lines, in bytes.
fn kib_field(text: &str, field: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(field))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum::<u64>()
        * 1024
}

fn usage() -> Usage {
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default().lines().count() as u64;
    Usage {
        rss: kib_field(&rollup, "Rss:"),
        private: kib_field(&rollup, "Private_Clean:") + kib_field(&rollup, "Private_Dirty:"),
        page_tables: kib_field(&status, "VmPTE:"),
        maps,
    }
}

/// Prints the process's mappings grouped by size and permissions, the groups holding the
/// most resident memory first (`CELLA_MEMORY_SMAPS=1`).
fn print_top_mappings() {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    let mut maps: Vec<(u64, u64, String)> = Vec::new();
    let kib = |rest: &str| rest.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    for line in smaps.lines() {
        if line.chars().next().is_some_and(|c| c.is_ascii_hexdigit()) && line.contains('-') {
            maps.push((0, 0, line.to_string()));
        } else if let Some(last) = maps.last_mut() {
            if let Some(rest) = line.strip_prefix("Rss:") {
                last.0 = kib(rest);
            } else if let Some(rest) =
                line.strip_prefix("Private_Clean:").or_else(|| line.strip_prefix("Private_Dirty:"))
            {
                last.1 += kib(rest);
            }
        }
    }
    // Mappings grouped by size and permissions, with their total resident memory.
    let mut groups: std::collections::BTreeMap<(u64, String), (u64, u64, u64)> = Default::default();
    for (rss, private, header) in &maps {
        let mut words = header.split_whitespace();
        let range = words.next().unwrap_or_default();
        let perms = words.next().unwrap_or_default().to_string();
        let (a, b) = range.split_once('-').unwrap_or(("0", "0"));
        let size = u64::from_str_radix(b, 16).unwrap_or(0).saturating_sub(u64::from_str_radix(a, 16).unwrap_or(0));
        let entry = groups.entry((size >> 10, perms)).or_default();
        entry.0 += 1;
        entry.1 += rss;
        entry.2 += private;
    }
    let mut groups: Vec<_> = groups.into_iter().collect();
    groups.sort_by_key(|g| std::cmp::Reverse(g.1.1));
    for ((size, perms), (count, rss, private)) in groups.iter().take(8) {
        println!("    {count} mappings of {size} KiB {perms}: {rss} KiB resident, {private} KiB private");
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}

/// The session counts to measure: the numbers among the arguments (`cargo bench` adds
/// `--bench`, which is skipped), else `CELLA_MEMORY_SESSIONS`, else 1,000 and 10,000 kv
/// sessions or 200 interpreter sessions.
fn counts(resource: &str) -> Vec<usize> {
    let from_args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.replace('_', "").parse().ok()).collect();
    if !from_args.is_empty() {
        return from_args;
    }
    let from_env: Vec<usize> = std::env::var("CELLA_MEMORY_SESSIONS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|c| c.trim().replace('_', "").parse().ok())
        .collect();
    match (from_env.is_empty(), resource) {
        (false, _) => from_env,
        (true, "kv") => vec![1_000, 10_000],
        (true, _) => vec![200],
    }
}

/// The backend measured: `kv` unless an argument names `python` or `javascript`; with the
/// tool each session calls once and its parameters for session `i`.
fn backend() -> (&'static str, &'static str, fn(usize) -> Value) {
    let named = std::env::args().skip(1).find_map(|a| match a.as_str() {
        "python" => Some("python"),
        "python-lite" => Some("python-lite"),
        "javascript" => Some("javascript"),
        _ => None,
    });
    match named {
        // The scientific Python's warm image has numpy, pandas and matplotlib imported.
        Some("python") => ("python", "python:run", |_| json!({"code": "import numpy, pandas, matplotlib; x = 1"})),
        Some("python-lite") => ("python-lite", "python-lite:run", |_| json!({"code": "x = 1"})),
        Some(_) => ("javascript", "javascript:run", |_| json!({"code": "let x = 1"})),
        None => ("kv", "kv:set", |i| json!({"key": "k", "value": i})),
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let (resource, tool, call) = backend();
    for count in counts(resource) {
        // kv sessions get a 16 MiB memory limit (they use well under 1); the interpreters keep
        // their backends' own.
        let limits = if resource == "kv" {
            json!({"max_instances": count + 100, "memory_mb": 16})
        } else {
            json!({"max_instances": count + 100})
        };
        let config = common::config(&[resource], json!({"server": {"limits": limits}}));
        rt.block_on(async {
            let sb = Sandbox::start(config).await.unwrap();
            sb.warmup(None).await;
            // One session first, so one-time costs are not counted per session.
            let first = Caller::new("first");
            sb.create_session(&first, resource, Value::Null, None).await.unwrap();
            sb.execute(&first, tool, params(call(0)), Default::default()).await;
            let before = usage();
            let started = std::time::Instant::now();
            let mut held = 0;
            for i in 0..count {
                let caller = Caller::new(format!("mem-{i}"));
                match sb.create_session(&caller, resource, Value::Null, None).await {
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
                let env = sb.execute(&caller, tool, params(call(i)), Default::default()).await;
                assert_eq!(env.code, 0, "{env:?}");
            }
            let created = started.elapsed();
            let after = usage();
            let per = |f: fn(&Usage) -> u64| f(&after).saturating_sub(f(&before)) as f64 / held.max(1) as f64;
            println!(
                "{resource} sessions: {held} live (asked {count}) in {:.1} s; RSS {:.1} -> {:.1} MiB; per session: \
                 {:.1} KiB RSS, {:.1} KiB unshared, {:.1} KiB page tables, {:.1} mappings",
                created.as_secs_f64(),
                mib(before.rss),
                mib(after.rss),
                per(|u| u.rss) / 1024.0,
                per(|u| u.private) / 1024.0,
                per(|u| u.page_tables) / 1024.0,
                per(|u| u.maps),
            );
            if std::env::var_os("CELLA_MEMORY_SMAPS").is_some() {
                print_top_mappings();
            }
            let ending = std::time::Instant::now();
            let ended = sb.destroy_all_sessions().await;
            let took = ending.elapsed();
            let churned = usage();
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            let idle = usage();
            println!(
                "  ended {ended} sessions in {:.2} s; RSS then {:.1} MiB, {:.1} MiB 2 s later (peak {:.1}, start {:.1})",
                took.as_secs_f64(),
                mib(churned.rss),
                mib(idle.rss),
                mib(after.rss),
                mib(before.rss)
            );
            if std::env::var_os("CELLA_MEMORY_SMAPS").is_some() {
                print_top_mappings();
            }
            sb.shutdown().await;
        });
    }
}
