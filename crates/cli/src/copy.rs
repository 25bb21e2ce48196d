//! `ferry copy SRC DST`: one image, as one planned task of the core's `SyncMachine`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use ferry_core::auth::CredentialStore;
use ferry_core::copy::{Job, Plan, SyncOptions};
use ferry_core::manifest::PlatformFilter;
use ferry_core::plan::CopyTask;
use ferry_core::reference::Reference;
use ferry_core::referrers::ReferrerFilter;
use ferry_core::retry::RetryPolicy;

use crate::common::{self, bad_input};
use crate::progress::ProgressArgs;
use crate::sync::execute;

const AFTER_HELP: &str = "\
References are [registry[:port]/]repository[:tag][@digest]; a destination without a tag
or digest keeps the source's. Registries are spoken to over HTTPS; loopback registries
(localhost, 127.0.0.1) and --insecure ones fall back to plain HTTP when they do not speak
TLS. Trusted CAs: the platform's (or SSL_CERT_FILE), /etc/docker/certs.d/HOST:PORT/ and
/etc/containers/certs.d/HOST:PORT/ (or the folders in FERRY_CERTS_D), --*-cert-dir.

Exit codes: 0 copied or already in sync, 1 the copy failed, 2 bad usage.

Examples:
  ferry copy docker.io/library/alpine:3.20 registry.example.com/mirror/alpine
  ferry copy --platform linux/arm64 quay.io/org/app:v1 127.0.0.1:5000/org/app:v1
  ferry copy --dest-creds me:secret --progress plain SRC DST";

/// Options of `ferry copy`.
#[derive(Debug, Clone, Args)]
#[command(after_help = AFTER_HELP)]
pub(crate) struct CopyArgs {
    /// Source image
    #[arg(value_name = "SRC")]
    source: String,

    /// Destination image
    #[arg(value_name = "DST")]
    destination: String,

    /// Copy every platform of an index (the default)
    #[arg(long, conflicts_with = "platforms")]
    all: bool,

    /// Copy only this platform of an index, os/arch[/variant] (repeatable); the index is
    /// rewritten to list only the platforms copied
    #[arg(long = "platform", value_name = "OS/ARCH[/VARIANT]")]
    platforms: Vec<String>,

    /// Credentials for the source registry
    #[arg(long, value_name = "USER:PASS")]
    src_creds: Option<String>,

    /// Credentials for the destination registry
    #[arg(long, value_name = "USER:PASS")]
    dest_creds: Option<String>,

    /// Do not verify either registry's TLS certificate; speak plain HTTP to a registry
    /// only if it does not speak TLS (image-syncer's and skopeo's meaning of insecure)
    #[arg(long)]
    insecure: bool,

    /// A folder with the source registry's ca.crt (and client.cert/client.key for mutual
    /// TLS), used instead of its certs.d folder
    #[arg(long, value_name = "DIR")]
    src_cert_dir: Option<PathBuf>,

    /// A folder with the destination registry's ca.crt (and client.cert/client.key),
    /// used instead of its certs.d folder
    #[arg(long, value_name = "DIR")]
    dest_cert_dir: Option<PathBuf>,

    /// docker's config file to take credentials from [default: $DOCKER_CONFIG/config.json
    /// or ~/.docker/config.json, if present]
    #[arg(long, value_name = "PATH")]
    docker_config: Option<PathBuf>,

    /// Push the manifest even when the destination already has the same digest
    #[arg(long)]
    force: bool,

    /// Which referrers (signatures, SBOMs, attestations) travel with the image: all,
    /// none, or cosign kinds and artifact types, e.g. sig,application/spdx+json
    #[arg(long, value_name = "all|none|TYPE,...", default_value = "all")]
    referrers: ReferrerFilter,

    /// Look at both sides and say what would be copied; write nothing
    #[arg(long)]
    dry_run: bool,

    /// Retries of a failed request or transfer, and rounds that run the image again if
    /// it still failed transiently (rate limited, unavailable)
    #[arg(long, value_name = "N", default_value_t = 2)]
    retries: u32,

    #[command(flatten)]
    output: ProgressArgs,
}

pub(crate) fn run(args: CopyArgs) -> anyhow::Result<ExitCode> {
    let source = common::parse_reference(&args.source)?;
    let destination = destination(&source, common::parse_reference(&args.destination)?);
    let platforms =
        PlatformFilter::new(&[], &[], &args.platforms).map_err(|e| bad_input(format!("--platform: {e}")))?;

    // The flags' credentials are keyed by the exact repository, so they win over docker's.
    let mut pairs = Vec::new();
    if let Some(creds) = &args.src_creds {
        let key = format!("{}/{}", source.registry(), source.repository());
        pairs.push((key, common::parse_creds("--src-creds", creds)?));
    }
    if let Some(creds) = &args.dest_creds {
        let key = format!("{}/{}", destination.registry(), destination.repository());
        pairs.push((key, common::parse_creds("--dest-creds", creds)?));
    }
    pairs.extend(common::docker_credentials(args.docker_config.as_deref())?);
    let credentials = CredentialStore::new(pairs).map_err(bad_input)?;

    common::set_tls(common::tls_with_cert_dirs([
        (source.registry(), args.src_cert_dir.as_ref()),
        (destination.registry(), args.dest_cert_dir.as_ref()),
    ]));
    let endpoints = common::endpoints([source.registry(), destination.registry()], args.insecure);
    let task = CopyTask { source, destination, platforms, referrers: args.referrers.clone() };
    let job = Job { plan: Plan::Tasks(vec![task]), credentials, endpoints };
    let options = SyncOptions {
        proc: 1,
        force: args.force,
        dry_run: args.dry_run,
        retry: RetryPolicy { retries: args.retries, ..RetryPolicy::default() },
        rounds: args.retries,
        seed: common::jitter_seed(),
        ..SyncOptions::default()
    };
    let runtime = common::runtime()?;
    let report = runtime.block_on(execute(job, options, &args.output, None))?;
    Ok(common::job_exit(&report))
}

/// A destination without tag or digest takes the source's tag (or digest).
fn destination(source: &Reference, destination: Reference) -> Reference {
    if destination.tag().is_some() || destination.digest().is_some() {
        return destination;
    }
    match (source.tag(), source.digest()) {
        (Some(tag), _) => destination.with_tag(tag).unwrap_or(destination),
        (None, Some(digest)) => destination.with_digest(digest.clone()),
        (None, None) => destination.with_tag("latest").unwrap_or(destination),
    }
}
