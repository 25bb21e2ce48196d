//! Crash safety and bounded memory of the filesystem driver.
//!
//! The server is SIGKILLed in the middle of a large chunked upload and restarted on the
//! same directory: no blob is visible for that digest, the store holds only whole,
//! verified blobs and no temp files, and the upload resumes from the last committed
//! chunk (or restarts from scratch). Then SIGKILL at seeded random moments of a burst of
//! concurrent blob and manifest pushes: after each restart every listed tag resolves,
//! every blob that answers is whole, no temp file is left, and pushes succeed. And temp
//! files left by a crash are removed when the server starts.

#[path = "support/mod.rs"]
mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_core::digest::{Digest, Hasher};
use support::{get, head, request, resolve, sha256, Ferry, TempDir};

const MIB: usize = 1024 * 1024;

/// Every `.tmp-*` file under `root`.
fn temp_files(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                found.push(entry.path());
            } else if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(entry.path());
            }
        }
    }
    found
}

/// Walks the store: every blob's content matches the digest it is filed under, and no
/// temp file or partial blob is left in the blob store.
fn assert_store_consistent(root: &Path) {
    let mut stack = vec![root.join("blobs")];
    let mut blobs = 0;
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(
                !name.starts_with(".tmp-"),
                "temp file left in the blob store: {}",
                entry.path().display()
            );
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                assert_eq!(name, "data", "unexpected file {}", entry.path().display());
                let hex = dir.file_name().unwrap().to_string_lossy().into_owned();
                let bytes = std::fs::read(entry.path()).unwrap();
                assert_eq!(sha256(&bytes), format!("sha256:{hex}"), "blob content does not match its name");
                blobs += 1;
            }
        }
    }
    assert!(blobs > 0, "the store should hold the blobs pushed before the crash");
}

#[test]
fn sigkill_during_a_large_upload_leaves_the_store_consistent() {
    let dir = TempDir::new("crash");
    let root = dir.join("data");
    let blob = support::random_bytes(48 * MIB, 42);
    let digest = sha256(&blob);
    let first = 8 * MIB;

    let mut ferry = Ferry::with_root(&root, &[]);
    // Something whole in the store already, to check it survives.
    let small = b"pushed before the crash".to_vec();
    let r = request("POST", &format!("{}/v2/crash/test/blobs/uploads/?digest={}", ferry.url, sha256(&small)))
        .body(small.clone())
        .send();
    assert_eq!(r.status, 201);

    let r = request("POST", &format!("{}/v2/crash/test/blobs/uploads/", ferry.url)).send();
    let session_path = r.header("location").unwrap().to_owned();
    let r = request("PATCH", &resolve(&ferry.url, &session_path))
        .header("Content-Range", &format!("0-{}", first - 1))
        .body(blob[..first].to_vec())
        .send();
    assert_eq!(r.status, 202);

    // The second chunk is cut off: half of it is sent, then the server is killed.
    let rest = &blob[first..];
    let pending = request("PATCH", &resolve(&ferry.url, &session_path))
        .header("Content-Range", &format!("{first}-{}", blob.len() - 1))
        .start(false, Some(rest.len()));
    let mut stream = pending;
    stream.write_all(&rest[..rest.len() / 2]).unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    ferry.kill();
    drop(stream);

    // The killed request left bytes past the committed length in the session's file;
    // they must never count.
    let id = session_path.rsplit('/').next().unwrap();
    let on_disk =
        std::fs::metadata(root.join(format!("repositories/crash/test/_uploads/{id}/data"))).unwrap().len();
    eprintln!("upload file after the crash: {on_disk} bytes, {first} committed");
    assert!(on_disk >= first as u64);

    // Restart on the same directory.
    let ferry = Ferry::with_root(&root, &[]);
    assert_eq!(
        head(&format!("{}/v2/crash/test/blobs/{digest}", ferry.url)).status,
        404,
        "no partial blob is visible"
    );
    assert_store_consistent(&root);
    assert_eq!(get(&format!("{}/v2/crash/test/blobs/{}", ferry.url, sha256(&small))).body, small);

    // The session survived with exactly the committed chunk.
    let session = resolve(&ferry.url, &session_path);
    let r = get(&session);
    assert_eq!(r.status, 204);
    assert_eq!(r.header("range"), Some(format!("0-{}", first - 1).as_str()));
    // Resume from there.
    let r = request("PATCH", &session)
        .header("Content-Range", &format!("{first}-{}", blob.len() - 1))
        .body(rest.to_vec())
        .send();
    assert_eq!(r.status, 202, "{}", r.text());
    let r = request("PUT", &format!("{session}?digest={digest}")).send();
    assert_eq!(r.status, 201, "{}", r.text());
    let r = get(&format!("{}/v2/crash/test/blobs/{digest}", ferry.url));
    assert_eq!(r.body.len(), blob.len());
    assert_eq!(sha256(&r.body), digest);
    assert_store_consistent(&root);

    // Restarting an upload from scratch works as well.
    let other = support::random_bytes(3 * MIB, 7);
    let r = request("POST", &format!("{}/v2/crash/test/blobs/uploads/?digest={}", ferry.url, sha256(&other)))
        .body(other.clone())
        .send();
    assert_eq!(r.status, 201);
}

