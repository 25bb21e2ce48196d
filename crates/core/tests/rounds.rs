//! Retry rounds (image-syncer's model) on the virtual clock: after the main pass, the
//! images and listings that failed transiently run again, as fresh attempts, up to
//! `SyncOptions::rounds` more times; permanent failures never do. Event sequences and
//! request counts are exact.

use ferry_core::api::EndpointMap;
use ferry_core::config::parse_images_file;
use ferry_core::copy::{Job, Plan, SyncMachine, SyncOptions};
use ferry_core::digest::Digest;
use ferry_core::error_body::ErrorCode;
use ferry_core::progress::{Event, ImageOutcome, JobStatus};
use ferry_core::referrers::ReferrerFilter;
use ferry_core::testkit::{Fault, FaultAnswer, ImageBuilder, LoggedRequest, Network, Simulation};
use ferry_core::time::{Instant, UnixTime};
use http::Method;

const SRC: &str = "src.test";
const DST: &str = "dst.test";

fn network() -> Network {
    let mut net = Network::new();
    ImageBuilder::new(net.add(SRC), "app").image(Some("v1"), &[b"layer"], "linux/amd64");
    ImageBuilder::new(net.registry(SRC), "tool").image(Some("v1"), &[b"tool layer"], "linux/amd64");
    net.add(DST);
    net
}

fn run(images: &str, faults: Vec<Fault>, rounds: u32) -> (Simulation, SyncMachine) {
    let mut net = network();
    net.faults = faults;
    let rules = parse_images_file("images.json", images, &|_| None).expect("valid images file");
    let mut endpoints = EndpointMap::default();
    endpoints.insecure.extend([SRC.to_owned(), DST.to_owned()]);
    let job = Job { plan: Plan::Rules(rules), credentials: Default::default(), endpoints };
    // Images alone: these exact counts leave referrers out (tests/referrers.rs counts them).
    let options = SyncOptions { rounds, referrers: ReferrerFilter::None, ..SyncOptions::default() };
    let mut sim = Simulation::new(net);
    let mut machine = SyncMachine::new(job, options, Instant::ZERO, UnixTime(1_700_000_000));
    sim.run(&mut machine).expect("the machine finishes");
    (sim, machine)
}

/// An event as one short line: what happened, to which image, and how.
fn line(event: &Event) -> Option<String> {
    Some(match event {
        Event::PlanFailed { source, kind, retryable, .. } => {
            format!("plan_failed {source} {kind} {retryable}")
        }
        Event::PlanReady { images, repositories, .. } => format!("plan_ready {images} {repositories}"),
        Event::RoundStarted { round, images, listings } => {
            format!("round_started {round} {images} {listings}")
        }
        Event::ImageStarted { image, .. } => format!("image_started {image}"),
        Event::ImageSkipped { image, .. } => format!("image_skipped {image}"),
        Event::BlobDone { image, outcome, .. } => format!("blob_done {image} {outcome:?}"),
        Event::RetryScheduled { target, retry, .. } => {
            let target = target.split(' ').take(2).collect::<Vec<_>>().join(" ");
            format!("retry_scheduled {retry} {target}")
        }
        Event::ImageDone { image, .. } => format!("image_done {image}"),
        Event::ImageFailed { image, kind, retryable, .. } => {
            format!("image_failed {image} {kind} {retryable}")
        }
        Event::JobFinished { status, summary } => {
            format!("job_finished {status:?} rounds {}", summary.rounds)
        }
        _ => return None,
    })
}

const APP_HEAD: &str = "HEAD http://src.test/v2/app/manifests/v1";

fn app_head_fails(times: usize) -> Vec<Fault> {
    vec![Fault::status(Method::HEAD, "src.test/v2/app/manifests/v1", times, 503)]
}

fn tool_layer_cut(times: usize) -> Vec<Fault> {
    let layer = Digest::sha256(b"tool layer");
    vec![Fault {
        method: Some(Method::GET),
        path_contains: format!("src.test/v2/tool/blobs/{layer}"),
        times,
        answer: FaultAnswer::Disconnect,
    }]
}

