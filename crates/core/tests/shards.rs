//! Shards on the virtual clock: N machines, each given one `Shard` of the same rules, run
//! one after the other against one destination. Together they copy what a single run
//! copies, each image once, and each repository's tags are listed by one shard only.

use std::collections::BTreeSet;

use ferry_core::api::EndpointMap;
use ferry_core::config::parse_images_file;
use ferry_core::copy::{Job, Plan, SyncMachine, SyncOptions};
use ferry_core::progress::{Event, ImageOutcome, Report};
use ferry_core::shard::Shard;
use ferry_core::testkit::{ImageBuilder, Network, Simulation};
use ferry_core::time::{Instant, UnixTime};
use http::Method;

const ONE: &str = "one.test";
const TWO: &str = "two.test";
const DST: &str = "dst.test";

/// A whole-registry rule over `one.test`, and `two.test` rules naming their repositories:
/// every tag, a tag list, and one repository to two destinations.
const RULES: &str = r#"{
    "one.test": "dst.test/one",
    "two.test/api": ["dst.test/api", "dst.test/mirror/api"],
    "two.test/worker:1.0,2.0": "dst.test/worker",
    "two.test/cli": "dst.test/cli"
}"#;

fn network() -> Network {
    let mut net = Network::new();
    let one = net.add(ONE);
    for (i, repository) in ["app", "base", "db", "cache", "team/tool", "team/web"].iter().enumerate() {
        for tag in ["v1", "v2"] {
            let layer = format!("{repository}-{tag}-{i}");
            ImageBuilder::new(one, repository).image(
                Some(tag),
                &[layer.as_bytes(), b"shared"],
                "linux/amd64",
            );
        }
    }
    let two = net.add(TWO);
    for repository in ["api", "worker", "cli"] {
        for tag in ["1.0", "2.0", "3.0"] {
            let layer = format!("{repository}-{tag}");
            ImageBuilder::new(two, repository).image(
                Some(tag),
                &[layer.as_bytes(), b"shared"],
                "linux/amd64",
            );
        }
    }
    net.registry(ONE).page_size = Some(4);
    net.add(DST);
    net
}

fn job() -> Job {
    let rules = parse_images_file("images.json", RULES, &|_| None).expect("valid images file");
    let mut endpoints = EndpointMap::default();
    endpoints.insecure.extend([ONE.to_owned(), TWO.to_owned(), DST.to_owned()]);
    Job { plan: Plan::Rules(rules), credentials: Default::default(), endpoints }
}

/// Runs one shard (or the whole job) on `net`; gives the network back with its report and
/// the `plan_ready` events.
fn run(net: Network, shard: Option<Shard>) -> (Network, Report, Vec<Event>) {
    let mut sim = Simulation::new(net);
    let options = SyncOptions { shard, ..SyncOptions::default() };
    let mut machine = SyncMachine::new(job(), options, Instant::ZERO, UnixTime(0));
    sim.run(&mut machine).expect("the machine finishes");
    let ready = sim.events_where(|e| matches!(e, Event::PlanReady { .. })).into_iter().cloned().collect();
    (sim.network, machine.report(), ready)
}

/// Every planned image, as `source -> destination`, in plan order.
fn plan(report: &Report) -> Vec<String> {
    report.images.iter().map(|i| format!("{} -> {}", i.source, i.destination)).collect()
}

fn tag_lists(net: &Network, host: &str) -> usize {
    net.count(&Method::GET, host, "/tags/list")
}

struct Case {
    count: u32,
    /// Source repositories each shard takes, by index: the split FNV-1a gives, which must
    /// not change between versions (a job's shards may run different builds).
    repositories: &'static [usize],
}

#[test]
fn shards_copy_the_single_runs_images_each_once() {
    let (single_net, single, _) = run(network(), None);
    assert_eq!(single.summary.failed, 0, "{:?}", single.summary.failures);
    let want: BTreeSet<String> = plan(&single).into_iter().collect();
    assert_eq!(want.len(), 6 * 2 + 3 * 2 + 2 + 3, "every image planned once");
    assert_eq!(single.summary.copied, want.len());

    let cases = [
        Case { count: 1, repositories: &[9] },
        Case { count: 3, repositories: &[3, 4, 2] },
        Case { count: 4, repositories: &[4, 1, 3, 1] },
    ];
    for case in cases {
        let count = case.count;
        let mut net = network();
        let mut copied: Vec<String> = Vec::new();
        let mut taken = Vec::new();
        for index in 0..count {
            let shard = Shard::new(index, count).unwrap();
            let before = net.log.len();
            let (after, report, ready) = run(net, Some(shard));
            net = after;
            assert_eq!(report.summary.failed, 0, "{shard}: {:?}", report.summary.failures);
            // Disjoint shares against one destination: nothing a shard plans is there yet.
            assert_eq!(report.summary.skipped, 0, "{shard}: another shard copied its images");
            assert_eq!(report.summary.shard, Some(shard));
            let Event::PlanReady { repositories, shard: told, .. } = &ready[0] else { unreachable!() };
            assert_eq!(*told, Some(shard));
            assert_eq!(*repositories, report.summary.repositories);
            taken.push(*repositories);

            // Run again from the same start: the same plan, in the same order.
            let (_, again, _) = run(network(), Some(shard));
            assert_eq!(plan(&again), plan(&report), "{shard} planned differently the second time");

            // A shard asks nothing of another shard's named repositories.
            let asked: Vec<&str> = net.log[before..].iter().map(|r| r.url.as_str()).collect();
            for repository in ["api", "worker", "cli"] {
                let owned = shard.owns(TWO, repository);
                let touched = asked.iter().any(|u| u.contains(&format!("{TWO}/v2/{repository}/")));
                assert_eq!(touched, owned, "{shard} and {TWO}/{repository}");
            }
            copied.extend(
                report
                    .images
                    .iter()
                    .filter(|i| i.outcome == ImageOutcome::Copied)
                    .map(|i| format!("{} -> {}", i.source, i.destination)),
            );
        }
        assert_eq!(taken, case.repositories, "{count} shards: repositories per shard");
        let union: BTreeSet<String> = copied.iter().cloned().collect();
        assert_eq!(union.len(), copied.len(), "{count} shards: an image was copied twice");
        assert_eq!(union, want, "{count} shards: the union differs from the single run");
        // Every repository's tags were listed once over all the shards; the catalog once per shard.
        assert_eq!(tag_lists(&net, ONE), tag_lists(&single_net, ONE), "{count} shards");
        assert_eq!(tag_lists(&net, TWO), tag_lists(&single_net, TWO), "{count} shards");
        let catalogs = single_net.count(&Method::GET, ONE, "/v2/_catalog");
        assert_eq!(net.count(&Method::GET, ONE, "/v2/_catalog"), catalogs * count as usize);
        // The destination ends as the single run left it.
        let (single_dst, dst) = (&single_net.registries[DST], &net.registries[DST]);
        for image in &single.images {
            let (repository, tag) =
                image.destination.strip_prefix("dst.test/").unwrap().rsplit_once(':').unwrap();
            assert_eq!(dst.tag(repository, tag), single_dst.tag(repository, tag), "{}", image.destination);
        }
        assert_eq!(dst.manifest_count(), single_dst.manifest_count(), "{count} shards");
    }
}
