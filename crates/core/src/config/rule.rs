//! Rules: a source, its destinations, and which tags and platforms to copy; and the images
//! map (image-syncer's `--images` file and the `images` key) that declares them.
//!
//! image-syncer's README, "Image sync configuration file":
//! 1. "Neither of the source images url and the destination images url should be empty."
//! 2. "If the source images url contains no tags or digest, all the tags of source
//!    repository will be synced."
//! 3. "The source images url can have more than one tags, which should be seperated by
//!    comma".
//! 4. "The source images url can have at most one digest, and the destination images url
//!    should only have no digest or the same digest at the same time."
//! 5. "The \"tags\" part of source images url can be a regular expression which needs to
//!    have an additional prefix and suffix string `/`."
//! 6. "If the destination images url has no digest or tags, it means the source images
//!    will keep the same tags or digest after being synced."
//! 7. "The destination images url can have more than one tags, the number of which must be
//!    the same with the tags in the source images url".
//! 8. "The \"destination images url\" can also be an array".
//!
//! ferry adds whole-registry sources: a source that is only a registry host.

use std::collections::BTreeSet;

use regex_lite::Regex;

use super::filter::{compile, TagFilter, TagPattern};
use super::node::Node;
use super::{ConfigError, Doc, Problem};
use crate::digest::Digest;
use crate::reference::{
    normalize_registry, split_registry, split_tag, validate_registry, validate_repository, validate_tag,
    Reference, ReferenceError, DOCKER_HUB,
};
use crate::referrers::ReferrerFilter;

const SOURCE_FIX: &str = "write the source as [registry/]repository, optionally followed by :tag, \
    :tag1,tag2, @sha256:<digest> or :/regex/; or write a registry host alone to copy all of its repositories";
const DESTINATION_FIX: &str = "write the destination as [registry/]repository, optionally followed by \
    :tag or :tag1,tag2 (one per source tag)";

/// Which tags (or which single digest) of the source repository a rule copies.
#[derive(Debug, Clone)]
pub enum TagSelector {
    /// Every tag: `repo`.
    All,
    /// These tags, in this order: `repo:t1,t2`.
    List(Vec<String>),
    /// One image by content: `repo@sha256:…`.
    Digest(Digest),
    /// Every tag the pattern matches anywhere (like Go's `regexp.MatchString`): `repo:/regex/`.
    Pattern(Regex),
}

impl TagSelector {
    /// Whether a listed tag is selected. A digest selector selects no tag.
    pub fn matches(&self, tag: &str) -> bool {
        match self {
            TagSelector::All => true,
            TagSelector::List(tags) => tags.iter().any(|t| t == tag),
            TagSelector::Digest(_) => false,
            TagSelector::Pattern(regex) => regex.is_match(tag),
        }
    }
}

/// Patterns compare by their source text.
impl PartialEq for TagSelector {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (TagSelector::All, TagSelector::All) => true,
            (TagSelector::List(a), TagSelector::List(b)) => a == b,
            (TagSelector::Digest(a), TagSelector::Digest(b)) => a == b,
            (TagSelector::Pattern(a), TagSelector::Pattern(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

impl Eq for TagSelector {}

/// Where a rule copies from. `repository` is `None` for a whole-registry rule, whose
/// repositories the planner lists from `/v2/_catalog`; its selector is then `All`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSpec {
    /// Normalised, as in [`Reference::registry`].
    pub registry: String,
    /// The repository path; `None` for every repository of the registry.
    pub repository: Option<String>,
    /// Which tags: a list, a pattern, or all of them.
    pub selector: TagSelector,
}

/// Where a rule copies to. For a repository rule `repository` is the target repository;
/// for a whole-registry rule it is an optional path prefix put before each source
/// repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationSpec {
    /// Normalised, as in [`Reference::registry`].
    pub registry: String,
    /// The target repository, or the path prefix of a whole-registry rule (see above).
    pub repository: Option<String>,
    /// New tags, one per source tag in order; empty keeps the source's tags (or digest).
    pub tags: Vec<String>,
}

/// One copy rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The source as written in the file, to name the rule in messages.
    pub source_text: String,
    /// What to copy.
    pub source: SourceSpec,
    /// Where to copy it: image-syncer lets one source go to a list of destinations.
    pub destinations: Vec<DestinationSpec>,
    /// Which of the source's tags to copy.
    pub tags: TagFilter,
    /// `os/arch[/variant]` to copy from a multi-platform index; empty copies all.
    pub platforms: Vec<String>,
    /// Tags that never move once pushed: a listed tag that matches and that the
    /// destination's tag list already holds is not checked again on either side. Only
    /// rules that list tags (all, or a `/regex/`) read the destination's tag list.
    pub immutable: Option<TagPattern>,
    /// Which referrers travel with the rule's images (`referrers:` in ferry's file);
    /// `None` leaves it to the job's `--referrers`.
    pub referrers: Option<ReferrerFilter>,
}

