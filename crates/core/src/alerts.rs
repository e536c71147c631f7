//! Alerts for suspicious access, evaluated as each audit entry is written (in its
//! transaction), stored, and acknowledged with a note.

use chartroom_audit::{format_time, Outcome, Record};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::audit::Op;
use crate::roles::Permission;
use crate::settings::Settings;
use crate::CoreError;

/// The rules.
pub mod rule {
    /// One user read many distinct patients' data in a short window (charts, note and
    /// vitals lists, histories, exports: every patient-scoped read).
    pub const CHART_BURST: &str = "chart_burst";
    /// An export held more than one patient (a selection, or the whole clinic).
    pub const BULK_EXPORT: &str = "bulk_export";
    /// Someone broke the glass into a restricted chart.
    pub const BREAK_GLASS: &str = "break_glass";
    /// Repeated failed unlocks of one account.
    pub const FAILED_UNLOCKS: &str = "failed_unlocks";
    /// Patient data opened outside clinic hours.
    pub const OUTSIDE_HOURS: &str = "outside_hours";
    /// A user opened the chart of a patient who shares their family name.
    pub const SAME_FAMILY_NAME: &str = "same_family_name";
    /// Someone was put on, or taken off, the care team of a restricted chart.
    pub const CARE_TEAM_CHANGE: &str = "care_team_change";
    /// A chart was restricted, or its restriction lifted.
    pub const RESTRICTION_CHANGE: &str = "restriction_change";
    /// A setting that decides which alerts are raised (a threshold, clinic hours, the
    /// break-the-glass time box) was changed.
    pub const ALERT_SETTING_CHANGED: &str = "alert_setting_changed";
    /// The audit trail's append-only triggers were found missing.
    pub const AUDIT_TAMPERING: &str = "audit_tampering";
    /// Users, slots, restrictions or care teams changed outside Chartroom, or the security
    /// log itself.
    pub const SECURITY_TAMPERING: &str = "security_tampering";
}

/// A day's appointment book names every patient on it (each is on record as read), and the
/// front desk moves a sick clinician's day at once, but neither looks into a chart: the
/// book's events do not count toward the chart-burst rule (opening the chart still does).
const APPOINTMENT_EVENTS: &str = "appointment.";

/// A stored alert.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Alert {
    pub id: i64,
    pub rule: String,
    pub time: String,
    /// The user whose action raised it, if any.
    pub user: Option<String>,
    pub patient_id: Option<String>,
    /// The MRN of the patient it is about, if any.
    pub mrn: Option<String>,
    /// The patient's name ("Okafor, Chidi"), only for a reader who may see it: a role that
    /// reads demographics, and for a restricted chart only someone who may open it.
    pub patient_name: Option<String>,
    pub summary: String,
    /// The audit entry that raised it.
    pub audit_seq: u64,
    pub acknowledged_at: Option<String>,
    pub acknowledged_by: Option<String>,
    pub note: Option<String>,
    /// The stretch of the trail to read about it, with its user and patient (RFC 3339;
    /// from inclusive, until exclusive): which stretch depends on the rule.
    pub entries_since: String,
    pub entries_until: String,
}

/// The stretch of the trail that tells what an alert of `rule` raised at `at` is about: the
/// window a burst was counted in, the time box of a break-the-glass grant, the day a
/// same-family-name alert stays quiet for that chart, the hour an outside-hours alert stays
/// quiet, the day of failed sign-ins before the lockout alert; an hour either side otherwise.
pub(crate) fn entries_window(
    rule: &str,
    at: DateTime<Utc>,
    settings: &Settings,
) -> (DateTime<Utc>, DateTime<Utc>) {
    use chrono::Duration;
    // Until is exclusive: a second past the entry that raised it keeps that entry in.
    let just_after = at + Duration::seconds(1);
    match rule {
        rule::CHART_BURST => (
            at - Duration::minutes(i64::from(settings.alert_chart_burst_minutes)),
            just_after,
        ),
        rule::BREAK_GLASS => (
            at,
            at + Duration::minutes(i64::from(settings.break_glass_minutes)),
        ),
        rule::SAME_FAMILY_NAME => (at, at + Duration::days(1)),
        rule::OUTSIDE_HOURS => (at, at + Duration::hours(1)),
        rule::FAILED_UNLOCKS => (at - Duration::days(1), just_after),
        _ => (at - Duration::hours(1), at + Duration::hours(1)),
    }
}

