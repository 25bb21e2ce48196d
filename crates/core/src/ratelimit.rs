//! What a registry says of its request budget, from an answer's rate-limit fields.
//!
//! Three spellings are read, all of the IETF draft family "RateLimit header fields for
//! HTTP" (draft-ietf-httpapi-ratelimit-headers):
//! - separate fields, as Docker Hub sends them (drafts up to -06):
//!   `ratelimit-limit: 100;w=21600` and `ratelimit-remaining: 76;w=21600`, optionally
//!   `ratelimit-reset: 30`: "RateLimit-Limit: containing the requests quota in the time
//!   window; RateLimit-Remaining: containing the remaining requests quota in the current
//!   window; RateLimit-Reset: containing the time remaining in the current window,
//!   specified in seconds";
//! - one `RateLimit: limit=100, remaining=50, reset=30` field with
//!   `RateLimit-Policy: 100;w=60` (draft -07);
//! - named quota policies (drafts -08 on): `RateLimit-Policy: "default";q=100;w=60` and
//!   `RateLimit: "default";r=50;t=30`, where `q` is the quota, `w` the window in
//!   seconds, `r` the remaining quota and `t` the seconds until it resets.
//!
//! Where several policies or items are given, the one with the least remaining decides.
//! A field that cannot be read is ignored, as the draft asks ("clients MUST ignore
//! malformed fields"): a registry's odd header never fails a job.
//!
//! Which requests a budget counts is the registry's business; ferry assumes Docker Hub's
//! documented rule for every registry that advertises one: manifest `GET`s count, `HEAD`s
//! and everything else do not ([`counts_against_limit`]). A referrer's manifest, a cosign
//! tag and a tag-schema index are manifests too: reading one counts, and waits with the
//! images' reads when the budget is spent; the referrers API (`/referrers/`) is a listing.

use std::time::Duration;

use http::{HeaderMap, Method};

/// A registry's budget as one answer tells it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Advertised {
    /// Requests the window allows.
    pub limit: Option<u64>,
    /// Requests left in the current window, after this one.
    pub remaining: Option<u64>,
    /// The window's length.
    pub window: Option<Duration>,
    /// Time until the window resets, from the answer.
    pub reset: Option<Duration>,
}

impl Advertised {
    /// The budget an answer's fields advertise; `None` when it carries none that can be
    /// read.
    pub fn from_headers(headers: &HeaderMap) -> Option<Advertised> {
        let field = |name: &str| {
            let values: Vec<&str> = headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
            (!values.is_empty()).then(|| values.join(","))
        };
        let mut found = Advertised::default();
        if let Some(limit) = field("ratelimit-limit") {
            let (number, window) = quota_and_window(&limit);
            found.limit = number;
            found.window = window;
        }
        if let Some(remaining) = field("ratelimit-remaining") {
            let (number, window) = quota_and_window(&remaining);
            found.remaining = number;
            found.window = found.window.or(window);
        }
        if let Some(reset) = field("ratelimit-reset") {
            found.reset = reset.trim().parse().ok().map(Duration::from_secs);
        }
        if let Some(policy) = field("ratelimit-policy") {
            found.merge_policy(&policy);
        }
        if let Some(ratelimit) = field("ratelimit") {
            found.merge_ratelimit(&ratelimit);
        }
        (found != Advertised::default()).then_some(found)
    }

    /// `RateLimit-Policy`: `100;w=60` (draft -07) or `"name";q=100;w=60, ...` (-08 on). The
    /// smallest quota wins.
    fn merge_policy(&mut self, value: &str) {
        for item in value.split(',') {
            let mut parts = item.split(';').map(str::trim);
            let head = parts.next().unwrap_or_default();
            let mut quota = head.parse::<u64>().ok();
            let mut window = None;
            for (key, v) in parts.filter_map(|p| p.split_once('=')) {
                match key.trim() {
                    "q" => quota = v.trim().parse().ok(),
                    "w" => window = v.trim().parse().ok().map(Duration::from_secs),
                    _ => {}
                }
            }
            if let Some(quota) = quota {
                if self.limit.is_none_or(|l| quota < l) {
                    self.limit = Some(quota);
                    self.window = window.or(self.window);
                }
            }
        }
    }

    /// `RateLimit`: `limit=100, remaining=50, reset=30` (draft -07) or
    /// `"name";r=50;t=30, ...` (-08 on). The least remaining wins.
    fn merge_ratelimit(&mut self, value: &str) {
        let named = value.trim_start().starts_with('"');
        if !named {
            for (key, v) in value.split(',').filter_map(|p| p.split_once('=')) {
                let number = v.trim().parse::<u64>().ok();
                match key.trim() {
                    "limit" => self.limit = number.or(self.limit),
                    "remaining" => self.remaining = number.or(self.remaining),
                    "reset" => self.reset = number.map(Duration::from_secs).or(self.reset),
                    _ => {}
                }
            }
            return;
        }
        for item in value.split(',') {
            let (mut remaining, mut reset) = (None, None);
            for (key, v) in item.split(';').filter_map(|p| p.split_once('=')) {
                match key.trim() {
                    "r" => remaining = v.trim().parse::<u64>().ok(),
                    "t" => reset = v.trim().parse().ok().map(Duration::from_secs),
                    _ => {}
                }
            }
            if let Some(r) = remaining {
                if self.remaining.is_none_or(|least| r < least) {
                    self.remaining = Some(r);
                    self.reset = reset.or(self.reset);
                }
            }
        }
    }
}

