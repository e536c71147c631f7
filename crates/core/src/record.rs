//! The clinical record: encounters, notes (with addenda), vital-sign observations, problems,
//! allergies, medications and immunizations. Types validate their input, so the UI, the CLI
//! and an import share one set of rules; the functions here read and write rows and are
//! called only from the Session's gated operations.

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::patients::{bounded_text, optional_text, parse_past_date};
use crate::vitals::{Flag, Vital};
use crate::CoreError;

const MAX_NOTE_CHARS: usize = 20_000;

fn parse_choice<T: Copy>(label: &str, text: &str, options: &[(&str, T)]) -> Result<T, CoreError> {
    let t = text.trim().to_ascii_lowercase().replace(['-', ' '], "_");
    options
        .iter()
        .find(|(name, _)| *name == t)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            CoreError::InvalidInput(format!(
                "The {label} is one of: {}.",
                options
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

/// Parses a point in time: RFC 3339, or `YYYY-MM-DD HH:MM` / `YYYY-MM-DD` read as UTC.
/// Refuses times more than an hour ahead of `now` (clock skew) and before 1900.
pub fn parse_time_input(
    label: &str,
    text: &str,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, CoreError> {
    let t = text.trim();
    let parsed = DateTime::parse_from_rfc3339(t)
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M")
                .ok()
                .map(|n| n.and_utc())
        })
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M")
                .ok()
                .map(|n| n.and_utc())
        })
        .or_else(|| {
            NaiveDate::parse_from_str(t, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|n| n.and_utc())
        })
        .ok_or_else(|| {
            CoreError::InvalidInput(format!(
                "The {label} \"{}\" is not a time. Write 2026-03-02T14:30:00Z or 2026-03-02 14:30.",
                t.chars().take(30).collect::<String>()
            ))
        })?;
    if parsed > now + chrono::Duration::hours(1) {
        return Err(CoreError::InvalidInput(format!(
            "The {label} is in the future."
        )));
    }
    if parsed.format("%Y").to_string().as_str() < "1900" {
        return Err(CoreError::InvalidInput(format!(
            "The {label} is before 1900."
        )));
    }
    Ok(chartroom_audit::truncate_to_micros(parsed))
}

// ----- encounters ------------------------------------------------------------------------

