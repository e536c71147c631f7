//! Appointments: the front desk's book and the clinician's day. A patient is booked with a
//! clinician at a time, for a type and a length, with a reason; the appointment is moved,
//! cancelled, checked in, roomed, marked a no-show, or started (which opens its encounter).
//!
//! Times are instants (UTC) in the table and in changes, shown and typed in the clinic's
//! zone. A clinician is never booked twice at once unless the person booking says so (and
//! the appointment is then marked overbooked); the check runs in the booking's own
//! IMMEDIATE transaction, so of two processes racing for one slot the second is told it
//! was just taken.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::change::{self, apply, Applied, Change, RecordId, Stamp, Table};
use super::encounter::{self, Encounter, EncounterOpened, NewEncounter};
use super::input::bounded_text;
use crate::audit::Op;
use crate::error::Denial;
use crate::ids::*;
use crate::roles::Permission;
use crate::schedule::{self, check_minutes, DEFAULT_MINUTES};
use crate::zone::ClinicZone;
use crate::{CoreError, Session};

/// Where an appointment stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum AppointmentStatus {
    Booked,
    Arrived,
    InRoom,
    Seen,
    NoShow,
    Cancelled,
}

impl AppointmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AppointmentStatus::Booked => "booked",
            AppointmentStatus::Arrived => "arrived",
            AppointmentStatus::InRoom => "in_room",
            AppointmentStatus::Seen => "seen",
            AppointmentStatus::NoShow => "no_show",
            AppointmentStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<AppointmentStatus> {
        [
            AppointmentStatus::Booked,
            AppointmentStatus::Arrived,
            AppointmentStatus::InRoom,
            AppointmentStatus::Seen,
            AppointmentStatus::NoShow,
            AppointmentStatus::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    /// In words, as the book shows it.
    pub fn label(self) -> &'static str {
        match self {
            AppointmentStatus::Booked => "booked",
            AppointmentStatus::Arrived => "arrived",
            AppointmentStatus::InRoom => "in a room",
            AppointmentStatus::Seen => "seen",
            AppointmentStatus::NoShow => "a no-show",
            AppointmentStatus::Cancelled => "cancelled",
        }
    }

    /// FHIR R4 Appointment.status.
    pub fn fhir(self) -> &'static str {
        match self {
            AppointmentStatus::Booked => "booked",
            AppointmentStatus::Arrived => "arrived",
            AppointmentStatus::InRoom => "checked-in",
            AppointmentStatus::Seen => "fulfilled",
            AppointmentStatus::NoShow => "noshow",
            AppointmentStatus::Cancelled => "cancelled",
        }
    }

    pub fn from_fhir(code: &str) -> Option<AppointmentStatus> {
        Some(match code {
            "booked" | "pending" | "proposed" => AppointmentStatus::Booked,
            "arrived" => AppointmentStatus::Arrived,
            "checked-in" => AppointmentStatus::InRoom,
            "fulfilled" => AppointmentStatus::Seen,
            "noshow" => AppointmentStatus::NoShow,
            "cancelled" | "entered-in-error" => AppointmentStatus::Cancelled,
            _ => return None,
        })
    }

    /// Whether the appointment still holds its time in the clinician's book.
    pub fn holds_time(self) -> bool {
        !matches!(
            self,
            AppointmentStatus::Cancelled | AppointmentStatus::NoShow
        )
    }
}

/// An appointment as the book shows it. Times carry the clinic's UTC offset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Appointment {
    pub id: AppointmentId,
    pub patient_id: PatientId,
    pub mrn: String,
    /// "Family, Given" ("Restricted patient" for those outside a restricted chart's care team).
    pub patient_name: String,
    /// Empty for those outside a restricted chart's care team.
    pub birth_date: String,
    pub restricted: bool,
    pub clinician: String,
    pub start: String,
    pub end: String,
    pub minutes: u32,
    #[serde(rename = "type")]
    #[cfg_attr(feature = "ts", ts(rename = "type"))]
    pub kind: Option<String>,
    /// Withheld (None) from those outside a restricted patient's care team.
    pub reason: Option<String>,
    pub status: AppointmentStatus,
    pub overbooked: bool,
    pub cancel_reason: Option<String>,
    pub arrived_at: Option<String>,
    pub roomed_at: Option<String>,
    pub seen_at: Option<String>,
    pub encounter_id: Option<EncounterId>,
    pub created_at: String,
    pub created_by: String,
    pub updated_at: String,
    pub updated_by: String,
    /// What the person booking should know (outside working hours, a day off); only in
    /// the answer to a booking or a move.
    pub warnings: Vec<String>,
}

/// An appointment and the encounter its start opened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Started {
    pub appointment: Appointment,
    pub encounter: Encounter,
}

/// A free slot in a clinician's book.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct FreeSlot {
    pub clinician: String,
    pub start: String,
    pub end: String,
    pub minutes: u32,
}

/// What to book: the clinician, the time as typed (clinic's zone unless it carries an
/// offset), a type and/or a length, a reason, and whether to overbook on purpose.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Booking {
    pub clinician: String,
    pub at: String,
    #[serde(default)]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub appointment_type: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub minutes: Option<u32>,
    #[serde(default)]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub reason: Option<String>,
    #[serde(default)]
    pub overbook: bool,
}

