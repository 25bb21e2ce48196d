//! The app and the middleware around it, outermost first:
//!
//! 0. [`metrics`], with `metrics_addr` set: requests by route class, method and status,
//!    latency, bytes in and out;
//! 1. access log (`tower_http::trace`): one line per request with method, path, status
//!    and latency; every answer gets `X-Content-Type-Options: nosniff` (distribution's
//!    sample config sets it; browsers must not guess a type for a blob);
//! 2. [`cors`]: preflights answered before anything else, CORS headers on every answer;
//! 3. [`recovery`]: a panicking handler answers 500 and the server keeps going;
//! 4. [`auth`]: Basic or Bearer, per repository and action ([`crate::access`] decides);
//! 5. the routes: `/v2/…` ([`crate::routes`]), `/token` ([`token`]), `/healthz`
//!    (storage answers), `/livez` (the process answers) and, with `ui` set, the web
//!    page at `/ui/` ([`crate::ui`]; auth only guards `/v2/`, the page holds no data),
//!    and with `relay.enabled` the job relay at `/jobs` ([`crate::relay`], which asks
//!    the same users itself).

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use http::{HeaderValue, StatusCode};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::state::AppState;

pub mod auth;
pub mod cors;
pub mod metrics;
pub mod recovery;
pub mod token;

/// Builds the whole app over shared state.
pub fn app(state: Arc<AppState>) -> Router {
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/livez", get(|| async { "ok\n" }))
        .route("/token", get(token::handler).post(token::oauth_handler));
    if state.ui.is_some() {
        for path in ["/", "/ui", "/ui/", "/ui/{*file}"] {
            router = router.route(
                path,
                any(|State(state): State<Arc<AppState>>, method, uri| async move {
                    crate::ui::handler(state.ui.as_ref(), method, uri).await
                }),
            );
        }
    }
    if state.relay.is_some() {
        router = crate::relay::routes(router);
    }
    let router = router
        .fallback(crate::routes::dispatch)
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::middleware))
        .layer(recovery::layer())
        .layer(axum::middleware::from_fn_with_state(state.clone(), cors::cors))
        .layer(SetResponseHeaderLayer::if_not_present(
            http::header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_request(())
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        );
    // Counting costs a little per request and frame: only when metrics are served.
    let router = if state.config.metrics_addr.is_some() {
        router.layer(axum::middleware::from_fn(metrics::record))
    } else {
        router
    };
    router.with_state(state)
}

/// `/healthz`: 200 when the storage driver answers, 503 otherwise.
async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    match state.store.driver().health().await {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => {
            tracing::error!(%e, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, format!("storage: {e}\n")).into_response()
        }
    }
}
