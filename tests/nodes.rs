//! Real `cella serve` processes for the tests that kill a server (`kill -9`) or run several:
//! the binary this build made, a configuration file in a temporary directory, a free port on
//! loopback read back from the server's own log.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, BufReader};

/// The `cella` binary of this build's profile. `cargo test --workspace` (the README's test
/// command) builds it, since the runtime has integration tests; a binary older than the
/// sources it was built from (only this package's tests were built) is refused with the command that
/// rebuilds it, rather than tested stale.
pub fn cella_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/<test>
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>").to_path_buf();
    let path = profile_dir.join("cella");
    let release = if profile_dir.file_name().is_some_and(|n| n == "release") { " --release" } else { "" };
    let rebuild = format!("cargo build{release} -p cella-runtime --bin cella");
    let built = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("{} is missing: {rebuild}", path.display()));
    // The sources cargo built it from, as its dep-info lists them.
    let deps = std::fs::read_to_string(profile_dir.join("cella.d")).unwrap_or_default();
    let sources = deps.split_once(": ").map(|(_, d)| d).unwrap_or_default();
    for source in sources.split_whitespace().map(Path::new).filter(|p| p.extension().is_some_and(|e| e == "rs")) {
        let at = std::fs::metadata(source).and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH);
        assert!(at <= built, "{} is older than {}: {rebuild}", path.display(), source.display());
    }
    path
}

/// One running `cella serve` process.
pub struct Node {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// Its port.
    pub port: u16,
    child: tokio::process::Child,
    /// Every line it logged so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Node {
    /// Starts `cella serve --config <dir>/config.json` on `host` (a loopback address) with
    /// `port` (0: a free one); returns once it serves.
    pub async fn start(config: &Value, dir: &Path, host: &str, port: u16) -> Node {
        let file = dir.join(format!("config-{}.json", uuid::Uuid::new_v4().simple()));
        std::fs::write(&file, serde_json::to_vec_pretty(config).expect("JSON")).expect("the config is written");
        let mut child = tokio::process::Command::new(cella_binary())
            .args(["serve", "--log-json", "--host", host, "--port", &port.to_string(), "--config"])
            .arg(&file)
            .env_remove("CELLA_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("cella serve starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let kept = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && v["fields"]["message"].as_str().is_some_and(|m| m.starts_with("serving"))
                    && let Some(address) = v["fields"]["address"].as_str()
                {
                    let _ = tx.send(address.to_string());
                }
                kept.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        let address =
            tokio::time::timeout(std::time::Duration::from_secs(120), rx.recv()).await.ok().flatten().unwrap_or_else(
                || panic!("cella serve did not start: {:?}", log.lock().unwrap_or_else(|e| e.into_inner())),
            );
        let port = address.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port");
        Node { base: format!("http://{address}"), port, child, log }
    }

    /// Kills it at once (SIGKILL): nothing is kept but what is already in the store.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }

    /// Stops it gracefully (SIGTERM) and waits for it to exit.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(120), self.child.wait()).await;
    }

    /// Whether a logged line contains `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).iter().any(|l| l.contains(text))
    }
}

/// The configuration of a node: the tests' cache (compiled components, warm images), kv and
/// the code interpreters, every path absolute; `patch` merged in.
pub fn code_config(patch: Value) -> Value {
    let mut config = serde_json::json!({
        "server": {
            "cache_dir": crate::repo_root().join("target").join("test-cache"),
            "limits": {"max_instances": 200, "memory_mb": 64, "call_timeout_s": 10}
        },
        "resources": crate::code_resources()
    });
    crate::merge(&mut config["resources"], serde_json::json!({"kv": {"component": "builtin:kv"}}));
    crate::merge(&mut config, patch);
    config
}

/// HAProxy from Debian's packages (pinned in `deploy/router/haproxy.debs`, unpacked by
/// `scripts/debian-tool.sh`) running `deploy/router/haproxy.cfg` in front of three nodes.
pub struct Router {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    child: tokio::process::Child,
}

/// HAProxy's command, unpacked from its pinned Debian packages (once; later calls reuse it).
pub fn haproxy() -> PathBuf {
    let root = crate::repo_root();
    let out = std::process::Command::new("bash")
        .arg(root.join("scripts/debian-tool.sh"))
        .arg(root.join("deploy/router/haproxy.debs"))
        .arg("usr/sbin/haproxy")
        .output()
        .expect("bash runs");
    assert!(out.status.success(), "debian-tool.sh failed: {}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

impl Router {
    /// Starts the router on a free loopback port in front of `nodes` (`host:port` each).
    pub async fn start(nodes: [&str; 3]) -> Router {
        let root = crate::repo_root();
        let haproxy = haproxy();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let child = tokio::process::Command::new(haproxy)
            .args(["-db", "-f"])
            .arg(root.join("deploy/router/haproxy.cfg"))
            .env("ROUTER_BIND", format!("127.0.0.1:{port}"))
            .env("CELLA_NODE_0", nodes[0])
            .env("CELLA_NODE_1", nodes[1])
            .env("CELLA_NODE_2", nodes[2])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("haproxy starts");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let up = crate::eventually(std::time::Duration::from_secs(30), || {
            let (client, url) = (client.clone(), format!("{base}/health"));
            async move { client.get(url).send().await.is_ok_and(|r| r.status().is_success()) }
        })
        .await;
        assert!(up, "the router never answered");
        Router { base, child }
    }

    /// Stops it.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

impl Node {
    /// `host:port`, as a router names it.
    pub fn address(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }
}
