//! Bad input of every kind gets an envelope with the right code; many clients at once lose
//! nothing; AgentFlow's client quirks are respected.

use cella_e2e::{Server, worker};
use serde_json::json;

#[tokio::test]
async fn malformed_bodies_get_envelopes() {
    let s = Server::default().await;
    for (body, needle) in [
        ("{bad", "not valid JSON"),
        ("[1, 2]", "must be a JSON object, not an array"),
        ("\"text\"", "must be a JSON object, not a string"),
        ("null", "must be a JSON object, not null"),
    ] {
        for path in ["/api/v1/execute", "/api/v1/session/create", "/api/v1/warmup"] {
            let (status, reply) = s.post_raw(path, body.to_string()).await;
            assert_eq!(status, 400, "{path} {body}");
            assert_eq!(reply["code"], 4002);
            assert!(reply["message"].as_str().unwrap().contains(needle), "{path} {body}: {reply}");
        }
    }
    let (status, reply) = s.post_raw("/api/v1/execute", vec![0xff, 0xfe, b'{']).await;
    assert_eq!((status, reply["code"].as_i64()), (400, Some(4002)));
    assert!(reply["message"].as_str().unwrap().contains("UTF-8"));
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let (status, reply) = s.post_raw("/api/v1/execute", deep).await;
    assert_eq!((status, reply["code"].as_i64()), (400, Some(4002)), "deep nesting is refused, not a crash");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let s = Server::default().await;
    let (status, body) = s.get("/api/v1/nope").await;
    assert_eq!((status, body["message"].as_str()), (404, Some("Not Found")));
    let (status, body) = s.get("/api/v1/execute").await;
    assert_eq!((status, body["message"].as_str()), (405, Some("Method Not Allowed")));
    let (status, _) = s.post("/health", json!({})).await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn the_body_limit_is_answered_with_an_envelope() {
    let s = Server::start(json!({"server": {"max_body_bytes": 1024}})).await;
    let big = json!({"worker_id": "w", "action": "kv:set", "params": {"key": "k", "value": "x".repeat(4096)}});
    let (status, body) = s.post("/api/v1/execute", big).await;
    assert_eq!((status, body["code"].as_i64()), (413, Some(4002)));
    assert!(body["message"].as_str().unwrap().contains("max_body_bytes"));
    let (status, _) = s.execute(&worker("small"), "kv:keys", json!({})).await;
    assert_eq!(status, 200, "the server goes on");
}

#[tokio::test]
async fn ten_mib_default_limit_accepts_large_values() {
    let s = Server::default().await;
    let w = worker("big");
    s.post("/api/v1/session/create", json!({"worker_id": w, "resource_type": "kv"})).await;
    let value = "v".repeat(4 * 1024 * 1024);
    let (status, _) = s.execute(&w, "kv:set", json!({"key": "big", "value": value})).await;
    assert_eq!(status, 200);
    let (_, body) = s.execute(&w, "kv:get", json!({"key": "big"})).await;
    assert_eq!(body["data"]["value"].as_str().map(str::len), Some(4 * 1024 * 1024));
    let (status, body) = s.post_raw("/api/v1/execute", "x".repeat(11 * 1024 * 1024)).await;
    assert_eq!((status, body["code"].as_i64()), (413, Some(4002)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_clients_lose_no_call() {
    let s = Server::default().await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let base = s.base.clone();
        tasks.push(tokio::spawn(async move {
            // One client (connection pool) per agent.
            let client = reqwest::Client::new();
            let w = format!("agent-{i}");
            let post = |path: &'static str, body: serde_json::Value| {
                let (client, base) = (client.clone(), base.clone());
                async move {
                    client
                        .post(format!("{base}{path}"))
                        .json(&body)
                        .send()
                        .await
                        .unwrap()
                        .json::<serde_json::Value>()
                        .await
                        .unwrap()
                }
            };
            let created = post("/api/v1/session/create", json!({"worker_id": w, "resource_type": "kv"})).await;
            assert_eq!(created["data"]["session_status"], "active");
            for _ in 0..5 {
                let r =
                    post("/api/v1/execute", json!({"worker_id": w, "action": "kv:incr", "params": {"key": "n"}})).await;
                assert_eq!(r["code"], 0, "{r}");
            }
            let got =
                post("/api/v1/execute", json!({"worker_id": w, "action": "kv:get", "params": {"key": "n"}})).await;
            assert_eq!(got["data"]["value"], 5, "a call was lost for {w}");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (_, ready) = s.get("/ready").await;
    assert_eq!(ready["total_sessions"], 200);
}

#[tokio::test]
async fn python_httpx_clients_get_connection_close() {
    let s = Server::default().await;
    let plain = s.client.get(format!("{}/health", s.base)).send().await.unwrap();
    assert!(plain.headers().get("connection").is_none_or(|v| v != "close"));
    let httpx =
        s.client.get(format!("{}/health", s.base)).header("user-agent", "python-httpx/0.28.1").send().await.unwrap();
    assert_eq!(httpx.headers().get("connection").unwrap(), "close");
}

#[tokio::test]
async fn a_trapping_guest_over_http_harms_no_one_else() {
    let s = Server::default().await;
    let (a, b) = (worker("victim"), worker("other"));
    for w in [&a, &b] {
        s.post("/api/v1/session/create", json!({"worker_id": w, "resource_type": "faulty"})).await;
    }
    s.execute(&b, "faulty:echo", json!({"value": 1})).await;
    let (status, body) = s.execute(&a, "faulty:trap", json!({})).await;
    assert_eq!((status, body["code"].as_i64()), (500, Some(7001)));
    let (status, body) = s.execute(&a, "faulty:echo", json!({"value": 1})).await;
    assert_eq!((status, body["code"].as_i64()), (400, Some(4007)));
    let (status, body) = s.execute(&b, "faulty:echo", json!({"value": 2})).await;
    assert_eq!((status, body["data"]["calls"].as_u64()), (200, Some(2)));
}
