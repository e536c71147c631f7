//! Medications the patient takes; the changes that start and stop one, their one writer
//! (the only code that writes `medications`), and the operations on the Session.

use chrono::NaiveDate;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::change::{self, apply, same, Applied, Change, RecordId, Stamp, Table};
use super::input::{bounded_text, optional_text, parse_choice, parse_past_date};
use super::Item;
use crate::audit::Op;
use crate::ids::*;
use crate::keys::open_field;
use crate::roles::Permission;
use crate::{CoreError, Session};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Route {
    Oral,
    Sublingual,
    Inhaled,
    Nasal,
    Topical,
    Transdermal,
    Ophthalmic,
    Otic,
    Rectal,
    Vaginal,
    Subcutaneous,
    Intramuscular,
    Intravenous,
}

impl Route {
    pub const CHOICES: [(&'static str, Route); 13] = [
        ("oral", Route::Oral),
        ("sublingual", Route::Sublingual),
        ("inhaled", Route::Inhaled),
        ("nasal", Route::Nasal),
        ("topical", Route::Topical),
        ("transdermal", Route::Transdermal),
        ("ophthalmic", Route::Ophthalmic),
        ("otic", Route::Otic),
        ("rectal", Route::Rectal),
        ("vaginal", Route::Vaginal),
        ("subcutaneous", Route::Subcutaneous),
        ("intramuscular", Route::Intramuscular),
        ("intravenous", Route::Intravenous),
    ];

    pub fn parse(text: &str) -> Result<Route, CoreError> {
        let t = text.trim().to_ascii_lowercase();
        let t = match t.as_str() {
            "po" | "by mouth" => "oral",
            "sc" | "subcut" | "sq" => "subcutaneous",
            "im" => "intramuscular",
            "iv" => "intravenous",
            "inhalation" => "inhaled",
            other => other,
        }
        .to_owned();
        parse_choice("route", &t, &Self::CHOICES)
    }

    pub fn as_str(self) -> &'static str {
        Self::CHOICES
            .iter()
            .find(|(_, r)| *r == self)
            .map_or("oral", |(n, _)| n)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewMedication {
    pub name: String,
    pub dose: Option<String>,
    pub route: Option<Route>,
    pub frequency: Option<String>,
    pub start: Option<NaiveDate>,
}

impl NewMedication {
    pub fn new(
        name: &str,
        dose: Option<&str>,
        route: Option<&str>,
        frequency: Option<&str>,
        start: Option<&str>,
        today: NaiveDate,
    ) -> Result<NewMedication, CoreError> {
        Ok(NewMedication {
            name: bounded_text("medication name", name, 200)?,
            dose: optional_text("dose", dose, 100)?,
            route: route.map(Route::parse).transpose()?,
            frequency: optional_text("frequency", frequency, 100)?,
            start: start
                .map(|s| parse_past_date("start date", s, today))
                .transpose()?,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Medication {
    pub id: MedicationId,
    pub patient_id: PatientId,
    pub name: String,
    pub dose: Option<String>,
    pub route: Option<Route>,
    pub frequency: Option<String>,
    pub start: Option<String>,
    pub stop: Option<String>,
    /// `active` or `stopped`.
    pub status: String,
    pub recorded_by: String,
    pub recorded_at: String,
    pub updated_by: String,
    pub updated_at: String,
    /// Why it was saved despite a matching active allergy.
    pub allergy_override: Option<String>,
    /// Who marked it entered in error, when and why (its status then reads
    /// `entered-in-error`).
    #[cfg_attr(feature = "ts", ts(optional))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correction: Option<super::correction::Correction>,
}

const MEDICATION_COLUMNS: &str = concat!(
    "id, patient_id, ",
    open_field!("medications", "name"),
    ", ",
    open_field!("medications", "dose"),
    ", ",
    open_field!("medications", "route"),
    ", ",
    open_field!("medications", "frequency"),
    ", start, stop, status, recorded_by, recorded_at, updated_by, updated_at, ",
    open_field!("medications", "allergy_override"),
    ", ",
    super::correction::correction_column!("medications", "medication")
);

fn row_to_medication(r: &rusqlite::Row<'_>) -> rusqlite::Result<Medication> {
    let route: Option<String> = r.get(4)?;
    Ok(Medication {
        id: r.get(0)?,
        patient_id: r.get(1)?,
        name: r.get(2)?,
        dose: r.get(3)?,
        route: route.and_then(|s| Route::parse(&s).ok()),
        frequency: r.get(5)?,
        start: r.get(6)?,
        stop: r.get(7)?,
        status: r.get(8)?,
        recorded_by: r.get(9)?,
        recorded_at: r.get(10)?,
        updated_by: r.get(11)?,
        updated_at: r.get(12)?,
        allergy_override: r.get(13)?,
        correction: None,
    })
    .and_then(|mut x| {
        x.correction = super::correction::read_correction(r.get(14)?);
        if x.correction.is_some() {
            x.status = super::correction::ENTERED_IN_ERROR.into();
        }
        Ok(x)
    })
}

pub(crate) fn medication(conn: &Connection, id: i64) -> Result<Medication, CoreError> {
    conn.prepare_cached(&format!(
        "SELECT {MEDICATION_COLUMNS} FROM medications WHERE id = ?1"
    ))?
    .query_row([id], row_to_medication)
    .optional()?
    .ok_or_else(|| CoreError::NotFound(format!("There is no medication {id}.")))
}

pub(crate) fn medications(
    conn: &Connection,
    patient_id: i64,
) -> Result<Vec<Medication>, CoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MEDICATION_COLUMNS} FROM medications WHERE patient_id = ?1 ORDER BY status = 'active' DESC, recorded_at DESC, id DESC"
    ))?;
    let rows = stmt.query_map([patient_id], row_to_medication)?;
    Ok(rows.collect::<Result<_, _>>()?)
}
/// A medication started: version 1 of [`Change::MedicationStarted`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MedicationStarted {
    pub medication: RecordId,
    pub patient: RecordId,
    #[serde(flatten)]
    pub item: NewMedication,
    pub recorded: Stamp,
    /// Why it was saved despite a matching active allergy (absent from earlier encodings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allergy_override: Option<String>,
}

/// A medication stopped: version 1 of [`Change::MedicationStopped`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MedicationStopped {
    pub medication: RecordId,
    pub on: Option<NaiveDate>,
    pub stopped: Stamp,
}

