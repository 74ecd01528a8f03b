//! Sessions: the seeds' session model (S-3, S-5, S-8, S-9, S-9b, S-12, S-13, S-14).

use crate::common::*;
use cella_runtime::codes;
use cella_runtime::sandbox::CreateStatus;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn s3_s14_create_session_initializes_for_its_worker() {
    let sb = sandbox().await;
    let w = worker("s3");
    let created = sb.create_session(&w, "kv", json!({"max_keys": 2}), Some("my run")).await.unwrap();
    assert_eq!(created.status, CreateStatus::Created);
    let s = &created.session;
    assert_eq!(s.status, "active");
    assert_eq!(s.data, json!({"max_keys": 2}), "initialize's data is the session's data");
    assert!(s.session_name.starts_with("kv_s3-") && s.session_name.ends_with("_001_my-run"), "{}", s.session_name);
    assert!(s.session_id.starts_with(&s.session_name));
    // The session belongs to its worker (S-14): another worker sees nothing.
    assert_eq!(sb.list_sessions(&w).len(), 1);
    assert!(sb.list_sessions(&worker("other")).is_empty());
    // The session config reaches initialize: a third key is refused.
    ok(exec(&sb, &w, "kv:set", json!({"key": "a", "value": 1})).await);
    ok(exec(&sb, &w, "kv:set", json!({"key": "b", "value": 2})).await);
    let full = exec(&sb, &w, "kv:set", json!({"key": "c", "value": 3})).await;
    assert_eq!(full.code, codes::BUSINESS_FAILURE, "{full:?}");
}

#[tokio::test]
async fn s3_one_call_creates_several_types() {
    let sb = sandbox().await;
    let w = worker("multi");
    let results =
        sb.create_sessions(&w, &[("kv".into(), json!({})), ("notebook".into(), json!({"max_notes": 3}))]).await;
    assert_eq!(results.len(), 2);
    for (_, r) in &results {
        assert_eq!(r.as_ref().unwrap().status, CreateStatus::Created);
    }
    let mut types: Vec<String> = sb.list_sessions(&w).into_iter().map(|s| s.resource_type).collect();
    types.sort();
    assert_eq!(types, ["kv", "notebook"]);
}

#[tokio::test]
async fn s3_existing_session_is_returned_unchanged() {
    let sb = sandbox().await;
    let w = worker("exists");
    let first = sb.create_session(&w, "kv", json!({"max_keys": 1}), None).await.unwrap();
    let again = sb.create_session(&w, "kv", json!({"max_keys": 9}), None).await.unwrap();
    assert_eq!(again.status, CreateStatus::Exists);
    assert_eq!(again.session.session_id, first.session.session_id);
    assert_eq!(again.session.config["max_keys"], 1, "the new config is ignored");
}

#[tokio::test]
async fn unknown_resource_type_is_refused_with_4002() {
    let sb = sandbox().await;
    let err = sb.create_session(&worker("u"), "nope", json!({}), None).await.unwrap_err();
    assert_eq!(err.code, codes::INVALID_REQUEST_FORMAT);
    assert!(err.message.contains("nope") && err.message.contains("kv"), "{}", err.message);
}

#[tokio::test]
async fn s4_execute_in_a_session_keeps_state_between_calls() {
    let sb = sandbox().await;
    let w = worker("s4");
    let created = sb.create_session(&w, "kv", json!({}), None).await.unwrap();
    ok(exec(&sb, &w, "kv:set", json!({"key": "greeting", "value": {"text": "hi"}})).await);
    let got = exec(&sb, &w, "kv:get", json!({"key": "greeting"})).await;
    assert_eq!(got.meta.session_id.as_deref(), Some(created.session.session_id.as_str()));
    assert_eq!(got.meta.temporary_session, None);
    assert_eq!(ok(got)["value"], json!({"text": "hi"}));
    for expected in 1..=3 {
        assert_eq!(ok(exec(&sb, &w, "kv:incr", json!({"key": "n"})).await)["value"], expected);
    }
    assert_eq!(ok(exec(&sb, &w, "kv:keys", json!({})).await)["keys"], json!(["greeting", "n"]));
}

#[tokio::test]
async fn two_workers_never_share_kv_state() {
    let sb = sandbox().await;
    let (a, b) = (worker("a"), worker("b"));
    sb.create_session(&a, "kv", json!({}), None).await.unwrap();
    sb.create_session(&b, "kv", json!({}), None).await.unwrap();
    ok(exec(&sb, &a, "kv:set", json!({"key": "secret", "value": "a's"})).await);
    let seen_by_b = exec(&sb, &b, "kv:get", json!({"key": "secret"})).await;
    assert_eq!(seen_by_b.code, codes::NO_RESULTS_FOUND, "{seen_by_b:?}");
    assert_eq!(ok(exec(&sb, &b, "kv:keys", json!({})).await)["keys"], json!([]));
    // Same worker id in two tenants: two different workers.
    let t1 = cella_runtime::Caller::of_tenant("t1", "w1");
    let t2 = cella_runtime::Caller::of_tenant("t2", "w1");
    sb.create_session(&t1, "kv", json!({}), None).await.unwrap();
    ok(exec(&sb, &t1, "kv:set", json!({"key": "k", "value": 1})).await);
    assert!(sb.list_sessions(&t2).is_empty());
    assert_eq!(exec(&sb, &t2, "kv:get", json!({"key": "k"})).await.code, codes::NO_RESULTS_FOUND);
}

