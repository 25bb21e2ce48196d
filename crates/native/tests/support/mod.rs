//! A small registry for the transport's tests: real HTTP on 127.0.0.1, with knobs for the
//! faults a transport must survive. Uploads are hashed as they stream in and never kept,
//! so a 256 MiB upload costs the server no memory either.
// Each test file compiles these helpers as a private module of its own and uses some of
// them: `pub` marks what test files call.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use ferry_core::digest::{Algorithm, Digest, Hasher};
use ferry_core::retry::RetryPolicy;
use ferry_core::transport::Transfer;
use futures_util::StreamExt as _;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, LOCATION, RANGE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, Method};

/// Generated blobs are built from blocks of this size.
pub const BLOCK: usize = 64 * 1024;

/// How a `PATCH` fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchFault {
    /// Reads the chunk, keeps none of it, answers this status.
    Status(u16),
    /// Keeps the first half of the chunk, then answers this status.
    Partial(u16),
}

#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Blob and manifest GETs answer `307` to the same digest under this base URL.
    pub redirect_to: Option<String>,
    /// Blob GETs answer `302` to `/objects/<digest>` on this server.
    pub self_redirect: bool,
    /// Honour `Range: bytes=<n>-` on blob GETs.
    pub ranges: bool,
    /// Flip one byte in the middle of every blob served.
    pub corrupt: bool,
    /// Serve this many extra bytes after every blob.
    pub extra_bytes: usize,
    /// Break the connection after this many bytes of a blob (from its start).
    pub cut_after: Option<u64>,
    /// Go silent (without closing) after this many bytes of a blob.
    pub stall_after: Option<u64>,
    /// Answer blob GETs with this status and `Retry-After`.
    pub blob_status: Option<(u16, Option<&'static str>)>,
    /// Answer upload POSTs with this status.
    pub post_status: Option<u16>,
    /// Fail the n-th `PATCH` (1-based) this way.
    pub patch_faults: BTreeMap<usize, PatchFault>,
    /// Refuse `PUT`s that carry a body with this status (after reading the body).
    pub refuse_monolithic: Option<u16>,
    /// `OCI-Chunk-Min-Length` on opened sessions.
    pub chunk_min_length: Option<u64>,
}

#[derive(Debug, Clone)]
pub enum BlobData {
    Bytes(Bytes),
    Generated(u64),
}

impl BlobData {
    pub fn len(&self) -> u64 {
        match self {
            BlobData::Bytes(b) => b.len() as u64,
            BlobData::Generated(size) => *size,
        }
    }

    /// The bytes from `offset` on, in pieces of at most [`BLOCK`].
    fn pieces(&self, offset: u64) -> impl Iterator<Item = Bytes> + Send + 'static {
        let data = self.clone();
        let size = self.len();
        let mut at = offset;
        std::iter::from_fn(move || {
            if at >= size {
                return None;
            }
            let piece = match &data {
                BlobData::Bytes(b) => b.slice(at as usize..(at as usize + BLOCK).min(b.len())),
                BlobData::Generated(_) => {
                    let k = at / BLOCK as u64;
                    let block = generated_block(k);
                    let start = (at % BLOCK as u64) as usize;
                    let end = BLOCK.min((size - k * BLOCK as u64) as usize);
                    block.slice(start..end)
                }
            };
            at += piece.len() as u64;
            Some(piece)
        })
    }
}

/// Block `k` of a generated blob: a fixed pseudo-random block stamped with `k`.
pub fn generated_block(k: u64) -> Bytes {
    static BASE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let base = BASE.get_or_init(|| {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..BLOCK / 8)
            .flat_map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()
            })
            .collect()
    });
    let mut block = base.clone();
    block[..8].copy_from_slice(&k.to_le_bytes());
    Bytes::from(block)
}

/// The digest of a generated blob of `size` bytes, computed block by block.
pub fn generated_digest(size: u64) -> Digest {
    let mut hasher = Hasher::new(Algorithm::Sha256);
    for piece in BlobData::Generated(size).pieces(0) {
        hasher.update(&piece);
    }
    hasher.finish()
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: Method,
    /// Path and query.
    pub target: String,
    pub authorization: Option<String>,
    pub content_range: Option<String>,
    pub content_length: Option<u64>,
    pub range: Option<String>,
    pub status: u16,
}

struct Session {
    hasher: Hasher,
    kept: u64,
}

