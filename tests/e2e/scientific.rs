//! The scientific Python (`builtin:python-sci`) as a session like every other: fork, pause,
//! resume and a graceful restart keep its interpreter's state (a pandas DataFrame); the call
//! deadline stops a long scipy call (ending that session; a new one works, with a
//! wheelhouse package installed); a crash of the interpreter ends only its own session.

use cella_e2e::{Server, scientific_config, scientific_server_with, worker};
use serde_json::json;

/// Opens `w`'s python session (without one, each call runs in a session of its own).
async fn open(s: &Server, w: &str) {
    let (status, body) = s.post("/api/v1/session/create", json!({"worker_id": w, "resource_type": "python"})).await;
    assert_eq!(status, 200, "{body}");
}

async fn run(s: &Server, w: &str, code: &str) -> serde_json::Value {
    let (status, body) = s.execute(w, "python:run", json!({"code": code})).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn a_scientific_session_forks_pauses_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let patch = json!({"server": {"snapshots": {"dir": dir.path(), "keep_on_shutdown": true}}});
    let s = scientific_server_with(patch.clone()).await;
    let w = worker("sci-snap");
    open(&s, &w).await;
    let made = run(&s, &w, "import numpy as np, pandas as pd\ndf = pd.DataFrame({'x': np.arange(100_000)})").await;
    assert_eq!(made["code"], 0, "{made}");

    let (status, body) =
        s.post("/api/v1/session/fork", json!({"worker_id": w, "resource_type": "python", "count": 2})).await;
    assert_eq!(status, 200, "{body}");
    let copies = body["data"]["sessions"].as_array().cloned().unwrap_or_default();
    assert_eq!(copies.len(), 2, "{body}");
    for copy in &copies {
        let fork = copy["worker_id"].as_str().unwrap();
        let got = run(&s, fork, "df['x'] = 0\nint(df.x.sum())").await;
        assert_eq!(got["data"]["result"], "0", "the copy changes its own frame: {got}");
    }
    let got = run(&s, &w, "int(df.x.sum())").await;
    assert_eq!(got["data"]["result"], "4999950000", "the source keeps its frame: {got}");

    let (status, body) = s.post("/api/v1/session/pause", json!({"worker_id": w, "resource_type": "python"})).await;
    assert_eq!(status, 200, "{body}");
    let got = run(&s, &w, "df['y'] = df.x * 2\nint(df.y.max())").await;
    assert_eq!(got["data"]["result"], "199998", "resumed with numpy and its frame: {got}");

    let (status, body) = s.post("/api/v1/server/shutdown", json!({})).await;
    assert_eq!(status, 200, "{body}");
    s.wait().await.expect("the server stops");
    let s = Server::start(scientific_config(patch)).await;
    let got = run(&s, &w, "import matplotlib.pyplot as plt\nplt.plot(df.y[:3])\nplt.show()\nlen(df)").await;
    assert_eq!(got["data"]["result"], "100000", "back after the restart: {got}");
    assert_eq!(got["data"]["results"][0]["png"].as_str().map(|p| &p[..8]), Some("iVBORw0K"), "and plots: {got}");
}

#[tokio::test]
async fn the_deadline_stops_a_long_scipy_call_and_a_crash_ends_only_its_session() {
    let s = scientific_server_with(json!({})).await;
    let w = worker("sci-deadline");
    let other = worker("sci-other");
    open(&s, &w).await;
    open(&s, &other).await;
    run(&s, &other, "kept = 7").await;
    run(&s, &w, "import scipy.optimize\nkept = 1").await;
    // A minimisation that would run for minutes: stopped at the request's 2 s deadline.
    let started = std::time::Instant::now();
    let (status, body) = s
        .post(
            "/api/v1/execute",
            json!({"worker_id": w, "action": "python:run", "timeout": 2,
                   "params": {"code": "import numpy as np\nscipy.optimize.minimize(lambda v: float(np.sum(np.sin(v) ** 2)), np.ones(400), method='Nelder-Mead', options={'maxiter': 10**9, 'maxfev': 10**9, 'xatol': 0, 'fatol': 0})"}}),
        )
        .await;
    let took = started.elapsed();
    assert_ne!(status, 200, "{body}");
    assert_eq!(body["code"], 5006, "a timeout: {body}");
    assert!(took.as_secs() < 30, "stopped near its deadline, not after {took:?}");
    // The timed-out session ended (its instance may be mid-computation); the next call
    // says so, and a new session (after the ended one is destroyed) works.
    let (status, got) = s.execute(&w, "python:run", json!({"code": "kept"})).await;
    assert_eq!((status, got["code"].as_i64()), (400, Some(4007)), "{got}");
    assert!(got["message"].as_str().unwrap_or_default().contains("timed out"), "{got}");
    let (status, body) = s.post("/api/v1/session/destroy", json!({"worker_id": w, "resource_type": "python"})).await;
    assert_eq!(status, 200, "{body}");
    open(&s, &w).await;
    let got =
        run(&s, &w, "import scipy.optimize\nscipy.optimize.minimize_scalar(lambda x: (x - 2) ** 2).x.round(3)").await;
    assert_eq!(got["data"]["result"], "np.float64(2.0)", "{got}");
    // Pure-Python wheels install from the wheelhouse beside the built-in stack.
    let (status, got) = s.execute(&w, "python:install", json!({"packages": ["six"]})).await;
    assert_eq!(status, 200, "{got}");
    let got = run(&s, &w, "import six\nsix.PY3").await;
    assert_eq!(got["data"]["result"], "True", "{got}");
    // A trap inside the interpreter (a stack overflow past recursion's guard) ends that session.
    let (status, crashed) = s
        .execute(
            &w,
            "python:run",
            json!({"code": "import sys\nsys.setrecursionlimit(10**8)\ndef f(n): return f(n + 1)\nf(0)"}),
        )
        .await;
    assert_eq!(status, 500, "{crashed}");
    assert!(crashed["code"].as_i64().is_some_and(|c| (7000..8000).contains(&c)), "a fault: {crashed}");
    let got = run(&s, &other, "kept").await;
    assert_eq!(got["data"]["result"], "7", "the other session is untouched: {got}");
}
