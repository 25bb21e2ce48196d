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
//! digests agree (none when the destination's tag list lacks the tag, see
//! [`crate::plan`]); otherwise the source manifest (and an index's children), every blob
//! HEAD -> mount -> transfer, the children, and the manifest last. A blob that several
//! images need moves once; the others wait for it and then mount it.
//!
//! One read, many writes: the destinations of one source image (a rule with a list of
//! destinations) start together, and a blob that several of them lack is read from the
//! source once and streamed to all of them (see `blobs`).
//!
//! Rounds, after image-syncer: when the pass over the queue ends with images or listings
//! that failed transiently (rate limited, unavailable, once their requests' own retries
//! ran out), they run again as fresh attempts, up to [`SyncOptions::rounds`] more times,
//! each announced by [`Event::RoundStarted`]. The blob table keeps what it learned, so a
//! blob moved in an earlier round is not asked for again. Permanent failures stay.

mod blobs;
mod forecast;
mod image;
mod referrers;

pub(crate) use referrers::no_api;

use std::collections::{BTreeSet, VecDeque};

use crate::api::EndpointMap;
use crate::auth::{AuthError, CredentialStore};
use crate::config::{JobConfig, Rule};
use crate::digest::Digest;
use crate::error::{Error, ErrorKind};
use crate::error_body::ErrorBody;
use crate::machine::SessionMachine;
use crate::manifest::PlatformFilter;
use crate::plan::{CopyTask, DestinationTag, Planned, Planner};
use crate::progress::{BlobOutcome, Event, Failure, ImageOutcome, ImageReport, Report, Summary};
use crate::reference::normalize_registry;
use crate::referrers::ReferrerFilter;
use crate::resume::ResumeState;
use crate::retry::RetryPolicy;
use crate::session::{Call, Outcome, Session};
use crate::shard::Shard;
use crate::time::{Instant, UnixTime, WallClock};

use blobs::{BlobEffect, BlobKey, BlobTable, BlobWant};
use forecast::Forecast;
pub use forecast::RegistryRequests;
use image::{ImageEffect, ImageId, ImageTask, Step};
use referrers::{RefStep, ReferrerEffect, ReferrerTable};

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
    /// Extra passes over what failed transiently (image-syncer's retry rounds). When a
    /// pass ends with images or listings that failed rate limited or unavailable (after
    /// their requests' own `retry`), they run again as fresh attempts, up to `rounds`
    /// more times; a permanent failure (404, a digest mismatch, rejected credentials) is
    /// never run again. The CLI gives it the same number as `retry.retries`, as
    /// image-syncer's one `--retries` does.
    pub rounds: u32,
    /// Adapt concurrency to pushback: an AIMD window per registry and action class
    /// (see [`crate::window`]), between 1 and the larger of `proc` and `max_transfers`.
    /// When false, `429`s are only retried and counted.
    pub adaptive: bool,
    /// Plan only this shard's source repositories (see [`crate::shard`]); every
    /// repository when `None`.
    pub shard: Option<Shard>,
    /// What past runs left (`--state`, see [`crate::resume`]): upload sessions to go on
    /// with, and repositories to mount blobs from. Empty by default.
    pub resume: ResumeState,
    /// Which referrers travel with the images of rules without their own `referrers`
    /// (see [`crate::referrers`]). All of them by default, as a mirror wants: each
    /// manifest copied or in sync costs one more request at the source (the referrers API,
    /// or the tag-schema index after one 404 per registry), each referrer one HEAD at the
    /// destination, and each source repository whose tags the plan did not list one
    /// `tags/list` for cosign's tags.
    pub referrers: ReferrerFilter,
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
            rounds: 2,
            shard: None,
            adaptive: true,
            resume: ResumeState::default(),
            referrers: ReferrerFilter::All,
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
    Referrers(RefStep),
}

