//! Referrers: the signatures, SBOMs and attestations that hang off an image.
//!
//! Three ways to find them, all of which ferry reads and writes:
//!
//! - **The referrers API** (OCI Distribution 1.1, end-12a): `GET /v2/<name>/referrers/<digest>`
//!   answers "an image index" whose `manifests` are the descriptors of the manifests whose
//!   `subject` is `<digest>`. "If the registry supports the referrers API, the registry
//!   MUST NOT return a `404 Not Found` to a referrers API requests", so a 404 means the API
//!   is absent.
//! - **The referrers tag schema**, the spec's fallback for registries without the API:
//!   "`<alg>-<ref>`", e.g. `sha256-3f0a…`, tags an index of the referrers, which clients
//!   keep up to date by read-modify-write when they push a referrer.
//! - **cosign's tags**: `sha256-<hex>.sig`, `.att` and `.sbom` beside the image.
//!
//! This module holds the vocabulary (which referrers a job wants, the tags' names, the
//! index's merge); `copy::referrers` plans the requests.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use crate::digest::Digest;
use crate::manifest::{media_type, Descriptor, Manifest, ManifestError, RawManifest};

/// How deep referrers of referrers are followed: a signature of an SBOM of an image is 2.
pub const MAX_DEPTH: u32 = 4;

/// The artifacts cosign keeps under tags beside the image it signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CosignKind {
    /// `sha256-<hex>.sig`: signatures.
    Sig,
    /// `sha256-<hex>.att`: attestations.
    Att,
    /// `sha256-<hex>.sbom`: SBOMs.
    Sbom,
}

impl CosignKind {
    /// Every kind, in the order ferry looks for them.
    pub const ALL: [CosignKind; 3] = [CosignKind::Sig, CosignKind::Att, CosignKind::Sbom];

    /// The name as written in `--referrers` and after the tag's dot.
    pub fn name(self) -> &'static str {
        match self {
            CosignKind::Sig => "sig",
            CosignKind::Att => "att",
            CosignKind::Sbom => "sbom",
        }
    }

    fn from_name(name: &str) -> Option<CosignKind> {
        CosignKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// One kind of referrer a job wants: an `artifactType`, or one of cosign's tags.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReferrerKind {
    /// Referrers whose `artifactType` is exactly this media type.
    ArtifactType(String),
    /// cosign's tags of this kind.
    Cosign(CosignKind),
}

/// Which referrers travel with the images: `--referrers all|none|TYPE[,TYPE]` and a rule's
/// `referrers` key. A mirror wants them all by default, as ocync and regsync copy them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ReferrerFilter {
    /// Every referrer, and cosign's tags.
    #[default]
    All,
    /// None: images travel alone, and `sha256-…` tags are copied like any other tag.
    None,
    /// Only these kinds.
    Only(Vec<ReferrerKind>),
}

/// The choices `--referrers` and `referrers:` accept, for messages.
pub const FILTER_CHOICES: &str = "all, none, or a comma-separated list of artifact types \
    (e.g. application/spdx+json) and cosign kinds (sig, att, sbom)";

/// A `--referrers` value that means nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    /// The value as written.
    pub value: String,
    /// The item in it that is neither a choice nor a media type.
    pub item: String,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.item == self.value {
            write!(f, "invalid referrers value {:?}: expected {FILTER_CHOICES}", self.value)
        } else {
            write!(
                f,
                "invalid referrers value {:?}: {:?} is neither a cosign kind nor a media type; expected {FILTER_CHOICES}",
                self.value, self.item
            )
        }
    }
}

impl std::error::Error for FilterError {}

impl FromStr for ReferrerFilter {
    type Err = FilterError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let error = |item: &str| FilterError { value: value.to_owned(), item: item.to_owned() };
        match value.trim() {
            "all" => return Ok(ReferrerFilter::All),
            "none" => return Ok(ReferrerFilter::None),
            "" => return Err(error(value)),
            _ => {}
        }
        let mut kinds = Vec::new();
        for item in value.split(',').map(str::trim) {
            let kind = match CosignKind::from_name(item) {
                Some(kind) => ReferrerKind::Cosign(kind),
                None if is_media_type(item) => ReferrerKind::ArtifactType(item.to_owned()),
                None => return Err(error(item)),
            };
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        Ok(ReferrerFilter::Only(kinds))
    }
}

