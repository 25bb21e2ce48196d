//! A fetch scripted against an in-memory upstream on the virtual clock.

use std::time::Duration;

use http::header::AUTHORIZATION;
use http::Method;

use super::{Fetch, Fetched, Upstream, UpstreamAuth, Want};
use crate::api::Endpoint;
use crate::auth::{Credential, CredentialStore};
use crate::digest::Digest;
use crate::error::ErrorKind;
use crate::retry::RetryPolicy;
use crate::testkit::{FakeAuth, Fault, ImageBuilder, Network, Simulation};
use crate::time::{Instant, UnixTime};

const HOST: &str = "up.test";

fn policy() -> RetryPolicy {
    RetryPolicy {
        retries: 2,
        base: Duration::from_millis(100),
        cap: Duration::from_secs(1),
        max_retry_after: Duration::from_secs(60),
    }
}

/// An upstream holding `app:v1` (an index over two platforms) behind the token flow.
fn network() -> (Network, Digest, Digest) {
    let mut network = Network::new();
    let registry = network.add(HOST);
    registry.auth = Some(FakeAuth::Bearer { username: "u".into(), password: "p".into() });
    let index = ImageBuilder::new(registry, "app").index("v1", &["linux/amd64", "linux/arm64"], &[b"shared"]);
    let layer = Digest::sha256(b"shared");
    (network, index, layer)
}

fn upstream() -> Upstream {
    let credentials = CredentialStore::new([(HOST, Credential::new("u", "p"))]).expect("a valid key");
    Upstream { endpoint: Endpoint::from_base(&format!("http://{HOST}")), credentials, retry: policy() }
}

fn run(sim: &mut Simulation, want: Want) -> Result<Fetched, crate::error::Error> {
    run_as(sim, want, UpstreamAuth::default()).0
}

/// A fetch starting from `auth`; its result and what it learned.
fn run_as(
    sim: &mut Simulation,
    want: Want,
    auth: UpstreamAuth,
) -> (Result<Fetched, crate::error::Error>, UpstreamAuth) {
    let mut fetch = Fetch::new(upstream(), auth, "app", want, 1, sim.now, UnixTime(1_700_000_000));
    sim.run(&mut fetch).expect("the driver contract holds");
    (fetch.result().expect("a finished fetch has a result"), fetch.auth())
}

/// Method, path and status of every request the upstream saw.
fn log(sim: &Simulation) -> Vec<(Method, String, u16)> {
    sim.network
        .log
        .iter()
        .map(|r| {
            let path = r.url.trim_start_matches(&format!("http://{HOST}")).to_owned();
            (r.method.clone(), path.split('?').next().unwrap_or_default().to_owned(), r.status)
        })
        .collect()
}

#[test]
fn manifest_by_tag_after_the_token_dance_is_the_upstreams_bytes() {
    let (network, index, _) = network();
    let mut sim = Simulation::new(network);
    let Ok(Fetched::Manifest { bytes, media_type, digest }) = run(&mut sim, Want::Manifest("v1".into()))
    else {
        panic!("expected a manifest");
    };
    assert_eq!(digest, index);
    assert_eq!(Digest::sha256(&bytes), index);
    assert_eq!(media_type, crate::manifest::media_type::OCI_INDEX);
    assert_eq!(
        log(&sim),
        [
            (Method::GET, "/v2/app/manifests/v1".into(), 401),
            (Method::GET, "/token".into(), 200),
            (Method::GET, "/v2/app/manifests/v1".into(), 200),
        ]
    );
}

#[test]
fn a_later_fetch_reuses_the_challenge_and_token_until_the_token_expires() {
    let (network, _, layer) = network();
    let mut sim = Simulation::new(network);
    let (first, auth) = run_as(&mut sim, Want::TagDigest("v1".into()), UpstreamAuth::default());
    assert!(first.is_ok());
    assert_eq!(sim.network.log.len(), 3, "401, token, HEAD");
    let (second, auth) = run_as(&mut sim, Want::Blob(layer.clone()), auth);
    assert!(second.is_ok());
    assert_eq!(
        log(&sim)[3..],
        [(Method::HEAD, format!("/v2/app/blobs/{layer}"), 200)],
        "authorised up front"
    );
    // The fake's tokens live 300 s: past that, the next fetch asks for a new one first.
    sim.now = sim.now + Duration::from_secs(301);
    let (third, _) = run_as(&mut sim, Want::TagDigest("v1".into()), auth);
    assert!(third.is_ok());
    let paths: Vec<String> = log(&sim)[4..].iter().map(|(_, p, _)| p.clone()).collect();
    assert_eq!(paths, ["/token", "/v2/app/manifests/v1"]);
}

