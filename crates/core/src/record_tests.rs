//! The clinical record through the Session, on real vaults: validation that changes nothing,
//! final signed notes, roles through real operations, history, search quality, the demo.

use chrono::NaiveDate;

use super::*;
use crate::gate_tests::{denied_by_role, pw, Clinic};

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 3).expect("date")
}

/// Everything clinical about patient 1, and the row counts of every record table.
fn snapshot(clinic: &Clinic) -> (String, Vec<i64>) {
    let mut doctor = clinic.as_role(Role::Physician);
    let chart = serde_json::to_string(&doctor.open_chart(1).expect("opens")).expect("json");
    let counts = [
        "patients",
        "patient_versions",
        "patient_name_words",
        "encounters",
        "notes",
        "observations",
        "problems",
        "allergies",
        "medications",
        "immunizations",
    ]
    .iter()
    .map(|t| {
        doctor
            .connection_for_tests()
            .query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
            .expect("counts")
    })
    .collect();
    (chart, counts)
}

fn content(text: &str) -> NoteContent {
    NoteContent::free(text).expect("valid")
}

#[test]
fn bad_input_is_refused_with_a_clear_message_and_changes_nothing() {
    let clinic = Clinic::new();
    let mut doctor = clinic.as_role(Role::Physician);
    let enc = doctor
        .add_encounter(
            1,
            &NewEncounter::new(
                "office",
                None,
                "Review",
                clinic.clock.now(),
                &crate::ClinicZone::utc(),
            )
            .expect("valid"),
        )
        .expect("opens");
    let other = doctor
        .add_encounter(
            2,
            &NewEncounter::new(
                "office",
                None,
                "Review",
                clinic.clock.now(),
                &crate::ClinicZone::utc(),
            )
            .expect("valid"),
        )
        .expect("opens");
    let med = doctor
        .add_medication(
            1,
            &NewMedication::new(
                "Amlodipine",
                Some("5 mg"),
                Some("oral"),
                None,
                Some("2024-01-10"),
                today(),
            )
            .expect("valid"),
        )
        .expect("adds");
    doctor
        .add_allergy(
            1,
            &NewAllergy::new("Penicillin", Some("Hives"), Some("moderate"), None).expect("valid"),
        )
        .expect("adds");
    let note = doctor
        .draft_note(1, Some(enc.id), &content("Seen."))
        .expect("drafts");
    doctor.sign_note(note.id).expect("signs");
    drop(doctor);

    let before = snapshot(&clinic);
    let mut doctor = clinic.as_role(Role::Physician);
    let attempts: Vec<(&str, Result<(), CoreError>)> = vec![
        (
            "impossible systolic",
            doctor
                .record_vitals(
                    1,
                    &VitalsInput {
                        systolic: Some(400.0),
                        diastolic: Some(80.0),
                        ..VitalsInput::default()
                    },
                    None,
                    None,
                )
                .map(|_| ()),
        ),
        (
            "swapped blood pressure",
            doctor
                .record_vitals(
                    1,
                    &VitalsInput {
                        systolic: Some(70.0),
                        diastolic: Some(120.0),
                        ..VitalsInput::default()
                    },
                    None,
                    None,
                )
                .map(|_| ()),
        ),
        (
            "vitals in the future",
            doctor
                .record_vitals(
                    1,
                    &VitalsInput {
                        heart_rate: Some(70.0),
                        ..VitalsInput::default()
                    },
                    Some(clinic.clock.now() + chrono::Duration::days(2)),
                    None,
                )
                .map(|_| ()),
        ),
        (
            "bad email",
            doctor
                .update_patient(
                    1,
                    &PatientChanges {
                        email: Some("not-an-address".into()),
                        family: Some("Changed".into()),
                        ..PatientChanges::default()
                    },
                )
                .map(|_| ()),
        ),
        (
            "birth date in the future",
            doctor
                .update_patient(
                    1,
                    &PatientChanges {
                        birth_date: Some("2099-01-01".into()),
                        ..PatientChanges::default()
                    },
                )
                .map(|_| ()),
        ),
        (
            "another patient's encounter",
            doctor
                .draft_note(1, Some(other.id), &content("Wrong chart"))
                .map(|_| ()),
        ),
        (
            "stopping before starting",
            doctor
                .stop_medication(med.id, NaiveDate::from_ymd_opt(2023, 1, 1))
                .map(|_| ()),
        ),
        (
            "no known allergies with an active one",
            doctor.record_no_known_allergies(1).map(|_| ()),
        ),
        (
            "the same allergy twice",
            doctor
                .add_allergy(
                    1,
                    &NewAllergy::new("penicillin", None, None, None).expect("valid"),
                )
                .map(|_| ()),
        ),
        (
            "signing a signed note",
            doctor.sign_note(note.id).map(|_| ()),
        ),
        (
            "editing a signed note",
            doctor.edit_draft(note.id, &content("Changed")).map(|_| ()),
        ),
        (
            "a patient that does not exist",
            doctor
                .add_encounter(
                    999,
                    &NewEncounter::new(
                        "office",
                        None,
                        "Review",
                        clinic.clock.now(),
                        &crate::ClinicZone::utc(),
                    )
                    .expect("valid"),
                )
                .map(|_| ()),
        ),
    ];
    for (what, result) in attempts {
        let err = result.expect_err(what);
        assert!(
            matches!(err.code(), "invalid_input" | "conflict" | "not_found"),
            "{what}: {err:?}"
        );
        let message = err.to_string();
        assert!(
            (message.ends_with('.') || message.ends_with('?')) && message.len() > 15,
            "{what}: {message}"
        );
    }
    drop(doctor);
    assert_eq!(snapshot(&clinic), before);
}

