//! Immunizations given (CVX-coded, with lot and site); the changes that record one and mark
//! it entered in error, their one writer (the only code that writes `immunizations`), and
//! the operations on the Session.

use chrono::NaiveDate;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::change::{self, same, Applied, Change, RecordId, Stamp, Table};
use super::input::{bounded_text, optional_text, parse_choice, parse_past_date};
use super::Item;
use crate::ids::*;
use crate::keys::open_field;
use crate::roles::Permission;
use crate::{CoreError, Session};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Site {
    LeftArm,
    RightArm,
    LeftThigh,
    RightThigh,
    Oral,
    Nasal,
}

impl Site {
    pub const CHOICES: [(&'static str, Site); 6] = [
        ("left_arm", Site::LeftArm),
        ("right_arm", Site::RightArm),
        ("left_thigh", Site::LeftThigh),
        ("right_thigh", Site::RightThigh),
        ("oral", Site::Oral),
        ("nasal", Site::Nasal),
    ];

    pub fn parse(text: &str) -> Result<Site, CoreError> {
        parse_choice("site", text, &Self::CHOICES)
    }

    pub fn as_str(self) -> &'static str {
        Self::CHOICES
            .iter()
            .find(|(_, s)| *s == self)
            .map_or("left_arm", |(n, _)| n)
    }

