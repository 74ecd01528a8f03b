//! Builds the test-only guests for `wasm32-wasip2` into `target/test-programs`, and writes
//! `programs.rs`: one constant per guest with the path of its `.wasm`, and
//! `foreach_program!`, which names every guest, so that a test suite can require a test per
//! guest (as wasmtime's test-programs do).

use cella_build::{Guest, fail};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Every test guest.
const GUESTS: &[Guest] = &[
    Guest::Rust { name: "faulty" },
    Guest::Python { name: "kv-python", paths: &["tests/programs/guests/kv-python", "sdk/guest-python"], module: "app" },
    Guest::JavaScript { name: "kv-js", entry: "tests/programs/guests/kv-js/app.js" },
    Guest::C { name: "kv-c", folder: "tests/programs/guests/kv-c" },
];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest.ancestors().nth(2).expect("tests/programs is two folders below the root").to_path_buf();
    for watched in [
        "tests/programs/guests",
        "sdk/guest-rust",
        "sdk/codes",
        "sdk/guest-python",
        "sdk/guest-js",
        "sdk/guest-c",
        "wit",
    ] {
        cella_build::watch_tree(&root.join(watched));
    }
    let target = cella_build::nested_target_dir(&root, "test-programs");
    let guests = root.join("tests/programs/guests");
    let wasm_dir = cella_build::build_guests(&root, &guests, GUESTS, &target)
        .unwrap_or_else(|e| fail(&format!("building the test programs failed: {e}")));
    write_programs(&wasm_dir);
}

/// A `macro_rules!` that calls `$m!` once per name.
fn foreach(out: &mut String, macro_name: &str, what: &str, idents: &[String]) {
    let calls: String = idents.iter().map(|i| format!("        $m!({i});\n")).collect();
    writeln!(
        out,
        "/// Calls `$m!` once per {what}, with its name as an identifier.\n#[macro_export]\nmacro_rules! {macro_name} {{\n    ($m:ident) => {{\n{calls}    }};\n}}"
    )
    .expect("writing to a String");
}

fn write_programs(wasm_dir: &Path) {
    let mut out = String::new();
    let mut idents = Vec::new();
    let mut conformance = Vec::new();
    for guest in GUESTS {
        let ident = guest.name().replace('-', "_");
        let path = wasm_dir.join(format!("{}.wasm", guest.name()));
        writeln!(
            out,
            "/// The `{}` test guest.\npub const {}: &str = {:?};",
            guest.name(),
            ident.to_uppercase(),
            path.display().to_string()
        )
        .expect("writing to a String");
        if guest.name().starts_with("kv-") {
            conformance.push(ident.clone());
        }
        idents.push(ident);
    }
    foreach(&mut out, "foreach_program", "test guest", &idents);
    foreach(&mut out, "foreach_conformance_program", "kv of the conformance suite", &conformance);
    let path = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("programs.rs");
    std::fs::write(path, out).unwrap_or_else(|e| fail(&format!("writing programs.rs: {e}")));
}
