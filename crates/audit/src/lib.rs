//! chartroom-audit: the audit trail's entry, its canonical bytes, the SHA-256 hash chain,
//! Ed25519-signed checkpoints and verification.
//!
//! Pure: no I/O, no SQL. The desktop writes entries with it, the CLI and the collector
//! verify with it, so all three agree on what a valid trail is.
//!
//! An entry's hash is `SHA-256(DOMAIN || previous hash || canonical bytes)`. The canonical
//! bytes are a fixed, length-prefixed binary layout (see [`Entry::canonical_bytes`]); golden
//! vectors in `tests/golden.rs` pin them, so a change that would re-hash history fails.

#![forbid(unsafe_code)]

mod checkpoint;
mod entry;
mod fhir;
pub mod sync;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
mod verify;

pub use checkpoint::{Checkpoint, CHECKPOINT_DOMAIN};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
pub use entry::{Action, Entry, Hash, Outcome, Record, ENTRY_DOMAIN, GENESIS};
pub use fhir::to_fhir_audit_event;
pub use verify::{requires_checkpoint, verify, Failure, Report, Verifier, CHECKPOINT_EVERY};

/// Times in the trail are kept to the microsecond, so the stored text and the hashed value
/// are the same instant.
pub fn truncate_to_micros(t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    let micros = t.timestamp_micros();
    chrono::DateTime::from_timestamp_micros(micros).unwrap_or(t)
}

/// Writes a time the way the trail stores it: RFC 3339, UTC, six fractional digits.
pub fn format_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Reads a time written by [`format_time`] (or any RFC 3339 time).
pub fn parse_time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| truncate_to_micros(t.with_timezone(&chrono::Utc)))
}
