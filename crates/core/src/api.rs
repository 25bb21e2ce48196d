//! The distribution API's routes as URLs, and the headers that steer a client.
//!
//! OCI Distribution Spec v1.1, "Endpoints": `end-1 GET /v2/`, `end-3 GET|HEAD
//! /v2/<name>/manifests/<reference>`, `end-2 GET|HEAD /v2/<name>/blobs/<digest>`,
//! `end-4a POST /v2/<name>/blobs/uploads/`, `end-11 POST
//! /v2/<name>/blobs/uploads/?mount=<digest>&from=<other_name>`, `end-8a GET
//! /v2/<name>/tags/list`, and the catalog `GET /v2/_catalog` of distribution.

use std::collections::{BTreeMap, BTreeSet};

use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Uri};

use crate::digest::Digest;
use crate::manifest::media_type::MANIFEST_ACCEPT;
use crate::manifest::RawManifest;
use crate::reference::{api_host, is_localhost, validate_repository, validate_tag};

/// A URL ferry would have to send that cannot be formed: a repository or tag name (often
/// one a registry listed) outside the spec's grammar, or a `Location` that is no URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} cannot form a URL: {reason}")]
pub struct UrlError {
    /// What was being addressed, e.g. `repository "a b"`.
    pub what: String,
    /// Why it cannot form a URL.
    pub reason: String,
}

/// Where a registry's API lives: scheme and host, e.g. `https://registry-1.docker.io`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    base: String,
}

impl Endpoint {
    /// The endpoint of `registry` (as a reference names it). A registry marked insecure or
    /// on the loopback interface gets an `http://` base: the browser build uses it as it
    /// is, while the native transport asks [`crate::scheme`] and probes once whether the
    /// registry speaks TLS, upgrading to `https://` when it does.
    pub fn new(registry: &str, insecure: bool) -> Self {
        let scheme = if insecure || is_localhost(registry) { "http" } else { "https" };
        Endpoint { base: format!("{scheme}://{}", api_host(registry)) }
    }

    /// An endpoint from an explicit base URL such as `http://127.0.0.1:5000`.
    pub fn from_base(base: &str) -> Self {
        Endpoint { base: base.trim_end_matches('/').to_owned() }
    }

    /// `scheme://host[:port]`, no trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// end-3: `/v2/<name>/manifests/<reference>`, where the reference is a tag or a digest.
    pub fn manifest(&self, repository: &str, reference: &str) -> Result<Uri, UrlError> {
        let repository = checked_repository(repository)?;
        if reference.parse::<Digest>().is_err() {
            validate_tag(reference)
                .map_err(|e| UrlError { what: format!("tag {reference:?}"), reason: e.to_string() })?;
        }
        self.uri(format!("/v2/{repository}/manifests/{reference}"))
    }

    /// end-2: `/v2/<name>/blobs/<digest>`.
    pub fn blob(&self, repository: &str, digest: &Digest) -> Result<Uri, UrlError> {
        let repository = checked_repository(repository)?;
        self.uri(format!("/v2/{repository}/blobs/{digest}"))
    }

    /// end-4a: `/v2/<name>/blobs/uploads/`.
    pub fn upload_start(&self, repository: &str) -> Result<Uri, UrlError> {
        let repository = checked_repository(repository)?;
        self.uri(format!("/v2/{repository}/blobs/uploads/"))
    }

    /// end-11: `/v2/<name>/blobs/uploads/?mount=<digest>&from=<other_name>`.
    pub fn mount(&self, repository: &str, digest: &Digest, from: &str) -> Result<Uri, UrlError> {
        let repository = checked_repository(repository)?;
        let from = checked_repository(from)?;
        self.uri(format!("/v2/{repository}/blobs/uploads/?mount={digest}&from={from}"))
    }

    /// end-8a: `/v2/<name>/tags/list`.
    pub fn tags_list(&self, repository: &str) -> Result<Uri, UrlError> {
        let repository = checked_repository(repository)?;
        self.uri(format!("/v2/{repository}/tags/list"))
    }

    /// end-12a: `/v2/<name>/referrers/<digest>`, the referrers API of OCI Distribution 1.1.
    pub fn referrers(&self, repository: &str, digest: &Digest) -> Result<Uri, UrlError> {
        let repository = checked_repository(repository)?;
        self.uri(format!("/v2/{repository}/referrers/{digest}"))
    }

    /// distribution's catalog: `/v2/_catalog`.
    pub fn catalog(&self) -> Result<Uri, UrlError> {
        self.uri("/v2/_catalog".to_owned())
    }

    /// Resolves a `Location` or `Link` target, which may be absolute or relative to the host.
    pub fn resolve(&self, location: &str) -> Result<Uri, UrlError> {
        let url = if location.starts_with("http://") || location.starts_with("https://") {
            location.to_owned()
        } else if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            format!("{}/{location}", self.base)
        };
        parse_uri(url, || format!("the registry's link {location:?}"))
    }

    fn uri(&self, path: String) -> Result<Uri, UrlError> {
        let url = format!("{}{path}", self.base);
        parse_uri(url, || format!("the registry address {:?}", self.base))
    }
}

