//! `ferry diff SRC DST`: the core's `DiffMachine`, printed as a table or as JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use ferry_core::api::EndpointMap;
use ferry_core::auth::{Credential, CredentialStore};
use ferry_core::diff::{DiffJob, DiffMachine, DiffReport, TagStatus, Target};
use ferry_core::reference::validate_repository;
use ferry_core::retry::RetryPolicy;
use ferry_core::transport::Clock as _;
use ferry_native::{run_sync, TokioClock};

use crate::common::{self, bad_input, bytes, short_digest};

const AFTER_HELP: &str = "\
SRC and DST are both repositories (host/repository), or both registries: SRC a host,
DST a host or host/prefix (the source's repositories are looked for under the prefix).

Each tag is in-sync (same digest on both sides), missing (only the source has it),
different (the digests differ) or extra (only the destination has it). With --referrers,
each tag's referrers (by the referrers API, else the sha256-<hex> tag-schema index, and
cosign's sha256-<hex>.sig/.att/.sbom tags) are in sync, missing or extra too, and the
sha256-* tags get no rows of their own.

Exit codes: 0 in sync, 1 they differ, 2 an error (a registry could not be read, bad usage).

Examples:
  ferry diff quay.io/coreos/etcd registry.example.com/coreos/etcd
  ferry diff 127.0.0.1:5000 127.0.0.1:5001/mirror --details
  ferry diff quay.io/org/app registry.example.com/org/app --referrers
  ferry diff SRC DST --json | jq '.rows[] | select(.status != \"in_sync\")'";

/// Options of `ferry diff`.
#[derive(Debug, Clone, Args)]
#[command(after_help = AFTER_HELP)]
pub(crate) struct DiffArgs {
    /// Source: host/repository, or a registry host
    #[arg(value_name = "SRC")]
    source: String,

    /// Destination: host/repository, or a registry host with an optional /prefix
    #[arg(value_name = "DST")]
    destination: String,

    /// Print the comparison as JSON (the core's DiffReport)
    #[arg(long)]
    json: bool,

    /// Also read the source's manifests: platforms and total size per tag
    #[arg(long)]
    details: bool,

    /// Also compare each tag's referrers (signatures, SBOMs, attestations): one more
    /// request per tag on each side
    #[arg(long)]
    referrers: bool,

    #[command(flatten)]
    access: AccessArgs,
}

/// How to reach the registries of a read-only command.
#[derive(Debug, Clone, Args)]
pub(crate) struct AccessArgs {
    /// Credentials for the source registry
    #[arg(long, value_name = "USER:PASS")]
    pub src_creds: Option<String>,

    /// Credentials for the destination registry
    #[arg(long, value_name = "USER:PASS")]
    pub dest_creds: Option<String>,

    /// Do not verify the registries' TLS certificates; speak plain HTTP to a registry only
    /// if it does not speak TLS
    #[arg(long)]
    pub insecure: bool,

    /// A folder with the source registry's ca.crt (and client.cert/client.key for mutual
    /// TLS), used instead of its certs.d folder
    #[arg(long, value_name = "DIR")]
    pub src_cert_dir: Option<PathBuf>,

    /// A folder with the destination registry's ca.crt (and client.cert/client.key), used
    /// instead of its certs.d folder
    #[arg(long, value_name = "DIR")]
    pub dest_cert_dir: Option<PathBuf>,

    /// docker's config file to take credentials from [default: $DOCKER_CONFIG/config.json
    /// or ~/.docker/config.json, if present]
    #[arg(long, value_name = "PATH")]
    pub docker_config: Option<PathBuf>,
}

impl AccessArgs {
    /// A diff job between two sides with these credentials; without a destination, a
    /// reading of the source alone (of one `reference`, or of every tag).
    pub(crate) fn job(
        &self,
        source: Target,
        destination: Option<Target>,
        reference: Option<String>,
        details: bool,
        referrers: bool,
    ) -> anyhow::Result<DiffJob> {
        let mut pairs: Vec<(String, Credential)> = Vec::new();
        let sides = [
            ("--src-creds", &self.src_creds, Some(&source)),
            ("--dest-creds", &self.dest_creds, destination.as_ref()),
        ];
        for (flag, creds, side) in sides {
            if let (Some(creds), Some(side)) = (creds, side) {
                pairs.push((side.registry.clone(), common::parse_creds(flag, creds)?));
            }
        }
        pairs.extend(common::docker_credentials(self.docker_config.as_deref())?);
        let credentials = CredentialStore::new(pairs).map_err(bad_input)?;
        common::set_tls(common::tls_with_cert_dirs([
            (source.registry.as_str(), self.src_cert_dir.as_ref()),
            (destination.as_ref().map_or("", |d| d.registry.as_str()), self.dest_cert_dir.as_ref()),
        ]));
        let registries = std::iter::once(&source).chain(destination.as_ref()).map(|s| s.registry.as_str());
        let endpoints: EndpointMap = common::endpoints(registries, self.insecure);
        Ok(DiffJob {
            source,
            destination,
            reference,
            repositories: Vec::new(),
            details,
            referrers,
            credentials,
            endpoints,
            retry: RetryPolicy::default(),
            seed: common::jitter_seed(),
        })
    }
}

pub(crate) fn run(args: DiffArgs) -> anyhow::Result<ExitCode> {
    let (source, destination) = sides(&args.source, &args.destination)?;
    let job = args.access.job(source, Some(destination), None, args.details, args.referrers)?;
    let runtime = common::runtime()?;
    let report = runtime.block_on(compare(job))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).context("serialising the report")?);
    } else {
        print!("{}", table(&report, args.details));
    }
    Ok(exit_code(&report, true))
}