struct Case {
    name: &'static str,
    images: &'static str,
    faults: Vec<Fault>,
    rounds: u32,
    events: Vec<String>,
    /// Requests whose `METHOD URL` starts with the prefix, and how many.
    counts: Vec<(String, usize)>,
    /// Every request the registries saw.
    logged: usize,
    /// The report's images: destination, outcome and the round it came from.
    report: Vec<(&'static str, ImageOutcome, u32)>,
    /// The summary's requests, transfers, retries and rounds.
    summary: (u64, u64, u64, u32),
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

fn count(log: &[LoggedRequest], prefix: &str) -> usize {
    log.iter().filter(|r| format!("{} {}", r.method, r.url).starts_with(prefix)).count()
}

#[test]
fn transient_failures_run_again_in_later_rounds_and_permanent_ones_do_not() {
    let retried_twice = format!("retry_scheduled 1 {APP_HEAD}\nretry_scheduled 2 {APP_HEAD}");
    let cases = [
        Case {
            name: "no failure: one round, the requests of a plain copy",
            images: r#"{"src.test/app:v1": "dst.test/app"}"#,
            faults: Vec::new(),
            rounds: 2,
            events: lines(
                "plan_ready 1 1
                 image_started 0
                 blob_done 0 Transferred
                 blob_done 0 Transferred
                 image_done 0
                 job_finished Succeeded rounds 1",
            ),
            counts: vec![(APP_HEAD.to_owned(), 1)],
            logged: 12,
            report: vec![("dst.test/app:v1", ImageOutcome::Copied, 1)],
            summary: (6, 2, 0, 1),
        },
        Case {
            name: "unavailable through every retry of round 1, lands in round 2",
            images: r#"{"src.test/app:v1": "dst.test/app"}"#,
            faults: app_head_fails(3),
            rounds: 2,
            events: lines(&format!(
                "plan_ready 1 1
                 image_started 0
                 {retried_twice}
                 image_failed 0 unavailable true
                 round_started 2 1 0
                 image_started 0
                 blob_done 0 Transferred
                 blob_done 0 Transferred
                 image_done 0
                 job_finished Succeeded rounds 2"
            )),
            counts: vec![
                (APP_HEAD.to_owned(), 4),
                ("HEAD http://dst.test/v2/app/manifests/v1".to_owned(), 2),
            ],
            logged: 16,
            report: vec![("dst.test/app:v1", ImageOutcome::Copied, 2)],
            summary: (10, 2, 2, 2),
        },
        Case {
            name: "unavailable through rounds 1 and 2, lands in round 3",
            images: r#"{"src.test/app:v1": "dst.test/app"}"#,
            faults: app_head_fails(6),
            rounds: 2,
            events: lines(&format!(
                "plan_ready 1 1
                 image_started 0
                 {retried_twice}
                 image_failed 0 unavailable true
                 round_started 2 1 0
                 image_started 0
                 {retried_twice}
                 image_failed 0 unavailable true
                 round_started 3 1 0
                 image_started 0
                 blob_done 0 Transferred
                 blob_done 0 Transferred
                 image_done 0
                 job_finished Succeeded rounds 3"
            )),
            counts: vec![
                (APP_HEAD.to_owned(), 7),
                ("HEAD http://dst.test/v2/app/manifests/v1".to_owned(), 3),
            ],
            logged: 20,
            report: vec![("dst.test/app:v1", ImageOutcome::Copied, 3)],
            summary: (14, 2, 4, 3),
        },
        Case {
            name: "no rounds left: the failure stands",
            images: r#"{"src.test/app:v1": "dst.test/app"}"#,
            faults: app_head_fails(3),
            rounds: 0,
            events: lines(&format!(
                "plan_ready 1 1
                 image_started 0
                 {retried_twice}
                 image_failed 0 unavailable true
                 job_finished Failed rounds 1"
            )),
            counts: vec![(APP_HEAD.to_owned(), 3)],
            logged: 4,
            report: vec![("dst.test/app:v1", ImageOutcome::Failed, 1)],
            summary: (4, 0, 2, 1),
        },
        Case {
            name: "a 404 is not run again; the transient failure beside it is",
            images: r#"{"src.test/ghost:v1": "dst.test/ghost", "src.test/app:v1": "dst.test/app"}"#,
            faults: app_head_fails(3),
            rounds: 2,
            events: lines(&format!(
                "plan_ready 2 2
                 image_started 0
                 image_started 1
                 image_failed 0 not_found false
                 {retried_twice}
                 image_failed 1 unavailable true
                 round_started 2 1 0
                 image_started 1
                 blob_done 1 Transferred
                 blob_done 1 Transferred
                 image_done 1
                 job_finished Failed rounds 2"
            )),
            counts: vec![
                ("HEAD http://src.test/v2/ghost/manifests/v1".to_owned(), 1),
                (APP_HEAD.to_owned(), 4),
            ],
            logged: 18,
            report: vec![
                ("dst.test/ghost:v1", ImageOutcome::Failed, 1),
                ("dst.test/app:v1", ImageOutcome::Copied, 2),
            ],
            summary: (12, 2, 2, 2),
        },
        Case {
            name: "a missing repository is not listed again, and keeps its round",
            images: r#"{"src.test/nope": "dst.test/nope", "src.test/app:v1": "dst.test/app"}"#,
            faults: app_head_fails(3),
            rounds: 2,
            events: lines(&format!(
                "plan_ready 1 2
                 plan_failed src.test/nope not_found false
                 image_started 0
                 {retried_twice}
                 image_failed 0 unavailable true
                 round_started 2 1 0
                 image_started 0
                 blob_done 0 Transferred
                 blob_done 0 Transferred
                 image_done 0
                 job_finished Failed rounds 2"
            )),
            // The destination's tag list of nope is asked once too.
            counts: vec![
                ("GET http://src.test/v2/nope/tags/list".to_owned(), 1),
                ("GET http://dst.test/v2/nope/tags/list".to_owned(), 1),
                (APP_HEAD.to_owned(), 4),
            ],
            logged: 18,
            report: vec![
                ("dst.test/nope", ImageOutcome::Failed, 1),
                ("dst.test/app:v1", ImageOutcome::Copied, 2),
            ],
            summary: (12, 2, 2, 2),
        },
        Case {
            name: "a blob cut through every retry: round 2 moves only that blob",
            images: r#"{"src.test/tool:v1": "dst.test/tool"}"#,
            faults: tool_layer_cut(3),
            rounds: 2,
            events: lines(&format!(
                "plan_ready 1 1
                 image_started 0
                 retry_scheduled 1 blob {layer}
                 blob_done 0 Transferred
                 retry_scheduled 2 blob {layer}
                 image_failed 0 unavailable true
                 round_started 2 1 0
                 image_started 0
                 blob_done 0 Present
                 blob_done 0 Transferred
                 image_done 0
                 job_finished Succeeded rounds 2",
                layer = Digest::sha256(b"tool layer")
            )),
            counts: vec![
                (format!("GET http://src.test/v2/tool/blobs/{}", Digest::sha256(b"tool layer")), 4),
                (format!("HEAD http://dst.test/v2/tool/blobs/{}", Digest::sha256(b"tool layer")), 2),
                // The config blob moved in round 1: round 2 knows it is there, asks nothing.
                ("HEAD http://dst.test/v2/tool/blobs/".to_owned(), 3),
                ("PUT http://dst.test/v2/tool/blobs/uploads/".to_owned(), 2),
            ],
            logged: 19,
            report: vec![("dst.test/tool:v1", ImageOutcome::Copied, 2)],
            summary: (10, 5, 2, 2),
        },
        Case {
            name: "a tag list unavailable in round 1 is listed again in round 2",
            images: r#"{"src.test/app": "dst.test/app"}"#,
            faults: vec![Fault::status(Method::GET, "src.test/v2/app/tags/list", 3, 503)],
            rounds: 2,
            events: lines(
                "retry_scheduled 1 GET http://src.test/v2/app/tags/list
                 retry_scheduled 2 GET http://src.test/v2/app/tags/list
                 plan_ready 0 1
                 plan_failed src.test/app unavailable true
                 round_started 2 0 1
                 plan_ready 1 1
                 image_started 0
                 blob_done 0 Transferred
                 blob_done 0 Transferred
                 image_done 0
                 job_finished Succeeded rounds 2",
            ),
            // The destination's tag list (asked once, at the start) shows the repository
            // unknown: the image needs no HEAD on either side, and its blobs none.
            counts: vec![
                ("GET http://src.test/v2/app/tags/list".to_owned(), 4),
                ("GET http://dst.test/v2/app/tags/list".to_owned(), 1),
                (APP_HEAD.to_owned(), 0),
            ],
            logged: 13,
            report: vec![("dst.test/app:v1", ImageOutcome::Copied, 2)],
            summary: (7, 2, 2, 2),
        },
        Case {
            // The two images share their config blob: one moves it, the other mounts it.
            name: "a catalog unavailable in round 1 is listed again in round 2",
            images: r#"{"src.test": "dst.test/mirror"}"#,
            faults: vec![Fault::status(Method::GET, "src.test/v2/_catalog", 3, 503)],
            rounds: 2,
            events: lines(
                "retry_scheduled 1 GET http://src.test/v2/_catalog
                 retry_scheduled 2 GET http://src.test/v2/_catalog
                 plan_ready 0 0
                 plan_failed src.test unavailable true
                 round_started 2 0 1
                 plan_ready 2 2
                 image_started 0
                 image_started 1
                 blob_done 0 Transferred
                 blob_done 1 Transferred
                 blob_done 0 Transferred
                 image_done 0
                 blob_done 1 Mounted
                 image_done 1
                 job_finished Succeeded rounds 2",
            ),
            // The destination repositories' tag lists show them unknown: no HEADs.
            counts: vec![
                ("GET http://src.test/v2/_catalog".to_owned(), 4),
                ("GET http://src.test/v2/app/tags/list".to_owned(), 1),
                ("GET http://dst.test/v2/mirror/app/tags/list".to_owned(), 1),
            ],
            logged: 22,
            report: vec![
                ("dst.test/mirror/app:v1", ImageOutcome::Copied, 2),
                ("dst.test/mirror/tool:v1", ImageOutcome::Copied, 2),
            ],
            summary: (13, 3, 2, 2),
        },
    ];
    for case in cases {
        let (sim, machine) = run(case.images, case.faults, case.rounds);
        let events: Vec<String> = sim.events.iter().filter_map(|(_, e)| line(e)).collect();
        assert_eq!(events, case.events, "{}", case.name);
        for (prefix, n) in &case.counts {
            assert_eq!(count(&sim.network.log, prefix), *n, "{}: {prefix}", case.name);
        }
        assert_eq!(sim.network.log.len(), case.logged, "{}: {:#?}", case.name, sim.network.log);
        let report = machine.report();
        let images: Vec<(&str, ImageOutcome, u32)> =
            report.images.iter().map(|i| (i.destination.as_str(), i.outcome, i.round)).collect();
        assert_eq!(images, case.report, "{}", case.name);
        let s = &report.summary;
        assert_eq!((s.requests, s.transfers, s.retries, s.rounds), case.summary, "{}", case.name);
        // Only what the job ended with counts as failed: a mended failure is forgotten.
        let failed = case.report.iter().filter(|(_, o, _)| *o == ImageOutcome::Failed).count();
        assert_eq!((s.failed, s.failures.len()), (failed, failed), "{}", case.name);
        let status = if failed == 0 { JobStatus::Succeeded } else { JobStatus::Failed };
        assert_eq!(report.status, status, "{}", case.name);
        let copied = case.report.iter().filter(|(_, o, _)| *o == ImageOutcome::Copied).count();
        assert_eq!((s.copied, s.images), (copied, case.report.len()), "{}", case.name);
    }
}

/// distribution can deny an index's child (`MANIFEST_BLOB_UNKNOWN`) while another tag's
/// push of that child is under way: for an index that is a passing state, mended by the
/// next round. For an image manifest, whose blobs ferry itself has just put there, it
/// stays a refusal.
#[test]
fn an_unknown_child_is_retried_in_the_next_round_an_unknown_blob_is_not() {
    let cases =
        [("index", "multi", ImageOutcome::Copied, 2), ("image manifest", "app", ImageOutcome::Failed, 1)];
    for (name, repository, outcome, rounds) in cases {
        let mut net = network();
        ImageBuilder::new(net.registry(SRC), "multi").index(
            "v1",
            &["linux/amd64", "linux/arm64"],
            &[b"base"],
        );
        net.faults = vec![Fault {
            method: Some(Method::PUT),
            path_contains: format!("dst.test/v2/{repository}/manifests/v1"),
            times: 1,
            answer: FaultAnswer::Error { status: 400, code: ErrorCode::ManifestBlobUnknown },
        }];
        let images = format!(r#"{{"src.test/{repository}:v1": "dst.test/{repository}"}}"#);
        let rules = parse_images_file("images.json", &images, &|_| None).expect("valid images file");
        let mut endpoints = EndpointMap::default();
        endpoints.insecure.extend([SRC.to_owned(), DST.to_owned()]);
        let job = Job { plan: Plan::Rules(rules), credentials: Default::default(), endpoints };
        let options = SyncOptions { rounds: 2, referrers: ReferrerFilter::None, ..SyncOptions::default() };
        let mut sim = Simulation::new(net);
        let mut machine = SyncMachine::new(job, options, Instant::ZERO, UnixTime(1_700_000_000));
        sim.run(&mut machine).expect("the machine finishes");
        let report = machine.report();
        let got: Vec<_> = report.images.iter().map(|i| i.outcome).collect();
        assert_eq!(got, [outcome], "{name}");
        assert_eq!(report.summary.rounds, rounds, "{name}");
        let pushed = sim.network.registry(DST).tag(repository, "v1").is_some();
        assert_eq!(pushed, outcome == ImageOutcome::Copied, "{name}");
    }
}