/// The one writer of `medications`, for a new medication.
pub(super) fn apply_started(
    conn: &Connection,
    c: &MedicationStarted,
) -> Result<Applied, CoreError> {
    let m = &c.item;
    let start = m.start.map(|d| d.format("%Y-%m-%d").to_string());
    let checked = NewMedication::new(
        &m.name,
        m.dose.as_deref(),
        m.route.map(Route::as_str),
        m.frequency.as_deref(),
        start.as_deref(),
        c.recorded.at.date_naive(),
    )?;
    same("medication", &checked, m)?;
    let patient = change::row_of(conn, Table::Patients, c.patient)?;
    conn.prepare_cached(
        "INSERT INTO medications (uuid, patient_id, name, dose, route, frequency, start, status, recorded_by, recorded_at, updated_by, updated_at)
         VALUES (?1, ?2, cr_seal(?3, 'medications', 'name', ?1, ?10), cr_seal(?4, 'medications', 'dose', ?1, ?10),
                 cr_seal(?5, 'medications', 'route', ?1, ?10), cr_seal(?6, 'medications', 'frequency', ?1, ?10),
                 ?7, 'active', ?8, ?9, ?8, ?9)",
    )?
    .execute(params![
        c.medication,
        patient,
        m.name,
        m.dose,
        m.route.map(Route::as_str),
        m.frequency,
        start,
        c.recorded.by,
        c.recorded.time(),
        c.patient
    ])?;
    let row = conn.last_insert_rowid();
    if let Some(why) = &c.allergy_override {
        change::same(
            "reason for going ahead",
            &super::input::bounded_text("reason for going ahead", why, 500)?,
            why,
        )?;
        conn.prepare_cached(
            "UPDATE medications SET allergy_override = cr_seal(?2, 'medications', 'allergy_override', uuid, ?3) WHERE id = ?1",
        )?
        .execute(params![row, why, c.patient])?;
    }
    Ok(Applied::one(row))
}

