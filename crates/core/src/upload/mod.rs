//! The blob upload protocol as a sans-IO machine: open, PATCH, resume, commit, cancel.
//!
//! OCI Distribution Spec v1.1, "Pushing blobs": a session opens with `POST
//! /v2/<name>/blobs/uploads/` (`202 Accepted` and a `Location`), takes chunks with `PATCH
//! <location>` and `Content-Range: <start>-<end>` (each answered `202` with the next
//! `Location`), tells where it stands on `GET <location>` (`204` with `Range: 0-<end>`),
//! and closes with `PUT <location>?digest=<digest>`, answered `201 Created`. A registry
//! may ask for a minimum chunk size with `OCI-Chunk-Min-Length`. distribution frees an
//! abandoned session on `DELETE <location>`.
//!
//! [`Upload`] decides which request comes next, which bytes of the blob go in its body
//! and when; the transport moves the bytes. The machine never sees a byte: it deals in
//! offsets. One request is asked for at a time. The run loop:
//!
//! ```text
//! let mut upload = Upload::new(&transfer, config, wall);
//! loop {
//!     match upload.poll_output(clock.now()) {
//!         Output::Send(request) => { /* send it, streaming `request.body` from the source */
//!             upload.handle(Reply::Answer(response) /* or Reply::Failed(error) */, clock.now())?; }
//!         Output::Verify => { /* read the rest of the source, finish the Verifier */
//!             upload.handle(Reply::Verified /* or Reply::Failed(error) */, clock.now())?; }
//!         Output::Wait(until) => clock.sleep_until(until).await,
//!         Output::Done(result) => break result,
//!         Output::Busy => break Err(UploadMisuse::PolledWhileBusy.into()), // never, if each Send is answered
//!     }
//! }
//! ```
//!
//! What it decides:
//! - a blob below [`UploadConfig::monolithic_below`] goes up in one `PUT` whose body is
//!   the whole blob; a registry that refuses it (`405`, `413`, `501`, `400 SIZE_INVALID`)
//!   gets its session cancelled and the blob in chunks in a new one;
//! - chunks are [`UploadConfig::chunk_size`] long, or the registry's
//!   `OCI-Chunk-Min-Length` when that is longer (up to [`UploadConfig::max_min_chunk`]);
//!   only the last may be shorter;
//! - a chunk or a commit that fails in a way [`TransportError::upload_may_resume`]
//!   allows is followed, after a backoff from the transfer's [`RetryPolicy`] and seeded
//!   [`Rng`], by `GET <location>`; the upload goes on from the registry's `Range`, so
//!   bytes it holds are not sent again. A commit whose session has vanished (`404`) may
//!   have landed: a `HEAD` of the blob tells;
//! - the closing `PUT` is asked for only after the transport reported the whole blob
//!   verified ([`Output::Verify`]);
//! - a session a past run left ([`Transfer::resumes_session`]) starts with `GET
//!   <location>`, and the blob goes on from the registry's `Range`; when the registry
//!   no longer knows the session (any answer but a success), a new one opens;
//! - any other failure, or running out of retries, cancels the session and reports the
//!   error that ended the upload.

mod request;
mod state;

use std::fmt;

use crate::digest::Digest;
use crate::retry::{RetryPolicy, Rng};
use crate::time::{Instant, WallClock};
use crate::transport::{Side, Transfer, TransportError};

use state::{Asked, State};

/// How a transport wants its uploads cut. The retry policy and its seed come from the
/// [`Transfer`], that is from the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadConfig {
    /// Bytes per `PATCH`.
    pub chunk_size: u64,
    /// Blobs smaller than this go up in one `PUT`; 0 sends every blob in chunks.
    pub monolithic_below: u64,
    /// A registry's `OCI-Chunk-Min-Length` is honoured up to this length; beyond it the
    /// transport's memory bound wins and the registry may refuse the chunks.
    pub max_min_chunk: u64,
}

impl UploadConfig {
    /// The requests an upload of `size` bytes makes when nothing fails: the `POST` that
    /// opens it and one `PUT` with the whole blob, or, from
    /// [`UploadConfig::monolithic_below`] up, a `PATCH` per chunk and the closing `PUT`.
    pub const fn requests(&self, size: u64) -> u64 {
        if size < self.monolithic_below {
            return 2;
        }
        let chunk = if self.chunk_size == 0 { 1 } else { self.chunk_size };
        2 + size.div_ceil(chunk)
    }
}

