//! Manifests through the cache: by digest from storage, else fetched once; by tag from
//! storage while the tag's last check is younger than the upstream's TTL, else after one
//! `HEAD` upstream, fetching the bytes only when the tag moved to a digest not stored.

use ferry_core::digest::Digest;
use ferry_core::error::ErrorKind;
use ferry_core::fetch::{Fetched, Want};

use super::{upstream_error, Cache, Source};
use crate::error::{ErrorCode, RegistryError, Result};
use crate::state::AppState;
use crate::store::layout::{Reference, Repo, Tag};
use crate::store::ManifestMeta;

/// Whether an answer from storage is fresh, or served while the upstream failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    Stale,
}

/// Makes sure storage holds what `reference` names in `repo`, fetching it if needed.
pub async fn ensure(
    state: &AppState,
    cache: &Cache,
    source: &Source<'_>,
    repo: &Repo,
    reference: &str,
) -> Result<Freshness> {
    let parsed = Reference::parse(reference)?;
    let lock = cache.manifest_lock(repo, reference);
    let _one_at_a_time = lock.lock().await;
    match parsed {
        Reference::Digest(digest) => {
            if state.store.manifest_meta(repo, &digest).await?.is_some() {
                return Ok(Freshness::Fresh);
            }
            let fetched = cache.fetch(source, Want::Manifest(digest.to_string())).await;
            let fetched = fetched.map_err(|e| upstream_error(&e, ErrorCode::ManifestUnknown, reference))?;
            store(state, repo, fetched, None).await?;
            Ok(Freshness::Fresh)
        }
        Reference::Tag(tag) => ensure_tag(state, cache, source, repo, &tag).await,
    }
}

async fn ensure_tag(
    state: &AppState,
    cache: &Cache,
    source: &Source<'_>,
    repo: &Repo,
    tag: &Tag,
) -> Result<Freshness> {
    let key = (repo.as_str().to_owned(), tag.as_str().to_owned());
    let local = state.store.tag_target(repo, tag).await?;
    if local.is_some() {
        let checked = cache.checked.lock().map(|c| c.get(&key).copied()).unwrap_or(None);
        if checked.is_some_and(|at| at.elapsed() < source.tag_ttl) {
            return Ok(Freshness::Fresh);
        }
    }
    let upstream = match cache.fetch(source, Want::TagDigest(tag.as_str().to_owned())).await {
        Ok(Fetched::TagDigest(digest)) => digest,
        Ok(_) => return Err(RegistryError::internal("proxy", "the upstream's HEAD gave no digest")),
        // Nothing upstream by that name: what was cached is gone upstream, but still ours.
        Err(e) if local.is_some() && e.kind() != ErrorKind::NotFound => {
            tracing::warn!(repository = repo.as_str(), tag = tag.as_str(), "serving the cached tag: {e}");
            return Ok(Freshness::Stale);
        }
        Err(e) => {
            return Err(upstream_error(
                &e,
                ErrorCode::ManifestUnknown,
                &format!("{}:{}", repo.as_str(), tag.as_str()),
            ))
        }
    };
    if local.as_ref() != Some(&upstream) {
        match state.store.manifest(repo, &Reference::Digest(upstream.clone())).await? {
            Some(stored) => retag(state, repo, tag, &stored.meta, &stored.bytes).await?,
            None => {
                let fetched = cache.fetch(source, Want::Manifest(upstream.to_string())).await;
                let what = format!("{}:{}", repo.as_str(), tag.as_str());
                let fetched = fetched.map_err(|e| upstream_error(&e, ErrorCode::ManifestUnknown, &what))?;
                store(state, repo, fetched, Some(tag)).await?;
            }
        }
    }
    if let Ok(mut checked) = cache.checked.lock() {
        checked.insert(key, std::time::Instant::now());
    }
    Ok(Freshness::Fresh)
}

/// Stores a fetched manifest exactly as fetched (the core verified its digest).
async fn store(state: &AppState, repo: &Repo, fetched: Fetched, tag: Option<&Tag>) -> Result<Digest> {
    let Fetched::Manifest { bytes, media_type, digest } = fetched else {
        return Err(RegistryError::internal("proxy", "the upstream's answer was not a manifest"));
    };
    // Referrers are not cached: a cached manifest lists under no subject.
    let meta = ManifestMeta { digest: digest.clone(), media_type, size: bytes.len() as u64, subject: None };
    let tags: Vec<Tag> = tag.into_iter().cloned().collect();
    state.store.put_manifest(repo, &meta, &bytes, &tags, None).await?;
    Ok(digest)
}

async fn retag(state: &AppState, repo: &Repo, tag: &Tag, meta: &ManifestMeta, bytes: &[u8]) -> Result<()> {
    Ok(state.store.put_manifest(repo, meta, bytes, std::slice::from_ref(tag), None).await?)
}
