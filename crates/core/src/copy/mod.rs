//! The whole sync job as one sans-IO state machine.
//!
//! ```text
//! let mut m = SyncMachine::new(job, options, now, wall);
//! loop {
//!     while let Some(action) = m.poll_action() { /* start it */ }
//!     while let Some(event) = m.poll_event() { /* show it */ }
//!     if m.is_finished() { break }
//!     // wait for the first finished action or m.poll_timeout(), then feed it back:
//!     m.handle(id, completion, now)?;  // or m.handle_timeout(now)
//! }
//! ```
//!
//! Drain, then wait, as [`Machine`](crate::machine::Machine) documents. The machine plans first (catalogs, tag lists), then copies at
//! most `proc` images at once. Each image: one HEAD on each side and a skip when the
//! digests agree; otherwise the source manifest (and an index's children), every blob
//! HEAD -> mount -> transfer, the children, and the manifest last. A blob that several
//! images need moves once; the others wait for it and then mount it.

mod blobs;
mod image;

use std::collections::VecDeque;

use crate::api::EndpointMap;
use crate::auth::{AuthError, CredentialStore};
use crate::config::{JobConfig, Rule};
use crate::digest::Digest;
use crate::error::{Error, ErrorKind};
use crate::error_body::ErrorBody;
use crate::machine::SessionMachine;
use crate::manifest::PlatformFilter;
use crate::plan::{CopyTask, Planner};
use crate::progress::{BlobOutcome, Event, Failure, ImageOutcome, ImageReport, Report, Summary};
use crate::reference::normalize_registry;
use crate::retry::RetryPolicy;
use crate::session::{Call, Outcome, Session};
use crate::time::{Instant, UnixTime, WallClock};

use blobs::{BlobEffect, BlobKey, BlobTable, BlobWant};
use image::{ImageEffect, ImageId, ImageTask, Step};

/// What a job starts from.
#[derive(Debug, Clone)]
pub enum Plan {
    /// Rules to expand by listing catalogs and tags first (`ferry sync`).
    Rules(Vec<Rule>),
    /// Images already named, copied as they are (`ferry copy`).
    Tasks(Vec<CopyTask>),
}

/// What to copy and with which credentials.
#[derive(Debug, Clone)]
pub struct Job {
    /// The rules to expand, or the images to copy.
    pub plan: Plan,
    /// Credentials for both sides, looked up by registry and repository.
    pub credentials: CredentialStore,
    /// How to reach each registry (plain HTTP, explicit base URLs).
    pub endpoints: EndpointMap,
}

impl Job {
    /// A job from a parsed configuration: its rules, its credentials and its insecure
    /// registries.
    pub fn from_config(config: &JobConfig) -> Result<Job, AuthError> {
        let mut endpoints = EndpointMap::default();
        for (key, entry) in &config.auth.entries {
            if entry.insecure {
                endpoints.insecure.insert(normalize_registry(key.split('/').next().unwrap_or(key)));
            }
        }
        Ok(Job {
            plan: Plan::Rules(config.rules.clone()),
            credentials: config.auth.credentials()?,
            endpoints,
        })
    }
}

/// How the job runs.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Images in flight at once (image-syncer's `--proc`).
    pub proc: usize,
    /// Blob transfers in flight at once, across all images.
    pub max_transfers: usize,
    /// How often and how long transient failures are retried.
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

/// What the images and the blob table read of the job.
pub(crate) struct Context {
    pub endpoints: EndpointMap,
    pub options: SyncOptions,
}

/// What a session call was for.
#[derive(Debug, Clone)]
pub(crate) enum Purpose {
    Plan(u64),
    Image(ImageId, Step),
    Blob(BlobKey),
}

/// The sync job. See the module docs for the run loop.
pub struct SyncMachine {
    ctx: Context,
    session: Session<Purpose>,
    /// Present while the rules are being expanded.
    planner: Option<Planner>,
    images: Vec<ImageTask>,
    /// Rules that failed before they became images (a listing that failed).
    plan_failures: Vec<Failure>,
    queue: VecDeque<ImageId>,
    active: usize,
    blobs: BlobTable,
    summary: Summary,
    started: Instant,
    finished: bool,
}

