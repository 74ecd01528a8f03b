//! `echo` and `printf`, as bash's, and the backslash escapes they and `$'…'` share.

use super::Ran;

/// `echo [-neE] WORDS…`, as bash's.
pub(super) fn echo(args: &[String]) -> Ran {
    let (mut newline, mut escapes, mut at) = (true, false, 0);
    for a in args {
        let flags = a.strip_prefix('-').filter(|f| !f.is_empty() && f.chars().all(|c| "neE".contains(c)));
        let Some(flags) = flags else { break };
        for c in flags.chars() {
            match c {
                'n' => newline = false,
                'e' => escapes = true,
                _ => escapes = false,
            }
        }
        at += 1;
    }
    let mut text = args[at..].join(" ");
    if escapes {
        let (decoded, stop) = unescape(&text);
        text = decoded;
        if stop {
            return Ran::ok(text);
        }
    }
    if newline {
        text.push('\n');
    }
    Ran::ok(text)
}

/// Backslash escapes as `echo -e` and `printf` read them; true when `\c` stops the output.
pub(super) fn unescape(s: &str) -> (String, bool) {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('a') => out.push('\x07'),
            Some('b') => out.push('\x08'),
            Some('f') => out.push('\x0c'),
            Some('v') => out.push('\x0b'),
            Some('e') => out.push('\x1b'),
            Some('\\') => out.push('\\'),
            Some('c') => return (out, true),
            Some('0') => {
                let mut n = 0u32;
                for _ in 0..3 {
                    match chars.peek().and_then(|c| c.to_digit(8)) {
                        Some(d) => {
                            n = n * 8 + d;
                            chars.next();
                        }
                        None => break,
                    }
                }
                out.push(char::from_u32(n).unwrap_or('\0'));
            }
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    (out, false)
}

/// `printf FORMAT ARGS…`: the format is used again while arguments remain.
pub(super) fn printf(format: &str, args: &[String]) -> Ran {
    let mut ran = Ran::ok("");
    let mut rest = args;
    loop {
        let (text, used, stop) = printf_once(format, rest, &mut ran);
        ran.out.extend(text.into_bytes());
        rest = &rest[used.min(rest.len())..];
        if stop || used == 0 || rest.is_empty() {
            return ran;
        }
    }
}

/// One pass of the format; answers the text, how many arguments it took, and whether `\c`
/// stopped it.
fn printf_once(format: &str, args: &[String], ran: &mut Ran) -> (String, usize, bool) {
    let mut out = String::new();
    let mut used = 0;
    let chars: Vec<char> = format.chars().collect();
    let mut i = 0;
    let next = |used: &mut usize| {
        let a = args.get(*used).cloned().unwrap_or_default();
        *used += 1;
        a
    };
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                let end = (i + 5).min(chars.len());
                let piece: String = chars[i..end].iter().collect();
                let one = match piece.strip_prefix("\\0") {
                    Some(octal) => 2 + octal.chars().take_while(|c| c.is_digit(8)).count(),
                    None => 2,
                };
                let one = one.min(chars.len() - i);
                let (text, stop) = unescape(&chars[i..i + one].iter().collect::<String>());
                out.push_str(&text);
                if stop {
                    return (out, used, true);
                }
                i += one;
            }
            '%' => {
                let start = i;
                i += 1;
                while i < chars.len() && "-+ #0123456789.".contains(chars[i]) {
                    i += 1;
                }
                let Some(&conv) = chars.get(i) else {
                    out.push_str(&chars[start..].iter().collect::<String>());
                    break;
                };
                i += 1;
                let spec: String = chars[start + 1..i - 1].iter().collect();
                match conv {
                    '%' => out.push('%'),
                    's' => out.push_str(&pad(&spec, &next(&mut used))),
                    'b' => out.push_str(&pad(&spec, &unescape(&next(&mut used)).0)),
                    'c' => {
                        out.push_str(&pad(&spec, &next(&mut used).chars().next().map(String::from).unwrap_or_default()))
                    }
                    'd' | 'i' | 'u' | 'x' | 'X' | 'o' => {
                        let a = next(&mut used);
                        let n = parse_int(&a).unwrap_or_else(|| {
                            ran.err.extend(format!("printf: {a}: invalid number\n").bytes());
                            ran.status = 1;
                            0
                        });
                        let digits = match conv {
                            'x' => format!("{n:x}"),
                            'X' => format!("{n:X}"),
                            'o' => format!("{n:o}"),
                            _ => n.to_string(),
                        };
                        out.push_str(&pad_number(&spec, &digits));
                    }
                    'f' | 'e' | 'g' => {
                        let a = next(&mut used);
                        let n: f64 = a.trim().parse().unwrap_or(0.0);
                        let precision = spec.split_once('.').and_then(|(_, p)| p.parse::<usize>().ok()).unwrap_or(6);
                        let text = match conv {
                            'e' => format!("{n:.precision$e}"),
                            _ => format!("{n:.precision$}"),
                        };
                        out.push_str(&pad_number(spec.split('.').next().unwrap_or(""), &text));
                    }
                    other => {
                        ran.err.extend(format!("printf: %{other}: invalid directive\n").bytes());
                        ran.status = 1;
                    }
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    (out, used, false)
}

fn parse_int(a: &str) -> Option<i64> {
    let t = a.trim();
    if t.is_empty() {
        return Some(0);
    }
    if let Some(c) = t.strip_prefix('\'').or_else(|| t.strip_prefix('"')) {
        return c.chars().next().map(|c| c as i64);
    }
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return i64::from_str_radix(hex, 16).ok();
    }
    t.parse().ok()
}

/// `%-10s`, `%5s`, `%.3s`.
fn pad(spec: &str, text: &str) -> String {
    let (width, precision) = spec.split_once('.').map_or((spec, None), |(w, p)| (w, p.parse::<usize>().ok()));
    let text: String = match precision {
        Some(p) => text.chars().take(p).collect(),
        None => text.to_string(),
    };
    let left = width.contains('-');
    let w: usize = width.trim_start_matches(['-', '+', ' ', '#', '0']).parse().unwrap_or(0);
    if left { format!("{text:<w$}") } else { format!("{text:>w$}") }
}

/// `%05d`, `%-4d`, `%3d`.
fn pad_number(spec: &str, digits: &str) -> String {
    let zero = spec.trim_start_matches(['-', '+', ' ', '#']).starts_with('0') && !spec.contains('-');
    let w: usize =
        spec.trim_start_matches(['-', '+', ' ', '#', '0']).split('.').next().unwrap_or("").parse().unwrap_or(0);
    if zero {
        let (sign, body) = digits.strip_prefix('-').map_or(("", digits), |b| ("-", b));
        let w = w.saturating_sub(sign.len());
        format!("{sign}{body:0>w$}")
    } else if spec.contains('-') {
        format!("{digits:<w$}")
    } else {
        format!("{digits:>w$}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printf_reuses_its_format_and_pads() {
        let out = |f: &str, a: &[&str]| {
            let args: Vec<String> = a.iter().map(|s| s.to_string()).collect();
            String::from_utf8(printf(f, &args).out).expect("text")
        };
        assert_eq!(out("%s\\n", &["a", "b"]), "a\nb\n");
        assert_eq!(out("[%5s|%-3s]", &["ab", "c"]), "[   ab|c  ]");
        assert_eq!(out("%03d %x %%", &["7", "255"]), "007 ff %");
        assert_eq!(out("%.2f", &["3.14159"]), "3.14");
        assert_eq!(out("no args\\n", &[]), "no args\n");
    }
}
