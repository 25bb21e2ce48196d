//! The registry's configuration: a YAML file, overridable by `ferry serve` flags.
//!
//! Every field has a default that fits a laptop, so an empty file (or none) serves
//! `./ferry-data` on `127.0.0.1:5000` with deletes on and no auth.
//!
//! ```yaml
//! addr: 127.0.0.1:5000
//! storage: { driver: filesystem, root: ./ferry-data }
//! read_only: false
//! delete: true
//! cors: { origins: ["http://localhost:8080"], allow_credentials: true }
//! auth:
//!   htpasswd: ./htpasswd
//!   anonymous_pull: false
//!   token: { enabled: true, service: ferry, ttl_secs: 300 }
//!   access:                        # who may do what where (see AccessConfig)
//!     groups: { team-a: [alice] }
//!     repositories: { "team-a/**": { policies: [{ groups: [team-a], actions: [pull, push] }] } }
//! limits: { max_manifest_bytes: 4194304, max_blob_bytes: 0 }
//! http:
//!   header_read_timeout_secs: 30   # first byte of a request head to its end
//!   idle_timeout_secs: 120         # a connection with no request in flight
//!   body_timeout_secs: 60          # a request or response body that makes no progress
//!   max_connections: 1024          # more wait to be accepted
//!   max_headers: 100
//!   max_blocking_threads: 32       # file I/O threads of `ferry serve`
//! log: { level: info, format: text }
//! ui: ./web
//! tls: { cert: ./registry.crt, key: ./registry.key, client_ca: ./clients.crt }
//! relay:                           # the job API at /jobs (needs auth.htpasswd)
//!   enabled: true
//!   allow: [ghcr.io, "*.corp.example", "127.0.0.1:5001"]
//!   max_jobs: 4                    # jobs running at once; more get 429
//!   max_job_secs: 3600             # a job running longer is stopped
//!   keep_finished_secs: 600        # how long a finished job's events can be read again
//! proxy:                           # a pull-through cache (see ProxyConfig)
//!   upstreams:
//!     - { prefix: docker.io/, url: https://registry-1.docker.io, tag_ttl_secs: 300 }
//!     - { prefix: ghcr.io/, url: https://ghcr.io, username: u, password: p }
//!   allow_push: false
//! metrics_addr: 127.0.0.1:5001   # Prometheus /metrics on a port of its own
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub mod distribution;

/// The 4 MiB manifest limit the spec's clients expect registries to accept.
pub const DEFAULT_MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    pub addr: String,
    /// The URL clients reach the registry at, when it differs from `http://<addr>`
    /// (behind a proxy). Used for the token realm.
    pub public_url: Option<String>,
    pub storage: StorageConfig,
    /// Refuse every write (push, delete) with 405 `UNSUPPORTED`.
    pub read_only: bool,
    /// Allow `DELETE` of manifests, tags and blobs.
    pub delete: bool,
    pub cors: CorsConfig,
    pub auth: AuthConfig,
    pub limits: Limits,
    pub http: HttpConfig,
    pub log: LogConfig,
    /// A directory of static files (ferry's web page) to serve at `/ui/`; `/` then
    /// redirects there. Unset: no page, `/v2/` only.
    pub ui: Option<PathBuf>,
    /// HTTPS: a certificate and key, and optionally CAs that client certificates must
    /// chain to. Unset: plain HTTP.
    pub tls: crate::tls::TlsConfig,
    /// The job relay at `/jobs` (`ferry serve --relay`): diffs and copies between the
    /// registries it allows, for a page whose registries send no CORS headers.
    pub relay: RelayConfig,
    /// Endpoints told of every push, pull, delete and mount ([`crate::notify`]).
    pub notifications: NotificationsConfig,
    /// Upstreams this registry is a pull-through cache of ([`crate::cache`]).
    pub proxy: ProxyConfig,
    /// Where `ferry serve` answers Prometheus's `/metrics`: an address of its own, as
    /// distribution's debug server. Unset: no metrics endpoint.
    pub metrics_addr: Option<String>,
}

