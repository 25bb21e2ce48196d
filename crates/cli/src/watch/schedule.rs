//! When the next run starts: an interval from the last run's start, a cron schedule, or
//! the earlier of the two.
//!
//! Cron expressions are POSIX/Vixie cron's five fields (minute hour day-of-month month
//! day-of-week), with an optional sixth in front for seconds, evaluated in UTC (as
//! Kubernetes CronJobs are, by default). A run that outlasts its slot is followed by the
//! next slot after it ends; runs never overlap.

use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds};
use croner::Cron;

/// The default interval when neither `--interval` nor `--schedule` is given.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);

/// A parsed `--schedule`.
#[derive(Debug, Clone)]
pub(crate) struct CronSchedule(Cron);

/// clap's parser of `--schedule`.
pub(crate) fn parse_cron(text: &str) -> Result<CronSchedule, String> {
    CronParser::builder().seconds(Seconds::Optional).build().parse(text).map(CronSchedule).map_err(|e| {
        format!(
            "{text:?} is not a cron schedule ({e}): write five fields, minute hour day month weekday \
             (e.g. \"*/15 * * * *\"), or six with seconds first"
        )
    })
}

/// The schedule of a service.
#[derive(Debug, Clone)]
pub(super) struct Schedule {
    interval: Option<Duration>,
    cron: Option<CronSchedule>,
}

impl Schedule {
    pub(super) fn new(interval: Option<Duration>, cron: Option<CronSchedule>) -> Schedule {
        let interval = if cron.is_none() { Some(interval.unwrap_or(DEFAULT_INTERVAL)) } else { interval };
        Schedule { interval, cron }
    }

    /// How long after `now` the next run starts, for a run that started `since_start`
    /// ago; zero when it is due.
    pub(super) fn wait(&self, since_start: Duration, now: DateTime<Utc>) -> Duration {
        let by_interval = self.interval.map(|i| i.saturating_sub(since_start));
        let by_cron = self.cron.as_ref().and_then(|CronSchedule(cron)| {
            let next = cron.find_next_occurrence(&now, false).ok()?;
            (next - now).to_std().ok()
        });
        match (by_interval, by_cron) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            // A cron pattern with no future time (e.g. 30 February): wait a day and look again.
            (None, None) => Duration::from_secs(86_400),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_next_run_is_the_earlier_of_the_interval_and_the_schedule() {
        let secs = Duration::from_secs;
        let cron = |text: &str| Some(parse_cron(text).unwrap());
        let now = at("2026-11-29T12:07:30Z");
        let cases = [
            // No flags: every five minutes from the last start.
            (None, None, secs(60), secs(240)),
            (Some(secs(30)), None, secs(10), secs(20)),
            // A run longer than the interval: the next starts at once.
            (Some(secs(30)), None, secs(45), secs(0)),
            // Every quarter hour: 12:15:00 is 7.5 minutes away.
            (None, cron("*/15 * * * *"), secs(0), secs(450)),
            // Seconds first: every 10 s.
            (None, cron("*/10 * * * * *"), secs(0), secs(10)),
            // Both: the earlier.
            (Some(secs(60)), cron("*/15 * * * *"), secs(0), secs(60)),
            (Some(secs(3600)), cron("*/15 * * * *"), secs(0), secs(450)),
        ];
        for (interval, cron, since, want) in cases {
            let schedule = Schedule::new(interval, cron.clone());
            assert_eq!(schedule.wait(since, now), want, "{interval:?} {cron:?} {since:?}");
        }
    }

    #[test]
    fn a_bad_cron_schedule_names_itself_and_the_fix() {
        for text in ["", "* * *", "61 * * * *", "every hour"] {
            let err = parse_cron(text).unwrap_err();
            assert!(err.starts_with(&format!("{text:?} is not a cron schedule")), "{err}");
            assert!(err.contains("five fields"), "{err}");
        }
    }
}
