//! One read, many writes: `ferry sync` with rules whose destination is a list (image-syncer's
//! array value) of three registries, two distribution and one `ferry serve`.
//!
//! What they prove: every blob is read from the source exactly once (counted in the
//! source distribution's access log), even one image at a time (`--proc 1`); all three
//! destinations end with every image at the source's digest and every blob byte-identical;
//! and a destination killed mid-run fails only its own images: the other two complete.

#[path = "support/mod.rs"]
mod support;

#[path = "support/cli.rs"]
mod cli;

#[path = "support/fault_proxy.rs"]
mod fault_proxy;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cli::{ferry, has_blob, head_digest, push_image};
use fault_proxy::{FaultProxy, Schedule};
use serde_json::Value;
use support::{
    ferry_bin, get, random_bytes, require, sha256, Distribution, DistributionOpts, Ferry, TempDir,
};

/// One image at the source: its repository, manifest digest and blobs (digest, size).
struct Image {
    repo: String,
    digest: String,
    blobs: Vec<String>,
}

/// `count` images of two layers each (`layer` bytes), all sharing their first layer.
fn seed(base: &str, count: usize, layer: usize) -> Vec<Image> {
    let shared = random_bytes(layer, 1);
    (0..count)
        .map(|i| {
            let repo = format!("fan/app-{i}");
            let own = random_bytes(layer, 10 + i as u64);
            let (digest, manifest) = push_image(base, &repo, Some("v1"), &[&shared, &own], "linux/amd64");
            let manifest: Value = serde_json::from_slice(&manifest).unwrap();
            let blobs = manifest["layers"]
                .as_array()
                .unwrap()
                .iter()
                .chain([&manifest["config"]])
                .map(|b| b["digest"].as_str().unwrap().to_owned())
                .collect();
            Image { repo, digest, blobs }
        })
        .collect()
}

