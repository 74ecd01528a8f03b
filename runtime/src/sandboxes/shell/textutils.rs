//! The text utilities: `wc`, `grep`, `sort`, `uniq`, `cut`, `tr`, `tee`, `seq`, `basename`,
//! `dirname` and `date`, with their usual flags and GNU's output formats (the C locale's:
//! bytes compare as bytes); `grep` is in [`super::grep`].

use super::fileutils::{at, read, reason};
use super::grep::grep;
use super::{Input, Ran};
use crate::sandboxes::Files;

/// The utilities of this file.
pub(super) const NAMES: &[&str] =
    &["wc", "grep", "egrep", "fgrep", "sort", "uniq", "cut", "tr", "tee", "seq", "basename", "dirname", "date"];

/// Runs text utility `name`; `None` when it is not one of these.
pub(super) fn run(f: &Files, name: &str, cwd: &str, args: &[String], stdin: &Input) -> Option<Ran> {
    let mut ran = Ran::default();
    match name {
        "wc" => wc(f, cwd, args, stdin, &mut ran),
        "grep" | "egrep" | "fgrep" => grep(f, name, cwd, args, stdin, &mut ran),
        "sort" | "uniq" | "cut" | "tr" => {
            let (options, files) = options(name, args);
            let mut input = Vec::new();
            let files = if files.is_empty() || name == "tr" { vec!["-".to_string()] } else { files };
            let files = if name == "uniq" { files.into_iter().take(1).collect() } else { files };
            for p in &files {
                match read(f, cwd, p, stdin) {
                    Ok(b) => input.extend(b),
                    Err(e) => {
                        ran.err.extend(format!("{name}: {p}: {}\n", reason(&e)).bytes());
                        ran.status = 2;
                        return Some(ran);
                    }
                }
            }
            let text = String::from_utf8_lossy(&input).into_owned();
            let lines: Vec<&str> = text.lines().collect();
            match name {
                "sort" => sort(&options, lines, &mut ran),
                "uniq" => uniq(&options, &lines, &mut ran),
                "cut" => cut(&options, &lines, &mut ran),
                _ => tr(&options, &text, &mut ran),
            }
        }
        "tee" => {
            let append = args.iter().any(|a| a == "-a");
            let data = stdin.rest();
            for p in args.iter().filter(|a| !a.starts_with('-')) {
                let done = if append { f.append(&at(cwd, p), &data) } else { f.write(&at(cwd, p), &data).map(|_| ()) };
                if let Err(e) = done {
                    ran.err.extend(format!("tee: {p}: {}\n", reason(&e)).bytes());
                    ran.status = 1;
                }
            }
            ran.out = data;
        }
        "seq" => seq(args, &mut ran),
        "basename" => match args {
            [path, rest @ ..] => {
                let trimmed = path.trim_end_matches('/');
                let mut base = trimmed.rsplit('/').next().unwrap_or("").to_string();
                if trimmed.is_empty() && path.starts_with('/') {
                    base = "/".into();
                }
                if let Some(suffix) = rest.first().filter(|s| base.len() > s.len()) {
                    base = base.strip_suffix(suffix.as_str()).map(str::to_string).unwrap_or(base);
                }
                ran.out = format!("{base}\n").into_bytes();
            }
            [] => return Some(Ran::fail(1, "basename: missing operand\n".into())),
        },
        "dirname" => match args.first() {
            Some(path) => {
                let trimmed = path.trim_end_matches('/');
                let dir = match trimmed.rfind('/') {
                    Some(0) => "/".to_string(),
                    Some(i) => trimmed[..i].trim_end_matches('/').to_string(),
                    None if path.starts_with('/') => "/".into(),
                    None => ".".into(),
                };
                ran.out = format!("{dir}\n").into_bytes();
            }
            None => return Some(Ran::fail(1, "dirname: missing operand\n".into())),
        },
        "date" => {
            let now = chrono::Utc::now();
            let text = match args.iter().find_map(|a| a.strip_prefix('+')) {
                Some(format) => now.format(format).to_string(),
                None => now.format("%a %b %e %H:%M:%S UTC %Y").to_string(),
            };
            ran.out = format!("{text}\n").into_bytes();
        }
        _ => return None,
    }
    Some(ran)
}

