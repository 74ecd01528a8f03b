//! MCP over raw Streamable HTTP (JSON-RPC posts to `/mcp`), for the tests that talk to a
//! server or a router without an SDK.

use serde_json::{Value, json};

/// One JSON-RPC message: (status, MCP session id, messages). An SSE answer yields its
/// `data:` messages; a JSON answer yields its body.
pub async fn rpc(
    client: &reqwest::Client,
    base: &str,
    key: Option<&str>,
    session: Option<&str>,
    body: Value,
) -> (u16, Option<String>, Vec<Value>) {
    let mut request = client
        .post(format!("{base}/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .json(&body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let id = response.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    let sse = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream"));
    let text = response.text().await.expect("body");
    let messages = if sse {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str(d.trim()).ok())
            .collect()
    } else {
        serde_json::from_str(&text).into_iter().collect()
    };
    (status, id, messages)
}

/// Opens an MCP session (initialize + initialized); returns its id.
pub async fn open(client: &reqwest::Client, base: &str, key: Option<&str>) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}});
    let (status, id, messages) = rpc(client, base, key, None, init).await;
    assert_eq!(status, 200, "{messages:?}");
    assert_eq!(messages[0]["result"]["protocolVersion"], "2025-11-25");
    let id = id.expect("an MCP session id");
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let (status, _, messages) = rpc(client, base, key, Some(&id), note).await;
    assert_eq!(status, 202, "{messages:?}");
    id
}

/// `tools/call`; returns the status and the result (or the error) message.
pub async fn call(
    client: &reqwest::Client,
    base: &str,
    key: Option<&str>,
    session: &str,
    name: &str,
    arguments: Value,
) -> (u16, Value) {
    let body =
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": name, "arguments": arguments}});
    let (status, _, messages) = rpc(client, base, key, Some(session), body).await;
    (status, messages.into_iter().next().unwrap_or(Value::Null))
}
