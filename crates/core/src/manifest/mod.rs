//! Manifests: media types, parsing with the exact bytes kept, and platform selection.
//!
//! ferry never re-serialises a manifest it copies. [`RawManifest`] holds the bytes that
//! were fetched beside a parsed view of them, so the bytes pushed are the bytes pulled
//! and the digest is preserved. The one exception is an index reduced by a platform
//! filter ([`select`]), which is a new manifest by design.

mod descriptor;
mod image;
mod index;
pub mod media_type;
mod platform;

use std::fmt;

use serde_json::Value;

pub use descriptor::Descriptor;
pub use image::ImageManifest;
pub use index::{select, ImageIndex, Selection};
pub use platform::{Platform, PlatformFilter, PlatformPart, PlatformProblem};

use crate::digest::{Digest, DigestError};
use descriptor::{json_kind, Fields};
use media_type::{Kind, MAX_MANIFEST_BYTES};

/// Why a manifest (or a platform text) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// Over the size ferry reads: registries refuse such manifests on push anyway.
    #[error(
        "manifest is {size} bytes, over ferry's limit of {limit} bytes; registries refuse \
         manifests this large, so this image cannot be copied as it is"
    )]
    TooLarge {
        /// The body's length.
        size: usize,
        /// ferry's limit.
        limit: usize,
    },
    /// The body is not JSON.
    #[error(
        "manifest is not valid JSON (line {line}, column {column}: {reason}); the registry \
         sent a damaged or non-manifest body: check the reference and retry"
    )]
    InvalidJson {
        /// Where serde_json stopped, from 1.
        line: usize,
        /// Where serde_json stopped, from 1.
        column: usize,
        /// serde_json's message, without its position.
        reason: String,
    },
    /// JSON, but not an object.
    #[error("manifest must be a JSON object but is {found}; the registry did not send a manifest")]
    NotAnObject {
        /// What it is instead: "an array", "a string", ...
        found: &'static str,
    },
    /// `application/vnd.docker.distribution.manifest.v1+json`: deprecated since schema2, and
    /// signed over its repository name, so it cannot move to another repository unchanged.
    #[error(
        "this is a Docker schema1 manifest, which is deprecated and which ferry does not copy; \
         re-push the image with a current client (docker, buildx, podman), or convert it with \
         `skopeo copy --format v2s2 docker://SOURCE docker://DESTINATION`"
    )]
    Schema1Unsupported,
    /// distribution-spec, pulling manifests: "If the manifest has a `mediaType` field, clients
    /// SHOULD reject unless the `mediaType` field's value matches the type specified by the
    /// `Content-Type` header".
    #[error(
        "the Content-Type header says {header} but the manifest's mediaType field says {field}; \
         ferry will not guess which is right: re-push the image so that they agree"
    )]
    MediaTypeMismatch {
        /// The `Content-Type` answered.
        header: String,
        /// The manifest's `mediaType`.
        field: String,
    },
    /// A media type that is not a manifest or an index ferry knows.
    #[error(
        "manifest media type {media_type} is not one ferry copies (OCI image manifest or index, \
         Docker schema2 manifest or manifest list); leave this reference out of the sync"
    )]
    UnsupportedMediaType {
        /// The media type given.
        media_type: String,
    },
    /// Neither a media type nor the shape of a manifest or an index to tell what it is.
    #[error(
        "manifest has no known media type (no manifest Content-Type and no `mediaType` field) and \
         neither a `manifests` array nor `config` and `layers`; the registry did not send an image \
         manifest or index"
    )]
    UnknownKind,
    /// A field the spec marks REQUIRED is absent.
    #[error("manifest is missing the required field `{field}`; re-push the image with a conforming client")]
    MissingField {
        /// Its JSON path, e.g. `layers[2].digest`.
        field: String,
    },
    /// A field has the wrong type or an impossible value.
    #[error("manifest field `{field}` is invalid: {reason}; re-push the image with a conforming client")]
    InvalidField {
        /// Its JSON path.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A descriptor's `digest` breaks the spec's digest grammar.
    #[error(
        "manifest field `{field}` holds an invalid digest: {source}; re-push the image with a \
         conforming client"
    )]
    InvalidDigest {
        /// Its JSON path.
        field: String,
        /// Why it is not a digest.
        source: DigestError,
    },
    /// The bytes fetched by digest hash to another one: the registry served other content.
    /// A manifest is pushed exactly as fetched, so this one must never reach the destination.
    #[error(
        "manifest content has digest {actual}, not the {expected} that was asked for; the \
         registry served different bytes: retry, and check the source if it persists"
    )]
    DigestMismatch {
        /// The digest asked for.
        expected: Digest,
        /// The digest of the bytes received.
        actual: Digest,
    },
    /// A platform filter that is not `os/arch[/variant]`.
    #[error("{input:?} is not a valid {part}: {problem}; write it as {}", part.form())]
    InvalidPlatform {
        /// The text given.
        input: String,
        /// Which kind of platform text it was read as.
        part: PlatformPart,
        /// What is wrong with it.
        problem: PlatformProblem,
    },
    /// A platform filter on a single-platform manifest: there is nothing to choose from.
    #[error(
        "platform selection needs an image index or manifest list, but this manifest is \
         {media_type}; it has a single platform, so copy it without a platform filter"
    )]
    NotAnIndex {
        /// The manifest's media type.
        media_type: String,
    },
    /// The filter keeps no child of the index: copying an empty index would be a lie.
    #[error(
        "no manifest in the index matches the platform filter `{filter}`; the index has {}: \
         choose from these or drop the filter",
        available.join(", ")
    )]
    NoMatchingPlatform {
        /// The filter as given.
        filter: String,
        /// The index's platforms, to choose from.
        available: Vec<String>,
    },
}

