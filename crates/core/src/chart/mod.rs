//! The clinical record, one module per item: each holds its type, its validation, the
//! changes that write it ([`change`]), the one writer of its table and its operations on the
//! Session. This module holds the chart as a whole and the shared shape of list items.

use chrono::NaiveDate;
use rusqlite::{Connection, OptionalExtension, Transaction};
use serde::Serialize;

use crate::access::{chart_access, ChartAccess};
use crate::audit::Op;
use crate::ids::*;
use crate::roles::Permission;
use crate::{CoreError, Session};

pub mod allergy;
pub(crate) mod allergy_check;
pub mod appointment;
pub mod change;
pub mod correction;
pub mod encounter;
pub mod immunization;
pub(crate) mod input;
pub mod lab;
pub mod measure;
pub mod medication;
pub mod note;
pub mod patient;
pub mod problem;
pub mod uscdi;
pub mod vitals;

use allergy::Allergy;
use change::{apply, Change, RecordId, Stamp};
use encounter::Encounter;
use immunization::Immunization;
use medication::Medication;
use note::Note;
use patient::Patient;
use problem::Problem;
use vitals::Observation;

/// A patient's chart as this session may see it: demographics always, clinical sections
/// only for roles that may read them (absent, not empty, otherwise).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Chart {
    #[serde(flatten)]
    pub patient: Patient,
    pub age: u32,
    pub care_team: Vec<String>,
    /// How this session got in.
    pub access: ChartAccess,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub allergies: Option<Vec<Allergy>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub problems: Option<Vec<Problem>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub medications: Option<Vec<Medication>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub immunizations: Option<Vec<Immunization>>,
    /// Lab results (current versions, each with the versions it replaced), newest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub lab_results: Option<Vec<lab::LabResult>>,
    /// Lab reports (panels), newest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub lab_reports: Option<Vec<lab::LabReport>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub encounters: Option<Vec<Encounter>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub vitals: Option<Vec<Observation>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub notes: Option<Vec<Note>>,
    /// Upcoming and past appointments, newest first (roles that see appointment books).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub appointments: Option<Vec<appointment::Appointment>>,
    /// The items shown here that an import brought in: from which vault, signed there by
    /// which key (empty for a chart made here).
    pub imported: Vec<crate::exchange::ImportOrigin>,
}

/// Which table an item id belongs to, for finding its patient before the gate runs.
#[derive(Clone, Copy)]
pub(crate) enum Item {
    Note,
    Encounter,
    Problem,
    Allergy,
    Medication,
    Immunization,
    Observation,
    LabResult,
    LabReport,
}

impl Item {
    fn sql(self) -> &'static str {
        match self {
            Item::Note => "SELECT patient_id FROM notes WHERE id = ?1",
            Item::Encounter => "SELECT patient_id FROM encounters WHERE id = ?1",
            Item::Problem => "SELECT patient_id FROM problems WHERE id = ?1",
            Item::Allergy => "SELECT patient_id FROM allergies WHERE id = ?1",
            Item::Medication => "SELECT patient_id FROM medications WHERE id = ?1",
            Item::Immunization => "SELECT patient_id FROM immunizations WHERE id = ?1",
            Item::Observation => "SELECT patient_id FROM observations WHERE id = ?1",
            Item::LabResult => "SELECT patient_id FROM lab_results WHERE id = ?1",
            Item::LabReport => "SELECT patient_id FROM lab_reports WHERE id = ?1",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Item::Note => "note",
            Item::Encounter => "encounter",
            Item::Problem => "problem",
            Item::Allergy => "allergy",
            Item::Medication => "medication",
            Item::Immunization => "immunization",
            Item::Observation => "vital sign",
            Item::LabResult => "lab result",
            Item::LabReport => "lab report",
        }
    }

    fn resource(self) -> &'static str {
        match self {
            Item::Note => "Note",
            Item::Encounter => "Encounter",
            Item::Problem => "Condition",
            Item::Allergy => "AllergyIntolerance",
            Item::Medication => "MedicationStatement",
            Item::Immunization => "Immunization",
            Item::Observation => "Observation",
            Item::LabResult => "LabResult",
            Item::LabReport => "LabReport",
        }
    }
}

