//! The shell's own commands: those that change the shell (`cd`, `export`, `unset`, `exit`,
//! `break`, `continue`, `shift`, `set`, `read`, `eval`, `.`), and those that need its
//! state or none (`echo`, `printf`, `pwd`, `test`/`[`, `sleep`, `env`, `which`,
//! `command -v`, `true`, `false`, `:`, `sh -c`), and `python`, `node` and `pip`.

use super::printf::{echo, printf};
use super::{Flow, Io, MAX_DEPTH, Ran, Shell, fileutils, textutils};
use crate::sandboxes::{Kind, Language};
use brush_parser::ast::{BinaryPredicate, TestExpr, UnaryPredicate};
use std::time::Duration;

/// The names `which` and `command -v` know: the shell's, the utilities', the interpreters'.
const BUILTINS: &[&str] = &[
    "cd", "export", "unset", "exit", "break", "continue", "shift", "set", "read", "eval", ".", "source", "echo",
    "printf", "pwd", "test", "[", "sleep", "env", "which", "command", "type", "true", "false", ":", "sh", "bash",
];

/// Whether `name` is a command this shell runs.
fn known(name: &str) -> bool {
    BUILTINS.contains(&name)
        || fileutils::NAMES.contains(&name)
        || textutils::NAMES.contains(&name)
        || matches!(name, "python" | "python3" | "node" | "pip" | "pip3")
}

impl Shell {
    /// Runs `name` when it is one of the shell's own commands; `None` otherwise.
    pub(super) async fn builtin(&mut self, name: &str, args: &[String], io: &Io) -> Option<i32> {
        let ran = match name {
            "true" | ":" => Ran::ok(""),
            "false" => Ran::fail(1, String::new()),
            "cd" => self.cd(args).await,
            "pwd" => Ran::ok(format!("{}\n", self.cwd)),
            "export" => {
                for a in args.iter().filter(|a| !a.starts_with('-')) {
                    let (name, value) = a.split_once('=').map_or((a.as_str(), None), |(k, v)| (k, Some(v)));
                    if let Some(v) = value {
                        self.vars.insert(name.to_string(), v.to_string());
                    }
                    self.exported.insert(name.to_string());
                }
                Ran::ok("")
            }
            "unset" => {
                for a in args.iter().filter(|a| !a.starts_with('-')) {
                    self.vars.remove(a);
                    self.exported.remove(a);
                    self.functions.remove(a);
                }
                Ran::ok("")
            }
            "exit" => {
                let code = args.first().map_or(Some(self.status), |a| a.parse::<i32>().ok());
                self.exit = Some(code.map_or(2, |c| c & 0xff));
                return Some(self.exit.unwrap_or(0));
            }
            "break" | "continue" => {
                let n = args.first().and_then(|a| a.parse::<u32>().ok()).unwrap_or(1).max(1);
                self.flow = Some(if name == "break" { Flow::Break(n) } else { Flow::Continue(n) });
                Ran::ok("")
            }
            "shift" => {
                let n = args.first().and_then(|a| a.parse::<usize>().ok()).unwrap_or(1);
                if n > self.positional.len() {
                    Ran::fail(1, "sh: shift: can't shift that many\n".into())
                } else {
                    self.positional.drain(..n);
                    Ran::ok("")
                }
            }
            "set" => {
                if let Some(at) = args.iter().position(|a| a == "--") {
                    self.positional = args[at + 1..].to_vec();
                } else if args.is_empty() {
                    let all: String = self.vars.iter().map(|(k, v)| format!("{k}='{v}'\n")).collect();
                    return Some(self.emit(io, Ran::ok(all)));
                }
                // Options (`-e`, `-x`, …) are accepted and change nothing.
                Ran::ok("")
            }
            "read" => {
                let names: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
                match io.stdin.line_async().await {
                    Some(line) => {
                        self.assign_fields(&names, &line);
                        Ran::ok("")
                    }
                    None => {
                        self.assign_fields(&names, "");
                        Ran::fail(1, String::new())
                    }
                }
            }
            "eval" => {
                if self.depth >= MAX_DEPTH {
                    return Some(self.emit(io, Ran::fail(2, "sh: eval nests too deep\n".into())));
                }
                let text = args.join(" ");
                self.depth += 1;
                let status = self.source(&text, io).await;
                self.depth -= 1;
                return Some(status);
            }
            "." | "source" => {
                let Some(file) = args.first() else {
                    return Some(self.emit(io, Ran::fail(2, format!("sh: {name}: a file name is needed\n"))));
                };
                match self.read_file(file).await {
                    Ok(bytes) if self.depth < MAX_DEPTH => {
                        let text = String::from_utf8_lossy(&bytes).into_owned();
                        self.depth += 1;
                        let status = self.source(&text, io).await;
                        self.depth -= 1;
                        return Some(status);
                    }
                    Ok(_) => Ran::fail(2, "sh: scripts nest too deep\n".into()),
                    Err(e) => Ran::fail(2, format!("sh: {name}: {e}\n")),
                }
            }
            "sh" | "bash" => return Some(self.nested_shell(name, args, io).await),
            "echo" => echo(args),
            "printf" => match args.split_first() {
                Some((format, rest)) => printf(format, rest),
                None => Ran::fail(2, "printf: usage: printf FORMAT [ARGUMENT...]\n".into()),
            },
            "test" => self.test(name, args).await,
            "[" => match args.split_last() {
                Some((last, rest)) if last == "]" => self.test(name, rest).await,
                _ => Ran::fail(2, "[: missing ]\n".into()),
            },
            "sleep" => self.sleep(args, io).await,
            "env" => return Some(self.env_command(args, io).await),
            "which" | "command" | "type" => which(name, args),
            _ => return None,
        };
        Some(self.emit(io, ran))
    }