#[tokio::test]
async fn s5_destroy_session_runs_cleanup_and_forgets_state() {
    let sb = sandbox().await;
    let w = worker("s5");
    let created = sb.create_session(&w, "notebook", json!({}), None).await.unwrap();
    ok(exec(&sb, &w, "notebook:write", json!({"title": "t", "text": "about epoch"})).await);
    let info = sb.destroy_session(&w, "notebook").await.unwrap();
    assert_eq!(info.session_id, created.session.session_id);
    let lines = logs_matching(&created.session.session_id);
    assert!(
        lines.iter().any(|(_, _, m)| m.contains("notebook closed with 1 notes")),
        "cleanup hook not observed: {lines:?}"
    );
    assert!(sb.list_sessions(&w).is_empty());
    let again = sb.destroy_session(&w, "notebook").await.unwrap_err();
    assert_eq!(again.code, codes::RESOURCE_NOT_INITIALIZED);
    assert_eq!(again.message, "No session found for notebook");
}

#[tokio::test]
async fn s8_refresh_and_calls_extend_the_ttl() {
    // Margins of 1.5 s either way, so a loaded machine cannot flip the result.
    let sb = sandbox_with(json!({"server": {"session_ttl": 4.0}})).await;
    let w = worker("s8");
    sb.create_session(&w, "kv", json!({}), None).await.unwrap();
    let before = sb.list_sessions(&w)[0].expires_at.clone();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let refreshed = sb.refresh_sessions(&w, Some("kv")).unwrap();
    assert!(refreshed.sessions["kv"].expires_at > before);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // 5 s after creation: alive only because of the refresh.
    ok(exec(&sb, &w, "kv:set", json!({"key": "k", "value": 1})).await);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // 7.5 s after creation, 2.5 s after the refresh expired: alive only because the call
    // renewed it.
    assert_eq!(ok(exec(&sb, &w, "kv:get", json!({"key": "k"})).await)["value"], 1);
    // Refreshing all, and a missing type.
    assert_eq!(sb.refresh_sessions(&w, None).unwrap().sessions.len(), 1);
    assert_eq!(sb.refresh_sessions(&w, Some("rag")).unwrap_err().code, codes::RESOURCE_NOT_INITIALIZED);
}

/// A session whose start outlasts its TTL (here a 2 s initialize in a 0.5 s TTL; in life, a
/// first use that compiles the backend) is not reaped while it starts: it is created, kept,
/// and holds its state afterwards.
#[tokio::test]
async fn a_session_that_starts_slower_than_its_ttl_is_not_reaped_while_starting() {
    let sb = sandbox_with(json!({"server": {"session_ttl": 0.5}})).await;
    let w = worker("slow-start");
    let created = sb.create_session(&w, "faulty", json!({"initialize_ms": 2000}), None).await.unwrap();
    assert_eq!(created.status, CreateStatus::Created);
    let first = exec(&sb, &w, "faulty:echo", json!({"value": 1})).await;
    assert_eq!(first.meta.session_id.as_deref(), Some(created.session.session_id.as_str()), "{first:?}");
    assert_eq!(first.meta.temporary_session, None, "the call ran in the created session");
    assert_eq!(ok(first)["calls"], 1);
    assert_eq!(ok(exec(&sb, &w, "faulty:echo", json!({"value": 2})).await)["calls"], 2, "the session kept its state");
}

#[tokio::test]
async fn s13_expired_session_is_cleaned_up_promptly() {
    let sb = sandbox_with(json!({"server": {"session_ttl": 0.4}})).await;
    let w = worker("s13");
    let created = sb.create_session(&w, "notebook", json!({}), None).await.unwrap();
    ok(exec(&sb, &w, "notebook:write", json!({"title": "n", "text": "x"})).await);
    let id = created.session.session_id.clone();
    let cleaned = eventually(Duration::from_secs(15), || {
        logs_matching(&id).iter().any(|(_, _, m)| m.contains("notebook closed with 1 notes"))
            && sb.list_sessions(&w).is_empty()
    })
    .await;
    assert!(cleaned, "the session was not cleaned up within 15 s of a 0.4 s TTL: {:?}", sb.list_sessions(&w));
    // The next call gets a temporary session, not the expired one.
    let next = exec(&sb, &w, "notebook:list", json!({})).await;
    assert_eq!(next.meta.temporary_session, Some(true));
    assert_eq!(ok(next)["titles"], json!([]));
}

