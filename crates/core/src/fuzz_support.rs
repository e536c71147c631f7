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
