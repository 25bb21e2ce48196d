//! `NativeTransport::transfer` against real HTTP servers: both upload paths, resume,
//! verification, redirects and the mapping of failures.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferry_core::digest::VerifyError;
use ferry_core::retry::FailureClass;
use ferry_core::transport::{Clock as _, Side, Transport, TransportError};
use ferry_native::{NativeOptions, NativeTransport, TokioClock};
use http::Method;
use support::{sample, transfer, Config, PatchFault, Server};

const MIB: usize = 1024 * 1024;

fn chunked(threshold: u64, chunk: usize) -> NativeTransport {
    let options = NativeOptions::default().with_chunking(threshold, chunk);
    NativeTransport::with_options(options).unwrap()
}

async fn run(
    transport: &NativeTransport,
    t: ferry_core::transport::Transfer,
) -> (Result<u64, TransportError>, u64) {
    let progress = Arc::new(AtomicU64::new(0));
    let result = transport.transfer(t, progress.clone(), &TokioClock::new()).await.map(|r| r.bytes);
    (result, progress.load(Ordering::Relaxed))
}

fn assert_no_secrets(error: &TransportError) {
    let text = format!("{error} {error:?}");
    assert!(!text.contains("SECRET"), "an error leaks a secret: {text}");
}

#[tokio::test]
async fn monolithic_upload_streams_the_blob_in_one_put() {
    let source = Server::start(Config::default()).await;
    let destination = Server::start(Config::default()).await;
    let (digest, size) = source.add_blob(sample(5 * MIB + 7));
    let (result, progress) =
        run(&NativeTransport::new().unwrap(), transfer(&source, &destination, &digest, size)).await;

    assert_eq!(result, Ok(size));
    assert_eq!(progress, size);
    let state = destination.state();
    assert_eq!(state.committed, vec![(digest.to_string(), size)]);
    assert_eq!(state.received, size, "each byte went up once");
    drop(state);
    let puts = destination.requests(Method::PUT);
    assert_eq!(puts.len(), 1);
    assert_eq!(puts[0].content_length, Some(size), "a length-delimited stream, not chunked encoding");
    assert!(puts[0].target.contains(&format!("digest=sha256%3A{}", digest.hex())));
    assert!(destination.requests(Method::PATCH).is_empty());
    for request in destination.log() {
        assert_eq!(request.authorization.as_deref(), Some("Bearer destination-SECRET"), "{request:?}");
    }
}

#[tokio::test]
async fn an_open_session_is_used_and_a_relative_location_resolved() {
    let source = Server::start(Config::default()).await;
    let destination = Server::start(Config::default()).await;
    let (digest, size) = source.add_blob(sample(1000));
    // A session opened elsewhere (as after a mount answered 202), given relative.
    let post = reqwest::Client::new()
        .post(format!("{}/v2/dst/app/blobs/uploads/", destination.base))
        .send()
        .await
        .unwrap();
    let location = post.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with('/'));
    let mut t = transfer(&source, &destination, &digest, size);
    t.upload_location = Some(location);
    let (result, _) = run(&NativeTransport::new().unwrap(), t).await;
    assert_eq!(result, Ok(size));
    assert_eq!(destination.requests(Method::POST).len(), 1, "only the test's own POST");
    assert_eq!(destination.state().committed.len(), 1);
}

