//! The built-in token server of the Docker token flow: `GET /token`.
//!
//! distribution's "Token Authentication Specification": a request without a token gets
//! `401` with `WWW-Authenticate: Bearer realm="…",service="…",scope="…"`; the client asks
//! `GET <realm>?service=…&scope=…` with its Basic credentials and receives
//! `{"token": …, "access_token": …, "expires_in": …}`; it retries with
//! `Authorization: Bearer <token>`. The tokens themselves are [`crate::access::token`].

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use http::HeaderValue;

use crate::access::token::{now_secs, Grant};
use crate::access::Identity;
use crate::error::{ErrorCode, RegistryError};
use crate::state::AppState;
use crate::uri::query_pairs;

/// What an identity may be granted for one requested scope.
fn grant_for(identity: &Identity, anonymous_pull: bool, requested: &Grant) -> Grant {
    let known = |a: &String| ["pull", "push", "delete", "*"].contains(&a.as_str());
    let actions: BTreeSet<String> = match (identity, requested.kind.as_str()) {
        (Identity::User(_), "repository") => requested.actions.iter().filter(|a| known(a)).cloned().collect(),
        (Identity::User(_), "registry") if requested.name == "catalog" => {
            requested.actions.iter().filter(|a| *a == "*").cloned().collect()
        }
        (_, "repository") if anonymous_pull => {
            requested.actions.iter().filter(|a| *a == "pull").cloned().collect()
        }
        _ => BTreeSet::new(),
    };
    Grant {
        kind: requested.kind.clone(),
        name: requested.name.clone(),
        actions: actions.into_iter().collect(),
    }
}

/// `GET /token?service=…&scope=…`: checks the Basic credentials if any (anonymous
/// otherwise), and answers a token granting what the identity may have of the scopes.
pub async fn handler(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    match issue(&state, &parts).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn issue(state: &AppState, request: &http::request::Parts) -> Result<Response, RegistryError> {
    let Some(auth) = state.auth.as_ref() else {
        return Err(RegistryError::new(ErrorCode::Unsupported, "this registry has no token endpoint"));
    };
    let Some(issuer) = auth.token_issuer() else {
        return Err(RegistryError::new(ErrorCode::Unsupported, "this registry has no token endpoint"));
    };
    let identity = match request.headers.get(AUTHORIZATION) {
        None => Identity::Anonymous,
        Some(value) => match auth.basic_user(value).await {
            Some(user) => Identity::User(user),
            None => {
                return Err(RegistryError::unauthorized(
                    auth.basic_challenge(),
                    "invalid username or password for the token endpoint",
                ))
            }
        },
    };
    let params = query_pairs(request.uri.query());
    if let Some(service) = params.iter().find(|(k, _)| k == "service").map(|(_, v)| v) {
        if service != &issuer.service {
            return Err(RegistryError::new(ErrorCode::Denied, format!("unknown service {service:?}"))
                .with_status(http::StatusCode::BAD_REQUEST));
        }
    }
    let access: Vec<Grant> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').filter_map(Grant::parse_scope).collect::<Vec<_>>())
        .map(|g| grant_for(&identity, auth.anonymous_pull(), &g))
        .collect();
    let sub = match &identity {
        Identity::User(u) => u.clone(),
        _ => String::new(),
    };
    let token = issuer.issue(&sub, access, now_secs());
    let body = serde_json::json!({ "token": token, "access_token": token, "expires_in": issuer.ttl_secs });
    let mut response = serde_json::to_vec(&body).unwrap_or_default().into_response();
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_table() {
        let user = Identity::User("u".into());
        let anon = Identity::Anonymous;
        let req = Grant::parse_scope("repository:a:pull,push,bogus").unwrap();
        assert_eq!(grant_for(&user, false, &req).actions, vec!["pull", "push"]);
        assert_eq!(grant_for(&anon, true, &req).actions, vec!["pull"]);
        assert!(grant_for(&anon, false, &req).actions.is_empty());
        let catalog = Grant::parse_scope("registry:catalog:*").unwrap();
        assert_eq!(grant_for(&user, false, &catalog).actions, vec!["*"]);
        assert!(grant_for(&anon, true, &catalog).actions.is_empty());
    }
}