/// Flags with their values (`-k 2`, `-k2`, `-d,`), and the operands.
pub(super) struct Options {
    letters: String,
    pub(super) values: Vec<(char, String)>,
    pub(super) operands: Vec<String>,
}

impl Options {
    pub(super) fn has(&self, c: char) -> bool {
        self.letters.contains(c)
    }

    pub(super) fn value(&self, c: char) -> Option<&str> {
        self.values.iter().rev().find(|(k, _)| *k == c).map(|(_, v)| v.as_str())
    }
}

/// Reads the flags of `name`, whose flags that take a value are `takes`.
pub(super) fn parse_options(args: &[String], takes: &str) -> Options {
    let mut o = Options { letters: String::new(), values: Vec::new(), operands: Vec::new() };
    let mut i = 0;
    let mut done = false;
    while i < args.len() {
        let a = &args[i];
        if done || !a.starts_with('-') || a == "-" || a.len() == 1 {
            o.operands.push(a.clone());
        } else if a == "--" {
            done = true;
        } else {
            let chars: Vec<char> = a[1..].chars().collect();
            for (j, c) in chars.iter().enumerate() {
                if takes.contains(*c) {
                    let inline: String = chars[j + 1..].iter().collect();
                    let value = if inline.is_empty() {
                        i += 1;
                        args.get(i).cloned().unwrap_or_default()
                    } else {
                        inline
                    };
                    o.values.push((*c, value));
                    break;
                }
                o.letters.push(*c);
            }
        }
        i += 1;
    }
    o
}

/// The options of sort, uniq, cut and tr, and the files they read (tr reads none).
fn options(name: &str, args: &[String]) -> (Options, Vec<String>) {
    let takes = match name {
        "sort" => "kt",
        "cut" => "dfc",
        _ => "",
    };
    let o = parse_options(args, takes);
    let files = if name == "tr" { Vec::new() } else { o.operands.clone() };
    (o, files)
}

fn wc(f: &Files, cwd: &str, args: &[String], stdin: &Input, ran: &mut Ran) {
    let o = parse_options(args, "");
    let (mut l, mut w, mut c) = (o.has('l'), o.has('w'), o.has('c') || o.has('m'));
    if !(l || w || c) {
        (l, w, c) = (true, true, true);
    }
    let files = if o.operands.is_empty() { vec!["-".to_string()] } else { o.operands.clone() };
    let mut rows = Vec::new();
    let (mut regular_total, mut minimum) = (0u64, 1usize);
    for p in &files {
        match read(f, cwd, p, stdin) {
            Ok(data) => {
                if p == "-" {
                    minimum = 7;
                } else {
                    regular_total += data.len() as u64;
                }
                let text = String::from_utf8_lossy(&data);
                let counts =
                    [data.iter().filter(|b| **b == b'\n').count(), text.split_whitespace().count(), data.len()];
                rows.push((counts, if o.operands.is_empty() { String::new() } else { p.clone() }));
            }
            Err(e) => {
                ran.err.extend(format!("wc: {p}: {}\n", reason(&e)).bytes());
                ran.status = 1;
            }
        }
    }
    if rows.len() > 1 {
        let mut total = [0usize; 3];
        for (counts, _) in &rows {
            (0..3).for_each(|i| total[i] += counts[i]);
        }
        rows.push((total, "total".into()));
    }
    let chosen = [l, w, c];
    let single = chosen.iter().filter(|x| **x).count() == 1 && files.len() == 1;
    let width = if single { 1 } else { regular_total.to_string().len().max(minimum) };
    for (counts, name) in rows {
        let mut cols: Vec<String> = (0..3).filter(|i| chosen[*i]).map(|i| format!("{:>width$}", counts[i])).collect();
        if !name.is_empty() {
            cols.push(name);
        }
        ran.out.extend(format!("{}\n", cols.join(" ")).bytes());
    }
}

