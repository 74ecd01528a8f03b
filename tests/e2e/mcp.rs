//! The MCP front door (`/mcp`), driven by the official MCP Python SDK (`tests/mcp/client.py`)
//! and, where the test needs the MCP session id, by raw Streamable HTTP requests.

use cella_e2e::{Server, mcp_client};
use cella_runtime::tenancy::hash_key;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const A: &str = "key-of-tenant-a";
const B: &str = "key-of-tenant-b";

/// One JSON-RPC message over raw Streamable HTTP: (status, MCP session id, messages).
async fn rpc(s: &Server, key: Option<&str>, session: Option<&str>, body: Value) -> (u16, Option<String>, Vec<Value>) {
    cella_e2e::mcp_http::rpc(&s.client, &s.base, key, session, body).await
}

/// Opens an MCP session over raw HTTP (initialize + initialized); returns its id.
async fn open(s: &Server, key: Option<&str>) -> String {
    cella_e2e::mcp_http::open(&s.client, &s.base, key).await
}

/// `tools/call` over raw HTTP; returns the result (or the error) message.
async fn raw_call(s: &Server, key: Option<&str>, session: &str, name: &str, arguments: Value) -> (u16, Value) {
    cella_e2e::mcp_http::call(&s.client, &s.base, key, session, name, arguments).await
}

/// The sessions of a worker, over `/api/v1`.
async fn sessions_of(s: &Server, key: Option<&str>, worker: &str) -> Vec<Value> {
    let body = json!({"worker_id": worker});
    let (_, list) = match key {
        Some(key) => s.post_as(key, "/api/v1/session/list", body).await,
        None => s.post("/api/v1/session/list", body).await,
    };
    list["data"]["sessions"].as_array().cloned().unwrap_or_default()
}

