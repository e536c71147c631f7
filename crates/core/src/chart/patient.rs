//! Patients: validated demographics and the stored record with its version history; the
//! changes that register a patient and change their demographics or restriction, their one
//! writer (the only code that writes `patients`, `patient_versions` and
//! `patient_name_words`), and the operations on the Session.

use chrono::NaiveDate;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

/// The name words of every patient registered before name search existed: the backfill
/// migration 3 (schema.rs) runs once, kept here with the table's one writer. A migration that
/// has shipped is never rewritten: the text is as it ran.
macro_rules! name_words_backfill {
    () => {
        "        INSERT INTO patient_name_words SELECT lower(family), id, 0 FROM patients;
        INSERT OR IGNORE INTO patient_name_words SELECT lower(given), id, 1 FROM patients;
"
    };
}
pub(crate) use name_words_backfill;

/// Version 1 of the demographics of every patient registered before the history existed:
/// the backfill migration 3 (schema.rs) runs once, kept here with the table's one writer.
macro_rules! first_versions_backfill {
    () => {
        "        INSERT INTO patient_versions SELECT id, 1,
            json_object('demographics', json_object('family', family, 'given', given, 'preferred', NULL,
                'birth_date', birth_date, 'sex', sex, 'gender_identity', NULL, 'phone', NULL,
                'email', NULL, 'address', NULL, 'emergency_contact', NULL),
                'restricted', json(CASE restricted WHEN 1 THEN 'true' ELSE 'false' END)),
            created_at, created_by FROM patients;
"
    };
}
pub(crate) use first_versions_backfill;

use super::change::{self, apply, same, Applied, Change, RecordId, Stamp, Table};
use super::input::{name_part, optional_text, parse_past_date};
use crate::access::CareTeamChanged;
use crate::audit::Op;
use crate::error::Denial;
use crate::ids::*;
use crate::roles::{Permission, Role};
use crate::{CoreError, Session};

const MAX_NAME_CHARS: usize = 100;
const MAX_TEXT_CHARS: usize = 300;

/// Administrative sex, as FHIR's AdministrativeGender codes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
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

/// Gender identity, as the patient states it (after the FHIR individual-genderIdentity
/// extension's value set).
pub const GENDER_IDENTITIES: [&str; 7] = [
    "female",
    "male",
    "non_binary",
    "transgender_female",
    "transgender_male",
    "other",
    "not_disclosed",
];

fn gender_identity(text: &str) -> Result<String, CoreError> {
    let t = text.trim().to_ascii_lowercase().replace(['-', ' '], "_");
    if GENDER_IDENTITIES.contains(&t.as_str()) {
        Ok(t)
    } else {
        Err(CoreError::InvalidInput(format!(
            "Gender identity is one of: {}.",
            GENDER_IDENTITIES.join(", ")
        )))
    }
}

/// A telephone number: digits with optional +, spaces, dots, dashes and brackets; 7 to 15
/// digits (E.164's maximum).
pub fn phone(label: &str, text: &str) -> Result<String, CoreError> {
    let t = text.trim();
    let digits = t.chars().filter(char::is_ascii_digit).count();
    let ok = t
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '.' | '(' | ')'))
        && (7..=15).contains(&digits)
        && !t.chars().skip(1).any(|c| c == '+');
    if ok {
        Ok(t.to_owned())
    } else {
        Err(CoreError::InvalidInput(format!(
            "The {label} \"{}\" is not a phone number: use 7 to 15 digits, with + - ( ) and spaces if you like.",
            t.chars().take(30).collect::<String>()
        )))
    }
}

fn email(text: &str) -> Result<String, CoreError> {
    let t = text.trim();
    let bad = || {
        CoreError::InvalidInput(format!(
            "\"{}\" is not an email address.",
            t.chars().take(60).collect::<String>()
        ))
    };
    let (local, domain) = t.rsplit_once('@').ok_or_else(bad)?;
    let ok = !local.is_empty()
        && t.len() <= 254
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !t.chars().any(|c| c.is_whitespace() || c.is_control())
        && !local.contains('@');
    if ok {
        Ok(t.to_owned())
    } else {
        Err(bad())
    }
}

/// Parses a birth date (YYYY-MM-DD) that is not in the future and not before 1880.
pub fn parse_birth_date(text: &str, today: NaiveDate) -> Result<NaiveDate, CoreError> {
    parse_past_date("birth date", text, today)
}

/// Someone to call in an emergency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct EmergencyContact {
    pub name: String,
    pub phone: String,
    pub relationship: Option<String>,
}

/// A patient's demographics, validated. Every version of these is kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Demographics {
    pub family: String,
    pub given: String,
    pub preferred: Option<String>,
    pub birth_date: NaiveDate,
    pub sex: Sex,
    pub gender_identity: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    pub emergency_contact: Option<EmergencyContact>,
    /// USCDI race: CDC Race & Ethnicity codes (OMB categories and detailed), or `ASKU`
    /// (chose not to answer) or `UNK` alone. Empty: never asked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "ts", ts(optional, as = "Option<Vec<String>>"))]
    pub race: Vec<String>,
    /// USCDI ethnicity: Hispanic or Latino (2135-2, with detailed origins) or not (2186-5),
    /// or `ASKU` / `UNK`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "ts", ts(optional, as = "Option<Vec<String>>"))]
    pub ethnicity: Vec<String>,
    /// Preferred language, BCP 47 (`en`, `es`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub language: Option<String>,
    /// Sex assigned at birth: `F`, `M` or `UNK`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub birth_sex: Option<String>,
    /// Sexual orientation: a SNOMED CT code, or `OTH`, `UNK`, `ASKU`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub sexual_orientation: Option<String>,
}

/// Demographics as typed into a form or on the command line: text, validated by
/// [`PatientForm::validate`]. For optional fields, an empty string means "none".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PatientForm {
    pub family: String,
    pub given: String,
    pub preferred: Option<String>,
    pub birth_date: String,
    pub sex: String,
    pub gender_identity: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    pub emergency_name: Option<String>,
    pub emergency_phone: Option<String>,
    pub emergency_relationship: Option<String>,
    /// Race codes or names, separated by commas.
    pub race: Option<String>,
    /// Ethnicity codes or names, separated by commas.
    pub ethnicity: Option<String>,
    pub language: Option<String>,
    pub birth_sex: Option<String>,
    pub sexual_orientation: Option<String>,
}

/// An optional coded field: empty is none, otherwise `parse` says what it is.
fn optional_code<T>(
    text: Option<&str>,
    parse: impl Fn(&str) -> Result<T, CoreError>,
) -> Result<Option<T>, CoreError> {
    match text.map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) => parse(t).map(Some),
    }
}

