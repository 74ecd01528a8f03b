//! A cluster of real `cella serve` processes on loopback sharing one snapshot store (#35):
//! a request reaching a node that does not run its sandbox is forwarded to the one that
//! does; after `kill -9` of that node, another takes the sandbox over once the dead node's
//! lease ran out, from its last checkpoint; a drained node (SIGTERM) releases its sandboxes
//! at once. Through the unmodified e2b SDK (`tests/e2b/cluster.py`).

use cella_e2e::e2b_script_at;
use cella_e2e::nodes::{Node, code_config};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn node_config(store: &Path, node: &str) -> Value {
    code_config(json!({"server": {
        "snapshots": {"dir": store, "keep_on_shutdown": true, "node": node, "checkpoint_interval_s": 1},
        "cluster": {"enabled": true, "lease_s": 5}
    }}))
}

/// A node over the test's S3 server instead of a shared directory.
fn s3_node_config(s3: &crate::snapshots_s3::S3, node: &str) -> Value {
    let mut snapshots = s3.snapshots();
    cella_e2e::merge(&mut snapshots, json!({"node": node, "checkpoint_interval_s": 1}));
    code_config(json!({"server": {"snapshots": snapshots, "cluster": {"enabled": true, "lease_s": 5}}}))
}

/// Waits (bounded) until `cond` holds; panics with `what` when it never does.
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let held = cella_e2e::eventually(Duration::from_secs(60), || std::future::ready(cond())).await;
    assert!(held, "{what} never happened");
}

/// Whether the store holds a checkpoint of one of sandbox `id`'s contexts and a copy of its
/// file `name`.
fn checkpointed(store: &Path, id: &str, name: &str) -> bool {
    let Ok(tenants) = std::fs::read_dir(store.join("tenants")) else { return false };
    tenants.filter_map(Result::ok).any(|t| {
        let copied = t.path().join("kept").join(id).join("files").join(name).exists();
        let records = std::fs::read_dir(t.path()).into_iter().flatten().filter_map(Result::ok);
        let context = format!("\"worker_id\": \"sbx-{id}-");
        copied
            && records.filter(|r| r.path().extension().is_some_and(|e| e == "json")).any(|r| {
                std::fs::read_to_string(r.path())
                    .is_ok_and(|text| text.contains("\"reason\": \"checkpoint\"") && text.contains(&context))
            })
    })
}

/// Whether the store holds a checkpoint of each of `workers`' sessions.
fn workers_checkpointed(store: &Path, workers: &[String]) -> bool {
    let Ok(tenants) = std::fs::read_dir(store.join("tenants")) else { return false };
    let mut seen = std::collections::HashSet::new();
    for tenant in tenants.filter_map(Result::ok) {
        for record in std::fs::read_dir(tenant.path()).into_iter().flatten().filter_map(Result::ok) {
            let Ok(text) = std::fs::read_to_string(record.path()) else { continue };
            let Ok(json) = serde_json::from_str::<Value>(&text) else { continue };
            if json["reason"] == "checkpoint"
                && let Some(w) = json["worker_id"].as_str()
            {
                seen.insert(w.to_string());
            }
        }
    }
    workers.iter().all(|w| seen.contains(w))
}

/// How many owner records under `dir` (and its folders) name `node`.
fn owned_by(dir: &Path, node: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(Result::ok)
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                return owned_by(&path, node);
            }
            let owner = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok());
            usize::from(path.ends_with("owner.json") && owner.is_some_and(|o| o["node"] == node))
        })
        .sum()
}

async fn open_mcp(client: &reqwest::Client, base: &str) -> String {
    cella_e2e::mcp_http::open(client, base, None).await
}

async fn call_mcp(client: &reqwest::Client, base: &str, session: &str, name: &str, args: Value) -> (u16, Value) {
    cella_e2e::mcp_http::call(client, base, None, session, name, args).await
}

/// Whether `node`'s lease in the store ran out (or is gone).
fn lease_gone(store: &Path, node: &str) -> bool {
    let at: PathBuf = store.join("cluster").join("nodes").join(format!("{node}.json"));
    let Ok(text) = std::fs::read_to_string(at) else { return true };
    let Ok(lease) = serde_json::from_str::<Value>(&text) else { return false };
    let renewed = lease["renewed_at"].as_str().unwrap_or_default();
    let Ok(at) = chrono_like(renewed) else { return false };
    let length = lease["lease_s"].as_f64().unwrap_or(0.0);
    std::time::SystemTime::now() > at + Duration::from_secs_f64(length)
}

