//! The request engine under every machine: authorisation and retries.
//!
//! A machine submits a [`Call`] (a request or a transfer, plus the registries and scopes
//! it must be authorised for) with a purpose of its own, and later receives the outcome
//! under that purpose. In between, the session:
//! - learns each registry's challenge from its first `401` (RFC 7235), then authorises
//!   calls up front: Basic from the credential store, or a Bearer token fetched once per
//!   scope set and cached until it expires on the injected clock;
//! - retries transient failures (5xx, 408, 429, broken connections) on the seeded
//!   backoff schedule, honouring `Retry-After`;
//! - re-authorises once after a `401` and then reports the credentials as rejected,
//!   so a wrong password never causes a retry storm;
//! - sends each call within the AIMD windows of its registries and action classes
//!   ([`crate::window`]), queueing it in order when they are full;
//! - keeps each registry's advertised request budget ([`crate::budget`]): a request that
//!   counts against it waits for the window to reset rather than run into a `429`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use http::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response, StatusCode};

use crate::auth::{self, Challenge, CredentialStore, Scheme, Scope, Token};
use crate::budget::{Admit, BudgetId, BudgetReport, Budgets};
use crate::error::{Error, ErrorKind};
use crate::machine::{Completion, Misuse};
use crate::progress::{Event, RequestClass, RequestCount};
use crate::ratelimit::counts_against_limit;
use crate::retry::{parse_retry_after, FailureClass, RetryPolicy, Rng};
use crate::time::{Instant, WallClock};
use crate::transport::{Action, ActionId, Side, Transfer, TransportError};
use crate::window::{ActionClass, WindowId, WindowKey, Windows};

/// Who must authorise a call: a registry, the repository that picks the credential,
/// and the token scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuthNeed {
    pub registry: String,
    pub repository: String,
    pub scopes: Vec<Scope>,
}

/// One logical request.
#[derive(Debug, Clone)]
pub(crate) enum Call {
    /// A small request, authorised for `auth`.
    Send { request: Request<Vec<u8>>, auth: AuthNeed },
    /// A blob move, authorised for the source and the destination separately.
    Transfer { transfer: Box<Transfer>, source: AuthNeed, destination: AuthNeed },
}

impl Call {
    fn needs(&self) -> Vec<&AuthNeed> {
        match self {
            Call::Send { auth, .. } => vec![auth],
            Call::Transfer { source, destination, .. } => vec![source, destination],
        }
    }

    /// The authorisation that the registry on `side` of this call checks.
    fn need_on(&self, side: Side) -> &AuthNeed {
        match (self, side) {
            (Call::Send { auth, .. }, _) => auth,
            (Call::Transfer { source, .. }, Side::Source) => source,
            (Call::Transfer { destination, .. }, _) => destination,
        }
    }

    /// The windows the call is sent within: its registry's for its class; for a transfer,
    /// the source's blob reads and the destination's uploads. Of a share group's members
    /// only the leader reads the source (see [`crate::transport::Share`]).
    fn windows(&self) -> Vec<WindowKey> {
        match self {
            Call::Send { request, auth } => {
                let uri = request.uri();
                let class = ActionClass::of_request(request.method(), uri.path(), uri.query());
                vec![(auth.registry.clone(), class)]
            }
            Call::Transfer { transfer, source, destination } => {
                let upload = (destination.registry.clone(), ActionClass::Upload);
                match transfer.share {
                    Some(share) if !share.leader => vec![upload],
                    _ => vec![(source.registry.clone(), ActionClass::BlobRead), upload],
                }
            }
        }
    }

    /// The registry a small request goes to, or a transfer reads from; and whether the
    /// request counts against that registry's budget.
    pub(crate) fn budget_key(&self) -> (&str, bool) {
        match self {
            Call::Send { request, auth } => {
                (&auth.registry, counts_against_limit(request.method(), request.uri().path()))
            }
            Call::Transfer { source, .. } => (&source.registry, false),
        }
    }

    /// `GET https://host/v2/...`, for logs and retry events. Never carries credentials.
    fn describe(&self) -> String {
        match self {
            Call::Send { request, .. } => format!("{} {}", request.method(), request.uri()),
            Call::Transfer { transfer, .. } => {
                format!("blob {} from {}", transfer.digest, transfer.source.uri())
            }
        }
    }
}

