//! The runtime's error type.

use std::path::PathBuf;

/// Everything that can go wrong in `cella-runtime` outside a guest call. Failures of guest
/// calls are [`crate::engine::fault::Fault`]s and tool errors are result envelopes; this type is for
/// configuration, loading and compilation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid; the message names the field.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// A component could not be loaded: not a component, does not implement the world,
    /// failed to compile or to describe itself.
    #[error("backend '{backend}': {message}")]
    Load {
        /// The backend (resource) name.
        backend: String,
        /// What went wrong.
        message: String,
    },
    /// The wasmtime engine could not be set up.
    #[error("engine: {0}")]
    Engine(String),
}

impl Error {
    pub(crate) fn load(backend: &str, message: impl std::fmt::Display) -> Self {
        Error::Load { backend: backend.to_string(), message: message.to_string() }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}

/// The runtime's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
