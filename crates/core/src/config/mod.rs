//! Job configuration: image-syncer's files, read as image-syncer reads them, and ferry's
//! own superset.
//!
//! image-syncer (github.com/AliyunContainerService/image-syncer, README.md and
//! `pkg/client/config.go`) takes three files, each JSON or YAML by its extension
//! (`.json`, `.yaml`, `.yml`):
//!
//! - the **auth file** (`--auth`): a map from `registry` or `registry/namespace` to
//!   `{username, password, insecure, identityToken}`. The longest matching key wins.
//!   `"${env}"` / `"$env"` in the username and password name environment variables
//!   (ferry expands them in `identityToken` too);
//! - the **images file** (`--images`): a map from a source to a destination or a list of
//!   destinations. A source is `repo` (every tag), `repo:tag`, `repo:t1,t2`,
//!   `repo@digest` or `repo:/regex/`; a destination may rename the repository and retag;
//! - the older **combined file** (`--config`): `{auth: {...}, images: {...}}`.
//!
//! ferry's own file is the combined file plus a `rules` list (each rule with `source`,
//! `destination`, `tags: {include, exclude, semver}`, `platforms` and `immutable`, a
//! pattern of tags that never move once pushed) and the top-level
//! `proc`, `retries`, `os` and `arch` options, and a `tls` map of per-registry CA and
//! client certificate files. A source that is only a registry host
//! (`registry.example.com:5000`) copies every repository of that registry.
//!
//! The core does no I/O: callers pass the file's name and text, and the environment as a
//! function. Every error names the file, the key and the fix.

mod auth;
mod env;
mod ferry;
mod filter;
mod node;
mod rule;
mod tls;

#[cfg(test)]
mod tests;

use std::fmt;

pub use auth::{AuthConfig, AuthEntry};
pub use env::Env;
pub use ferry::JobConfig;
pub use filter::{TagFilter, TagPattern};
pub use rule::{DestinationSpec, Rule, SourceSpec, TagSelector};
pub use tls::{TlsConfig, TlsEntry};

/// A configuration problem: which file, which key, what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file as the user named it, so the message points at it.
    pub file: String,
    /// The offending key: a rule's source, an auth key, or a field path such as
    /// `rules[2].tags.include[0]`. `None` for problems with the whole file.
    pub key: Option<String>,
    /// What is wrong, in words.
    pub problem: String,
    /// What to write instead: every message says how to fix it.
    pub fix: String,
}

impl ConfigError {
    fn new(file: &str, key: Option<&str>, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_owned(),
            key: key.map(str::to_owned),
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file)?;
        if let Some(key) = &self.key {
            write!(f, "key {key:?}: ")?;
        }
        write!(f, "{} — fix: {}", self.problem, self.fix)
    }
}

impl std::error::Error for ConfigError {}

/// A problem found in one value, before the file and key are known.
#[derive(Debug)]
struct Problem {
    problem: String,
    fix: String,
}

impl Problem {
    fn new(problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Problem { problem: problem.into(), fix: fix.into() }
    }

    fn at(self, file: &str, key: &str) -> ConfigError {
        ConfigError::new(file, Some(key), self.problem, self.fix)
    }
}

/// The syntax of a configuration file, chosen by its extension as image-syncer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.json`.
    Json,
    /// `.yaml` or `.yml`.
    Yaml,
}

