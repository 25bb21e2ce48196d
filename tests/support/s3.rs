//! A real S3 server for the tests: `s3s-fs` (crates.io; `scripts/test-all.sh` installs it),
//! serving a temp directory on a free loopback port with Signature V4 credentials.
//!
//! s3s-fs keeps each bucket as a directory of files, so a bucket is made by making its
//! directory. With `FERRY_REQUIRE_PEERS=1` or `CI` set a missing s3s-fs fails the test.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, peers_required, TempDir};

pub const ACCESS_KEY: &str = "ferry-test-access";
/// Never to appear in a log: tests grep for it.
pub const SECRET_KEY: &str = "ferry-test-secret-5d2c0f9e";

/// A running s3s-fs, killed on drop.
pub struct S3Server {
    child: Child,
    dir: TempDir,
    pub endpoint: String,
}

impl S3Server {
    /// Starts s3s-fs; `None` (the test skips) when it is missing and peers are not required.
    pub fn start() -> Option<S3Server> {
        let dir = TempDir::new("s3s-fs");
        for _attempt in 0..5 {
            let port = free_port();
            let spawned = Command::new("s3s-fs")
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let mut child = match spawned {
                Ok(child) => child,
                Err(e) => {
                    let fix = "cargo install s3s-fs --version 0.14.1 --features binary --locked, or run \
                               scripts/test-all.sh, which installs it";
                    assert!(
                        !peers_required(),
                        "s3s-fs is required (FERRY_REQUIRE_PEERS or CI is set): {e}; {fix}"
                    );
                    eprintln!("SKIP: s3s-fs not found ({e}); {fix}");
                    return None;
                }
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(S3Server { child, dir, endpoint: format!("http://127.0.0.1:{port}") });
                }
                if child.try_wait().ok().flatten().is_some() {
                    break; // the port was taken meanwhile
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("s3s-fs did not start");
    }

    /// Makes a bucket and returns its name.
    pub fn bucket(&self, name: &str) -> String {
        std::fs::create_dir_all(self.dir.join(name)).expect("create the bucket directory");
        name.to_owned()
    }

    /// The `storage` section of ferry's config for `bucket` (keys under `ferry/`).
    pub fn ferry_storage(&self, bucket: &str) -> String {
        format!(
            "{{driver: s3, s3: {{bucket: {bucket}, region: us-east-1, endpoint: '{}', prefix: ferry, \
             allow_http: true, access_key_id: {ACCESS_KEY}, secret_access_key: {SECRET_KEY}}}}}",
            self.endpoint
        )
    }

    /// The driver part of distribution's `storage` section for `bucket`, redirects off.
    pub fn distribution_storage(&self, bucket: &str) -> String {
        format!(
            "s3: {{accesskey: {ACCESS_KEY}, secretkey: {SECRET_KEY}, region: us-east-1, regionendpoint: '{}', \
             forcepathstyle: true, bucket: {bucket}, rootdirectory: /ferry}}, redirect: {{disable: true}}",
            self.endpoint
        )
    }

    /// Every object key in `bucket`, as s3s-fs stores them (files under the bucket).
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        let root = self.dir.join(bucket);
        let mut keys = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Ok(key) = path.strip_prefix(&root) {
                    keys.push(key.to_string_lossy().into_owned());
                }
            }
        }
        keys.sort();
        keys
    }
}

impl S3Server {
    /// Stops the server (SIGKILL), as if the store became unreachable.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}
