//! `commands.run` as a shell, through E2B's SDK (e2b 2.63.0, unmodified) against the real
//! server: every line of the table runs in a sandbox and, in the same order, under the
//! host's `/bin/sh` in a temporary directory holding the same files; stdout, stderr and the
//! exit status must be the same (the directory's path read as `/home/user`).

use cella_e2e::{code_server, e2b_script};
use serde_json::{Value, json};

/// The files both sides start with.
const FILES: &[(&str, &str)] = &[
    ("a.txt", "alpha\nbeta\ngamma\nalpha\n"),
    ("b.txt", "one\ntwo\n"),
    ("data/x.csv", "id,name\n1,ann\n2,bob\n"),
    ("data/y.csv", "id,name\n3,cy\n"),
    ("data/notes.md", "# notes\n"),
];

/// The lines, run in order (files they make stay for the next).
const LINES: &[&str] = &[
    "echo hi",
    // The benchmark's ten stages (runtime/benches/sandboxes.rs).
    "seq 1 1000 | sort -r | head -n 800 | tail -n 600 | grep 1 | sort -n | uniq | cut -c1-2 | tr 0-9 a-j | wc -l",
    "echo \"a & b\"",
    "echo 'single $HOME' \"double $HOME\"",
    "echo $HOME",
    "cd data && ls | grep csv > list.txt; cat list.txt",
    "cat data/list.txt",
    "cat a.txt b.txt | wc -l",
    "mkdir -p out; touch out/x; ls out",
    "sleep 0.2; echo done",
    "printf '%s\\n' a b",
    "printf '%5s|%-3s|%03d\\n' ab c 7",
    "export K=v; echo $K; sh -c 'echo $K'",
    "K=w env | grep '^K='",
    "false || echo recovered; true && echo yes",
    "false && echo never; echo $?",
    "cat missing.txt",
    "ls missing 2>&1; echo $?",
    "echo err 1>&2",
    "echo both > both.txt 2>&1; cat both.txt",
    "head -n 2 a.txt; tail -n 1 a.txt; head -1 b.txt",
    "tail -n +3 a.txt",
    "sort a.txt | uniq -c",
    "sort -r a.txt | uniq",
    "cut -d, -f2 data/x.csv",
    "cut -c1-3 b.txt",
    "echo Hello World | tr a-z A-Z",
    "echo hello | tr -d l",
    "find data -name '*.csv' | sort",
    "find . -type d | sort",
    "cp a.txt c.txt && mv c.txt d.txt && ls && rm d.txt && ls",
    "grep -n alpha a.txt; grep -c a a.txt; grep -v a a.txt; grep -i ALPHA a.txt",
    "grep -r ann data",
    "grep nothing a.txt; echo $?",
    "grep -E 'al|ga' a.txt",
    "for f in *.txt; do echo \"file $f\"; done",
    "for f in data/*.csv; do wc -l $f; done",
    "x=3; if [ $x -gt 2 ]; then echo big; else echo small; fi",
    "test -f a.txt && echo file; [ -d data ] && echo dir; [ -e nope ] || echo none",
    "[ abc = abc ] && [ -n abc ] && [ -z '' ] && echo strings",
    "echo $((2 + 3 * 4)) $((10 / 3)) $((7 % 4))",
    "wc -c < a.txt; wc a.txt; wc -l a.txt b.txt",
    "cat <<EOF\nline $HOME\nEOF",
    "case abc in a*) echo starts;; *) echo other;; esac",
    "n=0; while [ $n -lt 3 ]; do echo $n; n=$((n+1)); done",
    "echo $(echo nested) \"$(head -1 a.txt)\" `echo back`",
    "pwd; cd data; pwd; cd ..; pwd",
    "v=file.tar.gz; echo ${v%.gz} ${v##*.} ${#v} ${unset:-default} ${v#file.}",
    "echo a > f.txt; echo b >> f.txt; cat f.txt",
    "which ls; which nosuch; echo $?",
    "seq 1 5 | sort -rn | head -3",
    "seq 3 | while read n; do echo \"n=$n\"; done",
    "f() { echo \"in f $1\"; }; f arg",
    "{ echo grouped; echo twice; } | wc -l",
    "(cd data && pwd); pwd",
    "! false && echo negated",
    "echo *.md data/*.md",
    "echo nomatch*.zzz",
    "basename /a/b/c.txt .txt; dirname /a/b/c.txt",
    "rm -r out && ls out",
    "mkdir a.txt",
    "exit 3",
    "cat a.txt | grep a | sort | uniq | tr a-z A-Z | cut -c1-3 | sort -r | head -5 | tail -3 | wc -l",
];

