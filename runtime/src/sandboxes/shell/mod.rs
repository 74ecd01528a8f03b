//! The shell of `commands.run`: a line of POSIX sh (bash's common syntax too) parsed by
//! brush-parser (brush-shell's parser) and run over what a sandbox has: its files, its
//! interpreters, and the utilities of this module, written over [`Files`] so that no path
//! leads outside the sandbox's files (a utility that acted on the host's file system, as
//! uutils' crates do, would escape it: there is no process or chroot to hold it).
//!
//! Offered: sequences (`;`, newlines), `&&`, `||`, pipes, `!`, redirections (`>`, `>>`, `<`,
//! `2>`, `2>&1`, `>&2`, `&>`, here-documents and here-strings, `/dev/null`), quoting,
//! variables, `export`, `unset`, parameter expansions (`${x:-d}`, `${x#p}`, `${#x}`, …),
//! command substitution, arithmetic, globbing, `cd`, `if`, `for`, `while`, `until`, `case`,
//! `{ }`, `( )`, functions, `break`, `continue`, `exit`, `eval`, `read`, `sh -c`, and the
//! utilities in [`builtins`], [`fileutils`] and [`textutils`]; `python` and `node` run in
//! the sandbox's interpreters with the command's environment and standard input. Every
//! other program exits 127 with a message saying why. A line is its own shell, as E2B's
//! `bash -l -c` is: `cd` and `export` last until the line ends.

mod builtins;
mod expand;
mod fileutils;
mod find;
mod grep;
mod io;
mod printf;
mod redirect;
mod textutils;

pub(crate) use fileutils::{at, reason};

use io::{Channel, Input, Io, Ran, Stream, Term};

use super::{Files, Sandboxes, Sbx};
use crate::engine::host::OutputSink;
use brush_parser::ast::{
    AndOr, AndOrList, Command, CommandPrefixOrSuffixItem, CompoundCommand, CompoundList, CompoundListItem,
    FunctionBody, IoRedirect, Pipeline, SimpleCommand,
};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How deep substitutions, `eval`, `sh -c` and function calls may nest.
const MAX_DEPTH: u32 = 64;

/// The programs that do not exist inside a sandbox, named in their refusal.
const NO_PROGRAMS: &str = "a Cella sandbox runs no programs of its own (no processes: sudo, apt, git, curl, \
                           gcc and the like do not exist); the shell offers its utilities, python and node";

/// The sandbox's interpreters, for `python`, `node` and `pip`.
#[derive(Clone)]
pub(super) struct Programs {
    pub sandboxes: Sandboxes,
    pub sbx: Arc<Sbx>,
}

/// `break` or `continue` on its way out of loops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Break(u32),
    Continue(u32),
}

/// One shell: its state while a line runs (a subshell is a copy).
#[derive(Clone)]
pub(super) struct Shell {
    files: Files,
    programs: Option<Programs>,
    cwd: String,
    vars: BTreeMap<String, String>,
    exported: BTreeSet<String>,
    functions: BTreeMap<String, Arc<FunctionBody>>,
    positional: Vec<String>,
    status: i32,
    exit: Option<i32>,
    flow: Option<Flow>,
    /// Whether a command substitution ran in the command being expanded.
    substituted: bool,
    term: Arc<Term>,
    deadline: Instant,
    depth: u32,
}

/// What a line printed and its exit status.
pub(super) struct LineResult {
    pub stdout: String,
    pub stderr: String,
    pub status: i32,
}

