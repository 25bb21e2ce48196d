//! `ferry sync` through a proxy that injects faults (tests/support/fault_proxy.rs) between
//! ferry and real distribution registries: `500`, `503`, `429` with `Retry-After: 1`, and
//! blob bodies cut halfway (downloads and uploads), on the source side, the destination
//! side, or both.
//!
//! What they prove: every image lands with the source's digests and the run exits 0; with
//! faults on one side each costs exactly one retry (a best-effort cancel aside), with faults
//! on both one retry covers a transfer's faults on both sides, and the report and the
//! NDJSON stream count them; a `429` waits the `Retry-After` it was given; and every kind
//! of fault did fire. At 20% faults with no cap per request, an image can be unlucky
//! through every retry of a pass: the retry rounds run it again, and it lands.

#[path = "support/mod.rs"]
mod support;

#[path = "support/cli.rs"]
mod cli;

#[path = "support/fault_proxy.rs"]
mod fault_proxy;

use cli::{ferry, has_blob, head_digest, push_image, push_index, OCI_INDEX, OCI_MANIFEST};
use fault_proxy::{Fault, FaultProxy, Schedule};
use serde_json::Value;
use support::{random_bytes, request, require, Distribution, DistributionOpts, TempDir};

const MIB: usize = 1024 * 1024;

/// `library/app:v1` and `:v2` (a 3 MiB layer in common and 2 MiB of their own) and
/// `library/multi:1` (an index of two images on the same 3 MiB layer). Returns
/// `(repository, tag, digest)` of each.
fn seed(base: &str) -> Vec<(&'static str, &'static str, String)> {
    let shared = random_bytes(3 * MIB, 11);
    let v1 =
        push_image(base, "library/app", Some("v1"), &[&shared, &random_bytes(2 * MIB, 12)], "linux/amd64");
    let v2 =
        push_image(base, "library/app", Some("v2"), &[&shared, &random_bytes(2 * MIB, 13)], "linux/amd64");
    let multi = push_index(base, "library/multi", "1", &["linux/amd64", "linux/arm64"], &shared);
    vec![("library/app", "v1", v1.0), ("library/app", "v2", v2.0), ("library/multi", "1", multi)]
}

