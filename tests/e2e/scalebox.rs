//! Scalebox's SDK (@scalebox/sdk 3.7.0, pinned, unmodified) against the real server: the
//! SDK's `Session` API over `SCALEBOX_API_URL`, with the server's own port serving HTTPS too
//! (a test CA), since the SDK reaches files and health over https only.

use cella_e2e::{Server, code_server, scalebox_client, test_tls};
use cella_runtime::tenancy::hash_key;
use serde_json::{Value, json};
use std::path::PathBuf;

const A: &str = "key-of-tenant-a";
const B: &str = "key-of-tenant-b";

/// A server with HTTPS on its port; the CA to trust; the folder holding them.
async fn tls_server(patch: Value) -> (Server, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (ca, cert, key) = test_tls(dir.path());
    let mut config = json!({"server": {"tls_cert": cert, "tls_key": key}});
    cella_e2e::merge(&mut config, patch);
    (code_server(config).await, ca, dir)
}

#[tokio::test]
async fn session_run_in_python_with_files_packages_and_reuse() {
    let (s, ca, _dir) = tls_server(json!({})).await;
    let out = scalebox_client(&s, "any-key", &ca, "python").await;
    let first = &out["first"];
    assert_eq!(first["success"], true, "{first}");
    assert_eq!(first["stdout"], "hello\n");
    assert_eq!(first["text"], "'uploaded over https'", "code reads a file the SDK uploaded over https");
    assert_eq!(out["streamed"], json!(["hello\n"]), "onStdout gets the output");
    assert_eq!(out["second"]["text"], "42", "sessionId reuse keeps the state");
    assert_eq!(out["packages"]["text"], "True", "packages install from the wheelhouse");
    assert_eq!(out["error"]["success"], false);
    assert_eq!(out["error"]["error"]["name"], "ZeroDivisionError");
    assert_eq!(out["print_only"]["success"], true, "a clean print(1) is a success: {}", out["print_only"]);
    assert_eq!(out["print_only"]["text"], "1\n");
    assert_eq!(out["download"]["files"], json!({"/workspace/out.txt": "made by code"}), "downloadFiles over https");
    let renewed = out["renewed_s"].as_f64().unwrap();
    assert!((850.0..=900.0).contains(&renewed), "keepAlive(900 s) renews: {renewed}");
    assert_eq!(out["info"]["status"], "running", "getSession sees the health probe over https");
    assert_eq!(out["listed"].as_array().unwrap().len(), 1);
    let after = out["after_close"]["threw"].as_str().unwrap_or_default();
    assert!(after.contains("not found"), "a run after close is refused: {}", out["after_close"]);
}

#[tokio::test]
async fn session_run_in_javascript() {
    let (s, ca, _dir) = tls_server(json!({})).await;
    let out = scalebox_client(&s, "any-key", &ca, "javascript").await;
    assert_eq!(out["first"]["stdout"], "js says hi\n");
    assert_eq!(out["first"]["text"], "21");
    assert_eq!(out["second"]["text"], "40", "globals persist");
    assert_eq!(out["error"]["error"]["name"], "ReferenceError");
    // The SDK ignores the install's answer; the run goes on.
    assert_eq!(out["npm"]["success"], true);
}

/// A paused sandbox is resumed by the SDK's session reuse (it connects when it sees
/// `paused`), with the interpreter's variables.
#[tokio::test]
async fn a_paused_sandbox_resumes_with_its_state() {
    let (s, ca, _dir) = tls_server(json!({})).await;
    let out = scalebox_client(&s, "any-key", &ca, "paused").await;
    assert_eq!(out["pause_status"], 200, "{out}");
    assert_eq!(out["status"], "paused", "{out}");
    assert_eq!(out["second"]["text"], "42", "{out}");
}

#[tokio::test]
async fn a_sandbox_that_is_not_kept_alive_is_reaped() {
    let (s, ca, _dir) =
        tls_server(json!({"server": {"sandboxes": {"default_timeout_s": 2, "max_timeout_s": 2}}})).await;
    let out = scalebox_client(&s, "any-key", &ca, "one_shot").await;
    assert_eq!(out["run"]["stdout"], "once\n");
    let listed: Value = s.client.get(format!("{}/v1/sandboxes", s.base)).send().await.unwrap().json().await.unwrap();
    let sandboxes = listed["data"]["sandboxes"].as_array().unwrap();
    assert_eq!(sandboxes.len(), 1, "the run left its sandbox (the SDK deletes nothing): {listed}");
    let id = sandboxes[0]["sandbox_id"].as_str().unwrap();
    let gone = cella_e2e::eventually(std::time::Duration::from_secs(20), || async {
        let r = s.client.get(format!("{}/v1/sandboxes/{id}", s.base)).header("x-api-key", "k").send().await;
        r.is_ok_and(|r| r.status().as_u16() == 404)
    })
    .await;
    assert!(gone, "the sandbox outlived its timeout");
}

