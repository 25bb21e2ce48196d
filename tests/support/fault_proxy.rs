//! A fault-injecting HTTP/1.1 proxy in front of one registry, on std threads.
//!
//! It forwards every request to the upstream registry (one upstream connection per
//! request, `Host` rewritten) and every answer back, with the upstream's `host:port`
//! rewritten to the proxy's in every header (`Location`, `Link`, `WWW-Authenticate`), so
//! a client that follows them stays behind the proxy. Request and answer bodies may be
//! framed by `Content-Length` or `Transfer-Encoding: chunked` (reqwest streams uploads).
//!
//! A [`Schedule`] decides, from a seed and the request's index, which requests fail:
//! - a status fault answers `500`, `503` or `429` with `Retry-After: 1` (in turn) without
//!   asking the upstream;
//! - a cut forwards part of a blob's body (the upstream's answer to a blob `GET`, or an
//!   upload's request body) and then closes both connections.
//!
//! A pull quota ([`Schedule::pull_quota`]) counts manifest `GET`s per fixed window, as
//! Docker Hub does, tells every manifest answer what is left (`ratelimit-limit: 5;w=3`,
//! `ratelimit-remaining: 2;w=3`) and answers a `GET` beyond it `429` with the same fields.
//!
//! No key (a blob digest, or method and path) is faulted more than `per_key` times, so a
//! client that retries enough always gets through. Bodies can be throttled, to make a
//! job slow enough to interrupt. Every request is logged with what was done to it.
// Each test file compiles these helpers as a private module of its own: `pub` marks what
// test files call.
#![allow(unreachable_pub)]
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the proxy did instead of forwarding faithfully.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    Status500,
    Status503,
    /// `429 Too Many Requests` with `Retry-After: 1`.
    Status429,
    /// `429 Too Many Requests` from the manifest-read rate limiter.
    RateLimited {
        /// Whole seconds until a token is back.
        retry_after: u64,
    },
    /// Part of a blob body went through, then both connections closed.
    Cut,
    /// `429 Too Many Requests` from the pull quota: a manifest `GET` beyond it.
    QuotaSpent,
}

const STATUS_FAULTS: [Fault; 3] = [Fault::Status500, Fault::Status503, Fault::Status429];

/// Which requests fail, and how fast bodies flow.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub seed: u64,
    /// One request in `status_every` (by a hash of seed and index) gets a status fault;
    /// 0 never.
    pub status_every: u64,
    /// One blob body in `cut_every` is cut short; 0 never.
    pub cut_every: u64,
    /// No key is faulted more often than this.
    pub per_key: u32,
    /// Bytes per second of each body, when set.
    pub throttle: Option<u64>,
    /// A rate limiter on manifest reads (`GET`/`HEAD .../manifests/...`), as Docker Hub
    /// limits pulls: a token bucket of `(burst, per_second)`. A read that finds it empty is
    /// answered `429` with `Retry-After` (whole seconds until a token is back) and
    /// `RateLimit-Limit` / `RateLimit-Remaining`.
    pub manifest_rate: Option<(u32, u32)>,
    /// A pull quota of `(limit, window seconds)`: manifest `GET`s per fixed window from
    /// the proxy's start, told in `ratelimit-*` fields on every manifest answer.
    pub pull_quota: Option<(u64, u64)>,
}

impl Schedule {
    /// Forwards everything faithfully.
    pub fn none() -> Schedule {
        Schedule {
            seed: 0,
            status_every: 0,
            cut_every: 0,
            per_key: 0,
            throttle: None,
            manifest_rate: None,
            pull_quota: None,
        }
    }

    pub fn faults(seed: u64, status_every: u64, cut_every: u64) -> Schedule {
        Schedule { seed, status_every, cut_every, per_key: 2, ..Schedule::none() }
    }

    /// One request in `every` gets a status fault and one blob body in `every` is cut, with
    /// no cap per key: the same request can fail any number of times in a row.
    pub fn uncapped(seed: u64, every: u64) -> Schedule {
        Schedule { seed, status_every: every, cut_every: every, per_key: u32::MAX, ..Schedule::none() }
    }

