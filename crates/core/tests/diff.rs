//! Diffs on the virtual clock: statuses, request counts, details and whole registries.

use ferry_core::api::EndpointMap;
use ferry_core::diff::{DiffJob, DiffMachine, TagStatus, Target};
use ferry_core::manifest::media_type::OCI_MANIFEST;
use ferry_core::progress::Event;
use ferry_core::retry::RetryPolicy;
use ferry_core::testkit::{Fault, ImageBuilder, Network, Simulation};
use ferry_core::time::{Instant, UnixTime};
use http::Method;

fn side(registry: &str, repository: Option<&str>) -> Target {
    Target { registry: registry.to_owned(), repository: repository.map(str::to_owned) }
}

fn diff(net: Network, source: Target, destination: Target, details: bool) -> (Simulation, DiffMachine) {
    run(net, source, Some(destination), None, details)
}

fn run(
    net: Network,
    source: Target,
    destination: Option<Target>,
    reference: Option<&str>,
    details: bool,
) -> (Simulation, DiffMachine) {
    let mut endpoints = EndpointMap::default();
    endpoints.insecure.extend(["src.test".to_owned(), "dst.test".to_owned()]);
    let job = DiffJob {
        source,
        destination,
        reference: reference.map(str::to_owned),
        repositories: Vec::new(),
        details,
        referrers: false,
        credentials: Default::default(),
        endpoints,
        retry: RetryPolicy::default(),
        seed: 0,
    };
    let mut machine = DiffMachine::new(job, Instant::ZERO, UnixTime(0));
    let mut sim = Simulation::new(net);
    sim.run(&mut machine).unwrap();
    (sim, machine)
}

/// src/app has v1 (also at dst), v2 (different at dst), v3 (missing); dst has v4 (extra).
fn network() -> Network {
    let mut net = Network::new();
    let (v1, _) = ImageBuilder::new(net.add("src.test"), "app").image(Some("v1"), &[b"one"], "linux/amd64");
    ImageBuilder::new(net.registry("src.test"), "app").image(Some("v2"), &[b"two"], "linux/amd64");
    ImageBuilder::new(net.registry("src.test"), "app").index(
        "v3",
        &["linux/amd64", "linux/arm64/v8"],
        &[b"b"],
    );
    let v1_bytes = net.registry("src.test").manifest("app", &v1).unwrap().to_vec();
    let dst = net.add("dst.test");
    dst.put_manifest("app", Some("v1"), OCI_MANIFEST, &v1_bytes);
    ImageBuilder::new(dst, "app").image(Some("v2"), &[b"not two"], "linux/amd64");
    ImageBuilder::new(dst, "app").image(Some("v4"), &[b"four"], "linux/amd64");
    net
}

#[test]
fn statuses_and_the_minimum_requests() {
    let (sim, machine) = diff(network(), side("src.test", Some("app")), side("dst.test", Some("app")), false);
    let report = machine.report();
    let statuses: Vec<(&str, TagStatus)> = report.rows.iter().map(|r| (r.tag.as_str(), r.status)).collect();
    assert_eq!(
        statuses,
        vec![
            ("v1", TagStatus::InSync),
            ("v2", TagStatus::Different),
            ("v3", TagStatus::Missing),
            ("v4", TagStatus::Extra)
        ]
    );
    assert_eq!((report.in_sync, report.different, report.missing, report.extra), (1, 1, 1, 1));
    assert!(!report.is_in_sync());
    // One tags/list per side, then one HEAD per tag on each side that has it.
    assert_eq!(sim.network.log.len(), 2 + 3 + 3);
    assert!(sim
        .network
        .log
        .iter()
        .all(|r| r.method == Method::GET && r.url.contains("tags/list") || r.method == Method::HEAD));
}

#[test]
fn details_add_platforms_and_sizes() {
    let (_, machine) = diff(network(), side("src.test", Some("app")), side("dst.test", Some("app")), true);
    let report = machine.report();
    let v3 = report.rows.iter().find(|r| r.tag == "v3").unwrap();
    assert_eq!(v3.platforms, vec!["linux/amd64", "linux/arm64/v8"]);
    assert!(v3.size.unwrap() > 0);
    let v4 = report.rows.iter().find(|r| r.tag == "v4").unwrap();
    assert_eq!(v4.size, None, "extra tags have no source details");
}