/// 0 in sync, 1 different, 2 errors (printed on stderr, one line each).
pub(crate) fn exit_code(report: &DiffReport, print_errors: bool) -> ExitCode {
    if !report.errors.is_empty() {
        if print_errors {
            for error in &report.errors {
                let advice = crate::progress::advice(error.kind(), error.is_retryable());
                eprintln!("error: {error} ({}: {advice})", error.kind());
            }
        }
        return ExitCode::from(2);
    }
    common::exit(report.is_in_sync())
}

/// Both sides from the arguments: repository against repository, or registry against
/// registry (with an optional prefix on the destination).
pub(crate) fn sides(source: &str, destination: &str) -> anyhow::Result<(Target, Target)> {
    if source.contains('/') {
        if !destination.contains('/') {
            return Err(bad_input(format!(
                "SRC {source:?} is a repository, so DST must be one too (host/repository), not {destination:?}"
            )));
        }
        let (registry, repository) = common::parse_repository(source)?;
        let source = Target { registry, repository: Some(repository) };
        let (registry, repository) = common::parse_repository(destination)?;
        return Ok((source, Target { registry, repository: Some(repository) }));
    }
    let source = Target { registry: common::parse_registry(source)?, repository: None };
    let destination = match destination.split_once('/') {
        Some((host, prefix)) => {
            let prefix = prefix.trim_end_matches('/');
            validate_repository(prefix).map_err(|e| bad_input(format!("DST prefix {prefix:?}: {e}")))?;
            Target { registry: common::parse_registry(host)?, repository: Some(prefix.to_owned()) }
        }
        None => Target { registry: common::parse_registry(destination)?, repository: None },
    };
    Ok((source, destination))
}

/// Runs a diff to the end over the native transport.
pub(crate) async fn compare(job: DiffJob) -> anyhow::Result<DiffReport> {
    let transport = common::transport(&job.endpoints.insecure)?;
    let clock = TokioClock::new();
    let mut machine = DiffMachine::new(job, clock.now(), clock.wall_now());
    run_sync(&mut machine, &transport, &clock, |_| {}).await.context("driving the diff")?;
    Ok(machine.report())
}

pub(crate) fn status_name(status: TagStatus) -> &'static str {
    match status {
        TagStatus::InSync => "in-sync",
        TagStatus::Missing => "missing",
        TagStatus::Different => "different",
        TagStatus::Extra => "extra",
        TagStatus::Listed => "listed",
    }
}

/// Counts on top, then one row per tag.
pub(crate) fn table(report: &DiffReport, details: bool) -> String {
    let mut out = format!(
        "{} in sync, {} missing, {} different, {} extra\n",
        report.in_sync, report.missing, report.different, report.extra
    );
    let referrers = report.rows.iter().any(|r| !r.referrers.is_empty());
    if referrers {
        out.push_str(&format!(
            "referrers: {} in sync, {} missing, {} extra\n",
            report.referrers_in_sync, report.referrers_missing, report.referrers_extra
        ));
    }
    if report.rows.is_empty() {
        out.push_str("(no tags on either side)\n");
        return out;
    }
    let mut header = vec!["REPOSITORY", "TAG", "STATUS", "SOURCE", "DESTINATION"];
    if details {
        header.extend(["PLATFORMS", "SIZE"]);
    }
    if referrers {
        header.push("REFERRERS");
    }
    let mut rows: Vec<Vec<String>> = vec![header.into_iter().map(str::to_owned).collect()];
    for row in &report.rows {
        let mut cells = vec![
            row.repository.clone(),
            row.tag.clone(),
            status_name(row.status).to_owned(),
            short_digest(row.source_digest.as_ref()),
            short_digest(row.destination_digest.as_ref()),
        ];
        if details {
            let platforms = if row.platforms.is_empty() { "-".to_owned() } else { row.platforms.join(",") };
            cells.push(platforms);
            cells.push(row.size.map_or_else(|| "-".to_owned(), bytes));
        }
        if referrers {
            cells.push(referrer_counts(&row.referrers));
        }
        rows.push(cells);
    }
    out.push_str(&columns(&rows));
    out
}

/// `2 in-sync, 1 missing` for a row's referrers; `-` for none.
fn referrer_counts(referrers: &[ferry_core::diff::ReferrerDiff]) -> String {
    let mut counts: Vec<(TagStatus, usize)> = Vec::new();
    for referrer in referrers {
        match counts.iter_mut().find(|(s, _)| *s == referrer.status) {
            Some((_, n)) => *n += 1,
            None => counts.push((referrer.status, 1)),
        }
    }
    counts.sort();
    if counts.is_empty() {
        return "-".to_owned();
    }
    counts.iter().map(|(s, n)| format!("{n} {}", status_name(*s))).collect::<Vec<_>>().join(", ")
}

/// Left-aligned columns two spaces apart.
pub(crate) fn columns(rows: &[Vec<String>]) -> String {
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..width)
        .map(|i| rows.iter().filter_map(|r| r.get(i)).map(|c| c.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> =
            row.iter().enumerate().map(|(i, c)| format!("{c:<w$}", w = widths[i])).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}
