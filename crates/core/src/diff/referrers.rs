//! The referrers of a tag's manifest on each side of a diff.
//!
//! Each side is asked as a sync asks a source (see [`crate::referrers`]): the referrers
//! API, or after its 404 the `<alg>-<hex>` tag-schema index; cosign's
//! `sha256-<hex>.sig|.att|.sbom` tags come from the tag lists the diff already read. A
//! referrer both sides list is in sync, one only the source lists is missing, one only
//! the destination lists is extra. Only a tag's direct referrers are compared.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::TagStatus;
use crate::digest::Digest;
use crate::manifest::Descriptor;
use crate::referrers::{cosign_tag, CosignKind};

/// One referrer of a tag's manifest, as the two sides list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferrerDiff {
    /// Its digest; absent for a cosign tag, which is compared by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// The cosign tag (`sha256-<hex>.sig`), for one found that way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Its `artifactType`, as the list gives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Its manifest's size, as the list gives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// In sync, missing (only the source lists it), extra (only the destination), or
    /// listed (a reading of one side).
    pub status: TagStatus,
}

/// Compares what each side lists for one subject. `lists` holds the referrers lists of
/// the source and the destination (`None`: not read); `tags` their tag lists, for
/// cosign's tags.
pub(super) fn compare(
    subject: &Digest,
    lists: &[Option<Vec<Descriptor>>; 2],
    tags: [&BTreeSet<String>; 2],
    one_sided: bool,
) -> Vec<ReferrerDiff> {
    let status = |at_source: bool, at_destination: bool| match (at_source, at_destination) {
        _ if one_sided => TagStatus::Listed,
        (true, true) => TagStatus::InSync,
        (true, false) => TagStatus::Missing,
        _ => TagStatus::Extra,
    };
    let listed = |side: usize, digest: &Digest| {
        lists[side].as_ref().is_some_and(|list| list.iter().any(|d| &d.digest == digest))
    };
    let mut rows = Vec::new();
    let mut seen = BTreeSet::new();
    for descriptor in lists.iter().flatten().flatten() {
        if !seen.insert(descriptor.digest.clone()) {
            continue;
        }
        rows.push(ReferrerDiff {
            digest: Some(descriptor.digest.clone()),
            tag: None,
            artifact_type: descriptor.artifact_type.clone(),
            size: Some(descriptor.size),
            status: status(listed(0, &descriptor.digest), listed(1, &descriptor.digest)),
        });
    }
    for kind in CosignKind::ALL {
        let tag = cosign_tag(subject, kind);
        let (at_source, at_destination) = (tags[0].contains(&tag), tags[1].contains(&tag));
        if at_source || at_destination {
            rows.push(ReferrerDiff {
                digest: None,
                artifact_type: Some(format!("cosign {}", kind.name())),
                tag: Some(tag),
                size: None,
                status: status(at_source, at_destination),
            });
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::media_type;

    fn descriptor(name: &[u8], artifact_type: &str) -> Descriptor {
        Descriptor {
            media_type: media_type::OCI_MANIFEST.to_owned(),
            digest: Digest::sha256(name),
            size: name.len() as u64,
            urls: Vec::new(),
            annotations: Default::default(),
            platform: None,
            artifact_type: Some(artifact_type.to_owned()),
            data: None,
        }
    }

    #[test]
    fn each_referrer_is_in_sync_missing_or_extra() {
        let subject = Digest::sha256(b"image");
        let (sbom, sig, other) =
            (descriptor(b"sbom", "a/sbom"), descriptor(b"sig", "a/sig"), descriptor(b"x", "a/x"));
        let lists = [Some(vec![sbom.clone(), sig.clone()]), Some(vec![other.clone(), sbom.clone()])];
        let source_tags = BTreeSet::from([cosign_tag(&subject, CosignKind::Sig)]);
        let rows = compare(&subject, &lists, [&source_tags, &BTreeSet::new()], false);
        let got: Vec<(Option<Digest>, TagStatus)> =
            rows.iter().map(|r| (r.digest.clone(), r.status)).collect();
        assert_eq!(
            got,
            vec![
                (Some(sbom.digest), TagStatus::InSync),
                (Some(sig.digest), TagStatus::Missing),
                (Some(other.digest), TagStatus::Extra),
                (None, TagStatus::Missing),
            ]
        );
        assert_eq!(rows[3].tag.as_deref(), Some(cosign_tag(&subject, CosignKind::Sig).as_str()));
        let one = compare(&subject, &[lists[0].clone(), None], [&source_tags, &BTreeSet::new()], true);
        assert!(one.iter().all(|r| r.status == TagStatus::Listed));
    }
}
