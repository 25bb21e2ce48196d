//! Runs a machine against a [`Network`] on a virtual clock.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Duration;

use super::network::Network;
use crate::machine::{Completion, Machine, Misuse};
use crate::progress::Event;
use crate::time::Instant;
use crate::transport::{
    Action, ActionId, BoxFuture, Clock, ProgressCounter, Transfer, TransferReport, Transport, TransportError,
};

/// A whole job on a virtual clock: every request takes `latency`, every transfer
/// `latency` plus its size over `bandwidth`; the clock jumps to the next completion or
/// deadline. Nothing depends on the wall clock, so every run is identical.
pub struct Simulation {
    /// The registries the job talks to.
    pub network: Network,
    /// The virtual clock.
    pub now: Instant,
    /// Time every request takes.
    pub latency: Duration,
    /// Bytes per second for transfers.
    pub bandwidth: u64,
    /// Completions by when they arrive; `true` marks a transfer's.
    pending: BTreeMap<(Instant, u64), (ActionId, Completion, bool)>,
    seq: u64,
    /// Every event with the virtual time it was emitted at.
    pub events: Vec<(Instant, Event)>,
    active_images: usize,
    /// The most images ever in flight at once: a test checks it against `proc`.
    pub max_active_images: usize,
    transfers: usize,
    /// The most transfers ever in flight at once: a test checks it against the limit.
    pub max_transfers: usize,
    /// Every transfer handed out, with when: a test reads its share groups.
    pub started_transfers: Vec<(Instant, Transfer)>,
    /// When to [`Machine::stop`] the machine, as a service's shutdown signal would.
    pub stop_at: Option<Instant>,
}

impl Simulation {
    /// A simulation over `network` at time zero, 10 ms per request.
    pub fn new(network: Network) -> Self {
        Simulation {
            network,
            now: Instant::ZERO,
            latency: Duration::from_millis(10),
            bandwidth: 100 * 1024 * 1024,
            pending: BTreeMap::new(),
            seq: 0,
            events: Vec::new(),
            active_images: 0,
            max_active_images: 0,
            transfers: 0,
            max_transfers: 0,
            started_transfers: Vec::new(),
            stop_at: None,
        }
    }

    /// Runs `machine` until it finishes. Fails on driver-contract misuse, and when the
    /// machine waits for nothing without having finished.
    pub fn run<M: Machine>(&mut self, machine: &mut M) -> Result<(), Misuse> {
        loop {
            while let Some(action) = machine.poll_action() {
                self.start(action);
            }
            while let Some(event) = machine.poll_event() {
                self.observe(&event);
                self.events.push((self.now, event));
            }
            if machine.is_finished() && self.pending.is_empty() {
                return Ok(());
            }
            let completion = self.pending.keys().next().map(|(at, _)| *at);
            let next = match (completion, machine.poll_timeout()) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => return Err(Misuse::Stalled),
            };
            if let Some(at) = self.stop_at.filter(|at| *at <= next) {
                self.now = self.now.max(at);
                self.stop_at = None;
                machine.stop(self.now);
                continue;
            }
            self.now = self.now.max(next);
            if completion == Some(next) {
                let Some((_, (id, done, transfer))) = self.pending.pop_first() else { continue };
                if let Completion::Transfer(report) = &done {
                    machine.handle_progress(id, report.bytes);
                }
                if transfer {
                    self.transfers -= 1;
                }
                machine.handle(id, done, self.now)?;
            }
            if machine.poll_timeout().is_some_and(|at| at <= self.now) {
                machine.handle_timeout(self.now);
            }
        }
    }

    fn start(&mut self, action: Action) {
        let (id, done, duration, transfer) = match action {
            Action::Send { id, request } => {
                (id, Completion::of_send(self.network.send(&request, self.now)), self.latency, false)
            }
            Action::Transfer { id, transfer } => {
                self.transfers += 1;
                self.max_transfers = self.max_transfers.max(self.transfers);
                self.started_transfers.push((self.now, transfer.clone()));
                let time =
                    self.latency + Duration::from_secs_f64(transfer.size as f64 / self.bandwidth as f64);
                (id, Completion::of_transfer(self.network.transfer(&transfer, self.now)), time, true)
            }
        };
        self.seq += 1;
        self.pending.insert((self.now + duration, self.seq), (id, done, transfer));
    }

    fn observe(&mut self, event: &Event) {
        match event {
            Event::ImageStarted { .. } => {
                self.active_images += 1;
                self.max_active_images = self.max_active_images.max(self.active_images);
            }
            Event::ImageSkipped { .. } | Event::ImageDone { .. } | Event::ImageFailed { .. } => {
                self.active_images = self.active_images.saturating_sub(1)
            }
            _ => {}
        }
    }

    /// The events of one kind, by a predicate.
    pub fn events_where(&self, f: impl Fn(&Event) -> bool) -> Vec<&Event> {
        self.events.iter().map(|(_, e)| e).filter(|e| f(e)).collect()
    }
}

/// A virtual clock for the async driver: sleeping jumps the clock to the deadline.
#[derive(Debug, Default)]
pub struct SimClock {
    now: Mutex<Instant>,
}

impl Clock for SimClock {
    fn now(&self) -> Instant {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'_, ()> {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now = (*now).max(deadline);
        Box::pin(std::future::ready(()))
    }
}

/// The async [`Transport`] over a [`Network`], answering at once on the shared clock.
pub struct SimTransport<'a> {
    /// The registries, behind a lock because transports are shared.
    pub network: Mutex<Network>,
    /// The clock every answer is stamped with.
    pub clock: &'a SimClock,
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl Transport for SimTransport<'_> {
    async fn send(&self, request: http::Request<Vec<u8>>) -> Result<http::Response<Vec<u8>>, TransportError> {
        let now = self.clock.now();
        self.network.lock().unwrap_or_else(|e| e.into_inner()).send(&request, now)
    }

    async fn transfer(
        &self,
        transfer: Transfer,
        progress: ProgressCounter,
        _clock: &dyn Clock,
    ) -> Result<TransferReport, TransportError> {
        let now = self.clock.now();
        let result = self.network.lock().unwrap_or_else(|e| e.into_inner()).transfer(&transfer, now);
        if let Ok(report) = &result {
            progress.store(report.bytes, Ordering::Relaxed);
        }
        result
    }
}