/// RFC 6838's `type/subtype`, restricted to the characters media types use.
fn is_media_type(text: &str) -> bool {
    let Some((kind, subtype)) = text.split_once('/') else { return false };
    let part =
        |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b));
    part(kind) && part(subtype)
}

impl fmt::Display for ReferrerFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReferrerFilter::All => f.write_str("all"),
            ReferrerFilter::None => f.write_str("none"),
            ReferrerFilter::Only(kinds) => {
                let names: Vec<&str> = kinds
                    .iter()
                    .map(|k| match k {
                        ReferrerKind::ArtifactType(t) => t.as_str(),
                        ReferrerKind::Cosign(c) => c.name(),
                    })
                    .collect();
                f.write_str(&names.join(","))
            }
        }
    }
}

impl ReferrerFilter {
    /// Whether any referrer travels.
    pub fn is_on(&self) -> bool {
        *self != ReferrerFilter::None
    }

    /// Whether a referrer with this `artifactType` travels.
    pub fn wants_artifact(&self, artifact_type: Option<&str>) -> bool {
        match self {
            ReferrerFilter::All => true,
            ReferrerFilter::None => false,
            ReferrerFilter::Only(kinds) => artifact_type
                .is_some_and(|t| kinds.iter().any(|k| matches!(k, ReferrerKind::ArtifactType(w) if w == t))),
        }
    }

    /// Whether any referrer found through the API or the tag schema can travel.
    pub fn wants_any_artifact(&self) -> bool {
        match self {
            ReferrerFilter::All => true,
            ReferrerFilter::None => false,
            ReferrerFilter::Only(kinds) => kinds.iter().any(|k| matches!(k, ReferrerKind::ArtifactType(_))),
        }
    }

    /// The cosign tags that travel.
    pub fn cosign_kinds(&self) -> Vec<CosignKind> {
        match self {
            ReferrerFilter::All => CosignKind::ALL.to_vec(),
            ReferrerFilter::None => Vec::new(),
            ReferrerFilter::Only(kinds) => {
                CosignKind::ALL.into_iter().filter(|c| kinds.contains(&ReferrerKind::Cosign(*c))).collect()
            }
        }
    }
}

/// Distribution 1.1, "Referrers Tag Schema": `<alg>-<ref>`, where "`<alg>`: the digest
/// algorithm (e.g. `sha256` or `sha512`)" and "`<ref>`: the digest from the `subject`
/// field (limit of 64 characters)".
pub fn fallback_tag(subject: &Digest) -> String {
    let hex = subject.hex();
    format!("{}-{}", subject.algorithm().name(), &hex[..hex.len().min(64)])
}

/// The subject a tag-schema tag names: `sha256-<hex>` back to `sha256:<hex>`; `None` for
/// any other tag (cosign's `.sig` tags included).
pub fn fallback_subject(tag: &str) -> Option<Digest> {
    let (algorithm, hex) = tag.split_once('-')?;
    let digest: Digest = format!("{algorithm}:{hex}").parse().ok()?;
    (fallback_tag(&digest) == tag).then_some(digest)
}

/// cosign's tag for `kind` of `subject`: `sha256-<hex>.sig`.
pub fn cosign_tag(subject: &Digest, kind: CosignKind) -> String {
    format!("{}.{}", fallback_tag(subject), kind.name())
}

/// Whether a tag is one that referrers own rather than an image: a tag-schema index
/// (`sha256-<64 hex>`) or a cosign tag (`sha256-<64 hex>.sig`, `.att`, `.sbom`). With
/// referrers on, the sync keeps them beside their subject instead of copying them as tags.
pub fn is_referrer_tag(tag: &str) -> bool {
    let (base, kind) = match tag.split_once('.') {
        Some((base, kind)) => (base, Some(kind)),
        None => (tag, None),
    };
    let digest_shaped = ["sha256-", "sha512-"].iter().any(|prefix| {
        base.strip_prefix(prefix)
            .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
    });
    digest_shaped && kind.is_none_or(|k| CosignKind::from_name(k).is_some())
}

