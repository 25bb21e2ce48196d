//! `ferry serve gc`: garbage collection over the store, offline or beside a running
//! registry on the same storage.
//!
//! The decisions (what is live, what a sweep may delete) are ferry-core's
//! ([`ferry_core::gc`]); this module lists the store into the core's inventory and
//! deletes what the core answers. One collection:
//!
//! 1. list every repository's manifests, tags and blob links, and mark;
//! 2. list the global blobs and the upload sessions;
//! 3. (the `after_mark` hook: tests land a push here)
//! 4. list the repositories again and mark again, the manifests that appeared meanwhile as
//!    roots; blob links that appeared protect their blobs;
//! 5. delete what both marks found dead and the grace period allows: manifests first
//!    (their revision links and tags), then blob content, then expired upload sessions.
//!
//! Like distribution's collector, a deleted blob's per-repository links stay: the
//! registry answers a blob only when its content is present, so they are inert, and a
//! later push of the same content links it again.

pub mod online;

use std::collections::BTreeSet;
use std::future::Future;
use std::time::SystemTime;

use ferry_core::digest::Digest;
use ferry_core::gc::{self, BlobEntry, ManifestEntry, Policy, UploadEntry};
use serde::Serialize;

use crate::driver::StorageError;
use crate::store::layout::{self, Repo, Tag};
use crate::store::Store;

/// Why a collection stopped. Nothing is deleted once marking failed.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("reading the store: {0}")]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Unreadable(#[from] gc::UnreadableManifest),
}

/// How to collect.
#[derive(Debug, Clone, Copy, Default)]
pub struct GcOptions {
    pub policy: Policy,
    /// Report what would go, delete nothing.
    pub dry_run: bool,
}

impl GcOptions {
    /// The collection a registry's configuration asks for (`storage.gc` and
    /// `storage.upload_purging`).
    pub fn from_config(storage: &crate::config::StorageConfig) -> GcOptions {
        let purging = &storage.upload_purging;
        GcOptions {
            policy: Policy {
                delete_untagged: storage.gc.delete_untagged,
                grace_secs: storage.gc.grace_secs,
                upload_max_age_secs: purging.enabled.then_some(purging.age_secs),
            },
            dry_run: false,
        }
    }
}

/// What a collection freed (or, with `dry_run`, would free).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub manifests_deleted: usize,
    pub blobs_deleted: usize,
    pub bytes_freed: u64,
    pub uploads_expired: usize,
    /// Unreferenced blobs kept because they are younger than the grace period.
    pub blobs_kept_in_grace: usize,
    pub blobs_scanned: usize,
}

impl std::fmt::Display for GcReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verb = if self.dry_run { "would free" } else { "freed" };
        write!(
            f,
            "{verb} {} bytes: {} blobs of {} scanned, {} manifests, {} expired upload sessions; {} \
             unreferenced blobs kept within the grace period",
            self.bytes_freed,
            self.blobs_deleted,
            self.blobs_scanned,
            self.manifests_deleted,
            self.uploads_expired,
            self.blobs_kept_in_grace,
        )
    }
}

/// One listing of the repositories.
#[derive(Default)]
struct Listing {
    manifests: Vec<ManifestEntry>,
    /// `(repo, digest)` of every manifest revision and blob link.
    links: BTreeSet<(String, Digest)>,
    revisions: BTreeSet<(String, Digest)>,
    /// `(repo, digest)` of the manifests written within the grace period.
    young: BTreeSet<(String, Digest)>,
    uploads: Vec<UploadEntry>,
}

impl Listing {
    /// The manifests with their `recent` flag: those that `appeared` since the first
    /// listing and, with `grace`, the young ones (an index's children go up untagged just
    /// before the index that tags them).
    fn roots(&self, appeared: Option<&BTreeSet<(String, Digest)>>, grace: bool) -> Vec<ManifestEntry> {
        let mut manifests = self.manifests.clone();
        for m in &mut manifests {
            let key = (m.repo.clone(), m.digest.clone());
            m.recent =
                appeared.is_some_and(|first| !first.contains(&key)) || (grace && self.young.contains(&key));
        }
        manifests
    }
}

