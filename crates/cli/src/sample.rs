//! Sample images for `ferry demo`: OCI manifests and indexes built in memory (like the
//! core's test kit `ImageBuilder`) and pushed with plain registry calls: blobs by `POST`
//! then `PUT ?digest=`, manifests by `PUT`.

use anyhow::{bail, Context as _};
use ferry_core::api::{upload_complete, Endpoint};
use ferry_core::digest::Digest;
use ferry_core::manifest::media_type::{OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST};
use ferry_core::transport::Transport as _;
use ferry_native::NativeTransport;
use http::header::{CONTENT_TYPE, LOCATION};
use http::{Method, Request};
use serde_json::json;

/// Deterministic bytes (xorshift64*), so that the same sample has the same digest in
/// every run and on both registries.
pub(crate) fn bytes(seed: u64, len: usize) -> Vec<u8> {
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

/// Pushes sample images to one registry.
pub(crate) struct Pusher<'a> {
    transport: &'a NativeTransport,
    endpoint: Endpoint,
}

fn descriptor(media_type: &str, bytes: &[u8]) -> serde_json::Value {
    json!({ "mediaType": media_type, "digest": Digest::sha256(bytes).to_string(), "size": bytes.len() })
}

impl<'a> Pusher<'a> {
    /// `base` is the registry's URL, e.g. `http://127.0.0.1:5000`.
    pub(crate) fn new(transport: &'a NativeTransport, base: &str) -> Self {
        Pusher { transport, endpoint: Endpoint::from_base(base) }
    }

    async fn send(&self, request: Request<Vec<u8>>) -> anyhow::Result<http::Response<Vec<u8>>> {
        let what = format!("{} {}", request.method(), request.uri());
        self.transport.send(request).await.with_context(|| what.clone())
    }

    /// A monolithic upload: `POST` opens the session, `PUT ?digest=` sends the bytes.
    pub(crate) async fn blob(&self, repository: &str, bytes: &[u8]) -> anyhow::Result<Digest> {
        let digest = Digest::sha256(bytes);
        let open = Request::builder()
            .method(Method::POST)
            .uri(self.endpoint.upload_start(repository)?)
            .body(Vec::new())?;
        let answer = self.send(open).await?;
        let location = match answer.headers().get(LOCATION).and_then(|l| l.to_str().ok()) {
            Some(location) if answer.status().as_u16() == 202 => location.to_owned(),
            _ => bail!("opening an upload in {repository}: HTTP {}", answer.status()),
        };
        let put = Request::builder()
            .method(Method::PUT)
            .uri(upload_complete(&self.endpoint.resolve(&location)?.to_string(), &digest))
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(bytes.to_vec())?;
        let answer = self.send(put).await?;
        if answer.status().as_u16() != 201 {
            bail!("uploading {digest} to {repository}: HTTP {}", answer.status());
        }
        Ok(digest)
    }

    pub(crate) async fn manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: Vec<u8>,
    ) -> anyhow::Result<Digest> {
        let digest = Digest::sha256(&bytes);
        let put = Request::builder()
            .method(Method::PUT)
            .uri(self.endpoint.manifest(repository, reference)?)
            .header(CONTENT_TYPE, media_type)
            .body(bytes)?;
        let answer = self.send(put).await?;
        if answer.status().as_u16() != 201 {
            bail!("pushing manifest {repository}:{reference}: HTTP {}", answer.status());
        }
        Ok(digest)
    }

    /// An OCI image of `layers` for `platform` (`os/arch`), tagged `tag` or pushed by
    /// digest; returns the manifest's digest and bytes.
    pub(crate) async fn image(
        &self,
        repository: &str,
        tag: Option<&str>,
        layers: &[&[u8]],
        platform: &str,
    ) -> anyhow::Result<(Digest, Vec<u8>)> {
        let (os, architecture) = platform.split_once('/').unwrap_or(("linux", platform));
        let config = serde_json::to_vec(&json!({
            "architecture": architecture,
            "os": os,
            "rootfs": { "type": "layers", "diff_ids": [] },
            "config": { "Labels": { "org.opencontainers.image.source": format!("ferry demo: {repository}") } },
        }))?;
        self.blob(repository, &config).await?;
        for layer in layers {
            self.blob(repository, layer).await?;
        }
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, &config),
            "layers": layers.iter().map(|l| descriptor(OCI_LAYER_GZIP, l)).collect::<Vec<_>>(),
        }))?;
        let digest = Digest::sha256(&manifest);
        let reference = tag.map_or_else(|| digest.to_string(), str::to_owned);
        self.manifest(repository, &reference, OCI_MANIFEST, manifest.clone()).await?;
        Ok((digest, manifest))
    }

    /// An OCI index over one image per platform, each with the `shared` layers plus one
    /// of its own.
    pub(crate) async fn index(
        &self,
        repository: &str,
        tag: &str,
        platforms: &[&str],
        shared: &[&[u8]],
        own_size: usize,
    ) -> anyhow::Result<Digest> {
        let mut children = Vec::new();
        for (i, platform) in platforms.iter().enumerate() {
            let own = bytes(0xC0FFEE + i as u64, own_size);
            let layers: Vec<&[u8]> = shared.iter().copied().chain([own.as_slice()]).collect();
            let (_, manifest) = self.image(repository, None, &layers, platform).await?;
            let (os, architecture) = platform.split_once('/').unwrap_or(("linux", platform));
            let mut entry = descriptor(OCI_MANIFEST, &manifest);
            entry["platform"] = json!({ "architecture": architecture, "os": os });
            children.push(entry);
        }
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": children,
        }))?;
        self.manifest(repository, tag, OCI_INDEX, index).await
    }
}