/// Waits (up to `limit`) until the worker has no sessions left.
async fn sessions_end(s: &Server, key: Option<&str>, worker: &str, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if sessions_of(s, key, worker).await.is_empty() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn worker_of(result: &Value) -> String {
    result["_meta"]["cella/worker_id"].as_str().expect("the result names its worker").to_string()
}

fn code(result: &Value) -> Option<i64> {
    result["structuredContent"]["code"].as_i64()
}

#[tokio::test]
async fn the_official_python_sdk_lists_calls_and_keeps_state_per_mcp_session() {
    let s = Server::default().await;
    let url = format!("{}/mcp", s.base);
    let out = mcp_client(&["http", &url, "tour"]).await;

    assert_eq!(out["initialize"]["protocolVersion"], "2025-11-25");
    assert_eq!(out["initialize"]["serverInfo"]["name"], "cella");
    let tools = out["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    for wanted in ["kv.get", "kv.set", "rag.search", "notebook.write"] {
        assert!(names.contains(&wanted), "{wanted} listed: {names:?}");
    }
    assert!(names.iter().all(|n| n.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("faulty.")), "hidden tools are not listed: {names:?}");
    let get = tools.iter().find(|t| t["name"] == "kv.get").unwrap();
    assert_eq!(get["inputSchema"]["required"], json!(["key"]));
    assert_eq!(get["inputSchema"]["properties"]["key"]["type"], "string");

    // A stateless tool: text content plus structuredContent, not an error.
    let stateless = &out["stateless"];
    assert_eq!((stateless["isError"].as_bool(), code(stateless)), (Some(false), Some(0)), "{stateless}");
    let text: Value = serde_json::from_str(stateless["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(text, stateless["structuredContent"]["data"], "the text is the data as JSON");
    assert!(!text["results"].as_array().unwrap().is_empty());

    // A stateful sequence in one MCP session sees its own state.
    assert_eq!(code(&out["set"]), Some(0), "{}", out["set"]);
    assert_eq!(out["get"]["structuredContent"]["data"]["value"], "teal", "{}", out["get"]);
    let session = out["get"]["structuredContent"]["meta"]["session_id"].clone();
    assert_eq!(session, out["set"]["structuredContent"]["meta"]["session_id"], "one Cella session");
    assert_ne!(out["get"]["structuredContent"]["meta"]["temporary_session"], true);

    // A second MCP session is another worker: it sees nothing of the first, and its writes
    // do not reach the first.
    assert_eq!((out["other_get"]["isError"].as_bool(), code(&out["other_get"])), (Some(true), Some(4006)));
    assert_ne!(worker_of(&out["other_get"]), worker_of(&out["get"]));
    assert_eq!(code(&out["other_set"]), Some(0));
    assert_eq!(out["get_after_other"]["structuredContent"]["data"]["value"], "teal");

    // A tool error is a result with isError; an unknown tool is a JSON-RPC error.
    assert_eq!((out["tool_error"]["isError"].as_bool(), code(&out["tool_error"])), (Some(true), Some(4004)));
    assert!(out["tool_error"]["content"][0]["text"].as_str().unwrap().contains("4004"));
    assert_eq!(out["unknown_tool"]["jsonrpc_error"]["code"], -32602, "{}", out["unknown_tool"]);

    // The client ended both MCP sessions (HTTP DELETE): their Cella sessions are gone.
    for result in [&out["get"], &out["other_get"]] {
        let worker = worker_of(result);
        assert!(sessions_end(&s, None, &worker, Duration::from_secs(10)).await, "{worker} still has sessions");
    }
}

#[tokio::test]
async fn delete_ends_the_mcp_session_and_its_cella_sessions() {
    let s = Server::default().await;
    let id = open(&s, None).await;
    let (_, result) = raw_call(&s, None, &id, "kv.set", json!({"key": "k", "value": 1})).await;
    let worker = worker_of(&result["result"]);
    assert_eq!(sessions_of(&s, None, &worker).await.len(), 1);
    let response =
        s.client.delete(format!("{}/mcp", s.base)).header("mcp-session-id", &id).send().await.expect("delete");
    assert!(response.status().is_success(), "{}", response.status());
    assert!(sessions_end(&s, None, &worker, Duration::from_secs(10)).await);
    let (status, _) = raw_call(&s, None, &id, "kv.get", json!({"key": "k"})).await;
    assert_eq!(status, 404, "the MCP session is gone");
}

#[tokio::test]
async fn an_idle_mcp_session_expires_and_ends_its_cella_sessions() {
    let s = Server::start(json!({"server": {"session_ttl": 1}})).await;
    let out = mcp_client(&["http", &format!("{}/mcp", s.base), "abandon"]).await;
    assert_eq!(code(&out["set"]), Some(0));
    let worker = worker_of(&out["set"]);
    assert!(sessions_end(&s, None, &worker, Duration::from_secs(15)).await);
    // And the raw MCP session expires too.
    let id = open(&s, None).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, _) = raw_call(&s, None, &id, "kv.keys", json!({})).await;
    assert_eq!(status, 404, "an idle MCP session ends after server.session_ttl");
}

async fn hosted(quotas_a: Value) -> Server {
    Server::start(json!({
        "tenants": {
            "a": {"keys": [hash_key(A)], "quotas": quotas_a},
            "b": {"keys": [hash_key(B)], "resources": ["kv"]}
        }
    }))
    .await
}

#[tokio::test]
async fn mcp_needs_a_key_and_lists_only_the_tenants_tools() {
    let s = hosted(json!({})).await;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}});
    let (status, _, body) = rpc(&s, None, None, init.clone()).await;
    assert_eq!((status, body[0]["code"].as_i64()), (401, Some(7007)));
    let (status, _, _) = rpc(&s, Some("wrong"), None, init).await;
    assert_eq!(status, 401);

    let out = mcp_client(&["http", &format!("{}/mcp", s.base), "--key", B, "tour"]).await;
    let names: Vec<&str> = out["tools"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(names.contains(&"kv.get") && names.iter().all(|n| n.starts_with("kv.")), "b sees only kv: {names:?}");
    assert_eq!((out["stateless"]["isError"].as_bool(), code(&out["stateless"])), (Some(true), Some(7008)));
    assert_eq!(out["get"]["structuredContent"]["data"]["value"], "teal");
}

