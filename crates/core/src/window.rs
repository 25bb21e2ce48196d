//! Adaptive concurrency: one AIMD window per registry and action class.
//!
//! A registry that rate-limits answers `429 Too Many Requests` (or `503`), usually with
//! `Retry-After`. Retrying alone keeps the pressure on, so every request class of every
//! registry has a window, as TCP's congestion window (RFC 5681):
//! - it opens unbounded: a job that is never pushed back runs exactly as without it;
//! - the first `429`/`503` closes it to half the requests then in flight (at least 1),
//!   and each later one halves it again, at most once per round trip: an answer to a
//!   request sent before the last decrease does not decrease it again;
//! - a `Retry-After` also holds the whole class back until then, not only the request
//!   that carried it, since the limiter counts the class;
//! - answers that are not pushback grow it by one per second (of the injected clock)
//!   since its last change, up to a ceiling (the larger of `proc` and `max_transfers`).
//!   TCP grows by one per round trip; a rate limiter's bucket answers on the scale of
//!   seconds, long after a round trip, so growing per round trip overshoots it again at
//!   once. After a `Retry-After`, growth counts from the end of the pause.
//!
//! Calls beyond the window wait in a queue, first come first served. The decrease happens
//! when the pushback arrives, before the retry is scheduled, so the retry waits its turn
//! in the smaller window rather than adding to a storm.
//!
//! Token fetches have no window: the session already makes one fetch per scope set at a
//! time, so their concurrency is bounded by the scopes a job needs.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use http::Method;
use serde::{Deserialize, Serialize};

use crate::time::Instant;

/// How long a window holds its size before growing by one.
const GROWTH: Duration = Duration::from_secs(1);

/// What a request does, as rate limiters count it: registries limit manifest pulls
/// (Docker Hub counts manifest GETs), blob reads, writes, mounts and listings apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionClass {
    /// `GET`/`HEAD` of a manifest.
    ManifestRead,
    /// `GET`/`HEAD` of a blob; the source side of a transfer.
    BlobRead,
    /// Blob uploads (the destination side of a transfer) and manifest pushes.
    Upload,
    /// Cross-repository mounts (`POST .../blobs/uploads/?mount=`).
    Mount,
    /// Tag lists, the catalog, referrers, and any other read.
    Listing,
}

impl ActionClass {
    /// The class of a small request, from its method and URL path and query.
    pub fn of_request(method: &Method, path: &str, query: Option<&str>) -> ActionClass {
        let read = method == Method::GET || method == Method::HEAD;
        if path.contains("/blobs/uploads") {
            let mount = query.is_some_and(|q| q.split('&').any(|p| p.starts_with("mount=")));
            return if mount { ActionClass::Mount } else { ActionClass::Upload };
        }
        match (path.contains("/manifests/"), path.contains("/blobs/"), read) {
            (true, _, true) => ActionClass::ManifestRead,
            (_, true, true) => ActionClass::BlobRead,
            (true, _, false) | (_, true, false) => ActionClass::Upload,
            _ => ActionClass::Listing,
        }
    }
}

/// What one window did over a job, for the summary: only windows that were pushed back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowReport {
    /// The registry, as references name it.
    pub registry: String,
    /// The action class.
    pub class: ActionClass,
    /// `429` and `503` answers seen.
    pub pushbacks: u64,
    /// The smallest window reached; `None` when adaptation was off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smallest_window: Option<usize>,
}

/// A registry and an action class.
pub(crate) type WindowKey = (String, ActionClass);

/// A window's slot in [`Windows`], for timers.
pub(crate) type WindowId = usize;

#[derive(Debug)]
struct Window {
    key: WindowKey,
    /// `None` while open (never pushed back, or adaptation off).
    limit: Option<f64>,
    in_flight: usize,
    /// Bumped by every decrease; a request remembers the epoch it was sent in.
    epoch: u64,
    /// When the limit last changed: it grows by one per [`GROWTH`] of successes.
    changed_at: Instant,
    /// Held back until then by a `Retry-After`.
    paused_until: Option<Instant>,
    /// Calls waiting for room, in arrival order.
    queue: VecDeque<u64>,
    pushbacks: u64,
    smallest: Option<usize>,
}

impl Window {
    fn has_room(&self, now: Instant) -> bool {
        if self.paused_until.is_some_and(|at| at > now) {
            return false;
        }
        self.limit.is_none_or(|limit| (self.in_flight as f64) < limit.floor())
    }
}

/// A window's decrease, to be told as an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shrunk {
    pub registry: String,
    pub class: ActionClass,
    pub window: usize,
}

/// Every window of a session.
#[derive(Debug)]
pub(crate) struct Windows {
    adaptive: bool,
    ceiling: usize,
    /// A new window's limit: `None` opens it until a pushback.
    start: Option<f64>,
    all: Vec<Window>,
    index: BTreeMap<WindowKey, WindowId>,
}

