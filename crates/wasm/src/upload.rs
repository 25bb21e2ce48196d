//! One blob from source to destination: the source `GET` read as a stream, every piece
//! fed to the core's `Verifier`, and the upload in chunks of bounded size.
//!
//! OCI Distribution Spec v1.1, "Pushing blobs": a session opens with `POST
//! /v2/<name>/blobs/uploads/` (`202 Accepted` and a `Location`), takes chunks with `PATCH
//! <location>` and `Content-Range: <start>-<end>` (each answered `202` with the next
//! `Location`), tells where it stands on `GET <location>` (`204` with `Range: 0-<end>`),
//! and closes with `PUT <location>?digest=<digest>`, answered `201 Created`.
//!
//! A browser cannot stream a request body over HTTP/1.1, so the chunks are what bounds
//! memory: a transfer holds at most one. A blob smaller than a chunk goes up in the
//! closing `PUT` itself. Either way the closing `PUT` is sent only after the whole blob
//! has verified, so a source that lies never gets a blob committed.

use std::sync::atomic::Ordering;
use std::time::Duration;

use ferry_core::api::{upload_complete, upload_offset};
use ferry_core::digest::{Verifier, VerifyError};
use ferry_core::transport::{ProgressCounter, Side, Transfer, TransportError};
use http::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};
use http::{HeaderMap, HeaderValue};
use js_sys::{Array, Uint8Array};
use web_sys::Blob;

use crate::clock::Sleep;
use crate::fetch::{host_of, Answer, Body, BodyReader};
use crate::transport::BrowserTransport;

const DEST: Side = Side::Destination;
/// The longest pause between two resume attempts.
const MAX_RESUME_PAUSE: Duration = Duration::from_secs(10);
/// Cancelling a session is a courtesy; it does not get to hold up the error it follows.
const CANCEL_WAIT: Duration = Duration::from_secs(10);

/// Moves one blob.
pub(crate) async fn run(
    transport: &BrowserTransport,
    transfer: &Transfer,
    progress: &ProgressCounter,
) -> Result<(), TransportError> {
    // The source first: a blob that cannot be read leaves no session behind. The answer
    // lives until the end, since dropping it aborts the download.
    let source = transport
        .http
        .fetch(
            Side::Source,
            transfer.source.method().as_str(),
            &transfer.source.uri().to_string(),
            transfer.source.headers(),
            Body::Empty,
            transport.options.answer_timeout,
        )
        .await?
        .success(Side::Source)
        .await?;
    // A whole answer of another length is a lie, not a cut: refuse it before reading a byte.
    let announced = source.header(CONTENT_LENGTH.as_str()).and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(announced) = announced.filter(|&n| n != transfer.size) {
        return Err(TransportError::Verify(VerifyError::WrongLength {
            digest: transfer.digest.clone(),
            expected: transfer.size,
            announced,
        }));
    }
    let mut reader = BodyReader::new(&source, Side::Source, transport.options.answer_timeout)?;
    let location = match &transfer.upload_location {
        Some(location) => resolve(&transfer.upload_start, location)?,
        None => open_session(transport, transfer).await?,
    };
    let mut upload = Upload { transport, transfer, location, sent: 0 };
    let result = upload.send(&mut reader, progress).await;
    if result.is_err() {
        upload.cancel().await;
    }
    result
}

/// end-4a: `POST /v2/<name>/blobs/uploads/` -> `202 Accepted` with a `Location`.
async fn open_session(transport: &BrowserTransport, transfer: &Transfer) -> Result<String, TransportError> {
    let url = &transfer.upload_start;
    let wait = transport.options.answer_timeout;
    let answer = transport.http.fetch(DEST, "POST", url, &transfer.upload_headers, Body::Empty, wait).await?;
    if answer.status() != 202 {
        return Err(answer.into_error(DEST).await);
    }
    match answer.header(LOCATION.as_str()) {
        Some(location) => resolve(url, &location),
        None => Err(TransportError::Status {
            side: DEST,
            status: 202,
            retry_after: None,
            detail: Some(format!(
                "{} opened an upload without a Location header (does its CORS setup expose Location?)",
                host_of(url)
            )),
        }),
    }
}

