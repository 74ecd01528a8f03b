//! Code contexts and cells: each context is one interpreter session (Python or JavaScript)
//! with its own namespace; a cell runs in one, streaming its output as it is written.
//!
//! Cells may install packages the way notebooks do: `pip install six`, `%pip install six`
//! or `!pip install six` lines (what Scalebox sends for `packages`, and what IPython users
//! type) install from the operator's wheelhouse into that context, once. Other shell lines
//! get a clear error: there is no shell inside a component.

use super::{Sandboxes, Sbx, SbxError};
use crate::engine::host::{Output, OutputSink};
use crate::sandbox::session::Caller;
use crate::sandbox::{CreateStatus, ExecOptions, Extras, Mount, params};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The interpreters a context can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// CPython (the `python` backend).
    Python,
    /// SpiderMonkey (the `javascript` backend).
    JavaScript,
}

impl Language {
    /// The language a client names; Python when it names none.
    pub fn parse(name: Option<&str>) -> Result<Language, SbxError> {
        match name.map(|n| n.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("python") | Some("python3") | Some("py") => Ok(Language::Python),
            Some("javascript") | Some("js") | Some("node") | Some("nodejs") => Ok(Language::JavaScript),
            Some(other) => Err(SbxError::Invalid(format!(
                "language '{other}' is not offered; Cella sandboxes run python and javascript"
            ))),
        }
    }

    /// The name clients see.
    pub fn name(self) -> &'static str {
        match self {
            Language::Python => "python",
            Language::JavaScript => "javascript",
        }
    }
}

/// The worker of context `id`'s session in sandbox `sbx_id`.
pub(super) fn worker_in(sbx_id: &str, id: &str) -> String {
    format!("sbx-{sbx_id}-{}", id.get(..8).unwrap_or(id))
}

/// One code context.
pub struct Context {
    /// Its id.
    pub id: String,
    /// Its interpreter.
    pub language: Language,
    /// Its working directory.
    pub cwd: String,
    /// Whether it is the sandbox's default context of its language.
    pub default: bool,
    /// The worker its session belongs to.
    pub(super) caller: Caller,
    executions: AtomicU32,
}

/// A cell's error, as notebooks report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellError {
    /// The exception's type, e.g. `ZeroDivisionError`.
    pub name: String,
    /// Its message.
    pub value: String,
    /// The formatted traceback.
    pub traceback: String,
}

/// What a cell did.
#[derive(Debug, Clone, Default)]
pub struct CellResult {
    /// Everything it printed.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
    /// The repr of its last expression, when it had one that was not `None`.
    pub result: Option<String>,
    /// Its error.
    pub error: Option<CellError>,
    /// Its rich results, in order (figures the cell showed, then its last value), each a
    /// map of formats (`text`, `html`, `png` in base64, `chart`, …) with `is_main_result`;
    /// empty from an interpreter that gives only `result`.
    pub results: Vec<Value>,
    /// Cells run in its context so far, this one included.
    pub execution_count: u32,
}

fn error(name: &str, value: String) -> CellError {
    CellError { name: name.into(), traceback: format!("{name}: {value}"), value }
}

/// A cell's install lines and the code left to run.
struct Parsed {
    packages: Vec<String>,
    code: String,
    refused: Option<CellError>,
}

/// Splits a cell into its package installs and its code. Only the lines before the first
/// line of code count (a string further down that starts with `!` stays as it is); they
/// become blank, so line numbers in tracebacks stay right.
fn parse_cell(language: Language, code: &str) -> Parsed {
    let mut parsed = Parsed { packages: Vec::new(), code: String::with_capacity(code.len()), refused: None };
    let mut in_code = false;
    for line in code.lines() {
        let t = line.trim();
        if in_code || !(t.is_empty() || t.starts_with(['%', '!', '#']) || t.starts_with("pip") || t.starts_with("npm"))
        {
            in_code = true;
            parsed.code.push_str(line);
            parsed.code.push('\n');
            continue;
        }
        let bare = t.trim_start_matches(['%', '!']).trim_start();
        let words: Vec<&str> = bare.split_whitespace().collect();
        let install =
            matches!(words.as_slice(), ["pip" | "pip3" | "npm" | "yarn" | "pnpm", "install" | "i" | "add", ..]);
        let shell = t.starts_with('!') || (language == Language::Python && t.starts_with('%'));
        if install {
            let tool = words[0];
            let wanted = if tool.starts_with("pip") { Language::Python } else { Language::JavaScript };
            if wanted != language || language == Language::JavaScript {
                parsed.refused.get_or_insert_with(|| package_refusal(language, tool));
                continue;
            }
            for arg in &words[2..] {
                match *arg {
                    "-q" | "--quiet" | "-U" | "--upgrade" | "--no-deps" | "--user" | "--no-cache-dir" => {}
                    a if a.starts_with('-') => {
                        parsed.refused.get_or_insert_with(|| {
                            error("PackageInstallError", format!("pip option '{a}' is not offered; name the packages"))
                        });
                    }
                    a => parsed.packages.push(a.to_string()),
                }
            }
            parsed.code.push('\n');
        } else if shell {
            parsed.refused.get_or_insert_with(|| {
                error(
                    "ShellUnavailable",
                    format!(
                        "'{t}': there is no shell inside a Cella sandbox; cells run {} code, and \
                         '%pip install NAME' installs packages from the server's wheelhouse",
                        language.name()
                    ),
                )
            });
            parsed.code.push('\n');
        } else {
            in_code = !t.is_empty() && !t.starts_with('#');
            parsed.code.push_str(line);
            parsed.code.push('\n');
        }
    }
    parsed
}

