//! TLS for the native transport: whom to trust, which client certificate to show, which
//! scheme an `insecure` or loopback registry speaks, and what a failed handshake means.
//!
//! Trust for a registry is the union of:
//!
//! 1. the platform's roots (`rustls-native-certs`; `SSL_CERT_FILE` and `SSL_CERT_DIR`,
//!    when set, replace them as OpenSSL does), or Mozilla's roots when the platform has none;
//! 2. the registry's certificate folder: an explicit one ([`RegistryTls::cert_dir`], from
//!    `--src-cert-dir`/`--dest-cert-dir` or the config's `certDir`), else the first of
//!    [`TlsOptions::certs_d`] that holds `<host:port>/` (or `<host>/` for the default
//!    port): `*.crt` are CAs, each `*.cert` is a client certificate whose key is the `*.key`
//!    of the same name, as Docker and containers/image read them;
//! 3. the files the config names for it ([`RegistryTls::ca`], [`RegistryTls::client`]); a
//!    client certificate given there wins over one in a folder.
//!
//! Each distinct registry setting gets its own reqwest client (and so its own pool);
//! registries with nothing of their own share one.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use ferry_core::scheme::{policy, Policy, ProbeOutcome, Scheme, SchemeMemo};
use ferry_core::tls::TlsFailure;
use ferry_core::transport::{Side, TransportError};
use reqwest::Url;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::options::{BuildError, NativeOptions};

/// Where docker and containers/image keep per-registry certificates.
pub const DEFAULT_CERTS_D: [&str; 2] = ["/etc/docker/certs.d", "/etc/containers/certs.d"];

/// The environment variable that replaces [`DEFAULT_CERTS_D`]: folders separated by `:`.
pub const CERTS_D_ENV: &str = "FERRY_CERTS_D";

/// The longest a scheme probe waits for a handshake to start answering.
const PROBE_WAIT: Duration = Duration::from_secs(5);

/// How long a diagnosis waits for a server's alert after a TLS 1.3 handshake: a server
/// that refuses the client's certificate says so within a round trip.
const ALERT_WAIT: Duration = Duration::from_secs(1);

/// TLS settings of a [`NativeTransport`](crate::NativeTransport).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsOptions {
    /// Folders laid out as docker's `certs.d`, searched in order for `<host[:port]>/`.
    pub certs_d: Vec<PathBuf>,
    /// Settings of single registries, keyed by the API host as URLs write it
    /// (`host[:port]`, lowercase): `registry-1.docker.io`, not `docker.io`.
    pub registries: BTreeMap<String, RegistryTls>,
}

impl Default for TlsOptions {
    /// [`DEFAULT_CERTS_D`], or the folders in `FERRY_CERTS_D` when it is set.
    fn default() -> Self {
        let certs_d = match std::env::var_os(CERTS_D_ENV) {
            Some(list) => std::env::split_paths(&list).filter(|p| !p.as_os_str().is_empty()).collect(),
            None => DEFAULT_CERTS_D.iter().map(PathBuf::from).collect(),
        };
        TlsOptions { certs_d, registries: BTreeMap::new() }
    }
}

impl TlsOptions {
    pub fn with_certs_d(mut self, folders: Vec<PathBuf>) -> Self {
        self.certs_d = folders;
        self
    }

    /// Settings for the registry at `host` (`host[:port]`), merged into any already given.
    pub fn with_registry(mut self, host: &str, settings: RegistryTls) -> Self {
        let entry = self.registries.entry(host.to_ascii_lowercase()).or_default();
        entry.ca.extend(settings.ca);
        entry.client = settings.client.or(entry.client.take());
        entry.cert_dir = settings.cert_dir.or(entry.cert_dir.take());
        self
    }
}

/// One registry's own TLS files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryTls {
    /// PEM files of CA certificates trusted for this registry.
    pub ca: Vec<PathBuf>,
    /// A PEM client certificate (chain) and its PEM private key, for mutual TLS.
    pub client: Option<(PathBuf, PathBuf)>,
    /// A certs.d-style folder used instead of the `certs.d` lookup (skopeo's `--cert-dir`).
    pub cert_dir: Option<PathBuf>,
}

/// What one registry's connections are set up with, once read from disk.
struct Material {
    extra_roots: Vec<CertificateDer<'static>>,
    client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    /// Where the settings came from, for messages.
    sources: Vec<String>,
}

