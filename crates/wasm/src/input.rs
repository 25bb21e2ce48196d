//! The caller's arguments: repositories, credentials and options, checked before any
//! request, with errors that name the argument and the fix.

use ferry_core::api::EndpointMap;
use ferry_core::auth::{Credential, CredentialStore};
use ferry_core::digest::Digest;
use ferry_core::reference::{normalize_registry, validate_registry, validate_repository, validate_tag};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use wasm_bindgen::{JsCast as _, JsValue};
use web_sys::AbortSignal;

use crate::errors::ApiError;
use crate::js;

/// A repository on a registry given by base URL, e.g. `http://127.0.0.1:5000`.
#[derive(Debug, Clone)]
pub(crate) struct Repo {
    /// The registry's name for the core: `host[:port]`, normalised.
    pub name: String,
    /// The base URL, without a trailing `/`.
    pub base: String,
    pub repository: String,
    pub auth: Auth,
}

#[derive(Debug, Clone)]
pub(crate) enum Auth {
    Anonymous,
    Basic(Credential),
    /// A bearer token, sent as is.
    Token(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RepoInput {
    registry: String,
    #[serde(default)]
    repository: String,
    #[serde(default)]
    auth: Option<AuthInput>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthInput {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    token: Option<String>,
}

/// `{ registry, repository, auth? }` from the caller; `what` names the argument.
pub(crate) fn repo(what: &str, value: &JsValue) -> Result<Repo, ApiError> {
    let repo = side(what, value)?;
    if repo.repository.is_empty() {
        return Err(ApiError::input(format!("{what}.repository is missing: name the repository")));
    }
    Ok(repo)
}

/// `{ registry, repository?, auth? }`: a repository, or (no or an empty `repository`) a
/// whole registry, for a diff.
pub(crate) fn side(what: &str, value: &JsValue) -> Result<Repo, ApiError> {
    if value.is_undefined() || value.is_null() {
        return Err(ApiError::input(format!(
            "{what} is missing: give {{registry: \"http://host:port\", repository: \"name\"}}"
        )));
    }
    let input: RepoInput = parse(what, value)?;
    let (name, base) = base_url(what, &input.registry)?;
    let mut repository = input.repository.trim().trim_matches('/').to_owned();
    if repository.is_empty() {
        let auth = auth(what, input.auth)?;
        return Ok(Repo { name, base, repository, auth });
    }
    validate_repository(&repository).map_err(|e| ApiError::input(format!("{what}.repository: {e}")))?;
    if name == ferry_core::reference::DOCKER_HUB && !repository.contains('/') {
        repository = format!("library/{repository}");
    }
    let auth = auth(what, input.auth)?;
    Ok(Repo { name, base, repository, auth })
}

/// `http(s)://host[:port][/path]` -> the registry's name and the base URL.
fn base_url(what: &str, text: &str) -> Result<(String, String), ApiError> {
    let fix = "write it as http(s)://host[:port], e.g. http://127.0.0.1:5000";
    let bad = |why: &str| ApiError::input(format!("{what}.registry {text:?} {why}: {fix}"));
    let trimmed = text.trim().trim_end_matches('/');
    let lower = trimmed.to_ascii_lowercase();
    let (scheme, rest) = if lower.starts_with("https://") {
        ("https", &trimmed[8..])
    } else if lower.starts_with("http://") {
        ("http", &trimmed[7..])
    } else {
        return Err(bad("is not an http:// or https:// URL"));
    };
    if rest.contains(['?', '#']) {
        return Err(bad("has a query or fragment"));
    }
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.contains('@') {
        return Err(ApiError::input(format!(
            "{what}.registry must not carry credentials; give them in {what}.auth instead"
        )));
    }
    validate_registry(authority).map_err(|e| bad(&format!("does not name a registry host ({e})")))?;
    let authority = authority.to_ascii_lowercase();
    let base = if path.is_empty() {
        format!("{scheme}://{authority}")
    } else {
        format!("{scheme}://{authority}/{path}")
    };
    Ok((normalize_registry(&authority), base))
}

fn auth(what: &str, input: Option<AuthInput>) -> Result<Auth, ApiError> {
    let Some(input) = input else { return Ok(Auth::Anonymous) };
    let given = |v: Option<String>| v.filter(|s| !s.is_empty());
    match (given(input.username), given(input.password), given(input.token)) {
        (None, None, None) => Ok(Auth::Anonymous),
        (None, None, Some(token)) => Ok(Auth::Token(token)),
        (Some(user), Some(password), None) => Ok(Auth::Basic(Credential::new(user, password))),
        (_, _, Some(_)) => Err(ApiError::input(format!(
            "{what}.auth: give either a token or a username and password, not both"
        ))),
        (Some(_), None, None) => Err(ApiError::input(format!("{what}.auth: a username needs a password"))),
        (None, Some(_), None) => Err(ApiError::input(format!("{what}.auth: a password needs a username"))),
    }
}

/// How a job reaches its registries.
pub(crate) struct Access {
    pub endpoints: EndpointMap,
    pub credentials: CredentialStore,
    /// `(URL prefix, Authorization value)` for the caller's bearer tokens.
    pub tokens: Vec<(String, String)>,
    pub bases: Vec<String>,
}

/// Endpoints and credentials for every repository of a job.
pub(crate) fn access(repos: &[&Repo]) -> Result<Access, ApiError> {
    let mut endpoints = EndpointMap::default();
    let mut pairs = Vec::new();
    let mut tokens = Vec::new();
    let mut bases = Vec::new();
    for repo in repos {
        if let Some(other) = endpoints.bases.insert(repo.name.clone(), repo.base.clone()) {
            if other != repo.base {
                return Err(ApiError::input(format!(
                    "{} is given as both {other} and {}: use one base URL per registry",
                    repo.name, repo.base
                )));
            }
        }
        bases.push(repo.base.clone());
        match &repo.auth {
            Auth::Anonymous => {}
            // A whole registry's (no repository) cover all of its repositories.
            Auth::Basic(credential) if repo.repository.is_empty() => {
                pairs.push((repo.name.clone(), credential.clone()))
            }
            Auth::Basic(credential) => {
                pairs.push((format!("{}/{}", repo.name, repo.repository), credential.clone()))
            }
            Auth::Token(token) if repo.repository.is_empty() => {
                tokens.push((format!("{}/v2/", repo.base), format!("Bearer {token}")))
            }
            Auth::Token(token) => {
                tokens.push((format!("{}/v2/{}/", repo.base, repo.repository), format!("Bearer {token}")))
            }
        }
    }
    let credentials = CredentialStore::new(pairs).map_err(|e| ApiError::input(e.to_string()))?;
    Ok(Access { endpoints, credentials, tokens, bases })
}

/// A tag or a digest to look at.
pub(crate) fn reference(value: &str) -> Result<String, ApiError> {
    let value = value.trim();
    if value.contains(':') {
        value.parse::<Digest>().map_err(|e| ApiError::input(format!("reference {value:?}: {e}")))?;
    } else {
        validate_tag(value).map_err(|e| ApiError::input(format!("reference {value:?}: {e}")))?;
    }
    Ok(value.to_owned())
}

/// A diff's typed list of repositories: each checked against the name grammar, the bad
/// one named.
pub(crate) fn repositories(list: Option<Vec<String>>) -> Result<Vec<String>, ApiError> {
    let Some(list) = list else { return Ok(Vec::new()) };
    let most = ferry_core::diff::MAX_LISTED_REPOSITORIES;
    if list.is_empty() || list.len() > most {
        return Err(ApiError::input(format!(
            "repositories: name between 1 and {most} repositories, or leave it out to compare the whole catalog"
        )));
    }
    let mut names = Vec::with_capacity(list.len());
    for (i, name) in list.into_iter().enumerate() {
        let name = name.trim().trim_matches('/').to_owned();
        validate_repository(&name)
            .map_err(|e| ApiError::input(format!("repositories[{i}] {name:?}: {e}")))?;
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

/// Tags to copy; none given, or an empty list, means every tag.
pub(crate) fn tags(tags: Option<Vec<String>>) -> Result<Option<Vec<String>>, ApiError> {
    let tags: Vec<String> = tags.unwrap_or_default().into_iter().map(|t| t.trim().to_owned()).collect();
    for tag in &tags {
        validate_tag(tag).map_err(|e| ApiError::input(format!("tags: {e}")))?;
    }
    Ok((!tags.is_empty()).then_some(tags))
}

/// An options object whose keys must be among `known`; `undefined` and `null` give the
/// defaults.
pub(crate) fn options<T: DeserializeOwned + Default>(
    what: &str,
    value: &JsValue,
    known: &[&str],
) -> Result<T, ApiError> {
    if value.is_undefined() || value.is_null() {
        return Ok(T::default());
    }
    let Some(object) = value.dyn_ref::<js_sys::Object>() else {
        return Err(ApiError::input(format!("{what} must be an object")));
    };
    for key in js_sys::Object::keys(object).iter().filter_map(|k| k.as_string()) {
        if !known.contains(&key.as_str()) {
            return Err(ApiError::input(format!(
                "{what}: unknown option {key:?}; the options are {}",
                known.join(", ")
            )));
        }
    }
    parse(what, value)
}

/// An object read through JSON (functions and signals are read from it separately).
fn parse<T: DeserializeOwned>(what: &str, value: &JsValue) -> Result<T, ApiError> {
    let text = js_sys::JSON::stringify(value)
        .ok()
        .and_then(|t| t.as_string())
        .ok_or_else(|| ApiError::input(format!("{what} must be a plain object")))?;
    serde_json::from_str(&text).map_err(|e| {
        let message = e.to_string();
        let message = message.rsplit_once(" at line ").map_or(message.as_str(), |(m, _)| m);
        ApiError::input(format!("{what}: {message}"))
    })
}

/// The `onProgress` callback of an options object.
pub(crate) fn callback(
    what: &str,
    options: &JsValue,
    key: &str,
) -> Result<Option<js_sys::Function>, ApiError> {
    let value = js::get(options, key);
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    js::function(value).map(Some).ok_or_else(|| ApiError::input(format!("{what}.{key} must be a function")))
}

/// The `signal` of an options object.
pub(crate) fn signal(what: &str, options: &JsValue) -> Result<Option<AbortSignal>, ApiError> {
    let value = js::get(options, "signal");
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    value
        .dyn_into::<AbortSignal>()
        .map(Some)
        .map_err(|_| ApiError::input(format!("{what}.signal must be an AbortSignal")))
}
