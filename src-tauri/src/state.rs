//! The app's state: where the vault is, the session while it is unlocked, what demo mode
//! shows, and the helpers that keep slow core calls off the window's thread. The command
//! modules all use this one; it uses none of them.

use std::sync::Mutex;

use chartroom_core::{CoreError, Role, Session, VaultConfig};
use serde::Serialize;
use ts_rs::TS;

use crate::error::AppError;

#[derive(Debug, Clone, Serialize, TS)]
pub struct DemoUser {
    pub(crate) name: String,
    pub(crate) role: Role,
}

/// What the unlock screen shows in demo mode.
#[derive(Debug, Clone, Serialize, TS)]
pub struct DemoInfo {
    pub(crate) users: Vec<DemoUser>,
    pub(crate) password: String,
    pub(crate) patients: u32,
}

/// The app's state: where the vault is, and the session while it is unlocked.
pub struct AppState {
    pub(crate) config: VaultConfig,
    /// Set when the app was started with `--demo`: the synthetic clinic and how to sign in.
    pub(crate) demo: Option<DemoInfo>,
    session: Mutex<Option<Session>>,
    /// Why the window was locked without being asked to, shown once on the unlock screen.
    notice: Mutex<Option<String>>,
}

impl AppState {
    pub fn new(config: VaultConfig, demo: Option<DemoInfo>) -> Self {
        AppState {
            config,
            demo,
            session: Mutex::new(None),
            notice: Mutex::new(None),
        }
    }

    /// Locks (in core, which audits an idle logoff and wipes the key) a session that has been
    /// idle past the clinic's timeout.
    pub fn expire_if_idle(&self) {
        let mut guard = self.session();
        let minutes = guard.as_ref().map(|s| s.settings().idle_timeout_minutes);
        let expired = match guard.as_mut() {
            Some(session) => session.expire_if_idle().unwrap_or(true),
            None => false,
        };
        if expired {
            guard.take();
            *self
                .notice
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(format!(
                "Chartroom locked itself after {} without use.",
                match minutes.unwrap_or(10) {
                    1 => "1 minute".to_owned(),
                    n => format!("{n} minutes"),
                }
            ));
        }
    }

    pub(crate) fn take_notice(&self) -> Option<String> {
        self.notice
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }

    /// Runs `f` on the signed-in session. Every command that touches the clinic's data goes
    /// through here and then through core's gate; a session that core locked on the way
    /// (the idle timeout) is dropped, and the window is told with `session_expired`.
    pub fn with_session<T>(
        &self,
        f: impl FnOnce(&mut Session) -> Result<T, CoreError>,
    ) -> Result<T, AppError> {
        self.expire_if_idle();
        let mut guard = self.session();
        let Some(session) = guard.as_mut() else {
            return Err(locked());
        };
        let out = f(session);
        if !session.is_open() {
            guard.take();
        }
        out.map_err(AppError::from)
    }

    pub(crate) fn install(&self, session: Session) {
        if let Some(previous) = self.session().replace(session) {
            let _ = previous.lock();
        }
    }

    pub(crate) fn session(&self) -> std::sync::MutexGuard<'_, Option<Session>> {
        // A panic while holding the lock leaves the session as it was; keep going.
        self.session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub(crate) fn locked() -> AppError {
    AppError::new(
        "session_expired",
        "The vault is locked. Unlock it to continue.",
    )
}

/// Runs slow work (a key derivation for a new slot) off the window's thread and off the
/// async runtime's few workers.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AppError> + Send + 'static,
) -> Result<T, AppError> {
    tauri::async_runtime::spawn_blocking(work)
        .await
        .map_err(|_| AppError::new("internal", "Something went wrong. Please try again."))?
}

/// Runs a slow core call (Argon2id takes about half a second) off the window's thread.
pub(crate) async fn off_main_thread<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, chartroom_core::CoreError> + Send + 'static,
) -> Result<T, AppError> {
    tauri::async_runtime::spawn_blocking(work)
        .await
        .map_err(|_| AppError::new("internal", "Something went wrong. Please try again."))?
        .map_err(AppError::from)
}