/// Which appointments to list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct AppointmentQuery {
    /// The first day (clinic's date); default today, or every day for a patient's list.
    #[serde(default)]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub day: Option<String>,
    /// How many days from `day` (1: a day view, 7: a week view).
    #[serde(default)]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub days: Option<u32>,
    #[serde(default)]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub clinician: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub patient_id: Option<i64>,
    /// Leave out cancelled appointments and no-shows.
    #[serde(default)]
    pub active_only: bool,
}

const APPOINTMENT_COLUMNS: &str =
    "a.id, a.patient_id, a.clinician, a.start, a.end, a.type, a.reason,
    a.status, a.overbooked, a.cancel_reason, a.arrived_at, a.roomed_at, a.seen_at, a.encounter_id,
    a.created_at, a.created_by, a.updated_at, a.updated_by";

/// A row before the patient's name and the zone are put in.
struct Row {
    id: i64,
    patient_id: i64,
    clinician: String,
    start: String,
    end: String,
    kind: Option<String>,
    reason: Option<String>,
    status: String,
    overbooked: bool,
    cancel_reason: Option<String>,
    arrived_at: Option<String>,
    roomed_at: Option<String>,
    seen_at: Option<String>,
    encounter_id: Option<i64>,
    created_at: String,
    created_by: String,
    updated_at: String,
    updated_by: String,
}

impl Row {
    fn status(&self) -> AppointmentStatus {
        AppointmentStatus::parse(&self.status).unwrap_or(AppointmentStatus::Booked)
    }
}

fn to_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        id: r.get(0)?,
        patient_id: r.get(1)?,
        clinician: r.get(2)?,
        start: r.get(3)?,
        end: r.get(4)?,
        kind: r.get(5)?,
        reason: r.get(6)?,
        status: r.get(7)?,
        overbooked: r.get(8)?,
        cancel_reason: r.get(9)?,
        arrived_at: r.get(10)?,
        roomed_at: r.get(11)?,
        seen_at: r.get(12)?,
        encounter_id: r.get(13)?,
        created_at: r.get(14)?,
        created_by: r.get(15)?,
        updated_at: r.get(16)?,
        updated_by: r.get(17)?,
    })
}

fn instant(text: &str) -> DateTime<Utc> {
    chartroom_audit::parse_time(text).unwrap_or_default()
}

/// Fills in the patient (as this session may see them) and shows times in the zone.
struct Shower<'a> {
    conn: &'a Connection,
    zone: ClinicZone,
    actor: &'a crate::audit::ActorRef,
    now: DateTime<Utc>,
    patients: std::collections::HashMap<i64, (String, String, String, bool, bool)>,
    /// Shows every reason (an export of charts the exporter may read).
    all_visible: bool,
}

impl Shower<'_> {
    fn show(&mut self, row: Row) -> Result<Appointment, CoreError> {
        let (mrn, name, birth, restricted, visible) = match self.patients.get(&row.patient_id) {
            Some(p) => p.clone(),
            None => {
                let p = super::patient::get(self.conn, row.patient_id)?;
                let visible = self.all_visible
                    || !p.restricted
                    || crate::access::chart_access(self.conn, &p, self.actor, self.now)?.is_some();
                // Outside a restricted chart's care team, the placeholder and the MRN only,
                // whatever this session's keys could open (a clinician's open every chart's
                // demographics, for breaking the glass).
                let entry = if visible {
                    (
                        p.mrn.clone(),
                        format!("{}, {}", p.demographics.family, p.demographics.given)
                            .trim_end_matches(", ")
                            .to_owned(),
                        p.demographics.birth_date.to_string(),
                        p.restricted,
                        true,
                    )
                } else {
                    (
                        p.mrn.clone(),
                        super::patient::RESTRICTED_FAMILY.to_owned(),
                        String::new(),
                        true,
                        false,
                    )
                };
                self.patients.insert(row.patient_id, entry.clone());
                entry
            }
        };
        let local = |t: &str| self.zone.rfc3339(instant(t));
        let status = row.status();
        let start = instant(&row.start);
        let end = instant(&row.end);
        Ok(Appointment {
            id: AppointmentId(row.id),
            patient_id: PatientId(row.patient_id),
            mrn,
            patient_name: name,
            birth_date: birth,
            restricted,
            minutes: u32::try_from((end - start).num_minutes()).unwrap_or(0),
            start: self.zone.rfc3339(start),
            end: self.zone.rfc3339(end),
            clinician: row.clinician,
            kind: row.kind,
            reason: if visible { row.reason } else { None },
            status,
            overbooked: row.overbooked,
            cancel_reason: if visible { row.cancel_reason } else { None },
            arrived_at: row.arrived_at.as_deref().map(local),
            roomed_at: row.roomed_at.as_deref().map(local),
            seen_at: row.seen_at.as_deref().map(local),
            encounter_id: row.encounter_id.map(EncounterId),
            created_at: local(&row.created_at),
            created_by: row.created_by,
            updated_at: local(&row.updated_at),
            updated_by: row.updated_by,
            warnings: Vec::new(),
        })
    }
}

