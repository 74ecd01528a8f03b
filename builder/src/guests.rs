//! Building a set of guests from a build script: the product's components
//! (`runtime/build.rs`) and the test programs (`tests/programs/build.rs`) list their guests
//! and call [`build_guests`], so both build the same way.

use crate::{Error, Tools};
use std::path::{Path, PathBuf};
use std::process::Command;

/// One guest to build into `<name>.wasm`. Paths are relative to the repository root.
#[derive(Debug, Clone, Copy)]
pub enum Guest {
    /// A cargo package of the Rust guests' workspace.
    Rust {
        /// The package (and component) name.
        name: &'static str,
    },
    /// componentize-py: the folders on the module path and the module holding `Guest`.
    Python {
        /// The component name.
        name: &'static str,
        /// Folders on the module path.
        paths: &'static [&'static str],
        /// The module holding the `Guest` class.
        module: &'static str,
    },
    /// componentize-js: the entry module.
    JavaScript {
        /// The component name.
        name: &'static str,
        /// The entry module.
        entry: &'static str,
    },
    /// clang, wit-bindgen-c and wit-component: the folder holding `app.c`.
    C {
        /// The component name.
        name: &'static str,
        /// The folder holding `app.c`.
        folder: &'static str,
    },
}

impl Guest {
    /// The component's name.
    pub fn name(&self) -> &'static str {
        match self {
            Guest::Rust { name }
            | Guest::Python { name, .. }
            | Guest::JavaScript { name, .. }
            | Guest::C { name, .. } => name,
        }
    }
}

/// Builds `guests` into `<target_dir>/wasm32-wasip2/release/<name>.wasm` and returns that
/// folder. Rust guests are the packages of the cargo workspace `rust_workspace`, built in one
/// cargo run; the others are rebuilt only when a source is newer than their output. The
/// guest toolchains live beside `target_dir` (`venvs`, `node-tools`).
pub fn build_guests(root: &Path, rust_workspace: &Path, guests: &[Guest], target_dir: &Path) -> Result<PathBuf, Error> {
    crate::ensure_wasm_target(rust_workspace, target_dir)?;
    let rust: Vec<&str> = guests.iter().filter(|g| matches!(g, Guest::Rust { .. })).map(Guest::name).collect();
    if !rust.is_empty() {
        cargo_build(rust_workspace, &rust, target_dir)?;
    }
    let wasm_dir = target_dir.join("wasm32-wasip2").join("release");
    let tools = Tools::new(target_dir.parent().unwrap_or(target_dir));
    let wit = root.join("wit");
    for guest in guests {
        let out = wasm_dir.join(format!("{}.wasm", guest.name()));
        match *guest {
            Guest::Rust { .. } => {}
            Guest::Python { paths, module, .. } => {
                let paths: Vec<PathBuf> = paths.iter().map(|p| root.join(p)).collect();
                let inputs: Vec<PathBuf> = paths.iter().cloned().chain([wit.clone()]).collect();
                if !crate::up_to_date(&out, &inputs) {
                    let paths: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
                    crate::build_python(&tools, &wit, &paths, module, &out)?;
                }
            }
            Guest::JavaScript { entry, .. } => {
                let folder = root.join(entry).parent().map(Path::to_path_buf).unwrap_or_else(|| root.to_path_buf());
                if !crate::up_to_date(&out, &[folder, root.join("sdk/guest-js"), wit.clone()]) {
                    crate::build_javascript(&tools, &wit, root, Path::new(entry), &out)?;
                }
            }
            Guest::C { name, folder } => {
                let folder = root.join(folder);
                if !crate::up_to_date(&out, &[folder.clone(), root.join("sdk/guest-c"), wit.clone()]) {
                    let (sources, includes) = (vec![folder.join("app.c")], vec![root.join("sdk/guest-c")]);
                    let work = target_dir.join("c").join(name);
                    crate::build_c(&tools, &wit, &sources, &includes, &work, &out)?;
                }
            }
        }
        if !out.exists() {
            return Err(Error::Failed { what: format!("building {}", guest.name()), output: "no output".into() });
        }
    }
    Ok(wasm_dir)
}

/// One `cargo build` of the Rust guests, without the outer build's host flags.
pub(crate) fn cargo_build(workspace: &Path, packages: &[&str], target_dir: &Path) -> Result<(), Error> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args(["build", "--release", "--target", crate::WASM_TARGET])
        .args(packages.iter().flat_map(|p| ["-p", p]))
        .env("CARGO_TARGET_DIR", target_dir);
    // The outer build's flags are meant for the host, not for the guests.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let output = cmd
        .output()
        .map_err(|e| Error::MissingTool { tool: "cargo".into(), hint: format!("{e}; install Rust with rustup") })?;
    if !output.status.success() {
        let what = format!("cargo build of {} in {}", packages.join(", "), workspace.display());
        return Err(Error::Failed { what, output: String::from_utf8_lossy(&output.stderr).to_string() });
    }
    Ok(())
}

/// Asks cargo to rerun the calling build script when a file under `dir` changes (except
/// build output). Files are named one by one, never a folder: cargo scans a named folder
/// whole, and componentize-py's interpreter writes `__pycache__` beside the Python sources
/// while the script runs, so the next build would rerun it and recompile its crate.
pub fn watch_tree(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.file_name().is_some_and(|n| n == "target" || n == "__pycache__") {
            continue;
        }
        if path.is_dir() {
            watch_tree(&path);
        } else {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

/// The target folder of a build script's nested builds: `<CARGO_TARGET_DIR or
/// root/target>/<name>`.
pub fn nested_target_dir(root: &Path, name: &str) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| if t.is_absolute() { t } else { root.join(t) })
        .unwrap_or_else(|| root.join("target"))
        .join(name)
}

/// Stops a build script with `message` as cargo's error, without a panic's backtrace.
pub fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1)
}
