//! `ferry serve --relay` against real distribution registries on 127.0.0.1 (no CORS
//! headers, Basic auth on both): a whole-registry diff (one `repository_diffed` line per
//! repository, then the report), a typed list of repositories, a prefix (no other
//! repository's tags read, by the source's access log), and a copy through the job
//! API, streamed as NDJSON to their final status line; re-attaching mid-job from an offset;
//! cancelling; the allowlist (an unlisted 127.0.0.1 port, `localhost`, and a redirect by
//! haproxy to an unlisted host); the relay's own auth and CORS; its bounds (one job at a
//! time, one second each: 429, then a `cancelled` last line); and no registry password in
//! the relays' logs, read at debug level.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/fault_proxy.rs"]
mod fault_proxy;
#[path = "support/haproxy.rs"]
mod haproxy;
#[path = "support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use cli::{Sample, OCI_INDEX, OCI_MANIFEST};
use fault_proxy::{FaultProxy, Schedule};
use haproxy::Haproxy;
use serde_json::{json, Value};
use support::{random_bytes, request, require, Distribution, DistributionOpts, TempDir};

const SOURCE: (&str, &str) = ("puller", "src-Pa55-7f3a9c");
const DESTINATION: (&str, &str) = ("pusher", "dst-Pa55-b41e02");
const RELAY: (&str, &str) = ("page", "relay-Pa55-5d8e11");
const ORIGIN: &str = "http://page.test:8080";

fn htpasswd(dir: &TempDir, name: &str, (user, password): (&str, &str)) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("{user}:{}\n", bcrypt::hash(password, 5).unwrap())).unwrap();
    path.to_str().unwrap().to_owned()
}

fn basic((user, password): (&str, &str)) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// `ferry serve --relay` with its log (debug level) in a file; killed on drop.
struct Relay {
    child: Child,
    url: String,
}

impl Relay {
    fn start(dir: &TempDir, allow: &[String], extra: &[&str], log: &Path) -> Relay {
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--addr".into(),
            "127.0.0.1:0".into(),
            "--storage".into(),
            "memory".into(),
            "--log-level".into(),
            "debug".into(),
            "--htpasswd".into(),
            htpasswd(dir, "relay.htpasswd", RELAY),
            "--relay".into(),
            "--cors-origin".into(),
            ORIGIN.into(),
        ];
        for host in allow {
            args.extend(["--relay-allow".into(), host.clone()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut child = Command::new(support::ferry_bin())
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(log).unwrap()))
            .spawn()
            .expect("spawn ferry serve --relay");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().rsplit(' ').next().unwrap_or_default().to_owned();
        assert!(url.starts_with("http://"), "ferry serve --relay printed {line:?}");
        Relay { child, url }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An NDJSON answer read as it streams.
struct Stream {
    status: u16,
    headers: Vec<(String, String)>,
    reader: BufReader<TcpStream>,
    pending: Vec<u8>,
    done: bool,
}

impl Stream {
    fn open(method: &str, url: &str, auth: Option<&str>, body: Option<&Value>) -> Stream {
        let mut r = request(method, url).header("Origin", ORIGIN);
        if let Some(auth) = auth {
            r = r.header("Authorization", auth);
        }
        if let Some(body) = body {
            r = r.header("Content-Type", "application/json").body(body.to_string());
        }
        let stream = r.start(true, None);
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status line");
        let mut headers = Vec::new();
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            match line.trim_end().split_once(':') {
                Some((k, v)) => headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned())),
                None => break,
            }
        }
        Stream { status, headers, reader, pending: Vec::new(), done: false }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The next line, or `None` at the end of the answer.
    fn next_line(&mut self) -> Option<String> {
        loop {
            if let Some(at) = self.pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=at).collect();
                return Some(String::from_utf8(line).unwrap());
            }
            if self.done {
                return None;
            }
            let mut size = String::new();
            self.reader.read_line(&mut size).unwrap();
            let size = usize::from_str_radix(size.trim(), 16).expect("chunk size");
            if size == 0 {
                self.done = true;
                continue;
            }
            let mut chunk = vec![0; size + 2];
            self.reader.read_exact(&mut chunk).unwrap();
            self.pending.extend_from_slice(&chunk[..size]);
        }
    }

    fn rest(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.next_line()).collect()
    }

    /// The whole body of a small, non-streamed answer.
    fn body(mut self) -> String {
        let mut text = String::new();
        if self.header("transfer-encoding").is_some() {
            return self.rest().concat();
        }
        let n: usize = self.header("content-length").and_then(|n| n.parse().ok()).unwrap_or(0);
        let mut bytes = vec![0; n];
        self.reader.read_exact(&mut bytes).unwrap();
        text.push_str(&String::from_utf8_lossy(&bytes));
        text
    }
}

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
}

