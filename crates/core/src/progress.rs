//! One progress model for every front end.
//!
//! After Docker's streamed pull progress: a job emits [`Event`]s as it goes, serialised
//! as newline-delimited JSON, one event per line. The last line is always
//! [`Event::JobFinished`]; a reader knows the job ended only when it has read that line.
//! The CLI's `--progress json`, the browser page and the edge handler all speak it.

use serde::{Deserialize, Serialize};

use crate::budget::BudgetReport;
use crate::copy::RegistryRequests;
use crate::diff::TagDiff;
use crate::digest::Digest;
use crate::error::{Error, ErrorKind};
use crate::shard::Shard;
use crate::window::{ActionClass, WindowReport};

/// How a blob reached the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlobOutcome {
    /// The destination already had it.
    Present,
    /// Mounted from another repository of the destination registry.
    Mounted,
    /// Streamed from the source.
    Transferred,
}

/// One progress event. Serialised with an `"event"` tag, e.g.
/// `{"event":"image_done","image":0,...}`.
///
/// `image` is the image's place in the plan, from 0; every event about one image carries
/// it, so a front end can key its display on it. `source` and `destination` are
/// references as the user would type them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A rule could not be expanded (its tag list or catalog failed); it copies nothing.
    PlanFailed {
        /// What the rule listed (a registry or `registry/repository`), or the source name
        /// that could not form a reference.
        source: String,
        /// The rule's destinations, comma-separated; empty when a name failed.
        destination: String,
        /// The error message, naming the listing or the name.
        reason: String,
        /// What went wrong, for a front end to act on.
        kind: ErrorKind,
        /// Whether running the job again may help.
        retryable: bool,
    },
    /// Planning is over: the job knows every image it will copy. Sent again, with the
    /// new totals, after a later round ran failed listings again.
    PlanReady {
        /// Images to copy; rules that failed in planning are not among them.
        images: usize,
        /// Source repositories the rules expanded to; 0 when the job was given images.
        repositories: usize,
        /// Immutable tags the destination already lists: skipped without a request, and
        /// not among `images`.
        #[serde(default, skip_serializing_if = "is_zero_count")]
        immutable: usize,
        /// The shard this job plans, when it is one of several: `repositories` are its
        /// share.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shard: Option<Shard>,
    },
    /// The pass over the queue ended with failures that running again may help (rate
    /// limited, unavailable): another round starts, with the images and listings that
    /// failed so. The first round is not announced; it starts with `plan_ready`.
    RoundStarted {
        /// Which round: 2 for the first extra one.
        round: u32,
        /// Images queued again, under their own `image` numbers.
        images: usize,
        /// Failed listings (catalogs, tag lists) run again from their failing page.
        listings: usize,
    },
    /// The image left the queue; at most `proc` images run at once.
    ImageStarted {
        /// The image's place in the plan.
        image: usize,
        /// The source reference.
        source: String,
        /// The destination reference.
        destination: String,
    },
    /// The destination already holds the source's manifest digest.
    ImageSkipped {
        /// The image's place in the plan.
        image: usize,
        /// The source reference.
        source: String,
        /// The destination reference.
        destination: String,
        /// The digest both sides hold.
        digest: Digest,
    },
    /// Bytes of one blob moved so far.
    BlobProgress {
        /// The image whose request started the move; other images that need the blob
        /// wait and then see it present or mounted.
        image: usize,
        /// The blob.
        digest: Digest,
        /// Bytes this attempt has moved so far; more than `total` when a resumed upload
        /// moved a prefix twice.
        bytes: u64,
        /// The blob's size as the manifest gives it.
        total: u64,
    },
    /// A blob this image needs is at the destination (in a dry run: would be). Sent once
    /// per image and blob, so a blob that several images share is reported for each.
    BlobDone {
        /// The image that needed the blob.
        image: usize,
        /// The blob.
        digest: Digest,
        /// The blob's size as the manifest gives it.
        size: u64,
        /// How it got there.
        outcome: BlobOutcome,
    },
    /// A request failed transiently and will be tried again after `delay_ms`.
    RetryScheduled {
        /// The request, e.g. `GET https://host/v2/...`, `blob <digest> from <url>` or
        /// `token for <registry>`; never credentials.
        target: String,
        /// Which retry this will be: 1 for the first.
        retry: u32,
        /// The wait before it, from the backoff schedule or the answer's `Retry-After`.
        delay_ms: u64,
        /// Why the last attempt failed, e.g. `HTTP 503 Service Unavailable`.
        reason: String,
    },
    /// A registry pushed back (`429` or `503`) and the window of one of its action
    /// classes shrank: at most once per round trip, and only when its size changed.
    WindowShrunk {
        /// The registry, as references name it.
        registry: String,
        /// The action class whose requests it limits.
        class: ActionClass,
        /// Requests of that class it now lets be in flight at once.
        window: usize,
        /// The answer that shrank it, e.g. `HTTP 429`.
        reason: String,
    },
    /// A registry's advertised request budget (`ratelimit-remaining`, `RateLimit`) is
    /// spent: the requests that count against it (manifest `GET`s) wait until its window
    /// resets instead of running into `429`s; the others go on.
    BudgetPaused {
        /// The registry, as references name it.
        registry: String,
        /// Requests its window allows, as advertised.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u64>,
        /// The window's length in seconds, as advertised.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window_s: Option<u64>,
        /// How long the counted requests wait: until the advertised reset, else one whole
        /// window.
        resume_in_ms: u64,
    },
    /// The image's manifest is at the destination (in a dry run: would be pushed).
    ImageDone {
        /// The image's place in the plan.
        image: usize,
        /// The source reference.
        source: String,
        /// The destination reference.
        destination: String,
        /// The manifest digest pushed: the rewritten index's when a platform filter applied.
        digest: Digest,
        /// Bytes streamed for this image (mounted and present blobs move none); in a dry
        /// run, the bytes it would stream.
        bytes: u64,
        /// Set when a platform filter rewrote the index: the source index's digest.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rewritten_from: Option<Digest>,
        /// Set in a dry run: nothing was written.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        dry_run: bool,
    },
    /// The image failed and its manifest was not pushed; blobs it already moved stay.
    ImageFailed {
        /// The image's place in the plan.
        image: usize,
        /// The source reference.
        source: String,
        /// The destination reference.
        destination: String,
        /// The error message, naming what failed.
        reason: String,
        /// What went wrong, for a front end to act on.
        kind: ErrorKind,
        /// Whether running the job again may help (the failure was transient).
        retryable: bool,
    },
    /// A referrer (signature, SBOM, attestation) of an image's manifest was found at the
    /// source and queued as an image of its own, copied after its subject.
    ReferrerQueued {
        /// The referrer's own image number: its `image_*` events follow.
        image: usize,
        /// The image whose manifest it refers to.
        subject: usize,
        /// The manifest it refers to.
        subject_digest: Digest,
        /// Its `artifactType`; absent for a cosign tag.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        artifact_type: Option<String>,
    },
    /// A platform filter rewrote an index whose own referrers then point at a digest the
    /// destination will not hold: they are not copied (the children's are).
    ReferrersDropped {
        /// The image whose index was rewritten.
        image: usize,
        /// The source index the referrers refer to.
        subject_digest: Digest,
        /// How many referrers were left behind.
        count: usize,
        /// What breaks, in words.
        reason: String,
    },
    /// Looking for a manifest's referrers, or listing them at the destination, failed.
    /// The manifest itself is at the destination; the job fails.
    ReferrersFailed {
        /// The image whose manifest it is.
        image: usize,
        /// The manifest.
        subject_digest: Digest,
        /// The error message, naming the registry and the digest.
        reason: String,
        /// What went wrong, for a front end to act on.
        kind: ErrorKind,
    },
    /// A diff compared one repository pair: its rows and errors, exactly as the diff's
    /// final report carries them for that pair, sent as soon as the pair is compared so
    /// that a registry-wide diff streams. Sent once per pair, in no set order.
    RepositoryDiffed {
        /// The repository on the source.
        source_repository: String,
        /// The repository on the destination; absent when the diff reads the source alone.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        destination_repository: Option<String>,
        /// The pair's rows, sorted by tag, as in [`crate::diff::DiffReport::rows`].
        rows: Vec<TagDiff>,
        /// The listings and HEADs of this pair that failed, as in the report's `errors`.
        errors: Vec<Error>,
    },
    /// Always the last event of a job.
    JobFinished {
        /// Failed when any image or rule failed.
        status: JobStatus,
        /// The job's totals, as in the `--report` file.
        summary: Summary,
    },
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// No image and no rule failed (skipped images are a success).
    Succeeded,
    /// At least one image or rule failed; the other images still ran to their end.
    Failed,
}

