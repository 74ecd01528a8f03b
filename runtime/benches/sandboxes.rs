//! Time to interactive through E2B's and Scalebox's wire formats over HTTP (issue #15): a new
//! sandbox to its first result (what ComputeSDK measures for the hosted sandboxes: create,
//! then the first command), and `1` in a live sandbox; and `commands.run` through the shell
//! (issue #36): `echo hi`, and a 10-stage pipeline against the same line run by the host's
//! `/bin/sh` (the ratio). The real server on 127.0.0.1, the requests exactly as the SDKs send
//! them; medians with p95 and p99.
//!
//! Run with: `cargo bench -p cella-runtime --bench sandboxes`
//! Settings: `CELLA_SANDBOX_BENCH_N` (default 200 iterations per figure).
// A benchmark that cannot set up stops with a panic: that is its failure report.
#![allow(clippy::unwrap_used)]

use cella_runtime::{Sandbox, http};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[allow(dead_code)]
mod common;

/// Prints the median, p95 and p99 of `samples`.
fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<44} n={:<4} p50 {:>7.2} ms   p95 {:>7.2} ms   p99 {:>7.2} ms",
        samples.len(),
        ms(at(0.5)),
        ms(at(0.95)),
        ms(at(0.99))
    );
}

/// One Connect envelope.
fn frame(message: &Value) -> Vec<u8> {
    let body = message.to_string().into_bytes();
    let mut out = vec![0u8];
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Ten stages over 1,000 lines, every one a utility of the shell's.
const PIPELINE: &str =
    "seq 1 1000 | sort -r | head -n 800 | tail -n 600 | grep 1 | sort -n | uniq | cut -c1-2 | tr 0-9 a-j | wc -l";

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    /// E2B: `POST /v2/sandboxes`; (id, token).
    async fn e2b_create(&self) -> (String, String) {
        let r = self.http.post(format!("{}/v2/sandboxes", self.base)).header("x-api-key", "bench");
        let body: Value = r
            .json(&json!({"templateID": "code-interpreter-v1", "metadata": {}, "envVars": {}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (body["sandboxID"].as_str().unwrap().into(), body["envdAccessToken"].as_str().unwrap().into())
    }

    /// E2B: `POST /execute` and the whole NDJSON answer.
    async fn e2b_run(&self, id: &str, token: &str, code: &str) {
        let r = self
            .http
            .post(format!("{}/execute", self.base))
            .header("e2b-sandbox-id", id)
            .header("e2b-sandbox-port", "49999")
            .header("x-access-token", token)
            .json(&json!({"code": code, "context_id": null, "language": null, "env_vars": null}));
        let text = r.send().await.unwrap().text().await.unwrap();
        assert!(text.contains("end_of_execution"), "{text}");
    }

    /// E2B: `commands.run(line)`, `process.Process/Start` as the SDK sends it, read to its end.
    async fn e2b_command(&self, id: &str, token: &str, line: &str) {
        let start = json!({"process": {"cmd": "/bin/bash", "args": ["-l", "-c", line]}, "stdin": false});
        let r = self
            .http
            .post(format!("{}/process.Process/Start", self.base))
            .header("content-type", "application/connect+json")
            .header("e2b-sandbox-id", id)
            .header("e2b-sandbox-port", "49983")
            .header("x-access-token", token)
            .body(frame(&start));
        let body = r.send().await.unwrap().bytes().await.unwrap();
        assert!(body.windows(13).any(|w| w == b"\"exitCode\":0,"), "{}", String::from_utf8_lossy(&body));
    }

    async fn e2b_kill(&self, id: &str) {
        let _ = self.http.delete(format!("{}/sandboxes/{id}", self.base)).header("x-api-key", "bench").send().await;
    }

    /// Scalebox: `POST /v1/sandboxes`, then `CreateContext`; (id, token, context).
    async fn scalebox_create(&self) -> (String, String, String) {
        let r = self.http.post(format!("{}/v1/sandboxes", self.base)).header("x-api-key", "bench");
        let body: Value = r
            .json(&json!({"template": "code-interpreter", "timeout": 600}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let (id, token) =
            (body["data"]["sandbox_id"].as_str().unwrap(), body["data"]["envd_access_token"].as_str().unwrap());
        let r = self
            .http
            .post(format!("{}/sandboxagent.ContextService/CreateContext", self.base))
            .header("x-access-token", token)
            .header("x-sandbox-id", id)
            .json(&json!({"language": "python", "cwd": "/workspace"}));
        let ctx: Value = r.send().await.unwrap().json().await.unwrap();
        (id.into(), token.into(), ctx["id"].as_str().unwrap().into())
    }

    /// Scalebox: the `Execute` stream, read to its end.
    async fn scalebox_run(&self, id: &str, token: &str, ctx: &str, code: &str) {
        let r = self
            .http
            .post(format!("{}/sandboxagent.ExecutionService/Execute", self.base))
            .header("content-type", "application/connect+json")
            .header("x-access-token", token)
            .header("x-sandbox-id", id)
            .body(frame(&json!({"contextId": ctx, "code": code, "language": "python"})));
        let body = r.send().await.unwrap().bytes().await.unwrap();
        assert!(body.windows(12).any(|w| w == b"isMainResult"), "{body:?}");
    }

    async fn scalebox_kill(&self, id: &str) {
        let url = format!("{}/v1/sandboxes/{id}?force=true", self.base);
        let _ = self.http.delete(url).header("x-api-key", "bench").send().await;
    }
}

fn main() {
    let n: usize = std::env::var("CELLA_SANDBOX_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let config = common::config(&["python", "javascript"], json!({"server": {"limits": {"max_instances": 1000}}}));
        let sandbox = Sandbox::start(config).await.unwrap();
        sandbox.warmup(None).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(http::serve(listener, sandbox, std::future::pending()));
        let client = Client { http: reqwest::Client::new(), base };
        // Warm the connection and the server's first-use paths.
        let (id, token) = client.e2b_create().await;
        client.e2b_run(&id, &token, "1").await;
        client.e2b_kill(&id).await;

        let mut tti = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            let (id, token) = client.e2b_create().await;
            client.e2b_run(&id, &token, "1").await;
            tti.push(t.elapsed());
            client.e2b_kill(&id).await;
        }
        report("e2b: create sandbox -> first run_code result", tti);
        let (id, token) = client.e2b_create().await;
        client.e2b_run(&id, &token, "1").await;
        let mut live = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            client.e2b_run(&id, &token, "1").await;
            live.push(t.elapsed());
        }
        report("e2b: run_code(\"1\") in a live sandbox", live);
        client.e2b_kill(&id).await;

        let mut tti = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            let (id, token, ctx) = client.scalebox_create().await;
            client.scalebox_run(&id, &token, &ctx, "1").await;
            tti.push(t.elapsed());
            client.scalebox_kill(&id).await;
        }
        report("scalebox: create sandbox + context -> first result", tti);
        let (id, token, ctx) = client.scalebox_create().await;
        let mut live = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            client.scalebox_run(&id, &token, &ctx, "1").await;
            live.push(t.elapsed());
        }
        report("scalebox: Execute(\"1\") in a live sandbox", live);
        client.scalebox_kill(&id).await;

        let (id, token) = client.e2b_create().await;
        let mut echo = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            client.e2b_command(&id, &token, "echo hi").await;
            echo.push(t.elapsed());
        }
        report("e2b: commands.run(\"echo hi\")", echo);
        let mut piped = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            client.e2b_command(&id, &token, PIPELINE).await;
            piped.push(t.elapsed());
        }
        let host: Vec<Duration> = (0..n)
            .map(|_| {
                let t = Instant::now();
                let out = std::process::Command::new("/bin/sh").arg("-c").arg(PIPELINE).output().unwrap();
                assert!(out.status.success());
                t.elapsed()
            })
            .collect();
        let median = |v: &mut Vec<Duration>| {
            v.sort();
            v[v.len() / 2]
        };
        let (ours, theirs) = (median(&mut piped.clone()), median(&mut host.clone()));
        report("e2b: commands.run(10-stage pipeline)", piped);
        report("host: /bin/sh -c (the same pipeline)", host);
        println!("pipeline: Cella / host sh = {:.2}", ours.as_secs_f64() / theirs.as_secs_f64());
        client.e2b_kill(&id).await;
    });
}
