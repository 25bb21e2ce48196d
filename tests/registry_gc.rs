//! Garbage collection with real clients: skopeo pushes multi-arch images into a running
//! `ferry serve`, tags are deleted over the API, and `ferry serve gc` (a separate process
//! over the same storage root) frees exactly the blobs nothing references any more,
//! counted and in bytes; `--dry-run` deletes nothing; a skopeo push that lands between
//! the collector's mark and its sweep stays complete and pullable.
//!
//! Needs `skopeo`. With `FERRY_REQUIRE_PEERS=1` (as `scripts/test-all.sh` runs it) or `CI`
//! set a missing tool fails the test; otherwise the test is skipped with a message.

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;
use support::layout::{assert_blobs_identical, build_multiarch_layout};
use support::{ferry_bin, skopeo, Ferry, TempDir};

/// The blobs of an OCI layout: `sha256:<hex>` and their sizes.
fn layout_blobs(layout: &Path) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (format!("sha256:{}", e.file_name().to_string_lossy()), e.metadata().unwrap().len())
        })
        .collect();
    out.sort();
    out
}

/// The digests of the blobs the registry's storage holds.
fn stored_blobs(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Ok(prefixes) = std::fs::read_dir(root.join("blobs/sha256")) else { return out };
    for prefix in prefixes {
        for blob in std::fs::read_dir(prefix.unwrap().path()).unwrap() {
            let blob = blob.unwrap();
            if blob.path().join("data").is_file() {
                out.insert(format!("sha256:{}", blob.file_name().to_string_lossy()));
            }
        }
    }
    out
}

/// Pushes the layout as `<repo>:<tag>` with every platform, digests preserved.
fn push(layout: &Path, ferry: &Ferry, repo: &str, tag: &str) {
    let src = format!("oci:{}:v1", layout.display());
    let dest = format!("docker://{}/{repo}:{tag}", ferry.host());
    skopeo(&["copy", "--all", "--preserve-digests", "--dest-tls-verify=false", &src, &dest]);
}

/// Pulls `<repo>:<tag>` into a fresh layout and checks every blob against `layout`.
fn assert_pullable(layout: &Path, ferry: &Ferry, repo: &str, tag: &str, out: &Path) {
    let src = format!("docker://{}/{repo}:{tag}", ferry.host());
    let dest = format!("oci:{}:v1", out.display());
    skopeo(&["copy", "--all", "--preserve-digests", "--src-tls-verify=false", &src, &dest]);
    assert_blobs_identical(layout, out);
}

fn delete_tag(ferry: &Ferry, repo: &str, tag: &str) {
    let r = support::request("DELETE", &format!("{}/v2/{repo}/manifests/{tag}", ferry.url)).send();
    assert_eq!(r.status, 202, "DELETE tag {repo}:{tag}");
}

