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

/// The Python components built here with componentize-py: (name, folder under
/// `components/`, module holding the `Guest` class).
const PYTHON_COMPONENTS: &[(&str, &str, &str)] = &[("python", "python", "app")];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir.parent().expect("runtime/ lives in the repository root").to_path_buf();
    let components_dir = root.join("components");
    for watched in ["components", "sdk/guest-rust", "wit"] {
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

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&components_dir)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
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
    let output = cmd.output().expect("failed to run cargo to build the components");
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("wasm32-wasip2")
            && (stderr.contains("target may not be installed")
                || stderr.contains("can't find crate for `core`")
                || stderr.contains("can't find crate for `std`"))
        {
            "\nhint: the wasm32-wasip2 target is missing: run `rustup target add wasm32-wasip2` (rust-toolchain.toml normally installs it)\n"
        } else {
            ""
        };
        panic!("building the components in {} failed:\n{stderr}{hint}", components_dir.display());
    }

    let wasm_dir = target_dir.join("wasm32-wasip2").join("release");
    for (name, folder, module) in PYTHON_COMPONENTS {
        build_python(&root, &root.join("components").join(folder), module, &wasm_dir.join(format!("{name}.wasm")));
    }
    build_javascript(&root, &root.join("components/javascript"), &wasm_dir.join("javascript.wasm"));
    fill_wheelhouse(&root);
    write_components(&wasm_dir, &root);
}

/// Whether `out` is newer than every file in `inputs` (folders, not recursive).
fn up_to_date(out: &Path, inputs: &[PathBuf]) -> bool {
    let newest_input = inputs
        .iter()
        .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
        .filter_map(|e| e.metadata().ok()?.modified().ok())
        .max();
    let built = std::fs::metadata(out).and_then(|m| m.modified()).ok();
    matches!((built, newest_input), (Some(b), Some(i)) if b > i)
}

/// Builds the JavaScript component with componentize-js, installed on first use with npm
/// into `target/node-tools` (the version `components/javascript/package.json` pins).
fn build_javascript(root: &Path, source: &Path, out: &Path) {
    if up_to_date(out, &[source.to_path_buf(), root.join("wit")]) {
        return;
    }
    let package: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(source.join("package.json")).expect("reading package.json"))
            .expect("package.json is JSON");
    let version = package["dependencies"]["@bytecodealliance/componentize-js"].as_str().expect("a pinned version");
    let tools = root.join("target/node-tools");
    let cli = tools.join("node_modules/.bin/componentize-js");
    let stamp = tools.join(".componentize-js");
    if !cli.exists() || std::fs::read_to_string(&stamp).ok().as_deref() != Some(version) {
        std::fs::create_dir_all(&tools).expect("creating target/node-tools");
        let output = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix"])
            .arg(&tools)
            .arg(format!("@bytecodealliance/componentize-js@{version}"))
            .output()
            .expect("failed to run npm (needs Node.js and npm)");
        if !output.status.success() {
            panic!(
                "installing componentize-js failed (needs the npm registry):\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::fs::write(&stamp, version).expect("writing the componentize-js stamp");
    }
    let output = Command::new(&cli)
        .arg(source.join("app.js"))
        .arg("--wit")
        .arg(root.join("wit"))
        .args(["-n", "backend", "-d", "http", "-d", "fetch-event", "-o"])
        .arg(out)
        .output()
        .expect("failed to run componentize-js");
    if !output.status.success() || !out.exists() {
        let _ = std::fs::remove_file(out);
        panic!(
            "building the JavaScript component failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Downloads the example wheelhouse (`examples/wheelhouse.txt`: pure-Python wheels the
/// python backend may install) into `target/wheelhouse`, once.
fn fill_wheelhouse(root: &Path) {
    let dir = root.join("target/wheelhouse");
    let list = root.join("examples/wheelhouse.txt");
    let stamp = dir.join(".stamp");
    let want = std::fs::read_to_string(&list).unwrap_or_default();
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == want) {
        return;
    }
    std::fs::create_dir_all(&dir).expect("creating target/wheelhouse");
    let python = root.join("target/venvs/componentize-py/bin/python");
    let output = Command::new(&python)
        .args(["-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps", "--only-binary=:all:"])
        .args(["--python-version", "3.14", "--implementation", "py", "-d"])
        .arg(&dir)
        .arg("-r")
        .arg(&list)
        .output()
        .expect("failed to run pip download");
    if !output.status.success() {
        panic!("downloading the example wheelhouse failed:\n{}", String::from_utf8_lossy(&output.stderr));
    }
    std::fs::write(&stamp, want).expect("writing the wheelhouse stamp");
}

/// Builds a Python component with componentize-py, installed on first use into
/// `target/venvs/componentize-py` (pinned in `components/python/build-requirements.txt`).
/// Skipped when the .wasm is newer than every source and the WIT.
fn build_python(root: &Path, source: &Path, module: &str, out: &Path) {
    if up_to_date(out, &[source.to_path_buf(), root.join("wit")]) {
        return;
    }
    let venv = Command::new("bash")
        .arg(root.join("scripts/python-venv.sh"))
        .arg(root.join("target/venvs/componentize-py"))
        .arg(root.join("components/python/build-requirements.txt"))
        .output()
        .expect("failed to run scripts/python-venv.sh (needs bash and python3)");
    if !venv.status.success() {
        panic!(
            "installing componentize-py failed (needs python3 with venv and the PyPI registry):\n{}",
            String::from_utf8_lossy(&venv.stderr)
        );
    }
    let python = PathBuf::from(String::from_utf8_lossy(&venv.stdout).trim());
    let componentize = python.with_file_name("componentize-py");
    std::fs::create_dir_all(out.parent().expect("the output has a folder")).expect("creating the output folder");
    let output = Command::new(&componentize)
        .arg("-d")
        .arg(root.join("wit"))
        .args(["-w", "backend", "componentize", "-p"])
        .arg(source)
        .arg(module)
        .arg("-o")
        .arg(out)
        .output()
        .expect("failed to run componentize-py");
    if !output.status.success() {
        let _ = std::fs::remove_file(out);
        panic!(
            "building the Python component {} failed:\n{}",
            source.display(),
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .filter(|l| !l.trim_start().starts_with("at ")
                    && !l.trim_start().chars().next().is_some_and(|c| c.is_ascii_digit()))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// Writes `components.rs`: the path of each component in `wasm_dir`, and the repository root.
fn write_components(wasm_dir: &Path, root: &Path) {
    let mut generated = String::from(
        "/// Components built from `components/` by `runtime/build.rs`: (name, path of the .wasm).\npub const BUILTIN_COMPONENTS: &[(&str, &str)] = &[\n",
    );
    let names =
        RUST_COMPONENTS.iter().copied().chain(PYTHON_COMPONENTS.iter().map(|(n, _, _)| *n)).chain(["javascript"]);
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

/// Asks cargo to rerun this script when anything under `dir` changes (except build output).
fn rerun_if_changed_tree(dir: &Path) {
    println!("cargo:rerun-if-changed={}", dir.display());
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
