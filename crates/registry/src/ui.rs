//! The web page's static files, served at `/ui/` next to the API (`ferry serve --ui DIR`).
//!
//! Only what a static page needs: `GET` and `HEAD` of files under one directory, an
//! `index.html` for a path ending in `/`, `/` and `/ui` redirected to `/ui/`, and a
//! content type per extension. Browsers refuse a module script served as anything but a
//! JavaScript MIME type (HTML, "fetch a single module script": "If mimeType is not a
//! JavaScript MIME type, return null"), and `WebAssembly.instantiateStreaming` refuses a
//! module not served as `application/wasm`, so the table below is not a nicety.
//!
//! A path never leaves the directory: `..`, `.`, hidden names, backslashes and NUL bytes
//! are refused in every segment (percent-decoded first), and the file found must still be
//! under the directory once symlinks are resolved.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::response::{IntoResponse, Redirect, Response};
use http::header::{ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use http::{HeaderValue, Method, StatusCode, Uri};
use tokio_util::io::ReaderStream;

use crate::uri::percent_decode;

/// Where the page lives on the server.
pub const PREFIX: &str = "/ui/";

const STREAM_CHUNK: usize = 64 * 1024;

/// Content types by file extension; anything else is `application/octet-stream`.
const CONTENT_TYPES: &[(&str, &str)] = &[
    ("html", "text/html; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("wasm", "application/wasm"),
    ("json", "application/json"),
    ("map", "application/json"),
    ("ts", "text/plain; charset=utf-8"),
    ("txt", "text/plain; charset=utf-8"),
    ("md", "text/plain; charset=utf-8"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("ico", "image/x-icon"),
    ("webmanifest", "application/manifest+json"),
];

/// The content type of a file, by its extension.
pub fn content_type(path: &Path) -> &'static str {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
    CONTENT_TYPES.iter().find(|(e, _)| *e == ext).map_or("application/octet-stream", |(_, t)| t)
}

/// Why the UI directory cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("ui directory {path}: {message}")]
pub struct UiError {
    path: PathBuf,
    message: String,
}

/// The page's directory, resolved once at start.
#[derive(Debug, Clone)]
pub struct UiDir {
    root: PathBuf,
}

/// Why a request path gets no file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A segment tries to leave the directory or names a hidden file: 400.
    BadPath,
    /// No such file under the directory: 404.
    NotFound,
}

impl UiDir {
    /// Checks that `dir` is a directory with an `index.html`.
    pub fn open(dir: &Path) -> Result<UiDir, UiError> {
        let error = |message: String| UiError { path: dir.to_path_buf(), message };
        let root = dir.canonicalize().map_err(|e| error(format!("{e}; pass an existing directory")))?;
        if !root.is_dir() {
            return Err(error("not a directory".into()));
        }
        if !root.join("index.html").is_file() {
            return Err(error("has no index.html; pass the page's directory (web/)".into()));
        }
        Ok(UiDir { root })
    }

    /// The file a path below `/ui/` names: `rel` is the raw, still percent-encoded rest.
    pub fn resolve(&self, rel: &str) -> Result<PathBuf, Refusal> {
        let mut path = self.root.clone();
        let segments: Vec<&str> = rel.split('/').collect();
        let last = segments.len() - 1;
        for (i, raw) in segments.iter().enumerate() {
            if raw.is_empty() && i == last {
                break;
            }
            let segment = percent_decode(raw);
            let refused = segment.is_empty()
                || segment.starts_with('.')
                || segment.contains(['/', '\\', '\0'])
                || segment.contains(':');
            if refused {
                return Err(Refusal::BadPath);
            }
            path.push(segment);
        }
        if rel.is_empty() || rel.ends_with('/') {
            path.push("index.html");
        }
        // Symlinks inside the directory may point anywhere: check where the file really is.
        let real = path.canonicalize().map_err(|_| Refusal::NotFound)?;
        if !real.starts_with(&self.root) || !real.is_file() {
            return Err(Refusal::NotFound);
        }
        Ok(real)
    }
}

/// `/`, `/ui` and everything under `/ui/`; `None` (no page configured) answers 404.
pub async fn handler(ui: Option<&UiDir>, method: Method, uri: Uri) -> Response {
    let Some(ui) = ui else {
        return text(StatusCode::NOT_FOUND, "not found\n");
    };
    if method != Method::GET && method != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "the page's files answer GET and HEAD\n");
        response.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let Some(rel) = uri.path().strip_prefix(PREFIX) else {
        // `/` and `/ui`: the page is one level down.
        return Redirect::temporary(PREFIX).into_response();
    };
    match ui.resolve(rel) {
        Ok(file) => send_file(&file, method == Method::HEAD).await,
        Err(Refusal::BadPath) => text(StatusCode::BAD_REQUEST, "bad path: it leaves the page's directory\n"),
        Err(Refusal::NotFound) => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response {
    (status, [(CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

async fn send_file(path: &Path, head: bool) -> Response {
    let file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(e) => {
            tracing::warn!(path = %path.display(), %e, "cannot open a file of the page");
            return text(StatusCode::NOT_FOUND, "not found\n");
        }
    };
    let length = match file.metadata().await {
        Ok(meta) => meta.len(),
        Err(e) => {
            tracing::warn!(path = %path.display(), %e, "cannot read a file of the page");
            return text(StatusCode::INTERNAL_SERVER_ERROR, "cannot read the file\n");
        }
    };
    let body =
        if head { Body::empty() } else { Body::from_stream(ReaderStream::with_capacity(file, STREAM_CHUNK)) };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type(path)));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    // Always revalidate: a rebuilt page (or wasm) shows on the next reload.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_table() {
        let cases = [
            ("index.html", "text/html; charset=utf-8"),
            ("app.js", "text/javascript; charset=utf-8"),
            ("pkg/ferry_wasm_bg.wasm", "application/wasm"),
            ("style.CSS", "text/css; charset=utf-8"),
            ("ferry_wasm.d.ts", "text/plain; charset=utf-8"),
            ("README", "application/octet-stream"),
        ];
        for (path, want) in cases {
            assert_eq!(content_type(Path::new(path)), want, "{path}");
        }
    }

    #[test]
    fn resolve_table() {
        let dir = std::env::temp_dir().join(format!("ferry-ui-unit-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("pkg")).unwrap();
        std::fs::write(dir.join("index.html"), "<!doctype html>").unwrap();
        std::fs::write(dir.join("pkg/a.js"), "").unwrap();
        std::fs::write(dir.join(".env"), "").unwrap();
        let ui = UiDir::open(&dir).unwrap();
        let root = dir.canonicalize().unwrap();
        let cases: &[(&str, Result<PathBuf, Refusal>)] = &[
            ("", Ok(root.join("index.html"))),
            ("index.html", Ok(root.join("index.html"))),
            ("pkg/a.js", Ok(root.join("pkg/a.js"))),
            ("pkg%2Fa.js", Err(Refusal::BadPath)),
            ("pkg/", Err(Refusal::NotFound)),
            ("nothing.js", Err(Refusal::NotFound)),
            ("../Cargo.toml", Err(Refusal::BadPath)),
            ("pkg/../../x", Err(Refusal::BadPath)),
            ("%2e%2e/x", Err(Refusal::BadPath)),
            ("..%5Cx", Err(Refusal::BadPath)),
            (".env", Err(Refusal::BadPath)),
            ("pkg//a.js", Err(Refusal::BadPath)),
            ("C:/x", Err(Refusal::BadPath)),
            ("a%00b", Err(Refusal::BadPath)),
        ];
        for (rel, want) in cases {
            assert_eq!(&ui.resolve(rel), want, "{rel:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn open_names_the_directory_and_the_fix() {
        let missing = Path::new("/nonexistent/ferry-ui");
        let err = UiDir::open(missing).unwrap_err().to_string();
        assert!(err.starts_with("ui directory /nonexistent/ferry-ui:"), "{err}");
        let empty = std::env::temp_dir().join(format!("ferry-ui-empty-{}", std::process::id()));
        std::fs::create_dir_all(&empty).unwrap();
        let err = UiDir::open(&empty).unwrap_err().to_string();
        assert!(err.contains("has no index.html"), "{err}");
        let _ = std::fs::remove_dir_all(&empty);
    }
}
