//! One read, many writes, on the virtual clock: rules whose destination is a list of three
//! registries. The blob table hands each blob's transfers out together as the members of
//! one share group, so a transport reads the source once for all of them; a destination
//! that holds a blob already is left out of its group; a destination that refuses uploads
//! fails only its own images.

use std::collections::{BTreeMap, BTreeSet};

use ferry_core::api::EndpointMap;
use ferry_core::config::parse_images_file;
use ferry_core::copy::{Job, Plan, SyncMachine, SyncOptions};
use ferry_core::progress::{ImageOutcome, Report};
use ferry_core::testkit::{Fault, ImageBuilder, Network, Simulation};
use ferry_core::time::{Instant, UnixTime};
use http::Method;

const SRC: &str = "src.test";
const DESTINATIONS: [&str; 3] = ["one.test", "two.test", "three.test"];

const RULES: &str = r#"{
    "src.test/app:v1": ["one.test/app", "two.test/app", "three.test/app"],
    "src.test/tool:v1": ["one.test/tool", "two.test/tool", "three.test/tool"]
}"#;

fn network() -> Network {
    let mut net = Network::new();
    let src = net.add(SRC);
    ImageBuilder::new(src, "app").image(Some("v1"), &[b"app layer", b"shared layer"], "linux/amd64");
    ImageBuilder::new(src, "tool").image(Some("v1"), &[b"tool layer", b"shared layer"], "linux/amd64");
    for host in DESTINATIONS {
        net.add(host);
    }
    net
}

fn run(net: Network, proc: usize) -> (Simulation, Report) {
    let rules = parse_images_file("images.json", RULES, &|_| None).expect("valid images file");
    let mut endpoints = EndpointMap::default();
    endpoints.insecure.extend([SRC, DESTINATIONS[0], DESTINATIONS[1], DESTINATIONS[2]].map(str::to_owned));
    let job = Job { plan: Plan::Rules(rules), credentials: Default::default(), endpoints };
    let options = SyncOptions { proc, ..SyncOptions::default() };
    let mut machine = SyncMachine::new(job, options, Instant::ZERO, UnixTime(0));
    let mut sim = Simulation::new(net);
    sim.run(&mut machine).expect("the machine finishes");
    let report = machine.report();
    (sim, report)
}

/// Per blob digest, the destination hosts of its transfers, grouped by share group
/// (`None` for a transfer alone), with the instants they were handed out.
fn groups(sim: &Simulation) -> BTreeMap<String, Vec<(Option<u64>, Instant, String)>> {
    let mut groups: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for (at, transfer) in &sim.started_transfers {
        let host = transfer.upload_start.split('/').nth(2).unwrap_or_default().to_owned();
        groups.entry(transfer.digest.to_string()).or_default().push((
            transfer.share.map(|s| s.id),
            *at,
            host,
        ));
    }
    groups
}

#[test]
fn each_blob_goes_to_every_destination_in_one_share_group() {
    for proc in [1, 5] {
        let (sim, report) = run(network(), proc);
        assert_eq!(report.summary.copied, 6, "proc {proc}: {:?}", report.summary);
        let groups = groups(&sim);
        // Each image's own layer; the shared layer and the config (the same for both) once.
        assert_eq!(groups.len(), 4, "proc {proc}: {groups:?}");
        for (digest, members) in &groups {
            let ids: BTreeSet<_> = members.iter().map(|(id, _, _)| *id).collect();
            let hosts: BTreeSet<_> = members.iter().map(|(_, _, host)| host.as_str()).collect();
            let instants: BTreeSet<_> = members.iter().map(|(_, at, _)| *at).collect();
            assert_eq!(ids.len(), 1, "proc {proc}: {digest} in one group: {members:?}");
            assert!(ids.iter().all(Option::is_some), "proc {proc}: {digest} shared");
            assert_eq!(hosts, BTreeSet::from(DESTINATIONS), "proc {proc}: {digest}");
            assert_eq!(instants.len(), 1, "proc {proc}: {digest} handed out at once");
        }
        let shares: Vec<_> = sim.started_transfers.iter().filter_map(|(_, t)| t.share).collect();
        assert!(shares.len() == 12 && shares.iter().all(|s| s.members == 3), "{shares:?}");
        let leaders = shares.iter().filter(|s| s.leader).count();
        assert_eq!(leaders, 4, "one member per group stands for the source read: {shares:?}");
        for host in DESTINATIONS {
            for repository in ["app", "tool"] {
                let source = sim.network.registries[SRC].tag(repository, "v1").cloned();
                assert_eq!(sim.network.registries[host].tag(repository, "v1").cloned(), source, "{host}");
            }
        }
    }
}

#[test]
fn a_destination_slower_to_ask_for_its_blobs_still_joins_the_read() {
    // three.test's manifest check is answered 503 once: its image asks for its blobs a
    // retry later than its siblings, whose transfers wait for it.
    let mut net = network();
    net.faults.push(Fault::status(Method::HEAD, "three.test/v2/app/manifests", 1, 503));
    let (sim, report) = run(net, 1);
    assert_eq!(report.summary.copied, 6, "{:?}", report.summary);
    for (digest, members) in groups(&sim) {
        let ids: BTreeSet<_> = members.iter().map(|(id, _, _)| *id).collect();
        assert_eq!((ids.len(), members.len()), (1, 3), "{digest}: {members:?}");
    }
}

