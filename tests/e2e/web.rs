//! A web page must not drive a server on the developer's machine: bodies must be JSON (a
//! browser's "simple" cross-site POST is refused), CORS answers only configured origins, and
//! on loopback only loopback names (plus configured ones) may appear in `Host`, which stops
//! DNS rebinding. AgentFlow's own client (httpx, JSON bodies, a `localhost` base URL) works.

use cella_e2e::{Server, python_venv, worker};
use serde_json::{Value, json};

async fn send(request: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

#[tokio::test]
async fn a_cross_site_simple_request_runs_nothing() {
    let s = Server::default().await;
    let w = worker("web");
    let body = json!({"worker_id": w, "action": "kv:set", "params": {"key": "k", "value": "pwned"}}).to_string();
    // What a page on another site can send without a preflight.
    for content_type in
        [Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("multipart/form-data"), None]
    {
        let mut request = s
            .client
            .post(format!("{}/api/v1/execute", s.base))
            .header("origin", "https://evil.example")
            .body(body.clone());
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let (status, headers, reply) = send(request).await;
        assert_eq!(status, 415, "{content_type:?}: {reply}");
        assert_eq!(reply["code"], 4002);
        assert!(reply["message"].as_str().unwrap_or_default().contains("application/json"), "{reply}");
        assert!(headers.get("access-control-allow-origin").is_none(), "no CORS answer without configured origins");
    }
    // Nothing ran: the worker has no session and no key.
    let (_, got) = s.execute(&w, "kv:get", json!({"key": "k"})).await;
    assert_ne!(got["data"]["value"], "pwned", "{got}");
    // Shutdown is refused too, and the server still serves.
    let (status, _, _) = send(
        s.client
            .post(format!("{}/api/v1/server/shutdown", s.base))
            .header("origin", "https://evil.example")
            .header("content-type", "text/plain")
            .body("{}"),
    )
    .await;
    assert_eq!(status, 415);
    assert_eq!(s.get("/health").await.0, 200);
    // The same body as JSON works, with or without a charset, and a POST without a body too.
    let (status, _, reply) = send(
        s.client
            .post(format!("{}/api/v1/execute", s.base))
            .header("content-type", "application/json; charset=utf-8")
            .body(body),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let (status, _, reply) = send(s.client.post(format!("{}/api/v1/warmup", s.base))).await;
    assert_eq!(status, 200, "{reply}");
}

/// A browser's CORS preflight of a JSON POST to `/api/v1/execute` from `origin`.
fn preflight(s: &Server, origin: &str) -> reqwest::RequestBuilder {
    s.client
        .request(reqwest::Method::OPTIONS, format!("{}/api/v1/execute", s.base))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
}

#[tokio::test]
async fn cors_answers_only_configured_origins() {
    let s = Server::default().await;
    let (_, headers, _) = send(preflight(&s, "https://evil.example")).await;
    assert!(headers.get("access-control-allow-origin").is_none(), "CORS is off by default: {headers:?}");
    drop(s);

    let s = Server::start(json!({"server": {"cors_origins": ["https://app.example"]}})).await;
    let (_, headers, _) = send(preflight(&s, "https://app.example")).await;
    assert_eq!(headers.get("access-control-allow-origin").and_then(|v| v.to_str().ok()), Some("https://app.example"));
    let (_, headers, _) = send(preflight(&s, "https://evil.example")).await;
    assert!(headers.get("access-control-allow-origin").is_none(), "{headers:?}");
    let (status, headers, _) =
        send(s.client.get(format!("{}/api/v1/tools", s.base)).header("origin", "https://app.example")).await;
    assert_eq!(status, 200);
    assert_eq!(headers.get("access-control-allow-origin").and_then(|v| v.to_str().ok()), Some("https://app.example"));
}

#[tokio::test]
async fn a_rebound_host_name_is_refused_on_every_route() {
    let s = Server::start(json!({"server": {"allowed_hosts": ["cella.test"]}})).await;
    let port = s.base.rsplit(':').next().expect("a port").to_string();
    for path in ["/health", "/api/v1/tools", "/openapi.json", "/mcp"] {
        let (status, _, reply) =
            send(s.client.get(format!("{}{path}", s.base)).header("host", format!("evil.example:{port}"))).await;
        assert_eq!(status, 403, "{path}: {reply}");
        if path != "/mcp" {
            assert_eq!(reply["code"], 7008, "{path}: {reply}");
        }
    }
    let (status, _, reply) = send(
        s.client
            .post(format!("{}/api/v1/execute", s.base))
            .header("host", "evil.example")
            .json(&json!({"worker_id": "w", "action": "kv:keys"})),
    )
    .await;
    assert_eq!(status, 403, "{reply}");
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}"), format!("cella.test:{port}")] {
        let (status, _, reply) = send(s.client.get(format!("{}/health", s.base)).header("host", host.clone())).await;
        assert_eq!(status, 200, "{host}: {reply}");
    }
}

/// AgentFlow's `HTTPServiceClient` posts with httpx's `json=` to a `localhost` base URL
/// (AGENTFLOW_PROTOCOL.md §8.1): exactly that, with the real httpx.
#[tokio::test]
async fn agentflows_client_requests_still_work() {
    let s = Server::default().await;
    let base = s.base.replace("127.0.0.1", "localhost");
    let python = python_venv("agentflow");
    let script = r#"
import httpx, json, sys
base, worker = sys.argv[1], sys.argv[2]
with httpx.Client(base_url=base, timeout=60) as c:
    assert c.get("/health").status_code == 200
    r = c.post("/api/v1/session/create", json={"worker_id": worker, "resource_type": "kv"})
    assert r.status_code == 200, r.text
    r = c.post("/api/v1/execute", json={"worker_id": worker, "action": "kv:set", "params": {"key": "k", "value": 7}})
    assert r.status_code == 200, r.text
    r = c.post("/api/v1/execute", json={"worker_id": worker, "action": "kv:get", "params": {"key": "k"}})
    print(json.dumps(r.json()))
"#;
    let out = tokio::process::Command::new(python)
        .args(["-c", script, &base, &worker("af")])
        .output()
        .await
        .expect("python runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reply: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(reply["data"]["value"], 7, "{reply}");
}
