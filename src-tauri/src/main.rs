//! chartroom-desktop: the Tauri shell. Commands parse input, call chartroom-core and map
//! errors; nothing here touches SQL, permissions or keys directly.
//!
//! `chartroom-desktop --demo` opens a synthetic demo clinic instead of the clinic's vault.

#![forbid(unsafe_code)]
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod admin;
mod book;
mod demo;
mod error;
mod exchange;
mod records;
mod state;
mod sync;
mod trail;
mod vault;

#[cfg(test)]
mod bindings;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tauri::Manager;

/// How often the idle timer looks at the session. The lock itself happens in core, which
/// also audits it; this only makes sure it happens when nobody calls a command.
const IDLE_CHECK: Duration = Duration::from_secs(5);

static STARTED: OnceLock<Instant> = OnceLock::new();

/// The window calls this once its first screen is painted. With `CHARTROOM_TIMINGS=1` the
/// time from process start is printed (the start-up benchmark reads it); nothing else.
pub(crate) fn timings_wanted() -> bool {
    std::env::var_os("CHARTROOM_TIMINGS").is_some()
}

#[tauri::command]
fn ui_ready() {
    if timings_wanted() {
        if let Some(start) = STARTED.get() {
            eprintln!(
                "chartroom-desktop: first screen painted {:.1} ms after start",
                start.elapsed().as_secs_f64() * 1000.0
            );
        }
    }
}

/// WebKitGTK turns a C or POSIX locale into the language tag "C", which JavaScript's Intl
/// refuses (RangeError), and the chart library formats numbers through Intl. Under such a
/// locale (common on servers and in CI) the window is given English; any real locale stays.
fn give_webview_a_language() {
    let effective = ["LC_ALL", "LC_MESSAGES", "LANG"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
    let is_c = match effective.as_deref() {
        None => true,
        Some(v) => v == "C" || v == "POSIX" || v.starts_with("C.") || v.starts_with("POSIX."),
    };
    if is_c {
        // Runs first in main, before any thread exists.
        std::env::remove_var("LC_ALL");
        std::env::remove_var("LC_MESSAGES");
        std::env::set_var("LANG", "en_US.UTF-8");
    }
}

fn main() {
    chartroom_core::restrict_new_files();
    STARTED.get_or_init(Instant::now);
    give_webview_a_language();
    let demo = std::env::args().skip(1).any(|a| a == "--demo");
    let state = if demo {
        let dir = match demo::demo_dir() {
            Ok(dir) => dir,
            Err(why) => {
                eprintln!("chartroom-desktop: {why}");
                std::process::exit(64);
            }
        };
        state::AppState::new(
            chartroom_core::vault_config(Some(dir)),
            Some(state::DemoInfo::new()),
        )
    } else {
        state::AppState::new(chartroom_core::vault_config(None), None)
    };
    tauri::Builder::default()
        .manage(state)
        .manage(exchange::ExportState::default())
        .setup(|app| {
            let handle = app.handle().clone();
            std::thread::Builder::new()
                .name("idle-lock".into())
                .spawn(move || loop {
                    std::thread::sleep(IDLE_CHECK);
                    handle.state::<state::AppState>().expire_if_idle();
                })?;
            sync::start(app.handle());
            Ok(())
        })
        // Keep in step with build.rs and capabilities/main.json (a test checks the two).
        .invoke_handler(tauri::generate_handler![
            ui_ready,
            vault::vault_status,
            vault::create_vault,
            vault::unlock,
            vault::lock,
            vault::keep_alive,
            demo::create_demo,
            records::search_patients,
            records::open_chart,
            records::register_patient,
            records::break_glass,
            records::add_encounter,
            records::draft_note,
            records::edit_draft,
            records::sign_note,
            records::add_addendum,
            records::record_vitals,
            records::mark_entered_in_error,
            records::update_patient,
            records::patient_history,
            records::care_team_choices,
            records::change_care_team,
            vault::unlock_with_recovery_key,
            vault::change_own_password,
            exchange::show_in_folder,
            records::add_problem,
            records::resolve_problem,
            records::add_allergy,
            records::record_no_known_allergies,
            records::resolve_allergy,
            records::add_medication,
            records::stop_medication,
            records::add_immunization,
            records::resolve_immunization,
            records::lab_tests,
            records::demographic_choices,
            records::add_lab_report,
            records::add_lab_result,
            records::correct_lab_result,
            book::list_appointments,
            book::book_appointment,
            book::free_slots,
            book::move_appointment,
            book::cancel_appointment,
            book::appointment_status,
            book::start_appointment,
            book::list_clinicians,
            book::appointment_types,
            book::clinician_schedule,
            book::set_schedule,
            book::set_day_off,
            book::add_appointment_type,
            admin::list_users,
            admin::add_user,
            admin::disable_user,
            admin::enable_user,
            admin::change_role,
            admin::reset_password,
            admin::get_settings,
            admin::set_setting,
            trail::audit_entries,
            trail::audit_vocabulary,
            trail::verify_audit,
            trail::list_alerts,
            trail::acknowledge_alert,
            exchange::export_records,
            exchange::export_progress,
            exchange::patient_disclosures,
            sync::sync_status,
            sync::sync_enroll,
        ])
        .run(tauri::generate_context!())
        .expect("the Chartroom window could not start");
}
