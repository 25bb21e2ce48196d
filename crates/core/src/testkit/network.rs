//! Routes requests to fake registries by host, injects scripted faults, and logs every
//! request so tests can count them.

use std::collections::BTreeMap;

use http::{Method, Request, Response, StatusCode};

use super::limiter::RateLimit;
use super::quota::Quota;
use super::registry::FakeRegistry;
use crate::digest::Verifier;
use crate::error_body::{ErrorBody, ErrorCode};
use crate::time::Instant;
use crate::transport::{Side, Transfer, TransferReport, TransportError};
use crate::window::ActionClass;

/// What a fault does instead of the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultAnswer {
    /// Answer this status, with a `Retry-After` value if given.
    Status {
        /// The HTTP status.
        status: u16,
        /// The `Retry-After` header's value, seconds or an HTTP-date.
        retry_after: Option<String>,
    },
    /// Answer this status with the spec's error body naming `code`.
    Error {
        /// The HTTP status.
        status: u16,
        /// The error body's code.
        code: ErrorCode,
    },
    /// Break the connection (mid-body for a blob).
    Disconnect,
}

/// Answers the next `times` requests whose method matches and whose URL contains
/// `path_contains` (so `src.test/v2/app` picks one registry), instead of the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Only requests with this method; `None` for any.
    pub method: Option<Method>,
    /// Only URLs containing this.
    pub path_contains: String,
    /// How many matching requests it answers before the registry answers again.
    pub times: usize,
    /// What it answers.
    pub answer: FaultAnswer,
}

impl Fault {
    /// A fault that answers `status`, without `Retry-After`.
    pub fn status(method: Method, path_contains: &str, times: usize, status: u16) -> Self {
        Fault {
            method: Some(method),
            path_contains: path_contains.to_owned(),
            times,
            answer: FaultAnswer::Status { status, retry_after: None },
        }
    }
}

/// One request as a registry saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    /// When it arrived, on the virtual clock.
    pub at: Instant,
    /// The request's method.
    pub method: Method,
    /// The whole URL, host included.
    pub url: String,
    /// What was answered, a fault's status included.
    pub status: u16,
}

/// In-memory registries by host, with faults in front and a log of every request, so a
/// test can assert exactly which requests a job made.
#[derive(Debug, Default)]
pub struct Network {
    /// By host, as in URLs.
    pub registries: BTreeMap<String, FakeRegistry>,
    /// Tried in order before the registries.
    pub faults: Vec<Fault>,
    /// Every request, in arrival order.
    pub log: Vec<LoggedRequest>,
    /// Rate limiters by host, tried after the faults and before the registry.
    pub limits: BTreeMap<String, Vec<RateLimit>>,
    /// Pull quotas by host, counted after the limiters.
    pub quotas: BTreeMap<String, Quota>,
}

impl Network {
    /// A network with no registries.
    pub fn new() -> Self {
        Network::default()
    }

    /// Adds a registry reachable at `http://<host>`; returns it for seeding.
    pub fn add(&mut self, host: &str) -> &mut FakeRegistry {
        self.registries.entry(host.to_owned()).or_insert_with(|| FakeRegistry::new(&format!("http://{host}")))
    }

    /// The registry at `host`, added if missing: for asserting on what it holds.
    pub fn registry(&mut self, host: &str) -> &mut FakeRegistry {
        self.add(host)
    }

    /// Limits `host`'s requests of `limit.class` with a token bucket.
    pub fn rate_limit(&mut self, host: &str, limit: RateLimit) {
        self.limits.entry(host.to_owned()).or_default().push(limit);
    }

    /// Requests logged for `host` that were answered `status`.
    pub fn count_status(&self, host: &str, status: u16) -> usize {
        self.log.iter().filter(|r| r.status == status && r.url.contains(&format!("//{host}/"))).count()
    }

    /// The `429` a limiter of `host` answers a request of `class` at `now`, if its bucket
    /// is empty.
    fn limited(&mut self, host: &str, class: ActionClass, now: Instant) -> Option<Response<Vec<u8>>> {
        let limit = self.limits.get_mut(host)?.iter_mut().find(|l| l.class == class)?;
        limit.take(now)
    }

    /// Requests logged for `host` whose method and path match.
    pub fn count(&self, method: &Method, host: &str, path_contains: &str) -> usize {
        self.log
            .iter()
            .filter(|r| {
                r.method == *method && r.url.contains(&format!("//{host}/")) && r.url.contains(path_contains)
            })
            .count()
    }

