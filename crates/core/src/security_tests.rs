//! The security log, tried as an insider would: with the database key (every signed-in
//! user has it) and the vault's files, changing who may do what outside Chartroom.

use std::path::Path;

use crate::alerts::rule;
use crate::gate_tests::{pw, Clinic};
use crate::security_log::{verify, Fact};
use crate::*;

fn tampering_alerts(clinic: &Clinic) -> Vec<String> {
    let mut admin = clinic.as_role(Role::Admin);
    let alerts = admin.alerts(true).expect("lists alerts");
    admin.lock().expect("locks");
    alerts
        .into_iter()
        .filter(|a| a.rule == rule::SECURITY_TAMPERING)
        .map(|a| a.summary)
        .collect()
}

fn facts(conn: &rusqlite::Connection) -> Vec<Fact> {
    let mut stmt = conn
        .prepare("SELECT entry FROM security_log ORDER BY seq")
        .expect("reads");
    let rows = stmt.query_map([], |r| r.get::<_, String>(0)).expect("rows");
    rows.map(|t| {
        serde_json::from_str::<crate::security_log::Entry>(&t.expect("text"))
            .expect("parses")
            .fact
    })
    .collect()
}

fn without_triggers(conn: &rusqlite::Connection) {
    conn.execute_batch(
        "DROP TRIGGER IF EXISTS security_log_no_update; DROP TRIGGER IF EXISTS security_log_no_delete;",
    )
    .expect("drops");
}

#[test]
fn the_log_states_users_keys_and_restricted_care_teams_and_verifies() {
    let clinic = Clinic::new();
    let raw = clinic.raw();
    let state = verify(&raw, None).expect("verifies");
    assert!(state.root.is_some());
    for (name, role) in [
        ("admin", Role::Admin),
        ("dr.okafor", Role::Physician),
        ("nurse.lee", Role::Nurse),
        ("desk.ruiz", Role::FrontDesk),
        ("audit.kim", Role::Auditor),
    ] {
        let u = state.user(name).expect("registered");
        assert_eq!(u.role, role);
        assert!(u.enabled && u.slot_key.is_some() && u.signing_key.is_some());
    }
    assert!(state.recovery.is_some());
    assert!(state.compartments.contains_key("clinical"));
    // Mateo Castellanos is restricted; his team is the physician who registered him.
    assert_eq!(state.restricted.len(), 1);
    let team = state.restricted.values().next().expect("one");
    assert_eq!(team.iter().collect::<Vec<_>>(), ["dr.okafor"]);
    let f = facts(&raw);
    assert!(matches!(f[0], Fact::Root { .. }));
    assert!(f
        .iter()
        .any(|f| matches!(f, Fact::CareTeam { user, member: true, .. } if user == "dr.okafor")));
    // The first administrator's signing key is the root, and both slots name it.
    let slots: serde_json::Value = serde_json::from_slice(
        &std::fs::read(clinic.config.dir.join("keyslots.json")).expect("reads"),
    )
    .expect("json");
    for slot in slots["slots"].as_array().expect("slots") {
        if slot["owner"] == "admin" || slot["kind"] == "recovery" {
            assert_eq!(slot["root"].as_str(), state.root.as_deref());
        }
    }
}

#[test]
fn a_role_written_into_the_users_table_has_no_effect_and_is_undone() {
    let clinic = Clinic::new();
    let raw = clinic.raw();
    raw.execute(
        "UPDATE users SET role = 'admin' WHERE name = 'desk.ruiz'",
        [],
    )
    .expect("edits");
    drop(raw);
    let desk = clinic
        .unlock("desk.ruiz", "frontdesk-password")
        .expect("signs in");
    assert_eq!(
        desk.signed_in().role,
        Role::FrontDesk,
        "signs in as what the log says"
    );
    drop(desk);
    let raw = clinic.raw();
    let role: String = raw
        .query_row("SELECT role FROM users WHERE name = 'desk.ruiz'", [], |r| {
            r.get(0)
        })
        .expect("reads");
    assert_eq!(role, "front_desk");
    let alerts = tampering_alerts(&clinic);
    assert!(
        alerts
            .iter()
            .any(|a| a.contains("desk.ruiz's role was set back from admin to front_desk")),
        "{alerts:?}"
    );
}