/// How alerts name a patient in their summary: by MRN, never the trail's internal id.
fn patient_words(conn: &Connection, patient: Option<&str>) -> Result<String, CoreError> {
    let mrn: Option<String> = conn
        .prepare_cached("SELECT mrn FROM patients WHERE id = ?1")?
        .query_row([patient], |r| r.get(0))
        .optional()?;
    Ok(match mrn {
        Some(mrn) => format!("MRN {mrn}"),
        None => "(not on record)".to_owned(),
    })
}

pub(crate) fn raise(
    conn: &Connection,
    rule: &str,
    at: DateTime<Utc>,
    user: Option<&str>,
    patient: Option<&str>,
    summary: &str,
    audit_seq: u64,
) -> Result<(), CoreError> {
    conn.prepare_cached(
        "INSERT INTO alerts (rule, time, actor, patient_id, summary, audit_seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        rule,
        format_time(at),
        user,
        patient,
        summary,
        i64::try_from(audit_seq).unwrap_or(i64::MAX)
    ])?;
    Ok(())
}

/// Raises `rule` about the actor of entry `e` (the entry that raised it).
fn raise_about(
    conn: &Connection,
    rule: &str,
    e: &chartroom_audit::Entry,
    patient: Option<&str>,
    summary: &str,
) -> Result<(), CoreError> {
    raise(conn, rule, e.time, Some(&e.actor), patient, summary, e.seq)
}

