//! Laboratory results: LOINC-coded values (a quantity in UCUM units, a SNOMED-coded finding
//! or text) with their reference range, interpretation flag and status, grouped in reports
//! (a lipid panel, a blood count). The changes that write them, their one writer (the only
//! code that writes `lab_reports` and `lab_results`), and the operations on the Session.
//!
//! A result is never overwritten. A correction is a new version that names the one it
//! replaces, so the earlier value stays visible beside the new one; "entered in error"
//! marks the current version, which then stays in the record, struck out.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::change::{self, micros_time, same, Applied, Change, RecordId, Stamp, Table};
use super::input::{bounded_text, optional_text};
use super::measure::FieldError;
use super::Item;
use crate::audit::Op;
use crate::ids::*;
use crate::keys::open_field;
use crate::roles::Permission;
use crate::{CoreError, Session};

/// A laboratory test or panel Chartroom knows by its LOINC code.
#[derive(Debug)]
pub struct LabTest {
    pub loinc: &'static str,
    /// LOINC's long common name.
    pub name: &'static str,
    /// The short name people use for it.
    pub short: &'static str,
    /// The UCUM unit it is usually reported in (none for a panel or a finding).
    pub unit: Option<&'static str>,
    pub panel: bool,
}

const fn test(
    loinc: &'static str,
    name: &'static str,
    short: &'static str,
    unit: &'static str,
) -> LabTest {
    LabTest {
        loinc,
        name,
        short,
        unit: Some(unit),
        panel: false,
    }
}

const fn finding(loinc: &'static str, name: &'static str, short: &'static str) -> LabTest {
    LabTest {
        loinc,
        name,
        short,
        unit: None,
        panel: false,
    }
}

const fn panel(loinc: &'static str, name: &'static str, short: &'static str) -> LabTest {
    LabTest {
        loinc,
        name,
        short,
        unit: None,
        panel: true,
    }
}

/// The tests a small clinic orders most, with LOINC's names. Any other valid LOINC code is
/// taken too, with the name given for it.
pub const LAB_TESTS: &[LabTest] = &[
    panel(
        "57698-3",
        "Lipid panel with direct LDL - Serum or Plasma",
        "Lipid panel",
    ),
    panel(
        "24331-1",
        "Lipid 1996 panel - Serum or Plasma",
        "Lipid panel",
    ),
    panel("58410-2", "CBC panel - Blood by Automated count", "CBC"),
    panel("51990-0", "Basic metabolic panel - Blood", "BMP"),
    panel(
        "24323-8",
        "Comprehensive metabolic 2000 panel - Serum or Plasma",
        "CMP",
    ),
    panel(
        "24325-3",
        "Hepatic function 2000 panel - Serum or Plasma",
        "Liver panel",
    ),
    panel("24356-8", "Urinalysis complete panel - Urine", "Urinalysis"),
    test(
        "2093-3",
        "Cholesterol [Mass/volume] in Serum or Plasma",
        "Cholesterol",
        "mg/dL",
    ),
    test(
        "2571-8",
        "Triglyceride [Mass/volume] in Serum or Plasma",
        "Triglycerides",
        "mg/dL",
    ),
    test(
        "2085-9",
        "Cholesterol in HDL [Mass/volume] in Serum or Plasma",
        "HDL",
        "mg/dL",
    ),
    test(
        "18262-6",
        "Cholesterol in LDL [Mass/volume] in Serum or Plasma by Direct assay",
        "LDL (direct)",
        "mg/dL",
    ),
    test(
        "13457-7",
        "Cholesterol in LDL [Mass/volume] in Serum or Plasma by calculation",
        "LDL (calculated)",
        "mg/dL",
    ),
    test(
        "4548-4",
        "Hemoglobin A1c/Hemoglobin.total in Blood",
        "HbA1c",
        "%",
    ),
    test(
        "2345-7",
        "Glucose [Mass/volume] in Serum or Plasma",
        "Glucose",
        "mg/dL",
    ),
    test(
        "2160-0",
        "Creatinine [Mass/volume] in Serum or Plasma",
        "Creatinine",
        "mg/dL",
    ),
    test(
        "3094-0",
        "Urea nitrogen [Mass/volume] in Serum or Plasma",
        "BUN",
        "mg/dL",
    ),
    test(
        "2951-2",
        "Sodium [Moles/volume] in Serum or Plasma",
        "Sodium",
        "mmol/L",
    ),
    test(
        "2823-3",
        "Potassium [Moles/volume] in Serum or Plasma",
        "Potassium",
        "mmol/L",
    ),
    test(
        "2075-0",
        "Chloride [Moles/volume] in Serum or Plasma",
        "Chloride",
        "mmol/L",
    ),
    test(
        "2028-9",
        "Carbon dioxide, total [Moles/volume] in Serum or Plasma",
        "CO2",
        "mmol/L",
    ),
    test(
        "17861-6",
        "Calcium [Mass/volume] in Serum or Plasma",
        "Calcium",
        "mg/dL",
    ),
    test(
        "1742-6",
        "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
        "ALT",
        "U/L",
    ),
    test(
        "1920-8",
        "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
        "AST",
        "U/L",
    ),
    test(
        "6768-6",
        "Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma",
        "Alkaline phosphatase",
        "U/L",
    ),
    test(
        "1975-2",
        "Bilirubin.total [Mass/volume] in Serum or Plasma",
        "Bilirubin",
        "mg/dL",
    ),
    test(
        "2885-2",
        "Protein [Mass/volume] in Serum or Plasma",
        "Protein",
        "g/dL",
    ),
    test(
        "1751-7",
        "Albumin [Mass/volume] in Serum or Plasma",
        "Albumin",
        "g/dL",
    ),
    test(
        "6690-2",
        "Leukocytes [#/volume] in Blood by Automated count",
        "WBC",
        "10*3/uL",
    ),
    test(
        "789-8",
        "Erythrocytes [#/volume] in Blood by Automated count",
        "RBC",
        "10*6/uL",
    ),
    test(
        "718-7",
        "Hemoglobin [Mass/volume] in Blood",
        "Hemoglobin",
        "g/dL",
    ),
    test(
        "4544-3",
        "Hematocrit [Volume Fraction] of Blood by Automated count",
        "Hematocrit",
        "%",
    ),
    test(
        "787-2",
        "MCV [Entitic volume] by Automated count",
        "MCV",
        "fL",
    ),
    test(
        "777-3",
        "Platelets [#/volume] in Blood by Automated count",
        "Platelets",
        "10*3/uL",
    ),
    test(
        "3016-3",
        "Thyrotropin [Units/volume] in Serum or Plasma",
        "TSH",
        "m[IU]/L",
    ),
    test(
        "6301-6",
        "INR in Platelet poor plasma by Coagulation assay",
        "INR",
        "{INR}",
    ),
    test(
        "2276-4",
        "Ferritin [Mass/volume] in Serum or Plasma",
        "Ferritin",
        "ng/mL",
    ),
    test(
        "1988-5",
        "C reactive protein [Mass/volume] in Serum or Plasma",
        "CRP",
        "mg/L",
    ),
    test(
        "2857-1",
        "Prostate specific Ag [Mass/volume] in Serum or Plasma",
        "PSA",
        "ng/mL",
    ),
    finding(
        "2106-3",
        "Choriogonadotropin (pregnancy test) [Presence] in Urine",
        "Urine pregnancy test",
    ),
    finding(
        "94500-6",
        "SARS-CoV-2 (COVID-19) RNA [Presence] in Respiratory specimen by NAA with probe detection",
        "COVID-19 PCR",
    ),
];