#[test]
fn a_user_inserted_into_the_table_signs_in_as_no_one() {
    let clinic = Clinic::new();
    let raw = clinic.raw();
    raw.execute(
        "INSERT INTO users (name, role, created_at) VALUES ('mallory', 'admin', '2026-03-03T10:00:00Z')",
        [],
    )
    .expect("inserts");
    drop(raw);
    let mut admin = clinic.as_role(Role::Admin);
    let users = admin.users().expect("lists");
    assert!(users
        .iter()
        .any(|u| u.name.as_str() == "mallory" && u.disabled));
    drop(admin);
    assert!(tampering_alerts(&clinic)
        .iter()
        .any(|a| a.contains("mallory, added outside Chartroom, was disabled")));
}

/// A slot for the physician under a password the insider chose, made in a copy of the vault
/// (where the insider can do anything) and swapped into the real slot file.
fn swap_in_forged_slot(clinic: &Clinic, owner: &str, password: &str) {
    let workshop = tempfile::tempdir().expect("tempdir");
    let copy = workshop.path().join("copy");
    let mut admin = clinic.as_role(Role::Admin);
    admin.backup(&copy).expect("backs up");
    admin.lock().expect("locks");
    let config = VaultConfig {
        dir: copy.clone(),
        state_dir: workshop.path().join("state"),
        kdf: chartroom_vault::KdfPolicy::insecure_fast_for_tests(),
    };
    // The slot format is documented; the vault library writes it as well as any script.
    let mut copy_vault = chartroom_vault::Vault::unlock(
        config,
        chartroom_vault::Credential::Password {
            user: "admin",
            password: &pw("admin-password"),
        },
        crate::schema::MIGRATIONS,
    )
    .expect("the copy opens");
    copy_vault
        .set_user_slot(owner, &pw(password))
        .expect("a slot under the insider's password");
    copy_vault.lock().expect("locks");
    let forged = read_slots(&copy);
    let mut real = read_slots(&clinic.config.dir);
    let slot = forged["slots"]
        .as_array()
        .expect("slots")
        .iter()
        .find(|s| s["owner"] == owner)
        .expect("forged slot")
        .clone();
    for s in real["slots"].as_array_mut().expect("slots") {
        if s["owner"] == owner {
            *s = slot.clone();
        }
    }
    std::fs::write(
        clinic.config.dir.join("keyslots.json"),
        serde_json::to_vec_pretty(&real).expect("json"),
    )
    .expect("writes");
}

fn read_slots(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("keyslots.json")).expect("reads")).expect("json")
}

#[test]
fn a_slot_swapped_into_the_slot_file_is_refused_and_then_removed() {
    let clinic = Clinic::new();
    swap_in_forged_slot(&clinic, "dr.okafor", "chosen-by-insider");
    let err = clinic
        .unlock("dr.okafor", "chosen-by-insider")
        .expect_err("the forged slot is refused");
    assert!(matches!(err, CoreError::Integrity(_)), "{err:?}");
    assert!(err
        .to_string()
        .contains("not the one the clinic's security log registered"));
    // A colleague's sign-in takes it out of the slot file; no key was handed to it.
    let nurse = clinic.as_role(Role::Nurse);
    drop(nurse);
    let slots = read_slots(&clinic.config.dir);
    assert!(!slots["slots"]
        .as_array()
        .expect("slots")
        .iter()
        .any(|s| s["owner"] == "dr.okafor"));
    let alerts = tampering_alerts(&clinic);
    assert!(
        alerts
            .iter()
            .any(|a| a
                .contains("a key slot for dr.okafor that the log does not register was removed")),
        "{alerts:?}"
    );
    // An administrator's reset gives the physician a registered slot again.
    let mut admin = clinic.as_role(Role::Admin);
    admin
        .reset_password("dr.okafor", &pw("a-new-password"))
        .expect("resets");
    drop(admin);
    clinic
        .unlock("dr.okafor", "a-new-password")
        .expect("signs in again");
}