impl Shell {
    /// A shell in `cwd` whose environment is `env` (all exported), writing to `sink`, that
    /// stops starting commands at `deadline`.
    pub(super) fn new(
        files: Files,
        programs: Option<Programs>,
        cwd: &str,
        env: BTreeMap<String, String>,
        sink: Option<OutputSink>,
        deadline: Instant,
    ) -> Shell {
        let mut vars = BTreeMap::from([
            ("HOME".to_string(), files.home.clone()),
            ("PATH".to_string(), "/usr/local/bin:/usr/bin:/bin".to_string()),
            ("USER".to_string(), "user".to_string()),
            ("SHELL".to_string(), "/bin/sh".to_string()),
        ]);
        vars.extend(env);
        vars.insert("PWD".into(), cwd.to_string());
        let exported = vars.keys().cloned().collect();
        let term = Term { sink, stdout: Mutex::default(), stderr: Mutex::default() };
        Shell {
            files,
            programs,
            cwd: cwd.to_string(),
            vars,
            exported,
            functions: BTreeMap::new(),
            positional: Vec::new(),
            status: 0,
            exit: None,
            flow: None,
            substituted: false,
            term: Arc::new(term),
            deadline,
            depth: 0,
        }
    }

    /// Runs a line to its end; answers what it printed and its status.
    /// `stdin`, when given, is the line's live standard input (else it reads nothing).
    pub(super) async fn run_line(
        mut self,
        line: &str,
        stdin: Option<std::sync::mpsc::Receiver<Vec<u8>>>,
    ) -> LineResult {
        let stdin = stdin.map_or_else(|| Input::new(Vec::new()), Input::live);
        let io = Io { stdin, out: Stream::Term(Channel::Out), err: Stream::Term(Channel::Err) };
        let status = self.source(line, &io).await;
        let text = |m: &Mutex<String>| std::mem::take(&mut *m.lock().unwrap_or_else(|p| p.into_inner()));
        LineResult { stdout: text(&self.term.stdout), stderr: text(&self.term.stderr), status }
    }

