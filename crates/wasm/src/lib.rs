//! ferry-wasm: ferry in the browser and at the edge.
//!
//! The same core machines as the CLI (`SyncMachine`, `DiffMachine`), run by the core's one
//! driver over `fetch`. The JavaScript API (`listTags`, `inspect`, `diff`, `copy`,
//! `version`) is in [`exports`]; the transport in [`BrowserTransport`].
//!
//! Nothing here assumes `window`: `fetch`, `setTimeout` and `performance` are looked up on
//! the global object, so the module runs in a page, a Web Worker, an edge runtime and
//! Node >= 18.
//!
//! A browser cannot stream a request body over HTTP/1.1, so a blob goes up in `PATCH`
//! chunks of at most [`BrowserOptions::chunk_size`] bytes, each verified by the core's
//! `Verifier` as it is read from the source. The upload is closed with `PUT ?digest=`
//! only once the whole blob has verified. A transfer never holds more than one chunk.
//!
//! The crate is empty on other targets.
#![cfg(target_arch = "wasm32")]

mod abort;
mod clock;
mod errors;
pub mod exports;
mod fetch;
mod input;
mod jobs;
mod js;
mod transport;
mod upload;

pub use clock::BrowserClock;
pub use jobs::{copy_with, DEFAULT_MAX_TRANSFERS};
pub use transport::{BrowserOptions, BrowserTransport, DEFAULT_CHUNK_SIZE};
