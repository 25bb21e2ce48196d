//! The read-only calls in headless Chromium against real `ferry serve` registries:
//! `listTags`, `inspect`, `diff`, and how bad input and unreachable registries reject.
#![cfg(target_arch = "wasm32")]

mod support;

use ferry_wasm::exports::{copy, diff, inspect, list_tags};
use serde_json::json;
use support::{
    bytes, destination, error_parts, js, json, repo, source, unique, without_cors, OCI_INDEX, OCI_MANIFEST,
};
use wasm_bindgen::JsValue;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn list_tags_reads_every_tag_sorted() {
    let src = source();
    let name = unique("read/tags");
    for (i, tag) in ["v2", "latest", "v10", "v1"].into_iter().enumerate() {
        src.push_image(&name, Some(tag), "linux/amd64", &[bytes(i as u64, 300)]).await;
    }
    let tags = list_tags(repo(&src, &name)).await.expect("listTags");
    assert_eq!(json(&tags), json!(["latest", "v1", "v10", "v2"]));

    let none =
        list_tags(repo(&src, &unique("read/never-pushed"))).await.expect("listTags of an empty repository");
    assert_eq!(json(&none), json!([]));
}

#[wasm_bindgen_test]
async fn inspect_reads_an_index_and_its_children() {
    let src = source();
    let name = unique("read/index");
    let index = src.push_index(&name, "multi", &["linux/amd64", "linux/arm64"], 2_000).await;
    let got = inspect(repo(&src, &name), JsValue::from_str("multi")).await.expect("inspect the index");
    assert_eq!(
        json(&got),
        json!({
            "reference": "multi",
            "digest": index.digest,
            "mediaType": OCI_INDEX,
            "size": index.size,
            "platforms": ["linux/amd64", "linux/arm64"],
        })
    );

    let child = &index.children[1];
    let got = inspect(repo(&src, &name), JsValue::from_str(child)).await.expect("inspect a child");
    let got = json(&got);
    assert_eq!(
        (&got["digest"], &got["mediaType"], &got["platforms"]),
        (&json!(child), &json!(OCI_MANIFEST), &json!([]))
    );

    let missing = inspect(repo(&src, &name), JsValue::from_str("nope")).await.expect_err("no such tag");
    let (name, message, _) = error_parts(&missing);
    assert_eq!(name, "Error");
    assert!(message.contains("no image nope"), "{message}");
}

#[wasm_bindgen_test]
async fn diff_reports_every_status() {
    let (src, dst) = (source(), destination());
    let name = unique("read/diff");
    let shared = [bytes(10, 500)];
    src.push_image(&name, Some("same"), "linux/amd64", &shared).await;
    dst.push_image(&name, Some("same"), "linux/amd64", &shared).await;
    src.push_image(&name, Some("changed"), "linux/amd64", &[bytes(11, 500)]).await;
    dst.push_image(&name, Some("changed"), "linux/amd64", &[bytes(12, 500)]).await;
    src.push_image(&name, Some("new"), "linux/amd64", &[bytes(13, 500)]).await;
    dst.push_image(&name, Some("old"), "linux/amd64", &[bytes(14, 500)]).await;

    let report = diff(repo(&src, &name), repo(&dst, &name), JsValue::UNDEFINED).await.expect("diff");
    let report = json(&report);
    let statuses: Vec<(&str, &str)> = report["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| (r["tag"].as_str().unwrap_or_default(), r["status"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(
        statuses,
        [("changed", "different"), ("new", "missing"), ("old", "extra"), ("same", "in_sync")]
    );
    let counts = (&report["in_sync"], &report["missing"], &report["different"], &report["extra"]);
    assert_eq!(counts, (&json!(1), &json!(1), &json!(1), &json!(1)));
    assert_eq!(report["errors"], json!([]));

    let detailed = diff(repo(&src, &name), repo(&dst, &name), js(&json!({ "details": true })))
        .await
        .expect("diff with details");
    let row = &json(&detailed)["rows"][0];
    assert!(row["size"].as_u64().is_some_and(|s| s > 500), "details add sizes: {row}");
}

#[wasm_bindgen_test]
async fn bad_input_rejects_with_an_input_error() {
    let src = source();
    let good = repo(&src, "read/input");
    let cases: [(&str, JsValue, JsValue, &str); 8] = [
        (
            "no scheme",
            js(&json!({"registry": "127.0.0.1:5000", "repository": "a"})),
            JsValue::UNDEFINED,
            "http://",
        ),
        ("ftp", js(&json!({"registry": "ftp://h", "repository": "a"})), JsValue::UNDEFINED, "http://"),
        (
            "user in URL",
            js(&json!({"registry": "http://u:p@h", "repository": "a"})),
            JsValue::UNDEFINED,
            "auth",
        ),
        (
            "uppercase repo",
            js(&json!({"registry": src.base, "repository": "Bad"})),
            JsValue::UNDEFINED,
            "repository",
        ),
        ("typo", js(&json!({"registry": src.base, "repsitory": "a"})), JsValue::UNDEFINED, "repsitory"),
        (
            "half auth",
            js(&json!({"registry": src.base, "repository": "a", "auth": {"username": "u"}})),
            JsValue::UNDEFINED,
            "password",
        ),
        ("bad tag", good.clone(), js(&json!({"tags": ["bad tag"]})), "tags"),
        (
            "unknown option",
            good.clone(),
            js(&json!({"platform": ["linux/amd64"]})),
            "unknown option \"platform\"",
        ),
    ];
    for (what, src_repo, opts, needle) in cases {
        let error = copy(src_repo, good.clone(), opts).await.expect_err(what);
        let (name, message, _) = error_parts(&error);
        assert_eq!(name, "InputError", "{what}: {message}");
        assert!(message.contains(needle), "{what}: {message:?} should mention {needle:?}");
        assert!(!message.contains('\n'), "{what}: one line: {message:?}");
    }
    let error = inspect(good, JsValue::from_str("sha256:xyz")).await.expect_err("bad digest");
    assert_eq!(error_parts(&error).0, "InputError");
}

#[wasm_bindgen_test]
async fn unreachable_registries_reject_with_a_network_error() {
    let closed = "http://127.0.0.1:9";
    let blocked = without_cors();
    let cases = [(closed, "a closed port"), (blocked.base, "a registry without CORS headers")];
    for (base, what) in cases {
        let target = js(&json!({ "registry": base, "repository": "read/network" }));
        let error = list_tags(target.clone()).await.expect_err(what);
        let (name, message, registry) = error_parts(&error);
        assert_eq!((name.as_str(), registry.as_deref()), ("NetworkError", Some(base)), "{what}: {message}");
        assert!(message.contains("CORS"), "{what}: {message}");

        let error = diff(repo(&source(), "read/network"), target, JsValue::UNDEFINED).await.expect_err(what);
        assert_eq!(error_parts(&error).2.as_deref(), Some(base), "{what}: diff names the registry");
    }
}
