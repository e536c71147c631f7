//! The gate, the audit trail and the alerts, exercised through the public Session API on
//! real SQLCipher vaults. Time is a ManualClock, so time boxes and windows need no sleeping.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use rusqlite::Connection;
use secrecy::{ExposeSecret, SecretString};

use super::*;

pub(crate) fn pw(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

/// A vault with one user of each role, a plain patient (1) and a restricted one (2).
pub(crate) struct Clinic {
    _tmp: tempfile::TempDir,
    pub(crate) config: VaultConfig,
    pub(crate) clock: ManualClock,
    pub(crate) recovery: RecoveryKey,
}

const STAFF: [(&str, Role, &str); 5] = [
    ("admin", Role::Admin, "admin-password"),
    ("dr.okafor", Role::Physician, "physician-password"),
    ("nurse.lee", Role::Nurse, "nurse-password"),
    ("desk.ruiz", Role::FrontDesk, "frontdesk-password"),
    ("audit.kim", Role::Auditor, "auditor-password"),
];

pub(crate) fn password_of(role: Role) -> (&'static str, &'static str) {
    let (name, _, pw) = STAFF
        .iter()
        .find(|(_, r, _)| *r == role)
        .expect("one user per role");
    (name, pw)
}

/// The tables of the clinic's record (every table a change writes), in a fixed order.
pub(crate) const RECORD_TABLES: [&str; 15] = [
    "patients",
    "patient_versions",
    "patient_name_words",
    "care_team",
    "encounters",
    "notes",
    "observations",
    "problems",
    "allergies",
    "medications",
    "immunizations",
    "appointments",
    "entered_in_error",
    "lab_reports",
    "lab_results",
];

/// Each row `sql` selects from `table`, as `"{table}: v1 | v2 | ..."` with every value as
/// `render` writes it, leaving out the columns named in `skip`: for dumps that prove what
/// changed and what did not.
pub(crate) fn rows(
    conn: &Connection,
    table: &str,
    sql: &str,
    skip: &[&str],
    render: fn(rusqlite::types::ValueRef<'_>) -> String,
) -> Vec<String> {
    // A table's sealed columns are dumped opened: the dump says what the record holds.
    let sql = match sql.strip_prefix("SELECT * ") {
        Some(rest) => format!("SELECT {} {rest}", all_columns(conn, table)),
        None => sql.to_owned(),
    };
    let mut stmt = conn.prepare(&sql).expect("prepares");
    let keep: Vec<usize> = (0..stmt.column_count())
        .filter(|i| stmt.column_name(*i).is_ok_and(|n| !skip.contains(&n)))
        .collect();
    stmt.query_map([], |r| {
        let values = keep
            .iter()
            .map(|i| r.get_ref(*i).map(render))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(format!("{table}: {}", values.join(" | ")))
    })
    .expect("queries")
    .map(|r| r.expect("row"))
    .collect()
}

/// The columns of `table` for a `SELECT`, its sealed ones opened under their own names (a
/// vital sign's value as the number it was). Needs a connection whose keys open them.
pub(crate) fn all_columns(conn: &Connection, table: &str) -> String {
    let sealed: &[&str] = crate::schema::SEALED_COLUMNS
        .iter()
        .find(|(t, _)| *t == table)
        .map_or(&[], |(_, c)| c);
    let columns: Vec<String> = conn
        .prepare(&format!("PRAGMA table_info({table})"))
        .expect("prepares")
        .query_map([], |r| r.get(1))
        .expect("queries")
        .collect::<Result<_, _>>()
        .expect("columns");
    columns
        .iter()
        .map(|c| {
            // A restricted patient's demographics and history, opened by their own key.
            match (table, c.as_str()) {
                ("patients", "sealed") => {
                    return "cr_popen(uuid, 'patients', sealed) AS sealed".into()
                }
                ("patient_versions", "data") => {
                    return "coalesce(cr_popen((SELECT p.uuid FROM patients p WHERE p.id = patient_versions.patient_id), 'patient_versions', data), data) AS data".into()
                }
                _ => {}
            }
            if !sealed.contains(&c.as_str()) {
                return c.clone();
            }
            let open = crate::keys::open_sql(table, c);
            if table == "observations" && c == "value" {
                format!("CAST({open} AS REAL) AS {c}")
            } else {
                format!("{open} AS {c}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every value of every table as text (blobs read as Latin-1, so text hidden in one shows):
/// what an insider with the database key alone sees.
pub(crate) fn raw_dump(conn: &Connection) -> String {
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .expect("prepares")
        .query_map([], |r| r.get(0))
        .expect("queries")
        .collect::<Result<_, _>>()
        .expect("names");
    let mut out = String::new();
    for table in tables {
        let sql = format!("SELECT * FROM \"{table}\"");
        let mut stmt = conn.prepare(&sql).expect("prepares");
        let n = stmt.column_count();
        let mut rows = stmt.query([]).expect("queries");
        while let Some(r) = rows.next().expect("row") {
            for i in 0..n {
                match r.get_ref(i).expect("value") {
                    rusqlite::types::ValueRef::Text(t) => out.push_str(&String::from_utf8_lossy(t)),
                    rusqlite::types::ValueRef::Blob(b) => out.extend(b.iter().map(|&c| c as char)),
                    other => out.push_str(&format!("{other:?}")),
                }
                out.push('|');
            }
            out.push('\n');
        }
    }
    out
}

/// A value as its debug form: enough to compare two dumps.
pub(crate) fn debug_value(v: rusqlite::types::ValueRef<'_>) -> String {
    format!("{v:?}")
}

impl Clinic {
    pub(crate) fn new() -> Clinic {
        let tmp = tempfile::tempdir().expect("tempdir");
        let config = VaultConfig {
            dir: tmp.path().join("vault"),
            state_dir: tmp.path().join("state"),
            kdf: KdfPolicy::insecure_fast_for_tests(),
        };
        // A Tuesday, mid-morning.
        let clock = ManualClock::new(
            Utc.with_ymd_and_hms(2026, 3, 3, 10, 0, 0)
                .single()
                .expect("time"),
        );
        let (mut admin, recovery) = Session::create_with_clock(
            config.clone(),
            "admin",
            &pw("admin-password"),
            Arc::new(clock.clone()),
        )
        .expect("creates");
        for (name, role, password) in &STAFF[1..] {
            let family = (*role == Role::Nurse).then_some("Lee");
            admin
                .add_user(name, *role, family, &pw(password))
                .expect("adds");
        }
        admin.lock().expect("locks");
        let clinic = Clinic {
            _tmp: tmp,
            config,
            clock,
            recovery,
        };
        let mut doctor = clinic.as_role(Role::Physician);
        let today = chrono::NaiveDate::from_ymd_opt(2026, 3, 3).expect("date");
        doctor
            .register_patient(
                &NewPatient::new("Lee", "Grace", "1961-07-14", "female", false, today)
                    .expect("valid"),
            )
            .expect("registers");
        doctor
            .register_patient(
                &NewPatient::new("Castellanos", "Mateo", "1979-11-02", "male", true, today)
                    .expect("valid"),
            )
            .expect("registers");
        doctor.lock().expect("locks");
        clinic
    }

    pub(crate) fn unlock(&self, user: &str, password: &str) -> Result<Session, CoreError> {
        Session::unlock_with_clock(
            self.config.clone(),
            user,
            &pw(password),
            Arc::new(self.clock.clone()),
        )
    }

    /// The recovery key's session: every key, administrative rights.
    pub(crate) fn as_recovery(&self) -> Session {
        Session::unlock_with_recovery_key(self.config.clone(), &self.recovery)
            .expect("recovery unlocks")
    }

    pub(crate) fn as_role(&self, role: Role) -> Session {
        let (name, password) = password_of(role);
        self.unlock(name, password).expect("unlocks")
    }

    /// How many alerts of `rule` there are, acknowledged or not (as the auditor sees them).
    pub(crate) fn alert_count(&self, rule: &str) -> usize {
        self.as_role(Role::Auditor)
            .alerts(true)
            .expect("the auditor lists alerts")
            .iter()
            .filter(|a| a.rule == rule)
            .count()
    }

    pub(crate) fn entries(&self, filter: AuditFilter) -> Vec<Record> {
        self.as_role(Role::Auditor)
            .audit_entries(&filter)
            .expect("auditor reads the trail")
    }

    /// The raw database, keyed through the vault alone (no session, so no security-log
    /// check): for looking at a vault whose sign-ins are refused.
    pub(crate) fn raw_unchecked(&self) -> Connection {
        let vault = chartroom_vault::Vault::unlock(
            self.config.clone(),
            chartroom_vault::Credential::Password {
                user: "admin",
                password: &pw("admin-password"),
            },
            crate::schema::MIGRATIONS,
        )
        .expect("the vault opens");
        let key = vault.export_key();
        vault.lock().expect("locks");
        let conn =
            Connection::open(self.config.dir.join(chartroom_vault::DB_FILE_NAME)).expect("opens");
        conn.execute_batch(&format!("PRAGMA key = \"x'{}'\";", key.expose_secret()))
            .expect("keys");
        conn
    }

    pub(crate) fn raw(&self) -> Connection {
        let mut admin = self.as_role(Role::Admin);
        let key = admin.export_key().expect("exports");
        admin.lock().expect("locks");
        let conn =
            Connection::open(self.config.dir.join(chartroom_vault::DB_FILE_NAME)).expect("opens");
        conn.execute_batch(&format!("PRAGMA key = \"x'{}'\";", key.expose_secret()))
            .expect("keys");
        conn
    }
}

/// Whether a result got past the role check.
fn gate<T>(result: Result<T, CoreError>) -> bool {
    !matches!(result, Err(CoreError::Forbidden(Denial::Role { .. })))
}

pub(crate) fn denied_by_role(
    result: Result<impl std::fmt::Debug, CoreError>,
    permission: Permission,
) {
    match result {
        Err(CoreError::Forbidden(Denial::Role { permission: p, .. })) => assert_eq!(p, permission),
        other => panic!("expected a denial for {permission:?}, got {other:?}"),
    }
}

/// The matrix, written out by hand from DESIGN.md's role table, independently of roles.rs.
fn expected(role: Role, p: Permission) -> bool {
    use Permission::*;
    let admin = [
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
    ];
    let physician = [
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
    ];
    let nurse = [
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
    ];
    let front_desk = [
        SearchPatients,
        RegisterPatient,
        ReadDemographics,
        EditDemographics,
        ViewSchedules,
        ViewAppointments,
        BookAppointments,
        CheckInPatients,
    ];
    let auditor = [
        ViewUsers,
        ReadAudit,
        VerifyAudit,
        ManageAlerts,
        ReadDisclosures,
    ];
    match role {
        Role::Admin => admin.contains(&p),
        Role::Physician => physician.contains(&p),
        Role::Nurse => nurse.contains(&p),
        Role::FrontDesk => front_desk.contains(&p),
        Role::Auditor => auditor.contains(&p),
    }
}

#[test]
fn the_cells_that_matter_most() {
    // Written out plainly so a wrong matrix cannot pass by construction.
    assert!(!expected(Role::FrontDesk, Permission::ReadNotes));
    assert!(!expected(Role::FrontDesk, Permission::ReadClinical));
    assert!(!expected(Role::Auditor, Permission::ReadDemographics));
    assert!(!expected(Role::Auditor, Permission::ReadClinical));
    assert!(!expected(Role::Nurse, Permission::SignNote));
    assert!(!expected(Role::Admin, Permission::ReadNotes));
    assert!(!expected(Role::Admin, Permission::ReadClinical));
    assert!(!expected(Role::FrontDesk, Permission::BreakGlass));
    assert!(!expected(Role::Auditor, Permission::BreakGlass));
    assert!(expected(Role::Physician, Permission::SignNote));
    assert!(expected(Role::Auditor, Permission::ReadAudit));

    let clinic = Clinic::new();
    let mut desk = clinic.as_role(Role::FrontDesk);
    denied_by_role(desk.notes(1), Permission::ReadNotes);
    assert_eq!(desk.open_chart(1).expect("demographics").notes, None);
    let mut auditor = clinic.as_role(Role::Auditor);
    denied_by_role(auditor.open_chart(1), Permission::ReadDemographics);
    let mut admin = clinic.as_role(Role::Admin);
    denied_by_role(admin.notes(1), Permission::ReadNotes);
    assert_eq!(admin.open_chart(1).expect("demographics").notes, None);
    let mut nurse = clinic.as_role(Role::Nurse);
    let draft = nurse
        .draft_note(
            1,
            None,
            &NoteContent::free("Subjective: dizzy").expect("valid"),
        )
        .expect("nurse drafts");
    denied_by_role(nurse.sign_note(draft.id), Permission::SignNote);
    let mut doctor = clinic.as_role(Role::Physician);
    let signed = doctor.sign_note(draft.id).expect("physician signs");
    assert_eq!(signed.status, "signed");
    assert_eq!(
        doctor.sign_note(draft.id).expect_err("final").code(),
        "conflict"
    );
}

#[test]
fn every_cell_of_the_matrix_through_the_session() {
    let clinic = Clinic::new();
    let today = chrono::NaiveDate::from_ymd_opt(2026, 3, 3).expect("date");
    for role in Role::ALL {
        let mut s = clinic.as_role(role);
        for p in Permission::ALL {
            assert_eq!(s.can(p), expected(role, p), "{role:?} {p:?}");
        }
        // Then every permission that has an operation today, through the operation. "Passed
        // the gate" means anything but a role denial (breaking the glass into a chart one is
        // already on the care team of is a conflict, not a denial).
        let check = |p: Permission, passed: bool, what: &str| {
            assert_eq!(passed, expected(role, p), "{role:?} {p:?} via {what}");
        };
        let fresh_name = format!("new.{}", role.as_str());
        check(
            Permission::ManageUsers,
            gate(s.add_user(&fresh_name, Role::Nurse, None, &pw("a-long-password"))),
            "add_user",
        );
        check(Permission::ViewUsers, gate(s.users()), "users");
        check(
            Permission::ManageKeys,
            gate(s.replace_recovery_key()),
            "replace_recovery_key",
        );
        check(Permission::ExportKey, gate(s.export_key()), "export_key");
        let backup_dir = clinic
            .config
            .dir
            .with_file_name(format!("backup-{}", role.as_str()));
        check(Permission::Backup, gate(s.backup(&backup_dir)), "backup");
        check(
            Permission::ManageSettings,
            gate(s.set_setting("idle_timeout_minutes", "15")),
            "set_setting",
        );
        check(
            Permission::SearchPatients,
            gate(s.search_patients("lee")),
            "search",
        );
        check(
            Permission::RegisterPatient,
            gate(
                s.register_patient(
                    &NewPatient::new("Novak", "Ivana", "1990-01-01", "female", false, today)
                        .expect("valid"),
                ),
            ),
            "register",
        );
        check(
            Permission::ReadDemographics,
            gate(s.open_chart(1)),
            "open_chart",
        );
        check(
            Permission::ManageCareTeam,
            gate(s.add_to_care_team(1, "nurse.lee")),
            "care team",
        );
        check(Permission::ReadNotes, gate(s.notes(1)), "notes");
        check(Permission::ReadClinical, gate(s.vitals(1)), "vitals");
        check(
            Permission::EditDemographics,
            gate(s.update_patient(
                1,
                &PatientChanges {
                    phone: Some("+1 202 555 0111".into()),
                    ..PatientChanges::default()
                },
            )),
            "update_patient",
        );
        check(
            Permission::RecordEncounter,
            gate(
                s.add_encounter(
                    1,
                    &NewEncounter::new(
                        "office",
                        None,
                        "Review",
                        clinic.clock.now(),
                        &crate::ClinicZone::utc(),
                    )
                    .expect("valid"),
                ),
            ),
            "add_encounter",
        );
        check(
            Permission::RecordVitals,
            gate(s.record_vitals(
                1,
                &VitalsInput {
                    heart_rate: Some(70.0),
                    ..VitalsInput::default()
                },
                None,
                None,
            )),
            "record_vitals",
        );
        check(
            Permission::WriteClinical,
            gate(s.add_problem(
                1,
                &NewProblem::new("Hypertension", None, Some("I10"), None, today).expect("valid"),
            )),
            "add_problem",
        );
        check(
            Permission::RecordImmunizations,
            gate(
                s.add_immunization(
                    1,
                    &NewImmunization::new("Influenza", "141", "2025-10-01", None, None, today)
                        .expect("valid"),
                ),
            ),
            "add_immunization",
        );
        check(
            Permission::RecordResults,
            gate(s.add_lab_result(
                1,
                &crate::ResultInput {
                    loinc: "2345-7".into(),
                    value: "98".into(),
                    ..crate::ResultInput::default()
                },
            )),
            "add_lab_result",
        );
        check(
            Permission::RecordAllergies,
            gate(s.add_allergy(
                1,
                &NewAllergy::new("Latex", Some("Hives"), None, None).expect("valid"),
            )),
            "add_allergy",
        );
        let drafted = s.draft_note(
            1,
            None,
            &NoteContent::free("Plan: review in two weeks").expect("valid"),
        );
        check(Permission::DraftNote, drafted.is_ok(), "draft_note");
        if expected(role, Permission::DraftNote) {
            assert!(drafted.is_ok(), "{role:?} drafts");
        }
        let note_id = match drafted {
            Ok(n) => n.id,
            Err(_) => {
                let mut doctor = clinic.as_role(Role::Physician);
                doctor
                    .draft_note(
                        1,
                        None,
                        &NoteContent::free("Draft for signing").expect("valid"),
                    )
                    .expect("drafts")
                    .id
            }
        };
        check(
            Permission::SignNote,
            gate(s.sign_note(note_id)),
            "sign_note",
        );
        check(
            Permission::BreakGlass,
            gate(s.break_glass(2, "Patient collapsed at reception")),
            "break_glass",
        );
        check(
            Permission::ReadAudit,
            gate(s.audit_entries(&AuditFilter::default())),
            "audit_entries",
        );
        check(Permission::VerifyAudit, gate(s.verify_audit()), "verify");
        check(Permission::ManageAlerts, gate(s.alerts(true)), "alerts");
        // The appointment book: each appointment is booked by the front desk with the
        // session's own clinician (so starting it is "theirs" for a physician or nurse).
        let mine = if role == Role::Nurse {
            "nurse.lee"
        } else {
            "dr.okafor"
        };
        let booked = |hour: u32| {
            let mut desk = clinic.as_role(Role::FrontDesk);
            desk.book_appointment(
                1,
                &Booking {
                    clinician: mine.into(),
                    at: format!("2026-03-04T{hour:02}:00:00Z"),
                    overbook: true,
                    ..Booking::default()
                },
            )
            .expect("the front desk books")
            .id
        };
        check(
            Permission::ManageSchedules,
            gate(s.set_schedule("dr.okafor", "wed", "08:00-12:00,13:00-17:00")),
            "set_schedule",
        );
        check(
            Permission::ViewSchedules,
            gate(s.appointment_types()),
            "appointment_types",
        );
        check(
            Permission::ViewAppointments,
            gate(s.appointments(&AppointmentQuery::default())),
            "appointments",
        );
        check(
            Permission::BookAppointments,
            gate(s.book_appointment(
                1,
                &Booking {
                    clinician: "dr.okafor".into(),
                    at: "2026-03-04T16:00:00Z".into(),
                    overbook: true,
                    ..Booking::default()
                },
            )),
            "book_appointment",
        );
        check(
            Permission::CheckInPatients,
            gate(s.arrive_appointment(booked(9))),
            "arrive",
        );
        check(
            Permission::RoomPatients,
            gate(s.room_appointment(booked(10))),
            "room",
        );
        check(
            Permission::StartAppointments,
            gate(s.start_appointment(booked(11))),
            "start",
        );
        s.lock().expect("locks");
    }
    // Every denial above is in the trail as "denied".
    let denied = clinic.entries(AuditFilter {
        outcome: Some(Outcome::Denied),
        ..AuditFilter::default()
    });
    let cells_denied: usize = Role::ALL
        .iter()
        .map(|r| {
            [
                Permission::ManageUsers,
                Permission::ViewUsers,
                Permission::ManageKeys,
                Permission::ExportKey,
                Permission::Backup,
                Permission::ManageSettings,
                Permission::SearchPatients,
                Permission::RegisterPatient,
                Permission::ReadDemographics,
                Permission::ManageCareTeam,
                Permission::ReadNotes,
                Permission::ReadClinical,
                Permission::EditDemographics,
                Permission::RecordEncounter,
                Permission::RecordVitals,
                Permission::WriteClinical,
                Permission::RecordAllergies,
                Permission::RecordImmunizations,
                Permission::RecordResults,
                Permission::DraftNote,
                Permission::SignNote,
                Permission::BreakGlass,
                Permission::ReadAudit,
                Permission::VerifyAudit,
                Permission::ManageAlerts,
                Permission::ManageSchedules,
                Permission::ViewSchedules,
                Permission::ViewAppointments,
                Permission::BookAppointments,
                Permission::CheckInPatients,
                Permission::RoomPatients,
                Permission::StartAppointments,
            ]
            .iter()
            .filter(|p| !expected(*r, **p))
            .count()
        })
        .sum();
    assert_eq!(denied.len(), cells_denied);
    assert!(
        clinic
            .as_role(Role::Auditor)
            .verify_audit()
            .expect("verifies")
            .ok
    );
}

#[test]
fn denials_and_failed_unlocks_are_in_the_trail() {
    let clinic = Clinic::new();
    assert!(clinic.unlock("nurse.lee", "not-the-password").is_err());
    assert!(clinic.unlock("nobody", "whatever-password").is_err());
    let mut desk = clinic.as_role(Role::FrontDesk);
    assert!(desk.notes(1).is_err());
    desk.lock().expect("locks");

    let failed = clinic.entries(AuditFilter {
        event: Some("session.unlock".into()),
        outcome: Some(Outcome::Failed),
        ..AuditFilter::default()
    });
    let who: Vec<&str> = failed.iter().map(|r| r.entry.actor.as_str()).collect();
    assert_eq!(who[0], "nurse.lee");
    assert!(
        who[1].starts_with("unknown user (") && !who[1].contains("nobody"),
        "a name with no slot is never kept as typed: {who:?}"
    );
    assert!(
        failed[0].entry.actor_id.is_some(),
        "a known user is named by id"
    );

    let denied = clinic.entries(AuditFilter {
        user: Some("desk.ruiz".into()),
        outcome: Some(Outcome::Denied),
        ..AuditFilter::default()
    });
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0].entry.event, "note.read");
    assert_eq!(denied[0].entry.patient_id.as_deref(), Some("1"));
}

#[test]
fn break_the_glass_needs_a_reason_lasts_its_time_box_and_raises_an_alert() {
    let clinic = Clinic::new();
    let mut nurse = clinic.as_role(Role::Nurse);
    match nurse.open_chart(2) {
        Err(CoreError::Forbidden(Denial::Restricted {
            can_break_glass: true,
        })) => {}
        other => panic!("restricted chart opened: {other:?}"),
    }
    assert_eq!(
        nurse.break_glass(2, "   ").expect_err("no reason").code(),
        "invalid_input"
    );
    assert!(
        nurse.open_chart(2).is_err(),
        "a refused glass opens nothing"
    );

    let grant = nurse
        .break_glass(2, "Found unresponsive in the car park")
        .expect("breaks the glass");
    assert_eq!(grant.minutes, 60);
    let chart = nurse.open_chart(2).expect("opens during the time box");
    assert!(matches!(chart.access, ChartAccess::BreakGlass { .. }));
    clinic.clock.advance(chrono::Duration::minutes(9));
    nurse.open_chart(2).expect("still open");
    nurse.lock().expect("locks");

    clinic.clock.advance(chrono::Duration::minutes(52));
    let mut nurse = clinic.as_role(Role::Nurse);
    assert!(
        matches!(nurse.open_chart(2), Err(CoreError::Forbidden(_))),
        "closed again after 60 minutes"
    );
    nurse.lock().expect("locks");

    // Front desk and auditors can never break the glass.
    let mut desk = clinic.as_role(Role::FrontDesk);
    denied_by_role(
        desk.break_glass(2, "Curious about a celebrity"),
        Permission::BreakGlass,
    );
    match desk.open_chart(2) {
        Err(CoreError::Forbidden(Denial::Restricted {
            can_break_glass: false,
        })) => {}
        other => panic!("{other:?}"),
    }
    desk.lock().expect("locks");

    let entries = clinic.entries(AuditFilter {
        event: Some("break_glass".into()),
        ..AuditFilter::default()
    });
    let outcomes: Vec<_> = entries.iter().map(|r| r.entry.outcome).collect();
    assert_eq!(
        outcomes,
        [Outcome::Denied, Outcome::Success, Outcome::Denied]
    );
    let success = &entries[1].entry;
    assert_eq!(success.purpose.as_deref(), Some("ETREAT"));
    assert_eq!(
        success.reason.as_deref(),
        Some("Found unresponsive in the car park")
    );
    // Reads under the grant carry the emergency purpose and the reason too.
    let reads = clinic.entries(AuditFilter {
        event: Some("chart.read".into()),
        patient: Some("2".into()),
        outcome: Some(Outcome::Success),
        ..AuditFilter::default()
    });
    assert_eq!(reads.len(), 2);
    assert!(reads
        .iter()
        .all(|r| r.entry.purpose.as_deref() == Some("ETREAT")));

    let alerts = clinic.as_role(Role::Auditor).alerts(false).expect("lists");
    assert_eq!(
        alerts
            .iter()
            .filter(|a| a.rule == alert_rule::BREAK_GLASS)
            .count(),
        1
    );
}

#[test]
fn the_care_team_opens_a_restricted_chart() {
    let clinic = Clinic::new();
    let mut doctor = clinic.as_role(Role::Physician);
    doctor.add_to_care_team(2, "nurse.lee").expect("adds");
    doctor.lock().expect("locks");
    let mut nurse = clinic.as_role(Role::Nurse);
    let chart = nurse.open_chart(2).expect("care team opens it");
    assert_eq!(chart.access, ChartAccess::CareTeam);
    assert_eq!(chart.care_team, ["dr.okafor", "nurse.lee"]);
}

#[test]
fn an_idle_session_locks_itself_and_says_so_in_the_trail() {
    let clinic = Clinic::new();
    let mut doctor = clinic.as_role(Role::Physician);
    clinic.clock.advance(chrono::Duration::minutes(9));
    doctor
        .open_chart(1)
        .expect("still unlocked after 9 minutes");
    clinic.clock.advance(chrono::Duration::minutes(10));
    assert_eq!(
        doctor.open_chart(1).expect_err("expired").code(),
        "session_expired"
    );
    assert!(!doctor.is_open());
    assert_eq!(
        doctor
            .search_patients("lee")
            .expect_err("stays locked")
            .code(),
        "session_expired"
    );
    drop(doctor);
    let logoffs = clinic.entries(AuditFilter {
        event: Some("session.idle_logoff".into()),
        ..AuditFilter::default()
    });
    assert_eq!(logoffs.len(), 1);
    assert_eq!(logoffs[0].entry.actor, "dr.okafor");

    // The timeout is a setting.
    let mut admin = clinic.as_role(Role::Admin);
    admin
        .set_setting("idle_timeout_minutes", "2")
        .expect("sets");
    admin.lock().expect("locks");
    let mut doctor = clinic.as_role(Role::Physician);
    clinic.clock.advance(chrono::Duration::minutes(3));
    assert!(doctor.expire_if_idle().expect("checks"));
}

#[test]
fn a_write_and_its_audit_entry_commit_together() {
    let clinic = Clinic::new();
    let mut doctor = clinic.as_role(Role::Physician);
    // Make the audit write fail: the patient must not be registered either.
    doctor
        .connection_for_tests()
        .execute_batch(
            "CREATE TEMP TRIGGER fail_audit BEFORE INSERT ON audit_log
             BEGIN SELECT RAISE(ABORT, 'disk trouble'); END;",
        )
        .expect("installs");
    let today = chrono::NaiveDate::from_ymd_opt(2026, 3, 3).expect("date");
    let new =
        NewPatient::new("Quispe", "Rosa", "1988-08-08", "female", false, today).expect("valid");
    assert!(doctor.register_patient(&new).is_err());
    let count: i64 = doctor
        .connection_for_tests()
        .query_row("SELECT count(*) FROM patients", [], |r| r.get(0))
        .expect("counts");
    assert_eq!(count, 2, "no patient without its audit entry");
}

#[test]
fn triggers_refuse_changes_and_removed_triggers_come_back_with_an_alert() {
    let clinic = Clinic::new();
    let conn = clinic.raw();
    for sql in [
        "UPDATE audit_log SET actor = 'x' WHERE seq = 3",
        "DELETE FROM audit_log WHERE seq = 3",
        "UPDATE audit_checkpoints SET seq = seq",
        "DELETE FROM audit_checkpoints",
    ] {
        let err = conn.execute_batch(sql).expect_err("refused");
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    conn.execute_batch("DROP TRIGGER audit_log_no_delete;")
        .expect("an insider with the key can drop it");
    drop(conn);
    let mut auditor = clinic.as_role(Role::Auditor);
    let alerts = auditor.alerts(false).expect("lists");
    assert!(alerts.iter().any(|a| a.rule == alert_rule::AUDIT_TAMPERING));
    drop(auditor);
    let conn = clinic.raw();
    assert!(conn
        .execute_batch("DELETE FROM audit_log WHERE seq = 3")
        .is_err());
}

#[test]
fn verify_names_the_first_bad_sequence_after_raw_tampering() {
    for tamper in ["update", "delete", "insert", "checkpoints"] {
        let clinic = Clinic::new();
        let conn = clinic.raw();
        conn.execute_batch("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;")
            .expect("drops");
        let expected_bad: u64 = match tamper {
            "update" => {
                conn.execute_batch("UPDATE audit_log SET patient_id = '2' WHERE seq = 7")
                    .expect("updates");
                7
            }
            "delete" => {
                conn.execute_batch("DELETE FROM audit_log WHERE seq = 5")
                    .expect("deletes");
                5
            }
            "checkpoints" => {
                // Removing the signed checkpoints is noticed at the first entry that always
                // gets one (the first lock).
                conn.execute_batch(
                    "DROP TRIGGER audit_checkpoints_no_delete; DELETE FROM audit_checkpoints;",
                )
                .expect("deletes");
                conn.query_row(
                    "SELECT min(seq) FROM audit_log WHERE event = 'session.lock'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .expect("a lock") as u64
            }
            _ => {
                // Make room at 6 and forge an entry there, copying its neighbour.
                let max: i64 = conn
                    .query_row("SELECT max(seq) FROM audit_log", [], |r| r.get(0))
                    .expect("max");
                for seq in (6..=max).rev() {
                    conn.execute("UPDATE audit_log SET seq = seq + 1 WHERE seq = ?1", [seq])
                        .expect("shifts");
                }
                conn.execute_batch(
                    "INSERT INTO audit_log SELECT 6, time, actor_id, actor, role, device_id, action,
                        'chart.read', outcome, '1', 'Patient', '1', purpose, reason, detail, prev_hash, hash
                     FROM audit_log WHERE seq = 5",
                )
                .expect("inserts");
                6
            }
        };
        drop(conn);
        let v = clinic
            .as_role(Role::Auditor)
            .verify_audit()
            .expect("verification runs");
        assert!(!v.ok, "{tamper}");
        assert_eq!(v.first_bad_seq, Some(expected_bad), "{tamper}: {v:?}");
    }
}

#[test]
fn each_alert_rule_fires_at_its_threshold_and_not_below() {
    let clinic = Clinic::new();
    let today = chrono::NaiveDate::from_ymd_opt(2026, 3, 3).expect("date");
    let mut doctor = clinic.as_role(Role::Physician);
    for i in 0..30 {
        doctor
            // Synthetic people born the same day, distinct on purpose.
            .register_new_person(
                &NewPatient::new(
                    "Patient",
                    &format!("Number{i}"),
                    "1970-01-01",
                    "unknown",
                    false,
                    today,
                )
                .expect("valid"),
            )
            .expect("registers");
    }
    let count_rule = |rule: &str| clinic.alert_count(rule);
    // Distinct charts: 29 in the window is quiet, the 30th raises one alert.
    for id in 3..32 {
        doctor.open_chart(id).expect("opens");
    }
    doctor.open_chart(3).expect("a repeat is not a new chart");
    assert_eq!(count_rule(alert_rule::CHART_BURST), 0);
    doctor.open_chart(32).expect("opens");
    assert_eq!(count_rule(alert_rule::CHART_BURST), 1);
    doctor.open_chart(1).expect("opens");
    assert_eq!(count_rule(alert_rule::CHART_BURST), 1, "once per window");
    doctor.lock().expect("locks");

    // Failed unlocks: four in a row are quiet, the fifth raises one.
    for _ in 0..4 {
        assert!(clinic.unlock("desk.ruiz", "wrong-password").is_err());
    }
    drop(clinic.as_role(Role::Nurse));
    assert_eq!(count_rule(alert_rule::FAILED_UNLOCKS), 0);
    assert!(clinic.unlock("desk.ruiz", "wrong-password").is_err());
    drop(clinic.as_role(Role::Nurse));
    assert_eq!(count_rule(alert_rule::FAILED_UNLOCKS), 1);

    // Same family name: nurse Lee opening Grace Lee's chart, not Castellanos'.
    clinic.clock.advance(chrono::Duration::minutes(16));
    let mut nurse = clinic.as_role(Role::Nurse);
    nurse.open_chart(3).expect("opens");
    assert_eq!(count_rule(alert_rule::SAME_FAMILY_NAME), 0);
    nurse.open_chart(1).expect("opens");
    assert_eq!(count_rule(alert_rule::SAME_FAMILY_NAME), 1);
    nurse.lock().expect("locks");

    // Outside clinic hours: quiet inside them, one alert outside.
    let mut admin = clinic.as_role(Role::Admin);
    admin
        .set_setting("clinic_hours", "08:00-18:00")
        .expect("sets");
    admin
        .set_setting("clinic_utc_offset", "+00:00")
        .expect("sets");
    admin.lock().expect("locks");
    let mut doctor = clinic.as_role(Role::Physician);
    doctor.open_chart(4).expect("opens at 10:16");
    assert_eq!(count_rule(alert_rule::OUTSIDE_HOURS), 0);
    doctor.lock().expect("locks");
    clinic.clock.set(
        Utc.with_ymd_and_hms(2026, 3, 3, 22, 30, 0)
            .single()
            .expect("time"),
    );
    let mut doctor = clinic.as_role(Role::Physician);
    doctor.open_chart(4).expect("opens at 22:30");
    assert_eq!(count_rule(alert_rule::OUTSIDE_HOURS), 1);
    doctor.lock().expect("locks");

    // Acknowledging needs a note and is audited.
    let mut auditor = clinic.as_role(Role::Auditor);
    let open = auditor.alerts(false).expect("lists");
    let first = open.first().expect("an alert").id;
    assert!(auditor.acknowledge_alert(first, " ").is_err());
    auditor
        .acknowledge_alert(first, "Late clinic for a home visit; expected.")
        .expect("acknowledges");
    assert_eq!(auditor.alerts(false).expect("lists").len(), open.len() - 1);
    auditor.lock().expect("locks");
    assert_eq!(
        clinic
            .entries(AuditFilter {
                event: Some("alert.acknowledge".into()),
                outcome: Some(Outcome::Success),
                ..AuditFilter::default()
            })
            .len(),
        1
    );
}

#[test]
fn searches_record_the_count_never_the_query() {
    let clinic = Clinic::new();
    let mut desk = clinic.as_role(Role::FrontDesk);
    let hits = desk.search_patients("grac").expect("searches");
    assert_eq!(hits.len(), 1);
    assert!(!hits[0].restricted);
    desk.lock().expect("locks");
    let entry = clinic
        .entries(AuditFilter {
            event: Some("patient.search".into()),
            ..AuditFilter::default()
        })
        .pop()
        .expect("audited");
    assert_eq!(entry.entry.detail.as_deref(), Some("1 results"));
    let bytes = String::from_utf8_lossy(&entry.entry.canonical_bytes()).to_lowercase();
    assert!(!bytes.contains("grac"));
}

#[test]
fn the_fhir_export_has_one_audit_event_per_entry() {
    let clinic = Clinic::new();
    let mut auditor = clinic.as_role(Role::Auditor);
    let mut out = Vec::new();
    let n = auditor
        .export_audit_fhir(&AuditFilter::default(), &mut out)
        .expect("exports");
    let lines: Vec<serde_json::Value> = String::from_utf8(out)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines.len() as u64, n);
    assert!(lines.iter().all(|e| e["resourceType"] == "AuditEvent"));
}
