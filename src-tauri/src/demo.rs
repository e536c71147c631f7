//! Demo mode (`chartroom-desktop --demo`): a synthetic clinic in a vault of its own, so a
//! newcomer sees full charts at once. Every record in it is fictional (see core's demo
//! generator), which is why its sign-in details may be shown on screen.

use std::path::PathBuf;

use chartroom_core::{DemoOptions, Role, Session, VaultConfig};
use secrecy::SecretString;
use tauri::State;

use crate::error::AppError;
use crate::state::{blocking, AppState, DemoInfo, DemoUser};
use crate::vault::SessionInfo;

/// The shared password of the demo accounts. The demo vault holds only synthetic records.
const DEMO_PASSWORD: &str = "chartroom-demo";
const DEMO_ADMIN: &str = "demo.admin";
const DEMO_STAFF: [(&str, Role); 4] = [
    ("dr.demo", Role::Physician),
    ("nurse.demo", Role::Nurse),
    ("desk.demo", Role::FrontDesk),
    ("audit.demo", Role::Auditor),
];
/// How many patients the demo clinic gets (`CHARTROOM_DEMO_PATIENTS` to change).
const DEMO_PATIENTS: u32 = 2_000;

impl DemoInfo {
    pub fn new() -> Self {
        let patients = std::env::var("CHARTROOM_DEMO_PATIENTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|n| *n > 0)
            .unwrap_or(DEMO_PATIENTS);
        DemoInfo {
            users: std::iter::once((DEMO_ADMIN, Role::Admin))
                .chain(DEMO_STAFF)
                .map(|(name, role)| DemoUser {
                    name: name.to_owned(),
                    role,
                })
                .collect(),
            password: DEMO_PASSWORD.to_owned(),
            patients,
        }
    }
}

/// The demo clinic's folder: `CHARTROOM_VAULT` if set, else `<data dir>/chartroom/demo-vault`,
/// never the clinic's real vault.
pub fn demo_dir() -> PathBuf {
    std::env::var_os(chartroom_core::ENV_VAULT)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            dirs::data_dir()
                .unwrap_or_else(|| PathBuf::from("."))
                .join("chartroom")
                .join("demo-vault")
        })
}

fn build(config: VaultConfig, info: &DemoInfo) -> Result<Session, chartroom_core::CoreError> {
    let password = SecretString::from(DEMO_PASSWORD.to_owned());
    let (mut admin, _recovery) = Session::create(config.clone(), DEMO_ADMIN, &password)?;
    for (name, role) in DEMO_STAFF {
        admin.add_user(name, role, None, &password)?;
    }
    let options = DemoOptions {
        patients: info.patients,
        seed: 7,
        as_of: chrono::Utc::now().date_naive(),
        long_chart_every: 250,
    };
    admin.generate_demo(&options, |_| {})?;
    admin.lock()?;
    Session::unlock(config, "dr.demo", &password)
}

/// Creates the demo clinic (in demo mode only, once) and signs in as its physician.
#[tauri::command(rename_all = "snake_case")]
pub async fn create_demo(state: State<'_, AppState>) -> Result<SessionInfo, AppError> {
    let Some(info) = state.demo.clone() else {
        return Err(AppError::new(
            "invalid_input",
            "Start Chartroom with --demo to open the demo clinic.",
        ));
    };
    let config = state.config.clone();
    let session = blocking(move || build(config, &info).map_err(AppError::from)).await?;
    let who = SessionInfo::of(&session);
    state.install(session);
    Ok(who)
}
