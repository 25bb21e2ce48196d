//! The request each state asks for.

use http::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};
use http::{HeaderValue, Method};

use super::state::{Asked, State};
use super::{Body, RequestKind, Upload, UploadRequest};
use crate::api::upload_complete;
use crate::transport::TransportError;

impl Upload {
    /// The request the current state asks for, and what its reply will answer.
    pub(super) fn next_request(&mut self) -> Result<(Asked, UploadRequest), TransportError> {
        let location = self.location.clone().unwrap_or_default();
        let (asked, kind, method, url, body) = match self.state {
            State::Open { monolithic } => {
                let url = self.upload_start.clone();
                (Asked::Open { monolithic }, RequestKind::Open, Method::POST, url, Body::Empty)
            }
            State::Monolithic => {
                let url = upload_complete(&location, &self.digest);
                (Asked::Monolithic, RequestKind::Monolithic, Method::PUT, url, Body::Whole)
            }
            State::Patch => {
                let start = self.confirmed;
                let end = start.saturating_add(self.chunk).min(self.size);
                self.sent_to = self.sent_to.max(end);
                let body = Body::Chunk { start, end };
                (Asked::Patch { start, end }, RequestKind::Patch, Method::PATCH, location, body)
            }
            State::Status { .. } => (Asked::Status, RequestKind::Status, Method::GET, location, Body::Empty),
            State::Commit => {
                self.committing = true;
                let url = upload_complete(&location, &self.digest);
                (Asked::Commit, RequestKind::Commit, Method::PUT, url, Body::Empty)
            }
            State::Check => {
                let url = blob_url(&self.upload_start, &self.digest);
                (Asked::Check, RequestKind::Check, Method::HEAD, url, Body::Empty)
            }
            State::Cancel { reopen } => {
                (Asked::Cancel { reopen }, RequestKind::Cancel, Method::DELETE, location, Body::Empty)
            }
            State::Verify | State::Done(_) => unreachable!("poll_output answers these itself"),
        };
        let mut headers = self.headers.clone();
        // A request may be logged with `{:?}`: its credentials print as `Sensitive`.
        for (_, value) in headers.iter_mut().filter(|(name, _)| **name == http::header::AUTHORIZATION) {
            value.set_sensitive(true);
        }
        let length = match body {
            Body::Empty => 0,
            Body::Chunk { start, end } => {
                let range = format!("{start}-{}", end - 1);
                headers
                    .insert(CONTENT_RANGE, HeaderValue::try_from(range).expect("digits are a header value"));
                end - start
            }
            Body::Whole => self.size,
        };
        if body != Body::Empty {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        }
        if matches!(method, Method::POST | Method::PUT | Method::PATCH) {
            headers.insert(CONTENT_LENGTH, length.into());
        }
        let mut request = http::Request::builder().method(method).uri(url.as_str());
        if let Some(map) = request.headers_mut() {
            *map = headers;
        }
        let request = request
            .body(())
            .map_err(|_| self.protocol_error(&url, "gave an upload URL that is not a URL"))?;
        Ok((asked, UploadRequest { kind, request, body }))
    }
}

/// `.../v2/<name>/blobs/<digest>`, from the session's start `.../v2/<name>/blobs/uploads/`.
fn blob_url(upload_start: &str, digest: &crate::digest::Digest) -> String {
    let base = upload_start.split('?').next().unwrap_or_default();
    let base = base.trim_end_matches('/').trim_end_matches("uploads");
    format!("{base}{digest}")
}
