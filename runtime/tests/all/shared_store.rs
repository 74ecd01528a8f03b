//! Servers sharing one snapshot store (`server.snapshots.dir`): each kept session belongs to
//! the node that stored it, comes back only there, and goes to another node only when
//! released.

use crate::cli::{interrupt, post, run, serve_env, stderr};
use crate::common::shared_cache;
use serde_json::{Value, json};

/// The `cella snapshots claims --json` of a configuration: (session id, node), sorted.
fn claims(config: &str) -> Vec<(String, String)> {
    let out = run(&["snapshots", "claims", "--json", "--config", config]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut claims: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|c| (c["session_id"].as_str().unwrap().to_string(), c["node"].as_str().unwrap().to_string()))
        .collect();
    claims.sort();
    claims
}

/// The worker's sessions on a server: (session id, status).
async fn sessions(base: &str, worker: &str) -> Vec<(String, String)> {
    let listed = post(base, "/api/v1/session/list", json!({"worker_id": worker})).await;
    let all = listed["data"]["sessions"].as_array().cloned().unwrap_or_default();
    all.iter()
        .map(|s| (s["session_id"].as_str().unwrap().to_string(), s["status"].as_str().unwrap().to_string()))
        .collect()
}

async fn get(base: &str, worker: &str) -> Value {
    let body = json!({"worker_id": worker, "action": "kv:get", "params": {"key": "k"}});
    let got = post(base, "/api/v1/execute", body).await;
    assert_eq!(got["code"], 0, "{got}");
    got["data"]["value"].clone()
}

/// Node `a` pauses one kv session and checkpoints another; node `b`, started on the same
/// store while `a` runs, and again after `a` is killed, brings back neither (both are
/// `a`'s). `a` restarted takes both back from its own claims; once `a`'s sessions are
/// released (`cella snapshots release`), `b`'s next start brings them back with their state
/// and owns them, and a session that ends gives its claim up.
#[test]
fn servers_sharing_a_store_bring_back_each_kept_session_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = |node: &str, checkpoint: f64| {
        let config = json!({
            "server": {"cache_dir": shared_cache(), "session_ttl": 300,
                       "snapshots": {"dir": dir.path().join("snapshots"), "node": node,
                                     "checkpoint_interval_s": checkpoint}},
            "resources": {"kv": {"component": "builtin:kv"}}
        });
        let path = dir.path().join(format!("{node}.json"));
        std::fs::write(&path, config.to_string()).unwrap();
        path.display().to_string()
    };
    let (a_config, b_config) = (config("node-a", 0.2), config("node-b", 0.0));
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (paused, live) = (format!("paused-{id}"), format!("live-{id}"));
    let rt = tokio::runtime::Runtime::new().unwrap();

    let (a, a_base) = serve_env(&["--config", &a_config], &[]);
    let (paused_id, live_id) = rt.block_on(async {
        let mut ids = Vec::new();
        for (worker, value) in [(&paused, 1), (&live, 2)] {
            let created =
                post(&a_base, "/api/v1/session/create", json!({"worker_id": worker, "resource_type": "kv"})).await;
            ids.push(created["data"]["session_id"].as_str().expect("created").to_string());
            let set = json!({"worker_id": worker, "action": "kv:set", "params": {"key": "k", "value": value}});
            assert_eq!(post(&a_base, "/api/v1/execute", set).await["code"], 0);
        }
        let pause = post(&a_base, "/api/v1/session/pause", json!({"worker_id": paused, "resource_type": "kv"})).await;
        assert_eq!(pause["code"], 0, "{pause}");
        // The live session's first checkpoint.
        for _ in 0..100 {
            let listed: Value = reqwest::get(format!("{a_base}/api/v1/snapshots")).await.unwrap().json().await.unwrap();
            if listed["data"]["snapshots"].as_array().unwrap().iter().any(|r| r["reason"] == "checkpoint") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        (ids[0].clone(), ids[1].clone())
    });
    let a_owns = vec![(live_id.clone(), "node-a".to_string()), (paused_id.clone(), "node-a".to_string())];
    let mut a_owns = a_owns;
    a_owns.sort();
    assert_eq!(claims(&b_config), a_owns, "both are a's");

    // b starts beside the running a: a's paused and checkpointed sessions are not b's.
    let (b, b_base) = serve_env(&["--config", &b_config], &[]);
    rt.block_on(async {
        assert_eq!(sessions(&b_base, &paused).await, []);
        assert_eq!(sessions(&b_base, &live).await, []);
    });
    let log = interrupt(b);
    assert!(log.contains("claimed by other nodes of the snapshot store are left to them"), "{log}");

    // a crashes: its sessions wait for a, not for the next server to start.
    let mut a = a.take();
    a.kill().unwrap();
    let _ = a.wait();
    let (b, b_base) = serve_env(&["--config", &b_config], &[]);
    rt.block_on(async { assert_eq!(sessions(&b_base, &paused).await, []) });
    interrupt(b);

    // a restarted takes its own back, with their state; a graceful stop keeps them again.
    let (a, a_base) = serve_env(&["--config", &a_config], &[]);
    rt.block_on(async {
        assert_eq!(sessions(&a_base, &paused).await, [(paused_id.clone(), "paused".to_string())]);
        assert_eq!(sessions(&a_base, &live).await, [(live_id.clone(), "paused".to_string())]);
        assert_eq!(get(&a_base, &paused).await, 1);
        assert_eq!(get(&a_base, &live).await, 2);
    });
    interrupt(a);
    assert_eq!(claims(&b_config), a_owns);

    // Released, they go to the next server that starts, b, which owns them from then on.
    let out = run(&["snapshots", "release", "--node", "node-a", "--config", &b_config]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("released 2 sessions of node node-a"), "{}", stderr(&out));
    let (b, b_base) = serve_env(&["--config", &b_config], &[]);
    rt.block_on(async {
        assert_eq!(sessions(&b_base, &paused).await, [(paused_id.clone(), "paused".to_string())]);
        assert_eq!(get(&b_base, &paused).await, 1);
        assert_eq!(get(&b_base, &live).await, 2);
        let b_owns: Vec<_> = a_owns.iter().map(|(s, _)| (s.clone(), "node-b".to_string())).collect();
        assert_eq!(claims(&b_config), b_owns);
        // A session that ends gives its claim up.
        let destroyed =
            post(&b_base, "/api/v1/session/destroy", json!({"worker_id": paused, "resource_type": "kv"})).await;
        assert_eq!(destroyed["code"], 0, "{destroyed}");
        assert_eq!(claims(&b_config), [(live_id.clone(), "node-b".to_string())]);
    });
    interrupt(b);

    // Deleting (with --force) the last record a kept session could come back from removes
    // its claim too; until then the claim stays.
    let out = run(&["snapshots", "list", "--json", "--config", &b_config]);
    assert!(out.status.success(), "{}", stderr(&out));
    let held: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["session_id"] == live_id.as_str() && r["reason"] != "snapshot")
        .map(|r| r["snapshot_id"].as_str().unwrap().to_string())
        .collect();
    assert!(!held.is_empty(), "the stopped server kept the live session");
    for (n, id) in held.iter().enumerate() {
        let out = run(&["snapshots", "delete", id, "--force", "--config", &b_config]);
        assert!(out.status.success(), "{}", stderr(&out));
        let left = if n + 1 < held.len() { vec![(live_id.clone(), "node-b".to_string())] } else { vec![] };
        assert_eq!(claims(&b_config), left, "after deleting {} of {} records", n + 1, held.len());
    }
}
