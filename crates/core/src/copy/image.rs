//! One image's copy: check, fetch, blobs, children, manifest.

use std::collections::BTreeMap;

use http::header::{ACCEPT, CONTENT_TYPE};
use http::{Method, Request, StatusCode};

use super::{content_digest, registry_error, SyncMachine, Tag};
use crate::auth::Scope;
use crate::digest::Digest;
use crate::manifest::{
    media_type::MANIFEST_ACCEPT, select, Descriptor, ImageManifest, Manifest, RawManifest,
};
use crate::plan::{CopyTask, Endpoints};
use crate::progress::{BlobOutcome, Event, Failure, ImageOutcome, ImageReport};
use crate::session::{AuthNeed, Call, Outcome};
use crate::time::Instant;

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

pub(crate) struct BlobNeed {
    pub size: u64,
    pub done: bool,
}

pub(crate) struct ImageTask {
    id: usize,
    pub task: CopyTask,
    phase: Phase,
    source_digest: Option<Digest>,
    destination_digest: Option<Option<Digest>>,
    root: Option<RawManifest>,
    rewritten_from: Option<Digest>,
    children: Vec<Child>,
    pub blobs: BTreeMap<Digest, BlobNeed>,
    outstanding: usize,
    pub bytes: u64,
    failure: Option<(String, bool)>,
}

