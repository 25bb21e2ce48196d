//! One image's copy: check, fetch, blobs, children, manifest.
//!
//! An [`ImageTask`] takes the outcomes of its own calls and returns [`ImageEffect`]s: calls
//! to send, blobs to ask the job's blob table for, events. It knows nothing of other
//! images; the job routes effects and keeps the totals.

use std::collections::BTreeMap;

use http::header::CONTENT_TYPE;
use http::{Method, StatusCode};

use super::referrers::Mode;
use super::{content_digest, refused, Context};
use crate::api::{manifest_request, put_manifest};
use crate::auth::Scope;
use crate::digest::Digest;
use crate::error::{Error, ErrorKind};
use crate::error_body::{ErrorBody, ErrorCode};
use crate::manifest::{media_type, select, Descriptor, ImageManifest, Manifest, ManifestError, RawManifest};
use crate::plan::{CopyTask, DestinationTag};
use crate::progress::{BlobOutcome, Event, Failure, ImageOutcome, ImageReport};
use crate::session::{AuthNeed, Call, Outcome};
use crate::transport::Side;

/// An image of the job, by its place in the plan; events name images by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ImageId(pub usize);

/// The request an image is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    SourceHead,
    DestinationHead,
    Root,
    ChildHead(usize),
    ChildGet(usize),
    PushChild(usize),
    PushRoot,
}

/// What an image asks of the job.
#[derive(Debug)]
pub(crate) enum ImageEffect {
    /// Send `call` and feed its outcome back to [`ImageTask::on_outcome`] with the step.
    Send(Step, Call),
    /// Ask the blob table for every blob in [`ImageTask::missing_blobs`], then call
    /// [`ImageTask::advance`].
    NeedBlobs,
    /// A blob this image needs is at the destination now.
    BlobDone {
        digest: Digest,
        size: u64,
        outcome: BlobOutcome,
    },
    Emit(Event),
    /// The image has finished, one way or another ([`ImageTask::outcome`] says which).
    Ended,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Queued,
    Checking,
    Fetching,
    Blobs,
    PushingChildren,
    PushingRoot,
    Finished(ImageOutcome),
}

struct Child {
    descriptor: Descriptor,
    at_destination: bool,
    manifest: Option<RawManifest>,
}

struct BlobNeed {
    size: u64,
    done: bool,
}

type Effects = Vec<ImageEffect>;

pub(crate) struct ImageTask {
    id: ImageId,
    task: CopyTask,
    /// The job's round this attempt runs in, from 1.
    round: u32,
    /// Held back unchecked: an immutable tag the destination already lists.
    immutable: bool,
    /// What the destination's tag list told of this tag.
    listed: DestinationTag,
    phase: Phase,
    source_digest: Option<Digest>,
    /// The source's HEAD said the manifest is an index: with referrers on, even an image
    /// in sync fetches it, since its children's referrers are looked for too.
    source_is_index: bool,
    destination_digest: Option<Option<Digest>>,
    root: Option<RawManifest>,
    rewritten_from: Option<Digest>,
    children: Vec<Child>,
    blobs: BTreeMap<Digest, BlobNeed>,
    outstanding: usize,
    bytes: u64,
    failure: Option<Error>,
}

impl ImageTask {
    /// A first attempt at `task` in `round`; a later round starts a fresh one.
    pub(super) fn new(id: ImageId, task: CopyTask, round: u32) -> Self {
        ImageTask {
            id,
            task,
            round,
            immutable: false,
            listed: DestinationTag::Check,
            phase: Phase::Queued,
            source_digest: None,
            source_is_index: false,
            destination_digest: None,
            root: None,
            rewritten_from: None,
            children: Vec::new(),
            blobs: BTreeMap::new(),
            outstanding: 0,
            bytes: 0,
            failure: None,
        }
    }

    /// An immutable tag the destination already lists: skipped, with no request.
    pub(super) fn held(id: ImageId, task: CopyTask, round: u32) -> Self {
        let mut image = ImageTask::new(id, task, round);
        image.phase = Phase::Finished(ImageOutcome::Skipped);
        image.immutable = true;
        image
    }

    pub(super) fn id(&self) -> ImageId {
        self.id
    }

    /// What the destination's tag list told of this tag: a tag it lacks needs no check.
    pub(super) fn listed(mut self, listed: DestinationTag) -> Self {
        self.listed = listed;
        self
    }