/// The job relay ([`crate::relay`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayConfig {
    /// Serve `POST /jobs`, `GET /jobs/<id>/events` and `DELETE /jobs/<id>`.
    pub enabled: bool,
    /// Registries the relay may reach: `host`, `host:port`, `*.domain` (see
    /// `ferry_core::allowlist`). Loopback, private and link-local addresses only when
    /// listed exactly.
    pub allow: Vec<String>,
    /// Jobs running at once; a job beyond them gets 429.
    pub max_jobs: usize,
    /// A job running longer than this is stopped and ends with a `cancelled` line.
    pub max_job_secs: u64,
    /// How long a finished job's events stay readable.
    pub keep_finished_secs: u64,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            enabled: false,
            allow: Vec::new(),
            max_jobs: 4,
            max_job_secs: 3600,
            keep_finished_secs: 600,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: "127.0.0.1:5000".into(),
            public_url: None,
            storage: StorageConfig::default(),
            read_only: false,
            delete: true,
            cors: CorsConfig::default(),
            auth: AuthConfig::default(),
            limits: Limits::default(),
            http: HttpConfig::default(),
            log: LogConfig::default(),
            ui: None,
            tls: crate::tls::TlsConfig::default(),
            relay: RelayConfig::default(),
            notifications: NotificationsConfig::default(),
            proxy: ProxyConfig::default(),
            metrics_addr: None,
        }
    }
}

/// The pull-through cache: repositories under an upstream's prefix are fetched from it
/// on first pull, stored, and served from storage afterwards.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyConfig {
    /// The upstreams, chosen by the longest prefix that starts the repository's name.
    pub upstreams: Vec<UpstreamConfig>,
    /// Accept pushes to repositories under an upstream's prefix (they stay local). Off:
    /// such pushes are refused with 405 `UNSUPPORTED`.
    pub allow_push: bool,
}

/// One upstream registry of the cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    /// The repository-name prefix routed to this upstream, ending in `/`
    /// (`docker.io/` serves `docker.io/library/alpine` from the upstream's
    /// `library/alpine`); empty for every repository, as distribution's `remoteurl` does.
    pub prefix: String,
    /// The upstream's base URL, `https://host[:port]` (or `http://` for a plain registry).
    pub url: String,
    /// Credentials for the upstream; never logged.
    pub username: Option<String>,
    pub password: Option<String>,
    /// How long a tag's answer is trusted before one `HEAD` re-checks it upstream;
    /// 0 re-checks on every pull. Digests are never re-fetched.
    pub tag_ttl_secs: u64,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            prefix: String::new(),
            url: String::new(),
            username: None,
            password: None,
            tag_ttl_secs: 300,
        }
    }
}

impl UpstreamConfig {
    /// What is wrong with this upstream, if anything.
    fn problem(&self) -> Option<String> {
        let url = self.url.parse::<http::Uri>().ok();
        let scheme_ok =
            url.as_ref().and_then(|u| u.scheme_str()).is_some_and(|s| s == "http" || s == "https");
        if !scheme_ok || url.as_ref().and_then(|u| u.authority()).is_none() {
            return Some(format!(
                "upstream url `{}` is not an http(s) URL; write it like https://registry-1.docker.io",
                self.url
            ));
        }
        if !self.prefix.is_empty() && !self.prefix.ends_with('/') {
            return Some(format!("upstream prefix `{}` must end with `/`, like `docker.io/`", self.prefix));
        }
        if self.username.is_some() != self.password.is_some() {
            return Some(format!("upstream {}: set both username and password, or neither", self.url));
        }
        None
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `filesystem` (default), `memory`, `s3`, `gcs` or `azure`.
    pub driver: String,
    /// Root directory of the `filesystem` driver.
    pub root: PathBuf,
    /// The `s3` driver's bucket and how to reach it.
    pub s3: crate::driver::s3::S3Config,
    /// The `gcs` driver's bucket and how to reach it.
    pub gcs: crate::driver::gcs::GcsConfig,
    /// The `azure` driver's container and how to reach it.
    pub azure: crate::driver::azure::AzureConfig,
    /// Expiry of abandoned upload sessions (distribution's `maintenance.uploadpurging`),
    /// applied by `ferry serve gc`.
    pub upload_purging: UploadPurgingConfig,
    /// Garbage collection inside `ferry serve`, while it serves.
    pub gc: GcConfig,
    /// Seconds `/healthz` waits for the driver's health check before answering 503.
    pub health_timeout_secs: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            driver: "filesystem".into(),
            root: PathBuf::from("./ferry-data"),
            s3: Default::default(),
            gcs: Default::default(),
            azure: Default::default(),
            upload_purging: UploadPurgingConfig::default(),
            gc: GcConfig::default(),
            health_timeout_secs: 5,
        }
    }
}

