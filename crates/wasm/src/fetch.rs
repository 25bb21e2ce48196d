//! One HTTP exchange over the global `fetch`: the request, its deadline, the answer's
//! head and body, and what a failure means for the core.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use ferry_core::transport::{Side, TransportError};
use futures_util::future::{select, Either};
use http::header::{AUTHORIZATION, CONTENT_LENGTH, HOST};
use http::HeaderMap;
use js_sys::Uint8Array;
use wasm_bindgen::{JsCast as _, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    AbortController, Blob, Headers, ReadableStreamDefaultReader, RequestCache, RequestCredentials,
    RequestInit, Response,
};

use crate::clock::{wall_now, Sleep};
use crate::js;

/// How much of an error answer is read to describe it.
const DETAIL_BYTES: usize = 64 * 1024;
/// How long an error answer's body may take before it is left out.
const DETAIL_WAIT: Duration = Duration::from_secs(5);

/// A request body.
pub(crate) enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    Blob(&'a Blob),
}

/// A request's own `AbortController`, aborted when dropped: a request whose future is
/// dropped (a job that was aborted) stops, and so does a body nobody reads.
struct AbortOnDrop(AbortController);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An answer whose head has arrived. Dropping it aborts the rest of the exchange.
pub(crate) struct Answer {
    pub response: Response,
    _abort: AbortOnDrop,
    /// `host[:port]` of the request, for messages (never the query, which may be signed).
    pub host: String,
}

impl Answer {
    pub(crate) fn status(&self) -> u16 {
        self.response.status()
    }

    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.response.headers().get(name).ok().flatten()
    }

    /// The answer's head as the core's vocabulary. Under CORS only the headers the
    /// registry exposes are visible.
    pub(crate) fn head(&self) -> http::response::Builder {
        let mut builder = http::Response::builder().status(self.status());
        let entries = js_sys::try_iter(self.response.headers().as_ref()).ok().flatten();
        for entry in entries.into_iter().flatten().flatten() {
            let pair = js_sys::Array::from(&entry);
            if let (Some(name), Some(value)) = (pair.get(0).as_string(), pair.get(1).as_string()) {
                builder = builder.header(name, value);
            }
        }
        builder
    }

    /// The whole body, refused beyond `limit` bytes.
    pub(crate) async fn read_all(
        &self,
        side: Side,
        limit: usize,
        idle: Duration,
    ) -> Result<Vec<u8>, TransportError> {
        let mut reader = BodyReader::new(self, side, idle)?;
        let mut body = Vec::new();
        while let Some(piece) = reader.next().await? {
            if body.len() + piece.length() as usize > limit {
                return Err(TransportError::Status {
                    side,
                    status: self.status(),
                    retry_after: None,
                    detail: Some(format!(
                        "{}: the answer is larger than {limit} bytes, the limit for manifests, tags and tokens",
                        self.host
                    )),
                });
            }
            body.extend_from_slice(&piece.to_vec());
        }
        Ok(body)
    }

    /// The answer in the core's vocabulary: status and the headers CORS exposes, and for
    /// a status that is not a success the start of its body, which explains it.
    pub(crate) async fn into_http(self, side: Side) -> Result<http::Response<Vec<u8>>, TransportError> {
        let mut body = Vec::new();
        if !(200..300).contains(&self.status()) {
            if let Ok(mut reader) = BodyReader::new(&self, side, DETAIL_WAIT) {
                while let Ok(Some(piece)) = reader.next().await {
                    body.extend_from_slice(&piece.to_vec());
                    if body.len() >= DETAIL_BYTES {
                        break;
                    }
                }
            }
        }
        self.head()
            .body(body)
            .map_err(|e| TransportError::Connection { side, message: format!("{}: {e}", self.host) })
    }

    /// An answer that ended a transfer, as the core's error: its status, `Retry-After`,
    /// challenge, and the registry's own words from the body.
    pub(crate) async fn into_error(self, side: Side) -> TransportError {
        let host = self.host.clone();
        match self.into_http(side).await {
            Ok(answer) => TransportError::from_answer(side, &host, &answer, wall_now()),
            Err(error) => error,
        }
    }

    /// Turns an answer that is not a success into an error.
    pub(crate) async fn success(self, side: Side) -> Result<Answer, TransportError> {
        if (200..300).contains(&self.status()) {
            Ok(self)
        } else {
            Err(self.into_error(side).await)
        }
    }
}