impl PatientForm {
    pub fn validate(&self, today: NaiveDate) -> Result<Demographics, CoreError> {
        let emergency_name = optional_text(
            "emergency contact's name",
            self.emergency_name.as_deref(),
            MAX_NAME_CHARS,
        )?;
        let emergency_phone = match self.emergency_phone.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(p) => Some(phone("emergency contact's phone", p)?),
        };
        let emergency_relationship = optional_text(
            "emergency contact's relationship",
            self.emergency_relationship.as_deref(),
            60,
        )?;
        let emergency_contact = match (emergency_name, emergency_phone) {
            (None, None) if emergency_relationship.is_none() => None,
            (Some(name), Some(phone)) => Some(EmergencyContact {
                name,
                phone,
                relationship: emergency_relationship,
            }),
            _ => {
                return Err(CoreError::InvalidInput(
                    "An emergency contact needs both a name and a phone number.".into(),
                ))
            }
        };
        Ok(Demographics {
            family: name_part("family name", &self.family)?,
            given: name_part("given name", &self.given)?,
            preferred: optional_text("preferred name", self.preferred.as_deref(), MAX_NAME_CHARS)?,
            birth_date: parse_birth_date(&self.birth_date, today)?,
            sex: Sex::parse(&self.sex)?,
            gender_identity: match self.gender_identity.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(g) => Some(gender_identity(g)?),
            },
            phone: match self.phone.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(p) => Some(phone("phone number", p)?),
            },
            email: match self.email.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(e) => Some(email(e)?),
            },
            address: optional_text("address", self.address.as_deref(), MAX_TEXT_CHARS)?,
            emergency_contact,
            race: optional_code(self.race.as_deref(), super::uscdi::races)?.unwrap_or_default(),
            ethnicity: optional_code(self.ethnicity.as_deref(), super::uscdi::ethnicities)?
                .unwrap_or_default(),
            language: optional_code(self.language.as_deref(), super::uscdi::language)?,
            birth_sex: optional_code(self.birth_sex.as_deref(), super::uscdi::birth_sex)?,
            sexual_orientation: optional_code(
                self.sexual_orientation.as_deref(),
                super::uscdi::sexual_orientation,
            )?,
        })
    }
}

impl Demographics {
    /// The same demographics as form text, for applying partial changes.
    pub fn to_form(&self) -> PatientForm {
        PatientForm {
            family: self.family.clone(),
            given: self.given.clone(),
            preferred: self.preferred.clone(),
            birth_date: self.birth_date.format("%Y-%m-%d").to_string(),
            sex: self.sex.as_str().to_owned(),
            gender_identity: self.gender_identity.clone(),
            phone: self.phone.clone(),
            email: self.email.clone(),
            address: self.address.clone(),
            emergency_name: self.emergency_contact.as_ref().map(|e| e.name.clone()),
            emergency_phone: self.emergency_contact.as_ref().map(|e| e.phone.clone()),
            emergency_relationship: self
                .emergency_contact
                .as_ref()
                .and_then(|e| e.relationship.clone()),
            race: (!self.race.is_empty()).then(|| self.race.join(",")),
            ethnicity: (!self.ethnicity.is_empty()).then(|| self.ethnicity.join(",")),
            language: self.language.clone(),
            birth_sex: self.birth_sex.clone(),
            sexual_orientation: self.sexual_orientation.clone(),
        }
    }
}

/// What registering a patient needs, already validated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPatient {
    pub demographics: Demographics,
    pub restricted: bool,
}

impl NewPatient {
    /// The short form: names, birth date and sex.
    pub fn new(
        family: &str,
        given: &str,
        birth_date: &str,
        sex: &str,
        restricted: bool,
        today: NaiveDate,
    ) -> Result<NewPatient, CoreError> {
        let form = PatientForm {
            family: family.into(),
            given: given.into(),
            birth_date: birth_date.into(),
            sex: sex.into(),
            ..PatientForm::default()
        };
        Ok(NewPatient {
            demographics: form.validate(today)?,
            restricted,
        })
    }

    pub fn from_form(
        form: &PatientForm,
        restricted: bool,
        today: NaiveDate,
    ) -> Result<NewPatient, CoreError> {
        Ok(NewPatient {
            demographics: form.validate(today)?,
            restricted,
        })
    }
}

/// A registered patient.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Patient {
    pub id: PatientId,
    pub mrn: String,
    #[serde(flatten)]
    pub demographics: Demographics,
    pub restricted: bool,
    /// How the allergy list stands: `unknown`, `no_known_allergies` or `recorded`. Clinical
    /// information: absent for roles that may not read the clinical record.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub allergy_status: Option<String>,
    /// Increases with every change of demographics.
    pub version: i64,
    pub created_at: String,
    pub created_by: String,
    pub updated_at: String,
    pub updated_by: String,
    /// The patient's global id, which changes name them by.
    #[serde(skip)]
    #[cfg_attr(feature = "ts", ts(skip))]
    pub(crate) uuid: RecordId,
}

impl Patient {
    /// Age in whole years on `today`.
    pub fn age_on(&self, today: NaiveDate) -> u32 {
        today.years_since(self.demographics.birth_date).unwrap_or(0)
    }
}

/// Folds text for matching: lower case, accents removed ("Müller" -> "muller",
/// "Nguyễn" -> "nguyen"), apostrophes dropped and hyphens made spaces.
pub fn fold(text: &str) -> String {
    use unicode_normalization::char::is_combining_mark;
    use unicode_normalization::UnicodeNormalization;
    text.nfd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .filter_map(|c| {
            Some(match c {
                // Letters that are not a base letter plus a mark.
                'ł' => 'l',
                'ø' => 'o',
                'đ' | 'ð' => 'd',
                'ı' => 'i',
                'æ' => 'a',
                'œ' => 'o',
                'ß' => 's',
                'þ' => 't',
                '\'' | '’' | '‘' | 'ʼ' => return None,
                '-' | '‐' | '‑' => ' ',
                other => other,
            })
        })
        .collect()
}