fn package_refusal(language: Language, tool: &str) -> CellError {
    let value = match language {
        Language::JavaScript => format!(
            "'{tool} install' is not offered: the JavaScript interpreter is SpiderMonkey without npm or a \
             module loader; its standard library is what JavaScript offers"
        ),
        Language::Python => format!("'{tool} install' installs JavaScript packages; this is a python context"),
    };
    error("PackageInstallError", value)
}

impl Context {
    /// The same context (id, language, working directory) in another sandbox, whose
    /// session belongs to `caller`.
    pub(super) fn copy_for(&self, caller: Caller) -> Context {
        Context {
            id: self.id.clone(),
            language: self.language,
            cwd: self.cwd.clone(),
            default: self.default,
            caller,
            executions: AtomicU32::new(self.executions.load(Ordering::Acquire)),
        }
    }

    /// A context brought back from a sandbox snapshot, its session belonging to `caller`.
    pub(super) fn restored(id: String, language: Language, cwd: String, default: bool, caller: Caller) -> Context {
        Context { id, language, cwd, default, caller, executions: AtomicU32::new(0) }
    }

    /// The worker of this context's session in sandbox `sbx_id`.
    pub(super) fn worker_in(&self, sbx_id: &str) -> String {
        worker_in(sbx_id, &self.id)
    }
}

impl Sandboxes {
    /// What a context's session is made with in `sbx`: a TTL past any sandbox timeout (the
    /// sandbox ends it) and the sandbox's files mounted at its home.
    pub(super) fn context_extras(&self, sbx: &Sbx) -> Extras {
        Extras {
            ttl: Some(Duration::from_secs(self.inner.config.max_timeout_s + 60)),
            mount: Some(Mount { host: sbx.files.host.clone(), guest: sbx.files.home.clone() }),
            ..Extras::default()
        }
    }

    /// Starts a context's interpreter session (a no-op when it runs).
    async fn start(&self, sbx: &Sbx, ctx: &Context) -> Result<(), SbxError> {
        let backend = ctx.language.name();
        let config = match ctx.language {
            Language::Python => json!({"workdir": ctx.cwd}),
            Language::JavaScript => json!({}),
        };
        let extras = self.context_extras(sbx);
        let created = self
            .sandbox
            .create_session_with(&ctx.caller, backend, config, None, extras)
            .await
            .map_err(|r| SbxError::Refused { code: r.code, message: r.message })?;
        if created.status == CreateStatus::Created && ctx.language == Language::Python {
            let packages = sbx.packages().clone();
            if !packages.is_empty() {
                let _ = self.install(ctx, &packages, None).await;
            }
        }
        if created.status == CreateStatus::Failed {
            self.sandbox.retire(&ctx.caller).await;
            let reason = created.session.error.unwrap_or_default();
            return Err(SbxError::Refused {
                code: crate::codes::RESOURCE_NOT_INITIALIZED,
                message: format!("the {backend} interpreter failed to start: {reason}"),
            });
        }
        Ok(())
    }

    /// Creates a context in `sbx` and starts its interpreter.
    pub async fn create_context(
        &self,
        sbx: &Sbx,
        language: Language,
        cwd: Option<&str>,
    ) -> Result<Arc<Context>, SbxError> {
        self.add_context(sbx, language, cwd, false).await
    }

    /// A context for one command (not listed among the sandbox's contexts by SDKs that list
    /// them only while it lives); the caller removes it.
    pub(super) async fn scratch_context(
        &self,
        sbx: &Sbx,
        language: Language,
        cwd: &str,
    ) -> Result<Arc<Context>, SbxError> {
        self.add_context(sbx, language, Some(cwd), false).await
    }

