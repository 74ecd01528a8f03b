//! A backend project: a folder with a `cella.json` (name and language), scaffolded by
//! [`Project::create`] (`cella new`) and built by [`Project::build`] (`cella build`).

use crate::{Error, Tools, build_c, build_javascript, build_python, build_rust};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The languages a backend can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// Rust with `cella-guest`.
    Rust,
    /// Python with `cella_guest.py`, built by componentize-py.
    Python,
    /// JavaScript with `cella-guest.js`, built by componentize-js.
    JavaScript,
    /// C with `cella.h` over the wit-bindgen C bindings, built by clang and wit-component.
    C,
}

impl Language {
    /// The name `cella.json` and `--lang` use.
    pub fn name(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::Python => "python",
            Language::JavaScript => "js",
            Language::C => "c",
        }
    }
}

impl FromStr for Language {
    type Err = Error;

    fn from_str(s: &str) -> Result<Language, Error> {
        match s.to_ascii_lowercase().as_str() {
            "rust" | "rs" => Ok(Language::Rust),
            "python" | "py" => Ok(Language::Python),
            "js" | "javascript" => Ok(Language::JavaScript),
            "c" => Ok(Language::C),
            other => Err(Error::Project(format!("unknown language '{other}': use rust, python, js or c"))),
        }
    }
}

/// The WIT contract, the guest SDK files, and the templates, as shipped with this crate.
mod files {
    pub const WIT: &str = include_str!("../../wit/backend.wit");
    pub const PYTHON_SDK: &str = include_str!("../../sdk/guest-python/cella_guest.py");
    pub const JS_SDK: &str = include_str!("../../sdk/guest-js/cella-guest.js");
    pub const C_HEADER: &str = include_str!("../../sdk/guest-c/cella.h");
    pub const JSMN: &str = include_str!("../../sdk/guest-c/vendor/jsmn.h");
    pub const JSMN_LICENSE: &str = include_str!("../../sdk/guest-c/vendor/jsmn-LICENSE");
    pub const RUST_APP: &str = include_str!("../templates/rust/lib.rs");
    pub const PYTHON_APP: &str = include_str!("../templates/python/app.py");
    pub const JS_APP: &str = include_str!("../templates/js/app.js");
    pub const C_APP: &str = include_str!("../templates/c/app.c");
    pub const README: &str = include_str!("../templates/README.md");
}

/// A backend project on disk.
#[derive(Debug, Clone)]
pub struct Project {
    /// The project folder.
    pub dir: PathBuf,
    /// The backend's name: its resource type and the prefix of its tools.
    pub name: String,
    /// The language it is written in.
    pub language: Language,
}

