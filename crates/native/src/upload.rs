//! The destination side of a transfer: the upload session, the streamed monolithic `PUT`,
//! and the chunked `PATCH` upload with resume.
//!
//! OCI Distribution Spec v1.1, "Pushing blobs": a session opens with `POST
//! /v2/<name>/blobs/uploads/` (`202 Accepted` and a `Location`), takes chunks with `PATCH
//! <location>` and `Content-Range: <start>-<end>` (each answered `202` with the next
//! `Location`), tells where it stands on `GET <location>` (`204` with `Range: 0-<end>`),
//! and closes with `PUT <location>?digest=<digest>`, answered `201 Created`.
//!
//! Whatever the path, the source's bytes go through the core's [`Verifier`] before the
//! registry may commit them: the monolithic body withholds its last chunk until the whole
//! blob has verified, and the chunked upload sends its closing `PUT` only afterwards.
//! Either way the bytes stream from the source's answer into the upload's body as the
//! connection takes them: memory does not grow with the blob or with the chunk size.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use ferry_core::api::{upload_complete, upload_offset};
use ferry_core::digest::Verifier;
use ferry_core::transport::{ProgressCounter, Side, Transfer, TransportError};
use futures_util::stream::{Stream, StreamExt as _};
use http::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use reqwest::Url;

use crate::body::{Aborted, Activity, VerifyingBody};
use crate::errors::{from_reqwest, host_of, ErrorAnswer};
use crate::options::MAX_HONOURED_MIN_CHUNK;
use crate::source::{self, SourceStream};
use crate::transport::{expect_success, parse_url, NativeTransport};

const DEST: Side = Side::Destination;
/// The longest pause between two resume attempts.
const MAX_RESUME_PAUSE: Duration = Duration::from_secs(10);
/// Cancelling a session is a courtesy; it does not get to hold up the error it follows.
const CANCEL_WAIT: Duration = Duration::from_secs(10);
/// spec v1.1: a registry may require a minimum chunk size.
const CHUNK_MIN_LENGTH: &str = "oci-chunk-min-length";

/// Moves one blob: source `GET`, then a monolithic or chunked upload.
pub(crate) async fn run(
    transport: &NativeTransport,
    transfer: &Transfer,
    progress: &ProgressCounter,
) -> Result<(), TransportError> {
    let start = transport.decide_scheme(parse_url(DEST, &transfer.upload_start)?).await;
    let uploader = Uploader { transport, transfer, progress, start };
    // The source first: a blob that cannot be read leaves no session behind.
    let source = source::open(transport, transfer, 0, progress).await?;
    let session = match &transfer.upload_location {
        Some(location) => {
            let location = transport.decide_scheme(uploader.resolve(&uploader.start, location)?).await;
            Session { location, min_chunk: None }
        }
        None => uploader.open_session().await?,
    };
    if transfer.size >= transport.options().chunk_threshold {
        return uploader.chunked(source, session).await;
    }
    match uploader.monolithic(source, &session).await {
        Ok(()) => Ok(()),
        Err(Monolithic::Failed(error)) => Err(error),
        Err(Monolithic::Refused(status)) => {
            tracing::info!(
                host = %host_of(&session.location),
                status,
                digest = %transfer.digest,
                "the registry refused a streamed upload; uploading in chunks"
            );
            uploader.cancel(&session.location).await;
            let source = source::open(transport, transfer, 0, progress).await?;
            let session = uploader.open_session().await?;
            uploader.chunked(source, session).await
        }
    }
}

struct Uploader<'a> {
    transport: &'a NativeTransport,
    transfer: &'a Transfer,
    progress: &'a ProgressCounter,
    start: Url,
}

struct Session {
    location: Url,
    /// The registry's `OCI-Chunk-Min-Length`.
    min_chunk: Option<u64>,
}

/// Why a monolithic upload did not complete.
enum Monolithic {
    /// The registry will not take the blob in one request (`413`, `405`, `501`, or `400
    /// SIZE_INVALID`): worth a chunked upload.
    Refused(u16),
    Failed(TransportError),
}

