//! Keys decide: what each role's slot holds, what the database key alone shows, and the
//! upgrade of a vault made by the release before field encryption (a fixture it made).

use std::path::{Path, PathBuf};

use secrecy::SecretString;

use crate::gate_tests::Clinic;
use crate::keys::{AUDIT_TEXT, CLINICAL, UPGRADE_STEPS};
use crate::*;

fn pw(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("makes the folder");
    for entry in std::fs::read_dir(from).expect("lists") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copies");
    }
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/vault-before-field-encryption")
}

/// How many values of the sealed columns are still in clear, and how many sealed.
fn clear_and_sealed(conn: &rusqlite::Connection) -> (i64, i64) {
    let (mut clear, mut sealed) = (0, 0);
    for (table, columns) in crate::schema::SEALED_COLUMNS {
        for column in *columns {
            let (c, s): (i64, i64) = conn
                .query_row(
                    &format!(
                        "SELECT count(*) FILTER (WHERE typeof({column}) NOT IN ('blob', 'null')),
                                count(*) FILTER (WHERE typeof({column}) = 'blob') FROM {table}"
                    ),
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .expect("counts");
            clear += c;
            sealed += s;
        }
    }
    (clear, sealed)
}

#[test]
fn only_physicians_nurses_and_the_recovery_key_hold_the_clinical_key() {
    let clinic = Clinic::new();
    let mut admin = clinic.as_role(Role::Admin);
    for user in admin.users().expect("lists") {
        let want: &[&str] = match user.role {
            Role::Physician | Role::Nurse => &["database", "clinical"],
            Role::Admin | Role::Auditor => &["database", "audit_text"],
            Role::FrontDesk => &["database"],
        };
        assert_eq!(user.keys, want, "{}", user.name);
        assert!(user.keys_pending.is_empty());
    }
    drop(admin);
    for role in Role::ALL {
        let session = clinic.as_role(role);
        let holds = crate::keys::lock(&session.keys).holds_clinical();
        assert_eq!(
            holds,
            matches!(role, Role::Physician | Role::Nurse),
            "{role}"
        );
    }
    let recovery = clinic.as_recovery();
    assert!(crate::keys::lock(&recovery.keys).holds_clinical());
}

#[test]
fn the_database_key_alone_shows_no_clinical_word() {
    let clinic = Clinic::new();
    let mut doctor = clinic.as_role(Role::Physician);
    let marker = "Zebracorn-7731";
    let enc = doctor
        .add_encounter(
            1,
            &NewEncounter::new(
                "office",
                None,
                &format!("{marker} reason"),
                clinic.clock.now(),
                &crate::ClinicZone::utc(),
            )
            .expect("valid"),
        )
        .expect("opens");
    doctor
        .draft_note(
            1,
            Some(enc.id),
            &NoteContent::free(&format!("{marker} note")).expect("valid"),
        )
        .expect("drafts");
    doctor
        .add_problem(
            1,
            &NewProblem::new(
                &format!("{marker} problem"),
                None,
                None,
                None,
                chrono::NaiveDate::from_ymd_opt(2026, 3, 3).expect("date"),
            )
            .expect("valid"),
        )
        .expect("adds");
    drop(doctor);
    let raw = clinic.raw();
    let dump = crate::gate_tests::raw_dump(&raw);
    assert!(
        !dump.contains(marker),
        "a clinical word is readable with the database key"
    );
    // The raw connection has no keys: opening a sealed field there is not even possible.
    assert!(raw
        .query_row(
            "SELECT cr_open(reason, 'encounters', 'reason', uuid, uuid) FROM encounters",
            [],
            |r| r.get::<_, String>(0)
        )
        .is_err());
}

#[test]
fn a_new_clinician_waits_for_a_holder_and_a_disabled_one_loses_the_key() {
    let clinic = Clinic::new();
    let mut doctor = clinic.as_role(Role::Physician);
    doctor
        .add_problem(
            1,
            &NewProblem::new(
                "Asthma",
                None,
                None,
                None,
                chrono::NaiveDate::from_ymd_opt(2026, 3, 3).expect("date"),
            )
            .expect("valid"),
        )
        .expect("adds");
    drop(doctor);
    let mut admin = clinic.as_role(Role::Admin);
    let added = admin
        .add_user("nurse.new", Role::Nurse, None, &pw("nurse-password-2"))
        .expect("adds");
    assert_eq!(added.keys, vec!["database"]);
    assert_eq!(added.keys_pending, vec![CLINICAL]);
    drop(admin);
    let mut nurse = clinic
        .unlock("nurse.new", "nurse-password-2")
        .expect("signs in");
    let denied = nurse.problems(1);
    assert!(
        matches!(denied, Err(CoreError::Forbidden(Denial::KeyNotHandedOver))),
        "{denied:?}"
    );
    assert!(matches!(
        nurse.open_chart(1),
        Err(CoreError::Forbidden(Denial::KeyNotHandedOver))
    ));
    // She may still write what her role writes: sealed to the public key.
    nurse
        .add_allergy(
            1,
            &NewAllergy::new("Latex", Some("hives"), None, None).expect("valid"),
        )
        .expect("writes without reading");
    drop(nurse);
    drop(clinic.as_role(Role::Physician));
    let mut nurse = clinic
        .unlock("nurse.new", "nurse-password-2")
        .expect("signs in");
    nurse
        .problems(1)
        .expect("reads once a holder has signed in");
    drop(nurse);
    let grants = clinic.entries(AuditFilter {
        event: Some("key.grant".into()),
        ..Default::default()
    });
    assert!(grants
        .iter()
        .any(|r| r.entry.object_id.as_deref() == Some("nurse.new")));

    let mut admin = clinic.as_role(Role::Admin);
    admin
        .change_role("nurse.new", Role::FrontDesk)
        .expect("changes");
    let users = admin.users().expect("lists");
    let user = users
        .iter()
        .find(|u| u.name.is("nurse.new"))
        .expect("listed");
    assert_eq!(
        user.keys,
        vec!["database"],
        "the role change took the key away"
    );
}

#[test]
fn a_vault_of_the_previous_release_upgrades_and_resumes_after_a_crash() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = VaultConfig {
        dir: tmp.path().join("vault"),
        state_dir: tmp.path().join("state"),
        kdf: KdfPolicy::insecure_fast_for_tests(),
    };
    copy_dir(&fixture().join("vault"), &config.dir);
    let patient: i64 = std::fs::read_to_string(fixture().join("marker-patient"))
        .expect("reads")
        .trim()
        .parse()
        .expect("an id");

    // The first administrator sign-in is cut off after two batches of ten rows.
    UPGRADE_STEPS.with(|s| s.set(Some((10, Some(2)))));
    let admin = Session::unlock(config.clone(), "admin", &pw("admin-password-1")).expect("unlocks");
    let (clear, sealed) = clear_and_sealed(admin.connection_for_tests());
    assert!(
        clear > 0 && sealed > 0,
        "part-way: {clear} clear, {sealed} sealed"
    );
    drop(admin);
    UPGRADE_STEPS.with(|s| s.set(None));

    // Until it is finished, only an administrator (or the recovery key) may go on.
    let refused = Session::unlock(config.clone(), "nurse.ho", &pw("nurse-password-1"));
    assert!(
        matches!(&refused, Err(CoreError::Conflict(m)) if m.contains("administrator must sign in once")),
        "{refused:?}"
    );
    let admin = Session::unlock(config.clone(), "admin", &pw("admin-password-1")).expect("unlocks");
    let (clear, sealed) = clear_and_sealed(admin.connection_for_tests());
    assert_eq!(clear, 0, "every clinical field is sealed");
    assert!(sealed > 100);
    drop(admin);

    let mut doctor =
        Session::unlock(config.clone(), "dr.adeyemi", &pw("doctor-password-1")).expect("unlocks");
    let notes = doctor.notes(patient).expect("reads");
    assert!(notes.iter().any(|n| n.status == "signed"
        && serde_json::to_string(&n.content)
            .expect("json")
            .contains("OLDMARKER-note signed before the upgrade")));
    let vitals = doctor.vitals(patient).expect("reads");
    assert!(vitals.iter().any(|o| o.value == 81.3));
    // A signed note's digest still matches what was signed.
    for n in notes.iter().filter(|n| n.status == "signed") {
        assert_eq!(n.content_sha256.as_deref(), Some(note_digest(n).as_str()));
    }
    drop(doctor);
    let raw = {
        let mut admin =
            Session::unlock(config.clone(), "admin", &pw("admin-password-1")).expect("unlocks");
        let key = admin.export_key().expect("key");
        drop(admin);
        let conn = rusqlite::Connection::open(config.dir.join(chartroom_vault::DB_FILE_NAME))
            .expect("opens");
        use secrecy::ExposeSecret;
        conn.execute_batch(&format!("PRAGMA key = \"x'{}'\";", key.expose_secret()))
            .expect("keys");
        conn
    };
    assert!(!crate::gate_tests::raw_dump(&raw).contains("OLDMARKER"));
}

