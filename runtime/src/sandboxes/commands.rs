//! Commands, as E2B's `commands.run` and Scalebox's process API send them: a line of shell
//! run by [`super::shell`] over the sandbox's files and interpreters. `python` and `node`
//! run a program in a fresh interpreter that ends with it; `pip install NAME…` installs from
//! the wheelhouse into every Python context of the sandbox, present and future.

use super::shell::{Programs, Shell};
use super::{Language, Sandboxes, Sbx, SbxError};
use crate::engine::host::OutputSink;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// What a command did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandResult {
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
    /// Its exit status (0 for success, 127 for an unknown command).
    pub exit_code: i32,
}

/// What the shell offers, as refusals name it.
pub const OFFERED: &str = "a POSIX shell line (;, &&, ||, pipes, redirections, variables, cd, if/for/while/case) \
                           over the sandbox's files with ls, cat, head, tail, wc, grep, sort, uniq, cut, tr, find, \
                           cp, mv, rm, mkdir, touch, echo, printf, test, sleep, env, and python, node and pip install";

/// How long a line may run when its caller sets no deadline (the sandbox's end comes first
/// when it is sooner).
const DEFAULT_DEADLINE: Duration = Duration::from_secs(3600);

fn failed(code: i32, stderr: String) -> CommandResult {
    CommandResult { stdout: String::new(), stderr, exit_code: code }
}

fn ok(stdout: String) -> CommandResult {
    CommandResult { stdout, stderr: String::new(), exit_code: 0 }
}

/// A command's own context, removed when the command is done with it (or dropped: a kill).
struct Scratch {
    sandboxes: Sandboxes,
    sbx: Arc<Sbx>,
    id: String,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.id.is_empty() {
            return;
        }
        let (sandboxes, sbx, id) = (self.sandboxes.clone(), self.sbx.clone(), std::mem::take(&mut self.id));
        // Its interpreter ends once a cell still running in it is done.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = sandboxes.remove_context(&sbx, &id).await;
            });
        }
    }
}

impl Sandboxes {
    /// Runs one command line in `sbx`, in the directory `cwd` (the home when absent), with
    /// the sandbox's environment and `env` over it; `output` receives what the line prints
    /// as it prints it. The line stops starting commands once `deadline` has passed. `stdin`,
    /// when given, is a standard input that stays open: what is sent on it is read by the
    /// line's commands until every sender is gone. (Lines run as processes: `processes.rs`.)
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn command(
        &self,
        sbx: &Arc<Sbx>,
        line: &str,
        cwd: Option<&str>,
        env: &BTreeMap<String, String>,
        deadline: Option<Duration>,
        output: Option<OutputSink>,
        stdin: Option<std::sync::mpsc::Receiver<Vec<u8>>>,
    ) -> Result<CommandResult, SbxError> {
        if sbx.ended() {
            return Err(SbxError::NotFound(format!("sandbox '{}' ended", sbx.id)));
        }
        let cwd = cwd.filter(|c| !c.is_empty()).unwrap_or(&sbx.files.home).to_string();
        let mut vars = sbx.env.clone();
        vars.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
        let until = tokio::time::Instant::now() + deadline.unwrap_or(DEFAULT_DEADLINE);
        let programs = Programs { sandboxes: self.clone(), sbx: sbx.clone() };
        let shell = Shell::new(sbx.files.clone(), Some(programs), &cwd, vars, output, until);
        let done = shell.run_line(line, stdin).await;
        Ok(CommandResult { stdout: done.stdout, stderr: done.stderr, exit_code: done.status })
    }