impl Uploader<'_> {
    fn headers(&self) -> HeaderMap {
        self.transfer.upload_headers.clone()
    }

    fn resolve(&self, base: &Url, location: &str) -> Result<Url, TransportError> {
        base.join(location).map_err(|e| TransportError::Status {
            side: DEST,
            status: 202,
            retry_after: None,
            detail: Some(format!("{} gave an upload Location that is not a URL: {e}", host_of(base))),
        })
    }

    /// The next `Location` of an upload answer, resolved against the request's URL.
    fn next_location(&self, answer: &reqwest::Response, current: &Url) -> Result<Url, TransportError> {
        match answer.headers().get(LOCATION).and_then(|v| v.to_str().ok()) {
            Some(location) => self.resolve(current, location),
            None => Ok(current.clone()),
        }
    }

    /// end-4a: `POST /v2/<name>/blobs/uploads/` -> `202 Accepted` with a `Location`.
    async fn open_session(&self) -> Result<Session, TransportError> {
        let wait = self.transport.options().read_timeout;
        let (answer, url) = self
            .transport
            .fetch(DEST, Method::POST, self.start.clone(), self.headers(), Some(Bytes::new()), wait)
            .await?;
        if answer.status() != StatusCode::ACCEPTED {
            return Err(ErrorAnswer::read(answer).await.into_error(DEST, &host_of(&url)));
        }
        let Some(location) = answer.headers().get(LOCATION).and_then(|v| v.to_str().ok()) else {
            return Err(TransportError::Status {
                side: DEST,
                status: 202,
                retry_after: None,
                detail: Some(format!("{} opened an upload without a Location header", host_of(&url))),
            });
        };
        let location = self.resolve(&url, location)?;
        let min_chunk =
            answer.headers().get(CHUNK_MIN_LENGTH).and_then(|v| v.to_str().ok()?.trim().parse().ok());
        Ok(Session { location, min_chunk })
    }

    /// A streamed `PUT <location>?digest=` of the whole blob.
    async fn monolithic(&self, source: SourceStream, session: &Session) -> Result<(), Monolithic> {
        let url = parse_url(DEST, &upload_complete(session.location.as_str(), &self.transfer.digest))
            .map_err(Monolithic::Failed)?;
        let failure = Arc::new(Mutex::new(None));
        let activity = Arc::new(Activity::new());
        let verifier = Verifier::new(self.transfer.digest.clone(), self.transfer.size);
        let body = VerifyingBody::new(source, verifier, failure.clone(), activity.clone());
        let mut headers = self.headers();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        headers.insert(CONTENT_LENGTH, self.transfer.size.into());
        let request = self
            .transport
            .client_for(&url)
            .put(url.clone())
            .headers(headers)
            .body(reqwest::Body::wrap_stream(body));
        let commit = self.transport.options().commit_timeout;
        let answer = self.await_upload(request.send(), &activity, &url, commit).await;
        // The body's own failure (bad content, broken source) explains whatever the
        // destination then said about the aborted request.
        let failed = failure.lock().map(|mut f| f.take()).unwrap_or_default();
        if let Some(error) = failed {
            self.cancel(&session.location).await;
            return Err(Monolithic::Failed(error));
        }
        let answer = answer.map_err(Monolithic::Failed)?;
        if answer.status().is_success() {
            return Ok(());
        }
        let error = ErrorAnswer::read(answer).await;
        match error.status {
            405 | 413 | 501 => Err(Monolithic::Refused(error.status)),
            400 if error.has_code("SIZE_INVALID") => Err(Monolithic::Refused(400)),
            _ => Err(Monolithic::Failed(error.into_error(DEST, &host_of(&url)))),
        }
    }

    /// `PATCH`es the blob in chunks, resuming from where the registry stands when a chunk
    /// fails, then closes the session once the whole blob has verified.
    async fn chunked(&self, source: SourceStream, session: Session) -> Result<(), TransportError> {
        let options = self.transport.options();
        let chunk_size = match session.min_chunk {
            Some(min) if min <= MAX_HONOURED_MIN_CHUNK => (options.chunk_size as u64).max(min),
            _ => options.chunk_size as u64,
        };
        let mut location = session.location;
        let fresh = Verifier::new(self.transfer.digest.clone(), self.transfer.size);
        // The verifier's state at each offset the registry confirmed: a resume re-reads the
        // source from one of them, so every byte is hashed exactly once, in order.
        let mut checkpoints = BTreeMap::from([(0u64, fresh.clone())]);
        let size = self.transfer.size;
        let mut feed = Feed { source, cursor: Cursor { live: fresh, read: 0, sent: 0, carry: None } };
        let mut resumes = 0;
        while feed.cursor.sent < size {
            let len = (size - feed.cursor.sent).min(chunk_size);
            let (back, answer) = self.patch(&location, feed, len).await;
            feed = back;
            let error = match answer {
                Ok(next) => {
                    location = next;
                    feed.cursor.sent += len;
                    checkpoints.insert(feed.cursor.sent, feed.cursor.live.clone());
                    continue;
                }
                Err(error) if error.upload_may_resume() => error,
                Err(error) => {
                    self.cancel(&location).await;
                    return Err(error);
                }
            };
            let cursor = &mut feed.cursor;
            let (offset, next) = self.resume(&location, cursor, &mut resumes, error).await?;
            location = next;
            if offset == cursor.read {
                // The chunk arrived; only its answer was lost.
                cursor.sent = offset;
                checkpoints.insert(offset, cursor.live.clone());
                continue;
            }
            let (&at, verifier) =
                checkpoints.range(..=offset).next_back().expect("offset 0 is always a checkpoint");
            tracing::info!(
                host = %host_of(&location),
                digest = %self.transfer.digest,
                registry_has = offset,
                rereading_from = at,
                "resuming a chunked upload"
            );
            let cursor = Cursor { live: verifier.clone(), read: at, sent: offset, carry: None };
            let source = match source::open(self.transport, self.transfer, at, self.progress).await {
                Ok(source) => source,
                Err(error) => {
                    self.cancel(&location).await;
                    return Err(error);
                }
            };
            feed = Feed { source, cursor };
        }
        if let Err(error) = feed.finish().await {
            self.cancel(&location).await;
            return Err(error);
        }
        self.commit(&location).await
    }

    /// end-5, one chunk: `PATCH <location>` with `Content-Range: <start>-<end>` -> `202`.
    /// The body is the source's next `len` bytes, lent the feed while the request runs;
    /// the feed comes back with the outcome. The body's own failure (the source broke, or
    /// its bytes did not verify) wins over what the registry said about the cut request.
    async fn patch(&self, location: &Url, feed: Feed, len: u64) -> (Feed, Result<Url, TransportError>) {
        let start = feed.cursor.sent;
        let end = start + len;
        let mut headers = self.headers();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        headers.insert(CONTENT_RANGE, format!("{start}-{}", end - 1).parse().expect("digits"));
        headers.insert(CONTENT_LENGTH, len.into());
        let lent = Arc::new(Mutex::new(Some(feed)));
        let failure = Arc::new(Mutex::new(None));
        let activity = Arc::new(Activity::new());
        let body =
            ChunkBody { feed: lent.clone(), left: len, failure: failure.clone(), activity: activity.clone() };
        let request = self
            .transport
            .client_for(location)
            .patch(location.clone())
            .headers(headers)
            .body(reqwest::Body::wrap_stream(body));
        let read_timeout = self.transport.options().read_timeout;
        let answer = self.await_upload(request.send(), &activity, location, read_timeout).await;
        // Taken back, a body the connection still holds can only fail from now on.
        let feed =
            lent.lock().unwrap_or_else(PoisonError::into_inner).take().expect("only patch takes the feed");
        if let Some(error) = failure.lock().unwrap_or_else(PoisonError::into_inner).take() {
            return (feed, Err(error));
        }
        let answer = match answer {
            Ok(answer) => expect_success(DEST, answer, location).await,
            Err(error) => Err(error),
        };
        let next = answer.and_then(|answer| self.next_location(&answer, location));
        if next.is_ok() && feed.cursor.read < end {
            let message = format!("{} accepted a chunk before receiving all of it", host_of(location));
            return (feed, Err(TransportError::Connection { side: DEST, message }));
        }
        (feed, next)
    }

    /// Asks the registry how much of the upload it holds, pausing before each attempt.
    /// Gives up after [`NativeOptions::resume_attempts`](crate::NativeOptions) in all.
    async fn resume(
        &self,
        location: &Url,
        cursor: &Cursor,
        resumes: &mut u32,
        mut error: TransportError,
    ) -> Result<(u64, Url), TransportError> {
        let read = cursor.read;
        let options = self.transport.options();
        loop {
            if *resumes >= options.resume_attempts {
                self.cancel(location).await;
                return Err(error);
            }
            *resumes += 1;
            let backoff = options.resume_backoff.saturating_mul(1 << (*resumes - 1).min(16));
            let pause = retry_after(&error).unwrap_or(backoff).min(MAX_RESUME_PAUSE);
            tracing::warn!(
                host = %host_of(location),
                attempt = *resumes,
                pause_ms = pause.as_millis() as u64,
                "an upload chunk failed ({error}); asking the registry where to resume"
            );
            tokio::time::sleep(pause).await;
            match self.upload_status(location, cursor.sent).await {
                Ok((offset, _)) if offset > read => {
                    self.cancel(location).await;
                    return Err(TransportError::Connection {
                        side: DEST,
                        message: format!(
                            "{} says it holds {offset} bytes of the upload, but only {read} were sent",
                            host_of(location)
                        ),
                    });
                }
                Ok(found) => return Ok(found),
                Err(e) if e.upload_may_resume() => error = e,
                Err(e) => {
                    self.cancel(location).await;
                    return Err(e);
                }
            }
        }
    }

    /// end-13: `GET <location>` -> `204` with `Range: 0-<last>` and the next `Location`.
    async fn upload_status(&self, location: &Url, confirmed: u64) -> Result<(u64, Url), TransportError> {
        let wait = self.transport.options().read_timeout;
        let (answer, url) =
            self.transport.fetch(DEST, Method::GET, location.clone(), self.headers(), None, wait).await?;
        let answer = expect_success(DEST, answer, &url).await?;
        let range = answer.headers().get(RANGE).and_then(|v| v.to_str().ok()).map(str::trim);
        let offset = match range {
            None => 0,
            // distribution answers `0-0` for an empty session too: it means 0 unless the
            // registry had already confirmed bytes.
            Some("0-0" | "bytes=0-0") if confirmed == 0 => 0,
            Some(range) => upload_offset(range).ok_or_else(|| TransportError::Status {
                side: DEST,
                status: answer.status().as_u16(),
                retry_after: None,
                detail: Some(format!("{} answered an upload Range that is not `0-<end>`", host_of(&url))),
            })?,
        };
        Ok((offset, self.next_location(&answer, location)?))
    }

    /// end-6: `PUT <location>?digest=<digest>` with no body -> `201 Created`.
    async fn commit(&self, location: &Url) -> Result<(), TransportError> {
        let url = parse_url(DEST, &upload_complete(location.as_str(), &self.transfer.digest))?;
        let wait = self.transport.options().commit_timeout;
        let (answer, url) =
            self.transport.fetch(DEST, Method::PUT, url, self.headers(), Some(Bytes::new()), wait).await?;
        expect_success(DEST, answer, &url).await.map(drop)
    }

    /// distribution's `DELETE <location>` (the spec has no number for it): abandons the session so the registry can free it. Best
    /// effort: the error that led here is what the caller reports.
    async fn cancel(&self, location: &Url) {
        let wait = self.transport.options().read_timeout.min(CANCEL_WAIT);
        let result =
            self.transport.fetch(DEST, Method::DELETE, location.clone(), self.headers(), None, wait).await;
        if let Err(error) = result {
            tracing::debug!(host = %host_of(location), "could not cancel an upload session: {error}");
        }
    }

    /// Waits for the answer to a request whose body is still going up: the registry may
    /// be silent for [`NativeOptions::read_timeout`](crate::NativeOptions) while it accepts
    /// none of the body, and for `after_body` once it has all of it (a closing `PUT` may
    /// take minutes while the registry moves the blob; a `PATCH` answers at once).
    async fn await_upload(
        &self,
        answer: impl Future<Output = reqwest::Result<reqwest::Response>>,
        activity: &Activity,
        url: &Url,
        after_body: Duration,
    ) -> Result<reqwest::Response, TransportError> {
        let options = self.transport.options();
        // A little longer than the source's own silence limit, so that a stalled source
        // is reported as the source's fault.
        let idle = options.read_timeout + options.read_timeout / 4;
        let mut answer = pin!(answer);
        loop {
            let deadline = activity.deadline(idle, after_body);
            match tokio::time::timeout_at(deadline, answer.as_mut()).await {
                Ok(answer) => return answer.map_err(|e| from_reqwest(DEST, &host_of(url), e)),
                Err(_) if activity.deadline(idle, after_body) > deadline => continue,
                Err(_) => {
                    let (what, after) = if activity.done.load(Ordering::Relaxed) {
                        ("did not confirm the upload", after_body)
                    } else {
                        ("accepted none of the upload", idle)
                    };
                    return Err(crate::errors::timeout(DEST, &host_of(url), what, after));
                }
            }
        }
    }
}

