//! The metrics of `ferry sync --watch`, fed from the core's events and each run's summary.
//!
//! Counters add each run's summary at its end, so after a run they equal the sum of the
//! reports' figures. Labels stay bounded: registries and rules come from the config,
//! classes and outcomes are fixed sets, statuses are HTTP codes; never a tag or a digest.

use std::collections::BTreeSet;
use std::sync::Mutex;

use ferry_core::config::{JobConfig, Rule};
use ferry_core::progress::{BlobOutcome, Event, ImageOutcome, Report};
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::exporter;

/// Bucket bounds of a run's duration, in seconds: from a warm no-op sync to a cold mirror.
const RUN_SECONDS: &[f64] = &[0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0];

/// The service's metrics.
pub(super) struct Recorder {
    handle: PrometheusHandle,
    /// The `rule` label of each rule of the config in use.
    rules: Mutex<Vec<String>>,
}

impl Recorder {
    /// Installs the process's recorder and describes every metric.
    pub(super) fn install() -> anyhow::Result<Recorder> {
        let handle = exporter::install(&[("_duration_seconds", RUN_SECONDS)])?;
        describe();
        Ok(Recorder { handle, rules: Mutex::new(Vec::new()) })
    }

    pub(super) fn handle(&self) -> PrometheusHandle {
        self.handle.clone()
    }

    /// Takes the rules of a (re)loaded config: the `rule` label values.
    pub(super) fn rules(&self, config: &JobConfig) {
        let labels: BTreeSet<String> = config.rules.iter().map(rule_label).collect();
        let mut rules = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        for gone in rules.iter().filter(|r| !labels.contains(*r)) {
            gauge!("ferry_sync_up_to_date_ratio", "rule" => gone.clone()).set(f64::NAN);
        }
        *rules = labels.into_iter().collect();
        gauge!("ferry_sync_config_rules").set(rules.len() as f64);
    }

    pub(super) fn reloaded(&self, ok: bool) {
        counter!("ferry_sync_config_reloads_total", "result" => if ok { "loaded" } else { "rejected" })
            .increment(1);
        gauge!("ferry_sync_config_last_reload_ok").set(if ok { 1.0 } else { 0.0 });
    }

    pub(super) fn run_started(&self) {
        gauge!("ferry_sync_running").set(1.0);
        gauge!("ferry_sync_run_transferred_bytes").set(0.0);
    }

    /// A progress event, as it happens: what the summary does not keep, and the run's
    /// progress before its summary comes.
    pub(super) fn on_event(&self, event: &Event) {
        match event {
            Event::WindowShrunk { registry, class, window, .. } => {
                let labels = [("registry", registry.clone()), ("class", class_name(*class).to_owned())];
                gauge!("ferry_sync_window", &labels).set(*window as f64);
                counter!("ferry_sync_window_shrinks_total", &labels).increment(1);
            }
            Event::BlobDone { size, outcome: BlobOutcome::Transferred, .. } => {
                gauge!("ferry_sync_run_transferred_bytes").increment(*size as f64);
            }
            _ => {}
        }
    }

    /// A run ended with its report.
    pub(super) fn run_ended(&self, report: &Report, now: f64) {
        let s = &report.summary;
        gauge!("ferry_sync_running").set(0.0);
        let status = if s.failed == 0 { "succeeded" } else { "failed" };
        counter!("ferry_sync_runs_total", "status" => status).increment(1);
        histogram!("ferry_sync_run_duration_seconds").record(s.elapsed_ms as f64 / 1000.0);
        gauge!("ferry_sync_last_run_timestamp_seconds").set(now);
        if s.failed == 0 {
            gauge!("ferry_sync_last_success_timestamp_seconds").set(now);
        }
        for (outcome, n) in [("copied", s.copied), ("skipped", s.skipped), ("failed", s.failed)] {
            counter!("ferry_sync_images_total", "outcome" => outcome).increment(n as u64);
        }
        counter!("ferry_sync_images_stopped_total").increment(s.stopped as u64);
        for (outcome, n) in
            [("transferred", s.blobs_transferred), ("mounted", s.blobs_mounted), ("present", s.blobs_present)]
        {
            counter!("ferry_sync_blobs_total", "outcome" => outcome).increment(n as u64);
        }
        counter!("ferry_sync_bytes_transferred_total").increment(s.bytes_transferred);
        counter!("ferry_sync_transfers_total").increment(s.transfers);
        counter!("ferry_sync_retries_total").increment(s.retries);
        for c in &s.requests_by {
            let status = c.status.map_or_else(|| "none".to_owned(), |s| s.to_string());
            let labels = [
                ("registry", c.registry.clone()),
                ("class", c.class.as_str().to_owned()),
                ("status", status),
            ];
            counter!("ferry_sync_requests_total", &labels).increment(c.count);
        }
        for w in &s.rate_limits {
            let labels = [("registry", w.registry.clone()), ("class", class_name(w.class).to_owned())];
            counter!("ferry_sync_pushbacks_total", &labels).increment(w.pushbacks);
        }
        for f in &s.failures {
            counter!("ferry_sync_failures_total", "kind" => f.kind.to_string()).increment(1);
        }
        let rules = self.rules.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for rule in rules {
            let mine: Vec<_> = report.images.iter().filter(|i| belongs(&i.source, &rule)).collect();
            let current = mine
                .iter()
                .filter(|i| matches!(i.outcome, ImageOutcome::Copied | ImageOutcome::Skipped))
                .count();
            let ratio = if mine.is_empty() { 1.0 } else { current as f64 / mine.len() as f64 };
            gauge!("ferry_sync_up_to_date_ratio", "rule" => rule).set(ratio);
        }
    }