/// The sync job. See the module docs for the run loop.
pub struct SyncMachine {
    ctx: Context,
    session: Session<Purpose>,
    /// Expands the rules; keeps the listings that failed, to run them again.
    planner: Planner,
    /// Whether the planner has listings in flight whose tasks the job waits for.
    planning: bool,
    /// The planner's failures told in `plan_failed` events so far.
    plan_failures_told: usize,
    images: Vec<ImageTask>,
    /// Images that failed, in the order they failed.
    failed: Vec<ImageId>,
    queue: VecDeque<ImageId>,
    active: usize,
    /// Started images that have not yet asked the blob table for their blobs.
    gathering: BTreeSet<ImageId>,
    blobs: BlobTable,
    referrers: ReferrerTable,
    /// In a dry run, the real run's requests per registry.
    forecast: Forecast,
    summary: Summary,
    /// The pass over the queue under way, from 1.
    round: u32,
    started: Instant,
    /// Set by [`Machine::stop`](crate::machine::Machine::stop): no image or round starts.
    stopping: bool,
    finished: bool,
}

impl SyncMachine {
    /// A job on the injected clock: `now` is the driver's monotonic time, `wall` the Unix
    /// time at that moment (for `Retry-After` dates).
    pub fn new(job: Job, options: SyncOptions, now: Instant, wall: UnixTime) -> Self {
        let mut session =
            Session::new(job.credentials, options.retry, options.seed, WallClock::new(now, wall));
        session.set_windows(options.adaptive, options.proc.max(options.max_transfers));
        let max_transfers = options.max_transfers.max(1);
        let (rules, tasks) = match job.plan {
            Plan::Rules(rules) => (rules, Vec::new()),
            Plan::Tasks(tasks) => (Vec::new(), tasks),
        };
        let mut machine = SyncMachine {
            summary: Summary { dry_run: options.dry_run, shard: options.shard, ..Summary::default() },
            session,
            planner: Planner::new(rules, options.platforms.clone(), options.referrers.clone(), options.shard)
                .dry_run(options.dry_run),
            planning: true,
            plan_failures_told: 0,
            images: Vec::new(),
            failed: Vec::new(),
            queue: VecDeque::new(),
            active: 0,
            gathering: BTreeSet::new(),
            blobs: BlobTable::new(max_transfers),
            referrers: ReferrerTable::default(),
            forecast: Forecast::default(),
            round: 1,
            started: now,
            stopping: false,
            finished: false,
            ctx: Context { endpoints: job.endpoints, options },
        };
        let calls = machine.planner.start(&machine.ctx.endpoints);
        machine.submit_plan_calls(calls, now);
        let tasks =
            tasks.into_iter().map(|task| Planned { task, held: false, listed: DestinationTag::Check });
        machine.queue_images(tasks.collect());
        machine.advance_planning(now);
        machine
    }

    /// The report so far; complete once the job finished.
    pub fn report(&self) -> Report {
        let planning = self.planner.failures_by_round().map(|(f, round)| ImageReport {
            source: f.source.clone(),
            destination: f.destination.clone(),
            outcome: ImageOutcome::Failed,
            round,
            immutable: false,
            digest: None,
            rewritten_from: None,
            subject_digest: None,
            referrers_dropped: 0,
            bytes: 0,
            reason: Some(f.reason.clone()),
            kind: Some(f.kind),
        });
        let images = planning.chain(self.images.iter().map(|image| self.image_report(image))).collect();
        let mut summary = self.summary.clone();
        let referrers = self.images.iter().filter(|i| self.referrers.role(i.id()).is_some()).count();
        summary.images = self.images.len() - referrers + self.planner.failures().count();
        summary.failures = self.planner.failures().cloned().collect();
        summary.failures.extend(self.failed.iter().filter_map(|id| self.images[id.0].failure()));
        summary.failures.extend(self.referrers.failures().iter().cloned());
        summary.referrers.dropped = self.referrers.counts.dropped;
        summary.referrers.indexed = self.referrers.counts.indexed;
        summary.referrers.failed += self.referrers.failures().len();
        summary.failed = summary.failures.len();
        summary.rounds = self.round;
        summary.requests = self.session.stats.requests;
        summary.transfers = self.session.stats.transfers;
        summary.retries = self.session.stats.retries;
        summary.rate_limits = self.session.window_report();
        summary.requests_by = self.session.stats.request_counts();
        if self.stopping {
            summary.stopped = self.images.iter().filter(|i| i.outcome() == ImageOutcome::Pending).count();
        }
        summary.budgets = self.session.budget_report();
        if self.ctx.options.dry_run {
            summary.forecast = self.forecast.report();
        }
        Report { status: summary.status(), summary, images }
    }

