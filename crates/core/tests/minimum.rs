//! Syncs at the request minimum (README, "Requests: the minimum a sync needs"), counted
//! from the registries' own logs on the virtual clock: a cold sync into an empty
//! destination, a no-op sync after it, and rules naming exact tags, which list nothing.

use ferry_core::api::EndpointMap;
use ferry_core::config::parse_images_file;
use ferry_core::copy::{Job, Plan, SyncMachine, SyncOptions};
use ferry_core::progress::JobStatus;
use ferry_core::referrers::ReferrerFilter;
use ferry_core::testkit::{ImageBuilder, Network, Simulation};
use ferry_core::time::{Instant, UnixTime};
use http::Method;

const SRC: &str = "src.test";
const DST: &str = "dst.test";

/// R repositories of T tags each; every image has its own layer, and shares a base layer
/// and its config (same platform) with every other: U = R T + 2 distinct blobs.
fn corpus(repositories: usize, tags: usize) -> Network {
    let mut net = Network::new();
    net.add(DST);
    let src = net.add(SRC);
    for r in 0..repositories {
        for t in 0..tags {
            let own = format!("layer {r}/{t}");
            let repository = format!("r{r}");
            ImageBuilder::new(src, &repository).image(
                Some(&format!("v{t}")),
                &[b"base", own.as_bytes()],
                "linux/amd64",
            );
        }
    }
    net
}

fn rules(repositories: usize) -> String {
    let pairs: Vec<String> =
        (0..repositories).map(|r| format!(r#""src.test/r{r}": "dst.test/m{r}""#)).collect();
    format!("{{{}}}", pairs.join(", "))
}

fn sync(net: Network, images: &str, proc: usize) -> Simulation {
    let rules = parse_images_file("images.json", images, &|_| None).expect("a valid images file");
    let mut endpoints = EndpointMap::default();
    endpoints.insecure.extend([SRC.to_owned(), DST.to_owned()]);
    let job = Job { plan: Plan::Rules(rules), credentials: Default::default(), endpoints };
    let mut sim = Simulation::new(net);
    // Images alone: the minimum counts images (tests/referrers.rs counts what referrers add).
    let options = SyncOptions { proc, referrers: ReferrerFilter::None, ..SyncOptions::default() };
    let mut machine = SyncMachine::new(job, options, Instant::ZERO, UnixTime(1_700_000_000));
    sim.run(&mut machine).expect("the machine finishes");
    assert_eq!(machine.report().status, JobStatus::Succeeded, "{:?}", machine.report().summary.failures);
    sim
}

/// Requests each registry logged from `from` on.
fn per_side(sim: &Simulation, from: usize) -> (usize, usize) {
    let log = &sim.network.log[from..];
    let on = |host: &str| log.iter().filter(|r| r.url.contains(&format!("//{host}/"))).count();
    (on(SRC), on(DST))
}

#[test]
fn cold_and_no_op_syncs_make_the_minimum_requests() {
    for (repositories, tags) in [(1, 1), (3, 4), (5, 10)] {
        for proc in [1, 5] {
            let (r, t) = (repositories, repositories * tags);
            let unique = t + 2;
            let sim = sync(corpus(r, tags), &rules(r), proc);
            // Source: a tag list per repository, a manifest GET per tag, a GET per blob.
            // Destination: a tag list per repository, POST + PUT per blob, the shared base
            // and config mounted into every further repository, a manifest PUT per tag.
            let cold = (r + t + unique, r + 2 * unique + 2 * (r - 1) + t);
            assert_eq!(per_side(&sim, 0), cold, "cold, {r} x {tags}, proc {proc}");
            let mounts = sim.network.count(&Method::POST, DST, "mount=");
            assert_eq!(mounts, 2 * (r - 1), "cold, {r} x {tags}");
            assert_eq!(sim.network.count(&Method::HEAD, SRC, "/"), 0, "no HEAD at the source");
            assert_eq!(sim.network.count(&Method::HEAD, DST, "/"), 0, "no HEAD at the destination");

            // A no-op: a tag list per repository on each side and a HEAD per tag on each
            // side: the destination lists every tag, so every tag is checked.
            let before = sim.network.log.len();
            let again = sync(sim.network, &rules(r), proc);
            assert_eq!(per_side(&again, before), (r + t, r + t), "no-op, {r} x {tags}, proc {proc}");
            let heads = again.network.log[before..].iter().filter(|l| l.method == Method::HEAD).count();
            assert_eq!(heads, 2 * t);
        }
    }
}

#[test]
fn rules_naming_exact_tags_list_nothing() {
    let images = r#"{"src.test/r0:v1": "dst.test/m0", "src.test/r1:v0,v2": "dst.test/m1"}"#;
    let sim = sync(corpus(2, 3), images, 5);
    let listings = sim.network.log.iter().filter(|l| l.url.contains("/tags/list")).count();
    assert_eq!(listings, 0);
    // Each named tag is checked on both sides, then copied.
    assert_eq!(sim.network.count(&Method::HEAD, SRC, "/manifests/"), 3);
    assert_eq!(sim.network.count(&Method::HEAD, DST, "/manifests/"), 3);
    assert_eq!(sim.network.count(&Method::PUT, DST, "/manifests/"), 3);
}
