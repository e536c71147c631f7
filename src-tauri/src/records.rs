//! Commands for patients and their charts. Each parses what the window typed into core's
//! validated types and calls one Session method; the gate in core checks the role, the
//! restriction and writes the audit entry. Nothing here decides who may see what.

use chartroom_core::{parse_time_input, Allergy, Encounter};
use chartroom_core::{read_vitals_form, CoreError, Vital};
use chartroom_core::{
    AllergyList, Chart, Grant, Immunization, Medication, NewAllergy, NewEncounter, NewImmunization,
    NewMedication, NewPatient, NewProblem, Note, NoteContent, Observation, Patient, PatientChanges,
    PatientForm, PatientVersion, Problem, SearchHit,
};
use chartroom_core::{LabReport, LabResult, ReportInput, ResultInput};
use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use tauri::State;
use ts_rs::TS;

use crate::error::AppError;
use crate::state::AppState;

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// Empty fields in a form mean "not given".
fn given(text: &Option<String>) -> Option<&str> {
    text.as_deref().map(str::trim).filter(|t| !t.is_empty())
}

fn optional(text: &Option<String>) -> Option<String> {
    given(text).map(str::to_owned)
}

fn parse_date(label: &str, text: &Option<String>) -> Result<Option<NaiveDate>, AppError> {
    match given(text) {
        None => Ok(None),
        Some(t) => NaiveDate::parse_from_str(t, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| {
                AppError::new(
                    "invalid_input",
                    format!("The {label} is not a date like 2024-03-02."),
                )
            }),
    }
}

#[tauri::command(async, rename_all = "snake_case")]
pub fn search_patients(
    state: State<'_, AppState>,
    query: String,
) -> Result<Vec<SearchHit>, AppError> {
    state.with_session(|s| s.search_patients(&query))
}

#[tauri::command(async, rename_all = "snake_case")]
pub fn open_chart(state: State<'_, AppState>, patient_id: i64) -> Result<Chart, AppError> {
    state.with_session(|s| s.open_chart(patient_id))
}

/// The registration form.
#[derive(Debug, Deserialize, TS)]
pub struct PatientInput {
    family: String,
    given: String,
    preferred: Option<String>,
    /// YYYY-MM-DD.
    birth_date: String,
    /// `female`, `male`, `other` or `unknown`.
    sex: String,
    phone: Option<String>,
    email: Option<String>,
    address: Option<String>,
    emergency_name: Option<String>,
    emergency_phone: Option<String>,
    emergency_relationship: Option<String>,
    /// Race: CDC codes, comma-separated, or `ASKU` (chose not to answer).
    #[serde(default)]
    #[ts(optional)]
    race: Option<String>,
    /// Ethnicity: CDC codes, comma-separated, or `ASKU`.
    #[serde(default)]
    #[ts(optional)]
    ethnicity: Option<String>,
    /// Preferred language (BCP 47).
    #[serde(default)]
    #[ts(optional)]
    language: Option<String>,
    /// Sex assigned at birth: `F`, `M` or `UNK`.
    #[serde(default)]
    #[ts(optional)]
    birth_sex: Option<String>,
    /// A SNOMED CT code, or `OTH`, `UNK`, `ASKU`.
    #[serde(default)]
    #[ts(optional)]
    sexual_orientation: Option<String>,
    restricted: bool,
    /// Register even though the patient looks like one already here: the person
    /// registering checked the candidates and this is someone else.
    #[serde(default)]
    new_person: bool,
    /// The care team (user names) besides the person registering; a restricted chart
    /// registered by the front desk needs at least one physician or nurse here.
    #[serde(default)]
    care_team: Vec<String>,
}

#[tauri::command(async, rename_all = "snake_case")]
pub fn register_patient(
    state: State<'_, AppState>,
    patient: PatientInput,
) -> Result<Patient, AppError> {
    let form = PatientForm {
        family: patient.family,
        given: patient.given,
        preferred: optional(&patient.preferred),
        birth_date: patient.birth_date,
        sex: patient.sex,
        gender_identity: None,
        phone: optional(&patient.phone),
        email: optional(&patient.email),
        address: optional(&patient.address),
        emergency_name: optional(&patient.emergency_name),
        emergency_phone: optional(&patient.emergency_phone),
        emergency_relationship: optional(&patient.emergency_relationship),
        race: optional(&patient.race),
        ethnicity: optional(&patient.ethnicity),
        language: optional(&patient.language),
        birth_sex: optional(&patient.birth_sex),
        sexual_orientation: optional(&patient.sexual_orientation),
    };
    let new = NewPatient::from_form(&form, patient.restricted, today())?;
    state.with_session(|s| {
        s.register_patient_with_team(&new, &patient.care_team, patient.new_person)
    })
}

