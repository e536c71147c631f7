//! Clinicians' schedules: working hours per weekday with breaks, days off, and the clinic's
//! appointment types; the slot arithmetic the appointment book runs on.
//!
//! Hours are local times in the clinic's zone ([`crate::ClinicZone`]), so a 09:00 start stays
//! at 09:00 across a daylight-saving change. These are the clinic's settings, not the
//! patient record: they are written here (admin only, audited), never through
//! [`crate::Change`].

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc, Weekday};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::audit::Op;
use crate::roles::{Permission, Role};
use crate::zone::ClinicZone;
use crate::{CoreError, Session};

/// The weekdays as the CLI and the stored rows name them, Monday first.
pub const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// The longest and shortest appointment Chartroom books, in minutes.
pub const MIN_MINUTES: u32 = 5;
pub const MAX_MINUTES: u32 = 480;
/// The length of an appointment booked with neither a type nor a length.
pub const DEFAULT_MINUTES: u32 = 15;

/// A half-open stretch of time, [start, end), as instants.
pub type Interval = (DateTime<Utc>, DateTime<Utc>);

/// One stretch of working time in a day, local: 08:00-12:00.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}-{}",
            self.start.format("%H:%M"),
            self.end.format("%H:%M")
        )
    }
}

/// Reads a day's working hours: `08:00-12:00,13:00-17:00` (the gap is the break), or `off`.
pub fn parse_hours(text: &str) -> Result<Vec<Span>, CoreError> {
    let text = text.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("off") {
        return Ok(Vec::new());
    }
    let bad = || {
        CoreError::InvalidInput(format!(
            "Working hours look like 08:00-12:00,13:00-17:00 (24-hour clock, the gap is the break), or \"off\"; \"{}\" is not.",
            text.chars().take(40).collect::<String>()
        ))
    };
    let mut spans = Vec::new();
    for part in text.split(',') {
        let (a, b) = part.split_once('-').ok_or_else(bad)?;
        let start = NaiveTime::parse_from_str(a.trim(), "%H:%M").map_err(|_| bad())?;
        let end = NaiveTime::parse_from_str(b.trim(), "%H:%M").map_err(|_| bad())?;
        if end <= start {
            return Err(CoreError::InvalidInput(format!(
                "The working hours {}-{} end before they start (a day's hours cannot run past midnight).",
                start.format("%H:%M"),
                end.format("%H:%M")
            )));
        }
        spans.push(Span { start, end });
    }
    spans.sort();
    for pair in spans.windows(2) {
        if pair[1].start < pair[0].end {
            return Err(CoreError::InvalidInput(format!(
                "The working hours {} and {} overlap.",
                pair[0], pair[1]
            )));
        }
    }
    Ok(spans)
}

pub fn hours_text(spans: &[Span]) -> String {
    if spans.is_empty() {
        return "off".into();
    }
    spans
        .iter()
        .map(Span::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Reads a weekday: `mon`, `Monday`, `tue` …
pub fn parse_weekday(text: &str) -> Result<Weekday, CoreError> {
    let short: String = text.trim().to_ascii_lowercase().chars().take(3).collect();
    WEEKDAYS
        .iter()
        .position(|d| *d == short)
        .map(weekday)
        .ok_or_else(|| {
            CoreError::InvalidInput(format!(
                "\"{}\" is not a day of the week. Use mon, tue, wed, thu, fri, sat or sun.",
                text.chars().take(20).collect::<String>()
            ))
        })
}

fn weekday(i: usize) -> Weekday {
    match i {
        0 => Weekday::Mon,
        1 => Weekday::Tue,
        2 => Weekday::Wed,
        3 => Weekday::Thu,
        4 => Weekday::Fri,
        5 => Weekday::Sat,
        _ => Weekday::Sun,
    }
}

/// A clinician's week: hours per weekday and the days off.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Schedule {
    pub week: [Vec<Span>; 7],
    pub days_off: BTreeSet<NaiveDate>,
}

impl Schedule {
    /// The working spans of `date` as instants, in order (none on a day off).
    pub fn working(&self, zone: &ClinicZone, date: NaiveDate) -> Vec<Interval> {
        if self.days_off.contains(&date) {
            return Vec::new();
        }
        self.week[date.weekday().num_days_from_monday() as usize]
            .iter()
            .map(|s| (zone.at(date, s.start), zone.at(date, s.end)))
            .filter(|(a, b)| a < b)
            .collect()
    }

    /// Whether `[start, end)` lies inside one working span.
    pub fn covers(&self, zone: &ClinicZone, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
        self.working(zone, zone.date_of(start))
            .iter()
            .any(|(a, b)| *a <= start && end <= *b)
    }
}

/// Whether two half-open intervals overlap: back to back is not a clash.
pub fn overlaps(a: Interval, b: Interval) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// Free starts of `length` inside the working `spans`, not before `from`, around the `busy`
/// intervals (sorted by start): consecutive slots from each gap's start, at most `count`.
pub fn free_in(
    spans: &[Interval],
    busy: &[Interval],
    from: DateTime<Utc>,
    length: Duration,
    count: usize,
) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    for &(span_start, span_end) in spans {
        let mut cursor = span_start.max(from);
        let push_until = |cursor: &mut DateTime<Utc>, until: DateTime<Utc>, out: &mut Vec<_>| {
            while *cursor + length <= until && out.len() < count {
                out.push(*cursor);
                *cursor += length;
            }
        };
        for &(b_start, b_end) in busy {
            if b_end <= cursor || b_start >= span_end {
                continue;
            }
            push_until(&mut cursor, b_start.min(span_end), &mut out);
            cursor = cursor.max(b_end);
        }
        push_until(&mut cursor, span_end, &mut out);
        if out.len() >= count {
            break;
        }
    }
    out
}

