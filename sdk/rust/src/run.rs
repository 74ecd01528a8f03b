//! The high-level code-execution layer (seed 003, S-30 … S-38): run Python or JavaScript in
//! a session with one call, over the server's run API (`/api/v1/run…`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), cella_sdk::Error> {
//! use cella_sdk::run::{Session, RunRequest};
//!
//! let session = Session::new("http://127.0.0.1:18890")?;
//! let first = session.run(RunRequest::python("x = 41").keep_alive(true)).await?;
//! let again = session
//!     .run_with(
//!         RunRequest::python("print(x + 1)").session_id(&first.session_id),
//!         |p| println!("{} {}%", p.stage, p.percent),
//!         |text| print!("{text}"),
//!     )
//!     .await?;
//! assert_eq!(again.stdout, "42\n");
//! session.close(&first.session_id).await?;
//! # Ok(()) }
//! ```
//!
//! A [`Session`] renews, in the background, every kept-alive run session it created when
//! less than [`SessionOptions::renew_below`] of its TTL remains (S-34). Dropped without
//! [`Session::close_all`], it ends those sessions, best effort (S-40, S-41), except the ones
//! handed over with [`Session::detach`].

use crate::error::Error;
use crate::transport::http_client;
use crate::{Envelope, Sandbox};
use eventsource_stream::{EventStreamError, Eventsource};
use futures::StreamExt;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use cella_protocol::run::{
    HeldFile, Insights, OutputText, Progress, RunFile, RunRequest, RunResult as RunOutput, StageTime, Timing,
};

/// Options of a [`Session`].
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// The tenant's API key.
    pub api_key: Option<String>,
    /// The HTTP timeout of one request (a run's own deadline is separate).
    pub timeout: Duration,
    /// Renew a kept-alive session when less than this remains (default 2 minutes, S-34).
    pub renew_below: Duration,
    /// How often the renewal task looks (default 30 s).
    pub renew_every: Duration,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            api_key: None,
            timeout: Duration::from_secs(120),
            renew_below: Duration::from_secs(120),
            renew_every: Duration::from_secs(30),
        }
    }
}

struct Shared {
    http: reqwest::Client,
    base: String,
    options: SessionOptions,
    /// Kept-alive run sessions this client created → their renewal task.
    kept: Mutex<HashMap<String, tokio::task::JoinHandle<()>>>,
}

/// The high-level layer (S-30 … S-38): runs code in sessions, keeps them alive, and gives
/// access to the lower [`Sandbox`] layer.
pub struct Session {
    shared: Arc<Shared>,
}

impl Session {
    /// A client of the server at `url`, with default options.
    pub fn new(url: impl Into<String>) -> Result<Session, Error> {
        Session::with_options(url, SessionOptions::default())
    }

    /// A client of the server at `url`.
    pub fn with_options(url: impl Into<String>, options: SessionOptions) -> Result<Session, Error> {
        let url = url.into();
        let http = http_client(&url, options.timeout, options.api_key.as_deref())?;
        let base = url.trim_end_matches('/').to_string();
        Ok(Session { shared: Arc::new(Shared { http, base, options, kept: Mutex::new(HashMap::new()) }) })
    }

    /// Runs code (S-30).
    pub async fn run(&self, request: RunRequest) -> Result<RunOutput, Error> {
        let keep = request.keep_alive;
        let reply = self.request(reqwest::Method::POST, "/api/v1/run", Some(json!(request))).await?;
        let output = into_output(reply)?;
        self.track(&output, keep);
        Ok(output)
    }

