//! Patients: validated registration data, the stored record, care teams and break-the-glass
//! grants. (The full clinical record arrives with the charting work; this is the part the
//! access rules need.)

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::CoreError;

const MAX_NAME_CHARS: usize = 100;

/// Administrative sex, as FHIR's AdministrativeGender codes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    Female,
    Male,
    Other,
    Unknown,
}

impl Sex {
    pub fn as_str(self) -> &'static str {
        match self {
            Sex::Female => "female",
            Sex::Male => "male",
            Sex::Other => "other",
            Sex::Unknown => "unknown",
        }
    }

    pub fn parse(text: &str) -> Result<Sex, CoreError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "female" | "f" => Ok(Sex::Female),
            "male" | "m" => Ok(Sex::Male),
            "other" => Ok(Sex::Other),
            "unknown" | "" => Ok(Sex::Unknown),
            _ => Err(CoreError::InvalidInput(
                "Sex is one of: female, male, other, unknown.".into(),
            )),
        }
    }
}

/// A person's name part: trimmed, 1–100 characters, no control characters.
fn name_part(label: &str, text: &str) -> Result<String, CoreError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(CoreError::InvalidInput(format!("The {label} is required.")));
    }
    if t.chars().count() > MAX_NAME_CHARS {
        return Err(CoreError::InvalidInput(format!(
            "The {label} is longer than {MAX_NAME_CHARS} characters."
        )));
    }
    if t.chars().any(char::is_control) {
        return Err(CoreError::InvalidInput(format!(
            "The {label} contains a control character."
        )));
    }
    Ok(t.to_owned())
}

/// Parses a birth date (YYYY-MM-DD) that is not in the future and not before 1880.
pub fn parse_birth_date(text: &str, today: NaiveDate) -> Result<NaiveDate, CoreError> {
    let date = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| {
        CoreError::InvalidInput(format!(
            "\"{}\" is not a date. Write birth dates as YYYY-MM-DD, e.g. 1984-03-02.",
            text.chars().take(20).collect::<String>()
        ))
    })?;
    if date > today {
        return Err(CoreError::InvalidInput(
            "The birth date is in the future.".into(),
        ));
    }
    if date < NaiveDate::from_ymd_opt(1880, 1, 1).unwrap_or(NaiveDate::MIN) {
        return Err(CoreError::InvalidInput(
            "The birth date is before 1880.".into(),
        ));
    }
    Ok(date)
}

/// What registering a patient needs, already validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPatient {
    pub family: String,
    pub given: String,
    pub birth_date: NaiveDate,
    pub sex: Sex,
    pub restricted: bool,
}

impl NewPatient {
    pub fn new(
        family: &str,
        given: &str,
        birth_date: &str,
        sex: &str,
        restricted: bool,
        today: NaiveDate,
    ) -> Result<NewPatient, CoreError> {
        Ok(NewPatient {
            family: name_part("family name", family)?,
            given: name_part("given name", given)?,
            birth_date: parse_birth_date(birth_date, today)?,
            sex: Sex::parse(sex)?,
            restricted,
        })
    }
}

/// A registered patient.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Patient {
    pub id: i64,
    pub mrn: String,
    pub family: String,
    pub given: String,
    pub birth_date: NaiveDate,
    pub sex: Sex,
    pub restricted: bool,
    pub created_at: String,
    pub created_by: String,
}

/// Folds text for matching: lower case, accents removed ("Müller" -> "muller").
pub fn fold(text: &str) -> String {
    text.chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => 'a',
            'ç' | 'ć' | 'č' => 'c',
            'ď' | 'đ' => 'd',
            'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' => 'e',
            'ì' | 'í' | 'î' | 'ï' | 'ī' | 'į' | 'ı' => 'i',
            'ñ' | 'ń' | 'ň' => 'n',
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => 'o',
            'ŕ' | 'ř' => 'r',
            'ś' | 'š' | 'ş' | 'ș' => 's',
            'ť' | 'ţ' | 'ț' => 't',
            'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' | 'ų' => 'u',
            'ý' | 'ÿ' => 'y',
            'ź' | 'ż' | 'ž' => 'z',
            'ł' => 'l',
            other => other,
        })
        .collect()
}

/// The next medical record number: a six-digit serial and a Luhn check digit.
pub(crate) fn next_mrn(conn: &Connection) -> Result<String, CoreError> {
    let n: i64 = conn.query_row("SELECT coalesce(max(id), 0) + 1 FROM patients", [], |r| {
        r.get(0)
    })?;
    let serial = format!("{n:06}");
    Ok(format!("{serial}{}", luhn_digit(&serial)))
}

fn luhn_digit(digits: &str) -> u32 {
    let sum: u32 = digits
        .chars()
        .rev()
        .filter_map(|c| c.to_digit(10))
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 0 {
                let dd = d * 2;
                if dd > 9 {
                    dd - 9
                } else {
                    dd
                }
            } else {
                d
            }
        })
        .sum();
    (10 - sum % 10) % 10
}

const PATIENT_COLUMNS: &str =
    "id, mrn, family, given, birth_date, sex, restricted, created_at, created_by";

fn row_to_patient(r: &rusqlite::Row<'_>) -> rusqlite::Result<Patient> {
    let birth: String = r.get(4)?;
    let sex: String = r.get(5)?;
    Ok(Patient {
        id: r.get(0)?,
        mrn: r.get(1)?,
        family: r.get(2)?,
        given: r.get(3)?,
        birth_date: NaiveDate::parse_from_str(&birth, "%Y-%m-%d").unwrap_or(NaiveDate::MIN),
        sex: Sex::parse(&sex).unwrap_or(Sex::Unknown),
        restricted: r.get(6)?,
        created_at: r.get(7)?,
        created_by: r.get(8)?,
    })
}

