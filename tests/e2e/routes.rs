//! Every route of AGENTFLOW_PROTOCOL.md §6, with its success and error cases.

use cella_e2e::{Server, worker};
use serde_json::json;

#[tokio::test]
async fn health_and_ready() {
    let s = Server::default().await;
    let (status, body) = s.get("/health").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("healthy")));
    assert!(!body["timestamp"].as_str().unwrap().ends_with('Z'));
    let w = worker("ready");
    s.post("/api/v1/session/create", json!({"worker_id": w, "resource_type": "kv"})).await;
    let (status, body) = s.get("/ready").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ready");
    let (_, all) = s.get("/api/v1/tools?include_hidden=true").await;
    assert_eq!(body["tools_count"], all["count"], "hidden tools count too");
    assert_eq!((body["active_workers"].as_u64(), body["total_sessions"].as_u64()), (Some(1), Some(1)));
}

#[tokio::test]
async fn execute_status_follows_the_code() {
    let s = Server::default().await;
    let w = worker("exec");
    let (status, body) = s.execute(&w, "kv.set", json!({"key": "k", "value": 1})).await;
    assert_eq!((status, body["code"].as_i64()), (200, Some(0)));
    assert_eq!(body["meta"]["tool"], "kv:set");
    assert_eq!(body["meta"]["temporary_session"], true);
    let (status, body) = s.execute(&w, "kv:get", json!({"key": "missing"})).await;
    assert_eq!((status, body["code"].as_i64()), (400, Some(4006)));
    let (status, body) = s.execute(&w, "nope:x", json!({})).await;
    assert_eq!(
        (status, body["code"].as_i64(), body["message"].as_str()),
        (400, Some(4002), Some("Tool not found: nope:x"))
    );
    let (status, body) = s.execute(&w, "faulty:fail", json!({"code": 5000})).await;
    assert_eq!((status, body["code"].as_i64()), (500, Some(5000)));
    let (status, body) =
        s.post("/api/v1/execute", json!({"worker_id": w, "action": "faulty:loop", "timeout": 0.3})).await;
    assert_eq!((status, body["code"].as_i64()), (500, Some(5006)));
    assert_eq!(body["message"], "Tool execution timed out after 0.3s");
    // Missing and mistyped fields: 422 with an envelope naming the field.
    let (status, body) = s.post("/api/v1/execute", json!({"action": "kv:get"})).await;
    assert_eq!(
        (status, body["code"].as_i64(), body["message"].as_str()),
        (422, Some(4002), Some("worker_id is required"))
    );
    let (status, body) = s.post("/api/v1/execute", json!({"worker_id": w, "action": "kv:get", "params": null})).await;
    assert_eq!((status, body["message"].as_str()), (422, Some("params must be an object, not null")));
    let (status, body) = s.post("/api/v1/execute", json!({"worker_id": w, "action": 7})).await;
    assert_eq!((status, body["message"].as_str()), (422, Some("action must be a string, not a number")));
}

