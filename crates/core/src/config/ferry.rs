//! The combined file: image-syncer's `--config` (`auth` and `images`) and ferry's superset
//! (`rules`, `proc`, `retries`, `os`, `arch`, `tls`, `state`).
//!
//! ```yaml
//! auth:
//!   quay.io: {username: ferry, password: "${QUAY_PASSWORD}"}
//! images:
//!   quay.io/coreos/etcd:v3.5.0: registry.example.com/coreos/etcd
//! rules:
//!   - source: docker.io/library/nginx
//!     destination: [registry.example.com/library/nginx]
//!     tags: {include: ["^1\\."], exclude: ["-rc"], semver: ">=1.25, <2"}
//!     platforms: [linux/amd64, linux/arm64/v8]
//!     immutable: "^1\\.[0-9]+\\.[0-9]+$"   # released tags never move: not checked again
//!     referrers: sig,application/spdx+json    # all (the default), none, or kinds
//! proc: 6
//! retries: 3
//! tls:
//!   registry.example.com: {ca: /etc/ferry/private-ca.crt}
//! state: /var/lib/ferry/state.json   # upload sessions kept across runs (`--state`)
//! ```
//!
//! A file that uses any of ferry's keys is read strictly: unknown fields anywhere are
//! rejected. A plain image-syncer file keeps image-syncer's tolerance inside `auth`.
//! Unknown top-level keys are always rejected, since a misspelt `rules` would otherwise
//! silently copy nothing.

use super::filter::{self, TagFilter, TagPattern};
use super::node::Node;
use super::rule::{self, Rule, TagSelector};
use super::tls::{self, TlsConfig};
use super::{auth, AuthConfig, ConfigError, Doc, Env};
use crate::referrers::ReferrerFilter;

const TOP_LEVEL: [&str; 9] = ["auth", "images", "rules", "proc", "retries", "os", "arch", "tls", "state"];
const FERRY_ONLY: [&str; 7] = ["rules", "proc", "retries", "os", "arch", "tls", "state"];
const RULE_FIELDS: [&str; 6] = ["source", "destination", "tags", "platforms", "immutable", "referrers"];

/// A whole job: logins, rules (the `images` map first, then `rules`, each in file order)
/// and the run options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobConfig {
    /// The logins: the `auth` key, or image-syncer's separate auth file.
    pub auth: AuthConfig,
    /// What to copy, in the order the job plans it.
    pub rules: Vec<Rule>,
    /// How many images to copy at once (image-syncer's `--proc`, default 5 there).
    pub proc: Option<usize>,
    /// How many times to retry a failed request or transfer, and how many rounds run the
    /// images that still failed transiently again (image-syncer's `--retries`, default 2
    /// there).
    pub retries: Option<u32>,
    /// Only copy these operating systems from multi-platform images (`--os`); empty: all.
    pub os: Vec<String>,
    /// Only copy these architectures from multi-platform images (`--arch`); empty: all.
    pub arch: Vec<String>,
    /// Per-registry CA and client certificate files (`tls`).
    pub tls: TlsConfig,
    /// The file that keeps upload sessions and blobs seen across runs (`state`, the
    /// `--state` flag's default), as written: relative to the config file's folder.
    pub state: Option<String>,
}

pub(super) fn parse(file: &str, env: Env<'_>, root: &Node) -> Result<JobConfig, ConfigError> {
    let Node::Map(entries) = root else {
        return Err(ConfigError::new(
            file,
            None,
            format!("the file must be a map with `auth` and `images` or `rules`, found {}", root.kind()),
            "start the file with `auth:`, `images:` or `rules:` at the top level",
        ));
    };
    if let Some((unknown, _)) = entries.iter().find(|(key, _)| !TOP_LEVEL.contains(&key.as_str())) {
        return Err(ConfigError::new(
            file,
            Some(unknown),
            format!("unknown top-level key {unknown:?}"),
            format!("use one of: {}", TOP_LEVEL.join(", ")),
        ));
    }
    let strict = entries.iter().any(|(key, _)| FERRY_ONLY.contains(&key.as_str()));
    let doc = Doc { file, env, strict };
    let mut job = JobConfig::default();
    let (mut images, mut rules) = (Vec::new(), Vec::new());
    for (key, value) in entries {
        if *value == Node::Null {
            continue;
        }
        match key.as_str() {
            "auth" => job.auth = auth::parse(&doc, "`auth`", value)?,
            "images" => images = rule::parse_images(&doc, "`images`", value)?,
            "rules" => rules = parse_rules(&doc, value)?,
            "proc" => job.proc = Some(whole_number(&doc, key, value, 1, "proc: 5")?),
            "retries" => job.retries = Some(whole_number(&doc, key, value, 0, "retries: 2")?),
            "os" => job.os = names(&doc, key, value, "os: [linux]")?,
            "tls" => job.tls = tls::parse(&doc, value)?,
            "state" => {
                let path = doc.string(key, "the state file", value, "state: /var/lib/ferry/state.json")?;
                job.state = Some(path.to_owned());
            }
            _ => job.arch = names(&doc, key, value, "arch: [amd64, arm64]")?,
        }
    }
    job.rules = images.into_iter().chain(rules).collect();
    Ok(job)
}

