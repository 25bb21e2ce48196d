//! Garbage collection of a registry's store: which manifests and blobs are live, and
//! what a sweep may delete. Sans-IO: the registry lists its store into an [`Inventory`],
//! asks [`mark`] what is live, and asks [`sweep`] what it may delete; it only lists and
//! deletes.
//!
//! Like distribution's `registry garbage-collect`, marking starts from every tag (or,
//! without `--delete-untagged`, from every manifest) of every repository, follows image
//! index children and the referrers whose subject is live (OCI distribution-spec: a
//! referrer is "a manifest with a `subject` field"), and keeps the config and layers of
//! every live manifest. Anything not marked is garbage, but a sweep deletes only what a
//! second mark, over the store re-listed just before deleting, also finds dead: there
//! every manifest that appeared since the first listing is a root, and every blob link
//! that appeared protects its blob, so a push that lands between mark and sweep (even
//! one reusing an old unreferenced blob) keeps all it needs. Blobs younger than the grace
//! period stay too: an upload may be about to link them.

use std::collections::{BTreeMap, BTreeSet};

use crate::digest::Digest;
use crate::manifest::{Manifest, RawManifest};

#[cfg(test)]
mod tests;

/// A manifest revision of one repository, as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    /// The repository holding the revision.
    pub repo: String,
    /// The digest of the manifest's bytes.
    pub digest: Digest,
    /// A tag of the repository points at it.
    pub tagged: bool,
    /// It appeared after the first listing (a push landed during the collection), or
    /// within the grace period (an index's children go up untagged before the index that
    /// tags them): a root whatever its tags.
    pub recent: bool,
    /// The manifest's `subject`, when it is a referrer.
    pub subject: Option<Digest>,
    /// Index children (manifests of the same repository).
    pub children: Vec<Digest>,
    /// Config and layers (blobs).
    pub blobs: Vec<Digest>,
}

/// Why a manifest could not be marked: its references are unknown, so nothing may be
/// swept.
#[derive(Debug, thiserror::Error)]
#[error("manifest {digest} of repository {repo} is unreadable ({reason}); garbage collection stops so that no blob it references is deleted: delete the manifest or restore it")]
pub struct UnreadableManifest {
    /// The repository holding the revision.
    pub repo: String,
    /// The revision's digest.
    pub digest: Digest,
    /// What is wrong with its bytes.
    pub reason: String,
}

impl ManifestEntry {
    /// Reads a stored manifest's references from its exact bytes.
    pub fn parse(
        repo: &str,
        digest: Digest,
        tagged: bool,
        media_type: &str,
        bytes: Vec<u8>,
    ) -> Result<ManifestEntry, UnreadableManifest> {
        let raw = RawManifest::parse(bytes, Some(media_type)).map_err(|e| UnreadableManifest {
            repo: repo.to_owned(),
            digest: digest.clone(),
            reason: e.to_string(),
        })?;
        let (subject, children, blobs) = match raw.manifest() {
            Manifest::Image(image) => (
                image.subject.as_ref().map(|s| s.digest.clone()),
                Vec::new(),
                image.blobs().map(|d| d.digest.clone()).collect(),
            ),
            Manifest::Index(index) => (
                index.subject.as_ref().map(|s| s.digest.clone()),
                index.manifests.iter().map(|d| d.digest.clone()).collect(),
                Vec::new(),
            ),
        };
        Ok(ManifestEntry { repo: repo.to_owned(), digest, tagged, recent: false, subject, children, blobs })
    }
}

/// A blob of the global store, with its age when the driver knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobEntry {
    /// The content's digest (its path in the store).
    pub digest: Digest,
    /// Bytes it takes.
    pub size: u64,
    /// Seconds since it was last written; `None` when the driver cannot tell.
    pub age_secs: Option<u64>,
}

/// An upload session, with the seconds since it started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadEntry {
    /// The repository the upload was started in.
    pub repo: String,
    /// The session id.
    pub id: String,
    /// Seconds since the session started.
    pub age_secs: u64,
}

/// What `ferry serve gc` may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    /// Untagged manifests are garbage too (else every manifest is a root).
    pub delete_untagged: bool,
    /// A blob younger than this is never deleted: an upload may be about to link it.
    pub grace_secs: u64,
    /// Upload sessions older than this expire; `None` keeps them all.
    pub upload_max_age_secs: Option<u64>,
}

