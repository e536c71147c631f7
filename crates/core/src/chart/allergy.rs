//! Allergies and the allergy status (unknown, no known allergies, recorded); the changes
//! that record, resolve and deny them, their one writer (the only code that writes
//! `allergies`), and the operations on the Session.

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::change::{self, same, Applied, Change, RecordId, Stamp, Table};
use super::input::{bounded_text, optional_text, parse_choice};
use super::patient::{self, AllergyState, Patient};
use super::Item;
use crate::audit::Op;
use crate::ids::*;
use crate::keys::open_field;
use crate::roles::Permission;
use crate::{CoreError, Session};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Mild,
    Moderate,
    Severe,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum AllergyCategory {
    Food,
    Medication,
    Environment,
    Biologic,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Mild => "mild",
            Severity::Moderate => "moderate",
            Severity::Severe => "severe",
        }
    }

    pub fn parse(text: &str) -> Result<Severity, CoreError> {
        parse_choice(
            "severity",
            text,
            &[
                ("mild", Severity::Mild),
                ("moderate", Severity::Moderate),
                ("severe", Severity::Severe),
            ],
        )
    }
}

impl AllergyCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            AllergyCategory::Food => "food",
            AllergyCategory::Medication => "medication",
            AllergyCategory::Environment => "environment",
            AllergyCategory::Biologic => "biologic",
        }
    }

    pub fn parse(text: &str) -> Result<AllergyCategory, CoreError> {
        parse_choice(
            "allergy category",
            text,
            &[
                ("food", AllergyCategory::Food),
                ("medication", AllergyCategory::Medication),
                ("environment", AllergyCategory::Environment),
                ("biologic", AllergyCategory::Biologic),
            ],
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAllergy {
    pub substance: String,
    pub reaction: Option<String>,
    pub severity: Option<Severity>,
    pub category: Option<AllergyCategory>,
}

impl NewAllergy {
    pub fn new(
        substance: &str,
        reaction: Option<&str>,
        severity: Option<&str>,
        category: Option<&str>,
    ) -> Result<NewAllergy, CoreError> {
        let substance = bounded_text("substance", substance, 200)?;
        let folded = crate::chart::patient::fold(&substance);
        if matches!(
            folded.as_str(),
            "nka" | "nkda" | "none" | "no known allergies"
        ) {
            return Err(CoreError::InvalidInput(
                "\"No known allergies\" is recorded with its own command (allergy none), not as a substance.".into(),
            ));
        }
        Ok(NewAllergy {
            substance,
            reaction: optional_text("reaction", reaction, 200)?,
            severity: severity.map(Severity::parse).transpose()?,
            category: category.map(AllergyCategory::parse).transpose()?,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Allergy {
    pub id: AllergyId,
    pub patient_id: PatientId,
    pub substance: String,
    pub reaction: Option<String>,
    pub severity: Option<Severity>,
    pub category: Option<AllergyCategory>,
    /// `active` or `resolved`.
    pub status: String,
    pub recorded_by: String,
    pub recorded_at: String,
    pub updated_by: String,
    pub updated_at: String,
    /// Why it was recorded although the patient takes a matching medication.
    pub allergy_override: Option<String>,
    /// Who marked it entered in error, when and why (its status then reads
    /// `entered-in-error`).
    #[cfg_attr(feature = "ts", ts(optional))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correction: Option<super::correction::Correction>,
}

const ALLERGY_COLUMNS: &str = concat!(
    "id, patient_id, ",
    open_field!("allergies", "substance"),
    ", ",
    open_field!("allergies", "reaction"),
    ", ",
    open_field!("allergies", "severity"),
    ", ",
    open_field!("allergies", "category"),
    ", status, recorded_by, recorded_at, updated_by, updated_at, ",
    open_field!("allergies", "allergy_override"),
    ", ",
    super::correction::correction_column!("allergies", "allergy")
);

fn row_to_allergy(r: &rusqlite::Row<'_>) -> rusqlite::Result<Allergy> {
    let severity: Option<String> = r.get(4)?;
    let category: Option<String> = r.get(5)?;
    Ok(Allergy {
        id: r.get(0)?,
        patient_id: r.get(1)?,
        substance: r.get(2)?,
        reaction: r.get(3)?,
        severity: severity.and_then(|s| Severity::parse(&s).ok()),
        category: category.and_then(|c| AllergyCategory::parse(&c).ok()),
        status: r.get(6)?,
        recorded_by: r.get(7)?,
        recorded_at: r.get(8)?,
        updated_by: r.get(9)?,
        updated_at: r.get(10)?,
        allergy_override: r.get(11)?,
        correction: None,
    })
    .and_then(|mut x| {
        x.correction = super::correction::read_correction(r.get(12)?);
        if x.correction.is_some() {
            x.status = super::correction::ENTERED_IN_ERROR.into();
        }
        Ok(x)
    })
}

pub(crate) fn allergy(conn: &Connection, id: i64) -> Result<Allergy, CoreError> {
    conn.prepare_cached(&format!(
        "SELECT {ALLERGY_COLUMNS} FROM allergies WHERE id = ?1"
    ))?
    .query_row([id], row_to_allergy)
    .optional()?
    .ok_or_else(|| CoreError::NotFound(format!("There is no allergy {id}.")))
}

pub(crate) fn allergies(conn: &Connection, patient_id: i64) -> Result<Vec<Allergy>, CoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ALLERGY_COLUMNS} FROM allergies WHERE patient_id = ?1 ORDER BY status = 'active' DESC, recorded_at DESC, id DESC"
    ))?;
    let rows = stmt.query_map([patient_id], row_to_allergy)?;
    Ok(rows.collect::<Result<_, _>>()?)
}
/// A patient's allergies with the status that says what an empty list means.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct AllergyList {
    /// `unknown` (never asked), `no_known_allergies` (asked: none) or `recorded`.
    pub allergy_status: String,
    pub allergies: Vec<Allergy>,
}

/// An allergy recorded: version 1 of [`Change::AllergyRecorded`]. It also makes the
/// patient's allergy status "recorded", as of the latest allergy recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllergyRecorded {
    pub allergy: RecordId,
    pub patient: RecordId,
    #[serde(flatten)]
    pub item: NewAllergy,
    pub recorded: Stamp,
    /// Why it was recorded although the patient takes a matching medication (absent from
    /// earlier encodings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allergy_override: Option<String>,
}