/// The test with LOINC code `loinc`, if Chartroom knows it by name.
pub fn lab_test(loinc: &str) -> Option<&'static LabTest> {
    LAB_TESTS.iter().find(|t| t.loinc == loinc)
}

/// Checks a LOINC code's shape (`2345-7`: 1 to 7 digits, a dash, the check digit) and its
/// check digit (LOINC's mod 10), and returns it trimmed.
pub fn check_loinc(text: &str) -> Result<String, CoreError> {
    let t = text.trim();
    let wrong = || {
        CoreError::InvalidInput(format!(
            "\"{}\" is not a LOINC code (digits, a dash and a check digit, e.g. 2345-7 for glucose).",
            t.chars().take(20).collect::<String>()
        ))
    };
    let (number, check) = t.split_once('-').ok_or_else(wrong)?;
    if number.is_empty()
        || number.len() > 7
        || check.len() != 1
        || !number
            .bytes()
            .chain(check.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return Err(wrong());
    }
    let sum: u32 = number
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let twice = d * 2;
                twice / 10 + twice % 10
            } else {
                d
            }
        })
        .sum();
    let expected = (10 - sum % 10) % 10;
    if u32::from(check.as_bytes()[0] - b'0') != expected {
        return Err(CoreError::InvalidInput(format!(
            "The LOINC code {t} has a wrong check digit: check it against the lab's report."
        )));
    }
    Ok(t.to_owned())
}

/// SNOMED CT findings a result may be instead of a number ("negative", "detected").
pub const FINDINGS: [(&str, &str, &str); 8] = [
    ("positive", "10828004", "Positive"),
    ("negative", "260385009", "Negative"),
    ("detected", "260373001", "Detected"),
    ("not detected", "260415000", "Not detected"),
    ("reactive", "11214006", "Reactive"),
    ("nonreactive", "131194007", "Non-Reactive"),
    ("normal", "17621005", "Normal"),
    ("abnormal", "263654008", "Abnormal"),
];

/// A result's value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultValue {
    /// A number, in `unit` (UCUM).
    Quantity(f64),
    /// A finding, SNOMED CT coded.
    Coded { code: String, display: String },
    /// Anything else the lab wrote ("<0.5", "see comment").
    Text(String),
}

impl ResultValue {
    /// Reads a value as typed: a number, a finding by its name, or text.
    pub fn parse(text: &str) -> Result<ResultValue, CoreError> {
        let t = bounded_text("value", text, 200)?;
        if let Ok(n) = t.parse::<f64>() {
            if !n.is_finite() || n.abs() >= 1e12 {
                return Err(CoreError::InvalidInput(
                    "The value is not a number a lab reports.".into(),
                ));
            }
            return Ok(ResultValue::Quantity(n));
        }
        let words = t.to_lowercase().replace(['-', '_'], " ");
        let words = words.split_whitespace().collect::<Vec<_>>().join(" ");
        if let Some((_, code, display)) = FINDINGS
            .iter()
            .find(|(w, _, _)| *w == words || w.replace(' ', "") == words.replace(' ', ""))
        {
            return Ok(ResultValue::Coded {
                code: (*code).into(),
                display: (*display).into(),
            });
        }
        Ok(ResultValue::Text(t))
    }

    fn checked(&self) -> Result<ResultValue, CoreError> {
        match self {
            ResultValue::Quantity(n) => {
                if n.is_finite() && n.abs() < 1e12 {
                    Ok(self.clone())
                } else {
                    Err(CoreError::InvalidInput(
                        "The value is not a number a lab reports.".into(),
                    ))
                }
            }
            ResultValue::Coded { code, .. } => FINDINGS
                .iter()
                .find(|(_, c, _)| c == code)
                .map(|(_, c, d)| ResultValue::Coded {
                    code: (*c).into(),
                    display: (*d).into(),
                })
                .ok_or_else(|| {
                    CoreError::InvalidInput("The finding is not one Chartroom knows.".into())
                }),
            ResultValue::Text(t) => Ok(ResultValue::Text(bounded_text("value", t, 200)?)),
        }
    }

    /// The value as people read it.
    pub fn show(&self) -> String {
        match self {
            ResultValue::Quantity(n) => n.to_string(),
            ResultValue::Coded { display, .. } => display.clone(),
            ResultValue::Text(t) => t.clone(),
        }
    }
}

/// A reference range: either end may be open (`<200`, `>40`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Range {
    pub low: Option<f64>,
    pub high: Option<f64>,
}

impl Range {
    /// Reads `LOW-HIGH` (`3.5-5.1`, `3.5 – 5.1`), `<HIGH` or `>LOW`.
    pub fn parse(text: &str) -> Result<Range, CoreError> {
        let t: String = text
            .trim()
            .replace(['–', '—'], "-")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let wrong = || {
            CoreError::InvalidInput(format!(
                "The reference range \"{}\" is not LOW-HIGH (3.5-5.1), <HIGH or >LOW.",
                text.trim().chars().take(30).collect::<String>()
            ))
        };
        let number = |s: &str| -> Result<f64, CoreError> {
            s.parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && n.abs() < 1e12)
                .ok_or_else(wrong)
        };
        let range = if let Some(high) = t.strip_prefix("<=").or(t.strip_prefix('<')) {
            Range {
                low: None,
                high: Some(number(high)?),
            }
        } else if let Some(low) = t.strip_prefix(">=").or(t.strip_prefix('>')) {
            Range {
                low: Some(number(low)?),
                high: None,
            }
        } else {
            // The dash between the ends, not a minus sign in front of the first.
            let at = t
                .char_indices()
                .skip(1)
                .find(|(_, c)| *c == '-')
                .map(|(i, _)| i)
                .ok_or_else(wrong)?;
            Range {
                low: Some(number(&t[..at])?),
                high: Some(number(&t[at + 1..])?),
            }
        };
        range.checked()
    }

    fn checked(self) -> Result<Range, CoreError> {
        let ok = |n: Option<f64>| n.is_none_or(|n| n.is_finite() && n.abs() < 1e12);
        match (self.low, self.high) {
            (None, None) => Err(CoreError::InvalidInput(
                "A reference range needs a low or a high end.".into(),
            )),
            _ if !ok(self.low) || !ok(self.high) => Err(CoreError::InvalidInput(
                "The reference range is not made of numbers.".into(),
            )),
            (Some(l), Some(h)) if l > h => Err(CoreError::InvalidInput(
                "The reference range's low end is above its high end.".into(),
            )),
            _ => Ok(self),
        }
    }

    /// The range as people write it: `3.5–5.1`, `<200`, `>40`.
    pub fn show(&self) -> String {
        match (self.low, self.high) {
            (Some(l), Some(h)) => format!("{l}–{h}"),
            (None, Some(h)) => format!("<{h}"),
            (Some(l), None) => format!(">{l}"),
            (None, None) => String::new(),
        }
    }

    fn flag(&self, value: f64) -> ResultFlag {
        if self.low.is_some_and(|l| value < l) {
            ResultFlag::L
        } else if self.high.is_some_and(|h| value > h) {
            ResultFlag::H
        } else {
            ResultFlag::N
        }
    }
}

