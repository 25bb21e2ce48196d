//! distribution's own config file (`/etc/docker/registry/config.yml`), read unchanged.
//!
//! A file whose top level has `version` (distribution requires `version: 0.1`) is
//! distribution's format. Every key ferry supports is mapped onto [`Config`]; every other
//! key gets one line naming it and saying what ferry does instead: a warning when ferry
//! behaves safely without it (a cache, a debug server without Prometheus, log hooks; with
//! `prometheus.enabled` its address becomes `metrics_addr`), an error when serving
//! without it would change who may do what or where the data goes (a Swift driver, an
//! external token server, a URL prefix), and for keys distribution does not know either.
//!
//! distribution's defaults where they differ from ferry's: deletes are off unless
//! `storage.delete.enabled`, and there is no default storage.

use std::path::PathBuf;

use serde_norway::{Mapping, Value};

use super::{Config, EndpointConfig, LogFormat};

/// What reading a distribution config found: the configuration, and the lines about keys
/// it could not map (`errors` refuse the file, `warnings` are printed at start).
#[derive(Debug, Default)]
pub struct Translation {
    pub config: Config,
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
}

/// Whether a parsed YAML document is distribution's format: a top-level `version`.
pub fn is_distribution(document: &Value) -> bool {
    document.as_mapping().is_some_and(|m| m.contains_key("version"))
}

/// Maps a distribution config onto ferry's.
pub fn translate(document: &Value) -> Translation {
    let mut t = Translation { config: Config { delete: false, ..Config::default() }, ..Default::default() };
    let mut storage_seen = false;
    for (key, value) in entries(document) {
        match key.as_str() {
            "version" => {
                if scalar(value).as_deref() != Some("0.1") {
                    t.errors.push(format!(
                        "config key `version`: distribution's format is version 0.1, this file says {}",
                        scalar(value).unwrap_or_default()
                    ));
                }
            }
            "log" => log(&mut t, value),
            "loglevel" => level(&mut t, "loglevel", value),
            "storage" => {
                storage_seen = true;
                storage(&mut t, value);
            }
            "http" => http(&mut t, value),
            "auth" => auth(&mut t, value),
            "health" => warn(
                &mut t,
                "health",
                "ferry checks the storage driver on every GET /healthz instead of on an interval; \
                 no file, http or tcp checks",
            ),
            "notifications" => notifications(&mut t, value),
            "proxy" => proxy(&mut t, value),
            "middleware" => error(
                &mut t,
                "middleware",
                "ferry has no registry, repository or storage middleware (such as CloudFront redirects); \
                 remove the key",
            ),
            "redis" => warn(&mut t, "redis", "ferry keeps no shared cache and needs no redis; ignored"),
            "reporting" => {
                warn(&mut t, "reporting", "ferry reports to no error service (bugsnag, newrelic); ignored")
            }
            "validation" => warn(
                &mut t,
                "validation",
                "ferry checks that a manifest's blobs exist, not its URLs; ignored",
            ),
            "compatibility" => warn(&mut t, "compatibility", "ferry never converts to schema1; ignored"),
            "catalog" => {
                warn(&mut t, "catalog", "ferry pages the catalog with `n` and `last`; maxentries ignored")
            }
            "policy" => warn(&mut t, "policy", "ferry accepts every repository class; ignored"),
            other => unknown(&mut t, other),
        }
    }
    if !storage_seen {
        t.errors.push(
            "config key `storage`: missing; add `storage: {filesystem: {rootdirectory: /var/lib/registry}}`"
                .into(),
        );
    }
    t
}

/// The entries of a mapping, keys as text; a value that is no mapping has none.
fn entries(value: &Value) -> Vec<(String, &Value)> {
    value.as_mapping().map_or_else(Vec::new, |mapping: &Mapping| {
        mapping.iter().map(|(k, v)| (scalar(k).unwrap_or_default(), v)).collect()
    })
}

/// A scalar as text: `0.1`, `true`, `5000` and `"x"` alike.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn flag(value: &Value, key: &str) -> bool {
    entries(value).into_iter().any(|(k, v)| k == key && scalar(v).as_deref() == Some("true"))
}

fn warn(t: &mut Translation, key: &str, message: &str) {
    t.warnings.push(format!("config key `{key}` is not supported: {message}"));
}

fn error(t: &mut Translation, key: &str, message: &str) {
    t.errors.push(format!("config key `{key}` is not supported: {message}"));
}

fn unknown(t: &mut Translation, key: &str) {
    t.errors.push(format!(
        "config key `{key}` is unknown to distribution's format and to ferry; remove it or fix its spelling"
    ));
}

