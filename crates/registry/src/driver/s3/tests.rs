//! The s3 driver against a real S3 server, Garage.

use super::*;
use crate::driver::StorageDriver;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A real S3 server, Garage (which `scripts/test-all.sh` installs), a single node on
/// free loopback ports over a temp directory, with one bucket, `ferry`, made at start-up.
struct Garage {
    child: Child,
    dir: std::path::PathBuf,
    endpoint: String,
}

/// Garage's key ids are `GK` and 24 hex digits; its secrets 64 hex digits.
const KEY: &str = "GKd41d8cd98f00b204e9800998";
const SECRET: &str = "d41d8cd98f00b204e9800998ecf8427ed41d8cd98f00b204e9800998ecf8427e";

impl Garage {
    fn start() -> Option<Garage> {
        let dir = std::env::temp_dir().join(format!("ferry-s3-driver-{}", crate::random::random_hex(6)));
        std::fs::create_dir_all(&dir).unwrap();
        let port = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let (s3_port, rpc_port) = (port(), port());
        let toml = format!(
            "metadata_dir = '{0}/meta'\ndata_dir = '{0}/data'\ndb_engine = 'sqlite'\nreplication_factor = 1\n\
             rpc_bind_addr = '127.0.0.1:{rpc_port}'\nrpc_secret = '{1}'\n\
             [s3_api]\ns3_region = 'us-east-1'\napi_bind_addr = '127.0.0.1:{s3_port}'\n",
            dir.display(),
            "7e".repeat(32),
        );
        std::fs::write(dir.join("garage.toml"), toml).unwrap();
        let spawned = Command::new("garage")
            .arg("-c")
            .arg(dir.join("garage.toml"))
            .args(["server", "--single-node", "--default-bucket"])
            .env("GARAGE_DEFAULT_ACCESS_KEY", KEY)
            .env("GARAGE_DEFAULT_SECRET_KEY", SECRET)
            .env("GARAGE_DEFAULT_BUCKET", "ferry")
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) => {
                let required = ["FERRY_REQUIRE_PEERS", "CI"]
                    .iter()
                    .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty() && v != "0"));
                assert!(
                    !required,
                    "garage is required (FERRY_REQUIRE_PEERS or CI is set): {e}; run scripts/test-all.sh, \
                     which installs it"
                );
                eprintln!("SKIP: garage not found ({e}); scripts/test-all.sh installs it");
                return None;
            }
        };
        let server = Garage { child, dir, endpoint: format!("http://127.0.0.1:{s3_port}") };
        // The S3 port answers a moment before the default key and bucket exist.
        for _ in 0..400 {
            let ready = Command::new("garage")
                .arg("-c")
                .arg(server.dir.join("garage.toml"))
                .args(["bucket", "info", "ferry"])
                .env("RUST_LOG", "error")
                .output()
                .is_ok_and(|out| out.status.success());
            if ready && std::net::TcpStream::connect(("127.0.0.1", s3_port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(server)
    }

    fn config(&self) -> S3Config {
        S3Config {
            bucket: "ferry".into(),
            region: Some("us-east-1".into()),
            endpoint: Some(self.endpoint.clone()),
            prefix: "reg".into(),
            allow_http: true,
            access_key_id: Some(Secret::new(KEY)),
            secret_access_key: Some(Secret::new(SECRET)),
            chunk_size: MIN_CHUNK_SIZE,
            ..S3Config::default()
        }
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn behaves_like_a_driver_on_a_real_s3_server() {
    let Some(server) = Garage::start() else { return };
    let driver = open(&server.config()).unwrap();
    driver.health().await.unwrap();
    crate::driver::tests::exercise(&driver).await;

    // Segments over several 5 MiB parts.
    crate::driver::object::exercise_segments(&driver, MIN_CHUNK_SIZE).await;

    // Presigned redirects, when asked for, are URLs the server answers.
    assert_eq!(driver.redirect_url("blobs/big").await.unwrap(), None);
    let redirecting = open(&S3Config { redirect: true, ..server.config() }).unwrap();
    let url = redirecting.redirect_url("blobs/big").await.unwrap().unwrap();
    assert!(url.contains("X-Amz-Signature=") && !url.contains(SECRET), "{url}");
}

#[tokio::test]
async fn wrong_credentials_fail_health_without_showing_the_secret() {
    let Some(server) = Garage::start() else { return };
    let config = S3Config { secret_access_key: Some(Secret::new("not-the-secret")), ..server.config() };
    let driver = open(&config).unwrap();
    let err = driver.health().await.unwrap_err().to_string();
    assert!(!err.contains("not-the-secret"), "{err}");
    assert!(!format!("{driver:?} {config:?}").contains("not-the-secret"));
    assert!(!format!("{:?}", server.config()).contains(SECRET));
}

#[test]
fn secrets_never_print() {
    let yaml =
        "storage: {driver: s3, s3: {bucket: registry, access_key_id: AKIDX, secret_access_key: SeCrEt}}";
    let config = crate::Config::from_yaml(yaml).unwrap();
    assert_eq!(config.storage.s3.secret_access_key, Some(Secret::new("SeCrEt")));
    let printed = format!("{}\n{config:?}", config.to_yaml().unwrap());
    assert!(!printed.contains("SeCrEt") && !printed.contains("AKIDX"), "{printed}");
    assert!(printed.contains("secret_access_key: <redacted>"), "{printed}");
}

#[test]
fn config_problems_name_the_key() {
    let ok = S3Config { bucket: "reg.example-1".into(), ..S3Config::default() };
    assert_eq!(ok.problem(), None);
    for (config, key) in [
        (S3Config::default(), "storage.s3.bucket"),
        (S3Config { bucket: "b".into(), ..ok.clone() }, "storage.s3.bucket"),
        (S3Config { bucket: "My_Bucket".into(), ..ok.clone() }, "storage.s3.bucket"),
        (S3Config { bucket: "-bucket".into(), ..ok.clone() }, "storage.s3.bucket"),
        (S3Config { chunk_size: 1024, ..ok.clone() }, "storage.s3.chunk_size"),
        (S3Config { access_key_id: Some(Secret::new("k")), ..ok.clone() }, "storage.s3.access_key_id"),
        (S3Config { prefix: "a//b".into(), ..ok.clone() }, "storage.s3.prefix"),
    ] {
        assert_eq!(config.problem().map(|(k, _)| k), Some(key), "{config:?}");
    }
}
