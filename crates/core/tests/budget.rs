//! Request budgets on the virtual clock: a source with a Docker Hub pull quota (manifest
//! `GET`s per window, told in `ratelimit-*` fields), and the dry run's forecast of the
//! real run's requests, asserted equal to what the registries then see, images alone and
//! with their referrers.

use std::collections::BTreeMap;
use std::time::Duration;

use ferry_core::api::EndpointMap;
use ferry_core::config::parse_images_file;
use ferry_core::copy::{Job, Plan, RegistryRequests, SyncMachine, SyncOptions};
use ferry_core::progress::{Event, JobStatus};
use ferry_core::referrers::ReferrerFilter;
use ferry_core::testkit::{ImageBuilder, Network, Quota, Simulation};
use ferry_core::time::{Instant, UnixTime};
use http::Method;

const SRC: &str = "src.test";
const DST: &str = "dst.test";
const WALL: UnixTime = UnixTime(1_700_000_000);

/// Images alone: the quota tests count the images' manifest GETs (referrers add their own,
/// which [`a_dry_run_foresees_referrers_requests_too`] counts).
fn images_alone() -> SyncOptions {
    SyncOptions { referrers: ReferrerFilter::None, ..SyncOptions::default() }
}

fn run(network: Network, images: &str, options: SyncOptions) -> (Simulation, SyncMachine) {
    let rules = parse_images_file("images.json", images, &|_| None).expect("a valid images file");
    let mut endpoints = EndpointMap::default();
    endpoints.insecure.extend([SRC.to_owned(), DST.to_owned()]);
    let job = Job { plan: Plan::Rules(rules), credentials: Default::default(), endpoints };
    let mut sim = Simulation::new(network);
    sim.latency = Duration::from_millis(50);
    let mut machine = SyncMachine::new(job, options, Instant::ZERO, WALL);
    sim.run(&mut machine).expect("the machine finishes");
    (sim, machine)
}

/// `images` single-platform tags of `app`, each with its own layer and a shared base.
fn tags(images: usize) -> Network {
    let mut net = Network::new();
    net.add(DST);
    let src = net.add(SRC);
    for i in 0..images {
        let layer = format!("layer {i}");
        ImageBuilder::new(src, "app").image(
            Some(&format!("v{i}")),
            &[b"base", layer.as_bytes()],
            "linux/amd64",
        );
    }
    net
}

