//! ferry-native: the native transport of ferry, on reqwest and tokio.
//!
//! [`NativeTransport`] performs the core's actions: small requests whole, blobs streamed
//! from source to destination through the core's `Verifier` with memory that does not
//! grow with the blob. [`TokioClock`] is the core's clock on tokio's timer.
//! [`credentials`] reads docker's `config.json` and its credential helpers.
//!
//! A job runs like this:
//!
//! 1. Build the plan and a `SyncMachine` with `clock.now()` and `clock.wall_now()`.
//! 2. Call [`run_sync`]: it drains the machine's actions and events, starts each action on
//!    the transport, waits for the first to finish or for the machine's next deadline,
//!    feeds the outcome back, and repeats until the machine has finished.

mod allow;
mod body;
mod client;
mod clock;
pub mod credentials;
mod errors;
mod feed;
mod options;
mod source;
mod tee;
mod tls;
mod transport;
mod upload;

pub use clock::{wall_now, TokioClock};
pub use options::{
    BuildError, NativeOptions, DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_THRESHOLD, DEFAULT_MAX_ANSWER_BYTES,
};
pub use tls::{RegistryTls, TlsOptions, CERTS_D_ENV, DEFAULT_CERTS_D};
pub use transport::{NativeTransport, UploadJournal};

use ferry_core::machine::{Machine, Misuse};
use ferry_core::progress::Event;

/// Runs `machine` to the end over `transport` on tokio, handing each progress event to
/// `on_event`. A thin wrapper of [`ferry_core::driver::run`].
pub async fn run_sync(
    machine: &mut impl Machine,
    transport: &NativeTransport,
    clock: &TokioClock,
    on_event: impl FnMut(Event),
) -> Result<(), Misuse> {
    ferry_core::driver::run(machine, transport, clock, on_event).await
}

/// As [`run_sync`], and stops the machine (nothing new starts, work in flight ends) once
/// `stop` resolves. A thin wrapper of [`ferry_core::driver::run_until`].
pub async fn run_sync_until(
    machine: &mut impl Machine,
    transport: &NativeTransport,
    clock: &TokioClock,
    on_event: impl FnMut(Event),
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), Misuse> {
    ferry_core::driver::run_until(machine, transport, clock, on_event, stop).await
}
