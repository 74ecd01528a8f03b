//! Many sessions and calls at once: nothing lost, nothing mixed up.

use crate::common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_sessions_used_concurrently_lose_no_call() {
    let sb = sandbox_with(json!({"server": {"limits": {"max_instances": 600}}})).await;
    const SESSIONS: usize = 500;
    const CALLS: i64 = 10;
    let mut tasks = Vec::new();
    for i in 0..SESSIONS {
        let sb = sb.clone();
        tasks.push(tokio::spawn(async move {
            let w = worker(&format!("many{i}"));
            sb.create_session(&w, "kv", json!({}), None).await.unwrap();
            ok(exec(&sb, &w, "kv:set", json!({"key": "owner", "value": w.worker_id})).await);
            for _ in 0..CALLS {
                ok(exec(&sb, &w, "kv:incr", json!({"key": "n"})).await);
            }
            (w, sb)
        }));
    }
    let mut workers = Vec::new();
    for t in tasks {
        workers.push(t.await.unwrap());
    }
    assert_eq!(sb.counts().1, SESSIONS);
    for (w, sb) in &workers {
        assert_eq!(ok(exec(sb, w, "kv:get", json!({"key": "n"})).await)["value"], CALLS, "a call was lost");
        assert_eq!(
            ok(exec(sb, w, "kv:get", json!({"key": "owner"})).await)["value"],
            w.worker_id,
            "state crossed sessions"
        );
    }
    for (w, sb) in &workers {
        sb.destroy_session(w, "kv").await.unwrap();
    }
    assert_eq!(sb.counts().1, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_into_one_session_are_serialised() {
    let sb = sandbox().await;
    let w = worker("one");
    sb.create_session(&w, "kv", json!({}), None).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let (sb, w) = (sb.clone(), w.clone());
        tasks.push(tokio::spawn(async move { ok(exec(&sb, &w, "kv:incr", json!({"key": "n"})).await) }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(ok(exec(&sb, &w, "kv:get", json!({"key": "n"})).await)["value"], 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_of_one_session_initialise_once() {
    let sb = sandbox().await;
    let w = worker("race");
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (sb, w) = (sb.clone(), w.clone());
        tasks.push(tokio::spawn(async move { sb.create_session(&w, "kv", json!({}), None).await.unwrap() }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap().session.session_id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one session for one (worker, type)");
    let listed = sb.list_sessions(&w);
    assert!(listed[0].session_name.ends_with("_001"), "{}", listed[0].session_name);
}