    /// A run could not start or broke off (a bad config, a driver error).
    pub(super) fn run_failed(&self, now: f64) {
        gauge!("ferry_sync_running").set(0.0);
        counter!("ferry_sync_runs_total", "status" => "error").increment(1);
        gauge!("ferry_sync_last_run_timestamp_seconds").set(now);
    }

    /// The drain timeout passed with work in flight.
    pub(super) fn run_abandoned(&self) {
        gauge!("ferry_sync_running").set(0.0);
        counter!("ferry_sync_runs_total", "status" => "abandoned").increment(1);
    }
}

/// A rule's label: its source registry and repository, without tag or digest.
fn rule_label(rule: &Rule) -> String {
    match &rule.source.repository {
        Some(repository) => format!("{}/{repository}", rule.source.registry),
        None => rule.source.registry.clone(),
    }
}

/// Whether an image (or a failed rule) of the report came from the rule labelled `rule`.
fn belongs(source: &str, rule: &str) -> bool {
    let Some(rest) = source.strip_prefix(rule) else { return false };
    // A registry's label has no `/`; a repository's is followed by its tag or digest.
    let after: &[char] = if rule.contains('/') { &[':', '@'] } else { &['/'] };
    rest.is_empty() || rest.starts_with(after)
}

fn class_name(class: ferry_core::window::ActionClass) -> &'static str {
    ferry_core::progress::RequestClass::from(class).as_str()
}

fn describe() {
    describe_counter!(
        "ferry_sync_runs_total",
        "Sync runs, by how they ended: succeeded, failed (an image or rule failed), error (the run \
         could not start), abandoned (the drain timeout passed)"
    );
    describe_histogram!(
        "ferry_sync_run_duration_seconds",
        Unit::Seconds,
        "Duration of each finished sync run"
    );
    describe_gauge!("ferry_sync_running", "1 while a sync run is under way");
    describe_gauge!(
        "ferry_sync_run_transferred_bytes",
        Unit::Bytes,
        "Bytes of the blobs the current (or last) run has transferred so far"
    );
    describe_gauge!("ferry_sync_last_run_timestamp_seconds", Unit::Seconds, "Unix time the last run ended");
    describe_gauge!(
        "ferry_sync_last_success_timestamp_seconds",
        Unit::Seconds,
        "Unix time the last run with no failure ended"
    );
    describe_counter!(
        "ferry_sync_images_total",
        "Images by outcome: copied (manifest pushed), skipped (already in sync), failed"
    );
    describe_counter!(
        "ferry_sync_images_stopped_total",
        "Images never started because the service was stopping"
    );
    describe_counter!(
        "ferry_sync_blobs_total",
        "Blobs each image needed, by how they got to the destination: transferred, mounted, present"
    );
    describe_counter!(
        "ferry_sync_bytes_transferred_total",
        Unit::Bytes,
        "Bytes of the blobs transferred, as their manifests give them"
    );
    describe_counter!("ferry_sync_transfers_total", "Blob transfers started, retries included");
    describe_counter!(
        "ferry_sync_retries_total",
        "Retries scheduled, of requests, transfers and token fetches"
    );
    describe_counter!(
        "ferry_sync_requests_total",
        "Small requests (not transfers) by registry, class and HTTP status (none: no answer)"
    );
    describe_counter!("ferry_sync_pushbacks_total", "429 and 503 answers, by registry and action class");
    describe_gauge!(
        "ferry_sync_window",
        "Requests of a class a registry is sent at once, after its window last shrank"
    );
    describe_counter!(
        "ferry_sync_window_shrinks_total",
        "Times a registry's window of a class shrank after a 429 or 503"
    );
    describe_counter!("ferry_sync_failures_total", "Failures runs ended with, by kind");
    describe_gauge!(
        "ferry_sync_up_to_date_ratio",
        "Share of a rule's images in sync after the last run (copied or skipped)"
    );
    describe_gauge!("ferry_sync_config_rules", "Rules in the config in use");
    describe_counter!(
        "ferry_sync_config_reloads_total",
        "Config reloads: loaded, or rejected (the old config kept running)"
    );
    describe_gauge!(
        "ferry_sync_config_last_reload_ok",
        "1 when the last reload loaded, 0 when it was rejected"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_belongs_to_its_rule_by_registry_and_repository() {
        let cases = [
            ("src.test/app:v1", "src.test/app", true),
            ("src.test/app@sha256:ab", "src.test/app", true),
            ("src.test/app", "src.test/app", true),
            ("src.test/app:v1", "src.test", true),
            ("src.test/apple:v1", "src.test/app", false),
            ("src.test:5000/app:v1", "src.test", false),
            ("other.test/app:v1", "src.test/app", false),
        ];
        for (source, rule, want) in cases {
            assert_eq!(belongs(source, rule), want, "{source} in {rule}");
        }
    }
}
