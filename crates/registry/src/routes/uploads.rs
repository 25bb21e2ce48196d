//! Blob uploads: `POST /v2/<name>/blobs/uploads/` (blob-upload) and
//! `PATCH`/`PUT`/`GET`/`DELETE /v2/<name>/blobs/uploads/<id>` (blob-upload-chunk).
//!
//! All of the spec's ways to push a blob: monolithic (`POST ?digest=` with the body, or
//! `POST` then `PUT ?digest=` with the body), streamed (`PATCH` without
//! `Content-Range`), chunked (`PATCH` with `Content-Range`, then `PUT`), and a
//! cross-repository mount (`POST ?mount=&from=`).

use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::header::{CONTENT_LENGTH, CONTENT_RANGE, LOCATION, RANGE};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body::Body as _;

use super::shared::{DIGEST_HEADER, UPLOAD_UUID};
use crate::access::{Action, Identity};
use crate::config::Verb;
use crate::error::{ErrorCode, RegistryError, Result};
use crate::state::AppState;
use crate::store::layout::{parse_digest, Repo, UploadId};
use crate::store::uploads::OpenUpload;
use crate::uri::query_value;

/// 202 with the session's `Location`, `Range` and id: distribution spec end-4a/5/13.
fn accepted(up: &OpenUpload) -> Response {
    let mut response = (StatusCode::ACCEPTED, [(CONTENT_LENGTH, "0")]).into_response();
    session_headers(response.headers_mut(), up);
    response
}

fn session_headers(h: &mut HeaderMap, up: &OpenUpload) {
    for (name, value) in
        [(LOCATION, up.location()), (RANGE, up.range()), (UPLOAD_UUID, up.id.as_str().to_owned())]
    {
        if let Ok(value) = HeaderValue::from_str(&value) {
            h.insert(name, value);
        }
    }
}

/// 201 with the blob's `Location` and digest.
fn created(repo: &Repo, digest: &ferry_core::digest::Digest) -> Response {
    let mut response = (StatusCode::CREATED, [(CONTENT_LENGTH, "0")]).into_response();
    let h = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&format!("/v2/{repo}/blobs/{digest}")) {
        h.insert(LOCATION, value);
    }
    if let Ok(value) = HeaderValue::from_str(&digest.to_string()) {
        h.insert(DIGEST_HEADER, value);
    }
    response
}

/// A body with nothing in it (no `Content-Length`, or `0`).
fn empty_body(body: &Body) -> bool {
    body.size_hint().exact() == Some(0)
}

pub(super) async fn start(
    state: &Arc<AppState>,
    repo: &Repo,
    identity: &Identity,
    parts: &Parts,
    body: Body,
) -> Result<Response> {
    if let Some(mount) = query_value(&parts.uri, "mount") {
        let digest = parse_digest(&mount)?;
        // Distribution spec end-11: 201 when the blob could be mounted; otherwise "the
        // registry SHOULD … return a 202 Accepted" with an upload session.
        if let Some(from) = query_value(&parts.uri, "from") {
            let from = Repo::parse(&from)?;
            let source = Action::Repo { repo: from.clone(), verb: Verb::Pull };
            let may_read = state.auth.as_ref().is_none_or(|auth| auth.permits(identity, &source));
            if may_read && state.store.blob_size(&from, &digest).await?.is_some() {
                state.store.link_blob(repo, &digest).await?;
                tracing::info!(%repo, %from, %digest, "blob mounted");
                return Ok(created(repo, &digest));
            }
        }
        let up = state.uploads.create(repo).await?;
        return Ok(accepted(&up));
    }
    if let Some(digest) = query_value(&parts.uri, "digest") {
        // Distribution spec end-4b: monolithic upload in a single POST.
        let digest = parse_digest(&digest)?;
        // The client never learns this session's URL, so a failure discards it.
        let mut up = state.uploads.create(repo).await?;
        if let Err(err) = state.uploads.append(&mut up, body, None).await {
            state.uploads.cancel(up).await?;
            return Err(err);
        }
        let id = up.id.clone();
        if let Err(err) = state.uploads.complete(up, &digest).await {
            state.uploads.cancel(state.uploads.open(repo, &id).await?).await?;
            return Err(err);
        }
        return Ok(created(repo, &digest));
    }
    let up = state.uploads.create(repo).await?;
    Ok(accepted(&up))
}

