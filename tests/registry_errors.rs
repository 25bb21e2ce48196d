//! Bad input, options and process behaviour of `ferry serve`: every bad request gets the
//! spec's status and JSON error code with nothing stored; range GETs; deletes switched
//! off and read-only mode; the memory driver; health checks, `--help` and graceful
//! shutdown.

#[path = "support/mod.rs"]
mod support;

use serde_json::json;
use support::oci::*;
use support::{get, head, request, sha256, Ferry, TempDir};

#[test]
fn blob_ranges() {
    let reg = Registry::start(&[]);
    let blob = support::random_bytes(1000, 9);
    let digest = reg.push_blob("ranges", &blob);
    let url = reg.url(&format!("/v2/ranges/blobs/{digest}"));
    let ranged = |range: &str| request("GET", &url).header("Range", range).send();
    type Case<'a> = (&'a str, u16, Option<&'a [u8]>, Option<&'a str>);
    let cases: Vec<Case> = vec![
        ("bytes=0-99", 206, Some(&blob[0..100]), Some("bytes 0-99/1000")),
        ("bytes=900-", 206, Some(&blob[900..]), Some("bytes 900-999/1000")),
        ("bytes=-10", 206, Some(&blob[990..]), Some("bytes 990-999/1000")),
        ("bytes=990-5000", 206, Some(&blob[990..]), Some("bytes 990-999/1000")),
        ("bytes=1000-", 416, None, Some("bytes */1000")),
        ("bytes=2000-3000", 416, None, Some("bytes */1000")),
        ("bytes=nonsense", 200, Some(&blob[..]), None),
    ];
    for (range, status, body, content_range) in cases {
        let r = ranged(range);
        assert_eq!(r.status, status, "{range}");
        if let Some(body) = body {
            assert_eq!(r.body, body, "{range}");
        }
        assert_eq!(r.header("content-range"), content_range, "{range}");
    }
}

