#![no_main]
//! WWW-Authenticate challenges and token responses: never panic.
use ferry_core::auth::{parse_token_response, parse_www_authenticate};
use ferry_core::time::Instant;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = std::str::from_utf8(data) {
        let _ = parse_www_authenticate(header);
    }
    let _ = parse_token_response(data, Instant::ZERO);
});
