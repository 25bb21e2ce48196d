//! `ferry sync` reading image-syncer's files exactly as its users write them (README,
//! "Usage": an auth file `{"registry": {"username", "password", "insecure"}}`, an images
//! file `{"src/repo:tag": "dst/repo"}` whose values may be lists and whose sources may
//! leave the tag out to mean every tag, and the combined `{"auth": .., "images": ..}`),
//! in JSON and in YAML, from a real distribution registry that asks for Basic auth into
//! another distribution registry and into `ferry serve` (Basic auth for pushes).
//!
//! What they prove: every layout and format drives the same sync; digests survive; an
//! index arrives with its children and their blobs; the report lists every image.

#[path = "support/mod.rs"]
mod support;

#[path = "support/cli.rs"]
mod cli;

use cli::{ferry, has_blob, head_digest, Sample, OCI_INDEX, OCI_MANIFEST};
use serde_json::Value;
use support::{request, require, write_htpasswd, Distribution, DistributionOpts, Ferry, TempDir};

const SOURCE_USER: &str = "syncer";
const SOURCE_PASSWORD: &str = "source-pass-1";
const PUSH_USER: &str = "pusher";
const PUSH_PASSWORD: &str = "push-pass-2";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Yaml,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `--auth auth.<ext> --images images.<ext>`
    Separate,
    /// `--config config.<ext>`
    Combined,
}

/// The three registries by `host:port`: source, distribution destination, ferry destination.
struct Hosts {
    source: String,
    distribution: String,
    ferry: String,
}

/// The images map, with `prefix` before every destination repository: every tag of
/// `library/app` into both destinations (a list), `library/multi:1` into distribution,
/// and every tag of `library/multi` into ferry.
fn images(hosts: &Hosts, prefix: &str) -> Vec<(String, Vec<String>)> {
    let Hosts { source: s, distribution: d, ferry: f } = hosts;
    vec![
        (
            format!("{s}/library/app"),
            vec![format!("{d}/{prefix}/library/app"), format!("{f}/{prefix}/library/app")],
        ),
        (format!("{s}/library/multi:1"), vec![format!("{d}/{prefix}/library/multi")]),
        (format!("{s}/library/multi"), vec![format!("{f}/{prefix}/library/multi")]),
    ]
}

/// image-syncer's auth map: credentials for the source and for ferry, `insecure` for all.
fn auth(hosts: &Hosts) -> Vec<(String, Option<(&'static str, &'static str)>)> {
    vec![
        (hosts.source.clone(), Some((SOURCE_USER, SOURCE_PASSWORD))),
        (hosts.distribution.clone(), None),
        (hosts.ferry.clone(), Some((PUSH_USER, PUSH_PASSWORD))),
    ]
}

fn auth_json(hosts: &Hosts, indent: &str) -> String {
    let entries: Vec<String> = auth(hosts)
        .into_iter()
        .map(|(host, login)| match login {
            Some((user, password)) => format!(
                "{indent}  \"{host}\": {{\n{indent}    \"username\": \"{user}\",\n{indent}    \"password\": \
                 \"{password}\",\n{indent}    \"insecure\": true\n{indent}  }}"
            ),
            None => format!("{indent}  \"{host}\": {{\n{indent}    \"insecure\": true\n{indent}  }}"),
        })
        .collect();
    format!("{{\n{}\n{indent}}}", entries.join(",\n"))
}

fn images_json(hosts: &Hosts, prefix: &str, indent: &str) -> String {
    let entries: Vec<String> = images(hosts, prefix)
        .into_iter()
        .map(|(source, destinations)| match destinations.as_slice() {
            [one] => format!("{indent}  \"{source}\": \"{one}\""),
            many => {
                let list: Vec<String> = many.iter().map(|d| format!("{indent}    \"{d}\"")).collect();
                format!("{indent}  \"{source}\": [\n{}\n{indent}  ]", list.join(",\n"))
            }
        })
        .collect();
    format!("{{\n{}\n{indent}}}", entries.join(",\n"))
}

