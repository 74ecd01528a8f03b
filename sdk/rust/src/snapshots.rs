//! Session snapshots from the client: snapshot, fork, pause and resume this worker's sessions;
//! list, restore and delete the tenant's stored snapshots (`/api/v1/session/*`,
//! `/api/v1/snapshots`).

use crate::client::Sandbox;
use crate::error::Error;
use crate::types::SessionInfo;
pub use cella_protocol::SnapshotInfo;
use serde_json::{Value, json};

/// One copy a fork made: the worker it belongs to and its session.
#[derive(Debug, Clone)]
pub struct Forked {
    /// The copy's worker (use it with [`Sandbox::builder`]`.worker_id(...)`).
    pub worker_id: String,
    /// The copy's session.
    pub session: SessionInfo,
}

fn parse<T: serde::de::DeserializeOwned>(value: &Value, what: &str) -> Result<T, Error> {
    serde_json::from_value(value.clone()).map_err(|e| Error::Protocol(format!("{what}: {e}")))
}

impl Sandbox {
    fn session_body(&self, resource_type: &str) -> Value {
        json!({"worker_id": self.worker_id(), "resource_type": resource_type})
    }

    /// Snapshots this worker's live session of `resource_type` into the server's store; the
    /// session goes on.
    pub async fn snapshot(&self, resource_type: &str) -> Result<SnapshotInfo, Error> {
        let reply = self.inner.post("/api/v1/session/snapshot", self.session_body(resource_type), false).await?;
        parse(&reply["data"], "snapshot")
    }

    /// Makes `count` copies of this worker's session of `resource_type`, each a session of a
    /// new worker; the source goes on unaffected.
    pub async fn fork(&self, resource_type: &str, count: u32) -> Result<Vec<Forked>, Error> {
        let mut body = self.session_body(resource_type);
        body["count"] = json!(count);
        let reply = self.inner.post("/api/v1/session/fork", body, false).await?;
        let copies = reply["data"]["sessions"].as_array().cloned().unwrap_or_default();
        copies
            .iter()
            .map(|c| {
                Ok(Forked {
                    worker_id: c["worker_id"].as_str().unwrap_or_default().to_string(),
                    session: parse(&c["session"], "fork")?,
                })
            })
            .collect()
    }

    /// Pauses this worker's session of `resource_type`: snapshotted, its instance freed. The
    /// next call resumes it.
    pub async fn pause(&self, resource_type: &str) -> Result<SnapshotInfo, Error> {
        let reply = self.inner.post("/api/v1/session/pause", self.session_body(resource_type), false).await?;
        parse(&reply["data"], "pause")
    }

    /// Resumes a paused session now.
    pub async fn resume(&self, resource_type: &str) -> Result<SessionInfo, Error> {
        let reply = self.inner.post("/api/v1/session/resume", self.session_body(resource_type), true).await?;
        parse(&reply["data"], "resume")
    }

    /// The tenant's stored snapshots, oldest first.
    pub async fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>, Error> {
        let reply = self.inner.request(reqwest::Method::GET, "/api/v1/snapshots", None, true).await?;
        parse(&reply["data"]["snapshots"], "snapshot list")
    }

    /// A new session of this worker from a stored snapshot.
    pub async fn restore_snapshot(&self, snapshot_id: &str) -> Result<SessionInfo, Error> {
        let path = format!("/api/v1/snapshots/{snapshot_id}/restore");
        let reply = self.inner.post(&path, json!({"worker_id": self.worker_id()}), false).await?;
        parse(&reply["data"], "restore")
    }

    /// Deletes a stored snapshot.
    pub async fn delete_snapshot(&self, snapshot_id: &str) -> Result<(), Error> {
        let path = format!("/api/v1/snapshots/{snapshot_id}");
        self.inner.request(reqwest::Method::DELETE, &path, None, true).await.map(|_| ())
    }
}
