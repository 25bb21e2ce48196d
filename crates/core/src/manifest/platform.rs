//! Platforms (`os/arch[/variant]`) and the filter that picks an index's children.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::descriptor::null_as_default;
use super::ManifestError;

/// Image-spec, image index `platform`: "This OPTIONAL property describes the minimum
/// runtime requirements of the image."
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Platform {
    /// "This REQUIRED property specifies the CPU architecture." Values are Go's `GOARCH`.
    pub architecture: String,
    /// "This REQUIRED property specifies the operating system." Values are Go's `GOOS`.
    pub os: String,
    /// "This OPTIONAL property specifies the version of the operating system targeted by
    /// the referenced blob", e.g. `10.0.14393.1066` on `windows`.
    #[serde(rename = "os.version", default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// "This OPTIONAL property specifies an array of strings, each specifying a mandatory
    /// OS feature", e.g. `win32k`.
    #[serde(
        rename = "os.features",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub os_features: Vec<String>,
    /// "This OPTIONAL property specifies the variant of the CPU", e.g. `v7` for `arm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// "This property is RESERVED for future versions of the specification."
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
}

/// Which kind of platform text was being read, for errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlatformPart {
    /// `os/arch[/variant]`, as in `--platform linux/arm64/v8`.
    Platform,
    /// An operating system alone, such as `linux`.
    Os,
    /// `arch[/variant]`, such as `amd64` or `arm/v7`.
    Arch,
}

impl PlatformPart {
    fn bounds(self) -> (usize, usize) {
        match self {
            PlatformPart::Platform => (2, 3),
            PlatformPart::Os => (1, 1),
            PlatformPart::Arch => (1, 2),
        }
    }

    /// How to write it, for the error's fix.
    pub fn form(self) -> &'static str {
        match self {
            PlatformPart::Platform => "os/arch[/variant], e.g. linux/arm64/v8",
            PlatformPart::Os => "a single name such as linux or windows",
            PlatformPart::Arch => "arch[/variant], e.g. amd64 or arm/v7",
        }
    }
}

impl fmt::Display for PlatformPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PlatformPart::Platform => "platform",
            PlatformPart::Os => "operating system",
            PlatformPart::Arch => "architecture",
        })
    }
}

/// What is wrong with a platform text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlatformProblem {
    /// Nothing was given.
    #[error("it is empty")]
    Empty,
    /// `linux//amd64` or `linux/amd64/`.
    #[error("it has an empty segment (look for a doubled or trailing `/`)")]
    EmptySegment,
    /// More parts than the text's form has.
    #[error("it has more than {max} `/`-separated segment(s)")]
    TooManySegments {
        /// The most the form allows.
        max: usize,
    },
    /// Fewer parts than the text's form needs (`linux` for `os/arch`).
    #[error("it needs at least {min} `/`-separated segments")]
    TooFewSegments {
        /// The fewest the form needs.
        min: usize,
    },
    /// A character that no OS, architecture or variant name uses.
    #[error("it contains {0:?}; names use only letters, digits, `_`, `.` and `-`")]
    BadCharacter(char),
}

/// Splits `input` on `/` into the number of segments `part` allows, padding the rest with
/// `""`. containerd's specifier syntax: each segment matches `^[A-Za-z0-9_.-]+$`.
fn segments(input: &str, part: PlatformPart) -> Result<[&str; 3], ManifestError> {
    let fail = |problem| ManifestError::InvalidPlatform { input: input.to_owned(), part, problem };
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(fail(PlatformProblem::Empty));
    }
    let (min, max) = part.bounds();
    let segments: Vec<&str> = trimmed.split('/').collect();
    if segments.len() > max {
        return Err(fail(PlatformProblem::TooManySegments { max }));
    }
    if segments.iter().any(|s| s.is_empty()) {
        return Err(fail(PlatformProblem::EmptySegment));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if let Some(bad) = trimmed.chars().find(|&c| c != '/' && !allowed(c)) {
        return Err(fail(PlatformProblem::BadCharacter(bad)));
    }
    if segments.len() < min {
        return Err(fail(PlatformProblem::TooFewSegments { min }));
    }
    let mut padded = [""; 3];
    for (slot, segment) in padded.iter_mut().zip(segments) {
        *slot = segment;
    }
    Ok(padded)
}

