//! `GET`, `HEAD`, `PUT` and `DELETE /v2/<name>/manifests/<reference>`.
//!
//! Manifests are stored byte for byte; `GET` answers the bytes that were pushed, with the
//! media type they were pushed as. A push is refused unless everything it references is
//! already in the repository: distribution spec, "Pushing Manifests": "the registry MAY
//! reject a manifest of any type uploaded to the manifest endpoint if it references
//! manifests or blobs that do not exist in the registry" (ferry does), with the one
//! exception the spec requires: "the registry MUST accept a manifest with a subject
//! field that refers to a manifest that does not exist".

use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use ferry_core::digest::Digest;
use ferry_core::manifest::{media_type, ImageManifest, Manifest, ManifestError, RawManifest};
use futures_util::StreamExt;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use http::{HeaderValue, StatusCode};

use super::shared::{check_delete_enabled, DIGEST_HEADER, OCI_SUBJECT};
use crate::error::{ErrorCode, RegistryError, Result};
use crate::state::AppState;
use crate::store::layout::{Reference, Repo, Tag};
use crate::store::ManifestMeta;
use crate::uri::query_pairs;

fn manifest_unknown(reference: &str) -> RegistryError {
    RegistryError::new(ErrorCode::ManifestUnknown, "manifest unknown to registry")
        .with_detail(serde_json::json!({ "reference": reference }))
}

pub(super) async fn get(state: &Arc<AppState>, repo: &Repo, reference: &str, head: bool) -> Result<Response> {
    let parsed = Reference::parse(reference)?;
    let (bytes, media_type, digest) = match state.store.manifest(repo, &parsed).await? {
        Some(stored) => (stored.bytes, stored.meta.media_type, stored.meta.digest),
        // A tag-schema lookup of a subject with referrers: the API's list (see `referrers`).
        None => match super::referrers::tag_schema(state, repo, reference).await? {
            Some(bytes) => {
                let digest = Digest::sha256(&bytes);
                (bytes, media_type::OCI_INDEX.to_owned(), digest)
            }
            None => return Err(manifest_unknown(reference)),
        },
    };
    let length = bytes.len();
    let body = if head { Body::empty() } else { Body::from(bytes) };
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&media_type) {
        h.insert(CONTENT_TYPE, value);
    }
    h.insert(CONTENT_LENGTH, length.into());
    if let Ok(value) = HeaderValue::from_str(&digest.to_string()) {
        h.insert(DIGEST_HEADER, value);
    }
    Ok(response)
}