#[test]
fn a_care_team_row_added_outside_chartroom_is_taken_off() {
    let clinic = Clinic::new();
    let raw = clinic.raw();
    raw.execute(
        "INSERT INTO care_team (patient_id, user_id, added_at, added_by)
         SELECT p.id, u.id, '2026-03-03T10:00:00Z', 'x' FROM patients p, users u
          WHERE p.restricted = 1 AND u.name = 'nurse.lee'",
        [],
    )
    .expect("inserts");
    drop(raw);
    let nurse = clinic.as_role(Role::Nurse);
    drop(nurse);
    let raw = clinic.raw();
    let n: i64 = raw
        .query_row(
            "SELECT count(*) FROM care_team c JOIN users u ON u.id = c.user_id WHERE u.name = 'nurse.lee'",
            [],
            |r| r.get(0),
        )
        .expect("counts");
    assert_eq!(n, 0);
    assert!(tampering_alerts(&clinic)
        .iter()
        .any(|a| a.contains("nurse.lee, put on the care team of MRN")));
}

#[test]
fn a_chart_opened_outside_chartroom_is_restricted_again() {
    let clinic = Clinic::new();
    let raw = clinic.raw();
    raw.execute("UPDATE patients SET restricted = 0", [])
        .expect("edits");
    drop(raw);
    drop(clinic.as_role(Role::FrontDesk));
    let raw = clinic.raw();
    let n: i64 = raw
        .query_row(
            "SELECT count(*) FROM patients WHERE restricted = 1",
            [],
            |r| r.get(0),
        )
        .expect("counts");
    assert_eq!(n, 1);
}

#[test]
fn a_changed_or_removed_log_entry_refuses_every_sign_in_and_says_which() {
    for edit in [
        // A role changed inside a signed entry.
        "UPDATE security_log SET entry = replace(entry, '\"front_desk\"', '\"admin\"') WHERE entry LIKE '%desk.ruiz%'",
        // An entry in the middle removed.
        "DELETE FROM security_log WHERE seq = 3",
        // The whole log removed.
        "DELETE FROM security_log",
    ] {
        let clinic = Clinic::new();
        let raw = clinic.raw();
        without_triggers(&raw);
        raw.execute(edit, []).expect("edits");
        drop(raw);
        for role in [Role::FrontDesk, Role::Admin, Role::Physician] {
            let (name, password) = crate::gate_tests::password_of(role);
            let err = clinic.unlock(name, password).expect_err("refused");
            assert!(matches!(err, CoreError::Integrity(_)), "{edit}: {err:?}");
            assert!(err.to_string().contains("security log"), "{err}");
        }
        // The refusal is in the trail, with its alert, for whoever restores the vault.
        let raw = clinic.raw_unchecked();
        let broken: i64 = raw
            .query_row(
                "SELECT count(*) FROM alerts WHERE rule = 'security_tampering'",
                [],
                |r| r.get(0),
            )
            .expect("counts");
        assert!(broken >= 3, "{edit}");
    }
}

