//! The states of an upload and how each answer moves it on.

use http::StatusCode;

use super::Upload;
use crate::error_body::{ErrorBody, ErrorCode};
use crate::time::Instant;
use crate::transport::{Side, TransportError};

const DEST: Side = Side::Destination;

/// Where an upload stands; each state but `Done` and a future `Status` asks for one thing.
#[derive(Debug)]
pub(super) enum State {
    /// Open a session, then send the blob whole or in chunks.
    Open {
        monolithic: bool,
    },
    Monolithic,
    /// Send the chunk that starts at `confirmed`.
    Patch,
    /// Have the transport verify the whole blob.
    Verify,
    Commit,
    /// Ask where the registry stands, once `at` has come.
    Status {
        at: Instant,
    },
    /// Look for the blob a lost commit may have landed.
    Check,
    /// Abandon the session; then open a new one (a refused monolithic `PUT`) or report
    /// the failure.
    Cancel {
        reopen: bool,
    },
    Done(Result<(), TransportError>),
}

/// What the transport was asked for, awaiting its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Asked {
    Open { monolithic: bool },
    Monolithic,
    Patch { start: u64, end: u64 },
    Verify,
    Status,
    Commit,
    Check,
    Cancel { reopen: bool },
}

impl Upload {
    /// After a session is open: the whole blob, or its first chunk (or, for an empty
    /// blob, straight to verification).
    pub(super) fn first_state(&self, monolithic: bool) -> State {
        if monolithic {
            State::Monolithic
        } else if self.size == 0 {
            State::Verify
        } else {
            State::Patch
        }
    }

    /// Ends the upload with `error`, cancelling the session if one is open.
    pub(super) fn give_up(&mut self, error: TransportError) {
        if self.location.is_some() && !matches!(self.state, State::Cancel { .. }) {
            self.failure = Some(error);
            self.state = State::Cancel { reopen: false };
        } else {
            self.state = State::Done(Err(self.failure.take().unwrap_or(error)));
        }
    }

    /// After a failure the registry may have survived: ask where it stands after the
    /// policy's backoff, or give up when the policy says so.
    fn resume_later(&mut self, error: TransportError, now: Instant) {
        match self.policy.next_delay(self.streak, &error.class(), &mut self.rng) {
            Some(delay) => {
                self.streak += 1;
                self.failure = Some(error);
                self.state = State::Status { at: now + delay };
            }
            None => self.give_up(error),
        }
    }

    pub(super) fn failed(&mut self, asked: Asked, error: TransportError, now: Instant) {
        match asked {
            // No session yet: nothing to cancel.
            Asked::Open { .. } => self.state = State::Done(Err(error)),
            Asked::Patch { .. } | Asked::Commit | Asked::Status if error.upload_may_resume() => {
                self.resume_later(error, now)
            }
            Asked::Check => self.state = State::Done(Err(self.failure.take().unwrap_or(error))),
            Asked::Cancel { reopen: true } => self.reopen(),
            Asked::Cancel { reopen: false } => {
                self.state = State::Done(Err(self.failure.take().unwrap_or(error)))
            }
            _ => self.give_up(error),
        }
    }

    pub(super) fn answered(&mut self, asked: Asked, answer: http::Response<Vec<u8>>, now: Instant) {
        let status = answer.status();
        let success = match asked {
            Asked::Open { .. } => status == StatusCode::ACCEPTED,
            _ => status.is_success(),
        };
        if !success {
            if asked == Asked::Monolithic && !self.fell_back && refuses_monolithic(&answer) {
                self.fell_back = true;
                self.state = State::Cancel { reopen: true };
                return;
            }
            if asked == Asked::Status && self.committing && status == StatusCode::NOT_FOUND {
                // The session is gone: the lost commit may have landed.
                self.state = State::Check;
                return;
            }
            if asked == Asked::Status && self.resuming {
                // A past run's session the registry no longer knows: start afresh.
                return self.start_afresh();
            }
            let error = self.answer_error(&answer, now);
            return self.failed(asked, error, now);
        }
        let followed = match asked {
            Asked::Open { .. } => self.opened(&answer),
            Asked::Patch { .. } | Asked::Status => self.follow(&answer),
            _ => Ok(()),
        };
        if let Err(error) = followed {
            return self.give_up(error);
        }
        match asked {
            Asked::Open { monolithic } => self.state = self.first_state(monolithic),
            Asked::Monolithic | Asked::Commit | Asked::Check => self.state = State::Done(Ok(())),
            Asked::Patch { end, .. } => {
                self.confirmed = end;
                self.streak = 0;
                self.verified = false;
                self.state = if end >= self.size { State::Verify } else { State::Patch };
            }
            Asked::Status => self.stands_at(&answer),
            Asked::Cancel { reopen: true } => self.reopen(),
            Asked::Cancel { reopen: false } => {
                let error = self.failure.take().unwrap_or(TransportError::Cancelled);
                self.state = State::Done(Err(error));
            }
            Asked::Verify => {}
        }
    }

