//! What a promise of the JavaScript API rejects with: an `Error` whose `message` is one
//! line, and whose `name` tells the page what kind of failure it is.

use wasm_bindgen::JsValue;

/// A failure of one API call.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// Bad input from the caller: `name = "InputError"`.
    Input(String),
    /// `fetch` itself failed (a network error or a CORS block; a page cannot tell which):
    /// `name = "NetworkError"`, with the registry's base URL in `registry`, and the job's
    /// report in `report` when a copy had one.
    Network { message: String, registry: String, report: Option<JsValue> },
    /// The caller's `AbortSignal` fired: `name = "AbortError"`.
    Aborted,
    /// Anything else (the registry refused, the image does not exist): `name = "Error"`.
    Failed(String),
}

impl ApiError {
    pub(crate) fn input(message: impl Into<String>) -> Self {
        ApiError::Input(message.into())
    }
}

/// A JavaScript exception from a call the API made.
impl From<JsValue> for ApiError {
    fn from(error: JsValue) -> Self {
        ApiError::Failed(crate::js::message_of(&error))
    }
}

impl From<ApiError> for JsValue {
    fn from(error: ApiError) -> JsValue {
        let (name, message) = match &error {
            ApiError::Input(message) => ("InputError", message.clone()),
            ApiError::Network { message, .. } => ("NetworkError", message.clone()),
            ApiError::Aborted => ("AbortError", "the operation was aborted".to_owned()),
            ApiError::Failed(message) => ("Error", message.clone()),
        };
        let js = js_sys::Error::new(&message);
        js.set_name(name);
        if let ApiError::Network { registry, report, .. } = error {
            set(&js, "registry", &JsValue::from_str(&registry));
            if let Some(report) = report {
                set(&js, "report", &report);
            }
        }
        js.into()
    }
}

fn set(target: &js_sys::Error, key: &str, value: &JsValue) {
    // Setting a property on a fresh Error cannot fail.
    let _ = js_sys::Reflect::set(target, &JsValue::from_str(key), value);
}