    /// Manifest reads limited to `burst` at once and `per_second` after; no faults.
    pub fn rate_limited(burst: u32, per_second: u32) -> Schedule {
        Schedule { manifest_rate: Some((burst, per_second)), ..Schedule::none() }
    }

    pub fn throttled(bytes_per_second: u64) -> Schedule {
        Schedule { throttle: Some(bytes_per_second), ..Schedule::none() }
    }

    /// Whether request number `index` of its kind is picked, one in `every`.
    fn picks(&self, every: u64, index: u64) -> bool {
        every > 0 && xorshift(self.seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15)) % every == 0
    }
}

fn xorshift(mut x: u64) -> u64 {
    x |= 1;
    for _ in 0..3 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    x
}

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// The upstream's status, when it was asked.
    pub status: Option<u16>,
    pub fault: Option<Fault>,
    /// Bytes of the request's body passed upstream, once it went through whole (a body
    /// framed by `Content-Length`).
    pub sent: Option<u64>,
}

impl Logged {
    /// A `GET` of a blob's content.
    pub fn is_blob_get(&self) -> bool {
        self.method == "GET" && self.target.contains("/blobs/sha256:")
    }
}

#[derive(Default)]
struct State {
    log: Vec<Logged>,
    /// Requests seen, and blob bodies seen, for the schedule's indices.
    requests: u64,
    bodies: u64,
    status_faults: u64,
    per_key: BTreeMap<String, u32>,
    /// The manifest-read bucket: tokens, and when they were counted.
    bucket: Option<(f64, Instant)>,
    /// The pull quota's window (from 0) and the `GET`s counted in it.
    quota: (u64, u64),
}

struct Shared {
    upstream: String,
    proxy: String,
    schedule: Mutex<Schedule>,
    state: Mutex<State>,
    stop: AtomicBool,
    started: Instant,
}

/// A running proxy; stops accepting on drop.
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`http://host:port`).
    pub fn start(upstream: &str, schedule: Schedule) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let proxy = listener.local_addr().expect("proxy address").to_string();
        let upstream = upstream.strip_prefix("http://").expect("an http:// upstream").trim_end_matches('/');
        let shared = Arc::new(Shared {
            upstream: upstream.to_owned(),
            proxy: proxy.clone(),
            schedule: Mutex::new(schedule),
            state: Mutex::new(State::default()),
            stop: AtomicBool::new(false),
            started: Instant::now(),
        });
        let accepting = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accepting.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let shared = accepting.clone();
                std::thread::spawn(move || {
                    let _ = serve(&shared, stream);
                });
            }
        });
        FaultProxy { url: format!("http://{proxy}"), shared }
    }

    /// `127.0.0.1:PORT`, for image references.
    pub fn host(&self) -> String {
        self.shared.proxy.clone()
    }

    pub fn set_schedule(&self, schedule: Schedule) {
        *self.shared.schedule.lock().unwrap() = schedule;
    }

    /// Every request so far, in arrival order.
    pub fn log(&self) -> Vec<Logged> {
        self.shared.state.lock().unwrap().log.clone()
    }

    pub fn count(&self, pick: impl Fn(&Logged) -> bool) -> usize {
        self.shared.state.lock().unwrap().log.iter().filter(|l| pick(l)).count()
    }

    /// Faults of one kind injected so far.
    pub fn injected(&self, fault: Fault) -> usize {
        self.count(|l| l.fault == Some(fault))
    }

    /// Forgets the log (the schedule's indices go on).
    pub fn clear_log(&self) {
        self.shared.state.lock().unwrap().log.clear();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.shared.proxy);
    }
}

