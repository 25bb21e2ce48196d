//! The azure driver against Azurite, Microsoft's storage emulator (npm `azurite`, which
//! `npm ci` installs from package.json).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, Mac};

use super::*;
use crate::driver::{Secret, StorageDriver};

/// Azurite's blob service on a free loopback port, data in memory, killed on drop.
struct Azurite {
    child: Child,
    endpoint: String,
}

impl Azurite {
    fn start() -> Option<Azurite> {
        let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let bin = workspace.join("node_modules/.bin/azurite-blob");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let spawned = Command::new(&bin)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            // No telemetry (there is no network to send it to), no files, any API version.
            .args(["--inMemoryPersistence", "--disableTelemetry", "--skipApiVersionCheck", "--silent"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) => {
                let required = ["FERRY_REQUIRE_PEERS", "CI"]
                    .iter()
                    .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty() && v != "0"));
                let fix = "run `npm ci` at the workspace root (package.json has azurite)";
                assert!(!required, "azurite is required (FERRY_REQUIRE_PEERS or CI is set): {e}; {fix}");
                eprintln!("SKIP: azurite not found at {} ({e}); {fix}", bin.display());
                return None;
            }
        };
        let server = Azurite { child, endpoint: format!("http://127.0.0.1:{port}/{EMULATOR_ACCOUNT}") };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "azurite did not listen on 127.0.0.1:{port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(server)
    }

    /// Creates a container, as an operator would before pointing ferry at it: a Create
    /// Container request signed with the account's shared key.
    async fn container(&self, name: &str) {
        let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let version = "2021-08-06";
        // Shared Key: the verb, eleven standard headers (all empty here), the x-ms-
        // headers, then the resource: /account + the URL's path (which, path-style, holds
        // the account again) + the query's parameters.
        let to_sign = format!(
            "PUT\n{}x-ms-date:{date}\nx-ms-version:{version}\n/{EMULATOR_ACCOUNT}/{EMULATOR_ACCOUNT}/{name}\nrestype:container",
            "\n".repeat(11)
        );
        let key = base64::engine::general_purpose::STANDARD.decode(EMULATOR_KEY).unwrap();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        mac.update(to_sign.as_bytes());
        let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let response = reqwest::Client::new()
            .put(format!("{}/{name}?restype=container", self.endpoint))
            .header("x-ms-date", date)
            .header("x-ms-version", version)
            .header("content-length", "0")
            .header("authorization", format!("SharedKey {EMULATOR_ACCOUNT}:{signature}"))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "create container: {:?}", response.text().await);
    }

    fn config(&self, container: &str) -> AzureConfig {
        AzureConfig {
            container: container.into(),
            prefix: "reg".into(),
            use_emulator: true,
            endpoint: Some(self.endpoint.clone()),
            chunk_size: MIN_CHUNK_SIZE,
            ..AzureConfig::default()
        }
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn behaves_like_a_driver_on_azurite() {
    let Some(server) = Azurite::start() else { return };
    server.container("ferry").await;
    let driver = open(&server.config("ferry")).unwrap();
    driver.health().await.unwrap();
    crate::driver::tests::exercise(&driver).await;

    // Segments over several blocks (1 MiB each), committed by one block list.
    let expected = crate::driver::object::exercise_segments(&driver, MIN_CHUNK_SIZE).await;

    // Presigned redirects, when asked for, are SAS URLs the emulator answers.
    assert_eq!(driver.redirect_url("blobs/big").await.unwrap(), None);
    let redirecting = open(&AzureConfig { redirect: true, ..server.config("ferry") }).unwrap();
    let url = redirecting.redirect_url("blobs/big").await.unwrap().unwrap();
    assert!(url.contains("sig=") && !url.contains(EMULATOR_KEY), "{url}");
    let fetched = reqwest::get(&url).await.unwrap();
    assert!(fetched.status().is_success(), "{url}: {}", fetched.status());
    assert_eq!(fetched.bytes().await.unwrap().len(), expected.len());
}

#[tokio::test]
async fn a_missing_container_or_a_wrong_key_fails_health_without_showing_the_key() {
    let Some(server) = Azurite::start() else { return };
    server.container("ferry").await;
    let missing = open(&server.config("nothing-here")).unwrap();
    let err = missing.health().await.unwrap_err().to_string();
    assert!(err.contains("container nothing-here"), "{err}");
    let wrong = AzureConfig {
        access_key: Some(Secret::new(base64::engine::general_purpose::STANDARD.encode("not-the-key"))),
        ..server.config("ferry")
    };
    let driver = open(&wrong).unwrap();
    let err = driver.health().await.unwrap_err().to_string();
    assert!(!err.contains("bm90LXRoZS1rZXk"), "{err}");
    assert!(!format!("{driver:?} {wrong:?}").contains("bm90LXRoZS1rZXk"));
}

#[test]
fn secrets_never_print() {
    let yaml = "storage: {driver: azure, azure: {account: acct, container: registry, access_key: SeCrEt}}";
    let config = crate::Config::from_yaml(yaml).unwrap();
    assert_eq!(config.storage.azure.access_key, Some(Secret::new("SeCrEt")));
    let printed = format!("{}\n{config:?}", config.to_yaml().unwrap());
    assert!(!printed.contains("SeCrEt"), "{printed}");
    assert!(printed.contains("access_key: <redacted>"), "{printed}");
}

#[test]
fn config_problems_name_the_key() {
    let ok = AzureConfig { container: "reg-1".into(), ..AzureConfig::default() };
    assert_eq!(ok.problem(), None);
    for (config, key) in [
        (AzureConfig::default(), "storage.azure.container"),
        (AzureConfig { container: "ab".into(), ..ok.clone() }, "storage.azure.container"),
        (AzureConfig { container: "My_Container".into(), ..ok.clone() }, "storage.azure.container"),
        (AzureConfig { container: "a--b".into(), ..ok.clone() }, "storage.azure.container"),
        (AzureConfig { chunk_size: 1024, ..ok.clone() }, "storage.azure.chunk_size"),
        (AzureConfig { endpoint: Some("nowhere".into()), ..ok.clone() }, "storage.azure.endpoint"),
        (AzureConfig { prefix: "a//b".into(), ..ok.clone() }, "storage.azure.prefix"),
    ] {
        assert_eq!(config.problem().map(|(k, _)| k), Some(key), "{config:?}");
    }
    let unknown = crate::Config::from_yaml("storage: {driver: azure, azure: {container: reg, bukket: x}}");
    assert!(unknown.unwrap_err().to_string().contains("bukket"));
}