impl SyncMachine {
    /// A job on the injected clock: `now` is the driver's monotonic time, `wall` the Unix
    /// time at that moment (for `Retry-After` dates).
    pub fn new(job: Job, options: SyncOptions, now: Instant, wall: UnixTime) -> Self {
        let session = Session::new(job.credentials, options.retry, options.seed, WallClock::new(now, wall));
        let max_transfers = options.max_transfers.max(1);
        let mut machine = SyncMachine {
            summary: Summary { dry_run: options.dry_run, ..Summary::default() },
            session,
            planner: None,
            images: Vec::new(),
            plan_failures: Vec::new(),
            queue: VecDeque::new(),
            active: 0,
            blobs: BlobTable::new(max_transfers),
            started: now,
            finished: false,
            ctx: Context { endpoints: job.endpoints, options },
        };
        match job.plan {
            Plan::Rules(rules) => {
                let mut planner = Planner::new(rules, machine.ctx.options.platforms.clone());
                let calls = planner.start(&machine.ctx.endpoints);
                machine.planner = Some(planner);
                machine.submit_plan_calls(calls, now);
                machine.advance_planning(now);
            }
            Plan::Tasks(tasks) => machine.start_copying(tasks, Vec::new(), 0, now),
        }
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
            kind: Some(f.kind),
        });
        let images = planning.chain(self.images.iter().map(ImageTask::report)).collect();
        let mut summary = self.summary.clone();
        summary.requests = self.session.stats.requests;
        summary.transfers = self.session.stats.transfers;
        summary.retries = self.session.stats.retries;
        Report { status: summary.status(), summary, images }
    }

    fn submit_plan_calls(&mut self, calls: Vec<(u64, Call)>, now: Instant) {
        for (id, call) in calls {
            self.session.submit(Purpose::Plan(id), call, now);
        }
    }

    fn advance_planning(&mut self, now: Instant) {
        let Some(planner) = self.planner.take_if(|p| p.is_done()) else { return };
        let repositories = planner.repositories();
        let (tasks, failures) = planner.finish();
        self.start_copying(tasks, failures, repositories, now);
    }

    fn start_copying(
        &mut self,
        tasks: Vec<CopyTask>,
        failures: Vec<Failure>,
        repositories: usize,
        now: Instant,
    ) {
        for task in tasks {
            let id = ImageId(self.images.len());
            self.images.push(ImageTask::new(id, task));
            self.queue.push_back(id);
        }
        self.summary.images = self.images.len() + failures.len();
        self.summary.failed = failures.len();
        self.summary.failures = failures.clone();
        self.session.emit(Event::PlanReady { images: self.images.len(), repositories });
        for failure in &failures {
            self.session.emit(Event::PlanFailed {
                source: failure.source.clone(),
                destination: failure.destination.clone(),
                reason: failure.reason.clone(),
                kind: failure.kind,
                retryable: failure.retryable,
            });
        }
        self.plan_failures = failures;
        self.fill(now);
    }

    /// Starts queued images while fewer than `proc` are active.
    fn fill(&mut self, now: Instant) {
        while self.active < self.ctx.options.proc.max(1) {
            let Some(id) = self.queue.pop_front() else { break };
            self.active += 1;
            let mut effects = Vec::new();
            self.images[id.0].start(&self.ctx, &mut effects);
            self.apply_image(id, effects, now);
        }
        self.check_finished(now);
    }

    fn check_finished(&mut self, now: Instant) {
        if self.finished
            || self.planner.is_some()
            || self.active > 0
            || !self.queue.is_empty()
            || !self.session.is_idle()
        {
            return;
        }
        self.finished = true;
        self.summary.elapsed_ms = now.saturating_since(self.started).as_millis() as u64;
        let report = self.report();
        self.session.emit(Event::JobFinished { status: report.status, summary: report.summary });
    }

    /// Carries out what an image asked for, in order.
    fn apply_image(&mut self, id: ImageId, effects: Vec<ImageEffect>, now: Instant) {
        for effect in effects {
            match effect {
                ImageEffect::Send(step, call) => self.session.submit(Purpose::Image(id, step), call, now),
                ImageEffect::NeedBlobs => {
                    let image = &self.images[id.0];
                    let task = image.task();
                    let wants: Vec<BlobWant> = image
                        .missing_blobs()
                        .into_iter()
                        .map(|(digest, size)| BlobWant {
                            image: id,
                            source: task.source.clone(),
                            destination: task.destination.clone(),
                            digest,
                            size,
                        })
                        .collect();
                    for want in wants {
                        let mut effects = Vec::new();
                        self.blobs.request(want, &self.ctx, &mut effects);
                        self.apply_blobs(effects, now);
                    }
                    let mut effects = Vec::new();
                    self.images[id.0].advance(&self.ctx, &mut effects);
                    self.apply_image(id, effects, now);
                }
                ImageEffect::BlobDone { digest, size, outcome } => {
                    match outcome {
                        BlobOutcome::Present => self.summary.blobs_present += 1,
                        BlobOutcome::Mounted => self.summary.blobs_mounted += 1,
                        BlobOutcome::Transferred if self.ctx.options.dry_run => {
                            self.summary.blobs_transferred += 1;
                            self.summary.bytes_to_copy += size;
                        }
                        BlobOutcome::Transferred => {
                            self.summary.blobs_transferred += 1;
                            self.summary.bytes_transferred += size;
                        }
                    }
                    self.session.emit(Event::BlobDone { image: id.0, digest, size, outcome });
                }
                ImageEffect::Emit(event) => self.session.emit(event),
                ImageEffect::Ended => {
                    let image = &self.images[id.0];
                    match image.outcome() {
                        ImageOutcome::Skipped => self.summary.skipped += 1,
                        ImageOutcome::Copied => self.summary.copied += 1,
                        ImageOutcome::Failed => {
                            self.summary.failed += 1;
                            self.summary.failures.extend(image.failure());
                        }
                        ImageOutcome::WouldCopy | ImageOutcome::Pending => {}
                    }
                    self.active -= 1;
                    self.fill(now);
                }
            }
        }
    }

    /// Carries out what the blob table asked for, in order.
    fn apply_blobs(&mut self, effects: Vec<BlobEffect>, now: Instant) {
        for effect in effects {
            let (id, image_effects) = match effect {
                BlobEffect::Send(key, call) => {
                    self.session.submit(Purpose::Blob(key), *call, now);
                    continue;
                }
                BlobEffect::Ready { image, digest, outcome } => {
                    let mut effects = Vec::new();
                    self.images[image.0].blob_ready(&digest, outcome, &self.ctx, &mut effects);
                    (image, effects)
                }
                BlobEffect::Failed { image, error } => {
                    let mut effects = Vec::new();
                    self.images[image.0].fail(error, &mut effects);
                    (image, effects)
                }
                BlobEffect::Wake { image, digest } => {
                    let task = &self.images[image.0];
                    if !task.is_live() {
                        continue;
                    }
                    let Some(size) = task.blob_size(&digest) else { continue };
                    let want = BlobWant {
                        image,
                        source: task.task().source.clone(),
                        destination: task.task().destination.clone(),
                        digest,
                        size,
                    };
                    let mut effects = Vec::new();
                    self.blobs.request(want, &self.ctx, &mut effects);
                    self.apply_blobs(effects, now);
                    continue;
                }
            };
            self.apply_image(id, image_effects, now);
        }
    }
}

