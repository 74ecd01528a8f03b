//! The conformance suite of the `kv` backend: one set of tests, run against the same backend
//! written in every guest language, over the real server and HTTP. Every lifecycle hook
//! (observed through the guest's own log lines), every tool, the error codes, session
//! isolation and the TTL.
//!
//! A new language joins by adding its guest to `tests/programs` and one line to the
//! `conformance!` list at the bottom (which fails to compile until it has one).
// Test helpers may unwrap: a panic is how a test fails.
#![allow(clippy::unwrap_used)]

use cella_e2e::guest_logs::{capture_logs, logged};
use cella_e2e::{Server, worker};
use serde_json::{Value, json};
use std::time::Duration;

/// A server whose `kv` resource is `component`, with a warm image (made once and cached).
async fn server(component: &str, server: Value) -> Server {
    capture_logs();
    Server::start(json!({
        "server": server,
        "resources": {"kv": {"component": component, "config": {"label": "conformance"}}}
    }))
    .await
}

async fn create(s: &Server, worker: &str, config: Value) -> (u16, Value) {
    s.post("/api/v1/session/create", json!({"worker_id": worker, "resource_type": "kv", "session_config": config}))
        .await
}

/// The data of a successful call (panics with the envelope otherwise).
async fn ok(s: &Server, worker: &str, tool: &str, params: Value) -> Value {
    let (status, body) = s.execute(worker, tool, params.clone()).await;
    assert_eq!((status, &body["code"]), (200, &json!(0)), "{tool} {params}: {body}");
    body["data"].clone()
}

/// The code of a failed call, with its HTTP status checked against the code's class.
async fn code(s: &Server, worker: &str, tool: &str, params: Value) -> i64 {
    let (status, body) = s.execute(worker, tool, params.clone()).await;
    let code = body["code"].as_i64().unwrap_or_default();
    assert_ne!(code, 0, "{tool} {params} should fail: {body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "an error has a message: {body}");
    let expected = if (4000..5000).contains(&code) { 400 } else { 500 };
    assert_eq!(status, expected, "{tool} {params}: {body}");
    code
}

/// The manifest names every tool with a JSON Schema, and the tool list shows them.
pub async fn manifest_and_schemas(component: &str) {
    let s = server(component, json!({})).await;
    let (status, body) = s.get("/api/v1/tools").await;
    assert_eq!(status, 200);
    let tools: Vec<&Value> =
        body["tools"].as_array().expect("tools").iter().filter(|t| t["resource_type"] == "kv").collect();
    let names: Vec<&str> = tools.iter().filter_map(|t| t["full_name"].as_str()).collect();
    for wanted in ["kv:set", "kv:get", "kv:incr", "kv:delete", "kv:keys"] {
        assert!(names.contains(&wanted), "{wanted} is listed: {names:?}");
    }
    assert_eq!(tools.len(), 5, "exactly the five kv tools: {names:?}");
    for tool in &tools {
        assert_eq!(tool["needs_session"], true, "{tool}");
        assert!(tool["description"].as_str().is_some_and(|d| !d.is_empty()), "{tool}");
        assert_eq!(tool["input_schema"]["type"], "object", "{tool}");
    }
    let schema = |name: &str| tools.iter().find(|t| t["full_name"] == name).expect("listed")["input_schema"].clone();
    assert_eq!(schema("kv:set")["required"], json!(["key", "value"]));
    assert_eq!(schema("kv:get")["required"], json!(["key"]));
    assert_eq!(schema("kv:get")["properties"]["key"]["type"], "string");
    assert_eq!(schema("kv:incr")["required"], json!(["key"]));
    assert!(schema("kv:incr")["properties"]["by"].is_object(), "incr documents `by`");
}

/// warmup, initialize, cleanup and shutdown run inside the component, as its log shows.
pub async fn lifecycle_hooks_run(component: &str) {
    // Without a warm image the warmup hook runs in every new instance, so this test sees it
    // run (a cached image would skip it); the label tells this server's hooks from others'.
    capture_logs();
    let label = worker("label");
    let s = Server::start(json!({
        "resources": {"kv": {"component": component, "warm_image": false, "config": {"label": label}}}
    }))
    .await;
    let (status, warm) = s.post("/api/v1/warmup", json!({"backends": ["kv"]})).await;
    assert_eq!(status, 200, "{warm}");
    assert!(logged(|_, m| m == format!("kv warmup {label}")).await, "warmup ran with the backend config");

    let w = worker("hooks");
    let (status, created) = create(&s, &w, json!({"max_keys": 3})).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["data"]["data"], json!({"max_keys": 3}), "initialize's data is shown: {created}");
    assert!(logged(|who, m| who == Some(w.as_str()) && m == "kv session opened").await, "initialize ran");

    ok(&s, &w, "kv:set", json!({"key": "a", "value": 1})).await;
    ok(&s, &w, "kv:set", json!({"key": "b", "value": 2})).await;
    let (status, _) = s.post("/api/v1/session/destroy", json!({"worker_id": w, "resource_type": "kv"})).await;
    assert_eq!(status, 200);
    assert!(
        logged(|who, m| who == Some(w.as_str()) && m == "kv session closed with 2 keys").await,
        "cleanup ran in the session's instance"
    );

    let (status, refused) = create(&s, &worker("bad"), json!({"max_keys": "many"})).await;
    assert_eq!(status, 500, "initialize's error fails the creation: {refused}");
    assert_eq!(refused["code"], 4007, "{refused}");

    s.stop().await;
    assert!(logged(|_, m| m == format!("kv shutdown {label}")).await, "shutdown ran at server stop");
}

