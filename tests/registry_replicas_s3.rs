//! The replica tests of `registry_replicas.rs`, case for case, with every replica on one
//! bucket of a real S3 server (Garage, over Signature V4): the crate's name ends in `_s3`,
//! which picks the storage.

#[path = "registry_replicas.rs"]
mod replicas;
