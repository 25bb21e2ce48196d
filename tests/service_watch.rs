//! `ferry sync --watch` between two real registries: distribution (`docker-registry`) as
//! the source and `ferry serve` as the destination, with a 1 s interval.
//!
//! What they prove: a tag pushed to the source between runs reaches the destination at
//! the next run; a rule added to the config file takes effect without a restart, and
//! SIGHUP reloads it at once; a broken edit is reported and the old config keeps running;
//! a cron schedule starts runs on its slots; bad service flags exit 2 naming the flag; `/readyz` turns 503 after
//! `--unready-after` failed runs (the source killed) and 200 once it is back; `/metrics`
//! answers 100 scrapes at once, every one, and `promtool check metrics` accepts it;
//! SIGTERM mid-transfer exits 0 within the drain timeout, with the image either finished
//! (its tag at the source's digest) or abandoned (no tag, no committed layer), and a second
//! SIGTERM exits 1 at once, abandoning it the same way.

#[path = "support/mod.rs"]
mod support;

#[path = "support/cli.rs"]
mod cli;

#[path = "support/fault_proxy.rs"]
mod fault_proxy;

#[path = "support/service.rs"]
mod service;

use std::time::Duration;

use cli::{has_blob, head_digest, push_image};
use fault_proxy::{FaultProxy, Logged, Schedule};
use serde_json::Value;
use service::{promtool_check, sample, Watch};
use support::{get, random_bytes, require, Distribution, DistributionOpts, Ferry, TempDir};

const WAIT: Duration = Duration::from_secs(30);

fn write_images(path: &std::path::Path, rules: &[(String, String)]) {
    let body: Vec<String> = rules.iter().map(|(s, d)| format!("  {s:?}: {d:?}")).collect();
    std::fs::write(path, format!("{{\n{}\n}}\n", body.join(",\n"))).unwrap();
}

#[test]
fn a_watch_follows_the_source_its_config_and_its_health() {
    if !require("docker-registry") || !require("promtool") {
        return;
    }
    let mut source = Distribution::start(&DistributionOpts::default());
    let destination = Ferry::start(&["--storage", "memory"]);
    let (src, dst) = (source.host(), destination.host());
    let dir = TempDir::new("watch");
    let images = dir.join("images.json");
    let mut rules = vec![(format!("{src}/app"), format!("{dst}/app"))];
    write_images(&images, &rules);
    let (v1, _) = push_image(&source.url, "app", Some("v1"), &[b"app v1"], "linux/amd64");

    let mut watch = Watch::start(
        dir.path(),
        &[
            "--images",
            images.to_str().unwrap(),
            "--interval",
            "1s",
            "--reload-check",
            "200ms",
            "--unready-after",
            "2",
            "--retries",
            "0",
        ],
    );
    let first = watch.wait_runs(1, WAIT);
    assert_eq!(first[0]["summary"]["copied"], 1, "{}", first[0]);
    assert_eq!(head_digest(&destination.url, "app", "v1").as_deref(), Some(v1.as_str()));
    assert_eq!(watch.readyz().0, 200);

    // /metrics under 100 scrapes at once: every one answers, and promtool accepts it.
    let url = format!("{}/metrics", watch.url);
    let scrapes: Vec<_> = (0..100)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || get(&url))
        })
        .collect();
    let answers: Vec<_> = scrapes.into_iter().map(|t| t.join().expect("a scrape")).collect();
    assert!(answers.iter().all(|r| r.status == 200 && r.text().contains("ferry_sync_runs_total")));
    let exposition = answers[0].text();
    if let Err(complaints) = promtool_check(&exposition) {
        panic!("promtool check metrics:\n{complaints}\n{exposition}");
    }
    let copied = sample(&exposition, "ferry_sync_images_total{outcome=\"copied\"}");
    assert!(copied >= Some(1.0), "{exposition}");
    eprintln!("100 concurrent scrapes answered 200; promtool check metrics passed");

    // A tag pushed between runs arrives at the next run.
    let runs = watch.reports().len();
    let (v2, _) = push_image(&source.url, "app", Some("v2"), &[b"app v2"], "linux/amd64");
    watch.wait_for("app:v2 at the destination, and the report of its run", WAIT, |w| {
        head_digest(&destination.url, "app", "v2").is_some() && w.reports().len() > runs
    });
    assert_eq!(head_digest(&destination.url, "app", "v2").as_deref(), Some(v2.as_str()));
    let copied_v2 = watch.reports()[runs..].iter().any(|r| {
        r["images"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["destination"].as_str().unwrap().ends_with("/app:v2") && i["outcome"] == "copied")
    });
    assert!(copied_v2, "a run after the first copied v2");

    // A rule added to the file takes effect without a restart.
    let (tool, _) = push_image(&source.url, "tool", Some("1.0"), &[b"tool"], "linux/amd64");
    rules.push((format!("{src}/tool:1.0"), format!("{dst}/tool")));
    write_images(&images, &rules);
    watch.wait_for("tool:1.0 at the destination", WAIT, |_| {
        head_digest(&destination.url, "tool", "1.0").is_some()
    });
    assert_eq!(head_digest(&destination.url, "tool", "1.0").as_deref(), Some(tool.as_str()));
    assert!(watch.log_text().contains("config reloaded"), "{}", watch.log_text());

    // A broken edit is reported; the old config keeps running.
    std::fs::write(&images, "{ \"unterminated\": ").unwrap();
    watch.wait_for("the broken config reported", WAIT, |w| {
        w.log_text().contains("the new config was not loaded, the old one keeps running")
    });
    let (v3, _) = push_image(&source.url, "app", Some("v3"), &[b"app v3"], "linux/amd64");
    watch.wait_for("app:v3 at the destination", WAIT, |_| {
        head_digest(&destination.url, "app", "v3").is_some()
    });
    assert_eq!(head_digest(&destination.url, "app", "v3").as_deref(), Some(v3.as_str()));
    assert_eq!(watch.readyz().0, 200, "a rejected edit does not make the service unready");
    let log = watch.log_text();
    let reported = log.lines().find(|l| l.contains("the new config was not loaded")).unwrap();
    assert!(reported.contains("images.json"), "the message names the file: {reported}");
    assert_eq!(sample(&watch.metrics(), "ferry_sync_config_last_reload_ok"), Some(0.0));
    write_images(&images, &rules);

    // The source goes away: unready after two failed runs; ready once it is back.
    source.stop();
    watch.wait_for("/readyz to answer 503", WAIT, |w| w.readyz().0 == 503);
    let (_, why) = watch.readyz();
    assert!(why.contains("the last 2 runs failed"), "{why}");
    let failed: Vec<Value> = watch.reports().into_iter().rev().take(2).collect();
    assert!(failed.iter().all(|r| r["status"] == "failed"), "{failed:?}");
    source.restart(&DistributionOpts::default());
    watch.wait_for("/readyz to answer 200 again", WAIT, |w| w.readyz().0 == 200);
    assert_eq!(watch.reports().last().unwrap()["status"], "succeeded");

    let (status, took) = watch.terminate();
    assert_eq!(status.code(), Some(0), "{}", watch.log_text());
    eprintln!("SIGTERM between runs: exit 0 in {took:?}");
}