#[derive(Default)]
pub struct Inner {
    pub config: Config,
    blobs: BTreeMap<String, BlobData>,
    sessions: BTreeMap<u64, Session>,
    next_session: u64,
    patches: usize,
    pub log: Vec<Logged>,
    /// `(digest, size)` of every committed blob.
    pub committed: Vec<(String, u64)>,
    /// Upload bytes kept in sessions, over all sessions.
    pub kept: u64,
    /// Upload bytes received, kept or not.
    pub received: u64,
    /// Monolithic PUTs whose body broke off.
    pub aborted_puts: usize,
    pub cancelled: usize,
}

#[derive(Clone)]
pub struct Server {
    pub base: String,
    inner: Arc<Mutex<Inner>>,
}

impl Server {
    pub async fn start(config: Config) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let inner = Arc::new(Mutex::new(Inner { config, ..Inner::default() }));
        let app = axum::Router::new().fallback(handle).with_state(inner.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        Server { base: format!("http://{addr}"), inner }
    }

    pub fn state(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("server state")
    }

    pub fn add_blob(&self, data: impl Into<Bytes>) -> (Digest, u64) {
        let data = data.into();
        let digest = Digest::sha256(&data);
        let size = data.len() as u64;
        self.state().blobs.insert(digest.to_string(), BlobData::Bytes(data));
        (digest, size)
    }

    pub fn add_generated(&self, size: u64) -> (Digest, u64) {
        let digest = generated_digest(size);
        self.state().blobs.insert(digest.to_string(), BlobData::Generated(size));
        (digest, size)
    }

    pub fn log(&self) -> Vec<Logged> {
        self.state().log.clone()
    }

    pub fn requests(&self, method: Method) -> Vec<Logged> {
        self.log().into_iter().filter(|l| l.method == method).collect()
    }
}

/// A transfer of `digest` from `source` (repository `src/app`) to `destination`
/// (`dst/app`), each side with its own bearer token.
pub fn transfer(source: &Server, destination: &Server, digest: &Digest, size: u64) -> Transfer {
    let request = http::Request::get(format!("{}/v2/src/app/blobs/{digest}", source.base))
        .header(AUTHORIZATION, "Bearer source-SECRET")
        .body(())
        .expect("request");
    let mut upload_headers = HeaderMap::new();
    upload_headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer destination-SECRET"));
    Transfer {
        source: request,
        upload_start: format!("{}/v2/dst/app/blobs/uploads/", destination.base),
        upload_location: None,
        resumes_session: false,
        upload_headers,
        digest: digest.clone(),
        size,
        // Three resumes after the first try, 10 ms apart at most.
        retry: RetryPolicy {
            retries: 3,
            base: Duration::from_millis(10),
            cap: Duration::from_millis(10),
            ..RetryPolicy::default()
        },
        seed: 1,
        share: None,
    }
}

pub fn sample(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 31 % 251) as u8).collect()
}

type Shared = Arc<Mutex<Inner>>;

