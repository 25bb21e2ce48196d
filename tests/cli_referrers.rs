//! Referrers travel with their images between real registries on 127.0.0.1: `ferry serve`
//! (OCI 1.1, with the referrers API) and distribution 2.8 (`docker-registry`, without it:
//! the tag schema), in all four directions.
//!
//! At each source: `library/app:v1` (ferry's fixture), an SBOM whose `subject` is v1 and a
//! signature whose `subject` is the SBOM, both pushed by the `oras` Python package (a
//! client nobody here wrote), and a cosign-style `sha256-<hex>.sig` tag made by skopeo.
//! On distribution, which has no API, ferry's fixture keeps the tag-schema index as a
//! client would. Each destination must then hold every manifest under its own digest,
//! and list exactly the expected descriptors: through its API (ferry serve) or in its
//! tag-schema index (distribution), where an unrelated entry put there before survives.
//! A second run copies nothing. A referrer whose blob lies fails alone, with exit 1.
//! Before each first run, `--dry-run` foresees, per registry, the requests the run then
//! makes, referrers' included, as counting proxies in front of both registries see them.

#[path = "support/mod.rs"]
mod support;

#[path = "support/cli.rs"]
mod cli;

#[path = "support/fault_proxy.rs"]
mod fault_proxy;

use std::process::Command;

use cli::{ferry, head_digest, push_image, put_manifest, OCI_INDEX, OCI_MANIFEST};
use fault_proxy::{FaultProxy, Schedule};
use serde_json::{json, Value};
use support::{
    get, random_bytes, request, require, require_python_module, Distribution, DistributionOpts, Ferry,
    TempDir,
};

const SBOM_TYPE: &str = "application/spdx+json";
const SIGNATURE_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// Pushes one file as an artifact with `oras` (oras-py): `subject` is the descriptor of
/// the manifest it refers to, `config_type` its config's media type, which the referrers
/// list gives as its `artifactType` (oras-py writes no `artifactType` field).
const ORAS_PUSH: &str = r#"
import json, os, sys
import oras.client, oras.oci
host, repo, tag, path, config_type, subject = sys.argv[1:7]
subject = json.loads(subject)
config = os.path.join(os.path.dirname(path), "config.json")
with open(config, "w") as f:
    f.write("{}")
client = oras.client.OrasClient(hostname=host, insecure=True)
response = client.push(
    target=f"{host}/{repo}:{tag}",
    files=[f"{path}:application/octet-stream"],
    manifest_config=f"{config}:{config_type}",
    subject=oras.oci.Subject(mediaType=subject["mediaType"], digest=subject["digest"], size=subject["size"]),
    disable_path_validation=True,
    quiet=True,
)
assert response.status_code == 201, response.text
"#;

/// A manifest at a registry: its digest, size and bytes as the registry serves them.
#[derive(Debug, Clone)]
struct Pushed {
    digest: String,
    bytes: Vec<u8>,
}

impl Pushed {
    fn read(base: &str, repo: &str, reference: &str) -> Pushed {
        let r = request("GET", &format!("{base}/v2/{repo}/manifests/{reference}"))
            .header("Accept", &format!("{OCI_MANIFEST}, {OCI_INDEX}"))
            .send();
        assert_eq!(r.status, 200, "GET {base}/v2/{repo}/manifests/{reference}: {}", r.text());
        Pushed { digest: support::sha256(&r.body), bytes: r.body }
    }

    fn descriptor(&self) -> Value {
        json!({ "mediaType": OCI_MANIFEST, "digest": self.digest, "size": self.bytes.len() })
    }

    /// The descriptor a referrers list gives it: its config's media type as artifactType.
    fn referrer_entry(&self) -> Value {
        let manifest: Value = serde_json::from_slice(&self.bytes).unwrap();
        let mut entry = self.descriptor();
        entry["artifactType"] = manifest["config"]["mediaType"].clone();
        if let Some(annotations) = manifest.get("annotations") {
            entry["annotations"] = annotations.clone();
        }
        entry
    }
}

