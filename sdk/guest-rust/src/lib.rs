//! Write a Cella backend in Rust.
//!
//! A backend is a type that implements [`Backend`] plus tool functions with typed
//! parameters. The SDK generates the WIT bindings, the manifest, and each tool's JSON
//! Schema (from the parameter type, with `schemars`), decodes parameters, and turns errors
//! into coded results. One instance of the type lives in each WebAssembly instance: the
//! runtime gives every session its own instance, so `&mut self` is the session's state,
//! and whatever `warmup` stored is already there when a session starts (it is part of the
//! warm image).
//!
//! ```ignore
//! use cella_guest::prelude::*;
//!
//! #[derive(Default)]
//! struct Echo;
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct SayParams { text: String }
//!
//! impl Backend for Echo {
//!     fn info() -> Info { Info::new("echo", "Says things back", env!("CARGO_PKG_VERSION")) }
//!     fn tools(tools: &mut Tools<Self>) {
//!         tools.stateless("echo:say", "Returns the text", |_, p: SayParams| Ok(json!({"text": p.text})));
//!     }
//! }
//! cella_guest::export_backend!(Echo);
//! ```
//!
//! # Layout
//! - `bindings`: the generated WIT bindings (world `cella:backend/backend`).
//! - [`Backend`], [`Tools`]: what an author implements and registers.
//! - [`Error`] and [`codes`]: coded errors that become the result envelope's code.
//! - [`log`]: structured logging through the host.
//! - [`Runner`]: the adapter from the WIT exports to a [`Backend`] (used by the macro).

use std::any::Any;
use std::cell::RefCell;
use std::marker::PhantomData;

pub use schemars;
pub use serde;
pub use serde_json;

mod error;
pub mod log;
mod tools;

pub use error::{Error, codes};
pub use tools::{NoParams, Tools};

/// Generated WIT bindings for the `backend` world. Authors rarely need these directly.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "backend",
        pub_export_macro: true,
        export_macro_name: "__export_backend_world",
        default_bindings_module: "cella_guest::bindings",
    });
}

use bindings::exports::cella::backend::guest as wit;

/// Everything an author usually needs, in one import.
pub mod prelude {
    pub use crate::{Backend, CallContext, Error, Info, NoParams, Tools, codes, context};
    pub use schemars::JsonSchema;
    pub use serde::{Deserialize, Serialize};
    pub use serde_json::{self, Value, json};
}

/// The name, description and version of a backend.
#[derive(Debug, Clone)]
pub struct Info {
    /// The backend's name, which is also its resource type (the `kv` in `kv:get`).
    pub name: String,
    /// One line saying what the backend offers.
    pub description: String,
    /// The backend's version.
    pub version: String,
}

impl Info {
    /// Builds an [`Info`]; pass `env!("CARGO_PKG_VERSION")` as the version.
    pub fn new(name: &str, description: &str, version: &str) -> Self {
        Info { name: name.into(), description: description.into(), version: version.into() }
    }
}

/// Who is calling: handed to the runtime with every tool call, read with [`context`].
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    /// The worker (agent client) that made the call.
    pub worker_id: String,
    /// The session the call runs in; `None` for a stateless call.
    pub session_id: Option<String>,
    /// A unique id for this call, also in the host's logs.
    pub trace_id: String,
}

/// A Cella backend. Implement this on a `Default` type and export it with
/// [`export_backend!`]. Every hook has a do-nothing default, so a shared backend
/// implements only `warmup`, a session backend only `initialize`/`cleanup`.
pub trait Backend: Default + 'static {
    /// The backend's name, description and version.
    fn info() -> Info;

    /// Registers the backend's tools.
    fn tools(tools: &mut Tools<Self>);

    /// Builds shared state from the backend config; runs once, in the warm image.
    fn warmup(&mut self, _config: serde_json::Value) -> Result<(), Error> {
        Ok(())
    }

    /// Starts a session; the returned JSON is shown to the caller as the session's data.
    fn initialize(&mut self, _worker_id: &str, _config: serde_json::Value) -> Result<serde_json::Value, Error> {
        Ok(serde_json::json!({}))
    }

    /// Ends the session. Errors are logged by the host, never raised.
    fn cleanup(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// Frees global resources at server shutdown.
    fn shutdown(&mut self) {}
}

