//! The seeds' behaviours S-1 … S-14 through HTTP.

use cella_e2e::guest_logs::{capture_logs, logged};
use cella_e2e::{Server, worker};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn s1_s2_s11_start_warmup_and_auto_warmup() {
    let cache = tempfile::tempdir().unwrap();
    let s = Server::start(json!({"server": {"cache_dir": cache.path()}})).await;
    // S-1: every enabled backend's tools are registered.
    let (_, tools) = s.get("/api/v1/tools").await;
    let names: Vec<&str> =
        tools["tools"].as_array().unwrap().iter().map(|t| t["full_name"].as_str().unwrap()).collect();
    assert!(names.contains(&"kv:get") && names.contains(&"rag:search") && names.contains(&"notebook:write"));
    // S-11: the first execute warms rag.
    let (status, body) = s.execute(&worker("s11"), "rag:search", json!({"query": "linear memory bounds"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["results"][0]["document"], "webassembly.md");
    let (_, st) = s.get("/api/v1/warmup/status").await;
    assert_eq!(st["backends"]["rag"]["warmed_up"], true);
    // S-2: warmup of the rest.
    let (_, out) = s.post("/api/v1/warmup", json!({"backends": null})).await;
    assert_eq!(out["summary"]["pending"], 0);
}

#[tokio::test]
async fn s3_s4_s5_s9b_session_round_trip() {
    let s = Server::default().await;
    let w = worker("s3");
    let (_, created) = s
        .post(
            "/api/v1/session/create",
            json!({"worker_id": w, "resource_type": "notebook", "session_config": {"max_notes": 1}}),
        )
        .await;
    let id = created["data"]["session_id"].clone();
    let (status, body) = s.execute(&w, "notebook:write", json!({"title": "a", "text": "the epoch ticks"})).await;
    assert_eq!(status, 200);
    assert_eq!(body["meta"]["session_id"], id);
    assert_eq!(body["data"]["glossary_terms"], json!(["epoch"]));
    let (status, body) = s.execute(&w, "notebook:write", json!({"title": "b", "text": "x"})).await;
    assert_eq!((status, body["code"].as_i64()), (400, Some(4001)), "session config applied");
    let (_, list) = s.post("/api/v1/session/list", json!({"worker_id": w})).await;
    assert_eq!(list["data"]["sessions"][0]["session_id"], id);
    s.post("/api/v1/session/destroy", json!({"worker_id": w, "resource_type": "notebook"})).await;
    let (_, body) = s.execute(&w, "notebook:list", json!({})).await;
    assert_eq!(body["data"]["titles"], json!([]), "destroyed state is gone");
    assert_eq!(body["meta"]["temporary_session"], true);
}

#[tokio::test]
async fn s8_s13_ttl_renewed_by_calls_and_expiry_is_prompt() {
    // Margins of over a second either way, so a loaded 2-core machine cannot flip the result:
    // 4 calls 0.8 s apart keep a 2.5 s session alive for 3.2 s.
    let s = Server::start(json!({"server": {"session_ttl": 2.5}})).await;
    let w = worker("ttl");
    s.post("/api/v1/session/create", json!({"worker_id": w, "resource_type": "kv"})).await;
    for i in 0..4 {
        tokio::time::sleep(Duration::from_millis(800)).await;
        let (status, _) = s.execute(&w, "kv:set", json!({"key": "k", "value": i})).await;
        assert_eq!(status, 200);
        let (_, list) = s.post("/api/v1/session/list", json!({"worker_id": w})).await;
        assert_eq!(list["data"]["count"], 1, "calls renew the TTL");
    }
    let gone = cella_e2e::eventually(Duration::from_secs(10), || async {
        let (_, list) = s.post("/api/v1/session/list", json!({"worker_id": w})).await;
        list["data"]["count"] == 0
    })
    .await;
    assert!(gone, "the reaper ended the session within 10 s of its expiry");
}

#[tokio::test]
async fn s9_reinitialize_as_agentflow_does_it() {
    // AgentFlow's Sandbox.reinitialize = destroy (errors ignored) + create.
    let s = Server::default().await;
    let w = worker("s9");
    let (_, first) = s.post("/api/v1/session/create", json!({"worker_id": w, "resource_type": "kv"})).await;
    s.execute(&w, "kv:set", json!({"key": "k", "value": 1})).await;
    s.post("/api/v1/session/destroy", json!({"worker_id": w, "resource_type": "kv"})).await;
    let (_, second) = s
        .post(
            "/api/v1/session/create",
            json!({"worker_id": w, "resource_type": "kv", "session_config": {"max_keys": 5}}),
        )
        .await;
    assert_eq!(second["data"]["session_status"], "active");
    assert_ne!(second["data"]["session_id"], first["data"]["session_id"]);
    assert!(second["data"]["session_name"].as_str().unwrap().ends_with("_002"));
    assert_eq!(second["data"]["data"], json!({"max_keys": 5}));
    let (status, _) = s.execute(&w, "kv:get", json!({"key": "k"})).await;
    assert_eq!(status, 400, "the new session starts empty");
}

#[tokio::test]
async fn s12_temporary_sessions_leave_nothing() {
    let s = Server::default().await;
    let w = worker("s12");
    let (_, first) = s.execute(&w, "kv:incr", json!({"key": "n"})).await;
    assert_eq!(first["meta"]["temporary_session"], true);
    assert_eq!(first["data"]["value"], 1);
    let (_, second) = s.execute(&w, "kv:incr", json!({"key": "n"})).await;
    assert_eq!(second["data"]["value"], 1, "no state survives");
    assert_ne!(second["meta"]["session_id"], first["meta"]["session_id"]);
    let (_, list) = s.post("/api/v1/session/list", json!({"worker_id": w})).await;
    assert_eq!(list["data"]["count"], 0);
}

#[tokio::test]
async fn s14_workers_are_isolated() {
    let s = Server::default().await;
    let (a, b) = (worker("a"), worker("b"));
    for w in [&a, &b] {
        s.post("/api/v1/session/create", json!({"worker_id": w, "resource_type": "kv"})).await;
    }
    s.execute(&a, "kv:set", json!({"key": "secret", "value": "a"})).await;
    let (status, body) = s.execute(&b, "kv:get", json!({"key": "secret"})).await;
    assert_eq!((status, body["code"].as_i64()), (400, Some(4006)));
    s.post("/api/v1/worker/disconnect", json!({"worker_id": b})).await;
    let (status, body) = s.execute(&a, "kv:get", json!({"key": "secret"})).await;
    assert_eq!(
        (status, body["data"]["value"].as_str()),
        (200, Some("a")),
        "another worker's disconnect leaves a alone"
    );
}

#[tokio::test]
async fn s7_graceful_stop_runs_cleanup() {
    capture_logs();
    let s = Server::default().await;
    let w = worker("s7");
    s.post(
        "/api/v1/session/create",
        json!({"worker_id": w, "resource_type": "faulty", "session_config": {"fail_cleanup": true}}),
    )
    .await;
    s.post("/api/v1/session/create", json!({"worker_id": w, "resource_type": "kv"})).await;
    s.execute(&w, "kv:set", json!({"key": "k", "value": 1})).await;
    // A graceful stop (as on Ctrl-C) ends both sessions even though one cleanup fails: the
    // kv session's cleanup hook runs inside its instance, and says so in the guest's log.
    s.stop().await;
    assert!(
        logged(|who, m| who == Some(w.as_str()) && m == "kv session closed with 1 keys").await,
        "the kv session's cleanup did not run at the graceful stop"
    );
}