#[test]
fn disabling_a_user_or_resetting_a_password_rotates_the_database_key() {
    let clinic = Clinic::new();
    let epoch = |c: &Clinic| {
        chartroom_vault::Vault::info(&c.config.dir)
            .expect("info")
            .key_epoch
    };
    let before = epoch(&clinic);
    let old_slots =
        std::fs::read(clinic.config.dir.join(chartroom_vault::SLOT_FILE_NAME)).expect("reads");
    let mut admin = clinic.as_role(Role::Admin);
    admin.disable_user("nurse.lee").expect("disables");
    assert_eq!(epoch(&clinic), before + 1, "the disable rotated the key");
    admin
        .reset_password("desk.ruiz", &pw("a-new-desk-password"))
        .expect("resets");
    assert_eq!(epoch(&clinic), before + 2, "the reset rotated the key");
    drop(admin);
    // The trail says why.
    let rekeys = clinic.entries(AuditFilter {
        event: Some("vault.rekey".into()),
        ..Default::default()
    });
    assert!(rekeys.iter().any(|r| r
        .entry
        .detail
        .as_deref()
        .is_some_and(|d| d.contains("disabled"))));
    // The old slot file, with the disabled nurse's old password, opens nothing current.
    std::fs::write(
        clinic.config.dir.join(chartroom_vault::SLOT_FILE_NAME),
        old_slots,
    )
    .expect("puts the old copy back");
    let (name, password) = crate::gate_tests::password_of(Role::Nurse);
    let refused = Session::unlock(clinic.config.clone(), name, &pw(password));
    assert!(
        matches!(
            refused,
            Err(CoreError::Vault(VaultError::KeyDoesNotOpenDatabase))
        ),
        "{refused:?}"
    );
}

