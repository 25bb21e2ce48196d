//! Body wrappers: a request body that fails when the client stops sending it, and a
//! response body that tells the connection when the answer is done.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::Sleep;

use super::activity::InFlight;

/// The request body stopped arriving.
#[derive(Debug)]
pub(crate) struct BodyStalled(pub Duration);

impl std::fmt::Display for BodyStalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no byte of the request body arrived for {:.1} s (http.body_timeout_secs); \
             resume the upload from the range the registry reports",
            self.0.as_secs_f64()
        )
    }
}

impl std::error::Error for BodyStalled {}

/// A request body that errs when no frame arrives for `timeout` while it is being read.
/// The clock runs only while the handler waits for the client, so a handler that is busy
/// elsewhere (a lock, a disk) never makes a client time out.
pub(crate) struct ProgressBody<B> {
    inner: B,
    timeout: Option<Duration>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<B> ProgressBody<B> {
    pub(crate) fn new(inner: B, timeout: Option<Duration>) -> Self {
        ProgressBody { inner, timeout, sleep: None }
    }
}

impl<B> HttpBody for ProgressBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.sleep = None;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let Some(timeout) = this.timeout else { return Poll::Pending };
                let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.sleep = None;
                        Poll::Ready(Some(Err(Box::new(BodyStalled(timeout)))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that ends its request when it ends or is dropped.
pub(crate) struct TrackedBody {
    inner: Body,
    in_flight: Option<InFlight>,
}

impl TrackedBody {
    pub(crate) fn new(inner: Body, in_flight: InFlight) -> Self {
        TrackedBody { inner, in_flight: Some(in_flight) }
    }

    fn finish(&mut self) {
        self.in_flight = None;
    }
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.finish();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
