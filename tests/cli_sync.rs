//! `ferry sync`, `copy`, `diff`, `ls` and `inspect` as processes, between `ferry serve`
//! processes (and a real distribution registry when `docker-registry` is installed).
//!
//! What they prove: image-syncer's images file (JSON and YAML), auth file and combined
//! config all drive a sync; digests survive, an index's included; a second run skips
//! everything; a dry run writes nothing; `--progress json` ends with `job_finished`;
//! `--report` is JSON with every image; `diff` says 1 before and 0 after a sync.

#[path = "support/mod.rs"]
mod support;

#[path = "support/cli.rs"]
mod cli;

use cli::{ferry, has_blob, head_digest, push_image, Sample, OCI_INDEX, OCI_MANIFEST};
use serde_json::Value;
use support::{get, random_bytes, request, require, Distribution, DistributionOpts, Ferry, TempDir};

fn memory_registry() -> Ferry {
    Ferry::start(&["--storage", "memory"])
}

/// Every tag of the sample, and every child of its index, has the same digest on both sides.
fn assert_same_digests(sample: &Sample, src: &str, dst: &str, prefix: &str) {
    for (repo, tag, digest) in &sample.tags {
        let dst_repo = format!("{prefix}{repo}");
        assert_eq!(head_digest(src, repo, tag).as_deref(), Some(digest.as_str()), "{src}/{repo}:{tag}");
        assert_eq!(
            head_digest(dst, &dst_repo, tag).as_deref(),
            Some(digest.as_str()),
            "{dst}/{dst_repo}:{tag} does not have the source's digest"
        );
        let manifest = request("GET", &format!("{dst}/v2/{dst_repo}/manifests/{digest}"))
            .header("Accept", &format!("{OCI_MANIFEST}, {OCI_INDEX}"))
            .send();
        assert_eq!(manifest.status, 200);
        let manifest = manifest.json();
        if manifest["mediaType"] == OCI_INDEX {
            let children = manifest["manifests"].as_array().unwrap();
            assert_eq!(children.len(), 2, "both platforms of {dst_repo}:{tag}");
            for child in children {
                let child = child["digest"].as_str().unwrap();
                assert_eq!(head_digest(dst, &dst_repo, child).as_deref(), Some(child));
            }
        } else {
            for layer in manifest["layers"].as_array().unwrap() {
                assert!(has_blob(dst, &dst_repo, layer["digest"].as_str().unwrap()));
            }
        }
    }
}

fn images_json(src: &str, dst: &str, prefix: &str) -> String {
    format!(
        r#"{{
  "{src}/library/app": "{dst}/{prefix}library/app",
  "{src}/library/multi:1": "{dst}/{prefix}library/multi"
}}
"#
    )
}

fn read_json(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON ({e}):\n{text}", path.display()))
}