#[test]
fn a_signed_note_never_changes_and_its_addendum_is_linked_and_audited() {
    let clinic = Clinic::new();
    let mut nurse = clinic.as_role(Role::Nurse);
    let soap = NoteContent::soap(
        Some("Dizzy on standing"),
        Some("BP 100/60 lying, 85/50 standing"),
        None,
        None,
    )
    .expect("valid");
    let draft = nurse.draft_note(1, None, &soap).expect("nurse drafts");
    let edited = nurse
        .edit_draft(
            draft.id,
            &NoteContent::soap(
                Some("Dizzy on standing"),
                Some("BP 100/60 lying, 85/50 standing"),
                Some("Postural hypotension"),
                None,
            )
            .expect("valid"),
        )
        .expect("drafts can change");
    denied_by_role(nurse.sign_note(draft.id), Permission::SignNote);
    drop(nurse);

    let mut doctor = clinic.as_role(Role::Physician);
    let signed = doctor.sign_note(draft.id).expect("signs");
    assert_eq!(signed.status, "signed");
    assert_eq!(signed.signed_by.as_deref(), Some("dr.okafor"));
    assert_eq!(signed.content, edited.content);
    assert_eq!(
        signed.content_sha256.as_deref(),
        Some(note_digest(&signed).as_str())
    );

    // No path changes it: the API, a second signature, or SQL on the open database.
    assert_eq!(
        doctor
            .edit_draft(draft.id, &content("Rewritten"))
            .expect_err("final")
            .code(),
        "conflict"
    );
    assert_eq!(
        doctor.sign_note(draft.id).expect_err("once").code(),
        "conflict"
    );
    for sql in [
        "UPDATE notes SET text = 'rewritten' WHERE id = ?1",
        "UPDATE notes SET status = 'draft' WHERE id = ?1",
        "DELETE FROM notes WHERE id = ?1",
    ] {
        let err = doctor
            .connection_for_tests()
            .execute(sql, [draft.id])
            .expect_err("the database refuses");
        assert!(err.to_string().contains("signed note"), "{sql}: {err}");
    }

    let addendum = doctor
        .add_addendum(
            draft.id,
            &content("Orthostatic readings repeated: improved with fluids."),
            false,
        )
        .expect("adds");
    assert_eq!(addendum.parent_id, Some(draft.id));
    assert_eq!(addendum.kind, NoteKind::Addendum);
    assert_eq!(addendum.status, "draft");
    let addendum = doctor.sign_note(addendum.id).expect("signs the addendum");
    let amendment = doctor
        .add_addendum(
            draft.id,
            &content("Correction: standing BP was 95/55."),
            true,
        )
        .expect("amends");
    assert_eq!(amendment.kind, NoteKind::Amendment);
    let notes = doctor.notes(1).expect("lists");
    assert_eq!(
        notes
            .iter()
            .filter(|n| n.parent_id == Some(draft.id))
            .count(),
        2
    );
    assert_eq!(
        notes.iter().find(|n| n.id == draft.id).map(|n| &n.content),
        Some(&signed.content),
        "the original is as signed"
    );
    drop(doctor);

    let entries = clinic.entries(AuditFilter {
        patient: Some("1".into()),
        ..AuditFilter::default()
    });
    let events: Vec<(String, Outcome, Option<String>)> = entries
        .iter()
        .map(|r| {
            (
                r.entry.event.clone(),
                r.entry.outcome,
                r.entry.object_id.clone(),
            )
        })
        .collect();
    let addendum_id = Some(addendum.id.to_string());
    assert!(events.contains(&(
        "note.addendum".into(),
        Outcome::Success,
        addendum_id.clone()
    )));
    assert!(events.contains(&("note.sign".into(), Outcome::Success, addendum_id)));
    assert!(events.contains(&(
        "note.update".into(),
        Outcome::Failed,
        Some(draft.id.to_string())
    )));
    assert!(events.contains(&(
        "note.sign".into(),
        Outcome::Denied,
        Some(draft.id.to_string())
    )));
}

#[test]
fn roles_through_real_operations() {
    let clinic = Clinic::new();
    // Front desk registers and edits demographics but sees no clinical content.
    let mut doctor = clinic.as_role(Role::Physician);
    doctor
        .record_vitals(
            1,
            &VitalsInput {
                heart_rate: Some(88.0),
                ..VitalsInput::default()
            },
            None,
            None,
        )
        .expect("records");
    doctor
        .draft_note(1, None, &content("Private clinical note"))
        .expect("drafts");
    drop(doctor);

    let mut desk = clinic.as_role(Role::FrontDesk);
    let p = desk
        .register_patient(
            &NewPatient::new("Haddad", "Lina", "1990-05-06", "female", false, today())
                .expect("valid"),
        )
        .expect("front desk registers");
    desk.update_patient(
        p.id,
        &PatientChanges {
            phone: Some("+1 (202) 555-0100".into()),
            ..PatientChanges::default()
        },
    )
    .expect("front desk edits demographics");
    let chart = desk.open_chart(1).expect("demographics");
    assert!(
        chart.notes.is_none()
            && chart.vitals.is_none()
            && chart.problems.is_none()
            && chart.allergies.is_none()
    );
    let json = serde_json::to_string(&chart).expect("json");
    assert!(
        !json.contains("Private clinical note")
            && !json.contains("vitals")
            && !json.contains("notes")
    );
    denied_by_role(desk.vitals(1), Permission::ReadClinical);
    denied_by_role(desk.notes(1), Permission::ReadNotes);
    denied_by_role(
        desk.record_vitals(
            1,
            &VitalsInput {
                heart_rate: Some(70.0),
                ..VitalsInput::default()
            },
            None,
            None,
        ),
        Permission::RecordVitals,
    );
    denied_by_role(
        desk.update_patient(
            1,
            &PatientChanges {
                restricted: Some(true),
                ..PatientChanges::default()
            },
        ),
        Permission::ManageCareTeam,
    );
    drop(desk);

    // A nurse records vitals and drafts, but cannot sign or add problems.
    let mut nurse = clinic.as_role(Role::Nurse);
    let obs = nurse
        .record_vitals(
            1,
            &VitalsInput {
                systolic: Some(150.0),
                diastolic: Some(95.0),
                ..VitalsInput::default()
            },
            None,
            None,
        )
        .expect("nurse records vitals");
    assert!(obs.iter().all(|o| o.flag == Flag::H), "{obs:?}");
    let draft = nurse
        .draft_note(1, None, &content("Nurse triage note"))
        .expect("drafts");
    denied_by_role(nurse.sign_note(draft.id), Permission::SignNote);
    denied_by_role(
        nurse.add_problem(
            1,
            &NewProblem::new("Hypertension", None, Some("I10"), None, today()).expect("valid"),
        ),
        Permission::WriteClinical,
    );
    drop(nurse);

    // An auditor sees none of it.
    let mut auditor = clinic.as_role(Role::Auditor);
    denied_by_role(auditor.open_chart(1), Permission::ReadDemographics);
    denied_by_role(auditor.vitals(1), Permission::ReadClinical);
    denied_by_role(auditor.notes(1), Permission::ReadNotes);
    denied_by_role(auditor.search_patients("lee"), Permission::SearchPatients);
}

