//! `copy` in headless Chromium between two real `ferry serve` registries: a multi-arch
//! index with its digests, a platform filter, chunked uploads and their resume, a source
//! that lies, and aborting.
#![cfg(target_arch = "wasm32")]

mod support;

use std::cell::RefCell;
use std::rc::Rc;

use ferry_core::digest::Digest;
use ferry_wasm::exports::copy;
use ferry_wasm::{copy_with, BrowserOptions};
use serde_json::{json, Value};
use support::{bytes, destination, error_parts, js, json, pause, repo, source, unique, Tap};
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

const KIB: usize = 1024;

/// Copy options with an `onProgress` that records every event.
struct Recorder {
    options: JsValue,
    events: Rc<RefCell<Vec<Value>>>,
    /// Lives as long as the options that point at it.
    _callback: Closure<dyn FnMut(JsValue)>,
}

impl Recorder {
    fn new(extra: Value) -> Recorder {
        let events = Rc::new(RefCell::new(Vec::new()));
        let sink = events.clone();
        let callback =
            Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| sink.borrow_mut().push(json(&event)));
        let options = js(&extra);
        js_sys::Reflect::set(&options, &JsValue::from_str("onProgress"), callback.as_ref())
            .expect("onProgress");
        Recorder { options, events, _callback: callback }
    }

    fn events(&self) -> Vec<Value> {
        self.events.borrow().clone()
    }
}

/// PATCH `Content-Range`s the tap saw for uploads into `repository` at `registry`.
fn patch_ranges(tap: &Tap, base: &str, repository: &str) -> Vec<String> {
    tap.seen(&format!("{base}/v2/{repository}/blobs/uploads/"))
        .into_iter()
        .filter(|s| s.method == "PATCH")
        .map(|s| s.content_range.unwrap_or_default())
        .collect()
}

fn ranges(size: usize, chunk: usize) -> Vec<String> {
    (0..size).step_by(chunk).map(|start| format!("{start}-{}", (start + chunk).min(size) - 1)).collect()
}

#[wasm_bindgen_test]
async fn copy_of_a_multi_arch_index_keeps_every_digest() {
    let (src, dst) = (source(), destination());
    let (from, to) = (unique("copy/multi"), unique("copy/mirror"));
    let index = src.push_index(&from, "v1", &["linux/amd64", "linux/arm64"], 40 * KIB).await;
    let single = src.push_image(&from, Some("single"), "linux/amd64", &[bytes(21, 10 * KIB)]).await;

    let recorder = Recorder::new(json!({}));
    let report = copy(repo(&src, &from), repo(&dst, &to), recorder.options.clone()).await.expect("copy");
    let report = json(&report);
    assert_eq!(report["status"], "succeeded", "{report}");
    assert_eq!((&report["summary"]["copied"], &report["summary"]["failed"]), (&json!(2), &json!(0)));

    assert_eq!(dst.head_manifest(&to, "v1").await.as_deref(), Some(index.digest.as_str()));
    assert_eq!(dst.head_manifest(&to, "single").await.as_deref(), Some(single.digest.as_str()));
    for child in &index.children {
        assert_eq!(dst.head_manifest(&to, child).await.as_deref(), Some(child.as_str()));
    }

    let events = recorder.events();
    assert_eq!(events.first().map(|e| &e["event"]), Some(&json!("plan_ready")));
    let last = events.last().expect("events");
    assert_eq!((&last["event"], &last["status"]), (&json!("job_finished"), &json!("succeeded")));
    let done: Vec<&Value> = events.iter().filter(|e| e["event"] == "image_done").collect();
    assert_eq!(done.len(), 2);

    let again = copy(repo(&src, &from), repo(&dst, &to), JsValue::UNDEFINED).await.expect("again");
    assert_eq!(json(&again)["summary"]["skipped"], json!(2), "a second copy finds both in sync");
}

#[wasm_bindgen_test]
async fn copy_with_a_platform_filter_rewrites_the_index() {
    let (src, dst) = (source(), destination());
    let name = unique("copy/filter");
    let index = src.push_index(&name, "v1", &["linux/amd64", "linux/arm64"], 8 * KIB).await;
    let options = js(&json!({ "tags": ["v1"], "platforms": ["linux/arm64"] }));
    let report = copy(repo(&src, &name), repo(&dst, &name), options).await.expect("copy");
    let image = &json(&report)["images"][0];
    assert_eq!((&image["outcome"], &image["rewritten_from"]), (&json!("copied"), &json!(index.digest)));
    let rewritten = dst.head_manifest(&name, "v1").await.expect("the index was pushed");
    assert_ne!(rewritten, index.digest);
    assert_eq!(
        dst.head_manifest(&name, &index.children[1]).await.as_deref(),
        Some(index.children[1].as_str())
    );
    assert_eq!(dst.head_manifest(&name, &index.children[0]).await, None, "amd64 was left out");
}

#[wasm_bindgen_test]
async fn a_blob_larger_than_a_chunk_goes_up_in_several_patches() {
    let (src, dst) = (source(), destination());
    let layer = bytes(31, 300 * KIB + 7);
    let name = unique("copy/chunked");
    let image = src.push_image(&name, Some("big"), "linux/amd64", std::slice::from_ref(&layer)).await;
    let tap = Tap::install();

    let options = BrowserOptions::default().with_chunk_size(64 * KIB);
    let report =
        copy_with(repo(&src, &name), repo(&dst, &name), JsValue::UNDEFINED, options).await.expect("copy");
    assert_eq!(json(&report)["status"], "succeeded");

    // The layer in five PATCHes; the config, smaller than a chunk, in its closing PUT.
    assert_eq!(patch_ranges(&tap, dst.base, &name), ranges(layer.len(), 64 * KIB));
    let digest = Digest::sha256(&layer).to_string();
    assert_eq!(dst.blob(&name, &digest).await.as_deref(), Some(layer.as_slice()));
    assert_eq!(dst.head_manifest(&name, "big").await.as_deref(), Some(image.digest.as_str()));
}

