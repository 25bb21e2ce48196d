//! Interop with real peers on 127.0.0.1: skopeo pushes a multi-arch OCI image into
//! `ferry serve` and pulls it back out byte for byte; `skopeo sync` mirrors a real
//! distribution registry into ferry; skopeo authenticates with Basic and with the token
//! flow. The round trip runs again on the s3 driver over Garage.
//!
//! Needs `skopeo` (and `docker-registry` for the distribution tests). With
//! `FERRY_REQUIRE_PEERS=1` (as `scripts/test-all.sh` runs it) or `CI` set a missing tool
//! fails the test; otherwise the test is skipped with a message.

#[path = "support/mod.rs"]
mod support;

use std::path::Path;

use support::layout::{assert_blobs_identical, build_multiarch_layout, OCI_INDEX};
use support::s3::S3Server;
use support::{
    head, sha256, skopeo, skopeo_unchecked, write_htpasswd, Distribution, DistributionOpts, Ferry, TempDir,
};

const USER: &str = "bob";
const PASSWORD: &str = "hunter22";

fn oci(dir: &Path) -> String {
    format!("oci:{}:v1", dir.display())
}

fn manifest_digest(url: &str, repo: &str, reference: &str, auth: Option<(&str, &str)>) -> String {
    let mut r = support::request("HEAD", &format!("{url}/v2/{repo}/manifests/{reference}"))
        .header("Accept", OCI_INDEX);
    if let Some((u, p)) = auth {
        r = r.basic(u, p);
    }
    let r = r.send();
    assert_eq!(r.status, 200, "HEAD {url}/v2/{repo}/manifests/{reference}");
    r.header("docker-content-digest").unwrap().to_owned()
}

#[test]
fn skopeo_copy_all_round_trip_is_byte_identical() {
    if !support::require("skopeo") {
        return;
    }
    let dir = TempDir::new("skopeo-roundtrip");
    let ferry = Ferry::with_root(&dir.join("data"), &[]);
    round_trip(&ferry, &dir);
}

/// The same round trip on the s3 driver over a real S3 server (Garage), with blob GETs
/// redirected to presigned URLs of the store (skopeo follows them); `/healthz` turns 503
/// when the store goes away, and the server's debug log never shows the secret key.
#[test]
fn skopeo_copy_all_round_trip_on_s3() {
    if !support::require("skopeo") {
        return;
    }
    let Some(mut s3) = S3Server::start() else { return };
    let dir = TempDir::new("skopeo-roundtrip-s3");
    let storage = s3
        .ferry_storage(&s3.bucket("images"))
        .replace("secret_access_key", "redirect: true, secret_access_key");
    let config = dir.join("ferry.yaml");
    let storage = storage.replacen('{', "{health_timeout_secs: 1, ", 1);
    std::fs::write(&config, format!("addr: 127.0.0.1:0\nstorage: {storage}\n")).unwrap();
    let log = dir.join("ferry.log");
    let stderr = std::fs::File::create(&log).unwrap();
    let ferry = Ferry::with_config_logging_to(&config, &["--log-level", "debug"], stderr.into()).unwrap();
    round_trip(&ferry, &dir);

    // Blob GETs answered 307 to the store; HEADs were answered by ferry.
    let blobs = s3.keys("images");
    let blob = blobs.iter().find(|k| k.starts_with("ferry/blobs/sha256/")).expect("blobs in the bucket");
    let digest = format!("sha256:{}", blob.rsplit('/').nth(1).unwrap());
    let url = format!("{}/v2/multi/arch/blobs/{digest}", ferry.url);
    let r = support::get(&url);
    assert_eq!(r.status, 307, "{}", r.text());
    assert!(r
        .header("location")
        .is_some_and(|l| l.starts_with(&s3.endpoint) && l.contains("X-Amz-Signature")));
    assert_eq!(head(&url).status, 200);
    // Upload sessions left nothing behind.
    assert!(!blobs.iter().any(|k| k.contains("_uploads")), "{blobs:?}");

    // /healthz follows the store: 503 once it is unreachable.
    assert_eq!(support::get(&format!("{}/healthz", ferry.url)).status, 200);
    s3.kill();
    let r = support::get(&format!("{}/healthz", ferry.url));
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(!r.text().contains(support::s3::SECRET_KEY));

    drop(ferry);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("DEBUG"), "the log is at debug level:\n{logged}");
    assert!(!logged.contains(support::s3::SECRET_KEY), "the secret key is never logged");
}

