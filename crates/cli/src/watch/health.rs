//! What `/healthz` and `/readyz` answer.
//!
//! Alive is the process answering. Ready is fewer than `--unready-after` failed runs in a
//! row: a mirror whose source went away stops being ready (Kubernetes takes it out of its
//! Service and shows it), and is ready again after the first run that succeeds. A config
//! is always loaded by then: the port opens only once the first config has loaded, and a
//! later one that does not load leaves the old one running.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

/// `/healthz` (200 while the process answers) and `/readyz` (200 when ready, else 503
/// and why).
pub(crate) fn routes(health: Arc<Health>) -> Router {
    Router::new().route("/healthz", get(|| async { "ok\n" })).route(
        "/readyz",
        get(move || {
            let health = health.clone();
            async move {
                match health.readiness() {
                    Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
                    Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")),
                }
            }
        }),
    )
}

/// The service's readiness, shared by the run loop and the HTTP port.
#[derive(Debug)]
pub(crate) struct Health {
    failed_in_a_row: AtomicUsize,
    threshold: usize,
}

impl Health {
    pub(crate) fn new(threshold: usize) -> Health {
        Health { failed_in_a_row: AtomicUsize::new(0), threshold }
    }

    /// A run ended: `ok` when no image and no rule failed.
    pub(crate) fn run_ended(&self, ok: bool) {
        if ok {
            self.failed_in_a_row.store(0, Ordering::Relaxed);
        } else {
            self.failed_in_a_row.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `Ok` when ready, else why not.
    pub(crate) fn readiness(&self) -> Result<(), String> {
        let failed = self.failed_in_a_row.load(Ordering::Relaxed);
        if failed >= self.threshold {
            return Err(format!(
                "the last {failed} runs failed (the limit is --unready-after {}); see the log",
                self.threshold
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_until_the_threshold_of_failures_in_a_row() {
        let health = Health::new(2);
        assert!(health.readiness().is_ok(), "ready before the first run");
        let steps = [(false, true), (false, false), (false, false), (true, true), (false, true)];
        for (i, (ok, ready)) in steps.into_iter().enumerate() {
            health.run_ended(ok);
            assert_eq!(health.readiness().is_ok(), ready, "after step {i}");
        }
    }
}
