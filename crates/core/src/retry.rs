//! When to try again, and how long to wait.
//!
//! The schedule is a pure function of the attempt number and a seeded PRNG ("full
//! jitter": a uniform delay in `[0, min(cap, base * 2^attempt)]`), so a simulation with
//! the same seed sees the same schedule. A server's `Retry-After` wins over the schedule.

use std::time::Duration;

use http::StatusCode;

use crate::time::UnixTime;

/// How often and how patiently to retry transient failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (image-syncer's `--retries`).
    pub retries: u32,
    /// The first backoff ceiling.
    pub base: Duration,
    /// No backoff exceeds this.
    pub cap: Duration,
    /// A `Retry-After` longer than this is not waited for: the failure is reported instead.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 2,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The backoff before retry number `retry` (0 for the first retry), with full jitter.
    pub fn backoff(&self, retry: u32, rng: &mut Rng) -> Duration {
        let ceiling = self.base.saturating_mul(1u32.checked_shl(retry).unwrap_or(u32::MAX)).min(self.cap);
        let ceiling_ms = ceiling.as_millis() as u64;
        Duration::from_millis(rng.below(ceiling_ms + 1))
    }

    /// The wait before retry number `retry` after `failure`, or `None` when the failure
    /// must not be retried (permanent, out of attempts, or a `Retry-After` beyond patience).
    pub fn next_delay(&self, retry: u32, failure: &FailureClass, rng: &mut Rng) -> Option<Duration> {
        match failure {
            FailureClass::Permanent => None,
            _ if retry >= self.retries => None,
            FailureClass::Transient { retry_after: Some(wait) } => {
                (*wait <= self.max_retry_after).then_some(*wait)
            }
            FailureClass::Transient { retry_after: None } => Some(self.backoff(retry, rng)),
        }
    }
}

/// Whether a failure is worth another attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// 5xx, 408, 429, connection errors, timeouts, a body cut short.
    Transient {
        /// The server's `Retry-After` on a 429 or 503 (RFC 9110, 10.2.3): wait at least
        /// this long, whatever the backoff says.
        retry_after: Option<Duration>,
    },
    /// Any other 4xx, a digest mismatch, a manifest that cannot be parsed.
    Permanent,
}

impl FailureClass {
    /// Whether another attempt may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, FailureClass::Transient { .. })
    }

    /// Classifies an HTTP status; `retry_after` is the parsed header, honoured on 429 and 503.
    pub fn of_status(status: StatusCode, retry_after: Option<Duration>) -> FailureClass {
        match status.as_u16() {
            429 | 503 => FailureClass::Transient { retry_after },
            408 | 500..=599 => FailureClass::Transient { retry_after: None },
            _ => FailureClass::Permanent,
        }
    }
}

/// Parses a `Retry-After` value: RFC 9110 §10.2.3, `Retry-After = HTTP-date / delay-seconds`.
/// A date in the past means "now" (zero). `now` is the wall clock at the time of the answer.
pub fn parse_retry_after(value: &str, now: UnixTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = parse_http_date(value)?;
    Some(Duration::from_secs(at.0.saturating_sub(now.0)))
}

/// Parses the preferred HTTP-date form, IMF-fixdate (RFC 9110 §5.6.7):
/// `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn parse_http_date(value: &str) -> Option<UnixTime> {
    let rest = value.get(5..)?; // "Sun, "
    let mut parts = rest.split(' ');
    let day: u64 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: u64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if parts.next()? != "GMT" || parts.next().is_some() || hms.next().is_some() {
        return None;
    }
    if !(1..=31).contains(&day) || year < 1970 || h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some(UnixTime(days_from_civil(year, month, day) * 86_400 + h * 3_600 + m * 60 + s))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A small deterministic PRNG (SplitMix64) for jitter: seeded by the driver, so a
/// simulation replays the same schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose whole sequence follows from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next number of the sequence.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform value in `[0, bound)`; 0 when `bound` is 0.
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        ((self.next_u64() as u128 * bound as u128) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_table() {
        let ra = Some(Duration::from_secs(3));
        let cases = [
            (500, ra, FailureClass::Transient { retry_after: None }),
            (502, None, FailureClass::Transient { retry_after: None }),
            (503, ra, FailureClass::Transient { retry_after: ra }),
            (429, ra, FailureClass::Transient { retry_after: ra }),
            (408, None, FailureClass::Transient { retry_after: None }),
            (404, None, FailureClass::Permanent),
            (401, None, FailureClass::Permanent),
            (400, None, FailureClass::Permanent),
            (416, None, FailureClass::Permanent),
        ];
        for (status, retry_after, want) in cases {
            let got = FailureClass::of_status(StatusCode::from_u16(status).unwrap(), retry_after);
            assert_eq!(got, want, "{status}");
        }
    }

    #[test]
    fn backoff_is_seeded_full_jitter_under_the_cap() {
        let policy = RetryPolicy { retries: 10, ..RetryPolicy::default() };
        let schedule = |seed| {
            let mut rng = Rng::new(seed);
            (0..8).map(|n| policy.backoff(n, &mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(schedule(7), schedule(7));
        assert_ne!(schedule(7), schedule(8));
        for (n, d) in schedule(7).into_iter().enumerate() {
            let ceiling = (200u64 << n).min(10_000);
            assert!(d.as_millis() as u64 <= ceiling, "retry {n}: {d:?} > {ceiling}ms");
        }
    }

    #[test]
    fn next_delay_table() {
        let policy = RetryPolicy { retries: 2, ..RetryPolicy::default() };
        let transient = FailureClass::Transient { retry_after: None };
        let after = |s| FailureClass::Transient { retry_after: Some(Duration::from_secs(s)) };
        let mut rng = Rng::new(1);
        assert!(policy.next_delay(0, &transient, &mut rng).is_some());
        assert!(policy.next_delay(1, &transient, &mut rng).is_some());
        assert_eq!(policy.next_delay(2, &transient, &mut rng), None);
        assert_eq!(policy.next_delay(0, &FailureClass::Permanent, &mut rng), None);
        assert_eq!(policy.next_delay(0, &after(7), &mut rng), Some(Duration::from_secs(7)));
        assert_eq!(policy.next_delay(0, &after(301), &mut rng), None);
    }

    #[test]
    fn retry_after_table() {
        let now = UnixTime(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        let cases = [
            ("120", Some(120)),
            (" 5 ", Some(5)),
            ("Sun, 06 Nov 1994 08:49:37 GMT", Some(0)),
            ("Sun, 06 Nov 1994 08:50:07 GMT", Some(30)),
            ("Sat, 05 Nov 1994 08:49:37 GMT", Some(0)),
            ("Sun, 06 Nov 1994 08:49:37 UTC", None),
            ("Sunday, 06-Nov-94 08:49:37 GMT", None),
            ("-1", None),
            ("", None),
            ("1.5", None),
            ("Sun, 06 Foo 1994 08:49:37 GMT", None),
            ("Sun, 32 Nov 1994 08:49:37 GMT", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_retry_after(input, now), want.map(Duration::from_secs), "{input:?}");
        }
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(UnixTime(0)));
        assert_eq!(parse_http_date("Tue, 29 Feb 2028 12:00:00 GMT"), Some(UnixTime(1_835_438_400)));
    }
}
