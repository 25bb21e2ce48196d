//! Image indexes (OCI index, Docker manifest list) and choosing their children by platform.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::descriptor::{null_as_default, Fields};
use super::{json_error, Descriptor, Manifest, ManifestError, PlatformFilter, RawManifest};

/// OCI image-spec, "Image Index": "a higher-level manifest which points to specific image
/// manifests, ideal for one or more platforms." Docker's manifest list has the same shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// "For this version of the specification, this MUST be `2`."
    pub schema_version: u32,
    /// The document's own `mediaType` field, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// "This OPTIONAL property contains the type of an artifact when the manifest is used
    /// for an artifact."
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// "This REQUIRED property contains a list of manifests for specific platforms. While
    /// this property MUST be present, the size of the array MAY be zero."
    pub manifests: Vec<Descriptor>,
    /// "This OPTIONAL property specifies a descriptor of another manifest."
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// "This OPTIONAL property contains arbitrary metadata for the image index."
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ImageIndex {
    pub(super) fn from_fields(schema_version: u32, fields: &Fields<'_>) -> Result<Self, ManifestError> {
        Ok(ImageIndex {
            schema_version,
            media_type: fields.optional("mediaType")?,
            artifact_type: fields.optional("artifactType")?,
            manifests: fields.descriptors("manifests")?,
            subject: fields.descriptor("subject")?,
            annotations: fields.optional("annotations")?.unwrap_or_default(),
        })
    }
}

/// The children of an index chosen by a [`PlatformFilter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The chosen children, in index order.
    pub children: Vec<Descriptor>,
    /// `None` when every child was chosen: push the index's bytes untouched. Otherwise the
    /// index reduced to the chosen children, which has a new digest.
    pub rewritten: Option<RawManifest>,
}

/// Chooses the children of `index` that `filter` matches.
///
/// When only some match, the index is rewritten: every other field is kept as it was, in
/// its original order; `manifests` keeps only the chosen entries, each JSON object
/// unchanged; and the result is serialised compactly. Pushing that index (rather than the
/// original) keeps the destination from pointing at children that were never copied.
/// An index with no children at all has nothing to filter and is kept as it is.
pub fn select(index: &RawManifest, filter: &PlatformFilter) -> Result<Selection, ManifestError> {
    let Manifest::Index(parsed) = index.manifest() else {
        return Err(ManifestError::NotAnIndex { media_type: index.media_type().to_owned() });
    };
    let keep: Vec<bool> =
        parsed.manifests.iter().map(|child| filter.matches(child.platform.as_ref())).collect();
    let children: Vec<Descriptor> = parsed
        .manifests
        .iter()
        .zip(&keep)
        .filter(|(_, kept)| **kept)
        .map(|(child, _)| child.clone())
        .collect();
    if children.len() == parsed.manifests.len() {
        return Ok(Selection { children, rewritten: None });
    }
    if children.is_empty() {
        return Err(ManifestError::NoMatchingPlatform {
            filter: filter.to_string(),
            available: available(parsed),
        });
    }
    let mut value: Value = serde_json::from_slice(index.bytes()).map_err(json_error)?;
    if let Some(Value::Array(entries)) = value.get_mut("manifests") {
        let mut kept = keep.iter();
        entries.retain(|_| kept.next().copied().unwrap_or(false));
    }
    let bytes = serde_json::to_vec(&value).map_err(json_error)?;
    let rewritten = RawManifest::parse(bytes, Some(index.media_type()))?;
    Ok(Selection { children, rewritten: Some(rewritten) })
}

