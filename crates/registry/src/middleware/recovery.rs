//! Panic recovery: a handler that panics answers 500 with the spec's error body, and the
//! server keeps serving every other request.

use std::any::Any;

use axum::body::Body;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Response, StatusCode};
use tower_http::catch_panic::CatchPanicLayer;

use crate::error::{error_body, ErrorCode};

fn answer(panic: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = message, "request handler panicked; answered 500");
    let body = error_body(ErrorCode::Unknown, "internal error: the request handler failed", None);
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// What a panic is turned into.
pub type PanicAnswer = fn(Box<dyn Any + Send + 'static>) -> Response<Body>;

pub fn layer() -> CatchPanicLayer<PanicAnswer> {
    CatchPanicLayer::custom(answer as PanicAnswer)
}

#[cfg(test)]
mod tests {
    use axum::routing::get;
    use axum::Router;
    use http::Request;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_panicking_handler_answers_500_and_the_app_keeps_serving() {
        let app = Router::new()
            .route("/boom", get(|| async { panic!("boom") as &'static str }))
            .route("/ok", get(|| async { "fine" }))
            .layer(super::layer());
        let boom = app
            .clone()
            .oneshot(Request::get("/boom").body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(boom.status(), 500);
        let body = axum::body::to_bytes(boom.into_body(), 1024).await.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["errors"][0]["code"], "UNKNOWN");
        let ok = app.oneshot(Request::get("/ok").body(axum::body::Body::empty()).unwrap()).await.unwrap();
        assert_eq!(ok.status(), 200);
    }
}
