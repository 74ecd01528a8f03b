//! E2B's SDK (e2b-code-interpreter 2.11.5 on e2b 2.63.0, pinned, unmodified) against the real
//! server: `E2B_API_URL` and `E2B_SANDBOX_URL` both point at Cella's one port. The SDK runs in
//! `tests/e2b/client.py`, which reports what it saw; the assertions are here.

use cella_e2e::{code_server, e2b_client};
use cella_runtime::tenancy::hash_key;
use serde_json::{Value, json};

const A: &str = "key-of-tenant-a";
const B: &str = "key-of-tenant-b";

fn error_name(execution: &Value) -> &str {
    execution["error"]["name"].as_str().unwrap_or("<no error>")
}

#[tokio::test]
async fn run_code_keeps_state_reports_errors_and_runs_javascript() {
    let s = code_server(json!({})).await;
    let out = e2b_client(&s, "any-key", "basics").await;
    assert_eq!(out["define"]["stdout"], json!(["hello\n"]), "a print is one line");
    assert_eq!(out["define"]["text"], Value::Null, "an assignment has no result");
    assert_eq!(out["use"]["text"], "42", "state is kept between run_code calls");
    assert_eq!(out["use"]["results"], json!([{"text": "42", "is_main_result": true}]));
    assert_eq!(out["use"]["count"], 2);
    assert_eq!(out["string"]["text"], "abc", "a string's repr loses its quotes, as E2B's server does");
    assert_eq!(error_name(&out["runtime_error"]), "ZeroDivisionError");
    assert_eq!(out["runtime_error"]["error"]["value"], "division by zero");
    assert!(out["runtime_error"]["error"]["traceback"].as_str().unwrap().contains("Traceback"));
    assert_eq!(error_name(&out["syntax_error"]), "SyntaxError");
    assert_eq!(out["after_errors"]["text"], "41", "errors do not lose the namespace");
    assert_eq!(out["stderr"]["stderr"], json!(["oops\n"]));
    assert_eq!(out["env"]["text"], "hi", "envs reach os.environ");
    assert_eq!(out["js"]["stdout"], json!(["from js\n"]));
    assert_eq!(out["js"]["text"], "21");
    assert_eq!(out["js_state"]["text"], "40", "JavaScript globals persist too");
    assert_eq!(error_name(&out["js_error"]), "ReferenceError");
    assert_eq!(out["pip"]["stdout"], json!(["Successfully installed six\n"]));
    assert_eq!(out["pip"]["text"], "True", "the installed package imports in the same cell");
    assert_eq!(error_name(&out["pip_unknown"]), "PackageInstallError");
    assert!(out["pip_unknown"]["error"]["value"].as_str().unwrap().contains("not in the wheelhouse"));
    assert_eq!(error_name(&out["shell"]), "ShellUnavailable");
    assert!(out["npm"]["error"]["value"].as_str().unwrap().contains("without npm"));
}

#[tokio::test]
async fn stdout_reaches_on_stdout_before_a_slow_cell_ends() {
    let s = code_server(json!({})).await;
    let out = e2b_client(&s, "any-key", "streaming").await;
    // The cell prints "late" only once the client, having seen "early", wrote a file the
    // cell waits for: so the first line arrived while the cell ran (no timing involved).
    assert_eq!(out["lines"], json!(["early\n", "late\n"]));
    assert_eq!(out["stdout"], json!(["early\n", "late\n"]));
}

#[tokio::test]
async fn files_are_shared_by_the_sdk_and_the_code() {
    let s = code_server(json!({})).await;
    let out = e2b_client(&s, "any-key", "files").await;
    assert_eq!(out["written"]["path"], "/home/user/data/input.txt");
    assert_eq!(out["written"]["name"], "input.txt");
    assert_eq!(out["read"], "line one\nline two\n");
    assert_eq!(out["read_bytes"], json!([0, 1, 98, 105, 110, 97, 114, 121]), "bytes survive as they are");
    assert_eq!(out["code_reads"]["text"], "line two", "code reads an uploaded file at the SDK's path");
    assert_eq!(out["code_reads_relative"]["text"], "2", "code starts in /home/user");
    assert_eq!(out["made_by_code"], "from the cell", "the SDK reads what code wrote");
    assert_eq!(
        out["list"],
        json!([["data", "FileType.DIR"], ["made_by_code.txt", "FileType.FILE"], ["relative.txt", "FileType.FILE"]])
    );
    assert_eq!(out["exists"], json!([true, false]));
    assert_eq!(out["make_dir"], json!([true, false]), "make_dir answers false when it exists");
    assert_eq!(out["moved"], "/home/user/new/moved.txt");
    assert_eq!(out["after_remove"], json!([false, false]));
    assert_eq!(out["missing"], "FileNotFoundException");
    assert_eq!(out["outside"], "InvalidArgumentException", "nothing outside the home is reachable");
}

