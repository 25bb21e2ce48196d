//! Whole-job simulations of auth, listings, dry runs, forced copies and broken transfers,
//! and the async driver on the virtual clock.

use ferry_core::api::EndpointMap;
use ferry_core::auth::{Credential, CredentialStore};
use ferry_core::config::parse_images_file;
use ferry_core::copy::{Job, Plan, SyncMachine, SyncOptions};
use ferry_core::digest::Digest;
use ferry_core::driver;
use ferry_core::error::ErrorKind;
use ferry_core::machine::{Completion, Machine, Misuse};
use ferry_core::progress::{Event, ImageOutcome, JobStatus, RequestClass};
use ferry_core::referrers::ReferrerFilter;
use ferry_core::testkit::{
    FakeAuth, Fault, FaultAnswer, ImageBuilder, Network, SimClock, SimTransport, Simulation,
};
use ferry_core::time::{Instant, UnixTime};
use ferry_core::transport::ActionId;
use http::Method;

const SRC: &str = "src.test";
const DST: &str = "dst.test";

fn job(images: &str, credentials: &[(&str, &str, &str)]) -> Job {
    let rules = parse_images_file("images.json", images, &|_| None).expect("valid images file");
    let mut endpoints = EndpointMap::default();
    endpoints.insecure.extend([SRC.to_owned(), DST.to_owned()]);
    let credentials = CredentialStore::new(credentials.iter().map(|(k, u, p)| (*k, Credential::new(*u, *p))))
        .expect("valid keys");
    Job { plan: Plan::Rules(rules), credentials, endpoints }
}

fn run_job(network: Network, job: Job, options: SyncOptions) -> (Simulation, SyncMachine) {
    let mut sim = Simulation::new(network);
    // Images alone: these exact counts leave referrers out (tests/referrers.rs counts them).
    let options = SyncOptions { referrers: ReferrerFilter::None, ..options };
    let mut machine = SyncMachine::new(job, options, Instant::ZERO, UnixTime(1_700_000_000));
    sim.run(&mut machine).expect("the machine finishes");
    (sim, machine)
}

fn seeded() -> Network {
    let mut net = Network::new();
    let src = net.add(SRC);
    ImageBuilder::new(src, "app").image(Some("v1"), &[b"a"], "linux/amd64");
    ImageBuilder::new(src, "app").image(Some("v2"), &[b"a", b"b"], "linux/amd64");
    ImageBuilder::new(src, "app").image(Some("v3"), &[b"c"], "linux/amd64");
    net.add(DST);
    net
}

