//! The vault's error type: each variant means one thing a caller may act on, and its message
//! is written for a clinic user. No message carries key material or record content.

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use crate::lockout::{describe_wait, AfterFailure};

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum VaultError {
    #[error("There is no Chartroom vault in {0}.")]
    NoVault(PathBuf),
    #[error("A Chartroom vault already exists in {0}.")]
    AlreadyExists(PathBuf),
    #[error("The vault's database file (chartroom.db) is missing. Restore the vault folder from a backup.")]
    DatabaseMissing,
    #[error("The vault cannot be opened: {0}. Restore keyslots.json from a backup, or use the recovery key.")]
    SlotFileInvalid(&'static str),
    #[error("This vault's key slot file is format version {found}; this version of Chartroom reads version {supported}. Use a newer Chartroom.")]
    UnsupportedVersion { found: u32, supported: u32 },
    #[error("This vault was written by a newer version of Chartroom (schema {found}, this version knows {supported}). Use a newer Chartroom.")]
    NewerSchema { found: u32, supported: u32 },
    #[error(
        "The key slot uses weaker password protection than Chartroom allows, so it was not used."
    )]
    WeakSlot,
    #[error("{}", wrong_credential_message(*.0))]
    WrongCredential(Option<AfterFailure>),
    #[error("Too many failed sign-in attempts. Sign-in is paused; try again in {}.", describe_wait(*wait))]
    LockedOut { wait: Duration },
    #[error("That is not a recovery key: a recovery key is 32 letters and digits, in eight groups of four.")]
    RecoveryKeyFormat,
    #[error("The recovery key has a typo: check each group of four against the written copy.")]
    RecoveryKeyTypo,
    #[error("The key slots do not open this database: the files come from different vaults or the database is damaged.")]
    KeyDoesNotOpenDatabase,
    #[error("The key slot file belongs to a different vault than this database.")]
    SlotsDoNotMatchDatabase,
    #[error("The database is damaged. Restore the vault folder from a backup.")]
    DatabaseDamaged,
    #[error("The disk is full. Free some space and try again; nothing was changed.")]
    DiskFull,
    #[error("The vault is in use by another Chartroom window or process. Close it and try again.")]
    Busy,
    #[error("{0} has no key slot in this vault.")]
    NoSuchSlot(String),
    #[error("{0} already has a key slot in this vault.")]
    SlotExists(String),
    #[error("The last key slot of a user cannot be removed: the vault would no longer open.")]
    LastSlot,
    #[error("{0}")]
    InvalidInput(&'static str),
    #[error("An encryption operation failed.")]
    Crypto,
    #[error("Database error: {0}")]
    Sqlite(String),
    #[error("File error: {0}")]
    Io(#[from] std::io::Error),
}

fn wrong_credential_message(after: Option<AfterFailure>) -> String {
    let base = "The user name or password is wrong.";
    match after {
        Some(AfterFailure::AttemptsLeft(n)) if n <= 2 => {
            format!(
                "{base} After {n} more failed attempt{} sign-in will pause.",
                if n == 1 { "" } else { "s" }
            )
        }
        Some(AfterFailure::Paused(wait)) => {
            format!(
                "{base} Too many failed attempts: sign-in is paused for {}.",
                describe_wait(wait)
            )
        }
        _ => base.to_owned(),
    }
}

impl VaultError {
    /// Maps an error from opening or first reading the database.
    pub(crate) fn from_open(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase) => VaultError::KeyDoesNotOpenDatabase,
            Some(rusqlite::ErrorCode::CannotOpen) => VaultError::DatabaseMissing,
            _ => VaultError::from(e),
        }
    }
}

impl From<rusqlite::Error> for VaultError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => VaultError::DiskFull,
            Some(rusqlite::ErrorCode::DatabaseCorrupt) => VaultError::DatabaseDamaged,
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                VaultError::Busy
            }
            _ => VaultError::Sqlite(e.to_string()),
        }
    }
}
