//! envd's `process.Process` service (and Scalebox's `sandboxagent.Process`, the same
//! service under another name): `Start` runs a command line as a process of the sandbox
//! and streams its events; `Connect` joins a running one; `List`, `SendSignal`,
//! `SendInput` and `CloseStdin` act on them by pid or tag ([`crate::sandboxes::Process`]).

use super::enter;
use crate::http::App;
use crate::http::connect::{self, ConnectError};
use crate::sandboxes::{Ended, Process, ProcessEvent, ProcessSpec, Sbx};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedReceiver;

/// `POST /process.Process/{method}`.
pub(super) async fn process(
    State(app): State<App>,
    headers: HeaderMap,
    Path(method): Path<String>,
    body: Bytes,
) -> Response {
    match enter(&app, &headers) {
        Ok(sbx) => process_rpc(&app, sbx, "process.Process", &method, &headers, &body).await,
        Err(e) => ConnectError::from(e).into_response(),
    }
}

/// `Start`'s request: the process to start (E2B sends `bash -l -c <command>`), whether its
/// standard input stays open, and its tag.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StartRequest {
    process: ProcessConfig,
    stdin: Option<bool>,
    tag: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ProcessConfig {
    cmd: String,
    args: Vec<String>,
    cwd: Option<String>,
    /// The command's environment variables (over the sandbox's).
    envs: BTreeMap<String, String>,
}

impl ProcessConfig {
    /// The command line: what a shell would have run.
    fn line(&self) -> String {
        let shell = self.cmd.ends_with("/bash") || self.cmd.ends_with("/sh") || self.cmd == "bash" || self.cmd == "sh";
        if shell && let Some(at) = self.args.iter().position(|a| a == "-c" || a == "-lc") {
            return self.args.get(at + 1).cloned().unwrap_or_default();
        }
        std::iter::once(self.cmd.as_str())
            .chain(self.args.iter().map(String::as_str))
            .map(|w| shlex::try_quote(w).map(|q| q.into_owned()).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A `ProcessSelector`: a pid or a tag.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Selector {
    pid: Option<u32>,
    tag: Option<String>,
}

/// The request of the calls that name one process (`Connect`, `SendSignal`, `SendInput`,
/// `CloseStdin`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Selected {
    process: Selector,
    signal: Value,
    input: Input,
}

/// `ProcessInput`: bytes (base64) for standard input, or for a terminal.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Input {
    stdin: Option<String>,
    pty: Option<String>,
}

/// One process event in Connect's JSON.
fn event(e: Value) -> Bytes {
    connect::envelope(&json!({"event": e}))
}

/// envd's `EndEvent`: a kill is `signal: killed`, exit code -1.
fn end(ended: Ended) -> Value {
    if ended.killed {
        json!({"exitCode": -1, "exited": false, "status": "signal: killed", "error": "signal: killed"})
    } else {
        let code = ended.exit_code;
        json!({"exitCode": code, "exited": true, "status": format!("exit status {code}")})
    }
}

/// The events of `process` from `events` on, as a Connect stream: its start, its output
/// (base64 data), its end.
fn stream(process: &Process, mut events: UnboundedReceiver<ProcessEvent>) -> Response {
    let (frames, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    let _ = frames.send(event(json!({"start": {"pid": process.pid}})));
    tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            match e {
                ProcessEvent::Output { channel, text } => {
                    let kind = if channel == "stderr" { "stderr" } else { "stdout" };
                    let data = base64::engine::general_purpose::STANDARD.encode(text);
                    if frames.send(event(json!({"data": {kind: data}}))).is_err() {
                        // The connection went; the process goes on.
                        return;
                    }
                }
                ProcessEvent::End(ended) => {
                    let _ = frames.send(event(json!({"end": end(ended)})));
                    break;
                }
            }
        }
        let _ = frames.send(connect::end_of_stream(None));
    });
    crate::http::streamed(connect::STREAM, rx)
}

