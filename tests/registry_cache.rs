//! The pull-through cache against a real upstream: distribution 2.8 with Basic auth and
//! its access log on, `ferry serve` caching it under the `hub/` prefix, skopeo and ferry
//! pulling through the cache.
//!
//! Needs `skopeo` and `docker-registry`. With `FERRY_REQUIRE_PEERS=1` (as
//! `scripts/test-all.sh` runs it) or `CI` set a missing tool fails the test; otherwise the
//! test is skipped with a message.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/fault_proxy.rs"]
mod fault_proxy;
#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use cli::ferry;
use fault_proxy::{Fault, FaultProxy, Schedule};
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
        ..DistributionOpts::default()
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
    let manifest_gets = served(&access_log, "\"GET /v2/multi/arch/manifests/");
    assert_eq!(manifest_gets.len(), 3, "the index and its 2 images, by digest: {manifest_gets:?}");
    assert!(
        manifest_gets.values().all(|&n| n == 1),
        "each manifest fetched once upstream: {manifest_gets:?}"
    );
    let tag_heads = served(&access_log, "\"HEAD /v2/multi/arch/manifests/v1 ");
    assert_eq!(tag_heads.values().sum::<usize>(), 1, "one HEAD resolved the tag for all ten");

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
    let lines = |log: &Path| std::fs::read_to_string(log).unwrap_or_default().lines().count();
    let (before, lines_before) = (heads(&access_log), lines(&access_log));
    assert_eq!(head_manifest(&cache.url, "hub/multi/arch", "v1"), (index_digest.clone(), None));
    assert_eq!(heads(&access_log), before + 1, "one HEAD re-checks the tag");
    assert_eq!(lines(&access_log), lines_before + 1, "authorised up front: no 401 first");
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

/// Every file path under `dir`.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path.display().to_string());
        }
    }
    out
}

/// A GET whose body may be cut short: the status, `Content-Length`, and the bytes that
/// came; `None` when the connection broke before a whole header came (a reset may discard
/// what the client had not read yet).
fn get_raw(url: &str) -> Option<(u16, usize, Vec<u8>)> {
    use std::io::Read as _;
    let mut stream = request("GET", url).start(false, None);
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Some((status, length, raw[end..].to_vec()))
}