#[test]
fn a_replaced_log_with_a_root_of_the_insiders_own_is_refused() {
    // The insider makes a whole new vault (their own root) and copies its log over.
    let clinic = Clinic::new();
    let other = Clinic::new();
    let theirs = other.raw();
    type LogRow = (i64, String, String, String, Vec<u8>, Vec<u8>);
    let rows: Vec<LogRow> = {
        let mut stmt = theirs
            .prepare("SELECT seq, kind, subject, entry, signature, hash FROM security_log")
            .expect("reads");
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .expect("rows");
        rows.map(|r| r.expect("row")).collect()
    };
    let raw = clinic.raw();
    without_triggers(&raw);
    raw.execute("DELETE FROM security_log", [])
        .expect("empties");
    for row in rows {
        raw.execute(
            "INSERT INTO security_log VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            rusqlite::params![row.0, row.1, row.2, row.3, row.4, row.5],
        )
        .expect("copies");
    }
    drop(raw);
    let err = clinic
        .unlock("admin", "admin-password")
        .expect_err("refused");
    assert!(err.to_string().contains("root key"), "{err}");
}

#[test]
fn honest_changes_keep_the_log_verifying() {
    let clinic = Clinic::new();
    let mut admin = clinic.as_role(Role::Admin);
    admin
        .add_user("dr.new", Role::Physician, None, &pw("new-physician-pw"))
        .expect("adds");
    admin
        .change_role("dr.new", Role::Nurse)
        .expect("changes role");
    admin
        .reset_password("nurse.lee", &pw("nurse-new-password"))
        .expect("resets");
    admin.disable_user("audit.kim").expect("disables");
    admin.replace_recovery_key().expect("replaces");
    drop(admin);
    let mut me = clinic
        .unlock("dr.new", "new-physician-pw")
        .expect("signs in");
    me.change_own_password(&pw("my-own-new-password"))
        .expect("changes");
    drop(me);
    let mut doctor = clinic.as_role(Role::Physician);
    let found = doctor.search_patients("Castellanos").expect("searches");
    let id = found.first().expect("found").id;
    doctor.add_to_care_team(id, "nurse.lee").expect("adds");
    doctor
        .remove_from_care_team(id, "nurse.lee")
        .expect("removes");
    drop(doctor);
    let raw = clinic.raw();
    let state = verify(&raw, None).expect("verifies");
    assert_eq!(state.user("dr.new").expect("known").role, Role::Nurse);
    assert!(!state.user("audit.kim").expect("known").enabled);
    let alarms = tampering_alerts(&clinic);
    assert!(alarms.is_empty(), "no false alarm: {alarms:?}");
    clinic
        .unlock("dr.new", "my-own-new-password")
        .expect("the new password opens");
}

#[test]
fn entries_cut_from_the_end_are_noticed_by_whoever_saw_them() {
    let clinic = Clinic::new();
    let mut admin = clinic.as_role(Role::Admin);
    admin.disable_user("audit.kim").expect("disables");
    drop(admin);
    // The physician signs in after the disable: their slot remembers the log's head.
    drop(clinic.as_role(Role::Physician));
    // The insider cuts the disable off the end of the log (and the table follows).
    let raw = clinic.raw();
    without_triggers(&raw);
    raw.execute(
        "DELETE FROM security_log WHERE seq = (SELECT max(seq) FROM security_log)",
        [],
    )
    .expect("cuts");
    drop(raw);
    let err = clinic
        .unlock("dr.okafor", "physician-password")
        .expect_err("refused");
    assert!(
        err.to_string().contains("removed from the end of the log"),
        "{err}"
    );
}

/// (fields under a key of `epoch`, fields under older keys) across every sealed column.
fn fields_by_epoch(conn: &rusqlite::Connection, epoch: i64) -> (usize, usize) {
    let epochs: std::collections::HashMap<i64, i64> = conn
        .prepare("SELECT id, epoch FROM content_keys")
        .expect("reads")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows")
        .map(|r| r.expect("row"))
        .collect();
    let (mut current, mut older) = (0, 0);
    for (table, columns) in crate::schema::SEALED_COLUMNS {
        for column in *columns {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {column} FROM {table} WHERE typeof({column}) = 'blob'"
                ))
                .expect("reads");
            for blob in stmt
                .query_map([], |r| r.get::<_, Vec<u8>>(0))
                .expect("rows")
            {
                let blob = blob.expect("blob");
                let id = i64::from_be_bytes(blob[1..9].try_into().expect("id"));
                match epochs.get(&id) {
                    Some(e) if *e == epoch => current += 1,
                    _ => older += 1,
                }
            }
        }
    }
    (current, older)
}

