//! The Session: what unlocking returns, and the only way to the clinic's data.
//!
//! Every operation names the one [`Permission`] it needs and checks it before touching data.

use chartroom_vault::{Credential, RecoveryKey, Vault, VaultConfig, VaultError};
use chrono::Utc;
use rusqlite::{params, OptionalExtension};
use secrecy::SecretString;
use serde::Serialize;

use crate::roles::{Permission, Role};
use crate::schema::MIGRATIONS;
use crate::users::{check_new_password, User, UserName};
use crate::CoreError;

/// Who is acting in a session.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Actor {
    User {
        name: UserName,
        role: Role,
    },
    /// Unlocked with the clinic's recovery key: administrative rights, no user of its own.
    Recovery,
}

/// Who is signed in, as the UI and the CLI show it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SignedIn {
    pub user: String,
    pub role: Role,
    pub recovery: bool,
}

/// An unlocked vault and the person using it. Dropping it locks the vault.
#[derive(Debug)]
pub struct Session {
    vault: Vault,
    actor: Actor,
}

impl Session {
    /// Creates a clinic vault in `config.dir` whose first user, `admin`, is an administrator.
    /// Returns the session and the recovery key, which must be shown once and then dropped.
    pub fn create(
        config: VaultConfig,
        admin: &str,
        password: &SecretString,
    ) -> Result<(Session, RecoveryKey), CoreError> {
        let name = UserName::parse(admin)?;
        check_new_password(&name, password)?;
        let (vault, recovery) = Vault::create(config, name.as_str(), password, MIGRATIONS)?;
        vault.connection().execute(
            "INSERT INTO users (name, role, created_at, created_by) VALUES (?1, 'admin', ?2, NULL)",
            params![name.as_str(), Utc::now().to_rfc3339()],
        )?;
        Ok((
            Session {
                vault,
                actor: Actor::User {
                    name,
                    role: Role::Admin,
                },
            },
            recovery,
        ))
    }

    /// Unlocks with a user's password.
    pub fn unlock(
        config: VaultConfig,
        user: &str,
        password: &SecretString,
    ) -> Result<Session, CoreError> {
        let vault = Vault::unlock(config, Credential::Password { user, password }, MIGRATIONS)?;
        let found = find_user(&vault, user)?;
        match found {
            Some(u) if !u.disabled => Ok(Session {
                vault,
                actor: Actor::User {
                    name: u.name,
                    role: u.role,
                },
            }),
            // A slot without an active user behind it opens nothing.
            _ => Err(CoreError::Vault(VaultError::WrongCredential(None))),
        }
    }

    /// Unlocks with the clinic's recovery key, for when passwords are lost.
    pub fn unlock_with_recovery_key(
        config: VaultConfig,
        key: &RecoveryKey,
    ) -> Result<Session, CoreError> {
        let vault = Vault::unlock(config, Credential::Recovery(key), MIGRATIONS)?;
        Ok(Session {
            vault,
            actor: Actor::Recovery,
        })
    }

    /// Locks: closes the database and zeroizes the key.
    pub fn lock(self) -> Result<(), CoreError> {
        Ok(self.vault.lock()?)
    }

    pub fn signed_in(&self) -> SignedIn {
        match &self.actor {
            Actor::User { name, role } => SignedIn {
                user: name.to_string(),
                role: *role,
                recovery: false,
            },
            Actor::Recovery => SignedIn {
                user: "recovery key".into(),
                role: Role::Admin,
                recovery: true,
            },
        }
    }

    pub fn vault_id(&self) -> &str {
        self.vault.vault_id()
    }

    fn role(&self) -> Role {
        match &self.actor {
            Actor::User { role, .. } => *role,
            Actor::Recovery => Role::Admin,
        }
    }

    fn actor_name(&self) -> String {
        match &self.actor {
            Actor::User { name, .. } => name.to_string(),
            Actor::Recovery => "recovery".into(),
        }
    }

