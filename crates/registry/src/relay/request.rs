//! The body of `POST /jobs`, read into a job of the core.
//!
//! ```json
//! {"kind": "diff", "source": "http://127.0.0.1:5000[/repo]", "destination": "http://127.0.0.1:5001[/repo-or-prefix]",
//!  "repositories"?: ["a", "b/c"], "details"?: false, "referrers"?: false,
//!  "auth"?: {"source"?: Auth, "destination"?: Auth}}
//! {"kind": "copy", "images": [{"source": "http://127.0.0.1:5000/repo:tag", "destination": "http://127.0.0.1:5001/repo:tag"}],
//!  "referrers"?: "all" | "none" | "sig,sbom,...", "auth"?: {...}}
//! ```
//!
//! A side is a registry's base URL, `http(s)://host[:port]`, followed by a repository (and,
//! for a copy, a tag or digest); a diff side without a repository is the whole registry
//! (the destination's path is then a prefix). A diff of whole registries chooses its
//! repositories one of three ways: every repository of the catalogs (the default), those
//! under the destination's prefix, or a typed list, `repositories` (at most
//! [`MAX_LISTED_REPOSITORIES`] names, each checked against the distribution spec's name
//! grammar: a bad entry is refused with its index and the reason), compared at the
//! destination under its prefix if it has one. Auth is `{"username", "password"}` or
//! `{"token"}` (an identity token). Credentials stay in the job's memory; nothing here
//! prints them (`Debug` hides them) and no error repeats them.

use std::fmt;

use ferry_core::api::EndpointMap;
use ferry_core::auth::{Credential, CredentialStore};
use ferry_core::copy::{Job, Plan, SyncOptions};
use ferry_core::diff::{DiffJob, Target, MAX_LISTED_REPOSITORIES};
use ferry_core::manifest::PlatformFilter;
use ferry_core::plan::CopyTask;
use ferry_core::reference::{validate_repository, Reference};
use ferry_core::referrers::{ReferrerFilter, FILTER_CHOICES};
use ferry_core::retry::RetryPolicy;
use serde::Deserialize;

/// The most images one copy job may name.
pub const MAX_IMAGES: usize = 10_000;

/// A job request as sent.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    kind: String,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    destination: Option<String>,
    #[serde(default)]
    details: bool,
    /// A diff: also compare each tag's referrers. A copy: which referrers travel with the
    /// images (`all`, the default, `none`, or kinds), as `ferry copy --referrers`.
    #[serde(default)]
    referrers: Option<serde_json::Value>,
    #[serde(default)]
    images: Vec<ImagePair>,
    /// A diff of whole registries: these repositories instead of the catalogs'.
    #[serde(default)]
    repositories: Option<Vec<String>>,
    #[serde(default)]
    auth: Sides,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImagePair {
    source: String,
    destination: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Sides {
    source: Option<Auth>,
    destination: Option<Auth>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Auth {
    username: Option<String>,
    password: Option<String>,
    token: Option<String>,
}

/// What a job does, ready to run.
pub enum Work {
    Diff(DiffJob),
    Copy(Job, SyncOptions),
}

impl Work {
    /// `diff` or `copy`.
    pub fn kind(&self) -> &'static str {
        match self {
            Work::Diff(_) => "diff",
            Work::Copy(..) => "copy",
        }
    }

    /// The registries the job names (as references name them), for the log.
    pub fn registries(&self) -> Vec<String> {
        let mut names: Vec<String> = match self {
            Work::Diff(job) => std::iter::once(&job.source)
                .chain(job.destination.as_ref())
                .map(|t| t.registry.clone())
                .collect(),
            Work::Copy(job, _) => job.endpoints.bases.keys().cloned().collect(),
        };
        names.sort();
        names.dedup();
        names
    }
}

impl fmt::Debug for Work {
    /// The kind and the registries only: the job carries credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Work").field("kind", &self.kind()).field("registries", &self.registries()).finish()
    }
}

