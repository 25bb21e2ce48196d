//! [`BrowserClock`]: the core's clock on `performance.now()` and `setTimeout`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use ferry_core::time::{Instant, UnixTime};
use ferry_core::transport::{BoxFuture, Clock};
use js_sys::Promise;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;

use crate::js;

/// Monotonic time from `performance.now()`, measured from the clock's creation.
#[derive(Debug, Clone, Copy)]
pub struct BrowserClock {
    origin_ms: f64,
}

impl BrowserClock {
    pub fn new() -> Self {
        BrowserClock { origin_ms: js::performance_now() }
    }

    /// The wall clock (`Date.now()`), for the machines' `Retry-After` dates and token expiry.
    pub fn wall_now(&self) -> UnixTime {
        wall_now()
    }
}

impl Default for BrowserClock {
    fn default() -> Self {
        BrowserClock::new()
    }
}

impl Clock for BrowserClock {
    fn now(&self) -> Instant {
        let elapsed = (js::performance_now() - self.origin_ms).max(0.0);
        Instant::from_origin(Duration::from_secs_f64(elapsed / 1000.0))
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'_, ()> {
        Box::pin(Sleep::new(deadline.saturating_since(self.now())))
    }
}

/// Seconds since the Unix epoch, from `Date.now()`.
pub(crate) fn wall_now() -> UnixTime {
    UnixTime((js_sys::Date::now() / 1000.0).max(0.0) as u64)
}

/// A `setTimeout` as a future. Dropping it clears the timer, so that an abandoned wait
/// neither fires nor keeps Node's event loop alive.
pub(crate) struct Sleep {
    timer: JsValue,
    done: JsFuture,
}

/// `setTimeout` takes a signed 32-bit delay; longer ones fire at once.
const MAX_DELAY_MS: f64 = 2_147_483_647.0;

impl Sleep {
    pub(crate) fn new(duration: Duration) -> Self {
        let millis = (duration.as_secs_f64() * 1000.0).ceil().min(MAX_DELAY_MS);
        let mut timer = JsValue::UNDEFINED;
        let promise = Promise::new(&mut |resolve, _reject| timer = js::set_timeout(&resolve, millis));
        Sleep { timer, done: JsFuture::from(promise) }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.done).poll(cx).map(drop)
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        js::clear_timeout(&self.timer);
    }
}
