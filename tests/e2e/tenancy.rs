//! Sealed multi-tenant hosting: keys, worker namespacing, admin routes, quotas.

use cella_e2e::Server;
use cella_runtime::tenancy::hash_key;
use serde_json::{Value, json};

const A: &str = "key-of-tenant-a";
const B: &str = "key-of-tenant-b";
const ADMIN: &str = "the-admin-key";

async fn hosted(quotas_a: Value) -> Server {
    Server::start(json!({
        "server": {"admin_keys": [hash_key(ADMIN)]},
        "tenants": {
            "a": {"keys": [hash_key(A)], "quotas": quotas_a},
            "b": {"keys": [hash_key(B)], "resources": ["kv"]}
        }
    }))
    .await
}

#[tokio::test]
async fn keys_are_required_and_checked() {
    let s = hosted(json!({})).await;
    let (status, body) = s.execute("w1", "kv:keys", json!({})).await;
    assert_eq!((status, body["code"].as_i64()), (401, Some(7007)));
    assert!(body["message"].as_str().unwrap().contains("API key is required"));
    let (status, body) = s.execute_as("wrong", "w1", "kv:keys", json!({})).await;
    assert_eq!((status, body["message"].as_str()), (401, Some("unknown API key")));
    let (status, _) = s.execute_as(A, "w1", "kv:keys", json!({})).await;
    assert_eq!(status, 200, "Bearer works");
    let r = s
        .client
        .post(format!("{}/api/v1/execute", s.base))
        .header("x-api-key", B)
        .json(&json!({"worker_id": "w1", "action": "kv:keys"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "X-API-Key works");
    // Health and the API description stay open.
    assert_eq!(s.get("/health").await.0, 200);
    assert_eq!(s.get("/openapi.json").await.0, 200);
}

#[tokio::test]
async fn the_same_worker_id_in_two_tenants_is_two_workers() {
    let s = hosted(json!({})).await;
    for key in [A, B] {
        let (status, _) =
            s.post_as(key, "/api/v1/session/create", json!({"worker_id": "w1", "resource_type": "kv"})).await;
        assert_eq!(status, 200);
    }
    s.execute_as(A, "w1", "kv:set", json!({"key": "secret", "value": "a's"})).await;
    let (status, body) = s.execute_as(B, "w1", "kv:get", json!({"key": "secret"})).await;
    assert_eq!((status, body["code"].as_i64()), (400, Some(4006)), "b's w1 cannot see a's w1");
    let (_, list_a) = s.post_as(A, "/api/v1/session/list", json!({"worker_id": "w1"})).await;
    let (_, list_b) = s.post_as(B, "/api/v1/session/list", json!({"worker_id": "w1"})).await;
    assert_ne!(list_a["data"]["sessions"][0]["session_id"], list_b["data"]["sessions"][0]["session_id"]);
    // b ending "its" w1 leaves a's alone.
    s.post_as(B, "/api/v1/worker/disconnect", json!({"worker_id": "w1"})).await;
    let (status, body) = s.execute_as(A, "w1", "kv:get", json!({"key": "secret"})).await;
    assert_eq!((status, body["data"]["value"].as_str()), (200, Some("a's")));
}

#[tokio::test]
async fn admin_routes_need_the_admin_key_and_admins_run_no_tools() {
    let s = hosted(json!({})).await;
    for key in [A, B] {
        let (status, body) = s.post_as(key, "/api/v1/server/shutdown", json!({})).await;
        assert_eq!((status, body["code"].as_i64()), (403, Some(7008)));
        let (status, _) = s.post_as(key, "/api/v1/warmup", json!({})).await;
        assert_eq!(status, 403);
    }
    let (status, body) = s.post_as(ADMIN, "/api/v1/warmup", json!({"backends": ["kv"]})).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("success")));
    let (status, body) = s.execute_as(ADMIN, "w1", "kv:keys", json!({})).await;
    assert_eq!((status, body["code"].as_i64()), (403, Some(7008)));
    let (status, _) = s.post_as(ADMIN, "/api/v1/server/shutdown", json!({})).await;
    assert_eq!(status, 200);
    s.wait().await.unwrap();
}

#[tokio::test]
async fn a_tenant_uses_only_its_resources() {
    let s = hosted(json!({})).await;
    let (status, body) = s.execute_as(B, "w", "rag:search", json!({"query": "wasm"})).await;
    assert_eq!((status, body["code"].as_i64()), (403, Some(7008)));
    let (status, _) =
        s.post_as(B, "/api/v1/session/create", json!({"worker_id": "w", "resource_type": "notebook"})).await;
    assert_eq!(status, 403);
    let (status, _) = s.execute_as(A, "w", "rag:search", json!({"query": "wasm"})).await;
    assert_eq!(status, 200, "a may use everything");
}