impl Format {
    /// `.json` is JSON; `.yaml` and `.yml` are YAML (case-insensitive).
    pub fn from_path(file_name: &str) -> Result<Format, ConfigError> {
        let extension = file_name.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase());
        match extension.as_deref() {
            Some("json") => Ok(Format::Json),
            Some("yaml" | "yml") => Ok(Format::Yaml),
            _ => Err(ConfigError::new(
                file_name,
                None,
                "the file's extension does not say whether it is JSON or YAML",
                "name it with one of the accepted extensions: .json, .yaml or .yml",
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Format::Json => "JSON",
            Format::Yaml => "YAML",
        }
    }
}

/// Parses image-syncer's auth file (`--auth`): registry or registry/namespace → login.
pub fn parse_auth_file(file_name: &str, text: &str, env: Env<'_>) -> Result<AuthConfig, ConfigError> {
    let root = node::parse(file_name, Format::from_path(file_name)?, text)?;
    let doc = Doc { file: file_name, env, strict: false };
    auth::parse(&doc, "the auth file", &root)
}

/// Parses image-syncer's images file (`--images`): source → destination(s). `env` expands
/// `$VAR` in destinations, as image-syncer does.
pub fn parse_images_file(file_name: &str, text: &str, env: Env<'_>) -> Result<Vec<Rule>, ConfigError> {
    let root = node::parse(file_name, Format::from_path(file_name)?, text)?;
    let doc = Doc { file: file_name, env, strict: false };
    rule::parse_images(&doc, "the images file", &root)
}

/// Parses image-syncer's combined `--config` file, or ferry's own superset of it.
pub fn parse_config_file(file_name: &str, text: &str, env: Env<'_>) -> Result<JobConfig, ConfigError> {
    let root = node::parse(file_name, Format::from_path(file_name)?, text)?;
    ferry::parse(file_name, env, &root)
}

/// What every validator needs to know about the document it reads.
struct Doc<'a> {
    file: &'a str,
    env: Env<'a>,
    /// Reject unknown keys (ferry's own format) instead of ignoring them (image-syncer's
    /// formats, whose Go structs ignore unknown fields).
    strict: bool,
}

impl Doc<'_> {
    fn error(&self, key: &str, problem: impl Into<String>, fix: impl Into<String>) -> ConfigError {
        ConfigError::new(self.file, Some(key), problem, fix)
    }

    /// The entries of a map, or an error naming what was found instead.
    fn map<'n>(
        &self,
        key: &str,
        what: &str,
        node: &'n node::Node,
    ) -> Result<&'n [(String, node::Node)], ConfigError> {
        match node {
            node::Node::Map(entries) => Ok(entries),
            other => Err(self.error(
                key,
                format!("{what} must be a map, found {}", other.kind()),
                format!("write {what} as `name: value` pairs"),
            )),
        }
    }

    /// A string value, or an error; `example` shows the fix.
    fn string<'n>(
        &self,
        key: &str,
        what: &str,
        node: &'n node::Node,
        example: &str,
    ) -> Result<&'n str, ConfigError> {
        match node {
            node::Node::Str(s) => Ok(s),
            other => Err(self.error(
                key,
                format!("{what} must be a string, found {}", other.kind()),
                format!("write it as a quoted string, e.g. {example}"),
            )),
        }
    }

    /// One string or a list of strings (each checked by `string`), each with its own key:
    /// `key[i]` for list items, `key` for a single string.
    fn strings<'n>(
        &self,
        key: &str,
        what: &str,
        node: &'n node::Node,
        example: &str,
    ) -> Result<Vec<(String, &'n str)>, ConfigError> {
        match node {
            node::Node::Seq(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let item_key = format!("{key}[{i}]");
                    let value = self.string(&item_key, what, item, example)?;
                    Ok((item_key, value))
                })
                .collect(),
            single => Ok(vec![(key.to_owned(), self.string(key, what, single, example)?)]),
        }
    }

    /// Rejects keys outside `known` in ferry's format; image-syncer's formats ignore them.
    fn check_keys(
        &self,
        key: &str,
        entries: &[(String, node::Node)],
        known: &[&str],
    ) -> Result<(), ConfigError> {
        if !self.strict {
            return Ok(());
        }
        match entries.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            Some((unknown, _)) => Err(self.error(
                key,
                format!("unknown field {unknown:?}"),
                format!("use one of: {}", known.join(", ")),
            )),
            None => Ok(()),
        }
    }

    /// Expands `$VAR` / `${VAR}` in `value`.
    fn expand(&self, key: &str, what: &str, value: &str) -> Result<String, ConfigError> {
        env::expand(value, self.env).map_err(|name| {
            self.error(
                key,
                format!("{what} refers to environment variable {name:?}, which is not set"),
                format!(
                    "set {name} in the environment; a literal '$' cannot be escaped, so pass a value \
                     that contains one through a variable"
                ),
            )
        })
    }
}
