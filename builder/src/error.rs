//! The one error type of the crate.

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The project folder is not a backend project this crate can build.
    #[error("{0}")]
    Project(String),
    /// A file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A tool the build needs is missing and could not be installed.
    #[error("{tool} is needed: {hint}")]
    MissingTool {
        /// The tool.
        tool: String,
        /// How to get it.
        hint: String,
    },
    /// A build step failed; `output` is what it printed.
    #[error("{what} failed:\n{output}")]
    Failed {
        /// The step.
        what: String,
        /// Its output.
        output: String,
    },
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io { what: what.into(), source }
    }
}
