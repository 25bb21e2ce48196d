//! Showing a job's progress, after Docker's streamed pull progress.
//!
//! Three renderers over the core's one event model: indicatif bars on a terminal (one per
//! image in flight, plus overall bytes, throughput and ETA), plain lines for logs and CI,
//! and the events themselves as NDJSON on stdout (`--progress json`), whose last line is
//! always `job_finished`. Then a summary of the report.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use ferry_core::digest::Digest;
use ferry_core::error::ErrorKind;
use ferry_core::progress::{BlobOutcome, Event, ImageOutcome, ReferrerTotals, Report};
use ferry_core::window::ActionClass;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::common::{bytes, short_digest};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    /// Bars when stderr is a terminal, plain lines otherwise.
    Auto,
    /// Progress bars on stderr (drawn only when it is a terminal).
    Bar,
    /// One line per image on stderr.
    Plain,
    /// Every event as one JSON object per line on stdout; the last is `job_finished`.
    Json,
}

/// How a copy job shows itself: `ferry sync` and `ferry copy` share these.
#[derive(Debug, Clone, Args)]
pub(crate) struct ProgressArgs {
    /// How to show progress
    #[arg(long, value_enum, value_name = "MODE", default_value = "auto")]
    pub progress: Mode,

    /// Write the job's report (summary and one entry per image) as JSON to FILE
    #[arg(long, value_name = "FILE.json")]
    pub report: Option<PathBuf>,
}

/// Renders events as they come.
pub(crate) struct Progress {
    kind: Kind,
    /// A dry run: lines say what is being checked, not copied.
    dry_run: bool,
}

enum Kind {
    Bars(Bars),
    Plain,
    Json,
}

impl Progress {
    pub(crate) fn new(mode: Mode, dry_run: bool) -> Progress {
        let kind = match mode {
            Mode::Auto if std::io::stderr().is_terminal() => Kind::Bars(Bars::new(dry_run)),
            Mode::Auto | Mode::Plain => Kind::Plain,
            Mode::Bar => Kind::Bars(Bars::new(dry_run)),
            Mode::Json => Kind::Json,
        };
        Progress { kind, dry_run }
    }

    /// Whether stdout carries NDJSON (and nothing else may be printed there).
    pub(crate) fn is_json(&self) -> bool {
        matches!(self.kind, Kind::Json)
    }

    pub(crate) fn on_event(&mut self, event: &Event) {
        match &mut self.kind {
            Kind::Json => {
                let mut out = std::io::stdout().lock();
                // A closed stdout ends the stream; the job itself goes on.
                let _ = out.write_all(event.to_ndjson().as_bytes()).and_then(|()| out.flush());
            }
            Kind::Plain => {
                if let Some(line) = plain_line(event, self.dry_run) {
                    eprintln!("{line}");
                }
            }
            Kind::Bars(bars) => bars.on_event(event),
        }
    }

    /// Clears what is left of the bars.
    pub(crate) fn finish(&mut self) {
        if let Kind::Bars(bars) = &mut self.kind {
            bars.finish();
        }
    }
}