#[test]
fn sync_with_an_images_json_keeps_digests_then_skips_everything() {
    let (src, dst) = (memory_registry(), memory_registry());
    let sample = Sample::push(&src.url);
    let dir = TempDir::new("cli-sync-json");
    let images = dir.join("images.json");
    std::fs::write(&images, images_json(&src.host(), &dst.host(), "json/")).unwrap();
    let images = images.to_str().unwrap();

    // A dry run looks at both sides and writes nothing.
    let report = dir.join("dry.json");
    let run = ferry(&["sync", "--images", images, "--dry-run", "--report", report.to_str().unwrap()])
        .expect(0, "dry run");
    assert!(run.stdout.contains("dry run"), "{}", run.stdout);
    assert!(run.stdout.contains("would copy 3"), "{}", run.stdout);
    for (repo, tag, _) in &sample.tags {
        assert_eq!(head_digest(&dst.url, &format!("json/{repo}"), tag), None, "a dry run wrote {repo}:{tag}");
    }
    let dry = read_json(&report);
    assert_eq!(dry["summary"]["dry_run"], true);
    assert!(dry["images"].as_array().unwrap().iter().all(|i| i["outcome"] == "would_copy"), "{dry}");

    // The real run: NDJSON on stdout, the last line job_finished; a report with every image.
    let report = dir.join("report.json");
    let run =
        ferry(&["sync", "--images", images, "--progress", "json", "--report", report.to_str().unwrap()])
            .expect(0, "sync");
    let lines: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not an NDJSON line ({e}): {l}")))
        .collect();
    let last = lines.last().expect("events");
    assert_eq!(last["event"], "job_finished", "{}", run.stdout);
    assert_eq!(last["status"], "succeeded");
    assert_eq!(last["summary"]["copied"], 3);
    assert_eq!(lines.iter().filter(|e| e["event"] == "job_finished").count(), 1);
    assert!(lines.iter().any(|e| e["event"] == "plan_ready"));
    let report = read_json(&report);
    assert_eq!(report["status"], "succeeded");
    let outcomes: Vec<&str> =
        report["images"].as_array().unwrap().iter().map(|i| i["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["copied"; 3], "{report}");
    assert_same_digests(&sample, &src.url, &dst.url, "json/");

    // Again: everything is skipped.
    let run = ferry(&["sync", "--images", images, "--progress", "plain"]).expect(0, "second sync");
    assert!(run.stdout.contains("copied 0, skipped 3, failed 0 of 3"), "{}", run.stdout);
    assert!(run.stderr.contains("skipped "), "{}", run.stderr);

    // Every tag immutable: app's two listed tags are not checked again (one tags/list per
    // side); multi:1, named by its tag, still is (a HEAD per side). With referrers off
    // that is all; on (the default), multi:1's index is read for its children, the
    // referrers of it and of its two children are asked for, and its repository's tags
    // are listed for cosign's: 5 more.
    for (referrers, requests) in [("none", 4), ("all", 9)] {
        let run = ferry(&[
            "sync",
            "--images",
            images,
            "--immutable",
            ".",
            "--progress",
            "plain",
            "--referrers",
            referrers,
        ])
        .expect(0, "immutable sync");
        assert!(run.stdout.contains("copied 0, skipped 3, failed 0 of 3"), "{}", run.stdout);
        assert!(run.stdout.contains("2 of the skipped: immutable tags, not checked"), "{}", run.stdout);
        assert!(run.stdout.contains(&format!("requests: {requests},")), "{referrers}: {}", run.stdout);
    }
    let run = ferry(&["sync", "--images", images, "--immutable", ".", "--progress", "plain"])
        .expect(0, "immutable sync");
    assert!(run.stderr.contains("2 immutable tag(s) already at the destination"), "{}", run.stderr);
    let run = ferry(&["sync", "--images", images, "--immutable", "("]).expect(2, "a bad pattern");
    assert!(run.stderr.contains("--immutable \"(\""), "{}", run.stderr);
}

#[test]
fn sync_with_yaml_files_and_a_combined_config() {
    let (src, dst) = (memory_registry(), memory_registry());
    let sample = Sample::push(&src.url);
    let dir = TempDir::new("cli-sync-yaml");
    let (s, d) = (src.host(), dst.host());

    // image-syncer's --auth and --images, both YAML.
    let auth = dir.join("auth.yaml");
    std::fs::write(&auth, format!("{s}:\n  insecure: true\n{d}:\n  insecure: true\n")).unwrap();
    let images = dir.join("images.yaml");
    std::fs::write(
        &images,
        format!("{s}/library/app: {d}/yaml/library/app\n{s}/library/multi:1:\n  - {d}/yaml/library/multi\n"),
    )
    .unwrap();
    let run = ferry(&[
        "sync",
        "--auth",
        auth.to_str().unwrap(),
        "--images",
        images.to_str().unwrap(),
        "--proc",
        "2",
        "--progress",
        "plain",
    ])
    .expect(0, "sync with yaml");
    assert!(run.stdout.contains("copied 3, skipped 0, failed 0 of 3"), "{}", run.stdout);
    assert!(
        run.stderr.contains(&format!("copied {s}/library/app:v1 -> {d}/yaml/library/app:v1 (")),
        "{}",
        run.stderr
    );
    assert_same_digests(&sample, &src.url, &dst.url, "yaml/");

    // image-syncer's combined --config (JSON), with ${ENV} in a destination.
    let config = dir.join("config.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"auth": {{"{s}": {{"insecure": true}}}}, "images": {{"{s}/library/app": "{d}/${{FERRY_TEST_PREFIX}}/library/app", "{s}/library/multi:1": "{d}/config/library/multi"}}}}"#
        ),
    )
    .unwrap();
    let run = cli::Run::from_command(
        std::process::Command::new(support::ferry_bin())
            .args(["sync", "--config", config.to_str().unwrap(), "--no-docker-config", "--progress", "plain"])
            .env("FERRY_TEST_PREFIX", "config"),
    )
    .expect(0, "sync with a combined config");
    assert!(run.stdout.contains("copied 3"), "{}", run.stdout);
    assert_same_digests(&sample, &src.url, &dst.url, "config/");
}

#[test]
fn diff_says_different_then_in_sync_and_ls_and_inspect_read_the_result() {
    let (src, dst) = (memory_registry(), memory_registry());
    let sample = Sample::push(&src.url);
    let (s, d) = (src.host(), dst.host());
    // The destination has an older v1 and a tag the source lacks.
    push_image(&dst.url, "library/app", Some("v1"), &[&random_bytes(1000, 9)], "linux/amd64");
    push_image(&dst.url, "library/app", Some("old"), &[&random_bytes(1000, 10)], "linux/amd64");

    let repo_src = format!("{s}/library/app");
    let repo_dst = format!("{d}/library/app");
    let run = ferry(&["diff", &repo_src, &repo_dst]).expect(1, "diff before the sync");
    assert!(run.stdout.starts_with("0 in sync, 1 missing, 1 different, 1 extra"), "{}", run.stdout);
    for row in ["v1   different", "v2   missing", "old  extra"] {
        assert!(run.stdout.contains(row), "no row {row:?} in\n{}", run.stdout);
    }
    let run = ferry(&["diff", &repo_src, &repo_dst, "--json"]).expect(1, "diff --json");
    let report: Value = serde_json::from_str(&run.stdout).expect("diff --json prints JSON");
    assert_eq!(report["missing"], 1);
    assert_eq!(report["different"], 1);
    assert_eq!(report["extra"], 1);

    // Registry against registry: library/multi is missing entirely.
    let run = ferry(&["diff", &s, &d]).expect(1, "registry diff");
    assert!(run.stdout.contains("library/multi"), "{}", run.stdout);

    ferry(&["copy", &format!("{s}/library/app:v1"), &format!("{d}/library/app"), "--progress", "plain"])
        .expect(0, "copy v1");
    ferry(&["copy", &format!("{s}/library/app:v2"), &format!("{d}/library/app:v2")]).expect(0, "copy v2");
    ferry(&["copy", "--all", &format!("{s}/library/multi:1"), &format!("{d}/library/multi:1")])
        .expect(0, "copy the index");
    assert_same_digests(&sample, &src.url, &dst.url, "");

    // `old` is still extra at the destination; with it gone from the picture, v1 and v2 agree.
    let run = ferry(&["diff", &repo_src, &repo_dst, "--details"]).expect(1, "diff with the extra tag");
    assert!(run.stdout.starts_with("2 in sync, 0 missing, 0 different, 1 extra"), "{}", run.stdout);
    let run = ferry(&["diff", &format!("{s}/library/multi"), &format!("{d}/library/multi"), "--details"])
        .expect(0, "diff after the copy");
    assert!(run.stdout.starts_with("1 in sync, 0 missing, 0 different, 0 extra"), "{}", run.stdout);
    assert!(run.stdout.contains("linux/amd64,linux/arm64"), "{}", run.stdout);

    let run = ferry(&["ls", &repo_src]).expect(0, "ls");
    let v1 = &sample.tags[0].2;
    assert!(run.stdout.contains(&format!("v1   {v1}")), "{}", run.stdout);
    let run = ferry(&["ls", &repo_src, "--json"]).expect(0, "ls --json");
    let tags: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(tags.as_array().unwrap().len(), 2);

    let multi = &sample.tags[2].2;
    let run = ferry(&["inspect", &format!("{s}/library/multi:1")]).expect(0, "inspect");
    assert!(run.stdout.contains(multi.as_str()), "{}", run.stdout);
    assert!(run.stdout.contains("linux/amd64, linux/arm64"), "{}", run.stdout);
    assert!(run.stdout.contains(OCI_INDEX), "inspect shows the media type:\n{}", run.stdout);
    let by_digest = format!("{s}/library/multi@{multi}");
    let run = ferry(&["inspect", &by_digest, "--json"]).expect(0, "inspect by digest");
    let row: Value = serde_json::from_str(&run.stdout).expect("inspect --json prints JSON");
    assert_eq!(row["digest"], multi.as_str());
    assert_eq!(row["mediaType"], OCI_INDEX);
    assert_eq!(row["tag"], Value::Null);
    assert!(row["size"].as_u64().unwrap() > 0, "{row}");
    let run = ferry(&["inspect", &format!("{s}/library/multi:2")]).expect(1, "inspect a missing tag");
    assert!(run.stderr.starts_with("error: ") && run.stderr.contains("no such image"), "{}", run.stderr);
}

#[test]
fn copy_with_a_platform_rewrites_the_index() {
    let (src, dst) = (memory_registry(), memory_registry());
    Sample::push(&src.url);
    let (s, d) = (src.host(), dst.host());
    ferry(&[
        "copy",
        "--platform",
        "linux/arm64",
        &format!("{s}/library/multi:1"),
        &format!("{d}/only/arm:1"),
    ])
    .expect(0, "copy one platform");
    let index = get(&format!("{}/v2/only/arm/manifests/1", dst.url));
    assert_eq!(index.status, 200);
    let index = index.json();
    let children = index["manifests"].as_array().unwrap();
    assert_eq!(children.len(), 1, "{index}");
    assert_eq!(children[0]["platform"]["architecture"], "arm64");
}

#[test]
fn sync_into_a_real_distribution_registry() {
    if !require("docker-registry") {
        return;
    }
    let src = memory_registry();
    let dist = Distribution::start(&DistributionOpts::default());
    let sample = Sample::push(&src.url);
    let dir = TempDir::new("cli-sync-distribution");
    let images = dir.join("images.json");
    std::fs::write(&images, images_json(&src.host(), &dist.host(), "mirror/")).unwrap();
    let images = images.to_str().unwrap();
    ferry(&["sync", "--images", images, "--progress", "plain"]).expect(0, "sync into distribution");
    assert_same_digests(&sample, &src.url, &dist.url, "mirror/");
    let run = ferry(&["sync", "--images", images, "--progress", "plain"]).expect(0, "again");
    assert!(run.stdout.contains("copied 0, skipped 3"), "{}", run.stdout);
    ferry(&[
        "diff",
        &format!("{}/library/multi", src.host()),
        &format!("{}/mirror/library/multi", dist.host()),
    ])
    .expect(0, "diff against distribution");
}
