//! The session alone, scripted exchange by exchange on a virtual clock.

use std::time::Duration;

use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{Method, Request, Response};

use super::{AuthNeed, Call, Outcome, Session};
use crate::auth::{Credential, CredentialStore, Scope};
use crate::error::ErrorKind;
use crate::machine::{Completion, Misuse};
use crate::progress::Event;
use crate::retry::{RetryPolicy, Rng};
use crate::time::{Instant, UnixTime, WallClock};
use crate::transport::{Action, ActionId, Side, TransferReport, TransportError};

const SEED: u64 = 7;
const REGISTRY: &str = "r.test";

/// A session and a virtual clock, driven one exchange at a time.
struct Scenario {
    session: Session<&'static str>,
    now: Instant,
}

impl Scenario {
    fn new(policy: RetryPolicy) -> Self {
        Scenario::with_credentials(policy, CredentialStore::default())
    }

    fn with_credentials(policy: RetryPolicy, credentials: CredentialStore) -> Self {
        let wall = WallClock::new(Instant::ZERO, UnixTime(1_700_000_000));
        Scenario { session: Session::new(credentials, policy, SEED, wall), now: Instant::ZERO }
    }

    /// Submits a GET of `path` on the registry, authorised to pull `app`.
    fn get(&mut self, purpose: &'static str, path: &str) -> &mut Self {
        let request = Request::builder()
            .method(Method::GET)
            .uri(format!("https://{REGISTRY}{path}"))
            .body(Vec::new())
            .expect("a valid request");
        let auth = AuthNeed {
            registry: REGISTRY.into(),
            repository: "app".into(),
            scopes: vec![Scope::pull("app")],
        };
        self.session.submit(purpose, Call::Send { request, auth }, self.now);
        self
    }

    /// The next action, which must be a small request: its id, URL and authorisation.
    fn sent(&mut self) -> (ActionId, String, Option<String>) {
        match self.session.poll_action() {
            Some(Action::Send { id, request }) => {
                let auth = request.headers().get(AUTHORIZATION).map(|v| v.to_str().unwrap().to_owned());
                (id, request.uri().to_string(), auth)
            }
            other => panic!("expected a request, got {other:?}"),
        }
    }

    fn nothing_sent(&mut self) {
        assert!(self.session.poll_action().is_none(), "no action expected");
    }

    fn answer(&mut self, id: ActionId, status: u16, headers: &[(&str, &str)], body: &str) -> &mut Self {
        let mut response = Response::builder().status(status);
        for (name, value) in headers {
            response = response.header(*name, *value);
        }
        let response = response.body(body.as_bytes().to_vec()).expect("a valid response");
        self.session.handle(id, Completion::Response(response), self.now).expect("an action in flight");
        self
    }

    fn fail(&mut self, id: ActionId, error: TransportError) -> &mut Self {
        self.session.handle(id, Completion::Failure(error), self.now).expect("an action in flight");
        self
    }

    /// Jumps the clock to the next deadline and fires it; returns how far it jumped.
    fn wait(&mut self) -> Duration {
        let at = self.session.poll_timeout().expect("a deadline");
        let waited = at.saturating_since(self.now);
        self.now = at;
        self.session.handle_timeout(at);
        waited
    }

    fn done(&mut self) -> Vec<(&'static str, Outcome)> {
        std::iter::from_fn(|| self.session.poll_done()).collect()
    }
}

fn status_of(outcome: &Outcome) -> u16 {
    match outcome {
        Outcome::Response(r) => r.status().as_u16(),
        other => panic!("expected an answer, got {other:?}"),
    }
}

#[test]
fn transient_answers_are_retried_on_the_seeded_schedule() {
    let policy = RetryPolicy { retries: 3, ..RetryPolicy::default() };
    let mut rng = Rng::new(SEED);
    let expected: Vec<Duration> = (0..3).map(|retry| policy.backoff(retry, &mut rng)).collect();
    let mut s = Scenario::new(policy);
    s.get("m", "/v2/app/manifests/v1");
    let mut waits = Vec::new();
    for status in [503, 500, 502] {
        let (id, url, _) = s.sent();
        assert_eq!(url, "https://r.test/v2/app/manifests/v1");
        s.answer(id, status, &[], "");
        assert!(s.done().is_empty(), "a transient {status} is not the outcome");
        waits.push(s.wait());
    }
    let (id, _, _) = s.sent();
    s.answer(id, 200, &[], "{}");
    let done = s.done();
    assert_eq!((done[0].0, status_of(&done[0].1)), ("m", 200));
    assert_eq!(waits, expected);
    assert_eq!(s.session.stats.retries, 3);
    let events: Vec<Event> = std::iter::from_fn(|| s.session.poll_event()).collect();
    let retries = events.iter().filter(|e| matches!(e, Event::RetryScheduled { .. })).count();
    assert_eq!(retries, 3);
    // The 503 closed the manifest-read window to the one request in flight; it stays 1.
    let shrunk: Vec<&Event> = events.iter().filter(|e| matches!(e, Event::WindowShrunk { .. })).collect();
    assert_eq!(
        shrunk,
        [&Event::WindowShrunk {
            registry: REGISTRY.into(),
            class: crate::window::ActionClass::ManifestRead,
            window: 1,
            reason: "HTTP 503 Service Unavailable".into(),
        }]
    );
}