/// `ferry serve gc --root <root> <args> --json`, its report parsed.
fn gc(root: &Path, args: &[&str]) -> Value {
    let output = Command::new(ferry_bin())
        .args(["serve", "gc", "--root", root.to_str().unwrap(), "--json"])
        .args(args)
        .output()
        .expect("run ferry serve gc");
    assert!(output.status.success(), "ferry serve gc failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("the report is JSON")
}

fn sizes(blobs: &[(String, u64)]) -> u64 {
    blobs.iter().map(|(_, size)| size).sum()
}

#[test]
fn gc_frees_exactly_the_unreferenced_blobs_and_dry_run_deletes_nothing() {
    if !support::require("skopeo") {
        return;
    }
    let dir = TempDir::new("gc-frees");
    let (kept, gone, root) = (dir.join("kept"), dir.join("gone"), dir.join("data"));
    build_multiarch_layout(&kept, 1);
    build_multiarch_layout(&gone, 2);
    let ferry = Ferry::with_root(&root, &[]);
    push(&kept, &ferry, "gc/app", "kept");
    push(&gone, &ferry, "gc/app", "gone");
    let (kept_blobs, gone_blobs) = (layout_blobs(&kept), layout_blobs(&gone));
    assert_eq!((kept_blobs.len(), gone_blobs.len()), (9, 9));
    delete_tag(&ferry, "gc/app", "gone");
    let before = stored_blobs(&root);
    assert_eq!(before.len(), 18);

    // Without --delete-untagged every manifest is a root: the untagged index keeps all.
    let report = gc(&root, &["--grace", "0"]);
    assert_eq!(
        (report["blobs_deleted"].as_u64(), report["bytes_freed"].as_u64()),
        (Some(0), Some(0)),
        "{report}"
    );
    // Inside the grace period nothing goes either, and the report says why.
    let report = gc(&root, &["--delete-untagged", "--dry-run"]);
    assert_eq!(report["blobs_deleted"], 0, "{report}");
    assert_eq!(report["blobs_kept_in_grace"], 9, "{report}");

    let dry = gc(&root, &["--delete-untagged", "--grace", "0", "--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["blobs_deleted"], 9, "{dry}");
    assert_eq!(dry["bytes_freed"], sizes(&gone_blobs), "{dry}");
    assert_eq!(dry["manifests_deleted"], 3, "{dry}");
    assert_eq!(stored_blobs(&root), before, "--dry-run deleted something");

    let report = gc(&root, &["--delete-untagged", "--grace", "0"]);
    assert_eq!(report["dry_run"], false);
    for key in ["blobs_deleted", "bytes_freed", "manifests_deleted"] {
        assert_eq!(report[key], dry[key], "{key}: {report}");
    }
    let left: BTreeSet<String> = kept_blobs.iter().map(|(d, _)| d.clone()).collect();
    assert_eq!(stored_blobs(&root), left, "exactly the blobs of the deleted tag went");
    assert_pullable(&kept, &ferry, "gc/app", "kept", &dir.join("pulled"));
    // The gone image can be pushed again and pulled whole.
    push(&gone, &ferry, "gc/app", "again");
    assert_pullable(&gone, &ferry, "gc/app", "again", &dir.join("pulled-again"));
    let report = gc(&root, &["--delete-untagged", "--grace", "0"]);
    assert_eq!(report["blobs_deleted"], 0, "nothing left to collect: {report}");
}

#[test]
fn a_push_between_mark_and_sweep_stays_complete_and_pullable() {
    if !support::require("skopeo") {
        return;
    }
    let dir = TempDir::new("gc-concurrent");
    let root = dir.join("data");
    let [reused, garbage, fresh] = [1u64, 2, 3].map(|seed| {
        let layout = dir.join(&format!("layout-{seed}"));
        build_multiarch_layout(&layout, seed);
        layout
    });
    let ferry = Ferry::with_root(&root, &[]);
    push(&reused, &ferry, "gc/app", "old");
    push(&garbage, &ferry, "gc/app", "garbage");
    delete_tag(&ferry, "gc/app", "old");
    delete_tag(&ferry, "gc/app", "garbage");

    let mut collector = Command::new(ferry_bin())
        .args([
            "serve",
            "gc",
            "--root",
            root.to_str().unwrap(),
            "--json",
            "--delete-untagged",
            "--grace",
            "0",
        ])
        .arg("--wait-after-mark")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ferry serve gc");
    let mut stderr = BufReader::new(collector.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "marked", "the collector's first line");

    // Both marked dead by now: the untagged image comes back under a new tag (skopeo finds
    // its blobs present and only pushes manifests), and a new image arrives.
    push(&reused, &ferry, "gc/app", "back");
    push(&fresh, &ferry, "gc/other", "new");
    collector.stdin.take().unwrap().write_all(b"\n").unwrap();
    let output = collector.wait_with_output().unwrap();
    assert!(output.status.success(), "ferry serve gc failed");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();

    let garbage_blobs = layout_blobs(&garbage);
    assert_eq!(report["blobs_deleted"], 9, "only the image nobody pushed again: {report}");
    assert_eq!(report["bytes_freed"], sizes(&garbage_blobs), "{report}");
    let stored = stored_blobs(&root);
    for (digest, _) in layout_blobs(&reused).iter().chain(&layout_blobs(&fresh)) {
        assert!(stored.contains(digest), "{digest} was deleted under a push");
    }
    assert!(garbage_blobs.iter().all(|(d, _)| !stored.contains(d)));
    assert_pullable(&reused, &ferry, "gc/app", "back", &dir.join("pulled-back"));
    assert_pullable(&fresh, &ferry, "gc/other", "new", &dir.join("pulled-new"));
}

#[test]
fn gc_names_storage_it_cannot_collect() {
    let dir = TempDir::new("gc-bad-root");
    let missing = dir.join("missing");
    let cases: [(&[&str], &str); 2] = [
        (&["--root", missing.to_str().unwrap()], "is not a directory"),
        (&["--storage", "memory"], "inside one `ferry serve` process"),
    ];
    for (args, message) in cases {
        let output = Command::new(ferry_bin()).args(["serve", "gc"]).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success() && stderr.contains(message), "{args:?}: {stderr}");
    }
}
