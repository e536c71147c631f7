//! Changes to the clinic's record as values: each is typed, versioned and serialisable, and
//! [`apply`] is the one way any of them reaches the database.
//!
//! The Session's operations, import and the demo build changes and hand them to [`apply`],
//! which checks each one again (so no path can write an unchecked row) and calls the one
//! writer of the table it touches. A change names records by their global id
//! ([`RecordId`], a UUIDv7), never by a local row id, so changes made on two desktops can
//! later be exchanged without colliding. Their encoding ([`Change::encode`]) is pinned by
//! golden vectors: it must never shift silently.

use chrono::{DateTime, Utc};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::allergy::{AllergyRecorded, AllergyResolved, NoKnownAllergiesRecorded};
use super::appointment::{
    AppointmentBooked, AppointmentCancelled, AppointmentMoved, AppointmentStatusChanged,
};
use super::correction::EnteredInError;
use super::encounter::EncounterOpened;
use super::immunization::{ImmunizationEnteredInError, ImmunizationRecorded};
use super::lab::{ReportAdded, ResultCorrected, ResultEnteredInError, ResultRecorded};
use super::medication::{MedicationStarted, MedicationStopped};
use super::note::{AddendumAdded, DraftEdited, NoteDrafted, NoteSigned};
use super::patient::{DemographicsChanged, PatientRegistered, RestrictionChanged};
use super::problem::{ProblemAdded, ProblemResolved};
use super::vitals::VitalsRecorded;
use crate::access::CareTeamChanged;
use crate::CoreError;

/// The version of the change encoding. A change that alters the meaning or shape of an
/// encoded change gets a new version, and the old one keeps decoding.
pub const CHANGE_FORMAT: u32 = 1;

/// A record's global id: a UUIDv7 (time-ordered), stored beside the local row id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RecordId(uuid::Uuid);

impl RecordId {
    /// A new id for a record made at `at`, its random part from the operating system.
    pub(crate) fn new(at: DateTime<Utc>) -> RecordId {
        let mut random = [0u8; 10];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut random);
        RecordId::from_parts(at, random)
    }

    /// An id from a time and given random bits, for generators that must be reproducible
    /// (the demo clinic, test fixtures).
    pub(crate) fn from_parts(at: DateTime<Utc>, random: [u8; 10]) -> RecordId {
        let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
        RecordId(uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid())
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for RecordId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecordId({})", self.0)
    }
}

impl std::fmt::Display for RecordId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl ToSql for RecordId {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(ValueRef::Blob(self.0.as_bytes())))
    }
}

impl FromSql for RecordId {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let bytes = value.as_blob()?;
        uuid::Uuid::from_slice(bytes)
            .map(RecordId)
            .map_err(|_| FromSqlError::InvalidBlobSize {
                expected_size: 16,
                blob_size: bytes.len(),
            })
    }
}

/// Who made a change and when (UTC, to the microsecond, as the trail keeps time).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    #[serde(with = "micros")]
    pub at: DateTime<Utc>,
    pub by: String,
}

impl Stamp {
    pub(crate) fn new(at: DateTime<Utc>, by: &str) -> Stamp {
        Stamp {
            at: chartroom_audit::truncate_to_micros(at),
            by: by.to_owned(),
        }
    }

    /// A stamp from a stored or imported time, which must be RFC 3339.
    pub(crate) fn parse(at: &str, by: &str) -> Result<Stamp, CoreError> {
        let at = chartroom_audit::parse_time(at)
            .ok_or_else(|| CoreError::InvalidInput(format!("\"{}\" is not a time.", clip(at))))?;
        Ok(Stamp::new(at, by))
    }

    /// The time as stored: RFC 3339 with six fractional digits.
    pub(crate) fn time(&self) -> String {
        chartroom_audit::format_time(self.at)
    }

    fn check(&self) -> Result<(), CoreError> {
        crate::chart::input::bounded_text("name of who made the change", &self.by, 200)
            .and_then(|by| same("name of who made the change", &by, &self.by))
    }
}

/// Times in changes are written the way the trail writes them, so an encoding never
/// depends on how many fractional digits a clock happened to have.
pub(crate) mod micros {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&chartroom_audit::format_time(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        chartroom_audit::parse_time(&text)
            .ok_or_else(|| serde::de::Error::custom("not an RFC 3339 time"))
    }
}

pub(crate) use self::micros as micros_time;

/// One change to the clinic's record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Change {
    PatientRegistered(PatientRegistered),
    DemographicsChanged(DemographicsChanged),
    RestrictionChanged(RestrictionChanged),
    CareTeamChanged(CareTeamChanged),
    EncounterOpened(EncounterOpened),
    NoteDrafted(NoteDrafted),
    DraftEdited(DraftEdited),
    NoteSigned(NoteSigned),
    AddendumAdded(AddendumAdded),
    VitalsRecorded(VitalsRecorded),
    ProblemAdded(ProblemAdded),
    ProblemResolved(ProblemResolved),
    AllergyRecorded(AllergyRecorded),
    AllergyResolved(AllergyResolved),
    NoKnownAllergiesRecorded(NoKnownAllergiesRecorded),
    MedicationStarted(MedicationStarted),
    MedicationStopped(MedicationStopped),
    ImmunizationRecorded(ImmunizationRecorded),
    ImmunizationEnteredInError(ImmunizationEnteredInError),
    AppointmentBooked(AppointmentBooked),
    AppointmentMoved(AppointmentMoved),
    AppointmentCancelled(AppointmentCancelled),
    AppointmentStatusChanged(AppointmentStatusChanged),
    EnteredInError(EnteredInError),
    ReportAdded(ReportAdded),
    ResultRecorded(ResultRecorded),
    ResultCorrected(ResultCorrected),
    ResultEnteredInError(ResultEnteredInError),
}

