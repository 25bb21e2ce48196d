//! The registry's store: its objects laid out over a storage driver ([`crate::driver`],
//! which only knows paths and bytes). A content-addressed blob store shared by every
//! repository, per-repository links to it (blobs, manifest revisions, tags, referrers)
//! ([`layout`] says where each lives), and blob upload sessions ([`uploads`]). A
//! cross-repository mount is one more link; no bytes move.
//!
//! Ordering keeps the store consistent after a crash: content is written before any link
//! to it, and a link is removed before anything it points to.

use std::sync::Arc;

use ferry_core::digest::Digest;
use serde::{Deserialize, Serialize};

use crate::driver::{BoxReader, StorageDriver, StorageError};

pub mod layout;
pub mod uploads;

use layout::{Reference, Repo, Tag};

/// What the registry remembers about a manifest in a repository, besides its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestMeta {
    pub digest: Digest,
    /// The `Content-Type` it was pushed with (or its `mediaType` field): GETs answer it.
    pub media_type: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Digest>,
}

/// A manifest read back from a repository.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    pub meta: ManifestMeta,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Store {
    driver: Arc<dyn StorageDriver>,
}

type Result<T> = std::result::Result<T, StorageError>;

/// `Ok(None)` for not-found, other errors kept.
fn found<T>(result: Result<T>) -> Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

impl Store {
    pub fn new(driver: Arc<dyn StorageDriver>) -> Self {
        Store { driver }
    }

    pub fn driver(&self) -> &Arc<dyn StorageDriver> {
        &self.driver
    }

    /// The blob's size if it is present in the global store.
    pub async fn blob_size_global(&self, digest: &Digest) -> Result<Option<u64>> {
        Ok(found(self.driver.stat(&layout::blob_data(digest)).await)?.map(|info| info.size))
    }

    /// The blob's size if `repo` links it and its content is present.
    pub async fn blob_size(&self, repo: &Repo, digest: &Digest) -> Result<Option<u64>> {
        if found(self.driver.stat(&layout::layer_link(repo, digest)).await)?.is_none() {
            return Ok(None);
        }
        self.blob_size_global(digest).await
    }

    pub async fn open_blob(&self, digest: &Digest, offset: u64) -> Result<BoxReader> {
        self.driver.reader(&layout::blob_data(digest), offset).await
    }

    pub async fn link_blob(&self, repo: &Repo, digest: &Digest) -> Result<()> {
        self.driver.put_content(&layout::layer_link(repo, digest), digest.to_string().as_bytes()).await
    }

    /// Removes the repository's link to a blob. The content stays for other repositories
    /// (reclaiming unreferenced content is a garbage collector's job).
    pub async fn unlink_blob(&self, repo: &Repo, digest: &Digest) -> Result<bool> {
        let path = layout::layer_link(repo, digest);
        Ok(found(self.driver.delete(path.trim_end_matches("/link")).await)?.is_some())
    }

    /// Reads a manifest by tag or digest.
    pub async fn manifest(&self, repo: &Repo, reference: &Reference) -> Result<Option<StoredManifest>> {
        let digest = match reference {
            Reference::Digest(d) => d.clone(),
            Reference::Tag(tag) => match self.tag_target(repo, tag).await? {
                Some(d) => d,
                None => return Ok(None),
            },
        };
        let Some(meta) = self.manifest_meta(repo, &digest).await? else { return Ok(None) };
        let Some(bytes) = found(self.driver.get_content(&layout::blob_data(&digest)).await)? else {
            return Ok(None);
        };
        Ok(Some(StoredManifest { meta, bytes }))
    }

    pub async fn manifest_meta(&self, repo: &Repo, digest: &Digest) -> Result<Option<ManifestMeta>> {
        let Some(raw) = found(self.driver.get_content(&layout::revision_link(repo, digest)).await)? else {
            return Ok(None);
        };
        serde_json::from_slice(&raw).map(Some).map_err(|e| StorageError::Io {
            path: layout::revision_link(repo, digest),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })
    }

