//! The appointment book through the Session on real SQLCipher vaults: the role rules, the
//! audit of every change and every list, clashes, a race between two sessions, time zones.

use std::sync::{Arc, Barrier};

use crate::gate_tests::{rows, Clinic, RECORD_TABLES};
use crate::*;

fn booking(clinician: &str, at: &str) -> Booking {
    Booking {
        clinician: clinician.into(),
        at: at.into(),
        ..Booking::default()
    }
}

/// A clinic in Berlin whose doctor works Wednesdays 08:00-12:00 and 13:00-17:00, with two
/// appointment types. The clock reads Tuesday 3 March 2026, 11:00 in Berlin.
fn berlin() -> Clinic {
    let clinic = Clinic::new();
    let mut admin = clinic.as_role(Role::Admin);
    admin
        .set_setting("clinic_time_zone", "Europe/Berlin")
        .expect("zone");
    for who in ["dr.okafor", "nurse.lee"] {
        admin
            .set_schedule(who, "wed", "08:00-12:00,13:00-17:00")
            .expect("hours");
    }
    admin.add_appointment_type("New patient", 30).expect("type");
    admin.add_appointment_type("Follow-up", 15).expect("type");
    admin.lock().expect("locks");
    clinic
}

fn record_tables(session: &Session) -> String {
    let conn = session.connection_for_tests();
    let mut out = String::new();
    for table in RECORD_TABLES {
        for row in rows(
            conn,
            table,
            &format!("SELECT * FROM {table} ORDER BY 1"),
            &[],
            crate::gate_tests::debug_value,
        ) {
            out.push_str(&row);
            out.push('\n');
        }
    }
    out
}

#[test]
fn a_day_at_the_front_desk_from_booking_to_the_encounter() {
    let clinic = berlin();
    let mut desk = clinic.as_role(Role::FrontDesk);
    let mut b = booking("dr.okafor", "2026-03-04 09:00");
    b.appointment_type = Some("new patient".into());
    b.reason = Some("Knee pain since the fall".into());
    let a = desk.book_appointment(1, &b).expect("books");
    assert_eq!(a.start, "2026-03-04T09:00:00+01:00");
    assert_eq!(a.end, "2026-03-04T09:30:00+01:00");
    assert_eq!(a.kind.as_deref(), Some("New patient"));
    assert_eq!(a.status, AppointmentStatus::Booked);
    assert!(!a.overbooked);
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);
    assert_eq!(a.patient_name, "Lee, Grace");

    // The next free slot for a follow-up is right after it.
    let free = desk
        .free_slots(
            "dr.okafor",
            Some("2026-03-04 08:50"),
            Some("Follow-up"),
            None,
            3,
        )
        .expect("free");
    let starts: Vec<&str> = free.iter().map(|f| f.start.as_str()).collect();
    assert_eq!(
        starts,
        [
            "2026-03-04T09:30:00+01:00",
            "2026-03-04T09:45:00+01:00",
            "2026-03-04T10:00:00+01:00"
        ]
    );

    // The physician cannot book; the front desk cannot start.
    let mut doctor = clinic.as_role(Role::Physician);
    assert_eq!(
        doctor
            .book_appointment(1, &booking("dr.okafor", "2026-03-04 10:00"))
            .expect_err("not the physician's job")
            .code(),
        "forbidden"
    );
    assert_eq!(
        desk.start_appointment(a.id).expect_err("desk").code(),
        "forbidden"
    );
    // The day: the desk checks in, the nurse rooms, the doctor starts it.
    clinic.clock.advance(chrono::Duration::hours(21)); // Wednesday 08:00 in Berlin
    desk.lock().expect("locks");
    let mut desk = clinic.as_role(Role::FrontDesk);
    let arrived = desk.arrive_appointment(a.id).expect("checks in");
    assert_eq!(arrived.status, AppointmentStatus::Arrived);
    assert!(arrived.arrived_at.is_some());
    let mut nurse = clinic.as_role(Role::Nurse);
    assert_eq!(
        nurse.room_appointment(a.id).expect("rooms").status,
        AppointmentStatus::InRoom
    );
    // Not the nurse's appointment to start.
    assert_eq!(
        nurse.start_appointment(a.id).expect_err("not hers").code(),
        "forbidden"
    );
    let mut doctor = clinic.as_role(Role::Physician);
    let started = doctor.start_appointment(a.id).expect("starts");
    assert_eq!(started.appointment.status, AppointmentStatus::Seen);
    assert_eq!(started.appointment.encounter_id, Some(started.encounter.id));
    assert_eq!(started.encounter.reason, "Knee pain since the fall");
    // The chart shows the appointment and its encounter.
    let chart = doctor.open_chart(1).expect("chart");
    assert_eq!(chart.appointments.as_ref().map(Vec::len), Some(1));
    assert_eq!(chart.encounters.as_ref().map(Vec::len), Some(1));
    // Started once only.
    assert_eq!(
        doctor.start_appointment(a.id).expect_err("twice").code(),
        "conflict"
    );
    // The auditor sees none of the book.
    let mut auditor = clinic.as_role(Role::Auditor);
    assert_eq!(
        auditor
            .appointments(&AppointmentQuery::default())
            .expect_err("auditor")
            .code(),
        "forbidden"
    );
    assert!(auditor.schedule("dr.okafor", None).is_err());
}

