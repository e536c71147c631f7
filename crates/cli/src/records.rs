//! The clinical record on the command line: patients, encounters, notes, vitals, problems,
//! allergies, medications and immunizations. Parsing and printing only; core validates,
//! gates and audits.

use chartroom_core::{
    parse_time_input, read_vitals_form, show_vital_in, Chart, ChartAccess, CoreError, LabResult,
    NewAllergy, NewEncounter, NewImmunization, NewMedication, NewPatient, NewProblem, Note,
    NoteContent, Observation, PatientChanges, PatientForm, ReportInput, ResultFlag, ResultInput,
    SearchHit, Session, Units, Vital,
};
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::{json, Value};

use crate::{Failure, Output};

fn to_json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Dates for people: 02 Mar 2024, never 02/03/24.
fn show_date(iso: &str) -> String {
    NaiveDate::parse_from_str(iso.get(..10).unwrap_or(iso), "%Y-%m-%d")
        .map(|d| d.format("%d %b %Y").to_string())
        .unwrap_or_else(|_| iso.to_owned())
}

/// The clinic's time zone, once a session has read it (this process serves one command).
static CLINIC_ZONE: std::sync::OnceLock<chartroom_core::ClinicZone> = std::sync::OnceLock::new();

/// Remembers the clinic's zone for the times this command prints.
pub fn use_clinic_zone(zone: chartroom_core::ClinicZone) {
    let _ = CLINIC_ZONE.set(zone);
}

/// The zone times are printed in: the clinic's, or UTC before any session was opened.
pub fn clinic_zone() -> chartroom_core::ClinicZone {
    CLINIC_ZONE
        .get()
        .copied()
        .unwrap_or_else(chartroom_core::ClinicZone::utc)
}

/// A stored instant as the clinic's clocks show it: "02 Mar 2026 09:00".
pub fn show_time(rfc3339: &str) -> String {
    let zone = clinic_zone();
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| {
            let local = zone.local(t.with_timezone(&chrono::Utc));
            if zone == chartroom_core::ClinicZone::utc() {
                local.format("%d %b %Y %H:%M UTC").to_string()
            } else {
                local.format("%d %b %Y %H:%M").to_string()
            }
        })
        .unwrap_or_else(|_| rfc3339.to_owned())
}

fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

fn parse_date(label: &str, text: &str) -> Result<NaiveDate, Failure> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| {
        Failure::from(chartroom_core::CoreError::InvalidInput(format!(
            "The {label} \"{}\" is not a date. Write dates as YYYY-MM-DD.",
            text.chars().take(20).collect::<String>()
        )))
    })
}