impl Event {
    /// The event as one NDJSON line, newline included.
    pub fn to_ndjson(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_else(|e| {
            // Serialising these plain types cannot fail; keep the stream well-formed anyway.
            format!("{{\"event\":\"error\",\"reason\":{:?}}}", e.to_string())
        });
        line.push('\n');
        line
    }
}

/// Totals for a whole job.
///
/// The blob counters count each blob once per image that needs it, under the outcome
/// that image saw: a layer two images share counts once as transferred and once as
/// present or mounted. An image that runs again in a later round counts its blobs again,
/// as that round saw them (present, for those it had moved). Manifests are not blobs and
/// count in none of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Images planned, plus rules and names that failed in planning.
    pub images: usize,
    /// Images whose manifest was pushed; none in a dry run.
    pub copied: usize,
    /// Images whose destination already held the source's digest.
    pub skipped: usize,
    /// Images that failed, plus rules and names that failed in planning.
    pub failed: usize,
    /// Blobs streamed from the source (in a dry run: that would be).
    pub blobs_transferred: usize,
    /// Blobs mounted from another repository of the destination registry (in a dry run:
    /// that would be).
    pub blobs_mounted: usize,
    /// Blobs the destination repository already held, or got from another image of
    /// this job.
    pub blobs_present: usize,
    /// Sizes of the blobs transferred, as their manifests give them; 0 in a dry run.
    pub bytes_transferred: u64,
    /// Small requests sent (HEAD, GET, PUT, POST, token), retries included; transfers not.
    pub requests: u64,
    /// Blob transfers started, retries included.
    pub transfers: u64,
    /// Retries scheduled, of requests, transfers and token fetches alike.
    pub retries: u64,
    /// From the machine's creation to the job's end, on the driver's clock.
    pub elapsed_ms: u64,
    /// Passes over the queue: 1, plus one per round that ran transiently failed images
    /// and listings again (at most `SyncOptions::rounds` of them).
    #[serde(default)]
    pub rounds: u32,
    /// Set in a dry run: nothing was written.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// Images skipped without a request: immutable tags the destination already lists
    /// (counted in `skipped` too).
    #[serde(default, skip_serializing_if = "is_zero_count")]
    pub immutable: usize,
    /// Sizes of the blobs a dry run would transfer (a mount moves no bytes).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bytes_to_copy: u64,
    /// Source repositories the rules expanded to (a shard's: its share); 0 when the job
    /// was given images.
    #[serde(default, skip_serializing_if = "is_zero_count")]
    pub repositories: usize,
    /// The shard this job planned, when it was one of several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// Every failure the job ended with: planning's first, then images' in the order they
    /// failed. A failure that a later round mended is not among them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<Failure>,
    /// Referrers that travelled with the images (not counted in `images`, `copied`,
    /// `skipped`); their failures are in `failed` and `failures`.
    #[serde(default, skip_serializing_if = "ReferrerTotals::is_empty")]
    pub referrers: ReferrerTotals,
    /// Each registry's action classes that pushed back (`429`/`503`): how often, and the
    /// smallest window they were run in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rate_limits: Vec<WindowReport>,
    /// Small requests (not transfers) by registry, class and status, retries included:
    /// what a service's metrics count. Their counts add up to `requests` less those still
    /// unanswered when the job ended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests_by: Vec<RequestCount>,
    /// Images never started because the job was stopped (a service shutting down); they
    /// are `pending` in the report.
    #[serde(default, skip_serializing_if = "is_zero_count")]
    pub stopped: usize,
    /// The registries that advertised a request budget: what it was, what the job
    /// counted against it, and how long it waited for it to reset.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub budgets: Vec<BudgetReport>,
    /// In a dry run, per registry: the requests the real run will make, and how many of
    /// them count against a budget (see [`RegistryRequests`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forecast: Vec<RegistryRequests>,
}