/// Runs one collection; `after_mark` runs between the first mark and the re-listing.
pub async fn collect<F: Future<Output = ()>>(
    store: &Store,
    options: GcOptions,
    after_mark: impl FnOnce() -> F,
) -> Result<GcReport, GcError> {
    let policy = options.policy;
    let now = SystemTime::now();
    let first = list(store, now, &policy).await?;
    let first_mark = gc::mark(&first.roots(None, true), &policy);
    let blobs = list_blobs(store, now).await?;
    after_mark().await;
    let second = list(store, now, &policy).await?;
    let second_mark = gc::mark(&second.roots(Some(&first.revisions), true), &policy);
    let new_links: BTreeSet<Digest> =
        second.links.difference(&first.links).map(|(_, digest)| digest.clone()).collect();
    let plan = gc::sweep(&first_mark, &second_mark, &blobs, &new_links, &second.uploads, &policy);
    // What would go without the grace period, for the report.
    let unreferenced = gc::sweep(
        &gc::mark(&first.roots(None, false), &policy),
        &gc::mark(&second.roots(Some(&first.revisions), false), &policy),
        &blobs,
        &new_links,
        &[],
        &Policy { grace_secs: 0, ..policy },
    );
    let report = GcReport {
        dry_run: options.dry_run,
        manifests_deleted: plan.manifests.len(),
        blobs_deleted: plan.blobs.len(),
        bytes_freed: plan.bytes(),
        uploads_expired: plan.uploads.len(),
        blobs_kept_in_grace: unreferenced.blobs.len().saturating_sub(plan.blobs.len()),
        blobs_scanned: blobs.len(),
    };
    if options.dry_run {
        return Ok(report);
    }
    let driver = store.driver();
    for (repo, digest) in &plan.manifests {
        let Ok(repo) = Repo::parse(repo) else { continue };
        store.delete_manifest(&repo, digest).await?;
    }
    let mut report = report;
    for blob in &plan.blobs {
        let data = layout::blob_data(&blob.digest);
        // An upload on any replica may have completed the same blob again since it was
        // listed, and a client been told it is there: its new age says so. Another
        // collector (another replica's) may have deleted it already: not freed here.
        let age = match driver.stat(&data).await {
            Ok(info) => Some(age_secs(SystemTime::now(), info.modified)),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e.into()),
        };
        if age.is_none_or(|age| !gc::past_grace(age, &policy)) {
            report.blobs_deleted -= 1;
            report.bytes_freed -= blob.size;
            report.blobs_kept_in_grace += usize::from(age.is_some());
            continue;
        }
        match driver.delete(data.trim_end_matches("/data")).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {
                report.blobs_deleted -= 1;
                report.bytes_freed -= blob.size;
            }
            Err(e) => return Err(e.into()),
        }
    }
    for upload in &plan.uploads {
        let dir = format!("{}/{}/_uploads/{}", layout::repositories(), upload.repo, upload.id);
        ignore_not_found(driver.delete(&dir).await)?;
    }
    Ok(report)
}

fn ignore_not_found(result: Result<(), StorageError>) -> Result<(), StorageError> {
    match result {
        Err(e) if !e.is_not_found() => Err(e),
        _ => Ok(()),
    }
}