#[tokio::test]
async fn another_tenant_gets_nothing_and_delete_is_idempotent() {
    let tenants = json!({"tenants": {"a": {"keys": [hash_key(A)]}, "b": {"keys": [hash_key(B)]}}});
    let (s, ca, _dir) = tls_server(tenants).await;
    let made = scalebox_client(&s, A, &ca, "create_only").await;
    let (id, token) = (made["sandboxId"].as_str().unwrap(), made["token"].as_str().unwrap());
    let get = |key: &str| s.client.get(format!("{}/v1/sandboxes/{id}", s.base)).header("x-api-key", key).send();
    let r = get(B).await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["success"], false);
    assert_eq!(get(A).await.unwrap().status().as_u16(), 200);
    // B's delete answers success (it is idempotent) and ends nothing.
    let del =
        |key: &str| s.client.delete(format!("{}/v1/sandboxes/{id}?force=true", s.base)).header("x-api-key", key).send();
    assert_eq!(del(B).await.unwrap().status().as_u16(), 200);
    assert_eq!(get(A).await.unwrap().status().as_u16(), 200, "B's delete ended A's sandbox");
    // Inside: the execution service with no token, a wrong token, and A's.
    let execute = |token: Option<&str>| {
        let mut r = s
            .client
            .post(format!("{}/sandboxagent.ExecutionService/Execute", s.base))
            .header("content-type", "application/connect+json")
            .header("x-sandbox-id", id)
            .body(cella_e2e::connect_frame(
                &json!({"code": "open('/workspace/mark.txt').read()", "language": "python"}),
            ));
        if let Some(token) = token {
            r = r.header("x-access-token", token);
        }
        r.send()
    };
    for token in [None, Some("not-a-token")] {
        let text = execute(token).await.unwrap().text().await.unwrap();
        assert!(text.contains("unauthenticated"), "{token:?}: {text}");
        assert!(!text.contains("tenant a"));
    }
    let text = execute(Some(token)).await.unwrap().text().await.unwrap();
    assert!(text.contains(r#""text":"'tenant a'""#), "A's token opens A's sandbox: {text}");
    let upload = s.client.get(format!("{}/download/workspace/x", s.base)).header("x-access-token", "wrong");
    assert_eq!(upload.send().await.unwrap().status().as_u16(), 401);
    // A deletes twice, as Session.close does: both succeed.
    assert_eq!(del(A).await.unwrap().status().as_u16(), 200);
    assert_eq!(del(A).await.unwrap().status().as_u16(), 200);
    assert_eq!(get(A).await.unwrap().status().as_u16(), 404);
}

/// A Scalebox session (a sandbox) outlives a graceful restart of the server (#35): the same
/// session id finds its interpreter's state and its files.
#[tokio::test]
async fn a_session_comes_back_after_a_graceful_restart() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (ca, cert, key) = test_tls(dir.path());
    let store = dir.path().join("store");
    let config = json!({"server": {"tls_cert": cert, "tls_key": key,
                                   "snapshots": {"dir": store, "keep_on_shutdown": true}}});
    let s = code_server(config.clone()).await;
    let before = cella_e2e::scalebox_client_with(&s, "any-key", &ca, "keep_before", &Value::Null).await;
    s.stop().await;
    let s = code_server(config).await;
    let after = cella_e2e::scalebox_client_with(&s, "any-key", &ca, "keep_after", &before).await;
    assert_eq!(after["success"], true, "{after}");
    assert_eq!(after["text"], "(42, 'over the restart')", "{after}");
    s.stop().await;
}

/// The scientific Python's rich results through Scalebox's CodeInterpreter: a figure shown
/// with `plt.show()` is a PNG result of its own (at figsize × dpi, with its chart), streamed
/// before the cell's main result, which carries a DataFrame's HTML.
#[tokio::test]
async fn the_scientific_python_returns_charts_and_tables_through_scalebox() {
    let (s, ca, _dir) = tls_server(cella_e2e::scientific_config(json!({}))).await;
    let out = scalebox_client(&s, "any-key", &ca, "scientific").await;
    assert!(out["error"].is_null(), "{out}");
    let results = out["results"].as_array().cloned().unwrap_or_default();
    assert_eq!(results.len(), 2, "the figure, then the main result: {out}");
    assert_eq!(results[0]["main"], false);
    assert_eq!(results[0]["png"]["signature"], "89504e470d0a1a0a", "{out}");
    assert_eq!(results[0]["png"]["size"], json!([400, 300]));
    assert_eq!(results[0]["chart"]["type"], "line");
    assert_eq!(results[0]["chart"]["title"], "rises");
    assert_eq!(results[1]["main"], true);
    assert_eq!(results[1]["table"], true, "a DataFrame's HTML: {out}");
    assert!(results[1]["text"].as_str().unwrap_or_default().contains("1.5"), "{out}");
    assert_eq!(out["shown"], json!([false, true]), "onResult saw them in order");
}
