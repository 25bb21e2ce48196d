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

/// `/healthz`: 200 when the storage driver answers within `storage.health_timeout_secs`,
/// 503 otherwise, so that a load balancer takes a registry whose storage is unreachable
/// (or hangs) out of rotation, as distribution's storage driver health check does.
async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let secs = state.config.storage.health_timeout_secs.max(1);
    let check = tokio::time::timeout(std::time::Duration::from_secs(secs), state.store.driver().health());
    let problem = match check.await {
        Ok(Ok(())) => return (StatusCode::OK, "ok\n").into_response(),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer from the {} driver within {secs} s", state.store.driver().name()),
    };
    tracing::error!(problem, "health check failed");
    (StatusCode::SERVICE_UNAVAILABLE, format!("storage: {problem}\n")).into_response()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU8, Ordering};

    use async_trait::async_trait;
    use tower::ServiceExt as _;

    use crate::driver::{BoxReader, FileInfo, MemoryDriver, StorageDriver, StorageError, StorageWriter};

    /// A memory driver whose health check answers, fails, or never returns.
    #[derive(Debug, Default)]
    struct Flaky {
        inner: MemoryDriver,
        /// 0 healthy, 1 failing, 2 hanging.
        mode: AtomicU8,
    }

    #[async_trait]
    impl StorageDriver for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }
        async fn get_content(&self, path: &str) -> Result<Vec<u8>, StorageError> {
            self.inner.get_content(path).await
        }
        async fn put_content(&self, path: &str, content: &[u8]) -> Result<(), StorageError> {
            self.inner.put_content(path, content).await
        }
        async fn reader(&self, path: &str, offset: u64) -> Result<BoxReader, StorageError> {
            self.inner.reader(path, offset).await
        }
        async fn writer(&self, path: &str, keep: u64) -> Result<Box<dyn StorageWriter>, StorageError> {
            self.inner.writer(path, keep).await
        }
        async fn stat(&self, path: &str) -> Result<FileInfo, StorageError> {
            self.inner.stat(path).await
        }
        async fn list(&self, path: &str) -> Result<Vec<String>, StorageError> {
            self.inner.list(path).await
        }
        async fn rename(&self, from: &str, to: &str) -> Result<(), StorageError> {
            self.inner.rename(from, to).await
        }
        async fn delete(&self, path: &str) -> Result<(), StorageError> {
            self.inner.delete(path).await
        }
        async fn health(&self) -> Result<(), StorageError> {
            match self.mode.load(Ordering::SeqCst) {
                0 => Ok(()),
                1 => Err(StorageError::NotFound("<root>".into())),
                _ => std::future::pending().await,
            }
        }
    }

    #[tokio::test]
    async fn healthz_answers_503_when_storage_fails_or_hangs() {
        let driver = std::sync::Arc::new(Flaky::default());
        let mut config = crate::Config::default();
        config.storage.driver = "memory".into();
        config.storage.health_timeout_secs = 1;
        let registry = crate::Registry::builder().config(config).driver(driver.clone()).build().unwrap();
        let cases = [
            (0, 200, "ok"),
            (1, 503, "storage: <root>: not found"),
            (2, 503, "no answer from the flaky driver within 1 s"),
        ];
        for (mode, status, body) in cases {
            driver.mode.store(mode, Ordering::SeqCst);
            let request = http::Request::get("/healthz").body(axum::body::Body::empty()).unwrap();
            let response = registry.router().oneshot(request).await.unwrap();
            assert_eq!(response.status().as_u16(), status, "mode {mode}");
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(text.contains(body), "mode {mode}: {text}");
        }
    }
}