fn chart_some(clinic: &Clinic) {
    let mut doctor = clinic.as_role(Role::Physician);
    let found = doctor.search_patients("Lee").expect("searches");
    let id = found.first().expect("found").id;
    let today = chrono::NaiveDate::from_ymd_opt(2026, 3, 3).expect("date");
    for text in ["Asthma", "Hypertension", "Migraine"] {
        doctor
            .add_problem(
                id,
                &chart::problem::NewProblem::new(text, None, None, None, today).expect("valid"),
            )
            .expect("adds");
    }
    drop(doctor);
}

#[test]
fn a_nurse_who_leaves_the_clinical_role_makes_the_clinical_key_rotate_at_the_next_holder_sign_in() {
    let clinic = Clinic::new();
    chart_some(&clinic);
    let raw = clinic.raw();
    let (before, _) = fields_by_epoch(&raw, 0);
    assert!(before > 0);
    drop(raw);
    let mut admin = clinic.as_role(Role::Admin);
    admin
        .change_role("nurse.lee", Role::FrontDesk)
        .expect("changes");
    drop(admin);
    // The administrator cannot rotate a key they do not hold: it is owed.
    let raw = clinic.raw();
    assert!(crate::keys::clinical_rotation_owed(&raw)
        .expect("reads")
        .is_some());
    drop(raw);
    // Killed after one batch of a few rows, the next holder's sign-in goes on.
    crate::keys::UPGRADE_STEPS.with(|s| s.set(Some((1, Some(1)))));
    drop(clinic.as_role(Role::Physician));
    crate::keys::UPGRADE_STEPS.with(|s| s.set(None));
    let raw = clinic.raw();
    let (_, older) = fields_by_epoch(&raw, 1);
    assert!(older > 0, "stopped part-way");
    drop(raw);
    let mut doctor = clinic.as_role(Role::Physician);
    let found = doctor.search_patients("Lee").expect("searches");
    let chart = doctor
        .open_chart(found[0].id)
        .expect("reads across both epochs");
    assert!(chart
        .problems
        .as_ref()
        .expect("a physician reads problems")
        .iter()
        .any(|p| p.text == "Asthma"));
    drop(doctor);
    let raw = clinic.raw();
    assert_eq!(
        fields_by_epoch(&raw, 1),
        (before, 0),
        "every field re-sealed"
    );
    assert!(crate::keys::clinical_rotation_owed(&raw)
        .expect("reads")
        .is_none());
    let state = verify(&raw, None).expect("verifies");
    assert_eq!(state.compartments["clinical"].0, 1);
    drop(raw);
    // The new key reached the holders, not the one who left.
    let mut admin = clinic.as_role(Role::Admin);
    for user in admin.users().expect("lists") {
        let clinical = user.keys.iter().any(|k| k == "clinical");
        assert_eq!(
            clinical,
            matches!(user.role, Role::Physician | Role::Nurse) && !user.disabled,
            "{}",
            user.name
        );
    }
}

/// The restricted patient (Mateo Castellanos) and his row id.
fn restricted_patient(raw: &rusqlite::Connection) -> i64 {
    raw.query_row("SELECT id FROM patients WHERE restricted = 1", [], |r| {
        r.get(0)
    })
    .expect("one restricted chart")
}

