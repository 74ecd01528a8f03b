//! Session snapshots over HTTP, on the real server: fork, pause and resume, stored snapshots
//! (list, restore, delete), tenants kept apart, quotas, `on_timeout: "pause"`, and sessions of
//! every kind that outlive a graceful restart with their ids and state.

use cella_e2e::{Server, code_server, eventually};
use cella_runtime::tenancy::hash_key;
use serde_json::{Value, json};
use std::time::Duration;

const A: &str = "snapshot-key-a";
const B: &str = "snapshot-key-b";

fn worker(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

async fn status_of(s: &Server, w: &str) -> Vec<(String, String)> {
    let (_, body) = s.post("/api/v1/session/list", json!({"worker_id": w})).await;
    body["data"]["sessions"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|x| (x["session_id"].as_str().unwrap().to_string(), x["status"].as_str().unwrap().to_string()))
        .collect()
}

/// Fork over HTTP: the copies have the source's keys and their own workers and ids.
#[tokio::test]
async fn fork_pause_resume_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(json!({"server": {"snapshots": {"dir": dir.path()}}})).await;
    let w = worker("http-fork");
    s.post("/api/v1/session/create", json!({"worker_id": w, "resource_type": "kv"})).await;
    s.execute(&w, "kv:set", json!({"key": "a", "value": 7})).await;
    let (status, body) =
        s.post("/api/v1/session/fork", json!({"worker_id": w, "resource_type": "kv", "count": 2})).await;
    assert_eq!(status, 200, "{body}");
    let copies = body["data"]["sessions"].as_array().unwrap();
    assert_eq!(copies.len(), 2);
    for copy in copies {
        let fork = copy["worker_id"].as_str().unwrap();
        assert!(fork.starts_with(&format!("{w}-fork-")), "{copy}");
        let (_, got) = s.execute(fork, "kv:get", json!({"key": "a"})).await;
        assert_eq!(got["data"]["value"], 7, "{got}");
        assert_eq!(copy["session"]["session_id"], got["meta"]["session_id"], "the copy answers from its own session");
    }
    // Pause: listed as paused; the next call resumes it with its state.
    let (status, body) = s.post("/api/v1/session/pause", json!({"worker_id": w, "resource_type": "kv"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["reason"], "pause");
    assert_eq!(status_of(&s, &w).await[0].1, "paused");
    let (_, got) = s.execute(&w, "kv:get", json!({"key": "a"})).await;
    assert_eq!(got["data"]["value"], 7, "{got}");
    assert_eq!(status_of(&s, &w).await[0].1, "active");
    // An explicit resume of a live session changes nothing; a bad request is refused.
    let (status, _) = s.post("/api/v1/session/resume", json!({"worker_id": w, "resource_type": "kv"})).await;
    assert_eq!(status, 200);
    let (status, body) =
        s.post("/api/v1/session/fork", json!({"worker_id": w, "resource_type": "kv", "count": 99})).await;
    assert_eq!((status, body["code"].as_i64()), (400, Some(4000)), "{body}");
    let (status, body) = s.post("/api/v1/session/pause", json!({"worker_id": "nobody", "resource_type": "kv"})).await;
    assert_eq!((status, body["code"].as_i64()), (400, Some(4007)), "{body}");
}

/// Stored snapshots: listed per tenant, restored into a new session, deleted; another
/// tenant's is not found; a corrupted one is refused; the tenant's quota holds.
#[tokio::test]
async fn stored_snapshots_belong_to_their_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(json!({
        "server": {"snapshots": {"dir": dir.path()}},
        "tenants": {
            "a": {"keys": [hash_key(A)], "quotas": {"snapshot_mb": 1, "max_fork": 2}},
            "b": {"keys": [hash_key(B)]}
        }
    }))
    .await;
    s.post_as(A, "/api/v1/session/create", json!({"worker_id": "w", "resource_type": "kv"})).await;
    s.execute_as(A, "w", "kv:set", json!({"key": "k", "value": "v"})).await;
    let (status, body) =
        s.post_as(A, "/api/v1/session/snapshot", json!({"worker_id": "w", "resource_type": "kv"})).await;
    assert_eq!(status, 200, "{body}");
    let id = body["data"]["snapshot_id"].as_str().unwrap().to_string();
    let listed = |key: &'static str| {
        let s = &s;
        async move {
            let r = s.client.get(format!("{}/api/v1/snapshots", s.base)).bearer_auth(key).send().await.unwrap();
            r.json::<Value>().await.unwrap()["data"]["snapshots"].as_array().unwrap().len()
        }
    };
    assert_eq!(listed(A).await, 1);
    assert_eq!(listed(B).await, 0, "tenant b sees none of a's snapshots");
    let (status, body) = s.post_as(B, &format!("/api/v1/snapshots/{id}/restore"), json!({"worker_id": "thief"})).await;
    assert_eq!((status, body["code"].as_i64()), (404, Some(7010)), "{body}");
    let (status, body) = s.post_as(A, &format!("/api/v1/snapshots/{id}/restore"), json!({"worker_id": "w2"})).await;
    assert_eq!(status, 200, "{body}");
    let (_, got) = s.execute_as(A, "w2", "kv:get", json!({"key": "k"})).await;
    assert_eq!(got["data"]["value"], "v");
    // The fork quota: 2 copies per fork for tenant a, the server's 16 for b.
    let fork = json!({"worker_id": "w", "resource_type": "kv", "count": 3});
    let (status, body) = s.post_as(A, "/api/v1/session/fork", fork).await;
    assert_eq!((status, body["code"].as_i64()), (429, Some(7009)), "{body}");
    assert!(body["message"].as_str().unwrap().contains("max_fork"), "{body}");
    let fork = json!({"worker_id": "w", "resource_type": "kv", "count": 2});
    let (status, body) = s.post_as(A, "/api/v1/session/fork", fork).await;
    assert_eq!(status, 200, "{body}");
    // The quota: 1 MiB of snapshots. 2 MiB of random hex does not compress below it.
    let noise: String = (0..65_536).map(|_| uuid::Uuid::new_v4().simple().to_string()).collect();
    let (status, _) = s.execute_as(A, "w", "kv:set", json!({"key": "big", "value": noise})).await;
    assert_eq!(status, 200);
    let (status, body) =
        s.post_as(A, "/api/v1/session/snapshot", json!({"worker_id": "w", "resource_type": "kv"})).await;
    assert_eq!((status, body["code"].as_i64()), (429, Some(7009)), "{body}");
    assert!(body["message"].as_str().unwrap().contains("quota of 1 MiB"), "{body}");
    // Corrupt every stored blob: restoring is refused with 7011 and leaves no session.
    for entry in std::fs::read_dir(dir.path().join("tenants").join("a").join("blobs")).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len() - 1;
        bytes[n] ^= 0x55;
        std::fs::write(&path, bytes).unwrap();
    }
    let (status, body) = s.post_as(A, &format!("/api/v1/snapshots/{id}/restore"), json!({"worker_id": "w3"})).await;
    assert_eq!((status, body["code"].as_i64()), (409, Some(7011)), "{body}");
    let r = s.client.delete(format!("{}/api/v1/snapshots/{id}", s.base)).bearer_auth(B).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404, "b cannot delete a's snapshot");
    let r = s.client.delete(format!("{}/api/v1/snapshots/{id}", s.base)).bearer_auth(A).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

