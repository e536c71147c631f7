//! The appointment book from the command line: schedules, appointment types and
//! appointments. Times are the clinic's (`clinic_time_zone`) unless they carry an offset.

use chartroom_core::{
    Appointment, AppointmentQuery, AppointmentType, Booking, ScheduleView, Session,
};
use clap::Subcommand;
use serde_json::{json, Value};

use crate::{Failure, Output};

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Set a clinician's working hours on a day of the week (admin).
    Set {
        /// The physician or nurse.
        #[arg(value_name = "USER")]
        clinician: String,
        /// mon … sun; several as mon,tue or mon-fri.
        #[arg(long, value_name = "DAYS")]
        day: String,
        /// 08:00-12:00,13:00-17:00 (the gap is the break), or off.
        #[arg(long, value_name = "HOURS")]
        hours: String,
    },
    /// Mark a day off for a clinician (admin); --undo makes it a working day again.
    Off {
        #[arg(value_name = "USER")]
        clinician: String,
        #[arg(long, value_name = "DATE")]
        date: String,
        #[arg(long)]
        undo: bool,
    },
    /// Show a clinician's weekly hours, days off and the days of one week.
    Show {
        #[arg(value_name = "USER")]
        clinician: String,
        /// Any date in the week to show (default: this week).
        #[arg(long, value_name = "DATE")]
        week: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AppointmentTypeCommand {
    /// Add an appointment type with its default length (admin); an existing name gets the
    /// new length.
    Add {
        name: String,
        #[arg(long, value_name = "N")]
        minutes: u32,
    },
    /// List the appointment types.
    List,
}

#[derive(Debug, Subcommand)]
pub enum AppointmentCommand {
    /// Book a patient with a clinician (front desk). A clash exits 65 (`conflict`) unless
    /// --overbook.
    Book {
        #[arg(long, value_name = "ID")]
        patient: i64,
        /// The clinician (physician or nurse).
        #[arg(long = "with", value_name = "USER")]
        with: String,
        /// "2026-03-02 09:00" in the clinic's zone, or with an offset.
        #[arg(long, value_name = "TIME")]
        at: String,
        /// An appointment type (its length is the default).
        #[arg(long = "type", value_name = "NAME")]
        kind: Option<String>,
        /// The length in minutes (default: the type's, or 15).
        #[arg(long, value_name = "N")]
        minutes: Option<u32>,
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        /// Book even though the clinician is already booked then (marked as overbooked).
        #[arg(long)]
        overbook: bool,
    },
    /// List appointments: a day (default today), a clinician's, or a patient's.
    List {
        #[arg(long, value_name = "DATE")]
        day: Option<String>,
        /// How many days from --day (7 for a week).
        #[arg(long, value_name = "N")]
        days: Option<u32>,
        #[arg(long = "with", value_name = "USER")]
        with: Option<String>,
        #[arg(long, value_name = "ID")]
        patient: Option<i64>,
    },
    /// The next free slots of a clinician.
    Free {
        #[arg(long = "with", value_name = "USER")]
        with: String,
        /// From when (default now).
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        #[arg(long = "type", value_name = "NAME")]
        kind: Option<String>,
        #[arg(long, value_name = "N")]
        minutes: Option<u32>,
        #[arg(long, value_name = "N", default_value_t = 5)]
        count: usize,
    },
    /// Move a booked appointment to another time (its length kept).
    Move {
        id: i64,
        #[arg(long, value_name = "TIME")]
        at: String,
        #[arg(long)]
        overbook: bool,
    },
    /// Cancel an appointment, with the reason.
    Cancel {
        id: i64,
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Check the patient in (front desk, nurse).
    Arrive { id: i64 },
    /// The patient is in an examination room (nurse).
    Room { id: i64 },
    /// The patient did not come (front desk).
    #[command(name = "no-show")]
    NoShow { id: i64 },
    /// Start your own appointment: opens its encounter and prints it.
    Start { id: i64 },
}

fn day_list(text: &str) -> Result<Vec<&'static str>, Failure> {
    let weekdays = chartroom_core::schedule::WEEKDAYS;
    let index = |t: &str| -> Result<usize, Failure> {
        let day = chartroom_core::schedule::parse_weekday(t)?;
        Ok(day.num_days_from_monday() as usize)
    };
    let mut out = Vec::new();
    for part in text.split(',') {
        if let Some((a, b)) = part.split_once('-') {
            let (a, b) = (index(a)?, index(b)?);
            if a > b {
                return Err(Failure::usage(
                    "A range of days runs forward in the week: mon-fri.",
                ));
            }
            out.extend(weekdays[a..=b].iter().copied());
        } else {
            out.push(weekdays[index(part)?]);
        }
    }
    Ok(out)
}

fn schedule_text(v: &ScheduleView) -> String {
    let mut text = format!("{} (times in {})\n", v.clinician, v.time_zone);
    for day in &v.days {
        text.push_str(&format!(
            "  {} {}  {}{}\n",
            day.weekday,
            day.date,
            day.hours,
            if day.day_off { "  (day off)" } else { "" }
        ));
    }
    text
}

fn local(rfc3339: &str) -> String {
    rfc3339
        .get(..16)
        .map(|t| t.replace('T', " "))
        .unwrap_or_else(|| rfc3339.to_owned())
}

fn line(a: &Appointment) -> String {
    format!(
        "{:>5}  {}-{}  {:<14} {:<28} {} {}{}{}",
        a.id,
        local(&a.start),
        a.end.get(11..16).unwrap_or(""),
        a.clinician,
        format!("{} (MRN {})", a.patient_name, a.mrn),
        a.status.label(),
        a.kind
            .as_deref()
            .map(|k| format!("· {k} "))
            .unwrap_or_default(),
        a.reason
            .as_deref()
            .map(|r| format!("· {r}"))
            .unwrap_or_default(),
        if a.overbooked { " · overbooked" } else { "" },
    )
}

fn one(a: Appointment, verb: &str) -> Output {
    let mut text = format!("Appointment {} {verb}:\n{}", a.id, line(&a));
    for w in &a.warnings {
        text.push_str(&format!("\nWarning: {w}"));
    }
    Output::new(to_json(&a), text)
}

pub fn schedule(session: &mut Session, cmd: &ScheduleCommand) -> Result<Output, Failure> {
    let view = match cmd {
        ScheduleCommand::Set {
            clinician,
            day,
            hours,
        } => {
            let mut last = None;
            for d in day_list(day)? {
                last = Some(session.set_schedule(clinician, d, hours)?);
            }
            last.ok_or_else(|| Failure::usage("Name at least one day."))?
        }
        ScheduleCommand::Off {
            clinician,
            date,
            undo,
        } => {
            let date = chartroom_core::zone::parse_date("date", date)?;
            session.set_day_off(clinician, date, !undo)?
        }
        ScheduleCommand::Show { clinician, week } => {
            let week = week
                .as_deref()
                .map(|w| chartroom_core::zone::parse_date("week", w))
                .transpose()?;
            session.schedule(clinician, week)?
        }
    };
    let text = schedule_text(&view);
    Ok(Output::new(to_json(&view), text))
}

pub fn appointment_type(
    session: &mut Session,
    cmd: &AppointmentTypeCommand,
) -> Result<Output, Failure> {
    match cmd {
        AppointmentTypeCommand::Add { name, minutes } => {
            let t = session.add_appointment_type(name, *minutes)?;
            let text = format!("Appointment type \"{}\": {} minutes.", t.name, t.minutes);
            Ok(Output::new(to_json(&t), text))
        }
        AppointmentTypeCommand::List => {
            let types: Vec<AppointmentType> = session.appointment_types()?;
            let text = if types.is_empty() {
                "No appointment types yet (the administrator adds them).".to_owned()
            } else {
                types
                    .iter()
                    .map(|t| format!("{:<24} {} min", t.name, t.minutes))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            Ok(Output::new(json!({"appointment_types": types}), text))
        }
    }
}

pub fn appointment(session: &mut Session, cmd: &AppointmentCommand) -> Result<Output, Failure> {
    match cmd {
        AppointmentCommand::Book {
            patient,
            with,
            at,
            kind,
            minutes,
            reason,
            overbook,
        } => {
            let a = session.book_appointment(
                *patient,
                &Booking {
                    clinician: with.clone(),
                    at: at.clone(),
                    appointment_type: kind.clone(),
                    minutes: *minutes,
                    reason: reason.clone(),
                    overbook: *overbook,
                },
            )?;
            Ok(one(a, "booked"))
        }
        AppointmentCommand::List {
            day,
            days,
            with,
            patient,
        } => {
            let list = session.appointments(&AppointmentQuery {
                day: day.clone(),
                days: *days,
                clinician: with.clone(),
                patient_id: *patient,
                active_only: false,
            })?;
            let text = if list.is_empty() {
                "No appointments.".to_owned()
            } else {
                list.iter().map(line).collect::<Vec<_>>().join("\n")
            };
            Ok(Output::new(json!({"appointments": list}), text))
        }
        AppointmentCommand::Free {
            with,
            from,
            kind,
            minutes,
            count,
        } => {
            let slots =
                session.free_slots(with, from.as_deref(), kind.as_deref(), *minutes, *count)?;
            let text = if slots.is_empty() {
                format!("{with} has no free time in the next 120 days (are working hours set?).")
            } else {
                slots
                    .iter()
                    .map(|s| {
                        format!(
                            "{}-{}  {}",
                            local(&s.start),
                            s.end.get(11..16).unwrap_or(""),
                            s.clinician
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            Ok(Output::new(json!({"slots": slots}), text))
        }
        AppointmentCommand::Move { id, at, overbook } => {
            Ok(one(session.move_appointment(*id, at, *overbook)?, "moved"))
        }
        AppointmentCommand::Cancel { id, reason } => {
            Ok(one(session.cancel_appointment(*id, reason)?, "cancelled"))
        }
        AppointmentCommand::Arrive { id } => {
            Ok(one(session.arrive_appointment(*id)?, "checked in"))
        }
        AppointmentCommand::Room { id } => Ok(one(session.room_appointment(*id)?, "in a room")),
        AppointmentCommand::NoShow { id } => {
            Ok(one(session.no_show_appointment(*id)?, "marked a no-show"))
        }
        AppointmentCommand::Start { id } => {
            let started = session.start_appointment(*id)?;
            // The encounter it opened, as `encounter add` prints one, with the appointment.
            let mut doc = to_json(&started.encounter);
            if let Value::Object(map) = &mut doc {
                map.insert("encounter".into(), to_json(&started.encounter));
                map.insert("appointment".into(), to_json(&started.appointment));
            }
            let text = format!(
                "Appointment {} started: encounter {} opened ({}). Open the chart with `chartroom patient show {}`.",
                started.appointment.id,
                started.encounter.id,
                started.encounter.kind.label(),
                started.appointment.patient_id
            );
            Ok(Output::new(doc, text))
        }
    }
}
