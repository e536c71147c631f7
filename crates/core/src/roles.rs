//! Roles and permissions: the one table that says who may do what.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A staff member's role. Each user has exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Physician,
    Nurse,
    FrontDesk,
    Auditor,
}

/// Something a session may be allowed to do. Every gated operation names exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Add users, change roles, disable users, reset other users' passwords.
    ManageUsers,
    /// See the list of users and their roles.
    ViewUsers,
    /// Rotate the data key, replace the recovery key.
    ManageKeys,
    /// Read out the raw data key for standard SQLCipher tools.
    ExportKey,
    /// Change clinic settings: idle timeout, break-the-glass time box, alert thresholds.
    ManageSettings,
    /// Find patients by name, birth date, MRN or phone.
    SearchPatients,
    /// Register a new patient.
    RegisterPatient,
    /// Open a chart's demographics and contact details.
    ReadDemographics,
    /// Change demographics and contact details.
    EditDemographics,
    /// Choose who is on a patient's care team.
    ManageCareTeam,
    /// Read clinical content: encounters, vitals, problems, allergies, medications, immunizations.
    ReadClinical,
    /// Read clinical notes.
    ReadNotes,
    /// Record problems and medications.
    WriteClinical,
    /// Open encounters (visits, calls).
    RecordEncounter,
    /// Record vital signs.
    RecordVitals,
    /// Record allergies (and "no known allergies").
    RecordAllergies,
    /// Record immunizations given.
    RecordImmunizations,
    /// Record lab results and reports, correct them and mark them entered in error.
    RecordResults,
    /// Write draft notes.
    DraftNote,
    /// Sign notes and their addenda.
    SignNote,
    /// Open a restricted chart in an emergency, with a stated reason.
    BreakGlass,
    /// Read the audit trail.
    ReadAudit,
    /// Verify the audit trail's chain and signatures.
    VerifyAudit,
    /// See and acknowledge alerts about suspicious access.
    ManageAlerts,
    /// Export records (a disclosure).
    ExportRecords,
    /// Import records from another clinic.
    ImportRecords,
    /// See a patient's accounting of disclosures (which exports held their record).
    ReadDisclosures,
    /// Configure and run the upstream audit sync.
    ManageSync,
    /// Make a backup copy of the vault.
    Backup,
    /// Set clinicians' working hours, days off and the appointment types.
    ManageSchedules,
    /// See clinicians' working hours, free slots and the appointment types.
    ViewSchedules,
    /// See appointment books: who is booked with whom, when and why.
    ViewAppointments,
    /// Book, move and cancel appointments; mark no-shows.
    BookAppointments,
    /// Check patients in when they arrive.
    CheckInPatients,
    /// Mark a waiting patient as in an examination room.
    RoomPatients,
    /// Start one's own appointments (opens the encounter).
    StartAppointments,
}

