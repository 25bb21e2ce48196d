//! [`TokioClock`]: the core's [`Clock`] on tokio's timer.

use std::time::{SystemTime, UNIX_EPOCH};

use ferry_core::time::{Instant, UnixTime};
use ferry_core::transport::{BoxFuture, Clock};

/// Monotonic time measured from the moment the clock was created, on tokio's timer (so
/// tests can pause and advance it).
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: tokio::time::Instant,
}

impl TokioClock {
    /// A clock whose origin ([`Instant::ZERO`]) is now. Needs a tokio runtime with time
    /// enabled only to sleep, not to be created.
    pub fn new() -> Self {
        TokioClock { origin: tokio::time::Instant::now() }
    }

    /// The wall clock, for `SyncMachine::new` at the start of a job.
    pub fn wall_now(&self) -> UnixTime {
        wall_now()
    }

    /// The tokio instant that `at` stands for.
    pub fn to_tokio(&self, at: Instant) -> tokio::time::Instant {
        self.origin + at.since_origin()
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        Instant::from_origin(self.origin.elapsed())
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'_, ()> {
        Box::pin(tokio::time::sleep_until(self.to_tokio(deadline)))
    }
}

/// Seconds since the Unix epoch from the system clock (zero if it is set before 1970).
pub fn wall_now() -> UnixTime {
    UnixTime(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
}
