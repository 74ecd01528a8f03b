//! The `cella` binary: inspect, call, compile, and serve with a graceful stop on Ctrl-C.

use crate::common::{repo_root, shared_cache};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

fn cella() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cella"));
    cmd.env("CELLA_CACHE_DIR", shared_cache()).env_remove("CELLA_CONFIG").env_remove("CELLA_PORT");
    cmd
}

fn component(name: &str) -> String {
    cella_runtime::config::home::home().component(name).unwrap().display().to_string()
}

pub(crate) fn run(args: &[&str]) -> Output {
    cella().args(args).output().expect("cella runs")
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn inspect_shows_the_manifest_and_schemas() {
    let out = run(&["inspect", &component("kv")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("kv 0.1.0"), "{text}");
    assert!(text.contains("kv:get  [session]") && text.contains("key: string (required)"), "{text}");
    let out = run(&["inspect", "--json", &component("rag")]);
    let manifest: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(manifest["name"], "rag");
    let search = manifest["tools"].as_array().unwrap().iter().find(|t| t["name"] == "rag:search").unwrap();
    assert_eq!(search["needs_session"], false);
    assert_eq!(search["input_schema"]["required"], serde_json::json!(["query"]));
}

#[test]
fn call_runs_one_tool_locally() {
    // Each call is a session of its own: the second does not find the first's key.
    for _ in 0..2 {
        let out = run(&[
            "call",
            &component("kv"),
            "kv:incr",
            r#"{"key": "n", "by": 5}"#,
            "--session-config",
            r#"{"max_keys": 1}"#,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let envelope: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!((envelope["code"].as_i64(), envelope["data"]["value"].as_i64()), (Some(0), Some(5)));
    }
    // A tool error prints the envelope and exits 2.
    let out = run(&["call", &component("kv"), "kv:get", r#"{"key": "absent"}"#]);
    assert_eq!(out.status.code(), Some(2));
    let envelope: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(envelope["code"], 4006);
    // The backend config reaches warmup.
    let docs = r#"{"documents": [{"title": "t", "text": "cella runs components"}]}"#;
    let out = run(&["call", &component("rag"), "rag:search", r#"{"query": "components"}"#, "--config", docs]);
    let envelope: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(envelope["data"]["results"][0]["document"], "t", "{}", stderr(&out));
}

#[test]
fn user_errors_get_one_clear_line_and_no_backtrace() {
    let not_wasm = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(not_wasm.path(), "hello").unwrap();
    let core = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(core.path(), [0, b'a', b's', b'm', 1, 0, 0, 0]).unwrap();
    // A valid component (component-model layer header) that exports nothing.
    let empty = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(empty.path(), [0, b'a', b's', b'm', 0x0d, 0, 1, 0]).unwrap();
    let kv = component("kv");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["inspect", "/nonexistent/x.wasm"], "no such file"),
        (vec!["inspect", not_wasm.path().to_str().unwrap()], "is not a WebAssembly component"),
        (vec!["inspect", core.path().to_str().unwrap()], "is a core WebAssembly module, not a component"),
        (vec!["inspect", empty.path().to_str().unwrap()], "does not implement the world cella:backend/backend@0.1.0"),
        (vec!["call", &kv, "kv:get", "{bad"], "params is not valid JSON"),
        (vec!["call", &kv, "kv:get", "[1]"], "params must be a JSON object"),
        (vec!["call", &kv, "kv:get", "{}", "--session-config", "nope"], "--session-config is not valid JSON"),
        (vec!["serve", "--config", "/nonexistent/cella.json"], "/nonexistent/cella.json"),
    ];
    for (args, needle) in cases {
        let out = run(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.starts_with("error: ") && err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("backtrace") && !err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn compile_fills_the_cache_for_every_backend() {
    let cache = tempfile::tempdir().unwrap();
    let out =
        cella().arg("compile").env("XDG_CACHE_HOME", cache.path()).env_remove("CELLA_CACHE_DIR").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let backends = ["kv", "rag", "notebook", "python", "python-lite", "javascript"];
    for backend in backends {
        assert!(
            text.lines().any(|l| l.starts_with(backend) && l.contains("compiled") && l.contains("warm image")),
            "{text}"
        );
    }
    let dir = cache.path().join("cella");
    // `.preopens` beside a warm image says how many directories its guest holds.
    let files = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_file() && e.path().extension().is_none_or(|x| x != "preopens" && x != "lock"))
        .count();
    assert_eq!(files, 4 * backends.len(), "a component and a warm image per backend, each with its checksum");
    let sums = std::fs::read_dir(dir.join("sums")).unwrap().count();
    assert_eq!(sums, backends.len(), "each component's hash is remembered for the next start");
    // The second run finds everything in the cache.
    let again =
        cella().arg("compile").env("XDG_CACHE_HOME", cache.path()).env_remove("CELLA_CACHE_DIR").output().unwrap();
    let text = String::from_utf8_lossy(&again.stdout);
    assert!(
        text.lines().filter(|l| l.contains("component cached") && l.contains("warm image cached")).count()
            == backends.len(),
        "{text}"
    );
}

/// A `cella serve` child, killed when a failing test drops it: no server outlives its test.
pub(crate) struct Served(pub(crate) Option<std::process::Child>);

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Served {
    pub(crate) fn take(mut self) -> std::process::Child {
        self.0.take().expect("the server runs")
    }
}

/// Starts `cella serve` on a free port; returns the child and its base URL.
fn serve() -> (Served, String) {
    serve_with(&[])
}

/// `cella serve` with more arguments.
fn serve_with(args: &[&str]) -> (Served, String) {
    serve_env(args, &[])
}

/// [`serve_with`], with `envs` set for the server.
pub(crate) fn serve_env(args: &[&str], envs: &[(&str, &str)]) -> (Served, String) {
    let mut child = cella()
        .args(["serve", "--port", "0"])
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(repo_root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cella serve starts");
    let stdout = child.stdout.take().unwrap();
    let child = Served(Some(child));
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let base = line.trim().strip_prefix("cella listening on ").expect("the listening line").to_string();
    (child, base)
}

/// Ctrl-C; returns the server's log.
pub(crate) fn interrupt(child: Served) -> String {
    let child = child.take();
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "exit {:?}", out.status);
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The worker's one session is listed `paused` under `session_id` (brought back by a start).
async fn assert_back_paused(base: &str, worker: &str, session_id: &str) {
    let listed = post(base, "/api/v1/session/list", serde_json::json!({"worker_id": worker})).await;
    let session = &listed["data"]["sessions"][0];
    assert_eq!(
        (session["session_id"].as_str(), session["status"].as_str()),
        (Some(session_id), Some("paused")),
        "{listed}"
    );
}

pub(crate) async fn post(base: &str, path: &str, body: Value) -> Value {
    reqwest::Client::new().post(format!("{base}{path}")).json(&body).send().await.unwrap().json().await.unwrap()
}

/// `cella serve` answers HTTP; Ctrl-C keeps the live session for the next start (no cleanup)
/// and runs the backends' shutdown hooks; the next `cella serve` lists it paused under its
/// id and resumes it with its notes on first use.
#[test]
fn serve_answers_http_and_keeps_sessions_over_ctrl_c() {
    let worker = format!("cli-{}", uuid::Uuid::new_v4().simple());
    let (child, base) = serve();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let session_id = rt.block_on(async {
        let health: Value = reqwest::get(format!("{base}/health")).await.unwrap().json().await.unwrap();
        assert_eq!(health["status"], "healthy");
        let body = serde_json::json!({"worker_id": worker, "resource_type": "notebook"});
        let created = post(&base, "/api/v1/session/create", body).await;
        assert_eq!(created["data"]["session_status"], "active");
        let note = serde_json::json!({"worker_id": worker, "action": "notebook:write",
                                      "params": {"title": "t", "text": "an Epoch"}});
        assert_eq!(post(&base, "/api/v1/execute", note).await["code"], 0);
        created["data"]["session_id"].as_str().unwrap().to_string()
    });
    let log = interrupt(child);
    assert!(log.contains("sessions kept for the next start"), "the live session was kept: {log}");
    assert!(!log.contains("notebook closed with"), "a kept session's cleanup does not run: {log}");
    assert!(log.contains("notebook shutting down with 10 glossary terms"), "the backend's shutdown hook ran: {log}");
    assert!(log.contains("server stopped"), "{log}");

    let (child, base) = serve();
    rt.block_on(async {
        assert_back_paused(&base, &worker, &session_id).await;
        let read = serde_json::json!({"worker_id": worker, "action": "notebook:read", "params": {"title": "t"}});
        let note = post(&base, "/api/v1/execute", read).await;
        assert_eq!(note["code"], 0, "{note}");
        let destroyed = post(
            &base,
            "/api/v1/session/destroy",
            serde_json::json!({"worker_id": worker, "resource_type": "notebook"}),
        )
        .await;
        assert_eq!(destroyed["code"], 0, "{destroyed}");
    });
    let log = interrupt(child);
    assert!(log.contains("notebook closed with 1 notes"), "destroy ran the resumed session's cleanup: {log}");
}

/// With `server.snapshots.checkpoint_interval_s`, a server killed outright (SIGKILL: no
/// graceful stop, nothing kept at shutdown) loses at most the interval: the next start brings
/// the session back paused under its id with the state of its last checkpoint. A session
/// keeps one checkpoint, replaced as it changes and deleted when it ends. What the kill left
/// half-written (a blob without its record) is swept, by `cella snapshots sweep` and by the
/// server at its start, and the checkpoint's own blob never.
#[test]
fn a_crash_loses_at_most_the_checkpoint_interval() {
    let dir = tempfile::tempdir().unwrap();
    let config = serde_json::json!({
        "server": {"cache_dir": shared_cache(), "session_ttl": 300,
                   "snapshots": {"dir": dir.path().join("snapshots"), "checkpoint_interval_s": 0.2,
                                 "keep_on_shutdown": false}},
        "resources": {"kv": {"component": "builtin:kv"}}
    });
    let path = dir.path().join("cella.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let path = path.display().to_string();
    let worker = format!("crash-{}", uuid::Uuid::new_v4().simple());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let set = |key: &str, value: i64| serde_json::json!({"worker_id": worker, "action": "kv:set", "params": {"key": key, "value": value}});
    // The session's checkpoints: (id, session id) of every `checkpoint` record.
    let checkpoints = |base: String| async move {
        let listed: Value = reqwest::get(format!("{base}/api/v1/snapshots")).await.unwrap().json().await.unwrap();
        let all = listed["data"]["snapshots"].as_array().cloned().unwrap_or_default();
        all.iter()
            .filter(|r| r["reason"] == "checkpoint")
            .map(|r| (r["snapshot_id"].as_str().unwrap().to_string(), r["session_id"].as_str().unwrap().to_string()))
            .collect::<Vec<_>>()
    };
    let wait_for = |base: String, not: Option<String>| async move {
        for _ in 0..100 {
            let now = checkpoints(base.clone()).await;
            if now.len() == 1 && Some(&now[0].0) != not.as_ref() {
                return now[0].clone();
            }
            assert!(now.len() <= 1, "one checkpoint per session: {now:?}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("no new checkpoint within 5 s");
    };

    let (child, base) = serve_with(&["--config", &path]);
    let session_id = rt.block_on(async {
        let body = serde_json::json!({"worker_id": worker, "resource_type": "kv"});
        let created = post(&base, "/api/v1/session/create", body).await;
        let session_id = created["data"]["session_id"].as_str().expect("created").to_string();
        assert_eq!(post(&base, "/api/v1/execute", set("a", 1)).await["code"], 0);
        let (first, of) = wait_for(base.clone(), None).await;
        assert_eq!(of, session_id);
        assert_eq!(post(&base, "/api/v1/execute", set("b", 2)).await["code"], 0);
        // The change makes a new checkpoint, which replaces the first.
        wait_for(base.clone(), Some(first)).await;
        session_id
    });
    let mut child = child.take();
    child.kill().unwrap();
    let _ = child.wait();

    // `cella snapshots` reads the store offline: the checkpoint is listed, reads back, and
    // is not deleted without --force (it is the session's state).
    let out = run(&["snapshots", "list", "--json", "--config", &path]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (listed[0]["reason"].as_str(), listed[0]["session_id"].as_str()),
        (Some("checkpoint"), Some(&*session_id))
    );
    let out = run(&["snapshots", "verify", "--config", &path]);
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 snapshots read back, 0 refused"));
    let id = listed[0]["snapshot_id"].as_str().unwrap();
    let out = run(&["snapshots", "delete", id, "--config", &path]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    // A kill between a blob and its record leaves the blob: `sweep` removes it once it is
    // older than the grace (an hour by default), and never the checkpoint's own blob.
    let blobs = dir.path().join("snapshots/tenants/default/blobs");
    let checkpoint_blob: Vec<_> = std::fs::read_dir(&blobs).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(checkpoint_blob.len(), 1, "{checkpoint_blob:?}");
    std::fs::write(blobs.join("snap_killed.partial"), vec![0u8; 4096]).unwrap();
    let out = run(&["snapshots", "sweep", "--config", &path]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed 0 orphan blobs"), "{}", stderr(&out));
    let out = run(&["snapshots", "sweep", "--grace-s", "0", "--config", &path]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed 1 orphan blobs"), "{}", stderr(&out));
    let left: Vec<_> = std::fs::read_dir(&blobs).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, checkpoint_blob, "the orphan went, the checkpoint's blob stayed");
    // The server sweeps at start too, with `orphan_grace_s`.
    std::fs::write(blobs.join("snap_killed-00ff"), vec![0u8; 4096]).unwrap();
    let mut config = config;
    config["server"]["snapshots"]["orphan_grace_s"] = 0.into();
    std::fs::write(&path, config.to_string()).unwrap();

    let (child, base) = serve_with(&["--config", &path]);
    rt.block_on(async {
        assert_back_paused(&base, &worker, &session_id).await;
        for (key, value) in [("a", 1), ("b", 2)] {
            let get = serde_json::json!({"worker_id": worker, "action": "kv:get", "params": {"key": key}});
            let got = post(&base, "/api/v1/execute", get).await;
            assert_eq!(got["data"]["value"], value, "{got}");
        }
        let destroy = serde_json::json!({"worker_id": worker, "resource_type": "kv"});
        assert_eq!(post(&base, "/api/v1/session/destroy", destroy).await["code"], 0);
        assert_eq!(checkpoints(base.clone()).await, vec![], "an ended session leaves no checkpoint");
        let orphan = blobs.join("snap_killed-00ff");
        for _ in 0..100 {
            if !orphan.exists() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(!orphan.exists(), "the server swept the orphan at its start");
    });
    interrupt(child);
}

/// `cella mcp-stdio`, launched and driven by the official MCP Python SDK (`tests/mcp/client.py`)
/// as a desktop MCP client would: tools listed, stateless and stateful calls, errors.
#[test]
fn mcp_stdio_serves_the_official_python_client() {
    let root = repo_root();
    let venv = Command::new("bash")
        .arg(root.join("scripts/python-venv.sh"))
        .arg(root.join("target/venvs/mcp"))
        .arg(root.join("tests/mcp/requirements.txt"))
        .output()
        .expect("bash runs");
    assert!(venv.status.success(), "{}", stderr(&venv));
    let python = String::from_utf8_lossy(&venv.stdout).trim().to_string();
    let mut config = crate::common::base_config();
    config["resources"]["rag"]["grants"]["dirs"][0]["host"] = root.join("examples/corpus").display().to_string().into();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cella.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let out = Command::new(python)
        .arg(root.join("tests/mcp/client.py"))
        .args(["stdio", "tour", "--", env!("CARGO_BIN_EXE_cella"), "mcp-stdio", "--config"])
        .arg(&path)
        .env("CELLA_CACHE_DIR", shared_cache())
        .output()
        .expect("the MCP client runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let out: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out["initialize"]["serverInfo"]["name"], "cella");
    let names: Vec<&str> = out["tools"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(names.contains(&"kv.get") && names.contains(&"rag.search"), "{names:?}");
    assert_eq!(out["stateless"]["structuredContent"]["code"], 0, "{}", out["stateless"]);
    assert_eq!(out["get"]["structuredContent"]["data"]["value"], "teal", "{}", out["get"]);
    assert_eq!(out["tool_error"]["isError"], true);
    assert_eq!(out["unknown_tool"]["jsonrpc_error"]["code"], -32602);
}

#[test]
fn mcp_stdio_refuses_an_unknown_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cella.json");
    let config = serde_json::json!({"tenants": {"a": {"keys": [cella_runtime::tenancy::hash_key("k")]}},
        "resources": {"kv": {"component": "builtin:kv"}}});
    std::fs::write(&path, config.to_string()).unwrap();
    let out = cella().args(["mcp-stdio", "--config"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--tenant"), "{}", stderr(&out));
    let out = cella().args(["mcp-stdio", "--tenant", "zed", "--config"]).arg(&path).output().unwrap();
    assert!(stderr(&out).contains("unknown tenant 'zed'"), "{}", stderr(&out));
}

/// `scripts/package.sh` makes a tree that serves the embedded default from anywhere: moved
/// to another folder, with no checkout to fall back on, it finds its components and example
/// data in `share/cella` beside its `bin/`.
#[test]
fn a_packaged_tree_serves_after_being_moved() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let status = Command::new("bash")
        .arg(repo_root().join("scripts/package.sh"))
        .arg(&out)
        .env("CELLA_BIN", env!("CARGO_BIN_EXE_cella"))
        .status()
        .expect("package.sh runs");
    assert!(status.success());
    let moved = dir.path().join("elsewhere");
    std::fs::rename(out.join("cella"), &moved).unwrap();
    let mut child = Command::new(moved.join("bin/cella"))
        .args(["serve", "--port", "0"])
        .current_dir(dir.path())
        .env("CELLA_CACHE_DIR", shared_cache())
        .env_remove("CELLA_CONFIG")
        .env_remove("CELLA_PORT")
        .env_remove("CELLA_HOME")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the moved cella starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base = line.trim().strip_prefix("cella listening on ").expect("the listening line").to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let found: Value = rt.block_on(async {
        let body =
            serde_json::json!({"worker_id": "pkg", "action": "rag:search", "params": {"query": "component model"}});
        let response = reqwest::Client::new().post(format!("{base}/api/v1/execute")).json(&body).send().await.unwrap();
        response.json().await.unwrap()
    });
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(found["code"], 0, "rag read the packaged corpus: {found}\n{log}");
    assert!(!found["data"]["results"].as_array().unwrap().is_empty(), "{found}");
    let share = moved.join("share/cella");
    assert!(
        log.contains(&share.display().to_string()) && log.contains("Installed"),
        "served from the moved tree: {log}"
    );
}