/// What kind of contact an encounter was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
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
    ) -> Result<NewEncounter, CoreError> {
        Ok(NewEncounter {
            kind: EncounterKind::parse(kind)?,
            start: match start {
                Some(s) => parse_time_input("encounter time", s, now)?,
                None => chartroom_audit::truncate_to_micros(now),
            },
            reason: bounded_text("reason for the encounter", reason, 500)?,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct Encounter {
    pub id: i64,
    pub patient_id: i64,
    pub start: String,
    pub kind: EncounterKind,
    pub clinician: String,
    pub reason: String,
    pub created_at: String,
    pub created_by: String,
}

const ENCOUNTER_COLUMNS: &str =
    "id, patient_id, start, kind, clinician, reason, created_at, created_by";

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

pub(crate) fn insert_encounter(
    conn: &Connection,
    patient_id: i64,
    e: &NewEncounter,
    clinician_id: Option<i64>,
    clinician: &str,
    now: &str,
) -> Result<Encounter, CoreError> {
    conn.prepare_cached(
        "INSERT INTO encounters (patient_id, start, kind, clinician_id, clinician, reason, created_at, created_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?5)",
    )?
    .execute(params![
        patient_id,
        chartroom_audit::format_time(e.start),
        e.kind.as_str(),
        clinician_id,
        clinician,
        e.reason,
        now
    ])?;
    encounter(conn, conn.last_insert_rowid())
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

// ----- notes -----------------------------------------------------------------------------

/// A note's content: free text, or SOAP sections.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "format", rename_all = "snake_case")]
pub enum NoteContent {
    Free {
        text: String,
    },
    Soap {
        subjective: Option<String>,
        objective: Option<String>,
        assessment: Option<String>,
        plan: Option<String>,
    },
}

fn note_text(label: &str, text: &str) -> Result<String, CoreError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(CoreError::InvalidInput(format!("The {label} is empty.")));
    }
    if t.chars().count() > MAX_NOTE_CHARS {
        return Err(CoreError::InvalidInput(format!(
            "The {label} is longer than {MAX_NOTE_CHARS} characters."
        )));
    }
    if t.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
    {
        return Err(CoreError::InvalidInput(format!(
            "The {label} contains a control character."
        )));
    }
    Ok(t.replace("\r\n", "\n"))
}

impl NoteContent {
    /// The same checks as [`NoteContent::free`] and [`NoteContent::soap`], for content that
    /// arrives already shaped (the desktop window sends it as JSON).
    pub fn validated(&self) -> Result<NoteContent, CoreError> {
        match self {
            NoteContent::Free { text } => NoteContent::free(text),
            NoteContent::Soap {
                subjective,
                objective,
                assessment,
                plan,
            } => NoteContent::soap(
                subjective.as_deref(),
                objective.as_deref(),
                assessment.as_deref(),
                plan.as_deref(),
            ),
        }
    }

    pub fn free(text: &str) -> Result<NoteContent, CoreError> {
        Ok(NoteContent::Free {
            text: note_text("note", text)?,
        })
    }

    /// SOAP sections; at least one must have text.
    pub fn soap(
        subjective: Option<&str>,
        objective: Option<&str>,
        assessment: Option<&str>,
        plan: Option<&str>,
    ) -> Result<NoteContent, CoreError> {
        let section = |label: &str, t: Option<&str>| -> Result<Option<String>, CoreError> {
            match t.map(str::trim) {
                None | Some("") => Ok(None),
                Some(t) => note_text(label, t).map(Some),
            }
        };
        let content = NoteContent::Soap {
            subjective: section("subjective section", subjective)?,
            objective: section("objective section", objective)?,
            assessment: section("assessment section", assessment)?,
            plan: section("plan section", plan)?,
        };
        if let NoteContent::Soap {
            subjective: None,
            objective: None,
            assessment: None,
            plan: None,
        } = content
        {
            return Err(CoreError::InvalidInput(
                "A SOAP note needs text in at least one section.".into(),
            ));
        }
        Ok(content)
    }

    /// The note as plain text, for display and export.
    pub fn as_text(&self) -> String {
        match self {
            NoteContent::Free { text } => text.clone(),
            NoteContent::Soap {
                subjective,
                objective,
                assessment,
                plan,
            } => [
                ("Subjective", subjective),
                ("Objective", objective),
                ("Assessment", assessment),
                ("Plan", plan),
            ]
            .iter()
            .filter_map(|(label, text)| text.as_ref().map(|t| format!("{label}: {t}")))
            .collect::<Vec<_>>()
            .join("\n"),
        }
    }
}

/// A note, an addendum to a signed note, or an amendment that corrects one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum NoteKind {
    Note,
    Addendum,
    Amendment,
}

impl NoteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NoteKind::Note => "note",
            NoteKind::Addendum => "addendum",
            NoteKind::Amendment => "amendment",
        }
    }

    fn parse(text: &str) -> NoteKind {
        match text {
            "addendum" => NoteKind::Addendum,
            "amendment" => NoteKind::Amendment,
            _ => NoteKind::Note,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct Note {
    pub id: i64,
    pub patient_id: i64,
    pub encounter_id: Option<i64>,
    pub kind: NoteKind,
    /// The signed note this addendum or amendment points to.
    pub parent_id: Option<i64>,
    pub author: String,
    #[serde(flatten)]
    pub content: NoteContent,
    /// `draft` or `signed`.
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
    pub signed_by: Option<String>,
    pub signed_at: Option<String>,
    /// SHA-256 of the content as signed.
    pub content_sha256: Option<String>,
}

pub(crate) const NOTE_COLUMNS: &str = "id, patient_id, encounter_id, kind, parent_id, author, format, text,
    subjective, objective, assessment, plan, status, created_at, updated_at, signed_by, signed_at, content_sha256";

pub(crate) fn row_to_note(r: &rusqlite::Row<'_>) -> rusqlite::Result<Note> {
    let kind: String = r.get(3)?;
    let format: String = r.get(6)?;
    let content = if format == "soap" {
        NoteContent::Soap {
            subjective: r.get(8)?,
            objective: r.get(9)?,
            assessment: r.get(10)?,
            plan: r.get(11)?,
        }
    } else {
        NoteContent::Free { text: r.get(7)? }
    };
    Ok(Note {
        id: r.get(0)?,
        patient_id: r.get(1)?,
        encounter_id: r.get(2)?,
        kind: NoteKind::parse(&kind),
        parent_id: r.get(4)?,
        author: r.get(5)?,
        content,
        status: r.get(12)?,
        created_at: r.get(13)?,
        updated_at: r.get(14)?,
        signed_by: r.get(15)?,
        signed_at: r.get(16)?,
        content_sha256: r.get(17)?,
    })
}

/// The hash a signature covers: the note's kind, what it points to and its content.
pub fn note_digest(note: &Note) -> String {
    digest_of(
        note.patient_id,
        note.encounter_id,
        note.kind,
        note.parent_id,
        &note.content,
    )
}

/// [`note_digest`] from a note's parts, for writers that have not read the note back.
pub(crate) fn digest_of(
    patient_id: i64,
    encounter_id: Option<i64>,
    kind: NoteKind,
    parent_id: Option<i64>,
    content: &NoteContent,
) -> String {
    let canonical = serde_json::json!({
        "patient_id": patient_id,
        "encounter_id": encounter_id,
        "kind": kind,
        "parent_id": parent_id,
        "content": content,
    });
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

pub(crate) fn note(conn: &Connection, id: i64) -> Result<Note, CoreError> {
    conn.prepare_cached(&format!("SELECT {NOTE_COLUMNS} FROM notes WHERE id = ?1"))?
        .query_row([id], row_to_note)
        .optional()?
        .ok_or_else(|| CoreError::NotFound(format!("There is no note {id}.")))
}

pub(crate) fn notes(conn: &Connection, patient_id: i64) -> Result<Vec<Note>, CoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {NOTE_COLUMNS} FROM notes WHERE patient_id = ?1 ORDER BY created_at DESC, id DESC"
    ))?;
    let rows = stmt.query_map([patient_id], row_to_note)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(crate) fn content_columns(c: &NoteContent) -> (&'static str, String, [Option<&str>; 4]) {
    match c {
        NoteContent::Free { text } => ("free", text.clone(), [None, None, None, None]),
        NoteContent::Soap {
            subjective,
            objective,
            assessment,
            plan,
        } => (
            "soap",
            c.as_text(),
            [
                subjective.as_deref(),
                objective.as_deref(),
                assessment.as_deref(),
                plan.as_deref(),
            ],
        ),
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn insert_note(
    conn: &Connection,
    patient_id: i64,
    encounter_id: Option<i64>,
    kind: NoteKind,
    parent_id: Option<i64>,
    author_id: Option<i64>,
    author: &str,
    content: &NoteContent,
    now: &str,
) -> Result<Note, CoreError> {
    let (format, text, [s, o, a, p]) = content_columns(content);
    conn.prepare_cached(
        "INSERT INTO notes (patient_id, encounter_id, kind, parent_id, author_id, author, format, text,
                            subjective, objective, assessment, plan, status, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 'draft', ?13, ?13)",
    )?
    .execute(params![
        patient_id,
        encounter_id,
        kind.as_str(),
        parent_id,
        author_id,
        author,
        format,
        text,
        s,
        o,
        a,
        p,
        now
    ])?;
    note(conn, conn.last_insert_rowid())
}

pub(crate) fn update_draft(
    conn: &Connection,
    id: i64,
    content: &NoteContent,
    now: &str,
) -> Result<Note, CoreError> {
    let (format, text, [s, o, a, p]) = content_columns(content);
    conn.prepare_cached(
        "UPDATE notes SET format = ?1, text = ?2, subjective = ?3, objective = ?4, assessment = ?5,
                          plan = ?6, updated_at = ?7 WHERE id = ?8 AND status = 'draft'",
    )?
    .execute(params![format, text, s, o, a, p, now, id])?;
    note(conn, id)
}

pub(crate) fn sign(
    conn: &Connection,
    n: &Note,
    signer: &str,
    now: &str,
) -> Result<Note, CoreError> {
    let digest = note_digest(n);
    conn.prepare_cached(
        "UPDATE notes SET status = 'signed', signed_by = ?1, signed_at = ?2, updated_at = ?2,
                          content_sha256 = ?3 WHERE id = ?4 AND status = 'draft'",
    )?
    .execute(params![signer, now, digest, n.id])?;
    note(conn, n.id)
}

// ----- vital signs -----------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Serialize, ts_rs::TS)]
pub struct Observation {
    pub id: i64,
    pub patient_id: i64,
    pub encounter_id: Option<i64>,
    pub vital: Vital,
    /// LOINC code.
    pub code: String,
    pub display: String,
    pub value: f64,
    /// UCUM unit.
    pub unit: String,
    pub effective: String,
    /// N, L, H, LL or HH against the adult reference range.
    pub flag: Flag,
    pub recorded_by: String,
    pub recorded_at: String,
}

const OBSERVATION_COLUMNS: &str =
    "id, patient_id, encounter_id, code, value, unit, effective, flag, recorded_by, recorded_at";

fn row_to_observation(r: &rusqlite::Row<'_>) -> rusqlite::Result<Observation> {
    let code: String = r.get(3)?;
    let vital = Vital::from_loinc(&code).unwrap_or(Vital::Weight);
    let flag: String = r.get(7)?;
    Ok(Observation {
        id: r.get(0)?,
        patient_id: r.get(1)?,
        encounter_id: r.get(2)?,
        vital,
        display: vital.display().to_owned(),
        code,
        value: r.get(4)?,
        unit: r.get(5)?,
        effective: r.get(6)?,
        flag: Flag::parse(&flag),
        recorded_by: r.get(8)?,
        recorded_at: r.get(9)?,
    })
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn insert_observation(
    conn: &Connection,
    patient_id: i64,
    encounter_id: Option<i64>,
    vital: Vital,
    value: f64,
    effective: &str,
    by: &str,
    now: &str,
) -> Result<i64, CoreError> {
    conn.prepare_cached(
        "INSERT INTO observations (patient_id, encounter_id, code, value, unit, effective, flag, recorded_by, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        patient_id,
        encounter_id,
        vital.loinc(),
        value,
        vital.unit(),
        effective,
        vital.flag(value).as_str(),
        by,
        now
    ])?;
    Ok(conn.last_insert_rowid())
}

pub(crate) fn observations(
    conn: &Connection,
    patient_id: i64,
) -> Result<Vec<Observation>, CoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {OBSERVATION_COLUMNS} FROM observations WHERE patient_id = ?1 ORDER BY effective DESC, id"
    ))?;
    let rows = stmt.query_map([patient_id], row_to_observation)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(crate) fn observations_by_id(
    conn: &Connection,
    ids: &[i64],
) -> Result<Vec<Observation>, CoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {OBSERVATION_COLUMNS} FROM observations WHERE id = ?1"
    ))?;
    ids.iter()
        .map(|id| Ok(stmt.query_row([id], row_to_observation)?))
        .collect()
}