impl Permission {
    pub const ALL: [Permission; 36] = [
        Permission::ManageUsers,
        Permission::ViewUsers,
        Permission::ManageKeys,
        Permission::ExportKey,
        Permission::ManageSettings,
        Permission::SearchPatients,
        Permission::RegisterPatient,
        Permission::ReadDemographics,
        Permission::EditDemographics,
        Permission::ManageCareTeam,
        Permission::ReadClinical,
        Permission::ReadNotes,
        Permission::WriteClinical,
        Permission::RecordEncounter,
        Permission::RecordVitals,
        Permission::RecordAllergies,
        Permission::RecordImmunizations,
        Permission::RecordResults,
        Permission::DraftNote,
        Permission::SignNote,
        Permission::BreakGlass,
        Permission::ReadAudit,
        Permission::VerifyAudit,
        Permission::ManageAlerts,
        Permission::ExportRecords,
        Permission::ImportRecords,
        Permission::ReadDisclosures,
        Permission::ManageSync,
        Permission::Backup,
        Permission::ManageSchedules,
        Permission::ViewSchedules,
        Permission::ViewAppointments,
        Permission::BookAppointments,
        Permission::CheckInPatients,
        Permission::RoomPatients,
        Permission::StartAppointments,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::ManageUsers => "manage_users",
            Permission::ViewUsers => "view_users",
            Permission::ManageKeys => "manage_keys",
            Permission::ExportKey => "export_key",
            Permission::ManageSettings => "manage_settings",
            Permission::SearchPatients => "search_patients",
            Permission::RegisterPatient => "register_patient",
            Permission::ReadDemographics => "read_demographics",
            Permission::EditDemographics => "edit_demographics",
            Permission::ManageCareTeam => "manage_care_team",
            Permission::ReadClinical => "read_clinical",
            Permission::ReadNotes => "read_notes",
            Permission::WriteClinical => "write_clinical",
            Permission::RecordEncounter => "record_encounter",
            Permission::RecordVitals => "record_vitals",
            Permission::RecordAllergies => "record_allergies",
            Permission::RecordImmunizations => "record_immunizations",
            Permission::RecordResults => "record_results",
            Permission::DraftNote => "draft_note",
            Permission::SignNote => "sign_note",
            Permission::BreakGlass => "break_glass",
            Permission::ReadAudit => "read_audit",
            Permission::VerifyAudit => "verify_audit",
            Permission::ManageAlerts => "manage_alerts",
            Permission::ExportRecords => "export_records",
            Permission::ImportRecords => "import_records",
            Permission::ReadDisclosures => "read_disclosures",
            Permission::ManageSync => "manage_sync",
            Permission::Backup => "backup",
            Permission::ManageSchedules => "manage_schedules",
            Permission::ViewSchedules => "view_schedules",
            Permission::ViewAppointments => "view_appointments",
            Permission::BookAppointments => "book_appointments",
            Permission::CheckInPatients => "check_in_patients",
            Permission::RoomPatients => "room_patients",
            Permission::StartAppointments => "start_appointments",
        }
    }

    /// Says what was refused, for the message a denied user reads.
    pub fn describe(self) -> &'static str {
        match self {
            Permission::ManageUsers => "manage users",
            Permission::ViewUsers => "see the list of users",
            Permission::ManageKeys => "change the vault's keys",
            Permission::ExportKey => "export the database key",
            Permission::ManageSettings => "change clinic settings",
            Permission::SearchPatients => "search for patients",
            Permission::RegisterPatient => "register patients",
            Permission::ReadDemographics => "open charts: demographics and contact details",
            Permission::EditDemographics => "change patient demographics",
            Permission::ManageCareTeam => "change care teams",
            Permission::ReadClinical => "see clinical information",
            Permission::ReadNotes => "read clinical notes",
            Permission::WriteClinical => "record problems and medications",
            Permission::RecordEncounter => "open encounters",
            Permission::RecordVitals => "record vital signs",
            Permission::RecordAllergies => "record allergies",
            Permission::RecordImmunizations => "record immunizations",
            Permission::RecordResults => "record lab results",
            Permission::DraftNote => "write notes",
            Permission::SignNote => "sign notes",
            Permission::BreakGlass => "break the glass into restricted charts",
            Permission::ReadAudit => "read the audit trail",
            Permission::VerifyAudit => "verify the audit trail",
            Permission::ManageAlerts => "see or acknowledge access alerts",
            Permission::ExportRecords => "export records",
            Permission::ImportRecords => "import records",
            Permission::ReadDisclosures => "see the accounting of disclosures",
            Permission::ManageSync => "manage audit sync",
            Permission::Backup => "make backups",
            Permission::ManageSchedules => "set schedules and appointment types",
            Permission::ViewSchedules => "see schedules and free slots",
            Permission::ViewAppointments => "see appointment books",
            Permission::BookAppointments => "book, move and cancel appointments",
            Permission::CheckInPatients => "check patients in",
            Permission::RoomPatients => "put patients in a room",
            Permission::StartAppointments => "start their own appointments",
        }
    }
}

