//! `find`, over the sandbox's [`Files`]: names, types and depths, in sorted order.

use super::Ran;
use super::fileutils::{at, normalize, reason};
use crate::sandboxes::{Entry, Files, Kind};
use std::path::Path;

/// `find [PATH…] [-name P] [-iname P] [-type f|d] [-maxdepth N] [-mindepth N] [-print]`,
/// names in sorted order.
pub(super) fn find(f: &Files, cwd: &str, args: &[String], ran: &mut Ran) {
    let mut roots = Vec::new();
    let (mut names, mut kind, mut max, mut min) = (Vec::new(), None, u32::MAX, 0u32);
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match a {
            "-name" | "-iname" => {
                let insensitive = a == "-iname";
                let pattern = if insensitive { value.to_lowercase() } else { value.clone() };
                match super::expand::pattern_regex(&pattern) {
                    Ok(re) => names.push((re, insensitive)),
                    Err(e) => {
                        ran.err.extend(format!("find: {e}\n").bytes());
                        ran.status = 1;
                        return;
                    }
                }
                i += 1;
            }
            "-type" => {
                kind = Some(if value == "d" {
                    Kind::Dir
                } else if value == "l" {
                    Kind::Symlink
                } else {
                    Kind::File
                });
                i += 1;
            }
            "-maxdepth" | "-mindepth" => {
                let n = value.parse().unwrap_or(0);
                if a == "-maxdepth" {
                    max = n
                } else {
                    min = n
                }
                i += 1;
            }
            "-print" => {}
            _ if a.starts_with('-') => {
                ran.err.extend(format!("find: unknown predicate '{a}'\n").bytes());
                ran.status = 1;
                return;
            }
            _ => roots.push(a.to_string()),
        }
        i += 1;
    }
    if roots.is_empty() {
        roots.push(".".into());
    }
    let keep = |e: &Entry, depth: u32| {
        depth >= min
            && kind.is_none_or(|k| k == e.kind)
            && names.iter().all(|(re, lower)| re.is_match(&if *lower { e.name.to_lowercase() } else { e.name.clone() }))
    };
    for root in &roots {
        let guest = normalize(&at(cwd, root));
        let top = match f.stat(&guest) {
            Ok(e) => e,
            Err(e) => {
                ran.err.extend(format!("find: '{root}': {}\n", reason(&e)).bytes());
                ran.status = 1;
                continue;
            }
        };
        let mut top_named = top.clone();
        top_named.name = Path::new(root).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or(root.clone());
        if keep(&top_named, 0) {
            ran.out.extend(format!("{root}\n").bytes());
        }
        if top.kind != Kind::Dir || max == 0 {
            continue;
        }
        let Ok(entries) = f.list(&guest, max) else { continue };
        for e in entries {
            let rel = e.path.strip_prefix(&guest).unwrap_or(&e.path).trim_start_matches('/');
            let depth = rel.split('/').count() as u32;
            if keep(&e, depth) {
                ran.out.extend(format!("{}/{rel}\n", root.trim_end_matches('/')).bytes());
            }
        }
    }
}
