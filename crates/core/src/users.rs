//! Users: validated names, password rules, and the stored user record.

use std::fmt;

use chartroom_audit::{format_time, Outcome};
use chartroom_vault::{RecoveryKey, VaultError};
use rusqlite::{params, Connection, OptionalExtension};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::audit::Op;
use crate::error::Denial;
use crate::roles::{Permission, Role};
use crate::session::Actor;
use crate::{CoreError, Session};

/// Shortest password accepted (NIST SP 800-63B's minimum for chosen secrets).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted; longer input is almost certainly a paste mistake.
pub const MAX_PASSWORD_CHARS: usize = 1024;
const MAX_NAME_CHARS: usize = 64;

/// A user's sign-in name: 1–64 letters, digits, `.`, `_` or `-`, starting with a letter or
/// digit. Names never become paths or markup, but keeping them plain makes them safe to show
/// and to type.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(transparent)]
pub struct UserName(String);

impl UserName {
    /// Reads a user name as typed: surrounding spaces are dropped (a name is compared
    /// without regard to case, but kept as first written, for display).
    pub fn parse(text: &str) -> Result<Self, CoreError> {
        let text = text.trim();
        let ok = !text.is_empty()
            && text.chars().count() <= MAX_NAME_CHARS
            && text
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(CoreError::InvalidInput(
                "A user name is 1 to 64 letters, digits, dots, dashes or underscores, starting with a letter or digit."
                    .into(),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `other` names this user (trimmed, case ignored: see
    /// [`chartroom_vault::account_key`]).
    pub fn is(&self, other: &str) -> bool {
        chartroom_vault::account_key(&self.0) == chartroom_vault::account_key(other)
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a new password against the rules, without ever echoing it.
pub fn check_new_password(user: &UserName, password: &SecretString) -> Result<(), CoreError> {
    let text = password.expose_secret();
    let chars = text.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(CoreError::InvalidInput(format!(
            "The password is too short: use at least {MIN_PASSWORD_CHARS} characters."
        )));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(CoreError::InvalidInput(format!(
            "The password is too long: use at most {MAX_PASSWORD_CHARS} characters."
        )));
    }
    if text.trim().is_empty() {
        return Err(CoreError::InvalidInput(
            "The password cannot be only spaces.".into(),
        ));
    }
    if text.eq_ignore_ascii_case(user.as_str()) {
        return Err(CoreError::InvalidInput(
            "The password cannot be the user name.".into(),
        ));
    }
    Ok(())
}

/// A user as stored in the clinic database.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct User {
    pub name: UserName,
    pub role: Role,
    pub disabled: bool,
    pub created_at: String,
    pub created_by: Option<String>,
    /// The keys this user's slot holds: `database` (everyone who can sign in) and the
    /// compartments their role may read (`clinical`). Filled in by [`Session::users`].
    pub keys: Vec<String>,
    /// Compartments the role should hold that have not reached the slot yet: they are
    /// handed over at the next sign-in of someone who holds them.
    pub keys_pending: Vec<String>,
}

impl Session {
    /// Every user, enabled and disabled, by name.
    pub fn users(&mut self) -> Result<Vec<User>, CoreError> {
        self.run(
            Permission::ViewUsers,
            Op::read("user.list"),
            false,
            |tx, op, _| {
                let users = list_users(tx)?;
                op.detail = Some(format!("{} users", users.len()));
                Ok(users)
            },
        )
        .and_then(|mut users| {
            for user in &mut users {
                self.fill_keys(user)?;
            }
            Ok(users)
        })
    }

    /// Which keys `user`'s slot holds, and which their role waits for.
    fn fill_keys(&self, user: &mut User) -> Result<(), CoreError> {
        let vault = self.vault()?;
        user.keys.clear();
        user.keys_pending.clear();
        if !vault.slot_owners().iter().any(|o| user.name.is(o)) {
            return Ok(());
        }
        user.keys.push("database".into());
        let held = vault.slot_compartments(user.name.as_str());
        user.keys.extend(held.iter().cloned());
        if !user.disabled {
            for wanted in crate::keys::compartments_of(user.role) {
                // Before anyone made the compartment there is nothing to wait for: the first
                // of its holders to sign in makes it.
                let exists = vault.compartment_public(wanted).is_some();
                if exists && !held.iter().any(|h| h == wanted) {
                    user.keys_pending.push((*wanted).to_owned());
                }
            }
        }
        Ok(())
    }

    /// Adds a user with `role` who unlocks with `password`. `family_name` lets the
    /// same-family-name alert recognise relatives.
    pub fn add_user(
        &mut self,
        name: &str,
        role: Role,
        family_name: Option<&str>,
        password: &SecretString,
    ) -> Result<User, CoreError> {
        let parsed = UserName::parse(name)?;
        let family = match family_name.map(str::trim) {
            Some("") | None => None,
            Some(f) if f.chars().count() > 100 || f.chars().any(char::is_control) => {
                return Err(CoreError::InvalidInput(
                    "The family name must be at most 100 characters, with no control characters."
                        .into(),
                ))
            }
            Some(f) => Some(f.to_owned()),
        };
        check_new_password(&parsed, password)?;
        let at = format_time(self.clock.now());
        let op = Op::create("user.create")
            .object("User", parsed.as_str())
            .detail(format!("role {role}"));
        let slot_owner = parsed.clone();
        let (user, ()) = self.with_slot_change(
            Some(Permission::ManageUsers),
            op,
            |tx, ctx| {
                if find_user(tx, parsed.as_str())?.is_some() {
                    return Err(CoreError::Conflict(format!(
                        "A user named {parsed} already exists."
                    )));
                }
                tx.execute(
                    "INSERT INTO users (name, role, family_name, created_at, created_by) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![parsed.as_str(), role.as_str(), family, format_time(ctx.now), ctx.actor.name],
                )?;
                Ok(User {
                    name: parsed.clone(),
                    role,
                    disabled: false,
                    created_at: format_time(ctx.now),
                    created_by: Some(ctx.actor.name.clone()),
                    keys: vec!["database".into()],
                    keys_pending: Vec::new(),
                })
            },
            |vault| {
                let slot = vault.add_user_slot(slot_owner.as_str(), password)?;
                log_user(vault, &at, slot_owner.as_str(), role, true, Some(slot))
            },
            |vault| {
                let _ = vault.remove_user_slot(slot_owner.as_str());
            },
        )?;
        self.hand_keys_over();
        let mut user = user;
        self.fill_keys(&mut user)?;
        Ok(user)
    }

    /// Gives a user another role.
    pub fn change_role(&mut self, name: &str, role: Role) -> Result<(), CoreError> {
        let me = self.actor_user_id();
        let logged = self.verified_state()?.and_then(|s| s.user(name).cloned());
        self.run(
            Permission::ManageUsers,
            Op::update("user.role_change").object("User", name),
            false,
            |tx, op, ctx| {
                let (id, user) = find_user(tx, name)?.ok_or_else(|| {
                    CoreError::NotFound(format!("There is no user named {name}."))
                })?;
                if user.role == role {
                    op.detail = Some(format!("already {role}"));
                    return Ok(());
                }
                if Some(id) == me {
                    return Err(CoreError::Conflict(
                        "You cannot change your own role.".into(),
                    ));
                }
                if user.role == Role::Admin && active_admins(tx)? <= 1 {
                    return Err(CoreError::Conflict(
                        "The last active administrator must stay an administrator.".into(),
                    ));
                }
                tx.execute(
                    "UPDATE users SET role = ?1 WHERE id = ?2",
                    params![role.as_str(), id],
                )?;
                // A compartment the old role read and the new one does not rotates.
                for name in crate::keys::compartments_of(user.role) {
                    if !crate::keys::compartments_of(role).contains(name) {
                        crate::keys::owe_compartment_rotation(
                            tx,
                            name,
                            &format!("{} is no longer {}", user.name, user.role),
                            &format_time(ctx.now),
                            &ctx.actor.name,
                        )?;
                    }
                }
                let before = logged.clone();
                crate::security_log::append(
                    tx,
                    &format_time(ctx.now),
                    crate::security_log::Fact::User {
                        user: user.name.to_string(),
                        role,
                        enabled: !user.disabled,
                        slot_key: before.as_ref().and_then(|b| b.slot_key.clone()),
                        signing_key: before.and_then(|b| b.signing_key),
                    },
                )?;
                op.detail = Some(format!("{} -> {role}", user.role));
                Ok(())
            },
        )?;
        self.hand_keys_over();
        Ok(())
    }

    /// Disables a user: their slot is removed, so their password no longer opens the vault.
    /// Their record stays, so the history of what they did keeps its name.
    pub fn disable_user(&mut self, name: &str) -> Result<(), CoreError> {
        let me = self.actor_user_id();
        let owner = name.to_owned();
        let op = Op::update("user.disable").object("User", name);
        let logged_role = self
            .verified_state()?
            .and_then(|s| s.user(name).map(|u| u.role));
        self.with_slot_change(
            Some(Permission::ManageUsers),
            op,
            |tx, ctx| {
                let (id, user) = find_user(tx, name)?.ok_or_else(|| {
                    CoreError::NotFound(format!("There is no user named {name}."))
                })?;
                if user.disabled {
                    return Ok(false);
                }
                if Some(id) == me {
                    return Err(CoreError::Conflict(
                        "You cannot disable your own account.".into(),
                    ));
                }
                if user.role == Role::Admin && active_admins(tx)? <= 1 {
                    return Err(CoreError::Conflict(
                        "The last active administrator cannot be disabled.".into(),
                    ));
                }
                tx.execute(
                    "UPDATE users SET disabled_at = ?1 WHERE id = ?2",
                    params![format_time(ctx.now), id],
                )?;
                crate::keys::owe_rotation(
                    tx,
                    &format!("{} disabled", user.name),
                    &format_time(ctx.now),
                    &ctx.actor.name,
                )?;
                owe_compartments_of(tx, user.role, &format!("{} disabled", user.name), ctx)?;
                crate::security_log::append(
                    tx,
                    &format_time(ctx.now),
                    crate::security_log::Fact::User {
                        user: user.name.to_string(),
                        role: logged_role.unwrap_or(user.role),
                        enabled: false,
                        slot_key: None,
                        signing_key: None,
                    },
                )?;
                Ok(true)
            },
            |vault| match vault.remove_user_slot(&owner) {
                Ok(()) | Err(VaultError::NoSuchSlot(_)) => Ok(()),
                Err(e) => Err(e.into()),
            },
            // The slot is gone for good; a failed commit leaves a user who can no longer sign
            // in, which an admin fixes with a password reset. Never the reverse.
            |_| {},
        )?;
        self.hand_keys_over();
        // Trust in them has ended: what their old slot opened no longer opens the database.
        self.rotate_now_or_later();
        Ok(())
    }

    /// Changes the signed-in user's own password (rewrapping their slot only).
    pub fn change_own_password(&mut self, new_password: &SecretString) -> Result<(), CoreError> {
        self.touch()?;
        let Actor::User { name, .. } = &self.actor else {
            return Err(CoreError::InvalidInput(
                "A recovery-key session has no password of its own: name the user whose password to reset.".into(),
            ));
        };
        let name = name.clone();
        check_new_password(&name, new_password)?;
        let op = Op::update("user.password_change").object("User", name.as_str());
        let at = format_time(self.clock.now());
        let role = self.role();
        let previous = self.vault()?.slot_backup(name.as_str());
        // Every role may change its own password: the gate's permission here is the session.
        self.with_slot_change(
            None,
            op,
            |_, _| Ok(()),
            |vault| {
                let slot = vault.change_password(name.as_str(), new_password)?;
                log_user(vault, &at, name.as_str(), role, true, Some(slot))
            },
            |vault| {
                if let Some(old) = previous {
                    let _ = vault.restore_slot(old);
                }
            },
        )
        .map(|_| ())
    }

    /// Enables a disabled user again, with a new password set by the administrator (their
    /// old slot was removed when they were disabled, so their old password opens nothing):
    /// a new slot, the keys of their role handed over, and the fact in the security log.
    pub fn enable_user(
        &mut self,
        name: &str,
        new_password: &SecretString,
    ) -> Result<(), CoreError> {
        let owner = name.to_owned();
        let op = Op::update("user.enable").object("User", name);
        let at = format_time(self.clock.now());
        let logged_role = self
            .verified_state()?
            .and_then(|s| s.user(name).map(|u| u.role));
        self.with_slot_change(
            Some(Permission::ManageUsers),
            op,
            |tx, _ctx| {
                let (id, user) = find_user(tx, name)?.ok_or_else(|| {
                    CoreError::NotFound(format!("There is no user named {name}."))
                })?;
                if !user.disabled {
                    return Err(CoreError::Conflict(format!(
                        "{} is already enabled.",
                        user.name
                    )));
                }
                check_new_password(&user.name, new_password)?;
                tx.execute("UPDATE users SET disabled_at = NULL WHERE id = ?1", [id])?;
                Ok(())
            },
            |vault| {
                let slot = vault.add_user_slot(&owner, new_password)?;
                let role = role_to_log(vault, logged_role, &owner)?;
                log_user(vault, &at, &owner, role, true, Some(slot))
            },
            // A commit that fails takes the new slot away again.
            |vault| {
                let _ = vault.remove_user_slot(&owner);
            },
        )?;
        self.hand_keys_over();
        Ok(())
    }

    /// Gives another user a new password (a new slot), e.g. when they forgot theirs.
    pub fn reset_password(
        &mut self,
        name: &str,
        new_password: &SecretString,
    ) -> Result<(), CoreError> {
        if matches!(&self.actor, Actor::User { name: me, .. } if me.is(name)) {
            return self.change_own_password(new_password);
        }
        let owner = name.to_owned();
        let op = Op::update("user.password_reset").object("User", name);
        let at = format_time(self.clock.now());
        let logged_role = self
            .verified_state()?
            .and_then(|s| s.user(name).map(|u| u.role));
        let previous = self.vault()?.slot_backup(name);
        self.with_slot_change(
            Some(Permission::ManageUsers),
            op,
            |tx, ctx| {
                let (_, user) = find_user(tx, name)?.ok_or_else(|| {
                    CoreError::NotFound(format!("There is no user named {name}."))
                })?;
                if user.disabled {
                    return Err(CoreError::Conflict(format!("{} is disabled.", user.name)));
                }
                check_new_password(&user.name, new_password)?;
                // Whoever knew the old password (or kept the old slot) loses what it opened.
                crate::keys::owe_rotation(
                    tx,
                    &format!("password of {} reset", user.name),
                    &format_time(ctx.now),
                    &ctx.actor.name,
                )?;
                owe_compartments_of(
                    tx,
                    user.role,
                    &format!("password of {} reset", user.name),
                    ctx,
                )?;
                Ok(())
            },
            |vault| {
                let slot = vault.set_user_slot(&owner, new_password)?;
                let role = role_to_log(vault, logged_role, &owner)?;
                log_user(vault, &at, &owner, role, true, Some(slot))
            },
            // A commit that fails puts the old slot back, so the log and the file still agree.
            |vault| {
                if let Some(old) = previous {
                    let _ = vault.restore_slot(old);
                }
            },
        )?;
        self.hand_keys_over();
        self.rotate_now_or_later();
        Ok(())
    }

    /// Seals the clinical key to those who should now hold it and takes it from those who
    /// should not, after a change of users, roles or slots. The change itself is committed
    /// already; should this fail (the slot file cannot be written), the next unlock of anyone
    /// does it again, so it is not reported as the change's failure.
    fn hand_keys_over(&mut self) {
        let _ = self.settle_key_holders();
    }

    /// The rotation a disable or reset owes, now if it can be done (another Chartroom window
    /// with the vault open makes it wait): the change itself is committed either way, and the
    /// owed rotation stays recorded for the next administrator sign-in; a failure is in the
    /// trail as a failed `vault.rekey`.
    fn rotate_now_or_later(&mut self) {
        let _ = self.rotate_if_owed();
        // The clinical key only where this session holds it (the recovery key); otherwise
        // the next physician's or nurse's sign-in rotates it.
        let _ = self.rotate_clinical_if_owed(None);
        // The audit text's key: an administrator who disables or resets an auditor or
        // another administrator holds it, and rotates it at once.
        let _ = self.rotate_audit_text_if_owed();
    }

    /// Whether a rotation of the clinical key is owed (waiting for a holder's sign-in).
    pub fn clinical_rotation_pending(&self) -> Result<bool, CoreError> {
        Ok(crate::keys::clinical_rotation_owed(self.connection()?)?.is_some())
    }

    /// Rotates what a suspected leak calls for: the database key now, and the clinical key
    /// now if this session holds it (the recovery key), otherwise at the next sign-in of a
    /// physician or nurse. Returns whether the clinical key was rotated now.
    pub fn rotate_keys(&mut self, reason: &str) -> Result<bool, CoreError> {
        let reason = reason.trim();
        let reason = if reason.is_empty() {
            "asked for"
        } else {
            reason
        };
        let reason: String = reason
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect();
        let at = format_time(self.clock.now());
        self.run(
            Permission::ManageKeys,
            Op::execute("vault.rotate").detail(reason.clone()),
            false,
            |tx, _, ctx| {
                if crate::keys::clinical_compartment_exists(tx)? {
                    crate::keys::owe_compartment_rotation(
                        tx,
                        crate::keys::CLINICAL,
                        &reason,
                        &at,
                        &ctx.actor.name,
                    )?;
                }
                if crate::keys::compartment_exists(tx, crate::keys::AUDIT_TEXT)? {
                    crate::keys::owe_compartment_rotation(
                        tx,
                        crate::keys::AUDIT_TEXT,
                        &reason,
                        &at,
                        &ctx.actor.name,
                    )?;
                }
                Ok(())
            },
        )?;
        self.rekey_because(&reason)?;
        self.rotate_audit_text_if_owed()?;
        self.rotate_clinical_if_owed(None)
    }

    /// Rotates the data key; every user's password and the recovery key keep working.
    pub fn rekey(&mut self) -> Result<(), CoreError> {
        self.rekey_because("asked for")
    }

    /// [`Session::rekey`], with why in the audit entry.
    pub(crate) fn rekey_because(&mut self, reason: &str) -> Result<(), CoreError> {
        self.touch()?;
        let role = self.role();
        if !role.allows(Permission::ManageKeys) {
            return Err(self.deny(
                Op::execute("vault.rekey"),
                Denial::Role {
                    role,
                    permission: Permission::ManageKeys,
                },
            ));
        }
        // PRAGMA rekey cannot run inside a transaction, so the entry follows it.
        let result = self.vault.as_mut().map(|v| v.rekey());
        match result {
            Some(Ok(())) => {
                self.record(&Op::execute("vault.rekey").detail(reason.to_owned()))?;
                Ok(())
            }
            Some(Err(e)) => {
                let _ = self.record(
                    &Op::execute("vault.rekey")
                        .outcome(Outcome::Failed)
                        .detail("the key change did not complete"),
                );
                Err(e.into())
            }
            None => Err(self.expired()),
        }
    }

    /// Writes a backup copy of the whole vault into the new folder `target` while it stays
    /// open; it opens with the same passwords and recovery key. Returns the database size.
    pub fn backup(&mut self, target: &std::path::Path) -> Result<u64, CoreError> {
        self.touch()?;
        let role = self.role();
        if !role.allows(Permission::Backup) {
            return Err(self.deny(
                Op::execute("vault.backup"),
                Denial::Role {
                    role,
                    permission: Permission::Backup,
                },
            ));
        }
        let result = self.vault()?.backup_to(target);
        match result {
            Ok(size) => {
                self.record(&Op::execute("vault.backup").detail(format!("{size} bytes")))?;
                Ok(size)
            }
            Err(e) => {
                let _ = self.record(
                    &Op::execute("vault.backup")
                        .outcome(Outcome::Failed)
                        .detail("the backup did not complete"),
                );
                Err(e.into())
            }
        }
    }

    /// The raw SQLCipher key, for opening the data with standard tools.
    pub fn export_key(&mut self) -> Result<SecretString, CoreError> {
        self.run(
            Permission::ExportKey,
            Op::execute("vault.key_export"),
            false,
            |_, _, _| Ok(()),
        )?;
        Ok(self.vault()?.export_key())
    }

    /// Replaces the recovery key; returns the new one, to be shown once.
    pub fn replace_recovery_key(&mut self) -> Result<RecoveryKey, CoreError> {
        let at = format_time(self.clock.now());
        self.with_slot_change(
            Some(Permission::ManageKeys),
            Op::execute("vault.recovery_key_replace"),
            |_, _| Ok(()),
            |vault| {
                let (key, slot) = vault.replace_recovery_key()?;
                crate::security_log::append(
                    vault.connection(),
                    &at,
                    crate::security_log::Fact::Recovery {
                        slot_key: Some(slot.slot_key),
                        signing_key: slot.signing_key,
                    },
                )?;
                Ok(key)
            },
            |_| {},
        )
        .map(|((), key)| key)
    }

    pub(crate) fn actor_user_id(&self) -> Option<i64> {
        match &self.actor {
            Actor::User { id, .. } => Some(*id),
            Actor::Recovery => None,
        }
    }
}

fn list_users(conn: &Connection) -> Result<Vec<User>, CoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, name, role, disabled_at IS NOT NULL, created_at, created_by FROM users ORDER BY name",
    )?;
    let rows = stmt.query_map([], row_to_user)?;
    rows.map(|r| r.map_err(CoreError::from).and_then(|u| u.map(|(_, u)| u)))
        .collect()
}

fn active_admins(conn: &Connection) -> Result<i64, CoreError> {
    Ok(conn.query_row(
        "SELECT count(*) FROM users WHERE role = 'admin' AND disabled_at IS NULL",
        [],
        |r| r.get(0),
    )?)
}

fn row_to_user(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<(i64, User), CoreError>> {
    let id: i64 = r.get(0)?;
    let name: String = r.get(1)?;
    let role: String = r.get(2)?;
    let disabled: bool = r.get(3)?;
    let created_at: String = r.get(4)?;
    let created_by: Option<String> = r.get(5)?;
    Ok((|| {
        Ok((
            id,
            User {
                name: UserName::parse(&name)?,
                role: role.parse()?,
                disabled,
                created_at,
                created_by,
                keys: Vec::new(),
                keys_pending: Vec::new(),
            },
        ))
    })())
}

/// Owes a rotation of every compartment `role` reads (its holder's trust ended).
fn owe_compartments_of(
    conn: &Connection,
    role: Role,
    reason: &str,
    ctx: &crate::session::Ctx<'_>,
) -> Result<(), CoreError> {
    for name in crate::keys::compartments_of(role) {
        crate::keys::owe_compartment_rotation(
            conn,
            name,
            reason,
            &format_time(ctx.now),
            &ctx.actor.name,
        )?;
    }
    Ok(())
}

/// Signs a user's new state into the security log, in the transaction of the change (a slot
/// change's manual one).
/// The role to log for a user whose slot changes: the role the log states, not the table's
/// (which anyone with the database key, or a trigger, can have changed since the unlock);
/// the table's only for a user the log does not know yet.
fn role_to_log(
    vault: &chartroom_vault::Vault,
    logged_role: Option<Role>,
    owner: &str,
) -> Result<Role, CoreError> {
    match logged_role {
        Some(role) => Ok(role),
        None => find_user(vault.connection(), owner)?
            .map(|(_, u)| u.role)
            .ok_or_else(|| CoreError::NotFound(format!("There is no user named {owner}."))),
    }
}

fn log_user(
    vault: &mut chartroom_vault::Vault,
    at: &str,
    name: &str,
    role: Role,
    enabled: bool,
    slot: Option<chartroom_vault::SlotKeys>,
) -> Result<(), CoreError> {
    let canonical = find_user(vault.connection(), name)?
        .map(|(_, u)| u.name.to_string())
        .unwrap_or_else(|| name.to_owned());
    crate::security_log::append(
        vault.connection(),
        at,
        crate::security_log::Fact::User {
            user: canonical,
            role,
            enabled,
            slot_key: slot.as_ref().map(|s| s.slot_key.clone()),
            signing_key: slot.and_then(|s| s.signing_key),
        },
    )
}

/// Every user row as stored, in the order they were added: (name, role text, enabled).
pub(crate) fn user_rows(conn: &Connection) -> Result<Vec<(String, String, bool)>, CoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT name, role, disabled_at IS NULL FROM users ORDER BY id")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every user row as the security log's start takes it: (name, role, enabled).
pub(crate) fn list_for_log(conn: &Connection) -> Result<Vec<(String, Role, bool)>, CoreError> {
    user_rows(conn)?
        .into_iter()
        .map(|(name, role, enabled)| Ok((name, role.parse()?, enabled)))
        .collect()
}

/// Makes the `users` table say what the security log says: a role or a disable changed
/// outside Chartroom is put back, a row the log does not know is disabled, a row that was
/// deleted is restored. Returns what it undid, in words.
pub(crate) fn restore_from_log(
    conn: &Connection,
    state: &crate::security_log::State,
    at: &str,
) -> Result<Vec<String>, CoreError> {
    let mut undone = Vec::new();
    if state.users.is_empty() {
        return Ok(undone);
    }
    let mut seen = std::collections::BTreeSet::new();
    let rows: Vec<(i64, String, String, bool)> = {
        let mut stmt = conn.prepare("SELECT id, name, role, disabled_at IS NULL FROM users")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (id, name, role, enabled) in rows {
        let key = chartroom_vault::account_key(&name);
        match state.users.get(&key) {
            Some(u) if seen.insert(key.clone()) => {
                if role != u.role.as_str() {
                    conn.execute(
                        "UPDATE users SET role = ?1 WHERE id = ?2",
                        params![u.role.as_str(), id],
                    )?;
                    undone.push(format!(
                        "{name}'s role was set back from {role} to {}",
                        u.role
                    ));
                }
                if enabled != u.enabled {
                    if u.enabled {
                        conn.execute("UPDATE users SET disabled_at = NULL WHERE id = ?1", [id])?;
                        undone.push(format!(
                            "{name}, disabled outside Chartroom, was enabled again"
                        ));
                    } else {
                        conn.execute(
                            "UPDATE users SET disabled_at = ?1 WHERE id = ?2",
                            params![at, id],
                        )?;
                        undone.push(format!(
                            "{name}, enabled outside Chartroom, was disabled again"
                        ));
                    }
                }
            }
            _ => {
                // Unknown to the log (or a second row for one account): it signs in as no one.
                if enabled {
                    conn.execute(
                        "UPDATE users SET disabled_at = ?1 WHERE id = ?2",
                        params![at, id],
                    )?;
                    undone.push(format!(
                        "the user {name}, added outside Chartroom, was disabled"
                    ));
                }
            }
        }
    }
    for (key, u) in &state.users {
        if !seen.contains(key) {
            conn.execute(
                "INSERT INTO users (name, role, created_at, created_by, disabled_at) VALUES (?1, ?2, ?3, 'security log', ?4)",
                params![u.name, u.role.as_str(), at, (!u.enabled).then_some(at)],
            )?;
            undone.push(format!(
                "the user {}, deleted outside Chartroom, was restored",
                u.name
            ));
        }
    }
    Ok(undone)
}

/// The user named `name` (trimmed; the column compares without regard to case).
pub(crate) fn find_user(conn: &Connection, name: &str) -> Result<Option<(i64, User)>, CoreError> {
    conn.prepare_cached(
        "SELECT id, name, role, disabled_at IS NOT NULL, created_at, created_by FROM users WHERE name = ?1",
    )?
    .query_row([name.trim()], row_to_user)
    .optional()?
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_are_plain() {
        for good in ["alice", "dr.bob", "nurse_1", "A-2"] {
            assert!(UserName::parse(good).is_ok(), "{good}");
        }
        // Read as typed, spaces around it dropped; compared in one folded form.
        let typed = UserName::parse("  Dr.Bob ").expect("valid");
        assert_eq!(typed.as_str(), "Dr.Bob");
        assert!(typed.is("dr.bob") && typed.is(" DR.BOB") && !typed.is("dr.bobby"));
        for bad in [
            "",
            ".hidden",
            "a b",
            "<script>",
            "../x",
            "é",
            &"a".repeat(65),
        ] {
            assert!(UserName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_follow_the_rules() {
        let user = UserName::parse("alice").expect("valid");
        let check = |p: &str| check_new_password(&user, &SecretString::from(p.to_owned()));
        assert!(check("correct horse").is_ok());
        assert!(check("short").is_err());
        assert!(check("        ").is_err());
        assert!(check("ALICE").is_err());
        let err = check("tiny").expect_err("too short");
        assert!(
            !err.to_string().contains("tiny"),
            "the message never echoes the password"
        );
    }
}
