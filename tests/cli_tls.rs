//! TLS as real registries speak it, against real peers on 127.0.0.1 and a private CA that
//! the tests make with openssl:
//!
//! - distribution serving TLS: without the CA every command fails at once (no retry) with
//!   one line naming the registry, the problem and the fix; with the CA given any way
//!   (`SSL_CERT_FILE`, a certs.d folder, `--cert-dir`/`--src-cert-dir`/`--dest-cert-dir`,
//!   the config's `tls` key, `sync --cert-dir`) `ls`, `inspect`, `diff`, `copy` and `sync`
//!   work;
//! - image-syncer's `insecure: true`: HTTPS without verification against the TLS registry,
//!   plain HTTP against a plain one, with the same number of requests in a no-op run;
//! - mutual TLS (distribution's `http.tls.clientcas`) with certs.d's client.cert/client.key,
//!   and the error that says a client certificate is required or was refused;
//! - `ferry serve --tls-cert --tls-key`: skopeo pushes and pulls a multi-arch image
//!   byte-identical, ferry syncs into it, client certificates, the token realm, and a
//!   certificate reload on SIGHUP.

#[path = "support/mod.rs"]
mod support;

#[path = "support/cli.rs"]
mod cli;

use std::path::Path;
use std::process::Command;

use cli::{Run, Sample};
use support::tls::{DistributionTls, PeerOpts, Pki};
use support::{ferry_bin, require, skopeo, Ferry, TempDir};

fn ready() -> bool {
    require("docker-registry") && require("openssl")
}

/// `ferry <args>` with no docker credentials, certs.d folders only where `env` says
/// (`FERRY_CERTS_D` defaults to an empty folder, so /etc is never read), and `env`.
fn ferry(scratch: &TempDir, env: &[(&str, &Path)], args: &[&str]) -> Run {
    let empty = scratch.join("empty");
    std::fs::create_dir_all(&empty).expect("create empty dir");
    let mut command = Command::new(ferry_bin());
    command.args(args).env("DOCKER_CONFIG", &empty).env("FERRY_CERTS_D", &empty);
    command.env_remove("SSL_CERT_FILE").env_remove("SSL_CERT_DIR");
    for (name, value) in env {
        command.env(name, value);
    }
    let run = Run::from_command(&mut command);
    run.assert_no_panic();
    run
}

/// The one-line, no-retry TLS error: exit 1, names the registry and contains `needles`.
fn assert_tls_error(run: Run, host: &str, needles: &[&str]) {
    let run = run.expect(1, "a TLS failure");
    let lines: Vec<&str> = run.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let text = run.stderr.as_str();
    assert!(text.contains(&format!("registry {host}")), "{text}");
    for needle in needles {
        assert!(text.contains(needle), "want {needle:?} in:\n{text}");
    }
    assert!(
        !text.contains("gave up after") && !text.contains("retrying"),
        "a TLS failure is not retried:\n{text}"
    );
    assert!(lines.iter().filter(|l| l.contains("TLS with registry")).count() >= 1, "{text}");
}

/// A source registry (plain `ferry serve`) with the sample images.
fn source() -> (Ferry, Sample) {
    let source = Ferry::start(&["--storage", "memory"]);
    let sample = Sample::push(&source.url);
    (source, sample)
}

