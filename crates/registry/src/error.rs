//! The registry's error answers.
//!
//! OCI distribution-spec, "Error Codes": "A `4XX` response code from the registry MAY
//! return a body in any format. If the response body is in JSON format, it MUST have the
//! following format: `{"errors": [{"code": "<error identifier>", "message": "<message
//! describing condition>", "detail": "<unstructured>"}]}`". Every error ferry answers has
//! this body, with the status the spec (or distribution, where the spec is silent) uses.

use axum::response::{IntoResponse, Response};
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue, StatusCode};

use crate::storage::StorageError;

/// The error identifiers of the spec's table (code-1 .. code-14), plus distribution's
/// `UNKNOWN` for server faults and `PAGINATION_NUMBER_INVALID` for a bad `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    PaginationNumberInvalid,
    Unknown,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            ErrorCode::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::SizeInvalid => "SIZE_INVALID",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Denied => "DENIED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::TooManyRequests => "TOOMANYREQUESTS",
            ErrorCode::PaginationNumberInvalid => "PAGINATION_NUMBER_INVALID",
            ErrorCode::Unknown => "UNKNOWN",
        }
    }

    /// The status a code is answered with unless the handler says otherwise.
    pub fn default_status(self) -> StatusCode {
        match self {
            ErrorCode::BlobUnknown
            | ErrorCode::BlobUploadUnknown
            | ErrorCode::ManifestUnknown
            | ErrorCode::NameUnknown => StatusCode::NOT_FOUND,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Denied => StatusCode::FORBIDDEN,
            ErrorCode::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// One error answer: a spec code, a status, a message and optional detail and headers.
#[derive(Debug)]
pub struct RegistryError {
    pub code: ErrorCode,
    pub status: StatusCode,
    /// Boxed: errors travel through every `Result` of the request path.
    body: Box<ErrorBody>,
}

#[derive(Debug)]
struct ErrorBody {
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
            body: Box::new(ErrorBody { message: message.into(), detail: None, headers: Vec::new() }),
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
        RegistryError::internal("storage", err)
    }
}

/// The spec's JSON error body for one error.
pub fn error_body(code: ErrorCode, message: &str, detail: Option<&serde_json::Value>) -> Vec<u8> {
    let mut entry = serde_json::json!({ "code": code.as_str(), "message": message });
    if let Some(detail) = detail {
        entry["detail"] = detail.clone();
    }
    serde_json::to_vec(&serde_json::json!({ "errors": [entry] })).unwrap_or_default()
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let ErrorBody { message, detail, headers: extra } = *self.body;
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
    fn statuses_follow_the_spec() {
        let cases = [
            (ErrorCode::BlobUnknown, 404),
            (ErrorCode::BlobUploadUnknown, 404),
            (ErrorCode::ManifestUnknown, 404),
            (ErrorCode::NameUnknown, 404),
            (ErrorCode::DigestInvalid, 400),
            (ErrorCode::ManifestInvalid, 400),
            (ErrorCode::ManifestBlobUnknown, 400),
            (ErrorCode::NameInvalid, 400),
            (ErrorCode::SizeInvalid, 400),
            (ErrorCode::Unauthorized, 401),
            (ErrorCode::Denied, 403),
            (ErrorCode::Unsupported, 405),
            (ErrorCode::TooManyRequests, 429),
            (ErrorCode::Unknown, 500),
        ];
        for (code, status) in cases {
            assert_eq!(code.default_status().as_u16(), status, "{}", code.as_str());
        }
    }

    #[test]
    fn body_has_the_spec_shape() {
        let body = error_body(ErrorCode::BlobUnknown, "nope", Some(&serde_json::json!({"digest": "x"})));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["errors"][0]["code"], "BLOB_UNKNOWN");
        assert_eq!(v["errors"][0]["message"], "nope");
        assert_eq!(v["errors"][0]["detail"]["digest"], "x");
    }
}
