//! One segment of an appendable file, being written.

use async_trait::async_trait;
use object_store::buffered::BufWriter;
use tokio::io::AsyncWriteExt;

use crate::driver::{StorageError, StorageWriter};

/// One segment being written (see the `object` module's docs): a single PUT when it fits one
/// buffer, else a multipart upload; visible only once committed.
pub(super) struct SegmentWriter {
    pub(super) path: String,
    /// `None` once committed.
    pub(super) writer: Option<BufWriter>,
    /// Bytes of the whole file so far.
    pub(super) size: u64,
}

#[async_trait]
impl StorageWriter for SegmentWriter {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), StorageError> {
        let Some(writer) = self.writer.as_mut() else { return Ok(()) };
        writer.write_all(chunk).await.map_err(|e| StorageError::Io { path: self.path.clone(), source: e })?;
        self.size += chunk.len() as u64;
        Ok(())
    }

    fn size(&self) -> u64 {
        self.size
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, StorageError> {
        if let Some(mut writer) = self.writer.take() {
            writer.shutdown().await.map_err(|e| StorageError::Io { path: self.path.clone(), source: e })?;
        }
        Ok(self.size)
    }
}

impl Drop for SegmentWriter {
    /// An uncommitted segment never becomes visible; this also frees the parts the store holds
    /// for its multipart upload.
    fn drop(&mut self) {
        if let (Some(mut writer), Ok(runtime)) = (self.writer.take(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(async move {
                let _ = writer.abort().await;
            });
        }
    }
}