    /// The gate: refuses unless the session's role has `permission`.
    fn require(&self, permission: Permission) -> Result<(), CoreError> {
        let role = self.role();
        if role.allows(permission) {
            Ok(())
        } else {
            Err(CoreError::Forbidden {
                role: role.label().to_owned(),
                permission,
            })
        }
    }

    /// Every user, enabled and disabled, by name.
    pub fn users(&self) -> Result<Vec<User>, CoreError> {
        self.require(Permission::ViewUsers)?;
        let mut stmt = self
            .vault
            .connection()
            .prepare("SELECT name, role, disabled_at IS NOT NULL, created_at, created_by FROM users ORDER BY name")?;
        let rows = stmt.query_map([], row_to_user)?;
        rows.map(|r| r.map_err(CoreError::from).and_then(|u| u))
            .collect()
    }

    /// Adds a user with `role` who unlocks with `password`.
    pub fn add_user(
        &mut self,
        name: &str,
        role: Role,
        password: &SecretString,
    ) -> Result<User, CoreError> {
        self.require(Permission::ManageUsers)?;
        let name = UserName::parse(name)?;
        check_new_password(&name, password)?;
        if find_user(&self.vault, name.as_str())?.is_some() {
            return Err(CoreError::Conflict(format!(
                "A user named {name} already exists."
            )));
        }
        let created_by = self.actor_name();
        let now = Utc::now().to_rfc3339();
        let slot_owner = name.clone();
        self.with_slot_change(
            |db| {
                db.execute(
                    "INSERT INTO users (name, role, created_at, created_by) VALUES (?1, ?2, ?3, ?4)",
                    params![name.as_str(), role.as_str(), now, created_by],
                )?;
                Ok(())
            },
            |vault| Ok(vault.add_user_slot(slot_owner.as_str(), password)?),
            |vault| {
                let _ = vault.remove_user_slot(slot_owner.as_str());
            },
        )?;
        Ok(User {
            name,
            role,
            disabled: false,
            created_at: now,
            created_by: Some(created_by),
        })
    }

    /// Disables a user: their slot is removed, so their password no longer opens the vault.
    /// Their record stays, so the history of what they did keeps its name.
    pub fn disable_user(&mut self, name: &str) -> Result<(), CoreError> {
        self.require(Permission::ManageUsers)?;
        let user = find_user(&self.vault, name)?
            .ok_or_else(|| CoreError::NotFound(format!("There is no user named {name}.")))?;
        if user.disabled {
            return Ok(());
        }
        if matches!(&self.actor, Actor::User { name: me, .. } if *me == user.name) {
            return Err(CoreError::Conflict(
                "You cannot disable your own account.".into(),
            ));
        }
        if user.role == Role::Admin {
            let admins: i64 = self.vault.connection().query_row(
                "SELECT count(*) FROM users WHERE role = 'admin' AND disabled_at IS NULL",
                [],
                |r| r.get(0),
            )?;
            if admins <= 1 {
                return Err(CoreError::Conflict(
                    "The last active administrator cannot be disabled.".into(),
                ));
            }
        }
        let now = Utc::now().to_rfc3339();
        self.with_slot_change(
            |db| {
                db.execute(
                    "UPDATE users SET disabled_at = ?1 WHERE name = ?2",
                    params![now, user.name.as_str()],
                )?;
                Ok(())
            },
            |vault| match vault.remove_user_slot(user.name.as_str()) {
                Ok(()) | Err(VaultError::NoSuchSlot(_)) => Ok(()),
                Err(e) => Err(e.into()),
            },
            // The slot is gone for good; a failed commit leaves a user who can no longer sign
            // in, which an admin fixes with a password reset. Never the reverse.
            |_| {},
        )
    }