fn header(request: &Request, name: http::HeaderName) -> Option<String> {
    request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

async fn handle(State(inner): State<Shared>, request: Request) -> Response {
    let mut logged = Logged {
        method: request.method().clone(),
        target: request.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default(),
        authorization: header(&request, AUTHORIZATION),
        content_range: header(&request, CONTENT_RANGE),
        content_length: header(&request, CONTENT_LENGTH).and_then(|v| v.parse().ok()),
        range: header(&request, RANGE),
        status: 0,
    };
    let response = route(&inner, request).await;
    logged.status = response.status().as_u16();
    inner.lock().unwrap().log.push(logged);
    response
}

fn answer(status: u16) -> http::response::Builder {
    Response::builder().status(status)
}

fn oci_error(status: u16, code: &str, message: &str) -> Response {
    let body = format!(r#"{{"errors":[{{"code":"{code}","message":"{message}"}}]}}"#);
    answer(status).header("content-type", "application/json").body(Body::from(body)).unwrap()
}

async fn route(inner: &Shared, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    if let Some(rest) = path.strip_prefix("/objects/") {
        return serve_blob(inner, &request, rest);
    }
    if let Some((_, id)) = path.split_once("/blobs/uploads/") {
        return match (method, id) {
            (Method::POST, "") => open_session(inner),
            (method, id) => match id.parse::<u64>() {
                Ok(id) => session(inner, method, id, request).await,
                Err(_) => oci_error(404, "BLOB_UPLOAD_UNKNOWN", "no such upload"),
            },
        };
    }
    if let Some((_, digest)) = path.split_once("/blobs/") {
        let redirect = inner.lock().unwrap().config.redirect_to.clone();
        if let Some(to) = redirect {
            return answer(307)
                .header(LOCATION, format!("{to}/objects/{digest}?X-Amz-Signature=SECRET"))
                .body(Body::empty())
                .unwrap();
        }
        if inner.lock().unwrap().config.self_redirect {
            return answer(302).header(LOCATION, format!("/objects/{digest}")).body(Body::empty()).unwrap();
        }
        return serve_blob(inner, &request, digest);
    }
    if path.contains("/manifests/") {
        let redirect = inner.lock().unwrap().config.redirect_to.clone();
        if let Some(to) = redirect {
            return answer(307).header(LOCATION, format!("{to}{path}")).body(Body::empty()).unwrap();
        }
        if inner.lock().unwrap().config.self_redirect && !path.starts_with("/moved") {
            return answer(308).header(LOCATION, format!("/moved{path}")).body(Body::empty()).unwrap();
        }
        return answer(200)
            .header("content-type", "application/json")
            .body(Body::from("{\"manifest\":true}"))
            .unwrap();
    }
    if let Some(size) = path.strip_prefix("/big/") {
        let size: usize = size.parse().unwrap_or(0);
        return answer(200).body(Body::from(vec![b'x'; size])).unwrap();
    }
    if path == "/loop" {
        return answer(302).header(LOCATION, "/loop").body(Body::empty()).unwrap();
    }
    oci_error(404, "NOT_FOUND", "no route")
}

fn serve_blob(inner: &Shared, request: &Request, digest: &str) -> Response {
    let state = inner.lock().unwrap();
    let config = state.config.clone();
    if let Some((status, retry_after)) = config.blob_status {
        let mut response = oci_error(status, "UNAVAILABLE", "try later");
        if let Some(value) = retry_after {
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static(value));
        }
        return response;
    }
    let Some(blob) = state.blobs.get(digest).cloned() else {
        return oci_error(404, "BLOB_UNKNOWN", "blob unknown to registry");
    };
    drop(state);
    let size = blob.len();
    let start = config
        .ranges
        .then(|| header(request, RANGE))
        .flatten()
        .and_then(|r| r.strip_prefix("bytes=")?.strip_suffix('-')?.parse::<u64>().ok())
        .filter(|start| *start < size);
    let offset = start.unwrap_or(0);
    let served = size + config.extra_bytes as u64;
    let mut response = answer(if start.is_some() { 206 } else { 200 })
        .header(CONTENT_LENGTH, served - offset)
        .header("docker-content-digest", digest);
    if let Some(start) = start {
        response = response.header(CONTENT_RANGE, format!("bytes {start}-{}/{size}", size - 1));
    }
    if request.method() == Method::HEAD {
        return response.body(Body::empty()).unwrap();
    }
    let middle = size / 2;
    let mut at = offset;
    let extra = Bytes::from(vec![0u8; config.extra_bytes]);
    let pieces = blob.pieces(offset).chain((!extra.is_empty()).then_some(extra)).map(move |piece| {
        let piece_start = at;
        at += piece.len() as u64;
        if let Some(cut) = config.cut_after {
            if at > cut {
                return Err(std::io::Error::other("cut short on purpose"));
            }
        }
        if config.corrupt && (piece_start..at).contains(&middle) {
            let mut bytes = piece.to_vec();
            bytes[(middle - piece_start) as usize] ^= 0xff;
            return Ok(Bytes::from(bytes));
        }
        Ok(piece)
    });
    let stall_after = config.stall_after.unwrap_or(u64::MAX);
    let mut sent = offset;
    let pieces = pieces.take_while(move |_| {
        let more = sent < stall_after;
        sent += BLOCK as u64;
        more
    });
    let silence = futures_util::stream::pending().take(usize::from(config.stall_after.is_some()));
    response.body(Body::from_stream(futures_util::stream::iter(pieces).chain(silence))).unwrap()
}

fn open_session(inner: &Shared) -> Response {
    let mut state = inner.lock().unwrap();
    if let Some(status) = state.config.post_status {
        return oci_error(status, "DENIED", "no uploads here");
    }
    state.next_session += 1;
    let id = state.next_session;
    state.sessions.insert(id, Session { hasher: Hasher::new(Algorithm::Sha256), kept: 0 });
    let mut response =
        answer(202).header(LOCATION, format!("/v2/dst/app/blobs/uploads/{id}?_state=0")).header(RANGE, "0-0");
    if let Some(min) = state.config.chunk_min_length {
        response = response.header("oci-chunk-min-length", min);
    }
    response.body(Body::empty()).unwrap()
}

fn range_of(kept: u64) -> String {
    format!("0-{}", kept.saturating_sub(1))
}

fn session_answer(status: u16, id: u64, kept: u64) -> Response {
    answer(status)
        .header(LOCATION, format!("/v2/dst/app/blobs/uploads/{id}?_state={kept}"))
        .header(RANGE, range_of(kept))
        .body(Body::empty())
        .unwrap()
}

async fn session(inner: &Shared, method: Method, id: u64, request: Request) -> Response {
    let Some(kept) = inner.lock().unwrap().sessions.get(&id).map(|s| s.kept) else {
        return oci_error(404, "BLOB_UPLOAD_UNKNOWN", "no such upload");
    };
    match method {
        Method::GET => session_answer(204, id, kept),
        Method::DELETE => {
            let mut state = inner.lock().unwrap();
            state.sessions.remove(&id);
            state.cancelled += 1;
            answer(204).body(Body::empty()).unwrap()
        }
        Method::PATCH => patch(inner, id, kept, request).await,
        Method::PUT => put(inner, id, request).await,
        _ => oci_error(405, "UNSUPPORTED", "method"),
    }
}

async fn patch(inner: &Shared, id: u64, kept: u64, request: Request) -> Response {
    let start = header(&request, CONTENT_RANGE).and_then(|r| r.split('-').next()?.parse::<u64>().ok());
    if start != Some(kept) {
        return answer(416).header(RANGE, range_of(kept)).body(Body::empty()).unwrap();
    }
    let length = header(&request, CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let fault = {
        let mut state = inner.lock().unwrap();
        state.patches += 1;
        let n = state.patches;
        state.config.patch_faults.get(&n).copied()
    };
    let keep = match fault {
        None => u64::MAX,
        Some(PatchFault::Status(_)) => 0,
        Some(PatchFault::Partial(_)) => length / 2,
    };
    let mut body = request.into_body().into_data_stream();
    let mut taken = 0u64;
    while let Some(frame) = body.next().await {
        let Ok(frame) = frame else { return answer(400).body(Body::empty()).unwrap() };
        let mut state = inner.lock().unwrap();
        state.received += frame.len() as u64;
        let take = (keep.saturating_sub(taken)).min(frame.len() as u64) as usize;
        taken += frame.len() as u64;
        if take > 0 {
            state.kept += take as u64;
            let session = state.sessions.get_mut(&id).expect("session");
            session.hasher.update(&frame[..take]);
            session.kept += take as u64;
        }
    }
    let kept = inner.lock().unwrap().sessions.get(&id).map_or(0, |s| s.kept);
    match fault {
        Some(PatchFault::Status(status) | PatchFault::Partial(status)) => {
            oci_error(status, "UNKNOWN", "chunk lost")
        }
        None => session_answer(202, id, kept),
    }
}

async fn put(inner: &Shared, id: u64, request: Request) -> Response {
    let digest = request
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("digest=")))
        .map(|d| d.replace("%3A", ":"))
        .unwrap_or_default();
    let refuse = inner.lock().unwrap().config.refuse_monolithic;
    let has_body = header(&request, CONTENT_LENGTH).is_some_and(|l| l != "0");
    let mut body = request.into_body().into_data_stream();
    while let Some(frame) = body.next().await {
        let Ok(frame) = frame else {
            inner.lock().unwrap().aborted_puts += 1;
            return answer(400).body(Body::empty()).unwrap();
        };
        let mut state = inner.lock().unwrap();
        state.received += frame.len() as u64;
        if refuse.is_some() && has_body {
            continue;
        }
        state.kept += frame.len() as u64;
        let session = state.sessions.get_mut(&id).expect("session");
        session.hasher.update(&frame);
        session.kept += frame.len() as u64;
    }
    if let (Some(status), true) = (refuse, has_body) {
        return oci_error(status, "UNSUPPORTED", "send chunks");
    }
    let mut state = inner.lock().unwrap();
    let session = state.sessions.remove(&id).expect("session");
    let actual = session.hasher.finish().to_string();
    if actual != digest {
        return oci_error(400, "DIGEST_INVALID", "provided digest did not match uploaded content");
    }
    state.committed.push((digest.clone(), session.kept));
    answer(201)
        .header(LOCATION, format!("/v2/dst/app/blobs/{digest}"))
        .header("docker-content-digest", digest)
        .body(Body::empty())
        .unwrap()
}
