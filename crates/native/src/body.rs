//! Upload bodies: the verifying stream of a monolithic `PUT`, and the progress upload
//! bodies report for the upload watchdog (a chunk's body is `feed::ChunkBody`).

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use ferry_core::digest::Verifier;
use ferry_core::transport::TransportError;
use futures_util::stream::{Stream, StreamExt as _};

use crate::errors::{from_reqwest, timeout};
use crate::source::SourceStream;

/// When an upload request last made progress, for the upload's watchdog.
pub(crate) struct Activity {
    origin: tokio::time::Instant,
    /// Milliseconds after `origin` of the last piece the connection took.
    last: AtomicU64,
    /// The whole body has been handed over; from then on the registry is committing.
    pub(crate) done: AtomicBool,
}

impl Activity {
    pub(crate) fn new() -> Self {
        Activity {
            origin: tokio::time::Instant::now(),
            last: AtomicU64::new(0),
            done: AtomicBool::new(false),
        }
    }

    pub(crate) fn touch(&self) {
        self.last.store(self.origin.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    pub(crate) fn finish(&self) {
        self.touch();
        self.done.store(true, Ordering::Relaxed);
    }

    pub(crate) fn deadline(&self, idle: Duration, commit: Duration) -> tokio::time::Instant {
        let last = self.origin + Duration::from_millis(self.last.load(Ordering::Relaxed));
        last + if self.done.load(Ordering::Relaxed) { commit } else { idle }
    }
}

/// Waits for the answer to a request whose body is still going up: the registry may be
/// silent for `idle` while it accepts none of the body, and for `after_body` once it has
/// all of it (a closing `PUT` may take minutes while the registry moves the blob; a
/// `PATCH` answers at once). An I/O watchdog, not a protocol wait: those are the core's.
pub(crate) async fn watch(
    answer: impl Future<Output = reqwest::Result<reqwest::Response>>,
    activity: &Activity,
    host: &str,
    idle: Duration,
    after_body: Duration,
) -> Result<reqwest::Response, TransportError> {
    let side = ferry_core::transport::Side::Destination;
    let mut answer = pin!(answer);
    loop {
        let deadline = activity.deadline(idle, after_body);
        match tokio::time::timeout_at(deadline, answer.as_mut()).await {
            Ok(answer) => return answer.map_err(|e| from_reqwest(side, host, e)),
            Err(_) if activity.deadline(idle, after_body) > deadline => continue,
            Err(_) => {
                let (what, after) = if activity.done.load(Ordering::Relaxed) {
                    ("did not confirm the upload", after_body)
                } else {
                    ("accepted none of the upload", idle)
                };
                return Err(timeout(side, host, what, after));
            }
        }
    }
}

/// The body of a monolithic upload: the source's chunks, each fed to the verifier first.
///
/// It holds one chunk back. When the source ends, the held chunk is released only if the
/// blob verified; otherwise the body fails instead, so the registry receives fewer bytes
/// than `Content-Length` announced and cannot commit.
pub(crate) struct VerifyingBody {
    source: SourceStream,
    verifier: Option<Verifier>,
    held: Option<Bytes>,
    /// Why the body failed, for the transfer to report.
    failure: Arc<Mutex<Option<TransportError>>>,
    activity: Arc<Activity>,
    finished: bool,
}

impl VerifyingBody {
    /// `failure` receives the reason when the body has to fail.
    pub(crate) fn new(
        source: SourceStream,
        verifier: Verifier,
        failure: Arc<Mutex<Option<TransportError>>>,
        activity: Arc<Activity>,
    ) -> Self {
        VerifyingBody { source, verifier: Some(verifier), held: None, failure, activity, finished: false }
    }

    fn fail(&mut self, error: TransportError) -> Poll<Option<Result<Bytes, Aborted>>> {
        self.finished = true;
        self.held = None;
        if let Ok(mut slot) = self.failure.lock() {
            *slot = Some(error);
        }
        Poll::Ready(Some(Err(Aborted)))
    }
}

impl Stream for VerifyingBody {
    type Item = Result<Bytes, Aborted>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.finished {
            return Poll::Ready(this.held.take().map(Ok));
        }
        this.activity.touch();
        loop {
            match this.source.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(error))) => return this.fail(error),
                Poll::Ready(Some(Ok(chunk))) => {
                    let Some(verifier) = this.verifier.as_mut() else {
                        return this.fail(TransportError::Cancelled);
                    };
                    if let Err(error) = verifier.update(&chunk) {
                        return this.fail(TransportError::Verify(error));
                    }
                    if let Some(previous) = this.held.replace(chunk) {
                        return Poll::Ready(Some(Ok(previous)));
                    }
                }
                Poll::Ready(None) => {
                    let verified = this.verifier.take().map(Verifier::finish);
                    match verified {
                        Some(Ok(())) => {
                            this.finished = true;
                            this.activity.finish();
                            return Poll::Ready(this.held.take().map(Ok));
                        }
                        Some(Err(error)) => return this.fail(TransportError::Verify(error)),
                        None => return this.fail(TransportError::Cancelled),
                    }
                }
            }
        }
    }
}

/// The error an upload body ends with when it must not complete.
#[derive(Debug)]
pub(crate) struct Aborted;

impl std::fmt::Display for Aborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("upload aborted: the source's content failed or did not verify")
    }
}

impl std::error::Error for Aborted {}
