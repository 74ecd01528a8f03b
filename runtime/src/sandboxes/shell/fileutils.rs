//! The file utilities, over the sandbox's [`Files`] (so confined to them): `ls`, `cat`,
//! `head`, `tail`, `cp`, `mv`, `rm`, `rmdir`, `mkdir`, `touch`, `ln` (refused: no links)
//! and `find`, with their usual flags and GNU's messages. Blocking: the shell runs them on a
//! blocking thread.

use super::find::find;
use super::{Input, Ran};
use crate::sandboxes::{Entry, Files, Kind, SbxError};
use std::path::{Component, Path};

/// The utilities of this file.
pub(super) const NAMES: &[&str] =
    &["ls", "cat", "head", "tail", "cp", "mv", "rm", "rmdir", "mkdir", "touch", "ln", "find", "stat"];

/// A path as the files see it: absolute, or relative to the command's directory.
pub(crate) fn at(cwd: &str, path: &str) -> String {
    if path.starts_with('/') { path.to_string() } else { Path::new(cwd).join(path).to_string_lossy().into_owned() }
}

/// An absolute path without `.`, `..` or doubled slashes.
pub(super) fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str().unwrap_or_default()),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    format!("/{}", parts.join("/"))
}

/// What the files' error means, in the words of the C library's `strerror`.
pub(crate) fn reason(e: &SbxError) -> String {
    let text = e.to_string();
    match e {
        SbxError::NotFound(_) => "No such file or directory".into(),
        SbxError::Exists(_) => "File exists".into(),
        SbxError::Invalid(_) if text.contains("is a directory") => "Is a directory".into(),
        SbxError::Invalid(_) if text.contains("not a directory") => "Not a directory".into(),
        SbxError::Invalid(_) if text.contains("outside") || text.contains("home directory") => {
            format!("Permission denied (outside the sandbox's files, {})", home_of(&text))
        }
        SbxError::Quota(_) => "No space left on device (the sandbox's files quota)".into(),
        _ => text,
    }
}

fn home_of(text: &str) -> &str {
    text.split("files live under ").nth(1).and_then(|t| t.split(' ').next()).unwrap_or("the home")
}

/// Splits arguments into flags (the letters of `-abc`) and operands; `--` ends the flags.
fn flags(args: &[String]) -> (String, Vec<String>) {
    let (mut letters, mut operands, mut done) = (String::new(), Vec::new(), false);
    for a in args {
        if !done && a == "--" {
            done = true;
        } else if !done && a.len() > 1 && a.starts_with('-') && !a.starts_with("--") {
            letters.push_str(&a[1..]);
        } else if !done && a.starts_with("--") {
            letters.push_str(match a.as_str() {
                "--recursive" => "r",
                "--force" => "f",
                "--parents" => "p",
                "--all" => "a",
                "--almost-all" => "A",
                _ => "",
            });
        } else {
            operands.push(a.clone());
        }
    }
    (letters, operands)
}

