//! Shell commands without a shell: there is no process inside a component, so a sandbox runs
//! a small, documented set of commands itself, on its interpreters and its files, for SDK
//! calls such as E2B's `commands.run`:
//!
//! `python FILE`, `python -c CODE`, `node FILE`, `node -e CODE` (each in a fresh interpreter
//! that ends with the command), `pip install NAME…` (from the wheelhouse, into every Python
//! context of the sandbox, present and future), `ls`, `cat`, `pwd`, `echo`, `mkdir [-p]` and
//! `rm [-r] [-f]`. Pipes, redirections, `;`, `&&` and substitutions are refused, as is any
//! other command (exit status 127, with the list above).

use super::{Language, Sandboxes, Sbx, SbxError};
use crate::engine::host::{Output, OutputSink};
use std::path::Path;

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

/// The commands offered, as the refusal lists them.
pub const OFFERED: &str = "python FILE, python -c CODE, node FILE, node -e CODE, pip install NAME..., \
                           ls [PATH...], cat FILE..., pwd, echo TEXT, mkdir [-p] DIR..., rm [-r] [-f] PATH...";

fn failed(code: i32, stderr: String) -> CommandResult {
    CommandResult { stdout: String::new(), stderr, exit_code: code }
}

fn ok(stdout: String) -> CommandResult {
    CommandResult { stdout, stderr: String::new(), exit_code: 0 }
}

/// Splits a command line into words, refusing shell syntax.
fn words(line: &str) -> Result<Vec<String>, CommandResult> {
    let syntax = ["|", ";", "&&", "||", ">", "<", "$(", "`", "&"];
    if let Some(s) = syntax.iter().find(|s| line.contains(**s)) {
        return Err(failed(
            2,
            format!(
                "cella: '{s}' is shell syntax, and there is no shell in a Cella sandbox; run one command: {OFFERED}\n"
            ),
        ));
    }
    match shlex::split(line) {
        Some(w) if !w.is_empty() => Ok(w),
        Some(_) => Err(failed(2, "cella: empty command\n".into())),
        None => Err(failed(2, "cella: unbalanced quotes\n".into())),
    }
}

/// A path as the files see it: absolute, or relative to the command's directory.
fn at(cwd: &str, path: &str) -> String {
    if path.starts_with('/') { path.to_string() } else { Path::new(cwd).join(path).to_string_lossy().into_owned() }
}

impl Sandboxes {
    /// Runs one command line in `sbx`, in the directory `cwd` (the home when absent);
    /// `output` receives what the command prints (interpreted programs' output as they print
    /// it, the other commands' at once).
    pub async fn command(
        &self,
        sbx: &Sbx,
        line: &str,
        cwd: Option<&str>,
        output: Option<OutputSink>,
    ) -> Result<CommandResult, SbxError> {
        if sbx.ended() {
            return Err(SbxError::NotFound(format!("sandbox '{}' ended", sbx.id)));
        }
        let cwd = cwd.filter(|c| !c.is_empty()).unwrap_or(&sbx.files.home).to_string();
        let w = match words(line) {
            Ok(w) => w,
            Err(refused) => {
                if let Some(sink) = &output {
                    emit(sink, &refused);
                }
                return Ok(refused);
            }
        };
        let args: Vec<&str> = w[1..].iter().map(String::as_str).collect();
        let result = match w[0].as_str() {
            "python" | "python3" => return self.program(sbx, Language::Python, "-c", &cwd, &args, output).await,
            "node" => return self.program(sbx, Language::JavaScript, "-e", &cwd, &args, output).await,
            "pip" | "pip3" => self.pip(sbx, &args).await,
            "pwd" => Ok(ok(format!("{cwd}\n"))),
            "echo" => Ok(ok(format!("{}\n", args.join(" ")))),
            "ls" | "cat" | "mkdir" | "rm" => {
                let (name, cwd) = (w[0].clone(), cwd.clone());
                let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
                sbx.files.run(move |f| Ok(file_command(f, &name, &cwd, &args))).await
            }
            other => Ok(failed(127, format!("cella: {other}: command not found; a Cella sandbox runs {OFFERED}\n"))),
        };
        if let (Ok(result), Some(sink)) = (&result, &output) {
            emit(sink, result);
        }
        result
    }

    /// `python FILE` / `python -c CODE` (and node's): the program in a fresh context.
    async fn program(
        &self,
        sbx: &Sbx,
        language: Language,
        inline: &str,
        cwd: &str,
        args: &[&str],
        output: Option<OutputSink>,
    ) -> Result<CommandResult, SbxError> {
        let code = match args {
            [flag, code, ..] if *flag == inline => code.to_string(),
            [file, ..] if !file.starts_with('-') => {
                let path = at(cwd, file);
                match sbx.files.run(move |f| f.read(&path)).await {
                    Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                    Err(e) => return Ok(failed(2, format!("{}: can't open file '{file}': {e}\n", language.name()))),
                }
            }
            _ => {
                return Ok(failed(2, format!("usage: {} FILE | {} {inline} CODE\n", language.name(), language.name())));
            }
        };
        let ctx = self.scratch_context(sbx, language, cwd).await?;
        let tail = output.clone();
        let ran = self.run(sbx, &ctx, &code, &Default::default(), output).await;
        let _ = self.remove_context(sbx, &ctx.id).await;
        let cell = ran?;
        let mut result = CommandResult { stdout: cell.stdout, stderr: cell.stderr, exit_code: 0 };
        if let Some(e) = cell.error {
            // The traceback is not printed by the program: it goes to stderr here.
            let mut traceback = e.traceback;
            if !traceback.ends_with('\n') {
                traceback.push('\n');
            }
            if let Some(sink) = &tail {
                emit(sink, &failed(1, traceback.clone()));
            }
            result.stderr.push_str(&traceback);
            result.exit_code = 1;
        }
        Ok(result)
    }

