//! `ferry inspect REF`: an image's media type, digest, platforms, size and referrers.
//!
//! Read through the core's `DiffMachine` with no destination, one reference, details and
//! referrers: a HEAD, the manifest, an index's children, whose sizes add up, and the
//! referrers API (or the tag-schema index where the registry has none).

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use crate::common::{self, bytes};
use crate::diff::columns;
use crate::ls::RepoAccess;

/// Options of `ferry inspect`.
#[derive(Debug, Clone, Args)]
#[command(
    after_help = "Examples:\n  ferry inspect 127.0.0.1:5000/library/alpine:3.20\n  ferry inspect --json quay.io/coreos/etcd:v3.5.0"
)]
pub(crate) struct InspectArgs {
    /// Image: [registry[:port]/]repository[:tag][@digest] (tag latest when neither is given)
    #[arg(value_name = "REF")]
    reference: String,

    /// Print the row as JSON: tag, digest, platforms, size
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    access: RepoAccess,
}

pub(crate) fn run(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let reference = common::parse_reference(&args.reference)?;
    let registry = reference.registry().to_owned();
    let repository = reference.repository().to_owned();
    let runtime = common::runtime()?;
    let wanted = reference.manifest_reference();
    let report = runtime.block_on(args.access.read(registry, repository, Some(wanted), true))?;
    let Some(row) = report.rows.first() else {
        anyhow::bail!(
            "{reference}: no such image (`ferry ls {}/{}` lists the tags)",
            reference.registry(),
            reference.repository()
        );
    };
    if args.json {
        let value = serde_json::json!({
            "reference": reference.to_string(),
            "tag": reference.tag(),
            "digest": row.source_digest,
            "mediaType": row.media_type,
            "platforms": row.platforms,
            "size": row.size,
            "referrers": row.referrers.iter().map(|r| serde_json::json!({
                "artifactType": r.artifact_type,
                "digest": r.digest,
                "size": r.size,
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&value).context("serialising")?);
        return Ok(ExitCode::SUCCESS);
    }
    let platforms = if row.platforms.is_empty() {
        "single platform (not an index)".to_owned()
    } else {
        row.platforms.join(", ")
    };
    let lines = [
        ["reference", &reference.to_string()],
        ["tag", reference.tag().unwrap_or("-")],
        ["media type", row.media_type.as_deref().unwrap_or("-")],
        ["digest", &row.source_digest.as_ref().map(ToString::to_string).unwrap_or_default()],
        ["platforms", &platforms],
        [
            "size",
            &row.size.map_or_else(
                || "-".to_owned(),
                |n| format!("{} ({n} bytes: manifests, configs, layers)", bytes(n)),
            ),
        ],
    ];
    let mut rows: Vec<Vec<String>> =
        lines.iter().map(|l| l.iter().map(|c| (*c).to_owned()).collect()).collect();
    let referrers = match row.referrers.len() {
        0 => "none".to_owned(),
        n => format!("{n} (signatures, SBOMs, attestations that refer to it)"),
    };
    rows.push(vec!["referrers".to_owned(), referrers]);
    print!("{}", columns(&rows));
    if !row.referrers.is_empty() {
        let mut table = vec![vec!["TYPE".to_owned(), "DIGEST".to_owned(), "SIZE".to_owned()]];
        for referrer in &row.referrers {
            table.push(vec![
                referrer.artifact_type.clone().unwrap_or_else(|| "-".to_owned()),
                referrer.digest.as_ref().map_or_else(|| "-".to_owned(), ToString::to_string),
                referrer.size.map_or_else(|| "-".to_owned(), bytes),
            ]);
        }
        print!("\n{}", columns(&table));
    }
    Ok(ExitCode::SUCCESS)
}