/// Upload sessions older than `age_secs` are abandoned: `ferry serve gc` removes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UploadPurgingConfig {
    pub enabled: bool,
    /// Seconds since the session started (distribution's default: 168h).
    pub age_secs: u64,
}

impl Default for UploadPurgingConfig {
    fn default() -> Self {
        UploadPurgingConfig { enabled: true, age_secs: 168 * 3600 }
    }
}

/// Online garbage collection (zot's `gc`, `gcInterval`, `gcDelay`; distribution collects
/// offline only): every `interval_secs` the registry runs the collection of `ferry serve
/// gc` over its own storage, and expires upload sessions as `upload_purging` says. Safe
/// beside pushes to this and other replicas: the store is listed again before anything
/// is deleted, and blobs younger than `grace_secs` stay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GcConfig {
    pub enabled: bool,
    /// Seconds between the end of one collection and the start of the next.
    pub interval_secs: u64,
    /// Unreferenced blobs written less than this many seconds ago stay: a push may be
    /// about to reference them (zot's `gcDelay`, 1h).
    pub grace_secs: u64,
    /// Untagged manifests (not an index child or a live manifest's referrer) are garbage
    /// too, as `ferry serve gc --delete-untagged`.
    pub delete_untagged: bool,
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig { enabled: false, interval_secs: 24 * 3600, grace_secs: 3600, delete_untagged: false }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins allowed to call the registry from a browser, exactly as the browser sends
    /// them (`http://localhost:8080`), or `*` for any origin without credentials.
    pub origins: Vec<String>,
    /// Let browsers send credentials (cookies, `Authorization`). The matching origin is
    /// then echoed, with `Vary: Origin`, never `*`.
    pub allow_credentials: bool,
    /// How long a browser may cache a preflight answer, in seconds (default 600).
    pub max_age_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// An htpasswd file with bcrypt entries (`user:$2y$...`). Setting it turns auth on.
    pub htpasswd: Option<PathBuf>,
    /// Realm of the Basic challenge.
    pub realm: String,
    /// Let anyone pull (GET/HEAD) without credentials; pushes still need them.
    pub anonymous_pull: bool,
    pub token: TokenConfig,
    /// Who may pull, push and delete where. Unset: every htpasswd user may do
    /// everything, and anonymous clients may pull when `anonymous_pull` is set.
    pub access: Option<AccessConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            htpasswd: None,
            realm: "ferry".into(),
            anonymous_pull: false,
            token: TokenConfig::default(),
            access: None,
        }
    }
}

impl AuthConfig {
    pub fn enabled(&self) -> bool {
        self.htpasswd.is_some()
    }
}

