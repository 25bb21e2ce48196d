//! The OCI conformance suite of `registry_conformance.rs`, case for case, against
//! `ferry serve` on the azure driver: `support::oci::Registry` gives each test a real
//! Azure blob service (Azurite, over Shared Key) in a crate whose name ends in `_azure`,
//! and names its container in distribution's `storage.azure` keys.

#[path = "registry_conformance.rs"]
mod conformance;
