#![no_main]
//! image-syncer and ferry configuration files, JSON and YAML: never panic.
use ferry_core::config::{parse_auth_file, parse_config_file, parse_images_file};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    let env = |name: &str| (name == "TOKEN").then(|| "t".to_owned());
    for name in ["f.json", "f.yaml"] {
        let _ = parse_auth_file(name, input, &env);
        let _ = parse_images_file(name, input, &env);
        let _ = parse_config_file(name, input, &env);
    }
});
