//! How an S3 store reaches its bucket: the hyper_util client over rustls with the ring provider
//! (the server's own TLS stack) and the system's root certificates; plain HTTP too, for
//! endpoints on a private network (`aws_allow_http`).

use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector as Tcp;
use hyper_util::rt::TokioExecutor;
use object_store::client::{
    ClientOptions, HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpRequestBody, HttpResponse,
    HttpResponseBody, HttpService,
};
use std::sync::Arc;
use std::time::Duration;

/// The longest wait for a response's head; a bucket that does not answer fails the
/// snapshot (and object_store retries what can be retried) instead of holding it forever.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// Makes [`Https`] clients.
#[derive(Debug, Default)]
pub(super) struct Connector;

impl HttpConnector for Connector {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        let mut tcp = Tcp::new();
        tcp.enforce_http(false);
        tcp.set_connect_timeout(Some(Duration::from_secs(10)));
        tcp.set_nodelay(true);
        let tls = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(Arc::new(rustls::crypto::ring::default_provider()))
            .map_err(|e| object_store::Error::Generic { store: "S3", source: Box::new(e) })?
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        Ok(HttpClient::new(Https(Client::builder(TokioExecutor::new()).build(tls))))
    }
}

/// One bucket's connection pool.
#[derive(Debug)]
struct Https(Client<hyper_rustls::HttpsConnector<Tcp>, HttpRequestBody>);

#[async_trait::async_trait]
impl HttpService for Https {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let response = match tokio::time::timeout(RESPONSE_TIMEOUT, self.0.request(req)).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                let kind = if e.is_connect() { HttpErrorKind::Connect } else { HttpErrorKind::Request };
                return Err(HttpError::new(kind, e));
            }
            Err(elapsed) => return Err(HttpError::new(HttpErrorKind::Timeout, elapsed)),
        };
        Ok(response.map(|body| HttpResponseBody::new(body.map_err(|e| HttpError::new(HttpErrorKind::Interrupted, e)))))
    }
}