/// An allergy that no longer applies: version 1 of [`Change::AllergyResolved`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllergyResolved {
    pub allergy: RecordId,
    pub resolved: Stamp,
}

/// "No known allergies", asked and stated: version 1 of
/// [`Change::NoKnownAllergiesRecorded`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoKnownAllergiesRecorded {
    pub patient: RecordId,
    pub recorded: Stamp,
}

/// The one writer of `allergies`, for a new allergy.
pub(super) fn apply_recorded(conn: &Connection, c: &AllergyRecorded) -> Result<Applied, CoreError> {
    let a = &c.item;
    let checked = NewAllergy::new(
        &a.substance,
        a.reaction.as_deref(),
        a.severity.map(Severity::as_str),
        a.category.map(AllergyCategory::as_str),
    )?;
    same("allergy", &checked, a)?;
    let patient = change::row_of(conn, Table::Patients, c.patient)?;
    conn.prepare_cached(
        "INSERT INTO allergies (uuid, patient_id, substance, reaction, severity, category, status, recorded_by, recorded_at, updated_by, updated_at)
         VALUES (?1, ?2, cr_seal(?3, 'allergies', 'substance', ?1, ?9),
                 cr_seal(?4, 'allergies', 'reaction', ?1, ?9), cr_seal(?5, 'allergies', 'severity', ?1, ?9),
                 cr_seal(?6, 'allergies', 'category', ?1, ?9), 'active', ?7, ?8, ?7, ?8)",
    )?
    .execute(params![
        c.allergy,
        patient,
        a.substance,
        a.reaction,
        a.severity.map(Severity::as_str),
        a.category.map(AllergyCategory::as_str),
        c.recorded.by,
        c.recorded.time(),
        c.patient
    ])?;
    let id = conn.last_insert_rowid();
    if let Some(why) = &c.allergy_override {
        same(
            "reason for going ahead",
            &bounded_text("reason for going ahead", why, 500)?,
            why,
        )?;
        conn.prepare_cached(
            "UPDATE allergies SET allergy_override = cr_seal(?2, 'allergies', 'allergy_override', uuid, ?3) WHERE id = ?1",
        )?
        .execute(params![id, why, c.patient])?;
    }
    patient::set_allergy_state(conn, patient, AllergyState::Recorded, &c.recorded)?;
    Ok(Applied::one(id))
}

