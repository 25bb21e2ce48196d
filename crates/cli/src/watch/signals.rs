//! The signals a service answers: SIGTERM and SIGINT stop it, SIGHUP reloads its config.

use anyhow::Context as _;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;

/// The first SIGTERM or SIGINT sets the stop flag, a second one exits at once with 1 (a
/// task listens for them for the whole run); SIGHUP wakes [`Signals::hangup`].
pub(super) struct Signals {
    hangup: Signal,
}

impl Signals {
    pub(super) fn install(stop_tx: watch::Sender<bool>) -> anyhow::Result<Signals> {
        let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
        let hangup = signal(SignalKind::hangup()).context("listening for SIGHUP")?;
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = terminate.recv() => "SIGTERM",
                _ = interrupt.recv() => "SIGINT",
            };
            eprintln!("ferry: {name}: starting no new work, draining what is in flight");
            stop_tx.send_replace(true);
            // A second signal is someone who will not wait for the drain (a second Ctrl-C).
            let name = tokio::select! {
                _ = terminate.recv() => "SIGTERM",
                _ = interrupt.recv() => "SIGINT",
            };
            eprintln!("ferry: a second {name}: exiting now; transfers in flight are left uncommitted");
            std::process::exit(1);
        });
        Ok(Signals { hangup })
    }

    /// Resolves at the next SIGHUP.
    pub(super) async fn hangup(&mut self) {
        self.hangup.recv().await;
    }
}
