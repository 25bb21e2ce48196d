//! The upload machine against a scripted registry on a virtual clock: every request is
//! logged with the instant it was sent, so resume and commit schedules are asserted
//! exactly (from the `RetryPolicy` and a seeded `Rng`). One file per state; this one
//! holds the scenario builder and the registry.

mod cancel;
mod commit;
mod open;
mod past_session;
mod patch;
mod resume;

use std::collections::BTreeMap;
use std::time::Duration;

use ferry_core::digest::{Digest, VerifyError};
use ferry_core::retry::{RetryPolicy, Rng};
use ferry_core::time::{Instant, UnixTime, WallClock};
use ferry_core::transport::{Side, Transfer, TransportError};
use ferry_core::upload::{
    Body, Output, Reply, RequestKind, Upload, UploadConfig, UploadMisuse, UploadRequest,
};
use http::{Method, Response, StatusCode};

const LATENCY: Duration = Duration::from_millis(10);
const BASE: &str = "http://dst.test";

/// How the registry (or the transport) fails the n-th request of a kind.
#[derive(Debug, Clone)]
enum Fault {
    /// Answer this status (keeping none of a chunk), with a JSON error body.
    Status(u16, &'static str),
    /// `503` with `Retry-After: <seconds>`.
    RetryAfter(u64),
    /// The connection breaks after the registry kept this many bytes of the chunk.
    Disconnect { keep: u64 },
    /// The registry commits, but its answer is lost.
    LostAnswer,
    /// The transport's own failure (the source broke, or the blob did not verify).
    Transport(TransportError),
}

/// One request as the registry saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Logged {
    at: Duration,
    method: Method,
    /// Path and query.
    target: String,
    body: Body,
    status: u16,
}

/// A blob's upload, set up step by step, then run to its end.
struct Scenario {
    size: u64,
    config: UploadConfig,
    policy: RetryPolicy,
    seed: u64,
    open_location: Option<String>,
    /// `open_location` is a past run's session (`Transfer::resumes_session`).
    resumes_session: bool,
    /// Bytes the registry holds in the session before the upload starts; `None` when it
    /// no longer knows the session.
    held_before: Option<u64>,
    min_chunk: Option<u64>,
    refuse_monolithic: Option<u16>,
    /// distribution's habit: `Range: 0-0` for an empty session.
    zero_range_when_empty: bool,
    faults: BTreeMap<(RequestKind, usize), Fault>,
    /// The transport finds that the blob does not verify.
    verify_fails: Option<TransportError>,
}

impl Scenario {
    fn new(size: u64) -> Self {
        Scenario {
            size,
            config: UploadConfig { chunk_size: 100, monolithic_below: 0, max_min_chunk: 1_000 },
            policy: RetryPolicy { retries: 3, ..RetryPolicy::default() },
            seed: 7,
            open_location: None,
            resumes_session: false,
            held_before: Some(0),
            min_chunk: None,
            refuse_monolithic: None,
            zero_range_when_empty: true,
            faults: BTreeMap::new(),
            verify_fails: None,
        }
    }

    fn chunk(mut self, chunk_size: u64) -> Self {
        self.config.chunk_size = chunk_size;
        self
    }

    fn monolithic_below(mut self, size: u64) -> Self {
        self.config.monolithic_below = size;
        self
    }

    fn min_chunk(mut self, min: u64) -> Self {
        self.min_chunk = Some(min);
        self
    }

    fn retries(mut self, retries: u32) -> Self {
        self.policy.retries = retries;
        self
    }

    /// A session already open (a mount answered `202`), its `Location` relative.
    fn open_session(mut self) -> Self {
        self.open_location = Some("/v2/app/blobs/uploads/1?_state=0".to_owned());
        self
    }

    /// A session a past run left, holding `held` bytes (`None`: the registry forgot it).
    fn past_session(mut self, held: Option<u64>) -> Self {
        self.open_location = Some(format!("{BASE}/v2/app/blobs/uploads/1?_state=past"));
        self.resumes_session = true;
        self.held_before = held;
        self
    }

    fn refuse_monolithic(mut self, status: u16) -> Self {
        self.refuse_monolithic = Some(status);
        self
    }

    /// The `n`-th (1-based) request of `kind` fails this way.
    fn fault(mut self, kind: RequestKind, n: usize, fault: Fault) -> Self {
        self.faults.insert((kind, n), fault);
        self
    }

    fn verify_fails(mut self, error: TransportError) -> Self {
        self.verify_fails = Some(error);
        self
    }

