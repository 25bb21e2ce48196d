//! The source side of a transfer: the blob `GET`, as a stream of chunks.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use ferry_core::digest::{Digest, VerifyError};
use ferry_core::transport::{ProgressCounter, Side, Transfer, TransportError};
use futures_util::stream::{BoxStream, Stream, StreamExt as _};
use http::header::{CONTENT_RANGE, RANGE};
use http::StatusCode;

use crate::client::{expect_success, parse_url, Client};
use crate::errors::{from_reqwest, host_of, timeout};
use crate::tee::Piece;
use tokio::sync::mpsc;

/// The blob's bytes from a given offset on. Counts every byte read into the transfer's
/// progress, drops the prefix itself when the source ignored `Range`, and fails when the
/// source stays silent longer than the read timeout. A shared stream takes its pieces
/// from a read several transfers share (see `tee`), whose pump watches the source.
pub(crate) struct SourceStream {
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    /// The pieces of a shared read, and its first piece, already taken.
    shared: Option<(mpsc::Receiver<Piece>, Option<Bytes>)>,
    host: String,
    /// Bytes still to drop: the source answered `200` to a `Range` request.
    skip: u64,
    idle: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
    /// Whether the last poll of `body` found nothing, so `timer` is running.
    waiting: bool,
    progress: ProgressCounter,
    ended: bool,
}

/// `GET`s the blob from `offset` on (with `Range: bytes=<offset>-` unless it is 0).
pub(crate) async fn open(
    client: &Client,
    transfer: &Transfer,
    offset: u64,
    progress: &ProgressCounter,
) -> Result<SourceStream, TransportError> {
    open_get(client, &transfer.source, &transfer.digest, transfer.size, offset, progress).await
}

/// `GET`s the blob `digest` of `size` bytes with `source` from `offset` on.
pub(crate) async fn open_get(
    client: &Client,
    source: &http::Request<()>,
    digest: &Digest,
    size: u64,
    offset: u64,
    progress: &ProgressCounter,
) -> Result<SourceStream, TransportError> {
    let side = Side::Source;
    let url = parse_url(side, &source.uri().to_string())?;
    let mut headers = source.headers().clone();
    if offset > 0 {
        headers.insert(RANGE, format!("bytes={offset}-").parse().expect("a number is a header value"));
    }
    let wait = client.options().read_timeout;
    let (answer, url) = client.fetch(side, source.method().clone(), url, headers, None, wait).await?;
    let answer = expect_success(side, answer, &url).await?;
    let host = host_of(&url);
    let skip = match answer.status() {
        StatusCode::PARTIAL_CONTENT => {
            let start = answer
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().strip_prefix("bytes "))
                .and_then(|v| v.split('-').next())
                .and_then(|v| v.parse::<u64>().ok());
            if start != Some(offset) {
                return Err(TransportError::Status {
                    side,
                    status: 206,
                    retry_after: None,
                    detail: Some(format!("{host} answered a range that does not start at byte {offset}")),
                });
            }
            0
        }
        _ => offset,
    };
    // A whole answer of another length is a lie, not a cut (a body that breaks off fails
    // differently, and transiently): refuse it before reading a byte.
    if let Some(length) = answer.content_length() {
        let announced = length + if answer.status() == StatusCode::PARTIAL_CONTENT { offset } else { 0 };
        if announced != size {
            return Err(TransportError::Verify(VerifyError::WrongLength {
                digest: digest.clone(),
                expected: size,
                announced,
            }));
        }
    }
    let idle = client.options().read_timeout;
    Ok(SourceStream {
        body: answer.bytes_stream().boxed(),
        shared: None,
        host,
        skip,
        idle,
        timer: Box::pin(tokio::time::sleep(idle)),
        waiting: false,
        progress: progress.clone(),
        ended: false,
    })
}

/// The blob from byte 0, taken from a shared read: its first piece is awaited here, so a
/// source that cannot be read fails the transfer before an upload session opens.
pub(crate) async fn shared(
    mut pieces: mpsc::Receiver<Piece>,
    transfer: &Transfer,
    progress: &ProgressCounter,
) -> Result<SourceStream, TransportError> {
    let first = pieces.recv().await.transpose()?;
    let host = parse_url(Side::Source, &transfer.source.uri().to_string()).map(|u| host_of(&u))?;
    Ok(SourceStream {
        body: futures_util::stream::empty().boxed(),
        ended: first.is_none(),
        shared: Some((pieces, first)),
        host,
        skip: 0,
        idle: Duration::ZERO,
        timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
        waiting: false,
        progress: progress.clone(),
    })
}

impl SourceStream {
    /// Whether the bytes come from a read shared with other transfers.
    pub(crate) fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    fn poll_shared(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, TransportError>>> {
        let Some((pieces, first)) = self.shared.as_mut() else { return Poll::Ready(None) };
        let piece = match first.take() {
            Some(piece) => Some(Ok(piece)),
            None => ready!(pieces.poll_recv(cx)),
        };
        match &piece {
            Some(Ok(bytes)) => {
                self.progress.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            }
            Some(Err(_)) | None => self.ended = true,
        }
        Poll::Ready(piece)
    }
}

impl Stream for SourceStream {
    type Item = Result<Bytes, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.shared.is_some() {
            if this.ended {
                return Poll::Ready(None);
            }
            return this.poll_shared(cx);
        }
        loop {
            if this.ended {
                return Poll::Ready(None);
            }
            let next = this.body.poll_next_unpin(cx);
            if next.is_ready() {
                this.waiting = false;
            }
            match next {
                Poll::Pending => {
                    // The silence is timed from the first poll that found nothing: the
                    // stream may legitimately sit unpolled while a chunk goes up.
                    if !this.waiting {
                        this.waiting = true;
                        this.timer.as_mut().reset(tokio::time::Instant::now() + this.idle);
                    }
                    if this.timer.as_mut().poll(cx).is_ready() {
                        this.ended = true;
                        return Poll::Ready(Some(Err(timeout(
                            Side::Source,
                            &this.host,
                            "sent nothing",
                            this.idle,
                        ))));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(None) => {
                    this.ended = true;
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Err(e))) => {
                    this.ended = true;
                    let mut error = from_reqwest(Side::Source, &this.host, e);
                    if let TransportError::Connection { message, .. } = &mut error {
                        message.push_str(" (the blob's body was cut short)");
                    }
                    return Poll::Ready(Some(Err(error)));
                }
                Poll::Ready(Some(Ok(mut chunk))) => {
                    this.progress.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    if this.skip > 0 {
                        let drop = this.skip.min(chunk.len() as u64);
                        this.skip -= drop;
                        chunk = chunk.slice(drop as usize..);
                    }
                    if !chunk.is_empty() {
                        return Poll::Ready(Some(Ok(chunk)));
                    }
                }
            }
        }
    }
}