impl ImageTask {
    pub fn new(id: usize, task: CopyTask) -> Self {
        ImageTask {
            id,
            task,
            phase: Phase::Queued,
            source_digest: None,
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

    /// Adds the blobs of an image manifest this image must have at the destination.
    /// Non-distributable (foreign) layers are not copied.
    fn need_blobs(&mut self, manifest: &ImageManifest) {
        for blob in manifest.blobs().filter(|b| !ImageManifest::is_foreign(b)) {
            self.blobs.entry(blob.digest.clone()).or_insert(BlobNeed { size: blob.size, done: false });
        }
    }

    pub fn is_live(&self) -> bool {
        !matches!(self.phase, Phase::Finished(_) | Phase::Queued)
    }

    pub fn outcome(&self) -> ImageOutcome {
        match self.phase {
            Phase::Finished(outcome) => outcome,
            _ => ImageOutcome::Pending,
        }
    }

    fn names(&self) -> (String, String) {
        (self.task.source.to_string(), self.task.destination.to_string())
    }

    pub fn failure(&self) -> Option<Failure> {
        let (reason, retryable) = self.failure.clone()?;
        let (source, destination) = self.names();
        Some(Failure { source, destination, reason, retryable })
    }

    pub fn failed_event(&self) -> Event {
        let (source, destination) = self.names();
        let (reason, retryable) = self.failure.clone().unwrap_or_default();
        Event::ImageFailed { image: self.id, source, destination, reason, retryable }
    }

    pub fn report(&self) -> ImageReport {
        let (source, destination) = self.names();
        ImageReport {
            source,
            destination,
            outcome: self.outcome(),
            digest: self.root.as_ref().map(|r| r.digest().clone()).or_else(|| self.source_digest.clone()),
            rewritten_from: self.rewritten_from.clone(),
            bytes: self.bytes,
            reason: self.failure.as_ref().map(|(r, _)| r.clone()),
        }
    }
}

/// A GET or HEAD for a manifest, accepting every manifest type ferry copies.
fn manifest_request(method: Method, url: String) -> Request<Vec<u8>> {
    Request::builder()
        .method(method)
        .uri(url)
        .header(ACCEPT, MANIFEST_ACCEPT)
        .body(Vec::new())
        .unwrap_or_default()
}

fn put_manifest(url: String, manifest: &RawManifest) -> Request<Vec<u8>> {
    Request::builder()
        .method(Method::PUT)
        .uri(url)
        .header(CONTENT_TYPE, manifest.media_type())
        .body(manifest.bytes().to_vec())
        .unwrap_or_default()
}

impl SyncMachine {
    fn source_auth(&self, id: usize) -> AuthNeed {
        let source = &self.images[id].task.source;
        AuthNeed {
            registry: source.registry().to_owned(),
            repository: source.repository().to_owned(),
            scopes: vec![Scope::pull(source.repository())],
        }
    }

    pub(super) fn destination_auth(&self, id: usize) -> AuthNeed {
        let destination = &self.images[id].task.destination;
        AuthNeed {
            registry: destination.registry().to_owned(),
            repository: destination.repository().to_owned(),
            scopes: vec![if self.options.dry_run {
                Scope::pull(destination.repository())
            } else {
                Scope::push_pull(destination.repository())
            }],
        }
    }

    fn send(&mut self, id: usize, step: Step, request: Request<Vec<u8>>, auth: AuthNeed, now: Instant) {
        self.images[id].outstanding += 1;
        self.session.submit(Tag::Image(id, step), Call::Send { request, auth }, now);
    }

    fn source_manifest(&mut self, id: usize, method: Method, reference: &str, step: Step, now: Instant) {
        let source = &self.images[id].task.source;
        let url = self.endpoints.endpoint(source.registry()).manifest(source.repository(), reference);
        let auth = self.source_auth(id);
        self.send(id, step, manifest_request(method, url), auth, now);
    }

    fn destination_manifest(&mut self, id: usize, method: Method, reference: &str, step: Step, now: Instant) {
        let destination = &self.images[id].task.destination;
        let url =
            self.endpoints.endpoint(destination.registry()).manifest(destination.repository(), reference);
        let auth = self.destination_auth(id);
        self.send(id, step, manifest_request(method, url), auth, now);
    }

    /// Check: one HEAD on each side. A source named by digest needs no HEAD; `force`
    /// skips the destination's.
    pub(super) fn start_image(&mut self, id: usize, now: Instant) {
        let image = &mut self.images[id];
        image.phase = Phase::Checking;
        image.source_digest = image.task.source.digest().cloned();
        let source_reference = image.task.source.manifest_reference();
        let destination_reference = image.task.destination.manifest_reference();
        let needs_source_head = image.source_digest.is_none();
        self.events.push_back(Event::ImageStarted {
            image: id,
            source: image.task.source.to_string(),
            destination: image.task.destination.to_string(),
        });
        if needs_source_head {
            self.source_manifest(id, Method::HEAD, &source_reference, Step::SourceHead, now);
        }
        if !self.options.force {
            self.destination_manifest(id, Method::HEAD, &destination_reference, Step::DestinationHead, now);
        }
        self.advance(id, now);
    }

    pub(super) fn image_outcome(&mut self, id: usize, step: Step, outcome: Outcome, now: Instant) {
        let Some(image) = self.images.get_mut(id) else { return };
        image.outstanding = image.outstanding.saturating_sub(1);
        if !image.is_live() {
            return;
        }
        let response = match outcome {
            Outcome::Response(response) => response,
            Outcome::Failed(e) => return self.fail(id, e.message, e.retryable, now),
            Outcome::Transferred => return,
        };
        let status = response.status();
        let result = match step {
            Step::SourceHead => self.on_source_head(id, &response),
            Step::DestinationHead => self.on_destination_head(id, &response),
            Step::Root => self.on_root(id, response),
            Step::ChildHead(child) => self.on_child_head(id, child, &response, now),
            Step::ChildGet(child) => self.on_child(id, child, response),
            Step::PushChild(_) | Step::PushRoot => self.on_pushed(id, step, &response),
        };
        match result {
            Ok(()) => self.advance(id, now),
            Err(reason) => {
                let retryable = status.is_server_error();
                self.fail(id, reason, retryable, now)
            }
        }
    }

    fn on_source_head(&mut self, id: usize, response: &http::Response<Vec<u8>>) -> Result<(), String> {
        let image = &mut self.images[id];
        match response.status() {
            s if s.is_success() => {
                image.source_digest = content_digest(response);
                Ok(())
            }
            StatusCode::NOT_FOUND => Err(format!(
                "{} does not exist at the source: check the tag, or list the tags with `ferry ls`",
                image.task.source
            )),
            _ => Err(format!("source manifest {}: {}", image.task.source, registry_error(response))),
        }
    }

    fn on_destination_head(&mut self, id: usize, response: &http::Response<Vec<u8>>) -> Result<(), String> {
        let image = &mut self.images[id];
        match response.status() {
            s if s.is_success() => {
                image.destination_digest = Some(content_digest(response));
                Ok(())
            }
            StatusCode::NOT_FOUND => {
                image.destination_digest = Some(None);
                Ok(())
            }
            _ => {
                Err(format!("destination manifest {}: {}", image.task.destination, registry_error(response)))
            }
        }
    }

    /// The source's root manifest: verified against the digest we were promised, parsed,
    /// and, for an index, narrowed to the wanted platforms.
    fn on_root(&mut self, id: usize, response: http::Response<Vec<u8>>) -> Result<(), String> {
        let force = self.options.force;
        let image = &mut self.images[id];
        let source = image.task.source.to_string();
        if !response.status().is_success() {
            return Err(format!("source manifest {source}: {}", registry_error(&response)));
        }
        let content_type =
            response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let raw = RawManifest::parse(response.into_body(), content_type.as_deref())
            .map_err(|e| format!("source manifest {source}: {e}"))?;
        if let Some(expected) = &image.source_digest {
            raw.verify(expected).map_err(|e| format!("source manifest {source}: {e}"))?;
        }
        image.source_digest = Some(raw.digest().clone());
        match raw.manifest() {
            Manifest::Image(manifest) => {
                image.need_blobs(manifest);
                image.root = Some(raw);
            }
            Manifest::Index(_) => {
                let selection = select(&raw, &image.task.platforms).map_err(|e| format!("{source}: {e}"))?;
                image.children = selection
                    .children
                    .into_iter()
                    .map(|descriptor| Child { descriptor, at_destination: false, manifest: None })
                    .collect();
                match selection.rewritten {
                    Some(rewritten) => {
                        image.rewritten_from = Some(raw.digest().clone());
                        image.root = Some(rewritten);
                    }
                    None => image.root = Some(raw),
                }
                let pushed = image.root.as_ref().map(|r| r.digest().clone());
                if !force && image.destination_digest.as_ref().and_then(|d| d.as_ref()) == pushed.as_ref() {
                    image.phase = Phase::Checking; // advance() will see the match and skip
                }
            }
        }
        Ok(())
    }

    fn on_child_head(
        &mut self,
        id: usize,
        child: usize,
        response: &http::Response<Vec<u8>>,
        now: Instant,
    ) -> Result<(), String> {
        match response.status() {
            s if s.is_success() => {
                self.images[id].children[child].at_destination = true;
                Ok(())
            }
            StatusCode::NOT_FOUND => {
                let digest = self.images[id].children[child].descriptor.digest.to_string();
                self.source_manifest(id, Method::GET, &digest, Step::ChildGet(child), now);
                Ok(())
            }
            _ => Err(format!(
                "destination manifest {}@{}: {}",
                self.images[id].task.destination,
                self.images[id].children[child].descriptor.digest,
                registry_error(response)
            )),
        }
    }

    fn on_child(&mut self, id: usize, child: usize, response: http::Response<Vec<u8>>) -> Result<(), String> {
        let image = &mut self.images[id];
        let descriptor = image.children[child].descriptor.clone();
        let name = format!("{}@{}", image.task.source.repository(), descriptor.digest);
        if !response.status().is_success() {
            return Err(format!("source manifest {name}: {}", registry_error(&response)));
        }
        if response.body().len() as u64 != descriptor.size {
            return Err(format!(
                "source manifest {name} is {} bytes; the index says {}",
                response.body().len(),
                descriptor.size
            ));
        }
        let content_type =
            response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let raw = RawManifest::parse(
            response.into_body(),
            content_type.as_deref().or(Some(descriptor.media_type.as_str())),
        )
        .map_err(|e| format!("source manifest {name}: {e}"))?;
        raw.verify(&descriptor.digest).map_err(|e| format!("source manifest {name}: {e}"))?;
        match raw.manifest() {
            Manifest::Image(manifest) => {
                image.need_blobs(manifest);
            }
            Manifest::Index(_) => {
                return Err(format!(
                    "source manifest {name} is an index inside an index; ferry copies one level"
                ))
            }
        }
        image.children[child].manifest = Some(raw);
        Ok(())
    }

    fn on_pushed(&mut self, id: usize, step: Step, response: &http::Response<Vec<u8>>) -> Result<(), String> {
        let image = &self.images[id];
        let (what, expected) = match step {
            Step::PushChild(child) => {
                let d = &image.children[child].descriptor.digest;
                (format!("{}@{d}", image.task.destination.repository()), Some(d.clone()))
            }
            _ => (image.task.destination.to_string(), image.root.as_ref().map(|r| r.digest().clone())),
        };
        if !response.status().is_success() {
            return Err(format!("pushing manifest {what}: {}", registry_error(response)));
        }
        if let (Some(got), Some(expected)) = (content_digest(response), expected) {
            if got != expected {
                return Err(format!(
                    "the destination stored manifest {what} as {got}, but ferry pushed {expected}: the registry altered the bytes"
                ));
            }
        }
        Ok(())
    }

    /// Moves an image on once everything its phase waits for has arrived.
    pub(super) fn advance(&mut self, id: usize, now: Instant) {
        let force = self.options.force;
        let image = &self.images[id];
        if image.outstanding > 0 || !image.is_live() {
            return;
        }
        match image.phase {
            Phase::Checking => {
                // The digest the destination would hold: the source's, or the rewritten index's.
                let wanted = match &image.root {
                    Some(root) => Some(root.digest()),
                    None => image.source_digest.as_ref(),
                };
                let held = image.destination_digest.as_ref().and_then(Option::as_ref);
                let in_sync = !force && wanted.is_some() && held == wanted;
                if in_sync {
                    return self.finish(id, ImageOutcome::Skipped, now);
                }
                let reference = match &image.source_digest {
                    Some(d) => d.to_string(),
                    None => image.task.source.manifest_reference(),
                };
                self.images[id].phase = Phase::Fetching;
                self.source_manifest(id, Method::GET, &reference, Step::Root, now);
            }
            Phase::Fetching => {
                if self.images[id].children.is_empty() || self.children_fetched(id) {
                    self.images[id].phase = Phase::Blobs;
                    self.request_blobs(id, now);
                    self.advance_blobs(id, now);
                } else {
                    self.fetch_children(id, now);
                }
            }
            Phase::Blobs => self.advance_blobs(id, now),
            Phase::PushingChildren => {
                self.images[id].phase = Phase::PushingRoot;
                let image = &self.images[id];
                let Some(root) = &image.root else { return };
                let url = self.endpoints.endpoint(image.task.destination.registry()).manifest(
                    image.task.destination.repository(),
                    &image.task.destination.manifest_reference(),
                );
                let request = put_manifest(url, root);
                let auth = self.destination_auth(id);
                self.send(id, Step::PushRoot, request, auth, now);
            }
            Phase::PushingRoot => self.finish(id, ImageOutcome::Copied, now),
            Phase::Queued | Phase::Finished(_) => {}
        }
    }

    fn children_fetched(&self, id: usize) -> bool {
        self.images[id].children.iter().all(|c| c.at_destination || c.manifest.is_some())
    }

    /// For each child of an index: HEAD it at the destination (unless forced), then GET
    /// the missing ones from the source.
    fn fetch_children(&mut self, id: usize, now: Instant) {
        let force = self.options.force;
        let children: Vec<(usize, String)> = self.images[id]
            .children
            .iter()
            .enumerate()
            .map(|(i, c)| (i, c.descriptor.digest.to_string()))
            .collect();
        for (child, digest) in children {
            if force {
                self.source_manifest(id, Method::GET, &digest, Step::ChildGet(child), now);
            } else {
                self.destination_manifest(id, Method::HEAD, &digest, Step::ChildHead(child), now);
            }
        }
        self.images[id].phase = Phase::Fetching;
        if self.images[id].outstanding == 0 {
            self.advance(id, now);
        }
    }

    fn advance_blobs(&mut self, id: usize, now: Instant) {
        let image = &self.images[id];
        if image.phase != Phase::Blobs || image.blobs.values().any(|b| !b.done) {
            return;
        }
        if self.options.dry_run {
            return self.finish(id, ImageOutcome::WouldCopy, now);
        }
        self.images[id].phase = Phase::PushingChildren;
        let image = &self.images[id];
        let endpoint = self.endpoints.endpoint(image.task.destination.registry());
        let pushes: Vec<(usize, Request<Vec<u8>>)> = image
            .children
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let manifest = c.manifest.as_ref()?;
                let url =
                    endpoint.manifest(image.task.destination.repository(), &c.descriptor.digest.to_string());
                Some((i, put_manifest(url, manifest)))
            })
            .collect();
        for (child, request) in pushes {
            let auth = self.destination_auth(id);
            self.send(id, Step::PushChild(child), request, auth, now);
        }
        self.advance(id, now);
    }

