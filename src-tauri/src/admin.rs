//! Commands for the administrator: users and clinic settings. Core's gate checks the role.

use chartroom_core::{Role, Settings, User};
use secrecy::SecretString;
use tauri::State;

use crate::error::AppError;
use crate::state::{blocking, AppState};

#[tauri::command(async, rename_all = "snake_case")]
pub fn list_users(state: State<'_, AppState>) -> Result<Vec<User>, AppError> {
    state.with_session(|s| s.users())
}

fn parse_role(role: &str) -> Result<Role, AppError> {
    role.parse::<Role>().map_err(|_| {
        AppError::new(
            "invalid_input",
            "The role is one of: admin, physician, nurse, front_desk, auditor.",
        )
    })
}

/// Adds a user with a first password (a new key slot, which takes a second to derive).
#[tauri::command(rename_all = "snake_case")]
pub async fn add_user(
    app: tauri::AppHandle,
    name: String,
    role: String,
    family_name: Option<String>,
    password: String,
) -> Result<User, AppError> {
    let role = parse_role(&role)?;
    let password = SecretString::from(password);
    blocking(move || {
        use tauri::Manager;
        app.state::<AppState>().with_session(|s| {
            s.add_user(
                &name,
                role,
                family_name.as_deref().filter(|f| !f.trim().is_empty()),
                &password,
            )
        })
    })
    .await
}

#[tauri::command(async, rename_all = "snake_case")]
pub fn disable_user(state: State<'_, AppState>, name: String) -> Result<Vec<User>, AppError> {
    state.with_session(|s| {
        s.disable_user(&name)?;
        s.users()
    })
}

#[tauri::command(async, rename_all = "snake_case")]
pub fn change_role(
    state: State<'_, AppState>,
    name: String,
    role: String,
) -> Result<Vec<User>, AppError> {
    let role = parse_role(&role)?;
    state.with_session(|s| {
        s.change_role(&name, role)?;
        s.users()
    })
}

/// Gives a user who forgot their password a new one: a new key slot replaces theirs.
#[tauri::command(rename_all = "snake_case")]
pub async fn reset_password(
    app: tauri::AppHandle,
    name: String,
    password: String,
) -> Result<(), AppError> {
    let password = SecretString::from(password);
    blocking(move || {
        use tauri::Manager;
        app.state::<AppState>()
            .with_session(|s| s.reset_password(&name, &password))
    })
    .await
}

/// Enables a disabled user again with a new password (a new key slot; the old password
/// stays useless).
#[tauri::command(rename_all = "snake_case")]
pub async fn enable_user(
    app: tauri::AppHandle,
    name: String,
    password: String,
) -> Result<Vec<User>, AppError> {
    let password = SecretString::from(password);
    blocking(move || {
        use tauri::Manager;
        app.state::<AppState>().with_session(|s| {
            s.enable_user(&name, &password)?;
            s.users()
        })
    })
    .await
}

#[tauri::command(async, rename_all = "snake_case")]
pub fn get_settings(state: State<'_, AppState>) -> Result<Settings, AppError> {
    state.with_session(|s| Ok(s.settings().clone()))
}

#[tauri::command(async, rename_all = "snake_case")]
pub fn set_setting(
    state: State<'_, AppState>,
    key: String,
    value: String,
) -> Result<Settings, AppError> {
    state.with_session(|s| s.set_setting(&key, &value))
}