    fn transfer(&self) -> Transfer {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, "Bearer dst-SECRET".parse().unwrap());
        Transfer {
            source: http::Request::get("http://src.test/v2/app/blobs/x").body(()).unwrap(),
            upload_start: format!("{BASE}/v2/app/blobs/uploads/"),
            upload_location: self.open_location.clone(),
            resumes_session: self.resumes_session,
            upload_headers: headers,
            digest: digest(),
            size: self.size,
            retry: self.policy,
            seed: self.seed,
            share: None,
        }
    }

    fn upload(&self) -> Upload {
        Upload::new(&self.transfer(), self.config, WallClock::new(Instant::ZERO, UnixTime(1_000_000)))
    }

    /// Runs the upload against the registry until it asks for a request of `kind`, and
    /// hands back the upload, that request (unanswered) and the time.
    fn drive_to(self, kind: RequestKind) -> (Upload, UploadRequest, Instant) {
        let mut upload = self.upload();
        let mut registry = Registry::new(self);
        let mut now = Instant::ZERO;
        loop {
            match upload.poll_output(now) {
                Output::Send(request) if request.kind == kind => return (upload, request, now),
                Output::Send(request) => {
                    let reply = registry.answer(&request, now);
                    now = now + LATENCY;
                    upload.handle(reply, now).unwrap();
                }
                Output::Verify => upload.handle(Reply::Verified, now).unwrap(),
                Output::Wait(until) => now = until,
                other => panic!("the upload never asked for {kind:?}: {other:?}"),
            }
        }
    }

    fn run(self) -> Run {
        let mut upload = self.upload();
        let mut registry = Registry::new(self);
        let mut now = Instant::ZERO;
        loop {
            match upload.poll_output(now) {
                Output::Send(request) => {
                    let reply = registry.answer(&request, now);
                    now = now + LATENCY;
                    upload.handle(reply, now).unwrap();
                }
                Output::Verify => {
                    registry.verifies.push(now.since_origin());
                    let reply = match registry.scenario.verify_fails.clone() {
                        Some(error) => Reply::Failed(error),
                        None => Reply::Verified,
                    };
                    upload.handle(reply, now).unwrap();
                }
                Output::Wait(until) => {
                    assert!(until > now, "a wait lies ahead");
                    now = until;
                }
                Output::Busy => panic!("busy with nothing in flight"),
                Output::Done(result) => {
                    assert!(upload.is_done());
                    return Run { result, registry, chunk_len: upload.chunk_len() };
                }
            }
        }
    }
}

fn digest() -> Digest {
    Digest::sha256(b"blob")
}

struct Run {
    result: Result<(), TransportError>,
    registry: Registry,
    chunk_len: u64,
}

impl Run {
    fn requests(&self) -> Vec<(Method, u16)> {
        self.registry.log.iter().map(|l| (l.method.clone(), l.status)).collect()
    }

    fn chunks(&self) -> Vec<(u64, u64, u16)> {
        let chunks = self.registry.log.iter().filter(|l| l.method == Method::PATCH);
        chunks
            .map(|l| match l.body {
                Body::Chunk { start, end } => (start, end, l.status),
                other => panic!("a PATCH with {other:?}"),
            })
            .collect()
    }

    fn at(&self, method: Method) -> Vec<Duration> {
        self.registry.log.iter().filter(|l| l.method == method).map(|l| l.at).collect()
    }
}

/// The registry's side of one session at a time.
struct Registry {
    scenario: Scenario,
    session: Option<u64>,
    next_session: u64,
    held: u64,
    committed: bool,
    cancelled: usize,
    seen: BTreeMap<RequestKind, usize>,
    log: Vec<Logged>,
    verifies: Vec<Duration>,
}

impl Registry {
    fn new(scenario: Scenario) -> Self {
        let open = scenario.open_location.is_some() && scenario.held_before.is_some();
        let held = scenario.held_before.unwrap_or(0);
        Registry {
            scenario,
            session: open.then_some(1),
            next_session: 1,
            held,
            committed: false,
            cancelled: 0,
            seen: BTreeMap::new(),
            log: Vec::new(),
            verifies: Vec::new(),
        }
    }

    fn fault_for(&mut self, kind: RequestKind, n: usize) -> Option<Fault> {
        self.scenario.faults.get(&(kind, n)).cloned()
    }

    fn answer(&mut self, request: &UploadRequest, now: Instant) -> Reply {
        let n = {
            let seen = self.seen.entry(request.kind).or_default();
            *seen += 1;
            *seen
        };
        let http = &request.request;
        assert_eq!(http.headers()["authorization"], "Bearer dst-SECRET", "{:?}", request.kind);
        let target = http.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
        assert!(http.uri().to_string().starts_with(BASE), "absolute URLs: {}", http.uri());
        let fault = self.fault_for(request.kind, n);
        let (reply, status) = self.respond(request, fault);
        self.log.push(Logged {
            at: now.since_origin(),
            method: http.method().clone(),
            target,
            body: request.body,
            status,
        });
        reply
    }

