//! How a [`NativeTransport`](crate::NativeTransport) talks to registries.

use std::collections::BTreeSet;
use std::time::Duration;

use ferry_core::allowlist::Allowlist;

use crate::tls::TlsOptions;

const MIB: u64 = 1024 * 1024;

/// Blobs of at least this size go up as chunked `PATCH` uploads.
///
/// A streamed monolithic `PUT` is one request and one round trip, the fastest way up. It
/// cannot resume, though, and some fronts cap request bodies (Cloudflare's plans at
/// 100 MB, many nginx setups lower). 64 MiB keeps most layers on the fast path, stays
/// under those caps, and sends the big layers, where a resume saves the most, in chunks.
pub const DEFAULT_CHUNK_THRESHOLD: u64 = 64 * MIB;

/// The size of one `PATCH`. A chunk streams from the source as it is sent (it is never
/// held in memory), so this only sets how many requests a big blob takes and how much a
/// failed chunk may have to re-send. It is above S3's 5 MiB multipart minimum, which
/// registries backed by object storage inherit.
pub const DEFAULT_CHUNK_SIZE: usize = 16 * MIB as usize;

/// The largest answer [`Transport::send`](ferry_core::transport::Transport::send) reads:
/// manifests, tag lists and tokens are far smaller.
pub const DEFAULT_MAX_ANSWER_BYTES: usize = 8 * MIB as usize;

/// A registry's `OCI-Chunk-Min-Length` is honoured up to this size; beyond it the
/// memory bound wins and the registry may refuse the chunks.
pub(crate) const MAX_HONOURED_MIN_CHUNK: u64 = 128 * MIB;

/// Cancelling a session is a courtesy; it does not get to hold up the error it follows.
pub(crate) const CANCEL_WAIT: Duration = Duration::from_secs(10);

/// Options of a [`NativeTransport`](crate::NativeTransport). Start from
/// [`NativeOptions::default`] and adjust with the `with_*` methods.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NativeOptions {
    /// Time allowed to open a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Longest silence from a peer: waiting for an answer's head, between two pieces of a
    /// body, or while a registry accepts none of an upload body.
    pub read_timeout: Duration,
    /// Time a registry may take to answer once a whole upload body has been sent (it may
    /// be moving the blob into object storage).
    pub commit_timeout: Duration,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
    /// Idle pooled connections kept per host.
    pub pool_max_idle_per_host: usize,
    /// Hosts (`host` or `host:port`) whose invalid TLS certificates are accepted. For an
    /// `http://` URL of such a host (or of a loopback host) the core's scheme decision
    /// applies: HTTPS when the endpoint speaks TLS, plain HTTP only when it does not.
    pub insecure_hosts: BTreeSet<String>,
    /// Roots, per-registry CAs and client certificates.
    pub tls: TlsOptions,
    /// The `User-Agent` header, `ferry/<version>` by default.
    pub user_agent: String,
    /// Blobs of at least this many bytes are uploaded in chunks.
    pub chunk_threshold: u64,
    /// Bytes per chunk of a chunked upload.
    pub chunk_size: usize,
    /// The largest answer body `send` accepts.
    pub max_answer_bytes: usize,
    /// Redirects followed for a `GET` or `HEAD`.
    pub max_redirects: usize,
    /// When set, only these hosts are opened and only the addresses it allows are dialled
    /// (a relay's transport); `None` reaches any host.
    pub allowlist: Option<Allowlist>,
}

impl Default for NativeOptions {
    fn default() -> Self {
        NativeOptions {
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
            commit_timeout: Duration::from_secs(600),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 8,
            insecure_hosts: BTreeSet::new(),
            tls: TlsOptions::default(),
            user_agent: concat!("ferry/", env!("CARGO_PKG_VERSION")).to_owned(),
            chunk_threshold: DEFAULT_CHUNK_THRESHOLD,
            chunk_size: DEFAULT_CHUNK_SIZE,
            max_answer_bytes: DEFAULT_MAX_ANSWER_BYTES,
            max_redirects: 5,
            allowlist: None,
        }
    }
}

impl NativeOptions {
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    pub fn with_read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    pub fn with_commit_timeout(mut self, timeout: Duration) -> Self {
        self.commit_timeout = timeout;
        self
    }

    pub fn with_pool(mut self, idle_timeout: Duration, max_idle_per_host: usize) -> Self {
        self.pool_idle_timeout = idle_timeout;
        self.pool_max_idle_per_host = max_idle_per_host;
        self
    }

    /// Accepts invalid TLS certificates from `host` (`host` or `host:port`).
    pub fn with_insecure_host(mut self, host: impl Into<String>) -> Self {
        self.insecure_hosts.insert(host.into().to_ascii_lowercase());
        self
    }

    /// Reaches only the hosts `allowlist` lists (see [`ferry_core::allowlist`]).
    pub fn with_allowlist(mut self, allowlist: Allowlist) -> Self {
        self.allowlist = Some(allowlist);
        self
    }

    pub fn with_tls(mut self, tls: TlsOptions) -> Self {
        self.tls = tls;
        self
    }

    pub fn with_user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    pub fn with_chunking(mut self, threshold: u64, chunk_size: usize) -> Self {
        self.chunk_threshold = threshold;
        self.chunk_size = chunk_size;
        self
    }

    pub fn with_max_answer_bytes(mut self, limit: usize) -> Self {
        self.max_answer_bytes = limit;
        self
    }

    pub fn with_max_redirects(mut self, redirects: usize) -> Self {
        self.max_redirects = redirects;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), BuildError> {
        let invalid =
            |option: &'static str, problem: &'static str| Err(BuildError::InvalidOption { option, problem });
        if self.chunk_size == 0 {
            return invalid("chunk_size", "must be at least 1 byte");
        }
        if self.read_timeout.is_zero() || self.connect_timeout.is_zero() || self.commit_timeout.is_zero() {
            return invalid("timeouts", "must be longer than zero");
        }
        if http::HeaderValue::from_str(&self.user_agent).is_err() {
            return invalid("user_agent", "must be visible ASCII");
        }
        Ok(())
    }
}

/// Why a [`NativeTransport`](crate::NativeTransport) could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    #[error("transport option `{option}` {problem}")]
    InvalidOption { option: &'static str, problem: &'static str },
    /// The TLS stack or the connection pool could not be set up.
    #[error("could not set up the HTTP client: {0}")]
    Client(String),
    /// A CA or client certificate file that was named could not be used.
    #[error("TLS setup: {0}")]
    Tls(String),
}