fn oras_push(
    base: &str,
    repo: &str,
    tag: &str,
    payload: &[u8],
    config_type: &str,
    subject: &Pushed,
) -> Pushed {
    let dir = TempDir::new("oras");
    let path = dir.join(tag);
    std::fs::write(&path, payload).unwrap();
    let host = base.trim_start_matches("http://");
    let out = Command::new("python3")
        .args(["-c", ORAS_PUSH, host, repo, tag, path.to_str().unwrap(), config_type])
        .arg(subject.descriptor().to_string())
        .current_dir(dir.path())
        .output()
        .expect("run python3");
    assert!(out.status.success(), "oras push {repo}:{tag}: {}", String::from_utf8_lossy(&out.stderr));
    Pushed::read(base, repo, tag)
}

/// `sha256:<hex>` -> `sha256-<hex>`, the tag schema's and cosign's tag.
fn tag_of(digest: &str) -> String {
    digest.replace(':', "-")
}

/// What a client without the referrers API does after pushing a referrer: read the
/// subject's tag-schema index (or start empty), append the entry, push it back.
fn list_in_tag_schema(base: &str, repo: &str, subject: &str, entry: Value) {
    let url = format!("{base}/v2/{repo}/manifests/{}", tag_of(subject));
    let r = request("GET", &url).header("Accept", OCI_INDEX).send();
    let mut index = match r.status {
        200 => serde_json::from_slice(&r.body).unwrap(),
        404 => json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [] }),
        other => panic!("GET {url}: {other}"),
    };
    index["manifests"].as_array_mut().unwrap().push(entry);
    put_manifest(base, repo, &tag_of(subject), OCI_INDEX, &serde_json::to_vec(&index).unwrap());
}

/// A source's content: the image, its SBOM, the SBOM's signature, its cosign tag.
struct Source {
    image: Pushed,
    sbom: Pushed,
    signature: Pushed,
    cosign: String,
}