    /// A new session, the way a transfer starts, in place of a past run's session the
    /// registry no longer knows.
    fn start_afresh(&mut self) {
        self.reopen();
        self.resuming = false;
        self.state = State::Open { monolithic: self.size < self.config.monolithic_below };
    }

    /// A new session for the chunks, after a refused monolithic `PUT`.
    fn reopen(&mut self) {
        self.location = None;
        self.confirmed = 0;
        self.sent_to = 0;
        self.failure = None;
        self.state = State::Open { monolithic: false };
    }

    /// The `202` to the `POST`: the session's `Location` and the registry's chunk minimum.
    fn opened(&mut self, answer: &http::Response<Vec<u8>>) -> Result<(), TransportError> {
        let Some(location) = header(answer, http::header::LOCATION) else {
            return Err(self.protocol_error(&self.upload_start, "opened an upload without a Location header"));
        };
        self.location = Some(self.resolve(&self.upload_start, location)?);
        // spec v1.1: "OCI-Chunk-Min-Length: <size>" on the POST answer.
        let min = header(answer, "oci-chunk-min-length").and_then(|v| v.trim().parse::<u64>().ok());
        self.chunk = match min {
            Some(min) if min <= self.config.max_min_chunk => self.config.chunk_size.max(min),
            _ => self.config.chunk_size,
        }
        .max(1);
        Ok(())
    }

    /// Moves to an answer's `Location`, if it gave one.
    fn follow(&mut self, answer: &http::Response<Vec<u8>>) -> Result<(), TransportError> {
        if let (Some(next), Some(current)) = (header(answer, http::header::LOCATION), self.location.clone()) {
            self.location = Some(self.resolve(&current, next)?);
        }
        Ok(())
    }

    /// The `204` to a status `GET`: go on from the registry's `Range`.
    fn stands_at(&mut self, answer: &http::Response<Vec<u8>>) {
        let location = self.location.clone().unwrap_or_default();
        let offset = match header(answer, http::header::RANGE).map(str::trim) {
            None => Some(0),
            // distribution answers `0-0` for an empty session too: it means 0 unless the
            // registry had already confirmed bytes.
            Some("0-0" | "bytes=0-0") if self.confirmed == 0 => Some(0),
            Some(range) => crate::api::upload_offset(range),
        };
        let Some(offset) = offset else {
            let error = self.protocol_error(&location, "answered an upload Range that is not `0-<end>`");
            return self.give_up(error);
        };
        if offset > self.sent_to.max(self.confirmed) {
            let message = format!(
                "{} says it holds {offset} bytes of the upload, but only {} were sent",
                crate::api::host_of(&location),
                self.sent_to
            );
            return self.give_up(TransportError::Connection { side: DEST, message });
        }
        if offset > self.confirmed {
            self.streak = 0;
        }
        self.resuming = false;
        self.confirmed = offset;
        self.state = match (offset >= self.size, self.verified) {
            (true, true) => State::Commit,
            (true, false) => State::Verify,
            (false, _) => State::Patch,
        };
    }

    /// An answer whose status ended a request, as the error to report.
    fn answer_error(&self, answer: &http::Response<Vec<u8>>, now: Instant) -> TransportError {
        let url = self.location.as_deref().unwrap_or(&self.upload_start);
        TransportError::from_answer(DEST, &crate::api::host_of(url), answer, self.wall.unix_at(now))
    }

    pub(super) fn protocol_error(&self, url: &str, what: &str) -> TransportError {
        TransportError::Status {
            side: DEST,
            status: 202,
            retry_after: None,
            detail: Some(format!("{} {what}", crate::api::host_of(url))),
        }
    }

    /// `reference` (a `Location`, perhaps relative) resolved against `base`.
    pub(super) fn resolve(&self, base: &str, reference: &str) -> Result<String, TransportError> {
        crate::api::resolve_url(base, reference)
            .ok_or_else(|| self.protocol_error(base, "gave an upload Location that is not a URL"))
    }
}

/// The registry will not take the blob in one request (`413`, `405`, `501`, or `400
/// SIZE_INVALID`): worth a chunked upload.
fn refuses_monolithic(answer: &http::Response<Vec<u8>>) -> bool {
    match answer.status().as_u16() {
        405 | 413 | 501 => true,
        400 => ErrorBody::parse(answer.body()).is_some_and(|b| b.has(ErrorCode::SizeInvalid)),
        _ => false,
    }
}

fn header<B>(answer: &http::Response<B>, name: impl http::header::AsHeaderName) -> Option<&str> {
    answer.headers().get(name).and_then(|v| v.to_str().ok())
}
