//! [`NativeTransport`]: the core's [`Transport`] over reqwest and tokio.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use ferry_core::digest::Digest;
use ferry_core::transport::{
    Clock, ProgressCounter, Side, Transfer, TransferReport, Transport, TransportError,
};
use futures_util::stream::{BoxStream, StreamExt as _};
use http::Method;

use crate::client::{parse_url, Client};
use crate::errors::host_of;
use crate::options::{BuildError, NativeOptions};
use crate::tee::Tees;

/// The native transport: streams blobs from source to destination with constant memory,
/// follows redirects itself so that `Authorization` never reaches another host, and
/// runs the core's upload machine, which resumes chunked uploads that break.
///
/// Cheap to share by reference across all of a job's actions; reqwest pools connections
/// per host.
#[derive(Debug, Clone)]
pub struct NativeTransport {
    client: Client,
    /// Reads shared by the members of a share group (one read, many writes).
    tees: Arc<Tees>,
    /// Told of upload sessions as they open and finish.
    journal: Option<Arc<dyn UploadJournal>>,
}

/// Keeps upload sessions beyond the process (`ferry sync --state`): a run killed mid-blob
/// leaves its session at the registry, and the next run goes on with it (see
/// [`ferry_core::resume`]). Called from the transfers' tasks; keep it quick.
pub trait UploadJournal: Send + Sync + std::fmt::Debug {
    /// `transfer`'s upload session is at `location` now (it opened, or moved on).
    fn session(&self, transfer: &Transfer, location: &str);
    /// `transfer`'s blob is committed: its session is gone.
    fn committed(&self, transfer: &Transfer);
}

impl NativeTransport {
    /// A transport with [`NativeOptions::default`].
    pub fn new() -> Result<Self, BuildError> {
        Self::with_options(NativeOptions::default())
    }

    pub fn with_options(options: NativeOptions) -> Result<Self, BuildError> {
        Ok(NativeTransport { client: Client::new(options)?, tees: Arc::default(), journal: None })
    }

    /// This transport, telling `journal` of every upload session.
    pub fn with_journal(mut self, journal: Arc<dyn UploadJournal>) -> Self {
        self.journal = Some(journal);
        self
    }

    pub fn options(&self) -> &NativeOptions {
        self.client.options()
    }

    /// Opens the blob `GET` that [`ferry_core::fetch::Fetched::BlobSource`] hands out, for
    /// a driver that streams the bytes somewhere other than an upload (the pull-through
    /// cache). An answer whose length is not `size` is refused before a byte is read;
    /// the caller verifies the digest as the chunks pass. Redirects are followed here, and
    /// `Authorization` never goes to another host; a source silent for longer than the
    /// read timeout fails the stream.
    pub async fn open_blob(
        &self,
        get: &http::Request<()>,
        digest: &Digest,
        size: u64,
    ) -> Result<BoxStream<'static, Result<Bytes, TransportError>>, TransportError> {
        let progress = ProgressCounter::default();
        let stream = crate::source::open_get(&self.client, get, digest, size, 0, &progress).await?;
        Ok(stream.boxed())
    }
}

#[async_trait::async_trait]
impl Transport for NativeTransport {
    async fn send(&self, request: http::Request<Vec<u8>>) -> Result<http::Response<Vec<u8>>, TransportError> {
        let side = Side::Registry;
        let (parts, body) = request.into_parts();
        let url = parse_url(side, &parts.uri.to_string())?;
        let bodyless = body.is_empty() && matches!(parts.method, Method::GET | Method::HEAD);
        let body = (!bodyless).then(|| Bytes::from(body));
        let wait = self.options().read_timeout;
        let (answer, last_url) =
            self.client.fetch(side, parts.method, url, parts.headers, body, wait).await?;
        let host = host_of(&last_url);
        let mut response = http::Response::builder().status(answer.status()).version(answer.version());
        if let Some(headers) = response.headers_mut() {
            *headers = answer.headers().clone();
        }
        let body = self.client.read_small(side, &host, answer).await?;
        response.body(body).map_err(|e| TransportError::Connection { side, message: format!("{host}: {e}") })
    }

    async fn transfer(
        &self,
        transfer: Transfer,
        progress: ProgressCounter,
        clock: &dyn Clock,
    ) -> Result<TransferReport, TransportError> {
        let journal = self.journal.as_deref();
        crate::upload::run(&self.client, &self.tees, journal, &transfer, &progress, clock).await?;
        Ok(TransferReport { bytes: progress.load(Ordering::Relaxed) })
    }
}