#[test]
fn demographic_history_keeps_every_version_with_who_and_when() {
    let clinic = Clinic::new();
    let changes = [
        (
            Role::FrontDesk,
            PatientChanges {
                phone: Some("+1 (202) 555-0101".into()),
                ..PatientChanges::default()
            },
        ),
        (
            Role::Physician,
            PatientChanges {
                preferred: Some("Gracie".into()),
                ..PatientChanges::default()
            },
        ),
        (
            Role::FrontDesk,
            PatientChanges {
                family: Some("Lee-Tan".into()),
                phone: Some(String::new()),
                ..PatientChanges::default()
            },
        ),
    ];
    for (role, change) in &changes {
        clinic.clock.advance(chrono::Duration::minutes(5));
        let mut s = clinic.as_role(*role);
        s.update_patient(1, change).expect("updates");
    }
    let mut doctor = clinic.as_role(Role::Physician);
    let history = doctor.patient_history(1).expect("history");
    assert_eq!(history.len(), 4);
    let who: Vec<&str> = history.iter().map(|v| v.changed_by.as_str()).collect();
    assert_eq!(who, ["dr.okafor", "desk.ruiz", "dr.okafor", "desk.ruiz"]);
    assert!(history
        .windows(2)
        .all(|w| w[0].changed_at < w[1].changed_at));
    assert_eq!(history[0].demographics.family, "Lee");
    assert_eq!(history[0].demographics.phone, None);
    assert_eq!(
        history[1].demographics.phone.as_deref(),
        Some("+1 (202) 555-0101")
    );
    assert_eq!(history[2].demographics.preferred.as_deref(), Some("Gracie"));
    assert_eq!(history[3].demographics.family, "Lee-Tan");
    assert_eq!(history[3].demographics.phone, None, "an empty value clears");
    let chart = doctor.open_chart(1).expect("opens");
    assert_eq!(chart.patient.version, 4);
    // The new name is searchable, the old one no longer finds her.
    assert_eq!(
        doctor.search_patients("lee-tan").expect("searches")[0].id,
        1
    );
    assert!(doctor
        .search_patients("tan grace")
        .expect("searches")
        .iter()
        .any(|h| h.id == 1));
}

#[test]
fn vitals_are_coded_flagged_and_bmi_uses_the_last_height() {
    let clinic = Clinic::new();
    let mut nurse = clinic.as_role(Role::Nurse);
    nurse
        .record_vitals(
            1,
            &VitalsInput {
                height: Some(170.0),
                ..VitalsInput::default()
            },
            None,
            None,
        )
        .expect("records");
    drop(nurse);
    clinic.clock.advance(chrono::Duration::days(30));
    let mut nurse = clinic.as_role(Role::Nurse);
    let obs = nurse
        .record_vitals(
            1,
            &VitalsInput {
                weight: Some(72.3),
                temperature: Some(38.6),
                spo2: Some(89.0),
                heart_rate: Some(61.0),
                ..VitalsInput::default()
            },
            None,
            None,
        )
        .expect("records");
    let by = |v: Vital| obs.iter().find(|o| o.vital == v).expect("present");
    assert_eq!(by(Vital::Bmi).value, 25.0);
    assert_eq!(by(Vital::Bmi).code, "39156-5");
    assert_eq!(by(Vital::Temperature).unit, "Cel");
    assert_eq!(by(Vital::Temperature).flag, Flag::H);
    assert_eq!(by(Vital::Spo2).flag, Flag::LL);
    assert_eq!(by(Vital::HeartRate).flag, Flag::N);
    assert_eq!(nurse.vitals(1).expect("lists").len(), 6);
}

#[test]
fn no_known_allergies_is_a_recorded_state_not_an_empty_list() {
    let clinic = Clinic::new();
    let mut nurse = clinic.as_role(Role::Nurse);
    let list = nurse.allergies(1).expect("lists");
    assert_eq!(
        (list.allergy_status.as_str(), list.allergies.len()),
        ("unknown", 0)
    );
    nurse.record_no_known_allergies(1).expect("records");
    let list = nurse.allergies(1).expect("lists");
    assert_eq!(
        (list.allergy_status.as_str(), list.allergies.len()),
        ("no_known_allergies", 0)
    );
    let a = nurse
        .add_allergy(
            1,
            &NewAllergy::new(
                "Latex",
                Some("Contact dermatitis"),
                Some("mild"),
                Some("environment"),
            )
            .expect("valid"),
        )
        .expect("adds");
    assert_eq!(
        nurse.allergies(1).expect("lists").allergy_status,
        "recorded"
    );
    nurse.resolve_allergy(a.id).expect("resolves");
    assert_eq!(
        nurse.resolve_allergy(a.id).expect_err("once").code(),
        "conflict"
    );
    nurse.record_no_known_allergies(1).expect("none active now");
}

#[test]
fn search_finds_the_right_patient_first() {
    let clinic = Clinic::new();
    let mut admin = clinic.as_role(Role::Admin);
    admin
        .generate_demo(
            &DemoOptions {
                patients: 600,
                seed: 42,
                as_of: today(),
                long_chart_every: 0,
            },
            |_| {},
        )
        .expect("generates");
    drop(admin);
    let mut desk = clinic.as_role(Role::FrontDesk);
    let mut add = |family: &str, given: &str, birth: &str, phone: Option<&str>| -> Patient {
        let form = PatientForm {
            family: family.into(),
            given: given.into(),
            birth_date: birth.into(),
            sex: "unknown".into(),
            phone: phone.map(str::to_owned),
            ..PatientForm::default()
        };
        desk.register_patient(&NewPatient::from_form(&form, false, today()).expect("valid"))
            .expect("registers")
    };
    let jurgen = add("Müller", "Jürgen", "1961-07-15", Some("+49 30 5550 1987"));
    let adaeze = add("Okafor", "Adaeze", "1985-02-11", None);
    let olivia = add("Smith-Jones", "Olivia", "1972-12-01", None);
    let pieter = add("van der Berg", "Pieter", "1950-03-30", None);
    let sean = add("O'Brien", "Seán", "1999-09-09", None);
    let zsofia = add("Zwierzchowska", "Zsófia", "1988-01-20", None);

    let cases: Vec<(&str, PatientId)> = vec![
        ("Müller Jürgen", jurgen.id),
        ("muller jurgen", jurgen.id),
        ("jurgen mulller", jurgen.id),
        ("jürgen müler", jurgen.id),
        (&jurgen.mrn, jurgen.id),
        ("+49 30 5550 1987", jurgen.id),
        ("4930555019", jurgen.id),
        ("15.07.1961", jurgen.id),
        ("1961-07-15", jurgen.id),
        ("adaeze okafor", adaeze.id),
        ("adaez", adaeze.id),
        ("kafor adaeze", adaeze.id),
        ("adaeze okafro", adaeze.id),
        ("olivia jones", olivia.id),
        ("smith-jones olivia", olivia.id),
        ("berg pieter", pieter.id),
        ("pieter van der berg", pieter.id),
        ("obrien sean", sean.id),
        ("o'brien seán", sean.id),
        ("zwierzchowska", zsofia.id),
        ("zwierchowska", zsofia.id),
        ("zsofia", zsofia.id),
        ("ierzchow", zsofia.id),
    ];
    for (query, expected) in cases {
        let hits = desk.search_patients(query).expect("searches");
        assert_eq!(
            hits.first().map(|h| h.id),
            Some(expected),
            "{query:?} -> {:?}",
            hits.iter()
                .take(3)
                .map(|h| format!("{} {} r{}", h.family, h.given, h.rank))
                .collect::<Vec<_>>()
        );
    }
    // Exact matches rank above looser ones.
    let hits = desk.search_patients("okafor").expect("searches");
    assert!(hits.iter().all(|h| h.rank <= 1 || hits[0].rank == 0));
    assert_eq!(hits[0].family, "Okafor");
    assert!(desk.search_patients("").expect("searches").is_empty());
    assert!(desk
        .search_patients("qqqqzzzz")
        .expect("searches")
        .is_empty());
}