    fn fault(&mut self, method: &Method, url: &str) -> Option<FaultAnswer> {
        let fault = self.faults.iter_mut().find(|f| {
            f.times > 0 && f.method.as_ref().is_none_or(|m| m == method) && url.contains(&f.path_contains)
        })?;
        fault.times -= 1;
        Some(fault.answer.clone())
    }

    /// Sends a small request.
    pub fn send(
        &mut self,
        request: &Request<Vec<u8>>,
        now: Instant,
    ) -> Result<Response<Vec<u8>>, TransportError> {
        self.exchange(request, now, Side::Registry)
    }

    fn exchange(
        &mut self,
        request: &Request<Vec<u8>>,
        now: Instant,
        side: Side,
    ) -> Result<Response<Vec<u8>>, TransportError> {
        let url = request.uri().to_string();
        let host = request.uri().authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
        let answer = match self.fault(request.method(), &url) {
            Some(FaultAnswer::Disconnect) => {
                self.log.push(LoggedRequest { at: now, method: request.method().clone(), url, status: 0 });
                return Err(TransportError::Connection { side, message: "connection reset by peer".into() });
            }
            Some(FaultAnswer::Status { status, retry_after }) => {
                let mut response = Response::builder().status(status);
                if let Some(value) = retry_after {
                    response = response.header("retry-after", value);
                }
                response.body(Vec::new()).unwrap_or_default()
            }
            Some(FaultAnswer::Error { status, code }) => error_response(status, code),
            None => {
                let uri = request.uri();
                let class = ActionClass::of_request(request.method(), uri.path(), uri.query());
                let limited = self.limited(&host, class, now);
                let quota = match self.quotas.get_mut(&host) {
                    Some(quota) if limited.is_none() && Quota::covers(uri.path()) => {
                        quota.take(request.method(), uri.path(), now)
                    }
                    _ => Ok(Vec::new()),
                };
                match (limited, quota, self.registries.get_mut(&host)) {
                    (Some(refused), _, _) => refused,
                    (None, Err(refused), _) => *refused,
                    (None, Ok(fields), Some(registry)) => {
                        let mut answer = registry.handle(request);
                        for (name, value) in fields {
                            if let Ok(value) = http::HeaderValue::from_str(&value) {
                                answer.headers_mut().insert(name, value);
                            }
                        }
                        answer
                    }
                    (None, Ok(_), None) => {
                        self.log.push(LoggedRequest {
                            at: now,
                            method: request.method().clone(),
                            url,
                            status: 0,
                        });
                        return Err(TransportError::Connection {
                            side,
                            message: format!("could not resolve host {host}"),
                        });
                    }
                }
            }
        };
        self.log.push(LoggedRequest {
            at: now,
            method: request.method().clone(),
            url,
            status: answer.status().as_u16(),
        });
        Ok(answer)
    }

