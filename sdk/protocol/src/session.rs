//! A session as the session routes list it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A session as listed (`/api/v1/session/list`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct SessionInfo {
    /// The resource type.
    pub resource_type: String,
    /// The session id.
    pub session_id: String,
    /// The session name.
    #[serde(default)]
    pub session_name: String,
    /// `active`, `initializing` or `error`.
    pub status: String,
    /// Whether `execute` created it.
    #[serde(default)]
    pub auto_created: bool,
    /// Naive UTC ISO timestamps.
    #[serde(default)]
    pub created_at: String,
    /// Last call or refresh.
    #[serde(default)]
    pub last_activity: String,
    /// When it expires unless used.
    #[serde(default)]
    pub expires_at: String,
    /// Why it is in `error`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    /// What `initialize` returned.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schema(value_type = Object))]
    pub data: Value,
    /// The config it was initialised with.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schema(value_type = Object))]
    pub config: Value,
}