/// Reads the body up to `limit` bytes; larger gets 413. Distribution spec: "Registries
/// SHOULD accept manifests of at least 4 megabytes … a registry MAY respond 413".
async fn read_limited(body: Body, limit: u64) -> Result<Vec<u8>> {
    let too_large = || {
        RegistryError::new(
            ErrorCode::ManifestInvalid,
            format!("manifest is larger than the limit of {limit} bytes"),
        )
        .with_status(StatusCode::PAYLOAD_TOO_LARGE)
    };
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            RegistryError::new(ErrorCode::ManifestInvalid, format!("manifest body ended early: {e}"))
        })?;
        if bytes.len() as u64 + chunk.len() as u64 > limit {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

fn manifest_error(err: ManifestError) -> RegistryError {
    let status = match err {
        ManifestError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    RegistryError::new(ErrorCode::ManifestInvalid, err.to_string()).with_status(status)
}

/// The descriptor the referrers API lists for a manifest with a subject. Image-spec:
/// the `artifactType` is the manifest's `artifactType`, else its config's media type.
fn referrer_descriptor(raw: &RawManifest, digest: &Digest, size: usize) -> serde_json::Value {
    let (artifact_type, annotations) = match raw.manifest() {
        Manifest::Image(m) => {
            (m.artifact_type.clone().or_else(|| Some(m.config.media_type.clone())), &m.annotations)
        }
        Manifest::Index(i) => (i.artifact_type.clone(), &i.annotations),
    };
    let mut descriptor = serde_json::json!({
        "mediaType": raw.media_type(),
        "digest": digest.to_string(),
        "size": size,
    });
    if let Some(artifact_type) = artifact_type {
        descriptor["artifactType"] = artifact_type.into();
    }
    if !annotations.is_empty() {
        descriptor["annotations"] = serde_json::to_value(annotations).unwrap_or_default();
    }
    descriptor
}

/// A descriptor whose `size` is not the size of what is stored under its digest. Image
/// spec: "size ... specifies the size, in bytes, of the raw content"; a client that trusts
/// it would read past the end or stop short. The spec's error table has no code for a
/// wrong size, so this is MANIFEST_INVALID ("the manifest ... fails ... validation");
/// MANIFEST_BLOB_UNKNOWN stays for content that is not there at all.
fn size_mismatch(what: &str, digest: &Digest, declared: u64, stored: u64) -> RegistryError {
    RegistryError::new(
        ErrorCode::ManifestInvalid,
        format!("the descriptor of {what} {digest} says size {declared}, but the stored content has {stored} bytes"),
    )
    .with_detail(serde_json::json!({ "digest": digest.to_string(), "size": declared, "stored": stored }))
}

/// Every blob (for an image) or child manifest (for an index) must be in the repository,
/// with the size its descriptor gives.
async fn check_references(state: &AppState, repo: &Repo, manifest: &Manifest) -> Result<()> {
    match manifest {
        Manifest::Image(image) => {
            for blob in image.blobs().filter(|d| !ImageManifest::is_foreign(d)) {
                let Some(stored) = state.store.blob_size(repo, &blob.digest).await? else {
                    return Err(RegistryError::new(
                        ErrorCode::ManifestBlobUnknown,
                        format!(
                            "manifest references blob {} which is not in {repo}; push it first",
                            blob.digest
                        ),
                    )
                    .with_detail(serde_json::json!({ "digest": blob.digest.to_string() })));
                };
                if stored != blob.size {
                    return Err(size_mismatch("blob", &blob.digest, blob.size, stored));
                }
            }
        }
        Manifest::Index(index) => {
            for child in &index.manifests {
                let Some(meta) = state.store.manifest_meta(repo, &child.digest).await? else {
                    return Err(RegistryError::new(
                        ErrorCode::ManifestUnknown,
                        format!(
                            "index references manifest {} which is not in {repo}; push it first",
                            child.digest
                        ),
                    )
                    .with_status(StatusCode::BAD_REQUEST)
                    .with_detail(serde_json::json!({ "digest": child.digest.to_string() })));
                };
                if meta.size != child.size {
                    return Err(size_mismatch("manifest", &child.digest, child.size, meta.size));
                }
            }
        }
    }
    Ok(())
}

pub(super) async fn put(
    state: &Arc<AppState>,
    repo: &Repo,
    reference: &str,
    parts: &http::request::Parts,
    body: Body,
) -> Result<Response> {
    let parsed = Reference::parse(reference)?;
    let mut tags = Vec::new();
    if let Reference::Tag(tag) = &parsed {
        tags.push(tag.clone());
    }
    // Distribution spec v1.1: `?tag=` may repeat, to tag a manifest pushed by digest.
    for (key, value) in query_pairs(parts.uri.query()) {
        if key == "tag" {
            tags.push(Tag::parse(&value)?);
        }
    }
    let content_type = parts.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let limit = state.config.limits.max_manifest_bytes.min(media_type::MAX_MANIFEST_BYTES as u64);
    let bytes = read_limited(body, limit).await?;
    let size = bytes.len();
    let raw = RawManifest::parse(bytes, content_type.as_deref()).map_err(manifest_error)?;
    let digest = match &parsed {
        Reference::Digest(expected) => {
            let actual = Digest::of(expected.algorithm(), raw.bytes());
            if &actual != expected {
                return Err(RegistryError::new(
                    ErrorCode::DigestInvalid,
                    format!("manifest content has digest {actual}, not {expected} as in the URL"),
                )
                .with_detail(
                    serde_json::json!({ "expected": expected.to_string(), "actual": actual.to_string() }),
                ));
            }
            actual
        }
        Reference::Tag(_) => raw.digest().clone(),
    };
    check_references(state, repo, raw.manifest()).await?;
    let subject = match raw.manifest() {
        Manifest::Image(m) => m.subject.as_ref(),
        Manifest::Index(i) => i.subject.as_ref(),
    }
    .map(|d| d.digest.clone());
    let meta = ManifestMeta {
        digest: digest.clone(),
        media_type: raw.media_type().to_owned(),
        size: size as u64,
        subject,
    };
    let referrer = meta.subject.as_ref().map(|_| referrer_descriptor(&raw, &digest, size));
    state.store.put_manifest(repo, &meta, raw.bytes(), &tags, referrer.as_ref()).await?;
    tracing::info!(%repo, %digest, tags = ?tags.iter().map(Tag::as_str).collect::<Vec<_>>(), "manifest pushed");

    let mut response = (StatusCode::CREATED, [(CONTENT_LENGTH, "0")]).into_response();
    let h = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&format!("/v2/{repo}/manifests/{digest}")) {
        h.insert(LOCATION, value);
    }
    if let Ok(value) = HeaderValue::from_str(&digest.to_string()) {
        h.insert(DIGEST_HEADER, value);
    }
    // Distribution spec: "If a manifest with a subject field is pushed, the registry MUST
    // respond with the OCI-Subject header set to the subject's digest."
    if let Some(subject) = &meta.subject {
        if let Ok(value) = HeaderValue::from_str(&subject.to_string()) {
            h.insert(OCI_SUBJECT, value);
        }
    }
    Ok(response)
}

/// Distribution spec end-9: by tag, the tag goes (202); by digest, the manifest and
/// every tag pointing at it go (202); unknown references get 404.
/// The tags a manifest's deletion took with it, for its events.
#[derive(Debug, Clone)]
pub(super) struct DeletedTags(pub Vec<String>);

pub(super) async fn delete(state: &Arc<AppState>, repo: &Repo, reference: &str) -> Result<Response> {
    check_delete_enabled(state)?;
    let tags = match Reference::parse(reference)? {
        Reference::Tag(tag) => state.store.delete_tag(repo, &tag).await?.then(Vec::new),
        Reference::Digest(digest) => state.store.delete_manifest(repo, &digest).await?,
    };
    let Some(tags) = tags else { return Err(manifest_unknown(reference)) };
    let mut response = (StatusCode::ACCEPTED, [(CONTENT_LENGTH, "0")]).into_response();
    response.extensions_mut().insert(DeletedTags(tags));
    Ok(response)
}
