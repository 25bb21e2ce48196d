//! Notifications from `ferry serve`, configured in distribution's own format: a local
//! HTTP sink receives exactly the events of a push, a pull and a delete, in distribution's
//! envelope, with the endpoint's headers; a sink that accepts and never answers fills its
//! bounded queue, the overflow is counted and logged, and every push still completes.
//! (How fast pushes are with the sink down against without notifications is measured by
//! `bench/notify.py`.)

#[path = "support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{free_port, request, sha256, write_htpasswd, Ferry, TempDir};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const ENVELOPE: &str = "application/vnd.docker.distribution.events.v1+json";

/// One POST the sink received.
#[derive(Debug, Clone)]
struct Delivery {
    headers: Vec<(String, String)>,
    body: Value,
}

impl Delivery {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// An HTTP endpoint on 127.0.0.1 that records every POST and answers 200 (or, when
/// `silent`, reads the request and never answers).
struct Sink {
    url: String,
    received: Arc<Mutex<Vec<Delivery>>>,
    connections: Arc<AtomicUsize>,
}

impl Sink {
    fn start(silent: bool) -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/events", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                counter.fetch_add(1, Ordering::SeqCst);
                if silent {
                    held.push(stream);
                    continue;
                }
                let log = log.clone();
                std::thread::spawn(move || serve(stream, &log));
            }
        });
        Sink { url, received, connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.received.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, log: &Mutex<Vec<Delivery>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
        let length: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
        log.lock().unwrap().push(Delivery { headers, body });
        let mut writer = &stream;
        writer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").unwrap();
    }
}

/// distribution's config file with one notification endpoint at `sink`.
fn config(dir: &TempDir, port: u16, sink: &str, extra: &str) -> String {
    format!(
        "version: 0.1\nlog: {{level: warn}}\nstorage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\n\
         http: {{addr: 127.0.0.1:{port}}}\nauth: {{htpasswd: {{realm: r, path: {}}}}}\n\
         notifications:\n  endpoints:\n    - name: sink\n      url: {sink}\n      \
         headers: {{Authorization: [Bearer sink-Secret-7]}}\n      timeout: 2s\n      threshold: 2\n      backoff: 100ms\n{extra}",
        dir.join("data").display(),
        dir.join("htpasswd").display()
    )
}

/// `ferry serve --config` on a free port, its log in `log`.
fn start(dir: &TempDir, yaml: impl Fn(u16) -> String, log: &Path) -> Ferry {
    let path = dir.join("config.yml");
    for _attempt in 0..5 {
        std::fs::write(&path, yaml(free_port())).unwrap();
        let file = std::fs::File::create(log).unwrap();
        if let Some(ferry) = Ferry::with_config_logging_to(&path, &[], Stdio::from(file)) {
            return ferry;
        }
    }
    panic!("ferry serve did not start");
}

/// POST, then PUT with the bytes (distribution 2.8 ignores a monolithic POST's body).
fn push_blob(url: &str, repo: &str, bytes: &[u8]) {
    let r = request("POST", &format!("{url}/v2/{repo}/blobs/uploads/")).basic("pusher", "push-Pw-5").send();
    assert_eq!(r.status, 202, "{}", r.text());
    let location = support::resolve(url, r.header("location").unwrap());
    let sep = if location.contains('?') { '&' } else { '?' };
    let r = request("PUT", &format!("{location}{sep}digest={}", sha256(bytes)))
        .basic("pusher", "push-Pw-5")
        .body(bytes)
        .send();
    assert_eq!(r.status, 201, "{}", r.text());
}

/// What [`exercise`] pushed.
struct Pushed {
    config_blob: Vec<u8>,
    layer: Vec<u8>,
    manifest: Vec<u8>,
    digest: String,
}

/// Pushes an image (two blobs, one manifest), pulls it (HEAD and GET of the manifest, HEAD
/// of the config, GET of the layer) and deletes the manifest, as user `pusher`.
fn exercise(url: &str, repo: &str) -> Pushed {
    let layer = support::random_bytes(3000, 7);
    let config_blob = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config_blob), "size": config_blob.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(&layer), "size": layer.len()}],
    }))
    .unwrap();
    let digest = sha256(&manifest);
    push_blob(url, repo, &config_blob);
    push_blob(url, repo, &layer);
    let r = request("PUT", &format!("{url}/v2/{repo}/manifests/v1"))
        .basic("pusher", "push-Pw-5")
        .header("Content-Type", OCI_MANIFEST)
        .body(manifest.clone())
        .send();
    assert_eq!(r.status, 201);
    let get = |path: &str, method: &str| {
        request(method, &format!("{url}/v2/{repo}/{path}"))
            .basic("pusher", "push-Pw-5")
            .header("Accept", OCI_MANIFEST)
            .header("User-Agent", "notify-test/1")
            .send()
    };
    assert_eq!(get("manifests/v1", "HEAD").status, 200);
    assert_eq!(get("manifests/v1", "GET").body, manifest);
    assert_eq!(get(&format!("blobs/{}", sha256(&config_blob)), "HEAD").status, 200);
    assert_eq!(get(&format!("blobs/{}", sha256(&layer)), "GET").body, layer);
    assert_eq!(get(&format!("manifests/{digest}"), "DELETE").status, 202);
    Pushed { config_blob, layer, manifest, digest }
}