/// The request the transport must make.
#[derive(Debug)]
pub struct UploadRequest {
    /// The protocol step, for the transport's timeouts and logs.
    pub kind: RequestKind,
    /// Method, URL and headers (authorisation, `Content-Type`, `Content-Range`,
    /// `Content-Length`). The body is described by `body`.
    pub request: http::Request<()>,
    /// Which bytes of the blob the body carries, if any.
    pub body: Body,
}

/// Which step of the protocol a request is; transports pick their timeouts by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RequestKind {
    /// end-4a `POST /v2/<name>/blobs/uploads/`.
    Open,
    /// end-6 `PUT <location>?digest=` with the whole blob as its body.
    Monolithic,
    /// end-5 `PATCH <location>` with one chunk.
    Patch,
    /// end-13 `GET <location>`: how much of the upload the registry holds.
    Status,
    /// end-6 `PUT <location>?digest=` with no body: the closing request.
    Commit,
    /// end-2 `HEAD /v2/<name>/blobs/<digest>`: whether a commit whose answer was lost landed.
    Check,
    /// `DELETE <location>`: the session is abandoned.
    Cancel,
}

/// What goes in a request's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// No body.
    Empty,
    /// Bytes `start..end` of the blob, each verified as it is read from the source.
    Chunk {
        /// The first byte's offset in the blob.
        start: u64,
        /// The offset just past the last byte.
        end: u64,
    },
    /// The whole blob, verified as it streams; its last piece is held back until the
    /// whole blob verified, so a blob that does not verify never completes.
    Whole,
}

/// What the machine wants next.
#[derive(Debug)]
pub enum Output {
    /// Make this request and reply with its answer (or its failure).
    Send(UploadRequest),
    /// Read whatever of the source is left, finish the `Verifier`, and reply
    /// [`Reply::Verified`] or [`Reply::Failed`].
    Verify,
    /// Nothing until this instant of the driver's clock; then poll again.
    Wait(Instant),
    /// The last `Send` or `Verify` has not been answered yet.
    Busy,
    /// The upload has ended: the blob is committed, or the error that ended it.
    Done(Result<(), TransportError>),
}

/// The outcome of the last `Send` or `Verify`.
#[derive(Debug)]
pub enum Reply {
    /// The registry's answer, whatever its status. For a status that is not a success,
    /// the body (or its first kilobytes) explains it.
    Answer(http::Response<Vec<u8>>),
    /// No answer: the connection failed or timed out, or the body's own source failed
    /// or did not verify.
    Failed(TransportError),
    /// The whole blob has been read and verified.
    Verified,
}

/// Misuse of the machine by its transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UploadMisuse {
    /// A reply came while the machine waited for none.
    #[error("a reply was fed to an upload that is waiting for none: reply once per Send or Verify")]
    NothingAsked,
    /// A reply of the wrong kind: `Verified` for a request, or an answer for `Verify`.
    #[error("Reply::Verified answers Output::Verify only, and Output::Verify takes no HTTP answer")]
    WrongReply,
    /// The machine was polled ([`Output::Busy`]) before its last request was answered.
    #[error("the upload was polled before its last request was answered")]
    PolledWhileBusy,
}

/// A transport that misused the machine ends the transfer with an error that says so,
/// never a panic: the blob's image fails, the job goes on.
impl From<UploadMisuse> for TransportError {
    fn from(misuse: UploadMisuse) -> Self {
        TransportError::Connection { side: Side::Destination, message: format!("{misuse} (a bug in ferry)") }
    }
}

/// One blob's upload. See the module docs for the run loop.
pub struct Upload {
    digest: Digest,
    size: u64,
    upload_start: String,
    headers: http::HeaderMap,
    config: UploadConfig,
    policy: RetryPolicy,
    rng: Rng,
    wall: WallClock,
    /// The session's current `Location`, absolute.
    location: Option<String>,
    /// Bytes per chunk, once the registry's minimum is known.
    chunk: u64,
    /// Bytes the registry confirmed holding.
    confirmed: u64,
    /// The end of the furthest chunk sent: the registry cannot hold more.
    sent_to: u64,
    /// The transport reported the whole blob verified, and no chunk went up since.
    verified: bool,
    /// A commit was sent: a session that vanished may mean the blob landed.
    committing: bool,
    /// The monolithic `PUT` was refused and the blob goes in chunks.
    fell_back: bool,
    /// The session is a past run's, and the registry has not yet said where it stands.
    resuming: bool,
    /// Failures since the registry last confirmed more bytes.
    streak: u32,
    /// The error a cancel reports.
    failure: Option<TransportError>,
    state: State,
    awaiting: Option<Asked>,
}