#[test]
fn every_change_and_every_list_is_audited_with_its_patients() {
    let clinic = berlin();
    let mut desk = clinic.as_role(Role::FrontDesk);
    let a = desk
        .book_appointment(1, &booking("dr.okafor", "2026-03-04 09:00"))
        .expect("books");
    let b = desk
        .book_appointment(2, &booking("dr.okafor", "2026-03-04 10:00"))
        .expect("books the restricted patient");
    desk.move_appointment(a.id, "2026-03-04 11:00", false)
        .expect("moves");
    desk.cancel_appointment(b.id, "Patient called to cancel")
        .expect("cancels");
    let day = desk
        .appointments(&AppointmentQuery {
            day: Some("2026-03-04".into()),
            ..AppointmentQuery::default()
        })
        .expect("lists");
    assert_eq!(day.len(), 2);
    desk.lock().expect("locks");
    let entries = clinic.entries(AuditFilter::default());
    let events: Vec<(&str, Option<&str>)> = entries
        .iter()
        .filter(|r| r.entry.event.starts_with("appointment."))
        .map(|r| (r.entry.event.as_str(), r.entry.patient_id.as_deref()))
        .collect();
    assert_eq!(
        events,
        [
            ("appointment.create", Some("1")),
            ("appointment.create", Some("2")),
            ("appointment.move", Some("1")),
            ("appointment.cancel", Some("2")),
            ("appointment.list", None),
            ("appointment.list", Some("1")),
            ("appointment.list", Some("2")),
        ]
    );
    // The list's own entry says how many patients it showed; no free text of the booking
    // (the reason) is in the trail.
    let list = entries
        .iter()
        .find(|r| r.entry.event == "appointment.list" && r.entry.patient_id.is_none())
        .expect("list entry");
    assert!(
        list.entry
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains("2 appointments of 2 patients"),
        "{:?}",
        list.entry.detail
    );
    assert!(!entries.iter().any(|r| r
        .entry
        .detail
        .as_deref()
        .unwrap_or_default()
        .contains("called to cancel")));
    // A busy book is not a chart burst.
    assert_eq!(clinic.alert_count(alert_rule::CHART_BURST), 0);
}

