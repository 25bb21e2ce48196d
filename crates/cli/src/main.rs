//! `ferry`: copy container images between registries, and serve one.
//!
//! One module per subcommand (`sync.rs`, `copy.rs`, `diff.rs`, `ls.rs`, `inspect.rs`,
//! `demo.rs`, `serve.rs`); `main` parses, sets up logging and dispatches. Every network
//! decision is the core's: the commands build a job, run a machine of `ferry-core` over
//! the native transport, and print what it reports.
//!
//! Exit codes: 0 success, 1 failure (an image failed, a registry could not be reached),
//! 2 bad usage or configuration (clap uses 2 for usage errors too).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod common;
mod copy;
mod demo;
mod demo_web;
mod diff;
mod exporter;
mod inspect;
mod ls;
mod progress;
mod sample;
mod serve;
mod serve_gc;
mod state;
mod sync;
mod watch;

const AFTER_HELP: &str = "\
Exit codes: 0 success, 1 some image failed or a registry could not be reached,
2 bad usage or configuration.
Logs go to stderr; FERRY_LOG=error|warn|info|debug|trace sets their level (default warn).

Try `ferry demo`: two registries on this machine, sample images, a diff, a sync.";

#[derive(Debug, Parser)]
#[command(
    name = "ferry",
    version,
    propagate_version = true,
    about = "Copy container images between registries, and serve one",
    after_help = AFTER_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Copy images as image-syncer does: --auth and --images files, or one --config file.
    Sync(Box<sync::SyncArgs>),
    /// Copy one image (or one index, with every platform by default).
    Copy(copy::CopyArgs),
    /// Compare two repositories, or two registries, tag by tag.
    Diff(diff::DiffArgs),
    /// List a repository's tags and their digests.
    Ls(ls::LsArgs),
    /// Show an image's digest, platforms, size and referrers (signatures, SBOMs, attestations).
    Inspect(inspect::InspectArgs),
    /// Run the whole thing on this machine: two registries, sample images, diff, sync, diff.
    Demo(demo::DemoArgs),
    /// Run ferry's OCI registry (OCI Distribution v1.1).
    Serve(Box<serve::ServeArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_)) {
        common::init_logging();
    }
    let result = match cli.command {
        Command::Sync(args) => sync::run(*args),
        Command::Copy(args) => copy::run(args),
        Command::Diff(args) => diff::run(args),
        Command::Ls(args) => ls::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Serve(args) => serve::run(*args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            // One line, the whole chain of causes: `error: reading images.json: ...`.
            eprintln!("error: {err:#}");
            ExitCode::from(common::exit_code(&err))
        }
    }
}
