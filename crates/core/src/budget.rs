//! Request budgets: a registry that advertises how many requests it has left
//! ([`crate::ratelimit`]) is not asked for more than that.
//!
//! Per registry, the session keeps the freshest report and how many counted requests
//! ([`counts_against_limit`](crate::ratelimit::counts_against_limit)) it sent since the
//! request that report answered; their difference is what is left now. The registry
//! counts requests as they arrive, so an answer's `remaining` already includes every
//! counted request sent before the one it answers, and none sent after.
//!
//! When a counted request finds nothing left, it and every later counted request to that
//! registry wait until the window resets, instead of hammering into `429`s: until the
//! advertised reset (`RateLimit-Reset`, `t=`), or, when only the window's length is known
//! (Docker Hub's `w=21600`), one whole window from now, when every request it counted has
//! left it. Requests that do not count (manifest `HEAD`s, blobs, listings) go on. The
//! pause is told once, as a [`crate::progress::Event::BudgetPaused`]. An answer with
//! `Retry-After` already says when to come back, and the adaptive windows hold the whole
//! class until then ([`crate::window`]): its fields teach the budget nothing. Once the window
//! has reset, what is left is unknown until the next answer tells: a registry that tells
//! only on its `429`s (a token bucket's) is left to the adaptive windows, and one that tells
//! on every answer (Docker Hub) is known again after one round trip.
//!
//! A registry that advertises no budget is never paused: its `429`s are the adaptive
//! windows' business ([`crate::window`]).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use http::HeaderMap;
use serde::{Deserialize, Serialize};

use crate::ratelimit::Advertised;
use crate::time::Instant;

/// A budget's slot in [`Budgets`], for timers.
pub(crate) type BudgetId = usize;

/// What a registry's budget did over a job, for the summary: only registries that
/// advertised one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetReport {
    /// The registry, as references name it.
    pub registry: String,
    /// Requests its window allows, as last advertised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// The window's length in seconds, as last advertised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_s: Option<u64>,
    /// What was left at the end of the job, by the last answer and the counted requests
    /// sent since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u64>,
    /// Counted requests this job sent (manifest `GET`s), retries included.
    pub counted: u64,
    /// Times the job waited for the window to reset.
    pub pauses: u32,
    /// Time spent waiting, in milliseconds of the driver's clock.
    pub paused_ms: u64,
}

/// Whether a counted request may go now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Admit {
    Go,
    /// It waits in the registry's queue for a pause already under way.
    Wait,
    /// Nothing is left: it waits, and a pause starts that ends at `until`.
    Pause {
        budget: BudgetId,
        until: Instant,
        limit: Option<u64>,
        window: Option<Duration>,
    },
}

#[derive(Debug)]
struct Budget {
    registry: String,
    limit: Option<u64>,
    window: Option<Duration>,
    /// The freshest report: `remaining`, as of when `sent` counted requests had gone.
    known: Option<(u64, u64)>,
    /// When the window resets, if an answer said.
    resets_at: Option<Instant>,
    /// Counted requests sent.
    sent: u64,
    paused_until: Option<Instant>,
    paused_from: Instant,
    /// Calls waiting for the pause to end, in arrival order.
    queue: VecDeque<u64>,
    pauses: u32,
    paused: Duration,
}

impl Budget {
    fn left(&self) -> Option<u64> {
        self.known.map(|(remaining, at)| remaining.saturating_sub(self.sent - at))
    }

    /// Ends a pause whose time has come: the window reset, and what is left is unknown
    /// until an answer tells.
    fn end_pause(&mut self) {
        if let Some(until) = self.paused_until.take() {
            self.paused += until.saturating_since(self.paused_from);
            self.known = None;
            self.resets_at = None;
        }
    }
}

/// Every registry's budget in a session.
#[derive(Debug, Default)]
pub(crate) struct Budgets {
    all: Vec<Budget>,
    index: BTreeMap<String, BudgetId>,
}