impl Role {
    /// Physicians and nurses: who treats patients (and may be a chart's clinician).
    pub fn is_clinician(self) -> bool {
        matches!(self, Role::Physician | Role::Nurse)
    }

    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Physician,
        Role::Nurse,
        Role::FrontDesk,
        Role::Auditor,
    ];

    /// The role-to-permission matrix. This is the only place it is written down; the README
    /// prints it and the tests check it against a hand-written table.
    pub fn permissions(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            Role::Admin => &[
                ManageUsers,
                ViewUsers,
                ManageKeys,
                ExportKey,
                ManageSettings,
                SearchPatients,
                ReadDemographics,
                ManageCareTeam,
                VerifyAudit,
                ManageAlerts,
                ExportRecords,
                ImportRecords,
                ReadDisclosures,
                ManageSync,
                Backup,
                ManageSchedules,
                ViewSchedules,
            ],
            Role::Physician => &[
                SearchPatients,
                RegisterPatient,
                ReadDemographics,
                EditDemographics,
                ManageCareTeam,
                ReadClinical,
                ReadNotes,
                WriteClinical,
                RecordEncounter,
                RecordVitals,
                RecordAllergies,
                RecordImmunizations,
                RecordResults,
                DraftNote,
                SignNote,
                BreakGlass,
                ExportRecords,
                ReadDisclosures,
                ViewSchedules,
                ViewAppointments,
                StartAppointments,
            ],
            Role::Nurse => &[
                SearchPatients,
                ReadDemographics,
                ReadClinical,
                ReadNotes,
                RecordEncounter,
                RecordVitals,
                RecordAllergies,
                RecordImmunizations,
                RecordResults,
                DraftNote,
                BreakGlass,
                ViewSchedules,
                ViewAppointments,
                CheckInPatients,
                RoomPatients,
                StartAppointments,
            ],
            Role::FrontDesk => &[
                SearchPatients,
                RegisterPatient,
                ReadDemographics,
                EditDemographics,
                ViewSchedules,
                ViewAppointments,
                BookAppointments,
                CheckInPatients,
            ],
            Role::Auditor => &[
                ViewUsers,
                ReadAudit,
                VerifyAudit,
                ManageAlerts,
                ReadDisclosures,
            ],
        }
    }

    pub fn allows(self, permission: Permission) -> bool {
        self.permissions().contains(&permission)
    }

    /// The purpose of use (v3-ActReason) recorded for this role's ordinary access.
    pub fn purpose_of_use(self) -> &'static str {
        match self {
            Role::Physician | Role::Nurse => "TREAT",
            Role::FrontDesk => "HOPERAT",
            Role::Admin => "HSYSADMIN",
            Role::Auditor => "HCOMPL",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Physician => "physician",
            Role::Nurse => "nurse",
            Role::FrontDesk => "front_desk",
            Role::Auditor => "auditor",
        }
    }

    /// How the role reads in a sentence.
    pub fn label(self) -> &'static str {
        match self {
            Role::Admin => "Administrator",
            Role::Physician => "Physician",
            Role::Nurse => "Nurse",
            Role::FrontDesk => "Front desk",
            Role::Auditor => "Auditor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = crate::CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s.trim().to_ascii_lowercase().replace('-', "_"))
            .ok_or_else(|| {
                crate::CoreError::InvalidInput(format!(
                    "Unknown role \"{}\". Roles are: admin, physician, nurse, front_desk, auditor.",
                    s.chars().take(40).collect::<String>()
                ))
            })
    }
}

/// The matrix as a Markdown table, as the README prints it (a test keeps the two equal).
pub fn matrix_markdown() -> String {
    let mut out =
        String::from("| permission | admin | physician | nurse | front_desk | auditor |\n");
    out.push_str("| --- | :-: | :-: | :-: | :-: | :-: |\n");
    for p in Permission::ALL {
        out.push_str(&format!("| {} (`{}`) |", p.describe(), p.as_str()));
        for role in Role::ALL {
            out.push_str(if role.allows(p) { " ✓ |" } else { " |" });
        }
        out.push('\n');
    }
    // What each role's password can decrypt, from the one place that says it.
    out.push_str("| **keys its password opens** |");
    for role in Role::ALL {
        let mut keys = vec!["database"];
        keys.extend(crate::keys::compartments_of(role));
        out.push_str(&format!(" {} |", keys.join(", ")));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_prints_the_matrix_as_it_is() {
        let readme = include_str!("../../../README.md");
        let table = matrix_markdown();
        assert!(
            readme.contains(&table),
            "README.md's role table is out of date; it should read:\n{table}"
        );
    }

    #[test]
    fn roles_parse_from_their_names() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().expect("parses"), role);
        }
        assert_eq!(
            "Front-Desk".parse::<Role>().expect("parses"),
            Role::FrontDesk
        );
        assert!("superuser".parse::<Role>().is_err());
    }

    #[test]
    fn every_permission_is_listed_once() {
        let mut seen = std::collections::BTreeSet::new();
        for p in Permission::ALL {
            assert!(seen.insert(p), "{p:?} listed twice");
        }
    }
}