/// An answer's body, piece by piece, failing when the peer stays silent for `idle`.
///
/// One watchdog timer covers the whole body, re-armed only when it fires after a piece
/// came. A timer per piece (thousands for a large blob), each cleared when its piece
/// came, still grew workerd's heap by 0.07 MiB per MiB read, for good
/// (bench/edge_limits.py); with one per body it stays flat.
pub(crate) struct BodyReader {
    reader: Option<ReadableStreamDefaultReader>,
    side: Side,
    host: String,
    idle: Duration,
    watchdog: Option<Sleep>,
    /// `performance.now()` when the last piece came (or the reading started).
    last_piece_ms: f64,
}

impl BodyReader {
    pub(crate) fn new(answer: &Answer, side: Side, idle: Duration) -> Result<Self, TransportError> {
        let reader = match answer.response.body() {
            Some(stream) => {
                Some(ReadableStreamDefaultReader::new(&stream).map_err(|e| TransportError::Connection {
                    side,
                    message: format!("{}: {}", answer.host, js::message_of(&e)),
                })?)
            }
            None => None,
        };
        let last_piece_ms = js::performance_now();
        Ok(BodyReader { reader, side, host: answer.host.clone(), idle, watchdog: None, last_piece_ms })
    }

    /// The next piece, or `None` at the end of the body.
    pub(crate) async fn next(&mut self) -> Result<Option<Uint8Array>, TransportError> {
        let Some(reader) = &self.reader else { return Ok(None) };
        let mut read = JsFuture::from(reader.read());
        let result = loop {
            let watchdog = self.watchdog.get_or_insert_with(|| Sleep::new(self.idle));
            match select(&mut read, watchdog).await {
                Either::Left((result, _)) => {
                    self.last_piece_ms = js::performance_now();
                    break result;
                }
                Either::Right(_) => {
                    let quiet = Duration::from_secs_f64(
                        (js::performance_now() - self.last_piece_ms).max(0.0) / 1000.0,
                    );
                    if quiet >= self.idle {
                        self.watchdog = None;
                        return Err(TransportError::Timeout {
                            side: self.side,
                            message: format!("{} sent nothing for {}s", self.host, self.idle.as_secs_f32()),
                        });
                    }
                    self.watchdog = Some(Sleep::new(self.idle - quiet));
                }
            }
        };
        let result = result.map_err(|e| TransportError::Connection {
            side: self.side,
            message: format!("{}: {} (the body was cut short)", self.host, js::message_of(&e)),
        })?;
        if js::get(&result, "done").as_bool() == Some(true) {
            self.reader = None;
            self.watchdog = None;
            return Ok(None);
        }
        Ok(js::get(&result, "value").dyn_into::<Uint8Array>().ok())
    }
}

/// Where a job's requests go, and what the page should learn when `fetch` itself fails.
pub(crate) struct Http {
    /// `(URL prefix, Authorization value)`: a caller's bearer token for a repository.
    tokens: Vec<(String, String)>,
    /// The registries' base URLs, to name the one a failed URL belongs to.
    bases: Vec<String>,
    /// Registries whose last `fetch` failed below HTTP, with the failure.
    unreachable: RefCell<BTreeMap<String, String>>,
}

impl Http {
    pub(crate) fn new(bases: Vec<String>, tokens: Vec<(String, String)>) -> Self {
        Http { tokens, bases, unreachable: RefCell::new(BTreeMap::new()) }
    }