/// The one writer of `allergies`, for a resolution.
pub(super) fn apply_resolved(conn: &Connection, c: &AllergyResolved) -> Result<Applied, CoreError> {
    let id = change::row_of(conn, Table::Allergies, c.allergy)?;
    super::correction::refuse_if_marked(conn, super::correction::Corrected::Allergy, id)?;
    let status: String = conn
        .prepare_cached("SELECT status FROM allergies WHERE id = ?1")?
        .query_row([id], |r| r.get(0))?;
    if status == "resolved" {
        return Err(CoreError::Conflict(format!(
            "Allergy {id} is already resolved."
        )));
    }
    conn.prepare_cached(
        "UPDATE allergies SET status = 'resolved', updated_by = ?1, updated_at = ?2 WHERE id = ?3",
    )?
    .execute(params![c.resolved.by, c.resolved.time(), id])?;
    Ok(Applied::one(id))
}

/// "No known allergies" on the patient's record, refused while an allergy is active.
pub(super) fn apply_none_known(
    conn: &Connection,
    c: &NoKnownAllergiesRecorded,
) -> Result<Applied, CoreError> {
    let patient = change::row_of(conn, Table::Patients, c.patient)?;
    let active = active_count(conn, patient)?;
    if active > 0 {
        return Err(CoreError::Conflict(format!(
            "The patient has {active} active allerg{}; resolve them before recording \"no known allergies\".",
            if active == 1 { "y" } else { "ies" }
        )));
    }
    patient::set_allergy_state(conn, patient, AllergyState::NoKnownAllergies, &c.recorded)?;
    Ok(Applied::one(patient))
}

fn active_count(conn: &Connection, patient: i64) -> Result<i64, CoreError> {
    Ok(conn
        .prepare_cached(concat!(
            "SELECT count(*) FROM allergies WHERE patient_id = ?1 AND status = 'active' AND ",
            super::correction::not_in_error!("allergies", "allergy")
        ))?
        .query_row([patient], |r| r.get(0))?)
}

impl Session {
    /// Records an allergy, unless the patient takes a medication it matches by name or drug
    /// class: then `allergy_conflict` names it, and nothing is written
    /// ([`Session::add_allergy_despite_medication`] records it with a reason).
    pub fn add_allergy(
        &mut self,
        patient_id: impl Into<PatientId>,
        allergy: &NewAllergy,
    ) -> Result<Allergy, CoreError> {
        self.record_allergy(patient_id.into().get(), allergy, None)
    }

    /// Records an allergy that matches a current medication, with the reason for going
    /// ahead (recorded, sealed, with the allergy).
    pub fn add_allergy_despite_medication(
        &mut self,
        patient_id: impl Into<PatientId>,
        allergy: &NewAllergy,
        reason: &str,
    ) -> Result<Allergy, CoreError> {
        let reason = bounded_text("reason for going ahead", reason, 500)?;
        self.record_allergy(patient_id.into().get(), allergy, Some(reason))
    }