    /// A blob this image needed is at the destination now.
    pub(super) fn blob_ready(&mut self, id: usize, digest: &Digest, outcome: BlobOutcome, now: Instant) {
        let Some(image) = self.images.get_mut(id) else { return };
        if !image.is_live() {
            return;
        }
        let Some(need) = image.blobs.get_mut(digest) else { return };
        if need.done {
            return;
        }
        need.done = true;
        let size = need.size;
        match outcome {
            BlobOutcome::Present => self.summary.blobs_present += 1,
            BlobOutcome::Mounted => self.summary.blobs_mounted += 1,
            BlobOutcome::Transferred => {
                self.summary.blobs_transferred += 1;
                self.images[id].bytes += size;
                if self.options.dry_run {
                    self.summary.bytes_to_copy += size;
                } else {
                    self.summary.bytes_transferred += size;
                }
            }
        }
        self.events.push_back(Event::BlobDone { image: id, digest: digest.clone(), size, outcome });
        self.advance(id, now);
    }

    fn finish(&mut self, id: usize, outcome: ImageOutcome, now: Instant) {
        let image = &mut self.images[id];
        if !image.is_live() {
            return;
        }
        image.phase = Phase::Finished(outcome);
        let (source, destination) = image.names();
        let event = match outcome {
            ImageOutcome::Skipped => {
                self.summary.skipped += 1;
                let digest =
                    image.source_digest.clone().or_else(|| image.root.as_ref().map(|r| r.digest().clone()));
                Event::ImageSkipped {
                    image: id,
                    source,
                    destination,
                    digest: digest.unwrap_or_else(|| Digest::sha256(b"")),
                }
            }
            _ => {
                self.summary.copied += usize::from(outcome == ImageOutcome::Copied);
                Event::ImageDone {
                    image: id,
                    source,
                    destination,
                    digest: image
                        .root
                        .as_ref()
                        .map(|r| r.digest().clone())
                        .unwrap_or_else(|| Digest::sha256(b"")),
                    bytes: image.bytes,
                    rewritten_from: image.rewritten_from.clone(),
                    dry_run: outcome == ImageOutcome::WouldCopy,
                }
            }
        };
        self.events.push_back(event);
        self.active -= 1;
        self.fill(now);
    }

    /// Fails an image: it pushes nothing more, and its manifest never reaches the
    /// destination. Blob moves already under way finish for the images that share them.
    pub(super) fn fail(&mut self, id: usize, reason: String, retryable: bool, now: Instant) {
        let image = &mut self.images[id];
        if !image.is_live() {
            return;
        }
        image.phase = Phase::Finished(ImageOutcome::Failed);
        image.failure = Some((reason, retryable));
        self.summary.failed += 1;
        if let Some(failure) = image.failure() {
            self.summary.failures.push(failure);
        }
        self.events.push_back(image.failed_event());
        self.active -= 1;
        self.fill(now);
    }
}
