//! What the core learns of TLS: only how a handshake failed, and so whether another
//! attempt can succeed. Trust itself (roots, certificates, `certs.d`) is the driver's.

use std::fmt;

/// Why a TLS handshake with a registry failed. Every kind here is a matter of
/// configuration, so none is worth a retry; a connection reset during a handshake is a
/// [`TransportError::Connection`](crate::transport::TransportError::Connection) instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The certificate chains to no trusted root: a private CA that was not given.
    UnknownIssuer,
    /// The certificate has expired or is not valid yet.
    Expired,
    /// The certificate does not name the host ferry connected to.
    NameMismatch,
    /// The registry requires a client certificate and none was sent.
    ClientCertRequired,
    /// The registry refused the client certificate that was sent.
    ClientCertRejected,
    /// Any other verification or protocol failure (a revoked or malformed certificate,
    /// no common protocol version or cipher suite).
    Other,
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsFailure::UnknownIssuer => "its certificate is signed by an unknown authority",
            TlsFailure::Expired => "its certificate has expired or is not valid yet",
            TlsFailure::NameMismatch => "its certificate is not valid for this host name",
            TlsFailure::ClientCertRequired => "it requires a client certificate and none was sent",
            TlsFailure::ClientCertRejected => "it refused the client certificate",
            TlsFailure::Other => "the TLS handshake failed",
        })
    }
}
