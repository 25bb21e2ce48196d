//! haproxy (Debian `haproxy`) as a test peer: a load balancer in front of `ferry serve`
//! replicas, or a redirector. Started on a free port, stopped on drop.
//!
//! Use with `#[path = "support/haproxy.rs"] mod haproxy;` beside `support`.
// Each test file uses some of these: `pub` marks what test files call.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::support::{free_port, wait_until_up};

/// A running haproxy, killed on drop.
pub struct Haproxy {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
}

impl Haproxy {
    /// haproxy with `frontend` (and any further sections) after an HTTP-mode `defaults`;
    /// `{port}` in it names the free port it listens on. The config goes to
    /// `dir/haproxy.cfg`.
    pub fn start(dir: &Path, sections: &str) -> Haproxy {
        let port = free_port();
        let config = dir.join("haproxy.cfg");
        let text = format!(
            "defaults\n  mode http\n  timeout connect 5s\n  timeout client 120s\n  timeout server 120s\n{}",
            sections.replace("{port}", &port.to_string())
        );
        std::fs::write(&config, text).expect("write haproxy.cfg");
        let mut child = Command::new("haproxy")
            .args(["-f", config.to_str().expect("utf-8 path"), "-db"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn haproxy");
        let url = format!("http://127.0.0.1:{port}");
        wait_until_up(&url, &mut child, "haproxy");
        Haproxy { child, url }
    }

    /// Answers every request with a 307 to `target` (same path).
    pub fn redirect(dir: &Path, target: &str) -> Haproxy {
        Haproxy::start(
            dir,
            &format!(
                "frontend redirect\n  bind 127.0.0.1:{{port}}\n  \
                 http-request redirect code 307 location {target}%[capture.req.uri]\n"
            ),
        )
    }

    /// Round robin over `backends` (`127.0.0.1:PORT`), every request on its own, no
    /// stickiness. `GET /healthz` every 200 ms takes a backend out of rotation after three
    /// failures (one slow answer on a busy test machine is no failure); meanwhile a
    /// connection a dead backend refuses is sent to another one.
    pub fn round_robin(dir: &Path, backends: &[String]) -> Haproxy {
        let mut sections = "frontend registry\n  bind 127.0.0.1:{port}\n  default_backend replicas\n\
                            backend replicas\n  balance roundrobin\n  option httpchk GET /healthz\n  \
                            timeout check 2s\n  option redispatch\n  retries 3\n"
            .to_owned();
        for (i, backend) in backends.iter().enumerate() {
            sections.push_str(&format!("  server r{i} {backend} check inter 200ms fall 3 rise 1\n"));
        }
        Haproxy::start(dir, &sections)
    }

    /// `127.0.0.1:PORT`, for image references.
    pub fn host(&self) -> String {
        self.url.trim_start_matches("http://").to_owned()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
