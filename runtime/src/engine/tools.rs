//! The tool registry: every tool of every backend, and name resolution as AgentFlow does it
//! (`kv.get`, `kv_get`, `kv-get` → `kv:get`; a unique simple name resolves; an ambiguous
//! one lists its candidates).

use crate::engine::bindings::types::ToolInfo;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;

/// One tool, as the runtime knows it.
#[derive(Debug, Clone, Serialize)]
pub struct ToolSpec {
    /// The simple name (`get`).
    pub name: String,
    /// The full name with the resource type (`kv:get`).
    pub full_name: String,
    /// The resource type (`kv`).
    pub resource_type: String,
    /// Always false: every backend tool belongs to a resource type. (AgentFlow's meaning.)
    pub stateless: bool,
    /// Whether the tool runs in a session (true) or in a fresh warm instance (false).
    pub needs_session: bool,
    /// The description.
    pub description: String,
    /// The JSON Schema of the parameters.
    pub input_schema: Value,
    /// Hidden tools (description starting `[HIDDEN]`) are left out of default listings.
    #[serde(skip)]
    pub hidden: bool,
    /// The name the guest knows the tool by.
    #[serde(skip)]
    pub guest_name: String,
}

impl ToolSpec {
    /// Builds the specs of a manifest; `resource` is the config key, `guest` the name the
    /// component gives itself. Every tool must be `<guest>:<action>`.
    /// A tool is hidden when its description, or the backend's, starts with `[HIDDEN]`.
    pub fn from_manifest(
        resource: &str,
        guest: &str,
        backend_description: &str,
        tools: Vec<ToolInfo>,
    ) -> Result<Vec<ToolSpec>, String> {
        let backend_hidden = is_hidden(backend_description);
        let mut specs: Vec<ToolSpec> = Vec::with_capacity(tools.len());
        for t in tools {
            let action = t
                .name
                .strip_prefix(guest)
                .and_then(|rest| rest.strip_prefix(':'))
                .filter(|a| !a.is_empty())
                .ok_or_else(|| format!("tool '{}' is not named '{guest}:<action>'", t.name))?;
            if specs.iter().any(|s| s.name == action) {
                return Err(format!("tool '{}' is declared twice", t.name));
            }
            let input_schema = serde_json::from_str(&t.params_schema)
                .map_err(|e| format!("tool '{}' has an invalid params schema: {e}", t.name))?;
            specs.push(ToolSpec {
                name: action.to_string(),
                full_name: format!("{resource}:{action}"),
                resource_type: resource.to_string(),
                stateless: false,
                needs_session: t.needs_session,
                hidden: backend_hidden || is_hidden(&t.description),
                description: t.description.trim().to_string(),
                input_schema,
                guest_name: t.name,
            });
        }
        Ok(specs)
    }
}

fn is_hidden(description: &str) -> bool {
    description.trim_start().starts_with("[HIDDEN]")
}

/// The outcome of resolving a tool name.
#[derive(Debug)]
pub enum Resolved<'a> {
    /// The tool.
    Found(&'a ToolSpec),
    /// No such tool; carries the normalised name.
    NotFound(String),
    /// Several tools have this simple name.
    Ambiguous(Vec<String>),
}

/// Every tool of every loaded backend, in registration order.
#[derive(Debug, Default)]
pub struct ToolIndex {
    tools: Vec<ToolSpec>,
    by_full: HashMap<String, usize>,
    by_simple: HashMap<String, Vec<usize>>,
}

impl ToolIndex {
    /// Adds a backend's tools.
    pub fn add(&mut self, specs: &[ToolSpec]) {
        for spec in specs {
            let i = self.tools.len();
            self.by_full.insert(spec.full_name.clone(), i);
            self.by_simple.entry(spec.name.clone()).or_default().push(i);
            self.tools.push(spec.clone());
        }
    }

    /// Every tool, hidden ones only when asked.
    pub fn list(&self, include_hidden: bool) -> Vec<&ToolSpec> {
        self.tools.iter().filter(|t| include_hidden || !t.hidden).collect()
    }

    /// How many tools there are, hidden ones included.
    pub fn len(&self) -> usize {
        self.tools.len()
    }

    /// Whether there are no tools.
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// Resolves an `execute` action: normalisation of `.`, `_`, `-`, then the full name,
    /// then a unique simple name.
    pub fn resolve(&self, action: &str) -> Resolved<'_> {
        let action = action.trim();
        if !action.contains(':') {
            for sep in ['.', '_', '-'] {
                if let Some((prefix, rest)) = action.split_once(sep) {
                    let candidate = format!("{prefix}:{rest}");
                    if let Some(&i) = self.by_full.get(&candidate) {
                        return Resolved::Found(&self.tools[i]);
                    }
                }
            }
        }
        if let Some(&i) = self.by_full.get(action) {
            return Resolved::Found(&self.tools[i]);
        }
        if action.contains(':') {
            return Resolved::NotFound(action.to_string());
        }
        self.by_simple_name(action)
    }

    /// Resolves a name exactly (full name, then unique simple name), as the schema route does.
    pub fn resolve_exact(&self, name: &str) -> Resolved<'_> {
        if let Some(&i) = self.by_full.get(name) {
            return Resolved::Found(&self.tools[i]);
        }
        self.by_simple_name(name)
    }

    fn by_simple_name(&self, name: &str) -> Resolved<'_> {
        match self.by_simple.get(name).map(Vec::as_slice) {
            Some([i]) => Resolved::Found(&self.tools[*i]),
            Some(many) if many.len() > 1 => {
                Resolved::Ambiguous(many.iter().map(|&i| self.tools[i].full_name.clone()).collect())
            }
            _ => Resolved::NotFound(name.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(rt: &str, name: &str) -> ToolSpec {
        ToolSpec {
            name: name.into(),
            full_name: format!("{rt}:{name}"),
            resource_type: rt.into(),
            stateless: false,
            needs_session: true,
            description: String::new(),
            input_schema: Value::Null,
            hidden: false,
            guest_name: format!("{rt}:{name}"),
        }
    }

    #[test]
    fn names_normalise_and_simple_names_resolve() {
        let mut index = ToolIndex::default();
        index.add(&[spec("kv", "get"), spec("kv", "set"), spec("kv2", "get"), spec("rag", "search")]);
        for name in ["kv:get", "kv.get", "kv_get", "kv-get"] {
            assert!(matches!(index.resolve(name), Resolved::Found(t) if t.full_name == "kv:get"), "{name}");
        }
        assert!(matches!(index.resolve("search"), Resolved::Found(t) if t.full_name == "rag:search"));
        assert!(matches!(index.resolve("get"), Resolved::Ambiguous(c) if c == ["kv:get", "kv2:get"]));
        assert!(matches!(index.resolve("kv:nope"), Resolved::NotFound(n) if n == "kv:nope"));
        assert!(matches!(index.resolve_exact("kv.get"), Resolved::NotFound(_)));
    }
}