/// Runs file utility `name`; `None` when it is not one of these.
pub(super) fn run(f: &Files, name: &str, cwd: &str, args: &[String], stdin: &Input) -> Option<Ran> {
    let mut ran = Ran::default();
    let fail = |ran: &mut Ran, message: String| {
        ran.err.extend(format!("{name}: {message}\n").bytes());
        ran.status = 1;
    };
    let path = |p: &str| at(cwd, p);
    match name {
        "ls" => ls(f, cwd, args, &mut ran),
        "cat" => {
            let (flags, files) = flags(args);
            let files = if files.is_empty() { vec!["-".to_string()] } else { files };
            let mut all = Vec::new();
            for p in &files {
                match read(f, cwd, p, stdin) {
                    Ok(bytes) => all.extend(bytes),
                    Err(e) => fail(&mut ran, format!("{p}: {}", reason(&e))),
                }
            }
            if flags.contains('n') {
                let text = String::from_utf8_lossy(&all).into_owned();
                let mut out = String::new();
                for (i, line) in text.split_inclusive('\n').enumerate() {
                    out.push_str(&format!("{:>6}\t{line}", i + 1));
                }
                all = out.into_bytes();
            }
            ran.out.extend(all);
        }
        "head" | "tail" => head_tail(f, name, cwd, args, stdin, &mut ran),
        "mkdir" => {
            let (flags, dirs) = flags(args);
            if dirs.is_empty() {
                fail(&mut ran, "missing operand".into());
            }
            for d in &dirs {
                let p = path(d);
                let parent_missing = !flags.contains('p')
                    && Path::new(&p).parent().is_some_and(|parent| f.stat(&parent.to_string_lossy()).is_err());
                if parent_missing {
                    fail(&mut ran, format!("cannot create directory '{d}': No such file or directory"));
                    continue;
                }
                match f.make_dir(&p) {
                    Ok(false) if !flags.contains('p') => {
                        fail(&mut ran, format!("cannot create directory '{d}': File exists"))
                    }
                    Ok(_) => {}
                    Err(e) => fail(&mut ran, format!("cannot create directory '{d}': {}", reason(&e))),
                }
            }
        }
        "rm" | "rmdir" => {
            let (flags, paths) = flags(args);
            let (recursive, force) = (flags.contains('r') || flags.contains('R'), flags.contains('f'));
            if paths.is_empty() && !force {
                fail(&mut ran, "missing operand".into());
            }
            for p in &paths {
                match f.stat(&path(p)) {
                    Ok(e) if e.kind == Kind::Dir && name == "rmdir" => {
                        if f.list(&path(p), 1).map(|l| l.is_empty()).unwrap_or(false) {
                            if let Err(e) = f.remove(&path(p)) {
                                fail(&mut ran, format!("failed to remove '{p}': {}", reason(&e)));
                            }
                        } else {
                            fail(&mut ran, format!("failed to remove '{p}': Directory not empty"));
                        }
                    }
                    Ok(_) if name == "rmdir" => fail(&mut ran, format!("failed to remove '{p}': Not a directory")),
                    Ok(e) if e.kind == Kind::Dir && !recursive => {
                        fail(&mut ran, format!("cannot remove '{p}': Is a directory"))
                    }
                    Ok(_) => {
                        if let Err(e) = f.remove(&path(p)) {
                            fail(&mut ran, format!("cannot remove '{p}': {}", reason(&e)));
                        }
                    }
                    Err(_) if force => {}
                    Err(e) => fail(&mut ran, format!("cannot remove '{p}': {}", reason(&e))),
                }
            }
        }
        "touch" => {
            let (_, paths) = flags(args);
            if paths.is_empty() {
                fail(&mut ran, "missing file operand".into());
            }
            for p in &paths {
                if let Err(e) = f.append(&path(p), b"") {
                    fail(&mut ran, format!("cannot touch '{p}': {}", reason(&e)));
                }
            }
        }
        "ln" => fail(&mut ran, "links are not offered in a Cella sandbox's files (copy the file: cp)".into()),
        "cp" | "mv" => copy_move(f, name, cwd, args, &mut ran),
        "find" => find(f, cwd, args, &mut ran),
        "stat" => {
            let (_, paths) = flags(args);
            for p in &paths {
                match f.stat(&path(p)) {
                    Ok(e) => {
                        ran.out.extend(format!("  File: {p}\n  Size: {}\t{}\n", e.size, kind_name(e.kind)).into_bytes())
                    }
                    Err(e) => fail(&mut ran, format!("cannot statx '{p}': {}", reason(&e))),
                }
            }
        }
        _ => return None,
    }
    Some(ran)
}

/// A file's bytes, or standard input for `-`.
pub(super) fn read(f: &Files, cwd: &str, p: &str, stdin: &Input) -> Result<Vec<u8>, SbxError> {
    if p == "-" { Ok(stdin.rest()) } else { f.read(&at(cwd, p)) }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::File => "regular file",
        Kind::Dir => "directory",
        Kind::Symlink => "symbolic link",
    }
}

