//! `kv`: a session backend. Each session holds its own key-value map.
//!
//! The same backend is written in Python (`kv-python`), JavaScript (`kv-js`) and C (`kv-c`);
//! all four pass the conformance suite in `tests/conformance/`.
use cella_guest::prelude::*;
use std::collections::BTreeMap;

#[derive(Default)]
struct Kv {
    items: BTreeMap<String, Value>,
    /// The most keys this session may hold (session config `max_keys`); unlimited when absent.
    max_keys: Option<usize>,
    /// A name for this deployment (backend config `label`), shown in the hooks' log lines.
    label: String,
}

#[derive(Deserialize, JsonSchema)]
struct Key {
    /// The key.
    key: String,
}

#[derive(Deserialize, JsonSchema)]
struct Set {
    /// The key.
    key: String,
    /// Any JSON value.
    value: Value,
}

#[derive(Deserialize, JsonSchema)]
struct Incr {
    /// The key; a missing key counts as 0.
    key: String,
    /// How much to add (default 1).
    by: Option<i64>,
}

impl Kv {
    fn set(&mut self, p: Set) -> Result<Value, Error> {
        if self.max_keys.is_some_and(|max| self.items.len() >= max) && !self.items.contains_key(&p.key) {
            return Err(Error::business(format!("key limit reached ({} keys)", self.items.len())));
        }
        Ok(json!({"key": p.key.clone(), "previous": self.items.insert(p.key, p.value)}))
    }

    fn incr(&mut self, p: Incr) -> Result<Value, Error> {
        let current = self.items.get(&p.key).map_or(Some(0), Value::as_i64);
        let current = current.ok_or_else(|| Error::invalid_param(format!("value of '{}' is not an integer", p.key)))?;
        let value = current.checked_add(p.by.unwrap_or(1)).ok_or_else(|| Error::invalid_param("integer overflow"))?;
        self.set(Set { key: p.key.clone(), value: json!(value) })?;
        Ok(json!({"key": p.key, "value": value}))
    }
}

impl Backend for Kv {
    fn info() -> Info {
        Info::new("kv", "A key-value store per session", env!("CARGO_PKG_VERSION"))
    }

    fn tools(t: &mut Tools<Self>) {
        t.session("kv:set", "Store a JSON value under a key", Kv::set)
            .session("kv:get", "Read the value stored under a key", |kv, p: Key| match kv.items.get(&p.key) {
                Some(v) => Ok(json!({"key": p.key, "value": v})),
                None => Err(Error::not_found(format!("no such key: {}", p.key))),
            })
            .session("kv:incr", "Add `by` (default 1) to an integer value", Kv::incr)
            .session("kv:delete", "Remove a key", |kv, p: Key| {
                Ok(json!({"deleted": kv.items.remove(&p.key).is_some()}))
            })
            .session("kv:keys", "List the keys in order", |kv, _: NoParams| {
                Ok(json!({"keys": kv.items.keys().collect::<Vec<_>>()}))
            });
    }

    fn initialize(&mut self, _worker_id: &str, config: Value) -> Result<Value, Error> {
        self.max_keys = match config.get("max_keys") {
            None | Some(Value::Null) => None,
            Some(v) => {
                Some(v.as_u64().ok_or_else(|| Error::invalid_param("max_keys must be a whole number"))? as usize)
            }
        };
        cella_guest::log::info("kv session opened");
        Ok(json!({"max_keys": self.max_keys}))
    }

    fn warmup(&mut self, config: Value) -> Result<(), Error> {
        self.label = config.get("label").and_then(Value::as_str).unwrap_or_default().to_string();
        cella_guest::log::info(&format!("kv warmup {}", self.label));
        Ok(())
    }

    fn cleanup(&mut self) -> Result<(), Error> {
        cella_guest::log::info(&format!("kv session closed with {} keys", self.items.len()));
        Ok(())
    }

    fn shutdown(&mut self) {
        cella_guest::log::info(&format!("kv shutdown {}", self.label));
    }
}

cella_guest::export_backend!(Kv);
