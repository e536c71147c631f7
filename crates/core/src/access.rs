//! Who may open which chart: care teams, break-the-glass grants, and the access a session
//! has to a patient's chart. The change that puts someone on a care team or takes them off
//! it, its one writer (the only code that writes `care_team`), and the operations.

use chartroom_audit::{format_time, Outcome};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::audit::{self, ActorRef, Op};
use crate::chart::change::{self, apply, Applied, Change, RecordId, Stamp, Table};
use crate::chart::patient::Patient;
use crate::ids::*;
use crate::roles::{Permission, Role};
use crate::users::find_user;
use crate::{CoreError, Denial, Session};

/// How a session may open a patient's chart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "via", rename_all = "snake_case")]
pub enum ChartAccess {
    /// The patient is not restricted.
    Open,
    /// The user is on the patient's care team.
    CareTeam,
    /// Through a break-the-glass grant, until `expires_at`.
    BreakGlass { reason: String, expires_at: String },
}

pub(crate) fn on_care_team(
    conn: &Connection,
    patient: impl Into<i64>,
    user: i64,
) -> Result<bool, CoreError> {
    let patient: i64 = patient.into();
    let row: Option<(Option<Vec<u8>>, String)> = conn
        .prepare_cached(
            "SELECT p.uuid, u.name FROM care_team c JOIN patients p ON p.id = c.patient_id
               JOIN users u ON u.id = c.user_id WHERE c.patient_id = ?1 AND c.user_id = ?2",
        )?
        .query_row(params![patient, user], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((uuid, name)) = row else {
        return Ok(false);
    };
    // The row must be one the security log states too: a row added outside Chartroom while
    // a session is open (after its unlock undid the others) opens nothing.
    let started: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM security_log)")?
        .query_row([], |r| r.get(0))?;
    if !started {
        return Ok(true);
    }
    Ok(match uuid {
        Some(uuid) => crate::security_log::team_allows(conn, &uuid, &name)? == Some(true),
        None => false,
    })
}