/// An access policy, after zot's `accessControl`: groups of htpasswd users, repository
/// patterns with the actions each user, group, logged-in user or anonymous client may
/// take there, and admins who may do everything.
///
/// ```yaml
/// access:
///   groups: { team-a: [alice, bob], ops: [root] }
///   admins: { groups: [ops] }
///   repositories:
///     "team-a/**":
///       policies: [{ groups: [team-a], actions: [pull, push, delete] }]
///     "library/*":
///       policies: [{ users: [bob], actions: [pull, push] }]
///       default: [pull]      # any logged-in user
///       anonymous: [pull]    # no credentials
/// ```
///
/// In a pattern `*` matches within one path segment and `**` across segments. Where
/// several patterns match a repository, the longest decides; where none does, only admins
/// may act.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccessConfig {
    /// Group name -> its users (names from the htpasswd file).
    pub groups: std::collections::BTreeMap<String, Vec<String>>,
    /// Users and groups that may do everything everywhere.
    pub admins: Principals,
    /// Repository pattern -> who may do what in the repositories it matches.
    pub repositories: std::collections::BTreeMap<String, RepositoryPolicy>,
}

/// Users and groups, by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Principals {
    pub users: Vec<String>,
    pub groups: Vec<String>,
}

/// Who may do what in the repositories of one pattern.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RepositoryPolicy {
    /// Actions granted to named users and groups.
    pub policies: Vec<AccessRule>,
    /// Actions of every logged-in user.
    pub default: Vec<Verb>,
    /// Actions of clients without credentials.
    pub anonymous: Vec<Verb>,
}

/// Actions granted to some users and groups.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccessRule {
    pub users: Vec<String>,
    pub groups: Vec<String>,
    pub actions: Vec<Verb>,
}

/// A repository action, as in distribution's token scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verb {
    Pull,
    Push,
    Delete,
}

impl Verb {
    pub const ALL: [Verb; 3] = [Verb::Pull, Verb::Push, Verb::Delete];

    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Pull => "pull",
            Verb::Push => "push",
            Verb::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<Verb> {
        Verb::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenConfig {
    /// Serve the Docker token flow: 401 challenges say `Bearer`, and `GET /token`
    /// trades Basic credentials for a signed, scoped, expiring token.
    pub enabled: bool,
    /// The `service` named in challenges and tokens.
    pub service: String,
    /// HMAC-SHA256 signing key; generated at start when empty (tokens then do not
    /// survive a restart, and replicas do not accept each other's: give them one key).
    pub key: Option<String>,
    /// Token lifetime in seconds.
    pub ttl_secs: u64,
    /// Lifetime of the refresh tokens that `POST /token` hands out with
    /// `access_type=offline`, in seconds.
    pub refresh_ttl_secs: u64,
    /// Also accept Basic credentials on `/v2/` (not only at `/token`). Off by default: in
    /// token mode the API takes scoped, expiring Bearer tokens, and a password sent with
    /// every request is what the token flow exists to avoid.
    pub allow_basic: bool,
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            enabled: false,
            service: "ferry".into(),
            key: None,
            ttl_secs: 300,
            refresh_ttl_secs: 24 * 3600,
            allow_basic: false,
        }
    }
}

/// Where events go, after distribution's `notifications`.
///
/// ```yaml
/// notifications:
///   endpoints:
///     - name: ci
///       url: http://ci.example/registry-events
///       headers: { Authorization: [Bearer abc] }
///       timeout_secs: 1
///       retries: 3         # after the first attempt
///       backoff_secs: 1    # the first retry's backoff ceiling; doubles, full jitter
///       queue: 1024        # events waiting; more are dropped (and counted)
///       ignore: { media_types: [application/octet-stream], actions: [pull] }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationsConfig {
    pub endpoints: Vec<EndpointConfig>,
}

/// One notification endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EndpointConfig {
    /// Names the endpoint in logs.
    pub name: String,
    pub url: String,
    /// Sent with every POST (an `Authorization` for the endpoint, say); never logged.
    pub headers: std::collections::BTreeMap<String, Vec<String>>,
    pub timeout_secs: f64,
    pub retries: u32,
    pub backoff_secs: f64,
    pub queue: usize,
    pub ignore: IgnoreConfig,
    pub disabled: bool,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            name: String::new(),
            url: String::new(),
            headers: Default::default(),
            timeout_secs: 1.0,
            retries: 3,
            backoff_secs: 1.0,
            queue: 1024,
            ignore: IgnoreConfig::default(),
            disabled: false,
        }
    }
}