pub(crate) fn find(conn: &Connection, id: i64) -> Result<Option<Patient>, CoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {PATIENT_COLUMNS} FROM patients WHERE id = ?1"
        ))?
        .query_row([id], row_to_patient)
        .optional()?)
}

pub(crate) fn insert(
    conn: &Connection,
    p: &NewPatient,
    now: &str,
    by: &str,
) -> Result<Patient, CoreError> {
    let mrn = next_mrn(conn)?;
    conn.execute(
        "INSERT INTO patients (mrn, family, given, birth_date, sex, restricted, created_at, created_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            mrn,
            p.family,
            p.given,
            p.birth_date.format("%Y-%m-%d").to_string(),
            p.sex.as_str(),
            p.restricted,
            now,
            by
        ],
    )?;
    let id = conn.last_insert_rowid();
    find(conn, id)?.ok_or_else(|| CoreError::NotFound("The new patient vanished.".into()))
}

/// A search result: enough to pick the right person, nothing clinical.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PatientSummary {
    pub id: i64,
    pub mrn: String,
    pub family: String,
    pub given: String,
    pub birth_date: NaiveDate,
    pub sex: Sex,
    pub restricted: bool,
}

/// A simple search by MRN, or by the start of a family or given name (accents folded). The
/// ranked, typo-tolerant search replaces this with the charting work.
pub(crate) fn search(
    conn: &Connection,
    query: &str,
    limit: usize,
) -> Result<Vec<PatientSummary>, CoreError> {
    let q = fold(query.trim());
    if q.is_empty() {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {PATIENT_COLUMNS} FROM patients ORDER BY family, given, id"
    ))?;
    let rows = stmt.query_map([], row_to_patient)?;
    let mut exact = Vec::new();
    let mut prefix = Vec::new();
    for row in rows {
        let p = row?;
        let (f, g) = (fold(&p.family), fold(&p.given));
        let hit = PatientSummary {
            id: p.id,
            mrn: p.mrn.clone(),
            family: p.family,
            given: p.given,
            birth_date: p.birth_date,
            sex: p.sex,
            restricted: p.restricted,
        };
        if p.mrn == q || f == q || g == q {
            exact.push(hit);
        } else if f.starts_with(&q) || g.starts_with(&q) {
            prefix.push(hit);
        }
    }
    exact.extend(prefix);
    exact.truncate(limit);
    Ok(exact)
}

/// How a session may open a patient's chart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "via", rename_all = "snake_case")]
pub enum ChartAccess {
    /// The patient is not restricted.
    Open,
    /// The user is on the patient's care team.
    CareTeam,
    /// Through a break-the-glass grant, until `expires_at`.
    BreakGlass { reason: String, expires_at: String },
}

pub(crate) fn on_care_team(conn: &Connection, patient: i64, user: i64) -> Result<bool, CoreError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM care_team WHERE patient_id = ?1 AND user_id = ?2")?
        .query_row(params![patient, user], |_| Ok(()))
        .optional()?
        .is_some())
}

pub(crate) fn active_grant(
    conn: &Connection,
    patient: i64,
    user: i64,
    now: DateTime<Utc>,
) -> Result<Option<(String, String)>, CoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT reason, expires_at FROM access_grants
              WHERE patient_id = ?1 AND user_id = ?2 AND expires_at > ?3
              ORDER BY expires_at DESC LIMIT 1",
        )?
        .query_row(
            params![patient, user, chartroom_audit::format_time(now)],
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

/// A clinical note: a draft until a physician signs it; then final.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Note {
    pub id: i64,
    pub patient_id: i64,
    pub author: String,
    pub text: String,
    pub status: String,
    pub created_at: String,
    pub signed_by: Option<String>,
    pub signed_at: Option<String>,
    /// SHA-256 of the text as signed.
    pub content_sha256: Option<String>,
}

pub(crate) fn row_to_note(r: &rusqlite::Row<'_>) -> rusqlite::Result<Note> {
    Ok(Note {
        id: r.get(0)?,
        patient_id: r.get(1)?,
        author: r.get(2)?,
        text: r.get(3)?,
        status: r.get(4)?,
        created_at: r.get(5)?,
        signed_by: r.get(6)?,
        signed_at: r.get(7)?,
        content_sha256: r.get(8)?,
    })
}

pub(crate) const NOTE_COLUMNS: &str =
    "id, patient_id, author, text, status, created_at, signed_by, signed_at, content_sha256";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mrns_carry_a_luhn_check_digit() {
        assert_eq!(luhn_digit("7992739871"), 3);
        assert_eq!(luhn_digit("000001"), 8);
    }

    #[test]
    fn folding_removes_case_and_accents() {
        assert_eq!(fold("Müller"), "muller");
        assert_eq!(fold("ŁUKASZ Ñúñez"), "lukasz nunez");
    }

    #[test]
    fn names_and_dates_are_validated() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 24).expect("date");
        assert!(NewPatient::new("Okafor", "Ada", "1984-03-02", "female", false, today).is_ok());
        assert!(NewPatient::new("  ", "Ada", "1984-03-02", "female", false, today).is_err());
        assert!(NewPatient::new("Okafor", "Ada", "2027-01-01", "female", false, today).is_err());
        assert!(NewPatient::new("Okafor", "Ada", "02/03/1984", "female", false, today).is_err());
        assert!(NewPatient::new("Okafor", "Ada", "1984-03-02", "robot", false, today).is_err());
        assert!(NewPatient::new("Oka\u{7}for", "Ada", "1984-03-02", "f", false, today).is_err());
    }
}
