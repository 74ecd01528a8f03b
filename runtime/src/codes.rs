//! Result codes: AgentFlow's framework and tool codes, the seed documents' codes, and Cella's
//! own (7xxx). The list lives in the `cella-codes` crate, shared with the Rust guest SDK and
//! the client SDK; a test there checks the codes table in docs/codes.md against it.

pub use cella_codes::*;
