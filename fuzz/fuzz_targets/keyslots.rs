//! `keyslots.json` as an unlock reads it before deriving any key: a damaged or hostile slot
//! file must be refused, never panic or ask for unbounded memory.
//!
//! `cargo +nightly fuzz run keyslots` (seeds in fuzz/corpus/keyslots).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = chartroom_core::fuzz_support::parse_slot_file(data);
});
