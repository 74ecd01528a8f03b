//! HTTPS and plain HTTP on one port. Scalebox's SDK reaches a sandbox's files and health
//! probe over `https://` and everything else over `http://` at the same `host:port`, so the
//! server looks at each connection's first byte: a TLS handshake starts with 0x16, which no
//! HTTP request does. Handshakes run on their own tasks, so a slow or silent client never
//! holds up the others.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::either::Either;

/// How long a connection may take to send its first byte and finish its handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// The TLS settings from a PEM certificate chain and a PEM private key.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect())
        .map_err(|e| format!("cannot read the certificate chain {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", cert.display()));
    }
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("cannot read the private key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("the certificate and key do not make a TLS identity: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A connection: plain TCP or TLS over TCP.
pub type Conn = Either<TcpStream, TlsStream<TcpStream>>;

/// A listener that serves both on one port.
pub struct DualListener {
    ready: mpsc::Receiver<(Conn, SocketAddr)>,
    local: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl Drop for DualListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl DualListener {
    /// Accepts on `listener`, handing TLS connections to `tls`. Call inside a Tokio runtime.
    pub fn new(listener: TcpListener, tls: TlsAcceptor) -> io::Result<DualListener> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(256);
        let accepting = tokio::spawn(async move {
            loop {
                let (stream, addr) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of descriptors and the like: wait, as axum's own listener does.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                // Small streamed writes must not wait for the client's delayed ACK.
                let _ = stream.set_nodelay(true);
                let (tx, tls) = (tx.clone(), tls.clone());
                tokio::spawn(async move {
                    if let Some(conn) = classify(stream, &tls).await {
                        let _ = tx.send((conn, addr)).await;
                    }
                });
            }
        });
        Ok(DualListener { ready, local, accepting })
    }
}

/// Plain or TLS, by the first byte; `None` when the client says nothing or fails its handshake.
async fn classify(stream: TcpStream, tls: &TlsAcceptor) -> Option<Conn> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(HANDSHAKE, stream.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] == 0x16 => match tokio::time::timeout(HANDSHAKE, tls.accept(stream)).await {
            Ok(Ok(secure)) => Some(Either::Right(secure)),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                None
            }
            Err(_) => None,
        },
        Ok(Ok(1)) => Some(Either::Left(stream)),
        _ => None,
    }
}

impl axum::serve::Listener for DualListener {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Conn, SocketAddr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept loop only ends when the listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}
