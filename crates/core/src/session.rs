//! The Session: what unlocking returns, and the only way to the clinic's data.
//!
//! Every operation goes through [`Session::run`]: it checks the idle timeout, the one
//! [`Permission`] the operation needs and, for a restricted patient, the care team or an
//! active break-the-glass grant. A denial is audited with outcome "denied" and returned as
//! [`CoreError::Forbidden`]. A permitted operation runs in one IMMEDIATE transaction that
//! also appends its audit entry, so the change and its record commit together or not at all.

use std::io::Write;
use std::sync::Arc;

use chartroom_audit::{format_time, Outcome, Record, Report};
use chartroom_vault::{Credential, FailedUnlock, RecoveryKey, Vault, VaultConfig, VaultError};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use secrecy::SecretString;
use serde::Serialize;

use crate::alerts::{self, Alert};
use crate::audit::{self, ActorRef, AuditFilter, Device, Op};
use crate::clock::{Clock, SystemClock};
use crate::error::Denial;
use crate::patients::{self, ChartAccess, Patient};
use crate::roles::{Permission, Role};
use crate::schema::{AUDIT_TRIGGERS, MIGRATIONS};
use crate::settings::Settings;
use crate::users::{check_new_password, User, UserName};
use crate::CoreError;

/// Who is acting in a session.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Actor {
    User {
        id: i64,
        name: UserName,
        role: Role,
    },
    /// Unlocked with the clinic's recovery key: administrative rights, no user of its own.
    Recovery,
}

/// Who is signed in, as the UI and the CLI show it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ts_rs::TS)]
pub struct SignedIn {
    pub user: String,
    pub role: Role,
    pub recovery: bool,
}

/// A break-the-glass grant.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ts_rs::TS)]
pub struct Grant {
    pub patient_id: i64,
    pub reason: String,
    pub granted_at: String,
    pub expires_at: String,
    pub minutes: u32,
}

/// What verifying the audit trail found.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ts_rs::TS)]
pub struct Verification {
    pub ok: bool,
    pub entries: u64,
    pub head_seq: u64,
    pub checkpoints: u64,
    pub unsigned_tail: u64,
    pub first_bad_seq: Option<u64>,
    pub reason: Option<String>,
}

impl From<Report> for Verification {
    fn from(r: Report) -> Self {
        Verification {
            ok: r.ok,
            entries: r.entries,
            head_seq: r.head_seq,
            checkpoints: r.checkpoints,
            unsigned_tail: r.unsigned_tail,
            first_bad_seq: r.failure.as_ref().map(|f| f.seq),
            reason: r.failure.map(|f| f.reason),
        }
    }
}

/// An unlocked vault and the person using it. Dropping it locks the vault (and audits that).
pub struct Session {
    pub(crate) vault: Option<Vault>,
    actor: Actor,
    pub(crate) device: Device,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) settings: Settings,
    last_activity: DateTime<Utc>,
    /// Distinct patient-name words for substring and typo search, loaded on first use.
    pub(crate) search_dictionary: Option<crate::search::NameDictionary>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("actor", &self.actor)
            .field("device", &self.device)
            .field("open", &self.vault.is_some())
            .finish_non_exhaustive()
    }
}

/// Everything an operation body may need besides the transaction.
pub(crate) struct Ctx<'a> {
    pub now: DateTime<Utc>,
    pub actor: &'a ActorRef,
    pub settings: &'a Settings,
    /// The patient the operation names, as the gate read it (inside the same transaction).
    pub patient: Option<&'a Patient>,
    /// Further audit entries the operation owes (one per patient of an export or import),
    /// appended after its own entry in the same transaction.
    pub also: std::cell::RefCell<Vec<Op>>,
}

impl Ctx<'_> {
    /// The named patient; every operation that asks for it names one.
    pub fn patient(&self) -> Result<&Patient, CoreError> {
        self.patient
            .ok_or_else(|| CoreError::NotFound("The operation names no patient.".into()))
    }

    /// Owes one more audit entry, written if the operation succeeds.
    pub fn also(&self, op: Op) {
        self.also.borrow_mut().push(op);
    }
}

fn immediate(conn: &mut Connection) -> Result<Transaction<'_>, CoreError> {
    Ok(conn.transaction_with_behavior(TransactionBehavior::Immediate)?)
}

impl Session {
    /// Creates a clinic vault in `config.dir` whose first user, `admin`, is an administrator.
    /// Returns the session and the recovery key, which must be shown once and then dropped.
    pub fn create(
        config: VaultConfig,
        admin: &str,
        password: &SecretString,
    ) -> Result<(Session, RecoveryKey), CoreError> {
        Self::create_with_clock(config, admin, password, Arc::new(SystemClock))
    }