fn auth_yaml(hosts: &Hosts, indent: &str) -> String {
    auth(hosts)
        .into_iter()
        .map(|(host, login)| match login {
            Some((user, password)) => format!(
                "{indent}{host}:\n{indent}  username: {user}\n{indent}  password: {password}\n{indent}  insecure: true\n"
            ),
            None => format!("{indent}{host}:\n{indent}  insecure: true\n"),
        })
        .collect()
}

fn images_yaml(hosts: &Hosts, prefix: &str, indent: &str) -> String {
    images(hosts, prefix)
        .into_iter()
        .map(|(source, destinations)| match destinations.as_slice() {
            [one] => format!("{indent}{source}: {one}\n"),
            many => {
                let list: String = many.iter().map(|d| format!("{indent}  - {d}\n")).collect();
                format!("{indent}{source}:\n{list}")
            }
        })
        .collect()
}

/// Writes the files of one case and returns ferry's arguments for them.
fn write_files(dir: &TempDir, hosts: &Hosts, format: Format, layout: Layout, prefix: &str) -> Vec<String> {
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    match (format, layout) {
        (Format::Json, Layout::Separate) => {
            std::fs::write(dir.join("auth.json"), auth_json(hosts, "")).unwrap();
            std::fs::write(dir.join("images.json"), images_json(hosts, prefix, "")).unwrap();
            vec!["--auth".into(), path("auth.json"), "--images".into(), path("images.json")]
        }
        (Format::Yaml, Layout::Separate) => {
            std::fs::write(dir.join("auth.yaml"), auth_yaml(hosts, "")).unwrap();
            std::fs::write(dir.join("images.yaml"), images_yaml(hosts, prefix, "")).unwrap();
            vec!["--auth".into(), path("auth.yaml"), "--images".into(), path("images.yaml")]
        }
        (Format::Json, Layout::Combined) => {
            let text = format!(
                "{{\n  \"auth\": {},\n  \"images\": {}\n}}\n",
                auth_json(hosts, "  "),
                images_json(hosts, prefix, "  ")
            );
            std::fs::write(dir.join("config.json"), text).unwrap();
            vec!["--config".into(), path("config.json")]
        }
        (Format::Yaml, Layout::Combined) => {
            let text =
                format!("auth:\n{}images:\n{}", auth_yaml(hosts, "  "), images_yaml(hosts, prefix, "  "));
            std::fs::write(dir.join("config.yml"), text).unwrap();
            vec!["--config".into(), path("config.yml")]
        }
    }
}

/// `base/repo:tag` has `digest`; an index has every child and every child's blobs, an
/// image every blob.
fn assert_image(base: &str, repo: &str, tag: &str, digest: &str) {
    assert_eq!(
        head_digest(base, repo, tag).as_deref(),
        Some(digest),
        "{base}/{repo}:{tag} does not have the source's digest"
    );
    let manifest = get_manifest(base, repo, digest);
    let images = if manifest["mediaType"] == OCI_INDEX {
        let children = manifest["manifests"].as_array().expect("children");
        assert_eq!(children.len(), 2, "both platforms of {repo}:{tag}");
        children.iter().map(|c| get_manifest(base, repo, c["digest"].as_str().unwrap())).collect()
    } else {
        vec![manifest]
    };
    for image in images {
        let blobs = image["layers"].as_array().unwrap().iter().chain([&image["config"]]);
        for blob in blobs {
            let digest = blob["digest"].as_str().unwrap();
            assert!(has_blob(base, repo, digest), "{base}/{repo} lacks blob {digest}");
        }
    }
}

