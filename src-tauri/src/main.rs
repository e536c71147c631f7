//! chartroom-desktop: the Tauri shell. Commands parse input, call chartroom-core and map
//! errors; nothing here touches SQL, permissions or keys directly.

#![forbid(unsafe_code)]
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod error;
mod vault;

fn main() {
    let state = vault::AppState::new(chartroom_core::vault_config(None));
    tauri::Builder::default()
        .manage(state)
        .invoke_handler(tauri::generate_handler![
            vault::vault_status,
            vault::create_vault,
            vault::unlock,
            vault::lock
        ])
        .run(tauri::generate_context!())
        .expect("the Chartroom window could not start");
}
