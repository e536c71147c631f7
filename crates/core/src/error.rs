//! The core error: a stable machine code for scripts and a message for people.

use chartroom_vault::VaultError;
use thiserror::Error;

use crate::roles::{Permission, Role};

/// Why the gate refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// The role does not have the permission.
    Role { role: Role, permission: Permission },
    /// The patient is restricted and the user is not on the care team, with no active
    /// break-the-glass grant.
    Restricted { can_break_glass: bool },
    /// The role may read clinical content, but the key that opens it has not reached this
    /// user's slot yet (they were added since anyone who holds it last signed in).
    KeyNotHandedOver,
    /// A rule about who, not which role: only a draft's author edits it, nobody adds
    /// themselves to a care team, nobody acknowledges an alert about themselves.
    NotYours(&'static str),
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Denial::Role { role, permission } => write!(
                f,
                "Your role ({}) is not allowed to {}.",
                role.label(),
                permission.describe()
            ),
            Denial::Restricted { can_break_glass: true } => f.write_str(
                "This patient's chart is restricted to their care team. In an emergency you can break the glass: state a reason, and the access is recorded and reported.",
            ),
            Denial::Restricted { can_break_glass: false } => {
                f.write_str("This patient's chart is restricted to their care team.")
            }
            Denial::KeyNotHandedOver => f.write_str(&crate::keys::FieldError::NotHandedOver.to_string()),
            Denial::NotYours(why) => f.write_str(why),
        }
    }
}

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CoreError {
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("{0}")]
    Forbidden(Denial),
    #[error(
        "The session was locked after {minutes} minutes without use. Unlock again to continue."
    )]
    SessionExpired { minutes: u32 },
    /// Stored data failed an integrity check (a damaged or altered row).
    #[error("{0}")]
    Integrity(String),
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// An export's key (identity file or passphrase) does not open it.
    #[error("{0}")]
    WrongKey(String),
    /// A file to import is not what it should be: not an export, not FHIR, or inconsistent.
    #[error("{0}")]
    InvalidFile(String),
    /// A medication and an active allergy (or an allergy and a current medication) that
    /// match by name or drug class; saving anyway takes a reason.
    #[error("{0}")]
    AllergyConflict(String),
    /// A patient being registered looks like one already here.
    #[error("{}", duplicate_message(.0))]
    PossibleDuplicate(Vec<crate::chart::patient::DuplicateCandidate>),
    /// Patients of an import who look like patients here, until each is matched or new.
    #[error("{}", matches_message(.0))]
    ImportMatches(Vec<crate::exchange::PatientMatch>),
    /// A form with problems in one or more fields, each said beside its field.
    #[error("{}", fields_message(.0))]
    Fields(Vec<crate::chart::measure::FieldError>),
    /// Values far from the patient's last ones: asked about before anything is saved.
    #[error("{}", fields_message(.0))]
    CheckValues(Vec<crate::chart::measure::FieldError>),
}

