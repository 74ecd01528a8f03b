//! Clients that give up mid-call. A call that has started runs to its end or its deadline
//! whatever happens to the connection: the session keeps its state and stays usable, its
//! busy mark is released (so it is reaped at its TTL), and its scratch directory goes with it.
//! The run API's and MCP's own cases are in `run.rs` and `mcp.rs`.

use cella_e2e::{Server, repo_root, worker};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A client that gives up after `secs` seconds, as httpx does after 5 by default.
pub fn impatient(secs: f64) -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs_f64(secs)).build().expect("a client")
}

/// The host folder behind a session's scratch grant (the tests' cache dir is shared).
pub fn scratch_of(session_id: &str) -> PathBuf {
    repo_root().join("target/test-cache/scratch").join(session_id)
}

/// Waits (up to `limit`) for `cond`.
pub async fn within(limit: Duration, mut cond: impl AsyncFnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn sessions(s: &Server, w: &str) -> Vec<Value> {
    let (_, list) = s.post("/api/v1/session/list", json!({"worker_id": w})).await;
    list["data"]["sessions"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn execute_survives_a_client_that_disconnects_mid_call() {
    let s = Server::start(json!({
        "server": {"session_ttl": 3},
        "resources": {"faulty": {"grants": {"scratch": {"guest": "/scratch", "quota_mb": 4}}}}
    }))
    .await;
    // Warm first, so that no compile stretches the steps below past the TTL.
    assert_eq!(s.post("/api/v1/warmup", json!({"backends": ["faulty"]})).await.0, 200);
    let w = worker("gone");
    let (status, created) = s.post("/api/v1/session/create", json!({"worker_id": w, "resource_type": "faulty"})).await;
    assert_eq!(status, 200, "{created}");
    let id = created["data"]["session_id"].as_str().expect("a session id").to_string();
    let (_, first) = s.execute(&w, "faulty:echo", json!({"value": "a"})).await;
    assert_eq!(first["data"]["calls"], 1);
    assert!(scratch_of(&id).is_dir(), "the session has a scratch directory");

    // A 4 s call whose client gives up after 1 s.
    let body = json!({"worker_id": w, "action": "faulty:sleep", "params": {"ms": 4000}});
    let gave_up = impatient(1.0).post(format!("{}/api/v1/execute", s.base)).json(&body).send().await;
    assert!(gave_up.is_err_and(|e| e.is_timeout()), "the client timed out");

    // The call goes on to its end; then the same session answers, with its state.
    let (status, next) = s.execute(&w, "faulty:echo", json!({"value": "b"})).await;
    assert_eq!(status, 200, "{next}");
    assert_eq!(next["data"]["calls"], 2, "the session kept its state: {next}");
    assert_eq!(next["meta"]["session_id"], id.as_str());

    // Abandoned now: reaped at its TTL (busy was released), and its scratch folder goes too.
    let reaped = within(Duration::from_secs(20), async || sessions(&s, &w).await.is_empty()).await;
    assert!(reaped, "the abandoned session was not reaped: {:?}", sessions(&s, &w).await);
    assert!(within(Duration::from_secs(5), async || !scratch_of(&id).exists()).await, "scratch left behind");
}

#[tokio::test]
async fn a_temporary_session_abandoned_mid_call_leaves_nothing_behind() {
    let s = Server::start(json!({
        "resources": {"faulty": {"grants": {"scratch": {"guest": "/scratch", "quota_mb": 4}}}}
    }))
    .await;
    let w = worker("gone-tmp");
    let body = json!({"worker_id": w, "action": "faulty:sleep", "params": {"ms": 3000}});
    let gave_up = impatient(1.0).post(format!("{}/api/v1/execute", s.base)).json(&body).send().await;
    assert!(gave_up.is_err_and(|e| e.is_timeout()));
    // The temporary session's scratch folder is named by its id, which the client never saw:
    // look for the folders of this worker's temporary sessions (names keep 32 characters).
    let safe: String = w.chars().take(32).collect();
    let leftovers = || -> Vec<String> {
        std::fs::read_dir(repo_root().join("target/test-cache/scratch"))
            .map(|d| {
                d.flatten().map(|e| e.file_name().to_string_lossy().to_string()).filter(|n| n.contains(&safe)).collect()
            })
            .unwrap_or_default()
    };
    assert!(!leftovers().is_empty(), "the call is still running in its temporary session");
    assert!(within(Duration::from_secs(10), async || leftovers().is_empty()).await, "{:?}", leftovers());
    // And the server is fine.
    let (status, _) = s.execute(&w, "faulty:echo", json!({"value": 1})).await;
    assert_eq!(status, 200);
}