/// Peak resident memory of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn memory_does_not_grow_with_blob_size() {
    if !Path::new("/proc/self/status").exists() {
        eprintln!("SKIP: no /proc to read peak memory from");
        return;
    }
    let dir = TempDir::new("memory");
    let ferry = Ferry::with_root(&dir.join("data"), &[]);
    let size = 256 * MIB;
    let r = request("POST", &format!("{}/v2/big/blob/blobs/uploads/", ferry.url)).send();
    let session = resolve(&ferry.url, r.header("location").unwrap());

    // Stream 256 MiB in one PATCH, generated on the fly.
    let mut stream = request("PATCH", &session).start(false, Some(size));
    let mut hasher = Hasher::new(ferry_core::digest::Algorithm::Sha256);
    let chunk = support::random_bytes(MIB, 9);
    for i in 0..(size / MIB) {
        let mut c = chunk.clone();
        c[0] = i as u8;
        hasher.update(&c);
        stream.write_all(&c).unwrap();
    }
    let r = support::read_response(stream, false);
    assert_eq!(r.status, 202, "{}", r.text());
    let digest: Digest = hasher.finish();
    let r = request("PUT", &format!("{session}?digest={digest}")).send();
    assert_eq!(r.status, 201, "{}", r.text());

    // Stream it back out without keeping it.
    let mut stream = request("GET", &format!("{}/v2/big/blob/blobs/{digest}", ferry.url)).start(true, None);
    let mut sink = [0u8; 64 * 1024];
    let mut total = 0usize;
    use std::io::Read;
    loop {
        let n = stream.read(&mut sink).unwrap();
        if n == 0 {
            break;
        }
        total += n;
    }
    assert!(total > size, "headers + body");
    let peak = peak_rss_kib(ferry.pid());
    eprintln!("ferry serve peak RSS after a 256 MiB push and pull: {} MiB", peak / 1024);
    assert!(peak < 96 * 1024, "peak RSS {peak} KiB grows with the blob");
}