/// Bad requests: each gets the spec's status and JSON error code, nothing is stored and
/// nothing panics.
#[test]
fn bad_inputs() {
    let dir = TempDir::new("bad-inputs");
    let ferry = Ferry::with_root(&dir.join("data"), &["--max-blob-bytes", "100000"]);
    let reg = Registry { _dir: TempDir::new("unused"), ferry, _s3: None, _azure: None };
    let repo = "bad/inputs";
    let config = config_blob(1);
    reg.push_blob(repo, &config);
    let good = image_manifest((OCI_CONFIG, &config), &[], json!({}));
    let unknown_layer = image_manifest((OCI_CONFIG, &config), &[b"never pushed"], json!({}));
    let unknown_child = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor(OCI_MANIFEST, b"no such manifest")],
    }))
    .unwrap();
    let huge = image_manifest(
        (OCI_CONFIG, &config),
        &[],
        json!({"annotations": {"pad": "x".repeat(4 * 1024 * 1024)}}),
    );
    assert!(huge.len() > 4 * 1024 * 1024);
    let schema1 = br#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[],"history":[]}"#.to_vec();
    let wrong_digest = sha256(b"something else");
    let session = reg.loc(&request("POST", &reg.url(&format!("/v2/{repo}/blobs/uploads/"))).send());

    /// method, path, headers, body, expected status, expected code
    type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, Vec<u8>, u16, &'a str);
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        // Names: validated before they touch storage; traversal is just an invalid name.
        ("GET", "/v2/UPPER/manifests/latest".into(), vec![], vec![], 400, "NAME_INVALID"),
        ("GET", "/v2/../../etc/passwd/manifests/latest".into(), vec![], vec![], 400, "NAME_INVALID"),
        ("GET", "/v2/a/%2e%2e/%2e%2e/etc/manifests/latest".into(), vec![], vec![], 400, "NAME_INVALID"),
        ("PUT", "/v2/a/..%2F..%2Fescape/manifests/latest".into(), vec![("Content-Type", OCI_MANIFEST)], good.clone(), 400, "NAME_INVALID"),
        ("POST", "/v2/_uploads/blobs/uploads/".into(), vec![], vec![], 400, "NAME_INVALID"),
        ("GET", format!("/v2/{}/tags/list", "a".repeat(300)), vec![], vec![], 400, "NAME_INVALID"),
        ("GET", "/v2/a/blobs/uploads/../../../../etc/passwd".into(), vec![], vec![], 404, "UNSUPPORTED"),
        ("GET", "/v2/nothing-here".into(), vec![], vec![], 404, "UNSUPPORTED"),
        // Digests and tags.
        ("GET", format!("/v2/{repo}/blobs/sha256:abc"), vec![], vec![], 400, "DIGEST_INVALID"),
        ("GET", format!("/v2/{repo}/blobs/md5:d41d8cd98f00b204e9800998ecf8427e"), vec![], vec![], 400, "DIGEST_INVALID"),
        ("GET", format!("/v2/{repo}/blobs/sha256:{}", "A".repeat(64)), vec![], vec![], 400, "DIGEST_INVALID"),
        ("GET", format!("/v2/{repo}/manifests/-notatag"), vec![], vec![], 400, "MANIFEST_INVALID"),
        ("PUT", format!("/v2/{repo}/manifests/{}", "t".repeat(129)), vec![("Content-Type", OCI_MANIFEST)], good.clone(), 400, "MANIFEST_INVALID"),
        ("PUT", format!("/v2/{repo}/manifests/{wrong_digest}"), vec![("Content-Type", OCI_MANIFEST)], good.clone(), 400, "DIGEST_INVALID"),
        ("PUT", format!("/v2/{repo}/manifests/{}?tag=..bad", sha256(&good)), vec![("Content-Type", OCI_MANIFEST)], good.clone(), 400, "MANIFEST_INVALID"),
        // Manifests: malformed, oversize, dangling references, mismatched types.
        ("PUT", format!("/v2/{repo}/manifests/malformed"), vec![("Content-Type", OCI_MANIFEST)], b"{not json".to_vec(), 400, "MANIFEST_INVALID"),
        ("PUT", format!("/v2/{repo}/manifests/array"), vec![("Content-Type", OCI_MANIFEST)], b"[]".to_vec(), 400, "MANIFEST_INVALID"),
        ("PUT", format!("/v2/{repo}/manifests/nolayers"), vec![("Content-Type", OCI_MANIFEST)], br#"{"schemaVersion":2}"#.to_vec(), 400, "MANIFEST_INVALID"),
        ("PUT", format!("/v2/{repo}/manifests/schema1"), vec![("Content-Type", "application/vnd.docker.distribution.manifest.v1+prettyjws")], schema1, 400, "MANIFEST_INVALID"),
        ("PUT", format!("/v2/{repo}/manifests/mismatch"), vec![("Content-Type", OCI_INDEX)], good.clone(), 400, "MANIFEST_INVALID"),
        ("PUT", format!("/v2/{repo}/manifests/huge"), vec![("Content-Type", OCI_MANIFEST)], huge, 413, "MANIFEST_INVALID"),
        ("PUT", format!("/v2/{repo}/manifests/dangling"), vec![("Content-Type", OCI_MANIFEST)], unknown_layer, 400, "MANIFEST_BLOB_UNKNOWN"),
        ("PUT", format!("/v2/{repo}/manifests/dangling-index"), vec![("Content-Type", OCI_INDEX)], unknown_child, 400, "MANIFEST_UNKNOWN"),
        // Uploads.
        ("POST", format!("/v2/{repo}/blobs/uploads/?digest={wrong_digest}"), vec![], b"payload".to_vec(), 400, "DIGEST_INVALID"),
        ("POST", format!("/v2/{repo}/blobs/uploads/?digest=sha256:short"), vec![], b"payload".to_vec(), 400, "DIGEST_INVALID"),
        ("POST", format!("/v2/{repo}/blobs/uploads/?mount=nonsense&from=a"), vec![], vec![], 400, "DIGEST_INVALID"),
        ("POST", format!("/v2/{repo}/blobs/uploads/?digest={}", sha256(&vec![0u8; 100_001])), vec![], vec![0u8; 100_001], 413, "SIZE_INVALID"),
        ("PATCH", format!("/v2/{repo}/blobs/uploads/{}", "0".repeat(32)), vec![], b"x".to_vec(), 404, "BLOB_UPLOAD_UNKNOWN"),
        ("PATCH", format!("/v2/{repo}/blobs/uploads/not-an-id"), vec![], b"x".to_vec(), 404, "BLOB_UPLOAD_UNKNOWN"),
        ("PATCH", session.replace(&reg.ferry.url, ""), vec![("Content-Range", "garbage")], b"x".to_vec(), 400, "BLOB_UPLOAD_INVALID"),
        ("PATCH", session.replace(&reg.ferry.url, ""), vec![("Content-Range", "5-2")], b"x".to_vec(), 400, "BLOB_UPLOAD_INVALID"),
        ("PATCH", session.replace(&reg.ferry.url, ""), vec![("Content-Range", "0-18446744073709551615")], b"x".to_vec(), 400, "BLOB_UPLOAD_INVALID"),
        ("PATCH", session.replace(&reg.ferry.url, ""), vec![("Content-Range", "0-9")], b"short".to_vec(), 400, "BLOB_UPLOAD_INVALID"),
        ("PUT", session.replace(&reg.ferry.url, ""), vec![], vec![], 400, "DIGEST_INVALID"),
        // Methods.
        ("DELETE", "/v2/".into(), vec![], vec![], 405, "UNSUPPORTED"),
        ("POST", format!("/v2/{repo}/tags/list"), vec![], vec![], 405, "UNSUPPORTED"),
    ];
    for (method, path, headers, body, status, code) in cases {
        let mut req = request(method, &reg.url(&path)).body(body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let r = req.send();
        assert_eq!(r.status, status, "{method} {path}: {}", r.text());
        assert_eq!(r.error_code(), code, "{method} {path}: {}", r.text());
    }

    // Nothing from the refused requests is visible.
    for digest in [wrong_digest, sha256(b"payload"), sha256(b"never pushed")] {
        assert_eq!(head(&reg.url(&format!("/v2/{repo}/blobs/{digest}"))).status, 404, "{digest}");
    }
    for tag in ["malformed", "huge", "dangling", "dangling-index", "mismatch"] {
        assert_eq!(head(&reg.url(&format!("/v2/{repo}/manifests/{tag}"))).status, 404, "{tag}");
    }
    // The session survived the refused chunks, and still works.
    let r = request("PUT", &format!("{session}?digest={}", sha256(b"ok"))).body(b"ok".to_vec()).send();
    assert_eq!(r.status, 201, "{}", r.text());
    // No path escaped the storage root.
    let escaped: Vec<_> =
        ["escape", "etc", "passwd"].iter().filter(|p| dir.path().join(p).exists()).collect();
    assert!(escaped.is_empty(), "{escaped:?}");
    assert_eq!(get(&reg.url("/healthz")).status, 200, "still serving");
}

