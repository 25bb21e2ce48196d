//! The `memory` driver: everything in a map, lost when the process exits.
//!
//! Meant for tests and demos. Unlike the filesystem driver, memory here grows with the
//! size of what is stored, blobs and upload sessions included: a 1 GiB push holds 1 GiB.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use bytes::Bytes;

use super::{check_path, BoxReader, FileInfo, StorageDriver, StorageError, StorageWriter};

type Files = Arc<RwLock<BTreeMap<String, Bytes>>>;

#[derive(Debug, Default, Clone)]
pub struct MemoryDriver {
    files: Files,
}

impl MemoryDriver {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Bytes>> {
        self.files.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Bytes>> {
        self.files.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn file(&self, path: &str) -> Result<Bytes, StorageError> {
        check_path(path)?;
        self.read().get(path).cloned().ok_or_else(|| StorageError::NotFound(path.to_owned()))
    }

    /// Keys under the directory `path`.
    fn children(&self, path: &str) -> Vec<String> {
        let prefix = format!("{path}/");
        self.read()
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect()
    }
}

#[async_trait]
impl StorageDriver for MemoryDriver {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn get_content(&self, path: &str) -> Result<Vec<u8>, StorageError> {
        Ok(self.file(path)?.to_vec())
    }

    async fn put_content(&self, path: &str, content: &[u8]) -> Result<(), StorageError> {
        check_path(path)?;
        self.write().insert(path.to_owned(), Bytes::copy_from_slice(content));
        Ok(())
    }

    async fn reader(&self, path: &str, offset: u64) -> Result<BoxReader, StorageError> {
        let bytes = self.file(path)?;
        let start = (offset as usize).min(bytes.len());
        Ok(Box::pin(std::io::Cursor::new(bytes.slice(start..))))
    }

    async fn writer(&self, path: &str, keep: u64) -> Result<Box<dyn StorageWriter>, StorageError> {
        check_path(path)?;
        let mut data: Vec<u8> = self.write().remove(path).map(Vec::from).unwrap_or_default();
        data.truncate(keep as usize);
        Ok(Box::new(MemoryWriter { files: self.files.clone(), path: path.to_owned(), data: Some(data) }))
    }

    async fn stat(&self, path: &str) -> Result<FileInfo, StorageError> {
        check_path(path)?;
        if let Some(bytes) = self.read().get(path) {
            return Ok(FileInfo { size: bytes.len() as u64, is_dir: false, modified: None });
        }
        if self.children(path).is_empty() {
            Err(StorageError::NotFound(path.to_owned()))
        } else {
            Ok(FileInfo { size: 0, is_dir: true, modified: None })
        }
    }

    async fn list(&self, path: &str) -> Result<Vec<String>, StorageError> {
        check_path(path)?;
        let prefix_len = path.len() + 1;
        let mut names: Vec<String> = self
            .children(path)
            .iter()
            .map(|k| k[prefix_len..].split('/').next().unwrap_or_default().to_owned())
            .collect();
        names.dedup();
        if names.is_empty() {
            return Err(StorageError::NotFound(path.to_owned()));
        }
        Ok(names)
    }

    async fn rename(&self, from: &str, to: &str) -> Result<(), StorageError> {
        check_path(from)?;
        check_path(to)?;
        let mut files = self.write();
        let bytes = files.remove(from).ok_or_else(|| StorageError::NotFound(from.to_owned()))?;
        files.insert(to.to_owned(), bytes);
        Ok(())
    }

    async fn delete(&self, path: &str) -> Result<(), StorageError> {
        check_path(path)?;
        let children = self.children(path);
        let mut files = self.write();
        let removed_file = files.remove(path).is_some();
        for key in &children {
            files.remove(key);
        }
        if removed_file || !children.is_empty() {
            Ok(())
        } else {
            Err(StorageError::NotFound(path.to_owned()))
        }
    }
}

/// Holds the file out of the map while it is written; puts it back on commit, or cut
/// back to its committed length if dropped without one.
struct MemoryWriter {
    files: Files,
    path: String,
    data: Option<Vec<u8>>,
}

#[async_trait]
impl StorageWriter for MemoryWriter {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), StorageError> {
        if let Some(data) = self.data.as_mut() {
            data.extend_from_slice(chunk);
        }
        Ok(())
    }

    fn size(&self) -> u64 {
        self.data.as_ref().map_or(0, |d| d.len() as u64)
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, StorageError> {
        let data = self.data.take().unwrap_or_default();
        let size = data.len() as u64;
        self.files.write().unwrap_or_else(|p| p.into_inner()).insert(self.path.clone(), Bytes::from(data));
        Ok(size)
    }
}

impl Drop for MemoryWriter {
    fn drop(&mut self) {
        // Uncommitted bytes are dropped with the writer; the registry's session state
        // remembers the committed length and cuts the file back to it on the next write.
        if let Some(data) = self.data.take() {
            self.files
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(self.path.clone(), Bytes::from(data));
        }
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn behaves_like_a_driver() {
        crate::driver::tests::exercise(&super::MemoryDriver::new()).await;
    }
}
