//! docker's `config.json`: inline auths, credential helpers, and errors that name the file
//! and the key but never a secret.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_core::auth::{Credential, CredentialStore};
use ferry_native::credentials::{CredentialError, DockerConfigLoader, HelperLookup};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A fake `docker-credential-<name>`: a shell script that answers for some servers.
fn helper(dir: &Path, name: &str, body: &str) {
    let path = write(dir, &format!("docker-credential-{name}"), &format!("#!/bin/sh\n{body}\n"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn loader(dir: &Path) -> DockerConfigLoader {
    DockerConfigLoader::new()
        .helper_lookup(HelperLookup::Dir(dir.to_owned()))
        .helper_timeout(Duration::from_secs(5))
}

fn pairs(credentials: &[(String, Credential)]) -> Vec<(&str, &str, &str)> {
    credentials.iter().map(|(k, c)| (k.as_str(), c.username.as_str(), c.password.as_str())).collect()
}

#[test]
fn inline_auths_decode_and_feed_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "config.json",
        r#"{
          "auths": {
            "https://index.docker.io/v1/": {"auth": "aHViOmh1Yi1wYXNz"},
            "quay.io": {"username": "q", "password": "q-pass", "email": "q@example.com"},
            "myacr.azurecr.io": {"auth": "MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAwOg==", "identitytoken": "eyJ..."},
            "empty.example": {}
          },
          "HttpHeaders": {"User-Agent": "Docker-Client"}
        }"#,
    );
    let loaded = loader(dir.path()).load(&path).unwrap();
    assert_eq!(
        pairs(&loaded.credentials),
        vec![
            ("https://index.docker.io/v1/", "hub", "hub-pass"),
            ("myacr.azurecr.io", "<token>", "eyJ..."),
            ("quay.io", "q", "q-pass"),
        ]
    );
    // The identity token wins over the `auth` docker keeps beside it.
    assert_eq!(loaded.credentials[1].1.refresh_token(), Some("eyJ..."));

    let store = CredentialStore::new(loaded.credentials).unwrap();
    assert_eq!(store.lookup("docker.io", "library/nginx").map(|c| c.username.as_str()), Some("hub"));
    assert_eq!(store.lookup("quay.io", "org/app").map(|c| c.username.as_str()), Some("q"));
}

#[test]
fn helpers_answer_for_their_registries() {
    let dir = tempfile::tempdir().unwrap();
    // The store knows one server; for others it fails as docker's helpers do.
    helper(
        dir.path(),
        "store",
        r#"read server
case "$server" in
  ghcr.io) echo '{"ServerURL":"ghcr.io","Username":"gh","Secret":"gh-token"}' ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac"#,
    );
    helper(dir.path(), "ecr", r#"read server; printf '{"Username":"AWS","Secret":"ecr-for-%s"}' "$server""#);
    let path = write(
        dir.path(),
        "config.json",
        r#"{
          "auths": {
            "ghcr.io": {},
            "gone.example": {},
            "inline.example": {"auth": "aW46bGluZQ=="},
            "123.dkr.ecr.us-east-1.amazonaws.com": {"auth": "b2xkOm9sZA=="}
          },
          "credsStore": "store",
          "credHelpers": {"123.dkr.ecr.us-east-1.amazonaws.com": "ecr"}
        }"#,
    );
    let loaded = loader(dir.path()).load(&path).unwrap();
    assert_eq!(
        pairs(&loaded.credentials),
        vec![
            // credHelpers first, and they override the entry's inline auth.
            ("123.dkr.ecr.us-east-1.amazonaws.com", "AWS", "ecr-for-123.dkr.ecr.us-east-1.amazonaws.com"),
            ("ghcr.io", "gh", "gh-token"),
            ("inline.example", "in", "line"),
        ]
    );
}