/// Every image, every child of an index and every blob is at the destination, byte for byte.
fn assert_landed(base: &str, prefix: &str, images: &[(&str, &str, String)]) {
    for (repo, tag, digest) in images {
        let repo = format!("{prefix}/{repo}");
        assert_eq!(head_digest(base, &repo, tag).as_deref(), Some(digest.as_str()), "{repo}:{tag}");
        let manifest = manifest(base, &repo, digest);
        let children: Vec<Value> = if manifest["mediaType"] == OCI_INDEX {
            manifest["manifests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| self::manifest(base, &repo, c["digest"].as_str().unwrap()))
                .collect()
        } else {
            vec![manifest]
        };
        for image in children {
            for blob in image["layers"].as_array().unwrap().iter().chain([&image["config"]]) {
                let digest = blob["digest"].as_str().unwrap();
                let r = request("GET", &format!("{base}/v2/{repo}/blobs/{digest}")).send();
                assert_eq!(r.status, 200, "{repo} lacks {digest}");
                assert_eq!(support::sha256(&r.body), digest, "{repo}: the bytes of {digest}");
                assert!(has_blob(base, &repo, digest));
            }
        }
    }
}

fn manifest(base: &str, repo: &str, digest: &str) -> Value {
    let r = request("GET", &format!("{base}/v2/{repo}/manifests/{digest}"))
        .header("Accept", &format!("{OCI_MANIFEST}, {OCI_INDEX}"))
        .send();
    assert_eq!(r.status, 200, "{repo}@{digest}");
    assert_eq!(support::sha256(&r.body), digest);
    r.json()
}

struct Case {
    name: &'static str,
    source_faults: bool,
    destination_faults: bool,
    seed: u64,
}

#[test]
fn syncs_through_injected_faults_land_every_image() {
    if !require("docker-registry") {
        return;
    }
    let source = Distribution::start(&DistributionOpts::default());
    let destination = Distribution::start(&DistributionOpts::default());
    let images = seed(&source.url);
    let cases = [
        Case { name: "source", source_faults: true, destination_faults: false, seed: 1 },
        Case { name: "destination", source_faults: false, destination_faults: true, seed: 2 },
        Case { name: "both", source_faults: true, destination_faults: true, seed: 3 },
    ];
    for case in cases {
        let schedule = |on: bool, seed: u64| if on { Schedule::faults(seed, 3, 3) } else { Schedule::none() };
        let src = FaultProxy::start(&source.url, schedule(case.source_faults, case.seed));
        let dst = FaultProxy::start(&destination.url, schedule(case.destination_faults, case.seed + 100));
        let dir = TempDir::new(case.name);
        let images_file = dir.join("images.json");
        let (s, d, prefix) = (src.host(), dst.host(), case.name);
        std::fs::write(
            &images_file,
            format!(
                r#"{{"{s}/library/app": "{d}/{prefix}/library/app", "{s}/library/multi:1": "{d}/{prefix}/library/multi"}}"#
            ),
        )
        .unwrap();
        let report = dir.join("report.json");
        let started = std::time::Instant::now();
        let run = ferry(&[
            "sync",
            "--images",
            images_file.to_str().unwrap(),
            "--retries",
            "6",
            "--progress",
            "json",
            "--report",
            report.to_str().unwrap(),
        ]);
        run.assert_no_panic();
        let run = run.expect(0, case.name);
        let took = started.elapsed();

        // Every fault kind fired where faults were on.
        for (proxy, on) in [(&src, case.source_faults), (&dst, case.destination_faults)] {
            for kind in [Fault::Status500, Fault::Status503, Fault::Status429, Fault::Cut] {
                let n = proxy.injected(kind);
                if on {
                    assert!(n >= 1, "{}: no {kind:?} was injected: {:?}", case.name, proxy.log());
                } else {
                    assert_eq!(n, 0);
                }
            }
        }
        let cuts = src.injected(Fault::Cut) + dst.injected(Fault::Cut);
        assert!(cuts >= 2, "{}: {cuts} cuts", case.name);

        // A transfer attempt meets at most one fault on each side, and retries once for all
        // it met; a best-effort cancel (DELETE of an upload) is never retried.
        let counted = |proxy: &FaultProxy, kind: Option<Fault>| {
            proxy.count(|l| {
                l.fault.is_some() && kind.is_none_or(|k| l.fault == Some(k)) && l.method != "DELETE"
            })
        };
        let (at_source, at_destination) = (counted(&src, None), counted(&dst, None));
        let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        assert_eq!(report["status"], "succeeded", "{}: {report}", case.name);
        assert_eq!(report["summary"]["copied"], 3, "{}: {report}", case.name);
        let retries = report["summary"]["retries"].as_u64().unwrap() as usize;
        let bounds = at_source.max(at_destination)..=at_source + at_destination;
        assert!(bounds.contains(&retries), "{}: {retries} retries for faults {bounds:?}", case.name);

        // The NDJSON stream tells each retry, and a 429 waits its Retry-After.
        let events: Vec<Value> = run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let scheduled: Vec<&Value> = events.iter().filter(|e| e["event"] == "retry_scheduled").collect();
        assert_eq!(scheduled.len(), retries, "{}", case.name);
        let waited: Vec<&&Value> =
            scheduled.iter().filter(|e| e["reason"].as_str().unwrap().contains("HTTP 429")).collect();
        assert!(
            !waited.is_empty() && waited.iter().all(|e| e["delay_ms"] == 1000),
            "{}: {waited:#?}",
            case.name
        );
        if !(case.source_faults && case.destination_faults) {
            let too_many = counted(&src, Some(Fault::Status429)) + counted(&dst, Some(Fault::Status429));
            assert_eq!(waited.len(), too_many, "{}: {scheduled:#?}", case.name);
        }
        assert_eq!(events.last().unwrap()["event"], "job_finished");

        assert_landed(&destination.url, prefix, &images);
        eprintln!(
            "{}: {} requests through the proxies, {} faults ({cuts} cuts), {retries} retries, {took:.1?}",
            case.name,
            src.log().len() + dst.log().len(),
            at_source + at_destination,
        );
    }
}

/// 36 images (12 repositories of 3 tags) through proxies that fail one request in five and
/// cut one blob body in five, on both sides, with no cap per request, for several seeds.
/// A blob transfer then fails about two times in three (its GET, upload and commit can each
/// fail), so with `--retries 5` alone about one blob in ten gives up in a pass. Up to five
/// more rounds run the images and tag lists that still failed: every image lands, the run
/// exits 0, and the summary, the events and the report agree on the rounds.
#[test]
fn at_20_percent_faults_retry_rounds_land_every_image() {
    if !require("docker-registry") {
        return;
    }
    let source = Distribution::start(&DistributionOpts::default());
    let destination = Distribution::start(&DistributionOpts::default());
    let mut images = Vec::new();
    for r in 0..12u64 {
        let repo = format!("library/r{r}");
        let base = random_bytes(64 * 1024, 100 + r);
        for t in 0..3u64 {
            let own = random_bytes(96 * 1024, 1000 + r * 10 + t);
            let tag = format!("v{t}");
            let (digest, _) = push_image(&source.url, &repo, Some(&tag), &[&base, &own], "linux/amd64");
            images.push((repo.clone(), tag, digest));
        }
    }
    let mut extra_rounds = 0;
    for seed in [21u64, 22, 23] {
        let src = FaultProxy::start(&source.url, Schedule::uncapped(seed, 5));
        let dst = FaultProxy::start(&destination.url, Schedule::uncapped(seed + 100, 5));
        let dir = TempDir::new("rounds");
        let (s, d) = (src.host(), dst.host());
        let rules: Vec<String> =
            (0..12).map(|r| format!(r#""{s}/library/r{r}": "{d}/s{seed}/library/r{r}""#)).collect();
        let images_file = dir.join("images.json");
        std::fs::write(&images_file, format!("{{{}}}", rules.join(", "))).unwrap();
        let report = dir.join("report.json");
        let started = std::time::Instant::now();
        let run = ferry(&[
            "sync",
            "--images",
            images_file.to_str().unwrap(),
            "--retries",
            "5",
            "--progress",
            "json",
            "--report",
            report.to_str().unwrap(),
        ]);
        run.assert_no_panic();
        let name = format!("seed {seed}");
        let run = run.expect(0, &name);

        let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        assert_eq!(report["status"], "succeeded", "{name}: {report}");
        assert_eq!(report["summary"]["copied"], 36, "{name}: {report}");
        let rounds = report["summary"]["rounds"].as_u64().unwrap();
        assert!((1..=6).contains(&rounds), "{name}: {rounds} rounds");
        let events: Vec<Value> = run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let started_rounds: Vec<u64> = events
            .iter()
            .filter(|e| e["event"] == "round_started")
            .map(|e| e["round"].as_u64().unwrap())
            .collect();
        assert_eq!(started_rounds, (2..=rounds).collect::<Vec<_>>(), "{name}");
        let last = events.last().unwrap();
        assert_eq!(
            (&last["event"], &last["summary"]["rounds"]),
            (&Value::from("job_finished"), &Value::from(rounds))
        );
        let reported = report["images"].as_array().unwrap();
        assert_eq!(reported.len(), 36, "{name}");
        assert!(reported.iter().all(|i| i["outcome"] == "copied" && i["round"].as_u64().unwrap() <= rounds));
        let plain = run.stderr.lines().find(|l| l.starts_with("requests:")).unwrap_or_default().to_owned();
        assert!(plain.contains(&format!("rounds: {rounds},")), "{name}: {plain}");

        let prefixed: Vec<(&str, &str, String)> =
            images.iter().map(|(r, t, d)| (r.as_str(), t.as_str(), d.clone())).collect();
        assert_landed(&destination.url, &format!("s{seed}"), &prefixed);
        let faults = src.count(|l| l.fault.is_some()) + dst.count(|l| l.fault.is_some());
        let requests = src.log().len() + dst.log().len();
        let again = reported.iter().filter(|i| i["round"].as_u64().unwrap() > 1).count();
        eprintln!(
            "{name}: {requests} requests through the proxies, {faults} faults, {} retries, {rounds} round(s), \
             {again} image(s) landed after round 1, {:.1?}",
            report["summary"]["retries"],
            started.elapsed()
        );
        extra_rounds += rounds - 1;
    }
    assert!(extra_rounds > 0, "no seed needed a second round: the faults are too kind to test rounds");
}
