//! The Session: what unlocking returns, and the only way to the clinic's data.
//!
//! Every operation goes through [`Session::run`]: it checks the idle timeout, the one
//! [`Permission`] the operation needs and, for a restricted patient, the care team or an
//! active break-the-glass grant. A denial is audited with outcome "denied" and returned as
//! [`CoreError::Forbidden`]. A permitted operation runs in one IMMEDIATE transaction that
//! also appends its audit entry, so the change and its record commit together or not at all.

use std::sync::Arc;

use chartroom_audit::{format_time, Outcome, Record};
use chartroom_vault::{Credential, FailedUnlock, RecoveryKey, Vault, VaultConfig, VaultError};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use secrecy::SecretString;
use serde::Serialize;

use crate::access::{chart_access, ChartAccess};
use crate::alerts;
use crate::audit::{self, ActorRef, Device, Op};
use crate::chart::change::Stamp;
use crate::chart::patient::{self, Patient};
use crate::clock::{Clock, SystemClock};
use crate::error::Denial;
use crate::roles::{Permission, Role};
use crate::schema::{AUDIT_TRIGGERS, MIGRATIONS};
use crate::settings::Settings;
use crate::users::{check_new_password, find_user, UserName};
use crate::CoreError;

/// Who is acting in a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Actor {
    User {
        id: i64,
        name: UserName,
        role: Role,
    },
    /// Unlocked with the clinic's recovery key: administrative rights, no user of its own.
    Recovery,
}

/// Who is signed in, as the UI and the CLI show it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SignedIn {
    pub user: String,
    pub role: Role,
    pub recovery: bool,
}

