//! A registry's rate limiter: a token bucket per action class, as Docker Hub limits
//! manifest pulls. A request that finds the bucket empty is answered `429` with
//! `Retry-After` (whole seconds until a token is back, at least 1) and the
//! `RateLimit-Limit` / `RateLimit-Remaining` headers of the IETF draft.

use std::time::Duration;

use http::{Response, StatusCode};

use crate::time::Instant;
use crate::window::ActionClass;

/// A token bucket for one class of one registry.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimit {
    /// The requests it counts.
    pub class: ActionClass,
    /// Tokens when full: the burst it lets through at once.
    pub burst: u32,
    /// Tokens added per second.
    pub per_second: u32,
    tokens: f64,
    at: Instant,
    /// Requests it refused.
    pub refused: u64,
}

impl RateLimit {
    /// A full bucket at time zero.
    pub fn new(class: ActionClass, burst: u32, per_second: u32) -> Self {
        RateLimit { class, burst, per_second, tokens: f64::from(burst), at: Instant::ZERO, refused: 0 }
    }

    /// Takes a token for a request at `now`; without one, the `429` that refuses it.
    pub fn take(&mut self, now: Instant) -> Option<Response<Vec<u8>>> {
        let rate = f64::from(self.per_second.max(1));
        let elapsed = now.saturating_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(f64::from(self.burst));
        self.at = self.at.max(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return None;
        }
        self.refused += 1;
        let wait = Duration::from_secs_f64((1.0 - self.tokens) / rate);
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let body = r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"rate limit exceeded"}]}"#;
        Some(
            Response::builder()
                .status(StatusCode::TOO_MANY_REQUESTS)
                .header("retry-after", seconds.max(1).to_string())
                .header("ratelimit-limit", format!("{};w=1", self.per_second))
                .header("ratelimit-remaining", "0")
                .header("content-type", "application/json")
                .body(body.as_bytes().to_vec())
                .unwrap_or_default(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_lets_its_burst_through_then_refills_at_its_rate() {
        let mut limit = RateLimit::new(ActionClass::ManifestRead, 2, 4);
        let at = |ms| Instant::from_origin(Duration::from_millis(ms));
        assert!(limit.take(at(0)).is_none());
        assert!(limit.take(at(0)).is_none());
        let refused = limit.take(at(100)).expect("empty until 250 ms");
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.headers()["retry-after"], "1");
        assert_eq!(refused.headers()["ratelimit-remaining"], "0");
        assert!(limit.take(at(300)).is_none());
        assert!(limit.take(at(310)).is_some());
        assert_eq!(limit.refused, 2);
    }
}