/// A reqwest client and the TLS configuration it was built with.
#[derive(Clone)]
pub(crate) struct TlsClient {
    pub http: reqwest::Client,
    config: Arc<ClientConfig>,
    /// Whether it presents a client certificate.
    pub client_cert: bool,
}

impl TlsClient {
    fn new(
        options: &NativeOptions,
        config: ClientConfig,
        client_cert: bool,
    ) -> Result<TlsClient, BuildError> {
        let http = build_client(options, config.clone())?;
        Ok(TlsClient { http, config: Arc::new(config), client_cert })
    }
}

/// The clients of a transport, one per registry setting, and the scheme decisions of the run.
pub(crate) struct Tls {
    options: NativeOptions,
    provider: Arc<CryptoProvider>,
    default_client: TlsClient,
    lenient_client: OnceLock<Result<TlsClient, String>>,
    /// `(host[:port], verify)` -> client; `None` when the host has nothing of its own.
    clients: Mutex<HashMap<(String, bool), Option<TlsClient>>>,
    memo: Mutex<SchemeMemo>,
    probes: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("tls", &self.options.tls).finish_non_exhaustive()
    }
}

impl Tls {
    pub(crate) fn new(options: &NativeOptions) -> Result<Tls, BuildError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config =
            client_config(&provider, platform_roots().clone(), true, None).map_err(BuildError::Tls)?;
        let default_client = TlsClient::new(options, config, false)?;
        let tls = Tls {
            options: options.clone(),
            provider,
            default_client,
            lenient_client: OnceLock::new(),
            clients: Mutex::new(HashMap::new()),
            memo: Mutex::new(SchemeMemo::default()),
            probes: Mutex::new(HashMap::new()),
        };
        // Files named explicitly are read now, so that a typo is an error before any request.
        for host in options.tls.registries.keys() {
            tls.material(host).map_err(BuildError::Tls)?;
        }
        Ok(tls)
    }

    fn is_insecure(&self, url: &Url) -> bool {
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let hosts = &self.options.insecure_hosts;
        hosts.contains(&host) || url.port().is_some_and(|port| hosts.contains(&format!("{host}:{port}")))
    }

    /// The client for `url`.
    pub(crate) fn client_for(&self, side: Side, url: &Url) -> Result<TlsClient, TransportError> {
        let verify = !self.is_insecure(url);
        let host = crate::errors::host_of(url).to_ascii_lowercase();
        let key = (host.clone(), verify);
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = clients.get(&key) {
            return Ok(found.clone().unwrap_or_else(|| self.shared(verify)));
        }
        let built = self.build_for(&host, url, verify).map_err(|message| TransportError::Tls {
            side,
            failure: TlsFailure::Other,
            message: format!("registry {host}: {message}"),
        })?;
        clients.insert(key, built.clone());
        Ok(built.unwrap_or_else(|| self.shared(verify)))
    }

    /// The client of registries with no settings of their own.
    pub(crate) fn shared(&self, verify: bool) -> TlsClient {
        if verify {
            return self.default_client.clone();
        }
        match self.lenient_client.get_or_init(|| {
            let config = client_config(&self.provider, RootCertStore::empty(), false, None)?;
            TlsClient::new(&self.options, config, false).map_err(|e| e.to_string())
        }) {
            Ok(client) => client.clone(),
            // Cannot happen with the ring provider; the verifying client is the safe fallback.
            Err(_) => self.default_client.clone(),
        }
    }

    fn build_for(&self, host: &str, url: &Url, verify: bool) -> Result<Option<TlsClient>, String> {
        let mut material = self.material(host)?;
        if url.port().is_none() && material.sources.is_empty() {
            // A URL without a port may be configured under `host:443` too.
            if let Some(port) = url.port_or_known_default() {
                material = self.material(&format!("{host}:{port}"))?;
            }
        }
        if material.sources.is_empty() {
            return Ok(None);
        }
        tracing::debug!(host, sources = ?material.sources, "TLS settings of their own");
        let mut roots = platform_roots().clone();
        for cert in &material.extra_roots {
            roots
                .add(cert.clone())
                .map_err(|e| format!("a CA certificate of {:?} is invalid: {e}", material.sources))?;
        }
        let client_cert = material.client.is_some();
        let config = client_config(&self.provider, roots, verify, material.client)?;
        TlsClient::new(&self.options, config, client_cert).map(Some).map_err(|e| e.to_string())
    }

    /// Why a connection to `url` over HTTPS broke, when TLS is the reason. Under TLS 1.3 a
    /// server checks the client's certificate after the client considers the handshake
    /// done, so its alert reaches the first read, and the HTTP client reports only a closed
    /// connection. A fresh handshake with the same settings, followed by one read, catches
    /// that alert; a server that then waits for a request has no complaint.
    pub(crate) async fn diagnose(&self, side: Side, url: &Url, client: &TlsClient) -> Option<TransportError> {
        use tokio::io::AsyncReadExt as _;
        let host = url.host_str()?;
        let port = url.port_or_known_default()?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(bare.to_owned()).ok()?;
        let wait = self.options.connect_timeout.min(PROBE_WAIT);
        let addresses = self.addresses(bare, port).await?;
        let tcp =
            tokio::time::timeout(wait, tokio::net::TcpStream::connect(&addresses[..])).await.ok()?.ok()?;
        let connector = tokio_rustls::TlsConnector::from(client.config.clone());
        let failure = match tokio::time::timeout(wait, connector.connect(name, tcp)).await.ok()? {
            Err(error) => error,
            Ok(mut stream) => {
                let mut byte = [0u8; 1];
                match tokio::time::timeout(ALERT_WAIT, stream.read(&mut byte)).await {
                    Ok(Err(error)) => error,
                    _ => return None,
                }
            }
        };
        let (kind, detail) = classify(&failure, Some(client.client_cert))?;
        Some(tls_error(side, &crate::errors::host_of(url), kind, &detail))
    }

    /// The addresses of `host` this transport may dial: all of them, or those the
    /// allowlist lets through; `None` when there are none.
    async fn addresses(&self, host: &str, port: u16) -> Option<Vec<std::net::SocketAddr>> {
        let found = match &self.options.allowlist {
            Some(allowlist) => crate::allow::resolve(allowlist, host, port).await.ok()?,
            None => tokio::net::lookup_host((host, port)).await.ok()?.collect(),
        };
        (!found.is_empty()).then_some(found)
    }

    /// Reads the files that apply to `host` (`host[:port]`).
    fn material(&self, host: &str) -> Result<Material, String> {
        let explicit = self.options.tls.registries.get(host);
        let mut material = Material { extra_roots: Vec::new(), client: None, sources: Vec::new() };
        let folder = match explicit.and_then(|e| e.cert_dir.clone()) {
            Some(dir) if dir.is_dir() => Some(dir),
            Some(dir) => return Err(format!("the certificate folder {} does not exist", dir.display())),
            None => self.options.tls.certs_d.iter().map(|root| root.join(host)).find(|dir| dir.is_dir()),
        };
        if let Some(dir) = folder {
            read_folder(&dir, &mut material)?;
        }
        if let Some(explicit) = explicit {
            for ca in &explicit.ca {
                material.extra_roots.extend(read_certs(ca)?);
                material.sources.push(ca.display().to_string());
            }
            if let Some((cert, key)) = &explicit.client {
                material.client = Some((read_certs(cert)?, read_key(key)?));
                material.sources.push(cert.display().to_string());
            }
        }
        Ok(material)
    }

    /// `url` with the scheme the core decides for it: an `http://` URL of an insecure or
    /// loopback registry becomes `https://` when the endpoint speaks TLS. Each endpoint is
    /// probed at most once per run; concurrent requests wait for the one probe.
    pub(crate) async fn decide_scheme(&self, url: Url) -> Url {
        let Some(host) = url.host_str() else { return url };
        let scheme = if url.scheme() == "http" { Scheme::Http } else { Scheme::Https };
        let registry = crate::errors::host_of(&url);
        if policy(scheme, &registry, self.is_insecure(&url)) == Policy::AsGiven {
            return url;
        }
        let port = url.port().unwrap_or(443);
        let endpoint = format!("{}:{port}", host.to_ascii_lowercase());
        if let Some(decided) = self.memo.lock().unwrap_or_else(PoisonError::into_inner).get(&endpoint) {
            return with_scheme(url, decided);
        }
        let gate = {
            let mut probes = self.probes.lock().unwrap_or_else(PoisonError::into_inner);
            probes.entry(endpoint.clone()).or_default().clone()
        };
        let _one_at_a_time = gate.lock().await;
        if let Some(decided) = self.memo.lock().unwrap_or_else(PoisonError::into_inner).get(&endpoint) {
            return with_scheme(url, decided);
        }
        let outcome = self.probe(host, port).await;
        let default_port = url.port().is_none();
        let decided =
            self.memo.lock().unwrap_or_else(PoisonError::into_inner).record(&endpoint, outcome, default_port);
        tracing::debug!(
            endpoint,
            ?outcome,
            scheme = decided.as_str(),
            "probed whether the registry speaks TLS"
        );
        with_scheme(url, decided)
    }

    /// Opens a handshake to `host:port` that verifies nothing, to learn whether TLS is spoken.
    async fn probe(&self, host: &str, port: u16) -> ProbeOutcome {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let Ok(name) = ServerName::try_from(bare.to_owned()) else { return ProbeOutcome::Unreachable };
        let Ok(config) = client_config(&self.provider, RootCertStore::empty(), false, None) else {
            return ProbeOutcome::Unreachable;
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let wait = self.options.connect_timeout.min(PROBE_WAIT);
        let Some(addresses) = self.addresses(bare, port).await else { return ProbeOutcome::Unreachable };
        let tcp = match tokio::time::timeout(wait, tokio::net::TcpStream::connect(&addresses[..])).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => return ProbeOutcome::Refused,
            _ => return ProbeOutcome::Unreachable,
        };
        match tokio::time::timeout(wait, connector.connect(name, tcp)).await {
            Ok(Ok(_)) => ProbeOutcome::SpeaksTls,
            Ok(Err(error)) => probe_failure(&error),
            Err(_) => ProbeOutcome::Unreachable,
        }
    }

    /// A reqwest failure, with TLS failures classified; `client_cert` says whether the
    /// client that failed presented one.
    pub(crate) async fn error(
        &self,
        side: Side,
        url: &Url,
        client: &TlsClient,
        error: reqwest::Error,
    ) -> TransportError {
        let host = crate::errors::host_of(url);
        if let Some((failure, detail)) = classify(&error, Some(client.client_cert)) {
            return tls_error(side, &host, failure, &detail);
        }
        if url.scheme() == "https" && !error.is_timeout() {
            if let Some(tls) = self.diagnose(side, url, client).await {
                return tls;
            }
        }
        crate::errors::from_reqwest(side, &host, error)
    }
}

