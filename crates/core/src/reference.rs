//! Image references: `[registry[:port]/]repository[:tag][@digest]`.
//!
//! The grammar is distribution/reference's (`reference.go`, `regexp.go`), with Docker's
//! normalisation (`normalize.go`):
//!
//! ```text
//! reference        := name [ ":" tag ] [ "@" digest ]
//! name             := [domain '/'] remote-name
//! domain           := host [':' port-number]
//! host             := domain-name | IPv4address | \[ IPv6address \]
//! domain-name      := domain-component ['.' domain-component]*
//! domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
//! port-number      := /[0-9]+/
//! path-component   := /[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*/
//! tag              := /[\w][\w.-]{0,127}/
//! ```
//!
//! The OCI distribution spec fixes the repository name as
//! `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*` and the tag as
//! `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`; distribution limits the whole name to 255
//! characters (`NameTotalLengthMax`). The validators below are hand-written scanners for
//! exactly these rules: linear, allocation-free and unable to panic.

use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, DigestError};

/// The canonical name of Docker Hub.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that serves Docker Hub's registry API.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// Names that all mean Docker Hub. `index.docker.io` is distribution's
/// `legacyDefaultDomain`; `registry.hub.docker.com` is what image-syncer's auth examples
/// use for Docker Hub.
const DOCKER_HUB_ALIASES: [&str; 4] =
    [DOCKER_HUB, "index.docker.io", DOCKER_HUB_API, "registry.hub.docker.com"];
/// distribution's `officialRepoPrefix`: one-component Docker Hub names live here.
const OFFICIAL_PREFIX: &str = "library/";
/// distribution's `NameTotalLengthMax`: registry + "/" + repository.
pub const NAME_MAX_LEN: usize = 255;
/// A tag is `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`: at most 128 characters.
pub const TAG_MAX_LEN: usize = 128;
/// What `manifest_reference` asks for when a reference names neither tag nor digest.
const DEFAULT_TAG: &str = "latest";

/// Why a string is not a valid image reference (or part of one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceError {
    /// Nothing was given.
    #[error(
        "image reference is empty: write [registry[:port]/]repository[:tag][@digest], \
         e.g. docker.io/library/nginx:1.27"
    )]
    Empty,
    /// Not a host name, IPv4 or bracketed IPv6 address.
    #[error(
        "registry {registry:?} is not a valid host: use dot-separated labels of letters, digits \
         and inner '-', or an IPv6 address in brackets, optionally followed by :port \
         (e.g. registry.example.com:5000 or [::1]:5000)"
    )]
    InvalidRegistry {
        /// The registry part as given.
        registry: String,
    },
    /// The port is not a number in 1..=65535.
    #[error("registry {registry:?} has an invalid port: write a number from 1 to 65535 after the ':'")]
    InvalidPort {
        /// The registry part as given, port included.
        registry: String,
    },
    /// A registry alone names no image.
    #[error(
        "{input:?} has no repository path: name one after the registry, e.g. registry.example.com/team/app"
    )]
    MissingRepository {
        /// The reference as given.
        input: String,
    },
    /// The spec's name grammar has no uppercase; Docker refuses it too, so say the fix.
    #[error("repository name must be lowercase: {repository:?}; write {lowercase:?}")]
    RepositoryUppercase {
        /// The repository as given.
        repository: String,
        /// The same, lowercased: what the user most likely meant.
        lowercase: String,
    },
    /// A path component breaks distribution-spec's `<name>` grammar:
    /// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
    #[error(
        "repository {repository:?} has an invalid path component {component:?}: each '/'-separated \
         component must match [a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)* (lowercase letters and digits \
         joined by '.', '_', '__' or dashes)"
    )]
    InvalidRepository {
        /// The repository as given.
        repository: String,
        /// The first component that does not match.
        component: String,
    },
    /// Longer than [`NAME_MAX_LEN`].
    #[error(
        "image name {name:?} is {length} characters long; registry + '/' + repository may be at \
         most 255: shorten the repository path"
    )]
    NameTooLong {
        /// registry + `/` + repository.
        name: String,
        /// Its length in characters.
        length: usize,
    },
    /// Breaks the spec's tag grammar `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
    #[error(
        "tag {tag:?} is invalid: a tag starts with a letter, digit or '_' and continues with \
         letters, digits, '_', '.' or '-' ([a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}})"
    )]
    InvalidTag {
        /// The tag as given.
        tag: String,
    },
    /// Longer than [`TAG_MAX_LEN`].
    #[error("tag {tag:?} is {length} characters long; tags may be at most 128 characters")]
    TagTooLong {
        /// The tag as given.
        tag: String,
        /// Its length in characters.
        length: usize,
    },
    /// Docker's reference grammar refuses a 64-hex-character name ("cannot specify
    /// 64-byte hexadecimal strings"): it would be taken for an image ID.
    #[error(
        "{input:?} is a 64-character hex string, which Docker reserves for image IDs: to name an \
         image by content write repository@sha256:{input}"
    )]
    LooksLikeImageId {
        /// The reference as given.
        input: String,
    },
    /// The part after `@` is not a digest.
    #[error("invalid digest in image reference: {0}")]
    Digest(#[from] DigestError),
}

