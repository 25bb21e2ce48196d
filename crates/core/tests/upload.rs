//! The upload machine against a scripted registry on a virtual clock: every request is
//! logged with the instant it was sent, so resume and commit schedules are asserted
//! exactly (from the `RetryPolicy` and a seeded `Rng`).

use std::collections::BTreeMap;
use std::time::Duration;

use ferry_core::digest::{Digest, VerifyError};
use ferry_core::retry::{RetryPolicy, Rng};
use ferry_core::time::{Instant, UnixTime, WallClock};
use ferry_core::transport::{Side, Transfer, TransportError};
use ferry_core::upload::{Body, Output, Reply, RequestKind, Upload, UploadConfig, UploadMisuse};
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
            upload_headers: headers,
            digest: digest(),
            size: self.size,
            retry: self.policy,
            seed: self.seed,
        }
    }

    fn upload(&self) -> Upload {
        Upload::new(&self.transfer(), self.config, WallClock::new(Instant::ZERO, UnixTime(1_000_000)))
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
        let open = scenario.open_location.is_some();
        Registry {
            scenario,
            session: open.then_some(1),
            next_session: 1,
            held: 0,
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

    fn answer(&mut self, request: &ferry_core::upload::UploadRequest, now: Instant) -> Reply {
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

    fn respond(&mut self, request: &ferry_core::upload::UploadRequest, fault: Option<Fault>) -> (Reply, u16) {
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

// --- open -----------------------------------------------------------------------------

#[test]
fn open_then_chunks_then_commit() {
    let run = Scenario::new(250).run();
    assert_eq!(run.result, Ok(()));
    assert_eq!(
        run.requests(),
        vec![
            (Method::POST, 202),
            (Method::PATCH, 202),
            (Method::PATCH, 202),
            (Method::PATCH, 202),
            (Method::PUT, 201)
        ]
    );
    assert_eq!(run.chunks(), vec![(0, 100, 202), (100, 200, 202), (200, 250, 202)]);
    // Each request went to the Location the previous answer gave.
    let targets: Vec<_> = run.registry.log.iter().map(|l| l.target.as_str()).collect();
    assert_eq!(targets[1], "/v2/app/blobs/uploads/2?_state=0");
    assert_eq!(targets[2], "/v2/app/blobs/uploads/2?_state=100");
    assert!(targets[4].starts_with("/v2/app/blobs/uploads/2?_state=250&digest=sha256%3A"));
    // The commit follows the transport's verification of the whole blob.
    assert_eq!(run.registry.verifies, vec![ms(40)]);
    assert_eq!(run.at(Method::PUT), vec![ms(40)]);
}

#[test]
fn an_open_session_from_a_mount_is_used() {
    let run = Scenario::new(100).open_session().run();
    assert_eq!(run.result, Ok(()));
    assert_eq!(run.requests(), vec![(Method::PATCH, 202), (Method::PUT, 201)]);
    assert_eq!(run.registry.log[0].target, "/v2/app/blobs/uploads/1?_state=0");
}

#[test]
fn a_failed_open_reports_the_registry_error_and_cancels_nothing() {
    let run = Scenario::new(100).fault(RequestKind::Open, 1, Fault::Status(403, "DENIED")).run();
    let error = run.result.as_ref().unwrap_err();
    match &error {
        TransportError::Status { side: Side::Destination, status: 403, detail: Some(detail), .. } => {
            assert_eq!(detail, "dst.test: DENIED: said the registry")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(run.requests(), vec![(Method::POST, 403)]);
}

// --- monolithic ---------------------------------------------------------------------------

#[test]
fn a_small_blob_goes_up_whole() {
    let run = Scenario::new(50).monolithic_below(64).run();
    assert_eq!(run.result, Ok(()));
    assert_eq!(run.requests(), vec![(Method::POST, 202), (Method::PUT, 201)]);
    assert_eq!(run.registry.log[1].body, Body::Whole);
    assert!(run.registry.verifies.is_empty(), "the whole body verifies as it streams");
}

#[test]
fn a_refused_monolithic_put_falls_back_to_chunks_in_a_new_session() {
    for status in [405, 413, 501, 400] {
        let run = Scenario::new(150).monolithic_below(1_000).refuse_monolithic(status).run();
        assert_eq!(run.result, Ok(()), "{status}");
        assert_eq!(
            run.requests(),
            vec![
                (Method::POST, 202),
                (Method::PUT, status),
                (Method::DELETE, 204),
                (Method::POST, 202),
                (Method::PATCH, 202),
                (Method::PATCH, 202),
                (Method::PUT, 201)
            ],
            "{status}"
        );
    }
}

// --- chunks -------------------------------------------------------------------------------

#[test]
fn the_registry_minimum_chunk_length_is_honoured() {
    // (chunk size, OCI-Chunk-Min-Length, expected chunk length)
    let cases = [(100, Some(250), 250), (300, Some(250), 300), (100, Some(5_000), 100), (100, None, 100)];
    for (chunk, min, want) in cases {
        let mut scenario = Scenario::new(1_010).chunk(chunk);
        if let Some(min) = min {
            scenario = scenario.min_chunk(min);
        }
        let run = scenario.run();
        assert_eq!(run.result, Ok(()), "{chunk} {min:?}");
        assert_eq!(run.chunk_len, want, "{chunk} {min:?}");
        let chunks = run.chunks();
        let (last, rest) = chunks.split_last().unwrap();
        for (start, end, _) in rest {
            assert_eq!(end - start, want, "every chunk but the last is full: {chunks:?}");
            if let Some(min) = min.filter(|&m| m <= 1_000) {
                assert!(end - start >= min);
            }
        }
        assert_eq!(last.1, 1_010);
    }
}

#[test]
fn a_failed_patch_resumes_from_the_registry_range_at_the_backoff_instant() {
    let scenario = Scenario::new(450).fault(RequestKind::Patch, 3, Fault::Status(500, "UNKNOWN"));
    let policy = scenario.policy;
    let run = scenario.run();
    assert_eq!(run.result, Ok(()));
    // POST 0ms, PATCH 10, 20, 30 (fails, answered at 40), GET after the first backoff.
    let backoff = backoffs(&policy, 7, 1)[0];
    let resume = ms(40) + backoff;
    assert_eq!(run.at(Method::GET), vec![resume]);
    assert_eq!(
        run.chunks(),
        vec![
            (0, 100, 202),
            (100, 200, 202),
            (200, 300, 500),
            (200, 300, 202),
            (300, 400, 202),
            (400, 450, 202)
        ]
    );
    let patches = run.at(Method::PATCH);
    assert_eq!(patches[3], resume + LATENCY, "the chunk goes again as soon as the registry said where");
    assert_eq!(run.registry.held, 450);
}

#[test]
fn a_chunk_the_registry_partly_kept_resumes_mid_chunk() {
    let run = Scenario::new(300).fault(RequestKind::Patch, 2, Fault::Disconnect { keep: 40 }).run();
    assert_eq!(run.result, Ok(()));
    assert_eq!(run.chunks(), vec![(0, 100, 202), (100, 200, 0), (140, 240, 202), (240, 300, 202)]);
}

#[test]
fn a_chunk_whose_answer_was_lost_is_not_sent_again() {
    let run = Scenario::new(200).fault(RequestKind::Patch, 2, Fault::Disconnect { keep: 100 }).run();
    assert_eq!(run.result, Ok(()));
    assert_eq!(run.chunks(), vec![(0, 100, 202), (100, 200, 0)]);
    assert_eq!(run.requests().last(), Some(&(Method::PUT, 201)));
}

#[test]
fn distribution_zero_range_on_an_empty_session_means_nothing_held() {
    // The first chunk into a mount's session breaks before the registry kept a byte: it
    // answers the status GET with `Range: 0-0`, which is 0 bytes, not 1.
    let run =
        Scenario::new(150).open_session().fault(RequestKind::Patch, 1, Fault::Disconnect { keep: 0 }).run();
    assert_eq!(run.result, Ok(()));
    assert_eq!(run.chunks(), vec![(0, 100, 0), (0, 100, 202), (100, 150, 202)]);
    assert_eq!(run.requests()[1], (Method::GET, 204));
}

#[test]
fn retry_after_is_waited_for() {
    let run = Scenario::new(200).fault(RequestKind::Patch, 1, Fault::RetryAfter(7)).run();
    assert_eq!(run.result, Ok(()));
    // POST at 0, PATCH at 10 answered 503 at 20, GET 7 s later.
    assert_eq!(run.at(Method::GET), vec![ms(20) + Duration::from_secs(7)]);
}

#[test]
fn resuming_gives_up_after_the_policy_retries_and_cancels() {
    let mut scenario = Scenario::new(300).retries(2);
    for n in 1..=10 {
        scenario = scenario.fault(RequestKind::Patch, n, Fault::Status(500, "UNKNOWN"));
    }
    let policy = scenario.policy;
    let run = scenario.run();
    let error = run.result.as_ref().unwrap_err();
    assert!(matches!(error, TransportError::Status { status: 500, .. }), "{error}");
    assert!(error.class().is_transient(), "the core may start the blob over");
    assert_eq!(
        run.requests(),
        vec![
            (Method::POST, 202),
            (Method::PATCH, 500),
            (Method::GET, 204),
            (Method::PATCH, 500),
            (Method::GET, 204),
            (Method::PATCH, 500),
            (Method::DELETE, 204)
        ]
    );
    let b = backoffs(&policy, 7, 2);
    // PATCH at 10 fails at 20; GET at 20+b0, answered +10; PATCH; fails +10; GET +b1.
    let first = ms(20) + b[0];
    let second = first + ms(20) + b[1];
    assert_eq!(run.at(Method::GET), vec![first, second]);
    assert_eq!(run.registry.cancelled, 1);
}

#[test]
fn a_failure_that_is_not_worth_resuming_cancels_and_reports_it() {
    let verify = TransportError::Verify(VerifyError::TooLong { digest: digest(), expected: 200, seen: 201 });
    let source = TransportError::Connection { side: Side::Source, message: "source broke".into() };
    // (fault on PATCH #2, what the upload reports)
    type Expect = Box<dyn Fn(&TransportError) -> bool>;
    let cases: Vec<(Fault, Expect)> = vec![
        (
            Fault::Status(403, "DENIED"),
            Box::new(
                |e| matches!(e, TransportError::Status { status: 403, detail: Some(d), .. } if d.contains("DENIED")),
            ),
        ),
        (Fault::Status(401, "UNAUTHORIZED"), Box::new(|e| matches!(e, TransportError::Unauthorized { .. }))),
        (
            Fault::Status(416, "BLOB_UPLOAD_INVALID"),
            Box::new(|e| matches!(e, TransportError::Status { status: 416, .. })),
        ),
        (Fault::Transport(verify.clone()), Box::new(move |e| *e == verify)),
        (Fault::Transport(source.clone()), Box::new(move |e| *e == source)),
    ];
    for (fault, expected) in cases {
        let label = format!("{fault:?}");
        let run = Scenario::new(300).fault(RequestKind::Patch, 2, fault).run();
        let error = run.result.as_ref().unwrap_err();
        assert!(expected(error), "{label}: {error:?}");
        let requests = run.requests();
        assert_eq!(requests.len(), 4, "{label}: {requests:?}");
        assert_eq!(requests[3], (Method::DELETE, 204), "{label}");
        assert!(run.at(Method::GET).is_empty(), "{label}: no resume");
        assert!(!run.registry.committed);
    }
}

#[test]
fn a_blob_that_does_not_verify_is_never_committed() {
    let verify = TransportError::Verify(VerifyError::TooLong { digest: digest(), expected: 200, seen: 201 });
    let run = Scenario::new(200).verify_fails(verify.clone()).run();
    assert_eq!(run.result, Err(verify));
    assert_eq!(
        run.requests(),
        vec![(Method::POST, 202), (Method::PATCH, 202), (Method::PATCH, 202), (Method::DELETE, 204)]
    );
}

// --- commit -------------------------------------------------------------------------------

#[test]
fn a_failed_commit_is_retried_without_resending_held_bytes() {
    let scenario = Scenario::new(200).fault(RequestKind::Commit, 1, Fault::Status(502, "UNKNOWN"));
    let policy = scenario.policy;
    let run = scenario.run();
    assert_eq!(run.result, Ok(()));
    assert_eq!(
        run.requests(),
        vec![
            (Method::POST, 202),
            (Method::PATCH, 202),
            (Method::PATCH, 202),
            (Method::PUT, 502),
            (Method::GET, 204),
            (Method::PUT, 201)
        ]
    );
    // PUT at 30 fails at 40; GET after the first backoff; PUT once it answered.
    let get = ms(40) + backoffs(&policy, 7, 1)[0];
    assert_eq!(run.at(Method::GET), vec![get]);
    assert_eq!(run.at(Method::PUT), vec![ms(30), get + LATENCY]);
    assert_eq!(run.registry.verifies.len(), 1, "verified once");
}

#[test]
fn a_commit_whose_answer_was_lost_is_found_landed() {
    let run = Scenario::new(100).fault(RequestKind::Commit, 1, Fault::LostAnswer).run();
    assert_eq!(run.result, Ok(()));
    assert_eq!(
        run.requests(),
        vec![
            (Method::POST, 202),
            (Method::PATCH, 202),
            (Method::PUT, 0),
            (Method::GET, 404),
            (Method::HEAD, 200)
        ]
    );
}

#[test]
fn a_permanent_commit_failure_cancels() {
    let run = Scenario::new(100).fault(RequestKind::Commit, 1, Fault::Status(400, "DIGEST_INVALID")).run();
    let error = run.result.as_ref().unwrap_err();
    assert!(
        matches!(error, TransportError::Status { status: 400, detail: Some(d), .. } if d.contains("DIGEST_INVALID"))
    );
    assert_eq!(run.requests().last(), Some(&(Method::DELETE, 204)));
}

// --- the API ------------------------------------------------------------------------------

#[test]
fn misuse_is_an_error_not_a_hang() {
    let scenario = Scenario::new(100);
    let mut upload = scenario.upload();
    let reply = Reply::Verified;
    assert_eq!(upload.handle(reply, Instant::ZERO), Err(UploadMisuse::NothingAsked));
    let Output::Send(request) = upload.poll_output(Instant::ZERO) else { panic!("a POST first") };
    assert_eq!(request.kind, RequestKind::Open);
    assert_eq!(request.request.headers()["content-length"], "0");
    assert!(matches!(upload.poll_output(Instant::ZERO), Output::Busy));
    assert_eq!(upload.handle(Reply::Verified, Instant::ZERO), Err(UploadMisuse::WrongReply));
    let answer = Response::builder().status(StatusCode::ACCEPTED).header("location", "/u/1").body(Vec::new());
    upload.handle(Reply::Answer(answer.unwrap()), Instant::ZERO).unwrap();
    assert_eq!(upload.location(), Some("http://dst.test/u/1"));
    let Output::Send(patch) = upload.poll_output(Instant::ZERO) else { panic!("a PATCH next") };
    assert_eq!(patch.body, Body::Chunk { start: 0, end: 100 });
    assert_eq!(patch.request.headers()["content-range"], "0-99");
    assert_eq!(patch.request.headers()["content-length"], "100");
    assert!(!format!("{upload:?}").contains("SECRET"), "credentials never print");
}
