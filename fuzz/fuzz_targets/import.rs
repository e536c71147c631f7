//! The import parser on arbitrary decrypted bytes: a FHIR Bundle, a Bulk Data tar, or
//! anything else. It must return an error, never panic, loop or exhaust memory.
//!
//! `cargo +nightly fuzz run import` (from the repository root; seeds in fuzz/corpus/import).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = chartroom_core::fuzz_support::parse_export(data);
});
