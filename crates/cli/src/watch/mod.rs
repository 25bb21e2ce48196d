//! `ferry sync --watch`: the configured sync as a long-lived service.
//!
//! One run at a time, on an interval and/or a cron schedule ([`schedule`]): a run that
//! outlasts its slot is followed by the next at once, never overlapped. Between runs the
//! config files are read again when they change (polled, which also sees a Kubernetes
//! ConfigMap's symlink swap) or on SIGHUP; a new config that does not load is reported
//! and the old one keeps running. SIGTERM (or SIGINT) stops starting work: the run in
//! flight lets its images finish (the core's `Machine::stop`) and exits 0; what is still
//! moving when `--drain-timeout` passes is abandoned uncommitted, so no manifest is pushed
//! without all its blobs. A second signal exits 1 at once, as cleanly.
//!
//! With `--listen`, an HTTP port answers `/healthz`, `/readyz` and `/metrics`
//! ([`health`], [`metrics`]); each run's report goes to the log and, with `--report-dir`,
//! to a file of its own.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Args;
use ferry_core::config::JobConfig;
use ferry_core::progress::Report;
use tokio::sync::watch;

use crate::common::{self, bad_input};
use crate::exporter;
use crate::progress::{write_report, ProgressArgs};
use crate::sync::{self, SyncArgs};

mod duration;
mod health;
mod metrics;
mod reload;
mod schedule;
mod signals;

pub(crate) use duration::parse_duration;
use health::Health;
use reload::Sources;
pub(crate) use schedule::{parse_cron, CronSchedule};
use signals::Signals;

/// The flags of `ferry sync --watch`.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct WatchArgs {
    /// Keep running: sync every --interval, reload the config when it changes or on
    /// SIGHUP, drain on SIGTERM
    #[arg(long)]
    pub watch: bool,

    /// Time from the start of one run to the start of the next (e.g. 30s, 5m, 1h); a run
    /// that takes longer is followed by the next at once [default: 5m without --schedule]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "watch")]
    pub interval: Option<Duration>,

    /// Also (or instead) start runs on a cron schedule, in UTC: five fields (minute hour
    /// day month weekday, e.g. "0 */2 * * *"), or six with seconds first. With --interval
    /// too, a run starts at whichever comes first
    #[arg(long, value_name = "CRON", value_parser = parse_cron, requires = "watch")]
    pub schedule: Option<CronSchedule>,

    /// Serve /healthz, /readyz and /metrics (Prometheus) on this address, e.g.
    /// 0.0.0.0:9090
    #[arg(long, value_name = "HOST:PORT", requires = "watch")]
    pub listen: Option<SocketAddr>,

    /// /readyz answers 503 after this many failed runs in a row, and 200 again after
    /// the next run that succeeds
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = common::at_least_one, requires = "watch")]
    pub unready_after: usize,

    /// On SIGTERM, how long images in flight may take to finish before their transfers
    /// are abandoned; keep it under Kubernetes' terminationGracePeriodSeconds
    #[arg(long, value_name = "DURATION", default_value = "25s", value_parser = parse_duration, requires = "watch")]
    pub drain_timeout: Duration,

    /// Write each run's report to DIR/run-<unix time>-<n>.json
    #[arg(long, value_name = "DIR", requires = "watch")]
    pub report_dir: Option<PathBuf>,

    /// How often the config files are checked for changes
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration, requires = "watch")]
    pub reload_check: Duration,
}

pub(crate) fn run(args: SyncArgs) -> anyhow::Result<ExitCode> {
    if args.dry_run {
        return Err(bad_input("--watch copies; it cannot be combined with --dry-run"));
    }
    let runtime = common::runtime()?;
    runtime.block_on(serve(args))
}

