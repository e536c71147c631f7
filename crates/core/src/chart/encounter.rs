//! Encounters: one contact with the patient (office, telephone, telehealth, home), the
//! change that opens one, its one writer, and its operations on the Session.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::change::{self, apply, same, Applied, Change, RecordId, Stamp, Table};
use super::input::{bounded_text, parse_choice, parse_time_input};
use crate::audit::Op;
use crate::ids::*;
use crate::keys::open_field;
use crate::roles::Permission;
use crate::{CoreError, Session};

/// What kind of contact an encounter was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum EncounterKind {
    Office,
    Telephone,
    Telehealth,
    Home,
}

impl EncounterKind {
    pub const CHOICES: [(&'static str, EncounterKind); 4] = [
        ("office", EncounterKind::Office),
        ("telephone", EncounterKind::Telephone),
        ("telehealth", EncounterKind::Telehealth),
        ("home", EncounterKind::Home),
    ];

    pub fn parse(text: &str) -> Result<EncounterKind, CoreError> {
        let t = text.trim().to_ascii_lowercase();
        let t = t.trim_end_matches(" visit").trim_end_matches("_visit");
        parse_choice("encounter type", t, &Self::CHOICES)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EncounterKind::Office => "office",
            EncounterKind::Telephone => "telephone",
            EncounterKind::Telehealth => "telehealth",
            EncounterKind::Home => "home",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            EncounterKind::Office => "Office visit",
            EncounterKind::Telephone => "Telephone",
            EncounterKind::Telehealth => "Telehealth",
            EncounterKind::Home => "Home visit",
        }
    }
}

/// A new encounter, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEncounter {
    pub kind: EncounterKind,
    pub start: DateTime<Utc>,
    pub reason: String,
}

impl NewEncounter {
    /// `start` defaults to now.
    pub fn new(
        kind: &str,
        start: Option<&str>,
        reason: &str,
        now: DateTime<Utc>,
        zone: &crate::ClinicZone,
    ) -> Result<NewEncounter, CoreError> {
        Ok(NewEncounter {
            kind: EncounterKind::parse(kind)?,
            start: match start {
                Some(s) => parse_time_input("encounter time", s, now, zone)?,
                None => chartroom_audit::truncate_to_micros(now),
            },
            reason: bounded_text("reason for the encounter", reason, 500)?,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Encounter {
    pub id: EncounterId,
    pub patient_id: PatientId,
    pub start: String,
    pub kind: EncounterKind,
    pub clinician: String,
    pub reason: String,
    pub created_at: String,
    pub created_by: String,
}

const ENCOUNTER_COLUMNS: &str = concat!(
    "id, patient_id, start, kind, clinician, ",
    open_field!("encounters", "reason"),
    ", created_at, created_by"
);

fn row_to_encounter(r: &rusqlite::Row<'_>) -> rusqlite::Result<Encounter> {
    let kind: String = r.get(3)?;
    Ok(Encounter {
        id: r.get(0)?,
        patient_id: r.get(1)?,
        start: r.get(2)?,
        kind: EncounterKind::parse(&kind).unwrap_or(EncounterKind::Office),
        clinician: r.get(4)?,
        reason: r.get(5)?,
        created_at: r.get(6)?,
        created_by: r.get(7)?,
    })
}

pub(crate) fn encounter(conn: &Connection, id: i64) -> Result<Encounter, CoreError> {
    conn.prepare_cached(&format!(
        "SELECT {ENCOUNTER_COLUMNS} FROM encounters WHERE id = ?1"
    ))?
    .query_row([id], row_to_encounter)
    .optional()?
    .ok_or_else(|| CoreError::NotFound(format!("There is no encounter {id}.")))
}

pub(crate) fn encounters(conn: &Connection, patient_id: i64) -> Result<Vec<Encounter>, CoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ENCOUNTER_COLUMNS} FROM encounters WHERE patient_id = ?1 ORDER BY start DESC, id DESC"
    ))?;
    let rows = stmt.query_map([patient_id], row_to_encounter)?;
    Ok(rows.collect::<Result<_, _>>()?)
}
/// An encounter opened: version 1 of [`Change::EncounterOpened`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncounterOpened {
    pub encounter: RecordId,
    pub patient: RecordId,
    pub kind: EncounterKind,
    #[serde(with = "change::micros_time")]
    pub start: DateTime<Utc>,
    pub reason: String,
    /// The clinician's local user id, when they are a user of this vault.
    pub clinician_id: Option<i64>,
    pub clinician: String,
    pub opened: Stamp,
}