#[test]
fn a_clash_is_refused_and_writes_nothing_unless_overbooked_on_purpose() {
    let clinic = berlin();
    let mut desk = clinic.as_role(Role::FrontDesk);
    let mut first = booking("dr.okafor", "2026-03-04 09:00");
    first.minutes = Some(30);
    desk.book_appointment(1, &first).expect("books");
    let before = record_tables(&desk);
    let e = desk
        .book_appointment(2, &booking("dr.okafor", "2026-03-04 09:15"))
        .expect_err("clash");
    assert_eq!(e.code(), "conflict");
    assert!(e.to_string().contains("09:00 to 09:30"), "{e}");
    assert_eq!(
        record_tables(&desk),
        before,
        "a refused booking wrote nothing"
    );
    // Back to back is no clash; overbooking on purpose is marked.
    let next = desk
        .book_appointment(2, &booking("dr.okafor", "2026-03-04 09:30"))
        .expect("back to back");
    assert!(!next.overbooked);
    let mut over = booking("dr.okafor", "2026-03-04 09:15");
    over.overbook = true;
    let over = desk.book_appointment(2, &over).expect("overbooks");
    assert!(over.overbooked);
    // Another clinician's book is their own; a cancelled slot is free again.
    desk.book_appointment(2, &booking("nurse.lee", "2026-03-04 09:00"))
        .expect("the nurse is free");
    desk.cancel_appointment(next.id, "Rescheduled")
        .expect("cancels");
    desk.book_appointment(1, &booking("dr.okafor", "2026-03-04 09:45"))
        .expect("free again");
    // Outside working hours is booked, with a warning; on a day off too.
    let late = desk
        .book_appointment(1, &booking("dr.okafor", "2026-03-04 18:00"))
        .expect("books late");
    assert!(late.warnings[0].contains("outside"), "{:?}", late.warnings);
    // Bad input is refused in words, and nothing is written.
    let before = record_tables(&desk);
    for (at, why) in [
        ("2026-03-02 09:00", "past"),
        ("2026-03-29 02:30", "does not exist"),
        ("next tuesday", "not a time"),
    ] {
        let e = desk
            .book_appointment(1, &booking("dr.okafor", at))
            .expect_err(at);
        assert!(e.to_string().contains(why), "{at}: {e}");
    }
    for who in ["desk.ruiz", "nobody"] {
        assert!(desk
            .book_appointment(1, &booking(who, "2026-03-05 09:00"))
            .is_err());
    }
    let mut typed = booking("dr.okafor", "2026-03-05 09:00");
    typed.appointment_type = Some("Massage".into());
    let e = desk.book_appointment(1, &typed).expect_err("unknown type");
    assert!(e.to_string().contains("Follow-up, New patient"), "{e}");
    assert_eq!(record_tables(&desk), before);
}