#[test]
fn whole_registries_compare_every_repository_under_a_prefix() {
    let mut net = network();
    ImageBuilder::new(net.registry("src.test"), "tools/x").image(Some("1"), &[b"x"], "linux/amd64");
    let (_, machine) = diff(net, side("src.test", None), side("dst.test", None), false);
    let report = machine.report();
    let repos: std::collections::BTreeSet<&str> = report.rows.iter().map(|r| r.repository.as_str()).collect();
    assert_eq!(repos.into_iter().collect::<Vec<_>>(), vec!["app", "tools/x"]);
    let x = report.rows.iter().find(|r| r.repository == "tools/x").unwrap();
    assert_eq!(x.status, TagStatus::Missing);
}

/// Each repository pair's rows and errors arrive as one `repository_diffed` event as soon
/// as it is compared, equal to what the final report holds for it; a failing pair's event
/// carries its error.
#[test]
fn whole_registries_stream_one_event_per_repository() {
    let mut net = network();
    ImageBuilder::new(net.registry("src.test"), "tools/x").image(Some("1"), &[b"x"], "linux/amd64");
    ImageBuilder::new(net.registry("src.test"), "broken").image(Some("1"), &[b"y"], "linux/amd64");
    net.faults.push(Fault::status(Method::GET, "dst.test/v2/mirror/broken/tags/list", 10, 403));
    let (sim, machine) = diff(net, side("src.test", None), side("dst.test", Some("mirror")), true);
    let report = machine.report();
    let events: Vec<&Event> = sim.events_where(|e| matches!(e, Event::RepositoryDiffed { .. }));
    let mut seen = Vec::new();
    for event in events {
        let Event::RepositoryDiffed { source_repository, destination_repository, rows, errors } = event
        else {
            unreachable!()
        };
        let path = source_repository.as_str();
        assert_eq!(destination_repository.as_deref(), Some(format!("mirror/{path}").as_str()));
        let expected: Vec<_> = report.rows.iter().filter(|r| r.repository == path).cloned().collect();
        assert_eq!(rows, &expected, "{path}");
        assert_eq!(errors.len(), usize::from(path == "broken"), "{path}: {errors:?}");
        seen.push(path.to_owned());
    }
    seen.sort();
    assert_eq!(seen, ["app", "broken", "tools/x"]);
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    // Streamed: `app`'s index needs one more round trip (its children, for details), and
    // `tools/x`'s event does not wait for it.
    let at = |name: &str| {
        let diffed = |e: &Event| matches!(e, Event::RepositoryDiffed { source_repository, .. } if source_repository == name);
        sim.events.iter().find(|(_, e)| diffed(e)).map(|(at, _)| *at).unwrap()
    };
    assert!(at("tools/x") < at("app"), "{:?} {:?}", at("tools/x"), at("app"));
}

#[test]
fn a_repository_in_sync_reports_so() {
    let mut net = Network::new();
    let (d, _) = ImageBuilder::new(net.add("src.test"), "app").image(Some("v1"), &[b"one"], "linux/amd64");
    let bytes = net.registry("src.test").manifest("app", &d).unwrap().to_vec();
    net.add("dst.test").put_manifest("copy", Some("v1"), OCI_MANIFEST, &bytes);
    let (_, machine) = diff(net, side("src.test", Some("app")), side("dst.test", Some("copy")), false);
    assert!(machine.report().is_in_sync());
}

