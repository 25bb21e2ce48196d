//! What the client commands share: exit codes, logging, the runtime, the transport,
//! credentials from flags and from docker's config, and repository arguments.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::OnceLock;

use anyhow::Context as _;
use ferry_core::api::EndpointMap;
use ferry_core::auth::Credential;
use ferry_core::reference::{api_host, normalize_registry, validate_registry, Reference};
use ferry_native::{NativeOptions, NativeTransport, RegistryTls, TlsOptions};

/// Marks an error as the user's input (a file, a flag, a reference): exit code 2.
#[derive(Debug)]
pub(crate) struct BadInput(pub String);

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// An error about the user's input.
pub(crate) fn bad_input(message: impl fmt::Display) -> anyhow::Error {
    anyhow::Error::new(BadInput(message.to_string()))
}

/// 2 for bad input, 1 for everything else.
pub(crate) fn exit_code(err: &anyhow::Error) -> u8 {
    if err.chain().any(|e| e.is::<BadInput>()) {
        2
    } else {
        1
    }
}

/// 0 when `ok`, else 1.
pub(crate) fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// 0 when every image was copied or skipped; else 1, after one line on stderr.
pub(crate) fn job_exit(report: &ferry_core::progress::Report) -> ExitCode {
    let s = &report.summary;
    if s.failed == 0 {
        return ExitCode::SUCCESS;
    }
    eprintln!("error: {} of {} image(s) failed (see the failures above)", s.failed, s.images);
    ExitCode::FAILURE
}

/// clap's parser for counts that must be at least 1.
pub(crate) fn at_least_one(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("expected a whole number of at least 1".to_owned()),
    }
}

/// Logs on stderr at the level in `FERRY_LOG` (default warn), without timestamps.
pub(crate) fn init_logging() {
    let level = std::env::var("FERRY_LOG").ok().and_then(|l| l.parse().ok()).unwrap_or(tracing::Level::WARN);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .without_time()
        .with_target(false)
        .init();
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")
}

/// The process environment, for `${VAR}` in configuration files.
pub(crate) fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The TLS settings of this process's transports, set once by the command that runs.
static TLS: OnceLock<TlsOptions> = OnceLock::new();

/// Sets the TLS settings (certificate folders, CA and client files) that [`transport`]
/// uses; a command calls it before it runs its job.
pub(crate) fn set_tls(tls: TlsOptions) {
    if TLS.set(tls).is_err() {
        tracing::debug!("TLS settings were already set for this process");
    }
}

/// TLS settings with a certificate folder per registry (skopeo's `--src-cert-dir` and
/// `--dest-cert-dir`), on top of the `certs.d` folders.
pub(crate) fn tls_with_cert_dirs<'a>(
    dirs: impl IntoIterator<Item = (&'a str, Option<&'a PathBuf>)>,
) -> TlsOptions {
    dirs.into_iter().fold(TlsOptions::default(), |tls, (registry, dir)| match dir {
        Some(dir) => tls.with_registry(
            api_host(registry),
            RegistryTls { cert_dir: Some(dir.clone()), ..RegistryTls::default() },
        ),
        None => tls,
    })
}

/// The native transport. `insecure` hosts are spoken to over HTTPS without verifying their
/// certificates (plain HTTP only if they do not speak TLS).
pub(crate) fn transport<'a>(
    insecure: impl IntoIterator<Item = &'a String>,
) -> anyhow::Result<NativeTransport> {
    let options = insecure
        .into_iter()
        .map(|registry| api_host(registry))
        .fold(NativeOptions::default(), |o, host| o.with_insecure_host(host));
    let options = options.with_tls(TLS.get().cloned().unwrap_or_default());
    NativeTransport::with_options(options).map_err(bad_input).context("setting up the HTTP client")
}

/// A whole text file; a missing or unreadable file is bad input naming the file.
pub(crate) fn read_text(path: &Path, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| bad_input(format!("cannot read {what} {}: {e}", path.display())))
}

/// `USER:PASSWORD` from a flag. The value is never part of an error.
pub(crate) fn parse_creds(flag: &str, value: &str) -> anyhow::Result<Credential> {
    match value.split_once(':') {
        Some((user, password)) if !user.is_empty() => Ok(Credential::new(user, password)),
        _ => Err(bad_input(format!("{flag} must be USER:PASSWORD (the value given is not shown)"))),
    }
}

/// Credentials from docker's config: `path`, or the default one when it exists. A broken
/// default config is reported and skipped; a broken explicit one is an error.
pub(crate) fn docker_credentials(path: Option<&Path>) -> anyhow::Result<Vec<(String, Credential)>> {
    match path {
        Some(path) => ferry_native::credentials::load_docker_config(Some(path)).map_err(bad_input),
        None => Ok(ferry_native::credentials::load_docker_config(None).unwrap_or_else(|e| {
            tracing::warn!("{e}; continuing without its credentials");
            Vec::new()
        })),
    }
}

/// Endpoints for `registries`, all marked insecure when `insecure`: HTTPS without
/// verification, plain HTTP if they do not speak TLS (loopback ones are probed the same
/// way, with verification).
pub(crate) fn endpoints<'a>(registries: impl IntoIterator<Item = &'a str>, insecure: bool) -> EndpointMap {
    let mut map = EndpointMap::default();
    if insecure {
        map.insecure.extend(registries.into_iter().map(str::to_owned));
    }
    map
}

/// A repository argument, `host/repository` (docker.io when the first component is not a
/// host, as in references): registry and repository, normalised.
pub(crate) fn parse_repository(arg: &str) -> anyhow::Result<(String, String)> {
    let reference = Reference::parse(arg).map_err(|e| bad_input(format!("{arg:?}: {e}")))?;
    if reference.tag().is_some() || reference.digest().is_some() {
        return Err(bad_input(format!(
            "{arg:?} names an image; give the repository alone, e.g. {}/{}",
            reference.registry(),
            reference.repository()
        )));
    }
    Ok((reference.registry().to_owned(), reference.repository().to_owned()))
}

/// A registry host argument (`host[:port]`), normalised.
pub(crate) fn parse_registry(arg: &str) -> anyhow::Result<String> {
    validate_registry(arg).map_err(|e| bad_input(format!("{arg:?}: {e}")))?;
    Ok(normalize_registry(arg))
}

/// An image reference argument.
pub(crate) fn parse_reference(arg: &str) -> anyhow::Result<Reference> {
    Reference::parse(arg).map_err(|e| bad_input(format!("invalid image reference {arg:?}: {e}")))
}

/// `sha256:0123456789ab`: enough of a digest to tell images apart in a table.
pub(crate) fn short_digest(digest: Option<&ferry_core::digest::Digest>) -> String {
    match digest {
        Some(d) => {
            let text = d.to_string();
            let (algorithm, hex) = text.split_once(':').unwrap_or(("", &text));
            format!("{algorithm}:{}", &hex[..hex.len().min(12)])
        }
        None => "-".to_owned(),
    }
}

/// Bytes in binary units: `1.50 MiB`.
pub(crate) fn bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

/// A jitter seed that differs between runs, so that many ferry processes retrying the
/// same registry spread out.
pub(crate) fn jitter_seed() -> u64 {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}
