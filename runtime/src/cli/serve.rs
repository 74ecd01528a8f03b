//! `cella serve`: serve a configuration (or single backends) over HTTP, MCP included.

use super::*;

#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    /// The configuration file; the embedded default (example backends) when absent.
    #[arg(long, env = "CELLA_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (overrides server.host).
    #[arg(long, env = "CELLA_HOST")]
    host: Option<String>,
    /// Port to listen on (overrides server.port; 0 picks a free one).
    #[arg(long, env = "CELLA_PORT")]
    port: Option<u16>,
    /// Serve these components (.wasm) instead of the configuration's resources, each under
    /// its manifest's name (repeatable); the configuration's server settings still apply.
    #[arg(long = "backend", value_name = "WASM")]
    backends: Vec<PathBuf>,
    /// A PEM certificate chain: the port then serves HTTPS as well as HTTP (overrides
    /// server.tls_cert; needs --tls-key).
    #[arg(long, env = "CELLA_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (overrides server.tls_key).
    #[arg(long, env = "CELLA_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The `host:port` handed to E2B's and Scalebox's SDKs as a sandbox's domain (overrides
    /// server.sandbox_domain; default: the Host a client used).
    #[arg(long, env = "CELLA_SANDBOX_DOMAIN", value_name = "HOST:PORT")]
    sandbox_domain: Option<String>,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "CELLA_LOG_JSON")]
    log_json: bool,
    /// Allow listening on a non-loopback address without tenants (anyone who can reach the
    /// port can then run every tool).
    #[arg(long, env = "CELLA_INSECURE_OPEN")]
    insecure_open: bool,
}

pub(crate) async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let _log = init_logging(args.log_json, "info");
    let mut config = if args.backends.is_empty() {
        load_config(args.config.as_ref())?
    } else {
        only_backends(args.config.as_ref(), &args.backends).await?
    };
    if let Some(host) = args.host {
        config.server.host = host;
    }
    if let Some(port) = args.port {
        config.server.port = port;
    }
    if let (Some(cert), Some(key)) = (args.tls_cert, args.tls_key) {
        config.server.tls_cert = Some(std::path::absolute(cert)?);
        config.server.tls_key = Some(std::path::absolute(key)?);
    }
    if let Some(domain) = args.sandbox_domain {
        config.server.sandbox_domain = Some(domain);
    }
    let home = cella_runtime::config::home::home();
    tracing::info!(home = %home.dir.display(), found = ?home.source, "cella home (builtin components, example data)");
    let address = format!("{}:{}", config.server.host, config.server.port);
    let loopback = matches!(config.server.host.as_str(), "localhost" | "::1" | "[::1]")
        || config.server.host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback());
    if config.tenants.is_empty() && !loopback && !args.insecure_open {
        bail!(
            "refusing to listen on {} without tenants: anyone who reaches it could run every tool. \
             Configure `tenants` (with keys), listen on 127.0.0.1, or pass --insecure-open",
            config.server.host
        );
    }
    let listener =
        tokio::net::TcpListener::bind(&address).await.with_context(|| format!("cannot listen on {address}"))?;
    let sandbox = Sandbox::start(config).await.context("starting the sandbox")?;
    let warm = sandbox.warmup(None).await;
    if let Some(errors) = &warm.errors {
        tracing::warn!(?errors, "some backends failed to warm up; they will retry on first use");
    }
    // Tests and scripts read this line to find a port chosen with --port 0.
    println!("cella listening on http://{}", listener.local_addr()?);
    http::serve(listener, sandbox, http::signal()).await?;
    Ok(())
}

/// The configuration's server settings with `backends` as its only resources (and no
/// tenants: this is for running a backend locally).
pub(crate) async fn only_backends(config: Option<&PathBuf>, backends: &[PathBuf]) -> anyhow::Result<Config> {
    let (text, base) = match config {
        Some(path) => (
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
            path.parent().map(PathBuf::from).unwrap_or_default(),
        ),
        None => (cella_runtime::config::DEFAULT_CONFIG.to_string(), cella_runtime::config::home::home().dir.clone()),
    };
    let mut value: Value = serde_json::from_str(&text).context("the configuration is not JSON")?;
    let cache_dir = load_config(config)?.server.cache_dir;
    let mut resources = serde_json::Map::new();
    for path in backends {
        let path = std::path::absolute(path)?;
        let local = Local::open(&path, serde_json::json!({}), cache_dir.as_deref())
            .await
            .with_context(|| format!("loading {}", path.display()))?;
        let name = local.manifest()?["name"].as_str().unwrap_or_default().to_string();
        if resources.insert(name.clone(), serde_json::json!({"component": path})).is_some() {
            bail!("two --backend components are both named '{name}'");
        }
    }
    value["resources"] = Value::Object(resources);
    if let Some(object) = value.as_object_mut() {
        object.remove("tenants");
    }
    Config::from_json(&value.to_string(), &base).context("the --backend configuration")
}