#[test]
fn a_private_ca_is_refused_without_retry_and_trusted_every_way() {
    if !ready() {
        return;
    }
    let scratch = TempDir::new("tls-trust");
    let pki = Pki::new();
    let registry = DistributionTls::start(&pki, &PeerOpts { tls: true, ..PeerOpts::default() });
    let (src, sample) = source();
    let (host, src_host) = (registry.host(), src.host());
    let cert_dir = pki.cert_dir(&scratch.join("cert-dir"), None);
    let cert_dir_arg = cert_dir.to_str().unwrap();

    // copy in with --dest-cert-dir, then every way to be refused, then every way to trust.
    ferry(
        &scratch,
        &[],
        &[
            "copy",
            "--progress",
            "plain",
            "--dest-cert-dir",
            cert_dir_arg,
            &format!("{src_host}/library/app:v1"),
            &format!("{host}/t/app01:v1"),
        ],
    )
    .expect(0, "copy with --dest-cert-dir");

    let before = registry.requests();
    let repo = format!("{host}/t/app01");
    let fix = format!("certs.d/{host}/ca.crt");
    assert_tls_error(
        ferry(&scratch, &[], &["ls", &repo]),
        &host,
        &["unknown authority", &fix, "SSL_CERT_FILE", "--cert-dir"],
    );
    assert_tls_error(
        ferry(&scratch, &[], &["inspect", &format!("{repo}:v1")]),
        &host,
        &["unknown authority"],
    );
    assert_tls_error(
        ferry(
            &scratch,
            &[],
            &["copy", "--progress", "plain", &format!("{src_host}/library/app:v2"), &format!("{repo}:v2")],
        ),
        &host,
        &["unknown authority", "--dest-cert-dir"],
    );
    assert_eq!(registry.requests(), before, "a refused handshake sends no request:\n{}", registry.log());

    let has_v1 = |run: Run, what: &str| {
        let run = run.expect(0, what);
        assert!(
            run.stdout.contains("v1") && run.stdout.contains(&sample.tags[0].2[..19]),
            "{what}: {}",
            run.stdout
        );
    };
    has_v1(ferry(&scratch, &[("SSL_CERT_FILE", &pki.ca())], &["ls", &repo]), "SSL_CERT_FILE");
    let certs_d = scratch.join("certs.d");
    pki.cert_dir(&certs_d.join(&host), None);
    has_v1(ferry(&scratch, &[("FERRY_CERTS_D", &certs_d)], &["ls", &repo]), "certs.d");
    has_v1(ferry(&scratch, &[], &["ls", "--cert-dir", cert_dir_arg, &repo]), "ls --cert-dir");
    let inspect = ferry(&scratch, &[("FERRY_CERTS_D", &certs_d)], &["inspect", &format!("{repo}:v1")])
        .expect(0, "inspect");
    assert!(inspect.stdout.contains(&sample.tags[0].2), "{}", inspect.stdout);
    let diff = ferry(
        &scratch,
        &[],
        &["diff", "--src-cert-dir", cert_dir_arg, &repo, &format!("{src_host}/library/app")],
    );
    assert!(diff.code == 0 || diff.code == 1, "diff --src-cert-dir: {}\n{}", diff.stdout, diff.stderr);
    assert!(diff.stdout.contains("v1") && diff.stdout.contains("v2"), "{}", diff.stdout);

    // sync: the config's `tls` key (relative to the config file), then `--cert-dir REGISTRY=DIR`.
    std::fs::copy(pki.ca(), scratch.join("private-ca.crt")).unwrap();
    let config = scratch.join("ferry.yaml");
    std::fs::write(
        &config,
        format!("images: {{\"{src_host}/library/app:v2\": \"{repo}\"}}\ntls: {{\"{host}\": {{ca: private-ca.crt}}}}\n"),
    )
    .unwrap();
    ferry(&scratch, &[], &["sync", "--progress", "plain", "--config", config.to_str().unwrap()])
        .expect(0, "sync with tls.ca");
    let images = scratch.join("images.json");
    std::fs::write(&images, format!("{{\"{src_host}/library/multi:1\": \"{host}/t/multi\"}}")).unwrap();
    let flag = format!("{host}={cert_dir_arg}");
    ferry(
        &scratch,
        &[],
        &["sync", "--progress", "plain", "--images", images.to_str().unwrap(), "--cert-dir", &flag],
    )
    .expect(0, "sync --cert-dir");
    let ls =
        ferry(&scratch, &[], &["ls", "--json", "--cert-dir", cert_dir_arg, &repo]).expect(0, "ls after sync");
    assert!(ls.stdout.contains("\"v2\""), "{}", ls.stdout);
    let multi = ferry(&scratch, &[], &["inspect", "--cert-dir", cert_dir_arg, &format!("{host}/t/multi:1")])
        .expect(0, "inspect");
    assert!(multi.stdout.contains(&sample.tags[2].2), "{}", multi.stdout);
}

