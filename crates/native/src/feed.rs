//! The source of a chunked upload, lent to one `PATCH` body at a time: each body takes
//! the source's next bytes as the connection asks for them, hashing every byte once, in
//! order, and never gathering a chunk in memory.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use ferry_core::digest::Verifier;
use ferry_core::transport::{Side, TransportError};
use futures_util::stream::{Stream, StreamExt as _};

use crate::body::{Aborted, Activity};
use crate::source::SourceStream;

/// The source of a chunked upload and where the upload stands, lent to one chunk's body
/// at a time.
pub(crate) struct Feed {
    pub(crate) source: SourceStream,
    pub(crate) cursor: Cursor,
}

impl Feed {
    /// Reads the source to its end once every chunk is up, and checks the blob: a source
    /// with bytes beyond the blob's size fails verification. The feed stays usable, so a
    /// later resume can still re-read from a checkpoint.
    pub(crate) async fn verify(&mut self) -> Result<(), TransportError> {
        let verify = TransportError::Verify;
        let cursor = &mut self.cursor;
        if let Some(piece) = cursor.carry.take() {
            cursor.live.update(&piece).map_err(verify)?;
            cursor.read += piece.len() as u64;
        }
        while let Some(piece) = self.source.next().await {
            let piece = piece?;
            cursor.live.update(&piece).map_err(verify)?;
            cursor.read += piece.len() as u64;
        }
        cursor.live.clone().finish().map_err(verify)
    }
}

/// Where a chunked upload stands.
pub(crate) struct Cursor {
    /// The verifier, having seen bytes `0..read`.
    pub(crate) live: Verifier,
    /// Offset of the next byte taken from the source.
    pub(crate) read: u64,
    /// Bytes the registry holds; `read` catches up with it after a resume.
    pub(crate) sent: u64,
    /// The rest of a source piece that did not fit into the last chunk.
    pub(crate) carry: Option<Bytes>,
}

impl Cursor {
    /// The next piece to send: at most `max` bytes from `sent` on, verified first. Bytes
    /// below `sent` (re-read after a resume) are hashed, not sent. `None` at the end of
    /// the source.
    pub(crate) fn poll_piece(
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
pub(crate) struct ChunkBody {
    pub(crate) feed: Arc<Mutex<Option<Feed>>>,
    pub(crate) left: u64,
    /// Why the body failed, for the upload to report.
    pub(crate) failure: Arc<Mutex<Option<TransportError>>>,
    pub(crate) activity: Arc<Activity>,
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
