//! `ferry sync` through a proxy that rate-limits manifest reads (a token bucket answering
//! `429` with `Retry-After` and `RateLimit-Limit` / `RateLimit-Remaining`, as Docker Hub
//! limits pulls; tests/support/fault_proxy.rs) in front of real distribution.
//!
//! What it proves: every image lands and the run exits 0, with the adaptive windows and
//! with `--fixed-concurrency`; each decrease is told (`window_shrunk`) and the summary
//! counts every 429 the proxy answered. On loopback a request takes about a millisecond,
//! so even a window of 1 asks faster than the bucket refills: what bounds the 429s is the
//! decrease that comes before the retry and the `Retry-After` that holds the whole class,
//! at most the requests in flight when the bucket first ran dry (`--proc`) plus one per
//! second. At fixed concurrency every image retries on its own, and the 429s are several
//! times as many.
//!
//! And a source with a Docker Hub pull quota (manifest `GET`s per window, told in
//! `ratelimit-*` fields): the sync pauses until the window resets instead of running into
//! `429`s, and finishes; `--dry-run` first foresees, per registry, the requests the real
//! run then makes, counted by proxies in front of both registries.

#[path = "support/mod.rs"]
mod support;

#[path = "support/cli.rs"]
mod cli;

#[path = "support/fault_proxy.rs"]
mod fault_proxy;

use std::time::Instant;

use cli::{ferry, head_digest, push_image};
use fault_proxy::{Fault, FaultProxy, Schedule};
use serde_json::Value;
use support::{require, Distribution, DistributionOpts, TempDir};

const IMAGES: usize = 24;
const PROC: usize = 16;

/// What one sync through a fresh limiter came to.
struct Outcome {
    too_many: usize,
    seconds: u64,
    rate_limits: Vec<Value>,
    shrunk: usize,
}