/// Runs a job to its end: every line, parsed.
fn run_job(relay: &Relay, body: &Value) -> Vec<Value> {
    let mut stream = Stream::open("POST", &format!("{}/jobs", relay.url), Some(&basic(RELAY)), Some(body));
    if stream.status != 200 {
        let status = stream.status;
        panic!("{body}: HTTP {status}: {}", stream.body());
    }
    assert_eq!(stream.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(stream.header("access-control-allow-origin"), Some(ORIGIN));
    let lines: Vec<Value> = stream.rest().iter().map(|l| parse(l)).collect();
    assert_eq!(lines[0]["event"], "job_started", "{lines:?}");
    lines
}

fn auth_json() -> Value {
    json!({
        "source": {"username": SOURCE.0, "password": SOURCE.1},
        "destination": {"username": DESTINATION.0, "password": DESTINATION.1},
    })
}

/// A manifest's digest at the destination, read with its credentials.
fn destination_digest(base: &str, repo: &str, reference: &str) -> Option<String> {
    let r = request("HEAD", &format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("Accept", &format!("{OCI_MANIFEST}, {OCI_INDEX}"))
        .header("Authorization", &basic(DESTINATION))
        .send();
    (r.status == 200).then(|| r.header("docker-content-digest").unwrap().to_owned())
}

fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_relay_diffs_copies_and_streams_only_for_its_users_and_only_to_listed_registries() {
    if !require("docker-registry") || !require("haproxy") {
        return;
    }
    let dir = TempDir::new("relay");
    let mut source = Distribution::start(&DistributionOpts::default());
    let sample = Sample::push(&source.url);
    // A bigger image, copied through a slow proxy, to catch the job mid-way.
    let big = random_bytes(1_500_000, 41);
    let (slow_digest, _) = cli::push_image(&source.url, "slow/big", Some("1"), &[&big], "linux/amd64");
    source.restart(&DistributionOpts {
        htpasswd: Some(htpasswd(&dir, "src.htpasswd", SOURCE).into()),
        ..DistributionOpts::default()
    });
    let destination = Distribution::start(&DistributionOpts {
        htpasswd: Some(htpasswd(&dir, "dst.htpasswd", DESTINATION).into()),
        ..DistributionOpts::default()
    });
    let slow = FaultProxy::start(&source.url, Schedule::throttled(300_000));
    // The source again, logging every request: what a prefix job reads of it.
    let logged = FaultProxy::start(&source.url, Schedule::none());
    // distribution sends no CORS headers: a page cannot read it directly.
    let plain = request("GET", &format!("{}/v2/", source.url)).header("Origin", ORIGIN).send();
    assert!(plain.header("access-control-allow-origin").is_none());

    // An unlisted registry, watched by a proxy that logs any request reaching it.
    let hidden = Distribution::start(&DistributionOpts::default());
    let watch = FaultProxy::start(&hidden.url, Schedule::none());
    let redirector = Haproxy::redirect(dir.path(), &format!("http://{}", watch.host()));

    let log = dir.join("relay.log");
    let allow = [source.host(), destination.host(), slow.host(), logged.host(), redirector.host()];
    let relay = Relay::start(&dir, &allow, &["--relay-max-jobs", "2"], &log);
    let jobs = format!("{}/jobs", relay.url);

    // The relay's own users only.
    let diff =
        json!({"kind": "diff", "source": source.url, "destination": destination.url, "auth": auth_json()});
    for auth in [None, Some(basic((RELAY.0, "wrong"))), Some(basic(SOURCE))] {
        let answer = Stream::open("POST", &jobs, auth.as_deref(), Some(&diff));
        assert_eq!(answer.status, 401, "{auth:?}");
        assert!(answer.header("www-authenticate").is_some());
    }
    // CORS for the page's origin: the preflight, without credentials.
    let preflight = request("OPTIONS", &jobs)
        .header("Origin", ORIGIN)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "authorization, content-type")
        .send();
    assert_eq!(preflight.status, 204);
    assert_eq!(preflight.header("access-control-allow-origin"), Some(ORIGIN));

    // A whole-registry diff: every tag missing.
    let lines = run_job(&relay, &diff);
    let last = lines.last().unwrap();
    assert_eq!(last["event"], "diff_finished", "{lines:?}");
    assert_eq!(last["status"], "different");
    let rows = last["report"]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), sample.tags.len() + 1, "{rows:?}");
    assert!(rows.iter().all(|r| r["status"] == "missing"), "{rows:?}");
    // Before it, one `repository_diffed` line per repository, carrying that pair's rows.
    let diffed: Vec<&Value> = lines.iter().filter(|l| l["event"] == "repository_diffed").collect();
    let mut repositories: Vec<&str> = sample.tags.iter().map(|(repo, _, _)| *repo).collect();
    repositories.push("slow/big");
    repositories.sort();
    repositories.dedup();
    let mut named: Vec<&str> = diffed.iter().map(|l| l["source_repository"].as_str().unwrap()).collect();
    named.sort();
    assert_eq!(named, repositories, "{lines:?}");
    for line in &diffed {
        let repository = &line["source_repository"];
        assert_eq!(&line["destination_repository"], repository);
        let expected: Vec<&Value> = rows.iter().filter(|r| &r["repository"] == repository).collect();
        assert_eq!(line["rows"].as_array().unwrap().iter().collect::<Vec<_>>(), expected, "{repository}");
        assert_eq!(line["errors"], json!([]));
    }

    // A typed list instead of the catalog, compared under the destination's prefix; a
    // repository neither side has gets its line with no rows.
    let typed = json!({"kind": "diff", "source": source.url, "destination": format!("{}/mirror", destination.url),
        "repositories": ["library/multi", "slow/big", "not/there"], "auth": auth_json()});
    let lines = run_job(&relay, &typed);
    let last = lines.last().unwrap();
    let listed: Vec<(&str, &str)> = last["report"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["repository"].as_str().unwrap(), r["tag"].as_str().unwrap()))
        .collect();
    assert_eq!(listed, [("library/multi", "1"), ("slow/big", "1")], "{last}");
    let mut diffed: Vec<(&str, &str, usize)> = lines
        .iter()
        .filter(|l| l["event"] == "repository_diffed")
        .map(|l| {
            let (s, d) =
                (l["source_repository"].as_str().unwrap(), l["destination_repository"].as_str().unwrap());
            (s, d, l["rows"].as_array().unwrap().len())
        })
        .collect();
    diffed.sort();
    assert_eq!(
        diffed,
        [
            ("library/multi", "mirror/library/multi", 1),
            ("not/there", "mirror/not/there", 0),
            ("slow/big", "mirror/slow/big", 1)
        ]
    );
    // A prefix: the repositories under `library/` against the same names, and not one
    // request about any other repository of the source's catalog.
    let under = json!({"kind": "diff", "source": logged.url, "destination": destination.url, "prefix": "library/",
        "auth": auth_json()});
    let lines = run_job(&relay, &under);
    let last = lines.last().unwrap();
    assert_eq!(last["event"], "diff_finished", "{lines:?}");
    let mut diffed: Vec<(&str, &str)> = lines
        .iter()
        .filter(|l| l["event"] == "repository_diffed")
        .map(|l| (l["source_repository"].as_str().unwrap(), l["destination_repository"].as_str().unwrap()))
        .collect();
    diffed.sort();
    assert_eq!(diffed, [("library/app", "library/app"), ("library/multi", "library/multi")], "{lines:?}");
    let rows = last["report"]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{rows:?}");
    let read: Vec<String> = logged.log().into_iter().map(|l| l.target).collect();
    assert!(read.iter().any(|t| t.starts_with("/v2/_catalog")), "{read:?}");
    assert!(read.iter().any(|t| t.starts_with("/v2/library/app/tags/list")), "{read:?}");
    let others: Vec<&String> = read
        .iter()
        .filter(|t| !t.starts_with("/v2/_catalog") && !t.starts_with("/v2/library/") && *t != "/v2/")
        .collect();
    assert!(others.is_empty(), "a repository outside the prefix was read: {others:?}");
    let bad =
        json!({"kind": "diff", "source": source.url, "destination": destination.url, "prefix": "Library"});
    let answer = Stream::open("POST", &jobs, Some(&basic(RELAY)), Some(&bad));
    assert_eq!(answer.status, 400);
    let text = answer.body();
    assert!(text.contains("prefix") && text.contains("must be lowercase"), "{text}");

    // A name outside the grammar: 400, naming the entry.
    let bad = json!({"kind": "diff", "source": source.url, "destination": destination.url,
        "repositories": ["library/app", "Library/App"]});
    let answer = Stream::open("POST", &jobs, Some(&basic(RELAY)), Some(&bad));
    assert_eq!(answer.status, 400);
    let text = answer.body();
    assert!(text.contains("repositories[1]") && text.contains("Library/App"), "{text}");

    // Copy everything that is missing, as the page's "copy all missing" asks.
    let images: Vec<Value> = sample
        .tags
        .iter()
        .map(|(repo, tag, _)| {
            json!({"source": format!("{}/{repo}:{tag}", source.url), "destination": format!("{}/{repo}:{tag}", destination.url)})
        })
        .collect();
    let copy = json!({"kind": "copy", "images": images, "auth": auth_json()});
    let lines = run_job(&relay, &copy);
    let last = lines.last().unwrap();
    assert_eq!(last["event"], "job_finished", "{lines:?}");
    assert_eq!(last["status"], "succeeded", "{last}");
    assert_eq!(last["summary"]["copied"], 3, "{last}");
    let copy_id = lines[0]["job"].as_str().unwrap().to_owned();
    for (repo, tag, digest) in &sample.tags {
        assert_eq!(
            destination_digest(&destination.url, repo, tag).as_deref(),
            Some(digest.as_str()),
            "{repo}:{tag}"
        );
    }
    // The index's children are there under their own digests.
    let index = request("GET", &format!("{}/v2/library/multi/manifests/1", destination.url))
        .header("Accept", OCI_INDEX)
        .header("Authorization", &basic(DESTINATION))
        .send();
    let index: Value = serde_json::from_slice(&index.body).unwrap();
    for child in index["manifests"].as_array().unwrap() {
        let digest = child["digest"].as_str().unwrap();
        assert_eq!(destination_digest(&destination.url, "library/multi", digest).as_deref(), Some(digest));
    }

    // Re-reading a finished job from an offset replays exactly its lines from there.
    let again = Stream::open("GET", &format!("{jobs}/{copy_id}/events?offset=2"), Some(&basic(RELAY)), None);
    assert_eq!(again.status, 200);
    let mut again = again;
    let replayed: Vec<Value> = again.rest().iter().map(|l| parse(l)).collect();
    assert_eq!(replayed, lines[2..].to_vec());

    // The diff again: only the image left for later is missing.
    let lines = run_job(&relay, &diff);
    let report = &lines.last().unwrap()["report"];
    assert_eq!((&report["in_sync"], &report["missing"]), (&json!(3), &json!(1)), "{lines:?}");

    // Mid-job: re-attach from an offset while the slow copy runs, and read the same lines.
    let slow_copy = json!({"kind": "copy", "auth": auth_json(), "images": [{
        "source": format!("http://{}/slow/big:1", slow.host()),
        "destination": format!("{}/slow/big:1", destination.url),
    }]});
    let mut first = Stream::open("POST", &jobs, Some(&basic(RELAY)), Some(&slow_copy));
    assert_eq!(first.status, 200);
    let started = parse(&first.next_line().unwrap());
    let id = started["job"].as_str().unwrap().to_owned();
    let mut seen = vec![started];
    while !seen.iter().any(|l| l["event"] == "blob_progress") {
        seen.push(parse(&first.next_line().expect("the job streams")));
    }
    let offset = seen.len();
    let mut attached =
        Stream::open("GET", &format!("{jobs}/{id}/events?offset={offset}"), Some(&basic(RELAY)), None);
    let attached: Vec<Value> = attached.rest().iter().map(|l| parse(l)).collect();
    let rest: Vec<Value> = first.rest().iter().map(|l| parse(l)).collect();
    assert_eq!(attached, rest, "re-attached at line {offset}");
    assert!(rest.iter().any(|l| l["event"] == "blob_progress"), "the job was still moving bytes: {rest:?}");
    let last = rest.last().unwrap();
    assert_eq!((&last["event"], &last["status"]), (&json!("job_finished"), &json!("succeeded")), "{last}");
    assert_eq!(destination_digest(&destination.url, "slow/big", "1").as_deref(), Some(slow_digest.as_str()));
    let lines = run_job(&relay, &diff);
    assert_eq!(lines.last().unwrap()["status"], "in_sync", "{lines:?}");

    // Cancel: DELETE ends the stream with the cancelled line, and a second DELETE is 409.
    let slow_again = json!({"kind": "copy", "auth": auth_json(), "images": [{
        "source": format!("http://{}/slow/big:1", slow.host()),
        "destination": format!("{}/cancelled/big:1", destination.url),
    }]});
    let mut cancelled = Stream::open("POST", &jobs, Some(&basic(RELAY)), Some(&slow_again));
    let id = parse(&cancelled.next_line().unwrap())["job"].as_str().unwrap().to_owned();
    wait_for("the blob to start moving", || {
        cancelled.next_line().filter(|l| l.contains("blob_progress")).map(|_| ())
    });
    let answer = Stream::open("DELETE", &format!("{jobs}/{id}"), Some(&basic(RELAY)), None);
    assert_eq!(answer.status, 202);
    let rest = cancelled.rest();
    let last = parse(rest.last().unwrap());
    assert_eq!((&last["event"], &last["kind"]), (&json!("error"), &json!("cancelled")), "{rest:?}");
    assert_eq!(Stream::open("DELETE", &format!("{jobs}/{id}"), Some(&basic(RELAY)), None).status, 409);
    assert!(destination_digest(&destination.url, "cancelled/big", "1").is_none());

    // Not on the list: refused before the job starts (127.0.0.1 on another port, and
    // localhost, which names the same machine but is not listed).
    for unlisted in
        [hidden.url.clone(), format!("http://localhost:{}", source.url.rsplit(':').next().unwrap())]
    {
        let body = json!({"kind": "diff", "source": unlisted, "destination": destination.url});
        let answer = Stream::open("POST", &jobs, Some(&basic(RELAY)), Some(&body));
        assert_eq!(answer.status, 403, "{unlisted}");
        let text = answer.body();
        assert!(text.contains("not on the relay's allowlist"), "{text}");
    }
    // A listed host that redirects to an unlisted one: the redirect is not followed.
    let body = json!({"kind": "diff", "source": format!("http://{}/library/app", redirector.host()),
        "destination": format!("{}/library/app", destination.url), "auth": auth_json()});
    let lines = run_job(&relay, &body);
    let last = lines.last().unwrap();
    assert_eq!((&last["event"], &last["status"]), (&json!("diff_finished"), &json!("failed")), "{lines:?}");
    let errors = last["report"]["errors"].to_string();
    assert!(errors.contains("refused") && errors.contains("not on the relay's allowlist"), "{errors}");
    assert!(watch.log().is_empty(), "the unlisted registry was reached: {:?}", watch.log());

    // Bounded: one job at a time, for at most a second.
    let tight_dir = TempDir::new("relay-tight");
    let tight_log = dir.join("tight.log");
    let tight =
        Relay::start(&tight_dir, &allow, &["--relay-max-jobs", "1", "--relay-max-job-secs", "1"], &tight_log);
    let mut long =
        Stream::open("POST", &format!("{}/jobs", tight.url), Some(&basic(RELAY)), Some(&slow_again));
    assert_eq!(long.status, 200);
    long.next_line().unwrap();
    let second = Stream::open("POST", &format!("{}/jobs", tight.url), Some(&basic(RELAY)), Some(&diff));
    assert_eq!(second.status, 429);
    assert!(second.header("retry-after").is_some());
    assert!(second.body().contains("relay.max_jobs"));
    let rest = long.rest();
    let last = parse(rest.last().unwrap());
    assert_eq!(last["kind"], "cancelled", "{rest:?}");
    assert!(last["reason"].as_str().unwrap().contains("relay.max_job_secs"), "{last}");
    // Once it ended, the next job runs.
    assert_eq!(run_job(&tight, &diff).last().unwrap()["event"], "diff_finished");

    // No password, and no Basic header made from one, in the relays' logs.
    drop((relay, tight));
    for log in [log, tight_log] {
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("relay job started"), "the log is at debug level: {text}");
        for (user, password) in [SOURCE, DESTINATION, RELAY] {
            assert!(!text.contains(password), "{user}'s password is in the relay's log");
            assert!(
                !text.contains(&basic((user, password))[6..]),
                "{user}'s Basic credentials are in the log"
            );
        }
    }
}
