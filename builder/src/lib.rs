//! Builds Cella backend components from Rust, Python, JavaScript and C sources.
//!
//! The library behind `cella build` and behind `runtime/build.rs`, so the repository's own
//! components and an author's project are built the same way:
//!
//! - **Rust**: `cargo build --release --target wasm32-wasip2` (the target emits a component).
//! - **Python**: componentize-py ([`COMPONENTIZE_PY`]), installed on first use with pip into
//!   a virtual environment under the tools folder.
//! - **JavaScript**: componentize-js ([`COMPONENTIZE_JS`], SpiderMonkey), installed on first
//!   use with npm under the tools folder.
//! - **C**: bindings from the WIT by the `wit-bindgen-c` crate, clang for `wasm32-wasi`
//!   (Debian's clang, lld and wasi-libc, installed with apt-get when missing and allowed), then
//!   the core module becomes a component with the `wit-component` crate and the WASI preview 1
//!   reactor adapter.
//!
//! Every tool is pinned, and installing one happens under a file lock, so concurrent builds
//! share it.

mod c;
mod error;
mod guests;
mod project;
mod rust_target;
mod tools;
pub mod wasi_python;

pub use c::{build_c, c_bindings};
pub use error::Error;
pub use guests::{Guest, build_guests, fail, nested_target_dir, watch_tree};
pub use project::{Language, Project};
pub use rust_target::{WASM_TARGET, ensure_wasm_target};
pub use tools::Tools;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The componentize-py release used for Python backends (CPython 3.14 inside).
pub const COMPONENTIZE_PY: &str = "0.25.1";
/// The componentize-js release used for JavaScript backends (SpiderMonkey inside).
pub const COMPONENTIZE_JS: &str = "0.23.0";
/// The WIT world every backend implements.
pub const WORLD: &str = "backend";

/// Builds a Python component: `module` (holding the exports) is found on `paths`.
pub fn build_python(tools: &Tools, wit: &Path, paths: &[&Path], module: &str, out: &Path) -> Result<(), Error> {
    let componentize = tools.componentize_py()?;
    create_parent(out)?;
    let mut cmd = Command::new(&componentize);
    // No __pycache__ beside the sources: a new folder there would make cargo rerun
    // `runtime/build.rs` (it watches the source trees), so the next build would recompile.
    cmd.env("PYTHONDONTWRITEBYTECODE", "1");
    cmd.arg("-d").arg(wit).args(["-w", WORLD, "componentize"]);
    for path in paths {
        cmd.arg("-p").arg(path);
    }
    cmd.arg(module).arg("-o").arg(out);
    run(cmd, "componentize-py", out, |stderr| {
        // Drop Rust backtrace frames: the Python error is what an author needs.
        stderr
            .lines()
            .filter(|l| {
                let l = l.trim_start();
                !l.starts_with("at ") && !l.chars().next().is_some_and(|c| c.is_ascii_digit())
            })
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// Builds a JavaScript component from the ES module `entry`, a path relative to `base`.
/// Relative imports are followed, but only to files under `base` (the only folder the
/// build's snapshot step can read), so `base` must hold the entry and everything it imports.
pub fn build_javascript(tools: &Tools, wit: &Path, base: &Path, entry: &Path, out: &Path) -> Result<(), Error> {
    let componentize = tools.componentize_js()?;
    create_parent(out)?;
    let absolute = |p: &Path| std::path::absolute(p).map_err(|e| Error::io(format!("resolving {}", p.display()), e));
    let (wit, out) = (absolute(wit)?, absolute(out)?);
    let mut cmd = Command::new(&componentize);
    cmd.current_dir(base)
        .arg(entry)
        .arg("--wit")
        .arg(&wit)
        .args(["-n", WORLD, "-d", "http", "-d", "fetch-event", "-o"])
        .arg(&out);
    run(cmd, "componentize-js", &out, |stderr| stderr.to_string())
}

/// Builds a Rust component: the cdylib of the cargo package in `dir`, for `wasm32-wasip2`,
/// copied to `out`. `target_dir` is cargo's target folder.
pub fn build_rust(dir: &Path, package: &str, target_dir: &Path, out: &Path) -> Result<(), Error> {
    ensure_wasm_target(dir, target_dir)?;
    guests::cargo_build(dir, &[package], target_dir)?;
    let built = target_dir.join("wasm32-wasip2/release").join(format!("{}.wasm", package.replace('-', "_")));
    create_parent(out)?;
    if built != out {
        std::fs::copy(&built, out).map_err(|e| Error::io(format!("copying {}", built.display()), e))?;
    }
    Ok(())
}

/// Whether `out` exists and is newer than every file under `inputs` (recursively, skipping
/// `target`, `build`, `node_modules` and `__pycache__` folders).
pub fn up_to_date(out: &Path, inputs: &[PathBuf]) -> bool {
    fn newest(path: &Path) -> Option<std::time::SystemTime> {
        let meta = std::fs::metadata(path).ok()?;
        if !meta.is_dir() {
            return meta.modified().ok();
        }
        std::fs::read_dir(path)
            .ok()?
            .flatten()
            .filter(|e| !matches!(e.file_name().to_str(), Some("target" | "build" | "node_modules" | "__pycache__")))
            .filter_map(|e| newest(&e.path()))
            .max()
    }
    let built = std::fs::metadata(out).and_then(|m| m.modified()).ok();
    let input = inputs.iter().filter_map(|p| newest(p)).max();
    matches!((built, input), (Some(b), Some(i)) if b > i)
}

fn create_parent(out: &Path) -> Result<(), Error> {
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
    }
    Ok(())
}

/// Runs a build tool; on failure removes any half-written `out` and reports its output.
fn run(mut cmd: Command, what: &str, out: &Path, clean: impl Fn(&str) -> String) -> Result<(), Error> {
    let output = cmd.output().map_err(|e| Error::io(format!("running {what}"), e))?;
    if !output.status.success() || !out.exists() {
        let _ = std::fs::remove_file(out);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = clean(&String::from_utf8_lossy(&output.stderr));
        return Err(Error::Failed { what: what.to_string(), output: format!("{stdout}{stderr}") });
    }
    Ok(())
}
