//! Referrers of the job's manifests: found at the source, copied after their subject,
//! listed at the destination.
//!
//! For every manifest an image ends with (its root, each child of an index, and each
//! referrer in turn, to [`MAX_DEPTH`]) the [`ReferrerTable`] asks the source's referrers
//! API; a 404 there means the registry has none ("the registry MUST NOT return a `404 Not
//! Found` to a referrers API requests" when it does), so it reads the `<alg>-<hex>` tag
//! of the referrers tag schema instead, and remembers per registry which one to ask:
//! one request at a time finds out (the first subject's), and the others wait for its
//! answer, so a job asks exactly once per registry and side whatever the timing, and a dry
//! run foresees the real run's requests exactly. With
//! cosign kinds wanted it also looks up `sha256-<hex>.sig|.att|.sbom` in the source
//! repository's tag list (the planner's, else one listing per repository).
//!
//! Each referrer becomes a copy task of its own, by digest (cosign's by tag), run by the
//! job like any image: the same HEAD-then-skip, the same blob table (mounts, verification,
//! shared blobs), bytes pushed as fetched. Once the referrers of a subject have ended, the
//! destination must list them. A registry with the API does so by itself: ferry asks it
//! once (`GET /referrers/` at the destination; a 404 means no API). A registry without it
//! gets the tag schema's read-modify-write: read `<alg>-<hex>` (a 404 is an empty index),
//! add the descriptors it lacks, keep every entry already there, push; then read it again,
//! and if a concurrent writer's push dropped ours, merge into what it wrote and push again
//! ([`INDEX_ATTEMPTS`] times in all).
//!
//! A referrer that fails (a lying blob, say) fails alone: its subject is already at the
//! destination, and the index lists only referrers that made it.
//!
//! A dry run makes the same reads (the destination's probe and its tag-schema index
//! included) and, where the real run would push a merged index, foresees that `PUT` and the
//! read back ([`ReferrerEffect::Foresee`]) instead of sending them.

mod tags;

use std::collections::{BTreeMap, BTreeSet};

use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, StatusCode};

use super::image::ImageId;
use super::{refused, Context};
use crate::api::{manifest_request, request};
use crate::auth::Scope;
use crate::digest::Digest;
use crate::error::{Error, ErrorKind};
use crate::manifest::{media_type, Descriptor, PlatformFilter};
use crate::plan::CopyTask;
use crate::progress::{Event, Failure};
use crate::reference::Reference;
use crate::referrers::{cosign_tag, fallback_tag, merge_index, referrers_list, ReferrerFilter, MAX_DEPTH};
use crate::session::{AuthNeed, Call, Outcome};
use tags::{Lookup, Paged, RepoTags};

/// What a referrers API call that failed at the transport counts as: a 404, no API. A
/// browser cannot read distribution's 404 for a route it lacks, which carries no CORS
/// headers, and sees a network error; the tag-schema read that follows, a route every
/// registry has, says whether the registry answers at all.
pub(crate) fn no_api() -> http::Response<Vec<u8>> {
    let mut response = http::Response::new(Vec::new());
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

/// Read-modify-write rounds of one subject's tag-schema index before ferry gives up on
/// listing it: a concurrent writer that drops ferry's entries twice in a row is rare.
pub(crate) const INDEX_ATTEMPTS: u32 = 3;

/// A subject of the job: one manifest whose referrers are looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct SubjectId(usize);

/// The request a subject (or a repository's tag listing) waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefStep {
    /// `GET /referrers/<digest>` at the source.
    SourceApi(SubjectId),
    /// The source's tag-schema index.
    SourceIndex(SubjectId),
    /// A page of a source repository's tags, for cosign's tags.
    Tags(usize),
    /// `GET /referrers/<digest>` at the destination: does it have the API?
    DestinationApi(SubjectId),
    /// The destination's tag-schema index, before a write or after one.
    DestinationIndex(SubjectId),
    /// The push of the merged index.
    PushIndex(SubjectId),
}

/// What the table asks of the job.
#[derive(Debug)]
pub(crate) enum ReferrerEffect {
    Send(RefStep, Call),
    /// Copy a referrer after its subject: queue it as an image and tell the table its id
    /// with [`ReferrerTable::attach`].
    Queue {
        subject: SubjectId,
        task: Box<CopyTask>,
        entry: Option<Descriptor>,
    },
    Emit(Event),
    /// In a dry run: requests to `registry` the real run makes and the dry run does not
    /// (an index's `PUT` and its read back), `counted` of them against a pull budget.
    Foresee {
        registry: String,
        requests: u64,
        counted: u64,
    },
}

