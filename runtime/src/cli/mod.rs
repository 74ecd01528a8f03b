//! The subcommands of `cella`, one file each, and what they share.

pub mod build;
pub mod call;
pub mod compile;
pub mod inspect;
pub mod mcp_stdio;
pub mod new;
pub mod serve;
pub mod snapshots;

use anyhow::{Context, bail};
use cella_runtime::local::Local;
use cella_runtime::{Caller, Config, ExecOptions, Sandbox, http};
use serde_json::Value;
use std::path::PathBuf;

/// Logs to stderr at `CELLA_LOG` (default `default`), as text or JSON lines. Lines are
/// written by a thread of their own, buffered and flushed whenever its queue is empty, so no
/// request waits on a `write(2)` and a burst costs one write; none is dropped
/// (a full buffer makes the logger wait instead). Colour codes only when stderr is a
/// terminal. Keep the guard until the command ends: dropping it flushes what is queued.
#[must_use = "dropping the guard stops the log writer"]
pub(crate) fn init_logging(json: bool, default: &str) -> tracing_appender::non_blocking::WorkerGuard {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("CELLA_LOG").unwrap_or_else(|_| default.into());
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("cella-log")
        .finish(std::io::BufWriter::new(std::io::stderr()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    if json {
        builder.json().init()
    } else {
        builder.init()
    }
    guard
}

pub(crate) fn load_config(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    Ok(match path {
        Some(path) => Config::from_file(path)?,
        None => Config::default_config(),
    })
}

pub(crate) fn parse_json(text: &str, what: &str) -> anyhow::Result<Value> {
    let value: Value = serde_json::from_str(text).with_context(|| format!("{what} is not valid JSON: {text}"))?;
    if !value.is_object() {
        bail!("{what} must be a JSON object, e.g. '{{\"key\": \"x\"}}'");
    }
    Ok(value)
}