impl Project {
    /// Reads the project in `dir` (its `cella.json`).
    pub fn open(dir: &Path) -> Result<Project, Error> {
        let manifest = dir.join("cella.json");
        let text = std::fs::read_to_string(&manifest).map_err(|e| {
            Error::Project(format!(
                "{} is not a backend project ({}: {e}); make one with `cella new <name> --lang rust|python|js|c`",
                dir.display(),
                manifest.display()
            ))
        })?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::Project(format!("{} is not valid JSON: {e}", manifest.display())))?;
        let field = |key: &str| {
            value[key]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| Error::Project(format!("{} needs a string `{key}`", manifest.display())))
        };
        Ok(Project { dir: dir.to_path_buf(), name: field("name")?, language: field("language")?.parse()? })
    }

    /// Scaffolds a working project `name` in `dir` (which must not exist or be empty). A Rust
    /// project depends on the `cella-guest` crate at `guest_rust` (a path).
    pub fn create(dir: &Path, name: &str, language: Language, guest_rust: &Path) -> Result<Project, Error> {
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !valid {
            return Err(Error::Project(format!(
                "'{name}' is not a valid backend name: use lowercase letters, digits, '-' and '_', starting with a letter"
            )));
        }
        if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
            return Err(Error::Project(format!("{} already exists and is not empty", dir.display())));
        }
        let ident = name.replace('-', "_");
        let fill = |template: &str| template.replace("{{name}}", name).replace("{{ident}}", &ident);
        let mut files: Vec<(&str, String)> = vec![
            ("cella.json", format!("{:#}\n", json!({"name": name, "language": language.name()}))),
            ("README.md", fill(files::README).replace("{{language}}", language.name())),
            (".gitignore", "/build/\n/target/\n__pycache__/\n".to_string()),
        ];
        match language {
            Language::Rust => {
                let guest = guest_rust.display().to_string();
                files.push((
                    "Cargo.toml",
                    format!(
                        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\ncella-guest = {{ path = {guest:?} }}\nserde = {{ version = \"1\", features = [\"derive\"] }}\nschemars = \"1\"\n\n[profile.release]\nopt-level = \"s\"\nlto = true\nstrip = true\n\n[workspace]\n"
                    ),
                ));
                files.push((
                    "rust-toolchain.toml",
                    "[toolchain]\nchannel = \"1.95.0\"\ntargets = [\"wasm32-wasip2\"]\nprofile = \"minimal\"\n"
                        .to_string(),
                ));
                files.push(("src/lib.rs", fill(files::RUST_APP)));
            }
            Language::Python => {
                files.push(("app.py", fill(files::PYTHON_APP)));
                files.push(("cella_guest.py", files::PYTHON_SDK.to_string()));
                files.push(("wit/backend.wit", files::WIT.to_string()));
            }
            Language::JavaScript => {
                files.push(("app.js", fill(files::JS_APP)));
                files.push(("cella-guest.js", files::JS_SDK.to_string()));
                files.push(("wit/backend.wit", files::WIT.to_string()));
            }
            Language::C => {
                files.push(("app.c", fill(files::C_APP)));
                files.push(("cella.h", files::C_HEADER.to_string()));
                files.push(("vendor/jsmn.h", files::JSMN.to_string()));
                files.push(("vendor/jsmn-LICENSE", files::JSMN_LICENSE.to_string()));
                files.push(("wit/backend.wit", files::WIT.to_string()));
            }
        }
        for (path, contents) in files {
            let path = dir.join(path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
            }
            std::fs::write(&path, contents).map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        }
        Project::open(dir)
    }

    /// Where [`Project::build`] writes the component: `build/<name>.wasm`.
    pub fn output(&self) -> PathBuf {
        self.dir.join("build").join(format!("{}.wasm", self.name))
    }

    /// Builds the project into [`Project::output`], installing the language's tools on first
    /// use into `tools`.
    pub fn build(&self, tools: &Tools) -> Result<PathBuf, Error> {
        let out = self.output();
        let wit = self.dir.join("wit");
        match self.language {
            Language::Rust => {
                // cargo's own CARGO_TARGET_DIR is honoured, as cargo itself would.
                let target = std::env::var_os("CARGO_TARGET_DIR")
                    .map(PathBuf::from)
                    .map(|t| if t.is_absolute() { t } else { self.dir.join(t) })
                    .unwrap_or_else(|| self.dir.join("target"));
                build_rust(&self.dir, &self.name, &target, &out)?
            }
            Language::Python => build_python(tools, &wit, &[&self.dir], "app", &out)?,
            Language::JavaScript => build_javascript(tools, &wit, &self.dir, Path::new("app.js"), &out)?,
            Language::C => {
                let mut sources: Vec<PathBuf> = std::fs::read_dir(&self.dir)
                    .map_err(|e| Error::io(format!("reading {}", self.dir.display()), e))?
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "c"))
                    .collect();
                sources.sort();
                build_c(tools, &wit, &sources, std::slice::from_ref(&self.dir), &self.dir.join("build"), &out)?;
            }
        }
        Ok(out)
    }
}