#[test]
fn a_phone_call_finds_the_caller_by_number_date_as_said_or_name_and_birth_date() {
    let clinic = Clinic::new();
    let mut desk = clinic.as_role(Role::FrontDesk);
    let mut add = |family: &str, given: &str, birth: &str, phone: Option<&str>| -> Patient {
        let form = PatientForm {
            family: family.into(),
            given: given.into(),
            birth_date: birth.into(),
            sex: "female".into(),
            phone: phone.map(str::to_owned),
            ..PatientForm::default()
        };
        desk.register_patient(&NewPatient::from_form(&form, false, today()).expect("valid"))
            .expect("registers")
    };
    let anna = add("Lindqvist", "Anna", "1978-12-18", Some("+1 (415) 555-0111"));
    let other_anna = add("Berg", "Anna", "1980-01-02", Some("+1 (212) 555-0199"));
    add("Lindqvist", "Karin", "1978-12-18", None);
    let first = |desk: &mut Session, q: &str| {
        let hits = desk.search_patients(q).expect("searches");
        (
            hits.len(),
            hits.first().map(|h| (h.id, h.matched, h.phone.clone())),
        )
    };
    // The number without its country code, with its punctuation, or its last seven digits.
    for q in [
        "415-555-0111",
        "4155550111",
        "(415) 555 0111",
        "555-0111",
        "5550111",
    ] {
        let (n, hit) = first(&mut desk, q);
        assert_eq!(n, 1, "{q}");
        assert_eq!(
            hit,
            Some((anna.id, "phone", Some("+1 (415) 555-0111".into()))),
            "{q}"
        );
    }
    // A date as said on the phone: the clinic's order decides for slashes; a day past 12
    // reads one way only.
    assert_eq!(first(&mut desk, "12/18/1978").0, 2, "Anna and Karin");
    desk.lock().expect("locks");
    let mut admin = clinic.as_role(Role::Admin);
    admin.set_setting("date_format", "mdy").expect("mdy");
    assert_eq!(
        admin
            .set_setting("date_format", "yyyy")
            .expect_err("bad")
            .code(),
        "invalid_input"
    );
    admin.lock().expect("locks");
    let mut desk = clinic.as_role(Role::FrontDesk);
    let hits = desk.search_patients("01/02/1980").expect("searches");
    assert_eq!(hits[0].id, other_anna.id, "month first in this clinic");
    // A name and a birth date together: only that person.
    for q in [
        "Anna 1978-12-18",
        "anna 12/18/1978",
        "18.12.1978 Lindqvist Anna",
        "lindqvst 1978-12-18 anna",
    ] {
        let hits = desk.search_patients(q).expect("searches");
        assert_eq!(
            hits.iter().map(|h| h.id).collect::<Vec<_>>(),
            vec![anna.id],
            "{q}"
        );
        assert_eq!(hits[0].matched, "name_and_birth_date");
    }
    assert!(desk
        .search_patients("Anna 1999-01-01")
        .expect("searches")
        .is_empty());
    // A restricted patient outside one's care team is not found by name and birth date either.
    assert!(desk
        .search_patients("Mateo 1979-11-02")
        .expect("searches")
        .is_empty());
    let mut doctor = clinic.as_role(Role::Physician);
    let hits = doctor
        .search_patients("Mateo 1979-11-02")
        .expect("searches");
    assert_eq!(hits.len(), 1, "the care team finds him in memory");
    assert_eq!(hits[0].id, 2);
}

#[test]
fn the_demo_clinic_is_deterministic_and_plausible() {
    let charts = |seed: u64| -> (DemoSummary, Vec<String>) {
        let clinic = Clinic::new();
        let mut admin = clinic.as_role(Role::Admin);
        let summary = admin
            .generate_demo(
                &DemoOptions {
                    patients: 120,
                    seed,
                    as_of: today(),
                    long_chart_every: 100,
                },
                |_| {},
            )
            .expect("generates");
        drop(admin);
        let mut doctor = clinic.as_role(Role::Physician);
        let mut out = Vec::new();
        for id in 3..=122 {
            if let Ok(chart) = doctor.open_chart(id) {
                out.push(serde_json::to_string(&chart).expect("json"));
            }
        }
        (summary, out)
    };
    let (a, charts_a) = charts(7);
    let (b, charts_b) = charts(7);
    let (c, _) = charts(8);
    assert_eq!(a, b);
    assert_eq!(charts_a, charts_b);
    assert_ne!(a, c);
    assert_eq!(a.patients, 120);
    assert_eq!(
        a.long_charts.len(),
        1,
        "patients 3 to 122: one in a hundred"
    );
    assert!(a.observations > a.encounters * 3, "{a:?}");
    assert!(a.notes == a.encounters && a.addenda > 0 && a.immunizations > 0 && a.problems > 0);
    // Fictional by construction.
    for chart in &charts_a {
        let v: serde_json::Value = serde_json::from_str(chart).expect("json");
        if let Some(phone) = v["phone"].as_str() {
            assert!(phone.contains("555-01"), "{phone}");
        }
        if let Some(email) = v["email"].as_str() {
            assert!(email.ends_with("@example.org"), "{email}");
        }
        for n in v["notes"].as_array().into_iter().flatten() {
            let text = n["text"]
                .as_str()
                .or(n["subjective"].as_str())
                .unwrap_or("");
            assert!(text.contains("Synthetic demo record"), "{text}");
            assert_eq!(n["status"], "signed");
        }
    }
    // A long chart holds about 200 encounters and 2,000 observations.
    let clinic = Clinic::new();
    let mut admin = clinic.as_role(Role::Admin);
    let s = admin
        .generate_demo(
            &DemoOptions {
                patients: 1,
                seed: 3,
                as_of: today(),
                long_chart_every: 1,
            },
            |_| {},
        )
        .expect("generates");
    drop(admin);
    let mut doctor = clinic.as_role(Role::Physician);
    let id = s.long_charts[0];
    // One synthetic patient in a hundred is restricted; a physician can still get in.
    let chart = match doctor.open_chart(id) {
        Ok(chart) => chart,
        Err(_) => {
            doctor
                .break_glass(id, "Test of a long chart")
                .expect("breaks the glass");
            doctor.open_chart(id).expect("opens")
        }
    };
    assert_eq!(chart.encounters.as_ref().map(Vec::len), Some(200));
    let n = chart.vitals.as_ref().map_or(0, Vec::len);
    assert!((1500..=2600).contains(&n), "{n} observations");
}