    /// Runs code, calling `on_progress` for each stage and `on_stdout` with the code's
    /// output as it is written, before the run ends (S-32).
    pub async fn run_with(
        &self,
        request: RunRequest,
        mut on_progress: impl FnMut(&Progress),
        mut on_stdout: impl FnMut(&str),
    ) -> Result<RunOutput, Error> {
        let keep = request.keep_alive;
        let url = format!("{}/api/v1/run", self.shared.base);
        let response = self
            .shared
            .http
            .post(&url)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .json(&request)
            .send()
            .await
            .map_err(|e| Error::Connection { url: url.clone(), message: e.to_string() })?;
        if !response.status().is_success() {
            return Err(crate::transport::read(response).await.err().unwrap_or(Error::Protocol("no body".into())));
        }
        // A well-kept SSE parser: it keeps a multi-byte character split across two chunks
        // whole, which decoding each chunk on its own does not.
        let mut events = response.bytes_stream().eventsource();
        while let Some(event) = events.next().await {
            let event = event.map_err(|e| match e {
                EventStreamError::Transport(e) => Error::Connection { url: url.clone(), message: e.to_string() },
                other => Error::Protocol(format!("bad event stream: {other}")),
            })?;
            if event.data.is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(&event.data)
                .map_err(|e| Error::Protocol(format!("bad event {}: {e}", event.event)))?;
            match event.event.as_str() {
                "progress" => {
                    if let Ok(p) = serde_json::from_value::<Progress>(value) {
                        on_progress(&p);
                    }
                }
                "stdout" => on_stdout(value["text"].as_str().unwrap_or_default()),
                "result" => {
                    let envelope: Envelope =
                        serde_json::from_value(value).map_err(|e| Error::Protocol(format!("bad result event: {e}")))?;
                    if envelope.code != 0 {
                        return Err(Error::Api {
                            status: 200,
                            code: envelope.code,
                            message: envelope.message.clone(),
                            envelope: Some(Box::new(envelope)),
                        });
                    }
                    let output: RunOutput = serde_json::from_value(envelope.data)
                        .map_err(|e| Error::Protocol(format!("bad run result: {e}")))?;
                    self.track(&output, keep);
                    return Ok(output);
                }
                _ => {}
            }
        }
        Err(Error::Protocol("the event stream ended without a result".into()))
    }

    /// Renews a run session's TTL now (S-35); returns the session.
    pub async fn keep_alive(&self, session_id: &str) -> Result<Value, Error> {
        let path = format!("/api/v1/run/sessions/{session_id}/keep-alive");
        Ok(self.request(reqwest::Method::POST, &path, Some(json!({}))).await?["data"].take())
    }

    /// One run session: languages, `expires_at`, `expires_in_s` (S-35).
    pub async fn get_session(&self, session_id: &str) -> Result<Value, Error> {
        let path = format!("/api/v1/run/sessions/{session_id}");
        Ok(self.request(reqwest::Method::GET, &path, None).await?["data"].take())
    }

    /// The tenant's run sessions (S-35).
    pub async fn list_sessions(&self) -> Result<Vec<Value>, Error> {
        let mut reply = self.request(reqwest::Method::GET, "/api/v1/run/sessions", None).await?;
        Ok(match reply["data"]["sessions"].take() {
            Value::Array(a) => a,
            _ => Vec::new(),
        })
    }

    /// The files a session holds with their hashes (S-33).
    pub async fn files(&self, session_id: &str) -> Result<Vec<Value>, Error> {
        let path = format!("/api/v1/run/sessions/{session_id}/files");
        let mut reply = self.request(reqwest::Method::GET, &path, None).await?;
        Ok(match reply["data"]["files"].take() {
            Value::Array(a) => a,
            _ => Vec::new(),
        })
    }

    /// Ends a run session (S-35).
    pub async fn close(&self, session_id: &str) -> Result<(), Error> {
        self.untrack(session_id);
        let path = format!("/api/v1/run/sessions/{session_id}");
        self.request(reqwest::Method::DELETE, &path, None).await?;
        Ok(())
    }

    /// Ends every kept-alive session this client created.
    pub async fn close_all(&self) -> Result<(), Error> {
        let ids: Vec<String> = self.kept().keys().cloned().collect();
        for id in ids {
            self.close(&id).await?;
        }
        Ok(())
    }

    /// Stops renewing a session and leaves it to its TTL when this client is dropped.
    pub fn detach(&self, session_id: &str) {
        self.untrack(session_id);
    }

    /// The run sessions this client keeps alive.
    pub fn kept_sessions(&self) -> Vec<String> {
        self.kept().keys().cloned().collect()
    }

