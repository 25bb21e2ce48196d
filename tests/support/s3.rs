//! A real S3 server for the tests: Garage (crates.io; `scripts/test-all.sh` installs it),
//! a single node on free loopback ports over a temp directory, with Signature V4
//! credentials.
//!
//! Garage's `--single-node --default-bucket` lays out the node and makes one key and one
//! bucket at start-up; further buckets are made with its command line, as an operator
//! would. With `FERRY_REQUIRE_PEERS=1` or `CI` set a missing Garage fails the test.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, peers_required, TempDir};

/// Garage's key ids are `GK` and 24 hex digits; its secrets 64 hex digits.
pub const ACCESS_KEY: &str = "GK0f3c9e1d2b4a5968778695a4";
/// Never to appear in a log: tests grep for it.
pub const SECRET_KEY: &str = "5d2c0f9e7a4b1c3d8e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d";
/// The bucket Garage makes at start-up.
const DEFAULT_BUCKET: &str = "ferry-default";

/// A running Garage, killed on drop.
pub struct S3Server {
    child: Child,
    dir: TempDir,
    pub endpoint: String,
}

impl S3Server {
    /// Starts Garage; `None` (the test skips) when it is missing and peers are not required.
    pub fn start() -> Option<S3Server> {
        let dir = TempDir::new("garage");
        for _attempt in 0..5 {
            let (s3_port, rpc_port) = (free_port(), free_port());
            std::fs::write(dir.join("garage.toml"), garage_toml(&dir, s3_port, rpc_port)).unwrap();
            let spawned = Command::new("garage")
                .arg("-c")
                .arg(dir.join("garage.toml"))
                .args(["server", "--single-node", "--default-bucket"])
                .env("GARAGE_DEFAULT_ACCESS_KEY", ACCESS_KEY)
                .env("GARAGE_DEFAULT_SECRET_KEY", SECRET_KEY)
                .env("GARAGE_DEFAULT_BUCKET", DEFAULT_BUCKET)
                .env("RUST_LOG", "error")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let mut child = match spawned {
                Ok(child) => child,
                Err(e) => {
                    let fix = "cargo install garage --version 2.5.0 --locked --no-default-features \
                               --features bundled-libs,sqlite, or run scripts/test-all.sh, which installs it";
                    assert!(
                        !peers_required(),
                        "garage is required (FERRY_REQUIRE_PEERS or CI is set): {e}; {fix}"
                    );
                    eprintln!("SKIP: garage not found ({e}); {fix}");
                    return None;
                }
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if std::net::TcpStream::connect(("127.0.0.1", s3_port)).is_ok() {
                    let server = S3Server { child, dir, endpoint: format!("http://127.0.0.1:{s3_port}") };
                    server.wait_for_default_bucket();
                    return Some(server);
                }
                if child.try_wait().ok().flatten().is_some() {
                    break; // a port was taken meanwhile
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("garage did not start");
    }

    /// Garage answers on its S3 port a moment before the default key and bucket exist.
    fn wait_for_default_bucket(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.garage(&["bucket", "info", DEFAULT_BUCKET]).is_err() {
            assert!(Instant::now() < deadline, "garage made no default bucket");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs Garage's command line against this server.
    fn garage(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("garage")
            .arg("-c")
            .arg(self.dir.join("garage.toml"))
            .args(args)
            .env("RUST_LOG", "error")
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            Ok(text)
        } else {
            Err(text)
        }
    }

    /// Makes a bucket the test key may read and write, and returns its name.
    pub fn bucket(&self, name: &str) -> String {
        self.garage(&["bucket", "create", name]).expect("garage bucket create");
        self.garage(&["bucket", "allow", "--read", "--write", "--owner", name, "--key", ACCESS_KEY])
            .expect("garage bucket allow");
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

    /// Every object key in `bucket`, sorted, as S3's `ListObjectsV2` gives them.
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        use futures_util::TryStreamExt;
        use object_store::ObjectStore;
        let store = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .build()
            .expect("an S3 client for the test server");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let objects: Vec<object_store::ObjectMeta> =
            runtime.block_on(store.list(None).try_collect()).expect("list the bucket");
        let mut keys: Vec<String> = objects.into_iter().map(|o| o.location.to_string()).collect();
        keys.sort();
        keys
    }

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

/// A single node's configuration: sqlite metadata, one copy of each block, everything on
/// 127.0.0.1 (so the RPC secret, which only guards node-to-node traffic, can be fixed).
fn garage_toml(dir: &TempDir, s3_port: u16, rpc_port: u16) -> String {
    let secret = "1b5e2a9c".repeat(8);
    format!(
        "metadata_dir = '{}'\ndata_dir = '{}'\ndb_engine = 'sqlite'\nreplication_factor = 1\n\
         rpc_bind_addr = '127.0.0.1:{rpc_port}'\nrpc_public_addr = '127.0.0.1:{rpc_port}'\nrpc_secret = '{secret}'\n\
         [s3_api]\ns3_region = 'us-east-1'\napi_bind_addr = '127.0.0.1:{s3_port}'\n",
        dir.join("meta").display(),
        dir.join("data").display(),
    )
}
