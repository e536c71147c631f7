//! The sync worker: while someone is signed in, pushes the audit trail to the clinic's
//! collector every few seconds, backing off with jitter while it is unreachable. It takes
//! the session's lock only for each short database step, never across the network, so the
//! window never waits for it. The status bar polls `sync_status`.

use std::time::Duration;

use chartroom_core::sync::{backoff, push_pending};
use chartroom_core::{CollectorClient, CoreError, Session, SessionAccess, SyncStatus};
use tauri::{Manager, State};

use crate::error::AppError;
use crate::state::AppState;

/// How often a healthy worker looks for new entries.
const EVERY: Duration = Duration::from_secs(10);

struct Access<'a>(&'a AppState);

impl SessionAccess for Access<'_> {
    fn with<R>(
        &self,
        f: impl FnOnce(&mut Session) -> Result<R, CoreError>,
    ) -> Result<R, CoreError> {
        match self.0.session().as_mut() {
            Some(s) => f(s),
            None => Err(CoreError::SessionExpired { minutes: 0 }),
        }
    }
}

/// Starts the worker for the life of the app.
pub fn start(app: &tauri::AppHandle) {
    let handle = app.clone();
    tauri::async_runtime::spawn(async move {
        let mut failures = 0u32;
        loop {
            let wait = if failures == 0 {
                EVERY
            } else {
                backoff(failures)
            };
            tokio::time::sleep(wait).await;
            let state = handle.state::<AppState>();
            let access = Access(&state);
            // Locked, or no collector configured: nothing to do (the queue waits).
            let Ok(Some(target)) = access.with(|s| s.sync_target()) else {
                failures = 0;
                continue;
            };
            let Ok(client) = CollectorClient::new(&target.url, &target.certificate) else {
                failures = failures.saturating_add(1);
                continue;
            };
            match push_pending(&access, &client, 1000).await {
                Ok(_) => failures = 0,
                // The failure is in the sync status, in words, for the status bar.
                Err(_) => failures = failures.saturating_add(1),
            }
        }
    });
}

#[tauri::command(async)]
pub fn sync_status(state: State<'_, AppState>) -> Result<SyncStatus, AppError> {
    state.with_session(|s| s.sync_status())
}

/// Enrolls this computer with the clinic's collector (admin): the one-time token from
/// `chartroom-collector token`, and the collector's certificate (or CA) to pin, or nothing
/// for one with a public CA's certificate. The network call holds no lock.
#[tauri::command(async, rename_all = "snake_case")]
pub async fn sync_enroll(
    state: State<'_, AppState>,
    url: String,
    token: String,
    certificate: String,
) -> Result<SyncStatus, AppError> {
    let (device, key) = state.with_session(|s| {
        s.require(chartroom_core::Permission::ManageSync, "sync.configure")?;
        Ok((s.device_id().to_owned(), s.device_public_key()))
    })?;
    let client = CollectorClient::new(&url, &certificate).map_err(AppError::from)?;
    client
        .enroll(&token, &device, &key, None)
        .await
        .map_err(|e| AppError::new("sync", format!("Enrollment failed: {e}.")))?;
    state.with_session(|s| s.sync_configure(&url, &certificate))?;
    let access = Access(&state);
    // The first push now; a failure shows in the status and the worker retries.
    let _ = push_pending(&access, &client, 1000).await;
    state.with_session(|s| s.sync_status())
}
