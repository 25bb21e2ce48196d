//! Media types of manifests and of the blobs they reference.
//!
//! OCI image-spec, "Media Types", and Docker's "Image Manifest Version 2, Schema 2". The
//! four manifest types ferry copies are [`OCI_MANIFEST`], [`OCI_INDEX`],
//! [`DOCKER_MANIFEST`] and [`DOCKER_MANIFEST_LIST`]; the two schema1 types are recognised
//! only to be refused with a clear error.

/// `application/vnd.oci.image.manifest.v1+json`: "Image manifest".
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// `application/vnd.oci.image.index.v1+json`: "Image Index".
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker: "New image manifest format (schemaVersion = 2)".
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker: "Manifest list, aka “fat manifest”".
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema1, unsigned. Deprecated; ferry refuses it.
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// Docker schema1, signed ("prettyjws"). Deprecated; ferry refuses it.
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// `application/vnd.oci.image.config.v1+json`: "Image config".
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker: "Container config JSON".
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// `application/vnd.oci.empty.v1+json`: the type of image-spec v1.1's empty descriptor, whose
/// content is the two bytes `{}` (`data` `e30=`). Artifacts without a config use it.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// "Layer", as a tar archive.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// "Layer", as a tar archive compressed with gzip.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// "Layer", as a tar archive compressed with zstd.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// "Layer", as a tar archive with distribution restrictions.
pub const OCI_LAYER_NONDISTRIBUTABLE: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
/// Non-distributable layer compressed with gzip.
pub const OCI_LAYER_NONDISTRIBUTABLE_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
/// Non-distributable layer compressed with zstd.
pub const OCI_LAYER_NONDISTRIBUTABLE_ZSTD: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
/// Docker: "“Layer”, as a gzipped tar".
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker: "“Layer”, as a gzipped tar that should never be pushed".
pub const DOCKER_FOREIGN_LAYER: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// The `Accept` header for manifest requests: the four manifest types ferry copies.
///
/// Distribution spec: "The client SHOULD include an Accept header indicating which manifest
/// content types it supports." Registries pick the returned type from it, so an index must
/// be named here or a registry may answer with a single-platform or converted manifest.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// The largest manifest ferry reads. Distribution spec v1.1 asks registries to accept
/// manifests of at least 4 MiB and to refuse larger ones with 413, so a bigger manifest
/// could not be pushed to most destinations anyway.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// The media type of a `Content-Type` value without its parameters, trimmed and
/// lowercased: `Application/JSON; charset=utf-8` -> `application/json`.
///
/// RFC 9110 §8.3.1: "The type and subtype tokens are case-insensitive."
pub fn essence(content_type: &str) -> String {
    let end = content_type.find(';').unwrap_or(content_type.len());
    content_type[..end].trim().to_ascii_lowercase()
}

/// Whether a layer of this type must not be pushed to another registry.
///
/// Docker calls these "foreign" layers ("should never be pushed"); OCI calls them
/// non-distributable. Copy tools (skopeo, crane) leave them out and keep the descriptor,
/// whose `urls` say where to fetch them.
pub fn is_non_distributable(media_type: &str) -> bool {
    matches!(
        media_type,
        DOCKER_FOREIGN_LAYER
            | OCI_LAYER_NONDISTRIBUTABLE
            | OCI_LAYER_NONDISTRIBUTABLE_GZIP
            | OCI_LAYER_NONDISTRIBUTABLE_ZSTD
    )
}

/// Whether this media type is an index (OCI index or Docker manifest list).
pub fn is_index(media_type: &str) -> bool {
    matches!(media_type, OCI_INDEX | DOCKER_MANIFEST_LIST)
}

/// What a known manifest media type holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Image,
    Index,
    Schema1,
}

/// The canonical constant and kind for a manifest media type, or `None` if it is not one.
pub(crate) fn classify(media_type: &str) -> Option<(&'static str, Kind)> {
    [
        (OCI_MANIFEST, Kind::Image),
        (DOCKER_MANIFEST, Kind::Image),
        (OCI_INDEX, Kind::Index),
        (DOCKER_MANIFEST_LIST, Kind::Index),
        (DOCKER_SCHEMA1, Kind::Schema1),
        (DOCKER_SCHEMA1_SIGNED, Kind::Schema1),
    ]
    .into_iter()
    .find(|(known, _)| *known == media_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn essence_strips_parameters_and_case() {
        let cases = [
            ("application/vnd.oci.image.index.v1+json", OCI_INDEX),
            ("application/vnd.oci.image.index.v1+json; charset=utf-8", OCI_INDEX),
            ("  Application/VND.Docker.Distribution.Manifest.V2+JSON ;x=y", DOCKER_MANIFEST),
            ("application/json", "application/json"),
            ("", ""),
            (";", ""),
        ];
        for (input, want) in cases {
            assert_eq!(essence(input), want, "{input:?}");
        }
    }

    #[test]
    fn accept_lists_the_four_supported_types() {
        let listed: Vec<&str> = MANIFEST_ACCEPT.split(", ").collect();
        assert_eq!(listed, [OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST]);
        assert!(listed.iter().all(|t| matches!(classify(t), Some((_, Kind::Image | Kind::Index)))));
    }

    #[test]
    fn classify_table() {
        let cases = [
            (OCI_MANIFEST, Some(Kind::Image)),
            (DOCKER_MANIFEST, Some(Kind::Image)),
            (OCI_INDEX, Some(Kind::Index)),
            (DOCKER_MANIFEST_LIST, Some(Kind::Index)),
            (DOCKER_SCHEMA1, Some(Kind::Schema1)),
            (DOCKER_SCHEMA1_SIGNED, Some(Kind::Schema1)),
            (OCI_CONFIG, None),
            ("application/vnd.oci.artifact.manifest.v1+json", None),
            ("application/json", None),
        ];
        for (media_type, want) in cases {
            assert_eq!(classify(media_type).map(|(_, kind)| kind), want, "{media_type}");
        }
    }

    #[test]
    fn non_distributable_and_index() {
        for foreign in [
            DOCKER_FOREIGN_LAYER,
            OCI_LAYER_NONDISTRIBUTABLE,
            OCI_LAYER_NONDISTRIBUTABLE_GZIP,
            OCI_LAYER_NONDISTRIBUTABLE_ZSTD,
        ] {
            assert!(is_non_distributable(foreign), "{foreign}");
        }
        for normal in [OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, DOCKER_LAYER, OCI_EMPTY, OCI_CONFIG] {
            assert!(!is_non_distributable(normal), "{normal}");
        }
        assert!(is_index(OCI_INDEX) && is_index(DOCKER_MANIFEST_LIST));
        assert!(!is_index(OCI_MANIFEST) && !is_index(DOCKER_MANIFEST));
    }
}
