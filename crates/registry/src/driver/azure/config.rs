//! `storage.azure`: the storage account, the container, and credentials that never print.

use serde::{Deserialize, Serialize};

use crate::driver::{check_path, Secret};

/// The smallest block ferry writes (all but the last). Azure sets no minimum, but a block
/// blob holds at most 50,000 blocks: 1 MiB blocks still allow blobs of 48 GiB, the
/// default 10 MiB ones 488 GiB.
pub const MIN_CHUNK_SIZE: u64 = 1024 * 1024;
/// Azure's largest block: 4,000 MiB.
pub const MAX_CHUNK_SIZE: u64 = 4000 * 1024 * 1024;

/// `storage.azure`: where the container is and how to reach it.
///
/// ```yaml
/// storage:
///   driver: azure
///   azure:
///     account: myaccount                # unset: AZURE_STORAGE_ACCOUNT_NAME
///     container: registry
///     prefix: ferry                     # blob names go under ferry/
///     access_key: ...                   # unset: AZURE_STORAGE_ACCOUNT_KEY, a SAS, a
///                                       # service principal or managed identity (AZURE_*)
///     endpoint: https://myaccount.blob.core.windows.net   # the default for `account`
///     use_emulator: false               # true: Azurite's account, key and 127.0.0.1:10000
///     chunk_size: 10485760              # block size, at least 1 MiB
///     redirect: false                   # blob GETs answer 307 to a SAS URL
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AzureConfig {
    pub account: Option<String>,
    pub container: String,
    /// A prefix every blob name goes under (distribution's `rootdirectory`).
    pub prefix: String,
    /// The account's shared key.
    pub access_key: Option<Secret>,
    /// The blob service's URL, account included for path-style endpoints
    /// (`http://127.0.0.1:10000/devstoreaccount1`); an `http://` URL is used as given.
    pub endpoint: Option<String>,
    /// Azurite, the storage emulator: its well-known account `devstoreaccount1` and key
    /// (public, documented by Microsoft), at `http://127.0.0.1:10000` unless `endpoint`
    /// says otherwise.
    pub use_emulator: bool,
    /// Bytes per block, and the most an upload buffers per block.
    pub chunk_size: u64,
    /// Answer blob GETs with 307 to a SAS URL of the blob, signed with the account key.
    pub redirect: bool,
}

impl Default for AzureConfig {
    fn default() -> Self {
        AzureConfig {
            account: None,
            container: String::new(),
            prefix: String::new(),
            access_key: None,
            endpoint: None,
            use_emulator: false,
            chunk_size: 10 * 1024 * 1024,
            redirect: false,
        }
    }
}

impl AzureConfig {
    /// What is wrong with the settings, as the key and the fix.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        // Azure's container naming rules: 3 to 63 lowercase letters, digits and `-`,
        // beginning with a letter or digit, no `--`.
        let c = &self.container;
        if c.is_empty() {
            return Some(("storage.azure.container", "the azure driver needs a container name".into()));
        }
        let edge = |ch: Option<char>| ch.is_some_and(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit());
        if !(3..=63).contains(&c.len())
            || !c.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
            || !edge(c.chars().next())
            || !edge(c.chars().last())
            || c.contains("--")
        {
            return Some((
                "storage.azure.container",
                format!("{c:?} is no Azure container name: 3 to 63 lowercase letters, digits and single `-`"),
            ));
        }
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&self.chunk_size)
            || self.chunk_size > usize::MAX as u64
        {
            return Some((
                "storage.azure.chunk_size",
                format!(
                    "must be between {MIN_CHUNK_SIZE} (1 MiB) and {MAX_CHUNK_SIZE} (Azure's largest block)"
                ),
            ));
        }
        if let Some(endpoint) = &self.endpoint {
            let uri = endpoint.parse::<http::Uri>().ok();
            if !uri.is_some_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some()) {
                return Some((
                    "storage.azure.endpoint",
                    format!("{endpoint:?} is no URL like https://myaccount.blob.core.windows.net"),
                ));
            }
        }
        if !self.prefix.is_empty() && check_path(self.prefix.trim_matches('/')).is_err() {
            return Some((
                "storage.azure.prefix",
                "expected a blob name prefix like `ferry` or `a/b`".into(),
            ));
        }
        None
    }
}
