//! Referrers travel with their images: whole jobs on the virtual clock, with exact request
//! logs, over registries with the referrers API and without it (the tag schema).

use ferry_core::api::EndpointMap;
use ferry_core::config::parse_images_file;
use ferry_core::copy::{Job, Plan, SyncMachine, SyncOptions};
use ferry_core::digest::Digest;
use ferry_core::manifest::media_type;
use ferry_core::progress::{Event, ImageOutcome, JobStatus, Report};
use ferry_core::referrers::{cosign_tag, fallback_tag, referrers_list, CosignKind, ReferrerFilter};
use ferry_core::testkit::{ImageBuilder, Network, Simulation};
use ferry_core::time::{Instant, UnixTime};
use http::Method;

const SRC: &str = "src.test";
const DST: &str = "dst.test";
const WALL: UnixTime = UnixTime(784_111_777);
const SBOM: &str = "application/spdx+json";
const SIGNATURE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

fn run(network: Network, images: &str, options: SyncOptions) -> (Simulation, Report) {
    let rules = parse_images_file("images.json", images, &|_| None).expect("valid images file");
    let mut endpoints = EndpointMap::default();
    endpoints.insecure.extend([SRC.to_owned(), DST.to_owned()]);
    let job = Job { plan: Plan::Rules(rules), credentials: Default::default(), endpoints };
    let mut sim = Simulation::new(network);
    let mut machine = SyncMachine::new(job, options, Instant::ZERO, WALL);
    sim.run(&mut machine).expect("the machine finishes");
    let report = machine.report();
    (sim, report)
}

fn with(referrers: ReferrerFilter) -> SyncOptions {
    SyncOptions { referrers, ..SyncOptions::default() }
}

/// What the source holds: `app:v1`, an SBOM of it, a signature of the SBOM (nested), and a
/// cosign-style `.sig` tag of it.
struct Source {
    image: Digest,
    sbom: Digest,
    signature: Digest,
    cosign: Digest,
}

fn network(source_api: bool, destination_api: bool) -> (Network, Source) {
    let mut net = Network::new();
    net.add(SRC).referrers_api = source_api;
    net.add(DST).referrers_api = destination_api;
    let src = net.registry(SRC);
    let mut app = ImageBuilder::new(src, "app");
    let (image, _) = app.image(Some("v1"), &[b"layer of v1"], "linux/amd64");
    let sbom = app.artifact(&image, SBOM, b"{\"spdxVersion\":\"SPDX-2.3\"}", !source_api);
    let signature = app.artifact(&sbom, SIGNATURE, b"signature of the sbom", !source_api);
    let cosign = app.cosign_signature(&image, b"cosign signature payload");
    (net, Source { image, sbom, signature, cosign })
}

fn log(sim: &Simulation) -> Vec<String> {
    sim.network.log.iter().map(|r| format!("{} {}", r.method, r.url)).collect()
}

fn listed(net: &mut Network, host: &str, subject: &Digest) -> Vec<Digest> {
    let registry = net.registry(host);
    let Some(tag) = registry.tag("app", &fallback_tag(subject)).cloned() else { return Vec::new() };
    let bytes = registry.manifest("app", &tag).expect("the tag's manifest").to_vec();
    referrers_list(bytes).expect("an index").into_iter().map(|d| d.digest).collect()
}

const V1: &str = r#"{"src.test/app:v1": "dst.test/app"}"#;