/// The changes to a patient's demographics and contact details; a field left out (null) is
/// not changed, an empty text clears it.
#[derive(Debug, Deserialize, TS)]
pub struct DemographicsInput {
    family: Option<String>,
    given: Option<String>,
    preferred: Option<String>,
    birth_date: Option<String>,
    sex: Option<String>,
    gender_identity: Option<String>,
    phone: Option<String>,
    email: Option<String>,
    address: Option<String>,
    emergency_name: Option<String>,
    emergency_phone: Option<String>,
    emergency_relationship: Option<String>,
    /// Race: CDC codes, comma-separated, or `ASKU` (chose not to answer).
    #[serde(default)]
    #[ts(optional)]
    race: Option<String>,
    /// Ethnicity: CDC codes, comma-separated, or `ASKU`.
    #[serde(default)]
    #[ts(optional)]
    ethnicity: Option<String>,
    /// Preferred language (BCP 47).
    #[serde(default)]
    #[ts(optional)]
    language: Option<String>,
    /// Sex assigned at birth: `F`, `M` or `UNK`.
    #[serde(default)]
    #[ts(optional)]
    birth_sex: Option<String>,
    /// A SNOMED CT code, or `OTH`, `UNK`, `ASKU`.
    #[serde(default)]
    #[ts(optional)]
    sexual_orientation: Option<String>,
}

/// Changes a patient's demographics; the version before is kept (see `patient_history`).
#[tauri::command(async, rename_all = "snake_case")]
pub fn update_patient(
    state: State<'_, AppState>,
    patient_id: i64,
    changes: DemographicsInput,
) -> Result<Patient, AppError> {
    let changes = PatientChanges {
        family: changes.family,
        given: changes.given,
        preferred: changes.preferred,
        birth_date: changes.birth_date,
        sex: changes.sex,
        gender_identity: changes.gender_identity,
        phone: changes.phone,
        email: changes.email,
        address: changes.address,
        emergency_name: changes.emergency_name,
        emergency_phone: changes.emergency_phone,
        emergency_relationship: changes.emergency_relationship,
        race: changes.race,
        ethnicity: changes.ethnicity,
        language: changes.language,
        birth_sex: changes.birth_sex,
        sexual_orientation: changes.sexual_orientation,
        restricted: None,
    };
    state.with_session(|s| s.update_patient(patient_id, &changes))
}

/// Every version of a patient's demographics, oldest first.
#[tauri::command(async, rename_all = "snake_case")]
pub fn patient_history(
    state: State<'_, AppState>,
    patient_id: i64,
) -> Result<Vec<PatientVersion>, AppError> {
    state.with_session(|s| s.patient_history(patient_id))
}

/// One member a care team may have: a user name and role.
#[derive(Debug, Serialize, TS)]
pub struct StaffMember {
    name: String,
    role: chartroom_core::Role,
}

/// The staff who may be on a care team.
#[tauri::command(async, rename_all = "snake_case")]
pub fn care_team_choices(state: State<'_, AppState>) -> Result<Vec<StaffMember>, AppError> {
    state.with_session(|s| {
        Ok(s.care_team_choices()?
            .into_iter()
            .map(|(name, role)| StaffMember { name, role })
            .collect())
    })
}

/// Puts a user on, or takes them off, a patient's care team; the chart is read again after.
#[tauri::command(async, rename_all = "snake_case")]
pub fn change_care_team(
    state: State<'_, AppState>,
    patient_id: i64,
    user: String,
    member: bool,
) -> Result<(), AppError> {
    state.with_session(|s| {
        if member {
            s.add_to_care_team(patient_id, &user)
        } else {
            s.remove_from_care_team(patient_id, &user)
        }
    })
}

#[tauri::command(async, rename_all = "snake_case")]
pub fn break_glass(
    state: State<'_, AppState>,
    patient_id: i64,
    reason: String,
) -> Result<Grant, AppError> {
    state.with_session(|s| s.break_glass(patient_id, &reason))
}

/// A new encounter: `kind` is office, telephone, telehealth or home.
#[derive(Debug, Deserialize, TS)]
pub struct EncounterInput {
    kind: String,
    /// When it started; now if empty.
    start: Option<String>,
    reason: String,
}