impl fmt::Debug for Upload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Headers carry credentials: never printed.
        f.debug_struct("Upload")
            .field("digest", &self.digest)
            .field("size", &self.size)
            .field("confirmed", &self.confirmed)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Upload {
    /// The upload of `transfer`'s blob. `wall` maps the driver's clock onto the wall
    /// clock, for `Retry-After` dates.
    pub fn new(transfer: &Transfer, config: UploadConfig, wall: WallClock) -> Upload {
        let mut upload = Upload {
            digest: transfer.digest.clone(),
            size: transfer.size,
            upload_start: transfer.upload_start.clone(),
            headers: transfer.upload_headers.clone(),
            config,
            policy: transfer.retry,
            rng: Rng::new(transfer.seed),
            wall,
            location: None,
            chunk: config.chunk_size.max(1),
            confirmed: 0,
            sent_to: 0,
            verified: false,
            committing: false,
            fell_back: false,
            resuming: false,
            streak: 0,
            failure: None,
            state: State::Done(Ok(())),
            awaiting: None,
        };
        let monolithic = transfer.size < config.monolithic_below;
        upload.state = match &transfer.upload_location {
            None => State::Open { monolithic },
            Some(location) => match upload.resolve(&transfer.upload_start, location) {
                Ok(location) if transfer.resumes_session => {
                    upload.location = Some(location);
                    upload.resuming = true;
                    // The past run may have sent any part of the blob.
                    upload.sent_to = transfer.size;
                    State::Status { at: Instant::ZERO }
                }
                Ok(location) => {
                    upload.location = Some(location);
                    upload.first_state(monolithic)
                }
                Err(error) => State::Done(Err(error)),
            },
        };
        upload
    }

    /// What to do next. Call again after every [`Upload::handle`] and whenever a
    /// [`Output::Wait`] deadline has come.
    pub fn poll_output(&mut self, now: Instant) -> Output {
        if self.awaiting.is_some() {
            return Output::Busy;
        }
        match &self.state {
            State::Done(result) => Output::Done(result.clone()),
            State::Status { at } if now < *at => Output::Wait(*at),
            State::Verify => {
                self.awaiting = Some(Asked::Verify);
                Output::Verify
            }
            _ => match self.next_request() {
                Ok((asked, request)) => {
                    self.awaiting = Some(asked);
                    Output::Send(request)
                }
                Err(error) => {
                    self.give_up(error);
                    self.poll_output(now)
                }
            },
        }
    }

    /// Feeds back the outcome of the last `Send` or `Verify`.
    pub fn handle(&mut self, reply: Reply, now: Instant) -> Result<(), UploadMisuse> {
        let asked = self.awaiting.take().ok_or(UploadMisuse::NothingAsked)?;
        match (asked, reply) {
            (Asked::Verify, Reply::Verified) => {
                self.verified = true;
                self.state = State::Commit;
            }
            (Asked::Verify, Reply::Failed(error)) => self.give_up(error),
            (asked @ Asked::Verify, Reply::Answer(_)) | (asked, Reply::Verified) => {
                self.awaiting = Some(asked);
                return Err(UploadMisuse::WrongReply);
            }
            (asked, Reply::Failed(error)) => self.failed(asked, error, now),
            (asked, Reply::Answer(answer)) => self.answered(asked, answer, now),
        }
        Ok(())
    }

    /// Whether the upload has ended.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done(_))
    }

    /// Bytes the registry has confirmed holding.
    pub fn confirmed(&self) -> u64 {
        self.confirmed
    }

    /// Bytes per chunk, the registry's minimum included.
    pub fn chunk_len(&self) -> u64 {
        self.chunk
    }

    /// The session's current `Location`, once a session is open.
    pub fn location(&self) -> Option<&str> {
        self.location.as_deref()
    }
}