#[tokio::test]
async fn commands_run_the_programs_and_utilities_of_the_shell() {
    let s = code_server(json!({})).await;
    let out = e2b_client(&s, "any-key", "commands").await;
    let ran =
        |name: &str| (out[name]["exit_code"].as_i64().unwrap(), out[name]["stdout"].as_str().unwrap().to_string());
    assert_eq!(ran("python_file"), (0, "from a file\n".into()));
    assert_eq!(out["python_file"]["stderr"], "to stderr\n");
    assert_eq!(ran("python_c"), (0, "42\n".into()));
    assert_eq!(out["python_fails"]["exit_code"], 1);
    assert!(out["python_fails"]["stderr"].as_str().unwrap().contains("ZeroDivisionError"));
    assert_eq!(ran("node_e"), (0, "2\n".into()));
    assert_eq!(ran("pwd"), (0, "/home/user\n".into()));
    assert_eq!(ran("echo"), (0, "hello there\n".into()));
    assert_eq!(ran("mkdir").0, 0);
    assert_eq!(ran("ls"), (0, "made\nprog.py\n".into()));
    assert!(ran("cat").1.starts_with("import sys"));
    assert_eq!(ran("rm").0, 0);
    assert_eq!(ran("ls_after"), (0, "prog.py\n".into()));
    assert_eq!(ran("pip"), (0, "Successfully installed six\n".into()));
    assert_eq!(out["pip_unknown"]["exit_code"], 1);
    assert!(out["pip_unknown"]["stderr"].as_str().unwrap().contains("not in the wheelhouse"));
    assert_eq!(out["unknown"]["exit_code"], 127);
    assert!(out["unknown"]["stderr"].as_str().unwrap().contains("command not found"));
    assert_eq!(ran("pipe"), (0, "1\n".into()), "a pipe runs in the sandbox's shell: {}", out["pipe"]);
    assert_eq!(out["six_in_old_context"]["text"], "True", "pip install reaches the contexts that exist");
    assert_eq!(out["six_in_new_context"]["text"], "True", "and the contexts made later");
}

#[tokio::test]
async fn contexts_have_their_own_namespaces() {
    let s = code_server(json!({})).await;
    let out = e2b_client(&s, "any-key", "contexts").await;
    assert_eq!(out["a"]["text"], "a");
    assert_eq!(out["b"]["text"], "b");
    assert_eq!(error_name(&out["a_sees_default"]), "NameError", "the default context's names stay there");
    let listed = out["listed"].as_array().unwrap();
    assert_eq!(listed.len(), 4, "the default python and javascript contexts and the two made: {listed:?}");
    for id in out["ids"].as_array().unwrap() {
        assert!(listed.contains(id));
    }
    assert_eq!(error_name(&out["after_restart"]), "NameError", "a restart empties the namespace");
    assert_eq!(out["listed_after_remove"].as_array().unwrap().len(), 3);
    assert_eq!(out["removed_runs"], "NotFoundException");
    assert_eq!(out["js_context"]["language"], "javascript");
    assert_eq!(out["js_context"]["run"]["text"], "undefined", "a JavaScript context sees no Python names");
}

#[tokio::test]
async fn two_sandboxes_share_neither_state_nor_files() {
    let s = code_server(json!({})).await;
    let out = e2b_client(&s, "any-key", "isolation").await;
    assert_eq!(error_name(&out["two_state"]), "NameError");
    assert_eq!(out["two_file"], false);
    assert_eq!(out["two_reads_code"]["text"], "[]");
}

