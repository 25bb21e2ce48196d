//! A multi-arch OCI image layout on disk, for skopeo to copy from: an index over
//! linux/amd64 and linux/arm64, each image with a config and two gzip layers.

use std::path::Path;

use serde_json::json;

use super::sha256;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A valid gzip stream of `data` using stored (uncompressed) deflate blocks, so skopeo
/// sees a compressed layer and copies it as it is.
pub fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let chunks: Vec<&[u8]> = if data.is_empty() { vec![&[]] } else { data.chunks(65_535).collect() };
    for (i, chunk) in chunks.iter().enumerate() {
        out.push(u8::from(i == chunks.len() - 1));
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

pub fn write_blob(layout: &Path, bytes: &[u8]) -> serde_json::Value {
    let digest = sha256(bytes);
    let path = layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
    std::fs::write(path, bytes).unwrap();
    json!({ "digest": digest, "size": bytes.len() })
}

/// Writes an OCI layout with one tag `v1`: an index over linux/amd64 and linux/arm64
/// images, each with a config and two gzip layers of random bytes. Returns the index bytes.
pub fn build_multiarch_layout(layout: &Path, seed: u64) -> Vec<u8> {
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    std::fs::write(layout.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut children = Vec::new();
    for (i, arch) in ["amd64", "arm64"].iter().enumerate() {
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        for l in 0..2u64 {
            let raw = super::random_bytes(150_000 + 1000 * l as usize, seed * 100 + i as u64 * 10 + l);
            diff_ids.push(sha256(&raw));
            let mut d = write_blob(layout, &gzip_stored(&raw));
            d["mediaType"] = OCI_LAYER_GZIP.into();
            layers.push(d);
        }
        let config = serde_json::to_vec(&json!({
            "architecture": arch, "os": "linux", "config": {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap();
        let mut config_desc = write_blob(layout, &config);
        config_desc["mediaType"] = OCI_CONFIG.into();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_desc, "layers": layers,
        }))
        .unwrap();
        let mut desc = write_blob(layout, &manifest);
        desc["mediaType"] = OCI_MANIFEST.into();
        desc["platform"] = json!({"architecture": arch, "os": "linux"});
        children.push(desc);
    }
    let index =
        serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}))
            .unwrap();
    let mut desc = write_blob(layout, &index);
    desc["mediaType"] = OCI_INDEX.into();
    desc["annotations"] = json!({"org.opencontainers.image.ref.name": "v1"});
    let top = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [desc]});
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    index
}

/// Every blob of `src` is in `dst` with the same bytes.
pub fn assert_blobs_identical(src: &Path, dst: &Path) {
    let mut n = 0;
    for entry in std::fs::read_dir(src.join("blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        let copy = dst.join("blobs/sha256").join(entry.file_name());
        let (a, b) = (std::fs::read(entry.path()).unwrap(), std::fs::read(&copy).unwrap_or_default());
        assert!(a == b, "blob {:?} differs after the round trip", entry.file_name());
        n += 1;
    }
    assert_eq!(n, 9, "index + 2 x (manifest + config + 2 layers)");
}