    /// HL7 v3 ActSite code and display, as FHIR Immunization.site uses them.
    pub fn act_site(self) -> (&'static str, &'static str) {
        match self {
            Site::LeftArm => ("LA", "left arm"),
            Site::RightArm => ("RA", "right arm"),
            Site::LeftThigh => ("LT", "left thigh"),
            Site::RightThigh => ("RT", "right thigh"),
            Site::Oral => ("MOUTH", "mouth"),
            Site::Nasal => ("NARIS", "nostril"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewImmunization {
    pub vaccine: String,
    /// CDC CVX code (1 to 3 digits).
    pub cvx: String,
    pub date: NaiveDate,
    pub lot: Option<String>,
    pub site: Option<Site>,
}

impl NewImmunization {
    pub fn new(
        vaccine: &str,
        cvx: &str,
        date: &str,
        lot: Option<&str>,
        site: Option<&str>,
        today: NaiveDate,
    ) -> Result<NewImmunization, CoreError> {
        let cvx = cvx.trim();
        if cvx.is_empty() || cvx.len() > 3 || !cvx.chars().all(|c| c.is_ascii_digit()) {
            return Err(CoreError::InvalidInput(format!(
                "\"{}\" is not a CVX code (1 to 3 digits, e.g. 141 for influenza).",
                cvx.chars().take(10).collect::<String>()
            )));
        }
        let lot = optional_text("lot number", lot, 40)?;
        if let Some(l) = &lot {
            if !l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(CoreError::InvalidInput(
                    "A lot number is letters, digits and dashes.".into(),
                ));
            }
        }
        Ok(NewImmunization {
            vaccine: bounded_text("vaccine", vaccine, 200)?,
            cvx: format!("{:0>2}", cvx),
            date: parse_past_date("vaccination date", date, today)?,
            lot,
            site: site.map(Site::parse).transpose()?,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Immunization {
    pub id: ImmunizationId,
    pub patient_id: PatientId,
    pub vaccine: String,
    pub cvx: String,
    pub date: String,
    pub lot: Option<String>,
    pub site: Option<Site>,
    /// `completed`, or `entered_in_error` once resolved as a mistake.
    pub status: String,
    pub recorded_by: String,
    pub recorded_at: String,
    pub updated_by: String,
    pub updated_at: String,
    /// Who marked it entered in error, when and why (its status then reads
    /// `entered_in_error`).
    #[cfg_attr(feature = "ts", ts(optional))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correction: Option<super::correction::Correction>,
}

const IMMUNIZATION_COLUMNS: &str = concat!(
    "id, patient_id, ",
    open_field!("immunizations", "vaccine"),
    ", ",
    open_field!("immunizations", "cvx"),
    ", date, ",
    open_field!("immunizations", "lot"),
    ", ",
    open_field!("immunizations", "site"),
    ", status, recorded_by, recorded_at, updated_by, updated_at, ",
    super::correction::correction_column!("immunizations", "immunization")
);

fn row_to_immunization(r: &rusqlite::Row<'_>) -> rusqlite::Result<Immunization> {
    let site: Option<String> = r.get(6)?;
    Ok(Immunization {
        id: r.get(0)?,
        patient_id: r.get(1)?,
        vaccine: r.get(2)?,
        cvx: r.get(3)?,
        date: r.get(4)?,
        lot: r.get(5)?,
        site: site.and_then(|s| Site::parse(&s).ok()),
        status: r.get(7)?,
        recorded_by: r.get(8)?,
        recorded_at: r.get(9)?,
        updated_by: r.get(10)?,
        updated_at: r.get(11)?,
        correction: None,
    })
    .and_then(|mut x| {
        x.correction = super::correction::read_correction(r.get(12)?);
        if x.correction.is_some() {
            x.status = "entered_in_error".into();
        }
        Ok(x)
    })
}

pub(crate) fn immunization(conn: &Connection, id: i64) -> Result<Immunization, CoreError> {
    conn.prepare_cached(&format!(
        "SELECT {IMMUNIZATION_COLUMNS} FROM immunizations WHERE id = ?1"
    ))?
    .query_row([id], row_to_immunization)
    .optional()?
    .ok_or_else(|| CoreError::NotFound(format!("There is no immunization {id}.")))
}

pub(crate) fn immunizations(
    conn: &Connection,
    patient_id: i64,
) -> Result<Vec<Immunization>, CoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {IMMUNIZATION_COLUMNS} FROM immunizations WHERE patient_id = ?1 ORDER BY date DESC, id DESC"
    ))?;
    let rows = stmt.query_map([patient_id], row_to_immunization)?;
    Ok(rows.collect::<Result<_, _>>()?)
}
/// An immunization recorded: version 1 of [`Change::ImmunizationRecorded`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImmunizationRecorded {
    pub immunization: RecordId,
    pub patient: RecordId,
    #[serde(flatten)]
    pub item: NewImmunization,
    pub recorded: Stamp,
}

/// An immunization struck out as entered in error (it stays in the record): version 1 of
/// [`Change::ImmunizationEnteredInError`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImmunizationEnteredInError {
    pub immunization: RecordId,
    pub marked: Stamp,
}

/// The one writer of `immunizations`, for a new immunization.
pub(super) fn apply_recorded(
    conn: &Connection,
    c: &ImmunizationRecorded,
) -> Result<Applied, CoreError> {
    let i = &c.item;
    let date = i.date.format("%Y-%m-%d").to_string();
    let checked = NewImmunization::new(
        &i.vaccine,
        &i.cvx,
        &date,
        i.lot.as_deref(),
        i.site.map(Site::as_str),
        c.recorded.at.date_naive().max(i.date),
    )?;
    same("immunization", &checked, i)?;
    let patient = change::row_of(conn, Table::Patients, c.patient)?;
    conn.prepare_cached(
        "INSERT INTO immunizations (uuid, patient_id, vaccine, cvx, date, lot, site, status, recorded_by, recorded_at, updated_by, updated_at)
         VALUES (?1, ?2, cr_seal(?3, 'immunizations', 'vaccine', ?1, ?10), cr_seal(?4, 'immunizations', 'cvx', ?1, ?10),
                 ?5, cr_seal(?6, 'immunizations', 'lot', ?1, ?10), cr_seal(?7, 'immunizations', 'site', ?1, ?10),
                 'completed', ?8, ?9, ?8, ?9)",
    )?
    .execute(params![
        c.immunization,
        patient,
        i.vaccine,
        i.cvx,
        date,
        i.lot,
        i.site.map(Site::as_str),
        c.recorded.by,
        c.recorded.time(),
        c.patient
    ])?;
    Ok(Applied::one(conn.last_insert_rowid()))
}

/// The one writer of `immunizations`, for "entered in error".
pub(super) fn apply_entered_in_error(
    conn: &Connection,
    c: &ImmunizationEnteredInError,
) -> Result<Applied, CoreError> {
    let id = change::row_of(conn, Table::Immunizations, c.immunization)?;
    super::correction::refuse_if_marked(conn, super::correction::Corrected::Immunization, id)?;
    let status: String = conn
        .prepare_cached("SELECT status FROM immunizations WHERE id = ?1")?
        .query_row([id], |r| r.get(0))?;
    if status != "completed" {
        return Err(CoreError::Conflict(format!(
            "Immunization {id} is already marked entered in error."
        )));
    }
    conn.prepare_cached(
        "UPDATE immunizations SET status = 'entered_in_error', updated_by = ?1, updated_at = ?2 WHERE id = ?3",
    )?
    .execute(params![c.marked.by, c.marked.time(), id])?;
    Ok(Applied::one(id))
}

impl Session {
    pub fn add_immunization(
        &mut self,
        patient_id: impl Into<PatientId>,
        immunization: &NewImmunization,
    ) -> Result<Immunization, CoreError> {
        let patient_id = patient_id.into().get();
        self.add_item(
            Permission::RecordImmunizations,
            "immunization.create",
            Item::Immunization,
            patient_id,
            |_, patient, recorded| {
                Ok(Change::ImmunizationRecorded(ImmunizationRecorded {
                    immunization: RecordId::new(recorded.at),
                    patient,
                    item: immunization.clone(),
                    recorded,
                }))
            },
            self::immunization,
        )
    }

    pub fn immunizations(
        &mut self,
        patient_id: impl Into<PatientId>,
    ) -> Result<Vec<Immunization>, CoreError> {
        let patient_id = patient_id.into().get();
        self.list_items("immunization.read", patient_id, immunizations)
    }

    /// Marks an immunization entered in error (it stays in the record, struck out).
    pub fn resolve_immunization(
        &mut self,
        immunization_id: impl Into<ImmunizationId>,
    ) -> Result<Immunization, CoreError> {
        let immunization_id = immunization_id.into().get();
        self.resolve(
            Item::Immunization,
            Permission::RecordImmunizations,
            immunization_id,
            |id, marked| {
                Change::ImmunizationEnteredInError(ImmunizationEnteredInError {
                    immunization: id,
                    marked,
                })
            },
            self::immunization,
        )
    }
}