/// A side's base URL split off: (registry name, base URL, the rest of the path).
fn split_url(what: &str, text: &str) -> Result<(String, String, String), String> {
    let shape = "write it as http(s)://host[:port]/repository";
    let (scheme, rest) = text
        .split_once("://")
        .filter(|(scheme, _)| matches!(*scheme, "http" | "https"))
        .ok_or_else(|| format!("{what} must start with http:// or https:// ({shape})"))?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.contains('@') {
        // The value is not repeated: it holds credentials.
        return Err(format!(
            "{what} must not carry credentials in the URL; send them in auth.{}",
            side_key(what)
        ));
    }
    if authority.is_empty() || path.contains(['?', '#']) || authority.contains(['?', '#']) {
        return Err(format!("{what} {text:?} is not a registry URL ({shape})"));
    }
    ferry_core::reference::validate_registry(authority).map_err(|e| format!("{what} {text:?}: {e}"))?;
    let registry = ferry_core::reference::normalize_registry(authority);
    Ok((registry, format!("{scheme}://{authority}"), path.trim_end_matches('/').to_owned()))
}

fn side_key(what: &str) -> &'static str {
    if what.contains("destination") {
        "destination"
    } else {
        "source"
    }
}

fn credential(what: &str, auth: Option<Auth>) -> Result<Option<Credential>, String> {
    match auth {
        None => Ok(None),
        Some(Auth { username: Some(user), password: Some(password), token: None }) if !user.is_empty() => {
            Ok(Some(Credential::new(user, password)))
        }
        Some(Auth { username: None, password: None, token: Some(token) }) if !token.is_empty() => {
            Ok(Some(Credential::identity_token(token)))
        }
        Some(_) => Err(format!("auth.{what} must be {{\"username\", \"password\"}} or {{\"token\"}}")),
    }
}

/// Reads a request body into the work it asks for, with a jitter `seed`.
pub fn parse(body: &[u8], seed: u64) -> Result<Work, String> {
    let body: Body = serde_json::from_slice(body).map_err(|e| {
        format!(
            "the body is not a job request ({e}); send {{\"kind\": \"diff\", \"source\", \"destination\"}} \
             or {{\"kind\": \"copy\", \"images\": [{{\"source\", \"destination\"}}]}}"
        )
    })?;
    let source_auth = credential("source", body.auth.source)?;
    let destination_auth = credential("destination", body.auth.destination)?;
    let mut endpoints = EndpointMap::default();
    let mut pairs: Vec<(String, Credential)> = Vec::new();
    let mut side = |what: &str, text: &str| -> Result<(String, String), String> {
        let (registry, base, path) = split_url(what, text)?;
        if let Some(known) = endpoints.bases.get(&registry).filter(|known| **known != base) {
            return Err(format!("{what}: {registry} is named as both {known} and {base}; use one scheme"));
        }
        endpoints.bases.insert(registry.clone(), base);
        let auth = if what.contains("destination") { &destination_auth } else { &source_auth };
        if let Some(credential) = auth {
            if !pairs.iter().any(|(key, _)| *key == registry) {
                pairs.push((registry.clone(), credential.clone()));
            }
        }
        Ok((registry, path))
    };
    let work = match body.kind.as_str() {
        "diff" => {
            if !body.images.is_empty() {
                return Err("a diff compares source and destination; `images` belongs to a copy".into());
            }
            let source = body.source.ok_or("a diff needs `source`: a registry or repository URL")?;
            let destination =
                body.destination.ok_or("a diff needs `destination`: a registry or repository URL")?;
            let (source_registry, source_path) = side("source", &source)?;
            let (destination_registry, destination_path) = side("destination", &destination)?;
            for (what, path) in [("source", &source_path), ("destination", &destination_path)] {
                if !path.is_empty() {
                    validate_repository(path).map_err(|e| format!("{what} repository {path:?}: {e}"))?;
                }
            }
            if !source_path.is_empty() && destination_path.is_empty() {
                return Err("the source is a repository, so the destination must name one too".into());
            }
            let referrers = match &body.referrers {
                None => false,
                Some(serde_json::Value::Bool(compare)) => *compare,
                Some(_) => return Err("a diff's `referrers` is true or false".into()),
            };
            let repositories = listed_repositories(body.repositories, &source_path)?;
            let optional = |path: String| (!path.is_empty()).then_some(path);
            let credentials = CredentialStore::new(pairs).map_err(|e| e.to_string())?;
            Work::Diff(DiffJob {
                source: Target { registry: source_registry, repository: optional(source_path) },
                destination: Some(Target {
                    registry: destination_registry,
                    repository: optional(destination_path),
                }),
                reference: None,
                repositories,
                details: body.details,
                referrers,
                credentials,
                endpoints,
                retry: RetryPolicy::default(),
                seed,
            })
        }
        "copy" => {
            if body.repositories.is_some() {
                return Err(
                    "`repositories` belongs to a diff of whole registries; a copy lists `images`".into()
                );
            }
            if body.source.is_some() || body.destination.is_some() {
                return Err(
                    "a copy lists `images`: [{\"source\", \"destination\"}], each an image URL".into()
                );
            }
            if body.images.is_empty() || body.images.len() > MAX_IMAGES {
                return Err(format!("a copy needs between 1 and {MAX_IMAGES} `images`"));
            }
            let referrers = match &body.referrers {
                None => ReferrerFilter::default(),
                Some(serde_json::Value::String(text)) => text
                    .parse::<ReferrerFilter>()
                    .map_err(|e| format!("a copy's `referrers`: {e}; expected {FILTER_CHOICES}"))?,
                Some(_) => return Err(format!("a copy's `referrers` is a string: {FILTER_CHOICES}")),
            };
            let mut tasks = Vec::with_capacity(body.images.len());
            for (i, pair) in body.images.iter().enumerate() {
                let (s_registry, s_path) = side(&format!("images[{i}].source"), &pair.source)?;
                let (d_registry, d_path) = side(&format!("images[{i}].destination"), &pair.destination)?;
                let source = image(&format!("images[{i}].source"), &s_registry, &s_path)?;
                let destination = image(&format!("images[{i}].destination"), &d_registry, &d_path)?;
                if source.tag().is_none() && source.digest().is_none() {
                    return Err(format!("images[{i}].source names no tag or digest: add :tag"));
                }
                let destination = match (destination.tag(), destination.digest(), source.tag()) {
                    (None, None, Some(tag)) => destination.with_tag(tag).map_err(|e| e.to_string())?,
                    _ => destination,
                };
                let platforms = PlatformFilter::default();
                tasks.push(CopyTask { source, destination, platforms, referrers: referrers.clone() });
            }
            let credentials = CredentialStore::new(pairs).map_err(|e| e.to_string())?;
            let job = Job { plan: Plan::Tasks(tasks), credentials, endpoints };
            let options = SyncOptions { seed, ..SyncOptions::default() };
            Work::Copy(job, options)
        }
        other => return Err(format!("kind {other:?} is not a job; use \"diff\" or \"copy\"")),
    };
    Ok(work)
}

