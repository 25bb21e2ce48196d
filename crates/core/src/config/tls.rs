//! ferry's `tls` key: per-registry trust and client certificates.
//!
//! ```yaml
//! tls:
//!   registry.example.com:5443:
//!     ca: /etc/ferry/private-ca.crt       # trusted besides the platform's roots
//!     cert: /etc/ferry/client.cert        # a client certificate for mutual TLS...
//!     key: /etc/ferry/client.key          # ...and its private key
//!   registry.internal:
//!     certDir: /etc/ferry/certs/internal  # a docker certs.d-style folder (*.crt, *.cert, *.key)
//! ```
//!
//! Keys are registries (`host[:port]`), not namespaces: TLS is per connection. Paths are
//! kept as written; the caller resolves relative ones against the file's folder and reads
//! them.

use std::collections::BTreeMap;

use super::node::Node;
use super::{ConfigError, Doc};
use crate::reference::{normalize_registry, validate_registry};

const FIELDS: [&str; 4] = ["ca", "cert", "key", "certDir"];

/// The TLS settings of one registry; paths as written in the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsEntry {
    /// A PEM file of CA certificates to trust for this registry.
    pub ca: Option<String>,
    /// A PEM client certificate (chain) for mutual TLS; `key` is set whenever this is.
    pub cert: Option<String>,
    /// The PEM private key of `cert`.
    pub key: Option<String>,
    /// A folder laid out as docker's `certs.d/<host>`: `*.crt` are CAs, each `*.cert`
    /// pairs with the `*.key` of the same name.
    pub cert_dir: Option<String>,
}

/// TLS settings keyed by normalised registry.
pub type TlsConfig = BTreeMap<String, TlsEntry>;

pub(super) fn parse(doc: &Doc<'_>, node: &Node) -> Result<TlsConfig, ConfigError> {
    let entries = doc.map("tls", "`tls`", node)?;
    let mut config = TlsConfig::new();
    for (registry, value) in entries {
        validate_registry(registry).map_err(|e| {
            doc.error(
                registry,
                e.to_string(),
                "write a registry host with its port if it has one, e.g. registry.example.com:5443",
            )
        })?;
        let fields = doc.map(registry, "a tls entry", value)?;
        let strict = Doc { file: doc.file, env: doc.env, strict: true };
        strict.check_keys(registry, fields, &FIELDS)?;
        let mut entry = TlsEntry::default();
        for (field, value) in fields {
            if *value == Node::Null {
                continue;
            }
            let what = format!("field {field:?}");
            let raw = doc.string(registry, &what, value, "\"/etc/ferry/ca.crt\"")?;
            let path = Some(doc.expand(registry, &what, raw)?).filter(|p| !p.is_empty());
            match field.as_str() {
                "ca" => entry.ca = path,
                "cert" => entry.cert = path,
                "key" => entry.key = path,
                _ => entry.cert_dir = path,
            }
        }
        if entry.cert.is_some() != entry.key.is_some() {
            let (has, lacks) = if entry.cert.is_some() { ("cert", "key") } else { ("key", "cert") };
            return Err(doc.error(
                registry,
                format!("has `{has}` but no `{lacks}`: a client certificate needs both"),
                format!("add `{lacks}: FILE`, or remove `{has}`"),
            ));
        }
        let normalized = normalize_registry(registry);
        if config.insert(normalized.clone(), entry).is_some() {
            return Err(doc.error(
                registry,
                format!("names the same registry as another `tls` key ({normalized:?})"),
                "keep one of the two entries",
            ));
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::super::{parse_config_file, ConfigError};
    use super::*;

    fn parse(yaml: &str) -> Result<TlsConfig, ConfigError> {
        parse_config_file("f.yaml", yaml, &|name| (name == "CERTS").then(|| "/certs".to_owned()))
            .map(|j| j.tls)
    }

    fn err(key: &str, problem: &str, fix: &str) -> Result<TlsConfig, ConfigError> {
        Err(ConfigError {
            file: "f.yaml".into(),
            key: Some(key.into()),
            problem: problem.into(),
            fix: fix.into(),
        })
    }

    #[test]
    fn tls_entries() {
        let entry = |ca: Option<&str>, cert: Option<&str>, key: Option<&str>, dir: Option<&str>| TlsEntry {
            ca: ca.map(str::to_owned),
            cert: cert.map(str::to_owned),
            key: key.map(str::to_owned),
            cert_dir: dir.map(str::to_owned),
        };
        let cases = [
            (
                "tls: {Reg.Test:5443: {ca: ca.crt, cert: c.cert, key: c.key}}",
                Ok([(
                    "reg.test:5443".to_owned(),
                    entry(Some("ca.crt"), Some("c.cert"), Some("c.key"), None),
                )]
                .into()),
            ),
            (
                "tls: {index.docker.io: {certDir: \"${CERTS}/hub\"}}",
                Ok([("docker.io".to_owned(), entry(None, None, None, Some("/certs/hub")))].into()),
            ),
            ("tls: {r: {ca: null}}", Ok([("r".to_owned(), TlsEntry::default())].into())),
            (
                "tls: {r: {cert: c.cert}}",
                err(
                    "r",
                    "has `cert` but no `key`: a client certificate needs both",
                    "add `key: FILE`, or remove `cert`",
                ),
            ),
            (
                "tls: {r: {cacert: x}}",
                err("r", "unknown field \"cacert\"", "use one of: ca, cert, key, certDir"),
            ),
            (
                "tls: {r: {ca: 1}}",
                err(
                    "r",
                    "field \"ca\" must be a string, found a number",
                    "write it as a quoted string, e.g. \"/etc/ferry/ca.crt\"",
                ),
            ),
            (
                "tls: [r]",
                Err(ConfigError {
                    file: "f.yaml".into(),
                    key: Some("tls".into()),
                    problem: "`tls` must be a map, found a list".into(),
                    fix: "write `tls` as `name: value` pairs".into(),
                }),
            ),
        ];
        for (yaml, want) in cases {
            assert_eq!(parse(yaml), want, "{yaml}");
        }
    }
}