fn parse_rules(doc: &Doc<'_>, node: &Node) -> Result<Vec<Rule>, ConfigError> {
    let Node::Seq(items) = node else {
        return Err(doc.error(
            "rules",
            format!("`rules` must be a list, found {}", node.kind()),
            "start each rule with `- source: ...` on its own line",
        ));
    };
    items.iter().enumerate().map(|(i, item)| parse_rule(doc, &format!("rules[{i}]"), item)).collect()
}

fn parse_rule(doc: &Doc<'_>, key: &str, node: &Node) -> Result<Rule, ConfigError> {
    let fields = doc.map(key, "a rule", node)?;
    doc.check_keys(key, fields, &RULE_FIELDS)?;
    let field =
        |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v).filter(|v| **v != Node::Null);
    let required = |name: &str, example: &str| {
        field(name).ok_or_else(|| {
            doc.error(key, format!("the rule has no `{name}`"), format!("add it, e.g. {example}"))
        })
    };

    let source_key = format!("{key}.source");
    let source_node = required("source", "source: quay.io/coreos/etcd")?;
    let source_text = doc.string(&source_key, "the source", source_node, "source: quay.io/coreos/etcd")?;
    let source = rule::parse_source(source_text).map_err(|p| p.at(doc.file, &source_key))?;

    let destination = required("destination", "destination: registry.example.com/coreos/etcd")?;
    let destinations = rule::parse_destinations(doc, &format!("{key}.destination"), &source, destination)?;

    let tags_key = format!("{key}.tags");
    let tags = match field("tags") {
        Some(tags) => filter::parse(doc, &tags_key, tags)?,
        None => TagFilter::default(),
    };
    if !tags.is_empty() && matches!(source.selector, TagSelector::Digest(_)) {
        return Err(doc.error(
            &tags_key,
            "the source names a digest, so there are no tags to filter",
            "remove `tags`, or name the repository without a digest",
        ));
    }

    let platforms_key = format!("{key}.platforms");
    let mut platforms = Vec::new();
    if let Some(node) = field("platforms") {
        for (at, platform) in doc.strings(&platforms_key, "a platform", node, "\"linux/arm64/v8\"")? {
            let parts: Vec<&str> = platform.split('/').collect();
            if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| is_name(p)) {
                return Err(doc.error(
                    &at,
                    format!("invalid platform {platform:?}: expected os/arch or os/arch/variant"),
                    "write it in lowercase as Go names it, e.g. linux/amd64 or linux/arm64/v8",
                ));
            }
            platforms.push(platform.to_owned());
        }
    }

    let immutable_key = format!("{key}.immutable");
    let immutable = match field("immutable") {
        None => None,
        Some(_) if !matches!(source.selector, TagSelector::All | TagSelector::Pattern(_)) => {
            return Err(doc.error(
                &immutable_key,
                "the source names its tags or a digest, so no tag list is read to skip them by",
                "remove `immutable`, or name the repository without tags",
            ))
        }
        Some(node) => {
            let example = "immutable: \"^v[0-9]+\\\\.[0-9]+\\\\.[0-9]+$\"";
            let pattern = doc.string(&immutable_key, "immutable", node, example)?;
            Some(TagPattern::new(pattern).map_err(|e| {
                doc.error(
                    &immutable_key,
                    format!("invalid tag pattern {pattern:?}: {e}"),
                    "write a regular expression (regex-lite syntax, like Go's RE2), e.g. \"^v1\\\\.\"",
                )
            })?)
        }
    };

    let referrers_key = format!("{key}.referrers");
    let referrers = match field("referrers") {
        None => None,
        Some(node) => {
            let value = doc.string(&referrers_key, "referrers", node, "referrers: all")?;
            Some(value.parse::<ReferrerFilter>().map_err(|e| {
                doc.error(
                    &referrers_key,
                    e.to_string(),
                    "write e.g. `referrers: all`, `referrers: none` or `referrers: sig,sbom`",
                )
            })?)
        }
    };

    Ok(Rule {
        source_text: source_text.to_owned(),
        source,
        destinations,
        tags,
        platforms,
        immutable,
        referrers,
    })
}

/// An os, architecture or variant name: `[a-z0-9._-]+`.
fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
}

/// A list of os or architecture names (a single name is accepted too).
fn names(doc: &Doc<'_>, key: &str, node: &Node, example: &str) -> Result<Vec<String>, ConfigError> {
    doc.strings(key, "a name", node, example)?
        .into_iter()
        .map(|(at, name)| match is_name(name) {
            true => Ok(name.to_owned()),
            false => Err(doc.error(
                &at,
                format!("invalid name {name:?}: expected lowercase letters, digits, '.', '_' or '-'"),
                format!("write names as Go spells them, e.g. {example}"),
            )),
        })
        .collect()
}

/// A whole number of at least `min` that fits `T`.
fn whole_number<T: TryFrom<i128>>(
    doc: &Doc<'_>,
    key: &str,
    node: &Node,
    min: i128,
    example: &str,
) -> Result<T, ConfigError> {
    match node {
        Node::Int(n) if *n >= min => T::try_from(*n).map_err(|_| {
            doc.error(key, format!("{n} is too large"), format!("use a smaller number, e.g. {example}"))
        }),
        other => Err(doc.error(
            key,
            format!("expected a whole number of at least {min}, found {}", describe(other)),
            format!("write e.g. {example}"),
        )),
    }
}

fn describe(node: &Node) -> String {
    match node {
        Node::Int(n) => n.to_string(),
        other => other.kind().to_owned(),
    }
}