#[tokio::test]
async fn chunked_upload_above_the_threshold() {
    let source = Server::start(Config::default()).await;
    let destination = Server::start(Config::default()).await;
    let (digest, size) = source.add_blob(sample(3 * MIB + 123));
    let (result, _) =
        run(&chunked(MIB as u64, 256 * 1024), transfer(&source, &destination, &digest, size)).await;

    assert_eq!(result, Ok(size));
    let patches = destination.requests(Method::PATCH);
    assert_eq!(patches.len(), 13);
    let mut next = 0u64;
    for patch in &patches {
        let range = patch.content_range.as_deref().unwrap();
        let (start, end) = range.split_once('-').unwrap();
        let (start, end): (u64, u64) = (start.parse().unwrap(), end.parse().unwrap());
        assert_eq!(start, next, "contiguous ranges");
        assert_eq!(patch.content_length, Some(end - start + 1));
        assert!(end - start < 256 * 1024);
        next = end + 1;
    }
    assert_eq!(next, size);
    // Each PATCH went to the Location the previous one returned.
    assert!(patches[1].target.ends_with(&format!("_state={}", 256 * 1024)));
    let puts = destination.requests(Method::PUT);
    assert_eq!(puts.len(), 1);
    assert_eq!(puts[0].content_length, Some(0));
    assert_eq!(destination.state().committed, vec![(digest.to_string(), size)]);
    assert_eq!(destination.state().received, size);
}

#[tokio::test]
async fn a_registry_minimum_chunk_length_is_honoured() {
    let source = Server::start(Config::default()).await;
    let destination = Server::start(Config { chunk_min_length: Some(512 * 1024), ..Config::default() }).await;
    let (digest, size) = source.add_blob(sample(MIB));
    let (result, _) = run(&chunked(0, 64 * 1024), transfer(&source, &destination, &digest, size)).await;
    assert_eq!(result, Ok(size));
    assert_eq!(destination.requests(Method::PATCH).len(), 2);
}

#[tokio::test]
async fn a_refused_streamed_put_falls_back_to_chunks() {
    for status in [405, 413, 501] {
        let source = Server::start(Config::default()).await;
        let destination =
            Server::start(Config { refuse_monolithic: Some(status), ..Config::default() }).await;
        let (digest, size) = source.add_blob(sample(600 * 1024));
        let transport =
            NativeTransport::with_options(NativeOptions::default().with_chunking(MIB as u64, 256 * 1024))
                .unwrap();
        let (result, _) = run(&transport, transfer(&source, &destination, &digest, size)).await;
        assert_eq!(result, Ok(2 * size), "{status}: the source was read twice");
        let methods: Vec<_> = destination.log().iter().map(|l| (l.method.clone(), l.status)).collect();
        assert_eq!(
            methods,
            vec![
                (Method::POST, 202),
                (Method::PUT, status),
                (Method::DELETE, 204),
                (Method::POST, 202),
                (Method::PATCH, 202),
                (Method::PATCH, 202),
                (Method::PATCH, 202),
                (Method::PUT, 201)
            ],
            "{status}"
        );
        assert_eq!(destination.state().committed, vec![(digest.to_string(), size)]);
    }
}

/// A registry that loses a chunk: the upload asks where it stands, re-reads the source
/// from there with a Range request, and the registry ends with each byte exactly once.
#[tokio::test]
async fn a_failed_patch_resumes_from_the_registry_offset() {
    let source = Server::start(Config { ranges: true, ..Config::default() }).await;
    let faults = BTreeMap::from([(3, PatchFault::Status(500))]);
    let destination = Server::start(Config { patch_faults: faults, ..Config::default() }).await;
    let (digest, size) = source.add_blob(sample(MIB + 5));
    let (result, progress) =
        run(&chunked(0, 256 * 1024), transfer(&source, &destination, &digest, size)).await;

    // At least the lost chunk was read twice (a piece beyond it may have been read too).
    let bytes = result.unwrap();
    assert!(bytes >= size + 256 * 1024, "{bytes}");
    assert_eq!(progress, bytes);
    let state = destination.state();
    assert_eq!(state.committed, vec![(digest.to_string(), size)]);
    assert_eq!(state.kept, size, "the registry kept each byte once");
    drop(state);
    let gets = source.requests(Method::GET);
    assert_eq!(gets.len(), 2);
    assert_eq!(gets[1].range.as_deref(), Some("bytes=524288-"));
    assert_eq!(gets[1].status, 206);
    let status_checks: Vec<_> =
        destination.requests(Method::GET).into_iter().filter(|l| l.target.contains("/uploads/")).collect();
    assert_eq!(status_checks.len(), 1);
}