#[test]
fn bearer_tokens_are_fetched_once_per_scope_and_reused() {
    // The destination's tag list is the first request to it: it meets the challenge, and
    // every later one carries the token fetched for it (push,pull, as the copies need),
    // however many images run at once.
    for (proc, challenged) in [(1, 1), (5, 1)] {
        let mut net = seeded();
        net.registry(DST).auth = Some(FakeAuth::Bearer { username: "me".into(), password: "secret".into() });
        let job = job(r#"{"src.test/app": "dst.test/app"}"#, &[(DST, "me", "secret")]);
        let (sim, machine) = run_job(net, job, SyncOptions { proc, ..SyncOptions::default() });
        let report = machine.report();
        assert_eq!(report.summary.copied, 3, "{:?}", report.summary.failures);
        assert_eq!(
            sim.network.count(&Method::GET, DST, "/token"),
            1,
            "proc {proc}: one token for push,pull on dst/app"
        );
        let unauthorised = sim.network.log.iter().filter(|r| r.status == 401).count();
        assert_eq!(unauthorised, challenged, "proc {proc}");
        // The summary's tally counts the token request under its own class, and the 401s.
        let tally = |class: Option<RequestClass>, status: u16| -> u64 {
            let by = &report.summary.requests_by;
            by.iter()
                .filter(|c| c.status == Some(status) && class.is_none_or(|class| c.class == class))
                .map(|c| c.count)
                .sum()
        };
        assert_eq!(tally(Some(RequestClass::Token), 200), 1, "proc {proc}");
        assert_eq!(tally(None, 401), challenged as u64, "proc {proc}");
        let total: u64 = report.summary.requests_by.iter().map(|c| c.count).sum();
        assert_eq!(total, report.summary.requests, "proc {proc}: every small request once");
    }
}

#[test]
fn a_401_to_a_call_sent_without_a_token_keeps_the_tokens_fetched_since() {
    // Pulls need no token, so every first upload goes out bare and comes back 401, each
    // when its bytes are through: the small blob's first, the big ones' after a token for
    // its repository was fetched. Those late 401s must not throw that token away.
    let mut net = Network::new();
    let src = net.add(SRC);
    let (big, bigger) = (vec![7u8; 10 << 20], vec![8u8; 20 << 20]);
    ImageBuilder::new(src, "app").image(Some("v1"), &[b"small", &big], "linux/amd64");
    ImageBuilder::new(net.registry(SRC), "tool").image(Some("v1"), &[&bigger], "linux/arm64");
    let dst = net.add(DST);
    dst.auth = Some(FakeAuth::Bearer { username: "me".into(), password: "secret".into() });
    dst.anonymous_pull = true;
    let job = job(
        r#"{"src.test/app:v1": "dst.test/app", "src.test/tool:v1": "dst.test/tool"}"#,
        &[(DST, "me", "secret")],
    );
    let (sim, machine) = run_job(net, job, SyncOptions::default());
    let report = machine.report();
    assert_eq!(report.summary.copied, 2, "{:?}", report.summary.failures);
    let tokens: Vec<&str> =
        sim.network.log.iter().filter(|r| r.url.contains("/token")).map(|r| r.url.as_str()).collect();
    assert_eq!(tokens.len(), 2, "one token per repository: {tokens:#?}");
}

#[test]
fn a_wrong_password_fails_clearly_without_a_retry_storm() {
    let mut net = seeded();
    net.registry(DST).auth = Some(FakeAuth::Bearer { username: "me".into(), password: "secret".into() });
    let job = job(r#"{"src.test/app:v1": "dst.test/app"}"#, &[(DST, "me", "wrong")]);
    let (sim, machine) = run_job(net, job, SyncOptions::default());
    let report = machine.report();
    assert_eq!(report.summary.failed, 1);
    let reason = &report.summary.failures[0].reason;
    assert!(reason.contains("dst.test") && reason.contains("username/password"), "{reason}");
    assert!(!reason.contains("wrong"), "the password never appears: {reason}");
    assert_eq!(sim.network.count(&Method::GET, DST, "/token"), 1, "one token attempt, no storm");
    assert!(sim.events_where(|e| matches!(e, Event::RetryScheduled { .. })).is_empty());
}

#[test]
fn basic_auth_is_sent_after_the_first_challenge() {
    let mut net = seeded();
    net.registry(SRC).auth = Some(FakeAuth::Basic { username: "u".into(), password: "p".into() });
    let job = job(r#"{"src.test/app:v1": "dst.test/app"}"#, &[(SRC, "u", "p")]);
    let (sim, machine) = run_job(net, job, SyncOptions::default());
    assert_eq!(machine.report().summary.copied, 1);
    assert_eq!(sim.network.log.iter().filter(|r| r.status == 401).count(), 1);
}

#[test]
fn a_registry_that_lets_anyone_pull_is_first_challenged_by_an_upload() {
    // Every HEAD at the destination passes without credentials, so the first 401 comes
    // from the transfer's upload: its challenge is learned there, for the destination.
    let basic = FakeAuth::Basic { username: "me".into(), password: "secret".into() };
    let bearer = FakeAuth::Bearer { username: "me".into(), password: "secret".into() };
    for (auth, tokens) in [(basic, 0), (bearer, 1)] {
        let mut net = seeded();
        net.registry(DST).auth = Some(auth.clone());
        net.registry(DST).anonymous_pull = true;
        let job = job(r#"{"src.test/app:v1": "dst.test/app"}"#, &[(DST, "me", "secret")]);
        let (mut sim, machine) = run_job(net, job, SyncOptions::default());
        let report = machine.report();
        assert_eq!(report.summary.copied, 1, "{auth:?}: {:?}", report.summary.failures);
        assert_eq!(sim.network.count(&Method::GET, DST, "/token"), tokens, "{auth:?}");
        assert!(sim.network.registry(DST).has_blob("app", &Digest::sha256(b"a")), "{auth:?}");
    }
}

#[test]
fn tag_lists_follow_link_pagination_and_filters_apply() {
    let mut net = seeded();
    net.registry(SRC).page_size = Some(1);
    let (sim, machine) =
        run_job(net, job(r#"{"src.test/app:/^v[12]$/": "dst.test/app"}"#, &[]), SyncOptions::default());
    assert_eq!(sim.network.count(&Method::GET, SRC, "/tags/list"), 3, "three pages of one tag");
    let copied: Vec<String> = machine.report().images.iter().map(|i| i.destination.clone()).collect();
    assert_eq!(copied, vec!["dst.test/app:v1", "dst.test/app:v2"]);
}

#[test]
fn a_whole_registry_rule_lists_the_catalog() {
    let mut net = seeded();
    ImageBuilder::new(net.registry(SRC), "team/tool").image(Some("1.0"), &[b"t"], "linux/amd64");
    net.registry(SRC).page_size = Some(1);
    let (sim, machine) = run_job(net, job(r#"{"src.test": "dst.test/mirror"}"#, &[]), SyncOptions::default());
    assert_eq!(sim.network.count(&Method::GET, SRC, "/v2/_catalog"), 2);
    let report = machine.report();
    assert_eq!(report.summary.copied, 4);
    let dst = sim.network.registries.get(DST).unwrap();
    assert!(dst.tag("mirror/team/tool", "1.0").is_some());
    assert!(dst.tag("mirror/app", "v3").is_some());
}

#[test]
fn a_catalog_name_that_cannot_form_a_url_fails_alone_and_the_others_sync() {
    let mut net = seeded();
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;
    for name in ["Bad Name", "x?y"] {
        net.registry(SRC).put_manifest(
            name,
            Some("1"),
            "application/vnd.oci.image.manifest.v1+json",
            manifest,
        );
    }
    let (sim, machine) = run_job(net, job(r#"{"src.test": "dst.test/mirror"}"#, &[]), SyncOptions::default());
    let report = machine.report();
    assert_eq!(report.summary.copied, 3, "app's three tags sync");
    let failed: Vec<(&str, Option<ErrorKind>, &str)> = report
        .images
        .iter()
        .filter(|i| i.outcome == ImageOutcome::Failed)
        .map(|i| (i.source.as_str(), i.kind, i.reason.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    for (name, (source, kind, reason)) in ["Bad Name", "x?y"].iter().zip(&failed) {
        assert_eq!(*source, format!("src.test/{name}"));
        assert_eq!(*kind, Some(ErrorKind::InvalidName));
        assert!(reason.contains(&format!("repository {name:?} cannot form a URL")), "{reason}");
    }
    // Nothing was sent for the bad names: no `GET /` and no request with their paths.
    assert!(sim.network.log.iter().all(|r| r.url.contains("/v2/")), "every request has a /v2/ path");
    assert_eq!(sim.network.log.iter().filter(|r| r.url.contains("Bad") || r.url.contains("x?y")).count(), 0);
}

#[test]
fn failures_carry_their_kind_in_events_and_the_report() {
    let (sim, machine) =
        run_job(seeded(), job(r#"{"src.test/app:v9": "dst.test/app"}"#, &[]), SyncOptions::default());
    let failed = sim.events_where(|e| matches!(e, Event::ImageFailed { .. }));
    let Event::ImageFailed { kind, retryable, reason, .. } = failed[0] else { unreachable!() };
    assert_eq!((*kind, *retryable), (ErrorKind::NotFound, false));
    assert_eq!(reason, "src.test/app:v9 does not exist at the source");
    let line = failed[0].to_ndjson();
    assert!(line.contains(r#""kind":"not_found""#), "{line}");
    let report = machine.report();
    assert_eq!(report.images[0].kind, Some(ErrorKind::NotFound));
    assert_eq!(report.summary.failures[0].kind, ErrorKind::NotFound);
}

#[test]
fn a_missing_repository_fails_its_rule_with_the_reason() {
    let (sim, machine) =
        run_job(seeded(), job(r#"{"src.test/nope": "dst.test/nope"}"#, &[]), SyncOptions::default());
    let report = machine.report();
    assert_eq!(report.status, JobStatus::Failed);
    assert_eq!(report.images[0].outcome, ImageOutcome::Failed);
    let reason = report.images[0].reason.clone().unwrap();
    assert!(reason.contains("src.test/nope") && reason.contains("404"), "{reason}");
    assert_eq!(report.images[0].kind, Some(ErrorKind::NotFound));
    assert_eq!(sim.events_where(|e| matches!(e, Event::PlanFailed { .. })).len(), 1);
}

#[test]
fn a_dry_run_writes_nothing_and_counts_what_would_move() {
    let net = seeded();
    let options = SyncOptions { dry_run: true, ..SyncOptions::default() };
    let (sim, machine) = run_job(net, job(r#"{"src.test/app": "dst.test/app"}"#, &[]), options);
    let writes =
        sim.network.log.iter().filter(|r| r.method == Method::PUT || r.method == Method::POST).count();
    assert_eq!(writes, 0);
    let report = machine.report();
    assert!(report.images.iter().all(|i| i.outcome == ImageOutcome::WouldCopy));
    // Layers a, b, c and the one config blob the three images share would move once each.
    let would_move: Vec<u64> = sim
        .events_where(|e| {
            matches!(e, Event::BlobDone { outcome: ferry_core::progress::BlobOutcome::Transferred, .. })
        })
        .into_iter()
        .map(|e| match e {
            Event::BlobDone { size, .. } => *size,
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(would_move.len(), 4);
    assert_eq!(report.summary.bytes_to_copy, would_move.iter().sum::<u64>());
    assert_eq!(report.summary.bytes_transferred, 0);
}

#[test]
fn a_second_run_moves_nothing_and_force_repushes_manifests_only() {
    let (sim, first) =
        run_job(seeded(), job(r#"{"src.test/app": "dst.test/app"}"#, &[]), SyncOptions::default());
    assert_eq!(first.report().summary.copied, 3);
    let network = sim.network;

    let mut again = Simulation::new(network);
    // With referrers off (tests/referrers.rs counts a sync with them on).
    let mut machine = SyncMachine::new(
        job(r#"{"src.test/app": "dst.test/app"}"#, &[]),
        SyncOptions { referrers: ReferrerFilter::None, ..SyncOptions::default() },
        Instant::ZERO,
        UnixTime(0),
    );
    let before = again.network.log.len();
    again.run(&mut machine).unwrap();
    let report = machine.report();
    assert_eq!(report.summary.skipped, 3);
    // One tags/list per side, then one HEAD per tag on each side: the destination lists
    // every tag, so each is checked.
    assert_eq!(again.network.log.len() - before, 2 + 3 * 2);

    let mut forced = SyncMachine::new(
        job(r#"{"src.test/app": "dst.test/app"}"#, &[]),
        SyncOptions { force: true, referrers: ReferrerFilter::None, ..SyncOptions::default() },
        Instant::ZERO,
        UnixTime(0),
    );
    let before = again.network.log.len();
    again.run(&mut forced).unwrap();
    assert_eq!(forced.report().summary.copied, 3);
    let new = &again.network.log[before..];
    assert_eq!(new.iter().filter(|r| r.method == Method::PUT && r.url.contains("/manifests/")).count(), 3);
    assert_eq!(
        new.iter().filter(|r| r.method == Method::GET && r.url.contains("/blobs/")).count(),
        0,
        "blobs stay"
    );
}

#[test]
fn a_transfer_cut_mid_body_is_retried_with_a_fresh_upload() {
    let mut net = seeded();
    let layer = Digest::sha256(b"c");
    net.faults.push(Fault {
        method: Some(Method::GET),
        path_contains: format!("src.test/v2/app/blobs/{layer}"),
        times: 1,
        answer: FaultAnswer::Disconnect,
    });
    let (sim, machine) =
        run_job(net, job(r#"{"src.test/app:v3": "dst.test/app"}"#, &[]), SyncOptions::default());
    assert_eq!(machine.report().summary.copied, 1);
    assert_eq!(machine.report().summary.retries, 1);
    assert!(sim.network.registries.get(DST).unwrap().has_blob("app", &layer));
}

#[test]
fn transient_failures_that_persist_give_up_and_say_a_retry_may_help() {
    let mut net = seeded();
    net.faults.push(Fault::status(Method::HEAD, "src.test/v2/app/manifests/v1", 10, 502));
    let (sim, machine) =
        run_job(net, job(r#"{"src.test/app:v1": "dst.test/app"}"#, &[]), SyncOptions::default());
    let report = machine.report();
    let failure = &report.summary.failures[0];
    assert!(failure.retryable);
    assert!(failure.reason.contains("gave up after 2 retries"), "{}", failure.reason);
    // Three tries in each of three rounds: the main pass and the two extra ones.
    assert_eq!(sim.network.count(&Method::HEAD, SRC, "/v2/app/manifests/v1"), 9);
    assert_eq!((report.summary.rounds, report.summary.failed, report.images[0].round), (3, 1, 3));
}

#[test]
fn the_last_event_is_always_job_finished_and_ndjson_round_trips() {
    let (sim, _) = run_job(seeded(), job(r#"{"src.test/app": "dst.test/app"}"#, &[]), SyncOptions::default());
    let lines: Vec<String> = sim.events.iter().map(|(_, e)| e.to_ndjson()).collect();
    assert!(lines.iter().all(|l| l.ends_with('\n') && l.matches('\n').count() == 1));
    let last: Event = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert!(matches!(last, Event::JobFinished { status: JobStatus::Succeeded, .. }));
    assert_eq!(lines.iter().filter(|l| l.contains("\"job_finished\"")).count(), 1);
}

#[test]
fn feeding_an_unknown_action_is_misuse_not_a_hang() {
    let mut machine = SyncMachine::new(
        job(r#"{"src.test/app:v1": "dst.test/app"}"#, &[]),
        SyncOptions::default(),
        Instant::ZERO,
        UnixTime(0),
    );
    let response = http::Response::new(Vec::new());
    assert_eq!(
        machine.handle(ActionId(999), Completion::Response(response), Instant::ZERO),
        Err(Misuse::UnknownAction(ActionId(999)))
    );
}

#[test]
fn the_async_driver_runs_a_job_over_a_transport() {
    let clock = SimClock::default();
    let transport = SimTransport { network: std::sync::Mutex::new(seeded()), clock: &clock };
    // With referrers off (tests/referrers.rs counts a sync with them on).
    let mut machine = SyncMachine::new(
        job(r#"{"src.test/app": "dst.test/app"}"#, &[]),
        SyncOptions { referrers: ReferrerFilter::None, ..SyncOptions::default() },
        Instant::ZERO,
        UnixTime(0),
    );
    let mut events = Vec::new();
    futures_executor::block_on(driver::run(&mut machine, &transport, &clock, |e| events.push(e))).unwrap();
    assert_eq!(machine.report().summary.copied, 3);
    assert!(matches!(events.last(), Some(Event::JobFinished { status: JobStatus::Succeeded, .. })));
    let network = transport.network.into_inner().unwrap();
    assert!(network.registries.get(DST).unwrap().tag("app", "v2").is_some());
}