/// The encoded form: the format version beside the change.
#[derive(Serialize, Deserialize)]
struct Encoded<C> {
    format: u32,
    change: C,
}

impl Change {
    /// The change's canonical bytes: compact JSON, fields in declaration order, times in
    /// RFC 3339 with six fractional digits, numbers as the shortest text that reads back
    /// the same.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(&Encoded {
            format: CHANGE_FORMAT,
            change: self,
        })
        .expect("a change is plain data and always serialises")
    }

    /// Reads a change back. The change is checked again when it is applied.
    pub fn decode(bytes: &[u8]) -> Result<Change, CoreError> {
        let encoded: Encoded<Change> = serde_json::from_slice(bytes).map_err(|_| {
            CoreError::InvalidInput("This is not a Chartroom change in a known format.".into())
        })?;
        if encoded.format != CHANGE_FORMAT {
            return Err(CoreError::InvalidInput(format!(
                "Change format {} is not one this version of Chartroom reads.",
                encoded.format
            )));
        }
        Ok(encoded.change)
    }

    /// SHA-256 of [`Change::encode`], hex: what a future replication log chains and signs.
    pub fn digest(&self) -> String {
        hex::encode(Sha256::digest(self.encode()))
    }

    /// The change's type name, as its encoding tags it.
    pub fn kind(&self) -> &'static str {
        match self {
            Change::PatientRegistered(_) => "PatientRegistered",
            Change::DemographicsChanged(_) => "DemographicsChanged",
            Change::RestrictionChanged(_) => "RestrictionChanged",
            Change::CareTeamChanged(_) => "CareTeamChanged",
            Change::EncounterOpened(_) => "EncounterOpened",
            Change::NoteDrafted(_) => "NoteDrafted",
            Change::DraftEdited(_) => "DraftEdited",
            Change::NoteSigned(_) => "NoteSigned",
            Change::AddendumAdded(_) => "AddendumAdded",
            Change::VitalsRecorded(_) => "VitalsRecorded",
            Change::ProblemAdded(_) => "ProblemAdded",
            Change::ProblemResolved(_) => "ProblemResolved",
            Change::AllergyRecorded(_) => "AllergyRecorded",
            Change::AllergyResolved(_) => "AllergyResolved",
            Change::NoKnownAllergiesRecorded(_) => "NoKnownAllergiesRecorded",
            Change::MedicationStarted(_) => "MedicationStarted",
            Change::MedicationStopped(_) => "MedicationStopped",
            Change::ImmunizationRecorded(_) => "ImmunizationRecorded",
            Change::ImmunizationEnteredInError(_) => "ImmunizationEnteredInError",
            Change::AppointmentBooked(_) => "AppointmentBooked",
            Change::AppointmentMoved(_) => "AppointmentMoved",
            Change::AppointmentCancelled(_) => "AppointmentCancelled",
            Change::AppointmentStatusChanged(_) => "AppointmentStatusChanged",
            Change::EnteredInError(_) => "EnteredInError",
            Change::ReportAdded(_) => "ReportAdded",
            Change::ResultRecorded(_) => "ResultRecorded",
            Change::ResultCorrected(_) => "ResultCorrected",
            Change::ResultEnteredInError(_) => "ResultEnteredInError",
        }
    }

    /// The record a change brings into being, if it does.
    fn creates(&self) -> Option<(Table, RecordId)> {
        Some(match self {
            Change::PatientRegistered(c) => (Table::Patients, c.patient),
            Change::EncounterOpened(c) => (Table::Encounters, c.encounter),
            Change::NoteDrafted(c) => (Table::Notes, c.note),
            Change::AddendumAdded(c) => (Table::Notes, c.note),
            Change::ProblemAdded(c) => (Table::Problems, c.problem),
            Change::AllergyRecorded(c) => (Table::Allergies, c.allergy),
            Change::MedicationStarted(c) => (Table::Medications, c.medication),
            Change::ImmunizationRecorded(c) => (Table::Immunizations, c.immunization),
            Change::AppointmentBooked(c) => (Table::Appointments, c.appointment),
            Change::ReportAdded(c) => (Table::LabReports, c.report),
            Change::ResultRecorded(c) => (Table::LabResults, c.result),
            Change::ResultCorrected(c) => (Table::LabResults, c.result),
            _ => return None,
        })
    }

    fn stamp(&self) -> &Stamp {
        match self {
            Change::PatientRegistered(c) => &c.registered,
            Change::DemographicsChanged(c) => &c.changed,
            Change::RestrictionChanged(c) => &c.changed,
            Change::CareTeamChanged(c) => &c.changed,
            Change::EncounterOpened(c) => &c.opened,
            Change::NoteDrafted(c) => &c.drafted,
            Change::DraftEdited(c) => &c.edited,
            Change::NoteSigned(c) => &c.signed,
            Change::AddendumAdded(c) => &c.drafted,
            Change::VitalsRecorded(c) => &c.recorded,
            Change::ProblemAdded(c) => &c.recorded,
            Change::ProblemResolved(c) => &c.resolved,
            Change::AllergyRecorded(c) => &c.recorded,
            Change::AllergyResolved(c) => &c.resolved,
            Change::NoKnownAllergiesRecorded(c) => &c.recorded,
            Change::MedicationStarted(c) => &c.recorded,
            Change::MedicationStopped(c) => &c.stopped,
            Change::ImmunizationRecorded(c) => &c.recorded,
            Change::ImmunizationEnteredInError(c) => &c.marked,
            Change::AppointmentBooked(c) => &c.booked,
            Change::AppointmentMoved(c) => &c.moved,
            Change::AppointmentCancelled(c) => &c.cancelled,
            Change::AppointmentStatusChanged(c) => &c.changed,
            Change::EnteredInError(c) => &c.marked,
            Change::ReportAdded(c) => &c.recorded,
            Change::ResultRecorded(c) => &c.recorded,
            Change::ResultCorrected(c) => &c.recorded,
            Change::ResultEnteredInError(c) => &c.marked,
        }
    }
}

