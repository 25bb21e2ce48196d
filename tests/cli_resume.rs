//! `ferry sync --state FILE`: a run SIGKILLed in the middle of a 200 MiB blob, run again
//! with the same state file, between real distribution registries.
//!
//! The source sits behind a proxy that throttles blob bodies, so the kill lands while the
//! blob goes up in chunks; the destination (`ferry serve`) sits behind a proxy that counts
//! the bytes of every request body it passes on. What they prove: the state file holds the
//! upload session the moment it opened; the rerun asks the registry where that session
//! stands and sends at most one chunk more than what the registry was missing (measured at
//! the destination), without opening a new session; the blob and the image arrive whole.
//! distribution 2.8 drops a session whose last chunk was cut: the rerun asks, finds it
//! gone, and uploads afresh. A state file that is not ferry's is ignored with a warning,
//! and the sync still runs.

#[path = "support/mod.rs"]
mod support;

#[path = "support/cli.rs"]
mod cli;

#[path = "support/fault_proxy.rs"]
mod fault_proxy;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cli::{head_digest, push_image};
use fault_proxy::{FaultProxy, Schedule};
use serde_json::Value;
use support::{ferry_bin, random_bytes, request, require, Distribution, DistributionOpts, Ferry, TempDir};

const BLOB: usize = 200 * 1024 * 1024;
/// ferry's default chunk (`ferry_native::DEFAULT_CHUNK_SIZE`).
const CHUNK: u64 = 16 * 1024 * 1024;

fn sync(images: &str, state: &str) -> Command {
    let mut command = Command::new(ferry_bin());
    command.args(["sync", "--images", images, "--state", state, "--progress", "plain", "--no-docker-config"]);
    command
}

/// The session the state file holds, once it holds one.
fn recorded_session(state: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(state).ok()?;
    let value: Value = serde_json::from_str(&text).ok()?;
    value["uploads"].as_array()?.first()?["location"].as_str().map(str::to_owned)
}

/// One image of one `size`-byte layer at `source`, going to `destination` through the
/// proxies; the first run SIGKILLed once three chunks are up. Returns the state file, the
/// destination's proxy, the image's digest and its layer's.
struct Killed {
    _dir: TempDir,
    images: String,
    state: std::path::PathBuf,
    source_proxy: FaultProxy,
    destination_proxy: FaultProxy,
    digest: String,
    layer: String,
}

