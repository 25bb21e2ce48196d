//! Turning reqwest failures and HTTP answers into the core's [`TransportError`].
//!
//! Messages name the host and never a URL's query (object-storage redirects carry signed
//! credentials there) nor a header value.

use std::error::Error as _;
use std::time::Duration;

use ferry_core::retry::parse_retry_after;
use ferry_core::transport::{Side, TransportError};
use futures_util::StreamExt as _;
use reqwest::Url;

use crate::clock::wall_now;

/// How much of an error answer is read to describe it.
const DETAIL_BYTES: usize = 64 * 1024;
/// How long an error answer's body may take to arrive before it is left out.
const DETAIL_WAIT: Duration = Duration::from_secs(5);

/// `host[:port]` of `url`, for messages.
pub(crate) fn host_of(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        (None, _) => "<no host>".to_owned(),
    }
}

/// A reqwest failure on `side` while talking to `host`.
pub(crate) fn from_reqwest(side: Side, host: &str, error: reqwest::Error) -> TransportError {
    if let Some((failure, detail)) = crate::tls::classify(&error, None) {
        return crate::tls::tls_error(side, host, failure, &detail);
    }
    let timeout = error.is_timeout();
    let connect = error.is_connect();
    // `without_url`: reqwest's message would otherwise quote the whole URL.
    let error = error.without_url();
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    if timeout {
        TransportError::Timeout { side, message: format!("{host}: {message}") }
    } else if connect {
        TransportError::Connection { side, message: format!("could not connect to {host}: {message}") }
    } else {
        TransportError::Connection { side, message: format!("{host}: {message}") }
    }
}

pub(crate) fn timeout(side: Side, host: &str, what: &str, after: Duration) -> TransportError {
    TransportError::Timeout { side, message: format!("{host} {what} for {}s", after.as_secs_f32()) }
}

/// An answer whose status ended a transfer: its status, `Retry-After` and a short
/// description from the body (the spec's `{"errors":[{"code","message"}]}` when present).
pub(crate) async fn status_error(side: Side, host: &str, answer: reqwest::Response) -> TransportError {
    ErrorAnswer::read(answer).await.into_error(side, host)
}

/// The parts of an unwelcome answer that explain it.
pub(crate) struct ErrorAnswer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    /// `WWW-Authenticate`, for a `401`.
    pub challenge: Option<String>,
    pub body: Vec<u8>,
}

impl ErrorAnswer {
    pub async fn read(answer: reqwest::Response) -> ErrorAnswer {
        let status = answer.status().as_u16();
        let retry_after = answer
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, wall_now()));
        let challenge = answer
            .headers()
            .get(http::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        ErrorAnswer { status, retry_after, challenge, body: read_detail(answer).await }
    }

    /// Whether the body carries the spec's error `code`.
    pub fn has_code(&self, code: &str) -> bool {
        error_codes(&self.body).is_some_and(|codes| codes.iter().any(|(c, _)| c == code))
    }

    pub fn into_error(self, side: Side, host: &str) -> TransportError {
        let detail = describe_body(&self.body).map_or_else(|| host.to_owned(), |d| format!("{host}: {d}"));
        if self.status == 401 {
            return TransportError::Unauthorized { side, challenge: self.challenge, detail: Some(detail) };
        }
        TransportError::Status {
            side,
            status: self.status,
            retry_after: self.retry_after,
            detail: Some(detail),
        }
    }
}

/// Up to [`DETAIL_BYTES`] of an answer's body, or less if it is slow.
pub(crate) async fn read_detail(answer: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    let mut stream = answer.bytes_stream();
    let read = async {
        while let Some(Ok(chunk)) = stream.next().await {
            let room = DETAIL_BYTES - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= DETAIL_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DETAIL_WAIT, read).await;
    body
}

/// The error codes of an OCI error body, or the start of a text body.
pub(crate) fn describe_body(body: &[u8]) -> Option<String> {
    if let Some(codes) = error_codes(body) {
        return Some(
            codes
                .into_iter()
                .map(|(c, m)| if m.is_empty() { c } else { format!("{c}: {m}") })
                .collect::<Vec<_>>()
                .join("; "),
        );
    }
    let text = std::str::from_utf8(body).ok()?.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return None;
    }
    Some(text.chars().take(200).collect())
}

/// `(code, message)` pairs of an OCI error body: `{"errors":[{"code":..,"message":..}]}`.
pub(crate) fn error_codes(body: &[u8]) -> Option<Vec<(String, String)>> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let errors = value.get("errors")?.as_array()?;
    let codes: Vec<_> = errors
        .iter()
        .filter_map(|e| {
            let code = e.get("code")?.as_str()?.to_owned();
            let message = e.get("message").and_then(|m| m.as_str()).unwrap_or_default().to_owned();
            Some((code, message))
        })
        .collect();
    (!codes.is_empty()).then_some(codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_described() {
        let cases: [(&[u8], Option<&str>); 5] = [
            (
                br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#,
                Some("BLOB_UNKNOWN: blob unknown to registry"),
            ),
            (br#"{"errors":[{"code":"A"},{"code":"B","message":"b"}]}"#, Some("A; B: b")),
            (b"  Service\n  Unavailable ", Some("Service Unavailable")),
            (b"", None),
            (&[0xff, 0xfe], None),
        ];
        for (body, want) in cases {
            assert_eq!(describe_body(body).as_deref(), want);
        }
    }

    #[test]
    fn hosts_keep_their_port() {
        let cases = [("http://h:5000/v2/", "h:5000"), ("https://h/v2/?X-Amz-Signature=s", "h")];
        for (url, want) in cases {
            assert_eq!(host_of(&Url::parse(url).unwrap()), want);
        }
    }
}