/// The rows a change wrote or changed, in order (one for most; one per value of a vitals
/// set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Applied(pub Vec<i64>);

impl Applied {
    pub fn one(row: impl Into<i64>) -> Applied {
        Applied(vec![row.into()])
    }

    /// The (first) row written.
    pub fn row(&self) -> i64 {
        self.0.first().copied().unwrap_or(0)
    }
}

/// Checks `change` and writes it through the one writer of the table it touches, on an
/// open transaction (the caller's, with its audit entry). Refuses a change that fails its
/// checks or names a record that is not here, and then writes nothing.
pub(crate) fn apply(conn: &Connection, change: &Change) -> Result<Applied, CoreError> {
    change.stamp().check()?;
    let applied = write(conn, change)?;
    if let Some((table, id)) = change.creates() {
        remember(table, id, applied.row());
    }
    Ok(applied)
}

fn write(conn: &Connection, change: &Change) -> Result<Applied, CoreError> {
    match change {
        Change::PatientRegistered(c) => super::patient::apply_registered(conn, c),
        Change::DemographicsChanged(c) => super::patient::apply_demographics(conn, c),
        Change::RestrictionChanged(c) => super::patient::apply_restriction(conn, c),
        Change::CareTeamChanged(c) => crate::access::apply_care_team(conn, c),
        Change::EncounterOpened(c) => super::encounter::apply_opened(conn, c),
        Change::NoteDrafted(c) => super::note::apply_drafted(conn, c),
        Change::DraftEdited(c) => super::note::apply_edited(conn, c),
        Change::NoteSigned(c) => super::note::apply_signed(conn, c),
        Change::AddendumAdded(c) => super::note::apply_addendum(conn, c),
        Change::VitalsRecorded(c) => super::vitals::apply_recorded(conn, c),
        Change::ProblemAdded(c) => super::problem::apply_added(conn, c),
        Change::ProblemResolved(c) => super::problem::apply_resolved(conn, c),
        Change::AllergyRecorded(c) => super::allergy::apply_recorded(conn, c),
        Change::AllergyResolved(c) => super::allergy::apply_resolved(conn, c),
        Change::NoKnownAllergiesRecorded(c) => super::allergy::apply_none_known(conn, c),
        Change::MedicationStarted(c) => super::medication::apply_started(conn, c),
        Change::MedicationStopped(c) => super::medication::apply_stopped(conn, c),
        Change::ImmunizationRecorded(c) => super::immunization::apply_recorded(conn, c),
        Change::ImmunizationEnteredInError(c) => {
            super::immunization::apply_entered_in_error(conn, c)
        }
        Change::AppointmentBooked(c) => super::appointment::apply_booked(conn, c),
        Change::AppointmentMoved(c) => super::appointment::apply_moved(conn, c),
        Change::AppointmentCancelled(c) => super::appointment::apply_cancelled(conn, c),
        Change::AppointmentStatusChanged(c) => super::appointment::apply_status(conn, c),
        Change::EnteredInError(c) => super::correction::apply_entered_in_error(conn, c),
        Change::ReportAdded(c) => super::lab::apply_report(conn, c),
        Change::ResultRecorded(c) => super::lab::apply_recorded(conn, c),
        Change::ResultCorrected(c) => super::lab::apply_corrected(conn, c),
        Change::ResultEnteredInError(c) => super::lab::apply_entered_in_error(conn, c),
    }
}

/// The tables whose records carry a global id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Table {
    Patients,
    Encounters,
    Notes,
    Problems,
    Allergies,
    Medications,
    Immunizations,
    Appointments,
    Observations,
    LabReports,
    LabResults,
}

