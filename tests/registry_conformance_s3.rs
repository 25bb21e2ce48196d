//! The OCI conformance suite of `registry_conformance.rs`, case for case, against
//! `ferry serve` on the s3 driver: `support::oci::Registry` gives each test a real S3
//! server (Garage, over Signature V4) in a crate whose name ends in `_s3`, and names its
//! bucket in distribution's `storage.s3` keys.

#[path = "registry_conformance.rs"]
mod conformance;