/// The words of a name as search matches them: folded, split on spaces and hyphens.
pub fn name_words(text: &str) -> Vec<String> {
    fold(text)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Just the digits of a phone number, for search.
/// A phone's digits reversed: its last digits first, as the index finds a number given
/// without its country or area code.
pub(crate) fn phone_reversed(text: &str) -> String {
    phone_digits(text).chars().rev().collect()
}

pub fn phone_digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

/// The next medical record number: a six-digit serial and a Luhn check digit.
fn next_mrn(conn: &Connection) -> Result<String, CoreError> {
    let n: i64 = conn
        .prepare_cached("SELECT coalesce(max(id), 0) + 1 FROM patients")?
        .query_row([], |r| r.get(0))?;
    Ok(mrn_for(n))
}

/// The MRN of the `n`th patient.
pub fn mrn_for(n: i64) -> String {
    let serial = format!("{n:06}");
    format!("{serial}{}", luhn_digit(&serial))
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

pub(crate) const PATIENT_COLUMNS: &str = "id, mrn, family, given, preferred_name, birth_date, sex,
    gender_identity, phone, email, address, emergency_name, emergency_phone, emergency_relation,
    restricted, allergy_state, version, created_at, created_by, updated_at, updated_by, uuid,
    cr_popen(uuid, 'patients', sealed), race, ethnicity, language, birth_sex, sexual_orientation";

/// What the clear columns of a restricted patient hold in place of who they are: their
/// demographics are sealed to the patient's own key (`patients.sealed`).
pub(crate) const RESTRICTED_FAMILY: &str = "Restricted patient";
const RESTRICTED_BIRTH_DATE: &str = "1900-01-01";

/// Race or ethnicity codes as one column: comma-separated, NULL for none.
fn codes_column(codes: &[String]) -> Option<String> {
    (!codes.is_empty()).then(|| codes.join(","))
}

fn codes(column: Option<String>) -> Vec<String> {
    column
        .map(|c| c.split(',').map(str::to_owned).collect())
        .unwrap_or_default()
}

pub(crate) fn row_to_patient(r: &rusqlite::Row<'_>) -> rusqlite::Result<Patient> {
    let birth: String = r.get(5)?;
    let sex: String = r.get(6)?;
    let emergency_name: Option<String> = r.get(11)?;
    let emergency_phone: Option<String> = r.get(12)?;
    let created_at: String = r.get(17)?;
    let created_by: String = r.get(18)?;
    Ok(Patient {
        id: r.get(0)?,
        mrn: r.get(1)?,
        demographics: Demographics {
            family: r.get(2)?,
            given: r.get(3)?,
            preferred: r.get(4)?,
            birth_date: NaiveDate::parse_from_str(&birth, "%Y-%m-%d").unwrap_or(NaiveDate::MIN),
            sex: Sex::parse(&sex).unwrap_or(Sex::Unknown),
            gender_identity: r.get(7)?,
            phone: r.get(8)?,
            email: r.get(9)?,
            address: r.get(10)?,
            emergency_contact: match (emergency_name, emergency_phone) {
                (Some(name), Some(phone)) => Some(EmergencyContact {
                    name,
                    phone,
                    relationship: r.get(13)?,
                }),
                _ => None,
            },
            race: codes(r.get(23)?),
            ethnicity: codes(r.get(24)?),
            language: r.get(25)?,
            birth_sex: r.get(26)?,
            sexual_orientation: r.get(27)?,
        },
        restricted: r.get(14)?,
        allergy_status: Some(r.get(15)?),
        version: r.get(16)?,
        updated_at: r
            .get::<_, Option<String>>(19)?
            .unwrap_or_else(|| created_at.clone()),
        updated_by: r
            .get::<_, Option<String>>(20)?
            .unwrap_or_else(|| created_by.clone()),
        uuid: r.get(21)?,
        created_at,
        created_by,
    })
    .map(|mut p| {
        // A restricted patient's demographics, where this session's keys open them.
        if let Some(d) = r
            .get::<_, Option<String>>(22)
            .ok()
            .flatten()
            .and_then(|json| serde_json::from_str::<Demographics>(&json).ok())
        {
            p.demographics = d;
        }
        p
    })
}

/// The patient `id`, or a "not found" error that says so.
pub(crate) fn get(conn: &Connection, id: i64) -> Result<Patient, CoreError> {
    find(conn, id)?.ok_or_else(|| CoreError::NotFound(format!("There is no patient with id {id}.")))
}

pub(crate) fn find(conn: &Connection, id: i64) -> Result<Option<Patient>, CoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {PATIENT_COLUMNS} FROM patients WHERE id = ?1"
        ))?
        .query_row([id], row_to_patient)
        .optional()?)
}

/// One version of a patient's demographics: who made it and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct PatientVersion {
    pub version: i64,
    pub changed_at: String,
    pub changed_by: String,
    pub demographics: Demographics,
    pub restricted: bool,
}

pub(crate) fn history(conn: &Connection, id: i64) -> Result<Vec<PatientVersion>, CoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT v.version, v.changed_at, v.changed_by,
                CASE WHEN v.data LIKE 'psealed:%' THEN cr_popen(p.uuid, 'patient_versions', v.data) ELSE v.data END
           FROM patient_versions v JOIN patients p ON p.id = v.patient_id
          WHERE v.patient_id = ?1 ORDER BY v.version",
    )?;
    let rows = stmt.query_map([id], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Option<String>>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (version, changed_at, changed_by, data) = row?;
        let data = data.ok_or(crate::keys::FieldError::NoPatientKey)?;
        #[derive(Deserialize)]
        struct Snapshot {
            demographics: Demographics,
            restricted: bool,
        }
        let snap: Snapshot = serde_json::from_str(&data).map_err(|_| {
            CoreError::Integrity(format!("Version {version} of patient {id} cannot be read."))
        })?;
        out.push(PatientVersion {
            version,
            changed_at,
            changed_by,
            demographics: snap.demographics,
            restricted: snap.restricted,
        });
    }
    Ok(out)
}

/// Changes to demographics: `None` leaves a field as it is; for optional fields,
/// `Some("")` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatientChanges {
    pub family: Option<String>,
    pub given: Option<String>,
    pub preferred: Option<String>,
    pub birth_date: Option<String>,
    pub sex: Option<String>,
    pub gender_identity: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    pub emergency_name: Option<String>,
    pub emergency_phone: Option<String>,
    pub emergency_relationship: Option<String>,
    pub race: Option<String>,
    pub ethnicity: Option<String>,
    pub language: Option<String>,
    pub birth_sex: Option<String>,
    pub sexual_orientation: Option<String>,
    /// Changing the restriction also needs the care-team permission.
    pub restricted: Option<bool>,
}

impl PatientChanges {
    fn apply(&self, form: &mut PatientForm) -> Vec<&'static str> {
        let mut changed = Vec::new();
        let mut set = |name: &'static str, target: &mut String, value: &Option<String>| {
            if let Some(v) = value {
                if target != v {
                    changed.push(name);
                }
                *target = v.clone();
            }
        };
        set("family", &mut form.family, &self.family);
        set("given", &mut form.given, &self.given);
        set("birth_date", &mut form.birth_date, &self.birth_date);
        set("sex", &mut form.sex, &self.sex);
        let mut set_opt =
            |name: &'static str, target: &mut Option<String>, value: &Option<String>| {
                if let Some(v) = value {
                    let new = (!v.trim().is_empty()).then(|| v.clone());
                    if *target != new {
                        changed.push(name);
                    }
                    *target = new;
                }
            };
        set_opt("preferred", &mut form.preferred, &self.preferred);
        set_opt(
            "gender_identity",
            &mut form.gender_identity,
            &self.gender_identity,
        );
        set_opt("phone", &mut form.phone, &self.phone);
        set_opt("email", &mut form.email, &self.email);
        set_opt("address", &mut form.address, &self.address);
        set_opt(
            "emergency_name",
            &mut form.emergency_name,
            &self.emergency_name,
        );
        set_opt(
            "emergency_phone",
            &mut form.emergency_phone,
            &self.emergency_phone,
        );
        set_opt(
            "emergency_relationship",
            &mut form.emergency_relationship,
            &self.emergency_relationship,
        );
        set_opt("race", &mut form.race, &self.race);
        set_opt("ethnicity", &mut form.ethnicity, &self.ethnicity);
        set_opt("language", &mut form.language, &self.language);
        set_opt("birth_sex", &mut form.birth_sex, &self.birth_sex);
        set_opt(
            "sexual_orientation",
            &mut form.sexual_orientation,
            &self.sexual_orientation,
        );
        changed
    }
}

