//! `ferry serve` against clients that misbehave at the connection level: connections
//! that stay silent, stop half-way through their headers, idle in keep-alive, or announce
//! a huge body and stop sending it are closed within the configured timeouts while other
//! clients are served; a slow but steady upload still succeeds; the connection cap holds;
//! requests the HTTP layer itself refuses still get the spec's JSON error body.

#[path = "support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{get, request, resolve, sha256, split_url, Ferry, TempDir};

/// How a stalled connection misbehaves.
#[derive(Debug, Clone, Copy)]
enum Stall {
    /// Connects and sends nothing.
    Silent,
    /// Sends half of a request head, then nothing.
    HalfHeaders,
    /// Sends one whole request, reads the answer, then keeps the connection idle.
    IdleKeepAlive,
    /// Announces a 10 GiB body, sends 10 bytes, then nothing.
    StalledBody,
}

fn connect(url: &str) -> TcpStream {
    let (host, _) = split_url(url);
    let stream = TcpStream::connect(&host).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream
}

/// Reads until the server closes the connection (EOF or reset); returns the bytes read.
fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                panic!(
                    "the server kept the connection open for 30 s; read so far: {:?}",
                    String::from_utf8_lossy(&out)
                )
            }
            Err(_) => return out, // reset: closed as well
        }
    }
}

/// Opens a connection that misbehaves as `stall` says, and returns it once it is stalled.
fn stall(url: &str, how: Stall, session: &str) -> TcpStream {
    let (host, _) = split_url(url);
    let mut s = connect(url);
    match how {
        Stall::Silent => {}
        Stall::HalfHeaders => {
            s.write_all(format!("GET /v2/ HTTP/1.1\r\nHost: {host}\r\nUser-Agent: sl").as_bytes()).unwrap();
        }
        Stall::IdleKeepAlive => {
            s.write_all(format!("GET /v2/ HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes()).unwrap();
            // Read exactly the one answer: head, then its Content-Length bytes.
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                assert_eq!(s.read(&mut byte).unwrap(), 1, "answer cut short");
                head.push(byte[0]);
            }
            let text = String::from_utf8_lossy(&head).to_lowercase();
            assert!(text.starts_with("http/1.1 200"), "{text}");
            let length: usize = text
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            let mut body = vec![0u8; length];
            s.read_exact(&mut body).unwrap();
        }
        Stall::StalledBody => {
            let (_, path) = split_url(session);
            let head = format!(
                "PATCH {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/octet-stream\r\n\
                 Content-Length: {}\r\n\r\n0123456789",
                10u64 << 30
            );
            s.write_all(head.as_bytes()).unwrap();
        }
    }
    s.flush().unwrap();
    s
}

#[test]
fn stalled_connections_are_closed_while_others_are_served() {
    let dir = TempDir::new("timeouts");
    let ferry = Ferry::with_root(
        &dir.join("data"),
        &["--header-read-timeout", "1", "--idle-timeout", "1", "--body-timeout", "1"],
    );
    // A normal client polls all along, and must always be answered at once.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let poller = {
        let (url, stop, served) = (ferry.url.clone(), stop.clone(), served.clone());
        std::thread::spawn(move || {
            let mut slowest = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let r = get(&format!("{url}/v2/"));
                assert_eq!(r.status, 200);
                slowest = slowest.max(started.elapsed());
                served.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
            slowest
        })
    };

    const EACH: usize = 4;
    let mut stalled = Vec::new();
    for how in [Stall::Silent, Stall::HalfHeaders, Stall::IdleKeepAlive, Stall::StalledBody] {
        for _ in 0..EACH {
            let session = request("POST", &format!("{}/v2/hostile/blobs/uploads/", ferry.url)).send();
            let session = resolve(&ferry.url, session.header("location").unwrap());
            stalled.push((how, stall(&ferry.url, how, &session), Instant::now()));
        }
    }
    let closers: Vec<_> = stalled
        .into_iter()
        .map(|(how, mut stream, since)| {
            std::thread::spawn(move || {
                let answer = read_until_closed(&mut stream);
                (how, since.elapsed(), answer)
            })
        })
        .collect();
    for closer in closers {
        let (how, after, answer) = closer.join().unwrap();
        let answer = String::from_utf8_lossy(&answer).into_owned();
        eprintln!("{how:?}: closed after {after:?}, answer {:?}", answer.lines().next().unwrap_or(""));
        // Timeouts of 1 s: closed after at least about 1 s, and well before 30 s.
        assert!(after >= Duration::from_millis(800), "{how:?} closed too early: {after:?}");
        assert!(after < Duration::from_secs(4), "{how:?} stayed open {after:?} with 1 s timeouts");
        if let Stall::StalledBody = how {
            // The body that stopped coming gets an error answer before the close.
            assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
            assert!(answer.contains("BLOB_UPLOAD_INVALID"), "{answer}");
        }
    }
    stop.store(true, Ordering::Relaxed);
    let slowest = poller.join().unwrap();
    eprintln!("normal client: {} requests, slowest {slowest:?}", served.load(Ordering::Relaxed));
    assert!(served.load(Ordering::Relaxed) > 10);
    assert!(slowest < Duration::from_millis(900), "the normal client waited {slowest:?}");

    // A stalled body left the session usable: nothing past the committed length counts.
    assert_eq!(get(&format!("{}/healthz", ferry.url)).status, 200);
}