/// `100;w=21600`: a number and, if given, the window in seconds.
fn quota_and_window(value: &str) -> (Option<u64>, Option<Duration>) {
    // Several values (one per policy) are comma-separated; the smallest is the binding one.
    let mut best: (Option<u64>, Option<Duration>) = (None, None);
    for item in value.split(',') {
        let mut parts = item.split(';').map(str::trim);
        let Some(number) = parts.next().and_then(|n| n.parse::<u64>().ok()) else { continue };
        let window = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim() == "w")
            .and_then(|(_, w)| w.trim().parse().ok())
            .map(Duration::from_secs);
        if best.0.is_none_or(|b| number < b) {
            best = (Some(number), window.or(best.1));
        }
    }
    best
}

/// Whether a request counts against a registry's advertised budget: Docker Hub counts
/// "a pull request is defined as a GET request to the registry manifest URL"; a `HEAD`
/// of a manifest, a blob download and a listing are not counted.
pub fn counts_against_limit(method: &Method, path: &str) -> bool {
    method == Method::GET && path.contains("/manifests/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            let name = http::HeaderName::from_bytes(name.as_bytes()).expect("a valid header name");
            map.append(name, value.parse().expect("a valid header value"));
        }
        map
    }

    fn secs(n: u64) -> Option<Duration> {
        Some(Duration::from_secs(n))
    }

    #[test]
    fn the_three_spellings_table() {
        type Fields = Vec<(&'static str, &'static str)>;
        let cases: Vec<(&str, Fields, Option<Advertised>)> = vec![
            (
                "Docker Hub",
                vec![("ratelimit-limit", "100;w=21600"), ("ratelimit-remaining", "76;w=21600")],
                Some(Advertised { limit: Some(100), remaining: Some(76), window: secs(21600), reset: None }),
            ),
            (
                "separate fields with a reset",
                vec![("RateLimit-Limit", "10"), ("RateLimit-Remaining", "0"), ("RateLimit-Reset", "7")],
                Some(Advertised { limit: Some(10), remaining: Some(0), window: None, reset: secs(7) }),
            ),
            (
                "two policies: the smaller decides",
                vec![("ratelimit-limit", "100;w=21600, 10;w=60"), ("ratelimit-remaining", "5")],
                Some(Advertised { limit: Some(10), remaining: Some(5), window: secs(60), reset: None }),
            ),
            (
                "draft -07",
                vec![("RateLimit", "limit=100, remaining=50, reset=30"), ("RateLimit-Policy", "100;w=60")],
                Some(Advertised { limit: Some(100), remaining: Some(50), window: secs(60), reset: secs(30) }),
            ),
            (
                "draft -08 on, named policies",
                vec![
                    ("RateLimit-Policy", r#""burst";q=100;w=60, "daily";q=1000;w=86400"#),
                    ("RateLimit", r#""burst";r=40;t=20, "daily";r=12;t=3600"#),
                ],
                Some(Advertised {
                    limit: Some(100),
                    remaining: Some(12),
                    window: secs(60),
                    reset: secs(3600),
                }),
            ),
            ("no fields", vec![("content-type", "application/json")], None),
            ("malformed fields are ignored", vec![("ratelimit-limit", "lots"), ("ratelimit", "x=;;")], None),
            (
                "a malformed remaining leaves the limit",
                vec![("ratelimit-limit", "100;w=60"), ("ratelimit-remaining", "-1")],
                Some(Advertised { limit: Some(100), remaining: None, window: secs(60), reset: None }),
            ),
        ];
        for (name, fields, want) in cases {
            assert_eq!(Advertised::from_headers(&headers(&fields)), want, "{name}");
        }
    }

    #[test]
    fn only_manifest_gets_count() {
        let cases = [
            (Method::GET, "/v2/library/alpine/manifests/3.20", true),
            (Method::GET, "/v2/library/alpine/manifests/sha256:ab", true),
            (Method::HEAD, "/v2/library/alpine/manifests/3.20", false),
            (Method::GET, "/v2/library/alpine/blobs/sha256:ab", false),
            (Method::GET, "/v2/library/alpine/tags/list", false),
            (Method::PUT, "/v2/mirror/alpine/manifests/3.20", false),
            // Referrers: their manifests, cosign's tags and the tag schema's indexes are
            // manifest GETs like any other; the referrers API is a listing.
            (Method::GET, "/v2/library/alpine/manifests/sha256-ab.sig", true),
            (Method::GET, "/v2/library/alpine/manifests/sha256-ab", true),
            (Method::GET, "/v2/library/alpine/referrers/sha256:ab", false),
            (Method::PUT, "/v2/mirror/alpine/manifests/sha256-ab", false),
        ];
        for (method, path, want) in cases {
            assert_eq!(counts_against_limit(&method, path), want, "{method} {path}");
        }
    }
}