/// What became of the referrers of a job's images.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferrerTotals {
    /// Referrers whose manifest was pushed (in a dry run: would be).
    pub copied: usize,
    /// Referrers the destination already held.
    pub skipped: usize,
    /// Referrers that failed, and subjects whose referrers could not be found or listed
    /// at the destination; the subjects stay copied.
    pub failed: usize,
    /// Referrers of indexes a platform filter rewrote, left behind.
    #[serde(default, skip_serializing_if = "is_zero_count")]
    pub dropped: usize,
    /// Tag-schema indexes written at destinations without the referrers API.
    #[serde(default, skip_serializing_if = "is_zero_count")]
    pub indexed: usize,
}

impl ReferrerTotals {
    fn is_empty(&self) -> bool {
        *self == ReferrerTotals::default()
    }
}

/// What a small request was for: the action classes of [`crate::window`], plus token
/// requests to an authorisation service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestClass {
    /// `GET`/`HEAD` of a manifest.
    ManifestRead,
    /// `GET`/`HEAD` of a blob.
    BlobRead,
    /// Upload requests and manifest pushes.
    Upload,
    /// Cross-repository mounts.
    Mount,
    /// Tag lists, the catalog, referrers.
    Listing,
    /// Token requests for a registry's Bearer challenge.
    Token,
}