/// The key of a line for `sort -k N[,M]` with `-t SEP` (or blank-separated fields).
fn sort_key<'a>(line: &'a str, o: &Options) -> &'a str {
    let Some(spec) = o.value('k') else { return line };
    let (start, end) = spec.split_once(',').map_or((spec, None), |(a, b)| (a, Some(b)));
    let field = |s: &str| {
        s.trim_end_matches(|c: char| c.is_ascii_alphabetic())
            .split('.')
            .next()
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(1)
    };
    let (first, last) = (field(start), end.map(field));
    let mut bounds: Vec<(usize, usize)> = Vec::new();
    match o.value('t').and_then(|t| t.chars().next()) {
        Some(sep) => {
            let mut from = 0;
            for (i, c) in line.char_indices() {
                if c == sep {
                    bounds.push((from, i));
                    from = i + c.len_utf8();
                }
            }
            bounds.push((from, line.len()));
        }
        None => {
            // A blank-separated field keeps the blanks before it, as GNU sort's do.
            let mut from = 0;
            let mut in_field = false;
            for (i, c) in line.char_indices() {
                if c.is_whitespace() && in_field {
                    bounds.push((from, i));
                    from = i;
                    in_field = false;
                } else if !c.is_whitespace() {
                    in_field = true;
                }
            }
            bounds.push((from, line.len()));
        }
    }
    let Some(&(s, _)) = bounds.get(first - 1) else { return "" };
    let e = last.and_then(|l| bounds.get(l - 1)).map_or(line.len(), |b| b.1);
    &line[s..e.max(s)]
}

/// The leading number of a key, for `sort -n` (none sorts as zero).
fn leading_number(key: &str) -> f64 {
    let t = key.trim_start();
    let end = t
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || *c == '.' || (*i == 0 && *c == '-')))
        .map_or(t.len(), |(i, _)| i);
    t[..end].parse().unwrap_or(0.0)
}

fn sort(o: &Options, mut lines: Vec<&str>, ran: &mut Ran) {
    let fold = o.has('f');
    let key = |l: &str| {
        let k = sort_key(l, o);
        let k = if o.has('b') { k.trim_start() } else { k };
        if fold { k.to_uppercase() } else { k.to_string() }
    };
    lines.sort_by(|a, b| {
        let (ka, kb) = (key(a), key(b));
        let primary = if o.has('n') {
            leading_number(&ka).partial_cmp(&leading_number(&kb)).unwrap_or(std::cmp::Ordering::Equal)
        } else {
            ka.as_bytes().cmp(kb.as_bytes())
        };
        // GNU sort breaks ties on the whole line (unless -s or -u).
        let tie = if o.has('s') || o.has('u') { std::cmp::Ordering::Equal } else { a.as_bytes().cmp(b.as_bytes()) };
        let ord = primary.then(tie);
        if o.has('r') { ord.reverse() } else { ord }
    });
    if o.has('u') {
        lines.dedup_by(|a, b| key(a) == key(b) && (!o.has('n') || leading_number(&key(a)) == leading_number(&key(b))));
    }
    for l in lines {
        ran.out.extend(l.bytes());
        ran.out.push(b'\n');
    }
}

fn uniq(o: &Options, lines: &[&str], ran: &mut Ran) {
    let same = |a: &str, b: &str| if o.has('i') { a.eq_ignore_ascii_case(b) } else { a == b };
    let mut i = 0;
    while i < lines.len() {
        let mut j = i + 1;
        while j < lines.len() && same(lines[i], lines[j]) {
            j += 1;
        }
        let n = j - i;
        if (!o.has('d') || n > 1) && (!o.has('u') || n == 1) {
            let line = if o.has('c') { format!("{n:>7} {}\n", lines[i]) } else { format!("{}\n", lines[i]) };
            ran.out.extend(line.bytes());
        }
        i = j;
    }
}

/// A cut list (`1,3`, `2-`, `-3`, `1-2`) as a test of 1-based positions.
fn in_list(list: &str, n: usize) -> bool {
    list.split(',').any(|part| match part.split_once('-') {
        Some((a, b)) => a.parse().unwrap_or(1) <= n && b.parse().unwrap_or(usize::MAX) >= n,
        None => part.parse() == Ok(n),
    })
}