/// Temp files that a crash left in layer, upload, tag, revision and blob directories are
/// removed at start and counted in the log; the upload session itself is kept. A fresh
/// temp file stays: on a root shared by replicas it is another replica's write in
/// progress.
#[test]
fn temp_files_left_by_a_crash_are_removed_at_start() {
    let dir = TempDir::new("cleanup");
    let root = dir.join("data");
    let mut ferry = Ferry::with_root(&root, &[]);
    let config = support::oci::config_blob(1);
    let config_digest = sha256(&config);
    let r = request("POST", &format!("{}/v2/clean/blobs/uploads/?digest={config_digest}", ferry.url))
        .body(config.clone())
        .send();
    assert_eq!(r.status, 201);
    let manifest =
        support::oci::image_manifest((support::oci::OCI_CONFIG, &config), &[], serde_json::json!({}));
    let r = request("PUT", &format!("{}/v2/clean/manifests/v1", ferry.url))
        .header("Content-Type", support::oci::OCI_MANIFEST)
        .body(manifest.clone())
        .send();
    assert_eq!(r.status, 201, "{}", r.text());
    let r = request("POST", &format!("{}/v2/clean/blobs/uploads/", ferry.url)).send();
    let session_path = r.header("location").unwrap().to_owned();
    let r = request("PATCH", &resolve(&ferry.url, &session_path)).body(b"half an upload".to_vec()).send();
    assert_eq!(r.status, 202);
    ferry.kill();

    let id = session_path.rsplit('/').next().unwrap();
    let hex = |d: &str| d.trim_start_matches("sha256:").to_owned();
    let left = [
        format!("repositories/clean/_layers/sha256/{}/.tmp-00000000000000a1", hex(&config_digest)),
        format!("repositories/clean/_uploads/{id}/.tmp-00000000000000a2"),
        "repositories/clean/_manifests/tags/v1/.tmp-00000000000000a3".to_owned(),
        format!(
            "repositories/clean/_manifests/revisions/sha256/{}/.tmp-00000000000000a4",
            hex(&sha256(&manifest))
        ),
        format!("blobs/sha256/{}/{}/.tmp-00000000000000a5", &hex(&config_digest)[..2], hex(&config_digest)),
        // A tag whose first write was cut off: its directory holds only the temp file.
        "repositories/clean/_manifests/tags/ghost/.tmp-00000000000000a6".to_owned(),
    ];
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for path in &left {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"partial").unwrap();
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(an_hour_ago).unwrap();
    }
    let live = root.join("repositories/clean/_manifests/tags/v1/.tmp-00000000000000b1");
    std::fs::write(&live, b"another replica writing").unwrap();
    assert_eq!(temp_files(&root).len(), left.len() + 1);

    let log = dir.join("serve.log");
    let ferry = Ferry::with_root_logging_to(&root, &[], &log);
    assert_eq!(temp_files(&root), vec![live], "stale temp files survived a restart, or a live one went");
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("removed 6 temporary files"), "the count is not logged: {log}");
    assert!(
        !root.join("repositories/clean/_manifests/tags/ghost").exists(),
        "an empty tag directory is left"
    );
    // What was whole is still there, and the session resumes.
    assert_eq!(get(&format!("{}/v2/clean/manifests/v1", ferry.url)).body, manifest);
    let session = resolve(&ferry.url, &session_path);
    assert_eq!(get(&session).header("range"), Some("0-13"));
    let r = request("PUT", &format!("{session}?digest={}", sha256(b"half an upload"))).send();
    assert_eq!(r.status, 201, "{}", r.text());
}

/// xorshift64*, for the kill schedule and blob sizes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const PUSHERS: usize = 6;

/// One pusher: image after image (config, one or two layers, a manifest under a new
/// tag), until the server goes away. Records every blob digest it sent.
fn push_until_killed(url: String, pusher: usize, seed: u64, sent: Arc<Mutex<Vec<String>>>) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (pusher as u64 + 1) | 1);
    let repo = format!("burst/p{pusher}");
    for i in 0.. {
        let config = support::oci::config_blob((seed * 1_000_000 + pusher as u64 * 10_000 + i) as u32);
        let layers: Vec<Vec<u8>> = (0..1 + rng.below(2))
            .map(|_| support::random_bytes(1 + rng.below(2 * MIB as u64) as usize, rng.next()))
            .collect();
        for blob in std::iter::once(&config).chain(layers.iter()) {
            sent.lock().unwrap().push(sha256(blob));
            let r = request("POST", &format!("{url}/v2/{repo}/blobs/uploads/")).send();
            let session = resolve(&url, r.header("location").unwrap());
            let r = request("PATCH", &session).body(blob.clone()).send();
            assert_eq!(r.status, 202);
            let r = request("PUT", &format!("{session}?digest={}", sha256(blob))).send();
            assert_eq!(r.status, 201);
        }
        let layer_refs: Vec<&[u8]> = layers.iter().map(Vec::as_slice).collect();
        let manifest = support::oci::image_manifest(
            (support::oci::OCI_CONFIG, &config),
            &layer_refs,
            serde_json::json!({}),
        );
        let r = request("PUT", &format!("{url}/v2/{repo}/manifests/s{seed}-{i}"))
            .header("Content-Type", support::oci::OCI_MANIFEST)
            .body(manifest)
            .send();
        assert_eq!(r.status, 201);
    }
}