fn with_scheme(mut url: Url, scheme: Scheme) -> Url {
    if url.scheme() != scheme.as_str() {
        // Only http <-> https, which `set_scheme` always allows.
        let _ = url.set_scheme(scheme.as_str());
        if scheme == Scheme::Https && url.port() == Some(443) {
            let _ = url.set_port(None);
        }
    }
    url
}

/// What a failed probe handshake says about the endpoint.
fn probe_failure(error: &std::io::Error) -> ProbeOutcome {
    match error.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
        // It answered with something that is not a TLS record: an HTTP 400, most often.
        Some(
            rustls::Error::InvalidMessage(_)
            | rustls::Error::InappropriateMessage { .. }
            | rustls::Error::InappropriateHandshakeMessage { .. },
        ) => ProbeOutcome::NotTls,
        // An alert, or any other TLS-level complaint: it speaks TLS.
        Some(_) => ProbeOutcome::SpeaksTls,
        None => match error.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe => ProbeOutcome::NotTls,
            _ => ProbeOutcome::Unreachable,
        },
    }
}

/// The TLS failure inside a reqwest error, if any, with rustls's own words for it.
/// `client_cert`: whether a client certificate was presented, when known.
pub(crate) fn classify(
    error: &(dyn std::error::Error + 'static),
    client_cert: Option<bool>,
) -> Option<(TlsFailure, String)> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return failure_of(tls, client_cert).map(|f| (f, tls.to_string()));
        }
        // `io::Error::source` skips the error it wraps; look inside instead.
        cause = match e.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