/// Rounds up to the next five minutes (the book's grid).
pub(crate) fn round_up(t: DateTime<Utc>) -> DateTime<Utc> {
    let secs = t.timestamp();
    let step = 300;
    let up = (secs + step - 1).div_euclid(step) * step;
    DateTime::from_timestamp(up, 0).unwrap_or(t)
}

/// The one writer of `schedule_hours`: a clinician's hours on a weekday (0 is Monday).
pub(crate) fn write_hours(
    conn: &Connection,
    clinician: &str,
    weekday: u32,
    spans: &[Span],
    stamp: &crate::Stamp,
) -> Result<(), CoreError> {
    conn.prepare_cached(
        "INSERT INTO schedule_hours (clinician, weekday, hours, updated_at, updated_by)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (clinician, weekday) DO UPDATE SET hours = excluded.hours,
            updated_at = excluded.updated_at, updated_by = excluded.updated_by",
    )?
    .execute(params![
        clinician,
        weekday,
        hours_text(spans),
        stamp.time(),
        stamp.by
    ])?;
    Ok(())
}

/// The one writer of `appointment_types`: a type and its length.
pub(crate) fn write_type(
    conn: &Connection,
    name: &str,
    minutes: u32,
    stamp: &crate::Stamp,
) -> Result<(), CoreError> {
    conn.prepare_cached(
        "INSERT INTO appointment_types (name, minutes, updated_at, updated_by)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (name) DO UPDATE SET minutes = excluded.minutes,
            updated_at = excluded.updated_at, updated_by = excluded.updated_by",
    )?
    .execute(params![
        name,
        check_minutes(minutes)?,
        stamp.time(),
        stamp.by
    ])?;
    Ok(())
}

pub(crate) fn load(conn: &Connection, clinician: &str) -> Result<Schedule, CoreError> {
    let mut schedule = Schedule::default();
    let mut stmt =
        conn.prepare_cached("SELECT weekday, hours FROM schedule_hours WHERE clinician = ?1")?;
    let rows = stmt.query_map([clinician], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
    })?;
    for row in rows {
        let (day, hours) = row?;
        if let Some(slot) = usize::try_from(day)
            .ok()
            .and_then(|d| schedule.week.get_mut(d))
        {
            *slot = parse_hours(&hours)?;
        }
    }
    let mut stmt = conn.prepare_cached("SELECT day FROM schedule_days_off WHERE clinician = ?1")?;
    let rows = stmt.query_map([clinician], |r| r.get::<_, String>(0))?;
    for day in rows {
        if let Ok(d) = NaiveDate::parse_from_str(&day?, "%Y-%m-%d") {
            schedule.days_off.insert(d);
        }
    }
    Ok(schedule)
}

/// An appointment type: a name and its default length.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct AppointmentType {
    pub name: String,
    pub minutes: u32,
}

