//! chartroom-core: the clinic. Users and roles, and the [`Session`] gate through which every
//! operation on the clinic's data passes.

#![forbid(unsafe_code)]

mod config;
mod error;
mod roles;
mod schema;
mod session;
mod users;

pub use chartroom_vault::{
    KdfPolicy, RecoveryKey, SlotKind, Vault, VaultConfig, VaultError, VaultInfo,
};
pub use config::{default_vault_dir, vault_config, ENV_KDF_TARGET_MS, ENV_STATE_DIR, ENV_VAULT};
pub use error::{CoreError, ErrorKind};
pub use roles::{Permission, Role};
pub use session::{Session, SignedIn};
pub use users::{check_new_password, User, UserName, MIN_PASSWORD_CHARS};

/// What can be known about a vault without unlocking it.
pub fn vault_info(config: &VaultConfig) -> Result<VaultInfo, CoreError> {
    Ok(Vault::info(&config.dir)?)
}

#[cfg(test)]
mod tests;
