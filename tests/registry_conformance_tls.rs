//! The OCI conformance suite of `registry_conformance.rs`, case for case, against
//! `ferry serve --tls-cert --tls-key`: `support::oci::Registry` serves HTTPS with a private
//! CA in a crate whose name ends in `_tls`, and the suite's requests reach it through a
//! plain-to-TLS forwarder.

#[path = "registry_conformance.rs"]
mod conformance;
