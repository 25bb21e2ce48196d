//! [`Client`]: reqwest clients with the transport's options, one request at a time:
//! redirects that never carry credentials to another host, timeouts, bounded answers.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferry_core::transport::{Side, TransportError};
use http::header::{AUTHORIZATION, CONTENT_LENGTH, COOKIE, LOCATION, PROXY_AUTHORIZATION};
use http::{HeaderMap, Method};
use reqwest::Url;

use crate::errors::{from_reqwest, host_of, status_error, timeout};
use crate::options::{BuildError, NativeOptions};
use crate::tls::Tls;

/// The HTTP clients of a transport (one per registry TLS setting), the run's scheme
/// decisions, and the options they were built with.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    tls: Arc<Tls>,
    options: NativeOptions,
}

impl Client {
    pub(crate) fn new(options: NativeOptions) -> Result<Self, BuildError> {
        options.validate()?;
        Ok(Client { tls: Arc::new(Tls::new(&options)?), options })
    }

    pub(crate) fn options(&self) -> &NativeOptions {
        &self.options
    }

    /// The client for `url`: its registry's own TLS settings, and no certificate
    /// verification for hosts listed as insecure. A setting that cannot be read was already
    /// reported by the `fetch` that opened the exchange; the shared client stands in.
    pub(crate) fn client_for(&self, url: &Url) -> reqwest::Client {
        match self.tls.client_for(Side::Registry, url) {
            Ok(client) => client.http,
            Err(_) => self.tls.shared(true).http,
        }
    }

    /// `url` in the scheme the core decided for its registry (see [`ferry_core::scheme`]).
    pub(crate) async fn decide_scheme(&self, url: Url) -> Url {
        self.tls.decide_scheme(url).await
    }

    /// Sends one request and waits up to `wait` for its answer's head. A `GET` or `HEAD`
    /// follows redirects (at most [`NativeOptions::max_redirects`]); `Authorization`,
    /// `Proxy-Authorization` and `Cookie` are dropped as soon as a redirect leaves the
    /// origin (scheme, host and port), and stay dropped.
    pub(crate) async fn fetch(
        &self,
        side: Side,
        method: Method,
        url: Url,
        mut headers: HeaderMap,
        body: Option<Bytes>,
        wait: Duration,
    ) -> Result<(reqwest::Response, Url), TransportError> {
        let follow = method == Method::GET || method == Method::HEAD;
        let allowlist = self.options.allowlist.as_ref();
        crate::allow::check_url(allowlist, side, &url)?;
        let mut url = self.tls.decide_scheme(url).await;
        let mut hops = 0;
        loop {
            let host = host_of(&url);
            let client = self.tls.client_for(side, &url)?;
            let mut request = client.http.request(method.clone(), url.clone());
            if let Some(body) = &body {
                // Explicit, so that an empty POST or PUT still says `Content-Length: 0`.
                let mut headers = headers.clone();
                headers.insert(CONTENT_LENGTH, body.len().into());
                request = request.headers(headers).body(body.clone());
            } else {
                request = request.headers(headers.clone());
            }
            let answer = match tokio::time::timeout(wait, request.send()).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(e)) => return Err(self.tls.error(side, &url, &client, e).await),
                Err(_) => return Err(timeout(side, &host, "did not answer", wait)),
            };
            let status = answer.status();
            if !follow || !status.is_redirection() || status == http::StatusCode::NOT_MODIFIED {
                return Ok((answer, url));
            }
            let Some(location) = answer.headers().get(LOCATION) else { return Ok((answer, url)) };
            let next = location.to_str().ok().and_then(|l| url.join(l).ok()).ok_or_else(|| {
                TransportError::Status {
                    side,
                    status: status.as_u16(),
                    retry_after: None,
                    detail: Some(format!("{host} redirected to a Location that is not a URL")),
                }
            })?;
            if hops == self.options.max_redirects {
                return Err(TransportError::Status {
                    side,
                    status: status.as_u16(),
                    retry_after: None,
                    detail: Some(format!(
                        "{host}: more than {} redirects; is the registry's redirect configuration looping?",
                        self.options.max_redirects
                    )),
                });
            }
            if !same_origin(&url, &next) {
                for name in [AUTHORIZATION, PROXY_AUTHORIZATION, COOKIE] {
                    headers.remove(name);
                }
            }
            // A redirect to a host the allowlist does not list is refused, not followed.
            crate::allow::check_url(allowlist, side, &next)?;
            tracing::debug!(from = %host, to = %host_of(&next), status = status.as_u16(), "following a redirect");
            hops += 1;
            url = self.tls.decide_scheme(next).await;
        }
    }

    /// The whole body of a small answer, refused beyond [`NativeOptions::max_answer_bytes`].
    pub(crate) async fn read_small(
        &self,
        side: Side,
        host: &str,
        mut answer: reqwest::Response,
    ) -> Result<Vec<u8>, TransportError> {
        let limit = self.options.max_answer_bytes;
        let too_large = |status: u16| TransportError::Status {
            side,
            status,
            retry_after: None,
            detail: Some(format!(
                "{host}: the answer is larger than {limit} bytes, the limit for manifests, tags and tokens"
            )),
        };
        let status = answer.status().as_u16();
        if answer.content_length().is_some_and(|len| len > limit as u64) {
            return Err(too_large(status));
        }
        let mut body = Vec::with_capacity(answer.content_length().unwrap_or(0) as usize);
        loop {
            let wait = self.options.read_timeout;
            let chunk = match tokio::time::timeout(wait, answer.chunk()).await {
                Ok(chunk) => chunk.map_err(|e| from_reqwest(side, host, e))?,
                Err(_) => return Err(timeout(side, host, "stopped sending its answer", wait)),
            };
            let Some(chunk) = chunk else { return Ok(body) };
            if body.len() + chunk.len() > limit {
                return Err(too_large(status));
            }
            body.extend_from_slice(&chunk);
        }
    }
}

/// RFC 6454's origin: scheme, host and port (the scheme's default when none is written).
pub(crate) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

pub(crate) fn parse_url(side: Side, url: &str) -> Result<Url, TransportError> {
    Url::parse(url).map_err(|e| TransportError::Connection {
        side,
        message: format!(
            "{:?} is not a URL ferry can request: {e}",
            url.split('?').next().unwrap_or_default()
        ),
    })
}

/// Turns a non-success answer into an error, reading its body for detail.
pub(crate) async fn expect_success(
    side: Side,
    answer: reqwest::Response,
    url: &Url,
) -> Result<reqwest::Response, TransportError> {
    if answer.status().is_success() {
        Ok(answer)
    } else {
        Err(status_error(side, &host_of(url), answer).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let cases = [
            ("http://a:5000/x", "http://a:5000/y?z", true),
            ("https://a/x", "https://a:443/y", true),
            ("http://a/x", "https://a/x", false),
            ("http://a:5000/x", "http://a:5001/x", false),
            ("http://a/x", "http://b/x", false),
        ];
        for (a, b, same) in cases {
            assert_eq!(same_origin(&Url::parse(a).unwrap(), &Url::parse(b).unwrap()), same, "{a} {b}");
        }
    }
}