fn failure_of(error: &rustls::Error, client_cert: Option<bool>) -> Option<TlsFailure> {
    use AlertDescription as A;
    use CertificateError as C;
    Some(match error {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => TlsFailure::UnknownIssuer,
            C::Expired | C::NotValidYet | C::ExpiredContext { .. } | C::NotValidYetContext { .. } => {
                TlsFailure::Expired
            }
            C::NotValidForName | C::NotValidForNameContext { .. } => TlsFailure::NameMismatch,
            _ => TlsFailure::Other,
        },
        rustls::Error::AlertReceived(A::CertificateRequired) => TlsFailure::ClientCertRequired,
        rustls::Error::AlertReceived(
            A::BadCertificate
            | A::UnknownCA
            | A::CertificateUnknown
            | A::UnsupportedCertificate
            | A::CertificateExpired
            | A::CertificateRevoked
            | A::AccessDenied,
        ) => match client_cert {
            Some(false) => TlsFailure::ClientCertRequired,
            _ => TlsFailure::ClientCertRejected,
        },
        // A TLS 1.2 server that wants a certificate ends the handshake this way.
        rustls::Error::AlertReceived(A::HandshakeFailure) if client_cert == Some(false) => {
            TlsFailure::ClientCertRequired
        }
        rustls::Error::AlertReceived(_)
        | rustls::Error::PeerIncompatible(_)
        | rustls::Error::NoCertificatesPresented
        | rustls::Error::InvalidCertRevocationList(_) => TlsFailure::Other,
        // Broken records and the like: the connection's fault, worth another attempt.
        _ => return None,
    })
}

