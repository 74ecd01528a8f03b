//! `cella mcp-stdio`: MCP over stdin/stdout, one worker for the life of the process.

use super::*;

pub(crate) async fn mcp_stdio(config: Option<PathBuf>, tenant: Option<String>) -> anyhow::Result<()> {
    let _log = init_logging(false, "warn");
    let config = load_config(config.as_ref())?;
    let tenant = match tenant {
        Some(t) if !config.tenants.is_empty() && !config.tenants.contains_key(&t) => {
            let known: Vec<&String> = config.tenants.keys().collect();
            bail!("unknown tenant '{t}'; the configuration has {known:?}")
        }
        Some(t) => t,
        None if config.tenants.is_empty() => cella_runtime::tenancy::DEFAULT_TENANT.to_string(),
        None => bail!("this configuration has tenants: pass --tenant <id>"),
    };
    let sandbox = Sandbox::start(config).await.context("starting the sandbox")?;
    let warm = sandbox.warmup(None).await;
    if let Some(errors) = &warm.errors {
        tracing::warn!(?errors, "some backends failed to warm up; they will retry on first use");
    }
    cella_runtime::mcp::serve_stream(sandbox.clone(), tenant.as_str().into(), rmcp_stdio()).await?;
    sandbox.shutdown().await;
    Ok(())
}

pub(crate) fn rmcp_stdio() -> (tokio::io::Stdin, tokio::io::Stdout) {
    (tokio::io::stdin(), tokio::io::stdout())
}
