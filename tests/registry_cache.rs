//! The pull-through cache against a real upstream: distribution 2.8 with Basic auth and
//! its access log on, `ferry serve` caching it under the `hub/` prefix, skopeo and ferry
//! pulling through the cache.
//!
//! Needs `skopeo` and `docker-registry`. With `FERRY_REQUIRE_PEERS=1` (as
//! `scripts/test-all.sh` runs it) or `CI` set a missing tool fails the test; otherwise the
//! test is skipped with a message.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use cli::ferry;
use support::layout::{assert_blobs_identical, build_multiarch_layout, OCI_INDEX, OCI_MANIFEST};
use support::{request, sha256, skopeo, write_htpasswd, Distribution, DistributionOpts, Ferry, TempDir};

const USER: &str = "bob";
const PASSWORD: &str = "hunter22-upstream";
/// How long the cache trusts a tag before re-checking it upstream.
const TTL_SECS: u64 = 4;

fn oci(dir: &Path) -> String {
    format!("oci:{}:v1", dir.display())
}

/// The digest `reference` resolves to through `url`, and the answer's `Warning`.
fn head_manifest(url: &str, repo: &str, reference: &str) -> (String, Option<String>) {
    let r = request("HEAD", &format!("{url}/v2/{repo}/manifests/{reference}"))
        .header("Accept", &format!("{OCI_INDEX}, {OCI_MANIFEST}"))
        .send();
    assert_eq!(r.status, 200, "HEAD {repo}:{reference} through {url}");
    (r.header("docker-content-digest").unwrap_or_default().to_owned(), r.header("warning").map(str::to_owned))
}

/// Successful (2xx) requests in distribution's access log whose line holds `needle`,
/// counted by the request line.
fn served(log: &Path, needle: &str) -> BTreeMap<String, usize> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut counts = BTreeMap::new();
    for line in text.lines().filter(|l| l.contains(needle)) {
        // 127.0.0.1 - bob [date] "GET /v2/... HTTP/1.1" 200 1234 "" "agent"
        let mut quoted = line.split('"');
        let (Some(_), Some(request), Some(rest)) = (quoted.next(), quoted.next(), quoted.next()) else {
            continue;
        };
        if rest.trim().starts_with('2') {
            *counts.entry(request.to_owned()).or_default() += 1;
        }
    }
    counts
}