/// `storage.maintenance.uploadpurging: {enabled, age, interval, dryrun}`: ferry applies
/// `enabled` and `age` when `ferry serve gc` runs, not on an interval.
fn upload_purging(t: &mut Translation, value: &Value) {
    for (key, value) in entries(value) {
        match key.as_str() {
            "enabled" => t.config.storage.upload_purging.enabled = scalar(value).as_deref() == Some("true"),
            "age" => match scalar(value).as_deref().and_then(go_duration) {
                Some(secs) => t.config.storage.upload_purging.age_secs = secs as u64,
                None => t.errors.push(
                    "config key `storage.maintenance.uploadpurging.age`: expected a duration like 168h"
                        .into(),
                ),
            },
            "interval" | "dryrun" => warn(
                t,
                &format!("storage.maintenance.uploadpurging.{key}"),
                "ferry purges abandoned uploads when `ferry serve gc` runs (its --dry-run deletes nothing)",
            ),
            other => unknown(t, &format!("storage.maintenance.uploadpurging.{other}")),
        }
    }
}

fn log(t: &mut Translation, value: &Value) {
    let mut access_log_off = false;
    for (key, value) in entries(value) {
        match key.as_str() {
            "level" => level(t, "log.level", value),
            "formatter" => match scalar(value).as_deref() {
                Some("text") => t.config.log.format = LogFormat::Text,
                Some("json") => t.config.log.format = LogFormat::Json,
                Some("logstash") => {
                    t.config.log.format = LogFormat::Json;
                    warn(t, "log.formatter", "ferry writes `json` lines instead of logstash's");
                }
                other => t.errors.push(format!(
                    "config key `log.formatter`: {:?} is not a formatter; use text or json",
                    other.unwrap_or_default()
                )),
            },
            "accesslog" => access_log_off = flag(value, "disabled"),
            "fields" => warn(t, "log.fields", "ferry adds no static fields to its log lines; ignored"),
            "hooks" => warn(t, "log.hooks", "ferry sends no mail on errors; ignored"),
            other => unknown(t, &format!("log.{other}")),
        }
    }
    if access_log_off && !matches!(t.config.log.level.as_str(), "error" | "warn") {
        warn(t, "log.accesslog.disabled", "ferry logs each request at info level; set log.level: warn");
    }
}

fn level(t: &mut Translation, key: &str, value: &Value) {
    match scalar(value).as_deref() {
        Some(level @ ("error" | "warn" | "info" | "debug")) => t.config.log.level = level.into(),
        Some("warning") => t.config.log.level = "warn".into(),
        Some("panic" | "fatal") => t.config.log.level = "error".into(),
        other => t.errors.push(format!(
            "config key `{key}`: {:?} is not a level; use error, warn, info or debug",
            other.unwrap_or_default()
        )),
    }
}

fn storage(t: &mut Translation, value: &Value) {
    // distribution redirects blob GETs to the object store unless `redirect.disable`.
    let mut redirect = true;
    for (key, value) in entries(value) {
        match key.as_str() {
            "filesystem" => {
                t.config.storage.driver = "filesystem".into();
                for (key, value) in entries(value) {
                    match (key.as_str(), scalar(value)) {
                        ("rootdirectory", Some(root)) => t.config.storage.root = PathBuf::from(root),
                        ("maxthreads", Some(n)) => match n.parse() {
                            Ok(n) => t.config.http.max_blocking_threads = n,
                            Err(_) => t.errors.push(format!(
                                "config key `storage.filesystem.maxthreads`: {n:?} is not a number"
                            )),
                        },
                        (other, _) => unknown(t, &format!("storage.filesystem.{other}")),
                    }
                }
            }
            "inmemory" => t.config.storage.driver = "memory".into(),
            "delete" => t.config.delete = flag(value, "enabled"),
            "maintenance" => {
                for (key, value) in entries(value) {
                    match key.as_str() {
                        "readonly" => t.config.read_only = flag(value, "enabled"),
                        "uploadpurging" => upload_purging(t, value),
                        other => unknown(t, &format!("storage.maintenance.{other}")),
                    }
                }
            }
            "cache" => warn(t, "storage.cache", "ferry keeps no blob descriptor cache; ignored"),
            "redirect" => redirect = !flag(value, "disable"),
            "tag" => warn(t, "storage.tag", "ferry lists tags without a concurrency limit; ignored"),
            "s3" => s3(t, value),
            "azure" => azure(t, value),
            "gcs" => gcs(t, value),
            driver @ ("swift" | "oss") => error(
                t,
                &format!("storage.{driver}"),
                "ferry's storage drivers are `filesystem`, `inmemory`, `s3`, `gcs` and `azure`; use one of them",
            ),
            other => unknown(t, &format!("storage.{other}")),
        }
    }
    let storage = &mut t.config.storage;
    storage.s3.redirect = redirect && storage.driver == "s3";
    storage.gcs.redirect = redirect && storage.driver == "gcs";
    storage.azure.redirect = redirect && storage.driver == "azure";
}

