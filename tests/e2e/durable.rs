//! Sandboxes outlive their server (#35): through the unmodified e2b SDK
//! (`tests/e2b/durable.py`), a live and a paused sandbox come back after a graceful restart
//! with their ids, tokens, metadata, environment, interpreters' state, files and the time
//! they had left; a paused one comes back after `kill -9` too.

use cella_e2e::nodes::{Node, code_config};
use cella_e2e::{code_server, e2b_script, e2b_script_at};
use serde_json::{Value, json};
use std::path::Path;

/// The kept sandboxes' records in a local store.
fn kept_in(store: &Path) -> Vec<String> {
    let Ok(tenants) = std::fs::read_dir(store.join("tenants")) else { return Vec::new() };
    tenants
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_dir(t.path().join("kept")).ok())
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.path().join("manifest.json").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test]
async fn live_and_paused_sandboxes_come_back_after_a_graceful_restart() {
    let store = tempfile::tempdir().expect("a temporary folder");
    let patch = json!({"server": {"snapshots": {"dir": store.path(), "keep_on_shutdown": true}}});
    let s = code_server(patch.clone()).await;
    let before = e2b_script(&s, "any-key", "durable.py", "before", &Value::Null).await;
    s.stop().await;
    let mut kept = kept_in(store.path());
    kept.sort();
    let mut want = vec![
        before["live"].as_str().unwrap_or_default().to_string(),
        before["paused"].as_str().unwrap_or_default().to_string(),
    ];
    want.sort();
    assert_eq!(kept, want, "both sandboxes are records in the store: {before}");

    let s = code_server(patch).await;
    let after = e2b_script(&s, "any-key", "durable.py", "after", &before).await;
    assert_eq!(after["live_listed"], true, "{after}");
    assert_eq!(after["paused_listed"], true, "listed as paused after the restart: {after}");
    assert_eq!(after["token_kept"], true, "{after}");
    assert_eq!(after["metadata"], json!({"suite": "durable"}), "{after}");
    assert_eq!(after["python"], "42", "{after}");
    assert_eq!(after["env"], "hi", "{after}");
    assert_eq!(after["js"], "2", "the JavaScript context came back too: {after}");
    assert_eq!(after["file"], "kept", "{after}");
    assert_eq!(after["file_metadata"], json!({"owner": "ada"}), "{after}");
    assert_eq!(after["shell"], "kept", "{after}");
    assert_eq!(after["paused_state"], "paused", "{after}");
    assert_eq!(after["paused_file"], "p", "{after}");
    let (was, left) =
        (before["remaining"].as_f64().unwrap_or_default(), after["remaining"].as_f64().unwrap_or_default());
    assert!(left > 0.0 && left <= was, "the time it had left is kept, not renewed: {was} then {left}");
    assert_eq!(after["killed"], json!([true, true]), "{after}");
    assert!(kept_in(store.path()).is_empty(), "a killed sandbox leaves no record: {:?}", kept_in(store.path()));
    s.stop().await;
}

#[tokio::test]
async fn a_paused_sandbox_comes_back_after_kill_9() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let store = dir.path().join("store");
    let config = code_config(json!({"server": {"snapshots": {"dir": store, "keep_on_shutdown": true}}}));
    let node = Node::start(&config, dir.path(), "127.0.0.1", 0).await;
    let before = e2b_script_at(&node.base, "any-key", "durable.py", "crash_before", &Value::Null).await;
    node.kill().await;
    let node = Node::start(&config, dir.path(), "127.0.0.1", 0).await;
    let after = e2b_script_at(&node.base, "any-key", "durable.py", "crash_after", &before).await;
    assert_eq!(after["state"], "6", "{after}");
    assert_eq!(after["file"], "paused before the crash", "{after}");
    assert_eq!(after["killed"], true, "{after}");
    node.stop().await;
}