/// A request or answer head: the first line and the headers, in order.
struct Head {
    line: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn read(reader: &mut impl BufRead) -> io::Result<Option<Head>> {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let line = line.trim_end().to_owned();
        let mut headers = Vec::new();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "head cut short"));
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                headers.push((name.trim().to_owned(), value.trim().to_owned()));
            }
        }
        Ok(Some(Head { line, headers }))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn framing(&self) -> Framing {
        if self.get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
            Framing::Chunked
        } else if let Some(n) = self.get("content-length").and_then(|v| v.parse().ok()) {
            Framing::Length(n)
        } else {
            Framing::UntilClose
        }
    }

    fn write(&self, out: &mut impl Write) -> io::Result<()> {
        let mut text = format!("{}\r\n", self.line);
        for (k, v) in &self.headers {
            text.push_str(&format!("{k}: {v}\r\n"));
        }
        text.push_str("\r\n");
        out.write_all(text.as_bytes())
    }

    fn set(&mut self, name: &str, value: &str) {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_owned()));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

/// One client connection: requests one after another until either side closes.
fn serve(shared: &Shared, client: TcpStream) -> io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut writer = client;
    loop {
        let Some(mut request) = Head::read(&mut reader)? else { return Ok(()) };
        let mut parts = request.line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let target = parts.next().unwrap_or_default().to_owned();
        let schedule = shared.schedule.lock().unwrap().clone();
        let framing = match request.framing() {
            // A request without a length has no body (RFC 9112 §6.3).
            Framing::UntilClose => Framing::Length(0),
            f => f,
        };
        let has_body = framing != Framing::Length(0);
        let quota = pull_quota(shared, &schedule, &method, &target);
        let fault = match &quota {
            Some(q) if q.spent => Some(Fault::QuotaSpent),
            _ => decide(shared, &schedule, &method, &target, has_body),
        };
        let index = {
            let mut state = shared.state.lock().unwrap();
            let entry =
                Logged { method: method.clone(), target: target.clone(), status: None, fault, sent: None };
            state.log.push(entry);
            state.log.len() - 1
        };
        if let Some(status_fault) = fault.filter(|f| *f != Fault::Cut) {
            relay_body(&mut reader, &mut io::sink(), framing, None, None)?;
            let extra = match (&quota, status_fault) {
                (Some(q), Fault::QuotaSpent) => q.fields(),
                _ => String::new(),
            };
            answer_fault(
                &mut writer,
                status_fault,
                schedule.manifest_rate.map(|(_, per_second)| per_second),
                &extra,
            )?;
            return Ok(());
        }
        let upstream = TcpStream::connect(&shared.upstream)?;
        upstream.set_read_timeout(Some(Duration::from_secs(120)))?;
        let mut up_writer = upstream.try_clone()?;
        let mut up_reader = BufReader::new(upstream);
        let client_closes = request.get("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        request.set("Host", &shared.upstream);
        request.set("Connection", "close");
        request.write(&mut up_writer)?;
        let cut_request = fault == Some(Fault::Cut) && has_body;
        let limit = cut_request.then(|| cut_point(framing));
        let complete = relay_body(&mut reader, &mut up_writer, framing, schedule.throttle, limit)?;
        if !complete {
            let _ = up_writer.shutdown(Shutdown::Both);
            let _ = writer.shutdown(Shutdown::Both);
            return Ok(());
        }
        up_writer.flush()?;
        if let Framing::Length(length) = framing {
            shared.state.lock().unwrap().log[index].sent = Some(length);
        }
        let Some(mut answer) = Head::read(&mut up_reader)? else {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "upstream closed"));
        };
        let status: u16 = answer.line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        {
            let mut state = shared.state.lock().unwrap();
            state.log[index].status = Some(status);
            if fault == Some(Fault::Cut) && !cut_request && status != 200 {
                // Only a blob's content is cut; an error answer goes through whole.
                state.log[index].fault = None;
            }
        }
        for (_, value) in answer.headers.iter_mut() {
            *value = value.replace(&shared.upstream, &shared.proxy);
        }
        if let Some(q) = &quota {
            answer.set("RateLimit-Limit", &format!("{};w={}", q.limit, q.window));
            answer.set("RateLimit-Remaining", &format!("{};w={}", q.remaining, q.window));
        }
        let bodyless = method == "HEAD" || status == 204 || status == 304 || (100..200).contains(&status);
        let framing = if bodyless { Framing::Length(0) } else { answer.framing() };
        let close = framing == Framing::UntilClose || client_closes;
        answer.headers.retain(|(k, _)| !k.eq_ignore_ascii_case("connection"));
        if close {
            answer.set("Connection", "close");
        }
        answer.write(&mut writer)?;
        let limit = (fault == Some(Fault::Cut) && !cut_request && status == 200).then(|| cut_point(framing));
        let complete = relay_body(&mut up_reader, &mut writer, framing, schedule.throttle, limit)?;
        writer.flush()?;
        if !complete || close {
            let _ = writer.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

/// What the pull quota said of one manifest read.
struct QuotaAnswer {
    limit: u64,
    window: u64,
    remaining: u64,
    /// A `GET` beyond the quota: refused.
    spent: bool,
}

impl QuotaAnswer {
    /// The fields, as header lines.
    fn fields(&self) -> String {
        format!(
            "RateLimit-Limit: {};w={}\r\nRateLimit-Remaining: {};w={}\r\n",
            self.limit, self.window, self.remaining, self.window
        )
    }
}

/// Counts a manifest `GET` against the pull quota, if there is one; `HEAD`s are told
/// what is left without being counted.
fn pull_quota(shared: &Shared, schedule: &Schedule, method: &str, target: &str) -> Option<QuotaAnswer> {
    let (limit, window) = schedule.pull_quota?;
    if !target.contains("/manifests/") || !(method == "GET" || method == "HEAD") {
        return None;
    }
    let mut state = shared.state.lock().unwrap();
    let current = shared.started.elapsed().as_secs() / window.max(1);
    if state.quota.0 != current {
        state.quota = (current, 0);
    }
    let spent = method == "GET" && state.quota.1 >= limit;
    if method == "GET" && !spent {
        state.quota.1 += 1;
    }
    Some(QuotaAnswer { limit, window, remaining: limit - state.quota.1.min(limit), spent })
}

/// Whether this request fails, and how. Cuts go to blob bodies: an upload's request body,
/// or a blob `GET`'s answer.
fn decide(shared: &Shared, schedule: &Schedule, method: &str, target: &str, has_body: bool) -> Option<Fault> {
    let mut state = shared.state.lock().unwrap();
    if let Some((burst, per_second)) = schedule.manifest_rate {
        if (method == "GET" || method == "HEAD") && target.contains("/manifests/") {
            let now = Instant::now();
            let rate = f64::from(per_second.max(1));
            let (tokens, at) = state.bucket.unwrap_or((f64::from(burst), now));
            let tokens = (tokens + now.duration_since(at).as_secs_f64() * rate).min(f64::from(burst));
            if tokens >= 1.0 {
                state.bucket = Some((tokens - 1.0, now));
            } else {
                state.bucket = Some((tokens, now));
                let retry_after = ((1.0 - tokens) / rate).ceil().max(1.0) as u64;
                return Some(Fault::RateLimited { retry_after });
            }
        }
    }
    let index = state.requests;
    state.requests += 1;
    let blob_body =
        target.contains("/blobs/") && (has_body || (method == "GET" && target.contains("sha256:")));
    let cut = blob_body && {
        let body = state.bodies;
        state.bodies += 1;
        schedule.picks(schedule.cut_every, body)
    };
    let fault = if cut {
        Some(Fault::Cut)
    } else if schedule.picks(schedule.status_every, index) {
        Some(STATUS_FAULTS[(state.status_faults % 3) as usize])
    } else {
        None
    };
    let fault = fault?;
    let count = state.per_key.entry(key(method, target)).or_insert(0);
    if *count >= schedule.per_key {
        return None;
    }
    *count += 1;
    if fault != Fault::Cut {
        state.status_faults += 1;
    }
    Some(fault)
}

/// What a fault budget is counted against: the blob digest a request names (its `GET`,
/// its upload's closing `PUT`, a mount), or else its method and path.
fn key(method: &str, target: &str) -> String {
    for marker in ["sha256:", "sha256%3A", "sha256%3a"] {
        if let Some(at) = target.find(marker) {
            let hex: String = target[at + marker.len()..].chars().take(64).collect();
            return format!("blob {hex}");
        }
    }
    format!("{method} {}", target.split('?').next().unwrap_or(target))
}

/// Where a cut falls: halfway through a body of known length, after 256 KiB of a chunked one.
fn cut_point(framing: Framing) -> u64 {
    match framing {
        Framing::Length(n) => n / 2,
        _ => 256 * 1024,
    }
}

fn answer_fault(out: &mut TcpStream, fault: Fault, limit: Option<u32>, fields: &str) -> io::Result<()> {
    let (status, extra) = match fault {
        Fault::Status500 => ("500 Internal Server Error", String::new()),
        Fault::Status503 => ("503 Service Unavailable", String::new()),
        Fault::Status429 => ("429 Too Many Requests", "Retry-After: 1\r\n".to_owned()),
        Fault::RateLimited { retry_after } => (
            "429 Too Many Requests",
            format!(
                "Retry-After: {retry_after}\r\nRateLimit-Limit: {};w=1\r\nRateLimit-Remaining: 0\r\n",
                limit.unwrap_or(0)
            ),
        ),
        Fault::QuotaSpent => ("429 Too Many Requests", fields.to_owned()),
        Fault::Cut => unreachable!("a cut is not an answer"),
    };
    let body = r#"{"errors":[{"code":"UNAVAILABLE","message":"injected by the test proxy"}]}"#;
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    out.write_all(head.as_bytes())?;
    out.write_all(body.as_bytes())?;
    out.flush()?;
    let _ = out.shutdown(Shutdown::Both);
    Ok(())
}

/// Copies one body as framed. With `limit`, stops after that many payload bytes and
/// returns `false` (the cut); otherwise returns `true` once the body is complete.
fn relay_body(
    from: &mut impl BufRead,
    to: &mut impl Write,
    framing: Framing,
    throttle: Option<u64>,
    limit: Option<u64>,
) -> io::Result<bool> {
    let mut pace = Pace { started: Instant::now(), sent: 0, rate: throttle, limit };
    match framing {
        Framing::Length(n) => pace.copy(from, to, Some(n)),
        Framing::UntilClose => pace.copy(from, to, None),
        Framing::Chunked => loop {
            let mut size_line = String::new();
            if from.read_line(&mut size_line)? == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "chunked body cut short"));
            }
            let size = u64::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            to.write_all(size_line.as_bytes())?;
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    let mut trailer = String::new();
                    from.read_line(&mut trailer)?;
                    to.write_all(trailer.as_bytes())?;
                    if trailer.trim().is_empty() {
                        return Ok(true);
                    }
                }
            }
            if !pace.copy(from, to, Some(size))? {
                return Ok(false);
            }
            let mut crlf = [0u8; 2];
            from.read_exact(&mut crlf)?;
            to.write_all(&crlf)?;
        },
    }
}