    async fn add_context(
        &self,
        sbx: &Sbx,
        language: Language,
        cwd: Option<&str>,
        default: bool,
    ) -> Result<Arc<Context>, SbxError> {
        let cwd = cwd.filter(|c| !c.is_empty()).unwrap_or(&sbx.files.home).to_string();
        let id = uuid::Uuid::new_v4().to_string();
        let worker_id = worker_in(&sbx.id, &id);
        let caller = Caller { tenant: sbx.tenant.clone(), worker_id };
        let ctx = Arc::new(Context { id, language, cwd, default, caller, executions: AtomicU32::new(0) });
        self.start(sbx, &ctx).await?;
        if sbx.ended() {
            self.sandbox.retire(&ctx.caller).await;
            return Err(SbxError::NotFound(format!("sandbox '{}' ended", sbx.id)));
        }
        sbx.contexts().push(ctx.clone());
        Ok(ctx)
    }

    /// The sandbox's contexts, oldest first.
    pub fn contexts(&self, sbx: &Sbx) -> Vec<Arc<Context>> {
        sbx.contexts().clone()
    }

    /// One context of the sandbox.
    pub fn context(&self, sbx: &Sbx, id: &str) -> Result<Arc<Context>, SbxError> {
        sbx.contexts()
            .iter()
            .find(|c| c.id == id)
            .cloned()
            .ok_or_else(|| SbxError::NotFound(format!("context '{id}' not found in sandbox '{}'", sbx.id)))
    }

    /// The sandbox's default context of `language`, made on first use.
    pub async fn default_context(&self, sbx: &Sbx, language: Language) -> Result<Arc<Context>, SbxError> {
        let found = sbx.contexts().iter().find(|c| c.default && c.language == language).cloned();
        match found {
            Some(ctx) => Ok(ctx),
            None => self.add_context(sbx, language, None, true).await,
        }
    }

    /// Restarts a context: its namespace is emptied (a new interpreter session).
    pub async fn restart_context(&self, sbx: &Sbx, id: &str) -> Result<(), SbxError> {
        let ctx = self.context(sbx, id)?;
        self.sandbox.retire(&ctx.caller).await;
        ctx.executions.store(0, Ordering::Release);
        self.start(sbx, &ctx).await
    }

    /// Removes a context and ends its interpreter.
    pub async fn remove_context(&self, sbx: &Sbx, id: &str) -> Result<(), SbxError> {
        let ctx = {
            let mut all = sbx.contexts();
            let at = all.iter().position(|c| c.id == id);
            at.map(|i| all.remove(i))
        };
        let ctx = ctx.ok_or_else(|| SbxError::NotFound(format!("context '{id}' not found in sandbox '{}'", sbx.id)))?;
        self.sandbox.retire(&ctx.caller).await;
        Ok(())
    }

    /// Runs a cell in `ctx`; `output` receives stdout and stderr as the code writes them.
    /// A cell that faults (deadline, memory, trap) reports it as its error, and the context
    /// starts afresh on its next cell.
    pub async fn run(
        &self,
        sbx: &Sbx,
        ctx: &Context,
        code: &str,
        env: &std::collections::BTreeMap<String, String>,
        output: Option<OutputSink>,
    ) -> Result<CellResult, SbxError> {
        if sbx.ended() {
            return Err(SbxError::NotFound(format!("sandbox '{}' ended", sbx.id)));
        }
        if sbx.paused() {
            // Code sent to a paused sandbox resumes it (E2B's auto-resume).
            self.resume(sbx, None).await?;
        }
        self.start(sbx, ctx).await?;
        let count = ctx.executions.fetch_add(1, Ordering::AcqRel) + 1;
        let mut cell = CellResult { execution_count: count, ..CellResult::default() };
        let parsed = parse_cell(ctx.language, code);
        if let Some(refused) = parsed.refused {
            cell.error = Some(refused);
            return Ok(cell);
        }
        if !parsed.packages.is_empty() {
            match self.install(ctx, &parsed.packages, output.as_ref()).await {
                Ok(text) => cell.stdout.push_str(&text),
                Err(e) => {
                    cell.error = Some(e);
                    return Ok(cell);
                }
            }
            if parsed.code.trim().is_empty() {
                return Ok(cell);
            }
        }
        let mut vars = sbx.env.clone();
        vars.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
        let args = match ctx.language {
            Language::Python => json!({"code": parsed.code, "env": vars}),
            Language::JavaScript => json!({"code": parsed.code}),
        };
        let tool = format!("{}:run", ctx.language.name());
        let options = ExecOptions { output, ..ExecOptions::default() };
        let envelope = self.sandbox.execute(&ctx.caller, &tool, params(args), options).await;
        if !envelope.is_success() {
            // A fault ends the interpreter: say so, and let the next cell start a fresh one.
            let ended = self.sandbox.list_sessions(&ctx.caller).iter().any(|s| s.status == "error");
            let mut value = envelope.message.clone();
            if ended {
                self.sandbox.retire(&ctx.caller).await;
                value.push_str("; the context's state was lost, and its next cell starts afresh");
            }
            cell.error = Some(error(fault_name(envelope.code), value));
            return Ok(cell);
        }
        let data = &envelope.data;
        let text = |key: &str| data[key].as_str().unwrap_or_default().to_string();
        cell.stdout.push_str(&text("stdout"));
        cell.stderr = text("stderr");
        cell.result = data["result"].as_str().map(str::to_string);
        cell.results = data["results"].as_array().cloned().unwrap_or_default();
        cell.error = data.get("error").filter(|e| e.is_object()).map(|e| CellError {
            name: e["name"].as_str().unwrap_or("Error").to_string(),
            value: e["value"].as_str().unwrap_or_default().to_string(),
            traceback: e["traceback"].as_str().unwrap_or_default().to_string(),
        });
        Ok(cell)
    }

