//! Keys decide: what each role's slot holds, what the database key alone shows, and the
//! upgrade of a vault made by the release before field encryption (a fixture it made).

use std::path::{Path, PathBuf};

use secrecy::SecretString;

use crate::gate_tests::Clinic;
use crate::keys::{CLINICAL, UPGRADE_STEPS};
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
            _ => &["database"],
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