/// The names under a directory; none when it does not exist.
async fn names(store: &Store, dir: &str) -> Result<Vec<String>, StorageError> {
    match store.driver().list(dir).await {
        Ok(names) => Ok(names),
        Err(e) if e.is_not_found() => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Digests stored as `<dir>/<alg>/<hex>` (revisions, blob links).
async fn digests_under(store: &Store, dir: &str) -> Result<Vec<Digest>, StorageError> {
    let mut out = Vec::new();
    for alg in names(store, dir).await? {
        for hex in names(store, &format!("{dir}/{alg}")).await? {
            if let Ok(digest) = format!("{alg}:{hex}").parse() {
                out.push(digest);
            }
        }
    }
    Ok(out)
}

/// Every repository directory: those holding a `_`-directory (manifests, blob links or
/// upload sessions).
async fn repositories(store: &Store) -> Result<Vec<Repo>, StorageError> {
    let mut repos = Vec::new();
    let mut pending = vec![layout::repositories().to_owned()];
    while let Some(dir) = pending.pop() {
        let children = names(store, &dir).await?;
        if children.iter().any(|c| c.starts_with('_')) {
            if let Ok(repo) = Repo::parse(dir.trim_start_matches("repositories/")) {
                repos.push(repo);
            }
        }
        pending.extend(children.iter().filter(|c| !c.starts_with('_')).map(|c| format!("{dir}/{c}")));
    }
    Ok(repos)
}

fn age_secs(now: SystemTime, then: Option<SystemTime>) -> Option<u64> {
    then.map(|t| now.duration_since(t).map_or(0, |d| d.as_secs()))
}

async fn list(store: &Store, now: SystemTime, policy: &Policy) -> Result<Listing, GcError> {
    let mut listing = Listing::default();
    for repo in repositories(store).await? {
        let mut tagged = BTreeSet::new();
        for name in store.tags(&repo).await?.unwrap_or_default() {
            let Ok(tag) = Tag::parse(&name) else { continue };
            tagged.extend(store.tag_target(&repo, &tag).await?);
        }
        let revisions = format!("{}/revisions", layout::manifests_dir(&repo));
        for digest in digests_under(store, &revisions).await? {
            listing.links.insert((repo.to_string(), digest.clone()));
            listing.revisions.insert((repo.to_string(), digest.clone()));
            let Some(meta) = store.manifest_meta(&repo, &digest).await? else { continue };
            // A revision whose bytes are gone references nothing anyone can fetch.
            let bytes = match store.driver().get_content(&layout::blob_data(&digest)).await {
                Ok(bytes) => bytes,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            };
            let is_tagged = tagged.contains(&digest);
            let age = match store.driver().stat(&layout::blob_data(&digest)).await {
                Ok(info) => age_secs(now, info.modified),
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            };
            if !gc::past_grace(age, policy) {
                listing.young.insert((repo.to_string(), digest.clone()));
            }
            listing.manifests.push(ManifestEntry::parse(
                repo.as_str(),
                digest,
                is_tagged,
                &meta.media_type,
                bytes,
            )?);
        }
        for digest in digests_under(store, &layout::layers_dir(&repo)).await? {
            listing.links.insert((repo.to_string(), digest));
        }
        let uploads = format!("{}/_uploads", layout::repo_dir(&repo));
        for id in names(store, &uploads).await? {
            let started = upload_started(store, &format!("{uploads}/{id}")).await?;
            let age = age_secs(now, started).unwrap_or(0);
            listing.uploads.push(UploadEntry { repo: repo.to_string(), id, age_secs: age });
        }
    }
    Ok(listing)
}

/// When an upload session started: its state's `started_at`, else its directory's time.
async fn upload_started(store: &Store, dir: &str) -> Result<Option<SystemTime>, StorageError> {
    #[derive(serde::Deserialize)]
    struct Started {
        started_at: u64,
    }
    if let Ok(raw) = store.driver().get_content(&format!("{dir}/state")).await {
        if let Ok(state) = serde_json::from_slice::<Started>(&raw) {
            return Ok(Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(state.started_at)));
        }
    }
    match store.driver().stat(dir).await {
        Ok(info) => Ok(info.modified),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every blob of the global store (`blobs/<alg>/<xx>/<hex>/data`) with size and age.
async fn list_blobs(store: &Store, now: SystemTime) -> Result<Vec<BlobEntry>, StorageError> {
    let mut out = Vec::new();
    for alg in names(store, "blobs").await? {
        for prefix in names(store, &format!("blobs/{alg}")).await? {
            for hex in names(store, &format!("blobs/{alg}/{prefix}")).await? {
                let Ok(digest) = format!("{alg}:{hex}").parse::<Digest>() else { continue };
                match store.driver().stat(&layout::blob_data(&digest)).await {
                    Ok(info) => out.push(BlobEntry {
                        digest,
                        size: info.size,
                        age_secs: age_secs(now, info.modified),
                    }),
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::driver::MemoryDriver;
    use crate::store::ManifestMeta;

    const OCI: &str = "application/vnd.oci.image.manifest.v1+json";

    async fn put_blob(store: &Store, repo: &Repo, content: &[u8]) -> Digest {
        let digest = Digest::sha256(content);
        store.driver().put_content(&layout::blob_data(&digest), content).await.unwrap();
        store.link_blob(repo, &digest).await.unwrap();
        digest
    }

    /// An image of a config and one layer, tagged `tag` when given; returns its digest.
    async fn push_image(
        store: &Store,
        repo: &Repo,
        config: &[u8],
        layer: &[u8],
        tag: Option<&str>,
    ) -> Digest {
        let c = put_blob(store, repo, config).await;
        let l = put_blob(store, repo, layer).await;
        let bytes = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c.to_string(), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": l.to_string(), "size": layer.len()}],
        }))
        .unwrap();
        let meta = ManifestMeta {
            digest: Digest::sha256(&bytes),
            media_type: OCI.into(),
            size: bytes.len() as u64,
            subject: None,
        };
        let tags: Vec<Tag> = tag.into_iter().map(|t| Tag::parse(t).unwrap()).collect();
        store.put_manifest(repo, &meta, &bytes, &tags, None).await.unwrap();
        meta.digest
    }

    fn options(dry_run: bool) -> GcOptions {
        GcOptions { policy: Policy { delete_untagged: true, ..Policy::default() }, dry_run }
    }

    #[tokio::test]
    async fn frees_exactly_the_unreferenced_blobs() {
        let store = Store::new(Arc::new(MemoryDriver::new()));
        let repo = Repo::parse("a/b").unwrap();
        let kept = push_image(&store, &repo, b"config-1", b"shared-layer", Some("v1")).await;
        let gone = push_image(&store, &repo, b"config-two", b"shared-layer", Some("v2")).await;
        store.delete_tag(&repo, &Tag::parse("v2").unwrap()).await.unwrap();
        let gone_size = store.blob_size_global(&gone).await.unwrap().unwrap();

        let dry = collect(&store, options(true), || async {}).await.unwrap();
        assert_eq!((dry.manifests_deleted, dry.blobs_deleted), (1, 2));
        assert!(store.blob_size_global(&gone).await.unwrap().is_some(), "--dry-run deleted");

        let report = collect(&store, options(false), || async {}).await.unwrap();
        assert_eq!(report, GcReport { dry_run: false, bytes_freed: gone_size + 10, blobs_scanned: 5, ..dry });
        assert!(store.blob_size_global(&gone).await.unwrap().is_none());
        assert!(store.blob_size_global(&Digest::sha256(b"config-two")).await.unwrap().is_none());
        for live in [kept, Digest::sha256(b"config-1"), Digest::sha256(b"shared-layer")] {
            assert!(store.blob_size_global(&live).await.unwrap().is_some(), "{live}");
        }
        let again = collect(&store, options(false), || async {}).await.unwrap();
        assert_eq!((again.blobs_deleted, again.bytes_freed), (0, 0));
    }

    #[tokio::test]
    async fn a_push_between_mark_and_sweep_keeps_what_it_needs() {
        let store = Store::new(Arc::new(MemoryDriver::new()));
        let repo = Repo::parse("r").unwrap();
        push_image(&store, &repo, b"old-config", b"old-layer", None).await;
        let other = Repo::parse("other").unwrap();
        // Lands after the first mark: reuses the dead image's layer, and brings a new blob
        // linked in another repository.
        let report = collect(&store, options(false), || async {
            push_image(&store, &other, b"new-config", b"old-layer", None).await;
        })
        .await
        .unwrap();
        assert_eq!((report.manifests_deleted, report.blobs_deleted), (1, 2), "{report}");
        assert!(store.blob_size_global(&Digest::sha256(b"old-layer")).await.unwrap().is_some());
        assert!(store.blob_size_global(&Digest::sha256(b"old-config")).await.unwrap().is_none());
    }

    /// An index's children go up untagged before the index: within the grace period an
    /// untagged manifest is a root, even with `delete_untagged`.
    #[tokio::test]
    async fn an_untagged_manifest_within_the_grace_period_stays() {
        let store = Store::new(Arc::new(MemoryDriver::new()));
        let repo = Repo::parse("r").unwrap();
        let child = push_image(&store, &repo, b"child-config", b"child-layer", None).await;
        let policy = Policy { delete_untagged: true, grace_secs: 600, ..Policy::default() };
        let report = collect(&store, GcOptions { policy, dry_run: false }, || async {}).await.unwrap();
        assert_eq!((report.manifests_deleted, report.blobs_deleted, report.blobs_kept_in_grace), (0, 0, 3));
        assert!(store.manifest_meta(&repo, &child).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn expires_old_upload_sessions() {
        let store = Store::new(Arc::new(MemoryDriver::new()));
        let dir = "repositories/r/_uploads";
        let old = serde_json::json!({"offset": 0, "started_at": 1}).to_string();
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        let new = serde_json::json!({"offset": 0, "started_at": now}).to_string();
        store.driver().put_content(&format!("{dir}/{}/state", "a".repeat(32)), old.as_bytes()).await.unwrap();
        store.driver().put_content(&format!("{dir}/{}/state", "b".repeat(32)), new.as_bytes()).await.unwrap();
        let policy = Policy { upload_max_age_secs: Some(3600), ..Policy::default() };
        let report = collect(&store, GcOptions { policy, dry_run: false }, || async {}).await.unwrap();
        assert_eq!(report.uploads_expired, 1);
        assert_eq!(store.driver().list(dir).await.unwrap(), vec!["b".repeat(32)]);
    }
}