/// Events an endpoint does not want.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IgnoreConfig {
    pub media_types: Vec<String>,
    pub actions: Vec<String>,
}

impl EndpointConfig {
    /// A problem with this endpoint's keys, if any.
    fn problem(&self) -> Option<String> {
        let name = &self.name;
        if name.is_empty() {
            return Some("every endpoint needs a `name`".into());
        }
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Some(format!("endpoint {name:?}: `url` must be an http:// or https:// URL"));
        }
        if !self.timeout_secs.is_finite() || self.timeout_secs <= 0.0 || self.timeout_secs > 3600.0 {
            return Some(format!("endpoint {name:?}: `timeout_secs` must be above 0 (seconds)"));
        }
        if !self.backoff_secs.is_finite() || !(0.0..=3600.0).contains(&self.backoff_secs) {
            return Some(format!("endpoint {name:?}: `backoff_secs` must be 0 or more (seconds)"));
        }
        if self.queue == 0 {
            return Some(format!("endpoint {name:?}: `queue` must be at least 1"));
        }
        for (header, values) in &self.headers {
            let valid = http::HeaderName::from_bytes(header.as_bytes()).is_ok()
                && values.iter().all(|v| http::HeaderValue::from_str(v).is_ok());
            if !valid {
                return Some(format!("endpoint {name:?}: header {header:?} is not a valid HTTP header"));
            }
        }
        for action in &self.ignore.actions {
            if !["push", "pull", "delete", "mount"].contains(&action.as_str()) {
                return Some(format!(
                    "endpoint {name:?}: ignore.actions has {action:?}; use push, pull, delete or mount"
                ));
            }
        }
        None
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest manifest accepted, in bytes (default 4 MiB); larger ones get 413.
    pub max_manifest_bytes: u64,
    /// Largest blob accepted, in bytes; 0 means no limit.
    pub max_blob_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_manifest_bytes: DEFAULT_MAX_MANIFEST_BYTES, max_blob_bytes: 0 }
    }
}

/// How connections are served: timeouts, caps and per-connection buffers. Timeouts are
/// seconds (fractions allowed); 0 turns one off. After Go's `http.Server`, which
/// distribution runs on: `ReadHeaderTimeout`, `IdleTimeout`, and a body timeout that
/// measures progress rather than the whole transfer, so a slow but steady upload of any
/// size succeeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// From the first byte of a request head to its end.
    pub header_read_timeout_secs: f64,
    /// How long a connection may wait with no request in flight (a fresh connection that
    /// sends nothing, or keep-alive between requests).
    pub idle_timeout_secs: f64,
    /// How long a request body may send nothing while the registry reads it, and how long
    /// an answer may wait for the client to read it.
    pub body_timeout_secs: f64,
    /// Connections served at once; more wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// Headers a request may have; more get 431.
    pub max_headers: usize,
    /// Read buffer of a connection, in bytes (at least 8192). With the filesystem
    /// driver's 32 KiB write buffer and 32 KiB blob reads, this is most of what a
    /// transfer holds: 200 at once stay under 50 MiB.
    pub max_buf_bytes: usize,
    /// Threads `ferry serve` keeps for file I/O (tokio's blocking pool; its default is 512).
    pub max_blocking_threads: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            header_read_timeout_secs: 30.0,
            idle_timeout_secs: 120.0,
            body_timeout_secs: 60.0,
            max_connections: 1024,
            max_headers: 100,
            max_buf_bytes: 32 * 1024,
            max_blocking_threads: 32,
        }
    }
}

impl HttpConfig {
    /// A timeout in seconds as a duration; `None` when 0 (off).
    pub fn duration(secs: f64) -> Option<std::time::Duration> {
        (secs > 0.0).then(|| std::time::Duration::from_secs_f64(secs))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { level: "info".into(), format: LogFormat::Text }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {source}")]
    Parse { path: PathBuf, source: serde_norway::Error },
    #[error("config key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
    #[error("config file {path} (distribution's format):\n  {}", lines.join("\n  "))]
    Unsupported { path: PathBuf, lines: Vec<String> },
}

/// A configuration read from a file, with the lines about keys it ignored.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    /// One line per key of distribution's format that ferry ignores.
    pub warnings: Vec<String>,
}