#[tauri::command(async, rename_all = "snake_case")]
pub fn add_encounter(
    state: State<'_, AppState>,
    patient_id: i64,
    encounter: EncounterInput,
) -> Result<Encounter, AppError> {
    state.with_session(|s| {
        let e = NewEncounter::new(
            &encounter.kind,
            given(&encounter.start),
            &encounter.reason,
            Utc::now(),
            &s.settings().zone(),
        )?;
        s.add_encounter(patient_id, &e)
    })
}

#[tauri::command(async, rename_all = "snake_case")]
pub fn draft_note(
    state: State<'_, AppState>,
    patient_id: i64,
    encounter_id: Option<i64>,
    note: NoteContent,
) -> Result<Note, AppError> {
    let content = note.validated()?;
    state.with_session(|s| s.draft_note(patient_id, encounter_id.map(Into::into), &content))
}

#[tauri::command(async, rename_all = "snake_case")]
pub fn edit_draft(
    state: State<'_, AppState>,
    note_id: i64,
    note: NoteContent,
) -> Result<Note, AppError> {
    let content = note.validated()?;
    state.with_session(|s| s.edit_draft(note_id, &content))
}

#[tauri::command(async, rename_all = "snake_case")]
pub fn sign_note(state: State<'_, AppState>, note_id: i64) -> Result<Note, AppError> {
    state.with_session(|s| s.sign_note(note_id))
}

/// An addendum adds to a signed note; an amendment corrects it. The signed note itself
/// never changes.
#[tauri::command(async, rename_all = "snake_case")]
pub fn add_addendum(
    state: State<'_, AppState>,
    note_id: i64,
    note: NoteContent,
    amendment: bool,
) -> Result<Note, AppError> {
    let content = note.validated()?;
    state.with_session(|s| s.add_addendum(note_id, &content, amendment))
}

/// One set of vitals as typed: each field a number in the clinic's units, or with its unit
/// after it (`150lb`, `98.6F`); empty fields are not measured.
#[derive(Debug, Deserialize, TS)]
pub struct VitalsForm {
    systolic: Option<String>,
    diastolic: Option<String>,
    heart_rate: Option<String>,
    respiratory_rate: Option<String>,
    temperature: Option<String>,
    spo2: Option<String>,
    weight: Option<String>,
    height: Option<String>,
    /// When they were taken; now if empty.
    effective: Option<String>,
    encounter_id: Option<i64>,
    /// The person has seen the questions about values far from the last ones and saves
    /// as typed; without it such a value is refused with `check_values`.
    #[serde(default)]
    confirmed: bool,
}

#[tauri::command(async, rename_all = "snake_case")]
pub fn record_vitals(
    state: State<'_, AppState>,
    patient_id: i64,
    vitals: VitalsForm,
) -> Result<Vec<Observation>, AppError> {
    state.with_session(|s| {
        let fields: Vec<(Vital, &str)> = [
            (Vital::Systolic, &vitals.systolic),
            (Vital::Diastolic, &vitals.diastolic),
            (Vital::HeartRate, &vitals.heart_rate),
            (Vital::RespiratoryRate, &vitals.respiratory_rate),
            (Vital::Temperature, &vitals.temperature),
            (Vital::Spo2, &vitals.spo2),
            (Vital::Weight, &vitals.weight),
            (Vital::Height, &vitals.height),
        ]
        .into_iter()
        .filter_map(|(v, t)| t.as_deref().map(|t| (v, t)))
        .collect();
        let input = read_vitals_form(&fields, s.settings().units).map_err(CoreError::Fields)?;
        let zone = s.settings().zone();
        let effective = given(&vitals.effective)
            .map(|t| parse_time_input("time of the vitals", t, Utc::now(), &zone))
            .transpose()?;
        s.record_vitals_checked(
            patient_id,
            &input,
            effective,
            vitals.encounter_id.map(Into::into),
            vitals.confirmed,
        )
        .map(|r| r.observations)
    })
}

/// Which kind of list item to mark entered in error.
#[derive(Debug, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ListItem {
    Vital,
    Problem,
    Allergy,
    Medication,
    Immunization,
    LabResult,
}

/// Marks a list item entered in error, with the reason; the chart is read again after.
#[tauri::command(async, rename_all = "snake_case")]
pub fn mark_entered_in_error(
    state: State<'_, AppState>,
    item: ListItem,
    id: i64,
    reason: String,
) -> Result<(), AppError> {
    state.with_session(|s| {
        match item {
            ListItem::Vital => s.vitals_entered_in_error(id, &reason).map(drop)?,
            ListItem::Problem => s.problem_entered_in_error(id, &reason).map(drop)?,
            ListItem::Allergy => s.allergy_entered_in_error(id, &reason).map(drop)?,
            ListItem::Medication => s.medication_entered_in_error(id, &reason).map(drop)?,
            ListItem::Immunization => s.immunization_entered_in_error(id, &reason).map(drop)?,
            ListItem::LabResult => s.lab_result_entered_in_error(id, &reason).map(drop)?,
        }
        Ok(())
    })
}

