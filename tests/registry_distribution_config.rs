//! `ferry serve --config` with distribution's own config file, unchanged: the files the
//! tests start distribution peers with (tests/support/mod.rs, tests/support/tls.rs) start
//! ferry too, and it then behaves as distribution does with them: Basic auth from
//! `auth.htpasswd`, mutual TLS from `http.tls.clientcas`, deletes off unless
//! `storage.delete.enabled` (checked against a real distribution on the same file). A
//! key ferry does not support gets one line that names it; an unknown key stops it.
//! The conformance suites (registry_conformance*.rs) run on ferry started this way.

#[path = "support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use support::tls::{self, PeerOpts, Pki};
use support::{
    distribution_config, ferry_bin, free_port, request, require, sha256, skopeo, skopeo_unchecked,
    wait_until_up, write_htpasswd, DistributionOpts, Ferry, TempDir,
};

/// Starts ferry from a config file written by `yaml(port)`, retrying on a taken port.
fn ferry_from(dir: &TempDir, yaml: impl Fn(u16) -> String) -> Ferry {
    let config = dir.join("config.yml");
    for _attempt in 0..5 {
        std::fs::write(&config, yaml(free_port())).unwrap();
        if let Some(ferry) = Ferry::with_config(&config, &[]) {
            return ferry;
        }
    }
    panic!("ferry serve did not start from {}", config.display());
}

/// `ferry serve --config <file>` run to its end (it should refuse to start).
fn refused(config: &Path) -> (i32, String) {
    let output = Command::new(ferry_bin())
        .args(["serve", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .expect("run ferry serve");
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn basic_auth_peer_config() {
    let dir = TempDir::new("dist-config-auth");
    let htpasswd = write_htpasswd(&dir, "tester", "t-Secret-9");
    let opts = DistributionOpts { htpasswd: Some(htpasswd), ..Default::default() };
    let ferry = ferry_from(&dir, |port| distribution_config(&dir.join("data"), port, &opts));
    let r = request("GET", &format!("{}/v2/", ferry.url)).send();
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"test\""), "the file's realm");
    assert_eq!(
        request("GET", &format!("{}/v2/", ferry.url)).basic("tester", "t-Secret-9").send().status,
        200
    );
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    if require("skopeo") {
        let (host, creds) = (ferry.host(), "tester:t-Secret-9");
        let source = TempDir::new("dist-config-oci");
        let layout = format!("oci:{}:v1", source.join("layout").display());
        // An image to push: ferry's own sample, written as an OCI layout by skopeo from ferry.
        let bytes = b"layer of the distribution config test".to_vec();
        let blob =
            request("POST", &format!("{}/v2/seed/blobs/uploads/?digest={}", ferry.url, sha256(&bytes)))
                .basic("tester", "t-Secret-9")
                .body(bytes)
                .send();
        assert_eq!(blob.status, 201);
        let (config, manifest) = support_image(&sha256(b"layer of the distribution config test"));
        let r = request("POST", &format!("{}/v2/seed/blobs/uploads/?digest={}", ferry.url, sha256(&config)))
            .basic("tester", "t-Secret-9")
            .body(config)
            .send();
        assert_eq!(r.status, 201);
        let r = request("PUT", &format!("{}/v2/seed/manifests/v1", ferry.url))
            .basic("tester", "t-Secret-9")
            .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest)
            .send();
        assert_eq!(r.status, 201, "{}", r.text());
        skopeo(&[
            "copy",
            "--src-tls-verify=false",
            "--src-creds",
            creds,
            &format!("docker://{host}/seed:v1"),
            &layout,
        ]);
        skopeo(&[
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            creds,
            &layout,
            &format!("docker://{host}/copy:v1"),
        ]);
        let out = skopeo_unchecked(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{host}/copy:v1"),
        ]);
        assert!(!out.status.success(), "no credentials, no pull");
    }
}

/// A one-layer OCI image manifest over a config blob; `(config, manifest)`.
fn support_image(layer_digest: &str) -> (Vec<u8>, Vec<u8>) {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": b"layer of the distribution config test".len()}],
    }))
    .unwrap();
    (config, manifest)
}

#[test]
fn mutual_tls_peer_config() {
    if !require("skopeo") {
        return;
    }
    let pki = Pki::new();
    let dir = TempDir::new("dist-config-mtls");
    let opts = PeerOpts { tls: true, client_cas: true };
    let ferry = ferry_from(&dir, |port| tls::distribution_config(&pki, &dir.join("data"), port, &opts));
    assert!(ferry.url.starts_with("https://"), "{}", ferry.url);
    let with_client = pki.cert_dir(&dir.join("with-client"), Some("client"));
    let ca_only = pki.cert_dir(&dir.join("ca-only"), None);
    let image = format!("docker://{}/none:v1", ferry.host());
    let cert_dir = |d: &Path| format!("--cert-dir={}", d.display());
    let out = skopeo_unchecked(&["inspect", "--raw", &cert_dir(&with_client), &image]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("manifest unknown") || said.contains("MANIFEST_UNKNOWN"), "TLS worked: {said}");
    let out = skopeo_unchecked(&["inspect", "--raw", &cert_dir(&ca_only), &image]);
    let said = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(!said.contains("manifest unknown"), "no client certificate, no answer: {said}");
    assert!(said.contains("certificate") || said.contains("tls") || said.contains("handshake"), "{said}");
}

