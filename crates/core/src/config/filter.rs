//! Tag filters of ferry's rules: `tags: {include: [regex], exclude: [regex], semver: "range"}`.

use regex_lite::Regex;
use semver::{Version, VersionReq};

use super::node::Node;
use super::{ConfigError, Doc};

const FIELDS: [&str; 3] = ["include", "exclude", "semver"];

/// Which tags of a repository a rule copies.
///
/// A tag passes when it matches at least one `include` pattern (or there are none),
/// matches no `exclude` pattern, and, if `semver` is set, reads as a version inside that
/// range. Patterns search anywhere in the tag, as Go's `regexp.MatchString` does for
/// image-syncer's `/regex/` sources; anchor them with `^` and `$` to match whole tags.
#[derive(Debug, Clone, Default)]
pub struct TagFilter {
    /// A tag must match one of these (when any are given).
    pub include: Vec<Regex>,
    /// A tag matching any of these is left out, even if included.
    pub exclude: Vec<Regex>,
    /// A version range, e.g. `>=1.2, <2`: tags that do not read as a version fail it.
    pub semver: Option<VersionReq>,
}

impl PartialEq for TagFilter {
    fn eq(&self, other: &Self) -> bool {
        fn same(a: &[Regex], b: &[Regex]) -> bool {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a.as_str() == b.as_str())
        }
        same(&self.include, &other.include)
            && same(&self.exclude, &other.exclude)
            && self.semver == other.semver
    }
}

impl Eq for TagFilter {}

impl TagFilter {
    /// Whether the filter has no conditions, so every tag passes.
    pub fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty() && self.semver.is_none()
    }

    /// Whether `tag` passes the filter, as described on [`TagFilter`].
    pub fn matches(&self, tag: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|r| r.is_match(tag)))
            && !self.exclude.iter().any(|r| r.is_match(tag))
            && match &self.semver {
                Some(range) => tag_version(tag).is_some_and(|v| range.matches(&v)),
                None => true,
            }
    }
}

/// Reads a tag as a version: an optional leading `v`, then `MAJOR.MINOR.PATCH` with
/// optional pre-release and build, or a bare `MAJOR` / `MAJOR.MINOR` (as image tags often
/// are: `1.27`), which counts as `.0`.
fn tag_version(tag: &str) -> Option<Version> {
    let bare = tag.strip_prefix(['v', 'V']).unwrap_or(tag);
    if let Ok(version) = Version::parse(bare) {
        return Some(version);
    }
    let parts: Vec<&str> = bare.split('.').collect();
    let numeric = parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    match (numeric, parts.len()) {
        (true, 1) => Version::parse(&format!("{bare}.0.0")).ok(),
        (true, 2) => Version::parse(&format!("{bare}.0")).ok(),
        _ => None,
    }
}

/// A tag pattern (regex-lite syntax, searching anywhere in the tag, like the filter's),
/// compared by its text.
#[derive(Debug, Clone)]
pub struct TagPattern(Regex);

impl TagPattern {
    /// Compiles `pattern`, or explains why it is not one.
    pub fn new(pattern: &str) -> Result<TagPattern, String> {
        compile(pattern).map(TagPattern)
    }

    /// Whether `tag` matches.
    pub fn matches(&self, tag: &str) -> bool {
        self.0.is_match(tag)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl PartialEq for TagPattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for TagPattern {}

/// Compiles a tag pattern, or explains why it is not one.
pub(super) fn compile(pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| e.to_string().replace('\n', " "))
}

/// Reads `tags: {include, exclude, semver}` at `key` (e.g. `rules[0].tags`).
pub(super) fn parse(doc: &Doc<'_>, key: &str, node: &Node) -> Result<TagFilter, ConfigError> {
    let fields = doc.map(key, "tags", node)?;
    doc.check_keys(key, fields, &FIELDS)?;
    let mut filter = TagFilter::default();
    for (field, value) in fields {
        let field_key = format!("{key}.{field}");
        match field.as_str() {
            "include" | "exclude" => {
                let example = "\"^v1\\\\.\"";
                let mut patterns = Vec::new();
                for (at, pattern) in doc.strings(&field_key, "a tag pattern", value, example)? {
                    let regex = compile(pattern).map_err(|e| {
                        doc.error(
                            &at,
                            format!("invalid tag pattern {pattern:?}: {e}"),
                            "write a regular expression (regex-lite syntax, like Go's RE2), e.g. \"^v1\\\\.\"",
                        )
                    })?;
                    patterns.push(regex);
                }
                if field == "include" {
                    filter.include = patterns;
                } else {
                    filter.exclude = patterns;
                }
            }
            _ => {
                let range = doc.string(&field_key, "semver", value, "semver: \">=1.2, <2\"")?;
                filter.semver = Some(VersionReq::parse(range).map_err(|e| {
                    doc.error(
                        &field_key,
                        format!("invalid semver range {range:?}: {e}"),
                        "write comparators separated by commas, e.g. \">=1.2, <2\" or \"~1.27\"",
                    )
                })?);
            }
        }
    }
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(include: &[&str], exclude: &[&str], semver: Option<&str>) -> TagFilter {
        TagFilter {
            include: include.iter().map(|p| Regex::new(p).unwrap()).collect(),
            exclude: exclude.iter().map(|p| Regex::new(p).unwrap()).collect(),
            semver: semver.map(|r| VersionReq::parse(r).unwrap()),
        }
    }

    #[test]
    fn matches_table() {
        let releases = filter(&[r"^[vV]?\d"], &["-rc", "alpine"], Some(">=1.2, <2"));
        let cases = [
            (&releases, "1.2.0", true),
            (&releases, "v1.9.3", true),
            (&releases, "V1.5", true),
            (&releases, "1.27", true),
            (&releases, "1", false),
            (&releases, "2.0.0", false),
            (&releases, "1.2.0-rc1", false),
            (&releases, "1.3-alpine", false),
            (&releases, "latest", false),
            (&releases, "1.2.x", false),
            (&releases, "v", false),
        ];
        for (f, tag, want) in cases {
            assert_eq!(f.matches(tag), want, "{tag}");
        }
        let everything = TagFilter::default();
        assert!(everything.is_empty() && everything.matches("anything"));
        // Patterns search anywhere unless anchored.
        assert!(filter(&["a+"], &[], None).matches("latest"));
        assert!(!filter(&["^a+$"], &[], None).matches("latest"));
    }

    #[test]
    fn tag_versions() {
        let cases = [
            ("1.2.3", Some("1.2.3")),
            ("v1.2.3-rc.1+build", Some("1.2.3-rc.1+build")),
            ("7", Some("7.0.0")),
            ("1.27", Some("1.27.0")),
            ("1.27-alpine", None),
            ("1..2", None),
            ("", None),
            ("v", None),
        ];
        for (tag, want) in cases {
            assert_eq!(tag_version(tag).map(|v| v.to_string()), want.map(str::to_owned), "{tag}");
        }
    }
}
