//! The `filesystem` driver: files under a root directory.
//!
//! Crash safety comes from the order of operations. A whole-file write goes to a hidden
//! temp file in the same directory, is fsynced, renamed over the target, and then the
//! directory is fsynced, so after a crash the target holds the old or the new content.
//! Streamed files (upload data) are fsynced on commit; the registry makes a blob visible
//! only by renaming a committed, verified upload into the blob store.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use tokio::fs;
use tokio::io::{AsyncSeekExt, AsyncWriteExt, BufWriter};

use super::{check_path, BoxReader, FileInfo, StorageDriver, StorageError, StorageWriter};

/// Prefix of temp files; `list` hides them and they never match a registry path.
const TEMP_PREFIX: &str = ".tmp-";
/// A temp file lives for one whole-file write (a manifest, a link: milliseconds); one
/// older than this was left by a crash. Younger ones may belong to another replica's
/// write in progress on the same root, and stay.
const STALE_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(600);
/// Per open upload: with hundreds of concurrent pushes, this is much of the memory
/// (200 pushes at once peaked at 83 MiB with 64 KiB buffers, 43 MiB with 32 KiB).
const WRITE_BUFFER: usize = 32 * 1024;

#[derive(Debug, Clone)]
pub struct FilesystemDriver {
    root: PathBuf,
}

