//! Credentials from docker's `config.json`.
//!
//! docker keeps them three ways, and ferry reads all three, in docker's precedence:
//! 1. `credHelpers`: `{"registry": "<name>"}` asks `docker-credential-<name>` for that
//!    registry;
//! 2. `auths`: `{"registry": {"auth": base64("user:password")}}` (or `username` and
//!    `password`) inline;
//! 3. `credsStore`: `"<name>"` asks `docker-credential-<name>` for every `auths` entry
//!    that has no inline credential (`docker login` leaves `{}` there).
//!
//! `identitytoken` entries (OAuth2 refresh tokens, as `az acr login` writes) become
//! [`Credential::identity_token`]s, which the core exchanges at the token service with
//! distribution's OAuth2 form, as docker does. The result feeds [`ferry_core::auth::CredentialStore::new`], which accepts
//! docker's keys such as `https://index.docker.io/v1/`.
//!
//! Errors name the file and the key; no secret is ever part of an error or a log line.

mod helper;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use ferry_core::auth::Credential;
use serde_json::{Map, Value};

pub use helper::HelperLookup;

/// How long one credential helper may take.
pub const DEFAULT_HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// docker's config file: `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
pub fn default_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    let home =
        std::env::var_os("HOME").or_else(|| std::env::var_os("USERPROFILE")).filter(|h| !h.is_empty())?;
    Some(PathBuf::from(home).join(".docker").join("config.json"))
}

/// Reads the credentials of the docker config at `path`, or of the default one (where a
/// missing file means no credentials), with helpers found on `PATH`.
pub fn load_docker_config(path: Option<&Path>) -> Result<Vec<(String, Credential)>, CredentialError> {
    let loader = DockerConfigLoader::new();
    let loaded = match path {
        Some(path) => loader.load(path)?,
        None => loader.load_default()?,
    };
    Ok(loaded.credentials)
}

/// What a docker config yielded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerCredentials {
    /// `(key, credential)` in precedence order, for `CredentialStore::new`.
    pub credentials: Vec<(String, Credential)>,
}

/// Why a docker config could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    #[error("could not read docker config {}: {message}", path.display())]
    Read { path: PathBuf, message: String },
    #[error("docker config {} is not valid JSON: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    /// An entry (or a top-level key) has the wrong shape.
    #[error("docker config {}: {key:?} {problem}", path.display())]
    Entry { path: PathBuf, key: String, problem: String },
    #[error("docker config {}: credential helper `docker-credential-{helper}` (for {key:?}) {problem}", path.display())]
    Helper { path: PathBuf, key: String, helper: String, problem: String },
}

/// Reads docker configs, with helpers found where [`HelperLookup`] says.
#[derive(Debug, Clone)]
pub struct DockerConfigLoader {
    lookup: HelperLookup,
    timeout: Duration,
}

impl Default for DockerConfigLoader {
    fn default() -> Self {
        DockerConfigLoader::new()
    }
}

impl DockerConfigLoader {
    pub fn new() -> Self {
        DockerConfigLoader { lookup: HelperLookup::Path, timeout: DEFAULT_HELPER_TIMEOUT }
    }

    pub fn helper_lookup(mut self, lookup: HelperLookup) -> Self {
        self.lookup = lookup;
        self
    }

    pub fn helper_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The default config ([`default_config_path`]); none there means no credentials.
    pub fn load_default(&self) -> Result<DockerCredentials, CredentialError> {
        match default_config_path() {
            Some(path) if path.exists() => self.load(&path),
            _ => Ok(DockerCredentials::default()),
        }
    }

    pub fn load(&self, path: &Path) -> Result<DockerCredentials, CredentialError> {
        let text = std::fs::read(path)
            .map_err(|e| CredentialError::Read { path: path.to_owned(), message: e.to_string() })?;
        self.parse(path, &text)
    }

    /// Reads the config's `text`; `path` names it in errors.
    pub fn parse(&self, path: &Path, text: &[u8]) -> Result<DockerCredentials, CredentialError> {
        let config = Config::parse(path, text)?;
        let mut out = DockerCredentials::default();
        for (registry, name) in &config.cred_helpers {
            self.ask(&config, &mut out, name, registry)?;
        }
        for (key, entry) in &config.auths {
            if config.cred_helpers.keys().any(|registry| host_of_key(registry) == host_of_key(key)) {
                continue;
            }
            if let Some(credential) = &entry.credential {
                out.credentials.push((key.clone(), credential.clone()));
            } else if let Some(store) = &config.creds_store {
                self.ask(&config, &mut out, store, key)?;
            }
        }
        Ok(out)
    }

    fn ask(
        &self,
        config: &Config,
        out: &mut DockerCredentials,
        helper: &str,
        key: &str,
    ) -> Result<(), CredentialError> {
        let answer = helper::get(&self.lookup, helper, key, self.timeout).map_err(|problem| {
            CredentialError::Helper {
                path: config.path.clone(),
                key: key.to_owned(),
                helper: helper.to_owned(),
                problem,
            }
        })?;
        match answer {
            helper::Answer::Credential(credential) => out.credentials.push((key.to_owned(), credential)),
            helper::Answer::None => {}
        }
        Ok(())
    }
}

/// The registry host of a docker config key: `https://index.docker.io/v1/` -> `index.docker.io`.
fn host_of_key(key: &str) -> String {
    let rest = key.split_once("://").map_or(key, |(_, rest)| rest);
    rest.split('/').next().unwrap_or_default().to_ascii_lowercase()
}

