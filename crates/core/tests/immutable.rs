//! Immutable tags on the virtual clock: a rule that lists tags, with an `immutable`
//! pattern, also lists each destination repository's tags once, and a matching tag the
//! destination already lists is skipped without a request on either side. Request counts
//! are exact.

use ferry_core::api::EndpointMap;
use ferry_core::config::{parse_images_file, TagPattern};
use ferry_core::copy::{Job, Plan, SyncMachine, SyncOptions};
use ferry_core::digest::Digest;
use ferry_core::progress::{Event, ImageOutcome};
use ferry_core::referrers::ReferrerFilter;
use ferry_core::testkit::{ImageBuilder, Network, Simulation};
use ferry_core::time::{Instant, UnixTime};

const SRC: &str = "src.test";
const DST: &str = "dst.test";

fn job(images: &str, immutable: Option<&str>) -> Job {
    let mut rules = parse_images_file("images.json", images, &|_| None).expect("valid images file");
    for rule in &mut rules {
        rule.immutable = immutable.map(|p| TagPattern::new(p).expect("a valid pattern"));
    }
    let mut endpoints = EndpointMap::default();
    endpoints.insecure.extend([SRC.to_owned(), DST.to_owned()]);
    Job { plan: Plan::Rules(rules), credentials: Default::default(), endpoints }
}

/// Images alone: these exact counts leave referrers out (tests/referrers.rs counts them).
fn images_alone() -> SyncOptions {
    SyncOptions { referrers: ReferrerFilter::None, ..SyncOptions::default() }
}

fn run(network: Network, images: &str, immutable: Option<&str>) -> (Simulation, SyncMachine) {
    let mut sim = Simulation::new(network);
    let mut machine = SyncMachine::new(job(images, immutable), images_alone(), Instant::ZERO, UnixTime(0));
    sim.run(&mut machine).expect("the machine finishes");
    (sim, machine)
}

/// `app:v1`, `v2` and `v3` at the source, already synced to the destination.
fn synced() -> Network {
    let mut net = Network::new();
    let src = net.add(SRC);
    for (tag, layer) in [("v1", b"one"), ("v2", b"two"), ("v3", b"thr")] {
        ImageBuilder::new(src, "app").image(Some(tag), &[layer], "linux/amd64");
    }
    net.add(DST);
    let (sim, machine) = run(net, RULE, None);
    assert_eq!(machine.report().summary.copied, 3);
    let mut net = sim.network;
    net.log.clear();
    net
}

const RULE: &str = r#"{"src.test/app": "dst.test/app"}"#;

/// Moves `app:<tag>` at the source to a new image.
fn move_tag(net: &mut Network, tag: &str) -> Digest {
    ImageBuilder::new(net.registry(SRC), "app").image(Some(tag), &[b"moved"], "linux/amd64").0
}

struct Case {
    name: &'static str,
    immutable: Option<&'static str>,
    /// What changes at the source after the first sync: tags moved or added.
    moved: &'static [&'static str],
    /// Every request, as `METHOD path`, when few; else only how many.
    requests: Result<Vec<&'static str>, usize>,
    /// Each destination tag: its outcome and whether it was held back unchecked.
    report: Vec<(&'static str, ImageOutcome, bool)>,
}

