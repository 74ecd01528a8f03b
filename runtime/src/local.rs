//! One component without a server: what `cella inspect` and `cella call` use.
//!
//! The component is loaded into a sandbox of its own, as a resource named after the name the
//! component gives itself, so its tools keep their own names (`kv:get`).

use crate::config::Config;
use crate::engine::backend::Backend;
use crate::error::{Error, Result};
use crate::sandbox::Sandbox;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A component loaded on its own.
pub struct Local {
    /// The sandbox holding it.
    pub sandbox: Sandbox,
    /// Its resource name (the name it gives itself).
    pub name: String,
}

fn config_for(name: &str, component: &Path, backend_config: &Value, cache_dir: Option<&Path>) -> Result<Config> {
    // One-shot: no session is kept for a next `cella call`, nor brought back from one.
    let mut server = json!({"limits": {"max_instances": 16}, "snapshots": {"enabled": false}});
    if let Some(dir) = cache_dir {
        server["cache_dir"] = json!(dir);
    }
    let value = json!({
        "server": server,
        "resources": {name: {"component": component, "config": backend_config}}
    });
    let base: PathBuf = std::env::current_dir().map_err(|e| Error::io(".", e))?;
    Config::from_json(&value.to_string(), &base)
}

/// A resource name made from a file name: letters, digits, `_` and `-`.
fn safe_name(path: &Path) -> String {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("component");
    let name: String = stem.chars().map(|c| if crate::config::is_name_char(c) { c } else { '_' }).collect();
    // A leading `_` would make the resource a comment in the configuration.
    let name = name.trim_start_matches(['_', '-']);
    if name.is_empty() { "component".into() } else { name.to_string() }
}

impl Local {
    /// Loads `component` (compiling it, or from the cache) with `backend_config` as its
    /// backend config.
    pub async fn open(component: &Path, backend_config: Value, cache_dir: Option<&Path>) -> Result<Local> {
        if !component.exists() {
            return Err(Error::io(component, std::io::Error::new(std::io::ErrorKind::NotFound, "no such file")));
        }
        if !backend_config.is_object() {
            return Err(Error::Config("the backend config must be a JSON object".into()));
        }
        let guess = safe_name(component);
        let sandbox = Sandbox::start(config_for(&guess, component, &backend_config, cache_dir)?).await?;
        let own = sandbox.backend(&guess).map(|b| b.guest_name.clone()).unwrap_or_else(|| guess.clone());
        let usable = !own.is_empty() && !own.starts_with('_') && own.chars().all(crate::config::is_name_char);
        if own == guess || !usable {
            return Ok(Local { sandbox, name: guess });
        }
        // Reload under the component's own name so its tools keep their names (the compiled
        // component is in the cache by now).
        let sandbox = Sandbox::start(config_for(&own, component, &backend_config, cache_dir)?).await?;
        Ok(Local { sandbox, name: own })
    }

    /// The loaded backend.
    pub fn backend(&self) -> Result<&Arc<Backend>> {
        self.sandbox.backend(&self.name).ok_or_else(|| Error::load(&self.name, "the component was not loaded"))
    }

    /// The manifest as JSON: name, description, version, tools with their schemas.
    pub fn manifest(&self) -> Result<Value> {
        let b = self.backend()?;
        let tools: Vec<Value> = b
            .tools
            .iter()
            .map(|t| {
                json!({"name": t.guest_name, "description": t.description, "needs_session": t.needs_session,
                       "hidden": t.hidden, "input_schema": t.input_schema})
            })
            .collect();
        Ok(json!({
            "name": b.guest_name, "description": b.description, "version": b.version,
            "component": b.path, "sha256": b.sha256, "size_bytes": std::fs::metadata(&b.path).map(|m| m.len()).unwrap_or(0),
            "tools": tools,
        }))
    }
}