#[test]
fn a_lying_upstream_never_reaches_the_cache() {
    if !support::require("docker-registry") {
        return;
    }
    let upstream = Distribution::start(&DistributionOpts::default());
    let layer = support::random_bytes(300_000, 11);
    let digest = cli::push_blob(&upstream.url, "app", &layer);
    let hex = digest.trim_start_matches("sha256:").to_owned();
    let data = upstream.storage().join(format!("docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]));
    let mut lie = layer.clone();
    lie[150_000] ^= 0xff;
    std::fs::write(&data, &lie).unwrap();

    // distribution's own config file, with its `proxy` key, starts the cache.
    let dir = TempDir::new("cache-liar");
    let config = dir.join("config.yml");
    let cache = (0..5)
        .find_map(|_| {
            let port = support::free_port();
            let yaml = format!(
                "version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: {}}}}}\n\
                 http: {{addr: 127.0.0.1:{port}}}\nproxy: {{remoteurl: '{}'}}\n",
                dir.join("data").display(),
                upstream.url
            );
            std::fs::write(&config, yaml).unwrap();
            Ferry::with_config(&config, &[])
        })
        .expect("ferry serve starts from distribution's config");
    for attempt in 0..2 {
        // The client sees the answer cut short, or the connection broken.
        if let Some((status, length, body)) = get_raw(&format!("{}/v2/app/blobs/{digest}", cache.url)) {
            assert_eq!((status, length), (200, layer.len()), "attempt {attempt}");
            assert!(body.len() < length, "attempt {attempt}: the client sees the answer cut short");
            assert_eq!(
                body[..],
                lie[..body.len()],
                "attempt {attempt}: what came is the upstream's bytes so far"
            );
        }
        let stored: Vec<String> = files(&dir.join("data")).into_iter().filter(|f| f.contains(&hex)).collect();
        assert!(
            stored.is_empty(),
            "attempt {attempt}: a blob that does not match is never stored: {stored:?}"
        );
    }
}

#[test]
fn a_rate_limited_upstream_leaves_the_cache_serving_with_a_warning() {
    if !support::require("docker-registry") {
        return;
    }
    let upstream = Distribution::start(&DistributionOpts::default());
    let proxy = FaultProxy::start(&upstream.url, Schedule::none());
    let layer = support::random_bytes(20_000, 12);
    let (digest, _) = cli::push_image(&upstream.url, "app", Some("v1"), &[&layer], "linux/amd64");
    let dir = TempDir::new("cache-limited");
    let config = dir.join("ferry.yml");
    std::fs::write(
        &config,
        format!(
            "addr: 127.0.0.1:0\nstorage: {{driver: memory}}\n\
             proxy: {{upstreams: [{{url: '{}', tag_ttl_secs: 1}}]}}\n",
            proxy.url
        ),
    )
    .unwrap();
    let cache = Ferry::with_config_logging_to(&config, &[], Stdio::null()).expect("ferry serve starts");
    assert_eq!(head_manifest(&cache.url, "app", "v1"), (digest.clone(), None));
    let layer_url = format!("{}/v2/app/blobs/{}", cache.url, sha256(&layer));
    assert_eq!(support::get(&layer_url).body, layer);

    // Every manifest read upstream is now answered 429 with `Retry-After: 1`.
    proxy.set_schedule(Schedule::rate_limited(0, 1));
    std::thread::sleep(Duration::from_millis(1300));
    let (cached, warning) = head_manifest(&cache.url, "app", "v1");
    assert_eq!(cached, digest);
    assert!(warning.as_deref().is_some_and(|w| w.starts_with("110 ")), "{warning:?}");
    assert_eq!(support::get(&layer_url).body, layer, "blobs are immutable: served without asking");
    proxy.clear_log();
    let r = request("GET", &format!("{}/v2/app/manifests/never", cache.url)).send();
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.header("retry-after").is_some(), "{:?}", r.headers);
    // The core's policy: one retry after the upstream's Retry-After, then the answer.
    assert_eq!(proxy.injected(Fault::RateLimited { retry_after: 1 }), 2, "{:?}", proxy.log());
}

#[test]
fn a_blob_streams_to_its_client_before_it_is_stored() {
    if !support::require("docker-registry") {
        return;
    }
    use std::io::Read as _;
    let upstream = Distribution::start(&DistributionOpts::default());
    // 512 KiB at 256 KiB/s: the upstream needs about two seconds to send it.
    let proxy = FaultProxy::start(&upstream.url, Schedule::throttled(256 * 1024));
    let blob = support::random_bytes(512 * 1024, 13);
    let digest = cli::push_blob(&upstream.url, "app", &blob);
    let hex = digest.trim_start_matches("sha256:").to_owned();
    let dir = TempDir::new("cache-stream");
    let config = dir.join("ferry.yml");
    std::fs::write(
        &config,
        format!(
            "addr: 127.0.0.1:0\nstorage: {{driver: filesystem, root: {}}}\nproxy: {{upstreams: [{{url: '{}'}}]}}\n",
            dir.join("data").display(),
            proxy.url
        ),
    )
    .unwrap();
    let cache = Ferry::with_config_logging_to(&config, &[], Stdio::null()).expect("ferry serve starts");
    let stored =
        || files(&dir.join("data")).into_iter().filter(|f| f.contains(&hex) && f.ends_with("/data")).count();

    let mut stream = request("GET", &format!("{}/v2/app/blobs/{digest}", cache.url)).start(false, None);
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let header_end = loop {
        let n = stream.read(&mut buf).expect("the answer comes");
        assert!(n > 0, "the answer ended early: {}", String::from_utf8_lossy(&raw));
        raw.extend_from_slice(&buf[..n]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            if raw.len() >= end + 4 + 64 * 1024 {
                break end + 4;
            }
        }
    };
    assert!(raw.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&raw[..header_end]));
    assert_eq!(stored(), 0, "the client has its first 64 KiB while the blob is not stored yet");
    stream.read_to_end(&mut raw).expect("the rest of the body");
    assert!(raw[header_end..] == blob[..], "the client gets the blob byte for byte");
    assert_eq!(stored(), 1, "once the client has the last byte, the blob is stored");
    assert_eq!(proxy.count(|l| l.method == "GET" && l.target.contains("/blobs/")), 1);
}
