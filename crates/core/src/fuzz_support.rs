//! Entry points for the fuzz targets in `fuzz/` and the mutation test that runs the same
//! inputs on stable Rust. Not an API.

use crate::CoreError;

/// Parses and checks decrypted export bytes exactly as an import does before writing:
/// Bundle or Bulk Data archive, every resource, every reference, every signature.
/// Returns how many patients the file holds.
pub fn parse_export(plain: &[u8]) -> Result<usize, CoreError> {
    let today = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default();
    crate::exchange::parse_for_fuzzing(plain, today)
}

/// A key slot file as an unlock reads it before deriving any key.
pub fn parse_slot_file(bytes: &[u8]) -> Result<usize, chartroom_vault::VaultError> {
    chartroom_vault::check_slot_file(bytes)
}

/// A recovery key as typed.
pub fn parse_recovery_key(text: &str) -> bool {
    chartroom_vault::RecoveryKey::parse(text).is_ok()
}

/// The times and dates the CLI and the forms accept (`--at`, `--since`, a search's birth
/// date), and the collector's query times.
pub fn parse_times(text: &str) -> usize {
    let now = chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default();
    usize::from(crate::parse_time_input("time", text, now, &crate::ClinicZone::utc()).is_ok())
        + usize::from(chartroom_audit::parse_time(text).is_some())
        + usize::from(crate::search::parse_date_query(text, crate::DateFormat::Mdy).is_some())
}
