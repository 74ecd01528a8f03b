//! C backends: bindings by `wit-bindgen-c`, clang for `wasm32-wasi`, then `wit-component`
//! with the WASI preview 1 reactor adapter. No binary besides clang is installed.

use crate::{Error, Tools, WORLD};
use std::path::{Path, PathBuf};
use std::process::Command;
use wit_bindgen_core::wit_parser::Resolve;

/// Writes the C bindings of the `backend` world of the WIT folder `wit` into `out_dir`:
/// `backend.h`, `backend.c` and `backend_component_type.o` (the component type, linked in).
pub fn c_bindings(wit: &Path, out_dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut resolve = Resolve::default();
    let (package, _) =
        resolve.push_path(wit).map_err(|e| Error::Project(format!("reading the WIT in {}: {e:#}", wit.display())))?;
    let world = resolve
        .select_world(&[package], Some(WORLD))
        .map_err(|e| Error::Project(format!("the WIT has no world `{WORLD}`: {e:#}")))?;
    let mut files = wit_bindgen_core::Files::default();
    wit_bindgen_c::Opts::default()
        .build()
        .generate(&mut resolve, world, &mut files)
        .map_err(|e| Error::Failed { what: "generating the C bindings".into(), output: format!("{e:#}") })?;
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(format!("creating {}", out_dir.display()), e))?;
    let mut written = Vec::new();
    for (name, contents) in files.iter() {
        let path = out_dir.join(name);
        // Unchanged files keep their time stamps, so builds that check them stay incremental.
        if std::fs::read(&path).ok().as_deref() != Some(contents) {
            std::fs::write(&path, contents).map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        }
        written.push(path);
    }
    Ok(written)
}

/// Builds a C component from `sources` (with `includes` on the include path) into `out`;
/// intermediate files go to `work_dir`.
pub fn build_c(
    tools: &Tools,
    wit: &Path,
    sources: &[PathBuf],
    includes: &[PathBuf],
    work_dir: &Path,
    out: &Path,
) -> Result<(), Error> {
    let clang = tools.clang()?;
    let bindings = work_dir.join("bindings");
    let generated = c_bindings(wit, &bindings)?;
    let core = work_dir.join("core.wasm");
    let mut cmd = Command::new(clang);
    cmd.args(["--target=wasm32-wasi", "-mexec-model=reactor", "-O2", "-Wall", "-Wno-unused-function"])
        .arg("-I")
        .arg(&bindings);
    for include in includes {
        cmd.arg("-I").arg(include);
    }
    cmd.args(sources);
    cmd.args(generated.iter().filter(|p| p.extension().is_some_and(|e| e == "c" || e == "o")));
    cmd.arg("-o").arg(&core);
    let output = cmd.output().map_err(|e| Error::io("running clang", e))?;
    if !output.status.success() {
        return Err(Error::Failed {
            what: "clang".into(),
            output: format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)),
        });
    }
    let module = std::fs::read(&core).map_err(|e| Error::io(format!("reading {}", core.display()), e))?;
    let component = reactor_component(&module)?;
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
    }
    std::fs::write(out, component).map_err(|e| Error::io(format!("writing {}", out.display()), e))
}

/// Makes a component of a WASI preview 1 reactor `module` (its WIT world embedded) with
/// wit-component and the preview 1 reactor adapter.
pub(crate) fn reactor_component(module: &[u8]) -> Result<Vec<u8>, Error> {
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(module)
        .and_then(|e| {
            e.adapter(
                wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
                wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
            )
        })
        .and_then(|e| e.encode())
        .map_err(|e| Error::Failed { what: "making the component (wit-component)".into(), output: format!("{e:#}") })
}
