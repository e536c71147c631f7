//! Local row ids, one type per kind of record, so that a note id cannot be passed where a
//! patient id belongs. Each is the record's row id in this vault, shown and typed as a
//! number (the record's global id is its [`RecordId`](crate::RecordId)).
//!
//! The Session's operations take `impl Into<PatientId>` (and the like), so a plain number
//! typed by a person still works, but an id of another kind does not compile:
//!
//! ```compile_fail
//! fn open(session: &mut chartroom_core::Session, note: chartroom_core::NoteId) {
//!     let _ = session.open_chart(note);
//! }
//! ```

use rusqlite::types::{FromSql, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::{Deserialize, Serialize};

macro_rules! local_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        #[cfg_attr(feature = "ts", derive(ts_rs::TS))]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl $name {
            /// The number as stored and shown.
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl From<i64> for $name {
            fn from(n: i64) -> Self {
                $name(n)
            }
        }

        impl From<$name> for i64 {
            fn from(id: $name) -> i64 {
                id.0
            }
        }

        impl PartialEq<i64> for $name {
            fn eq(&self, other: &i64) -> bool {
                self.0 == *other
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                self.0.to_sql()
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                i64::column_result(value).map($name)
            }
        }
    };
}

local_id!(
    /// A patient's row id in this vault.
    PatientId
);
local_id!(
    /// An encounter's row id.
    EncounterId
);
local_id!(
    /// A note's (or addendum's) row id.
    NoteId
);
local_id!(
    /// A vital-sign observation's row id.
    ObservationId
);
local_id!(
    /// A problem's row id.
    ProblemId
);
local_id!(
    /// An allergy's row id.
    AllergyId
);
local_id!(
    /// A medication's row id.
    MedicationId
);
local_id!(
    /// An immunization's row id.
    ImmunizationId
);
local_id!(
    /// An appointment's row id.
    AppointmentId
);
local_id!(
    /// A lab result's row id (one version of it).
    LabResultId
);
local_id!(
    /// A lab report's row id.
    LabReportId
);