/// 16 MiB at 4 MiB/s: a transfer of about four seconds to interrupt.
const LAYER: usize = 16 * 1024 * 1024;

#[test]
fn sigterm_mid_transfer_finishes_or_abandons_the_image_within_the_drain_timeout() {
    if !require("docker-registry") {
        return;
    }
    struct Case {
        drain: &'static str,
        /// A second SIGTERM this long after the first.
        second: Option<Duration>,
        /// Whether the image in flight finishes (its tag arrives) or is abandoned.
        finishes: bool,
        code: i32,
        /// The most the exit may take after SIGTERM.
        within: Duration,
    }
    let cases = [
        Case { drain: "30s", second: None, finishes: true, code: 0, within: Duration::from_secs(20) },
        Case { drain: "500ms", second: None, finishes: false, code: 0, within: Duration::from_secs(3) },
        // A second signal does not wait for the drain.
        Case {
            drain: "30s",
            second: Some(Duration::from_millis(300)),
            finishes: false,
            code: 1,
            within: Duration::from_secs(3),
        },
    ];
    for (i, case) in cases.iter().enumerate() {
        let source = Distribution::start(&DistributionOpts::default());
        let destination = Distribution::start(&DistributionOpts::default());
        let layer = random_bytes(LAYER, 40 + i as u64);
        let (digest, manifest) = push_image(&source.url, "big", Some("v1"), &[&layer], "linux/amd64");
        let manifest: Value = serde_json::from_slice(&manifest).unwrap();
        let layer_digest = manifest["layers"][0]["digest"].as_str().unwrap().to_owned();
        let proxy = FaultProxy::start(&source.url, Schedule::throttled(4 * 1024 * 1024));
        let dir = TempDir::new("watch-drain");
        let images = dir.join("images.json");
        write_images(&images, &[(format!("{}/big:v1", proxy.host()), format!("{}/big", destination.host()))]);
        let mut watch = Watch::start(
            dir.path(),
            &["--images", images.to_str().unwrap(), "--interval", "1h", "--drain-timeout", case.drain],
        );
        watch.wait_for("the layer's GET at the source", WAIT, |_| {
            proxy.count(|l: &Logged| l.is_blob_get() && l.target.contains(&layer_digest)) > 0
        });
        std::thread::sleep(Duration::from_millis(500));
        assert!(head_digest(&destination.url, "big", "v1").is_none(), "SIGTERM lands mid-transfer");
        let (status, took) = watch.terminate_after(case.second);
        let log = watch.log_text();
        assert_eq!(status.code(), Some(case.code), "drain {}: {log}", case.drain);
        assert!(took <= case.within, "drain {}: exit took {took:?}: {log}", case.drain);
        let tag = head_digest(&destination.url, "big", "v1");
        let committed = has_blob(&destination.url, "big", &layer_digest);
        if case.finishes {
            assert_eq!(tag.as_deref(), Some(digest.as_str()), "drain {}: {log}", case.drain);
            assert!(committed);
            assert!(log.contains("stopped after run 1"), "{log}");
        } else {
            assert_eq!(tag, None, "drain {}: no manifest without its layer: {log}", case.drain);
            assert!(!committed, "drain {}: the layer's upload was left uncommitted", case.drain);
            let said = if case.second.is_some() { "exiting now" } else { "abandoned uncommitted" };
            assert!(log.contains(said), "{log}");
        }
        eprintln!(
            "drain {}{}: SIGTERM mid-transfer, exit {} in {took:?}, image {}",
            case.drain,
            if case.second.is_some() { " and a second SIGTERM" } else { "" },
            case.code,
            if case.finishes { "finished" } else { "abandoned" }
        );
    }
}

