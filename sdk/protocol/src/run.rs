//! The run API (seed 003, `/api/v1/run…`): one call runs code in a session.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// One run (S-30).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// The code to run.
    pub code: String,
    /// `python` (default) or `javascript` (`js`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// A run session to reuse; a new one is created when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Files to place in the session's working directory before the run.
    #[serde(default)]
    pub files: Vec<RunFile>,
    /// Packages to install before the run (from the server's wheelhouse; once per session).
    #[serde(default)]
    pub packages: Vec<String>,
    /// Keep the session after the run (default false: it ends with the run).
    #[serde(default)]
    pub keep_alive: bool,
    /// Seconds the run may take: a positive number (default 30; more than the server's call
    /// limit is cut to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
}

impl RunRequest {
    /// Code in `language` (`python` or `javascript`).
    pub fn new(language: impl Into<String>, code: impl Into<String>) -> RunRequest {
        RunRequest {
            code: code.into(),
            language: Some(language.into()),
            session_id: None,
            files: Vec::new(),
            packages: Vec::new(),
            keep_alive: false,
            timeout: None,
        }
    }

    /// Python code.
    pub fn python(code: impl Into<String>) -> RunRequest {
        RunRequest::new("python", code)
    }

    /// JavaScript code.
    pub fn javascript(code: impl Into<String>) -> RunRequest {
        RunRequest::new("javascript", code)
    }

    /// Reuse a run session.
    pub fn session_id(mut self, id: impl Into<String>) -> RunRequest {
        self.session_id = Some(id.into());
        self
    }

    /// Keep the session after the run.
    pub fn keep_alive(mut self, keep: bool) -> RunRequest {
        self.keep_alive = keep;
        self
    }

    /// Add a file.
    pub fn file(mut self, file: RunFile) -> RunRequest {
        self.files.push(file);
        self
    }

    /// Add packages to install first.
    pub fn packages(mut self, packages: &[&str]) -> RunRequest {
        self.packages.extend(packages.iter().map(|p| p.to_string()));
        self
    }

    /// The run's deadline.
    pub fn timeout(mut self, timeout: Duration) -> RunRequest {
        self.timeout = Some(timeout.as_secs_f64());
        self
    }
}

/// One file of a run. Give `content` (text) or `content_base64`; or only `sha256` when the
/// session already holds that content (see the session's file list), which is then copied
/// to `path` (S-33).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RunFile {
    /// The path, relative to the working directory (no `..`).
    pub path: String,
    /// The content as UTF-8 text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// The content, base64-encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_base64: Option<String>,
    /// The sha256 (hex) of the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl RunFile {
    /// A text file.
    pub fn text(path: impl Into<String>, content: impl Into<String>) -> RunFile {
        RunFile { path: path.into(), content: Some(content.into()), content_base64: None, sha256: None }
    }

    /// Content the session already holds, by its sha256 (hex).
    pub fn by_hash(path: impl Into<String>, sha256: impl Into<String>) -> RunFile {
        RunFile { path: path.into(), content: None, content_base64: None, sha256: Some(sha256.into()) }
    }
}

/// A file a session holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct HeldFile {
    /// The path, relative to the working directory.
    pub path: String,
    /// The sha256 of the content, hex.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
}

/// A stage's time (S-31).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct StageTime {
    /// `session`, `upload`, `install`, `run` or `close`.
    pub stage: String,
    /// Milliseconds.
    pub ms: f64,
    /// Its share of the total, 0 to 1.
    pub share: f64,
}

/// Where the time went (S-31).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Timing {
    /// Each stage that ran, in order.
    pub stages: Vec<StageTime>,
    /// Milliseconds in all.
    pub total_ms: f64,
}

/// What the timing suggests (S-31).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Insights {
    /// The stage that took the most time.
    pub bottleneck: String,
    /// What would make the next run faster.
    pub suggestions: Vec<String>,
}

/// The result of a run (S-31). A failing program is a result too (S-37): see `error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
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
    #[cfg_attr(feature = "schema", schema(value_type = Option<Object>))]
    pub error: Option<Value>,
    /// Rich results, in order (figures the code showed, then its final value), each
    /// `{is_main_result, data: {MIME type: content}, chart?}`: `text/plain`, `text/html`,
    /// `image/png` (base64), … Empty from an interpreter that gives only `result`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "schema", schema(value_type = Vec<Object>))]
    pub results: Vec<Value>,
    /// Whether the session was reused.
    pub reused_session: bool,
    /// Whether the session lives on after this run.
    pub kept_alive: bool,
    /// When the kept-alive session expires unless used (naive UTC ISO).
    pub expires_at: Option<String>,
    /// Files written (`uploaded`), skipped because the same content was there (`unchanged`),
    /// or copied from content the session held (`reused`).
    #[cfg_attr(feature = "schema", schema(value_type = Object))]
    pub files: Value,
    /// Packages `installed` now and `cached` (installed earlier in this session).
    #[cfg_attr(feature = "schema", schema(value_type = Object))]
    pub packages: Value,
    /// Time per stage.
    pub timing: Timing,
    /// The bottleneck and suggestions.
    pub insights: Insights,
}

/// A `progress` event of a watched run (S-32).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// `session`, `upload`, `install`, `run`, `close`, `done`.
    pub stage: String,
    /// 0 … 100.
    pub percent: u8,
}

/// A `stdout` or `stderr` event of a watched run: text the code wrote (S-32).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputText {
    /// The text.
    pub text: String,
}
