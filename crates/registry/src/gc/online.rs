//! Garbage collection while the registry serves (`storage.gc.enabled`): one collection
//! every `storage.gc.interval_secs`, each the same two-mark collection as `ferry serve
//! gc`, so pushes to this replica or any other on the same storage during a collection
//! keep what they need. Each run is logged with what it freed, in bytes, and counted in
//! the `ferry_serve_gc_*` metrics.

use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::{collect, GcOptions, GcReport};
use crate::store::Store;

/// Starts the periodic collection; it runs until the handle is aborted.
pub fn spawn(store: Store, options: GcOptions, interval: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            run_once(&store, options).await;
        }
    })
}

/// One collection, logged and counted; a failure is logged and the next run tries again.
pub async fn run_once(store: &Store, options: GcOptions) -> Option<GcReport> {
    let started = Instant::now();
    match collect(store, options, || async {}).await {
        Ok(report) => {
            metrics::counter!("ferry_serve_gc_runs_total", "result" => "ok").increment(1);
            metrics::counter!("ferry_serve_gc_freed_bytes_total").increment(report.bytes_freed);
            metrics::counter!("ferry_serve_gc_deleted_blobs_total").increment(report.blobs_deleted as u64);
            tracing::info!(
                bytes_freed = report.bytes_freed,
                blobs_deleted = report.blobs_deleted,
                manifests_deleted = report.manifests_deleted,
                uploads_expired = report.uploads_expired,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "garbage collection {report}"
            );
            Some(report)
        }
        Err(e) => {
            metrics::counter!("ferry_serve_gc_runs_total", "result" => "error").increment(1);
            tracing::warn!("garbage collection stopped, the next run tries again: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ferry_core::digest::Digest;

    use super::*;
    use crate::driver::MemoryDriver;
    use crate::store::layout;

    #[tokio::test]
    async fn a_run_reports_what_it_freed() {
        let store = Store::new(Arc::new(MemoryDriver::new()));
        let content = b"nobody references this";
        let digest = Digest::sha256(content);
        store.driver().put_content(&layout::blob_data(&digest), content).await.unwrap();
        let options = GcOptions { policy: ferry_core::gc::Policy::default(), dry_run: false };
        let report = run_once(&store, options).await.unwrap();
        assert_eq!((report.blobs_deleted, report.bytes_freed), (1, content.len() as u64));
        assert!(store.blob_size_global(&digest).await.unwrap().is_none());
    }
}