#[test]
fn one_side_alone_lists_and_heads_only_the_source() {
    let (sim, machine) = run(network(), side("src.test", Some("app")), None, None, false);
    let report = machine.report();
    let rows: Vec<(&str, TagStatus, bool, bool)> = report
        .rows
        .iter()
        .map(|r| (r.tag.as_str(), r.status, r.source_digest.is_some(), r.media_type.is_some()))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("v1", TagStatus::Listed, true, true),
            ("v2", TagStatus::Listed, true, true),
            ("v3", TagStatus::Listed, true, true),
        ]
    );
    assert_eq!((report.in_sync, report.missing, report.different, report.extra), (0, 0, 0, 0));
    // One tags/list, one HEAD per tag, and nothing at the other registry.
    assert_eq!(sim.network.log.len(), 1 + 3);
    assert!(sim.network.log.iter().all(|r| r.url.starts_with("http://src.test/")));
}

#[test]
fn one_reference_skips_the_tag_list() {
    let v3_digest = {
        let (_, machine) = run(network(), side("src.test", Some("app")), None, None, false);
        machine.report().rows.iter().find(|r| r.tag == "v3").unwrap().source_digest.clone().unwrap()
    };
    let by_digest = v3_digest.to_string();
    // (reference, destination, rows expected, requests: HEADs, plus GETs of an index and its children)
    let cases: [(&str, bool, usize, usize); 5] = [
        ("v3", false, 1, 1 + 3),
        (&by_digest, false, 1, 1 + 3),
        ("v1", false, 1, 1 + 1),
        ("nope", false, 0, 1 + 1),
        ("v2", true, 1, 2 + 1),
    ];
    for (reference, with_destination, rows, requests) in cases {
        let destination = with_destination.then(|| side("dst.test", Some("app")));
        let (sim, machine) =
            run(network(), side("src.test", Some("app")), destination, Some(reference), true);
        let report = machine.report();
        assert_eq!(report.rows.len(), rows, "{reference}: {report:?}");
        assert_eq!(sim.network.log.len(), requests, "{reference}: {:?}", sim.network.log);
        assert!(sim.network.log.iter().all(|r| !r.url.contains("tags/list")), "{reference}");
        if let Some(row) = report.rows.first() {
            assert_eq!(row.tag, reference);
            assert!(row.size.unwrap() > 0, "{reference}");
            let expected = if with_destination { TagStatus::Different } else { TagStatus::Listed };
            assert_eq!(row.status, expected, "{reference}");
        }
    }
    let (_, machine) = run(network(), side("src.test", Some("app")), None, Some("v3"), true);
    let v3 = machine.report().rows.remove(0);
    assert_eq!(v3.platforms, vec!["linux/amd64", "linux/arm64/v8"]);
    assert_eq!(v3.source_digest, Some(v3_digest));
    assert_eq!(v3.media_type.as_deref(), Some(ferry_core::manifest::media_type::OCI_INDEX));
}

/// A diff asks about every tag at once, but no more than 16 requests per registry and
/// class are in flight: with a fixed latency, HEADs leave in waves of 16.
#[test]
fn a_diff_of_many_tags_keeps_sixteen_heads_in_flight_per_registry() {
    let mut net = Network::new();
    net.add("src.test");
    net.add("dst.test");
    for n in 0..40 {
        let tag = format!("v{n}");
        let layer = format!("layer {n}").into_bytes();
        let (digest, _) =
            ImageBuilder::new(net.registry("src.test"), "app").image(Some(&tag), &[&layer], "linux/amd64");
        let bytes = net.registry("src.test").manifest("app", &digest).unwrap().to_vec();
        net.registry("dst.test").put_manifest("app", Some(&tag), OCI_MANIFEST, &bytes);
    }
    let (sim, machine) = diff(net, side("src.test", Some("app")), side("dst.test", Some("app")), false);
    let report = machine.report();
    assert_eq!((report.in_sync, report.rows.len()), (40, 40));
    for host in ["src.test", "dst.test"] {
        let mut waves: std::collections::BTreeMap<Instant, usize> = Default::default();
        for r in sim.network.log.iter().filter(|r| r.method == Method::HEAD && r.url.contains(host)) {
            *waves.entry(r.at).or_default() += 1;
        }
        let sizes: Vec<usize> = waves.into_values().collect();
        assert_eq!(sizes, [16, 16, 8], "{host}");
    }
}
