//! The whole sync job as one sans-IO state machine.
//!
//! ```text
//! let mut m = SyncMachine::new(job, options, now, wall);
//! loop {
//!     while let Some(action) = m.poll_action() { /* start it */ }
//!     while let Some(event) = m.poll_event() { /* show it */ }
//!     if m.is_finished() { break }
//!     // wait for the first finished action or m.poll_timeout(), then feed it back:
//!     m.handle_response(id, response, now)?;  // or handle_transfer / handle_failure / handle_timeout
//! }
//! ```
//!
//! Drain, then wait: after every `handle_*` call, drain `poll_action` and `poll_event`
//! before waiting again. The machine plans first (catalogs, tag lists), then copies at
//! most `proc` images at once. Each image: one HEAD on each side and a skip when the
//! digests agree; otherwise the source manifest (and an index's children), every blob
//! HEAD -> mount -> transfer, the children, and the manifest last. A blob that several
//! images need moves once; the others wait for it and then mount it.

mod blobs;
mod image;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::api::Endpoint;
use crate::auth::{AuthError, Credential, CredentialStore};
use crate::config::{JobConfig, Rule};
use crate::digest::Digest;
use crate::driver::{Machine, Misuse};
use crate::manifest::PlatformFilter;
use crate::plan::{CopyTask, Endpoints, Planner};
use crate::progress::{Event, Failure, ImageOutcome, ImageReport, Report, Summary};
use crate::reference::normalize_registry;
use crate::retry::RetryPolicy;
use crate::session::{Call, Outcome, Session};
use crate::time::{Instant, UnixTime, WallClock};
use crate::transport::{Action, ActionId, TransferReport, TransportError};

use blobs::{BlobKey, BlobTable};
use image::{ImageTask, Step};

/// Where each registry lives. By default `https://<registry>` (Docker Hub's API host for
/// `docker.io`), plain HTTP for registries marked insecure and for loopback ones; an
/// explicit base URL wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointMap {
    pub insecure: BTreeSet<String>,
    pub bases: BTreeMap<String, String>,
}

impl Endpoints for EndpointMap {
    fn endpoint(&self, registry: &str) -> Endpoint {
        match self.bases.get(registry) {
            Some(base) => Endpoint::from_base(base),
            None => Endpoint::new(registry, self.insecure.contains(registry)),
        }
    }
}

/// What to copy and with which credentials.
#[derive(Debug, Clone)]
pub struct Job {
    pub rules: Vec<Rule>,
    pub credentials: CredentialStore,
    pub endpoints: EndpointMap,
}

impl Job {
    /// A job from a parsed configuration: its rules, its credentials and its insecure
    /// registries.
    pub fn from_config(config: &JobConfig) -> Result<Job, AuthError> {
        let mut endpoints = EndpointMap::default();
        let mut pairs = Vec::new();
        for (key, entry) in &config.auth.entries {
            let registry = normalize_registry(key.split('/').next().unwrap_or(key));
            if entry.insecure {
                endpoints.insecure.insert(registry);
            }
            if let (Some(user), Some(password)) = (&entry.username, &entry.password) {
                pairs.push((key.clone(), Credential::new(user, password)));
            }
        }
        Ok(Job { rules: config.rules.clone(), credentials: CredentialStore::new(pairs)?, endpoints })
    }
}

/// How the job runs.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Images in flight at once (image-syncer's `--proc`).
    pub proc: usize,
    /// Blob transfers in flight at once, across all images.
    pub max_transfers: usize,
    pub retry: RetryPolicy,
    /// Re-push manifests even when the destination already has the same digest.
    pub force: bool,
    /// Look at both sides and report what would move, without writing anything.
    pub dry_run: bool,
    /// Seeds the retry jitter.
    pub seed: u64,
    /// Applies to rules without their own platform list (`--os`, `--arch`).
    pub platforms: PlatformFilter,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            proc: 5,
            max_transfers: 8,
            retry: RetryPolicy::default(),
            force: false,
            dry_run: false,
            seed: 0,
            platforms: PlatformFilter::default(),
        }
    }
}

