//! An in-memory registry that answers the distribution API well enough to be copied
//! from and to: manifests, blobs with per-repository links, uploads, mounts, paginated
//! tag lists, the catalog, and Basic or Bearer auth.

use std::collections::{BTreeMap, BTreeSet};

use http::{Method, Request, Response, StatusCode};

use crate::digest::Digest;
use crate::manifest::media_type;

/// How a fake registry wants to be authorised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeAuth {
    /// Basic auth on every request.
    Basic {
        /// The one user.
        username: String,
        /// Its password.
        password: String,
    },
    /// The Docker token flow: the token endpoint is `<base>/token`.
    Bearer {
        /// The one user the token endpoint accepts.
        username: String,
        /// Its password.
        password: String,
    },
}

/// An OCI registry in memory: blobs, manifests, tags, uploads and mounts per repository,
/// with the spec's statuses and error codes, optional auth and pagination.
#[derive(Debug, Clone, Default)]
pub struct FakeRegistry {
    /// Its base URL, without a trailing `/`.
    pub base: String,
    blobs: BTreeMap<Digest, Vec<u8>>,
    /// Bytes served instead of the real ones: a lying registry.
    corrupt: BTreeMap<Digest, Vec<u8>>,
    links: BTreeSet<(String, Digest)>,
    manifests: BTreeMap<(String, Digest), (String, Vec<u8>)>,
    tags: BTreeMap<(String, String), Digest>,
    uploads: BTreeMap<String, String>,
    next_upload: u64,
    /// Credentials it asks for; `None` for none.
    pub auth: Option<FakeAuth>,
    /// With `auth`, `GET` and `HEAD` need no credentials: only pushes are challenged.
    pub anonymous_pull: bool,
    tokens: BTreeSet<String>,
    /// `tags/list` and `_catalog` pages hold at most this many entries.
    pub page_size: Option<usize>,
    /// Answers the referrers API and `OCI-Subject`, as an OCI 1.1 registry does; without
    /// it, `/referrers/` is a 404, as on distribution 2.8.
    pub referrers_api: bool,
    /// A concurrent writer: after each of the next pushes to (repository, tag), it pushes
    /// its own bytes over them, as a client that read the tag before ferry's write would.
    racers: BTreeMap<(String, String), (Vec<u8>, usize)>,
}

fn respond(status: StatusCode) -> http::response::Builder {
    Response::builder().status(status)
}