#[test]
fn immutable_tags_the_destination_lists_are_not_checked_again() {
    let cases = [
        Case {
            name: "every tag immutable, nothing moved: one tags/list per side",
            immutable: Some("."),
            moved: &[],
            requests: Ok(vec!["GET src.test/v2/app/tags/list", "GET dst.test/v2/app/tags/list"]),
            report: vec![
                ("v1", ImageOutcome::Skipped, true),
                ("v2", ImageOutcome::Skipped, true),
                ("v3", ImageOutcome::Skipped, true),
            ],
        },
        Case {
            name: "without the option every tag is checked: each side's tags/list, then two HEADs per tag",
            immutable: None,
            moved: &[],
            requests: Ok(vec![
                "GET src.test/v2/app/tags/list",
                "GET dst.test/v2/app/tags/list",
                "HEAD src.test/v2/app/manifests/v1",
                "HEAD dst.test/v2/app/manifests/v1",
                "HEAD src.test/v2/app/manifests/v2",
                "HEAD dst.test/v2/app/manifests/v2",
                "HEAD src.test/v2/app/manifests/v3",
                "HEAD dst.test/v2/app/manifests/v3",
            ]),
            report: vec![
                ("v1", ImageOutcome::Skipped, false),
                ("v2", ImageOutcome::Skipped, false),
                ("v3", ImageOutcome::Skipped, false),
            ],
        },
        Case {
            name: "without the option a moved tag is caught",
            immutable: None,
            moved: &["v3"],
            requests: Err(2 + 3 * 2 + 1 + 2 + 3 + 1),
            report: vec![
                ("v1", ImageOutcome::Skipped, false),
                ("v2", ImageOutcome::Skipped, false),
                ("v3", ImageOutcome::Copied, false),
            ],
        },
        Case {
            name: "a tag that moved and does not match the pattern is still caught",
            immutable: Some("^v[12]$"),
            moved: &["v3"],
            // Two tags/lists, v3's two HEADs, its manifest, two blob HEADs, one transfer
            // (GET, POST, PUT) and its manifest PUT.
            requests: Err(2 + 2 + 1 + 2 + 3 + 1),
            report: vec![
                ("v1", ImageOutcome::Skipped, true),
                ("v2", ImageOutcome::Skipped, true),
                ("v3", ImageOutcome::Copied, false),
            ],
        },
        Case {
            name: "an immutable tag new at the source is copied",
            immutable: Some("."),
            moved: &["v4"],
            // The destination's tag list lacks v4: no HEAD on either side, its manifest by
            // tag, two blob HEADs, one transfer and its manifest PUT.
            requests: Err(2 + 1 + 2 + 3 + 1),
            report: vec![
                ("v1", ImageOutcome::Skipped, true),
                ("v2", ImageOutcome::Skipped, true),
                ("v3", ImageOutcome::Skipped, true),
                ("v4", ImageOutcome::Copied, false),
            ],
        },
    ];
    for case in cases {
        let mut net = synced();
        let moved: Vec<(&str, Digest)> = case.moved.iter().map(|t| (*t, move_tag(&mut net, t))).collect();
        let (sim, machine) = run(net, RULE, case.immutable);
        let requests: Vec<String> = sim
            .network
            .log
            .iter()
            .map(|r| format!("{} {}", r.method, r.url.trim_start_matches("http://")))
            .collect();
        match &case.requests {
            Ok(want) => assert_eq!(requests, *want, "{}", case.name),
            Err(n) => assert_eq!(requests.len(), *n, "{}: {requests:#?}", case.name),
        }
        let report = machine.report();
        let images: Vec<(&str, ImageOutcome, bool)> = report
            .images
            .iter()
            .map(|i| (i.destination.rsplit(':').next().unwrap(), i.outcome, i.immutable))
            .collect();
        assert_eq!(images, case.report, "{}", case.name);
        let held = case.report.iter().filter(|(_, _, held)| *held).count();
        let s = &report.summary;
        assert_eq!((s.immutable, s.images, s.failed), (held, case.report.len(), 0), "{}", case.name);
        let ready = sim.events_where(|e| matches!(e, Event::PlanReady { .. }));
        let Event::PlanReady { images, immutable, .. } = ready[0] else { unreachable!() };
        assert_eq!((*images, *immutable), (case.report.len() - held, held), "{}", case.name);
        let dst = sim.network.registries.get(DST).unwrap();
        for (tag, digest) in &moved {
            assert_eq!(dst.tag("app", tag), Some(digest), "{}: {tag} reached the destination", case.name);
        }
    }
}

#[test]
fn a_destination_repository_that_does_not_exist_yet_holds_nothing_back() {
    let mut net = Network::new();
    ImageBuilder::new(net.add(SRC), "app").image(Some("v1"), &[b"one"], "linux/amd64");
    net.add(DST);
    let (sim, machine) = run(net, RULE, Some("."));
    let report = machine.report();
    assert_eq!((report.summary.copied, report.summary.immutable), (1, 0));
    let listed: Vec<(String, u16)> = sim
        .network
        .log
        .iter()
        .filter(|r| r.url.contains("/tags/list"))
        .map(|r| (r.url.clone(), r.status))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("http://src.test/v2/app/tags/list".to_owned(), 200),
            ("http://dst.test/v2/app/tags/list".to_owned(), 404)
        ]
    );
}
