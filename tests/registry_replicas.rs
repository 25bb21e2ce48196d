//! Replicas of `ferry serve` on one storage behind a real load balancer (haproxy, round
//! robin, every request on its own, no stickiness), driven by real clients:
//!
//! - skopeo and `ferry sync` push and pull a lean cut of the bench corpus
//!   (`bench/corpus.py`) through the balancer, digests and bytes unchanged;
//! - a chunked upload whose POST, PATCHes and PUT land on alternate replicas (each
//!   replica's own metrics say which requests it answered) completes;
//! - 20 clients pushing the same blob and the same tag at once leave one valid blob and a
//!   tag on one of the pushed manifests;
//! - a replica killed (SIGKILL) in the middle of pushes loses nothing that was
//!   acknowledged, and `ferry sync`'s retries finish its job through the survivor;
//! - online garbage collection (`storage.gc`) frees exactly the unreferenced blobs while
//!   skopeo pushes through the balancer, and says what it freed in bytes.
//!
//! Where the replicas keep their data is the harness's parameter ([`Storage`]): one root
//! directory here, one bucket of a real S3 server (Garage) in `registry_replicas_s3`,
//! which runs this file again.
//!
//! Needs `haproxy` and `skopeo`. With `FERRY_REQUIRE_PEERS=1` (as `scripts/test-all.sh`
//! runs it) or `CI` set a missing tool fails the test; otherwise the test is skipped with
//! a message.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/fault_proxy.rs"]
mod fault_proxy;
#[path = "support/haproxy.rs"]
mod haproxy;
#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use cli::{ferry, head_digest, OCI_INDEX, OCI_MANIFEST};
use fault_proxy::{FaultProxy, Schedule};
use haproxy::Haproxy;
use serde_json::{json, Value};
use support::layout::{assert_blobs_identical, build_multiarch_layout};
use support::s3::S3Server;
use support::{get, random_bytes, request, require, resolve, sha256, skopeo, Ferry, TempDir};

/// Where the replicas keep their data: all of them share it. The test crate's name picks
/// it: `registry_replicas` shares one root directory, `registry_replicas_s3` one bucket on
/// a real S3 server (Garage).
enum Storage {
    /// One root directory (a shared volume).
    Filesystem(PathBuf),
    /// One bucket; keys under `ferry/`.
    S3 { server: S3Server, bucket: String },
}

impl Storage {
    /// This crate's storage under `dir`; `None` (the test skips) without Garage when peers
    /// are not required.
    fn for_this_crate(dir: &TempDir) -> Option<Storage> {
        if !env!("CARGO_CRATE_NAME").ends_with("_s3") {
            return Some(Storage::Filesystem(dir.join("data")));
        }
        let server = S3Server::start()?;
        let bucket = server.bucket("replicas");
        Some(Storage::S3 { server, bucket })
    }

    /// The `storage.driver` the replicas run.
    fn driver(&self) -> &'static str {
        match self {
            Storage::Filesystem(_) => "filesystem",
            Storage::S3 { .. } => "s3",
        }
    }

    /// The config file's `storage` section, with `gc` (a flow mapping).
    fn yaml(&self, gc: &str) -> String {
        match self {
            Storage::Filesystem(root) => {
                format!("storage: {{driver: filesystem, root: '{}', gc: {gc}}}\n", root.display())
            }
            Storage::S3 { server, bucket } => {
                let section = server.ferry_storage(bucket);
                format!("storage: {}, gc: {gc}}}\n", section.strip_suffix('}').unwrap())
            }
        }
    }

    /// Every file (object key) of the registry's storage, relative to its root, temp
    /// files included.
    fn keys(&self) -> Vec<String> {
        match self {
            Storage::S3 { server, bucket } => server
                .keys(bucket)
                .iter()
                .filter_map(|k| k.strip_prefix("ferry/"))
                .map(str::to_owned)
                .collect(),
            Storage::Filesystem(root) => {
                let mut keys = Vec::new();
                let mut stack = vec![root.clone()];
                while let Some(dir) = stack.pop() {
                    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                        let path = entry.path();
                        if path.is_dir() {
                            stack.push(path);
                        } else if let Ok(key) = path.strip_prefix(root) {
                            keys.push(key.to_string_lossy().into_owned());
                        }
                    }
                }
                keys.sort();
                keys
            }
        }
    }

    /// The digests of the blobs the storage holds (`blobs/sha256/<xx>/<hex>/data`).
    fn blobs(&self) -> BTreeSet<String> {
        self.keys()
            .iter()
            .filter_map(|k| k.strip_prefix("blobs/sha256/")?.strip_suffix("/data"))
            .filter_map(|k| k.split_once('/').map(|(_, hex)| format!("sha256:{hex}")))
            .collect()
    }
}