#[tokio::test]
async fn execute_batch_in_order_and_in_parallel() {
    let s = Server::default().await;
    let w = worker("batch");
    s.post("/api/v1/session/create", json!({"worker_id": w, "resource_type": "kv"})).await;
    let actions = json!([
        {"action": "kv:set", "params": {"key": "a", "value": 1}},
        {"action": "kv:get", "params": {"key": "missing"}},
        {"action": "kv:get", "params": {"key": "a"}}
    ]);
    let (status, body) = s.post("/api/v1/execute/batch", json!({"worker_id": w, "actions": actions})).await;
    assert_eq!((status, body["code"].as_i64()), (207, Some(5010)));
    assert_eq!(body["message"], "1 out of 2 actions failed");
    assert_eq!((body["data"]["total"].as_u64(), body["data"]["executed"].as_u64()), (Some(3), Some(2)));
    assert_eq!(body["meta"]["tool"], "batch:execute");
    let (status, body) =
        s.post("/api/v1/execute/batch", json!({"worker_id": w, "actions": actions, "stop_on_error": false})).await;
    assert_eq!(
        (status, body["data"]["executed"].as_u64(), body["data"]["success_count"].as_u64()),
        (207, Some(3), Some(2))
    );
    let parallel: Vec<_> = (0..10).map(|_| json!({"action": "kv:incr", "params": {"key": "n"}})).collect();
    let (status, body) =
        s.post("/api/v1/execute/batch", json!({"worker_id": w, "actions": parallel, "parallel": true})).await;
    assert_eq!((status, body["code"].as_i64()), (200, Some(0)));
    let (_, body) = s.execute(&w, "kv:get", json!({"key": "n"})).await;
    assert_eq!(body["data"]["value"], 10, "parallel calls into one session are serialised, none lost");
    let (status, body) =
        s.post("/api/v1/execute/batch", json!({"worker_id": w, "actions": [{"action": "nope"}]})).await;
    assert_eq!(
        (status, body["code"].as_i64(), body["message"].as_str()),
        (500, Some(5009), Some("All actions failed"))
    );
    let (status, body) = s.post("/api/v1/execute/batch", json!({"worker_id": w, "actions": []})).await;
    assert_eq!((status, body["code"].as_i64()), (200, Some(0)));
    let (status, _) = s.post("/api/v1/execute/batch", json!({"worker_id": w})).await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn session_create_exists_failed_and_missing_fields() {
    let s = Server::default().await;
    let w = worker("create");
    let (status, body) =
        s.post("/api/v1/session/create", json!({"worker_id": w, "resource_type": "kv", "custom_name": "my run"})).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["session_status"], "active", "AgentFlow's client checks this");
    assert!(body["data"]["session_name"].as_str().unwrap().ends_with("_001_my-run"));
    assert_eq!(body["meta"]["tool"], "session:create");
    assert_eq!(body["meta"]["resource_type"], "session");
    assert_eq!(body["meta"]["session_id"], body["data"]["session_id"]);
    let (status, again) = s.post("/api/v1/session/create", json!({"worker_id": w, "resource_type": "kv"})).await;
    assert_eq!((status, again["data"]["status"].as_str()), (200, Some("exists")));
    assert!(again["data"].get("session_status").is_none());
    let (status, failed) = s
        .post(
            "/api/v1/session/create",
            json!({"worker_id": w, "resource_type": "faulty", "session_config": {"fail_initialize": true}}),
        )
        .await;
    assert_eq!(
        (status, failed["code"].as_i64(), failed["message"].as_str()),
        (500, Some(4007), Some("Session creation failed"))
    );
    assert_eq!(failed["data"]["session_status"], "error");
    assert!(failed["data"]["error"].as_str().unwrap().contains("initialize failed on purpose"));
    let (status, body) = s.post("/api/v1/session/create", json!({"worker_id": w})).await;
    assert_eq!(
        (status, body["code"].as_i64(), body["message"].as_str()),
        (400, Some(4002), Some("worker_id and resource_type required"))
    );
    assert_eq!(body["data"], json!({"worker_id": w, "resource_type": null}));
    let (status, body) = s.post("/api/v1/session/create", json!({"worker_id": w, "resource_type": "nope"})).await;
    assert_eq!((status, body["code"].as_i64()), (400, Some(4002)));
}

#[tokio::test]
async fn session_destroy_list_refresh() {
    let s = Server::default().await;
    let w = worker("dlr");
    s.post("/api/v1/session/create", json!({"worker_id": w, "resource_type": "kv"})).await;
    let (status, list) = s.post("/api/v1/session/list", json!({"worker_id": w})).await;
    assert_eq!((status, list["data"]["count"].as_u64()), (200, Some(1)));
    assert_eq!(list["data"]["sessions"][0]["resource_type"], "kv");
    let (status, body) = s.post("/api/v1/session/refresh", json!({"worker_id": w, "resource_type": "kv"})).await;
    assert_eq!((status, body["data"]["message"].as_str()), (200, Some("Session refreshed for kv")));
    let (status, body) = s.post("/api/v1/session/refresh", json!({"worker_id": w})).await;
    assert_eq!((status, body["data"]["refreshed_count"].as_u64()), (200, Some(1)));
    assert_eq!(body["data"]["details"]["kv"]["status"], "refreshed");
    let (status, body) = s.post("/api/v1/session/refresh", json!({"worker_id": w, "resource_type": "rag"})).await;
    assert_eq!(
        (status, body["code"].as_i64(), body["message"].as_str()),
        (404, Some(4007), Some("No session found for rag"))
    );
    let (status, body) = s.post("/api/v1/session/destroy", json!({"worker_id": w, "resource_type": "kv"})).await;
    assert_eq!((status, body["data"]["message"].as_str()), (200, Some("Session destroyed for kv")));
    let (status, body) = s.post("/api/v1/session/destroy", json!({"worker_id": w, "resource_type": "kv"})).await;
    assert_eq!((status, body["code"].as_i64()), (404, Some(4007)));
    let (status, body) = s.post("/api/v1/session/list", json!({})).await;
    assert_eq!((status, body["message"].as_str()), (400, Some("worker_id required")));
    let (_, body) = s.post("/api/v1/session/list", json!({"worker_id": "never-seen"})).await;
    assert_eq!(body["data"]["sessions"], json!([]));
}

