//! Notifications: distribution's events ([`event`]) POSTed to the endpoints of
//! `notifications.endpoints`, so that a CI system or a scanner hears of every push, pull,
//! delete and mount.
//!
//! A request never waits for an endpoint: [`Notifier::publish`] puts the event on each
//! endpoint's bounded queue and returns. One task per endpoint delivers the queue in
//! order, retrying a failed POST on ferry-core's backoff schedule ([`RetryPolicy`]: full
//! jitter from `backoff_secs`, `retries` times) with `timeout_secs` per attempt. A slow or
//! dead endpoint therefore fills its own queue and no more: an event that finds the queue
//! full is dropped, counted, and logged (the first and every hundredth).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_core::retry::{FailureClass, RetryPolicy, Rng};
use tokio::sync::mpsc;

use crate::config::{EndpointConfig, NotificationsConfig};

pub mod event;

use event::{Envelope, Event, EVENTS_MEDIA_TYPE};

/// Why an endpoint cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    #[error("notification endpoint {name:?}: cannot build its HTTP client: {reason}")]
    Client { name: String, reason: String },
}

/// Hands events to the endpoints' queues.
pub struct Notifier {
    sinks: Vec<Sink>,
    /// The receiving ends, until [`Notifier::start`] hands them to the delivery tasks.
    pending: Mutex<Vec<Delivery>>,
    started: AtomicBool,
}

struct Sink {
    name: String,
    queue: usize,
    ignore_media_types: Vec<String>,
    ignore_actions: Vec<String>,
    tx: mpsc::Sender<Event>,
    dropped: Arc<AtomicU64>,
}

struct Delivery {
    endpoint: EndpointConfig,
    client: reqwest::Client,
    rx: mpsc::Receiver<Event>,
}

impl Notifier {
    /// Queues and clients for the enabled endpoints; nothing is sent before [`Notifier::start`].
    pub fn new(config: &NotificationsConfig) -> Result<Notifier, NotifyError> {
        let mut sinks = Vec::new();
        let mut pending = Vec::new();
        for endpoint in config.endpoints.iter().filter(|e| !e.disabled) {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs_f64(endpoint.timeout_secs))
                .build()
                .map_err(|e| NotifyError::Client { name: endpoint.name.clone(), reason: e.to_string() })?;
            let (tx, rx) = mpsc::channel(endpoint.queue);
            sinks.push(Sink {
                name: endpoint.name.clone(),
                queue: endpoint.queue,
                ignore_media_types: endpoint.ignore.media_types.clone(),
                ignore_actions: endpoint.ignore.actions.clone(),
                tx,
                dropped: Arc::new(AtomicU64::new(0)),
            });
            pending.push(Delivery { endpoint: endpoint.clone(), client, rx });
        }
        Ok(Notifier { sinks, pending: Mutex::new(pending), started: AtomicBool::new(false) })
    }

    /// Starts one delivery task per endpoint, on the current tokio runtime; once, at the
    /// latest with the first event (a router served by other means starts it then).
    pub fn start(&self) {
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        for delivery in pending {
            tokio::spawn(deliver(delivery));
        }
    }

    /// Queues `event` for every endpoint that does not ignore it; never waits.
    pub fn publish(&self, event: Event) {
        self.start();
        for sink in &self.sinks {
            let ignored = sink.ignore_actions.iter().any(|a| a == event.action.as_str())
                || sink.ignore_media_types.contains(&event.target.media_type);
            if ignored {
                continue;
            }
            if let Err(mpsc::error::TrySendError::Full(_)) = sink.tx.try_send(event.clone()) {
                let dropped = sink.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped == 1 || dropped % 100 == 0 {
                    tracing::warn!(
                        endpoint = %sink.name,
                        dropped,
                        "notification queue full ({} events): events are dropped until the endpoint \
                         catches up",
                        sink.queue
                    );
                }
            }
        }
    }

    /// Events dropped so far because an endpoint's queue was full, per endpoint name.
    pub fn dropped(&self) -> Vec<(String, u64)> {
        self.sinks.iter().map(|s| (s.name.clone(), s.dropped.load(Ordering::Relaxed))).collect()
    }
}

/// One endpoint's delivery loop: each event in order, retried until delivered or out of
/// attempts.
async fn deliver(delivery: Delivery) {
    let Delivery { endpoint, client, mut rx } = delivery;
    let backoff = Duration::from_secs_f64(endpoint.backoff_secs);
    let policy = RetryPolicy {
        retries: endpoint.retries,
        base: backoff,
        cap: backoff.saturating_mul(16),
        max_retry_after: Duration::from_secs(60),
    };
    let mut rng = Rng::new(u64::from_str_radix(&crate::random::random_hex(8), 16).unwrap_or(1));
    while let Some(event) = rx.recv().await {
        let body = match serde_json::to_vec(&Envelope { events: std::slice::from_ref(&event) }) {
            Ok(body) => body,
            Err(e) => {
                tracing::error!(endpoint = %endpoint.name, %e, "cannot encode a notification");
                continue;
            }
        };
        let mut retry = 0;
        loop {
            let (failure, why) = match post(&client, &endpoint, body.clone()).await {
                Ok(()) => break,
                Err(failed) => failed,
            };
            match policy.next_delay(retry, &failure, &mut rng) {
                Some(delay) => {
                    retry += 1;
                    tokio::time::sleep(delay).await;
                }
                None => {
                    tracing::warn!(
                        endpoint = %endpoint.name,
                        action = event.action.as_str(),
                        repository = %event.target.repository,
                        "notification not delivered after {} attempts: {why}",
                        retry + 1
                    );
                    break;
                }
            }
        }
    }
}

/// One POST of an envelope; a failure says whether to try again, and why (never with
/// the endpoint's headers, which may hold credentials).
async fn post(
    client: &reqwest::Client,
    endpoint: &EndpointConfig,
    body: Vec<u8>,
) -> Result<(), (FailureClass, String)> {
    let mut request = client.post(&endpoint.url).header(http::header::CONTENT_TYPE, EVENTS_MEDIA_TYPE);
    for (name, values) in &endpoint.headers {
        for value in values {
            request = request.header(name.as_str(), value.as_str());
        }
    }
    match request.body(body).send().await {
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) => {
            let status = response.status();
            Err((FailureClass::of_status(status, None), format!("the endpoint answered {status}")))
        }
        Err(e) => {
            let why = if e.is_timeout() {
                "no answer within timeout_secs"
            } else if e.is_connect() {
                "cannot connect"
            } else {
                "the request failed"
            };
            Err((FailureClass::Transient { retry_after: None }, why.to_owned()))
        }
    }
}