/// One `ferry serve` process of the cluster.
struct Replica {
    ferry: Ferry,
    log: PathBuf,
    /// `http://127.0.0.1:PORT/metrics`
    metrics: String,
}

impl Replica {
    /// The sum of the samples of `name` whose labels include every `key="value"` given.
    fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let exposition = get(&self.metrics).text();
        exposition
            .lines()
            .filter(|line| line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} ")))
            .filter(|line| labels.iter().all(|(k, v)| line.contains(&format!("{k}=\"{v}\""))))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Replicas on one storage behind haproxy.
struct Cluster {
    replicas: Vec<Replica>,
    lb: Haproxy,
    storage: Storage,
    _dir: TempDir,
}

impl Cluster {
    /// `gc[i]` is replica i's `storage.gc` section (flow YAML); one replica per entry.
    fn start(name: &str, gc: &[&str]) -> Option<Cluster> {
        let dir = TempDir::new(name);
        let storage = Storage::for_this_crate(&dir)?;
        let replicas: Vec<Replica> = gc
            .iter()
            .enumerate()
            .map(|(i, gc)| {
                let config = dir.join(&format!("replica{i}.yaml"));
                std::fs::write(
                    &config,
                    format!(
                        "addr: 127.0.0.1:0\nmetrics_addr: 127.0.0.1:0\nlog: {{level: info}}\n{}",
                        storage.yaml(gc)
                    ),
                )
                .unwrap();
                let log = dir.join(&format!("replica{i}.log"));
                let stderr = Stdio::from(std::fs::File::create(&log).unwrap());
                let ferry = Ferry::with_config_logging_to(&config, &[], stderr).expect("replica starts");
                let text = std::fs::read_to_string(&log).unwrap();
                let driver = format!("driver=\"{}\"", storage.driver());
                assert!(text.contains(&driver), "replica {i} does not run on {driver}: {text}");
                let metrics = text
                    .lines()
                    .find_map(|l| l.strip_prefix("ferry: metrics at "))
                    .unwrap_or_else(|| panic!("replica {i} names no metrics address: {text}"))
                    .trim()
                    .to_owned();
                Replica { ferry, log, metrics }
            })
            .collect();
        let backends: Vec<String> = replicas.iter().map(|r| r.ferry.host()).collect();
        let lb = Haproxy::round_robin(dir.path(), &backends);
        Some(Cluster { replicas, lb, storage, _dir: dir })
    }