impl Platform {
    /// Parses `os/arch[/variant]` as written (see [`Platform::normalized`] for matching).
    pub fn parse(input: &str) -> Result<Platform, ManifestError> {
        let [os, architecture, variant] = segments(input, PlatformPart::Platform)?;
        Ok(Platform {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: Some(variant.to_owned()).filter(|v| !v.is_empty()),
            ..Platform::default()
        })
    }

    /// The canonical spelling, following containerd's `platforms.Normalize`: lowercase,
    /// `macos` -> `darwin`, `x86_64`/`x86-64` -> `amd64`, `aarch64` -> `arm64`,
    /// `i386` -> `386`, `armhf` -> `arm/v7`, `armel` -> `arm/v6`; `arm64/v8` is written
    /// `arm64` and a bare `arm` is `arm/v7`. Two platforms name the same target exactly
    /// when their normalised os, architecture and variant are equal.
    pub fn normalized(&self) -> Platform {
        let (architecture, variant) = normalize_arch(&self.architecture, self.variant.as_deref());
        Platform { os: normalize_os(&self.os), architecture, variant, ..self.clone() }
    }

    fn same_target(&self, other: &Platform) -> bool {
        self.os == other.os && self.architecture == other.architecture && self.variant == other.variant
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        match &self.variant {
            Some(variant) if !variant.is_empty() => write!(f, "/{variant}"),
            _ => Ok(()),
        }
    }
}

fn normalize_os(os: &str) -> String {
    match os.to_ascii_lowercase().as_str() {
        "macos" => "darwin".to_owned(),
        other => other.to_owned(),
    }
}

/// containerd `normalizeArch`.
fn normalize_arch(arch: &str, variant: Option<&str>) -> (String, Option<String>) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant.map(str::to_ascii_lowercase).filter(|v| !v.is_empty());
    let (arch, variant) = match (arch.as_str(), variant.as_deref()) {
        ("i386", _) => ("386", None),
        ("x86_64" | "x86-64" | "amd64", Some("v1")) => ("amd64", None),
        ("x86_64" | "x86-64" | "amd64", variant) => ("amd64", variant),
        ("aarch64" | "arm64", None | Some("8" | "v8" | "v8.0")) => ("arm64", None),
        ("aarch64" | "arm64", Some("9" | "9.0" | "v9.0")) => ("arm64", Some("v9")),
        ("aarch64" | "arm64", variant) => ("arm64", variant),
        ("armhf", _) => ("arm", Some("v7")),
        ("armel", _) => ("arm", Some("v6")),
        ("arm", None | Some("7")) => ("arm", Some("v7")),
        ("arm", Some("5")) => ("arm", Some("v5")),
        ("arm", Some("6")) => ("arm", Some("v6")),
        ("arm", Some("8")) => ("arm", Some("v8")),
        (arch, variant) => (arch, variant),
    };
    (arch.to_owned(), variant.map(str::to_owned))
}

/// `arch` or `arch/variant` of a normalised platform, as kept in [`PlatformFilter`].
fn arch_key(platform: &Platform) -> String {
    match &platform.variant {
        Some(variant) => format!("{}/{variant}", platform.architecture),
        None => platform.architecture.clone(),
    }
}

/// Which children of an index to copy.
///
/// Each non-empty list narrows the selection: the child's os must be in `os`, its
/// architecture in `arch`, and the child must be one of `platforms`. Everything is
/// compared after [`Platform::normalized`], so `linux/aarch64` selects `linux/arm64/v8`.
/// A child without a platform (or with buildx's `unknown/unknown` for attestations)
/// matches only an empty filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlatformFilter {
    os: Vec<String>,
    arch: Vec<String>,
    platforms: Vec<Platform>,
}

