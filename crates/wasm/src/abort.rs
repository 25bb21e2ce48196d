//! The caller's `AbortSignal`, as a future the job races against.
//!
//! Every request has an `AbortController` of its own, aborted when the request is dropped
//! (see [`crate::fetch`]). When the caller aborts, the job's future is dropped: no new work
//! starts, and every request still in flight is aborted with it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use js_sys::{Function, Promise};
use wasm_bindgen_futures::JsFuture;
use web_sys::AbortSignal;

/// Resolves when the signal fires; never, without a signal. Dropping it removes its
/// listener.
pub(crate) struct AbortWait {
    listening: Option<(AbortSignal, Function, JsFuture)>,
    already: bool,
}

impl AbortWait {
    pub(crate) fn new(signal: Option<&AbortSignal>) -> Self {
        let Some(signal) = signal else { return AbortWait { listening: None, already: false } };
        if signal.aborted() {
            return AbortWait { listening: None, already: true };
        }
        let mut listener = None;
        let promise = Promise::new(&mut |resolve, _reject| {
            // The promise's own resolve function is the listener: no Rust closure to keep alive.
            if signal.add_event_listener_with_callback("abort", &resolve).is_ok() {
                listener = Some(resolve);
            }
        });
        let listening = listener.map(|listener| (signal.clone(), listener, JsFuture::from(promise)));
        AbortWait { listening, already: false }
    }
}

impl Future for AbortWait {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.already {
            return Poll::Ready(());
        }
        match &mut self.listening {
            Some((_, _, fired)) => Pin::new(fired).poll(cx).map(drop),
            None => Poll::Pending,
        }
    }
}

impl Drop for AbortWait {
    fn drop(&mut self) {
        if let Some((signal, listener, _)) = &self.listening {
            let _ = signal.remove_event_listener_with_callback("abort", listener);
        }
    }
}
