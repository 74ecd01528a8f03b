//! The tool registry: typed tool functions, their JSON Schemas, and dispatch.

use crate::bindings::cella::backend::types as wit;
use crate::{Error, codes};
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Parameters of a tool that takes none (`{}`); extra fields are ignored.
#[derive(Debug, Default, serde::Deserialize, JsonSchema)]
pub struct NoParams {}

type RunFn<B> = Box<dyn Fn(&mut B, Value) -> Result<Value, Error>>;

struct Entry<B> {
    name: String,
    description: String,
    schema: Value,
    needs_session: bool,
    run: RunFn<B>,
}

/// The tools of a backend, registered in [`crate::Backend::tools`].
pub struct Tools<B> {
    entries: Vec<Entry<B>>,
}

impl<B: 'static> Tools<B> {
    pub(crate) fn new() -> Self {
        Tools { entries: Vec::new() }
    }

    /// Registers a tool that works on session state. `name` is `type:action`; the
    /// parameter type `P` gives the tool's JSON Schema and is decoded from the call's
    /// params; the result is encoded as JSON.
    pub fn session<P, R, F>(&mut self, name: &str, description: &str, f: F) -> &mut Self
    where
        P: DeserializeOwned + JsonSchema,
        R: Serialize,
        F: Fn(&mut B, P) -> Result<R, Error> + 'static,
    {
        self.add(name, description, true, f)
    }

    /// Registers a stateless tool: it runs in a fresh warm instance and sees only what
    /// `warmup` prepared.
    pub fn stateless<P, R, F>(&mut self, name: &str, description: &str, f: F) -> &mut Self
    where
        P: DeserializeOwned + JsonSchema,
        R: Serialize,
        F: Fn(&mut B, P) -> Result<R, Error> + 'static,
    {
        self.add(name, description, false, f)
    }

    fn add<P, R, F>(&mut self, name: &str, description: &str, needs_session: bool, f: F) -> &mut Self
    where
        P: DeserializeOwned + JsonSchema,
        R: Serialize,
        F: Fn(&mut B, P) -> Result<R, Error> + 'static,
    {
        let schema = serde_json::to_value(schemars::schema_for!(P)).unwrap_or(Value::Null);
        let tool = name.to_string();
        let run: RunFn<B> = Box::new(move |backend, params| {
            let params: P = serde_json::from_value(params).map_err(|e| param_error(&tool, e))?;
            let result = f(backend, params)?;
            serde_json::to_value(result).map_err(|e| Error::internal(format!("{tool}: result is not JSON: {e}")))
        });
        self.entries.push(Entry { name: name.into(), description: description.into(), schema, needs_session, run });
        self
    }

    pub(crate) fn manifest(&self) -> Vec<wit::ToolInfo> {
        self.entries
            .iter()
            .map(|e| wit::ToolInfo {
                name: e.name.clone(),
                description: e.description.clone(),
                params_schema: e.schema.to_string(),
                needs_session: e.needs_session,
            })
            .collect()
    }

    pub(crate) fn run(&self, backend: &mut B, tool: &str, params: Value) -> Result<Value, Error> {
        let Some(entry) = self.entries.iter().find(|e| e.name == tool) else {
            return Err(Error::new(codes::INVALID_REQUEST_FORMAT, format!("Tool not found: {tool}")));
        };
        (entry.run)(backend, params)
    }
}

/// Turns a decoding error into a coded parameter error: missing fields are 4003, wrong
/// types and values 4004.
fn param_error(tool: &str, e: serde_json::Error) -> Error {
    let text = e.to_string();
    let code =
        if text.starts_with("missing field") { codes::MISSING_REQUIRED_FIELD } else { codes::INVALID_PARAMETER_TYPE };
    Error::new(code, format!("invalid parameters for {tool}: {text}"))
}