/// `storage.azure`: the account, its key, the container and the root map onto
/// `storage.azure`; other ways to sign come from `AZURE_*` variables.
fn azure(t: &mut Translation, value: &Value) {
    use crate::driver::Secret;
    t.config.storage.driver = "azure".into();
    let mut realm = None;
    for (key, value) in entries(value) {
        let azure = &mut t.config.storage.azure;
        match (key.as_str(), scalar(value)) {
            ("accountname", Some(v)) => azure.account = Some(v),
            ("accountkey", Some(v)) => azure.access_key = Some(Secret::new(v)).filter(|k| k != &Secret::new("")),
            ("container", Some(v)) => azure.container = v,
            ("rootdirectory", Some(v)) => azure.prefix = v.trim_matches('/').to_owned(),
            ("serviceurl", Some(v)) => azure.endpoint = Some(v).filter(|v| !v.is_empty()),
            ("realm", Some(v)) => realm = Some(v),
            ("credentials", _) => warn(
                t,
                "storage.azure.credentials",
                "ferry signs with `accountkey`, else with the AZURE_* variables (AZURE_CLIENT_ID,                  AZURE_TENANT_ID, AZURE_CLIENT_SECRET, ...); set those instead",
            ),
            ("copy_status_poll_max_retry" | "copy_status_poll_delay" | "max_retries" | "retry_delay", _) => {
                warn(t, &format!("storage.azure.{key}"), "ferry's retries are its own; ignored")
            }
            _ => unknown(t, &format!("storage.azure.{key}")),
        }
    }
    let azure = &mut t.config.storage.azure;
    // distribution builds the service URL from the account and the realm.
    if let (None, Some(account), Some(realm)) = (&azure.endpoint, &azure.account, realm) {
        azure.endpoint = Some(format!("https://{account}.blob.{realm}"));
    }
}

/// `storage.gcs`: the bucket, the key file and the root map onto `storage.gcs`.
fn gcs(t: &mut Translation, value: &Value) {
    t.config.storage.driver = "gcs".into();
    for (key, value) in entries(value) {
        let gcs = &mut t.config.storage.gcs;
        match (key.as_str(), scalar(value)) {
            ("bucket", Some(v)) => gcs.bucket = v,
            ("keyfile", Some(v)) => gcs.service_account_path = Some(v).filter(|v| !v.is_empty()),
            ("rootdirectory", Some(v)) => gcs.prefix = v.trim_matches('/').to_owned(),
            ("chunksize", Some(v)) => match v.parse() {
                Ok(n) => gcs.chunk_size = n,
                Err(_) => error(t, "storage.gcs.chunksize", "is not a number of bytes"),
            },
            ("credentials", _) => error(
                t,
                "storage.gcs.credentials",
                "ferry reads a service account key from a file: put it in one and name it with `keyfile`",
            ),
            _ => unknown(t, &format!("storage.gcs.{key}")),
        }
    }
}