#[tokio::test]
async fn s9_reinitialize_swaps_one_session_and_leaves_others() {
    let sb = sandbox().await;
    let w = worker("s9");
    let old = sb.create_session(&w, "kv", json!({}), None).await.unwrap().session.session_id;
    let nb = sb.create_session(&w, "notebook", json!({}), None).await.unwrap().session.session_id;
    ok(exec(&sb, &w, "kv:set", json!({"key": "k", "value": 1})).await);
    ok(exec(&sb, &w, "notebook:write", json!({"title": "keep", "text": "me"})).await);
    let r = sb.reinitialize(&w, "kv", json!({"max_keys": 1})).await.unwrap();
    assert_eq!(r.status, "success");
    assert_eq!(r.old_session_id.as_deref(), Some(old.as_str()));
    assert_ne!(r.new_session_id, old);
    assert_eq!(r.config_applied, json!({"max_keys": 1}));
    assert_eq!(
        exec(&sb, &w, "kv:get", json!({"key": "k"})).await.code,
        codes::NO_RESULTS_FOUND,
        "the new session starts empty"
    );
    ok(exec(&sb, &w, "kv:set", json!({"key": "a", "value": 1})).await);
    assert_eq!(
        exec(&sb, &w, "kv:set", json!({"key": "b", "value": 1})).await.code,
        codes::BUSINESS_FAILURE,
        "the new config applies"
    );
    let listed = sb.list_sessions(&w);
    let notebook = listed.iter().find(|s| s.resource_type == "notebook").unwrap();
    assert_eq!(notebook.session_id, nb, "other sessions are untouched");
    assert_eq!(ok(exec(&sb, &w, "notebook:read", json!({"title": "keep"})).await)["text"], "me");
    // Reinitialising a type with no session creates one.
    let fresh = sb.reinitialize(&worker("s9b"), "kv", json!({})).await.unwrap();
    assert_eq!(fresh.old_session_id, None);
}

#[tokio::test]
async fn s9b_list_sessions_shows_status_and_times() {
    let sb = sandbox().await;
    let w = worker("list");
    sb.create_session(&w, "kv", json!({}), None).await.unwrap();
    let listed = sb.list_sessions(&w);
    assert_eq!(listed.len(), 1);
    let s = &listed[0];
    assert_eq!((s.resource_type.as_str(), s.status.as_str(), s.auto_created), ("kv", "active", false));
    for t in [&s.created_at, &s.last_activity, &s.expires_at] {
        assert!(chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f").is_ok() && !t.ends_with('Z'), "{t}");
    }
}

#[tokio::test]
async fn s12_stateful_tool_without_session_uses_a_temporary_one() {
    let sb = sandbox().await;
    let w = worker("s12");
    let first = exec(&sb, &w, "kv:set", json!({"key": "k", "value": 1})).await;
    assert_eq!(first.meta.temporary_session, Some(true));
    let first_id = first.meta.session_id.clone().expect("a temporary session has an id");
    ok(first);
    assert!(sb.list_sessions(&w).is_empty(), "a temporary session leaves nothing behind");
    let second = exec(&sb, &w, "kv:get", json!({"key": "k"})).await;
    assert_eq!(second.meta.temporary_session, Some(true));
    assert_ne!(second.meta.session_id.as_deref(), Some(first_id.as_str()), "the next call gets a new one");
    assert_eq!(second.code, codes::NO_RESULTS_FOUND, "no state survives a temporary session");
}

#[tokio::test]
async fn disconnect_ends_every_session_of_the_worker() {
    let sb = sandbox().await;
    let w = worker("bye");
    sb.create_session(&w, "kv", json!({}), None).await.unwrap();
    sb.create_session(&w, "notebook", json!({}), None).await.unwrap();
    assert!(sb.knows_worker(&w));
    assert_eq!(sb.disconnect(&w).await, 2);
    assert!(!sb.knows_worker(&w));
    assert_eq!(sb.disconnect(&w).await, 0);
}

#[tokio::test]
async fn s7_shutdown_cleans_up_sessions_and_refuses_new_work() {
    let sb = sandbox().await;
    let w = worker("s7");
    let id = sb.create_session(&w, "notebook", json!({}), None).await.unwrap().session.session_id;
    assert_eq!(sb.shutdown().await, 1);
    assert!(logs_matching(&id).iter().any(|(_, _, m)| m.contains("notebook closed")), "cleanup ran at shutdown");
    let refused = exec(&sb, &w, "kv:keys", json!({})).await;
    assert_eq!(refused.code, codes::SHUTTING_DOWN);
    assert_eq!(sb.create_session(&w, "kv", json!({}), None).await.unwrap_err().code, codes::SHUTTING_DOWN);
}
