//! Test harness: configurations over the builtin components, and a capture of the guests'
//! log lines (what backends log through the host interface) to observe their hooks.

use cella_runtime::{Caller, Config, Envelope, ExecOptions, Sandbox};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use tracing_subscriber::layer::SubscriberExt;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A cache shared by the tests that do not test the cache itself.
pub fn shared_cache() -> PathBuf {
    repo_root().join("target").join("test-cache")
}

/// The base configuration: every builtin backend, small limits, the shared cache.
pub fn base_config() -> Value {
    json!({
        "server": {
            "session_ttl": 300,
            "cache_dir": shared_cache(),
            // Test servers are thrown away: their sessions are not kept for a next start.
            // Each is a node of its own: the default store (in the shared cache) also holds
            // what other tests' servers pause or keep, which no other server may bring back.
            "snapshots": {"keep_on_shutdown": false, "node": format!("test-{}", uuid::Uuid::new_v4().simple())},
            "limits": {"max_instances": 64, "memory_mb": 64, "call_timeout_s": 10}
        },
        "resources": {
            "kv": {"component": "builtin:kv"},
            "rag": {
                "component": "builtin:rag",
                "config": {"documents": ["/corpus/webassembly.md", "/corpus/wasi.md", "/corpus/bm25.md", "/corpus/sandboxing.md"]},
                "grants": {"dirs": [{"host": "examples/corpus", "guest": "/corpus"}]}
            },
            "notebook": {
                "component": "builtin:notebook",
                "config": {"glossary": {"Epoch": "A counter the host advances.", "Trap": "An abrupt end."}}
            },
            "faulty": {"component": cella_test_programs::FAULTY}
        }
    })
}

pub use cella_runtime::config::merge_json as merge;

/// The base configuration with `patch` merged in.
pub fn config_with(patch: Value) -> Config {
    let mut value = base_config();
    merge(&mut value, patch);
    Config::from_json(&value.to_string(), &repo_root()).expect("test configuration is valid")
}

/// A started sandbox over the base configuration with `patch` merged in.
pub async fn sandbox_with(patch: Value) -> Sandbox {
    capture_logs();
    Sandbox::start(config_with(patch)).await.expect("sandbox starts")
}

/// A started sandbox over the base configuration.
pub async fn sandbox() -> Sandbox {
    sandbox_with(json!({})).await
}

/// A worker with a unique name.
pub fn worker(prefix: &str) -> Caller {
    Caller::new(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()))
}

/// Runs a tool with default options.
pub async fn exec(sandbox: &Sandbox, caller: &Caller, tool: &str, params: Value) -> Envelope {
    sandbox.execute(caller, tool, cella_runtime::sandbox::params(params), ExecOptions::default()).await
}

/// Runs a tool with a deadline.
pub async fn exec_timeout(
    sandbox: &Sandbox,
    caller: &Caller,
    tool: &str,
    params: Value,
    timeout: Duration,
) -> Envelope {
    sandbox
        .execute(
            caller,
            tool,
            cella_runtime::sandbox::params(params),
            ExecOptions { timeout: Some(timeout), ..ExecOptions::default() },
        )
        .await
}

/// Asserts success and returns the data.
#[track_caller]
pub fn ok(envelope: Envelope) -> Value {
    assert_eq!(envelope.code, 0, "expected success, got {envelope:?}");
    envelope.data
}

/// One guest log line: (worker id, session id, message).
pub type LogLine = (Option<String>, Option<String>, String);

static LOGS: OnceLock<Mutex<Vec<LogLine>>> = OnceLock::new();

struct Capture;

#[derive(Default)]
struct Fields {
    worker: Option<String>,
    session: Option<String>,
    message: String,
}

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "worker_id" => self.worker = Some(value.to_string()),
            "session_id" => self.session = Some(value.to_string()),
            "message" => self.message = value.to_string(),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        match field.name() {
            "message" => self.message = text,
            "worker_id" => self.worker = Some(text),
            "session_id" => self.session = Some(text),
            "error" => self.message.push_str(&format!(" error={text}")),
            _ => {}
        }
    }
}

impl<S> tracing_subscriber::Layer<S> for Capture
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        // Ids recorded on enclosing spans count as the event's own.
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope {
                if let Some(outer) = span.extensions().get::<Fields>() {
                    fields.worker = fields.worker.or_else(|| outer.worker.clone());
                    fields.session = fields.session.or_else(|| outer.session.clone());
                }
            }
        }
        if let Some(logs) = LOGS.get() {
            logs.lock().unwrap().push((
                fields.worker,
                fields.session,
                format!("{}: {}", event.metadata().target(), fields.message),
            ));
        }
    }
}

/// Installs the log capture (once per test binary).
pub fn capture_logs() {
    if LOGS.set(Mutex::new(Vec::new())).is_ok() {
        let subscriber = tracing_subscriber::registry().with(Capture);
        let _ = tracing::subscriber::set_global_default(subscriber);
    }
}

/// The captured lines that mention `needle` (in the session id, worker id or message).
pub fn logs_matching(needle: &str) -> Vec<LogLine> {
    let logs = LOGS.get().expect("capture_logs was called").lock().unwrap();
    logs.iter()
        .filter(|(w, s, m)| w.as_deref() == Some(needle) || s.as_deref() == Some(needle) || m.contains(needle))
        .cloned()
        .collect()
}

/// Polls `cond` every 20 ms until it holds or `limit` passes; returns whether it held.
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}
