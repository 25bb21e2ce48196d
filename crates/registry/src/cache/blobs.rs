//! Blobs through the cache: one upstream fetch per missing blob, however many clients
//! ask for it, streamed to all of them while it is written.
//!
//! The first request for a missing blob starts a fetch that runs on its own (a client
//! that hangs up does not stop it): it streams the upstream's bytes through ferry-core's
//! `Verifier` into a staging file, and only once the digest and size check out moves
//! them into storage. Every client (the first included) follows the staging file as it
//! grows, with one read buffer each, so memory does not grow with the blob or with the
//! number of clients. The last byte is held back until the digest is verified: a blob
//! that does not match is never stored, and its clients see their answer cut short.

use std::collections::HashMap;
use std::io::SeekFrom;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use ferry_core::digest::{Digest, Verifier};
use ferry_core::error::{Error, ErrorKind};
use ferry_core::fetch::{Fetched, Upstream, Want};
use futures_util::StreamExt;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::watch;

use super::{upstream_error, Source};
use crate::driver::BoxReader;
use crate::error::{ErrorCode, RegistryError, Result};
use crate::state::AppState;
use crate::store::layout::Repo;

/// The header that names a blob's digest.
const DIGEST_HEADER: http::HeaderName = http::HeaderName::from_static("docker-content-digest");

/// One read buffer per client.
const CHUNK: usize = 64 * 1024;

/// Where a blob's fetch is.
#[derive(Debug, Clone)]
enum Progress {
    /// Asking the upstream.
    Starting,
    /// `written` of `size` bytes are in the staging file.
    Streaming {
        size: u64,
        written: u64,
    },
    /// Verified and in storage.
    Stored,
    Failed(Error),
}

/// One blob being fetched.
struct BlobFetch {
    staging: PathBuf,
    progress: watch::Receiver<Progress>,
}

/// The blobs being fetched, by digest.
#[derive(Default)]
pub struct Fetches {
    running: Mutex<HashMap<Digest, Arc<BlobFetch>>>,
}

/// Answers a `GET` or `HEAD` of a blob that storage does not hold, from its fetch;
/// `None` when storage holds it after all (the handler serves it from there).
pub async fn serve(
    state: &Arc<AppState>,
    source: &Source<'_>,
    repo: &Repo,
    digest: &Digest,
    head: bool,
) -> Result<Option<Response>> {
    if state.store.blob_size(repo, digest).await?.is_some() {
        return Ok(None);
    }
    if state.store.blob_size_global(digest).await?.is_some() {
        state.store.link_blob(repo, digest).await?;
        return Ok(None);
    }
    let fetch = join(state, source, repo, digest)?;
    let mut progress = fetch.progress.clone();
    let size = loop {
        let now = progress.borrow_and_update().clone();
        match now {
            Progress::Starting => {}
            Progress::Streaming { size, .. } => break size,
            Progress::Stored => return Ok(None),
            Progress::Failed(e) => {
                return Err(upstream_error(&e, ErrorCode::BlobUnknown, &digest.to_string()))
            }
        }
        if progress.changed().await.is_err() {
            return Err(RegistryError::internal("proxy", "the blob's fetch ended without a word"));
        }
    };
    let body = if head || size == 0 {
        Body::empty()
    } else {
        Body::from_stream(follow(state.clone(), fetch, digest.clone()))
    };
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, http::HeaderValue::from_static("application/octet-stream"));
    h.insert(CONTENT_LENGTH, size.into());
    if let Ok(value) = digest.to_string().parse() {
        h.insert(DIGEST_HEADER, value);
    }
    Ok(Some(response))
}