#[derive(Debug, Deserialize, TS)]
pub struct ProblemInput {
    text: String,
    /// `snomed` or `icd10`, with `code`; both empty for an uncoded problem.
    system: Option<String>,
    code: Option<String>,
    onset: Option<String>,
}

#[tauri::command(async, rename_all = "snake_case")]
pub fn add_problem(
    state: State<'_, AppState>,
    patient_id: i64,
    problem: ProblemInput,
) -> Result<Problem, AppError> {
    let p = NewProblem::new(
        &problem.text,
        given(&problem.system),
        given(&problem.code),
        given(&problem.onset),
        today(),
    )?;
    state.with_session(|s| s.add_problem(patient_id, &p))
}

#[tauri::command(async, rename_all = "snake_case")]
pub fn resolve_problem(
    state: State<'_, AppState>,
    problem_id: i64,
    date: Option<String>,
) -> Result<Problem, AppError> {
    let date = parse_date("resolution date", &date)?;
    state.with_session(|s| s.resolve_problem(problem_id, date))
}

#[derive(Debug, Deserialize, TS)]
pub struct AllergyInput {
    substance: String,
    reaction: Option<String>,
    /// `mild`, `moderate` or `severe`.
    severity: Option<String>,
    /// `medication`, `food`, `environment` or `biologic`.
    category: Option<String>,
    /// The reason for recording it although a current medication matches it.
    #[serde(default)]
    #[ts(optional)]
    override_allergy: Option<String>,
}

#[tauri::command(async, rename_all = "snake_case")]
pub fn add_allergy(
    state: State<'_, AppState>,
    patient_id: i64,
    allergy: AllergyInput,
) -> Result<Allergy, AppError> {
    let a = NewAllergy::new(
        &allergy.substance,
        given(&allergy.reaction),
        given(&allergy.severity),
        given(&allergy.category),
    )?;
    state.with_session(|s| match given(&allergy.override_allergy) {
        Some(reason) => s.add_allergy_despite_medication(patient_id, &a, reason),
        None => s.add_allergy(patient_id, &a),
    })
}

/// Records that the patient was asked and has no known allergies.
#[tauri::command(async, rename_all = "snake_case")]
pub fn record_no_known_allergies(
    state: State<'_, AppState>,
    patient_id: i64,
) -> Result<AllergyList, AppError> {
    state.with_session(|s| {
        s.record_no_known_allergies(patient_id)?;
        s.allergies(patient_id)
    })
}

#[tauri::command(async, rename_all = "snake_case")]
pub fn resolve_allergy(state: State<'_, AppState>, allergy_id: i64) -> Result<Allergy, AppError> {
    state.with_session(|s| s.resolve_allergy(allergy_id))
}

#[derive(Debug, Deserialize, TS)]
pub struct MedicationInput {
    name: String,
    dose: Option<String>,
    route: Option<String>,
    frequency: Option<String>,
    start: Option<String>,
    /// The reason for saving it although it matches an active allergy.
    #[serde(default)]
    #[ts(optional)]
    override_allergy: Option<String>,
}

#[tauri::command(async, rename_all = "snake_case")]
pub fn add_medication(
    state: State<'_, AppState>,
    patient_id: i64,
    medication: MedicationInput,
) -> Result<Medication, AppError> {
    let m = NewMedication::new(
        &medication.name,
        given(&medication.dose),
        given(&medication.route),
        given(&medication.frequency),
        given(&medication.start),
        today(),
    )?;
    state.with_session(|s| match given(&medication.override_allergy) {
        Some(reason) => s.add_medication_despite_allergy(patient_id, &m, reason),
        None => s.add_medication(patient_id, &m),
    })
}

#[tauri::command(async, rename_all = "snake_case")]
pub fn stop_medication(
    state: State<'_, AppState>,
    medication_id: i64,
    date: Option<String>,
) -> Result<Medication, AppError> {
    let date = parse_date("stop date", &date)?;
    state.with_session(|s| s.stop_medication(medication_id, date))
}

#[derive(Debug, Deserialize, TS)]
pub struct ImmunizationInput {
    vaccine: String,
    /// The CDC CVX code, e.g. 141 for influenza.
    cvx: String,
    date: String,
    lot: Option<String>,
    site: Option<String>,
}