/// How a result reads against its range (HL7 v3 ObservationInterpretation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum ResultFlag {
    N,
    L,
    H,
    LL,
    HH,
    /// Abnormal (a finding rather than a number).
    A,
}

impl ResultFlag {
    pub const CHOICES: [(&'static str, ResultFlag); 6] = [
        ("N", ResultFlag::N),
        ("L", ResultFlag::L),
        ("H", ResultFlag::H),
        ("LL", ResultFlag::LL),
        ("HH", ResultFlag::HH),
        ("A", ResultFlag::A),
    ];

    pub fn parse(text: &str) -> Result<ResultFlag, CoreError> {
        let t = text.trim().to_ascii_uppercase();
        Self::CHOICES
            .iter()
            .find(|(n, _)| *n == t)
            .map(|(_, f)| *f)
            .ok_or_else(|| {
                CoreError::InvalidInput(
                    "The flag is one of N (normal), L (low), H (high), LL and HH (critical), A (abnormal)."
                        .into(),
                )
            })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ResultFlag::N => "N",
            ResultFlag::L => "L",
            ResultFlag::H => "H",
            ResultFlag::LL => "LL",
            ResultFlag::HH => "HH",
            ResultFlag::A => "A",
        }
    }

    /// HL7's display for the code.
    pub fn display(self) -> &'static str {
        match self {
            ResultFlag::N => "Normal",
            ResultFlag::L => "Low",
            ResultFlag::H => "High",
            ResultFlag::LL => "Critical low",
            ResultFlag::HH => "Critical high",
            ResultFlag::A => "Abnormal",
        }
    }
}

/// The status a result is entered with: preliminary or final when typed in; an import may
/// also bring one in corrected at its source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryStatus {
    Preliminary,
    Final,
    Corrected,
}

impl EntryStatus {
    pub fn parse(text: &str) -> Result<EntryStatus, CoreError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "preliminary" => Ok(EntryStatus::Preliminary),
            "final" => Ok(EntryStatus::Final),
            _ => Err(CoreError::InvalidInput(
                "A result's status is preliminary or final (a correction is made with `result correct`)."
                    .into(),
            )),
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EntryStatus::Preliminary => "preliminary",
            EntryStatus::Final => "final",
            EntryStatus::Corrected => "corrected",
        }
    }
}

/// A result as entered or imported, checked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewResult {
    pub loinc: String,
    pub name: String,
    pub value: ResultValue,
    pub unit: Option<String>,
    pub range: Option<Range>,
    pub flag: Option<ResultFlag>,
    pub status: EntryStatus,
    /// When the specimen was taken.
    #[serde(with = "micros_time")]
    pub collected: DateTime<Utc>,
}

/// A UCUM unit as labs print it: no spaces, at most 30 characters of UCUM's alphabet. The
/// usual non-UCUM spellings are read as UCUM (`10^3/uL` is `10*3/uL`, `mIU/L` is `m[IU]/L`).
pub fn check_unit(text: &str) -> Result<String, CoreError> {
    let t = text.trim();
    let t = match t {
        "10^3/uL" | "K/uL" | "x10^3/uL" | "10^9/L" => "10*3/uL",
        "10^6/uL" | "M/uL" | "x10^6/uL" | "10^12/L" => "10*6/uL",
        "mIU/L" | "uIU/mL" | "µIU/mL" => "m[IU]/L",
        "INR" | "ratio" => "{INR}",
        other => other,
    };
    let ok = !t.is_empty()
        && t.chars().count() <= 30
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/.*[]{}%^_-'µ".contains(c));
    if !ok {
        return Err(CoreError::InvalidInput(format!(
            "\"{}\" is not a unit (UCUM, e.g. mg/dL, mmol/L, 10*3/uL, %).",
            t.chars().take(30).collect::<String>()
        )));
    }
    Ok(t.replace('µ', "u"))
}

impl NewResult {
    /// The result in its checked form: what [`ResultInput::read`] makes and every writer
    /// accepts.
    pub(crate) fn checked(&self) -> Result<NewResult, CoreError> {
        let loinc = check_loinc(&self.loinc)?;
        let name = bounded_text("test name", &self.name, 200)?;
        let value = self.value.checked()?;
        let unit = match (&value, &self.unit) {
            (ResultValue::Quantity(_), Some(u)) => Some(check_unit(u)?),
            (ResultValue::Quantity(_), None) => None,
            (_, Some(_)) => {
                return Err(CoreError::InvalidInput("Only a number has a unit.".into()))
            }
            (_, None) => None,
        };
        let range = self.range.map(Range::checked).transpose()?;
        Ok(NewResult {
            loinc,
            name,
            value,
            unit,
            range,
            flag: self.flag,
            status: self.status,
            collected: chartroom_audit::truncate_to_micros(self.collected),
        })
    }
}

/// A result as typed in the window or on the command line, before it is read.
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ResultInput {
    pub loinc: String,
    /// The test's name; taken from LOINC's when Chartroom knows the code.
    #[cfg_attr(feature = "ts", ts(optional))]
    pub name: Option<String>,
    pub value: String,
    /// The unit (UCUM); the test's usual unit when left out.
    #[cfg_attr(feature = "ts", ts(optional))]
    pub unit: Option<String>,
    /// `LOW-HIGH`, `<HIGH` or `>LOW`.
    #[cfg_attr(feature = "ts", ts(optional))]
    pub range: Option<String>,
    /// N, L, H, LL, HH or A; worked out from the range when left out.
    #[cfg_attr(feature = "ts", ts(optional))]
    pub flag: Option<String>,
    /// `preliminary` or `final` (the default).
    #[cfg_attr(feature = "ts", ts(optional))]
    pub status: Option<String>,
    /// When the specimen was taken; the report's time, or now, when left out.
    #[cfg_attr(feature = "ts", ts(optional))]
    pub at: Option<String>,
    /// The report it belongs to.
    #[cfg_attr(feature = "ts", ts(optional))]
    pub report_id: Option<i64>,
}

fn field(name: &str, e: CoreError) -> FieldError {
    FieldError {
        field: name.into(),
        message: e.to_string(),
        suggestion: None,
    }
}