fn retry_after(error: &TransportError) -> Option<Duration> {
    match error {
        TransportError::Status { retry_after, .. } => *retry_after,
        _ => None,
    }
}

/// The source of a chunked upload and where the upload stands, lent to one chunk's body
/// at a time.
struct Feed {
    source: SourceStream,
    cursor: Cursor,
}

impl Feed {
    /// Reads the source to its end once every chunk is up, and checks the blob: a source
    /// with bytes beyond the blob's size fails verification.
    async fn finish(mut self) -> Result<(), TransportError> {
        let verify = TransportError::Verify;
        let cursor = &mut self.cursor;
        if let Some(piece) = cursor.carry.take() {
            cursor.live.update(&piece).map_err(verify)?;
        }
        while let Some(piece) = self.source.next().await {
            cursor.live.update(&piece?).map_err(verify)?;
        }
        self.cursor.live.finish().map_err(verify)
    }
}

/// Where a chunked upload stands.
struct Cursor {
    /// The verifier, having seen bytes `0..read`.
    live: Verifier,
    /// Offset of the next byte taken from the source.
    read: u64,
    /// Bytes the registry holds; `read` catches up with it after a resume.
    sent: u64,
    /// The rest of a source piece that did not fit into the last chunk.
    carry: Option<Bytes>,
}