#[test]
fn two_sessions_racing_for_one_slot_get_one_booking() {
    let clinic = berlin();
    let barrier = Arc::new(Barrier::new(2));
    let results: Vec<Result<Appointment, CoreError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = [1, 2]
            .into_iter()
            .map(|patient| {
                let barrier = barrier.clone();
                let mut desk = clinic.as_role(Role::FrontDesk);
                scope.spawn(move || {
                    barrier.wait();
                    desk.book_appointment(patient, &booking("dr.okafor", "2026-03-04 09:00"))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 1, "{results:?}");
    let err = results
        .iter()
        .find_map(|r| r.as_ref().err())
        .expect("one refused");
    assert_eq!(err.code(), "conflict");
    assert!(
        err.to_string().starts_with("That time was just taken"),
        "{err}"
    );
    let mut doctor = clinic.as_role(Role::Physician);
    let day = doctor
        .appointments(&AppointmentQuery {
            day: Some("2026-03-04".into()),
            ..AppointmentQuery::default()
        })
        .expect("lists");
    assert_eq!(day.len(), 1);
}

#[test]
fn a_restricted_patient_is_booked_without_showing_who_they_are() {
    let clinic = berlin();
    let mut desk = clinic.as_role(Role::FrontDesk);
    let mut b = booking("dr.okafor", "2026-03-04 09:00");
    b.reason = Some("Follow-up of the confidential matter".into());
    let a = desk.book_appointment(2, &b).expect("books");
    assert!(a.restricted);
    assert_eq!(a.reason, None, "the reason is the care team's");
    assert!(
        !a.patient_name.contains("Castellanos"),
        "{}",
        a.patient_name
    );
    // The physician on the care team sees who and why.
    let mut doctor = clinic.as_role(Role::Physician);
    let day = doctor
        .appointments(&AppointmentQuery {
            clinician: Some("dr.okafor".into()),
            day: Some("2026-03-04".into()),
            ..AppointmentQuery::default()
        })
        .expect("lists");
    assert_eq!(day[0].patient_name, "Castellanos, Mateo");
    assert_eq!(
        day[0].reason.as_deref(),
        Some("Follow-up of the confidential matter")
    );
    // A nurse outside the care team: her keys could open the chart (to break the glass), but
    // the book shows her the placeholder and the MRN only, as it shows the front desk.
    let mut nurse = clinic.as_role(Role::Nurse);
    let seen = nurse
        .appointments(&AppointmentQuery {
            patient_id: Some(2),
            ..AppointmentQuery::default()
        })
        .expect("lists");
    assert_eq!(seen[0].patient_name, "Restricted patient");
    assert_eq!(seen[0].birth_date, "");
    assert_eq!(seen[0].reason, None);
    assert_eq!(seen[0].mrn, a.mrn);
    let roomed = nurse.room_appointment(a.id).expect("rooms");
    assert_eq!(roomed.patient_name, "Restricted patient");
}

#[test]
fn a_no_show_who_turns_up_gets_the_time_back_only_if_it_is_still_free() {
    let clinic = berlin();
    let mut desk = clinic.as_role(Role::FrontDesk);
    let first = desk
        .book_appointment(1, &booking("dr.okafor", "2026-03-04 09:00"))
        .expect("books");
    let late = desk
        .book_appointment(2, &booking("dr.okafor", "2026-03-04 10:00"))
        .expect("books");
    desk.lock().expect("locks");
    clinic.clock.advance(chrono::Duration::hours(24)); // Wednesday 11:00 in Berlin
    let mut desk = clinic.as_role(Role::FrontDesk);
    for id in [first.id, late.id] {
        desk.no_show_appointment(id).expect("no-show");
    }
    // 09:00 stays free: the patient who turns up late takes it back.
    assert_eq!(
        desk.arrive_appointment(first.id).expect("arrives").status,
        AppointmentStatus::Arrived
    );
    // 10:00 was given to someone else meanwhile: refused, nothing changed.
    desk.book_appointment(1, &booking("dr.okafor", "2026-03-04 10:05"))
        .expect("a walk-in in the freed time");
    let e = desk.arrive_appointment(late.id).expect_err("taken");
    assert_eq!(e.code(), "conflict");
    let day = desk
        .appointments(&AppointmentQuery {
            day: Some("2026-03-04".into()),
            ..AppointmentQuery::default()
        })
        .expect("lists");
    let late_now = day.iter().find(|a| a.id == late.id).expect("listed");
    assert_eq!(late_now.status, AppointmentStatus::NoShow);
}

#[test]
fn text_that_would_display_as_something_else_is_refused() {
    let clinic = berlin();
    let mut desk = clinic.as_role(Role::FrontDesk);
    let mut b = booking("dr.okafor", "2026-03-04 09:00");
    b.reason = Some("ok \u{202e}gnp.exe".into());
    let e = desk.book_appointment(1, &b).expect_err("bidi override");
    assert!(e.to_string().contains("text-direction"), "{e}");
    let e = desk
        .book_appointment(1, &booking("dr.okafor", "+262142-12-31 23:50"))
        .expect_err("far-off year");
    assert!(e.to_string().contains("1900 to 2200"), "{e}");
    assert!(desk
        .free_slots("dr.okafor", Some("+262142-12-31 23:50"), None, None, 1)
        .is_err());
}

#[test]
fn the_book_keeps_local_time_across_the_clocks_changing() {
    let clinic = Clinic::new();
    let mut admin = clinic.as_role(Role::Admin);
    admin
        .set_setting("clinic_time_zone", "America/Chicago")
        .expect("zone");
    for day in ["fri", "mon"] {
        admin
            .set_schedule("dr.okafor", day, "09:00-10:00")
            .expect("hours");
    }
    admin.lock().expect("locks");
    let mut desk = clinic.as_role(Role::FrontDesk);
    // Friday before the change, Monday after it: 09:00 both, offsets -06:00 then -05:00.
    let fri = desk
        .book_appointment(1, &booking("dr.okafor", "2026-03-06 09:00"))
        .expect("friday");
    let mon = desk
        .book_appointment(1, &booking("dr.okafor", "2026-03-09 09:00"))
        .expect("monday");
    assert_eq!(fri.start, "2026-03-06T09:00:00-06:00");
    assert_eq!(mon.start, "2026-03-09T09:00:00-05:00");
    assert!(fri.warnings.is_empty() && mon.warnings.is_empty());
    let free = desk
        .free_slots("dr.okafor", Some("2026-03-07 00:00"), None, Some(30), 2)
        .expect("free");
    assert_eq!(free[0].start, "2026-03-09T09:15:00-05:00");
    assert_eq!(free[1].start, "2026-03-13T09:00:00-05:00");
    // The hour the clocks skip does not exist; the hour they repeat asks which one.
    let e = desk
        .book_appointment(1, &booking("dr.okafor", "2026-03-08 02:30"))
        .expect_err("skipped");
    assert!(e.to_string().contains("does not exist"), "{e}");
    let e = desk
        .book_appointment(1, &booking("dr.okafor", "2026-11-01 01:30"))
        .expect_err("twice");
    assert!(e.to_string().contains("happens twice"), "{e}");
    let second = desk
        .book_appointment(1, &booking("dr.okafor", "2026-11-01T01:30:00-06:00"))
        .expect("the second 01:30, written out");
    assert_eq!(second.start, "2026-11-01T01:30:00-06:00");
}

#[test]
fn the_demo_book_fills_working_days_and_keeps_a_clinics_own_types() {
    let clinic = berlin();
    let mut admin = clinic.as_role(Role::Admin);
    admin
        .generate_demo(
            &DemoOptions {
                patients: 30,
                seed: 3,
                as_of: chrono::NaiveDate::from_ymd_opt(2026, 3, 3).expect("date"),
                long_chart_every: 0,
            },
            |_| {},
        )
        .expect("demo");
    let written = admin
        .generate_demo_appointments(&DemoBook {
            clinicians: vec!["dr.okafor".into(), "nurse.lee".into()],
            as_of: chrono::NaiveDate::from_ymd_opt(2026, 3, 3).expect("date"),
            days_before: 0,
            days_after: 6,
            per_day: 4,
            seed: 3,
        })
        .expect("books");
    // Tuesday 3 to Monday 9 March: five working days, two clinicians, four each.
    assert_eq!(written, 5 * 2 * 4);
    let types = admin.appointment_types().expect("types");
    let new_patient = types
        .iter()
        .find(|t| t.name == "New patient")
        .expect("kept");
    assert_eq!(new_patient.minutes, 30, "the clinic's own length stays");
    let week = admin.schedule("nurse.lee", None).expect("schedule");
    assert_eq!(week.hours["fri"], "08:00-12:00,13:00-17:00");
    assert!(admin
        .generate_demo_appointments(&DemoBook {
            clinicians: vec![],
            as_of: chrono::NaiveDate::from_ymd_opt(2026, 3, 3).expect("date"),
            days_before: 0,
            days_after: 1,
            per_day: 4,
            seed: 3,
        })
        .is_err());
}
