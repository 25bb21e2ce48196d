//! What the browser tests share: the registries' URLs, pushing sample images with plain
//! HTTP, reading the destination back, and a wire tap on `fetch` that logs ferry's
//! requests and injects faults.
//!
//! The registries are real `ferry serve --storage memory` processes that `just test-wasm`
//! starts (scripts/test-wasm.sh); their URLs come in at compile time.
// Each test file compiles this as a private module of its own and uses its own part of it:
// `pub` marks what test files call.
#![allow(dead_code, unreachable_pub)]

use ferry_core::digest::Digest;
use js_sys::{Function, Reflect, Uint8Array};
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Headers, RequestInit, Response};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

fn url(name: &str, value: Option<&'static str>) -> &'static str {
    value.unwrap_or_else(|| panic!("{name} is not set: run `just test-wasm`, which starts the registries"))
}

/// The source registry, with CORS open to any origin.
pub fn source() -> Registry {
    Registry { base: url("FERRY_WASM_SRC", option_env!("FERRY_WASM_SRC")) }
}

/// The destination registry, with CORS open to any origin.
pub fn destination() -> Registry {
    Registry { base: url("FERRY_WASM_DST", option_env!("FERRY_WASM_DST")) }
}

/// A registry that sends no CORS headers, so a page may not read it.
pub fn without_cors() -> Registry {
    Registry { base: url("FERRY_WASM_NO_CORS", option_env!("FERRY_WASM_NO_CORS")) }
}

/// `{registry, repository}` as the API takes it.
pub fn repo(registry: &Registry, repository: &str) -> JsValue {
    js(&json!({ "registry": registry.base, "repository": repository }))
}

/// A JS value from JSON.
pub fn js(value: &Value) -> JsValue {
    js_sys::JSON::parse(&value.to_string()).expect("JSON parses")
}

/// A JS value as JSON.
pub fn json(value: &JsValue) -> Value {
    let text = js_sys::JSON::stringify(value).expect("stringify").as_string().expect("a string");
    serde_json::from_str(&text).expect("JSON")
}

/// An error's `name`, `message` and (for a NetworkError) `registry`.
pub fn error_parts(error: &JsValue) -> (String, String, Option<String>) {
    let get = |key: &str| Reflect::get(error, &JsValue::from_str(key)).ok().and_then(|v| v.as_string());
    (get("name").unwrap_or_default(), get("message").unwrap_or_default(), get("registry"))
}

/// Deterministic bytes (xorshift64*), different for each seed.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// An HTTP answer, read whole.
pub struct Answer {
    pub status: u16,
    pub headers: Headers,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).ok().flatten()
    }
}

/// One request with the page's own `fetch` (not the tapped one).
pub async fn http(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Answer {
    let init = RequestInit::new();
    init.set_method(method);
    let h = Headers::new().expect("Headers");
    for (name, value) in headers {
        h.set(name, value).expect("header");
    }
    init.set_headers(&h.into());
    if let Some(body) = body {
        init.set_body(&Uint8Array::from(body));
    }
    let fetch = real_fetch();
    let promise = fetch.call2(&JsValue::NULL, &JsValue::from_str(url), &init).expect("fetch");
    let response: Response = JsFuture::from(js_sys::Promise::from(promise))
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e:?}"))
        .into();
    let body = JsFuture::from(response.array_buffer().expect("body")).await.expect("body");
    Answer { status: response.status(), headers: response.headers(), body: Uint8Array::new(&body).to_vec() }
}

fn real_fetch() -> Function {
    let global = js_sys::global();
    let saved = Reflect::get(&global, &JsValue::from_str("__ferryRealFetch")).unwrap_or(JsValue::UNDEFINED);
    let fetch = if saved.is_function() {
        saved
    } else {
        Reflect::get(&global, &JsValue::from_str("fetch")).expect("global fetch")
    };
    fetch.into()
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({ "mediaType": media_type, "digest": Digest::sha256(bytes).to_string(), "size": bytes.len() })
}

/// A registry by base URL.
pub struct Registry {
    pub base: &'static str,
}

/// A pushed image: its manifest's digest, and every byte it is made of.
pub struct Pushed {
    pub digest: String,
    pub manifest: Vec<u8>,
    /// Manifest(s), configs and layers, as `inspect` counts them.
    pub size: u64,
    pub children: Vec<String>,
}

