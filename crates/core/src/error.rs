//! Why a job's image, listing or comparison failed, typed so a front end can act on it.
//!
//! Every failure a user sees carries an [`ErrorKind`] beside its message: the CLI picks
//! its exit code and hints from the kind, the page and the edge handler their wording.
//! The message names the thing (image, blob, URL, registry) and never carries a secret.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::digest::VerifyError;
use crate::transport::TransportError;

/// What went wrong, in terms a front end can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The image, tag, manifest or repository does not exist (404).
    NotFound,
    /// Credentials are missing, rejected, or not allowed this access (401, 403).
    Unauthorized,
    /// The registry kept answering 429 until the retries ran out.
    RateLimited,
    /// The registry was unreachable, timed out or failed (5xx) until the retries ran out.
    Unavailable,
    /// Bytes did not match their digest or size: a source that lies, or a destination
    /// that altered what it stored.
    Integrity,
    /// The registry answered something ferry cannot read: a malformed manifest, listing or
    /// header.
    InvalidAnswer,
    /// Something ferry does not copy: schema1 manifests, an index inside an index.
    Unsupported,
    /// A repository or tag name that cannot form a reference or a URL.
    InvalidName,
    /// Any other refusal by the registry (a 4xx that is none of the above).
    Refused,
    /// The caller cancelled the job.
    Cancelled,
    /// A TLS handshake failed for a reason of configuration: an untrusted, expired or
    /// misnamed certificate, or a client certificate missing or refused.
    Tls,
}

impl ErrorKind {
    /// Whether running the job again may succeed: the failure was transient when the
    /// retries ran out.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::RateLimited | ErrorKind::Unavailable)
    }

    /// The kind of an HTTP status that ended a request.
    pub fn of_status(status: u16) -> ErrorKind {
        match status {
            404 => ErrorKind::NotFound,
            401 | 403 => ErrorKind::Unauthorized,
            429 => ErrorKind::RateLimited,
            408 | 500..=599 => ErrorKind::Unavailable,
            _ => ErrorKind::Refused,
        }
    }

    /// The kind of a transport failure.
    pub fn of_transport(error: &TransportError) -> ErrorKind {
        match error {
            TransportError::Connection { .. } | TransportError::Timeout { .. } => ErrorKind::Unavailable,
            TransportError::Status { status, .. } => ErrorKind::of_status(*status),
            TransportError::Unauthorized { .. } => ErrorKind::Unauthorized,
            // A body cut short is a broken connection; a complete body that is wrong is a lie.
            TransportError::Verify(VerifyError::TooShort { .. }) => ErrorKind::Unavailable,
            TransportError::Verify(_) => ErrorKind::Integrity,
            TransportError::Cancelled => ErrorKind::Cancelled,
            TransportError::Tls { .. } => ErrorKind::Tls,
            TransportError::NotAllowed { .. } => ErrorKind::Refused,
        }
    }

    /// The kind's name as events and reports spell it, e.g. `not_found`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Integrity => "integrity",
            ErrorKind::InvalidAnswer => "invalid_answer",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::InvalidName => "invalid_name",
            ErrorKind::Refused => "refused",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Tls => "tls",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure of one image, listing or comparison: its kind and a message that names the
/// thing. Serialised as `{"kind": "...", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    /// A failure of `kind`, explained by `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into() }
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, naming the thing that failed.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether running the job again may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }

    /// The same failure, its message prefixed with what was being done.
    pub(crate) fn context(self, what: impl fmt::Display) -> Self {
        Error { kind: self.kind, message: format!("{what}: {}", self.message) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::Side;

    #[test]
    fn kinds_of_statuses_and_transport_failures() {
        let statuses = [
            (404, "not_found", false),
            (401, "unauthorized", false),
            (403, "unauthorized", false),
            (429, "rate_limited", true),
            (503, "unavailable", true),
            (408, "unavailable", true),
            (400, "refused", false),
            (413, "refused", false),
        ];
        for (status, kind, retryable) in statuses {
            let k = ErrorKind::of_status(status);
            assert_eq!((k.as_str(), k.is_retryable()), (kind, retryable), "{status}");
        }
        let cut = TransportError::Verify(VerifyError::TooShort {
            digest: crate::digest::Digest::sha256(b""),
            expected: 2,
            actual: 1,
        });
        let transport = [
            (
                TransportError::Connection { side: Side::Source, message: "reset".into() },
                ErrorKind::Unavailable,
            ),
            (cut, ErrorKind::Unavailable),
            (TransportError::Cancelled, ErrorKind::Cancelled),
            (
                TransportError::Tls {
                    side: Side::Source,
                    failure: crate::tls::TlsFailure::UnknownIssuer,
                    message: "unknown issuer".into(),
                },
                ErrorKind::Tls,
            ),
            (
                TransportError::Unauthorized { side: Side::Destination, challenge: None, detail: None },
                ErrorKind::Unauthorized,
            ),
        ];
        for (error, kind) in transport {
            assert_eq!(ErrorKind::of_transport(&error), kind, "{error}");
        }
    }

    #[test]
    fn errors_serialise_with_their_kind() {
        let e = Error::new(ErrorKind::NotFound, "r/a:1 does not exist").context("copy");
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"kind":"not_found","message":"copy: r/a:1 does not exist"}"#
        );
        assert_eq!(e.to_string(), "copy: r/a:1 does not exist");
    }
}
