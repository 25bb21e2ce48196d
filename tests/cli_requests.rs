//! `ferry sync` at the request minimum, counted by proxies in front of two real
//! distribution registries (what each registry received): a cold sync, a no-op, a warm
//! no-op with every tag immutable (one `tags/list` per repository per side, nothing else),
//! and a tag that moved at the source without matching the immutable pattern, still caught.
//! The minimum is the README's ("Requests: the minimum a sync needs").

#[path = "support/mod.rs"]
mod support;

#[path = "support/cli.rs"]
mod cli;

#[path = "support/fault_proxy.rs"]
mod fault_proxy;

use cli::{ferry, head_digest, push_image};
use fault_proxy::{FaultProxy, Schedule};
use support::{require, Distribution, DistributionOpts, TempDir};

const REPOSITORIES: usize = 3;
const TAGS: usize = 4;

/// Requests each proxy forwarded since it was last cleared, then clears both.
fn counted(src: &FaultProxy, dst: &FaultProxy) -> (usize, usize) {
    let http =
        |p: &FaultProxy| p.count(|l| ["GET", "HEAD", "PUT", "POST", "PATCH"].contains(&l.method.as_str()));
    let seen = (http(src), http(dst));
    src.clear_log();
    dst.clear_log();
    seen
}

#[test]
fn syncs_make_the_minimum_requests_and_immutable_warm_syncs_only_list_tags() {
    if !require("docker-registry") {
        return;
    }
    let source = Distribution::start(&DistributionOpts::default());
    let destination = Distribution::start(&DistributionOpts::default());
    // Each image: its repository's config, a base layer every image shares, its own layer.
    for r in 0..REPOSITORIES {
        for t in 0..TAGS {
            let own = format!("own layer {r}/{t}");
            let layers: [&[u8]; 2] = [b"the shared base", own.as_bytes()];
            push_image(&source.url, &format!("team/r{r}"), Some(&format!("v{t}")), &layers, "linux/amd64");
        }
    }
    let (src, dst) = (
        FaultProxy::start(&source.url, Schedule::none()),
        FaultProxy::start(&destination.url, Schedule::none()),
    );
    let dir = TempDir::new("requests");
    let images_file = dir.join("images.json");
    let pairs: Vec<String> = (0..REPOSITORIES)
        .map(|r| format!(r#""{}/team/r{r}": "{}/mirror/r{r}""#, src.host(), dst.host()))
        .collect();
    std::fs::write(&images_file, format!("{{{}}}", pairs.join(", "))).unwrap();
    // Images alone: the minimum counts images; what referrers add is counted in
    // crates/core/tests/referrers.rs and tests/cli_referrers.rs.
    let sync = |extra: &[&str], what: &str| {
        let images = images_file.to_str().unwrap();
        let mut args = vec!["sync", "--images", images, "--no-docker-config", "--referrers", "none"];
        args.extend(extra);
        let run = ferry(&args);
        run.assert_no_panic();
        run.expect(0, what)
    };
    let (r, t) = (REPOSITORIES, REPOSITORIES * TAGS);
    let unique = r + 1 + t;

    sync(&[], "cold sync");
    // Source: a tag list per repository, a manifest GET per tag, a GET per blob.
    // Destination: a tag list per repository, POST + PUT per blob, the base mounted into
    // every further repository, a manifest PUT per tag.
    assert_eq!(counted(&src, &dst), (r + t + unique, r + 2 * unique + (r - 1) + t), "cold");

    sync(&[], "no-op sync");
    // Each side: a tag list per repository and a manifest HEAD per tag.
    assert_eq!(counted(&src, &dst), (r + t, r + t), "no-op");

    sync(&["--immutable", "^v"], "warm sync, every tag immutable");
    assert_eq!(counted(&src, &dst), (r, r), "warm, immutable");
    assert_eq!(src.count(|l| l.target.contains("/tags/list")), 0, "cleared");

    // v3 of r0 moves at the source; the pattern names v0 to v2 only, so v3 is checked and
    // copied, and the immutable ones are not asked about.
    let (moved, _) = push_image(&source.url, "team/r0", Some("v3"), &[b"a new layer"], "linux/amd64");
    src.clear_log();
    dst.clear_log();
    let run = sync(&["--immutable", "^v[0-2]$", "--progress", "plain"], "warm sync, v3 moved");
    assert!(run.stdout.contains("copied 1, skipped 11, failed 0 of 12"), "{}", run.stdout);
    assert_eq!(head_digest(&destination.url, "mirror/r0", "v3").as_deref(), Some(moved.as_str()));
    let heads = src.count(|l| l.method == "HEAD" && l.target.contains("/manifests/"));
    assert_eq!(heads, REPOSITORIES, "one HEAD per v3, none for the immutable tags");
}