#[test]
fn a_cron_schedule_starts_runs_on_its_slots() {
    if !require("docker-registry") {
        return;
    }
    let source = Distribution::start(&DistributionOpts::default());
    let destination = Ferry::start(&["--storage", "memory"]);
    push_image(&source.url, "app", Some("v1"), &[b"app v1"], "linux/amd64");
    let dir = TempDir::new("watch-cron");
    let images = dir.join("images.json");
    write_images(&images, &[(format!("{}/app", source.host()), format!("{}/app", destination.host()))]);
    // Every second second (six fields, seconds first).
    let mut watch =
        Watch::start(dir.path(), &["--images", images.to_str().unwrap(), "--schedule", "*/2 * * * * *"]);
    // The first run starts at once; the next ones on the slots, 2 s apart.
    watch.wait_runs(2, WAIT);
    let second = std::time::Instant::now();
    let reports = watch.wait_runs(3, WAIT);
    let between = second.elapsed();
    assert_eq!(reports[0]["summary"]["copied"], 1);
    assert_eq!(reports[2]["summary"]["skipped"], 1, "later runs find the image in sync");
    assert!(between >= Duration::from_millis(1500), "the second and third runs were {between:?} apart");
    let (status, _) = watch.terminate();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn bad_service_flags_exit_2_naming_the_flag() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["sync", "--images", "x.json", "--watch", "--schedule", "every hour"],
            "\"every hour\" is not a cron schedule",
        ),
        (&["sync", "--images", "x.json", "--watch", "--interval", "5"], "\"5\" is not a duration"),
        (&["sync", "--images", "x.json", "--interval", "5m"], "--watch"),
        (
            &["sync", "--images", "x.json", "--watch", "--dry-run"],
            "--watch copies; it cannot be combined with --dry-run",
        ),
    ];
    for (args, want) in cases {
        let run = cli::ferry(args).expect(2, want);
        assert!(run.stderr.contains(want), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn sighup_reloads_the_config_between_runs() {
    if !require("docker-registry") {
        return;
    }
    let source = Distribution::start(&DistributionOpts::default());
    let destination = Ferry::start(&["--storage", "memory"]);
    let (src, dst) = (source.host(), destination.host());
    push_image(&source.url, "app", Some("v1"), &[b"app v1"], "linux/amd64");
    let dir = TempDir::new("watch-hup");
    let images = dir.join("images.json");
    let mut rules = vec![(format!("{src}/app"), format!("{dst}/app"))];
    write_images(&images, &rules);
    // Neither the schedule nor the change check comes round during the test: only SIGHUP.
    let mut watch = Watch::start(
        dir.path(),
        &["--images", images.to_str().unwrap(), "--interval", "1h", "--reload-check", "1h"],
    );
    watch.wait_runs(1, WAIT);
    assert_eq!(sample(&watch.metrics(), "ferry_sync_config_rules"), Some(1.0));
    rules.push((format!("{src}/tool"), format!("{dst}/tool")));
    write_images(&images, &rules);
    std::thread::sleep(Duration::from_millis(300));
    assert!(!watch.log_text().contains("config reloaded"), "nothing reloads before the signal");
    let hup = std::process::Command::new("kill").args(["-HUP", &watch.pid().to_string()]).status().unwrap();
    assert!(hup.success());
    watch.wait_for("the reload on SIGHUP", WAIT, |w| w.log_text().contains("config reloaded after SIGHUP"));
    assert_eq!(sample(&watch.metrics(), "ferry_sync_config_rules"), Some(2.0));
    let (status, _) = watch.terminate();
    assert_eq!(status.code(), Some(0));
}
