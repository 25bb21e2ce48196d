//! The page's CORS lists (`NEEDED` in web/cors.js) are written by hand beside the ones
//! `ferry serve --cors-origin` sends (src/middleware/cors.rs). The page probes a registry
//! for every method and header in `NEEDED` and prints a configuration that allows them, so
//! `ferry serve` must allow at least those, or the page would call ferry's own registry
//! misconfigured (and ferry-wasm would fail against it).

use std::collections::BTreeSet;

use ferry_registry::middleware::cors::{ALLOW_HEADERS, ALLOW_METHODS, EXPOSE_HEADERS};

const CORS_JS: &str = include_str!("../../../web/cors.js");

/// The string items of `NEEDED.<key>` in web/cors.js, lowercased (header names are
/// case-insensitive).
fn needed(key: &str) -> BTreeSet<String> {
    let needed = CORS_JS.split_once("export const NEEDED = {").expect("web/cors.js exports NEEDED").1;
    let needed = needed.split_once("};").unwrap().0;
    let list = needed
        .split_once(&format!("{key}: ["))
        .unwrap_or_else(|| panic!("NEEDED.{key} in web/cors.js"))
        .1
        .split_once(']')
        .unwrap()
        .0;
    let items: BTreeSet<String> = list.split('\'').skip(1).step_by(2).map(str::to_ascii_lowercase).collect();
    assert!(!items.is_empty(), "NEEDED.{key} is empty");
    items
}

fn rust(list: &str) -> BTreeSet<String> {
    list.split(',').map(|item| item.trim().to_ascii_lowercase()).collect()
}

#[test]
fn ferry_serve_allows_every_method_the_page_needs_and_no_other() {
    assert_eq!(needed("methods"), rust(ALLOW_METHODS), "NEEDED.methods (web/cors.js) vs ALLOW_METHODS");
}

#[test]
fn ferry_serve_allows_every_request_header_the_page_needs() {
    let missing: Vec<_> = needed("headers").difference(&rust(ALLOW_HEADERS)).cloned().collect();
    assert!(missing.is_empty(), "in NEEDED.headers (web/cors.js) but not in ALLOW_HEADERS: {missing:?}");
}

#[test]
fn ferry_serve_exposes_every_response_header_the_page_needs() {
    let missing: Vec<_> = needed("expose").difference(&rust(EXPOSE_HEADERS)).cloned().collect();
    assert!(missing.is_empty(), "in NEEDED.expose (web/cors.js) but not in EXPOSE_HEADERS: {missing:?}");
}
