//! Fuzzes request parsing and tool dispatch: arbitrary bodies to every POST route of the
//! real router, over the real sandbox (kv, rag, notebook). Every answer must be a JSON object,
//! and the only 5xx allowed are the protocol's all-failed batch (5009) and a full pool (503).
#![no_main]

use axum::body::Body;
use axum::http::Request;
use cella_runtime::http::{App, router};
use cella_runtime::{Config, Sandbox};
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::OnceLock;
use tower::ServiceExt;

const ROUTES: &[&str] = &[
    "/api/v1/execute", "/api/v1/execute/batch", "/api/v1/session/create", "/api/v1/session/destroy",
    "/api/v1/session/list", "/api/v1/session/refresh", "/api/v1/lifecycle/heartbeat", "/api/v1/lifecycle/status",
    "/api/v1/worker/disconnect", "/api/v1/init/resource", "/api/v1/init/batch", "/api/v1/init/from-config",
    "/api/v1/warmup",
];

struct State {
    rt: tokio::runtime::Runtime,
    router: axum::Router,
}

fn state() -> &'static State {
    static STATE: OnceLock<State> = OnceLock::new();
    STATE.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let mut config = Config::default_config();
        config.server.limits.max_instances = 64;
        config.server.limits.call_timeout_s = 2.0;
        config.server.cache_dir = Some(root.join("target").join("fuzz-cache"));
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let sandbox = rt.block_on(Sandbox::start(config)).expect("sandbox starts");
        // Warm every backend here, so that no input pays for compiling and imaging the
        // interpreters (minutes in this instrumented build on a cold cache; cached after).
        eprintln!("cella-fuzz: warming every backend (cached in target/fuzz-cache)");
        let warm = rt.block_on(sandbox.warmup(None));
        eprintln!("cella-fuzz: warmed: {warm:?}");
        let server = sandbox.config().server.clone();
        let app = App::new(sandbox);
        State { router: router(app, &server), rt }
    })
}

// The sandbox starts before the first input (compiling every component on a cold cache takes
// longer than libFuzzer's per-input timeout), not inside it.
fuzz_target!(init: { state(); }, |data: &[u8]| {
    let Some((first, body)) = data.split_first() else { return };
    let state = state();
    let route = ROUTES[*first as usize % ROUTES.len()];
    let request = Request::post(route).header("content-type", "application/json").body(Body::from(body.to_vec())).unwrap();
    let (status, bytes) = state.rt.block_on(async {
        let response = state.router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        (status, axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap())
    });
    let value: serde_json::Value = serde_json::from_slice(&bytes).expect("every answer is JSON");
    assert!(value.is_object(), "every answer is a JSON object: {value}");
    // Sessions the fuzzer creates pile up until the pool is full: then 503 (7004) is the
    // right answer. Any other 5xx but the protocol's all-failed batch (5009) is a bug.
    if status == 503 {
        assert_eq!(value["code"], 7004, "503 is only for a full pool: {value}");
    } else if status >= 500 {
        assert_eq!(value["code"], 5009, "unexpected server error {status} on {route}: {value}");
    }
});