/// What came of a call.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The answer, whatever its status, once it was neither transient nor an auth retry.
    Response(Response<Vec<u8>>),
    Transferred,
    Failed(CallError),
}

/// A call that could not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CallError {
    pub error: Error,
    /// Whether a transport failure ended the call (its message names the URL), rather
    /// than an answer or the authorisation.
    pub from_transport: bool,
}

impl CallError {
    fn new(kind: ErrorKind, message: String) -> Self {
        CallError { error: Error::new(kind, message), from_transport: false }
    }
}

type CallId = u64;

struct CallState<P> {
    purpose: P,
    call: Call,
    retries: u32,
    reauthorised: bool,
    /// The `Authorization` values the last attempt carried, one per need.
    sent_with: Vec<Option<String>>,
    /// The windows the attempt in flight holds a slot of, with the epochs it was sent in.
    held: Vec<(WindowKey, u64)>,
    /// The attempt's place among its registry's counted requests ([`Budgets::sent`]).
    place: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Pending {
    Call(CallId),
    Token(u64),
    /// A window's `Retry-After` pause ends: its queue may move.
    Window(WindowId),
    /// A registry's budget window has reset: the counted requests that waited may go.
    Budget(BudgetId),
}

struct TokenFetch {
    registry: String,
    repository: String,
    scopes: Vec<Scope>,
    waiting: Vec<CallId>,
    retries: u32,
}

#[derive(Clone)]
struct CachedToken {
    registry: String,
    scopes: Vec<Scope>,
    token: Token,
}

/// What a session learned about authorising its registries: their challenges and the
/// tokens it holds, to hand to the next session against the same registries.
#[derive(Clone, Default)]
pub(crate) struct Learned {
    challenges: BTreeMap<String, Challenge>,
    tokens: Vec<CachedToken>,
}

/// Counters the job summary reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SessionStats {
    pub requests: u64,
    pub transfers: u64,
    pub retries: u64,
    /// Answered and failed small requests by registry, class and status (`None`: no answer).
    answers: BTreeMap<(String, RequestClass, Option<u16>), u64>,
}

impl SessionStats {
    /// The tally of small requests, in a stable order.
    pub(crate) fn request_counts(&self) -> Vec<RequestCount> {
        self.answers
            .iter()
            .map(|((registry, class, status), count)| RequestCount {
                registry: registry.clone(),
                class: *class,
                status: *status,
                count: *count,
            })
            .collect()
    }

    fn count(&mut self, registry: &str, class: RequestClass, completion: &Completion) {
        let status = match completion {
            Completion::Response(response) => Some(response.status().as_u16()),
            Completion::Failure(TransportError::Status { status, .. }) => Some(*status),
            Completion::Failure(_) | Completion::Transfer(_) => None,
        };
        *self.answers.entry((registry.to_owned(), class, status)).or_default() += 1;
    }
}

pub(crate) struct Session<P> {
    credentials: CredentialStore,
    challenges: BTreeMap<String, Challenge>,
    tokens: Vec<CachedToken>,
    fetches: BTreeMap<u64, TokenFetch>,
    calls: BTreeMap<CallId, CallState<P>>,
    in_flight: BTreeMap<ActionId, Pending>,
    timers: BTreeSet<(Instant, Pending)>,
    outbox: VecDeque<Action>,
    done: VecDeque<(P, Outcome)>,
    events: VecDeque<Event>,
    policy: RetryPolicy,
    rng: Rng,
    wall: WallClock,
    windows: Windows,
    budgets: Budgets,
    next_id: u64,
    pub stats: SessionStats,
}

impl<P> Session<P> {
    pub(crate) fn new(credentials: CredentialStore, policy: RetryPolicy, seed: u64, wall: WallClock) -> Self {
        Session {
            credentials,
            challenges: BTreeMap::new(),
            tokens: Vec::new(),
            fetches: BTreeMap::new(),
            calls: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            timers: BTreeSet::new(),
            outbox: VecDeque::new(),
            done: VecDeque::new(),
            events: VecDeque::new(),
            policy,
            rng: Rng::new(seed),
            wall,
            windows: Windows::new(true, DEFAULT_CEILING),
            budgets: Budgets::default(),
            next_id: 0,
            stats: SessionStats::default(),
        }
    }

    /// What this session learned about authorisation, for a later session.
    pub(crate) fn learned(&self) -> Learned {
        Learned { challenges: self.challenges.clone(), tokens: self.tokens.clone() }
    }