#[test]
fn a_spent_pull_quota_pauses_the_job_until_its_window_resets_then_it_finishes() {
    // 40 images need 40 manifest GETs; other clients already spent 10 of the quota's 30.
    let window = Duration::from_secs(600);
    let mut net = tags(40);
    net.quotas.insert(SRC.to_owned(), Quota::new(30, window, 10));
    let (sim, machine) = run(net, r#"{"src.test/app": "dst.test/app"}"#, images_alone());
    let report = machine.report();
    assert_eq!(report.status, JobStatus::Succeeded, "{:?}", report.summary.failures);
    assert_eq!(report.summary.copied, 40);
    // Not one 429: the 21st GET waited a whole window (the fields give no reset) instead.
    assert_eq!(sim.network.count_status(SRC, 429), 0);
    let pauses: Vec<&Event> = sim.events_where(|e| matches!(e, Event::BudgetPaused { .. }));
    assert_eq!(
        pauses,
        [&Event::BudgetPaused {
            registry: SRC.to_owned(),
            limit: Some(30),
            window_s: Some(600),
            resume_in_ms: 600_000,
        }]
    );
    let [budget] = &report.summary.budgets[..] else { panic!("{:?}", report.summary.budgets) };
    assert_eq!((budget.counted, budget.pauses, budget.paused_ms), (40, 1, 600_000));
    // The new window's 30, less the 20 GETs after the pause.
    assert_eq!(budget.remaining, Some(10));
    // HEADs went on while the GETs waited; the job took one window and a few round trips.
    let elapsed = Duration::from_millis(report.summary.elapsed_ms);
    assert!(elapsed > window && elapsed < window + Duration::from_secs(5), "{elapsed:?}");
    // The destination saw nothing else: one blob upload per layer and a manifest per tag.
    assert_eq!(sim.network.count(&Method::PUT, DST, "/manifests/"), 40);
}

/// The requests each registry saw, and its manifest GETs, from its own log.
fn seen(sim: &Simulation) -> Vec<RegistryRequests> {
    let mut by_host: BTreeMap<String, RegistryRequests> = BTreeMap::new();
    for request in &sim.network.log {
        let host = request.url.split("//").nth(1).and_then(|r| r.split('/').next()).unwrap_or_default();
        let entry = by_host
            .entry(host.to_owned())
            .or_insert_with(|| RegistryRequests { registry: host.to_owned(), ..Default::default() });
        entry.requests += 1;
        entry.counted += u64::from(request.method == Method::GET && request.url.contains("/manifests/"));
    }
    by_host.into_values().collect()
}

#[test]
fn a_dry_run_foresees_exactly_the_requests_the_real_run_makes() {
    type Seed = fn() -> Network;
    let cold: Seed = || tags(12);
    let two_repositories_and_an_index: Seed = || {
        let mut net = tags(6);
        let src = net.registry(SRC);
        ImageBuilder::new(src, "tools").image(Some("1.0"), &[b"base", b"tools"], "linux/amd64");
        ImageBuilder::new(src, "tools").index("multi", &["linux/amd64", "linux/arm64"], &[b"base"]);
        net
    };
    let half_there: Seed = || {
        let mut net = tags(10);
        let dst = net.registry(DST);
        for i in 0..5 {
            let layer = format!("layer {i}");
            ImageBuilder::new(dst, "app").image(
                Some(&format!("v{i}")),
                &[b"base", layer.as_bytes()],
                "linux/amd64",
            );
        }
        net
    };
    let within_one_registry: Seed = || tags(4);
    let cases: [(&str, Seed, &str); 4] = [
        ("cold", cold, r#"{"src.test/app": "dst.test/app"}"#),
        (
            "two repositories, a shared base, an index",
            two_repositories_and_an_index,
            r#"{"src.test/app": "dst.test/app", "src.test/tools": "dst.test/tools"}"#,
        ),
        ("half already there", half_there, r#"{"src.test/app": "dst.test/app"}"#),
        // Source and destination on one registry: blobs are mounted, not moved.
        ("within one registry", within_one_registry, r#"{"src.test/app": "src.test/copy"}"#),
    ];
    for (name, seed, images) in cases {
        for proc in [1, 5] {
            let options = SyncOptions { proc, ..SyncOptions::default() };
            let (dry_sim, dry) = run(seed(), images, SyncOptions { dry_run: true, ..options.clone() });
            let (real_sim, real) = run(seed(), images, options);
            assert_eq!(real.report().status, JobStatus::Succeeded, "{name}");
            let forecast = dry.report().summary.forecast;
            assert_eq!(forecast, seen(&real_sim), "{name}, proc {proc}");
            // The dry run's own reads are the real run's reads, manifest GETs included.
            let counted =
                |sim: &Simulation| sim.network.log.iter().filter(|r| r.method == Method::GET).count();
            assert!(counted(&dry_sim) <= counted(&real_sim), "{name}");
            assert!(real.report().summary.forecast.is_empty(), "only a dry run forecasts");
        }
    }
}

#[test]
fn the_forecast_counts_what_a_pull_quota_will_count() {
    let mut net = tags(8);
    net.quotas.insert(SRC.to_owned(), Quota::new(100, Duration::from_secs(21_600), 0));
    let images = r#"{"src.test/app": "dst.test/app"}"#;
    let (_, dry) = run(net, images, SyncOptions { dry_run: true, ..images_alone() });
    let summary = dry.report().summary;
    let source = summary.forecast.iter().find(|r| r.registry == SRC).expect("the source is forecast");
    // 1 tags/list, 8 manifest GETs (the destination's tag list shows every tag missing:
    // no HEADs), and the GETs of 10 blobs (a layer per image, the shared base and the one
    // config), which a pull quota does not count.
    assert_eq!((source.requests, source.counted), (1 + 8 + 10, 8));
    // The dry run spent its own 8 GETs of the quota, and says what is left.
    let [budget] = &summary.budgets[..] else { panic!("{:?}", summary.budgets) };
    assert_eq!(
        (budget.limit, budget.window_s, budget.counted, budget.remaining),
        (Some(100), Some(21_600), 8, Some(92))
    );
}

/// `app`'s tags, each with an SBOM, a signature of the SBOM and a cosign `.sig` tag; a
/// registry without the referrers API keeps the SBOM and signature in tag-schema indexes.
fn with_referrers(tags: usize, source_api: bool, destination_api: bool) -> Network {
    let mut net = Network::new();
    net.add(DST).referrers_api = destination_api;
    net.add(SRC).referrers_api = source_api;
    let src = net.registry(SRC);
    let mut app = ImageBuilder::new(src, "app");
    for i in 0..tags {
        let layer = format!("layer {i}");
        let (image, _) = app.image(Some(&format!("v{i}")), &[b"base", layer.as_bytes()], "linux/amd64");
        let sbom = format!("{{\"spdxVersion\":\"SPDX-2.3\",\"name\":\"v{i}\"}}");
        let sbom = app.artifact(&image, "application/spdx+json", sbom.as_bytes(), !source_api);
        let signature = format!("signature of the sbom of v{i}");
        app.artifact(
            &sbom,
            "application/vnd.dev.sigstore.bundle.v0.3+json",
            signature.as_bytes(),
            !source_api,
        );
        app.cosign_signature(&image, format!("cosign signature of v{i}").as_bytes());
    }
    net
}

/// Builds a case's registries afresh, for the dry run and again for the real run.
type Build = Box<dyn Fn() -> Network>;

#[test]
fn a_dry_run_foresees_referrers_requests_too() {
    // Referrer discovery (the API or, after one 404, the tag-schema indexes; cosign's tags),
    // the referrers' own copies, the destination's probe and, without its API, its
    // tag-schema indexes read, pushed and read back: all in the forecast, cold, half
    // there, and a no-op, in all four directions, and within one registry.
    let images = r#"{"src.test/app": "dst.test/app"}"#;
    for (source_api, destination_api) in [(true, true), (true, false), (false, true), (false, false)] {
        let seeds: [(&str, Build, &str); 4] = [
            ("cold", Box::new(move || with_referrers(4, source_api, destination_api)), images),
            (
                "half there",
                Box::new(move || {
                    let net = with_referrers(2, source_api, destination_api);
                    let (sim, _) = run(net, images, SyncOptions::default());
                    let mut net = sim.network;
                    net.log.clear();
                    let src = net.registry(SRC);
                    let mut app = ImageBuilder::new(src, "app");
                    let (image, _) = app.image(Some("v9"), &[b"base", b"layer 9"], "linux/amd64");
                    app.artifact(&image, "application/spdx+json", b"sbom of v9", !source_api);
                    app.cosign_signature(&image, b"cosign signature of v9");
                    net
                }),
                images,
            ),
            (
                "no-op",
                Box::new(move || {
                    let net = with_referrers(3, source_api, destination_api);
                    let (sim, _) = run(net, images, SyncOptions::default());
                    let mut net = sim.network;
                    net.log.clear();
                    net
                }),
                images,
            ),
            // Source and destination on one registry (its API or not is the source's).
            (
                "within one registry",
                Box::new(move || with_referrers(3, source_api, destination_api)),
                r#"{"src.test/app": "src.test/copy"}"#,
            ),
        ];
        for (name, seed, images) in &seeds {
            for proc in [1, 5] {
                let case = format!("{name}, api {source_api}/{destination_api}, proc {proc}");
                let options = SyncOptions { proc, ..SyncOptions::default() };
                let (_, dry) = run(seed(), images, SyncOptions { dry_run: true, ..options.clone() });
                let (real_sim, real) = run(seed(), images, options);
                let report = real.report();
                assert_eq!(report.status, JobStatus::Succeeded, "{case}: {:?}", report.summary.failures);
                assert_eq!(report.summary.referrers.failed, 0, "{case}");
                if *name != "no-op" {
                    assert!(report.summary.referrers.copied > 0, "{case}: referrers were copied");
                }
                // A registry without the API is asked once per side, however many images
                // end at once.
                let probes = |host: &str| real_sim.network.count(&Method::GET, host, "/referrers/");
                if !source_api {
                    let sides = if *name == "within one registry" { 2 } else { 1 };
                    assert_eq!(probes(SRC), sides, "{case}: one probe of the source per side");
                }
                if !destination_api && *name != "within one registry" && *name != "no-op" {
                    assert_eq!(probes(DST), 1, "{case}: one probe of the destination");
                }
                let dry_report = dry.report();
                assert_eq!(dry_report.summary.forecast, seen(&real_sim), "{case}");
                assert_eq!(dry_report.summary.referrers.indexed, report.summary.referrers.indexed, "{case}");
            }
        }
    }
}