fn ls(f: &Files, cwd: &str, args: &[String], ran: &mut Ran) {
    let (flags, mut operands) = flags(args);
    let (long, all, almost, reverse) =
        (flags.contains('l'), flags.contains('a'), flags.contains('A'), flags.contains('r'));
    let (by_time, by_size, dir_itself) = (flags.contains('t'), flags.contains('S'), flags.contains('d'));
    let human = flags.contains('h');
    if operands.is_empty() {
        operands.push(".".into());
    }
    let order = |entries: &mut Vec<Entry>| {
        if by_time {
            entries.sort_by(|a, b| b.modified.cmp(&a.modified).then(a.name.cmp(&b.name)));
        } else if by_size {
            entries.sort_by(|a, b| b.size.cmp(&a.size).then(a.name.cmp(&b.name)));
        }
        if reverse {
            entries.reverse();
        }
    };
    let line = |e: &Entry, name: &str| {
        if !long {
            return format!("{name}\n");
        }
        let kind = match e.kind {
            Kind::Dir => 'd',
            Kind::Symlink => 'l',
            Kind::File => '-',
        };
        let bits = ["---", "--x", "-w-", "-wx", "r--", "r-x", "rw-", "rwx"];
        let mode: String = [6, 3, 0].iter().map(|s| bits[((e.mode >> s) & 7) as usize]).collect();
        let size = if human { human_size(e.size) } else { e.size.to_string() };
        let links = if e.kind == Kind::Dir { 2 } else { 1 };
        let when = e.modified.format("%b %e %H:%M");
        let target = e.symlink_target.as_ref().map(|t| format!(" -> {t}")).unwrap_or_default();
        format!("{kind}{mode} {links} user user {size:>5} {when} {name}{target}\n")
    };
    let (mut files, mut dirs) = (Vec::new(), Vec::new());
    for op in &operands {
        match f.stat(&at(cwd, op)) {
            Ok(e) if e.kind == Kind::Dir && !dir_itself => dirs.push((op.clone(), e)),
            Ok(e) => files.push((op.clone(), e)),
            Err(e) => {
                ran.err.extend(format!("ls: cannot access '{op}': {}\n", reason(&e)).bytes());
                ran.status = 2;
            }
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    dirs.sort_by(|a, b| a.0.cmp(&b.0));
    for (op, e) in &files {
        ran.out.extend(line(e, op).into_bytes());
    }
    let headers = operands.len() > 1;
    for (i, (op, _)) in dirs.iter().enumerate() {
        let mut entries = match f.list(&at(cwd, op), 1) {
            Ok(entries) => entries,
            Err(e) => {
                ran.err.extend(format!("ls: cannot open directory '{op}': {}\n", reason(&e)).bytes());
                ran.status = 2;
                continue;
            }
        };
        entries.retain(|e| all || almost || !e.name.starts_with('.'));
        order(&mut entries);
        if headers {
            if i > 0 || !files.is_empty() {
                ran.out.push(b'\n');
            }
            ran.out.extend(format!("{op}:\n").bytes());
        }
        if long {
            let blocks: u64 = entries.iter().map(|e| e.size.div_ceil(4096) * 4).sum::<u64>() + if all { 8 } else { 0 };
            ran.out.extend(format!("total {blocks}\n").bytes());
        }
        if all {
            let dot = f.stat(&at(cwd, op));
            if let Ok(d) = dot {
                ran.out.extend(line(&d, ".").into_bytes());
                ran.out.extend(line(&d, "..").into_bytes());
            }
        }
        for e in &entries {
            ran.out.extend(line(e, &e.name).into_bytes());
        }
    }
}

fn human_size(n: u64) -> String {
    let units = ["", "K", "M", "G", "T"];
    let (mut value, mut unit) = (n as f64, 0);
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        n.to_string()
    } else if value < 10.0 {
        format!("{:.1}{}", (value * 10.0).ceil() / 10.0, units[unit])
    } else {
        format!("{}{}", value.ceil(), units[unit])
    }
}

/// `head` and `tail`: `-n N` (`-N`, `-n +N` for tail), `-c N`; headers with several files.
fn head_tail(f: &Files, name: &str, cwd: &str, args: &[String], stdin: &Input, ran: &mut Ran) {
    let (mut lines, mut bytes, mut from_start, mut files) = (10usize, None, false, Vec::new());
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let value = |i: &mut usize, inline: &str| {
            if inline.is_empty() {
                *i += 1;
                args.get(*i).cloned().unwrap_or_default()
            } else {
                inline.to_string()
            }
        };
        if let Some(v) = a.strip_prefix("-n") {
            let v = value(&mut i, v);
            from_start = v.starts_with('+');
            lines = v.trim_start_matches(['+', '-']).parse().unwrap_or(10);
        } else if let Some(v) = a.strip_prefix("-c") {
            let v = value(&mut i, v);
            from_start = v.starts_with('+');
            bytes = v.trim_start_matches(['+', '-']).parse::<usize>().ok();
        } else if a.len() > 1 && a.starts_with('-') && a[1..].chars().all(|c| c.is_ascii_digit()) {
            lines = a[1..].parse().unwrap_or(10);
        } else {
            files.push(a.clone());
        }
        i += 1;
    }
    let headers = files.len() > 1;
    if files.is_empty() {
        files.push("-".into());
    }
    for (n, p) in files.iter().enumerate() {
        let data = match read(f, cwd, p, stdin) {
            Ok(d) => d,
            Err(e) => {
                ran.err.extend(format!("{name}: cannot open '{p}' for reading: {}\n", reason(&e)).bytes());
                ran.status = 1;
                continue;
            }
        };
        if headers {
            let shown = if p == "-" { "standard input" } else { p };
            ran.out.extend(format!("{}==> {shown} <==\n", if n > 0 { "\n" } else { "" }).bytes());
        }
        let out: &[u8] = match (name, bytes) {
            ("head", Some(c)) => &data[..c.min(data.len())],
            ("tail", Some(c)) if from_start => &data[c.saturating_sub(1).min(data.len())..],
            ("tail", Some(c)) => &data[data.len().saturating_sub(c)..],
            _ => {
                let ends: Vec<usize> =
                    data.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i + 1).collect();
                let count = ends.len() + usize::from(data.last().is_some_and(|b| *b != b'\n'));
                let start_of =
                    |line: usize| if line == 0 { 0 } else { ends.get(line - 1).copied().unwrap_or(data.len()) };
                match name {
                    "head" => &data[..start_of(lines.min(count))],
                    _ if from_start => &data[start_of(lines.saturating_sub(1).min(count))..],
                    _ => &data[start_of(count.saturating_sub(lines))..],
                }
            }
        };
        ran.out.extend_from_slice(out);
    }
}