/// The events `sink` received, once `want` have arrived and a moment has passed with
/// nothing more.
fn events(sink: &Sink, want: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while sink.deliveries().len() < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    sink.deliveries().iter().flat_map(|d| d.body["events"].as_array().cloned().unwrap_or_default()).collect()
}

/// (action, target media type, digest, tag) of each event.
fn summary(events: &[Value]) -> Vec<(String, String, String, String)> {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    events
        .iter()
        .map(|e| {
            (s(&e["action"]), s(&e["target"]["mediaType"]), s(&e["target"]["digest"]), s(&e["target"]["tag"]))
        })
        .collect()
}

#[test]
fn push_pull_delete_events_in_distributions_envelope() {
    let dir = TempDir::new("notify");
    write_htpasswd(&dir, "pusher", "push-Pw-5");
    let sink = Sink::start(false);
    let ferry = start(&dir, |port| config(&dir, port, &sink.url, ""), &dir.join("ferry.log"));
    let url = &ferry.url;
    let repo = "team/app";
    let Pushed { config_blob, layer, manifest, digest } = exercise(url, repo);
    let deliveries = sink.deliveries();
    let events = events(&sink, 9);
    let summary = summary(&events);
    let blob = "application/octet-stream".to_string();
    let s = |x: &str| x.to_string();
    assert_eq!(
        summary,
        vec![
            (s("push"), blob.clone(), sha256(&config_blob), s("")),
            (s("push"), blob.clone(), sha256(&layer), s("")),
            (s("push"), s(OCI_MANIFEST), digest.clone(), s("v1")),
            (s("pull"), s(OCI_MANIFEST), digest.clone(), s("v1")), // HEAD counts, as in distribution
            (s("pull"), s(OCI_MANIFEST), digest.clone(), s("v1")),
            (s("pull"), blob.clone(), sha256(&config_blob), s("")), // HEAD
            (s("pull"), blob.clone(), sha256(&layer), s("")),
            (s("delete"), s(""), digest.clone(), s("")),
            (s("delete"), s(""), s(""), s("v1")), // the tag went with the manifest
        ],
        "exactly these events, in order"
    );
    for d in &deliveries {
        assert_eq!(d.header("content-type"), Some(ENVELOPE));
        assert_eq!(d.header("authorization"), Some("Bearer sink-Secret-7"), "the endpoint's headers");
    }
    let host = ferry.host();
    let sizes = [
        config_blob.len(),
        layer.len(),
        manifest.len(),
        manifest.len(),
        manifest.len(),
        config_blob.len(),
        layer.len(),
    ];
    for (event, size) in events.iter().zip(sizes) {
        assert_eq!(event["target"]["size"], size, "{event}");
        assert_eq!(event["target"]["length"], size, "{event}");
    }
    for event in &events {
        assert_eq!(event["target"]["repository"], repo);
        assert_eq!(event["actor"]["name"], "pusher");
        assert_eq!(event["request"]["host"], host.as_str());
        assert!(event["id"].as_str().is_some_and(|id| !id.is_empty()));
        assert!(event["timestamp"].as_str().is_some_and(|t| t.ends_with('Z') && t.contains('T')), "{event}");
        assert!(event["source"]["instanceID"].as_str().is_some_and(|id| !id.is_empty()));
        assert_eq!(event["source"]["addr"], host.as_str());
    }
    assert_eq!(events[2]["target"]["url"], format!("{url}/v2/{repo}/manifests/{digest}"));
    assert_eq!(events[6]["target"]["url"], format!("{url}/v2/{repo}/blobs/{}", sha256(&layer)));
    assert_eq!(events[3]["request"]["method"], "HEAD");
    assert_eq!(events[4]["request"]["method"], "GET");
    assert_eq!(events[4]["request"]["useragent"], "notify-test/1");
    let log = std::fs::read_to_string(dir.join("ferry.log")).unwrap();
    assert!(!log.contains("sink-Secret-7"), "the endpoint's credentials are never logged:\n{log}");
}