/// A `Location`, which may be relative, resolved against the URL it answered.
fn resolve(base: &str, location: &str) -> Result<String, TransportError> {
    web_sys::Url::new_with_base(location, base).map(|u| u.href()).map_err(|_| TransportError::Status {
        side: DEST,
        status: 202,
        retry_after: None,
        detail: Some(format!("{} gave an upload Location that is not a URL", host_of(base))),
    })
}

/// Pieces of the source gathered into the next chunk, held by JavaScript.
struct Chunk {
    pieces: Array,
    len: usize,
}

impl Chunk {
    fn new() -> Self {
        Chunk { pieces: Array::new(), len: 0 }
    }

    fn push(&mut self, piece: Uint8Array) {
        self.len += piece.length() as usize;
        self.pieces.push(&piece);
    }

    /// The chunk as one `Blob` (which copies the pieces), and its length; empties it.
    fn take(&mut self) -> Result<(Blob, u64), TransportError> {
        let blob =
            Blob::new_with_u8_array_sequence(&self.pieces).map_err(|e| TransportError::Connection {
                side: DEST,
                message: format!("could not hold an upload chunk: {}", crate::js::message_of(&e)),
            })?;
        let len = self.len as u64;
        *self = Chunk::new();
        Ok((blob, len))
    }
}

/// An upload session and how much of the blob the registry has confirmed.
struct Upload<'a> {
    transport: &'a BrowserTransport,
    transfer: &'a Transfer,
    /// The session's current `Location` (each answer may move it).
    location: String,
    /// Bytes the registry holds.
    sent: u64,
}

