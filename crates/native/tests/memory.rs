//! Memory stays flat whatever the blob size: a 256 MiB blob, generated on the fly by the
//! source server, goes through both upload paths while peak RSS (VmHWM) is watched.
//!
//! One test in its own binary, so no other test's allocations show in the figures.

mod support;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use ferry_core::transport::Transport;
use ferry_native::{NativeOptions, NativeTransport, TokioClock};
use support::{transfer, Config, Server};

const MIB: u64 = 1024 * 1024;

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with(field)).expect(field);
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("a number of kB")
}

/// Resets VmHWM to the current RSS (Linux >= 4.0); false where that is not allowed.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peak_memory_does_not_grow_with_the_blob() {
    let source = Server::start(Config::default()).await;
    let destination = Server::start(Config::default()).await;
    let (small, small_size) = source.add_generated(4 * MIB);
    let (big, big_size) = source.add_generated(256 * MIB);

    let paths = [
        ("chunked (16 MiB chunks)", NativeOptions::default()),
        ("streamed PUT", NativeOptions::default().with_chunking(u64::MAX, 16 * MIB as usize)),
    ];
    for (name, options) in paths {
        let transport = NativeTransport::with_options(options).unwrap();
        // Warm up pools, buffers and the runtime with a small transfer first.
        transport
            .transfer(transfer(&source, &destination, &small, small_size), Arc::default(), &TokioClock::new())
            .await
            .unwrap();
        let reset = reset_peak();
        let before = status_kib(if reset { "VmRSS:" } else { "VmHWM:" });
        let progress = Arc::new(AtomicU64::new(0));
        let report = transport
            .transfer(transfer(&source, &destination, &big, big_size), progress, &TokioClock::new())
            .await
            .unwrap();
        let peak = status_kib("VmHWM:");
        let growth_mib = peak.saturating_sub(before) / 1024;
        eprintln!("{name}: peak RSS grew by {growth_mib} MiB moving a 256 MiB blob (reset peak: {reset})");
        assert_eq!(report.bytes, big_size);
        assert!(growth_mib < 16, "{name}: peak RSS grew by {growth_mib} MiB for a 256 MiB blob");
    }
    let state = destination.state();
    assert!(state.committed.iter().filter(|(d, _)| *d == big.to_string()).count() == 2);
}
