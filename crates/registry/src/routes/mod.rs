//! The OCI Distribution v1.1 API, after distribution's route table: base, manifest,
//! tags, blob, blob-upload, blob-upload-chunk, catalog and referrers.
//!
//! Repository names contain `/`, so paths are parsed here rather than by axum patterns:
//! the route keyword is matched at the *end* of the path (`…/manifests/<reference>`,
//! `…/blobs/uploads/<id>`) and everything before it must be a valid name. A repository
//! called `a/manifests` is therefore reachable (`/v2/a/manifests/manifests/latest`), and
//! nothing that fails validation reaches the storage.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode};

use crate::access::{Action, Identity};
use crate::config::Verb;
use crate::error::{ErrorCode, RegistryError, Result};
use crate::state::AppState;
use crate::store::layout::Repo;
use crate::uri::percent_decode;

mod announce;
mod base;
mod blobs;
mod catalog;
mod manifests;
mod referrers;
mod shared;
mod tags;
mod uploads;

/// A parsed `/v2/` path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/manifests/<reference>`
    Manifest { repo: Repo, reference: String },
    /// `/v2/<name>/blobs/<digest>`
    Blob { repo: Repo, digest: String },
    /// `/v2/<name>/blobs/uploads/`
    UploadStart { repo: Repo },
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload { repo: Repo, id: String },
    /// `/v2/<name>/tags/list`
    Tags { repo: Repo },
    /// `/v2/<name>/referrers/<digest>`
    Referrers { repo: Repo, digest: String },
}

fn not_found(path: &str) -> RegistryError {
    RegistryError::new(ErrorCode::Unsupported, format!("no API endpoint at {path}"))
        .with_status(StatusCode::NOT_FOUND)
}

impl Route {
    pub fn parse(path: &str) -> Result<Route> {
        let rest = match path {
            "/v2" | "/v2/" => return Ok(Route::Base),
            _ => path.strip_prefix("/v2/").ok_or_else(|| not_found(path))?,
        };
        if rest == "_catalog" {
            return Ok(Route::Catalog);
        }
        let segments: Vec<&str> = rest.split('/').collect();
        let n = segments.len();
        let name = |keep: usize| -> Result<Repo> {
            let name = segments[..keep].join("/");
            Repo::parse(&name)
        };
        let last = || percent_decode(segments[n - 1]);
        if n >= 4 && segments[n - 3] == "blobs" && segments[n - 2] == "uploads" {
            let repo = name(n - 3)?;
            return Ok(if segments[n - 1].is_empty() {
                Route::UploadStart { repo }
            } else {
                Route::Upload { repo, id: last() }
            });
        }
        if n >= 3 {
            match (segments[n - 2], segments[n - 1]) {
                ("blobs", "uploads") => return Ok(Route::UploadStart { repo: name(n - 2)? }),
                ("manifests", _) => return Ok(Route::Manifest { repo: name(n - 2)?, reference: last() }),
                ("blobs", _) => return Ok(Route::Blob { repo: name(n - 2)?, digest: last() }),
                ("tags", "list") => return Ok(Route::Tags { repo: name(n - 2)? }),
                ("referrers", _) => return Ok(Route::Referrers { repo: name(n - 2)?, digest: last() }),
                _ => {}
            }
        }
        Err(not_found(path))
    }

    /// What the request needs to be allowed.
    pub fn action(&self, method: &Method) -> Action {
        let repo_action = |repo: &Repo, verb| Action::Repo { repo: repo.clone(), verb };
        match self {
            Route::Base => Action::Base,
            Route::Catalog => Action::Catalog,
            Route::Manifest { repo, .. } | Route::Blob { repo, .. } => match *method {
                Method::PUT | Method::POST | Method::PATCH => repo_action(repo, Verb::Push),
                Method::DELETE => repo_action(repo, Verb::Delete),
                _ => repo_action(repo, Verb::Pull),
            },
            Route::Tags { repo } | Route::Referrers { repo, .. } => repo_action(repo, Verb::Pull),
            Route::UploadStart { repo } | Route::Upload { repo, .. } => repo_action(repo, Verb::Push),
        }
    }
}

fn is_write(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH | Method::DELETE)
}

