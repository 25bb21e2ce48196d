//! `ferry demo` runs the whole thing on this machine and ends in sync; every command
//! explains itself with `--help` and answers `--version`.

#[path = "support/mod.rs"]
mod support;

#[path = "support/cli.rs"]
mod cli;

use cli::ferry;

#[test]
fn demo_diffs_syncs_and_ends_in_sync() {
    let run = ferry(&["demo", "--progress", "plain"]).expect(0, "ferry demo");
    run.assert_no_panic();
    let out = &run.stdout;
    // The first diff: one tag in sync, three missing, one different.
    assert!(out.contains("1 in sync, 3 missing, 1 different, 0 extra"), "{out}");
    assert!(out.contains("library/busybox  1.36  missing"), "{out}");
    // The sync's summary: four copied, the one in sync skipped, the shared base mounted.
    assert!(out.contains("copied 4, skipped 1, failed 0 of 5 image(s)"), "{out}");
    assert!(out.contains("1 mounted"), "{out}");
    // The second diff: all in sync.
    assert!(out.contains("5 in sync, 0 missing, 0 different, 0 extra"), "{out}");
    assert!(out.contains("The registries are in sync"), "{out}");
    // The images file is printed, in image-syncer's format.
    assert!(out.contains("/library/busybox:1.36\": \""), "{out}");
    // Progress lines went to stderr.
    assert!(run.stderr.contains("copied "), "{}", run.stderr);
}

#[test]
fn every_command_has_help_and_a_version() {
    for command in ["sync", "copy", "diff", "ls", "inspect", "demo", "serve"] {
        let run = ferry(&[command, "--help"]).expect(0, "--help");
        assert!(run.stdout.contains("Usage: ferry "), "{command} --help:\n{}", run.stdout);
        let run = ferry(&[command, "--version"]).expect(0, "--version");
        assert!(run.stdout.contains(env!("CARGO_PKG_VERSION")), "{command} --version: {}", run.stdout);
    }
    let help = ferry(&["sync", "--help"]).expect(0, "sync --help").stdout;
    for flag in [
        "--auth",
        "--images",
        "--config",
        "--proc",
        "--retries",
        "--os",
        "--arch",
        "--force",
        "--dry-run",
        "--report",
        "--progress",
        "--docker-config",
        "--max-transfers",
        "--fixed-concurrency",
    ] {
        assert!(help.contains(flag), "ferry sync --help does not document {flag}");
    }
    let help = ferry(&["--help"]).expect(0, "--help").stdout;
    assert!(help.contains("Exit codes"), "{help}");
}
