//! `cella build`: build a backend project into a component, and check that it loads.

use super::inspect::inspect;
use super::*;

pub(crate) async fn build_project(
    dir: PathBuf,
    tools_dir: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let project = cella_build::Project::open(&dir)?;
    let tools = cella_build::Tools::new(tools_dir.unwrap_or_else(|| cella_runtime::config::home::home().tools()));
    eprintln!("building {} ({}) in {}", project.name, project.language.name(), dir.display());
    let started = std::time::Instant::now();
    let project_for_build = project.clone();
    let out = tokio::task::spawn_blocking(move || project_for_build.build(&tools)).await??;
    let size = std::fs::metadata(&out)?.len();
    eprintln!("built {} ({:.1} KiB) in {:.1} s", out.display(), size as f64 / 1024.0, started.elapsed().as_secs_f64());
    inspect(out, false, cache_dir).await
}