/// skopeo pushes a multi-arch image into `ferry`, pulls it back byte for byte, inspects,
/// lists, pushes again and deletes it.
fn round_trip(ferry: &Ferry, dir: &TempDir) {
    let (src, out) = (dir.join("src"), dir.join("out"));
    let index = build_multiarch_layout(&src, 1);
    let dest = format!("docker://{}/multi/arch:v1", ferry.host());
    skopeo(&["copy", "--all", "--preserve-digests", "--dest-tls-verify=false", &oci(&src), &dest]);
    assert_eq!(manifest_digest(&ferry.url, "multi/arch", "v1", None), sha256(&index));

    skopeo(&["copy", "--all", "--preserve-digests", "--src-tls-verify=false", &dest, &oci(&out)]);
    assert_blobs_identical(&src, &out);

    // skopeo inspect works, raw and parsed.
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &dest]);
    assert_eq!(raw.stdout, index, "the index comes back byte for byte");
    let parsed = skopeo(&["inspect", "--tls-verify=false", &dest]);
    let parsed: serde_json::Value = serde_json::from_slice(&parsed.stdout).unwrap();
    assert_eq!(parsed["Digest"], sha256(&index));
    assert!(parsed["Layers"].as_array().is_some_and(|l| l.len() == 2), "{parsed}");
    let tags = skopeo(&["list-tags", "--tls-verify=false", &format!("docker://{}/multi/arch", ferry.host())]);
    assert!(String::from_utf8_lossy(&tags.stdout).contains("\"v1\""));

    // A second push finds every blob already there.
    skopeo(&["copy", "--all", "--preserve-digests", "--dest-tls-verify=false", &oci(&src), &dest]);
    // And skopeo can delete it.
    skopeo(&["delete", "--tls-verify=false", &dest]);
    assert_eq!(head(&format!("{}/v2/multi/arch/manifests/v1", ferry.url)).status, 404);
}

#[test]
fn skopeo_sync_from_distribution() {
    if !support::require("skopeo") || !support::require("docker-registry") {
        return;
    }
    let dir = TempDir::new("skopeo-sync");
    let src = dir.join("src");
    build_multiarch_layout(&src, 2);
    let distribution = Distribution::start(&DistributionOpts::default());
    let ferry = Ferry::with_root(&dir.join("data"), &[]);
    for tag in ["v1", "v2"] {
        let dest = format!("docker://{}/src/multi:{tag}", distribution.host());
        skopeo(&["copy", "--all", "--preserve-digests", "--dest-tls-verify=false", &oci(&src), &dest]);
    }
    skopeo(&[
        "sync",
        "--all",
        "--src",
        "docker",
        "--dest",
        "docker",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("{}/src/multi", distribution.host()),
        &format!("{}/mirror", ferry.host()),
    ]);
    for tag in ["v1", "v2"] {
        let theirs = manifest_digest(&distribution.url, "src/multi", tag, None);
        let ours = manifest_digest(&ferry.url, "mirror/multi", tag, None);
        assert_eq!(theirs, ours, "{tag}");
    }
    // Every child manifest made it too.
    let index = support::get(&format!("{}/v2/mirror/multi/manifests/v1", ferry.url)).json();
    for child in index["manifests"].as_array().unwrap() {
        let digest = child["digest"].as_str().unwrap();
        assert_eq!(manifest_digest(&ferry.url, "mirror/multi", digest, None), digest);
    }
}

#[test]
fn skopeo_with_basic_auth_and_tokens() {
    if !support::require("skopeo") || !support::require("docker-registry") {
        return;
    }
    let dir = TempDir::new("skopeo-auth");
    let src = dir.join("src");
    let index = build_multiarch_layout(&src, 3);
    let htpasswd = write_htpasswd(&dir, USER, PASSWORD);
    let creds = format!("{USER}:{PASSWORD}");
    let htpasswd_arg = htpasswd.to_str().unwrap();

    // Basic auth on ferry: refused without creds, accepted with --dest-creds / --creds.
    let basic = Ferry::with_root(&dir.join("basic"), &["--htpasswd", htpasswd_arg]);
    let dest = format!("docker://{}/auth/img:v1", basic.host());
    let refused = skopeo_unchecked(&["copy", "--all", "--dest-tls-verify=false", &oci(&src), &dest]);
    assert!(!refused.status.success(), "a push without credentials must fail");
    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds,
        &oci(&src),
        &dest,
    ]);
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", "--creds", &creds, &dest]);
    assert_eq!(raw.stdout, index);

    // The token flow, with a real distribution (Basic auth) as the source:
    // --src-creds for distribution, --dest-creds for ferry's token endpoint.
    let distribution =
        Distribution::start(&DistributionOpts { htpasswd: Some(htpasswd.clone()), ..Default::default() });
    let theirs = format!("docker://{}/auth/img:v1", distribution.host());
    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds,
        &oci(&src),
        &theirs,
    ]);
    let token = Ferry::with_root(&dir.join("token"), &["--htpasswd", htpasswd_arg, "--token"]);
    let ours = format!("docker://{}/from/distribution:v1", token.host());
    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--src-creds",
        &creds,
        "--dest-creds",
        &creds,
        &theirs,
        &ours,
    ]);
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", "--creds", &creds, &ours]);
    assert_eq!(raw.stdout, index);
    let out = dir.join("out");
    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--src-creds",
        &creds,
        &ours,
        &oci(&out),
    ]);
    assert_blobs_identical(&src, &out);
    let wrong = skopeo_unchecked(&["inspect", "--raw", "--tls-verify=false", "--creds", "bob:wrong", &ours]);
    assert!(!wrong.status.success(), "wrong credentials must fail");
}