impl Registry {
    /// A monolithic blob upload: `POST`, then `PUT ?digest=` with the bytes.
    pub async fn push_blob(&self, repository: &str, blob: &[u8]) -> String {
        let digest = Digest::sha256(blob).to_string();
        let open = http("POST", &format!("{}/v2/{repository}/blobs/uploads/", self.base), &[], None).await;
        assert_eq!(open.status, 202, "opening an upload in {repository}");
        let location = open.header("location").expect("Location");
        let location = if location.starts_with('/') { format!("{}{location}", self.base) } else { location };
        let sep = if location.contains('?') { '&' } else { '?' };
        let put = format!("{location}{sep}digest={}", digest.replace(':', "%3A"));
        let answer = http("PUT", &put, &[("content-type", "application/octet-stream")], Some(blob)).await;
        assert_eq!(answer.status, 201, "uploading {digest} to {repository}");
        digest
    }

    pub async fn push_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> String {
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.base);
        let answer = http("PUT", &url, &[("content-type", media_type)], Some(bytes)).await;
        assert_eq!(answer.status, 201, "pushing {repository}:{reference}");
        Digest::sha256(bytes).to_string()
    }

    /// An OCI image with these layers for `platform` (`os/arch`), tagged or by digest.
    pub async fn push_image(
        &self,
        repository: &str,
        tag: Option<&str>,
        platform: &str,
        layers: &[Vec<u8>],
    ) -> Pushed {
        let (os, architecture) = platform.split_once('/').expect("os/arch");
        let config = serde_json::to_vec(&json!({
            "architecture": architecture, "os": os, "rootfs": { "type": "layers", "diff_ids": [] },
            "config": { "Labels": { "test": repository } },
        }))
        .expect("config");
        self.push_blob(repository, &config).await;
        for layer in layers {
            self.push_blob(repository, layer).await;
        }
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, &config),
            "layers": layers.iter().map(|l| descriptor(OCI_LAYER, l)).collect::<Vec<_>>(),
        }))
        .expect("manifest");
        let digest = Digest::sha256(&manifest).to_string();
        self.push_manifest(repository, tag.unwrap_or(&digest), OCI_MANIFEST, &manifest).await;
        let size = (manifest.len() + config.len() + layers.iter().map(Vec::len).sum::<usize>()) as u64;
        Pushed { digest, manifest, size, children: Vec::new() }
    }

    /// An OCI index over one image per platform, each with one layer of `layer_size`.
    pub async fn push_index(
        &self,
        repository: &str,
        tag: &str,
        platforms: &[&str],
        layer_size: usize,
    ) -> Pushed {
        let mut entries = Vec::new();
        let mut children = Vec::new();
        let mut size = 0;
        for (i, platform) in platforms.iter().enumerate() {
            let seed =
                repository.bytes().fold(i as u64, |h, b| h.wrapping_mul(0x100_0000_01b3) ^ u64::from(b));
            let layer = bytes(seed, layer_size);
            let image = self.push_image(repository, None, platform, &[layer]).await;
            let (os, architecture) = platform.split_once('/').expect("os/arch");
            let mut entry = descriptor(OCI_MANIFEST, &image.manifest);
            entry["platform"] = json!({ "architecture": architecture, "os": os });
            entries.push(entry);
            children.push(image.digest);
            size += image.size;
        }
        let index =
            serde_json::to_vec(&json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries }))
                .expect("index");
        let digest = self.push_manifest(repository, tag, OCI_INDEX, &index).await;
        Pushed { digest, size: size + index.len() as u64, manifest: index, children }
    }

    /// The manifest's digest as the registry answers a HEAD, or `None` for a 404.
    pub async fn head_manifest(&self, repository: &str, reference: &str) -> Option<String> {
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.base);
        let accept = [("accept", &*format!("{OCI_MANIFEST}, {OCI_INDEX}"))];
        let answer = http("HEAD", &url, &accept, None).await;
        match answer.status {
            200 => Some(answer.header("docker-content-digest").expect("Docker-Content-Digest")),
            404 => None,
            status => panic!("HEAD {url}: HTTP {status}"),
        }
    }

    /// A blob's bytes, or `None` for a 404.
    pub async fn blob(&self, repository: &str, digest: &str) -> Option<Vec<u8>> {
        let answer = http("GET", &format!("{}/v2/{repository}/blobs/{digest}", self.base), &[], None).await;
        match answer.status {
            200 => Some(answer.body),
            404 => None,
            status => panic!("GET blob {digest}: HTTP {status}"),
        }
    }
}

