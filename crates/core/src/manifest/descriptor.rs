//! Content descriptors, and reading manifest JSON field by field so errors name the path.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::{ManifestError, Platform};
use crate::digest::Digest;

/// OCI image-spec, "Content Descriptors": "A Content Descriptor includes the type of the
/// content, a content identifier (digest), and the byte-size of the raw content."
///
/// Unknown fields are ignored: image-spec "Extensibility" says implementations "MUST NOT
/// generate an error if they encounter an unknown property".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// "This REQUIRED property contains the media type of the referenced content."
    pub media_type: String,
    /// "This REQUIRED property is the digest of the targeted content."
    pub digest: Digest,
    /// "This REQUIRED property specifies the size, in bytes, of the raw content."
    pub size: u64,
    /// "This OPTIONAL property specifies a list of URIs from which this object MAY be
    /// downloaded." Foreign layers carry them.
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// "This OPTIONAL property contains arbitrary metadata for this descriptor."
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Index entries only: "the minimum runtime requirements of the image".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// "This OPTIONAL property contains the type of an artifact when the descriptor points
    /// to an artifact."
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// "This OPTIONAL property contains an embedded representation of the referenced
    /// content. Values MUST conform to the Base 64 encoding, as defined in RFC 4648." Kept
    /// as the text that was sent; ferry never needs the decoded bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// Reads `null` like an absent field. Go encoders write `null` for a nil slice or map
/// without `omitempty`, and registries accept such manifests, so ferry must copy them.
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A JSON object of a manifest, read one field at a time so that every error names the
/// field's path (`layers[2].digest`) rather than a byte offset.
pub(super) struct Fields<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Fields<'a> {
    pub(super) fn top_level(map: &'a Map<String, Value>) -> Self {
        Fields { map, path: String::new() }
    }

    fn path_of(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The field's value; absent and `null` are both `None`.
    pub(super) fn optional<T: Deserialize<'a>>(&self, key: &str) -> Result<Option<T>, ManifestError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => T::deserialize(value)
                .map(Some)
                .map_err(|e| ManifestError::InvalidField { field: self.path_of(key), reason: e.to_string() }),
        }
    }

    pub(super) fn descriptor(&self, key: &str) -> Result<Option<Descriptor>, ManifestError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => descriptor_at(value, self.path_of(key)).map(Some),
        }
    }

    pub(super) fn required_descriptor(&self, key: &str) -> Result<Descriptor, ManifestError> {
        self.descriptor(key)?.ok_or_else(|| ManifestError::MissingField { field: self.path_of(key) })
    }

    /// A required array of descriptors, such as `layers` or `manifests`.
    pub(super) fn descriptors(&self, key: &str) -> Result<Vec<Descriptor>, ManifestError> {
        let path = self.path_of(key);
        match self.map.get(key) {
            None | Some(Value::Null) => Err(ManifestError::MissingField { field: path }),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| descriptor_at(item, format!("{path}[{i}]")))
                .collect(),
            Some(other) => Err(ManifestError::InvalidField {
                field: path,
                reason: format!("expected an array of descriptors, found {}", json_kind(other)),
            }),
        }
    }
}

/// Reads one descriptor, checking its required fields and digest first so those errors
/// are typed and carry the exact path.
fn descriptor_at(value: &Value, path: String) -> Result<Descriptor, ManifestError> {
    let Value::Object(map) = value else {
        return Err(ManifestError::InvalidField {
            field: path,
            reason: format!("expected a descriptor object, found {}", json_kind(value)),
        });
    };
    let fields = Fields { map, path };
    for key in ["mediaType", "digest", "size"] {
        if matches!(map.get(key), None | Some(Value::Null)) {
            return Err(ManifestError::MissingField { field: fields.path_of(key) });
        }
    }
    if let Some(Value::String(digest)) = map.get("digest") {
        if let Err(source) = digest.parse::<Digest>() {
            return Err(ManifestError::InvalidDigest { field: fields.path_of("digest"), source });
        }
    }
    Descriptor::deserialize(value)
        .map_err(|e| ManifestError::InvalidField { field: fields.path, reason: e.to_string() })
}

/// "an array", "a string", ...: how a JSON value is named in an error.
pub(super) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::DigestError;
    use serde_json::json;

    const DIGEST: &str = "sha256:2804bad6fe94a55f18b2b37e300919a5fd517b95aa81e95db574c0ba069a3740";

    fn read(value: Value) -> Result<Descriptor, ManifestError> {
        descriptor_at(&value, "layers[2]".to_owned())
    }

    #[test]
    fn descriptor_table() {
        let invalid = |reason: &str| {
            Err(ManifestError::InvalidField { field: "layers[2]".into(), reason: reason.into() })
        };
        let missing = |field: &str| Err(ManifestError::MissingField { field: field.into() });
        let cases: Vec<(&str, Value, Result<(), ManifestError>)> = vec![
            ("minimal", json!({"mediaType": "a/b", "digest": DIGEST, "size": 1}), Ok(())),
            (
                "unknown fields and nulls",
                json!({"mediaType": "a/b", "digest": DIGEST, "size": 1, "urls": null,
                       "annotations": null, "x-extra": {"deep": [1]}}),
                Ok(()),
            ),
            ("missing mediaType", json!({"digest": DIGEST, "size": 1}), missing("layers[2].mediaType")),
            ("missing digest", json!({"mediaType": "a/b", "size": 1}), missing("layers[2].digest")),
            (
                "null size",
                json!({"mediaType": "a/b", "digest": DIGEST, "size": null}),
                missing("layers[2].size"),
            ),
            (
                "short digest",
                json!({"mediaType": "a/b", "digest": "sha256:abc", "size": 1}),
                Err(ManifestError::InvalidDigest {
                    field: "layers[2].digest".into(),
                    source: DigestError::WrongLength {
                        input: "sha256:abc".into(),
                        algorithm: "sha256",
                        expected: 64,
                        found: 3,
                    },
                }),
            ),
            (
                "digest not a string",
                json!({"mediaType": "a/b", "digest": 7, "size": 1}),
                invalid("invalid type: integer `7`, expected a string"),
            ),
            (
                "negative size",
                json!({"mediaType": "a/b", "digest": DIGEST, "size": -1}),
                invalid("invalid value: integer `-1`, expected u64"),
            ),
            (
                "urls not an array",
                json!({"mediaType": "a/b", "digest": DIGEST, "size": 1, "urls": "https://x"}),
                invalid("invalid type: string \"https://x\", expected a sequence"),
            ),
            ("not an object", json!("sha256:x"), invalid("expected a descriptor object, found a string")),
        ];
        for (name, value, want) in cases {
            assert_eq!(read(value).map(|_| ()), want, "{name}");
        }
    }

    #[test]
    fn serialises_in_spec_shape() {
        let descriptor = read(json!({
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            "size": 2,
            "data": "e30=",
            "urls": []
        }))
        .unwrap();
        assert_eq!(descriptor.data.as_deref(), Some("e30="));
        assert_eq!(
            serde_json::to_value(&descriptor).unwrap(),
            json!({
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
                "size": 2,
                "data": "e30="
            })
        );
    }
}