/// The one writer of `medications`, for a stop.
pub(super) fn apply_stopped(
    conn: &Connection,
    c: &MedicationStopped,
) -> Result<Applied, CoreError> {
    let id = change::row_of(conn, Table::Medications, c.medication)?;
    super::correction::refuse_if_marked(conn, super::correction::Corrected::Medication, id)?;
    // Status and start only: they are in clear, so a stop needs no key that opens the name.
    let (status, start): (String, Option<String>) = conn
        .prepare_cached("SELECT status, start FROM medications WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    if status != "active" {
        return Err(CoreError::Conflict(format!(
            "Medication {id} is already stopped."
        )));
    }
    let start = start
        .as_deref()
        .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok());
    if let (Some(on), Some(start)) = (c.on, start) {
        if on < start {
            return Err(CoreError::InvalidInput(
                "A medication cannot stop before it started.".into(),
            ));
        }
    }
    conn.prepare_cached(
        "UPDATE medications SET status = 'stopped', stop = ?1, updated_by = ?2, updated_at = ?3 WHERE id = ?4",
    )?
    .execute(params![
        c.on.map(|d| d.format("%Y-%m-%d").to_string()),
        c.stopped.by,
        c.stopped.time(),
        id
    ])?;
    Ok(Applied::one(id))
}

impl Session {
    /// Adds a medication, unless it matches one of the patient's active allergies by name
    /// or drug class: then `allergy_conflict` names the allergy, its severity and the class,
    /// and nothing is written ([`Session::add_medication_despite_allergy`] saves it with a
    /// reason).
    pub fn add_medication(
        &mut self,
        patient_id: impl Into<PatientId>,
        medication: &NewMedication,
    ) -> Result<Medication, CoreError> {
        self.start_medication(patient_id.into().get(), medication, None)
    }

    /// Adds a medication that matches an active allergy, with the prescriber's reason for
    /// going ahead: recorded (sealed) with the medication and on the audit entry as an
    /// override (the reason's words stay in the chart).
    pub fn add_medication_despite_allergy(
        &mut self,
        patient_id: impl Into<PatientId>,
        medication: &NewMedication,
        reason: &str,
    ) -> Result<Medication, CoreError> {
        let reason = super::input::bounded_text("reason for going ahead", reason, 500)?;
        self.start_medication(patient_id.into().get(), medication, Some(reason))
    }

    fn start_medication(
        &mut self,
        patient_id: i64,
        medication: &NewMedication,
        reason: Option<String>,
    ) -> Result<Medication, CoreError> {
        self.run(
            Permission::WriteClinical,
            Op::create("medication.create").patient(patient_id),
            true,
            |tx, op, ctx| {
                let allergies = super::allergy::allergies(tx, patient_id)?;
                let conflicts =
                    super::allergy_check::against_allergies(&allergies, &medication.name);
                let overridden = match (&reason, conflicts.is_empty()) {
                    (_, true) => None,
                    (None, false) => {
                        return Err(CoreError::AllergyConflict(super::allergy_check::message(
                            &medication.name,
                            &conflicts,
                        )))
                    }
                    (Some(why), false) => Some(why.clone()),
                };
                let recorded = ctx.stamp();
                let c = Change::MedicationStarted(MedicationStarted {
                    medication: RecordId::new(recorded.at),
                    patient: ctx.patient()?.uuid,
                    item: medication.clone(),
                    recorded,
                    allergy_override: overridden.clone(),
                });
                let row = apply(tx, &c)?.row();
                op.object = Some(("MedicationStatement", row.to_string()));
                if overridden.is_some() {
                    op.detail = Some(format!(
                        "saved despite an allergy check: {}",
                        conflicts
                            .iter()
                            .map(|c| c.class.clone().unwrap_or_else(|| "same drug".into()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                self::medication(tx, row)
            },
        )
    }

    pub fn medications(
        &mut self,
        patient_id: impl Into<PatientId>,
    ) -> Result<Vec<Medication>, CoreError> {
        let patient_id = patient_id.into().get();
        self.list_items("medication.read", patient_id, medications)
    }

    /// Stops a medication (on `date`, default today).
    pub fn stop_medication(
        &mut self,
        medication_id: impl Into<MedicationId>,
        date: Option<NaiveDate>,
    ) -> Result<Medication, CoreError> {
        let medication_id = medication_id.into().get();
        self.resolve(
            Item::Medication,
            Permission::WriteClinical,
            medication_id,
            |id, stopped| {
                Change::MedicationStopped(MedicationStopped {
                    medication: id,
                    on: Some(date.unwrap_or_else(|| stopped.at.date_naive())),
                    stopped,
                })
            },
            self::medication,
        )
    }
}