impl Item {
    fn table(self) -> change::Table {
        match self {
            Item::Note => change::Table::Notes,
            Item::Encounter => change::Table::Encounters,
            Item::Problem => change::Table::Problems,
            Item::Allergy => change::Table::Allergies,
            Item::Medication => change::Table::Medications,
            Item::Immunization => change::Table::Immunizations,
            Item::Observation => change::Table::Observations,
            Item::LabResult => change::Table::LabResults,
            Item::LabReport => change::Table::LabReports,
        }
    }
}

impl Session {
    /// The patient an item belongs to; reveals nothing else. A missing item is "not found".
    pub(crate) fn owner(&self, item: Item, id: i64) -> Result<i64, CoreError> {
        self.connection()?
            .prepare_cached(item.sql())?
            .query_row([id], |r| r.get(0))
            .optional()?
            .ok_or_else(|| CoreError::NotFound(format!("There is no {} {id}.", item.name())))
    }

    /// Opens a chart: demographics, and each clinical section the role may read.
    pub fn open_chart(&mut self, patient_id: impl Into<PatientId>) -> Result<Chart, CoreError> {
        let patient_id = patient_id.into().get();
        let clinical = self.can(Permission::ReadClinical);
        let notes = self.can(Permission::ReadNotes);
        let appointments = self.can(Permission::ViewAppointments);
        let zone = self.settings().zone();
        if (clinical || notes) && !crate::keys::lock(&self.keys).holds_clinical() {
            return Err(self.deny(
                Op::read("chart.read").patient(patient_id),
                crate::error::Denial::KeyNotHandedOver,
            ));
        }
        self.run(
            Permission::ReadDemographics,
            Op::read("chart.read").patient(patient_id),
            true,
            |tx, op, ctx| {
                let patient = ctx.patient()?.clone();
                // The gate has worked out the access to a restricted chart; an open one is
                // read once here.
                let access = match ctx.access.clone() {
                    Some(access) => access,
                    None => {
                        chart_access(tx, &patient, ctx.actor, ctx.now)?.unwrap_or(ChartAccess::Open)
                    }
                };
                op.detail = Some(
                    match (clinical, notes) {
                        (true, true) => "demographics, clinical, notes",
                        (true, false) => "demographics, clinical",
                        (false, true) => "demographics, notes",
                        (false, false) => "demographics",
                    }
                    .into(),
                );
                let mut chart =
                    load_chart(tx, patient, access, clinical, notes, ctx.now.date_naive())?;
                if appointments {
                    chart.appointments = Some(appointment::for_chart(
                        tx,
                        zone,
                        ctx.actor,
                        ctx.now,
                        chart.patient.id.get(),
                    )?);
                }
                Ok(chart)
            },
        )
        .map(|mut chart| {
            // The grant's reason is sealed to the auditors: its writer sees it back in the
            // session that wrote it, others see that it is withheld.
            if let ChartAccess::BreakGlass { reason, .. } = &mut chart.access {
                let shown = crate::keys::lock(&self.keys).reveal(reason);
                *reason = if shown == crate::audit_text::WITHHELD {
                    "the reason you gave, kept sealed for the auditor".into()
                } else {
                    shown
                };
            }
            chart
        })
    }