/// serde_json's message without its position, plus the position.
fn json_error(error: serde_json::Error) -> ManifestError {
    let (line, column) = (error.line(), error.column());
    let message = error.to_string();
    let suffix = format!(" at line {line} column {column}");
    let reason = message.strip_suffix(&suffix).unwrap_or(&message).to_owned();
    ManifestError::InvalidJson { line, column, reason }
}

/// The parsed view of a manifest.
// One per fetched manifest, held in a RawManifest and rarely moved: boxing the larger
// variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    /// An OCI image manifest or Docker schema2 manifest.
    Image(ImageManifest),
    /// An OCI image index or Docker manifest list.
    Index(ImageIndex),
}

/// A manifest's exact bytes, their media type and digest, and the parsed view.
#[derive(Clone, PartialEq, Eq)]
pub struct RawManifest {
    bytes: Vec<u8>,
    media_type: &'static str,
    digest: Digest,
    manifest: Manifest,
}

impl fmt::Debug for RawManifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawManifest")
            .field("media_type", &self.media_type)
            .field("digest", &self.digest)
            .field("len", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

impl RawManifest {
    /// Parses fetched manifest bytes, keeping them as they are.
    ///
    /// The media type comes from `content_type` (the response's `Content-Type`) when that
    /// is a manifest type, else from the document's `mediaType` field, else from its shape:
    /// image-spec says of `mediaType` that it "SHOULD be used", so an OCI document may
    /// lack it, and then `manifests` means an index and `config` with `layers` means an
    /// image manifest. A header and field that disagree are an error: which one the
    /// destination would believe is unknowable.
    pub fn parse(bytes: Vec<u8>, content_type: Option<&str>) -> Result<RawManifest, ManifestError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge { size: bytes.len(), limit: MAX_MANIFEST_BYTES });
        }
        let header = content_type.and_then(|ct| media_type::classify(&media_type::essence(ct)));
        if matches!(header, Some((_, Kind::Schema1))) {
            return Err(ManifestError::Schema1Unsupported);
        }
        let value: Value = serde_json::from_slice(&bytes).map_err(json_error)?;
        let Value::Object(map) = &value else {
            return Err(ManifestError::NotAnObject { found: json_kind(&value) });
        };
        let fields = Fields::top_level(map);
        let field: Option<String> = fields.optional("mediaType")?;
        let field_kind = field.as_deref().and_then(media_type::classify);
        let schema_version = map.get("schemaVersion");
        if matches!(field_kind, Some((_, Kind::Schema1))) || schema_version.and_then(Value::as_u64) == Some(1)
        {
            return Err(ManifestError::Schema1Unsupported);
        }
        let (media_type, kind) = match (header, field) {
            (Some((header, _)), Some(field)) if field != header => {
                return Err(ManifestError::MediaTypeMismatch { header: header.to_owned(), field });
            }
            (Some(known), _) => known,
            (None, Some(field)) => {
                field_kind.ok_or(ManifestError::UnsupportedMediaType { media_type: field })?
            }
            (None, None) if map.contains_key("manifests") => (media_type::OCI_INDEX, Kind::Index),
            (None, None) if map.contains_key("config") && map.contains_key("layers") => {
                (media_type::OCI_MANIFEST, Kind::Image)
            }
            (None, None) => return Err(ManifestError::UnknownKind),
        };
        let schema_version = match schema_version {
            None | Some(Value::Null) => {
                return Err(ManifestError::MissingField { field: "schemaVersion".to_owned() })
            }
            Some(v) if v.as_u64() == Some(2) => 2,
            Some(other) => {
                return Err(ManifestError::InvalidField {
                    field: "schemaVersion".to_owned(),
                    reason: format!("must be 2, found {other}"),
                })
            }
        };
        let manifest = match kind {
            Kind::Image => Manifest::Image(ImageManifest::from_fields(schema_version, &fields)?),
            Kind::Index => Manifest::Index(ImageIndex::from_fields(schema_version, &fields)?),
            Kind::Schema1 => return Err(ManifestError::Schema1Unsupported),
        };
        let digest = Digest::sha256(&bytes);
        Ok(RawManifest { bytes, media_type, digest, manifest })
    }

    /// The exact bytes, to push unchanged.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// One of the four manifest types in [`media_type`]; send it as the push's Content-Type.
    pub fn media_type(&self) -> &'static str {
        self.media_type
    }

    /// The sha256 digest of the exact bytes.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The parsed view of the bytes, for planning; the bytes themselves are what is pushed.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Checks the bytes against the digest they were requested by (a `@sha256:` or
    /// `@sha512:` reference), hashing with that digest's algorithm.
    pub fn verify(&self, expected: &Digest) -> Result<(), ManifestError> {
        let actual = if expected.algorithm() == self.digest.algorithm() {
            self.digest.clone()
        } else {
            Digest::of(expected.algorithm(), &self.bytes)
        };
        if &actual == expected {
            Ok(())
        } else {
            Err(ManifestError::DigestMismatch { expected: expected.clone(), actual })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::media_type::*;
    use super::*;
    use crate::digest::Algorithm;
    use serde_json::json;

    const OCI_MANIFEST_JSON: &[u8] = include_bytes!("../../tests/fixtures/manifest/oci-manifest.json");
    const DOCKER_MANIFEST_JSON: &[u8] = include_bytes!("../../tests/fixtures/manifest/docker-manifest.json");
    const DOCKER_LIST_JSON: &[u8] = include_bytes!("../../tests/fixtures/manifest/docker-manifest-list.json");
    const OCI_INDEX_JSON: &[u8] = include_bytes!("../../tests/fixtures/manifest/oci-index.json");
    const REFERRERS_JSON: &[u8] = include_bytes!("../../tests/fixtures/manifest/oci-index-referrers.json");
    const ARTIFACT_JSON: &[u8] = include_bytes!("../../tests/fixtures/manifest/oci-artifact.json");
    const WINDOWS_JSON: &[u8] = include_bytes!("../../tests/fixtures/manifest/docker-windows-manifest.json");
    const SCHEMA1_JSON: &[u8] = include_bytes!("../../tests/fixtures/manifest/schema1-signed.json");

    const DIGEST: &str = "sha256:2804bad6fe94a55f18b2b37e300919a5fd517b95aa81e95db574c0ba069a3740";

    fn descriptor(media_type: &str) -> Value {
        json!({"mediaType": media_type, "digest": DIGEST, "size": 10})
    }

    fn image_json(extra: Value) -> Vec<u8> {
        let mut value = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG),
            "layers": [descriptor(OCI_LAYER_GZIP), descriptor(OCI_LAYER_GZIP), descriptor(OCI_LAYER_GZIP)],
        });
        let (Value::Object(base), Value::Object(extra)) = (&mut value, extra) else { unreachable!() };
        for (key, field) in extra {
            if field.is_null() {
                base.remove(&key);
            } else {
                base.insert(key, field);
            }
        }
        serde_json::to_vec(&value).unwrap()
    }

    fn missing(field: &str) -> ManifestError {
        ManifestError::MissingField { field: field.into() }
    }

    fn invalid(field: &str, reason: &str) -> ManifestError {
        ManifestError::InvalidField { field: field.into(), reason: reason.into() }
    }

    fn bad_digest(field: &str, value: &str) -> ManifestError {
        ManifestError::InvalidDigest { field: field.into(), source: value.parse::<Digest>().unwrap_err() }
    }

    #[test]
    fn parse_table() {
        use Kind::{Image, Index};
        let oversized = {
            let mut bytes = image_json(json!({}));
            bytes.resize(MAX_MANIFEST_BYTES + 1, b' ');
            bytes
        };
        let bad_layer = image_json(json!({"layers": [descriptor(OCI_LAYER), descriptor(OCI_LAYER),
            {"mediaType": OCI_LAYER, "digest": "sha256:ABC", "size": 1}]}));
        #[rustfmt::skip]
        type Case<'a> = (&'a str, Vec<u8>, Option<&'a str>, Result<(&'a str, Kind), ManifestError>);
        let cases: Vec<Case> = vec![
            ("oci manifest by header", OCI_MANIFEST_JSON.to_vec(), Some(OCI_MANIFEST), Ok((OCI_MANIFEST, Image))),
            ("oci manifest by field", OCI_MANIFEST_JSON.to_vec(), None, Ok((OCI_MANIFEST, Image))),
            ("header with charset", OCI_MANIFEST_JSON.to_vec(), Some("Application/vnd.oci.image.manifest.v1+JSON; charset=utf-8"), Ok((OCI_MANIFEST, Image))),
            ("generic header ignored", OCI_INDEX_JSON.to_vec(), Some("application/json"), Ok((OCI_INDEX, Index))),
            ("docker manifest", DOCKER_MANIFEST_JSON.to_vec(), Some(DOCKER_MANIFEST), Ok((DOCKER_MANIFEST, Image))),
            ("docker manifest by field", DOCKER_MANIFEST_JSON.to_vec(), Some("text/plain"), Ok((DOCKER_MANIFEST, Image))),
            ("docker foreign layers", WINDOWS_JSON.to_vec(), None, Ok((DOCKER_MANIFEST, Image))),
            ("docker manifest list", DOCKER_LIST_JSON.to_vec(), Some(DOCKER_MANIFEST_LIST), Ok((DOCKER_MANIFEST_LIST, Index))),
            ("oci index", OCI_INDEX_JSON.to_vec(), Some(OCI_INDEX), Ok((OCI_INDEX, Index))),
            ("index with subject and urls", REFERRERS_JSON.to_vec(), None, Ok((OCI_INDEX, Index))),
            ("artifact manifest", ARTIFACT_JSON.to_vec(), Some(OCI_MANIFEST), Ok((OCI_MANIFEST, Image))),
            ("index by shape", br#"{"schemaVersion":2,"manifests":[]}"#.to_vec(), None, Ok((OCI_INDEX, Index))),
            ("manifest by shape", image_json(json!({"mediaType": null})), None, Ok((OCI_MANIFEST, Image))),
            ("header beats shape", image_json(json!({"mediaType": null})), Some(DOCKER_MANIFEST), Ok((DOCKER_MANIFEST, Image))),
            ("unknown fields everywhere", image_json(json!({"x-top": {"a": [1]}, "config": {"mediaType": OCI_CONFIG, "digest": DIGEST, "size": 1, "x-in": true, "platform": {"os": "linux", "architecture": "amd64", "x-deep": 1}}})), None, Ok((OCI_MANIFEST, Image))),
            ("null optional fields", image_json(json!({"annotations": null, "subject": null, "artifactType": null})), None, Ok((OCI_MANIFEST, Image))),
            ("header and field disagree", OCI_MANIFEST_JSON.to_vec(), Some(OCI_INDEX), Err(ManifestError::MediaTypeMismatch { header: OCI_INDEX.into(), field: OCI_MANIFEST.into() })),
            ("docker header, oci field", OCI_MANIFEST_JSON.to_vec(), Some(DOCKER_MANIFEST), Err(ManifestError::MediaTypeMismatch { header: DOCKER_MANIFEST.into(), field: OCI_MANIFEST.into() })),
            ("list header, oci index field", OCI_INDEX_JSON.to_vec(), Some(DOCKER_MANIFEST_LIST), Err(ManifestError::MediaTypeMismatch { header: DOCKER_MANIFEST_LIST.into(), field: OCI_INDEX.into() })),
            ("schema1 by header", SCHEMA1_JSON.to_vec(), Some(DOCKER_SCHEMA1_SIGNED), Err(ManifestError::Schema1Unsupported)),
            ("schema1 by header, body not json", b"not json".to_vec(), Some(DOCKER_SCHEMA1), Err(ManifestError::Schema1Unsupported)),
            ("schema1 by schemaVersion", SCHEMA1_JSON.to_vec(), None, Err(ManifestError::Schema1Unsupported)),
            ("schema1 by schemaVersion, generic header", SCHEMA1_JSON.to_vec(), Some("application/json"), Err(ManifestError::Schema1Unsupported)),
            ("schema1 by field", br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v1+json"}"#.to_vec(), None, Err(ManifestError::Schema1Unsupported)),
            ("too large", oversized, Some(OCI_MANIFEST), Err(ManifestError::TooLarge { size: MAX_MANIFEST_BYTES + 1, limit: MAX_MANIFEST_BYTES })),
            ("empty body", Vec::new(), Some(OCI_MANIFEST), Err(ManifestError::InvalidJson { line: 1, column: 0, reason: "EOF while parsing a value".into() })),
            ("truncated", b"{\n  \"schemaVersion\": 2,\n  \"layers\": [".to_vec(), None, Err(ManifestError::InvalidJson { line: 3, column: 13, reason: "EOF while parsing a list".into() })),
            ("not json", b"{not json}".to_vec(), None, Err(ManifestError::InvalidJson { line: 1, column: 2, reason: "key must be a string".into() })),
            ("trailing bytes", b"{} {}".to_vec(), None, Err(ManifestError::InvalidJson { line: 1, column: 4, reason: "trailing characters".into() })),
            ("array", b"[]".to_vec(), None, Err(ManifestError::NotAnObject { found: "an array" })),
            ("no clue", br#"{"schemaVersion":2}"#.to_vec(), None, Err(ManifestError::UnknownKind)),
            ("config without layers", br#"{"schemaVersion":2,"config":{}}"#.to_vec(), Some("application/octet-stream"), Err(ManifestError::UnknownKind)),
            ("artifact manifest type", image_json(json!({"mediaType": "application/vnd.oci.artifact.manifest.v1+json"})), None, Err(ManifestError::UnsupportedMediaType { media_type: "application/vnd.oci.artifact.manifest.v1+json".into() })),
            ("mediaType not a string", image_json(json!({"mediaType": 42})), None, Err(invalid("mediaType", "invalid type: integer `42`, expected a string"))),
            ("missing schemaVersion", image_json(json!({"schemaVersion": null})), None, Err(missing("schemaVersion"))),
            ("schemaVersion 3", image_json(json!({"schemaVersion": 3})), None, Err(invalid("schemaVersion", "must be 2, found 3"))),
            ("schemaVersion string", image_json(json!({"schemaVersion": "2"})), None, Err(invalid("schemaVersion", "must be 2, found \"2\""))),
            ("missing config", image_json(json!({"config": null})), None, Err(missing("config"))),
            ("missing layers", image_json(json!({"layers": null})), Some(OCI_MANIFEST), Err(missing("layers"))),
            ("missing manifests", br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"}"#.to_vec(), None, Err(missing("manifests"))),
            ("missing layer size", image_json(json!({"layers": [descriptor(OCI_LAYER), {"mediaType": OCI_LAYER, "digest": DIGEST}]})), None, Err(missing("layers[1].size"))),
            ("missing config digest", image_json(json!({"config": {"mediaType": OCI_CONFIG, "size": 2}})), None, Err(missing("config.digest"))),
            ("layers not an array", image_json(json!({"layers": {}})), None, Err(invalid("layers", "expected an array of descriptors, found an object"))),
            ("bad layer digest", bad_layer, None, Err(bad_digest("layers[2].digest", "sha256:ABC"))),
            ("bad config digest", image_json(json!({"config": {"mediaType": OCI_CONFIG, "digest": "md5:abc", "size": 2}})), None, Err(bad_digest("config.digest", "md5:abc"))),
            ("bad subject digest", image_json(json!({"subject": {"mediaType": OCI_MANIFEST, "digest": "sha256", "size": 2}})), None, Err(bad_digest("subject.digest", "sha256"))),
            ("bad child digest", br#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha512:00","size":1}]}"#.to_vec(), None, Err(bad_digest("manifests[0].digest", "sha512:00"))),
            ("platform without os", br#"{"schemaVersion":2,"manifests":[{"mediaType":"a/b","digest":"sha256:2804bad6fe94a55f18b2b37e300919a5fd517b95aa81e95db574c0ba069a3740","size":1,"platform":{"architecture":"amd64"}}]}"#.to_vec(), None, Err(invalid("manifests[0]", "missing field `os`"))),
            ("annotation not a string", image_json(json!({"annotations": {"a": 1}})), None, Err(invalid("annotations", "invalid type: integer `1`, expected a string"))),
        ];
        for (name, bytes, content_type, want) in cases {
            let got = RawManifest::parse(bytes.clone(), content_type);
            match want {
                Ok((media_type, kind)) => {
                    let raw = got.unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert_eq!(raw.media_type(), media_type, "{name}");
                    let got_kind = match raw.manifest() {
                        Manifest::Image(_) => Image,
                        Manifest::Index(_) => Index,
                    };
                    assert_eq!(got_kind, kind, "{name}");
                    assert_eq!(raw.bytes(), bytes, "{name}: bytes kept");
                    assert_eq!(raw.digest(), &Digest::sha256(&bytes), "{name}");
                }
                Err(e) => assert_eq!(got, Err(e), "{name}"),
            }
        }
    }

    #[test]
    fn error_messages_name_the_thing_and_the_fix() {
        let cases = [
            (
                RawManifest::parse(SCHEMA1_JSON.to_vec(), None).unwrap_err(),
                "this is a Docker schema1 manifest, which is deprecated and which ferry does not copy; \
                 re-push the image with a current client (docker, buildx, podman), or convert it with \
                 `skopeo copy --format v2s2 docker://SOURCE docker://DESTINATION`",
            ),
            (
                RawManifest::parse(b"{not json}".to_vec(), None).unwrap_err(),
                "manifest is not valid JSON (line 1, column 2: key must be a string); the registry \
                 sent a damaged or non-manifest body: check the reference and retry",
            ),
            (
                RawManifest::parse(OCI_MANIFEST_JSON.to_vec(), Some(OCI_INDEX)).unwrap_err(),
                "the Content-Type header says application/vnd.oci.image.index.v1+json but the \
                 manifest's mediaType field says application/vnd.oci.image.manifest.v1+json; ferry \
                 will not guess which is right: re-push the image so that they agree",
            ),
            (
                bad_digest("layers[2].digest", "sha256:ABC"),
                "manifest field `layers[2].digest` holds an invalid digest: digest \"sha256:ABC\" must \
                 have exactly 64 hex characters after `sha256:`, found 3; re-push the image with a \
                 conforming client",
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.to_string(), want);
        }
    }

    #[test]
    fn verify_table() {
        let raw = RawManifest::parse(OCI_MANIFEST_JSON.to_vec(), None).unwrap();
        let sha256 = Digest::sha256(OCI_MANIFEST_JSON);
        let sha512 = Digest::of(Algorithm::Sha512, OCI_MANIFEST_JSON);
        let other = Digest::sha256(b"something else");
        let cases = [
            (sha256.clone(), Ok(())),
            (sha512, Ok(())),
            (other.clone(), Err(ManifestError::DigestMismatch { expected: other, actual: sha256.clone() })),
            (
                Digest::of(Algorithm::Sha512, b"x"),
                Err(ManifestError::DigestMismatch {
                    expected: Digest::of(Algorithm::Sha512, b"x"),
                    actual: Digest::of(Algorithm::Sha512, OCI_MANIFEST_JSON),
                }),
            ),
        ];
        for (expected, want) in cases {
            assert_eq!(raw.verify(&expected), want, "{expected}");
        }
        assert_eq!(raw.digest(), &sha256);
    }

    #[test]
    fn debug_is_short() {
        let raw = RawManifest::parse(OCI_MANIFEST_JSON.to_vec(), None).unwrap();
        let debug = format!("{raw:?}");
        assert!(debug.starts_with("RawManifest { media_type: \"application/vnd.oci.image.manifest.v1+json\""));
        assert!(debug.len() < 200, "{debug}");
    }

    #[test]
    fn prefixes_and_mutations_never_panic() {
        for bytes in [OCI_INDEX_JSON, DOCKER_LIST_JSON, ARTIFACT_JSON, SCHEMA1_JSON] {
            for end in 0..bytes.len() {
                let _ = RawManifest::parse(bytes[..end].to_vec(), None);
            }
        }
        let filter = PlatformFilter::new(&[], &["arm64".to_owned()], &[]).unwrap();
        for position in 0..OCI_INDEX_JSON.len() {
            for byte in [b'"', b'}', 0xff] {
                let mut bytes = OCI_INDEX_JSON.to_vec();
                bytes[position] = byte;
                if let Ok(raw) = RawManifest::parse(bytes, None) {
                    let _ = select(&raw, &filter);
                }
            }
        }
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(matches!(
            RawManifest::parse(deep.into_bytes(), None),
            Err(ManifestError::InvalidJson { .. })
        ));
    }
}
