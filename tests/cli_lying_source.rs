//! A real distribution registry that lies: after seeding, one layer's data on its disk
//! (`<root>/docker/registry/v2/blobs/sha256/<xx>/<hex>/data`) is overwritten with other
//! bytes of the same length, or of another length. distribution serves what is on disk.
//!
//! What they prove: `ferry sync` fails that image with a reason that names the digest (on
//! stderr and in the report) and says a retry will not help; neither its manifest nor the
//! bad blob reaches the destination; the honest images of the same run are copied; the
//! exit code is 1.

#[path = "support/mod.rs"]
mod support;

#[path = "support/cli.rs"]
mod cli;

use cli::{ferry, has_blob, head_digest, push_image};
use serde_json::Value;
use support::{random_bytes, require, Distribution, DistributionOpts, Ferry, TempDir};

const LAYER: usize = 1024 * 1024;

struct Case {
    name: &'static str,
    /// The bytes put on disk in place of the layer's.
    lie: fn(&[u8]) -> Vec<u8>,
    /// Words the reason gives besides the digest.
    says: &'static str,
}

fn flip_one_byte(real: &[u8]) -> Vec<u8> {
    let mut lie = real.to_vec();
    lie[LAYER / 2] ^= 0xff;
    lie
}

fn shorter(real: &[u8]) -> Vec<u8> {
    real[..real.len() - 4096].to_vec()
}

fn longer(real: &[u8]) -> Vec<u8> {
    let mut lie = real.to_vec();
    lie.extend_from_slice(b"and a few bytes more");
    lie
}

/// Where distribution keeps a blob's bytes.
fn blob_data(storage: &std::path::Path, digest: &str) -> std::path::PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    storage.join(format!("docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]))
}

#[test]
fn a_lying_source_fails_its_image_and_only_its_image() {
    if !require("docker-registry") {
        return;
    }
    let source = Distribution::start(&DistributionOpts::default());
    let honest: Vec<(&str, String)> = ["library/honest-a", "library/honest-b"]
        .iter()
        .enumerate()
        .map(|(i, repo)| {
            let layer = random_bytes(LAYER, 40 + i as u64);
            (*repo, push_image(&source.url, repo, Some("v1"), &[&layer], "linux/amd64").0)
        })
        .collect();
    let cases = [
        Case { name: "same-length", lie: flip_one_byte, says: "digest" },
        Case { name: "shorter", lie: shorter, says: "bytes" },
        Case { name: "longer", lie: longer, says: "bytes" },
    ];
    let destination = Ferry::start(&["--storage", "memory"]);
    let (s, d) = (source.host(), destination.host());
    for (i, case) in cases.iter().enumerate() {
        let repo = format!("library/liar-{}", case.name);
        let layer = random_bytes(LAYER, 50 + i as u64);
        let layer_digest = support::sha256(&layer);
        push_image(&source.url, &repo, Some("v1"), &[&layer], "linux/amd64");
        let data = blob_data(&source.storage(), &layer_digest);
        let real = std::fs::read(&data).unwrap_or_else(|e| panic!("{}: {e}", data.display()));
        assert_eq!(real, layer, "distribution keeps the blob's bytes at {}", data.display());
        std::fs::write(&data, (case.lie)(&real)).unwrap();

        let dir = TempDir::new(case.name);
        let images = dir.join("images.json");
        let prefix = case.name;
        std::fs::write(
            &images,
            format!(
                r#"{{"{s}/{repo}:v1": "{d}/{prefix}/{repo}", "{s}/library/honest-a:v1": "{d}/{prefix}/library/honest-a", "{s}/library/honest-b:v1": "{d}/{prefix}/library/honest-b"}}"#
            ),
        )
        .unwrap();
        let report = dir.join("report.json");
        let started = std::time::Instant::now();
        let run = ferry(&[
            "sync",
            "--images",
            images.to_str().unwrap(),
            "--progress",
            "plain",
            "--report",
            report.to_str().unwrap(),
        ]);
        run.assert_no_panic();
        let run = run.expect(1, case.name);
        let took = started.elapsed();

        // stderr: the image's failure names the digest; the last line counts the failures.
        let failed_line = run
            .stderr
            .lines()
            .find(|l| l.starts_with(&format!("failed {s}/{repo}:v1 -> ")))
            .unwrap_or_else(|| panic!("{}: no failure line for {repo}:\n{}", case.name, run.stderr));
        assert!(failed_line.contains(&layer_digest), "{}: {failed_line}", case.name);
        assert!(failed_line.contains(case.says), "{}: {failed_line}", case.name);
        assert_eq!(run.stderr.lines().last(), Some("error: 1 of 3 image(s) failed (see the failures above)"));
        assert!(run.stdout.contains("a retry will not help"), "{}: {}", case.name, run.stdout);

        // The report: the liar failed for that reason, the honest images were copied.
        let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        assert_eq!(report["status"], "failed");
        for image in report["images"].as_array().unwrap() {
            let liar = image["source"] == format!("{s}/{repo}:v1");
            let outcome = if liar { "failed" } else { "copied" };
            assert_eq!(image["outcome"], outcome, "{}: {image}", case.name);
            if liar {
                assert!(image["reason"].as_str().unwrap().contains(&layer_digest), "{}: {image}", case.name);
                assert_eq!(image["kind"], "integrity", "{}: {image}", case.name);
            }
        }
        let failures = report["summary"]["failures"].as_array().unwrap();
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0]["retryable"], false, "{}: a lie is not worth a retry", case.name);
        assert_eq!(failures[0]["kind"], "integrity", "{}: the failure says what went wrong", case.name);
        assert_eq!(report["summary"]["retries"], 0, "{}: a lie is not retried", case.name);

        // Nothing of the lie at the destination; the honest images whole.
        let liar_repo = format!("{prefix}/{repo}");
        assert_eq!(
            head_digest(&destination.url, &liar_repo, "v1"),
            None,
            "{}: the manifest arrived",
            case.name
        );
        assert!(
            !has_blob(&destination.url, &liar_repo, &layer_digest),
            "{}: the lie was committed",
            case.name
        );
        for (repo, digest) in &honest {
            let repo = format!("{prefix}/{repo}");
            assert_eq!(
                head_digest(&destination.url, &repo, "v1").as_deref(),
                Some(digest.as_str()),
                "{repo}"
            );
        }
        assert!(took < std::time::Duration::from_secs(20), "{}: took {took:?}", case.name);
        eprintln!("{}: {failed_line} ({took:.1?})", case.name);
    }
}
