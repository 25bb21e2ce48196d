//! ferry-core: the sans-IO core of ferry.
//!
//! The core decides everything a sync does and performs no I/O itself: no sockets, no
//! files, no environment, no clock. Time, randomness and bytes come in as arguments.
#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod digest;
pub mod manifest;
pub mod reference;
pub mod time;