/// `cp [-r] SRC… DST` and `mv SRC… DST` (into DST when it is a directory).
fn copy_move(f: &Files, name: &str, cwd: &str, args: &[String], ran: &mut Ran) {
    let (flags, mut operands) = flags(args);
    let recursive = flags.contains('r') || flags.contains('R') || flags.contains('a');
    let fail = |ran: &mut Ran, m: String| {
        ran.err.extend(format!("{name}: {m}\n").bytes());
        ran.status = 1;
    };
    let Some(dest) = operands.pop().filter(|_| !operands.is_empty()) else {
        return fail(ran, "missing destination file operand".into());
    };
    let into_dir = f.stat(&at(cwd, &dest)).is_ok_and(|e| e.kind == Kind::Dir);
    if operands.len() > 1 && !into_dir {
        return fail(ran, format!("target '{dest}' is not a directory"));
    }
    for src in &operands {
        let from = at(cwd, src);
        let base = Path::new(&from).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let to = if into_dir { format!("{}/{base}", at(cwd, &dest)) } else { at(cwd, &dest) };
        let entry = match f.stat(&from) {
            Ok(e) => e,
            Err(e) => {
                fail(ran, format!("cannot stat '{src}': {}", reason(&e)));
                continue;
            }
        };
        let done = if name == "mv" {
            f.rename(&from, &to).map(|_| ())
        } else if entry.kind == Kind::Dir {
            if !recursive {
                fail(ran, format!("-r not specified; omitting directory '{src}'"));
                continue;
            }
            copy_dir(f, &from, &to)
        } else {
            f.read(&from).and_then(|b| f.write(&to, &b)).map(|_| ())
        };
        if let Err(e) = done {
            fail(ran, format!("cannot {} '{src}': {}", if name == "mv" { "move" } else { "copy" }, reason(&e)));
        }
    }
}

fn copy_dir(f: &Files, from: &str, to: &str) -> Result<(), SbxError> {
    f.make_dir(to)?;
    for e in f.list(from, u32::MAX)? {
        let rel = e.path.strip_prefix(&normalize(from)).unwrap_or(&e.path).trim_start_matches('/').to_string();
        let target = format!("{}/{rel}", to.trim_end_matches('/'));
        match e.kind {
            Kind::Dir => {
                f.make_dir(&target)?;
            }
            _ => {
                f.write(&target, &f.read(&e.path)?)?;
            }
        }
    }
    Ok(())
}