/// A parsed, validated and normalised image reference.
///
/// `registry` is normalised (lowercase host, Docker Hub aliases folded into
/// [`DOCKER_HUB`]); a one-component Docker Hub repository gets its `library/` prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses `[registry[:port]/]repository[:tag][@digest]` with Docker's normalisation:
    /// `nginx` is `docker.io/library/nginx` (tag left unset; see
    /// [`Reference::manifest_reference`]).
    pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        // normalize.go: "invalid repository name (%s), cannot specify 64-byte hexadecimal strings".
        if input.len() == 64 && input.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(ReferenceError::LooksLikeImageId { input: input.to_owned() });
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest.parse::<Digest>()?)),
            None => (input, None),
        };
        let (name, tag) = split_tag(rest);
        let (registry, path) = split_registry(name);
        if path.is_empty() {
            return Err(ReferenceError::MissingRepository { input: input.to_owned() });
        }
        Reference::new(registry.unwrap_or(DOCKER_HUB), path, tag, digest)
    }

    /// Builds a reference from its parts, validating and normalising each one.
    pub fn new(
        registry: &str,
        repository: &str,
        tag: Option<&str>,
        digest: Option<Digest>,
    ) -> Result<Reference, ReferenceError> {
        validate_registry(registry)?;
        validate_repository(repository)?;
        if let Some(tag) = tag {
            validate_tag(tag)?;
        }
        let registry = normalize_registry(registry);
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("{OFFICIAL_PREFIX}{repository}")
        } else {
            repository.to_owned()
        };
        let length = registry.len() + 1 + repository.len();
        if length > NAME_MAX_LEN {
            return Err(ReferenceError::NameTooLong { name: format!("{registry}/{repository}"), length });
        }
        Ok(Reference { registry, repository, tag: tag.map(str::to_owned), digest })
    }

    /// The normalised registry, e.g. `docker.io` or `localhost:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path, e.g. `library/nginx`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if the reference names one (`:tag`); [`Reference::manifest_reference`]
    /// says what to fetch when it does not.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if the reference pins one (`@sha256:…`): it wins over the tag when
    /// fetching, as in Docker.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The same repository at `tag`. The digest is dropped: it would pin another image.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        validate_tag(tag)?;
        Ok(Reference { tag: Some(tag.to_owned()), digest: None, ..self.clone() })
    }

    /// The same repository pinned to `digest`. The tag is dropped.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference { tag: None, digest: Some(digest), ..self.clone() }
    }

    /// The `<reference>` of `/v2/<name>/manifests/<reference>`: the digest if there is
    /// one (it is exact), else the tag, else `latest`.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.clone(),
            (None, None) => DEFAULT_TAG.to_owned(),
        }
    }

    /// The host to send requests to: `registry-1.docker.io` for Docker Hub.
    pub fn api_host(&self) -> &str {
        api_host(&self.registry)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// The canonical form: `registry/repository[:tag][@digest]`.
impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// The host that serves `registry`'s API: `registry-1.docker.io` for Docker Hub (under
/// any of its names), otherwise `registry` itself.
pub fn api_host(registry: &str) -> &str {
    if is_docker_hub(registry) {
        DOCKER_HUB_API
    } else {
        registry
    }
}

/// Lowercases `host` and folds Docker Hub's aliases (`index.docker.io`,
/// `registry-1.docker.io`, `registry.hub.docker.com`) into `docker.io`.
pub fn normalize_registry(host: &str) -> String {
    if is_docker_hub(host) {
        DOCKER_HUB.to_owned()
    } else {
        host.to_ascii_lowercase()
    }
}

fn is_docker_hub(host: &str) -> bool {
    DOCKER_HUB_ALIASES.iter().any(|alias| alias.eq_ignore_ascii_case(host))
}

/// Splits a name into its registry (if it names one) and the rest, by Docker's rule
/// (`splitDockerDomain`): the first `/`-separated component is a registry iff it contains
/// `.` or `:` or is exactly `localhost`. `nginx` and `user/app` have no registry.
pub fn split_registry(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => (Some(first), rest),
        _ => (None, name),
    }
}

/// Splits `name[:tag]`: the tag follows the last `:` after the last `/`, so a registry
/// port (`localhost:5000/app`) is never mistaken for a tag.
pub(crate) fn split_tag(input: &str) -> (&str, Option<&str>) {
    let path_start = input.rfind('/').map_or(0, |slash| slash + 1);
    match input.rfind(':') {
        Some(colon) if colon >= path_start => match (input.get(..colon), input.get(colon + 1..)) {
            (Some(name), Some(tag)) => (name, Some(tag)),
            _ => (input, None),
        },
        _ => (input, None),
    }
}

