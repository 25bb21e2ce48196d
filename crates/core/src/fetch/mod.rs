//! One manifest, one tag's digest, or one blob's source, fetched on demand from an
//! upstream registry: the machine under `ferry serve`'s pull-through cache.
//!
//! A [`Fetch`] runs one [`Want`] through the same session as a sync (the token dance,
//! credentials, retries on the seeded backoff, `Retry-After`) and ends with a
//! [`Fetched`] or an [`Error`] whose kind says what the cache answers its client:
//! - a manifest comes back whole, its bytes exactly as the upstream sent them, verified
//!   against the digest it was asked by, or (by tag) against the upstream's
//!   `Docker-Content-Digest`;
//! - a tag is re-checked with one `HEAD`, which gives its digest without its bytes;
//! - a blob is never read by the machine: it `HEAD`s the blob (authorising, and learning
//!   its size), then hands back the authorised `GET` for the driver to stream through the
//!   core's [`Verifier`](crate::digest::Verifier).
//!
//! Drive it like every machine: drain [`Machine::poll_action`](crate::machine::Machine),
//! feed completions, wait for [`poll_timeout`](crate::machine::Machine::poll_timeout),
//! until it is finished; then take [`Fetch::result`].

use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, StatusCode};

use crate::api::{manifest_request, request, Endpoint};
use crate::auth::{CredentialStore, Scope};
use crate::copy::{content_digest, refused};
use crate::digest::Digest;
use crate::error::{Error, ErrorKind};
use crate::machine::SessionMachine;
use crate::manifest::RawManifest;
use crate::retry::RetryPolicy;
use crate::session::{AuthNeed, Call, Learned, Outcome, Session};
use crate::time::{Instant, UnixTime, WallClock};

#[cfg(test)]
mod tests;

/// What to fetch from the upstream's `repository`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// The manifest a tag or digest names, with its bytes.
    Manifest(String),
    /// What a tag points at now: one `HEAD`, no bytes.
    TagDigest(String),
    /// Where to stream a blob from.
    Blob(Digest),
}

/// What a [`Fetch`] got.
#[derive(Debug, Clone)]
pub enum Fetched {
    /// A manifest's exact bytes, media type and digest, verified.
    Manifest {
        /// The bytes as the upstream sent them.
        bytes: Vec<u8>,
        /// Its media type, from `Content-Type` or the document.
        media_type: String,
        /// The digest of `bytes`, equal to the one asked for or announced.
        digest: Digest,
    },
    /// The digest a tag points at upstream.
    TagDigest(Digest),
    /// The authorised `GET` of a blob, and its size from the upstream's `HEAD`. The
    /// driver streams it through a `Verifier` for the digest and this size.
    BlobSource {
        /// The `GET`, authorisation included. `Authorization` must not follow a
        /// redirect to another host.
        get: Request<()>,
        /// The blob's size.
        size: u64,
    },
}

/// Where and as whom to fetch.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// The upstream's base URL, e.g. `https://registry-1.docker.io`.
    pub endpoint: Endpoint,
    /// Credentials, looked up by the upstream's host and the repository.
    pub credentials: CredentialStore,
    /// How transient failures are retried.
    pub retry: RetryPolicy,
}

/// What fetches from one upstream learned about authorising there (its challenge, and
/// tokens until they expire on the driver's clock), so the next fetch skips the `401` and
/// the token request. Never printed: it holds credentials.
#[derive(Clone, Default)]
pub struct UpstreamAuth(Learned);

impl std::fmt::Debug for UpstreamAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UpstreamAuth(..)")
    }
}

/// The machine: one [`Want`] of one repository.
pub struct Fetch {
    session: Session<()>,
    endpoint: Endpoint,
    need: AuthNeed,
    want: Want,
    result: Option<Result<Fetched, Error>>,
}

impl Fetch {
    /// Starts fetching `want` from `repository` upstream, authorising as `auth` (what
    /// earlier fetches there learned) says; `seed` seeds the retry jitter.
    pub fn new(
        upstream: Upstream,
        auth: UpstreamAuth,
        repository: &str,
        want: Want,
        seed: u64,
        now: Instant,
        wall: UnixTime,
    ) -> Self {
        let mut session = Session::new(upstream.credentials, upstream.retry, seed, WallClock::new(now, wall));
        session.learn(auth.0);
        let registry = crate::api::host_of(upstream.endpoint.base());
        let need =
            AuthNeed { registry, repository: repository.to_owned(), scopes: vec![Scope::pull(repository)] };
        let mut fetch = Fetch { session, endpoint: upstream.endpoint, need, want, result: None };
        fetch.start(now);
        fetch
    }

    /// What this fetch knows about authorising at the upstream, for the next fetch.
    pub fn auth(&self) -> UpstreamAuth {
        UpstreamAuth(self.session.learned())
    }

