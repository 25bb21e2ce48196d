//! One blob from source to destination in the browser: the core's [`Upload`] machine,
//! executed over `fetch`.
//!
//! The machine decides every request (open, the `PUT` of a small blob, each `PATCH` and
//! its byte range, the status `GET` of a resume, the closing `PUT`, the `DELETE` of a
//! session given up) and every wait, which is spent on the driver's clock. This file
//! reads the source, feeds every piece to the core's `Verifier` once, in order, and
//! hands each request the bytes it asks for.
//!
//! A browser cannot stream a request body over HTTP/1.1, so a chunk is held in memory
//! (by JavaScript, as the source's pieces) while it goes up: a transfer holds at most one
//! chunk and one piece of the source. Hence a resume can only reach back to the start of
//! the chunk held: when the registry stands before it, the transfer fails with a
//! transient error and the core starts the blob over. A blob below the chunk size goes
//! up in one `PUT`, sent only once the whole blob has verified; so is the closing `PUT`
//! of a chunked upload: a source that lies never gets a blob committed.

use std::sync::atomic::Ordering;

use ferry_core::digest::{Verifier, VerifyError};
use ferry_core::time::WallClock;
use ferry_core::transport::{Clock, ProgressCounter, Side, Transfer, TransportError};
use ferry_core::upload::{
    Body, Output, Reply, RequestKind, Upload, UploadConfig, UploadMisuse, UploadRequest,
};
use http::header::CONTENT_LENGTH;
use js_sys::{Array, Uint8Array};
use web_sys::Blob;

use crate::clock::wall_now;
use crate::fetch::{self, BodyReader};
use crate::transport::{BrowserTransport, CANCEL_WAIT, MAX_HONOURED_MIN_CHUNK};

const DEST: Side = Side::Destination;

/// Moves one blob.
pub(crate) async fn run(
    transport: &BrowserTransport,
    transfer: &Transfer,
    progress: &ProgressCounter,
    clock: &dyn Clock,
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
            fetch::Body::Empty,
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
    let reader = BodyReader::new(&source, Side::Source, transport.options.answer_timeout)?;
    let chunk_size = transport.options.chunk_size as u64;
    let config = UploadConfig {
        chunk_size,
        monolithic_below: chunk_size,
        max_min_chunk: MAX_HONOURED_MIN_CHUNK.max(chunk_size),
    };
    let mut mover = Mover {
        transport,
        progress,
        reader,
        size: transfer.size,
        verifier: Verifier::new(transfer.digest.clone(), transfer.size),
        held: Held::new(),
        scratch: Vec::new(),
    };
    let mut upload = Upload::new(transfer, config, WallClock::new(clock.now(), wall_now()));
    loop {
        let reply = match upload.poll_output(clock.now()) {
            Output::Send(request) => mover.send(request).await,
            Output::Verify => match mover.verify().await {
                Ok(()) => Reply::Verified,
                Err(error) => Reply::Failed(error),
            },
            Output::Wait(until) => {
                clock.sleep_until(until).await;
                continue;
            }
            Output::Done(result) => return result,
            Output::Busy => return Err(UploadMisuse::PolledWhileBusy.into()),
        };
        upload.handle(reply, clock.now())?;
    }
}

/// The bytes `start..start + len` of the blob, as the source's pieces, held by JavaScript.
struct Held {
    start: u64,
    pieces: Vec<Uint8Array>,
    len: u64,
}

impl Held {
    fn new() -> Self {
        Held { start: 0, pieces: Vec::new(), len: 0 }
    }

    fn end(&self) -> u64 {
        self.start + self.len
    }

    /// Lets go of the bytes before `offset`.
    fn drop_below(&mut self, offset: u64) {
        while let Some(first) = self.pieces.first() {
            let len = first.length() as u64;
            if self.start + len > offset {
                break;
            }
            self.pieces.remove(0);
            self.start += len;
            self.len -= len;
        }
        if let Some(first) = self.pieces.first_mut() {
            let cut = offset.saturating_sub(self.start) as u32;
            if cut > 0 {
                *first = first.subarray(cut, first.length());
                self.start += cut as u64;
                self.len -= cut as u64;
            }
        }
    }

