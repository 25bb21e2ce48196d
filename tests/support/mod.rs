//! Helpers shared by the end-to-end tests: temp dirs, free ports, a tiny HTTP/1.1 client
//! that sends exactly what it is told (even `..` in paths), `ferry serve` and
//! distribution (`docker-registry`) processes, and skopeo.
//!
//! Use from a test file with `#[path = "support/mod.rs"] mod support;`.
// Each test file compiles these helpers as a private module of its own and uses some of
// them: `pub` marks what test files call.
#![allow(dead_code, unreachable_pub)]

pub mod azure;
pub mod layout;
pub mod oci;
pub mod s3;
pub mod tls;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "ferry-test-{prefix}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port that was free a moment ago (for peers that cannot take port 0).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Deterministic pseudo-random bytes (xorshift64*).
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(n);
    out
}

pub fn sha256(bytes: &[u8]) -> String {
    ferry_core::digest::Digest::sha256(bytes).to_string()
}

/// Whether an external tool is on PATH. When peers are required (`FERRY_REQUIRE_PEERS=1`,
/// which `scripts/test-all.sh` sets, or `CI` set) a missing tool fails the test; otherwise
/// the test prints why it skips and returns early.
pub fn require(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        if peers_required() {
            panic!(
                "{tool} is required (FERRY_REQUIRE_PEERS or CI is set): apt-get install -y {}, \
                 or run scripts/test-all.sh, which installs it",
                apt_package(tool)
            );
        }
        eprintln!("SKIP: {tool} not found on PATH (apt-get install -y {})", apt_package(tool));
    }
    found
}

/// Whether `python3` can import `module` (a peer installed with pip, e.g. `oras`), under
/// the same rule as [`require`]: missing fails the test when peers are required.
pub fn require_python_module(module: &str, package: &str) -> bool {
    let found = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        if peers_required() {
            panic!(
                "the Python package {package} is required (FERRY_REQUIRE_PEERS or CI is set): \
                 python3 -m pip install {package}, or run scripts/test-all.sh, which installs it"
            );
        }
        eprintln!("SKIP: python3 cannot import {module} (python3 -m pip install {package})");
    }
    found
}

/// Whether a missing peer fails the test instead of skipping it.
pub(crate) fn peers_required() -> bool {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0");
    set("FERRY_REQUIRE_PEERS") || set("CI")
}

fn apt_package(tool: &str) -> &str {
    match tool {
        "docker-registry" => "docker-registry",
        "htpasswd" => "apache2-utils",
        "dockerd" => "docker.io",
        "promtool" => "prometheus",
        other => other,
    }
}

// ---------------------------------------------------------------- HTTP client

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header of this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// `errors[0].code` of the spec's error body.
    pub fn error_code(&self) -> String {
        self.json()["errors"][0]["code"].as_str().unwrap_or_default().to_owned()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Splits `http://host:port/path?q` (or `https://`) into `host:port` and `/path?q`.
pub fn split_url(url: &str) -> (String, String) {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .unwrap_or_else(|| panic!("not an http:// URL: {url}"));
    match rest.find('/') {
        Some(i) => (rest[..i].to_owned(), rest[i..].to_owned()),
        None => (rest.to_owned(), "/".to_owned()),
    }
}

/// Resolves a `Location` header against the URL of the registry.
pub fn resolve(base: &str, location: &str) -> String {
    if location.starts_with("http://") {
        location.to_owned()
    } else {
        let (host, _) = split_url(base);
        format!("http://{host}{location}")
    }
}

pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

pub fn request(method: &str, url: &str) -> Request {
    Request { method: method.to_owned(), url: url.to_owned(), headers: Vec::new(), body: Vec::new() }
}

pub fn get(url: &str) -> Response {
    request("GET", url).send()
}

pub fn head(url: &str) -> Response {
    request("HEAD", url).send()
}

impl Request {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn basic(self, user: &str, password: &str) -> Self {
        use base64::Engine as _;
        let value = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.header("Authorization", &format!("Basic {value}"))
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Connects and writes the request head (and the body, if `with_body`).
    pub fn start(&self, with_body: bool, content_length: Option<usize>) -> TcpStream {
        let (host, path) = split_url(&self.url);
        let mut stream = TcpStream::connect(&host).unwrap_or_else(|e| panic!("connect {host}: {e}"));
        stream.set_read_timeout(Some(Duration::from_secs(120))).ok();
        let mut head = format!("{} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n", self.method);
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !self.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-length")) {
            let n = content_length.unwrap_or(self.body.len());
            if n > 0 || !matches!(self.method.as_str(), "GET" | "HEAD" | "DELETE") {
                head.push_str(&format!("Content-Length: {n}\r\n"));
            }
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).expect("write request head");
        if with_body {
            stream.write_all(&self.body).expect("write request body");
        }
        stream
    }

    pub fn send(self) -> Response {
        let stream = self.start(true, None);
        read_response(stream, self.method == "HEAD")
    }
}

pub fn read_response(stream: TcpStream, head: bool) -> Response {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).expect("status line");
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).expect("header line");
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let mut response = Response { status, headers, body: Vec::new() };
    if head || status == 204 || status == 304 {
        return response;
    }
    let chunked = response.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line).expect("chunk size");
            let size =
                usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16).expect("chunk size");
            if size == 0 {
                break;
            }
            let mut chunk = vec![0u8; size];
            reader.read_exact(&mut chunk).expect("chunk");
            response.body.extend_from_slice(&chunk);
            line.clear();
            reader.read_line(&mut line).expect("chunk end");
        }
    } else if let Some(n) = response.header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        let mut body = vec![0u8; n];
        reader.read_exact(&mut body).expect("body");
        response.body = body;
    } else {
        reader.read_to_end(&mut response.body).expect("body");
    }
    response
}

