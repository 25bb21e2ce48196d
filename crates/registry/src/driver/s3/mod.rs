//! The `s3` driver: AWS S3 and every S3-compatible object store (MinIO, Garage, Ceph RGW,
//! Cloudflare R2), as an [`ObjectDriver`] over object_store's `AmazonS3`.
//!
//! Credentials come from the configuration or, when it has none, from the usual `AWS_*`
//! environment variables and the instance or container metadata service (object_store's
//! `AmazonS3Builder::from_env`). They are never logged.

mod config;

use std::sync::Arc;

use object_store::aws::AmazonS3Builder;

pub use config::{S3Config, Secret, MIN_CHUNK_SIZE};

use super::object::{client_options, retry, ObjectDriver};
use super::StorageError;

fn config_error(message: impl Into<String>) -> StorageError {
    StorageError::Config { driver: "s3", message: message.into() }
}

/// Opens the bucket `storage.s3` names.
pub fn open(config: &S3Config) -> Result<ObjectDriver, StorageError> {
    if let Some((key, message)) = config.problem() {
        return Err(config_error(format!("{key}: {message}")));
    }
    let mut builder = AmazonS3Builder::from_env()
        // First: the client options also hold `allow_http`.
        .with_client_options(client_options())
        .with_retry(retry())
        .with_bucket_name(&config.bucket)
        .with_allow_http(config.allow_http)
        .with_virtual_hosted_style_request(config.virtual_hosted_style);
    if let Some(region) = &config.region {
        builder = builder.with_region(region);
    }
    if let Some(endpoint) = &config.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let (Some(id), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
        builder = builder.with_access_key_id(id.expose()).with_secret_access_key(secret.expose());
    }
    if let Some(token) = &config.session_token {
        builder = builder.with_token(token.expose());
    }
    // The builder's errors name settings, never credential values.
    let store = Arc::new(builder.build().map_err(|e| config_error(e.to_string()))?);
    let driver = ObjectDriver::new(
        "s3",
        format!("bucket {}", config.bucket),
        store.clone(),
        &config.prefix,
        config.chunk_size,
    );
    Ok(if config.redirect { driver.with_redirects(store) } else { driver })
}

#[cfg(test)]
mod tests;