    /// Starts from what an earlier session learned: its challenges are known, so calls
    /// are authorised up front, and its tokens are used while they are fresh.
    pub(crate) fn learn(&mut self, learned: Learned) {
        self.challenges.extend(learned.challenges);
        self.tokens.extend(learned.tokens);
    }

    /// Whether the windows adapt to pushback (they always count it), and the most each
    /// may grow to.
    pub(crate) fn set_windows(&mut self, adaptive: bool, ceiling: usize) {
        self.windows = Windows::new(adaptive, ceiling);
    }

    /// Windows that start at `ceiling` requests in flight per registry and class.
    pub(crate) fn bound_windows(&mut self, ceiling: usize) {
        self.windows = Windows::bounded(ceiling);
    }

    /// The windows that were pushed back, for the summary.
    pub(crate) fn window_report(&self) -> Vec<crate::window::WindowReport> {
        self.windows.report()
    }

    /// The registries that advertised a request budget, for the summary.
    pub(crate) fn budget_report(&self) -> Vec<BudgetReport> {
        self.budgets.report()
    }

    fn next(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Starts a call; its outcome comes out of [`Session::poll_done`] under `purpose`.
    pub(crate) fn submit(&mut self, purpose: P, call: Call, now: Instant) {
        let id = self.next();
        self.calls.insert(
            id,
            CallState {
                purpose,
                call,
                retries: 0,
                reauthorised: false,
                sent_with: Vec::new(),
                held: Vec::new(),
                place: 0,
            },
        );
        self.dispatch(id, now);
    }

    /// Queues an event of the machine's own, after those the session already queued.
    pub(crate) fn emit(&mut self, event: Event) {
        self.events.push_back(event);
    }

    pub(crate) fn poll_action(&mut self) -> Option<Action> {
        self.outbox.pop_front()
    }

    pub(crate) fn poll_done(&mut self) -> Option<(P, Outcome)> {
        self.done.pop_front()
    }

    pub(crate) fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// Whether nothing is in flight, parked on a token, waiting for a timer, or ended
    /// without its outcome taken by [`Session::poll_done`] yet.
    pub(crate) fn is_idle(&self) -> bool {
        self.calls.is_empty() && self.fetches.is_empty() && self.done.is_empty()
    }

    /// The purpose of the call an in-flight action belongs to.
    pub(crate) fn purpose_of(&self, id: ActionId) -> Option<&P> {
        match self.in_flight.get(&id)? {
            Pending::Call(call) => self.calls.get(call).map(|c| &c.purpose),
            Pending::Token(_) | Pending::Window(_) | Pending::Budget(_) => None,
        }
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, pending)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            match pending {
                Pending::Call(id) => self.dispatch(id, now),
                Pending::Token(key) => self.send_token_request(key, now),
                Pending::Window(window) => {
                    if let Some(key) = self.windows.key(window) {
                        self.drain(&[key], now);
                    }
                }
                Pending::Budget(budget) => {
                    for call in self.budgets.resume(budget, now) {
                        self.send(call, false, now);
                    }
                }
            }
        }
    }

    /// Feeds what became of action `id`: an answer, a finished transfer, or a failure.
    pub(crate) fn handle(
        &mut self,
        id: ActionId,
        completion: Completion,
        now: Instant,
    ) -> Result<(), Misuse> {
        let pending = *self.in_flight.get(&id).ok_or(Misuse::UnknownAction(id))?;
        let is_transfer = match pending {
            Pending::Call(call) => {
                matches!(self.calls.get(&call).map(|c| &c.call), Some(Call::Transfer { .. }))
            }
            Pending::Token(_) | Pending::Window(_) | Pending::Budget(_) => false,
        };
        match (&completion, is_transfer) {
            (Completion::Response(_), true) | (Completion::Transfer(_), false) => {
                return Err(Misuse::WrongCompletion(id))
            }
            _ => {}
        }
        self.in_flight.remove(&id);
        self.tally(pending, &completion);
        let released = match pending {
            Pending::Call(call) => self.feed_windows(call, &completion, now),
            _ => Vec::new(),
        };
        if let (Pending::Call(call), Completion::Response(response)) = (pending, &completion) {
            let retry_after = self.retry_after(response, now);
            if let Some(state) = self.calls.get(&call) {
                let (registry, _) = state.call.budget_key();
                self.budgets.answered(registry, state.place, response.headers(), retry_after, now);
            }
        }
        match (pending, completion) {
            (Pending::Call(call), Completion::Response(response)) => self.call_answered(call, response, now),
            (Pending::Call(call), Completion::Failure(error)) => self.call_failed(call, error, now),
            (Pending::Call(call), Completion::Transfer(_)) => self.finish(call, Outcome::Transferred),
            (Pending::Token(key), Completion::Response(response)) => self.token_answered(key, response, now),
            (Pending::Token(key), Completion::Failure(error)) => {
                let (class, kind) = (error.class(), ErrorKind::of_transport(&error));
                self.token_failed(key, class, kind, format!("token request failed: {error}"), now)
            }
            (Pending::Token(_), Completion::Transfer(_)) | (Pending::Window(_) | Pending::Budget(_), _) => {}
        }
        self.drain(&released, now);
        Ok(())
    }

    /// Counts an answered small request under its registry, class and status.
    fn tally(&mut self, pending: Pending, completion: &Completion) {
        let (registry, class) = match pending {
            Pending::Call(call) => match self.calls.get(&call).map(|c| &c.call) {
                Some(Call::Send { request, auth }) => {
                    let uri = request.uri();
                    (
                        auth.registry.clone(),
                        ActionClass::of_request(request.method(), uri.path(), uri.query()).into(),
                    )
                }
                _ => return,
            },
            Pending::Token(key) => match self.fetches.get(&key) {
                Some(fetch) => (fetch.registry.clone(), RequestClass::Token),
                None => return,
            },
            Pending::Window(_) | Pending::Budget(_) => return,
        };
        self.stats.count(&registry, class, completion);
    }

    /// Tells the windows a call holds how its attempt went, before any retry is scheduled:
    /// a `429` or `503` shrinks the window of the side that answered it. Returns the
    /// windows whose slots it freed.
    fn feed_windows(&mut self, id: CallId, completion: &Completion, now: Instant) -> Vec<WindowKey> {
        let Some(state) = self.calls.get_mut(&id) else { return Vec::new() };
        let held = std::mem::take(&mut state.held);
        let is_transfer = matches!(state.call, Call::Transfer { .. });
        let pushback = |status: u16| status == 429 || status == 503;
        // Which of the held windows pushed back, and its Retry-After.
        let (pushed, retry_after) = match completion {
            Completion::Response(response) if pushback(response.status().as_u16()) => {
                (Some(0), self.retry_after(response, now))
            }
            Completion::Failure(TransportError::Status { status, side, retry_after, .. })
                if pushback(*status) =>
            {
                (Some(usize::from(is_transfer && *side == Side::Destination)), *retry_after)
            }
            _ => (None, None),
        };
        let success = !matches!(completion, Completion::Failure(_));
        let mut released = Vec::with_capacity(held.len());
        for (i, (key, epoch)) in held.into_iter().enumerate() {
            let pushed_back = pushed == Some(i);
            if pushed_back || success {
                let (shrunk, pause) = self.windows.answered(&key, epoch, pushed_back, retry_after, now);
                if let Some(s) = shrunk {
                    self.events.push_back(Event::WindowShrunk {
                        registry: s.registry,
                        class: s.class,
                        window: s.window,
                        reason: pushback_reason(completion),
                    });
                }
                if let Some((at, window)) = pause {
                    self.timers.insert((at, Pending::Window(window)));
                }
            } else {
                self.windows.release(&key);
            }
            released.push(key);
        }
        released
    }

    /// Sends what waits in `keys`' windows while they have room.
    fn drain(&mut self, keys: &[WindowKey], now: Instant) {
        while let Some(call) = self.windows.next_waiting(keys, now) {
            self.send(call, true, now);
        }
    }

    /// The `Authorization` value `need` is sent with now, if the registry asked for one and
    /// it is known (a Basic credential, or a fresh token): for a request the driver sends
    /// itself, such as a blob `GET` it streams.
    pub(crate) fn authorization_now(&mut self, need: &AuthNeed, now: Instant) -> Option<String> {
        self.authorization(need, now).ok().flatten()
    }

    /// Looks for what authorises `need` now; `Err` when a token must be fetched first.
    fn authorization(&mut self, need: &AuthNeed, now: Instant) -> Result<Option<String>, ()> {
        let Some(challenge) = self.challenges.get(&need.registry) else { return Ok(None) };
        match challenge.scheme {
            Scheme::Basic => {
                Ok(self.credentials.lookup(&need.registry, &need.repository).map(|c| c.basic_authorization()))
            }
            Scheme::Bearer => {
                self.tokens.retain(|t| t.token.is_fresh(now));
                let cached = self.tokens.iter().find(|t| {
                    t.registry == need.registry
                        && need.scopes.iter().all(|s| t.scopes.iter().any(|c| c.covers(s)))
                });
                match cached {
                    Some(t) => Ok(Some(t.token.authorization())),
                    None => Err(()),
                }
            }
            _ => Ok(None),
        }
    }

    fn dispatch(&mut self, id: CallId, now: Instant) {
        self.send(id, false, now)
    }

    /// Sends the call if its windows have room (else it waits in their queue), once
    /// authorised; `from_queue` when it was just taken from a window's queue.
    fn send(&mut self, id: CallId, from_queue: bool, now: Instant) {
        let Some(state) = self.calls.get(&id) else { return };
        let windows = state.call.windows();
        if !self.windows.admit(id, &windows, from_queue, now) {
            return;
        }
        let (registry, counted) = state.call.budget_key();
        let registry = registry.to_owned();
        match self.budgets.admit(id, &registry, counted, now) {
            Admit::Go => {}
            Admit::Wait => return,
            Admit::Pause { budget, until, limit, window } => {
                self.timers.insert((until, Pending::Budget(budget)));
                self.events.push_back(Event::BudgetPaused {
                    registry,
                    limit,
                    window_s: window.map(|w| w.as_secs()),
                    resume_in_ms: until.saturating_since(now).as_millis() as u64,
                });
                return;
            }
        }
        let Some(state) = self.calls.get(&id) else { return };
        let needs: Vec<AuthNeed> = state.call.needs().into_iter().cloned().collect();
        let mut headers = Vec::with_capacity(needs.len());
        for need in &needs {
            match self.authorization(need, now) {
                Ok(header) => headers.push(header),
                Err(()) => return self.await_token(id, need.clone(), now),
            }
        }
        let Some(state) = self.calls.get_mut(&id) else { return };
        let action_id = ActionId(self.next_id + 1);
        let action = match build(&state.call, action_id, &headers) {
            Ok(action) => action,
            Err(message) => {
                return self.finish(id, Outcome::Failed(CallError::new(ErrorKind::InvalidAnswer, message)))
            }
        };
        state.sent_with = headers;
        let epochs = self.windows.acquire(&windows);
        state.held = windows.into_iter().zip(epochs).collect();
        state.place = self.budgets.sent(&registry, counted);
        self.next_id += 1;
        match &action {
            Action::Send { .. } => self.stats.requests += 1,
            Action::Transfer { .. } => self.stats.transfers += 1,
        }
        self.in_flight.insert(action_id, Pending::Call(id));
        self.outbox.push_back(action);
    }

    fn await_token(&mut self, call: CallId, need: AuthNeed, now: Instant) {
        let joined =
            self.fetches.values_mut().find(|f| f.registry == need.registry && f.scopes == need.scopes);
        if let Some(fetch) = joined {
            fetch.waiting.push(call);
            return;
        }
        let key = self.next();
        self.fetches.insert(
            key,
            TokenFetch {
                registry: need.registry,
                repository: need.repository,
                scopes: need.scopes,
                waiting: vec![call],
                retries: 0,
            },
        );
        self.send_token_request(key, now);
    }

    fn send_token_request(&mut self, key: u64, now: Instant) {
        let Some(fetch) = self.fetches.get(&key) else { return };
        let Some(challenge) = self.challenges.get(&fetch.registry) else {
            let message = format!("{} asked for no credentials it can be given", fetch.registry);
            return self.token_failed(key, FailureClass::Permanent, ErrorKind::Unauthorized, message, now);
        };
        let credential = self.credentials.lookup(&fetch.registry, &fetch.repository);
        match auth::token_request(challenge, &fetch.scopes, credential) {
            Ok(request) => {
                let action_id = ActionId(self.next());
                self.stats.requests += 1;
                self.in_flight.insert(action_id, Pending::Token(key));
                self.outbox.push_back(Action::Send { id: action_id, request });
            }
            Err(e) => {
                self.token_failed(key, FailureClass::Permanent, ErrorKind::InvalidAnswer, e.to_string(), now)
            }
        }
    }

    fn token_answered(&mut self, key: u64, response: Response<Vec<u8>>, now: Instant) {
        let status = response.status();
        if status.is_success() {
            match auth::parse_token_response(response.body(), now) {
                Ok(token) => {
                    let Some(fetch) = self.fetches.remove(&key) else { return };
                    self.tokens.push(CachedToken { registry: fetch.registry, scopes: fetch.scopes, token });
                    for call in fetch.waiting {
                        self.dispatch(call, now);
                    }
                }
                Err(e) => self.token_failed(
                    key,
                    FailureClass::Permanent,
                    ErrorKind::InvalidAnswer,
                    e.to_string(),
                    now,
                ),
            }
            return;
        }
        let Some(fetch) = self.fetches.get(&key) else { return };
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let message = rejected(&self.credentials, &fetch.registry, &fetch.repository);
            return self.token_failed(key, FailureClass::Permanent, ErrorKind::Unauthorized, message, now);
        }
        let class = FailureClass::of_status(status, self.retry_after(&response, now));
        let kind = ErrorKind::of_status(status.as_u16());
        let message = format!("token service for {} answered HTTP {status}", fetch.registry);
        self.token_failed(key, class, kind, message, now);
    }

    fn token_failed(
        &mut self,
        key: u64,
        class: FailureClass,
        kind: ErrorKind,
        message: String,
        now: Instant,
    ) {
        let Some(fetch) = self.fetches.get_mut(&key) else { return };
        if let Some(delay) = self.policy.next_delay(fetch.retries, &class, &mut self.rng) {
            fetch.retries += 1;
            let event = Event::RetryScheduled {
                target: format!("token for {}", fetch.registry),
                retry: fetch.retries,
                delay_ms: delay.as_millis() as u64,
                reason: message,
            };
            self.stats.retries += 1;
            self.events.push_back(event);
            self.timers.insert((now + delay, Pending::Token(key)));
            return;
        }
        let Some(fetch) = self.fetches.remove(&key) else { return };
        for call in fetch.waiting {
            self.finish(call, Outcome::Failed(CallError::new(kind, message.clone())));
        }
    }

    fn call_answered(&mut self, id: CallId, response: Response<Vec<u8>>, now: Instant) {
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED {
            let challenge =
                response.headers().get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).and_then(challenge_of);
            let Some(need) = self.calls.get(&id).map(|s| s.call.need_on(Side::Registry).clone()) else {
                return;
            };
            return self.unauthorised(id, need, challenge, now);
        }
        let class = FailureClass::of_status(status, self.retry_after(&response, now));
        if class.is_transient() {
            let reason = format!("HTTP {status}");
            return self.retry_or_fail(id, class, ErrorKind::of_status(status.as_u16()), reason, false, now);
        }
        self.finish(id, Outcome::Response(response));
    }

    fn call_failed(&mut self, id: CallId, error: TransportError, now: Instant) {
        let unauthorised = match &error {
            TransportError::Status { status: 401, side, .. } => Some((*side, None)),
            TransportError::Unauthorized { side, challenge, .. } => {
                Some((*side, challenge.as_deref().and_then(challenge_of)))
            }
            _ => None,
        };
        if let Some((side, fresh)) = unauthorised {
            // The 401 is the registry's on that side of a transfer, not always the source's.
            let Some(need) = self.calls.get(&id).map(|s| s.call.need_on(side).clone()) else { return };
            let challenge = fresh.or_else(|| self.challenges.get(&need.registry).cloned());
            return self.unauthorised(id, need, challenge, now);
        }
        let (class, kind) = (error.class(), ErrorKind::of_transport(&error));
        self.retry_or_fail(id, class, kind, error.to_string(), true, now);
    }

    /// A `401` from the registry `need` is for: learn its challenge and try once more with
    /// fresh authorisation.
    fn unauthorised(&mut self, id: CallId, need: AuthNeed, challenge: Option<Challenge>, now: Instant) {
        let Some(state) = self.calls.get_mut(&id) else { return };
        let retry = !state.reauthorised && challenge.is_some();
        state.reauthorised = true;
        if retry {
            if let Some(challenge) = challenge {
                self.challenges.insert(need.registry.clone(), challenge);
            }
            // Forget the token this call carried, if it carried one, and no other: calls sent
            // before the challenge was known come back 401 too, and the tokens fetched since
            // are good.
            let sent = &state.sent_with;
            self.tokens.retain(|t| {
                t.registry != need.registry || !sent.iter().flatten().any(|h| *h == t.token.authorization())
            });
            return self.dispatch(id, now);
        }
        let message = rejected(&self.credentials, &need.registry, &need.repository);
        self.finish(id, Outcome::Failed(CallError::new(ErrorKind::Unauthorized, message)));
    }

    fn retry_or_fail(
        &mut self,
        id: CallId,
        class: FailureClass,
        kind: ErrorKind,
        reason: String,
        from_transport: bool,
        now: Instant,
    ) {
        let Some(state) = self.calls.get_mut(&id) else { return };
        if let Some(delay) = self.policy.next_delay(state.retries, &class, &mut self.rng) {
            state.retries += 1;
            // A retried transfer opens a fresh upload session.
            if let Call::Transfer { transfer, .. } = &mut state.call {
                transfer.upload_location = None;
                transfer.resumes_session = false;
            }
            let event = Event::RetryScheduled {
                target: state.call.describe(),
                retry: state.retries,
                delay_ms: delay.as_millis() as u64,
                reason,
            };
            self.stats.retries += 1;
            self.events.push_back(event);
            self.timers.insert((now + delay, Pending::Call(id)));
            return;
        }
        let message = match (&class, state.retries) {
            (FailureClass::Transient { .. }, 0) => {
                format!("{}: {reason} (Retry-After beyond patience)", state.call.describe())
            }
            (FailureClass::Transient { .. }, n) => {
                format!("{}: {reason} (gave up after {n} retries)", state.call.describe())
            }
            (FailureClass::Permanent, _) => format!("{}: {reason}", state.call.describe()),
        };
        let error = CallError { error: Error::new(kind, message), from_transport };
        self.finish(id, Outcome::Failed(error));
    }

    fn finish(&mut self, id: CallId, outcome: Outcome) {
        if let Some(state) = self.calls.remove(&id) {
            self.done.push_back((state.purpose, outcome));
        }
    }

    fn retry_after(&self, response: &Response<Vec<u8>>, now: Instant) -> Option<Duration> {
        let value = response.headers().get(RETRY_AFTER)?.to_str().ok()?;
        parse_retry_after(value, self.wall.unix_at(now))
    }
}

