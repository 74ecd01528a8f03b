//! The guests' own log lines (target `cella::guest`), captured in the test process, so a
//! test can see that a lifecycle hook really ran inside the component.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// A guest log line: (worker id, message).
type LogLine = (Option<String>, String);

/// Guest log lines seen by this test binary.
static LOGS: OnceLock<Mutex<Vec<LogLine>>> = OnceLock::new();

struct Capture;

#[derive(Default)]
struct Fields {
    worker: Option<String>,
    message: String,
}

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "worker_id" {
            self.worker = Some(value.to_string());
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "worker_id" => self.worker = Some(format!("{value:?}")),
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() != "cella::guest" {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        if let Some(logs) = LOGS.get() {
            logs.lock().unwrap_or_else(|e| e.into_inner()).push((fields.worker, fields.message));
        }
    }
}

/// Starts capturing guest log lines in this test binary (once; later calls do nothing).
pub fn capture_logs() {
    use tracing_subscriber::layer::SubscriberExt;
    if LOGS.set(Mutex::new(Vec::new())).is_ok() {
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Capture));
    }
}

/// Whether a guest log line satisfying `wanted` (worker id, message) appears within 20 s
/// (generous: a loaded 2-core machine can be slow, and a line that comes returns at once).
pub async fn logged(wanted: impl Fn(Option<&str>, &str) -> bool) -> bool {
    for _ in 0..1000 {
        let seen = LOGS
            .get()
            .map(|l| l.lock().unwrap_or_else(|e| e.into_inner()).iter().any(|(w, m)| wanted(w.as_deref(), m)));
        if seen == Some(true) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}