/// An RFC 3339 time (as chrono writes it, `…+00:00`) as a system time.
fn chrono_like(text: &str) -> Result<std::time::SystemTime, ()> {
    let out = std::process::Command::new("date").args(["-d", text, "+%s.%N"]).output().map_err(|_| ())?;
    let secs: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().map_err(|_| ())?;
    Ok(std::time::UNIX_EPOCH + Duration::from_secs_f64(secs))
}

/// Two nodes (node-a on 127.0.0.1, node-b on 127.0.0.2) over a store directory.
async fn two_nodes() -> (tempfile::TempDir, PathBuf, Node, Node) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let store = dir.path().join("store");
    let a = Node::start(&node_config(&store, "node-a"), dir.path(), "127.0.0.1", 0).await;
    let b = Node::start(&node_config(&store, "node-b"), dir.path(), "127.0.0.2", 0).await;
    (dir, store, a, b)
}

#[tokio::test]
async fn a_sandbox_is_forwarded_taken_over_after_kill_9_and_released_by_a_drain() {
    let (dir, store, a, b) = two_nodes().await;
    let made = e2b_script_at(&a.base, "any-key", "cluster.py", "make", &Value::Null).await;
    let id = made["id"].as_str().expect("a sandbox id").to_string();

    // Through the other node: forwarded to the owner, which has the state.
    let via_b = e2b_script_at(&b.base, "any-key", "cluster.py", "use", &made).await;
    assert_eq!(via_b, json!({"python": "42", "file": "written on the first node"}), "forwarded to node a");

    // kill -9 of the owner: once its lease ran out, node b takes the sandbox over from its
    // last checkpoint (the interpreter's state and a copy of its files).
    wait_for("a checkpoint of the sandbox", || checkpointed(&store, &id, "c.txt")).await;
    a.kill().await;
    wait_for("the end of node a's lease", || lease_gone(&store, "node-a")).await;
    let taken = e2b_script_at(&b.base, "any-key", "cluster.py", "use", &made).await;
    assert_eq!(taken, json!({"python": "42", "file": "written on the first node"}), "taken over by node b");

    // A drained node (SIGTERM) releases it: a third node takes it at once.
    let c = Node::start(&node_config(&store, "node-c"), dir.path(), "127.0.0.3", 0).await;
    b.stop().await;
    assert!(lease_gone(&store, "node-b"), "a drained node's lease goes with it");
    let drained = e2b_script_at(&c.base, "any-key", "cluster.py", "use", &made).await;
    assert_eq!(drained, json!({"python": "42", "file": "written on the first node"}), "taken by node c");
    c.stop().await;
}

