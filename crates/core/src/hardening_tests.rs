//! What an outside review found (the hardening issue), each as the insider or attacker
//! tried it, through the operations a clinic's staff have.

use crate::alerts::rule as alert_rule;
use crate::audit::AuditFilter;
use crate::chart::note::NoteContent;
use crate::gate_tests::{pw, Clinic};
use crate::{CoreError, Denial, Outcome, Role, Session};

fn not_yours<T: std::fmt::Debug>(result: Result<T, CoreError>) -> String {
    match result {
        Err(CoreError::Forbidden(Denial::NotYours(why))) => why.to_owned(),
        other => panic!("expected a refusal about who, got {other:?}"),
    }
}

fn restricted<T: std::fmt::Debug>(result: Result<T, CoreError>) {
    match result {
        Err(CoreError::Forbidden(Denial::Restricted { .. })) => {}
        other => panic!("expected the restriction to refuse, got {other:?}"),
    }
}

/// A second physician, not on Castellanos' (patient 2's) care team.
fn with_second_physician(clinic: &Clinic) -> Session {
    let mut admin = clinic.as_role(Role::Admin);
    admin
        .add_user("dr.osei", Role::Physician, None, &pw("osei-password"))
        .expect("adds");
    admin.lock().expect("locks");
    // Any holder's sign-in hands the clinical key over.
    clinic.as_role(Role::Physician).lock().expect("locks");
    clinic.unlock("dr.osei", "osei-password").expect("unlocks")
}

#[test]
fn only_someone_who_may_open_a_restricted_chart_changes_its_care_team_and_nobody_adds_themselves() {
    let clinic = Clinic::new();
    let mut osei = with_second_physician(&clinic);
    // Adding themselves, then anyone else, then taking the registering physician off.
    let why = not_yours(osei.add_to_care_team(2, "dr.osei"));
    assert!(why.contains("Nobody adds themselves"), "{why}");
    not_yours(osei.add_to_care_team(2, "DR.OSEI "));
    restricted(osei.add_to_care_team(2, "nurse.lee"));
    restricted(osei.remove_from_care_team(2, "dr.okafor"));
    restricted(osei.open_chart(2));
    osei.lock().expect("locks");
    // The admin is never on it and cannot break the glass.
    let mut admin = clinic.as_role(Role::Admin);
    restricted(admin.add_to_care_team(2, "dr.osei"));
    not_yours(admin.add_to_care_team(1, "admin"));
    admin.lock().expect("locks");
    let mut doctor = clinic.as_role(Role::Physician);
    assert_eq!(
        doctor.open_chart(2).expect("opens").care_team,
        ["dr.okafor"]
    );
    doctor.lock().expect("locks");
    let refused = clinic.entries(AuditFilter {
        event: Some("care_team.add".into()),
        outcome: Some(Outcome::Denied),
        ..AuditFilter::default()
    });
    assert_eq!(refused.len(), 5, "every refusal is on record");
    assert_eq!(clinic.alert_count(alert_rule::CARE_TEAM_CHANGE), 0);

    // Through the glass (reason, time box, alert) the care team may be changed, and every
    // change to a restricted chart's team raises an alert of its own.
    let mut osei = clinic.unlock("dr.osei", "osei-password").expect("unlocks");
    osei.break_glass(2, "Covering for Dr Okafor on leave")
        .expect("breaks the glass");
    osei.add_to_care_team(2, "nurse.lee").expect("adds");
    // The grant does not reach the restriction: lifting it and setting it again would put
    // the person on the care team for good.
    let lift = crate::PatientChanges {
        restricted: Some(false),
        ..Default::default()
    };
    not_yours(osei.update_patient(2, &lift));
    osei.lock().expect("locks");
    let mut doctor = clinic.as_role(Role::Physician);
    doctor
        .remove_from_care_team(2, "nurse.lee")
        .expect("removes");
    // An open chart's team changes without an alert.
    doctor.add_to_care_team(1, "nurse.lee").expect("adds");
    doctor.lock().expect("locks");
    assert_eq!(clinic.alert_count(alert_rule::CARE_TEAM_CHANGE), 2);
    assert_eq!(clinic.alert_count(alert_rule::BREAK_GLASS), 1);
    // A member may lift the restriction; that raises an alert of its own.
    assert_eq!(clinic.alert_count(alert_rule::RESTRICTION_CHANGE), 0);
    let mut doctor = clinic.as_role(Role::Physician);
    doctor.update_patient(2, &lift).expect("a member lifts it");
    doctor.lock().expect("locks");
    assert_eq!(clinic.alert_count(alert_rule::RESTRICTION_CHANGE), 1);
}