fn cut(o: &Options, lines: &[&str], ran: &mut Ran) {
    if let Some(list) = o.value('c') {
        for line in lines {
            let kept: String = line.chars().enumerate().filter(|(i, _)| in_list(list, i + 1)).map(|(_, c)| c).collect();
            ran.out.extend(format!("{kept}\n").bytes());
        }
        return;
    }
    let Some(list) = o.value('f') else {
        ran.err.extend(b"cut: you must specify a list of bytes, characters, or fields\n");
        ran.status = 1;
        return;
    };
    let delim = o.value('d').and_then(|d| d.chars().next()).unwrap_or('\t');
    for line in lines {
        if !line.contains(delim) {
            if !o.has('s') {
                ran.out.extend(format!("{line}\n").bytes());
            }
            continue;
        }
        let kept: Vec<&str> =
            line.split(delim).enumerate().filter(|(i, _)| in_list(list, i + 1)).map(|(_, f)| f).collect();
        ran.out.extend(format!("{}\n", kept.join(&delim.to_string())).bytes());
    }
}

/// A character class of `tr`'s: its name and its test.
type Class = (&'static str, fn(char) -> bool);

/// A `tr` set: ranges, escapes and character classes spelled out.
fn tr_set(set: &str) -> Vec<char> {
    let classes: [Class; 8] = [
        ("[:upper:]", |c| c.is_ascii_uppercase()),
        ("[:lower:]", |c| c.is_ascii_lowercase()),
        ("[:digit:]", |c| c.is_ascii_digit()),
        ("[:alpha:]", |c| c.is_ascii_alphabetic()),
        ("[:alnum:]", |c| c.is_ascii_alphanumeric()),
        ("[:space:]", |c| c.is_ascii_whitespace() || c == '\x0b'),
        ("[:punct:]", |c| c.is_ascii_punctuation()),
        ("[:blank:]", |c| c == ' ' || c == '\t'),
    ];
    let (decoded, _) = super::printf::unescape(set);
    let mut out = Vec::new();
    let chars: Vec<char> = decoded.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let rest: String = chars[i..].iter().collect();
        if let Some((name, test)) = classes.iter().find(|(n, _)| rest.starts_with(n)) {
            out.extend((0u8..128).map(char::from).filter(|c| test(*c)));
            i += name.len();
        } else if i + 2 < chars.len() && chars[i + 1] == '-' {
            out.extend(chars[i]..=chars[i + 2]);
            i += 3;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

fn tr(o: &Options, text: &str, ran: &mut Ran) {
    let sets: Vec<Vec<char>> = o.operands.iter().map(|s| tr_set(s)).collect();
    let Some(first) = sets.first() else {
        ran.err.extend(b"tr: missing operand\n");
        ran.status = 1;
        return;
    };
    let complement = o.has('c') || o.has('C');
    let in_first = |c: char| first.contains(&c) != complement;
    let mut out = String::with_capacity(text.len());
    let squeeze_set: Option<&Vec<char>> = if o.has('s') { sets.last() } else { None };
    let mut last: Option<char> = None;
    for c in text.chars() {
        let mapped = if o.has('d') {
            if in_first(c) {
                continue;
            }
            Some(c)
        } else if let (Some(second), true) = (sets.get(1), in_first(c)) {
            let at = if complement {
                second.len().saturating_sub(1)
            } else {
                first.iter().position(|x| *x == c).unwrap_or(0)
            };
            second.get(at).or(second.last()).copied()
        } else {
            Some(c)
        };
        let Some(m) = mapped else { continue };
        if squeeze_set.is_some_and(|s| s.contains(&m) != (complement && sets.len() == 1)) && last == Some(m) {
            continue;
        }
        last = Some(m);
        out.push(m);
    }
    ran.out = out.into_bytes();
}

fn seq(args: &[String], ran: &mut Ran) {
    let o = parse_options(args, "s");
    let numbers: Vec<i64> = o.operands.iter().filter_map(|a| a.parse().ok()).collect();
    let (first, step, last) = match numbers.as_slice() {
        [l] => (1, 1, *l),
        [f, l] => (*f, 1, *l),
        [f, s, l] if *s != 0 => (*f, *s, *l),
        _ => {
            ran.err.extend(b"seq: give LAST, FIRST LAST or FIRST INCREMENT LAST, as whole numbers\n");
            ran.status = 1;
            return;
        }
    };
    let sep = o.value('s').unwrap_or("\n");
    let mut all = Vec::new();
    let mut n = first;
    while (step > 0 && n <= last) || (step < 0 && n >= last) {
        all.push(n.to_string());
        if all.len() > 10_000_000 {
            break;
        }
        n += step;
    }
    if !all.is_empty() {
        ran.out = format!("{}\n", all.join(sep)).into_bytes();
    }
}