/// Seeds a source; each source's content is its own (`tag_schema` picks the bytes too).
fn seed(base: &str, repo: &str, tag_schema: bool) -> Source {
    let seed = u64::from(tag_schema);
    let (digest, _) = push_image(base, repo, Some("v1"), &[&random_bytes(40_000, 7 + seed)], "linux/amd64");
    let image = Pushed::read(base, repo, &digest);
    let sbom_payload = format!("{{\"spdxVersion\":\"SPDX-2.3\",\"name\":\"source {seed}\"}}");
    let sbom = oras_push(base, repo, "sbom", sbom_payload.as_bytes(), SBOM_TYPE, &image);
    let signature_payload = format!("signature of the sbom of source {seed}");
    let signature =
        oras_push(base, repo, "sbom-signature", signature_payload.as_bytes(), SIGNATURE_TYPE, &sbom);
    if tag_schema {
        list_in_tag_schema(base, repo, &image.digest, sbom.referrer_entry());
        list_in_tag_schema(base, repo, &sbom.digest, signature.referrer_entry());
    }
    // cosign's tag: an image copied by skopeo under `sha256-<hex>.sig`.
    let cosign_payload = format!("cosign signature payload of source {seed}");
    push_image(base, repo, Some("cosign-payload"), &[cosign_payload.as_bytes()], "linux/amd64");
    let host = base.trim_start_matches("http://");
    let sig_tag = format!("{}.sig", tag_of(&image.digest));
    let out = Command::new("skopeo")
        .args(["copy", "--quiet", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false"])
        .arg(format!("docker://{host}/{repo}:cosign-payload"))
        .arg(format!("docker://{host}/{repo}:{sig_tag}"))
        .output()
        .expect("run skopeo");
    assert!(out.status.success(), "skopeo copy: {}", String::from_utf8_lossy(&out.stderr));
    let cosign = head_digest(base, repo, &sig_tag).expect("the cosign tag");
    Source { image, sbom, signature, cosign }
}

/// The (digest, artifactType) pairs a list gives, in its order.
fn entries(list: &Value) -> Vec<(String, String)> {
    list["manifests"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|d| {
            (d["digest"].as_str().unwrap().to_owned(), d["artifactType"].as_str().unwrap_or("").to_owned())
        })
        .collect()
}

/// The requests a proxy forwarded since it was last cleared, and its manifest GETs.
fn counted(proxy: &FaultProxy) -> (u64, u64) {
    let log = proxy.log();
    let http = log.iter().filter(|l| ["GET", "HEAD", "PUT", "POST", "PATCH"].contains(&l.method.as_str()));
    let gets = log.iter().filter(|l| l.method == "GET" && l.target.contains("/manifests/")).count();
    (http.count() as u64, gets as u64)
}

/// A dry run's forecast for `host`: (requests, counted against a pull limit).
fn forecast(report: &Value, host: &str) -> (u64, u64) {
    let entries = report["summary"]["forecast"].as_array().cloned().unwrap_or_default();
    let entry = entries.iter().find(|e| e["registry"] == host).unwrap_or_else(|| {
        panic!("no forecast for {host}: {entries:?}");
    });
    (entry["requests"].as_u64().unwrap(), entry["counted"].as_u64().unwrap())
}

fn api_list(base: &str, repo: &str, subject: &str) -> Value {
    let r = get(&format!("{base}/v2/{repo}/referrers/{subject}"));
    assert_eq!(r.status, 200, "the referrers API of {base}");
    r.json()
}

fn tag_schema_list(base: &str, repo: &str, subject: &str) -> Value {
    let r = request("GET", &format!("{base}/v2/{repo}/manifests/{}", tag_of(subject)))
        .header("Accept", OCI_INDEX)
        .send();
    assert_eq!(r.status, 200, "the tag-schema index of {subject} at {base}: {}", r.text());
    r.json()
}

fn sync(source: &str, destination: &str, repo: &str, dir: &TempDir, name: &str) -> (i32, Value, String) {
    sync_with(source, destination, repo, dir, name, &[])
}

fn sync_with(
    source: &str,
    destination: &str,
    repo: &str,
    dir: &TempDir,
    name: &str,
    extra: &[&str],
) -> (i32, Value, String) {
    let images = dir.join(&format!("{name}.json"));
    std::fs::write(
        &images,
        json!({ format!("{source}/{repo}:v1"): format!("{destination}/{repo}") }).to_string(),
    )
    .unwrap();
    let report = dir.join(&format!("{name}-report.json"));
    let mut args = vec!["sync", "--images", images.to_str().unwrap(), "--report", report.to_str().unwrap()];
    args.extend(["--progress", "plain"]);
    args.extend(extra);
    let run = ferry(&args);
    run.assert_no_panic();
    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    (run.code, report, run.stderr)
}

#[test]
fn referrers_travel_in_all_four_directions_with_identical_digests() {
    if !require("docker-registry") || !require("skopeo") || !require_python_module("oras", "oras") {
        return;
    }
    let (api_source, api_destination) =
        (Ferry::start(&["--storage", "memory"]), Ferry::start(&["--storage", "memory"]));
    let tag_source = Distribution::start(&DistributionOpts::default());
    let tag_destination = Distribution::start(&DistributionOpts::default());
    let repo = "library/app";
    let from_api = seed(&api_source.url, repo, false);
    let from_tags = seed(&tag_source.url, repo, true);

    // ferry serve answers the tag-schema lookup other clients make, and filters by type.
    let view = tag_schema_list(&api_source.url, repo, &from_api.image.digest);
    assert_eq!(entries(&view), vec![(from_api.sbom.digest.clone(), SBOM_TYPE.to_owned())]);
    let filtered = get(&format!(
        "{}/v2/{repo}/referrers/{}?artifactType={SIGNATURE_TYPE}",
        api_source.url, from_api.image.digest
    ));
    assert_eq!(
        (filtered.header("oci-filters-applied"), entries(&filtered.json())),
        (Some("artifactType"), vec![])
    );

    // An unrelated artifact already listed in each tag-schema destination's index.
    let unrelated = |source: &Source| {
        let (digest, _) = push_image(&tag_destination.url, repo, None, &[b"someone else's"], "linux/amd64");
        let other = Pushed::read(&tag_destination.url, repo, &digest);
        let mut entry = other.descriptor();
        entry["artifactType"] = json!("application/vnd.example.other");
        list_in_tag_schema(&tag_destination.url, repo, &source.image.digest, entry);
        (other.digest, "application/vnd.example.other".to_owned())
    };
    // ferry inspect lists an image's referrers: type, digest, size.
    let run = ferry(&["inspect", "--json", &format!("{}/{repo}:v1", tag_source.host())]);
    let inspected: Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout));
    assert_eq!(
        inspected["referrers"],
        json!([{ "artifactType": SBOM_TYPE, "digest": from_tags.sbom.digest, "size": from_tags.sbom.bytes.len() }]),
        "{inspected}"
    );
    let run = ferry(&["inspect", &format!("{}/{repo}:v1", api_source.host())]);
    assert!(run.stdout.contains(&format!("{SBOM_TYPE}  {}", from_api.sbom.digest)), "{}", run.stdout);

    let dir = TempDir::new("referrers");
    let cases: [(&str, &Source, &str, &str, bool); 4] = [
        ("api-to-api", &from_api, &api_source.url, &api_destination.url, true),
        ("api-to-tags", &from_api, &api_source.url, &tag_destination.url, false),
        ("tags-to-api", &from_tags, &tag_source.url, &api_destination.url, true),
        ("tags-to-tags", &from_tags, &tag_source.url, &tag_destination.url, false),
    ];
    for (name, src, from, to, destination_api) in cases {
        let other = (!destination_api).then(|| unrelated(src));
        let (s, d) = (from.trim_start_matches("http://"), to.trim_start_matches("http://"));
        // A dry run, then the run, both through counting proxies: the forecast is exact.
        let (src_proxy, dst_proxy) =
            (FaultProxy::start(from, Schedule::none()), FaultProxy::start(to, Schedule::none()));
        let (ps, pd) = (src_proxy.host(), dst_proxy.host());
        let (code, dry, stderr) = sync_with(&ps, &pd, repo, &dir, &format!("{name}-dry"), &["--dry-run"]);
        assert_eq!(code, 0, "{name} dry run: {stderr}");
        let foreseen = (forecast(&dry, &ps), forecast(&dry, &pd));
        src_proxy.clear_log();
        dst_proxy.clear_log();
        let (code, report, stderr) = sync(&ps, &pd, repo, &dir, name);
        assert_eq!(code, 0, "{name}: {stderr}");
        assert_eq!(
            (counted(&src_proxy), counted(&dst_proxy)),
            foreseen,
            "{name}: the forecast, source and destination"
        );
        assert_eq!(report["summary"]["referrers"]["copied"], 3, "{name}: {report}");
        for (what, digest) in
            [("image", &src.image.digest), ("sbom", &src.sbom.digest), ("signature", &src.signature.digest)]
        {
            assert_eq!(
                head_digest(to, repo, digest).as_ref(),
                Some(digest),
                "{name}: the {what} under its digest"
            );
        }
        let sig_tag = format!("{}.sig", tag_of(&src.image.digest));
        assert_eq!(head_digest(to, repo, &sig_tag), Some(src.cosign.clone()), "{name}: the cosign tag");
        assert_eq!(head_digest(to, repo, "v1"), Some(src.image.digest.clone()), "{name}: the tag");
        let sbom_entry = (src.sbom.digest.clone(), SBOM_TYPE.to_owned());
        let signature_entry = (src.signature.digest.clone(), SIGNATURE_TYPE.to_owned());
        if destination_api {
            assert_eq!(entries(&api_list(to, repo, &src.image.digest)), vec![sbom_entry], "{name}");
            assert_eq!(entries(&api_list(to, repo, &src.sbom.digest)), vec![signature_entry], "{name}");
        } else {
            let want: Vec<_> = other.into_iter().chain([sbom_entry]).collect();
            assert_eq!(
                entries(&tag_schema_list(to, repo, &src.image.digest)),
                want,
                "{name}: kept and added"
            );
            assert_eq!(
                entries(&tag_schema_list(to, repo, &src.sbom.digest)),
                vec![signature_entry],
                "{name}"
            );
        }
        // ferry diff --referrers: v1's referrers are all at the destination (cosign's tag
        // too); at a tag-schema destination the unrelated entry is extra.
        let run = ferry(&["diff", "--referrers", "--json", &format!("{s}/{repo}"), &format!("{d}/{repo}")]);
        let diff: Value =
            serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{name}: {e}: {}", run.stdout));
        let v1 =
            diff["rows"].as_array().unwrap().iter().find(|r| r["tag"] == "v1").expect("a v1 row").clone();
        let statuses: Vec<(&str, &str)> = v1["referrers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["artifact_type"].as_str().unwrap_or(""), r["status"].as_str().unwrap()))
            .collect();
        let mut want = vec![(SBOM_TYPE, "in_sync"), ("cosign sig", "in_sync")];
        if !destination_api {
            want.insert(0, ("application/vnd.example.other", "extra"));
        }
        let mut statuses_sorted = statuses.clone();
        statuses_sorted.sort();
        want.sort();
        assert_eq!(statuses_sorted, want, "{name}: {v1}");
        assert!(diff["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| !r["tag"].as_str().unwrap().starts_with("sha256-")));

        // Nothing new: everything is skipped, nothing written.
        let (code, report, stderr) = sync(s, d, repo, &dir, &format!("{name}-again"));
        assert_eq!(code, 0, "{name} again: {stderr}");
        assert_eq!(report["summary"]["referrers"]["skipped"], 3, "{name} again: {report}");
        assert!(report["summary"]["referrers"].get("indexed").is_none(), "{name} again: {report}");
    }
}

#[test]
fn a_referrer_whose_blob_lies_fails_alone_and_the_exit_code_says_so() {
    if !require("docker-registry") || !require("skopeo") || !require_python_module("oras", "oras") {
        return;
    }
    let source = Distribution::start(&DistributionOpts::default());
    let destination = Distribution::start(&DistributionOpts::default());
    let repo = "library/liar";
    let (digest, _) = push_image(&source.url, repo, Some("v1"), &[&random_bytes(30_000, 9)], "linux/amd64");
    let image = Pushed::read(&source.url, repo, &digest);
    let payload = random_bytes(4096, 10);
    let sbom = oras_push(&source.url, repo, "sbom", &payload, SBOM_TYPE, &image);
    list_in_tag_schema(&source.url, repo, &image.digest, sbom.referrer_entry());
    // distribution serves what is on its disk: the same length, other bytes.
    let hex = support::sha256(&payload).trim_start_matches("sha256:").to_owned();
    let data = source.storage().join(format!("docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]));
    let mut lie = std::fs::read(&data).unwrap_or_else(|e| panic!("{}: {e}", data.display()));
    lie[100] ^= 0xff;
    std::fs::write(&data, lie).unwrap();

    let dir = TempDir::new("liar");
    let (s, d) = (source.host(), destination.host());
    let (code, report, stderr) = sync(&s, &d, repo, &dir, "liar");
    assert_eq!(code, 1, "something failed: {stderr}");
    assert_eq!(
        head_digest(&destination.url, repo, "v1"),
        Some(image.digest.clone()),
        "the subject is copied"
    );
    assert_eq!(head_digest(&destination.url, repo, &sbom.digest), None, "the lying SBOM is not");
    assert_eq!(report["summary"]["copied"], 1, "{report}");
    assert_eq!(report["summary"]["referrers"]["failed"], 1, "{report}");
    let failure = &report["summary"]["failures"][0];
    assert!(failure["reason"].as_str().unwrap().contains(&hex), "names the blob: {failure}");
    assert!(failure["destination"].as_str().unwrap().contains(&sbom.digest), "names the referrer: {failure}");
    assert!(stderr.contains(&hex), "says so on stderr: {stderr}");
    let index =
        request("GET", &format!("{}/v2/{repo}/manifests/{}", destination.url, tag_of(&image.digest))).send();
    assert_eq!(index.status, 404, "no index lists a referrer that did not arrive");
}
