//! The destination side of a transfer: the core's [`Upload`] machine, executed.
//!
//! The machine decides every request of the upload (open, the streamed monolithic `PUT`,
//! each `PATCH` and its byte range, the status `GET` of a resume, the closing `PUT`, the
//! `DELETE` of a session given up) and every wait, which is spent on the driver's clock.
//! This file only moves bytes: it streams the asked range of the source into each body,
//! through the core's [`Verifier`], and reports each answer back.
//!
//! The closing `PUT` is asked for only after this side reported the whole blob verified;
//! a monolithic body withholds its last piece until the whole blob has verified. Either
//! way the bytes stream from the source's answer into the upload's body as the connection
//! takes them: memory does not grow with the blob or with the chunk size. A resume
//! re-reads the source from the last offset the registry confirmed at or below where it
//! stands (a `Range` request), hashing again the bytes the registry already holds.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use ferry_core::digest::Verifier;
use ferry_core::time::WallClock;
use ferry_core::transport::{Clock, ProgressCounter, Side, Transfer, TransportError};
use ferry_core::upload::{
    Body, Output, Reply, RequestKind, Upload, UploadConfig, UploadMisuse, UploadRequest,
};
use reqwest::Url;

use crate::body::{self, Activity, VerifyingBody};
use crate::client::{parse_url, Client};
use crate::clock::wall_now;
use crate::errors::{host_of, into_http};
use crate::feed::{ChunkBody, Cursor, Feed};
use crate::options::{CANCEL_WAIT, MAX_HONOURED_MIN_CHUNK};
use crate::source;
use crate::tee::Tees;
use crate::transport::UploadJournal;

const DEST: Side = Side::Destination;

/// Moves one blob: the source `GET` first (a blob that cannot be read leaves no session
/// behind), then whatever the upload machine asks for.
pub(crate) async fn run(
    client: &Client,
    tees: &Arc<Tees>,
    journal: Option<&dyn UploadJournal>,
    transfer: &Transfer,
    progress: &ProgressCounter,
    clock: &dyn Clock,
) -> Result<(), TransportError> {
    let options = client.options();
    let config = UploadConfig {
        chunk_size: options.chunk_size as u64,
        monolithic_below: options.chunk_threshold,
        max_min_chunk: MAX_HONOURED_MIN_CHUNK,
    };
    let source = match tees.join(client, transfer) {
        Some(pieces) => source::shared(pieces, transfer, progress).await?,
        None => source::open(client, transfer, 0, progress).await?,
    };
    let fresh = Verifier::new(transfer.digest.clone(), transfer.size);
    let cursor = Cursor { live: fresh.clone(), read: 0, sent: 0, carry: None };
    let mut mover = Mover {
        client,
        transfer,
        progress,
        feed: Some(Feed { source, cursor }),
        checkpoints: BTreeMap::from([(0, fresh)]),
    };
    let mut upload = Upload::new(transfer, config, WallClock::new(clock.now(), wall_now()));
    let mut noted: Option<String> = None;
    loop {
        if let (Some(journal), Some(location)) = (journal, upload.location()) {
            if noted.as_deref() != Some(location) {
                journal.session(transfer, location);
                noted = Some(location.to_owned());
            }
        }
        let reply = match upload.poll_output(clock.now()) {
            Output::Send(request) => mover.send(request).await,
            Output::Verify => match mover.verify().await {
                Ok(()) => Reply::Verified,
                Err(error) => Reply::Failed(error),
            },
            Output::Wait(until) => {
                // A shared read must not wait for this upload's pause: leave it, and
                // re-read the source alone when the upload goes on.
                if mover.feed.as_ref().is_some_and(|f| f.source.is_shared()) {
                    mover.feed = None;
                }
                tracing::info!(
                    digest = %transfer.digest,
                    confirmed = upload.confirmed(),
                    wait_ms = until.saturating_since(clock.now()).as_millis() as u64,
                    "an upload step failed; asking the registry where it stands after a pause"
                );
                clock.sleep_until(until).await;
                continue;
            }
            Output::Done(result) => {
                // A session given up may still be at the registry (its cancel can fail
                // too): the journal keeps it, and the next run asks.
                if let (Some(journal), Ok(())) = (journal, &result) {
                    journal.committed(transfer);
                }
                return result;
            }
            Output::Busy => return Err(UploadMisuse::PolledWhileBusy.into()),
        };
        upload.handle(reply, clock.now())?;
    }
}

/// Executes the machine's requests for one transfer.
struct Mover<'a> {
    client: &'a Client,
    transfer: &'a Transfer,
    progress: &'a ProgressCounter,
    /// The source and where it stands; `None` once a monolithic body consumed it.
    feed: Option<Feed>,
    /// The verifier's state at each offset a chunk started from: a resume re-reads the
    /// source from one of them, so every byte is hashed exactly once, in order.
    checkpoints: BTreeMap<u64, Verifier>,
}

impl Mover<'_> {
    async fn send(&mut self, request: UploadRequest) -> Reply {
        let result = match request.body {
            Body::Empty => bodiless(self.client, request).await,
            Body::Chunk { start, end } => self.patch(request, start, end).await,
            Body::Whole => self.monolithic(request).await,
        };
        match result {
            Ok(answer) => Reply::Answer(answer),
            Err(error) => Reply::Failed(error),
        }
    }
}