#[test]
fn deletes_off_and_read_only() {
    let reg = Registry::start(&["--delete=false"]);
    let config = config_blob(1);
    let digest = reg.push_blob("r", &config);
    let manifest = image_manifest((OCI_CONFIG, &config), &[], json!({}));
    assert_eq!(reg.put_manifest("r", "v1", OCI_MANIFEST, &manifest).status, 201);
    for path in [
        format!("/v2/r/blobs/{digest}"),
        "/v2/r/manifests/v1".into(),
        format!("/v2/r/manifests/{}", sha256(&manifest)),
    ] {
        assert_spec_error(&request("DELETE", &reg.url(&path)).send(), 405, "UNSUPPORTED");
    }
    assert_eq!(get(&reg.url("/v2/r/manifests/v1")).status, 200);
    drop(reg);

    let reg = Registry::start(&["--read-only"]);
    assert_spec_error(&request("POST", &reg.url("/v2/r/blobs/uploads/")).send(), 405, "UNSUPPORTED");
    assert_spec_error(&reg.put_manifest("r", "v1", OCI_MANIFEST, &manifest), 405, "UNSUPPORTED");
    assert_eq!(get(&reg.url("/v2/")).status, 200);
}

#[test]
fn memory_driver_serves_the_same_api() {
    let ferry = Ferry::start(&["--storage", "memory"]);
    let reg = Registry { _dir: TempDir::new("memory"), ferry, _s3: None, _azure: None };
    let config = config_blob(1);
    let layer = support::random_bytes(100_000, 10);
    reg.push_blob("mem/repo", &config);
    reg.push_blob("mem/repo", &layer);
    let manifest = image_manifest((OCI_CONFIG, &config), &[&layer], json!({}));
    assert_eq!(reg.put_manifest("mem/repo", "v1", OCI_MANIFEST, &manifest).status, 201);
    assert_eq!(get(&reg.url("/v2/mem/repo/manifests/v1")).body, manifest);
    assert_eq!(get(&reg.url(&format!("/v2/mem/repo/blobs/{}", sha256(&layer)))).body, layer);
    assert_eq!(get(&reg.url("/v2/_catalog")).json()["repositories"], json!(["mem/repo"]));
}