impl ResultInput {
    /// Reads every field, and reports every field that is wrong at once. `default_at` is the
    /// collection time when none is typed (the report's, or now).
    pub fn read(
        &self,
        now: DateTime<Utc>,
        zone: &crate::ClinicZone,
        default_at: DateTime<Utc>,
    ) -> Result<NewResult, CoreError> {
        let mut errors = Vec::new();
        let loinc = check_loinc(&self.loinc)
            .map_err(|e| errors.push(field("loinc", e)))
            .ok();
        let known = loinc.as_deref().and_then(lab_test);
        if known.is_some_and(|t| t.panel) {
            errors.push(field(
                "loinc",
                CoreError::InvalidInput(format!(
                    "{} is a panel: add it as a report (`report add`) and its tests as results.",
                    known.map_or("", |t| t.short)
                )),
            ));
        }
        let name = match (optional_text("test name", self.name.as_deref(), 200), known) {
            (Err(e), _) => {
                errors.push(field("name", e));
                None
            }
            (Ok(Some(n)), _) => Some(n),
            (Ok(None), Some(t)) => Some(t.name.to_owned()),
            (Ok(None), None) => {
                if loinc.is_some() {
                    errors.push(field(
                        "name",
                        CoreError::InvalidInput(format!(
                            "Chartroom does not know LOINC {} by name: give the test's name.",
                            self.loinc.trim()
                        )),
                    ));
                }
                None
            }
        };
        let value = ResultValue::parse(&self.value)
            .map_err(|e| errors.push(field("value", e)))
            .ok();
        let unit = match (&value, self.unit.as_deref().map(str::trim)) {
            (Some(ResultValue::Quantity(_)), Some(u)) if !u.is_empty() => check_unit(u)
                .map_err(|e| errors.push(field("unit", e)))
                .ok(),
            (Some(ResultValue::Quantity(_)), _) => known.and_then(|t| t.unit).map(str::to_owned),
            (Some(_), Some(u)) if !u.is_empty() => {
                errors.push(field(
                    "unit",
                    CoreError::InvalidInput(
                        "Only a number has a unit: leave the unit out for a finding or text."
                            .into(),
                    ),
                ));
                None
            }
            _ => None,
        };
        let range = match self.range.as_deref().map(str::trim) {
            Some(r) if !r.is_empty() => Range::parse(r)
                .map_err(|e| errors.push(field("range", e)))
                .ok(),
            _ => None,
        };
        let given_flag = match self.flag.as_deref().map(str::trim) {
            Some(f) if !f.is_empty() => ResultFlag::parse(f)
                .map_err(|e| errors.push(field("flag", e)))
                .ok(),
            _ => None,
        };
        let status = match self.status.as_deref().map(str::trim) {
            Some(s) if !s.is_empty() => EntryStatus::parse(s)
                .map_err(|e| errors.push(field("status", e)))
                .ok(),
            _ => Some(EntryStatus::Final),
        };
        let collected = match self.at.as_deref().map(str::trim) {
            Some(t) if !t.is_empty() => {
                super::input::parse_time_input("collection time", t, now, zone)
                    .map_err(|e| errors.push(field("at", e)))
                    .ok()
            }
            _ => Some(chartroom_audit::truncate_to_micros(default_at)),
        };
        if !errors.is_empty() {
            return Err(CoreError::Fields(errors));
        }
        let (Some(loinc), Some(name), Some(value), Some(status), Some(collected)) =
            (loinc, name, value, status, collected)
        else {
            return Err(CoreError::InvalidInput("The result is incomplete.".into()));
        };
        let flag = given_flag.or(match (&value, range) {
            (ResultValue::Quantity(n), Some(r)) => Some(r.flag(*n)),
            _ => None,
        });
        let result = NewResult {
            loinc,
            name,
            value,
            unit,
            range,
            flag,
            status,
            collected,
        };
        result.checked()
    }
}

/// A report as typed: the panel's LOINC code, its name when Chartroom does not know it, and
/// when the specimen was taken.
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ReportInput {
    pub loinc: String,
    #[cfg_attr(feature = "ts", ts(optional))]
    pub name: Option<String>,
    #[cfg_attr(feature = "ts", ts(optional))]
    pub at: Option<String>,
    #[cfg_attr(feature = "ts", ts(optional))]
    pub encounter_id: Option<i64>,
}

/// An earlier version of a result, kept when it was corrected.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct EarlierResult {
    pub id: LabResultId,
    #[cfg_attr(feature = "ts", ts(type = "number | string"))]
    pub value: serde_json::Value,
    pub unit: Option<String>,
    pub flag: Option<ResultFlag>,
    pub status: String,
    pub recorded_by: String,
    pub recorded_at: String,
}

/// A result as the chart shows it: its current version, with the earlier ones.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct LabResult {
    pub id: LabResultId,
    pub patient_id: PatientId,
    pub report_id: Option<LabReportId>,
    pub loinc: String,
    pub name: String,
    /// A number for a quantity; the finding's name or the text otherwise.
    #[cfg_attr(feature = "ts", ts(type = "number | string"))]
    pub value: serde_json::Value,
    /// `quantity`, `coded` or `text`.
    pub value_kind: String,
    /// The SNOMED CT code of a coded finding.
    pub value_code: Option<String>,
    pub unit: Option<String>,
    pub range: Option<Range>,
    pub flag: Option<ResultFlag>,
    /// `preliminary`, `final`, `corrected` or `entered-in-error`.
    pub status: String,
    pub collected_at: String,
    pub reported_at: String,
    pub recorded_by: String,
    pub recorded_at: String,
    /// Why this version corrected the one before it.
    pub reason: Option<String>,
    /// Who marked it entered in error, when and why.
    #[cfg_attr(feature = "ts", ts(optional))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correction: Option<super::correction::Correction>,
    /// The versions it replaced, newest first.
    pub earlier: Vec<EarlierResult>,
    #[serde(skip)]
    pub uuid: Option<RecordId>,
}

/// A report (a panel) as the chart shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct LabReport {
    pub id: LabReportId,
    pub patient_id: PatientId,
    pub encounter_id: Option<EncounterId>,
    pub loinc: String,
    pub name: String,
    /// From its results: `registered` (none yet), `preliminary`, `final`, `corrected`, or
    /// `entered-in-error` when every result is.
    pub status: String,
    pub collected_at: String,
    pub recorded_by: String,
    pub recorded_at: String,
    /// Its results' ids (current versions).
    pub result_ids: Vec<LabResultId>,
}

const RESULT_COLUMNS: &str = concat!(
    "lab_results.id, lab_results.patient_id, lab_results.report_id, ",
    open_field!("lab_results", "loinc"),
    ", ",
    open_field!("lab_results", "name"),
    ", ",
    open_field!("lab_results", "value"),
    ", ",
    open_field!("lab_results", "unit"),
    ", ",
    open_field!("lab_results", "range"),
    ", ",
    open_field!("lab_results", "flag"),
    ", lab_results.status, lab_results.collected_at, lab_results.reported_at, lab_results.recorded_by, lab_results.recorded_at, ",
    open_field!("lab_results", "reason"),
    ", ",
    open_field!("lab_results", "error_reason"),
    ", lab_results.marked_by, lab_results.marked_at, lab_results.replaces, lab_results.uuid"
);

/// One stored version, before versions are put together.
struct Version {
    result: LabResult,
    replaces: Option<i64>,
}

fn withheld() -> String {
    crate::audit_text::WITHHELD.to_owned()
}

