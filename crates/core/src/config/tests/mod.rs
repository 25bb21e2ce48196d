//! Table tests: every way a configuration can be wrong, with the exact error.

mod files;
mod rules;

use super::*;

const SHA: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const SOURCE_FIX: &str = "write the source as [registry/]repository, optionally followed by :tag, \
    :tag1,tag2, @sha256:<digest> or :/regex/; or write a registry host alone to copy all of its repositories";
const DESTINATION_FIX: &str = "write the destination as [registry/]repository, optionally followed by \
    :tag or :tag1,tag2 (one per source tag)";
const NO_DESTINATION_FIX: &str = "write `source: destination`, or a list of destinations; image-syncer's \
    default --registry/--namespace destination is not supported";
const YAML_FIX: &str =
    "correct the YAML at that position; quote strings that contain \": \" or start with a special character";
const DUPLICATE_FIX: &str =
    "keep one entry per key; to copy one source to several destinations, give it a list of destinations";
const AUTH_KEY_FIX: &str =
    "write a registry host, optionally followed by /namespace, e.g. quay.io or quay.io/coreos";
const REGISTRY_DESTINATION_FIX: &str =
    "write a registry host, optionally followed by a path prefix, e.g. registry.example.com:5000/mirror";
const TAG_RULE: &str = "a tag starts with a letter, digit or '_' and continues with letters, digits, '_', \
    '.' or '-' ([a-zA-Z0-9_][a-zA-Z0-9._-]{0,127})";
const UNSET_FIX: &str = "in the environment; a literal '$' cannot be escaped, so pass a value that contains \
    one through a variable";

fn env(name: &str) -> Option<String> {
    match name {
        "PASSWORD" => Some("s3cret".into()),
        "REGISTRY" => Some("registry.example.com".into()),
        _ => None,
    }
}

fn err(file: &str, key: Option<&str>, problem: &str, fix: &str) -> ConfigError {
    ConfigError { file: file.into(), key: key.map(Into::into), problem: problem.into(), fix: fix.into() }
}

fn unset(file: &str, key: &str, what: &str, name: &str) -> ConfigError {
    err(
        file,
        Some(key),
        &format!("{what} refers to environment variable {name:?}, which is not set"),
        &format!("set {name} {UNSET_FIX}"),
    )
}
