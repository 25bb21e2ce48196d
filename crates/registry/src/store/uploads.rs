//! Blob upload sessions.
//!
//! A session is a directory in the store: `data` (the bytes received) and `state` (the
//! committed length and the sha256 state over those bytes). Each PATCH streams its body
//! to `data` while hashing it, fsyncs, and only then records the new length and hash
//! state, so a session survives a restart and a crash mid-request only loses that
//! request: the next write cuts `data` back to the recorded length. Completion checks
//! the digest and renames `data` into the blob store, so a blob is visible only once it
//! is whole and verified.
//!
//! Nothing of a session lives in a process between requests: the POST, each PATCH and
//! the PUT of one upload may land on different replicas over the same storage, and each
//! goes on from the stored state. Memory holds only a lock per session with a request in
//! flight, so requests on one session in one process run one at a time. A sha512 commit
//! (or a session whose hash state is missing) re-hashes `data`, streaming it from
//! storage.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use ferry_core::digest::{Algorithm, Digest, Hasher, ResumableSha256};
use futures_util::StreamExt;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::layout::{self, Repo, UploadId};
use super::Store;
use crate::error::{ErrorCode, RegistryError, Result};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    /// Bytes received and made durable.
    offset: u64,
    /// Seconds since the Unix epoch.
    started_at: u64,
    /// [`ResumableSha256::save`] over the first `offset` bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
}

impl State {
    /// The stored hash state, if it covers exactly the committed bytes.
    fn hasher(&self) -> Option<ResumableSha256> {
        self.sha256.as_deref().and_then(ResumableSha256::resume).filter(|h| h.length() == self.offset)
    }
}

#[derive(Default)]
struct Session {
    state: Option<State>,
}

/// One lock per session with a request in flight in this process.
type Slots = Arc<std::sync::Mutex<HashMap<UploadId, Weak<Mutex<Session>>>>>;

/// Drops the entries whose last request ended, and counts the rest.
fn prune(slots: &mut HashMap<UploadId, Weak<Mutex<Session>>>) {
    slots.retain(|_, slot| slot.strong_count() > 0);
    metrics::gauge!("ferry_serve_upload_sessions").set(slots.len() as f64);
}

/// All upload sessions of a registry.
pub struct Uploads {
    store: Store,
    sessions: Slots,
    max_blob_bytes: u64,
}

/// Counts a request on a session out of [`Uploads::sessions`] when it ends.
struct InFlight(Slots);

impl Drop for InFlight {
    fn drop(&mut self) {
        prune(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// A session, locked for the duration of one request.
pub struct OpenUpload {
    pub repo: Repo,
    pub id: UploadId,
    session: OwnedMutexGuard<Session>,
    /// After `session`: fields drop in order, so the lock is released when this counts.
    _in_flight: InFlight,
}

impl std::fmt::Debug for OpenUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenUpload").field("repo", &self.repo).field("id", &self.id).finish_non_exhaustive()
    }
}

impl OpenUpload {
    /// Bytes received so far.
    pub fn offset(&self) -> u64 {
        self.session.state.as_ref().map_or(0, |s| s.offset)
    }

    /// The session's URL path.
    pub fn location(&self) -> String {
        format!("/v2/{}/blobs/uploads/{}", self.repo, self.id.as_str())
    }