impl Config {
    /// Reads a YAML file; missing keys take their defaults.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        Ok(Config::load(path)?.config)
    }

    /// Reads a YAML file in ferry's format or in distribution's ([`distribution`], told
    /// apart by its `version` key), with the warnings about what was ignored.
    pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let parse = |source| ConfigError::Parse { path: path.into(), source };
        if !text.trim().is_empty() {
            let document: serde_norway::Value = serde_norway::from_str(&text).map_err(parse)?;
            if distribution::is_distribution(&document) {
                let t = distribution::translate(&document);
                if !t.errors.is_empty() {
                    return Err(ConfigError::Unsupported { path: path.into(), lines: t.errors });
                }
                return Ok(Loaded { config: t.config, warnings: t.warnings });
            }
        }
        Ok(Loaded { config: Config::from_yaml(&text).map_err(parse)?, warnings: Vec::new() })
    }

    /// The configuration as YAML, in the file format [`Config::from_file`] reads.
    pub fn to_yaml(&self) -> Result<String, serde_norway::Error> {
        serde_norway::to_string(self)
    }

    pub fn from_yaml(text: &str) -> Result<Config, serde_norway::Error> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        serde_norway::from_str(text)
    }

    /// Checks what types cannot: combinations and value ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| Err(ConfigError::Invalid { key, message: message.into() });
        if self.addr.parse::<std::net::SocketAddr>().is_err() {
            return invalid("addr", "expected host:port with an IP address, like 127.0.0.1:5000");
        }
        if self.metrics_addr.as_deref().is_some_and(|a| a.parse::<std::net::SocketAddr>().is_err()) {
            return invalid("metrics_addr", "expected host:port with an IP address, like 127.0.0.1:5001");
        }
        if !crate::driver::DRIVERS.iter().any(|d| d.name == self.storage.driver) {
            return invalid("storage.driver", "expected `filesystem`, `memory`, `s3`, `gcs` or `azure`");
        }
        let problem = match self.storage.driver.as_str() {
            "s3" => self.storage.s3.problem(),
            "gcs" => self.storage.gcs.problem(),
            "azure" => self.storage.azure.problem(),
            _ => None,
        };
        if let Some((key, message)) = problem {
            return Err(ConfigError::Invalid { key, message });
        }
        if self.cors.allow_credentials && self.cors.origins.iter().any(|o| o == "*") {
            return invalid(
                "cors.origins",
                "`*` cannot be combined with allow_credentials; list the exact origins instead",
            );
        }
        if self.auth.token.enabled && self.auth.htpasswd.is_none() {
            return invalid(
                "auth.token.enabled",
                "the token endpoint needs auth.htpasswd to check credentials",
            );
        }
        if self.auth.access.is_some() && self.auth.htpasswd.is_none() {
            return invalid("auth.access", "an access policy needs auth.htpasswd to know its users");
        }
        if self.auth.access.is_some() && self.auth.anonymous_pull {
            return invalid(
                "auth.anonymous_pull",
                "with auth.access, say what anonymous clients may pull per pattern \
                 (`anonymous: [pull]`) instead",
            );
        }
        if let Some(access) = &self.auth.access {
            if let Some(message) = crate::access::policy::problem(access) {
                return Err(ConfigError::Invalid { key: "auth.access", message });
            }
        }
        if self.storage.gc.enabled && self.storage.gc.interval_secs == 0 {
            return invalid("storage.gc.interval_secs", "must be at least 1 when storage.gc.enabled is true");
        }
        if self.storage.gc.enabled && self.storage.driver == "memory" {
            return invalid(
                "storage.gc.enabled",
                "the memory driver's blobs live as long as the process; collect a filesystem root instead",
            );
        }
        if self.auth.token.ttl_secs == 0 {
            return invalid("auth.token.ttl_secs", "must be at least 1");
        }
        for (key, secs) in [
            ("http.header_read_timeout_secs", self.http.header_read_timeout_secs),
            ("http.idle_timeout_secs", self.http.idle_timeout_secs),
            ("http.body_timeout_secs", self.http.body_timeout_secs),
        ] {
            if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
                return invalid(key, "expected seconds, 0 or more (0 turns the timeout off)");
            }
        }
        if self.http.max_connections == 0 {
            return invalid("http.max_connections", "must be at least 1");
        }
        if self.http.max_headers == 0 {
            return invalid("http.max_headers", "must be at least 1");
        }
        if self.http.max_buf_bytes < 8192 {
            return invalid("http.max_buf_bytes", "must be at least 8192");
        }
        if self.http.max_blocking_threads == 0 {
            return invalid("http.max_blocking_threads", "must be at least 1");
        }
        if self.auth.token.refresh_ttl_secs == 0 {
            return invalid("auth.token.refresh_ttl_secs", "must be at least 1");
        }
        if self.limits.max_manifest_bytes == 0 {
            return invalid("limits.max_manifest_bytes", "must be at least 1");
        }
        if let Some(message) = self.notifications.endpoints.iter().find_map(EndpointConfig::problem) {
            return Err(ConfigError::Invalid { key: "notifications.endpoints", message });
        }
        if let Some(message) = self.proxy.upstreams.iter().find_map(UpstreamConfig::problem) {
            return Err(ConfigError::Invalid { key: "proxy.upstreams", message });
        }
        let mut prefixes: Vec<&str> = self.proxy.upstreams.iter().map(|u| u.prefix.as_str()).collect();
        prefixes.sort_unstable();
        if let Some(twice) = prefixes.windows(2).find(|w| w[0] == w[1]) {
            let message = format!("prefix `{}` is routed to two upstreams; keep one", twice[0]);
            return Err(ConfigError::Invalid { key: "proxy.upstreams", message });
        }
        if let Some((key, message)) = self.tls.problem() {
            return invalid(key, message);
        }
        if self.relay.enabled {
            if self.auth.htpasswd.is_none() {
                return invalid(
                    "relay.enabled",
                    "the relay runs jobs only for its own users: set auth.htpasswd (--htpasswd)",
                );
            }
            if self.relay.allow.is_empty() {
                return invalid(
                    "relay.allow",
                    "list the registries the relay may reach (--relay-allow HOST)",
                );
            }
            if let Err(e) = ferry_core::allowlist::Allowlist::parse(&self.relay.allow) {
                return Err(ConfigError::Invalid { key: "relay.allow", message: e.to_string() });
            }
            if self.relay.max_jobs == 0 {
                return invalid("relay.max_jobs", "must be at least 1");
            }
            if self.relay.max_job_secs == 0 {
                return invalid("relay.max_job_secs", "must be at least 1");
            }
        }
        if !["error", "warn", "info", "debug", "trace"].contains(&self.log.level.as_str()) {
            return invalid("log.level", "expected error, warn, info, debug or trace");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_laptop_default() {
        let c = Config::from_yaml("").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.addr, "127.0.0.1:5000");
        assert_eq!(c.storage.root, PathBuf::from("./ferry-data"));
        c.validate().unwrap();
    }

    #[test]
    fn partial_file_keeps_other_defaults() {
        let c = Config::from_yaml("storage: {driver: memory}\ncors: {origins: ['http://x']}\n").unwrap();
        assert_eq!(c.storage.driver, "memory");
        assert_eq!(c.storage.root, PathBuf::from("./ferry-data"));
        assert_eq!(c.cors.origins, vec!["http://x".to_string()]);
        assert!(c.delete);
    }

    #[test]
    fn validation_table() {
        let cases: Vec<(&str, Option<&str>)> = vec![
            ("addr: nowhere", Some("addr")),
            ("storage: {driver: swift}", Some("storage.driver")),
            ("storage: {driver: s3}", Some("storage.s3.bucket")),
            ("storage: {driver: s3, s3: {bucket: registry, chunk_size: 1}}", Some("storage.s3.chunk_size")),
            ("storage: {driver: s3, s3: {bucket: b}}", Some("storage.s3.bucket")),
            ("storage: {driver: s3, s3: {bucket: registry}}", None),
            ("storage: {gc: {enabled: true, interval_secs: 0}}", Some("storage.gc.interval_secs")),
            ("storage: {driver: memory, gc: {enabled: true}}", Some("storage.gc.enabled")),
            ("storage: {gc: {enabled: true, interval_secs: 60, grace_secs: 0}}", None),
            ("cors: {origins: ['*'], allow_credentials: true}", Some("cors.origins")),
            ("auth: {token: {enabled: true}}", Some("auth.token.enabled")),
            ("log: {level: loud}", Some("log.level")),
            ("limits: {max_manifest_bytes: 0}", Some("limits.max_manifest_bytes")),
            ("http: {idle_timeout_secs: -1}", Some("http.idle_timeout_secs")),
            ("http: {max_connections: 0}", Some("http.max_connections")),
            ("http: {max_buf_bytes: 100}", Some("http.max_buf_bytes")),
            ("http: {header_read_timeout_secs: 0.5, body_timeout_secs: 0}", None),
            ("auth: {htpasswd: /x, token: {enabled: true}}", None),
            ("tls: {cert: /c}", Some("tls.key")),
            ("tls: {key: /k}", Some("tls.cert")),
            ("tls: {client_ca: /ca}", Some("tls.client_ca")),
            ("tls: {cert: /c, key: /k, client_ca: /ca}", None),
            ("relay: {enabled: true, allow: [ghcr.io]}", Some("relay.enabled")),
            ("auth: {htpasswd: /x}\nrelay: {enabled: true}", Some("relay.allow")),
            ("auth: {htpasswd: /x}\nrelay: {enabled: true, allow: ['http://ghcr.io']}", Some("relay.allow")),
            (
                "auth: {htpasswd: /x}\nrelay: {enabled: true, allow: [a.example], max_jobs: 0}",
                Some("relay.max_jobs"),
            ),
            (
                "auth: {htpasswd: /x}\nrelay: {enabled: true, allow: [a.example], max_job_secs: 0}",
                Some("relay.max_job_secs"),
            ),
            (
                "auth: {htpasswd: /x}\nrelay: {enabled: true, allow: ['*.corp.example', '127.0.0.1:5000']}",
                None,
            ),
            ("relay: {allow: ['http://ignored-while-off']}", None),
            ("proxy: {upstreams: [{url: 'https://r.test'}]}", None),
            (
                "proxy: {upstreams: [{prefix: a/, url: 'http://127.0.0.1:5000', username: u, password: p}]}",
                None,
            ),
            ("proxy: {upstreams: [{url: 'r.test'}]}", Some("proxy.upstreams")),
            ("proxy: {upstreams: [{url: 'ftp://r.test'}]}", Some("proxy.upstreams")),
            ("proxy: {upstreams: [{prefix: a, url: 'https://r.test'}]}", Some("proxy.upstreams")),
            ("proxy: {upstreams: [{url: 'https://r.test', username: u}]}", Some("proxy.upstreams")),
            (
                "proxy: {upstreams: [{url: 'https://a.test'}, {url: 'https://b.test'}]}",
                Some("proxy.upstreams"),
            ),
        ];
        for (yaml, key) in cases {
            let got = Config::from_yaml(yaml).unwrap().validate();
            match key {
                None => got.unwrap(),
                Some(key) => {
                    let err = got.unwrap_err();
                    assert!(matches!(err, ConfigError::Invalid { key: k, .. } if k == key), "{yaml}: {err}")
                }
            }
        }
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = Config::from_yaml("adress: 1.2.3.4:5").unwrap_err().to_string();
        assert!(err.contains("adress"), "{err}");
    }
}
