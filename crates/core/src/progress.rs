//! One progress model for every front end.
//!
//! After Docker's streamed pull progress: a job emits [`Event`]s as it goes, serialised
//! as newline-delimited JSON, one event per line. The last line is always
//! [`Event::JobFinished`]; a reader knows the job ended only when it has read that line.
//! The CLI's `--progress json`, the browser page and the edge handler all speak it.

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, ErrorKind};

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A rule could not be expanded (its tag list or catalog failed); it copies nothing.
    PlanFailed {
        source: String,
        destination: String,
        reason: String,
        kind: ErrorKind,
        retryable: bool,
    },
    /// Planning is over: the job knows every image it will copy.
    PlanReady {
        images: usize,
        repositories: usize,
    },
    ImageStarted {
        image: usize,
        source: String,
        destination: String,
    },
    /// The destination already holds the source's manifest digest.
    ImageSkipped {
        image: usize,
        source: String,
        destination: String,
        digest: Digest,
    },
    /// Bytes of one blob moved so far.
    BlobProgress {
        image: usize,
        digest: Digest,
        bytes: u64,
        total: u64,
    },
    BlobDone {
        image: usize,
        digest: Digest,
        size: u64,
        outcome: BlobOutcome,
    },
    /// A request failed transiently and will be tried again after `delay_ms`.
    RetryScheduled {
        target: String,
        retry: u32,
        delay_ms: u64,
        reason: String,
    },
    ImageDone {
        image: usize,
        source: String,
        destination: String,
        digest: Digest,
        /// Bytes streamed for this image (mounted and present blobs move none).
        bytes: u64,
        /// Set when a platform filter rewrote the index: the source index's digest.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rewritten_from: Option<Digest>,
        /// Set in a dry run: nothing was written.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        dry_run: bool,
    },
    ImageFailed {
        image: usize,
        source: String,
        destination: String,
        reason: String,
        kind: ErrorKind,
        retryable: bool,
    },
    /// Always the last event of a job.
    JobFinished {
        status: JobStatus,
        summary: Summary,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Succeeded,
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub images: usize,
    pub copied: usize,
    pub skipped: usize,
    pub failed: usize,
    pub blobs_transferred: usize,
    pub blobs_mounted: usize,
    pub blobs_present: usize,
    pub bytes_transferred: u64,
    /// Small requests sent (HEAD, GET, PUT, POST, token), retries included; transfers not.
    pub requests: u64,
    pub transfers: u64,
    pub retries: u64,
    pub elapsed_ms: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// Bytes a dry run found missing at the destination.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bytes_to_copy: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<Failure>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One image (or rule) that did not make it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub source: String,
    pub destination: String,
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
    pub source: String,
    pub destination: String,
    pub outcome: ImageOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewritten_from: Option<Digest>,
    pub bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For a failed image: what went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ErrorKind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageOutcome {
    Copied,
    Skipped,
    Failed,
    /// Dry run: the image would be copied.
    WouldCopy,
    Pending,
}

/// The JSON report written at the end of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub status: JobStatus,
    pub summary: Summary,
    pub images: Vec<ImageReport>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_one_tagged_json_object_per_line() {
        let d = Digest::sha256(b"x");
        let cases = [
            (Event::PlanReady { images: 3, repositories: 2 }, r#"{"event":"plan_ready","images":3,"repositories":2}"#.to_string()),
            (
                Event::BlobDone { image: 1, digest: d.clone(), size: 1, outcome: BlobOutcome::Mounted },
                format!(r#"{{"event":"blob_done","image":1,"digest":"{d}","size":1,"outcome":"mounted"}}"#),
            ),
            (
                Event::JobFinished { status: JobStatus::Succeeded, summary: Summary::default() },
                r#"{"event":"job_finished","status":"succeeded","summary":{"images":0,"copied":0,"skipped":0,"failed":0,"blobs_transferred":0,"blobs_mounted":0,"blobs_present":0,"bytes_transferred":0,"requests":0,"transfers":0,"retries":0,"elapsed_ms":0}}"#.to_string(),
            ),
        ];
        for (event, want) in cases {
            let line = event.to_ndjson();
            assert_eq!(line, format!("{want}\n"));
            assert_eq!(serde_json::from_str::<Event>(&line).unwrap(), event);
        }
    }
}