    pub async fn tag_target(&self, repo: &Repo, tag: &Tag) -> Result<Option<Digest>> {
        let Some(raw) = found(self.driver.get_content(&layout::tag_link(repo, tag)).await)? else {
            return Ok(None);
        };
        Ok(String::from_utf8_lossy(&raw).trim().parse().ok())
    }

    /// Stores a manifest: bytes, then the revision link, then the referrer entry, then
    /// the tags. `referrer` is the descriptor listed by the subject's referrers API.
    pub async fn put_manifest(
        &self,
        repo: &Repo,
        meta: &ManifestMeta,
        bytes: &[u8],
        tags: &[Tag],
        referrer: Option<&serde_json::Value>,
    ) -> Result<()> {
        let blob = layout::blob_data(&meta.digest);
        if found(self.driver.stat(&blob).await)?.is_none() {
            self.driver.put_content(&blob, bytes).await?;
        }
        let meta_json = serde_json::to_vec(meta).unwrap_or_default();
        self.driver.put_content(&layout::revision_link(repo, &meta.digest), &meta_json).await?;
        if let (Some(subject), Some(descriptor)) = (&meta.subject, referrer) {
            let link = layout::referrer_link(repo, subject, &meta.digest);
            self.driver.put_content(&link, &serde_json::to_vec(descriptor).unwrap_or_default()).await?;
        }
        for tag in tags {
            self.driver.put_content(&layout::tag_link(repo, tag), meta.digest.to_string().as_bytes()).await?;
        }
        Ok(())
    }

    /// Deletes a tag; the manifest stays.
    pub async fn delete_tag(&self, repo: &Repo, tag: &Tag) -> Result<bool> {
        Ok(found(self.driver.delete(&layout::tag_dir(repo, tag)).await)?.is_some())
    }

    /// Deletes a manifest from a repository, with every tag that points at it and its
    /// referrer entry; `None` when there was no such manifest, else the tags deleted.
    pub async fn delete_manifest(&self, repo: &Repo, digest: &Digest) -> Result<Option<Vec<String>>> {
        let Some(meta) = self.manifest_meta(repo, digest).await? else { return Ok(None) };
        let mut deleted = Vec::new();
        for name in self.tags(repo).await?.unwrap_or_default() {
            let Ok(tag) = Tag::parse(&name) else { continue };
            if self.tag_target(repo, &tag).await?.as_ref() == Some(digest) {
                found(self.driver.delete(&layout::tag_dir(repo, &tag)).await)?;
                deleted.push(name);
            }
        }
        if let Some(subject) = &meta.subject {
            found(self.driver.delete(&layout::referrer_link(repo, subject, digest)).await)?;
        }
        found(self.driver.delete(&layout::revision_dir(repo, digest)).await)?;
        Ok(Some(deleted))
    }

