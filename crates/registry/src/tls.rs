//! HTTPS for `ferry serve`: rustls over tokio, HTTP/2 or HTTP/1.1 by ALPN, an optional
//! client-certificate requirement, and certificates that can be reloaded while serving.
//! The handshake runs in [`crate::server`]'s connection task; an HTTP/1.1 connection is
//! then served as a plain one is (caps, timeouts), an HTTP/2 one by [`serve_h2`].
//!
//! A reload ([`ServerTls::reload`], which `ferry serve` calls on `SIGHUP`) reads the files
//! again and swaps the configuration that *new* handshakes use; connections already open
//! keep theirs and are not dropped. A reload that fails leaves the old certificate in use.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit};

/// The `tls` key of the registry's configuration. Unset `cert` and `key`: plain HTTP.
///
/// ```yaml
/// tls:
///   cert: /etc/ferry/registry.crt     # PEM chain, leaf first
///   key: /etc/ferry/registry.key      # PEM private key
///   client_ca: /etc/ferry/clients.crt # optional: require client certificates signed by these CAs
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub client_ca: Option<PathBuf>,
}

impl TlsConfig {
    pub fn enabled(&self) -> bool {
        self.cert.is_some() || self.key.is_some()
    }

    /// A problem with the combination of keys, if any.
    pub fn problem(&self) -> Option<(&'static str, &'static str)> {
        match (&self.cert, &self.key) {
            (Some(_), None) => Some(("tls.key", "tls.cert is set, so tls.key (its private key) must be too")),
            (None, Some(_)) => {
                Some(("tls.cert", "tls.key is set, so tls.cert (the certificate) must be too"))
            }
            (None, None) if self.client_ca.is_some() => {
                Some(("tls.client_ca", "client certificates need TLS: set tls.cert and tls.key"))
            }
            _ => None,
        }
    }
}

/// Why the registry's TLS configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("cannot read {what} from {path}: {message}")]
    Read { what: &'static str, path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// The server's TLS configuration, swappable while serving.
pub struct ServerTls {
    files: TlsConfig,
    current: RwLock<Arc<ServerConfig>>,
}

impl ServerTls {
    pub fn load(files: &TlsConfig) -> Result<ServerTls, TlsError> {
        let config = server_config(files)?;
        Ok(ServerTls { files: files.clone(), current: RwLock::new(Arc::new(config)) })
    }

    /// Reads the files again; new handshakes use them, open connections are untouched.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = Arc::new(server_config(&self.files)?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = config;
        Ok(())
    }

    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.read().unwrap_or_else(PoisonError::into_inner).clone())
    }
}

fn server_config(files: &TlsConfig) -> Result<ServerConfig, TlsError> {
    let (Some(cert), Some(key)) = (&files.cert, &files.key) else {
        return Err(TlsError::Invalid("tls.cert and tls.key must both be set".into()));
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = read_certs(cert, "the certificate")?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Read {
        what: "the private key",
        path: key.clone(),
        message: e.to_string(),
    })?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Invalid(e.to_string()))?;
    let builder = match &files.client_ca {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for ca in read_certs(path, "client CA certificates")? {
                roots.add(ca).map_err(|e| TlsError::Invalid(format!("{}: {e}", path.display())))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Invalid(format!("client CAs {}: {e}", path.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Invalid(format!("{} with its key: {e}", cert.display())))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn read_certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read = |message: String| TlsError::Read { what, path: path.to_owned(), message };
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| read(e.to_string()))?;
    if certs.is_empty() {
        return Err(read("no PEM certificate in the file".into()));
    }
    Ok(certs)
}

/// Whether the client chose HTTP/2 by ALPN.
pub(crate) fn is_h2(stream: &tokio_rustls::server::TlsStream<TcpStream>) -> bool {
    stream.get_ref().1.alpn_protocol() == Some(b"h2")
}

/// HTTP/2 has no `Host` header: the authority is part of the request's URI. The routes
/// build absolute URLs (the token realm) from `Host`, so it is filled in from there.
async fn host_from_authority(mut request: axum::extract::Request) -> axum::extract::Request {
    if !request.headers().contains_key(http::header::HOST) {
        let authority = request.uri().authority().map(|a| a.as_str().to_owned());
        if let Some(value) = authority.and_then(|a| http::HeaderValue::from_str(&a).ok()) {
            request.headers_mut().insert(http::header::HOST, value);
        }
    }
    request
}

/// Serves one HTTP/2 connection (the client chose `h2` by ALPN) until it ends or `stop`
/// turns true, then lets its streams finish. `slot` is the connection's place under
/// `http.max_connections`, held until it closes.
pub(crate) async fn serve_h2(
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    app: axum::Router,
    mut stop: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let app = app.layer(axum::middleware::map_request(host_from_authority));
    let builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "HTTP/2 connection ended with an error");
            }
            return;
        }
        _ = stop.changed() => connection.as_mut().graceful_shutdown(),
    }
    let _ = connection.await;
}