/// One request ferry made, as the tap saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    pub url: String,
    pub content_range: Option<String>,
}

/// A wire tap on the global `fetch`: logs every request and plays injected faults.
pub struct Tap;

impl Tap {
    /// Installs the tap, once per page. Tests run concurrently, so each one looks only at
    /// the requests and faults of its own repositories (see [`unique`]).
    pub fn install() -> Tap {
        let code = r#"
            if (!globalThis.__ferryRealFetch) {
              globalThis.__ferrySeen = [];
              globalThis.__ferryFaults = [];
              globalThis.__ferryRealFetch = globalThis.fetch;
              globalThis.fetch = async (url, init) => {
                const method = (init && init.method) || 'GET';
                const headers = new Headers((init && init.headers) || {});
                globalThis.__ferrySeen.push({ method, url: String(url), content_range: headers.get('content-range') });
                const fault = globalThis.__ferryFaults.find(
                  (f) => f.times > 0 && f.method === method && String(url).includes(f.url));
                if (!fault) return globalThis.__ferryRealFetch(url, init);
                fault.times -= 1;
                if (fault.action === 'stall') {
                  await new Promise((resolve, reject) => {
                    const timer = setTimeout(resolve, 5000);
                    init.signal.addEventListener('abort', () => {
                      clearTimeout(timer);
                      fault.aborted = true;
                      reject(new DOMException('aborted', 'AbortError'));
                    });
                  });
                  return globalThis.__ferryRealFetch(url, init);
                }
                if (fault.action === 'fail') throw new TypeError('injected: connection refused');
                const answer = await globalThis.__ferryRealFetch(url, init);
                if (fault.action === 'lose-answer') throw new TypeError('injected: connection reset');
                const body = new Uint8Array(await answer.arrayBuffer());
                body[body.length >> 1] ^= 0xff;
                return new Response(body, { status: answer.status, headers: answer.headers });
              };
            }
        "#;
        Function::new_no_args(code).call0(&JsValue::NULL).expect("install the tap");
        Tap
    }

    /// The next `times` requests with this method whose URL contains `url` meet `action`:
    /// `fail` (never sent), `lose-answer` (sent, answer lost), `corrupt` (one byte of the
    /// body flipped) or `stall` (held for 5 s unless its signal aborts it).
    pub fn fault(&self, method: &str, url: &str, action: &str, times: u32) {
        let fault = js(&json!({ "method": method, "url": url, "action": action, "times": times }));
        let faults: js_sys::Array = global("__ferryFaults").dyn_into().expect("the tap's faults");
        faults.push(&fault);
    }

    /// Whether a stalled request to `url` was aborted through its signal.
    pub fn stall_aborted(&self, url: &str) -> bool {
        let faults: Vec<Value> = serde_json::from_value(json(&global("__ferryFaults"))).expect("a list");
        faults.iter().any(|f| f["url"] == url && f["aborted"] == true)
    }

    /// Every request seen whose URL contains `url`.
    pub fn seen(&self, url: &str) -> Vec<Seen> {
        let seen: Vec<Value> = serde_json::from_value(json(&global("__ferrySeen"))).expect("a list");
        seen.into_iter()
            .map(|s| Seen {
                method: s["method"].as_str().unwrap_or_default().to_owned(),
                url: s["url"].as_str().unwrap_or_default().to_owned(),
                content_range: s["content_range"].as_str().map(str::to_owned),
            })
            .filter(|s| s.url.contains(url))
            .collect()
    }
}

fn global(name: &str) -> JsValue {
    Reflect::get(&js_sys::global(), &JsValue::from_str(name)).expect("a global")
}

/// `name` with a suffix of its own: tests run concurrently and the registries outlive a
/// run, so each test works in repositories nobody else touches.
pub fn unique(name: &str) -> String {
    format!("{name}-{:08x}", (js_sys::Math::random() * f64::from(u32::MAX)) as u32)
}

/// Waits `millis` on the page's timer.
pub async fn pause(millis: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let global = js_sys::global();
        let set_timeout: Function =
            Reflect::get(&global, &JsValue::from_str("setTimeout")).expect("setTimeout").into();
        set_timeout.call2(&JsValue::NULL, &resolve, &JsValue::from(millis)).expect("setTimeout");
    });
    JsFuture::from(promise).await.expect("timer");
}