impl EncounterOpened {
    pub(crate) fn new(
        patient: RecordId,
        e: &NewEncounter,
        clinician_id: Option<i64>,
        clinician: &str,
        opened: Stamp,
    ) -> EncounterOpened {
        EncounterOpened {
            encounter: RecordId::new(opened.at),
            patient,
            kind: e.kind,
            start: e.start,
            reason: e.reason.clone(),
            clinician_id,
            clinician: clinician.to_owned(),
            opened,
        }
    }

    fn check(&self) -> Result<(), CoreError> {
        let checked = NewEncounter::new(
            self.kind.as_str(),
            Some(&chartroom_audit::format_time(self.start)),
            &self.reason,
            self.opened.at,
            &crate::ClinicZone::utc(),
        )?;
        same("encounter", &checked.start, &self.start)?;
        same("reason for the encounter", &checked.reason, &self.reason)?;
        let clinician = bounded_text("clinician", &self.clinician, 200)?;
        same("clinician", &clinician, &self.clinician)
    }
}

/// The one writer of `encounters`.
pub(super) fn apply_opened(conn: &Connection, c: &EncounterOpened) -> Result<Applied, CoreError> {
    c.check()?;
    let patient = change::row_of(conn, Table::Patients, c.patient)?;
    conn.prepare_cached(
        "INSERT INTO encounters (uuid, patient_id, start, kind, clinician_id, clinician, reason, created_at, created_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, cr_seal(?7, 'encounters', 'reason', ?1, ?10), ?8, ?9)",
    )?
    .execute(params![
        c.encounter,
        patient,
        chartroom_audit::format_time(c.start),
        c.kind.as_str(),
        c.clinician_id,
        c.clinician,
        c.reason,
        c.opened.time(),
        c.opened.by,
        c.patient,
    ])?;
    Ok(Applied::one(conn.last_insert_rowid()))
}

impl Session {
    /// Opens an encounter with the signed-in user as the clinician.
    pub fn add_encounter(
        &mut self,
        patient_id: impl Into<PatientId>,
        encounter: &NewEncounter,
    ) -> Result<Encounter, CoreError> {
        let patient_id = patient_id.into().get();
        let user_id = self.actor_user_id();
        self.run(
            Permission::RecordEncounter,
            Op::create("encounter.create").patient(patient_id),
            true,
            |tx, op, ctx| {
                let opened = EncounterOpened::new(
                    ctx.patient()?.uuid,
                    encounter,
                    user_id,
                    &ctx.actor.name,
                    ctx.stamp(),
                );
                let e = self::encounter(tx, apply(tx, &Change::EncounterOpened(opened))?.row())?;
                op.object = Some(("Encounter", e.id.to_string()));
                op.detail = Some(e.kind.as_str().to_owned());
                Ok(e)
            },
        )
    }

    /// A patient's encounters, newest first.
    pub fn encounters(
        &mut self,
        patient_id: impl Into<PatientId>,
    ) -> Result<Vec<Encounter>, CoreError> {
        let patient_id = patient_id.into().get();
        self.run(
            Permission::ReadClinical,
            Op::read("encounter.read").patient(patient_id),
            true,
            |tx, _, _| encounters(tx, patient_id),
        )
    }
}
