//! The client: one worker's connection to a Cella server.

use crate::error::Error;
use crate::session::Session;
use crate::transport::{Inner, destroy, execute, http_client};
use crate::types::{Created, Envelope, Reinitialized, SessionInfo, Tool};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Builds a [`Sandbox`] with options.
#[derive(Debug, Clone)]
pub struct SandboxBuilder {
    url: String,
    worker_id: Option<String>,
    timeout: Duration,
    retries: u32,
    warmup: Vec<String>,
    api_key: Option<String>,
}

impl SandboxBuilder {
    /// The worker id (default `sandbox_<8 hex>`, as AgentFlow).
    pub fn worker_id(mut self, id: impl Into<String>) -> Self {
        self.worker_id = Some(id.into());
        self
    }

    /// The per-request timeout (default 60 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How often a safe request is retried after a connection error (default 3).
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// The API key of the tenant to act for (sent as `Authorization: Bearer`).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Backends to warm up when starting (S-2).
    pub fn warmup(mut self, resources: &[&str]) -> Self {
        self.warmup = resources.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Connects (S-1): checks `/health`, then warms the requested backends.
    pub async fn start(self) -> Result<Sandbox, Error> {
        let http = http_client(&self.url, self.timeout, self.api_key.as_deref())?;
        let worker_id =
            self.worker_id.unwrap_or_else(|| format!("sandbox_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
        let inner = Arc::new(Inner {
            http,
            base: self.url.trim_end_matches('/').to_string(),
            worker_id,
            retries: self.retries,
            owned: Mutex::new(BTreeSet::new()),
            closed: AtomicBool::new(false),
        });
        let sandbox = Sandbox { inner };
        sandbox.inner.request(reqwest::Method::GET, "/health", None, true).await?;
        if !self.warmup.is_empty() {
            sandbox.warmup(Some(&self.warmup.iter().map(String::as_str).collect::<Vec<_>>())).await?;
        }
        Ok(sandbox)
    }
}

/// One worker's connection to a Cella server.
pub struct Sandbox {
    pub(crate) inner: Arc<Inner>,
}

impl Sandbox {
    /// A builder for a client of the server at `url`.
    pub fn builder(url: impl Into<String>) -> SandboxBuilder {
        SandboxBuilder {
            url: url.into(),
            worker_id: None,
            timeout: Duration::from_secs(60),
            retries: 3,
            warmup: Vec::new(),
            api_key: None,
        }
    }

    /// Connects to the server at `url` with default options (S-1).
    pub async fn start(url: impl Into<String>) -> Result<Sandbox, Error> {
        Sandbox::builder(url).start().await
    }

    /// This client's worker id (S-14).
    pub fn worker_id(&self) -> &str {
        &self.inner.worker_id
    }

    /// Warms the named backends, or all (S-2). Returns the server's report.
    pub async fn warmup(&self, resources: Option<&[&str]>) -> Result<Value, Error> {
        self.inner.post("/api/v1/warmup", json!({"backends": resources}), true).await
    }

    /// Creates a session of `resource_type` with `config` (S-3) and returns its handle.
    pub async fn create_session(&self, resource_type: &str, config: Value) -> Result<Session, Error> {
        let created = self.create(resource_type, config, None).await?;
        Ok(Session::new(self.inner.clone(), created))
    }

    /// Creates sessions of several types at once (S-3), in order.
    pub async fn create_sessions(&self, types: &[(&str, Value)]) -> Result<Vec<Session>, Error> {
        let mut sessions = Vec::with_capacity(types.len());
        for (rt, config) in types {
            sessions.push(self.create_session(rt, config.clone()).await?);
        }
        Ok(sessions)
    }

    async fn create(&self, rt: &str, config: Value, custom_name: Option<&str>) -> Result<Created, Error> {
        let body = json!({"worker_id": self.inner.worker_id, "resource_type": rt, "session_config": config, "custom_name": custom_name});
        let reply = self.inner.post("/api/v1/session/create", body, false).await?;
        let data = &reply["data"];
        let session_id = data["session_id"]
            .as_str()
            .ok_or_else(|| Error::Protocol(format!("no session_id in {reply}")))?
            .to_string();
        self.inner.own(rt, true);
        Ok(Created {
            resource_type: rt.to_string(),
            session_id,
            session_name: data["session_name"].as_str().unwrap_or_default().to_string(),
            existed: data["status"] == "exists",
            data: data["data"].clone(),
        })
    }

    /// Runs a tool (S-4). A non-zero code is an [`Error::Api`] carrying the envelope.
    pub async fn execute(&self, action: &str, params: Value) -> Result<Envelope, Error> {
        execute(&self.inner, action, params, None).await
    }

    /// Runs a tool with a deadline in seconds.
    pub async fn execute_with_timeout(
        &self,
        action: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Envelope, Error> {
        execute(&self.inner, action, params, Some(timeout)).await
    }

    /// Ends this worker's session of `resource_type` (S-5).
    pub async fn destroy_session(&self, resource_type: &str) -> Result<(), Error> {
        destroy(&self.inner, resource_type).await
    }

    /// Renews the TTL of one session type, or of all (S-8).
    pub async fn refresh_sessions(&self, resource_type: Option<&str>) -> Result<Value, Error> {
        let body = json!({"worker_id": self.inner.worker_id, "resource_type": resource_type});
        self.inner.post("/api/v1/session/refresh", body, true).await
    }

    /// Replaces one session by a new one with `config`, others untouched (S-9).
    pub async fn reinitialize(&self, resource_type: &str, config: Value) -> Result<Reinitialized, Error> {
        let old =
            self.list_sessions().await?.into_iter().find(|s| s.resource_type == resource_type).map(|s| s.session_id);
        match destroy(&self.inner, resource_type).await {
            Ok(()) | Err(Error::Api { status: 404, .. }) => {}
            Err(e) => return Err(e),
        }
        let created = self.create(resource_type, config.clone(), None).await?;
        Ok(Reinitialized {
            status: "success".into(),
            resource_type: resource_type.to_string(),
            old_session_id: old,
            new_session_id: Some(created.session_id),
            config_applied: config,
        })
    }

    /// This worker's sessions (S-9b).
    pub async fn list_sessions(&self) -> Result<Vec<SessionInfo>, Error> {
        let reply = self.inner.post("/api/v1/session/list", json!({"worker_id": self.inner.worker_id}), true).await?;
        serde_json::from_value(reply["data"]["sessions"].clone())
            .map_err(|e| Error::Protocol(format!("session list: {e}")))
    }

    /// Every tool with its JSON Schema.
    pub async fn tools(&self) -> Result<Vec<Tool>, Error> {
        let reply = self.inner.request(reqwest::Method::GET, "/api/v1/tools", None, true).await?;
        serde_json::from_value(reply["tools"].clone()).map_err(|e| Error::Protocol(format!("tool list: {e}")))
    }

    /// Closes the client (S-6): the server and this worker's sessions stay (they expire by
    /// TTL), as the seeds' `close()` does. Use [`Sandbox::close_and_destroy`] to end them.
    pub async fn close(self) {
        self.inner.closed.store(true, Ordering::Release);
    }

    /// Ends every session of this worker, then closes the client.
    pub async fn close_and_destroy(self) -> Result<(), Error> {
        self.inner.post("/api/v1/worker/disconnect", json!({"worker_id": self.inner.worker_id}), false).await?;
        self.inner.owned.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.inner.closed.store(true, Ordering::Release);
        Ok(())
    }

    /// Stops the server (S-7): sessions are cleaned up and backends' shutdown hooks run.
    pub async fn shutdown_server(self) -> Result<Value, Error> {
        let reply = self
            .inner
            .post("/api/v1/server/shutdown", json!({"force": false, "cleanup_sessions": true}), false)
            .await?;
        self.inner.owned.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.inner.closed.store(true, Ordering::Release);
        Ok(reply)
    }
}