#[test]
fn health_help_version_and_graceful_shutdown() {
    let dir = TempDir::new("health");
    let mut ferry = Ferry::with_root(&dir.join("data"), &[]);
    assert_eq!(get(&format!("{}/healthz", ferry.url)).status, 200);
    assert_eq!(get(&format!("{}/livez", ferry.url)).status, 200);
    let status = ferry.terminate();
    assert!(status.success(), "SIGTERM should shut down cleanly: {status}");

    let help = std::process::Command::new(support::ferry_bin()).args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for option in [
        "--config",
        "--addr",
        "--public-url",
        "--storage",
        "--root",
        "--read-only",
        "--delete",
        "--cors-origin",
        "--cors-allow-credentials",
        "--cors-max-age",
        "--htpasswd",
        "--realm",
        "--anonymous-pull",
        "--token",
        "--token-service",
        "--token-key",
        "--token-ttl",
        "--max-manifest-bytes",
        "--max-blob-bytes",
        "--token-allow-basic",
        "--header-read-timeout",
        "--idle-timeout",
        "--body-timeout",
        "--max-connections",
        "--max-blocking-threads",
        "--log-level",
        "--log-format",
        "--print-config",
    ] {
        assert!(help.contains(option), "ferry serve --help does not document {option}");
    }
    let version = std::process::Command::new(support::ferry_bin()).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("ferry "));

    // Defaults: no arguments means ./ferry-data on 127.0.0.1:5000.
    let printed =
        std::process::Command::new(support::ferry_bin()).args(["serve", "--print-config"]).output().unwrap();
    let printed = String::from_utf8_lossy(&printed.stdout);
    assert!(printed.contains("addr: 127.0.0.1:5000"), "{printed}");
    assert!(printed.contains("root: ./ferry-data"), "{printed}");
    // A bad config is refused with the key named.
    let bad = std::process::Command::new(support::ferry_bin())
        .args(["serve", "--storage", "swift"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("storage.driver"));
    let bad =
        std::process::Command::new(support::ferry_bin()).args(["serve", "--storage", "s3"]).output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("storage.s3.bucket"));
}

/// A `Content-Range` whose end is `u64::MAX` announces 2^64 bytes; the message must say
/// so rather than wrap around to "0 bytes".
#[test]
fn content_range_arithmetic_does_not_wrap() {
    let reg = Registry::start(&[]);
    let session = reg.loc(&request("POST", &reg.url("/v2/wrap/blobs/uploads/")).send());
    let r = request("PATCH", &session)
        .header("Content-Range", "0-18446744073709551615")
        .body(b"x".to_vec())
        .send();
    assert_spec_error(&r, 400, "BLOB_UPLOAD_INVALID");
    let message = r.json()["errors"][0]["message"].as_str().unwrap_or_default().to_owned();
    assert!(!message.contains("announces 0 bytes"), "{message}");
    // An out-of-order chunk is still the spec's 416.
    let r = request("PATCH", &session).header("Content-Range", "5-5").body(b"x".to_vec()).send();
    assert_spec_error(&r, 416, "BLOB_UPLOAD_INVALID");
}

/// A layer descriptor must give the size of the blob stored under its digest.
#[test]
fn manifest_descriptor_sizes_are_checked() {
    let reg = Registry::start(&[]);
    let config = config_blob(1);
    let layer = support::random_bytes(1000, 3);
    reg.push_blob("sizes", &config);
    reg.push_blob("sizes", &layer);
    let lying = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, &config),
        "layers": [{ "mediaType": OCI_LAYER, "digest": sha256(&layer), "size": 5 }],
    }))
    .unwrap();
    let r = reg.put_manifest("sizes", "lying", OCI_MANIFEST, &lying);
    assert_spec_error(&r, 400, "MANIFEST_INVALID");
    assert!(r.text().contains("1000"), "the message names the stored size: {}", r.text());
    assert_eq!(head(&reg.url("/v2/sizes/manifests/lying")).status, 404);
    let lying_config = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": { "mediaType": OCI_CONFIG, "digest": sha256(&config), "size": config.len() + 1 },
        "layers": [],
    }))
    .unwrap();
    assert_spec_error(
        &reg.put_manifest("sizes", "lying-config", OCI_MANIFEST, &lying_config),
        400,
        "MANIFEST_INVALID",
    );
    // An index child with the wrong size as well.
    let good = image_manifest((OCI_CONFIG, &config), &[&layer], json!({}));
    assert_eq!(reg.put_manifest("sizes", "good", OCI_MANIFEST, &good).status, 201);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{ "mediaType": OCI_MANIFEST, "digest": sha256(&good), "size": 7 }],
    }))
    .unwrap();
    assert_spec_error(&reg.put_manifest("sizes", "lying-index", OCI_INDEX, &index), 400, "MANIFEST_INVALID");
}