#[test]
fn demo_refuses_other_roles_and_bad_sizes() {
    let clinic = Clinic::new();
    let mut doctor = clinic.as_role(Role::Physician);
    denied_by_role(
        doctor.generate_demo(
            &DemoOptions {
                patients: 5,
                seed: 1,
                as_of: today(),
                long_chart_every: 0,
            },
            |_| {},
        ),
        Permission::ImportRecords,
    );
    drop(doctor);
    let mut admin = clinic.as_role(Role::Admin);
    assert_eq!(
        admin
            .generate_demo(
                &DemoOptions {
                    patients: 0,
                    seed: 1,
                    as_of: today(),
                    long_chart_every: 0
                },
                |_| {}
            )
            .expect_err("empty")
            .code(),
        "invalid_input"
    );
}

#[test]
fn restricted_patients_are_shown_to_outsiders_only_as_restricted() {
    let clinic = Clinic::new();
    let mut doctor = clinic.as_role(Role::Physician);
    let hit = doctor
        .search_patients("castellanos")
        .expect("searches")
        .remove(0);
    assert!(
        hit.restricted && !hit.masked,
        "the care team sees who it is"
    );
    assert_eq!(hit.family, "Castellanos");
    let mrn = hit.mrn.clone();
    drop(doctor);

    let mut nurse = clinic.as_role(Role::Nurse);
    // Name, a typo of it, a prefix, the birth date: nothing, exactly as for someone who is
    // not a patient here.
    for query in [
        "castellanos",
        "castelanos",
        "castel",
        "Mateo",
        "1979-11-02",
        "02.11.1979",
    ] {
        assert_eq!(
            nurse.search_patients(query).expect("searches"),
            vec![],
            "{query} must not find a restricted chart the nurse may not open"
        );
    }
    // A decoy whose name is the date typed: it is found whether or not a restricted patient
    // was born that day (the date match of a chart one may not open decides nothing).
    drop(nurse);
    let mut desk = clinic.as_role(Role::FrontDesk);
    for (family, given) in [("Nov", "02 1979"), ("Nov", "03 1979")] {
        desk.register_patient(
            &NewPatient::new(family, given, "1990-01-01", "female", false, today()).expect("valid"),
        )
        .expect("registers");
    }
    let born_that_day = desk.search_patients("02 Nov 1979").expect("searches");
    let born_another = desk.search_patients("03 Nov 1979").expect("searches");
    assert_eq!(
        (born_that_day.len(), born_another.len()),
        (1, 1),
        "{born_that_day:?} {born_another:?}"
    );
    assert!(born_that_day.iter().all(|h| !h.restricted));
    drop(desk);
    let mut nurse = clinic.as_role(Role::Nurse);
    let found = nurse.search_patients(&mrn).expect("searches");
    assert_eq!(found.len(), 1, "the exact MRN finds it");
    let hit = found[0].clone();
    assert!(hit.restricted && hit.masked);
    assert_eq!((hit.matched, hit.rank), ("mrn", 0));
    assert_eq!(
        (hit.id.get(), hit.family.as_str(), hit.given.as_str()),
        (2, "Restricted patient", "")
    );
    assert_eq!((hit.birth_date, hit.age, hit.sex), (None, None, None));
    let json = serde_json::to_string(&hit).expect("json");
    assert!(!json.contains("Mateo") && !json.contains("1979"), "{json}");
    nurse
        .break_glass(2, "Collapsed in the waiting room")
        .expect("breaks the glass");
    let hit = nurse
        .search_patients("castellanos")
        .expect("searches")
        .remove(0);
    assert!(!hit.masked, "during the grant the nurse sees who it is");
    drop(nurse);
    // The admin, never on the care team and unable to break the glass, likewise.
    let mut admin = clinic.as_role(Role::Admin);
    assert_eq!(
        admin.search_patients("castellanos").expect("searches"),
        vec![]
    );
    assert!(admin.search_patients(&mrn).expect("searches")[0].masked);
}

#[test]
fn a_backup_taken_while_in_use_opens_with_the_same_passwords_and_holds_the_same_charts() {
    let clinic = Clinic::new();
    let mut doctor = clinic.as_role(Role::Physician);
    doctor
        .record_vitals(
            1,
            &VitalsInput {
                heart_rate: Some(64.0),
                ..VitalsInput::default()
            },
            None,
            None,
        )
        .expect("records");
    let before = serde_json::to_string(&doctor.open_chart(1).expect("opens")).expect("json");
    // The doctor keeps the vault open while the admin backs it up.
    let mut admin = clinic.as_role(Role::Admin);
    let target = clinic.config.dir.with_file_name("backup-1");
    let size = admin.backup(&target).expect("backs up");
    assert!(size > 0);
    assert_eq!(
        admin
            .backup(&target)
            .expect_err("never over an existing folder")
            .code(),
        "invalid_input"
    );
    drop(admin);
    drop(doctor);
    let copy = VaultConfig {
        dir: target,
        state_dir: clinic.config.state_dir.join("copy"),
        kdf: KdfPolicy::insecure_fast_for_tests(),
    };
    let mut restored = Session::unlock_with_clock(
        copy,
        "dr.okafor",
        &pw("physician-password"),
        std::sync::Arc::new(clinic.clock.clone()),
    )
    .expect("the copy opens");
    let after = serde_json::to_string(&restored.open_chart(1).expect("opens")).expect("json");
    assert_eq!(before, after);
    drop(restored);
    let backups = clinic.entries(AuditFilter {
        event: Some("vault.backup".into()),
        ..AuditFilter::default()
    });
    assert_eq!(
        backups.iter().map(|r| r.entry.outcome).collect::<Vec<_>>(),
        [Outcome::Success, Outcome::Failed]
    );
}

#[test]
fn whoever_restricts_a_chart_joins_its_care_team() {
    let clinic = Clinic::new();
    let mut desk = clinic.as_role(Role::FrontDesk);
    let p = desk
        .register_patient(
            &NewPatient::new("Sato", "Hiro", "1970-01-01", "male", false, today()).expect("valid"),
        )
        .expect("registers");
    drop(desk);
    let mut admin = clinic.as_role(Role::Admin);
    admin
        .update_patient(
            p.id,
            &PatientChanges {
                restricted: Some(true),
                ..PatientChanges::default()
            },
        )
        .expect_err("admin may not edit demographics");
    drop(admin);
    let mut nurse = clinic.as_role(Role::Nurse);
    denied_by_role(
        nurse.update_patient(
            p.id,
            &PatientChanges {
                restricted: Some(true),
                ..PatientChanges::default()
            },
        ),
        Permission::ManageCareTeam,
    );
    drop(nurse);
    let mut doctor = clinic.as_role(Role::Physician);
    let updated = doctor
        .update_patient(
            p.id,
            &PatientChanges {
                restricted: Some(true),
                ..PatientChanges::default()
            },
        )
        .expect("restricts");
    assert!(updated.restricted);
    let chart = doctor
        .open_chart(p.id)
        .expect("the physician who restricted it still opens it");
    assert_eq!(chart.care_team, ["desk.ruiz", "dr.okafor"]);
    assert_eq!(chart.access, ChartAccess::CareTeam);
}