/// The line `--progress plain` prints for an event, if any.
fn plain_line(event: &Event, dry_run: bool) -> Option<String> {
    Some(match event {
        Event::PlanReady { images, repositories, immutable, shard } => {
            let mut line = format!("planned {images} image(s)");
            if let Some(shard) = shard {
                line = format!("shard {shard}: {line}");
            }
            if *repositories > 0 {
                line.push_str(&format!(" in {repositories} repositor{}", plural_y(*repositories)));
            }
            if *immutable > 0 {
                line.push_str(&format!(
                    "; {immutable} immutable tag(s) already at the destination, not checked"
                ));
            }
            line
        }
        Event::PlanFailed { source, destination, reason, .. } => {
            format!("failed {source} -> {destination}: {reason}")
        }
        Event::ImageStarted { source, destination, .. } if dry_run => {
            format!("checking {source} -> {destination}")
        }
        Event::ImageStarted { source, destination, .. } => format!("copying {source} -> {destination}"),
        Event::ImageSkipped { source, destination, digest, .. } => {
            format!("skipped {source} -> {destination} (already at {})", short_digest(Some(digest)))
        }
        Event::ImageDone { source, destination, bytes: n, dry_run: true, .. } => {
            format!("would copy {source} -> {destination} ({n} bytes)")
        }
        Event::ImageDone { source, destination, bytes: n, .. } => {
            format!("copied {source} -> {destination} ({n} bytes)")
        }
        Event::ImageFailed { source, destination, reason, .. } => {
            format!("failed {source} -> {destination}: {reason}")
        }
        Event::RoundStarted { round, images, listings: 0 } => {
            format!("round {round}: running {images} image(s) again that failed transiently")
        }
        Event::RoundStarted { round, images, listings } => format!(
            "round {round}: running {images} image(s) and {listings} listing(s) again that failed transiently"
        ),
        Event::RetryScheduled { target, retry, delay_ms, reason } => {
            format!("retrying {target} in {delay_ms} ms (retry {retry}): {reason}")
        }
        Event::WindowShrunk { registry, class, window, reason } => {
            format!("{registry} pushed back ({reason}): {window} {} at once", class_name(*class))
        }
        Event::ReferrerQueued { subject_digest, artifact_type, .. } => format!(
            "found a referrer ({}) of {}: it follows its subject",
            artifact_type.as_deref().unwrap_or("cosign tag"),
            short_digest(Some(subject_digest))
        ),
        Event::ReferrersDropped { reason, .. } => format!("referrers left behind: {reason}"),
        Event::ReferrersFailed { reason, .. } => format!("failed: {reason}"),
        Event::BudgetPaused { registry, limit, window_s, resume_in_ms } => {
            let budget = match (limit, window_s) {
                (Some(limit), Some(w)) => format!(" of {limit} per {w} s"),
                (Some(limit), None) => format!(" of {limit}"),
                _ => String::new(),
            };
            format!(
                "{registry}'s request budget{budget} is spent: its manifest GETs wait {:.0} s for it to reset (HEADs go on)",
                *resume_in_ms as f64 / 1000.0
            )
        }
        _ => return None,
    })
}

/// An action class as the plain output names it.
fn class_name(class: ActionClass) -> &'static str {
    match class {
        ActionClass::ManifestRead => "manifest reads",
        ActionClass::BlobRead => "blob reads",
        ActionClass::Upload => "uploads",
        ActionClass::Mount => "mounts",
        ActionClass::Listing => "listings",
    }
}

fn plural_y(n: usize) -> &'static str {
    if n == 1 {
        "y"
    } else {
        "ies"
    }
}

/// Bytes of one image's blobs: moved so far and expected.
#[derive(Default)]
struct ImageBytes {
    blobs: BTreeMap<Digest, (u64, u64)>,
}

impl ImageBytes {
    fn totals(&self) -> (u64, u64) {
        self.blobs.values().fold((0, 0), |(d, t), (done, total)| (d + done, t + total))
    }
}

struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    images: BTreeMap<usize, (ProgressBar, ImageBytes)>,
    planned: usize,
    finished: usize,
    /// Bytes of images that are no longer shown, so the overall bar keeps counting them.
    settled: (u64, u64),
    dry_run: bool,
}

