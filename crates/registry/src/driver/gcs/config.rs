//! `storage.gcs`: the bucket, how to reach it, and credentials that never print.

use serde::{Deserialize, Serialize};

use crate::driver::{check_path, Secret};

/// GCS's smallest XML API multipart part (all but the last): 5 MiB, as S3's.
pub const MIN_CHUNK_SIZE: u64 = 5 * 1024 * 1024;

/// `storage.gcs`: where the bucket is and how to reach it.
///
/// ```yaml
/// storage:
///   driver: gcs
///   gcs:
///     bucket: registry
///     prefix: ferry                     # object names go under ferry/
///     service_account_path: /etc/ferry/sa.json   # or service_account_key: '{...}';
///                                       # unset: GOOGLE_* variables, then the
///                                       # application default credentials
///     base_url: http://127.0.0.1:4443   # an emulator; no OAuth then
///     chunk_size: 10485760              # multipart part size, at least 5 MiB
///     redirect: false                   # blob GETs answer 307 to a signed URL
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GcsConfig {
    pub bucket: String,
    /// A prefix every object name goes under (distribution's `rootdirectory`).
    pub prefix: String,
    /// A service account's JSON key file.
    pub service_account_path: Option<String>,
    /// A service account's JSON key, inline.
    pub service_account_key: Option<Secret>,
    /// The storage API's URL, for an emulator: requests go there unauthenticated.
    pub base_url: Option<String>,
    /// Bytes per multipart part, and the most an upload buffers per part.
    pub chunk_size: u64,
    /// Answer blob GETs with 307 to a V4-signed URL of the object (needs a service
    /// account key to sign with).
    pub redirect: bool,
}

impl Default for GcsConfig {
    fn default() -> Self {
        GcsConfig {
            bucket: String::new(),
            prefix: String::new(),
            service_account_path: None,
            service_account_key: None,
            base_url: None,
            chunk_size: 10 * 1024 * 1024,
            redirect: false,
        }
    }
}

impl GcsConfig {
    /// What is wrong with the settings, as the key and the fix.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        // GCS's bucket naming rules (without dots: 3 to 63 characters): lowercase
        // letters, digits, `-`, `_` and `.`, beginning and ending with a letter or digit;
        // names with dots may reach 222.
        let b = &self.bucket;
        if b.is_empty() {
            return Some(("storage.gcs.bucket", "the gcs driver needs a bucket name".into()));
        }
        let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let inner = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.');
        let longest = if b.contains('.') { 222 } else { 63 };
        if !(3..=longest).contains(&b.len())
            || !b.chars().all(inner)
            || !edge(b.chars().next())
            || !edge(b.chars().last())
        {
            return Some((
                "storage.gcs.bucket",
                format!("{b:?} is no GCS bucket name: 3 to 63 lowercase letters, digits, `-`, `_` and `.`"),
            ));
        }
        if self.chunk_size < MIN_CHUNK_SIZE || self.chunk_size > usize::MAX as u64 {
            return Some((
                "storage.gcs.chunk_size",
                format!("must be at least {MIN_CHUNK_SIZE} (5 MiB, GCS's smallest multipart part)"),
            ));
        }
        if self.service_account_path.is_some() && self.service_account_key.is_some() {
            return Some((
                "storage.gcs.service_account_key",
                "set service_account_path or service_account_key, not both".into(),
            ));
        }
        if self.base_url.is_some()
            && (self.service_account_path.is_some() || self.service_account_key.is_some())
        {
            return Some((
                "storage.gcs.base_url",
                "base_url is for emulators, which take no service account: drop one of them".into(),
            ));
        }
        if let Some(url) = &self.base_url {
            let uri = url.parse::<http::Uri>().ok();
            if !uri.is_some_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some()) {
                return Some((
                    "storage.gcs.base_url",
                    format!("{url:?} is no URL like http://127.0.0.1:4443"),
                ));
            }
        }
        if !self.prefix.is_empty() && check_path(self.prefix.trim_matches('/')).is_err() {
            return Some((
                "storage.gcs.prefix",
                "expected an object name prefix like `ferry` or `a/b`".into(),
            ));
        }
        None
    }
}