/// What marking found live.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Marked {
    /// Blobs (manifests' own bytes included) that a live manifest needs.
    pub live_blobs: BTreeSet<Digest>,
    /// `(repo, digest)` of manifests that are garbage.
    pub dead_manifests: Vec<(String, Digest)>,
}

/// Marks from the roots: every tagged or recent manifest (every manifest unless
/// `delete_untagged`), then index children and referrers of live manifests, to a fixed
/// point. Children and referrers are looked up in the same repository, as the registry
/// stores them.
pub fn mark(manifests: &[ManifestEntry], policy: &Policy) -> Marked {
    let by_key: BTreeMap<(&str, &Digest), &ManifestEntry> =
        manifests.iter().map(|m| ((m.repo.as_str(), &m.digest), m)).collect();
    let mut referrers: BTreeMap<(&str, &Digest), Vec<&ManifestEntry>> = BTreeMap::new();
    for m in manifests {
        if let Some(subject) = &m.subject {
            referrers.entry((m.repo.as_str(), subject)).or_default().push(m);
        }
    }
    let mut live: BTreeSet<(&str, &Digest)> = BTreeSet::new();
    let mut pending: Vec<&ManifestEntry> =
        manifests.iter().filter(|m| m.tagged || m.recent || !policy.delete_untagged).collect();
    while let Some(m) = pending.pop() {
        let key = (m.repo.as_str(), &m.digest);
        if !live.insert(key) {
            continue;
        }
        for child in &m.children {
            pending.extend(by_key.get(&(m.repo.as_str(), child)).copied());
        }
        pending.extend(referrers.get(&key).into_iter().flatten().copied());
    }
    let mut marked = Marked::default();
    for m in manifests {
        if live.contains(&(m.repo.as_str(), &m.digest)) {
            marked.live_blobs.insert(m.digest.clone());
            marked.live_blobs.extend(m.blobs.iter().cloned());
        } else {
            marked.dead_manifests.push((m.repo.clone(), m.digest.clone()));
        }
    }
    marked
}

/// What a sweep deletes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sweep {
    /// `(repo, digest)` of the manifest revisions to unlink (with their tags).
    pub manifests: Vec<(String, Digest)>,
    /// Blob content to delete.
    pub blobs: Vec<BlobEntry>,
    /// Upload sessions that expired.
    pub uploads: Vec<UploadEntry>,
}

impl Sweep {
    /// The bytes the blobs to delete take.
    pub fn bytes(&self) -> u64 {
        self.blobs.iter().map(|b| b.size).sum()
    }
}

/// Whether a blob of this age (seconds; `None` unknown) is past the grace period and may
/// go. A blob of unknown age counts as new unless the grace period is zero.
pub fn past_grace(age_secs: Option<u64>, policy: &Policy) -> bool {
    match age_secs {
        Some(age) => age >= policy.grace_secs,
        None => policy.grace_secs == 0,
    }
}

/// Decides the sweep from two marks: `first` over the store as listed at the start,
/// `second` over the store re-listed just before deleting (recent manifests as roots).
/// Only what both find dead goes. `new_links` are the blobs that some repository linked
/// between the two listings (an upload finished, a mount). A blob of unknown age counts
/// as new unless the grace period is zero.
pub fn sweep(
    first: &Marked,
    second: &Marked,
    blobs: &[BlobEntry],
    new_links: &BTreeSet<Digest>,
    uploads: &[UploadEntry],
    policy: &Policy,
) -> Sweep {
    let old_enough = |age: Option<u64>| past_grace(age, policy);
    let dead_now: BTreeSet<&(String, Digest)> = second.dead_manifests.iter().collect();
    Sweep {
        manifests: first.dead_manifests.iter().filter(|m| dead_now.contains(m)).cloned().collect(),
        blobs: blobs
            .iter()
            .filter(|b| !first.live_blobs.contains(&b.digest) && !second.live_blobs.contains(&b.digest))
            .filter(|b| !new_links.contains(&b.digest))
            .filter(|b| old_enough(b.age_secs))
            .cloned()
            .collect(),
        uploads: uploads
            .iter()
            .filter(|u| policy.upload_max_age_secs.is_some_and(|max| u.age_secs >= max))
            .cloned()
            .collect(),
    }
}