type Effects = Vec<ReferrerEffect>;

/// What the job knows of a registry's referrers API, on one side of the copy.
#[derive(Debug)]
enum Api {
    /// One subject's request is finding out; these subjects wait for its answer.
    Probing(Vec<SubjectId>),
    Known(bool),
}

/// A registry and whether it is asked as a source (discovery) or a destination (listing):
/// each side finds out once, so the count does not hang on which side asks first.
type ApiKey = (String, bool);

/// What the subject's manifest is to the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Its referrers travel with it.
    Copy,
    /// A platform filter rewrote it: its referrers sign a digest the destination will not
    /// hold, so they are counted and reported, not copied.
    Drop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Discovering,
    Copying,
    Indexing,
    Done,
}

struct Subject {
    /// The image whose manifest it is.
    image: ImageId,
    source: Reference,
    destination: Reference,
    digest: Digest,
    depth: u32,
    filter: ReferrerFilter,
    mode: Mode,
    phase: Phase,
    outstanding: usize,
    /// Referrers by the API or the tag schema, filtered: each becomes a task.
    found: Vec<Descriptor>,
    /// cosign tags of it in the source repository.
    cosign: Vec<String>,
    /// Referrer tasks not ended yet, and those queued but not yet attached to an image.
    pending: BTreeSet<ImageId>,
    unattached: usize,
    /// Entries the destination must list: referrers that reached it.
    listed: Vec<Descriptor>,
    /// Tag-schema writes so far.
    attempts: u32,
}

/// A referrer task's place: which subject it belongs to and the entry it adds to the
/// subject's list at the destination (none for a cosign tag).
#[derive(Debug, Clone)]
pub(crate) struct Role {
    pub subject: SubjectId,
    pub subject_digest: Digest,
    pub depth: u32,
    pub entry: Option<Descriptor>,
}

/// Totals for the summary.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counts {
    pub dropped: usize,
    pub indexed: usize,
}

#[derive(Default)]
pub(crate) struct ReferrerTable {
    subjects: Vec<Subject>,
    seen: BTreeSet<(String, String, Digest)>,
    queued: BTreeSet<String>,
    roles: BTreeMap<ImageId, Role>,
    /// Whether a registry answers the referrers API, per side, once a request told.
    api: BTreeMap<ApiKey, Api>,
    tags: RepoTags,
    failures: Vec<Failure>,
    pub counts: Counts,
}

impl ReferrerTable {
    /// Tags the planner listed: cosign's are looked up there at no cost.
    pub(crate) fn know_tags(&mut self, registry: &str, repository: &str, tags: BTreeSet<String>) {
        self.tags.know((registry.to_owned(), repository.to_owned()), tags);
    }

    /// The image whose manifest a subject is.
    pub(crate) fn subject_image(&self, subject: SubjectId) -> ImageId {
        self.subjects[subject.0].image
    }

    /// Referrers of `image`'s rewritten index that were left behind.
    pub(crate) fn dropped(&self, image: ImageId) -> usize {
        self.subjects.iter().filter(|s| s.image == image && s.mode == Mode::Drop).map(|s| s.found.len()).sum()
    }

    /// The role of a referrer task, if the image is one.
    pub(crate) fn role(&self, image: ImageId) -> Option<&Role> {
        self.roles.get(&image)
    }

    /// Failures of the destination's listing (tag-schema writes) and of discovery.
    pub(crate) fn failures(&self) -> &[Failure] {
        &self.failures
    }

    /// The depth a manifest of `image` has: 0 for an image, its subject's plus one for a
    /// referrer.
    fn depth_of(&self, image: ImageId) -> u32 {
        self.roles.get(&image).map_or(0, |r| r.depth + 1)
    }