    fn url(&self) -> &str {
        &self.lb.url
    }
}

fn peers(tools: &[&str]) -> bool {
    tools.iter().all(|tool| require(tool))
}

/// One image of the bench corpus.
struct Image {
    repo: String,
    tag: String,
    layout: PathBuf,
    digest: String,
}

/// A lean cut of the bench corpus: every repository (the multi-arch one included), one
/// tag each, layers up to 1 MiB.
fn corpus(dir: &Path) -> Vec<Image> {
    let out = dir.join("corpus");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/corpus.py");
    let status = Command::new("python3")
        .arg(&script)
        .args(["--tags", "1", "--max-mib", "1", "--out", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .status()
        .expect("run bench/corpus.py");
    assert!(status.success(), "bench/corpus.py failed");
    let listing: Value = serde_json::from_slice(&std::fs::read(out.join("corpus.json")).unwrap()).unwrap();
    listing["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| Image {
            repo: i["repo"].as_str().unwrap().to_owned(),
            tag: i["tag"].as_str().unwrap().to_owned(),
            layout: out.join(i["layout"].as_str().unwrap()),
            digest: i["digest"].as_str().unwrap().to_owned(),
        })
        .collect()
}

/// Every blob skopeo pulled into `pulled` is the corpus layout's, byte for byte.
fn assert_pulled_identical(image: &Image, pulled: &Path) {
    let mut n = 0;
    for entry in std::fs::read_dir(pulled.join("blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        let bytes = std::fs::read(entry.path()).unwrap();
        let original = std::fs::read(image.layout.join("blobs/sha256").join(entry.file_name()));
        assert!(
            original.is_ok_and(|o| o == bytes),
            "{}:{}: blob {:?} differs from the corpus",
            image.repo,
            image.tag,
            entry.file_name()
        );
        n += 1;
    }
    assert!(n >= 3, "{}:{}: only {n} blobs pulled", image.repo, image.tag);
}

#[test]
fn skopeo_and_ferry_sync_push_and_pull_the_corpus_through_the_balancer() {
    if !peers(&["haproxy", "skopeo", "python3"]) {
        return;
    }
    let Some(cluster) = Cluster::start("replicas-corpus", &["{}", "{}"]) else { return };
    let dir = TempDir::new("replicas-corpus-work");
    let images = corpus(dir.path());
    assert!(images.iter().any(|i| i.repo == "tools/multiarch"), "the corpus has its multi-arch image");
    let lb = cluster.lb.host();
    for image in &images {
        let src = format!("oci:{}:{}", image.layout.display(), image.tag);
        let dest = format!("docker://{lb}/{}:{}", image.repo, image.tag);
        skopeo(&["copy", "--all", "--preserve-digests", "--dest-tls-verify=false", &src, &dest]);
        assert_eq!(
            head_digest(cluster.url(), &image.repo, &image.tag).as_deref(),
            Some(image.digest.as_str())
        );
    }

    // ferry sync pulls everything through the balancer into a mirror, then pushes it back
    // through the balancer under `copy/`.
    let mirror = Ferry::start(&["--storage", "memory"]);
    let to_mirror: serde_json::Map<String, Value> = images
        .iter()
        .map(|i| (format!("{lb}/{}:{}", i.repo, i.tag), json!(format!("{}/{}", mirror.host(), i.repo))))
        .collect();
    let back: serde_json::Map<String, Value> = images
        .iter()
        .map(|i| (format!("{}/{}:{}", mirror.host(), i.repo, i.tag), json!(format!("{lb}/copy/{}", i.repo))))
        .collect();
    for (name, mapping) in [("to-mirror.json", to_mirror), ("back.json", back)] {
        let file = dir.join(name);
        std::fs::write(&file, serde_json::to_vec(&mapping).unwrap()).unwrap();
        ferry(&["sync", "--images", file.to_str().unwrap(), "--progress", "plain"]).expect(0, name);
    }
    for (n, image) in images.iter().enumerate() {
        let copy = format!("copy/{}", image.repo);
        assert_eq!(head_digest(cluster.url(), &copy, &image.tag).as_deref(), Some(image.digest.as_str()));
        let pulled = dir.join(&format!("pulled-{n}"));
        let src = format!("docker://{lb}/{copy}:{}", image.tag);
        skopeo(&["copy", "--all", "--src-tls-verify=false", &src, &format!("oci:{}:x", pulled.display())]);
        assert_pulled_identical(image, &pulled);
    }
    // Both replicas took manifest pushes: the balancer spread the work.
    for (i, replica) in cluster.replicas.iter().enumerate() {
        let puts = replica.metric("ferry_serve_requests_total", &[("route", "manifest"), ("method", "PUT")]);
        assert!(puts > 0.0, "replica {i} stored no manifest");
    }
}

#[test]
fn a_chunked_upload_whose_requests_alternate_replicas_completes() {
    if !peers(&["haproxy"]) {
        return;
    }
    let Some(cluster) = Cluster::start("replicas-chunked", &["{}", "{}"]) else { return };
    let (first, second) = (random_bytes(300_000, 11), random_bytes(200_001, 12));
    let whole: Vec<u8> = [first.as_slice(), second.as_slice()].concat();
    let digest = sha256(&whole);

    let r = request("POST", &format!("{}/v2/chunked/blobs/uploads/", cluster.url())).send();
    assert_eq!(r.status, 202, "{}", r.text());
    let mut location = resolve(cluster.url(), r.header("location").unwrap());
    let mut offset = 0;
    for chunk in [&first, &second] {
        let range = format!("{offset}-{}", offset + chunk.len() - 1);
        let r = request("PATCH", &location)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", &range)
            .body(chunk.clone())
            .send();
        assert_eq!(r.status, 202, "PATCH {range}: {}", r.text());
        offset += chunk.len();
        assert_eq!(r.header("range"), Some(format!("0-{}", offset - 1).as_str()));
        location = resolve(cluster.url(), r.header("location").unwrap());
    }
    let separator = if location.contains('?') { '&' } else { '?' };
    let r = request("PUT", &format!("{location}{separator}digest={digest}")).send();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(get(&format!("{}/v2/chunked/blobs/{digest}", cluster.url())).body, whole);

    // Round robin, each request on its own: each replica answered one PATCH and one of
    // the POST and the PUT, so none of them saw the whole upload.
    for (i, replica) in cluster.replicas.iter().enumerate() {
        let uploads = |method| {
            replica.metric("ferry_serve_requests_total", &[("route", "blob_upload"), ("method", method)])
        };
        assert_eq!(uploads("PATCH"), 1.0, "replica {i}: PATCHes");
        assert_eq!(uploads("POST") + uploads("PUT"), 1.0, "replica {i}: POST and PUT");
    }
}

/// A manifest of `config` and `layer`, told apart by `client`.
fn manifest(config: &[u8], layer: &[u8], client: usize) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha256(layer), "size": layer.len()}],
        "annotations": {"client": client.to_string()},
    }))
    .unwrap()
}

