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
