//! Coded errors: what a tool or hook returns when it fails.

use crate::bindings::exports::cella::backend::guest as wit;

/// The result codes of the table in docs/codes.md (the `cella-codes` crate, shared with the host).
pub use cella_codes as codes;

/// An error returned by a tool or a lifecycle hook. Its code becomes the result envelope's
/// `code`, so pick one from [`codes`] (4xxx for the caller's mistakes, 5xxx for failures).
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    /// The result code.
    pub code: i32,
    /// A human-readable message.
    pub message: String,
    /// Optional details.
    pub data: Option<serde_json::Value>,
}

impl Error {
    /// An error with a code and a message.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Error { code, message: message.into(), data: None }
    }

    /// Invalid input (4000).
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(codes::INVALID_INPUT, message)
    }

    /// A business failure (4001), such as a limit the session config sets.
    pub fn business(message: impl Into<String>) -> Self {
        Self::new(codes::BUSINESS_FAILURE, message)
    }

    /// A parameter of the wrong type or value (4004).
    pub fn invalid_param(message: impl Into<String>) -> Self {
        Self::new(codes::INVALID_PARAMETER_TYPE, message)
    }

    /// Nothing found (4006).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(codes::NO_RESULTS_FOUND, message)
    }

    /// An internal failure (5013).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(codes::INTERNAL_ERROR, message)
    }

    /// Attaches details shown in the envelope's `data`.
    pub fn with_data(mut self, data: serde_json::Value) -> Self {
        self.data = Some(data);
        self
    }

    pub(crate) fn into_wit(self) -> wit::Error {
        wit::Error { code: self.code, message: self.message, data: self.data.map(|d| d.to_string()) }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)
    }
}

impl std::error::Error for Error {}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::invalid_param(e.to_string())
    }
}