    /// What came of the fetch, once [`Machine::is_finished`](crate::machine::Machine::is_finished).
    pub fn result(&mut self) -> Option<Result<Fetched, Error>> {
        self.result.take()
    }

    fn start(&mut self, now: Instant) {
        let repository = self.need.repository.clone();
        let built = match &self.want {
            Want::Manifest(reference) => {
                self.endpoint.manifest(&repository, reference).map(|uri| manifest_request(Method::GET, uri))
            }
            Want::TagDigest(tag) => {
                self.endpoint.manifest(&repository, tag).map(|uri| manifest_request(Method::HEAD, uri))
            }
            Want::Blob(digest) => {
                self.endpoint.blob(&repository, digest).map(|uri| request(Method::HEAD, uri))
            }
        };
        match built {
            Ok(request) => self.session.submit((), Call::Send { request, auth: self.need.clone() }, now),
            Err(e) => self.result = Some(Err(Error::new(ErrorKind::InvalidName, e.to_string()))),
        }
    }

    /// `repository:reference` upstream, for messages.
    fn what(&self) -> String {
        let reference = match &self.want {
            Want::Manifest(r) | Want::TagDigest(r) => r.clone(),
            Want::Blob(d) => d.to_string(),
        };
        format!("{}/{}:{reference}", self.endpoint.base(), self.need.repository)
    }

    fn answered(&mut self, response: http::Response<Vec<u8>>, now: Instant) -> Result<Fetched, Error> {
        let status = response.status();
        if !status.is_success() {
            return Err(refused(&response, self.what()));
        }
        match &self.want {
            Want::Manifest(reference) => manifest_of(response, reference, &self.what()),
            Want::TagDigest(_) => content_digest(&response).map(Fetched::TagDigest).ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidAnswer,
                    format!("{}: the upstream's HEAD has no Docker-Content-Digest", self.what()),
                )
            }),
            Want::Blob(_) if status != StatusCode::OK => Err(Error::new(
                ErrorKind::InvalidAnswer,
                format!("{}: the upstream answered HEAD with HTTP {status}, not 200", self.what()),
            )),
            Want::Blob(digest) => {
                let size = response
                    .headers()
                    .get(CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::InvalidAnswer,
                            format!("{}: the upstream's HEAD has no Content-Length", self.what()),
                        )
                    })?;
                let uri = self
                    .endpoint
                    .blob(&self.need.repository, digest)
                    .map_err(|e| Error::new(ErrorKind::InvalidName, e.to_string()))?;
                let mut get = Request::new(());
                *get.uri_mut() = uri;
                if let Some(value) = self.session.authorization_now(&self.need, now) {
                    let value = HeaderValue::from_str(&value).map_err(|_| {
                        Error::new(
                            ErrorKind::InvalidAnswer,
                            "the upstream issued an authorisation value that is not a valid HTTP header",
                        )
                    })?;
                    get.headers_mut().insert(AUTHORIZATION, value);
                }
                Ok(Fetched::BlobSource { get, size })
            }
        }
    }
}

/// A manifest answer checked: by digest, the bytes hash to it; by tag, to the upstream's
/// `Docker-Content-Digest` when it sends one.
fn manifest_of(response: http::Response<Vec<u8>>, reference: &str, what: &str) -> Result<Fetched, Error> {
    let announced = content_digest(&response);
    let content_type = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let raw = RawManifest::parse(response.into_body(), content_type.as_deref())
        .map_err(|e| Error::new(ErrorKind::InvalidAnswer, format!("{what}: {e}")))?;
    let expected = reference.parse::<Digest>().ok().or(announced);
    if let Some(expected) = expected {
        raw.verify(&expected).map_err(|e| Error::new(ErrorKind::Integrity, format!("{what}: {e}")))?;
    }
    Ok(Fetched::Manifest {
        bytes: raw.bytes().to_vec(),
        media_type: raw.media_type().to_owned(),
        digest: raw.digest().clone(),
    })
}

impl SessionMachine for Fetch {
    type Purpose = ();

    fn session(&self) -> &Session<()> {
        &self.session
    }

    fn session_mut(&mut self) -> &mut Session<()> {
        &mut self.session
    }

    fn on_outcome(&mut self, (): (), outcome: Outcome, now: Instant) {
        let result = match outcome {
            Outcome::Response(response) => self.answered(response, now),
            Outcome::Failed(failure) => Err(failure.error),
            Outcome::Transferred => Err(Error::new(ErrorKind::InvalidAnswer, "a fetch moves no blob itself")),
        };
        self.result = Some(result);
    }

    fn finished(&self) -> bool {
        self.result.is_some() && self.session.is_idle()
    }
}