impl Windows {
    /// Windows that adapt (or, when `adaptive` is false, only count pushbacks), growing
    /// to at most `ceiling`.
    pub(crate) fn new(adaptive: bool, ceiling: usize) -> Self {
        Windows { adaptive, ceiling: ceiling.max(1), start: None, all: Vec::new(), index: BTreeMap::new() }
    }

    /// Adapting windows that start at `ceiling` rather than open, for a machine that
    /// submits all its requests at once.
    pub(crate) fn bounded(ceiling: usize) -> Self {
        let ceiling = ceiling.max(1);
        Windows { start: Some(ceiling as f64), ..Windows::new(true, ceiling) }
    }

    fn id(&mut self, key: &WindowKey) -> WindowId {
        if let Some(id) = self.index.get(key) {
            return *id;
        }
        let id = self.all.len();
        self.all.push(Window {
            key: key.clone(),
            limit: self.start,
            in_flight: 0,
            epoch: 0,
            changed_at: Instant::ZERO,
            paused_until: None,
            queue: VecDeque::new(),
            pushbacks: 0,
            smallest: None,
        });
        self.index.insert(key.clone(), id);
        id
    }

    /// Whether `call` may be sent now on every one of `keys`. If not, it waits in the
    /// first full window's queue. A call not taken from a queue also waits behind
    /// calls already queued.
    pub(crate) fn admit(&mut self, call: u64, keys: &[WindowKey], from_queue: bool, now: Instant) -> bool {
        for key in keys {
            let id = self.id(key);
            let window = &mut self.all[id];
            if !window.has_room(now) || (!from_queue && !window.queue.is_empty()) {
                if !window.queue.contains(&call) {
                    window.queue.push_back(call);
                }
                return false;
            }
        }
        true
    }

    /// Counts a sent request on each window; returns the epochs it was sent in.
    pub(crate) fn acquire(&mut self, keys: &[WindowKey]) -> Vec<u64> {
        keys.iter()
            .map(|key| {
                let id = self.id(key);
                self.all[id].in_flight += 1;
                self.all[id].epoch
            })
            .collect()
    }

    /// A request on `key` sent in `epoch` was answered: a pushback when `pushback`, with
    /// the answer's `Retry-After`; otherwise a success. Its slot is freed. Returns the
    /// decrease to tell, if the window shrank, and the end of a new pause, if any.
    pub(crate) fn answered(
        &mut self,
        key: &WindowKey,
        epoch: u64,
        pushback: bool,
        retry_after: Option<Duration>,
        now: Instant,
    ) -> (Option<Shrunk>, Option<(Instant, WindowId)>) {
        let id = self.id(key);
        let (adaptive, ceiling) = (self.adaptive, self.ceiling as f64);
        let window = &mut self.all[id];
        let in_flight = window.in_flight;
        window.in_flight = window.in_flight.saturating_sub(1);
        if !pushback {
            if let Some(limit) = window.limit.as_mut() {
                if now >= window.changed_at + GROWTH {
                    *limit = (*limit + 1.0).min(ceiling);
                    window.changed_at = now;
                }
            }
            return (None, None);
        }
        window.pushbacks += 1;
        if !adaptive {
            return (None, None);
        }
        let mut shrunk = None;
        if epoch == window.epoch {
            let before = window.limit.map(|l| l.floor() as usize);
            let halved = match window.limit {
                Some(limit) => (limit / 2.0).floor(),
                None => (in_flight / 2) as f64,
            };
            let limit = halved.clamp(1.0, ceiling);
            window.limit = Some(limit);
            window.epoch += 1;
            window.changed_at = now + retry_after.unwrap_or_default();
            let size = limit as usize;
            window.smallest = Some(window.smallest.map_or(size, |s| s.min(size)));
            if before != Some(size) {
                shrunk = Some(Shrunk { registry: key.0.clone(), class: key.1, window: size });
            }
        }
        let pause =
            retry_after.map(|wait| now + wait).filter(|at| window.paused_until.is_none_or(|p| *at > p));
        if let Some(at) = pause {
            window.paused_until = Some(at);
        }
        (shrunk, pause.map(|at| (at, id)))
    }

    /// Frees the slot of a request that ended without an answer to learn from (a broken
    /// connection, a failure on the other side of a transfer).
    pub(crate) fn release(&mut self, key: &WindowKey) {
        let id = self.id(key);
        self.all[id].in_flight = self.all[id].in_flight.saturating_sub(1);
    }

    /// The next call to try from the windows of `keys` that have room now, if any.
    pub(crate) fn next_waiting(&mut self, keys: &[WindowKey], now: Instant) -> Option<u64> {
        keys.iter().find_map(|key| {
            let id = self.index.get(key).copied()?;
            let window = &mut self.all[id];
            if window.has_room(now) {
                window.queue.pop_front()
            } else {
                None
            }
        })
    }

