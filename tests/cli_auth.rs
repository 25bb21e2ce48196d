//! `ferry sync` against registries that want credentials, given in image-syncer's auth
//! file: distribution with Basic auth (an htpasswd file made by `htpasswd -Bbn`) on both
//! sides, and `ferry serve`'s Docker token flow (`--htpasswd --token`) on both sides,
//! each behind a counting proxy (tests/support/fault_proxy.rs, no faults).
//!
//! What they prove: both flows copy every image with its digest; tokens are fetched once
//! per registry and scope, not per request; a wrong password fails each image with one
//! line that names the registry and says the credentials were refused, never prints the
//! password, is not retried, costs the registry at most three requests per image, and
//! ends at once.

#[path = "support/mod.rs"]
mod support;

#[path = "support/cli.rs"]
mod cli;

#[path = "support/fault_proxy.rs"]
mod fault_proxy;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cli::{ferry, Sample, OCI_INDEX, OCI_MANIFEST};
use fault_proxy::{FaultProxy, Schedule};
use serde_json::Value;
use support::{get, request, require, Distribution, DistributionOpts, Ferry, TempDir};

const SOURCE: (&str, &str) = ("puller", "pull-Secret-1");
const DESTINATION: (&str, &str) = ("pusher", "push-Secret-2");
const WRONG: &str = "not-the-Secret-3";

/// An htpasswd file with one bcrypt entry, made by the `htpasswd` tool as users make it.
fn htpasswd(dir: &TempDir, name: &str, (user, password): (&str, &str)) -> PathBuf {
    let output = Command::new("htpasswd").args(["-Bbn", user, password]).output().expect("run htpasswd");
    assert!(output.status.success(), "htpasswd: {}", String::from_utf8_lossy(&output.stderr));
    let path = dir.join(name);
    std::fs::write(&path, &output.stdout).unwrap();
    path
}

/// How the test itself authorises a request to a registry.
#[derive(Clone)]
enum Login {
    Basic(&'static str, &'static str),
    /// A token from ferry serve's `/token`, for `repository:<repo>:pull`.
    Token {
        base: String,
        user: &'static str,
        password: &'static str,
    },
}

impl Login {
    fn header(&self, repo: &str) -> String {
        use base64::Engine as _;
        let basic = |user: &str, password: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )
        };
        match self {
            Login::Basic(user, password) => basic(user, password),
            Login::Token { base, user, password } => {
                let url = format!("{base}/token?service=ferry&scope=repository:{repo}:pull");
                let r = request("GET", &url).header("Authorization", &basic(user, password)).send();
                assert_eq!(r.status, 200, "token for {repo}: {}", r.text());
                format!("Bearer {}", r.json()["token"].as_str().unwrap())
            }
        }
    }
}