#[test]
fn a_trigger_planted_to_change_a_role_inside_honest_transactions_is_removed_at_unlock() {
    let clinic = Clinic::new();
    let raw = clinic.raw();
    raw.execute_batch(
        "CREATE TRIGGER sneaky AFTER INSERT ON audit_log
         BEGIN UPDATE users SET role = 'nurse' WHERE name = 'desk.ruiz'; END;",
    )
    .expect("plants");
    drop(raw);
    drop(clinic.as_role(Role::Physician));
    let raw = clinic.raw();
    let left: i64 = raw
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name = 'sneaky'",
            [],
            |r| r.get(0),
        )
        .expect("counts");
    assert_eq!(left, 0);
    let role: String = raw
        .query_row("SELECT role FROM users WHERE name = 'desk.ruiz'", [], |r| {
            r.get(0)
        })
        .expect("reads");
    assert_eq!(role, "front_desk");
    drop(raw);
    let mut admin = clinic.as_role(Role::Admin);
    let desk = admin
        .users()
        .expect("lists")
        .into_iter()
        .find(|u| u.name.as_str() == "desk.ruiz")
        .expect("listed");
    assert_eq!(
        desk.keys,
        ["database"],
        "no clinical key reached the front desk"
    );
    drop(admin);
    assert!(tampering_alerts(&clinic)
        .iter()
        .any(|a| a.contains("a trigger named sneaky, which Chartroom did not make, was removed")));
}

#[test]
fn a_role_written_while_an_administrator_is_signed_in_is_not_signed_by_their_reset() {
    let clinic = Clinic::new();
    let mut admin = clinic.as_role(Role::Admin);
    let raw = clinic.raw();
    raw.execute(
        "UPDATE users SET role = 'admin' WHERE name = 'desk.ruiz'",
        [],
    )
    .expect("edits");
    drop(raw);
    admin
        .reset_password("desk.ruiz", &pw("a-fresh-password"))
        .expect("resets");
    drop(admin);
    let raw = clinic.raw();
    let state = verify(&raw, None).expect("verifies");
    assert_eq!(
        state.user("desk.ruiz").expect("known").role,
        Role::FrontDesk
    );
    drop(raw);
    let desk = clinic
        .unlock("desk.ruiz", "a-fresh-password")
        .expect("signs in");
    assert_eq!(desk.signed_in().role, Role::FrontDesk);
}

#[test]
fn a_care_team_row_added_during_a_session_opens_nothing() {
    let clinic = Clinic::new();
    let mut nurse = clinic.as_role(Role::Nurse);
    let raw = clinic.raw();
    let patient = restricted_patient(&raw);
    raw.execute(
        "INSERT INTO care_team (patient_id, user_id, added_at, added_by)
         SELECT ?1, id, '2026-03-03T10:00:00Z', 'x' FROM users WHERE name = 'nurse.lee'",
        [patient],
    )
    .expect("inserts");
    drop(raw);
    let err = nurse
        .open_chart(patient)
        .expect_err("not on the team the log states");
    assert!(matches!(err, CoreError::Forbidden(_)), "{err:?}");
}

#[test]
fn a_break_the_glass_grant_planted_for_a_role_that_may_not_break_the_glass_opens_nothing() {
    let clinic = Clinic::new();
    let mut desk = clinic.as_role(Role::FrontDesk);
    let raw = clinic.raw();
    let patient = restricted_patient(&raw);
    raw.execute(
        "INSERT INTO access_grants (user_id, patient_id, reason, granted_at, expires_at, audit_seq)
         SELECT id, ?1, 'planted', '2026-03-03T10:00:00Z', '2099-01-01T00:00:00Z', 1 FROM users WHERE name = 'desk.ruiz'",
        [patient],
    )
    .expect("plants");
    drop(raw);
    assert!(desk.open_chart(patient).is_err());
}