/// What a session call was for.
#[derive(Debug, Clone)]
pub(crate) enum Tag {
    Plan(u64),
    Image(usize, Step),
    Blob(BlobKey),
}

/// The sync job. See the module docs for the run loop.
pub struct SyncMachine {
    options: SyncOptions,
    endpoints: EndpointMap,
    session: Session<Tag>,
    planner: Planner,
    planning: bool,
    images: Vec<ImageTask>,
    /// Rules that failed before they became images (a listing that failed).
    plan_failures: Vec<Failure>,
    queue: VecDeque<usize>,
    active: usize,
    blobs: BlobTable,
    events: VecDeque<Event>,
    summary: Summary,
    started: Instant,
    finished: bool,
}

impl SyncMachine {
    pub fn new(job: Job, options: SyncOptions, now: Instant, wall: UnixTime) -> Self {
        let session = Session::new(job.credentials, options.retry, options.seed, WallClock::new(now, wall));
        let planner = Planner::new(job.rules, options.platforms.clone());
        let max_transfers = options.max_transfers.max(1);
        let mut machine = SyncMachine {
            summary: Summary { dry_run: options.dry_run, ..Summary::default() },
            options,
            endpoints: job.endpoints,
            session,
            planner,
            planning: true,
            images: Vec::new(),
            plan_failures: Vec::new(),
            queue: VecDeque::new(),
            active: 0,
            blobs: BlobTable::new(max_transfers),
            events: VecDeque::new(),
            started: now,
            finished: false,
        };
        let calls = machine.planner.start(&machine.endpoints);
        machine.submit_plan_calls(calls, now);
        machine.advance_planning(now);
        machine
    }

    /// A machine for tasks already planned (`ferry copy`).
    pub fn with_tasks(
        tasks: Vec<CopyTask>,
        job: Job,
        options: SyncOptions,
        now: Instant,
        wall: UnixTime,
    ) -> Self {
        let mut machine = SyncMachine::new(Job { rules: Vec::new(), ..job }, options, now, wall);
        // An empty plan finishes at once; start over with the given tasks.
        machine.events.clear();
        machine.finished = false;
        machine.start_copying(tasks, now);
        machine
    }

    /// The report so far; complete once the job finished.
    pub fn report(&self) -> Report {
        let planning = self.plan_failures.iter().map(|f| ImageReport {
            source: f.source.clone(),
            destination: f.destination.clone(),
            outcome: ImageOutcome::Failed,
            digest: None,
            rewritten_from: None,
            bytes: 0,
            reason: Some(f.reason.clone()),
        });
        let images = planning.chain(self.images.iter().map(|i| i.report())).collect();
        let mut summary = self.summary.clone();
        summary.requests = self.session.stats.requests;
        summary.transfers = self.session.stats.transfers;
        summary.retries = self.session.stats.retries;
        Report { status: summary.status(), summary, images }
    }

    fn submit_plan_calls(&mut self, calls: Vec<(u64, Call)>, now: Instant) {
        for (id, call) in calls {
            self.session.submit(Tag::Plan(id), call, now);
        }
    }

    fn advance_planning(&mut self, now: Instant) {
        if !self.planning || !self.planner.is_done() {
            return;
        }
        let tasks = self.planner.take_tasks();
        self.start_copying(tasks, now);
    }

    fn start_copying(&mut self, tasks: Vec<CopyTask>, now: Instant) {
        self.planning = false;
        self.plan_failures = std::mem::take(&mut self.planner.failures);
        for task in tasks {
            let id = self.images.len();
            self.images.push(ImageTask::new(id, task));
            self.queue.push_back(id);
        }
        self.summary.images = self.images.len() + self.plan_failures.len();
        self.summary.failed = self.plan_failures.len();
        self.summary.failures = self.plan_failures.clone();
        self.events.push_back(Event::PlanReady {
            images: self.images.len(),
            repositories: self.planner.repositories(),
        });
        for failure in &self.plan_failures {
            self.events.push_back(Event::PlanFailed {
                source: failure.source.clone(),
                destination: failure.destination.clone(),
                reason: failure.reason.clone(),
                retryable: failure.retryable,
            });
        }
        self.fill(now);
    }