/// Reads an images map: source → destination or list of destinations, in file order.
/// `what` names the map in messages.
pub(super) fn parse_images(doc: &Doc<'_>, what: &str, node: &Node) -> Result<Vec<Rule>, ConfigError> {
    let Node::Map(entries) = node else {
        return Err(ConfigError::new(
            doc.file,
            None,
            format!("{what} must be a map from source to destination, found {}", node.kind()),
            "write one `source: destination` pair per line, e.g. quay.io/coreos/etcd: registry.example.com/coreos/etcd",
        ));
    };
    entries
        .iter()
        .map(|(source_text, destination)| {
            let source = parse_source(source_text).map_err(|p| p.at(doc.file, source_text))?;
            let destinations = parse_destinations(doc, source_text, &source, destination)?;
            Ok(Rule {
                source_text: source_text.clone(),
                source,
                destinations,
                tags: TagFilter::default(),
                platforms: Vec::new(),
                immutable: None,
                referrers: None,
            })
        })
        .collect()
}

/// Reads a destination string or list at `key`, expanding `$VAR` in each (as image-syncer
/// does) and dropping repeats (image-syncer's `RemoveDuplicateItems`).
pub(super) fn parse_destinations(
    doc: &Doc<'_>,
    key: &str,
    source: &SourceSpec,
    node: &Node,
) -> Result<Vec<DestinationSpec>, ConfigError> {
    let texts: Vec<&str> = match node {
        Node::Str(text) => vec![text],
        Node::Seq(items) if !items.is_empty() => items
            .iter()
            .map(|item| match item {
                Node::Str(text) => Ok(text.as_str()),
                other => Err(doc.error(
                    key,
                    format!("each destination must be a string, found {}", other.kind()),
                    "write the list as strings, e.g. [registry.example.com/team/app]",
                )),
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(doc.error(
                key,
                format!(
                    "the destination must be a string or a non-empty list of strings, found {}",
                    other.kind()
                ),
                "write `source: destination`, or a list of destinations; image-syncer's default \
                 --registry/--namespace destination is not supported",
            ))
        }
    };
    let mut destinations = Vec::new();
    let mut seen = BTreeSet::new();
    for text in texts {
        let expanded = doc.expand(key, "the destination", text)?;
        let destination = parse_destination(&expanded, source).map_err(|p| {
            Problem::new(format!("destination {expanded:?}: {}", p.problem), p.fix).at(doc.file, key)
        })?;
        let identity =
            (destination.registry.clone(), destination.repository.clone(), destination.tags.clone());
        if seen.insert(identity) {
            destinations.push(destination);
        }
    }
    Ok(destinations)
}

/// Parses a source: `[registry/]repository[:tag[,tag…] | @digest | :/regex/]`, or a
/// registry host alone.
pub(super) fn parse_source(text: &str) -> Result<SourceSpec, Problem> {
    if text.is_empty() {
        return Err(Problem::new("the source is empty", SOURCE_FIX));
    }
    reject_url(text)?;
    if let Some(registry) = registry_only(text) {
        validate_registry(registry).map_err(|e| Problem::new(e.to_string(), SOURCE_FIX))?;
        return Ok(SourceSpec {
            registry: normalize_registry(registry),
            repository: None,
            selector: TagSelector::All,
        });
    }
    let (name, selector) = if let Some((name, pattern)) = split_pattern(text)? {
        let regex = compile(pattern).map_err(|e| {
            Problem::new(
                format!("invalid tag pattern /{pattern}/: {e}"),
                "write a regular expression between the slashes (regex-lite syntax, like Go's RE2), \
                 e.g. quay.io/coreos/etcd:/^v3\\./",
            )
        })?;
        (name, TagSelector::Pattern(regex))
    } else if let Some((name, digest)) = text.split_once('@') {
        (without_tag(name)?, TagSelector::Digest(parse_digest(digest)?))
    } else {
        match split_tag(text) {
            (name, Some(tags)) => (name, TagSelector::List(parse_tags(tags)?)),
            (name, None) => (name, TagSelector::All),
        }
    };
    let (registry, repository) = parse_name(name, SOURCE_FIX)?;
    Ok(SourceSpec { registry, repository: Some(repository), selector })
}

/// Parses one destination of `source` (already `$VAR`-expanded).
fn parse_destination(text: &str, source: &SourceSpec) -> Result<DestinationSpec, Problem> {
    if text.is_empty() {
        return Err(Problem::new(
            "the destination is empty",
            "write a destination such as registry.example.com/team/app; image-syncer's default \
             --registry/--namespace destination is not supported",
        ));
    }
    reject_url(text)?;
    if source.repository.is_none() {
        return parse_registry_destination(text);
    }
    if split_pattern(text)?.is_some() {
        return Err(Problem::new(
            "a destination cannot be a tag pattern",
            "drop the /pattern/: each selected tag is copied under its own name",
        ));
    }
    if let Some((name, digest)) = text.split_once('@') {
        let digest = parse_digest(digest)?;
        match &source.selector {
            TagSelector::Digest(pinned) if *pinned == digest => {}
            TagSelector::Digest(pinned) => {
                return Err(Problem::new(
                    format!("its digest {digest} differs from the source's {pinned}"),
                    "drop the digest from the destination: a copy keeps the source's digest",
                ))
            }
            _ => {
                return Err(Problem::new(
                    "it names a digest but the source does not",
                    "drop the @digest from the destination",
                ))
            }
        }
        let (registry, repository) = parse_name(without_tag(name)?, DESTINATION_FIX)?;
        return Ok(DestinationSpec { registry, repository: Some(repository), tags: Vec::new() });
    }
    let (name, tags) = split_tag(text);
    let tags = match tags {
        Some(tags) => parse_tags(tags)?,
        None => Vec::new(),
    };
    check_tag_count(&source.selector, tags.len())?;
    let (registry, repository) = parse_name(name, DESTINATION_FIX)?;
    Ok(DestinationSpec { registry, repository: Some(repository), tags })
}

/// README rules 6 and 7: no destination tags (keep the source's), or one per source tag.
fn check_tag_count(selector: &TagSelector, count: usize) -> Result<(), Problem> {
    let unknown = |what: &str| {
        Problem::new(
            format!("it names tags, but the source selects {what}, so their number is unknown"),
            "drop the destination's tags: each tag is copied under its own name",
        )
    };
    match (selector, count) {
        (_, 0) | (TagSelector::Digest(_), 1) => Ok(()),
        (TagSelector::List(source), n) if n == source.len() => Ok(()),
        (TagSelector::List(source), n) => Err(Problem::new(
            format!("it has {} but the source has {}", tags(n), tags(source.len())),
            "give the destination no tags (to keep the source's) or exactly one per source tag, in the same order",
        )),
        (TagSelector::Digest(_), n) => Err(Problem::new(
            format!("it has {} but the source names a single digest", tags(n)),
            "give the destination at most one tag",
        )),
        (TagSelector::All, _) => Err(unknown("all tags")),
        (TagSelector::Pattern(_), _) => Err(unknown("tags by pattern")),
    }
}

fn tags(n: usize) -> String {
    if n == 1 {
        "1 tag".to_owned()
    } else {
        format!("{n} tags")
    }
}

/// A whole-registry rule's destination: `registry[/prefix]`.
fn parse_registry_destination(text: &str) -> Result<DestinationSpec, Problem> {
    let fix =
        "write a registry host, optionally followed by a path prefix, e.g. registry.example.com:5000/mirror";
    let trimmed = text.strip_suffix('/').unwrap_or(text);
    let (host, prefix) = match trimmed.split_once('/') {
        Some((host, prefix)) => (host, Some(prefix)),
        None => (trimmed, None),
    };
    if !looks_like_host(host) {
        return Err(Problem::new(
            format!("the source is a whole registry, so the destination must start with a registry host, not {host:?}"),
            fix,
        ));
    }
    validate_registry(host).map_err(|e| Problem::new(e.to_string(), fix))?;
    if let Some(prefix) = prefix {
        validate_repository(prefix).map_err(|e| Problem::new(e.to_string(), fix))?;
    }
    Ok(DestinationSpec {
        registry: normalize_registry(host),
        repository: prefix.map(str::to_owned),
        tags: Vec::new(),
    })
}

/// The registry of a source that names no repository: a host with a `.`, `localhost` or a
/// bracketed IPv6 address, optionally with a numeric port (`registry.example.com:5000`),
/// or anything followed by a single `/` (`myregistry/`). Docker reads a slash-free
/// `quay.io` as the Docker Hub image `library/quay.io`; nobody means that in a sync rule.
fn registry_only(text: &str) -> Option<&str> {
    let host = text.strip_suffix('/').unwrap_or(text);
    if host.is_empty() || host.contains(['/', '@']) {
        return None;
    }
    if text.ends_with('/') || host.starts_with('[') {
        return Some(host);
    }
    let numeric_port = match host.split_once(':') {
        Some((_, port)) => !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()),
        None => true,
    };
    (numeric_port && looks_like_host(host)).then_some(host)
}