#[test]
fn only_the_author_edits_a_draft() {
    let clinic = Clinic::new();
    let mut doctor = clinic.as_role(Role::Physician);
    let draft = doctor
        .draft_note(
            1,
            None,
            &NoteContent::free("Chest pain, resolved.").expect("valid"),
        )
        .expect("drafts");
    doctor.lock().expect("locks");
    let mut nurse = clinic.as_role(Role::Nurse);
    let why = not_yours(nurse.edit_draft(
        draft.id,
        &NoteContent::free("Nothing to worry about.").expect("valid"),
    ));
    assert!(why.contains("only its author"), "{why}");
    nurse.lock().expect("locks");
    let mut recovery = clinic.as_recovery();
    assert_eq!(
        recovery
            .edit_draft(draft.id, &NoteContent::free("x").expect("valid"))
            .expect_err("refused")
            .code(),
        "forbidden"
    );
    recovery.lock().expect("locks");
    let mut doctor = clinic.as_role(Role::Physician);
    let notes = doctor.notes(1).expect("lists");
    assert_eq!(notes[0].content.as_text(), "Chest pain, resolved.");
    doctor
        .edit_draft(
            draft.id,
            &NoteContent::free("Chest pain, resolved; ECG normal.").expect("valid"),
        )
        .expect("the author edits it");
    doctor.lock().expect("locks");
    let refused = clinic.entries(AuditFilter {
        event: Some("note.update".into()),
        outcome: Some(Outcome::Denied),
        ..AuditFilter::default()
    });
    assert_eq!(refused.len(), 2);
}

#[test]
fn a_restricted_charts_disclosures_are_closed_as_the_chart_is() {
    let clinic = Clinic::new();
    let mut osei = with_second_physician(&clinic);
    restricted(osei.disclosures(2));
    // An open chart's accounting stays open to physicians.
    osei.disclosures(1).expect("reads");
    osei.lock().expect("locks");
    clinic
        .as_role(Role::Physician)
        .disclosures(2)
        .expect("the care team reads it");
    for role in [Role::Admin, Role::Auditor] {
        clinic
            .as_role(role)
            .disclosures(2)
            .expect("oversight keeps its access");
    }
}

#[test]
fn nobody_acknowledges_an_alert_about_themselves_and_changing_an_alert_setting_raises_one() {
    let clinic = Clinic::new();
    let mut admin = clinic.as_role(Role::Admin);
    admin
        .set_setting("clinic_hours", "08:00-18:00")
        .expect("sets");
    admin
        .set_setting("alert_chart_burst_count", "1000")
        .expect("sets");
    // Not an alert setting: no alert.
    admin
        .set_setting("idle_timeout_minutes", "15")
        .expect("sets");
    admin.lock().expect("locks");
    assert_eq!(clinic.alert_count(alert_rule::ALERT_SETTING_CHANGED), 2);

    clinic.clock.advance(chrono::Duration::hours(11));
    let mut admin = clinic.as_role(Role::Admin);
    admin.open_chart(1).expect("opens");
    let about_admin: Vec<_> = admin
        .alerts(false)
        .expect("lists")
        .into_iter()
        .filter(|a| a.user.as_deref() == Some("admin"))
        .collect();
    assert!(about_admin
        .iter()
        .any(|a| a.rule == alert_rule::OUTSIDE_HOURS));
    for alert in &about_admin {
        let why = not_yours(admin.acknowledge_alert(alert.id, "Checked, all fine."));
        assert!(why.contains("about you"), "{why}");
    }
    admin.lock().expect("locks");
    let mut auditor = clinic.as_role(Role::Auditor);
    for alert in &about_admin {
        auditor
            .acknowledge_alert(
                alert.id,
                "Asked the admin: a records request from the courts.",
            )
            .expect("a colleague acknowledges it");
    }
}