#[test]
fn a_patient_registered_twice_is_caught_with_the_candidates_and_nothing_written() {
    let clinic = Clinic::new();
    let mut desk = clinic.as_role(Role::FrontDesk);
    let form = |family: &str, given: &str, birth: &str, phone: Option<&str>| {
        let form = PatientForm {
            family: family.into(),
            given: given.into(),
            birth_date: birth.into(),
            sex: "female".into(),
            phone: phone.map(str::to_owned),
            ..PatientForm::default()
        };
        NewPatient::from_form(&form, false, today()).expect("valid")
    };
    let anna = desk
        .register_patient(&form(
            "Lindqvist",
            "Anna",
            "1978-12-18",
            Some("+1 (415) 555-0111"),
        ))
        .expect("registers");
    let count = |s: &Session| -> i64 {
        s.connection_for_tests()
            .query_row("SELECT count(*) FROM patients", [], |r| r.get(0))
            .expect("count")
    };
    let before = count(&desk);
    for (again, matched) in [
        (
            form("LINDQVIST", "anna", "1978-12-18", None),
            "name_and_birth_date",
        ),
        (
            form("Lindqvist", "Anna-Maria", "1978-12-18", None),
            "name_and_birth_date",
        ),
        (
            form("Lindkvist", "Ann", "1978-12-18", Some("415 555 0111")),
            "birth_date_and_phone",
        ),
        (
            form("Lindqvist", "Anna", "1987-12-18", Some("5550111")),
            "name_and_phone",
        ),
    ] {
        let e = desk
            .register_patient(&again)
            .expect_err("a possible duplicate");
        assert_eq!(e.code(), "possible_duplicate");
        assert_eq!(e.kind(), ErrorKind::BadData);
        let c = e.duplicate_candidates().expect("candidates");
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(
            (c[0].id, c[0].mrn.as_str(), c[0].matched),
            (anna.id, anna.mrn.as_str(), matched)
        );
        assert!(e.to_string().contains(&anna.mrn), "{e}");
        assert_eq!(count(&desk), before, "nothing written");
    }
    // Someone else born the same day, or a twin, is not a candidate.
    desk.register_patient(&form("Berg", "Anna", "1978-12-18", None))
        .expect("another family");
    desk.register_patient(&form("Lindqvist", "Karin", "1978-12-18", None))
        .expect("a twin sister");
    // "This is a different person": registered, and the trail says it was confirmed.
    let twin = desk
        .register_new_person(&form("Lindqvist", "Anna", "1978-12-18", None))
        .expect("confirmed");
    assert_ne!(twin.mrn, anna.mrn);
    desk.lock().expect("locks");
    let created = clinic.entries(AuditFilter {
        event: Some("patient.create".into()),
        ..AuditFilter::default()
    });
    assert!(created
        .iter()
        .any(|r| r.entry.detail.as_deref() == Some("confirmed a different person")));
    let refused = clinic.entries(AuditFilter {
        event: Some("patient.create".into()),
        outcome: Some(Outcome::Failed),
        ..AuditFilter::default()
    });
    assert_eq!(refused.len(), 4);
    assert!(refused
        .iter()
        .all(|r| r.entry.detail.as_deref() == Some("refused: possible_duplicate")));
    // A restricted patient is a candidate only for someone who may open the chart: the
    // front desk registering "Mateo Castellanos" is not told he is a restricted patient here.
    let mut desk = clinic.as_role(Role::FrontDesk);
    desk.register_patient(&form("Castellanos", "Mateo", "1979-11-02", None))
        .expect("the desk is told nothing");
    let mut doctor = clinic.as_role(Role::Physician);
    let e = doctor
        .register_patient(&form("Castellanos", "Mateo", "1979-11-02", None))
        .expect_err("the care team is");
    let ids: Vec<i64> = e
        .duplicate_candidates()
        .expect("candidates")
        .iter()
        .map(|c| c.id.get())
        .collect();
    assert!(ids.contains(&2), "{ids:?}");
}

#[test]
fn a_drug_against_a_recorded_allergy_needs_a_reason_and_the_reverse_too() {
    let clinic = Clinic::new();
    let mut doctor = clinic.as_role(Role::Physician);
    doctor
        .add_allergy(
            1,
            &NewAllergy::new(
                "Penicillin",
                Some("Anaphylaxis"),
                Some("severe"),
                Some("medication"),
            )
            .expect("valid"),
        )
        .expect("records");
    let amoxicillin = NewMedication::new(
        "Amoxicillin",
        Some("500 mg"),
        Some("oral"),
        None,
        None,
        today(),
    )
    .expect("valid");
    let before = doctor.medications(1).expect("lists").len();
    let e = doctor.add_medication(1, &amoxicillin).expect_err("refused");
    assert_eq!(e.code(), "allergy_conflict");
    assert_eq!(e.kind(), ErrorKind::BadData);
    let words = e.to_string();
    for part in ["severe allergy to Penicillin", "penicillins", "reason"] {
        assert!(words.contains(part), "{part}: {words}");
    }
    assert_eq!(
        doctor.medications(1).expect("lists").len(),
        before,
        "nothing written"
    );
    // A cephalosporin warns too (a class that can cross-react); an unrelated drug does not.
    let cef = NewMedication::new("Cefalexin", None, None, None, None, today()).expect("valid");
    assert_eq!(
        doctor.add_medication(1, &cef).expect_err("related").code(),
        "allergy_conflict"
    );
    let metformin =
        NewMedication::new("Metformin", None, None, None, None, today()).expect("valid");
    doctor.add_medication(1, &metformin).expect("unrelated");
    // Saving anyway takes a reason, kept (sealed) with the medication.
    assert!(doctor
        .add_medication_despite_allergy(1, &amoxicillin, "  ")
        .is_err());
    let given = doctor
        .add_medication_despite_allergy(1, &amoxicillin, "Tolerated a graded challenge in 2024")
        .expect("saved with a reason");
    assert_eq!(
        given.allergy_override.as_deref(),
        Some("Tolerated a graded challenge in 2024")
    );
    // The same check when the allergy comes second.
    let nsaid =
        NewMedication::new("Ibuprofen", Some("400 mg"), None, None, None, today()).expect("valid");
    doctor
        .add_medication(1, &nsaid)
        .expect("no NSAID allergy yet");
    let aspirin =
        NewAllergy::new("Aspirin", Some("Wheeze"), Some("moderate"), None).expect("valid");
    let e = doctor
        .add_allergy(1, &aspirin)
        .expect_err("takes ibuprofen");
    assert_eq!(e.code(), "allergy_conflict");
    assert!(e.to_string().contains("Ibuprofen"), "{e}");
    let recorded = doctor
        .add_allergy_despite_medication(1, &aspirin, "Ibuprofen to be stopped today")
        .expect("recorded with a reason");
    assert_eq!(
        recorded.allergy_override.as_deref(),
        Some("Ibuprofen to be stopped today")
    );
    doctor.lock().expect("locks");
    // The trail says which were overridden and refused; never the reason's words.
    let entries = clinic.entries(AuditFilter {
        event: Some("medication.create".into()),
        ..AuditFilter::default()
    });
    assert!(entries
        .iter()
        .any(|r| r.entry.detail.as_deref() == Some("saved despite an allergy check: penicillins")));
    let refused = entries
        .iter()
        .filter(|r| r.entry.detail.as_deref() == Some("refused: allergy_conflict"))
        .count();
    assert_eq!(refused, 2);
    assert!(!entries.iter().any(|r| r
        .entry
        .detail
        .as_deref()
        .unwrap_or("")
        .contains("graded challenge")));
}

