//! Crash safety and bounded memory of the filesystem driver.
//!
//! The server is SIGKILLed in the middle of a large chunked upload and restarted on the
//! same directory: no blob is visible for that digest, the store holds only whole,
//! verified blobs and no temp files, and the upload resumes from the last committed
//! chunk (or restarts from scratch).

#[path = "support/mod.rs"]
mod support;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use ferry_core::digest::{Digest, Hasher};
use support::{get, head, request, resolve, sha256, Ferry, TempDir};

const MIB: usize = 1024 * 1024;

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