/// The one line a user sees: which registry, what was wrong, and what fixes it.
pub(crate) fn tls_error(side: Side, host: &str, failure: TlsFailure, detail: &str) -> TransportError {
    let flag = match side {
        Side::Source => "--src-cert-dir DIR",
        Side::Destination => "--dest-cert-dir DIR",
        Side::Registry => "--cert-dir DIR (--src-cert-dir/--dest-cert-dir for copy and diff)",
    };
    let fix = match failure {
        TlsFailure::UnknownIssuer => format!(
            "trust its CA: put it in certs.d/{host}/ca.crt (under /etc/docker/certs.d, /etc/containers/certs.d \
             or $FERRY_CERTS_D), pass {flag} with ca.crt in it, set `tls: {{{host}: {{ca: FILE}}}}` in the config, \
             or add it to SSL_CERT_FILE; or mark the registry insecure to skip verification"
        ),
        TlsFailure::Expired => {
            "renew the registry's certificate (or check this machine's clock); or mark the registry insecure"
                .to_owned()
        }
        TlsFailure::NameMismatch => format!(
            "reach the registry by a name its certificate lists (subjectAltName), or reissue the certificate for \
             {host}; or mark the registry insecure"
        ),
        TlsFailure::ClientCertRequired => format!(
            "give a client certificate: client.cert and client.key in certs.d/{host}/ or in {flag}, or \
             `tls: {{{host}: {{cert: FILE, key: FILE}}}}` in the config"
        ),
        TlsFailure::ClientCertRejected => format!(
            "the client certificate for {host} must be signed by a CA the registry trusts (its clientcas) and be \
             current; replace client.cert/client.key or the config's cert/key"
        ),
        _ => "check the registry's TLS setup; or mark the registry insecure".to_owned(),
    };
    TransportError::Tls {
        side,
        failure,
        message: format!("TLS with registry {host} failed: {failure} ({detail}); {fix}"),
    }
}

fn platform_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::warn!("reading the platform's trusted certificates: {error}");
        }
        let mut roots = RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            tracing::debug!("no platform roots found; trusting Mozilla's roots");
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        roots
    })
}

