//! A real Azure Blob Storage service for the tests: Azurite, Microsoft's storage emulator
//! (npm `azurite`, which `npm ci` installs from package.json), its blob service on a free
//! loopback port with the data in memory, and the emulator's well-known account.
//!
//! Containers are made as an operator would, with a Create Container request signed with
//! the account's shared key. With `FERRY_REQUIRE_PEERS=1` or `CI` set a missing Azurite
//! fails the test.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, Mac};

use super::{free_port, peers_required, request};

/// The emulator's account, which every Azure SDK knows.
pub const ACCOUNT: &str = "devstoreaccount1";
/// The emulator's account key: public, published by Microsoft with Azurite. Tests grep
/// logs for it all the same.
pub const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A running Azurite blob service, killed on drop.
pub struct AzureServer {
    child: Child,
    /// The account's URL, path-style: `http://127.0.0.1:<port>/devstoreaccount1`.
    pub endpoint: String,
}

impl AzureServer {
    /// Starts Azurite; `None` (the test skips) when it is missing and peers are not required.
    pub fn start() -> Option<AzureServer> {
        let bin =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../node_modules/.bin/azurite-blob");
        for _attempt in 0..5 {
            let port = free_port();
            let spawned = Command::new(&bin)
                .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
                // No telemetry (there is no network to send it to), no files, any API version.
                .args(["--inMemoryPersistence", "--disableTelemetry", "--skipApiVersionCheck", "--silent"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let mut child = match spawned {
                Ok(child) => child,
                Err(e) => {
                    let fix = "run `npm ci` at the workspace root (package.json has azurite), or scripts/test-all.sh";
                    assert!(
                        !peers_required(),
                        "azurite is required (FERRY_REQUIRE_PEERS or CI is set): {e}; {fix}"
                    );
                    eprintln!("SKIP: azurite not found at {} ({e}); {fix}", bin.display());
                    return None;
                }
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(AzureServer {
                        child,
                        endpoint: format!("http://127.0.0.1:{port}/{ACCOUNT}"),
                    });
                }
                if child.try_wait().ok().flatten().is_some() {
                    break; // a port was taken meanwhile
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("azurite did not start");
    }

    /// Makes a container and returns its name.
    pub fn container(&self, name: &str) -> String {
        let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let version = "2021-08-06";
        // Shared Key: the verb, eleven standard headers (all empty here), the x-ms-
        // headers, then /account + the URL's path (which, path-style, holds the account
        // again) + the query's parameters.
        let to_sign = format!(
            "PUT\n{}x-ms-date:{date}\nx-ms-version:{version}\n/{ACCOUNT}/{ACCOUNT}/{name}\nrestype:container",
            "\n".repeat(11)
        );
        let key = base64::engine::general_purpose::STANDARD.decode(ACCOUNT_KEY).unwrap();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        mac.update(to_sign.as_bytes());
        let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let r = request("PUT", &format!("{}/{name}?restype=container", self.endpoint))
            .header("x-ms-date", &date)
            .header("x-ms-version", version)
            .header("Authorization", &format!("SharedKey {ACCOUNT}:{signature}"))
            .send();
        assert_eq!(r.status, 201, "create container {name}: {}", r.text());
        name.to_owned()
    }

    /// The driver part of distribution's `storage` section for `container`, redirects off.
    pub fn distribution_storage(&self, container: &str) -> String {
        format!(
            "azure: {{accountname: {ACCOUNT}, accountkey: '{ACCOUNT_KEY}', container: {container}, \
             serviceurl: '{}', rootdirectory: /ferry}}, redirect: {{disable: true}}",
            self.endpoint
        )
    }
}

impl Drop for AzureServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