    /// Changes the signed-in user's own password (rewrapping their slot only).
    pub fn change_own_password(&mut self, new_password: &SecretString) -> Result<(), CoreError> {
        let Actor::User { name, .. } = &self.actor else {
            return Err(CoreError::InvalidInput(
                "A recovery-key session has no password of its own: name the user whose password to reset.".into(),
            ));
        };
        let name = name.clone();
        check_new_password(&name, new_password)?;
        self.vault.change_password(name.as_str(), new_password)?;
        Ok(())
    }

    /// Gives another user a new password (a new slot), e.g. when they forgot theirs.
    pub fn reset_password(
        &mut self,
        name: &str,
        new_password: &SecretString,
    ) -> Result<(), CoreError> {
        if matches!(&self.actor, Actor::User { name: me, .. } if me.as_str() == name) {
            return self.change_own_password(new_password);
        }
        self.require(Permission::ManageUsers)?;
        let user = find_user(&self.vault, name)?
            .ok_or_else(|| CoreError::NotFound(format!("There is no user named {name}.")))?;
        if user.disabled {
            return Err(CoreError::Conflict(format!("{} is disabled.", user.name)));
        }
        check_new_password(&user.name, new_password)?;
        match self.vault.change_password(user.name.as_str(), new_password) {
            Err(VaultError::NoSuchSlot(_)) => {
                Ok(self.vault.add_user_slot(user.name.as_str(), new_password)?)
            }
            other => Ok(other?),
        }
    }

    /// Rotates the data key; every user's password and the recovery key keep working.
    pub fn rekey(&mut self) -> Result<(), CoreError> {
        self.require(Permission::ManageKeys)?;
        Ok(self.vault.rekey()?)
    }

    /// The raw SQLCipher key, for opening the data with standard tools.
    pub fn export_key(&self) -> Result<SecretString, CoreError> {
        self.require(Permission::ExportKey)?;
        Ok(self.vault.export_key())
    }

    /// Replaces the recovery key; returns the new one, to be shown once.
    pub fn replace_recovery_key(&mut self) -> Result<RecoveryKey, CoreError> {
        self.require(Permission::ManageKeys)?;
        Ok(self.vault.replace_recovery_key()?)
    }

    /// Runs a database change and a key-slot change as one: the transaction commits only after
    /// the slot file is on disk, and `undo` reverts the slot file if the commit then fails.
    fn with_slot_change<T>(
        &mut self,
        db: impl FnOnce(&rusqlite::Connection) -> Result<(), CoreError>,
        slots: impl FnOnce(&mut Vault) -> Result<T, CoreError>,
        undo: impl FnOnce(&mut Vault),
    ) -> Result<T, CoreError> {
        self.vault.connection().execute_batch("BEGIN IMMEDIATE")?;
        let result = db(self.vault.connection()).and_then(|()| slots(&mut self.vault));
        match result {
            Ok(value) => match self.vault.connection().execute_batch("COMMIT") {
                Ok(()) => Ok(value),
                Err(e) => {
                    let _ = self.vault.connection().execute_batch("ROLLBACK");
                    undo(&mut self.vault);
                    Err(e.into())
                }
            },
            Err(e) => {
                let _ = self.vault.connection().execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }
}

fn row_to_user(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<User, CoreError>> {
    let name: String = r.get(0)?;
    let role: String = r.get(1)?;
    let disabled: bool = r.get(2)?;
    let created_at: String = r.get(3)?;
    let created_by: Option<String> = r.get(4)?;
    Ok((|| {
        Ok(User {
            name: UserName::parse(&name)?,
            role: role.parse()?,
            disabled,
            created_at,
            created_by,
        })
    })())
}

fn find_user(vault: &Vault, name: &str) -> Result<Option<User>, CoreError> {
    vault
        .connection()
        .query_row(
            "SELECT name, role, disabled_at IS NOT NULL, created_at, created_by FROM users WHERE name = ?1",
            [name],
            row_to_user,
        )
        .optional()?
        .transpose()
}
