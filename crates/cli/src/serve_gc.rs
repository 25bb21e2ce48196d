//! `ferry serve gc`: garbage collection over a registry's storage, offline or beside a
//! running `ferry serve` on the same root.

use std::io::BufRead as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use ferry_core::gc::Policy;
use ferry_registry::gc::{collect, GcOptions};
use ferry_registry::store::Store;
use ferry_registry::Config;

const AFTER_HELP: &str = "\
Marks every manifest reachable from a tag (or every manifest, without --delete-untagged),
its index children, and the referrers of live manifests; deletes the blobs nothing live
references and that are older than --grace, and upload sessions older than
storage.upload_purging.age_secs. Safe beside a running registry on the same storage: the
store is listed again before anything is deleted, and what a push linked meanwhile stays.

Examples:
  ferry serve gc --root ./ferry-data --dry-run          # what would go
  ferry serve gc --config ferry.yaml --delete-untagged   # also untagged manifests
  ferry serve gc --root ./ferry-data --grace 0 --json    # everything unreferenced, as JSON";

/// Options of `ferry serve gc`.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub(crate) struct GcArgs {
    /// The registry's YAML config file (or distribution's config.yml): its `storage`
    /// section says where the data is
    #[arg(short, long, value_name = "FILE", env = "FERRY_CONFIG")]
    config: Option<PathBuf>,

    /// Storage driver [default: filesystem]
    #[arg(long, value_name = "DRIVER")]
    storage: Option<String>,

    /// Root directory of the filesystem driver [default: ./ferry-data]
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,

    /// Report what would be deleted, delete nothing
    #[arg(long)]
    dry_run: bool,

    /// Untagged manifests (not an index child or a live manifest's referrer) are garbage
    /// too
    #[arg(long)]
    delete_untagged: bool,

    /// Keep unreferenced blobs written less than this many seconds ago: an upload may be
    /// about to link them
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    grace: u64,

    /// Print the report as JSON
    #[arg(long)]
    json: bool,

    /// After marking, print `marked` on stderr and wait for a line on stdin before
    /// sweeping (lets tests land a push between mark and sweep)
    #[arg(long, hide = true)]
    wait_after_mark: bool,
}

pub(crate) fn run(args: GcArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?.config,
        None => Config::default(),
    };
    if let Some(driver) = args.storage {
        config.storage.driver = driver;
    }
    if let Some(root) = args.root {
        config.storage.root = root;
    }
    config.validate().context("invalid configuration")?;
    if config.storage.driver == "memory" {
        anyhow::bail!(
            "storage driver `memory` lives inside one `ferry serve` process: there is nothing for \
             `ferry serve gc` to collect; name the filesystem root with --root or --config"
        );
    }
    if config.storage.driver == "filesystem" && !config.storage.root.is_dir() {
        anyhow::bail!(
            "storage root {} is not a directory; name the registry's data with --root or --config",
            config.storage.root.display()
        );
    }
    let purging = &config.storage.upload_purging;
    let options = GcOptions {
        policy: Policy {
            delete_untagged: args.delete_untagged,
            grace_secs: args.grace,
            upload_max_age_secs: purging.enabled.then_some(purging.age_secs),
        },
        dry_run: args.dry_run,
    };
    let driver = ferry_registry::driver::open(&config.storage)?;
    let store = Store::new(driver);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let wait = args.wait_after_mark;
    let report = runtime
        .block_on(collect(&store, options, || async move {
            if wait {
                eprintln!("marked");
                let mut line = String::new();
                // A closed stdin is as good as a line: the sweep goes on.
                let _ =
                    tokio::task::spawn_blocking(move || std::io::stdin().lock().read_line(&mut line)).await;
            }
        }))
        .context("garbage collection")?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{report}");
    }
    Ok(())
}
