//! chartroom-desktop: the Tauri shell. Commands parse input, call chartroom-core and map
//! errors; nothing here touches SQL, permissions or keys directly.

#![forbid(unsafe_code)]
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod error;
mod vault;

use std::time::Duration;

use tauri::Manager;

/// How often the idle timer looks at the session. The lock itself happens in core, which
/// also audits it; this only makes sure it happens when nobody calls a command.
const IDLE_CHECK: Duration = Duration::from_secs(5);

fn main() {
    let state = vault::AppState::new(chartroom_core::vault_config(None));
    tauri::Builder::default()
        .manage(state)
        .setup(|app| {
            let handle = app.handle().clone();
            std::thread::Builder::new()
                .name("idle-lock".into())
                .spawn(move || loop {
                    std::thread::sleep(IDLE_CHECK);
                    handle.state::<vault::AppState>().expire_if_idle();
                })?;
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            vault::vault_status,
            vault::create_vault,
            vault::unlock,
            vault::lock,
            vault::keep_alive
        ])
        .run(tauri::generate_context!())
        .expect("the Chartroom window could not start");
}
