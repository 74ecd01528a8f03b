//! Coded errors: what a tool or hook returns when it fails.

use crate::bindings::exports::cella::backend::guest as wit;

/// The result codes of the README's table that backends use most.
pub mod codes {
    /// The input is invalid in a way no more specific code says.
    pub const INVALID_INPUT: i32 = 4000;
    /// The request was understood but the operation failed for a business reason.
    pub const BUSINESS_FAILURE: i32 = 4001;
    /// The request is malformed (for example an unknown tool).
    pub const INVALID_REQUEST_FORMAT: i32 = 4002;
    /// A required parameter is missing.
    pub const MISSING_REQUIRED_FIELD: i32 = 4003;
    /// A parameter has the wrong type or value.
    pub const INVALID_PARAMETER_TYPE: i32 = 4004;
    /// Nothing matched (a missing key, no search results).
    pub const NO_RESULTS_FOUND: i32 = 4006;
    /// The seed documents' generic execution error.
    pub const EXECUTION_ERROR: i32 = 5000;
    /// An internal error of the backend.
    pub const INTERNAL_ERROR: i32 = 5013;
}

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