/// The most a window grows to unless the machine says otherwise.
const DEFAULT_CEILING: usize = 8;

/// Why a window shrank: the status of the answer, or of the failure that carried one.
fn pushback_reason(completion: &Completion) -> String {
    let status = match completion {
        Completion::Response(response) => Some(response.status()),
        Completion::Failure(TransportError::Status { status, .. }) => StatusCode::from_u16(*status).ok(),
        Completion::Failure(_) | Completion::Transfer(_) => None,
    };
    status.map_or_else(|| "pushback".to_owned(), |status| format!("HTTP {status}"))
}

fn challenge_of(header: &str) -> Option<Challenge> {
    auth::parse_www_authenticate(header).ok().and_then(|all| auth::select(&all).cloned())
}

/// The message for rejected or missing credentials: says which and what to do.
fn rejected(credentials: &CredentialStore, registry: &str, repository: &str) -> String {
    let sent = credentials.lookup(registry, repository).is_some();
    auth::AuthError::unauthorized(registry, repository, sent).to_string()
}

/// The concrete action for a call, with its authorisation headers (one per need).
fn build(call: &Call, id: ActionId, headers: &[Option<String>]) -> Result<Action, String> {
    let value = |h: &Option<String>| -> Result<Option<HeaderValue>, String> {
        h.as_deref().map(HeaderValue::from_str).transpose().map_err(|_| {
            "the registry issued an authorisation value that is not a valid HTTP header".to_owned()
        })
    };
    match call {
        Call::Send { request, .. } => {
            let mut request = request.clone();
            if let Some(v) = value(&headers[0])? {
                request.headers_mut().insert(AUTHORIZATION, v);
            }
            Ok(Action::Send { id, request })
        }
        Call::Transfer { transfer, .. } => {
            let mut transfer = (**transfer).clone();
            if let Some(v) = value(&headers[0])? {
                transfer.source.headers_mut().insert(AUTHORIZATION, v);
            }
            if let Some(v) = value(&headers[1])? {
                transfer.upload_headers.insert(AUTHORIZATION, v);
            }
            Ok(Action::Transfer { id, transfer })
        }
    }
}

#[cfg(test)]
mod tests;