/// E2B's `pause()` snapshots the sandbox's interpreter and frees it; `connect` resumes it
/// with its variables.
#[tokio::test]
async fn pause_and_connect_keep_the_interpreter_state() {
    let s = code_server(json!({})).await;
    let out = e2b_client(&s, "any-key", "paused").await;
    assert_eq!(out["paused"], true, "{out}");
    assert!(out["state"].as_str().unwrap().contains("PAUSED") || out["state"] == "paused", "{out}");
    assert_eq!(out["listed_paused"], true, "{out}");
    assert!(out["state_after_connect"].as_str().unwrap().to_lowercase().contains("running"), "{out}");
    assert_eq!(out["kept"]["text"], "42", "{out}");
}

/// E2B's `fork(count=2)`: two new sandboxes, each with the interpreter's variables and
/// functions, the files and every code context; copies and source then diverge.
#[tokio::test]
async fn fork_copies_the_whole_sandbox() {
    let s = code_server(json!({})).await;
    let out = e2b_client(&s, "any-key", "forked").await;
    assert_eq!(out["copies"], json!(["Sandbox", "Sandbox"]), "{out}");
    assert_eq!(out["ids_differ"], true, "{out}");
    for (k, run) in out["runs"].as_array().unwrap().iter().enumerate() {
        assert_eq!(run["double"]["text"], format!("{}", 2 * (20 + k)), "{out}");
        assert_eq!(run["file"], "kept", "{out}");
        assert_eq!(run["context"]["text"], "in the context", "{out}");
        assert_eq!(run["metadata"], json!({"purpose": "fork"}), "{out}");
    }
    assert_eq!(out["source_x"]["text"], "20", "the source is unaffected: {out}");
    assert_eq!(out["source_file"], "kept", "{out}");
    assert_eq!(out["missing"], "SandboxNotFoundException", "{out}");
}

/// E2B's `create_snapshot(name)`: `Sandbox.create(template=<id or name>)` starts new
/// sandboxes with the interpreter's state, files and metadata as they were; the source's
/// later changes do not reach them; listed, then deleted (a second delete finds nothing).
#[tokio::test]
async fn snapshots_start_new_sandboxes() {
    let dir = tempfile::tempdir().unwrap();
    let s = code_server(json!({"server": {"snapshots": {"dir": dir.path()}}})).await;
    let out = e2b_client(&s, "any-key", "snapshotted").await;
    assert_eq!(out["names"], json!(["my-snap"]), "{out}");
    assert_eq!(out["listed"], true, "{out}");
    assert_eq!(out["x"]["text"], "42", "{out}");
    assert_eq!(out["file"], "kept", "{out}");
    assert_eq!(out["metadata"], json!({"purpose": "snapshot"}), "{out}");
    assert_eq!(out["new_id"], true, "{out}");
    assert_eq!(out["by_name"]["text"], "41", "{out}");
    assert_eq!((out["deleted"].as_bool(), out["deleted_again"].as_bool()), (Some(true), Some(false)), "{out}");
    let tenant = dir.path().join("tenants").join("default");
    let json_files = |d: std::path::PathBuf| {
        std::fs::read_dir(d).map_or(0, |e| {
            e.filter_map(Result::ok).filter(|e| e.path().extension().is_some_and(|x| x == "json")).count()
        })
    };
    assert_eq!(json_files(tenant.clone()), 0, "the contexts' snapshot records are gone");
    let sandboxes = std::fs::read_dir(tenant.join("sandboxes")).map_or(0, |e| e.count());
    assert_eq!(sandboxes, 0, "the manifest and files are gone");
}

