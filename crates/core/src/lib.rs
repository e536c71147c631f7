//! chartroom-core: the clinic. Users and roles, the [`Session`] gate through which every
//! operation on the clinic's data passes, the clinical record as typed changes
//! ([`chart`]), and the audit trail and alerts the gate writes.
//!
//! A map for newcomers:
//! - [`session`](Session): the gate only (unlock, the permission and restriction check, the
//!   transaction with its audit entry, idle expiry);
//! - `users`, `roles`: accounts, passwords, key slots, and the role matrix;
//! - `access`: care teams, break-the-glass, and how a session may open a chart;
//! - [`chart`]: one module per part of the record, each with its type, its checks, its
//!   changes, the one writer of its table and its operations; [`chart::change`] holds the
//!   change type and the one function that applies any change;
//! - `search`, `audit`, `alerts`, `settings`, [`sync`];
//! - `exchange`: FHIR export and import;
//! - `demo` (feature `demo`): the synthetic clinic generator.

#![forbid(unsafe_code)]

mod access;
mod alerts;
mod audit;
mod audit_text;
pub mod audit_words;
#[cfg(feature = "bench")]
#[doc(hidden)]
pub mod bench_support;
pub mod chart;
mod clock;
mod config;
#[cfg(any(test, feature = "demo"))]
mod demo;
mod error;
mod exchange;
#[cfg(any(test, feature = "fuzz"))]
#[doc(hidden)]
pub mod fuzz_support;
mod ids;
pub mod keys;
mod patient_keys;
mod restore;
mod roles;
pub mod schedule;
mod schema;
mod search;
mod security_log;
mod session;
mod settings;
pub mod sync;
mod users;
pub mod zone;

pub use access::{ChartAccess, Grant};
pub use alerts::{rule as alert_rule, Alert};
pub use audit::{
    AuditCount, AuditFilter, AuditLine, PatientNamed, Verification, CHECKPOINT_EVERY,
    MAX_PATIENTS_NAMED,
};
#[cfg(feature = "bench")]
pub use chart::read_chart_for_benchmarks;
pub use chart::{
    allergy::{Allergy, AllergyCategory, AllergyList, NewAllergy, Severity},
    appointment::{Appointment, AppointmentQuery, AppointmentStatus, Booking, FreeSlot, Started},
    change::{Change, RecordId, Stamp, CHANGE_FORMAT},
    correction::{Corrected, Correction, ENTERED_IN_ERROR},
    encounter::{Encounter, EncounterKind, NewEncounter},
    immunization::{Immunization, NewImmunization, Site},
    input::parse_time_input,
    lab::{
        check_loinc, lab_test, EarlierResult, LabReport, LabResult, LabTest, Range, ReportInput,
        ResultFlag, ResultInput, LAB_TESTS,
    },
    measure::{read_form as read_vitals_form, show_in as show_vital_in, FieldError, Units},
    medication::{Medication, NewMedication, Route},
    note::{
        note_digest, signature_message, Note, NoteContent, NoteKind, NoteSignature, NoteStatus,
    },
    patient::{
        fold, mrn_for, name_words, Demographics, DuplicateCandidate, EmergencyContact, NewPatient,
        Patient, PatientChanges, PatientForm, PatientVersion, Sex, GENDER_IDENTITIES,
    },
    problem::{CodeSystem, NewProblem, Problem},
    vitals::{bmi, Flag, Observation, RecordedVitals, Vital, VitalsInput},
    Chart,
};
pub use chartroom_audit::{format_time, Action, Entry, Outcome, Record};
pub use clock::{Clock, ManualClock, SystemClock};
#[cfg(any(test, feature = "demo"))]
pub use demo::{DemoBook, DemoOptions, DemoSummary, Rng as SeededRng};
pub use restore::{restore_vault, RestoreReport};
pub use search::{within_one_edit, SearchHit};
pub use security_log::{fingerprint as root_fingerprint, LogVerification, VaultVerification};
pub use settings::{ClinicHours, DateFormat, Settings, SETTING_KEYS};
pub use sync::{CollectorClient, SessionAccess, SyncError, SyncStatus, SyncTarget};

// The store's types a caller needs to name a vault and read its errors; never the store
// itself, so the shell and the CLI reach data only through a Session.
pub use chartroom_vault::{
    restrict_new_files, HolderChanges, KdfPolicy, RecoveryKey, SlotKind, VaultConfig, VaultError,
    VaultInfo,
};
pub use config::{
    default_vault_dir, key_derivation_time, vault_config, vault_exists, vault_info,
    ENV_KDF_TARGET_MS, ENV_STATE_DIR, ENV_VAULT,
};
pub use error::{CoreError, Denial, ErrorKind};
pub use exchange::{
    Counts, Destination, Disclosure, ExportReport, ExportRequest, ImportKey, ImportOptions,
    ImportOrigin, ImportReport, ImportedPatient, KeyInfo, LeftOut, PatientChoice, PatientMatch,
    Selection, Skipped, RESOURCE_TYPES,
};
pub use ids::{
    AllergyId, AppointmentId, EncounterId, ImmunizationId, LabReportId, LabResultId, MedicationId,
    NoteId, ObservationId, PatientId, ProblemId,
};
pub use roles::{matrix_markdown, Permission, Role};
pub use schedule::{AppointmentType, ScheduleDay, ScheduleView};
pub use session::{Session, SignedIn};
pub use users::{check_new_password, User, UserName, MIN_PASSWORD_CHARS};
pub use zone::ClinicZone;

#[cfg(test)]
mod appointment_tests;
#[cfg(test)]
mod gate_tests;
#[cfg(test)]
mod hardening_tests;
#[cfg(test)]
mod key_tests;
#[cfg(test)]
mod record_tests;
#[cfg(test)]
mod security_tests;
#[cfg(test)]
mod sync_tests;
#[cfg(test)]
mod tests;