impl From<ActionClass> for RequestClass {
    fn from(class: ActionClass) -> Self {
        match class {
            ActionClass::ManifestRead => RequestClass::ManifestRead,
            ActionClass::BlobRead => RequestClass::BlobRead,
            ActionClass::Upload => RequestClass::Upload,
            ActionClass::Mount => RequestClass::Mount,
            ActionClass::Listing => RequestClass::Listing,
        }
    }
}

impl RequestClass {
    /// The snake_case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestClass::ManifestRead => "manifest_read",
            RequestClass::BlobRead => "blob_read",
            RequestClass::Upload => "upload",
            RequestClass::Mount => "mount",
            RequestClass::Listing => "listing",
            RequestClass::Token => "token",
        }
    }
}

/// How many small requests one registry answered with one status, for one class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCount {
    /// The registry, as references name it.
    pub registry: String,
    /// What the requests were for.
    pub class: RequestClass,
    /// The HTTP status; `None` when no answer came (a refused or broken connection).
    pub status: Option<u16>,
    /// How many.
    pub count: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_count(n: &usize) -> bool {
    *n == 0
}

/// One image (or rule) that did not make it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The source reference, or what a failed rule listed.
    pub source: String,
    /// The destination reference, or a failed rule's destinations (empty when a name
    /// failed).
    pub destination: String,
    /// The error message, naming what failed.
    pub reason: String,
    /// What went wrong, for a front end to act on.
    pub kind: ErrorKind,
    /// Whether running the job again may help (the failure was transient).
    pub retryable: bool,
}

impl Failure {
    /// The failure of the copy from `source` to `destination`.
    pub fn new(source: String, destination: String, error: Error) -> Self {
        Failure {
            source,
            destination,
            reason: error.message().to_owned(),
            kind: error.kind(),
            retryable: error.is_retryable(),
        }
    }
}

impl Summary {
    /// Failed when any image or rule failed.
    pub fn status(&self) -> JobStatus {
        if self.failed == 0 {
            JobStatus::Succeeded
        } else {
            JobStatus::Failed
        }
    }
}