    /// Starts queued images while fewer than `proc` are active.
    fn fill(&mut self, now: Instant) {
        while self.active < self.options.proc.max(1) {
            let Some(id) = self.queue.pop_front() else { break };
            self.active += 1;
            self.start_image(id, now);
        }
        self.check_finished(now);
    }

    fn check_finished(&mut self, now: Instant) {
        if self.finished
            || self.planning
            || self.active > 0
            || !self.queue.is_empty()
            || !self.session.is_idle()
        {
            return;
        }
        self.finished = true;
        self.summary.elapsed_ms = now.saturating_since(self.started).as_millis() as u64;
        let report = self.report();
        self.events.push_back(Event::JobFinished { status: report.status, summary: report.summary });
    }

    fn route(&mut self, tag: Tag, outcome: Outcome, now: Instant) {
        match tag {
            Tag::Plan(id) => {
                let calls = self.planner.on_outcome(id, outcome, &self.endpoints);
                self.submit_plan_calls(calls, now);
                self.advance_planning(now);
            }
            Tag::Image(id, step) => self.image_outcome(id, step, outcome, now),
            Tag::Blob(key) => self.blob_outcome(key, outcome, now),
        }
    }

    fn pump(&mut self, now: Instant) {
        while let Some((tag, outcome)) = self.session.poll_done() {
            self.route(tag, outcome, now);
        }
        while let Some(event) = self.session.poll_event() {
            self.events.push_back(event);
        }
        self.check_finished(now);
    }
}

impl Machine for SyncMachine {
    fn poll_action(&mut self) -> Option<Action> {
        self.session.poll_action()
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.session.poll_timeout()
    }

    fn handle_response(
        &mut self,
        id: ActionId,
        response: http::Response<Vec<u8>>,
        now: Instant,
    ) -> Result<(), Misuse> {
        self.session.expect(id)?;
        self.session.handle_response(id, response, now);
        self.pump(now);
        Ok(())
    }

    fn handle_failure(&mut self, id: ActionId, error: TransportError, now: Instant) -> Result<(), Misuse> {
        self.session.expect(id)?;
        self.session.handle_failure(id, error, now);
        self.pump(now);
        Ok(())
    }

    fn handle_transfer(
        &mut self,
        id: ActionId,
        result: Result<TransferReport, TransportError>,
        now: Instant,
    ) -> Result<(), Misuse> {
        self.session.expect(id)?;
        match result {
            Ok(_) => self.session.handle_transfer(id),
            Err(error) => self.session.handle_failure(id, error, now),
        }
        self.pump(now);
        Ok(())
    }

    fn handle_progress(&mut self, id: ActionId, bytes: u64) {
        if let Some(Tag::Blob(key)) = self.session.tag_of(id) {
            let key = key.clone();
            self.blob_progress(&key, bytes);
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.session.handle_timeout(now);
        self.pump(now);
    }

    fn is_finished(&self) -> bool {
        self.finished
    }
}

/// A digest from a `Docker-Content-Digest` header, if present and well-formed.
pub(crate) fn content_digest(response: &http::Response<Vec<u8>>) -> Option<Digest> {
    response.headers().get("docker-content-digest")?.to_str().ok()?.trim().parse().ok()
}

/// The registry's own words from an error body (`{"errors":[{"code","message"}]}`), if any.
pub(crate) fn registry_error(response: &http::Response<Vec<u8>>) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorItem {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let status = response.status();
    match serde_json::from_slice::<Errors>(response.body()) {
        Ok(e) if !e.errors.is_empty() => {
            let items: Vec<String> =
                e.errors.iter().map(|i| format!("{} {}", i.code, i.message).trim().to_owned()).collect();
            format!("HTTP {status} ({})", items.join("; "))
        }
        _ => format!("HTTP {status}"),
    }
}