    /// The spec's `Range` header value: "the inclusive range of bytes received", `0-N`.
    /// An empty session answers `0-0`, as distribution does.
    pub fn range(&self) -> String {
        format!("0-{}", self.offset().saturating_sub(1))
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn upload_unknown(id: &UploadId) -> RegistryError {
    RegistryError::new(ErrorCode::BlobUploadUnknown, "upload session not found")
        .with_detail(serde_json::json!({ "uuid": id.as_str() }))
}

impl Uploads {
    pub fn new(store: Store, max_blob_bytes: u64) -> Self {
        Uploads { store, sessions: Default::default(), max_blob_bytes }
    }

    /// The session's lock, shared by the requests on it in flight. Entries whose last
    /// request ended are dropped here.
    fn slot(&self, id: &UploadId) -> Arc<Mutex<Session>> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let slot = match sessions.get(id).and_then(Weak::upgrade) {
            Some(slot) => slot,
            None => {
                let slot = Arc::new(Mutex::new(Session::default()));
                sessions.insert(id.clone(), Arc::downgrade(&slot));
                slot
            }
        };
        prune(&mut sessions);
        slot
    }

    /// Starts a session.
    pub async fn create(&self, repo: &Repo) -> Result<OpenUpload> {
        let id = UploadId::generate();
        let state = State { offset: 0, started_at: now_secs(), sha256: Some(ResumableSha256::new().save()) };
        self.save(repo, &id, &state).await?;
        let mut session = self.slot(&id).lock_owned().await;
        session.state = Some(state);
        Ok(OpenUpload { repo: repo.clone(), id, session, _in_flight: InFlight(self.sessions.clone()) })
    }

    /// Locks an existing session, loading it from storage after a restart.
    pub async fn open(&self, repo: &Repo, id: &UploadId) -> Result<OpenUpload> {
        // Declared first, dropped last: an early return counts the request out too.
        let in_flight = InFlight(self.sessions.clone());
        let mut session = self.slot(id).lock_owned().await;
        let stored = self.store.driver().get_content(&layout::upload_state(repo, id)).await;
        match stored {
            Ok(raw) => {
                let state: State = serde_json::from_slice(&raw)
                    .map_err(|e| RegistryError::internal("reading upload state", e))?;
                session.state = Some(state);
            }
            Err(e) if e.is_not_found() => return Err(upload_unknown(id)),
            Err(e) => return Err(e.into()),
        }
        Ok(OpenUpload { repo: repo.clone(), id: id.clone(), session, _in_flight: in_flight })
    }

    async fn save(&self, repo: &Repo, id: &UploadId, state: &State) -> Result<()> {
        let json = serde_json::to_vec(state).unwrap_or_default();
        Ok(self.store.driver().put_content(&layout::upload_state(repo, id), &json).await?)
    }

    /// Appends a request body. With `range` (`Content-Range: <start>-<end>`), the chunk
    /// must start where the session ends, else 416; spec: "If a chunk is uploaded out of
    /// order, the registry MUST respond with a 416 Requested Range Not Satisfiable".
    pub async fn append(&self, up: &mut OpenUpload, body: Body, range: Option<(u64, u64)>) -> Result<u64> {
        let start = up.offset();
        // The chunk's length; `None` for a range no length can hold (refused as a whole).
        let announced = range.map(|(first, last)| last.checked_sub(first).and_then(|n| n.checked_add(1)));
        if let Some((first, last)) = range {
            if first != start || announced.flatten().is_none() {
                return Err(RegistryError::new(
                    ErrorCode::BlobUploadInvalid,
                    format!("chunk {first}-{last} does not continue the upload, which has {start} bytes"),
                )
                .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
                .with_header(http::header::LOCATION, up.location())
                .with_header(http::header::RANGE, up.range())
                .with_header(http::HeaderName::from_static("docker-upload-uuid"), up.id.as_str()));
            }
        }
        let path = layout::upload_data(&up.repo, &up.id);
        let mut writer = self.store.driver().writer(&path, start).await?;
        // The committed state stays as it was until the new bytes are durable.
        let mut hasher = up.session.state.as_ref().and_then(State::hasher);
        let mut stream = body.into_data_stream();
        let mut received = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    return Err(RegistryError::new(
                        ErrorCode::BlobUploadInvalid,
                        format!("request body ended early after {received} bytes: {e}"),
                    ));
                }
            };
            received += chunk.len() as u64;
            if self.max_blob_bytes > 0 && start + received > self.max_blob_bytes {
                return Err(RegistryError::new(
                    ErrorCode::SizeInvalid,
                    format!("blob larger than the registry's limit of {} bytes", self.max_blob_bytes),
                )
                .with_status(StatusCode::PAYLOAD_TOO_LARGE));
            }
            if let Some(h) = hasher.as_mut() {
                h.update(&chunk);
            }
            writer.write(&chunk).await?;
        }
        if let (Some((first, last)), Some(Some(length))) = (range, announced) {
            if received != length {
                return Err(RegistryError::new(
                    ErrorCode::BlobUploadInvalid,
                    format!("Content-Range {first}-{last} announces {length} bytes, the body had {received}"),
                ));
            }
        }
        let offset = writer.commit().await?;
        let started_at = up.session.state.as_ref().map_or_else(now_secs, |s| s.started_at);
        let sha256 = hasher.filter(|h| h.length() == offset).map(|h| h.save());
        let state = State { offset, started_at, sha256 };
        self.save(&up.repo, &up.id, &state).await?;
        up.session.state = Some(state);
        Ok(offset)
    }

    /// Verifies the received bytes against `digest` and moves them into the blob store.
    /// On a mismatch nothing is stored and the answer is 400 `DIGEST_INVALID`; the session
    /// stays as it was, so the client can retry the commit (with the right digest, or
    /// after checking its `Range`), or cancel it.
    pub async fn complete(&self, up: OpenUpload, digest: &Digest) -> Result<()> {
        let size = up.offset();
        let data = layout::upload_data(&up.repo, &up.id);
        let stored = up.session.state.as_ref().and_then(State::hasher);
        let actual = match stored {
            Some(h) if digest.algorithm() == Algorithm::Sha256 => h.finish(),
            _ => self.rehash(&data, size, digest.algorithm()).await?,
        };
        if actual != *digest {
            return Err(RegistryError::new(
                ErrorCode::DigestInvalid,
                format!(
                    "uploaded content has digest {actual}, not {digest}; nothing was stored, and the \
                     upload session stays open for another try"
                ),
            )
            .with_detail(
                serde_json::json!({ "expected": digest.to_string(), "actual": actual.to_string() }),
            ));
        }
        let blob = layout::blob_data(digest);
        let driver = self.store.driver();
        if self.store.blob_size_global(digest).await?.is_some() {
            // A copy is there already and stays as it is. Completed again, it is new
            // again: a garbage collection running meanwhile on any replica sees it within
            // its grace period, instead of an old unreferenced blob it may delete.
            driver.touch(&blob).await?;
        } else {
            match driver.stat(&data).await {
                Ok(_) => driver.rename(&data, &blob).await?,
                Err(e) if e.is_not_found() && size == 0 => driver.put_content(&blob, b"").await?,
                Err(e) => return Err(e.into()),
            }
        }
        self.store.link_blob(&up.repo, digest).await?;
        self.cancel(up).await
    }

    async fn rehash(&self, path: &str, size: u64, algorithm: Algorithm) -> Result<Digest> {
        let mut hasher = Hasher::new(algorithm);
        if size > 0 {
            let mut reader = self.store.driver().reader(path, 0).await?.take(size);
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = reader
                    .read(&mut buf)
                    .await
                    .map_err(|e| RegistryError::internal("re-hashing upload", e))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
        }
        Ok(hasher.finish())
    }

    /// Discards a session and its bytes.
    pub async fn cancel(&self, up: OpenUpload) -> Result<()> {
        let dir = layout::upload_dir(&up.repo, &up.id);
        match self.store.driver().delete(&dir).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::MemoryDriver;

    fn uploads() -> (Store, Uploads) {
        let store = Store::new(Arc::new(MemoryDriver::new()));
        (store.clone(), Uploads::new(store, 0))
    }

    #[tokio::test]
    async fn chunks_then_complete() {
        let (store, uploads) = uploads();
        let repo = Repo::parse("r").unwrap();
        let mut up = uploads.create(&repo).await.unwrap();
        uploads.append(&mut up, Body::from("hello "), Some((0, 5))).await.unwrap();
        let err = uploads.append(&mut up, Body::from("x"), Some((3, 3))).await.unwrap_err();
        assert_eq!(err.status, StatusCode::RANGE_NOT_SATISFIABLE);
        let id = up.id.clone();
        drop(up);
        // A fresh lock (as after a restart) sees the committed length.
        let mut up = uploads.open(&repo, &id).await.unwrap();
        assert_eq!(up.range(), "0-5");
        uploads.append(&mut up, Body::from("world"), None).await.unwrap();
        let digest = Digest::sha256(b"hello world");
        uploads.complete(up, &digest).await.unwrap();
        assert_eq!(store.blob_size(&repo, &digest).await.unwrap(), Some(11));
        assert_eq!(uploads.open(&repo, &id).await.unwrap_err().code, ErrorCode::BlobUploadUnknown);
    }

    #[tokio::test]
    async fn wrong_digest_stores_nothing() {
        let (store, uploads) = uploads();
        let repo = Repo::parse("r").unwrap();
        let mut up = uploads.create(&repo).await.unwrap();
        uploads.append(&mut up, Body::from("abc"), None).await.unwrap();
        let claimed = Digest::sha256(b"abd");
        let id = up.id.clone();
        let err = uploads.complete(up, &claimed).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::DigestInvalid);
        assert_eq!(store.blob_size_global(&claimed).await.unwrap(), None);
        assert_eq!(store.blob_size_global(&Digest::sha256(b"abc")).await.unwrap(), None);
        // The session stays, hash state included, and commits with the right digest.
        let up = uploads.open(&repo, &id).await.unwrap();
        assert_eq!(up.offset(), 3);
        uploads.complete(up, &Digest::sha256(b"abc")).await.unwrap();
        assert_eq!(store.blob_size(&repo, &Digest::sha256(b"abc")).await.unwrap(), Some(3));
    }

    #[tokio::test]
    async fn rehash_after_restart_and_sha512() {
        let (store, uploads) = uploads();
        let repo = Repo::parse("r").unwrap();
        let mut up = uploads.create(&repo).await.unwrap();
        uploads.append(&mut up, Body::from("abc"), None).await.unwrap();
        let id = up.id.clone();
        drop(up);
        // A new registry over the same storage has no hash state.
        let fresh = Uploads::new(store.clone(), 0);
        let up = fresh.open(&repo, &id).await.unwrap();
        let digest = Digest::of(Algorithm::Sha512, b"abc");
        fresh.complete(up, &digest).await.unwrap();
        assert_eq!(store.blob_size(&repo, &digest).await.unwrap(), Some(3));
    }

    /// Two registries over one storage, as replicas behind a load balancer: the POST, the
    /// PATCHes and the PUT alternate, and neither keeps anything of the session between
    /// requests.
    #[tokio::test]
    async fn requests_of_one_upload_alternate_replicas() {
        let (store, a) = uploads();
        let b = Uploads::new(store.clone(), 0);
        let repo = Repo::parse("r").unwrap();
        let up = a.create(&repo).await.unwrap();
        let id = up.id.clone();
        drop(up);
        for (i, (replica, chunk)) in [(&b, "one "), (&a, "two "), (&b, "three")].into_iter().enumerate() {
            let mut up = replica.open(&repo, &id).await.unwrap();
            replica.append(&mut up, Body::from(chunk), None).await.unwrap();
            drop(up);
            for r in [&a, &b] {
                assert!(r.sessions.lock().unwrap().is_empty(), "chunk {i}");
            }
        }
        let raw = store.driver().get_content(&layout::upload_state(&repo, &id)).await.unwrap();
        let state: State = serde_json::from_slice(&raw).unwrap();
        assert_eq!(state.hasher().map(|h| h.length()), Some(13), "the hash state is stored with the offset");
        let up = a.open(&repo, &id).await.unwrap();
        a.complete(up, &Digest::sha256(b"one two three")).await.unwrap();
        assert_eq!(store.blob_size(&repo, &Digest::sha256(b"one two three")).await.unwrap(), Some(13));
    }

    #[tokio::test]
    async fn another_registry_continues_a_session() {
        // Two registries (replicas) over one storage take turns with one session's
        // requests: each goes on from the state the other stored.
        let (store, a) = uploads();
        let b = Uploads::new(store.clone(), 0);
        let repo = Repo::parse("r").unwrap();
        let mut up = a.create(&repo).await.unwrap();
        a.append(&mut up, Body::from("one "), Some((0, 3))).await.unwrap();
        let id = up.id.clone();
        drop(up);
        let mut up = b.open(&repo, &id).await.unwrap();
        assert_eq!(up.range(), "0-3");
        b.append(&mut up, Body::from("two "), Some((4, 7))).await.unwrap();
        drop(up);
        // A received 4 bytes itself; the session has 8 by now.
        let mut up = a.open(&repo, &id).await.unwrap();
        let err = a.append(&mut up, Body::from("x"), Some((4, 4))).await.unwrap_err();
        assert_eq!(err.status, StatusCode::RANGE_NOT_SATISFIABLE);
        a.append(&mut up, Body::from("three"), Some((8, 12))).await.unwrap();
        let wrong = Digest::sha256(b"three");
        assert_eq!(a.complete(up, &wrong).await.unwrap_err().code, ErrorCode::DigestInvalid);
        let up = b.open(&repo, &id).await.unwrap();
        let digest = Digest::sha256(b"one two three");
        b.complete(up, &digest).await.unwrap();
        assert_eq!(store.blob_size(&repo, &digest).await.unwrap(), Some(13));
    }

    #[tokio::test]
    async fn size_limit() {
        let store = Store::new(Arc::new(MemoryDriver::new()));
        let uploads = Uploads::new(store, 4);
        let repo = Repo::parse("r").unwrap();
        let mut up = uploads.create(&repo).await.unwrap();
        let err = uploads.append(&mut up, Body::from("12345"), None).await.unwrap_err();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(up.offset(), 0);
    }
}
