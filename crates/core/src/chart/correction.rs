//! "Entered in error": a list item (a vital sign, problem, allergy, medication or
//! immunization) found to be a mistake stays in the record, marked, with who marked it, when
//! and why. The change that marks it, the one writer of `entered_in_error` (the only code
//! that writes that table), how list reads pick the mark up, and the operations on the
//! Session.
//!
//! The item's own row is left as it was: the mark is a row of its own, keyed by the item's
//! global id. Readers treat a marked item as not there for clinical decisions (the latest
//! value, BMI, flags and plots, the allergy check, the allergy banner) and show it struck out.

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::change::{self, apply, Applied, Change, RecordId, Stamp, Table};
use super::vitals::Vital;
use super::Item;
use crate::audit::Op;
use crate::ids::*;
use crate::roles::Permission;
use crate::{CoreError, Session};

/// The kind of list item a mark names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Corrected {
    Observation,
    Problem,
    Allergy,
    Medication,
    Immunization,
}

impl Corrected {
    pub fn as_str(self) -> &'static str {
        match self {
            Corrected::Observation => "observation",
            Corrected::Problem => "problem",
            Corrected::Allergy => "allergy",
            Corrected::Medication => "medication",
            Corrected::Immunization => "immunization",
        }
    }

    fn table(self) -> Table {
        match self {
            Corrected::Observation => Table::Observations,
            Corrected::Problem => Table::Problems,
            Corrected::Allergy => Table::Allergies,
            Corrected::Medication => Table::Medications,
            Corrected::Immunization => Table::Immunizations,
        }
    }

    fn item(self) -> Item {
        match self {
            Corrected::Observation => Item::Observation,
            Corrected::Problem => Item::Problem,
            Corrected::Allergy => Item::Allergy,
            Corrected::Medication => Item::Medication,
            Corrected::Immunization => Item::Immunization,
        }
    }

    /// Who may mark it: whoever may record it.
    fn permission(self) -> Permission {
        match self {
            Corrected::Observation => Permission::RecordVitals,
            Corrected::Problem | Corrected::Medication => Permission::WriteClinical,
            Corrected::Allergy => Permission::RecordAllergies,
            Corrected::Immunization => Permission::RecordImmunizations,
        }
    }

    fn event(self) -> &'static str {
        match self {
            Corrected::Observation => "vitals.entered_in_error",
            Corrected::Problem => "problem.entered_in_error",
            Corrected::Allergy => "allergy.entered_in_error",
            Corrected::Medication => "medication.entered_in_error",
            Corrected::Immunization => "immunization.entered_in_error",
        }
    }
}

/// The status a marked item reads with (FHIR's word for it).
pub const ENTERED_IN_ERROR: &str = "entered-in-error";

/// Who marked an item entered in error, when, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Correction {
    pub reason: String,
    pub marked_by: String,
    pub marked_at: String,
}

/// The SQL expression, for a list read of `$table` (items of kind `$item`), that gives the
/// item's mark as JSON (`{"reason", "by", "at"}`) or NULL when it has none.
macro_rules! correction_column {
    ($table:literal, $item:literal) => {
        concat!(
            "(SELECT json_object('reason', ",
            $crate::keys::open_field!("entered_in_error", "reason"),
            ", 'by', entered_in_error.marked_by, 'at', entered_in_error.marked_at) FROM entered_in_error WHERE entered_in_error.item = '",
            $item,
            "' AND entered_in_error.item_id = ",
            $table,
            ".id)"
        )
    };
}
pub(crate) use correction_column;

/// The SQL condition "this `$table` row (of kind `$item`) is not marked entered in error".
macro_rules! not_in_error {
    ($table:literal, $item:literal) => {
        concat!(
            "NOT EXISTS (SELECT 1 FROM entered_in_error WHERE entered_in_error.item = '",
            $item,
            "' AND entered_in_error.item_id = ",
            $table,
            ".id)"
        )
    };
}
pub(crate) use not_in_error;

/// Reads the column [`correction_column!`] gives.
pub(crate) fn read_correction(json: Option<String>) -> Option<Correction> {
    #[derive(Deserialize)]
    struct Stored {
        reason: Option<String>,
        by: String,
        at: String,
    }
    let stored: Stored = serde_json::from_str(&json?).ok()?;
    Some(Correction {
        reason: stored
            .reason
            .unwrap_or_else(|| crate::audit_text::WITHHELD.into()),
        marked_by: stored.by,
        marked_at: stored.at,
    })
}

