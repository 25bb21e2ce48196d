//! Storage drivers: where the registry's bytes live, and nothing about what they mean.
//!
//! After distribution's `storagedriver` package, a driver is a small file system: small
//! files read and written whole (`get_content`/`put_content`), large files streamed
//! (`reader`/`writer`), `stat`, `list`, `rename` and `delete`. It knows paths and bytes,
//! never blobs, tags or repositories: the registry's layout over it (the content-addressed
//! blob store, repository links, tags, upload sessions) is [`crate::store`], so a new
//! driver (an object store) only has to implement this trait.
//!
//! Drivers are chosen by name in the configuration ([`DRIVERS`], [`open`]).
//!
//! Paths are `/`-separated and relative. The registry builds them only from validated
//! names, tags and digests; drivers check them again ([`check_path`]) so a mistake can
//! never reach outside the driver's root.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::io::AsyncRead;

pub mod azure;
pub mod filesystem;
pub mod gcs;
pub mod memory;
pub mod object;
pub mod s3;
mod secret;

pub use filesystem::FilesystemDriver;
pub use memory::MemoryDriver;
pub use object::ObjectDriver;
pub use secret::Secret;

use crate::config::StorageConfig;

/// A stream of a stored file's bytes.
pub type BoxReader = Pin<Box<dyn AsyncRead + Send>>;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    #[error("{0}: not found")]
    NotFound(String),
    #[error("refusing storage path {0:?}: paths are relative, `/`-separated, without `.` or `..`")]
    InvalidPath(String),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("unknown storage driver {name:?}; available drivers: {available}")]
    UnknownDriver { name: String, available: String },
    #[error("storage driver {driver}: {message}")]
    Config { driver: &'static str, message: String },
}

impl StorageError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, StorageError::NotFound(_))
    }

    pub(crate) fn io(path: &str, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::NotFound {
            StorageError::NotFound(path.to_owned())
        } else {
            StorageError::Io { path: path.to_owned(), source }
        }
    }
}

/// What `stat` knows about a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileInfo {
    pub size: u64,
    pub is_dir: bool,
    /// When the file was last written, if the driver keeps it (the garbage collector's
    /// grace period counts from it).
    pub modified: Option<std::time::SystemTime>,
}

/// A storage backend. All methods are safe to call concurrently on different paths.
#[async_trait]
pub trait StorageDriver: Send + Sync + fmt::Debug {
    /// The name the configuration selects this driver by.
    fn name(&self) -> &'static str;

    /// Reads a small file whole (links, manifests, session state).
    async fn get_content(&self, path: &str) -> Result<Vec<u8>, StorageError>;

    /// Writes a small file whole and atomically: readers see the old content or the new
    /// content, never a mix, and a crash never leaves a partial file visible.
    async fn put_content(&self, path: &str, content: &[u8]) -> Result<(), StorageError>;

    /// Streams a file from `offset`.
    async fn reader(&self, path: &str, offset: u64) -> Result<BoxReader, StorageError>;

    /// Opens a file for appending, creating it if needed, after cutting it to `keep`
    /// bytes (anything past `keep` was never committed). Bytes are durable only once
    /// [`StorageWriter::commit`] returns.
    async fn writer(&self, path: &str, keep: u64) -> Result<Box<dyn StorageWriter>, StorageError>;

    async fn stat(&self, path: &str) -> Result<FileInfo, StorageError>;

    /// The names directly under a directory, sorted. `NotFound` if there is none.
    async fn list(&self, path: &str) -> Result<Vec<String>, StorageError>;

    /// Moves a file atomically, replacing any file at `to`. The moved file's `modified`
    /// time is the move's: the garbage collector's grace period counts from the moment a
    /// blob appeared, not from the upload's last write.
    async fn rename(&self, from: &str, to: &str) -> Result<(), StorageError>;

    /// Removes a file or a whole directory. `NotFound` if there is nothing.
    async fn delete(&self, path: &str) -> Result<(), StorageError>;

    /// Removes the temporary files that interrupted whole-file writes left behind (a
    /// crash between creating the temp file and renaming it), and directories that held
    /// nothing else; returns how many files went. Called once, before the registry
    /// serves. Other replicas may be writing to the same storage meanwhile, so only temp
    /// files old enough that no write can still own them go. Upload sessions are not
    /// temporary and stay. Blocks: it walks the whole store.
    fn remove_temp_files(&self) -> Result<u64, StorageError> {
        Ok(0)
    }

    /// Makes a file look just written (its `modified` time becomes now) without touching
    /// its content: a blob completed again is new to the garbage collector's grace
    /// period. Drivers that cannot do nothing.
    async fn touch(&self, _path: &str) -> Result<(), StorageError> {
        Ok(())
    }

    /// A cheap check that the backend answers, for `/healthz`.
    async fn health(&self) -> Result<(), StorageError> {
        Ok(())
    }

    /// A URL the client may fetch the file from directly, if the driver is configured to
    /// redirect blob downloads (distribution's `redirect` middleware); `None` otherwise.
    async fn redirect_url(&self, _path: &str) -> Result<Option<String>, StorageError> {
        Ok(None)
    }
}

/// An open, appendable file.
#[async_trait]
pub trait StorageWriter: Send {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), StorageError>;

    /// Bytes in the file so far, committed or not.
    fn size(&self) -> u64;

    /// Makes everything written durable and returns the file's size.
    async fn commit(self: Box<Self>) -> Result<u64, StorageError>;
}

