//! The subcommands of `cella`, one file each, and what they share.

pub mod build;
pub mod call;
pub mod compile;
pub mod inspect;
pub mod mcp_stdio;
pub mod new;
pub mod serve;

use anyhow::{Context, bail};
use cella_runtime::local::Local;
use cella_runtime::{Caller, Config, ExecOptions, Sandbox, http};
use serde_json::Value;
use std::path::PathBuf;

pub(crate) fn init_logging(json: bool, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CELLA_LOG").unwrap_or_else(|_| default.into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json { builder.json().init() } else { builder.init() }
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
