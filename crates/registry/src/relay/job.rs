//! One relay job: the core's machine over the native transport, its NDJSON lines kept so
//! that a client can read them again from any offset, and its end (done, cancelled or
//! out of time) written as the last line.
//!
//! Docker's daemon answers a pull the same way: the job starts at once, progress streams
//! as lines, and only the last line says how it ended; a reader knows it is over at EOF.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use ferry_core::copy::SyncMachine;
use ferry_core::diff::DiffMachine;
use ferry_core::progress::Event;
use ferry_core::transport::Clock as _;
use ferry_native::{run_sync, NativeTransport, TokioClock};
use futures_util::Stream;
use serde_json::json;
use tokio::sync::{watch, Notify};

use super::request::Work;

/// Lines kept per job. Beyond them, byte counts of blobs (`blob_progress`) are no longer
/// kept; every other event is.
pub const MAX_KEPT_LINES: usize = 50_000;

/// The lines of a job so far, and whether the last one has been written.
#[derive(Default)]
struct Log {
    lines: Vec<Bytes>,
    finished: bool,
}

/// A job the relay runs or ran.
pub struct JobRecord {
    pub id: String,
    log: Mutex<Log>,
    /// The number of lines, for readers waiting for more.
    count: watch::Sender<usize>,
    cancel: Notify,
}

impl JobRecord {
    pub fn new(id: String) -> Arc<JobRecord> {
        Arc::new(JobRecord { id, log: Mutex::default(), count: watch::Sender::new(0), cancel: Notify::new() })
    }

    fn push(&self, line: String, last: bool) {
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        if log.finished {
            return;
        }
        log.lines.push(Bytes::from(line));
        log.finished = last;
        self.count.send_replace(log.lines.len());
    }

    fn push_event(&self, event: &Event) {
        if matches!(event, Event::BlobProgress { .. }) && self.len() >= MAX_KEPT_LINES {
            return;
        }
        self.push(event.to_ndjson(), false);
    }

    fn len(&self) -> usize {
        self.log.lock().unwrap_or_else(PoisonError::into_inner).lines.len()
    }

    pub fn is_finished(&self) -> bool {
        self.log.lock().unwrap_or_else(PoisonError::into_inner).finished
    }

    /// Asks the running job to stop; its last line then says it was cancelled.
    pub fn cancel(&self) {
        self.cancel.notify_one();
    }

    /// The job's lines from `offset` on, as they come, until the last one.
    pub fn lines_from(
        self: Arc<Self>,
        offset: usize,
    ) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
        let changes = self.count.subscribe();
        futures_util::stream::unfold((self, offset, changes), |(job, mut offset, mut changes)| async move {
            loop {
                changes.borrow_and_update();
                {
                    let log = job.log.lock().unwrap_or_else(PoisonError::into_inner);
                    if offset < log.lines.len() {
                        let chunk: Vec<u8> =
                            log.lines[offset..].iter().flat_map(|l| l.iter().copied()).collect();
                        offset = log.lines.len();
                        drop(log);
                        return Some((Ok(Bytes::from(chunk)), (job, offset, changes)));
                    }
                    if log.finished {
                        return None;
                    }
                }
                if changes.changed().await.is_err() {
                    return None;
                }
            }
        })
    }

    /// Runs `work` to its end, its lifetime or a cancel, and writes the last line.
    pub async fn run(self: Arc<Self>, work: Work, transport: NativeTransport, lifetime: Duration) {
        let kind = work.kind();
        self.push(line(&json!({"event": "job_started", "job": self.id, "kind": kind})), false);
        let outcome = tokio::select! {
            last = drive(&self, work, &transport) => last,
            () = tokio::time::sleep(lifetime) => Err(format!(
                "the job ran longer than the relay allows (relay.max_job_secs = {}) and was stopped",
                lifetime.as_secs()
            )),
            () = self.cancel.notified() => Err(format!("cancelled by DELETE /jobs/{}", self.id)),
        };
        let last = match outcome {
            Ok(last) => last,
            Err(reason) => {
                line(&json!({"event": "error", "kind": "cancelled", "job": self.id, "reason": reason}))
            }
        };
        tracing::info!(job = %self.id, kind, lines = self.len() + 1, "relay job ended");
        self.push(last, true);
    }
}

fn line(value: &serde_json::Value) -> String {
    let mut text = value.to_string();
    text.push('\n');
    text
}

/// Runs the machine; `Ok` with the last line: a copy's `job_finished`, or a diff's
/// `diff_finished` with its report.
async fn drive(job: &JobRecord, work: Work, transport: &NativeTransport) -> Result<String, String> {
    let clock = TokioClock::new();
    let misuse = |e: ferry_core::machine::Misuse| format!("the relay drove the job wrongly: {e}");
    match work {
        Work::Copy(plan, options) => {
            let mut machine = SyncMachine::new(plan, options, clock.now(), clock.wall_now());
            let mut last = None;
            run_sync(&mut machine, transport, &clock, |event| {
                if matches!(event, Event::JobFinished { .. }) {
                    last = Some(event.to_ndjson());
                } else {
                    job.push_event(&event);
                }
            })
            .await
            .map_err(misuse)?;
            last.ok_or_else(|| "the copy ended without its final event".to_owned())
        }
        Work::Diff(diff) => {
            let mut machine = DiffMachine::new(diff, clock.now(), clock.wall_now());
            run_sync(&mut machine, transport, &clock, |event| job.push_event(&event))
                .await
                .map_err(misuse)?;
            let report = machine.report();
            let status = match (report.errors.is_empty(), report.is_in_sync()) {
                (false, _) => "failed",
                (true, true) => "in_sync",
                (true, false) => "different",
            };
            Ok(line(&json!({"event": "diff_finished", "status": status, "report": report})))
        }
    }
}