/// A driver the configuration can name.
pub struct DriverEntry {
    pub name: &'static str,
    pub description: &'static str,
    /// Opens the driver from the `storage` section (each driver reads its own keys).
    pub open: fn(config: &StorageConfig) -> Result<Arc<dyn StorageDriver>, StorageError>,
}

/// The drivers built into ferry.
pub const DRIVERS: &[DriverEntry] = &[
    DriverEntry {
        name: "filesystem",
        description: "files under `root`; atomic writes (temp file, fsync, rename)",
        open: |config| Ok(Arc::new(FilesystemDriver::open(&config.root)?)),
    },
    DriverEntry {
        name: "memory",
        description: "in process memory; lost on exit; memory grows with the data stored",
        open: |_| Ok(Arc::new(MemoryDriver::new())),
    },
    DriverEntry {
        name: "s3",
        description: "an S3 or S3-compatible bucket (`storage.s3`); multipart uploads, ranged reads",
        open: |config| Ok(Arc::new(s3::open(&config.s3)?)),
    },
    DriverEntry {
        name: "gcs",
        description: "a Google Cloud Storage bucket (`storage.gcs`); multipart uploads, ranged reads",
        open: |config| Ok(Arc::new(gcs::open(&config.gcs)?)),
    },
    DriverEntry {
        name: "azure",
        description: "an Azure Blob Storage container (`storage.azure`); block uploads, ranged reads",
        open: |config| Ok(Arc::new(azure::open(&config.azure)?)),
    },
];

/// Opens the driver the `storage.driver` key names.
pub fn open(config: &StorageConfig) -> Result<Arc<dyn StorageDriver>, StorageError> {
    let name = config.driver.as_str();
    match DRIVERS.iter().find(|d| d.name == name) {
        Some(entry) => (entry.open)(config),
        None => Err(StorageError::UnknownDriver {
            name: name.to_owned(),
            available: DRIVERS.iter().map(|d| d.name).collect::<Vec<_>>().join(", "),
        }),
    }
}

/// Checks that `path` is relative and has no empty, `.` or `..` segment, and returns its
/// segments.
pub fn check_path(path: &str) -> Result<Vec<&str>, StorageError> {
    let segments: Vec<&str> = path.split('/').collect();
    let bad = path.is_empty()
        || segments.iter().any(|s| s.is_empty() || *s == "." || *s == ".." || s.contains(['\\', '\0']));
    if bad {
        Err(StorageError::InvalidPath(path.to_owned()))
    } else {
        Ok(segments)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn path_checks() {
        for good in ["a", "a/b", "blobs/sha256/ab/abc/data", ".tmp-1"] {
            assert!(check_path(good).is_ok(), "{good}");
        }
        for bad in ["", "/a", "a/", "a//b", "../a", "a/../b", "a/./b", "a\\b", "a\0"] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unknown_driver_names_the_choices() {
        let config = StorageConfig { driver: "swift".into(), ..StorageConfig::default() };
        let err = open(&config).unwrap_err().to_string();
        assert!(err.contains("filesystem, memory, s3, gcs, azure"), "{err}");
    }

    /// The behaviour every driver must have; run by each driver's tests.
    pub(crate) async fn exercise(driver: &dyn StorageDriver) {
        assert!(driver.get_content("x/y").await.unwrap_err().is_not_found());
        driver.put_content("x/y", b"one").await.unwrap();
        driver.put_content("x/y", b"two!").await.unwrap();
        assert_eq!(driver.get_content("x/y").await.unwrap(), b"two!");
        let info = driver.stat("x/y").await.unwrap();
        assert_eq!((info.size, info.is_dir), (4, false));
        assert!(driver.stat("x").await.unwrap().is_dir);

        let mut w = driver.writer("up/data", 0).await.unwrap();
        w.write(b"hello ").await.unwrap();
        w.write(b"world").await.unwrap();
        assert_eq!(w.commit().await.unwrap(), 11);
        // Bytes past `keep` were never committed and are cut off.
        let mut w = driver.writer("up/data", 5).await.unwrap();
        assert_eq!(w.size(), 5);
        w.write(b"!").await.unwrap();
        w.commit().await.unwrap();
        let mut s = String::new();
        driver.reader("up/data", 2).await.unwrap().read_to_string(&mut s).await.unwrap();
        assert_eq!(s, "llo!");

        driver.rename("up/data", "blobs/z").await.unwrap();
        assert!(driver.stat("up/data").await.unwrap_err().is_not_found());
        assert_eq!(driver.get_content("blobs/z").await.unwrap(), b"hello!");
        assert_eq!(driver.list("x").await.unwrap(), vec!["y".to_string()]);
        let mut root = driver.list("blobs").await.unwrap();
        root.sort();
        assert_eq!(root, vec!["z".to_string()]);
        driver.delete("x").await.unwrap();
        assert!(driver.stat("x/y").await.unwrap_err().is_not_found());
        assert!(driver.delete("x").await.unwrap_err().is_not_found());
        assert!(driver.list("nothing").await.unwrap_err().is_not_found());
        assert!(matches!(driver.get_content("../etc").await, Err(StorageError::InvalidPath(_))));
    }
}