    pub(super) fn listing(&self) -> DestinationTag {
        self.listed
    }

    /// Whether the destination repository was unknown or empty when listed.
    pub(super) fn empty_repository(&self) -> bool {
        self.listed == DestinationTag::EmptyRepository
    }

    pub(super) fn task(&self) -> &CopyTask {
        &self.task
    }

    pub(super) fn is_live(&self) -> bool {
        !matches!(self.phase, Phase::Finished(_) | Phase::Queued)
    }

    pub(super) fn outcome(&self) -> ImageOutcome {
        match self.phase {
            Phase::Finished(outcome) => outcome,
            _ => ImageOutcome::Pending,
        }
    }

    /// The size the manifest gives a blob this image needs.
    pub(super) fn blob_size(&self, digest: &Digest) -> Option<u64> {
        self.blobs.get(digest).map(|b| b.size)
    }

    /// The blobs this image still waits for, with their sizes.
    pub(super) fn missing_blobs(&self) -> Vec<(Digest, u64)> {
        self.blobs.iter().filter(|(_, need)| !need.done).map(|(d, need)| (d.clone(), need.size)).collect()
    }

    fn names(&self) -> (String, String) {
        (self.task.source.to_string(), self.task.destination.to_string())
    }

    /// The manifests a copy pushes: the root, and each child the destination lacks.
    pub(super) fn manifests_to_push(&self) -> u64 {
        1 + self.children.iter().filter(|c| c.manifest.is_some()).count() as u64
    }

    /// Whether the image failed in a way that running it again may mend.
    pub(super) fn failed_transiently(&self) -> bool {
        self.failure.as_ref().is_some_and(Error::is_retryable)
    }

    pub(super) fn failure(&self) -> Option<Failure> {
        let error = self.failure.clone()?;
        let (source, destination) = self.names();
        Some(Failure::new(source, destination, error))
    }

    pub(super) fn report(&self) -> ImageReport {
        let (source, destination) = self.names();
        ImageReport {
            source,
            destination,
            outcome: self.outcome(),
            round: self.round,
            immutable: self.immutable,
            digest: self.root.as_ref().map(|r| r.digest().clone()).or_else(|| self.source_digest.clone()),
            rewritten_from: self.rewritten_from.clone(),
            subject_digest: None,
            referrers_dropped: 0,
            bytes: self.bytes,
            reason: self.failure.as_ref().map(|e| e.message().to_owned()),
            kind: self.failure.as_ref().map(Error::kind),
        }
    }

    /// Adds the blobs of an image manifest this image must have at the destination.
    /// Non-distributable (foreign) layers are not copied.
    fn need_blobs(&mut self, manifest: &ImageManifest) {
        for blob in manifest.blobs().filter(|b| !ImageManifest::is_foreign(b)) {
            self.blobs.entry(blob.digest.clone()).or_insert(BlobNeed { size: blob.size, done: false });
        }
    }

    fn source_auth(&self) -> AuthNeed {
        let source = &self.task.source;
        AuthNeed {
            registry: source.registry().to_owned(),
            repository: source.repository().to_owned(),
            scopes: vec![Scope::pull(source.repository())],
        }
    }

    /// What a call to the destination must be authorised for: pull in a dry run (which
    /// writes nothing), push and pull otherwise.
    pub(super) fn destination_auth(&self, dry_run: bool) -> AuthNeed {
        let destination = &self.task.destination;
        let scope = if dry_run {
            Scope::pull(destination.repository())
        } else {
            Scope::push_pull(destination.repository())
        };
        AuthNeed {
            registry: destination.registry().to_owned(),
            repository: destination.repository().to_owned(),
            scopes: vec![scope],
        }
    }

    fn send(&mut self, step: Step, request: http::Request<Vec<u8>>, auth: AuthNeed, out: &mut Effects) {
        self.outstanding += 1;
        out.push(ImageEffect::Send(step, Call::Send { request, auth }));
    }