#[test]
fn the_trails_words_are_sealed_to_auditors_and_administrators_and_rotate_when_trust_ends() {
    let clinic = Clinic::new();
    let reason = "Found in the car park, MRK-btg-Vk";
    let mut nurse = clinic.as_role(Role::Nurse);
    let grant = nurse.break_glass(2, reason).expect("breaks the glass");
    assert_eq!(grant.reason, reason, "the nurse is shown her own words");
    let chart = nurse.open_chart(2).expect("opens");
    assert_eq!(
        chart.access,
        ChartAccess::BreakGlass {
            reason: reason.into(),
            expires_at: grant.expires_at.clone()
        },
        "and sees them on the banner while this session lasts"
    );
    nurse.lock().expect("locks");
    // Signed in again, she holds no key that opens them.
    let mut nurse = clinic.as_role(Role::Nurse);
    match nurse.open_chart(2).expect("opens").access {
        ChartAccess::BreakGlass { reason: shown, .. } => {
            assert_eq!(shown, "the reason you gave, kept sealed for the auditor")
        }
        other => panic!("{other:?}"),
    }
    nurse.lock().expect("locks");

    // The database key shows none of it; the grant, the entries and the alert hold it sealed.
    let raw = clinic.raw();
    let dump = crate::gate_tests::raw_dump(&raw);
    assert!(
        !dump.contains("MRK-btg-Vk"),
        "the reason is readable with the database key"
    );
    let sealed: String = raw
        .query_row("SELECT reason FROM access_grants", [], |r| r.get(0))
        .expect("a grant");
    assert!(sealed.starts_with(crate::audit_text::PREFIX));
    drop(raw);

    // The auditor and the administrator read it; the chain still verifies.
    let entries = clinic.entries(AuditFilter {
        event: Some("break_glass".into()),
        outcome: Some(Outcome::Success),
        ..AuditFilter::default()
    });
    assert_eq!(entries[0].entry.reason.as_deref(), Some(reason));
    let mut admin = clinic.as_role(Role::Admin);
    let alerts = admin.alerts(true).expect("lists");
    assert!(alerts
        .iter()
        .any(|a| a.rule == alert_rule::BREAK_GLASS && a.summary.contains(reason)));
    assert!(admin.verify_audit().expect("verifies").ok);

    // The auditor is disabled: the administrator rotates the key there and then; what is
    // written afterwards is sealed to the new epoch, and the old words still open.
    admin.disable_user("audit.kim").expect("disables");
    let (epoch, _) = admin
        .vault()
        .expect("open")
        .compartment_public(AUDIT_TEXT)
        .expect("an audit text key");
    assert_eq!(epoch, 1);
    admin.lock().expect("locks");
    clinic.clock.advance(chrono::Duration::minutes(61));
    let mut nurse = clinic.as_role(Role::Nurse);
    nurse
        .break_glass(2, "Second time, MRK-after-Vk")
        .expect("breaks the glass again");
    nurse.lock().expect("locks");
    let raw = clinic.raw();
    let newest: String = raw
        .query_row(
            "SELECT reason FROM access_grants ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("a grant");
    assert!(newest.starts_with("sealed:v1:1:"), "{newest}");
    drop(raw);
    let mut admin = clinic.as_role(Role::Admin);
    let summaries: Vec<String> = admin
        .alerts(true)
        .expect("lists")
        .into_iter()
        .filter(|a| a.rule == alert_rule::BREAK_GLASS)
        .map(|a| a.summary)
        .collect();
    assert!(summaries.iter().any(|s| s.contains("MRK-after-Vk")));
    assert!(
        summaries.iter().any(|s| s.contains(reason)),
        "the earlier epoch opens through the retired key"
    );
    admin.lock().expect("locks");
}

#[test]
fn reasons_purposes_and_recipients_an_earlier_version_left_in_clear_are_sealed_at_sign_in() {
    let clinic = Clinic::new();
    // What the release before wrote: the words in clear in a grant, the accounting and an alert.
    let raw = clinic.raw();
    raw.execute_batch(
        "INSERT INTO access_grants (user_id, patient_id, reason, granted_at, expires_at, audit_seq)
           VALUES (3, 2, 'OLDREASON-Vk chest pain', '2026-03-03T09:00:00Z', '2026-03-03T10:00:00Z', 1);
         INSERT INTO disclosures (time, actor, role, recipient, keys, purpose, format, patients,
                                  resources, left_out, bytes, sha256)
           VALUES ('2026-03-03T09:00:00Z', 'dr.osei', 'physician', 'OLDRECIPIENT-Vk', '[]',
                   'OLDPURPOSE-Vk', 'bundle', 1, '{}', 0, 10, 'ab');
         INSERT INTO disclosure_patients (disclosure_id, patient_id, resources)
           VALUES (last_insert_rowid(), 1, '{}');
         INSERT INTO alerts (rule, time, actor, patient_id, summary, audit_seq)
           VALUES ('break_glass', '2026-03-03T09:00:00Z', 'nurse.lee', '2',
                   'nurse.lee broke the glass into restricted patient 2: \"OLDREASON-Vk chest pain\"', 1);",
    )
    .expect("writes as the old release did");
    drop(raw);
    // Any sign-in that may seal (here a physician's) seals them; the trigger is back.
    clinic.as_role(Role::Physician).lock().expect("locks");
    let raw = clinic.raw();
    let dump = crate::gate_tests::raw_dump(&raw);
    assert!(
        !dump.contains("OLDREASON")
            && !dump.contains("OLDRECIPIENT")
            && !dump.contains("OLDPURPOSE")
    );
    assert!(
        raw.execute("UPDATE disclosures SET purpose = 'x'", [])
            .is_err(),
        "the accounting is append-only again"
    );
    drop(raw);
    let mut auditor = clinic.as_role(Role::Auditor);
    let alert = auditor
        .alerts(true)
        .expect("lists")
        .into_iter()
        .find(|a| a.rule == alert_rule::BREAK_GLASS)
        .expect("the old alert");
    assert_eq!(
        alert.summary,
        "nurse.lee broke the glass into restricted patient 2: \"OLDREASON-Vk chest pain\""
    );
    let accounting = auditor.disclosures(1).expect("reads");
    assert_eq!(accounting[0].purpose, "OLDPURPOSE-Vk");
    assert_eq!(accounting[0].recipient, "OLDRECIPIENT-Vk");
    auditor.lock().expect("locks");
}

/// The names a search shows for `query`, masked ones as "Restricted patient".
fn found(session: &mut Session, query: &str) -> Vec<String> {
    session
        .search_patients(query)
        .expect("searches")
        .into_iter()
        .map(|h| h.family)
        .collect()
}

#[test]
fn a_restricted_chart_is_sealed_to_a_key_of_its_own_that_follows_its_care_team() {
    let clinic = Clinic::new();
    // Patient 2, Castellanos, restricted, registered by the physician: nothing of who they
    // are is in the database in clear, not even in the name index.
    let raw = clinic.raw();
    let dump = crate::gate_tests::raw_dump(&raw);
    assert!(!dump.contains("Castellanos") && !dump.contains("1979-11-02"));
    assert!(
        !dump.contains("castellanos"),
        "the name index holds no word of it"
    );
    let holders: Vec<String> = raw
        .prepare("SELECT holder FROM patient_keys WHERE patient_id = 2 ORDER BY holder")
        .expect("prepares")
        .query_map([], |r| r.get(0))
        .expect("queries")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(holders, ["clinical:0", "recovery", "user:dr.okafor"]);
    drop(raw);

    // The team finds them by name; the chart and its history open.
    let mut doctor = clinic.as_role(Role::Physician);
    assert_eq!(
        found(&mut doctor, "Castelanos"),
        ["Castellanos"],
        "a typo too"
    );
    assert_eq!(found(&mut doctor, "1979-11-02"), ["Castellanos"]);
    let chart = doctor.open_chart(2).expect("opens");
    assert_eq!(chart.patient.demographics.given, "Mateo");
    assert_eq!(
        doctor.patient_history(2).expect("history")[0]
            .demographics
            .family,
        "Castellanos"
    );
    doctor.add_to_care_team(2, "desk.ruiz").expect("adds");
    doctor.lock().expect("locks");
    // The front desk joins: their own slot now opens the chart's key.
    let mut desk = clinic.as_role(Role::FrontDesk);
    assert_eq!(found(&mut desk, "castellanos"), ["Castellanos"]);
    desk.lock().expect("locks");

    // Outside the team: only the exact MRN finds it, masked, until the glass is broken.
    let mut nurse = clinic.as_role(Role::Nurse);
    assert!(found(&mut nurse, "Castellanos").is_empty());
    assert!(found(&mut nurse, "1979-11-02").is_empty());
    let mrn = {
        let raw = clinic.raw();
        raw.query_row("SELECT mrn FROM patients WHERE id = 2", [], |r| {
            r.get::<_, String>(0)
        })
        .expect("mrn")
    };
    assert_eq!(found(&mut nurse, &mrn), ["Restricted patient"]);
    nurse
        .break_glass(2, "Collapsed in the lobby")
        .expect("breaks the glass");
    assert_eq!(found(&mut nurse, "Castellanos"), ["Castellanos"]);
    nurse.lock().expect("locks");

    // The front desk leaves the team: a new key, the chart sealed anew; the old key's seal to
    // the front desk opens nothing current.
    let mut doctor = clinic.as_role(Role::Physician);
    doctor
        .remove_from_care_team(2, "desk.ruiz")
        .expect("removes");
    doctor.lock().expect("locks");
    let raw = clinic.raw();
    let (epoch, desk_epochs): (i64, Option<String>) = raw
        .query_row(
            "SELECT max(epoch), (SELECT group_concat(epoch) FROM patient_keys
                                  WHERE patient_id = 2 AND holder = 'user:desk.ruiz')
               FROM patient_keys WHERE patient_id = 2",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("epochs");
    assert_eq!(
        (epoch, desk_epochs),
        (1, None),
        "a new key, and the old one's seals gone"
    );
    let sealed: String = raw
        .query_row("SELECT sealed FROM patients WHERE id = 2", [], |r| r.get(0))
        .expect("sealed");
    assert!(sealed.starts_with("psealed:v1:1:"), "{sealed}");
    drop(raw);
    let mut desk = clinic.as_role(Role::FrontDesk);
    assert!(found(&mut desk, "Castellanos").is_empty());
    desk.lock().expect("locks");

    // Lifting the restriction puts the chart, its history and its words back in clear.
    let mut doctor = clinic.as_role(Role::Physician);
    doctor
        .update_patient(
            2,
            &PatientChanges {
                restricted: Some(false),
                ..Default::default()
            },
        )
        .expect("lifts");
    doctor.lock().expect("locks");
    let mut desk = clinic.as_role(Role::FrontDesk);
    assert_eq!(found(&mut desk, "Castellanos"), ["Castellanos"]);
    let history = desk.patient_history(2).expect("history");
    assert!(history
        .iter()
        .all(|v| v.demographics.family == "Castellanos"));
    desk.lock().expect("locks");
    let raw = clinic.raw();
    assert!(!crate::gate_tests::raw_dump(&raw).contains("psealed:"));
}

#[test]
fn restricted_charts_an_earlier_version_kept_in_clear_are_sealed_at_the_next_sign_in() {
    let clinic = Clinic::new();
    // What the release before wrote: a restricted chart in clear, with no key of its own.
    let raw = clinic.raw();
    raw.execute_batch(
        "DELETE FROM patient_keys;
         UPDATE patients SET family = 'Castellanos', given = 'Mateo', birth_date = '1979-11-02',
                             sealed = NULL WHERE id = 2;
         INSERT INTO patient_name_words (word, patient_id, field) VALUES ('castellanos', 2, 0);",
    )
    .expect("writes as the old release did");
    drop(raw);
    // The front desk may not sign a chart's key into the security log: its sign-in leaves
    // the chart for the next administrator's, physician's or nurse's, which seals it.
    clinic.as_role(Role::FrontDesk).lock().expect("locks");
    clinic.as_role(Role::Nurse).lock().expect("locks");
    let raw = clinic.raw_unchecked();
    let dump = crate::gate_tests::raw_dump(&raw);
    assert!(!dump.contains("Castellanos") && !dump.contains("castellanos"));
    drop(raw);
    let mut doctor = clinic.as_role(Role::Physician);
    assert_eq!(found(&mut doctor, "Castellanos"), ["Castellanos"]);
    doctor.lock().expect("locks");
}

#[test]
fn a_rotation_of_the_clinical_key_gives_every_restricted_chart_a_new_key() {
    let clinic = Clinic::new();
    let mut admin = clinic.as_role(Role::Admin);
    admin.disable_user("nurse.lee").expect("disables");
    admin.lock().expect("locks");
    // The physician's sign-in rotates the clinical key, and with it the chart's key.
    let mut doctor = clinic.as_role(Role::Physician);
    assert_eq!(
        doctor
            .open_chart(2)
            .expect("opens")
            .patient
            .demographics
            .family,
        "Castellanos"
    );
    doctor.lock().expect("locks");
    let raw = clinic.raw();
    let holders: Vec<String> = raw
        .prepare("SELECT epoch || ' ' || holder FROM patient_keys WHERE patient_id = 2 ORDER BY 1")
        .expect("prepares")
        .query_map([], |r| r.get(0))
        .expect("queries")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(holders, ["1 clinical:1", "1 recovery", "1 user:dr.okafor"]);
    let sealed: String = raw
        .query_row("SELECT sealed FROM patients WHERE id = 2", [], |r| r.get(0))
        .expect("sealed");
    assert!(sealed.starts_with("psealed:v1:1:"));
}

#[test]
fn a_member_whose_password_was_reset_is_sealed_in_again_by_the_next_clinician() {
    let clinic = Clinic::new();
    let mut doctor = clinic.as_role(Role::Physician);
    doctor.add_to_care_team(2, "desk.ruiz").expect("adds");
    doctor.lock().expect("locks");
    let mut admin = clinic.as_role(Role::Admin);
    admin
        .reset_password("desk.ruiz", &pw("a-brand-new-password"))
        .expect("resets");
    admin.lock().expect("locks");
    // Her new slot opens nothing of the chart yet; the physician's next sign-in seals it in.
    let mut desk = clinic
        .unlock("desk.ruiz", "a-brand-new-password")
        .expect("unlocks");
    assert!(found(&mut desk, "Castellanos").is_empty());
    desk.lock().expect("locks");
    clinic.as_role(Role::Physician).lock().expect("locks");
    let mut desk = clinic
        .unlock("desk.ruiz", "a-brand-new-password")
        .expect("unlocks");
    assert_eq!(found(&mut desk, "Castellanos"), ["Castellanos"]);
}

#[test]
fn the_front_desk_registers_a_restricted_chart_and_is_its_first_member() {
    let clinic = Clinic::new();
    let mut desk = clinic.as_role(Role::FrontDesk);
    let today = chrono::NaiveDate::from_ymd_opt(2026, 3, 3).expect("date");
    let secret = desk
        .register_patient(
            &NewPatient::new("Quillfeather", "Sam", "1970-01-01", "male", true, today)
                .expect("valid"),
        )
        .expect("the front desk registers a restricted chart");
    assert_eq!(secret.demographics.family, "Quillfeather");
    assert_eq!(found(&mut desk, "Quillfeather"), ["Quillfeather"]);
    desk.lock().expect("locks");
    let mut admin = clinic.as_role(Role::Admin);
    assert!(
        admin.verify_vault().expect("verifies").ok,
        "the log allows each entry"
    );
    admin.lock().expect("locks");
    let raw = clinic.raw();
    assert!(!crate::gate_tests::raw_dump(&raw).contains("Quillfeather"));
}

#[test]
fn a_disabled_user_enabled_again_signs_in_with_the_new_password_and_gets_their_keys_back() {
    let clinic = Clinic::new();
    let mut admin = clinic.as_role(Role::Admin);
    admin.disable_user("nurse.lee").expect("disables");
    assert_eq!(
        admin
            .enable_user("nurse.lee", &pw("short"))
            .expect_err("a weak password")
            .code(),
        "invalid_input"
    );
    admin
        .enable_user("nurse.lee", &pw("a-new-nurse-password"))
        .expect("enables");
    assert_eq!(
        admin
            .enable_user("nurse.lee", &pw("a-new-nurse-password"))
            .expect_err("twice")
            .code(),
        "conflict"
    );
    assert!(admin
        .users()
        .expect("lists")
        .iter()
        .any(|u| u.name.as_str() == "nurse.lee" && !u.disabled));
    admin.lock().expect("locks");
    // The old password opens nothing; the new one opens the vault and, once a clinician
    // has handed the keys over, the charts.
    assert_eq!(
        clinic
            .unlock("nurse.lee", "nurse-password")
            .expect_err("the old password")
            .code(),
        "auth_failed"
    );
    let mut doctor = clinic.as_role(Role::Physician);
    doctor.open_chart(1).expect("opens");
    doctor.lock().expect("locks");
    let mut nurse = clinic
        .unlock("nurse.lee", "a-new-nurse-password")
        .expect("the new password");
    assert_eq!(nurse.signed_in().role, Role::Nurse);
    nurse.open_chart(1).expect("the clinical key is hers again");
    nurse.lock().expect("locks");
    let enabled = clinic.entries(AuditFilter {
        event: Some("user.enable".into()),
        ..Default::default()
    });
    assert_eq!(enabled.len(), 1, "the enabling, in the trail");
}