fn row_to_version(r: &rusqlite::Row<'_>) -> rusqlite::Result<Version> {
    let value: Option<String> = r.get(5)?;
    let value: Option<ResultValue> = value.and_then(|v| serde_json::from_str(&v).ok());
    let range: Option<String> = r.get(7)?;
    let flag: Option<String> = r.get(8)?;
    let (shown, kind, code) = match &value {
        Some(ResultValue::Quantity(n)) => (serde_json::json!(n), "quantity", None),
        Some(ResultValue::Coded { code, display }) => {
            (serde_json::json!(display), "coded", Some(code.clone()))
        }
        Some(ResultValue::Text(t)) => (serde_json::json!(t), "text", None),
        None => (serde_json::json!(withheld()), "text", None),
    };
    let error_reason: Option<String> = r.get(15)?;
    let marked_by: Option<String> = r.get(16)?;
    let marked_at: Option<String> = r.get(17)?;
    let correction = match (marked_by, marked_at) {
        (Some(by), Some(at)) => Some(super::correction::Correction {
            reason: error_reason.unwrap_or_else(withheld),
            marked_by: by,
            marked_at: at,
        }),
        _ => None,
    };
    Ok(Version {
        result: LabResult {
            id: r.get(0)?,
            patient_id: r.get(1)?,
            report_id: r.get(2)?,
            loinc: r.get::<_, Option<String>>(3)?.unwrap_or_else(withheld),
            name: r.get::<_, Option<String>>(4)?.unwrap_or_else(withheld),
            value: shown,
            value_kind: kind.into(),
            value_code: code,
            unit: r.get(6)?,
            range: range.and_then(|r| serde_json::from_str(&r).ok()),
            flag: flag.and_then(|f| ResultFlag::parse(&f).ok()),
            status: r.get(9)?,
            collected_at: r.get(10)?,
            reported_at: r.get(11)?,
            recorded_by: r.get(12)?,
            recorded_at: r.get(13)?,
            reason: r.get(14)?,
            correction,
            earlier: Vec::new(),
            uuid: Some(r.get(19)?),
        },
        replaces: r.get(18)?,
    })
}

/// The current versions among `versions`, each with the versions it replaced.
fn current(versions: Vec<Version>) -> Vec<LabResult> {
    use std::collections::HashMap;
    let replaced: HashMap<i64, usize> = versions
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.replaces.map(|r| (r, i)))
        .collect();
    let by_id: HashMap<i64, usize> = versions
        .iter()
        .enumerate()
        .map(|(i, v)| (v.result.id.get(), i))
        .collect();
    let mut out = Vec::new();
    for v in &versions {
        if replaced.contains_key(&v.result.id.get()) {
            continue;
        }
        let mut result = v.result.clone();
        let mut back = v.replaces;
        while let Some(id) = back {
            let Some(&i) = by_id.get(&id) else { break };
            let old = &versions[i];
            result.earlier.push(EarlierResult {
                id: old.result.id,
                value: old.result.value.clone(),
                unit: old.result.unit.clone(),
                flag: old.result.flag,
                status: old.result.status.clone(),
                recorded_by: old.result.recorded_by.clone(),
                recorded_at: old.result.recorded_at.clone(),
            });
            back = old.replaces;
        }
        out.push(result);
    }
    out
}

/// A patient's results (current versions), newest collection first.
pub(crate) fn results(conn: &Connection, patient_id: i64) -> Result<Vec<LabResult>, CoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {RESULT_COLUMNS} FROM lab_results WHERE patient_id = ?1 ORDER BY collected_at DESC, id DESC"
    ))?;
    let rows = stmt.query_map([patient_id], row_to_version)?;
    Ok(current(rows.collect::<Result<_, _>>()?))
}

/// The result whose current version is `id` (or, for an earlier version, that version's
/// current one).
pub(crate) fn result(conn: &Connection, id: i64) -> Result<LabResult, CoreError> {
    let patient: i64 = conn
        .prepare_cached("SELECT patient_id FROM lab_results WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?
        .ok_or_else(|| CoreError::NotFound(format!("There is no lab result {id}.")))?;
    results(conn, patient)?
        .into_iter()
        .find(|r| r.id.get() == id || r.earlier.iter().any(|e| e.id.get() == id))
        .ok_or_else(|| CoreError::NotFound(format!("There is no lab result {id}.")))
}

const REPORT_COLUMNS: &str = concat!(
    "id, patient_id, encounter_id, ",
    open_field!("lab_reports", "loinc"),
    ", ",
    open_field!("lab_reports", "name"),
    ", collected_at, recorded_by, recorded_at"
);

/// A patient's reports, newest collection first, each with its current results' ids and
/// the status they give it.
pub(crate) fn reports(conn: &Connection, patient_id: i64) -> Result<Vec<LabReport>, CoreError> {
    let all = results(conn, patient_id)?;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {REPORT_COLUMNS} FROM lab_reports WHERE patient_id = ?1 ORDER BY collected_at DESC, id DESC"
    ))?;
    let rows = stmt.query_map([patient_id], |r| {
        Ok(LabReport {
            id: r.get(0)?,
            patient_id: r.get(1)?,
            encounter_id: r.get(2)?,
            loinc: r.get::<_, Option<String>>(3)?.unwrap_or_else(withheld),
            name: r.get::<_, Option<String>>(4)?.unwrap_or_else(withheld),
            status: String::new(),
            collected_at: r.get(5)?,
            recorded_by: r.get(6)?,
            recorded_at: r.get(7)?,
            result_ids: Vec::new(),
        })
    })?;
    let mut out: Vec<LabReport> = rows.collect::<Result<_, _>>()?;
    for report in &mut out {
        let mine: Vec<&LabResult> = all
            .iter()
            .filter(|r| r.report_id == Some(report.id))
            .collect();
        report.result_ids = mine.iter().map(|r| r.id).collect();
        report.status = report_status(&mine).into();
    }
    Ok(out)
}

fn report_status(results: &[&LabResult]) -> &'static str {
    let live: Vec<&&LabResult> = results
        .iter()
        .filter(|r| r.status != super::correction::ENTERED_IN_ERROR)
        .collect();
    if results.is_empty() {
        "registered"
    } else if live.is_empty() {
        super::correction::ENTERED_IN_ERROR
    } else if live.iter().any(|r| r.status == "preliminary") {
        "preliminary"
    } else if live
        .iter()
        .any(|r| r.status == "corrected" || !r.earlier.is_empty())
    {
        "corrected"
    } else {
        "final"
    }
}

pub(crate) fn report(conn: &Connection, id: i64) -> Result<LabReport, CoreError> {
    let patient: i64 = conn
        .prepare_cached("SELECT patient_id FROM lab_reports WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?
        .ok_or_else(|| CoreError::NotFound(format!("There is no lab report {id}.")))?;
    reports(conn, patient)?
        .into_iter()
        .find(|r| r.id.get() == id)
        .ok_or_else(|| CoreError::NotFound(format!("There is no lab report {id}.")))
}

/// A report made: version 1 of [`Change::ReportAdded`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportAdded {
    pub report: RecordId,
    pub patient: RecordId,
    pub encounter: Option<RecordId>,
    pub loinc: String,
    pub name: String,
    #[serde(with = "micros_time")]
    pub collected: DateTime<Utc>,
    pub recorded: Stamp,
}