    /// A manifest GET or HEAD on one side, by tag or digest.
    fn manifest(
        &mut self,
        ctx: &Context,
        side: Side,
        method: Method,
        reference: &str,
        step: Step,
        out: &mut Effects,
    ) -> Result<(), Error> {
        let (image, auth) = match side {
            Side::Source => (&self.task.source, self.source_auth()),
            Side::Destination | Side::Registry => {
                (&self.task.destination, self.destination_auth(ctx.options.dry_run))
            }
        };
        let uri = ctx.endpoints.endpoint(image.registry()).manifest(image.repository(), reference);
        let uri = uri.map_err(|e| Error::new(ErrorKind::InvalidName, e.to_string()))?;
        self.send(step, manifest_request(method, uri), auth, out);
        Ok(())
    }

    /// Check: one HEAD on each side. A source named by digest needs no HEAD; `force`
    /// skips the destination's. A tag the destination's tag list lacks needs neither: the
    /// source manifest is fetched by tag at once.
    pub(super) fn start(&mut self, ctx: &Context, out: &mut Effects) {
        self.phase = Phase::Checking;
        self.source_digest = self.task.source.digest().cloned();
        let (source, destination) = self.names();
        out.push(ImageEffect::Emit(Event::ImageStarted { image: self.id.0, source, destination }));
        let checked = self.check(ctx, out);
        self.settle(checked, ctx, out);
    }

    fn check(&mut self, ctx: &Context, out: &mut Effects) -> Result<(), Error> {
        if self.listed != DestinationTag::Check {
            self.destination_digest = Some(None);
            return Ok(());
        }
        if self.source_digest.is_none() {
            let reference = self.task.source.manifest_reference();
            self.manifest(ctx, Side::Source, Method::HEAD, &reference, Step::SourceHead, out)?;
        }
        if !ctx.options.force {
            let reference = self.task.destination.manifest_reference();
            self.manifest(ctx, Side::Destination, Method::HEAD, &reference, Step::DestinationHead, out)?;
        }
        Ok(())
    }

    /// Moves on after a step: advance when it went well, fail the image when not.
    fn settle(&mut self, result: Result<(), Error>, ctx: &Context, out: &mut Effects) {
        match result {
            Ok(()) => self.advance(ctx, out),
            Err(error) => self.fail(error, out),
        }
    }

    /// The outcome of a call this image sent.
    pub(super) fn on_outcome(&mut self, step: Step, outcome: Outcome, ctx: &Context, out: &mut Effects) {
        self.outstanding = self.outstanding.saturating_sub(1);
        if !self.is_live() {
            return;
        }
        let response = match outcome {
            Outcome::Response(response) => response,
            Outcome::Failed(e) => return self.fail(e.error, out),
            Outcome::Transferred => return,
        };
        let result = match step {
            Step::SourceHead => self.on_source_head(&response),
            Step::DestinationHead => self.on_destination_head(&response),
            Step::Root => self.on_root(response, ctx),
            Step::ChildHead(child) => self.on_child_head(child, &response, ctx, out),
            Step::ChildGet(child) => self.on_child(child, response),
            Step::PushChild(_) | Step::PushRoot => self.on_pushed(step, &response),
        };
        self.settle(result, ctx, out);
    }

    fn on_source_head(&mut self, response: &http::Response<Vec<u8>>) -> Result<(), Error> {
        match response.status() {
            s if s.is_success() => {
                self.source_digest = content_digest(response);
                let content_type = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
                self.source_is_index =
                    content_type.is_some_and(|ct| media_type::is_index(&media_type::essence(ct)));
                Ok(())
            }
            StatusCode::NOT_FOUND => Err(Error::new(
                ErrorKind::NotFound,
                format!("{} does not exist at the source", self.task.source),
            )),
            _ => Err(refused(response, format!("source manifest {}", self.task.source))),
        }
    }

    fn on_destination_head(&mut self, response: &http::Response<Vec<u8>>) -> Result<(), Error> {
        match response.status() {
            s if s.is_success() => {
                self.destination_digest = Some(content_digest(response));
                Ok(())
            }
            StatusCode::NOT_FOUND => {
                self.destination_digest = Some(None);
                Ok(())
            }
            _ => Err(refused(response, format!("destination manifest {}", self.task.destination))),
        }
    }

