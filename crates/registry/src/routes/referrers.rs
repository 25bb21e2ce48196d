//! `GET /v2/<name>/referrers/<digest>?artifactType=`: distribution spec end-12a/12b.
//!
//! "The registry MUST return a 200 response with … an image index" of the descriptors
//! of the manifests whose `subject` is `<digest>`, even when there are none or the
//! subject itself was never pushed. With `artifactType`, only matching descriptors are
//! listed and "the registry MUST include … `OCI-Filters-Applied: artifactType`".
//!
//! Clients that only know the referrers tag schema (distribution 1.1: "`<alg>-<ref>`")
//! read `GET /v2/<name>/manifests/sha256-<hex>` instead; when no such tag was pushed,
//! [`tag_schema`] answers the same index there, so they see what the API lists.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use ferry_core::manifest::media_type::OCI_INDEX;
use ferry_core::referrers::fallback_subject;
use http::header::CONTENT_TYPE;
use http::HeaderValue;

use super::shared::OCI_FILTERS_APPLIED;
use crate::error::Result;
use crate::state::AppState;
use crate::store::layout::{parse_digest, Repo};
use crate::uri::query_value;

pub(super) async fn list(
    state: &Arc<AppState>,
    repo: &Repo,
    digest: &str,
    uri: &http::Uri,
) -> Result<Response> {
    let subject = parse_digest(digest)?;
    let mut manifests = state.store.referrers(repo, &subject).await?;
    let filter = query_value(uri, "artifactType").filter(|t| !t.is_empty());
    if let Some(artifact_type) = &filter {
        manifests.retain(|d| d.get("artifactType").and_then(|t| t.as_str()) == Some(artifact_type.as_str()));
    }
    let mut response = index(&manifests).into_response();
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(OCI_INDEX));
    if filter.is_some() {
        h.insert(OCI_FILTERS_APPLIED, HeaderValue::from_static("artifactType"));
    }
    Ok(response)
}

fn index(manifests: &[serde_json::Value]) -> Vec<u8> {
    let index = serde_json::json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
    serde_json::to_vec(&index).unwrap_or_default()
}

/// The referrers index for a tag-schema tag nobody pushed: `Some` when `tag` names a
/// subject (`sha256-<hex>`) that has referrers, else `None` (a 404, from which a client
/// "MUST begin with an empty image index").
pub(super) async fn tag_schema(state: &Arc<AppState>, repo: &Repo, tag: &str) -> Result<Option<Vec<u8>>> {
    let Some(subject) = fallback_subject(tag) else { return Ok(None) };
    let manifests = state.store.referrers(repo, &subject).await?;
    Ok((!manifests.is_empty()).then(|| index(&manifests)))
}