impl FilesystemDriver {
    /// Opens (creating if needed) a store rooted at `root`.
    pub fn open(root: &Path) -> Result<Self, StorageError> {
        std::fs::create_dir_all(root).map_err(|e| StorageError::Config {
            driver: "filesystem",
            message: format!("cannot create root {}: {e}", root.display()),
        })?;
        Ok(FilesystemDriver { root: root.to_owned() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn full(&self, path: &str) -> Result<PathBuf, StorageError> {
        let mut full = self.root.clone();
        for segment in check_path(path)? {
            full.push(segment);
        }
        Ok(full)
    }
}

async fn create_parent(full: &Path, path: &str) -> Result<(), StorageError> {
    if let Some(parent) = full.parent() {
        fs::create_dir_all(parent).await.map_err(|e| StorageError::io(path, e))?;
    }
    Ok(())
}

/// Makes a rename or a new file in `dir` durable.
async fn sync_dir(dir: &Path) {
    // Some platforms cannot open directories; the data itself is already synced.
    if let Ok(d) = fs::File::open(dir).await {
        let _ = d.sync_all().await;
    }
}

fn sync_dir_blocking(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn temp_name() -> String {
    format!("{TEMP_PREFIX}{}", crate::random::random_hex(8))
}

#[async_trait]
impl StorageDriver for FilesystemDriver {
    fn name(&self) -> &'static str {
        "filesystem"
    }

    async fn get_content(&self, path: &str) -> Result<Vec<u8>, StorageError> {
        fs::read(self.full(path)?).await.map_err(|e| StorageError::io(path, e))
    }

    async fn put_content(&self, path: &str, content: &[u8]) -> Result<(), StorageError> {
        let full = self.full(path)?;
        create_parent(&full, path).await?;
        let dir = full.parent().unwrap_or(&self.root).to_owned();
        let temp = dir.join(temp_name());
        let io = |e| StorageError::io(path, e);
        let result = async {
            let mut file = fs::File::create(&temp).await.map_err(io)?;
            file.write_all(content).await.map_err(io)?;
            file.sync_all().await.map_err(io)?;
            drop(file);
            fs::rename(&temp, &full).await.map_err(io)
        }
        .await;
        if result.is_err() {
            let _ = fs::remove_file(&temp).await;
        }
        result?;
        sync_dir(&dir).await;
        Ok(())
    }

    async fn reader(&self, path: &str, offset: u64) -> Result<BoxReader, StorageError> {
        let mut file = fs::File::open(self.full(path)?).await.map_err(|e| StorageError::io(path, e))?;
        if offset > 0 {
            file.seek(std::io::SeekFrom::Start(offset)).await.map_err(|e| StorageError::io(path, e))?;
        }
        Ok(Box::pin(file))
    }

    async fn writer(&self, path: &str, keep: u64) -> Result<Box<dyn StorageWriter>, StorageError> {
        let full = self.full(path)?;
        create_parent(&full, path).await?;
        let io = |e| StorageError::io(path, e);
        let mut file =
            fs::OpenOptions::new().create(true).write(true).truncate(false).open(&full).await.map_err(io)?;
        let len = file.metadata().await.map_err(io)?.len();
        if len != keep {
            file.set_len(keep.min(len)).await.map_err(io)?;
        }
        let size = keep.min(len);
        file.seek(std::io::SeekFrom::Start(size)).await.map_err(io)?;
        Ok(Box::new(FileWriter {
            path: path.to_owned(),
            file: BufWriter::with_capacity(WRITE_BUFFER, file),
            size,
        }))
    }

    async fn stat(&self, path: &str) -> Result<FileInfo, StorageError> {
        let meta = fs::metadata(self.full(path)?).await.map_err(|e| StorageError::io(path, e))?;
        Ok(FileInfo { size: meta.len(), is_dir: meta.is_dir(), modified: meta.modified().ok() })
    }

    async fn list(&self, path: &str) -> Result<Vec<String>, StorageError> {
        let mut dir = fs::read_dir(self.full(path)?).await.map_err(|e| StorageError::io(path, e))?;
        let mut names = Vec::new();
        while let Some(entry) = dir.next_entry().await.map_err(|e| StorageError::io(path, e))? {
            if let Some(name) = entry.file_name().to_str() {
                if !name.starts_with(TEMP_PREFIX) {
                    names.push(name.to_owned());
                }
            }
        }
        names.sort();
        Ok(names)
    }

    async fn rename(&self, from: &str, to: &str) -> Result<(), StorageError> {
        let (src, dst) = (self.full(from)?, self.full(to)?);
        create_parent(&dst, to).await?;
        fs::rename(&src, &dst).await.map_err(|e| StorageError::io(from, e))?;
        self.touch(to).await?;
        if let Some(parent) = dst.parent() {
            sync_dir(parent).await;
        }
        Ok(())
    }

    async fn delete(&self, path: &str) -> Result<(), StorageError> {
        let full = self.full(path)?;
        let meta = fs::symlink_metadata(&full).await.map_err(|e| StorageError::io(path, e))?;
        let result =
            if meta.is_dir() { fs::remove_dir_all(&full).await } else { fs::remove_file(&full).await };
        result.map_err(|e| StorageError::io(path, e))
    }

    async fn touch(&self, path: &str) -> Result<(), StorageError> {
        let full = self.full(path)?;
        tokio::task::spawn_blocking(move || {
            std::fs::File::options().write(true).open(&full)?.set_modified(std::time::SystemTime::now())
        })
        .await
        .map_err(|e| StorageError::io(path, std::io::Error::other(e)))?
        .map_err(|e| StorageError::io(path, e))
    }

    fn remove_temp_files(&self) -> Result<u64, StorageError> {
        let io = |path: &Path, e| StorageError::Io { path: path.display().to_string(), source: e };
        let mut removed = 0;
        // Depth first, so a directory is looked at after everything under it.
        let mut stack = vec![(self.root.clone(), false)];
        while let Some((dir, visited)) = stack.pop() {
            if visited {
                // Only directories that held temp files and are now empty go: never the root.
                if dir != self.root && std::fs::read_dir(&dir).map_err(|e| io(&dir, e))?.next().is_none() {
                    std::fs::remove_dir(&dir).map_err(|e| io(&dir, e))?;
                }
                continue;
            }
            let mut had_temp = false;
            let mut children = Vec::new();
            for entry in std::fs::read_dir(&dir).map_err(|e| io(&dir, e))? {
                let entry = entry.map_err(|e| io(&dir, e))?;
                let path = entry.path();
                if entry.file_type().map_err(|e| io(&path, e))?.is_dir() {
                    children.push(path);
                } else if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                    had_temp = true;
                    if is_stale(&entry) {
                        std::fs::remove_file(&path).map_err(|e| io(&path, e))?;
                        removed += 1;
                    }
                }
            }
            if had_temp {
                stack.push((dir, true));
            }
            stack.extend(children.into_iter().map(|c| (c, false)));
        }
        if removed > 0 {
            sync_dir_blocking(&self.root);
        }
        Ok(removed)
    }

    async fn health(&self) -> Result<(), StorageError> {
        fs::metadata(&self.root).await.map(|_| ()).map_err(|e| StorageError::io("<root>", e))
    }
}

/// Whether a temp file is older than [`STALE_TEMP_AGE`]; one whose age cannot be read
/// stays (the next start looks again).
fn is_stale(entry: &std::fs::DirEntry) -> bool {
    let modified = entry.metadata().and_then(|m| m.modified());
    modified.ok().and_then(|t| t.elapsed().ok()).is_some_and(|age| age >= STALE_TEMP_AGE)
}

struct FileWriter {
    path: String,
    file: BufWriter<fs::File>,
    size: u64,
}

#[async_trait]
impl StorageWriter for FileWriter {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), StorageError> {
        self.file.write_all(chunk).await.map_err(|e| StorageError::io(&self.path, e))?;
        self.size += chunk.len() as u64;
        Ok(())
    }

    fn size(&self) -> u64 {
        self.size
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, StorageError> {
        let io = |e| StorageError::io(&self.path, e);
        self.file.flush().await.map_err(io)?;
        self.file.get_mut().sync_all().await.map_err(io)?;
        Ok(self.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn behaves_like_a_driver() {
        let dir = std::env::temp_dir().join(format!("ferry-fs-driver-{}", crate::random::random_hex(6)));
        let driver = FilesystemDriver::open(&dir).unwrap();
        crate::driver::tests::exercise(&driver).await;
        // A touched file is new again, its content unchanged.
        driver.put_content("old/file", b"content").await.unwrap();
        let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(dir.join("old/file"))
            .unwrap()
            .set_modified(an_hour_ago)
            .unwrap();
        driver.touch("old/file").await.unwrap();
        let age = driver.stat("old/file").await.unwrap().modified.unwrap().elapsed().unwrap_or_default();
        assert!(age.as_secs() < 60, "{age:?}");
        assert_eq!(driver.get_content("old/file").await.unwrap(), b"content");
        // No temp file is left behind by whole-file writes.
        let leftovers: Vec<_> = std::fs::read_dir(dir.join("blobs"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(TEMP_PREFIX))
            .collect();
        assert!(leftovers.is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
