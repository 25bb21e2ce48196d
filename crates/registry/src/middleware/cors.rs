//! CORS, so a web page can pull and push.
//!
//! This layer sits outside auth: a preflight `OPTIONS` never carries credentials (Fetch
//! standard, "CORS-preflight request": "credentials mode is 'same-origin'" is never used
//! for it), so it must answer 204 without asking for them. distribution answers it 401
//! when auth is on, which no browser gets past. Every other answer, errors and 401s
//! included, carries the CORS headers, or the page cannot even read the error.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use crate::config::CorsConfig;
use crate::state::AppState;

/// Methods a browser needs to pull (GET, HEAD) and push (POST, PATCH, PUT) images and
/// to delete them.
pub const ALLOW_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";
/// Request headers a pushing browser sends beyond the CORS-safelisted ones.
pub const ALLOW_HEADERS: &str =
    "Authorization, Accept, Content-Type, Content-Range, Range, Docker-Content-Digest, \
     OCI-Chunk-Min-Length";
/// Response headers a client must read: digests, upload locations and offsets, pagination
/// links, auth challenges, referrers' subject.
pub const EXPOSE_HEADERS: &str =
    "Docker-Content-Digest, Location, Link, Range, WWW-Authenticate, OCI-Subject, \
     Docker-Upload-UUID, Content-Range, Content-Length, OCI-Filters-Applied, \
     Docker-Distribution-API-Version, Retry-After";
const DEFAULT_MAX_AGE: u64 = 600;

/// What to answer an `Origin` with: `*`, or the origin itself (with `Vary: Origin`).
fn allow_origin(config: &CorsConfig, origin: Option<&HeaderValue>) -> Option<(HeaderValue, bool)> {
    let origin = origin?;
    let text = origin.to_str().ok()?;
    if config.origins.iter().any(|o| o == text) {
        return Some((origin.clone(), true));
    }
    if config.origins.iter().any(|o| o == "*") && !config.allow_credentials {
        return Some((HeaderValue::from_static("*"), false));
    }
    None
}

fn common_headers(headers: &mut HeaderMap, config: &CorsConfig, value: HeaderValue, echoed: bool) {
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, value);
    if echoed {
        headers.append(VARY, HeaderValue::from_static("Origin"));
    }
    if config.allow_credentials {
        headers.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    }
}

pub async fn cors(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let config = &state.config.cors;
    if config.origins.is_empty() {
        return next.run(request).await;
    }
    let allowed = allow_origin(config, request.headers().get(ORIGIN));
    let preflight =
        request.method() == Method::OPTIONS && request.headers().contains_key(ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let mut response = StatusCode::NO_CONTENT.into_response();
        if let Some((value, echoed)) = allowed {
            let headers = response.headers_mut();
            common_headers(headers, config, value, echoed);
            headers.insert(ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(ALLOW_METHODS));
            headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(ALLOW_HEADERS));
            headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSE_HEADERS));
            let max_age = config.max_age_secs.unwrap_or(DEFAULT_MAX_AGE);
            headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from(max_age));
        } else {
            // An origin that is not allowed gets no CORS headers: the browser stops there.
            tracing::debug!(origin = ?request.headers().get(ORIGIN), "preflight from an origin not in cors.origins");
        }
        return response;
    }
    let mut response = next.run(request).await;
    if let Some((value, echoed)) = allowed {
        let headers = response.headers_mut();
        common_headers(headers, config, value, echoed);
        headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSE_HEADERS));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_table() {
        let exact =
            CorsConfig { origins: vec!["http://a".into()], allow_credentials: true, max_age_secs: None };
        let any = CorsConfig { origins: vec!["*".into()], ..CorsConfig::default() };
        let a = HeaderValue::from_static("http://a");
        let b = HeaderValue::from_static("http://b");
        assert_eq!(allow_origin(&exact, Some(&a)), Some((a.clone(), true)));
        assert_eq!(allow_origin(&exact, Some(&b)), None);
        assert_eq!(allow_origin(&exact, None), None);
        assert_eq!(allow_origin(&any, Some(&b)), Some((HeaderValue::from_static("*"), false)));
    }
}
