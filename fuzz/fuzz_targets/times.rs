//! The dates and times the CLI and the forms accept (`--at`, `--since`, a birth date typed
//! into search) and the collector's query times.
//!
//! `cargo +nightly fuzz run times` (seeds in fuzz/corpus/times).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = chartroom_core::fuzz_support::parse_times(&String::from_utf8_lossy(data));
});
