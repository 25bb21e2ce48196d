//! What a dry run foresees of the real run's requests, per registry.
//!
//! A dry run makes the real run's reads: listings, manifest `HEAD`s on both sides, the
//! source manifests' `GET`s, blob `HEAD`s at the destination. What it leaves out are the
//! writes, and it knows each of them: a blob it would mount is one `POST ?mount=`; a blob
//! it would transfer is one `GET` at the source and, at the destination, the upload's
//! `POST` and one `PUT` (blobs of 64 MiB and more: a `PATCH` per 16 MiB chunk before the
//! closing `PUT`, as the native transport cuts them); an image it would copy is one
//! manifest `PUT`, plus one per child of an index the destination lacks. So the real
//! run's requests are the dry run's calls (each counted once, its retries not) plus those
//! writes, when nothing fails and the destination does not change in between. Token
//! fetches go to the token service, not the registry, and are not counted.
//!
//! Referrers are counted the same way: their discovery (the referrers API, or the
//! tag-schema index after one `404` per registry, and cosign's tag lists), each referrer
//! copied as an image, and the destination's API probe and tag-schema index reads are
//! the dry run's own calls; an index it would push is one `PUT` and one read back
//! ([`Forecast::foresee`]). Each registry's API is probed by one request while the others
//! wait for its answer, so that count does not depend on timing either.
//!
//! The requests that count against a registry's budget are its manifest `GET`s
//! ([`counts_against_limit`](crate::ratelimit::counts_against_limit)): all of them reads
//! a dry run makes itself.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::progress::BlobOutcome;
use crate::session::Call;
use crate::upload::UploadConfig;

/// How the native transport cuts uploads (`ferry-native`'s defaults).
const UPLOADS: UploadConfig =
    UploadConfig { chunk_size: 16 * 1024 * 1024, monolithic_below: 64 * 1024 * 1024, max_min_chunk: 0 };

/// One registry's requests in a job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryRequests {
    /// The registry, as references name it.
    pub registry: String,
    /// HTTP requests to it, transfers' included, token fetches not.
    pub requests: u64,
    /// Those that count against a budget it advertises: its manifest `GET`s.
    pub counted: u64,
}

/// The real run's requests, as a dry run adds them up.
#[derive(Debug, Default)]
pub(crate) struct Forecast {
    by_registry: BTreeMap<String, RegistryRequests>,
}

impl Forecast {
    fn add(&mut self, registry: &str, requests: u64, counted: u64) {
        let entry = self
            .by_registry
            .entry(registry.to_owned())
            .or_insert_with(|| RegistryRequests { registry: registry.to_owned(), ..Default::default() });
        entry.requests += requests;
        entry.counted += counted;
    }

    /// A call the dry run submits, which the real run makes too.
    pub(crate) fn call(&mut self, call: &Call) {
        let (registry, counted) = call.budget_key();
        self.add(registry, 1, u64::from(counted));
    }

    /// A blob the dry run found missing at the destination, with what the real run does.
    pub(crate) fn blob(&mut self, outcome: BlobOutcome, source: &str, destination: &str, size: u64) {
        match outcome {
            BlobOutcome::Present => {}
            BlobOutcome::Mounted => self.add(destination, 1, 0),
            BlobOutcome::Transferred => {
                self.add(source, 1, 0);
                self.add(destination, UPLOADS.requests(size), 0);
            }
        }
    }

    /// Manifests the real run pushes to `registry`.
    pub(crate) fn pushes(&mut self, registry: &str, manifests: u64) {
        self.add(registry, manifests, 0);
    }

    /// Other requests the real run makes to `registry` and the dry run does not send (a
    /// tag-schema index's `PUT` and its read back), `counted` of them manifest `GET`s.
    pub(crate) fn foresee(&mut self, registry: &str, requests: u64, counted: u64) {
        self.add(registry, requests, counted);
    }

    pub(crate) fn report(&self) -> Vec<RegistryRequests> {
        self.by_registry.values().cloned().collect()
    }
}
