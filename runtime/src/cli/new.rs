//! `cella new`: a backend project from a template, in any guest language.

use super::*;

pub(crate) fn new_project(name: String, lang: String, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let language: cella_build::Language = lang.parse()?;
    let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
    let guest_rust = cella_runtime::config::home::home().sdk().join("guest-rust");
    let project = cella_build::Project::create(&dir, &name, language, &guest_rust)?;
    println!("created {} backend '{}' in {}", language.name(), project.name, dir.display());
    println!("next: cd {} && cella build && cella serve --backend build/{}.wasm", dir.display(), project.name);
    Ok(())
}