fn row(conn: &Connection, id: i64) -> Result<Row, CoreError> {
    conn.prepare_cached(&format!(
        "SELECT {APPOINTMENT_COLUMNS} FROM appointments a WHERE a.id = ?1"
    ))?
    .query_row([id], to_row)
    .optional()?
    .ok_or_else(|| CoreError::NotFound(format!("There is no appointment {id}.")))
}

/// The patient's appointments (every one, oldest first), for the chart and exports.
fn of_patient_rows(conn: &Connection, patient_id: i64) -> Result<Vec<Row>, CoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {APPOINTMENT_COLUMNS} FROM appointments a WHERE a.patient_id = ?1 ORDER BY a.start, a.id"
    ))?;
    let rows = stmt.query_map([patient_id], to_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The first appointment of `clinician` that holds time overlapping `[start, end)`, other
/// than `except`: (id, start, end, created_at).
fn clash(
    conn: &Connection,
    clinician: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    except: i64,
) -> Result<Option<(i64, String, String, String)>, CoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT id, start, end, created_at FROM appointments
              WHERE clinician = ?1 AND start < ?3 AND end > ?2 AND id <> ?4
                AND status NOT IN ('cancelled', 'no_show')
              ORDER BY start LIMIT 1",
        )?
        .query_row(
            params![
                clinician,
                chartroom_audit::format_time(start),
                chartroom_audit::format_time(end),
                except
            ],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?)
}

/// Whether `clinician`'s book already holds time overlapping `[start, end)` (an import
/// marks what it brings in over a booking here as overbooked).
pub(crate) fn clashes(
    conn: &Connection,
    clinician: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<bool, CoreError> {
    Ok(clash(conn, clinician, start, end, 0)?.is_some())
}

/// The intervals `clinician`'s book holds between two instants, by start.
fn busy(
    conn: &Connection,
    clinician: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<schedule::Interval>, CoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT start, end FROM appointments
          WHERE clinician = ?1 AND start < ?3 AND end > ?2 AND status NOT IN ('cancelled', 'no_show')
          ORDER BY start",
    )?;
    let rows = stmt.query_map(
        params![
            clinician,
            chartroom_audit::format_time(from),
            chartroom_audit::format_time(to)
        ],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
    )?;
    let mut out = Vec::new();
    for r in rows {
        let (a, b) = r?;
        out.push((instant(&a), instant(&b)));
    }
    Ok(out)
}

/// Refuses a clash (unless overbooking on purpose); returns whether it overbooks.
fn check_clash(
    conn: &Connection,
    zone: &ClinicZone,
    clinician: &str,
    (start, end): schedule::Interval,
    except: i64,
    overbook: bool,
    now: DateTime<Utc>,
) -> Result<bool, CoreError> {
    let Some((other, a, b, made)) = clash(conn, clinician, start, end, except)? else {
        return Ok(false);
    };
    if overbook {
        return Ok(true);
    }
    let (a, b) = (instant(&a), instant(&b));
    let just = now - instant(&made) < Duration::seconds(5);
    Err(CoreError::Conflict(format!(
        "{}{clinician} already has appointment {other} from {} to {} on {}. Choose another time, or overbook on purpose.",
        if just { "That time was just taken: " } else { "" },
        zone.local(a).format("%H:%M"),
        zone.local(b).format("%H:%M"),
        zone.local(a).format("%Y-%m-%d"),
    )))
}

