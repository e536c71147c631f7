//! chartroom-core: the clinic. Users and roles, the [`Session`] gate through which every
//! operation on the clinic's data passes, and the audit trail and alerts it writes.

#![forbid(unsafe_code)]

mod alerts;
mod audit;
#[doc(hidden)]
pub mod bench_support;
mod chart_ops;
mod clock;
mod config;
mod demo;
mod error;
mod export;
#[doc(hidden)]
pub mod fuzz_support;
mod patients;
mod record;
mod roles;
mod schema;
mod search;
mod session;
mod settings;
pub mod sync;
mod users;
mod vitals;

pub use alerts::{rule as alert_rule, Alert};
pub use audit::{AuditFilter, CHECKPOINT_EVERY};
pub use chart_ops::{read_chart_for_benchmarks, AllergyList, Chart, PatientChanges};
pub use chartroom_audit::{format_time, Action, Entry, Outcome, Record};
pub use clock::{Clock, ManualClock, SystemClock};
pub use demo::{DemoOptions, DemoSummary};
pub use patients::{
    fold, mrn_for, name_words, ChartAccess, Demographics, EmergencyContact, NewPatient, Patient,
    PatientForm, PatientVersion, Sex, GENDER_IDENTITIES,
};
pub use record::{
    note_digest, parse_time_input, Allergy, AllergyCategory, CodeSystem, Encounter, EncounterKind,
    Immunization, Medication, NewAllergy, NewEncounter, NewImmunization, NewMedication, NewProblem,
    Note, NoteContent, NoteKind, Observation, Problem, Route, Severity, Site,
};
pub use search::{within_one_edit, SearchHit};
pub use session::{Grant, Verification};
pub use settings::{ClinicHours, Settings, SETTING_KEYS};
pub use sync::{CollectorClient, SessionAccess, SyncError, SyncStatus, SyncTarget};
pub use vitals::{bmi, Flag, Vital, VitalsInput};

pub use chartroom_vault::{
    KdfPolicy, RecoveryKey, SlotKind, Vault, VaultConfig, VaultError, VaultInfo,
};
pub use config::{default_vault_dir, vault_config, ENV_KDF_TARGET_MS, ENV_STATE_DIR, ENV_VAULT};
pub use error::{CoreError, Denial, ErrorKind};
pub use export::{
    Counts, Destination, Disclosure, ExportReport, ExportRequest, ImportKey, ImportReport,
    ImportedPatient, KeyInfo, LeftOut, Selection, RESOURCE_TYPES,
};
pub use roles::{matrix_markdown, Permission, Role};
pub use session::{Session, SignedIn};
pub use users::{check_new_password, User, UserName, MIN_PASSWORD_CHARS};

/// What can be known about a vault without unlocking it.
pub fn vault_info(config: &VaultConfig) -> Result<VaultInfo, CoreError> {
    Ok(Vault::info(&config.dir)?)
}

#[cfg(test)]
mod gate_tests;
#[cfg(test)]
mod record_tests;
#[cfg(test)]
mod sync_tests;
#[cfg(test)]
mod tests;