    /// `pip install NAME…`: into every Python context, and every one made later.
    async fn pip(&self, sbx: &Sbx, args: &[&str]) -> Result<CommandResult, SbxError> {
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

/// `ls`, `cat`, `mkdir` and `rm` on the files (blocking: run off the async threads).
fn file_command(f: &super::Files, name: &str, cwd: &str, args: &[String]) -> CommandResult {
    let flags: String = args.iter().filter(|a| a.starts_with('-')).flat_map(|a| a.chars().skip(1)).collect();
    let mut paths: Vec<String> = args.iter().filter(|a| !a.starts_with('-')).map(|a| at(cwd, a)).collect();
    let mut result = ok(String::new());
    let fail = |result: &mut CommandResult, message: String| {
        result.stderr.push_str(&format!("{name}: {message}\n"));
        result.exit_code = 1;
    };
    match name {
        "ls" => {
            if paths.is_empty() {
                paths.push(cwd.to_string());
            }
            for p in &paths {
                match f.stat(p) {
                    Ok(e) if e.kind == super::Kind::Dir => match f.list(p, 1) {
                        Ok(entries) => entries.iter().for_each(|e| result.stdout.push_str(&format!("{}\n", e.name))),
                        Err(e) => fail(&mut result, format!("cannot access '{p}': {e}")),
                    },
                    Ok(e) => result.stdout.push_str(&format!("{}\n", e.name)),
                    Err(e) => fail(&mut result, format!("cannot access '{p}': {e}")),
                }
            }
        }
        "cat" => {
            for p in &paths {
                match f.read(p) {
                    Ok(bytes) => result.stdout.push_str(&String::from_utf8_lossy(&bytes)),
                    Err(e) => fail(&mut result, format!("{p}: {e}")),
                }
            }
        }
        "mkdir" => {
            for p in &paths {
                match f.make_dir(p) {
                    Ok(false) if !flags.contains('p') => {
                        fail(&mut result, format!("cannot create directory '{p}': File exists"))
                    }
                    Ok(_) => {}
                    Err(e) => fail(&mut result, format!("cannot create directory '{p}': {e}")),
                }
            }
        }
        _ => {
            let (recursive, force) = (flags.contains('r') || flags.contains('R'), flags.contains('f'));
            for p in &paths {
                match f.stat(p) {
                    Ok(e) if e.kind == super::Kind::Dir && !recursive => {
                        fail(&mut result, format!("cannot remove '{p}': Is a directory"))
                    }
                    Ok(_) => {
                        if let Err(e) = f.remove(p) {
                            fail(&mut result, format!("cannot remove '{p}': {e}"));
                        }
                    }
                    Err(_) if force => {}
                    Err(e) => fail(&mut result, format!("cannot remove '{p}': {e}")),
                }
            }
        }
    }
    if paths.is_empty() && name != "ls" {
        fail(&mut result, "missing operand".into());
    }
    result
}

/// Sends a whole command result to `sink` (for commands whose output comes at once).
fn emit(sink: &OutputSink, result: &CommandResult) {
    for (channel, text) in [("stdout", &result.stdout), ("stderr", &result.stderr)] {
        if !text.is_empty() {
            let _ = sink.send(Output { channel: channel.into(), text: text.clone() });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_syntax_and_unknown_commands_are_refused_clearly() {
        assert_eq!(words("ls -la /home/user").expect("words"), ["ls", "-la", "/home/user"]);
        assert_eq!(words("python -c 'print(1)'").expect("words"), ["python", "-c", "print(1)"]);
        let piped = words("cat a | grep x").expect_err("a pipe");
        assert_eq!(piped.exit_code, 2);
        assert!(piped.stderr.contains("no shell"));
        assert_eq!(words("echo 'open").expect_err("quotes").stderr, "cella: unbalanced quotes\n");
    }

    #[test]
    fn file_commands_work_on_the_files() {
        let root = tempfile::tempdir().expect("a temporary folder");
        let f = super::super::Files::create(root.path().join("box"), "/home/user", 1).expect("files");
        f.write("/home/user/a.txt", b"alpha\n").expect("write");
        let run = |name: &str, args: &[&str]| {
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            file_command(&f, name, "/home/user", &args)
        };
        assert_eq!(run("cat", &["a.txt"]), ok("alpha\n".into()));
        assert_eq!(run("mkdir", &["-p", "d/e"]).exit_code, 0);
        assert_eq!(run("mkdir", &["d"]).exit_code, 1, "mkdir without -p refuses an existing directory");
        assert_eq!(run("ls", &[]).stdout, "a.txt\nd\n");
        assert_eq!(run("rm", &["d"]).exit_code, 1, "rm without -r keeps a directory");
        assert_eq!(run("rm", &["-rf", "d", "missing"]).exit_code, 0);
        assert_eq!(run("ls", &["/home/user"]).stdout, "a.txt\n");
        assert_eq!(run("cat", &["/etc/passwd"]).exit_code, 1, "nothing outside the home");
    }
}
