//! `cella new` and `cella build` for every guest language: a scaffolded project, built and
//! served unchanged by `cella serve --backend`, answers its sample tool over HTTP.

use crate::common::{repo_root, shared_cache};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn cella(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cella"));
    cmd.current_dir(dir)
        .env("CELLA_CACHE_DIR", shared_cache())
        // Rust projects share one target folder across runs, so their dependencies build once.
        .env("CARGO_TARGET_DIR", repo_root().join("target/scaffold-rust"))
        .env_remove("CELLA_CONFIG")
        .env_remove("CELLA_PORT");
    cmd
}

fn check(out: Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{what} failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).to_string() + &stderr
}

fn scaffold_builds_and_serves(lang: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let name = format!("hello-{lang}");
    let made = check(cella(tmp.path()).args(["new", &name, "--lang", lang]).output().unwrap(), "cella new");
    assert!(made.contains(&format!("created {lang} backend '{name}'")), "{made}");
    let project = tmp.path().join(&name);
    assert!(project.join("README.md").exists() && project.join("cella.json").exists());

    let built = check(cella(&project).arg("build").output().unwrap(), "cella build");
    let wasm = project.join("build").join(format!("{name}.wasm"));
    assert!(wasm.exists(), "{built}");
    assert!(built.contains(&format!("{name}:greet")), "cella build shows the manifest: {built}");

    let mut child = cella(&project)
        .args(["serve", "--port", "0", "--backend"])
        .arg(&wasm)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base = line.trim().strip_prefix("cella listening on ").expect("the listening line").to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let post = |path: &str, body: Value| {
            let request = client.post(format!("{base}{path}")).json(&body);
            async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
        };
        let tools = client.get(format!("{base}/api/v1/tools")).send().await.unwrap().json::<Value>().await.unwrap();
        assert_eq!(tools["count"], 1, "only the project's backend is served: {tools}");
        let greet = |params: Value| {
            post("/api/v1/execute", json!({"worker_id": "author", "action": format!("{name}:greet"), "params": params}))
        };
        post("/api/v1/session/create", json!({"worker_id": "author", "resource_type": name})).await;
        let first = greet(json!({"name": "Ada"})).await;
        assert_eq!(first["data"], json!({"greeting": "Hello, Ada!", "count": 1}), "{first}");
        let second = greet(json!({"name": "Grace"})).await;
        assert_eq!(second["data"]["count"], 2, "the session keeps its state: {second}");
        let empty = greet(json!({"name": ""})).await;
        assert_eq!(empty["code"], 4004, "{empty}");
        let missing = greet(json!({})).await;
        assert_eq!(missing["code"], 4003, "{missing}");
        // Ended here: a session left live would be kept over Ctrl-C for the next serve of
        // the shared test cache (server.snapshots.keep_on_shutdown).
        let destroyed = post("/api/v1/session/destroy", json!({"worker_id": "author", "resource_type": name})).await;
        assert_eq!(destroyed["code"], 0, "{destroyed}");
    });
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_rust_project_builds_and_serves() {
    scaffold_builds_and_serves("rust");
}

#[test]
fn a_python_project_builds_and_serves() {
    scaffold_builds_and_serves("python");
}

#[test]
fn a_javascript_project_builds_and_serves() {
    scaffold_builds_and_serves("js");
}

#[test]
fn a_c_project_builds_and_serves() {
    scaffold_builds_and_serves("c");
}

#[test]
fn new_and_build_refuse_bad_input_with_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let fails = |args: &[&str], dir: &Path, wanted: &str| {
        let out = cella(dir).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: ") && stderr.contains(wanted), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line, no backtrace: {stderr}");
    };
    fails(&["new", "x", "--lang", "cobol"], tmp.path(), "unknown language 'cobol'");
    fails(&["new", "Bad Name"], tmp.path(), "not a valid backend name");
    std::fs::create_dir(tmp.path().join("taken")).unwrap();
    std::fs::write(tmp.path().join("taken/file"), "x").unwrap();
    fails(&["new", "taken"], tmp.path(), "already exists and is not empty");
    fails(&["build"], tmp.path(), "is not a backend project");
}

#[test]
fn a_c_project_of_several_files_links_once() {
    let tmp = tempfile::tempdir().unwrap();
    check(cella(tmp.path()).args(["new", "multi", "--lang", "c"]).output().unwrap(), "cella new");
    let project = tmp.path().join("multi");
    // A second file uses the helpers; only app.c (defining CELLA_BACKEND) has the exports.
    std::fs::write(
        project.join("util.c"),
        "#define CELLA_HELPERS_ONLY\n#include \"cella.h\"\n\nvoid shout(cella_buf *out, const char *s) { cella_buf_json_string(out, s, strlen(s)); }\n",
    )
    .unwrap();
    let built = check(cella(&project).arg("build").output().unwrap(), "cella build");
    assert!(built.contains("multi:greet"), "{built}");
}
