//! Builds the backend components under `components/` for `wasm32-wasip2` and records where
//! they are, so the runtime, its tests and benchmarks, and `cella serve`'s embedded default
//! configuration all use components built from this checkout (`builtin:<name>`).
//!
//! The nested cargo gets its own target directory (`target/components`) so it never waits on
//! the outer build's lock, and the outer build's RUSTFLAGS are removed: they are meant for
//! the host, not for the guests.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Rust components built here (cargo packages under `components/`).
const RUST_COMPONENTS: &[&str] = &["kv", "rag", "notebook", "faulty"];

/// The Python components built here with componentize-py: (name, folders on the module
/// path, module holding the `Guest` class).
const PYTHON_COMPONENTS: &[(&str, &[&str], &str)] =
    &[("python", &["components/python"], "app"), ("kv-python", &["components/kv-python", "sdk/guest-python"], "app")];

/// The JavaScript components built here with componentize-js: (name, entry module).
const JS_COMPONENTS: &[(&str, &str)] =
    &[("javascript", "components/javascript/app.js"), ("kv-js", "components/kv-js/app.js")];

/// The C components built here (clang, wit-bindgen-c, wit-component): (name, folder).
const C_COMPONENTS: &[(&str, &str)] = &[("kv-c", "components/kv-c")];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir.parent().expect("runtime/ lives in the repository root").to_path_buf();
    let components_dir = root.join("components");
    for watched in
        ["components", "sdk/guest-rust", "sdk/codes", "sdk/guest-python", "sdk/guest-js", "sdk/guest-c", "wit"]
    {
        rerun_if_changed_tree(&root.join(watched));
    }

    // `CELLA_PREBUILT_COMPONENTS=<dir>` uses components built earlier (for builds with a
    // toolchain that has no wasm32-wasip2 standard library, such as the fuzzing nightly).
    println!("cargo:rerun-if-env-changed=CELLA_PREBUILT_COMPONENTS");
    if let Some(dir) = env::var_os("CELLA_PREBUILT_COMPONENTS") {
        write_components(&PathBuf::from(dir), &root);
        return;
    }

    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| if t.is_absolute() { t } else { root.join(t) })
        .unwrap_or_else(|| root.join("target"))
        .join("components");

    // rustup adds rust-toolchain.toml's targets only when it installs the toolchain itself.
    if let Err(e) = cella_build::ensure_wasm_target(&components_dir, &target_dir) {
        fail(&format!("cannot build the components: {e}"));
    }
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&components_dir)
        .args(["build", "--release", "--target", cella_build::WASM_TARGET])
        .env("CARGO_TARGET_DIR", &target_dir);
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let output = cmd.output().unwrap_or_else(|e| fail(&format!("cannot run cargo to build the components: {e}")));
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        fail(&format!("building the components in {} failed:\n{stderr}", components_dir.display()));
    }

    let wasm_dir = target_dir.join("wasm32-wasip2").join("release");
    // The guest toolchains live beside the build output (`target/venvs`, `target/node-tools`).
    let tools = cella_build::Tools::new(target_dir.parent().expect("the components folder is inside target/"));
    let wit = root.join("wit");
    let fail = |name: &str, e: cella_build::Error| -> ! { fail(&format!("building the component {name} failed: {e}")) };
    for (name, paths, module) in PYTHON_COMPONENTS {
        let out = wasm_dir.join(format!("{name}.wasm"));
        let paths: Vec<PathBuf> = paths.iter().map(|p| root.join(p)).collect();
        let inputs: Vec<PathBuf> = paths.iter().cloned().chain([wit.clone()]).collect();
        if !cella_build::up_to_date(&out, &inputs) {
            let paths: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
            cella_build::build_python(&tools, &wit, &paths, module, &out).unwrap_or_else(|e| fail(name, e));
        }
    }
    for (name, entry) in JS_COMPONENTS {
        let out = wasm_dir.join(format!("{name}.wasm"));
        let entry = root.join(entry);
        let folder = entry.parent().expect("an entry module is in a folder").to_path_buf();
        if !cella_build::up_to_date(&out, &[folder, root.join("sdk/guest-js"), wit.clone()]) {
            let relative = entry.strip_prefix(&root).expect("entries are inside the repository");
            cella_build::build_javascript(&tools, &wit, &root, relative, &out).unwrap_or_else(|e| fail(name, e));
        }
    }
    for (name, folder) in C_COMPONENTS {
        let out = wasm_dir.join(format!("{name}.wasm"));
        let folder = root.join(folder);
        if !cella_build::up_to_date(&out, &[folder.clone(), root.join("sdk/guest-c"), wit.clone()]) {
            let sources = vec![folder.join("app.c")];
            let includes = vec![root.join("sdk/guest-c")];
            let work = target_dir.join("c").join(name);
            cella_build::build_c(&tools, &wit, &sources, &includes, &work, &out).unwrap_or_else(|e| fail(name, e));
        }
    }
    fill_wheelhouse(&root, &tools);
    write_components(&wasm_dir, &root);
}