/// The service loop: serve the HTTP port, run, wait, reload, drain.
async fn serve(args: SyncArgs) -> anyhow::Result<ExitCode> {
    let service = args.service.clone();
    let schedule = schedule::Schedule::new(service.interval, service.schedule.clone());
    let mut sources = Sources::new(&args);
    let mut config = sync::load(&args)?;
    sync::prepare(config.clone(), &args)?;
    sources.remember();
    let health = Arc::new(Health::new(service.unready_after));
    let recorder = metrics::Recorder::install()?;
    recorder.rules(&config);
    if let Some(addr) = service.listen {
        let router = exporter::router(recorder.handle(), health::routes(health.clone()));
        let bound = exporter::spawn(addr, router).await?;
        eprintln!("ferry: serving /healthz, /readyz and /metrics on http://{bound}");
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut signals = Signals::install(stop_tx)?;
    let output = ProgressArgs { progress: args.output.progress, report: None };
    let mut runs: u64 = 0;
    loop {
        runs += 1;
        let started = tokio::time::Instant::now();
        match run_once(&config, &args, &output, &recorder, stop_rx.clone(), service.drain_timeout).await {
            RunEnd::Finished(report) => {
                // The files first: whoever sees the health or the metrics change finds the
                // report that changed them.
                if let Some(last) = &args.output.report {
                    if let Err(e) = write_report(last, &report) {
                        eprintln!("ferry: {e:#}");
                    }
                }
                if let Some(dir) = &service.report_dir {
                    let path = dir.join(format!("run-{}-{runs}.json", unix_now() as u64));
                    if let Err(e) = write_report(&path, &report) {
                        eprintln!("ferry: {e:#}");
                    }
                }
                health.run_ended(report.summary.failed == 0);
                recorder.run_ended(&report, unix_now());
            }
            RunEnd::Error(e) => {
                eprintln!("ferry: run {runs} failed: {e:#}");
                health.run_ended(false);
                recorder.run_failed(unix_now());
            }
            RunEnd::Abandoned => {
                eprintln!(
                    "ferry: the drain timeout ({:?}) passed: transfers in flight were abandoned uncommitted",
                    service.drain_timeout
                );
            }
        }
        if *stop_rx.borrow() {
            eprintln!("ferry: stopped after run {runs}");
            return Ok(ExitCode::SUCCESS);
        }
        loop {
            let wait = schedule.wait(started.elapsed(), chrono::Utc::now());
            let terminated = stopped(stop_rx.clone());
            tokio::select! {
                () = tokio::time::sleep(wait) => break,
                () = terminated => {
                    eprintln!("ferry: stopped between runs");
                    return Ok(ExitCode::SUCCESS);
                }
                () = signals.hangup() => reload(&mut config, &args, &mut sources, &recorder, "SIGHUP"),
                () = tokio::time::sleep(service.reload_check) => {
                    if sources.changed() {
                        reload(&mut config, &args, &mut sources, &recorder, "a change of the config files");
                    }
                }
            }
        }
        if sources.changed() {
            reload(&mut config, &args, &mut sources, &recorder, "a change of the config files");
        }
    }
}

/// How one run ended.
enum RunEnd {
    Finished(Box<Report>),
    Error(anyhow::Error),
    /// Stopped, and the drain timeout passed with work in flight.
    Abandoned,
}

/// One run of the current config. Once `stop` turns true the machine stops starting
/// work; `drain` later the run is dropped, which abandons its transfers uncommitted.
async fn run_once(
    config: &JobConfig,
    args: &SyncArgs,
    output: &ProgressArgs,
    recorder: &metrics::Recorder,
    stop: watch::Receiver<bool>,
    drain: Duration,
) -> RunEnd {
    let prepared = match sync::prepare(config.clone(), args) {
        Ok(prepared) => prepared,
        Err(e) => return RunEnd::Error(e),
    };
    let deadline = {
        let stop = stop.clone();
        async move {
            stopped(stop).await;
            tokio::time::sleep(drain).await;
        }
    };
    recorder.run_started();
    let run = sync::execute_until(prepared, output, stopped(stop), |event| recorder.on_event(event));
    tokio::select! {
        result = run => match result.context("the sync run") {
            Ok(report) => RunEnd::Finished(Box::new(report)),
            Err(e) => RunEnd::Error(e),
        },
        () = deadline => {
            recorder.run_abandoned();
            RunEnd::Abandoned
        }
    }
}

/// Loads the config files again; keeps the old config when the new one does not load.
fn reload(
    config: &mut JobConfig,
    args: &SyncArgs,
    sources: &mut Sources,
    recorder: &metrics::Recorder,
    why: &str,
) {
    sources.remember();
    let loaded = sync::load(args).and_then(|new| sync::prepare(new.clone(), args).map(|_| new));
    match loaded {
        Ok(new) => {
            eprintln!("ferry: config reloaded after {why}");
            recorder.rules(&new);
            recorder.reloaded(true);
            *config = new;
        }
        Err(e) => {
            eprintln!("ferry: the new config was not loaded, the old one keeps running: {e:#}");
            recorder.reloaded(false);
        }
    }
}

/// Resolves once SIGTERM or SIGINT has come.
async fn stopped(mut stop: watch::Receiver<bool>) {
    // An error means the sender is gone: the process is ending anyway.
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// Seconds since the Unix epoch, for timestamps in metrics and file names.
fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}
