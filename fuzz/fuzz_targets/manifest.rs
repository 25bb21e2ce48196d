#![no_main]
//! Manifests: parse never panics, keeps the exact bytes, and select never panics.
use ferry_core::manifest::{select, Manifest, PlatformFilter, RawManifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let content_types = [None, Some("application/vnd.oci.image.index.v1+json"), Some("application/json")];
    let content_type = content_types[data.first().copied().unwrap_or(0) as usize % content_types.len()];
    if let Ok(raw) = RawManifest::parse(data.to_vec(), content_type) {
        assert_eq!(raw.bytes(), data);
        if let Manifest::Index(_) = raw.manifest() {
            let filter = PlatformFilter::new(&[], &["amd64".to_owned()], &[]).expect("a valid filter");
            let _ = select(&raw, &filter);
        }
    }
});