/// `storage.s3`: the keys that say where the bucket is and how to sign map onto
/// `storage.s3`; tuning keys ferry has no use for are warned about.
fn s3(t: &mut Translation, value: &Value) {
    use crate::driver::Secret;
    t.config.storage.driver = "s3".into();
    let s3 = &mut t.config.storage.s3;
    // distribution addresses buckets virtual-hosted unless `forcepathstyle`, and over
    // HTTPS unless `secure: false`.
    s3.virtual_hosted_style = true;
    let mut secure = true;
    let mut problems: Vec<(String, &'static str, bool)> = Vec::new();
    for (key, value) in entries(value) {
        let text = scalar(value);
        let s3 = &mut t.config.storage.s3;
        match (key.as_str(), text) {
            ("accesskey", Some(v)) => s3.access_key_id = Some(Secret::new(v)),
            ("secretkey", Some(v)) => s3.secret_access_key = Some(Secret::new(v)),
            ("sessiontoken", Some(v)) => s3.session_token = Some(Secret::new(v)),
            ("region", Some(v)) => s3.region = Some(v),
            ("regionendpoint", Some(v)) => s3.endpoint = Some(v).filter(|v| !v.is_empty()),
            ("bucket", Some(v)) => s3.bucket = v,
            ("rootdirectory", Some(v)) => s3.prefix = v.trim_matches('/').to_owned(),
            ("forcepathstyle", Some(v)) => s3.virtual_hosted_style = v != "true",
            ("secure", Some(v)) => secure = v != "false",
            ("chunksize", Some(v)) => match v.parse() {
                Ok(n) => s3.chunk_size = n,
                Err(_) => problems.push((key, "is not a number of bytes", true)),
            },
            ("v4auth", Some(v)) => {
                if v == "false" {
                    problems.push((key, "ferry signs every request with Signature V4; remove it", true));
                }
            }
            ("skipverify", Some(v)) => {
                if v == "true" {
                    problems.push((key, "ferry verifies the store's certificate; remove it", true));
                }
            }
            (
                "encrypt"
                | "keyid"
                | "storageclass"
                | "objectacl"
                | "useragent"
                | "usedualstack"
                | "accelerate"
                | "loglevel"
                | "multipartcopychunksize"
                | "multipartcopymaxconcurrency"
                | "multipartcopythresholdsize",
                _,
            ) => problems.push((key, "ferry uses the bucket's defaults for this; ignored", false)),
            _ => {
                unknown(t, &format!("storage.s3.{key}"));
            }
        }
    }
    let s3 = &mut t.config.storage.s3;
    // distribution takes `regionendpoint` with or without a scheme; `secure` picks it.
    if let Some(endpoint) = s3.endpoint.as_mut().filter(|e| !e.contains("://")) {
        *endpoint = format!("{}://{endpoint}", if secure { "https" } else { "http" });
    }
    s3.allow_http = s3.endpoint.as_deref().is_some_and(|e| e.starts_with("http://"));
    for (key, message, fatal) in problems {
        let key = format!("storage.s3.{key}");
        if fatal {
            error(t, &key, message);
        } else {
            warn(t, &key, message);
        }
    }
}

fn http(t: &mut Translation, value: &Value) {
    for (key, value) in entries(value) {
        match key.as_str() {
            "addr" => addr(t, scalar(value).unwrap_or_default()),
            "net" => {
                if scalar(value).as_deref().is_some_and(|net| net != "tcp") {
                    error(t, "http.net", "ferry listens on TCP only; use `tcp` with http.addr");
                }
            }
            "prefix" => {
                if scalar(value).is_some_and(|p| !p.is_empty() && p != "/") {
                    error(
                        t,
                        "http.prefix",
                        "ferry serves the API at /v2/ only; remove the prefix or strip it at a proxy",
                    );
                }
            }
            "host" => t.config.public_url = scalar(value).filter(|h| !h.is_empty()),
            "secret" => {
                warn(t, "http.secret", "ferry keeps upload state on the server and needs no secret; ignored")
            }
            "relativeurls" => {
                warn(t, "http.relativeurls", "ferry answers Location headers as paths; ignored")
            }
            "draintimeout" => {
                warn(t, "http.draintimeout", "ferry lets in-flight requests finish at shutdown; ignored")
            }
            "headers" => headers(t, value),
            "tls" => tls(t, value),
            "debug" => debug(t, value),
            "http2" | "h2c" => {
                warn(t, &format!("http.{key}"), "ferry decides HTTP/2 itself (TLS with ALPN); ignored")
            }
            other => unknown(t, &format!("http.{other}")),
        }
    }
}

/// distribution's `:5000` listens on every interface; ferry needs the address spelled out.
fn addr(t: &mut Translation, addr: String) {
    t.config.addr = spell_addr(t, "http.addr", addr);
}

fn spell_addr(t: &mut Translation, key: &str, addr: String) -> String {
    let spelled = if addr.starts_with(':') { format!("0.0.0.0{addr}") } else { addr };
    let spelled = spelled.replacen("localhost:", "127.0.0.1:", 1);
    if spelled.parse::<std::net::SocketAddr>().is_err() {
        t.errors.push(format!(
            "config key `{key}`: ferry needs an IP address and port, like 127.0.0.1:5000 or :5000, not {spelled:?}"
        ));
    }
    spelled
}

/// distribution's debug server, `http.debug: {addr, prometheus: {enabled, path}}`: ferry's
/// serves Prometheus's `/metrics` alone, at `metrics_addr`; health stays on `http.addr`.
fn debug(t: &mut Translation, value: &Value) {
    let mut addr = None;
    let mut prometheus = false;
    for (key, value) in entries(value) {
        match key.as_str() {
            "addr" => addr = scalar(value),
            "prometheus" => {
                prometheus = flag(value, "enabled");
                let path = entries(value).into_iter().find(|(k, _)| k == "path").and_then(|(_, v)| scalar(v));
                if path.is_some_and(|p| p != "/metrics") {
                    warn(t, "http.debug.prometheus.path", "ferry serves its metrics at /metrics; ignored");
                }
            }
            other => unknown(t, &format!("http.debug.{other}")),
        }
    }
    match (prometheus, addr) {
        (true, Some(addr)) => t.config.metrics_addr = Some(spell_addr(t, "http.debug.addr", addr)),
        (true, None) => {
            t.errors.push("config key `http.debug.addr`: missing; the metrics need an address".to_owned())
        }
        (false, _) => warn(
            t,
            "http.debug",
            "ferry's debug server serves Prometheus metrics only (prometheus: {enabled: true}); \
             /healthz and /livez are on http.addr",
        ),
    }
}

fn headers(t: &mut Translation, value: &Value) {
    for (name, values) in entries(value) {
        let values: Vec<String> = match values {
            Value::Sequence(list) => list.iter().filter_map(scalar).collect(),
            other => scalar(other).into_iter().collect(),
        };
        match name.to_ascii_lowercase().as_str() {
            "access-control-allow-origin" => t.config.cors.origins = values,
            "access-control-allow-credentials" => {
                t.config.cors.allow_credentials = values.iter().any(|v| v == "true")
            }
            "access-control-max-age" => {
                t.config.cors.max_age_secs = values.first().and_then(|v| v.parse().ok())
            }
            "access-control-allow-methods"
            | "access-control-allow-headers"
            | "access-control-expose-headers" => {}
            // ferry sends `X-Content-Type-Options: nosniff` on every answer.
            "x-content-type-options" if values.iter().all(|v| v == "nosniff") => {}
            _ => warn(
                t,
                &format!("http.headers.{name}"),
                "ferry adds no static response headers besides CORS and nosniff; ignored",
            ),
        }
    }
}

fn tls(t: &mut Translation, value: &Value) {
    for (key, value) in entries(value) {
        match key.as_str() {
            "certificate" => t.config.tls.cert = scalar(value).map(PathBuf::from),
            "key" => t.config.tls.key = scalar(value).map(PathBuf::from),
            "clientcas" => {
                let cas: Vec<String> = match value {
                    Value::Sequence(list) => list.iter().filter_map(scalar).collect(),
                    other => scalar(other).into_iter().collect(),
                };
                match cas.as_slice() {
                    [] => {}
                    [one] => t.config.tls.client_ca = Some(PathBuf::from(one)),
                    _ => error(
                        t,
                        "http.tls.clientcas",
                        "ferry takes one client CA file; concatenate the PEM files into one",
                    ),
                }
            }
            "minimumtls" => match scalar(value).as_deref() {
                Some("tls1.0" | "tls1.1" | "tls1.2") => {}
                _ => error(t, "http.tls.minimumtls", "ferry accepts TLS 1.2 and 1.3; use tls1.2"),
            },
            "ciphersuites" => warn(t, "http.tls.ciphersuites", "ferry uses rustls's default suites; ignored"),
            "letsencrypt" => error(
                t,
                "http.tls.letsencrypt",
                "ferry fetches no certificates; give http.tls.certificate and key",
            ),
            other => unknown(t, &format!("http.tls.{other}")),
        }
    }
}

/// `proxy`: distribution's pull-through cache of one upstream, every repository. distribution
/// asks the upstream for a tag on every pull, so tags are re-checked every time here too.
fn proxy(t: &mut Translation, value: &Value) {
    let mut upstream = super::UpstreamConfig { tag_ttl_secs: 0, ..Default::default() };
    for (key, value) in entries(value) {
        match key.as_str() {
            "remoteurl" => upstream.url = scalar(value).unwrap_or_default(),
            "username" => upstream.username = scalar(value),
            "password" => upstream.password = scalar(value),
            "ttl" => warn(
                t,
                "proxy.ttl",
                "ferry keeps cached content until it is deleted; it re-checks tags upstream on every pull, \
                 as distribution does",
            ),
            other => unknown(t, &format!("proxy.{other}")),
        }
    }
    if upstream.url.is_empty() {
        t.errors.push(
            "config key `proxy.remoteurl`: missing; name the upstream, like https://registry-1.docker.io"
                .into(),
        );
        return;
    }
    t.config.proxy.upstreams.push(upstream);
}

fn notifications(t: &mut Translation, value: &Value) {
    for (key, value) in entries(value) {
        match key.as_str() {
            "endpoints" => {
                for endpoint in value.as_sequence().into_iter().flatten() {
                    let endpoint = notification_endpoint(t, endpoint);
                    t.config.notifications.endpoints.push(endpoint);
                }
            }
            "events" => warn(t, "notifications.events", "ferry's events carry no references; ignored"),
            other => unknown(t, &format!("notifications.{other}")),
        }
    }
}

fn notification_endpoint(t: &mut Translation, value: &Value) -> EndpointConfig {
    let mut endpoint = EndpointConfig::default();
    let list = |value: &Value| -> Vec<String> {
        value.as_sequence().into_iter().flatten().filter_map(scalar).collect()
    };
    for (key, value) in entries(value) {
        let path = format!("notifications.endpoints.{key}");
        match key.as_str() {
            "name" => endpoint.name = scalar(value).unwrap_or_default(),
            "url" => endpoint.url = scalar(value).unwrap_or_default(),
            "disabled" => endpoint.disabled = scalar(value).as_deref() == Some("true"),
            "headers" => {
                for (name, values) in entries(value) {
                    endpoint.headers.insert(name, list(values));
                }
            }
            "timeout" | "backoff" => match scalar(value).as_deref().and_then(go_duration) {
                Some(secs) if key == "timeout" => endpoint.timeout_secs = secs,
                Some(secs) => endpoint.backoff_secs = secs,
                None => {
                    t.errors.push(format!("config key `{path}`: expected a duration like 500ms, 1s or 2m"))
                }
            },
            "threshold" => match scalar(value).and_then(|n| n.parse().ok()) {
                Some(n) => {
                    endpoint.retries = n;
                    warn(
                        t,
                        &path,
                        "ferry retries a failed event this many times with backoff, then drops it \
                         (distribution retries forever)",
                    );
                }
                None => t.errors.push(format!("config key `{path}`: expected a number")),
            },
            "ignoredmediatypes" => endpoint.ignore.media_types.extend(list(value)),
            "ignore" => {
                for (key, value) in entries(value) {
                    match key.as_str() {
                        "mediatypes" => endpoint.ignore.media_types.extend(list(value)),
                        "actions" => endpoint.ignore.actions.extend(list(value)),
                        other => unknown(t, &format!("notifications.endpoints.ignore.{other}")),
                    }
                }
            }
            _ => unknown(t, &path),
        }
    }
    endpoint
}

/// Go's `time.ParseDuration` for what configs hold: `500ms`, `1s`, `1m30s`, `2h`.
fn go_duration(text: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_end..];
    }
    Some(total)
}

