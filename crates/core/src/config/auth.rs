//! The auth file: `registry` or `registry/namespace` → login.
//!
//! image-syncer's `Auth` struct (`pkg/utils/auth.go`) has `username`, `password`,
//! `identityToken` and `insecure`; every field is optional. Its README: "if an url match
//! multiple objects, the \"registry/namespace\" string will actually be used" — the
//! longest matching key wins ([`AuthConfig::credentials`]).

use std::collections::BTreeMap;
use std::fmt;

use super::node::Node;
use super::{ConfigError, Doc};
use crate::auth::{AuthError, Credential, CredentialStore};
use crate::reference::{normalize_registry, validate_registry, validate_repository};

/// The fields of an auth entry, as image-syncer spells them.
const FIELDS: [&str; 4] = ["username", "password", "identityToken", "insecure"];

/// The login for one registry or namespace. `Debug` never prints the secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AuthEntry {
    /// As in image-syncer's `auth.json`; with no password or identity token the registry is
    /// reached anonymously.
    pub username: Option<String>,
    /// Never printed: `Debug` redacts it.
    pub password: Option<String>,
    /// An OAuth2 refresh token, sent instead of a password (image-syncer's `identityToken`).
    pub identity_token: Option<String>,
    /// As image-syncer means it: HTTPS without verifying the certificate, and plain
    /// HTTP only when the registry does not speak TLS.
    pub insecure: bool,
}

impl fmt::Debug for AuthEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |secret: &Option<String>| secret.as_ref().map(|_| "<redacted>");
        f.debug_struct("AuthEntry")
            .field("username", &self.username)
            .field("password", &redacted(&self.password))
            .field("identity_token", &redacted(&self.identity_token))
            .field("insecure", &self.insecure)
            .finish()
    }
}

/// Logins keyed by `registry[/namespace]`, with the registry normalised (lowercase, Docker
/// Hub's aliases folded into `docker.io`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// Sorted, so the longest-key lookup and every listing are deterministic.
    pub entries: BTreeMap<String, AuthEntry>,
}

impl AuthConfig {
    /// The logins as a credential store, which picks the longest key equal to
    /// `registry/repository` or a prefix of it ending at a `/` (image-syncer documents
    /// longest-match, though its loop keeps whichever match Go's map order yields last;
    /// ferry does what its README says). An `identityToken` wins over a username and
    /// password, as containers/image sends it: as an OAuth2 refresh token. Entries with
    /// neither stay anonymous.
    pub fn credentials(&self) -> Result<CredentialStore, AuthError> {
        let pairs = self.entries.iter().filter_map(|(key, entry)| {
            let credential = match (&entry.identity_token, &entry.username, &entry.password) {
                (Some(token), _, _) => Credential::identity_token(token),
                (None, Some(user), Some(password)) => Credential::new(user, password),
                _ => return None,
            };
            Some((key, credential))
        });
        CredentialStore::new(pairs)
    }
}

/// Reads an auth map (the whole auth file, or the `auth` key of a combined file); `what`
/// names it in messages.
pub(super) fn parse(doc: &Doc<'_>, what: &str, node: &Node) -> Result<AuthConfig, ConfigError> {
    let Node::Map(entries) = node else {
        return Err(ConfigError::new(
            doc.file,
            None,
            format!("{what} must be a map from registry to login, found {}", node.kind()),
            "write one `registry: {username: ..., password: ...}` entry per registry, e.g. quay.io",
        ));
    };
    let mut config = AuthConfig::default();
    let mut written_as: BTreeMap<String, &str> = BTreeMap::new();
    for (key, value) in entries {
        let normalized = normalize_key(doc, key)?;
        if let Some(first) = written_as.insert(normalized.clone(), key) {
            return Err(doc.error(
                key,
                format!("names the same registry as key {first:?} (both mean {normalized:?})"),
                "keep one of the two entries",
            ));
        }
        config.entries.insert(normalized, parse_entry(doc, key, value)?);
    }
    Ok(config)
}

/// Validates `registry[/namespace]` and normalises the registry part.
fn normalize_key(doc: &Doc<'_>, key: &str) -> Result<String, ConfigError> {
    let fix = "write a registry host, optionally followed by /namespace, e.g. quay.io or quay.io/coreos";
    if let Some((scheme, rest)) =
        key.split_once("://").filter(|(s, _)| s.bytes().all(|b| b.is_ascii_alphabetic()))
    {
        return Err(doc.error(
            key,
            format!("auth keys are hosts, not URLs: {scheme:?} is a URL scheme"),
            format!("write the host without the scheme: {:?}", rest.trim_end_matches('/')),
        ));
    }
    let key_without_slash = key.strip_suffix('/').unwrap_or(key);
    let (registry, namespace) = match key_without_slash.split_once('/') {
        Some((registry, namespace)) => (registry, Some(namespace)),
        None => (key_without_slash, None),
    };
    validate_registry(registry).map_err(|e| doc.error(key, e.to_string(), fix))?;
    let registry = normalize_registry(registry);
    match namespace {
        Some(namespace) => {
            validate_repository(namespace).map_err(|e| doc.error(key, e.to_string(), fix))?;
            Ok(format!("{registry}/{namespace}"))
        }
        None => Ok(registry),
    }
}

fn parse_entry(doc: &Doc<'_>, key: &str, node: &Node) -> Result<AuthEntry, ConfigError> {
    // image-syncer decodes a missing body (`quay.io:` with nothing under it) as an empty
    // login: anonymous access.
    if *node == Node::Null {
        return Ok(AuthEntry::default());
    }
    let fields = doc.map(key, "an auth entry", node)?;
    doc.check_keys(key, fields, &FIELDS)?;
    let mut entry = AuthEntry::default();
    for (field, value) in fields {
        match (field.as_str(), value) {
            (_, Node::Null) => {}
            ("insecure", Node::Bool(insecure)) => entry.insecure = *insecure,
            ("insecure", other) => {
                return Err(doc.error(
                    key,
                    format!("field \"insecure\" must be true or false, found {}", other.kind()),
                    "write insecure: true for a plain-HTTP registry, or leave the field out",
                ))
            }
            ("username" | "password" | "identityToken", value) => {
                let what = format!("field {field:?}");
                let raw = doc.string(
                    key,
                    &what,
                    value,
                    &format!("{field}: \"${{REGISTRY_{}}}\"", field.to_uppercase()),
                )?;
                let expanded = doc.expand(key, &what, raw)?;
                // Go's zero value: an empty field is an absent field.
                let slot = match field.as_str() {
                    "username" => &mut entry.username,
                    "password" => &mut entry.password,
                    _ => &mut entry.identity_token,
                };
                *slot = Some(expanded).filter(|v| !v.is_empty());
            }
            // image-syncer ignores unknown fields; ferry's format rejected them above.
            _ => {}
        }
    }
    Ok(entry)
}
