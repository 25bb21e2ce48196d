//! A whole simulated sync through ferry-core, exported from a wasm module.
//!
//! CI builds this for `wasm32-unknown-unknown`, checks that the module imports nothing
//! from `env` (the core reads no clock and does no I/O), and runs `probe_sync` under
//! Node: planning, auth (a Bearer token flow), index handling, blob mounts and the
//! report all execute inside wasm.

use ferry_core::api::EndpointMap;
use ferry_core::config::parse_images_file;
use ferry_core::copy::{Job, Plan, SyncMachine, SyncOptions};
use ferry_core::testkit::{FakeAuth, ImageBuilder, Network, Simulation};
use ferry_core::time::{Instant, UnixTime};

/// Runs a three-image sync between two in-memory registries; returns the images copied.
pub fn run_probe() -> u32 {
    let mut network = Network::new();
    let src = network.add("src.test");
    ImageBuilder::new(src, "multi").index("v1", &["linux/amd64", "linux/arm64/v8"], &[b"base"]);
    ImageBuilder::new(src, "one").image(Some("v1"), &[b"base", b"one"], "linux/amd64");
    ImageBuilder::new(src, "two").image(Some("v1"), &[b"base", b"two"], "linux/amd64");
    network.add("dst.test").auth = Some(FakeAuth::Bearer { username: "u".into(), password: "p".into() });

    let images = r#"{"src.test/multi:v1": "dst.test/multi", "src.test/one": "dst.test/one", "src.test/two:v1": "dst.test/two"}"#;
    let Ok(rules) = parse_images_file("images.json", images, &|_| None) else { return 0 };
    let mut endpoints = EndpointMap::default();
    endpoints.insecure.extend(["src.test".to_owned(), "dst.test".to_owned()]);
    let Ok(credentials) =
        ferry_core::auth::CredentialStore::new([("dst.test", ferry_core::auth::Credential::new("u", "p"))])
    else {
        return 0;
    };
    let job = Job { plan: Plan::Rules(rules), credentials, endpoints };
    let mut machine = SyncMachine::new(job, SyncOptions::default(), Instant::ZERO, UnixTime(1_700_000_000));
    let mut sim = Simulation::new(network);
    if sim.run(&mut machine).is_err() {
        return 0;
    }
    machine.report().summary.copied as u32
}

/// The wasm export: images copied by [`run_probe`].
// A wasm module exports a function only under an unmangled name. `no_mangle` is unsafe
// when the name clashes with another symbol; `probe_sync` clashes with none.
#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn probe_sync() -> u32 {
    run_probe()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_probe_copies_three_images_natively_too() {
        assert_eq!(super::run_probe(), 3);
    }
}
