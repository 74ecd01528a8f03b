//! `grep` (and `egrep`, `fgrep`) with GNU's usual flags, matching with the `regex` crate:
//! POSIX basic expressions are rewritten into its syntax first.

use super::Input;
use super::Ran;
use super::fileutils::{at, read, reason};
use super::textutils::parse_options;
use crate::sandboxes::{Files, Kind};

/// A POSIX basic regular expression in the `regex` crate's syntax.
fn basic_to_regex(pattern: &str) -> String {
    let mut out = String::new();
    let mut chars = pattern.chars().peekable();
    let mut in_bracket = false;
    while let Some(c) = chars.next() {
        if in_bracket {
            out.push(c);
            if c == ']' {
                in_bracket = false;
            }
            continue;
        }
        match c {
            '\\' => match chars.next() {
                Some(e @ ('(' | ')' | '{' | '}' | '|' | '+' | '?')) => out.push(e),
                Some('<' | '>') => out.push_str("\\b"),
                Some(e) => {
                    out.push('\\');
                    out.push(e);
                }
                None => out.push_str("\\\\"),
            },
            '(' | ')' | '{' | '}' | '|' | '+' | '?' => {
                out.push('\\');
                out.push(c);
            }
            '*' if out.is_empty() => out.push_str("\\*"),
            '[' => {
                in_bracket = true;
                out.push(c);
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                if chars.peek() == Some(&']') {
                    out.push_str("\\]");
                    chars.next();
                }
            }
            _ => out.push(c),
        }
    }
    out
}

pub(super) fn grep(f: &Files, name: &str, cwd: &str, args: &[String], stdin: &Input, ran: &mut Ran) {
    let mut o = parse_options(args, "emA");
    let mut patterns: Vec<String> = o.values.iter().filter(|(k, _)| *k == 'e').map(|(_, v)| v.clone()).collect();
    if patterns.is_empty() {
        if o.operands.is_empty() {
            ran.err.extend(b"usage: grep [OPTION]... PATTERNS [FILE]...\n");
            ran.status = 2;
            return;
        }
        patterns.push(o.operands.remove(0));
    }
    let fixed = o.has('F') || name == "fgrep";
    let extended = o.has('E') || name == "egrep";
    let parts: Vec<String> = patterns
        .iter()
        .flat_map(|p| p.split('\n').map(str::to_string).collect::<Vec<_>>())
        .map(|p| {
            if fixed {
                regex::escape(&p)
            } else if extended {
                p.replace("\\<", "\\b").replace("\\>", "\\b")
            } else {
                basic_to_regex(&p)
            }
        })
        .map(|p| {
            if o.has('w') {
                format!("\\b(?:{p})\\b")
            } else if o.has('x') {
                format!("^(?:{p})$")
            } else {
                format!("(?:{p})")
            }
        })
        .collect();
    let re = match regex::RegexBuilder::new(&parts.join("|")).case_insensitive(o.has('i')).build() {
        Ok(re) => re,
        Err(e) => {
            ran.err.extend(format!("grep: invalid pattern: {e}\n").bytes());
            ran.status = 2;
            return;
        }
    };
    let recursive = o.has('r') || o.has('R');
    let mut files: Vec<String> = Vec::new();
    for p in if o.operands.is_empty() {
        vec![if recursive { ".".to_string() } else { "-".to_string() }]
    } else {
        o.operands.clone()
    } {
        match f.stat(&at(cwd, &p)) {
            Ok(e) if e.kind == Kind::Dir && recursive => {
                let base = at(cwd, &p);
                for entry in f.list(&base, u32::MAX).unwrap_or_default().into_iter().filter(|e| e.kind == Kind::File) {
                    let rel =
                        entry.path.strip_prefix(&super::fileutils::normalize(&base)).unwrap_or(&entry.path).to_string();
                    let shown = if p == "." && o.operands.is_empty() {
                        rel.trim_start_matches('/').to_string()
                    } else {
                        format!("{}{rel}", p.trim_end_matches('/'))
                    };
                    files.push(shown);
                }
            }
            Ok(e) if e.kind == Kind::Dir => {
                ran.err.extend(format!("grep: {p}: Is a directory\n").bytes());
                ran.status = 2;
            }
            _ => files.push(p),
        }
    }
    let prefix = (files.len() > 1 || recursive) && !o.has('h') || o.has('H');
    let mut matched_any = false;
    for p in &files {
        let data = match read(f, cwd, p, stdin) {
            Ok(d) => d,
            Err(e) => {
                if !o.has('s') {
                    ran.err.extend(format!("grep: {p}: {}\n", reason(&e)).bytes());
                }
                ran.status = 2;
                continue;
            }
        };
        let text = String::from_utf8_lossy(&data);
        let shown = if p == "-" { "(standard input)" } else { p.as_str() };
        let mut count = 0;
        for (n, line) in text.lines().enumerate() {
            if re.is_match(line) == o.has('v') {
                continue;
            }
            count += 1;
            if o.has('q') || o.has('l') || o.has('L') || o.has('c') {
                continue;
            }
            let head = format!(
                "{}{}",
                if prefix { format!("{shown}:") } else { String::new() },
                if o.has('n') { format!("{}:", n + 1) } else { String::new() }
            );
            if o.has('o') && !o.has('v') {
                for m in re.find_iter(line) {
                    ran.out.extend(format!("{head}{}\n", m.as_str()).bytes());
                }
            } else {
                ran.out.extend(format!("{head}{line}\n").bytes());
            }
        }
        matched_any |= count > 0;
        if o.has('c') {
            ran.out.extend(format!("{}{count}\n", if prefix { format!("{shown}:") } else { String::new() }).bytes());
        } else if (o.has('l') && count > 0) || (o.has('L') && count == 0) {
            ran.out.extend(format!("{shown}\n").bytes());
        }
    }
    if o.has('q') {
        ran.out.clear();
    }
    if ran.status != 2 || matched_any {
        ran.status = if matched_any { 0 } else { 1 };
    }
}
