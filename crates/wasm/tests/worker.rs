//! The same module in a dedicated Web Worker, where there is no `window`: `fetch`,
//! `setTimeout` and `performance` come from the worker's global scope.
#![cfg(target_arch = "wasm32")]

mod support;

use ferry_wasm::exports::list_tags;
use ferry_wasm::{copy_with, BrowserOptions};
use serde_json::json;
use support::{bytes, destination, json, repo, source, unique};
use wasm_bindgen::JsValue;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_dedicated_worker);

#[wasm_bindgen_test]
async fn a_worker_lists_and_copies_in_chunks() {
    assert!(js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("window")).unwrap().is_undefined());
    let (src, dst) = (source(), destination());
    let name = unique("worker/app");
    let image = src.push_image(&name, Some("v1"), "linux/amd64", &[bytes(61, 150 * 1024)]).await;

    let tags = list_tags(repo(&src, &name)).await.expect("listTags");
    assert_eq!(json(&tags), json!(["v1"]));

    let options = BrowserOptions::default().with_chunk_size(64 * 1024);
    let report =
        copy_with(repo(&src, &name), repo(&dst, &name), JsValue::UNDEFINED, options).await.expect("copy");
    assert_eq!(json(&report)["status"], "succeeded");
    assert_eq!(dst.head_manifest(&name, "v1").await.as_deref(), Some(image.digest.as_str()));
}