struct Config {
    path: PathBuf,
    auths: BTreeMap<String, Entry>,
    creds_store: Option<String>,
    cred_helpers: BTreeMap<String, String>,
}

struct Entry {
    credential: Option<Credential>,
}

impl Config {
    fn parse(path: &Path, text: &[u8]) -> Result<Config, CredentialError> {
        let entry_error = |key: &str, problem: &str| CredentialError::Entry {
            path: path.to_owned(),
            key: key.to_owned(),
            problem: problem.to_owned(),
        };
        // Through `Value` first: serde's type errors quote the offending value, which
        // could be a password. Syntax errors only give a position.
        let value: Value = serde_json::from_slice(text)
            .map_err(|e| CredentialError::Syntax { path: path.to_owned(), message: e.to_string() })?;
        let Value::Object(root) = value else {
            return Err(CredentialError::Syntax {
                path: path.to_owned(),
                message: "the top level is not an object".into(),
            });
        };
        let mut config = Config {
            path: path.to_owned(),
            auths: BTreeMap::new(),
            creds_store: None,
            cred_helpers: BTreeMap::new(),
        };
        match root.get("auths") {
            None | Some(Value::Null) => {}
            Some(Value::Object(auths)) => {
                for (key, entry) in auths {
                    let Value::Object(entry) = entry else {
                        return Err(entry_error(
                            key,
                            "under `auths` must be an object such as {\"auth\": \"...\"}",
                        ));
                    };
                    config.auths.insert(key.clone(), Entry::parse(entry).map_err(|p| entry_error(key, p))?);
                }
            }
            Some(_) => return Err(entry_error("auths", "must be an object of registry -> entry")),
        }
        match root.get("credsStore") {
            None | Some(Value::Null) => {}
            Some(Value::String(name)) if name.is_empty() => {}
            Some(Value::String(name)) => config.creds_store = Some(name.clone()),
            Some(_) => return Err(entry_error("credsStore", "must be a helper name such as \"desktop\"")),
        }
        match root.get("credHelpers") {
            None | Some(Value::Null) => {}
            Some(Value::Object(helpers)) => {
                for (registry, name) in helpers {
                    let Value::String(name) = name else {
                        return Err(entry_error(
                            registry,
                            "under `credHelpers` must name a helper, such as \"ecr-login\"",
                        ));
                    };
                    config.cred_helpers.insert(registry.clone(), name.clone());
                }
            }
            Some(_) => {
                return Err(entry_error("credHelpers", "must be an object of registry -> helper name"))
            }
        }
        Ok(config)
    }
}

impl Entry {
    fn parse(entry: &Map<String, Value>) -> Result<Entry, &'static str> {
        let text = |field: &str| -> Result<Option<&str>, &'static str> {
            match entry.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.is_empty() => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(_) => Err("has a field that is not a string (`auth`, `username`, `password` and `identitytoken` are strings)"),
            }
        };
        // docker keeps the identity token beside an `auth` it no longer uses: the token wins.
        let credential = match (text("identitytoken")?, text("auth")?, text("username")?, text("password")?) {
            (Some(token), ..) => Some(Credential::identity_token(token)),
            (None, Some(auth), _, _) => Some(decode_auth(auth)?),
            (None, None, Some(username), Some(password)) => Some(Credential::new(username, password)),
            (None, None, Some(_), None) => return Err("has a `username` but no `password`"),
            (None, None, None, Some(_)) => return Err("has a `password` but no `username`"),
            (None, None, None, None) => None,
        };
        Ok(Entry { credential })
    }
}

/// `auth` is base64 of `user:password` (docker writes it padded; some tools do not).
fn decode_auth(auth: &str) -> Result<Credential, &'static str> {
    let engines =
        [base64::engine::general_purpose::STANDARD, base64::engine::general_purpose::STANDARD_NO_PAD];
    let bytes = engines
        .iter()
        .find_map(|engine| engine.decode(auth.trim()).ok())
        .ok_or("has an `auth` that is not base64 (it should be base64 of `user:password`)")?;
    let pair = String::from_utf8(bytes).map_err(|_| "has an `auth` that does not decode to UTF-8 text")?;
    let (username, password) =
        pair.split_once(':').ok_or("has an `auth` without a `:` (it should be base64 of `user:password`)")?;
    if username.is_empty() {
        return Err("has an `auth` with an empty username");
    }
    Ok(Credential::new(username, password))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_fields_decode() {
        type Case = (&'static str, Result<(&'static str, &'static str), &'static str>);
        let cases: [Case; 5] = [
            ("dXNlcjpwYXNz", Ok(("user", "pass"))),
            ("dXNlcjpwYTpzcw==", Ok(("user", "pa:ss"))),
            ("dXNlcjpwYTpzcw", Ok(("user", "pa:ss"))),
            ("!!!", Err("has an `auth` that is not base64 (it should be base64 of `user:password`)")),
            ("dXNlcg==", Err("has an `auth` without a `:` (it should be base64 of `user:password`)")),
        ];
        for (auth, want) in cases {
            let got = decode_auth(auth).map(|c| (c.username, c.password));
            let want = want.map(|(u, p)| (u.to_owned(), p.to_owned()));
            assert_eq!(got, want, "{auth}");
        }
    }

    #[test]
    fn key_hosts() {
        let cases =
            [("https://index.docker.io/v1/", "index.docker.io"), ("Reg:5000", "reg:5000"), ("r/ns", "r")];
        for (key, host) in cases {
            assert_eq!(host_of_key(key), host);
        }
    }
}