#[test]
fn twenty_clients_pushing_one_blob_and_one_tag_leave_one_blob_and_one_winner() {
    if !peers(&["haproxy"]) {
        return;
    }
    const CLIENTS: usize = 20;
    let Some(cluster) = Cluster::start("replicas-race", &["{}", "{}"]) else { return };
    let layer = Arc::new(random_bytes(512 * 1024, 21));
    let config = Arc::new(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec(),
    );
    let start = Arc::new(Barrier::new(CLIENTS));
    let url = cluster.url().to_owned();
    let pushed: Vec<String> = (0..CLIENTS)
        .map(|client| {
            let (url, layer, config, start) = (url.clone(), layer.clone(), config.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                cli::push_blob(&url, "race/app", &layer);
                cli::push_blob(&url, "race/app", &config);
                cli::put_manifest(
                    &url,
                    "race/app",
                    "latest",
                    OCI_MANIFEST,
                    &manifest(&config, &layer, client),
                )
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().expect("a client failed"))
        .collect();

    let winner = head_digest(cluster.url(), "race/app", "latest").expect("the tag exists");
    assert!(pushed.contains(&winner), "the tag points at {winner}, which nobody pushed");
    let r = request("GET", &format!("{}/v2/race/app/manifests/latest", cluster.url()))
        .header("Accept", &format!("{OCI_MANIFEST}, {OCI_INDEX}"))
        .send();
    assert_eq!(sha256(&r.body), winner, "the tag's bytes are not its digest's");
    for digest in &pushed {
        let r = get(&format!("{}/v2/race/app/manifests/{digest}", cluster.url()));
        assert_eq!(sha256(&r.body), *digest);
    }
    // One copy of the layer, whole and valid, and nothing left over in storage.
    let hex = sha256(&layer).trim_start_matches("sha256:").to_owned();
    let blob_dir = format!("blobs/sha256/{}/{hex}/", &hex[..2]);
    let keys = cluster.storage.keys();
    let copies: Vec<&String> = keys.iter().filter(|k| k.starts_with(&blob_dir)).collect();
    assert_eq!(copies, vec![&format!("{blob_dir}data")], "the layer is stored other than as one copy");
    let left: Vec<&String> =
        keys.iter().filter(|k| k.contains("/_uploads/") || k.contains(".tmp-")).collect();
    assert!(left.is_empty(), "upload sessions or temp files left behind: {left:?}");
    let r = get(&format!("{}/v2/race/app/blobs/{}", cluster.url(), sha256(&layer)));
    assert_eq!((r.status, sha256(&r.body)), (200, sha256(&layer)));
    // Through both replicas.
    let puts: Vec<f64> = cluster
        .replicas
        .iter()
        .map(|r| r.metric("ferry_serve_requests_total", &[("route", "manifest"), ("method", "PUT")]))
        .collect();
    assert!(puts.iter().all(|&n| n > 0.0) && puts.iter().sum::<f64>() == CLIENTS as f64, "{puts:?}");
}

/// One raw push outcome: what the registry acknowledged with 201.
#[derive(Default)]
struct Acked {
    blobs: Vec<String>,
    manifests: Vec<(String, String)>,
}

/// What the pusher is told: go on, hold still (no request of its own in flight), stop.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pusher {
    Run,
    Hold,
    Stop,
}

/// The status of a request, or `None` when the connection broke (the killed replica's).
fn status_of(request: support::Request) -> Option<u16> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| request.send().status)).ok()
}