impl Budgets {
    fn id(&mut self, registry: &str) -> BudgetId {
        if let Some(id) = self.index.get(registry) {
            return *id;
        }
        let id = self.all.len();
        self.all.push(Budget {
            registry: registry.to_owned(),
            limit: None,
            window: None,
            known: None,
            resets_at: None,
            sent: 0,
            paused_until: None,
            paused_from: Instant::ZERO,
            queue: VecDeque::new(),
            pauses: 0,
            paused: Duration::ZERO,
        });
        self.index.insert(registry.to_owned(), id);
        id
    }

    /// Whether `call`, a request to `registry`, may be sent now; requests that do not
    /// count always may.
    pub(crate) fn admit(&mut self, call: u64, registry: &str, counted: bool, now: Instant) -> Admit {
        if !counted {
            return Admit::Go;
        }
        let Some(&id) = self.index.get(registry) else { return Admit::Go };
        let budget = &mut self.all[id];
        if budget.paused_until.is_some_and(|until| until > now) {
            budget.queue.push_back(call);
            return Admit::Wait;
        }
        // Over, though its timer may not have fired yet: the calls that waited go then.
        budget.end_pause();
        if budget.resets_at.is_some_and(|at| at <= now) {
            // The window the last report spoke of is over.
            budget.known = None;
            budget.resets_at = None;
        }
        if budget.left() != Some(0) {
            return Admit::Go;
        }
        let until = match (budget.resets_at.filter(|at| *at > now), budget.window) {
            (Some(at), _) => at,
            (None, Some(window)) => now + window,
            // Neither a reset nor a window: nothing says when to come back; the 429
            // and its Retry-After will.
            (None, None) => return Admit::Go,
        };
        budget.paused_until = Some(until);
        budget.paused_from = now;
        budget.pauses += 1;
        budget.queue.push_back(call);
        Admit::Pause { budget: id, until, limit: budget.limit, window: budget.window }
    }

    /// A request to `registry` is being sent: counts it when it counts. Returns its
    /// place among the counted requests sent so far, for [`Budgets::answered`].
    pub(crate) fn sent(&mut self, registry: &str, counted: bool) -> u64 {
        let id = self.id(registry);
        let budget = &mut self.all[id];
        if counted {
            budget.sent += 1;
        }
        budget.sent
    }

    /// An answer from `registry` to a request sent at `place`: learns what its rate-limit
    /// fields advertise, if any, unless a fresher answer already told, or the answer has a
    /// `Retry-After` (the windows' business).
    pub(crate) fn answered(
        &mut self,
        registry: &str,
        place: u64,
        headers: &HeaderMap,
        retry_after: Option<Duration>,
        now: Instant,
    ) {
        if retry_after.is_some() {
            return;
        }
        let Some(advertised) = Advertised::from_headers(headers) else { return };
        let id = self.id(registry);
        let budget = &mut self.all[id];
        budget.limit = advertised.limit.or(budget.limit);
        budget.window = advertised.window.or(budget.window);
        if let Some(reset) = advertised.reset {
            budget.resets_at = Some(now + reset);
        }
        if let Some(remaining) = advertised.remaining {
            if budget.known.is_none_or(|(_, at)| place >= at) {
                budget.known = Some((remaining, place));
            }
        }
    }

    /// Budget `id`'s pause has ended: its window reset, and what is left is unknown until
    /// an answer tells. Returns the calls that waited, in order.
    pub(crate) fn resume(&mut self, id: BudgetId, now: Instant) -> Vec<u64> {
        let Some(budget) = self.all.get_mut(id) else { return Vec::new() };
        if budget.paused_until.is_some_and(|until| until > now) {
            return Vec::new();
        }
        budget.end_pause();
        budget.queue.drain(..).collect()
    }