impl Bars {
    fn new(dry_run: bool) -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(style("{spinner} {msg} [{elapsed_precise}]"));
        overall.set_message("planning");
        overall.enable_steady_tick(Duration::from_millis(120));
        Bars { multi, overall, images: BTreeMap::new(), planned: 0, finished: 0, settled: (0, 0), dry_run }
    }

    fn on_event(&mut self, event: &Event) {
        match event {
            Event::PlanReady { images, .. } => {
                self.planned = *images;
                self.update_overall();
            }
            Event::ImageStarted { image, destination, .. } => {
                let bar = self.multi.insert_before(&self.overall, ProgressBar::new(0));
                // No bar until there are bytes to move: most images only compare digests.
                bar.set_style(style("  {prefix:40!} {spinner} {msg}"));
                bar.set_prefix(destination.clone());
                bar.set_message("checking the destination");
                self.images.insert(*image, (bar, ImageBytes::default()));
            }
            Event::BlobProgress { image, digest, bytes: done, total } => {
                self.blob(*image, digest, *done, *total);
            }
            Event::BlobDone { image, digest, size, outcome: BlobOutcome::Transferred } => {
                self.blob(*image, digest, *size, *size);
            }
            Event::ImageSkipped { image, .. }
            | Event::ImageDone { image, .. }
            | Event::ImageFailed { image, .. } => {
                if let Some((bar, bytes)) = self.images.remove(image) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                    let (done, total) = bytes.totals();
                    self.settled.0 += done;
                    self.settled.1 += total;
                }
                self.finished += 1;
                if let Some(line) = plain_line(event, self.dry_run) {
                    let _ = self.multi.println(line);
                }
                self.update_overall();
            }
            Event::RoundStarted { images, .. } => {
                // The images run again: they are not finished any more.
                self.finished = self.finished.saturating_sub(*images);
                if let Some(line) = plain_line(event, self.dry_run) {
                    let _ = self.multi.println(line);
                }
                self.update_overall();
            }
            Event::ReferrerQueued { .. } => {
                // A referrer is one more image to finish.
                self.planned += 1;
                self.update_overall();
            }
            Event::PlanFailed { .. }
            | Event::RetryScheduled { .. }
            | Event::WindowShrunk { .. }
            | Event::ReferrersDropped { .. }
            | Event::ReferrersFailed { .. } => {
                if let Some(line) = plain_line(event, self.dry_run) {
                    let _ = self.multi.println(line);
                }
            }
            _ => {}
        }
    }

    fn blob(&mut self, image: usize, digest: &Digest, done: u64, total: u64) {
        if let Some((bar, bytes)) = self.images.get_mut(&image) {
            bytes.blobs.insert(digest.clone(), (done, total.max(done)));
            let (done, total) = bytes.totals();
            if bar.length() == Some(0) {
                bar.set_style(style("  {prefix:40!} {bar:30} {binary_bytes}/{binary_total_bytes}"));
            }
            bar.set_length(total);
            bar.set_position(done);
        }
        self.update_overall();
    }

    fn update_overall(&self) {
        let (mut done, mut total) = self.settled;
        for (_, bytes) in self.images.values() {
            let (d, t) = bytes.totals();
            done += d;
            total += t;
        }
        if total > 0 && self.overall.length() == Some(0) {
            self.overall.set_style(style(
                "{spinner} {msg} [{elapsed_precise}] {wide_bar} {binary_bytes}/{binary_total_bytes} \
                 {binary_bytes_per_sec} eta {eta}",
            ));
        }
        self.overall.set_length(total);
        self.overall.set_position(done);
        self.overall.set_message(format!("images {}/{}", self.finished, self.planned));
    }

    fn finish(&mut self) {
        for (bar, _) in std::mem::take(&mut self.images).into_values() {
            bar.finish_and_clear();
        }
        self.overall.finish_and_clear();
        let _ = self.multi.clear();
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// Writes the report as pretty JSON.
pub(crate) fn write_report(path: &Path, report: &Report) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(report).context("serialising the report")?;
    std::fs::write(path, json + "\n").with_context(|| format!("writing the report to {}", path.display()))
}

