//! Request metrics, through the `metrics` facade: they cost nothing until a process
//! installs a recorder (`ferry serve --metrics-addr` does) and then reach its exporter.
//!
//! Per request: a counter by route class, method and status; a latency histogram by
//! route class (to the response's head); bytes received and sent by route class,
//! counted as the bodies stream. Route classes are the API's routes (distribution's:
//! base, catalog, manifest, blob, blob_upload, tags, referrers), plus token, health, ui,
//! relay and other: never a repository, tag or digest.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http::Method;
use http_body::{Body as HttpBody, Frame, SizeHint};
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, histogram, Counter, Unit};

use crate::routes::Route;

/// Bucket bounds of the latency histogram, in seconds: from a cached HEAD to a large blob.
pub const LATENCY_SECONDS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0];

/// Describes the registry's metrics to the installed recorder (their `# HELP` lines).
pub fn describe() {
    describe_counter!("ferry_serve_requests_total", "Requests answered, by route class, method and status");
    describe_histogram!(
        "ferry_serve_request_duration_seconds",
        Unit::Seconds,
        "Time to each response's head, by route class"
    );
    describe_counter!(
        "ferry_serve_received_bytes_total",
        Unit::Bytes,
        "Request body bytes received, by route class"
    );
    describe_counter!(
        "ferry_serve_sent_bytes_total",
        Unit::Bytes,
        "Response body bytes sent, by route class"
    );
    describe_gauge!(
        "ferry_serve_upload_sessions",
        "Blob upload sessions with a request in flight in this process"
    );
    describe_counter!("ferry_serve_storage_errors_total", "Storage driver errors answered as 500");
    describe_counter!("ferry_serve_gc_runs_total", "Online garbage collections, by result");
    describe_counter!(
        "ferry_serve_gc_freed_bytes_total",
        Unit::Bytes,
        "Bytes of blobs the online garbage collector deleted"
    );
    describe_counter!("ferry_serve_gc_deleted_blobs_total", "Blobs the online garbage collector deleted");
}

/// Records the request's metrics around the rest of the app.
pub async fn record(request: Request, next: Next) -> Response {
    let route = route_class(request.uri().path());
    let method = method_class(request.method());
    let started = Instant::now();
    let received = counter!("ferry_serve_received_bytes_total", "route" => route);
    let request = request.map(|body| Body::new(Counted { inner: body, counter: received }));
    let response = next.run(request).await;
    histogram!("ferry_serve_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    let status = response.status().as_u16().to_string();
    counter!("ferry_serve_requests_total", "route" => route, "method" => method, "status" => status)
        .increment(1);
    let sent = counter!("ferry_serve_sent_bytes_total", "route" => route);
    response.map(|body| Body::new(Counted { inner: body, counter: sent }))
}

/// The route class of a path.
fn route_class(path: &str) -> &'static str {
    if path == "/v2" || path.starts_with("/v2/") {
        return match Route::parse(path) {
            Ok(Route::Base) => "base",
            Ok(Route::Catalog) => "catalog",
            Ok(Route::Manifest { .. }) => "manifest",
            Ok(Route::Blob { .. }) => "blob",
            Ok(Route::UploadStart { .. } | Route::Upload { .. }) => "blob_upload",
            Ok(Route::Tags { .. }) => "tags",
            Ok(Route::Referrers { .. }) => "referrers",
            Err(_) => "other",
        };
    }
    match path {
        "/token" => "token",
        "/healthz" | "/livez" => "health",
        p if p == "/jobs" || p.starts_with("/jobs/") => "relay",
        p if p == "/" || p.starts_with("/ui") => "ui",
        _ => "other",
    }
}

fn method_class(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// A body that adds the length of each data frame to a counter as it passes.
struct Counted {
    inner: Body,
    counter: Counter,
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.counter.increment(data.len() as u64);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_fall_into_bounded_route_classes() {
        let cases = [
            ("/v2/", "base"),
            ("/v2/_catalog", "catalog"),
            ("/v2/library/app/manifests/v1", "manifest"),
            ("/v2/app/blobs/sha256:abc", "blob"),
            ("/v2/app/blobs/uploads/", "blob_upload"),
            ("/v2/app/blobs/uploads/0f1e", "blob_upload"),
            ("/v2/app/tags/list", "tags"),
            ("/v2/app/referrers/sha256:abc", "referrers"),
            ("/v2/app/nonsense", "other"),
            ("/token", "token"),
            ("/healthz", "health"),
            ("/jobs", "relay"),
            ("/jobs/7/events", "relay"),
            ("/ui/index.html", "ui"),
            ("/favicon.ico", "other"),
        ];
        for (path, want) in cases {
            assert_eq!(route_class(path), want, "{path}");
        }
    }
}
