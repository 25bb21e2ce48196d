//! The gcs driver's configuration. Its storage calls are the object driver's, run on
//! Garage and Azurite; no GCS emulator that installs from npm, PyPI or Debian speaks the
//! XML API object_store uses (see the README).

use super::*;
use crate::driver::{Secret, StorageDriver};

#[test]
fn secrets_never_print() {
    let yaml = r#"storage: {driver: gcs, gcs: {bucket: registry, service_account_key: '{"private_key": "SeCrEt"}'}}"#;
    let config = crate::Config::from_yaml(yaml).unwrap();
    assert_eq!(config.storage.gcs.service_account_key, Some(Secret::new(r#"{"private_key": "SeCrEt"}"#)));
    let printed = format!("{}\n{config:?}", config.to_yaml().unwrap());
    assert!(!printed.contains("SeCrEt"), "{printed}");
    assert!(printed.contains("service_account_key: <redacted>"), "{printed}");
}

#[test]
fn config_problems_name_the_key() {
    let ok = GcsConfig { bucket: "reg_1.example".into(), ..GcsConfig::default() };
    assert_eq!(ok.problem(), None);
    let key = || Some(Secret::new("{}"));
    for (config, name) in [
        (GcsConfig::default(), "storage.gcs.bucket"),
        (GcsConfig { bucket: "b".into(), ..ok.clone() }, "storage.gcs.bucket"),
        (GcsConfig { bucket: "My-Bucket".into(), ..ok.clone() }, "storage.gcs.bucket"),
        (GcsConfig { chunk_size: 1024 * 1024, ..ok.clone() }, "storage.gcs.chunk_size"),
        (
            GcsConfig {
                service_account_path: Some("/sa.json".into()),
                service_account_key: key(),
                ..ok.clone()
            },
            "storage.gcs.service_account_key",
        ),
        (
            GcsConfig {
                base_url: Some("http://127.0.0.1:1".into()),
                service_account_key: key(),
                ..ok.clone()
            },
            "storage.gcs.base_url",
        ),
        (GcsConfig { base_url: Some("nowhere".into()), ..ok.clone() }, "storage.gcs.base_url"),
        (GcsConfig { prefix: "a//b".into(), ..ok.clone() }, "storage.gcs.prefix"),
    ] {
        assert_eq!(config.problem().map(|(k, _)| k), Some(name), "{config:?}");
    }
    let unknown = crate::Config::from_yaml("storage: {driver: gcs, gcs: {bucket: reg, buckett: x}}");
    assert!(unknown.unwrap_err().to_string().contains("buckett"));
}

#[test]
fn an_emulator_url_opens_without_credentials() {
    let config = GcsConfig {
        bucket: "ferry".into(),
        base_url: Some("http://127.0.0.1:4443".into()),
        ..GcsConfig::default()
    };
    let driver = open(&config).unwrap();
    assert_eq!(driver.name(), "gcs");
    let err = open(&GcsConfig { chunk_size: 1, ..config }).unwrap_err().to_string();
    assert!(err.contains("storage.gcs.chunk_size"), "{err}");
}