/// Every request under `/v2` that is not `/token` or a health check ends up here.
pub async fn dispatch(State(state): State<Arc<AppState>>, request: Request) -> Response {
    match route(&state, request).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn route(state: &Arc<AppState>, request: Request) -> Result<Response> {
    let (parts, body) = request.into_parts();
    let route = Route::parse(parts.uri.path())?;
    let identity = parts.extensions.get::<Identity>().cloned().unwrap_or(Identity::Open);
    let response = handle(state, route.clone(), &parts, body, &identity).await?;
    if state.notifier.is_some() {
        let deleted = response.extensions().get::<manifests::DeletedTags>().map(|d| d.0.clone());
        let (status, headers) = (response.status(), response.headers().clone());
        let deleted = deleted.unwrap_or_default();
        announce::announce(state, &route, &parts, &identity, status, &headers, deleted).await;
    }
    Ok(response)
}

/// Runs the handler of a parsed route.
async fn handle(
    state: &Arc<AppState>,
    route: Route,
    parts: &http::request::Parts,
    body: axum::body::Body,
    identity: &Identity,
) -> Result<Response> {
    let method = parts.method.clone();
    if state.config.read_only && is_write(&method) {
        return Err(RegistryError::unsupported("this registry is read-only (config `read_only: true`)"));
    }
    let prepared = match state.cache.as_ref() {
        Some(cache) => crate::cache::prepare(state, cache, &route, &method).await?,
        None => crate::cache::Prepared::Local,
    };
    match prepared {
        crate::cache::Prepared::Local => local(state, route, parts, body, identity).await,
        crate::cache::Prepared::Answer(response) => Ok(response),
        crate::cache::Prepared::Stale => {
            let mut response = local(state, route, parts, body, identity).await?;
            response
                .headers_mut()
                .insert(http::header::WARNING, http::HeaderValue::from_static(crate::cache::STALE_WARNING));
            Ok(response)
        }
    }
}

/// Runs the handler of a parsed route on what storage holds.
async fn local(
    state: &Arc<AppState>,
    route: Route,
    parts: &http::request::Parts,
    body: axum::body::Body,
    identity: &Identity,
) -> Result<Response> {
    let method = parts.method.clone();
    let uri = &parts.uri;
    let head = method == Method::HEAD;
    match (route, method) {
        (Route::Base, Method::GET | Method::HEAD) => Ok(base::get()),
        (Route::Catalog, Method::GET) => catalog::list(state, identity, uri).await,
        (Route::Manifest { repo, reference }, Method::GET | Method::HEAD) => {
            manifests::get(state, &repo, &reference, head).await
        }
        (Route::Manifest { repo, reference }, Method::PUT) => {
            manifests::put(state, &repo, &reference, parts, body).await
        }
        (Route::Manifest { repo, reference }, Method::DELETE) => {
            manifests::delete(state, &repo, &reference).await
        }
        (Route::Blob { repo, digest }, Method::GET | Method::HEAD) => {
            blobs::get(state, &repo, &digest, &parts.headers, head).await
        }
        (Route::Blob { repo, digest }, Method::DELETE) => blobs::delete(state, &repo, &digest).await,
        (Route::UploadStart { repo }, Method::POST) => {
            uploads::start(state, &repo, identity, parts, body).await
        }
        (Route::Upload { repo, id }, Method::PATCH) => uploads::patch(state, &repo, &id, parts, body).await,
        (Route::Upload { repo, id }, Method::PUT) => uploads::put(state, &repo, &id, parts, body).await,
        (Route::Upload { repo, id }, Method::GET) => uploads::status(state, &repo, &id).await,
        (Route::Upload { repo, id }, Method::DELETE) => uploads::cancel(state, &repo, &id).await,
        (Route::Tags { repo }, Method::GET) => tags::list(state, &repo, uri).await,
        (Route::Referrers { repo, digest }, Method::GET) => referrers::list(state, &repo, &digest, uri).await,
        (_, method) => Err(RegistryError::unsupported(format!("{method} is not allowed on {}", uri.path()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(s: &str) -> Repo {
        Repo::parse(s).unwrap()
    }

    #[test]
    fn routes_table() {
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let cases: Vec<(String, Route)> = vec![
            ("/v2/".into(), Route::Base),
            ("/v2".into(), Route::Base),
            ("/v2/_catalog".into(), Route::Catalog),
            (
                "/v2/a/b/manifests/latest".into(),
                Route::Manifest { repo: repo("a/b"), reference: "latest".into() },
            ),
            (
                "/v2/a/manifests/manifests/x".into(),
                Route::Manifest { repo: repo("a/manifests"), reference: "x".into() },
            ),
            (format!("/v2/a/blobs/{d}"), Route::Blob { repo: repo("a"), digest: d.into() }),
            ("/v2/a/blobs/sha256%3Aab".into(), Route::Blob { repo: repo("a"), digest: "sha256:ab".into() }),
            ("/v2/a/blobs/uploads/".into(), Route::UploadStart { repo: repo("a") }),
            ("/v2/a/blobs/uploads".into(), Route::UploadStart { repo: repo("a") }),
            ("/v2/a/blobs/blobs/uploads/x".into(), Route::Upload { repo: repo("a/blobs"), id: "x".into() }),
            ("/v2/a/tags/list".into(), Route::Tags { repo: repo("a") }),
            (format!("/v2/a/referrers/{d}"), Route::Referrers { repo: repo("a"), digest: d.into() }),
        ];
        for (path, want) in cases {
            assert_eq!(Route::parse(&path).unwrap(), want, "{path}");
        }
        let bad: Vec<(&str, ErrorCode)> = vec![
            ("/v2/../etc/manifests/latest", ErrorCode::NameInvalid),
            ("/v2/A/manifests/latest", ErrorCode::NameInvalid),
            ("/v2/a%2F..%2Fb/manifests/latest", ErrorCode::NameInvalid),
            ("/v2//manifests/latest", ErrorCode::NameInvalid),
            ("/v2/manifests/latest", ErrorCode::Unsupported),
            ("/v2/a/unknown/x", ErrorCode::Unsupported),
            ("/v3/a/manifests/x", ErrorCode::Unsupported),
        ];
        for (path, code) in bad {
            assert_eq!(Route::parse(path).unwrap_err().code, code, "{path}");
        }
    }
}
