//! Helpers of the CLI tests: run `ferry` as a process, push sample images with plain
//! registry calls, and read digests back. Included with
//! `#[path = "support/cli.rs"] mod cli;` next to `support`.
// Each test file compiles these helpers as a private module of its own and uses some of
// them: `pub` marks what test files call.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};

use super::support::{ferry_bin, head, random_bytes, request, resolve, sha256, TempDir};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A finished `ferry` run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Runs a prepared `ferry` command.
    pub fn from_command(command: &mut Command) -> Run {
        Run::from(command.env_remove("RUST_BACKTRACE").output().expect("run ferry"))
    }

    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Fails the test with both streams unless the exit code is `code`.
    pub fn expect(self, code: i32, what: &str) -> Run {
        assert_eq!(
            self.code, code,
            "{what}: exit {} (want {code})\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// Neither stream shows a panic or a backtrace.
    pub fn assert_no_panic(&self) {
        for text in [&self.stdout, &self.stderr] {
            assert!(!text.contains("panicked"), "a panic:\n{text}");
            assert!(!text.contains("stack backtrace"), "a backtrace:\n{text}");
            assert!(!text.contains("RUST_BACKTRACE"), "a backtrace hint:\n{text}");
        }
    }
}

/// Runs `ferry <args>` with docker's config pointed at an empty directory, so the
/// developer's own credentials never take part.
pub fn ferry(args: &[&str]) -> Run {
    let docker = TempDir::new("docker-config");
    ferry_in(docker.path(), args)
}

pub fn ferry_in(docker_config: &Path, args: &[&str]) -> Run {
    let output = Command::new(ferry_bin())
        .args(args)
        .env("DOCKER_CONFIG", docker_config)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run ferry");
    Run::from(output)
}

/// POST then PUT ?digest=; returns the digest.
pub fn push_blob(base: &str, repo: &str, bytes: &[u8]) -> String {
    let digest = sha256(bytes);
    let r = request("POST", &format!("{base}/v2/{repo}/blobs/uploads/")).send();
    assert_eq!(r.status, 202, "POST upload to {base}/{repo}: {}", r.text());
    let location = resolve(base, r.header("location").expect("Location"));
    let separator = if location.contains('?') { '&' } else { '?' };
    let r = request("PUT", &format!("{location}{separator}digest={digest}"))
        .header("Content-Type", "application/octet-stream")
        .body(bytes)
        .send();
    assert_eq!(r.status, 201, "PUT blob to {base}/{repo}: {}", r.text());
    digest
}

pub fn put_manifest(base: &str, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) -> String {
    let r = request("PUT", &format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("Content-Type", media_type)
        .body(bytes)
        .send();
    assert_eq!(r.status, 201, "PUT manifest {base}/{repo}:{reference}: {}", r.text());
    sha256(bytes)
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({ "mediaType": media_type, "digest": sha256(bytes), "size": bytes.len() })
}

/// An OCI image for `platform` (`os/arch`); pushed under `reference` (a tag) or by digest.
/// Returns the manifest's digest and bytes.
pub fn push_image(
    base: &str,
    repo: &str,
    reference: Option<&str>,
    layers: &[&[u8]],
    platform: &str,
) -> (String, Vec<u8>) {
    let (os, arch) = platform.split_once('/').unwrap();
    let config = serde_json::to_vec(&json!({
        "architecture": arch, "os": os, "rootfs": {"type": "layers", "diff_ids": []}, "repo": repo
    }))
    .unwrap();
    push_blob(base, repo, &config);
    for layer in layers {
        push_blob(base, repo, layer);
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, &config),
        "layers": layers.iter().map(|l| descriptor(OCI_LAYER_GZIP, l)).collect::<Vec<_>>(),
    }))
    .unwrap();
    let digest = sha256(&manifest);
    put_manifest(base, repo, reference.unwrap_or(&digest), OCI_MANIFEST, &manifest);
    (digest, manifest)
}

/// An OCI index over one image per platform, each with `shared` plus its own layer.
pub fn push_index(base: &str, repo: &str, tag: &str, platforms: &[&str], shared: &[u8]) -> String {
    let children: Vec<Value> = platforms
        .iter()
        .enumerate()
        .map(|(i, platform)| {
            let own = random_bytes(20_000 + i, 700 + i as u64);
            let (_, manifest) = push_image(base, repo, None, &[shared, &own], platform);
            let (os, arch) = platform.split_once('/').unwrap();
            let mut entry = descriptor(OCI_MANIFEST, &manifest);
            entry["platform"] = json!({ "architecture": arch, "os": os });
            entry
        })
        .collect();
    let index =
        serde_json::to_vec(&json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children }))
            .unwrap();
    put_manifest(base, repo, tag, OCI_INDEX, &index)
}

/// The `Docker-Content-Digest` of a HEAD, or `None` for a 404.
pub fn head_digest(base: &str, repo: &str, reference: &str) -> Option<String> {
    let r = request("HEAD", &format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("Accept", &format!("{OCI_MANIFEST}, {OCI_INDEX}"))
        .send();
    match r.status {
        200 => Some(r.header("docker-content-digest").expect("Docker-Content-Digest").to_owned()),
        404 => None,
        other => panic!("HEAD {base}/v2/{repo}/manifests/{reference}: {other}"),
    }
}

/// Whether a blob is in `repo` on the registry at `base`.
pub fn has_blob(base: &str, repo: &str, digest: &str) -> bool {
    head(&format!("{base}/v2/{repo}/blobs/{digest}")).status == 200
}

/// A small source registry's content: `library/app:v1`, `:v2` (one platform each, on a
/// shared base layer) and `library/multi:1` (an index of linux/amd64 and linux/arm64).
pub struct Sample {
    pub tags: Vec<(&'static str, &'static str, String)>,
}

impl Sample {
    pub fn push(base: &str) -> Sample {
        let shared = random_bytes(150_000, 1);
        let v1 =
            push_image(base, "library/app", Some("v1"), &[&shared, &random_bytes(30_000, 2)], "linux/amd64")
                .0;
        let v2 =
            push_image(base, "library/app", Some("v2"), &[&shared, &random_bytes(40_000, 3)], "linux/amd64")
                .0;
        let multi = push_index(base, "library/multi", "1", &["linux/amd64", "linux/arm64"], &shared);
        Sample {
            tags: vec![("library/app", "v1", v1), ("library/app", "v2", v2), ("library/multi", "1", multi)],
        }
    }
}