    /// Bytes `start..end` (all held) as one `Blob`, which copies them.
    fn blob(&self, start: u64, end: u64) -> Result<Blob, TransportError> {
        let parts = Array::new();
        let mut at = self.start;
        for piece in &self.pieces {
            let len = piece.length() as u64;
            let (from, to) = (start.max(at), end.min(at + len));
            if from < to {
                parts.push(&piece.subarray((from - at) as u32, (to - at) as u32));
            }
            at += len;
        }
        Blob::new_with_u8_array_sequence(&parts).map_err(|e| TransportError::Connection {
            side: DEST,
            message: format!("could not hold an upload chunk: {}", crate::js::message_of(&e)),
        })
    }
}

/// Executes the machine's requests for one transfer.
struct Mover<'a> {
    transport: &'a BrowserTransport,
    progress: &'a ProgressCounter,
    reader: BodyReader,
    /// The blob's size.
    size: u64,
    /// Has seen every byte read from the source so far.
    verifier: Verifier,
    held: Held,
    /// The piece being hashed, copied into wasm memory; reused, so it stays one piece big.
    scratch: Vec<u8>,
}

impl Mover<'_> {
    async fn send(&mut self, request: UploadRequest) -> Reply {
        let body = match request.body {
            Body::Empty => Ok(None),
            Body::Chunk { start, end } => self.bytes(start, end).await.map(Some),
            Body::Whole => match self.bytes(0, self.size).await {
                // The whole blob goes up only once it verified.
                Ok(blob) => self.verify().await.map(|()| Some(blob)),
                Err(error) => Err(error),
            },
        };
        let result = match body {
            Ok(blob) => self.exchange(request, blob.as_ref()).await,
            Err(error) => Err(error),
        };
        match result {
            Ok(answer) => Reply::Answer(answer),
            Err(error) => Reply::Failed(error),
        }
    }

    /// Bytes `start..end` of the blob, read from the source as far as needed. Bytes before
    /// `start` are let go; a `start` before the bytes held cannot be served.
    async fn bytes(&mut self, start: u64, end: u64) -> Result<Blob, TransportError> {
        if start < self.held.start {
            return Err(TransportError::Connection {
                side: Side::Source,
                message: format!(
                    "the registry needs the upload again from byte {start}, but the browser holds it only \
                     from byte {} on; the blob starts over",
                    self.held.start
                ),
            });
        }
        self.held.drop_below(start);
        while self.held.end() < end {
            match self.next_piece().await? {
                Some(piece) => {
                    self.held.len += piece.length() as u64;
                    self.held.pieces.push(piece);
                }
                None => {
                    // The source ended before the chunk did: the blob is shorter than its
                    // descriptor.
                    return Err(match self.verifier.clone().finish() {
                        Err(error) => TransportError::Verify(error),
                        Ok(()) => TransportError::Connection {
                            side: Side::Source,
                            message: "the source's body ended before the blob did".to_owned(),
                        },
                    });
                }
            }
        }
        self.held.blob(start, end)
    }

    /// The source's next piece, counted and hashed.
    async fn next_piece(&mut self) -> Result<Option<Uint8Array>, TransportError> {
        let Some(piece) = self.reader.next().await? else { return Ok(None) };
        let len = piece.length() as usize;
        self.progress.fetch_add(len as u64, Ordering::Relaxed);
        self.scratch.resize(len, 0);
        piece.copy_to(&mut self.scratch);
        self.verifier.update(&self.scratch).map_err(TransportError::Verify)?;
        Ok(Some(piece))
    }

    /// Reads the rest of the source and checks the whole blob.
    async fn verify(&mut self) -> Result<(), TransportError> {
        while self.next_piece().await?.is_some() {}
        self.verifier.clone().finish().map_err(TransportError::Verify)
    }

    /// Sends one request, with `blob` as its body, and returns the answer.
    async fn exchange(
        &self,
        request: UploadRequest,
        blob: Option<&Blob>,
    ) -> Result<http::Response<Vec<u8>>, TransportError> {
        let options = &self.transport.options;
        let wait = match request.kind {
            RequestKind::Patch | RequestKind::Monolithic | RequestKind::Commit => options.upload_timeout,
            RequestKind::Cancel => options.answer_timeout.min(CANCEL_WAIT),
            _ => options.answer_timeout,
        };
        let body = match blob {
            Some(blob) => fetch::Body::Blob(blob),
            None => fetch::Body::Empty,
        };
        let (parts, ()) = request.request.into_parts();
        let url = parts.uri.to_string();
        let answer =
            self.transport.http.fetch(DEST, parts.method.as_str(), &url, &parts.headers, body, wait).await?;
        answer.into_http(DEST).await
    }
}