/// Items marked entered in error together: version 1 of [`Change::EnteredInError`]. A vital
/// sign is marked with what was taken or derived with it (the other half of a blood
/// pressure, the BMI of a weight or height), each named here: a change states facts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnteredInError {
    pub item: Corrected,
    pub records: Vec<RecordId>,
    pub reason: String,
    pub marked: Stamp,
}

/// Checks the reason for a mark: said in words, at most 500 characters.
pub fn check_reason(reason: &str) -> Result<String, CoreError> {
    let reason = super::input::bounded_text("reason it was entered in error", reason, 500)?;
    if reason.is_empty() {
        return Err(CoreError::InvalidInput(
            "Say why it was entered in error (for example \"wrong patient\" or \"pounds typed as kilograms\").".into(),
        ));
    }
    Ok(reason)
}

/// Whether the item of `kind` at local row `row` is marked entered in error.
pub(crate) fn is_marked(conn: &Connection, kind: Corrected, row: i64) -> Result<bool, CoreError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM entered_in_error WHERE item = ?1 AND item_id = ?2")?
        .query_row(params![kind.as_str(), row], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Refuses a change to an item marked entered in error (resolving, stopping).
pub(crate) fn refuse_if_marked(
    conn: &Connection,
    kind: Corrected,
    row: i64,
) -> Result<(), CoreError> {
    if is_marked(conn, kind, row)? {
        return Err(CoreError::Conflict(format!(
            "{} {row} is marked entered in error; it cannot be changed.",
            super::capitalise(kind.item().name())
        )));
    }
    Ok(())
}

/// The one writer of `entered_in_error`.
pub(super) fn apply_entered_in_error(
    conn: &Connection,
    c: &EnteredInError,
) -> Result<Applied, CoreError> {
    let reason = check_reason(&c.reason)?;
    change::same("reason it was entered in error", &reason, &c.reason)?;
    if c.records.is_empty() {
        return Err(CoreError::InvalidInput(
            "Name at least one item to mark entered in error.".into(),
        ));
    }
    let table = c.item.table();
    let mut patient: Option<(i64, RecordId)> = None;
    let mut rows = Vec::with_capacity(c.records.len());
    for record in &c.records {
        let row = change::row_of(conn, table, *record)?;
        let owner: (i64, RecordId) = conn
            .prepare_cached(&format!(
                "SELECT p.id, p.uuid FROM {} t JOIN patients p ON p.id = t.patient_id WHERE t.id = ?1",
                table.name()
            ))?
            .query_row([row], |r| Ok((r.get(0)?, r.get(1)?)))?;
        match patient {
            None => patient = Some(owner),
            Some(p) if p.0 != owner.0 => {
                return Err(CoreError::InvalidInput(
                    "Items marked together must belong to one patient.".into(),
                ))
            }
            Some(_) => {}
        }
        let legacy_mark = c.item == Corrected::Immunization
            && conn
                .prepare_cached(
                    "SELECT status = 'entered_in_error' FROM immunizations WHERE id = ?1",
                )?
                .query_row([row], |r| r.get::<_, bool>(0))?;
        if legacy_mark || is_marked(conn, c.item, row)? {
            return Err(CoreError::Conflict(format!(
                "{} {row} is already marked entered in error.",
                super::capitalise(c.item.item().name())
            )));
        }
        conn.prepare_cached(
            "INSERT INTO entered_in_error (uuid, patient_id, item, item_id, reason, marked_by, marked_at)
             VALUES (?1, ?2, ?3, ?4, cr_seal(?5, 'entered_in_error', 'reason', ?1, ?6), ?7, ?8)",
        )?
        .execute(params![
            record,
            owner.0,
            c.item.as_str(),
            row,
            c.reason,
            owner.1,
            c.marked.by,
            c.marked.time()
        ])?;
        rows.push(row);
    }
    Ok(Applied(rows))
}

/// The observations that go with observation `row` when it is marked: itself, the other
/// half of its blood pressure, and the BMI of its set when it is a weight or a height. A set
/// is written in one go, in order (systolic just before diastolic, the BMI last), so its
/// members are the nearest rows of the same patient, time taken and recording.
fn observation_companions(conn: &Connection, row: i64) -> Result<Vec<i64>, CoreError> {
    let (code, patient, effective, recorded_at): (String, i64, String, String) = conn
        .prepare_cached(
            "SELECT code, patient_id, effective, recorded_at FROM observations WHERE id = ?1",
        )?
        .query_row([row], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
    let with = match Vital::from_loinc(&code) {
        Some(Vital::Systolic) => Some((Vital::Diastolic, "id = ?5 + 1")),
        Some(Vital::Diastolic) => Some((Vital::Systolic, "id = ?5 - 1")),
        Some(Vital::Weight | Vital::Height) => Some((Vital::Bmi, "id > ?5")),
        _ => None,
    };
    let mut rows = vec![row];
    if let Some((vital, place)) = with {
        let found: Option<i64> = conn
            .prepare_cached(&format!(
                "SELECT id FROM observations WHERE patient_id = ?1 AND effective = ?2 AND recorded_at = ?3 AND code = ?4 AND {place} AND {} ORDER BY id LIMIT 1",
                not_in_error!("observations", "observation")
            ))?
            .query_row(
                params![patient, effective, recorded_at, vital.loinc(), row],
                |r| r.get(0),
            )
            .optional()?;
        rows.extend(found);
    }
    Ok(rows)
}

impl Session {
    /// Marks an item entered in error, with the reason (audited; the entry names the item,
    /// never the reason), and reads back what was marked, in the same transaction.
    fn mark_entered_in_error<T>(
        &mut self,
        kind: Corrected,
        id: i64,
        reason: &str,
        read: impl FnOnce(&Connection, &[i64]) -> Result<T, CoreError>,
    ) -> Result<T, CoreError> {
        let reason = check_reason(reason)?;
        let item = kind.item();
        let patient_id = self.owner(item, id)?;
        self.run(
            kind.permission(),
            Op::update(kind.event())
                .patient(patient_id)
                .object(item.resource(), id),
            true,
            |tx, op, ctx| {
                let rows = match kind {
                    Corrected::Observation => observation_companions(tx, id)?,
                    _ => vec![id],
                };
                let records = rows
                    .iter()
                    .map(|r| change::id_of(tx, kind.table(), *r))
                    .collect::<Result<Vec<_>, _>>()?;
                let marked = apply(
                    tx,
                    &Change::EnteredInError(EnteredInError {
                        item: kind,
                        records,
                        reason,
                        marked: ctx.stamp(),
                    }),
                )?
                .0;
                op.detail = Some(format!(
                    "{} marked entered in error (the reason is sealed with the record)",
                    marked.len()
                ));
                read(tx, &marked)
            },
        )
    }

    /// Marks a vital sign entered in error, with what was taken or derived with it (the
    /// other half of a blood pressure, the BMI of a weight or height). Returns what was
    /// marked.
    pub fn vitals_entered_in_error(
        &mut self,
        observation_id: impl Into<ObservationId>,
        reason: &str,
    ) -> Result<Vec<super::vitals::Observation>, CoreError> {
        let id = observation_id.into().get();
        self.mark_entered_in_error(Corrected::Observation, id, reason, |c, rows| {
            super::vitals::observations_by_id(c, rows)
        })
    }

    pub fn problem_entered_in_error(
        &mut self,
        problem_id: impl Into<ProblemId>,
        reason: &str,
    ) -> Result<super::problem::Problem, CoreError> {
        let id = problem_id.into().get();
        self.mark_entered_in_error(Corrected::Problem, id, reason, |c, _| {
            super::problem::problem(c, id)
        })
    }

    pub fn allergy_entered_in_error(
        &mut self,
        allergy_id: impl Into<AllergyId>,
        reason: &str,
    ) -> Result<super::allergy::Allergy, CoreError> {
        let id = allergy_id.into().get();
        self.mark_entered_in_error(Corrected::Allergy, id, reason, |c, _| {
            super::allergy::allergy(c, id)
        })
    }

    pub fn medication_entered_in_error(
        &mut self,
        medication_id: impl Into<MedicationId>,
        reason: &str,
    ) -> Result<super::medication::Medication, CoreError> {
        let id = medication_id.into().get();
        self.mark_entered_in_error(Corrected::Medication, id, reason, |c, _| {
            super::medication::medication(c, id)
        })
    }

    pub fn immunization_entered_in_error(
        &mut self,
        immunization_id: impl Into<ImmunizationId>,
        reason: &str,
    ) -> Result<super::immunization::Immunization, CoreError> {
        let id = immunization_id.into().get();
        self.mark_entered_in_error(Corrected::Immunization, id, reason, |c, _| {
            super::immunization::immunization(c, id)
        })
    }
}