    /// Whether a blob or a manifest was ever pushed to the repository. Upload sessions do
    /// not count: an upload that failed or was never finished leaves no repository.
    pub async fn repo_exists(&self, repo: &Repo) -> Result<bool> {
        for dir in [layout::manifests_dir(repo), layout::layers_dir(repo)] {
            // A listing, not a stat: on object storage a directory is only a key prefix,
            // which a list call answers directly.
            if found(self.driver.list(&dir).await)?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// All tags, sorted; `None` when nothing was ever pushed to the repository. A tag is
    /// listed only once its link is whole and names a digest: a directory that a crash
    /// left holding only a temp file (or an empty link) is no tag.
    pub async fn tags(&self, repo: &Repo) -> Result<Option<Vec<String>>> {
        if !self.repo_exists(repo).await? {
            return Ok(None);
        }
        let mut tags = Vec::new();
        for name in found(self.driver.list(&layout::tags_dir(repo)).await)?.unwrap_or_default() {
            let Ok(tag) = Tag::parse(&name) else { continue };
            if self.tag_target(repo, &tag).await?.is_some() {
                tags.push(name);
            }
        }
        Ok(Some(tags))
    }

    /// Every repository holding at least one manifest, sorted.
    pub async fn catalog(&self) -> Result<Vec<String>> {
        let mut repos = Vec::new();
        let mut pending = vec![layout::repositories().to_owned()];
        while let Some(dir) = pending.pop() {
            let Some(children) = found(self.driver.list(&dir).await)? else { continue };
            if children.iter().any(|c| c == "_manifests") {
                repos.push(dir.trim_start_matches("repositories/").to_owned());
            }
            pending.extend(children.iter().filter(|c| !c.starts_with('_')).map(|c| format!("{dir}/{c}")));
        }
        repos.sort();
        Ok(repos)
    }

    /// The descriptors of the manifests whose `subject` is `subject`, sorted by digest.
    pub async fn referrers(&self, repo: &Repo, subject: &Digest) -> Result<Vec<serde_json::Value>> {
        let dir = layout::referrers_dir(repo, subject);
        let mut out = Vec::new();
        for name in found(self.driver.list(&dir).await)?.unwrap_or_default() {
            let Some(raw) = found(self.driver.get_content(&format!("{dir}/{name}")).await)? else { continue };
            if let Ok(descriptor) = serde_json::from_slice(&raw) {
                out.push(descriptor);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::MemoryDriver;

    fn digest(s: &[u8]) -> Digest {
        Digest::sha256(s)
    }

    #[tokio::test]
    async fn manifests_tags_and_catalog() {
        let store = Store::new(Arc::new(MemoryDriver::new()));
        let repo = Repo::parse("a/b").unwrap();
        let bytes = b"{}";
        let meta = ManifestMeta { digest: digest(bytes), media_type: "x".into(), size: 2, subject: None };
        let tags = [Tag::parse("v1").unwrap(), Tag::parse("v2").unwrap()];
        store.link_blob(&repo, &digest(b"config")).await.unwrap();
        store.put_manifest(&repo, &meta, bytes, &tags, None).await.unwrap();
        let by_tag = store.manifest(&repo, &Reference::Tag(tags[0].clone())).await.unwrap().unwrap();
        assert_eq!(by_tag.bytes, bytes);
        assert_eq!(store.tags(&repo).await.unwrap().unwrap(), vec!["v1", "v2"]);
        store.put_manifest(&Repo::parse("a").unwrap(), &meta, bytes, &[], None).await.unwrap();
        assert_eq!(store.catalog().await.unwrap(), vec!["a", "a/b"]);

        assert!(store.delete_manifest(&repo, &meta.digest).await.unwrap().is_some());
        assert_eq!(store.tags(&repo).await.unwrap().unwrap(), Vec::<String>::new());
        assert!(store.manifest(&repo, &Reference::Digest(meta.digest.clone())).await.unwrap().is_none());
        // Another repository's copy is untouched.
        let other = Repo::parse("a").unwrap();
        assert!(store.manifest(&other, &Reference::Digest(meta.digest)).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn blob_links_are_per_repository() {
        let store = Store::new(Arc::new(MemoryDriver::new()));
        let (a, b) = (Repo::parse("a").unwrap(), Repo::parse("b").unwrap());
        let d = digest(b"x");
        store.driver().put_content(&layout::blob_data(&d), b"x").await.unwrap();
        store.link_blob(&a, &d).await.unwrap();
        assert_eq!(store.blob_size(&a, &d).await.unwrap(), Some(1));
        assert_eq!(store.blob_size(&b, &d).await.unwrap(), None);
        assert!(store.unlink_blob(&a, &d).await.unwrap());
        assert_eq!(store.blob_size(&a, &d).await.unwrap(), None);
        assert_eq!(store.blob_size_global(&d).await.unwrap(), Some(1));
    }
}
