//! A real Prometheus (Debian's `prometheus`) scrapes `ferry sync --watch` and the
//! `ferry serve` it copies from (`--metrics-addr`), every second.
//!
//! What it proves, through Prometheus's `/api/v1/query` after one run: the images copied
//! and the bytes transferred equal the run's report, the requests by registry equal the
//! report's tally, and the registry's request counter grew by exactly the requests the
//! sync sent it (its small requests plus one GET per blob transferred); and no series of
//! either names a digest or a tag.

#[path = "support/mod.rs"]
mod support;

#[path = "support/cli.rs"]
mod cli;

#[path = "support/service.rs"]
mod service;

use std::time::Duration;

use cli::{head_digest, push_image};
use service::{promtool_check, sum_of, Prometheus, Watch};
use support::{free_port, get, require, Distribution, DistributionOpts, Ferry, TempDir};

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn prometheus_sees_what_the_reports_say() {
    if !require("docker-registry") || !require("prometheus") || !require("promtool") {
        return;
    }
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let source = Ferry::start(&["--storage", "memory", "--metrics-addr", &metrics_addr]);
    let destination = Distribution::start(&DistributionOpts::default());
    let (src, dst) = (source.host(), destination.host());
    let mut digests = Vec::new();
    for (repo, layers) in
        [("app", vec![&b"app layer"[..], b"shared base"]), ("tool", vec![b"tool layer", b"shared base"])]
    {
        digests.push(push_image(&source.url, repo, Some("v1"), &layers, "linux/amd64").0);
    }
    let registry_requests =
        || sum_of(&get(&format!("http://{metrics_addr}/metrics")).text(), "ferry_serve_requests_total");
    let seeded = registry_requests();
    assert!(seeded > 0.0, "the seeding requests are counted");

    let dir = TempDir::new("prometheus-watch");
    let images = dir.join("images.json");
    std::fs::write(&images, format!(r#"{{"{src}/app:v1": "{dst}/app", "{src}/tool:v1": "{dst}/tool"}}"#))
        .unwrap();
    // An hour between runs: one run, then a quiet service for Prometheus to scrape.
    let mut watch = Watch::start(dir.path(), &["--images", images.to_str().unwrap(), "--interval", "1h"]);
    let watch_target = watch.url.trim_start_matches("http://").to_owned();
    let prometheus = Prometheus::start(&[("ferry-sync", &watch_target), ("ferry-serve", &metrics_addr)]);

    let report = watch.wait_runs(1, WAIT).remove(0);
    let summary = &report["summary"];
    assert_eq!(report["status"], "succeeded", "{report}");
    for (repo, digest) in ["app", "tool"].iter().zip(&digests) {
        assert_eq!(head_digest(&destination.url, repo, "v1").as_deref(), Some(digest.as_str()));
    }

    let copied = summary["copied"].as_f64().unwrap();
    let got = prometheus.wait_value("ferry_sync_images_total{outcome=\"copied\"}", WAIT, |v| v == copied);
    assert_eq!(got, Some(copied), "images copied, as Prometheus has it");
    let bytes = summary["bytes_transferred"].as_f64().unwrap();
    assert!(bytes > 0.0);
    let got = prometheus.wait_value("ferry_sync_bytes_transferred_total", WAIT, |v| v == bytes);
    assert_eq!(got, Some(bytes), "bytes transferred, as Prometheus has it");
    let live = prometheus.wait_value("ferry_sync_run_transferred_bytes", WAIT, |v| v == bytes);
    assert_eq!(
        live,
        Some(bytes),
        "the run's live byte count, from its blob_done events, ends at the report's"
    );
    let succeeded = prometheus.wait_value("ferry_sync_runs_total{status=\"succeeded\"}", WAIT, |v| v == 1.0);
    assert_eq!(succeeded, Some(1.0));
    let ratio = prometheus.value(&format!("ferry_sync_up_to_date_ratio{{rule=\"{src}/app\"}}"));
    assert_eq!(ratio, Some(1.0));

    // The sync's requests to the source, from its report: small requests by registry,
    // plus one blob GET per transfer (no retries in this run).
    assert_eq!(summary["retries"], 0, "{report}");
    let tally = summary["requests_by"].as_array().expect("requests_by");
    let to_source: f64 =
        tally.iter().filter(|c| c["registry"] == src.as_str()).map(|c| c["count"].as_f64().unwrap()).sum();
    let transfers = summary["transfers"].as_f64().unwrap();
    let by_registry =
        prometheus.wait_value(&format!("sum(ferry_sync_requests_total{{registry=\"{src}\"}})"), WAIT, |v| {
            v == to_source
        });
    assert_eq!(by_registry, Some(to_source), "the sync's requests to the source, as Prometheus has them");
    let expected = seeded + to_source + transfers;
    let served = prometheus.wait_value("sum(ferry_serve_requests_total)", WAIT, |v| v == expected);
    assert_eq!(
        served,
        Some(expected),
        "the registry counted {seeded} seeding requests, then {to_source} small requests and \
         {transfers} blob GETs of the sync"
    );
    let latency = prometheus.value("sum(ferry_serve_request_duration_seconds_count)");
    assert_eq!(latency, Some(expected), "one latency observation per request");
    // The seeding's uploads all committed: no session is left open.
    assert_eq!(prometheus.value("ferry_serve_upload_sessions"), Some(0.0));
    let received = prometheus.value("sum(ferry_serve_received_bytes_total{route=\"blob_upload\"})").unwrap();
    assert!(received > 0.0, "the seeding's blob bytes were counted as they came in");
    let sent = prometheus.value("sum(ferry_serve_sent_bytes_total{route=\"blob\"})").unwrap();
    assert!(sent >= bytes, "the registry sent at least the blobs' bytes: {sent} < {bytes}");
    // Both expositions pass Prometheus's own linter.
    for url in [format!("http://{metrics_addr}/metrics"), format!("{}/metrics", watch.url)] {
        let exposition = get(&url).text();
        if let Err(complaints) = promtool_check(&exposition) {
            panic!("promtool check metrics on {url}:\n{complaints}\n{exposition}");
        }
    }

    // Labels stay bounded: no series of either job names a digest or a tag.
    let series = prometheus.query("{__name__=~\"ferry_.+\"}");
    assert!(series.len() > 20, "{} series", series.len());
    for (labels, _) in &series {
        for (name, value) in labels.as_object().unwrap() {
            let value = value.as_str().unwrap();
            assert!(!value.contains("sha256") && !value.ends_with(":v1"), "{name}={value:?} in {labels}");
        }
    }
    eprintln!(
        "Prometheus: {copied} images copied, {bytes} bytes, {to_source} requests + {transfers} transfers to the \
         source, registry requests {seeded} -> {expected}"
    );
    let (status, _) = watch.terminate();
    assert_eq!(status.code(), Some(0));
}