/// An images file sending every image to the same repository in each destination.
fn images_file(dir: &TempDir, source: &str, images: &[Image], destinations: &[String]) -> String {
    let rules: Vec<String> = images
        .iter()
        .map(|i| {
            let list: Vec<String> = destinations.iter().map(|d| format!(r#""{d}/{}""#, i.repo)).collect();
            format!(r#""{source}/{}:v1": [{}]"#, i.repo, list.join(", "))
        })
        .collect();
    let path = dir.join("images.json");
    std::fs::write(&path, format!("{{{}}}", rules.join(",\n"))).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Successful blob GETs in a distribution access log, per digest.
fn blob_gets(log: &Path) -> BTreeMap<String, usize> {
    let text = std::fs::read_to_string(log).unwrap();
    let mut gets = BTreeMap::new();
    for line in text.lines() {
        let Some((_, request)) = line.split_once("\"GET /v2/") else { continue };
        let Some((path, answer)) = request.split_once(" HTTP/1.1\" ") else { continue };
        let Some((_, digest)) = path.rsplit_once("/blobs/") else { continue };
        if answer.starts_with("200 ") {
            *gets.entry(digest.to_owned()).or_default() += 1;
        }
    }
    gets
}

/// Every image at its source digest in `base`, every blob there with exactly its bytes.
fn assert_complete(base: &str, images: &[Image]) {
    for image in images {
        assert_eq!(head_digest(base, &image.repo, "v1").as_deref(), Some(image.digest.as_str()), "{base}");
        for digest in &image.blobs {
            let blob = get(&format!("{base}/v2/{}/blobs/{digest}", image.repo));
            assert_eq!(blob.status, 200, "{base} {}@{digest}", image.repo);
            assert_eq!(&sha256(&blob.body), digest, "{base} {}@{digest}", image.repo);
        }
    }
}

#[test]
fn three_destinations_read_each_blob_from_the_source_once() {
    if !require("docker-registry") {
        return;
    }
    let dir = TempDir::new("fanout");
    let log = dir.join("source-access.log");
    let source =
        Distribution::start(&DistributionOpts { access_log: Some(log.clone()), ..Default::default() });
    let images = seed(&source.url, 3, 300_000);
    let first = Distribution::start(&DistributionOpts::default());
    let second = Distribution::start(&DistributionOpts::default());
    let served = TempDir::new("fanout-serve");
    let third = Ferry::with_root(served.path(), &[]);
    let destinations = [first.host(), second.host(), third.host()];
    let file = images_file(&dir, &source.host(), &images, &destinations);
    let seeded = blob_gets(&log).values().sum::<usize>();
    assert_eq!(seeded, 0, "seeding reads no blob");

    let report = dir.join("report.json");
    ferry(&[
        "sync",
        "--images",
        &file,
        "--proc",
        "1",
        "--progress",
        "plain",
        "--report",
        report.to_str().unwrap(),
    ])
    .expect(0, "fan-out to three destinations");

    let gets = blob_gets(&log);
    let mut wanted: Vec<&String> = images.iter().flat_map(|i| &i.blobs).collect();
    wanted.sort();
    wanted.dedup();
    assert_eq!(gets.keys().collect::<Vec<_>>(), wanted, "every blob read, and no other");
    assert!(gets.values().all(|n| *n == 1), "each blob read from the source once: {gets:?}");
    for base in [&first.url, &second.url, &format!("http://{}", third.host())] {
        assert_complete(base, &images);
    }
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(report["summary"]["copied"], 9, "{report}");
    assert_eq!(report["summary"]["failed"], 0, "{report}");
}

#[test]
fn a_destination_killed_mid_run_leaves_the_other_two_complete() {
    if !require("docker-registry") {
        return;
    }
    let dir = TempDir::new("fanout-kill");
    let source = Distribution::start(&DistributionOpts::default());
    let images = seed(&source.url, 2, 4 * 1024 * 1024);
    // 8 MiB/s: half a second a layer, so the kill lands mid-run.
    let proxy = FaultProxy::start(&source.url, Schedule::throttled(8 * 1024 * 1024));
    let first = Distribution::start(&DistributionOpts::default());
    let second = Distribution::start(&DistributionOpts::default());
    let served = TempDir::new("fanout-kill-serve");
    let mut third = Ferry::with_root(served.path(), &[]);
    let destinations = [first.host(), second.host(), third.host()];
    let file = images_file(&dir, &proxy.host(), &images, &destinations);
    let report = dir.join("report.json");

    let docker_config = TempDir::new("fanout-kill-docker");
    let mut child = Command::new(ferry_bin())
        .args(["sync", "--images", &file, "--proc", "1", "--retries", "1", "--progress", "plain"])
        .args(["--report", report.to_str().unwrap()])
        .env("DOCKER_CONFIG", docker_config.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ferry sync");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !images[0].blobs[..2].iter().any(|d| has_blob(&first.url, &images[0].repo, d)) {
        assert!(child.try_wait().unwrap().is_none(), "the sync ended before the kill");
        assert!(Instant::now() < deadline, "no layer arrived in 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    third.kill();
    let status = wait(&mut child, Duration::from_secs(120));
    assert_eq!(status.code(), Some(1), "the killed destination's images failed");

    assert_complete(&first.url, &images);
    assert_complete(&second.url, &images);
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let mut killed_failures = 0;
    for entry in report["images"].as_array().unwrap() {
        let destination = entry["destination"].as_str().unwrap();
        if destination.starts_with(&third.host()) {
            // An image may have landed there in the instant before the kill.
            assert!(entry["outcome"] == "failed" || entry["outcome"] == "copied", "{entry}");
            killed_failures += usize::from(entry["outcome"] == "failed");
        } else {
            assert_eq!(entry["outcome"], "copied", "{entry}");
        }
    }
    assert!(killed_failures >= 1, "the killed destination's last image failed: {report}");
}

fn wait(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ferry sync did not end in {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
