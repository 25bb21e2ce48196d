//! The object-store drivers (`s3`, `gcs`, `azure`): one driver over the `object_store`
//! crate's [`ObjectStore`] trait, which each store's module only configures and builds.
//!
//! Each driver path is one object key under the configured prefix. Two things object
//! stores lack are built from what they have:
//!
//! - **Appending.** An upload's `data` grows PATCH by PATCH, and objects are written
//!   whole. Each [`StorageDriver::writer`] writes one *segment* object,
//!   `<key>!segments/<offset, 20 digits>`, holding the bytes from that offset on. A segment
//!   goes up as a single PUT when it fits one `chunk_size` buffer, else as a multipart upload
//!   (S3 and GCS multipart parts, Azure blocks) of `chunk_size` parts, two in flight, so
//!   memory stays bounded whatever the size. Either way the store makes it visible only
//!   once complete: a request cut short leaves no segment. `keep` drops segments from
//!   `keep` on (and cuts one that straddles it). Reading, `stat` and `list` see the
//!   segments as one file.
//! - **Renaming.** A plain object or a single segment is copied server side, then deleted.
//!   Several segments are streamed, in order, into one multipart upload of the target,
//!   which the store makes visible only when the upload completes: a blob key never shows
//!   a partial object. The registry renames only verified uploads into the blob store.
//!   Azure's Copy Blob may finish asynchronously ("the copy operation might complete
//!   asynchronously", its reference says, leaving the target pending), and object_store
//!   does not wait for it, so on Azure every rename streams into a block list instead.
//!
//! Directories are key prefixes: `list` maps the store's common prefixes to names,
//! `delete` of a directory deletes every key under it. The `!` that marks segments (one of
//! the characters AWS lists as safe in keys, and plain in GCS object and Azure blob names)
//! never occurs in a registry path: repository names, tags, digests and upload ids cannot
//! hold it, and the driver refuses paths that do.
//!
//! Keys are at most [`MAX_KEY_BYTES`] long and have at most [`MAX_KEY_SEGMENTS`] segments,
//! the tightest of the three stores' limits; a longer path is refused, never truncated.
//!
//! Credentials are the store modules' business; the driver's `Debug` names the store, the
//! bucket or container and the prefix only, and the configs' secrets print as `<redacted>`.

mod writer;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{
    ClientOptions, GetOptions, GetRange, ObjectMeta, ObjectStore, PutPayload, RetryConfig, WriteMultipart,
};
use tokio::io::AsyncWriteExt;

use writer::SegmentWriter;

use super::{check_path, BoxReader, FileInfo, StorageDriver, StorageError, StorageWriter};

/// Marks the directory of an appendable file's segments: `<key>!segments/`.
const SEGMENTS: &str = "!segments";
/// Parts of one upload in flight at once; each holds one `chunk_size` buffer.
const PARTS_IN_FLIGHT: usize = 2;
/// S3's largest single `CopyObject`: 5 GiB; larger segments are streamed instead (on
/// every store, so all three take the same path).
const MAX_COPY: u64 = 5 * 1024 * 1024 * 1024;
/// Deletes in flight when a directory goes.
const DELETES_IN_FLIGHT: usize = 16;
/// The longest one request to the store may take, body included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a redirect's presigned URL stays valid.
const REDIRECT_TTL: Duration = Duration::from_secs(20 * 60);
/// The longest key: S3's and GCS's 1,024 bytes of UTF-8, Azure's 1,024 characters.
pub const MAX_KEY_BYTES: usize = 1024;
/// The most `/`-separated segments in a key: Azure's 254 (S3 and GCS have no such limit).
pub const MAX_KEY_SEGMENTS: usize = 254;

/// What a driver path is in the bucket.
enum Found {
    /// A whole object.
    Object(ObjectMeta),
    /// An appendable file: its segments by offset.
    Segments(Vec<(u64, ObjectMeta)>),
    /// A prefix other keys lie under.
    Dir,
    Missing,
}

/// A storage driver over one bucket or container of an object store.
#[derive(Clone)]
pub struct ObjectDriver {
    /// The driver's name in the configuration: `s3`, `gcs` or `azure`.
    name: &'static str,
    /// What the store holds the keys in, for messages: `bucket registry`.
    place: String,
    store: Arc<dyn ObjectStore>,
    /// Presigns redirect URLs; set when `redirect` is on.
    signer: Option<Arc<dyn Signer>>,
    /// Whether the store's server-side copy is complete when it answers.
    copies: bool,
    prefix: String,
    chunk_size: usize,
}