/// Docker's test for a registry component, on the host part: it contains a `.`, is
/// `localhost`, or is an IPv6 literal.
fn looks_like_host(registry: &str) -> bool {
    let host = registry.split(':').next().unwrap_or(registry);
    registry.starts_with('[') || host.contains('.') || host.eq_ignore_ascii_case("localhost")
}

/// Splits `name:/pattern/`. A repository name never contains `:/`, so the first one
/// starts the pattern.
fn split_pattern(text: &str) -> Result<Option<(&str, &str)>, Problem> {
    let Some(colon) = text.find(":/") else {
        return Ok(None);
    };
    let (Some(name), Some(slashed)) = (text.get(..colon), text.get(colon + 1..)) else {
        return Ok(None);
    };
    match slashed.get(1..).and_then(|p| p.strip_suffix('/')) {
        Some("") => Err(Problem::new(
            "the tag pattern // is empty",
            "omit the tag to copy every tag, or write a pattern such as :/^v1\\./",
        )),
        Some(pattern) => Ok(Some((name, pattern))),
        None => Err(Problem::new(
            format!("the tag pattern {slashed:?} is not closed: a pattern starts and ends with '/'"),
            "close the pattern with '/', e.g. quay.io/coreos/etcd:/^v3\\./",
        )),
    }
}