fn error(status: StatusCode, code: &str) -> Response<Vec<u8>> {
    let body = format!(r#"{{"errors":[{{"code":"{code}","message":"{code}"}}]}}"#);
    respond(status).header("content-type", "application/json").body(body.into_bytes()).unwrap_or_default()
}

impl FakeRegistry {
    /// An empty registry at `base`.
    pub fn new(base: &str) -> Self {
        FakeRegistry { base: base.trim_end_matches('/').to_owned(), ..FakeRegistry::default() }
    }

    /// Stores a blob in `repository`, returning its digest.
    pub fn put_blob(&mut self, repository: &str, bytes: &[u8]) -> Digest {
        let digest = Digest::sha256(bytes);
        self.blobs.insert(digest.clone(), bytes.to_vec());
        self.links.insert((repository.to_owned(), digest.clone()));
        digest
    }

    /// Stores a manifest's exact bytes in `repository`, tagged when `tag` is given.
    pub fn put_manifest(
        &mut self,
        repository: &str,
        tag: Option<&str>,
        media_type: &str,
        bytes: &[u8],
    ) -> Digest {
        let digest = Digest::sha256(bytes);
        self.manifests
            .insert((repository.to_owned(), digest.clone()), (media_type.to_owned(), bytes.to_vec()));
        if let Some(tag) = tag {
            self.tags.insert((repository.to_owned(), tag.to_owned()), digest.clone());
        }
        digest
    }

    /// After each of the next `times` pushes to `repository:tag`, pushes `bytes` (an OCI
    /// index) over them: a concurrent read-modify-write that lost what ferry wrote.
    pub fn race_tag(&mut self, repository: &str, tag: &str, bytes: &[u8], times: usize) {
        self.racers.insert((repository.to_owned(), tag.to_owned()), (bytes.to_vec(), times));
    }

    /// Serves `bytes` for `digest` from now on, whatever was uploaded.
    pub fn corrupt_blob(&mut self, digest: &Digest, bytes: &[u8]) {
        self.corrupt.insert(digest.clone(), bytes.to_vec());
    }

    /// Whether `repository` holds the blob (uploaded or mounted there).
    pub fn has_blob(&self, repository: &str, digest: &Digest) -> bool {
        self.links.contains(&(repository.to_owned(), digest.clone()))
    }

    /// The manifest digest `tag` points at.
    pub fn tag(&self, repository: &str, tag: &str) -> Option<&Digest> {
        self.tags.get(&(repository.to_owned(), tag.to_owned()))
    }

    /// The manifest's bytes, exactly as pushed.
    pub fn manifest(&self, repository: &str, digest: &Digest) -> Option<&[u8]> {
        self.manifests.get(&(repository.to_owned(), digest.clone())).map(|(_, b)| b.as_slice())
    }

    /// Manifests over every repository, for asserting that nothing was pushed.
    pub fn manifest_count(&self) -> usize {
        self.manifests.len()
    }

    /// The blob's bytes as served to a GET (corrupt ones included).
    pub fn serve_blob(&self, repository: &str, digest: &Digest) -> Option<&[u8]> {
        if !self.has_blob(repository, digest) {
            return None;
        }
        self.corrupt.get(digest).or_else(|| self.blobs.get(digest)).map(Vec::as_slice)
    }

    /// Commits an uploaded blob the way a registry does: the digest must match.
    pub fn commit_upload(
        &mut self,
        location: &str,
        digest: &Digest,
        bytes: Vec<u8>,
    ) -> Result<(), StatusCode> {
        let Some(repository) = self.upload_repository(location) else { return Err(StatusCode::NOT_FOUND) };
        if &Digest::sha256(&bytes) != digest {
            return Err(StatusCode::BAD_REQUEST);
        }
        self.blobs.insert(digest.clone(), bytes);
        self.links.insert((repository, digest.clone()));
        Ok(())
    }

    fn upload_repository(&self, location: &str) -> Option<String> {
        let uuid = location.rsplit('/').next()?.split('?').next()?;
        self.uploads.get(uuid).cloned()
    }

    /// Opens an upload session and returns its absolute location.
    pub fn open_upload(&mut self, repository: &str) -> String {
        self.next_upload += 1;
        let uuid = format!("u{}", self.next_upload);
        self.uploads.insert(uuid.clone(), repository.to_owned());
        format!("{}/v2/{repository}/blobs/uploads/{uuid}?_state=x", self.base)
    }

    fn authorised(&self, request: &Request<Vec<u8>>) -> bool {
        let header = request.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
        match &self.auth {
            None => true,
            Some(FakeAuth::Basic { username, password }) => {
                header == crate::auth::Credential::new(username, password).basic_authorization()
            }
            Some(FakeAuth::Bearer { .. }) => {
                header.strip_prefix("Bearer ").is_some_and(|t| self.tokens.contains(t))
            }
        }
    }

    fn challenge(&self, scope: &str) -> Response<Vec<u8>> {
        let value = match &self.auth {
            Some(FakeAuth::Bearer { .. }) => {
                format!(r#"Bearer realm="{}/token",service="fake",scope="{scope}""#, self.base)
            }
            _ => r#"Basic realm="fake""#.to_owned(),
        };
        let mut response = error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
        if let Ok(v) = http::HeaderValue::from_str(&value) {
            response.headers_mut().insert("www-authenticate", v);
        }
        response
    }

    fn token(&mut self, request: &Request<Vec<u8>>) -> Response<Vec<u8>> {
        let Some(FakeAuth::Bearer { username, password }) = &self.auth else {
            return error(StatusCode::NOT_FOUND, "NOT_FOUND");
        };
        let expected = crate::auth::Credential::new(username, password).basic_authorization();
        let header = request.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
        if header != expected {
            return error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
        }
        let token = format!("t{}", self.tokens.len() + 1);
        self.tokens.insert(token.clone());
        let body = format!(r#"{{"token":"{token}","expires_in":300}}"#);
        respond(StatusCode::OK).body(body.into_bytes()).unwrap_or_default()
    }

    /// Answers one request of the distribution API.
    pub fn handle(&mut self, request: &Request<Vec<u8>>) -> Response<Vec<u8>> {
        let path = request.uri().path().to_owned();
        let query = request.uri().query().unwrap_or("").to_owned();
        if path == "/token" {
            return self.token(request);
        }
        let Some(rest) = path.strip_prefix("/v2/") else { return error(StatusCode::NOT_FOUND, "NOT_FOUND") };
        let pull = matches!(*request.method(), Method::GET | Method::HEAD);
        if !(self.authorised(request) || self.anonymous_pull && pull) {
            let scope = route(rest).map(|(name, _, _)| format!("repository:{name}:pull")).unwrap_or_default();
            return self.challenge(&scope);
        }
        if rest.is_empty() {
            return respond(StatusCode::OK).body(b"{}".to_vec()).unwrap_or_default();
        }
        if rest == "_catalog" {
            let names: BTreeSet<&String> = self.tags.keys().map(|(r, _)| r).collect();
            let names: Vec<String> = names.into_iter().cloned().collect();
            return self.page(names, &query, "/v2/_catalog", "repositories");
        }
        let Some((name, kind, reference)) = route(rest) else {
            return error(StatusCode::NOT_FOUND, "NAME_UNKNOWN");
        };
        let method = request.method().clone();
        match (kind, &method) {
            ("tags", &Method::GET) => {
                let tags: Vec<String> =
                    self.tags.keys().filter(|(r, _)| r == &name).map(|(_, t)| t.clone()).collect();
                if tags.is_empty() {
                    return error(StatusCode::NOT_FOUND, "NAME_UNKNOWN");
                }
                let path = format!("/v2/{name}/tags/list");
                self.page(tags, &query, &path, "tags")
            }
            ("manifests", &Method::GET | &Method::HEAD) => {
                let digest = match reference.parse::<Digest>() {
                    Ok(d) => Some(d),
                    Err(_) => self.tags.get(&(name.clone(), reference.clone())).cloned(),
                };
                match digest.and_then(|d| self.manifests.get(&(name.clone(), d.clone())).map(|m| (d, m))) {
                    Some((digest, (media_type, bytes))) => {
                        let body = if method == Method::GET { bytes.clone() } else { Vec::new() };
                        respond(StatusCode::OK)
                            .header("content-type", media_type.as_str())
                            .header("content-length", bytes.len())
                            .header("docker-content-digest", digest.to_string())
                            .body(body)
                            .unwrap_or_default()
                    }
                    None => error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
                }
            }
            ("manifests", &Method::PUT) => self.push_manifest(&name, &reference, request),
            ("referrers", &Method::GET) if self.referrers_api => self.referrers(&name, &reference, &query),
            // distribution 2.8 has no such route: a plain 404.
            ("referrers", _) => {
                respond(StatusCode::NOT_FOUND).body(b"404 page not found\n".to_vec()).unwrap_or_default()
            }
            ("blobs", &Method::HEAD) => {
                match reference.parse::<Digest>().ok().and_then(|d| self.serve_blob(&name, &d)) {
                    Some(bytes) => respond(StatusCode::OK)
                        .header("content-length", bytes.len())
                        .body(Vec::new())
                        .unwrap_or_default(),
                    None => error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN"),
                }
            }
            ("uploads", &Method::POST) => {
                let params: BTreeMap<&str, &str> =
                    query.split('&').filter_map(|p| p.split_once('=')).collect();
                if let (Some(mount), Some(from)) = (params.get("mount"), params.get("from")) {
                    let digest = mount.replace("%3A", ":").parse::<Digest>().ok();
                    if let Some(digest) = digest.filter(|d| self.has_blob(from, d)) {
                        self.links.insert((name.clone(), digest));
                        return respond(StatusCode::CREATED).body(Vec::new()).unwrap_or_default();
                    }
                }
                let location = self.open_upload(&name);
                respond(StatusCode::ACCEPTED)
                    .header("location", location)
                    .body(Vec::new())
                    .unwrap_or_default()
            }
            _ => error(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED"),
        }
    }

    fn push_manifest(
        &mut self,
        name: &str,
        reference: &str,
        request: &Request<Vec<u8>>,
    ) -> Response<Vec<u8>> {
        let media_type =
            request.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let bytes = request.body().clone();
        // Every referenced blob and child manifest must exist (MANIFEST_BLOB_UNKNOWN).
        if let Ok(raw) = crate::manifest::RawManifest::parse(bytes.clone(), Some(&media_type)) {
            let missing = match raw.manifest() {
                crate::manifest::Manifest::Image(m) => m.blobs().any(|b| !self.has_blob(name, &b.digest)),
                crate::manifest::Manifest::Index(i) => i
                    .manifests
                    .iter()
                    .any(|c| !self.manifests.contains_key(&(name.to_owned(), c.digest.clone()))),
            };
            if missing {
                return error(StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN");
            }
        } else {
            return error(StatusCode::BAD_REQUEST, "MANIFEST_INVALID");
        }
        let tag = reference.parse::<Digest>().is_err().then_some(reference);
        let digest = self.put_manifest(name, tag, &media_type, &bytes);
        if let Some((racer, times)) = tag.and_then(|t| self.racers.get_mut(&(name.to_owned(), t.to_owned())))
        {
            if *times > 0 {
                *times -= 1;
                let racer = racer.clone();
                self.put_manifest(name, tag, media_type::OCI_INDEX, &racer);
            }
        }
        let mut response = respond(StatusCode::CREATED).header("docker-content-digest", digest.to_string());
        if let Some(subject) = self.subject_of(&bytes).filter(|_| self.referrers_api) {
            response = response.header("oci-subject", subject.to_string());
        }
        response.body(Vec::new()).unwrap_or_default()
    }

    fn subject_of(&self, bytes: &[u8]) -> Option<Digest> {
        let raw = crate::manifest::RawManifest::parse(bytes.to_vec(), None).ok()?;
        match raw.manifest() {
            crate::manifest::Manifest::Image(m) => m.subject.as_ref().map(|s| s.digest.clone()),
            crate::manifest::Manifest::Index(i) => i.subject.as_ref().map(|s| s.digest.clone()),
        }
    }

    /// end-12a: an index of the manifests in `name` whose subject is `reference`, filtered
    /// by `artifactType` when asked.
    fn referrers(&self, name: &str, reference: &str, query: &str) -> Response<Vec<u8>> {
        let Ok(subject) = reference.parse::<Digest>() else {
            return error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
        };
        let wanted =
            query.split('&').find_map(|p| p.strip_prefix("artifactType=")).map(|t| t.replace("%2F", "/"));
        let mut manifests = Vec::new();
        for ((repository, digest), (media_type, bytes)) in &self.manifests {
            if repository != name || self.subject_of(bytes).as_ref() != Some(&subject) {
                continue;
            }
            let Ok(raw) = crate::manifest::RawManifest::parse(bytes.clone(), Some(media_type)) else {
                continue;
            };
            let descriptor = crate::referrers::descriptor_of(&raw);
            if wanted.is_some() && descriptor.artifact_type != wanted {
                continue;
            }
            debug_assert_eq!(&descriptor.digest, digest);
            manifests.push(descriptor);
        }
        let body = serde_json::json!({"schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": manifests});
        let mut response = respond(StatusCode::OK).header("content-type", media_type::OCI_INDEX);
        if wanted.is_some() {
            response = response.header("oci-filters-applied", "artifactType");
        }
        response.body(body.to_string().into_bytes()).unwrap_or_default()
    }

    fn page(&self, mut items: Vec<String>, query: &str, path: &str, key: &str) -> Response<Vec<u8>> {
        items.sort();
        let params: BTreeMap<&str, &str> = query.split('&').filter_map(|p| p.split_once('=')).collect();
        if let Some(last) = params.get("last") {
            items.retain(|i| i.as_str() > *last);
        }
        let n = params.get("n").and_then(|n| n.parse().ok()).or(self.page_size);
        let mut response = respond(StatusCode::OK);
        if let Some(n) = n.filter(|n| *n < items.len()) {
            items.truncate(n);
            let last = items.last().cloned().unwrap_or_default();
            response = response.header("link", format!(r#"<{path}?n={n}&last={last}>; rel="next""#));
        }
        let body = serde_json::json!({ key: items });
        response.body(body.to_string().into_bytes()).unwrap_or_default()
    }
}

/// Splits `<name>/(manifests|blobs|tags|referrers)/<reference>` and `<name>/blobs/uploads/...`.
fn route(rest: &str) -> Option<(String, &'static str, String)> {
    if let Some(i) = rest.find("/blobs/uploads") {
        return Some((rest[..i].to_owned(), "uploads", rest[i + "/blobs/uploads".len()..].to_owned()));
    }
    for kind in ["manifests", "blobs", "tags", "referrers"] {
        let marker = format!("/{kind}/");
        if let Some(i) = rest.rfind(&marker) {
            return Some((rest[..i].to_owned(), kind, rest[i + marker.len()..].to_owned()));
        }
    }
    None
}

/// Builds sample images into a fake registry.
pub struct ImageBuilder<'a> {
    registry: &'a mut FakeRegistry,
    repository: String,
}

impl<'a> ImageBuilder<'a> {
    /// A builder that pushes into `repository` of `registry`.
    pub fn new(registry: &'a mut FakeRegistry, repository: &str) -> Self {
        ImageBuilder { registry, repository: repository.to_owned() }
    }

    /// An OCI image whose layers have the given contents; returns the manifest's digest
    /// and size.
    pub fn image(&mut self, tag: Option<&str>, layers: &[&[u8]], platform: &str) -> (Digest, u64) {
        let (os, arch) = platform.split_once('/').unwrap_or(("linux", platform));
        let config =
            format!(r#"{{"architecture":"{arch}","os":"{os}","rootfs":{{"type":"layers","diff_ids":[]}}}}"#);
        let config_digest = self.registry.put_blob(&self.repository, config.as_bytes());
        let layers: Vec<String> = layers
            .iter()
            .map(|bytes| {
                let digest = self.registry.put_blob(&self.repository, bytes);
                format!(
                    r#"{{"mediaType":"{}","digest":"{digest}","size":{}}}"#,
                    media_type::OCI_LAYER_GZIP,
                    bytes.len()
                )
            })
            .collect();
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{config_digest}","size":{}}},"layers":[{}]}}"#,
            media_type::OCI_MANIFEST,
            media_type::OCI_CONFIG,
            config.len(),
            layers.join(",")
        );
        let digest =
            self.registry.put_manifest(&self.repository, tag, media_type::OCI_MANIFEST, manifest.as_bytes());
        (digest, manifest.len() as u64)
    }

    /// An artifact whose `subject` is the manifest `subject` of this repository: the empty
    /// config, one layer holding `payload`, and `artifactType`. With `tag_schema`, it is
    /// also added to the subject's `sha256-<hex>` index, as a client does for a registry
    /// without the referrers API. Returns the artifact's digest.
    pub fn artifact(
        &mut self,
        subject: &Digest,
        artifact_type: &str,
        payload: &[u8],
        tag_schema: bool,
    ) -> Digest {
        let key = (self.repository.clone(), subject.clone());
        let (subject_type, subject_size) = match self.registry.manifests.get(&key) {
            Some((media_type, bytes)) => (media_type.clone(), bytes.len()),
            None => (media_type::OCI_MANIFEST.to_owned(), 0),
        };
        let config = self.registry.put_blob(&self.repository, b"{}");
        let layer = self.registry.put_blob(&self.repository, payload);
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","artifactType":"{artifact_type}","config":{{"mediaType":"{}","digest":"{config}","size":2}},"layers":[{{"mediaType":"application/octet-stream","digest":"{layer}","size":{}}}],"subject":{{"mediaType":"{subject_type}","digest":"{subject}","size":{subject_size}}},"annotations":{{"org.opencontainers.image.created":"2026-01-01T00:00:00Z"}}}}"#,
            media_type::OCI_MANIFEST,
            media_type::OCI_EMPTY,
            payload.len()
        );
        let digest =
            self.registry.put_manifest(&self.repository, None, media_type::OCI_MANIFEST, manifest.as_bytes());
        if tag_schema {
            let raw = crate::manifest::RawManifest::parse(manifest.into_bytes(), None).expect("an artifact");
            let tag = crate::referrers::fallback_tag(subject);
            let existing = self.registry.tag(&self.repository, &tag).cloned();
            let existing =
                existing.and_then(|d| self.registry.manifest(&self.repository, &d).map(<[u8]>::to_vec));
            let descriptor = crate::referrers::descriptor_of(&raw);
            if let Ok(Some(index)) = crate::referrers::merge_index(existing.as_deref(), &[descriptor]) {
                self.registry.put_manifest(&self.repository, Some(&tag), media_type::OCI_INDEX, &index);
            }
        }
        digest
    }

    /// A cosign-style signature tag `sha256-<hex>.sig` beside the manifest `subject`: a
    /// plain manifest with no `subject`, as older cosign writes. Returns its digest.
    pub fn cosign_signature(&mut self, subject: &Digest, payload: &[u8]) -> Digest {
        let config = self.registry.put_blob(&self.repository, b"{}");
        let layer = self.registry.put_blob(&self.repository, payload);
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{config}","size":2}},"layers":[{{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","digest":"{layer}","size":{}}}]}}"#,
            media_type::OCI_MANIFEST,
            media_type::OCI_CONFIG,
            payload.len()
        );
        let tag = crate::referrers::cosign_tag(subject, crate::referrers::CosignKind::Sig);
        self.registry.put_manifest(
            &self.repository,
            Some(&tag),
            media_type::OCI_MANIFEST,
            manifest.as_bytes(),
        )
    }

    /// An OCI index over images built for each platform, each with its own layer plus
    /// the shared ones.
    pub fn index(&mut self, tag: &str, platforms: &[&str], shared: &[&[u8]]) -> Digest {
        let children: Vec<String> = platforms
            .iter()
            .map(|platform| {
                let own = format!("layer for {platform} of {}", self.repository).into_bytes();
                let mut layers: Vec<&[u8]> = shared.to_vec();
                layers.push(&own);
                let (digest, size) = self.image(None, &layers, platform);
                let mut parts = platform.split('/');
                let os = parts.next().unwrap_or("linux");
                let arch = parts.next().unwrap_or("amd64");
                let variant = parts.next().map(|v| format!(r#","variant":"{v}""#)).unwrap_or_default();
                format!(
                    r#"{{"mediaType":"{}","digest":"{digest}","size":{size},"platform":{{"architecture":"{arch}","os":"{os}"{variant}}}}}"#,
                    media_type::OCI_MANIFEST
                )
            })
            .collect();
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{}]}}"#,
            media_type::OCI_INDEX,
            children.join(",")
        );
        self.registry.put_manifest(&self.repository, Some(tag), media_type::OCI_INDEX, index.as_bytes())
    }
}
