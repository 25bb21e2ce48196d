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
//! Fan-out: a rule with several destination registries makes one image per destination
//! from one source image ("siblings"). A transfer that a sibling may share waits in the
//! queue while a sibling has not yet said which blobs it needs, or while another
//! destination's HEAD or mount of the same blob is under way; then every queued transfer
//! of the blob from that source registry (whichever repository each image names) starts
//! at once, as the members of one
//! [`Share`](crate::transport::Share), so the transport reads the source once for all of
//! them. The group takes one transfer slot (one read of the source); each member has its
//! own outcome, so one destination failing does not fail the others.
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
use crate::transport::{Share, Transfer};

/// A blob at one destination registry. Ordered by digest first, so the destinations of
/// one blob sit together in the table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct BlobKey {
    pub digest: Digest,
    pub registry: String,
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
    /// The share group of its transfer, when it has one.
    group: Option<u64>,
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
    /// Transfer slots taken: one per transfer alone, one per share group.
    transfers: usize,
    max_transfers: usize,
    /// Per source image, its started destinations that have not yet said which blobs
    /// they need.
    gathering: BTreeMap<String, usize>,
    /// Members still running, per share group.
    groups: BTreeMap<u64, usize>,
    next_group: u64,
}

impl BlobTable {
    pub(super) fn new(max_transfers: usize) -> Self {
        BlobTable {
            entries: BTreeMap::new(),
            queue: VecDeque::new(),
            transfers: 0,
            max_transfers,
            gathering: BTreeMap::new(),
            groups: BTreeMap::new(),
            next_group: 0,
        }
    }

    /// A destination of `source` has started: until it says which blobs it needs
    /// ([`BlobTable::gathered`]), transfers from `source` wait for it, to share the read.
    pub(super) fn gathering(&mut self, source: &Reference) {
        *self.gathering.entry(source.to_string()).or_default() += 1;
    }

    /// A destination of `source` has asked for its blobs, or ended without: transfers
    /// that waited only for it start.
    pub(super) fn gathered(&mut self, source: &Reference, ctx: &Context, out: &mut Effects) {
        let name = source.to_string();
        let Some(count) = self.gathering.get_mut(&name) else { return };
        *count -= 1;
        if *count == 0 {
            self.gathering.remove(&name);
            self.start_queued_transfers(ctx, out);
        }
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
            entry.busy = Some(Operation { want: want.clone(), stage: Stage::Head, group: None });
            return self.missing(key, want, ctx, out);
        }
        let uri = ctx.endpoints.endpoint(&key.registry).blob(&repository, &key.digest);
        let auth = destination_auth(&want, ctx);
        entry.busy = Some(Operation { want, stage: Stage::Head, group: None });
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

    /// The outcome of a call the table sent for `key`. Whatever it was, queued transfers
    /// may start after it: a slot freed, or a transfer waited to see whether this
    /// destination would join it.
    pub(super) fn on_outcome(&mut self, key: BlobKey, outcome: Outcome, ctx: &Context, out: &mut Effects) {
        self.on_call_outcome(key, outcome, ctx, out);
        self.start_queued_transfers(ctx, out);
    }