    /// An image's report, with its place among the referrers.
    fn image_report(&self, image: &ImageTask) -> ImageReport {
        let mut report = image.report();
        report.subject_digest = self.referrers.role(image.id()).map(|r| r.subject_digest.clone());
        report.referrers_dropped = self.referrers.dropped(image.id());
        report
    }

    fn submit_plan_calls(&mut self, calls: Vec<(u64, Call)>, now: Instant) {
        for (id, call) in calls {
            self.submit(Purpose::Plan(id), call, now);
        }
    }

    /// Hands a call to the session; a dry run counts it for the forecast.
    fn submit(&mut self, purpose: Purpose, call: Call, now: Instant) {
        if self.ctx.options.dry_run {
            self.forecast.call(&call);
        }
        self.session.submit(purpose, call, now);
    }

    /// Queues the tasks; a held one (an immutable tag the destination lists) ends
    /// skipped at once, without a request. Returns how many were held.
    fn queue_images(&mut self, tasks: Vec<Planned>) -> usize {
        let mut held = 0;
        for Planned { task, held: immutable, listed } in tasks {
            let id = ImageId(self.images.len());
            if immutable {
                self.images.push(ImageTask::held(id, task, self.round));
                self.summary.skipped += 1;
                self.summary.immutable += 1;
                held += 1;
            } else {
                self.images.push(ImageTask::new(id, task, self.round).listed(listed));
                self.queue.push_back(id);
            }
        }
        held
    }

    /// Once the planner's listings are in, queues the images they yielded, tells what
    /// failed, and starts copying.
    fn advance_planning(&mut self, now: Instant) {
        if !self.planning || !self.planner.is_done() {
            return;
        }
        self.planning = false;
        for ((registry, repository), tags) in self.planner.listed() {
            self.referrers.know_tags(registry, repository, tags.clone());
        }
        let tasks = self.planner.take_tasks();
        self.queue_images(tasks);
        let repositories = self.planner.repositories();
        self.summary.repositories = repositories;
        let immutable = self.summary.immutable;
        let images = self.images.len() - immutable;
        let shard = self.ctx.options.shard;
        self.session.emit(Event::PlanReady { images, repositories, immutable, shard });
        let failures: Vec<Failure> = self.planner.failures().skip(self.plan_failures_told).cloned().collect();
        self.plan_failures_told += failures.len();
        for failure in failures {
            self.session.emit(Event::PlanFailed {
                source: failure.source,
                destination: failure.destination,
                reason: failure.reason,
                kind: failure.kind,
                retryable: failure.retryable,
            });
        }
        self.fill(now);
    }

    /// Starts queued images while fewer than `proc` are active. The destinations of one
    /// source image (queued next to each other) start together, so that their blobs are
    /// read once: `proc` may be passed by the siblings of the last image started.
    fn fill(&mut self, now: Instant) {
        while !self.stopping && self.active < self.ctx.options.proc.max(1) {
            let Some(first) = self.queue.pop_front() else { break };
            let source = self.images[first.0].task().source.clone();
            let mut started = vec![first];
            while let Some(&next) = self.queue.front() {
                if self.images[next.0].task().source != source {
                    break;
                }
                started.extend(self.queue.pop_front());
            }
            // All of them gather before any starts, so that none transfers alone.
            for &id in &started {
                self.active += 1;
                self.gathering.insert(id);
                self.blobs.gathering(&source);
            }
            for id in started {
                let mut effects = Vec::new();
                self.images[id.0].start(&self.ctx, &mut effects);
                self.apply_image(id, effects, now);
            }
        }
        self.check_finished(now);
    }

