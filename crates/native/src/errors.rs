//! Turning reqwest failures and HTTP answers into the core's [`TransportError`].
//!
//! Messages name the host and never a URL's query (object-storage redirects carry signed
//! credentials there) nor a header value.

use std::error::Error as _;
use std::time::Duration;

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
    TransportError::from_answer(side, host, &into_http(answer).await, wall_now())
}

/// An answer in the core's vocabulary: status and headers, and for a status that is not
/// a success the start of its body, which explains it.
pub(crate) async fn into_http(answer: reqwest::Response) -> http::Response<Vec<u8>> {
    let mut response = http::Response::new(Vec::new());
    *response.status_mut() = answer.status();
    *response.headers_mut() = answer.headers().clone();
    if !answer.status().is_success() {
        *response.body_mut() = read_detail(answer).await;
    }
    response
}

/// Up to [`DETAIL_BYTES`] of an answer's body, or less if it is slow.
async fn read_detail(answer: reqwest::Response) -> Vec<u8> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_keep_their_port() {
        let cases = [("http://h:5000/v2/", "h:5000"), ("https://h/v2/?X-Amz-Signature=s", "h")];
        for (url, want) in cases {
            assert_eq!(host_of(&Url::parse(url).unwrap()), want);
        }
    }
}
