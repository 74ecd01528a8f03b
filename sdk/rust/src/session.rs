//! A handle on one explicit session.

use crate::error::Error;
use crate::transport::{Inner, destroy, execute};
use crate::types::{Created, Envelope};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// A handle on one session of one resource type. Calls through it run in that session.
/// Dropped without [`Session::destroy`] (or [`Session::keep`]), it destroys the session in
/// the background, best effort: it never blocks and never panics (S-40, S-41).
pub struct Session {
    inner: Arc<Inner>,
    created: Created,
    /// Set once the session was ended or handed over, so Drop does nothing.
    done: bool,
}

impl Session {
    pub(crate) fn new(inner: Arc<Inner>, created: Created) -> Session {
        Session { inner, created, done: false }
    }

    /// The session id.
    pub fn id(&self) -> &str {
        &self.created.session_id
    }

    /// The resource type.
    pub fn resource_type(&self) -> &str {
        &self.created.resource_type
    }

    /// What the creation returned (name, whether it already existed, initialize's data).
    pub fn created(&self) -> &Created {
        &self.created
    }

    /// Runs a tool in this session.
    pub async fn execute(&self, action: &str, params: Value) -> Result<Envelope, Error> {
        execute(&self.inner, action, params, None).await
    }

    /// Runs a tool with a deadline.
    pub async fn execute_with_timeout(
        &self,
        action: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Envelope, Error> {
        execute(&self.inner, action, params, Some(timeout)).await
    }

    /// Renews the session's TTL (S-8).
    pub async fn refresh(&self) -> Result<(), Error> {
        let body = json!({"worker_id": self.inner.worker_id, "resource_type": self.created.resource_type});
        self.inner.post("/api/v1/session/refresh", body, true).await.map(|_| ())
    }

    /// Ends the session (S-5).
    pub async fn destroy(mut self) -> Result<(), Error> {
        self.done = true;
        destroy(&self.inner, &self.created.resource_type).await
    }

    /// Lets the session live on after the handle (until its TTL or an explicit destroy).
    pub fn keep(mut self) -> Created {
        self.done = true;
        self.inner.own(&self.created.resource_type, false);
        self.created.clone()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.inner.own(&self.created.resource_type, false);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(session_id = %self.created.session_id, "no async runtime: session left to its TTL");
            return;
        };
        let (http, url) = (self.inner.http.clone(), format!("{}/api/v1/session/destroy", self.inner.base));
        let body = json!({"worker_id": self.inner.worker_id, "resource_type": self.created.resource_type});
        runtime.spawn(async move {
            if let Err(e) = http.post(url).json(&body).send().await {
                tracing::debug!(error = %e, "destroying a dropped session failed (ignored)");
            }
        });
    }
}