/// A diff's typed list of repositories, each checked against the name grammar; only with
/// a whole-registry source.
fn listed_repositories(list: Option<Vec<String>>, source_path: &str) -> Result<Vec<String>, String> {
    let Some(list) = list else { return Ok(Vec::new()) };
    if !source_path.is_empty() {
        return Err(
            "`repositories` lists repositories of a whole registry: give `source` as http(s)://host[:port] alone"
                .into(),
        );
    }
    if list.is_empty() || list.len() > MAX_LISTED_REPOSITORIES {
        return Err(format!(
            "`repositories` names between 1 and {MAX_LISTED_REPOSITORIES} repositories; leave it out to compare the whole catalog"
        ));
    }
    let mut repositories = Vec::with_capacity(list.len());
    for (i, name) in list.into_iter().enumerate() {
        let name = name.trim().trim_matches('/').to_owned();
        validate_repository(&name).map_err(|e| format!("repositories[{i}] {name:?}: {e}"))?;
        if !repositories.contains(&name) {
            repositories.push(name);
        }
    }
    Ok(repositories)
}

fn image(what: &str, registry: &str, path: &str) -> Result<Reference, String> {
    if path.is_empty() {
        return Err(format!("{what} names no repository: write http(s)://host[:port]/repository:tag"));
    }
    Reference::parse(&format!("{registry}/{path}")).map_err(|e| format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_requests_are_named() {
        let cases = [
            (r#"{"kind":"sync"}"#, "not a job"),
            (r#"nope"#, "not a job request"),
            (r#"{"kind":"diff","source":"http://a:1/x"}"#, "needs `destination`"),
            (r#"{"kind":"diff","source":"ftp://a/x","destination":"http://b/x"}"#, "http://"),
            (r#"{"kind":"diff","source":"http://a:1/x","destination":"http://b:1"}"#, "must name one too"),
            (r#"{"kind":"diff","source":"http://a:1/X","destination":"http://b:1/x"}"#, "repository"),
            (
                r#"{"kind":"diff","source":"http://a:1","destination":"http://b:1","extra":1}"#,
                "unknown field",
            ),
            (r#"{"kind":"copy","images":[]}"#, "between 1 and"),
            (
                r#"{"kind":"diff","source":"http://a:1","destination":"http://b:1","referrers":"all"}"#,
                "true or false",
            ),
            (
                r#"{"kind":"copy","referrers":"nope","images":[{"source":"http://a:1/x:1","destination":"http://b:1/x"}]}"#,
                "referrers",
            ),
            (
                r#"{"kind":"copy","images":[{"source":"http://a:1/x","destination":"http://b:1/x"}]}"#,
                "no tag",
            ),
            (
                r#"{"kind":"copy","images":[{"source":"http://a:1/x:1","destination":"https://a:1/x"}]}"#,
                "one scheme",
            ),
            (
                r#"{"kind":"diff","source":"http://a:1","destination":"http://b:1","auth":{"source":{"username":"u"}}}"#,
                "auth.source",
            ),
            (
                r#"{"kind":"diff","source":"http://a:1","destination":"http://b:1","repositories":["ok","Bad/Name"]}"#,
                "repositories[1] \"Bad/Name\"",
            ),
            (
                r#"{"kind":"diff","source":"http://a:1","destination":"http://b:1","repositories":[]}"#,
                "between 1 and",
            ),
            (
                r#"{"kind":"diff","source":"http://a:1/x","destination":"http://b:1/x","repositories":["x"]}"#,
                "whole registry",
            ),
        ];
        for (body, want) in cases {
            let error = parse(body.as_bytes(), 1).unwrap_err();
            assert!(error.contains(want), "{body}: {error}");
        }
    }

    #[test]
    fn credentials_in_a_url_are_refused_without_repeating_them() {
        let body = r#"{"kind":"diff","source":"http://u:hunter2@a:1","destination":"http://b:1"}"#;
        let error = parse(body.as_bytes(), 1).unwrap_err();
        assert!(error.contains("auth.source") && !error.contains("hunter2"), "{error}");
    }

    #[test]
    fn a_copy_keeps_the_tag_and_the_bases() {
        let body = r#"{"kind":"copy","images":[{"source":"http://127.0.0.1:5000/a/b:v1","destination":"http://127.0.0.1:5001/m/b"}],
            "auth":{"source":{"username":"u","password":"hunter2"}}}"#;
        let work = parse(body.as_bytes(), 1).unwrap();
        assert!(!format!("{work:?}").contains("hunter2"));
        let Work::Copy(job, _) = work else { panic!("a copy") };
        let Plan::Tasks(tasks) = &job.plan else { panic!("tasks") };
        assert_eq!(tasks[0].destination.to_string(), "127.0.0.1:5001/m/b:v1");
        assert_eq!(job.endpoints.bases["127.0.0.1:5000"], "http://127.0.0.1:5000");
        assert_eq!(
            job.credentials.lookup("127.0.0.1:5000", "a/b").map(|c| c.password.as_str()),
            Some("hunter2")
        );
        assert!(job.credentials.lookup("127.0.0.1:5001", "m/b").is_none());
    }

    #[test]
    fn a_whole_registry_diff_has_a_prefix() {
        let body = r#"{"kind":"diff","source":"http://127.0.0.1:5000","destination":"http://127.0.0.1:5001/mirror/"}"#;
        let Work::Diff(job) = parse(body.as_bytes(), 1).unwrap() else { panic!("a diff") };
        assert_eq!(job.source.repository, None);
        assert_eq!(job.destination.unwrap().repository.as_deref(), Some("mirror"));
        assert!(job.repositories.is_empty());
    }

    #[test]
    fn a_typed_list_is_trimmed_and_deduplicated() {
        let body = r#"{"kind":"diff","source":"http://127.0.0.1:5000","destination":"http://127.0.0.1:5001",
            "repositories":["library/app", " tools/x/ ", "library/app"]}"#;
        let Work::Diff(job) = parse(body.as_bytes(), 1).unwrap() else { panic!("a diff") };
        assert_eq!(job.repositories, ["library/app", "tools/x"]);
    }
}