/// Syncs `src/library/app` to `destination/<prefix>/library/app` through a limiter of 5
/// manifest reads at once and 5 a second after.
fn sync(source: &str, destination: &str, prefix: &str, extra: &[&str]) -> Outcome {
    let src = FaultProxy::start(source, Schedule::rate_limited(5, 5));
    let dir = TempDir::new(prefix);
    let images_file = dir.join("images.json");
    let host = destination.trim_start_matches("http://");
    std::fs::write(
        &images_file,
        format!(r#"{{"{}/library/app": "{host}/{prefix}/library/app"}}"#, src.host()),
    )
    .unwrap();
    let report = dir.join("report.json");
    let proc = PROC.to_string();
    // Images alone: the limiter's budget is sized for their manifest reads (referrers
    // would add a tag-schema read per image at this distribution source).
    let mut args =
        vec!["sync", "--images", images_file.to_str().unwrap(), "--proc", &proc, "--referrers", "none"];
    args.extend(["--progress", "json", "--report", report.to_str().unwrap()]);
    args.extend(extra);
    let started = Instant::now();
    let run = ferry(&args);
    run.assert_no_panic();
    let run = run.expect(0, prefix);
    let seconds = started.elapsed().as_secs() + 1;
    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let events: Vec<Value> = run.stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    Outcome {
        too_many: src.count(|l| matches!(l.fault, Some(Fault::RateLimited { .. }))),
        seconds,
        rate_limits: report["summary"]["rate_limits"].as_array().cloned().unwrap_or_default(),
        shrunk: events.iter().filter(|e| e["event"] == "window_shrunk").count(),
    }
}

#[test]
fn a_rate_limited_source_lands_every_image_with_bounded_429s() {
    if !require("docker-registry") {
        return;
    }
    let source = Distribution::start(&DistributionOpts::default());
    let destination = Distribution::start(&DistributionOpts::default());
    let digests: Vec<String> = (0..IMAGES)
        .map(|i| {
            let layer = format!("layer {i}");
            push_image(&source.url, "library/app", Some(&format!("v{i}")), &[layer.as_bytes()], "linux/amd64")
                .0
        })
        .collect();

    let adaptive = sync(&source.url, &destination.url, "adaptive", &[]);
    let fixed = sync(&source.url, &destination.url, "fixed", &["--fixed-concurrency"]);
    eprintln!(
        "adaptive: {} 429s in {} s, {} window_shrunk; fixed: {} 429s in {} s",
        adaptive.too_many, adaptive.seconds, adaptive.shrunk, fixed.too_many, fixed.seconds
    );
    for prefix in ["adaptive", "fixed"] {
        for (i, digest) in digests.iter().enumerate() {
            let (repo, tag) = (format!("{prefix}/library/app"), format!("v{i}"));
            assert_eq!(
                head_digest(&destination.url, &repo, &tag).as_deref(),
                Some(digest.as_str()),
                "{repo}:{tag}"
            );
        }
    }
    for (name, outcome, shrinks) in [("adaptive", &adaptive, true), ("fixed", &fixed, false)] {
        let [limit] = &outcome.rate_limits[..] else { panic!("{name}: {:?}", outcome.rate_limits) };
        assert_eq!(limit["class"], "manifest_read", "{name}");
        assert_eq!(limit["pushbacks"], outcome.too_many as u64, "{name}: the summary counts every 429");
        assert_eq!(limit.get("smallest_window").is_some(), shrinks, "{name}");
        assert_eq!(outcome.shrunk > 0, shrinks, "{name}");
    }
    assert!(
        adaptive.too_many as u64 <= PROC as u64 + adaptive.seconds,
        "{} 429s in {} s",
        adaptive.too_many,
        adaptive.seconds
    );
    assert!(
        fixed.too_many >= 2 * adaptive.too_many,
        "fixed {} against adaptive {}",
        fixed.too_many,
        adaptive.too_many
    );
}

/// The requests a proxy logged, and its manifest `GET`s: as the forecast counts them.
fn counted(proxy: &FaultProxy) -> (u64, u64) {
    let log = proxy.log();
    let http =
        log.iter().filter(|l| ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"].contains(&l.method.as_str()));
    let gets = log.iter().filter(|l| l.method == "GET" && l.target.contains("/manifests/")).count();
    (http.count() as u64, gets as u64)
}

#[test]
fn a_pull_quota_pauses_the_sync_and_a_dry_run_foresees_its_requests() {
    if !require("docker-registry") {
        return;
    }
    let source = Distribution::start(&DistributionOpts::default());
    let destination = Distribution::start(&DistributionOpts::default());
    let digests: Vec<String> = (0..8)
        .map(|i| {
            let layer = format!("quota layer {i}");
            let layers: [&[u8]; 2] = [b"quota base", layer.as_bytes()];
            push_image(&source.url, "library/app", Some(&format!("v{i}")), &layers, "linux/amd64").0
        })
        .collect();
    // 5 manifest GETs per 3 s window; both sides behind proxies that count.
    let src = FaultProxy::start(&source.url, Schedule { pull_quota: Some((5, 3)), ..Schedule::none() });
    let dst = FaultProxy::start(&destination.url, Schedule::none());
    let dir = TempDir::new("quota");
    let images_file = dir.join("images.json");
    std::fs::write(&images_file, format!(r#"{{"{}/library/app": "{}/mirror/app"}}"#, src.host(), dst.host()))
        .unwrap();
    let (dry_report, real_report) = (dir.join("dry.json"), dir.join("real.json"));
    // One image at a time: the quota counts GETs in the order ferry sends them. Images
    // alone: the counts are the images' (referrers would add a tag-schema index read per
    // image at this distribution source, each a manifest GET the quota counts).
    let sync = |extra: &[&str], report: &std::path::Path| {
        let mut args =
            vec!["sync", "--images", images_file.to_str().unwrap(), "--proc", "1", "--referrers", "none"];
        args.extend(["--progress", "json", "--report", report.to_str().unwrap()]);
        args.extend(extra);
        let run = ferry(&args);
        run.assert_no_panic();
        run.expect(0, "sync through the quota")
    };
    let dry = sync(&["--dry-run"], &dry_report);
    let report: Value = serde_json::from_slice(&std::fs::read(&dry_report).unwrap()).unwrap();
    let forecast = |host: String| -> (u64, u64) {
        let entries = report["summary"]["forecast"].as_array().cloned().unwrap_or_default();
        let entry = entries.iter().find(|e| e["registry"] == host.as_str()).unwrap_or_else(|| {
            panic!("no forecast for {host}: {entries:?}");
        });
        (entry["requests"].as_u64().unwrap(), entry["counted"].as_u64().unwrap())
    };
    let (src_forecast, dst_forecast) = (forecast(src.host()), forecast(dst.host()));
    // The dry run itself read the 8 source manifests: past the quota of 5, so it paused too.
    assert_eq!(src_forecast.1, 8, "{}", dry.stdout);
    assert!(dry.stdout.contains(r#""event":"budget_paused""#), "{}", dry.stdout);
    src.clear_log();
    dst.clear_log();

    let real = sync(&[], &real_report);
    eprintln!(
        "forecast: source {src_forecast:?}, destination {dst_forecast:?}; real: source {:?}, destination {:?}",
        counted(&src),
        counted(&dst)
    );
    let events: Vec<Value> = real.stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let pauses: Vec<&Value> = events.iter().filter(|e| e["event"] == "budget_paused").collect();
    assert!(!pauses.is_empty(), "{}", real.stdout);
    assert_eq!(pauses[0]["limit"], 5);
    assert_eq!(pauses[0]["window_s"], 3);
    // Not one GET ran into the quota: they waited for it.
    assert_eq!(src.injected(Fault::QuotaSpent), 0, "{:?}", src.log());
    assert_eq!(counted(&src), src_forecast, "the source's requests, as the dry run foresaw them");
    assert_eq!(counted(&dst), dst_forecast, "the destination's requests, as the dry run foresaw them");
    let report: Value = serde_json::from_slice(&std::fs::read(&real_report).unwrap()).unwrap();
    let budget = &report["summary"]["budgets"][0];
    assert_eq!(
        (budget["registry"].as_str(), budget["counted"].as_u64()),
        (Some(src.host().as_str()), Some(8))
    );
    assert!(budget["pauses"].as_u64() >= Some(1), "{budget}");
    for (i, digest) in digests.iter().enumerate() {
        let tag = format!("v{i}");
        assert_eq!(
            head_digest(&destination.url, "mirror/app", &tag).as_deref(),
            Some(digest.as_str()),
            "{tag}"
        );
    }
}