pub(crate) fn active_grant(
    conn: &Connection,
    patient: impl Into<i64>,
    user: i64,
    now: DateTime<Utc>,
) -> Result<Option<(String, String)>, CoreError> {
    Ok(conn
        .prepare_cached(
            // A grant counts only with the audit entry that made it (the same user and
            // patient), and a time box no longer than the longest setting allows
            // (a row planted in access_grants with the database key opens nothing).
            "SELECT g.reason, g.expires_at FROM access_grants g
               JOIN audit_log a ON a.seq = g.audit_seq
              WHERE g.patient_id = ?1 AND g.user_id = ?2 AND g.expires_at > ?3
                AND a.event = 'break_glass' AND a.outcome = 'success' AND a.actor_id = g.user_id
                AND a.patient_id = CAST(g.patient_id AS TEXT)
                AND julianday(g.expires_at) - julianday(a.time) <= ?4 / 1440.0
              ORDER BY g.expires_at DESC LIMIT 1",
        )?
        .query_row(
            params![
                patient.into(),
                user,
                chartroom_audit::format_time(now),
                f64::from(crate::settings::MAX_BREAK_GLASS_MINUTES) + 0.02
            ],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}

pub(crate) fn care_team(conn: &Connection, patient: i64) -> Result<Vec<String>, CoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT u.name FROM care_team c JOIN users u ON u.id = c.user_id WHERE c.patient_id = ?1 ORDER BY u.name",
    )?;
    let rows = stmt.query_map([patient], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The members of a restricted chart's care team as the security log states them (a row
/// added to the table outside Chartroom is left out): whom the chart's key is sealed to.
pub(crate) fn verified_team(conn: &Connection, patient: i64) -> Result<Vec<String>, CoreError> {
    let rows: Vec<(i64, String)> = conn
        .prepare_cached(
            "SELECT u.id, u.name FROM care_team c JOIN users u ON u.id = c.user_id
              WHERE c.patient_id = ?1 ORDER BY u.name",
        )?
        .query_map([patient], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for (id, name) in rows {
        if on_care_team(conn, patient, id)? {
            out.push(name);
        }
    }
    Ok(out)
}

/// Every restricted chart and its care team, for the start of the security log: (patient
/// uuid in hex, member names).
pub(crate) fn restricted_teams(conn: &Connection) -> Result<Vec<(String, Vec<String>)>, CoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, uuid FROM patients WHERE restricted = 1 AND uuid IS NOT NULL ORDER BY id",
    )?;
    let rows: Vec<(i64, Vec<u8>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for (id, uuid) in rows {
        out.push((
            crate::security_log::patient_hex(&uuid),
            care_team(conn, id)?,
        ));
    }
    Ok(out)
}

/// Makes the care teams of restricted charts what the security log says: a member added or
/// removed outside Chartroom is undone. Returns what it undid, in words.
pub(crate) fn restore_care_teams(
    conn: &Connection,
    state: &crate::security_log::State,
    at: &str,
) -> Result<Vec<String>, CoreError> {
    let mut undone = Vec::new();
    for (patient, team) in &state.restricted {
        let Ok(uuid) = hex::decode(patient) else {
            continue;
        };
        let id: Option<(i64, String)> = conn
            .prepare_cached("SELECT id, mrn FROM patients WHERE uuid = ?1")?
            .query_row([&uuid], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((id, mrn)) = id else { continue };
        let members: Vec<(i64, String)> = {
            let mut stmt = conn.prepare_cached(
                "SELECT u.id, u.name FROM care_team c JOIN users u ON u.id = c.user_id WHERE c.patient_id = ?1",
            )?;
            let rows = stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        for (uid, name) in &members {
            if !team.contains(&chartroom_vault::account_key(name)) {
                conn.execute(
                    "DELETE FROM care_team WHERE patient_id = ?1 AND user_id = ?2",
                    params![id, uid],
                )?;
                undone.push(format!(
                    "{name}, put on the care team of MRN {mrn} outside Chartroom, was taken off"
                ));
            }
        }
        for member in team {
            if members
                .iter()
                .any(|(_, n)| chartroom_vault::account_key(n) == *member)
            {
                continue;
            }
            let uid: Option<i64> = conn
                .prepare_cached("SELECT id FROM users WHERE name = ?1")?
                .query_row([member], |r| r.get(0))
                .optional()?;
            if let Some(uid) = uid {
                conn.execute(
                    "INSERT OR IGNORE INTO care_team (patient_id, user_id, added_at, added_by) VALUES (?1, ?2, ?3, 'security log')",
                    params![id, uid, at],
                )?;
                undone.push(format!("{member}, taken off the care team of MRN {mrn} outside Chartroom, was put back"));
            }
        }
    }
    Ok(undone)
}

/// A break-the-glass grant.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Grant {
    pub patient_id: PatientId,
    pub reason: String,
    pub granted_at: String,
    pub expires_at: String,
    pub minutes: u32,
}

/// How (if at all) `actor` may open `patient`'s chart.
pub(crate) fn chart_access(
    conn: &Connection,
    patient: &Patient,
    actor: &ActorRef,
    now: DateTime<Utc>,
) -> Result<Option<ChartAccess>, CoreError> {
    let Some(uid) = actor.id else {
        return Ok((!patient.restricted).then_some(ChartAccess::Open));
    };
    if !patient.restricted {
        // An open chart: the care team only labels how the user came in.
        let member = conn
            .prepare_cached("SELECT 1 FROM care_team WHERE patient_id = ?1 AND user_id = ?2")?
            .query_row(params![patient.id, uid], |_| Ok(()))
            .optional()?
            .is_some();
        return Ok(Some(if member {
            ChartAccess::CareTeam
        } else {
            ChartAccess::Open
        }));
    }
    if on_care_team(conn, patient.id, uid)? {
        return Ok(Some(ChartAccess::CareTeam));
    }
    // A grant counts only for a role that may break the glass: a row planted in
    // access_grants for anyone else opens nothing.
    if !actor.role.is_some_and(|r| r.allows(Permission::BreakGlass)) {
        return Ok(None);
    }
    Ok(active_grant(conn, patient.id, uid, now)?
        .map(|(reason, expires_at)| ChartAccess::BreakGlass { reason, expires_at }))
}

/// Someone joins a patient's care team or leaves it: version 1 of
/// [`Change::CareTeamChanged`]. The user is named by their local id until users, too, have
/// global ids.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CareTeamChanged {
    pub patient: RecordId,
    pub user_id: i64,
    /// Joined (true) or left (false).
    pub member: bool,
    pub changed: Stamp,
}

impl CareTeamChanged {
    pub(crate) fn joined(patient: RecordId, user_id: i64, changed: Stamp) -> CareTeamChanged {
        CareTeamChanged {
            patient,
            user_id,
            member: true,
            changed,
        }
    }
}

/// The one writer of `care_team`. Joining twice or leaving a team one is not on changes
/// nothing.
pub(crate) fn apply_care_team(
    conn: &Connection,
    c: &CareTeamChanged,
) -> Result<Applied, CoreError> {
    let patient = change::row_of(conn, Table::Patients, c.patient)?;
    let known: Option<i64> = conn
        .prepare_cached("SELECT 1 FROM users WHERE id = ?1")?
        .query_row([c.user_id], |r| r.get(0))
        .optional()?;
    if known.is_none() {
        return Err(CoreError::NotFound(format!(
            "There is no user {}.",
            c.user_id
        )));
    }
    let changed = if c.member {
        conn.prepare_cached(
            "INSERT OR IGNORE INTO care_team (patient_id, user_id, added_at, added_by) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![patient, c.user_id, c.changed.time(), c.changed.by])?
    } else {
        conn.prepare_cached("DELETE FROM care_team WHERE patient_id = ?1 AND user_id = ?2")?
            .execute(params![patient, c.user_id])?
    };
    // The care team of a restricted chart is who may open it: signed into the security log.
    let restricted: bool = conn
        .prepare_cached("SELECT restricted FROM patients WHERE id = ?1")?
        .query_row([patient], |r| r.get(0))?;
    if changed > 0 && restricted {
        let name: String = conn
            .prepare_cached("SELECT name FROM users WHERE id = ?1")?
            .query_row([c.user_id], |r| r.get(0))?;
        crate::security_log::append(
            conn,
            &c.changed.time(),
            crate::security_log::Fact::CareTeam {
                patient: crate::security_log::patient_hex(c.patient.as_bytes()),
                user: name.clone(),
                member: c.member,
            },
        )?;
        // The chart's key follows its team: sealed to who joins; a new key, and the chart
        // sealed anew, when someone leaves (what they kept opens nothing written after).
        let at = c.changed.time();
        if c.member {
            crate::patient_keys::grant_for(conn, patient, c.patient.as_bytes(), Some(&name), &at)?;
        } else {
            let members = verified_team(conn, patient)?;
            crate::patient_keys::make_for(conn, patient, c.patient.as_bytes(), &members, &at)?;
            crate::chart::patient::reseal_restricted(conn, patient, &c.patient)?;
            crate::patient_keys::prune_earlier(conn, patient)?;
        }
    }
    Ok(Applied::one(patient))
}

impl Session {
    /// The staff who may be on a care team (enabled physicians, nurses and front desk), by
    /// name with their role: for whoever registers patients or changes care teams.
    pub fn care_team_choices(&mut self) -> Result<Vec<(String, Role)>, CoreError> {
        let permission = if self.can(Permission::ManageCareTeam) {
            Permission::ManageCareTeam
        } else {
            Permission::RegisterPatient
        };
        self.run(
            permission,
            Op::read("care_team.choices"),
            false,
            |tx, _, _| {
                Ok(crate::users::user_rows(tx)?
                    .into_iter()
                    .filter(|(_, _, enabled)| *enabled)
                    .filter_map(|(name, role, _)| {
                        let role: Role = role.parse().ok()?;
                        matches!(role, Role::Physician | Role::Nurse | Role::FrontDesk)
                            .then_some((name, role))
                    })
                    .collect())
            },
        )
    }

    /// Puts a user on a patient's care team, which opens a restricted chart to them. The
    /// care team of a restricted chart is changed only by someone who may open it (its care
    /// team, or a break-the-glass grant), never by adding oneself, and every change to it
    /// raises an alert.
    pub fn add_to_care_team(
        &mut self,
        patient_id: impl Into<PatientId>,
        user: &str,
    ) -> Result<(), CoreError> {
        let patient_id = patient_id.into().get();
        let op = Op::update("care_team.add").patient(patient_id);
        let me = self.signed_in().user;
        if self.can(Permission::ManageCareTeam)
            && chartroom_vault::account_key(&me) == chartroom_vault::account_key(user)
        {
            self.touch()?;
            return Err(self.deny(
                op,
                Denial::NotYours(
                    "Nobody adds themselves to a care team: ask someone on it to add you, or break the glass in an emergency.",
                ),
            ));
        }
        self.run(Permission::ManageCareTeam, op, true, |tx, op, ctx| {
            let (uid, u) = find_user(tx, user)?
                .ok_or_else(|| CoreError::NotFound(format!("There is no user named {user}.")))?;
            if u.disabled {
                return Err(CoreError::Conflict(format!("{} is disabled.", u.name)));
            }
            op.detail = Some(format!("added {}", u.name));
            let joined = CareTeamChanged::joined(ctx.patient()?.uuid, uid, ctx.stamp());
            apply(tx, &Change::CareTeamChanged(joined))?;
            Ok(())
        })
    }

    /// Takes a user off a patient's care team; for a restricted chart, only someone who may
    /// open it, and the change raises an alert.
    pub fn remove_from_care_team(
        &mut self,
        patient_id: impl Into<PatientId>,
        user: &str,
    ) -> Result<(), CoreError> {
        let patient_id = patient_id.into().get();
        self.run(
            Permission::ManageCareTeam,
            Op::update("care_team.remove").patient(patient_id),
            true,
            |tx, op, ctx| {
                let (uid, u) = find_user(tx, user)?.ok_or_else(|| {
                    CoreError::NotFound(format!("There is no user named {user}."))
                })?;
                op.detail = Some(format!("removed {}", u.name));
                let left = CareTeamChanged {
                    patient: ctx.patient()?.uuid,
                    user_id: uid,
                    member: false,
                    changed: ctx.stamp(),
                };
                apply(tx, &Change::CareTeamChanged(left))?;
                Ok(())
            },
        )
    }

    /// Breaks the glass: opens a restricted chart for the clinic's time box (default 60
    /// minutes), with a stated reason. Audited as an emergency override and raised as an alert.
    pub fn break_glass(
        &mut self,
        patient_id: impl Into<PatientId>,
        reason: &str,
    ) -> Result<Grant, CoreError> {
        let patient_id = patient_id.into().get();
        let reason = reason.trim().to_owned();
        let user_id = self.actor_user_id();
        let mut op = Op::execute("break_glass").patient(patient_id);
        op.purpose = Some("ETREAT".into());
        if reason.is_empty() || reason.chars().count() > 500 || reason.chars().any(char::is_control)
        {
            self.touch()?;
            if self.can(Permission::BreakGlass) {
                let mut refused = op.outcome(Outcome::Denied);
                refused.detail = Some("no reason given".into());
                let _ = self.record(&refused);
            }
            return Err(CoreError::InvalidInput(
                "Breaking the glass needs a reason (up to 500 characters), which is recorded and reported."
                    .into(),
            ));
        }
        // The reason is the audit trail's free text: sealed to the auditors and
        // administrators, in the grant and in every entry that quotes it.
        let sealed = if self.can(Permission::BreakGlass) {
            crate::keys::lock(&self.keys).seal_text(&reason)?
        } else {
            String::new()
        };
        op.reason = (!sealed.is_empty()).then(|| sealed.clone());
        self.run(Permission::BreakGlass, op, false, |tx, op, ctx| {
            let patient = ctx.patient()?;
            op.purpose = Some("ETREAT".into());
            if !patient.restricted {
                return Err(CoreError::Conflict(
                    "This chart is not restricted; open it directly.".into(),
                ));
            }
            let uid = user_id.ok_or_else(|| {
                CoreError::Conflict("Break the glass as yourself, not with the recovery key.".into())
            })?;
            if on_care_team(tx, patient_id, uid)? {
                return Err(CoreError::Conflict(
                    "You are on this patient's care team; open the chart directly.".into(),
                ));
            }
            let minutes = ctx.settings.break_glass_minutes;
            let expires = ctx.now + chrono::Duration::minutes(i64::from(minutes));
            let (head, _) = audit::head(tx)?;
            tx.execute(
                "INSERT INTO access_grants (user_id, patient_id, reason, granted_at, expires_at, audit_seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![uid, patient_id, sealed, format_time(ctx.now), format_time(expires), i64::try_from(head + 1).unwrap_or(i64::MAX)],
            )?;
            op.detail = Some(format!("{minutes} minutes"));
            Ok(Grant {
                patient_id: PatientId(patient_id),
                reason: reason.clone(),
                granted_at: format_time(ctx.now),
                expires_at: format_time(expires),
                minutes,
            })
        })
    }
}