pub(crate) fn latest_value(
    conn: &Connection,
    patient_id: i64,
    vital: Vital,
) -> Result<Option<f64>, CoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT value FROM observations WHERE patient_id = ?1 AND code = ?2 ORDER BY effective DESC, id DESC LIMIT 1",
        )?
        .query_row(params![patient_id, vital.loinc()], |r| r.get(0))
        .optional()?)
}

// ----- problems --------------------------------------------------------------------------

/// Where a problem's code comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
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

#[derive(Clone, Debug, PartialEq, Eq)]
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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct Problem {
    pub id: i64,
    pub patient_id: i64,
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
}

const PROBLEM_COLUMNS: &str = "id, patient_id, text, system, code, status, onset, resolved_on, recorded_by, recorded_at, updated_by, updated_at";

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
    })
}

pub(crate) fn insert_problem(
    conn: &Connection,
    patient_id: i64,
    p: &NewProblem,
    by: &str,
    now: &str,
) -> Result<Problem, CoreError> {
    conn.prepare_cached(
        "INSERT INTO problems (patient_id, text, system, code, status, onset, recorded_by, recorded_at, updated_by, updated_at)
         VALUES (?1, ?2, ?3, ?4, 'active', ?5, ?6, ?7, ?6, ?7)",
    )?
    .execute(params![
        patient_id,
        p.text,
        p.coding.as_ref().map(|(s, _)| s.as_str()),
        p.coding.as_ref().map(|(_, c)| c.as_str()),
        p.onset.map(|d| d.format("%Y-%m-%d").to_string()),
        by,
        now
    ])?;
    problem(conn, conn.last_insert_rowid())
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

// ----- allergies -------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Mild,
    Moderate,
    Severe,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
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

#[derive(Clone, Debug, PartialEq, Eq)]
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
        let folded = crate::patients::fold(&substance);
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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct Allergy {
    pub id: i64,
    pub patient_id: i64,
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
}

const ALLERGY_COLUMNS: &str =
    "id, patient_id, substance, reaction, severity, category, status, recorded_by, recorded_at, updated_by, updated_at";

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
    })
}