/// The end-of-job summary: counts, failures with whether a retry could help, bytes,
/// requests and time. A dry run lists what would move.
pub(crate) fn summary_text(report: &Report) -> String {
    let s = &report.summary;
    let mut out = String::new();
    if s.dry_run {
        out.push_str("dry run: nothing was written\n");
        for image in &report.images {
            let what = match image.outcome {
                ImageOutcome::WouldCopy => format!("would copy ({})", bytes(image.bytes)),
                ImageOutcome::Skipped if image.immutable => {
                    "immutable, already there, not checked".to_owned()
                }
                ImageOutcome::Skipped => "in sync, would skip".to_owned(),
                ImageOutcome::Failed => "failed".to_owned(),
                ImageOutcome::Copied => "copied".to_owned(),
                ImageOutcome::Pending => "not reached".to_owned(),
            };
            let role = if image.subject_digest.is_some() { "referrer " } else { "" };
            out.push_str(&format!("  {role}{} -> {}: {what}\n", image.source, image.destination));
            if image.referrers_dropped > 0 {
                out.push_str(&format!(
                    "    the platform filter rewrites this index: its {} referrer(s) would not apply and stay behind\n",
                    image.referrers_dropped
                ));
            }
        }
        let would = report
            .images
            .iter()
            .filter(|i| i.outcome == ImageOutcome::WouldCopy && i.subject_digest.is_none())
            .count();
        out.push_str(&format!(
            "would copy {would}, skip {}, failed {} of {} image(s); {} to copy\n",
            s.skipped,
            s.failed - s.referrers.failed,
            s.images,
            bytes(s.bytes_to_copy)
        ));
    } else {
        out.push_str(&format!(
            "copied {}, skipped {}, failed {} of {} image(s)\n",
            s.copied,
            s.skipped,
            s.failed - s.referrers.failed,
            s.images
        ));
        if s.immutable > 0 {
            out.push_str(&format!("{} of the skipped: immutable tags, not checked\n", s.immutable));
        }
        if s.stopped > 0 {
            out.push_str(&format!("{} not started: the service was stopping\n", s.stopped));
        }
        out.push_str(&format!(
            "blobs: {} transferred ({}), {} mounted, {} already present\n",
            s.blobs_transferred,
            bytes(s.bytes_transferred),
            s.blobs_mounted,
            s.blobs_present
        ));
    }
    let r = &s.referrers;
    if *r != ReferrerTotals::default() {
        let copied = if s.dry_run { "would copy" } else { "copied" };
        let mut line =
            format!("referrers: {} {copied}, {} skipped, {} failed", r.copied, r.skipped, r.failed);
        if r.indexed > 0 {
            line.push_str(&format!("; {} tag-schema index(es) written", r.indexed));
        }
        if r.dropped > 0 {
            line.push_str(&format!("; {} left behind (their index was rewritten)", r.dropped));
        }
        out.push_str(&line);
        out.push('\n');
    }
    if let Some(shard) = s.shard {
        out.push_str(&format!(
            "shard {shard}: took {} source repositor{}\n",
            s.repositories,
            plural_y(s.repositories)
        ));
    }
    out.push_str(&format!(
        "requests: {}, transfers: {}, retries: {}, rounds: {}, time: {:.2}s\n",
        s.requests,
        s.transfers,
        s.retries,
        s.rounds,
        s.elapsed_ms as f64 / 1000.0
    ));
    for r in &s.forecast {
        out.push_str(&format!(
            "the real run will make {} request(s) to {}, {} of them counting against a pull limit (manifest GETs)\n",
            r.requests, r.registry, r.counted
        ));
    }
    for b in &s.budgets {
        let limit = match (b.limit, b.window_s) {
            (Some(limit), Some(w)) => format!("{limit} per {w} s"),
            (Some(limit), None) => limit.to_string(),
            _ => "unstated".to_owned(),
        };
        let left = b.remaining.map_or_else(String::new, |r| format!(", {r} left"));
        let paused = match b.pauses {
            0 => String::new(),
            n => format!(", waited {n} time(s) for it to reset ({:.0} s)", b.paused_ms as f64 / 1000.0),
        };
        out.push_str(&format!(
            "request budget: {} allows {limit}; this run counted {}{left}{paused}\n",
            b.registry, b.counted
        ));
    }
    for w in &s.rate_limits {
        let window = match w.smallest_window {
            Some(n) => format!(", down to {n} at once"),
            None => String::new(),
        };
        out.push_str(&format!(
            "rate limited: {} {}: {} pushback(s){window}\n",
            w.registry,
            class_name(w.class),
            w.pushbacks
        ));
    }
    if !s.failures.is_empty() {
        out.push_str("failures:\n");
        for f in &s.failures {
            let advice = advice(f.kind, f.retryable);
            out.push_str(&format!(
                "  {} -> {}: {} ({}: {advice})\n",
                f.source, f.destination, f.reason, f.kind
            ));
        }
    }
    out
}

/// What to do about a failure, chosen from its kind.
pub(crate) fn advice(kind: ErrorKind, retryable: bool) -> &'static str {
    match kind {
        ErrorKind::NotFound => "check the name and tag, or list the tags with `ferry ls`; a retry will not help",
        ErrorKind::Unauthorized => "check the credentials for that registry (--auth, docker login, --src-creds/--dest-creds); a retry will not help",
        ErrorKind::RateLimited => "the registry is throttling; a retry may help later, with a lower --proc",
        ErrorKind::Integrity => "the bytes do not match their digest; a retry will not help",
        ErrorKind::InvalidName => "the name is outside the reference grammar; a retry will not help",
        ErrorKind::Tls => "fix the TLS setup as the message says; a retry will not help",
        _ if retryable => "a retry may help",
        _ => "a retry will not help",
    }
}