impl SessionMachine for SyncMachine {
    type Purpose = Purpose;

    fn session(&self) -> &Session<Purpose> {
        &self.session
    }

    fn session_mut(&mut self) -> &mut Session<Purpose> {
        &mut self.session
    }

    fn on_outcome(&mut self, purpose: Purpose, outcome: Outcome, now: Instant) {
        match purpose {
            Purpose::Plan(id) => {
                let Some(planner) = self.planner.as_mut() else { return };
                let calls = planner.on_outcome(id, outcome, &self.ctx.endpoints);
                self.submit_plan_calls(calls, now);
                self.advance_planning(now);
            }
            Purpose::Image(id, step) => {
                let mut effects = Vec::new();
                self.images[id.0].on_outcome(step, outcome, &self.ctx, &mut effects);
                self.apply_image(id, effects, now);
            }
            Purpose::Blob(key) => {
                let mut effects = Vec::new();
                self.blobs.on_outcome(key, outcome, &self.ctx, &mut effects);
                self.apply_blobs(effects, now);
            }
        }
    }

    fn on_progress(&mut self, purpose: Purpose, bytes: u64) {
        let Purpose::Blob(key) = purpose else { return };
        let Some((image, total)) = self.blobs.progress_of(&key) else { return };
        self.session.emit(Event::BlobProgress { image: image.0, digest: key.digest, bytes, total });
    }

    fn settle(&mut self, now: Instant) {
        self.check_finished(now);
    }

    fn finished(&self) -> bool {
        self.finished
    }
}

/// A digest from a `Docker-Content-Digest` header, if present and well-formed.
pub(crate) fn content_digest(response: &http::Response<Vec<u8>>) -> Option<Digest> {
    response.headers().get("docker-content-digest")?.to_str().ok()?.trim().parse().ok()
}

/// A refusal by a registry: its kind from the status, its words from the body.
pub(crate) fn refused(response: &http::Response<Vec<u8>>, what: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::of_status(response.status().as_u16()),
        format!("{what}: {}", registry_error(response)),
    )
}

/// The registry's own words from an error body (`{"errors":[{"code","message"}]}`), if any.
fn registry_error(response: &http::Response<Vec<u8>>) -> String {
    let status = response.status();
    match ErrorBody::parse(response.body()) {
        Some(body) => {
            let items: Vec<String> =
                body.errors.iter().map(|i| format!("{} {}", i.code, i.message).trim().to_owned()).collect();
            format!("HTTP {status} ({})", items.join("; "))
        }
        None => format!("HTTP {status}"),
    }
}