pub(crate) fn appointment_type(
    conn: &Connection,
    name: &str,
) -> Result<AppointmentType, CoreError> {
    let found = conn
        .prepare_cached(
            "SELECT name, minutes FROM appointment_types WHERE name = ?1 COLLATE NOCASE",
        )?
        .query_row([name.trim()], |r| {
            Ok(AppointmentType {
                name: r.get(0)?,
                minutes: r.get(1)?,
            })
        })
        .optional()?;
    match found {
        Some(t) => Ok(t),
        None => {
            let known = types(conn)?.into_iter().map(|t| t.name).collect::<Vec<_>>();
            Err(CoreError::InvalidInput(if known.is_empty() {
                format!(
                    "There is no appointment type \"{}\"; the administrator has not set up any yet.",
                    name.chars().take(40).collect::<String>()
                )
            } else {
                format!(
                    "There is no appointment type \"{}\". Types are: {}.",
                    name.chars().take(40).collect::<String>(),
                    known.join(", ")
                )
            }))
        }
    }
}

fn types(conn: &Connection) -> Result<Vec<AppointmentType>, CoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, minutes FROM appointment_types ORDER BY name COLLATE NOCASE",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(AppointmentType {
            name: r.get(0)?,
            minutes: r.get(1)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Checks that `name` is a clinician with a book: an enabled physician or nurse.
pub(crate) fn clinician(conn: &Connection, name: &str) -> Result<String, CoreError> {
    let user = crate::users::find_user(conn, name.trim())?
        .map(|(_, u)| u)
        .ok_or_else(|| {
            CoreError::NotFound(format!(
                "There is no user \"{}\".",
                name.trim().chars().take(40).collect::<String>()
            ))
        })?;
    if !matches!(user.role, Role::Physician | Role::Nurse) {
        return Err(CoreError::InvalidInput(format!(
            "{} is not a physician or nurse: only clinicians have an appointment book.",
            user.name.as_str()
        )));
    }
    if user.disabled {
        return Err(CoreError::InvalidInput(format!(
            "{} is disabled and takes no appointments.",
            user.name.as_str()
        )));
    }
    Ok(user.name.as_str().to_owned())
}

/// One day of a clinician's schedule as shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ScheduleDay {
    pub date: String,
    pub weekday: String,
    /// `08:00-12:00,13:00-17:00`, or `off`.
    pub hours: String,
    pub day_off: bool,
}

/// A clinician's schedule: the weekly hours, and (for a week asked about) its days.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ScheduleView {
    pub clinician: String,
    pub time_zone: String,
    /// Weekday (`mon` …) to its hours (`08:00-12:00,13:00-17:00` or `off`).
    pub hours: std::collections::BTreeMap<String, String>,
    pub days_off: Vec<String>,
    pub days: Vec<ScheduleDay>,
}

fn view(
    conn: &Connection,
    zone: &ClinicZone,
    clinician: &str,
    week_of: NaiveDate,
) -> Result<ScheduleView, CoreError> {
    let schedule = load(conn, clinician)?;
    let monday = week_of - Duration::days(i64::from(week_of.weekday().num_days_from_monday()));
    let days = (0..7)
        .map(|i| {
            let date = monday + Duration::days(i);
            let off = schedule.days_off.contains(&date);
            ScheduleDay {
                date: date.to_string(),
                weekday: WEEKDAYS[i as usize].into(),
                hours: if off {
                    "off".into()
                } else {
                    hours_text(&schedule.week[i as usize])
                },
                day_off: off,
            }
        })
        .collect();
    Ok(ScheduleView {
        clinician: clinician.to_owned(),
        time_zone: zone.name().to_owned(),
        hours: WEEKDAYS
            .iter()
            .zip(&schedule.week)
            .map(|(d, h)| ((*d).to_owned(), hours_text(h)))
            .collect(),
        days_off: schedule.days_off.iter().map(ToString::to_string).collect(),
        days,
    })
}

impl Session {
    /// Sets a clinician's working hours on one weekday (`off` for none).
    pub fn set_schedule(
        &mut self,
        clinician: &str,
        day: &str,
        hours: &str,
    ) -> Result<ScheduleView, CoreError> {
        let day = parse_weekday(day)?;
        let spans = parse_hours(hours)?;
        let text = hours_text(&spans);
        let index = day.num_days_from_monday();
        let zone = self.settings().zone();
        self.run(
            Permission::ManageSchedules,
            Op::update("schedule.update").detail(format!("{} {text}", WEEKDAYS[index as usize])),
            false,
            |tx, op, ctx| {
                let name = self::clinician(tx, clinician)?;
                op.object = Some(("User", name.clone()));
                write_hours(tx, &name, index, &spans, &ctx.stamp())?;
                view(tx, &zone, &name, zone.date_of(ctx.now))
            },
        )
    }