/// A migration test: version 14 fills the reversed phone digits of rows written before it.
#[test]
fn phones_registered_before_version_14_are_found_by_their_last_digits() {
    let conn = rusqlite::Connection::open_in_memory().expect("opens");
    conn.execute_batch(
        "CREATE TABLE patients (id INTEGER PRIMARY KEY, phone_digits TEXT);
         INSERT INTO patients (phone_digits) VALUES ('14155550111'), (NULL), ('');",
    )
    .expect("an older table");
    let v14 = crate::schema::MIGRATIONS
        .iter()
        .find(|m| m.version == 14)
        .expect("version 14");
    conn.execute_batch(v14.sql).expect("migrates");
    let rows: Vec<Option<String>> = conn
        .prepare("SELECT phone_rev FROM patients ORDER BY id")
        .expect("prepares")
        .query_map([], |r| r.get(0))
        .expect("reads")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(rows, [Some("11105555141".to_owned()), None, None]);
    assert_eq!(
        crate::chart::patient::phone_reversed("+1 (415) 555-0111"),
        "11105555141"
    );
}

#[test]
fn a_wrong_value_is_asked_about_then_marked_entered_in_error_kept_and_left_out() {
    let clinic = Clinic::new();
    let mut nurse = clinic.as_role(Role::Nurse);
    let input = |weight: f64| VitalsInput {
        weight: Some(weight),
        ..VitalsInput::default()
    };
    nurse
        .record_vitals(1, &input(55.5), None, None)
        .expect("first");
    // 180 typed where 55.5 kg was last: asked first, nothing written.
    let before = snapshot(&clinic);
    let asked = nurse
        .record_vitals_checked(1, &input(180.0), None, None, false)
        .expect_err("asks first");
    assert_eq!(asked.code(), "check_values");
    let questions = asked.field_errors().expect("the questions");
    assert_eq!(questions[0].field, "weight");
    assert_eq!(questions[0].suggestion.as_deref(), Some("180lb"));
    assert_eq!(
        snapshot(&clinic),
        before,
        "nothing written before the answer"
    );
    // Saved as typed once confirmed; then marked entered in error with a reason.
    let saved = nurse
        .record_vitals_checked(1, &input(180.0), None, None, true)
        .expect("saved as typed");
    assert_eq!(saved.questions.len(), 1);
    let wrong = saved.observations[0].id;
    assert!(nurse.vitals_entered_in_error(wrong, "  ").is_err());
    let mut desk = clinic.as_role(Role::FrontDesk);
    denied_by_role(
        desk.vitals_entered_in_error(wrong, "Wrong"),
        Permission::RecordVitals,
    );
    drop(desk);
    let marked = nurse
        .vitals_entered_in_error(wrong, "Pounds typed as kilograms")
        .expect("marks");
    assert_eq!(marked[0].status, "entered-in-error");
    assert!(matches!(
        nurse.vitals_entered_in_error(wrong, "Again"),
        Err(CoreError::Conflict(_))
    ));
    // Kept and visible, with who and why; the next weight is compared with 55.5 kg again.
    let all = nurse.vitals(1).expect("lists");
    let struck = all.iter().find(|o| o.id == wrong).expect("kept");
    let correction = struck.correction.as_ref().expect("marked");
    assert_eq!(correction.reason, "Pounds typed as kilograms");
    assert_eq!(correction.marked_by, "nurse.lee");
    let next = nurse
        .record_vitals_checked(1, &input(56.0), None, None, false)
        .expect("near the last that counts");
    assert!(next.questions.is_empty());
    drop(nurse);
    // The trail names the marking, never the reason.
    let trail = clinic.entries(AuditFilter {
        event: Some("vitals.entered_in_error".into()),
        ..AuditFilter::default()
    });
    assert_eq!(
        trail.len(),
        3,
        "the marking, the desk's denial and the second refused"
    );
    assert!(!format!("{trail:?}").contains("Pounds typed"));

    // A struck-out allergy no longer stops a medication or shows as active.
    let mut doctor = clinic.as_role(Role::Physician);
    let penicillin = doctor
        .add_allergy(
            1,
            &NewAllergy::new("Penicillin", None, Some("severe"), None).expect("a"),
        )
        .expect("adds");
    let amoxicillin =
        NewMedication::new("Amoxicillin", None, None, None, None, today()).expect("m");
    assert_eq!(
        doctor
            .add_medication(1, &amoxicillin)
            .expect_err("conflict")
            .code(),
        "allergy_conflict"
    );
    doctor
        .allergy_entered_in_error(penicillin.id, "Recorded for the wrong patient")
        .expect("marks");
    assert!(
        doctor.resolve_allergy(penicillin.id).is_err(),
        "a struck-out item stays as it is"
    );
    doctor
        .add_medication(1, &amoxicillin)
        .expect("no allergy counts now");
}