    /// Looks for the referrers of `digest`, a manifest that `image` (copying `task`)
    /// ended with.
    pub(crate) fn discover(
        &mut self,
        image: ImageId,
        task: &CopyTask,
        digest: Digest,
        mode: Mode,
        ctx: &Context,
        out: &mut Effects,
    ) {
        let depth = self.depth_of(image);
        if !task.referrers.is_on() || depth >= MAX_DEPTH {
            return;
        }
        let (source, destination) = (&task.source, &task.destination);
        let key = (destination.registry().to_owned(), destination.repository().to_owned(), digest.clone());
        if mode == Mode::Copy && !self.seen.insert(key) {
            return;
        }
        let id = SubjectId(self.subjects.len());
        self.subjects.push(Subject {
            image,
            source: source.clone(),
            destination: destination.clone(),
            digest,
            depth,
            filter: task.referrers.clone(),
            mode,
            phase: Phase::Discovering,
            outstanding: 0,
            found: Vec::new(),
            cosign: Vec::new(),
            pending: BTreeSet::new(),
            unattached: 0,
            listed: Vec::new(),
            attempts: 0,
        });
        if task.referrers.wants_any_artifact() {
            if let Err(error) = self.ask(id, true, ctx, out) {
                return self.fail(id, error, out);
            }
        }
        if mode == Mode::Copy && !task.referrers.cosign_kinds().is_empty() {
            self.cosign_tags(id, ctx, out);
        }
        self.advance(id, ctx, out);
    }

    fn api_key(&self, id: SubjectId, source_side: bool) -> ApiKey {
        let s = &self.subjects[id.0];
        let image = if source_side { &s.source } else { &s.destination };
        (image.registry().to_owned(), source_side)
    }

    /// The subject's first request on one side: the referrers API where the registry has
    /// it, else the tag-schema index; the probe itself when nobody knows yet, and a wait
    /// while another subject's probe is out.
    fn ask(
        &mut self,
        id: SubjectId,
        source_side: bool,
        ctx: &Context,
        out: &mut Effects,
    ) -> Result<(), Error> {
        let key = self.api_key(id, source_side);
        match self.api.get_mut(&key) {
            Some(Api::Known(has_api)) => {
                let has_api = *has_api;
                self.known(id, source_side, has_api, ctx, out)
            }
            Some(Api::Probing(waiting)) => {
                waiting.push(id);
                self.subjects[id.0].outstanding += 1;
                Ok(())
            }
            None => {
                self.api.insert(key.clone(), Api::Probing(Vec::new()));
                let sent = self.send_referrers(id, source_side, ctx, out);
                if sent.is_err() {
                    self.api.remove(&key);
                }
                sent
            }
        }
    }

    /// The subject's request once the registry's API is known.
    fn known(
        &mut self,
        id: SubjectId,
        source_side: bool,
        has_api: bool,
        ctx: &Context,
        out: &mut Effects,
    ) -> Result<(), Error> {
        match (source_side, has_api) {
            (true, true) => self.send_referrers(id, true, ctx, out),
            (true, false) => self.read_source_index(id, ctx, out),
            (false, true) => {
                self.subjects[id.0].phase = Phase::Done;
                Ok(())
            }
            (false, false) => self.read_destination_index(id, ctx, out),
        }
    }

    /// A probe told whether the registry has the API: the subjects that waited go on.
    fn learn(&mut self, key: ApiKey, has_api: bool, ctx: &Context, out: &mut Effects) {
        let waiting = match self.api.insert(key.clone(), Api::Known(has_api)) {
            Some(Api::Probing(waiting)) => waiting,
            _ => Vec::new(),
        };
        for id in waiting {
            self.subjects[id.0].outstanding -= 1;
            if self.subjects[id.0].phase == Phase::Done {
                continue; // failed meanwhile
            }
            match self.known(id, key.1, has_api, ctx, out) {
                Ok(()) => self.advance(id, ctx, out),
                Err(error) => self.fail(id, error, out),
            }
        }
    }

    /// A probe failed without telling: the first subject that waited probes in its place.
    fn release(&mut self, key: ApiKey, ctx: &Context, out: &mut Effects) {
        let Some(Api::Probing(waiting)) = self.api.remove(&key) else { return };
        for id in waiting {
            self.subjects[id.0].outstanding -= 1;
            if self.subjects[id.0].phase == Phase::Done {
                continue;
            }
            match self.ask(id, key.1, ctx, out) {
                Ok(()) => self.advance(id, ctx, out),
                Err(error) => self.fail(id, error, out),
            }
        }
    }

