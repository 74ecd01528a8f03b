//! The `cella` command: a thin layer that parses flags, builds the configuration and calls
//! the library. User errors are printed as one `error:` line (no backtrace) with exit code 1;
//! a tool that answers with an error code exits with 2.

use anyhow::{Context, bail};
use cella_runtime::local::Local;
use cella_runtime::{Caller, Config, ExecOptions, Sandbox, http};
use clap::{Parser, Subcommand};
use serde_json::Value;
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
    /// Serve these components (.wasm) instead of the configuration's resources, each under
    /// its manifest's name (repeatable); the configuration's server settings still apply.
    #[arg(long = "backend", value_name = "WASM")]
    backends: Vec<PathBuf>,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "CELLA_LOG_JSON")]
    log_json: bool,
    /// Allow listening on a non-loopback address without tenants (anyone who can reach the
    /// port can then run every tool).
    #[arg(long, env = "CELLA_INSECURE_OPEN")]
    insecure_open: bool,
}

fn init_logging(json: bool, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CELLA_LOG").unwrap_or_else(|_| default.into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json { builder.json().init() } else { builder.init() }
}

fn load_config(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    Ok(match path {
        Some(path) => Config::from_file(path)?,
        None => Config::default_config(),
    })
}

fn parse_json(text: &str, what: &str) -> anyhow::Result<Value> {
    let value: Value = serde_json::from_str(text).with_context(|| format!("{what} is not valid JSON: {text}"))?;
    if !value.is_object() {
        bail!("{what} must be a JSON object, e.g. '{{\"key\": \"x\"}}'");
    }
    Ok(value)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_json, "info");
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

async fn mcp_stdio(config: Option<PathBuf>, tenant: Option<String>) -> anyhow::Result<()> {
    init_logging(false, "warn");
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

fn rmcp_stdio() -> (tokio::io::Stdin, tokio::io::Stdout) {
    (tokio::io::stdin(), tokio::io::stdout())
}

/// The configuration's server settings with `backends` as its only resources (and no
/// tenants: this is for running a backend locally).
async fn only_backends(config: Option<&PathBuf>, backends: &[PathBuf]) -> anyhow::Result<Config> {
    let (text, base) = match config {
        Some(path) => (
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
            path.parent().map(PathBuf::from).unwrap_or_default(),
        ),
        None => (cella_runtime::config::DEFAULT_CONFIG.to_string(), PathBuf::from(cella_runtime::config::REPO_ROOT)),
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

fn new_project(name: String, lang: String, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let language: cella_build::Language = lang.parse()?;
    let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
    let guest_rust = std::path::Path::new(cella_runtime::config::REPO_ROOT).join("sdk/guest-rust");
    let project = cella_build::Project::create(&dir, &name, language, &guest_rust)?;
    println!("created {} backend '{}' in {}", language.name(), project.name, dir.display());
    println!("next: cd {} && cella build && cella serve --backend build/{}.wasm", dir.display(), project.name);
    Ok(())
}

async fn build_project(dir: PathBuf, tools_dir: Option<PathBuf>, cache_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let project = cella_build::Project::open(&dir)?;
    let tools = cella_build::Tools::new(
        tools_dir.unwrap_or_else(|| std::path::Path::new(cella_runtime::config::REPO_ROOT).join("target")),
    );
    eprintln!("building {} ({}) in {}", project.name, project.language.name(), dir.display());
    let started = std::time::Instant::now();
    let project_for_build = project.clone();
    let out = tokio::task::spawn_blocking(move || project_for_build.build(&tools)).await??;
    let size = std::fs::metadata(&out)?.len();
    eprintln!("built {} ({:.1} KiB) in {:.1} s", out.display(), size as f64 / 1024.0, started.elapsed().as_secs_f64());
    inspect(out, false, cache_dir).await
}

async fn inspect(component: PathBuf, json: bool, cache_dir: Option<PathBuf>) -> anyhow::Result<()> {
    init_logging(false, "warn");
    let local = Local::open(&component, serde_json::json!({}), cache_dir.as_deref()).await?;
    let manifest = local.manifest()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&manifest)?);
        return Ok(());
    }
    println!(
        "{} {} — {}",
        manifest["name"].as_str().unwrap_or(""),
        manifest["version"].as_str().unwrap_or(""),
        manifest["description"].as_str().unwrap_or("")
    );
    println!(
        "component: {} ({} bytes, sha256 {})",
        component.display(),
        manifest["size_bytes"],
        manifest["sha256"].as_str().unwrap_or("")
    );
    for tool in manifest["tools"].as_array().into_iter().flatten() {
        let kind = if tool["needs_session"] == true { "session" } else { "stateless" };
        println!(
            "\n  {}  [{kind}]{}",
            tool["name"].as_str().unwrap_or(""),
            if tool["hidden"] == true { " [hidden]" } else { "" }
        );
        println!("    {}", tool["description"].as_str().unwrap_or(""));
        let schema = &tool["input_schema"];
        let required: Vec<&str> =
            schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        for (name, prop) in schema["properties"].as_object().into_iter().flatten() {
            let ty = prop.get("type").map(|t| t.to_string().replace('"', "")).unwrap_or_else(|| "any".into());
            let req = if required.contains(&name.as_str()) { "required" } else { "optional" };
            println!("      {name}: {ty} ({req}) {}", prop["description"].as_str().unwrap_or(""));
        }
    }
    Ok(())
}

async fn call(
    component: PathBuf,
    tool: String,
    params: String,
    session_config: String,
    config: String,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<i32> {
    init_logging(false, "warn");
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
    let envelope = local.sandbox.execute(&caller, &tool, params, ExecOptions::default()).await;
    println!("{}", serde_json::to_string_pretty(&envelope)?);
    local.sandbox.shutdown().await;
    Ok(if envelope.code == 0 { 0 } else { 2 })
}

async fn compile(config: Option<PathBuf>) -> anyhow::Result<()> {
    init_logging(false, "warn");
    let config = load_config(config.as_ref())?;
    let names: Vec<String> = config.resources.iter().filter(|(_, r)| r.enabled).map(|(n, _)| n.clone()).collect();
    let bar = indicatif::ProgressBar::new(names.len() as u64 * 2);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let sandbox = Sandbox::start_observed(config, &|name| {
        bar.set_message(format!("compiling {name}"));
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
