//! Diffs on the virtual clock: statuses, request counts, details and whole registries.

use ferry_core::copy::EndpointMap;
use ferry_core::diff::{DiffJob, DiffMachine, DiffSide, TagStatus};
use ferry_core::manifest::media_type::OCI_MANIFEST;
use ferry_core::retry::RetryPolicy;
use ferry_core::testkit::{ImageBuilder, Network, Simulation};
use ferry_core::time::{Instant, UnixTime};
use http::Method;

fn side(registry: &str, repository: Option<&str>) -> DiffSide {
    DiffSide { registry: registry.to_owned(), repository: repository.map(str::to_owned) }
}

fn diff(net: Network, source: DiffSide, destination: DiffSide, details: bool) -> (Simulation, DiffMachine) {
    let mut endpoints = EndpointMap::default();
    endpoints.insecure.extend(["src.test".to_owned(), "dst.test".to_owned()]);
    let job = DiffJob {
        source,
        destination,
        details,
        credentials: Default::default(),
        endpoints,
        retry: RetryPolicy::default(),
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

#[test]
fn a_repository_in_sync_reports_so() {
    let mut net = Network::new();
    let (d, _) = ImageBuilder::new(net.add("src.test"), "app").image(Some("v1"), &[b"one"], "linux/amd64");
    let bytes = net.registry("src.test").manifest("app", &d).unwrap().to_vec();
    net.add("dst.test").put_manifest("copy", Some("v1"), OCI_MANIFEST, &bytes);
    let (_, machine) = diff(net, side("src.test", Some("app")), side("dst.test", Some("copy")), false);
    assert!(machine.report().is_in_sync());
}