fn auth(t: &mut Translation, value: &Value) {
    for (key, value) in entries(value) {
        match key.as_str() {
            "htpasswd" => {
                for (key, value) in entries(value) {
                    match (key.as_str(), scalar(value)) {
                        ("realm", Some(realm)) => t.config.auth.realm = realm,
                        ("path", Some(path)) => t.config.auth.htpasswd = Some(PathBuf::from(path)),
                        (other, _) => unknown(t, &format!("auth.htpasswd.{other}")),
                    }
                }
            }
            "none" => {}
            "token" => error(
                t,
                "auth.token",
                "ferry cannot check an external token server's tokens; use auth.htpasswd (ferry's own \
                 format adds a built-in token endpoint)",
            ),
            "silly" => error(t, "auth.silly", "ferry has no test-only auth; use auth.htpasswd"),
            other => unknown(t, &format!("auth.{other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(yaml: &str) -> Translation {
        translate(&serde_norway::from_str(yaml).unwrap())
    }

    #[test]
    fn azure_and_gcs_keys_map() {
        let t = read(
            "version: 0.1\nstorage:\n  azure: {accountname: acct, accountkey: K-not-shown, container: reg, \
             realm: core.chinacloudapi.cn, rootdirectory: /a/, max_retries: 3}\n",
        );
        assert!(t.errors.is_empty(), "{:?}", t.errors);
        assert!(
            t.warnings.len() == 1 && t.warnings[0].contains("storage.azure.max_retries"),
            "{:?}",
            t.warnings
        );
        let azure = &t.config.storage.azure;
        assert_eq!(t.config.storage.driver, "azure");
        assert_eq!(
            (azure.account.as_deref(), azure.container.as_str(), azure.prefix.as_str()),
            (Some("acct"), "reg", "a")
        );
        assert_eq!(azure.endpoint.as_deref(), Some("https://acct.blob.core.chinacloudapi.cn"));
        assert!(azure.redirect, "distribution redirects unless told not to");
        assert!(!format!("{t:?}").contains("K-not-shown"), "secrets never show in Debug");
        t.config.validate().unwrap();

        let t = read("version: 0.1\nstorage:\n  gcs: {bucket: reg, keyfile: /sa.json, chunksize: 5242880}\n  redirect: {disable: true}\n");
        assert!(t.errors.is_empty(), "{:?}", t.errors);
        let gcs = &t.config.storage.gcs;
        assert_eq!((t.config.storage.driver.as_str(), gcs.bucket.as_str()), ("gcs", "reg"));
        assert_eq!(
            (gcs.service_account_path.as_deref(), gcs.chunk_size, gcs.redirect),
            (Some("/sa.json"), 5242880, false)
        );
        let t = read("version: 0.1\nstorage: {gcs: {bucket: reg, credentials: {type: service_account}}}\n");
        assert!(t.errors.iter().any(|e| e.contains("keyfile")), "{:?}", t.errors);
    }

    #[test]
    fn s3_keys_map() {
        let t = read(
            "version: 0.1\nstorage:\n  s3: {accesskey: AK, secretkey: SK-not-shown, region: eu-west-1, \
             regionendpoint: '127.0.0.1:9000', secure: false, bucket: reg, rootdirectory: /a/b/, \
             forcepathstyle: true, chunksize: 6291456, storageclass: STANDARD}\n  redirect: {disable: true}\n",
        );
        assert!(t.errors.is_empty(), "{:?}", t.errors);
        assert_eq!(t.warnings.len(), 1, "{:?}", t.warnings);
        assert!(t.warnings[0].contains("`storage.s3.storageclass`"), "{:?}", t.warnings);
        let s3 = &t.config.storage.s3;
        assert_eq!(t.config.storage.driver, "s3");
        assert_eq!((s3.bucket.as_str(), s3.prefix.as_str(), s3.chunk_size), ("reg", "a/b", 6291456));
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert!(s3.allow_http && !s3.virtual_hosted_style && !s3.redirect);
        assert_eq!(s3.region.as_deref(), Some("eu-west-1"));
        assert!(!format!("{t:?}").contains("SK-not-shown"), "secrets never show in Debug");
        t.config.validate().unwrap();

        // distribution's defaults: virtual-hosted HTTPS, redirects on.
        let t =
            read("version: 0.1\nstorage: {s3: {bucket: reg, region: us-east-1, v4auth: false, bogus: 1}}\n");
        let s3 = &t.config.storage.s3;
        assert!(s3.virtual_hosted_style && s3.redirect && !s3.allow_http);
        assert_eq!(t.errors.len(), 2, "{:?}", t.errors);
        assert!(t.errors.iter().any(|e| e.contains("`storage.s3.v4auth`")), "{:?}", t.errors);
        assert!(t.errors.iter().any(|e| e.contains("`storage.s3.bogus`")), "{:?}", t.errors);
    }

    #[test]
    fn the_sample_config_maps() {
        // distribution's cmd/registry/config-example.yml, as Debian ships it.
        let t = read(
            "version: 0.1\nlog:\n  fields:\n    service: registry\nstorage:\n  cache:\n    blobdescriptor: inmemory\n  \
             filesystem:\n    rootdirectory: /var/lib/registry\nhttp:\n  addr: :5000\n  headers:\n    \
             X-Content-Type-Options: [nosniff]\nhealth:\n  storagedriver:\n    enabled: true\n    interval: 10s\n    \
             threshold: 3\n",
        );
        assert!(t.errors.is_empty(), "{:?}", t.errors);
        assert_eq!(t.config.addr, "0.0.0.0:5000");
        assert_eq!(t.config.storage.root, PathBuf::from("/var/lib/registry"));
        assert!(!t.config.delete, "distribution's default");
        assert_eq!(t.warnings.len(), 3, "{:?}", t.warnings);
        for key in ["`log.fields`", "`storage.cache`", "`health`"] {
            assert!(t.warnings.iter().any(|w| w.contains(key)), "{key}: {:?}", t.warnings);
        }
        t.config.validate().unwrap();
    }

    #[test]
    fn keys_map_table() {
        let t = read(
            "version: '0.1'\nlog: {level: debug, formatter: json}\n\
             storage: {inmemory: {}, delete: {enabled: true}, maintenance: {readonly: {enabled: true}, uploadpurging: {enabled: true, age: 2h30m}}, redirect: {disable: true}}\n\
             http: {addr: 127.0.0.1:5001, host: https://r.example, headers: {Access-Control-Allow-Origin: ['http://a'], \
             Access-Control-Allow-Credentials: ['true']}, tls: {certificate: /c, key: /k, clientcas: [/ca], minimumtls: tls1.2}}\n\
             auth: {htpasswd: {realm: r, path: /h}}\n",
        );
        assert!(t.errors.is_empty() && t.warnings.is_empty(), "{:?} {:?}", t.errors, t.warnings);
        let c = &t.config;
        assert_eq!((c.log.level.as_str(), c.log.format), ("debug", LogFormat::Json));
        assert_eq!(c.storage.driver, "memory");
        assert!(c.delete && c.read_only);
        assert_eq!((c.storage.upload_purging.enabled, c.storage.upload_purging.age_secs), (true, 9000));
        assert_eq!(c.addr, "127.0.0.1:5001");
        assert_eq!(c.public_url.as_deref(), Some("https://r.example"));
        assert_eq!(c.cors.origins, vec!["http://a".to_string()]);
        assert!(c.cors.allow_credentials);
        assert_eq!(c.tls.client_ca, Some(PathBuf::from("/ca")));
        assert_eq!(c.auth.htpasswd, Some(PathBuf::from("/h")));
        assert_eq!(c.auth.realm, "r");
    }

    #[test]
    fn the_debug_servers_prometheus_becomes_the_metrics_address() {
        let base = "version: 0.1\nstorage: {inmemory: {}}\n";
        struct Case {
            debug: &'static str,
            metrics_addr: Option<&'static str>,
            /// The key a warning names, if one is given.
            warning: Option<&'static str>,
            /// The key an error names, if one is given.
            error: Option<&'static str>,
        }
        let case = |debug, metrics_addr, warning, error| Case { debug, metrics_addr, warning, error };
        let cases = [
            case(
                "{addr: ':5001', prometheus: {enabled: true, path: /metrics}}",
                Some("0.0.0.0:5001"),
                None,
                None,
            ),
            case("{addr: 'localhost:5001', prometheus: {enabled: true}}", Some("127.0.0.1:5001"), None, None),
            case(
                "{addr: ':5001', prometheus: {enabled: true, path: /m}}",
                Some("0.0.0.0:5001"),
                Some("`http.debug.prometheus.path`"),
                None,
            ),
            case("{addr: ':5001'}", None, Some("`http.debug`"), None),
            case("{prometheus: {enabled: true}}", None, None, Some("`http.debug.addr`")),
        ];
        for Case { debug, metrics_addr, warning, error } in cases {
            let t = read(&format!("{base}http: {{addr: ':5000', debug: {debug}}}\n"));
            assert_eq!(t.config.metrics_addr.as_deref(), metrics_addr, "{debug}");
            let warned: Vec<&String> = t.warnings.iter().filter(|w| w.contains("http.debug")).collect();
            assert_eq!(warned.len(), usize::from(warning.is_some()), "{debug}: {:?}", t.warnings);
            if let Some(key) = warning {
                assert!(warned[0].contains(key), "{debug}: {warned:?}");
            }
            match error {
                Some(key) => assert!(t.errors.iter().any(|e| e.contains(key)), "{debug}: {:?}", t.errors),
                None => assert!(t.errors.is_empty(), "{debug}: {:?}", t.errors),
            }
        }
    }

    #[test]
    fn proxy_maps_to_one_upstream_for_every_repository() {
        let t = read(
            "version: 0.1\nstorage: {inmemory: {}}\nproxy: {remoteurl: 'https://registry-1.docker.io', \
             username: u, password: p}\n",
        );
        assert!(t.errors.is_empty() && t.warnings.is_empty(), "{:?} {:?}", t.errors, t.warnings);
        let up = &t.config.proxy.upstreams[0];
        assert_eq!((up.prefix.as_str(), up.url.as_str()), ("", "https://registry-1.docker.io"));
        assert_eq!(
            (up.username.as_deref(), up.password.as_deref(), up.tag_ttl_secs),
            (Some("u"), Some("p"), 0)
        );
        assert!(!t.config.proxy.allow_push);
        t.config.validate().unwrap();
    }

    #[test]
    fn notifications_map() {
        let t = read(
            "version: 0.1\nstorage: {inmemory: {}}\nnotifications:\n  endpoints:\n    - name: alistener\n      \
             disabled: false\n      url: https://my.listener.com/event\n      headers: {Authorization: [Bearer x]}\n      \
             timeout: 500ms\n      threshold: 5\n      backoff: 1m30s\n      ignoredmediatypes: [application/octet-stream]\n      \
             ignore: {mediatypes: [a/b], actions: [pull]}\n",
        );
        assert!(t.errors.is_empty(), "{:?}", t.errors);
        let e = &t.config.notifications.endpoints[0];
        assert_eq!((e.name.as_str(), e.url.as_str()), ("alistener", "https://my.listener.com/event"));
        assert_eq!(e.headers["Authorization"], vec!["Bearer x".to_string()]);
        assert_eq!((e.timeout_secs, e.backoff_secs, e.retries), (0.5, 90.0, 5));
        assert_eq!(e.ignore.media_types, vec!["application/octet-stream".to_string(), "a/b".into()]);
        assert_eq!(e.ignore.actions, vec!["pull".to_string()]);
        assert_eq!(t.warnings.len(), 1, "{:?}", t.warnings);
        t.config.validate().unwrap();
        for (text, want) in
            [("1s", Some(1.0)), ("1h2m", Some(3720.0)), ("250ms", Some(0.25)), ("5", None), ("x", None)]
        {
            assert_eq!(go_duration(text), want, "{text}");
        }
    }

    #[test]
    fn unsupported_keys_table() {
        let base = "version: 0.1\nstorage: {filesystem: {rootdirectory: /r}}\n";
        // (extra YAML, the line's key, error (true) or warning)
        let cases = [
            ("storage2: {}", "`storage2` is unknown", true),
            ("http: {addr: ':5000', prefix: /reg}", "`http.prefix`", true),
            ("http: {net: unix, addr: /sock}", "`http.net`", true),
            ("auth: {token: {realm: x}}", "`auth.token`", true),
            ("proxy: {remoteurl: https://registry-1.docker.io, ttl: 168h}", "`proxy.ttl`", false),
            ("proxy: {username: u}", "`proxy.remoteurl`", true),
            ("proxy: {remoteurl: https://r.test, mirror: x}", "`proxy.mirror`", true),
            (
                "notifications: {endpoints: [{name: a, url: 'http://x', timeout: 5q}]}",
                "`notifications.endpoints.timeout`",
                true,
            ),
            (
                "notifications: {endpoints: [{name: a, url: 'http://x', hooks: 1}]}",
                "`notifications.endpoints.hooks`",
                true,
            ),
            ("notifications: {events: {includereferences: true}}", "`notifications.events`", false),
            ("middleware: {storage: []}", "`middleware`", true),
            ("http: {tls: {letsencrypt: {email: a}}}", "`http.tls.letsencrypt`", true),
            ("http: {tls: {clientcas: [/a, /b]}}", "`http.tls.clientcas`", true),
            ("http: {tls: {minimumtls: tls1.3}}", "`http.tls.minimumtls`", true),
            ("log: {level: loud}", "`log.level`", true),
            ("http: {addr: 'registry:5000'}", "`http.addr`", true),
            ("version: 0.2", "`version`", true),
            ("redis: {addr: x}", "`redis`", false),
            ("http: {secret: s, debug: {addr: ':5001'}}", "`http.debug`", false),
            ("http: {headers: {X-Frame-Options: [deny]}}", "`http.headers.X-Frame-Options`", false),
            (
                "storage: {filesystem: {rootdirectory: /r}, maintenance: {uploadpurging: {interval: 24h}}}",
                "uploadpurging.interval",
                false,
            ),
            (
                "storage: {filesystem: {rootdirectory: /r}, maintenance: {uploadpurging: {age: soon}}}",
                "uploadpurging.age",
                true,
            ),
        ];
        for (extra, key, is_error) in cases {
            let yaml = if extra.starts_with("storage") || extra.starts_with("version") {
                let other =
                    if extra.starts_with("version") { "storage: {inmemory: {}}" } else { "version: 0.1" };
                format!("{other}\n{extra}\n")
            } else {
                format!("{base}{extra}\n")
            };
            let t = read(&yaml);
            let lines = if is_error { &t.errors } else { &t.warnings };
            let hits: Vec<&String> = lines.iter().filter(|l| l.contains(key)).collect();
            assert_eq!(hits.len(), 1, "{extra}: errors {:?}, warnings {:?}", t.errors, t.warnings);
            assert!(!hits[0].contains('\n'), "one line: {}", hits[0]);
        }
        assert!(read("version: 0.1\n").errors[0].contains("`storage`: missing"));
    }
}