/// A result recorded: version 1 of [`Change::ResultRecorded`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultRecorded {
    pub result: RecordId,
    pub patient: RecordId,
    pub report: Option<RecordId>,
    #[serde(flatten)]
    pub item: NewResult,
    /// When the lab reported it (for one typed in, when it was typed).
    #[serde(with = "micros_time")]
    pub reported: DateTime<Utc>,
    /// Why it was corrected, for a result imported corrected (its earlier values stayed at
    /// the source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub recorded: Stamp,
}

/// A result corrected: a new version replacing the current one, which stays, with the
/// reason: version 1 of [`Change::ResultCorrected`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultCorrected {
    pub result: RecordId,
    pub replaces: RecordId,
    #[serde(flatten)]
    pub item: NewResult,
    pub reason: String,
    #[serde(with = "micros_time")]
    pub reported: DateTime<Utc>,
    pub recorded: Stamp,
}

/// A result's current version marked entered in error, with the reason: version 1 of
/// [`Change::ResultEnteredInError`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultEnteredInError {
    pub result: RecordId,
    pub reason: String,
    pub marked: Stamp,
}

fn check_report_fields(loinc: &str, name: &str) -> Result<(String, String), CoreError> {
    Ok((check_loinc(loinc)?, bounded_text("report name", name, 200)?))
}

/// The one writer of `lab_reports`.
pub(super) fn apply_report(conn: &Connection, c: &ReportAdded) -> Result<Applied, CoreError> {
    let (loinc, name) = check_report_fields(&c.loinc, &c.name)?;
    same(
        "report",
        &(loinc.as_str(), name.as_str()),
        &(c.loinc.as_str(), c.name.as_str()),
    )?;
    same(
        "collection time",
        &chartroom_audit::truncate_to_micros(c.collected),
        &c.collected,
    )?;
    let patient = change::row_of(conn, Table::Patients, c.patient)?;
    let encounter = super::encounter_row(conn, c.encounter, patient)?;
    conn.prepare_cached(
        "INSERT INTO lab_reports (uuid, patient_id, encounter_id, loinc, name, collected_at, recorded_by, recorded_at)
         VALUES (?1, ?2, ?3, cr_seal(?4, 'lab_reports', 'loinc', ?1, ?9), cr_seal(?5, 'lab_reports', 'name', ?1, ?9), ?6, ?7, ?8)",
    )?
    .execute(params![
        c.report,
        patient,
        encounter,
        c.loinc,
        c.name,
        chartroom_audit::format_time(c.collected),
        c.recorded.by,
        c.recorded.time(),
        c.patient
    ])?;
    Ok(Applied::one(conn.last_insert_rowid()))
}

struct Stored<'a> {
    result: RecordId,
    patient: (i64, RecordId),
    report: Option<i64>,
    replaces: Option<i64>,
    item: &'a NewResult,
    status: &'a str,
    reason: Option<&'a str>,
    reported: DateTime<Utc>,
    recorded: &'a Stamp,
}

fn insert(conn: &Connection, s: Stored<'_>) -> Result<Applied, CoreError> {
    let value = serde_json::to_string(&s.item.value)
        .map_err(|_| CoreError::InvalidInput("The value cannot be stored.".into()))?;
    let range = s
        .item
        .range
        .map(|r| serde_json::to_string(&r).unwrap_or_default());
    conn.prepare_cached(
        "INSERT INTO lab_results (uuid, patient_id, report_id, replaces, loinc, name, value, unit, range, flag, status, reason, collected_at, reported_at, recorded_by, recorded_at)
         VALUES (?1, ?2, ?3, ?4, cr_seal(?5, 'lab_results', 'loinc', ?1, ?17), cr_seal(?6, 'lab_results', 'name', ?1, ?17),
                 cr_seal(?7, 'lab_results', 'value', ?1, ?17), cr_seal(?8, 'lab_results', 'unit', ?1, ?17),
                 cr_seal(?9, 'lab_results', 'range', ?1, ?17), cr_seal(?10, 'lab_results', 'flag', ?1, ?17), ?11,
                 cr_seal(?12, 'lab_results', 'reason', ?1, ?17), ?13, ?14, ?15, ?16)",
    )?
    .execute(params![
        s.result,
        s.patient.0,
        s.report,
        s.replaces,
        s.item.loinc,
        s.item.name,
        value,
        s.item.unit,
        range,
        s.item.flag.map(ResultFlag::as_str),
        s.status,
        s.reason,
        chartroom_audit::format_time(s.item.collected),
        chartroom_audit::format_time(s.reported),
        s.recorded.by,
        s.recorded.time(),
        s.patient.1,
    ])?;
    Ok(Applied::one(conn.last_insert_rowid()))
}

fn check_item(item: &NewResult) -> Result<(), CoreError> {
    let checked = item.checked()?;
    same("result", &checked, item)
}

fn check_reason(label: &str, reason: &str) -> Result<(), CoreError> {
    let checked = bounded_text(label, reason, 500)?;
    same(label, checked.as_str(), reason)
}

/// The one writer of `lab_results`, for a new result.
pub(super) fn apply_recorded(conn: &Connection, c: &ResultRecorded) -> Result<Applied, CoreError> {
    check_item(&c.item)?;
    if let Some(reason) = &c.reason {
        check_reason("reason for the correction", reason)?;
    }
    let patient = change::row_of(conn, Table::Patients, c.patient)?;
    let report = c
        .report
        .map(|r| {
            let row = change::row_of(conn, Table::LabReports, r)?;
            super::check_belongs(conn, Item::LabReport, row, patient)?;
            Ok::<_, CoreError>(row)
        })
        .transpose()?;
    insert(
        conn,
        Stored {
            result: c.result,
            patient: (patient, c.patient),
            report,
            replaces: None,
            item: &c.item,
            status: c.item.status.as_str(),
            reason: c.reason.as_deref(),
            reported: c.reported,
            recorded: &c.recorded,
        },
    )
}

/// What a correction or a marking needs of the current version of a result.
struct Current {
    patient: i64,
    patient_uuid: RecordId,
    report: Option<i64>,
    status: String,
    loinc: Option<String>,
}

/// The patient, report, status and LOINC code of the current version `row`, refusing one
/// already replaced or marked.
fn current_version(conn: &Connection, row: i64) -> Result<Current, CoreError> {
    let (current, replaced) = conn
        .prepare_cached(&format!(
            "SELECT lab_results.patient_id, (SELECT uuid FROM patients p WHERE p.id = lab_results.patient_id), report_id, status, {},
                    EXISTS (SELECT 1 FROM lab_results later WHERE later.replaces = lab_results.id)
               FROM lab_results WHERE id = ?1",
            open_field!("lab_results", "loinc")
        ))?
        .query_row([row], |r| {
            let current = Current {
                patient: r.get(0)?,
                patient_uuid: r.get(1)?,
                report: r.get(2)?,
                status: r.get(3)?,
                loinc: r.get(4)?,
            };
            Ok((current, r.get::<_, bool>(5)?))
        })?;
    if replaced {
        return Err(CoreError::Conflict(format!(
            "Lab result {row} has already been corrected: correct its latest version."
        )));
    }
    if current.status == super::correction::ENTERED_IN_ERROR {
        return Err(CoreError::Conflict(format!(
            "Lab result {row} is marked entered in error."
        )));
    }
    Ok(current)
}

