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
use super::encounter::EncounterOpened;
use super::immunization::{ImmunizationEnteredInError, ImmunizationRecorded};
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
        }
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
        }
    }
}

/// The rows a change wrote or changed, in order (one for most; one per value of a vitals
/// set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Applied(pub Vec<i64>);

impl Applied {
    pub fn one(row: i64) -> Applied {
        Applied(vec![row])
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
    }
}

/// The tables whose records carry a global id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Table {
    Patients,
    Encounters,
    Notes,
    Problems,
    Allergies,
    Medications,
    Immunizations,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Patients => "patients",
            Table::Encounters => "encounters",
            Table::Notes => "notes",
            Table::Problems => "problems",
            Table::Allergies => "allergies",
            Table::Medications => "medications",
            Table::Immunizations => "immunizations",
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
        }
    }
}

/// The local row of the record with global id `id`.
pub(crate) fn row_of(conn: &Connection, table: Table, id: RecordId) -> Result<i64, CoreError> {
    conn.prepare_cached(&format!("SELECT id FROM {} WHERE uuid = ?1", table.name()))?
        .query_row([id], |r| r.get(0))
        .optional()?
        .ok_or_else(|| CoreError::NotFound(format!("There is no {} {id}.", table.what())))
}

/// The global id of local row `row`.
pub(crate) fn id_of(conn: &Connection, table: Table, row: i64) -> Result<RecordId, CoreError> {
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