/// One call of the Process service.
pub(crate) async fn process_rpc(
    app: &App,
    sbx: Arc<Sbx>,
    service: &str,
    method: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let streamed = headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/connect+"));
    let refuse = |error: ConnectError| if streamed { connect::stream_error(error) } else { error.into_response() };
    let sandboxes = &app.sandboxes;
    match method {
        "Start" => {
            let request: StartRequest = match connect::decode_enveloped(body) {
                Ok(r) => r,
                Err(e) => return refuse(e),
            };
            // Connect's own deadline: the SDK's `timeout` of the command (none: the server's).
            let deadline = headers
                .get("connect-timeout-ms")
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .filter(|ms| *ms > 0)
                .map(std::time::Duration::from_millis);
            let p = request.process;
            let spec = ProcessSpec {
                line: p.line(),
                cmd: p.cmd,
                args: p.args,
                cwd: p.cwd,
                envs: p.envs,
                tag: request.tag,
                stdin: request.stdin.unwrap_or(false),
            };
            match sandboxes.start_process(&sbx, spec, deadline) {
                Ok((process, events)) => stream(&process, events),
                Err(e) => refuse(e.into()),
            }
        }
        "List" => {
            let processes: Vec<Value> = sandboxes
                .processes(&sbx)
                .iter()
                .map(|p| {
                    let s = &p.spec;
                    let mut info = json!({
                        "pid": p.pid,
                        "config": {"cmd": s.cmd, "args": s.args, "envs": s.envs, "cwd": s.cwd},
                    });
                    if let Some(tag) = &s.tag {
                        info["tag"] = json!(tag);
                    }
                    info
                })
                .collect();
            connect::unary(&json!({"processes": processes}))
        }
        "Connect" | "SendSignal" | "SendInput" | "CloseStdin" => {
            let decoded = if method == "Connect" { connect::decode_enveloped(body) } else { connect::decode(body) };
            let r: Selected = match decoded {
                Ok(r) => r,
                Err(e) => return refuse(e),
            };
            let process = match sandboxes.process(&sbx, r.process.pid, r.process.tag.as_deref()) {
                Ok(p) => p,
                Err(e) => return refuse(e.into()),
            };
            match method {
                "Connect" => stream(&process, process.subscribe()),
                "SendSignal" => {
                    // SIGKILL and SIGTERM both end a line (it has no handler for either).
                    match &r.signal {
                        Value::String(s) if s == "SIGNAL_SIGKILL" || s == "SIGNAL_SIGTERM" => {}
                        Value::Number(n) if n.as_u64() == Some(9) || n.as_u64() == Some(15) => {}
                        other => {
                            return refuse(ConnectError::new(
                                "invalid_argument",
                                format!("signal {other} is not offered; SIGNAL_SIGKILL and SIGNAL_SIGTERM are"),
                            ));
                        }
                    }
                    process.kill();
                    connect::unary(&json!({}))
                }
                "SendInput" => {
                    let Some(data) = r.input.stdin else {
                        let why = if r.input.pty.is_some() { "the process has no terminal" } else { "no input" };
                        return refuse(ConnectError::new("invalid_argument", format!("{why}: send `stdin` bytes")));
                    };
                    let bytes = match base64::engine::general_purpose::STANDARD.decode(data) {
                        Ok(b) => b,
                        Err(e) => {
                            return refuse(ConnectError::new("invalid_argument", format!("stdin is not base64: {e}")));
                        }
                    };
                    match process.send_stdin(bytes) {
                        Ok(()) => connect::unary(&json!({})),
                        Err(e) => refuse(ConnectError::new("failed_precondition", e.to_string())),
                    }
                }
                _ => {
                    process.close_stdin();
                    connect::unary(&json!({}))
                }
            }
        }
        other => refuse(ConnectError::new(
            "unimplemented",
            format!(
                "{service}/{other} is not offered (no terminals); Start, Connect, List, SendSignal, SendInput and CloseStdin are"
            ),
        )),
    }
}
