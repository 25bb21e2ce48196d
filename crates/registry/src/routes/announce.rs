//! The events a successful request causes, in distribution's terms and as distribution
//! 2.8 sends them (checked side by side in tests/registry_notifications.rs): a manifest or
//! blob pushed, pulled (`GET` or `HEAD`, both of which distribution counts), deleted
//! (a manifest's deletion also deletes its tags: one event each), or a blob mounted from
//! another repository. Built from the route and the answer after the handler has
//! succeeded, and handed to the notifier, which never makes the request wait.

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
    deleted_tags: Vec<String>,
) {
    let Some(notifier) = &state.notifier else { return };
    let digest = text(answer, DIGEST_HEADER).to_owned();
    let blob_size = |repo, digest: String| async move {
        let parsed = digest.parse().ok()?;
        state.store.blob_size(repo, &parsed).await.ok().flatten()
    };
    let (action, repo, mut target) = match (route, &parts.method, status.as_u16()) {
        (Route::Manifest { repo, reference }, &Method::GET | &Method::HEAD, 200) => {
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
        (Route::Blob { repo, digest }, &Method::GET | &Method::HEAD, 200 | 206) => {
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
    // distribution gives deletions no URL: there is nothing left to fetch.
    if !target.digest.is_empty() && action != Action::Delete {
        let kind = if matches!(route, Route::Manifest { .. }) { "manifests" } else { "blobs" };
        target.url = format!("{base}/v2/{repo}/{kind}/{}", target.digest);
    }
    let actor = match identity {
        Identity::User(user) => user.clone(),
        Identity::Token(claims) => claims.sub.clone(),
        Identity::Open | Identity::Anonymous => String::new(),
    };
    let source_addr = state.local_addr.get().map_or_else(|| state.config.addr.clone(), |a| a.to_string());
    let request = RequestRecord {
        id: crate::random::random_hex(16),
        host: text(&parts.headers, HOST).to_owned(),
        method: parts.method.to_string(),
        useragent: text(&parts.headers, USER_AGENT).to_owned(),
    };
    let tag_targets =
        deleted_tags.into_iter().map(|tag| Target { repository: repo.to_string(), tag, ..Target::default() });
    for (action, target) in std::iter::once((action, target)).chain(tag_targets.map(|t| (Action::Delete, t)))
    {
        notifier.publish(Event {
            id: crate::random::random_hex(16),
            timestamp: rfc3339(now_secs()),
            action,
            target,
            request: request.clone(),
            actor: Actor { name: actor.clone() },
            source: Source { addr: source_addr.clone(), instance_id: state.instance_id.clone() },
        });
    }
}