/// Sources and destinations are image names; a URL scheme (`https://`) is a common slip.
fn reject_url(text: &str) -> Result<(), Problem> {
    match text.split_once("://") {
        Some((scheme, rest)) if !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphabetic()) => {
            Err(Problem::new(
                format!("{scheme:?} is a URL scheme; image names have none"),
                format!("drop the scheme: {rest:?}"),
            ))
        }
        _ => Ok(()),
    }
}

/// `name` of `name@digest`, which must not also carry a tag.
fn without_tag(name: &str) -> Result<&str, Problem> {
    match split_tag(name) {
        (name, None) => Ok(name),
        (_, Some(tag)) => Err(Problem::new(
            format!("it names both tag {tag:?} and a digest"),
            "keep only the digest (it already names one image) or only the tag",
        )),
    }
}

fn parse_digest(text: &str) -> Result<Digest, Problem> {
    text.parse().map_err(|e: crate::digest::DigestError| {
        Problem::new(e.to_string(), "write the digest as sha256:<64 lowercase hex digits>")
    })
}

/// `t1,t2,…`: each a valid tag. Repeats are kept: a repeated source tag may map to two
/// destination tags.
fn parse_tags(list: &str) -> Result<Vec<String>, Problem> {
    list.split(',')
        .map(|tag| {
            validate_tag(tag).map(|()| tag.to_owned()).map_err(|e| {
                Problem::new(e.to_string(), "separate tags with commas and no spaces, e.g. :v1.0,v2.0")
            })
        })
        .collect()
}

/// Validates and normalises `[registry/]repository` as Docker does.
fn parse_name(name: &str, fix: &str) -> Result<(String, String), Problem> {
    let (registry, path) = split_registry(name);
    if path.is_empty() {
        let missing = ReferenceError::MissingRepository { input: name.to_owned() };
        return Err(Problem::new(missing.to_string(), fix));
    }
    Reference::new(registry.unwrap_or(DOCKER_HUB), path, None, None)
        .map(|r| (r.registry().to_owned(), r.repository().to_owned()))
        .map_err(|e| Problem::new(e.to_string(), fix))
}