/// The registry kept half of the failed chunk: the bytes it holds are re-hashed from the
/// source, not re-sent; a source without Range support is skipped through locally.
#[tokio::test]
async fn a_partly_kept_chunk_resumes_mid_chunk_without_range_support() {
    let source = Server::start(Config { ranges: false, ..Config::default() }).await;
    let faults = BTreeMap::from([(2, PatchFault::Partial(503))]);
    let destination = Server::start(Config { patch_faults: faults, ..Config::default() }).await;
    let (digest, size) = source.add_blob(sample(MIB));
    let (result, _) = run(&chunked(0, 256 * 1024), transfer(&source, &destination, &digest, size)).await;

    // Without Range the source was read again from the start.
    assert!(result.unwrap() >= size + 512 * 1024);
    assert_eq!(destination.state().committed, vec![(digest.to_string(), size)]);
    assert_eq!(destination.state().kept, size);
    let patches = destination.requests(Method::PATCH);
    assert_eq!(
        patches[2].content_range.as_deref(),
        Some("393216-655359"),
        "resumed where the registry stood"
    );
    assert_eq!(source.requests(Method::GET)[1].status, 200);
}

#[tokio::test]
async fn resume_gives_up_with_a_transient_error() {
    let source = Server::start(Config { ranges: true, ..Config::default() }).await;
    let faults = (1..=10).map(|n| (n, PatchFault::Status(500))).collect();
    let destination = Server::start(Config { patch_faults: faults, ..Config::default() }).await;
    let (digest, size) = source.add_blob(sample(300 * 1024));
    let (result, _) = run(&chunked(0, 256 * 1024), transfer(&source, &destination, &digest, size)).await;

    let error = result.unwrap_err();
    assert!(matches!(error, TransportError::Status { side: Side::Destination, status: 500, .. }), "{error}");
    assert!(error.class().is_transient());
    assert_no_secrets(&error);
    assert_eq!(destination.requests(Method::PATCH).len(), 4, "the first try and three resumes");
    assert_eq!(destination.state().cancelled, 1, "the session was given back");
    assert!(destination.state().committed.is_empty());
}

#[tokio::test]
async fn a_corrupt_source_never_commits() {
    for (streamed, transport) in [(true, NativeTransport::new().unwrap()), (false, chunked(0, 256 * 1024))] {
        let source = Server::start(Config { corrupt: true, ..Config::default() }).await;
        let destination = Server::start(Config::default()).await;
        let (digest, size) = source.add_blob(sample(MIB));
        let (result, _) = run(&transport, transfer(&source, &destination, &digest, size)).await;

        let error = result.unwrap_err();
        assert!(matches!(error, TransportError::Verify(VerifyError::Mismatch { .. })), "{error}");
        assert_eq!(error.class(), FailureClass::Permanent);
        let state = destination.state();
        assert!(state.committed.is_empty());
        if streamed {
            assert!(state.received < size, "the last piece was withheld: {}", state.received);
            assert_eq!(state.aborted_puts, 1, "the streamed PUT broke off");
        }
        assert_eq!(state.cancelled, 1);
        drop(state);
        // Chunked: no closing PUT at all. Monolithic: the PUT was cut off before its end.
        for put in destination.requests(Method::PUT) {
            assert_ne!(put.status, 201);
        }
    }
}

#[tokio::test]
async fn a_source_longer_than_the_descriptor_is_refused() {
    for transport in [NativeTransport::new().unwrap(), chunked(0, 256 * 1024)] {
        let source = Server::start(Config { extra_bytes: 10, ..Config::default() }).await;
        let destination = Server::start(Config::default()).await;
        let (digest, size) = source.add_blob(sample(300 * 1024));
        let (result, _) = run(&transport, transfer(&source, &destination, &digest, size)).await;
        let error = result.unwrap_err();
        // Its Content-Length gives it away before a byte is read.
        assert!(matches!(error, TransportError::Verify(VerifyError::WrongLength { .. })), "{error}");
        assert_eq!(error.class(), FailureClass::Permanent);
        assert!(destination.state().committed.is_empty());
    }
}