/// What to tell the person booking about the time: outside hours, a day off.
fn warnings(
    conn: &Connection,
    zone: &ClinicZone,
    clinician: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Vec<String>, CoreError> {
    let schedule = schedule::load(conn, clinician)?;
    let date = zone.date_of(start);
    if schedule.days_off.contains(&date) {
        return Ok(vec![format!("{clinician} has {date} off.")]);
    }
    if !schedule.covers(zone, start, end) {
        let day = chrono::Datelike::weekday(&date).num_days_from_monday() as usize;
        return Ok(vec![format!(
            "{} to {} is outside {clinician}'s working hours ({} {}).",
            zone.local(start).format("%H:%M"),
            zone.local(end).format("%H:%M"),
            schedule::WEEKDAYS[day],
            schedule::hours_text(&schedule.week[day])
        )]);
    }
    Ok(Vec::new())
}

/// The length and type of a booking: the type's length unless a length is given.
fn length_of(
    conn: &Connection,
    kind: Option<&str>,
    minutes: Option<u32>,
) -> Result<(Option<String>, u32), CoreError> {
    let kind = kind.map(str::trim).filter(|k| !k.is_empty());
    let (name, default) = match kind {
        Some(k) => {
            let t = schedule::appointment_type(conn, k)?;
            (Some(t.name), t.minutes)
        }
        None => (None, DEFAULT_MINUTES),
    };
    Ok((name, check_minutes(minutes.unwrap_or(default))?))
}

/// The time an appointment may start: from today (the clinic's date) to two years ahead.
fn check_start(
    zone: &ClinicZone,
    start: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), CoreError> {
    if zone.date_of(start) < zone.date_of(now) {
        return Err(CoreError::InvalidInput(
            "That time is in the past: appointments are booked from today on.".into(),
        ));
    }
    if start > now + Duration::days(731) {
        return Err(CoreError::InvalidInput(
            "That time is more than two years ahead.".into(),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Changes and the one writer of `appointments`.

/// An appointment booked: version 1 of [`Change::AppointmentBooked`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppointmentBooked {
    pub appointment: RecordId,
    pub patient: RecordId,
    pub clinician: String,
    #[serde(with = "change::micros_time")]
    pub start: DateTime<Utc>,
    #[serde(with = "change::micros_time")]
    pub end: DateTime<Utc>,
    pub appointment_type: Option<String>,
    pub reason: Option<String>,
    pub overbooked: bool,
    pub booked: Stamp,
}

/// An appointment moved to another time: version 1 of [`Change::AppointmentMoved`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppointmentMoved {
    pub appointment: RecordId,
    #[serde(with = "change::micros_time")]
    pub start: DateTime<Utc>,
    #[serde(with = "change::micros_time")]
    pub end: DateTime<Utc>,
    pub overbooked: bool,
    pub moved: Stamp,
}

/// An appointment cancelled, with the reason: version 1 of [`Change::AppointmentCancelled`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppointmentCancelled {
    pub appointment: RecordId,
    pub reason: String,
    pub cancelled: Stamp,
}

/// An appointment checked in, roomed, seen (with the encounter its start opened) or
/// marked a no-show: version 1 of [`Change::AppointmentStatusChanged`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppointmentStatusChanged {
    pub appointment: RecordId,
    pub status: AppointmentStatus,
    pub encounter: Option<RecordId>,
    pub changed: Stamp,
}

fn check_times(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<(), CoreError> {
    let minutes = (end - start).num_minutes();
    let whole = start == chartroom_audit::truncate_to_micros(start)
        && end == chartroom_audit::truncate_to_micros(end);
    if !whole
        || minutes < i64::from(schedule::MIN_MINUTES)
        || minutes > i64::from(schedule::MAX_MINUTES)
    {
        return Err(CoreError::InvalidInput(format!(
            "An appointment lasts from {} to {} minutes.",
            schedule::MIN_MINUTES,
            schedule::MAX_MINUTES
        )));
    }
    Ok(())
}

fn check_optional(label: &str, text: &Option<String>, max: usize) -> Result<(), CoreError> {
    if let Some(t) = text {
        change::same(label, &bounded_text(label, t, max)?, t)?;
    }
    Ok(())
}

impl AppointmentBooked {
    fn check(&self) -> Result<(), CoreError> {
        check_times(self.start, self.end)?;
        change::same(
            "clinician",
            &bounded_text("clinician", &self.clinician, 200)?,
            &self.clinician,
        )?;
        check_optional("appointment type", &self.appointment_type, 60)?;
        check_optional("reason for the appointment", &self.reason, 500)
    }
}

pub(super) fn apply_booked(conn: &Connection, c: &AppointmentBooked) -> Result<Applied, CoreError> {
    c.check()?;
    let patient = change::row_of(conn, Table::Patients, c.patient)?;
    conn.prepare_cached(
        "INSERT INTO appointments (uuid, patient_id, clinician, start, end, type, reason, status,
            overbooked, created_at, created_by, updated_at, updated_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'booked', ?8, ?9, ?10, ?9, ?10)",
    )?
    .execute(params![
        c.appointment,
        patient,
        c.clinician,
        chartroom_audit::format_time(c.start),
        chartroom_audit::format_time(c.end),
        c.appointment_type,
        c.reason,
        c.overbooked,
        c.booked.time(),
        c.booked.by,
    ])?;
    Ok(Applied::one(conn.last_insert_rowid()))
}

pub(super) fn apply_moved(conn: &Connection, c: &AppointmentMoved) -> Result<Applied, CoreError> {
    check_times(c.start, c.end)?;
    let row = change::row_of(conn, Table::Appointments, c.appointment)?;
    conn.prepare_cached(
        "UPDATE appointments SET start = ?2, end = ?3, overbooked = ?4, updated_at = ?5,
            updated_by = ?6 WHERE id = ?1",
    )?
    .execute(params![
        row,
        chartroom_audit::format_time(c.start),
        chartroom_audit::format_time(c.end),
        c.overbooked,
        c.moved.time(),
        c.moved.by
    ])?;
    Ok(Applied::one(row))
}

pub(super) fn apply_cancelled(
    conn: &Connection,
    c: &AppointmentCancelled,
) -> Result<Applied, CoreError> {
    change::same(
        "reason for cancelling",
        &bounded_text("reason for cancelling", &c.reason, 500)?,
        &c.reason,
    )?;
    let row = change::row_of(conn, Table::Appointments, c.appointment)?;
    conn.prepare_cached(
        "UPDATE appointments SET status = 'cancelled', cancel_reason = ?2, updated_at = ?3,
            updated_by = ?4 WHERE id = ?1",
    )?
    .execute(params![row, c.reason, c.cancelled.time(), c.cancelled.by])?;
    Ok(Applied::one(row))
}

pub(super) fn apply_status(
    conn: &Connection,
    c: &AppointmentStatusChanged,
) -> Result<Applied, CoreError> {
    if c.status == AppointmentStatus::Cancelled {
        return Err(CoreError::InvalidInput(
            "An appointment is cancelled with a reason.".into(),
        ));
    }
    if c.encounter.is_some() != (c.status == AppointmentStatus::Seen) {
        return Err(CoreError::InvalidInput(
            "Only a started appointment names its encounter, and it must.".into(),
        ));
    }
    let row = change::row_of(conn, Table::Appointments, c.appointment)?;
    let encounter = c
        .encounter
        .map(|e| change::row_of(conn, Table::Encounters, e))
        .transpose()?;
    let column = match c.status {
        AppointmentStatus::Arrived => Some("arrived_at"),
        AppointmentStatus::InRoom => Some("roomed_at"),
        AppointmentStatus::Seen => Some("seen_at"),
        _ => None,
    };
    conn.prepare_cached(
        "UPDATE appointments SET status = ?2, updated_at = ?3, updated_by = ?4,
            encounter_id = coalesce(?5, encounter_id) WHERE id = ?1",
    )?
    .execute(params![
        row,
        c.status.as_str(),
        c.changed.time(),
        c.changed.by,
        encounter
    ])?;
    if let Some(column) = column {
        conn.execute(
            &format!("UPDATE appointments SET {column} = ?2 WHERE id = ?1"),
            params![row, c.changed.time()],
        )?;
    }
    Ok(Applied::one(row))
}

// ---------------------------------------------------------------------------------------
// The Session's operations.

impl Session {
    fn appointment_owner(&self, id: i64) -> Result<i64, CoreError> {
        self.connection()?
            .prepare_cached("SELECT patient_id FROM appointments WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?
            .ok_or_else(|| CoreError::NotFound(format!("There is no appointment {id}.")))
    }

    /// Books `patient_id` with a clinician. A clash is refused (`conflict`) unless
    /// `overbook` is set; a time outside working hours is booked with a warning.
    pub fn book_appointment(
        &mut self,
        patient_id: impl Into<PatientId>,
        booking: &Booking,
    ) -> Result<Appointment, CoreError> {
        let patient_id = patient_id.into().get();
        let zone = self.settings().zone();
        let start = zone.parse_instant("appointment time", &booking.at)?;
        let reason = booking
            .reason
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(|r| bounded_text("reason for the appointment", r, 500))
            .transpose()?;
        self.run(
            Permission::BookAppointments,
            Op::create("appointment.create").patient(patient_id),
            false,
            |tx, op, ctx| {
                check_start(&zone, start, ctx.now)?;
                let clinician = schedule::clinician(tx, &booking.clinician)?;
                let (kind, minutes) =
                    length_of(tx, booking.appointment_type.as_deref(), booking.minutes)?;
                let end = start + Duration::minutes(i64::from(minutes));
                let overbooked = check_clash(
                    tx,
                    &zone,
                    &clinician,
                    (start, end),
                    0,
                    booking.overbook,
                    ctx.now,
                )?;
                let booked = AppointmentBooked {
                    appointment: RecordId::new(ctx.now),
                    patient: ctx.patient()?.uuid,
                    clinician: clinician.clone(),
                    start: chartroom_audit::truncate_to_micros(start),
                    end: chartroom_audit::truncate_to_micros(end),
                    appointment_type: kind,
                    reason,
                    overbooked,
                    booked: ctx.stamp(),
                };
                let id = apply(tx, &Change::AppointmentBooked(booked))?.row();
                op.object = Some(("Appointment", id.to_string()));
                op.detail = Some(format!(
                    "with {clinician} at {}{}",
                    zone.rfc3339(start),
                    if overbooked { ", overbooked" } else { "" }
                ));
                let mut shown = Shower::new(tx, zone, ctx).show(row(tx, id)?)?;
                shown.warnings = warnings(tx, &zone, &clinician, start, end)?;
                Ok(shown)
            },
        )
    }

    /// Moves an appointment that is still only booked to another time (its length kept).
    pub fn move_appointment(
        &mut self,
        id: impl Into<AppointmentId>,
        at: &str,
        overbook: bool,
    ) -> Result<Appointment, CoreError> {
        let id = id.into().get();
        let patient_id = self.appointment_owner(id)?;
        let zone = self.settings().zone();
        let start = zone.parse_instant("appointment time", at)?;
        self.run(
            Permission::BookAppointments,
            Op::update("appointment.move").patient(patient_id),
            false,
            |tx, op, ctx| {
                op.object = Some(("Appointment", id.to_string()));
                let current = row(tx, id)?;
                let status = current.status();
                if status != AppointmentStatus::Booked {
                    return Err(CoreError::Conflict(format!(
                        "Appointment {id} is {}; only a booked appointment is moved.",
                        status.label()
                    )));
                }
                check_start(&zone, start, ctx.now)?;
                let length = instant(&current.end) - instant(&current.start);
                let end = start + length;
                let overbooked = check_clash(
                    tx,
                    &zone,
                    &current.clinician,
                    (start, end),
                    id,
                    overbook,
                    ctx.now,
                )?;
                let moved = AppointmentMoved {
                    appointment: change::id_of(tx, Table::Appointments, id)?,
                    start: chartroom_audit::truncate_to_micros(start),
                    end: chartroom_audit::truncate_to_micros(end),
                    overbooked,
                    moved: ctx.stamp(),
                };
                apply(tx, &Change::AppointmentMoved(moved))?;
                op.detail = Some(format!(
                    "from {} to {}{}",
                    zone.rfc3339(instant(&current.start)),
                    zone.rfc3339(start),
                    if overbooked { ", overbooked" } else { "" }
                ));
                let mut shown = Shower::new(tx, zone, ctx).show(row(tx, id)?)?;
                shown.warnings = warnings(tx, &zone, &current.clinician, start, end)?;
                Ok(shown)
            },
        )
    }

    /// Cancels an appointment that has not been seen, with the reason.
    pub fn cancel_appointment(
        &mut self,
        id: impl Into<AppointmentId>,
        reason: &str,
    ) -> Result<Appointment, CoreError> {
        let id = id.into().get();
        let reason = bounded_text("reason for cancelling", reason, 500)?;
        let patient_id = self.appointment_owner(id)?;
        let zone = self.settings().zone();
        self.run(
            Permission::BookAppointments,
            Op::update("appointment.cancel").patient(patient_id),
            false,
            |tx, op, ctx| {
                op.object = Some(("Appointment", id.to_string()));
                let current = row(tx, id)?;
                let status = current.status();
                if !matches!(
                    status,
                    AppointmentStatus::Booked | AppointmentStatus::Arrived
                ) {
                    return Err(CoreError::Conflict(format!(
                        "Appointment {id} is {}; it can no longer be cancelled.",
                        status.label()
                    )));
                }
                let cancelled = AppointmentCancelled {
                    appointment: change::id_of(tx, Table::Appointments, id)?,
                    reason,
                    cancelled: ctx.stamp(),
                };
                apply(tx, &Change::AppointmentCancelled(cancelled))?;
                Shower::new(tx, zone, ctx).show(row(tx, id)?)
            },
        )
    }

    /// Checks the patient in: they are in the waiting room.
    pub fn arrive_appointment(
        &mut self,
        id: impl Into<AppointmentId>,
    ) -> Result<Appointment, CoreError> {
        self.step(
            id.into().get(),
            AppointmentStatus::Arrived,
            Permission::CheckInPatients,
            "appointment.arrive",
            &[AppointmentStatus::Booked, AppointmentStatus::NoShow],
        )
    }

    /// The patient is in an examination room.
    pub fn room_appointment(
        &mut self,
        id: impl Into<AppointmentId>,
    ) -> Result<Appointment, CoreError> {
        self.step(
            id.into().get(),
            AppointmentStatus::InRoom,
            Permission::RoomPatients,
            "appointment.room",
            &[AppointmentStatus::Booked, AppointmentStatus::Arrived],
        )
    }

    /// The patient did not come.
    pub fn no_show_appointment(
        &mut self,
        id: impl Into<AppointmentId>,
    ) -> Result<Appointment, CoreError> {
        self.step(
            id.into().get(),
            AppointmentStatus::NoShow,
            Permission::BookAppointments,
            "appointment.no_show",
            &[AppointmentStatus::Booked],
        )
    }

    fn step(
        &mut self,
        id: i64,
        to: AppointmentStatus,
        permission: Permission,
        event: &'static str,
        from: &[AppointmentStatus],
    ) -> Result<Appointment, CoreError> {
        let patient_id = self.appointment_owner(id)?;
        let zone = self.settings().zone();
        self.run(
            permission,
            Op::update(event).patient(patient_id),
            false,
            |tx, op, ctx| {
                op.object = Some(("Appointment", id.to_string()));
                let current = row(tx, id)?;
                let status = current.status();
                if !from.contains(&status) {
                    return Err(CoreError::Conflict(format!(
                        "Appointment {id} is {}; it cannot be marked {} now.",
                        status.label(),
                        to.label()
                    )));
                }
                // A patient marked a no-show who turns up after all takes the time back only
                // if nobody was booked into it meanwhile.
                if status == AppointmentStatus::NoShow {
                    check_clash(
                        tx,
                        &zone,
                        &current.clinician,
                        (instant(&current.start), instant(&current.end)),
                        id,
                        false,
                        ctx.now,
                    )?;
                }
                if to == AppointmentStatus::NoShow && instant(&current.start) > ctx.now {
                    return Err(CoreError::Conflict(format!(
                        "Appointment {id} has not begun yet; a no-show is marked after its time."
                    )));
                }
                let changed = AppointmentStatusChanged {
                    appointment: change::id_of(tx, Table::Appointments, id)?,
                    status: to,
                    encounter: None,
                    changed: ctx.stamp(),
                };
                apply(tx, &Change::AppointmentStatusChanged(changed))?;
                Shower::new(tx, zone, ctx).show(row(tx, id)?)
            },
        )
    }

    /// Starts one's own appointment: opens its encounter (linked to it) and marks the
    /// patient seen. The chart's restriction applies as to opening the chart.
    pub fn start_appointment(
        &mut self,
        id: impl Into<AppointmentId>,
    ) -> Result<Started, CoreError> {
        let id = id.into().get();
        let patient_id = self.appointment_owner(id)?;
        let me = crate::session::actor_ref(&self.actor).name;
        let user_id = self.actor_user_id();
        let zone = self.settings().zone();
        self.require_for(
            Permission::StartAppointments,
            Op::update("appointment.start").patient(patient_id),
        )?;
        {
            let conn = self.connection()?;
            let current = row(conn, id)?;
            if chartroom_vault::account_key(&current.clinician) != chartroom_vault::account_key(&me)
            {
                return Err(self.deny(
                    Op::update("appointment.start")
                        .patient(patient_id)
                        .object("Appointment", id),
                    Denial::NotYours("Only the clinician the appointment is with starts it."),
                ));
            }
        }
        self.run(
            Permission::StartAppointments,
            Op::update("appointment.start").patient(patient_id),
            true,
            |tx, op, ctx| {
                op.object = Some(("Appointment", id.to_string()));
                let current = row(tx, id)?;
                let status = current.status();
                if !matches!(
                    status,
                    AppointmentStatus::Booked
                        | AppointmentStatus::Arrived
                        | AppointmentStatus::InRoom
                ) {
                    return Err(CoreError::Conflict(format!(
                        "Appointment {id} is {}; it cannot be started.",
                        status.label()
                    )));
                }
                let kind = match current.kind.as_deref().map(str::to_ascii_lowercase) {
                    Some(k) if k.contains("tele") || k.contains("video") => "telehealth",
                    Some(k) if k.contains("phone") || k.contains("call") => "telephone",
                    Some(k) if k.contains("home") => "home",
                    _ => "office",
                };
                let reason = current
                    .reason
                    .clone()
                    .or_else(|| current.kind.clone())
                    .unwrap_or_else(|| "Appointment".into());
                let new = NewEncounter::new(
                    kind,
                    Some(&chartroom_audit::format_time(ctx.now)),
                    &reason,
                    ctx.now,
                    &zone,
                )?;
                let opened = EncounterOpened::new(
                    ctx.patient()?.uuid,
                    &new,
                    user_id,
                    &ctx.actor.name,
                    ctx.stamp(),
                );
                let encounter_uuid = opened.encounter;
                let encounter_row = apply(tx, &Change::EncounterOpened(opened))?.row();
                let changed = AppointmentStatusChanged {
                    appointment: change::id_of(tx, Table::Appointments, id)?,
                    status: AppointmentStatus::Seen,
                    encounter: Some(encounter_uuid),
                    changed: ctx.stamp(),
                };
                apply(tx, &Change::AppointmentStatusChanged(changed))?;
                op.detail = Some(format!("encounter {encounter_row}"));
                ctx.also(
                    Op::create("encounter.create")
                        .patient(patient_id)
                        .object("Encounter", encounter_row)
                        .detail(kind),
                );
                Ok(Started {
                    appointment: Shower::new(tx, zone, ctx).show(row(tx, id)?)?,
                    encounter: encounter::encounter(tx, encounter_row)?,
                })
            },
        )
    }

    /// Lists appointments: a day (or several) of the book, one clinician's, or one
    /// patient's. A patient-data read: audited with every patient it showed.
    pub fn appointments(
        &mut self,
        query: &AppointmentQuery,
    ) -> Result<Vec<Appointment>, CoreError> {
        let zone = self.settings().zone();
        let day = query
            .day
            .as_deref()
            .map(|d| crate::zone::parse_date("day", d))
            .transpose()?;
        let days = query.days.unwrap_or(1).clamp(1, 31);
        let mut op = Op::read("appointment.list");
        if let Some(p) = query.patient_id {
            op = op.patient(p);
        }
        self.run(Permission::ViewAppointments, op, false, |tx, op, ctx| {
            let clinician = query
                .clinician
                .as_deref()
                .map(|c| {
                    crate::users::find_user(tx, c)?
                        .map(|(_, u)| u.name.as_str().to_owned())
                        .ok_or_else(|| {
                            CoreError::NotFound(format!(
                                "There is no user \"{}\".",
                                c.trim().chars().take(40).collect::<String>()
                            ))
                        })
                })
                .transpose()?;
            let range = match (day, query.patient_id) {
                (None, Some(_)) => None,
                (d, _) => {
                    let first = d.unwrap_or_else(|| zone.date_of(ctx.now));
                    let last = first + Duration::days(i64::from(days));
                    Some((zone.day_start(first), zone.day_start(last)))
                }
            };
            let mut sql = format!("SELECT {APPOINTMENT_COLUMNS} FROM appointments a WHERE 1");
            let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
            if let Some((from, to)) = range {
                args.push(Box::new(chartroom_audit::format_time(from)));
                sql.push_str(&format!(" AND a.start >= ?{}", args.len()));
                args.push(Box::new(chartroom_audit::format_time(to)));
                sql.push_str(&format!(" AND a.start < ?{}", args.len()));
            }
            if let Some(c) = &clinician {
                args.push(Box::new(c.clone()));
                sql.push_str(&format!(" AND a.clinician = ?{}", args.len()));
            }
            if let Some(p) = query.patient_id {
                args.push(Box::new(p));
                sql.push_str(&format!(" AND a.patient_id = ?{}", args.len()));
            }
            if query.active_only {
                sql.push_str(" AND a.status NOT IN ('cancelled', 'no_show')");
            }
            sql.push_str(" ORDER BY a.start, a.clinician, a.id");
            let rows: Vec<Row> = tx
                .prepare_cached(&sql)?
                .query_map(rusqlite::params_from_iter(args.iter()), to_row)?
                .collect::<Result<_, _>>()?;
            let mut shower = Shower::new(tx, zone, ctx);
            let mut out = Vec::with_capacity(rows.len());
            let mut by_patient: std::collections::BTreeMap<i64, Vec<i64>> = Default::default();
            for r in rows {
                by_patient.entry(r.patient_id).or_default().push(r.id);
                out.push(shower.show(r)?);
            }
            op.detail = Some(format!(
                "{}{}{}: {} appointments of {} patients",
                range
                    .map(|(a, _)| format!("from {}", zone.date_of(a)))
                    .unwrap_or_else(|| "every day".into()),
                if days > 1 && range.is_some() {
                    format!(", {days} days")
                } else {
                    String::new()
                },
                clinician
                    .as_deref()
                    .map(|c| format!(", {c}"))
                    .unwrap_or_default(),
                out.len(),
                by_patient.len()
            ));
            // Which patients the list showed, each on record as read.
            for (patient, ids) in by_patient {
                if Some(patient) == query.patient_id {
                    continue;
                }
                let ids = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
                ctx.also(
                    Op::read("appointment.list")
                        .patient(patient)
                        .object("Appointment", ids),
                );
            }
            Ok(out)
        })
    }

    /// The next free slots of a clinician from `from` (default now), for a type or length
    /// (default 15 minutes), within the next 120 days.
    pub fn free_slots(
        &mut self,
        clinician: &str,
        from: Option<&str>,
        appointment_type: Option<&str>,
        minutes: Option<u32>,
        count: usize,
    ) -> Result<Vec<FreeSlot>, CoreError> {
        let zone = self.settings().zone();
        let from = from
            .map(|f| zone.parse_instant("time to search from", f))
            .transpose()?;
        let count = count.clamp(1, 100);
        self.run(
            Permission::ViewSchedules,
            Op::read("schedule.free"),
            false,
            |tx, op, ctx| {
                let name = schedule::clinician(tx, clinician)?;
                op.object = Some(("User", name.clone()));
                let (_, minutes) = length_of(tx, appointment_type, minutes)?;
                let length = Duration::minutes(i64::from(minutes));
                let from = schedule::round_up(from.unwrap_or(ctx.now).max(ctx.now));
                let plan = schedule::load(tx, &name)?;
                let mut date: NaiveDate = zone.date_of(from);
                let mut out = Vec::new();
                for _ in 0..120 {
                    let spans = plan.working(&zone, date);
                    if !spans.is_empty() {
                        let (a, b) = zone.day_bounds(date);
                        let taken = busy(tx, &name, a, b)?;
                        for start in
                            schedule::free_in(&spans, &taken, from, length, count - out.len())
                        {
                            out.push(FreeSlot {
                                clinician: name.clone(),
                                start: zone.rfc3339(start),
                                end: zone.rfc3339(start + length),
                                minutes,
                            });
                        }
                        if out.len() >= count {
                            break;
                        }
                    }
                    date = match date.succ_opt() {
                        Some(d) => d,
                        None => break,
                    };
                }
                Ok(out)
            },
        )
    }
}

impl<'a> Shower<'a> {
    fn new(conn: &'a Connection, zone: ClinicZone, ctx: &'a crate::session::Ctx<'a>) -> Self {
        Shower {
            conn,
            zone,
            actor: ctx.actor,
            now: ctx.now,
            patients: Default::default(),
            all_visible: false,
        }
    }
}

/// A patient's appointments, oldest first, every field (times in UTC): for an export of a
/// chart the exporter may read.
pub(crate) fn for_export(
    conn: &Connection,
    actor: &crate::audit::ActorRef,
    now: DateTime<Utc>,
    patient_id: i64,
) -> Result<Vec<Appointment>, CoreError> {
    let mut shower = Shower {
        conn,
        zone: ClinicZone::utc(),
        actor,
        now,
        patients: Default::default(),
        all_visible: true,
    };
    of_patient_rows(conn, patient_id)?
        .into_iter()
        .map(|r| shower.show(r))
        .collect()
}

/// A patient's appointments for the chart, shown as this session may see them.
pub(crate) fn for_chart(
    conn: &Connection,
    zone: ClinicZone,
    ctx_actor: &crate::audit::ActorRef,
    now: DateTime<Utc>,
    patient_id: i64,
) -> Result<Vec<Appointment>, CoreError> {
    let mut shower = Shower {
        conn,
        zone,
        actor: ctx_actor,
        now,
        patients: Default::default(),
        all_visible: false,
    };
    let mut out = of_patient_rows(conn, patient_id)?
        .into_iter()
        .map(|r| shower.show(r))
        .collect::<Result<Vec<_>, _>>()?;
    out.reverse();
    Ok(out)
}