    /// `python FILE ARGS`, `python -c CODE ARGS`, `python` reading its program from
    /// standard input (and node's, with `-e`): the program in a fresh context that ends with
    /// it, with the command's environment, arguments and standard input. `sys.exit(n)` is
    /// its exit status; an uncaught exception prints its traceback and exits 1.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn program(
        &self,
        sbx: &Arc<Sbx>,
        language: Language,
        cwd: &str,
        args: &[&str],
        env: &BTreeMap<String, String>,
        stdin: &[u8],
        output: Option<OutputSink>,
    ) -> Result<CommandResult, SbxError> {
        let inline = if language == Language::Python { "-c" } else { "-e" };
        let name = language.name();
        let (code, argv) = match args {
            [flag, code, rest @ ..] if *flag == inline => (code.to_string(), [&[*flag], rest].concat()),
            [] | ["-"] => (String::from_utf8_lossy(stdin).into_owned(), vec!["-"]),
            [file, ..] if !file.starts_with('-') => {
                let path = super::shell::at(cwd, file);
                match sbx.files.run(move |f| f.read(&path)).await {
                    Ok(bytes) => (String::from_utf8_lossy(&bytes).into_owned(), args.to_vec()),
                    Err(e) => {
                        let why = super::shell::reason(&e);
                        return Ok(failed(2, format!("{name}: can't open file '{file}': [Errno 2] {why}\n")));
                    }
                }
            }
            _ => return Ok(failed(2, format!("usage: {name} FILE [ARG...] | {name} {inline} CODE [ARG...]\n"))),
        };
        let stdin =
            if matches!(args, [] | ["-"]) { String::new() } else { String::from_utf8_lossy(stdin).into_owned() };
        let prelude = match language {
            Language::Python => format!(
                "import sys as _s, io as _io\n_s.argv = {}\n_s.stdin = _io.StringIO({})\ndel _s, _io\n",
                json!(argv),
                json!(stdin)
            ),
            Language::JavaScript => format!(
                "globalThis.process = Object.assign(globalThis.process || {{}}, {{argv: {}, env: {}}});",
                json!([&["node"], argv.as_slice()].concat()),
                json!(env)
            ),
        };
        let ctx = self.scratch_context(sbx, language, cwd).await?;
        // Removed however this ends, a kill of the command (its task dropped here) too.
        let mut scratch = Scratch { sandboxes: self.clone(), sbx: sbx.clone(), id: ctx.id.clone() };
        let tail = output.clone();
        let ran = match self.run(sbx, &ctx, &prelude, env, None).await {
            Ok(_) => self.run(sbx, &ctx, &code, env, output).await,
            Err(e) => Err(e),
        };
        // Done with it: removed before the command answers (a listing after it has no trace).
        let _ = self.remove_context(sbx, &std::mem::take(&mut scratch.id)).await;
        let cell = ran?;
        let mut result = CommandResult { stdout: cell.stdout, stderr: cell.stderr, exit_code: 0 };
        if let Some(e) = cell.error {
            let (code, text) = if e.name == "SystemExit" {
                match e.value.trim() {
                    "" | "None" => (0, String::new()),
                    v => v.parse::<i32>().map_or((1, format!("{v}\n")), |n| (n & 0xff, String::new())),
                }
            } else {
                // The traceback is not printed by the program: it goes to stderr here.
                let mut traceback = e.traceback;
                if !traceback.ends_with('\n') {
                    traceback.push('\n');
                }
                (1, traceback)
            };
            if let (Some(sink), false) = (&tail, text.is_empty()) {
                let _ = sink.send(crate::engine::host::Output { channel: "stderr".into(), text: text.clone() });
            }
            result.stderr.push_str(&text);
            result.exit_code = code;
        }
        Ok(result)
    }

    /// `pip install NAME…`: into every Python context, and every one made later.
    pub(super) async fn pip(&self, sbx: &Sbx, args: &[&str]) -> Result<CommandResult, SbxError> {
        let ["install", rest @ ..] = args else {
            return Ok(failed(2, "cella: pip offers `pip install NAME...` (from the server's wheelhouse)\n".into()));
        };
        let packages: Vec<String> = rest.iter().filter(|a| !a.starts_with('-')).map(|a| a.to_string()).collect();
        if packages.is_empty() {
            return Ok(failed(2, "ERROR: You must give at least one requirement to install\n".into()));
        }
        // Checked in a context of its own first, so a bad name changes nothing.
        let probe = self.scratch_context(sbx, Language::Python, &sbx.files.home).await?;
        let checked = self.install(&probe, &packages, None).await;
        let _ = self.remove_context(sbx, &probe.id).await;
        let text = match checked {
            Ok(text) => text,
            Err(e) => return Ok(failed(1, format!("ERROR: {}\n", e.value))),
        };
        sbx.packages().extend(packages.iter().cloned());
        for ctx in self.contexts(sbx).into_iter().filter(|c| c.language == Language::Python) {
            let _ = self.install(&ctx, &packages, None).await;
        }
        Ok(ok(text))
    }
}
