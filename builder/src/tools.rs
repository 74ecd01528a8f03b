//! The guest toolchains: found, or installed on first use from the ordinary registries.

use crate::{COMPONENTIZE_JS, COMPONENTIZE_PY, Error};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Debian packages that give clang a `wasm32-wasi` target with a C library.
pub const C_PACKAGES: &[&str] = &["clang", "lld", "wasi-libc", "libclang-rt-dev-wasm32"];

/// Where the guest toolchains live (`<dir>/venvs/componentize-py`, `<dir>/node-tools`).
#[derive(Debug, Clone)]
pub struct Tools {
    dir: PathBuf,
}

impl Tools {
    /// Toolchains under `dir` (the repository's `target/` by default).
    pub fn new(dir: impl Into<PathBuf>) -> Tools {
        Tools { dir: dir.into() }
    }

    /// The folder the toolchains live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The componentize-py program, installed with pip into a virtual environment on first
    /// use (needs python3 with venv and the PyPI registry).
    pub fn componentize_py(&self) -> Result<PathBuf, Error> {
        let venv = self.dir.join("venvs/componentize-py");
        let want = format!("componentize-py=={COMPONENTIZE_PY}\n");
        self.installed(&venv, "componentize-py", &want, |venv| {
            let status = Command::new("python3").arg("-m").arg("venv").arg(venv).output();
            check(status, "python3 -m venv", "python3 (3.10 or newer) with the venv module")?;
            let pip = Command::new(venv.join("bin/python"))
                .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
                .arg(want.trim())
                .output();
            check(pip, "pip install componentize-py", "the PyPI registry")
        })?;
        Ok(venv.join("bin/componentize-py"))
    }

    /// The Python of the componentize-py environment (for `pip download` of wheels).
    pub fn python(&self) -> Result<PathBuf, Error> {
        self.componentize_py()?;
        Ok(self.dir.join("venvs/componentize-py/bin/python"))
    }

    /// The componentize-js program, installed with npm on first use (needs Node.js, npm and
    /// the npm registry).
    pub fn componentize_js(&self) -> Result<PathBuf, Error> {
        let prefix = self.dir.join("node-tools");
        let package = format!("@bytecodealliance/componentize-js@{COMPONENTIZE_JS}");
        self.installed(&prefix, "componentize-js", &package, |prefix| {
            std::fs::create_dir_all(prefix).map_err(|e| Error::io(format!("creating {}", prefix.display()), e))?;
            let npm = Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix"])
                .arg(prefix)
                .arg(&package)
                .output();
            check(npm, "npm install componentize-js", "Node.js with npm, and the npm registry")
        })?;
        Ok(prefix.join("node_modules/.bin/componentize-js"))
    }

    /// clang with a `wasm32-wasi` C library: Debian's packages ([`C_PACKAGES`]), installed
    /// with apt-get when they are missing and this process runs as root.
    pub fn clang(&self) -> Result<PathBuf, Error> {
        let ready = || {
            Path::new("/usr/lib/wasm32-wasi/libc.a").exists()
                && find_builtins().is_some()
                && Command::new("clang").arg("--version").output().is_ok_and(|o| o.status.success())
                && Command::new("wasm-ld").arg("--version").output().is_ok_and(|o| o.status.success())
        };
        if ready() {
            return Ok(PathBuf::from("clang"));
        }
        let lock = lock(&self.dir.join("apt"))?;
        if !ready() {
            let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
            let hint = format!("install Debian's {} (apt-get install {})", C_PACKAGES.join(", "), C_PACKAGES.join(" "));
            if !root {
                return Err(Error::MissingTool { tool: "clang for wasm32-wasi".into(), hint });
            }
            eprintln!("cella-build: installing {} with apt-get", C_PACKAGES.join(" "));
            let install = || {
                Command::new("apt-get")
                    .args(["install", "-y", "--no-install-recommends", "-q"])
                    .args(C_PACKAGES)
                    .env("DEBIAN_FRONTEND", "noninteractive")
                    .output()
            };
            if !install().is_ok_and(|o| o.status.success()) {
                let _ = Command::new("apt-get").args(["update", "-q"]).output();
                check(install(), "apt-get install", &hint)?;
            }
            if !ready() {
                return Err(Error::MissingTool { tool: "clang for wasm32-wasi".into(), hint });
            }
        }
        drop(lock);
        Ok(PathBuf::from("clang"))
    }

    /// Runs `install` under a lock unless `stamp_dir/.cella-build` already says `want`.
    pub(crate) fn installed(
        &self,
        dir: &Path,
        what: &str,
        want: &str,
        install: impl FnOnce(&Path) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let stamp = dir.join(".cella-build");
        if std::fs::read_to_string(&stamp).is_ok_and(|s| s == want) {
            return Ok(());
        }
        let _lock = lock(dir)?;
        if std::fs::read_to_string(&stamp).is_ok_and(|s| s == want) {
            return Ok(());
        }
        eprintln!("cella-build: installing {what} into {}", dir.display());
        let _ = std::fs::remove_dir_all(dir);
        install(dir)?;
        std::fs::write(&stamp, want).map_err(|e| Error::io(format!("writing {}", stamp.display()), e))
    }
}

/// The compiler-rt builtins for wasm32 (Debian puts them under clang's resource folder).
fn find_builtins() -> Option<PathBuf> {
    let output = Command::new("clang").arg("--print-resource-dir").output().ok()?;
    let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let path = dir.join("lib/wasi/libclang_rt.builtins-wasm32.a");
    path.exists().then_some(path)
}

/// An exclusive lock on `<path>.lock`, held until dropped.
pub(crate) fn lock(path: &Path) -> Result<File, Error> {
    let file = path.with_extension("lock");
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
    }
    let handle = File::create(&file).map_err(|e| Error::io(format!("creating {}", file.display()), e))?;
    handle.lock().map_err(|e| Error::io(format!("locking {}", file.display()), e))?;
    Ok(handle)
}

fn check(output: std::io::Result<std::process::Output>, what: &str, needs: &str) -> Result<(), Error> {
    match output {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(Error::Failed {
            what: format!("{what} (needs {needs})"),
            output: format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
        }),
        Err(e) => Err(Error::MissingTool { tool: what.into(), hint: format!("{e}; needs {needs}") }),
    }
}