#[wasm_bindgen_test]
async fn a_failed_patch_resumes_where_the_registry_stands() {
    let (src, dst) = (source(), destination());
    let layer = bytes(32, 200 * KIB);
    let name = unique("copy/resume");
    src.push_image(&name, Some("v1"), "linux/amd64", std::slice::from_ref(&layer)).await;
    let tap = Tap::install();
    let uploads = format!("{}/v2/{name}/blobs/uploads/", dst.base);
    // The first PATCH never leaves; the second arrives but its answer is lost.
    tap.fault("PATCH", &uploads, "fail", 1);
    tap.fault("PATCH", &uploads, "lose-answer", 1);

    let options = BrowserOptions::default().with_chunk_size(64 * KIB);
    let report =
        copy_with(repo(&src, &name), repo(&dst, &name), JsValue::UNDEFINED, options).await.expect("copy");
    let report = json(&report);
    assert_eq!(report["status"], "succeeded", "{report}");
    assert_eq!(report["summary"]["retries"], json!(0), "the transport resumed; the core did not retry");

    let mut want = vec!["0-65535".to_owned()];
    want.extend(ranges(layer.len(), 64 * KIB));
    assert_eq!(patch_ranges(&tap, dst.base, &name), want);
    let status_checks = tap.seen(&uploads).into_iter().filter(|s| s.method == "GET").count();
    assert_eq!(status_checks, 2, "one upload status per failed PATCH");
    let digest = Digest::sha256(&layer).to_string();
    assert_eq!(dst.blob(&name, &digest).await.as_deref(), Some(layer.as_slice()));
}

#[wasm_bindgen_test]
async fn a_source_that_lies_gets_nothing_pushed() {
    let (src, dst) = (source(), destination());
    let layer = bytes(41, 150 * KIB);
    let name = unique("copy/lying");
    src.push_image(&name, Some("v1"), "linux/amd64", std::slice::from_ref(&layer)).await;
    let digest = Digest::sha256(&layer).to_string();
    let tap = Tap::install();
    tap.fault("GET", &format!("{}/v2/{name}/blobs/{digest}", src.base), "corrupt", 10);

    let options = BrowserOptions::default().with_chunk_size(64 * KIB);
    let report = copy_with(repo(&src, &name), repo(&dst, &name), JsValue::UNDEFINED, options)
        .await
        .expect("a failed image is a report, not a rejection");
    let report = json(&report);
    assert_eq!(report["status"], "failed");
    let reason = report["images"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("does not match its digest"), "{reason}");

    assert_eq!(dst.head_manifest(&name, "v1").await, None, "no manifest without its blobs");
    assert_eq!(dst.blob(&name, &digest).await, None, "the lying blob was not committed");
    let seen = tap.seen(&format!("{}/v2/{name}/blobs/uploads/", dst.base));
    let hex = digest.trim_start_matches("sha256:");
    assert!(!seen.iter().any(|s| s.method == "PUT" && s.url.contains(hex)), "no closing PUT: {seen:?}");
    assert!(seen.iter().any(|s| s.method == "DELETE"), "the session was cancelled: {seen:?}");
}

#[wasm_bindgen_test]
async fn abort_stops_the_copy_and_its_requests() {
    let (src, dst) = (source(), destination());
    let layer = bytes(51, 256 * KIB);
    let name = unique("copy/abort");
    src.push_image(&name, Some("v1"), "linux/amd64", &[layer]).await;
    let tap = Tap::install();
    let uploads = format!("{}/v2/{name}/blobs/uploads/", dst.base);
    tap.fault("PATCH", &uploads, "stall", 1);

    let controller = web_sys::AbortController::new().expect("AbortController");
    let options = js(&json!({}));
    js_sys::Reflect::set(&options, &JsValue::from_str("signal"), &controller.signal()).expect("signal");
    // Abort as soon as the first PATCH is on the wire (and stalled).
    let watcher = {
        let tap = Tap;
        let uploads = uploads.clone();
        let controller = controller.clone();
        async move {
            while !tap.seen(&uploads).iter().any(|s| s.method == "PATCH") {
                pause(20).await;
            }
            controller.abort();
        }
    };
    wasm_bindgen_futures::spawn_local(watcher);

    let started = js_sys::Date::now();
    let chunked = BrowserOptions::default().with_chunk_size(64 * KIB);
    let error = copy_with(repo(&src, &name), repo(&dst, &name), options, chunked).await.expect_err("aborted");
    assert_eq!(error_parts(&error).0, "AbortError");
    assert!(js_sys::Date::now() - started < 4_000.0, "the stalled PATCH did not hold the abort up");
    assert!(tap.stall_aborted(&uploads), "the PATCH in flight was aborted through its signal");

    let before = tap.seen(&format!("/{name}/")).len();
    pause(800).await;
    assert_eq!(tap.seen(&format!("/{name}/")).len(), before, "no request after the abort");
    assert_eq!(dst.head_manifest(&name, "v1").await, None);

    // A signal that has already fired: nothing starts.
    let error = copy(repo(&src, &name), repo(&dst, &name), options_with(&controller)).await;
    assert_eq!(error_parts(&error.expect_err("aborted")).0, "AbortError");
    assert_eq!(tap.seen(&format!("/{name}/")).len(), before);
}

fn options_with(controller: &web_sys::AbortController) -> JsValue {
    let options = js(&json!({ "tags": ["v1"] }));
    js_sys::Reflect::set(&options, &JsValue::from_str("signal"), &controller.signal()).expect("signal");
    options
}