#[tauri::command(async, rename_all = "snake_case")]
pub fn add_immunization(
    state: State<'_, AppState>,
    patient_id: i64,
    immunization: ImmunizationInput,
) -> Result<Immunization, AppError> {
    let i = NewImmunization::new(
        &immunization.vaccine,
        &immunization.cvx,
        &immunization.date,
        given(&immunization.lot),
        given(&immunization.site),
        today(),
    )?;
    state.with_session(|s| s.add_immunization(patient_id, &i))
}

/// One answer a demographics form offers: its code, its words, and for a detailed race or
/// ethnicity the category it belongs to.
#[derive(Debug, Serialize, TS)]
pub struct Choice {
    pub code: String,
    pub label: String,
    pub group: Option<String>,
}

/// The answers the USCDI fields of the demographics form offer.
#[derive(Debug, Serialize, TS)]
pub struct DemographicChoices {
    pub races: Vec<Choice>,
    pub ethnicities: Vec<Choice>,
    pub languages: Vec<Choice>,
    pub birth_sexes: Vec<Choice>,
    pub sexual_orientations: Vec<Choice>,
}

/// The code lists of race, ethnicity, language, birth sex and sexual orientation: the same
/// for everyone, no patient data, so no session is needed.
#[tauri::command(rename_all = "snake_case")]
pub fn demographic_choices() -> DemographicChoices {
    use chartroom_core::chart::uscdi;
    let coded = |list: &[uscdi::Coded], lookup: fn(&str) -> Option<uscdi::Coded>| {
        list.iter()
            .chain([&uscdi::DECLINED, &uscdi::UNKNOWN])
            .map(|x| Choice {
                code: x.code.into(),
                label: x.display.into(),
                group: (x.category != x.code)
                    .then(|| lookup(x.category).map(|c| c.display.to_owned()))
                    .flatten(),
            })
            .collect()
    };
    let plain = |list: &[(&str, &str)]| {
        list.iter()
            .map(|(code, label)| Choice {
                code: (*code).into(),
                label: (*label).into(),
                group: None,
            })
            .collect()
    };
    DemographicChoices {
        races: coded(uscdi::RACES, uscdi::race),
        ethnicities: coded(uscdi::ETHNICITIES, uscdi::ethnicity),
        languages: plain(uscdi::LANGUAGES),
        birth_sexes: plain(uscdi::BIRTH_SEXES),
        sexual_orientations: uscdi::SEXUAL_ORIENTATIONS
            .iter()
            .map(|(code, _, words)| Choice {
                code: (*code).into(),
                label: (*words).into(),
                group: None,
            })
            .collect(),
    }
}

/// A laboratory test Chartroom knows by its LOINC code, for the result form's picker.
#[derive(Debug, Serialize, TS)]
pub struct LabTestChoice {
    pub loinc: String,
    pub name: String,
    pub short: String,
    pub unit: Option<String>,
    pub panel: bool,
}

/// The tests the result form offers: the same for everyone, no patient data, so no
/// session is needed.
#[tauri::command(rename_all = "snake_case")]
pub fn lab_tests() -> Vec<LabTestChoice> {
    chartroom_core::LAB_TESTS
        .iter()
        .map(|t| LabTestChoice {
            loinc: t.loinc.into(),
            name: t.name.into(),
            short: t.short.into(),
            unit: t.unit.map(Into::into),
            panel: t.panel,
        })
        .collect()
}

#[tauri::command(async, rename_all = "snake_case")]
pub fn add_lab_report(
    state: State<'_, AppState>,
    patient_id: i64,
    report: ReportInput,
) -> Result<LabReport, AppError> {
    state.with_session(|s| s.add_lab_report(patient_id, &report))
}

#[tauri::command(async, rename_all = "snake_case")]
pub fn add_lab_result(
    state: State<'_, AppState>,
    patient_id: i64,
    result: ResultInput,
) -> Result<LabResult, AppError> {
    state.with_session(|s| s.add_lab_result(patient_id, &result))
}

/// Corrects a result: a new version with the reason; the earlier value stays visible.
#[tauri::command(async, rename_all = "snake_case")]
pub fn correct_lab_result(
    state: State<'_, AppState>,
    result_id: i64,
    result: ResultInput,
    reason: String,
) -> Result<LabResult, AppError> {
    state.with_session(|s| s.correct_lab_result(result_id, &result, &reason))
}

/// Marks an immunization entered in error (it stays in the record, struck through).
#[tauri::command(async, rename_all = "snake_case")]
pub fn resolve_immunization(
    state: State<'_, AppState>,
    immunization_id: i64,
) -> Result<Immunization, AppError> {
    state.with_session(|s| s.resolve_immunization(immunization_id))
}
