//! The Rust SDK against the real server: the seeds' client API (S-1 … S-14) and the Drop
//! behaviour (S-40, S-41) observed on the server.

use cella_e2e::{Server, worker};
use cella_sdk::{Error, Sandbox};
use serde_json::json;
use std::time::Duration;

async fn sessions_of(s: &Server, worker: &str) -> usize {
    let (_, list) = s.post("/api/v1/session/list", json!({"worker_id": worker})).await;
    list["data"]["count"].as_u64().unwrap() as usize
}

/// Polls until the worker has `n` sessions (the Drop work runs in the background).
async fn wait_for_sessions(s: &Server, worker: &str, n: usize) -> bool {
    cella_e2e::eventually(Duration::from_secs(2), || async { sessions_of(s, worker).await == n }).await
}

#[tokio::test]
async fn the_seed_api_end_to_end() {
    let s = Server::default().await;
    let sandbox = Sandbox::builder(&s.base).worker_id(worker("sdk")).warmup(&["rag"]).start().await.unwrap();
    // S-1, S-2: tools listed with schemas; rag warm.
    let tools = sandbox.tools().await.unwrap();
    assert!(tools.iter().any(|t| t.full_name == "kv:get" && t.input_schema["required"] == json!(["key"])));
    let (_, status) = s.get("/api/v1/warmup/status").await;
    assert_eq!(status["backends"]["rag"]["warmed_up"], true);
    // S-3 (several types at once), S-4.
    let sessions = sandbox.create_sessions(&[("kv", json!({})), ("notebook", json!({}))]).await.unwrap();
    assert_eq!(sessions.len(), 2);
    let kv = &sessions[0];
    kv.execute("kv:set", json!({"key": "k", "value": 1})).await.unwrap();
    let got = sandbox.execute("kv:get", json!({"key": "k"})).await.unwrap();
    assert_eq!((got.data["value"].as_i64(), got.meta.session_id.as_deref()), (Some(1), Some(kv.id())));
    // Typed errors carry the code.
    let err = sandbox.execute("kv:get", json!({"key": "nope"})).await.unwrap_err();
    assert_eq!(err.code(), Some(4006));
    assert!(matches!(&err, Error::Api { status: 400, envelope: Some(_), .. }), "{err}");
    // S-8, S-9b.
    sandbox.refresh_sessions(None).await.unwrap();
    let listed = sandbox.list_sessions().await.unwrap();
    assert_eq!(listed.len(), 2);
    // S-9.
    let old = kv.id().to_string();
    let r = sandbox.reinitialize("kv", json!({"max_keys": 1})).await.unwrap();
    assert_eq!((r.status.as_str(), r.old_session_id.as_deref()), ("success", Some(old.as_str())));
    assert_ne!(r.new_session_id.as_deref(), Some(old.as_str()));
    // S-5.
    sandbox.destroy_session("notebook").await.unwrap();
    assert_eq!(sandbox.destroy_session("notebook").await.unwrap_err().code(), Some(4007));
    // Handles whose sessions were replaced or destroyed are handed over, not re-destroyed.
    for session in sessions {
        session.keep();
    }
    // S-6: close keeps the server and the sessions.
    let w = sandbox.worker_id().to_string();
    sandbox.close().await;
    assert_eq!(sessions_of(&s, &w).await, 1);
    let (status, _) = s.get("/health").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn s40_a_dropped_session_handle_ends_its_session() {
    let s = Server::default().await;
    let sandbox = Sandbox::builder(&s.base).worker_id(worker("drop")).start().await.unwrap();
    let w = sandbox.worker_id().to_string();
    {
        let kv = sandbox.create_session("kv", json!({})).await.unwrap();
        kv.execute("kv:set", json!({"key": "k", "value": 1})).await.unwrap();
        assert_eq!(sessions_of(&s, &w).await, 1);
    }
    assert!(wait_for_sessions(&s, &w, 0).await, "the dropped handle's session was destroyed");
    // Kept handles survive.
    let kept = sandbox.create_session("kv", json!({})).await.unwrap().keep();
    // Ten times what a dropped handle's destroy took above, so a wrong destroy would show.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(sessions_of(&s, &w).await, 1, "{kept:?}");
    sandbox.close().await;
}

#[tokio::test]
async fn s40_a_client_dropped_without_close_ends_what_it_owns() {
    let s = Server::default().await;
    let sandbox = Sandbox::builder(&s.base).worker_id(worker("client")).start().await.unwrap();
    let w = sandbox.worker_id().to_string();
    // reinitialize creates a session the client owns without a handle.
    sandbox.reinitialize("kv", json!({})).await.unwrap();
    sandbox.reinitialize("notebook", json!({})).await.unwrap();
    assert_eq!(sessions_of(&s, &w).await, 2);
    drop(sandbox);
    assert!(wait_for_sessions(&s, &w, 0).await, "the dropped client ended the sessions it owned");

    // A kept session is no longer the client's: it outlives the client.
    let sandbox = Sandbox::builder(&s.base).worker_id(worker("keeper")).start().await.unwrap();
    let w = sandbox.worker_id().to_string();
    sandbox.create_session("kv", json!({})).await.unwrap().keep();
    drop(sandbox);
    // Long past what the dropped client's destroys took above, so a wrong destroy would show.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(sessions_of(&s, &w).await, 1);
}

#[tokio::test]
async fn s41_drop_errors_are_swallowed_and_never_block() {
    let s = Server::default().await;
    let sandbox = Sandbox::builder(&s.base).worker_id(worker("gone")).start().await.unwrap();
    let kv = sandbox.create_session("kv", json!({})).await.unwrap();
    sandbox.reinitialize("notebook", json!({})).await.unwrap();
    // The server goes away: dropping the handle and the client must neither panic nor
    // wait for the server (the test would hang if they did).
    s.stop().await;
    drop(kv);
    drop(sandbox);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Without an async runtime, Drop leaves the session to its TTL and returns.
    let outside = std::thread::spawn(|| {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (kv, server) = rt.block_on(async {
            let server = Server::default().await;
            let sandbox = Sandbox::builder(&server.base).worker_id(worker("nort")).start().await.unwrap();
            let kv = sandbox.create_session("kv", json!({})).await.unwrap();
            drop(sandbox);
            (kv, server)
        });
        drop(kv);
        drop(server);
    })
    .join();
    assert!(outside.is_ok(), "no panic outside a runtime");
}

#[tokio::test]
async fn connection_errors_are_typed() {
    let err = Sandbox::builder("http://127.0.0.1:9").retries(1).start().await.err().unwrap();
    assert!(matches!(err, Error::Connection { .. }), "{err}");
}

#[tokio::test]
async fn s7_shutdown_server_through_the_sdk() {
    let s = Server::default().await;
    let sandbox = Sandbox::builder(&s.base).worker_id(worker("stop")).start().await.unwrap();
    sandbox.create_session("kv", json!({})).await.unwrap().keep();
    let reply = sandbox.shutdown_server().await.unwrap();
    assert_eq!(reply["status"], "success");
    assert_eq!(reply["sessions_cleaned"], 1);
    s.wait().await.expect("the server stops cleanly");
}