    /// Installs wheels into a Python context; answers pip's kind of report.
    pub(super) async fn install(
        &self,
        ctx: &Context,
        packages: &[String],
        output: Option<&OutputSink>,
    ) -> Result<String, CellError> {
        let args = params(json!({"packages": packages}));
        let envelope = self.sandbox.execute(&ctx.caller, "python:install", args, ExecOptions::default()).await;
        if !envelope.is_success() {
            return Err(error("PackageInstallError", envelope.message));
        }
        let names = |key: &str| -> Vec<String> {
            envelope.data[key]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default()
        };
        let mut text = String::new();
        for cached in names("cached") {
            text.push_str(&format!("Requirement already satisfied: {cached}\n"));
        }
        let installed = names("installed");
        if !installed.is_empty() {
            text.push_str(&format!("Successfully installed {}\n", installed.join(" ")));
        }
        if let Some(sink) = output {
            let _ = sink.send(crate::engine::host::Output { channel: "stdout".into(), text: text.clone() });
        }
        Ok(text)
    }
}

/// How long a partial line waits for the rest before it is sent as it is.
const PARTIAL_LINE_WAIT: Duration = Duration::from_millis(25);

/// Hands a cell's output to `send` a line of text at a time: a `print` writes its text and
/// its newline separately, and notebooks show them as one line. A partial line is sent once
/// nothing more comes for a moment, so slow output still arrives as it is written.
pub async fn by_line(mut output: tokio::sync::mpsc::UnboundedReceiver<Output>, mut send: impl FnMut(&str, &str)) {
    let mut pending: Option<(String, String)> = None;
    loop {
        let next = match &pending {
            Some(_) => match tokio::time::timeout(PARTIAL_LINE_WAIT, output.recv()).await {
                Ok(next) => next,
                Err(_) => {
                    if let Some((channel, text)) = pending.take() {
                        send(&channel, &text);
                    }
                    continue;
                }
            },
            None => output.recv().await,
        };
        let Some(o) = next else { break };
        let (channel, mut text) = match pending.take() {
            Some((channel, text)) if channel == o.channel => (channel, text + &o.text),
            Some((channel, text)) => {
                send(&channel, &text);
                (o.channel, o.text)
            }
            None => (o.channel, o.text),
        };
        if let Some(end) = text.rfind('\n') {
            let rest = text.split_off(end + 1);
            send(&channel, &text);
            text = rest;
        }
        if !text.is_empty() {
            pending = Some((channel, text));
        }
    }
    if let Some((channel, text)) = pending {
        send(&channel, &text);
    }
}

/// The exception name a Cella fault code is reported as.
fn fault_name(code: i32) -> &'static str {
    match code {
        crate::codes::TIMEOUT_ERROR => "TimeoutError",
        crate::codes::MEMORY_LIMIT => "MemoryError",
        crate::codes::GUEST_TRAPPED => "InterpreterCrashed",
        _ => "SandboxError",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_lines_are_taken_out_of_a_cell() {
        let p = parse_cell(Language::Python, "%pip install six\n!pip install -q attrs\nimport six\nsix.PY3");
        assert_eq!(p.packages, ["six", "attrs"]);
        assert_eq!(p.code, "\n\nimport six\nsix.PY3\n");
        assert!(p.refused.is_none());
        assert_eq!(parse_cell(Language::Python, "pip install six").packages, ["six"]);
    }

    #[test]
    fn shell_lines_and_npm_get_a_clear_refusal() {
        let p = parse_cell(Language::Python, "!ls -la");
        assert_eq!(p.refused.expect("refused").name, "ShellUnavailable");
        let p = parse_cell(Language::JavaScript, "npm install lodash");
        assert!(p.refused.expect("refused").value.contains("without npm"));
        let p = parse_cell(Language::Python, "x = 1 % 2\nprint(x)");
        assert!(p.refused.is_none(), "a modulo is not a magic");
        let p = parse_cell(Language::Python, "s = '''\n!not a shell line\n'''");
        assert!(p.refused.is_none(), "a string's line is not a shell line");
    }
}