fn kill_mid_blob(source: &str, destination: &str, size: usize) -> Killed {
    let layer = random_bytes(size, 5);
    let (digest, manifest) = push_image(source, "big/app", Some("v1"), &[&layer], "linux/amd64");
    drop(layer);
    let manifest: Value = serde_json::from_slice(&manifest).unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().to_owned();
    // 40 MiB/s: the kill lands while chunks go up.
    let source_proxy = FaultProxy::start(source, Schedule::throttled(40 * 1024 * 1024));
    let destination_proxy = FaultProxy::start(destination, Schedule::none());
    let dir = TempDir::new("resume");
    let images = dir.join("images.json");
    let rule = format!(r#"{{"{}/big/app:v1": "{}/big/app"}}"#, source_proxy.host(), destination_proxy.host());
    std::fs::write(&images, rule).unwrap();
    let (images, state) = (images.to_str().unwrap().to_owned(), dir.join("state.json"));

    let mut child =
        sync(&images, state.to_str().unwrap()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let is_patch = |l: &fault_proxy::Logged| l.method == "PATCH" && l.status == Some(202);
    while destination_proxy.count(is_patch) < 3 {
        assert!(child.try_wait().unwrap().is_none(), "the sync ended before the kill");
        assert!(Instant::now() < deadline, "three chunks did not go up in 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    assert_eq!(child.wait().unwrap().code(), None, "killed by a signal");
    assert!(recorded_session(&state).is_some(), "the state file holds the upload session");
    // Whatever the registry was still writing settles.
    std::thread::sleep(Duration::from_millis(500));
    Killed { _dir: dir, images, state, source_proxy, destination_proxy, digest, layer }
}

impl Killed {
    /// Runs the sync again at full speed with the same state file; returns the upload
    /// requests the destination received.
    fn rerun(&self) -> Vec<fault_proxy::Logged> {
        self.source_proxy.set_schedule(Schedule::none());
        self.destination_proxy.clear_log();
        let output = sync(&self.images, self.state.to_str().unwrap()).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "the rerun succeeds: {stderr}");
        assert!(!stderr.contains("warning"), "the state file was taken: {stderr}");
        assert_eq!(recorded_session(&self.state), None, "the committed session is forgotten");
        self.destination_proxy.log().into_iter().filter(|l| l.target.contains("/blobs/uploads/")).collect()
    }

    fn assert_arrived(&self, base: &str, size: usize) {
        assert_eq!(head_digest(base, "big/app", "v1").as_deref(), Some(self.digest.as_str()));
        let blob = request("HEAD", &format!("{base}/v2/big/app/blobs/{}", self.layer)).send();
        assert_eq!(blob.header("content-length"), Some(size.to_string().as_str()));
    }
}

#[test]
fn a_sync_killed_mid_blob_sends_only_the_rest_on_the_next_run() {
    if !require("docker-registry") {
        return;
    }
    let source = Distribution::start(&DistributionOpts::default());
    let served = TempDir::new("resume-serve");
    let destination = Ferry::with_root(served.path(), &[]);
    let destination_url = format!("http://{}", destination.host());
    let killed = kill_mid_blob(&source.url, &destination_url, BLOB);
    let location = recorded_session(&killed.state).unwrap();
    let status = request("GET", &location).send();
    assert_eq!(status.status, 204, "the session is still open: {}", status.text());
    let range = status.header("range").expect("Range").to_owned();
    let held: u64 = range.rsplit('-').next().unwrap().parse::<u64>().unwrap() + 1;
    let missing = BLOB as u64 - held;
    assert!(held >= 3 * CHUNK && missing > 0, "killed mid-blob: the registry holds {held} bytes");

    let uploads = killed.rerun();
    assert!(!uploads.iter().any(|l| l.method == "POST"), "no new session: {uploads:?}");
    let sent: u64 =
        uploads.iter().filter(|l| l.method == "PATCH" || l.method == "PUT").filter_map(|l| l.sent).sum();
    eprintln!("resume: the registry held {held} of {BLOB} bytes; the rerun sent {sent} (missing {missing})");
    assert!(sent >= missing, "everything missing was sent: {sent} < {missing}");
    assert!(sent <= missing + CHUNK, "at most one chunk more than missing: {sent} > {missing} + {CHUNK}");
    killed.assert_arrived(&destination_url, BLOB);
}

/// distribution 2.8 cancels a session whose last `PATCH` was cut (the offset in its
/// `_state` no longer matches what it wrote): the rerun finds it gone and starts afresh.
/// (When the kill falls between two chunks, the session survives and the rerun goes on.)
#[test]
fn a_session_distribution_dropped_gives_way_to_a_new_upload() {
    if !require("docker-registry") {
        return;
    }
    const SIZE: usize = 72 * 1024 * 1024;
    let source = Distribution::start(&DistributionOpts::default());
    let destination = Distribution::start(&DistributionOpts::default());
    let killed = kill_mid_blob(&source.url, &destination.url, SIZE);
    let uploads = killed.rerun();
    let asked: Vec<_> = uploads.iter().map(|l| (l.method.as_str(), l.status)).take(2).collect();
    // A kill that fell between two chunks leaves distribution a session it still knows.
    let expected: &[(&str, Option<u16>)] = match asked.first() {
        Some((_, Some(204))) => &[("GET", Some(204)), ("PATCH", Some(202))],
        _ => &[("GET", Some(404)), ("POST", Some(202))],
    };
    assert_eq!(asked, expected, "asked first, then went on or opened anew: {uploads:?}");
    killed.assert_arrived(&destination.url, SIZE);
}

#[test]
fn a_state_file_that_is_not_ferrys_is_ignored_with_a_warning() {
    if !require("docker-registry") {
        return;
    }
    let source = Distribution::start(&DistributionOpts::default());
    let destination = Distribution::start(&DistributionOpts::default());
    let (digest, _) = push_image(&source.url, "small/app", Some("v1"), &[b"layer"], "linux/amd64");
    let dir = TempDir::new("resume-foreign");
    let images = dir.join("images.json");
    let rule = format!(r#"{{"{}/small/app:v1": "{}/small/app"}}"#, source.host(), destination.host());
    std::fs::write(&images, rule).unwrap();
    let state = dir.join("state.json");
    for foreign in [&b"not json at all"[..], br#"{"ferry_state": 1, "job": "0000", "saved_at": 1}"#] {
        std::fs::write(&state, foreign).unwrap();
        let output = sync(images.to_str().unwrap(), state.to_str().unwrap()).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        assert!(stderr.contains("warning: ignoring the state file"), "{stderr}");
        let saved: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
        assert_eq!(saved["ferry_state"], 1, "replaced by this run's state: {saved}");
    }
    assert_eq!(head_digest(&destination.url, "small/app", "v1").as_deref(), Some(digest.as_str()));
}
