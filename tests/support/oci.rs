//! OCI fixtures for the registry tests: media types, blobs and manifests built in
//! memory, and a `ferry serve` with helpers to push them.

use serde_json::{json, Value};

use super::azure::AzureServer;
use super::s3::S3Server;
use super::tls::{self, Forwarder, PeerOpts, Pki};
use super::{
    distribution_config, free_port, request, resolve, sha256, DistributionOpts, Ferry, Response, TempDir,
};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const EMPTY_JSON_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// The suite's `dummyDigest`: valid, never pushed.
pub const DUMMY_DIGEST: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
pub const SPEC_CODES: &[&str] = &[
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
    "TOOMANYREQUESTS",
];

pub struct Registry {
    pub _dir: TempDir,
    pub ferry: Ferry,
    /// The S3 server the registry stores into, in a crate whose name ends in `_s3`.
    pub _s3: Option<S3Server>,
    /// The Azure blob service the registry stores into, in a crate whose name ends in
    /// `_azure`.
    pub _azure: Option<AzureServer>,
}

impl Registry {
    /// A `ferry serve` started from the config file the tests give distribution peers
    /// (`support::distribution_config`, read unchanged), with `extra` flags on top. In a
    /// test crate whose name ends in `_tls` (`registry_conformance_tls`), that file is the
    /// TLS peer's (`tls::distribution_config`) with a private CA, and `ferry.url` is a
    /// plain-to-TLS [`Forwarder`] in front of it: the same suite, over TLS. In a crate
    /// whose name ends in `_s3` (`registry_conformance_s3`), the file names an S3 bucket on
    /// a Garage of the registry's own: the same suite, on the s3 driver. In one whose name
    /// ends in `_azure` (`registry_conformance_azure`), a container on an Azurite of its
    /// own: the same suite, on the azure driver.
    pub fn start(extra: &[&str]) -> Registry {
        let dir = TempDir::new("conformance");
        let pki = env!("CARGO_CRATE_NAME").ends_with("_tls").then(Pki::new);
        let s3 = match env!("CARGO_CRATE_NAME").ends_with("_s3") {
            // Without Garage (and peers not required) the suite runs on filesystem storage.
            true => S3Server::start(),
            false => None,
        };
        let azure = match env!("CARGO_CRATE_NAME").ends_with("_azure") {
            // Without Azurite (and peers not required) the suite runs on filesystem storage.
            true => AzureServer::start(),
            false => None,
        };
        let storage = match (&s3, &azure) {
            (Some(s3), _) => Some(s3.distribution_storage(&s3.bucket("registry"))),
            (_, Some(azure)) => Some(azure.distribution_storage(&azure.container("registry"))),
            _ => None,
        };
        let opts = DistributionOpts { storage, ..DistributionOpts::default() };
        let config = dir.join("config.yml");
        for _attempt in 0..5 {
            let port = free_port();
            let yaml = match &pki {
                None => distribution_config(&dir.join("data"), port, &opts),
                Some(pki) => tls::distribution_config(
                    pki,
                    &dir.join("data"),
                    port,
                    &PeerOpts { tls: true, client_cas: false },
                ),
            };
            std::fs::write(&config, yaml).expect("write the distribution config");
            let Some(mut ferry) = Ferry::with_config(&config, extra) else { continue };
            if let Some(pki) = &pki {
                assert!(ferry.url.starts_with("https://"), "{}", ferry.url);
                let forwarder = Forwarder::start(&ferry.host(), &pki.ca());
                ferry.url = forwarder.url.clone();
                // The forwarder serves until the test process ends; its CA is in memory already.
                static FORWARDERS: std::sync::Mutex<Vec<Forwarder>> = std::sync::Mutex::new(Vec::new());
                FORWARDERS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(forwarder);
            }
            return Registry { _dir: dir, ferry, _s3: s3, _azure: azure };
        }
        panic!("ferry serve did not start from {}", config.display());
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.ferry.url)
    }

    pub fn loc(&self, response: &Response) -> String {
        let location = response.header("location").unwrap_or_else(|| panic!("no Location in {response:?}"));
        resolve(&self.ferry.url, location)
    }

    /// POST then PUT ?digest= with the body; returns the digest.
    pub fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha256(bytes);
        let r = request("POST", &self.url(&format!("/v2/{repo}/blobs/uploads/"))).send();
        assert_eq!(r.status, 202, "{}", r.text());
        let r = request("PUT", &format!("{}?digest={digest}", self.loc(&r)))
            .header("Content-Type", "application/octet-stream")
            .body(bytes)
            .send();
        assert_eq!(r.status, 201, "{}", r.text());
        digest
    }

    pub fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) -> Response {
        request("PUT", &self.url(&format!("/v2/{repo}/manifests/{reference}")))
            .header("Content-Type", media_type)
            .body(bytes)
            .send()
    }
}

pub fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({ "mediaType": media_type, "digest": sha256(bytes), "size": bytes.len() })
}

pub fn config_blob(n: u32) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}, "ferry-test": n
    }))
    .unwrap()
}

/// An OCI image manifest over `config` and `layers`, with extra top-level fields.
pub fn image_manifest(config: (&str, &[u8]), layers: &[&[u8]], extra: Value) -> Vec<u8> {
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(config.0, config.1),
        "layers": layers.iter().map(|l| descriptor(OCI_LAYER, l)).collect::<Vec<_>>(),
    });
    if let (Some(m), Value::Object(extra)) = (m.as_object_mut(), extra) {
        m.extend(extra);
    }
    serde_json::to_vec(&m).unwrap()
}

pub fn assert_spec_error(r: &Response, status: u16, code: &str) {
    assert_eq!(r.status, status, "{r:?} {}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.error_code(), code, "{}", r.text());
    assert!(SPEC_CODES.contains(&code) || code == "PAGINATION_NUMBER_INVALID");
}