#[test]
fn retry_after_sets_the_wait_exactly() {
    let mut s = Scenario::new(RetryPolicy::default());
    s.get("m", "/v2/app/tags/list");
    let (id, _, _) = s.sent();
    s.answer(id, 429, &[("retry-after", "7")], "");
    assert_eq!(s.wait(), Duration::from_secs(7));
    let (id, _, _) = s.sent();
    s.answer(id, 200, &[], "{}");
    assert_eq!(status_of(&s.done()[0].1), 200);
}

/// A way an attempt fails.
#[derive(Debug, Clone, Copy)]
enum Fault {
    Reset,
    Status(u16),
}

#[test]
fn failures_that_persist_end_with_their_kind() {
    let cases = [
        (Fault::Reset, ErrorKind::Unavailable, "gave up after 1 retries"),
        (Fault::Status(429), ErrorKind::RateLimited, "HTTP 429"),
        (Fault::Status(503), ErrorKind::Unavailable, "HTTP 503"),
    ];
    for (fault, kind, words) in cases {
        let mut s = Scenario::new(RetryPolicy { retries: 1, ..RetryPolicy::default() });
        s.get("m", "/v2/app/manifests/v1");
        for attempt in 0..2 {
            if attempt > 0 {
                s.wait();
            }
            let (id, _, _) = s.sent();
            match fault {
                Fault::Reset => {
                    s.fail(id, TransportError::Connection { side: Side::Registry, message: "reset".into() })
                }
                Fault::Status(status) => s.answer(id, status, &[], ""),
            };
        }
        s.nothing_sent();
        let done = s.done();
        let Outcome::Failed(e) = &done[0].1 else { panic!("{fault:?}: expected a failure") };
        assert_eq!(e.error.kind(), kind, "{fault:?}");
        assert!(e.error.is_retryable(), "{fault:?}");
        assert!(e.error.message().contains(words), "{fault:?}: {}", e.error);
        assert!(
            e.error.message().starts_with("GET https://r.test/v2/app/manifests/v1"),
            "{fault:?}: {}",
            e.error
        );
    }
}

#[test]
fn one_token_is_fetched_for_calls_that_share_a_scope() {
    let mut s = Scenario::new(RetryPolicy::default());
    s.get("a", "/v2/app/manifests/v1").get("b", "/v2/app/manifests/v2");
    let (a, _, auth_a) = s.sent();
    let (b, _, _) = s.sent();
    assert_eq!(auth_a, None, "no challenge is known yet");
    let challenge = r#"Bearer realm="https://auth.test/token",service="r.test",scope="repository:app:pull""#;
    s.answer(a, 401, &[(WWW_AUTHENTICATE.as_str(), challenge)], "");
    let (token, url, _) = s.sent();
    assert!(url.starts_with("https://auth.test/token?"), "{url}");
    s.answer(b, 401, &[(WWW_AUTHENTICATE.as_str(), challenge)], "");
    s.nothing_sent();
    s.answer(token, 200, &[], r#"{"token":"t0k","expires_in":300}"#);
    let resent: Vec<_> = [s.sent(), s.sent()].into_iter().map(|(_, url, auth)| (url, auth)).collect();
    assert_eq!(
        resent,
        [
            ("https://r.test/v2/app/manifests/v1".to_owned(), Some("Bearer t0k".to_owned())),
            ("https://r.test/v2/app/manifests/v2".to_owned(), Some("Bearer t0k".to_owned())),
        ]
    );
    assert_eq!(s.session.stats.requests, 5);
}

#[test]
fn a_second_401_reports_rejected_credentials() {
    let credentials =
        CredentialStore::new([(REGISTRY, Credential::new("alice", "wrong"))]).expect("a valid key");
    let mut s = Scenario::with_credentials(RetryPolicy::default(), credentials);
    s.get("m", "/v2/app/manifests/v1");
    let challenge = r#"Basic realm="r""#;
    let (id, _, _) = s.sent();
    s.answer(id, 401, &[(WWW_AUTHENTICATE.as_str(), challenge)], "");
    let (id, _, auth) = s.sent();
    assert!(auth.is_some_and(|a| a.starts_with("Basic ")));
    s.answer(id, 401, &[(WWW_AUTHENTICATE.as_str(), challenge)], "");
    s.nothing_sent();
    let done = s.done();
    let Outcome::Failed(e) = &done[0].1 else { panic!("expected a failure") };
    assert_eq!(e.error.kind(), ErrorKind::Unauthorized);
    assert!(!e.error.message().contains("wrong"), "no secret in an error: {}", e.error);
    assert_eq!(s.session.stats.retries, 0, "a rejected password is not retried");
}

#[test]
fn completions_that_do_not_fit_are_misuse() {
    let mut s = Scenario::new(RetryPolicy::default());
    s.get("m", "/v2/");
    let (id, _, _) = s.sent();
    let transfer = Completion::Transfer(TransferReport { bytes: 1 });
    assert_eq!(s.session.handle(id, transfer, s.now), Err(Misuse::WrongCompletion(id)));
    let unknown = ActionId(999);
    let error = TransportError::Cancelled;
    assert_eq!(
        s.session.handle(unknown, Completion::Failure(error), s.now),
        Err(Misuse::UnknownAction(unknown))
    );
    s.answer(id, 200, &[], "");
    assert_eq!(status_of(&s.done()[0].1), 200, "the action stays in flight after misuse");
}