impl fmt::Debug for ObjectDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectDriver")
            .field("name", &self.name)
            .field("place", &self.place)
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// The client settings every store shares: no request hangs, each has
/// [`REQUEST_TIMEOUT`]. A blob GET that streams for longer (a slow client) is resumed
/// where it stopped: object_store retries a body that fails with a ranged GET of the
/// rest, checked against the ETag.
pub(crate) fn client_options() -> ClientOptions {
    ClientOptions::new().with_timeout(REQUEST_TIMEOUT)
}

/// Three retries of a failed request, with backoff, as the AWS SDKs' standard mode.
pub(crate) fn retry() -> RetryConfig {
    RetryConfig { max_retries: 3, ..RetryConfig::default() }
}

/// Maps an object store error to the driver's, keeping "not found" apart. The message
/// already names every cause, so it is kept as text: a chain of sources would print each
/// cause again.
fn error(path: &str, e: object_store::Error) -> StorageError {
    match e {
        object_store::Error::NotFound { .. } => StorageError::NotFound(path.to_owned()),
        other => StorageError::Io { path: path.to_owned(), source: std::io::Error::other(other.to_string()) },
    }
}

fn segment_name(offset: u64) -> String {
    format!("{offset:020}")
}

/// A segment's starting offset, from the last part of its key.
fn segment_offset(meta: &ObjectMeta) -> Option<u64> {
    meta.location.filename().and_then(|name| name.parse().ok())
}

impl ObjectDriver {
    /// A driver over `store`, with keys under `prefix` and multipart parts (and write
    /// buffers) of `chunk_size` bytes.
    pub(crate) fn new(
        name: &'static str,
        place: String,
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        chunk_size: u64,
    ) -> Self {
        ObjectDriver {
            name,
            place,
            store,
            signer: None,
            copies: true,
            prefix: prefix.trim_matches('/').to_owned(),
            chunk_size: chunk_size as usize,
        }
    }

    /// Blob GETs answer with a redirect to a URL `signer` presigns.
    pub(crate) fn with_redirects(self, signer: Arc<dyn Signer>) -> Self {
        ObjectDriver { signer: Some(signer), ..self }
    }

    /// Renames stream the bytes into a new upload instead of copying server side.
    pub(crate) fn without_server_side_copy(self) -> Self {
        ObjectDriver { copies: false, ..self }
    }

    /// The object key of a driver path.
    fn key(&self, path: &str) -> Result<Path, StorageError> {
        check_path(path)?;
        if path.contains('!') {
            return Err(StorageError::InvalidPath(path.to_owned()));
        }
        let full = if self.prefix.is_empty() { path.to_owned() } else { format!("{}/{path}", self.prefix) };
        // Segment keys add `!segments/` and 20 digits.
        let longest = full.len() + SEGMENTS.len() + 22;
        if longest > MAX_KEY_BYTES || full.split('/').count() + 1 > MAX_KEY_SEGMENTS {
            return Err(StorageError::InvalidPath(path.to_owned()));
        }
        Path::parse(full).map_err(|_| StorageError::InvalidPath(path.to_owned()))
    }

    fn segments_dir(key: &Path) -> Path {
        Path::from(format!("{key}{SEGMENTS}"))
    }

    /// The segments of an appendable file, by offset; empty if it has none.
    async fn segments(&self, path: &str, key: &Path) -> Result<Vec<(u64, ObjectMeta)>, StorageError> {
        let listed: Vec<ObjectMeta> = self
            .store
            .list(Some(&Self::segments_dir(key)))
            .try_collect()
            .await
            .map_err(|e| error(path, e))?;
        let mut segments: Vec<_> =
            listed.into_iter().filter_map(|m| segment_offset(&m).map(|offset| (offset, m))).collect();
        segments.sort_by_key(|(offset, _)| *offset);
        Ok(segments)
    }

