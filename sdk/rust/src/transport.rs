//! The wire under the client and its session handles: the HTTP client, the state they
//! share, and the requests both make. Neither `client` nor `session` needs the other for it.

use crate::error::Error;
use crate::types::Envelope;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// An HTTP client with the timeout and, when given, the API key on every request.
pub(crate) fn http_client(url: &str, timeout: Duration, api_key: Option<&str>) -> Result<reqwest::Client, Error> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(key) = api_key {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}"))
            .map_err(|_| Error::Protocol("the API key is not a valid header value".into()))?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    reqwest::Client::builder()
        .timeout(timeout)
        .default_headers(headers)
        .build()
        .map_err(|e| Error::Connection { url: url.to_string(), message: e.to_string() })
}

/// The shared state of a client and its session handles.
pub(crate) struct Inner {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) worker_id: String,
    pub(crate) retries: u32,
    /// Resource types of the sessions this client created and has not ended.
    pub(crate) owned: Mutex<BTreeSet<String>>,
    /// Set by `close`: the client was ended explicitly.
    pub(crate) closed: AtomicBool,
}

impl Inner {
    pub(crate) fn own(&self, rt: &str, owned: bool) {
        let mut set = self.owned.lock().unwrap_or_else(|p| p.into_inner());
        if owned {
            set.insert(rt.to_string());
        } else {
            set.remove(rt);
        }
    }

    /// Sends a request; retries connection errors when `safe`. Returns the JSON body of a
    /// 2xx answer, or the error the body describes.
    pub(crate) async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        safe: bool,
    ) -> Result<Value, Error> {
        let url = format!("{}{path}", self.base);
        let attempts = if safe { self.retries + 1 } else { 1 };
        let mut last = None;
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
            let mut request = self.http.request(method.clone(), &url).header("X-Worker-ID", &self.worker_id);
            if let Some(body) = body {
                request = request.json(body);
            }
            match request.send().await {
                Ok(response) => return read(response).await,
                Err(e) if e.is_connect() || e.is_timeout() => last = Some(e),
                Err(e) => return Err(Error::Connection { url, message: e.to_string() }),
            }
        }
        Err(Error::Connection { url, message: last.map(|e| e.to_string()).unwrap_or_default() })
    }

    pub(crate) async fn post(&self, path: &str, body: Value, safe: bool) -> Result<Value, Error> {
        self.request(reqwest::Method::POST, path, Some(&body), safe).await
    }
}

pub(crate) async fn read(response: reqwest::Response) -> Result<Value, Error> {
    let status = response.status().as_u16();
    let text = response.text().await.map_err(|e| Error::Protocol(format!("cannot read the body: {e}")))?;
    let body: Value = serde_json::from_str(&text)
        .map_err(|_| Error::Protocol(format!("HTTP {status} with a body that is not JSON: {text:.200}")))?;
    if status < 400 {
        return Ok(body);
    }
    let envelope: Option<Envelope> = serde_json::from_value(body.clone()).ok();
    let code = body["code"].as_i64().map(|c| c as i32).unwrap_or(0);
    let message = body["message"]
        .as_str()
        .or_else(|| body["error"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| body.to_string());
    Err(Error::Api { status, code, message, envelope: envelope.map(Box::new) })
}

pub(crate) async fn execute(
    inner: &Inner,
    action: &str,
    params: Value,
    timeout: Option<Duration>,
) -> Result<Envelope, Error> {
    let body = json!({"worker_id": inner.worker_id, "action": action, "params": params, "timeout": timeout.map(|t| t.as_secs_f64())});
    let reply = inner.post("/api/v1/execute", body, false).await?;
    serde_json::from_value(reply).map_err(|e| Error::Protocol(format!("execute: {e}")))
}

pub(crate) async fn destroy(inner: &Inner, rt: &str) -> Result<(), Error> {
    inner.post("/api/v1/session/destroy", json!({"worker_id": inner.worker_id, "resource_type": rt}), false).await?;
    inner.own(rt, false);
    Ok(())
}

impl Drop for Inner {
    /// A client dropped without `close` ends the sessions it created, in the background and
    /// best effort (S-40): it never blocks, never panics, and swallows errors (S-41).
    fn drop(&mut self) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let owned = std::mem::take(&mut *self.owned.lock().unwrap_or_else(|p| p.into_inner()));
        if owned.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!("no async runtime: sessions left to their TTL");
            return;
        };
        let (http, url, worker) =
            (self.http.clone(), format!("{}/api/v1/worker/disconnect", self.base), self.worker_id.clone());
        runtime.spawn(async move {
            if let Err(e) = http.post(url).json(&json!({"worker_id": worker})).send().await {
                tracing::debug!(error = %e, "ending sessions of a dropped client failed (ignored)");
            }
        });
    }
}
