//! Checks shared by every part of the record: free text, dates, times and choices from a
//! fixed list. The UI, the CLI, import and the change writers all go through these.

use chrono::{DateTime, NaiveDate, Utc};

use crate::CoreError;

const MAX_NAME_CHARS: usize = 100;

pub(crate) fn parse_choice<T: Copy>(
    label: &str,
    text: &str,
    options: &[(&str, T)],
) -> Result<T, CoreError> {
    let t = text.trim().to_ascii_lowercase().replace(['-', ' '], "_");
    options
        .iter()
        .find(|(name, _)| *name == t)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            CoreError::InvalidInput(format!(
                "The {label} is one of: {}.",
                options
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

/// Parses a point in time: RFC 3339 with its offset, or `YYYY-MM-DD HH:MM` / `YYYY-MM-DD`
/// in the clinic's time zone. Refuses times more than an hour ahead of `now` (clock skew) and
/// before 1900.
pub fn parse_time_input(
    label: &str,
    text: &str,
    now: DateTime<Utc>,
    zone: &crate::ClinicZone,
) -> Result<DateTime<Utc>, CoreError> {
    let parsed = zone.parse_instant(label, text)?;
    if parsed > now + chrono::Duration::hours(1) {
        return Err(CoreError::InvalidInput(format!(
            "The {label} is in the future."
        )));
    }
    if parsed.format("%Y").to_string().as_str() < "1900" {
        return Err(CoreError::InvalidInput(format!(
            "The {label} is before 1900."
        )));
    }
    Ok(chartroom_audit::truncate_to_micros(parsed))
}

/// A person's name part: trimmed, 1–100 characters, no control characters.
pub(crate) fn name_part(label: &str, text: &str) -> Result<String, CoreError> {
    bounded_text(label, text, MAX_NAME_CHARS)
}

/// Free text of at most `max` characters with no control characters, trimmed; required.
pub(crate) fn bounded_text(label: &str, text: &str, max: usize) -> Result<String, CoreError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(CoreError::InvalidInput(format!("The {label} is required.")));
    }
    if t.chars().count() > max {
        return Err(CoreError::InvalidInput(format!(
            "The {label} is longer than {max} characters."
        )));
    }
    if t.chars().any(char::is_control) {
        return Err(CoreError::InvalidInput(format!(
            "The {label} contains a control character."
        )));
    }
    // Text-direction overrides and isolates make a value display as something it is not
    // ("ok\u{202e}gnp.exe" shows as "okexe.png").
    if t.chars().any(is_direction_override) {
        return Err(CoreError::InvalidInput(format!(
            "The {label} contains an invisible text-direction character."
        )));
    }
    Ok(t.to_owned())
}

/// The Unicode formatting characters that reorder how text is shown (Trojan Source).
pub(crate) fn is_direction_override(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Like [`bounded_text`], but empty means "none".
pub(crate) fn optional_text(
    label: &str,
    text: Option<&str>,
    max: usize,
) -> Result<Option<String>, CoreError> {
    match text.map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) => bounded_text(label, t, max).map(Some),
    }
}

/// Parses a date (YYYY-MM-DD) that is not in the future and not before 1880.
pub fn parse_past_date(label: &str, text: &str, today: NaiveDate) -> Result<NaiveDate, CoreError> {
    let date = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| {
        CoreError::InvalidInput(format!(
            "The {label} \"{}\" is not a date. Write dates as YYYY-MM-DD, e.g. 1984-03-02.",
            text.chars().take(20).collect::<String>()
        ))
    })?;
    if date > today {
        return Err(CoreError::InvalidInput(format!(
            "The {label} is in the future."
        )));
    }
    if date < NaiveDate::from_ymd_opt(1880, 1, 1).unwrap_or(NaiveDate::MIN) {
        return Err(CoreError::InvalidInput(format!(
            "The {label} is before 1880."
        )));
    }
    Ok(date)
}