#[test]
fn the_front_desk_may_restrict_only_a_chart_it_registers_and_only_with_an_empty_team() {
    use crate::security_log::{Entry, State};
    let mut state = State::default();
    let entry = |seq: u64, by: &str, key: &str, fact: Fact| Entry {
        format: 1,
        seq,
        prev: String::new(),
        at: String::new(),
        by: by.into(),
        signer_key: key.into(),
        fact,
    };
    let user = |name: &str, role: Role, key: &str| Fact::User {
        user: name.into(),
        role,
        enabled: true,
        slot_key: Some(format!("slot-{name}")),
        signing_key: Some(key.into()),
    };
    for (seq, e) in [
        entry(
            0,
            "admin",
            "root",
            Fact::Root {
                vault_id: "v".into(),
                root_key: "root".into(),
            },
        ),
        entry(1, "admin", "root", user("admin", Role::Admin, "root")),
        entry(
            2,
            "admin",
            "root",
            user("desk", Role::FrontDesk, "desk-key"),
        ),
        entry(
            3,
            "admin",
            "root",
            Fact::Restriction {
                patient: "p1".into(),
                restricted: true,
                team: vec!["admin".into()],
            },
        ),
    ]
    .into_iter()
    .enumerate()
    {
        state
            .authorize(&e)
            .unwrap_or_else(|why| panic!("{seq}: {why}"));
        state.absorb(&e, [0; 32]);
    }
    let restrict = |patient: &str, team: Vec<String>| {
        entry(
            4,
            "desk",
            "desk-key",
            Fact::Restriction {
                patient: patient.into(),
                restricted: true,
                team,
            },
        )
    };
    assert!(
        state.authorize(&restrict("p2", vec![])).is_ok(),
        "a new chart"
    );
    assert!(state
        .authorize(&restrict("p2", vec!["desk".into()]))
        .is_err());
    assert!(
        state.authorize(&restrict("p1", vec![])).is_err(),
        "a chart the log knows"
    );
    let compartment = |by: &str, key: &str| {
        entry(
            4,
            by,
            key,
            Fact::Compartment {
                name: "clinical".into(),
                epoch: 0,
                public_key: "k".into(),
            },
        )
    };
    assert!(state.authorize(&compartment("desk", "desk-key")).is_err());
}

#[test]
fn a_slot_planted_under_a_members_name_is_never_sealed_a_charts_key() {
    let clinic = Clinic::new();
    let mut doctor = clinic.as_role(Role::Physician);
    doctor.add_to_care_team(2, "desk.ruiz").expect("adds");
    doctor.lock().expect("locks");
    // An outsider puts a slot of their own making under the front desk member's name.
    swap_in_forged_slot(&clinic, "desk.ruiz", "chosen-by-insider");
    let forged = read_slots(&clinic.config.dir)["slots"]
        .as_array()
        .expect("slots")
        .iter()
        .find(|s| s["owner"] == "desk.ruiz")
        .and_then(|s| s["public_key"].as_str())
        .map(|k| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(k)
                .expect("base64")
        })
        .expect("the planted slot");
    // The physician signs in and the chart gets new keys twice (a member joins and leaves):
    // none of them is sealed to the planted slot.
    let mut doctor = clinic.as_role(Role::Physician);
    doctor.add_to_care_team(2, "nurse.lee").expect("adds");
    doctor
        .remove_from_care_team(2, "nurse.lee")
        .expect("removes");
    doctor.lock().expect("locks");
    let raw = clinic.raw();
    let to: Vec<Vec<u8>> = raw
        .prepare("SELECT to_public FROM patient_keys WHERE holder = 'user:desk.ruiz'")
        .expect("prepares")
        .query_map([], |r| r.get(0))
        .expect("queries")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert!(
        !to.is_empty(),
        "the member keeps a seal to her registered slot"
    );
    assert!(!to.contains(&forged), "a seal went to the planted slot");
}