/// Waits until `GET <url>/v2/` answers at all.
pub fn wait_until_up(url: &str, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let (host, _) = split_url(url);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early with {status}");
        }
        if TcpStream::connect(&host).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not start listening on {url}");
}

// ---------------------------------------------------------------- ferry serve

/// The `ferry` binary of this build (test targets of ferry-cli get it from Cargo).
pub fn ferry_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ferry"))
}

/// A running `ferry serve`, killed on drop.
pub struct Ferry {
    child: Child,
    /// `http://127.0.0.1:PORT` (`https://` when started with `--tls-cert`)
    pub url: String,
}

impl Ferry {
    /// `ferry serve --addr 127.0.0.1:0 --log-level warn <args>`; the URL is read from the
    /// line it prints on stdout.
    pub fn start(args: &[&str]) -> Ferry {
        Ferry::start_at("127.0.0.1:0", args)
    }

    pub fn start_at(addr: &str, args: &[&str]) -> Ferry {
        Ferry::spawn(addr, args, Stdio::inherit())
    }

    /// Like [`Ferry::with_root`], with the server's log written to `log`.
    pub fn with_root_logging_to(dir: &Path, extra: &[&str], log: &Path) -> Ferry {
        let root = dir.to_str().expect("utf-8 path");
        let mut args = vec!["--root", root];
        args.extend_from_slice(extra);
        let file = std::fs::File::create(log).expect("create log file");
        Ferry::spawn("127.0.0.1:0", &args, Stdio::from(file))
    }