/// Where each registry lives. By default `https://<registry>` (Docker Hub's API host for
/// `docker.io`), plain HTTP for registries marked insecure and for loopback ones; an
/// explicit base URL wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointMap {
    /// Registries spoken to over plain HTTP.
    pub insecure: BTreeSet<String>,
    /// Base URLs by registry name, e.g. `127.0.0.1:5000` -> `http://127.0.0.1:5000`.
    pub bases: BTreeMap<String, String>,
}

impl EndpointMap {
    /// The endpoint of `registry`.
    pub fn endpoint(&self, registry: &str) -> Endpoint {
        match self.bases.get(registry) {
            Some(base) => Endpoint::from_base(base),
            None => Endpoint::new(registry, self.insecure.contains(registry)),
        }
    }
}

fn checked_repository(repository: &str) -> Result<&str, UrlError> {
    validate_repository(repository)
        .map_err(|e| UrlError { what: format!("repository {repository:?}"), reason: e.to_string() })?;
    Ok(repository)
}

fn parse_uri(url: String, what: impl FnOnce() -> String) -> Result<Uri, UrlError> {
    match url.parse::<Uri>() {
        Ok(uri) if uri.scheme().is_some() && uri.authority().is_some() => Ok(uri),
        Ok(_) => Err(UrlError { what: what(), reason: "it has no scheme or host".to_owned() }),
        Err(e) => Err(UrlError { what: what(), reason: e.to_string() }),
    }
}

/// A small request with an empty body. Building it cannot fail: the URI is already typed.
pub fn request(method: Method, uri: Uri) -> Request<Vec<u8>> {
    let mut request = Request::new(Vec::new());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    request
}

/// A GET or HEAD for a manifest, accepting every manifest type ferry copies.
pub fn manifest_request(method: Method, uri: Uri) -> Request<Vec<u8>> {
    let mut request = request(method, uri);
    request.headers_mut().insert(ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT));
    request
}

/// end-7: `PUT /v2/<name>/manifests/<reference>` with the manifest's exact bytes and its
/// media type.
pub fn put_manifest(uri: Uri, manifest: &RawManifest) -> Request<Vec<u8>> {
    let mut request = request(Method::PUT, uri);
    if let Ok(media_type) = HeaderValue::from_str(manifest.media_type()) {
        request.headers_mut().insert(CONTENT_TYPE, media_type);
    }
    *request.body_mut() = manifest.bytes().to_vec();
    request
}

/// The target of `rel="next"` in a `Link` header (RFC 8288), as distribution sends for
/// paginated `tags/list` and `_catalog`: `</v2/_catalog?last=b&n=2>; rel="next"`.
pub fn next_link(header: &str) -> Option<&str> {
    header.split(',').find_map(|link| {
        let (target, params) = link.trim().split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim();
            p.eq_ignore_ascii_case("rel=\"next\"") || p.eq_ignore_ascii_case("rel=next")
        });
        is_next.then_some(target)
    })
}

/// Appends a query parameter to a URL that may already carry a query (upload locations
/// usually do: `?_state=...`).
pub fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={}", percent_encode(value))
}

/// Percent-encodes everything outside RFC 3986's unreserved set.
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The URL that completes an upload: end-6 `PUT <location>?digest=<digest>`.
pub fn upload_complete(location: &str, digest: &Digest) -> String {
    with_query(location, "digest", &digest.to_string())
}

/// Reads `Range: 0-<last>` from an upload answer: the number of bytes the registry holds.
/// Distribution answers `0-0` for an empty upload too, so an empty session reads as 0 only
/// when the caller knows nothing was sent; callers use it to resume from the next offset.
pub fn upload_offset(range: &str) -> Option<u64> {
    let last: u64 =
        range.trim().strip_prefix("bytes=").unwrap_or(range.trim()).strip_prefix("0-")?.parse().ok()?;
    Some(last + 1)
}

/// `reference` (a `Location` or `Link` target: absolute, scheme-relative, host-relative,
/// a query, or path-relative) resolved against the URL `base` it answered (RFC 3986
/// §5.2, without dot segments). `None` when the result is not an absolute URL.
pub fn resolve_url(base: &str, reference: &str) -> Option<String> {
    let reference = reference.trim();
    let (scheme, rest) = base.split_once("://")?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let origin = &base[..scheme.len() + 3 + authority_end];
    let path_end = rest.find(['?', '#']).map_or(base.len(), |i| scheme.len() + 3 + i);
    let has_scheme = reference.split_once(':').is_some_and(|(s, _)| {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    });
    let resolved = if has_scheme {
        reference.to_owned()
    } else if let Some(rest) = reference.strip_prefix("//") {
        format!("{scheme}://{rest}")
    } else if reference.starts_with('/') {
        format!("{origin}{reference}")
    } else if reference.starts_with('?') || reference.is_empty() {
        format!("{}{reference}", &base[..path_end])
    } else {
        let path = &base[origin.len()..path_end];
        let dir = path.rfind('/').map_or("/", |i| &path[..=i]);
        format!("{origin}{dir}{reference}")
    };
    let uri = resolved.parse::<http::Uri>().ok()?;
    (uri.scheme().is_some() && uri.authority().is_some()).then_some(resolved)
}

