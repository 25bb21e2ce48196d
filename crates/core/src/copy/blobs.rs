//! Blobs at the destination, shared by every image of the job.
//!
//! One operation at a time per (destination registry, digest): HEAD the blob in the
//! wanted repository; if it is missing, mount it from a repository of the same registry
//! known to hold it (or from the source repository when source and destination share a
//! registry); else transfer it. Images that need a blob while an operation on it is under
//! way wait for that operation, then find it present (same repository) or mount it. So a
//! blob shared by several images crosses the network once.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use http::{Method, Request, StatusCode};

use super::{registry_error, SyncMachine, Tag};
use crate::auth::Scope;
use crate::digest::Digest;
use crate::plan::Endpoints;
use crate::progress::{BlobOutcome, Event};
use crate::session::{AuthNeed, Call, Outcome};
use crate::time::Instant;
use crate::transport::Transfer;

/// A blob at one destination registry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct BlobKey {
    pub registry: String,
    pub digest: Digest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Head,
    Mount,
    Queued,
    Transfer,
}

struct Operation {
    image: usize,
    repository: String,
    stage: Stage,
}

#[derive(Default)]
struct Entry {
    present_in: BTreeSet<String>,
    busy: Option<Operation>,
    waiters: Vec<(usize, String)>,
}

pub(crate) struct BlobTable {
    entries: BTreeMap<BlobKey, Entry>,
    queue: VecDeque<(BlobKey, Option<String>)>,
    transfers: usize,
    max_transfers: usize,
}

impl BlobTable {
    pub fn new(max_transfers: usize) -> Self {
        BlobTable { entries: BTreeMap::new(), queue: VecDeque::new(), transfers: 0, max_transfers }
    }
}

impl SyncMachine {
    /// Asks for every blob an image still needs.
    pub(super) fn request_blobs(&mut self, id: usize, now: Instant) {
        let digests: Vec<Digest> =
            self.images[id].blobs.iter().filter(|(_, need)| !need.done).map(|(d, _)| d.clone()).collect();
        for digest in digests {
            self.request_blob(id, digest, now);
        }
    }

    fn request_blob(&mut self, id: usize, digest: Digest, now: Instant) {
        let destination = &self.images[id].task.destination;
        let key = BlobKey { registry: destination.registry().to_owned(), digest: digest.clone() };
        let repository = destination.repository().to_owned();
        let entry = self.blobs.entries.entry(key.clone()).or_default();
        if entry.present_in.contains(&repository) {
            return self.blob_ready(id, &digest, BlobOutcome::Present, now);
        }
        if entry.busy.is_some() {
            entry.waiters.push((id, repository));
            return;
        }
        entry.busy = Some(Operation { image: id, repository: repository.clone(), stage: Stage::Head });
        let url = self.endpoints.endpoint(&key.registry).blob(&repository, &digest);
        let request = Request::builder().method(Method::HEAD).uri(url).body(Vec::new()).unwrap_or_default();
        let auth = self.destination_auth(id);
        self.session.submit(Tag::Blob(key), Call::Send { request, auth }, now);
    }

