//! The pull-through cache: repositories under an upstream's prefix are served from
//! storage when it holds them, and fetched from the upstream when it does not.
//!
//! Every upstream request is one run of ferry-core's [`Fetch`] machine over the native
//! transport, so the token dance, credentials, retries and digest checks are the same as
//! a sync's. What the cache adds:
//! - tags are trusted for the upstream's `tag_ttl_secs`, then re-checked with one `HEAD`;
//!   digests are immutable and never fetched twice ([`manifests`]);
//! - a missing blob is fetched once however many clients ask, streamed to all of them
//!   while it is written, and stored only once its digest is verified ([`blobs`]);
//! - when the upstream is unreachable or rate-limited, what is cached is still served,
//!   with a `Warning` header saying it may be stale; what is not cached gets a 502 or 503
//!   at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::Response;
use ferry_core::api::Endpoint;
use ferry_core::auth::{Credential, CredentialStore};
use ferry_core::error::{Error, ErrorKind};
use ferry_core::fetch::{Fetch, Fetched, Upstream, UpstreamAuth, Want};
use ferry_core::retry::RetryPolicy;
use ferry_native::{NativeTransport, TokioClock};
use http::{Method, StatusCode};

use crate::config::{ProxyConfig, UpstreamConfig};
use crate::error::{ErrorCode, RegistryError};
use crate::routes::Route;
use crate::state::AppState;
use crate::store::layout::Repo;

pub mod blobs;
pub mod manifests;

/// `Warning` on an answer served from the cache while the upstream could not be asked
/// (RFC 7234 §5.5.1: "110 Response is Stale").
pub const STALE_WARNING: &str = "110 ferry \"Response is Stale: the upstream could not be reached\"";

/// How the cache retries its upstream: briefly, since a client is waiting.
const RETRY: RetryPolicy = RetryPolicy {
    retries: 1,
    base: Duration::from_millis(100),
    cap: Duration::from_secs(1),
    max_retry_after: Duration::from_secs(5),
};

/// Held while one `repository:reference` is resolved upstream.
type ReferenceLock = Arc<tokio::sync::Mutex<()>>;

/// One upstream, ready to fetch from.
struct UpstreamRoute {
    prefix: String,
    upstream: Upstream,
    tag_ttl: Duration,
}

/// The cache's upstreams and what it is fetching.
pub struct Cache {
    routes: Vec<UpstreamRoute>,
    allow_push: bool,
    transport: NativeTransport,
    clock: TokioClock,
    blobs: blobs::Fetches,
    /// When each `repository:tag` was last confirmed upstream.
    checked: Mutex<HashMap<(String, String), std::time::Instant>>,
    /// One lock per `repository:reference`, so that concurrent pulls of a manifest ask the
    /// upstream once: the first fetches, the others find it stored (or freshly checked).
    manifest_locks: Mutex<HashMap<(String, String), ReferenceLock>>,
    /// What fetches learned about authorising at each upstream, by its base URL.
    auth: Mutex<HashMap<String, UpstreamAuth>>,
}

/// Where a repository's content comes from upstream.
pub struct Source<'a> {
    upstream: &'a Upstream,
    /// The repository's name upstream: the local name without the prefix.
    pub repository: String,
    tag_ttl: Duration,
}

impl Cache {
    /// The cache `config` describes; `None` when it names no upstream.
    pub fn new(config: &ProxyConfig) -> Result<Option<Cache>, String> {
        if config.upstreams.is_empty() {
            return Ok(None);
        }
        let routes = config.upstreams.iter().map(route).collect::<Result<Vec<_>, _>>()?;
        let transport = NativeTransport::new().map_err(|e| format!("proxy: {e}"))?;
        Ok(Some(Cache {
            routes,
            allow_push: config.allow_push,
            transport,
            clock: TokioClock::new(),
            blobs: blobs::Fetches::default(),
            checked: Mutex::new(HashMap::new()),
            manifest_locks: Mutex::new(HashMap::new()),
            auth: Mutex::new(HashMap::new()),
        }))
    }