#[test]
fn pull_through_cache_of_a_real_distribution() {
    if !support::require("skopeo") || !support::require("docker-registry") {
        return;
    }
    let dir = TempDir::new("cache");
    let access_log = dir.join("upstream-access.log");
    let opts = DistributionOpts {
        htpasswd: Some(write_htpasswd(&dir, USER, PASSWORD)),
        access_log: Some(access_log.clone()),
    };
    let mut upstream = Distribution::start(&opts);
    let src = dir.join("src");
    let index = build_multiarch_layout(&src, 7);
    let index_digest = sha256(&index);
    let creds = format!("{USER}:{PASSWORD}");
    let upstream_ref = format!("docker://{}/multi/arch:v1", upstream.host());
    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds,
        &oci(&src),
        &upstream_ref,
    ]);

    let config = dir.join("ferry.yml");
    std::fs::write(
        &config,
        format!(
            "addr: 127.0.0.1:0\nstorage: {{driver: filesystem, root: {}}}\nlog: {{level: debug}}\n\
             proxy:\n  upstreams:\n    - {{prefix: hub/, url: '{}', username: {USER}, password: {PASSWORD}, \
             tag_ttl_secs: {TTL_SECS}}}\n",
            dir.join("cache-data").display(),
            upstream.url
        ),
    )
    .unwrap();
    let ferry_log = dir.join("ferry.log");
    let log_file = std::fs::File::create(&ferry_log).unwrap();
    let cache =
        Ferry::with_config_logging_to(&config, &[], Stdio::from(log_file)).expect("ferry serve starts");
    let through = format!("docker://{}/hub/multi/arch:v1", cache.host());

    // Ten skopeo pulls at once of an image nothing has cached: each gets every blob, and
    // the upstream served each blob once.
    let outs: Vec<_> = (0..10).map(|i| dir.join(&format!("pull-{i}"))).collect();
    std::thread::scope(|s| {
        for out in &outs {
            let through = &through;
            s.spawn(move || {
                skopeo(&["copy", "--all", "--preserve-digests", "--src-tls-verify=false", through, &oci(out)])
            });
        }
    });
    for out in &outs {
        assert_blobs_identical(&src, out);
    }
    let blob_gets = served(&access_log, "\"GET /v2/multi/arch/blobs/");
    assert_eq!(blob_gets.len(), 6, "2 configs and 4 layers fetched: {blob_gets:?}");
    assert!(blob_gets.values().all(|&n| n == 1), "each blob fetched once upstream: {blob_gets:?}");

    // ferry pulls it through the cache too, into a second registry, byte for byte.
    let copy_dir = TempDir::new("cache-copy");
    let destination = Ferry::with_root(copy_dir.path(), &[]);
    ferry(&[
        "copy",
        &format!("{}/hub/multi/arch:v1", cache.host()),
        &format!("{}/copied/arch:v1", destination.host()),
    ])
    .expect(0, "ferry copy through the cache");
    assert_eq!(head_manifest(&destination.url, "copied/arch", "v1").0, index_digest);
    let copied = dir.join("copied");
    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        &format!("docker://{}/copied/arch:v1", destination.host()),
        &oci(&copied),
    ]);
    assert_blobs_identical(&src, &copied);
    assert_eq!(
        served(&access_log, "\"GET /v2/multi/arch/blobs/"),
        blob_gets,
        "the copy fetched no blob again"
    );

    // A tag moved upstream is seen once the TTL has passed, not before; the re-check is one HEAD.
    std::thread::sleep(Duration::from_secs(TTL_SECS) + Duration::from_millis(300));
    let heads = |log: &Path| served(log, "\"HEAD /v2/multi/arch/manifests/v1 ").values().sum::<usize>();
    let before = heads(&access_log);
    assert_eq!(head_manifest(&cache.url, "hub/multi/arch", "v1"), (index_digest.clone(), None));
    assert_eq!(heads(&access_log), before + 1, "one HEAD re-checks the tag");
    let index_json: serde_json::Value = serde_json::from_slice(&index).unwrap();
    let child = index_json["manifests"][0]["digest"].as_str().unwrap().to_owned();
    let child_bytes =
        std::fs::read(src.join("blobs/sha256").join(child.trim_start_matches("sha256:"))).unwrap();
    let moved = request("PUT", &format!("{}/v2/multi/arch/manifests/v1", upstream.url))
        .header("Content-Type", OCI_MANIFEST)
        .basic(USER, PASSWORD)
        .body(child_bytes)
        .send();
    assert_eq!(moved.status, 201, "{}", moved.text());
    assert_eq!(head_manifest(&cache.url, "hub/multi/arch", "v1").0, index_digest, "within the TTL");
    std::thread::sleep(Duration::from_secs(TTL_SECS) + Duration::from_millis(300));
    assert_eq!(head_manifest(&cache.url, "hub/multi/arch", "v1").0, child, "after the TTL");

    // The upstream stops: what is cached is still pulled, byte for byte; a tag past its
    // TTL is served with a warning; what was never cached is a 503 at once.
    upstream.stop();
    let after = dir.join("after-stop");
    let by_digest = format!("docker://{}/hub/multi/arch@{index_digest}", cache.host());
    skopeo(&["copy", "--all", "--preserve-digests", "--src-tls-verify=false", &by_digest, &oci(&after)]);
    assert_blobs_identical(&src, &after);
    std::thread::sleep(Duration::from_secs(TTL_SECS) + Duration::from_millis(300));
    let (digest, warning) = head_manifest(&cache.url, "hub/multi/arch", "v1");
    assert_eq!(digest, child);
    assert!(warning.as_deref().is_some_and(|w| w.starts_with("110 ")), "a stale answer says so: {warning:?}");
    for path in ["/v2/hub/multi/arch/manifests/never", "/v2/hub/other/repo/manifests/v1"] {
        let r = request("GET", &format!("{}{path}", cache.url)).send();
        assert_eq!(r.status, 503, "{path}: {}", r.text());
        assert!(r.text().contains("upstream is unavailable"), "{path}: {}", r.text());
    }

    // Pushes to the cached prefix are refused; elsewhere they work.
    let r = request("POST", &format!("{}/v2/hub/multi/arch/blobs/uploads/", cache.url)).send();
    assert_eq!((r.status, r.error_code().as_str()), (405, "UNSUPPORTED"), "{}", r.text());
    let r = request("POST", &format!("{}/v2/local/app/blobs/uploads/", cache.url)).send();
    assert_eq!(r.status, 202, "{}", r.text());

    let log = std::fs::read_to_string(&ferry_log).unwrap();
    assert!(!log.contains(PASSWORD), "the upstream's password is never logged");
}