    pub(crate) fn create_with_clock(
        config: VaultConfig,
        admin: &str,
        password: &SecretString,
        clock: Arc<dyn Clock>,
    ) -> Result<(Session, RecoveryKey), CoreError> {
        let name = UserName::parse(admin)?;
        check_new_password(&name, password)?;
        let (mut vault, recovery) = Vault::create(config, name.as_str(), password, MIGRATIONS)?;
        let now = clock.now();
        let tx = immediate(vault.connection_mut())?;
        let device = Device::load_or_create(&tx, now)?;
        tx.execute(
            "INSERT INTO users (name, role, created_at, created_by) VALUES (?1, 'admin', ?2, NULL)",
            params![name.as_str(), format_time(now)],
        )?;
        let id = tx.last_insert_rowid();
        let actor = ActorRef {
            id: Some(id),
            name: name.to_string(),
            role: Some(Role::Admin),
        };
        audit::append(
            &tx,
            &device,
            &actor,
            now,
            &Op::create("vault.create").detail(format!("first administrator {name}")),
        )?;
        audit::append(
            &tx,
            &device,
            &actor,
            now,
            &Op::create("user.create")
                .object("User", name.as_str())
                .detail("role admin"),
        )?;
        audit::checkpoint_head(&tx, &device, now)?;
        tx.commit()?;
        let session = Session {
            vault: Some(vault),
            actor: Actor::User {
                id,
                name,
                role: Role::Admin,
            },
            device,
            clock,
            settings: Settings::default(),
            last_activity: now,
            search_dictionary: None,
        };
        Ok((session, recovery))
    }

    /// Unlocks with a user's password.
    pub fn unlock(
        config: VaultConfig,
        user: &str,
        password: &SecretString,
    ) -> Result<Session, CoreError> {
        Self::unlock_with_clock(config, user, password, Arc::new(SystemClock))
    }

    pub(crate) fn unlock_with_clock(
        config: VaultConfig,
        user: &str,
        password: &SecretString,
        clock: Arc<dyn Clock>,
    ) -> Result<Session, CoreError> {
        let vault = Vault::unlock(config, Credential::Password { user, password }, MIGRATIONS)?;
        Self::open(vault, Some(user), clock)
    }

    /// Unlocks with the clinic's recovery key, for when passwords are lost.
    pub fn unlock_with_recovery_key(
        config: VaultConfig,
        key: &RecoveryKey,
    ) -> Result<Session, CoreError> {
        let vault = Vault::unlock(config, Credential::Recovery(key), MIGRATIONS)?;
        Self::open(vault, None, Arc::new(SystemClock))
    }

    /// Finishes an unlock: the device key, the append-only triggers, failed attempts waiting
    /// to be audited, the user behind the slot, and the unlock's own audit entry.
    fn open(
        mut vault: Vault,
        user: Option<&str>,
        clock: Arc<dyn Clock>,
    ) -> Result<Session, CoreError> {
        let now = clock.now();
        let failures = vault.unaudited_failed_unlocks();
        let tx = immediate(vault.connection_mut())?;
        let device = Device::load_or_create(&tx, now)?;
        let settings = Settings::load(&tx)?;
        let system = ActorRef {
            id: None,
            name: "system".into(),
            role: None,
        };

        let missing = restore_audit_triggers(&tx)?;
        if !missing.is_empty() {
            let rec = audit::append(
                &tx,
                &device,
                &system,
                now,
                &Op::execute("audit.protection_restored")
                    .outcome(Outcome::Failed)
                    .detail(format!("missing triggers restored: {}", missing.join(", "))),
            )?;
            alerts::raise(
                &tx,
                alerts::rule::AUDIT_TAMPERING,
                now,
                None,
                None,
                "The audit trail's append-only protection had been removed from the database; it was restored at sign-in. Run `chartroom audit verify`.",
                rec.entry.seq,
            )?;
        }

        for failure in &failures {
            append_failed_unlock(&tx, &device, &settings, failure)?;
        }

        let actor = match user {
            None => Actor::Recovery,
            Some(name) => match find_user(&tx, name)? {
                Some((id, u)) if !u.disabled => Actor::User {
                    id,
                    name: u.name,
                    role: u.role,
                },
                found => {
                    // A slot without an active user behind it opens nothing.
                    let op = Op::execute("session.unlock")
                        .outcome(Outcome::Failed)
                        .detail(if found.is_some() {
                            "account disabled"
                        } else {
                            "no such user"
                        });
                    let who = ActorRef {
                        id: found.map(|(id, _)| id),
                        name: name.chars().take(64).collect(),
                        role: None,
                    };
                    let rec = audit::append(&tx, &device, &who, now, &op)?;
                    alerts::evaluate(&tx, &settings, &rec)?;
                    tx.commit()?;
                    let _ = vault.forget_failed_unlocks(failures.len());
                    let _ = vault.lock();
                    return Err(CoreError::Vault(VaultError::WrongCredential(None)));
                }
            },
        };
        let actor_ref = actor_ref(&actor);
        let op = match actor {
            Actor::Recovery => Op::execute("session.recovery_unlock"),
            Actor::User { .. } => Op::execute("session.unlock"),
        };
        let rec = audit::append(&tx, &device, &actor_ref, now, &op)?;
        alerts::evaluate(&tx, &settings, &rec)?;
        tx.commit()?;
        // Only once they are in the trail; a crash before this repeats them, never loses them.
        let _ = vault.forget_failed_unlocks(failures.len());
        Ok(Session {
            vault: Some(vault),
            actor,
            device,
            clock,
            settings,
            last_activity: now,
            search_dictionary: None,
        })
    }

