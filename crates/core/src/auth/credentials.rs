//! Credentials and the store that picks one for a repository.
//!
//! Keys come from several file formats. image-syncer's `auth.json` and ferry's config use
//! `registry` or `registry/namespace`; docker's `config.json` uses URLs such as
//! `https://index.docker.io/v1/` or `http://host:5000`. All of them normalise to a host
//! plus an optional repository-path prefix.

use std::fmt;

use base64::Engine as _;

use super::AuthError;

/// A username and password (or access token used as a password).
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// For a registry whose token stands in for a password, any name it accepts.
    pub username: String,
    /// Never printed: `Debug` redacts it.
    pub password: String,
}

/// The user name docker's credential helpers and `config.json` pair with an identity
/// token (an OAuth2 refresh token), as `docker login` to ACR stores it.
pub(crate) const IDENTITY_TOKEN_USERNAME: &str = "<token>";

impl Credential {
    /// A username and password exactly as given: a space can be part of a password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Credential {
        Credential { username: username.into(), password: password.into() }
    }

    /// An identity token (image-syncer's `identityToken`, docker's `identitytoken`): an
    /// OAuth2 refresh token, which the token service exchanges for a registry token.
    pub fn identity_token(token: impl Into<String>) -> Credential {
        Credential { username: IDENTITY_TOKEN_USERNAME.to_owned(), password: token.into() }
    }

    /// The refresh token, when this credential is an identity token.
    pub fn refresh_token(&self) -> Option<&str> {
        (self.username == IDENTITY_TOKEN_USERNAME).then_some(self.password.as_str())
    }

    /// The `Authorization` header value: RFC 7617, `"Basic" 1*SP base64(user-id ":" password)`.
    /// RFC 7617 forbids a colon in the user-id, so a username with one cannot be sent.
    pub fn basic_authorization(&self) -> String {
        let pair = format!("{}:{}", self.username, self.password);
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// docker.io's other host names, as they appear in auth files and references.
const DOCKER_HUB_ALIASES: [&str; 2] = ["index.docker.io", "registry-1.docker.io"];

/// Credentials by registry and repository-path prefix.
#[derive(Debug, Clone, Default)]
pub struct CredentialStore {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    host: String,
    /// Repository-path prefix without leading or trailing `/`; empty for the whole registry.
    path: String,
    credential: Credential,
}

impl CredentialStore {
    /// Builds a store from `(key, credential)` pairs.
    ///
    /// A key is `registry`, `registry/namespace[/...]`, or a URL `http(s)://registry[/path]`.
    /// Trailing slashes are dropped, the host is lowercased, and `index.docker.io` and
    /// `registry-1.docker.io` become `docker.io`. In a URL key the path `/v1` or `/v2` is
    /// docker's API version, not a namespace (`https://index.docker.io/v1/` means all of
    /// docker.io); any other path is a namespace.
    ///
    /// When two keys normalise to the same thing, the earlier one wins: pass the sources
    /// with the highest precedence first.
    pub fn new<K: AsRef<str>>(
        pairs: impl IntoIterator<Item = (K, Credential)>,
    ) -> Result<CredentialStore, AuthError> {
        let mut entries: Vec<Entry> = Vec::new();
        for (key, credential) in pairs {
            let key = key.as_ref();
            let (host, path) = normalise_key(key)
                .map_err(|problem| AuthError::InvalidCredentialKey { key: key.to_owned(), problem })?;
            if !entries.iter().any(|e| e.host == host && e.path == path) {
                entries.push(Entry { host, path, credential });
            }
        }
        Ok(CredentialStore { entries })
    }

    /// The credential for `repository` (such as `library/nginx`) on `registry` (a host, with
    /// its port if any): the entry with the longest key that matches on `/` boundaries.
    /// `reg/ns` matches `ns/app` and `ns/sub/app` but not `nsx/app`; `reg` matches
    /// everything on `reg`.
    pub fn lookup(&self, registry: &str, repository: &str) -> Option<&Credential> {
        let host = canonical_host(registry);
        self.entries
            .iter()
            .filter(|e| e.host == host && path_covers(&e.path, repository))
            .max_by_key(|e| e.path.len())
            .map(|e| &e.credential)
    }
}

impl CredentialStore {
    /// Adds `fallback`'s entries for the registries this store does not name at all. A
    /// file that names a registry owns it: a more specific key for the same registry in
    /// the fallback (docker's `config.json`, say) does not override it.
    pub fn with_fallback(mut self, fallback: CredentialStore) -> CredentialStore {
        let owned: Vec<String> = self.entries.iter().map(|e| e.host.clone()).collect();
        self.entries.extend(fallback.entries.into_iter().filter(|e| !owned.contains(&e.host)));
        self
    }
}

fn path_covers(prefix: &str, repository: &str) -> bool {
    prefix.is_empty()
        || repository.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

fn canonical_host(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    if DOCKER_HUB_ALIASES.contains(&host.as_str()) {
        "docker.io".to_owned()
    } else {
        host
    }
}

fn normalise_key(key: &str) -> Result<(String, String), &'static str> {
    let trimmed = key.trim();
    let lower = trimmed.to_ascii_lowercase();
    let (rest, is_url) = if lower.starts_with("https://") {
        (&trimmed[8..], true)
    } else if lower.starts_with("http://") {
        (&trimmed[7..], true)
    } else if trimmed.contains("://") {
        return Err("only http:// and https:// URLs are accepted");
    } else {
        (trimmed, false)
    };
    let rest = rest.trim_end_matches('/');
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    if host.is_empty() {
        return Err("it names no registry");
    }
    if !host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b)) {
        return Err("the registry is not a host name (letters, digits, `-`, `.`, `:port`)");
    }
    if !path.is_empty() && path.split('/').any(str::is_empty) {
        return Err("the namespace has an empty path segment (`//`)");
    }
    if path.contains(char::is_whitespace) {
        return Err("the namespace contains whitespace");
    }
    let path = if is_url && matches!(path, "v1" | "v2") { "" } else { path };
    Ok((canonical_host(host), path.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(name: &str) -> Credential {
        Credential::new(name, format!("{name}-secret"))
    }

    #[test]
    fn lookup_table() {
        let store = CredentialStore::new([
            ("reg.example.com", cred("reg")),
            ("reg.example.com/ns", cred("ns")),
            ("reg.example.com/ns/sub/", cred("sub")),
            ("https://index.docker.io/v1/", cred("hub")),
            ("docker.io/library", cred("hub-library")),
            ("http://LOCALHOST:5000", cred("local")),
            ("https://quay.io/team", cred("quay-team")),
            ("ghcr.io/org/app", cred("ghcr-app")),
        ])
        .unwrap();
        let cases = [
            ("reg.example.com", "ns/app", Some("ns")),
            ("reg.example.com", "ns/sub/app", Some("sub")),
            ("reg.example.com", "ns/sub", Some("sub")),
            ("reg.example.com", "ns/subx/app", Some("ns")),
            ("reg.example.com", "nsx/app", Some("reg")),
            ("reg.example.com", "ns", Some("ns")),
            ("reg.example.com", "other/app", Some("reg")),
            ("REG.example.com", "ns/app", Some("ns")),
            ("docker.io", "library/nginx", Some("hub-library")),
            ("docker.io", "someone/app", Some("hub")),
            ("index.docker.io", "someone/app", Some("hub")),
            ("registry-1.docker.io", "library/alpine", Some("hub-library")),
            ("localhost:5000", "app", Some("local")),
            ("localhost", "app", None),
            ("localhost:5001", "app", None),
            ("quay.io", "team/app", Some("quay-team")),
            ("quay.io", "teams/app", None),
            ("ghcr.io", "org/app", Some("ghcr-app")),
            ("ghcr.io", "org/app2", None),
            ("ghcr.io", "org", None),
            ("example.com", "reg.example.com/ns/app", None),
        ];
        for (registry, repository, expected) in cases {
            let found = store.lookup(registry, repository).map(|c| c.username.as_str());
            assert_eq!(found, expected, "{registry} {repository}");
        }
    }

    #[test]
    fn earlier_keys_win_over_equivalent_later_ones() {
        let store = CredentialStore::new([
            ("docker.io", cred("first")),
            ("https://index.docker.io/v1/", cred("second")),
            ("registry-1.docker.io/", cred("third")),
        ])
        .unwrap();
        assert_eq!(store.lookup("docker.io", "a/b").map(|c| c.username.as_str()), Some("first"));
        assert!(CredentialStore::default().lookup("docker.io", "a/b").is_none());
    }

    #[test]
    fn a_fallback_counts_only_for_registries_the_store_does_not_name() {
        let file = CredentialStore::new([("reg", cred("file")), ("Index.docker.io", cred("hub"))]).unwrap();
        let docker = CredentialStore::new([
            ("reg/ns", cred("docker")),
            ("docker.io", cred("x")),
            ("other", cred("other")),
        ])
        .unwrap();
        let store = file.with_fallback(docker);
        let cases = [
            ("reg", "ns/app", Some("file")),
            ("reg", "app", Some("file")),
            ("docker.io", "library/a", Some("hub")),
            ("other", "a", Some("other")),
            ("none", "a", None),
        ];
        for (registry, repository, expected) in cases {
            let found = store.lookup(registry, repository).map(|c| c.username.as_str());
            assert_eq!(found, expected, "{registry} {repository}");
        }
    }

    #[test]
    fn key_table() {
        let cases = [
            ("reg.example.com", Ok(("reg.example.com", ""))),
            ("  Reg.Example.com//  ", Ok(("reg.example.com", ""))),
            ("reg.example.com/ns/sub", Ok(("reg.example.com", "ns/sub"))),
            ("https://index.docker.io/v1/", Ok(("docker.io", ""))),
            ("HTTPS://registry-1.docker.io/v2", Ok(("docker.io", ""))),
            ("http://host:5000", Ok(("host:5000", ""))),
            ("https://host/ns/", Ok(("host", "ns"))),
            ("host/v1", Ok(("host", "v1"))),
            ("[::1]:5000/ns", Ok(("[::1]:5000", "ns"))),
            ("", Err("it names no registry")),
            ("https://", Err("it names no registry")),
            ("/ns", Err("it names no registry")),
            ("ftp://host", Err("only http:// and https:// URLs are accepted")),
            ("user@host", Err("the registry is not a host name (letters, digits, `-`, `.`, `:port`)")),
            ("my host", Err("the registry is not a host name (letters, digits, `-`, `.`, `:port`)")),
            ("host//ns", Err("the namespace has an empty path segment (`//`)")),
            ("host/n s", Err("the namespace contains whitespace")),
            ("é", Err("the registry is not a host name (letters, digits, `-`, `.`, `:port`)")),
        ];
        for (key, expected) in cases {
            let got = normalise_key(key);
            let got = got.as_ref().map(|(h, p)| (h.as_str(), p.as_str())).map_err(|e| *e);
            assert_eq!(got, expected, "{key:?}");
        }
    }

    #[test]
    fn invalid_key_error_names_the_key() {
        let err = CredentialStore::new([("ftp://host", cred("x"))]).unwrap_err();
        assert_eq!(
            err,
            AuthError::InvalidCredentialKey {
                key: "ftp://host".to_owned(),
                problem: "only http:// and https:// URLs are accepted"
            }
        );
        assert_eq!(
            err.to_string(),
            "credential key \"ftp://host\": only http:// and https:// URLs are accepted; use \
             `registry`, `registry/namespace` or a URL such as `https://index.docker.io/v1/`"
        );
    }

    #[test]
    fn basic_authorization_and_redaction() {
        let credential = Credential::new("Aladdin", "open sesame");
        assert_eq!(credential.basic_authorization(), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        let debug = format!("{:?}", CredentialStore::new([("h", credential.clone())]).unwrap());
        assert!(debug.contains("Aladdin") && !debug.contains("sesame"), "{debug}");
        assert_eq!(
            format!("{credential:?}"),
            r#"Credential { username: "Aladdin", password: "<redacted>" }"#
        );
    }
}