/// Whether `rule` already fired for `user` (and `patient`, when given) since `since`.
fn fired_since(
    conn: &Connection,
    rule: &str,
    user: &str,
    patient: Option<&str>,
    since: DateTime<Utc>,
) -> Result<bool, CoreError> {
    let found: Option<i64> = conn
        .prepare_cached(
            "SELECT 1 FROM alerts WHERE rule = ?1 AND actor = ?2 AND time >= ?3
               AND (?4 IS NULL OR patient_id = ?4) LIMIT 1",
        )?
        .query_row(params![rule, user, format_time(since), patient], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(found.is_some())
}

/// Runs every rule against a freshly written entry.
pub(crate) fn evaluate(
    conn: &Connection,
    settings: &Settings,
    rec: &Record,
) -> Result<(), CoreError> {
    let e = &rec.entry;
    let user = e.actor.as_str();
    match (e.event.as_str(), e.outcome) {
        ("break_glass", Outcome::Success) => {
            let summary = format!(
                "{user} broke the glass into restricted patient {}: \"{}\"",
                patient_words(conn, e.patient_id.as_deref())?,
                e.reason.as_deref().unwrap_or("")
            );
            raise_about(
                conn,
                rule::BREAK_GLASS,
                e,
                e.patient_id.as_deref(),
                &summary,
            )?;
        }
        ("care_team.add" | "care_team.remove", Outcome::Success) => {
            let restricted: Option<(bool, String)> = conn
                .prepare_cached("SELECT restricted, mrn FROM patients WHERE id = ?1")?
                .query_row([e.patient_id.as_deref()], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            if let Some((true, mrn)) = restricted {
                let summary = format!(
                    "{user} changed the care team of restricted patient MRN {mrn}: {}",
                    e.detail.as_deref().unwrap_or("")
                );
                raise_about(
                    conn,
                    rule::CARE_TEAM_CHANGE,
                    e,
                    e.patient_id.as_deref(),
                    &summary,
                )?;
            }
        }
        ("patient.update", Outcome::Success)
            if e.detail
                .as_deref()
                .is_some_and(|d| d.starts_with("changed") && d.contains("restricted")) =>
        {
            let summary = format!(
                "{user} changed whether patient {} is restricted to their care team",
                patient_words(conn, e.patient_id.as_deref())?
            );
            raise_about(
                conn,
                rule::RESTRICTION_CHANGE,
                e,
                e.patient_id.as_deref(),
                &summary,
            )?;
        }
        ("settings.update", Outcome::Success)
            if e.object_id
                .as_deref()
                .is_some_and(crate::settings::governs_alerts) =>
        {
            let summary = format!(
                "{user} changed an alert setting: {}",
                e.detail.as_deref().unwrap_or("")
            );
            raise_about(conn, rule::ALERT_SETTING_CHANGED, e, None, &summary)?;
        }
        ("session.unlock", Outcome::Failed) => {
            // Failures for this account since its last successful unlock.
            let last_success: i64 = conn
                .prepare_cached(
                    "SELECT coalesce(max(seq), 0) FROM audit_log
                      WHERE actor = ?1 AND event = 'session.unlock' AND outcome = 'success'",
                )?
                .query_row([user], |r| r.get(0))?;
            let failures: i64 = conn
                .prepare_cached(
                    "SELECT count(*) FROM audit_log
                      WHERE actor = ?1 AND event = 'session.unlock' AND outcome = 'failed' AND seq > ?2",
                )?
                .query_row(params![user, last_success], |r| r.get(0))?;
            if failures == i64::from(settings.alert_failed_unlocks) {
                let summary = format!("{failures} failed sign-in attempts in a row for {user}");
                raise_about(conn, rule::FAILED_UNLOCKS, e, None, &summary)?;
            }
        }
        ("records.export", Outcome::Success) => {
            let patients: i64 = conn
                .prepare_cached(
                    "SELECT count(*) FROM disclosure_patients WHERE disclosure_id = ?1",
                )?
                .query_row([e.object_id.as_deref()], |r| r.get(0))?;
            if patients > 1 {
                let summary = format!(
                    "{user} exported the records of {patients} patients at once (disclosure {})",
                    e.object_id.as_deref().unwrap_or("?")
                );
                raise_about(conn, rule::BULK_EXPORT, e, None, &summary)?;
            }
        }
        ("chart.read", Outcome::Success) => {
            if let (Some(actor_id), Some(patient)) = (e.actor_id, e.patient_id.as_deref()) {
                // One lookup on every chart read: both family names, when the user has one.
                let names: Option<(String, String)> = conn
                    .prepare_cached(
                        "SELECT coalesce(json_extract(cr_popen(p.uuid, 'patients', p.sealed), '$.family'), p.family),
                                u.family_name
                           FROM patients p JOIN users u ON u.id = ?2
                          WHERE p.id = ?1 AND u.family_name IS NOT NULL",
                    )?
                    .query_row(params![patient, actor_id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                if let Some((pf, uf)) = names {
                    if crate::chart::patient::fold(&pf) == crate::chart::patient::fold(&uf)
                        && !fired_since(
                            conn,
                            rule::SAME_FAMILY_NAME,
                            user,
                            Some(patient),
                            e.time - chrono::Duration::days(1),
                        )?
                    {
                        let summary = format!(
                            "{user} opened the chart of patient {}, who shares their family name",
                            patient_words(conn, Some(patient))?
                        );
                        raise_about(conn, rule::SAME_FAMILY_NAME, e, Some(patient), &summary)?;
                    }
                }
            }
        }
        _ => {}
    }
    // A change shows the chart it changes (an update answers with the whole record), so it
    // counts as a look at that patient too.
    if e.outcome == Outcome::Success
        && matches!(
            e.action,
            chartroom_audit::Action::Read | chartroom_audit::Action::Update
        )
        && e.patient_id.is_some()
        && !e.event.starts_with(APPOINTMENT_EVENTS)
    {
        chart_burst(conn, settings, rec)?;
    }
    if e.outcome == Outcome::Success
        && e.patient_id.is_some()
        && e.actor_id.is_some()
        && settings.outside_clinic_hours(e.time)
        && !fired_since(
            conn,
            rule::OUTSIDE_HOURS,
            user,
            None,
            e.time - chrono::Duration::hours(1),
        )?
    {
        let summary = format!("{user} opened patient data outside clinic hours");
        raise_about(
            conn,
            rule::OUTSIDE_HOURS,
            e,
            e.patient_id.as_deref(),
            &summary,
        )?;
    }
    Ok(())
}

/// One user reading many different patients' data within the window: every
/// patient-scoped read or change counts (a chart, a note or vitals list, a history, each
/// patient of an export, an update, which answers with the record), so looping over list
/// or update verbs goes past the rule no more than opening charts.
fn chart_burst(conn: &Connection, settings: &Settings, rec: &Record) -> Result<(), CoreError> {
    let e = &rec.entry;
    let user = e.actor.as_str();
    let window_start =
        e.time - chrono::Duration::minutes(i64::from(settings.alert_chart_burst_minutes));
    // Stops counting at the threshold, so a busy window costs no more than a quiet one.
    let distinct: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM (SELECT DISTINCT patient_id FROM audit_log
              WHERE actor = ?1 AND time >= ?2 AND patient_id IS NOT NULL
                AND action IN ('R', 'U') AND outcome = 'success' AND event NOT LIKE 'appointment.%'
              LIMIT ?3)",
        )?
        .query_row(
            params![
                user,
                format_time(window_start),
                settings.alert_chart_burst_count
            ],
            |r| r.get(0),
        )?;
    if distinct >= i64::from(settings.alert_chart_burst_count)
        && !fired_since(conn, rule::CHART_BURST, user, None, window_start)?
    {
        let summary = format!(
            "{user} read the data of {distinct} different patients within {} minutes",
            settings.alert_chart_burst_minutes
        );
        raise_about(conn, rule::CHART_BURST, e, None, &summary)?;
    }
    Ok(())
}

/// Alerts, newest first; only the unacknowledged ones unless `all`.
pub(crate) fn list(conn: &Connection, all: bool) -> Result<Vec<Alert>, CoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, rule, time, actor, patient_id, summary, audit_seq, acknowledged_at, acknowledged_by, ack_note
           FROM alerts WHERE ?1 OR acknowledged_at IS NULL ORDER BY id DESC",
    )?;
    let rows = stmt.query_map([all], |r| {
        let time: String = r.get(2)?;
        Ok(Alert {
            id: r.get(0)?,
            rule: r.get(1)?,
            entries_since: time.clone(),
            entries_until: time.clone(),
            time,
            user: r.get(3)?,
            patient_id: r.get(4)?,
            mrn: None,
            patient_name: None,
            summary: r.get(5)?,
            audit_seq: u64::try_from(r.get::<_, i64>(6)?).unwrap_or(0),
            acknowledged_at: r.get(7)?,
            acknowledged_by: r.get(8)?,
            note: r.get(9)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Fills in each alert's MRN, its patient's name where the reader may see it, and the
/// stretch of the trail it is about.
fn name_patients(
    tx: &Connection,
    ctx: &crate::session::Ctx<'_>,
    alerts: &mut [Alert],
) -> Result<(), CoreError> {
    let reads_names = ctx
        .actor
        .role
        .is_some_and(|r| r.allows(Permission::ReadDemographics));
    let mut seen: std::collections::HashMap<i64, (String, Option<String>)> =
        std::collections::HashMap::new();
    for alert in alerts.iter_mut() {
        if let Some(at) = chartroom_audit::parse_time(&alert.time) {
            let (since, until) = entries_window(&alert.rule, at, ctx.settings);
            alert.entries_since = format_time(since);
            alert.entries_until = format_time(until);
        }
        let Some(id) = alert
            .patient_id
            .as_deref()
            .and_then(|p| p.parse::<i64>().ok())
        else {
            continue;
        };
        let (mrn, name) = match seen.entry(id) {
            std::collections::hash_map::Entry::Occupied(known) => known.get().clone(),
            std::collections::hash_map::Entry::Vacant(slot) => {
                let Some(patient) = crate::chart::patient::find(tx, id)? else {
                    continue;
                };
                let may_see = reads_names
                    && crate::access::chart_access(tx, &patient, ctx.actor, ctx.now)?.is_some();
                let d = &patient.demographics;
                // A restricted chart whose key this session lacks reads as its placeholder.
                let sealed_shut =
                    d.family == crate::chart::patient::RESTRICTED_FAMILY && d.given.is_empty();
                let name = (may_see && !sealed_shut).then(|| format!("{}, {}", d.family, d.given));
                slot.insert((patient.mrn, name)).clone()
            }
        };
        alert.mrn = Some(mrn);
        alert.patient_name = name;
    }
    Ok(())
}

impl crate::Session {
    /// Alerts, newest first: the open ones, or all with `all`.
    pub fn alerts(&mut self, all: bool) -> Result<Vec<Alert>, CoreError> {
        self.run(
            Permission::ManageAlerts,
            Op::read("alert.list"),
            false,
            |tx, op, ctx| {
                let mut list = list(tx, all)?;
                op.detail = Some(format!("{} alerts", list.len()));
                name_patients(tx, ctx, &mut list)?;
                Ok(list)
            },
        )
        .map(|mut list| {
            let keys = crate::keys::lock(&self.keys);
            for alert in &mut list {
                alert.summary = keys.reveal(&alert.summary);
            }
            list
        })
    }

    /// Acknowledges an alert with a note saying what was found. Nobody acknowledges an
    /// alert about themselves: a colleague (the admin for the auditor, the auditor for the
    /// admin) reviews it.
    pub fn acknowledge_alert(&mut self, id: i64, note: &str) -> Result<(), CoreError> {
        let note = note.trim().to_owned();
        if note.is_empty() || note.chars().count() > 2000 {
            return Err(CoreError::InvalidInput(
                "Acknowledging an alert needs a note (up to 2000 characters) saying what was found."
                    .into(),
            ));
        }
        let op = Op::update("alert.acknowledge").object("Alert", id);
        let about: Option<Option<String>> = self
            .connection()?
            .prepare_cached("SELECT actor FROM alerts WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?;
        let me = self.signed_in().user;
        if self.can(Permission::ManageAlerts)
            && about.flatten().is_some_and(|a| {
                chartroom_vault::account_key(&a) == chartroom_vault::account_key(&me)
            })
        {
            self.touch()?;
            return Err(self.deny(
                op,
                crate::Denial::NotYours(
                    "This alert is about you: a colleague who reviews alerts acknowledges it.",
                ),
            ));
        }
        self.run(
            Permission::ManageAlerts,
            op,
            false,
            |tx, _, ctx| {
                let state: Option<Option<String>> = tx
                    .query_row("SELECT acknowledged_at FROM alerts WHERE id = ?1", [id], |r| r.get(0))
                    .optional()?;
                match state {
                    None => Err(CoreError::NotFound(format!("There is no alert {id}."))),
                    Some(Some(_)) => Err(CoreError::Conflict(format!("Alert {id} is already acknowledged."))),
                    Some(None) => {
                        tx.execute(
                            "UPDATE alerts SET acknowledged_at = ?1, acknowledged_by = ?2, ack_note = ?3 WHERE id = ?4",
                            params![format_time(ctx.now), ctx.actor.name, note, id],
                        )?;
                        Ok(())
                    }
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate_tests::Clinic;
    use crate::{mrn_for, AuditFilter, PatientNamed, Role};

    #[test]
    fn alerts_name_the_patient_by_mrn_and_by_name_only_for_who_may_see_it() {
        let clinic = Clinic::new();
        // Nurse Lee opens Grace Lee's chart (same family name), then breaks the glass into
        // the restricted chart of patient 2.
        let mut nurse = clinic.as_role(Role::Nurse);
        nurse.open_chart(1).expect("opens");
        nurse
            .break_glass(2, "Collapsed at the front desk")
            .expect("breaks the glass");
        nurse.open_chart(2).expect("opens through the grant");
        nurse.lock().expect("locks");
        let (grace, mateo) = (mrn_for(1), mrn_for(2));

        let find = |alerts: &[Alert], rule_name: &str| {
            alerts
                .iter()
                .find(|a| a.rule == rule_name)
                .cloned()
                .unwrap_or_else(|| panic!("a {rule_name} alert in {alerts:?}"))
        };
        let mut auditor = clinic.as_role(Role::Auditor);
        let seen = auditor.alerts(true).expect("lists");
        let glass = find(&seen, rule::BREAK_GLASS);
        assert_eq!(glass.mrn.as_deref(), Some(mateo.as_str()));
        assert_eq!(
            glass.patient_name, None,
            "the auditor reads no demographics"
        );
        assert!(
            glass
                .summary
                .contains(&format!("restricted patient MRN {mateo}:")),
            "{}",
            glass.summary
        );
        let family = find(&seen, rule::SAME_FAMILY_NAME);
        assert_eq!(family.mrn.as_deref(), Some(grace.as_str()));
        assert_eq!(family.patient_name, None);
        assert!(family.summary.contains(&format!("patient MRN {grace},")));
        for a in &seen {
            assert!(!a.summary.contains("patient 1") && !a.summary.contains("patient 2"));
            assert!(!format!("{a:?}").contains("Castellanos"));
        }

        // The break-the-glass alert's entries: what the nurse did in that chart during the
        // grant's time box.
        assert_eq!(glass.entries_since, glass.time);
        let since = chartroom_audit::parse_time(&glass.entries_since).expect("a time");
        let until = chartroom_audit::parse_time(&glass.entries_until).expect("a time");
        assert_eq!(until - since, chrono::Duration::minutes(60));
        let (lines, _) = auditor
            .audit_lines(&AuditFilter {
                user: glass.user.clone(),
                named: Some(PatientNamed::MrnOrName(mateo.clone())),
                since: Some(since),
                until: Some(until),
                ..AuditFilter::default()
            })
            .expect("reads");
        let events: Vec<&str> = lines
            .iter()
            .map(|l| l.record.entry.event.as_str())
            .collect();
        assert_eq!(events, ["break_glass", "chart.read"]);
        auditor.lock().expect("locks");

        // The administrator reads demographics: the open chart's name, not the restricted one's.
        let mut admin = clinic.as_role(Role::Admin);
        let seen = admin.alerts(true).expect("lists");
        assert_eq!(
            find(&seen, rule::SAME_FAMILY_NAME).patient_name.as_deref(),
            Some("Lee, Grace")
        );
        let glass = find(&seen, rule::BREAK_GLASS);
        assert_eq!(glass.mrn.as_deref(), Some(mateo.as_str()));
        assert_eq!(
            glass.patient_name, None,
            "not on the restricted chart's team"
        );
        admin.lock().expect("locks");
    }

    #[test]
    fn a_burst_alert_points_at_the_window_it_counted() {
        let settings = Settings::default();
        let at = chrono::Utc::now();
        let (since, until) = entries_window(rule::CHART_BURST, at, &settings);
        assert_eq!(
            at - since,
            chrono::Duration::minutes(i64::from(settings.alert_chart_burst_minutes))
        );
        assert!(until > at);
        let (since, until) = entries_window(rule::OUTSIDE_HOURS, at, &settings);
        assert_eq!((since, until - at), (at, chrono::Duration::hours(1)));
    }
}