#[tokio::test]
async fn a_body_cut_short_is_transient() {
    for transport in [NativeTransport::new().unwrap(), chunked(0, 256 * 1024)] {
        let source = Server::start(Config { cut_after: Some(700 * 1024), ..Config::default() }).await;
        let destination = Server::start(Config::default()).await;
        let (digest, size) = source.add_blob(sample(MIB));
        let (result, _) = run(&transport, transfer(&source, &destination, &digest, size)).await;
        let error = result.unwrap_err();
        assert!(
            matches!(
                error,
                TransportError::Connection { side: Side::Source, .. }
                    | TransportError::Verify(VerifyError::TooShort { .. })
            ),
            "{error}"
        );
        assert!(error.class().is_transient(), "{error}");
        assert!(error.to_string().contains("127.0.0.1"), "names the host: {error}");
        assert_no_secrets(&error);
        assert!(destination.state().committed.is_empty());
    }
}

#[tokio::test]
async fn source_statuses_are_mapped() {
    let destination = Server::start(Config::default()).await;

    let source = Server::start(Config::default()).await;
    let digest = ferry_core::digest::Digest::sha256(b"absent");
    let (result, _) =
        run(&NativeTransport::new().unwrap(), transfer(&source, &destination, &digest, 6)).await;
    let error = result.unwrap_err();
    match &error {
        TransportError::Status {
            side: Side::Source,
            status: 404,
            retry_after: None,
            detail: Some(detail),
        } => {
            assert!(detail.contains("BLOB_UNKNOWN"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(error.class(), FailureClass::Permanent);

    let source = Server::start(Config { blob_status: Some((503, Some("7"))), ..Config::default() }).await;
    let (result, _) =
        run(&NativeTransport::new().unwrap(), transfer(&source, &destination, &digest, 6)).await;
    let error = result.unwrap_err();
    assert!(
        matches!(error, TransportError::Status { side: Side::Source, status: 503, retry_after: Some(d), .. } if d == Duration::from_secs(7)),
        "{error:?}"
    );
    assert_eq!(error.class(), FailureClass::Transient { retry_after: Some(Duration::from_secs(7)) });
    assert_no_secrets(&error);
    assert!(destination.log().is_empty(), "no session is opened for a source that fails");
}

#[tokio::test]
async fn destination_statuses_are_mapped() {
    let source = Server::start(Config::default()).await;
    let destination = Server::start(Config { post_status: Some(403), ..Config::default() }).await;
    let (digest, size) = source.add_blob(sample(10));
    let (result, _) =
        run(&NativeTransport::new().unwrap(), transfer(&source, &destination, &digest, size)).await;
    let error = result.unwrap_err();
    match &error {
        TransportError::Status { side: Side::Destination, status: 403, detail: Some(detail), .. } => {
            assert!(detail.contains("DENIED"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_destination_is_a_connection_error_naming_the_host() {
    let source = Server::start(Config::default()).await;
    let (digest, size) = source.add_blob(sample(10));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut t = transfer(&source, &source, &digest, size);
    t.upload_start = format!("http://127.0.0.1:{port}/v2/dst/app/blobs/uploads/");
    let (result, _) = run(&NativeTransport::new().unwrap(), t).await;
    let error = result.unwrap_err();
    assert!(matches!(error, TransportError::Connection { side: Side::Destination, .. }), "{error}");
    assert!(error.to_string().contains(&format!("127.0.0.1:{port}")), "{error}");
    assert_no_secrets(&error);
}

#[tokio::test]
async fn a_redirect_to_another_host_drops_authorization() {
    let storage = Server::start(Config::default()).await;
    let source = Server::start(Config { redirect_to: Some(storage.base.clone()), ..Config::default() }).await;
    let destination = Server::start(Config::default()).await;
    let data = sample(100 * 1024);
    let (digest, size) = storage.add_blob(data);

    let (result, _) =
        run(&NativeTransport::new().unwrap(), transfer(&source, &destination, &digest, size)).await;
    assert_eq!(result, Ok(size));
    assert_eq!(source.log()[0].authorization.as_deref(), Some("Bearer source-SECRET"));
    let fetched = storage.log();
    assert_eq!(fetched.len(), 1);
    assert!(fetched[0].target.starts_with("/objects/"));
    assert_eq!(fetched[0].authorization, None, "the token must not reach another host");
    assert_eq!(destination.state().committed.len(), 1);
}

#[tokio::test]
async fn a_redirect_on_the_same_host_keeps_authorization() {
    let source = Server::start(Config { self_redirect: true, ..Config::default() }).await;
    let destination = Server::start(Config::default()).await;
    let (digest, size) = source.add_blob(sample(1000));
    let (result, _) =
        run(&NativeTransport::new().unwrap(), transfer(&source, &destination, &digest, size)).await;
    assert_eq!(result, Ok(size));
    let log = source.log();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].status, 302);
    assert!(log[1].target.starts_with("/objects/"));
    assert_eq!(log[1].authorization.as_deref(), Some("Bearer source-SECRET"));
}

#[tokio::test]
async fn a_stalled_source_times_out_as_the_source() {
    for threshold in [u64::MAX, 0] {
        let source = Server::start(Config { stall_after: Some(128 * 1024), ..Config::default() }).await;
        let destination = Server::start(Config::default()).await;
        let (digest, size) = source.add_blob(sample(MIB));
        let options = NativeOptions::default()
            .with_read_timeout(Duration::from_millis(300))
            .with_chunking(threshold, 256 * 1024);
        let (result, progress) = run(
            &NativeTransport::with_options(options).unwrap(),
            transfer(&source, &destination, &digest, size),
        )
        .await;
        let error = result.unwrap_err();
        assert!(matches!(error, TransportError::Timeout { side: Side::Source, .. }), "{threshold}: {error}");
        assert!(error.class().is_transient());
        assert_eq!(progress, 128 * 1024);
        assert!(destination.state().committed.is_empty());
        assert_eq!(destination.state().cancelled, 1);
    }
}

/// The clock a driver lends to `transfer`, recording the waits the upload asks for.
struct Recording {
    inner: TokioClock,
    waits: std::sync::Mutex<Vec<ferry_core::time::Instant>>,
}

impl ferry_core::transport::Clock for Recording {
    fn now(&self) -> ferry_core::time::Instant {
        self.inner.now()
    }

    fn sleep_until(&self, deadline: ferry_core::time::Instant) -> ferry_core::transport::BoxFuture<'_, ()> {
        self.waits.lock().unwrap().push(deadline);
        self.inner.sleep_until(deadline)
    }
}

/// A resume's pause is the core's, spent on the driver's clock: no timer of the transport's own.
#[tokio::test]
async fn a_resume_waits_on_the_driver_clock() {
    let source = Server::start(Config { ranges: true, ..Config::default() }).await;
    let faults = BTreeMap::from([(2, PatchFault::Status(503))]);
    let destination = Server::start(Config { patch_faults: faults, ..Config::default() }).await;
    let (digest, size) = source.add_blob(sample(600 * 1024));
    let clock = Recording { inner: TokioClock::new(), waits: Default::default() };
    let transport = chunked(0, 256 * 1024);
    let progress = Arc::new(AtomicU64::new(0));
    let result = transport.transfer(transfer(&source, &destination, &digest, size), progress, &clock).await;
    assert!(result.is_ok(), "{result:?}");
    let waits = clock.waits.lock().unwrap().clone();
    assert_eq!(waits.len(), 1, "one pause before asking where the upload stands: {waits:?}");
    assert!(waits[0] <= clock.now());
    assert_eq!(destination.state().committed, vec![(digest.to_string(), size)]);
}