#[tokio::test]
async fn info_timeout_list_connect_and_kill() {
    let s = code_server(json!({})).await;
    let out = e2b_client(&s, "any-key", "lifecycle").await;
    assert_eq!(out["info"]["state"], "running");
    assert_eq!(out["info"]["metadata"], json!({"purpose": "lifecycle test", "x": "a&b"}));
    assert_eq!(out["info"]["lifetime_s"], 300.0, "the default timeout");
    let renewed = out["renewed_lifetime_s"].as_f64().unwrap();
    assert!((1200.0..1260.0).contains(&renewed), "set_timeout(1200) renews from now: {renewed}");
    assert_eq!(out["listed"], json!([out["info"]["id"]]), "list filters by metadata");
    assert_eq!(out["listed_other"], json!([]));
    assert_eq!(out["is_running"], true);
    assert_eq!(out["connected_runs"]["text"], "42");
    assert_eq!(out["killed"], true);
    assert_eq!(out["killed_again"], false, "a second kill finds nothing");
    assert_eq!(out["after_kill"], "NotFoundException", "a killed sandbox refuses code");
    assert_eq!(out["info_after_kill"], "SandboxNotFoundException");
}

#[tokio::test]
async fn a_sandbox_is_reaped_at_its_timeout() {
    let s = code_server(json!({})).await;
    let out = e2b_client(&s, "any-key", "reaped").await;
    assert_eq!(out, json!({"before": "running", "after_timeout": "SandboxNotFoundException", "running": false}));
}

#[tokio::test]
async fn another_tenant_gets_nothing_from_a_sandbox_id_or_token() {
    let s = code_server(json!({"tenants": {"a": {"keys": [hash_key(A)]}, "b": {"keys": [hash_key(B)]}}})).await;
    let made = e2b_client(&s, A, "create_only").await;
    let (id, token) = (made["id"].as_str().unwrap(), made["token"].as_str().unwrap());
    let mine = e2b_client(&s, B, "create_only").await;
    let b_token = mine["token"].as_str().unwrap();
    let control = |method: reqwest::Method, path: String, key: Option<&str>| {
        let mut r = s.client.request(method, format!("{}{path}", s.base));
        if let Some(key) = key {
            r = r.header("x-api-key", key);
        }
        r
    };
    for (method, path) in
        [(reqwest::Method::GET, format!("/sandboxes/{id}")), (reqwest::Method::DELETE, format!("/sandboxes/{id}"))]
    {
        let r = control(method.clone(), path.clone(), Some(B)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 404, "{method} {path} with another tenant's key");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], 404, "E2B's error shape: {body}");
    }
    let r = control(reqwest::Method::POST, format!("/sandboxes/{id}/timeout"), Some(B)).json(&json!({"timeout": 60}));
    assert_eq!(r.send().await.unwrap().status().as_u16(), 404);
    let r = control(reqwest::Method::GET, "/v2/sandboxes".into(), Some(B)).send().await.unwrap();
    let listed: Value = r.json().await.unwrap();
    assert!(listed.as_array().unwrap().iter().all(|b| b["sandboxID"] != id), "B lists A's sandbox: {listed}");
    let r = control(reqwest::Method::GET, "/v2/sandboxes".into(), None).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401, "the control plane needs a key");
    // Inside the sandbox: no token, B's token, and A's token.
    let execute = |token: Option<&str>| {
        let mut r = s
            .client
            .post(format!("{}/execute", s.base))
            .header("e2b-sandbox-id", id)
            .header("e2b-sandbox-port", "49999")
            .json(&json!({"code": "secret"}));
        if let Some(token) = token {
            r = r.header("x-access-token", token);
        }
        r.send()
    };
    assert_eq!(execute(None).await.unwrap().status().as_u16(), 401);
    assert_eq!(execute(Some(b_token)).await.unwrap().status().as_u16(), 401, "B's token opens only B's sandbox");
    let own = execute(Some(token)).await.unwrap();
    assert_eq!(own.status().as_u16(), 200);
    let text = own.text().await.unwrap();
    assert!(text.contains(r#""text":"tenant a""#), "A's token opens A's sandbox: {text}");
    let files = s
        .client
        .get(format!("{}/files?path=/home/user/x", s.base))
        .header("e2b-sandbox-id", id)
        .header("x-access-token", b_token)
        .send()
        .await
        .unwrap();
    assert_eq!(files.status().as_u16(), 401);
}

#[tokio::test]
async fn bad_input_gets_e2b_errors_never_a_hang() {
    let s = code_server(json!({})).await;
    let post = |path: &str, body: &'static str| {
        s.client
            .post(format!("{}{path}", s.base))
            .header("x-api-key", "k")
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for (path, body, status) in [
        ("/v2/sandboxes", "{not json", 400),
        ("/v2/sandboxes", r#"{"timeout": "long"}"#, 422),
        ("/v2/sandboxes", r#"{"timeout": -5}"#, 400),
        ("/sandboxes/nope/timeout", r#"{"timeout": 10}"#, 404),
        ("/sandboxes/nope/pause", "{}", 404),
        ("/sandboxes/nope/fork", "{}", 404),
        ("/sandboxes/nope/fork", r#"{"count": "two"}"#, 400),
        ("/sandboxes/nope/snapshots", "[1]", 400),
        ("/sandboxes/nope/snapshots", "{}", 404),
    ] {
        let r = post(path, body).await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{path} {body}");
        let answer: Value = r.json().await.unwrap();
        assert_eq!(answer["code"], status, "{path}: {answer}");
        assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()), "{answer}");
    }
    // Inside: an unknown sandbox, a malformed cell request, an unknown language.
    let r = s.client.post(format!("{}/execute", s.base)).header("e2b-sandbox-id", "nope").json(&json!({"code": "1"}));
    assert_eq!(r.send().await.unwrap().status().as_u16(), 404);
    let (_, made) = {
        let r = post("/v2/sandboxes", "{}").await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    let (id, token) = (made["sandboxID"].as_str().unwrap(), made["envdAccessToken"].as_str().unwrap());
    let inside = |path: &str| {
        s.client.post(format!("{}{path}", s.base)).header("e2b-sandbox-id", id).header("x-access-token", token)
    };
    let r = inside("/execute").header("content-type", "application/json").body("[1,2]").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let r = inside("/execute").json(&json!({"code": "1", "language": "cobol"})).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().contains("cobol"));
    let r = inside("/filesystem.Filesystem/Stat").header("content-type", "application/json").body("{oops");
    let r = r.send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "invalid_argument", "Connect's error shape");
    let r = inside("/filesystem.Filesystem/Stat").json(&json!({"path": "/home/user/nothing"})).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.json::<Value>().await.unwrap()["code"].clone()), (404, json!("not_found")));
    let _ = s.client.delete(format!("{}/sandboxes/{id}", s.base)).header("x-api-key", "k").send().await;
}