/// Whether `registry` is the local machine: `localhost`, `127.0.0.0/8` or `[::1]`, with or
/// without a port. Registries on loopback are usually plain HTTP.
pub fn is_localhost(registry: &str) -> bool {
    let (host, _) = split_port(registry);
    host.eq_ignore_ascii_case("localhost") || host == "[::1]" || is_loopback_v4(host)
}

fn is_loopback_v4(host: &str) -> bool {
    let mut octets = host.split('.');
    let first = octets.next();
    let rest: Vec<&str> = octets.collect();
    first == Some("127")
        && rest.len() == 3
        && rest.iter().all(|o| (1..=3).contains(&o.len()) && o.parse::<u8>().is_ok())
}

/// Splits `host[:port]`, where `host` may be a bracketed IPv6 address. When the text after
/// a `]` is neither empty nor a `:port`, the whole input is returned as the host so that
/// host validation rejects it.
fn split_port(registry: &str) -> (&str, Option<&str>) {
    let host_end = if registry.starts_with('[') {
        registry.find(']').map_or(registry.len(), |bracket| bracket + 1)
    } else {
        registry.find(':').unwrap_or(registry.len())
    };
    match (registry.get(..host_end), registry.get(host_end..)) {
        (Some(host), Some("")) => (host, None),
        (Some(host), Some(rest)) => match rest.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None => (registry, None),
        },
        _ => (registry, None),
    }
}

/// Checks a registry host: `host [":" port-number]`, where host is a domain name (which
/// includes dotted IPv4) or `\[(?:[a-fA-F0-9:]+)\]` (distribution's `ipv6address`).
/// ferry also requires the port to be 1-65535, since no other port can be dialled.
pub fn validate_registry(registry: &str) -> Result<(), ReferenceError> {
    let (host, port) = split_port(registry);
    if !(is_domain_name(host) || is_ipv6_literal(host)) {
        return Err(ReferenceError::InvalidRegistry { registry: registry.to_owned() });
    }
    if let Some(port) = port {
        let digits = !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
        if !digits || !matches!(port.parse::<u32>(), Ok(1..=65535)) {
            return Err(ReferenceError::InvalidPort { registry: registry.to_owned() });
        }
    }
    Ok(())
}

/// `domain-component ['.' domain-component]*` with
/// `domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/`.
fn is_domain_name(host: &str) -> bool {
    host.split('.').all(|label| {
        let bytes = label.as_bytes();
        match (bytes.first(), bytes.last()) {
            (Some(first), Some(last)) => {
                first.is_ascii_alphanumeric()
                    && last.is_ascii_alphanumeric()
                    && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
            }
            _ => false,
        }
    })
}

/// distribution's `ipv6address = \[(?:[a-fA-F0-9:]+)\]`.
fn is_ipv6_literal(host: &str) -> bool {
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(inner) => !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':'),
        None => false,
    }
}

/// Checks a repository path: `/`-separated components, each
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`. Uppercase gets its own error, since lowercasing
/// is then the whole fix.
pub fn validate_repository(name: &str) -> Result<(), ReferenceError> {
    if name.is_empty() {
        return Err(ReferenceError::MissingRepository { input: name.to_owned() });
    }
    if let Some(component) = name.split('/').find(|c| !is_path_component(c)) {
        let lowercase = name.to_ascii_lowercase();
        if lowercase != name && lowercase.split('/').all(is_path_component) {
            return Err(ReferenceError::RepositoryUppercase { repository: name.to_owned(), lowercase });
        }
        return Err(ReferenceError::InvalidRepository {
            repository: name.to_owned(),
            component: component.to_owned(),
        });
    }
    Ok(())
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`: runs of lowercase alphanumerics joined by exactly
/// one `.`, one or two `_`, or any number of `-`.
fn is_path_component(component: &str) -> bool {
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut bytes = component.as_bytes();
    loop {
        let run = bytes.iter().take_while(|b| alnum(b)).count();
        if run == 0 {
            return false;
        }
        bytes = bytes.get(run..).unwrap_or_default();
        let sep = bytes.iter().take_while(|b| !alnum(b)).count();
        if sep == 0 {
            return bytes.is_empty();
        }
        let separator = bytes.get(..sep).unwrap_or_default();
        let valid = matches!(separator, b"." | b"_" | b"__") || separator.iter().all(|b| *b == b'-');
        if !valid {
            return false;
        }
        bytes = bytes.get(sep..).unwrap_or_default();
    }
}

/// Checks a tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn validate_tag(tag: &str) -> Result<(), ReferenceError> {
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    let bytes = tag.as_bytes();
    let valid = bytes.first().is_some_and(word) && bytes.iter().all(|b| word(b) || matches!(b, b'.' | b'-'));
    if !valid {
        return Err(ReferenceError::InvalidTag { tag: tag.to_owned() });
    }
    if tag.len() > TAG_MAX_LEN {
        return Err(ReferenceError::TagTooLong { tag: tag.to_owned(), length: tag.len() });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