impl PlatformFilter {
    /// Builds a filter from user text: `os` entries like `linux`, `arch` entries like
    /// `amd64` or `arm64/v8`, and `platforms` like `linux/arm/v7`.
    pub fn new(os: &[String], arch: &[String], platforms: &[String]) -> Result<Self, ManifestError> {
        let os = os
            .iter()
            .map(|entry| {
                let [os, ..] = segments(entry, PlatformPart::Os)?;
                Ok(normalize_os(os))
            })
            .collect::<Result<_, ManifestError>>()?;
        let arch = arch
            .iter()
            .map(|entry| {
                let [arch, variant, _] = segments(entry, PlatformPart::Arch)?;
                let (architecture, variant) = normalize_arch(arch, Some(variant));
                Ok(arch_key(&Platform { architecture, variant, ..Platform::default() }))
            })
            .collect::<Result<_, ManifestError>>()?;
        let platforms = platforms
            .iter()
            .map(|entry| Platform::parse(entry).map(|p| p.normalized()))
            .collect::<Result<_, ManifestError>>()?;
        Ok(PlatformFilter { os, arch, platforms })
    }

    /// True when the filter selects everything.
    pub fn is_empty(&self) -> bool {
        self.os.is_empty() && self.arch.is_empty() && self.platforms.is_empty()
    }

    /// Whether an index child with this platform is selected.
    pub fn matches(&self, platform: Option<&Platform>) -> bool {
        if self.is_empty() {
            return true;
        }
        let Some(platform) = platform else {
            return false;
        };
        let platform = platform.normalized();
        (self.os.is_empty() || self.os.contains(&platform.os))
            && (self.arch.is_empty() || self.arch.contains(&arch_key(&platform)))
            && (self.platforms.is_empty() || self.platforms.iter().any(|p| p.same_target(&platform)))
    }
}