/// Parses `Content-Range: <start>-<end>` (the spec's form), also accepting the RFC 9110
/// forms `bytes <start>-<end>/<total>` and `bytes=<start>-<end>` that some clients send.
pub(super) fn parse_content_range(value: &str) -> Option<(u64, u64)> {
    let value = value.trim();
    let value = value.strip_prefix("bytes=").or_else(|| value.strip_prefix("bytes ")).unwrap_or(value);
    let value = value.split('/').next()?;
    let (first, last) = value.split_once('-')?;
    Some((first.trim().parse().ok()?, last.trim().parse().ok()?))
}

/// The chunk's `Content-Range`, checked for form only: a header that is not a range at
/// all, or whose end is before its start, is a bad request (400); a well-formed range
/// that does not continue the upload is the spec's 416, decided by the session.
fn content_range(parts: &Parts) -> Result<Option<(u64, u64)>> {
    let Some(value) = parts.headers.get(CONTENT_RANGE) else { return Ok(None) };
    let text = value.to_str().unwrap_or_default();
    let invalid = |why: &str| {
        Err(RegistryError::new(ErrorCode::BlobUploadInvalid, format!("Content-Range {text:?} {why}")))
    };
    match parse_content_range(text) {
        None => invalid("is not `<start>-<end>`"),
        Some((first, last)) if last < first => invalid("ends before it starts"),
        // `0-18446744073709551615` is 2^64 bytes: more than a length can say.
        Some((first, last)) if (last - first).checked_add(1).is_none() => {
            invalid("announces 2^64 bytes, more than any blob can have")
        }
        Some(range) => Ok(Some(range)),
    }
}

/// Distribution spec end-5 (`PATCH`): appends a chunk, or a whole stream, and answers
/// 202 with `Range: 0-<last byte received>`.
pub(super) async fn patch(
    state: &Arc<AppState>,
    repo: &Repo,
    id: &str,
    parts: &Parts,
    body: Body,
) -> Result<Response> {
    let id = UploadId::parse(id)?;
    let range = content_range(parts)?;
    let mut up = state.uploads.open(repo, &id).await?;
    state.uploads.append(&mut up, body, range).await?;
    Ok(accepted(&up))
}

/// Distribution spec end-6 (`PUT ?digest=`): appends the final chunk if there is one,
/// checks the digest, and answers 201. A mismatch gets 400 `DIGEST_INVALID`, stores
/// nothing, and keeps the session (with the final chunk) for another try.
pub(super) async fn put(
    state: &Arc<AppState>,
    repo: &Repo,
    id: &str,
    parts: &Parts,
    body: Body,
) -> Result<Response> {
    let id = UploadId::parse(id)?;
    let Some(digest) = query_value(&parts.uri, "digest") else {
        return Err(RegistryError::new(
            ErrorCode::DigestInvalid,
            "the `digest` query parameter is required to complete an upload",
        ));
    };
    let digest = parse_digest(&digest)?;
    let range = content_range(parts)?;
    let mut up = state.uploads.open(repo, &id).await?;
    if !empty_body(&body) {
        state.uploads.append(&mut up, body, range).await?;
    }
    state.uploads.complete(up, &digest).await?;
    tracing::info!(%repo, %digest, "blob pushed");
    Ok(created(repo, &digest))
}

/// Distribution spec end-13: "204 No Content" with `Location` and `Range`.
pub(super) async fn status(state: &Arc<AppState>, repo: &Repo, id: &str) -> Result<Response> {
    let id = UploadId::parse(id)?;
    let up = state.uploads.open(repo, &id).await?;
    let mut response = (StatusCode::NO_CONTENT, [(CONTENT_LENGTH, "0")]).into_response();
    session_headers(response.headers_mut(), &up);
    Ok(response)
}

/// Cancels a session: 204, and the bytes are gone.
pub(super) async fn cancel(state: &Arc<AppState>, repo: &Repo, id: &str) -> Result<Response> {
    let id = UploadId::parse(id)?;
    let up = state.uploads.open(repo, &id).await?;
    state.uploads.cancel(up).await?;
    Ok((StatusCode::NO_CONTENT, [(CONTENT_LENGTH, "0")]).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_table() {
        let cases = [
            ("0-99", Some((0, 99))),
            ("bytes 100-199/*", Some((100, 199))),
            ("bytes=5-9", Some((5, 9))),
            (" 7-7 ", Some((7, 7))),
            ("0-18446744073709551615", Some((0, u64::MAX))),
            ("5-2", Some((5, 2))),
            ("nonsense", None),
            ("-5", None),
            ("a-b", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_content_range(input), want, "{input}");
        }
    }
}