/// Runs the lines under `/bin/sh` in a fresh directory holding [`FILES`].
fn under_sh() -> Vec<Value> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let root = dir.path().canonicalize().expect("its path");
    for (path, text) in FILES {
        let file = root.join(path);
        std::fs::create_dir_all(file.parent().expect("a folder")).expect("mkdir");
        std::fs::write(file, text).expect("write");
    }
    let home = root.to_string_lossy().into_owned();
    LINES
        .iter()
        .map(|line| {
            let out = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(line)
                .current_dir(&root)
                .env_clear()
                .env("HOME", &home)
                .env("PATH", "/usr/bin:/bin")
                .env("LC_ALL", "C")
                .output()
                .expect("/bin/sh runs");
            let text = |b: &[u8]| String::from_utf8_lossy(b).replace(&home, "/home/user");
            json!({"stdout": text(&out.stdout), "stderr": text(&out.stderr), "exit_code": out.status.code()})
        })
        .collect()
}

#[tokio::test]
async fn shell_lines_do_what_bin_sh_does() {
    let s = code_server(json!({})).await;
    let files: serde_json::Map<String, Value> =
        FILES.iter().map(|(p, t)| (format!("/home/user/{p}"), json!(t))).collect();
    let input = json!({"files": files, "lines": LINES});
    let out = e2b_script(&s, "any-key", "shell.py", "lines", &input).await;
    let expected = under_sh();
    let ran = out["ran"].as_array().expect("a result a line");
    let mut differ = Vec::new();
    for ((line, got), want) in LINES.iter().zip(ran).zip(&expected) {
        if got != want {
            differ.push(format!("{line}\n  cella:   {got}\n  /bin/sh: {want}"));
        }
    }
    assert!(differ.is_empty(), "{} of {} lines differ:\n{}", differ.len(), LINES.len(), differ.join("\n"));
}

#[tokio::test]
async fn python_and_node_run_with_the_commands_env_args_and_stdin() {
    let s = code_server(json!({})).await;
    let out = e2b_script(&s, "any-key", "shell.py", "programs", &Value::Null).await;
    let ran =
        |k: &str| (out[k]["exit_code"].as_i64().unwrap_or(-1), out[k]["stdout"].as_str().unwrap_or("").to_string());
    assert_eq!(ran("env_prefix"), (0, "1 ['a', 'b']\n".into()), "{out}");
    assert_eq!(ran("envs"), (0, "bar\n".into()), "commands.run(envs=...) reaches the program: {out}");
    assert_eq!(ran("exported"), (0, "exp []\n".into()), "{out}");
    assert_eq!(ran("stdin"), (0, "2\n".into()), "a pipe is the program's stdin: {out}");
    assert_eq!(ran("exit"), (0, "after 3\n".into()), "sys.exit(3) is the exit status: {out}");
    assert_eq!(ran("traceback").1, "failed\n", "{out}");
    assert!(out["traceback"]["stderr"].as_str().unwrap_or("").contains("ZeroDivisionError"), "{out}");
    assert_eq!(ran("piped"), (0, "a\nb\n".into()), "{out}");
    assert_eq!(ran("node"), (0, "42\n".into()), "{out}");
    for refused in ["refused", "sudo"] {
        assert_eq!(out[refused]["exit_code"], 127, "{out}");
        assert!(out[refused]["stderr"].as_str().unwrap_or("").contains("runs no programs"), "{out}");
    }
    assert_eq!(
        ran("cwd"),
        (0, "/home/user/d\nhere.txt\n".into()),
        "commands.run(cwd=...) is where the line starts: {out}"
    );
    assert_eq!(out["deadline"]["exit_code"], "TimeoutException", "the SDK's timeout, as against E2B: {out}");
    assert_eq!(out["running_after_deadline"], json!([]), "the server stopped the line at its deadline: {out}");
    assert_eq!(out["ln"]["exit_code"], 1, "{out}");
    assert!(out["ln"]["stderr"].as_str().unwrap_or("").contains("links are not offered"), "{out}");
    let listing = out["ls_la"]["stdout"].as_str().unwrap_or("");
    assert!(listing.starts_with("total "), "{listing}");
    assert!(listing.lines().any(|l| l.starts_with("drwxr-xr-x") && l.ends_with(" d")), "{listing}");
    assert!(listing.lines().any(|l| l.starts_with("-rw-r--r--") && l.ends_with(" t")), "{listing}");
    assert_eq!(out["streamed"]["lines"], json!(["one\n", "two\n"]), "output streams as it is written: {out}");
    assert_eq!(out["streamed"]["stdout"], "one\ntwo\n", "{out}");
}