/// A session created with `on_timeout: "pause"` is paused at its TTL, not ended, and the
/// next call resumes it.
#[tokio::test]
async fn on_timeout_pause_keeps_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let patch = json!({"server": {"session_ttl": 1, "snapshots": {"dir": dir.path(), "keep_on_shutdown": true}}});
    let s = Server::start(patch.clone()).await;
    let w = worker("ttl-pause");
    let (status, body) =
        s.post("/api/v1/session/create", json!({"worker_id": w, "resource_type": "kv", "on_timeout": "pause"})).await;
    assert_eq!(status, 200, "{body}");
    s.execute(&w, "kv:set", json!({"key": "n", "value": 1})).await;
    let paused = eventually(Duration::from_secs(10), || {
        let s = &s;
        let w = w.clone();
        async move { status_of(s, &w).await.first().is_some_and(|x| x.1 == "paused") }
    })
    .await;
    assert!(paused, "the session is paused at its TTL: {:?}", status_of(&s, &w).await);
    let (_, got) = s.execute(&w, "kv:get", json!({"key": "n"})).await;
    assert_eq!(got["data"]["value"], 1, "{got}");
    let (status, body) = s
        .post("/api/v1/session/create", json!({"worker_id": worker("x"), "resource_type": "kv", "on_timeout": "later"}))
        .await;
    assert_eq!((status, body["code"].as_i64()), (400, Some(4004)), "{body}");

    // The wish outlives a graceful restart: brought back and resumed, the session is paused
    // at its TTL again rather than ended.
    let (status, _) = s.post("/api/v1/server/shutdown", json!({})).await;
    assert_eq!(status, 200);
    s.wait().await.expect("the server stops");
    let s = Server::start(patch).await;
    let (_, got) = s.execute(&w, "kv:get", json!({"key": "n"})).await;
    assert_eq!(got["data"]["value"], 1, "{got}");
    let paused = eventually(Duration::from_secs(10), || {
        let s = &s;
        let w = w.clone();
        async move { status_of(s, &w).await.first().is_some_and(|x| x.1 == "paused") }
    })
    .await;
    assert!(paused, "paused at its TTL after the restart too: {:?}", status_of(&s, &w).await);
}

