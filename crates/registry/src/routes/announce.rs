//! The events a successful request causes, in distribution's terms: a manifest or blob
//! pushed, pulled (`GET`; a `HEAD` only asks), deleted, or a blob mounted from another
//! repository. Built from the route and the answer, after the handler has succeeded, and
//! handed to the notifier, which never makes the request wait.

use std::sync::Arc;

use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT};
use http::request::Parts;
use http::{HeaderMap, Method, StatusCode};

use super::shared::DIGEST_HEADER;
use super::Route;
use crate::access::token::{now_secs, rfc3339};
use crate::access::Identity;
use crate::notify::event::{Action, Actor, Event, RequestRecord, Source, Target};
use crate::state::AppState;
use crate::uri::query_value;

/// distribution's media type for blobs in events.
const BLOB_MEDIA_TYPE: &str = "application/octet-stream";

fn text(headers: &HeaderMap, name: impl http::header::AsHeaderName) -> &str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

fn is_digest(reference: &str) -> bool {
    reference.contains(':')
}

/// Publishes the event of a request that succeeded, if it causes one.
pub(super) async fn announce(
    state: &Arc<AppState>,
    route: &Route,
    parts: &Parts,
    identity: &Identity,
    status: StatusCode,
    answer: &HeaderMap,
) {
    let Some(notifier) = &state.notifier else { return };
    let digest = text(answer, DIGEST_HEADER).to_owned();
    let blob_size = |repo, digest: String| async move {
        let parsed = digest.parse().ok()?;
        state.store.blob_size(repo, &parsed).await.ok().flatten()
    };
    let (action, repo, mut target) = match (route, &parts.method, status.as_u16()) {
        (Route::Manifest { repo, reference }, &Method::GET, 200) => {
            let size = text(answer, CONTENT_LENGTH).parse().ok();
            let tag = if is_digest(reference) { String::new() } else { reference.clone() };
            let media_type = text(answer, CONTENT_TYPE).to_owned();
            (Action::Pull, repo, Target { media_type, size, length: size, digest, tag, ..Target::default() })
        }
        (Route::Manifest { repo, reference }, &Method::PUT, 201) => {
            let size = text(&parts.headers, CONTENT_LENGTH).parse().ok();
            let tag = if is_digest(reference) { String::new() } else { reference.clone() };
            let media_type = text(&parts.headers, CONTENT_TYPE).to_owned();
            (Action::Push, repo, Target { media_type, size, length: size, digest, tag, ..Target::default() })
        }
        (Route::Manifest { repo, reference }, &Method::DELETE, 202) => {
            let target = if is_digest(reference) {
                Target { digest: reference.clone(), ..Target::default() }
            } else {
                Target { tag: reference.clone(), ..Target::default() }
            };
            (Action::Delete, repo, target)
        }
        (Route::Blob { repo, digest }, &Method::GET, 200 | 206) => {
            let size = blob_size(repo, digest.clone()).await;
            let target = Target {
                media_type: BLOB_MEDIA_TYPE.into(),
                size,
                length: size,
                digest: digest.clone(),
                ..Target::default()
            };
            (Action::Pull, repo, target)
        }
        (Route::Blob { repo, digest }, &Method::DELETE, 202) => {
            (Action::Delete, repo, Target { digest: digest.clone(), ..Target::default() })
        }
        (Route::UploadStart { repo } | Route::Upload { repo, .. }, &Method::POST | &Method::PUT, 201) => {
            let size = blob_size(repo, digest.clone()).await;
            let from = query_value(&parts.uri, "mount").and(query_value(&parts.uri, "from"));
            let action = if from.is_some() { Action::Mount } else { Action::Push };
            let target = Target {
                media_type: BLOB_MEDIA_TYPE.into(),
                size,
                length: size,
                digest,
                from_repository: from,
                ..Target::default()
            };
            (action, repo, target)
        }
        _ => return,
    };
    let base = state.base_url(&parts.headers);
    target.repository = repo.to_string();
    if !target.digest.is_empty() {
        let kind = if matches!(route, Route::Manifest { .. }) { "manifests" } else { "blobs" };
        target.url = format!("{base}/v2/{repo}/{kind}/{}", target.digest);
    }
    let actor = match identity {
        Identity::User(user) => user.clone(),
        Identity::Token(claims) => claims.sub.clone(),
        Identity::Open | Identity::Anonymous => String::new(),
    };
    let source_addr = state.local_addr.get().map_or_else(|| state.config.addr.clone(), |a| a.to_string());
    notifier.publish(Event {
        id: crate::random::random_hex(16),
        timestamp: rfc3339(now_secs()),
        action,
        target,
        request: RequestRecord {
            id: crate::random::random_hex(16),
            host: text(&parts.headers, HOST).to_owned(),
            method: parts.method.to_string(),
            useragent: text(&parts.headers, USER_AGENT).to_owned(),
        },
        actor: Actor { name: actor },
        source: Source { addr: source_addr, instance_id: state.instance_id.clone() },
    });
}
