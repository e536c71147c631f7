//! The collector's `POST /v1/enroll` body: parsed and its shape checked as the collector does
//! before it looks anything up.
//!
//! `cargo +nightly fuzz run enroll` (seeds in fuzz/corpus/enroll).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(req) = serde_json::from_slice::<chartroom_audit::sync::EnrollRequest>(data) {
        let _ = chartroom_audit::sync::validate_enroll(&req);
    }
});