/// `host[:port]` of a URL, for messages (never its user, path or query, which may carry
/// credentials or signatures).
pub fn host_of(url: &str) -> String {
    let authority = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = &authority[..authority.find(['/', '?', '#']).unwrap_or(authority.len())];
    authority.rsplit('@').next().unwrap_or(authority).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let cases = [
            ("docker.io", false, "https://registry-1.docker.io"),
            ("quay.io", false, "https://quay.io"),
            ("quay.io", true, "http://quay.io"),
            ("localhost:5000", false, "http://localhost:5000"),
            ("127.0.0.1:5001", false, "http://127.0.0.1:5001"),
        ];
        for (registry, insecure, base) in cases {
            assert_eq!(Endpoint::new(registry, insecure).base(), base, "{registry}");
        }
        let e = Endpoint::from_base("http://h:1/");
        assert_eq!(e.manifest("a/b", "v1").unwrap(), "http://h:1/v2/a/b/manifests/v1");
        assert_eq!(e.resolve("/v2/a/blobs/uploads/u?x=1").unwrap(), "http://h:1/v2/a/blobs/uploads/u?x=1");
        assert_eq!(e.resolve("https://s3/x").unwrap(), "https://s3/x");
    }

    #[test]
    fn names_that_cannot_form_a_url() {
        let e = Endpoint::from_base("http://h:1");
        let d = Digest::sha256(b"");
        let cases = [
            (e.tags_list("a b"), "repository \"a b\" cannot form a URL"),
            (e.tags_list("x?y"), "repository \"x?y\" cannot form a URL"),
            (e.manifest("ok", "../etc"), "tag \"../etc\" cannot form a URL"),
            (e.mount("ok", &d, "UP/per"), "repository \"UP/per\" cannot form a URL"),
            (Endpoint::from_base("h:1").catalog(), "the registry address \"h:1\" cannot form a URL"),
            (e.resolve("http://[bad"), "the registry's link \"http://[bad\" cannot form a URL"),
        ];
        for (result, want) in cases {
            let error = result.expect_err(want).to_string();
            assert!(error.starts_with(want), "{error}");
        }
        assert!(e.manifest("ok", &d.to_string()).is_ok());
    }

    #[test]
    fn link_headers() {
        let cases = [
            (r#"</v2/_catalog?last=b&n=2>; rel="next""#, Some("/v2/_catalog?last=b&n=2")),
            (
                r#"<https://h/v2/r/tags/list?n=1&last=a>; rel=next"#,
                Some("https://h/v2/r/tags/list?n=1&last=a"),
            ),
            (r#"</a>; rel="prev", </b>; rel="next""#, Some("/b")),
            (r#"</a>; rel="prev""#, None),
            ("garbage", None),
            ("", None),
        ];
        for (header, want) in cases {
            assert_eq!(next_link(header), want, "{header}");
        }
    }

    #[test]
    fn upload_urls_and_ranges() {
        let d = Digest::sha256(b"");
        assert_eq!(
            upload_complete("http://h/u?_state=a", &d),
            format!("http://h/u?_state=a&digest=sha256%3A{}", d.hex())
        );
        assert_eq!(upload_complete("http://h/u", &d), format!("http://h/u?digest=sha256%3A{}", d.hex()));
        assert_eq!(upload_offset("0-99"), Some(100));
        assert_eq!(upload_offset("bytes=0-0"), Some(1));
        assert_eq!(upload_offset("5-9"), None);
        assert_eq!(upload_offset("0-x"), None);
    }

    #[test]
    fn locations_resolve_against_the_answered_url() {
        let base = "http://h:5000/v2/a/blobs/uploads/1?_state=x";
        let cases = [
            ("/v2/a/blobs/uploads/2?_state=y", Some("http://h:5000/v2/a/blobs/uploads/2?_state=y")),
            ("https://s3.test/up?sig=1", Some("https://s3.test/up?sig=1")),
            ("//other:1/x", Some("http://other:1/x")),
            ("?_state=z", Some("http://h:5000/v2/a/blobs/uploads/1?_state=z")),
            ("3?_state=z", Some("http://h:5000/v2/a/blobs/uploads/3?_state=z")),
            (" /x ", Some("http://h:5000/x")),
            ("/has space", None),
        ];
        for (reference, want) in cases {
            assert_eq!(resolve_url(base, reference).as_deref(), want, "{reference}");
        }
        assert_eq!(resolve_url("not a url", "/x"), None);
        assert_eq!(resolve_url("http://h", "u"), Some("http://h/u".to_owned()));
        assert_eq!(host_of("https://user:pw@h:1/v2/?X-Amz-Signature=s"), "h:1");
        assert_eq!(host_of("http://h?q"), "h");
    }
}