    pub(super) fn blob_outcome(&mut self, key: BlobKey, outcome: Outcome, now: Instant) {
        let Some(op) = self.blobs.entries.get(&key).and_then(|e| e.busy.as_ref()) else { return };
        let (id, repository, stage) = (op.image, op.repository.clone(), op.stage);
        if stage == Stage::Transfer {
            self.blobs.transfers -= 1;
            self.start_queued_transfers(now);
        }
        let response = match outcome {
            Outcome::Transferred => {
                self.mark_present(&key, &repository);
                return self.blob_settled(&key, Some(BlobOutcome::Transferred), now);
            }
            Outcome::Response(response) => response,
            Outcome::Failed(e) => {
                // A transport failure's message already names the blob and its URL.
                let reason = match stage {
                    Stage::Transfer if e.transport.is_none() => {
                        format!("blob {} from {}: {}", key.digest, self.images[id].task.source, e.message)
                    }
                    _ => e.message,
                };
                self.fail(id, reason, e.retryable, now);
                return self.blob_settled(&key, None, now);
            }
        };
        let status = response.status();
        match (stage, status) {
            (Stage::Head, s) if s.is_success() => {
                let expected = self.images[id].blobs.get(&key.digest).map(|b| b.size);
                let length = response
                    .headers()
                    .get(http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                if let (Some(expected), Some(length)) = (expected, length) {
                    if expected != length {
                        let reason = format!(
                            "blob {} at the destination {} is {length} bytes; the manifest says {expected}",
                            key.digest, key.registry
                        );
                        self.fail(id, reason, false, now);
                        return self.blob_settled(&key, None, now);
                    }
                }
                self.mark_present(&key, &repository);
                self.blob_settled(&key, Some(BlobOutcome::Present), now)
            }
            (Stage::Head, StatusCode::NOT_FOUND) => self.blob_missing(key, id, repository, now),
            (Stage::Mount, StatusCode::CREATED) => {
                self.mark_present(&key, &repository);
                self.blob_settled(&key, Some(BlobOutcome::Mounted), now)
            }
            (Stage::Mount, StatusCode::ACCEPTED) => {
                // The registry could not mount and opened an upload instead: use it.
                let location = response
                    .headers()
                    .get(http::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .map(|l| self.endpoints.endpoint(&key.registry).resolve(l));
                self.queue_transfer(key, location, now)
            }
            (Stage::Mount, _) => self.queue_transfer(key, None, now),
            _ => {
                let reason = format!(
                    "blob {} at {}/{repository}: {}",
                    key.digest,
                    key.registry,
                    registry_error(&response)
                );
                self.fail(id, reason, status.is_server_error(), now);
                self.blob_settled(&key, None, now)
            }
        }
    }

    /// The blob is not in the wanted repository: mount it if we can, else transfer it.
    fn blob_missing(&mut self, key: BlobKey, id: usize, repository: String, now: Instant) {
        let source = &self.images[id].task.source;
        let entry = self.blobs.entries.entry(key.clone()).or_default();
        let mut from = entry.present_in.iter().next().cloned();
        if from.is_none() && source.registry() == key.registry && source.repository() != repository {
            from = Some(source.repository().to_owned());
        }
        if self.options.dry_run {
            // Nothing is written in a dry run; later images may count it as mountable.
            let outcome = if from.is_some() { BlobOutcome::Mounted } else { BlobOutcome::Transferred };
            self.mark_present(&key, &repository);
            return self.blob_settled(&key, Some(outcome), now);
        }
        let Some(from) = from else { return self.queue_transfer(key, None, now) };
        if let Some(op) = self.blobs.entries.get_mut(&key).and_then(|e| e.busy.as_mut()) {
            op.stage = Stage::Mount;
        }
        let url = self.endpoints.endpoint(&key.registry).mount(&repository, &key.digest, &from);
        let request = Request::builder().method(Method::POST).uri(url).body(Vec::new()).unwrap_or_default();
        let auth = AuthNeed {
            registry: key.registry.clone(),
            repository: repository.clone(),
            scopes: vec![Scope::push_pull(&repository), Scope::pull(&from)],
        };
        self.session.submit(Tag::Blob(key), Call::Send { request, auth }, now);
    }

    fn queue_transfer(&mut self, key: BlobKey, location: Option<String>, now: Instant) {
        if let Some(op) = self.blobs.entries.get_mut(&key).and_then(|e| e.busy.as_mut()) {
            op.stage = Stage::Queued;
        }
        self.blobs.queue.push_back((key, location));
        self.start_queued_transfers(now);
    }

    fn start_queued_transfers(&mut self, now: Instant) {
        while self.blobs.transfers < self.blobs.max_transfers {
            let Some((key, location)) = self.blobs.queue.pop_front() else { break };
            let Some(op) = self.blobs.entries.get_mut(&key).and_then(|e| e.busy.as_mut()) else { continue };
            op.stage = Stage::Transfer;
            let (id, repository) = (op.image, op.repository.clone());
            self.blobs.transfers += 1;
            let image = &self.images[id];
            let source = &image.task.source;
            let size = image.blobs.get(&key.digest).map(|b| b.size).unwrap_or_default();
            let source_url =
                self.endpoints.endpoint(source.registry()).blob(source.repository(), &key.digest);
            let transfer = Transfer {
                source: Request::builder().method(Method::GET).uri(source_url).body(()).unwrap_or_default(),
                upload_start: self.endpoints.endpoint(&key.registry).upload_start(&repository),
                upload_location: location,
                upload_headers: http::HeaderMap::new(),
                digest: key.digest.clone(),
                size,
                retry: self.options.retry,
                seed: upload_seed(self.options.seed, &key.digest),
            };
            let source_auth = AuthNeed {
                registry: source.registry().to_owned(),
                repository: source.repository().to_owned(),
                scopes: vec![Scope::pull(source.repository())],
            };
            let destination_auth = self.destination_auth(id);
            let call = Call::Transfer {
                transfer: Box::new(transfer),
                source: source_auth,
                destination: destination_auth,
            };
            self.session.submit(Tag::Blob(key), call, now);
        }
    }

    fn mark_present(&mut self, key: &BlobKey, repository: &str) {
        self.blobs.entries.entry(key.clone()).or_default().present_in.insert(repository.to_owned());
    }

    /// Ends the operation on `key`. With an outcome, its image has the blob; either way the
    /// images waiting on the blob look again (and find it, mount it, or try themselves).
    fn blob_settled(&mut self, key: &BlobKey, outcome: Option<BlobOutcome>, now: Instant) {
        let Some(entry) = self.blobs.entries.get_mut(key) else { return };
        let op = entry.busy.take();
        let waiters = std::mem::take(&mut entry.waiters);
        if let (Some(op), Some(outcome)) = (op, outcome) {
            self.blob_ready(op.image, &key.digest, outcome, now);
        }
        for (id, _) in waiters {
            if self.images[id].is_live() {
                self.request_blob(id, key.digest.clone(), now);
            }
        }
    }

    pub(super) fn blob_progress(&mut self, key: &BlobKey, bytes: u64) {
        let Some(op) = self.blobs.entries.get(key).and_then(|e| e.busy.as_ref()) else { return };
        let total = self.images[op.image].blobs.get(&key.digest).map(|b| b.size).unwrap_or_default();
        self.events.push_back(Event::BlobProgress {
            image: op.image,
            digest: key.digest.clone(),
            bytes,
            total,
        });
    }
}

/// A seed for one blob's upload jitter: the job's seed, told apart per blob so that
/// uploads running together do not retry in step, and the same on every run.
fn upload_seed(seed: u64, digest: &crate::digest::Digest) -> u64 {
    let hex = digest.hex();
    let prefix = u64::from_str_radix(hex.get(..16).unwrap_or("0"), 16).unwrap_or(0);
    seed ^ prefix
}