    /// The upstream of `repo`: the route with the longest prefix that starts its name.
    pub fn source(&self, repo: &Repo) -> Option<Source<'_>> {
        let name = repo.as_str();
        let route = self
            .routes
            .iter()
            .filter(|r| name.starts_with(&r.prefix) && name.len() > r.prefix.len())
            .max_by_key(|r| r.prefix.len())?;
        Some(Source {
            upstream: &route.upstream,
            repository: name[route.prefix.len()..].to_owned(),
            tag_ttl: route.tag_ttl,
        })
    }

    /// Refuses a push to a cached repository unless the configuration allows it.
    pub fn check_push(&self, repo: &Repo) -> Result<(), RegistryError> {
        match self.source(repo) {
            Some(source) if !self.allow_push => Err(RegistryError::unsupported(format!(
                "repository {} is a pull-through cache of {}; pushes to it are refused \
                 (set proxy.allow_push: true to accept them)",
                repo.as_str(),
                source.upstream.endpoint.base()
            ))),
            _ => Ok(()),
        }
    }

    /// The lock of one manifest reference.
    fn manifest_lock(&self, repo: &Repo, reference: &str) -> ReferenceLock {
        let key = (repo.as_str().to_owned(), reference.to_owned());
        match self.manifest_locks.lock() {
            Ok(mut locks) => locks.entry(key).or_default().clone(),
            // A poisoned map only loses the coalescing, not the answer.
            Err(_) => Arc::default(),
        }
    }

    /// Runs one fetch from `source` to its end.
    async fn fetch(&self, source: &Source<'_>, want: Want) -> Result<Fetched, Error> {
        self.fetch_from(source.upstream, &source.repository, want).await
    }

    /// Runs one fetch from `repository` upstream to its end.
    async fn fetch_from(&self, upstream: &Upstream, repository: &str, want: Want) -> Result<Fetched, Error> {
        let seed = u64::from_str_radix(&crate::random::random_hex(8), 16).unwrap_or(1);
        let (now, wall) = (ferry_core::transport::Clock::now(&self.clock), self.clock.wall_now());
        let base = upstream.endpoint.base().to_owned();
        let auth = self.auth.lock().ok().and_then(|a| a.get(&base).cloned()).unwrap_or_default();
        let mut machine = Fetch::new(upstream.clone(), auth, repository, want, seed, now, wall);
        ferry_core::driver::run(&mut machine, &self.transport, &self.clock, |_| {})
            .await
            .map_err(|e| Error::new(ErrorKind::Unavailable, e.to_string()))?;
        if let Ok(mut auth) = self.auth.lock() {
            auth.insert(base, machine.auth());
        }
        machine
            .result()
            .unwrap_or_else(|| Err(Error::new(ErrorKind::Unavailable, "the fetch ended without a result")))
    }
}

fn route(config: &UpstreamConfig) -> Result<UpstreamRoute, String> {
    let endpoint = Endpoint::from_base(&config.url);
    let host = ferry_core::api::host_of(endpoint.base());
    let pairs = match (&config.username, &config.password) {
        (Some(user), Some(password)) => vec![(host, Credential::new(user.clone(), password.clone()))],
        _ => Vec::new(),
    };
    let credentials =
        CredentialStore::new(pairs).map_err(|e| format!("proxy upstream {}: {e}", config.url))?;
    Ok(UpstreamRoute {
        prefix: config.prefix.clone(),
        upstream: Upstream { endpoint, credentials, retry: RETRY },
        tag_ttl: Duration::from_secs(config.tag_ttl_secs),
    })
}

/// What the cache did for a request before the handler runs.
pub enum Prepared {
    /// Nothing to do: the handler serves from storage.
    Local,
    /// Storage holds an answer the upstream could not confirm: serve it with a `Warning`.
    Stale,
    /// The cache answered itself (a blob streaming from its fetch, or a refusal).
    Answer(Response),
}

/// Readies storage for a request to a cached repository: fetches what a pull needs,
/// refuses a push unless allowed.
pub async fn prepare(
    state: &Arc<AppState>,
    cache: &Cache,
    route: &Route,
    method: &Method,
) -> Result<Prepared, RegistryError> {
    let (repo, is_pull) = match route {
        Route::Manifest { repo, .. } | Route::Blob { repo, .. } => {
            (repo, matches!(*method, Method::GET | Method::HEAD))
        }
        Route::UploadStart { repo } | Route::Upload { repo, .. } => (repo, false),
        _ => return Ok(Prepared::Local),
    };
    let Some(source) = cache.source(repo) else { return Ok(Prepared::Local) };
    if !is_pull {
        if *method != Method::DELETE {
            cache.check_push(repo)?;
        }
        return Ok(Prepared::Local);
    }
    let head = *method == Method::HEAD;
    match route {
        Route::Manifest { reference, .. } => {
            Ok(match manifests::ensure(state, cache, &source, repo, reference).await? {
                manifests::Freshness::Fresh => Prepared::Local,
                manifests::Freshness::Stale => Prepared::Stale,
            })
        }
        Route::Blob { digest, .. } => {
            let digest = crate::store::layout::parse_digest(digest)?;
            Ok(match blobs::serve(state, &source, repo, &digest, head).await? {
                Some(response) => Prepared::Answer(response),
                None => Prepared::Local,
            })
        }
        _ => Ok(Prepared::Local),
    }
}