/// `repo:tag` at `base` has `digest`, and so do an index's children.
fn assert_has(base: &str, login: &Login, repo: &str, tag: &str, digest: &str) {
    let authorization = login.header(repo);
    let accept = format!("{OCI_MANIFEST}, {OCI_INDEX}");
    let r = request("GET", &format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("Accept", &accept)
        .header("Authorization", &authorization)
        .send();
    assert_eq!(r.status, 200, "{base}/{repo}:{tag}: {}", r.text());
    assert_eq!(support::sha256(&r.body), digest, "{repo}:{tag}");
    let manifest = r.json();
    for child in manifest["manifests"].as_array().into_iter().flatten() {
        let child = child["digest"].as_str().unwrap();
        let r = request("HEAD", &format!("{base}/v2/{repo}/manifests/{child}"))
            .header("Accept", &accept)
            .header("Authorization", &authorization)
            .send();
        assert_eq!(r.status, 200, "{repo}@{child}");
    }
}

fn auth_file(dir: &TempDir, logins: &[(String, &str, &str)]) -> PathBuf {
    let entries: Vec<String> = logins
        .iter()
        .map(|(host, user, password)| {
            format!(r#"  "{host}": {{"username": "{user}", "password": "{password}", "insecure": true}}"#)
        })
        .collect();
    let path = dir.join("auth.json");
    std::fs::write(&path, format!("{{\n{}\n}}\n", entries.join(",\n"))).unwrap();
    path
}

/// The sample's three tags, named one by one (no tag listing), into `prefix/`.
fn images_file(dir: &TempDir, source: &str, destination: &str, prefix: &str) -> PathBuf {
    let path = dir.join("images.json");
    std::fs::write(
        &path,
        format!(
            r#"{{"{source}/library/app:v1,v2": "{destination}/{prefix}/library/app", "{source}/library/multi:1": "{destination}/{prefix}/library/multi"}}"#
        ),
    )
    .unwrap();
    path
}

fn sync(auth: &Path, images: &Path, report: &Path) -> cli::Run {
    let run = ferry(&[
        "sync",
        "--auth",
        auth.to_str().unwrap(),
        "--images",
        images.to_str().unwrap(),
        "--progress",
        "plain",
        "--report",
        report.to_str().unwrap(),
    ]);
    run.assert_no_panic();
    run
}

/// A ferry serve with the token flow on `root`, seeded first without auth.
fn token_registry(root: &Path, htpasswd: &Path, seed: bool) -> (Ferry, Option<Sample>) {
    let sample = seed.then(|| {
        let open = Ferry::with_root(root, &[]);
        Sample::push(&open.url)
    });
    let ferry = Ferry::with_root(root, &["--htpasswd", htpasswd.to_str().unwrap(), "--token"]);
    (ferry, sample)
}

#[test]
fn basic_auth_on_distribution_and_tokens_on_ferry_copy_everything() {
    if !require("docker-registry") || !require("htpasswd") {
        return;
    }
    let dir = TempDir::new("cli-auth");

    // Basic: distribution on both sides.
    let mut source = Distribution::start(&DistributionOpts::default());
    let sample = Sample::push(&source.url);
    source.restart(&DistributionOpts {
        htpasswd: Some(htpasswd(&dir, "source.htpasswd", SOURCE)),
        ..Default::default()
    });
    let destination = Distribution::start(&DistributionOpts {
        htpasswd: Some(htpasswd(&dir, "dst.htpasswd", DESTINATION)),
        ..Default::default()
    });
    assert_eq!(get(&format!("{}/v2/", source.url)).status, 401);
    assert_eq!(get(&format!("{}/v2/", destination.url)).status, 401);
    let basic = Login::Basic(DESTINATION.0, DESTINATION.1);
    let (src_proxy, dst_proxy) = (
        FaultProxy::start(&source.url, Schedule::none()),
        FaultProxy::start(&destination.url, Schedule::none()),
    );

    // Tokens: ferry serve on both sides.
    let ferry_src_dir = TempDir::new("cli-auth-ferry-src");
    let ferry_dst_dir = TempDir::new("cli-auth-ferry-dst");
    let (ferry_src, token_sample) =
        token_registry(ferry_src_dir.path(), &htpasswd(&dir, "ferry-src.htpasswd", SOURCE), true);
    let token_sample = token_sample.unwrap();
    let (ferry_dst, _) =
        token_registry(ferry_dst_dir.path(), &htpasswd(&dir, "ferry-dst.htpasswd", DESTINATION), false);
    let token = Login::Token { base: ferry_dst.url.clone(), user: DESTINATION.0, password: DESTINATION.1 };
    let (ferry_src_proxy, ferry_dst_proxy) = (
        FaultProxy::start(&ferry_src.url, Schedule::none()),
        FaultProxy::start(&ferry_dst.url, Schedule::none()),
    );

    let cases = [
        ("basic", &sample, &src_proxy, &dst_proxy, &destination.url, &basic),
        ("bearer", &token_sample, &ferry_src_proxy, &ferry_dst_proxy, &ferry_dst.url, &token),
    ];
    for (name, sample, src, dst, dst_url, login) in cases {
        let case = TempDir::new(name);
        let auth =
            auth_file(&case, &[(src.host(), SOURCE.0, SOURCE.1), (dst.host(), DESTINATION.0, DESTINATION.1)]);
        let images = images_file(&case, &src.host(), &dst.host(), name);
        let report = case.join("report.json");
        let run = sync(&auth, &images, &report).expect(0, name);
        assert!(run.stdout.contains("copied 3, skipped 0, failed 0 of 3"), "{name}: {}", run.stdout);
        for (repo, tag, digest) in &sample.tags {
            assert_has(dst_url, login, &format!("{name}/{repo}"), tag, digest);
        }
        let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        assert_eq!(report["summary"]["retries"], 0, "{name}");

        // Credentials go to each registry only after it asked for them.
        for proxy in [src, dst] {
            let log = proxy.log();
            assert_eq!(log.first().and_then(|l| l.status), Some(401), "{name}: {log:?}");
        }
        if name == "bearer" {
            // One token per registry and scope set: pull on each source repository,
            // push,pull on each destination one, and maybe one more for a cross-repository
            // mount of the layer both images share.
            let tokens = |p: &FaultProxy| p.count(|l| l.target.starts_with("/token"));
            assert_eq!(tokens(src), 2, "{name}: {:#?}", src.log());
            assert!((2..=3).contains(&tokens(dst)), "{name}: {:#?}", dst.log());
            eprintln!(
                "{name}: {} requests, {} tokens at the source; {} requests, {} tokens at the destination",
                src.log().len(),
                tokens(src),
                dst.log().len(),
                tokens(dst)
            );
        }
    }
}

#[test]
fn a_wrong_password_fails_fast_with_one_clear_line() {
    if !require("docker-registry") || !require("htpasswd") {
        return;
    }
    let dir = TempDir::new("cli-auth-wrong");
    let mut basic_src = Distribution::start(&DistributionOpts::default());
    Sample::push(&basic_src.url);
    basic_src.restart(&DistributionOpts {
        htpasswd: Some(htpasswd(&dir, "src.htpasswd", SOURCE)),
        ..Default::default()
    });
    let basic_dst = Distribution::start(&DistributionOpts {
        htpasswd: Some(htpasswd(&dir, "dst.htpasswd", DESTINATION)),
        ..Default::default()
    });
    let ferry_src_dir = TempDir::new("cli-auth-wrong-ferry");
    let (token_src, _) =
        token_registry(ferry_src_dir.path(), &htpasswd(&dir, "ferry.htpasswd", SOURCE), true);
    let ferry_dst_dir = TempDir::new("cli-auth-wrong-ferry-dst");
    let (token_dst, _) =
        token_registry(ferry_dst_dir.path(), &htpasswd(&dir, "ferry-dst.htpasswd", DESTINATION), false);

    // (name, source, destination, which side gets the wrong password)
    let cases = [
        ("basic-source", &basic_src.url, &basic_dst.url, true),
        ("basic-destination", &basic_src.url, &basic_dst.url, false),
        ("bearer-source", &token_src.url, &token_dst.url, true),
        ("bearer-destination", &token_src.url, &token_dst.url, false),
    ];
    for (name, source, destination, wrong_at_source) in cases {
        let src = FaultProxy::start(source, Schedule::none());
        let dst = FaultProxy::start(destination, Schedule::none());
        let (source_password, destination_password) =
            if wrong_at_source { (WRONG, DESTINATION.1) } else { (SOURCE.1, WRONG) };
        let case = TempDir::new(name);
        let auth = auth_file(
            &case,
            &[(src.host(), SOURCE.0, source_password), (dst.host(), DESTINATION.0, destination_password)],
        );
        let images = images_file(&case, &src.host(), &dst.host(), name);
        let report = case.join("report.json");
        let started = Instant::now();
        let run = sync(&auth, &images, &report).expect(1, name);
        let took = started.elapsed();

        let (refused, refusing) = if wrong_at_source { (&src, src.host()) } else { (&dst, dst.host()) };
        let failures: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("failed ")).collect();
        assert_eq!(failures.len(), 3, "{name}: one line per image:\n{}", run.stderr);
        for line in &failures {
            let (_, reason) = line.split_once(": ").unwrap();
            assert!(
                reason.contains(&format!("on {refusing} was refused (401 Unauthorized)")),
                "{name}: {line}"
            );
            assert!(
                reason.contains(&format!("check the username/password for {refusing}")),
                "{name}: {line}"
            );
        }
        assert_eq!(run.stderr.lines().last(), Some("error: 3 of 3 image(s) failed (see the failures above)"));
        let report_text = std::fs::read_to_string(&report).unwrap();
        for text in [&run.stdout, &run.stderr, &report_text] {
            assert!(
                !text.contains(WRONG) && !text.contains("Secret"),
                "{name}: a password was printed:\n{text}"
            );
        }
        let report: Value = serde_json::from_str(&report_text).unwrap();
        assert_eq!(report["summary"]["retries"], 0, "{name}: no retries");
        assert!(report["summary"]["failures"].as_array().unwrap().iter().all(|f| f["retryable"] == false));

        let requests = refused.log().len();
        assert!(requests <= 3 * 3, "{name}: {requests} requests for 3 images: {:#?}", refused.log());
        assert!(took < Duration::from_secs(10), "{name}: took {took:?}");
        eprintln!("{name}: {requests} requests at {refusing}, {took:.1?}: {}", failures[0]);
    }
}
