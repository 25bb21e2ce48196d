//! A registry's pull quota, as Docker Hub keeps one: so many manifest `GET`s per window,
//! told on every manifest answer as `ratelimit-limit: 100;w=21600` and
//! `ratelimit-remaining: 76;w=21600`; `HEAD`s are answered with the fields but not
//! counted. A `GET` beyond the quota is answered `429` with the fields, no `Retry-After`.
//! Windows are fixed, from time zero, and the fields never say when one resets.

use std::time::Duration;

use http::{HeaderValue, Method, Response, StatusCode};

use crate::ratelimit::counts_against_limit;
use crate::time::Instant;

/// Header fields to put on an answer, by name.
pub type Fields = Vec<(&'static str, String)>;

/// A pull quota for one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    /// Manifest `GET`s per window.
    pub limit: u64,
    /// The window's length.
    pub window: Duration,
    /// Counted in the current window.
    used: u64,
    /// The current window's number, from 0.
    current: u64,
    /// `GET`s refused.
    pub refused: u64,
}

impl Quota {
    /// `limit` manifest `GET`s per `window`, with `used` of the first window spent already
    /// (by other clients, as a shared IP's Docker Hub quota is).
    pub fn new(limit: u64, window: Duration, used: u64) -> Self {
        Quota { limit, window, used, current: 0, refused: 0 }
    }

    /// Whether the quota has a say about this request: manifest reads only.
    pub fn covers(path: &str) -> bool {
        path.contains("/manifests/")
    }

    /// Counts a manifest read at `now`: the `429` that refuses it when the quota is spent,
    /// else the fields to put on the registry's answer.
    pub fn take(
        &mut self,
        method: &Method,
        path: &str,
        now: Instant,
    ) -> Result<Fields, Box<Response<Vec<u8>>>> {
        let window = now.saturating_since(Instant::ZERO).as_nanos() / self.window.as_nanos().max(1);
        let window = window as u64;
        if window != self.current {
            self.current = window;
            self.used = 0;
        }
        let counted = counts_against_limit(method, path);
        if counted && self.used >= self.limit {
            self.refused += 1;
            let body = r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit."}]}"#;
            let mut response = Response::new(body.as_bytes().to_vec());
            *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            for (name, value) in self.fields() {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    response.headers_mut().insert(name, value);
                }
            }
            return Err(Box::new(response));
        }
        if counted {
            self.used += 1;
        }
        Ok(self.fields())
    }

    fn fields(&self) -> Fields {
        let w = self.window.as_secs();
        vec![
            ("ratelimit-limit", format!("{};w={w}", self.limit)),
            ("ratelimit-remaining", format!("{};w={w}", self.limit - self.used.min(self.limit))),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gets_spend_the_quota_heads_do_not_and_a_new_window_refills_it() {
        let mut quota = Quota::new(2, Duration::from_secs(60), 1);
        let at = |s| Instant::from_origin(Duration::from_secs(s));
        let path = "/v2/library/app/manifests/v1";
        let head = quota.take(&Method::HEAD, path, at(0)).expect("HEADs are not counted");
        assert_eq!(head[1], ("ratelimit-remaining", "1;w=60".to_owned()));
        let get = quota.take(&Method::GET, path, at(1)).expect("one left");
        assert_eq!(get[0], ("ratelimit-limit", "2;w=60".to_owned()));
        assert_eq!(get[1], ("ratelimit-remaining", "0;w=60".to_owned()));
        let refused = quota.take(&Method::GET, path, at(2)).expect_err("spent");
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.headers()["ratelimit-remaining"], "0;w=60");
        assert!(quota.take(&Method::HEAD, path, at(3)).is_ok());
        let fresh = quota.take(&Method::GET, path, at(60)).expect("a new window");
        assert_eq!(fresh[1].1, "1;w=60");
        assert_eq!(quota.refused, 1);
    }
}