#[test]
fn a_slow_but_steady_upload_succeeds() {
    let dir = TempDir::new("slow-upload");
    let ferry = Ferry::with_root(
        &dir.join("data"),
        &["--header-read-timeout", "1", "--idle-timeout", "1", "--body-timeout", "1"],
    );
    let blob = support::random_bytes(100 * 1024 * 1024, 5);
    let digest = sha256(&blob);
    let r = request("POST", &format!("{}/v2/slow/blobs/uploads/", ferry.url)).send();
    let session = resolve(&ferry.url, r.header("location").unwrap());
    // 100 MiB in 20 pieces, one every 300 ms: 6 s in all, never 1 s without progress.
    let started = Instant::now();
    let mut stream = request("PATCH", &session).start(false, Some(blob.len()));
    for piece in blob.chunks(5 * 1024 * 1024) {
        std::thread::sleep(Duration::from_millis(300));
        stream.write_all(piece).unwrap();
        stream.flush().unwrap();
    }
    let r = support::read_response(stream, false);
    assert_eq!(r.status, 202, "{}", r.text());
    assert!(started.elapsed() > Duration::from_secs(5));
    let r = request("PUT", &format!("{session}?digest={digest}")).send();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(get(&format!("{}/v2/slow/blobs/{digest}", ferry.url)).body, blob);
}

#[test]
fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let dir = TempDir::new("cap");
    let ferry = Ferry::with_root(&dir.join("data"), &["--max-connections", "4", "--idle-timeout", "60"]);
    let mut idle: Vec<TcpStream> = (0..4).map(|_| stall(&ferry.url, Stall::IdleKeepAlive, "")).collect();
    // The fifth connection is accepted by the kernel but not served.
    let (host, _) = split_url(&ferry.url);
    let mut fifth = connect(&ferry.url);
    fifth.set_read_timeout(Some(Duration::from_millis(700))).unwrap();
    fifth
        .write_all(format!("GET /v2/ HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    let mut buf = [0u8; 64];
    let err = fifth.read(&mut buf).expect_err("a fifth connection was served past a cap of 4");
    assert!(matches!(err.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut), "{err}");
    // Once a slot frees up, it is.
    drop(idle.pop());
    fifth.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let answer = read_until_closed(&mut fifth);
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

/// Requests that the HTTP parser refuses before any handler runs: each answer is a 4xx
/// with the spec's JSON error body, and the server keeps serving.
#[test]
fn requests_refused_by_the_http_layer_get_json_errors() {
    let dir = TempDir::new("http-layer");
    let ferry = Ferry::with_root(&dir.join("data"), &[]);
    let (host, _) = split_url(&ferry.url);
    let many_headers: String = (0..200).map(|i| format!("X-Filler-{i}: {i}\r\n")).collect();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("bad Content-Length", format!("PUT /v2/a/manifests/x HTTP/1.1\r\nHost: {host}\r\nContent-Length: abc\r\n\r\n").into_bytes()),
        ("two Content-Lengths", format!("PUT /v2/a/manifests/x HTTP/1.1\r\nHost: {host}\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab").into_bytes()),
        ("unknown Transfer-Encoding", format!("PATCH /v2/a/blobs/uploads/x HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: gzip\r\n\r\n").into_bytes()),
        ("NUL byte in a header", format!("GET /v2/ HTTP/1.1\r\nHost: {host}\r\nX-Bad: a\0b\r\n\r\n").into_bytes()),
        ("too many headers", format!("GET /v2/ HTTP/1.1\r\nHost: {host}\r\n{many_headers}\r\n").into_bytes()),
    ];
    for (what, raw) in cases {
        let mut s = connect(&ferry.url);
        s.write_all(&raw).unwrap();
        let answer = read_until_closed(&mut s);
        let text = String::from_utf8_lossy(&answer).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        assert!((400..500).contains(&status), "{what}: {text:?}");
        assert!(head.to_lowercase().contains("content-type: application/json"), "{what}: {text:?}");
        let json: serde_json::Value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: body is not JSON ({e}): {text:?}"));
        let code = json["errors"][0]["code"].as_str().unwrap_or_default();
        assert!(support::oci::SPEC_CODES.contains(&code), "{what}: {text:?}");
        assert!(!json["errors"][0]["message"].as_str().unwrap_or_default().is_empty(), "{what}: {text:?}");
        eprintln!("{what}: {status} {body}");
    }
    assert_eq!(get(&format!("{}/v2/", ferry.url)).status, 200, "still serving");
}
