//! `ferry`: copy container images between registries, and serve one.
//!
//! One module per subcommand (`serve.rs`, …); `main` parses, sets up logging and
//! dispatches. Exit codes: 0 success, 1 failure, 2 usage error (clap's).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod serve;

#[derive(Debug, Parser)]
#[command(name = "ferry", version, about = "Copy container images between registries, and serve one", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run ferry's OCI registry (OCI Distribution v1.1).
    Serve(serve::ServeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ferry: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