/// A request without a body: open, status, commit, check, cancel.
async fn bodiless(
    client: &Client,
    request: UploadRequest,
) -> Result<http::Response<Vec<u8>>, TransportError> {
    let options = client.options();
    let wait = match request.kind {
        RequestKind::Commit => options.commit_timeout,
        RequestKind::Cancel => options.read_timeout.min(CANCEL_WAIT),
        _ => options.read_timeout,
    };
    let (parts, ()) = request.request.into_parts();
    let url = parse_url(DEST, &parts.uri.to_string())?;
    // An empty POST or PUT still says `Content-Length: 0`.
    let body = matches!(request.kind, RequestKind::Open | RequestKind::Commit).then(Bytes::new);
    let (answer, _) = client.fetch(DEST, parts.method, url, parts.headers, body, wait).await?;
    Ok(into_http(answer).await)
}

impl Mover<'_> {
    /// The streamed `PUT` of the whole blob. The body's own failure (the source broke, or
    /// its bytes did not verify) explains whatever the registry then said.
    async fn monolithic(
        &mut self,
        request: UploadRequest,
    ) -> Result<http::Response<Vec<u8>>, TransportError> {
        let source = match self.feed.take() {
            Some(Feed { source, cursor }) if cursor.read == 0 && cursor.carry.is_none() => source,
            _ => source::open(self.client, self.transfer, 0, self.progress).await?,
        };
        let verifier = Verifier::new(self.transfer.digest.clone(), self.transfer.size);
        let failure = Arc::new(Mutex::new(None));
        let activity = Arc::new(Activity::new());
        let body = VerifyingBody::new(source, verifier, failure.clone(), activity.clone());
        let (_, answer) = stream(self.client, request, reqwest::Body::wrap_stream(body), &activity).await?;
        if let Some(error) = failure.lock().unwrap_or_else(PoisonError::into_inner).take() {
            return Err(error);
        }
        Ok(into_http(answer?).await)
    }

    /// One chunk: bytes `start..end` of the blob, streamed from the source as the
    /// connection asks for them. The feed is lent to the body while the request runs.
    async fn patch(
        &mut self,
        request: UploadRequest,
        start: u64,
        end: u64,
    ) -> Result<http::Response<Vec<u8>>, TransportError> {
        let feed = self.position(start).await?;
        let lent = Arc::new(Mutex::new(Some(feed)));
        let failure = Arc::new(Mutex::new(None));
        let activity = Arc::new(Activity::new());
        let body = ChunkBody {
            feed: lent.clone(),
            left: end - start,
            failure: failure.clone(),
            activity: activity.clone(),
        };
        let sent = stream(self.client, request, reqwest::Body::wrap_stream(body), &activity).await;
        // Taken back, a body the connection still holds can only fail from now on.
        let feed = lent.lock().unwrap_or_else(PoisonError::into_inner).take();
        let read = feed.as_ref().map_or(0, |f| f.cursor.read);
        self.feed = feed;
        if let Some(error) = failure.lock().unwrap_or_else(PoisonError::into_inner).take() {
            return Err(error);
        }
        let (url, answer) = sent?;
        let answer = answer?;
        if answer.status().is_success() && read < end {
            let message = format!("{} accepted a chunk before receiving all of it", host_of(&url));
            return Err(TransportError::Connection { side: DEST, message });
        }
        Ok(into_http(answer).await)
    }

    /// The feed, placed to send from `start`: as it is when it has read exactly that far,
    /// else re-opened at the last checkpoint at or below `start` (the bytes in between are
    /// hashed again, not sent).
    async fn position(&mut self, start: u64) -> Result<Feed, TransportError> {
        if let Some(mut feed) = self.feed.take() {
            if feed.cursor.read <= start && (feed.cursor.read == start || feed.cursor.carry.is_none()) {
                feed.cursor.sent = start;
                if feed.cursor.read == start {
                    self.checkpoints.insert(start, feed.cursor.live.clone());
                }
                return Ok(feed);
            }
        }
        let (&at, verifier) =
            self.checkpoints.range(..=start).next_back().expect("offset 0 is always a checkpoint");
        tracing::info!(digest = %self.transfer.digest, registry_has = start, rereading_from = at, "resuming an upload");
        let source = source::open(self.client, self.transfer, at, self.progress).await?;
        Ok(Feed { source, cursor: Cursor { live: verifier.clone(), read: at, sent: start, carry: None } })
    }

    /// Reads the rest of the source and checks the whole blob.
    async fn verify(&mut self) -> Result<(), TransportError> {
        let mut feed = match self.feed.take() {
            Some(feed) => feed,
            None => self.position(0).await?,
        };
        let verified = feed.verify().await;
        self.feed = Some(feed);
        verified
    }
}

/// Sends a request whose body streams, watched for a registry that stops taking it.
async fn stream(
    client: &Client,
    request: UploadRequest,
    body: reqwest::Body,
    activity: &Activity,
) -> Result<(Url, Result<reqwest::Response, TransportError>), TransportError> {
    let options = client.options();
    let after_body = match request.kind {
        RequestKind::Monolithic => options.commit_timeout,
        _ => options.read_timeout,
    };
    let (parts, ()) = request.request.into_parts();
    let url = parse_url(DEST, &parts.uri.to_string())?;
    crate::allow::check_url(options.allowlist.as_ref(), DEST, &url)?;
    let url = client.decide_scheme(url).await;
    let sending =
        client.client_for(&url).request(parts.method, url.clone()).headers(parts.headers).body(body);
    // A little longer than the source's own silence limit, so that a stalled source
    // is reported as the source's fault.
    let idle = options.read_timeout + options.read_timeout / 4;
    let answer = body::watch(sending.send(), activity, &host_of(&url), idle, after_body).await;
    Ok((url, answer))
}