/// Every kv tool does what its description says.
pub async fn every_tool_behaves(component: &str) {
    let s = server(component, json!({})).await;
    let w = worker("tools");
    create(&s, &w, json!({})).await;
    assert_eq!(
        ok(&s, &w, "kv:set", json!({"key": "b", "value": {"n": [1, "x", null]}})).await,
        json!({"key": "b", "previous": null})
    );
    assert_eq!(
        ok(&s, &w, "kv:set", json!({"key": "b", "value": "two"})).await,
        json!({"key": "b", "previous": {"n": [1, "x", null]}})
    );
    assert_eq!(ok(&s, &w, "kv:get", json!({"key": "b"})).await, json!({"key": "b", "value": "two"}));
    let unicode = "ключ \"é\" ✓\n";
    ok(&s, &w, "kv:set", json!({"key": unicode, "value": unicode})).await;
    assert_eq!(ok(&s, &w, "kv:get", json!({"key": unicode})).await, json!({"key": unicode, "value": unicode}));
    assert_eq!(ok(&s, &w, "kv:incr", json!({"key": "a"})).await, json!({"key": "a", "value": 1}));
    assert_eq!(ok(&s, &w, "kv:incr", json!({"key": "a", "by": 41})).await, json!({"key": "a", "value": 42}));
    assert_eq!(ok(&s, &w, "kv:incr", json!({"key": "a", "by": -50})).await, json!({"key": "a", "value": -8}));
    assert_eq!(ok(&s, &w, "kv:incr", json!({"key": "a", "by": null})).await, json!({"key": "a", "value": -7}));
    assert_eq!(ok(&s, &w, "kv:get", json!({"key": "a"})).await, json!({"key": "a", "value": -7}));
    assert_eq!(ok(&s, &w, "kv:keys", json!({})).await, json!({"keys": ["a", "b", unicode]}));
    assert_eq!(ok(&s, &w, "kv:delete", json!({"key": "b"})).await, json!({"deleted": true}));
    assert_eq!(ok(&s, &w, "kv:delete", json!({"key": "b"})).await, json!({"deleted": false}));
    ok(&s, &w, "kv:set", json!({"key": "n", "value": null})).await;
    assert_eq!(ok(&s, &w, "kv:delete", json!({"key": "n"})).await, json!({"deleted": true}), "a null value is a value");
    assert_eq!(ok(&s, &w, "kv:keys", json!({})).await, json!({"keys": ["a", unicode]}));

    // The session config limits the keys: a business failure, overwriting still allowed.
    let limited = worker("limited");
    create(&s, &limited, json!({"max_keys": 1})).await;
    ok(&s, &limited, "kv:set", json!({"key": "only", "value": 1})).await;
    assert_eq!(code(&s, &limited, "kv:set", json!({"key": "second", "value": 2})).await, 4001);
    ok(&s, &limited, "kv:set", json!({"key": "only", "value": 2})).await;
}

/// Bad parameters and missing keys answer the codes of the codes table.
pub async fn error_codes(component: &str) {
    let s = server(component, json!({})).await;
    let w = worker("errors");
    create(&s, &w, json!({})).await;
    assert_eq!(code(&s, &w, "kv:get", json!({"key": "missing"})).await, 4006, "a missing key");
    assert_eq!(code(&s, &w, "kv:get", json!({})).await, 4003, "a missing parameter");
    assert_eq!(code(&s, &w, "kv:set", json!({"key": "k"})).await, 4003, "a missing value");
    assert_eq!(code(&s, &w, "kv:get", json!({"key": 5})).await, 4004, "a key that is not a string");
    assert_eq!(code(&s, &w, "kv:incr", json!({"key": "k", "by": "x"})).await, 4004, "by must be an integer");
    assert_eq!(code(&s, &w, "kv:incr", json!({"key": "k", "by": 1.5})).await, 4004, "by must be whole");
    ok(&s, &w, "kv:set", json!({"key": "text", "value": "a"})).await;
    assert_eq!(code(&s, &w, "kv:incr", json!({"key": "text"})).await, 4004, "incr of a string");
    ok(&s, &w, "kv:set", json!({"key": "big", "value": i64::MAX})).await;
    assert_eq!(code(&s, &w, "kv:incr", json!({"key": "big"})).await, 4004, "overflow is refused");
    let unknown = code(&s, &w, "kv:nope", json!({})).await;
    assert!(unknown == 4002 || unknown == 4005, "an unknown tool: {unknown}");
    // The session survives every error.
    assert_eq!(ok(&s, &w, "kv:get", json!({"key": "text"})).await, json!({"key": "text", "value": "a"}));
}

