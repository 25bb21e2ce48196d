//! `TokioClock` on tokio's paused timer, and `run_sync` driving a machine over the
//! transport.

mod support;

use std::collections::VecDeque;
use std::time::Duration;

use ferry_core::machine::{Completion, Machine, Misuse};
use ferry_core::progress::Event;
use ferry_core::time::Instant;
use ferry_core::transport::{Action, ActionId, Clock, TransferReport};
use ferry_native::{run_sync, NativeTransport, TokioClock};
use support::{sample, Config, Server};

#[tokio::test(start_paused = true)]
async fn the_clock_follows_tokio_time() {
    let clock = TokioClock::new();
    assert_eq!(clock.now(), Instant::ZERO);
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(clock.now(), Instant::from_origin(Duration::from_secs(5)));
    clock.sleep_until(Instant::from_origin(Duration::from_secs(65))).await;
    assert_eq!(clock.now(), Instant::from_origin(Duration::from_secs(65)));
    // A deadline in the past does not wait.
    clock.sleep_until(Instant::ZERO).await;
    assert_eq!(clock.now(), Instant::from_origin(Duration::from_secs(65)));
    assert!(clock.wall_now().0 > 1_600_000_000, "the wall clock reads the system time");
}

/// Sends one request, then moves one blob, then finishes.
#[derive(Default)]
struct TwoSteps {
    actions: VecDeque<Action>,
    then: Option<Action>,
    answers: Vec<u16>,
    transfers: Vec<TransferReport>,
    progress: u64,
}

impl Machine for TwoSteps {
    fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }
    fn poll_event(&mut self) -> Option<Event> {
        None
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn handle(&mut self, id: ActionId, completion: Completion, _: Instant) -> Result<(), Misuse> {
        match completion {
            Completion::Response(response) => {
                self.answers.push(response.status().as_u16());
                self.actions.extend(self.then.take());
            }
            Completion::Transfer(report) => self.transfers.push(report),
            Completion::Failure(_) => return Err(Misuse::UnknownAction(id)),
        }
        Ok(())
    }
    fn handle_progress(&mut self, _: ActionId, bytes: u64) {
        self.progress = bytes;
    }
    fn handle_timeout(&mut self, _: Instant) {}
    fn is_finished(&self) -> bool {
        self.actions.is_empty() && self.then.is_none() && self.transfers.len() == 1
    }
    fn stop(&mut self, _: Instant) {}
}

#[tokio::test]
async fn run_sync_drives_a_machine_over_the_transport() {
    let source = Server::start(Config::default()).await;
    let destination = Server::start(Config::default()).await;
    let (digest, size) = source.add_blob(sample(300 * 1024));
    let request =
        http::Request::get(format!("{}/v2/src/app/manifests/v1", source.base)).body(Vec::new()).unwrap();
    let mut machine = TwoSteps {
        actions: VecDeque::from([Action::Send { id: ActionId(1), request }]),
        then: Some(Action::Transfer {
            id: ActionId(2),
            transfer: support::transfer(&source, &destination, &digest, size),
        }),
        ..TwoSteps::default()
    };
    let transport = NativeTransport::new().unwrap();
    run_sync(&mut machine, &transport, &TokioClock::new(), |_| {}).await.unwrap();
    assert_eq!(machine.answers, vec![200]);
    assert_eq!(machine.transfers, vec![TransferReport { bytes: size }]);
    assert_eq!(destination.state().committed.len(), 1);
}
