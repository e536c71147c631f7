//! Problems: the problem list, coded in ICD-10 or SNOMED CT; the changes that add and
//! resolve one, their one writer (the only code that writes `problems`), and the
//! operations on the Session.

use chrono::NaiveDate;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::change::{self, same, Applied, Change, RecordId, Stamp, Table};
use super::input::{bounded_text, parse_past_date};
use super::Item;
use crate::ids::*;
use crate::keys::open_field;
use crate::roles::Permission;
use crate::{CoreError, Session};

/// Where a problem's code comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum CodeSystem {
    Icd10,
    Snomed,
}

impl CodeSystem {
    pub fn parse(text: &str) -> Result<CodeSystem, CoreError> {
        match text
            .trim()
            .to_ascii_lowercase()
            .replace(['-', ' '], "")
            .as_str()
        {
            "icd10" | "icd10cm" => Ok(CodeSystem::Icd10),
            "snomed" | "snomedct" | "sct" => Ok(CodeSystem::Snomed),
            _ => Err(CoreError::InvalidInput(
                "The code system is icd10 or snomed.".into(),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CodeSystem::Icd10 => "icd10",
            CodeSystem::Snomed => "snomed",
        }
    }

    /// The FHIR system URI.
    pub fn uri(self) -> &'static str {
        match self {
            CodeSystem::Icd10 => "http://hl7.org/fhir/sid/icd-10",
            CodeSystem::Snomed => "http://snomed.info/sct",
        }
    }

    /// Checks a code's shape (not that it exists: no terminology ships with Chartroom).
    pub fn check(self, code: &str) -> Result<String, CoreError> {
        let c = code.trim().to_ascii_uppercase();
        let ok = match self {
            CodeSystem::Icd10 => {
                let b = c.as_bytes();
                let (head, tail) = c.split_once('.').unwrap_or((&c, ""));
                head.len() == 3
                    && b[0].is_ascii_uppercase()
                    && b[1].is_ascii_digit()
                    && b[2].is_ascii_alphanumeric()
                    && tail.len() <= 4
                    && tail.chars().all(|ch| ch.is_ascii_alphanumeric())
                    && (c.contains('.') != tail.is_empty())
            }
            CodeSystem::Snomed => {
                (6..=18).contains(&c.len())
                    && c.chars().all(|ch| ch.is_ascii_digit())
                    && !c.starts_with('0')
            }
        };
        if ok {
            Ok(c)
        } else {
            Err(CoreError::InvalidInput(match self {
                CodeSystem::Icd10 => format!(
                    "\"{}\" is not an ICD-10 code (a letter, two characters, then an optional dot and up to four more: E11.9).",
                    code.chars().take(20).collect::<String>()
                ),
                CodeSystem::Snomed => format!(
                    "\"{}\" is not a SNOMED CT code (6 to 18 digits).",
                    code.chars().take(20).collect::<String>()
                ),
            }))
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewProblem {
    pub text: String,
    pub coding: Option<(CodeSystem, String)>,
    pub onset: Option<NaiveDate>,
}

impl NewProblem {
    pub fn new(
        text: &str,
        system: Option<&str>,
        code: Option<&str>,
        onset: Option<&str>,
        today: NaiveDate,
    ) -> Result<NewProblem, CoreError> {
        let coding = match (system, code.map(str::trim).filter(|c| !c.is_empty())) {
            (None, None) => None,
            (Some(s), Some(c)) => {
                let system = CodeSystem::parse(s)?;
                Some((system, system.check(c)?))
            }
            (None, Some(c)) => {
                // An ICD-10 shape needs no system named; anything else does.
                let c = CodeSystem::Icd10.check(c).map_err(|_| {
                    CoreError::InvalidInput(
                        "Name the code system (--system icd10 or snomed).".into(),
                    )
                })?;
                Some((CodeSystem::Icd10, c))
            }
            (Some(_), None) => {
                return Err(CoreError::InvalidInput(
                    "A code system was given without a code.".into(),
                ))
            }
        };
        Ok(NewProblem {
            text: bounded_text("problem", text, 300)?,
            coding,
            onset: onset
                .map(|o| parse_past_date("onset date", o, today))
                .transpose()?,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Problem {
    pub id: ProblemId,
    pub patient_id: PatientId,
    pub text: String,
    pub system: Option<CodeSystem>,
    pub code: Option<String>,
    /// `active`, `resolved` or `inactive`.
    pub status: String,
    pub onset: Option<String>,
    pub resolved_on: Option<String>,
    pub recorded_by: String,
    pub recorded_at: String,
    pub updated_by: String,
    pub updated_at: String,
    /// Who marked it entered in error, when and why (its status then reads
    /// `entered-in-error`).
    #[cfg_attr(feature = "ts", ts(optional))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correction: Option<super::correction::Correction>,
}

const PROBLEM_COLUMNS: &str = concat!(
    "id, patient_id, ",
    open_field!("problems", "text"),
    ", ",
    open_field!("problems", "system"),
    ", ",
    open_field!("problems", "code"),
    ", status, onset, resolved_on, recorded_by, recorded_at, updated_by, updated_at, ",
    super::correction::correction_column!("problems", "problem")
);

fn row_to_problem(r: &rusqlite::Row<'_>) -> rusqlite::Result<Problem> {
    let system: Option<String> = r.get(3)?;
    Ok(Problem {
        id: r.get(0)?,
        patient_id: r.get(1)?,
        text: r.get(2)?,
        system: system.and_then(|s| CodeSystem::parse(&s).ok()),
        code: r.get(4)?,
        status: r.get(5)?,
        onset: r.get(6)?,
        resolved_on: r.get(7)?,
        recorded_by: r.get(8)?,
        recorded_at: r.get(9)?,
        updated_by: r.get(10)?,
        updated_at: r.get(11)?,
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

pub(crate) fn problem(conn: &Connection, id: i64) -> Result<Problem, CoreError> {
    conn.prepare_cached(&format!(
        "SELECT {PROBLEM_COLUMNS} FROM problems WHERE id = ?1"
    ))?
    .query_row([id], row_to_problem)
    .optional()?
    .ok_or_else(|| CoreError::NotFound(format!("There is no problem {id}.")))
}

pub(crate) fn problems(conn: &Connection, patient_id: i64) -> Result<Vec<Problem>, CoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {PROBLEM_COLUMNS} FROM problems WHERE patient_id = ?1 ORDER BY status = 'active' DESC, recorded_at DESC, id DESC"
    ))?;
    let rows = stmt.query_map([patient_id], row_to_problem)?;
    Ok(rows.collect::<Result<_, _>>()?)
}
/// A problem added to the list: version 1 of [`Change::ProblemAdded`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProblemAdded {
    pub problem: RecordId,
    pub patient: RecordId,
    #[serde(flatten)]
    pub item: NewProblem,
    pub recorded: Stamp,
}

/// How a problem left the active list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemOutcome {
    Resolved,
    /// No longer active, without being resolved (FHIR's `inactive`; arrives by import).
    Inactive,
}

/// A problem resolved: version 1 of [`Change::ProblemResolved`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProblemResolved {
    pub problem: RecordId,
    pub outcome: ProblemOutcome,
    pub on: Option<NaiveDate>,
    pub resolved: Stamp,
}

impl NewProblem {
    /// The constructor's checks, again, on a problem that arrives built.
    fn check(&self, today: NaiveDate) -> Result<(), CoreError> {
        let onset = self.onset.map(|d| d.format("%Y-%m-%d").to_string());
        let checked = NewProblem::new(
            &self.text,
            self.coding.as_ref().map(|(s, _)| s.as_str()),
            self.coding.as_ref().map(|(_, c)| c.as_str()),
            onset.as_deref(),
            today,
        )?;
        same("problem", &checked, self)
    }
}

/// The one writer of `problems`, for a new problem.
pub(super) fn apply_added(conn: &Connection, c: &ProblemAdded) -> Result<Applied, CoreError> {
    c.item.check(c.recorded.at.date_naive())?;
    let patient = change::row_of(conn, Table::Patients, c.patient)?;
    let p = &c.item;
    conn.prepare_cached(
        "INSERT INTO problems (uuid, patient_id, text, system, code, status, onset, recorded_by, recorded_at, updated_by, updated_at)
         VALUES (?1, ?2, cr_seal(?3, 'problems', 'text', ?1, ?9), cr_seal(?4, 'problems', 'system', ?1, ?9),
                 cr_seal(?5, 'problems', 'code', ?1, ?9), 'active', ?6, ?7, ?8, ?7, ?8)",
    )?
    .execute(params![
        c.problem,
        patient,
        p.text,
        p.coding.as_ref().map(|(s, _)| s.as_str()),
        p.coding.as_ref().map(|(_, c)| c.as_str()),
        p.onset.map(|d| d.format("%Y-%m-%d").to_string()),
        c.recorded.by,
        c.recorded.time(),
        c.patient
    ])?;
    Ok(Applied::one(conn.last_insert_rowid()))
}

/// The one writer of `problems`, for a resolution.
pub(super) fn apply_resolved(conn: &Connection, c: &ProblemResolved) -> Result<Applied, CoreError> {
    let id = change::row_of(conn, Table::Problems, c.problem)?;
    super::correction::refuse_if_marked(conn, super::correction::Corrected::Problem, id)?;
    let status: String = conn
        .prepare_cached("SELECT status FROM problems WHERE id = ?1")?
        .query_row([id], |r| r.get(0))?;
    if status == "resolved" {
        return Err(CoreError::Conflict(format!(
            "Problem {id} is already resolved."
        )));
    }
    let status = match c.outcome {
        ProblemOutcome::Resolved => "resolved",
        ProblemOutcome::Inactive => "inactive",
    };
    conn.prepare_cached(
        "UPDATE problems SET status = ?1, resolved_on = ?2, updated_by = ?3, updated_at = ?4 WHERE id = ?5",
    )?
    .execute(params![
        status,
        c.on.map(|d| d.format("%Y-%m-%d").to_string()),
        c.resolved.by,
        c.resolved.time(),
        id
    ])?;
    Ok(Applied::one(id))
}

impl Session {
    pub fn add_problem(
        &mut self,
        patient_id: impl Into<PatientId>,
        problem: &NewProblem,
    ) -> Result<Problem, CoreError> {
        let patient_id = patient_id.into().get();
        self.add_item(
            Permission::WriteClinical,
            "problem.create",
            Item::Problem,
            patient_id,
            |_, patient, recorded| {
                Ok(Change::ProblemAdded(ProblemAdded {
                    problem: RecordId::new(recorded.at),
                    patient,
                    item: problem.clone(),
                    recorded,
                }))
            },
            self::problem,
        )
    }

    pub fn problems(
        &mut self,
        patient_id: impl Into<PatientId>,
    ) -> Result<Vec<Problem>, CoreError> {
        let patient_id = patient_id.into().get();
        self.list_items("problem.read", patient_id, problems)
    }

    /// Marks a problem resolved (on `date`, default today).
    pub fn resolve_problem(
        &mut self,
        problem_id: impl Into<ProblemId>,
        date: Option<NaiveDate>,
    ) -> Result<Problem, CoreError> {
        let problem_id = problem_id.into().get();
        self.resolve(
            Item::Problem,
            Permission::WriteClinical,
            problem_id,
            |id, resolved| {
                Change::ProblemResolved(ProblemResolved {
                    problem: id,
                    outcome: ProblemOutcome::Resolved,
                    on: Some(date.unwrap_or_else(|| resolved.at.date_naive())),
                    resolved,
                })
            },
            self::problem,
        )
    }
}
