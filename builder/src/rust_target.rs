//! The Rust standard library for `wasm32-wasip2`, added with rustup when it is missing.
//!
//! rustup adds the targets a `rust-toolchain.toml` lists only when it installs the toolchain
//! itself: on a machine that already had the pinned toolchain, the target stays missing and
//! the first guest build would stop with "can't find crate for `std`". So every Rust guest
//! build asks for the target first, and adds it for the active toolchain when it is absent.

use crate::Error;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The target every Rust guest is built for.
pub const WASM_TARGET: &str = "wasm32-wasip2";

/// Makes sure the Rust toolchain that cargo uses in `dir` has the [`WASM_TARGET`] standard
/// library, adding it with `rustup target add` when it is missing and rustup exists.
/// `lock_dir` holds the lock that keeps concurrent builds from adding it twice.
pub fn ensure_wasm_target(dir: &Path, lock_dir: &Path) -> Result<(), Error> {
    if has_target(dir)? {
        return Ok(());
    }
    let _lock = crate::tools::lock(&lock_dir.join("rustup-target"))?;
    if has_target(dir)? {
        return Ok(());
    }
    let hint =
        format!("run `rustup target add {WASM_TARGET}` for the toolchain in use, or use a toolchain that has it");
    let Ok(version) = Command::new("rustup").arg("--version").output() else {
        return Err(Error::MissingTool { tool: format!("the Rust target {WASM_TARGET}"), hint });
    };
    if !version.status.success() {
        return Err(Error::MissingTool { tool: format!("the Rust target {WASM_TARGET}"), hint });
    }
    eprintln!("cella-build: adding the Rust target {WASM_TARGET} with rustup");
    // rustup picks the toolchain as cargo did: RUSTUP_TOOLCHAIN when set, else the
    // rust-toolchain.toml above `dir`.
    let added = Command::new("rustup").current_dir(dir).args(["target", "add", WASM_TARGET]).output();
    match added {
        Ok(o) if o.status.success() && has_target(dir)? => Ok(()),
        Ok(o) => Err(Error::Failed {
            what: format!("rustup target add {WASM_TARGET}"),
            output: format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
        }),
        Err(e) => {
            Err(Error::MissingTool { tool: format!("the Rust target {WASM_TARGET}"), hint: format!("{e}; {hint}") })
        }
    }
}

/// Whether the toolchain used in `dir` has a standard library for [`WASM_TARGET`].
fn has_target(dir: &Path) -> Result<bool, Error> {
    let output = Command::new(rustc())
        .current_dir(dir)
        .args(["--print", "target-libdir", "--target", WASM_TARGET])
        .output()
        .map_err(|e| Error::MissingTool { tool: "rustc".into(), hint: format!("{e}; install Rust with rustup") })?;
    if !output.status.success() {
        // An old rustc that does not know the target at all.
        return Ok(false);
    }
    let libdir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let Ok(entries) = std::fs::read_dir(&libdir) else {
        return Ok(false);
    };
    Ok(entries.flatten().any(|e| e.file_name().to_string_lossy().starts_with("libstd-")))
}

/// The `rustc` that a cargo started from here would use: a build script's own `RUSTC` is the
/// host compiler of the same toolchain.
fn rustc() -> OsString {
    std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into())
}