#[test]
fn a_blob_two_tags_share_waits_for_the_slower_tags_siblings() {
    // app:v1 and app:v2 share a layer and start together (proc 6). v1's check at one.test is
    // answered 503 once, so its sibling gathers a retry later while the others' transfers
    // of the shared layer queue: still one group of three per blob.
    let rules = r#"{"src.test/app": ["one.test/app", "two.test/app", "three.test/app"]}"#;
    let mut net = Network::new();
    let src = net.add(SRC);
    ImageBuilder::new(src, "app").image(Some("v1"), &[b"shared layer", b"v1 layer"], "linux/amd64");
    ImageBuilder::new(src, "app").image(Some("v2"), &[b"shared layer", b"v2 layer"], "linux/amd64");
    for host in DESTINATIONS {
        net.add(host);
    }
    net.faults.push(Fault::status(Method::HEAD, "one.test/v2/app/manifests/v1", 1, 503));
    let rules = parse_images_file("images.json", rules, &|_| None).expect("valid images file");
    let mut endpoints = EndpointMap::default();
    endpoints.insecure.extend([SRC, DESTINATIONS[0], DESTINATIONS[1], DESTINATIONS[2]].map(str::to_owned));
    let job = Job { plan: Plan::Rules(rules), credentials: Default::default(), endpoints };
    let options = SyncOptions { proc: 6, ..SyncOptions::default() };
    let mut machine = SyncMachine::new(job, options, Instant::ZERO, UnixTime(0));
    let mut sim = Simulation::new(net);
    sim.run(&mut machine).expect("the machine finishes");
    assert_eq!(machine.report().summary.copied, 6, "{:?}", machine.report().summary);
    for (digest, members) in groups(&sim) {
        let ids: BTreeSet<_> = members.iter().map(|(id, _, _)| *id).collect();
        assert_eq!((ids.len(), members.len()), (1, 3), "{digest}: {members:?}");
    }
}

#[test]
fn a_destination_that_holds_a_blob_is_left_out_of_its_group() {
    let mut net = network();
    let layer = net.registry("two.test").put_blob("app", b"app layer");
    let (sim, report) = run(net, 1);
    assert_eq!(report.summary.copied, 6, "{:?}", report.summary);
    let groups = groups(&sim);
    let hosts: BTreeSet<_> = groups[&layer.to_string()].iter().map(|(_, _, h)| h.as_str()).collect();
    assert_eq!(hosts, BTreeSet::from(["one.test", "three.test"]));
    assert!(groups[&layer.to_string()].iter().all(|(id, _, _)| id.is_some()));
}

#[test]
fn a_destination_that_refuses_uploads_fails_only_its_own_images() {
    let mut net = network();
    net.faults.push(Fault::status(Method::POST, "three.test/v2/", 1000, 403));
    let (sim, report) = run(net, 1);
    for image in &report.images {
        let expected = if image.destination.starts_with("three.test") {
            ImageOutcome::Failed
        } else {
            ImageOutcome::Copied
        };
        assert_eq!(image.outcome, expected, "{image:?}");
    }
    for host in ["one.test", "two.test"] {
        for repository in ["app", "tool"] {
            assert!(sim.network.registries[host].tag(repository, "v1").is_some(), "{host}/{repository}");
        }
    }
}

/// Repositories whose tags share layers with each other and across repositories, every
/// tag to three destinations, several images at once: still one group per blob.
#[test]
fn blobs_shared_across_tags_and_repositories_are_read_once() {
    let mut blobs = BTreeSet::new();
    let network = |blobs: &mut BTreeSet<String>| {
        let mut net = Network::new();
        let src = net.add(SRC);
        for repository in ["lib/a", "lib/b", "lib/c", "lib/d"] {
            for tag in ["v1", "v2", "v3"] {
                let own = format!("{repository}:{tag}");
                let layers: [&[u8]; 3] = [b"base", repository.as_bytes(), own.as_bytes()];
                ImageBuilder::new(src, repository).image(Some(tag), &layers, "linux/amd64");
                for layer in layers {
                    blobs.insert(ferry_core::digest::Digest::sha256(layer).to_string());
                }
            }
        }
        for host in DESTINATIONS {
            net.add(host);
        }
        net
    };
    let rules = r#"{
        "src.test/lib/a": ["one.test/a", "two.test/a", "three.test/a"],
        "src.test/lib/b": ["one.test/b", "two.test/b", "three.test/b"],
        "src.test/lib/c": ["one.test/c", "two.test/c", "three.test/c"],
        "src.test/lib/d": ["one.test/d", "two.test/d", "three.test/d"]
    }"#;
    for proc in [1, 3, 5, 12] {
        let rules = parse_images_file("images.json", rules, &|_| None).expect("valid images file");
        let mut endpoints = EndpointMap::default();
        endpoints
            .insecure
            .extend([SRC, DESTINATIONS[0], DESTINATIONS[1], DESTINATIONS[2]].map(str::to_owned));
        let job = Job { plan: Plan::Rules(rules), credentials: Default::default(), endpoints };
        let options = SyncOptions { proc, ..SyncOptions::default() };
        let mut machine = SyncMachine::new(job, options, Instant::ZERO, UnixTime(0));
        let mut sim = Simulation::new(network(&mut blobs));
        sim.run(&mut machine).expect("the machine finishes");
        assert_eq!(machine.report().summary.copied, 36, "proc {proc}");
        let groups = groups(&sim);
        for (digest, members) in &groups {
            let ids: BTreeSet<_> = members.iter().map(|(id, _, _)| *id).collect();
            assert_eq!((ids.len(), members.len()), (1, 3), "proc {proc}: {digest}: {members:?}");
        }
        let layers = groups.keys().filter(|d| blobs.contains(*d)).count();
        assert_eq!(layers, blobs.len(), "proc {proc}: every layer moved");
    }
}