#[test]
fn a_break_the_glass_grant_without_its_audit_entry_or_beyond_the_time_box_opens_nothing() {
    let clinic = Clinic::new();
    let raw = clinic.raw();
    let patient = restricted_patient(&raw);
    // A nurse may break the glass; rows planted for her open nothing: one that points at an
    // entry that is not her break-the-glass, and one that outlasts any clinic's time box.
    raw.execute(
        "INSERT INTO access_grants (user_id, patient_id, reason, granted_at, expires_at, audit_seq)
         SELECT id, ?1, 'planted', '2026-03-03T10:00:00Z', '2099-01-01T00:00:00Z', 1 FROM users WHERE name = 'nurse.lee'",
        [patient],
    )
    .expect("plants");
    drop(raw);
    let mut nurse = clinic.as_role(Role::Nurse);
    assert!(nurse.open_chart(patient).is_err());
    nurse
        .break_glass(patient, "Collapsed in the lobby")
        .expect("breaks the glass");
    nurse.open_chart(patient).expect("the real grant opens it");
    nurse.lock().expect("locks");
    let raw = clinic.raw();
    raw.execute(
        "UPDATE access_grants SET expires_at = '2099-01-01T00:00:00Z' WHERE reason <> 'planted'",
        [],
    )
    .expect("stretches the real grant");
    drop(raw);
    // A grant stretched past the longest time box a clinic may set is no grant at all.
    let mut nurse = clinic.as_role(Role::Nurse);
    assert!(nurse.open_chart(patient).is_err());
}

#[test]
fn a_restricted_chart_that_shares_the_readers_family_name_raises_its_alert() {
    let clinic = Clinic::new();
    let mut doctor = clinic.as_role(Role::Physician);
    let today = chrono::NaiveDate::from_ymd_opt(2026, 3, 3).expect("date");
    let lee = doctor
        .register_patient(
            &NewPatient::new("Lee", "Harold", "1950-01-02", "male", true, today).expect("valid"),
        )
        .expect("registers");
    doctor.add_to_care_team(lee.id, "nurse.lee").expect("adds");
    doctor.lock().expect("locks");
    let before = clinic.alert_count(crate::alert_rule::SAME_FAMILY_NAME);
    let mut nurse = clinic.as_role(Role::Nurse);
    nurse.open_chart(lee.id).expect("opens");
    nurse.lock().expect("locks");
    assert_eq!(
        clinic.alert_count(crate::alert_rule::SAME_FAMILY_NAME),
        before + 1
    );
}

#[test]
fn a_chart_key_planted_in_the_table_is_never_sealed_to() {
    let clinic = Clinic::new();
    let raw = clinic.raw();
    let patient = restricted_patient(&raw);
    // An insider adds a newer key of their own making for the chart (sealed to nobody who
    // matters: they need only the public half to be written to).
    let insider = chartroom_vault::x25519_dalek::StaticSecret::random_from_rng(rand_core::OsRng);
    let public = chartroom_vault::x25519_dalek::PublicKey::from(&insider);
    raw.execute(
        "INSERT INTO patient_keys (patient_id, epoch, public_key, holder, to_public, ephemeral, nonce, sealed, created_at)
         VALUES (?1, 7, ?2, 'clinical:0', ?2, ?2, zeroblob(12), zeroblob(48), '2026-03-03T10:00:00Z')",
        rusqlite::params![patient, public.as_bytes().as_slice()],
    )
    .expect("plants");
    drop(raw);
    // The team's next edit is sealed to the key the security log registers, not the planted.
    let mut doctor = clinic.as_role(Role::Physician);
    doctor
        .update_patient(
            patient,
            &PatientChanges {
                phone: Some("+1 555 010 0199".into()),
                ..Default::default()
            },
        )
        .expect("updates");
    doctor.lock().expect("locks");
    let raw = clinic.raw();
    let sealed: String = raw
        .query_row(
            "SELECT sealed FROM patients WHERE id = ?1",
            [patient],
            |r| r.get(0),
        )
        .expect("sealed");
    assert!(sealed.starts_with("psealed:v1:0:"), "{sealed}");
}
