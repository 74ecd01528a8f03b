//! The run API (`/api/v1/run…`, seed 003) over the real Python component.

use cella_e2e::Server;
use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn python_server(patch: Value) -> Server {
    cella_e2e::code_server(patch).await
}

async fn run(s: &Server, body: Value) -> (u16, Value) {
    s.post("/api/v1/run", body).await
}

#[tokio::test]
async fn s36_state_persists_across_runs_of_a_session_and_never_leaks_to_another() {
    let s = python_server(json!({})).await;
    let (status, first) = run(
        &s,
        json!({"code": "import statistics\nx = 41\ndef double(v):\n    return 2 * v\nopen('notes.txt', 'w').write('kept')", "keep_alive": true}),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let data = &first["data"];
    assert_eq!((data["reused_session"].as_bool(), data["kept_alive"].as_bool()), (Some(false), Some(true)));
    let id = data["session_id"].as_str().unwrap().to_string();
    assert!(data["expires_at"].is_string());

    let (_, second) = run(
        &s,
        json!({"code": "print(open('notes.txt').read())\ndouble(x + 1), statistics.mean([1, 2, 3])", "session_id": id, "keep_alive": true}),
    )
    .await;
    let data = &second["data"];
    assert_eq!(data["error"], Value::Null, "{second}");
    assert_eq!(data["stdout"], "kept\n");
    assert_eq!(data["result"], "(84, 2)");
    assert_eq!(data["reused_session"], true);

    // A new session sees none of it.
    let (_, other) = run(&s, json!({"code": "import os\nprint(os.path.exists('notes.txt'))\nx"})).await;
    assert_eq!(other["data"]["stdout"], "False\n");
    assert_eq!(other["data"]["error"]["name"], "NameError", "{other}");
    assert_ne!(other["data"]["session_id"], id);
}

#[tokio::test]
async fn s37_syntax_errors_and_exceptions_come_back_as_results() {
    let s = python_server(json!({})).await;
    let (status, body) = run(&s, json!({"code": "def broken(:\n    pass"})).await;
    assert_eq!((status, body["code"].as_i64()), (200, Some(0)));
    let error = &body["data"]["error"];
    assert_eq!(error["name"], "SyntaxError");
    assert!(error["traceback"].as_str().unwrap().contains("def broken(:"), "{error}");

    let (status, body) = run(&s, json!({"code": "print('before')\n{}['missing']"})).await;
    assert_eq!(status, 200);
    let data = &body["data"];
    assert_eq!(data["stdout"], "before\n", "output before the exception is kept");
    assert_eq!(
        (data["error"]["name"].as_str(), data["error"]["value"].as_str()),
        (Some("KeyError"), Some("'missing'"))
    );
    assert!(data["error"]["traceback"].as_str().unwrap().contains("<cell>"));

    // A cell that is one expression is compiled the short way; it reports alike.
    let (_, body) = run(&s, json!({"code": "print('one') or 1 / 0"})).await;
    let data = &body["data"];
    assert_eq!((data["stdout"].as_str(), data["error"]["name"].as_str()), (Some("one\n"), Some("ZeroDivisionError")));
    let traceback = data["error"]["traceback"].as_str().unwrap();
    assert!(traceback.contains("<cell>") && !traceback.contains("run_cell"), "{traceback}");
    let (_, body) = run(&s, json!({"code": "(41 + 1)"})).await;
    assert_eq!((body["data"]["result"].as_str(), &body["data"]["error"]), (Some("42"), &Value::Null), "{body}");
    let (_, body) = run(&s, json!({"code": "  1"})).await;
    assert_eq!(body["data"]["error"]["name"], "IndentationError", "as in a cell of several statements: {body}");

    let (status, body) = run(&s, json!({"code": "import sys\nsys.stderr.write('warn\\n')\nraise SystemExit(3)"})).await;
    assert_eq!(status, 200);
    assert_eq!(
        (body["data"]["stderr"].as_str(), body["data"]["error"]["name"].as_str()),
        (Some("warn\n"), Some("SystemExit"))
    );
}

#[tokio::test]
async fn s33_uploads_are_deduplicated_by_hash_and_packages_install_once() {
    let s = python_server(json!({})).await;
    let csv = "city,temp\nOslo,4\nLima,19\n";
    let (_, first) = run(
        &s,
        json!({"code": "import csv\nlen(list(csv.DictReader(open('data/temps.csv'))))",
               "files": [{"path": "data/temps.csv", "content": csv}], "packages": ["tabulate"], "keep_alive": true}),
    )
    .await;
    let data = &first["data"];
    assert_eq!(data["result"], "2", "{first}");
    assert_eq!(data["packages"]["installed"], json!(["tabulate"]));
    let id = data["session_id"].as_str().unwrap().to_string();
    let hash = data["files"]["uploaded"][0]["sha256"].as_str().unwrap().to_string();

    // The client asks what the session holds, and names that content by hash only.
    let (status, held) = s.get(&format!("/api/v1/run/sessions/{id}/files")).await;
    assert_eq!(status, 200);
    assert_eq!(held["data"]["files"], json!([{"path": "data/temps.csv", "sha256": hash, "size": csv.len()}]));
    let (_, second) = run(
        &s,
        json!({"code": "from tabulate import tabulate\nimport csv\nprint(tabulate(list(csv.reader(open('copy.csv')))[1:]))",
               "session_id": id, "keep_alive": true, "packages": ["tabulate"],
               "files": [{"path": "copy.csv", "sha256": hash}, {"path": "data/temps.csv", "content": csv}]}),
    )
    .await;
    let data = &second["data"];
    assert!(data["stdout"].as_str().unwrap().contains("Oslo"), "{second}");
    assert_eq!(data["files"], json!({"uploaded": [], "unchanged": ["data/temps.csv"], "reused": ["copy.csv"]}));
    assert_eq!(data["packages"], json!({"installed": [], "cached": ["tabulate"]}), "a package installs once");

    // Unknown content by hash, an unknown package, a path outside the directory: clear errors.
    let (status, body) =
        run(&s, json!({"code": "1", "session_id": id, "keep_alive": true, "files": [{"path": "x", "sha256": "00"}]}))
            .await;
    assert_eq!((status, body["code"].as_i64()), (400, Some(4006)), "{body}");
    let (status, body) =
        run(&s, json!({"code": "1", "session_id": id, "keep_alive": true, "packages": ["numpy"]})).await;
    assert_eq!((status, body["code"].as_i64()), (400, Some(4006)), "{body}");
    assert!(body["message"].as_str().unwrap().contains("not in the wheelhouse"), "{body}");
    assert!(body["data"]["available"].as_array().unwrap().iter().any(|p| p.as_str().unwrap().starts_with("six==")));
    let (status, body) = run(
        &s,
        json!({"code": "1", "session_id": id, "keep_alive": true, "files": [{"path": "../escape", "content": "x"}]}),
    )
    .await;
    assert_eq!((status, body["code"].as_i64()), (400, Some(4002)), "{body}");
}

#[tokio::test]
async fn s31_the_result_carries_timing_per_stage_and_insights() {
    let s = python_server(json!({})).await;
    let (_, body) =
        run(&s, json!({"code": "print(1)", "files": [{"path": "a.txt", "content": "a"}], "packages": ["six"]})).await;
    let timing = &body["data"]["timing"];
    let stages: Vec<&str> = timing["stages"].as_array().unwrap().iter().map(|s| s["stage"].as_str().unwrap()).collect();
    assert_eq!(stages, ["session", "upload", "install", "run", "close"]);
    let shares: f64 = timing["stages"].as_array().unwrap().iter().map(|s| s["share"].as_f64().unwrap()).sum();
    assert!((shares - 1.0).abs() < 0.02, "shares add up to the whole: {timing}");
    let insights = &body["data"]["insights"];
    assert!(stages.contains(&insights["bottleneck"].as_str().unwrap()));
    assert!(!insights["suggestions"].as_array().unwrap().is_empty());
    // The answer is the wire type the SDK reads (cella-protocol), field for field.
    let typed: cella_protocol::Envelope = serde_json::from_value(body.clone()).unwrap();
    let result: cella_protocol::run::RunResult = serde_json::from_value(typed.data).unwrap();
    assert_eq!((result.stdout.as_str(), result.timing.stages.len()), ("1\n", 5));
    // Without keep_alive the session ended with the run.
    let id = body["data"]["session_id"].as_str().unwrap();
    let (status, body) = s.get(&format!("/api/v1/run/sessions/{id}")).await;
    assert_eq!((status, body["code"].as_i64()), (404, Some(4007)));
}

#[tokio::test]
async fn s32_streaming_delivers_stdout_before_the_run_ends() {
    let s = python_server(json!({})).await;
    let response = s
        .client
        .post(format!("{}/api/v1/run", s.base))
        .header("accept", "text/event-stream")
        .json(&json!({"code": "import time\nprint('first', flush=True)\ntime.sleep(1)\nprint('second')"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    // The same event-stream decoder the SDK uses, so the test reads what any SSE client reads.
    let mut stream = response.bytes_stream().eventsource();
    let mut events: Vec<(String, Value, Instant)> = Vec::new();
    while let Some(event) = stream.next().await {
        let event = event.unwrap();
        if !event.data.is_empty() {
            events.push((event.event, serde_json::from_str(&event.data).unwrap(), Instant::now()));
        }
    }
    let names: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(names.first(), Some(&"progress"));
    assert_eq!(names.last(), Some(&"result"), "{names:?}");
    let first = events.iter().position(|e| e.0 == "stdout" && e.1["text"] == "first").expect("first streamed");
    let second = events.iter().position(|e| e.0 == "stdout" && e.1["text"] == "second").expect("second streamed");
    let result = events.len() - 1;
    assert!(first < second && second < result);
    // 'first' was delivered while the code was still sleeping.
    assert!(events[result].2 - events[first].2 >= std::time::Duration::from_millis(500), "{names:?}");
    let envelope = &events[result].1;
    assert_eq!(envelope["data"]["stdout"], "first\nsecond\n");
    let stages: Vec<&str> =
        events.iter().filter(|e| e.0 == "progress").map(|e| e.1["stage"].as_str().unwrap()).collect();
    assert_eq!(stages, ["session", "run", "close", "done"]);
}

#[tokio::test]
async fn a_mebibyte_of_print_output_arrives_whole() {
    let s = python_server(json!({})).await;
    let (status, body) =
        run(&s, json!({"code": "print('x' * 1048576, end='')\nprint('!', file=__import__('sys').stderr)"})).await;
    assert_eq!(status, 200);
    let stdout = body["data"]["stdout"].as_str().unwrap();
    assert_eq!(stdout.len(), 1_048_576);
    assert!(stdout.bytes().all(|b| b == b'x'));
    assert_eq!(body["data"]["stderr"], "!\n");
}

#[tokio::test]
async fn a_loop_or_a_memory_bomb_ends_the_run_and_its_session_not_the_server() {
    let s = python_server(json!({})).await;
    let (_, body) = run(&s, json!({"code": "x = 1", "keep_alive": true})).await;
    let id = body["data"]["session_id"].as_str().unwrap().to_string();
    let (status, body) = run(&s, json!({"code": "while True: pass", "session_id": id, "timeout": 1})).await;
    assert_eq!((status, body["code"].as_i64()), (500, Some(5006)), "{body}");
    assert_eq!(body["data"]["session_ended"], true);
    let (status, body) = run(&s, json!({"code": "x", "session_id": id})).await;
    assert_eq!((status, body["code"].as_i64()), (404, Some(4007)), "the ended session is not silently replaced");

    // Memory: the interpreter's allocation fails inside the limit; the run reports it.
    let (status, body) = run(&s, json!({"code": "blocks = []\nwhile True: blocks.append(bytearray(8 << 20))"})).await;
    let ended_by_fault = status == 500 && body["code"] == 7002;
    let memory_error = status == 200 && body["data"]["error"]["name"] == "MemoryError";
    assert!(ended_by_fault || memory_error, "{status} {body}");

    // The server and other sessions are fine.
    let (status, body) = run(&s, json!({"code": "sum(range(10))"})).await;
    assert_eq!((status, body["data"]["result"].as_str()), (200, Some("45")));
}

#[tokio::test]
async fn s35_run_sessions_are_listed_kept_alive_and_closed() {
    let s = python_server(json!({})).await;
    let (_, body) = run(&s, json!({"code": "1", "keep_alive": true})).await;
    let id = body["data"]["session_id"].as_str().unwrap().to_string();
    let (_, list) = s.get("/api/v1/run/sessions").await;
    assert!(list["data"]["sessions"].as_array().unwrap().iter().any(|x| x["session_id"] == id.as_str()), "{list}");
    let (status, got) = s.get(&format!("/api/v1/run/sessions/{id}")).await;
    assert_eq!((status, got["data"]["languages"].clone()), (200, json!(["python"])));
    let (status, kept) = s.post(&format!("/api/v1/run/sessions/{id}/keep-alive"), json!({})).await;
    assert_eq!(status, 200);
    assert!(kept["data"]["expires_at"].as_str().unwrap() >= got["data"]["expires_at"].as_str().unwrap());
    let response = s.client.delete(format!("{}/api/v1/run/sessions/{id}", s.base)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let (status, _) = s.get(&format!("/api/v1/run/sessions/{id}")).await;
    assert_eq!(status, 404);
    let (status, body) = run(&s, json!({"code": "1", "language": "cobol"})).await;
    assert_eq!((status, body["code"].as_i64()), (400, Some(4002)));
}

#[tokio::test]
async fn javascript_keeps_globals_captures_the_console_and_reports_errors() {
    let s = python_server(json!({})).await;
    let (status, first) = run(
        &s,
        json!({"language": "javascript", "keep_alive": true,
               "code": "const base = 20;\nfunction inc(v) { return v + 1 }\nglobalThis.seen = ['a'];\nconsole.log('set', base)"}),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let data = &first["data"];
    assert_eq!((data["language"].as_str(), data["stdout"].as_str()), (Some("javascript"), Some("set 20\n")));
    let id = data["session_id"].as_str().unwrap().to_string();
    let (_, second) = run(
        &s,
        json!({"language": "js", "session_id": id, "keep_alive": true,
               "code": "console.error('careful');\nseen.push('b');\n({total: inc(base) * 2, seen})"}),
    )
    .await;
    let data = &second["data"];
    assert_eq!(data["result"], r#"{"total":42,"seen":["a","b"]}"#, "{second}");
    assert_eq!(data["stderr"], "careful\n");
    // Errors are results: a syntax error and a thrown exception.
    let (status, body) =
        run(&s, json!({"language": "javascript", "session_id": id, "keep_alive": true, "code": "let = ;"})).await;
    assert_eq!((status, body["data"]["error"]["name"].as_str()), (200, Some("SyntaxError")), "{body}");
    let (_, body) = run(&s, json!({"language": "javascript", "session_id": id, "code": "null.x"})).await;
    assert_eq!(body["data"]["error"]["name"], "TypeError", "{body}");
    // Another session has its own globals.
    let (_, body) = run(&s, json!({"language": "javascript", "code": "typeof base"})).await;
    assert_eq!(body["data"]["result"], "undefined");
}

#[tokio::test]
async fn javascript_streams_console_output_and_a_loop_ends_only_its_run() {
    let s = python_server(json!({})).await;
    let response = s
        .client
        .post(format!("{}/api/v1/run", s.base))
        .header("accept", "text/event-stream")
        .json(&json!({"language": "javascript", "code": "console.log('one'); console.log('two'); 3"}))
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    let one = text.find("event: stdout\ndata: {\"text\":\"one\\n\"}").expect("one streamed");
    let result = text.find("event: result").expect("a result event");
    assert!(one < result, "{text}");
    let (status, body) = run(&s, json!({"language": "javascript", "code": "while (true) {}", "timeout": 1})).await;
    assert_eq!((status, body["code"].as_i64()), (500, Some(5006)), "{body}");
    let (status, body) = run(&s, json!({"language": "javascript", "code": "6 * 7"})).await;
    assert_eq!((status, body["data"]["result"].as_str()), (200, Some("42")));
}

mod sdk {
    use super::python_server;
    use cella_sdk::run::{RunFile, RunRequest, Session, SessionOptions};
    use serde_json::json;
    use std::time::Duration;

    fn fast_renewing(url: &str) -> Session {
        let options = SessionOptions { renew_every: Duration::from_millis(200), ..SessionOptions::default() };
        Session::with_options(url, options).unwrap()
    }

    #[tokio::test]
    async fn session_run_streams_progress_and_stdout_and_keeps_state() {
        let s = python_server(json!({})).await;
        let session = Session::new(&s.base).unwrap();
        let first = session
            .run(RunRequest::python("total = 40").keep_alive(true).file(RunFile::text("n.txt", "2")))
            .await
            .unwrap();
        assert!(first.kept_alive && !first.reused_session);
        let (mut stages, mut printed) = (Vec::new(), Vec::new());
        let second = session
            .run_with(
                RunRequest::python(
                    "import time\nprint('a', flush=True)\ntime.sleep(0.2)\nprint(total + int(open('n.txt').read()))",
                )
                .session_id(&first.session_id)
                .keep_alive(true),
                |p| stages.push(p.stage.clone()),
                |text| printed.push(text.to_string()),
            )
            .await
            .unwrap();
        assert_eq!(second.stdout, "a\n42\n");
        assert_eq!(printed.concat(), "a\n42\n", "on_stdout saw the output");
        assert_eq!(stages, ["session", "run", "done"]);
        assert!(second.timing.stages.iter().any(|t| t.stage == "run"));
        // A failing program is an outcome, not an Err (S-37).
        let failed =
            session.run(RunRequest::python("1/0").session_id(&first.session_id).keep_alive(true)).await.unwrap();
        assert_eq!(failed.error.unwrap()["name"], "ZeroDivisionError");
        // The lower layer (S-38): the run session is a worker of the Sandbox API.
        let sandbox = session.sandbox(&first.session_id).await.unwrap();
        let envelope = sandbox.execute("python:run", json!({"code": "total"})).await.unwrap();
        assert_eq!(envelope.data["result"], "40");
        // Listing, files, close (S-35).
        let listed = session.list_sessions().await.unwrap();
        assert!(listed.iter().any(|x| x["session_id"] == first.session_id.as_str()));
        let files = session.files(&first.session_id).await.unwrap();
        assert_eq!(files[0]["path"], "n.txt");
        session.close(&first.session_id).await.unwrap();
        let gone = session.get_session(&first.session_id).await.unwrap_err();
        assert_eq!(gone.code(), Some(4007));
    }

    /// Output full of 2-, 3- and 4-byte characters arrives whole through the SDK's event
    /// stream, though the transport splits it at arbitrary bytes (decoding each chunk on its
    /// own turned split characters into U+FFFD).
    #[tokio::test]
    async fn streamed_multi_byte_output_arrives_whole() {
        let s = python_server(json!({})).await;
        let session = Session::new(&s.base).unwrap();
        let code = "line = 'é€😀ñ中' * 4000\nfor i in range(8):\n    print(line, flush=True)";
        let mut printed = String::new();
        let out = session.run_with(RunRequest::python(code), |_| {}, |text| printed.push_str(text)).await.unwrap();
        let line = "é€😀ñ中".repeat(4000);
        let expected = format!("{line}\n").repeat(8);
        assert_eq!(out.stdout, expected);
        assert!(!printed.contains('\u{fffd}'), "a split character was corrupted");
        assert_eq!(printed, expected, "on_stdout saw every character");
    }

    #[tokio::test]
    async fn s34_a_kept_alive_session_with_little_time_left_is_renewed_by_the_sdk() {
        // A 3 s TTL is always below the SDK's 2-minute threshold, so the SDK renews it.
        let s = python_server(json!({"server": {"session_ttl": 3}})).await;
        let session = fast_renewing(&s.base);
        let renewed = session.run(RunRequest::python("kept = True").keep_alive(true)).await.unwrap();
        let left_alone = session.run(RunRequest::python("kept = False").keep_alive(true)).await.unwrap();
        session.detach(&left_alone.session_id);
        tokio::time::sleep(Duration::from_secs(6)).await;
        let info = session.get_session(&renewed.session_id).await.expect("renewed in the background");
        assert!(info["expires_in_s"].as_f64().unwrap() > 0.0);
        let again = session.run(RunRequest::python("kept").session_id(&renewed.session_id)).await.unwrap();
        assert_eq!(again.result.as_deref(), Some("True"));
        let expired = session.get_session(&left_alone.session_id).await.unwrap_err();
        assert_eq!(expired.code(), Some(4007), "without renewal the session expired");
    }

    #[tokio::test]
    async fn s40_a_dropped_session_client_ends_its_kept_sessions() {
        let s = python_server(json!({})).await;
        let observer = Session::new(&s.base).unwrap();
        let id = {
            let session = Session::new(&s.base).unwrap();
            let out = session.run(RunRequest::javascript("var kept = 1").keep_alive(true)).await.unwrap();
            assert_eq!(session.kept_sessions(), vec![out.session_id.clone()]);
            out.session_id
        };
        let ended =
            cella_e2e::eventually(Duration::from_secs(5), || async { observer.get_session(&id).await.is_err() }).await;
        assert!(ended, "the dropped client's kept session was ended");
    }
}

#[tokio::test]
async fn bad_run_requests_get_clear_errors_and_harm_nothing() {
    let s = python_server(json!({})).await;
    let cases: [(&str, u16, i64, &str); 9] = [
        ("{not json", 400, 4002, "not valid JSON"),
        ("[]", 400, 4002, "must be a JSON object"),
        ("{}", 422, 4002, "code is required"),
        (r#"{"code": 5}"#, 422, 4002, "code: invalid type"),
        (r#"{"code": "1", "packages": "x"}"#, 422, 4002, "packages: invalid type"),
        (r#"{"code": "1", "timeout": -1}"#, 400, 4002, "timeout must be a positive number"),
        (r#"{"code": "1", "timeout": 0}"#, 400, 4002, "timeout must be a positive number"),
        (r#"{"code": "1", "files": [{"path": "a"}]}"#, 400, 4003, "needs content"),
        (r#"{"code": "1", "session_id": "run-nope"}"#, 404, 4007, "no run session"),
    ];
    for (raw, status, code, says) in cases {
        let (got, body) = s.post_raw("/api/v1/run", raw.to_string()).await;
        assert_eq!((got, body["code"].as_i64()), (status, Some(code)), "{raw}: {body}");
        assert!(body["message"].as_str().unwrap().contains(says), "{raw}: {body}");
    }
    // A timeout far beyond any limit is cut to the server's limit, not a panic (it was one:
    // `Duration::from_secs_f64(1e300)`), on the run API and on execute alike.
    let (status, body) = s.post_raw("/api/v1/run", r#"{"code": "6 * 7", "timeout": 1e300}"#.to_string()).await;
    assert_eq!((status, body["data"]["result"].as_str()), (200, Some("42")), "{body}");
    let raw = r#"{"worker_id": "w", "action": "python:run", "params": {"code": "1"}, "timeout": 1e300}"#;
    let (status, body) = s.post_raw("/api/v1/execute", raw.to_string()).await;
    assert_eq!((status, body["code"].as_i64()), (200, Some(0)), "{body}");
}

#[tokio::test]
async fn another_tenants_run_session_is_invisible() {
    use cella_runtime::tenancy::hash_key;
    let s = python_server(json!({"tenants": {
        "a": {"keys": [hash_key("key-a")]},
        "b": {"keys": [hash_key("key-b")]}
    }}))
    .await;
    let (status, body) = s.post_as("key-a", "/api/v1/run", json!({"code": "secret = 1", "keep_alive": true})).await;
    assert_eq!(status, 200, "{body}");
    let id = body["data"]["session_id"].as_str().unwrap().to_string();

    // Tenant b cannot run in it, see it, list it, keep it alive or close it: to b it does
    // not exist (404, as an unknown id, so its existence does not leak).
    let (status, body) = s.post_as("key-b", "/api/v1/run", json!({"code": "secret", "session_id": id})).await;
    assert_eq!((status, body["code"].as_i64()), (404, Some(4007)), "{body}");
    let as_b = |req: reqwest::RequestBuilder| req.bearer_auth("key-b").send();
    let url = format!("{}/api/v1/run/sessions/{id}", s.base);
    for req in [
        s.client.get(&url),
        s.client.get(format!("{url}/files")),
        s.client.post(format!("{url}/keep-alive")),
        s.client.delete(&url),
    ] {
        assert_eq!(as_b(req).await.unwrap().status(), 404);
    }
    let list: Value =
        as_b(s.client.get(format!("{}/api/v1/run/sessions", s.base))).await.unwrap().json().await.unwrap();
    assert_eq!(list["data"]["sessions"], json!([]), "{list}");

    // Tenant a still has it, state included.
    let (status, body) = s.post_as("key-a", "/api/v1/run", json!({"code": "secret + 1", "session_id": id})).await;
    assert_eq!((status, body["data"]["result"].as_str()), (200, Some("2")), "{body}");
}

/// A client that gives up mid-run (plain or streaming) does not lose its session: the cell
/// runs to its end, the next run sees its effect, and the abandoned session is reaped at its
/// TTL with its working directory.
#[tokio::test]
async fn a_client_that_disconnects_mid_run_keeps_its_session() {
    use super::disconnect::{impatient, scratch_of, within};
    let s = python_server(json!({"server": {"session_ttl": 3}})).await;
    // Warm first: on a cold cache, compiling the interpreter takes longer than the TTL.
    assert_eq!(s.post("/api/v1/warmup", json!({"backends": ["python"]})).await.0, 200);
    let (status, first) =
        run(&s, json!({"code": "x = 41\nopen('f.txt', 'w').write('kept')", "keep_alive": true})).await;
    assert_eq!(status, 200, "{first}");
    let id = first["data"]["session_id"].as_str().expect("a run session").to_string();
    let cella_id = first["meta"]["session_id"].as_str().expect("a Cella session").to_string();
    let url = format!("{}/api/v1/run", s.base);

    // httpx's default: give up after a few seconds, here 1 s into a 4 s cell.
    let slow = json!({"code": "import time\ntime.sleep(4)\nx += 1", "session_id": id, "keep_alive": true});
    let gave_up = async { impatient(1.0).post(&url).json(&slow).send().await?.text().await }.await;
    assert!(gave_up.as_ref().is_err_and(|e| e.is_timeout()), "the client did not time out: {gave_up:?}");

    // A streaming client that goes away after its first event.
    let streamed = json!({"code": "import time\ntime.sleep(1)\nx += 1", "session_id": id, "keep_alive": true});
    let response =
        s.client.post(&url).header("accept", "text/event-stream").json(&streamed).send().await.expect("a stream");
    let mut events = response.bytes_stream();
    assert!(events.next().await.is_some(), "a first event");
    drop(events);

    let (status, next) =
        run(&s, json!({"code": "open('f.txt').read(), x", "session_id": id, "keep_alive": true})).await;
    assert_eq!(status, 200, "{next}");
    assert_eq!(next["data"]["result"], "('kept', 43)", "both abandoned cells ran to their end: {next}");

    let gone = within(Duration::from_secs(20), async || s.get(&format!("/api/v1/run/sessions/{id}")).await.0 == 404);
    assert!(gone.await, "the abandoned run session was not reaped at its TTL");
    assert!(within(Duration::from_secs(5), async || !scratch_of(&cella_id).exists()).await, "scratch left behind");
}

/// The scientific Python through the run API: a figure comes back as an `image/png` bundle
/// with its chart, and a DataFrame as the main result's `text/html` and `text/plain`.
#[tokio::test]
async fn the_run_api_returns_rich_results_as_mime_bundles() {
    let s = cella_e2e::scientific_server().await;
    let code = "import matplotlib.pyplot as plt, pandas as pd\nplt.bar(['a', 'b'], [3, 5])\nplt.show()\npd.DataFrame({'n': [1, 2]})";
    let (status, out) = run(&s, json!({"code": code})).await;
    assert_eq!(status, 200, "{out}");
    let results = out["data"]["results"].as_array().cloned().unwrap_or_default();
    assert_eq!(results.len(), 2, "the figure, then the frame: {out}");
    let png = results[0]["data"]["image/png"].as_str().unwrap_or_default();
    assert!(png.starts_with("iVBORw0KGgo"), "a base64 PNG: {}", &png[..png.len().min(40)]);
    assert_eq!(results[0]["is_main_result"], false);
    assert_eq!(results[0]["chart"]["type"], "bar");
    assert_eq!(results[0]["chart"]["elements"][1]["value"], 5);
    assert_eq!(results[1]["is_main_result"], true);
    assert!(results[1]["data"]["text/html"].as_str().unwrap_or_default().contains("<table"));
    assert_eq!(out["data"]["result"], results[1]["data"]["text/plain"]);
}