/// A graceful restart: kv, Python and JavaScript sessions are snapshotted at shutdown and
/// each comes back on its first use, with its id and its state.
#[tokio::test]
async fn sessions_of_every_kind_survive_a_graceful_restart() {
    let dir = tempfile::tempdir().unwrap();
    let patch = json!({"server": {"snapshots": {"dir": dir.path(), "keep_on_shutdown": true}}});
    let s = code_server(patch.clone()).await;
    let w = worker("restart");
    let mut ids = Vec::new();
    for rt in ["kv", "python", "javascript"] {
        let (status, body) = s.post("/api/v1/session/create", json!({"worker_id": w, "resource_type": rt})).await;
        assert_eq!(status, 200, "{body}");
        ids.push(body["data"]["session_id"].as_str().unwrap().to_string());
    }
    s.execute(&w, "kv:set", json!({"key": "k", "value": "kept"})).await;
    s.execute(&w, "python:run", json!({"code": "import json\nkept = {'n': 41}\nopen('f.txt', 'w').write('on disk')"}))
        .await;
    s.execute(&w, "javascript:run", json!({"code": "globalThis.kept = 40 + 2"})).await;
    let (status, body) = s.post("/api/v1/server/shutdown", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sessions_cleaned"], 3, "{body}");
    s.wait().await.expect("the server stops");

    let s = code_server(patch).await;
    let listed = status_of(&s, &w).await;
    assert_eq!(listed.len(), 3, "{listed:?}");
    for (id, status) in &listed {
        assert!(ids.contains(id), "{id} kept its id");
        assert_eq!(status, "paused");
    }
    let (_, got) = s.execute(&w, "kv:get", json!({"key": "k"})).await;
    assert_eq!(got["data"]["value"], "kept", "{got}");
    let (_, got) =
        s.execute(&w, "python:run", json!({"code": "(kept['n'] + 1, open('f.txt').read(), json.dumps(1))"})).await;
    assert_eq!(got["data"]["result"], "(42, 'on disk', '1')", "{got}");
    let (_, got) = s.execute(&w, "javascript:run", json!({"code": "kept"})).await;
    assert_eq!(got["data"]["result"], "42", "{got}");
    assert!(status_of(&s, &w).await.iter().all(|x| x.1 == "active"));
}

/// The Rust SDK: snapshot, fork, pause (the next call resumes), restore, list, delete.
#[tokio::test]
async fn the_rust_sdk_snapshots_forks_and_pauses() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(json!({"server": {"snapshots": {"dir": dir.path()}}})).await;
    let sdk = cella_sdk::Sandbox::builder(&s.base).worker_id(worker("sdk")).start().await.unwrap();
    let _kv = sdk.create_session("kv", json!({})).await.unwrap();
    sdk.execute("kv:set", json!({"key": "a", "value": 1})).await.unwrap();
    let snap = sdk.snapshot("kv").await.unwrap();
    assert_eq!(snap.reason, "snapshot");
    let copies = sdk.fork("kv", 2).await.unwrap();
    assert_eq!(copies.len(), 2);
    let copy = cella_sdk::Sandbox::builder(&s.base).worker_id(&copies[0].worker_id).start().await.unwrap();
    assert_eq!(copy.execute("kv:get", json!({"key": "a"})).await.unwrap().data["value"], 1);
    sdk.pause("kv").await.unwrap();
    assert_eq!(sdk.list_sessions().await.unwrap()[0].status, "paused");
    assert_eq!(sdk.execute("kv:get", json!({"key": "a"})).await.unwrap().data["value"], 1);
    let other = cella_sdk::Sandbox::builder(&s.base).worker_id(worker("sdk-restored")).start().await.unwrap();
    let restored = other.restore_snapshot(&snap.snapshot_id).await.unwrap();
    assert_eq!(restored.status, "active");
    assert!(sdk.list_snapshots().await.unwrap().iter().any(|x| x.snapshot_id == snap.snapshot_id));
    sdk.delete_snapshot(&snap.snapshot_id).await.unwrap();
    let err = other.restore_snapshot(&snap.snapshot_id).await.unwrap_err();
    assert!(matches!(err, cella_sdk::Error::Api { status: 404, .. }), "{err:?}");
}