/// The descriptors of a referrers list: the referrers API's answer or a tag-schema index.
/// Distribution 1.1: "The response MUST be an image index"; entries of other indexes and
/// of a garbled body are errors, for the caller to name.
pub fn referrers_list(body: Vec<u8>) -> Result<Vec<Descriptor>, ManifestError> {
    let raw = RawManifest::parse(body, Some(media_type::OCI_INDEX))?;
    match raw.manifest() {
        Manifest::Index(index) => Ok(index.manifests.clone()),
        Manifest::Image(_) => Err(ManifestError::UnknownKind),
    }
}

/// The tag-schema index with `add` merged in, or `None` when it already lists them all.
///
/// Distribution 1.1, "Pushing Manifests with Subject": "If the tag returns a 404, the
/// client MUST begin with an empty image index. Verify the descriptor for the manifest is
/// not already in the referrers list (duplicate entries SHOULD NOT be created). Append a
/// descriptor for the pushed manifest to the manifests in the referrers list." Every
/// entry already there is kept as it was, whoever put it there.
pub fn merge_index(existing: Option<&[u8]>, add: &[Descriptor]) -> Result<Option<Vec<u8>>, ManifestError> {
    let mut index: Value = match existing {
        Some(bytes) => {
            referrers_list(bytes.to_vec())?;
            serde_json::from_slice(bytes).map_err(|e| ManifestError::InvalidField {
                field: "manifests".to_owned(),
                reason: e.to_string(),
            })?
        }
        None => serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_INDEX,
            "manifests": [],
        }),
    };
    let Some(manifests) = index.get_mut("manifests").and_then(Value::as_array_mut) else {
        return Err(ManifestError::MissingField { field: "manifests".to_owned() });
    };
    let listed = |d: &Descriptor| {
        manifests.iter().any(|m| m.get("digest").and_then(Value::as_str) == Some(&d.digest.to_string()))
    };
    let missing: Vec<&Descriptor> = add.iter().filter(|d| !listed(d)).collect();
    if missing.is_empty() {
        return Ok(None);
    }
    for descriptor in missing {
        let entry = serde_json::to_value(descriptor).map_err(|e| ManifestError::InvalidField {
            field: "manifests".to_owned(),
            reason: e.to_string(),
        })?;
        manifests.push(entry);
    }
    Ok(Some(serde_json::to_vec(&index).unwrap_or_default()))
}

