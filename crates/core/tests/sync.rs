//! Whole-job simulations on the virtual clock: exact request counts, schedules and orders.

use std::time::Duration;

use ferry_core::api::EndpointMap;
use ferry_core::config::parse_images_file;
use ferry_core::copy::{Job, Plan, SyncMachine, SyncOptions};
use ferry_core::digest::Digest;
use ferry_core::progress::{BlobOutcome, Event, ImageOutcome, JobStatus};
use ferry_core::referrers::ReferrerFilter;
use ferry_core::retry::{RetryPolicy, Rng};
use ferry_core::testkit::{Fault, FaultAnswer, ImageBuilder, Network, Simulation};
use ferry_core::time::{Instant, UnixTime};
use http::Method;

const SRC: &str = "src.test";
const DST: &str = "dst.test";
/// Sun, 06 Nov 1994 08:49:37 GMT, the wall clock when the job starts.
const WALL: UnixTime = UnixTime(784_111_777);

fn job(images: &str) -> Job {
    let rules = parse_images_file("images.json", images, &|_| None).expect("valid images file");
    let mut endpoints = EndpointMap::default();
    endpoints.insecure.extend([SRC.to_owned(), DST.to_owned()]);
    Job { plan: Plan::Rules(rules), credentials: Default::default(), endpoints }
}

fn run(network: Network, images: &str, options: SyncOptions) -> (Simulation, SyncMachine) {
    let mut sim = Simulation::new(network);
    // Images alone: these exact counts leave referrers out (tests/referrers.rs counts them).
    let options = SyncOptions { referrers: ReferrerFilter::None, ..options };
    let mut machine = SyncMachine::new(job(images), options, Instant::ZERO, WALL);
    sim.run(&mut machine).expect("the machine finishes");
    (sim, machine)
}

fn last_is_job_finished(sim: &Simulation) -> JobStatus {
    match sim.events.last() {
        Some((_, Event::JobFinished { status, .. })) => *status,
        other => panic!("last event is not job_finished: {other:?}"),
    }
}

fn network() -> Network {
    let mut net = Network::new();
    net.add(SRC);
    net.add(DST);
    net
}

