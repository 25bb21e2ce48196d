//! [`Client`]: reqwest clients with the transport's options, one request at a time:
//! redirects that never carry credentials to another host, timeouts, bounded answers.

use std::time::Duration;

use bytes::Bytes;
use ferry_core::transport::{Side, TransportError};
use http::header::{AUTHORIZATION, CONTENT_LENGTH, COOKIE, LOCATION, PROXY_AUTHORIZATION};
use http::{HeaderMap, Method};
use reqwest::Url;

use crate::errors::{from_reqwest, host_of, status_error, timeout};
use crate::options::{BuildError, NativeOptions};

/// The HTTP clients of a transport and the options they were built with.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    client: reqwest::Client,
    /// Accepts invalid certificates; used only for [`NativeOptions::insecure_hosts`].
    insecure_client: Option<reqwest::Client>,
    options: NativeOptions,
}

impl Client {
    pub(crate) fn new(options: NativeOptions) -> Result<Self, BuildError> {
        options.validate()?;
        let client = build_client(&options, false)?;
        let insecure_client =
            if options.insecure_hosts.is_empty() { None } else { Some(build_client(&options, true)?) };
        Ok(Client { client, insecure_client, options })
    }

    pub(crate) fn options(&self) -> &NativeOptions {
        &self.options
    }

    /// The client for `url`: the one that accepts invalid certificates only for hosts
    /// listed as insecure.
    pub(crate) fn client_for(&self, url: &Url) -> &reqwest::Client {
        match &self.insecure_client {
            Some(insecure) if self.is_insecure(url) => insecure,
            _ => &self.client,
        }
    }

    pub(crate) fn is_insecure(&self, url: &Url) -> bool {
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let hosts = &self.options.insecure_hosts;
        hosts.contains(&host) || url.port().is_some_and(|port| hosts.contains(&format!("{host}:{port}")))
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
        let mut url = url;
        let mut hops = 0;
        loop {
            let host = host_of(&url);
            let mut request = self.client_for(&url).request(method.clone(), url.clone());
            if let Some(body) = &body {
                // Explicit, so that an empty POST or PUT still says `Content-Length: 0`.
                let mut headers = headers.clone();
                headers.insert(CONTENT_LENGTH, body.len().into());
                request = request.headers(headers).body(body.clone());
            } else {
                request = request.headers(headers.clone());
            }
            let answer = match tokio::time::timeout(wait, request.send()).await {
                Ok(answer) => answer.map_err(|e| from_reqwest(side, &host, e))?,
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
            tracing::debug!(from = %host, to = %host_of(&next), status = status.as_u16(), "following a redirect");
            hops += 1;
            url = next;
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

fn build_client(options: &NativeOptions, accept_invalid_certs: bool) -> Result<reqwest::Client, BuildError> {
    reqwest::Client::builder()
        .user_agent(options.user_agent.clone())
        .connect_timeout(options.connect_timeout)
        .pool_idle_timeout(options.pool_idle_timeout)
        .pool_max_idle_per_host(options.pool_max_idle_per_host)
        .tcp_keepalive(Duration::from_secs(30))
        // Redirects are followed by `fetch`, which decides what may follow them.
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .danger_accept_invalid_certs(accept_invalid_certs)
        .build()
        .map_err(|e| BuildError::Client(e.to_string()))
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

    #[test]
    fn insecure_hosts_pick_the_lenient_client() {
        let t = Client::new(NativeOptions::default().with_insecure_host("Reg.local:5000")).unwrap();
        assert!(t.is_insecure(&Url::parse("https://reg.local:5000/v2/").unwrap()));
        assert!(!t.is_insecure(&Url::parse("https://reg.local/v2/").unwrap()));
        let t = Client::new(NativeOptions::default().with_insecure_host("reg.local")).unwrap();
        assert!(t.is_insecure(&Url::parse("https://reg.local:5000/v2/").unwrap()));
        assert!(!t.is_insecure(&Url::parse("https://other/v2/").unwrap()));
    }
}
