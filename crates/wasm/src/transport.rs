//! [`BrowserTransport`]: the core's [`Transport`] over the global `fetch`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use ferry_core::transport::{
    Clock, ProgressCounter, Side, Transfer, TransferReport, Transport, TransportError,
};
use http::Method;

use crate::fetch::{Body, Http};

const MIB: usize = 1024 * 1024;

/// The size of one `PATCH`: the most of a blob a transfer holds at once. A blob smaller
/// than this goes up in one `PUT`.
pub const DEFAULT_CHUNK_SIZE: usize = 8 * MIB;

/// A registry's `OCI-Chunk-Min-Length` is honoured up to this size (or the chunk size,
/// if larger): a chunk is held in memory while it goes up.
pub(crate) const MAX_HONOURED_MIN_CHUNK: u64 = 32 * MIB as u64;

/// Cancelling a session is a courtesy; it does not get to hold up the error it follows.
pub(crate) const CANCEL_WAIT: Duration = Duration::from_secs(10);

/// How a [`BrowserTransport`] talks to registries.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrowserOptions {
    /// Bytes per upload chunk, and the most of a blob held in memory per transfer.
    pub chunk_size: usize,
    /// Longest wait for an answer's head, and longest silence inside a body.
    pub answer_timeout: Duration,
    /// Longest wait for the answer to one `PATCH` or `PUT`, body included: a browser
    /// cannot watch an upload's progress, so this covers sending the chunk too.
    pub upload_timeout: Duration,
    /// The largest answer a small request accepts (manifests, tag lists, tokens).
    pub max_answer_bytes: usize,
}

impl Default for BrowserOptions {
    fn default() -> Self {
        BrowserOptions {
            chunk_size: DEFAULT_CHUNK_SIZE,
            answer_timeout: Duration::from_secs(60),
            upload_timeout: Duration::from_secs(600),
            max_answer_bytes: 8 * MIB,
        }
    }
}

impl BrowserOptions {
    /// These options with `chunk_size` bytes per `PATCH` (at least 1).
    pub fn with_chunk_size(mut self, chunk_size: usize) -> Self {
        self.chunk_size = chunk_size.max(1);
        self
    }
}

/// The browser transport: small requests whole, blobs from a `ReadableStream` through the
/// core's `Verifier` into chunked uploads. One per job; it is not `Send`.
pub struct BrowserTransport {
    pub(crate) http: Http,
    pub(crate) options: BrowserOptions,
}

impl BrowserTransport {
    pub fn new(options: BrowserOptions) -> Self {
        Self::with_access(options, Vec::new(), Vec::new())
    }

    /// A transport for a job on the registries at `bases`, adding the caller's bearer
    /// tokens (`(URL prefix, Authorization value)`) to requests that carry none.
    pub(crate) fn with_access(
        options: BrowserOptions,
        bases: Vec<String>,
        tokens: Vec<(String, String)>,
    ) -> Self {
        BrowserTransport { http: Http::new(bases, tokens), options }
    }

    /// A registry that `fetch` could not reach (network error or CORS block), and why.
    pub(crate) fn unreachable(&self) -> Option<(String, String)> {
        self.http.unreachable()
    }
}

#[async_trait::async_trait(?Send)]
impl Transport for BrowserTransport {
    async fn send(&self, request: http::Request<Vec<u8>>) -> Result<http::Response<Vec<u8>>, TransportError> {
        let side = Side::Registry;
        let (parts, body) = request.into_parts();
        let url = parts.uri.to_string();
        let body = if body.is_empty() { Body::Empty } else { Body::Bytes(&body) };
        let wait = self.options.answer_timeout;
        let answer = self.http.fetch(side, parts.method.as_str(), &url, &parts.headers, body, wait).await?;
        let head = answer.head();
        let body = if parts.method == Method::HEAD {
            Vec::new()
        } else {
            answer.read_all(side, self.options.max_answer_bytes, wait).await?
        };
        head.body(body)
            .map_err(|e| TransportError::Connection { side, message: format!("{}: {e}", answer.host) })
    }

    async fn transfer(
        &self,
        transfer: Transfer,
        progress: ProgressCounter,
        clock: &dyn Clock,
    ) -> Result<TransferReport, TransportError> {
        crate::upload::run(self, &transfer, &progress, clock).await?;
        Ok(TransferReport { bytes: progress.load(Ordering::Relaxed) })
    }
}