/// Two workers' sessions never see each other's keys.
pub async fn sessions_are_isolated(component: &str) {
    let s = server(component, json!({})).await;
    let (a, b) = (worker("a"), worker("b"));
    create(&s, &a, json!({})).await;
    create(&s, &b, json!({})).await;
    ok(&s, &a, "kv:set", json!({"key": "secret", "value": "a's"})).await;
    assert_eq!(code(&s, &b, "kv:get", json!({"key": "secret"})).await, 4006, "b cannot see a's key");
    ok(&s, &b, "kv:set", json!({"key": "secret", "value": "b's"})).await;
    assert_eq!(ok(&s, &a, "kv:get", json!({"key": "secret"})).await["value"], "a's");
    assert_eq!(ok(&s, &a, "kv:keys", json!({})).await, json!({"keys": ["secret"]}));
    // A call without a session runs in a temporary one that keeps nothing.
    let c = worker("temporary");
    ok(&s, &c, "kv:set", json!({"key": "k", "value": 1})).await;
    assert_eq!(code(&s, &c, "kv:get", json!({"key": "k"})).await, 4006, "a temporary session keeps nothing");
    // A destroyed and re-created session starts empty.
    s.post("/api/v1/session/destroy", json!({"worker_id": a, "resource_type": "kv"})).await;
    create(&s, &a, json!({})).await;
    assert_eq!(ok(&s, &a, "kv:keys", json!({})).await, json!({"keys": []}));
}

/// Calls renew the TTL; an expired session is reaped and its cleanup hook runs.
pub async fn ttl_is_renewed_and_expiry_cleans_up(component: &str) {
    // 4 calls 0.8 s apart keep a 2.5 s session alive for 3.2 s: margins of over a second.
    let s = server(component, json!({"session_ttl": 2.5})).await;
    let w = worker("ttl");
    create(&s, &w, json!({})).await;
    for i in 0..4 {
        tokio::time::sleep(Duration::from_millis(800)).await;
        ok(&s, &w, "kv:set", json!({"key": format!("k{i}"), "value": i})).await;
    }
    let (_, list) = s.post("/api/v1/session/list", json!({"worker_id": w})).await;
    assert_eq!(list["data"]["count"], 1, "every call renewed the TTL: {list}");
    assert!(
        logged(|who, m| who == Some(w.as_str()) && m == "kv session closed with 4 keys").await,
        "the expired session was cleaned up by the backend's own hook"
    );
    let (_, list) = s.post("/api/v1/session/list", json!({"worker_id": w})).await;
    assert_eq!(list["data"]["count"], 0, "{list}");
}

macro_rules! conformance {
    ($($language:ident => $component:expr,)*) => {$(
        mod $language {
            const COMPONENT: &str = $component;

            #[tokio::test(flavor = "multi_thread")]
            async fn manifest_and_schemas() { super::manifest_and_schemas(COMPONENT).await }
            #[tokio::test(flavor = "multi_thread")]
            async fn lifecycle_hooks_run() { super::lifecycle_hooks_run(COMPONENT).await }
            #[tokio::test(flavor = "multi_thread")]
            async fn every_tool_behaves() { super::every_tool_behaves(COMPONENT).await }
            #[tokio::test(flavor = "multi_thread")]
            async fn error_codes() { super::error_codes(COMPONENT).await }
            #[tokio::test(flavor = "multi_thread")]
            async fn sessions_are_isolated() { super::sessions_are_isolated(COMPONENT).await }
            #[tokio::test(flavor = "multi_thread")]
            async fn ttl_is_renewed_and_expiry_cleans_up() { super::ttl_is_renewed_and_expiry_cleans_up(COMPONENT).await }
        }
    )*};
}

// One line per language: the product's kv (Rust) and the test programs' kv in the others.
conformance! {
    kv => "builtin:kv",
    kv_python => cella_test_programs::KV_PYTHON,
    kv_js => cella_test_programs::KV_JS,
    kv_c => cella_test_programs::KV_C,
}

// A kv test program without a line above fails to compile here.
macro_rules! assert_test_exists {
    ($name:ident) => {
        #[allow(unused_imports)]
        use self::$name as _;
    };
}
cella_test_programs::foreach_conformance_program!(assert_test_exists);