    async fn head(&self, path: &str, key: &Path) -> Result<Option<ObjectMeta>, StorageError> {
        match self.store.head(key).await {
            Ok(meta) => Ok(Some(meta)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(error(path, e)),
        }
    }

    /// Whether any key lies under `key/` (one list call, first page only).
    async fn has_children(&self, path: &str, key: &Path) -> Result<bool, StorageError> {
        match self.store.list(Some(key)).next().await {
            Some(Ok(_)) => Ok(true),
            Some(Err(e)) => Err(error(path, e)),
            None => Ok(false),
        }
    }

    /// What a path is: one HEAD for an object (the common case), and only when there is
    /// none, the listings of its segments and of `key/`, together.
    async fn locate(&self, path: &str, key: &Path) -> Result<Found, StorageError> {
        if let Some(meta) = self.head(path, key).await? {
            return Ok(Found::Object(meta));
        }
        let (segments, children) =
            futures_util::join!(self.segments(path, key), self.has_children(path, key));
        Ok(match (segments?, children?) {
            (segments, _) if !segments.is_empty() => Found::Segments(segments),
            (_, true) => Found::Dir,
            (_, false) => Found::Missing,
        })
    }

    /// Streams an object from `offset` (which is inside it).
    async fn object_stream(
        &self,
        path: &str,
        key: &Path,
        offset: u64,
    ) -> Result<futures_util::stream::BoxStream<'static, std::io::Result<Bytes>>, StorageError> {
        let range = (offset > 0).then_some(GetRange::Offset(offset));
        let got = self
            .store
            .get_opts(key, GetOptions { range, ..Default::default() })
            .await
            .map_err(|e| error(path, e))?;
        Ok(got.into_stream().map_err(|e| std::io::Error::other(e.to_string())).boxed())
    }

    /// Deletes every key under `prefix`; returns how many went.
    async fn delete_prefix(&self, path: &str, prefix: &Path) -> Result<u64, StorageError> {
        let keys: Vec<Path> = self
            .store
            .list(Some(prefix))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(|e| error(path, e))?;
        let count = keys.len() as u64;
        futures_util::stream::iter(keys)
            .map(|key| async move {
                match self.store.delete(&key).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(error(path, e)),
                }
            })
            .buffer_unordered(DELETES_IN_FLIGHT)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(count)
    }

    /// Writes the segments, in order, to `to` as one multipart upload: `to` appears whole
    /// when the upload completes, or not at all.
    async fn assemble(
        &self,
        from: &str,
        segments: &[(u64, ObjectMeta)],
        to: &Path,
    ) -> Result<(), StorageError> {
        let upload = self.store.put_multipart(to).await.map_err(|e| error(from, e))?;
        let mut parts = WriteMultipart::new_with_chunk_size(upload, self.chunk_size);
        let copied = async {
            for (_, segment) in segments {
                let mut stream = self.object_stream(from, &segment.location, 0).await?;
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| StorageError::Io { path: from.to_owned(), source: e })?;
                    parts.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(|e| error(from, e))?;
                    parts.put(chunk);
                }
            }
            Ok(())
        }
        .await;
        match copied {
            Ok(()) => parts.finish().await.map(|_| ()).map_err(|e| error(from, e)),
            Err(e) => {
                let _ = parts.abort().await;
                Err(e)
            }
        }
    }

    /// Cuts a segment that straddles `keep` back to its first `length` bytes, in place.
    async fn cut_segment(&self, path: &str, segment: &ObjectMeta, length: u64) -> Result<(), StorageError> {
        let got = self
            .store
            .get_opts(
                &segment.location,
                GetOptions { range: Some(GetRange::Bounded(0..length)), ..Default::default() },
            )
            .await
            .map_err(|e| error(path, e))?;
        let mut stream = got.into_stream();
        let mut writer =
            BufWriter::with_capacity(self.store.clone(), segment.location.clone(), self.chunk_size)
                .with_max_concurrency(PARTS_IN_FLIGHT);
        let io = |e: std::io::Error| StorageError::Io { path: path.to_owned(), source: e };
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| error(path, e))?;
            writer.write_all(&chunk).await.map_err(io)?;
        }
        writer.shutdown().await.map_err(io)
    }
}

#[async_trait]
impl StorageDriver for ObjectDriver {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn get_content(&self, path: &str) -> Result<Vec<u8>, StorageError> {
        let key = self.key(path)?;
        let got = self.store.get(&key).await.map_err(|e| error(path, e))?;
        Ok(got.bytes().await.map_err(|e| error(path, e))?.to_vec())
    }

    async fn put_content(&self, path: &str, content: &[u8]) -> Result<(), StorageError> {
        // A PUT replaces the object whole: readers see the old or the new content.
        let key = self.key(path)?;
        let payload = PutPayload::from(Bytes::copy_from_slice(content));
        self.store.put(&key, payload).await.map(|_| ()).map_err(|e| error(path, e))
    }