/// The one writer of `lab_results`, for a correction.
pub(super) fn apply_corrected(
    conn: &Connection,
    c: &ResultCorrected,
) -> Result<Applied, CoreError> {
    check_item(&c.item)?;
    check_reason("reason for the correction", &c.reason)?;
    let old = change::row_of(conn, Table::LabResults, c.replaces)?;
    let Current {
        patient,
        patient_uuid,
        report,
        status,
        loinc,
    } = current_version(conn, old)?;
    if loinc.as_deref().is_some_and(|l| l != c.item.loinc) {
        return Err(CoreError::InvalidInput(
            "A correction is of the same test: record a different test as a new result.".into(),
        ));
    }
    // A preliminary result becoming final is the lab finishing, not a correction.
    let new_status = if status == "preliminary" {
        c.item.status.as_str()
    } else {
        "corrected"
    };
    insert(
        conn,
        Stored {
            result: c.result,
            patient: (patient, patient_uuid),
            report,
            replaces: Some(old),
            item: &c.item,
            status: new_status,
            reason: Some(&c.reason),
            reported: c.reported,
            recorded: &c.recorded,
        },
    )
}

/// The one writer of `lab_results`, for "entered in error".
pub(super) fn apply_entered_in_error(
    conn: &Connection,
    c: &ResultEnteredInError,
) -> Result<Applied, CoreError> {
    super::correction::check_reason(&c.reason)
        .and_then(|r| same("reason", r.as_str(), c.reason.as_str()))?;
    let row = change::row_of(conn, Table::LabResults, c.result)?;
    let Current { patient_uuid, .. } = current_version(conn, row)?;
    conn.prepare_cached(
        "UPDATE lab_results SET status = 'entered-in-error', error_reason = cr_seal(?1, 'lab_results', 'error_reason', uuid, ?2),
                marked_by = ?3, marked_at = ?4 WHERE id = ?5",
    )?
    .execute(params![c.reason, patient_uuid, c.marked.by, c.marked.time(), row])?;
    Ok(Applied::one(row))
}

fn filter_loinc(results: Vec<LabResult>, loinc: Option<&str>) -> Vec<LabResult> {
    match loinc {
        None => results,
        Some(code) => results.into_iter().filter(|r| r.loinc == code).collect(),
    }
}

impl Session {
    /// Adds a report (a panel ordered together); its results are added with
    /// [`Session::add_lab_result`] naming it.
    pub fn add_lab_report(
        &mut self,
        patient_id: impl Into<PatientId>,
        input: &ReportInput,
    ) -> Result<LabReport, CoreError> {
        let patient_id = patient_id.into().get();
        let now = self.clock.now();
        let zone = self.settings().zone();
        let mut errors = Vec::new();
        let loinc = check_loinc(&input.loinc)
            .map_err(|e| errors.push(field("loinc", e)))
            .ok();
        let known = loinc.as_deref().and_then(lab_test);
        let name = match (
            optional_text("report name", input.name.as_deref(), 200),
            known,
        ) {
            (Err(e), _) => {
                errors.push(field("name", e));
                None
            }
            (Ok(Some(n)), _) => Some(n),
            (Ok(None), Some(t)) => Some(t.name.to_owned()),
            (Ok(None), None) => {
                if loinc.is_some() {
                    errors.push(field(
                        "name",
                        CoreError::InvalidInput(format!(
                            "Chartroom does not know LOINC {} by name: give the report's name.",
                            input.loinc.trim()
                        )),
                    ));
                }
                None
            }
        };
        let collected = match input.at.as_deref().map(str::trim) {
            Some(t) if !t.is_empty() => {
                super::input::parse_time_input("collection time", t, now, &zone)
                    .map_err(|e| errors.push(field("at", e)))
                    .ok()
            }
            _ => Some(chartroom_audit::truncate_to_micros(now)),
        };
        if !errors.is_empty() {
            return Err(CoreError::Fields(errors));
        }
        let (Some(loinc), Some(name), Some(collected)) = (loinc, name, collected) else {
            return Err(CoreError::InvalidInput("The report is incomplete.".into()));
        };
        let encounter_id = input.encounter_id;
        self.add_item(
            Permission::RecordResults,
            "report.create",
            Item::LabReport,
            patient_id,
            |tx, patient, recorded| {
                let encounter = super::encounter_id_of(tx, encounter_id, patient_id)?;
                Ok(Change::ReportAdded(ReportAdded {
                    report: RecordId::new(recorded.at),
                    patient,
                    encounter,
                    loinc,
                    name,
                    collected,
                    recorded,
                }))
            },
            self::report,
        )
    }

    /// Records a result typed in (by hand, from a lab's paper or portal report).
    pub fn add_lab_result(
        &mut self,
        patient_id: impl Into<PatientId>,
        input: &ResultInput,
    ) -> Result<LabResult, CoreError> {
        let patient_id = patient_id.into().get();
        let now = self.clock.now();
        let zone = self.settings().zone();
        // The report's collection time is the result's unless one is typed.
        let report_at = match input.report_id {
            Some(r) => {
                let owner = self.owner(Item::LabReport, r)?;
                if owner != patient_id {
                    return Err(CoreError::InvalidInput(format!(
                        "Lab report {r} belongs to another patient."
                    )));
                }
                let at: String = self
                    .connection()?
                    .prepare_cached("SELECT collected_at FROM lab_reports WHERE id = ?1")?
                    .query_row([r], |row| row.get(0))?;
                chartroom_audit::parse_time(&at)
            }
            None => None,
        };
        let item = input.read(now, &zone, report_at.unwrap_or(now))?;
        let report_id = input.report_id;
        self.add_item(
            Permission::RecordResults,
            "result.create",
            Item::LabResult,
            patient_id,
            |tx, patient, recorded| {
                let report = report_id
                    .map(|r| {
                        super::check_belongs(tx, Item::LabReport, r, patient_id)?;
                        change::id_of(tx, Table::LabReports, r)
                    })
                    .transpose()?;
                Ok(Change::ResultRecorded(ResultRecorded {
                    result: RecordId::new(recorded.at),
                    patient,
                    report,
                    item,
                    reported: recorded.at,
                    reason: None,
                    recorded,
                }))
            },
            self::result,
        )
    }