    /// The registries that advertised a budget.
    pub(crate) fn report(&self) -> Vec<BudgetReport> {
        self.index
            .values()
            .map(|id| &self.all[*id])
            .filter(|b| b.limit.is_some() || b.known.is_some())
            .map(|b| BudgetReport {
                registry: b.registry.clone(),
                limit: b.limit,
                window_s: b.window.map(|w| w.as_secs()),
                remaining: b.left(),
                counted: b.sent,
                pauses: b.pauses,
                paused_ms: b.paused.as_millis() as u64,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(remaining: u64) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert("ratelimit-limit", "4;w=60".parse().expect("a header value"));
        map.insert("ratelimit-remaining", format!("{remaining};w=60").parse().expect("a header value"));
        map
    }

    #[test]
    fn counted_requests_spend_the_budget_then_wait_a_window() {
        let now = Instant::ZERO;
        let mut b = Budgets::default();
        let reg = "hub.test";
        // Before any answer, nothing is known: everything goes.
        assert_eq!(b.admit(1, reg, true, now), Admit::Go);
        let first = b.sent(reg, true);
        // Two more counted requests go out before the first answer arrives.
        for call in [2, 3] {
            assert_eq!(b.admit(call, reg, true, now), Admit::Go);
            b.sent(reg, true);
        }
        // The first answer says 3 left after it: the two sent since leave 1.
        b.answered(reg, first, &hub(3), None, now);
        assert_eq!(b.report()[0].remaining, Some(1));
        assert_eq!(b.admit(4, reg, true, now), Admit::Go);
        let last = b.sent(reg, true);
        // A HEAD (not counted) goes whatever is left.
        assert_eq!(b.admit(5, reg, false, now), Admit::Go);
        // Nothing left: the next counted request pauses the registry for a window.
        let until = now + Duration::from_secs(60);
        assert_eq!(
            b.admit(6, reg, true, now),
            Admit::Pause { budget: 0, until, limit: Some(4), window: Some(Duration::from_secs(60)) }
        );
        assert_eq!(b.admit(7, reg, true, now), Admit::Wait);
        // An older answer arriving late does not undo what a fresher one said.
        b.answered(reg, last, &hub(0), None, now);
        b.answered(reg, first, &hub(3), None, now);
        assert_eq!(b.report()[0].remaining, Some(0));
        assert_eq!(b.resume(0, now + Duration::from_secs(59)), Vec::<u64>::new(), "not yet");
        // A call admitted when the pause is over, before its timer fired, goes, and starts
        // no new pause; the timer then lets the waiting calls go.
        assert_eq!(b.admit(9, reg, true, until), Admit::Go);
        assert_eq!(b.resume(0, until), vec![6, 7]);
        assert_eq!(b.admit(8, reg, true, until), Admit::Go);
        let report = &b.report()[0];
        assert_eq!((report.counted, report.pauses, report.paused_ms, report.remaining), (4, 1, 60_000, None));
    }

    #[test]
    fn an_advertised_reset_ends_the_pause_sooner_than_the_window() {
        let now = Instant::ZERO;
        let mut b = Budgets::default();
        let place = b.sent("r.test", true);
        let mut headers = HeaderMap::new();
        headers.insert("ratelimit", "limit=10, remaining=0, reset=7".parse().expect("a header value"));
        headers.insert("ratelimit-policy", "10;w=3600".parse().expect("a header value"));
        b.answered("r.test", place, &headers, None, now);
        let until = now + Duration::from_secs(7);
        assert!(matches!(b.admit(1, "r.test", true, now), Admit::Pause { until: u, .. } if u == until));
    }

    #[test]
    fn a_429_with_retry_after_is_left_to_the_windows() {
        let now = Instant::ZERO;
        let mut b = Budgets::default();
        let place = b.sent("bucket.test", true);
        let mut headers = HeaderMap::new();
        headers.insert("ratelimit-limit", "20;w=1".parse().expect("a header value"));
        headers.insert("ratelimit-remaining", "0".parse().expect("a header value"));
        b.answered("bucket.test", place, &headers, Some(Duration::from_millis(400)), now);
        assert_eq!(b.admit(1, "bucket.test", true, now), Admit::Go);
        assert!(b.report().is_empty());
    }

    #[test]
    fn a_registry_that_says_nothing_is_never_paused() {
        let now = Instant::ZERO;
        let mut b = Budgets::default();
        for call in 0..1000 {
            assert_eq!(b.admit(call, "quiet.test", true, now), Admit::Go);
            let place = b.sent("quiet.test", true);
            b.answered("quiet.test", place, &HeaderMap::new(), None, now);
        }
        assert!(b.report().is_empty());
    }
}