    fn subject_auth(&self, id: SubjectId, source_side: bool, write: bool) -> AuthNeed {
        let s = &self.subjects[id.0];
        let image = if source_side { &s.source } else { &s.destination };
        let scope =
            if write { Scope::push_pull(image.repository()) } else { Scope::pull(image.repository()) };
        AuthNeed {
            registry: image.registry().to_owned(),
            repository: image.repository().to_owned(),
            scopes: vec![scope],
        }
    }

    fn send(
        &mut self,
        id: SubjectId,
        step: RefStep,
        request: http::Request<Vec<u8>>,
        write: bool,
        out: &mut Effects,
    ) {
        let source_side = matches!(step, RefStep::SourceApi(_) | RefStep::SourceIndex(_));
        let auth = self.subject_auth(id, source_side, write);
        self.subjects[id.0].outstanding += 1;
        out.push(ReferrerEffect::Send(step, Call::Send { request, auth }));
    }

    /// end-12a at the source (discovery) or at the destination (does it have the API?).
    fn send_referrers(
        &mut self,
        id: SubjectId,
        source_side: bool,
        ctx: &Context,
        out: &mut Effects,
    ) -> Result<(), Error> {
        let s = &self.subjects[id.0];
        let image = if source_side { &s.source } else { &s.destination };
        let uri = ctx.endpoints.endpoint(image.registry()).referrers(image.repository(), &s.digest);
        let uri = uri.map_err(|e| Error::new(ErrorKind::InvalidName, e.to_string()))?;
        let mut request = request(Method::GET, uri);
        request.headers_mut().insert(http::header::ACCEPT, HeaderValue::from_static(media_type::OCI_INDEX));
        let step = if source_side { RefStep::SourceApi(id) } else { RefStep::DestinationApi(id) };
        self.send(id, step, request, false, out);
        Ok(())
    }

    fn index_request(
        &self,
        id: SubjectId,
        source_side: bool,
        ctx: &Context,
    ) -> Result<http::Request<Vec<u8>>, Error> {
        let s = &self.subjects[id.0];
        let image = if source_side { &s.source } else { &s.destination };
        let uri =
            ctx.endpoints.endpoint(image.registry()).manifest(image.repository(), &fallback_tag(&s.digest));
        let uri = uri.map_err(|e| Error::new(ErrorKind::InvalidName, e.to_string()))?;
        Ok(manifest_request(Method::GET, uri))
    }

    fn read_source_index(&mut self, id: SubjectId, ctx: &Context, out: &mut Effects) -> Result<(), Error> {
        let request = self.index_request(id, true, ctx)?;
        self.send(id, RefStep::SourceIndex(id), request, false, out);
        Ok(())
    }

    fn read_destination_index(
        &mut self,
        id: SubjectId,
        ctx: &Context,
        out: &mut Effects,
    ) -> Result<(), Error> {
        let request = self.index_request(id, false, ctx)?;
        self.send(id, RefStep::DestinationIndex(id), request, !ctx.options.dry_run, out);
        Ok(())
    }

    /// cosign's tags of the subject, from its repository's tag list (listed once).
    fn cosign_tags(&mut self, id: SubjectId, ctx: &Context, out: &mut Effects) {
        let source = &self.subjects[id.0].source;
        let key = (source.registry().to_owned(), source.repository().to_owned());
        match self.tags.lookup(key, id, &ctx.endpoints) {
            Lookup::Known(tags) => self.resolve_cosign(id, &tags),
            Lookup::Waiting => self.subjects[id.0].outstanding += 1,
            Lookup::Start(at, call) => {
                self.subjects[id.0].outstanding += 1;
                out.push(ReferrerEffect::Send(RefStep::Tags(at), *call));
            }
            Lookup::Failed(error) => self.fail(id, error, out),
        }
    }

    fn resolve_cosign(&mut self, id: SubjectId, tags: &BTreeSet<String>) {
        let s = &mut self.subjects[id.0];
        s.cosign = s
            .filter
            .cosign_kinds()
            .into_iter()
            .map(|kind| cosign_tag(&s.digest, kind))
            .filter(|tag| tags.contains(tag))
            .collect();
    }

