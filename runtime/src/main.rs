//! The `cella` command: a thin layer that parses flags, builds the configuration and calls
//! the library. User errors are printed as one `error:` line (no backtrace) with exit code 1;
//! a tool that answers with an error code exits with 2.

mod cli;

use clap::{Parser, Subcommand};
use cli::build::build_project;
use cli::call::call;
use cli::compile::compile;
use cli::inspect::inspect;
use cli::mcp_stdio::mcp_stdio;
use cli::new::new_project;
use cli::serve::{ServeArgs, serve};
use cli::snapshots::{SnapshotsCommand, snapshots};
use std::path::PathBuf;

/// mimalloc instead of glibc's malloc: a request allocates and frees many small objects
/// across threads, where glibc's arenas and consolidation cost about a quarter of the
/// request path's CPU (`scripts/load.sh`, docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Serve every tool of a configuration over MCP on stdin/stdout, for desktop MCP clients
    /// that launch their servers (logs go to stderr).
    McpStdio {
        /// The configuration file; the embedded default (example backends) when absent.
        #[arg(long, env = "CELLA_CONFIG")]
        config: Option<PathBuf>,
        /// The tenant to act for (its resources and quotas apply); `default` when the
        /// configuration has no tenants.
        #[arg(long, env = "CELLA_TENANT")]
        tenant: Option<String>,
    },
    /// Show a component's manifest and tool schemas.
    Inspect {
        /// The component (.wasm).
        component: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// The compile cache directory.
        #[arg(long, env = "CELLA_CACHE_DIR")]
        cache_dir: Option<PathBuf>,
    },
    /// Run one tool of a component locally, without a server; prints the result envelope.
    Call {
        /// The component (.wasm).
        component: PathBuf,
        /// The tool, e.g. `kv:set`.
        tool: String,
        /// The parameters as a JSON object.
        #[arg(default_value = "{}")]
        params: String,
        /// The session config (JSON object) for a tool that needs a session.
        #[arg(long, default_value = "{}")]
        session_config: String,
        /// The backend config (JSON object) handed to warmup.
        #[arg(long, default_value = "{}")]
        config: String,
        /// The compile cache directory.
        #[arg(long, env = "CELLA_CACHE_DIR")]
        cache_dir: Option<PathBuf>,
    },
    /// Print the sha256 of an API key, as `tenants.<id>.keys` and `server.admin_keys` take it.
    HashKey {
        /// The key.
        key: String,
    },
    /// Scaffold a working backend project (with its sample tool, its build command and a
    /// README) in a new folder `<name>`.
    New {
        /// The backend's name: its resource type and the prefix of its tools.
        name: String,
        /// The language: rust, python, js or c.
        #[arg(long, default_value = "rust")]
        lang: String,
        /// The folder to create (default: `./<name>`).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Build a backend project (made by `cella new`) into a component, `build/<name>.wasm`,
    /// installing the language's tools on first use, and show the result.
    Build {
        /// The project folder.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Where guest toolchains are installed (componentize-py, componentize-js); default:
        /// the `target/` folder of the Cella checkout this binary was built from.
        #[arg(long, env = "CELLA_TOOLS_DIR")]
        tools_dir: Option<PathBuf>,
        /// The compile cache directory.
        #[arg(long, env = "CELLA_CACHE_DIR")]
        cache_dir: Option<PathBuf>,
    },
    /// Compile every backend of a configuration and build its warm image, filling the cache
    /// so that the next `cella serve` starts at once.
    Compile {
        /// The configuration file; the embedded default when absent.
        #[arg(long, env = "CELLA_CONFIG")]
        config: Option<PathBuf>,
    },
    /// The session snapshot store of a configuration (`server.snapshots.dir`): list, verify,
    /// delete. Works with the server stopped or running.
    Snapshots {
        /// The configuration file; the embedded default when absent.
        #[arg(long, env = "CELLA_CONFIG", global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: SnapshotsCommand,
    },
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args).await.map(|_| 0),
        Command::Inspect { component, json, cache_dir } => inspect(component, json, cache_dir).await.map(|_| 0),
        Command::Call { component, tool, params, session_config, config, cache_dir } => {
            call(component, tool, params, session_config, config, cache_dir).await
        }
        Command::McpStdio { config, tenant } => mcp_stdio(config, tenant).await.map(|_| 0),
        Command::Compile { config } => compile(config).await.map(|_| 0),
        Command::Snapshots { config, command } => snapshots(config, command).await,
        Command::New { name, lang, dir } => new_project(name, lang, dir).map(|_| 0),
        Command::Build { dir, tools_dir, cache_dir } => build_project(dir, tools_dir, cache_dir).await.map(|_| 0),
        Command::HashKey { key } => {
            println!("{}", cella_runtime::tenancy::hash_key(&key));
            Ok(0)
        }
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}