    /// Writes what a command did; answers its status.
    pub(super) fn emit(&self, io: &Io, ran: Ran) -> i32 {
        self.write(&io.out, &ran.out);
        self.write(&io.err, &ran.err);
        ran.status
    }

    /// `read`'s assignment: a field a name, the last name the rest of the line.
    fn assign_fields(&mut self, names: &[&String], line: &str) {
        let names: Vec<String> =
            if names.is_empty() { vec!["REPLY".into()] } else { names.iter().map(|n| n.to_string()).collect() };
        let mut rest = line.trim_start_matches([' ', '\t']);
        for (i, name) in names.iter().enumerate() {
            let value = if i + 1 == names.len() {
                std::mem::take(&mut rest).trim_end_matches([' ', '\t']).to_string()
            } else {
                let end = rest.find([' ', '\t']).unwrap_or(rest.len());
                let (field, after) = rest.split_at(end);
                rest = after.trim_start_matches([' ', '\t']);
                field.to_string()
            };
            self.vars.insert(name.clone(), value);
        }
    }

    async fn cd(&mut self, args: &[String]) -> Ran {
        let target = match args.iter().find(|a| !a.starts_with('-') || *a == "-") {
            None => self.vars.get("HOME").cloned().unwrap_or_else(|| self.files.home.clone()),
            Some(dash) if dash == "-" => self.vars.get("OLDPWD").cloned().unwrap_or_else(|| self.cwd.clone()),
            Some(dir) => dir.clone(),
        };
        let path = fileutils::normalize(&fileutils::at(&self.cwd, &target));
        let p = path.clone();
        match self.files.run(move |f| f.stat(&p)).await {
            Ok(e) if e.kind == Kind::Dir => {
                let old = std::mem::replace(&mut self.cwd, path.clone());
                self.vars.insert("OLDPWD".into(), old);
                self.vars.insert("PWD".into(), path);
                Ran::ok("")
            }
            Ok(_) => Ran::fail(2, format!("sh: cd: can't cd to {target}: Not a directory\n")),
            Err(e) => Ran::fail(2, format!("sh: cd: can't cd to {target}: {}\n", fileutils::reason(&e))),
        }
    }

