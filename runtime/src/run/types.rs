//! The run API's request, result and event types (the wire types are `cella-protocol`'s).

use crate::engine::host::Output;
pub use cella_protocol::run::{HeldFile, Insights, RunFile, RunRequest, RunResult, StageTime, Timing};

/// The prefix of run session ids (they are worker ids).
pub const RUN_PREFIX: &str = "run-";

/// The default deadline of one run, in seconds (the server's call limit caps it).
pub const DEFAULT_RUN_TIMEOUT_S: f64 = 30.0;

/// What a watched run reports as it goes (S-32).
#[derive(Debug, Clone, PartialEq)]
pub enum RunEvent {
    /// A stage starts (`percent` of the run done so far).
    Progress {
        /// The stage.
        stage: &'static str,
        /// 0 … 100.
        percent: u8,
    },
    /// Output the code wrote.
    Output(Output),
}