#[tokio::test]
async fn the_session_quota_holds_exactly() {
    let s = hosted(json!({"max_sessions": 3})).await;
    for i in 0..3 {
        let (status, _) =
            s.post_as(A, "/api/v1/session/create", json!({"worker_id": format!("w{i}"), "resource_type": "kv"})).await;
        assert_eq!(status, 200);
    }
    let (status, body) =
        s.post_as(A, "/api/v1/session/create", json!({"worker_id": "w9", "resource_type": "kv"})).await;
    assert_eq!((status, body["code"].as_i64()), (429, Some(7009)));
    // Another tenant is not affected.
    let (status, _) = s.post_as(B, "/api/v1/session/create", json!({"worker_id": "w9", "resource_type": "kv"})).await;
    assert_eq!(status, 200);
    // Freeing one makes room for exactly one.
    s.post_as(A, "/api/v1/session/destroy", json!({"worker_id": "w0", "resource_type": "kv"})).await;
    assert_eq!(s.post_as(A, "/api/v1/session/create", json!({"worker_id": "w9", "resource_type": "kv"})).await.0, 200);
    assert_eq!(s.post_as(A, "/api/v1/session/create", json!({"worker_id": "w10", "resource_type": "kv"})).await.0, 429);
}

#[tokio::test]
async fn the_rate_quota_answers_429() {
    let s = hosted(json!({"calls_per_minute": 5})).await;
    let mut codes = Vec::new();
    for _ in 0..8 {
        codes.push(s.execute_as(A, "w", "kv:keys", json!({})).await.1["code"].as_i64().unwrap());
    }
    assert_eq!(codes, [0, 0, 0, 0, 0, 7009, 7009, 7009]);
    assert_eq!(s.execute_as(B, "w", "kv:keys", json!({})).await.0, 200, "b has no rate quota");
}

#[tokio::test]
async fn memory_deadline_and_body_quotas_of_a_tenant() {
    let s = hosted(json!({"memory_mb": 16, "call_timeout_s": 0.3, "max_body_bytes": 2048})).await;
    let (status, body) = s.execute_as(A, "w", "faulty:alloc", json!({"mb": 32})).await;
    assert_eq!((status, body["code"].as_i64()), (500, Some(7002)));
    assert!(body["message"].as_str().unwrap().contains("16 MiB"));
    let (_, body) = s.execute_as(A, "w", "faulty:alloc", json!({"mb": 4})).await;
    assert_eq!(body["code"], 0);
    let (_, body) =
        s.post_as(A, "/api/v1/execute", json!({"worker_id": "w", "action": "faulty:loop", "timeout": 5})).await;
    assert_eq!(
        (body["code"].as_i64(), body["message"].as_str()),
        (Some(5006), Some("Tool execution timed out after 0.3s"))
    );
    let big = json!({"worker_id": "w", "action": "kv:set", "params": {"key": "k", "value": "x".repeat(4096)}});
    let (status, body) = s.post_as(A, "/api/v1/execute", big.clone()).await;
    assert_eq!((status, body["code"].as_i64()), (413, Some(4002)));
    assert_eq!(s.post_as(B, "/api/v1/execute", big).await.0, 200, "b keeps the server's limit");
}

#[tokio::test]
async fn metrics_count_calls_sessions_faults_and_cache_use() {
    let s = hosted(json!({})).await;
    s.post_as(A, "/api/v1/session/create", json!({"worker_id": "w", "resource_type": "kv"})).await;
    s.post_as(B, "/api/v1/session/create", json!({"worker_id": "w", "resource_type": "kv"})).await;
    for _ in 0..3 {
        s.execute_as(A, "w", "kv:incr", json!({"key": "n"})).await;
    }
    s.execute_as(A, "w", "kv:get", json!({"key": "absent"})).await;
    s.execute_as(A, "w2", "faulty:trap", json!({})).await;
    let scrape = |key: &'static str| {
        let (client, url) = (s.client.clone(), format!("{}/metrics", s.base));
        async move { client.get(url).bearer_auth(key).send().await.unwrap() }
    };
    assert_eq!(scrape(A).await.status().as_u16(), 403, "metrics need the admin key");
    let response = scrape(ADMIN).await;
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.unwrap();
    for line in [
        r#"cella_calls_total{tenant="a",tool="kv:incr",code="0"} 3"#,
        r#"cella_calls_total{tenant="a",tool="kv:get",code="4006"} 1"#,
        r#"cella_calls_total{tenant="a",tool="faulty:trap",code="7001"} 1"#,
        r#"cella_live_sessions{tenant="a",backend="kv"} 1"#,
        r#"cella_live_sessions{tenant="b",backend="kv"} 1"#,
        r#"cella_faults_total{backend="faulty",kind="trap"} 1"#,
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    assert!(text.contains(r#"cella_instances_total{backend="kv",mode="snapshot"}"#), "{text}");
    assert!(
        text.contains("cella_call_duration_seconds_bucket")
            && text.contains("cella_instantiate_duration_seconds_count")
    );
    assert!(text.contains(r#"cella_cache_lookups_total{kind="component""#));
}
