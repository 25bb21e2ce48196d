//! Helpers of the service tests: `ferry sync --watch` as a process with its HTTP port,
//! its log and its per-run reports, and Prometheus's HTTP API. Included with
//! `#[path = "support/service.rs"] mod service;` next to `support`.
// Each test file compiles these helpers as a private module of its own and uses some of
// them: `pub` marks what test files call.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{ferry_bin, free_port, get, TempDir};

/// A running `ferry sync --watch`, killed on drop.
pub struct Watch {
    child: Child,
    /// `http://127.0.0.1:PORT` of its `--listen` port.
    pub url: String,
    pub log: PathBuf,
    pub reports: PathBuf,
    _docker_config: TempDir,
}

impl Watch {
    /// `ferry sync --watch --listen 127.0.0.1:PORT --report-dir DIR/reports <args>`, with
    /// stdout and stderr in DIR/watch.log and no docker credentials; waits for the port.
    pub fn start(dir: &Path, args: &[&str]) -> Watch {
        let port = free_port();
        let reports = dir.join("reports");
        std::fs::create_dir_all(&reports).unwrap();
        let log = dir.join("watch.log");
        let file = std::fs::File::create(&log).unwrap();
        let docker_config = TempDir::new("watch-docker");
        let listen = format!("127.0.0.1:{port}");
        let child = Command::new(ferry_bin())
            .args(["sync", "--watch", "--listen", &listen, "--progress", "plain"])
            .arg("--report-dir")
            .arg(&reports)
            .args(args)
            .env("DOCKER_CONFIG", docker_config.path())
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("spawn ferry sync --watch");
        let mut watch =
            Watch { child, url: format!("http://{listen}"), log, reports, _docker_config: docker_config };
        watch.wait_for("the HTTP port", Duration::from_secs(30), |w| {
            std::net::TcpStream::connect(&listen).is_ok() || w.exited()
        });
        assert!(!watch.exited(), "ferry sync --watch exited at start:\n{}", watch.log_text());
        watch
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The reports written so far, oldest first.
    pub fn reports(&self) -> Vec<Value> {
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&self.reports)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| (e.metadata().unwrap().modified().unwrap(), e.path()))
            .collect();
        files.sort();
        files
            .into_iter()
            .filter_map(|(_, path)| serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok())
            .collect()
    }

    /// Polls `done` every 50 ms; fails the test with the log after `timeout`.
    pub fn wait_for(&mut self, what: &str, timeout: Duration, mut done: impl FnMut(&mut Watch) -> bool) {
        let deadline = Instant::now() + timeout;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "waited {timeout:?} for {what}; the log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `n` runs have written their reports.
    pub fn wait_runs(&mut self, n: usize, timeout: Duration) -> Vec<Value> {
        self.wait_for(&format!("{n} run(s)"), timeout, |w| w.reports().len() >= n);
        self.reports()
    }

    /// `/readyz`'s status and body.
    pub fn readyz(&self) -> (u16, String) {
        let r = get(&format!("{}/readyz", self.url));
        (r.status, r.text())
    }

    pub fn metrics(&self) -> String {
        let r = get(&format!("{}/metrics", self.url));
        assert_eq!(r.status, 200);
        r.text()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM; returns the exit status and the time the process took to exit.
    pub fn terminate(&mut self) -> (ExitStatus, Duration) {
        self.terminate_after(None)
    }

    /// Sends SIGTERM, and a second one `then` later if it is given; returns the exit status
    /// and the time from the first signal to the exit.
    pub fn terminate_after(&mut self, then: Option<Duration>) -> (ExitStatus, Duration) {
        let sent = Instant::now();
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        if let Some(then) = then {
            std::thread::sleep(then);
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
        }
        let status = self.child.wait().expect("wait for ferry");
        (status, sent.elapsed())
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of a metric line `name{labels} value` in an exposition (labels as written,
/// `""` for none); `None` when absent.
pub fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

/// The sum of every sample of a metric (any labels).
pub fn sum_of(exposition: &str, name: &str) -> f64 {
    exposition
        .lines()
        .filter(|l| l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b'{' | b' ')))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `promtool check metrics` over an exposition: `Ok` or promtool's complaints.
pub fn promtool_check(exposition: &str) -> Result<(), String> {
    use std::io::Write as _;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    child.stdin.take().unwrap().write_all(exposition.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }
}

/// A running Prometheus (Debian's `prometheus`) scraping `targets` (job name, host:port)
/// every second, killed on drop.
pub struct Prometheus {
    child: Child,
    pub url: String,
    _dir: TempDir,
}

impl Prometheus {
    pub fn start(targets: &[(&str, &str)]) -> Prometheus {
        let dir = TempDir::new("prometheus");
        let mut config =
            String::from("global: {scrape_interval: 1s, scrape_timeout: 900ms}\nscrape_configs:\n");
        for (job, target) in targets {
            config
                .push_str(&format!("  - job_name: {job}\n    static_configs: [{{targets: ['{target}']}}]\n"));
        }
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn prometheus");
        let prometheus = Prometheus { child, url: format!("http://127.0.0.1:{port}"), _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        while get_ok(&format!("{}/-/ready", prometheus.url)) != Some(200) {
            assert!(Instant::now() < deadline, "prometheus did not get ready in 60 s");
            std::thread::sleep(Duration::from_millis(200));
        }
        prometheus
    }

    /// An instant query through `/api/v1/query`: each series' labels and value.
    pub fn query(&self, promql: &str) -> Vec<(Value, f64)> {
        let r = get(&format!("{}/api/v1/query?query={}", self.url, encode(promql)));
        assert_eq!(r.status, 200, "{promql}: {}", r.text());
        let body = r.json();
        assert_eq!(body["status"], "success", "{promql}: {body}");
        body["data"]["result"]
            .as_array()
            .expect("a vector")
            .iter()
            .map(|s| (s["metric"].clone(), s["value"][1].as_str().unwrap().parse().unwrap()))
            .collect()
    }

    /// The one value of a query that yields a single series, once it does.
    pub fn value(&self, promql: &str) -> Option<f64> {
        match self.query(promql).as_slice() {
            [(_, value)] => Some(*value),
            _ => None,
        }
    }

    /// Polls `promql` every 200 ms until `want` holds of its value; returns the last value.
    pub fn wait_value(&self, promql: &str, timeout: Duration, want: impl Fn(f64) -> bool) -> Option<f64> {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.value(promql);
            if value.is_some_and(&want) || Instant::now() >= deadline {
                return value;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A GET's status, or `None` when nothing listens yet.
fn get_ok(url: &str) -> Option<u16> {
    let (host, _) = crate::support::split_url(url);
    std::net::TcpStream::connect(&host).ok()?;
    Some(get(url).status)
}

/// Percent-encodes a query parameter (RFC 3986's unreserved characters stay).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
