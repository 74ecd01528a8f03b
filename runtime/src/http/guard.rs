//! What keeps a web page from driving a server it can reach: the `Host` check (DNS
//! rebinding), CORS only for configured origins, and JSON-only request bodies (see
//! [`super::extract::RawBody`]).
//!
//! A browser lets any page send a "simple" cross-site request (a POST with
//! `Content-Type: text/plain`) without asking the server first. Requiring
//! `application/json` turns every such request into one the browser must preflight, and
//! with no CORS headers (the default) the preflight fails, so the request is never sent.
//! A page that rebinds its own name to 127.0.0.1 gets past all that, but its requests carry
//! its name in `Host`, which the check refuses.

use super::error::ApiError;
use crate::codes;
use crate::config::ServerConfig;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The names a loopback server answers to by default.
const LOOPBACK_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// The `Host` names a server accepts; `None` accepts any.
#[derive(Debug, Clone)]
pub struct HostCheck {
    allowed: Option<Arc<[String]>>,
}

impl HostCheck {
    /// The check for `server`: on a loopback address the loopback names, that address and
    /// `server.allowed_hosts`; elsewhere `server.allowed_hosts` alone, or none when empty.
    pub fn of(server: &ServerConfig) -> HostCheck {
        let loopback = server.host == "localhost"
            || server.host.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        let mut names: Vec<String> = server.allowed_hosts.iter().map(|h| h.to_ascii_lowercase()).collect();
        if loopback {
            names.extend(LOOPBACK_NAMES.iter().map(|n| n.to_string()));
            // Its own address too (127.0.0.2, say: one of several nodes on one machine).
            names.push(server.host.trim_matches(['[', ']']).to_ascii_lowercase());
        } else if names.is_empty() {
            return HostCheck { allowed: None };
        }
        // The name the cluster's other nodes forward to.
        names.extend(advertised_host(server));
        HostCheck { allowed: Some(names.into()) }
    }

    /// Whether a `Host` header value is allowed: its name (or the whole `host:port`) is on
    /// the list. A request without `Host` (HTTP/1.0 tools) is allowed: browsers always send it.
    pub fn allows(&self, host: Option<&str>) -> bool {
        let (Some(allowed), Some(host)) = (&self.allowed, host) else {
            return true;
        };
        let host = host.trim().to_ascii_lowercase();
        let name = match host.strip_prefix('[') {
            Some(rest) => rest.split(']').next().unwrap_or_default().to_string(),
            None => host.rsplit_once(':').map_or(host.as_str(), |(n, _)| n).to_string(),
        };
        allowed.iter().any(|a| *a == name || *a == host)
    }
}

/// The host name of `server.cluster.advertise`, when the server is a cluster's node.
pub fn advertised_host(server: &ServerConfig) -> Option<String> {
    let advertise = server.cluster.advertise.as_deref().filter(|_| server.cluster.enabled)?;
    let uri = advertise.parse::<axum::http::Uri>().ok()?;
    uri.host().map(|h| h.trim_matches(['[', ']']).to_ascii_lowercase())
}

/// Middleware: refuses a request whose `Host` is not allowed (403, code 7008).
pub async fn check_host(check: HostCheck, req: Request, next: Next) -> Response {
    let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok());
    if check.allows(host) {
        return next.run(req).await;
    }
    let host = host.unwrap_or_default().to_string();
    tracing::warn!(%host, "request refused: Host not allowed");
    let message = format!("Host '{host}' is not allowed; add it to server.allowed_hosts to serve it");
    ApiError::new("request", codes::FORBIDDEN, message, json!({"host": host})).into_response()
}

/// The CORS layer for `server.cors_origins`, or `None` when none are configured.
pub fn cors(server: &ServerConfig) -> Option<CorsLayer> {
    if server.cors_origins.is_empty() {
        return None;
    }
    let methods = [Method::GET, Method::POST, Method::DELETE, Method::OPTIONS];
    let headers = [
        header::CONTENT_TYPE,
        header::AUTHORIZATION,
        header::ACCEPT,
        header::HeaderName::from_static("x-api-key"),
        header::HeaderName::from_static("mcp-session-id"),
        header::HeaderName::from_static("mcp-protocol-version"),
        header::HeaderName::from_static("last-event-id"),
    ];
    let layer = CorsLayer::new()
        .allow_methods(methods)
        .allow_headers(headers)
        .expose_headers([header::HeaderName::from_static("mcp-session-id")]);
    if server.cors_origins.iter().any(|o| o == "*") {
        return Some(layer.allow_origin(AllowOrigin::any()));
    }
    // Validated by the configuration: each is an origin, so it is a valid header value.
    let origins: Vec<HeaderValue> =
        server.cors_origins.iter().filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok()).collect();
    Some(layer.allow_origin(origins).allow_credentials(true))
}

/// Whether a `Content-Type` names JSON (`application/json`, or `application/<x>+json`).
pub fn is_json(content_type: Option<&str>) -> bool {
    let Some(value) = content_type else { return false };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || essence.starts_with("application/") && essence.ends_with("+json")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(host: &str, extra: &[&str]) -> ServerConfig {
        ServerConfig {
            host: host.into(),
            allowed_hosts: extra.iter().map(|s| s.to_string()).collect(),
            ..ServerConfig::default()
        }
    }

    #[test]
    fn loopback_servers_answer_loopback_names_and_the_configured_ones() {
        let check = HostCheck::of(&server("127.0.0.1", &["cella.internal"]));
        for ok in ["127.0.0.1:18890", "localhost", "LOCALHOST:1", "[::1]:80", "cella.internal:9"] {
            assert!(check.allows(Some(ok)), "{ok} refused");
        }
        for bad in ["evil.example", "evil.example:18890", "127.0.0.1.evil.example", "[::2]:1"] {
            assert!(!check.allows(Some(bad)), "{bad} allowed");
        }
        assert!(check.allows(None));
    }

    #[test]
    fn public_servers_check_only_when_names_are_set() {
        assert!(HostCheck::of(&server("0.0.0.0", &[])).allows(Some("anything.example")));
        let check = HostCheck::of(&server("0.0.0.0", &["api.example"]));
        assert!(check.allows(Some("api.example:443")));
        assert!(!check.allows(Some("localhost")));
    }

    #[test]
    fn json_content_types() {
        assert!(is_json(Some("application/json")));
        assert!(is_json(Some("Application/JSON; charset=utf-8")));
        assert!(is_json(Some("application/vnd.api+json")));
        assert!(!is_json(Some("text/plain")));
        assert!(!is_json(Some("application/x-www-form-urlencoded")));
        assert!(!is_json(None));
    }
}
