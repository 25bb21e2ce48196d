//! `storage.s3`: the bucket, how to reach it, and credentials that never print.

use serde::{Deserialize, Serialize};

use crate::driver::check_path;
pub use crate::driver::Secret;

/// S3's smallest multipart part (all but the last): 5 MiB.
pub const MIN_CHUNK_SIZE: u64 = 5 * 1024 * 1024;

/// `storage.s3`: where the bucket is and how to reach it.
///
/// ```yaml
/// storage:
///   driver: s3
///   s3:
///     bucket: registry
///     region: eu-west-1
///     endpoint: http://127.0.0.1:9000   # S3-compatible stores; unset for AWS
///     prefix: ferry                     # keys go under ferry/
///     virtual_hosted_style: false       # true: https://<bucket>.<endpoint>/key
///     allow_http: true                  # needed for an http:// endpoint
///     access_key_id: AKIA...            # unset: AWS_* variables, then instance metadata
///     secret_access_key: ...
///     chunk_size: 10485760              # multipart part size, at least 5 MiB
///     redirect: false                   # blob GETs answer 307 to a presigned URL
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    pub bucket: String,
    /// Unset: `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// The store's URL, for S3-compatible stores; unset for AWS.
    pub endpoint: Option<String>,
    /// A key prefix every path goes under (distribution's `rootdirectory`).
    pub prefix: String,
    /// Address the bucket as `<bucket>.<endpoint>` instead of `<endpoint>/<bucket>`.
    pub virtual_hosted_style: bool,
    /// Allow an `http://` endpoint.
    pub allow_http: bool,
    pub access_key_id: Option<Secret>,
    pub secret_access_key: Option<Secret>,
    pub session_token: Option<Secret>,
    /// Bytes per multipart part, and the most an upload buffers per part.
    pub chunk_size: u64,
    /// Answer blob GETs with 307 to a presigned URL of the object (distribution's
    /// `redirect` middleware), so blob bytes bypass the registry. HEAD never redirects.
    pub redirect: bool,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            bucket: String::new(),
            region: None,
            endpoint: None,
            prefix: String::new(),
            virtual_hosted_style: false,
            allow_http: false,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            chunk_size: 10 * 1024 * 1024,
            redirect: false,
        }
    }
}

impl S3Config {
    /// What is wrong with the settings, as the key and the fix.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if self.bucket.is_empty() {
            return Some(("storage.s3.bucket", "the s3 driver needs a bucket name".into()));
        }
        // S3's bucket naming rules: 3 to 63 lowercase letters, digits, `.` and `-`,
        // beginning and ending with a letter or digit.
        let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let inner = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-';
        let b = &self.bucket;
        if !(3..=63).contains(&b.len())
            || !b.chars().all(inner)
            || !edge(b.chars().next())
            || !edge(b.chars().last())
        {
            return Some((
                "storage.s3.bucket",
                format!("{b:?} is no S3 bucket name: 3 to 63 lowercase letters, digits, `.` and `-`"),
            ));
        }
        if self.chunk_size < MIN_CHUNK_SIZE || self.chunk_size > usize::MAX as u64 {
            return Some((
                "storage.s3.chunk_size",
                format!("must be at least {MIN_CHUNK_SIZE} (5 MiB, S3's smallest multipart part)"),
            ));
        }
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            return Some((
                "storage.s3.access_key_id",
                "set both access_key_id and secret_access_key, or neither (then AWS_* variables apply)"
                    .into(),
            ));
        }
        if !self.prefix.is_empty() && check_path(self.prefix.trim_matches('/')).is_err() {
            return Some(("storage.s3.prefix", "expected a key prefix like `ferry` or `a/b`".into()));
        }
        None
    }
}
