//! The `cella` command: a thin layer that parses flags, builds the configuration and calls
//! the library.

use anyhow::Context;
use cella_runtime::{Config, Sandbox, http};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Cella: a WebAssembly-component sandbox runtime for agent tools.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve every backend of a configuration over HTTP (AgentFlow's sandbox protocol).
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The configuration file; the embedded default (example backends) when absent.
    #[arg(long, env = "CELLA_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (overrides server.host).
    #[arg(long, env = "CELLA_HOST")]
    host: Option<String>,
    /// Port to listen on (overrides server.port; 0 picks a free one).
    #[arg(long, env = "CELLA_PORT")]
    port: Option<u16>,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "CELLA_LOG_JSON")]
    log_json: bool,
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CELLA_LOG").unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json { builder.json().init() } else { builder.init() }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_json);
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default_config(),
    };
    if let Some(host) = args.host {
        config.server.host = host;
    }
    if let Some(port) = args.port {
        config.server.port = port;
    }
    let address = format!("{}:{}", config.server.host, config.server.port);
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

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args).await,
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