    /// Corrects a result: a new version with the new value and the reason; the earlier
    /// value stays, shown beside it. The test (LOINC) stays the same.
    pub fn correct_lab_result(
        &mut self,
        result_id: impl Into<LabResultId>,
        input: &ResultInput,
        reason: &str,
    ) -> Result<LabResult, CoreError> {
        let id = result_id.into().get();
        let reason = bounded_text("reason for the correction", reason, 500)?;
        let patient_id = self.owner(Item::LabResult, id)?;
        let now = self.clock.now();
        let zone = self.settings().zone();
        self.run(
            Permission::RecordResults,
            Op::update("result.correct")
                .patient(patient_id)
                .object(Item::LabResult.resource(), id),
            true,
            |tx, op, ctx| {
                let old = self::result(tx, id)?;
                if old.id.get() != id {
                    return Err(CoreError::Conflict(format!(
                        "Lab result {id} has already been corrected: correct its latest version, {}.",
                        old.id
                    )));
                }
                let collected = chartroom_audit::parse_time(&old.collected_at).unwrap_or(now);
                let mut typed = input.clone();
                if typed.loinc.trim().is_empty() {
                    typed.loinc = old.loinc.clone();
                }
                if typed.name.is_none() {
                    typed.name = Some(old.name.clone());
                }
                if typed.range.is_none() {
                    typed.range = old.range.map(|r| r.show().replace('–', "-"));
                }
                if typed.unit.is_none() {
                    typed.unit = old.unit.clone();
                }
                let item = typed.read(now, &zone, collected)?;
                let uuid = change::id_of(tx, Table::LabResults, id)?;
                let stamp = ctx.stamp();
                let c = Change::ResultCorrected(ResultCorrected {
                    result: RecordId::new(stamp.at),
                    replaces: uuid,
                    item,
                    reason: reason.clone(),
                    reported: stamp.at,
                    recorded: stamp,
                });
                let row = change::apply(tx, &c)?.row();
                op.object = Some((Item::LabResult.resource(), row.to_string()));
                self::result(tx, row)
            },
        )
    }

    /// Marks a result entered in error (it stays, struck out, with the reason).
    pub fn lab_result_entered_in_error(
        &mut self,
        result_id: impl Into<LabResultId>,
        reason: &str,
    ) -> Result<LabResult, CoreError> {
        let id = result_id.into().get();
        let reason = super::correction::check_reason(reason)?;
        let patient_id = self.owner(Item::LabResult, id)?;
        self.run(
            Permission::RecordResults,
            Op::update("result.entered_in_error")
                .patient(patient_id)
                .object(Item::LabResult.resource(), id),
            true,
            |tx, _, ctx| {
                let uuid = change::id_of(tx, Table::LabResults, id)?;
                change::apply(
                    tx,
                    &Change::ResultEnteredInError(ResultEnteredInError {
                        result: uuid,
                        reason,
                        marked: ctx.stamp(),
                    }),
                )?;
                self::result(tx, id)
            },
        )
    }

    /// A patient's results, newest first; only one test's when `loinc` is given (a trend).
    pub fn lab_results(
        &mut self,
        patient_id: impl Into<PatientId>,
        loinc: Option<&str>,
    ) -> Result<Vec<LabResult>, CoreError> {
        let patient_id = patient_id.into().get();
        let loinc = loinc.map(check_loinc).transpose()?;
        let all = self.list_items("result.read", patient_id, results)?;
        Ok(filter_loinc(all, loinc.as_deref()))
    }

    /// A patient's reports, newest first.
    pub fn lab_reports(
        &mut self,
        patient_id: impl Into<PatientId>,
    ) -> Result<Vec<LabReport>, CoreError> {
        let patient_id = patient_id.into().get();
        self.list_items("report.read", patient_id, reports)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_loinc_code_has_a_right_check_digit() {
        for t in LAB_TESTS {
            assert_eq!(check_loinc(t.loinc).expect(t.loinc), t.loinc);
            if let Some(u) = t.unit {
                assert_eq!(check_unit(u).expect(u), u);
            }
        }
        assert!(check_loinc("2345-8").is_err(), "wrong check digit");
        assert!(check_loinc("2345").is_err());
        assert!(check_loinc("abc-1").is_err());
        assert!(check_loinc("12345678-9").is_err());
    }

    #[test]
    fn values_ranges_and_flags_are_read_as_labs_write_them() {
        assert_eq!(
            ResultValue::parse("5.2").ok(),
            Some(ResultValue::Quantity(5.2))
        );
        assert!(matches!(
            ResultValue::parse("Not detected"),
            Ok(ResultValue::Coded { ref code, .. }) if code == "260415000"
        ));
        assert!(matches!(
            ResultValue::parse("<0.5"),
            Ok(ResultValue::Text(ref t)) if t == "<0.5"
        ));
        assert!(ResultValue::parse("").is_err());
        assert!(ResultValue::parse("NaN").is_err());
        let r = Range::parse("3.5 – 5.1").expect("range");
        assert_eq!((r.low, r.high), (Some(3.5), Some(5.1)));
        assert_eq!(r.flag(5.2), ResultFlag::H);
        assert_eq!(r.flag(3.4), ResultFlag::L);
        assert_eq!(r.flag(4.0), ResultFlag::N);
        assert_eq!(Range::parse("<200").expect("range").high, Some(200.0));
        assert_eq!(Range::parse(">40").expect("range").low, Some(40.0));
        assert_eq!(Range::parse("-2-2").expect("range").low, Some(-2.0));
        assert!(Range::parse("5-3").is_err());
        assert!(Range::parse("high").is_err());
        assert_eq!(check_unit("10^3/uL").expect("unit"), "10*3/uL");
        assert!(check_unit("mg per dL").is_err());
    }

    #[test]
    fn every_wrong_field_is_named_at_once() {
        let now = Utc::now();
        let input = ResultInput {
            loinc: "2345-8".into(),
            value: " ".into(),
            range: Some("high".into()),
            flag: Some("Q".into()),
            ..ResultInput::default()
        };
        let Err(CoreError::Fields(errors)) = input.read(now, &crate::ClinicZone::utc(), now) else {
            panic!("refused field by field")
        };
        let names: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(names, ["loinc", "value", "range", "flag"]);
        // A glucose typed with its range gets its unit and its flag.
        let input = ResultInput {
            loinc: "2345-7".into(),
            value: "182".into(),
            range: Some("70-99".into()),
            ..ResultInput::default()
        };
        let r = input
            .read(now, &crate::ClinicZone::utc(), now)
            .expect("reads");
        assert_eq!(r.unit.as_deref(), Some("mg/dL"));
        assert_eq!(r.flag, Some(ResultFlag::H));
        assert_eq!(r.name, "Glucose [Mass/volume] in Serum or Plasma");
        // A panel is a report, not a result; an unknown code needs its name.
        let panel = ResultInput {
            loinc: "57698-3".into(),
            value: "1".into(),
            ..ResultInput::default()
        };
        assert!(panel.read(now, &crate::ClinicZone::utc(), now).is_err());
        let unknown = ResultInput {
            loinc: "1234-4".into(),
            value: "1".into(),
            ..ResultInput::default()
        };
        let Err(CoreError::Fields(errors)) = unknown.read(now, &crate::ClinicZone::utc(), now)
        else {
            panic!("needs a name")
        };
        assert_eq!(errors[0].field, "name");
    }
}