    fn record_allergy(
        &mut self,
        patient_id: i64,
        allergy: &NewAllergy,
        reason: Option<String>,
    ) -> Result<Allergy, CoreError> {
        self.run(
            Permission::RecordAllergies,
            Op::create("allergy.create").patient(patient_id),
            true,
            |tx, op, ctx| {
                let wanted = patient::fold(&allergy.substance);
                if allergies(tx, patient_id)?
                    .iter()
                    .any(|a| a.status == "active" && patient::fold(&a.substance) == wanted)
                {
                    return Err(CoreError::Conflict(format!(
                        "An active allergy to {} is already recorded.",
                        allergy.substance
                    )));
                }
                let conflicts: Vec<(String, super::allergy_check::Conflict)> =
                    super::medication::medications(tx, patient_id)?
                        .into_iter()
                        .filter(|m| m.status == "active")
                        .filter_map(|m| {
                            super::allergy_check::conflict(
                                &allergy.substance,
                                allergy.severity,
                                &m.name,
                            )
                            .map(|c| (m.name, c))
                        })
                        .collect();
                let overridden = match (&reason, conflicts.is_empty()) {
                    (_, true) => None,
                    (None, false) => {
                        let drugs = conflicts
                            .iter()
                            .map(|(m, _)| m.as_str())
                            .collect::<Vec<_>>()
                            .join(", ");
                        let each: Vec<_> = conflicts.iter().map(|(_, c)| c.clone()).collect();
                        return Err(CoreError::AllergyConflict(format!(
                            "The patient takes {drugs}. {}",
                            super::allergy_check::message(&drugs, &each)
                        )));
                    }
                    (Some(why), false) => Some(why.clone()),
                };
                let recorded = ctx.stamp();
                let c = Change::AllergyRecorded(AllergyRecorded {
                    allergy: RecordId::new(recorded.at),
                    patient: ctx.patient()?.uuid,
                    item: allergy.clone(),
                    recorded,
                    allergy_override: overridden.clone(),
                });
                let row = change::apply(tx, &c)?.row();
                op.object = Some(("AllergyIntolerance", row.to_string()));
                if overridden.is_some() {
                    op.detail =
                        Some("recorded despite a current medication's allergy check".into());
                }
                self::allergy(tx, row)
            },
        )
    }

    /// Records that the patient has no known allergies: a statement, not an empty list.
    pub fn record_no_known_allergies(
        &mut self,
        patient_id: impl Into<PatientId>,
    ) -> Result<Patient, CoreError> {
        let patient_id = patient_id.into().get();
        self.run(
            Permission::RecordAllergies,
            Op::update("allergy.none").patient(patient_id),
            true,
            |tx, _, ctx| {
                let none = NoKnownAllergiesRecorded {
                    patient: ctx.patient()?.uuid,
                    recorded: ctx.stamp(),
                };
                change::apply(tx, &Change::NoKnownAllergiesRecorded(none))?;
                patient::get(tx, patient_id)
            },
        )
    }

    /// The allergy status (`unknown`, `no_known_allergies`, `recorded`) and the list.
    pub fn allergies(
        &mut self,
        patient_id: impl Into<PatientId>,
    ) -> Result<AllergyList, CoreError> {
        let patient_id = patient_id.into().get();
        self.run(
            Permission::ReadClinical,
            Op::read("allergy.read").patient(patient_id),
            true,
            |tx, _, ctx| {
                let status = ctx
                    .patient()?
                    .allergy_status
                    .clone()
                    .unwrap_or_else(|| "unknown".into());
                Ok(AllergyList {
                    allergy_status: status,
                    allergies: allergies(tx, patient_id)?,
                })
            },
        )
    }

    /// Marks an allergy resolved (no longer applies).
    pub fn resolve_allergy(
        &mut self,
        allergy_id: impl Into<AllergyId>,
    ) -> Result<Allergy, CoreError> {
        let allergy_id = allergy_id.into().get();
        self.resolve(
            Item::Allergy,
            Permission::RecordAllergies,
            allergy_id,
            |id, resolved| {
                Change::AllergyResolved(AllergyResolved {
                    allergy: id,
                    resolved,
                })
            },
            self::allergy,
        )
    }
}