#[test]
fn a_password_typed_into_the_user_name_field_is_kept_nowhere() {
    let clinic = Clinic::new();
    let typed = "Tr0ub4dor-and-3";
    for _ in 0..2 {
        assert_eq!(
            clinic
                .unlock(typed, "admin-password")
                .err()
                .map(|e| e.code()),
            Some("auth_failed")
        );
    }
    let _ = clinic.unlock("nobody-at-all", "x");
    let failures = std::fs::read(clinic.config.dir.join(chartroom_vault::lockout::FILE_NAME))
        .expect("counted in the vault folder");
    assert!(!String::from_utf8_lossy(&failures)
        .to_lowercase()
        .contains("tr0ub4dor"));
    let failed = clinic.entries(AuditFilter {
        event: Some("session.unlock".into()),
        outcome: Some(Outcome::Failed),
        ..AuditFilter::default()
    });
    assert_eq!(failed.len(), 3);
    let actors: Vec<&str> = failed.iter().map(|r| r.entry.actor.as_str()).collect();
    assert!(
        actors.iter().all(|a| a.starts_with("unknown user (")),
        "{actors:?}"
    );
    assert_eq!(actors[0], actors[1], "the same name correlates");
    assert_ne!(actors[0], actors[2]);
    let dump = crate::gate_tests::raw_dump(&clinic.raw()).to_lowercase();
    assert!(
        !dump.contains("tr0ub4dor"),
        "the typed name is in the trail"
    );
    assert!(!dump.contains("nobody-at-all"));
}

#[test]
fn a_slot_change_leaves_a_trace_before_the_slot_file_changes() {
    let clinic = Clinic::new();
    let mut nurse = clinic.as_role(Role::Nurse);
    nurse
        .change_own_password(&pw("a-new-nurse-password"))
        .expect("changes");
    nurse.lock().expect("locks");
    let trail = clinic.entries(AuditFilter::default());
    let begun = trail
        .iter()
        .position(|r| r.entry.event == "key_slot.change_begun" && r.entry.actor == "nurse.lee")
        .expect("a trace of the slot change, committed first");
    let done = trail
        .iter()
        .position(|r| r.entry.event == "user.password_change" && r.entry.actor == "nurse.lee")
        .expect("the change itself");
    assert!(begun < done);
    assert_eq!(
        trail[begun].entry.detail.as_deref(),
        Some("user.password_change")
    );
}

#[test]
fn a_backup_carries_the_slot_file_as_it_is_now_not_as_the_session_loaded_it() {
    let clinic = Clinic::new();
    let mut admin = clinic.as_role(Role::Admin);
    // While the admin's window is open, the nurse changes her password in another.
    let mut nurse = clinic.as_role(Role::Nurse);
    nurse
        .change_own_password(&pw("a-new-nurse-password"))
        .expect("changes");
    nurse.lock().expect("locks");
    let target = clinic.config.dir.with_file_name("backup-now");
    admin.backup(&target).expect("backs up");
    admin.lock().expect("locks");
    let mut config = clinic.config.clone();
    config.dir = target;
    Session::unlock(config.clone(), "nurse.lee", &pw("a-new-nurse-password"))
        .expect("her new password opens the backup")
        .lock()
        .expect("locks");
    assert!(Session::unlock(config, "nurse.lee", &pw("nurse-password")).is_err());
}

#[test]
fn updates_count_toward_the_burst_rule_as_reads_do() {
    let clinic = Clinic::new();
    let mut admin = clinic.as_role(Role::Admin);
    admin
        .set_setting("alert_chart_burst_count", "3")
        .expect("sets");
    admin.lock().expect("locks");
    let mut desk = clinic.as_role(Role::FrontDesk);
    let today = chrono::NaiveDate::from_ymd_opt(2026, 3, 3).expect("date");
    let third = desk
        .register_patient(
            &crate::NewPatient::new("Adeyemi", "Tolu", "1990-01-01", "female", false, today)
                .expect("valid"),
        )
        .expect("registers");
    let fourth = desk
        .register_patient(
            &crate::NewPatient::new("Osei", "Kofi", "1985-05-05", "male", false, today)
                .expect("valid"),
        )
        .expect("registers");
    // An update that changes nothing still answers with the whole record.
    for id in [1, third.id.get(), fourth.id.get()] {
        desk.update_patient(id, &crate::PatientChanges::default())
            .expect("updates");
    }
    desk.lock().expect("locks");
    assert_eq!(clinic.alert_count(alert_rule::CHART_BURST), 1);
}