/// Copies bytes at the throttle's rate, up to the cut.
struct Pace {
    started: Instant,
    sent: u64,
    rate: Option<u64>,
    limit: Option<u64>,
}

impl Pace {
    /// Copies `n` bytes (or up to EOF); `false` when the cut came first.
    fn copy(&mut self, from: &mut impl Read, to: &mut impl Write, n: Option<u64>) -> io::Result<bool> {
        let mut left = n;
        let mut buffer = [0u8; 16 * 1024];
        while left != Some(0) {
            let mut want = left.map_or(buffer.len() as u64, |l| l.min(buffer.len() as u64));
            if let Some(limit) = self.limit {
                if self.sent >= limit {
                    to.flush()?;
                    return Ok(false);
                }
                want = want.min(limit - self.sent).max(1);
            }
            let got = from.read(&mut buffer[..want as usize])?;
            if got == 0 {
                if n.is_some() {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "body cut short"));
                }
                return Ok(true);
            }
            to.write_all(&buffer[..got])?;
            self.sent += got as u64;
            left = left.map(|l| l - got as u64);
            if let Some(rate) = self.rate {
                let due = Duration::from_secs_f64(self.sent as f64 / rate as f64);
                if let Some(wait) = due.checked_sub(self.started.elapsed()) {
                    to.flush()?;
                    std::thread::sleep(wait);
                }
            }
        }
        Ok(true)
    }
}