/// Scalebox's in-sandbox routes reach the sandbox's node wherever they arrive: the execution
/// service by `X-Sandbox-ID`, the file routes by the access token alone (its record in the
/// store names the sandbox).
#[tokio::test]
async fn scalebox_in_sandbox_routes_are_forwarded_by_id_and_by_token_alone() {
    let (_dir, _store, a, b) = two_nodes().await;
    let client = reqwest::Client::new();
    let made: Value = client
        .post(format!("{}/v1/sandboxes", a.base))
        .json(&json!({"timeout": 300}))
        .send()
        .await
        .expect("node a answers")
        .json()
        .await
        .expect("JSON");
    let (id, token) = (
        made["data"]["sandbox_id"].as_str().expect("an id"),
        made["data"]["envd_access_token"].as_str().expect("a token"),
    );
    let executed = client
        .post(format!("{}/sandboxagent.ExecutionService/Execute", b.base))
        .header("content-type", "application/connect+json")
        .header("x-sandbox-id", id)
        .header("x-access-token", token)
        .body(cella_e2e::connect_frame(
            &json!({"code": "open('/workspace/n.txt', 'w').write('from a'); 6 * 7", "language": "python"}),
        ))
        .send()
        .await
        .expect("node b answers");
    let text = executed.text().await.expect("a body");
    assert!(text.contains(r#""text":"42""#), "run on node a through node b: {text}");
    let download = client
        .get(format!("{}/download/workspace/n.txt", b.base))
        .header("x-access-token", token)
        .send()
        .await
        .expect("node b answers");
    assert_eq!(download.status().as_u16(), 200);
    assert_eq!(download.text().await.expect("the file"), "from a", "by the token alone");
    let stranger = client.get(format!("{}/download/workspace/n.txt", b.base)).header("x-access-token", "no-such-token");
    assert_eq!(stranger.send().await.expect("node b answers").status().as_u16(), 401);
    a.stop().await;
    b.stop().await;
}

/// The same through the real router (HAProxy, `deploy/router/haproxy.cfg`), the nodes sharing
/// an S3 bucket (the suite's S3 server, s3s-fs): AgentFlow-style
/// sessions, keyed by the `worker_id` in their bodies, spread over the three nodes and every
/// call of one worker reaches its node; an E2B sandbox is found wherever it runs; after
/// `kill -9` of its node the router's health checks drop that node and the sandbox comes
/// back on another one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_haproxy_workers_spread_and_a_sandbox_survives_its_nodes_death() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let s3 = crate::snapshots_s3::s3_server().await;
    // The bucket's objects, as the S3 server keeps them on disk.
    let store = s3.pool();
    let mut nodes = Vec::new();
    for (k, host) in ["127.0.0.1", "127.0.0.2", "127.0.0.3"].iter().enumerate() {
        nodes.push(Node::start(&s3_node_config(&s3, &format!("node-{k}")), dir.path(), host, 0).await);
    }
    let addresses: Vec<String> = nodes.iter().map(Node::address).collect();
    let router = cella_e2e::nodes::Router::start([&addresses[0], &addresses[1], &addresses[2]]).await;
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        let (client, url) = (client.clone(), format!("{}{path}", router.base));
        async move {
            let r = client.post(url).json(&body).send().await.expect("the router answers");
            r.json::<Value>().await.expect("JSON")
        }
    };
    // Thirty workers (a bounded loop): set through the router, then read back through it.
    let workers: Vec<String> = (0..30).map(|k| format!("agent-{k}")).collect();
    for w in &workers {
        let made = post("/api/v1/session/create", json!({"worker_id": w, "resource_type": "kv"})).await;
        assert_eq!(made["code"], 0, "{made}");
        let set =
            post("/api/v1/execute", json!({"worker_id": w, "action": "kv:set", "params": {"key": "k", "value": w}}))
                .await;
        assert_eq!(set["code"], 0, "{set}");
    }
    for w in &workers {
        let got = post("/api/v1/execute", json!({"worker_id": w, "action": "kv:get", "params": {"key": "k"}})).await;
        assert_eq!(got["data"]["value"], json!(w), "every call of a worker reaches its node: {got}");
    }
    let mut held = Vec::new();
    for node in &nodes {
        let ready: Value =
            client.get(format!("{}/ready", node.base)).send().await.expect("ready").json().await.expect("JSON");
        held.push(ready["total_sessions"].as_u64().unwrap_or(0));
    }
    assert_eq!(held.iter().sum::<u64>(), 30, "{held:?}");
    assert!(held.iter().filter(|n| **n > 0).count() >= 2, "the workers spread over the nodes: {held:?}");

    // Run API sessions: made on whichever node the router picks (no key yet), then continued
    // by their id, which the router hashes: a node that does not hold one forwards it.
    for k in 0..6 {
        let first = post("/api/v1/run", json!({"code": format!("x = {k}"), "keep_alive": true})).await;
        let id = first["data"]["session_id"].as_str().expect("a run session id").to_string();
        for _ in 0..2 {
            let next = post("/api/v1/run", json!({"code": "x += 10\nx", "session_id": id, "keep_alive": true})).await;
            assert_eq!(next["data"]["error"], Value::Null, "{next}");
        }
        let read = post("/api/v1/run", json!({"code": "x", "session_id": id, "keep_alive": true})).await;
        assert_eq!(
            read["data"]["result"],
            json!((k + 20).to_string()),
            "one run session, wherever it was made: {read}"
        );
    }
    // MCP sessions: opened on one node, then keyed by Mcp-Session-Id.
    for k in 0..4 {
        let mcp = open_mcp(&client, &router.base).await;
        let (status, set) = call_mcp(&client, &router.base, &mcp, "kv.set", json!({"key": "k", "value": k})).await;
        assert_eq!(status, 200, "{set}");
        let (_, got) = call_mcp(&client, &router.base, &mcp, "kv.get", json!({"key": "k"})).await;
        assert_eq!(got["result"]["structuredContent"]["data"]["value"], json!(k), "one MCP session: {got}");
    }

    let made = e2b_script_at(&router.base, "any-key", "cluster.py", "make", &Value::Null).await;
    let id = made["id"].as_str().expect("a sandbox id").to_string();
    let used = e2b_script_at(&router.base, "any-key", "cluster.py", "use", &made).await;
    assert_eq!(used, json!({"python": "42", "file": "written on the first node"}));

    // kill -9 of the node that runs it.
    let owner: Value = serde_json::from_slice(
        &std::fs::read(store.join("cluster/sandboxes").join(&id).join("owner.json")).expect("the sandbox's owner"),
    )
    .expect("JSON");
    let k: usize =
        owner["node"].as_str().and_then(|n| n.strip_prefix("node-")).and_then(|n| n.parse().ok()).expect("node-k");
    wait_for("a checkpoint of the sandbox", || checkpointed(&store, &id, "c.txt")).await;
    // And a worker of the Rust SDK, through the router.
    let sdk = cella_sdk::Sandbox::builder(&router.base).worker_id("sdk-worker").start().await.expect("the Rust SDK");
    let _kept = sdk.create_sessions(&[("kv", json!({}))]).await.expect("a kv session (ended when dropped)");
    sdk.execute("kv:set", json!({"key": "k", "value": "from the Rust SDK"})).await.expect("kv:set");
    let mut checkpointed_workers = workers.clone();
    checkpointed_workers.push("sdk-worker".into());
    wait_for("a checkpoint of every worker", || workers_checkpointed(&store, &checkpointed_workers)).await;
    let on_dead = owned_by(&store.join("cluster/workers"), &format!("node-{k}"));
    assert!(on_dead > 0, "the node about to die holds some of the workers");
    let dead = nodes.remove(k);
    dead.kill().await;
    wait_for("the end of the dead node's lease", || lease_gone(&store, &format!("node-{k}"))).await;
    // The router's checks drop the dead node within a second; the first calls may still reach it.
    let mut back = Value::Null;
    for _ in 0..20 {
        let out = cella_e2e::e2b_command(&router.base, "any-key", "cluster.py", "use", &made)
            .output()
            .await
            .expect("python runs");
        if out.status.success() {
            back = serde_json::from_slice(&out.stdout).expect("JSON");
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(back, json!({"python": "42", "file": "written on the first node"}), "back on another node");
    // The dead node's workers too, each from its checkpoint, on the node the router picks now.
    for w in &workers {
        let got = post("/api/v1/execute", json!({"worker_id": w, "action": "kv:get", "params": {"key": "k"}})).await;
        assert_eq!(got["data"]["value"], json!(w), "worker {w} kept its state: {got}");
    }
    let got = sdk.execute("kv:get", json!({"key": "k"})).await.expect("the Rust SDK's worker is back");
    assert_eq!(got.data["value"], "from the Rust SDK");
    router.stop().await;
    for node in nodes {
        node.stop().await;
    }
}

/// A rolling restart of all three nodes (each drained by SIGTERM, then started again under
/// its id and port) behind HAProxy while a bounded load loop increments a counter in each of
/// six sandboxes: no sandbox is lost and no acknowledged increment is (a counter may be
/// ahead of what was acknowledged, by calls whose answer a restart cut off).
#[tokio::test]
async fn a_rolling_restart_under_load_loses_no_sandbox_and_no_acknowledged_state() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let store = dir.path().join("store");
    let hosts = ["127.0.0.1", "127.0.0.2", "127.0.0.3"];
    let mut nodes = Vec::new();
    for (k, host) in hosts.iter().enumerate() {
        nodes.push(Node::start(&node_config(&store, &format!("node-{k}")), dir.path(), host, 0).await);
    }
    let mut logs: Vec<_> = nodes.iter().map(|n| n.log.clone()).collect();
    let addresses: Vec<String> = nodes.iter().map(Node::address).collect();
    let router = cella_e2e::nodes::Router::start([&addresses[0], &addresses[1], &addresses[2]]).await;
    let made = e2b_script_at(&router.base, "any-key", "cluster.py", "counters", &json!({"n": 6})).await;
    // Sandbox.list through the router: every node's, in pages across nodes.
    let mut ids: Vec<String> =
        made["ids"].as_array().expect("ids").iter().map(|i| i.as_str().expect("an id").to_string()).collect();
    ids.sort();
    let listed = e2b_script_at(&router.base, "any-key", "cluster.py", "listed", &Value::Null).await;
    assert_eq!(listed["ids"], json!(ids), "the list is the cluster's");
    // Beside the sandboxes, six AgentFlow-style workers count in a kv session each.
    let counting = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let counters = tokio::spawn(count_in_workers(router.base.clone(), counting.clone()));

    let stop = dir.path().join("stop");
    let load = cella_e2e::e2b_command(&router.base, "any-key", "cluster.py", "roll", &made)
        .env("CELLA_STOP", &stop)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the load loop starts");
    // Each node is restarted once the loop has gone two more rounds (bounded waits).
    let rounds_file = dir.path().join("stop.rounds");
    let rounds = || std::fs::read_to_string(&rounds_file).ok().and_then(|t| t.trim().parse::<u64>().ok()).unwrap_or(0);
    for (k, host) in hosts.iter().enumerate() {
        let before = rounds();
        wait_for("two more rounds of the load loop", || rounds() >= before + 2).await;
        let old = nodes.remove(k);
        let port = old.port;
        old.stop().await;
        let again = Node::start(&node_config(&store, &format!("node-{k}")), dir.path(), host, port).await;
        logs.push(again.log.clone());
        nodes.insert(k, again);
    }
    let before = rounds();
    wait_for("two more rounds after the last restart", || rounds() >= before + 2).await;
    std::fs::write(&stop, b"").expect("the stop file");
    counting.store(false, std::sync::atomic::Ordering::Release);
    let acked = counters.await.expect("the workers' loop ends");
    let out = load.wait_with_output().await.expect("the load loop ends");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rolled: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let now = e2b_script_at(&router.base, "any-key", "cluster.py", "read", &made).await;
    eprintln!("rolling restart: acknowledged {rolled}, held {now}");
    for id in made["ids"].as_array().expect("ids") {
        let id = id.as_str().expect("an id");
        let (acked, held) = (rolled["acked"][id].as_i64().unwrap_or(-1), now[id].as_i64().unwrap_or(-1));
        assert!(acked > 0, "the loop reached sandbox {id}: {rolled}");
        assert!(held >= acked, "sandbox {id} kept every acknowledged increment: {held} < {acked} ({rolled})");
    }
    let client = reqwest::Client::new();
    for (w, acked) in &acked {
        let body = json!({"worker_id": w, "action": "kv:get", "params": {"key": "n"}});
        let got: Value = client
            .post(format!("{}/api/v1/execute", router.base))
            .json(&body)
            .send()
            .await
            .expect("the router answers")
            .json()
            .await
            .expect("JSON");
        let held = got["data"]["value"].as_i64().unwrap_or(-1);
        eprintln!("rolling restart: worker {w} acknowledged {acked}, holds {held}");
        assert!(*acked > 0, "the loop reached worker {w}");
        assert!(held >= *acked, "worker {w} kept every acknowledged increment: {held} < {acked} ({got})");
    }
    // Each worker's node drained once: the worker was released and taken over (by the
    // router's next choice, or by its own node started again), never made afresh.
    let taken: usize = logs
        .iter()
        .map(|log| {
            log.lock().unwrap_or_else(|e| e.into_inner()).iter().filter(|l| l.contains("worker taken over")).count()
        })
        .sum();
    assert!(taken >= 6, "every worker was taken over after its node drained: {taken} takeovers");
    router.stop().await;
    for node in nodes {
        node.stop().await;
    }
}

/// Until `on` is cleared (and at most 20,000 rounds or five minutes): each round, each of
/// six workers reads its counter through the router and writes it back one higher.
/// Returns the highest write each worker had acknowledged; a failed call (a node restarting)
/// is tried again next round.
async fn count_in_workers(base: String, on: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Vec<(String, i64)> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("a client");
    let call = |body: Value| {
        let (client, url) = (client.clone(), format!("{base}/api/v1/execute"));
        async move {
            let r = client.post(url).json(&body).send().await.ok()?;
            let v: Value = r.json().await.ok()?;
            (v["code"] == 0).then_some(v)
        }
    };
    let mut acked: Vec<(String, i64)> = (0..6).map(|k| (format!("counter-{k}"), 0)).collect();
    // A session each (a bare execute runs in a temporary one), counting from 0.
    for (w, _) in &acked {
        let made: Value = client
            .post(format!("{base}/api/v1/session/create"))
            .json(&json!({"worker_id": w, "resource_type": "kv"}))
            .send()
            .await
            .expect("the router answers")
            .json()
            .await
            .expect("JSON");
        assert_eq!(made["code"], 0, "{made}");
        let zero = call(json!({"worker_id": w, "action": "kv:set", "params": {"key": "n", "value": 0}})).await;
        assert!(zero.is_some(), "the counter of {w} starts");
    }
    let started = std::time::Instant::now();
    for _ in 0..20_000 {
        if !on.load(std::sync::atomic::Ordering::Acquire) || started.elapsed() > Duration::from_secs(300) {
            break;
        }
        for (w, done) in acked.iter_mut() {
            let Some(got) = call(json!({"worker_id": w, "action": "kv:get", "params": {"key": "n"}})).await else {
                continue;
            };
            let n = got["data"]["value"].as_i64().unwrap_or(0) + 1;
            if call(json!({"worker_id": w, "action": "kv:set", "params": {"key": "n", "value": n}})).await.is_some() {
                *done = (*done).max(n);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    acked
}
