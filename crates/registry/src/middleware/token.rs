//! The built-in token server of the Docker token flow: `GET /token`.
//!
//! distribution's "Token Authentication Specification": a request without a token gets
//! `401` with `WWW-Authenticate: Bearer realm="…",service="…",scope="…"`; the client asks
//! `GET <realm>?service=…&scope=…` with its Basic credentials and receives
//! `{"token": …, "access_token": …, "expires_in": …}`; it retries with
//! `Authorization: Bearer <token>`. `POST /token` takes the OAuth2 form of the same
//! request ([`oauth_handler`]). The tokens themselves are [`crate::access::token`].

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use http::HeaderValue;

use crate::access::policy::{Policy, Subject};
use crate::access::token::{now_secs, rfc3339, Grant, TokenIssuer};
use crate::access::{Authenticator, Identity};
use crate::config::Verb;
use crate::error::{ErrorCode, RegistryError};
use crate::state::AppState;
use crate::uri::{form_pairs, query_pairs};

/// What an identity may be granted for one requested scope: the intersection of what it
/// asks for and what the policy allows it (`*` asks for every action). Unknown actions
/// are dropped; the catalog is granted to users only.
fn grant_for(identity: &Identity, policy: &Policy, requested: &Grant) -> Grant {
    let who = match identity {
        Identity::User(user) => Subject::User(user),
        _ => Subject::Anonymous,
    };
    let actions: Vec<String> = match requested.kind.as_str() {
        "repository" => {
            let asked: Vec<Verb> = if requested.actions.iter().any(|a| a == "*") {
                Verb::ALL.to_vec()
            } else {
                requested.actions.iter().filter_map(|a| Verb::parse(a)).collect()
            };
            policy
                .intersect(who, &requested.name, &asked)
                .into_iter()
                .map(|v| v.as_str().to_owned())
                .collect()
        }
        "registry" if requested.name == "catalog" && matches!(who, Subject::User(_)) => {
            requested.actions.iter().filter(|a| *a == "*").cloned().collect()
        }
        _ => Vec::new(),
    };
    Grant { kind: requested.kind.clone(), name: requested.name.clone(), actions }
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

/// `POST /token`, the OAuth2 form of distribution's token servers ("Docker Registry v2
/// authentication using OAuth2"), which containerd tries before `GET`: an
/// `application/x-www-form-urlencoded` body with `grant_type=password` (`username`,
/// `password`; `access_type=offline` also asks for a refresh token) or
/// `grant_type=refresh_token` (`refresh_token`), plus `service`, `scope` (space-separated)
/// and `client_id`. The answer has `access_token`, `expires_in`, `issued_at`, `scope` and,
/// when asked for, `refresh_token`.
pub async fn oauth_handler(State(state): State<Arc<AppState>>, request: Request) -> Response {
    match oauth(&state, request).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

/// The token endpoint's issuer and authenticator, or 405 when the registry has none.
fn endpoint(state: &AppState) -> Result<(&Authenticator, &TokenIssuer), RegistryError> {
    let none = || RegistryError::new(ErrorCode::Unsupported, "this registry has no token endpoint");
    let auth = state.auth.as_ref().ok_or_else(none)?;
    let issuer = auth.token_issuer().ok_or_else(none)?;
    Ok((auth, issuer))
}

fn check_service(issuer: &TokenIssuer, params: &[(String, String)]) -> Result<(), RegistryError> {
    match params.iter().find(|(k, _)| k == "service").map(|(_, v)| v) {
        Some(service) if service != &issuer.service => {
            Err(RegistryError::new(ErrorCode::Denied, format!("unknown service {service:?}"))
                .with_status(http::StatusCode::BAD_REQUEST))
        }
        _ => Ok(()),
    }
}

/// What `identity` may have of the requested scopes; a scope granting nothing is left
/// out, so a token's `access` lists exactly what it allows.
fn grants(auth: &Authenticator, identity: &Identity, params: &[(String, String)]) -> Vec<Grant> {
    params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').filter_map(Grant::parse_scope).collect::<Vec<_>>())
        .map(|g| grant_for(identity, auth.policy(), &g))
        .filter(|g| !g.actions.is_empty())
        .collect()
}

fn json(body: serde_json::Value) -> Response {
    let mut response = serde_json::to_vec(&body).unwrap_or_default().into_response();
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn issue(state: &AppState, request: &http::request::Parts) -> Result<Response, RegistryError> {
    let (auth, issuer) = endpoint(state)?;
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
    check_service(issuer, &params)?;
    let access = grants(auth, &identity, &params);
    let sub = match &identity {
        Identity::User(u) => u.clone(),
        _ => String::new(),
    };
    let token = issuer.issue(&sub, access, now_secs());
    Ok(json(serde_json::json!({ "token": token, "access_token": token, "expires_in": issuer.ttl_secs })))
}

/// The largest form accepted: a few scopes and credentials.
const MAX_FORM_BYTES: usize = 64 * 1024;

async fn oauth(state: &AppState, request: Request) -> Result<Response, RegistryError> {
    let (auth, issuer) = endpoint(state)?;
    let body = axum::body::to_bytes(request.into_body(), MAX_FORM_BYTES).await.map_err(|e| {
        RegistryError::new(ErrorCode::Unsupported, format!("the token request's form could not be read: {e}"))
            .with_status(http::StatusCode::BAD_REQUEST)
    })?;
    let params = form_pairs(&body);
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    check_service(issuer, &params)?;
    let refused = |message: &str| RegistryError::unauthorized(auth.basic_challenge(), message);
    let now = now_secs();
    let (user, refresh) = match param("grant_type") {
        Some("password") => {
            let (Some(user), Some(password)) = (param("username"), param("password")) else {
                return Err(RegistryError::new(
                    ErrorCode::Unsupported,
                    "grant_type=password needs `username` and `password`",
                )
                .with_status(http::StatusCode::BAD_REQUEST));
            };
            let user = auth
                .check_password(user, password)
                .await
                .ok_or_else(|| refused("invalid username or password for the token endpoint"))?;
            let offline = param("access_type") == Some("offline");
            let refresh = offline.then(|| issuer.issue_refresh(&user, now));
            (user, refresh)
        }
        Some("refresh_token") => {
            let presented = param("refresh_token").unwrap_or_default();
            let claims = issuer
                .verify(presented, now)
                .map_err(|e| refused(&format!("refresh token refused: {e}; log in again")))?;
            if !claims.refresh || !auth.has_user(&claims.sub) {
                return Err(refused("not a refresh token of a current user; log in again"));
            }
            (claims.sub, None)
        }
        other => {
            return Err(RegistryError::new(
                ErrorCode::Unsupported,
                format!(
                    "grant_type {:?} is not supported; use `password` or `refresh_token`",
                    other.unwrap_or_default()
                ),
            )
            .with_status(http::StatusCode::BAD_REQUEST))
        }
    };
    let access = grants(auth, &Identity::User(user.clone()), &params);
    let scope = access
        .iter()
        .map(|g| format!("{}:{}:{}", g.kind, g.name, g.actions.join(",")))
        .collect::<Vec<_>>()
        .join(" ");
    let token = issuer.issue(&user, access, now);
    let mut body = serde_json::json!({
        "access_token": token,
        "token": token,
        "expires_in": issuer.ttl_secs,
        "issued_at": rfc3339(now),
        "scope": scope,
    });
    if let Some(refresh) = refresh {
        body["refresh_token"] = refresh.into();
    }
    Ok(json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_at_is_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_950_000), "2026-11-29T11:00:00Z");
    }

    #[test]
    fn grants_table() {
        let user = Identity::User("u".into());
        let anon = Identity::Anonymous;
        let open = Policy::from_config(None, true);
        let closed = Policy::from_config(None, false);
        let req = Grant::parse_scope("repository:a:pull,push,bogus").unwrap();
        assert_eq!(grant_for(&user, &closed, &req).actions, vec!["pull", "push"]);
        assert_eq!(grant_for(&anon, &open, &req).actions, vec!["pull"]);
        assert!(grant_for(&anon, &closed, &req).actions.is_empty());
        let star = Grant::parse_scope("repository:a:*").unwrap();
        assert_eq!(grant_for(&user, &closed, &star).actions, vec!["pull", "push", "delete"]);
        let catalog = Grant::parse_scope("registry:catalog:*").unwrap();
        assert_eq!(grant_for(&user, &closed, &catalog).actions, vec!["*"]);
        assert!(grant_for(&anon, &open, &catalog).actions.is_empty());
    }
}