    /// A registry that `fetch` could not reach, and why: set when a request failed below
    /// HTTP and no later request to that registry got an answer.
    pub(crate) fn unreachable(&self) -> Option<(String, String)> {
        self.unreachable.borrow().iter().next().map(|(r, m)| (r.clone(), m.clone()))
    }

    /// Sends one request and waits up to `wait` for its answer's head.
    pub(crate) async fn fetch(
        &self,
        side: Side,
        method: &str,
        url: &str,
        headers: &HeaderMap,
        body: Body<'_>,
        wait: Duration,
    ) -> Result<Answer, TransportError> {
        let host = host_of(url);
        let setup = |e: JsValue| TransportError::Connection {
            side,
            message: format!("{host}: the request could not be built: {}", js::message_of(&e)),
        };
        let abort = AbortOnDrop(AbortController::new().map_err(setup)?);
        let init = RequestInit::new();
        init.set_method(method);
        init.set_signal(Some(&abort.0.signal()));
        // Never answer from the HTTP cache (a tag moves), never send cookies, and never
        // let a browser show its own login prompt on a 401.
        init.set_cache(RequestCache::NoStore);
        init.set_credentials(RequestCredentials::Omit);
        init.set_headers(&self.headers(url, headers).map_err(setup)?.into());
        match body {
            Body::Empty => {}
            Body::Bytes(bytes) => init.set_body(&Uint8Array::from(bytes)),
            Body::Blob(blob) => init.set_body(blob),
        }
        let registry = self.registry_of(url);
        let started = js::fetch(url, &init);
        let answer = match started {
            Ok(promise) => match select(JsFuture::from(promise), Sleep::new(wait)).await {
                Either::Left((answer, _)) => answer,
                Either::Right(_) => {
                    return Err(TransportError::Timeout {
                        side,
                        message: format!("{host} did not answer for {}s", wait.as_secs_f32()),
                    });
                }
            },
            Err(thrown) => Err(thrown),
        };
        let response = match answer.and_then(|value| value.dyn_into::<Response>()) {
            Ok(response) => response,
            Err(error) => {
                let message = js::message_of(&error);
                self.unreachable.borrow_mut().insert(registry.clone(), message.clone());
                return Err(TransportError::Connection {
                    side,
                    message: format!("could not reach {registry}: {message}"),
                });
            }
        };
        self.unreachable.borrow_mut().remove(&registry);
        Ok(Answer { response, _abort: abort, host })
    }

    fn headers(&self, url: &str, headers: &HeaderMap) -> Result<Headers, JsValue> {
        let js_headers = Headers::new()?;
        for (name, value) in headers {
            // The browser sets these itself and refuses them from a page.
            if name == CONTENT_LENGTH || name == HOST {
                continue;
            }
            if let Ok(value) = value.to_str() {
                js_headers.append(name.as_str(), value)?;
            }
        }
        if !headers.contains_key(AUTHORIZATION) {
            let token = self.tokens.iter().find(|(prefix, _)| url.starts_with(prefix.as_str()));
            if let Some((_, value)) = token {
                js_headers.set(AUTHORIZATION.as_str(), value)?;
            }
        }
        Ok(js_headers)
    }

    /// The registry base URL that `url` belongs to, or the URL's origin (a redirect to
    /// object storage, a token service).
    fn registry_of(&self, url: &str) -> String {
        let base = self.bases.iter().filter(|b| url.starts_with(&format!("{b}/"))).max_by_key(|b| b.len());
        base.cloned().unwrap_or_else(|| origin_of(url).to_owned())
    }
}

/// `scheme://host[:port]` of a URL.
pub(crate) fn origin_of(url: &str) -> &str {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..].find(['/', '?', '#']).map_or(url.len(), |i| start + i);
    &url[..end]
}

/// `host[:port]` of a URL, for messages.
pub(crate) fn host_of(url: &str) -> String {
    let origin = origin_of(url);
    let authority = origin.find("://").map_or(origin, |i| &origin[i + 3..]);
    authority.rsplit('@').next().unwrap_or(authority).to_owned()
}