/// The running fetch of `digest`, or a new one.
fn join(state: &Arc<AppState>, source: &Source<'_>, repo: &Repo, digest: &Digest) -> Result<Arc<BlobFetch>> {
    let Some(cache) = state.cache.as_ref() else {
        return Err(RegistryError::internal("proxy", "no cache is configured"));
    };
    let mut running =
        cache.blobs.running.lock().map_err(|_| RegistryError::internal("proxy", "a fetch panicked"))?;
    // A fetch whose task is gone (it panicked) is replaced, not joined.
    if let Some(fetch) = running.get(digest).filter(|f| f.progress.has_changed().is_ok()) {
        return Ok(fetch.clone());
    }
    let dir = std::env::temp_dir().join("ferry-cache");
    let staging = dir.join(format!("{}-{}", digest.hex(), crate::random::random_hex(8)));
    let (tx, rx) = watch::channel(Progress::Starting);
    let fetch = Arc::new(BlobFetch { staging: staging.clone(), progress: rx });
    running.insert(digest.clone(), fetch.clone());
    let job = Job {
        state: state.clone(),
        upstream: source.upstream.clone(),
        repository: source.repository.clone(),
        repo: repo.clone(),
        digest: digest.clone(),
        staging,
    };
    tokio::spawn(async move {
        let outcome = job.run(&tx).await;
        if let Some(cache) = job.state.cache.as_ref() {
            if let Ok(mut running) = cache.blobs.running.lock() {
                running.remove(&job.digest);
            }
        }
        match outcome {
            Ok(()) => tx.send_replace(Progress::Stored),
            Err(e) => {
                tracing::warn!(digest = %job.digest, "proxy fetch failed: {e}");
                tx.send_replace(Progress::Failed(e))
            }
        };
        let _ = tokio::fs::remove_file(&job.staging).await;
    });
    Ok(fetch)
}

/// One blob's fetch, run on its own task.
struct Job {
    state: Arc<AppState>,
    upstream: Upstream,
    repository: String,
    repo: Repo,
    digest: Digest,
    staging: PathBuf,
}

impl Job {
    async fn run(&self, tx: &watch::Sender<Progress>) -> Result<(), Error> {
        let cache =
            self.state.cache.as_ref().ok_or_else(|| Error::new(ErrorKind::Unavailable, "no cache"))?;
        let source =
            cache.fetch_from(&self.upstream, &self.repository, Want::Blob(self.digest.clone())).await?;
        let Fetched::BlobSource { get, size } = source else {
            return Err(Error::new(ErrorKind::InvalidAnswer, "the upstream's answer was not a blob"));
        };
        let mut stream = cache
            .transport
            .open_blob(&get, &self.digest, size)
            .await
            .map_err(|e| Error::new(ErrorKind::of_transport(&e), e.to_string()))?;
        let local = |e: std::io::Error| {
            Error::new(ErrorKind::Unavailable, format!("staging {}: {e}", self.staging.display()))
        };
        if let Some(dir) = self.staging.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(local)?;
        }
        let mut file = tokio::fs::File::create(&self.staging).await.map_err(local)?;
        tx.send_replace(Progress::Streaming { size, written: 0 });
        let mut verifier = Verifier::new(self.digest.clone(), size);
        let mut written = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| Error::new(ErrorKind::of_transport(&e), e.to_string()))?;
            verifier.update(&chunk).map_err(|e| Error::new(ErrorKind::Integrity, e.to_string()))?;
            file.write_all(&chunk).await.map_err(local)?;
            // tokio's file writes on a blocking thread: flushing waits until the bytes are in
            // the file, where the clients read them (no fsync: the staging file is temporary).
            file.flush().await.map_err(local)?;
            written += chunk.len() as u64;
            tx.send_replace(Progress::Streaming { size, written });
        }
        verifier.finish().map_err(|e| Error::new(ErrorKind::Integrity, e.to_string()))?;
        drop(file);
        self.store().await.map_err(|e| {
            Error::new(ErrorKind::Unavailable, format!("storing {}: {}", self.digest, e.message()))
        })
    }

    /// Moves the verified staging file into storage, through an upload that checks the
    /// digest once more.
    async fn store(&self) -> Result<()> {
        let file = tokio::fs::File::open(&self.staging)
            .await
            .map_err(|e| RegistryError::internal("reading the staging file", e))?;
        let uploads = &self.state.uploads;
        let mut upload = uploads.create(&self.repo).await?;
        let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, CHUNK));
        uploads.append(&mut upload, body, None).await?;
        uploads.complete(upload, &self.digest).await
    }
}

