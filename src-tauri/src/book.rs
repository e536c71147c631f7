//! Commands for the appointment book: the front desk's day and week, booking, the waiting
//! room, and the clinician's day. Each calls one Session method; core checks the role,
//! audits the patients a list showed, and refuses clashes.

use chartroom_core::{
    Appointment, AppointmentQuery, AppointmentType, Booking, FreeSlot, ScheduleView, Started,
};
use tauri::State;

use crate::error::AppError;
use crate::state::AppState;

#[tauri::command(async, rename_all = "snake_case")]
pub fn list_appointments(
    state: State<'_, AppState>,
    query: AppointmentQuery,
) -> Result<Vec<Appointment>, AppError> {
    state.with_session(|s| s.appointments(&query))
}

#[tauri::command(async, rename_all = "snake_case")]
pub fn book_appointment(
    state: State<'_, AppState>,
    patient_id: i64,
    booking: Booking,
) -> Result<Appointment, AppError> {
    state.with_session(|s| s.book_appointment(patient_id, &booking))
}

#[tauri::command(async, rename_all = "snake_case")]
pub fn free_slots(
    state: State<'_, AppState>,
    clinician: String,
    from: Option<String>,
    appointment_type: Option<String>,
    count: usize,
) -> Result<Vec<FreeSlot>, AppError> {
    state.with_session(|s| {
        s.free_slots(
            &clinician,
            from.as_deref().filter(|f| !f.trim().is_empty()),
            appointment_type.as_deref().filter(|t| !t.trim().is_empty()),
            None,
            count,
        )
    })
}

#[tauri::command(async, rename_all = "snake_case")]
pub fn move_appointment(
    state: State<'_, AppState>,
    appointment_id: i64,
    at: String,
    overbook: bool,
) -> Result<Appointment, AppError> {
    state.with_session(|s| s.move_appointment(appointment_id, &at, overbook))
}

#[tauri::command(async, rename_all = "snake_case")]
pub fn cancel_appointment(
    state: State<'_, AppState>,
    appointment_id: i64,
    reason: String,
) -> Result<Appointment, AppError> {
    state.with_session(|s| s.cancel_appointment(appointment_id, &reason))
}

/// Checks in (`arrive`), rooms (`room`) or marks a no-show (`no_show`).
#[tauri::command(async, rename_all = "snake_case")]
pub fn appointment_status(
    state: State<'_, AppState>,
    appointment_id: i64,
    step: String,
) -> Result<Appointment, AppError> {
    state.with_session(|s| match step.as_str() {
        "arrive" => s.arrive_appointment(appointment_id),
        "room" => s.room_appointment(appointment_id),
        "no_show" => s.no_show_appointment(appointment_id),
        _ => Err(chartroom_core::CoreError::InvalidInput(
            "That is not a step of an appointment.".into(),
        )),
    })
}

#[tauri::command(async, rename_all = "snake_case")]
pub fn start_appointment(
    state: State<'_, AppState>,
    appointment_id: i64,
) -> Result<Started, AppError> {
    state.with_session(|s| s.start_appointment(appointment_id))
}

#[tauri::command(async, rename_all = "snake_case")]
pub fn list_clinicians(state: State<'_, AppState>) -> Result<Vec<String>, AppError> {
    state.with_session(|s| s.clinicians())
}

#[tauri::command(async, rename_all = "snake_case")]
pub fn appointment_types(state: State<'_, AppState>) -> Result<Vec<AppointmentType>, AppError> {
    state.with_session(|s| s.appointment_types())
}

#[tauri::command(async, rename_all = "snake_case")]
pub fn clinician_schedule(
    state: State<'_, AppState>,
    clinician: String,
    week_of: Option<String>,
) -> Result<ScheduleView, AppError> {
    state.with_session(|s| {
        let week = week_of
            .as_deref()
            .filter(|w| !w.trim().is_empty())
            .map(|w| chartroom_core::zone::parse_date("week", w))
            .transpose()?;
        s.schedule(&clinician, week)
    })
}

/// Sets a clinician's hours on one weekday (`08:00-12:00,13:00-17:00` or `off`); admin.
#[tauri::command(async, rename_all = "snake_case")]
pub fn set_schedule(
    state: State<'_, AppState>,
    clinician: String,
    day: String,
    hours: String,
) -> Result<ScheduleView, AppError> {
    state.with_session(|s| s.set_schedule(&clinician, &day, &hours))
}

/// Marks a day off (or a working day again); admin.
#[tauri::command(async, rename_all = "snake_case")]
pub fn set_day_off(
    state: State<'_, AppState>,
    clinician: String,
    date: String,
    off: bool,
) -> Result<ScheduleView, AppError> {
    state.with_session(|s| {
        let date = chartroom_core::zone::parse_date("date", &date)?;
        s.set_day_off(&clinician, date, off)
    })
}

/// Adds an appointment type, or changes the length of one; admin.
#[tauri::command(async, rename_all = "snake_case")]
pub fn add_appointment_type(
    state: State<'_, AppState>,
    name: String,
    minutes: u32,
) -> Result<AppointmentType, AppError> {
    state.with_session(|s| s.add_appointment_type(&name, minutes))
}