    /// Parses and runs `text` in this shell (a line, `eval`'s words, a script); its status.
    fn source<'a>(&'a mut self, text: &'a str, io: &'a Io) -> Boxed<'a, i32> {
        Box::pin(async move {
            let parsed = brush_parser::Parser::new(std::io::Cursor::new(text), &parser_options()).parse_program();
            let program = match parsed {
                Ok(p) => p,
                Err(e) => {
                    self.write(&io.err, format!("sh: syntax error: {e}\n").as_bytes());
                    self.status = 2;
                    return 2;
                }
            };
            for list in &program.complete_commands {
                self.list(list, io).await;
                if self.exit.is_some() {
                    break;
                }
            }
            self.exit.unwrap_or(self.status)
        })
    }

    /// Writes to a stream.
    fn write(&self, stream: &Stream, bytes: &[u8]) {
        match stream {
            Stream::Term(channel) => self.term.write(*channel, bytes),
            Stream::Buf(b) => b.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(bytes),
            Stream::Null => {}
        }
    }

    /// A copy of this shell for a subshell (a pipeline's stage, `( )`, a substitution).
    fn subshell(&self) -> Shell {
        let mut sub = self.clone();
        sub.exit = None;
        sub.flow = None;
        sub.depth += 1;
        sub
    }

    /// Whether the line must stop: its deadline passed or its sandbox ended.
    fn stopped(&mut self, io: &Io) -> bool {
        if self.exit.is_some() {
            return true;
        }
        let ended = self.programs.as_ref().is_some_and(|p| p.sbx.ended());
        if ended || Instant::now() >= self.deadline {
            let why = if ended { "the sandbox ended" } else { "the command's time ran out" };
            self.write(&io.err, format!("sh: {why}\n").as_bytes());
            self.exit = Some(124);
            return true;
        }
        false
    }

    fn list<'a>(&'a mut self, list: &'a CompoundList, io: &'a Io) -> Boxed<'a, ()> {
        Box::pin(async move {
            for CompoundListItem(and_or, _) in &list.0 {
                // `&` runs the command to its end too: nothing runs beside a line.
                self.and_or(and_or, io).await;
                if self.exit.is_some() || self.flow.is_some() {
                    return;
                }
            }
        })
    }

    async fn and_or(&mut self, list: &AndOrList, io: &Io) {
        self.pipeline(&list.first, io).await;
        for next in &list.additional {
            if self.exit.is_some() || self.flow.is_some() {
                return;
            }
            match next {
                AndOr::And(p) if self.status == 0 => self.pipeline(p, io).await,
                AndOr::Or(p) if self.status != 0 => self.pipeline(p, io).await,
                _ => {}
            }
        }
    }

    async fn pipeline(&mut self, pipeline: &Pipeline, io: &Io) {
        if let [only] = pipeline.seq.as_slice() {
            self.command(only, io).await;
        } else {
            // Each stage runs in a subshell, to its end, before the next reads what it wrote.
            let mut stdin = io.stdin.clone();
            for (i, command) in pipeline.seq.iter().enumerate() {
                let last = i + 1 == pipeline.seq.len();
                let out = if last { io.out.clone() } else { Stream::buffer() };
                let stage = Io { stdin: stdin.clone(), out: out.clone(), err: io.err.clone() };
                let mut sub = self.subshell();
                sub.command(command, &stage).await;
                self.status = sub.exit.unwrap_or(sub.status);
                if sub.exit == Some(124) && self.stopped(io) {
                    return;
                }
                stdin = Input::new(out.take());
            }
        }
        if pipeline.bang {
            self.status = i32::from(self.status == 0);
        }
    }

    fn command<'a>(&'a mut self, command: &'a Command, io: &'a Io) -> Boxed<'a, ()> {
        Box::pin(async move {
            match command {
                Command::Simple(simple) => self.simple(simple, io).await,
                Command::Compound(compound, redirects) => {
                    let redirects: Vec<&IoRedirect> = redirects.iter().flat_map(|r| r.0.iter()).collect();
                    let Some((io, pending)) = self.redirect(&redirects, io).await else { return };
                    self.compound(compound, &io).await;
                    self.flush(pending, &io).await;
                }
                Command::Function(f) => {
                    self.functions.insert(f.fname.value.clone(), Arc::new(f.body.clone()));
                    self.status = 0;
                }
                Command::ExtendedTest(..) => {
                    self.write(&io.err, b"sh: [[ ]] is bash's, not offered here: use [ ] (test)\n");
                    self.status = 2;
                }
            }
        })
    }

    async fn compound(&mut self, compound: &CompoundCommand, io: &Io) {
        match compound {
            CompoundCommand::BraceGroup(group) => self.list(&group.list, io).await,
            CompoundCommand::Subshell(sub) => {
                let mut shell = self.subshell();
                shell.list(&sub.list, io).await;
                self.status = shell.exit.unwrap_or(shell.status);
            }
            CompoundCommand::IfClause(c) => {
                self.list(&c.condition, io).await;
                if self.status == 0 {
                    return self.list(&c.then, io).await;
                }
                for branch in c.elses.iter().flatten() {
                    if let Some(condition) = &branch.condition {
                        self.list(condition, io).await;
                        if self.status != 0 {
                            continue;
                        }
                    }
                    return self.list(&branch.body, io).await;
                }
                self.status = 0;
            }
            CompoundCommand::ForClause(f) => {
                let values = match &f.values {
                    Some(words) => match self.expand_words(words.iter().map(|w| w.value.as_str()), io).await {
                        Ok(v) => v,
                        Err(e) => return self.error(io, &e),
                    },
                    None => self.positional.clone(),
                };
                self.status = 0;
                for value in values {
                    self.vars.insert(f.variable_name.clone(), value);
                    self.list(&f.body.list, io).await;
                    if self.looped() || self.stopped(io) {
                        break;
                    }
                }
            }
            CompoundCommand::WhileClause(w) | CompoundCommand::UntilClause(w) => {
                let until = matches!(compound, CompoundCommand::UntilClause(_));
                let mut status = 0;
                loop {
                    self.list(&w.0, io).await;
                    if (self.status == 0) == until || self.exit.is_some() {
                        break;
                    }
                    self.list(&w.1.list, io).await;
                    status = self.status;
                    if self.looped() || self.stopped(io) {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
                self.status = status;
            }
            CompoundCommand::CaseClause(c) => {
                let value = match self.expand_one(&c.value.value, io).await {
                    Ok(v) => v,
                    Err(e) => return self.error(io, &e),
                };
                self.status = 0;
                for item in &c.cases {
                    for pattern in &item.patterns {
                        match self.matches_pattern(&pattern.value, &value, io).await {
                            Ok(true) => {
                                if let Some(body) = &item.cmd {
                                    self.list(body, io).await;
                                }
                                return;
                            }
                            Ok(false) => {}
                            Err(e) => return self.error(io, &e),
                        }
                    }
                }
            }
            CompoundCommand::Arithmetic(a) => match self.arithmetic(&a.expr.value, io).await {
                Ok(v) => self.status = i32::from(v == 0),
                Err(e) => self.error(io, &e),
            },
            CompoundCommand::ArithmeticForClause(_) | CompoundCommand::Coprocess(_) => {
                self.write(&io.err, b"sh: for (( )) and coproc are not offered\n");
                self.status = 2;
            }
        }
    }

    /// After a loop's body: whether `break` or `continue` ends this loop's run.
    fn looped(&mut self) -> bool {
        match self.flow.take() {
            Some(Flow::Break(n)) => {
                if n > 1 {
                    self.flow = Some(Flow::Break(n - 1));
                }
                true
            }
            Some(Flow::Continue(n)) if n > 1 => {
                self.flow = Some(Flow::Continue(n - 1));
                true
            }
            Some(Flow::Continue(_)) | None => self.exit.is_some(),
        }
    }

    /// Reports an expansion's error (status 1, as sh does for a bad substitution).
    fn error(&mut self, io: &Io, message: &str) {
        self.write(&io.err, format!("sh: {message}\n").as_bytes());
        self.status = 1;
    }

    async fn simple(&mut self, simple: &SimpleCommand, io: &Io) {
        tokio::task::yield_now().await;
        if self.stopped(io) {
            return;
        }
        let mut assignments = Vec::new();
        let mut words: Vec<&str> = Vec::new();
        let mut redirects = Vec::new();
        let items = simple.prefix.iter().flat_map(|p| p.0.iter());
        let suffix = simple.suffix.iter().flat_map(|s| s.0.iter());
        for item in items {
            match item {
                CommandPrefixOrSuffixItem::IoRedirect(r) => redirects.push(r),
                CommandPrefixOrSuffixItem::AssignmentWord(_, w) => assignments.push(w.value.as_str()),
                CommandPrefixOrSuffixItem::Word(w) => words.push(&w.value),
                CommandPrefixOrSuffixItem::ProcessSubstitution(..) => {
                    return self.error(io, "process substitution <( ) is not offered");
                }
            }
        }
        words.extend(simple.word_or_name.iter().map(|w| w.value.as_str()));
        for item in suffix {
            match item {
                CommandPrefixOrSuffixItem::IoRedirect(r) => redirects.push(r),
                CommandPrefixOrSuffixItem::AssignmentWord(_, w) | CommandPrefixOrSuffixItem::Word(w) => {
                    words.push(&w.value)
                }
                CommandPrefixOrSuffixItem::ProcessSubstitution(..) => {
                    return self.error(io, "process substitution <( ) is not offered");
                }
            }
        }
        // `$?` in the words is the last command's status; a line of assignments alone ends
        // with the status of its last substitution, or 0.
        let before = self.status;
        let mut assigned = Vec::new();
        for a in assignments {
            let (name, value) = a.split_once('=').unwrap_or((a, ""));
            match self.expand_one(value, io).await {
                Ok(v) => assigned.push((name.to_string(), v)),
                Err(e) => return self.error(io, &e),
            }
        }
        let words = match self.expand_words(words.into_iter(), io).await {
            Ok(w) => w,
            Err(e) => return self.error(io, &e),
        };
        let substituted = if self.substituted { self.status } else { 0 };
        self.substituted = false;
        self.status = before;
        let Some((io, pending)) = self.redirect(&redirects, io).await else { return };
        if words.is_empty() {
            self.vars.extend(assigned);
            self.status = substituted;
        } else {
            let mut shell_vars = None;
            if !assigned.is_empty() {
                // `K=v cmd`: the command alone sees K.
                shell_vars = Some((self.vars.clone(), self.exported.clone()));
                for (k, v) in assigned {
                    self.exported.insert(k.clone());
                    self.vars.insert(k, v);
                }
            }
            self.status = self.run(&words, &io).await;
            if let Some((vars, exported)) = shell_vars {
                self.vars = vars;
                self.exported = exported;
            }
        }
        self.flush(pending, &io).await;
    }

    /// The exported variables: a command's environment.
    fn env(&self) -> BTreeMap<String, String> {
        self.vars.iter().filter(|(k, _)| self.exported.contains(*k)).map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Runs one command (expanded); answers its status.
    fn run<'a>(&'a mut self, words: &'a [String], io: &'a Io) -> Boxed<'a, i32> {
        Box::pin(async move {
            let (name, args) = (words[0].as_str(), &words[1..]);
            if let Some(body) = self.functions.get(name).cloned() {
                if self.depth >= MAX_DEPTH {
                    self.write(&io.err, b"sh: functions nest too deep\n");
                    return 2;
                }
                let saved = std::mem::replace(&mut self.positional, args.to_vec());
                self.depth += 1;
                self.compound(&body.0, io).await;
                self.depth -= 1;
                self.positional = saved;
                return self.status;
            }
            if let Some(status) = self.builtin(name, args, io).await {
                return status;
            }
            if name == "cat" && matches!(args, [] | [_]) && args.iter().all(|a| a == "-") && io.stdin.is_live() {
                // A process's live input is copied as it comes, as cat does.
                while let Some(piece) = io.stdin.chunk_async().await {
                    self.write(&io.out, &piece);
                }
                return 0;
            }
            let ran = match name {
                "python" | "python3" | "node" | "pip" | "pip3" => return self.program(name, args, io).await,
                _ if fileutils::NAMES.contains(&name) || textutils::NAMES.contains(&name) => {
                    let (words, cwd, stdin) = (words.to_vec(), self.cwd.clone(), io.stdin.clone());
                    let done = self
                        .files
                        .run(move |f| {
                            let args = &words[1..];
                            let ran = fileutils::run(f, &words[0], &cwd, args, &stdin)
                                .or_else(|| textutils::run(f, &words[0], &cwd, args, &stdin));
                            Ok(ran.unwrap_or_default())
                        })
                        .await;
                    done.unwrap_or_else(|e| Ran::fail(1, format!("{name}: {e}\n")))
                }
                _ => {
                    let base = name.rsplit('/').next().unwrap_or(name);
                    let known = fileutils::NAMES.contains(&base) || textutils::NAMES.contains(&base);
                    if name.contains('/') && known {
                        let mut again = words.to_vec();
                        again[0] = base.to_string();
                        return self.run(&again, io).await;
                    }
                    Ran::fail(127, format!("sh: {name}: command not found; {NO_PROGRAMS}\n"))
                }
            };
            self.write(&io.out, &ran.out);
            self.write(&io.err, &ran.err);
            ran.status
        })
    }
}

/// brush-parser's options: POSIX sh with bash's common additions, no extended globs.
fn parser_options() -> brush_parser::ParserOptions {
    brush_parser::ParserOptions { enable_extended_globbing: false, ..Default::default() }
}