#[tokio::test]
async fn one_tenant_cannot_use_or_end_another_tenants_mcp_session() {
    let s = hosted(json!({})).await;
    let id = open(&s, Some(A)).await;
    let (_, result) = raw_call(&s, Some(A), &id, "kv.set", json!({"key": "secret", "value": "a's"})).await;
    let worker = worker_of(&result["result"]);

    let (status, body) = raw_call(&s, Some(B), &id, "kv.get", json!({"key": "secret"})).await;
    assert_eq!((status, body["code"].as_i64()), (403, Some(7008)), "{body}");
    let response =
        s.client.delete(format!("{}/mcp", s.base)).bearer_auth(B).header("mcp-session-id", &id).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 403);
    // B cannot see A's worker over /api/v1 either: the same worker id is another worker there.
    assert!(sessions_of(&s, Some(B), &worker).await.is_empty());

    let (status, body) = raw_call(&s, Some(A), &id, "kv.get", json!({"key": "secret"})).await;
    assert_eq!(status, 200);
    assert_eq!(body["result"]["structuredContent"]["data"]["value"], "a's", "A's session is untouched");
}

#[tokio::test]
async fn tenant_quotas_apply_over_mcp() {
    let s = hosted(json!({"calls_per_minute": 2})).await;
    let out = mcp_client(&["http", &format!("{}/mcp", s.base), "--key", A, "calls", "--count", "3"]).await;
    let codes: Vec<Option<i64>> = out["calls"].as_array().unwrap().iter().map(code).collect();
    // kv.get of an absent key answers 4006; the third call is over the quota.
    assert_eq!(codes, vec![Some(4006), Some(4006), Some(7009)], "{out}");
    assert_eq!(out["calls"][2]["isError"], true);
}

#[tokio::test]
async fn an_admin_key_cannot_open_an_mcp_session() {
    let s = Server::start(json!({"server": {"admin_keys": [hash_key("admin")]},
        "tenants": {"a": {"keys": [hash_key(A)]}}}))
    .await;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}});
    let (status, _, body) = rpc(&s, Some("admin"), None, init).await;
    assert_eq!((status, body[0]["code"].as_i64()), (403, Some(7008)));
}

#[tokio::test]
async fn mcp_can_be_turned_off() {
    let s = Server::start(json!({"server": {"mcp": {"enabled": false}}})).await;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}});
    let (status, _, body) = rpc(&s, None, None, init).await;
    assert_eq!(status, 404, "{body:?}");
    assert!(body[0]["message"].as_str().unwrap().contains("server.mcp.enabled"));
}

/// An MCP client that gives up on a slow `tools/call` does not lose its session: the call
/// runs to its end, the next call sees the same state, and the Cella session ends with the
/// idle MCP session.
#[tokio::test]
async fn an_mcp_call_survives_a_client_that_disconnects() {
    // The MCP session's idle limit (the TTL) must outlast the abandoned call: rmcp counts
    // idleness from the last request, not the last answer.
    let s = Server::start(json!({"server": {"session_ttl": 6}})).await;
    // Warm first, so that no compile stretches the steps below.
    assert_eq!(s.post("/api/v1/warmup", json!({"backends": ["faulty"]})).await.0, 200);
    let id = open(&s, None).await;
    let (_, first) = raw_call(&s, None, &id, "faulty.echo", json!({"value": 1})).await;
    assert_eq!(first["result"]["structuredContent"]["data"]["calls"], 1, "{first}");
    let worker = worker_of(&first["result"]);

    let body = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                      "params": {"name": "faulty.sleep", "arguments": {"ms": 3000}}});
    let impatient = reqwest::Client::builder().timeout(Duration::from_secs(1)).build().expect("a client");
    let attempt = async {
        let response = impatient
            .post(format!("{}/mcp", s.base))
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .header("mcp-session-id", &id)
            .json(&body)
            .send()
            .await?;
        response.text().await
    };
    assert!(attempt.await.is_err_and(|e| e.is_timeout()), "the client timed out");

    let (status, next) = raw_call(&s, None, &id, "faulty.echo", json!({"value": 2})).await;
    assert_eq!(status, 200, "{next}");
    assert_eq!(next["result"]["structuredContent"]["data"]["calls"], 2, "the session kept its state: {next}");
    assert!(sessions_end(&s, None, &worker, Duration::from_secs(30)).await, "the idle MCP session's sessions ended");
}