/// The scientific Python through E2B's SDK: a DataFrame comes back as HTML and text, a
/// figure shown with `plt.show()` as a PNG of the plotted size with E2B's chart data, pandas
/// reads a file the SDK wrote, a chart saved by the cell is read back, and an allocation past
/// the memory limit is a MemoryError that leaves the session working.
#[tokio::test]
async fn the_scientific_python_returns_tables_charts_and_files_through_e2b() {
    let s = cella_e2e::scientific_server().await;
    let out = e2b_client(&s, "any-key", "scientific").await;
    let frame = &out["frame"][0];
    assert_eq!(frame["main"], true, "{out}");
    assert!(frame["html"].as_str().unwrap_or_default().contains("<table"), "a DataFrame has an HTML form: {frame}");
    assert!(frame["text"].as_str().unwrap_or_default().contains("3.5"), "and a text form: {frame}");
    let chart = &out["chart"][0];
    assert_eq!(chart["signature"], "89504e470d0a1a0a", "the figure is a PNG: {chart}");
    assert_eq!(chart["size"], json!([400, 300]), "at figsize x dpi: {chart}");
    assert_eq!(chart["main"], false, "a shown figure is a display result, not the cell's value");
    assert_eq!(chart["type"], "line");
    assert_eq!(chart["title"], "rises");
    assert_eq!(chart["points"], json!([[1, 4], [2, 1], [3, 9]]));
    assert_eq!(out["csv"]["text"], "6", "pandas reads what files.write wrote: {}", out["csv"]);
    assert_eq!(out["saved"], "89504e470d0a1a0a", "files.read gives back the chart the cell saved");
    assert_eq!(out["numpy"]["text"], "[10, 35]");
    assert_eq!(error_name(&out["memory"]), "MemoryError", "{}", out["memory"]);
    assert_eq!(out["after_memory"]["text"], "2", "the session survives its MemoryError");
}