/// Uploads that never complete do not make a repository exist.
#[test]
fn failed_uploads_do_not_create_a_repository() {
    let reg = Registry::start(&[]);
    assert_spec_error(&get(&reg.url("/v2/never/used/tags/list")), 404, "NAME_UNKNOWN");
    let r = request("POST", &reg.url(&format!("/v2/failed/push/blobs/uploads/?digest={}", sha256(b"other"))))
        .body(b"payload".to_vec())
        .send();
    assert_spec_error(&r, 400, "DIGEST_INVALID");
    let session = reg.loc(&request("POST", &reg.url("/v2/cancelled/push/blobs/uploads/")).send());
    assert_eq!(request("DELETE", &session).send().status, 204);
    let open = reg.loc(&request("POST", &reg.url("/v2/open/session/blobs/uploads/")).send());
    for repo in ["failed/push", "cancelled/push", "open/session"] {
        assert_spec_error(&get(&reg.url(&format!("/v2/{repo}/tags/list"))), 404, "NAME_UNKNOWN");
    }
    assert_eq!(get(&reg.url("/v2/_catalog")).json()["repositories"], json!([]));
    // The open session still works, and then the repository exists.
    assert_eq!(
        request("PUT", &format!("{open}?digest={}", sha256(b"ok"))).body(b"ok".to_vec()).send().status,
        201
    );
    assert_eq!(get(&reg.url("/v2/open/session/tags/list")).status, 200);
}

/// Completing an upload with the wrong digest keeps the session, so the client can
/// retry the commit.
#[test]
fn a_wrong_digest_on_completion_keeps_the_session() {
    let reg = Registry::start(&[]);
    let session = reg.loc(&request("POST", &reg.url("/v2/retry/blobs/uploads/")).send());
    assert_eq!(request("PATCH", &session).body(b"hello ".to_vec()).send().status, 202);
    let r = request("PUT", &format!("{session}?digest={}", sha256(b"hello world")))
        .body(b"wurld".to_vec())
        .send();
    assert_spec_error(&r, 400, "DIGEST_INVALID");
    let r = get(&session);
    assert_eq!(r.status, 204, "the session survived: {}", r.text());
    assert_eq!(r.header("range"), Some("0-10"));
    // The bytes were wrong: nothing is stored, and the client can still commit what it sent.
    assert_eq!(head(&reg.url(&format!("/v2/retry/blobs/{}", sha256(b"hello world")))).status, 404);
    let r = request("PUT", &format!("{session}?digest={}", sha256(b"hello wurld"))).send();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(get(&reg.url(&format!("/v2/retry/blobs/{}", sha256(b"hello wurld")))).body, b"hello wurld");
}

/// A tag appears in `tags/list` only when its link is complete: a tag directory that holds
/// only a temp file (what a crash in the middle of a manifest PUT leaves) is not listed.
#[test]
fn incomplete_tag_links_are_not_listed() {
    let dir = TempDir::new("tag-links");
    let root = dir.join("data");
    let ferry = Ferry::with_root(&root, &[]);
    let reg = Registry { _dir: TempDir::new("unused"), ferry, _s3: None, _azure: None };
    let config = config_blob(1);
    reg.push_blob("links", &config);
    let manifest = image_manifest((OCI_CONFIG, &config), &[], json!({}));
    assert_eq!(reg.put_manifest("links", "v1", OCI_MANIFEST, &manifest).status, 201);
    let ghost = root.join("repositories/links/_manifests/tags/ghost");
    std::fs::create_dir_all(&ghost).unwrap();
    std::fs::write(ghost.join(".tmp-0123456789abcdef"), b"").unwrap();
    let empty = root.join("repositories/links/_manifests/tags/empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("link"), b"").unwrap();
    let r = get(&reg.url("/v2/links/tags/list"));
    assert_eq!(r.json()["tags"], json!(["v1"]), "{}", r.text());
    for tag in ["ghost", "empty"] {
        assert_eq!(head(&reg.url(&format!("/v2/links/manifests/{tag}"))).status, 404);
    }
}