    /// Locks: audits the lock, signs the head of the trail, closes the database and
    /// zeroizes the key.
    pub fn lock(mut self) -> Result<(), CoreError> {
        self.close("session.lock")
    }

    fn close(&mut self, event: &'static str) -> Result<(), CoreError> {
        let Some(mut vault) = self.vault.take() else {
            return Ok(());
        };
        let now = self.clock.now();
        let actor = actor_ref(&self.actor);
        let written = (|| {
            let tx = immediate(vault.connection_mut())?;
            // A lock or an idle logoff always carries a signed checkpoint (see append).
            audit::append(&tx, &self.device, &actor, now, &Op::execute(event))?;
            tx.commit()?;
            Ok::<_, CoreError>(())
        })();
        let closed = vault.lock().map_err(CoreError::from);
        written.and(closed)
    }

    /// Locks the session if it has been idle longer than the clinic's idle timeout, auditing
    /// an idle logoff. Returns whether it is (now) locked. The desktop calls this on a timer.
    pub fn expire_if_idle(&mut self) -> Result<bool, CoreError> {
        if self.vault.is_none() {
            return Ok(true);
        }
        let idle = chrono::Duration::minutes(i64::from(self.settings.idle_timeout_minutes));
        if self.clock.now() - self.last_activity >= idle {
            self.close("session.idle_logoff")?;
            return Ok(true);
        }
        Ok(false)
    }

    #[cfg(test)]
    pub(crate) fn connection_for_tests(&self) -> &Connection {
        self.vault
            .as_ref()
            .map(Vault::connection)
            .expect("the session is open")
    }

    /// Counts as activity for the idle timeout (someone is typing or clicking); refuses if
    /// the session has already expired.
    pub fn keep_alive(&mut self) -> Result<(), CoreError> {
        self.touch()
    }

    /// Whether the session is still unlocked.
    pub fn is_open(&self) -> bool {
        self.vault.is_some()
    }

    /// Counts as activity; refuses once the idle timeout has passed (locking the session).
    pub(crate) fn touch(&mut self) -> Result<(), CoreError> {
        let expired = self.expired();
        if self.expire_if_idle()? {
            return Err(expired);
        }
        self.last_activity = self.clock.now();
        Ok(())
    }

