//! The recovery key as typed (groups, dashes, spaces, look-alike letters, a checksum).
//!
//! `cargo +nightly fuzz run recovery_key` (seeds in fuzz/corpus/recovery_key).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = chartroom_core::fuzz_support::parse_recovery_key(&String::from_utf8_lossy(data));
});
