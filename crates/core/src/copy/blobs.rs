//! Blobs at the destination, shared by every image of the job.
//!
//! One operation at a time per (destination registry, digest): HEAD the blob in the
//! wanted repository (unless this run already saw it there, or the repository's tag list
//! showed it empty: then nothing of the image is there); if it is missing, mount it from a repository of the same registry
//! known to hold it (or from the source repository when source and destination share a
//! registry); else transfer it. Images that need a blob while an operation on it is under
//! way wait for that operation, then find it present (same repository) or mount it. So a
//! blob shared by several images crosses the network once.
//!
//! The [`BlobTable`] takes requests and call outcomes and returns [`BlobEffect`]s; it
//! never looks inside an image.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use http::{Method, StatusCode};

use super::image::ImageId;
use super::{refused, Context};
use crate::api::{request, UrlError};
use crate::auth::{scopes_for_mount, Scope};
use crate::digest::Digest;
use crate::error::{Error, ErrorKind};
use crate::progress::BlobOutcome;
use crate::reference::Reference;
use crate::session::{AuthNeed, Call, Outcome};
use crate::transport::Transfer;

/// A blob at one destination registry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct BlobKey {
    pub registry: String,
    pub digest: Digest,
}

/// One image's need for one blob.
#[derive(Debug, Clone)]
pub(crate) struct BlobWant {
    pub image: ImageId,
    pub source: Reference,
    pub destination: Reference,
    pub digest: Digest,
    /// The size the image's manifest gives the blob.
    pub size: u64,
    /// The destination's tag list showed the repository unknown or empty: the blob is
    /// taken to be missing there without a `HEAD`. A blob that was there after all (left
    /// by an interrupted run) is sent again, which costs bytes, not correctness.
    pub empty_repository: bool,
}

/// What the blob table asks of the job.
#[derive(Debug)]
pub(crate) enum BlobEffect {
    /// Send `call` and feed its outcome back to [`BlobTable::on_outcome`] under the key.
    Send(BlobKey, Box<Call>),
    /// The image has the blob at the destination now.
    Ready { image: ImageId, digest: Digest, outcome: BlobOutcome },
    /// The image cannot have the blob.
    Failed { image: ImageId, error: Error },
    /// The image waited for an operation on the blob, which has ended: ask again.
    Wake { image: ImageId, digest: Digest },
}

type Effects = Vec<BlobEffect>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Head,
    Mount,
    Queued,
    Transfer,
}

struct Operation {
    want: BlobWant,
    stage: Stage,
}

#[derive(Default)]
struct Entry {
    present_in: BTreeSet<String>,
    busy: Option<Operation>,
    waiters: Vec<ImageId>,
}

pub(crate) struct BlobTable {
    entries: BTreeMap<BlobKey, Entry>,
    queue: VecDeque<(BlobKey, Option<String>)>,
    transfers: usize,
    max_transfers: usize,
}

impl BlobTable {
    pub(super) fn new(max_transfers: usize) -> Self {
        BlobTable { entries: BTreeMap::new(), queue: VecDeque::new(), transfers: 0, max_transfers }
    }

    /// An image needs a blob at its destination.
    pub(super) fn request(&mut self, want: BlobWant, ctx: &Context, out: &mut Effects) {
        let key = BlobKey { registry: want.destination.registry().to_owned(), digest: want.digest.clone() };
        let repository = want.destination.repository().to_owned();
        let entry = self.entries.entry(key.clone()).or_default();
        if entry.present_in.contains(&repository) {
            return out.push(BlobEffect::Ready {
                image: want.image,
                digest: want.digest,
                outcome: BlobOutcome::Present,
            });
        }
        if entry.busy.is_some() {
            return entry.waiters.push(want.image);
        }
        if want.empty_repository {
            entry.busy = Some(Operation { want: want.clone(), stage: Stage::Head });
            return self.missing(key, want, ctx, out);
        }
        let uri = ctx.endpoints.endpoint(&key.registry).blob(&repository, &key.digest);
        let auth = destination_auth(&want, ctx);
        entry.busy = Some(Operation { want, stage: Stage::Head });
        match uri {
            Ok(uri) => out.push(BlobEffect::Send(
                key,
                Box::new(Call::Send { request: request(Method::HEAD, uri), auth }),
            )),
            Err(e) => self.fail(&key, e, out),
        }
    }