    /// The lower layer (S-38): a [`Sandbox`] acting as the run session's worker, to call
    /// tools such as `python:run` or `python:install` directly.
    pub async fn sandbox(&self, session_id: &str) -> Result<Sandbox, Error> {
        let mut builder = Sandbox::builder(self.shared.base.clone()).worker_id(session_id);
        if let Some(key) = &self.shared.options.api_key {
            builder = builder.api_key(key.clone());
        }
        builder.start().await
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, HashMap<String, tokio::task::JoinHandle<()>>> {
        self.shared.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn untrack(&self, session_id: &str) {
        if let Some(task) = self.kept().remove(session_id) {
            task.abort();
        }
    }

    /// Starts renewing a kept-alive session this client now holds (S-34).
    fn track(&self, output: &RunOutput, keep: bool) {
        if !keep || !output.kept_alive || self.kept().contains_key(&output.session_id) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let shared = Arc::downgrade(&self.shared);
        let id = output.session_id.clone();
        let task = runtime.spawn(async move {
            loop {
                let every = match shared.upgrade() {
                    Some(s) => s.options.renew_every,
                    None => return,
                };
                tokio::time::sleep(every).await;
                let Some(shared) = shared.upgrade() else { return };
                if !renew_if_needed(&shared, &id).await {
                    return;
                }
            }
        });
        self.kept().insert(output.session_id.clone(), task);
    }

    async fn request(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, Error> {
        request(&self.shared, method, path, body).await
    }
}

async fn request(shared: &Shared, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, Error> {
    let url = format!("{}{path}", shared.base);
    let mut builder = shared.http.request(method, &url);
    if let Some(body) = body {
        builder = builder.json(&body);
    }
    let response = builder.send().await.map_err(|e| Error::Connection { url, message: e.to_string() })?;
    crate::transport::read(response).await
}

/// Renews `id` when less than `renew_below` remains; `false` when the session is gone.
async fn renew_if_needed(shared: &Shared, id: &str) -> bool {
    let path = format!("/api/v1/run/sessions/{id}");
    let left = match request(shared, reqwest::Method::GET, &path, None).await {
        Ok(v) => v["data"]["expires_in_s"].as_f64(),
        Err(Error::Api { status: 404, .. }) => return false,
        Err(e) => {
            tracing::debug!(error = %e, session_id = id, "checking a kept-alive session failed; will retry");
            return true;
        }
    };
    if left.is_some_and(|s| s < shared.options.renew_below.as_secs_f64()) {
        let path = format!("/api/v1/run/sessions/{id}/keep-alive");
        match request(shared, reqwest::Method::POST, &path, Some(json!({}))).await {
            Ok(_) => tracing::debug!(session_id = id, "kept-alive session renewed"),
            Err(Error::Api { status: 404, .. }) => return false,
            Err(e) => tracing::debug!(error = %e, session_id = id, "renewing failed; will retry"),
        }
    }
    true
}

fn into_output(reply: Value) -> Result<RunOutput, Error> {
    let envelope: Envelope = serde_json::from_value(reply).map_err(|e| Error::Protocol(format!("run: {e}")))?;
    serde_json::from_value(envelope.data).map_err(|e| Error::Protocol(format!("run result: {e}")))
}

impl Drop for Session {
    /// Ends the kept-alive sessions this client still holds, in the background and best
    /// effort (S-40): never blocks, never panics, swallows errors (S-41).
    fn drop(&mut self) {
        let kept: Vec<(String, tokio::task::JoinHandle<()>)> = self.kept().drain().collect();
        if kept.is_empty() {
            return;
        }
        for (_, task) in &kept {
            task.abort();
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!("no async runtime: run sessions left to their TTL");
            return;
        };
        let http = self.shared.http.clone();
        let base = self.shared.base.clone();
        runtime.spawn(async move {
            for (id, _) in kept {
                if let Err(e) = http.delete(format!("{base}/api/v1/run/sessions/{id}")).send().await {
                    tracing::debug!(error = %e, session_id = %id, "ending a dropped run session failed (ignored)");
                }
            }
        });
    }
}