    fn respond(&mut self, request: &UploadRequest, fault: Option<Fault>) -> (Reply, u16) {
        let size = self.scenario.size;
        let kind = request.kind;
        let kept = |keep: u64| match request.body {
            Body::Chunk { start, end } => (start + keep).min(end),
            _ => 0,
        };
        match fault {
            Some(Fault::Status(status, code)) => return (error(status, code), status),
            Some(Fault::RetryAfter(seconds)) => {
                let answer = Response::builder().status(503).header("retry-after", seconds.to_string());
                return (Reply::Answer(answer.body(Vec::new()).unwrap()), 503);
            }
            Some(Fault::Disconnect { keep }) => {
                if kind == RequestKind::Patch {
                    self.held = kept(keep);
                }
                let error = TransportError::Connection { side: Side::Destination, message: "reset".into() };
                return (Reply::Failed(error), 0);
            }
            Some(Fault::LostAnswer) => {
                self.committed = true;
                self.session = None;
                let error = TransportError::Timeout { side: Side::Destination, message: "no answer".into() };
                return (Reply::Failed(error), 0);
            }
            Some(Fault::Transport(error)) => return (Reply::Failed(error), 0),
            None => {}
        }
        let session_alive = self.session.is_some();
        match kind {
            RequestKind::Open => {
                self.next_session += 1;
                self.session = Some(self.next_session);
                self.held = 0;
                let mut answer = session(202, self.next_session, 0, self.scenario.zero_range_when_empty);
                if let Some(min) = self.scenario.min_chunk {
                    answer = answer.header("oci-chunk-min-length", min.to_string());
                }
                (Reply::Answer(answer.body(Vec::new()).unwrap()), 202)
            }
            _ if kind != RequestKind::Check && !session_alive => (error(404, "BLOB_UPLOAD_UNKNOWN"), 404),
            RequestKind::Patch => {
                let Body::Chunk { start, end } = request.body else { panic!("a PATCH without a chunk") };
                if start != self.held {
                    return (error(416, "BLOB_UPLOAD_INVALID"), 416);
                }
                self.held = end;
                let id = self.session.unwrap();
                (Reply::Answer(session(202, id, self.held, true).body(Vec::new()).unwrap()), 202)
            }
            RequestKind::Status => {
                let id = self.session.unwrap();
                let answer = session(204, id, self.held, self.scenario.zero_range_when_empty);
                (Reply::Answer(answer.body(Vec::new()).unwrap()), 204)
            }
            RequestKind::Monolithic => {
                if let Some(status) = self.scenario.refuse_monolithic {
                    return (error(status, "SIZE_INVALID"), status);
                }
                self.committed = true;
                self.session = None;
                (Reply::Answer(Response::builder().status(201).body(Vec::new()).unwrap()), 201)
            }
            RequestKind::Commit => {
                assert!(request.request.uri().query().unwrap().contains("digest=sha256%3A"));
                if self.held != size {
                    return (error(400, "SIZE_INVALID"), 400);
                }
                self.committed = true;
                self.session = None;
                (Reply::Answer(Response::builder().status(201).body(Vec::new()).unwrap()), 201)
            }
            RequestKind::Check => {
                let status = if self.committed { 200 } else { 404 };
                (Reply::Answer(Response::builder().status(status).body(Vec::new()).unwrap()), status)
            }
            RequestKind::Cancel => {
                self.session = None;
                self.cancelled += 1;
                (Reply::Answer(Response::builder().status(204).body(Vec::new()).unwrap()), 204)
            }
        }
    }
}

/// A session answer: `Location` carrying the state, `Range: 0-<last>` (or `0-0`).
fn session(status: u16, id: u64, held: u64, zero_range_when_empty: bool) -> http::response::Builder {
    let builder = Response::builder()
        .status(status)
        .header("location", format!("/v2/app/blobs/uploads/{id}?_state={held}"));
    match (held, zero_range_when_empty) {
        (0, true) => builder.header("range", "0-0"),
        (0, false) => builder,
        (held, _) => builder.header("range", format!("0-{}", held - 1)),
    }
}

fn error(status: u16, code: &str) -> Reply {
    let body = format!(r#"{{"errors":[{{"code":"{code}","message":"said the registry"}}]}}"#);
    Reply::Answer(Response::builder().status(status).body(body.into_bytes()).unwrap())
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The policy's backoffs before retries 0, 1, ... for `seed`.
fn backoffs(policy: &RetryPolicy, seed: u64, n: u32) -> Vec<Duration> {
    let mut rng = Rng::new(seed);
    (0..n).map(|retry| policy.backoff(retry, &mut rng)).collect()
}
