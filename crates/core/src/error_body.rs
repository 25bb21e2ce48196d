//! The registry's JSON error body, one type for every side that reads or writes it.
//!
//! OCI Distribution Spec v1.1, "Error Codes": "A `4XX` response code from the registry
//! MAY return a body in any format. If the response body is in JSON format, it MUST have
//! the following format: `{"errors": [{"code": "<error identifier>", "message": "<message
//! describing condition>", "detail": "<unstructured>"}]}`". The core and the transports
//! parse it to explain a refusal; ferry's registry writes it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The error identifiers of the spec's table (code-1 .. code-14), plus distribution's
/// `UNKNOWN` for server faults and `PAGINATION_NUMBER_INVALID` for a bad `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// code-1: blob unknown to registry.
    BlobUnknown,
    /// code-2: blob upload invalid.
    BlobUploadInvalid,
    /// code-3: blob upload unknown to registry.
    BlobUploadUnknown,
    /// code-4: provided digest did not match uploaded content.
    DigestInvalid,
    /// code-5: blob unknown to registry (referenced by a manifest).
    ManifestBlobUnknown,
    /// code-6: manifest invalid.
    ManifestInvalid,
    /// code-7: manifest unknown.
    ManifestUnknown,
    /// code-8: invalid repository name.
    NameInvalid,
    /// code-9: repository name not known to registry.
    NameUnknown,
    /// code-10: provided length did not match content length.
    SizeInvalid,
    /// code-11: authentication required.
    Unauthorized,
    /// code-12: requested access to the resource is denied.
    Denied,
    /// code-13: the operation is unsupported.
    Unsupported,
    /// code-14: too many requests.
    TooManyRequests,
    /// distribution: a bad `n` on a paginated listing.
    PaginationNumberInvalid,
    /// distribution: a server fault.
    Unknown,
}

impl ErrorCode {
    const ALL: [ErrorCode; 16] = [
        ErrorCode::BlobUnknown,
        ErrorCode::BlobUploadInvalid,
        ErrorCode::BlobUploadUnknown,
        ErrorCode::DigestInvalid,
        ErrorCode::ManifestBlobUnknown,
        ErrorCode::ManifestInvalid,
        ErrorCode::ManifestUnknown,
        ErrorCode::NameInvalid,
        ErrorCode::NameUnknown,
        ErrorCode::SizeInvalid,
        ErrorCode::Unauthorized,
        ErrorCode::Denied,
        ErrorCode::Unsupported,
        ErrorCode::TooManyRequests,
        ErrorCode::PaginationNumberInvalid,
        ErrorCode::Unknown,
    ];

    /// The identifier as the spec spells it, e.g. `BLOB_UNKNOWN`.
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

    /// The code an identifier names, if the spec (or distribution) has it.
    pub fn parse(identifier: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == identifier)
    }

    /// The status a code is answered with unless the answer says otherwise.
    pub fn default_status(self) -> http::StatusCode {
        use http::StatusCode;
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

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `{"errors": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The errors, in the registry's order.
    pub errors: Vec<ErrorItem>,
}

/// One entry of an error body. Registries in the wild omit fields, so each is optional
/// on the way in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorItem {
    /// The identifier, e.g. `BLOB_UNKNOWN` (kept as text: registries add their own).
    #[serde(default)]
    pub code: String,
    /// A human-readable message.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Unstructured detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

impl ErrorBody {
    /// One error.
    pub fn single(code: ErrorCode, message: impl Into<String>, detail: Option<serde_json::Value>) -> Self {
        ErrorBody {
            errors: vec![ErrorItem { code: code.as_str().to_owned(), message: message.into(), detail }],
        }
    }

    /// The body of an answer, when it is the spec's JSON with at least one error.
    pub fn parse(body: &[u8]) -> Option<ErrorBody> {
        serde_json::from_slice::<ErrorBody>(body).ok().filter(|b| !b.errors.is_empty())
    }

    /// Whether any entry carries `code`.
    pub fn has(&self, code: ErrorCode) -> bool {
        self.errors.iter().any(|e| e.code == code.as_str())
    }

    /// The JSON bytes of the body.
    pub fn to_vec(&self) -> Vec<u8> {
        // Serialising strings and JSON values cannot fail.
        serde_json::to_vec(self).unwrap_or_else(|_| br#"{"errors":[]}"#.to_vec())
    }
}

/// `CODE: message; CODE: message`, for error messages.
impl fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            match (e.code.is_empty(), e.message.is_empty()) {
                (false, false) => write!(f, "{}: {}", e.code, e.message)?,
                (false, true) => f.write_str(&e.code)?,
                (true, _) => f.write_str(&e.message)?,
            }
        }
        Ok(())
    }
}

/// What an unwelcome answer's body says: the spec's errors, or the start of a text
/// body (200 characters, whitespace folded), or nothing.
pub fn describe_body(body: &[u8]) -> Option<String> {
    if let Some(parsed) = ErrorBody::parse(body) {
        return Some(parsed.to_string());
    }
    let text = std::str::from_utf8(body).ok()?.split_whitespace().collect::<Vec<_>>().join(" ");
    (!text.is_empty()).then(|| text.chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_keep_the_spec_statuses() {
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
            assert_eq!(code.default_status().as_u16(), status, "{code}");
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::parse("blob_unknown"), None);
    }

    #[test]
    fn bodies_parse_and_describe() {
        let cases: [(&[u8], Option<&str>); 7] = [
            (br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"nope"}]}"#, Some("BLOB_UNKNOWN: nope")),
            (br#"{"errors":[{"code":"DENIED"},{"message":"only text"}]}"#, Some("DENIED; only text")),
            (br#"{"errors":[{"code":"X","message":"m","detail":{"a":1}}]}"#, Some("X: m")),
            (br#"{"errors":[]}"#, Some(r#"{"errors":[]}"#)),
            (b"<html>\n  bad   gateway </html>", Some("<html> bad gateway </html>")),
            (b"", None),
            (b"\xff\xfe", None),
        ];
        for (body, want) in cases {
            assert_eq!(describe_body(body).as_deref(), want, "{:?}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn written_bodies_have_the_spec_shape() {
        let body =
            ErrorBody::single(ErrorCode::BlobUnknown, "nope", Some(serde_json::json!({"digest": "x"})));
        let v: serde_json::Value = serde_json::from_slice(&body.to_vec()).unwrap();
        assert_eq!(v["errors"][0]["code"], "BLOB_UNKNOWN");
        assert_eq!(v["errors"][0]["message"], "nope");
        assert_eq!(v["errors"][0]["detail"]["digest"], "x");
        assert!(ErrorBody::parse(&body.to_vec()).unwrap().has(ErrorCode::BlobUnknown));
    }
}