pub(crate) fn insert_allergy(
    conn: &Connection,
    patient_id: i64,
    a: &NewAllergy,
    by: &str,
    now: &str,
) -> Result<Allergy, CoreError> {
    conn.prepare_cached(
        "INSERT INTO allergies (patient_id, substance, reaction, severity, category, status, recorded_by, recorded_at, updated_by, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'active', ?6, ?7, ?6, ?7)",
    )?
    .execute(params![
        patient_id,
        a.substance,
        a.reaction,
        a.severity.map(Severity::as_str),
        a.category.map(AllergyCategory::as_str),
        by,
        now
    ])?;
    let id = conn.last_insert_rowid();
    conn.prepare_cached(
        "UPDATE patients SET allergy_state = 'recorded', allergy_state_at = ?2, allergy_state_by = ?3 WHERE id = ?1",
    )?
    .execute(params![patient_id, now, by])?;
    allergy(conn, id)
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

// ----- medications -----------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
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

#[derive(Clone, Debug, PartialEq, Eq)]
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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct Medication {
    pub id: i64,
    pub patient_id: i64,
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
}

const MEDICATION_COLUMNS: &str = "id, patient_id, name, dose, route, frequency, start, stop, status, recorded_by, recorded_at, updated_by, updated_at";

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
    })
}