fn get_manifest(base: &str, repo: &str, digest: &str) -> Value {
    let r = request("GET", &format!("{base}/v2/{repo}/manifests/{digest}"))
        .header("Accept", &format!("{OCI_MANIFEST}, {OCI_INDEX}"))
        .send();
    assert_eq!(r.status, 200, "GET {base}/v2/{repo}/manifests/{digest}");
    assert_eq!(support::sha256(&r.body), digest, "the bytes of {repo}@{digest}");
    r.json()
}

#[test]
fn image_syncer_files_sync_into_distribution_and_ferry() {
    if !require("docker-registry") {
        return;
    }
    // The source: seeded without auth, then restarted behind Basic auth.
    let mut source = Distribution::start(&DistributionOpts::default());
    let sample = Sample::push(&source.url);
    let source_htpasswd = TempDir::new("image-syncer-source-auth");
    let htpasswd = write_htpasswd(&source_htpasswd, SOURCE_USER, SOURCE_PASSWORD);
    source.restart(&DistributionOpts { htpasswd: Some(htpasswd), ..Default::default() });
    assert_eq!(support::get(&format!("{}/v2/", source.url)).status, 401, "the source asks for auth");

    let distribution = Distribution::start(&DistributionOpts::default());
    let ferry_htpasswd = TempDir::new("image-syncer-ferry-auth");
    let htpasswd = write_htpasswd(&ferry_htpasswd, PUSH_USER, PUSH_PASSWORD);
    let ferry_dst =
        Ferry::start(&["--storage", "memory", "--htpasswd", htpasswd.to_str().unwrap(), "--anonymous-pull"]);
    let hosts = Hosts { source: source.host(), distribution: distribution.host(), ferry: ferry_dst.host() };

    let cases = [
        (Format::Json, Layout::Separate, "json-files"),
        (Format::Yaml, Layout::Separate, "yaml-files"),
        (Format::Json, Layout::Combined, "json-config"),
        (Format::Yaml, Layout::Combined, "yaml-config"),
    ];
    for (format, layout, prefix) in cases {
        let case_dir = TempDir::new(prefix);
        let mut args: Vec<String> = vec!["sync".into()];
        args.extend(write_files(&case_dir, &hosts, format, layout, prefix));
        let report = case_dir.join("report.json");
        args.extend(["--no-docker-config", "--progress", "plain", "--report"].map(String::from));
        args.push(report.to_str().unwrap().to_owned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = ferry(&args).expect(0, prefix);
        run.assert_no_panic();
        assert!(run.stdout.contains("copied 6, skipped 0, failed 0 of 6"), "{prefix}: {}", run.stdout);
        for secret in [SOURCE_PASSWORD, PUSH_PASSWORD] {
            assert!(
                !run.stdout.contains(secret) && !run.stderr.contains(secret),
                "{prefix} printed a password"
            );
        }

        let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        assert_eq!(report["status"], "succeeded", "{prefix}: {report}");
        let mut pairs: Vec<(String, String, String)> = report["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                assert_eq!(i["outcome"], "copied", "{prefix}: {i}");
                let field = |k: &str| i[k].as_str().unwrap().to_owned();
                (field("source"), field("destination"), field("digest"))
            })
            .collect();
        pairs.sort();
        let (s, d, f) = (&hosts.source, &hosts.distribution, &hosts.ferry);
        let mut want = Vec::new();
        for (repo, tag, digest) in &sample.tags {
            let source = format!("{s}/{repo}:{tag}");
            // app by its list of destinations; multi:1 by name and by "every tag".
            for host in [d, f] {
                want.push((source.clone(), format!("{host}/{prefix}/{repo}:{tag}"), digest.clone()));
            }
        }
        want.sort();
        assert_eq!(pairs, want, "{prefix}: the report's images");

        for (repo, tag, digest) in &sample.tags {
            let repo = format!("{prefix}/{repo}");
            assert_image(&distribution.url, &repo, tag, digest);
            assert_image(&ferry_dst.url, &repo, tag, digest);
        }
    }
}
