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
//! metrics_addr: 127.0.0.1:5001   # Prometheus /metrics on a port of its own
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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
    /// Where `ferry serve` answers Prometheus's `/metrics`: an address of its own, as
    /// distribution's debug server. Unset: no metrics endpoint.
    pub metrics_addr: Option<String>,
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
            metrics_addr: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `filesystem` (default) or `memory`.
    pub driver: String,
    /// Root directory of the `filesystem` driver.
    pub root: PathBuf,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig { driver: "filesystem".into(), root: PathBuf::from("./ferry-data") }
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
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            htpasswd: None,
            realm: "ferry".into(),
            anonymous_pull: false,
            token: TokenConfig::default(),
        }
    }
}

impl AuthConfig {
    pub fn enabled(&self) -> bool {
        self.htpasswd.is_some()
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
    /// survive a restart).
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
}

impl Config {
    /// Reads a YAML file; missing keys take their defaults.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.into(), source })?;
        Config::from_yaml(&text).map_err(|source| ConfigError::Parse { path: path.into(), source })
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
            return invalid("storage.driver", "expected `filesystem` or `memory`");
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
        if let Some((key, message)) = self.tls.problem() {
            return invalid(key, message);
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
            ("storage: {driver: s3}", Some("storage.driver")),
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
