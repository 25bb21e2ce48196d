//! `ferry sync` killed with SIGKILL halfway, then run again.
//!
//! Three images of two 8 MiB layers each go from a real distribution registry, behind a
//! proxy that throttles blob bodies (tests/support/fault_proxy.rs), into another one, one
//! blob at a time, and the kill lands when an image has one of its layers at the
//! destination and not its manifest. The second run goes at full speed.
//!
//! What they prove: the second run completes with the source's digests; images whose
//! manifest had arrived are skipped; of the others, exactly the blobs the destination
//! lacked are transferred (the report's counts and bytes, and the blob GETs the source
//! received) and the rest are found present.

#[path = "support/mod.rs"]
mod support;

#[path = "support/cli.rs"]
mod cli;

#[path = "support/fault_proxy.rs"]
mod fault_proxy;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cli::{ferry, has_blob, head_digest, push_image};
use fault_proxy::{FaultProxy, Logged, Schedule};
use serde_json::Value;
use support::{ferry_bin, random_bytes, require, Distribution, DistributionOpts, TempDir};

const LAYER: usize = 8 * 1024 * 1024;
const IMAGES: usize = 3;

/// One image at the source: its repository, manifest digest and blobs (digest, size).
struct Image {
    repo: String,
    digest: String,
    blobs: Vec<(String, u64)>,
}

fn seed(base: &str) -> Vec<Image> {
    (0..IMAGES)
        .map(|i| {
            let repo = format!("library/big-{i}");
            let layers = [random_bytes(LAYER, 90 + 2 * i as u64), random_bytes(LAYER, 91 + 2 * i as u64)];
            let (digest, manifest) =
                push_image(base, &repo, Some("v1"), &[&layers[0], &layers[1]], "linux/amd64");
            let manifest: Value = serde_json::from_slice(&manifest).unwrap();
            let blobs = manifest["layers"]
                .as_array()
                .unwrap()
                .iter()
                .chain([&manifest["config"]])
                .map(|b| (b["digest"].as_str().unwrap().to_owned(), b["size"].as_u64().unwrap()))
                .collect();
            Image { repo, digest, blobs }
        })
        .collect()
}

/// What the destination holds: per image, whether its tag is there and which blobs are.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Holdings(Vec<(bool, Vec<bool>)>);

impl Holdings {
    fn read(base: &str, images: &[Image]) -> Holdings {
        Holdings(
            images
                .iter()
                .map(|image| {
                    let tagged = head_digest(base, &image.repo, "v1").is_some();
                    let blobs = image.blobs.iter().map(|(d, _)| has_blob(base, &image.repo, d)).collect();
                    (tagged, blobs)
                })
                .collect(),
        )
    }

    /// Layers (the 8 MiB blobs, listed before the config) present.
    fn layers(&self) -> usize {
        self.0.iter().map(|(_, blobs)| blobs[..2].iter().filter(|b| **b).count()).sum()
    }

    /// Whether some image has a layer at the destination but not its manifest.
    fn halfway(&self) -> bool {
        self.0.iter().any(|(tagged, blobs)| !tagged && blobs[..2].iter().any(|b| *b))
    }
}

#[test]
fn a_killed_sync_resumes_moving_only_what_is_missing() {
    if !require("docker-registry") {
        return;
    }
    let source = Distribution::start(&DistributionOpts::default());
    let destination = Distribution::start(&DistributionOpts::default());
    let images = seed(&source.url);
    // 16 MiB/s: half a second a layer, one at a time.
    let proxy = FaultProxy::start(&source.url, Schedule::throttled(16 * 1024 * 1024));
    let dir = TempDir::new("interrupt");
    let rules: Vec<String> = images
        .iter()
        .map(|i| format!(r#""{}/{}:v1": "{}/{}""#, proxy.host(), i.repo, destination.host(), i.repo))
        .collect();
    let images_file = dir.join("images.json");
    std::fs::write(&images_file, format!("{{{}}}", rules.join(", "))).unwrap();
    let images_arg = images_file.to_str().unwrap();
    let one_at_a_time = ["--proc", "1", "--max-transfers", "1", "--progress", "plain"];

    // The first run, killed once some layers and not all have arrived.
    let docker_config = TempDir::new("interrupt-docker");
    let mut child = Command::new(ferry_bin())
        .args(["sync", "--images", images_arg])
        .args(one_at_a_time)
        .env("DOCKER_CONFIG", docker_config.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ferry sync");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(child.try_wait().unwrap().is_none(), "the sync ended before it could be interrupted");
        assert!(Instant::now() < deadline, "no image was halfway in 30 s");
        if Holdings::read(&destination.url, &images).halfway() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), None, "killed by a signal");
    // Whatever the registry was still committing settles.
    let mut before = Holdings::read(&destination.url, &images);
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = Holdings::read(&destination.url, &images);
        if now == before {
            break;
        }
        before = now;
    }
    let layers = before.layers();
    assert!(before.halfway() && layers < 2 * IMAGES, "the kill should land halfway: {before:?}");

    // The second run, at full speed, with a report.
    proxy.set_schedule(Schedule::none());
    proxy.clear_log();
    let report = dir.join("report.json");
    let mut args = vec!["sync", "--images", images_arg, "--report", report.to_str().unwrap()];
    args.extend(one_at_a_time);
    ferry(&args).expect(0, "the second run");

    let mut skipped = 0;
    let (mut missing, mut missing_bytes, mut present) = (0, 0, 0);
    for (image, (tagged, blobs)) in images.iter().zip(&before.0) {
        if *tagged {
            skipped += 1;
            continue;
        }
        for ((_, size), held) in image.blobs.iter().zip(blobs) {
            if *held {
                present += 1;
            } else {
                missing += 1;
                missing_bytes += size;
            }
        }
    }
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let summary = &report["summary"];
    assert_eq!(report["status"], "succeeded", "{report}");
    assert_eq!(summary["skipped"], skipped, "{before:?}\n{report}");
    assert_eq!(summary["copied"], IMAGES - skipped, "{before:?}\n{report}");
    assert_eq!(summary["blobs_transferred"], missing, "{before:?}\n{report}");
    assert_eq!(summary["bytes_transferred"], missing_bytes, "{before:?}\n{report}");
    assert_eq!(summary["blobs_present"], present, "{before:?}\n{report}");
    assert!(present >= 1, "an image had a layer already: {before:?}");
    assert_eq!(summary["retries"], 0);
    let gets = proxy.count(Logged::is_blob_get);
    assert_eq!(gets, missing, "blob GETs at the source: {:?}", proxy.log());

    for image in &images {
        assert_eq!(head_digest(&destination.url, &image.repo, "v1").as_deref(), Some(image.digest.as_str()));
        for (digest, _) in &image.blobs {
            assert!(has_blob(&destination.url, &image.repo, digest), "{} lacks {digest}", image.repo);
        }
    }
    eprintln!(
        "killed with {layers} of {} layers at the destination; the second run skipped {skipped} image(s), \
         found {present} blob(s) present and moved {missing} blob(s), {missing_bytes} bytes",
        2 * IMAGES
    );
}