    /// `sh -c LINE` and `bash -c LINE`: the line in a subshell; `sh FILE` runs a script.
    async fn nested_shell(&mut self, name: &str, args: &[String], io: &Io) -> i32 {
        let args: Vec<&String> = args.iter().filter(|a| !matches!(a.as_str(), "-l" | "-e" | "-x" | "-u")).collect();
        let text = match args.as_slice() {
            [flag, line, rest @ ..] if *flag == "-c" => {
                let mut sub = self.subshell();
                sub.positional = rest.iter().skip(1).map(|a| a.to_string()).collect();
                return self.nested(&mut sub, line, io).await;
            }
            [file, rest @ ..] => match self.read_file(file).await {
                Ok(bytes) => {
                    let mut sub = self.subshell();
                    sub.positional = rest.iter().map(|a| a.to_string()).collect();
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    return self.nested(&mut sub, &text, io).await;
                }
                Err(e) => format!("{name}: {e}\n"),
            },
            [] => format!("{name}: an interactive shell is not offered; use {name} -c LINE\n"),
        };
        self.emit(io, Ran::fail(2, text))
    }

    async fn nested(&mut self, sub: &mut Shell, text: &str, io: &Io) -> i32 {
        if sub.depth >= MAX_DEPTH {
            return self.emit(io, Ran::fail(2, "sh: shells nest too deep\n".into()));
        }
        let status = sub.source(text, io).await;
        if sub.exit == Some(124) {
            self.exit = Some(124);
        }
        status
    }

    async fn sleep(&mut self, args: &[String], io: &Io) -> Ran {
        let mut total = 0.0f64;
        for a in args {
            let (number, unit) = match a.char_indices().last() {
                Some((i, c)) if c.is_ascii_alphabetic() => (&a[..i], c),
                _ => (a.as_str(), 's'),
            };
            let scale = match unit {
                's' => 1.0,
                'm' => 60.0,
                'h' => 3600.0,
                'd' => 86400.0,
                _ => f64::NAN,
            };
            match number.parse::<f64>() {
                Ok(n) if n >= 0.0 && scale.is_finite() => total += n * scale,
                _ => return Ran::fail(1, format!("sleep: invalid time interval '{a}'\n")),
            }
        }
        if args.is_empty() {
            return Ran::fail(1, "sleep: missing operand\n".into());
        }
        let until = tokio::time::Instant::now() + Duration::from_secs_f64(total.min(1e7));
        // Woken early when the line's deadline comes or the sandbox ends.
        loop {
            let now = tokio::time::Instant::now();
            if now >= until || self.stopped(io) {
                break;
            }
            let step = (until - now).min(Duration::from_millis(100));
            tokio::time::sleep(step).await;
        }
        Ran::ok("")
    }

    /// `env` prints the environment; `env K=v… CMD ARGS` runs CMD with more of it.
    async fn env_command(&mut self, args: &[String], io: &Io) -> i32 {
        let at = args.iter().position(|a| !a.contains('=') && a != "-i").unwrap_or(args.len());
        let clear = args[..at].iter().any(|a| a == "-i");
        let saved = (self.vars.clone(), self.exported.clone());
        if clear {
            self.exported.clear();
        }
        for a in args[..at].iter().filter(|a| a.contains('=')) {
            let (k, v) = a.split_once('=').unwrap_or((a, ""));
            self.vars.insert(k.to_string(), v.to_string());
            self.exported.insert(k.to_string());
        }
        let status = if at == args.len() {
            let all: String = self.env().iter().map(|(k, v)| format!("{k}={v}\n")).collect();
            self.emit(io, Ran::ok(all))
        } else {
            self.run(&args[at..], io).await
        };
        (self.vars, self.exported) = saved;
        status
    }

