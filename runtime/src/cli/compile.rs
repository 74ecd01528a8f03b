//! `cella compile`: compile and warm every backend of a configuration into the cache.

use super::*;

pub(crate) async fn compile(config: Option<PathBuf>) -> anyhow::Result<()> {
    let _log = init_logging(false, "warn");
    let config = load_config(config.as_ref())?;
    let names: Vec<String> = config.resources.iter().filter(|(_, r)| r.enabled).map(|(n, _)| n.clone()).collect();
    let bar = indicatif::ProgressBar::new(names.len() as u64 * 2);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let sandbox = Sandbox::start_observed(config, &|name| {
        bar.set_message(format!("{name} loaded"));
        bar.inc(1);
    })
    .await?;
    let mut failures = Vec::new();
    for name in &names {
        bar.set_message(format!("warming {name}"));
        let outcome = sandbox.warmup(Some(std::slice::from_ref(name))).await;
        if let Some(errors) = outcome.errors {
            failures.extend(errors);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    for backend in sandbox.backends() {
        let r = backend.report();
        let image = match (r.mode, r.image) {
            ("snapshot", Some(origin)) => {
                format!("warm image {}", serde_json::to_value(origin)?.as_str().unwrap_or(""))
            }
            (mode, _) => format!("{mode}{}", r.reason.map(|x| format!(" ({x})")).unwrap_or_default()),
        };
        println!(
            "{:<12} component {:<8} {image}",
            backend.name,
            serde_json::to_value(r.component)?.as_str().unwrap_or("")
        );
    }
    println!("cache: {}", sandbox.cache_dir().display());
    if !failures.is_empty() {
        bail!("warmup failed: {failures:?}");
    }
    Ok(())
}
