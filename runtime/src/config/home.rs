//! The Cella home: where `cella` finds the product's components (`builtin:<name>`), the
//! example data the embedded default configuration grants (`corpus/`, `data/`,
//! `wheelhouse/`) and the Rust guest SDK that `cella new` projects depend on (`sdk/`).
//!
//! In order: `$CELLA_HOME`; `share/cella` beside the binary's folder (the installed tree
//! `scripts/package.sh` makes: `bin/cella`, `share/cella/…`); the home the build laid out
//! (`target/cella-home`, links into the checkout). Nothing else depends on the checkout, so
//! an installed or moved `cella` runs without it.

use std::path::PathBuf;
use std::sync::OnceLock;

include!(concat!(env!("OUT_DIR"), "/components.rs"));

/// Where the home was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `$CELLA_HOME`.
    Env,
    /// `share/cella` beside the binary's folder.
    Installed,
    /// The build's `target/cella-home`.
    Build,
}

/// The Cella home in use.
#[derive(Debug, Clone)]
pub struct Home {
    /// The folder.
    pub dir: PathBuf,
    /// How it was found.
    pub source: Source,
}

impl Home {
    /// Finds the home (see the module's documentation).
    pub fn find() -> Home {
        if let Some(dir) = std::env::var_os("CELLA_HOME").filter(|d| !d.is_empty()) {
            return Home { dir: PathBuf::from(dir), source: Source::Env };
        }
        let installed = std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.parent()?.join("share").join("cella")))
            .filter(|d| d.join("components").is_dir());
        match installed {
            Some(dir) => Home { dir, source: Source::Installed },
            None => Home { dir: PathBuf::from(BUILD_HOME), source: Source::Build },
        }
    }

    /// The `.wasm` of the product component `name`, if this home has it.
    pub fn component(&self, name: &str) -> Option<PathBuf> {
        let path = self.dir.join("components").join(format!("{name}.wasm"));
        path.is_file().then_some(path)
    }

    /// The guest SDK sources (`sdk/guest-rust`, `sdk/codes`).
    pub fn sdk(&self) -> PathBuf {
        self.dir.join("sdk")
    }

    /// Where `cella build` keeps the guest toolchains it installs: the build's `target/`,
    /// `$CELLA_HOME/tools`, or the user's cache for an installed tree (often not writable).
    pub fn tools(&self) -> PathBuf {
        match self.source {
            Source::Env => self.dir.join("tools"),
            Source::Installed => user_cache_dir().join("tools"),
            Source::Build => PathBuf::from(BUILD_TOOLS),
        }
    }
}

/// The home of this process, found once.
pub fn home() -> &'static Home {
    static HOME: OnceLock<Home> = OnceLock::new();
    HOME.get_or_init(Home::find)
}

/// `$XDG_CACHE_HOME/cella`, `~/.cache/cella`, or a folder in the temporary directory.
pub fn user_cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("cella")
}