    /// The key of window `id`, for a timer that ends its pause.
    pub(crate) fn key(&self, id: WindowId) -> Option<WindowKey> {
        self.all.get(id).map(|w| w.key.clone())
    }

    /// The windows that were pushed back, by registry and class.
    pub(crate) fn report(&self) -> Vec<WindowReport> {
        self.index
            .values()
            .map(|id| &self.all[*id])
            .filter(|w| w.pushbacks > 0)
            .map(|w| WindowReport {
                registry: w.key.0.clone(),
                class: w.key.1,
                pushbacks: w.pushbacks,
                smallest_window: w.smallest,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_table() {
        let cases = [
            (Method::HEAD, "/v2/app/manifests/v1", None, ActionClass::ManifestRead),
            (Method::GET, "/v2/app/manifests/sha256:ab", None, ActionClass::ManifestRead),
            (Method::PUT, "/v2/app/manifests/v1", None, ActionClass::Upload),
            (Method::HEAD, "/v2/app/blobs/sha256:ab", None, ActionClass::BlobRead),
            (Method::POST, "/v2/app/blobs/uploads/", None, ActionClass::Upload),
            (Method::POST, "/v2/app/blobs/uploads/", Some("mount=sha256:ab&from=lib"), ActionClass::Mount),
            (Method::PATCH, "/v2/app/blobs/uploads/u1", Some("_state=x"), ActionClass::Upload),
            (Method::GET, "/v2/app/tags/list", Some("n=100"), ActionClass::Listing),
            (Method::GET, "/v2/_catalog", None, ActionClass::Listing),
            (Method::GET, "/v2/app/referrers/sha256:ab", None, ActionClass::Listing),
        ];
        for (method, path, query, want) in cases {
            assert_eq!(ActionClass::of_request(&method, path, query), want, "{method} {path}");
        }
    }

    fn key() -> WindowKey {
        ("src.test".to_owned(), ActionClass::ManifestRead)
    }

    #[test]
    fn a_pushback_halves_once_per_round_trip_and_successes_grow_it_back() {
        let now = Instant::ZERO;
        let mut w = Windows::new(true, 8);
        let keys = [key()];
        let epochs: Vec<u64> = (0..6)
            .map(|call| {
                assert!(w.admit(call, &keys, false, now));
                w.acquire(&keys)[0]
            })
            .collect();
        // Six in flight; the first 429 closes the window to 3, the others sent in the
        // same epoch leave it there.
        let (shrunk, _) = w.answered(&key(), epochs[0], true, None, now);
        assert_eq!(shrunk.map(|s| s.window), Some(3));
        assert_eq!(w.answered(&key(), epochs[1], true, None, now), (None, None));
        // Four still in flight: a new call waits, in order.
        assert!(!w.admit(10, &keys, false, now));
        assert!(!w.admit(11, &keys, false, now));
        for e in &epochs[2..4] {
            w.answered(&key(), *e, false, None, now);
        }
        assert_eq!(w.next_waiting(&keys, now), Some(10));
        w.acquire(&keys);
        assert_eq!(w.next_waiting(&keys, now), None, "three in flight again");
        // A success a second after the decrease grows it to 4: 11 goes, with two others
        // in flight.
        let later = now + GROWTH;
        w.answered(&key(), epochs[4], false, None, later);
        assert!(!w.admit(12, &keys, false, later), "12 waits behind 11");
        assert_eq!(w.next_waiting(&keys, later), Some(11));
        w.acquire(&keys);
        assert_eq!(w.next_waiting(&keys, later), Some(12));
        w.acquire(&keys);
        // Sent after the decrease, a 429 halves again, and pauses the class.
        let epoch = w.acquire(&keys)[0];
        let wait = Duration::from_secs(2);
        let (shrunk, pause) = w.answered(&key(), epoch, true, Some(wait), later);
        assert_eq!(shrunk.map(|s| s.window), Some(2));
        assert_eq!(pause, Some((later + wait, 0)));
        w.answered(&key(), epochs[5], false, None, later);
        assert!(!w.admit(13, &keys, false, later + (wait - Duration::from_millis(1))), "paused");
        assert_eq!(w.next_waiting(&keys, later + wait), None, "three in flight, in a window of 2");
        let report = w.report();
        assert_eq!(report[0].pushbacks, 3);
        assert_eq!(report[0].smallest_window, Some(2));
    }

    #[test]
    fn without_adaptation_pushbacks_are_only_counted() {
        let now = Instant::ZERO;
        let mut w = Windows::new(false, 8);
        let keys = [key()];
        for call in 0..20 {
            assert!(w.admit(call, &keys, false, now));
            let epoch = w.acquire(&keys)[0];
            assert_eq!(w.answered(&key(), epoch, true, Some(Duration::from_secs(1)), now), (None, None));
        }
        assert_eq!(w.report()[0].pushbacks, 20);
        assert_eq!(w.report()[0].smallest_window, None);
    }
}
