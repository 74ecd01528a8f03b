//! `cella call`: one tool call into a component, without a server.

use super::*;

pub(crate) async fn call(
    component: PathBuf,
    tool: String,
    params: String,
    session_config: String,
    config: String,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<i32> {
    let _log = init_logging(false, "warn");
    let params = parse_json(&params, "params")?;
    let session_config = parse_json(&session_config, "--session-config")?;
    let backend_config = parse_json(&config, "--config")?;
    let local = Local::open(&component, backend_config, cache_dir.as_deref()).await?;
    let caller = Caller::new("cli");
    let needs_session = match local.sandbox.resolve_tool(&tool) {
        cella_runtime::tools::Resolved::Found(t) => t.needs_session,
        _ => false,
    };
    if needs_session {
        let created = local
            .sandbox
            .create_session(&caller, &local.name, session_config, None)
            .await
            .map_err(|r| anyhow::anyhow!("{}", r.message))?;
        if let Some(error) = created.session.error {
            bail!("initialize failed: {error}");
        }
    }
    let envelope =
        local.sandbox.execute(&caller, &tool, cella_runtime::sandbox::params(params), ExecOptions::default()).await;
    println!("{}", serde_json::to_string_pretty(&envelope)?);
    local.sandbox.shutdown().await;
    Ok(if envelope.code == 0 { 0 } else { 2 })
}
