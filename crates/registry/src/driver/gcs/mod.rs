//! The `gcs` driver: Google Cloud Storage, as an [`ObjectDriver`] over object_store's
//! `GoogleCloudStorage`.
//!
//! object_store speaks GCS's XML API for objects (PUT, ranged GET, copy, and multipart
//! uploads of at least 5 MiB parts, as S3's) and its JSON API for listings.
//!
//! Credentials come from the configuration or, when it has none, from the usual
//! `GOOGLE_*` environment variables (`GOOGLE_SERVICE_ACCOUNT`, `GOOGLE_SERVICE_ACCOUNT_KEY`,
//! `GOOGLE_APPLICATION_CREDENTIALS`), then the application default credentials and the
//! instance metadata service (object_store's `GoogleCloudStorageBuilder::from_env`). They
//! are never logged.

mod config;

use std::sync::Arc;

use object_store::gcp::GoogleCloudStorageBuilder;

pub use config::{GcsConfig, MIN_CHUNK_SIZE};

use super::object::{client_options, retry, ObjectDriver};
use super::StorageError;

fn config_error(message: impl Into<String>) -> StorageError {
    StorageError::Config { driver: "gcs", message: message.into() }
}

/// Opens the bucket `storage.gcs` names.
pub fn open(config: &GcsConfig) -> Result<ObjectDriver, StorageError> {
    if let Some((key, message)) = config.problem() {
        return Err(config_error(format!("{key}: {message}")));
    }
    let mut options = client_options();
    let mut builder =
        GoogleCloudStorageBuilder::from_env().with_retry(retry()).with_bucket_name(&config.bucket);
    if let Some(path) = &config.service_account_path {
        builder = builder.with_service_account_path(path);
    }
    if let Some(key) = &config.service_account_key {
        builder = builder.with_service_account_key(key.expose());
    }
    if let Some(base_url) = &config.base_url {
        // object_store takes another API URL only from a service account key, which may
        // also turn OAuth off, as an emulator needs.
        let key = serde_json::json!({
            "gcs_base_url": base_url.trim_end_matches('/'),
            "disable_oauth": true,
            "client_email": "",
            "private_key": "",
            "private_key_id": "",
        });
        builder = builder.with_service_account_key(key.to_string());
        options = options.with_allow_http(base_url.starts_with("http://"));
    }
    builder = builder.with_client_options(options);
    // The builder's errors name settings, never credential values.
    let store = Arc::new(builder.build().map_err(|e| config_error(e.to_string()))?);
    let driver = ObjectDriver::new(
        "gcs",
        format!("bucket {}", config.bucket),
        store.clone(),
        &config.prefix,
        config.chunk_size,
    );
    Ok(if config.redirect { driver.with_redirects(store) } else { driver })
}

#[cfg(test)]
mod tests;
