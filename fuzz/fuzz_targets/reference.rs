#![no_main]
//! References: parse never panics, and what parses prints back to something that parses
//! to the same reference.
use ferry_core::reference::Reference;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    if let Ok(reference) = Reference::parse(input) {
        let again = Reference::parse(&reference.to_string()).expect("a printed reference parses");
        assert_eq!(again, reference);
    }
});
