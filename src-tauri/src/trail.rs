//! Commands for the auditor: the audit trail, its verification, and alerts.

use chartroom_core::{Alert, AuditFilter, Outcome, Record, Verification};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use tauri::State;
use ts_rs::TS;

use crate::error::AppError;
use crate::state::AppState;

/// What the auditor filters by; empty fields do not filter.
#[derive(Debug, Default, Deserialize, TS)]
pub struct AuditQuery {
    patient: Option<String>,
    user: Option<String>,
    event: Option<String>,
    /// `success`, `denied` or `failed`.
    outcome: Option<String>,
    /// From this day (YYYY-MM-DD, UTC), inclusive.
    since: Option<String>,
    /// Up to this day (YYYY-MM-DD, UTC), inclusive.
    until: Option<String>,
    /// The newest this many.
    limit: Option<u32>,
}

/// One audit entry as the auditor's table shows it.
#[derive(Debug, Serialize, TS)]
pub struct AuditRow {
    #[ts(type = "number")]
    seq: u64,
    time: String,
    actor: String,
    role: Option<String>,
    action: String,
    event: String,
    outcome: String,
    patient_id: Option<String>,
    object: Option<String>,
    purpose: Option<String>,
    reason: Option<String>,
    detail: Option<String>,
}

impl From<Record> for AuditRow {
    fn from(r: Record) -> Self {
        let e = r.entry;
        AuditRow {
            seq: e.seq,
            time: chartroom_core::format_time(e.time),
            actor: e.actor,
            role: e.role,
            action: e.action.code().to_owned(),
            event: e.event,
            outcome: e.outcome.as_str().to_owned(),
            patient_id: e.patient_id,
            object: match (e.object_type, e.object_id) {
                (Some(t), Some(id)) => Some(format!("{t} {id}")),
                (Some(t), None) => Some(t),
                _ => None,
            },
            purpose: e.purpose,
            reason: e.reason,
            detail: e.detail,
        }
    }
}

fn day(label: &str, text: &Option<String>, end: bool) -> Result<Option<DateTime<Utc>>, AppError> {
    let Some(t) = text.as_deref().map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
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
pub fn audit_entries(
    state: State<'_, AppState>,
    query: AuditQuery,
) -> Result<Vec<AuditRow>, AppError> {
    let filter = AuditFilter {
        since: day("from", &query.since, false)?,
        until: day("to", &query.until, true)?,
        outcome: match text(query.outcome) {
            None => None,
            Some(o) => Some(o.parse::<Outcome>().map_err(|_| {
                AppError::new(
                    "invalid_input",
                    "The outcome is one of: success, denied, failed.",
                )
            })?),
        },
        patient: text(query.patient),
        user: text(query.user),
        event: text(query.event),
        limit: Some(query.limit.unwrap_or(500).clamp(1, 5_000)),
    };
    state.with_session(|s| {
        let rows = s.audit_entries(&filter)?;
        Ok(rows.into_iter().rev().map(AuditRow::from).collect())
    })
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