#[test]
fn a_helper_identity_token_becomes_a_refresh_token() {
    let dir = tempfile::tempdir().unwrap();
    helper(dir.path(), "acr", r#"echo '{"Username":"<token>","Secret":"refresh-SECRET"}'"#);
    let path = write(dir.path(), "config.json", r#"{"credHelpers": {"acr.example": "acr"}}"#);
    let loaded = loader(dir.path()).load(&path).unwrap();
    assert_eq!(loaded.credentials.len(), 1);
    assert_eq!(loaded.credentials[0].1.refresh_token(), Some("refresh-SECRET"));
    assert!(!format!("{:?}", loaded.credentials[0].1).contains("SECRET"), "no secret in debug output");
}

#[test]
fn errors_name_the_file_and_the_key_but_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    helper(dir.path(), "garbled", "echo 'not json SECRET'");
    helper(dir.path(), "slow", "sleep 5");
    let quick = loader(dir.path()).helper_timeout(Duration::from_millis(300));
    let cases: Vec<(&str, &str, Vec<&str>)> = vec![
        (
            r#"{"auths": {"reg.example": {"auth": "SECRET!!"}}}"#,
            "Entry",
            vec!["\"reg.example\"", "not base64"],
        ),
        (
            r#"{"auths": {"reg.example": {"auth": "U0VDUkVU"}}}"#,
            "Entry",
            vec!["\"reg.example\"", "without a `:`"],
        ),
        (r#"{"auths": {"reg.example": {"username": "u", "password": 5}}}"#, "Entry", vec!["not a string"]),
        (r#"{"auths": {"reg.example": {"username": "u"}}}"#, "Entry", vec!["no `password`"]),
        (r#"{"auths": {"reg.example": "SECRET"}}"#, "Entry", vec!["must be an object"]),
        (r#"{"auths": [], "x": 1}"#, "Entry", vec!["\"auths\""]),
        (r#"{"credsStore": 3}"#, "Entry", vec!["\"credsStore\""]),
        (r#"{"auths": {"a": {}}, "#, "Syntax", vec!["not valid JSON", "line 1"]),
        (
            r#"{"credHelpers": {"reg.example": "garbled"}}"#,
            "Helper",
            vec!["docker-credential-garbled", "\"reg.example\"", "protocol"],
        ),
        (
            r#"{"credHelpers": {"reg.example": "slow"}}"#,
            "Helper",
            vec!["docker-credential-slow", "did not answer within 0.3s"],
        ),
        (
            r#"{"credHelpers": {"reg.example": "absent"}}"#,
            "Helper",
            vec!["docker-credential-absent", "not installed"],
        ),
        (r#"{"credHelpers": {"reg.example": "../evil"}}"#, "Helper", vec!["not a helper name"]),
    ];
    for (text, kind, needles) in cases {
        let path = write(dir.path(), "bad.json", text);
        let error = quick.load(&path).unwrap_err();
        let message = error.to_string();
        let got_kind = match error {
            CredentialError::Entry { .. } => "Entry",
            CredentialError::Syntax { .. } => "Syntax",
            CredentialError::Helper { .. } => "Helper",
            _ => "other",
        };
        assert_eq!(got_kind, kind, "{text}: {message}");
        assert!(message.contains("bad.json"), "{message}");
        for needle in needles {
            assert!(message.contains(needle), "{text}: {message:?} lacks {needle:?}");
        }
        assert!(!message.contains("SECRET"), "{message}");
    }
    let missing = quick.load(&dir.path().join("nope.json")).unwrap_err();
    assert!(matches!(missing, CredentialError::Read { .. }));
    assert!(missing.to_string().contains("nope.json"));
}

#[test]
fn the_default_path_follows_docker_config() {
    // Only this test touches the environment in this binary.
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var("DOCKER_CONFIG", dir.path());
    assert_eq!(ferry_native::credentials::default_config_path(), Some(dir.path().join("config.json")));
    assert_eq!(
        ferry_native::credentials::load_docker_config(None).unwrap(),
        vec![],
        "no file, no credentials"
    );
    write(dir.path(), "config.json", r#"{"auths": {"r.example": {"auth": "dTpw"}}}"#);
    let credentials = ferry_native::credentials::load_docker_config(None).unwrap();
    assert_eq!(pairs(&credentials), vec![("r.example", "u", "p")]);
    std::env::remove_var("DOCKER_CONFIG");
}