    /// The outcome of a call the table sent.
    pub(crate) fn on_outcome(&mut self, step: RefStep, outcome: Outcome, ctx: &Context, out: &mut Effects) {
        if let RefStep::Tags(at) = step {
            return self.on_tags(at, outcome, ctx, out);
        }
        let id = match step {
            RefStep::SourceApi(id)
            | RefStep::SourceIndex(id)
            | RefStep::DestinationApi(id)
            | RefStep::DestinationIndex(id)
            | RefStep::PushIndex(id) => id,
            RefStep::Tags(_) => return,
        };
        self.subjects[id.0].outstanding = self.subjects[id.0].outstanding.saturating_sub(1);
        let api_probe = matches!(step, RefStep::SourceApi(_) | RefStep::DestinationApi(_));
        self.on_answer(id, step, outcome, api_probe, ctx, out);
        if api_probe {
            // A probe that failed told nothing: another subject asks.
            let key = self.api_key(id, matches!(step, RefStep::SourceApi(_)));
            if matches!(self.api.get(&key), Some(Api::Probing(_))) {
                self.release(key, ctx, out);
            }
        }
    }

    fn on_answer(
        &mut self,
        id: SubjectId,
        step: RefStep,
        outcome: Outcome,
        api_probe: bool,
        ctx: &Context,
        out: &mut Effects,
    ) {
        let response = match outcome {
            Outcome::Response(response) => response,
            Outcome::Failed(e) if e.from_transport && api_probe => no_api(),
            Outcome::Failed(e) => return self.fail(id, e.error, out),
            Outcome::Transferred => return,
        };
        let result = match step {
            RefStep::SourceApi(_) => self.on_source_api(id, response, ctx, out),
            RefStep::SourceIndex(_) => self.on_source_index(id, response),
            RefStep::DestinationApi(_) => self.on_destination_api(id, &response, ctx, out),
            RefStep::DestinationIndex(_) => self.on_destination_index(id, response, ctx, out),
            RefStep::PushIndex(_) => self.on_pushed_index(id, &response, ctx, out),
            RefStep::Tags(_) => Ok(()),
        };
        match result {
            Ok(()) => self.advance(id, ctx, out),
            Err(error) => self.fail(id, error, out),
        }
    }

    fn on_source_api(
        &mut self,
        id: SubjectId,
        response: http::Response<Vec<u8>>,
        ctx: &Context,
        out: &mut Effects,
    ) -> Result<(), Error> {
        let key = self.api_key(id, true);
        match response.status() {
            StatusCode::NOT_FOUND => {
                self.learn(key, false, ctx, out);
                self.read_source_index(id, ctx, out)
            }
            s if s.is_success() => {
                self.learn(key, true, ctx, out);
                self.take_found(id, response.into_body())
            }
            _ => Err(refused(&response, format!("referrers of {}", self.name(id, true)))),
        }
    }

    fn on_source_index(&mut self, id: SubjectId, response: http::Response<Vec<u8>>) -> Result<(), Error> {
        match response.status() {
            StatusCode::NOT_FOUND => Ok(()),
            s if s.is_success() => self.take_found(id, response.into_body()),
            _ => Err(refused(&response, format!("referrers index of {}", self.name(id, true)))),
        }
    }

    fn take_found(&mut self, id: SubjectId, body: Vec<u8>) -> Result<(), Error> {
        let name = self.name(id, true);
        let list = referrers_list(body).map_err(|e| {
            Error::new(ErrorKind::InvalidAnswer, format!("referrers of {name}: not an image index: {e}"))
        })?;
        let s = &mut self.subjects[id.0];
        let filter = s.filter.clone();
        s.found = list.into_iter().filter(|d| filter.wants_artifact(d.artifact_type.as_deref())).collect();
        Ok(())
    }

    fn on_tags(&mut self, at: usize, outcome: Outcome, ctx: &Context, out: &mut Effects) {
        match self.tags.on_page(at, outcome, &ctx.endpoints) {
            Paged::Next(call) => out.push(ReferrerEffect::Send(RefStep::Tags(at), *call)),
            Paged::Done(tags, waiting) => {
                for id in waiting {
                    self.subjects[id.0].outstanding -= 1;
                    self.resolve_cosign(id, &tags);
                    self.advance(id, ctx, out);
                }
            }
            Paged::Failed(error, waiting) => {
                for id in waiting {
                    self.subjects[id.0].outstanding -= 1;
                    self.fail(id, error.clone(), out);
                }
            }
            Paged::Ignored => {}
        }
    }

