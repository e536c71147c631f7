//! The collector's `POST /v1/push` body: parsed, its shape checked, then checked as a batch
//! (signatures, chain, the plan against a held chain, the security log head) exactly as the
//! collector does. It must refuse, never panic, loop or exhaust memory.
//!
//! `cargo +nightly fuzz run push` (from the repository root; seeds in fuzz/corpus/push).
#![no_main]

use chartroom_audit::sync::{check_batch, check_security_head, plan_batch, validate_push, PushBatch};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(batch) = serde_json::from_slice::<PushBatch>(data) else {
        return;
    };
    if validate_push(&batch).is_err() {
        return;
    }
    let key = chartroom_audit::SigningKey::from_bytes(&[7; 32]).verifying_key();
    let _ = check_batch(&batch, &key);
    let _ = plan_batch(&batch, 3, |seq| (seq <= 3).then_some(chartroom_audit::GENESIS));
    let held = "0".repeat(64);
    let _ = check_security_head(batch.security_log.as_ref(), Some((2, held.as_str())));
});
