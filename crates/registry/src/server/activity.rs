//! What a connection is doing, as far as its timeouts care: shared between the socket
//! wrapper ([`super::io`]), the service (requests in flight) and the connection's
//! watchdog ([`super::connection`]). Times are milliseconds since the connection opened.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::HttpConfig;

const NONE: u64 = u64::MAX;

pub(crate) struct Activity {
    opened: Instant,
    /// Requests in flight on every connection of the server.
    server_in_flight: Arc<AtomicUsize>,
    /// Requests handed to the app whose response body has not ended.
    in_flight: AtomicUsize,
    /// When the connection last became idle: opened, or the last response ended.
    idle_since: AtomicU64,
    /// When the first byte of the next request head arrived while idle; `NONE` if none.
    head_started: AtomicU64,
    /// When a write to the client started waiting for the socket; `NONE` if none waits.
    write_blocked_since: AtomicU64,
}

/// One request in flight; dropping it ends the request.
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// Why the watchdog closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expired {
    Idle,
    HeaderRead,
    WriteStalled,
}

impl Activity {
    pub(crate) fn new(server_in_flight: Arc<AtomicUsize>) -> Self {
        Activity {
            opened: Instant::now(),
            server_in_flight,
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_started: AtomicU64::new(NONE),
            write_blocked_since: AtomicU64::new(NONE),
        }
    }

    fn now_ms(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }

    fn at(&self, ms: u64) -> Instant {
        self.opened + Duration::from_millis(ms)
    }

    /// Bytes arrived from the client.
    pub(crate) fn read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 {
            let now = self.now_ms();
            let _ = self.head_started.compare_exchange(NONE, now, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    /// A write to the client is waiting for the socket.
    pub(crate) fn write_blocked(&self) {
        let now = self.now_ms();
        let _ = self.write_blocked_since.compare_exchange(NONE, now, Ordering::AcqRel, Ordering::Relaxed);
    }

    /// A write to the client went through.
    pub(crate) fn wrote(&self) {
        self.write_blocked_since.store(NONE, Ordering::Release);
        if self.in_flight.load(Ordering::Acquire) == 0 {
            // The tail of the last answer is still going out: not idle yet.
            self.idle_since.store(self.now_ms(), Ordering::Release);
        }
    }

    /// A request reached the app; it is in flight until the guard drops (its answer's
    /// body ended, or the request was abandoned).
    pub(crate) fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.server_in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(NONE, Ordering::Release);
        InFlight(self.clone())
    }

    fn request_finished(&self) {
        self.server_in_flight.fetch_sub(1, Ordering::AcqRel);
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle_since.store(self.now_ms(), Ordering::Release);
            self.head_started.store(NONE, Ordering::Release);
        }
    }

    /// When to look again, and whether a timeout has already passed.
    pub(crate) fn check(&self, config: &HttpConfig) -> (Option<Instant>, Option<Expired>) {
        let now = self.now_ms();
        let limit = |secs: f64| (secs > 0.0).then_some((secs * 1000.0) as u64);
        let write_blocked = self.write_blocked_since.load(Ordering::Acquire);
        let body = limit(config.body_timeout_secs);
        if write_blocked != NONE {
            if let Some(body) = body {
                let deadline = write_blocked.saturating_add(body);
                return if now >= deadline {
                    (None, Some(Expired::WriteStalled))
                } else {
                    (Some(self.at(deadline)), None)
                };
            }
        }
        // Nothing can expire yet: look again within half the body timeout (a write may
        // block meanwhile), or within a second (the request may end, and idle begin).
        let later = self.at(now + body.map_or(1000, |b| (b / 2).clamp(10, 1000)));
        if self.in_flight.load(Ordering::Acquire) > 0 {
            // Request bodies time themselves ([`super::body`]).
            return (Some(later), None);
        }
        let head = self.head_started.load(Ordering::Acquire);
        let (since, limit, why) = if head != NONE {
            (head, limit(config.header_read_timeout_secs), Expired::HeaderRead)
        } else {
            (self.idle_since.load(Ordering::Acquire), limit(config.idle_timeout_secs), Expired::Idle)
        };
        let Some(limit) = limit else { return (Some(later), None) };
        let deadline = since.saturating_add(limit);
        if now >= deadline {
            (None, Some(why))
        } else {
            // A request may start meanwhile, and its writes need watching.
            (Some(self.at(deadline).min(later)), None)
        }
    }
}