/// A sink that takes connections and never answers: each event waits out its timeout and
/// retries, the queue (4 events) fills, the rest are dropped and counted, and every push
/// completes all the same.
#[test]
fn a_dead_sink_fills_a_bounded_queue_and_never_blocks_pushes() {
    let dir = TempDir::new("notify-dead");
    write_htpasswd(&dir, "pusher", "push-Pw-5");
    let sink = Sink::start(true);
    // distribution has no key for the queue's length: ferry's own format says it.
    let ferry_yaml = |port: u16| {
        format!(
            "addr: 127.0.0.1:{port}\nlog: {{level: warn}}\nstorage: {{root: {}}}\n\
             auth: {{htpasswd: {}}}\n\
             notifications:\n  endpoints:\n    - {{name: dead, url: '{}', timeout_secs: 30, retries: 1, backoff_secs: 0.1, queue: 4}}\n",
            dir.join("data").display(),
            dir.join("htpasswd").display(),
            sink.url
        )
    };
    let ferry = start(&dir, ferry_yaml, &dir.join("ferry.log"));
    for i in 0..40u64 {
        push_blob(&ferry.url, "dead/app", &support::random_bytes(100, i));
    }
    // Every push answered (push_blob asserts 201). The queue: one event in flight, four
    // waiting, the other 35 dropped, and said so.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut log = String::new();
    while Instant::now() < deadline {
        log = std::fs::read_to_string(dir.join("ferry.log")).unwrap();
        if log.contains("notification queue full") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("notification queue full")).collect();
    assert_eq!(warnings.len(), 1, "the first drop is logged, then every hundredth:\n{log}");
    assert!(warnings[0].contains("endpoint=dead") && warnings[0].contains("dropped=1"), "{}", warnings[0]);
    assert!(sink.deliveries().is_empty());
    assert_eq!(sink.connections(), 1, "one delivery at a time, still waiting for its answer");
}

/// distribution itself, on the same config file and the same requests, sends the same
/// events: the same actions, targets and actor, and the same fields in the envelope.
#[test]
fn the_same_events_as_distribution() {
    if !support::require("docker-registry") {
        return;
    }
    let (ferry_sink, peer_sink) = (Sink::start(false), Sink::start(false));
    let dir = TempDir::new("notify-ferry");
    write_htpasswd(&dir, "pusher", "push-Pw-5");
    let ferry = start(&dir, |port| config(&dir, port, &ferry_sink.url, ""), &dir.join("ferry.log"));
    let peer_dir = TempDir::new("notify-distribution");
    write_htpasswd(&peer_dir, "pusher", "push-Pw-5");
    let port = free_port();
    std::fs::write(peer_dir.join("config.yml"), config(&peer_dir, port, &peer_sink.url, "")).unwrap();
    let mut peer = std::process::Command::new("docker-registry")
        .arg("serve")
        .arg(peer_dir.join("config.yml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let peer_url = format!("http://127.0.0.1:{port}");
    support::wait_until_up(&peer_url, &mut peer, "docker-registry");
    exercise(&ferry.url, "team/app");
    exercise(&peer_url, "team/app");
    let (ours, theirs) = (events(&ferry_sink, 9), events(&peer_sink, 9));
    let _ = peer.kill();
    let _ = peer.wait();
    assert_eq!(summary(&ours), summary(&theirs));
    let keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
    for (a, b) in ours.iter().zip(&theirs) {
        assert_eq!(keys(a), keys(b), "event fields:\n{a}\n{b}");
        assert_eq!(keys(&a["source"]), keys(&b["source"]));
        assert_eq!(keys(&a["actor"]), keys(&b["actor"]));
        // distribution also records the client's address (`request.addr`); ferry does not.
        let mut theirs_request = keys(&b["request"]);
        theirs_request.retain(|k| k != "addr");
        assert_eq!(keys(&a["request"]), theirs_request);
        let path = |t: &Value| {
            let mut t = t.clone();
            if let Some(url) = t["url"].as_str() {
                t["url"] = url.splitn(4, '/').nth(3).unwrap_or_default().into();
            }
            t
        };
        assert_eq!(path(&a["target"]), path(&b["target"]), "targets");
        assert_eq!(a["actor"], b["actor"]);
        assert_eq!(a["request"]["method"], b["request"]["method"]);
        assert_eq!(a["request"]["useragent"], b["request"]["useragent"]);
    }
}