fn client_config(
    provider: &Arc<CryptoProvider>,
    roots: RootCertStore,
    verify: bool,
    client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<ClientConfig, String> {
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if verify {
        builder.with_root_certificates(roots)
    } else {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAny(provider.clone())))
    };
    let mut config = match client {
        Some((chain, key)) => {
            builder.with_client_auth_cert(chain, key).map_err(|e| format!("the client certificate: {e}"))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

pub(crate) fn build_client(
    options: &NativeOptions,
    tls: ClientConfig,
) -> Result<reqwest::Client, BuildError> {
    let mut builder = reqwest::Client::builder();
    if let Some(allowlist) = &options.allowlist {
        let allowlist = Arc::new(allowlist.clone());
        builder = builder.dns_resolver(Arc::new(crate::allow::GuardedResolver { allowlist }));
    }
    builder
        .use_preconfigured_tls(tls)
        .user_agent(options.user_agent.clone())
        .connect_timeout(options.connect_timeout)
        .pool_idle_timeout(options.pool_idle_timeout)
        .pool_max_idle_per_host(options.pool_max_idle_per_host)
        .tcp_keepalive(Duration::from_secs(30))
        // Redirects are followed by `fetch`, which decides what may follow them.
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .build()
        .map_err(|e| BuildError::Client(e.to_string()))
}

/// Reads a certs.d-style folder: `*.crt` are CAs; `X.cert` with `X.key` is a client pair.
fn read_folder(dir: &Path, material: &mut Material) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
    files.sort();
    for file in &files {
        match file.extension().and_then(|e| e.to_str()) {
            Some("crt") => {
                material.extra_roots.extend(read_certs(file)?);
                material.sources.push(file.display().to_string());
            }
            Some("cert") => {
                let key = file.with_extension("key");
                if !key.is_file() {
                    return Err(format!(
                        "{} has no key {}; CA certificates must end in .crt",
                        file.display(),
                        key.display()
                    ));
                }
                if material.client.is_none() {
                    material.client = Some((read_certs(file)?, read_key(&key)?));
                    material.sources.push(file.display().to_string());
                }
            }
            Some("key") if !file.with_extension("cert").is_file() => {
                return Err(format!(
                    "{} has no certificate {}",
                    file.display(),
                    file.with_extension("cert").display()
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read certificates from {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| format!("cannot read a private key from {}: {e}", path.display()))
}

/// Accepts any certificate, for registries marked insecure; handshake signatures are still
/// checked, so the peer holds the key of the certificate it showed.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_classified() {
        let cases = [
            (
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
                None,
                Some(TlsFailure::UnknownIssuer),
            ),
            (rustls::Error::InvalidCertificate(CertificateError::Expired), None, Some(TlsFailure::Expired)),
            (
                rustls::Error::InvalidCertificate(CertificateError::NotValidForName),
                None,
                Some(TlsFailure::NameMismatch),
            ),
            (
                rustls::Error::AlertReceived(AlertDescription::CertificateRequired),
                Some(false),
                Some(TlsFailure::ClientCertRequired),
            ),
            (
                rustls::Error::AlertReceived(AlertDescription::BadCertificate),
                Some(false),
                Some(TlsFailure::ClientCertRequired),
            ),
            (
                rustls::Error::AlertReceived(AlertDescription::BadCertificate),
                Some(true),
                Some(TlsFailure::ClientCertRejected),
            ),
            (
                rustls::Error::AlertReceived(AlertDescription::HandshakeFailure),
                Some(true),
                Some(TlsFailure::Other),
            ),
            (rustls::Error::DecryptError, None, None),
        ];
        for (error, client_cert, want) in cases {
            let text = error.to_string();
            let io = std::io::Error::new(std::io::ErrorKind::InvalidData, error);
            assert_eq!(classify(&io, client_cert).map(|(f, _)| f), want, "{text}");
        }
    }

    #[test]
    fn a_tls_failure_is_permanent_and_names_the_fix() {
        let error = tls_error(
            Side::Source,
            "reg:5443",
            TlsFailure::UnknownIssuer,
            "invalid peer certificate: UnknownIssuer",
        );
        assert!(!error.class().is_transient());
        let text = error.to_string();
        assert!(text.contains("registry reg:5443") && text.contains("certs.d/reg:5443/ca.crt"), "{text}");
        assert!(text.contains("--src-cert-dir") && !text.contains('\n'), "{text}");
    }

    #[test]
    fn probe_failures() {
        let io = |e: rustls::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let cases = [
            (
                io(rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)),
                ProbeOutcome::NotTls,
            ),
            (
                io(rustls::Error::AlertReceived(AlertDescription::CertificateRequired)),
                ProbeOutcome::SpeaksTls,
            ),
            (std::io::Error::from(std::io::ErrorKind::UnexpectedEof), ProbeOutcome::NotTls),
            (std::io::Error::from(std::io::ErrorKind::TimedOut), ProbeOutcome::Unreachable),
        ];
        for (error, want) in cases {
            assert_eq!(probe_failure(&error), want, "{error}");
        }
    }

    #[test]
    fn insecure_hosts_skip_verification() {
        let tls = |host: &str| Tls::new(&NativeOptions::default().with_insecure_host(host)).unwrap();
        let u = |s: &str| Url::parse(s).unwrap();
        let t = tls("Reg.local:5000");
        assert!(t.is_insecure(&u("https://reg.local:5000/v2/")));
        assert!(!t.is_insecure(&u("https://reg.local/v2/")));
        let t = tls("reg.local");
        assert!(t.is_insecure(&u("https://reg.local:5000/v2/")));
        assert!(!t.is_insecure(&u("https://other/v2/")));
    }

    #[test]
    fn scheme_rewrites() {
        let u = |s: &str| Url::parse(s).unwrap();
        assert_eq!(with_scheme(u("http://h:5000/v2/"), Scheme::Https).as_str(), "https://h:5000/v2/");
        assert_eq!(with_scheme(u("http://h/v2/"), Scheme::Https).as_str(), "https://h/v2/");
        assert_eq!(with_scheme(u("http://h/v2/"), Scheme::Http).as_str(), "http://h/v2/");
    }
}