    /// Marks a day off for a clinician (or, with `off` false, a working day again).
    pub fn set_day_off(
        &mut self,
        clinician: &str,
        date: NaiveDate,
        off: bool,
    ) -> Result<ScheduleView, CoreError> {
        let zone = self.settings().zone();
        self.run(
            Permission::ManageSchedules,
            Op::update("schedule.day_off")
                .detail(format!("{date} {}", if off { "off" } else { "working" })),
            false,
            |tx, op, ctx| {
                let name = self::clinician(tx, clinician)?;
                op.object = Some(("User", name.clone()));
                if off {
                    tx.execute(
                        "INSERT OR IGNORE INTO schedule_days_off (clinician, day, created_at, created_by)
                         VALUES (?1, ?2, ?3, ?4)",
                        params![name, date.to_string(), chartroom_audit::format_time(ctx.now), ctx.actor.name],
                    )?;
                } else {
                    tx.execute(
                        "DELETE FROM schedule_days_off WHERE clinician = ?1 AND day = ?2",
                        params![name, date.to_string()],
                    )?;
                }
                view(tx, &zone, &name, date)
            },
        )
    }

    /// A clinician's schedule, with the days of the week holding `week_of` (default: this
    /// week).
    pub fn schedule(
        &mut self,
        clinician: &str,
        week_of: Option<NaiveDate>,
    ) -> Result<ScheduleView, CoreError> {
        let zone = self.settings().zone();
        self.run(
            Permission::ViewSchedules,
            Op::read("schedule.read"),
            false,
            |tx, op, ctx| {
                let name = self::clinician(tx, clinician)?;
                op.object = Some(("User", name.clone()));
                view(
                    tx,
                    &zone,
                    &name,
                    week_of.unwrap_or_else(|| zone.date_of(ctx.now)),
                )
            },
        )
    }

    /// The clinicians who have an appointment book (enabled physicians and nurses), by name.
    pub fn clinicians(&mut self) -> Result<Vec<String>, CoreError> {
        self.run(
            Permission::ViewSchedules,
            Op::read("schedule.clinicians"),
            false,
            |tx, _, _| {
                Ok(crate::users::user_rows(tx)?
                    .into_iter()
                    .filter(|(_, role, enabled)| {
                        *enabled && (role == "physician" || role == "nurse")
                    })
                    .map(|(name, _, _)| name)
                    .collect())
            },
        )
    }

    /// Adds an appointment type (or changes the length of one that exists).
    pub fn add_appointment_type(
        &mut self,
        name: &str,
        minutes: u32,
    ) -> Result<AppointmentType, CoreError> {
        let name = crate::chart::input::bounded_text("appointment type", name, 60)?;
        let minutes = check_minutes(minutes)?;
        self.run(
            Permission::ManageSchedules,
            Op::update("appointment_type.update")
                .object("AppointmentType", &name)
                .detail(format!("{minutes} min")),
            false,
            |tx, _, ctx| {
                write_type(tx, &name, minutes, &ctx.stamp())?;
                appointment_type(tx, &name)
            },
        )
    }

    /// The clinic's appointment types, by name.
    pub fn appointment_types(&mut self) -> Result<Vec<AppointmentType>, CoreError> {
        self.run(
            Permission::ViewSchedules,
            Op::read("appointment_type.list"),
            false,
            |tx, _, _| types(tx),
        )
    }
}