/// distribution's default: no deletes unless `storage.delete.enabled`. The same file
/// (bar the port) on distribution and on ferry: both refuse a manifest DELETE alike.
#[test]
fn deletes_follow_the_file_like_distribution() {
    let yaml = |root: &Path, port: u16| {
        format!(
            "version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: {}}}}}\n\
             http: {{addr: 127.0.0.1:{port}}}\n",
            root.display()
        )
    };
    let dir = TempDir::new("dist-config-delete");
    let ferry = ferry_from(&dir, |port| yaml(&dir.join("data"), port));
    let mut urls = vec![ferry.url.clone()];
    let peer_dir = TempDir::new("dist-config-delete-peer");
    let mut peer = None;
    if require("docker-registry") {
        let port = free_port();
        let config = peer_dir.join("config.yml");
        std::fs::write(&config, yaml(&peer_dir.join("data"), port)).unwrap();
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn docker-registry");
        let url = format!("http://127.0.0.1:{port}");
        wait_until_up(&url, &mut child, "docker-registry");
        urls.push(url);
        peer = Some(child);
    }
    let mut answers = Vec::new();
    for url in &urls {
        let (config, manifest) = support_image(&sha256(b"layer of the distribution config test"));
        for bytes in [b"layer of the distribution config test".to_vec(), config] {
            let r = request("POST", &format!("{url}/v2/d/blobs/uploads/")).send();
            assert_eq!(r.status, 202, "{url}");
            let location = support::resolve(url, r.header("location").unwrap());
            let sep = if location.contains('?') { '&' } else { '?' };
            let r = request("PUT", &format!("{location}{sep}digest={}", sha256(&bytes))).body(bytes).send();
            assert_eq!(r.status, 201, "{url}: {}", r.text());
        }
        let r = request("PUT", &format!("{url}/v2/d/manifests/v1"))
            .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.clone())
            .send();
        assert_eq!(r.status, 201, "{url}: {}", r.text());
        let r = request("DELETE", &format!("{url}/v2/d/manifests/{}", sha256(&manifest))).send();
        answers.push((r.status, r.error_code()));
    }
    if let Some(mut child) = peer {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert_eq!(answers[0], (405, "UNSUPPORTED".to_string()), "ferry");
    if answers.len() == 2 {
        assert_eq!(answers[0], answers[1], "ferry and distribution on the same file");
    }
}

#[test]
fn unsupported_and_unknown_keys_get_one_line_each() {
    let dir = TempDir::new("dist-config-keys");
    let config = dir.join("config.yml");
    let base = format!(
        "version: 0.1\nstorage: {{filesystem: {{rootdirectory: {}}}}}\nhttp: {{addr: 127.0.0.1:0, prefix: /reg}}\n",
        dir.join("data").display()
    );
    std::fs::write(&config, format!("{base}storage2: {{}}\nauth: {{token: {{realm: x}}}}\n")).unwrap();
    let (code, stderr) = refused(&config);
    assert_eq!(code, 1, "{stderr}");
    for line in [
        "config key `storage2` is unknown to distribution's format and to ferry; remove it or fix its spelling",
        "config key `http.prefix` is not supported: ferry serves the API at /v2/ only",
        "config key `auth.token` is not supported: ferry cannot check an external token server's tokens",
    ] {
        assert_eq!(stderr.matches(line).count(), 1, "{line}\n{stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");

    // Keys ferry can safely do without: a warning each, and it serves.
    let yaml = format!(
        "version: 0.1\nlog: {{level: warn}}\nstorage: {{filesystem: {{rootdirectory: {}}}, cache: {{blobdescriptor: inmemory}}}}\n\
         http: {{addr: 127.0.0.1:0, secret: s3cr3t, headers: {{X-Content-Type-Options: [nosniff]}}}}\n\
         health: {{storagedriver: {{enabled: true, interval: 10s, threshold: 3}}}}\n\
         notifications: {{endpoints: [{{name: ci, url: 'http://127.0.0.1:9/e', headers: {{Authorization: [Bearer n0tify-Key]}}}}]}}\n",
        dir.join("data").display()
    );
    std::fs::write(&config, yaml).unwrap();
    let log = dir.join("ferry.log");
    let mut child = Command::new(ferry_bin())
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.contains("http://127.0.0.1:"), "it serves: {line:?}");
    let logged = std::fs::read_to_string(&log).unwrap();
    for key in ["`storage.cache`", "`http.secret`", "`health`"] {
        assert_eq!(logged.lines().filter(|l| l.contains(key)).count(), 1, "{key}:\n{logged}");
    }
    assert!(!logged.contains("s3cr3t"), "the secret is never logged:\n{logged}");
    assert!(!logged.contains("n0tify-Key"), "nor an endpoint's credentials:\n{logged}");

    // --print-config shows what the file became, the warnings as comments.
    let output = Command::new(ferry_bin())
        .args(["serve", "--print-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(output.status.success());
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains("# config key `storage.cache` is not supported"), "{printed}");
    assert!(printed.contains("\ndelete: false\n"), "distribution's default: {printed}");
    assert!(printed.contains(&format!("root: {}", dir.join("data").display())), "{printed}");
    assert!(printed.contains("url: http://127.0.0.1:9/e"), "{printed}");
    assert!(!printed.contains("n0tify-Key"), "an endpoint's credentials are not printed: {printed}");
}