#[test]
fn insecure_is_https_without_verification_then_plain_http() {
    if !ready() {
        return;
    }
    let scratch = TempDir::new("tls-insecure");
    let pki = Pki::new();
    let tls = DistributionTls::start(&pki, &PeerOpts { tls: true, ..PeerOpts::default() });
    let plain = DistributionTls::start(&pki, &PeerOpts::default());
    let (src, _sample) = source();
    let (t, p, s) = (tls.host(), plain.host(), src.host());
    let auth = scratch.join("auth.json");
    std::fs::write(&auth, format!("{{\"{t}\": {{\"insecure\": true}}, \"{p}\": {{\"insecure\": true}}}}"))
        .unwrap();
    let images = scratch.join("images.json");
    std::fs::write(
        &images,
        format!(
            "{{\"{s}/library/app\": [\"{t}/m/app\", \"{p}/m/app\"], \"{s}/library/multi:1\": [\"{t}/m/multi\", \"{p}/m/multi\"]}}"
        ),
    )
    .unwrap();
    let sync = |what: &str| {
        let args = [
            "sync",
            "--progress",
            "plain",
            "--auth",
            auth.to_str().unwrap(),
            "--images",
            images.to_str().unwrap(),
        ];
        ferry(&scratch, &[], &args).expect(0, what)
    };
    sync("cold sync");
    assert!(tls.requests() > 0, "the TLS registry was written over HTTPS:\n{}", tls.log());
    let (tls_before, plain_before) = (tls.requests(), plain.requests());
    let run = sync("no-op sync");
    assert!(
        run.stdout.contains("skipped") || run.stdout.contains("in sync") || run.stdout.contains("0 copied"),
        "{}",
        run.stdout
    );
    let (tls_noop, plain_noop) = (tls.requests() - tls_before, plain.requests() - plain_before);
    // The probe is a bare handshake, not a request: the TLS registry sees what the plain one sees.
    assert!(plain_noop > 0, "the no-op run asked the plain registry something");
    assert!(
        tls_noop <= plain_noop + 1 && plain_noop <= tls_noop + 1,
        "no-op requests: TLS {tls_noop}, plain {plain_noop}"
    );
    eprintln!("no-op requests: TLS registry {tls_noop}, plain registry {plain_noop}");

    // Without insecure, the same TLS registry refuses ferry's trust.
    let strict = scratch.join("strict.json");
    std::fs::write(&strict, format!("{{\"{s}/library/app:v1\": \"{t}/strict/app\"}}")).unwrap();
    let run = ferry(&scratch, &[], &["sync", "--progress", "plain", "--images", strict.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        format!("{}{}", run.stdout, run.stderr).contains("unknown authority"),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
}

#[test]
fn mutual_tls_takes_client_certificates_from_certs_d() {
    if !ready() {
        return;
    }
    let scratch = TempDir::new("tls-mutual");
    let pki = Pki::new();
    let registry = DistributionTls::start(&pki, &PeerOpts { tls: true, client_cas: true });
    let (src, sample) = source();
    let host = registry.host();
    let repo = format!("{host}/mtls/app");
    let with_client = scratch.join("with-client");
    pki.cert_dir(&with_client.join(&host), Some("client"));
    let ca_only = scratch.join("ca-only");
    pki.cert_dir(&ca_only.join(&host), None);
    let stranger = scratch.join("stranger");
    pki.cert_dir(&stranger.join(&host), Some("stranger"));

    assert_tls_error(
        ferry(&scratch, &[("FERRY_CERTS_D", &ca_only)], &["ls", &repo]),
        &host,
        &["requires a client certificate", "client.cert and client.key"],
    );
    assert_tls_error(
        ferry(&scratch, &[("FERRY_CERTS_D", &stranger)], &["ls", &repo]),
        &host,
        &["refused the client certificate"],
    );
    ferry(
        &scratch,
        &[("FERRY_CERTS_D", &with_client)],
        &["copy", "--progress", "plain", &format!("{}/library/multi:1", src.host()), &format!("{repo}:1")],
    )
    .expect(0, "copy with a client certificate");
    let inspect = ferry(&scratch, &[("FERRY_CERTS_D", &with_client)], &["inspect", &format!("{repo}:1")])
        .expect(0, "inspect");
    assert!(inspect.stdout.contains(&sample.tags[2].2), "{}", inspect.stdout);
}

#[test]
fn ferry_serve_speaks_tls_to_skopeo_and_ferry() {
    if !ready() || !require("skopeo") {
        return;
    }
    let scratch = TempDir::new("tls-serve");
    let pki = Pki::new();
    // The server's files are copies, so the reload below can replace them.
    let (cert, key) = (scratch.join("server.crt"), scratch.join("server.key"));
    std::fs::copy(pki.file("server.crt"), &cert).unwrap();
    std::fs::copy(pki.file("server.key"), &key).unwrap();
    let server = Ferry::start(&[
        "--storage",
        "memory",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let (src, _sample) = source();
    let (host, src_host) = (server.host(), src.host());
    let certs = pki.cert_dir(&scratch.join("skopeo-certs"), None);
    let certs_arg = certs.to_str().unwrap();

    // skopeo pushes a multi-arch image from an OCI layout and pulls it out again: the same
    // blobs, byte for byte, index and manifests included.
    let (pushed, pulled) = (scratch.join("pushed"), scratch.join("pulled"));
    let layout = |dir: &Path| format!("oci:{}:x", dir.display());
    let src_ref = format!("docker://{src_host}/library/multi:1");
    skopeo(&["copy", "--all", "--src-tls-verify=false", &src_ref, &layout(&pushed)]);
    let dst_ref = format!("docker://{host}/s/multi:1");
    skopeo(&["copy", "--all", "--dest-cert-dir", certs_arg, &layout(&pushed), &dst_ref]);
    skopeo(&["copy", "--all", "--src-cert-dir", certs_arg, &dst_ref, &layout(&pulled)]);
    let blobs = |dir: &Path| {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.join("blobs/sha256"))
            .unwrap()
            .map(|e| {
                let path = e.unwrap().path();
                (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&path).unwrap())
            })
            .collect();
        files.sort();
        files
    };
    let (a, b) = (blobs(&pushed), blobs(&pulled));
    assert!(a.len() >= 7, "an index, two manifests, two configs and layers: {}", a.len());
    assert!(a == b, "the image pulled from ferry's TLS registry is byte-identical to the one pushed");
    let raw = skopeo(&["inspect", "--raw", "--cert-dir", certs_arg, &dst_ref]);
    let index = support::sha256(raw.stdout.strip_suffix(b"\n").unwrap_or(&raw.stdout));
    assert!(
        a.iter().any(|(name, _)| index.ends_with(name.as_str())),
        "the index {index} is one of the pushed blobs"
    );

    // ferry syncs into it.
    let images = scratch.join("images.json");
    std::fs::write(&images, format!("{{\"{src_host}/library/app\": \"{host}/f/app\"}}")).unwrap();
    let flag = format!("{host}={certs_arg}");
    ferry(
        &scratch,
        &[],
        &["sync", "--progress", "plain", "--images", images.to_str().unwrap(), "--cert-dir", &flag],
    )
    .expect(0, "sync into TLS ferry");
    let ls = ferry(&scratch, &[], &["ls", "--cert-dir", certs_arg, &format!("{host}/f/app")]).expect(0, "ls");
    assert!(ls.stdout.contains("v1") && ls.stdout.contains("v2"), "{}", ls.stdout);

    // SIGHUP: a certificate from another CA takes over for new connections.
    pki.authority("ca2");
    pki.issue("ca2", "server2", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth");
    std::fs::copy(pki.file("server2.crt"), &cert).unwrap();
    std::fs::copy(pki.file("server2.key"), &key).unwrap();
    let status = Command::new("kill").args(["-HUP", &server.pid().to_string()]).status().unwrap();
    assert!(status.success());
    std::thread::sleep(std::time::Duration::from_millis(300));
    let repo = format!("{host}/f/app");
    assert_tls_error(
        ferry(&scratch, &[], &["ls", "--cert-dir", certs_arg, &repo]),
        &host,
        &["unknown authority"],
    );
    let ca2 = scratch.join("ca2");
    std::fs::create_dir_all(&ca2).unwrap();
    std::fs::copy(pki.file("ca2.crt"), ca2.join("ca.crt")).unwrap();
    ferry(&scratch, &[], &["ls", "--cert-dir", ca2.to_str().unwrap(), &repo])
        .expect(0, "ls after the reload");
}

#[test]
fn ferry_serve_requires_client_certificates_and_names_https_in_its_realm() {
    if !ready() {
        return;
    }
    let scratch = TempDir::new("tls-serve-mtls");
    let pki = Pki::new();
    let (cert, key, ca) = (pki.file("server.crt"), pki.file("server.key"), pki.ca());
    let htpasswd = support::write_htpasswd(&scratch, "u", "p");
    let server = Ferry::start(&[
        "--storage",
        "memory",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--tls-client-ca",
        ca.to_str().unwrap(),
        "--htpasswd",
        htpasswd.to_str().unwrap(),
        "--token",
    ]);
    let host = server.host();
    let repo = format!("{host}/a/b");
    let ca_only = pki.cert_dir(&scratch.join("ca-only"), None);
    let with_client = pki.cert_dir(&scratch.join("with-client"), Some("client"));
    assert_tls_error(
        ferry(&scratch, &[], &["ls", "--cert-dir", ca_only.to_str().unwrap(), &repo]),
        &host,
        &["requires a client certificate"],
    );
    // With the client certificate, TLS passes and the token flow starts at an https realm.
    let run =
        ferry(&scratch, &[], &["ls", "--creds", "u:p", "--cert-dir", with_client.to_str().unwrap(), &repo]);
    assert!(run.code == 0 || run.stderr.contains("NAME_UNKNOWN"), "{}\n{}", run.stdout, run.stderr);
    assert!(!run.stderr.contains("TLS"), "{}", run.stderr);
    let client = format!("{}", pki.file("client.crt").display());
    let client_key = format!("{}", pki.file("client.key").display());
    let has_curl = Command::new("curl").arg("--version").output().is_ok_and(|o| o.status.success());
    if has_curl {
        // By a name, over HTTP/2 (no Host header, only the :authority): the realm keeps the name.
        let port = host.rsplit(':').next().unwrap();
        let out = Command::new("curl")
            .args([
                "-sS",
                "-i",
                "--http2",
                "--cacert",
                ca.to_str().unwrap(),
                "--cert",
                &client,
                "--key",
                &client_key,
            ])
            .args(["--resolve", &format!("registry.test:{port}:127.0.0.1")])
            .arg(format!("https://registry.test:{port}/v2/"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("HTTP/2 401"), "{text}");
        assert!(text.contains(&format!("realm=\"https://registry.test:{port}/token\"")), "{text}");
    }
}

#[test]
fn expired_and_misnamed_certificates_are_named_and_not_retried() {
    if !ready() {
        return;
    }
    let scratch = TempDir::new("tls-bad-certs");
    let pki = Pki::new();
    pki.issue_for_days("ca", "expired", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth", 0);
    pki.issue("ca", "misnamed", "subjectAltName=DNS:elsewhere.test\nextendedKeyUsage=serverAuth");
    let certs = pki.cert_dir(&scratch.join("certs"), None);
    let cases =
        [("expired", "has expired or is not valid yet"), ("misnamed", "not valid for this host name")];
    // `-days 0` ends the certificate's validity within the second it was made.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    for (leaf, want) in cases {
        let (cert, key) = (pki.file(&format!("{leaf}.crt")), pki.file(&format!("{leaf}.key")));
        let server = Ferry::start(&[
            "--storage",
            "memory",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ]);
        let host = server.host();
        let run =
            ferry(&scratch, &[], &["ls", "--cert-dir", certs.to_str().unwrap(), &format!("{host}/a/b")]);
        assert_tls_error(run, &host, &[want]);
    }
}