    /// The source's root manifest: verified against the digest we were promised, parsed,
    /// and, for an index, narrowed to the wanted platforms.
    fn on_root(&mut self, response: http::Response<Vec<u8>>, ctx: &Context) -> Result<(), Error> {
        let source = self.task.source.to_string();
        if !response.status().is_success() {
            return Err(refused(&response, format!("source manifest {source}")));
        }
        let content_type =
            response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        // Fetched by tag without a HEAD first, the digest the registry names is the one promised.
        let named = content_digest(&response);
        let raw = RawManifest::parse(response.into_body(), content_type.as_deref())
            .map_err(|e| manifest_error(e, format!("source manifest {source}")))?;
        if let Some(expected) = self.source_digest.as_ref().or(named.as_ref()) {
            raw.verify(expected).map_err(|e| manifest_error(e, format!("source manifest {source}")))?;
        }
        self.source_digest = Some(raw.digest().clone());
        match raw.manifest() {
            Manifest::Image(manifest) => {
                self.need_blobs(manifest);
                self.root = Some(raw);
            }
            Manifest::Index(_) => {
                let selection = select(&raw, &self.task.platforms).map_err(|e| manifest_error(e, &source))?;
                self.children = selection
                    .children
                    .into_iter()
                    .map(|descriptor| Child { descriptor, at_destination: false, manifest: None })
                    .collect();
                match selection.rewritten {
                    Some(rewritten) => {
                        self.rewritten_from = Some(raw.digest().clone());
                        self.root = Some(rewritten);
                    }
                    None => self.root = Some(raw),
                }
            }
        }
        let pushed = self.root.as_ref().map(|r| r.digest().clone());
        let held = self.destination_digest.as_ref().and_then(|d| d.as_ref());
        if !ctx.options.force && held == pushed.as_ref() {
            self.phase = Phase::Checking; // advance() will see the match and skip
        }
        Ok(())
    }

    /// The manifests whose referrers are looked for once the image is at the destination:
    /// the root (for an index a platform filter rewrote, the source's, whose referrers are
    /// only reported) and each child copied.
    pub(super) fn subjects(&self) -> Vec<(Digest, Mode)> {
        let root = match (&self.rewritten_from, &self.root, &self.source_digest) {
            (Some(original), _, _) => Some((original.clone(), Mode::Drop)),
            (None, Some(root), _) => Some((root.digest().clone(), Mode::Copy)),
            (None, None, digest) => digest.clone().map(|d| (d, Mode::Copy)),
        };
        let children = self.children.iter().map(|c| (c.descriptor.digest.clone(), Mode::Copy));
        root.into_iter().chain(children).collect()
    }

    fn on_child_head(
        &mut self,
        child: usize,
        response: &http::Response<Vec<u8>>,
        ctx: &Context,
        out: &mut Effects,
    ) -> Result<(), Error> {
        let digest = self.children[child].descriptor.digest.to_string();
        match response.status() {
            s if s.is_success() => {
                self.children[child].at_destination = true;
                Ok(())
            }
            StatusCode::NOT_FOUND => {
                self.manifest(ctx, Side::Source, Method::GET, &digest, Step::ChildGet(child), out)
            }
            _ => Err(refused(response, format!("destination manifest {}@{digest}", self.task.destination))),
        }
    }

