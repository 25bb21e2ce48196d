//! The verbs every ferry state machine shares, after str0m and quinn-proto.
//!
//! A machine hands out [`Action`]s and [`Event`]s, and takes back what became of each
//! action as one [`Completion`], with the time. It never reads a clock, never sleeps and
//! never touches a socket: the caller (a driver) does, and the machine only decides.

use crate::progress::Event;
use crate::session::{Outcome, Session};
use crate::time::Instant;
use crate::transport::{Action, ActionId, TransferReport, TransportError};

/// What became of one action.
#[derive(Debug)]
pub enum Completion {
    /// A small request ([`Action::Send`]) was answered, whatever the status.
    Response(http::Response<Vec<u8>>),
    /// A blob move ([`Action::Transfer`]) verified and committed.
    Transfer(TransferReport),
    /// The action failed below HTTP, or a transfer stopped on a status.
    Failure(TransportError),
}

impl Completion {
    /// The completion of a [`Action::Send`], from a transport's result.
    pub fn of_send(result: Result<http::Response<Vec<u8>>, TransportError>) -> Self {
        result.map_or_else(Completion::Failure, Completion::Response)
    }

    /// The completion of a [`Action::Transfer`], from a transport's result.
    pub fn of_transfer(result: Result<TransferReport, TransportError>) -> Self {
        result.map_or_else(Completion::Failure, Completion::Transfer)
    }
}

/// Misuse of a machine's API by its driver (as opposed to bad input from the network).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Misuse {
    /// A completion was fed for an action the machine did not hand out, or fed twice.
    #[error("action {0} is not in flight: each action's completion must be fed back exactly once")]
    UnknownAction(ActionId),
    /// A transfer's completion was fed for a small request, or an answer for a transfer.
    #[error("action {0} was fed the completion of another kind of action")]
    WrongCompletion(ActionId),
    /// The machine has nothing in flight, no deadline, and has not finished: a driver bug.
    #[error(
        "the machine is waiting for nothing: actions were dropped without feeding their completions back"
    )]
    Stalled,
}

/// A sans-IO ferry machine.
///
/// # The calling contract
///
/// 1. **Drain.** Call [`poll_action`](Machine::poll_action) until it returns `None` and
///    start every action; then call [`poll_event`](Machine::poll_event) until it returns
///    `None`. Actions come before events, so an event never announces work the driver has
///    not been handed.
/// 2. **Stop** once [`is_finished`](Machine::is_finished) is true and no action is in
///    flight. The last event a job emits is `job_finished`.
/// 3. **Wait** for the first action to finish, or for
///    [`poll_timeout`](Machine::poll_timeout), whichever comes first. Nothing in flight
///    and no deadline while unfinished is a driver bug ([`Misuse::Stalled`]).
/// 4. **Feed** the finished action with [`handle`](Machine::handle), or call
///    [`handle_timeout`](Machine::handle_timeout) once `now` reached the deadline; then go
///    back to 1. Every action's completion is fed exactly once; anything else is
///    [`Misuse`], reported as an error, never a hang.
///
/// `now` is the driver's monotonic clock; the machine only compares and adds to it, so a
/// virtual clock runs a whole job in simulated time.
pub trait Machine {
    /// The next action to start, if any.
    fn poll_action(&mut self) -> Option<Action>;
    /// The next progress event, if any.
    fn poll_event(&mut self) -> Option<Event>;
    /// When [`Machine::handle_timeout`] must be called next, if ever.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Feeds what became of action `id`.
    fn handle(&mut self, id: ActionId, completion: Completion, now: Instant) -> Result<(), Misuse>;
    /// Bytes a transfer has moved so far, for progress events. Optional to call.
    fn handle_progress(&mut self, id: ActionId, bytes: u64);
    /// The deadline of [`Machine::poll_timeout`] has passed.
    fn handle_timeout(&mut self, now: Instant);
    /// Whether the job is over (its last event has been handed out or is queued).
    fn is_finished(&self) -> bool;
    /// Stop starting work: what is in flight runs to its end (a driver keeps feeding it),
    /// nothing new starts, and the job finishes as soon as the work in flight has. For a
    /// service's graceful shutdown. Calling it again changes nothing.
    fn stop(&mut self, now: Instant);
}

/// What a machine built over a [`Session`] supplies; the [`Machine`] verbs come with it.
///
/// The session owns actions, timers and events; the machine routes each call's outcome
/// by the purpose it submitted the call with, and says when it is finished.
pub(crate) trait SessionMachine {
    /// What a call was for, so its outcome can be routed.
    type Purpose: Clone;
    fn session(&self) -> &Session<Self::Purpose>;
    fn session_mut(&mut self) -> &mut Session<Self::Purpose>;
    /// A call the machine submitted has ended.
    fn on_outcome(&mut self, purpose: Self::Purpose, outcome: Outcome, now: Instant);
    /// A transfer has moved `bytes` so far.
    fn on_progress(&mut self, _purpose: Self::Purpose, _bytes: u64) {}
    /// Every outcome of one input has been routed: the machine may finish now.
    fn settle(&mut self, _now: Instant) {}
    /// Start no new work; see [`Machine::stop`].
    fn stop_starting(&mut self, _now: Instant) {}
    fn finished(&self) -> bool;

    /// Routes every ended call, then lets the machine settle.
    fn pump(&mut self, now: Instant) {
        while let Some((purpose, outcome)) = self.session_mut().poll_done() {
            self.on_outcome(purpose, outcome, now);
        }
        self.settle(now);
    }
}

impl<M: SessionMachine> Machine for M {
    fn poll_action(&mut self) -> Option<Action> {
        self.session_mut().poll_action()
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.session_mut().poll_event()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.session().poll_timeout()
    }

    fn handle(&mut self, id: ActionId, completion: Completion, now: Instant) -> Result<(), Misuse> {
        self.session_mut().handle(id, completion, now)?;
        self.pump(now);
        Ok(())
    }

    fn handle_progress(&mut self, id: ActionId, bytes: u64) {
        if let Some(purpose) = self.session().purpose_of(id).cloned() {
            self.on_progress(purpose, bytes);
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.session_mut().handle_timeout(now);
        self.pump(now);
    }

    fn is_finished(&self) -> bool {
        self.finished()
    }

    fn stop(&mut self, now: Instant) {
        self.stop_starting(now);
        self.pump(now);
    }
}