#[test]
fn a_restricted_chart_registered_by_the_desk_names_its_clinician_who_opens_it_without_breaking_the_glass(
) {
    let clinic = Clinic::new();
    let mut desk = clinic.as_role(Role::FrontDesk);
    let choices = desk.care_team_choices().expect("the desk may list them");
    assert!(choices
        .iter()
        .any(|(n, r)| n == "dr.okafor" && *r == Role::Physician));
    assert!(!choices
        .iter()
        .any(|(n, _)| n == "audit.kim" || n == "admin"));
    let new =
        NewPatient::new("Quist", "Mara", "1982-02-03", "female", true, today()).expect("valid");
    assert_eq!(
        desk.register_patient_with_team(&new, &[], false)
            .expect_err("no clinician named")
            .code(),
        "invalid_input"
    );
    assert!(desk
        .register_patient_with_team(&new, &["audit.kim".into()], false)
        .is_err());
    assert!(desk
        .register_patient_with_team(&new, &["desk.ruiz".into()], false)
        .is_err());
    let p = desk
        .register_patient_with_team(&new, &["dr.okafor".into()], false)
        .expect("registers");
    drop(desk);
    let mut doctor = clinic.as_role(Role::Physician);
    let chart = doctor
        .open_chart(p.id)
        .expect("on the team: no break-the-glass");
    assert!(matches!(chart.access, ChartAccess::CareTeam));
    let mut team = chart.care_team.clone();
    team.sort();
    assert_eq!(team, ["desk.ruiz", "dr.okafor"]);
    let grants = clinic.entries(AuditFilter {
        event: Some("break_glass".into()),
        ..AuditFilter::default()
    });
    assert!(grants.is_empty(), "no false alarm");
    // The security log that records the team verifies from its first entry.
    let mut auditor = clinic.as_role(Role::Auditor);
    let verified = auditor.verify_vault().expect("verifies");
    assert!(verified.security_log.ok, "{:?}", verified.security_log);
}

#[test]
fn a_lab_result_is_flagged_by_its_range_corrected_with_the_old_value_kept_and_struck_out() {
    use crate::{ReportInput, ResultFlag, ResultInput};
    let clinic = Clinic::new();
    let mut nurse = clinic.as_role(Role::Nurse);
    let panel = nurse
        .add_lab_report(
            1,
            &ReportInput {
                loinc: "57698-3".into(),
                at: Some("2026-03-02T08:10:00Z".into()),
                ..ReportInput::default()
            },
        )
        .expect("a report");
    assert_eq!(panel.status, "registered");
    assert_eq!(panel.name, "Lipid panel with direct LDL - Serum or Plasma");
    let typed = |loinc: &str, value: &str, range: &str| ResultInput {
        loinc: loinc.into(),
        value: value.into(),
        range: Some(range.into()),
        report_id: Some(panel.id.get()),
        ..ResultInput::default()
    };
    let ldl = nurse
        .add_lab_result(1, &typed("18262-6", "162", "<130"))
        .expect("LDL");
    // The unit, the flag and the collection time come from the test, the range and the
    // report.
    assert_eq!(ldl.unit.as_deref(), Some("mg/dL"));
    assert_eq!(ldl.flag, Some(ResultFlag::H));
    assert_eq!(ldl.collected_at, "2026-03-02T08:10:00.000000Z");
    assert_eq!(ldl.value, serde_json::json!(162.0));
    let hdl = nurse
        .add_lab_result(1, &typed("2085-9", "38", ">40"))
        .expect("HDL");
    assert_eq!(hdl.flag, Some(ResultFlag::L));
    // Every wrong field at once, nothing written.
    let before = snapshot(&clinic);
    let wrong = nurse
        .add_lab_result(1, &typed("2093-4", "", "200-100"))
        .expect_err("refused");
    let fields: Vec<&str> = wrong
        .field_errors()
        .expect("per field")
        .iter()
        .map(|f| f.field.as_str())
        .collect();
    assert_eq!(fields, ["loinc", "value", "range"]);
    assert_eq!(snapshot(&clinic), before);

    // A correction: the new value is current, the old one stays beside it.
    assert!(nurse
        .correct_lab_result(
            ldl.id,
            &ResultInput {
                value: "126".into(),
                ..ResultInput::default()
            },
            " "
        )
        .is_err());
    let corrected = nurse
        .correct_lab_result(
            ldl.id,
            &ResultInput {
                value: "126".into(),
                ..ResultInput::default()
            },
            "The lab sent a corrected report",
        )
        .expect("corrected");
    assert_eq!(corrected.status, "corrected");
    assert_eq!(corrected.flag, Some(ResultFlag::N), "the range is kept");
    assert_eq!(corrected.earlier.len(), 1);
    assert_eq!(corrected.earlier[0].value, serde_json::json!(162.0));
    assert_eq!(
        corrected.reason.as_deref(),
        Some("The lab sent a corrected report")
    );
    // The replaced version cannot be corrected again, nor another test put in its place.
    assert_eq!(
        nurse
            .correct_lab_result(
                ldl.id,
                &ResultInput {
                    value: "1".into(),
                    ..ResultInput::default()
                },
                "again"
            )
            .expect_err("latest only")
            .code(),
        "conflict"
    );
    // Entered in error: it stays, struck out, with the reason; the report says so.
    let marked = nurse
        .lab_result_entered_in_error(hdl.id, "Another patient's sample")
        .expect("marked");
    assert_eq!(marked.status, "entered-in-error");
    assert_eq!(
        marked.correction.as_ref().map(|c| c.reason.as_str()),
        Some("Another patient's sample")
    );
    assert!(nurse.lab_result_entered_in_error(hdl.id, "twice").is_err());
    let mut doctor = clinic.as_role(Role::Physician);
    let chart = doctor.open_chart(1).expect("opens");
    let results = chart.lab_results.expect("results");
    assert_eq!(results.len(), 2, "two tests, the corrected one once");
    let reports = chart.lab_reports.expect("reports");
    assert_eq!(reports[0].status, "corrected");
    assert_eq!(reports[0].result_ids.len(), 2);
    // The trend of one test.
    let trend = doctor.lab_results(1, Some("18262-6")).expect("trend");
    assert_eq!(trend.len(), 1);
    assert_eq!(trend[0].value, serde_json::json!(126.0));

    // Who may: clinical roles read; physicians and nurses write; the desk, the auditor and
    // the admin neither read nor write results.
    for role in [Role::FrontDesk, Role::Auditor, Role::Admin] {
        let mut s = clinic.as_role(role);
        assert!(s.lab_results(1, None).is_err(), "{role:?} reads results");
        assert!(
            s.add_lab_result(1, &typed("2345-7", "98", "70-99"))
                .is_err(),
            "{role:?} records results"
        );
        if let Ok(chart) = s.open_chart(1) {
            assert!(chart.lab_results.is_none(), "{role:?} sees results");
        }
    }
    // The values are sealed in the file: no clinical value appears in clear.
    let raw = clinic.raw();
    let clear: i64 = raw
        .query_row(
            "SELECT count(*) FROM lab_results WHERE typeof(value) != 'blob' OR typeof(loinc) != 'blob' OR typeof(flag) != 'blob'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(clear, 0);
}