fn fields_message(errors: &[crate::chart::measure::FieldError]) -> String {
    errors
        .iter()
        .map(|e| e.message.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

fn duplicate_message(c: &[crate::chart::patient::DuplicateCandidate]) -> String {
    let named = c
        .iter()
        .take(3)
        .map(|c| {
            format!(
                "{}, {} (born {}, MRN {}{})",
                c.family,
                c.given,
                c.birth_date,
                c.mrn,
                c.phone
                    .as_deref()
                    .map(|p| format!(", {p}"))
                    .unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    format!(
        "This may be a patient already registered: {named}. Open that chart instead, or confirm that this is a different person."
    )
}

fn matches_message(m: &[crate::exchange::PatientMatch]) -> String {
    let named = m
        .iter()
        .take(3)
        .map(|p| {
            let here = p
                .candidates
                .iter()
                .take(3)
                .map(|c| format!("patient {} (MRN {})", c.id, c.mrn))
                .collect::<Vec<_>>()
                .join(" or ");
            format!(
                "{} ({}, {}, born {}) looks like {here}",
                p.source_id, p.family, p.given, p.birth_date
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    format!(
        "{} patient{} in this file may already be here: {named}. Nothing was imported. Say for each whether it is the same person (--match ID=PATIENT_ID: the records join that chart) or someone else (--match ID=new).",
        m.len(),
        if m.len() == 1 { "" } else { "s" }
    )
}

/// What kind of failure an error is, as scripts see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No vault at the given place.
    NoVault,
    /// Bad input, a conflict, or data that fails an integrity check.
    BadData,
    /// A wrong password or recovery key.
    AuthFailed,
    /// The role does not allow it.
    Forbidden,
    /// Try again later: sign-in paused, or the vault busy.
    Temporary,
    /// Reading or writing a file failed (disk full included).
    Io,
}

impl CoreError {
    /// A short, stable identifier scripts can match on.
    pub fn code(&self) -> &'static str {
        match self {
            CoreError::Vault(e) => match e {
                VaultError::NoVault(_) => "no_vault",
                VaultError::AlreadyExists(_) => "vault_exists",
                VaultError::DatabaseMissing => "database_missing",
                VaultError::SlotFileInvalid(_) | VaultError::WeakSlot => "keyslots_invalid",
                VaultError::UnsupportedVersion { .. } | VaultError::NewerSchema { .. } => {
                    "unsupported_version"
                }
                VaultError::WrongCredential(_) => "auth_failed",
                VaultError::LockedOut { .. } => "locked_out",
                VaultError::RecoveryKeyFormat | VaultError::RecoveryKeyTypo => {
                    "invalid_recovery_key"
                }
                VaultError::KeyDoesNotOpenDatabase | VaultError::SlotsDoNotMatchDatabase => {
                    "key_mismatch"
                }
                VaultError::DatabaseDamaged => "database_damaged",
                VaultError::DiskFull => "disk_full",
                VaultError::Busy => "busy",
                VaultError::NoSuchSlot(_) => "not_found",
                VaultError::SlotExists(_) => "conflict",
                VaultError::LastSlot => "conflict",
                VaultError::InvalidInput(_) => "invalid_input",
                VaultError::Io(_) => "io",
                _ => "internal",
            },
            CoreError::Forbidden(_) => "forbidden",
            CoreError::SessionExpired { .. } => "session_expired",
            CoreError::Integrity(_) => "integrity",
            CoreError::InvalidInput(_) => "invalid_input",
            CoreError::NotFound(_) => "not_found",
            CoreError::Conflict(_) => "conflict",
            CoreError::WrongKey(_) => "wrong_key",
            CoreError::InvalidFile(_) => "invalid_file",
            CoreError::PossibleDuplicate(_) | CoreError::ImportMatches(_) => "possible_duplicate",
            CoreError::AllergyConflict(_) => "allergy_conflict",
            CoreError::Fields(_) => "invalid_input",
            CoreError::CheckValues(_) => "check_values",
        }
    }

    /// The patients a registration may duplicate, when that is why it was refused.
    pub fn duplicate_candidates(&self) -> Option<&[crate::chart::patient::DuplicateCandidate]> {
        match self {
            CoreError::PossibleDuplicate(c) => Some(c),
            _ => None,
        }
    }

    /// The patients of an import who look like patients here, when that is why it stopped.
    pub fn import_matches(&self) -> Option<&[crate::exchange::PatientMatch]> {
        match self {
            CoreError::ImportMatches(m) => Some(m),
            _ => None,
        }
    }

    /// The problems of each field of a form, when that is why it was refused.
    pub fn field_errors(&self) -> Option<&[crate::chart::measure::FieldError]> {
        match self {
            CoreError::Fields(f) | CoreError::CheckValues(f) => Some(f),
            _ => None,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self.code() {
            "no_vault" | "database_missing" => ErrorKind::NoVault,
            "auth_failed" | "invalid_recovery_key" | "session_expired" | "wrong_key" => {
                ErrorKind::AuthFailed
            }
            "forbidden" => ErrorKind::Forbidden,
            "locked_out" | "busy" => ErrorKind::Temporary,
            "io" | "disk_full" => ErrorKind::Io,
            _ => ErrorKind::BadData,
        }
    }
}

/// Linux's errno for "no space left on device", for writers whose error kind the standard
/// library does not map to [`std::io::ErrorKind::StorageFull`].
const ENOSPC: i32 = 28;

impl From<std::io::Error> for CoreError {
    /// A failed read or write of a file: a full disk is told apart.
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::StorageFull || e.raw_os_error() == Some(ENOSPC) {
            CoreError::Vault(VaultError::DiskFull)
        } else {
            CoreError::Vault(VaultError::Io(e))
        }
    }
}

impl From<rusqlite::Error> for CoreError {
    fn from(e: rusqlite::Error) -> Self {
        // A field that cannot be sealed or opened fails its statement with the words of its
        // FieldError; give it back its own kind of error.
        let field = match &e {
            rusqlite::Error::SqliteFailure(_, Some(message)) => {
                crate::keys::FieldError::from_message(message)
            }
            rusqlite::Error::UserFunctionError(inner) => {
                crate::keys::FieldError::from_message(&inner.to_string())
            }
            _ => None,
        };
        match field {
            Some(field) => CoreError::from(field),
            None => CoreError::Vault(VaultError::from(e)),
        }
    }
}

impl From<crate::keys::FieldError> for CoreError {
    fn from(e: crate::keys::FieldError) -> Self {
        use crate::keys::FieldError;
        match e {
            FieldError::NotHandedOver => CoreError::Forbidden(Denial::KeyNotHandedOver),
            FieldError::Tampered(_) => CoreError::Integrity(e.to_string()),
            FieldError::Clear(_)
            | FieldError::NoWriteKey
            | FieldError::NoAuditTextKey
            | FieldError::NoPatientKey => CoreError::Conflict(e.to_string()),
        }
    }
}