/// Where a client's body reads from.
enum Phase {
    /// The staging file, opened once there is something to read.
    Staging(Option<tokio::fs::File>),
    /// Storage, once the blob is there.
    Stored(BoxReader),
    Done,
}

/// One client's body: the staging file as it grows, then storage; the last byte only
/// once the blob is verified.
struct Follower {
    state: Arc<AppState>,
    fetch: Arc<BlobFetch>,
    digest: Digest,
    progress: watch::Receiver<Progress>,
    phase: Phase,
    /// Bytes sent so far.
    at: u64,
    buf: Vec<u8>,
}

impl Follower {
    /// The next chunk, an error that ends the body, or `None` at its end.
    async fn next(&mut self) -> Option<std::io::Result<Bytes>> {
        let item = self.read().await;
        match &item {
            Some(Ok(chunk)) => self.at += chunk.len() as u64,
            Some(Err(_)) => self.phase = Phase::Done,
            None => {}
        }
        item
    }

    async fn read(&mut self) -> Option<std::io::Result<Bytes>> {
        loop {
            match &mut self.phase {
                Phase::Done => return None,
                Phase::Stored(reader) => {
                    return match reader.read(&mut self.buf).await {
                        Ok(0) => None,
                        Ok(n) => Some(Ok(Bytes::copy_from_slice(&self.buf[..n]))),
                        Err(e) => Some(Err(e)),
                    };
                }
                Phase::Staging(file) => {
                    let now = self.progress.borrow_and_update().clone();
                    let readable = match now {
                        Progress::Starting => 0,
                        // The last byte waits for the verdict.
                        Progress::Streaming { size, written } => written.min(size.saturating_sub(1)),
                        Progress::Stored => match self.state.store.open_blob(&self.digest, self.at).await {
                            Ok(reader) => {
                                self.phase = Phase::Stored(reader);
                                continue;
                            }
                            Err(e) => return Some(Err(std::io::Error::other(e.to_string()))),
                        },
                        Progress::Failed(e) => {
                            return Some(Err(std::io::Error::other(format!(
                                "the upstream fetch failed: {e}"
                            ))))
                        }
                    };
                    if self.at < readable {
                        if file.is_none() {
                            match open_at(&self.fetch.staging, self.at).await {
                                Ok(opened) => *file = Some(opened),
                                Err(e) => return Some(Err(e)),
                            }
                        }
                        let Some(f) = file.as_mut() else { continue };
                        let want = ((readable - self.at) as usize).min(CHUNK);
                        return match f.read(&mut self.buf[..want]).await {
                            Ok(0) => Some(Err(std::io::Error::other("the staging file ended early"))),
                            Ok(n) => Some(Ok(Bytes::copy_from_slice(&self.buf[..n]))),
                            Err(e) => Some(Err(e)),
                        };
                    }
                    if self.progress.changed().await.is_err()
                        && !matches!(*self.progress.borrow(), Progress::Stored | Progress::Failed(_))
                    {
                        return Some(Err(std::io::Error::other("the blob's fetch ended without a word")));
                    }
                }
            }
        }
    }
}

/// A client's body, following `fetch`.
fn follow(
    state: Arc<AppState>,
    fetch: Arc<BlobFetch>,
    digest: Digest,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> {
    let progress = fetch.progress.clone();
    let follower = Follower {
        state,
        fetch,
        digest,
        progress,
        phase: Phase::Staging(None),
        at: 0,
        buf: vec![0u8; CHUNK],
    };
    futures_util::stream::unfold(follower, |mut follower| async move {
        follower.next().await.map(|item| (item, follower))
    })
}

async fn open_at(path: &std::path::Path, at: u64) -> std::io::Result<tokio::fs::File> {
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(SeekFrom::Start(at)).await?;
    Ok(file)
}