    /// `test` and `[`, evaluated by brush-parser's reading of the expression.
    async fn test(&mut self, name: &str, args: &[String]) -> Ran {
        let expr = match brush_parser::test_command::parse(args) {
            Ok(e) => e,
            Err(e) => return Ran::fail(2, format!("{name}: {e}\n")),
        };
        let (cwd, vars) = (self.cwd.clone(), self.vars.clone());
        let done = self.files.run(move |f| Ok(evaluate(f, &cwd, &vars, &expr))).await;
        match done {
            Ok(Ok(true)) => Ran::ok(""),
            Ok(Ok(false)) => Ran::fail(1, String::new()),
            Ok(Err(e)) | Err(e @ crate::sandboxes::SbxError::Io(_)) => {
                Ran::fail(2, format!("{name}: {}\n", e.to_string().trim_start_matches("sh: ")))
            }
            Err(e) => Ran::fail(2, format!("{name}: {e}\n")),
        }
    }

    /// `python`, `node` and `pip`, in the sandbox's interpreters.
    pub(super) async fn program(&mut self, name: &str, args: &[String], io: &Io) -> i32 {
        let Some(programs) = self.programs.clone() else {
            return self.emit(io, Ran::fail(127, format!("sh: {name}: no interpreter in this shell\n")));
        };
        let (sandboxes, sbx) = (&programs.sandboxes, &programs.sbx);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let ran = if name.starts_with("pip") {
            sandboxes.pip(sbx, &args).await
        } else {
            let language = if name == "node" { Language::JavaScript } else { Language::Python };
            let streams = matches!((&io.out, &io.err), (super::Stream::Term(_), super::Stream::Term(_)));
            let sink = if streams { self.term.sink.clone() } else { None };
            // A program runs whole, so it gets the input sent so far (a live input does not
            // wait for more: a program that never reads would wait for ever).
            let stdin = if io.stdin.is_live() { io.stdin.available() } else { io.stdin.rest() };
            let env = self.env();
            let ran = sandboxes.program(sbx, language, &self.cwd, &args, &env, &stdin, sink).await;
            if let (true, Ok(r)) = (streams, &ran) {
                // Its output reached the caller as it was printed: keep it for the result only.
                self.term.stdout.lock().unwrap_or_else(|p| p.into_inner()).push_str(&r.stdout);
                self.term.stderr.lock().unwrap_or_else(|p| p.into_inner()).push_str(&r.stderr);
                return r.exit_code;
            }
            ran
        };
        match ran {
            Ok(r) => self.emit(io, Ran { out: r.stdout.into_bytes(), err: r.stderr.into_bytes(), status: r.exit_code }),
            Err(e) => self.emit(io, Ran::fail(1, format!("{name}: {e}\n"))),
        }
    }
}