    /// Moves a blob the way a real transport does: GET, verify while reading, then upload,
    /// committing only verified bytes.
    pub fn transfer(&mut self, transfer: &Transfer, now: Instant) -> Result<TransferReport, TransportError> {
        let mut get = Request::builder().method(Method::GET).uri(transfer.source.uri().clone());
        for (name, value) in transfer.source.headers() {
            get = get.header(name, value);
        }
        let get = get.body(Vec::new()).unwrap_or_default();
        let path = get.uri().path().to_owned();
        let host = get.uri().authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
        let status = |side, status: StatusCode, response: &Response<Vec<u8>>| {
            let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok());
            if status == StatusCode::UNAUTHORIZED {
                let challenge = header("www-authenticate").map(str::to_owned);
                return TransportError::Unauthorized { side, challenge, detail: None };
            }
            TransportError::Status {
                side,
                status: status.as_u16(),
                retry_after: header("retry-after")
                    .and_then(|v| v.parse().ok())
                    .map(std::time::Duration::from_secs),
                detail: None,
            }
        };
        // The blob GET: a HEAD through the registry checks auth and existence, then the
        // bytes come from its store.
        let mut head = get.clone();
        *head.method_mut() = Method::HEAD;
        let probe = match self.fault(&Method::GET, &get.uri().to_string()) {
            Some(FaultAnswer::Disconnect) => {
                self.log.push(LoggedRequest {
                    at: now,
                    method: Method::GET,
                    url: get.uri().to_string(),
                    status: 0,
                });
                return Err(TransportError::Connection {
                    side: Side::Source,
                    message: "connection reset mid-body".into(),
                });
            }
            Some(FaultAnswer::Status { status: code, retry_after }) => {
                let mut r = Response::builder().status(code);
                if let Some(v) = retry_after {
                    r = r.header("retry-after", v);
                }
                r.body(Vec::new()).unwrap_or_default()
            }
            Some(FaultAnswer::Error { status, code }) => error_response(status, code),
            None => match self.limited(&host, ActionClass::BlobRead, now) {
                Some(refused) => refused,
                None => match self.registries.get_mut(&host) {
                    Some(registry) => registry.handle(&head),
                    None => {
                        return Err(TransportError::Connection {
                            side: Side::Source,
                            message: format!("could not resolve host {host}"),
                        })
                    }
                },
            },
        };
        self.log.push(LoggedRequest {
            at: now,
            method: Method::GET,
            url: get.uri().to_string(),
            status: probe.status().as_u16(),
        });
        if !probe.status().is_success() {
            return Err(status(Side::Source, probe.status(), &probe));
        }
        let (repository, digest) = blob_path(&path).ok_or(TransportError::Status {
            side: Side::Source,
            status: 404,
            retry_after: None,
            detail: None,
        })?;
        let bytes = self
            .registries
            .get(&host)
            .and_then(|r| r.serve_blob(&repository, &digest))
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        let mut verifier = Verifier::new(transfer.digest.clone(), transfer.size);
        for chunk in bytes.chunks(64 * 1024) {
            verifier.update(chunk).map_err(TransportError::Verify)?;
        }
        verifier.finish().map_err(TransportError::Verify)?;

        let location = match &transfer.upload_location {
            Some(location) => location.clone(),
            None => {
                let mut post = Request::builder().method(Method::POST).uri(transfer.upload_start.as_str());
                for (name, value) in &transfer.upload_headers {
                    post = post.header(name, value);
                }
                let post = post.body(Vec::new()).unwrap_or_default();
                let answer = self.exchange(&post, now, Side::Destination)?;
                if answer.status() != StatusCode::ACCEPTED {
                    return Err(status(Side::Destination, answer.status(), &answer));
                }
                answer.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
            }
        };
        let put_url = crate::api::upload_complete(&location, &transfer.digest);
        let upload_host =
            put_url.split_once("//").and_then(|(_, r)| r.split('/').next()).unwrap_or_default().to_owned();
        if let Some(answer) = self.fault(&Method::PUT, &put_url) {
            self.log.push(LoggedRequest { at: now, method: Method::PUT, url: put_url.clone(), status: 0 });
            return Err(match answer {
                FaultAnswer::Disconnect => {
                    TransportError::Connection { side: Side::Destination, message: "connection reset".into() }
                }
                FaultAnswer::Status { status, .. } | FaultAnswer::Error { status, .. } => {
                    TransportError::Status {
                        side: Side::Destination,
                        status,
                        retry_after: None,
                        detail: None,
                    }
                }
            });
        }
        let registry = self.registries.get_mut(&upload_host).ok_or(TransportError::Connection {
            side: Side::Destination,
            message: format!("could not resolve host {upload_host}"),
        })?;
        let result = registry.commit_upload(&location, &transfer.digest, bytes);
        let code = result.err().unwrap_or(StatusCode::CREATED);
        self.log.push(LoggedRequest { at: now, method: Method::PUT, url: put_url, status: code.as_u16() });
        if code != StatusCode::CREATED {
            return Err(TransportError::Status {
                side: Side::Destination,
                status: code.as_u16(),
                retry_after: None,
                detail: None,
            });
        }
        Ok(TransferReport { bytes: transfer.size })
    }
}

fn blob_path(path: &str) -> Option<(String, crate::digest::Digest)> {
    let rest = path.strip_prefix("/v2/")?;
    let i = rest.rfind("/blobs/")?;
    Some((rest[..i].to_owned(), rest[i + "/blobs/".len()..].parse().ok()?))
}

/// A fault's answer with the spec's error body.
fn error_response(status: u16, code: ErrorCode) -> Response<Vec<u8>> {
    let body = ErrorBody::single(code, "injected", None);
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap_or_default())
        .unwrap_or_default()
}
