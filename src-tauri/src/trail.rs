//! Commands for the auditor: the audit trail, its verification, and alerts.

use chartroom_core::audit_words::{EventWords, PurposeWords, EVENTS, PURPOSES};
use chartroom_core::{Alert, AuditFilter, AuditLine, Outcome, PatientNamed, Verification};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use tauri::State;
use ts_rs::TS;

use crate::error::AppError;
use crate::state::AppState;

/// What the auditor filters by; empty fields do not filter.
#[derive(Debug, Default, Deserialize, TS)]
pub struct AuditQuery {
    /// An MRN, exactly (0000018), or a name, matched as patient search matches names.
    patient: Option<String>,
    user: Option<String>,
    event: Option<String>,
    /// `success`, `denied` or `failed`.
    outcome: Option<String>,
    /// From this day (YYYY-MM-DD, UTC), inclusive, or this instant (RFC 3339).
    since: Option<String>,
    /// Up to this day (YYYY-MM-DD, UTC), inclusive, or before this instant (RFC 3339).
    until: Option<String>,
    /// The newest this many.
    limit: Option<u32>,
}

/// One audit entry as the auditor's table shows it: in a clinic's words, the patient by MRN.
#[derive(Debug, Serialize, TS)]
pub struct AuditRow {
    #[ts(type = "number")]
    seq: u64,
    time: String,
    actor: String,
    role: Option<String>,
    action: String,
    /// As the trail stores it (`chart.read`).
    event: String,
    /// "Opened a chart"; absent for an event this release does not know.
    event_words: Option<String>,
    outcome: String,
    /// The MRN of the patient the entry is about.
    mrn: Option<String>,
    object: Option<String>,
    /// The purpose-of-use code (`TREAT`) and its words ("treatment").
    purpose: Option<String>,
    purpose_words: Option<String>,
    reason: Option<String>,
    detail: Option<String>,
}

impl From<AuditLine> for AuditRow {
    fn from(line: AuditLine) -> Self {
        let event_words = line.event_words().map(str::to_owned);
        let purpose_words = line.purpose_words().map(str::to_owned);
        let e = line.record.entry;
        AuditRow {
            seq: e.seq,
            time: chartroom_core::format_time(e.time),
            actor: e.actor,
            role: e.role,
            action: e.action.code().to_owned(),
            event: e.event,
            event_words,
            outcome: e.outcome.as_str().to_owned(),
            mrn: line.mrn,
            object: match (e.object_type, e.object_id) {
                // The patient is named by MRN in its own column, never by the internal id.
                (Some(t), _) if t == "Patient" => None,
                (Some(t), Some(id)) => Some(format!("{t} {id}")),
                (Some(t), None) => Some(t),
                _ => None,
            },
            purpose: e.purpose,
            purpose_words,
            reason: e.reason,
            detail: e.detail,
        }
    }
}

/// The entries found, newest first, and how many patients the MRN or name meant.
#[derive(Debug, Serialize, TS)]
pub struct AuditPage {
    rows: Vec<AuditRow>,
    #[ts(type = "number | null")]
    patients_named: Option<usize>,
}

/// The words for every event and purpose of use, for the event picker.
#[derive(Debug, Serialize, TS)]
pub struct AuditVocabulary {
    events: Vec<EventWords>,
    purposes: Vec<PurposeWords>,
}

/// A day (its start, or with `end` the start of the next) or an instant (RFC 3339).
fn when(label: &str, text: &Option<String>, end: bool) -> Result<Option<DateTime<Utc>>, AppError> {
    let Some(t) = text.as_deref().map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if let Ok(instant) = DateTime::parse_from_rfc3339(t) {
        return Ok(Some(instant.with_timezone(&Utc)));
    }
    let d = NaiveDate::parse_from_str(t, "%Y-%m-%d").map_err(|_| {
        AppError::new(
            "invalid_input",
            format!("The {label} date is not a date like 2024-03-02."),
        )
    })?;
    let time = if end {
        d.and_hms_micro_opt(23, 59, 59, 999_999)
    } else {
        d.and_hms_opt(0, 0, 0)
    };
    Ok(time.map(|t| t.and_utc()))
}

fn text(t: Option<String>) -> Option<String> {
    t.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
}

#[tauri::command(async, rename_all = "snake_case")]
pub fn audit_entries(state: State<'_, AppState>, query: AuditQuery) -> Result<AuditPage, AppError> {
    let filter = AuditFilter {
        since: when("from", &query.since, false)?,
        until: when("to", &query.until, true)?,
        outcome: match text(query.outcome) {
            None => None,
            Some(o) => Some(o.parse::<Outcome>().map_err(|_| {
                AppError::new(
                    "invalid_input",
                    "The outcome is one of: success, denied, failed.",
                )
            })?),
        },
        patient: None,
        named: text(query.patient).map(PatientNamed::MrnOrName),
        user: text(query.user),
        event: text(query.event),
        limit: Some(query.limit.unwrap_or(500).clamp(1, 5_000)),
    };
    state.with_session(|s| {
        let (lines, count) = s.audit_lines(&filter)?;
        Ok(AuditPage {
            rows: lines.into_iter().rev().map(AuditRow::from).collect(),
            patients_named: count.patients_named,
        })
    })
}

/// The words the audit view shows events and purposes in: the same for everyone, no
/// patient data, so no session is needed.
#[tauri::command(rename_all = "snake_case")]
pub fn audit_vocabulary() -> AuditVocabulary {
    AuditVocabulary {
        events: EVENTS.to_vec(),
        purposes: PURPOSES.to_vec(),
    }
}

#[tauri::command(async, rename_all = "snake_case")]
pub fn verify_audit(state: State<'_, AppState>) -> Result<Verification, AppError> {
    state.with_session(|s| s.verify_audit())
}

#[tauri::command(async, rename_all = "snake_case")]
pub fn list_alerts(state: State<'_, AppState>, all: bool) -> Result<Vec<Alert>, AppError> {
    state.with_session(|s| s.alerts(all))
}

#[tauri::command(async, rename_all = "snake_case")]
pub fn acknowledge_alert(
    state: State<'_, AppState>,
    id: i64,
    note: String,
) -> Result<Vec<Alert>, AppError> {
    state.with_session(|s| {
        s.acknowledge_alert(id, &note)?;
        s.alerts(false)
    })
}