    fn spawn(addr: &str, args: &[&str], stderr: Stdio) -> Ferry {
        let mut child = Command::new(ferry_bin())
            .args(["serve", "--addr", addr, "--log-level", "warn"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn ferry serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read ferry's first line");
        let url = line.trim().rsplit(' ').next().unwrap_or_default().to_owned();
        assert!(
            url.starts_with("http://") || url.starts_with("https://"),
            "ferry serve printed {line:?}; args {args:?}"
        );
        Ferry { child, url }
    }

    /// `ferry serve --config <config> <extra>`, nothing else: the file says where to
    /// listen. `None` when ferry exits before it serves (its port was taken meanwhile).
    pub fn with_config(config: &Path, extra: &[&str]) -> Option<Ferry> {
        Ferry::with_config_logging_to(config, extra, Stdio::inherit())
    }

    /// Like [`Ferry::with_config`], with the server's log going to `stderr`.
    pub fn with_config_logging_to(config: &Path, extra: &[&str], stderr: Stdio) -> Option<Ferry> {
        let mut child = Command::new(ferry_bin())
            .arg("serve")
            .arg("--config")
            .arg(config)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn ferry serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read ferry's first line");
        let url = line.trim().rsplit(' ').next().unwrap_or_default().to_owned();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        Some(Ferry { child, url })
    }

    /// Filesystem storage under `dir`.
    pub fn with_root(dir: &Path, extra: &[&str]) -> Ferry {
        let root = dir.to_str().expect("utf-8 path");
        let mut args = vec!["--root", root];
        args.extend_from_slice(extra);
        Ferry::start(&args)
    }

    /// `127.0.0.1:PORT`, for image references.
    pub fn host(&self) -> String {
        split_url(&self.url).0
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no cleanup, no graceful shutdown.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        self.child.wait().expect("wait for ferry")
    }
}

impl Drop for Ferry {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------- distribution

/// The config file of a distribution test peer: filesystem storage under `root`, deletes
/// on, `127.0.0.1:port`, Basic auth when `opts` has an htpasswd file. `ferry serve
/// --config` reads the very same file ([`Ferry::with_config`]).
pub fn distribution_config(root: &Path, port: u16, opts: &DistributionOpts) -> String {
    let driver = match &opts.storage {
        Some(driver) => driver.clone(),
        None => format!("filesystem: {{rootdirectory: {}}}", root.display()),
    };
    let mut yaml = format!(
        "version: 0.1\nlog: {{level: error, accesslog: {{disabled: {}}}}}\n\
         storage: {{{driver}, delete: {{enabled: true}}}}\n\
         http: {{addr: 127.0.0.1:{port}}}\n",
        opts.access_log.is_none(),
    );
    if let Some(htpasswd) = &opts.htpasswd {
        yaml.push_str(&format!("auth: {{htpasswd: {{realm: test, path: {}}}}}\n", htpasswd.display()));
    }
    yaml
}

#[derive(Debug, Clone, Default)]
pub struct DistributionOpts {
    /// An htpasswd file (bcrypt) to turn Basic auth on.
    pub htpasswd: Option<PathBuf>,
    /// Where to write the access log (one line per request, e.g. `"GET /v2/<name>/blobs/
    /// <digest> HTTP/1.1" 200`); off when `None`.
    pub access_log: Option<PathBuf>,
    /// The storage driver's part of the `storage` section, instead of filesystem storage
    /// under `root` (`support::s3::S3Server::distribution_storage`).
    pub storage: Option<String>,
}

/// A running distribution 2.8 (`docker-registry serve`), killed on drop.
pub struct Distribution {
    child: Child,
    pub url: String,
    dir: TempDir,
}

impl Distribution {
    /// Starts on a free loopback port with its storage in a temp dir.
    pub fn start(opts: &DistributionOpts) -> Distribution {
        let dir = TempDir::new("distribution");
        for _attempt in 0..5 {
            let port = free_port();
            if let Some(child) = Distribution::spawn(&dir, port, opts) {
                return Distribution { child, url: format!("http://127.0.0.1:{port}"), dir };
            }
        }
        panic!("docker-registry did not start");
    }

    /// Stops this registry and starts it again on the same port and storage with `opts`:
    /// seed it without auth, then turn auth on.
    pub fn restart(&mut self, opts: &DistributionOpts) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let port: u16 = self.url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
        for _attempt in 0..20 {
            if let Some(child) = Distribution::spawn(&self.dir, port, opts) {
                self.child = child;
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("docker-registry did not start again on port {port}");
    }

    /// Stops the registry (SIGKILL); [`Distribution::restart`] starts it again.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The storage driver's root directory: blobs live under
    /// `docker/registry/v2/blobs/sha256/<xx>/<hex>/data`.
    pub fn storage(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `None` when the process exited at once (the port was taken in the meantime).
    fn spawn(dir: &TempDir, port: u16, opts: &DistributionOpts) -> Option<Child> {
        let yaml = distribution_config(&dir.join("data"), port, opts);
        let config = dir.join("config.yml");
        std::fs::write(&config, yaml).expect("write distribution config");
        let stdout = match &opts.access_log {
            Some(path) => Stdio::from(std::fs::File::create(path).expect("create the access log")),
            None => Stdio::null(),
        };
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(stdout)
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn docker-registry");
        let url = format!("http://127.0.0.1:{port}");
        std::thread::sleep(Duration::from_millis(100));
        if let Ok(Some(_)) = child.try_wait() {
            return None;
        }
        wait_until_up(&url, &mut child, "docker-registry");
        Some(child)
    }

    pub fn host(&self) -> String {
        split_url(&self.url).0
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- skopeo

/// Runs `skopeo --insecure-policy <args>`, failing the test with skopeo's stderr if it fails.
pub fn skopeo(args: &[&str]) -> Output {
    let output = skopeo_unchecked(args);
    assert!(
        output.status.success(),
        "skopeo {} failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs skopeo and returns whatever happened.
pub fn skopeo_unchecked(args: &[&str]) -> Output {
    Command::new("skopeo").arg("--insecure-policy").args(args).output().expect("run skopeo")
}

/// An htpasswd file with one bcrypt user, written without the `htpasswd` tool.
pub fn write_htpasswd(dir: &TempDir, user: &str, password: &str) -> PathBuf {
    let hash = bcrypt_hash(password);
    let path = dir.join("htpasswd");
    std::fs::write(&path, format!("{user}:{hash}\n")).expect("write htpasswd");
    path
}

fn bcrypt_hash(password: &str) -> String {
    bcrypt::hash(password, 5).expect("bcrypt")
}
