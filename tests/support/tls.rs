//! TLS peers for the end-to-end tests: a private CA and its certificates made with
//! `openssl`, distribution serving TLS (optionally requiring client certificates, with an
//! access log to count requests), and a plain-to-TLS forwarder so that the suite's tiny
//! HTTP/1.1 client can reach a registry that only speaks HTTPS.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use super::{free_port, wait_until_up, TempDir};

/// A private CA with a server certificate (for `127.0.0.1`, `localhost` and
/// `registry.test`), a client certificate, and a client certificate of another CA.
pub struct Pki {
    dir: TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        let pki = Pki { dir: TempDir::new("pki") };
        pki.authority("ca");
        pki.issue(
            "ca",
            "server",
            "subjectAltName=DNS:localhost,DNS:registry.test,IP:127.0.0.1\nextendedKeyUsage=serverAuth",
        );
        pki.issue("ca", "client", "extendedKeyUsage=clientAuth");
        pki.authority("other-ca");
        pki.issue("other-ca", "stranger", "extendedKeyUsage=clientAuth");
        pki
    }

    /// A self-signed CA `name` (`name.crt`, `name.key`).
    pub fn authority(&self, name: &str) {
        let subject = format!("/CN=ferry test {name}");
        openssl(
            &self.dir,
            &["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"],
            &[
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.crt"),
                "-days",
                "3",
                "-subj",
                &subject,
            ],
        );
    }

    /// A leaf `name` (`name.crt`, `name.key`) signed by CA `ca`, with the extensions `ext`.
    pub fn issue(&self, ca: &str, name: &str, ext: &str) {
        self.issue_for_days(ca, name, ext, 3);
    }

    /// [`Pki::issue`] valid for `days` days from now; 0 makes a certificate that expires
    /// within the second.
    pub fn issue_for_days(&self, ca: &str, name: &str, ext: &str, days: u32) {
        std::fs::write(self.dir.join(&format!("{name}.ext")), format!("basicConstraints=CA:FALSE\n{ext}\n"))
            .expect("write extensions");
        let subject = format!("/CN=ferry test {name}");
        openssl(
            &self.dir,
            &["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"],
            &["-keyout", &format!("{name}.key"), "-out", &format!("{name}.csr"), "-subj", &subject],
        );
        openssl(
            &self.dir,
            &["x509", "-req", "-days", &days.to_string(), "-set_serial", &serial(name)],
            &[
                "-in",
                &format!("{name}.csr"),
                "-CA",
                &format!("{ca}.crt"),
                "-CAkey",
                &format!("{ca}.key"),
                "-out",
                &format!("{name}.crt"),
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn ca(&self) -> PathBuf {
        self.file("ca.crt")
    }

    /// A folder as skopeo's `--*-cert-dir` and docker's `certs.d/<host>` want it: `ca.crt`,
    /// and `client.cert`/`client.key` from the leaf `client` when given.
    pub fn cert_dir(&self, folder: &Path, client: Option<&str>) -> PathBuf {
        std::fs::create_dir_all(folder).expect("create cert dir");
        std::fs::copy(self.ca(), folder.join("ca.crt")).expect("copy ca.crt");
        if let Some(leaf) = client {
            std::fs::copy(self.file(&format!("{leaf}.crt")), folder.join("client.cert")).expect("copy cert");
            std::fs::copy(self.file(&format!("{leaf}.key")), folder.join("client.key")).expect("copy key");
        }
        folder.to_owned()
    }
}

/// A serial number from the leaf's name, so two leaves of one CA never share one.
fn serial(name: &str) -> String {
    let hash =
        name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    format!("{}", hash >> 2)
}

fn openssl(dir: &TempDir, head: &[&str], tail: &[&str]) {
    let output =
        Command::new("openssl").args(head).args(tail).current_dir(dir.path()).output().expect("run openssl");
    assert!(
        output.status.success(),
        "openssl {head:?} {tail:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// How a [`DistributionTls`] serves.
#[derive(Default)]
pub struct PeerOpts {
    /// Serve TLS with `server.crt` of this CA.
    pub tls: bool,
    /// Require client certificates of this CA (`http.tls.clientcas`).
    pub client_cas: bool,
}

/// The config file of a [`DistributionTls`] peer (its access log on): filesystem storage
/// under `root`, deletes on, `127.0.0.1:port`, TLS and client CAs as `opts` say. `ferry
/// serve --config` reads the very same file.
pub fn distribution_config(pki: &Pki, root: &Path, port: u16, opts: &PeerOpts) -> String {
    let mut http = format!("addr: 127.0.0.1:{port}");
    if opts.tls {
        http.push_str(&format!(
            ", tls: {{certificate: {}, key: {}",
            pki.file("server.crt").display(),
            pki.file("server.key").display()
        ));
        if opts.client_cas {
            http.push_str(&format!(", clientcas: [{}]", pki.ca().display()));
        }
        http.push('}');
    }
    format!(
        "version: 0.1\nlog: {{level: error, accesslog: {{disabled: false}}}}\n\
         storage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\nhttp: {{{http}}}\n",
        root.display()
    )
}

/// distribution with TLS from a [`Pki`] (or plain HTTP) and its access log on, killed on drop.
pub struct DistributionTls {
    child: Child,
    /// `https://127.0.0.1:PORT` (or `http://`).
    pub url: String,
    dir: TempDir,
}

impl DistributionTls {
    pub fn start(pki: &Pki, opts: &PeerOpts) -> DistributionTls {
        let dir = TempDir::new("distribution-tls");
        for _attempt in 0..5 {
            let port = free_port();
            let yaml = distribution_config(pki, &dir.join("data"), port, opts);
            std::fs::write(dir.join("config.yml"), yaml).expect("write config");
            let log = std::fs::File::create(dir.join("access.log")).expect("create log");
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(dir.join("config.yml"))
                .stdout(Stdio::from(log.try_clone().expect("log")))
                .stderr(Stdio::from(log))
                .spawn()
                .expect("spawn docker-registry");
            std::thread::sleep(Duration::from_millis(100));
            if let Ok(Some(_)) = child.try_wait() {
                continue;
            }
            wait_until_up(&format!("http://127.0.0.1:{port}"), &mut child, "docker-registry");
            let scheme = if opts.tls { "https" } else { "http" };
            return DistributionTls { child, url: format!("{scheme}://127.0.0.1:{port}"), dir };
        }
        panic!("docker-registry did not start");
    }

    /// `127.0.0.1:PORT`
    pub fn host(&self) -> String {
        self.url.split_once("://").map(|(_, h)| h.to_owned()).unwrap_or_default()
    }

    /// HTTP requests served so far (the access log's lines).
    pub fn requests(&self) -> usize {
        let log = std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default();
        log.lines().filter(|l| l.contains(" HTTP/1.1\" ") || l.contains(" HTTP/2.0\" ")).count()
    }

    /// The access log and errors, for messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }
}

impl Drop for DistributionTls {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Listens on plain `http://127.0.0.1:PORT` and forwards each connection over TLS (trusting
/// `ca`, showing no client certificate) to `target`, so the suite's plain client can talk
/// to a registry that only speaks HTTPS.
pub struct Forwarder {
    pub url: String,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Forwarder {
    pub fn start(target: &str, ca: &Path) -> Forwarder {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("forwarder runtime");
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::pem::PemObject::pem_file_iter(ca).expect("read CA") {
            roots.add(cert.expect("a CA certificate")).expect("add CA");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocols")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let listener =
            runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind forwarder");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let target = target.to_owned();
        runtime.spawn(async move {
            while let Ok((mut plain, _)) = listener.accept().await {
                let (connector, target) = (connector.clone(), target.clone());
                tokio::spawn(async move {
                    let Ok(tcp) = tokio::net::TcpStream::connect(&target).await else { return };
                    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("a name");
                    let Ok(mut tls) = connector.connect(name, tcp).await else { return };
                    let _ = tokio::io::copy_bidirectional(&mut plain, &mut tls).await;
                });
            }
        });
        Forwarder { url, runtime: Some(runtime) }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
