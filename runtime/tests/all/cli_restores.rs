//! Restores in a server of their own, where a process-wide limit can be set without touching
//! the other tests.

use crate::cli::{interrupt, post, serve_env};
use crate::common::shared_cache;

/// How many of the server's mappings are of snapshot pages (a copy-on-write restore's).
fn snapshot_mappings(pid: u32) -> usize {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    maps.lines().filter(|l| l.contains("memfd:cella-snapshot")).count()
}

/// A `cella serve` of its own (kv only, `max_instances` slots, a store in a temporary
/// directory), with `envs` set, and a kv session of `worker` holding 1 MiB under "big".
/// Returns the directory (kept alive), the server, its base URL and its pid.
fn kv_server_holding_big(
    max_instances: u32,
    envs: &[(&str, &str)],
    worker: &str,
    rt: &tokio::runtime::Runtime,
) -> (tempfile::TempDir, crate::cli::Served, String, u32) {
    let dir = tempfile::tempdir().unwrap();
    let config = serde_json::json!({
        "server": {"cache_dir": shared_cache(), "limits": {"max_instances": max_instances},
                   "snapshots": {"dir": dir.path().join("snapshots"), "keep_on_shutdown": false}},
        "resources": {"kv": {"component": "builtin:kv"}}
    });
    let path = dir.path().join("cella.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let (child, base) = serve_env(&["--config", &path.display().to_string()], envs);
    let pid = child.0.as_ref().unwrap().id();
    rt.block_on(async {
        let created =
            post(&base, "/api/v1/session/create", serde_json::json!({"worker_id": worker, "resource_type": "kv"}))
                .await;
        assert_eq!(created["code"], 0, "{created}");
        let big = serde_json::json!({"worker_id": worker, "action": "kv:set",
                                     "params": {"key": "big", "value": "s".repeat(1 << 20)}});
        let set = post(&base, "/api/v1/execute", big).await;
        assert_eq!(set["code"], 0, "{set}");
    });
    (dir, child, base, pid)
}

/// Forks `worker`'s kv session into `count` copies; returns their worker ids.
async fn fork_kv(base: &str, worker: &str, count: usize) -> Vec<String> {
    let fork = serde_json::json!({"worker_id": worker, "resource_type": "kv", "count": count});
    let forked = post(base, "/api/v1/session/fork", fork).await;
    forked["data"]["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("{forked}"))
        .iter()
        .filter_map(|c| c["worker_id"].as_str().map(str::to_string))
        .collect()
}

/// Copy-on-write restores hold kernel map entries, at most `CELLA_RESTORE_MAPS` at once
/// (default an eighth of `vm.max_map_count`); past it a restore copies its pages instead.
/// With room for one copy's mappings, three copies of a kv session holding 1 MiB all see it
/// and diverge, at most one maps the source's pages, the source is unaffected, and a session
/// made in a slot a copy used starts from the fresh image.
#[test]
#[cfg(target_os = "linux")]
fn restores_past_the_map_budget_copy_their_pages() {
    let worker = format!("budget-{}", uuid::Uuid::new_v4().simple());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_dir, child, base, pid) = kv_server_holding_big(4, &[("CELLA_RESTORE_MAPS", "4")], &worker, &rt);
    let exec = |worker: String, action: &str, params: serde_json::Value| serde_json::json!({"worker_id": worker, "action": action, "params": params});
    rt.block_on(async {
        let copies = fork_kv(&base, &worker, 3).await;
        assert_eq!(copies.len(), 3);
        let mapped = snapshot_mappings(pid);
        assert!(
            (1..=2).contains(&mapped),
            "one copy maps the pages (one or two mappings), the others copied: {mapped}"
        );
        for (k, copy) in copies.iter().enumerate() {
            let got =
                post(&base, "/api/v1/execute", exec(copy.clone(), "kv:get", serde_json::json!({"key": "big"}))).await;
            assert_eq!(got["data"]["value"].as_str().map(str::len), Some(1 << 20), "copy {k}");
            let mine = serde_json::json!({"key": "big", "value": format!("copy {k}")});
            assert_eq!(post(&base, "/api/v1/execute", exec(copy.clone(), "kv:set", mine)).await["code"], 0);
        }
        for (k, copy) in copies.iter().enumerate() {
            let got =
                post(&base, "/api/v1/execute", exec(copy.clone(), "kv:get", serde_json::json!({"key": "big"}))).await;
            assert_eq!(got["data"]["value"], format!("copy {k}"));
            let destroy = serde_json::json!({"worker_id": copy, "resource_type": "kv"});
            assert_eq!(post(&base, "/api/v1/session/destroy", destroy).await["code"], 0);
        }
        let got =
            post(&base, "/api/v1/execute", exec(worker.clone(), "kv:get", serde_json::json!({"key": "big"}))).await;
        assert_eq!(got["data"]["value"].as_str().map(str::len), Some(1 << 20), "the source is unaffected");
        // The copies' slots are free again: three new sessions take them, each empty.
        for k in 0..3 {
            let fresh = format!("{worker}-fresh-{k}");
            let keys = post(&base, "/api/v1/execute", exec(fresh, "kv:keys", serde_json::json!({}))).await;
            assert_eq!(keys["data"]["keys"], serde_json::json!([]), "{keys}");
        }
        assert_eq!(snapshot_mappings(pid), 0, "no snapshot pages mapped once the copies ended");
    });
    interrupt(child);
}

/// A fork of one copy moves the captured pages into it; a fork of several maps them from one
/// memfd into each copy. Counted in a server of its own: `/proc/PID/maps` is process-wide,
/// and the in-process tests fork side by side.
#[test]
#[cfg(target_os = "linux")]
fn one_copy_takes_the_pages_several_map_them() {
    let worker = format!("takes-{}", uuid::Uuid::new_v4().simple());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_dir, child, base, pid) = kv_server_holding_big(8, &[], &worker, &rt);
    let call = |worker: &str, action: &str, params: serde_json::Value| serde_json::json!({"worker_id": worker, "action": action, "params": params});
    rt.block_on(async {
        for count in [1, 2, 1] {
            let copies = fork_kv(&base, &worker, count).await;
            assert_eq!(copies.len(), count);
            assert_eq!(snapshot_mappings(pid) > 0, count > 1, "a fork of {count}: several copies map, one takes");
            for copy in &copies {
                let got = post(&base, "/api/v1/execute", call(copy, "kv:get", serde_json::json!({"key": "big"}))).await;
                assert_eq!(got["data"]["value"].as_str().map(str::len), Some(1 << 20), "{copy}");
                let destroy = serde_json::json!({"worker_id": copy, "resource_type": "kv"});
                assert_eq!(post(&base, "/api/v1/session/destroy", destroy).await["code"], 0);
            }
            assert_eq!(snapshot_mappings(pid), 0, "no snapshot pages mapped once the copies ended");
        }
    });
    interrupt(child);
}