/// The index's platforms as written, each once, in index order, for the no-match error.
fn available(index: &ImageIndex) -> Vec<String> {
    let mut seen = Vec::new();
    for child in &index.manifests {
        let platform =
            child.platform.as_ref().map_or_else(|| "(no platform)".to_owned(), ToString::to_string);
        if !seen.contains(&platform) {
            seen.push(platform);
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::super::media_type;
    use super::*;

    const OCI_INDEX: &[u8] = include_bytes!("../../tests/fixtures/manifest/oci-index.json");
    const DOCKER_LIST: &[u8] = include_bytes!("../../tests/fixtures/manifest/docker-manifest-list.json");
    const REFERRERS: &[u8] = include_bytes!("../../tests/fixtures/manifest/oci-index-referrers.json");

    fn parse(bytes: &[u8], content_type: Option<&str>) -> RawManifest {
        RawManifest::parse(bytes.to_vec(), content_type).unwrap()
    }

    fn filter(os: &[&str], arch: &[&str], platforms: &[&str]) -> PlatformFilter {
        let owned = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        PlatformFilter::new(&owned(os), &owned(arch), &owned(platforms)).unwrap()
    }

    fn child_platforms(selection: &Selection) -> Vec<String> {
        selection.children.iter().map(|c| c.platform.as_ref().map_or("-".into(), |p| p.to_string())).collect()
    }

    /// The `manifests` entries of an index, each as compact JSON in its own key order.
    fn entries(bytes: &[u8]) -> Vec<String> {
        let value: Value = serde_json::from_slice(bytes).unwrap();
        value["manifests"].as_array().unwrap().iter().map(|e| serde_json::to_string(e).unwrap()).collect()
    }

    #[test]
    fn index_fields_with_subject_artifact_type_and_urls() {
        let raw = parse(REFERRERS, None);
        assert_eq!(raw.media_type(), media_type::OCI_INDEX);
        let Manifest::Index(index) = raw.manifest() else { panic!("not an index") };
        assert_eq!(index.artifact_type.as_deref(), Some("application/vnd.example.signatures.v1"));
        assert_eq!(index.subject.as_ref().map(|s| s.size), Some(2270));
        assert_eq!(
            index.annotations.get("org.opencontainers.image.description").map(String::as_str),
            Some("signatures for app:1.4")
        );
        assert_eq!(
            index.manifests[0].artifact_type.as_deref(),
            Some("application/vnd.dev.cosign.simplesigning.v1+json")
        );
        assert_eq!(
            index.manifests[1].urls,
            ["https://mirror.example.com/blobs/\
              sha256:4ec394a302e98e10459e98850ad05c2385b989ebc52d61e78070c6f709e21f14"]
        );
        assert!(index.manifests.iter().all(|m| m.platform.is_none()));
    }

    #[test]
    fn no_filter_keeps_the_bytes() {
        for (bytes, content_type) in
            [(OCI_INDEX, None), (DOCKER_LIST, Some(media_type::DOCKER_MANIFEST_LIST)), (REFERRERS, None)]
        {
            let raw = parse(bytes, content_type);
            let selection = select(&raw, &PlatformFilter::default()).unwrap();
            assert_eq!(selection.rewritten, None);
            let Manifest::Index(index) = raw.manifest() else { panic!("not an index") };
            assert_eq!(selection.children, index.manifests);
            assert_eq!(raw.bytes(), bytes);
            assert_eq!(raw.digest(), &crate::digest::Digest::sha256(bytes));
        }
    }

    #[test]
    fn filter_matching_every_child_keeps_the_bytes() {
        let raw = parse(DOCKER_LIST, None);
        let selection = select(&raw, &filter(&["linux"], &[], &[])).unwrap();
        assert_eq!(selection.children.len(), 7);
        assert_eq!(selection.rewritten, None);

        let empty = parse(br#"{"schemaVersion":2,"manifests":[]}"#, None);
        let selection = select(&empty, &filter(&["linux"], &[], &[])).unwrap();
        assert_eq!(selection, Selection { children: vec![], rewritten: None });
    }

    #[test]
    fn selection_table() {
        #[rustfmt::skip]
        type Case<'a> = (&'a [u8], PlatformFilter, &'a [&'a str], &'a [usize]);
        let cases: Vec<Case> = vec![
            (OCI_INDEX, filter(&[], &[], &["linux/amd64"]), &["linux/amd64"], &[0]),
            (OCI_INDEX, filter(&[], &[], &["linux/aarch64"]), &["linux/arm64/v8"], &[1]),
            (
                OCI_INDEX,
                filter(&["linux"], &[], &[]),
                &["linux/amd64", "linux/arm64/v8", "linux/arm/v7"],
                &[0, 1, 2],
            ),
            (OCI_INDEX, filter(&[], &["arm64", "arm"], &[]), &["linux/arm64/v8", "linux/arm/v7"], &[1, 2]),
            (DOCKER_LIST, filter(&[], &["arm/v6", "s390x"], &[]), &["linux/arm/v6", "linux/s390x"], &[1, 6]),
            (
                DOCKER_LIST,
                filter(&[], &[], &["linux/amd64", "linux/arm64"]),
                &["linux/amd64", "linux/arm64/v8"],
                &[0, 3],
            ),
        ];
        for (bytes, filter, want_platforms, want_entries) in cases {
            let raw = parse(bytes, None);
            let selection = select(&raw, &filter).unwrap();
            assert_eq!(child_platforms(&selection), want_platforms, "{filter}");
            let rewritten = selection.rewritten.expect("a subset is rewritten");
            let original = entries(bytes);
            let kept: Vec<String> = want_entries.iter().map(|&i| original[i].clone()).collect();
            assert_eq!(entries(rewritten.bytes()), kept, "{filter}: child JSON unchanged");
            assert_eq!(rewritten.media_type(), raw.media_type());
            assert_ne!(rewritten.digest(), raw.digest());
            assert_eq!(rewritten.digest(), &crate::digest::Digest::sha256(rewritten.bytes()));
            let Manifest::Index(index) = rewritten.manifest() else { panic!("not an index") };
            assert_eq!(index.manifests, selection.children);
        }
    }

    #[test]
    fn rewrite_keeps_other_fields_in_order() {
        let raw = parse(DOCKER_LIST, Some(media_type::DOCKER_MANIFEST_LIST));
        let selection = select(&raw, &filter(&[], &[], &["linux/386"])).unwrap();
        let rewritten = selection.rewritten.unwrap();
        assert_eq!(
            std::str::from_utf8(rewritten.bytes()).unwrap(),
            concat!(
                r#"{"manifests":[{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","#,
                r#""size":528,"digest":"sha256:139e01c771aa5c5b81490ec6d9b916cfe27c91be6e991d0698de67adec6c90ac","#,
                r#""platform":{"architecture":"386","os":"linux"}}],"#,
                r#""mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","schemaVersion":2}"#
            )
        );
        assert_eq!(rewritten.media_type(), media_type::DOCKER_MANIFEST_LIST);

        let raw = parse(OCI_INDEX, None);
        let rewritten = select(&raw, &filter(&[], &["amd64"], &[])).unwrap().rewritten.unwrap();
        let text = std::str::from_utf8(rewritten.bytes()).unwrap();
        assert!(text.starts_with(
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"#
        ));
        assert!(text.ends_with(
            r#""os":"linux"}}],"annotations":{"org.opencontainers.image.created":"2024-05-02T09:13:41Z","org.opencontainers.image.source":"https://github.com/example/app"}}"#
        ));
    }

    #[test]
    fn no_match_names_the_filter_and_the_platforms() {
        let raw = parse(OCI_INDEX, None);
        let err = select(&raw, &filter(&[], &[], &["linux/s390x", "windows/amd64"])).unwrap_err();
        assert_eq!(
            err,
            ManifestError::NoMatchingPlatform {
                filter: "linux/s390x, windows/amd64".into(),
                available: vec![
                    "linux/amd64".into(),
                    "linux/arm64/v8".into(),
                    "linux/arm/v7".into(),
                    "unknown/unknown".into()
                ],
            }
        );
        assert_eq!(
            err.to_string(),
            "no manifest in the index matches the platform filter `linux/s390x, windows/amd64`; \
             the index has linux/amd64, linux/arm64/v8, linux/arm/v7, unknown/unknown: \
             choose from these or drop the filter"
        );

        let referrers = parse(REFERRERS, None);
        assert_eq!(
            select(&referrers, &filter(&["linux"], &[], &[])),
            Err(ManifestError::NoMatchingPlatform {
                filter: "os: linux".into(),
                available: vec!["(no platform)".into()]
            })
        );
    }

    #[test]
    fn select_refuses_an_image_manifest() {
        let raw = parse(include_bytes!("../../tests/fixtures/manifest/docker-manifest.json"), None);
        assert_eq!(
            select(&raw, &PlatformFilter::default()),
            Err(ManifestError::NotAnIndex { media_type: media_type::DOCKER_MANIFEST.into() })
        );
    }
}