#[derive(Debug, Args, Default)]
pub struct ContactArgs {
    /// Preferred name (what the patient likes to be called).
    #[arg(long)]
    preferred: Option<String>,
    /// female, male, non_binary, transgender_female, transgender_male, other, not_disclosed.
    #[arg(long, value_name = "IDENTITY")]
    gender_identity: Option<String>,
    #[arg(long)]
    phone: Option<String>,
    #[arg(long)]
    email: Option<String>,
    #[arg(long)]
    address: Option<String>,
    #[arg(long, value_name = "NAME")]
    emergency_name: Option<String>,
    #[arg(long, value_name = "PHONE")]
    emergency_phone: Option<String>,
    #[arg(long, value_name = "RELATIONSHIP")]
    emergency_relationship: Option<String>,
    /// Race: CDC codes or names, comma-separated (white, black or african american, asian,
    /// chinese, 2106-3, …), or "chose not to answer".
    #[arg(long, value_name = "RACES")]
    race: Option<String>,
    /// Ethnicity: hispanic or latino (with origins such as mexican), not hispanic or latino,
    /// or "chose not to answer".
    #[arg(long, value_name = "ETHNICITY")]
    ethnicity: Option<String>,
    /// Preferred language: its name or BCP 47 code (Spanish, es).
    #[arg(long, value_name = "LANGUAGE")]
    language: Option<String>,
    /// Sex assigned at birth: F, M or UNK.
    #[arg(long, value_name = "SEX")]
    birth_sex: Option<String>,
    /// straight or heterosexual, lesbian or gay, bisexual, something else, don't know,
    /// chose not to answer (or the SNOMED CT code).
    #[arg(long, value_name = "ORIENTATION")]
    sexual_orientation: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum PatientCommand {
    /// Register a patient; prints the new patient (with --json: its id and mrn among others).
    Add {
        #[arg(long)]
        family: String,
        #[arg(long)]
        given: String,
        /// YYYY-MM-DD.
        #[arg(long, value_name = "DATE")]
        birth_date: String,
        /// female, male, other or unknown.
        #[arg(long, default_value = "unknown")]
        sex: String,
        /// Only the care team may open the chart; others must break the glass.
        #[arg(long)]
        restricted: bool,
        /// Register even though the patient looks like one already here (the same name and
        /// birth date, or phone): they were checked and are a different person.
        #[arg(long)]
        new_person: bool,
        /// The care team besides you, as user names (repeat, or separate with commas); a
        /// restricted chart's team needs at least one physician or nurse.
        #[arg(long, value_name = "USER", value_delimiter = ',')]
        care_team: Vec<String>,
        #[command(flatten)]
        contact: ContactArgs,
    },
    /// Find patients by name (prefix, part, one typo, accents ignored), birth date, MRN or phone.
    Search { query: String },
    /// Open a chart (audited): demographics, and each section your role may read.
    Show {
        id: i64,
        /// Break the glass first, with this reason (for a restricted chart in an emergency).
        #[arg(long, value_name = "REASON")]
        break_glass: Option<String>,
    },
    /// Change demographics; the previous version is kept. An empty value clears a field.
    Update {
        id: i64,
        #[arg(long)]
        family: Option<String>,
        #[arg(long)]
        given: Option<String>,
        #[arg(long, value_name = "DATE")]
        birth_date: Option<String>,
        #[arg(long)]
        sex: Option<String>,
        /// true or false (needs the care-team permission).
        #[arg(long, value_name = "BOOL")]
        restricted: Option<bool>,
        #[command(flatten)]
        contact: ContactArgs,
    },
    /// Every version of a patient's demographics, with who changed it and when.
    History { id: i64 },
    /// Show or change a patient's care team.
    CareTeam {
        id: i64,
        /// Add this user to the care team.
        #[arg(long, value_name = "USER")]
        add: Vec<String>,
        /// Take this user off the care team.
        #[arg(long, value_name = "USER")]
        remove: Vec<String>,
    },
    /// Open a restricted chart in an emergency. The reason is recorded and reported.
    BreakGlass {
        id: i64,
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
}

#[derive(Debug, Args)]
pub struct NoteText {
    /// Free text.
    #[arg(long, conflicts_with_all = ["subjective", "objective", "assessment", "plan"])]
    text: Option<String>,
    #[arg(long)]
    subjective: Option<String>,
    #[arg(long)]
    objective: Option<String>,
    #[arg(long)]
    assessment: Option<String>,
    #[arg(long)]
    plan: Option<String>,
}

impl NoteText {
    fn content(&self) -> Result<NoteContent, Failure> {
        Ok(match &self.text {
            Some(t) => NoteContent::free(t)?,
            None => NoteContent::soap(
                self.subjective.as_deref(),
                self.objective.as_deref(),
                self.assessment.as_deref(),
                self.plan.as_deref(),
            )?,
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum NoteCommand {
    /// Write a draft note (free text, or SOAP sections).
    Draft {
        #[arg(long, value_name = "ID")]
        patient: i64,
        /// Attach to one of the patient's encounters.
        #[arg(long, value_name = "ID")]
        encounter: Option<i64>,
        #[command(flatten)]
        body: NoteText,
    },
    /// Replace a draft's text. Signed notes never change.
    Edit {
        id: i64,
        #[command(flatten)]
        body: NoteText,
    },
    /// Sign a draft (physicians); it can then never change.
    Sign { id: i64 },
    /// Add an addendum (or with --amend, an amendment) to a signed note.
    Addendum {
        id: i64,
        #[command(flatten)]
        body: NoteText,
        /// A correction rather than more information.
        #[arg(long)]
        amend: bool,
        /// Sign it at once (physicians).
        #[arg(long)]
        sign: bool,
    },
    /// List a patient's notes, newest first.
    List {
        #[arg(long, value_name = "ID")]
        patient: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum EncounterCommand {
    /// Open an encounter with you as the clinician.
    Add {
        #[arg(long, value_name = "ID")]
        patient: i64,
        /// office, telephone, telehealth or home.
        #[arg(long = "type", value_name = "TYPE", default_value = "office")]
        kind: String,
        #[arg(long)]
        reason: String,
        /// When it started (default now): "2026-03-02 14:30" in the clinic's time zone, or with an offset (2026-03-02T14:30:00Z).
        #[arg(long, aliases = ["time", "date", "start"], value_name = "TIME")]
        at: Option<String>,
    },
    /// List a patient's encounters, newest first.
    List {
        #[arg(long, value_name = "ID")]
        patient: i64,
    },
}

// Parsed once per run: the size of the typed fields does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum VitalsCommand {
    /// Record vitals taken together. Blood pressure in mmHg, rates per minute, SpO2 in %.
    /// Weight, height and temperature are read in the clinic's units (setting `units`:
    /// metric kg, cm, °C or us lb, in, °F) or in the unit written after the number:
    /// `--weight 150lb`, `--height 65in` (or 5'5"), `--temp 98.6F`. BMI is derived. Every
    /// field's problem is reported at once (exit 65, `fields`); a weight or height far from
    /// the last one is saved with a warning (`questions`).
    Add {
        #[arg(long, value_name = "ID")]
        patient: i64,
        #[arg(long, value_name = "MMHG")]
        systolic: Option<String>,
        #[arg(long, value_name = "MMHG")]
        diastolic: Option<String>,
        #[arg(long, visible_alias = "pulse", alias = "hr", value_name = "PER_MIN")]
        heart_rate: Option<String>,
        #[arg(long, aliases = ["resp-rate", "rr"], value_name = "PER_MIN")]
        respiratory_rate: Option<String>,
        #[arg(long, alias = "temp", value_name = "TEMPERATURE")]
        temperature: Option<String>,
        #[arg(long, aliases = ["sp-o2", "oxygen-saturation"], value_name = "PERCENT")]
        spo2: Option<String>,
        /// Blood pressure as SYSTOLIC/DIASTOLIC, e.g. 128/82 (instead of the two flags).
        #[arg(long, value_name = "SYS/DIA", conflicts_with_all = ["systolic", "diastolic"])]
        bp: Option<String>,
        #[arg(long, value_name = "WEIGHT")]
        weight: Option<String>,
        #[arg(long, value_name = "HEIGHT")]
        height: Option<String>,
        /// When they were taken (default now).
        #[arg(long, aliases = ["time", "date"], value_name = "TIME")]
        at: Option<String>,
        #[arg(long, value_name = "ID")]
        encounter: Option<i64>,
    },
    /// List a patient's vital signs, newest first.
    List {
        #[arg(long, value_name = "ID")]
        patient: i64,
    },
    /// Mark a vital sign (with the other half of its blood pressure, or the BMI of its weight or height) entered in error: it stays in the record, struck out, with the reason.
    EnteredInError {
        id: i64,
        /// Why (for example "pounds typed as kilograms"); kept with the record, sealed.
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProblemCommand {
    /// Add a problem (ICD-10 or SNOMED CT code where known).
    Add {
        #[arg(long, value_name = "ID")]
        patient: i64,
        #[arg(long, aliases = ["description", "name"])]
        text: String,
        /// icd10 or snomed.
        #[arg(long)]
        system: Option<String>,
        #[arg(long)]
        code: Option<String>,
        #[arg(long, value_name = "DATE")]
        onset: Option<String>,
    },
    /// List a patient's problems, active first.
    List {
        #[arg(long, value_name = "ID")]
        patient: i64,
    },
    /// Mark a problem resolved.
    Resolve {
        id: i64,
        #[arg(long, value_name = "DATE")]
        date: Option<String>,
    },
    /// Mark a problem entered in error: it stays in the record, struck out, with the reason.
    EnteredInError {
        id: i64,
        /// Why (for example "pounds typed as kilograms"); kept with the record, sealed.
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AllergyCommand {
    /// Add an allergy or intolerance.
    Add {
        #[arg(long, value_name = "ID")]
        patient: i64,
        #[arg(long)]
        substance: String,
        #[arg(long)]
        reaction: Option<String>,
        /// mild, moderate or severe.
        #[arg(long)]
        severity: Option<String>,
        /// food, medication, environment or biologic.
        #[arg(long)]
        category: Option<String>,
        /// Save it although it matches an active allergy (or a current medication) by name
        /// or drug class, for this reason (recorded with it); without it such a match exits
        /// 65 with code `allergy_conflict`.
        #[arg(long, value_name = "REASON")]
        override_allergy: Option<String>,
    },
    /// Record "no known allergies" (a statement, not an empty list).
    None {
        #[arg(long, value_name = "ID")]
        patient: i64,
    },
    /// List a patient's allergies and the allergy status.
    List {
        #[arg(long, value_name = "ID")]
        patient: i64,
    },
    /// Mark an allergy resolved.
    Resolve { id: i64 },
    /// Mark an allergy entered in error: it stays in the record, struck out, with the reason.
    EnteredInError {
        id: i64,
        /// Why (for example "pounds typed as kilograms"); kept with the record, sealed.
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum MedicationCommand {
    /// Add a medication the patient takes.
    Add {
        #[arg(long, value_name = "ID")]
        patient: i64,
        #[arg(long)]
        name: String,
        #[arg(long)]
        dose: Option<String>,
        /// oral, sublingual, inhaled, nasal, topical, transdermal, ophthalmic, otic, rectal,
        /// vaginal, subcutaneous, intramuscular or intravenous.
        #[arg(long)]
        route: Option<String>,
        #[arg(long)]
        frequency: Option<String>,
        #[arg(long, value_name = "DATE")]
        start: Option<String>,
        /// Save it although it matches an active allergy (or a current medication) by name
        /// or drug class, for this reason (recorded with it); without it such a match exits
        /// 65 with code `allergy_conflict`.
        #[arg(long, value_name = "REASON")]
        override_allergy: Option<String>,
    },
    /// List a patient's medications, active first.
    List {
        #[arg(long, value_name = "ID")]
        patient: i64,
    },
    /// Stop a medication.
    #[command(alias = "stop")]
    Resolve {
        id: i64,
        #[arg(long, value_name = "DATE")]
        date: Option<String>,
    },
    /// Mark a medication entered in error: it stays in the record, struck out, with the reason.
    EnteredInError {
        id: i64,
        /// Why (for example "pounds typed as kilograms"); kept with the record, sealed.
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ResultCommand {
    /// Record a lab result typed from the lab's report.
    Add {
        #[arg(long, value_name = "ID")]
        patient: i64,
        /// The test's LOINC code, e.g. 2345-7 (glucose).
        #[arg(long, value_name = "CODE")]
        loinc: String,
        /// A number (5.2), a finding (negative, not detected) or the lab's text.
        #[arg(long, value_name = "V", allow_hyphen_values = true)]
        value: String,
        /// UCUM unit, e.g. mg/dL; the test's usual unit when left out.
        #[arg(long, value_name = "U")]
        unit: Option<String>,
        /// The lab's reference range: LOW-HIGH, <HIGH or >LOW.
        #[arg(long, value_name = "LOW-HIGH", allow_hyphen_values = true)]
        range: Option<String>,
        /// When the specimen was taken (the report's time, or now, when left out).
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// The report (panel) it belongs to.
        #[arg(long, value_name = "ID")]
        report: Option<i64>,
        /// The test's name, for a LOINC code Chartroom does not know by name.
        #[arg(long)]
        name: Option<String>,
        /// N, L, H, LL, HH or A; worked out from the range when left out.
        #[arg(long)]
        flag: Option<String>,
        /// preliminary or final (the default).
        #[arg(long)]
        status: Option<String>,
    },
    /// List a patient's results, newest first; one test's over time with --loinc.
    List {
        #[arg(long, value_name = "ID")]
        patient: i64,
        #[arg(long, value_name = "CODE")]
        loinc: Option<String>,
    },
    /// Correct a result: the new value replaces it, and the earlier one stays visible.
    Correct {
        id: i64,
        #[arg(long, value_name = "V", allow_hyphen_values = true)]
        value: String,
        #[arg(long, value_name = "U")]
        unit: Option<String>,
        #[arg(long, value_name = "LOW-HIGH", allow_hyphen_values = true)]
        range: Option<String>,
        #[arg(long)]
        flag: Option<String>,
        /// preliminary or final: a preliminary result made final is not a correction.
        #[arg(long)]
        status: Option<String>,
        /// Why (for example "the lab sent a corrected report"); kept with the record, sealed.
        #[arg(long)]
        reason: String,
    },
    /// Mark a result entered in error: it stays in the record, struck out, with the reason.
    EnteredInError {
        id: i64,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Add a report (a panel: lipid panel 57698-3, CBC 58410-2, …); add its results with
    /// `result add --report ID`.
    Add {
        #[arg(long, value_name = "ID")]
        patient: i64,
        #[arg(long, value_name = "CODE")]
        loinc: String,
        /// When the specimen was taken (now when left out).
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// The report's name, for a LOINC code Chartroom does not know by name.
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_name = "ID")]
        encounter: Option<i64>,
    },
    /// List a patient's reports, newest first, with their results.
    List {
        #[arg(long, value_name = "ID")]
        patient: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImmunizationCommand {
    /// Record a vaccination.
    Add {
        #[arg(long, value_name = "ID")]
        patient: i64,
        #[arg(long)]
        vaccine: String,
        /// CDC CVX code, e.g. 141 (influenza).
        #[arg(long, alias = "code")]
        cvx: String,
        #[arg(long, value_name = "DATE")]
        date: String,
        #[arg(long)]
        lot: Option<String>,
        /// left_arm, right_arm, left_thigh, right_thigh, oral or nasal.
        #[arg(long)]
        site: Option<String>,
    },
    /// List a patient's immunizations.
    List {
        #[arg(long, value_name = "ID")]
        patient: i64,
    },
    /// Mark an immunization entered in error (without a reason; prefer entered-in-error).
    Resolve { id: i64 },
    /// Mark an immunization entered in error: it stays in the record, struck out, with the reason.
    EnteredInError {
        id: i64,
        /// Why (for example "pounds typed as kilograms"); kept with the record, sealed.
        #[arg(long)]
        reason: String,
    },
}

fn hit_line(p: &SearchHit) -> String {
    if p.masked {
        return format!(
            "{:>6}  {:<9} Restricted patient (only the care team may see who; break the glass to open)",
            p.id, p.mrn
        );
    }
    format!(
        "{:>6}  {:<9} {:<32} {}  {:>3} y  {:<7} {}{}",
        p.id,
        p.mrn,
        format!("{}, {}", p.family, p.given),
        p.birth_date
            .map(|d| d.format("%d %b %Y").to_string())
            .unwrap_or_default(),
        p.age.unwrap_or(0),
        p.sex.map(|s| s.as_str()).unwrap_or(""),
        p.phone.as_deref().unwrap_or(""),
        if p.restricted { "  [restricted]" } else { "" }
    )
}

fn note_text(n: &Note) -> String {
    let status = match (&n.signed_by, &n.signed_at) {
        (Some(by), Some(at)) => format!("signed by {by}, {}", show_time(at)),
        _ => "draft".to_owned(),
    };
    let what = match n.parent_id {
        Some(p) => format!("{} {} to note {p}", capitalised(n.kind.as_str()), n.id),
        None => format!("Note {}", n.id),
    };
    format!(
        "{what} by {} ({status}):\n{}\n",
        n.author,
        n.content.as_text()
    )
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

fn vitals_text(obs: &[Observation], units: Units) -> String {
    if obs.is_empty() {
        return "No vital signs recorded.".into();
    }
    obs.iter()
        .map(|o| {
            format!(
                "{:>6}  {}  {:<36} {:>16} {}",
                o.id,
                show_time(&o.effective),
                o.display,
                show_vital_in(o.vital, o.value, units),
                if !o.is_current() {
                    "[entered in error]"
                } else if o.flag.is_abnormal() {
                    o.flag.as_str()
                } else {
                    ""
                }
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn allergy_banner(status: &str, list: Option<&[chartroom_core::Allergy]>) -> String {
    match (status, list) {
        (_, None) => String::new(),
        ("no_known_allergies", _) => "Allergies: No known allergies\n".into(),
        ("unknown", _) => "Allergies: unknown (not yet asked)\n".into(),
        (_, Some(list)) => {
            let active: Vec<String> = list
                .iter()
                .filter(|a| a.status == "active")
                .map(|a| match &a.reaction {
                    Some(r) => format!("{} ({r})", a.substance),
                    None => a.substance.clone(),
                })
                .collect();
            if active.is_empty() {
                "Allergies: none active\n".into()
            } else {
                format!("ALLERGIES: {}\n", active.join("; "))
            }
        }
    }
}

/// The marker after an imported item's line (" [imported, 1]"), numbering the sources in the
/// order the chart's "Imported" section lists them.
fn origin_mark(c: &Chart, item: &str, id: i64) -> String {
    let Some(o) = c.imported.iter().find(|o| o.item == item && o.id == id) else {
        return String::new();
    };
    let n = origin_sources(c)
        .iter()
        .position(|s| *s == (o.source.as_str(), o.signed_by.as_deref()))
        .map_or(0, |i| i + 1);
    format!("  [imported, {n}]")
}

/// The distinct (source, signing key) pairs of a chart's imported items, oldest first.
fn origin_sources(c: &Chart) -> Vec<(&str, Option<&str>)> {
    let mut out: Vec<(&str, Option<&str>)> = Vec::new();
    for o in &c.imported {
        let s = (o.source.as_str(), o.signed_by.as_deref());
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

fn chart_text(c: &Chart, units: Units) -> String {
    let p = &c.patient;
    let d = &p.demographics;
    let mut t = format!(
        "{}, {}{}   {} y   {}   MRN {}   born {}{}\n",
        d.family,
        d.given,
        d.preferred
            .as_deref()
            .map(|n| format!(" (\"{n}\")"))
            .unwrap_or_default(),
        c.age,
        d.sex.as_str(),
        p.mrn,
        d.birth_date.format("%d %b %Y"),
        if p.restricted { "   [restricted]" } else { "" },
    );
    t.push_str(&allergy_banner(
        p.allergy_status.as_deref().unwrap_or("unknown"),
        c.allergies.as_deref(),
    ));
    if let Some(phone) = &d.phone {
        t.push_str(&format!("Phone: {phone}\n"));
    }
    if let Some(email) = &d.email {
        t.push_str(&format!("Email: {email}\n"));
    }
    if let Some(address) = &d.address {
        t.push_str(&format!("Address: {address}\n"));
    }
    if let Some(e) = &d.emergency_contact {
        t.push_str(&format!(
            "Emergency contact: {} {}{}\n",
            e.name,
            e.phone,
            e.relationship
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ));
    }
    t.push_str(&uscdi_lines(d));
    t.push_str(&format!(
        "Care team: {}\n",
        if c.care_team.is_empty() {
            "-".to_owned()
        } else {
            c.care_team.join(", ")
        }
    ));
    if let ChartAccess::BreakGlass { expires_at, .. } = &c.access {
        t.push_str(&format!(
            "Opened by breaking the glass; access ends {}.\n",
            show_time(expires_at)
        ));
    }
    if let Some(problems) = &c.problems {
        t.push_str("\nProblems:\n");
        for pr in problems {
            t.push_str(&format!(
                "  [{}] {}{}{}{}\n",
                pr.status,
                pr.text,
                pr.code
                    .as_deref()
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default(),
                pr.onset
                    .as_deref()
                    .map(|o| format!(", since {}", show_date(o)))
                    .unwrap_or_default(),
                origin_mark(c, "problem", pr.id.get())
            ));
        }
    }
    if let Some(meds) = &c.medications {
        t.push_str("\nMedications:\n");
        for m in meds {
            t.push_str(&format!(
                "  [{}] {} {} {} {}{}\n",
                m.status,
                m.name,
                m.dose.as_deref().unwrap_or(""),
                m.route.map(|r| r.as_str()).unwrap_or(""),
                m.frequency.as_deref().unwrap_or(""),
                origin_mark(c, "medication", m.id.get())
            ));
        }
    }
    if let Some(imms) = &c.immunizations {
        t.push_str("\nImmunizations:\n");
        for i in imms {
            t.push_str(&format!(
                "  {}  {} (CVX {}){}{}\n",
                show_date(&i.date),
                i.vaccine,
                i.cvx,
                if i.status == "entered_in_error" {
                    " [entered in error]"
                } else {
                    ""
                },
                origin_mark(c, "immunization", i.id.get())
            ));
        }
    }
    if let Some(results) = c.lab_results.as_ref().filter(|r| !r.is_empty()) {
        t.push_str("\nLab results (latest first):\n");
        for r in results.iter().take(20) {
            t.push_str(&format!(
                "  {}{}\n",
                result_line(r),
                origin_mark(c, "lab_result", r.id.get())
            ));
        }
    }
    if let Some(vitals) = &c.vitals {
        t.push_str("\nVital signs (latest first):\n");
        for line in vitals_text(&vitals[..vitals.len().min(12)], units).lines() {
            t.push_str(&format!("  {line}\n"));
        }
    }
    if let Some(encounters) = &c.encounters {
        t.push_str("\nEncounters:\n");
        for e in encounters.iter().take(20) {
            t.push_str(&format!(
                "  {:>5}  {}  {:<12} {}  ({}){}\n",
                e.id,
                show_time(&e.start),
                e.kind.label(),
                e.reason,
                e.clinician,
                origin_mark(c, "encounter", e.id.get())
            ));
        }
    }
    if let Some(notes) = &c.notes {
        for n in notes.iter().take(10) {
            t.push('\n');
            let mark = origin_mark(c, "note", n.id.get());
            if !mark.is_empty() {
                t.push_str(&format!("{}\n", mark.trim_start()));
            }
            t.push_str(&note_text(n));
        }
    }
    let sources = origin_sources(c);
    if !sources.is_empty() {
        t.push_str("\nImported (the items marked [imported, N] above):\n");
        for (i, (source, key)) in sources.iter().enumerate() {
            let items = c
                .imported
                .iter()
                .filter(|o| (o.source.as_str(), o.signed_by.as_deref()) == (*source, *key))
                .count();
            let first = c
                .imported
                .iter()
                .find(|o| o.source == *source)
                .map(|o| show_time(&o.imported_at))
                .unwrap_or_default();
            t.push_str(&format!(
                "  {}. from {source}, {}; {items} item{} (first on {first})\n",
                i + 1,
                match key {
                    Some(k) => format!("signed there by key {k}"),
                    None if c.imported.iter().any(|o| o.source == *source && o.foreign) => {
                        "FHIR from another system, recorded and signed there".to_owned()
                    }
                    None => "not signed (exported before exports were signed)".to_owned(),
                },
                if items == 1 { "" } else { "s" },
            ));
        }
    }
    t
}

/// Race, ethnicity, language, birth sex and sexual orientation, in words, where recorded.
fn uscdi_lines(d: &chartroom_core::Demographics) -> String {
    use chartroom_core::chart::uscdi;
    let mut t = String::new();
    let mut line = |label: &str, value: Option<String>| {
        if let Some(v) = value {
            t.push_str(&format!("{label}: {v}\n"));
        }
    };
    line(
        "Race",
        (!d.race.is_empty()).then(|| uscdi::coded_words(&d.race, uscdi::race)),
    );
    line(
        "Ethnicity",
        (!d.ethnicity.is_empty()).then(|| uscdi::coded_words(&d.ethnicity, uscdi::ethnicity)),
    );
    line(
        "Preferred language",
        d.language
            .as_deref()
            .map(|l| uscdi::language_name(l).unwrap_or(l).to_owned()),
    );
    line(
        "Sex assigned at birth",
        d.birth_sex
            .as_deref()
            .map(|s| uscdi::birth_sex_name(s).unwrap_or(s).to_owned()),
    );
    line(
        "Sexual orientation",
        d.sexual_orientation
            .as_deref()
            .map(|s| uscdi::sexual_orientation_words(s).unwrap_or(s).to_owned()),
    );
    t
}

fn form_from(
    family: &str,
    given: &str,
    birth_date: &str,
    sex: &str,
    c: &ContactArgs,
) -> PatientForm {
    PatientForm {
        family: family.into(),
        given: given.into(),
        preferred: c.preferred.clone(),
        birth_date: birth_date.into(),
        sex: sex.into(),
        gender_identity: c.gender_identity.clone(),
        phone: c.phone.clone(),
        email: c.email.clone(),
        address: c.address.clone(),
        emergency_name: c.emergency_name.clone(),
        emergency_phone: c.emergency_phone.clone(),
        emergency_relationship: c.emergency_relationship.clone(),
        race: c.race.clone(),
        ethnicity: c.ethnicity.clone(),
        language: c.language.clone(),
        birth_sex: c.birth_sex.clone(),
        sexual_orientation: c.sexual_orientation.clone(),
    }
}

pub fn patient(session: &mut Session, cmd: &PatientCommand) -> Result<Output, Failure> {
    match cmd {
        PatientCommand::Add {
            family,
            given,
            birth_date,
            sex,
            restricted,
            new_person,
            care_team,
            contact,
        } => {
            let form = form_from(family, given, birth_date, sex, contact);
            let new = NewPatient::from_form(&form, *restricted, today())?;
            let p = if care_team.is_empty() {
                if *new_person {
                    session.register_new_person(&new)?
                } else {
                    session.register_patient(&new)?
                }
            } else {
                session.register_patient_with_team(&new, care_team, *new_person)?
            };
            let text = format!(
                "Registered {}, {} (id {}, MRN {}).",
                p.demographics.family, p.demographics.given, p.id, p.mrn
            );
            Ok(Output::new(to_json(&p), text))
        }
        PatientCommand::Search { query } => {
            let hits = session.search_patients(query)?;
            let text = if hits.is_empty() {
                "No patients found.".to_owned()
            } else {
                hits.iter().map(hit_line).collect::<Vec<_>>().join("\n")
            };
            Ok(Output::new(json!({"patients": hits}), text))
        }
        PatientCommand::Show { id, break_glass } => {
            if let Some(reason) = break_glass {
                session.break_glass(*id, reason)?;
            }
            let chart = session.open_chart(*id)?;
            Ok(Output::new(
                to_json(&chart),
                chart_text(&chart, session.settings().units),
            ))
        }
        PatientCommand::Update {
            id,
            family,
            given,
            birth_date,
            sex,
            restricted,
            contact,
        } => {
            let changes = PatientChanges {
                family: family.clone(),
                given: given.clone(),
                preferred: contact.preferred.clone(),
                birth_date: birth_date.clone(),
                sex: sex.clone(),
                gender_identity: contact.gender_identity.clone(),
                phone: contact.phone.clone(),
                email: contact.email.clone(),
                address: contact.address.clone(),
                emergency_name: contact.emergency_name.clone(),
                emergency_phone: contact.emergency_phone.clone(),
                emergency_relationship: contact.emergency_relationship.clone(),
                race: contact.race.clone(),
                ethnicity: contact.ethnicity.clone(),
                language: contact.language.clone(),
                birth_sex: contact.birth_sex.clone(),
                sexual_orientation: contact.sexual_orientation.clone(),
                restricted: *restricted,
            };
            let p = session.update_patient(*id, &changes)?;
            Ok(Output::new(
                to_json(&p),
                format!(
                    "Updated {}, {} (version {}).",
                    p.demographics.family, p.demographics.given, p.version
                ),
            ))
        }
        PatientCommand::History { id } => {
            let versions = session.patient_history(*id)?;
            let text = versions
                .iter()
                .map(|v| {
                    let d = &v.demographics;
                    format!(
                        "v{}  {}  by {}: {}, {}  born {}  {}{}",
                        v.version,
                        show_time(&v.changed_at),
                        v.changed_by,
                        d.family,
                        d.given,
                        d.birth_date.format("%d %b %Y"),
                        d.phone.as_deref().unwrap_or("-"),
                        if v.restricted { "  [restricted]" } else { "" }
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            Ok(Output::new(
                json!({"patient": id, "versions": versions}),
                text,
            ))
        }
        PatientCommand::CareTeam { id, add, remove } => {
            for user in add {
                session.add_to_care_team(*id, user)?;
            }
            for user in remove {
                session.remove_from_care_team(*id, user)?;
            }
            let chart = session.open_chart(*id)?;
            Ok(Output::new(
                json!({"patient": id, "care_team": chart.care_team}),
                format!("Care team: {}", chart.care_team.join(", ")),
            ))
        }
        PatientCommand::BreakGlass { id, reason } => {
            let grant = session.break_glass(*id, reason)?;
            Ok(Output::new(
                to_json(&grant),
                format!(
                    "Emergency access to patient {id} until {} ({} minutes). This access is recorded and reported.",
                    show_time(&grant.expires_at),
                    grant.minutes
                ),
            ))
        }
    }
}

pub fn note(session: &mut Session, cmd: &NoteCommand) -> Result<Output, Failure> {
    match cmd {
        NoteCommand::Draft {
            patient,
            encounter,
            body,
        } => {
            let n = session.draft_note(*patient, encounter.map(Into::into), &body.content()?)?;
            Ok(Output::new(
                to_json(&n),
                format!("Draft note {} saved.", n.id),
            ))
        }
        NoteCommand::Edit { id, body } => {
            let n = session.edit_draft(*id, &body.content()?)?;
            Ok(Output::new(
                to_json(&n),
                format!("Draft note {} updated.", n.id),
            ))
        }
        NoteCommand::Sign { id } => {
            let n = session.sign_note(*id)?;
            Ok(Output::new(
                to_json(&n),
                format!("Note {} signed; it can no longer be changed.", n.id),
            ))
        }
        NoteCommand::Addendum {
            id,
            body,
            amend,
            sign,
        } => {
            let mut n = session.add_addendum(*id, &body.content()?, *amend)?;
            if *sign {
                n = session.sign_note(n.id)?;
            }
            Ok(Output::new(
                to_json(&n),
                format!(
                    "{} {} to note {id} {}.",
                    capitalised(n.kind.as_str()),
                    n.id,
                    if n.status == "signed" {
                        "signed"
                    } else {
                        "saved as a draft"
                    }
                ),
            ))
        }
        NoteCommand::List { patient } => {
            let notes = session.notes(*patient)?;
            let text = if notes.is_empty() {
                "No notes.".to_owned()
            } else {
                notes.iter().map(note_text).collect::<Vec<_>>().join("\n")
            };
            Ok(Output::new(json!({"notes": notes}), text))
        }
    }
}

pub fn encounter(session: &mut Session, cmd: &EncounterCommand) -> Result<Output, Failure> {
    match cmd {
        EncounterCommand::Add {
            patient,
            kind,
            reason,
            at,
        } => {
            let zone = session.settings().zone();
            let e = NewEncounter::new(kind, at.as_deref(), reason, chrono::Utc::now(), &zone)?;
            let e = session.add_encounter(*patient, &e)?;
            Ok(Output::new(
                to_json(&e),
                format!(
                    "Encounter {} opened: {}, {}.",
                    e.id,
                    e.kind.label(),
                    show_time(&e.start)
                ),
            ))
        }
        EncounterCommand::List { patient } => {
            let list = session.encounters(*patient)?;
            let text = list
                .iter()
                .map(|e| {
                    format!(
                        "{:>5}  {}  {:<12} {}  ({})",
                        e.id,
                        show_time(&e.start),
                        e.kind.label(),
                        e.reason,
                        e.clinician
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            Ok(Output::new(json!({"encounters": list}), text))
        }
    }
}

pub fn vitals(session: &mut Session, cmd: &VitalsCommand) -> Result<Output, Failure> {
    match cmd {
        VitalsCommand::Add {
            patient,
            systolic,
            diastolic,
            heart_rate,
            respiratory_rate,
            temperature,
            spo2,
            weight,
            height,
            at,
            encounter,
            bp,
        } => {
            let (systolic, diastolic) = match bp {
                Some(text) => match text.split_once('/') {
                    Some((s, d)) => (Some(s.to_owned()), Some(d.to_owned())),
                    None => {
                        return Err(Failure::from(chartroom_core::CoreError::InvalidInput(
                            "--bp takes SYSTOLIC/DIASTOLIC, e.g. 128/82.".into(),
                        )))
                    }
                },
                None => (systolic.clone(), diastolic.clone()),
            };
            let units = session.settings().units;
            let fields: Vec<(Vital, &str)> = [
                (Vital::Systolic, &systolic),
                (Vital::Diastolic, &diastolic),
                (Vital::HeartRate, heart_rate),
                (Vital::RespiratoryRate, respiratory_rate),
                (Vital::Temperature, temperature),
                (Vital::Spo2, spo2),
                (Vital::Weight, weight),
                (Vital::Height, height),
            ]
            .into_iter()
            .filter_map(|(v, t)| t.as_deref().map(|t| (v, t)))
            .collect();
            let input = read_vitals_form(&fields, units).map_err(CoreError::Fields)?;
            let zone = session.settings().zone();
            let effective = at
                .as_deref()
                .map(|t| parse_time_input("time of the vitals", t, chrono::Utc::now(), &zone))
                .transpose()?;
            let saved = session.record_vitals_checked(
                *patient,
                &input,
                effective,
                encounter.map(Into::into),
                true,
            )?;
            let mut text = vitals_text(&saved.observations, units);
            for q in &saved.questions {
                text.push_str(&format!("\nWarning: {}", q.message));
            }
            Ok(Output::new(
                json!({"observations": saved.observations, "questions": saved.questions}),
                text,
            ))
        }
        VitalsCommand::List { patient } => {
            let units = session.settings().units;
            let obs = session.vitals(*patient)?;
            Ok(Output::new(
                json!({"observations": obs}),
                vitals_text(&obs, units),
            ))
        }
        VitalsCommand::EnteredInError { id, reason } => {
            let units = session.settings().units;
            let obs = session.vitals_entered_in_error(*id, reason)?;
            Ok(Output::new(
                json!({"observations": obs}),
                format!("Marked entered in error:\n{}", vitals_text(&obs, units)),
            ))
        }
    }
}

pub fn problem(session: &mut Session, cmd: &ProblemCommand) -> Result<Output, Failure> {
    match cmd {
        ProblemCommand::Add {
            patient,
            text,
            system,
            code,
            onset,
        } => {
            let p = NewProblem::new(
                text,
                system.as_deref(),
                code.as_deref(),
                onset.as_deref(),
                today(),
            )?;
            let p = session.add_problem(*patient, &p)?;
            Ok(Output::new(
                to_json(&p),
                format!("Problem {} added: {}.", p.id, p.text),
            ))
        }
        ProblemCommand::List { patient } => {
            let list = session.problems(*patient)?;
            let text = list
                .iter()
                .map(|p| {
                    format!(
                        "{:>5}  [{}] {}{}",
                        p.id,
                        p.status,
                        p.text,
                        p.code
                            .as_deref()
                            .map(|c| format!(" ({c})"))
                            .unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            Ok(Output::new(json!({"problems": list}), text))
        }
        ProblemCommand::Resolve { id, date } => {
            let date = date
                .as_deref()
                .map(|d| parse_date("resolution date", d))
                .transpose()?;
            let p = session.resolve_problem(*id, date)?;
            Ok(Output::new(
                to_json(&p),
                format!("Problem {} resolved.", p.id),
            ))
        }
        ProblemCommand::EnteredInError { id, reason } => {
            let p = session.problem_entered_in_error(*id, reason)?;
            Ok(Output::new(
                to_json(&p),
                format!("Problem {} marked entered in error: {}.", p.id, p.text),
            ))
        }
    }
}

pub fn allergy(session: &mut Session, cmd: &AllergyCommand) -> Result<Output, Failure> {
    match cmd {
        AllergyCommand::Add {
            patient,
            substance,
            reaction,
            severity,
            category,
            override_allergy,
        } => {
            let a = NewAllergy::new(
                substance,
                reaction.as_deref(),
                severity.as_deref(),
                category.as_deref(),
            )?;
            let a = match override_allergy {
                Some(reason) => session.add_allergy_despite_medication(*patient, &a, reason)?,
                None => session.add_allergy(*patient, &a)?,
            };
            Ok(Output::new(
                to_json(&a),
                format!("Allergy {} added: {}.", a.id, a.substance),
            ))
        }
        AllergyCommand::None { patient } => {
            let p = session.record_no_known_allergies(*patient)?;
            Ok(Output::new(
                json!({"patient": p.id, "allergy_status": p.allergy_status}),
                "Recorded: no known allergies.",
            ))
        }
        AllergyCommand::List { patient } => {
            let found = session.allergies(*patient)?;
            let mut text = allergy_banner(&found.allergy_status, Some(&found.allergies));
            for a in &found.allergies {
                text.push_str(&format!(
                    "{:>5}  [{}] {}{}{}\n",
                    a.id,
                    a.status,
                    a.substance,
                    a.reaction
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default(),
                    a.severity
                        .map(|s| format!(" ({})", s.as_str()))
                        .unwrap_or_default()
                ));
            }
            Ok(Output::new(to_json(&found), text))
        }
        AllergyCommand::Resolve { id } => {
            let a = session.resolve_allergy(*id)?;
            Ok(Output::new(
                to_json(&a),
                format!("Allergy {} resolved.", a.id),
            ))
        }
        AllergyCommand::EnteredInError { id, reason } => {
            let a = session.allergy_entered_in_error(*id, reason)?;
            Ok(Output::new(
                to_json(&a),
                format!("Allergy {} marked entered in error: {}.", a.id, a.substance),
            ))
        }
    }
}

pub fn medication(session: &mut Session, cmd: &MedicationCommand) -> Result<Output, Failure> {
    match cmd {
        MedicationCommand::Add {
            patient,
            name,
            dose,
            route,
            frequency,
            start,
            override_allergy,
        } => {
            let m = NewMedication::new(
                name,
                dose.as_deref(),
                route.as_deref(),
                frequency.as_deref(),
                start.as_deref(),
                today(),
            )?;
            let m = match override_allergy {
                Some(reason) => session.add_medication_despite_allergy(*patient, &m, reason)?,
                None => session.add_medication(*patient, &m)?,
            };
            Ok(Output::new(
                to_json(&m),
                format!("Medication {} added: {}.", m.id, m.name),
            ))
        }
        MedicationCommand::List { patient } => {
            let list = session.medications(*patient)?;
            let text = list
                .iter()
                .map(|m| {
                    format!(
                        "{:>5}  [{}] {} {} {} {}",
                        m.id,
                        m.status,
                        m.name,
                        m.dose.as_deref().unwrap_or(""),
                        m.route.map(|r| r.as_str()).unwrap_or(""),
                        m.frequency.as_deref().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            Ok(Output::new(json!({"medications": list}), text))
        }
        MedicationCommand::Resolve { id, date } => {
            let date = date
                .as_deref()
                .map(|d| parse_date("stop date", d))
                .transpose()?;
            let m = session.stop_medication(*id, date)?;
            Ok(Output::new(
                to_json(&m),
                format!("Medication {} stopped.", m.id),
            ))
        }
        MedicationCommand::EnteredInError { id, reason } => {
            let m = session.medication_entered_in_error(*id, reason)?;
            Ok(Output::new(
                to_json(&m),
                format!("Medication {} marked entered in error: {}.", m.id, m.name),
            ))
        }
    }
}

/// One result as a line: its id, when taken, the test, the value with its unit and flag,
/// the range, and its status when it is not plain final.
fn result_line(r: &LabResult) -> String {
    let value = show_value(&r.value);
    let mut line = format!(
        "{:>5}  {}  {}: {}{}",
        r.id,
        show_time(&r.collected_at),
        r.name,
        value,
        r.unit
            .as_deref()
            .map(|u| format!(" {u}"))
            .unwrap_or_default()
    );
    if let Some(f) = r.flag.filter(|f| *f != ResultFlag::N) {
        line.push_str(&format!(" [{}]", f.as_str()));
    }
    if let Some(range) = &r.range {
        line.push_str(&format!(" (range {})", range.show()));
    }
    if r.status != "final" {
        line.push_str(&format!(" {}", r.status));
    }
    if let Some(e) = r.earlier.first() {
        line.push_str(&format!(" (was {})", show_value(&e.value)));
    }
    line
}

/// A result's value as the lab wrote it: 162, not serde's 162.0; text as it is.
fn show_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), |f| f.to_string()),
        v => v.to_string(),
    }
}

pub fn lab_result(session: &mut Session, cmd: &ResultCommand) -> Result<Output, Failure> {
    match cmd {
        ResultCommand::Add {
            patient,
            loinc,
            value,
            unit,
            range,
            at,
            report,
            name,
            flag,
            status,
        } => {
            let input = ResultInput {
                loinc: loinc.clone(),
                name: name.clone(),
                value: value.clone(),
                unit: unit.clone(),
                range: range.clone(),
                flag: flag.clone(),
                status: status.clone(),
                at: at.clone(),
                report_id: *report,
            };
            let r = session.add_lab_result(*patient, &input)?;
            Ok(Output::new(
                to_json(&r),
                format!("Lab result {} recorded.\n{}", r.id, result_line(&r)),
            ))
        }
        ResultCommand::List { patient, loinc } => {
            let list = session.lab_results(*patient, loinc.as_deref())?;
            let text = if list.is_empty() {
                "No lab results.".to_owned()
            } else {
                list.iter().map(result_line).collect::<Vec<_>>().join("\n")
            };
            Ok(Output::new(json!({"results": list}), text))
        }
        ResultCommand::Correct {
            id,
            value,
            unit,
            range,
            flag,
            status,
            reason,
        } => {
            let input = ResultInput {
                value: value.clone(),
                unit: unit.clone(),
                range: range.clone(),
                flag: flag.clone(),
                status: status.clone(),
                ..ResultInput::default()
            };
            let r = session.correct_lab_result(*id, &input, reason)?;
            Ok(Output::new(
                to_json(&r),
                format!(
                    "Lab result {} corrected (now result {}).\n{}",
                    id,
                    r.id,
                    result_line(&r)
                ),
            ))
        }
        ResultCommand::EnteredInError { id, reason } => {
            let r = session.lab_result_entered_in_error(*id, reason)?;
            Ok(Output::new(
                to_json(&r),
                format!("Lab result {} marked entered in error: {}.", r.id, r.name),
            ))
        }
    }
}

pub fn lab_report(session: &mut Session, cmd: &ReportCommand) -> Result<Output, Failure> {
    match cmd {
        ReportCommand::Add {
            patient,
            loinc,
            at,
            name,
            encounter,
        } => {
            let r = session.add_lab_report(
                *patient,
                &ReportInput {
                    loinc: loinc.clone(),
                    name: name.clone(),
                    at: at.clone(),
                    encounter_id: *encounter,
                },
            )?;
            Ok(Output::new(
                to_json(&r),
                format!(
                    "Lab report {} added: {}. Add its results with `result add --report {}`.",
                    r.id, r.name, r.id
                ),
            ))
        }
        ReportCommand::List { patient } => {
            let reports = session.lab_reports(*patient)?;
            let results = session.lab_results(*patient, None)?;
            let mut text = String::new();
            for rep in &reports {
                text.push_str(&format!(
                    "{:>5}  {}  {} [{}]\n",
                    rep.id,
                    show_time(&rep.collected_at),
                    rep.name,
                    rep.status
                ));
                for r in results.iter().filter(|r| r.report_id == Some(rep.id)) {
                    text.push_str(&format!("       {}\n", result_line(r)));
                }
            }
            if reports.is_empty() {
                text.push_str("No lab reports.");
            }
            Ok(Output::new(
                json!({"reports": reports, "results": results}),
                text.trim_end().to_owned(),
            ))
        }
    }
}

pub fn immunization(session: &mut Session, cmd: &ImmunizationCommand) -> Result<Output, Failure> {
    match cmd {
        ImmunizationCommand::Add {
            patient,
            vaccine,
            cvx,
            date,
            lot,
            site,
        } => {
            let i =
                NewImmunization::new(vaccine, cvx, date, lot.as_deref(), site.as_deref(), today())?;
            let i = session.add_immunization(*patient, &i)?;
            Ok(Output::new(
                to_json(&i),
                format!("Immunization {} recorded: {}.", i.id, i.vaccine),
            ))
        }
        ImmunizationCommand::List { patient } => {
            let list = session.immunizations(*patient)?;
            let text = list
                .iter()
                .map(|i| {
                    format!(
                        "{:>5}  {}  {} (CVX {}) [{}]",
                        i.id,
                        show_date(&i.date),
                        i.vaccine,
                        i.cvx,
                        i.status
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            Ok(Output::new(json!({"immunizations": list}), text))
        }
        ImmunizationCommand::Resolve { id } => {
            let i = session.resolve_immunization(*id)?;
            Ok(Output::new(
                to_json(&i),
                format!("Immunization {} marked entered in error.", i.id),
            ))
        }
        ImmunizationCommand::EnteredInError { id, reason } => {
            let i = session.immunization_entered_in_error(*id, reason)?;
            Ok(Output::new(
                to_json(&i),
                format!(
                    "Immunization {} marked entered in error: {}.",
                    i.id, i.vaccine
                ),
            ))
        }
    }
}