impl Upload<'_> {
    fn headers(&self) -> HeaderMap {
        let mut headers = self.transfer.upload_headers.clone();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        headers
    }

    /// Reads the source to its end, hashing every piece and sending each full chunk, then
    /// closes the session once the blob has verified.
    async fn send(
        &mut self,
        reader: &mut BodyReader,
        progress: &ProgressCounter,
    ) -> Result<(), TransportError> {
        let chunk_size = self.transport.options.chunk_size;
        let mut verifier = Verifier::new(self.transfer.digest.clone(), self.transfer.size);
        let mut chunk = Chunk::new();
        // The piece being hashed, copied into wasm memory; reused, so it stays one piece big.
        let mut scratch = Vec::new();
        while let Some(mut piece) = reader.next().await? {
            let len = piece.length() as usize;
            progress.fetch_add(len as u64, Ordering::Relaxed);
            scratch.resize(len, 0);
            piece.copy_to(&mut scratch);
            verifier.update(&scratch).map_err(TransportError::Verify)?;
            while piece.length() > 0 {
                let take = (chunk_size - chunk.len).min(piece.length() as usize) as u32;
                chunk.push(piece.subarray(0, take));
                piece = piece.subarray(take, piece.length());
                if chunk.len == chunk_size {
                    let (blob, len) = chunk.take()?;
                    self.patch(&blob, len).await?;
                }
            }
        }
        verifier.finish().map_err(TransportError::Verify)?;
        let (rest, len) = chunk.take()?;
        if self.sent == 0 {
            // The whole blob fits in one chunk: it goes up with the closing PUT.
            return self.commit(Body::Blob(&rest)).await;
        }
        if len > 0 {
            self.patch(&rest, len).await?;
        }
        self.commit(Body::Empty).await
    }

    /// Sends one chunk (`len` bytes from offset `sent`), resuming from where the registry
    /// stands when a `PATCH` fails.
    async fn patch(&mut self, chunk: &Blob, len: u64) -> Result<(), TransportError> {
        let (start, end) = (self.sent, self.sent + len);
        let mut from = start;
        let mut resumes = 0;
        loop {
            let body = if from == start { chunk.clone() } else { slice(chunk, from - start)? };
            let error = match self.patch_once(&body, from, end).await {
                Ok(()) => break,
                Err(error) if error.upload_may_resume() => error,
                Err(error) => return Err(error),
            };
            from = self.resume(start, end, &mut resumes, error).await?;
            if from == end {
                // The chunk arrived; only its answer was lost.
                break;
            }
        }
        self.sent = end;
        Ok(())
    }

    /// end-5: `PATCH <location>` with `Content-Range: <from>-<end - 1>` -> `202`.
    async fn patch_once(&mut self, body: &Blob, from: u64, end: u64) -> Result<(), TransportError> {
        let mut headers = self.headers();
        let range = HeaderValue::try_from(format!("{from}-{}", end - 1)).expect("digits are a header value");
        headers.insert(CONTENT_RANGE, range);
        let wait = self.transport.options.upload_timeout;
        let answer =
            self.transport.http.fetch(DEST, "PATCH", &self.location, &headers, Body::Blob(body), wait);
        let answer = answer.await?.success(DEST).await?;
        self.follow(&answer)
    }

    /// Asks the registry how much of the upload it holds, pausing before each attempt;
    /// gives up after `resume_attempts`. The answer must fall inside the chunk being sent,
    /// which is all a transfer holds; otherwise the core starts the blob over.
    async fn resume(
        &mut self,
        start: u64,
        end: u64,
        resumes: &mut u32,
        mut error: TransportError,
    ) -> Result<u64, TransportError> {
        let options = &self.transport.options;
        loop {
            if *resumes >= options.resume_attempts {
                return Err(error);
            }
            *resumes += 1;
            let backoff = options.resume_backoff.saturating_mul(1 << (*resumes - 1).min(16));
            let retry_after = match &error {
                TransportError::Status { retry_after, .. } => *retry_after,
                _ => None,
            };
            Sleep::new(retry_after.unwrap_or(backoff).min(MAX_RESUME_PAUSE)).await;
            match self.upload_status().await {
                Ok(offset) if (start..=end).contains(&offset) => return Ok(offset),
                Ok(offset) => {
                    return Err(TransportError::Connection {
                        side: DEST,
                        message: format!(
                            "{} holds {offset} bytes of the upload, outside the chunk at bytes {start}-{end}",
                            host_of(&self.location)
                        ),
                    })
                }
                Err(e) if e.upload_may_resume() => error = e,
                Err(e) => return Err(e),
            }
        }
    }

    /// end-13: `GET <location>` -> `204` with `Range: 0-<last>` and the next `Location`.
    async fn upload_status(&mut self) -> Result<u64, TransportError> {
        let wait = self.transport.options.answer_timeout;
        let headers = &self.transfer.upload_headers;
        let answer =
            self.transport.http.fetch(DEST, "GET", &self.location, headers, Body::Empty, wait).await?;
        let answer = answer.success(DEST).await?;
        let offset = match answer.header(RANGE.as_str()).as_deref().map(str::trim) {
            None => 0,
            // distribution answers `0-0` for an empty session too: it means 0 unless the
            // registry had already confirmed bytes.
            Some("0-0" | "bytes=0-0") if self.sent == 0 => 0,
            Some(range) => upload_offset(range).ok_or_else(|| TransportError::Status {
                side: DEST,
                status: answer.status(),
                retry_after: None,
                detail: Some(format!("{} answered an upload Range that is not `0-<end>`", answer.host)),
            })?,
        };
        self.follow(&answer)?;
        Ok(offset)
    }

    /// end-6: `PUT <location>?digest=<digest>`, with the last bytes or none -> `201 Created`.
    async fn commit(&mut self, body: Body<'_>) -> Result<(), TransportError> {
        let url = upload_complete(&self.location, &self.transfer.digest);
        let wait = self.transport.options.upload_timeout;
        let answer = self.transport.http.fetch(DEST, "PUT", &url, &self.headers(), body, wait).await?;
        answer.success(DEST).await.map(drop)
    }

    /// distribution's `DELETE <location>`: abandons the session so the registry can free
    /// it. Best effort: the error that led here is what the transfer reports.
    async fn cancel(&self) {
        let wait = self.transport.options.answer_timeout.min(CANCEL_WAIT);
        let headers = &self.transfer.upload_headers;
        let _ = self.transport.http.fetch(DEST, "DELETE", &self.location, headers, Body::Empty, wait).await;
    }

    /// Moves to the answer's next `Location`, if it gave one.
    fn follow(&mut self, answer: &Answer) -> Result<(), TransportError> {
        if let Some(next) = answer.header(LOCATION.as_str()) {
            self.location = resolve(&self.location, &next)?;
        }
        Ok(())
    }
}

/// The chunk from `offset` on.
fn slice(chunk: &Blob, offset: u64) -> Result<Blob, TransportError> {
    chunk.slice_with_f64(offset as f64).map_err(|e| TransportError::Connection {
        side: DEST,
        message: format!("could not slice an upload chunk: {}", crate::js::message_of(&e)),
    })
}