impl Cursor {
    /// The next piece to send: at most `max` bytes from `sent` on, verified first. Bytes
    /// below `sent` (re-read after a resume) are hashed, not sent. `None` at the end of
    /// the source.
    fn poll_piece(
        &mut self,
        source: &mut SourceStream,
        max: u64,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, TransportError>> {
        let verify = TransportError::Verify;
        loop {
            let mut piece = match self.carry.take() {
                Some(piece) => piece,
                None => match ready!(source.poll_next_unpin(cx)) {
                    Some(Ok(piece)) => piece,
                    Some(Err(error)) => return Poll::Ready(Err(error)),
                    None => return Poll::Ready(Ok(None)),
                },
            };
            if self.read < self.sent {
                let known = (self.sent - self.read).min(piece.len() as u64) as usize;
                if let Err(error) = self.live.update(&piece[..known]) {
                    return Poll::Ready(Err(verify(error)));
                }
                self.read += known as u64;
                piece = piece.slice(known..);
                if piece.is_empty() {
                    continue;
                }
            }
            let take = (piece.len() as u64).min(max) as usize;
            if take < piece.len() {
                self.carry = Some(piece.slice(take..));
            }
            let piece = piece.slice(..take);
            if let Err(error) = self.live.update(&piece) {
                return Poll::Ready(Err(verify(error)));
            }
            self.read += take as u64;
            return Poll::Ready(Ok(Some(piece)));
        }
    }
}

/// One chunk's body: the source's next `left` bytes, taken only as the connection asks
/// for them, so a chunk is never held in memory. Once the upload has taken its feed back,
/// or when the source breaks or does not verify, the body fails and the registry sees a
/// request cut short.
struct ChunkBody {
    feed: Arc<Mutex<Option<Feed>>>,
    left: u64,
    /// Why the body failed, for the upload to report.
    failure: Arc<Mutex<Option<TransportError>>>,
    activity: Arc<Activity>,
}

impl Stream for ChunkBody {
    type Item = Result<Bytes, Aborted>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.left == 0 {
            this.activity.finish();
            return Poll::Ready(None);
        }
        this.activity.touch();
        let mut lent = this.feed.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(Feed { source, cursor }) = lent.as_mut() else { return Poll::Ready(Some(Err(Aborted))) };
        let error = match ready!(cursor.poll_piece(source, this.left, cx)) {
            Ok(Some(piece)) => {
                this.left -= piece.len() as u64;
                return Poll::Ready(Some(Ok(piece)));
            }
            // The source ended inside the chunk: the blob is shorter than its descriptor.
            Ok(None) => match cursor.live.clone().finish() {
                Err(error) => TransportError::Verify(error),
                Ok(()) => TransportError::Connection {
                    side: Side::Source,
                    message: format!("the source's body ended {} bytes before the chunk did", this.left),
                },
            },
            Err(error) => error,
        };
        *this.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(error);
        Poll::Ready(Some(Err(Aborted)))
    }
}