/// A patient registered: version 1 of [`Change::PatientRegistered`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatientRegistered {
    pub patient: RecordId,
    pub mrn: String,
    #[serde(flatten)]
    pub new: NewPatient,
    pub registered: Stamp,
}

/// New demographics for a patient (the previous version is kept): version 1 of
/// [`Change::DemographicsChanged`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemographicsChanged {
    pub patient: RecordId,
    pub demographics: Demographics,
    pub changed: Stamp,
}

/// A chart restricted to its care team, or opened again: version 1 of
/// [`Change::RestrictionChanged`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestrictionChanged {
    pub patient: RecordId,
    pub restricted: bool,
    pub changed: Stamp,
}

/// What is known about a patient's allergies, once someone has asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AllergyState {
    NoKnownAllergies,
    Recorded,
}

fn check_demographics(d: &Demographics, today: NaiveDate) -> Result<(), CoreError> {
    same("demographics", &d.to_form().validate(today)?, d)
}

fn check_mrn(mrn: &str) -> Result<(), CoreError> {
    let serial = mrn
        .get(..6)
        .filter(|s| mrn.len() == 7 && s.chars().all(|c| c.is_ascii_digit()))
        .and_then(|s| s.parse::<i64>().ok());
    match serial {
        Some(n) if mrn_for(n) == mrn => Ok(()),
        _ => Err(CoreError::InvalidInput(format!(
            "\"{}\" is not a medical record number (six digits and a check digit).",
            mrn.chars().take(20).collect::<String>()
        ))),
    }
}

/// Writes the searchable words of a patient's names.
fn index_names(conn: &Connection, id: impl Into<i64>, d: &Demographics) -> Result<(), CoreError> {
    let id: i64 = id.into();
    conn.prepare_cached("DELETE FROM patient_name_words WHERE patient_id = ?1")?
        .execute([id])?;
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO patient_name_words (word, patient_id, field) VALUES (?1, ?2, ?3)",
    )?;
    for (field, text) in [
        (0, Some(d.family.as_str())),
        (1, Some(d.given.as_str())),
        (2, d.preferred.as_deref()),
    ] {
        if let Some(text) = text {
            for word in name_words(text) {
                insert.execute(params![word, id, field])?;
            }
        }
    }
    Ok(())
}

/// Keeps a version in the history; a restricted patient's sealed to their key.
fn write_version(
    conn: &Connection,
    id: PatientId,
    uuid: &RecordId,
    version: i64,
    d: &Demographics,
    restricted: bool,
    stamp: &Stamp,
) -> Result<(), CoreError> {
    let snapshot = serde_json::json!({ "demographics": d, "restricted": restricted });
    conn.prepare_cached(
        "INSERT INTO patient_versions (patient_id, version, data, changed_at, changed_by)
         VALUES (?1, ?2, CASE WHEN ?6 THEN cr_pseal(?7, 'patient_versions', ?3) ELSE ?3 END, ?4, ?5)",
    )?
    .execute(params![
        id,
        version,
        snapshot.to_string(),
        stamp.time(),
        stamp.by,
        restricted,
        uuid.as_bytes().as_slice()
    ])?;
    Ok(())
}

/// A patient already here whom a registration may duplicate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct DuplicateCandidate {
    pub id: PatientId,
    pub mrn: String,
    pub family: String,
    pub given: String,
    pub birth_date: String,
    pub phone: Option<String>,
    /// What matched: `name_and_birth_date`, `birth_date_and_phone` or `name_and_phone`; for
    /// an import, also `identifier` (the same identifier system and value).
    pub matched: &'static str,
}