pub(crate) fn check_minutes(minutes: u32) -> Result<u32, CoreError> {
    if (MIN_MINUTES..=MAX_MINUTES).contains(&minutes) {
        Ok(minutes)
    } else {
        Err(CoreError::InvalidInput(format!(
            "An appointment lasts from {MIN_MINUTES} to {MAX_MINUTES} minutes."
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(name: &str) -> ClinicZone {
        ClinicZone::parse(name).expect("zone")
    }

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date")
    }

    fn week(hours: &str) -> Schedule {
        let spans = parse_hours(hours).expect("hours");
        Schedule {
            week: std::array::from_fn(|_| spans.clone()),
            days_off: BTreeSet::new(),
        }
    }

    fn shown(z: &ClinicZone, slots: &[DateTime<Utc>]) -> Vec<String> {
        slots.iter().map(|t| z.show(*t)).collect()
    }

    #[test]
    fn hours_read_with_their_breaks_and_refuse_nonsense() {
        let spans = parse_hours("13:00-17:00, 08:00-12:00").expect("two spans");
        assert_eq!(hours_text(&spans), "08:00-12:00,13:00-17:00");
        assert!(parse_hours("off").expect("off").is_empty());
        for bad in [
            "8-12",
            "12:00-08:00",
            "08:00-12:00,11:00-13:00",
            "09:00-09:00",
            "08:00",
        ] {
            assert!(parse_hours(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_weekday("Monday").expect("mon"), Weekday::Mon);
        assert!(parse_weekday("someday").is_err());
    }

    #[test]
    fn free_slots_skip_the_break_the_booked_and_days_off() {
        let z = zone("Europe/Berlin");
        let mut s = week("08:00-09:00,10:00-11:00");
        let d = date("2026-06-01");
        let at = |t: &str| z.parse_instant("t", &format!("2026-06-01 {t}")).expect("t");
        let busy = vec![(at("08:15"), at("08:30")), (at("10:00"), at("10:20"))];
        let len = Duration::minutes(15);
        let slots = free_in(&s.working(&z, d), &busy, at("00:00"), len, 10);
        assert_eq!(
            shown(&z, &slots),
            [
                "2026-06-01 08:00",
                "2026-06-01 08:30",
                "2026-06-01 08:45",
                "2026-06-01 10:20",
                "2026-06-01 10:35",
            ]
        );
        // Not before `from`, and never past the span's end.
        let slots = free_in(
            &s.working(&z, d),
            &busy,
            at("08:40"),
            Duration::minutes(30),
            10,
        );
        assert_eq!(shown(&z, &slots), ["2026-06-01 10:20"]);
        // A day off has no slots.
        s.days_off.insert(d);
        assert!(s.working(&z, d).is_empty());
        assert!(!s.covers(&z, at("08:00"), at("08:15")));
    }

    #[test]
    fn overlap_is_half_open() {
        let z = zone("UTC");
        let at = |t: &str| z.parse_instant("t", &format!("2026-06-01 {t}")).expect("t");
        assert!(overlaps(
            (at("09:00"), at("09:30")),
            (at("09:15"), at("09:45"))
        ));
        assert!(overlaps(
            (at("09:00"), at("10:00")),
            (at("09:15"), at("09:30"))
        ));
        assert!(!overlaps(
            (at("09:00"), at("09:30")),
            (at("09:30"), at("10:00"))
        ));
        assert!(!overlaps(
            (at("10:00"), at("10:30")),
            (at("09:30"), at("10:00"))
        ));
    }

    #[test]
    fn working_hours_stay_local_across_both_changes_in_two_zones() {
        for (name, days) in [
            (
                "Europe/Berlin",
                ["2026-03-27", "2026-03-30", "2026-10-23", "2026-10-26"],
            ),
            (
                "America/Chicago",
                ["2026-03-06", "2026-03-09", "2026-10-30", "2026-11-02"],
            ),
        ] {
            let z = zone(name);
            let s = week("09:00-10:00");
            for d in days {
                let spans = s.working(&z, date(d));
                let slots = free_in(&spans, &[], spans[0].0, Duration::minutes(30), 5);
                assert_eq!(
                    shown(&z, &slots),
                    [format!("{d} 09:00"), format!("{d} 09:30")],
                    "{name} {d}"
                );
            }
        }
    }

    #[test]
    fn hours_over_the_skipped_hour_lose_it_and_the_repeated_hour_is_worked_once() {
        // Berlin, 29 March 2026: 02:00 becomes 03:00; 25 October: 03:00 becomes 02:00.
        let z = zone("Europe/Berlin");
        let s = week("01:00-04:00");
        let spring = s.working(&z, date("2026-03-29"));
        assert_eq!((spring[0].1 - spring[0].0).num_hours(), 2);
        let autumn = s.working(&z, date("2026-10-25"));
        assert_eq!((autumn[0].1 - autumn[0].0).num_hours(), 4);
        let slots = free_in(&spring, &[], spring[0].0, Duration::minutes(60), 5);
        assert_eq!(shown(&z, &slots), ["2026-03-29 01:00", "2026-03-29 03:00"]);
    }

    #[test]
    fn the_grid_rounds_up_to_five_minutes() {
        let z = zone("UTC");
        let t = z.parse_instant("t", "2026-06-01T09:01:30Z").expect("t");
        assert_eq!(z.show(round_up(t)), "2026-06-01 09:05");
        let t = z.parse_instant("t", "2026-06-01T09:05:00Z").expect("t");
        assert_eq!(z.show(round_up(t)), "2026-06-01 09:05");
    }
}