/// What happened to one image; the `--report` file lists one per image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageReport {
    /// The source reference, or what a failed rule listed.
    pub source: String,
    /// The destination reference, or a failed rule's destinations.
    pub destination: String,
    /// How the image ended, in the last round it ran in.
    pub outcome: ImageOutcome,
    /// The round that outcome came from: 1, or later when the image (or its rule's
    /// listing) failed transiently and ran again.
    #[serde(default)]
    pub round: u32,
    /// Set when the image was skipped unchecked: its tag is immutable and the
    /// destination already lists it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub immutable: bool,
    /// The manifest digest pushed (the rewritten index's when filtered), else the
    /// source's as far as it was learned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// Set when a platform filter rewrote the index: the source index's digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewritten_from: Option<Digest>,
    /// Set for a referrer: the manifest it refers to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_digest: Option<Digest>,
    /// Referrers of the source index left behind because a platform filter rewrote it.
    #[serde(default, skip_serializing_if = "is_zero_count")]
    pub referrers_dropped: usize,
    /// Bytes streamed for this image, as in [`Event::ImageDone`].
    pub bytes: u64,
    /// For a failed image: the error message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For a failed image: what went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ErrorKind>,
}

/// How one image ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageOutcome {
    /// Its manifest was pushed.
    Copied,
    /// The destination already held the source's digest.
    Skipped,
    /// It failed (or its rule failed in planning).
    Failed,
    /// Dry run: the image would be copied.
    WouldCopy,
    /// Not finished: the report was taken before the job ended.
    Pending,
}

/// The JSON report written at the end of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// As [`Summary::status`] says.
    pub status: JobStatus,
    /// The job's totals.
    pub summary: Summary,
    /// Rules that failed in planning first, then every planned image in plan order.
    pub images: Vec<ImageReport>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_one_tagged_json_object_per_line() {
        let d = Digest::sha256(b"x");
        let cases = [
            (Event::PlanReady { images: 3, repositories: 2, immutable: 0, shard: None }, r#"{"event":"plan_ready","images":3,"repositories":2}"#.to_string()),
            (Event::PlanReady { images: 3, repositories: 2, immutable: 0, shard: Some(Shard::new(1, 4).unwrap()) }, r#"{"event":"plan_ready","images":3,"repositories":2,"shard":{"index":1,"count":4}}"#.to_string()),
            (
                Event::RoundStarted { round: 2, images: 1, listings: 0 },
                r#"{"event":"round_started","round":2,"images":1,"listings":0}"#.to_string(),
            ),
            (
                Event::BlobDone { image: 1, digest: d.clone(), size: 1, outcome: BlobOutcome::Mounted },
                format!(r#"{{"event":"blob_done","image":1,"digest":"{d}","size":1,"outcome":"mounted"}}"#),
            ),
            (
                Event::RepositoryDiffed {
                    source_repository: "a".into(),
                    destination_repository: Some("m/a".into()),
                    rows: Vec::new(),
                    errors: vec![Error::new(ErrorKind::Refused, "HTTP 403")],
                },
                r#"{"event":"repository_diffed","source_repository":"a","destination_repository":"m/a","rows":[],"errors":[{"kind":"refused","message":"HTTP 403"}]}"#.to_string(),
            ),
            (
                Event::JobFinished { status: JobStatus::Succeeded, summary: Summary::default() },
                r#"{"event":"job_finished","status":"succeeded","summary":{"images":0,"copied":0,"skipped":0,"failed":0,"blobs_transferred":0,"blobs_mounted":0,"blobs_present":0,"bytes_transferred":0,"requests":0,"transfers":0,"retries":0,"elapsed_ms":0,"rounds":0}}"#.to_string(),
            ),
        ];
        for (event, want) in cases {
            let line = event.to_ndjson();
            assert_eq!(line, format!("{want}\n"));
            assert_eq!(serde_json::from_str::<Event>(&line).unwrap(), event);
        }
    }
}
