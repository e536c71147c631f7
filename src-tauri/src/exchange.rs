//! Exports from the window: the chart's "Export…" dialog and (for the admin) the whole
//! clinic. Core gates, encrypts and accounts; this only chooses where the file goes and
//! reports progress to a window that polls while the export runs.

use std::path::PathBuf;
use std::sync::Mutex;

use chartroom_core::{Destination, Disclosure, ExportReport, ExportRequest, Selection};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tauri::State;
use ts_rs::TS;

use crate::error::AppError;
use crate::state::AppState;

/// The export dialog. `patient_ids` absent means the whole clinic.
#[derive(Deserialize, TS)]
pub struct ExportForm {
    #[ts(optional)]
    pub patient_ids: Option<Vec<i64>>,
    /// age public keys (age1…); empty when a passphrase is used.
    pub recipients: Vec<String>,
    /// Dropped into a secret at once; never sent back.
    #[ts(optional)]
    pub passphrase: Option<String>,
    #[ts(optional)]
    pub recipient_name: Option<String>,
    pub purpose: String,
}

impl std::fmt::Debug for ExportForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportForm")
            .field("patient_ids", &self.patient_ids)
            .field("recipients", &self.recipients.len())
            .finish_non_exhaustive()
    }
}

/// A finished export: what went, and where the file is.
#[derive(Debug, Serialize, TS)]
pub struct ExportDone {
    pub report: ExportReport,
    /// The file written (in the exports folder).
    pub path: String,
    pub folder: String,
}

/// How far the running export is: patients written, of how many.
#[derive(Debug, Clone, Copy, Serialize, TS, Default)]
pub struct ExportProgress {
    pub done: u64,
    pub total: u64,
}

/// Progress shared with the polling window (not behind the session's lock, which the
/// export holds).
#[derive(Debug, Default)]
pub struct ExportState(Mutex<Option<ExportProgress>>);

impl ExportState {
    fn set(&self, value: Option<ExportProgress>) {
        if let Ok(mut guard) = self.0.lock() {
            *guard = value;
        }
    }

    fn get(&self) -> Option<ExportProgress> {
        self.0.lock().ok().and_then(|g| *g)
    }
}

/// Where exports are saved: CHARTROOM_EXPORT_DIR, else "Chartroom exports" in the user's
/// documents, else in Chartroom's data folder.
fn export_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CHARTROOM_EXPORT_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    dirs::document_dir()
        .map(|d| d.join("Chartroom exports"))
        .or_else(|| dirs::data_dir().map(|d| d.join("chartroom").join("exports")))
        .unwrap_or_else(|| PathBuf::from("chartroom-exports"))
}

/// A new file name that says when, never who: no patient detail in file names.
fn new_file(dir: &std::path::Path) -> PathBuf {
    let stamp = chrono::Utc::now().format("%Y-%m-%d-%H%M%S");
    let mut path = dir.join(format!("chartroom-export-{stamp}.age"));
    let mut n = 2;
    while path.exists() {
        path = dir.join(format!("chartroom-export-{stamp}-{n}.age"));
        n += 1;
    }
    path
}

#[tauri::command(async, rename_all = "snake_case")]
pub fn export_records(
    state: State<'_, AppState>,
    exports: State<'_, ExportState>,
    form: ExportForm,
) -> Result<ExportDone, AppError> {
    let destination = match form.passphrase {
        Some(p) if !p.is_empty() => Destination::Passphrase(SecretString::from(p)),
        _ => Destination::Recipients(
            form.recipients
                .iter()
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty())
                .collect(),
        ),
    };
    let request = ExportRequest {
        selection: match form.patient_ids {
            Some(ids) => Selection::Patients(ids),
            None => Selection::All,
        },
        destination,
        recipient_name: form.recipient_name,
        purpose: form.purpose,
    };
    let folder = export_dir();
    std::fs::create_dir_all(&folder).map_err(|e| {
        AppError::new(
            "io",
            format!(
                "The exports folder {} cannot be made: {e}.",
                folder.display()
            ),
        )
    })?;
    let path = new_file(&folder);
    exports.set(Some(ExportProgress::default()));
    let result = state.with_session(|s| {
        s.export_to_file(&request, &path, &mut |done, total| {
            exports.set(Some(ExportProgress { done, total }));
        })
    });
    exports.set(None);
    let report = result?;
    Ok(ExportDone {
        report,
        path: path.display().to_string(),
        folder: folder.display().to_string(),
    })
}

/// Opens the system's file manager on the folder of an export this window made. Only a
/// file inside the exports folder is shown: the webview names a path, and nothing else on
/// the computer is opened for it.
#[tauri::command(async, rename_all = "snake_case")]
pub fn show_in_folder(state: State<'_, AppState>, path: String) -> Result<(), AppError> {
    state.with_session(|_| Ok(()))?;
    let folder = export_dir();
    let inside = std::fs::canonicalize(&path)
        .ok()
        .zip(std::fs::canonicalize(&folder).ok())
        .filter(|(file, dir)| file.is_file() && file.parent() == Some(dir.as_path()))
        .map(|(_, dir)| dir);
    let Some(dir) = inside else {
        return Err(AppError::new(
            "not_found",
            "That file is not in the exports folder any more.",
        ));
    };
    std::process::Command::new("xdg-open")
        .arg(&dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        // Reaped on a thread of its own, so no finished file manager lingers as a zombie.
        .map(|mut child| drop(std::thread::spawn(move || child.wait())))
        .map_err(|_| {
            AppError::new(
                "unavailable",
                format!(
                    "This computer has no file manager Chartroom can open. The file is in {}.",
                    dir.display()
                ),
            )
        })
}

/// The running export's progress, or nothing when none runs.
#[tauri::command]
pub fn export_progress(exports: State<'_, ExportState>) -> Option<ExportProgress> {
    exports.get()
}

#[tauri::command(async, rename_all = "snake_case")]
pub fn patient_disclosures(
    state: State<'_, AppState>,
    patient_id: i64,
) -> Result<Vec<Disclosure>, AppError> {
    state.with_session(|s| s.disclosures(patient_id))
}
