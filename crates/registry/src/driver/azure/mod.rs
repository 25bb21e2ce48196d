//! The `azure` driver: Azure Blob Storage (block blobs), as an [`ObjectDriver`] over
//! object_store's `MicrosoftAzure`.
//!
//! Segments over one block go up as blocks (Put Block) committed by one Put Block List,
//! which makes the blob visible whole; Azure blocks have no minimum size, unlike S3's
//! 5 MiB parts (see [`MIN_CHUNK_SIZE`]). Renames never use Copy Blob, which may answer
//! before the copy is done; they stream the bytes into a new block list.
//!
//! Credentials come from the configuration or, when it has none, from the usual `AZURE_*`
//! environment variables (object_store's `MicrosoftAzureBuilder::from_env`: the account
//! key, a SAS, a service principal, workload or managed identity). They are never logged.

mod config;

use std::sync::Arc;

use object_store::azure::MicrosoftAzureBuilder;

pub use config::{AzureConfig, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE};

use super::object::{client_options, retry, ObjectDriver};
use super::StorageError;

/// Azurite's storage account, which every Azure SDK knows.
pub const EMULATOR_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's account key: public, published by Microsoft with the emulator.
const EMULATOR_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// Where Azurite's blob service listens by default.
const EMULATOR_ENDPOINT: &str = "http://127.0.0.1:10000";

fn config_error(message: impl Into<String>) -> StorageError {
    StorageError::Config { driver: "azure", message: message.into() }
}

/// Opens the container `storage.azure` names.
pub fn open(config: &AzureConfig) -> Result<ObjectDriver, StorageError> {
    if let Some((key, message)) = config.problem() {
        return Err(config_error(format!("{key}: {message}")));
    }
    let mut builder =
        MicrosoftAzureBuilder::from_env().with_retry(retry()).with_container_name(&config.container);
    let mut account = config.account.clone();
    let mut endpoint = config.endpoint.clone();
    if config.use_emulator {
        // Azurite addresses the account in the path: <endpoint>/<account>/<container>.
        let name = account.get_or_insert_with(|| EMULATOR_ACCOUNT.to_owned());
        endpoint.get_or_insert_with(|| format!("{EMULATOR_ENDPOINT}/{name}"));
        if config.access_key.is_none() {
            builder = builder.with_access_key(EMULATOR_KEY);
        }
    }
    if let Some(account) = &account {
        builder = builder.with_account(account);
    }
    let mut options = client_options();
    if let Some(endpoint) = &endpoint {
        // An http:// endpoint (the emulator's) was written out by the operator.
        options = options.with_allow_http(endpoint.starts_with("http://"));
        builder = builder.with_endpoint(endpoint.clone());
    }
    builder = builder.with_client_options(options);
    if let Some(key) = &config.access_key {
        builder = builder.with_access_key(key.expose());
    }
    // The builder's errors name settings, never credential values.
    let store = Arc::new(builder.build().map_err(|e| config_error(e.to_string()))?);
    let driver = ObjectDriver::new(
        "azure",
        format!("container {}", config.container),
        store.clone(),
        &config.prefix,
        config.chunk_size,
    )
    // Copy Blob may still be pending when it answers: renames stream instead.
    .without_server_side_copy();
    Ok(if config.redirect { driver.with_redirects(store) } else { driver })
}

#[cfg(test)]
mod tests;
