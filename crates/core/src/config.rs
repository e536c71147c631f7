//! Where a clinic's vault lives, where unlock failures are counted, and how slots are protected.

use std::path::PathBuf;
use std::time::Duration;

use chartroom_vault::{KdfPolicy, VaultConfig};

/// Environment variable naming the vault folder.
pub const ENV_VAULT: &str = "CHARTROOM_VAULT";
/// Environment variable naming the folder for unlock-failure counts.
pub const ENV_STATE_DIR: &str = "CHARTROOM_STATE_DIR";
/// Environment variable setting the Argon2id calibration target, in milliseconds.
pub const ENV_KDF_TARGET_MS: &str = "CHARTROOM_KDF_TARGET_MS";

/// The vault folder used when none is named: `<data dir>/chartroom/vault`
/// (on Linux `~/.local/share/chartroom/vault`).
pub fn default_vault_dir() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("chartroom")
        .join("vault")
}

/// Builds the vault configuration for `dir` (or `CHARTROOM_VAULT`, or the default folder),
/// reading the optional environment overrides.
pub fn vault_config(dir: Option<PathBuf>) -> VaultConfig {
    let dir = dir
        .or_else(|| {
            std::env::var_os(ENV_VAULT)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(default_vault_dir);
    let state_dir = std::env::var_os(ENV_STATE_DIR)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| dirs::state_dir().map(|d| d.join("chartroom")))
        .or_else(|| dirs::data_local_dir().map(|d| d.join("chartroom").join("state")))
        .unwrap_or_else(|| dir.join("..").join(".chartroom-state"));
    let target = std::env::var(ENV_KDF_TARGET_MS)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis)
        .unwrap_or(chartroom_vault::kdf::DEFAULT_TARGET);
    VaultConfig {
        dir,
        state_dir,
        kdf: KdfPolicy::calibrated(target),
    }
}

/// Whether a vault exists in `config`'s folder (without opening it).
pub fn vault_exists(config: &VaultConfig) -> bool {
    chartroom_vault::Vault::exists(&config.dir)
}

/// What can be known about a vault without unlocking it.
pub fn vault_info(config: &VaultConfig) -> Result<chartroom_vault::VaultInfo, crate::CoreError> {
    Ok(chartroom_vault::Vault::info(&config.dir)?)
}

/// How long one key derivation takes with `config`'s policy on this machine, so the time
/// an unlock spends outside the KDF can be reported.
pub fn key_derivation_time(config: &VaultConfig) -> Result<Duration, crate::CoreError> {
    Ok(chartroom_vault::kdf::time_derivation(
        &config.kdf.params()?,
    )?)
}
