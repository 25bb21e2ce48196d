//! Image manifests: OCI image manifest and Docker schema2 manifest.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::descriptor::{null_as_default, Fields};
use super::{media_type, Descriptor, ManifestError};

/// OCI image-spec, "Image Manifest": "an image manifest provides a configuration and set
/// of layers for a single container image for a specific architecture and operating
/// system." Docker's schema2 manifest has the same shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// "For this version of the specification, this MUST be `2`."
    pub schema_version: u32,
    /// The document's own `mediaType` field, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// "This OPTIONAL property contains the type of an artifact when the manifest is used
    /// for an artifact."
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// "This REQUIRED property references a configuration object for a container, by
    /// digest."
    pub config: Descriptor,
    /// "The array MUST have the base layer at index 0."
    pub layers: Vec<Descriptor>,
    /// "This OPTIONAL property specifies a descriptor of another manifest. This value
    /// defines a weak association to a separate Merkle Directed Acyclic Graph (DAG)
    /// structure, and is used by the referrers API."
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// "This OPTIONAL property contains arbitrary metadata for the image manifest."
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ImageManifest {
    pub(super) fn from_fields(schema_version: u32, fields: &Fields<'_>) -> Result<Self, ManifestError> {
        Ok(ImageManifest {
            schema_version,
            media_type: fields.optional("mediaType")?,
            artifact_type: fields.optional("artifactType")?,
            config: fields.required_descriptor("config")?,
            layers: fields.descriptors("layers")?,
            subject: fields.descriptor("subject")?,
            annotations: fields.optional("annotations")?.unwrap_or_default(),
        })
    }

    /// Every blob the manifest references: the config, then the layers in stack order.
    /// Foreign layers are included; see [`ImageManifest::is_foreign`].
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        std::iter::once(&self.config).chain(&self.layers)
    }

    /// Whether a layer must not be copied: a Docker foreign layer ("a gzipped tar that
    /// should never be pushed") or an OCI non-distributable layer. Its descriptor stays
    /// in the manifest, and clients fetch it from its `urls`.
    pub fn is_foreign(layer: &Descriptor) -> bool {
        media_type::is_non_distributable(&layer.media_type)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Manifest, RawManifest};
    use super::*;
    use crate::digest::Digest;

    fn image(bytes: &[u8], content_type: Option<&str>) -> ImageManifest {
        let raw = RawManifest::parse(bytes.to_vec(), content_type).unwrap();
        match raw.manifest() {
            Manifest::Image(image) => image.clone(),
            Manifest::Index(_) => panic!("parsed as an index"),
        }
    }

    fn digest(hex_label: &str) -> Digest {
        format!("sha256:{hex_label}").parse().unwrap()
    }

    #[test]
    fn blobs_are_config_then_layers() {
        let manifest = image(include_bytes!("../../tests/fixtures/manifest/oci-manifest.json"), None);
        let blobs: Vec<(&str, u64)> = manifest.blobs().map(|d| (d.media_type.as_str(), d.size)).collect();
        assert_eq!(
            blobs,
            [
                (media_type::OCI_CONFIG, 7023),
                (media_type::OCI_LAYER_GZIP, 32654),
                (media_type::OCI_LAYER_ZSTD, 16724),
                (media_type::OCI_LAYER, 73109),
            ]
        );
        assert_eq!(manifest.annotations.get("com.example.key1").map(String::as_str), Some("value1"));
        assert!(manifest.blobs().all(|d| !ImageManifest::is_foreign(d)));
    }

    #[test]
    fn foreign_layers_are_flagged() {
        let manifest = image(
            include_bytes!("../../tests/fixtures/manifest/docker-windows-manifest.json"),
            Some(media_type::DOCKER_MANIFEST),
        );
        let foreign: Vec<bool> = manifest.layers.iter().map(ImageManifest::is_foreign).collect();
        assert_eq!(foreign, [true, true, false]);
        assert_eq!(
            manifest.layers[0].urls,
            ["https://mcr.microsoft.com/v2/windows/servercore/blobs/\
              sha256:485915631b4f981e2277d131c9a0c04592b4024a409dbb54896f5ae6c9a590bd"]
        );
        assert_eq!(manifest.blobs().count(), 4);
    }

    #[test]
    fn artifact_manifest_fields() {
        let manifest = image(include_bytes!("../../tests/fixtures/manifest/oci-artifact.json"), None);
        assert_eq!(manifest.artifact_type.as_deref(), Some("application/vnd.example.sbom.v1+json"));
        assert_eq!(manifest.config.media_type, media_type::OCI_EMPTY);
        assert_eq!(manifest.config.data.as_deref(), Some("e30="));
        assert_eq!(manifest.config.digest, Digest::sha256(b"{}"));
        let subject = manifest.subject.as_ref().unwrap();
        assert_eq!(
            subject.digest,
            digest("a9491f4c1bf7b0cffbadcba2db8f028e4b3f2867cb59e1f3a0bc1968f3c51242")
        );
        assert_eq!(
            manifest.layers[0].annotations.get("org.opencontainers.image.title").map(String::as_str),
            Some("sbom.spdx.json")
        );
    }

    #[test]
    fn serialises_back_to_the_spec_shape() {
        let manifest = image(include_bytes!("../../tests/fixtures/manifest/docker-manifest.json"), None);
        let value = serde_json::to_value(&manifest).unwrap();
        assert_eq!(value["schemaVersion"], 2);
        assert_eq!(value["mediaType"], media_type::DOCKER_MANIFEST);
        assert_eq!(value["layers"][1]["size"], 1279);
        assert!(value.get("subject").is_none() && value.get("annotations").is_none());
        let back: ImageManifest = serde_json::from_value(value).unwrap();
        assert_eq!(back, manifest);
    }
}