#[tokio::test]
async fn lifecycle_heartbeat_status_and_disconnect() {
    let s = Server::default().await;
    let w = worker("life");
    s.post("/api/v1/session/create", json!({"worker_id": w, "resource_type": "kv"})).await;
    s.post("/api/v1/session/create", json!({"worker_id": w, "resource_type": "notebook"})).await;
    let (status, body) = s.post("/api/v1/lifecycle/heartbeat", json!({"worker_id": w})).await;
    assert_eq!((status, body["meta"]["tool"].as_str()), (200, Some("session:heartbeat")));
    assert_eq!(body["data"]["active_sessions"], json!(["kv", "notebook"]));
    let (status, body) = s.post("/api/v1/lifecycle/status", json!({"worker_id": w})).await;
    let (_, all) = s.get("/api/v1/tools?include_hidden=true").await;
    assert_eq!((status, &body["data"]["tools_available"]), (200, &all["count"]));
    assert_eq!(body["data"]["sessions"]["kv"]["status"], "active");
    let (status, _) = s.post("/api/v1/lifecycle/status", json!({})).await;
    assert_eq!(status, 400);
    let (status, body) = s.post("/api/v1/worker/disconnect", json!({"worker_id": w})).await;
    assert_eq!((status, body["data"]["sessions_cleaned"].as_u64()), (200, Some(2)));
    let (status, body) = s.post("/api/v1/worker/disconnect", json!({"worker_id": "unknown"})).await;
    assert_eq!((status, body["data"]["sessions_cleaned"].as_u64()), (200, Some(0)));
    let (status, _) = s.post("/api/v1/worker/disconnect", json!({})).await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn init_resource_batch_and_from_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("agent.json"), r#"{"model": {"name": "m", "size": 1}, "steps": 3}"#).unwrap();
    let s = Server::start(json!({"server": {"init_config_dir": dir.path()}})).await;
    let w = worker("init");
    let (status, body) = s
        .post("/api/v1/init/resource", json!({"worker_id": w, "resource_type": "kv", "init_config": {"max_keys": 1}}))
        .await;
    assert_eq!((status, body["data"]["session_status"].as_str()), (200, Some("active")));
    let (status, body) = s
        .post(
            "/api/v1/init/resource",
            json!({"worker_id": w, "resource_type": "faulty", "init_config": {"fail_initialize": true}}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_i64(), body["message"].as_str()),
        (500, Some(4007), Some("Resource initialization failed"))
    );
    let configs = json!({"notebook": {"content": {"max_notes": 2}}, "kv": {}});
    let (status, body) = s.post("/api/v1/init/batch", json!({"worker_id": w, "resource_configs": configs})).await;
    assert_eq!((status, body["data"]["success_count"].as_u64()), (200, Some(2)));
    let w2 = worker("init2");
    let mixed = json!({"kv": {}, "faulty": {"fail_initialize": true}});
    let (status, body) = s.post("/api/v1/init/batch", json!({"worker_id": w2, "resource_configs": mixed})).await;
    assert_eq!(
        (status, body["code"].as_i64(), body["message"].as_str()),
        (207, Some(5010), Some("1 out of 2 resources failed"))
    );
    let (status, body) = s
        .post(
            "/api/v1/init/from-config",
            json!({"worker_id": w, "config_path": "agent.json", "override_params": {"model": {"size": 2}, "new": 1}}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["data"]["config"],
        json!({"model": {"name": "m", "size": 2}, "steps": 3}),
        "overrides merge, new keys are dropped"
    );
    let (status, body) =
        s.post("/api/v1/init/from-config", json!({"worker_id": w, "config_path": "missing.json"})).await;
    assert_eq!((status, body["code"].as_i64()), (404, Some(4002)));
    for path in ["/etc/passwd", "../../etc/passwd"] {
        let (status, _) = s.post("/api/v1/init/from-config", json!({"worker_id": w, "config_path": path})).await;
        assert_eq!(status, 403, "{path} must not be read");
    }
    let closed = Server::default().await;
    let (status, body) =
        closed.post("/api/v1/init/from-config", json!({"worker_id": w, "config_path": "agent.json"})).await;
    assert_eq!(status, 403, "disabled without server.init_config_dir: {body}");
}

#[tokio::test]
async fn tools_list_and_schema() {
    let s = Server::default().await;
    let (status, body) = s.get("/api/v1/tools").await;
    assert_eq!(status, 200);
    let tools = body["tools"].as_array().unwrap();
    assert_eq!(body["count"].as_u64(), Some(tools.len() as u64));
    let get = tools.iter().find(|t| t["full_name"] == "kv:get").unwrap();
    assert_eq!(
        (get["name"].as_str(), get["resource_type"].as_str(), get["stateless"].as_bool()),
        (Some("get"), Some("kv"), Some(false))
    );
    assert_eq!(get["input_schema"]["required"], json!(["key"]));
    assert!(!tools.iter().any(|t| t["resource_type"] == "faulty"));
    let (_, hidden) = s.get("/api/v1/tools?include_hidden=True").await;
    assert!(hidden["tools"].as_array().unwrap().iter().any(|t| t["resource_type"] == "faulty"));
    let (status, body) = s.get("/api/v1/tools?include_hidden=maybe").await;
    assert_eq!((status, body["code"].as_i64()), (422, Some(4002)));
    let (status, body) = s.get("/api/v1/tools/kv:get/schema").await;
    assert_eq!((status, body["full_name"].as_str()), (200, Some("kv:get")));
    let (status, body) = s.get("/api/v1/tools/search/schema").await;
    assert_eq!((status, body["full_name"].as_str()), (200, Some("rag:search")));
    let (status, body) = s.get("/api/v1/tools/kv.get/schema").await;
    assert_eq!((status, body), (404, json!({"status": "error", "message": "Tool not found: kv.get"})));
}

#[tokio::test]
async fn warmup_and_status() {
    let cache = tempfile::tempdir().unwrap();
    let s = Server::start(json!({"server": {"cache_dir": cache.path()}})).await;
    let (status, body) = s.get("/api/v1/warmup/status").await;
    assert_eq!((status, body["summary"]["warmed_up"].as_u64()), (200, Some(0)));
    let (status, body) = s.post("/api/v1/warmup", json!({"backends": ["rag", "nope"]})).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("partial_error")));
    assert_eq!(body["results"], json!({"nope": false, "rag": true}));
    assert!(body["errors"]["nope"].as_str().unwrap().starts_with("Backend not found: nope."));
    let (status, body) = s.post_raw("/api/v1/warmup", "").await;
    assert_eq!((status, body["status"].as_str(), body["summary"]["total"].as_u64()), (200, Some("success"), Some(4)));
    let (_, body) = s.get("/api/v1/warmup/status").await;
    assert_eq!(body["backends"]["rag"]["warmed_up"], true);
    assert_eq!(body["backends"]["rag"]["mode"], "snapshot");
}

#[tokio::test]
async fn shutdown_route_cleans_up_and_stops_the_server() {
    let s = Server::default().await;
    let w = worker("bye");
    s.post("/api/v1/session/create", json!({"worker_id": w, "resource_type": "kv"})).await;
    let (status, body) = s.post("/api/v1/server/shutdown", json!({"force": false})).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"status": "success", "message": "Server shutdown initiated", "sessions_cleaned": 1}));
    let base = s.base.clone();
    s.wait().await.expect("the server stops cleanly");
    assert!(reqwest::get(format!("{base}/health")).await.is_err(), "nothing listens any more");
}