/// After a restart: every listed tag resolves to a manifest whose bytes match its digest,
/// every blob that answers HEAD 200 is whole, and nothing temporary is left.
fn assert_consistent_after_restart(url: &str, root: &Path, sent: &[String]) -> (usize, usize) {
    assert_eq!(temp_files(root), Vec::<PathBuf>::new(), "temp files left after a restart");
    let mut tags = 0;
    for pusher in 0..PUSHERS {
        let r = get(&format!("{url}/v2/burst/p{pusher}/tags/list"));
        if r.status == 404 {
            continue;
        }
        assert_eq!(r.status, 200, "{}", r.text());
        for tag in r.json()["tags"].as_array().unwrap() {
            let tag = tag.as_str().unwrap();
            let m = get(&format!("{url}/v2/burst/p{pusher}/manifests/{tag}"));
            assert_eq!(m.status, 200, "tag {tag} is listed but does not resolve: {}", m.text());
            assert_eq!(m.header("docker-content-digest"), Some(sha256(&m.body).as_str()));
            tags += 1;
        }
    }
    let mut blobs = 0;
    for digest in sent {
        for pusher in 0..PUSHERS {
            let blob = format!("{url}/v2/burst/p{pusher}/blobs/{digest}");
            if head(&blob).status == 200 {
                let r = get(&blob);
                assert_eq!(sha256(&r.body), *digest, "blob {digest} answers with other bytes");
                blobs += 1;
            }
        }
    }
    assert_store_consistent(root);
    (tags, blobs)
}

#[test]
fn sigkill_during_a_burst_of_pushes_leaves_every_listed_tag_whole() {
    let dir = TempDir::new("burst");
    let root = dir.join("data");
    let sent = Arc::new(Mutex::new(Vec::new()));
    for seed in [11u64, 23, 37, 41, 59] {
        let mut ferry = Ferry::with_root(&root, &[]);
        let pushers: Vec<_> = (0..PUSHERS)
            .map(|p| {
                let (url, sent) = (ferry.url.clone(), sent.clone());
                std::thread::spawn(move || push_until_killed(url, p, seed, sent))
            })
            .collect();
        let mut rng = Rng(seed);
        let after = Duration::from_millis(150 + rng.below(1200));
        std::thread::sleep(after);
        ferry.kill();
        for pusher in pushers {
            // Every pusher fails once its server is gone: that is the point.
            let _ = pusher.join();
        }
        // Temp files stay while a write on another replica could still own them: the
        // restart here comes as if that long had passed.
        for temp in temp_files(&root) {
            let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
            let file = std::fs::File::options().write(true).open(&temp).unwrap();
            file.set_modified(an_hour_ago).unwrap();
        }
        let ferry = Ferry::with_root(&root, &[]);
        let sent_now = sent.lock().unwrap().clone();
        let (tags, blobs) = assert_consistent_after_restart(&ferry.url, &root, &sent_now);
        eprintln!("seed {seed}: killed after {after:?}; {tags} tags resolve, {blobs} blobs whole");
        // Pushes succeed after the restart.
        let config = support::oci::config_blob(seed as u32);
        let r = request(
            "POST",
            &format!("{}/v2/burst/after/blobs/uploads/?digest={}", ferry.url, sha256(&config)),
        )
        .body(config.clone())
        .send();
        assert_eq!(r.status, 201, "{}", r.text());
        let manifest =
            support::oci::image_manifest((support::oci::OCI_CONFIG, &config), &[], serde_json::json!({}));
        let r = request("PUT", &format!("{}/v2/burst/after/manifests/s{seed}", ferry.url))
            .header("Content-Type", support::oci::OCI_MANIFEST)
            .body(manifest)
            .send();
        assert_eq!(r.status, 201, "{}", r.text());
    }
}
