//! `ferry ls REPO`: a repository's tags and digests.
//!
//! The core's `DiffMachine` reads one side alone when it has no destination: one tag list
//! (all pages) and one HEAD per tag. `ls` prints that reading.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use ferry_core::diff::{DiffReport, Target};

use crate::common;
use crate::diff::{columns, compare, AccessArgs};

/// Options of `ferry ls`.
#[derive(Debug, Clone, Args)]
#[command(after_help = "Example:\n  ferry ls 127.0.0.1:5000/library/alpine")]
pub(crate) struct LsArgs {
    /// Repository: [registry[:port]/]repository
    #[arg(value_name = "REPO")]
    repository: String,

    /// Print the tags as JSON: [{"tag": ..., "digest": ...}]
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    access: RepoAccess,
}

/// How to reach the one registry of `ls` and `inspect`.
#[derive(Debug, Clone, Args)]
pub(crate) struct RepoAccess {
    /// Credentials for the registry
    #[arg(long, value_name = "USER:PASS")]
    creds: Option<String>,

    /// Do not verify the registry's TLS certificate; speak plain HTTP only if it does not
    /// speak TLS
    #[arg(long)]
    insecure: bool,

    /// A folder with the registry's ca.crt (and client.cert/client.key for mutual TLS),
    /// used instead of its certs.d folder
    #[arg(long, value_name = "DIR")]
    cert_dir: Option<PathBuf>,

    /// docker's config file to take credentials from [default: $DOCKER_CONFIG/config.json
    /// or ~/.docker/config.json, if present]
    #[arg(long, value_name = "PATH")]
    docker_config: Option<PathBuf>,
}

impl RepoAccess {
    /// Reads `registry/repository` alone: every tag, or just `reference`, with its digest
    /// (and with `details`, its platforms, size and referrers).
    pub(crate) async fn read(
        &self,
        registry: String,
        repository: String,
        reference: Option<String>,
        details: bool,
    ) -> anyhow::Result<DiffReport> {
        let access = AccessArgs {
            src_creds: self.creds.clone(),
            dest_creds: None,
            insecure: self.insecure,
            src_cert_dir: self.cert_dir.clone(),
            dest_cert_dir: None,
            docker_config: self.docker_config.clone(),
        };
        let side = Target { registry, repository: Some(repository) };
        let report = compare(access.job(side, None, reference, details, details)?).await?;
        if let Some(first) = report.errors.first() {
            let advice = crate::progress::advice(first.kind(), first.is_retryable());
            anyhow::bail!("{first} ({advice})");
        }
        Ok(report)
    }
}

pub(crate) fn run(args: LsArgs) -> anyhow::Result<ExitCode> {
    let (registry, repository) = common::parse_repository(&args.repository)?;
    let runtime = common::runtime()?;
    let report = runtime.block_on(args.access.read(registry.clone(), repository.clone(), None, false))?;
    let tags: Vec<(String, String)> = report
        .rows
        .iter()
        .filter_map(|row| Some((row.tag.clone(), row.source_digest.as_ref()?.to_string())))
        .collect();
    if args.json {
        let list: Vec<serde_json::Value> =
            tags.iter().map(|(tag, digest)| serde_json::json!({ "tag": tag, "digest": digest })).collect();
        println!("{}", serde_json::to_string_pretty(&list).context("serialising the tags")?);
    } else if tags.is_empty() {
        eprintln!("{registry}/{repository} has no tags");
    } else {
        let rows: Vec<Vec<String>> = std::iter::once(vec!["TAG".to_owned(), "DIGEST".to_owned()])
            .chain(tags.into_iter().map(|(tag, digest)| vec![tag, digest]))
            .collect();
        print!("{}", columns(&rows));
    }
    Ok(ExitCode::SUCCESS)
}
