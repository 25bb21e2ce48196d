//! Jobs against a source that rate-limits its manifest reads (a token bucket answering
//! `429` with `Retry-After`, as Docker Hub limits pulls), on the virtual clock, with the
//! adaptive windows and without. Every request takes 100 ms, so a window of `w` manifest
//! reads asks for `10 w` per second.

use std::time::Duration;

use ferry_core::api::EndpointMap;
use ferry_core::config::parse_images_file;
use ferry_core::copy::{Job, Plan, SyncMachine, SyncOptions};
use ferry_core::progress::{Event, JobStatus};
use ferry_core::referrers::ReferrerFilter;
use ferry_core::testkit::{ImageBuilder, Network, RateLimit, Simulation};
use ferry_core::time::{Instant, UnixTime};
use ferry_core::window::{ActionClass, WindowReport};
use http::Method;

const SRC: &str = "src.test";
const DST: &str = "dst.test";
const WALL: UnixTime = UnixTime(784_111_777);

/// One job: `images` tags of one repository, `proc` at a time, against a source whose
/// manifest reads are limited to `burst` at once and `per_second` after.
#[derive(Debug, Clone, Copy)]
struct Case {
    proc: usize,
    images: usize,
    burst: u32,
    per_second: u32,
}

impl Case {
    fn run(self, adaptive: bool) -> (Simulation, SyncMachine) {
        let mut net = Network::new();
        net.add(DST);
        let src = net.add(SRC);
        for i in 0..self.images {
            let layer = format!("layer {i}");
            ImageBuilder::new(src, "app").image(Some(&format!("v{i}")), &[layer.as_bytes()], "linux/amd64");
        }
        net.rate_limit(SRC, RateLimit::new(ActionClass::ManifestRead, self.burst, self.per_second));
        let rules = parse_images_file("images.json", r#"{"src.test/app": "dst.test/app"}"#, &|_| None)
            .expect("a valid images file");
        let mut endpoints = EndpointMap::default();
        endpoints.insecure.extend([SRC.to_owned(), DST.to_owned()]);
        let job = Job { plan: Plan::Rules(rules), credentials: Default::default(), endpoints };
        // Images alone: these exact counts leave referrers out (tests/referrers.rs counts them).
        let options = SyncOptions {
            adaptive,
            proc: self.proc,
            seed: 11,
            referrers: ReferrerFilter::None,
            ..SyncOptions::default()
        };
        let mut sim = Simulation::new(net);
        sim.latency = Duration::from_millis(100);
        let mut machine = SyncMachine::new(job, options, Instant::ZERO, WALL);
        sim.run(&mut machine).expect("the machine finishes");
        (sim, machine)
    }

    /// The manifest reads the job needs: a GET of each source manifest (the destination's
    /// tag list shows every tag missing, so neither side is asked with a HEAD).
    fn reads(self) -> u32 {
        self.images as u32
    }

    /// When an oracle that knows the bucket sends its last manifest read: the burst at
    /// once, the rest at the bucket's rate.
    fn oracle(self) -> Duration {
        Duration::from_secs_f64(f64::from(self.reads() - self.burst) / f64::from(self.per_second))
    }
}

/// What a run came to.
#[derive(Debug, PartialEq, Eq)]
struct Figures {
    copied: usize,
    too_many: usize,
    /// Source manifest HEADs and GETs sent, the refused ones included.
    manifest_reads: usize,
    rounds: u32,
    elapsed_ms: u64,
    shrinks: Vec<usize>,
    smallest_window: Option<usize>,
}

fn figures(case: Case, adaptive: bool) -> Figures {
    let (sim, machine) = case.run(adaptive);
    let report = machine.report();
    assert_eq!(report.status, JobStatus::Succeeded, "{case:?}, adaptive {adaptive}");
    let too_many = sim.network.count_status(SRC, 429);
    // Only the limited class pushed back, and the summary counted every 429.
    let [WindowReport { registry, class, pushbacks, smallest_window }] = &report.summary.rate_limits[..]
    else {
        panic!("one window pushed back: {:?}", report.summary.rate_limits)
    };
    assert_eq!((registry.as_str(), *class, *pushbacks), (SRC, ActionClass::ManifestRead, too_many as u64));
    let sent = |m: &Method| {
        sim.network
            .log
            .iter()
            .filter(|r| r.method == *m && r.url.contains("src.test/v2/app/manifests/"))
            .count()
    };
    let shrinks = sim
        .events_where(|e| matches!(e, Event::WindowShrunk { .. }))
        .into_iter()
        .map(|e| match e {
            Event::WindowShrunk { window, .. } => *window,
            _ => unreachable!(),
        })
        .collect();
    Figures {
        copied: report.summary.copied,
        too_many,
        manifest_reads: sent(&Method::HEAD) + sent(&Method::GET),
        rounds: report.summary.rounds,
        elapsed_ms: report.summary.elapsed_ms,
        shrinks,
        smallest_window: *smallest_window,
    }
}

#[test]
fn adaptive_windows_keep_429s_few_and_the_job_near_the_limit() {
    // (case, adaptive figures, fixed concurrency's 429s and rounds)
    let table = [
        (
            Case { proc: 16, images: 160, burst: 20, per_second: 20 },
            Figures {
                copied: 160,
                too_many: 5,
                // Each needed read once, plus the refused ones again: one round.
                manifest_reads: 160 + 5,
                rounds: 1,
                elapsed_ms: 8_400,
                shrinks: vec![1, 2],
                smallest_window: Some(1),
            },
            (64, 2),
        ),
        (
            Case { proc: 5, images: 80, burst: 10, per_second: 10 },
            Figures {
                copied: 80,
                too_many: 2,
                manifest_reads: 80 + 2,
                rounds: 1,
                elapsed_ms: 7_700,
                shrinks: vec![1, 1],
                smallest_window: Some(1),
            },
            (12, 2),
        ),
    ];
    for (case, want, fixed_429s) in table {
        let got = figures(case, true);
        assert_eq!(got, want, "{case:?}");
        // At most one 429 per ten manifest reads, and within 25% of the oracle's time.
        assert!(got.too_many * 10 <= case.reads() as usize, "{case:?}: {} 429s", got.too_many);
        let oracle = case.oracle().as_millis() as u64;
        assert!(
            got.elapsed_ms * 4 <= oracle * 5,
            "{case:?}: {} ms against the oracle's {oracle} ms",
            got.elapsed_ms
        );

        // The same job at fixed concurrency lands too, after more than twice the 429s
        // and a second round for the images whose retries ran out.
        let fixed = figures(case, false);
        assert_eq!(fixed.copied, case.images);
        assert_eq!((fixed.too_many, fixed.rounds), fixed_429s, "{case:?}");
        assert!(fixed.too_many >= 2 * got.too_many, "{case:?}");
        assert_eq!((fixed.shrinks.len(), fixed.smallest_window), (0, None));
    }
}