/// The descriptor a referrers list gives a manifest. Distribution 1.1: "The value of the
/// `artifactType` MUST be set to the `artifactType` value in the pushed manifest, if
/// present. If the `artifactType` is empty or missing in a pushed image manifest, the
/// value of `artifactType` MUST be set to the config descriptor `mediaType` value. All
/// annotations from the pushed manifest MUST be copied to this descriptor."
pub fn descriptor_of(raw: &RawManifest) -> Descriptor {
    let (artifact_type, annotations) = match raw.manifest() {
        Manifest::Image(m) => {
            (m.artifact_type.clone().or_else(|| Some(m.config.media_type.clone())), m.annotations.clone())
        }
        Manifest::Index(i) => (i.artifact_type.clone(), i.annotations.clone()),
    };
    Descriptor {
        media_type: raw.media_type().to_owned(),
        digest: raw.digest().clone(),
        size: raw.bytes().len() as u64,
        urls: Vec::new(),
        annotations,
        platform: None,
        artifact_type,
        data: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_or_name_the_bad_item() {
        let sbom = "application/spdx+json";
        let cases: [(&str, Result<ReferrerFilter, &str>); 7] = [
            ("all", Ok(ReferrerFilter::All)),
            ("none", Ok(ReferrerFilter::None)),
            ("sig", Ok(ReferrerFilter::Only(vec![ReferrerKind::Cosign(CosignKind::Sig)]))),
            (
                "sig, application/spdx+json,sig",
                Ok(ReferrerFilter::Only(vec![
                    ReferrerKind::Cosign(CosignKind::Sig),
                    ReferrerKind::ArtifactType(sbom.to_owned()),
                ])),
            ),
            ("alll", Err("invalid referrers value \"alll\": expected all, none, or a comma-separated list")),
            ("", Err("invalid referrers value \"\": expected all")),
            ("sig,signature", Err("\"signature\" is neither a cosign kind nor a media type")),
        ];
        for (value, want) in cases {
            match (value.parse::<ReferrerFilter>(), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{value}"),
                (Err(e), Err(want)) => assert!(e.to_string().contains(want), "{value}: {e}"),
                (got, want) => panic!("{value}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn a_filter_picks_artifacts_and_cosign_tags() {
        let only: ReferrerFilter = "sbom,application/spdx+json".parse().unwrap();
        assert!(only.wants_artifact(Some("application/spdx+json")));
        assert!(!only.wants_artifact(Some("application/vnd.dev.cosign.simplesigning.v1+json")));
        assert!(!only.wants_artifact(None));
        assert_eq!(only.cosign_kinds(), vec![CosignKind::Sbom]);
        assert_eq!(ReferrerFilter::All.cosign_kinds(), CosignKind::ALL.to_vec());
        assert!(!ReferrerFilter::None.wants_artifact(Some("x/y")));
        assert_eq!(only.to_string(), "sbom,application/spdx+json");
    }

    #[test]
    fn referrer_tags_are_told_from_image_tags() {
        let digest = Digest::sha256(b"image");
        let hex = digest.hex().to_owned();
        assert_eq!(fallback_tag(&digest), format!("sha256-{hex}"));
        assert_eq!(cosign_tag(&digest, CosignKind::Att), format!("sha256-{hex}.att"));
        assert_eq!(fallback_subject(&fallback_tag(&digest)), Some(digest.clone()));
        assert_eq!(fallback_subject(&cosign_tag(&digest, CosignKind::Sig)), None);
        assert_eq!(fallback_subject("sha256-abc"), None);
        assert_eq!(fallback_subject("v1-2"), None);
        for (tag, want) in [
            (format!("sha256-{hex}"), true),
            (format!("sha256-{hex}.sig"), true),
            (format!("sha256-{hex}.sbom"), true),
            (format!("sha256-{hex}.tar"), false),
            (format!("sha256-{}", &hex[..10]), false),
            ("v1.0".to_owned(), false),
            ("latest".to_owned(), false),
        ] {
            assert_eq!(is_referrer_tag(&tag), want, "{tag}");
        }
    }

    #[test]
    fn a_merge_keeps_every_entry_and_adds_only_the_missing() {
        let entry = |name: &[u8]| Descriptor {
            media_type: media_type::OCI_MANIFEST.to_owned(),
            digest: Digest::sha256(name),
            size: 10,
            urls: Vec::new(),
            annotations: Default::default(),
            platform: None,
            artifact_type: Some("application/spdx+json".to_owned()),
            data: None,
        };
        let foreign = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{}","size":3,"artifactType":"x/y","annotations":{{"kept":"yes"}}}}]}}"#,
            media_type::OCI_INDEX,
            media_type::OCI_MANIFEST,
            Digest::sha256(b"other")
        );
        let merged = merge_index(Some(foreign.as_bytes()), &[entry(b"a"), entry(b"b")]).unwrap().unwrap();
        let listed = referrers_list(merged.clone()).unwrap();
        let digests: Vec<Digest> = listed.iter().map(|d| d.digest.clone()).collect();
        assert_eq!(digests, vec![Digest::sha256(b"other"), Digest::sha256(b"a"), Digest::sha256(b"b")]);
        assert_eq!(listed[0].annotations.get("kept").map(String::as_str), Some("yes"));
        assert_eq!(merge_index(Some(&merged), &[entry(b"a")]).unwrap(), None, "nothing to add");
        let fresh = merge_index(None, &[entry(b"a")]).unwrap().unwrap();
        assert_eq!(referrers_list(fresh).unwrap(), vec![entry(b"a")]);
        assert!(merge_index(Some(b"{\"schemaVersion\":2,\"config\":{}}"), &[entry(b"a")]).is_err());
    }
}
