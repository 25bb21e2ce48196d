//! A format-neutral document tree, so that JSON and YAML files go through one validator.
//!
//! Maps keep the file's order (rules run in the order they are written) and reject
//! duplicate keys: serde_json would silently keep the last one, and a repeated source in
//! an images file is almost always a rule that was meant to have two destinations.

use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{ConfigError, Format};

/// The start of the error message for a repeated key; [`parse`] recognises it to give a
/// specific fix.
const DUPLICATE_KEY: &str = "duplicate key";

/// One parsed value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl Node {
    /// What the value is, for "expected X, found Y" messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Node::Null => "nothing (null)",
            Node::Bool(_) => "true/false",
            Node::Int(_) => "a number",
            Node::Float(_) => "a decimal number",
            Node::Str(_) => "a string",
            Node::Seq(_) => "a list",
            Node::Map(_) => "a map",
        }
    }
}

/// Parses `text` in `format` into a tree. Syntax errors keep serde's line and column.
pub(crate) fn parse(file: &str, format: Format, text: &str) -> Result<Node, ConfigError> {
    let empty = || {
        ConfigError::new(
            file,
            None,
            "the file is empty",
            "write the configuration into it, or pass another file",
        )
    };
    if text.trim().is_empty() {
        return Err(empty());
    }
    let parsed = match format {
        Format::Json => serde_json::from_str::<Node>(text).map_err(|e| e.to_string()),
        Format::Yaml => serde_norway::from_str::<Node>(text).map_err(|e| {
            // serde_norway leaves out a position at line 1, column 1; say it anyway.
            match e.location() {
                Some(at) if !e.to_string().contains(" at line ") => {
                    format!("{e} at line {} column {}", at.line(), at.column())
                }
                _ => e.to_string(),
            }
        }),
    };
    match parsed {
        Ok(Node::Null) => Err(empty()),
        Ok(node) => Ok(node),
        Err(message) => {
            let fix = if message.contains(DUPLICATE_KEY) {
                "keep one entry per key; to copy one source to several destinations, give it a list of destinations"
            } else {
                match format {
                    Format::Json => "correct the JSON at that position (JSON allows no comments and no trailing commas)",
                    Format::Yaml => "correct the YAML at that position; quote strings that contain \": \" or start with a special character",
                }
            };
            Err(ConfigError::new(file, None, format!("cannot parse {}: {message}", format.name()), fix))
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, number, boolean, list or map")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Int(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        Node::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut seen = BTreeSet::new();
        let mut entries = Vec::new();
        while let Some(key) = map.next_key_seed(Key { seen: &mut seen })? {
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }
}

/// A map key: a string not seen before in the same map. The check runs inside the key's
/// own visitor, so serde reports the position of the offending key.
struct Key<'a> {
    seen: &'a mut BTreeSet<String>,
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key (quote the key)")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<String, E> {
        if self.seen.insert(key.to_owned()) {
            Ok(key.to_owned())
        } else {
            Err(E::custom(format!("{DUPLICATE_KEY} {key:?}")))
        }
    }
}