    fn on_destination_api(
        &mut self,
        id: SubjectId,
        response: &http::Response<Vec<u8>>,
        ctx: &Context,
        out: &mut Effects,
    ) -> Result<(), Error> {
        let key = self.api_key(id, false);
        match response.status() {
            StatusCode::NOT_FOUND => {
                self.learn(key, false, ctx, out);
                self.read_destination_index(id, ctx, out)
            }
            s if s.is_success() => {
                self.learn(key, true, ctx, out);
                self.subjects[id.0].phase = Phase::Done;
                Ok(())
            }
            _ => Err(refused(response, format!("referrers of {}", self.name(id, false)))),
        }
    }

    /// The destination's index, read before a write or after one: merge what it lacks and
    /// push, or end when it lists every referrer that made it.
    fn on_destination_index(
        &mut self,
        id: SubjectId,
        response: http::Response<Vec<u8>>,
        ctx: &Context,
        out: &mut Effects,
    ) -> Result<(), Error> {
        let name = self.name(id, false);
        let existing = match response.status() {
            StatusCode::NOT_FOUND => None,
            s if s.is_success() => Some(response.into_body()),
            _ => return Err(refused(&response, format!("referrers index of {name}"))),
        };
        let s = &self.subjects[id.0];
        let merged = merge_index(existing.as_deref(), &s.listed).map_err(|e| {
            Error::new(
                ErrorKind::InvalidAnswer,
                format!(
                    "the referrers tag {} of {name} is not an image index ({e}); ferry leaves it alone",
                    fallback_tag(&s.digest)
                ),
            )
        })?;
        let Some(bytes) = merged else {
            self.subjects[id.0].phase = Phase::Done;
            return Ok(());
        };
        if ctx.options.dry_run {
            // The real run pushes the merged index and reads it back, a manifest GET.
            let registry = s.destination.registry().to_owned();
            out.push(ReferrerEffect::Foresee { registry, requests: 2, counted: 1 });
            self.counts.indexed += 1;
            self.subjects[id.0].phase = Phase::Done;
            return Ok(());
        }
        if s.attempts >= INDEX_ATTEMPTS {
            return Err(Error::new(
                ErrorKind::Refused,
                format!("the referrers tag {} of {name} lost ferry's entries to concurrent writers {INDEX_ATTEMPTS} times", fallback_tag(&s.digest)),
            ));
        }
        let uri = ctx
            .endpoints
            .endpoint(s.destination.registry())
            .manifest(s.destination.repository(), &fallback_tag(&s.digest))
            .map_err(|e| Error::new(ErrorKind::InvalidName, e.to_string()))?;
        let mut request = request(Method::PUT, uri);
        request.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(media_type::OCI_INDEX));
        *request.body_mut() = bytes;
        self.subjects[id.0].attempts += 1;
        self.send(id, RefStep::PushIndex(id), request, true, out);
        Ok(())
    }

    fn on_pushed_index(
        &mut self,
        id: SubjectId,
        response: &http::Response<Vec<u8>>,
        ctx: &Context,
        out: &mut Effects,
    ) -> Result<(), Error> {
        if !response.status().is_success() {
            return Err(refused(
                response,
                format!("pushing the referrers index of {}", self.name(id, false)),
            ));
        }
        if self.subjects[id.0].attempts == 1 {
            self.counts.indexed += 1;
        }
        // Read it back: a concurrent writer may have pushed its own list over ours.
        self.read_destination_index(id, ctx, out)
    }

    fn name(&self, id: SubjectId, source_side: bool) -> String {
        let s = &self.subjects[id.0];
        let image = if source_side { &s.source } else { &s.destination };
        format!("{}/{}@{}", image.registry(), image.repository(), s.digest)
    }

    /// A referrer task has ended; `ok` when it reached the destination (or, in a dry run,
    /// would).
    pub(crate) fn referrer_ended(&mut self, image: ImageId, ok: bool, ctx: &Context, out: &mut Effects) {
        let Some(role) = self.roles.get(&image).cloned() else { return };
        let id = role.subject;
        let s = &mut self.subjects[id.0];
        s.pending.remove(&image);
        if ok {
            if let Some(entry) = role.entry {
                if !s.listed.contains(&entry) {
                    s.listed.push(entry);
                    if s.phase == Phase::Done {
                        // Ran again in a later round: list it too.
                        s.phase = Phase::Copying;
                    }
                }
            }
        }
        self.advance(id, ctx, out);
    }

    /// Records the image a [`ReferrerEffect::Queue`] became.
    pub(crate) fn attach(&mut self, subject: SubjectId, image: ImageId, entry: Option<Descriptor>) {
        let s = &mut self.subjects[subject.0];
        s.unattached = s.unattached.saturating_sub(1);
        s.pending.insert(image);
        let role = Role { subject, subject_digest: s.digest.clone(), depth: s.depth, entry };
        self.roles.insert(image, role);
    }

    /// Moves a subject on once nothing it waits for is outstanding.
    fn advance(&mut self, id: SubjectId, ctx: &Context, out: &mut Effects) {
        if self.subjects[id.0].outstanding > 0 {
            return;
        }
        if self.subjects[id.0].phase == Phase::Discovering {
            self.found(id, out);
        }
        let s = &self.subjects[id.0];
        if s.phase == Phase::Copying && s.pending.is_empty() && s.unattached == 0 {
            self.list_at_destination(id, ctx, out);
        }
    }

    /// Discovery is over: queue the referrers (or, for a rewritten index, report them).
    fn found(&mut self, id: SubjectId, out: &mut Effects) {
        let s = &mut self.subjects[id.0];
        if s.mode == Mode::Drop {
            s.phase = Phase::Done;
            let count = s.found.len();
            if count > 0 {
                self.counts.dropped += count;
                out.push(ReferrerEffect::Emit(Event::ReferrersDropped {
                    image: s.image.0,
                    subject_digest: s.digest.clone(),
                    count,
                    reason: format!(
                        "a platform filter rewrote the index, so its {count} referrer(s) of {} would point at a digest the destination does not hold; the per-platform images' referrers are copied",
                        s.digest
                    ),
                }));
            }
            return;
        }
        s.phase = Phase::Copying;
        let (source, destination) = (s.source.clone(), s.destination.clone());
        let found = s.found.clone();
        let cosign = s.cosign.clone();
        let filter = s.filter.clone();
        let by_digest = found.into_iter().map(|d| (None, Some(d.digest.clone()), Some(d)));
        let by_tag = cosign.into_iter().map(|tag| (Some(tag), None, None));
        for (tag, digest, entry) in by_digest.chain(by_tag) {
            let source =
                Reference::new(source.registry(), source.repository(), tag.as_deref(), digest.clone());
            let target =
                Reference::new(destination.registry(), destination.repository(), tag.as_deref(), digest);
            let (Ok(source), Ok(target)) = (source, target) else { continue };
            if !self.queued.insert(target.to_string()) {
                continue;
            }
            let task = CopyTask {
                source,
                destination: target,
                platforms: PlatformFilter::default(),
                referrers: filter.clone(),
            };
            self.subjects[id.0].unattached += 1;
            out.push(ReferrerEffect::Queue { subject: id, task: Box::new(task), entry });
        }
    }

    /// Every referrer of the subject has ended: make the destination list those that made
    /// it. Nothing to do for a registry known to have the API. A dry run reads as the real
    /// run does and foresees its writes.
    fn list_at_destination(&mut self, id: SubjectId, ctx: &Context, out: &mut Effects) {
        let s = &mut self.subjects[id.0];
        if s.listed.is_empty() {
            s.phase = Phase::Done;
            return;
        }
        s.phase = Phase::Indexing;
        s.attempts = 0;
        if let Err(error) = self.ask(id, false, ctx, out) {
            self.fail(id, error, out);
        }
    }

    /// The subject's discovery or listing failed: report it; its referrers already
    /// copied stay.
    fn fail(&mut self, id: SubjectId, error: Error, out: &mut Effects) {
        let s = &mut self.subjects[id.0];
        if s.phase == Phase::Done {
            return;
        }
        s.phase = Phase::Done;
        let source = format!("{}/{}@{}", s.source.registry(), s.source.repository(), s.digest);
        let destination = format!("{}/{}@{}", s.destination.registry(), s.destination.repository(), s.digest);
        let error = error.context("referrers");
        out.push(ReferrerEffect::Emit(Event::ReferrersFailed {
            image: s.image.0,
            subject_digest: s.digest.clone(),
            reason: error.message().to_owned(),
            kind: error.kind(),
        }));
        self.failures.push(Failure::new(source, destination, error));
    }
}