    /// The image has asked for its blobs or ended: transfers from its source no longer
    /// wait for it.
    fn gathered(&mut self, id: ImageId, now: Instant) {
        if !self.gathering.remove(&id) {
            return;
        }
        let source = self.images[id.0].task().source.clone();
        let mut effects = Vec::new();
        self.blobs.gathered(&source, &self.ctx, &mut effects);
        self.apply_blobs(effects, now);
    }

    /// At the end of a pass: another round when some failures may mend and rounds
    /// remain, else the end of the job.
    fn check_finished(&mut self, now: Instant) {
        if self.finished
            || self.planning
            || self.active > 0
            || !self.queue.is_empty()
            || !self.session.is_idle()
        {
            return;
        }
        if !self.stopping && self.round <= self.ctx.options.rounds && self.start_round(now) {
            return;
        }
        self.finished = true;
        self.summary.elapsed_ms = now.saturating_since(self.started).as_millis() as u64;
        let report = self.report();
        self.session.emit(Event::JobFinished { status: report.status, summary: report.summary });
    }

    /// Queues again, as fresh attempts, the images and listings that failed transiently in
    /// the pass that just ended; the blob table keeps what it learned is present. Returns
    /// whether there was any.
    fn start_round(&mut self, now: Instant) -> bool {
        let again: Vec<ImageId> =
            self.failed.iter().copied().filter(|id| self.images[id.0].failed_transiently()).collect();
        let listings = self.planner.retryable();
        if again.is_empty() && listings == 0 {
            return false;
        }
        self.round += 1;
        self.failed.retain(|id| !again.contains(id));
        self.session.emit(Event::RoundStarted { round: self.round, images: again.len(), listings });
        let mut queued: Vec<ImageId> = again;
        queued.sort();
        for id in queued {
            let (task, listed) = (self.images[id.0].task().clone(), self.images[id.0].listing());
            self.images[id.0] = ImageTask::new(id, task, self.round).listed(listed);
            self.queue.push_back(id);
        }
        if listings > 0 {
            let calls = self.planner.retry(self.round);
            self.plan_failures_told = self.planner.failures().count();
            self.planning = true;
            self.submit_plan_calls(calls, now);
        }
        self.fill(now);
        true
    }