    fn on_call_outcome(&mut self, key: BlobKey, outcome: Outcome, ctx: &Context, out: &mut Effects) {
        let Some(op) = self.entries.get(&key).and_then(|e| e.busy.as_ref()) else { return };
        let (want, stage, group) = (op.want.clone(), op.stage, op.group);
        let repository = want.destination.repository().to_owned();
        if stage == Stage::Transfer {
            self.end_transfer(group);
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
        if from.is_none() {
            // A repository a past run saw the blob in: the registry mounts only what it holds.
            from = ctx
                .options
                .resume
                .seen_in(&key.registry, &key.digest)
                .find(|r| *r != repository)
                .map(str::to_owned);
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

    /// Starts queued transfers while slots are free: each with every other queued
    /// transfer of the same blob from the same source registry, as one share group. A transfer
    /// that a destination still gathering may join stays queued, in its place.
    fn start_queued_transfers(&mut self, ctx: &Context, out: &mut Effects) {
        let mut held = Vec::new();
        while self.transfers < self.max_transfers {
            let Some((key, location)) = self.queue.pop_front() else { break };
            let Some(want) = self.queued_want(&key) else { continue };
            let mut members = vec![(key, location)];
            let mut rest = VecDeque::new();
            while let Some((other, location)) = self.queue.pop_front() {
                match self.queued_want(&other) {
                    Some(w) if other.digest == want.digest && same_source(&w, &want) => {
                        members.push((other, location))
                    }
                    _ => rest.push_back((other, location)),
                }
            }
            self.queue = rest;
            if self.may_be_joined(&members, &want) {
                held.extend(members);
                continue;
            }
            self.transfers += 1;
            let share = (members.len() > 1).then(|| {
                let id = self.next_group;
                self.next_group += 1;
                self.groups.insert(id, members.len());
                Share { id, members: members.len(), leader: true }
            });
            for (index, (key, location)) in members.into_iter().enumerate() {
                let share = share.map(|s| Share { leader: index == 0, ..s });
                let Some(op) = self.entries.get_mut(&key).and_then(|e| e.busy.as_mut()) else { continue };
                op.stage = Stage::Transfer;
                op.group = share.map(|s| s.id);
                let want = op.want.clone();
                match transfer(&key, &want, location, share, ctx) {
                    Ok(call) => out.push(BlobEffect::Send(key, Box::new(call))),
                    Err(e) => {
                        self.end_transfer(share.map(|s| s.id));
                        self.fail(&key, e, out);
                    }
                }
            }
        }
        for item in held.into_iter().rev() {
            self.queue.push_front(item);
        }
    }

    /// The want of the operation on `key` while it waits in the transfer queue.
    fn queued_want(&self, key: &BlobKey) -> Option<BlobWant> {
        let op = self.entries.get(key)?.busy.as_ref()?;
        (op.stage == Stage::Queued).then(|| op.want.clone())
    }

    /// Whether another destination may yet join the queued transfers of `want`'s blob
    /// (`members`): a sibling of one of their images has not said which blobs it needs,
    /// or another registry's HEAD or mount of the blob is under way.
    fn may_be_joined(&self, members: &[(BlobKey, Option<String>)], want: &BlobWant) -> bool {
        let gathering = members
            .iter()
            .filter_map(|(key, _)| self.queued_want(key))
            .any(|w| self.gathering.contains_key(&w.source.to_string()));
        if gathering {
            return true;
        }
        let first = BlobKey { digest: want.digest.clone(), registry: String::new() };
        self.entries.range(first..).take_while(|(k, _)| k.digest == want.digest).any(|(_, entry)| {
            entry.busy.as_ref().is_some_and(|op| {
                matches!(op.stage, Stage::Head | Stage::Mount) && same_source(&op.want, want)
            })
        })
    }

    /// A member of `group` (or a transfer alone) has ended; the group's slot frees with
    /// its last member.
    fn end_transfer(&mut self, group: Option<u64>) {
        let Some(id) = group else {
            self.transfers -= 1;
            return;
        };
        if let Some(left) = self.groups.get_mut(&id) {
            *left -= 1;
            if *left == 0 {
                self.groups.remove(&id);
                self.transfers -= 1;
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

/// Whether two wants read the blob from the same source registry. The repository does not
/// matter: a blob is named by its digest, and one read from any repository that holds it,
/// verified, serves every destination that lacks it.
fn same_source(a: &BlobWant, b: &BlobWant) -> bool {
    a.source.registry() == b.source.registry()
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
    share: Option<Share>,
    ctx: &Context,
) -> Result<Call, UrlError> {
    let source = &want.source;
    let source_uri = ctx.endpoints.endpoint(source.registry()).blob(source.repository(), &key.digest)?;
    let upload_start = ctx.endpoints.endpoint(&key.registry).upload_start(want.destination.repository())?;
    let mut source_request = http::Request::new(());
    *source_request.uri_mut() = source_uri;
    let upload_start = upload_start.to_string();
    // A session of our own (a mount's 202) first; else one a past run left.
    let past = match &location {
        Some(_) => None,
        None => ctx.options.resume.upload(&upload_start, &key.digest).map(str::to_owned),
    };
    let transfer = Transfer {
        source: source_request,
        resumes_session: past.is_some(),
        upload_location: location.or(past),
        upload_start,
        upload_headers: http::HeaderMap::new(),
        digest: key.digest.clone(),
        size: want.size,
        retry: ctx.options.retry,
        seed: upload_seed(ctx.options.seed, &key.digest),
        share,
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