/// `linux/amd64, linux/arm64` for platforms; `os: linux; arch: amd64, arm/v7` for lists.
impl fmt::Display for PlatformFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sections = Vec::new();
        if !self.os.is_empty() {
            sections.push(format!("os: {}", self.os.join(", ")));
        }
        if !self.arch.is_empty() {
            sections.push(format!("arch: {}", self.arch.join(", ")));
        }
        if !self.platforms.is_empty() {
            let platforms: Vec<String> = self.platforms.iter().map(Platform::to_string).collect();
            sections.push(platforms.join(", "));
        }
        if sections.is_empty() {
            f.write_str("any platform")
        } else {
            f.write_str(&sections.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: variant.map(Into::into),
            ..Platform::default()
        }
    }

    /// `os`, `arch` and `platforms` lists for [`PlatformFilter::new`].
    type Lists<'a> = (&'a [&'a str], &'a [&'a str], &'a [&'a str]);

    fn filter_of((os, arch, platforms): Lists) -> Result<PlatformFilter, ManifestError> {
        PlatformFilter::new(&strings(os), &strings(arch), &strings(platforms))
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn parse_table() {
        let err = |input: &str, problem| {
            Err(ManifestError::InvalidPlatform { input: input.into(), part: PlatformPart::Platform, problem })
        };
        let cases = [
            ("linux/amd64", Ok(platform("linux", "amd64", None))),
            ("linux/arm64/v8", Ok(platform("linux", "arm64", Some("v8")))),
            ("windows/amd64", Ok(platform("windows", "amd64", None))),
            (" linux/arm/v7 ", Ok(platform("linux", "arm", Some("v7")))),
            ("Linux/X86_64", Ok(platform("Linux", "X86_64", None))),
            ("", err("", PlatformProblem::Empty)),
            ("   ", err("   ", PlatformProblem::Empty)),
            ("linux", err("linux", PlatformProblem::TooFewSegments { min: 2 })),
            ("linux//v8", err("linux//v8", PlatformProblem::EmptySegment)),
            ("linux/amd64/", err("linux/amd64/", PlatformProblem::EmptySegment)),
            ("/amd64", err("/amd64", PlatformProblem::EmptySegment)),
            (
                "linux/arm64/v8/extra",
                err("linux/arm64/v8/extra", PlatformProblem::TooManySegments { max: 3 }),
            ),
            ("linux/amd 64", err("linux/amd 64", PlatformProblem::BadCharacter(' '))),
            ("linux/amd64,linux/arm64", err("linux/amd64,linux/arm64", PlatformProblem::BadCharacter(','))),
        ];
        for (input, want) in cases {
            assert_eq!(Platform::parse(input), want, "{input:?}");
        }
    }

    #[test]
    fn display_round_trips() {
        for text in ["linux/amd64", "linux/arm64/v8", "windows/amd64", "linux/arm/v6"] {
            assert_eq!(Platform::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(platform("linux", "arm64", Some("")).to_string(), "linux/arm64");
    }

    #[test]
    fn normalisation_table() {
        let cases = [
            ("linux/amd64", "linux/amd64"),
            ("linux/x86_64", "linux/amd64"),
            ("linux/x86-64", "linux/amd64"),
            ("linux/amd64/v1", "linux/amd64"),
            ("linux/amd64/v3", "linux/amd64/v3"),
            ("linux/aarch64", "linux/arm64"),
            ("linux/arm64/v8", "linux/arm64"),
            ("linux/arm64/8", "linux/arm64"),
            ("linux/arm64/v8.0", "linux/arm64"),
            ("linux/aarch64/9", "linux/arm64/v9"),
            ("linux/arm64/v9.0", "linux/arm64/v9"),
            ("linux/arm", "linux/arm/v7"),
            ("linux/arm/7", "linux/arm/v7"),
            ("linux/arm/6", "linux/arm/v6"),
            ("linux/arm/5", "linux/arm/v5"),
            ("linux/armhf", "linux/arm/v7"),
            ("linux/armel", "linux/arm/v6"),
            ("linux/i386", "linux/386"),
            ("LINUX/AMD64", "linux/amd64"),
            ("macos/arm64", "darwin/arm64"),
            ("linux/riscv64", "linux/riscv64"),
            ("linux/ppc64le", "linux/ppc64le"),
        ];
        for (input, want) in cases {
            assert_eq!(Platform::parse(input).unwrap().normalized().to_string(), want, "{input}");
        }
        let windows =
            Platform { os_version: Some("10.0.17763.5329".into()), ..platform("windows", "x86_64", None) };
        assert_eq!(windows.normalized().os_version.as_deref(), Some("10.0.17763.5329"));
    }

    #[test]
    fn matches_table() {
        let amd64 = platform("linux", "amd64", None);
        let arm64 = platform("linux", "arm64", Some("v8"));
        let arm64_bare = platform("linux", "arm64", None);
        let armv7 = platform("linux", "arm", Some("v7"));
        let armv6 = platform("linux", "arm", Some("v6"));
        let windows = platform("windows", "amd64", None);
        let unknown = platform("unknown", "unknown", None);
        #[rustfmt::skip]
        let cases: Vec<(Lists, Option<&Platform>, bool)> = vec![
            ((&[], &[], &[]), Some(&amd64), true),
            ((&[], &[], &[]), None, true),
            ((&[], &[], &[]), Some(&unknown), true),
            ((&["linux"], &[], &[]), Some(&amd64), true),
            ((&["linux"], &[], &[]), Some(&windows), false),
            ((&["LINUX"], &[], &[]), Some(&arm64), true),
            ((&["linux"], &[], &[]), None, false),
            ((&["linux"], &[], &[]), Some(&unknown), false),
            ((&[], &["amd64"], &[]), Some(&amd64), true),
            ((&[], &["amd64"], &[]), Some(&windows), true),
            ((&[], &["x86_64"], &[]), Some(&amd64), true),
            ((&[], &["amd64"], &[]), Some(&arm64), false),
            ((&[], &["arm64"], &[]), Some(&arm64), true),
            ((&[], &["arm64/v8"], &[]), Some(&arm64_bare), true),
            ((&[], &["aarch64"], &[]), Some(&arm64), true),
            ((&[], &["arm"], &[]), Some(&armv7), true),
            ((&[], &["arm"], &[]), Some(&armv6), false),
            ((&[], &["arm/v6"], &[]), Some(&armv6), true),
            ((&[], &["armel"], &[]), Some(&armv6), true),
            ((&[], &["amd64"], &[]), Some(&unknown), false),
            ((&["linux"], &["amd64"], &[]), Some(&amd64), true),
            ((&["linux"], &["amd64"], &[]), Some(&windows), false),
            ((&[], &[], &["linux/amd64"]), Some(&amd64), true),
            ((&[], &[], &["linux/amd64"]), Some(&windows), false),
            ((&[], &[], &["linux/arm64"]), Some(&arm64), true),
            ((&[], &[], &["linux/arm64/v8"]), Some(&arm64_bare), true),
            ((&[], &[], &["linux/arm"]), Some(&armv7), true),
            ((&[], &[], &["linux/arm/v7"]), Some(&armv6), false),
            ((&[], &[], &["linux/amd64", "linux/arm/v6"]), Some(&armv6), true),
            ((&[], &[], &["linux/amd64"]), None, false),
            ((&[], &[], &["unknown/unknown"]), Some(&unknown), true),
            ((&["windows"], &[], &["linux/amd64"]), Some(&amd64), false),
        ];
        for (lists, child, want) in cases {
            let filter = filter_of(lists).unwrap();
            assert_eq!(filter.matches(child), want, "{filter} vs {child:?}");
        }
    }

    #[test]
    fn filter_errors() {
        let cases: [(Lists, ManifestError); 5] = [
            (
                (&[""], &[], &[]),
                ManifestError::InvalidPlatform {
                    input: "".into(),
                    part: PlatformPart::Os,
                    problem: PlatformProblem::Empty,
                },
            ),
            (
                (&["linux/amd64"], &[], &[]),
                ManifestError::InvalidPlatform {
                    input: "linux/amd64".into(),
                    part: PlatformPart::Os,
                    problem: PlatformProblem::TooManySegments { max: 1 },
                },
            ),
            (
                (&[], &["arm/v7/x"], &[]),
                ManifestError::InvalidPlatform {
                    input: "arm/v7/x".into(),
                    part: PlatformPart::Arch,
                    problem: PlatformProblem::TooManySegments { max: 2 },
                },
            ),
            (
                (&[], &["arm/"], &[]),
                ManifestError::InvalidPlatform {
                    input: "arm/".into(),
                    part: PlatformPart::Arch,
                    problem: PlatformProblem::EmptySegment,
                },
            ),
            (
                (&[], &[], &["amd64"]),
                ManifestError::InvalidPlatform {
                    input: "amd64".into(),
                    part: PlatformPart::Platform,
                    problem: PlatformProblem::TooFewSegments { min: 2 },
                },
            ),
        ];
        for (lists, want) in cases {
            assert_eq!(filter_of(lists), Err(want));
        }
        let err = PlatformFilter::new(&[], &strings(&["arm/"]), &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"arm/\" is not a valid architecture: it has an empty segment (look for a doubled or \
             trailing `/`); write it as arch[/variant], e.g. amd64 or arm/v7"
        );
    }

    #[test]
    fn filter_display() {
        let cases: [(Lists, &str); 4] = [
            ((&[], &[], &[]), "any platform"),
            ((&[], &[], &["linux/amd64", "linux/arm64/v8"]), "linux/amd64, linux/arm64"),
            ((&["linux"], &["amd64", "armhf"], &[]), "os: linux; arch: amd64, arm/v7"),
            ((&["linux"], &[], &["linux/aarch64"]), "os: linux; linux/arm64"),
        ];
        for (lists, want) in cases {
            let filter = filter_of(lists).unwrap();
            assert_eq!(filter.to_string(), want);
            assert_eq!(filter.is_empty(), want == "any platform");
        }
    }

    #[test]
    fn serde_uses_spec_names() {
        let json = r#"{"architecture":"amd64","os":"windows","os.version":"10.0.17763.5329",
                       "os.features":["win32k"],"variant":null,"features":null,"extra":1}"#;
        let parsed: Platform = serde_json::from_str(json).unwrap();
        assert_eq!(parsed.os_version.as_deref(), Some("10.0.17763.5329"));
        assert_eq!(parsed.os_features, ["win32k"]);
        assert_eq!(
            serde_json::to_string(&parsed).unwrap(),
            r#"{"architecture":"amd64","os":"windows","os.version":"10.0.17763.5329","os.features":["win32k"]}"#
        );
    }
}