pub(crate) fn insert_medication(
    conn: &Connection,
    patient_id: i64,
    m: &NewMedication,
    by: &str,
    now: &str,
) -> Result<Medication, CoreError> {
    conn.prepare_cached(
        "INSERT INTO medications (patient_id, name, dose, route, frequency, start, status, recorded_by, recorded_at, updated_by, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'active', ?7, ?8, ?7, ?8)",
    )?
    .execute(params![
        patient_id,
        m.name,
        m.dose,
        m.route.map(Route::as_str),
        m.frequency,
        m.start.map(|d| d.format("%Y-%m-%d").to_string()),
        by,
        now
    ])?;
    medication(conn, conn.last_insert_rowid())
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

// ----- immunizations ---------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
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

#[derive(Clone, Debug, PartialEq, Eq)]
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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct Immunization {
    pub id: i64,
    pub patient_id: i64,
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
}

const IMMUNIZATION_COLUMNS: &str =
    "id, patient_id, vaccine, cvx, date, lot, site, status, recorded_by, recorded_at, updated_by, updated_at";

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
    })
}

pub(crate) fn insert_immunization(
    conn: &Connection,
    patient_id: i64,
    i: &NewImmunization,
    by: &str,
    now: &str,
) -> Result<Immunization, CoreError> {
    conn.prepare_cached(
        "INSERT INTO immunizations (patient_id, vaccine, cvx, date, lot, site, status, recorded_by, recorded_at, updated_by, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'completed', ?7, ?8, ?7, ?8)",
    )?
    .execute(params![
        patient_id,
        i.vaccine,
        i.cvx,
        i.date.format("%Y-%m-%d").to_string(),
        i.lot,
        i.site.map(Site::as_str),
        by,
        now
    ])?;
    immunization(conn, conn.last_insert_rowid())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 24).expect("date")
    }

    fn now() -> DateTime<Utc> {
        today().and_hms_opt(12, 0, 0).expect("time").and_utc()
    }

    #[test]
    fn encounters_validate_type_time_and_reason() {
        assert!(NewEncounter::new("office", None, "Cough", now()).is_ok());
        assert!(NewEncounter::new("Home visit", Some("2026-11-20 09:30"), "Review", now()).is_ok());
        assert!(NewEncounter::new("drive-by", None, "Cough", now()).is_err());
        assert!(NewEncounter::new("office", Some("2027-01-01"), "Cough", now()).is_err());
        assert!(NewEncounter::new("office", Some("yesterday"), "Cough", now()).is_err());
        assert!(NewEncounter::new("office", None, "   ", now()).is_err());
    }

    #[test]
    fn notes_need_text_and_soap_needs_a_section() {
        assert!(NoteContent::free("Seen today.").is_ok());
        assert!(NoteContent::free(" ").is_err());
        assert!(NoteContent::free(&"x".repeat(20_001)).is_err());
        assert!(NoteContent::free("bell\u{7}").is_err());
        assert!(NoteContent::free("two\nlines\tok").is_ok());
        assert!(NoteContent::soap(None, None, Some("Viral URTI"), None).is_ok());
        assert!(NoteContent::soap(Some(" "), None, None, None).is_err());
    }

    #[test]
    fn problem_codes_have_the_right_shape() {
        assert!(NewProblem::new(
            "Type 2 diabetes",
            Some("icd10"),
            Some("E11.9"),
            Some("2019-04-01"),
            today()
        )
        .is_ok());
        assert!(NewProblem::new("Hypertension", None, Some("I10"), None, today()).is_ok());
        assert!(
            NewProblem::new("Asthma", Some("snomed"), Some("195967001"), None, today()).is_ok()
        );
        assert!(NewProblem::new("Asthma", Some("snomed"), Some("J45"), None, today()).is_err());
        assert!(
            NewProblem::new("Diabetes", Some("icd10"), Some("E11.99999"), None, today()).is_err()
        );
        assert!(NewProblem::new("Diabetes", Some("loinc"), Some("E11"), None, today()).is_err());
        assert!(NewProblem::new("Diabetes", None, None, Some("2999-01-01"), today()).is_err());
        assert!(NewProblem::new("", None, None, None, today()).is_err());
    }

    #[test]
    fn allergies_medications_and_immunizations_validate() {
        assert!(NewAllergy::new(
            "Penicillin",
            Some("Hives"),
            Some("moderate"),
            Some("medication")
        )
        .is_ok());
        assert!(NewAllergy::new("Penicillin", None, Some("deadly"), None).is_err());
        assert!(NewAllergy::new("NKDA", None, None, None).is_err());
        assert!(NewMedication::new(
            "Metformin",
            Some("500 mg"),
            Some("PO"),
            Some("twice daily"),
            Some("2020-01-01"),
            today()
        )
        .is_ok());
        assert!(
            NewMedication::new("Metformin", None, Some("by ear canal"), None, None, today())
                .is_err()
        );
        assert!(NewImmunization::new(
            "Influenza",
            "141",
            "2025-10-01",
            Some("AB12-3"),
            Some("left_arm"),
            today()
        )
        .is_ok());
        assert!(
            NewImmunization::new("Influenza", "flu", "2025-10-01", None, None, today()).is_err()
        );
        assert!(
            NewImmunization::new("Influenza", "141", "2030-10-01", None, None, today()).is_err()
        );
        assert!(NewImmunization::new(
            "Influenza",
            "141",
            "2025-10-01",
            Some("lot #5"),
            None,
            today()
        )
        .is_err());
        assert!(
            NewImmunization::new("Influenza", "141", "2025-10-01", None, Some("ear"), today())
                .is_err()
        );
    }

    #[test]
    fn content_that_arrives_shaped_is_checked_like_typed_content() {
        let shaped = |text: &str| NoteContent::Free { text: text.into() };
        assert_eq!(
            shaped("  seen today \r\n ok ").validated().expect("valid"),
            NoteContent::free("seen today \r\n ok").expect("valid")
        );
        assert!(shaped("   ").validated().is_err());
        assert!(shaped("bell \u{7}").validated().is_err());
        let empty_soap = NoteContent::Soap {
            subjective: Some(" ".into()),
            objective: None,
            assessment: None,
            plan: None,
        };
        assert!(empty_soap.validated().is_err());
    }
}
