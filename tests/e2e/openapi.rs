//! The OpenAPI document is generated from the code and matches the router.

use cella_e2e::Server;

#[tokio::test]
async fn openapi_lists_every_route_and_every_route_is_served() {
    let s = Server::default().await;
    let (status, doc) = s.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    let paths = doc["paths"].as_object().unwrap();
    let expected = [
        "/health",
        "/ready",
        "/openapi.json",
        "/api/v1/execute",
        "/api/v1/execute/batch",
        "/api/v1/session/create",
        "/api/v1/session/destroy",
        "/api/v1/session/list",
        "/api/v1/session/refresh",
        "/api/v1/lifecycle/heartbeat",
        "/api/v1/lifecycle/status",
        "/api/v1/worker/disconnect",
        "/api/v1/init/resource",
        "/api/v1/init/batch",
        "/api/v1/init/from-config",
        "/api/v1/tools",
        "/api/v1/tools/{tool_name}/schema",
        "/api/v1/warmup",
        "/api/v1/warmup/status",
        "/api/v1/server/shutdown",
        "/metrics",
        "/api/v1/run",
        "/api/v1/run/sessions",
        "/api/v1/run/sessions/{session_id}",
        "/api/v1/run/sessions/{session_id}/keep-alive",
        "/api/v1/run/sessions/{session_id}/files",
        "/api/v1/run/sessions/{session_id}/fork",
        "/api/v1/run/sessions/{session_id}/pause",
        "/api/v1/run/sessions/{session_id}/resume",
        "/api/v1/run/sessions/{session_id}/snapshot",
        "/api/v1/session/snapshot",
        "/api/v1/session/fork",
        "/api/v1/session/pause",
        "/api/v1/session/resume",
        "/api/v1/snapshots",
        "/api/v1/snapshots/{snapshot_id}/restore",
        "/api/v1/snapshots/{snapshot_id}",
    ];
    let mut documented: Vec<&str> = paths.keys().map(String::as_str).collect();
    documented.sort();
    let mut wanted = expected.to_vec();
    wanted.sort();
    assert_eq!(documented, wanted, "the document lists exactly the protocol's routes");
    // Every documented method of every path is routed (not 404/405), except shutdown,
    // which would stop the server: it is checked by its own test.
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            if path == "/api/v1/server/shutdown" {
                continue;
            }
            let url = format!(
                "{}{}",
                s.base,
                path.replace("{tool_name}", "kv:get")
                    .replace("{session_id}", "run-x")
                    .replace("{snapshot_id}", "snap_x"),
            );
            let response = match method.as_str() {
                "get" => s.client.get(&url).send().await.unwrap(),
                "post" => {
                    s.client.post(&url).body("{}").header("content-type", "application/json").send().await.unwrap()
                }
                "delete" => s.client.delete(&url).send().await.unwrap(),
                other => panic!("unexpected method {other}"),
            };
            let code = response.status().as_u16();
            // A run session route answers 404 for an unknown session, a snapshot route for an
            // unknown snapshot, with an envelope.
            let envelope_404 = (path.contains("{session_id}") || path.contains("{snapshot_id}")) && code == 404;
            if envelope_404 {
                let body: serde_json::Value = response.json().await.unwrap();
                let wanted = if path.contains("{snapshot_id}") { 7010 } else { 4007 };
                assert_eq!(body["code"], wanted, "{method} {path}");
                continue;
            }
            assert!(code != 404 && code != 405, "{method} {path} documented but not routed ({code})");
        }
    }
}
