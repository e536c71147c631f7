//! Commands for the vault: is there one, create it, unlock, lock.

use chartroom_core::{Permission, Role, Session, VaultConfig};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use tauri::State;
use ts_rs::TS;

use crate::error::AppError;
use crate::state::{locked, off_main_thread, AppState, DemoInfo};

#[derive(Debug, Serialize, TS)]
pub struct VaultStatus {
    /// Whether a vault exists at `location`.
    exists: bool,
    /// The vault folder, so staff can tell which clinic's vault this window opens.
    location: String,
    signed_in: Option<SessionInfo>,
    /// Why the vault was locked without being asked to (once), e.g. the idle timeout.
    notice: Option<String>,
    /// Present in demo mode: a synthetic clinic, with the demo accounts to sign in with.
    demo: Option<DemoInfo>,
}

/// Who is signed in and what their role may do. The window uses `permissions` to decide
/// which screens to offer; the gate in core decides what actually happens.
#[derive(Debug, Clone, Serialize, TS)]
pub struct SessionInfo {
    user: String,
    role: Role,
    recovery: bool,
    permissions: Vec<Permission>,
    idle_timeout_minutes: u32,
    /// How long a break-the-glass grant lasts, for the dialog to say.
    break_glass_minutes: u32,
    /// The clinic's time zone (IANA): every time on screen is shown in it.
    time_zone: String,
    /// The units vital signs are shown and typed in.
    units: chartroom_core::Units,
}

impl SessionInfo {
    pub(crate) fn of(session: &Session) -> Self {
        let who = session.signed_in();
        SessionInfo {
            user: who.user,
            role: who.role,
            recovery: who.recovery,
            permissions: session.permissions().to_vec(),
            idle_timeout_minutes: session.settings().idle_timeout_minutes,
            break_glass_minutes: session.settings().break_glass_minutes,
            time_zone: session.settings().zone().name().to_owned(),
            units: session.settings().units,
        }
    }
}

#[derive(Debug, Serialize, TS)]
pub struct Created {
    /// Shown once on the first-run screen, then dropped; it is stored nowhere.
    recovery_key: String,
    signed_in: SessionInfo,
}

#[tauri::command]
pub fn vault_status(state: State<'_, AppState>) -> VaultStatus {
    state.expire_if_idle();
    VaultStatus {
        exists: chartroom_core::vault_exists(&state.config),
        location: state.config.dir.display().to_string(),
        signed_in: state.session().as_ref().map(SessionInfo::of),
        notice: state.take_notice(),
        demo: state.demo.clone(),
    }
}

/// Counts as activity (the UI calls it, throttled, while someone types or clicks), so the
/// idle timeout measures time away from the keyboard rather than time between commands.
#[tauri::command]
pub fn keep_alive(state: State<'_, AppState>) -> Result<(), AppError> {
    state.expire_if_idle();
    match state.session().as_mut() {
        Some(session) => Ok(session.keep_alive()?),
        None => Err(locked()),
    }
}

#[tauri::command]
pub async fn create_vault(
    state: State<'_, AppState>,
    admin: String,
    password: String,
) -> Result<Created, AppError> {
    let password = SecretString::from(password);
    let config = state.config.clone();
    let (session, recovery) =
        off_main_thread(move || Session::create(config, &admin, &password)).await?;
    let signed_in = SessionInfo::of(&session);
    state.install(session);
    Ok(Created {
        recovery_key: recovery.display_grouped().expose_secret().to_owned(),
        signed_in,
    })
}

#[tauri::command]
pub async fn unlock(
    state: State<'_, AppState>,
    user: String,
    password: String,
) -> Result<SessionInfo, AppError> {
    let password = SecretString::from(password);
    let config = state.config.clone();
    let session = tauri::async_runtime::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let session = Session::unlock(config.clone(), &user, &password)?;
        if crate::timings_wanted() {
            report_unlock_time(&config, started.elapsed());
        }
        Ok::<_, chartroom_core::CoreError>(session)
    })
    .await
    .map_err(|_| AppError::new("internal", "Something went wrong. Please try again."))??;
    let signed_in = SessionInfo::of(&session);
    state.install(session);
    Ok(signed_in)
}

/// Signs in with the clinic's recovery key (for when every administrator password is
/// lost): a recovery session, which sets new passwords under Users.
#[tauri::command]
pub async fn unlock_with_recovery_key(
    state: State<'_, AppState>,
    key: String,
) -> Result<SessionInfo, AppError> {
    let key = SecretString::from(key);
    let config = state.config.clone();
    let session = off_main_thread(move || {
        let key = chartroom_core::RecoveryKey::parse(key.expose_secret())?;
        Session::unlock_with_recovery_key(config, &key)
    })
    .await?;
    let signed_in = SessionInfo::of(&session);
    state.install(session);
    Ok(signed_in)
}

/// Changes the signed-in user's own password: the current one is asked again, so a window
/// left open is not enough to take over the account.
#[tauri::command]
pub async fn change_own_password(
    state: State<'_, AppState>,
    current: String,
    password: String,
) -> Result<(), AppError> {
    let current = SecretString::from(current);
    let password = SecretString::from(password);
    let config = state.config.clone();
    let who = state.with_session(|s| Ok(s.signed_in()))?;
    if who.recovery {
        return Err(AppError::new(
            "invalid_input",
            "A recovery session has no password of its own: set the administrator's under Users.",
        ));
    }
    // The current password is checked the way an unlock checks it (failures count toward
    // the pause), on a session of its own that is locked again at once.
    let user = who.user.clone();
    off_main_thread(move || Session::unlock(config, &user, &current)?.lock()).await?;
    state.with_session(|s| {
        // The window may have been locked and unlocked as someone else meanwhile.
        if s.signed_in().user != who.user || s.signed_in().recovery {
            return Err(chartroom_core::CoreError::Conflict(
                "The window was signed in again meanwhile: nothing was changed.".into(),
            ));
        }
        s.change_own_password(&password)
    })
}

#[tauri::command]
pub fn lock(state: State<'_, AppState>) -> Result<(), AppError> {
    match state.session().take() {
        Some(session) => Ok(session.lock()?),
        None => Ok(()),
    }
}

/// With `CHARTROOM_TIMINGS=1`: the unlock's time, and how much of it a key derivation with the
/// same parameters takes (timed again right after), for the desktop benchmark.
fn report_unlock_time(config: &VaultConfig, total: std::time::Duration) {
    if let Ok(kdf) = chartroom_core::key_derivation_time(config) {
        eprintln!(
            "chartroom-desktop: unlock {:.1} ms, of which key derivation {:.1} ms, the rest {:.1} ms",
            total.as_secs_f64() * 1e3,
            kdf.as_secs_f64() * 1e3,
            total.saturating_sub(kdf).as_secs_f64() * 1e3
        );
    }
}
