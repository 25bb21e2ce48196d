//! What a promise of the JavaScript API rejects with: an `Error` whose `message` is one
//! line, and whose `name` tells the page what kind of failure it is.

use ferry_core::error::{Error, ErrorKind};
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
    /// Anything else (the registry refused, the image does not exist): `name = "Error"`,
    /// with the core's kind of failure (`not_found`, `unauthorized`, ...) in `kind` when it
    /// has one.
    Failed { message: String, kind: Option<ErrorKind> },
}

impl ApiError {
    pub(crate) fn input(message: impl Into<String>) -> Self {
        ApiError::Input(message.into())
    }

    /// A failure the core gave no kind.
    pub(crate) fn failed(message: impl Into<String>) -> Self {
        ApiError::Failed { message: message.into(), kind: None }
    }
}

/// A failure of the core's, with its kind.
impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        ApiError::Failed { message: error.message().to_owned(), kind: Some(error.kind()) }
    }
}

/// A JavaScript exception from a call the API made.
impl From<JsValue> for ApiError {
    fn from(error: JsValue) -> Self {
        ApiError::failed(crate::js::message_of(&error))
    }
}

impl From<ApiError> for JsValue {
    fn from(error: ApiError) -> JsValue {
        let (name, message) = match &error {
            ApiError::Input(message) => ("InputError", message.clone()),
            ApiError::Network { message, .. } => ("NetworkError", message.clone()),
            ApiError::Aborted => ("AbortError", "the operation was aborted".to_owned()),
            ApiError::Failed { message, .. } => ("Error", message.clone()),
        };
        let js = js_sys::Error::new(&message);
        js.set_name(name);
        match error {
            ApiError::Network { registry, report, .. } => {
                set(&js, "registry", &JsValue::from_str(&registry));
                if let Some(report) = report {
                    set(&js, "report", &report);
                }
            }
            ApiError::Failed { kind: Some(kind), .. } => set(&js, "kind", &JsValue::from_str(kind.as_str())),
            _ => {}
        }
        js.into()
    }
}

fn set(target: &js_sys::Error, key: &str, value: &JsValue) {
    // Setting a property on a fresh Error cannot fail.
    let _ = js_sys::Reflect::set(target, &JsValue::from_str(key), value);
}