    async fn reader(&self, path: &str, offset: u64) -> Result<BoxReader, StorageError> {
        let key = self.key(path)?;
        let segments = match self.locate(path, &key).await? {
            Found::Object(meta) if offset >= meta.size => return Ok(Box::pin(tokio::io::empty())),
            Found::Object(_) => {
                let stream = self.object_stream(path, &key, offset).await?;
                return Ok(Box::pin(tokio_util::io::StreamReader::new(stream)));
            }
            Found::Segments(segments) => segments,
            Found::Dir | Found::Missing => return Err(StorageError::NotFound(path.to_owned())),
        };
        // The segments that hold bytes from `offset` on, each with where to start in it.
        let wanted: Vec<(Path, u64)> = segments
            .into_iter()
            .filter(|(start, meta)| start + meta.size > offset)
            .map(|(start, meta)| (meta.location, offset.saturating_sub(start)))
            .collect();
        let driver = self.clone();
        let path = path.to_owned();
        let stream = futures_util::stream::iter(wanted)
            .then(move |(key, skip)| {
                let (driver, path) = (driver.clone(), path.clone());
                async move {
                    driver
                        .object_stream(&path, &key, skip)
                        .await
                        .map_err(|e| std::io::Error::other(e.to_string()))
                }
            })
            .try_flatten();
        Ok(Box::pin(tokio_util::io::StreamReader::new(stream)))
    }

    async fn writer(&self, path: &str, keep: u64) -> Result<Box<dyn StorageWriter>, StorageError> {
        let key = self.key(path)?;
        let mut size = 0;
        for (start, meta) in self.segments(path, &key).await? {
            if start >= keep {
                // Never committed: a request that failed after its segment landed.
                match self.store.delete(&meta.location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(error(path, e)),
                }
            } else if start + meta.size > keep {
                self.cut_segment(path, &meta, keep - start).await?;
                size = keep;
            } else {
                size = size.max(start + meta.size);
            }
        }
        let segment = Path::from(format!("{}/{}", Self::segments_dir(&key), segment_name(size)));
        let writer = BufWriter::with_capacity(self.store.clone(), segment, self.chunk_size)
            .with_max_concurrency(PARTS_IN_FLIGHT);
        Ok(Box::new(SegmentWriter { path: path.to_owned(), writer: Some(writer), size }))
    }

    async fn stat(&self, path: &str) -> Result<FileInfo, StorageError> {
        let key = self.key(path)?;
        match self.locate(path, &key).await? {
            Found::Object(meta) => {
                Ok(FileInfo { size: meta.size, is_dir: false, modified: Some(meta.last_modified.into()) })
            }
            Found::Segments(segments) => {
                let size = segments.iter().map(|(start, m)| start + m.size).max().unwrap_or(0);
                let modified = segments.iter().map(|(_, m)| m.last_modified).max().map(Into::into);
                Ok(FileInfo { size, is_dir: false, modified })
            }
            Found::Dir => Ok(FileInfo { size: 0, is_dir: true, modified: None }),
            Found::Missing => Err(StorageError::NotFound(path.to_owned())),
        }
    }