/// The answer to a client when the upstream failed and nothing is cached: the upstream
/// said it does not exist (404), is limiting (503 with the reason), or failed (502).
pub fn upstream_error(error: &Error, code: ErrorCode, what: &str) -> RegistryError {
    match error.kind() {
        ErrorKind::NotFound => RegistryError::new(code, format!("{what} is not in the cache nor upstream"))
            .with_detail(serde_json::json!({ "upstream": error.message() })),
        ErrorKind::RateLimited | ErrorKind::Unavailable => RegistryError::new(
            ErrorCode::Unknown,
            format!("{what} is not cached and the upstream is unavailable: {}", error.message()),
        )
        .with_status(StatusCode::SERVICE_UNAVAILABLE)
        .with_header(http::header::RETRY_AFTER, "10"),
        _ => RegistryError::new(
            ErrorCode::Unknown,
            format!("{what} is not cached and the upstream failed: {}", error.message()),
        )
        .with_status(StatusCode::BAD_GATEWAY),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_prefixes(prefixes: &[&str], allow_push: bool) -> Cache {
        let upstreams = prefixes
            .iter()
            .enumerate()
            .map(|(i, p)| UpstreamConfig {
                prefix: (*p).into(),
                url: format!("https://up{i}.test"),
                ..Default::default()
            })
            .collect();
        Cache::new(&ProxyConfig { upstreams, allow_push }).expect("a valid config").expect("upstreams")
    }

    #[test]
    fn repositories_route_to_the_longest_prefix() {
        let cache = with_prefixes(&["docker.io/", "docker.io/library/", "ghcr.io/"], false);
        // (local repository, upstream base and repository there; None when not cached)
        let cases = [
            ("docker.io/nginx/app", Some(("https://up0.test", "nginx/app"))),
            ("docker.io/library/alpine", Some(("https://up1.test", "alpine"))),
            ("ghcr.io/org/tool", Some(("https://up2.test", "org/tool"))),
            ("ghcr.iox/tool", None),
            ("local/app", None),
        ];
        for (name, want) in cases {
            let repo = Repo::parse(name).unwrap();
            let got = cache.source(&repo).map(|s| (s.upstream.endpoint.base().to_owned(), s.repository));
            assert_eq!(got, want.map(|(b, r)| (b.to_owned(), r.to_owned())), "{name}");
        }
        let everything = with_prefixes(&[""], false);
        let got = everything.source(&Repo::parse("library/alpine").unwrap()).map(|s| s.repository);
        assert_eq!(got.as_deref(), Some("library/alpine"));
    }

    #[test]
    fn pushes_to_a_cached_prefix_are_refused_unless_allowed() {
        let (cached, local) = (Repo::parse("hub/app").unwrap(), Repo::parse("mine/app").unwrap());
        let refusing = with_prefixes(&["hub/"], false);
        let err = refusing.check_push(&cached).unwrap_err();
        assert_eq!(err.code, ErrorCode::Unsupported);
        assert!(err.message().contains("proxy.allow_push"), "{}", err.message());
        assert!(refusing.check_push(&local).is_ok());
        assert!(with_prefixes(&["hub/"], true).check_push(&cached).is_ok());
    }

    #[test]
    fn upstream_failures_answer_404_503_or_502() {
        let cases = [
            (ErrorKind::NotFound, 404),
            (ErrorKind::Unavailable, 503),
            (ErrorKind::RateLimited, 503),
            (ErrorKind::Unauthorized, 502),
            (ErrorKind::Integrity, 502),
        ];
        for (kind, status) in cases {
            let err = upstream_error(&Error::new(kind, "r.test: no"), ErrorCode::ManifestUnknown, "app:v1");
            assert_eq!(err.status.as_u16(), status, "{kind:?}");
        }
    }
}
