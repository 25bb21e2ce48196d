//! A deterministic test kit: in-memory registries, scripted faults and a virtual clock.
//!
//! In the spirit of str0m's netem: whole jobs run against [`FakeRegistry`]s inside a
//! [`Simulation`] whose clock only moves when nothing else can happen, so retry
//! schedules, concurrency limits and request counts can be asserted exactly.

mod limiter;
mod network;
mod quota;
mod registry;
mod simulation;

pub use limiter::RateLimit;
pub use network::{Fault, FaultAnswer, LoggedRequest, Network};
pub use quota::{Fields, Quota};
pub use registry::{FakeAuth, FakeRegistry, ImageBuilder};
pub use simulation::{SimClock, SimTransport, Simulation};