    async fn list(&self, path: &str) -> Result<Vec<String>, StorageError> {
        let key = self.key(path)?;
        let listed = self.store.list_with_delimiter(Some(&key)).await.map_err(|e| error(path, e))?;
        let mut names: Vec<String> = listed
            .common_prefixes
            .iter()
            .chain(listed.objects.iter().map(|o| &o.location))
            .filter_map(|p| p.filename())
            .map(|name| name.strip_suffix(SEGMENTS).unwrap_or(name).to_owned())
            .collect();
        if names.is_empty() {
            return Err(StorageError::NotFound(path.to_owned()));
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    async fn rename(&self, from: &str, to: &str) -> Result<(), StorageError> {
        let (src, dst) = (self.key(from)?, self.key(to)?);
        let segments = match self.locate(from, &src).await? {
            Found::Object(meta) => {
                if self.copies {
                    self.store.copy(&src, &dst).await.map_err(|e| error(from, e))?;
                } else {
                    self.assemble(from, &[(0, meta)], &dst).await?;
                }
                return self.store.delete(&src).await.map_err(|e| error(from, e));
            }
            Found::Segments(segments) => segments,
            Found::Dir | Found::Missing => return Err(StorageError::NotFound(from.to_owned())),
        };
        match segments.as_slice() {
            [(0, only)] if self.copies && only.size <= MAX_COPY => {
                self.store.copy(&only.location, &dst).await.map_err(|e| error(from, e))?
            }
            _ => self.assemble(from, &segments, &dst).await?,
        }
        self.delete_prefix(from, &Self::segments_dir(&src)).await.map(|_| ())
    }

    async fn delete(&self, path: &str) -> Result<(), StorageError> {
        let key = self.key(path)?;
        // The registry deletes directories far more often than files: try that first.
        if self.delete_prefix(path, &key).await? > 0 {
            return Ok(());
        }
        match self.locate(path, &key).await? {
            Found::Object(_) => self.store.delete(&key).await.map_err(|e| error(path, e)),
            Found::Segments(_) => self.delete_prefix(path, &Self::segments_dir(&key)).await.map(|_| ()),
            // Emptied by someone else meanwhile.
            Found::Dir => Ok(()),
            Found::Missing => Err(StorageError::NotFound(path.to_owned())),
        }
    }

    async fn health(&self) -> Result<(), StorageError> {
        // One small list call: it fails when the bucket is missing or the credentials are
        // refused, where a HEAD of a missing key could not tell those from "no such key".
        // (Every store lists a prefix nothing lies under as empty.)
        let probe = Path::from(if self.prefix.is_empty() {
            "!health".to_owned()
        } else {
            format!("{}/!health", self.prefix)
        });
        self.store.list_with_delimiter(Some(&probe)).await.map(|_| ()).map_err(|e| StorageError::Io {
            path: self.place.clone(),
            source: std::io::Error::other(e.to_string()),
        })
    }

    async fn redirect_url(&self, path: &str) -> Result<Option<String>, StorageError> {
        let Some(signer) = &self.signer else { return Ok(None) };
        let key = self.key(path)?;
        let url =
            signer.signed_url(http::Method::GET, &key, REDIRECT_TTL).await.map_err(|e| error(path, e))?;
        Ok(Some(url.to_string()))
    }
}

/// What every object-store driver must do with segments, run by each store's tests against
/// its real server: an upload of several segments (the second over several parts of
/// `chunk_size`) reads back as one file from any offset, an uncommitted segment never
/// shows, the file renames into one object and leaves nothing behind, and paths past the
/// key limits or into the segments' names are refused. Returns the renamed object's bytes,
/// at `blobs/big`.
#[cfg(test)]
pub(crate) async fn exercise_segments(driver: &ObjectDriver, chunk_size: u64) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    async fn read_all(driver: &ObjectDriver, path: &str, offset: u64) -> Vec<u8> {
        let mut out = Vec::new();
        driver.reader(path, offset).await.unwrap().read_to_end(&mut out).await.unwrap();
        out
    }
    let big: Vec<u8> = (0..chunk_size as usize * 2 + 12345).map(|i| (i * 7 % 251) as u8).collect();
    let mut w = driver.writer("u/data", 0).await.unwrap();
    w.write(b"head-").await.unwrap();
    w.commit().await.unwrap();
    let mut w = driver.writer("u/data", 5).await.unwrap();
    for chunk in big.chunks(64 * 1024) {
        w.write(chunk).await.unwrap();
    }
    assert_eq!(w.commit().await.unwrap(), 5 + big.len() as u64);
    let mut w = driver.writer("u/data", 5 + big.len() as u64).await.unwrap();
    w.write(b"lost").await.unwrap();
    drop(w);
    let mut expected = b"head-".to_vec();
    expected.extend_from_slice(&big);
    assert_eq!(driver.stat("u/data").await.unwrap().size, expected.len() as u64);
    assert_eq!(driver.list("u").await.unwrap(), vec!["data".to_string()]);
    assert_eq!(read_all(driver, "u/data", 3).await, expected[3..]);
    let past_a_part = chunk_size + 1000;
    assert_eq!(read_all(driver, "u/data", past_a_part).await, expected[past_a_part as usize..]);
    driver.rename("u/data", "blobs/big").await.unwrap();
    assert_eq!(driver.stat("blobs/big").await.unwrap().size, expected.len() as u64);
    assert_eq!(read_all(driver, "blobs/big", 0).await, expected);
    assert!(driver.stat("u/data").await.unwrap_err().is_not_found());
    assert!(driver.list("u").await.unwrap_err().is_not_found());

    let long = format!("repositories/{}/link", "a".repeat(MAX_KEY_BYTES));
    assert!(matches!(driver.stat(&long).await, Err(StorageError::InvalidPath(_))));
    assert!(matches!(driver.stat("u/data!segments").await, Err(StorageError::InvalidPath(_))));
    expected
}
