//! chartroom-core: the clinic. Users and roles, the [`Session`] gate through which every
//! operation on the clinic's data passes, and the audit trail and alerts it writes.

#![forbid(unsafe_code)]

mod alerts;
mod audit;
mod clock;
mod config;
mod error;
mod patients;
mod roles;
mod schema;
mod session;
mod settings;
mod users;

pub use alerts::{rule as alert_rule, Alert};
pub use audit::{AuditFilter, CHECKPOINT_EVERY};
pub use chartroom_audit::{Action, Entry, Outcome, Record};
pub use clock::{Clock, ManualClock, SystemClock};
pub use patients::{fold, ChartAccess, NewPatient, Note, Patient, PatientSummary, Sex};
pub use session::{Chart, Grant, Verification};
pub use settings::{ClinicHours, Settings, SETTING_KEYS};

pub use chartroom_vault::{
    KdfPolicy, RecoveryKey, SlotKind, Vault, VaultConfig, VaultError, VaultInfo,
};
pub use config::{default_vault_dir, vault_config, ENV_KDF_TARGET_MS, ENV_STATE_DIR, ENV_VAULT};
pub use error::{CoreError, Denial, ErrorKind};
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
mod tests;