    /// Carries out what an image asked for, in order.
    fn apply_image(&mut self, id: ImageId, effects: Vec<ImageEffect>, now: Instant) {
        for effect in effects {
            match effect {
                ImageEffect::Send(step, call) => self.submit(Purpose::Image(id, step), call, now),
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
                            empty_repository: image.empty_repository(),
                        })
                        .collect();
                    for want in wants {
                        let mut effects = Vec::new();
                        self.blobs.request(want, &self.ctx, &mut effects);
                        self.apply_blobs(effects, now);
                    }
                    // Only once its own requests are in may its siblings' transfers leave
                    // without it.
                    self.gathered(id, now);
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
                    if self.ctx.options.dry_run {
                        let task = self.images[id.0].task();
                        let (source, destination) = (task.source.registry(), task.destination.registry());
                        self.forecast.blob(outcome, source, destination, size);
                    }
                    self.session.emit(Event::BlobDone { image: id.0, digest, size, outcome });
                }
                ImageEffect::Emit(event) => self.session.emit(event),
                ImageEffect::Ended => {
                    let outcome = self.images[id.0].outcome();
                    let referrer = self.referrers.role(id).is_some();
                    let totals = &mut self.summary.referrers;
                    match (outcome, referrer) {
                        (ImageOutcome::Skipped, false) => self.summary.skipped += 1,
                        (ImageOutcome::Copied, false) => self.summary.copied += 1,
                        (ImageOutcome::Skipped, true) => totals.skipped += 1,
                        (ImageOutcome::Copied | ImageOutcome::WouldCopy, true) => totals.copied += 1,
                        (ImageOutcome::Failed, referrer) => {
                            totals.failed += usize::from(referrer);
                            self.failed.push(id);
                        }
                        (ImageOutcome::WouldCopy | ImageOutcome::Pending, _) => {}
                    }
                    if outcome == ImageOutcome::WouldCopy {
                        let image = &self.images[id.0];
                        let registry = image.task().destination.registry();
                        self.forecast.pushes(registry, image.manifests_to_push());
                    }
                    // Referrers follow their subject: look for those of every manifest the
                    // image left at the destination (in a dry run: would leave).
                    let arrived = matches!(
                        outcome,
                        ImageOutcome::Copied | ImageOutcome::Skipped | ImageOutcome::WouldCopy
                    );
                    let mut effects = Vec::new();
                    if referrer {
                        self.referrers.referrer_ended(id, arrived, &self.ctx, &mut effects);
                    }
                    if arrived {
                        let task = self.images[id.0].task().clone();
                        for (digest, mode) in self.images[id.0].subjects() {
                            self.referrers.discover(id, &task, digest, mode, &self.ctx, &mut effects);
                        }
                    }
                    self.gathered(id, now);
                    self.active -= 1;
                    self.apply_referrers(effects, now);
                    self.fill(now);
                }
            }
        }
    }

    /// Carries out what the referrer table asked for, in order: its calls, and referrers to
    /// queue as images of their own.
    fn apply_referrers(&mut self, effects: Vec<ReferrerEffect>, now: Instant) {
        for effect in effects {
            match effect {
                ReferrerEffect::Send(step, call) => self.submit(Purpose::Referrers(step), call, now),
                ReferrerEffect::Queue { subject, task, entry } => {
                    let id = ImageId(self.images.len());
                    let artifact_type = entry.as_ref().and_then(|e| e.artifact_type.clone());
                    self.referrers.attach(subject, id, entry);
                    let role = self.referrers.role(id).cloned();
                    self.images.push(ImageTask::new(id, *task, self.round));
                    self.queue.push_back(id);
                    if let Some(role) = role {
                        self.session.emit(Event::ReferrerQueued {
                            image: id.0,
                            subject: self.referrers.subject_image(role.subject).0,
                            subject_digest: role.subject_digest,
                            artifact_type,
                        });
                    }
                }
                ReferrerEffect::Emit(event) => self.session.emit(event),
                ReferrerEffect::Foresee { registry, requests, counted } => {
                    self.forecast.foresee(&registry, requests, counted);
                }
            }
        }
    }

    /// Carries out what the blob table asked for, in order.
    fn apply_blobs(&mut self, effects: Vec<BlobEffect>, now: Instant) {
        for effect in effects {
            let (id, image_effects) = match effect {
                BlobEffect::Send(key, call) => {
                    self.submit(Purpose::Blob(key), *call, now);
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
                        empty_repository: task.empty_repository(),
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
                let calls = self.planner.on_outcome(id, outcome, &self.ctx.endpoints);
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
            Purpose::Referrers(step) => {
                let mut effects = Vec::new();
                self.referrers.on_outcome(step, outcome, &self.ctx, &mut effects);
                self.apply_referrers(effects, now);
                self.fill(now);
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

    /// Queued images stay queued (`pending` in the report, counted in `stopped`); images
    /// in flight, and listings in flight, run to their end; no further round starts.
    fn stop_starting(&mut self, _now: Instant) {
        self.stopping = true;
        self.queue.clear();
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
