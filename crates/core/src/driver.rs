//! The one generic driver: runs any [`Machine`] over any [`Transport`].
//!
//! It is runtime-free (futures only): the native CLI runs it on tokio, the browser on
//! its event loop, tests on a virtual clock. It follows [`Machine`]'s calling contract:
//! drain actions and events, then wait for the first finished action or the next
//! deadline, feed it back, and repeat until the machine says it has finished.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{select, Either};
use futures_util::stream::{FuturesUnordered, StreamExt};

use crate::machine::{Completion, Machine, Misuse};
use crate::progress::Event;
use crate::transport::{Action, ActionId, Clock, TransferReport, Transport, TransportError};

enum Done {
    Sent(ActionId, Result<http::Response<Vec<u8>>, TransportError>),
    Transferred(ActionId, Result<TransferReport, TransportError>),
}

/// How often transfer progress is read while transfers run.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// Runs `machine` to the end over `transport`, handing every event to `on_event`.
pub async fn run<M, T, C>(
    machine: &mut M,
    transport: &T,
    clock: &C,
    on_event: impl FnMut(Event),
) -> Result<(), Misuse>
where
    M: Machine,
    T: Transport + ?Sized,
    C: Clock + ?Sized,
{
    run_until(machine, transport, clock, on_event, std::future::pending()).await
}

/// As [`run`], and once `stop` resolves, [`Machine::stop`]s the machine: nothing new
/// starts, and the run ends when the work in flight has (a service's graceful shutdown).
/// A caller with a deadline drops the returned future when it passes: transfers in flight
/// are then abandoned uncommitted, and no manifest of theirs is pushed.
pub async fn run_until<M, T, C>(
    machine: &mut M,
    transport: &T,
    clock: &C,
    mut on_event: impl FnMut(Event),
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), Misuse>
where
    M: Machine,
    T: Transport + ?Sized,
    C: Clock + ?Sized,
{
    let mut stop = Some(Box::pin(stop));
    let mut in_flight = FuturesUnordered::new();
    let mut counters: BTreeMap<ActionId, (Arc<AtomicU64>, u64)> = BTreeMap::new();
    loop {
        while let Some(action) = machine.poll_action() {
            match action {
                Action::Send { id, request } => {
                    let fut = transport.send(request);
                    in_flight.push(Box::pin(async move { Done::Sent(id, fut.await) })
                        as crate::transport::BoxFuture<'_, Done>);
                }
                Action::Transfer { id, transfer } => {
                    let counter = Arc::new(AtomicU64::new(0));
                    counters.insert(id, (counter.clone(), 0));
                    let fut = transport.transfer(transfer, counter, clock.as_dyn());
                    in_flight.push(Box::pin(async move { Done::Transferred(id, fut.await) }));
                }
            }
        }
        while let Some(event) = machine.poll_event() {
            on_event(event);
        }
        if machine.is_finished() && in_flight.is_empty() {
            return Ok(());
        }
        let now = clock.now();
        let mut deadline = machine.poll_timeout();
        if !counters.is_empty() {
            let tick = now + PROGRESS_INTERVAL;
            deadline = Some(deadline.map_or(tick, |d| d.min(tick)));
        }
        let wait = async {
            match (in_flight.is_empty(), deadline) {
                (true, None) => Err(Misuse::Stalled),
                (true, Some(at)) => {
                    clock.sleep_until(at).await;
                    Ok(None)
                }
                (false, None) => Ok(in_flight.next().await),
                (false, Some(at)) => match select(in_flight.next(), clock.sleep_until(at)).await {
                    Either::Left((done, _)) => Ok(done),
                    Either::Right(((), _)) => Ok(None),
                },
            }
        };
        let done = match stop.as_mut() {
            None => wait.await?,
            Some(signal) => match select(Box::pin(wait), signal.as_mut()).await {
                Either::Left((done, _)) => done?,
                Either::Right(((), _)) => {
                    stop = None;
                    machine.stop(clock.now());
                    continue;
                }
            },
        };
        let now = clock.now();
        for (id, (counter, reported)) in counters.iter_mut() {
            let bytes = counter.load(Ordering::Relaxed);
            if bytes != *reported {
                *reported = bytes;
                machine.handle_progress(*id, bytes);
            }
        }
        match done {
            Some(Done::Sent(id, result)) => machine.handle(id, Completion::of_send(result), now)?,
            Some(Done::Transferred(id, result)) => {
                counters.remove(&id);
                machine.handle(id, Completion::of_transfer(result), now)?
            }
            None => {}
        }
        if machine.poll_timeout().is_some_and(|at| at <= now) {
            machine.handle_timeout(now);
        }
    }
}