/// The patients here who look like `d`: the same birth date and family name with a given
/// name equal or the start of the other; the same birth date and phone (its
/// last seven digits); or the same names and phone (a birth date typed wrong). A restricted
/// patient counts only for someone who may open the chart (the search's rule: a
/// registration must not confirm that a named person is a restricted patient here).
pub(crate) fn possible_duplicates(
    conn: &Connection,
    ctx: &crate::session::Ctx<'_>,
    d: &Demographics,
) -> Result<Vec<DuplicateCandidate>, CoreError> {
    let same_name = |p: &Demographics| {
        let (f1, f2) = (fold(&p.family), fold(&d.family));
        let (g1, g2) = (fold(&p.given), fold(&d.given));
        // "Jo" and "Johanna" may be one person; "Anna" and "Anne" born the same day are as
        // likely twins, and are not matched.
        f1 == f2
            && (g1 == g2
                || (g1.chars().count().min(g2.chars().count()) >= 2
                    && (g1.starts_with(&g2) || g2.starts_with(&g1))))
    };
    let tail = |phone: &Option<String>| {
        phone
            .as_deref()
            .map(phone_digits)
            .and_then(|p| (p.len() >= 7).then(|| p[p.len() - 7..].to_owned()))
    };
    let my_tail = tail(&d.phone);
    let mut ids: Vec<i64> = conn
        .prepare_cached("SELECT id FROM patients WHERE birth_date = ?1 LIMIT 500")?
        .query_map([d.birth_date.format("%Y-%m-%d").to_string()], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if let Some(t) = &my_tail {
        let reversed: String = t.chars().rev().collect();
        let by_phone: Vec<i64> = conn
            .prepare_cached(
                "SELECT id FROM patients WHERE phone_rev >= ?1 AND phone_rev < ?1 || ':' LIMIT 500",
            )?
            .query_map([reversed], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        ids.extend(by_phone);
    }
    ids.sort_unstable();
    ids.dedup();
    let mut people: Vec<Patient> = Vec::new();
    for id in ids {
        let p = get(conn, id)?;
        // A restricted chart's clear columns hold placeholders; it is compared below, and
        // only where the registrant may open it.
        if !p.restricted {
            people.push(p);
        }
    }
    for (id, _) in crate::search::openable_restricted(conn, ctx)? {
        people.push(get(conn, id)?);
    }
    let mut out = Vec::new();
    for p in people {
        let pd = &p.demographics;
        let born = pd.birth_date == d.birth_date;
        let phone = my_tail.is_some() && tail(&pd.phone) == my_tail;
        let matched = if born && same_name(pd) {
            "name_and_birth_date"
        } else if born && phone {
            "birth_date_and_phone"
        } else if phone && fold(&pd.family) == fold(&d.family) && fold(&pd.given) == fold(&d.given)
        {
            "name_and_phone"
        } else {
            continue;
        };
        out.push(DuplicateCandidate {
            id: p.id,
            mrn: p.mrn.clone(),
            family: pd.family.clone(),
            given: pd.given.clone(),
            birth_date: pd.birth_date.format("%Y-%m-%d").to_string(),
            phone: pd.phone.clone(),
            matched,
        });
    }
    Ok(out)
}

/// Seals a restricted patient's demographics into `patients.sealed` and leaves placeholders
/// in the clear columns and nothing in the name index (the care team finds them in memory).
fn write_sealed_demographics(
    conn: &Connection,
    id: i64,
    uuid: &RecordId,
    d: &Demographics,
) -> Result<(), CoreError> {
    let json =
        serde_json::to_string(d).map_err(|e| CoreError::Integrity(format!("demographics: {e}")))?;
    conn.prepare_cached(
        "UPDATE patients SET family = ?2, given = '', preferred_name = NULL, birth_date = ?3,
            gender_identity = NULL, phone = NULL, phone_digits = NULL, phone_rev = NULL,
            email = NULL, address = NULL,
            emergency_name = NULL, emergency_phone = NULL, emergency_relation = NULL,
            race = NULL, ethnicity = NULL, language = NULL, birth_sex = NULL,
            sexual_orientation = NULL,
            sealed = cr_pseal(?4, 'patients', ?5)
         WHERE id = ?1",
    )?
    .execute(params![
        id,
        RESTRICTED_FAMILY,
        RESTRICTED_BIRTH_DATE,
        uuid.as_bytes().as_slice(),
        json
    ])?;
    conn.prepare_cached("DELETE FROM patient_name_words WHERE patient_id = ?1")?
        .execute([id])?;
    Ok(())
}

/// Seals (or, when a restriction is lifted, opens) the history of patient `id`: the one
/// change the append-only history allows, with its protection back before the commit.
fn convert_history(
    conn: &Connection,
    id: i64,
    uuid: &RecordId,
    restricted: bool,
) -> Result<(), CoreError> {
    conn.execute_batch("DROP TRIGGER IF EXISTS patient_versions_no_update")?;
    let uuid = uuid.as_bytes().as_slice();
    let result = if restricted {
        conn.execute(
            "UPDATE patient_versions SET data = cr_pseal(?2, 'patient_versions', data)
              WHERE patient_id = ?1 AND data NOT LIKE 'psealed:%'",
            params![id, uuid],
        )
    } else {
        conn.execute(
            "UPDATE patient_versions SET data = cr_popen(?2, 'patient_versions', data)
              WHERE patient_id = ?1 AND data LIKE 'psealed:%'",
            params![id, uuid],
        )
    };
    conn.execute_batch(crate::schema::PATIENT_VERSIONS_NO_UPDATE_SQL)?;
    match result {
        Ok(_) => Ok(()),
        // A version that does not open (NULL) cannot be put back in clear.
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(crate::keys::FieldError::NoPatientKey.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// Seals what a restricted patient's history holds anew under their current key (after a
/// new epoch: a member left the care team).
pub(crate) fn reseal_restricted(
    conn: &Connection,
    id: i64,
    uuid: &RecordId,
) -> Result<(), CoreError> {
    let current = get(conn, id)?;
    if !current.restricted {
        return Ok(());
    }
    convert_history(conn, id, uuid, false)?;
    convert_history(conn, id, uuid, true)?;
    write_sealed_demographics(conn, id, uuid, &current.demographics)
}

/// Gives every restricted chart a new key and seals it anew (after the clinical key rotated:
/// someone who kept the old clinical key opens the charts' old keys through their seals to
/// it, and nothing written after). Returns how many.
pub(crate) fn rekey_restricted_charts(conn: &Connection, at: &str) -> Result<usize, CoreError> {
    let rows: Vec<(i64, RecordId)> = conn
        .prepare(
            "SELECT id, uuid FROM patients INDEXED BY patients_restricted
              WHERE restricted = 1 AND sealed IS NOT NULL",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (id, uuid) in &rows {
        let members = crate::access::verified_team(conn, *id)?;
        crate::patient_keys::make_for(conn, *id, uuid.as_bytes(), &members, at)?;
        reseal_restricted(conn, *id, uuid)?;
        crate::patient_keys::prune_earlier(conn, *id)?;
    }
    Ok(rows.len())
}

/// Seals the restricted patients an earlier version kept in clear: a key of their own
/// (sealed to their care team, the recovery key and the clinical key), their demographics
/// and history sealed, the clear columns emptied. Returns how many.
pub(crate) fn seal_restricted_in_clear(conn: &Connection, at: &str) -> Result<usize, CoreError> {
    let rows: Vec<i64> = conn
        .prepare(
            "SELECT id FROM patients INDEXED BY patients_restricted
              WHERE restricted = 1 AND sealed IS NULL AND uuid IS NOT NULL",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for id in &rows {
        let p = get(conn, *id)?;
        let members = crate::access::care_team(conn, *id)?;
        crate::patient_keys::make_for(conn, *id, p.uuid.as_bytes(), &members, at)?;
        convert_history(conn, *id, &p.uuid, true)?;
        write_sealed_demographics(conn, *id, &p.uuid, &p.demographics)?;
    }
    Ok(rows.len())
}

/// The one writer of `patients`, for a registration.
pub(super) fn apply_registered(
    conn: &Connection,
    c: &PatientRegistered,
) -> Result<Applied, CoreError> {
    check_mrn(&c.mrn)?;
    let d = &c.new.demographics;
    check_demographics(d, c.registered.at.date_naive())?;
    let e = d.emergency_contact.as_ref();
    let at = c.registered.time();
    // A restricted patient's row is written in clear for a moment, inside this transaction,
    // and sealed before it commits (below).
    conn.prepare_cached(
        "INSERT INTO patients (uuid, mrn, family, given, preferred_name, birth_date, sex, gender_identity,
            phone, phone_digits, email, address, emergency_name, emergency_phone, emergency_relation,
            restricted, created_at, created_by, updated_at, updated_by, phone_rev,
            race, ethnicity, language, birth_sex, sexual_orientation)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?17, ?18, ?19,
            ?20, ?21, ?22, ?23, ?24)",
    )?
    .execute(params![
        c.patient,
        c.mrn,
        d.family,
        d.given,
        d.preferred,
        d.birth_date.format("%Y-%m-%d").to_string(),
        d.sex.as_str(),
        d.gender_identity,
        d.phone,
        d.phone.as_deref().map(phone_digits),
        d.email,
        d.address,
        e.map(|e| e.name.as_str()),
        e.map(|e| e.phone.as_str()),
        e.and_then(|e| e.relationship.as_deref()),
        c.new.restricted,
        at,
        c.registered.by,
        d.phone.as_deref().map(phone_reversed),
        codes_column(&d.race),
        codes_column(&d.ethnicity),
        d.language,
        d.birth_sex,
        d.sexual_orientation,
    ])?;
    let id = conn.last_insert_rowid();
    if c.new.restricted {
        // Who may open a restricted chart is signed into the security log; its registrant
        // joins the team in the entry after its key's.
        crate::security_log::append(
            conn,
            &at,
            crate::security_log::Fact::Restriction {
                patient: crate::security_log::patient_hex(c.patient.as_bytes()),
                restricted: true,
                team: Vec::new(),
            },
        )?;
        // Its key, sealed to the recovery key and the clinical key (the registrant gets their
        // seal as they join the care team, in the change after this one).
        crate::patient_keys::make_for(conn, id, c.patient.as_bytes(), &[], &at)?;
        write_sealed_demographics(conn, id, &c.patient, d)?;
    } else {
        index_names(conn, id, d)?;
    }
    write_version(
        conn,
        PatientId(id),
        &c.patient,
        1,
        d,
        c.new.restricted,
        &c.registered,
    )?;
    Ok(Applied::one(id))
}

/// Makes `patients.restricted` what the security log says: a chart restricted or opened
/// outside Chartroom is put back. Returns what it undid, in words.
pub(crate) fn restore_restrictions(
    conn: &Connection,
    state: &crate::security_log::State,
    at: &str,
) -> Result<Vec<String>, CoreError> {
    let mut undone = Vec::new();
    if state.root.is_none() {
        return Ok(undone);
    }
    let rows: Vec<(i64, Option<Vec<u8>>, String, bool)> = {
        let mut stmt = conn.prepare_cached(
            "SELECT id, uuid, mrn, restricted FROM patients INDEXED BY patients_restricted WHERE restricted = 1",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (id, uuid, mrn, _) in rows {
        let known = uuid.as_deref().is_some_and(|u| {
            state
                .restricted
                .contains_key(&crate::security_log::patient_hex(u))
        });
        if !known {
            conn.execute(
                "UPDATE patients SET restricted = 0, updated_at = ?2, updated_by = 'security log' WHERE id = ?1",
                params![id, at],
            )?;
            undone.push(format!(
                "the chart MRN {mrn}, restricted outside Chartroom, was opened again"
            ));
        }
    }
    for patient in state.restricted.keys() {
        let Ok(uuid) = hex::decode(patient) else {
            continue;
        };
        let row: Option<(i64, String)> = conn
            .prepare_cached("SELECT id, mrn FROM patients WHERE uuid = ?1 AND restricted = 0")?
            .query_row([&uuid], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((id, mrn)) = row {
            conn.execute(
                "UPDATE patients SET restricted = 1, updated_at = ?2, updated_by = 'security log' WHERE id = ?1",
                params![id, at],
            )?;
            undone.push(format!(
                "the chart MRN {mrn}, opened outside Chartroom, was restricted again"
            ));
        }
    }
    Ok(undone)
}

/// Writes a new version of the patient's row (demographics and restriction) and keeps it
/// in the history. Nothing is written when nothing changed.
fn write_patient(
    conn: &Connection,
    current: &Patient,
    d: &Demographics,
    restricted: bool,
    stamp: &Stamp,
) -> Result<(), CoreError> {
    if &current.demographics == d && current.restricted == restricted {
        return Ok(());
    }
    let e = d.emergency_contact.as_ref();
    let version = current.version + 1;
    conn.prepare_cached(
        "UPDATE patients SET family = ?1, given = ?2, preferred_name = ?3, birth_date = ?4, sex = ?5,
            gender_identity = ?6, phone = ?7, phone_digits = ?8, email = ?9, address = ?10,
            emergency_name = ?11, emergency_phone = ?12, emergency_relation = ?13, restricted = ?14,
            version = ?15, updated_at = ?16, updated_by = ?17, phone_rev = ?20,
            race = ?21, ethnicity = ?22, language = ?23, birth_sex = ?24, sexual_orientation = ?25
         WHERE id = ?18 AND version = ?19",
    )?
    .execute(params![
        d.family,
        d.given,
        d.preferred,
        d.birth_date.format("%Y-%m-%d").to_string(),
        d.sex.as_str(),
        d.gender_identity,
        d.phone,
        d.phone.as_deref().map(phone_digits),
        d.email,
        d.address,
        e.map(|e| e.name.as_str()),
        e.map(|e| e.phone.as_str()),
        e.and_then(|e| e.relationship.as_deref()),
        restricted,
        version,
        stamp.time(),
        stamp.by,
        current.id,
        current.version,
        d.phone.as_deref().map(phone_reversed),
        codes_column(&d.race),
        codes_column(&d.ethnicity),
        d.language,
        d.birth_sex,
        d.sexual_orientation,
    ])?;
    if restricted {
        write_sealed_demographics(conn, current.id.get(), &current.uuid, d)?;
    } else {
        conn.prepare_cached("UPDATE patients SET sealed = NULL WHERE id = ?1")?
            .execute([current.id])?;
        index_names(conn, current.id, d)?;
    }
    if restricted != current.restricted {
        convert_history(conn, current.id.get(), &current.uuid, restricted)?;
    }
    write_version(
        conn,
        current.id,
        &current.uuid,
        version,
        d,
        restricted,
        stamp,
    )
}

/// The one writer of `patients`, for new demographics.
pub(super) fn apply_demographics(
    conn: &Connection,
    c: &DemographicsChanged,
) -> Result<Applied, CoreError> {
    check_demographics(&c.demographics, c.changed.at.date_naive())?;
    let current = get(conn, change::row_of(conn, Table::Patients, c.patient)?)?;
    write_patient(
        conn,
        &current,
        &c.demographics,
        current.restricted,
        &c.changed,
    )?;
    Ok(Applied::one(current.id))
}

/// The one writer of `patients`, for a restriction.
pub(super) fn apply_restriction(
    conn: &Connection,
    c: &RestrictionChanged,
) -> Result<Applied, CoreError> {
    let current = get(conn, change::row_of(conn, Table::Patients, c.patient)?)?;
    if current.restricted != c.restricted {
        // The log says who may open it first; a chart restricted now then gets its key,
        // sealed to the care team as it stands, before anything is sealed to it.
        let team = if c.restricted {
            crate::access::care_team(conn, current.id.get())?
        } else {
            Vec::new()
        };
        crate::security_log::append(
            conn,
            &c.changed.time(),
            crate::security_log::Fact::Restriction {
                patient: crate::security_log::patient_hex(c.patient.as_bytes()),
                restricted: c.restricted,
                team: team.clone(),
            },
        )?;
        if c.restricted {
            crate::patient_keys::make_for(
                conn,
                current.id.get(),
                c.patient.as_bytes(),
                &team,
                &c.changed.time(),
            )?;
        }
    }
    write_patient(
        conn,
        &current,
        &current.demographics,
        c.restricted,
        &c.changed,
    )?;
    Ok(Applied::one(current.id))
}

/// Sets what is known about a patient's allergies. "Recorded" stands as of the latest
/// allergy recorded, so changes applied in any order end the same.
pub(crate) fn set_allergy_state(
    conn: &Connection,
    patient: i64,
    state: AllergyState,
    stamp: &Stamp,
) -> Result<(), CoreError> {
    match state {
        AllergyState::Recorded => conn.prepare_cached(
            "UPDATE patients SET allergy_state = 'recorded', allergy_state_at = ?2, allergy_state_by = ?3
              WHERE id = ?1 AND NOT (allergy_state = 'recorded' AND allergy_state_at > ?2)",
        )?,
        AllergyState::NoKnownAllergies => conn.prepare_cached(
            "UPDATE patients SET allergy_state = 'no_known_allergies', allergy_state_at = ?2, allergy_state_by = ?3 WHERE id = ?1",
        )?,
    }
    .execute(params![patient, stamp.time(), stamp.by])?;
    Ok(())
}

/// The next medical record number: a six-digit serial and a Luhn check digit.
pub(crate) fn new_mrn(conn: &Connection) -> Result<String, CoreError> {
    next_mrn(conn)
}

impl Session {
    /// Registers a patient. The registering user joins the care team.
    /// Registers a patient, unless they look like one already here (the same name and birth
    /// date, a birth date and phone, or a name and phone): then `possible_duplicate` names
    /// the candidates and nothing is written. [`Session::register_new_person`] registers
    /// them anyway.
    pub fn register_patient(&mut self, new: &NewPatient) -> Result<Patient, CoreError> {
        self.register(new, true, &[])
    }

    /// Registers a patient the person registering has confirmed is not one of the possible
    /// duplicates.
    pub fn register_new_person(&mut self, new: &NewPatient) -> Result<Patient, CoreError> {
        self.register(new, false, &[])
    }

    /// Registers a patient with their care team named (the person registering joins it
    /// too), in the one transaction: a restricted chart's team must hold at least one
    /// physician or nurse, so the patient's own clinician never has to break the glass.
    /// `new_person` as for [`Session::register_new_person`].
    pub fn register_patient_with_team(
        &mut self,
        new: &NewPatient,
        team: &[String],
        new_person: bool,
    ) -> Result<Patient, CoreError> {
        if new.restricted && team.is_empty() && !self.role().is_clinician() {
            return Err(CoreError::InvalidInput(
                "A restricted chart needs its care team: name at least one physician or nurse."
                    .into(),
            ));
        }
        self.register(new, !new_person, team)
    }

    fn register(
        &mut self,
        new: &NewPatient,
        check: bool,
        team: &[String],
    ) -> Result<Patient, CoreError> {
        let user_id = self.actor_user_id();
        let clinical = self.can(Permission::ReadClinical);
        self.run(
            Permission::RegisterPatient,
            Op::create("patient.create"),
            false,
            |tx, op, ctx| {
                if check {
                    let candidates = possible_duplicates(tx, ctx, &new.demographics)?;
                    if !candidates.is_empty() {
                        return Err(CoreError::PossibleDuplicate(candidates));
                    }
                } else {
                    op.detail = Some("confirmed a different person".into());
                }
                let registered = ctx.stamp();
                let patient = RecordId::new(registered.at);
                let change = PatientRegistered {
                    patient,
                    mrn: next_mrn(tx)?,
                    new: new.clone(),
                    registered: registered.clone(),
                };
                let row = apply(tx, &Change::PatientRegistered(change))?.row();
                let mut members: Vec<i64> = user_id.into_iter().collect();
                let mut clinician = ctx.actor.role.is_some_and(Role::is_clinician);
                for name in team {
                    let (uid, u) = crate::users::find_user(tx, name)?.ok_or_else(|| {
                        CoreError::NotFound(format!(
                            "There is no user named {}.",
                            name.chars().take(40).collect::<String>()
                        ))
                    })?;
                    if u.disabled {
                        return Err(CoreError::Conflict(format!("{} is disabled.", u.name)));
                    }
                    if !matches!(u.role, Role::Physician | Role::Nurse | Role::FrontDesk) {
                        return Err(CoreError::InvalidInput(format!(
                            "{} is {}: a care team holds physicians, nurses and front desk staff.",
                            u.name, u.role
                        )));
                    }
                    clinician |= u.role.is_clinician();
                    if !members.contains(&uid) {
                        members.push(uid);
                    }
                }
                if new.restricted && !team.is_empty() && !clinician {
                    return Err(CoreError::InvalidInput(
                        "A restricted chart's care team needs at least one physician or nurse."
                            .into(),
                    ));
                }
                for uid in members {
                    apply(
                        tx,
                        &Change::CareTeamChanged(CareTeamChanged::joined(
                            patient,
                            uid,
                            registered.clone(),
                        )),
                    )?;
                }
                let p = get(tx, row)?;
                *op = op.clone().patient(p.id);
                op.purpose = Some(
                    ctx.actor
                        .role
                        .map_or("HOPERAT", Role::purpose_of_use)
                        .to_owned(),
                );
                if p.restricted {
                    op.detail = Some("restricted".into());
                }
                Ok(super::hide_clinical(p, clinical))
            },
        )
    }

    /// Changes demographics; the previous version is kept with who changed it and when.
    pub fn update_patient(
        &mut self,
        patient_id: impl Into<PatientId>,
        changes: &PatientChanges,
    ) -> Result<Patient, CoreError> {
        let patient_id = patient_id.into().get();
        let clinical = self.can(Permission::ReadClinical);
        if changes.restricted.is_some() && !self.can(Permission::ManageCareTeam) {
            let role = self.role();
            self.touch()?;
            return Err(self.deny(
                Op::update("patient.update").patient(patient_id),
                Denial::Role {
                    role,
                    permission: Permission::ManageCareTeam,
                },
            ));
        }
        self.run(
            Permission::EditDemographics,
            Op::update("patient.update").patient(patient_id),
            true,
            |tx, op, ctx| {
                let current = ctx.patient()?;
                let mut form = current.demographics.to_form();
                let mut changed = changes.apply(&mut form);
                let demographics = form.validate(ctx.now.date_naive())?;
                let restricted = changes.restricted.unwrap_or(current.restricted);
                if restricted != current.restricted {
                    // Breaking the glass opens a chart for a while; it never changes who may
                    // open it (lifting the restriction and setting it again would otherwise
                    // put the person on the care team for good).
                    if matches!(ctx.access, Some(crate::access::ChartAccess::BreakGlass { .. })) {
                        return Err(CoreError::Forbidden(Denial::NotYours(
                            "Breaking the glass opens this chart for a while; it does not let you change its restriction. Ask its care team.",
                        )));
                    }
                    changed.push("restricted");
                }
                let stamp = ctx.stamp();
                if restricted && !current.restricted {
                    // Whoever restricts a chart joins its care team, so it never ends up
                    // closed to everyone, the person who closed it included.
                    if let Some(uid) = ctx.actor.id {
                        let joined = CareTeamChanged::joined(current.uuid, uid, stamp.clone());
                        apply(tx, &Change::CareTeamChanged(joined))?;
                    }
                }
                if demographics != current.demographics {
                    let change = DemographicsChanged {
                        patient: current.uuid,
                        demographics,
                        changed: stamp.clone(),
                    };
                    apply(tx, &Change::DemographicsChanged(change))?;
                }
                if restricted != current.restricted {
                    let change = RestrictionChanged {
                        patient: current.uuid,
                        restricted,
                        changed: stamp,
                    };
                    apply(tx, &Change::RestrictionChanged(change))?;
                }
                op.detail = Some(if changed.is_empty() {
                    "no change".into()
                } else {
                    format!("changed {}", changed.join(", "))
                });
                get(tx, patient_id).map(|p| super::hide_clinical(p, clinical))
            },
        )
        .inspect(|p| {
            // A chart just restricted: its clear demographics leave the write-ahead log for
            // the database file, where secure_delete has overwritten them. Best effort:
            // another open connection's snapshot keeps the log until it closes.
            if p.restricted && changes.restricted == Some(true) {
                if let Ok(conn) = self.connection() {
                    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
                }
            }
        })
    }

    /// Every version of a patient's demographics, oldest first.
    pub fn patient_history(
        &mut self,
        patient_id: impl Into<PatientId>,
    ) -> Result<Vec<PatientVersion>, CoreError> {
        let patient_id = patient_id.into().get();
        self.run(
            Permission::ReadDemographics,
            Op::read("patient.history").patient(patient_id),
            true,
            |tx, op, _| {
                let versions = history(tx, patient_id)?;
                op.detail = Some(format!("{} versions", versions.len()));
                Ok(versions)
            },
        )
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 24).expect("date")
    }

    #[test]
    fn mrns_carry_a_luhn_check_digit() {
        assert_eq!(luhn_digit("7992739871"), 3);
        assert_eq!(mrn_for(1), "0000018");
    }

    #[test]
    fn folding_removes_case_accents_and_joins() {
        assert_eq!(fold("Müller"), "muller");
        assert_eq!(fold("ŁUKASZ Ñúñez"), "lukasz nunez");
        assert_eq!(fold("O'Brien"), "obrien");
        assert_eq!(fold("Nguyễn"), "nguyen");
        assert_eq!(fold("Søndergaard"), "sondergaard");
        assert_eq!(name_words("Smith-Jones"), ["smith", "jones"]);
        assert_eq!(name_words("van der Berg"), ["van", "der", "berg"]);
    }

    #[test]
    fn each_demographic_rule_has_a_good_and_a_bad_value() {
        let good = PatientForm {
            family: "Okafor".into(),
            given: "Ada".into(),
            preferred: Some("Addie".into()),
            birth_date: "1984-03-02".into(),
            sex: "female".into(),
            gender_identity: Some("female".into()),
            phone: Some("+44 20 7946 0018".into()),
            email: Some("ada@example.org".into()),
            address: Some("1 Example Lane, Demo Town".into()),
            emergency_name: Some("Obi Okafor".into()),
            emergency_phone: Some("(555) 010-0142".into()),
            emergency_relationship: Some("brother".into()),
            race: Some("Black or African American, chinese".into()),
            ethnicity: Some("Not Hispanic or Latino".into()),
            language: Some("English".into()),
            birth_sex: Some("F".into()),
            sexual_orientation: Some("bisexual".into()),
        };
        let d = good.validate(today()).expect("valid");
        assert_eq!(d.race, ["2054-5", "2034-7"].map(String::from));
        assert_eq!(d.language.as_deref(), Some("en"));
        assert_eq!(d.sexual_orientation.as_deref(), Some("42035005"));
        // The record's own form gives the same demographics back (the writer checks this).
        assert_eq!(d.to_form().validate(today()).expect("valid"), d);
        type Change = Box<dyn Fn(&mut PatientForm)>;
        let bad: Vec<(&str, Change)> = vec![
            ("empty family", Box::new(|f| f.family = "  ".into())),
            ("long given", Box::new(|f| f.given = "x".repeat(101))),
            (
                "control char",
                Box::new(|f| f.family = "Oka\u{7}for".into()),
            ),
            (
                "future birth",
                Box::new(|f| f.birth_date = "2027-01-01".into()),
            ),
            (
                "ancient birth",
                Box::new(|f| f.birth_date = "1850-01-01".into()),
            ),
            (
                "not a date",
                Box::new(|f| f.birth_date = "02/03/1984".into()),
            ),
            ("sex", Box::new(|f| f.sex = "robot".into())),
            (
                "gender identity",
                Box::new(|f| f.gender_identity = Some("xyz".into())),
            ),
            ("short phone", Box::new(|f| f.phone = Some("12345".into()))),
            (
                "letters in phone",
                Box::new(|f| f.phone = Some("555-CALL-NOW".into())),
            ),
            (
                "email",
                Box::new(|f| f.email = Some("ada.example.org".into())),
            ),
            (
                "email space",
                Box::new(|f| f.email = Some("ada @example.org".into())),
            ),
            (
                "half an emergency contact",
                Box::new(|f| f.emergency_phone = None),
            ),
            (
                "long address",
                Box::new(|f| f.address = Some("x".repeat(301))),
            ),
            ("race", Box::new(|f| f.race = Some("Martian".into()))),
            (
                "race and declined",
                Box::new(|f| f.race = Some("White, chose not to answer".into())),
            ),
            (
                "ethnicity both ways",
                Box::new(|f| f.ethnicity = Some("Mexican, not hispanic or latino".into())),
            ),
            ("language", Box::new(|f| f.language = Some("Elvish".into()))),
            ("birth sex", Box::new(|f| f.birth_sex = Some("X".into()))),
            (
                "sexual orientation",
                Box::new(|f| f.sexual_orientation = Some("yes".into())),
            ),
        ];
        for (what, change) in bad {
            let mut form = good.clone();
            change(&mut form);
            assert!(form.validate(today()).is_err(), "{what} should be refused");
        }
    }
}