/// Evaluates a `test` expression over the files.
fn evaluate(
    f: &crate::sandboxes::Files,
    cwd: &str,
    vars: &std::collections::BTreeMap<String, String>,
    expr: &TestExpr,
) -> Result<bool, crate::sandboxes::SbxError> {
    let stat = |path: &str| f.stat(&fileutils::at(cwd, path)).ok();
    let number = |s: &str| {
        s.trim().parse::<i64>().map_err(|_| crate::sandboxes::SbxError::Io(format!("sh: {s}: integer expected")))
    };
    Ok(match expr {
        TestExpr::False => false,
        TestExpr::Literal(s) => !s.is_empty(),
        TestExpr::And(a, b) => evaluate(f, cwd, vars, a)? && evaluate(f, cwd, vars, b)?,
        TestExpr::Or(a, b) => evaluate(f, cwd, vars, a)? || evaluate(f, cwd, vars, b)?,
        TestExpr::Not(e) => !evaluate(f, cwd, vars, e)?,
        TestExpr::Parenthesized(e) => evaluate(f, cwd, vars, e)?,
        TestExpr::UnaryTest(p, s) => match p {
            UnaryPredicate::StringHasZeroLength => s.is_empty(),
            UnaryPredicate::StringHasNonZeroLength => !s.is_empty(),
            UnaryPredicate::FileExists | UnaryPredicate::FileExistsAndIsReadable => stat(s).is_some(),
            UnaryPredicate::FileExistsAndIsWritable => stat(s).is_some(),
            UnaryPredicate::FileExistsAndIsDir => stat(s).is_some_and(|e| e.kind == Kind::Dir),
            UnaryPredicate::FileExistsAndIsRegularFile => stat(s).is_some_and(|e| e.kind == Kind::File),
            UnaryPredicate::FileExistsAndIsSymlink => stat(s).is_some_and(|e| e.kind == Kind::Symlink),
            UnaryPredicate::FileExistsAndIsNotZeroLength => stat(s).is_some_and(|e| e.size > 0 || e.kind == Kind::Dir),
            UnaryPredicate::FileExistsAndIsExecutable => stat(s).is_some_and(|e| e.kind == Kind::Dir),
            UnaryPredicate::ShellVariableIsSetAndAssigned => vars.contains_key(s),
            _ => false,
        },
        TestExpr::BinaryTest(p, a, b) => match p {
            BinaryPredicate::StringExactlyMatchesString | BinaryPredicate::StringExactlyMatchesPattern => a == b,
            BinaryPredicate::StringDoesNotExactlyMatchString | BinaryPredicate::StringDoesNotExactlyMatchPattern => {
                a != b
            }
            BinaryPredicate::LeftSortsBeforeRight => a < b,
            BinaryPredicate::LeftSortsAfterRight => a > b,
            BinaryPredicate::ArithmeticEqualTo => number(a)? == number(b)?,
            BinaryPredicate::ArithmeticNotEqualTo => number(a)? != number(b)?,
            BinaryPredicate::ArithmeticLessThan => number(a)? < number(b)?,
            BinaryPredicate::ArithmeticLessThanOrEqualTo => number(a)? <= number(b)?,
            BinaryPredicate::ArithmeticGreaterThan => number(a)? > number(b)?,
            BinaryPredicate::ArithmeticGreaterThanOrEqualTo => number(a)? >= number(b)?,
            BinaryPredicate::LeftFileIsNewerOrExistsWhenRightDoesNot => match (stat(a), stat(b)) {
                (Some(x), Some(y)) => x.modified > y.modified,
                (x, _) => x.is_some(),
            },
            BinaryPredicate::LeftFileIsOlderOrDoesNotExistWhenRightDoes => match (stat(a), stat(b)) {
                (Some(x), Some(y)) => x.modified < y.modified,
                (_, y) => y.is_some(),
            },
            _ => false,
        },
    })
}

/// `which NAME…`, `command -v NAME…`, `type NAME…`.
fn which(name: &str, args: &[String]) -> Ran {
    let names: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if name == "command" && !args.iter().any(|a| a == "-v" || a == "-V") {
        return Ran::fail(2, "command: only command -v NAME is offered\n".into());
    }
    let mut ran = Ran::ok("");
    for n in names {
        let builtin = BUILTINS.contains(&n.as_str());
        match (known(n), name) {
            (true, "type") if builtin => ran.out.extend(format!("{n} is a shell builtin\n").bytes()),
            (true, "type") => ran.out.extend(format!("{n} is /usr/bin/{n}\n").bytes()),
            (true, "command") if builtin => ran.out.extend(format!("{n}\n").bytes()),
            (true, _) => ran.out.extend(format!("/usr/bin/{n}\n").bytes()),
            (false, "type") => {
                ran.err.extend(format!("sh: type: {n}: not found\n").bytes());
                ran.status = 1;
            }
            (false, _) => ran.status = 1,
        }
    }
    ran
}
