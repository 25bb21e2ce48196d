//! Time as a parameter.
//!
//! The core never reads a clock. Drivers pass in an [`Instant`] (monotonic, measured from
//! an origin of the driver's choosing) with every call, and once, at the start of a job,
//! the wall clock as a [`UnixTime`]. Wall time later in the job is derived from the
//! monotonic offset, which is all `Retry-After: <HTTP-date>` and token expiry need.

use std::ops::{Add, Sub};
use std::time::Duration;

/// A point on the driver's monotonic clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(Duration);

impl Instant {
    /// The driver's origin (its "zero").
    pub const ZERO: Instant = Instant(Duration::ZERO);

    /// The instant `since_origin` after the driver's origin.
    pub const fn from_origin(since_origin: Duration) -> Self {
        Instant(since_origin)
    }

    /// How far this instant lies from the driver's origin.
    pub const fn since_origin(self) -> Duration {
        self.0
    }

    /// `self - earlier`, or zero when `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        Instant(self.0.saturating_add(rhs))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_since(rhs)
    }
}

/// Wall-clock time in whole seconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UnixTime(pub u64);

/// Maps the monotonic clock onto the wall clock, from one reading of each taken together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallClock {
    at: Instant,
    unix: UnixTime,
}

impl WallClock {
    /// `unix` was the wall-clock time when the monotonic clock read `at`.
    pub fn new(at: Instant, unix: UnixTime) -> Self {
        WallClock { at, unix }
    }

    /// The wall-clock time at `now`.
    pub fn unix_at(&self, now: Instant) -> UnixTime {
        UnixTime(self.unix.0.saturating_add(now.saturating_since(self.at).as_secs()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_clock_follows_the_monotonic_offset() {
        let wall = WallClock::new(Instant::from_origin(Duration::from_secs(10)), UnixTime(1_000));
        let cases = [(10, 1_000), (11, 1_001), (70, 1_060), (5, 1_000)];
        for (mono, unix) in cases {
            let at = Instant::from_origin(Duration::from_secs(mono));
            assert_eq!(wall.unix_at(at), UnixTime(unix), "mono {mono}");
        }
    }

    #[test]
    fn instant_arithmetic_saturates() {
        let a = Instant::from_origin(Duration::from_millis(5));
        let b = a + Duration::from_millis(10);
        assert_eq!(b - a, Duration::from_millis(10));
        assert_eq!(a - b, Duration::ZERO);
    }
}