/// Downloads the example wheelhouse (`examples/wheelhouse.txt`: pure-Python wheels the
/// python backend may install) into `target/wheelhouse`, once.
fn fill_wheelhouse(root: &Path, tools: &cella_build::Tools) {
    let dir = root.join("target/wheelhouse");
    let list = root.join("examples/wheelhouse.txt");
    let stamp = dir.join(".stamp");
    let want = std::fs::read_to_string(&list).unwrap_or_default();
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == want) {
        return;
    }
    std::fs::create_dir_all(&dir).expect("creating target/wheelhouse");
    let python = tools.python().unwrap_or_else(|e| fail(&format!("cannot download the example wheelhouse: {e}")));
    let output = Command::new(&python)
        .args(["-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps", "--only-binary=:all:"])
        .args(["--python-version", "3.14", "--implementation", "py", "-d"])
        .arg(&dir)
        .arg("-r")
        .arg(&list)
        .output()
        .expect("failed to run pip download");
    if !output.status.success() {
        fail(&format!("downloading the example wheelhouse failed:\n{}", String::from_utf8_lossy(&output.stderr)));
    }
    std::fs::write(&stamp, want).expect("writing the wheelhouse stamp");
}

/// Stops the build with `message` as cargo's error, without a panic's backtrace noise.
fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1)
}

/// Writes `components.rs`: the path of each component in `wasm_dir`, and the repository root.
fn write_components(wasm_dir: &Path, root: &Path) {
    let mut generated = String::from(
        "/// Components built from `components/` by `runtime/build.rs`: (name, path of the .wasm).\npub const BUILTIN_COMPONENTS: &[(&str, &str)] = &[\n",
    );
    let names = RUST_COMPONENTS
        .iter()
        .copied()
        .chain(PYTHON_COMPONENTS.iter().map(|(n, _, _)| *n))
        .chain(JS_COMPONENTS.iter().map(|(n, _)| *n))
        .chain(C_COMPONENTS.iter().map(|(n, _)| *n));
    for name in names {
        let path = wasm_dir.join(format!("{name}.wasm"));
        assert!(path.exists(), "component {name} was not built at {}", path.display());
        writeln!(generated, "    ({name:?}, {:?}),", path.display().to_string()).expect("writing to a String");
    }
    generated.push_str("];\n");
    writeln!(
        generated,
        "/// The repository root this binary was built from.\npub const REPO_ROOT: &str = {:?};",
        root.display().to_string()
    )
    .expect("writing to a String");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("components.rs");
    std::fs::write(out, generated).expect("writing components.rs");
}

/// Asks cargo to rerun this script when a file under `dir` changes (except build output).
/// Files are named one by one, never a folder: cargo scans a named folder whole, and
/// componentize-py's own interpreter writes `__pycache__` beside the Python sources while
/// this script runs, so the next build would rerun it and recompile the runtime.
fn rerun_if_changed_tree(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.file_name().is_some_and(|n| n == "target" || n == "__pycache__") {
            continue;
        }
        if path.is_dir() {
            rerun_if_changed_tree(&path);
        } else {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}