    /// The shared shape of "add an item to a patient's list": gate, build the change from
    /// the patient's global id and the stamp, apply it, audit it, read the item back.
    pub(crate) fn add_item<T>(
        &mut self,
        permission: Permission,
        event: &'static str,
        item: Item,
        patient_id: i64,
        change: impl FnOnce(&Transaction<'_>, RecordId, Stamp) -> Result<Change, CoreError>,
        read: fn(&Connection, i64) -> Result<T, CoreError>,
    ) -> Result<T, CoreError> {
        self.run(
            permission,
            Op::create(event).patient(patient_id),
            true,
            |tx, op, ctx| {
                let c = change(tx, ctx.patient()?.uuid, ctx.stamp())?;
                let row = apply(tx, &c)?.row();
                op.object = Some((item.resource(), row.to_string()));
                read(tx, row)
            },
        )
    }

    /// The shared shape of "list a patient's items": a gated, audited clinical read.
    pub(crate) fn list_items<T>(
        &mut self,
        event: &'static str,
        patient_id: i64,
        read: fn(&Connection, i64) -> Result<Vec<T>, CoreError>,
    ) -> Result<Vec<T>, CoreError> {
        self.run(
            Permission::ReadClinical,
            Op::read(event).patient(patient_id),
            true,
            |tx, _, _| read(tx, patient_id),
        )
    }

    /// The shared shape of "resolve this list item": find its patient, gate, build the
    /// change from the item's global id and the stamp, apply it (its writer refuses an item
    /// already resolved), audit it, read it back.
    pub(crate) fn resolve<T>(
        &mut self,
        item: Item,
        permission: Permission,
        id: i64,
        change: impl FnOnce(RecordId, Stamp) -> Change,
        read: fn(&Connection, i64) -> Result<T, CoreError>,
    ) -> Result<T, CoreError> {
        let patient_id = self.owner(item, id)?;
        let event = match item {
            Item::Problem => "problem.resolve",
            Item::Allergy => "allergy.resolve",
            Item::Medication => "medication.stop",
            Item::Immunization => "immunization.entered_in_error",
            Item::Note
            | Item::Encounter
            | Item::Observation
            | Item::LabResult
            | Item::LabReport => "record.update",
        };
        self.run(
            permission,
            Op::update(event)
                .patient(patient_id)
                .object(item.resource(), id),
            true,
            |tx, _, ctx| {
                let uuid = change::id_of(tx, item.table(), id)?;
                apply(tx, &change(uuid, ctx.stamp()))?;
                read(tx, id)
            },
        )
    }
}

fn load_chart(
    conn: &Connection,
    patient: Patient,
    access: ChartAccess,
    clinical: bool,
    notes: bool,
    today: NaiveDate,
) -> Result<Chart, CoreError> {
    let id = patient.id.get();
    let mut patient = patient;
    if !clinical {
        patient.allergy_status = None;
    }
    let some = |on: bool| on.then_some(());
    Ok(Chart {
        age: patient.age_on(today),
        care_team: crate::access::care_team(conn, id)?,
        access,
        allergies: some(clinical)
            .map(|()| allergy::allergies(conn, id))
            .transpose()?,
        problems: some(clinical)
            .map(|()| problem::problems(conn, id))
            .transpose()?,
        medications: some(clinical)
            .map(|()| medication::medications(conn, id))
            .transpose()?,
        immunizations: some(clinical)
            .map(|()| immunization::immunizations(conn, id))
            .transpose()?,
        lab_results: some(clinical)
            .map(|()| lab::results(conn, id))
            .transpose()?,
        lab_reports: some(clinical)
            .map(|()| lab::reports(conn, id))
            .transpose()?,
        encounters: some(clinical)
            .map(|()| encounter::encounters(conn, id))
            .transpose()?,
        vitals: some(clinical)
            .map(|()| vitals::observations(conn, id))
            .transpose()?,
        notes: some(notes).map(|()| note::notes(conn, id)).transpose()?,
        appointments: None,
        imported: crate::exchange::origins(conn, id, clinical, notes)?,
        patient,
    })
}

/// Every section of a chart, for an export (whose own permission covers the whole record).
/// The chart as an export carries it: everything when the exporter's keys open clinical
/// content, the demographics alone when they do not.
pub(crate) fn load_full_chart(
    conn: &Connection,
    patient: Patient,
    today: NaiveDate,
    clinical: bool,
) -> Result<Chart, CoreError> {
    load_chart(conn, patient, ChartAccess::Open, clinical, clinical, today)
}

/// The whole chart read of [`Session::open_chart`], on a raw connection and without the
/// gate or the audit entry: for the benchmark that prices the audit write. Only someone who
/// already holds the database key can open such a connection.
#[cfg(feature = "bench")]
pub fn read_chart_for_benchmarks(conn: &Connection, patient_id: i64) -> Result<Chart, CoreError> {
    use chrono::Utc;
    let patient = patient::get(conn, patient_id)?;
    load_chart(
        conn,
        patient,
        ChartAccess::Open,
        true,
        true,
        Utc::now().date_naive(),
    )
}

/// Leaves out what only clinical roles may see.
pub(crate) fn hide_clinical(mut p: Patient, clinical: bool) -> Patient {
    if !clinical {
        p.allergy_status = None;
    }
    p
}

pub(crate) fn check_belongs(
    conn: &Connection,
    item: Item,
    id: i64,
    patient_id: i64,
) -> Result<(), CoreError> {
    let owner: Option<i64> = conn
        .prepare_cached(item.sql())?
        .query_row([id], |r| r.get(0))
        .optional()?;
    match owner {
        Some(p) if p == patient_id => Ok(()),
        Some(_) => Err(CoreError::InvalidInput(format!(
            "{} {id} belongs to another patient.",
            capitalise(item.name())
        ))),
        None => Err(CoreError::NotFound(format!(
            "There is no {} {id}.",
            item.name()
        ))),
    }
}

/// The global id of the patient's encounter `encounter_id` (if one is named), refusing an
/// encounter of another patient: for an operation building a change.
pub(crate) fn encounter_id_of(
    conn: &Connection,
    encounter_id: Option<i64>,
    patient_id: i64,
) -> Result<Option<RecordId>, CoreError> {
    encounter_id
        .map(|e| {
            check_belongs(conn, Item::Encounter, e, patient_id)?;
            change::id_of(conn, change::Table::Encounters, e)
        })
        .transpose()
}

/// The local row of the encounter a change names (if it names one), refusing an encounter
/// of another patient: for a writer applying a change.
pub(crate) fn encounter_row(
    conn: &Connection,
    encounter: Option<RecordId>,
    patient: i64,
) -> Result<Option<i64>, CoreError> {
    encounter
        .map(|e| {
            let row = change::row_of(conn, change::Table::Encounters, e)?;
            check_belongs(conn, Item::Encounter, row, patient)?;
            Ok(row)
        })
        .transpose()
}

pub(crate) fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, NaiveDate, Utc};

    use super::allergy::NewAllergy;
    use super::encounter::NewEncounter;
    use super::immunization::NewImmunization;
    use super::medication::NewMedication;
    use super::note::NoteContent;
    use super::problem::NewProblem;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 24).expect("date")
    }

    fn now() -> DateTime<Utc> {
        today().and_hms_opt(12, 0, 0).expect("time").and_utc()
    }

    #[test]
    fn encounters_validate_type_time_and_reason() {
        assert!(
            NewEncounter::new("office", None, "Cough", now(), &crate::ClinicZone::utc()).is_ok()
        );
        assert!(NewEncounter::new(
            "Home visit",
            Some("2026-11-20 09:30"),
            "Review",
            now(),
            &crate::ClinicZone::utc()
        )
        .is_ok());
        assert!(
            NewEncounter::new("drive-by", None, "Cough", now(), &crate::ClinicZone::utc()).is_err()
        );
        assert!(NewEncounter::new(
            "office",
            Some("2027-01-01"),
            "Cough",
            now(),
            &crate::ClinicZone::utc()
        )
        .is_err());
        assert!(NewEncounter::new(
            "office",
            Some("yesterday"),
            "Cough",
            now(),
            &crate::ClinicZone::utc()
        )
        .is_err());
        assert!(
            NewEncounter::new("office", None, "   ", now(), &crate::ClinicZone::utc()).is_err()
        );
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
