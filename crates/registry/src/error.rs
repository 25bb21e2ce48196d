//! The registry's error answers.
//!
//! OCI distribution-spec, "Error Codes": "A `4XX` response code from the registry MAY
//! return a body in any format. If the response body is in JSON format, it MUST have the
//! following format: `{"errors": [{"code": "<error identifier>", "message": "<message
//! describing condition>", "detail": "<unstructured>"}]}`". Every error ferry answers has
//! this body, with the status the spec (or distribution, where the spec is silent) uses.
//!
//! The codes and the body are ferry-core's ([`ferry_core::error_body`]), shared with the
//! clients that read them; this module is the registry's side: [`RegistryError`], the
//! answer a handler returns.

use axum::response::{IntoResponse, Response};
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue, StatusCode};

use ferry_core::error_body::ErrorBody;
pub use ferry_core::error_body::ErrorCode;

use crate::driver::StorageError;

/// One error answer: a spec code, a status, a message and optional detail and headers.
#[derive(Debug)]
pub struct RegistryError {
    pub code: ErrorCode,
    pub status: StatusCode,
    /// Boxed: errors travel through every `Result` of the request path.
    body: Box<Answer>,
}

/// What an error answer carries besides its code and status.
#[derive(Debug)]
struct Answer {
    message: String,
    detail: Option<serde_json::Value>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

impl RegistryError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        RegistryError {
            code,
            status: code.default_status(),
            body: Box::new(Answer { message: message.into(), detail: None, headers: Vec::new() }),
        }
    }

    pub fn message(&self) -> &str {
        &self.body.message
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn with_detail(mut self, detail: impl serde::Serialize) -> Self {
        self.body.detail = serde_json::to_value(detail).ok();
        self
    }

    /// Adds a header to the answer; values that are not valid header text are dropped.
    pub fn with_header(mut self, name: HeaderName, value: impl AsRef<str>) -> Self {
        if let Ok(value) = HeaderValue::from_str(value.as_ref()) {
            self.body.headers.push((name, value));
        }
        self
    }

    /// 401 with a `WWW-Authenticate` challenge.
    pub fn unauthorized(challenge: String, message: impl Into<String>) -> Self {
        RegistryError::new(ErrorCode::Unauthorized, message).with_header(WWW_AUTHENTICATE, challenge)
    }

    /// A server-side fault: logged in full, answered as 500 `UNKNOWN` with no detail.
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!(%err, "{context}");
        RegistryError::new(ErrorCode::Unknown, format!("{context}: internal error"))
    }

    /// Writes are refused in read-only mode and when deletes are switched off.
    pub fn unsupported(message: impl Into<String>) -> Self {
        RegistryError::new(ErrorCode::Unsupported, message)
    }
}

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code.as_str(), self.status.as_u16(), self.body.message)
    }
}

impl std::error::Error for RegistryError {}

impl From<StorageError> for RegistryError {
    fn from(err: StorageError) -> Self {
        metrics::counter!("ferry_serve_storage_errors_total").increment(1);
        RegistryError::internal("storage", err)
    }
}

/// The spec's JSON error body for one error.
pub fn error_body(code: ErrorCode, message: &str, detail: Option<&serde_json::Value>) -> Vec<u8> {
    ErrorBody::single(code, message, detail.cloned()).to_vec()
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let Answer { message, detail, headers: extra } = *self.body;
        let body = error_body(self.code, &message, detail.as_ref());
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in extra {
            headers.append(name, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_spec_shape() {
        let body = error_body(ErrorCode::BlobUnknown, "nope", Some(&serde_json::json!({"digest": "x"})));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["errors"][0]["code"], "BLOB_UNKNOWN");
        assert_eq!(v["errors"][0]["message"], "nope");
        assert_eq!(v["errors"][0]["detail"]["digest"], "x");
    }
}