    fn on_child(&mut self, child: usize, response: http::Response<Vec<u8>>) -> Result<(), Error> {
        let descriptor = self.children[child].descriptor.clone();
        let name = format!("{}@{}", self.task.source.repository(), descriptor.digest);
        if !response.status().is_success() {
            return Err(refused(&response, format!("source manifest {name}")));
        }
        if response.body().len() as u64 != descriptor.size {
            return Err(Error::new(
                ErrorKind::Integrity,
                format!(
                    "source manifest {name} is {} bytes; the index says {}",
                    response.body().len(),
                    descriptor.size
                ),
            ));
        }
        let content_type =
            response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let raw = RawManifest::parse(
            response.into_body(),
            content_type.as_deref().or(Some(descriptor.media_type.as_str())),
        )
        .map_err(|e| manifest_error(e, format!("source manifest {name}")))?;
        raw.verify(&descriptor.digest).map_err(|e| manifest_error(e, format!("source manifest {name}")))?;
        match raw.manifest() {
            Manifest::Image(manifest) => self.need_blobs(manifest),
            Manifest::Index(_) => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!("source manifest {name} is an index inside an index; ferry copies one level"),
                ))
            }
        }
        self.children[child].manifest = Some(raw);
        Ok(())
    }

    fn on_pushed(&mut self, step: Step, response: &http::Response<Vec<u8>>) -> Result<(), Error> {
        let (what, expected) = match step {
            Step::PushChild(child) => {
                let d = &self.children[child].descriptor.digest;
                (format!("{}@{d}", self.task.destination.repository()), Some(d.clone()))
            }
            _ => (self.task.destination.to_string(), self.root.as_ref().map(|r| r.digest().clone())),
        };
        if !response.status().is_success() {
            let error = refused(response, format!("pushing manifest {what}"));
            return Err(if self.children.is_empty() || !names_unknown_child(response) {
                error
            } else {
                // Every child was pushed or seen at the destination just before; distribution
                // can still deny one while another tag's push of it is under way. The next
                // round pushes the index again.
                Error::new(ErrorKind::Unavailable, error.message())
            });
        }
        if let (Some(got), Some(expected)) = (content_digest(response), expected) {
            if got != expected {
                return Err(Error::new(
                    ErrorKind::Integrity,
                    format!(
                        "the destination stored manifest {what} as {got}, but ferry pushed {expected}: the registry altered the bytes"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Moves the image on once everything its phase waits for has arrived.
    pub(super) fn advance(&mut self, ctx: &Context, out: &mut Effects) {
        if self.outstanding > 0 || !self.is_live() {
            return;
        }
        match self.phase {
            Phase::Checking => {
                // The digest the destination would hold: the source's, or the rewritten index's.
                let wanted = match &self.root {
                    Some(root) => Some(root.digest()),
                    None => self.source_digest.as_ref(),
                };
                let held = self.destination_digest.as_ref().and_then(Option::as_ref);
                // An index in sync is still read when its children's referrers are wanted.
                let read_children =
                    self.task.referrers.is_on() && self.root.is_none() && self.source_is_index;
                if !ctx.options.force && wanted.is_some() && held == wanted && !read_children {
                    return self.finish(ImageOutcome::Skipped, out);
                }
                let reference = match &self.source_digest {
                    Some(d) => d.to_string(),
                    None => self.task.source.manifest_reference(),
                };
                self.phase = Phase::Fetching;
                let sent = self.manifest(ctx, Side::Source, Method::GET, &reference, Step::Root, out);
                if let Err(error) = sent {
                    self.fail(error, out);
                }
            }
            Phase::Fetching => {
                if self.children.iter().all(|c| c.at_destination || c.manifest.is_some()) {
                    self.phase = Phase::Blobs;
                    out.push(ImageEffect::NeedBlobs);
                } else {
                    self.fetch_children(ctx, out);
                }
            }
            Phase::Blobs => self.push_children(ctx, out),
            Phase::PushingChildren => {
                self.phase = Phase::PushingRoot;
                let destination = &self.task.destination;
                let uri = ctx
                    .endpoints
                    .endpoint(destination.registry())
                    .manifest(destination.repository(), &destination.manifest_reference());
                match (uri, &self.root) {
                    (Ok(uri), Some(root)) => {
                        let request = put_manifest(uri, root);
                        let auth = self.destination_auth(ctx.options.dry_run);
                        self.send(Step::PushRoot, request, auth, out);
                    }
                    (Err(e), _) => self.fail(Error::new(ErrorKind::InvalidName, e.to_string()), out),
                    (Ok(_), None) => {}
                }
            }
            Phase::PushingRoot => self.finish(ImageOutcome::Copied, out),
            Phase::Queued | Phase::Finished(_) => {}
        }
    }

    /// For each child of an index: HEAD it at the destination (unless forced, or the
    /// repository is empty), then GET the missing ones from the source.
    fn fetch_children(&mut self, ctx: &Context, out: &mut Effects) {
        let digests: Vec<String> = self.children.iter().map(|c| c.descriptor.digest.to_string()).collect();
        for (child, digest) in digests.iter().enumerate() {
            let sent = if ctx.options.force || self.empty_repository() {
                self.manifest(ctx, Side::Source, Method::GET, digest, Step::ChildGet(child), out)
            } else {
                self.manifest(ctx, Side::Destination, Method::HEAD, digest, Step::ChildHead(child), out)
            };
            if let Err(error) = sent {
                return self.fail(error, out);
            }
        }
        if self.outstanding == 0 {
            self.advance(ctx, out);
        }
    }

    /// Every blob is at the destination: push the children that are missing there.
    fn push_children(&mut self, ctx: &Context, out: &mut Effects) {
        if self.blobs.values().any(|b| !b.done) {
            return;
        }
        if ctx.options.dry_run {
            return self.finish(ImageOutcome::WouldCopy, out);
        }
        self.phase = Phase::PushingChildren;
        let destination = &self.task.destination;
        let endpoint = ctx.endpoints.endpoint(destination.registry());
        let mut pushes = Vec::new();
        for (i, child) in self.children.iter().enumerate() {
            let Some(manifest) = &child.manifest else { continue };
            match endpoint.manifest(destination.repository(), &child.descriptor.digest.to_string()) {
                Ok(uri) => pushes.push((i, put_manifest(uri, manifest))),
                Err(e) => return self.fail(Error::new(ErrorKind::InvalidName, e.to_string()), out),
            }
        }
        for (child, request) in pushes {
            let auth = self.destination_auth(ctx.options.dry_run);
            self.send(Step::PushChild(child), request, auth, out);
        }
        self.advance(ctx, out);
    }

    /// A blob this image needed is at the destination now.
    pub(super) fn blob_ready(
        &mut self,
        digest: &Digest,
        outcome: BlobOutcome,
        ctx: &Context,
        out: &mut Effects,
    ) {
        if !self.is_live() {
            return;
        }
        let Some(need) = self.blobs.get_mut(digest) else { return };
        if need.done {
            return;
        }
        need.done = true;
        let size = need.size;
        if outcome == BlobOutcome::Transferred {
            self.bytes += size;
        }
        out.push(ImageEffect::BlobDone { digest: digest.clone(), size, outcome });
        self.advance(ctx, out);
    }

    fn finish(&mut self, outcome: ImageOutcome, out: &mut Effects) {
        if !self.is_live() {
            return;
        }
        self.phase = Phase::Finished(outcome);
        let (source, destination) = self.names();
        let image = self.id.0;
        let event = match outcome {
            ImageOutcome::Skipped => {
                let digest =
                    self.source_digest.clone().or_else(|| self.root.as_ref().map(|r| r.digest().clone()));
                Event::ImageSkipped {
                    image,
                    source,
                    destination,
                    digest: digest.unwrap_or_else(|| Digest::sha256(b"")),
                }
            }
            _ => Event::ImageDone {
                image,
                source,
                destination,
                digest: self.root.as_ref().map(|r| r.digest().clone()).unwrap_or_else(|| Digest::sha256(b"")),
                bytes: self.bytes,
                rewritten_from: self.rewritten_from.clone(),
                dry_run: outcome == ImageOutcome::WouldCopy,
            },
        };
        out.push(ImageEffect::Emit(event));
        out.push(ImageEffect::Ended);
    }

    /// Fails the image: it pushes nothing more, and its manifest never reaches the
    /// destination. Blob moves already under way finish for the images that share them.
    pub(super) fn fail(&mut self, error: Error, out: &mut Effects) {
        if !self.is_live() {
            return;
        }
        self.phase = Phase::Finished(ImageOutcome::Failed);
        let (source, destination) = self.names();
        out.push(ImageEffect::Emit(Event::ImageFailed {
            image: self.id.0,
            source,
            destination,
            reason: error.message().to_owned(),
            kind: error.kind(),
            retryable: error.is_retryable(),
        }));
        self.failure = Some(error);
        out.push(ImageEffect::Ended);
    }
}

/// A manifest that cannot be used: its bytes lie, ferry does not copy its kind, or it is
/// malformed.
/// Whether a refused push names `MANIFEST_BLOB_UNKNOWN`. OCI Distribution Spec v1.1:
/// "This error MAY be returned when a manifest blob is unknown to the registry."
fn names_unknown_child(response: &http::Response<Vec<u8>>) -> bool {
    ErrorBody::parse(response.body()).is_some_and(|body| {
        body.errors.iter().any(|item| item.code == ErrorCode::ManifestBlobUnknown.as_str())
    })
}

fn manifest_error(error: ManifestError, what: impl std::fmt::Display) -> Error {
    let kind = match &error {
        ManifestError::DigestMismatch { .. } => ErrorKind::Integrity,
        ManifestError::Schema1Unsupported | ManifestError::UnsupportedMediaType { .. } => {
            ErrorKind::Unsupported
        }
        ManifestError::NoMatchingPlatform { .. } => ErrorKind::NotFound,
        _ => ErrorKind::InvalidAnswer,
    };
    Error::new(kind, format!("{what}: {error}"))
}
