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

/// Where a test or a trainer puts the demo clinic instead of the usual place. Never
/// `CHARTROOM_VAULT`: that names the clinic's real vault.
pub const ENV_DEMO_VAULT: &str = "CHARTROOM_DEMO_VAULT";

/// The demo clinic's folder: `CHARTROOM_DEMO_VAULT` if set, else
/// `<data dir>/chartroom/demo-vault`. Refused if it is where the clinic's real vault is
/// (`CHARTROOM_VAULT`, or the usual place), so the fictional clinic with its published
/// passwords is never built there.
pub fn demo_dir() -> Result<PathBuf, String> {
    let dir = std::env::var_os(ENV_DEMO_VAULT)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            dirs::data_dir()
                .unwrap_or_else(|| PathBuf::from("."))
                .join("chartroom")
                .join("demo-vault")
        });
    let real = chartroom_core::vault_config(None).dir;
    if same_place(&dir, &real) {
        return Err(format!(
            "Demo mode will not use {}: that is where the clinic's real vault is. Set {ENV_DEMO_VAULT} to another folder.",
            dir.display()
        ));
    }
    Ok(dir)
}

/// Whether two folders are one, however they are spelled (relative, `..`, symbolic links).
fn same_place(a: &std::path::Path, b: &std::path::Path) -> bool {
    let resolve = |p: &std::path::Path| {
        let absolute = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        // `..` steps up from where the path so far really leads (through any symbolic
        // link in it), as the file system would; lexically only where nothing exists yet.
        let mut walked = std::path::PathBuf::new();
        for part in absolute.components() {
            match part {
                std::path::Component::ParentDir => {
                    walked = walked.canonicalize().unwrap_or(walked);
                    walked.pop();
                }
                std::path::Component::CurDir => {}
                other => walked.push(other),
            }
        }
        let absolute = walked;
        // The nearest existing ancestor is resolved; the rest is kept as written.
        let mut existing = absolute.clone();
        let mut rest = Vec::new();
        while !existing.exists() {
            match (
                existing.file_name().map(|n| n.to_owned()),
                existing.parent(),
            ) {
                (Some(name), Some(parent)) => {
                    rest.push(name);
                    existing = parent.to_path_buf();
                }
                _ => break,
            }
        }
        let mut out = existing.canonicalize().unwrap_or(existing);
        for name in rest.iter().rev() {
            out.push(name);
        }
        out
    };
    resolve(a) == resolve(b)
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
    // A month of appointments either side of today, so "My day" and the book have a day.
    admin.generate_demo_appointments(&chartroom_core::DemoBook {
        clinicians: vec!["dr.demo".into(), "nurse.demo".into()],
        as_of: options.as_of,
        days_before: 30,
        days_after: 30,
        per_day: 8,
        seed: 7,
    })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_folder_is_recognised_however_it_is_spelled() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let real = tmp.path().join("vault");
        std::fs::create_dir(&real).expect("mkdir");
        assert!(same_place(
            &real,
            &tmp.path().join("x").join("..").join("vault")
        ));
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        assert!(same_place(&real, &link));
        // A folder that does not exist yet, below a link to the same place.
        assert!(same_place(&real.join("sub"), &link.join("sub")));
        // `..` after a link steps up from where the link leads.
        let deep = tmp.path().join("a").join("b");
        std::fs::create_dir_all(&deep).expect("mkdir");
        let up = tmp.path().join("up");
        std::os::unix::fs::symlink(&deep, &up).expect("symlink");
        std::fs::create_dir(tmp.path().join("a").join("vault")).expect("mkdir");
        assert!(same_place(
            &tmp.path().join("a").join("vault"),
            &up.join("..").join("vault")
        ));
        assert!(!same_place(&real, &tmp.path().join("demo-vault")));
    }

    #[test]
    fn demo_mode_refuses_the_real_vaults_folder() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let real = tmp.path().join("clinic");
        // Each test runs in a process of its own (nextest), so the variables stay its own.
        std::env::set_var(chartroom_core::ENV_VAULT, &real);
        std::env::set_var(ENV_DEMO_VAULT, &real);
        let refused = demo_dir().expect_err("refused");
        assert!(refused.contains("real vault"), "{refused}");
        std::env::set_var(ENV_DEMO_VAULT, tmp.path().join("demo"));
        assert_eq!(demo_dir().expect("allowed"), tmp.path().join("demo"));
        // CHARTROOM_VAULT alone never decides where the demo goes.
        std::env::remove_var(ENV_DEMO_VAULT);
        assert_ne!(demo_dir().expect("allowed"), real);
    }
}
