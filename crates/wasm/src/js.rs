//! The few globals ferry needs, looked up on the global object rather than on `window`,
//! which a Web Worker, an edge runtime and Node do not have.

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use web_sys::RequestInit;

#[wasm_bindgen]
extern "C" {
    /// The global `fetch` (Fetch standard, "fetch method"), present in pages, workers and
    /// Node >= 18. `catch`: a bad argument may throw instead of rejecting.
    #[wasm_bindgen(js_name = fetch, catch)]
    pub(crate) fn fetch(url: &str, init: &RequestInit) -> Result<Promise, JsValue>;

    #[wasm_bindgen(js_name = setTimeout)]
    pub(crate) fn set_timeout(handler: &Function, millis: f64) -> JsValue;

    /// Takes what `setTimeout` returned: a number in browsers, a `Timeout` object in Node.
    #[wasm_bindgen(js_name = clearTimeout)]
    pub(crate) fn clear_timeout(id: &JsValue);

    /// The High Resolution Time standard's monotonic clock, in milliseconds.
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    pub(crate) fn performance_now() -> f64;
}

/// `object[key]`, or `undefined`.
pub(crate) fn get(object: &JsValue, key: &str) -> JsValue {
    if object.is_object() || object.is_function() {
        js_sys::Reflect::get(object, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
    } else {
        JsValue::UNDEFINED
    }
}

/// A thrown value's `message` (and its `cause`'s, as Node's `fetch failed` carries the
/// real reason there), or the value as text.
pub(crate) fn message_of(error: &JsValue) -> String {
    let mut message = get(error, "message").as_string().or_else(|| error.as_string()).unwrap_or_default();
    let cause = get(error, "cause");
    if let Some(detail) = get(&cause, "message").as_string().filter(|d| !d.is_empty()) {
        message = if message.is_empty() { detail } else { format!("{message}: {detail}") };
    }
    if message.is_empty() {
        "unknown error".to_owned()
    } else {
        message
    }
}

/// A plain JS value from a serialisable Rust one, through JSON, so that it reads exactly
/// like the CLI's JSON output.
pub(crate) fn to_js(value: &impl serde::Serialize) -> Result<JsValue, JsValue> {
    let text = serde_json::to_string(value).map_err(|e| JsValue::from(js_sys::Error::new(&e.to_string())))?;
    js_sys::JSON::parse(&text)
}

/// A JS function, if `value` is one.
pub(crate) fn function(value: JsValue) -> Option<Function> {
    value.dyn_into::<Function>().ok()
}