/// Pushes small images through `url` until told to stop; records what got 201. Failures
/// (the requests a killed replica was answering) are expected and only counted.
fn push_until(url: &str, control: &Mutex<Pusher>, acked: &Mutex<Acked>) -> usize {
    let mut failures = 0;
    for i in 0u64.. {
        match *control.lock().unwrap() {
            Pusher::Stop => break,
            Pusher::Hold => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            Pusher::Run => {}
        }
        let layer = random_bytes(64 * 1024 + i as usize, 1000 + i);
        let config = format!(r#"{{"architecture":"amd64","os":"linux","n":{i}}}"#).into_bytes();
        let mut whole = true;
        for blob in [&layer, &config] {
            let digest = sha256(blob);
            let post = request("POST", &format!("{url}/v2/kill/app/blobs/uploads/?digest={digest}"))
                .body(blob.clone());
            if status_of(post) == Some(201) {
                acked.lock().unwrap().blobs.push(digest);
            } else {
                failures += 1;
                whole = false;
            }
        }
        if !whole {
            continue;
        }
        let bytes = manifest(&config, &layer, i as usize);
        let put = request("PUT", &format!("{url}/v2/kill/app/manifests/t{i}"))
            .header("Content-Type", OCI_MANIFEST)
            .body(bytes.clone());
        if status_of(put) == Some(201) {
            acked.lock().unwrap().manifests.push((format!("t{i}"), sha256(&bytes)));
        } else {
            failures += 1;
        }
    }
    failures
}

#[test]
fn killing_a_replica_mid_push_loses_nothing_acknowledged() {
    if !peers(&["haproxy"]) {
        return;
    }
    let Some(mut cluster) = Cluster::start("replicas-kill", &["{}", "{}"]) else { return };
    let source = Ferry::start(&["--storage", "memory"]);
    let mut tags = Vec::new();
    for n in 0..6 {
        let layer = random_bytes(1024 * 1024, 300 + n);
        let tag = format!("v{n}");
        let (digest, _) = cli::push_image(&source.url, "sync/app", Some(&tag), &[&layer], "linux/amd64");
        tags.push((tag, digest));
    }
    // Read at 2 MB/s, each layer streams into a replica for half a second.
    let slow = FaultProxy::start(&source.url, Schedule::throttled(2_000_000));
    let dir = TempDir::new("replicas-kill-work");
    let images = dir.join("images.json");
    let mapping: serde_json::Map<String, Value> = tags
        .iter()
        .map(|(tag, _)| {
            (format!("{}/sync/app:{tag}", slow.host()), json!(format!("{}/sync/app", cluster.lb.host())))
        })
        .collect();
    std::fs::write(&images, serde_json::to_vec(&mapping).unwrap()).unwrap();

    let control = Arc::new(Mutex::new(Pusher::Run));
    let acked = Arc::new(Mutex::new(Acked::default()));
    let pusher = {
        let (url, control, acked) = (cluster.url().to_owned(), control.clone(), acked.clone());
        std::thread::spawn(move || push_until(&url, &control, &acked))
    };
    let docker = TempDir::new("docker-config");
    let mut sync = Command::new(support::ferry_bin())
        .args(["sync", "--images", images.to_str().unwrap(), "--progress", "json", "--proc", "2"])
        .env("DOCKER_CONFIG", docker.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ferry sync");
    // Once the sync has moved a blob, SIGKILL the replica that is receiving one of the
    // sync's upload bodies right then (its upload-bytes counter grows while the pusher
    // holds still).
    let receiving = |r: &Replica| r.metric("ferry_serve_received_bytes_total", &[("route", "blob_upload")]);
    let mut events = Vec::new();
    let mut killed = None;
    for line in BufReader::new(sync.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if killed.is_none() && line.contains(r#""event":"blob_done""#) {
            *control.lock().unwrap() = Pusher::Hold;
            std::thread::sleep(Duration::from_millis(50));
            let before: Vec<f64> = cluster.replicas.iter().map(receiving).collect();
            std::thread::sleep(Duration::from_millis(100));
            let after: Vec<f64> = cluster.replicas.iter().map(receiving).collect();
            if let Some(i) = (0..before.len()).find(|&i| after[i] > before[i]) {
                cluster.replicas[i].ferry.kill();
                killed = Some(i);
            }
            *control.lock().unwrap() = Pusher::Run;
        }
        events.push(line);
    }
    let status = sync.wait().unwrap();
    assert!(killed.is_some(), "no replica was receiving an upload when the sync moved a blob: {events:?}");
    assert!(status.success(), "ferry sync did not finish through the survivor: {events:?}");
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["status"], "succeeded", "{last}");
    assert!(last["summary"]["retries"].as_u64() >= Some(1), "the kill cut no transfer of the sync: {last}");
    // The pusher goes on through the survivor a little longer.
    std::thread::sleep(Duration::from_millis(500));
    *control.lock().unwrap() = Pusher::Stop;
    let failures = pusher.join().unwrap();

    for (tag, digest) in &tags {
        assert_eq!(
            head_digest(cluster.url(), "sync/app", tag).as_deref(),
            Some(digest.as_str()),
            "sync/app:{tag}"
        );
    }
    let acked = acked.lock().unwrap();
    assert!(
        acked.manifests.len() >= 2,
        "the pusher was acknowledged only {} manifests",
        acked.manifests.len()
    );
    for digest in &acked.blobs {
        let r = get(&format!("{}/v2/kill/app/blobs/{digest}", cluster.url()));
        assert_eq!((r.status, sha256(&r.body)), (200, digest.clone()), "acknowledged blob lost");
    }
    for (tag, digest) in &acked.manifests {
        assert_eq!(
            head_digest(cluster.url(), "kill/app", tag).as_deref(),
            Some(digest.as_str()),
            "kill/app:{tag}"
        );
    }
    eprintln!(
        "acknowledged before and after the kill: {} blobs, {} manifests; {failures} requests failed; the sync's summary: {}",
        acked.blobs.len(),
        acked.manifests.len(),
        last["summary"]
    );
}

#[test]
fn online_gc_frees_the_unreferenced_blobs_while_skopeo_pushes() {
    if !peers(&["haproxy", "skopeo"]) {
        return;
    }
    // Replica 0 collects every second; a blob must be 2 s old to go.
    let gc = "{enabled: true, interval_secs: 1, grace_secs: 2, delete_untagged: true}";
    let Some(cluster) = Cluster::start("replicas-gc", &[gc, "{}"]) else { return };
    let dir = TempDir::new("replicas-gc-work");
    let lb = cluster.lb.host();
    let push = |layout: &Path, reference: &str| {
        let src = format!("oci:{}:v1", layout.display());
        let dest = format!("docker://{lb}/{reference}");
        skopeo(&["copy", "--all", "--preserve-digests", "--dest-tls-verify=false", &src, &dest]);
    };
    let garbage = dir.join("garbage");
    build_multiarch_layout(&garbage, 40);
    push(&garbage, "gc/app:old");
    let r = request("DELETE", &format!("{}/v2/gc/app/manifests/old", cluster.url())).send();
    assert_eq!(r.status, 202);
    let garbage_blobs = cluster.storage.blobs();
    assert_eq!(garbage_blobs.len(), 9);
    let garbage_bytes: u64 = std::fs::read_dir(garbage.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();

    // Pushes while the collector runs: each image must stay whole.
    let mut live = Vec::new();
    let mut live_blobs = BTreeSet::new();
    let started = Instant::now();
    for n in 0.. {
        let layout = dir.join(&format!("live{n}"));
        build_multiarch_layout(&layout, 41 + n);
        push(&layout, &format!("gc/app:live{n}"));
        for entry in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
            live_blobs.insert(format!("sha256:{}", entry.unwrap().file_name().to_string_lossy()));
        }
        live.push(layout);
        let collected = cluster.storage.blobs().is_disjoint(&garbage_blobs);
        if collected && n >= 2 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the garbage was not collected within a minute");
    }
    assert!(live_blobs.is_disjoint(&garbage_blobs));
    assert_eq!(cluster.storage.blobs(), live_blobs, "the store holds other blobs than the live images'");
    for (n, layout) in live.iter().enumerate() {
        let out = dir.join(&format!("pulled{n}"));
        let src = format!("docker://{lb}/gc/app:live{n}");
        skopeo(&["copy", "--all", "--src-tls-verify=false", &src, &format!("oci:{}:v1", out.display())]);
        assert_blobs_identical(layout, &out);
    }
    let collector = &cluster.replicas[0];
    let freed = collector.metric("ferry_serve_gc_freed_bytes_total", &[]);
    assert_eq!(freed as u64, garbage_bytes, "freed bytes counted");
    assert_eq!(collector.metric("ferry_serve_gc_deleted_blobs_total", &[]), 9.0);
    assert!(collector.metric("ferry_serve_gc_runs_total", &[("result", "ok")]) >= 2.0);
    assert!(
        collector.log().contains(&format!("bytes_freed={garbage_bytes}")),
        "the log does not say what was freed:\n{}",
        collector.log()
    );
    assert_eq!(cluster.replicas[1].metric("ferry_serve_gc_runs_total", &[]), 0.0, "replica 1 collects too");
    eprintln!(
        "{} multi-arch pushes during {} collections; {garbage_bytes} bytes freed",
        live.len(),
        collector.metric("ferry_serve_gc_runs_total", &[])
    );
}