#[test]
fn a_tag_is_rechecked_with_one_head() {
    let (network, index, _) = network();
    let mut sim = Simulation::new(network);
    let Ok(Fetched::TagDigest(digest)) = run(&mut sim, Want::TagDigest("v1".into())) else {
        panic!("expected a digest");
    };
    assert_eq!(digest, index);
    let heads: Vec<_> = log(&sim).into_iter().filter(|(m, _, s)| *m == Method::HEAD && *s == 200).collect();
    assert_eq!(heads, [(Method::HEAD, "/v2/app/manifests/v1".into(), 200)]);
    assert!(log(&sim).iter().all(|(m, p, _)| !(m == Method::GET && p.contains("/manifests/"))));
}

#[test]
fn a_blob_source_is_an_authorised_get_of_the_right_size() {
    let (network, _, layer) = network();
    let mut sim = Simulation::new(network);
    let Ok(Fetched::BlobSource { get, size }) = run(&mut sim, Want::Blob(layer.clone())) else {
        panic!("expected a blob source");
    };
    assert_eq!(size, b"shared".len() as u64);
    assert_eq!(get.uri().to_string(), format!("http://{HOST}/v2/app/blobs/{layer}"));
    let auth = get.headers().get(AUTHORIZATION).expect("authorised").to_str().unwrap();
    assert!(auth.starts_with("Bearer "), "{auth}");
    // The machine never read the blob: one HEAD, no GET.
    assert!(log(&sim).iter().all(|(m, p, _)| !(m == Method::GET && p.contains("/blobs/"))));
}

#[test]
fn outcomes_by_upstream_answer() {
    let (_, _, layer) = network();
    // (fault status, times, want, expected kind or None for success, requests to the path)
    let cases: [(u16, usize, Want, Option<ErrorKind>, usize); 5] = [
        (503, 2, Want::Manifest("v1".into()), None, 3),
        (503, 3, Want::Manifest("v1".into()), Some(ErrorKind::Unavailable), 3),
        (429, 3, Want::TagDigest("v1".into()), Some(ErrorKind::RateLimited), 3),
        (404, 1, Want::Manifest("never".into()), Some(ErrorKind::NotFound), 1),
        (503, 1, Want::Blob(layer), None, 2),
    ];
    for (status, times, want, expected, requests) in cases {
        let (mut network, _, _) = network();
        network.registry(HOST).auth = None;
        let path = match &want {
            Want::Manifest(r) | Want::TagDigest(r) => format!("/manifests/{r}"),
            Want::Blob(d) => format!("/blobs/{d}"),
        };
        let method = if matches!(want, Want::Manifest(_)) { Method::GET } else { Method::HEAD };
        network.faults.push(Fault::status(method, &path, times, status));
        let mut sim = Simulation::new(network);
        let result = run(&mut sim, want.clone());
        assert_eq!(
            result.as_ref().err().map(|e| e.kind()),
            expected,
            "{status}x{times} {want:?}: {result:?}"
        );
        let sent = log(&sim).iter().filter(|(_, p, _)| p.ends_with(&path)).count();
        assert_eq!(sent, requests, "{status}x{times} {want:?}");
        if let Err(e) = result {
            assert!(e.message().contains(&format!("http://{HOST}")), "names the upstream: {}", e.message());
        }
    }
}

#[test]
fn retries_wait_on_the_virtual_clock() {
    let (mut network, _, _) = network();
    network.registry(HOST).auth = None;
    network.faults.push(Fault::status(Method::GET, "/manifests/v1", 2, 503));
    let mut sim = Simulation::new(network);
    assert!(run(&mut sim, Want::Manifest("v1".into())).is_ok());
    let at: Vec<Instant> = sim.network.log.iter().map(|r| r.at).collect();
    // Each retry waits its seeded, jittered backoff (base 100 ms, doubling) after the 10 ms answer.
    let ms = |n| Instant::ZERO + Duration::from_millis(n);
    assert_eq!(at, [ms(0), ms(10 + 57), ms(10 + 57 + 10 + 149)]);
    let retries: Vec<_> = sim
        .events_where(|e| matches!(e, crate::progress::Event::RetryScheduled { .. }))
        .into_iter()
        .map(|e| match e {
            crate::progress::Event::RetryScheduled { retry, delay_ms, .. } => (*retry, *delay_ms),
            _ => unreachable!("filtered"),
        })
        .collect();
    assert_eq!(retries, [(1, 57), (2, 149)]);
}

#[test]
fn a_bad_reference_fails_without_a_request() {
    let (network, _, _) = network();
    let mut sim = Simulation::new(network);
    let result = run(&mut sim, Want::Manifest("bad tag!".into()));
    assert_eq!(result.err().map(|e| e.kind()), Some(ErrorKind::InvalidName));
    assert!(sim.network.log.is_empty());
}
