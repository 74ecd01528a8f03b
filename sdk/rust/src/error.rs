//! The SDK's error type.

use crate::types::Envelope;

/// What can go wrong talking to Cella.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error envelope (a non-zero code).
    #[error("{message} (code {code}, HTTP {status})")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The envelope's code (see [`crate::codes`] and the codes table in docs/codes.md).
        code: i32,
        /// The envelope's message.
        message: String,
        /// The whole envelope, when the body was one.
        envelope: Option<Box<Envelope>>,
    },
    /// The server could not be reached (refused, reset, timed out).
    #[error("cannot reach the server at {url}: {message}")]
    Connection {
        /// The URL.
        url: String,
        /// What happened.
        message: String,
    },
    /// The server answered something that is not the protocol.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
}

impl Error {
    /// The envelope's code, when the server answered with one.
    pub fn code(&self) -> Option<i32> {
        match self {
            Error::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}