impl Table {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Table::Patients => "patients",
            Table::Encounters => "encounters",
            Table::Notes => "notes",
            Table::Problems => "problems",
            Table::Allergies => "allergies",
            Table::Medications => "medications",
            Table::Immunizations => "immunizations",
            Table::Appointments => "appointments",
            Table::Observations => "observations",
            Table::LabReports => "lab_reports",
            Table::LabResults => "lab_results",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Table::Patients => "patient",
            Table::Encounters => "encounter",
            Table::Notes => "note",
            Table::Problems => "problem",
            Table::Allergies => "allergy",
            Table::Medications => "medication",
            Table::Immunizations => "immunization",
            Table::Appointments => "appointment",
            Table::Observations => "vital sign",
            Table::LabReports => "lab report",
            Table::LabResults => "lab result",
        }
    }
}

thread_local! {
    /// While a bulk write runs (see [`bulk`]), the rows of the global ids it has written or
    /// looked up, so a clinic's worth of changes does not look each patient up again.
    static ROWS: std::cell::RefCell<Option<std::collections::HashMap<(Table, RecordId), i64>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `write` (one transaction's worth of changes, on one connection: an import, a
/// batch of the demo) with the global-id lookups remembered. Rows are never renumbered and
/// records never removed, so what is remembered stays true while the transaction lasts;
/// nothing is remembered once `write` returns, whether it succeeded or not.
pub(crate) fn bulk<T>(write: impl FnOnce() -> T) -> T {
    struct Forget;
    impl Drop for Forget {
        fn drop(&mut self) {
            ROWS.with(|rows| rows.borrow_mut().take());
        }
    }
    ROWS.with(|rows| *rows.borrow_mut() = Some(Default::default()));
    let _forget = Forget;
    write()
}

fn remembered(table: Table, id: RecordId) -> Option<i64> {
    ROWS.with(|rows| {
        rows.borrow()
            .as_ref()
            .and_then(|m| m.get(&(table, id)).copied())
    })
}

fn remember(table: Table, id: RecordId, row: i64) {
    ROWS.with(|rows| {
        if let Some(m) = rows.borrow_mut().as_mut() {
            m.insert((table, id), row);
        }
    });
}

/// The local row of the record with global id `id`.
pub(crate) fn row_of(conn: &Connection, table: Table, id: RecordId) -> Result<i64, CoreError> {
    if let Some(row) = remembered(table, id) {
        return Ok(row);
    }
    let row = conn
        .prepare_cached(&format!("SELECT id FROM {} WHERE uuid = ?1", table.name()))?
        .query_row([id], |r| r.get(0))
        .optional()?
        .ok_or_else(|| CoreError::NotFound(format!("There is no {} {id}.", table.what())))?;
    remember(table, id, row);
    Ok(row)
}

/// The global id of local row `row`.
pub(crate) fn id_of(
    conn: &Connection,
    table: Table,
    row: impl Into<i64>,
) -> Result<RecordId, CoreError> {
    let row: i64 = row.into();
    conn.prepare_cached(&format!("SELECT uuid FROM {} WHERE id = ?1", table.name()))?
        .query_row([row], |r| r.get(0))
        .optional()?
        .ok_or_else(|| CoreError::NotFound(format!("There is no {} {row}.", table.what())))
}

/// Refuses a value that is not in the form its checks give it (trimmed, normalised).
pub(crate) fn same<T: PartialEq + ?Sized>(
    label: &str,
    checked: &T,
    given: &T,
) -> Result<(), CoreError> {
    if checked == given {
        Ok(())
    } else {
        Err(CoreError::InvalidInput(format!(
            "The {label} is not in its checked form."
        )))
    }
}

fn clip(text: &str) -> String {
    text.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    //! Every change type: its golden encoding, and build → encode → decode → apply giving the
    //! same chart as applying it as built.

    use chrono::{Duration, NaiveDate, TimeZone};
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::access::CareTeamChanged;
    use crate::chart::allergy::{
        AllergyCategory, AllergyRecorded, AllergyResolved, NewAllergy, NoKnownAllergiesRecorded,
        Severity,
    };
    use crate::chart::appointment::AppointmentStatus;
    use crate::chart::correction::{Corrected, EnteredInError};
    use crate::chart::encounter::{EncounterKind, EncounterOpened};
    use crate::chart::immunization::{
        ImmunizationEnteredInError, ImmunizationRecorded, NewImmunization, Site,
    };
    use crate::chart::lab::{
        EntryStatus, NewResult, Range, ReportAdded, ResultCorrected, ResultEnteredInError,
        ResultFlag, ResultRecorded, ResultValue,
    };
    use crate::chart::medication::{MedicationStarted, MedicationStopped, NewMedication, Route};
    use crate::chart::note::{AddendumAdded, DraftEdited, NoteContent, NoteDrafted, NoteSigned};
    use crate::chart::patient::{
        DemographicsChanged, NewPatient, PatientForm, PatientRegistered, RestrictionChanged,
    };
    use crate::chart::problem::{
        CodeSystem, NewProblem, ProblemAdded, ProblemOutcome, ProblemResolved,
    };
    use crate::chart::vitals::{Vital, VitalValue, VitalsRecorded};
    use crate::gate_tests::{debug_value, rows, Clinic, RECORD_TABLES};
    use crate::{Role, Session};

    fn t(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 3, 10, 0, 0)
            .single()
            .expect("time")
            + Duration::minutes(minutes)
    }

    fn id(n: u8) -> RecordId {
        RecordId::from_parts(t(i64::from(n)), [n; 10])
    }

    fn stamp(minutes: i64) -> Stamp {
        Stamp::new(t(minutes), "dr.okafor")
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("date")
    }

    /// One of each change, in an order that applies to a fixture clinic (users 1 to 5,
    /// patients 1 and 2), all about one new patient.
    fn samples() -> Vec<Change> {
        let patient = id(1);
        let form = PatientForm {
            family: "Ôkafor-Lee".into(),
            given: "Ada".into(),
            birth_date: "1984-03-02".into(),
            sex: "female".into(),
            phone: Some("+1 (555) 010-0142".into()),
            ..PatientForm::default()
        };
        let today = day(2026, 3, 3);
        let demographics = form.validate(today).expect("valid");
        let mut moved = demographics.clone();
        moved.address = Some("1 Example Lane, Demo Town".into());
        let (encounter, note, addendum, problem, allergy, medication, immunization) =
            (id(2), id(3), id(4), id(5), id(6), id(7), id(8));
        let appointment = id(9);
        vec![
            Change::PatientRegistered(PatientRegistered {
                patient,
                mrn: crate::mrn_for(3),
                new: NewPatient {
                    demographics,
                    restricted: false,
                },
                registered: stamp(0),
            }),
            Change::DemographicsChanged(DemographicsChanged {
                patient,
                demographics: moved,
                changed: stamp(1),
            }),
            Change::RestrictionChanged(RestrictionChanged {
                patient,
                restricted: true,
                changed: stamp(2),
            }),
            Change::CareTeamChanged(CareTeamChanged::joined(patient, 2, stamp(2))),
            Change::EncounterOpened(EncounterOpened {
                encounter,
                patient,
                kind: EncounterKind::Office,
                start: t(3),
                reason: "Cough for two weeks".into(),
                clinician_id: Some(2),
                clinician: "dr.okafor".into(),
                opened: stamp(3),
            }),
            Change::NoteDrafted(NoteDrafted {
                note,
                patient,
                encounter: Some(encounter),
                author_id: Some(2),
                content: NoteContent::free("Cough, no fever.").expect("valid"),
                drafted: stamp(4),
            }),
            Change::DraftEdited(DraftEdited {
                note,
                content: NoteContent::soap(Some("Cough"), None, Some("Viral URTI"), Some("Fluids"))
                    .expect("valid"),
                edited: stamp(5),
            }),
            Change::NoteSigned(NoteSigned {
                note,
                signed: stamp(6),
                signature: None,
            }),
            Change::AddendumAdded(AddendumAdded {
                note: addendum,
                parent: note,
                amendment: false,
                encounter: Some(encounter),
                author_id: Some(2),
                content: NoteContent::free("Chest clear on review.").expect("valid"),
                drafted: stamp(7),
            }),
            Change::VitalsRecorded(VitalsRecorded {
                patient,
                encounter: Some(encounter),
                effective: t(3),
                values: vec![
                    VitalValue {
                        observation: id(20),
                        vital: Vital::Temperature,
                        value: 37.4,
                    },
                    VitalValue {
                        observation: id(21),
                        vital: Vital::Weight,
                        value: 61.2,
                    },
                ],
                recorded: stamp(8),
            }),
            Change::ProblemAdded(ProblemAdded {
                problem,
                patient,
                item: NewProblem {
                    text: "Acute bronchitis".into(),
                    coding: Some((CodeSystem::Icd10, "J20.9".into())),
                    onset: Some(day(2026, 2, 17)),
                },
                recorded: stamp(9),
            }),
            Change::ProblemResolved(ProblemResolved {
                problem,
                outcome: ProblemOutcome::Resolved,
                on: Some(day(2026, 3, 3)),
                resolved: stamp(10),
            }),
            Change::AllergyRecorded(AllergyRecorded {
                allergy,
                patient,
                item: NewAllergy {
                    substance: "Penicillin".into(),
                    reaction: Some("Hives".into()),
                    severity: Some(Severity::Moderate),
                    category: Some(AllergyCategory::Medication),
                },
                recorded: stamp(11),
                allergy_override: None,
            }),
            Change::AllergyResolved(AllergyResolved {
                allergy,
                resolved: stamp(12),
            }),
            Change::NoKnownAllergiesRecorded(NoKnownAllergiesRecorded {
                patient,
                recorded: stamp(13),
            }),
            Change::MedicationStarted(MedicationStarted {
                medication,
                patient,
                item: NewMedication {
                    name: "Amoxicillin".into(),
                    dose: Some("500 mg".into()),
                    route: Some(Route::Oral),
                    frequency: Some("three times daily".into()),
                    start: Some(day(2026, 3, 3)),
                },
                recorded: stamp(14),
                allergy_override: None,
            }),
            Change::MedicationStopped(MedicationStopped {
                medication,
                on: Some(day(2026, 3, 3)),
                stopped: stamp(15),
            }),
            Change::ImmunizationRecorded(ImmunizationRecorded {
                immunization,
                patient,
                item: NewImmunization {
                    vaccine: "Influenza, seasonal, injectable".into(),
                    cvx: "141".into(),
                    date: day(2025, 10, 1),
                    lot: Some("AB12-3".into()),
                    site: Some(Site::LeftArm),
                },
                recorded: stamp(16),
            }),
            Change::ImmunizationEnteredInError(ImmunizationEnteredInError {
                immunization,
                marked: stamp(17),
            }),
            Change::AppointmentBooked(AppointmentBooked {
                appointment,
                patient,
                clinician: "dr.okafor".into(),
                start: t(24 * 60),
                end: t(24 * 60 + 30),
                appointment_type: Some("New patient".into()),
                reason: Some("Knee pain".into()),
                overbooked: false,
                booked: stamp(18),
            }),
            Change::AppointmentMoved(AppointmentMoved {
                appointment,
                start: t(25 * 60),
                end: t(25 * 60 + 30),
                overbooked: true,
                moved: stamp(19),
            }),
            Change::AppointmentStatusChanged(AppointmentStatusChanged {
                appointment,
                status: AppointmentStatus::Seen,
                encounter: Some(encounter),
                changed: stamp(20),
            }),
            Change::AppointmentCancelled(AppointmentCancelled {
                appointment,
                reason: "Seen early instead".into(),
                cancelled: stamp(21),
            }),
            Change::EnteredInError(EnteredInError {
                item: Corrected::Observation,
                records: vec![id(21)],
                reason: "Pounds typed as kilograms".into(),
                marked: stamp(22),
            }),
            Change::ReportAdded(ReportAdded {
                report: id(30),
                patient,
                encounter: Some(encounter),
                loinc: "57698-3".into(),
                name: "Lipid panel with direct LDL - Serum or Plasma".into(),
                collected: t(3),
                recorded: stamp(23),
            }),
            Change::ResultRecorded(ResultRecorded {
                result: id(31),
                patient,
                report: Some(id(30)),
                item: lab_result(212.0),
                reported: t(24),
                reason: None,
                recorded: stamp(24),
            }),
            Change::ResultCorrected(ResultCorrected {
                result: id(32),
                replaces: id(31),
                item: lab_result(182.0),
                reason: "Transcribed from the wrong line of the report".into(),
                reported: t(25),
                recorded: stamp(25),
            }),
            Change::ResultEnteredInError(ResultEnteredInError {
                result: id(32),
                reason: "Another patient's report".into(),
                marked: stamp(26),
            }),
        ]
    }

    fn lab_result(value: f64) -> NewResult {
        NewResult {
            loinc: "2093-3".into(),
            name: "Cholesterol [Mass/volume] in Serum or Plasma".into(),
            value: ResultValue::Quantity(value),
            unit: Some("mg/dL".into()),
            range: Some(Range {
                low: None,
                high: Some(200.0),
            }),
            flag: Some(if value > 200.0 {
                ResultFlag::H
            } else {
                ResultFlag::N
            }),
            status: EntryStatus::Final,
            collected: t(3),
        }
    }

    /// Each change's SHA-256 over its encoding. If one of these moves, the encoding of a
    /// change moved: that needs a new CHANGE_FORMAT, not a new hash here.
    const GOLDEN: &[(&str, &str)] = &[
        (
            "PatientRegistered",
            "e4aa9aadabb0b0075a10833df39c8ab63f32586d4763c3c5a60ea987eaf709f2",
        ),
        (
            "DemographicsChanged",
            "aa1505d11d36733bf29390865860e90dcf96b0962919eb6dd972ab8a8a6d663b",
        ),
        (
            "RestrictionChanged",
            "1abf6501d4fe36131538694149bfb3351d528b331e9a097cf2372b38110afd32",
        ),
        (
            "CareTeamChanged",
            "21fc99d6b2ee576242039e1dbb6992654a88b962cac226695a7d13c126697054",
        ),
        (
            "EncounterOpened",
            "d3fb5670fd6e0e7ec5f9f3b91e45d8be4faf33e4a30a441236561bf7c3fd071a",
        ),
        (
            "NoteDrafted",
            "5ec65391a006997289eeb5a81085b2680e01fe3e030239ecb4cc2113a23bd567",
        ),
        (
            "DraftEdited",
            "5b13f12aa7646f28da69a5dada0f4e9f8ca6982eaf9229cbf3a2e15c0a6fdef1",
        ),
        (
            "NoteSigned",
            "1446cc039b70a235574eaaccb7b96060cce9ab04c23b306d4304244d9d69aaef",
        ),
        (
            "AddendumAdded",
            "1c4b1822875e45fe1f13ee2cba00455c72b5f8f822104bd41123b479d07aea78",
        ),
        (
            "VitalsRecorded",
            "32da4d360eee7fd08e65dc8af99835fd50068ed2bc3421590864f43fd563929c",
        ),
        (
            "ProblemAdded",
            "67467a1ec8914acdd1acf8ace0ef60bd0969fa7de41e0cd1a6af17e46b1e8bc8",
        ),
        (
            "ProblemResolved",
            "c80ffa84390253b379f037e9f5c4e72726e35c05624d7a2541c776566bf9ce01",
        ),
        (
            "AllergyRecorded",
            "f2429fc0b36051185dc3544126ccbdc4f97f57b39f0fb1d9e3d4097c4c1af628",
        ),
        (
            "AllergyResolved",
            "3783aaebd4acbf0d36bb1bac78d9e28f2aee15a5eabab1a907f55ed62473a2fd",
        ),
        (
            "NoKnownAllergiesRecorded",
            "458b9050c246cbfc95aa3ba8939435b49e9a46197dfc1fc927c0a166a600d01f",
        ),
        (
            "MedicationStarted",
            "b71d26f1a391f652b5a4999d4db43c2a7f295c24028f861543f2d69723f3fd12",
        ),
        (
            "MedicationStopped",
            "e2998c3f5d0d745e73c78afa75c63e6cce3bcbf61c596eafe9cd6e5a6c733439",
        ),
        (
            "ImmunizationRecorded",
            "4f549c62dacadd7441e38b9f97c55134c5148a15d03bafd3f8e12c844594602c",
        ),
        (
            "ImmunizationEnteredInError",
            "ecb5efdd755d244e268244c714a42103b93a669c8ae8dedc5e34776d8d4d943a",
        ),
        (
            "AppointmentBooked",
            "e5e79338582d02c970f48668b94c62200530d345a046b0f63b36e36b9892032a",
        ),
        (
            "AppointmentMoved",
            "f9691346d5b32b69078b1eb86bdcc9b5ef8d96c2abf2cb007fc43db9e22d5bb1",
        ),
        (
            "AppointmentStatusChanged",
            "44d350ce9e04cd869e02513e6da2cd728877b18525348cdc91fa769553cadce3",
        ),
        (
            "AppointmentCancelled",
            "14575221d4dda0796af432ca3bc7cf7d66d8a7bdf440c84b8fa7136ee40dc7d3",
        ),
        (
            "EnteredInError",
            "1f0ccb548294c48bcd4393ed24c08d333ded79a3e865d95aa1d8c8a128d607ac",
        ),
        (
            "ReportAdded",
            "09d92a4986e413638ea9b03afeb109bb3ec4b755434ed3945f4a00120e456221",
        ),
        (
            "ResultRecorded",
            "b8db5f6581b3e487aa213c17395efe765c9e84214bcb4a8fa56075fbfe304f42",
        ),
        (
            "ResultCorrected",
            "7be4c329eeb2a1767ee64efa8a6059cbe011179e6744a385e113e3e01a604bd2",
        ),
        (
            "ResultEnteredInError",
            "ce09ae5b8775ee56675c7043f76cf7960fabcc2efcbb13920dc36a28bd339899",
        ),
    ];

    /// The first sample in full, so a reader sees what the bytes are (cross-checked with
    /// Python's hashlib against the first hash above).
    const FIRST: &str = r#"{"format":1,"change":{"type":"PatientRegistered","patient":"019cb324-cf60-7101-8101-010101010101","mrn":"0000034","demographics":{"family":"Ôkafor-Lee","given":"Ada","preferred":null,"birth_date":"1984-03-02","sex":"female","gender_identity":null,"phone":"+1 (555) 010-0142","email":null,"address":null,"emergency_contact":null},"restricted":false,"registered":{"at":"2026-03-03T10:00:00.000000Z","by":"dr.okafor"}}}"#;

    #[test]
    fn every_change_type_has_a_golden_encoding() {
        let all = samples();
        let kinds: std::collections::BTreeSet<&str> = all.iter().map(Change::kind).collect();
        assert_eq!(kinds.len(), 28, "one sample of each change type");
        assert_eq!(String::from_utf8(all[0].encode()).expect("utf-8"), FIRST);
        assert_eq!(hex::encode(Sha256::digest(FIRST.as_bytes())), GOLDEN[0].1);
        assert_eq!(GOLDEN.len(), all.len());
        for (c, (kind, sha)) in all.iter().zip(GOLDEN) {
            assert_eq!(c.kind(), *kind);
            assert_eq!(
                c.digest(),
                *sha,
                "{kind}: {}",
                String::from_utf8_lossy(&c.encode())
            );
        }
    }

    /// Every row of every record table about the samples' patient (row 3), global ids
    /// included.
    fn tables(session: &Session) -> String {
        let conn = session.connection_for_tests();
        let mut out = String::new();
        for table in RECORD_TABLES {
            let column = if table == "patients" {
                "id"
            } else {
                "patient_id"
            };
            let sql = format!("SELECT * FROM {table} WHERE {column} = 3 ORDER BY 1, 2");
            for row in rows(conn, table, &sql, &[], debug_value) {
                out.push_str(&row);
                out.push('\n');
            }
        }
        out
    }

    #[test]
    fn a_change_decoded_from_its_encoding_writes_the_same_chart() {
        let (built, decoded) = (Clinic::new(), Clinic::new());
        let (mut a, mut b) = (built.as_role(Role::Admin), decoded.as_role(Role::Admin));
        // Writing as an import would: sealed to the clinical key, readable by this session.
        a.prepare_clinical_writes().expect("write key");
        b.prepare_clinical_writes().expect("write key");
        for c in samples() {
            let again = Change::decode(&c.encode()).expect("decodes");
            assert_eq!(again, c, "{}", c.kind());
            let on_a = apply(a.connection_for_tests(), &c).expect("applies as built");
            let on_b = apply(b.connection_for_tests(), &again).expect("applies as decoded");
            assert_eq!(on_a, on_b, "{}", c.kind());
        }
        assert_eq!(tables(&a), tables(&b));
        drop((a, b));
        // And the chart the app shows is the same, with every part of it there.
        let mut doctor_a = built.as_role(Role::Physician);
        let mut doctor_b = decoded.as_role(Role::Physician);
        let chart = doctor_a.open_chart(3).expect("opens");
        assert_eq!(chart, doctor_b.open_chart(3).expect("opens"));
        assert!(chart.patient.restricted);
        assert_eq!(
            chart.patient.demographics.address.as_deref(),
            Some("1 Example Lane, Demo Town")
        );
        assert_eq!(
            chart.patient.allergy_status.as_deref(),
            Some("no_known_allergies")
        );
        assert_eq!(chart.care_team, ["dr.okafor"]);
        let notes = chart.notes.expect("notes");
        assert_eq!(notes.len(), 2);
        assert!(notes
            .iter()
            .any(|n| n.status == "signed" && n.content_sha256.is_some()));
        let vitals = chart.vitals.expect("vitals");
        assert_eq!(vitals.len(), 2);
        let weight = vitals
            .iter()
            .find(|o| o.vital == Vital::Weight)
            .expect("weight");
        assert_eq!(weight.status, "entered-in-error");
        assert_eq!(
            weight.correction.as_ref().map(|c| c.reason.as_str()),
            Some("Pounds typed as kilograms")
        );
        assert_eq!(chart.problems.expect("problems")[0].status, "resolved");
        assert_eq!(chart.allergies.expect("allergies")[0].status, "resolved");
        assert_eq!(chart.medications.expect("medications")[0].status, "stopped");
        assert_eq!(
            chart.immunizations.expect("immunizations")[0].status,
            "entered_in_error"
        );
        assert_eq!(chart.encounters.expect("encounters").len(), 1);
    }

    #[test]
    fn a_change_that_fails_its_checks_writes_nothing() {
        let clinic = Clinic::new();
        let admin = clinic.as_role(Role::Admin);
        let conn = admin.connection_for_tests();
        let all = samples();
        apply(conn, &all[0]).expect("the patient");
        let before = tables(&admin);
        let mut bad = Vec::new();
        if let Change::PatientRegistered(mut p) = all[0].clone() {
            p.patient = id(99);
            p.mrn = "0000035".into();
            bad.push((
                "an MRN with a wrong check digit",
                Change::PatientRegistered(p),
            ));
        }
        if let Change::EncounterOpened(mut e) = all[4].clone() {
            e.reason = "  untrimmed  ".into();
            bad.push(("an untrimmed reason", Change::EncounterOpened(e)));
        }
        if let Change::NoteDrafted(mut n) = all[5].clone() {
            n.content = NoteContent::Free {
                text: "bell \u{7}".into(),
            };
            bad.push(("a control character in a note", Change::NoteDrafted(n)));
        }
        if let Change::VitalsRecorded(mut v) = all[9].clone() {
            v.encounter = None;
            v.values[0].value = 55.0;
            bad.push(("an impossible temperature", Change::VitalsRecorded(v)));
        }
        if let Change::ProblemAdded(mut p) = all[10].clone() {
            p.item.coding = Some((CodeSystem::Icd10, "E11.99999".into()));
            bad.push(("a code of the wrong shape", Change::ProblemAdded(p)));
        }
        if let Change::AllergyRecorded(mut a) = all[12].clone() {
            a.item.substance = "NKDA".into();
            bad.push((
                "\"no known allergies\" as a substance",
                Change::AllergyRecorded(a),
            ));
        }
        if let Change::ImmunizationRecorded(mut i) = all[17].clone() {
            i.item.lot = Some("lot #5".into());
            bad.push((
                "a lot number with punctuation",
                Change::ImmunizationRecorded(i),
            ));
        }
        if let Change::MedicationStarted(mut m) = all[15].clone() {
            m.recorded.by = String::new();
            bad.push(("nobody as its author", Change::MedicationStarted(m)));
        }
        bad.push((
            "a patient that is not here",
            Change::NoKnownAllergiesRecorded(NoKnownAllergiesRecorded {
                patient: id(98),
                recorded: stamp(1),
            }),
        ));
        assert_eq!(bad.len(), 9);
        for (what, change) in bad {
            assert!(apply(conn, &change).is_err(), "{what} was written");
            assert_eq!(tables(&admin), before, "{what} changed the record");
        }
        // A decoded change of an unknown format or shape is refused before anything else.
        assert!(Change::decode(br#"{"format":2,"change":{"type":"NoteSigned"}}"#).is_err());
        assert!(Change::decode(br#"{"format":1,"change":{"type":"NoteDeleted"}}"#).is_err());
    }
}
