//! The run API's snapshot verbs (`/api/v1/run/sessions/{id}/{fork,pause,resume,snapshot}`)
//! over the real Python component.

use cella_e2e::Server;
use serde_json::{Value, json};

async fn run(s: &Server, body: Value) -> (u16, Value) {
    s.post("/api/v1/run", body).await
}

/// A run session forks into new run sessions with its variables, functions and files (the
/// copies and the source then diverge), pauses (the next run resumes it), and snapshots into
/// the store; another tenant's or an unknown run session is not found.
#[tokio::test]
async fn a_run_session_forks_pauses_resumes_and_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let s = cella_e2e::code_server(json!({"server": {"snapshots": {"dir": dir.path()}}})).await;
    let (_, first) = run(
        &s,
        json!({"code": "x = 20\ndef double(v):\n    return 2 * v\nopen('notes.txt', 'w').write('kept')", "keep_alive": true}),
    )
    .await;
    let id = first["data"]["session_id"].as_str().unwrap().to_string();
    let (status, forked) = s.post(&format!("/api/v1/run/sessions/{id}/fork"), json!({"count": 2})).await;
    assert_eq!(status, 200, "{forked}");
    let copies: Vec<String> = forked["data"]["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["session_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(copies.len(), 2);
    for (k, copy) in copies.iter().enumerate() {
        assert!(copy.starts_with("run-") && copy != &id, "{copy}");
        let code = format!("x += {k}\nprint(open('notes.txt').read())\ndouble(x)");
        let (_, ran) = run(&s, json!({"code": code, "session_id": copy, "keep_alive": true})).await;
        assert_eq!(
            (ran["data"]["stdout"].as_str(), ran["data"]["result"].as_str()),
            (Some("kept\n"), Some(&*format!("{}", 2 * (20 + k)))),
            "{ran}"
        );
    }
    let (_, source) = run(&s, json!({"code": "x", "session_id": id, "keep_alive": true})).await;
    assert_eq!(source["data"]["result"], "20", "the source is unaffected: {source}");

    // Pause, then the next run resumes it.
    let (status, paused) = s.post(&format!("/api/v1/run/sessions/{id}/pause"), json!({})).await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["data"]["status"], "paused", "{paused}");
    let (_, again) = run(&s, json!({"code": "double(x)", "session_id": id, "keep_alive": true})).await;
    assert_eq!(again["data"]["result"], "40", "{again}");
    let (status, _) = s.post(&format!("/api/v1/run/sessions/{id}/resume"), json!({})).await;
    assert_eq!(status, 200);

    // A snapshot per language, restorable as a plain session.
    let (status, snap) = s.post(&format!("/api/v1/run/sessions/{id}/snapshot"), json!({})).await;
    assert_eq!(status, 200, "{snap}");
    let snapshot = snap["data"]["snapshots"][0]["snapshot_id"].as_str().unwrap().to_string();
    let w = cella_e2e::worker("restored");
    let (status, _) = s.post(&format!("/api/v1/snapshots/{snapshot}/restore"), json!({"worker_id": w})).await;
    assert_eq!(status, 200);
    let (_, got) = s.execute(&w, "python:run", json!({"code": "double(x)"})).await;
    assert_eq!(got["data"]["result"], "40", "{got}");

    let (status, body) = s.post("/api/v1/run/sessions/run-nope/fork", json!({})).await;
    assert_eq!((status, body["code"].as_i64()), (404, Some(4007)), "{body}");
}

/// A run session outlives a graceful restart (#35): the next run after it, with the same
/// session id, finds its variables and files; a paused one too.
#[tokio::test]
async fn run_sessions_live_and_paused_come_back_after_a_graceful_restart() {
    let dir = tempfile::tempdir().unwrap();
    let patch = json!({"server": {"snapshots": {"dir": dir.path(), "keep_on_shutdown": true}}});
    let s = cella_e2e::code_server(patch.clone()).await;
    let mut ids = Vec::new();
    for n in [1, 2] {
        let code = format!("n = {n}\nopen('n.txt', 'w').write('file {n}')");
        let (_, first) = run(&s, json!({"code": code, "keep_alive": true})).await;
        ids.push(first["data"]["session_id"].as_str().expect("a session id").to_string());
    }
    let (status, paused) = s.post(&format!("/api/v1/run/sessions/{}/pause", ids[1]), json!({})).await;
    assert_eq!(status, 200, "{paused}");
    s.stop().await;

    let s = cella_e2e::code_server(patch).await;
    for (n, id) in ids.iter().enumerate() {
        let code = "(n, open('n.txt').read())";
        let (status, ran) = run(&s, json!({"code": code, "session_id": id, "keep_alive": true})).await;
        assert_eq!(status, 200, "{ran}");
        assert_eq!(ran["data"]["result"], format!("({}, 'file {}')", n + 1, n + 1), "{ran}");
    }
}