    /// The image and size of the operation on `key`, for progress.
    pub(super) fn progress_of(&self, key: &BlobKey) -> Option<(ImageId, u64)> {
        let op = self.entries.get(key)?.busy.as_ref()?;
        Some((op.want.image, op.want.size))
    }

    /// The outcome of a call the table sent for `key`.
    pub(super) fn on_outcome(&mut self, key: BlobKey, outcome: Outcome, ctx: &Context, out: &mut Effects) {
        let Some(op) = self.entries.get(&key).and_then(|e| e.busy.as_ref()) else { return };
        let (want, stage) = (op.want.clone(), op.stage);
        let repository = want.destination.repository().to_owned();
        if stage == Stage::Transfer {
            self.transfers -= 1;
            self.start_queued_transfers(ctx, out);
        }
        let response = match outcome {
            Outcome::Transferred => {
                self.mark_present(&key, &repository);
                return self.settle(&key, Some(BlobOutcome::Transferred), out);
            }
            Outcome::Response(response) => response,
            Outcome::Failed(e) => {
                // A transport failure's message already names the blob and its URL.
                let error = match stage {
                    Stage::Transfer if !e.from_transport => {
                        e.error.context(format!("blob {} from {}", key.digest, want.source))
                    }
                    _ => e.error,
                };
                out.push(BlobEffect::Failed { image: want.image, error });
                return self.settle(&key, None, out);
            }
        };
        let status = response.status();
        match (stage, status) {
            (Stage::Head, s) if s.is_success() => {
                let length = response
                    .headers()
                    .get(http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                if let Some(length) = length.filter(|l| *l != want.size) {
                    let message = format!(
                        "blob {} at the destination {} is {length} bytes; the manifest says {}",
                        key.digest, key.registry, want.size
                    );
                    out.push(BlobEffect::Failed {
                        image: want.image,
                        error: Error::new(ErrorKind::Integrity, message),
                    });
                    return self.settle(&key, None, out);
                }
                self.mark_present(&key, &repository);
                self.settle(&key, Some(BlobOutcome::Present), out)
            }
            (Stage::Head, StatusCode::NOT_FOUND) => self.missing(key, want, ctx, out),
            (Stage::Mount, StatusCode::CREATED) => {
                self.mark_present(&key, &repository);
                self.settle(&key, Some(BlobOutcome::Mounted), out)
            }
            (Stage::Mount, StatusCode::ACCEPTED) => {
                // The registry could not mount and opened an upload instead: use it.
                let location = response
                    .headers()
                    .get(http::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|l| ctx.endpoints.endpoint(&key.registry).resolve(l).ok())
                    .map(|uri| uri.to_string());
                self.queue_transfer(key, location, ctx, out)
            }
            (Stage::Mount, _) => self.queue_transfer(key, None, ctx, out),
            _ => {
                let error =
                    refused(&response, format!("blob {} at {}/{repository}", key.digest, key.registry));
                out.push(BlobEffect::Failed { image: want.image, error });
                self.settle(&key, None, out)
            }
        }
    }

    /// The blob is not in the wanted repository: mount it if we can, else transfer it.
    fn missing(&mut self, key: BlobKey, want: BlobWant, ctx: &Context, out: &mut Effects) {
        let repository = want.destination.repository().to_owned();
        let source = &want.source;
        let entry = self.entries.entry(key.clone()).or_default();
        let mut from = entry.present_in.iter().next().cloned();
        if from.is_none() && source.registry() == key.registry && source.repository() != repository {
            from = Some(source.repository().to_owned());
        }
        if ctx.options.dry_run {
            // Nothing is written in a dry run; later images may count it as mountable.
            let outcome = if from.is_some() { BlobOutcome::Mounted } else { BlobOutcome::Transferred };
            self.mark_present(&key, &repository);
            return self.settle(&key, Some(outcome), out);
        }
        let Some(from) = from else { return self.queue_transfer(key, None, ctx, out) };
        if let Some(op) = entry.busy.as_mut() {
            op.stage = Stage::Mount;
        }
        match ctx.endpoints.endpoint(&key.registry).mount(&repository, &key.digest, &from) {
            Ok(uri) => {
                let auth = AuthNeed {
                    registry: key.registry.clone(),
                    repository: repository.clone(),
                    scopes: scopes_for_mount(&repository, &from),
                };
                out.push(BlobEffect::Send(
                    key,
                    Box::new(Call::Send { request: request(Method::POST, uri), auth }),
                ));
            }
            Err(e) => self.fail(&key, e, out),
        }
    }

    fn queue_transfer(&mut self, key: BlobKey, location: Option<String>, ctx: &Context, out: &mut Effects) {
        if let Some(op) = self.entries.get_mut(&key).and_then(|e| e.busy.as_mut()) {
            op.stage = Stage::Queued;
        }
        self.queue.push_back((key, location));
        self.start_queued_transfers(ctx, out);
    }

    fn start_queued_transfers(&mut self, ctx: &Context, out: &mut Effects) {
        while self.transfers < self.max_transfers {
            let Some((key, location)) = self.queue.pop_front() else { break };
            let Some(op) = self.entries.get_mut(&key).and_then(|e| e.busy.as_mut()) else { continue };
            op.stage = Stage::Transfer;
            let want = op.want.clone();
            self.transfers += 1;
            match transfer(&key, &want, location, ctx) {
                Ok(call) => out.push(BlobEffect::Send(key, Box::new(call))),
                Err(e) => {
                    self.transfers -= 1;
                    self.fail(&key, e, out);
                }
            }
        }
    }

    fn mark_present(&mut self, key: &BlobKey, repository: &str) {
        self.entries.entry(key.clone()).or_default().present_in.insert(repository.to_owned());
    }

    /// A blob that cannot be addressed fails the image that wanted it.
    fn fail(&mut self, key: &BlobKey, error: UrlError, out: &mut Effects) {
        if let Some(op) = self.entries.get(key).and_then(|e| e.busy.as_ref()) {
            let error = Error::new(ErrorKind::InvalidName, error.to_string());
            out.push(BlobEffect::Failed { image: op.want.image, error });
        }
        self.settle(key, None, out);
    }

    /// Ends the operation on `key`. With an outcome, its image has the blob; either way the
    /// images waiting on the blob look again (and find it, mount it, or try themselves).
    fn settle(&mut self, key: &BlobKey, outcome: Option<BlobOutcome>, out: &mut Effects) {
        let Some(entry) = self.entries.get_mut(key) else { return };
        let op = entry.busy.take();
        let waiters = std::mem::take(&mut entry.waiters);
        if let (Some(op), Some(outcome)) = (op, outcome) {
            out.push(BlobEffect::Ready { image: op.want.image, digest: key.digest.clone(), outcome });
        }
        out.extend(waiters.into_iter().map(|image| BlobEffect::Wake { image, digest: key.digest.clone() }));
    }
}

fn destination_auth(want: &BlobWant, ctx: &Context) -> AuthNeed {
    let repository = want.destination.repository();
    let scope = if ctx.options.dry_run { Scope::pull(repository) } else { Scope::push_pull(repository) };
    AuthNeed {
        registry: want.destination.registry().to_owned(),
        repository: repository.to_owned(),
        scopes: vec![scope],
    }
}

/// The call that streams a blob from the source into an upload at the destination.
fn transfer(
    key: &BlobKey,
    want: &BlobWant,
    location: Option<String>,
    ctx: &Context,
) -> Result<Call, UrlError> {
    let source = &want.source;
    let source_uri = ctx.endpoints.endpoint(source.registry()).blob(source.repository(), &key.digest)?;
    let upload_start = ctx.endpoints.endpoint(&key.registry).upload_start(want.destination.repository())?;
    let mut source_request = http::Request::new(());
    *source_request.uri_mut() = source_uri;
    let transfer = Transfer {
        source: source_request,
        upload_start: upload_start.to_string(),
        upload_location: location,
        upload_headers: http::HeaderMap::new(),
        digest: key.digest.clone(),
        size: want.size,
        retry: ctx.options.retry,
        seed: upload_seed(ctx.options.seed, &key.digest),
    };
    let source_auth = AuthNeed {
        registry: source.registry().to_owned(),
        repository: source.repository().to_owned(),
        scopes: vec![Scope::pull(source.repository())],
    };
    Ok(Call::Transfer {
        transfer: Box::new(transfer),
        source: source_auth,
        destination: destination_auth(want, ctx),
    })
}

/// A seed for one blob's upload jitter: the job's seed, told apart per blob so that
/// uploads running together do not retry in step, and the same on every run.
fn upload_seed(seed: u64, digest: &crate::digest::Digest) -> u64 {
    let hex = digest.hex();
    let prefix = u64::from_str_radix(hex.get(..16).unwrap_or("0"), 16).unwrap_or(0);
    seed ^ prefix
}
