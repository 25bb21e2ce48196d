//! What `ferry sync --watch` takes from the core, on the virtual clock.
//!
//! A stopped job (a service shutting down): the images in flight run to their end, queued
//! images never start and are counted as stopped, and no manifest is pushed for an image
//! whose blobs did not all arrive. The summary's tally of small requests by registry,
//! class and status (what the metrics count): every request once, a broken connection
//! under no status.

use ferry_core::api::EndpointMap;
use ferry_core::config::parse_images_file;
use ferry_core::copy::{Job, Plan, SyncMachine, SyncOptions};
use ferry_core::progress::{Event, ImageOutcome, RequestClass};
use ferry_core::testkit::{Fault, FaultAnswer, ImageBuilder, Network, Simulation};
use ferry_core::time::{Instant, UnixTime};
use http::Method;
use std::time::Duration;

const SRC: &str = "src.test";
const DST: &str = "dst.test";

fn run(stop_at: Option<Duration>) -> (Simulation, SyncMachine) {
    run_with(stop_at, Vec::new())
}

fn run_with(stop_at: Option<Duration>, faults: Vec<Fault>) -> (Simulation, SyncMachine) {
    let mut net = Network::new();
    for repo in ["a", "b", "c"] {
        let layer = format!("layer of {repo}").into_bytes();
        ImageBuilder::new(net.registry(SRC), repo).image(Some("v1"), &[&layer], "linux/amd64");
    }
    net.add(DST);
    net.faults = faults;
    let images =
        r#"{"src.test/a:v1": "dst.test/a", "src.test/b:v1": "dst.test/b", "src.test/c:v1": "dst.test/c"}"#;
    let rules = parse_images_file("images.json", images, &|_| None).expect("valid images file");
    let mut endpoints = EndpointMap::default();
    endpoints.insecure.extend([SRC.to_owned(), DST.to_owned()]);
    let job = Job { plan: Plan::Rules(rules), credentials: Default::default(), endpoints };
    let options = SyncOptions { proc: 1, ..SyncOptions::default() };
    let mut sim = Simulation::new(net);
    sim.stop_at = stop_at.map(|d| Instant::ZERO + d);
    let mut machine = SyncMachine::new(job, options, Instant::ZERO, UnixTime(1_700_000_000));
    sim.run(&mut machine).expect("the machine finishes");
    (sim, machine)
}

#[test]
fn a_stop_lets_the_image_in_flight_finish_and_starts_no_other() {
    struct Case {
        stop_at: Option<Duration>,
        copied: usize,
        stopped: usize,
    }
    let cases = [
        // Never stopped: all three, one at a time.
        Case { stop_at: None, copied: 3, stopped: 0 },
        // Stopped at once, while the first image reads its manifests (each image takes
        // 50 ms here): it finishes, the other two never start.
        Case { stop_at: Some(Duration::ZERO), copied: 1, stopped: 2 },
        // Stopped while the first image's blob moves.
        Case { stop_at: Some(Duration::from_millis(25)), copied: 1, stopped: 2 },
        // Stopped while the second image runs.
        Case { stop_at: Some(Duration::from_millis(75)), copied: 2, stopped: 1 },
    ];
    for case in cases {
        let (mut sim, machine) = run(case.stop_at);
        let report = machine.report();
        let summary = &report.summary;
        assert_eq!((summary.copied, summary.stopped, summary.failed), (case.copied, case.stopped, 0));
        let pending = report.images.iter().filter(|i| i.outcome == ImageOutcome::Pending).count();
        assert_eq!(pending, case.stopped, "stopped images are pending in the report");
        let started = sim.events_where(|e| matches!(e, Event::ImageStarted { .. })).len();
        assert_eq!(started, case.copied, "no image starts after the stop");
        assert!(matches!(sim.events.last(), Some((_, Event::JobFinished { .. }))));
        // Exactly the copied images' manifests reached the destination.
        assert_eq!(sim.network.registry(DST).manifest_count(), case.copied);
        for repo in ["a", "b", "c"] {
            let tagged = sim.network.registry(DST).tag(repo, "v1").is_some();
            let copied = report
                .images
                .iter()
                .any(|i| i.destination == format!("{DST}/{repo}:v1") && i.outcome == ImageOutcome::Copied);
            assert_eq!(tagged, copied, "{repo}: a tag only for a copied image");
        }
    }
}

#[test]
fn the_summary_tallies_requests_by_registry_class_and_status() {
    let (_, machine) = run(None);
    let summary = machine.report().summary;
    let total: u64 = summary.requests_by.iter().map(|c| c.count).sum();
    assert_eq!(total, summary.requests, "every small request is tallied once");
    let count = |registry: &str, class: RequestClass, status: u16| {
        summary
            .requests_by
            .iter()
            .find(|c| c.registry == registry && c.class == class && c.status == Some(status))
            .map_or(0, |c| c.count)
    };
    // Three manifests pushed at the destination, each answered 201.
    assert_eq!(count(DST, RequestClass::Upload, 201), 3);
    // Three source manifests read with 200.
    assert!(count(SRC, RequestClass::ManifestRead, 200) >= 3);
    // The destination's manifest HEADs found nothing.
    assert_eq!(count(DST, RequestClass::ManifestRead, 404), 3);
}

#[test]
fn a_broken_connection_is_tallied_under_no_status() {
    let cut = Fault {
        method: Some(Method::HEAD),
        path_contains: "dst.test/v2/a/manifests/v1".to_owned(),
        times: 1,
        answer: FaultAnswer::Disconnect,
    };
    let (_, machine) = run_with(None, vec![cut]);
    let summary = machine.report().summary;
    assert_eq!(summary.copied, 3, "the retry mends it: {:?}", summary.failures);
    assert_eq!(summary.retries, 1);
    let broken: Vec<_> = summary.requests_by.iter().filter(|c| c.status.is_none()).collect();
    assert_eq!(broken.len(), 1, "{:?}", summary.requests_by);
    assert_eq!(
        (broken[0].registry.as_str(), broken[0].class, broken[0].count),
        (DST, RequestClass::ManifestRead, 1)
    );
    let total: u64 = summary.requests_by.iter().map(|c| c.count).sum();
    assert_eq!(total, summary.requests, "retries included, every small request once");
}
