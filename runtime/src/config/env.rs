//! `${VAR}` and `${VAR:-default}` expansion, and `_comment` keys.

use crate::error::{Error, Result};
use serde_json::Value;

/// Removes keys starting with `_` (comments) from the top level, `server`, `resources` and
/// each resource entry. A component's own `config` is left alone.
pub(super) fn strip_comments(value: &mut Value) {
    fn strip(v: &mut Value) {
        if let Some(map) = v.as_object_mut() {
            map.retain(|k, _| !k.starts_with('_'));
        }
    }
    strip(value);
    if let Some(server) = value.get_mut("server") {
        strip(server);
    }
    if let Some(resources) = value.get_mut("resources") {
        strip(resources);
        if let Some(map) = resources.as_object_mut() {
            map.values_mut().for_each(strip);
        }
    }
}

/// Expands `${VAR}` and `${VAR:-default}` in every string of the document.
pub(super) fn expand_env(value: &mut Value) -> Result<()> {
    match value {
        Value::String(s) if s.contains("${") => *s = expand_str(s)?,
        Value::Array(items) => items.iter_mut().try_for_each(expand_env)?,
        Value::Object(map) => map.values_mut().try_for_each(expand_env)?,
        _ => {}
    }
    Ok(())
}

/// Expands the variables of one string from the environment. An unset variable without a
/// default is an error.
pub fn expand_str(s: &str) -> Result<String> {
    expand_with(s, &|name| std::env::var(name).ok())
}

/// Expands the variables of one string, reading each with `lookup`.
pub fn expand_with(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| Error::Config(format!("unclosed '${{' in \"{s}\"")))?;
        let expr = &after[..end];
        let (name, default) = match expr.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (expr, None),
        };
        match (lookup(name), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err(Error::Config(format!("environment variable {name} is not set (in \"{s}\")")));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