    pub fn signed_in(&self) -> SignedIn {
        match &self.actor {
            Actor::User { name, role, .. } => SignedIn {
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

    /// The device id that signs this vault's audit trail.
    pub fn device_id(&self) -> &str {
        &self.device.id
    }

    /// The device's Ed25519 public key, hex, for enrolling with a collector.
    pub fn device_public_key(&self) -> String {
        hex::encode(self.device.public_key().as_bytes())
    }

    pub fn vault_id(&self) -> Result<String, CoreError> {
        Ok(self.vault()?.vault_id().to_owned())
    }

    /// The open connection, for the few reads that are not patient data (sync state).
    pub(crate) fn connection(&self) -> Result<&Connection, CoreError> {
        Ok(self.vault()?.connection())
    }

    fn vault(&self) -> Result<&Vault, CoreError> {
        self.vault.as_ref().ok_or(self.expired())
    }

    /// The error for a session that has locked itself.
    pub(crate) fn expired(&self) -> CoreError {
        CoreError::SessionExpired {
            minutes: self.settings.idle_timeout_minutes,
        }
    }

    pub(crate) fn role(&self) -> Role {
        match &self.actor {
            Actor::User { role, .. } => *role,
            Actor::Recovery => Role::Admin,
        }
    }

    /// Whether the signed-in role has `permission` (for showing or hiding parts of the UI;
    /// the operations check for themselves).
    pub fn can(&self, permission: Permission) -> bool {
        self.role().allows(permission)
    }

    /// The signed-in role's permissions.
    /// Refuses (and audits the refusal of) `event` unless the role has `permission`: for an
    /// operation that starts outside the vault (a network call) before it writes anything.
    pub fn require(
        &mut self,
        permission: Permission,
        event: &'static str,
    ) -> Result<(), CoreError> {
        self.require_for(permission, Op::execute(event))
    }

    /// [`Session::require`] for an operation described in full.
    pub(crate) fn require_for(&mut self, permission: Permission, op: Op) -> Result<(), CoreError> {
        let role = self.role();
        if role.allows(permission) {
            return Ok(());
        }
        Err(self.deny(op, Denial::Role { role, permission }))
    }

    pub fn permissions(&self) -> &'static [Permission] {
        self.role().permissions()
    }

    /// The clinic's settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Writes one audit entry in its own transaction (denials, lock, failures).
    pub(crate) fn record(&mut self, op: &Op) -> Result<Record, CoreError> {
        let now = self.clock.now();
        let actor = actor_ref(&self.actor);
        let expired = self.expired();
        let vault = self.vault.as_mut().ok_or(expired)?;
        let tx = immediate(vault.connection_mut())?;
        let rec = audit::append(&tx, &self.device, &actor, now, op)?;
        alerts::evaluate(&tx, &self.settings, &rec)?;
        tx.commit()?;
        Ok(rec)
    }

    /// Audits a refusal and returns the error to give the caller. If even the audit write
    /// fails, the refusal still stands.
    pub(crate) fn deny(&mut self, mut op: Op, denial: Denial) -> CoreError {
        op.outcome = Outcome::Denied;
        op.detail = Some(denial.to_string());
        let _ = self.record(&op);
        CoreError::Forbidden(denial)
    }

    /// The gate. Checks idle time, `permission`, and (when `op` names a patient and
    /// `restricted_check` is set) the restriction; then runs `body` and appends `op` as its
    /// audit entry in the same transaction.
    pub(crate) fn run<T>(
        &mut self,
        permission: Permission,
        mut op: Op,
        restricted_check: bool,
        body: impl FnOnce(&Transaction<'_>, &mut Op, &Ctx<'_>) -> Result<T, CoreError>,
    ) -> Result<T, CoreError> {
        self.touch()?;
        let role = self.role();
        if !role.allows(permission) {
            return Err(self.deny(op, Denial::Role { role, permission }));
        }
        let now = self.clock.now();
        let actor = actor_ref(&self.actor);
        let expired = self.expired();
        let vault = self.vault.as_mut().ok_or(expired)?;
        let tx = immediate(vault.connection_mut())?;
        let mut named = None;
        if let Some(patient_id) = op.patient {
            let patient = patients::get(&tx, patient_id)?;
            op.purpose = Some(role.purpose_of_use().to_owned());
            if restricted_check && patient.restricted {
                match chart_access(&tx, &patient, &actor, now)? {
                    Some(ChartAccess::BreakGlass { reason, .. }) => {
                        op.purpose = Some("ETREAT".into());
                        op.reason = Some(reason);
                    }
                    Some(_) => {}
                    None => {
                        drop(tx);
                        let can_break_glass = role.allows(Permission::BreakGlass);
                        return Err(self.deny(op, Denial::Restricted { can_break_glass }));
                    }
                }
            }
            named = Some(patient);
        }
        let ctx = Ctx {
            now,
            actor: &actor,
            settings: &self.settings,
            patient: named.as_ref(),
            also: Default::default(),
        };
        let value = match body(&tx, &mut op, &ctx) {
            Ok(value) => value,
            Err(e) => {
                // Nothing changed; the attempt is still on record, with the error's code
                // (never its text, which may quote what was typed).
                drop(tx);
                let mut failed = op;
                failed.outcome = Outcome::Failed;
                failed.detail = Some(format!("refused: {}", e.code()));
                let _ = self.record(&failed);
                return Err(e);
            }
        };
        let rec = audit::append(&tx, &self.device, &actor, now, &op)?;
        alerts::evaluate(&tx, &self.settings, &rec)?;
        for extra in ctx.also.take() {
            let rec = audit::append(&tx, &self.device, &actor, now, &extra)?;
            alerts::evaluate(&tx, &self.settings, &rec)?;
        }
        tx.commit()?;
        Ok(value)
    }

    // ----- users -------------------------------------------------------------------------

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
        let op = Op::create("user.create")
            .object("User", parsed.as_str())
            .detail(format!("role {role}"));
        let slot_owner = parsed.clone();
        self.with_slot_change(
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
                })
            },
            |vault| Ok(vault.add_user_slot(slot_owner.as_str(), password)?),
            |vault| {
                let _ = vault.remove_user_slot(slot_owner.as_str());
            },
        )
        .map(|(user, ())| user)
    }

    /// Gives a user another role.
    pub fn change_role(&mut self, name: &str, role: Role) -> Result<(), CoreError> {
        let me = self.actor_user_id();
        self.run(
            Permission::ManageUsers,
            Op::update("user.role_change").object("User", name),
            false,
            |tx, op, _| {
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
                op.detail = Some(format!("{} -> {role}", user.role));
                Ok(())
            },
        )
    }

    /// Disables a user: their slot is removed, so their password no longer opens the vault.
    /// Their record stays, so the history of what they did keeps its name.
    pub fn disable_user(&mut self, name: &str) -> Result<(), CoreError> {
        let me = self.actor_user_id();
        let owner = name.to_owned();
        let op = Op::update("user.disable").object("User", name);
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
                Ok(true)
            },
            |vault| match vault.remove_user_slot(&owner) {
                Ok(()) | Err(VaultError::NoSuchSlot(_)) => Ok(()),
                Err(e) => Err(e.into()),
            },
            // The slot is gone for good; a failed commit leaves a user who can no longer sign
            // in, which an admin fixes with a password reset. Never the reverse.
            |_| {},
        )
        .map(|_| ())
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
        // Every role may change its own password: the gate's permission here is the session.
        self.with_slot_change(
            None,
            op,
            |_, _| Ok(()),
            |vault| Ok(vault.change_password(name.as_str(), new_password)?),
            |_| {},
        )
        .map(|_| ())
    }

    /// Gives another user a new password (a new slot), e.g. when they forgot theirs.
    pub fn reset_password(
        &mut self,
        name: &str,
        new_password: &SecretString,
    ) -> Result<(), CoreError> {
        if matches!(&self.actor, Actor::User { name: me, .. } if me.as_str().eq_ignore_ascii_case(name))
        {
            return self.change_own_password(new_password);
        }
        let owner = name.to_owned();
        let op = Op::update("user.password_reset").object("User", name);
        self.with_slot_change(
            Some(Permission::ManageUsers),
            op,
            |tx, _| {
                let (_, user) = find_user(tx, name)?.ok_or_else(|| {
                    CoreError::NotFound(format!("There is no user named {name}."))
                })?;
                if user.disabled {
                    return Err(CoreError::Conflict(format!("{} is disabled.", user.name)));
                }
                check_new_password(&user.name, new_password)?;
                Ok(())
            },
            |vault| match vault.change_password(&owner, new_password) {
                Err(VaultError::NoSuchSlot(_)) => Ok(vault.add_user_slot(&owner, new_password)?),
                other => Ok(other?),
            },
            |_| {},
        )
        .map(|_| ())
    }

    /// Rotates the data key; every user's password and the recovery key keep working.
    pub fn rekey(&mut self) -> Result<(), CoreError> {
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
                self.record(&Op::execute("vault.rekey"))?;
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
        self.with_slot_change(
            Some(Permission::ManageKeys),
            Op::execute("vault.recovery_key_replace"),
            |_, _| Ok(()),
            |vault| Ok(vault.replace_recovery_key()?),
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

    /// Runs a database change, its audit entry and a key-slot change as one: the transaction
    /// commits only after the slot file is on disk, and `undo` reverts the slot file if the
    /// commit then fails. `permission` None is a change every signed-in user may make for
    /// themselves (their own password).
    fn with_slot_change<D, T>(
        &mut self,
        permission: Option<Permission>,
        op: Op,
        db: impl FnOnce(&Connection, &Ctx<'_>) -> Result<D, CoreError>,
        slots: impl FnOnce(&mut Vault) -> Result<T, CoreError>,
        undo: impl FnOnce(&mut Vault),
    ) -> Result<(D, T), CoreError> {
        self.touch()?;
        let role = self.role();
        if let Some(permission) = permission.filter(|p| !role.allows(*p)) {
            return Err(self.deny(op, Denial::Role { role, permission }));
        }
        let now = self.clock.now();
        let actor = actor_ref(&self.actor);
        let expired = self.expired();
        let vault = self.vault.as_mut().ok_or(expired)?;
        // Not a rusqlite Transaction: the slot change needs `&mut Vault` while it is open.
        vault.connection().execute_batch("BEGIN IMMEDIATE")?;
        let ctx = Ctx {
            now,
            actor: &actor,
            settings: &self.settings,
            patient: None,
            also: Default::default(),
        };
        let result = (|| {
            let tx_conn = vault.connection();
            let d = db(tx_conn, &ctx)?;
            let rec = audit::append(tx_conn, &self.device, &actor, now, &op)?;
            alerts::evaluate(tx_conn, &self.settings, &rec)?;
            Ok((d, slots(vault)?))
        })();
        finish_manual_tx(vault, result, undo)
    }

    // ----- settings ----------------------------------------------------------------------

    /// Changes one setting (see [`crate::SETTING_KEYS`]); returns the settings as they are now.
    pub fn set_setting(&mut self, key: &str, value: &str) -> Result<Settings, CoreError> {
        let mut next = self.settings.clone();
        let normalised = next.apply(key, value)?;
        let key_owned = key.to_owned();
        self.run(
            Permission::ManageSettings,
            Op::update("settings.update")
                .object("Setting", key)
                .detail(format!("{key} = {normalised}")),
            false,
            |tx, _, ctx| {
                tx.execute(
                    "INSERT INTO settings (key, value, updated_at, updated_by) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value,
                        updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                    params![key_owned, normalised, format_time(ctx.now), ctx.actor.name],
                )?;
                Ok(())
            },
        )?;
        self.settings = next;
        Ok(self.settings.clone())
    }

    // ----- patients ----------------------------------------------------------------------

    /// Puts a user on a patient's care team, which opens a restricted chart to them.
    pub fn add_to_care_team(&mut self, patient_id: i64, user: &str) -> Result<(), CoreError> {
        self.run(
            Permission::ManageCareTeam,
            Op::update("care_team.add").patient(patient_id),
            false,
            |tx, op, ctx| {
                let (uid, u) = find_user(tx, user)?
                    .ok_or_else(|| CoreError::NotFound(format!("There is no user named {user}.")))?;
                if u.disabled {
                    return Err(CoreError::Conflict(format!("{} is disabled.", u.name)));
                }
                op.detail = Some(format!("added {}", u.name));
                tx.execute(
                    "INSERT OR IGNORE INTO care_team (patient_id, user_id, added_at, added_by) VALUES (?1, ?2, ?3, ?4)",
                    params![patient_id, uid, format_time(ctx.now), ctx.actor.name],
                )?;
                Ok(())
            },
        )
    }

    /// Takes a user off a patient's care team.
    pub fn remove_from_care_team(&mut self, patient_id: i64, user: &str) -> Result<(), CoreError> {
        self.run(
            Permission::ManageCareTeam,
            Op::update("care_team.remove").patient(patient_id),
            false,
            |tx, op, _| {
                let (uid, u) = find_user(tx, user)?.ok_or_else(|| {
                    CoreError::NotFound(format!("There is no user named {user}."))
                })?;
                op.detail = Some(format!("removed {}", u.name));
                tx.execute(
                    "DELETE FROM care_team WHERE patient_id = ?1 AND user_id = ?2",
                    params![patient_id, uid],
                )?;
                Ok(())
            },
        )
    }

    /// Breaks the glass: opens a restricted chart for the clinic's time box (default 60
    /// minutes), with a stated reason. Audited as an emergency override and raised as an alert.
    pub fn break_glass(&mut self, patient_id: i64, reason: &str) -> Result<Grant, CoreError> {
        let reason = reason.trim().to_owned();
        let user_id = self.actor_user_id();
        let mut op = Op::execute("break_glass").patient(patient_id);
        op.purpose = Some("ETREAT".into());
        if reason.is_empty() || reason.chars().count() > 500 || reason.chars().any(char::is_control)
        {
            self.touch()?;
            if self.can(Permission::BreakGlass) {
                let mut refused = op.outcome(Outcome::Denied);
                refused.detail = Some("no reason given".into());
                let _ = self.record(&refused);
            }
            return Err(CoreError::InvalidInput(
                "Breaking the glass needs a reason (up to 500 characters), which is recorded and reported."
                    .into(),
            ));
        }
        op.reason = Some(reason.clone());
        self.run(Permission::BreakGlass, op, false, |tx, op, ctx| {
            let patient = ctx.patient()?;
            op.purpose = Some("ETREAT".into());
            if !patient.restricted {
                return Err(CoreError::Conflict(
                    "This chart is not restricted; open it directly.".into(),
                ));
            }
            let uid = user_id.ok_or_else(|| {
                CoreError::Conflict("Break the glass as yourself, not with the recovery key.".into())
            })?;
            if patients::on_care_team(tx, patient_id, uid)? {
                return Err(CoreError::Conflict(
                    "You are on this patient's care team; open the chart directly.".into(),
                ));
            }
            let minutes = ctx.settings.break_glass_minutes;
            let expires = ctx.now + chrono::Duration::minutes(i64::from(minutes));
            let (head, _) = audit::head(tx)?;
            tx.execute(
                "INSERT INTO access_grants (user_id, patient_id, reason, granted_at, expires_at, audit_seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![uid, patient_id, reason, format_time(ctx.now), format_time(expires), i64::try_from(head + 1).unwrap_or(i64::MAX)],
            )?;
            op.detail = Some(format!("{minutes} minutes"));
            Ok(Grant {
                patient_id,
                reason: reason.clone(),
                granted_at: format_time(ctx.now),
                expires_at: format_time(expires),
                minutes,
            })
        })
    }

    // ----- the audit trail and alerts ----------------------------------------------------

    /// Verifies the whole trail: the hash chain and every signed checkpoint.
    pub fn verify_audit(&mut self) -> Result<Verification, CoreError> {
        self.run(
            Permission::VerifyAudit,
            Op::execute("audit.verify"),
            false,
            |tx, op, _| {
                let v = Verification::from(audit::verify_stored(tx)?);
                if !v.ok {
                    op.outcome = Outcome::Failed;
                }
                op.detail = Some(match v.first_bad_seq {
                    Some(seq) => format!("chain broken at entry {seq}"),
                    None => format!("{} entries intact", v.entries),
                });
                Ok(v)
            },
        )
    }

    /// Audit entries matching `filter`, oldest first.
    pub fn audit_entries(&mut self, filter: &AuditFilter) -> Result<Vec<Record>, CoreError> {
        let mut out = Vec::new();
        self.audit_entries_each(filter, |r| {
            out.push(r);
            Ok(())
        })?;
        Ok(out)
    }

    /// Hands each audit entry matching `filter` to `each`, oldest first, without holding
    /// them all in memory. Returns how many there were.
    pub fn audit_entries_each(
        &mut self,
        filter: &AuditFilter,
        each: impl FnMut(Record) -> Result<(), CoreError>,
    ) -> Result<u64, CoreError> {
        self.run(
            Permission::ReadAudit,
            Op::read("audit.read"),
            false,
            |tx, op, _| {
                let n = audit::list(tx, filter, each)?;
                op.detail = Some(format!("{n} entries"));
                Ok(n)
            },
        )
    }

    /// Writes entries matching `filter` as FHIR R4 AuditEvent resources, one JSON per line.
    /// Returns how many were written.
    pub fn export_audit_fhir(
        &mut self,
        filter: &AuditFilter,
        out: &mut dyn Write,
    ) -> Result<u64, CoreError> {
        self.run(
            Permission::ReadAudit,
            Op::execute("audit.export"),
            false,
            |tx, op, _| {
                let n = audit::list(tx, filter, |r| {
                    let line = serde_json::to_string(&chartroom_audit::to_fhir_audit_event(&r))
                        .map_err(|e| CoreError::Integrity(e.to_string()))?;
                    writeln!(out, "{line}").map_err(|e| CoreError::Vault(VaultError::Io(e)))
                })?;
                out.flush()
                    .map_err(|e| CoreError::Vault(VaultError::Io(e)))?;
                op.detail = Some(format!("{n} entries as FHIR AuditEvent"));
                Ok(n)
            },
        )
    }

    /// Alerts, newest first: the open ones, or all with `all`.
    pub fn alerts(&mut self, all: bool) -> Result<Vec<Alert>, CoreError> {
        self.run(
            Permission::ManageAlerts,
            Op::read("alert.list"),
            false,
            |tx, op, _| {
                let list = alerts::list(tx, all)?;
                op.detail = Some(format!("{} alerts", list.len()));
                Ok(list)
            },
        )
    }

    /// Acknowledges an alert with a note saying what was found.
    pub fn acknowledge_alert(&mut self, id: i64, note: &str) -> Result<(), CoreError> {
        let note = note.trim().to_owned();
        if note.is_empty() || note.chars().count() > 2000 {
            return Err(CoreError::InvalidInput(
                "Acknowledging an alert needs a note (up to 2000 characters) saying what was found."
                    .into(),
            ));
        }
        self.run(
            Permission::ManageAlerts,
            Op::update("alert.acknowledge").object("Alert", id),
            false,
            |tx, _, ctx| {
                let state: Option<Option<String>> = tx
                    .query_row("SELECT acknowledged_at FROM alerts WHERE id = ?1", [id], |r| r.get(0))
                    .optional()?;
                match state {
                    None => Err(CoreError::NotFound(format!("There is no alert {id}."))),
                    Some(Some(_)) => Err(CoreError::Conflict(format!("Alert {id} is already acknowledged."))),
                    Some(None) => {
                        tx.execute(
                            "UPDATE alerts SET acknowledged_at = ?1, acknowledged_by = ?2, ack_note = ?3 WHERE id = ?4",
                            params![format_time(ctx.now), ctx.actor.name, note, id],
                        )?;
                        Ok(())
                    }
                }
            },
        )
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // A session dropped without `lock` (an error path, a closed window) still leaves its
        // lock in the trail and a signed head; failures here cannot be reported any more.
        let _ = self.close("session.lock");
    }
}

fn actor_ref(actor: &Actor) -> ActorRef {
    match actor {
        Actor::User { id, name, role } => ActorRef {
            id: Some(*id),
            name: name.to_string(),
            role: Some(*role),
        },
        Actor::Recovery => ActorRef {
            id: None,
            name: "recovery key".into(),
            role: Some(Role::Admin),
        },
    }
}

/// How (if at all) `actor` may open `patient`'s chart.
pub(crate) fn chart_access(
    conn: &Connection,
    patient: &Patient,
    actor: &ActorRef,
    now: DateTime<Utc>,
) -> Result<Option<ChartAccess>, CoreError> {
    let Some(uid) = actor.id else {
        return Ok((!patient.restricted).then_some(ChartAccess::Open));
    };
    if patients::on_care_team(conn, patient.id, uid)? {
        return Ok(Some(ChartAccess::CareTeam));
    }
    if !patient.restricted {
        return Ok(Some(ChartAccess::Open));
    }
    Ok(patients::active_grant(conn, patient.id, uid, now)?
        .map(|(reason, expires_at)| ChartAccess::BreakGlass { reason, expires_at }))
}

/// Audits one failed unlock that happened while the vault was closed.
fn append_failed_unlock(
    conn: &Connection,
    device: &Device,
    settings: &Settings,
    failure: &FailedUnlock,
) -> Result<(), CoreError> {
    let name = failure
        .account
        .strip_prefix("user:")
        .unwrap_or("recovery key");
    let who = ActorRef {
        id: find_user(conn, name)?.map(|(id, _)| id),
        name: name.chars().take(64).collect(),
        role: None,
    };
    let op = Op::execute("session.unlock")
        .outcome(Outcome::Failed)
        .detail(if failure.while_paused {
            "refused: sign-in paused after repeated failures"
        } else {
            "wrong password or recovery key"
        });
    let rec = audit::append(conn, device, &who, failure.at, &op)?;
    alerts::evaluate(conn, settings, &rec)
}

/// Re-creates any missing append-only trigger; returns the names that were missing.
fn restore_audit_triggers(conn: &Connection) -> Result<Vec<&'static str>, CoreError> {
    let mut missing = Vec::new();
    for (name, sql) in AUDIT_TRIGGERS {
        let present: Option<i64> = conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()?;
        if present.is_none() {
            conn.execute_batch(sql)?;
            missing.push(*name);
        }
    }
    Ok(missing)
}

fn finish_manual_tx<T>(
    vault: &mut Vault,
    result: Result<T, CoreError>,
    undo: impl FnOnce(&mut Vault),
) -> Result<T, CoreError> {
    match result {
        Ok(value) => match vault.connection().execute_batch("COMMIT") {
            Ok(()) => Ok(value),
            Err(e) => {
                let _ = vault.connection().execute_batch("ROLLBACK");
                undo(vault);
                Err(e.into())
            }
        },
        Err(e) => {
            let _ = vault.connection().execute_batch("ROLLBACK");
            Err(e)
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
            },
        ))
    })())
}

fn find_user(conn: &Connection, name: &str) -> Result<Option<(i64, User)>, CoreError> {
    conn.prepare_cached(
        "SELECT id, name, role, disabled_at IS NOT NULL, created_at, created_by FROM users WHERE name = ?1",
    )?
    .query_row([name], row_to_user)
    .optional()?
    .transpose()
}
