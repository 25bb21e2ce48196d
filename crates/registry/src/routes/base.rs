//! `GET /v2/`: distribution spec end-1, "the registry MUST return a 200 OK response"
//! when it implements the spec (auth permitting).

use axum::response::{IntoResponse, Response};
use http::header::CONTENT_TYPE;

use super::shared::API_VERSION;

pub(super) fn get() -> Response {
    ([(CONTENT_TYPE, "application/json"), (API_VERSION, "registry/2.0")], "{}").into_response()
}
