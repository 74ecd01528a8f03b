//! The `cella` command.

use anyhow::Context;
use cella_runtime::{Config, Sandbox};
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
    /// Load the backends of a configuration, warm them, and serve until Ctrl-C.
    Serve {
        /// The configuration file; the embedded default (example backends) when absent.
        #[arg(long, env = "CELLA_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("CELLA_LOG").unwrap_or_else(|_| "info".into()))
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => {
            let config = match config {
                Some(path) => Config::from_file(&path)?,
                None => Config::default_config(),
            };
            let sandbox = Sandbox::start(config).await.context("starting the sandbox")?;
            let warm = sandbox.warmup(None).await;
            tracing::info!(status = %warm.status, "backends warmed");
            tokio::signal::ctrl_c().await?;
            sandbox.shutdown().await;
        }
    }
    Ok(())
}
