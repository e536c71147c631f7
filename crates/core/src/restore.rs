//! `vault restore`: a backup put back in place as one audited step. The vault that was
//! there is kept beside it, never deleted; the restored vault's trail records the restore,
//! and sync then goes on from the backup's head as a new, signed chain epoch (see
//! `sync::Session::sync_acknowledged`), so the collector keeps what it held after that head
//! and shows "restored from backup" rather than a tamper alarm.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::Denial;
use crate::roles::Permission;
use crate::{CoreError, Session, VaultConfig};

/// What `vault restore` did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RestoreReport {
    /// The vault folder, now holding the backup.
    pub vault: PathBuf,
    /// The backup it came from (left as it was).
    pub from: PathBuf,
    /// Where the vault that was in place was kept; None when there was none.
    pub replaced: Option<PathBuf>,
    /// The backup's last audit entry: the trail goes on from it.
    pub backup_head: u64,
    /// The `vault.restore` entry.
    pub restore_entry: u64,
}

/// Puts the backup in `from` in place of the vault `config` names. `open` signs in to the
/// backup (a copy of it, staged beside the vault) with the credentials the caller was
/// given: those valid when the backup was taken. Only an administrator or the recovery key
/// may restore. Nothing changes unless every step before the final rename succeeds; the
/// vault that was in place is renamed aside (`<name>.replaced-<time>`), never deleted.
pub fn restore_vault(
    config: &VaultConfig,
    from: &Path,
    open: impl FnOnce(VaultConfig) -> Result<Session, CoreError>,
) -> Result<RestoreReport, CoreError> {
    let same = match (from.canonicalize(), config.dir.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        return Err(CoreError::InvalidInput(
            "That folder is the vault itself; name the backup's folder.".into(),
        ));
    }
    if !from.is_dir() {
        return Err(CoreError::InvalidInput(format!(
            "There is no backup folder at {}.",
            from.display()
        )));
    }
    if config.dir.exists() && chartroom_vault::in_use(&config.dir) {
        return Err(CoreError::Conflict(
            "The vault is open in a Chartroom window or command on this computer. Lock every Chartroom window, then restore again."
                .into(),
        ));
    }
    let parent = config
        .dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    std::fs::create_dir_all(&parent)?;
    let name = config
        .dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "vault".into());
    let staging = parent.join(format!(".{name}.restoring-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let result = (|| {
        chartroom_vault::stage_backup(from, &staging)?;
        let mut staged = config.clone();
        staged.dir = staging.clone();
        let mut session = open(staged)?;
        if !session.role().allows(Permission::Backup) {
            let role = session.role();
            let err = session.deny(
                crate::audit::Op::execute("vault.restore"),
                Denial::Role {
                    role,
                    permission: Permission::Backup,
                },
            );
            let _ = session.lock();
            return Err(err);
        }
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let replaced = config.dir.exists().then(|| {
            // A name not taken yet: two restores within a second keep both vaults.
            (1..)
                .map(|n| match n {
                    1 => parent.join(format!("{name}.replaced-{stamp}")),
                    n => parent.join(format!("{name}.replaced-{stamp}-{n}")),
                })
                .find(|p| !p.exists())
                .expect("an unused name")
        });
        let detail = match &replaced {
            Some(aside) => format!(
                "restored from the backup {}; the vault it replaced is kept at {}",
                from.display(),
                aside.display()
            ),
            None => format!("restored from the backup {}", from.display()),
        };
        let (backup_head, restore_entry) = session.record_restore(detail)?;
        session.lock()?;
        Ok((replaced, backup_head, restore_entry))
    })();
    let (replaced, backup_head, restore_entry) = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    if let Some(aside) = &replaced {
        if let Err(e) = std::fs::rename(&config.dir, aside) {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e.into());
        }
    }
    if let Err(e) = std::fs::rename(&staging, &config.dir) {
        // Put the vault that was there back; the staged copy stays for a second try.
        if let Some(aside) = &replaced {
            let _ = std::fs::rename(aside, &config.dir);
        }
        return Err(e.into());
    }
    if let Ok(dir) = std::fs::File::open(&parent) {
        let _ = dir.sync_all();
    }
    Ok(RestoreReport {
        vault: config.dir.clone(),
        from: from.to_path_buf(),
        replaced,
        backup_head,
        restore_entry,
    })
}
