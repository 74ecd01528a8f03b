//! The run API's request, result and event types.

use crate::engine::host::Output;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The prefix of run session ids (they are worker ids).
pub const RUN_PREFIX: &str = "run-";

/// The default deadline of one run, in seconds (the server's call limit caps it).
pub const DEFAULT_RUN_TIMEOUT_S: f64 = 30.0;

/// One run (S-30).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// The code to run.
    pub code: String,
    /// `python` (default) or `javascript` (`js`).
    #[serde(default)]
    pub language: Option<String>,
    /// A run session to reuse; a new one is created when absent.
    #[serde(default)]
    pub session_id: Option<String>,
    /// Files to place in the session's working directory before the run.
    #[serde(default)]
    pub files: Vec<FileUpload>,
    /// Packages to install before the run (from the server's wheelhouse; once per session).
    #[serde(default)]
    pub packages: Vec<String>,
    /// Keep the session after the run (default false: it ends with the run).
    #[serde(default)]
    pub keep_alive: bool,
    /// Seconds the run may take: a positive number (default 30; more than the server's call
    /// limit is cut to it).
    #[serde(default)]
    pub timeout: Option<f64>,
}

/// One file of a run. Give `content` (text) or `content_base64`; or only `sha256` when the
/// session already holds that content (see [`Runner::files`]), which is then copied to `path`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FileUpload {
    /// The path, relative to the working directory (no `..`).
    pub path: String,
    /// The content as UTF-8 text.
    #[serde(default)]
    pub content: Option<String>,
    /// The content, base64-encoded.
    #[serde(default)]
    pub content_base64: Option<String>,
    /// The sha256 (hex) of the content.
    #[serde(default)]
    pub sha256: Option<String>,
}

/// A file a session holds.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct HeldFile {
    /// The path, relative to the working directory.
    pub path: String,
    /// The sha256 of the content, hex.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
}

/// A stage's time (S-31).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StageTime {
    /// `session`, `upload`, `install`, `run` or `close`.
    pub stage: String,
    /// Milliseconds.
    pub ms: f64,
    /// Its share of the total, 0 to 1.
    pub share: f64,
}

/// Where the time went (S-31).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Timing {
    /// Each stage that ran, in order.
    pub stages: Vec<StageTime>,
    /// Milliseconds in all.
    pub total_ms: f64,
}

/// What the timing suggests (S-31).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Insights {
    /// The stage that took the most time.
    pub bottleneck: String,
    /// What would make the next run faster.
    pub suggestions: Vec<String>,
}

/// The result of a run (S-31). A failing program is a result too (S-37): see `error`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunResult {
    /// The run session (reuse it with `session_id` when `kept_alive`).
    pub session_id: String,
    /// The language.
    pub language: String,
    /// What the code printed.
    pub stdout: String,
    /// What the code wrote to stderr.
    pub stderr: String,
    /// The value of a final expression (its `repr`), if any.
    pub result: Option<String>,
    /// `{name, value, traceback}` when the code raised (a syntax error included).
    pub error: Option<Value>,
    /// Whether the session was reused.
    pub reused_session: bool,
    /// Whether the session lives on after this run.
    pub kept_alive: bool,
    /// When the kept-alive session expires unless used (naive UTC ISO).
    pub expires_at: Option<String>,
    /// Files written (`uploaded`), skipped because the same content was there (`unchanged`),
    /// or copied from content the session held (`reused`).
    pub files: Value,
    /// Packages `installed` now and `cached` (installed earlier in this session).
    pub packages: Value,
    /// Time per stage.
    pub timing: Timing,
    /// The bottleneck and suggestions.
    pub insights: Insights,
}

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