/// An unlocked vault and the person using it. Dropping it locks the vault (and audits that).
pub struct Session {
    pub(crate) vault: Option<Vault>,
    pub(crate) actor: Actor,
    pub(crate) device: Device,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) settings: Settings,
    last_activity: DateTime<Utc>,
    /// Distinct patient-name words for substring and typo search, loaded on first use.
    pub(crate) search_dictionary: Option<crate::search::NameDictionary>,
    /// What this session can seal to and open (shared with the connection's SQL functions).
    pub(crate) keys: crate::keys::SharedKeyring,
    /// The key hand-overs and removals this session made.
    pub(crate) handed_over: chartroom_vault::HolderChanges,
    /// The audit head as the vault held it before this session's unlock wrote anything: a
    /// restored backup's own head, for `vault restore`.
    pub(crate) opened_after: u64,
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
    /// How the session may open that patient's chart, when the gate had to work it out (a
    /// restricted chart), so the operation need not ask again.
    pub access: Option<ChartAccess>,
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

    /// Who makes the operation's change, and when.
    pub fn stamp(&self) -> Stamp {
        Stamp::new(self.now, &self.actor.name)
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
        let keys = crate::keys::install_for(&vault)?;
        crate::keys::lock(&keys).name_signer(name.as_str());
        vault.connection().execute_batch("BEGIN IMMEDIATE")?;
        let result = (|| {
            let tx = vault.connection();
            let device = Device::load_or_create(tx, now)?;
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
                tx,
                &device,
                &actor,
                now,
                &Op::create("vault.create").detail(format!("first administrator {name}")),
            )?;
            audit::append(
                tx,
                &device,
                &actor,
                now,
                &Op::create("user.create")
                    .object("User", name.as_str())
                    .detail("role admin"),
            )?;
            // Who may do what starts here, signed with the first administrator's key: the
            // root every slot names.
            crate::security_log::begin(&mut vault, &format_time(now), name.as_str())?;
            audit::checkpoint_head(vault.connection(), &device, now)?;
            Ok((device, id))
        })();
        let (device, id) = finish_manual_tx(&mut vault, result, |_| {})?;
        let mut session = Session {
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
            keys,
            handed_over: Default::default(),
            opened_after: 0,
        };
        // The audit trail's free text is sealed from the first entry that has any.
        session.settle_keys()?;
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
        let user = user.trim();
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
        let keys = crate::keys::install_for(&vault)?;
        // Who may do what, as signed: what was changed outside Chartroom is undone first.
        let checked = match crate::security_log::check_at_unlock(&mut vault, now) {
            Ok(checked) => checked,
            Err(refused) => {
                let _ = vault.lock();
                return Err(refused);
            }
        };
        let logged_role = |name: &str| match &checked {
            crate::security_log::Checked::Verified(state) => state.user(name).map(|u| u.role),
            crate::security_log::Checked::NotStarted => None,
        };
        if let crate::security_log::Checked::Verified(state) = &checked {
            let mut ring = crate::keys::lock(&keys);
            ring.verified_head = Some((state.len, state.head));
            // Chart keys are sealed only to slots the log registers (after the repairs above).
            ring.patients.slots = crate::patient_keys::slot_publics_from_log(state);
        }
        crate::keys::lock(&keys).take_compartment(&vault);
        let failures = vault.unaudited_failed_unlocks();
        let tx = immediate(vault.connection_mut())?;
        let (opened_after, _) = audit::head(&tx)?;
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
                // The role is the one the security log states, whatever the table says.
                Some((id, u)) if !u.disabled => Actor::User {
                    id,
                    role: logged_role(u.name.as_str()).unwrap_or(u.role),
                    name: u.name,
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
        if let Actor::User { name, .. } = &actor {
            crate::keys::lock(&keys).name_signer(name.as_str());
        }
        let mut session = Session {
            vault: Some(vault),
            actor,
            device,
            clock,
            settings,
            last_activity: now,
            search_dictionary: None,
            keys,
            handed_over: Default::default(),
            opened_after,
        };
        session.settle_keys()?;
        Ok(session)
    }

    /// Locks: audits the lock, signs the head of the trail, closes the database and
    /// zeroizes the key.
    pub fn lock(mut self) -> Result<(), CoreError> {
        self.close("session.lock")
    }

    fn close(&mut self, event: &'static str) -> Result<(), CoreError> {
        // The log's head as this session leaves it (its own entries included), remembered
        // for its slot: entries cut from the end later are noticed at the next unlock.
        if let Ok(Some(state)) = self.verified_state() {
            if let Some(vault) = self.vault.as_ref() {
                let _ = crate::security_log::remember_head_now(vault, state.len, &state.head);
            }
        }
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

    pub(crate) fn vault(&self) -> Result<&Vault, CoreError> {
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

    /// Writes the `vault.restore` entry of a vault just put back from a backup, with the
    /// backup's own audit head (what the vault held before this session's unlock) as the
    /// point its trail goes on from. Returns (backup head, restore entry).
    pub(crate) fn record_restore(&mut self, detail: String) -> Result<(u64, u64), CoreError> {
        let now = self.clock.now();
        let actor = actor_ref(&self.actor);
        let base = self.opened_after;
        let expired = self.expired();
        let vault = self.vault.as_mut().ok_or(expired)?;
        let tx = immediate(vault.connection_mut())?;
        let op = Op::execute("vault.restore").detail(format!(
            "{detail}; the backup's audit trail ends at entry {base}"
        ));
        let rec = audit::append(&tx, &self.device, &actor, now, &op)?;
        tx.execute(
            "INSERT INTO vault_restores (restore_seq, base_seq, restored_at) VALUES (?1, ?2, ?3)",
            rusqlite::params![
                i64::try_from(rec.entry.seq).unwrap_or(i64::MAX),
                i64::try_from(base).unwrap_or(i64::MAX),
                format_time(now)
            ],
        )?;
        alerts::evaluate(&tx, &self.settings, &rec)?;
        tx.commit()?;
        Ok((base, rec.entry.seq))
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
        let (now, actor) = self.admit(Some(permission), &op)?;
        let role = self.role();
        // The role may read clinical content; the key must have reached this user's slot too.
        if matches!(permission, Permission::ReadClinical | Permission::ReadNotes)
            && !crate::keys::lock(&self.keys).holds_clinical()
        {
            return Err(self.deny(op, Denial::KeyNotHandedOver));
        }
        let expired = self.expired();
        let vault = self.vault.as_mut().ok_or(expired)?;
        let tx = immediate(vault.connection_mut())?;
        crate::keys::lock(&self.keys).refresh(&tx)?;
        let mut named = None;
        let mut access = None;
        if let Some(patient_id) = op.patient {
            let patient = patient::get(&tx, patient_id)?;
            op.purpose = Some(role.purpose_of_use().to_owned());
            if restricted_check && patient.restricted {
                match chart_access(&tx, &patient, &actor, now)? {
                    Some(granted) => {
                        if let ChartAccess::BreakGlass { reason, .. } = &granted {
                            op.purpose = Some("ETREAT".into());
                            op.reason = Some(reason.clone());
                        }
                        access = Some(granted);
                    }
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
            access,
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

    /// The gate's admission step, shared by every way in: the idle timeout, then the role's
    /// `permission` (None: a change every signed-in user may make for themselves). A refusal
    /// is audited. Returns the time the operation runs at and who runs it.
    fn admit(
        &mut self,
        permission: Option<Permission>,
        op: &Op,
    ) -> Result<(DateTime<Utc>, ActorRef), CoreError> {
        self.touch()?;
        let role = self.role();
        if let Some(permission) = permission.filter(|p| !role.allows(*p)) {
            return Err(self.deny(op.clone(), Denial::Role { role, permission }));
        }
        Ok((self.clock.now(), actor_ref(&self.actor)))
    }

    /// Runs a database change, its audit entry and a key-slot change as one: the transaction
    /// commits only after the slot file is on disk, and `undo` reverts the slot file if the
    /// commit then fails. `permission` None is a change every signed-in user may make for
    /// themselves (their own password).
    pub(crate) fn with_slot_change<D, T>(
        &mut self,
        permission: Option<Permission>,
        op: Op,
        db: impl FnOnce(&Connection, &Ctx<'_>) -> Result<D, CoreError>,
        slots: impl FnOnce(&mut Vault) -> Result<T, CoreError>,
        undo: impl FnOnce(&mut Vault),
    ) -> Result<(D, T), CoreError> {
        let (now, actor) = self.admit(permission, &op)?;
        // A trace committed before the slot file changes: a crash between writing the slot
        // file and the commit below (which would leave a slot the security log does not
        // know, refused at its owner's next sign-in) is then on record as begun and never
        // finished.
        let mut begun = Op::execute("key_slot.change_begun").detail(op.event);
        begun.object = op.object.clone();
        self.record(&begun)?;
        let expired = self.expired();
        let vault = self.vault.as_mut().ok_or(expired)?;
        // Not a rusqlite Transaction: the slot change needs `&mut Vault` while it is open.
        vault.connection().execute_batch("BEGIN IMMEDIATE")?;
        let ctx = Ctx {
            now,
            actor: &actor,
            settings: &self.settings,
            patient: None,
            access: None,
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
}

impl Drop for Session {
    fn drop(&mut self) {
        // A session dropped without `lock` (an error path, a closed window) still leaves its
        // lock in the trail and a signed head; failures here cannot be reported any more.
        let _ = self.close("session.lock");
    }
}

pub(crate) fn actor_ref(actor: &Actor) -> ActorRef {
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

/// Audits one failed unlock that happened while the vault was closed.
fn append_failed_unlock(
    conn: &Connection,
    device: &Device,
    settings: &Settings,
    failure: &FailedUnlock,
) -> Result<(), CoreError> {
    // A name with no slot comes as its tag, never as typed. One written by an earlier
    // version (a plain `user:` name that no user has) is not repeated either.
    let who = if let Some(tag) = failure.account.strip_prefix("unknown:") {
        unknown_user(tag)
    } else if let Some(name) = failure.account.strip_prefix("user:") {
        match find_user(conn, name)? {
            Some((id, user)) => ActorRef {
                id: Some(id),
                name: user.name.to_string(),
                role: None,
            },
            None => unknown_user(""),
        }
    } else {
        ActorRef {
            id: None,
            name: "recovery key".into(),
            role: None,
        }
    };
    let op = Op::execute("session.unlock")
        .outcome(Outcome::Failed)
        .detail(match (failure.while_paused, failure.repeats) {
            (true, 0) => "refused: sign-in paused after repeated failures".to_owned(),
            (true, n) => format!(
                "refused: sign-in paused after repeated failures ({} attempts while paused)",
                u64::from(n) + 1
            ),
            (false, _) => "wrong password or recovery key".to_owned(),
        });
    let rec = audit::append(conn, device, &who, failure.at, &op)?;
    alerts::evaluate(conn, settings, &rec)
}

/// The actor of a failed sign-in with a user name that has no slot: "unknown user", with
/// the name's correlation tag when there is one.
fn unknown_user(tag: &str) -> ActorRef {
    let tag: String = tag
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(16)
        .collect();
    ActorRef {
        id: None,
        name: if tag.is_empty() {
            "unknown user".into()
        } else {
            format!("unknown user ({tag})")
        },
        role: None,
    }
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

pub(crate) fn finish_manual_tx<T>(
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