thread_local! {
    /// The backend value of this instance (a `Box<B>`), created on first use.
    static STATE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
    /// The tool registry of this instance (a `Box<Tools<B>>`), built on first use.
    static TOOLS: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
    /// The context of the call in progress.
    static CONTEXT: RefCell<CallContext> = RefCell::new(CallContext::default());
}

/// The context of the tool call in progress (worker, session and trace ids).
pub fn context() -> CallContext {
    CONTEXT.with(|c| c.borrow().clone())
}

fn with_backend<B: Backend, R>(f: impl FnOnce(&mut B) -> R) -> R {
    STATE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let state = slot.get_or_insert_with(|| Box::new(B::default()));
        let backend = state.downcast_mut::<B>().expect("one backend type per component");
        f(backend)
    })
}

fn with_tools<B: Backend, R>(f: impl FnOnce(&Tools<B>) -> R) -> R {
    TOOLS.with(|cell| {
        let mut slot = cell.borrow_mut();
        let tools = slot.get_or_insert_with(|| {
            let mut tools = Tools::<B>::new();
            B::tools(&mut tools);
            Box::new(tools)
        });
        f(tools.downcast_ref::<Tools<B>>().expect("one backend type per component"))
    })
}

fn parse_json(text: &str, what: &str) -> Result<serde_json::Value, Error> {
    if text.trim().is_empty() {
        return Ok(serde_json::Value::Object(Default::default()));
    }
    serde_json::from_str(text).map_err(|e| Error::new(codes::INVALID_INPUT, format!("{what} is not valid JSON: {e}")))
}

/// The adapter from the WIT exports to a [`Backend`]. Used by [`export_backend!`].
#[doc(hidden)]
pub struct Runner<B>(PhantomData<B>);

impl<B: Backend> wit::Guest for Runner<B> {
    fn describe() -> wit::Manifest {
        let info = B::info();
        let tools = with_tools::<B, _>(|t| t.manifest());
        wit::Manifest { name: info.name, description: info.description, version: info.version, tools }
    }

    fn warmup(backend_config: String) -> Result<(), wit::Error> {
        let config = parse_json(&backend_config, "backend config").map_err(Error::into_wit)?;
        with_tools::<B, _>(|_| ());
        with_backend::<B, _>(|b| b.warmup(config)).map_err(Error::into_wit)
    }

    fn shutdown() {
        with_backend::<B, _>(|b| b.shutdown());
    }

    fn initialize(worker_id: String, session_config: String) -> Result<String, wit::Error> {
        let config = parse_json(&session_config, "session config").map_err(Error::into_wit)?;
        let data = with_backend::<B, _>(|b| b.initialize(&worker_id, config)).map_err(Error::into_wit)?;
        Ok(data.to_string())
    }

    fn cleanup() -> Result<(), wit::Error> {
        with_backend::<B, _>(|b| b.cleanup()).map_err(Error::into_wit)
    }

    fn call(tool: String, params: String, context: wit::CallContext) -> Result<String, wit::Error> {
        CONTEXT.with(|c| {
            *c.borrow_mut() =
                CallContext { worker_id: context.worker_id, session_id: context.session_id, trace_id: context.trace_id }
        });
        let params = parse_json(&params, "params").map_err(Error::into_wit)?;
        let result = with_tools::<B, _>(|tools| with_backend::<B, _>(|b| tools.run(b, &tool, params)));
        result.map(|v| v.to_string()).map_err(Error::into_wit)
    }
}

/// Exports a [`Backend`] type as the component's implementation of the `backend` world.
///
/// ```ignore
/// cella_guest::export_backend!(MyBackend);
/// ```
#[macro_export]
macro_rules! export_backend {
    ($ty:ty) => {
        #[doc(hidden)]
        type __CellaRunner = $crate::Runner<$ty>;
        $crate::bindings::__export_backend_world!(__CellaRunner with_types_in $crate::bindings);
    };
}