#[test]
fn everything_travels_with_identical_digests_in_all_four_directions() {
    for (source_api, destination_api) in [(true, true), (true, false), (false, true), (false, false)] {
        let case = format!("source api {source_api}, destination api {destination_api}");
        let (net, src) = network(source_api, destination_api);
        let (mut sim, report) = run(net, V1, SyncOptions::default());
        assert_eq!(report.status, JobStatus::Succeeded, "{case}: {:?}", report.summary.failures);
        assert_eq!((report.summary.copied, report.summary.images), (1, 1), "{case}");
        assert_eq!((report.summary.referrers.copied, report.summary.referrers.failed), (3, 0), "{case}");
        let cosign_tag = cosign_tag(&src.image, CosignKind::Sig);
        let dst = sim.network.registry(DST);
        for digest in [&src.image, &src.sbom, &src.signature, &src.cosign] {
            assert!(dst.manifest("app", digest).is_some(), "{case}: {digest} at the destination");
        }
        assert_eq!(dst.tag("app", &cosign_tag), Some(&src.cosign), "{case}: the cosign tag");
        let (image_list, sbom_list) =
            (listed(&mut sim.network, DST, &src.image), listed(&mut sim.network, DST, &src.sbom));
        if destination_api {
            assert_eq!((image_list, sbom_list), (vec![], vec![]), "{case}: the API lists them, no tags");
        } else {
            assert_eq!(image_list, vec![src.sbom.clone()], "{case}: the image's tag-schema index");
            assert_eq!(sbom_list, vec![src.signature.clone()], "{case}: the SBOM's tag-schema index");
        }
        let order: Vec<usize> = sim
            .events_where(|e| matches!(e, Event::ImageDone { .. }))
            .iter()
            .map(|e| match e {
                Event::ImageDone { image, .. } => *image,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(order[0], 0, "{case}: the subject is pushed first");
        let sbom_at = report.images.iter().position(|i| i.digest.as_ref() == Some(&src.sbom)).unwrap();
        let signature_at =
            report.images.iter().position(|i| i.digest.as_ref() == Some(&src.signature)).unwrap();
        assert!(sbom_at < signature_at, "{case}: the SBOM before its signature");
        assert_eq!(report.images[signature_at].subject_digest.as_ref(), Some(&src.sbom), "{case}");
    }
}

/// The README's request counts. A no-op sync of one tag whose image has an SBOM, a
/// signature of the SBOM and a cosign `.sig` tag: off, the minimum of one HEAD per side;
/// on, per manifest one referrers request at the source (the API, or after its 404 the
/// tag-schema index), per referrer one HEAD at the destination (and the cosign tag's HEAD
/// at the source), one `tags/list` per repository the plan did not list, one probe of the
/// destination's API per job and, without it, one read of each non-empty tag-schema index.
#[test]
fn a_no_op_sync_costs_exact_requests_with_referrers_off_and_on() {
    // Run once to fill the destination, then again on the same registries.
    let cases: [(bool, bool, ReferrerFilter, Vec<&str>); 4] = [
        (
            true,
            true,
            ReferrerFilter::None,
            vec!["HEAD http://src.test/v2/app/manifests/v1", "HEAD http://dst.test/v2/app/manifests/v1"],
        ),
        (
            true,
            true,
            ReferrerFilter::All,
            vec![
                "HEAD http://src.test/v2/app/manifests/v1",
                "HEAD http://dst.test/v2/app/manifests/v1",
                "GET http://src.test/v2/app/referrers/IMAGE",
                "GET http://src.test/v2/app/tags/list",
                "HEAD http://dst.test/v2/app/manifests/SBOM",
                "HEAD http://src.test/v2/app/manifests/COSIGN_TAG",
                "HEAD http://dst.test/v2/app/manifests/COSIGN_TAG",
                "GET http://src.test/v2/app/referrers/SBOM",
                "GET http://dst.test/v2/app/referrers/IMAGE",
                "GET http://src.test/v2/app/referrers/COSIGN",
                "HEAD http://dst.test/v2/app/manifests/SIGNATURE",
                "GET http://src.test/v2/app/referrers/SIGNATURE",
            ],
        ),
        (
            false,
            false,
            ReferrerFilter::None,
            vec!["HEAD http://src.test/v2/app/manifests/v1", "HEAD http://dst.test/v2/app/manifests/v1"],
        ),
        (
            false,
            false,
            ReferrerFilter::All,
            vec![
                "HEAD http://src.test/v2/app/manifests/v1",
                "HEAD http://dst.test/v2/app/manifests/v1",
                "GET http://src.test/v2/app/referrers/IMAGE",
                "GET http://src.test/v2/app/tags/list",
                "GET http://src.test/v2/app/manifests/IMAGE_TAG",
                "HEAD http://dst.test/v2/app/manifests/SBOM",
                "HEAD http://src.test/v2/app/manifests/COSIGN_TAG",
                "HEAD http://dst.test/v2/app/manifests/COSIGN_TAG",
                "GET http://src.test/v2/app/manifests/SBOM_TAG",
                "GET http://dst.test/v2/app/referrers/IMAGE",
                "GET http://src.test/v2/app/manifests/COSIGN_FALLBACK",
                "HEAD http://dst.test/v2/app/manifests/SIGNATURE",
                "GET http://dst.test/v2/app/manifests/IMAGE_TAG",
                "GET http://dst.test/v2/app/manifests/SBOM_TAG",
                "GET http://src.test/v2/app/manifests/SIGNATURE_TAG",
            ],
        ),
    ];
    for (source_api, destination_api, filter, want) in cases {
        let case = format!("api {source_api}/{destination_api}, referrers {filter}");
        let (net, src) = network(source_api, destination_api);
        let (sim, first) = run(net, V1, with(filter.clone()));
        assert_eq!(first.status, JobStatus::Succeeded, "{case}");
        let mut net = sim.network;
        net.log.clear();
        let (sim, report) = run(net, V1, with(filter.clone()));
        let names = [
            ("IMAGE_TAG", fallback_tag(&src.image)),
            ("SBOM_TAG", fallback_tag(&src.sbom)),
            ("SIGNATURE_TAG", fallback_tag(&src.signature)),
            ("COSIGN_FALLBACK", fallback_tag(&src.cosign)),
            ("COSIGN_TAG", cosign_tag(&src.image, CosignKind::Sig)),
            ("IMAGE", src.image.to_string()),
            ("SBOM", src.sbom.to_string()),
            ("SIGNATURE", src.signature.to_string()),
            ("COSIGN", src.cosign.to_string()),
        ];
        let want: Vec<String> = want
            .iter()
            .map(|line| names.iter().fold(line.to_string(), |l, (name, value)| l.replace(name, value)))
            .collect();
        assert_eq!(log(&sim), want, "{case}");
        assert_eq!(report.summary.requests, want.len() as u64, "{case}");
        assert_eq!(report.summary.skipped, 1, "{case}");
        let expected_referrers = if filter.is_on() { 3 } else { 0 };
        assert_eq!(report.summary.referrers.skipped, expected_referrers, "{case}");
        assert_eq!(report.summary.referrers.indexed, 0, "{case}: nothing written");
        assert_eq!(report.status, JobStatus::Succeeded, "{case}");
    }
}

#[test]
fn an_unrelated_entry_in_the_destination_index_survives() {
    let (mut net, src) = network(true, false);
    // Another client listed an artifact of its own under the image's tag-schema tag.
    let other = {
        let mut dst = ImageBuilder::new(net.registry(DST), "app");
        let (image, _) = dst.image(Some("v1"), &[b"layer of v1"], "linux/amd64");
        assert_eq!(image, src.image, "the same image at both sides");
        dst.artifact(&image, "application/vnd.example.other", b"someone else's", true)
    };
    let (mut sim, report) = run(net, V1, SyncOptions::default());
    assert_eq!(report.status, JobStatus::Succeeded);
    assert_eq!(report.summary.skipped, 1, "the image itself was in sync");
    assert_eq!(listed(&mut sim.network, DST, &src.image), vec![other, src.sbom.clone()]);
    assert_eq!(report.summary.referrers.indexed, 2, "the image's index and the SBOM's");
}

#[test]
fn a_lying_referrer_blob_fails_that_referrer_alone() {
    let (mut net, src) = network(true, false);
    let payload: &[u8] = b"{\"spdxVersion\":\"SPDX-2.3\"}";
    net.registry(SRC).corrupt_blob(&Digest::sha256(payload), b"{\"spdxVersion\":\"SPDX-6.6\"}");
    let (mut sim, report) = run(net, V1, SyncOptions::default());
    assert_eq!(report.status, JobStatus::Failed, "the job says something failed");
    assert_eq!(report.summary.copied, 1, "the image itself is copied");
    assert_eq!(report.summary.referrers.failed, 1);
    assert_eq!(report.summary.referrers.copied, 1, "the cosign signature still travels");
    let failure = &report.summary.failures[0];
    assert!(failure.destination.contains(&src.sbom.to_string()), "{failure:?}");
    assert!(failure.reason.contains(&Digest::sha256(payload).to_string()), "{}", failure.reason);
    let dst = sim.network.registry(DST);
    assert!(dst.tag("app", "v1").is_some());
    assert!(dst.manifest("app", &src.sbom).is_none(), "the SBOM is not pushed");
    assert!(dst.manifest("app", &src.signature).is_none(), "nor its signature");
    assert_eq!(listed(&mut sim.network, DST, &src.image), vec![], "the index lists nothing that failed");
}

#[test]
fn a_filter_picks_the_kinds_that_travel() {
    let cases = [
        ("sig", vec!["cosign"]),
        (SBOM, vec!["sbom"]),
        ("application/spdx+json,application/vnd.dev.sigstore.bundle.v0.3+json", vec!["sbom", "signature"]),
    ];
    for (filter, want) in cases {
        let (net, src) = network(true, true);
        let (mut sim, report) = run(net, V1, with(filter.parse().unwrap()));
        assert_eq!(report.status, JobStatus::Succeeded, "{filter}");
        let dst = sim.network.registry(DST);
        let named = [("sbom", &src.sbom), ("signature", &src.signature), ("cosign", &src.cosign)];
        let got: Vec<&str> =
            named.iter().filter(|(_, d)| dst.manifest("app", d).is_some()).map(|(n, _)| *n).collect();
        assert_eq!(got, want, "{filter}");
    }
}

#[test]
fn with_referrers_on_their_tags_are_not_copied_as_images() {
    let (net, src) = network(false, false);
    let (mut sim, report) = run(net, r#"{"src.test/app": "dst.test/app"}"#, SyncOptions::default());
    assert_eq!(report.status, JobStatus::Succeeded);
    assert_eq!(report.summary.images, 1, "only v1 is an image; the sha256- tags are its referrers'");
    assert_eq!(
        sim.network.count(&Method::GET, SRC, "/tags/list"),
        1,
        "the plan's tag list serves cosign too"
    );
    assert_eq!(listed(&mut sim.network, DST, &src.image), vec![src.sbom.clone()]);
    let (net, _) = network(false, false);
    let (_, report) = run(net, r#"{"src.test/app": "dst.test/app"}"#, with(ReferrerFilter::None));
    assert_eq!(report.summary.images, 4, "off, every tag is an image, as image-syncer copies it");
}

#[test]
fn a_rewritten_index_says_its_own_referrers_stay_behind() {
    let mut net = Network::new();
    net.add(SRC).referrers_api = true;
    net.add(DST).referrers_api = true;
    let (index, child_signature, index_signature) = {
        let src = net.registry(SRC);
        let index = ImageBuilder::new(src, "app").index("v1", &["linux/amd64", "linux/arm64"], &[b"base"]);
        let bytes = src.manifest("app", &index).unwrap().to_vec();
        let raw = ferry_core::manifest::RawManifest::parse(bytes, Some(media_type::OCI_INDEX)).unwrap();
        let ferry_core::manifest::Manifest::Index(parsed) = raw.manifest() else { unreachable!() };
        let amd64 = parsed.manifests[0].digest.clone();
        let mut app = ImageBuilder::new(src, "app");
        (
            index.clone(),
            app.artifact(&amd64, SIGNATURE, b"amd64 signed", false),
            app.artifact(&index, SIGNATURE, b"index signed", false),
        )
    };
    let options = SyncOptions {
        platforms: ferry_core::manifest::PlatformFilter::new(&[], &["amd64".to_owned()], &[]).unwrap(),
        dry_run: true,
        ..SyncOptions::default()
    };
    let (sim, report) = run(net, V1, options);
    assert_eq!(report.status, JobStatus::Succeeded);
    assert_eq!(report.images[0].rewritten_from.as_ref(), Some(&index));
    assert_eq!(report.images[0].referrers_dropped, 1, "the dry run says what breaks");
    assert_eq!(report.summary.referrers.dropped, 1);
    let dropped = sim.events_where(|e| matches!(e, Event::ReferrersDropped { .. }));
    assert!(matches!(dropped[..], [Event::ReferrersDropped { count: 1, .. }]), "{dropped:?}");
    let would: Vec<&Digest> = report
        .images
        .iter()
        .filter(|i| i.outcome == ImageOutcome::WouldCopy && i.subject_digest.is_some())
        .filter_map(|i| i.digest.as_ref())
        .collect();
    assert_eq!(would, vec![&child_signature], "the child's signature still applies");
    assert!(!would.contains(&&index_signature));
}

#[test]
fn a_concurrent_index_update_is_merged_again_not_lost() {
    for (races, want) in [(1, JobStatus::Succeeded), (3, JobStatus::Failed)] {
        let (mut net, src) = network(true, false);
        // Another client pushes its own list over ferry's, `races` times.
        let (their, size) =
            ImageBuilder::new(net.registry(DST), "app").image(None, &[b"theirs"], "linux/amd64");
        let theirs = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{their}","size":{size},"artifactType":"x/y"}}]}}"#,
            media_type::OCI_INDEX,
            media_type::OCI_MANIFEST,
        );
        net.registry(DST).race_tag("app", &fallback_tag(&src.image), theirs.as_bytes(), races);
        let (mut sim, report) = run(net, V1, SyncOptions::default());
        assert_eq!(report.status, want, "{races} race(s): {:?}", report.summary.failures);
        let index_put = format!("PUT http://dst.test/v2/app/manifests/{}", fallback_tag(&src.image));
        let pushes = log(&sim).iter().filter(|line| **line == index_put).count();
        assert_eq!(pushes, races.min(3) + usize::from(races < 3), "{races} race(s)");
        let listed = listed(&mut sim.network, DST, &src.image);
        if want == JobStatus::Succeeded {
            assert_eq!(listed, vec![their.clone(), src.sbom.clone()], "both entries kept");
        } else {
            let failure = &report.summary.failures[0];
            assert!(failure.reason.contains("concurrent writers 3 times"), "{}", failure.reason);
        }
    }
}

fn diff(network: Network, referrers: bool) -> (Simulation, ferry_core::diff::DiffReport) {
    use ferry_core::diff::{DiffJob, DiffMachine, Target};
    let mut endpoints = EndpointMap::default();
    endpoints.insecure.extend([SRC.to_owned(), DST.to_owned()]);
    let target =
        |registry: &str| Target { registry: registry.to_owned(), repository: Some("app".to_owned()) };
    let job = DiffJob {
        source: target(SRC),
        destination: Some(target(DST)),
        reference: None,
        repositories: Vec::new(),
        details: false,
        referrers,
        credentials: Default::default(),
        endpoints,
        retry: Default::default(),
        seed: 0,
    };
    let mut machine = DiffMachine::new(job, Instant::ZERO, WALL);
    let mut sim = Simulation::new(network);
    sim.run(&mut machine).expect("the diff finishes");
    let report = machine.report();
    (sim, report)
}

#[test]
fn a_diff_with_referrers_says_which_are_in_sync_missing_or_extra() {
    use ferry_core::diff::TagStatus;
    for (source_api, destination_api) in [(true, true), (false, false)] {
        let case = format!("api {source_api}/{destination_api}");
        let (net, src) = network(source_api, destination_api);
        // The image went over without its referrers.
        let (sim, _) = run(net, V1, with(ReferrerFilter::None));
        let mut net = sim.network;
        // An artifact only the destination has.
        let extra = ImageBuilder::new(net.registry(DST), "app").artifact(
            &src.image,
            "x/extra",
            b"extra",
            !destination_api,
        );
        net.log.clear();
        let (sim, report) = diff(net, true);
        assert_eq!((report.in_sync, report.missing, report.extra), (1, 0, 0), "{case}: v1 alone is a row");
        let row = &report.rows[0];
        let got: Vec<(Option<Digest>, TagStatus)> =
            row.referrers.iter().map(|r| (r.digest.clone(), r.status)).collect();
        assert_eq!(
            got,
            vec![
                (Some(src.sbom.clone()), TagStatus::Missing),
                (Some(extra), TagStatus::Extra),
                (None, TagStatus::Missing)
            ],
            "{case}"
        );
        assert_eq!((report.referrers_missing, report.referrers_extra), (2, 1), "{case}");
        assert!(!report.is_in_sync(), "{case}");
        // Two tags/list, a HEAD per side, the referrers of each side (after a 404, the
        // tag-schema index).
        let per_side = if source_api { 1 } else { 2 };
        assert_eq!(sim.network.log.len(), 2 + 2 + 2 * per_side, "{case}: {:#?}", log(&sim));
        // After a sync with referrers, what the source lists is at the destination.
        let (sim, _) = run(sim.network, V1, SyncOptions::default());
        let (_, report) = diff(sim.network, true);
        assert_eq!(
            (report.referrers_in_sync, report.referrers_missing, report.referrers_extra),
            (2, 0, 1),
            "{case}"
        );
        let (_, off) = diff(network(source_api, destination_api).0, false);
        assert!(off.rows.iter().all(|r| r.referrers.is_empty()), "{case}: off, no referrers");
    }
}

#[test]
fn a_referrers_api_the_transport_cannot_read_counts_as_none() {
    // A browser sees distribution's 404 without CORS headers as a network error.
    use ferry_core::testkit::{Fault, FaultAnswer};
    let (mut net, src) = network(false, false);
    let unreadable = Fault {
        method: Some(Method::GET),
        path_contains: "/referrers/".to_owned(),
        times: usize::MAX,
        answer: FaultAnswer::Disconnect,
    };
    net.faults.push(unreadable);
    let (mut sim, report) = run(net, V1, SyncOptions::default());
    assert_eq!(report.status, JobStatus::Succeeded, "{:?}", report.summary.failures);
    assert_eq!(report.summary.referrers.copied, 3);
    assert_eq!(listed(&mut sim.network, DST, &src.image), vec![src.sbom.clone()]);
    let (_, diff) = diff(sim.network, true);
    assert!(diff.errors.is_empty(), "{:?}", diff.errors);
    assert_eq!((diff.referrers_in_sync, diff.referrers_missing), (2, 0));
}