#[test]
fn an_in_sync_tag_costs_exactly_two_heads() {
    let mut net = network();
    let digest = {
        let src = net.registry(SRC);
        ImageBuilder::new(src, "app").image(Some("v1"), &[b"layer"], "linux/amd64").0
    };
    // The destination holds the same manifest under the same tag.
    let (bytes, media_type) = {
        let src = net.registry(SRC);
        (src.manifest("app", &digest).unwrap().to_vec(), ferry_core::manifest::media_type::OCI_MANIFEST)
    };
    net.registry(DST).put_manifest("app", Some("v1"), media_type, &bytes);

    let (sim, machine) = run(net, r#"{"src.test/app:v1": "dst.test/app"}"#, SyncOptions::default());
    let log: Vec<(Method, String)> =
        sim.network.log.iter().map(|r| (r.method.clone(), r.url.clone())).collect();
    assert_eq!(
        log,
        vec![
            (Method::HEAD, "http://src.test/v2/app/manifests/v1".to_owned()),
            (Method::HEAD, "http://dst.test/v2/app/manifests/v1".to_owned()),
        ]
    );
    let report = machine.report();
    assert_eq!(report.summary.skipped, 1);
    assert_eq!(report.summary.requests, 2);
    assert_eq!(report.images[0].outcome, ImageOutcome::Skipped);
    assert_eq!(last_is_job_finished(&sim), JobStatus::Succeeded);
}

#[test]
fn a_shared_blob_moves_once_and_is_mounted_elsewhere() {
    let mut net = network();
    let base: &[u8] = b"shared base layer";
    for repo in ["one", "two", "three"] {
        let own = format!("own layer of {repo}");
        ImageBuilder::new(net.registry(SRC), repo).image(Some("v1"), &[base, own.as_bytes()], "linux/amd64");
    }
    let images = r#"{"src.test/one:v1": "dst.test/one", "src.test/two:v1": "dst.test/two", "src.test/three:v1": "dst.test/three"}"#;
    let (sim, machine) = run(net, images, SyncOptions::default());
    let base_digest = Digest::sha256(base);
    let moved = sim
        .network
        .log
        .iter()
        .filter(|r| r.method == Method::GET && r.url.ends_with(&base_digest.to_string()))
        .count();
    assert_eq!(moved, 1, "the base layer crosses the network once");
    let mounts = sim.network.count(&Method::POST, DST, &format!("mount={base_digest}"));
    assert_eq!(mounts, 2, "the other two repositories mount it");
    let outcomes: Vec<BlobOutcome> = sim
        .events_where(|e| matches!(e, Event::BlobDone { digest, .. } if *digest == base_digest))
        .into_iter()
        .map(|e| match e {
            Event::BlobDone { outcome, .. } => *outcome,
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(outcomes, vec![BlobOutcome::Transferred, BlobOutcome::Mounted, BlobOutcome::Mounted]);
    let dst = sim.network.registries.get(DST).unwrap();
    for repo in ["one", "two", "three"] {
        assert!(dst.has_blob(repo, &base_digest), "{repo} has the base layer");
        assert!(dst.tag(repo, "v1").is_some(), "{repo}:v1 was pushed");
    }
    assert_eq!(machine.report().summary.copied, 3);
}

#[test]
fn index_children_are_pushed_before_the_index() {
    let mut net = network();
    let index = ImageBuilder::new(net.registry(SRC), "multi").index(
        "v1",
        &["linux/amd64", "linux/arm64/v8"],
        &[b"base"],
    );
    let (sim, machine) = run(net, r#"{"src.test/multi:v1": "dst.test/multi"}"#, SyncOptions::default());
    let puts: Vec<&str> = sim
        .network
        .log
        .iter()
        .filter(|r| r.method == Method::PUT && r.url.contains("/manifests/"))
        .map(|r| r.url.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(puts.len(), 3);
    assert!(
        puts[0].starts_with("sha256:") && puts[1].starts_with("sha256:"),
        "children first, by digest: {puts:?}"
    );
    assert_eq!(puts[2], "v1", "the index last, by tag");
    let dst = sim.network.registries.get(DST).unwrap();
    assert_eq!(dst.tag("multi", "v1"), Some(&index), "the index keeps its digest");
    let src_bytes = sim.network.registries.get(SRC).unwrap().manifest("multi", &index).unwrap();
    assert_eq!(dst.manifest("multi", &index).unwrap(), src_bytes, "byte-exact");
    assert_eq!(machine.report().summary.copied, 1);
}

#[test]
fn a_platform_filter_rewrites_the_index_and_says_so() {
    let mut net = network();
    let index = ImageBuilder::new(net.registry(SRC), "multi").index(
        "v1",
        &["linux/amd64", "linux/arm64/v8"],
        &[b"base"],
    );
    let rules = r#"{"src.test/multi:v1": "dst.test/multi"}"#;
    let options = SyncOptions {
        platforms: ferry_core::manifest::PlatformFilter::new(&[], &["amd64".to_owned()], &[]).unwrap(),
        ..SyncOptions::default()
    };
    let (sim, machine) = run(net, rules, options);
    let report = machine.report();
    let image = &report.images[0];
    assert_eq!(image.outcome, ImageOutcome::Copied);
    assert_eq!(image.rewritten_from.as_ref(), Some(&index));
    let pushed = image.digest.clone().unwrap();
    assert_ne!(pushed, index);
    let dst = sim.network.registries.get(DST).unwrap();
    assert_eq!(dst.tag("multi", "v1"), Some(&pushed));
    assert_eq!(dst.manifest_count(), 2, "the rewritten index and one child");
    assert!(sim.events_where(|e| matches!(e, Event::ImageDone { rewritten_from: Some(_), .. })).len() == 1);
}

#[test]
fn a_503_then_success_follows_the_seeded_backoff_exactly() {
    for seed in [1u64, 42, 9_999] {
        let mut net = network();
        ImageBuilder::new(net.registry(SRC), "app").image(Some("v1"), &[b"layer"], "linux/amd64");
        net.faults.push(Fault::status(Method::HEAD, "src.test/v2/app/manifests/v1", 2, 503));
        let options = SyncOptions { seed, ..SyncOptions::default() };
        let policy = RetryPolicy::default();
        let (sim, machine) = run(net, r#"{"src.test/app:v1": "dst.test/app"}"#, options);

        let mut rng = Rng::new(seed);
        let first = policy.backoff(0, &mut rng);
        let second = policy.backoff(1, &mut rng);
        let heads: Vec<Instant> = sim
            .network
            .log
            .iter()
            .filter(|r| r.method == Method::HEAD && r.url == "http://src.test/v2/app/manifests/v1")
            .map(|r| r.at)
            .collect();
        let latency = Duration::from_millis(10);
        assert_eq!(
            heads,
            vec![
                Instant::ZERO,
                Instant::ZERO + latency + first,
                Instant::ZERO + latency * 2 + first + second
            ],
            "seed {seed}"
        );
        let delays: Vec<u64> = sim
            .events_where(|e| matches!(e, Event::RetryScheduled { .. }))
            .into_iter()
            .map(|e| match e {
                Event::RetryScheduled { delay_ms, .. } => *delay_ms,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(delays, vec![first.as_millis() as u64, second.as_millis() as u64]);
        assert_eq!(machine.report().summary.copied, 1);
        assert_eq!(machine.report().summary.retries, 2);
    }
}

#[test]
fn retry_after_is_honoured_in_seconds_and_as_a_date() {
    let cases = [
        ("7".to_owned(), Duration::from_secs(7)),
        // 30 seconds after the job's wall-clock start.
        ("Sun, 06 Nov 1994 08:50:07 GMT".to_owned(), Duration::from_secs(30)),
    ];
    for (value, wait) in cases {
        let mut net = network();
        ImageBuilder::new(net.registry(SRC), "app").image(Some("v1"), &[b"layer"], "linux/amd64");
        net.faults.push(Fault {
            method: Some(Method::HEAD),
            path_contains: "src.test/v2/app/manifests/v1".into(),
            times: 1,
            answer: FaultAnswer::Status { status: 429, retry_after: Some(value.clone()) },
        });
        let (sim, machine) = run(net, r#"{"src.test/app:v1": "dst.test/app"}"#, SyncOptions::default());
        let heads: Vec<Instant> = sim
            .network
            .log
            .iter()
            .filter(|r| r.method == Method::HEAD && r.url.starts_with("http://src.test"))
            .map(|r| r.at)
            .collect();
        assert_eq!(heads, vec![Instant::ZERO, Instant::ZERO + Duration::from_millis(10) + wait], "{value}");
        assert_eq!(machine.report().summary.copied, 1);
    }
}

#[test]
fn a_404_is_not_retried() {
    let net = network();
    let (sim, machine) = run(net, r#"{"src.test/ghost:v1": "dst.test/ghost"}"#, SyncOptions::default());
    assert_eq!(sim.network.count(&Method::HEAD, SRC, "/v2/ghost/manifests/v1"), 1);
    assert!(sim.events_where(|e| matches!(e, Event::RetryScheduled { .. })).is_empty());
    let report = machine.report();
    assert_eq!(report.summary.failed, 1);
    let reason = report.summary.failures[0].reason.clone();
    assert!(reason.contains("src.test/ghost:v1") && reason.contains("does not exist"), "{reason}");
    assert!(!report.summary.failures[0].retryable);
    assert_eq!(last_is_job_finished(&sim), JobStatus::Failed);
}

#[test]
fn a_lying_source_fails_its_image_only_and_never_pushes_its_manifest() {
    let mut net = network();
    let bad: &[u8] = b"the real layer";
    ImageBuilder::new(net.registry(SRC), "liar").image(Some("v1"), &[bad], "linux/amd64");
    ImageBuilder::new(net.registry(SRC), "honest").image(Some("v1"), &[b"fine layer"], "linux/amd64");
    net.registry(SRC).corrupt_blob(&Digest::sha256(bad), b"the fake layer");
    let images = r#"{"src.test/liar:v1": "dst.test/liar", "src.test/honest:v1": "dst.test/honest"}"#;
    let (sim, machine) = run(net, images, SyncOptions::default());
    let report = machine.report();
    let liar = report.images.iter().find(|i| i.source.contains("liar")).unwrap();
    let honest = report.images.iter().find(|i| i.source.contains("honest")).unwrap();
    assert_eq!(liar.outcome, ImageOutcome::Failed);
    let reason = liar.reason.clone().unwrap();
    assert!(
        reason.contains("does not match its digest") && reason.contains(&Digest::sha256(bad).to_string()),
        "{reason}"
    );
    assert_eq!(honest.outcome, ImageOutcome::Copied);
    let dst = sim.network.registries.get(DST).unwrap();
    assert_eq!(dst.tag("liar", "v1"), None, "the liar's manifest never reached the destination");
    assert!(!dst.has_blob("liar", &Digest::sha256(bad)));
    assert_eq!(sim.network.count(&Method::PUT, DST, "/v2/liar/manifests/"), 0);
    assert!(dst.tag("honest", "v1").is_some());
    assert_eq!(last_is_job_finished(&sim), JobStatus::Failed);
}

#[test]
fn concurrency_never_exceeds_proc_or_the_transfer_limit() {
    for (proc, max_transfers) in [(1, 1), (2, 3), (3, 2)] {
        let mut net = network();
        let mut images = Vec::new();
        for n in 0..8 {
            let repo = format!("r{n}");
            let layers: Vec<Vec<u8>> = (0..3).map(|l| format!("{repo} layer {l}").into_bytes()).collect();
            let layers: Vec<&[u8]> = layers.iter().map(Vec::as_slice).collect();
            ImageBuilder::new(net.registry(SRC), &repo).image(Some("v1"), &layers, "linux/amd64");
            images.push(format!(r#""src.test/{repo}:v1": "dst.test/{repo}""#));
        }
        let images = format!("{{{}}}", images.join(","));
        let options = SyncOptions { proc, max_transfers, ..SyncOptions::default() };
        let (sim, machine) = run(net, &images, options);
        assert_eq!(sim.max_active_images, proc, "proc {proc}");
        assert_eq!(sim.max_transfers, max_transfers.min(proc * 4), "transfers with proc {proc}");
        assert_eq!(machine.report().summary.copied, 8);
    }
}
