//! chartroom-vault: one SQLCipher database that several people unlock with their own secrets.
//!
//! A vault is a folder holding `chartroom.db` (SQLCipher 4, keyed with a random 256-bit data
//! key in raw-key mode) and `keyslots.json` (that data key sealed once per user and once for
//! the recovery key; see [`slots`]). The vault knows nothing about patients: callers hand it
//! their schema migrations and get a connection back.

#![forbid(unsafe_code)]

mod db;
mod error;
mod files;
pub mod kdf;
pub mod lockout;
mod secret;
pub mod slots;

use std::fs;
use std::path::{Path, PathBuf};

use chrono::Utc;
use rusqlite::Connection;
use secrecy::SecretString;
use serde::Serialize;

/// The one form in which account names are compared and counted: trimmed, ASCII lower
/// case. "Alice", "alice" and " alice " are one user, for their key slot, their sign-in
/// failures and their user record alike.
pub fn account_key(name: &str) -> String {
    name.trim().to_ascii_lowercase()
}

/// The tag a failed sign-in with a user name that has no slot is recorded under: 12 hex
/// digits of Argon2id (at the slots' own cost) over the folded name, salted by the vault, so
/// the same mistyped name is recognisable in the trail while the name (perhaps a password
/// typed into the wrong field) is kept nowhere and guessing at it is as slow as at a slot.
fn unknown_name_tag(vault_id: &str, name: &str, params: KdfParams) -> String {
    use sha2::Digest;
    let salt = sha2::Sha256::new()
        .chain_update(b"chartroom unknown user name v1\0")
        .chain_update(vault_id.as_bytes())
        .finalize();
    match params.derive(account_key(name).as_bytes(), &salt[..kdf::SALT_LEN]) {
        Ok(out) => hex::encode(&out[..6]),
        Err(_) => String::new(),
    }
}

/// Makes every file and folder this process creates from now on private to its owner
/// (umask 077), and turns core dumps off (RLIMIT_CORE 0). Chartroom's programs call it
/// first thing; the vault also sets its own files' modes explicitly, so this is the net
/// under everything else they write.
pub fn restrict_new_files() {
    rustix::process::umask(rustix::fs::Mode::from_bits_truncate(0o077));
    // And no core dump: one would hold the database key and whatever was decrypted.
    let _ = rustix::process::setrlimit(
        rustix::process::Resource::Core,
        rustix::process::Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    );
}

pub use db::{Migration, CACHE_KIB, DB_FILE_NAME};

/// Applies the connection settings every vault connection gets (WAL, `synchronous = FULL`,
/// foreign keys, `secure_delete`, the page cache). For benchmarks that compare against a
/// connection opened without a key.
#[doc(hidden)]
pub fn configure_connection(conn: &Connection) -> Result<(), VaultError> {
    db::configure(conn)
}
pub use ed25519_dalek;
pub use error::VaultError;
pub use kdf::{KdfParams, KdfPolicy};
pub use lockout::{AfterFailure, FailedUnlock, Lockout};
pub use secret::{Credential, DataKey, RecoveryKey};
pub use slots::{SlotKind, SLOT_FILE_NAME};

/// Reads a key slot file's bytes as an unlock does before any key derivation: the file,
/// then each slot's KDF parameters, public key and root. For the fuzz targets; returns the
/// number of slots.
#[doc(hidden)]
pub fn check_slot_file(bytes: &[u8]) -> Result<usize, VaultError> {
    let file = SlotFile::parse(bytes)?;
    for slot in &file.slots {
        slot.kdf.params.check_readable()?;
        let _ = slot.root()?;
        let _ = file.find(slot.kind, &slot.owner);
    }
    Ok(file.slots.len())
}
pub use x25519_dalek;

use slots::{Slot, SlotFile};
use x25519_dalek::{PublicKey, StaticSecret};

/// Longest owner name a slot accepts, in bytes.
const MAX_OWNER_LEN: usize = 64;
/// The owner recorded on the recovery slot.
const RECOVERY_OWNER: &str = "recovery";

/// Where a vault lives and how its new slots are protected.
#[derive(Debug, Clone)]
pub struct VaultConfig {
    /// The vault folder.
    pub dir: PathBuf,
    /// Where failed-unlock counts are kept (outside the vault folder).
    pub state_dir: PathBuf,
    /// How new key slots pick their Argon2id parameters.
    pub kdf: KdfPolicy,
}

/// Who unlocked a vault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unlocker {
    User(String),
    Recovery,
}

/// An unlocked vault: an open connection and the data key. Dropping it (or [`Vault::lock`])
/// closes the connection and zeroizes the key.
#[derive(Debug)]
pub struct Vault {
    config: VaultConfig,
    conn: Connection,
    key: DataKey,
    slots: SlotFile,
    unlocker: Unlocker,
    /// Every compartment of the vault; the private key only where this slot holds it.
    compartments: Vec<Held>,
    /// The unlocker's personal signing key (zeroized when the vault locks).
    signing: Option<ed25519_dalek::SigningKey>,
    /// The security log's root key as the unlocker's slot names it.
    root: Option<[u8; 32]>,
    /// The unlocker's slot public key, as it was when it opened.
    own_public: String,
    /// While the unlocker's slot names no root yet: what rewrapping it takes (the
    /// key-encryption key and the slot's private key), zeroized once it is done or at lock.
    rebind: Option<Rebind>,
    /// A MAC key only the unlocker's secret yields (derived from the slot's private key), for
    /// what they leave in the database for their own next unlock (the security log's head).
    head_key: Option<zeroize::Zeroizing<[u8; 32]>>,
    /// The unlocker's slot private key, for keys sealed to this slot outside the slot file
    /// (a restricted patient's key); zeroized when the vault locks.
    agreement: Option<Agreement>,
    /// A shared lock on the folder's `chartroom.lock` for as long as the vault is open, so
    /// that `vault restore` can tell a vault in use from one nobody has open.
    _in_use: Option<fs::File>,
}

/// The file every open vault holds a shared lock on (see [`in_use`]).
pub const IN_USE_FILE_NAME: &str = "chartroom.lock";

/// A shared lock on `dir`'s in-use file (several windows may have one vault open). Best
/// effort: a folder where it cannot be made still opens.
fn hold_in_use(dir: &Path) -> Option<fs::File> {
    let path = dir.join(IN_USE_FILE_NAME);
    let _ = files::private_empty_file(&path);
    let file = fs::OpenOptions::new().read(true).open(&path).ok()?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockShared).ok()?;
    Some(file)
}

/// Whether a Chartroom program has the vault in `dir` open now (it holds the in-use lock).
pub fn in_use(dir: &Path) -> bool {
    let Ok(file) = fs::OpenOptions::new()
        .read(true)
        .open(dir.join(IN_USE_FILE_NAME))
    else {
        return false;
    };
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {
            let _ = rustix::fs::flock(&file, rustix::fs::FlockOperation::Unlock);
            false
        }
        Err(_) => true,
    }
}

/// Copies a backup (its database and slot file, nothing else) into the new private folder
/// `staging`, each file synced, after checking it looks like a vault at all. What the copy
/// holds is checked when it is unlocked.
pub fn stage_backup(from: &Path, staging: &Path) -> Result<(), VaultError> {
    Vault::info(from)?;
    if !from.join(DB_FILE_NAME).is_file() {
        return Err(VaultError::DatabaseMissing);
    }
    fs::create_dir(staging)?;
    files::private_dir(staging)?;
    for name in [DB_FILE_NAME, slots::SLOT_FILE_NAME] {
        let mut source = fs::File::open(from.join(name))?;
        let mut copy = files::private_file_options().open(staging.join(name))?;
        std::io::copy(&mut source, &mut copy)?;
        copy.sync_all()?;
    }
    if let Ok(dir) = fs::File::open(staging) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// A copy of one user's slot as it was, to put back if the change replacing it does not
/// commit.
#[derive(Debug, Clone)]
pub struct SlotBackup(Slot);

/// What rewrapping the unlocker's slot with a root key takes.
struct Rebind(zeroize::Zeroizing<[u8; 32]>, StaticSecret);

impl std::fmt::Debug for Rebind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rebind(..)")
    }
}

/// The unlocker's slot private key (zeroized on drop by `StaticSecret`).
struct Agreement(StaticSecret);

impl std::fmt::Debug for Agreement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Agreement(..)")
    }
}

/// The public keys of one slot, as the security log registers them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotKeys {
    pub kind: SlotKind,
    pub owner: String,
    /// The slot's X25519 public key (base64).
    pub slot_key: String,
    /// The owner's Ed25519 signing public key (base64), if the slot holds one.
    pub signing_key: Option<String>,
}

impl SlotKeys {
    fn of(slot: &Slot) -> SlotKeys {
        SlotKeys {
            kind: slot.kind,
            owner: slot.owner.clone(),
            slot_key: slot.public_key.clone(),
            signing_key: slot.signing.as_ref().map(|s| s.public_key.clone()),
        }
    }
}

/// A compartment as this unlocked vault knows it.
struct Held {
    public: slots::CompartmentPublic,
    secret: Option<StaticSecret>,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held")
            .field("name", &self.public.name)
            .field("epoch", &self.public.epoch)
            .field("held", &self.secret.is_some())
            .finish()
    }
}

/// What [`Vault::set_compartment_holders`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HolderChanges {
    /// Slot owners the compartment was sealed to.
    pub granted: Vec<String>,
    /// Slot owners whose seal was removed.
    pub revoked: Vec<String>,
    /// Slot owners who should hold it but could not be given it: this session does not hold
    /// the compartment. They get it at the next unlock of someone who does.
    pub pending: Vec<String>,
}

/// What `vault info` shows without any password: nothing secret, nothing clinical.
#[derive(Debug, Clone, Serialize)]
pub struct VaultInfo {
    pub format: String,
    pub format_version: u32,
    pub vault_id: String,
    pub created_at: String,
    pub key_epoch: u64,
    pub rekey_pending: bool,
    pub slots: Vec<SlotInfo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SlotInfo {
    pub kind: SlotKind,
    pub owner: String,
    pub created_at: String,
    pub kdf: KdfInfo,
}

#[derive(Debug, Clone, Serialize)]
pub struct KdfInfo {
    pub algorithm: String,
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

/// The steps of a rekey, for tests that stop it part-way as a crash would.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RekeyStep {
    /// The next key is sealed to every slot, the database still has the old key.
    SlotsPrepared,
    /// The database has the new key, the slot file still lists it as pending.
    DatabaseRekeyed,
}

fn validate_owner(owner: &str) -> Result<(), VaultError> {
    if owner.is_empty() || owner.len() > MAX_OWNER_LEN || owner.chars().any(char::is_control) {
        return Err(VaultError::InvalidInput(
            "A user name must be 1 to 64 characters with no control characters.",
        ));
    }
    Ok(())
}

impl Vault {
    /// Reads what can be known about the vault in `dir` without a password.
    pub fn info(dir: &Path) -> Result<VaultInfo, VaultError> {
        let file = SlotFile::read(dir)?;
        Ok(VaultInfo {
            format: file.format.clone(),
            format_version: file.version,
            vault_id: file.vault_id.clone(),
            created_at: file.created_at.to_rfc3339(),
            key_epoch: file.key_epoch,
            rekey_pending: file.slots.iter().any(|s| s.pending.is_some()),
            slots: file
                .slots
                .iter()
                .map(|s| SlotInfo {
                    kind: s.kind,
                    owner: s.owner.clone(),
                    created_at: s.created_at.to_rfc3339(),
                    kdf: KdfInfo {
                        algorithm: s.kdf.algorithm.clone(),
                        memory_kib: s.kdf.params.memory_kib,
                        iterations: s.kdf.params.iterations,
                        parallelism: s.kdf.params.parallelism,
                    },
                })
                .collect(),
        })
    }

    /// True when `dir` holds a vault (its key slot file).
    pub fn exists(dir: &Path) -> bool {
        dir.join(SLOT_FILE_NAME).exists()
    }

    /// Creates a vault in `config.dir` with a first user slot for `owner` and a recovery slot,
    /// and applies `migrations`. Returns the recovery key, which exists nowhere else: the
    /// caller must show it once and then drop it.
    pub fn create(
        config: VaultConfig,
        owner: &str,
        password: &SecretString,
        migrations: &[Migration],
    ) -> Result<(Vault, RecoveryKey), VaultError> {
        validate_owner(owner)?;
        let dir = config.dir.clone();
        if Self::exists(&dir) || dir.join(DB_FILE_NAME).exists() {
            return Err(VaultError::AlreadyExists(dir));
        }
        files::private_dir(&dir)?;
        let result = Self::create_inner(config, owner, password, migrations);
        if result.is_err() && !Self::exists(&dir) {
            // Leave no half-made database behind for the next attempt to trip over.
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let _ = fs::remove_file(dir.join(format!("{DB_FILE_NAME}{suffix}")));
            }
        }
        result
    }

    fn create_inner(
        config: VaultConfig,
        owner: &str,
        password: &SecretString,
        migrations: &[Migration],
    ) -> Result<(Vault, RecoveryKey), VaultError> {
        let mut slots = SlotFile::new(slots::new_vault_id());
        let key = DataKey::generate();
        let recovery = RecoveryKey::generate();
        let params = config.kdf.params()?;
        let user_secret = Credential::Password {
            user: owner,
            password,
        };
        let signing = slots::new_signing_key();
        // The first administrator's signing key is the security log's root, named in both
        // slots from the start.
        let root = signing.verifying_key().to_bytes();
        slots.slots.push(Slot::create_signing(
            &slots.vault_id,
            SlotKind::User,
            owner,
            user_secret.secret_bytes(),
            params,
            &key,
            0,
            Some(&signing),
            Some(&root),
        )?);
        slots.slots.push(Slot::create_signing(
            &slots.vault_id,
            SlotKind::Recovery,
            RECOVERY_OWNER,
            recovery.kdf_input(),
            params,
            &key,
            0,
            None,
            Some(&root),
        )?);
        let own_public = slots.slots[0].public_key.clone();

        files::private_empty_file(&config.dir.join(DB_FILE_NAME))?;
        let mut conn = db::open(&config.dir.join(DB_FILE_NAME), &key, true)?;
        db::migrate(&mut conn, migrations)?;
        conn.execute(
            "INSERT INTO vault_meta (key, value) VALUES ('vault_id', ?1), ('created_at', ?2)",
            rusqlite::params![slots.vault_id, slots.created_at.to_rfc3339()],
        )?;
        // The slot file is written last: until it exists there is no vault.
        slots.write(&config.dir)?;
        let in_use = hold_in_use(&config.dir);
        let vault = Vault {
            config,
            conn,
            key,
            slots,
            unlocker: Unlocker::User(owner.to_owned()),
            compartments: Vec::new(),
            signing: Some(signing),
            root: Some(root),
            own_public,
            rebind: None,
            head_key: None,
            agreement: None,
            _in_use: in_use,
        };
        Ok((vault, recovery))
    }

    /// Unlocks the vault with a user's password or the recovery key, finishing any rekey a
    /// crash interrupted, and applies `migrations`.
    ///
    /// A wrong secret changes nothing in the vault folder; it is counted (outside it) and
    /// repeated failures pause sign-in for that account.
    pub fn unlock(
        config: VaultConfig,
        credential: Credential<'_>,
        migrations: &[Migration],
    ) -> Result<Vault, VaultError> {
        let slots = SlotFile::read(&config.dir)?;
        let db_path = config.dir.join(DB_FILE_NAME);
        if !db_path.exists() {
            return Err(VaultError::DatabaseMissing);
        }
        let (kind, owner, account) = match &credential {
            Credential::Password { user, .. } => (
                SlotKind::User,
                (*user).to_owned(),
                format!("user:{}", account_key(user)),
            ),
            Credential::Recovery(_) => (
                SlotKind::Recovery,
                RECOVERY_OWNER.to_owned(),
                "recovery".to_owned(),
            ),
        };
        // A name with no slot is never kept as typed: it may be a password typed into the
        // wrong field. Its attempts count against one "unknown user" account.
        let found = slots.find(kind, &owner);
        let account = if found.is_none() && kind == SlotKind::User {
            lockout::UNKNOWN_ACCOUNT.to_owned()
        } else {
            account
        };
        let lockout = Lockout::new(&config.dir, &config.state_dir, &slots.vault_id);
        let now = Utc::now();
        if let Err(e) = lockout.check(&account, now) {
            let _ = lockout.record_refused(&account, now);
            return Err(e);
        }

        let mut recorded = account.clone();
        let opened = match found {
            Some(slot) => slot
                .open_identity_kek(&slots.vault_id, credential.secret_bytes())
                .map(|id| (slot, id)),
            None => {
                // The correlation tag costs what opening a real slot costs, so timing does
                // not reveal who has one, and guessing at the tag is no cheaper than at a slot.
                let params = slots
                    .slots
                    .iter()
                    .map(|s| s.kdf.params)
                    .find(|p| p.check_readable().is_ok())
                    .unwrap_or(KdfParams::FLOOR);
                if kind == SlotKind::User {
                    recorded = format!(
                        "unknown:{}",
                        unknown_name_tag(&slots.vault_id, &owner, params)
                    );
                } else {
                    let _ = params.derive(credential.secret_bytes(), &[0u8; kdf::SALT_LEN]);
                }
                Err(VaultError::WrongCredential(None))
            }
        };
        let (slot, (identity, kek)) = match opened {
            Ok(found) => found,
            Err(VaultError::WrongCredential(_)) => {
                let after = lockout.record_failure_as(&account, &recorded, now)?;
                return Err(VaultError::WrongCredential(Some(after)));
            }
            Err(other) => return Err(other),
        };

        let current = slot.unseal(&slots.vault_id, &identity, &slot.sealed)?;
        let pending = match &slot.pending {
            Some(p) => Some(slot.unseal(&slots.vault_id, &identity, p)?),
            None => None,
        };
        let signing = slot.unseal_signing(&slots.vault_id, &identity)?;
        let needs_signing = signing.is_none();
        let new_signing = needs_signing.then(slots::new_signing_key);
        let sealed_signing = match &new_signing {
            Some(key) => Some(slot.seal_signing(&slots.vault_id, key)?),
            None => None,
        };
        // One entry per compartment, and the seals this slot holds must be of the epochs the
        // file lists: a public key added or swapped in (so that writers seal to someone else)
        // is tampering, not a key that has not been handed over.
        let mut names = std::collections::BTreeSet::new();
        if !slots
            .compartments
            .iter()
            .all(|c| names.insert(c.name.as_str()))
        {
            return Err(VaultError::SlotFileInvalid(
                "the key slot file lists a compartment key twice",
            ));
        }
        // A seal of an epoch the file no longer lists (a rotation cut short before its
        // clean-up) is ignored; which public keys are genuine, the security log says.
        let mut compartments = Vec::new();
        for public in &slots.compartments {
            let secret = slot.unseal_compartment(&slots.vault_id, &identity, public)?;
            compartments.push(Held {
                public: public.clone(),
                secret,
            });
        }
        let root = slot.root()?;
        let own_public = slot.public_key.clone();
        let head_key = Some(derive_head_key(&slots.vault_id, &identity));
        let agreement = Some(Agreement(identity.clone()));
        let rebind = if root.is_none() {
            Some(Rebind(kek, identity))
        } else {
            drop(kek);
            drop(identity);
            None
        };

        // Old key first: after a crash inside PRAGMA rekey, SQLite rolls the hot journal back
        // with the key the journal was written under, which is the old one.
        let mut slots = slots;
        let (conn, key) = match db::open(&db_path, &current, false) {
            Ok(conn) => {
                if pending.is_some() {
                    // The rekey never reached the database: forget the prepared key.
                    for s in &mut slots.slots {
                        s.pending = None;
                    }
                    slots.write(&config.dir)?;
                }
                (conn, current)
            }
            Err(VaultError::KeyDoesNotOpenDatabase) if pending.is_some() => {
                let next = pending.expect("checked just above");
                let conn = db::open(&db_path, &next, false)?;
                // The database has the new key: finish what the rekey started.
                promote_pending(&mut slots)?;
                slots.write(&config.dir)?;
                (conn, next)
            }
            Err(e) => return Err(e),
        };
        let mut conn = conn;
        let stored_id: Option<String> = conn
            .query_row(
                "SELECT value FROM vault_meta WHERE key = 'vault_id'",
                [],
                |r| r.get(0),
            )
            .ok();
        if stored_id.as_deref() != Some(slots.vault_id.as_str()) {
            return Err(VaultError::SlotsDoNotMatchDatabase);
        }
        db::migrate(&mut conn, migrations)?;
        // A slot made before personal signatures gets its owner's signing key now.
        if let Some(sealed) = sealed_signing {
            if let Some(index) = slots
                .slots
                .iter()
                .position(|s| s.kind == kind && account_key(&s.owner) == account_key(&owner))
            {
                slots.slots[index].signing = Some(sealed);
                slots.write(&config.dir)?;
            }
        }
        let signing = signing.or(new_signing);
        lockout.record_success(&account)?;
        // A vault made by an earlier version may be readable by other accounts: tighten it.
        // Best effort: a folder owned by someone else keeps its modes rather than failing.
        let _ = files::tighten(&config.dir);
        let unlocker = match kind {
            SlotKind::User => Unlocker::User(owner),
            SlotKind::Recovery => Unlocker::Recovery,
        };
        let in_use = hold_in_use(&config.dir);
        Ok(Vault {
            config,
            conn,
            key,
            slots,
            unlocker,
            compartments,
            signing,
            root,
            own_public,
            rebind,
            head_key,
            agreement,
            _in_use: in_use,
        })
    }

    /// The unlocker's slot private key, for keys sealed to this slot outside the slot file (a
    /// restricted patient's key). None for a vault made in this session. Whoever holds it
    /// opens everything sealed to this slot: keep it in memory only, for the session.
    pub fn own_identity(&self) -> Option<StaticSecret> {
        self.agreement
            .as_ref()
            .map(|Agreement(secret)| secret.clone())
    }

    /// The unlocker's slot public key (base64), as it was when the vault opened.
    pub fn own_slot_public(&self) -> &str {
        &self.own_public
    }

    /// Failed unlocks of this vault not yet written to its audit trail, oldest first.
    pub fn unaudited_failed_unlocks(&self) -> Vec<FailedUnlock> {
        Lockout::new(
            &self.config.dir,
            &self.config.state_dir,
            &self.slots.vault_id,
        )
        .unaudited()
    }

    /// Forgets the first `n` failed unlocks, once the audit trail holds them.
    pub fn forget_failed_unlocks(&self, n: usize) -> Result<(), VaultError> {
        Lockout::new(
            &self.config.dir,
            &self.config.state_dir,
            &self.slots.vault_id,
        )
        .forget_unaudited(n)
    }

    /// Locks the vault: closes the connection (checkpointing the WAL) and zeroizes the key.
    pub fn lock(self) -> Result<(), VaultError> {
        let Vault {
            conn, key, rebind, ..
        } = self;
        drop(rebind);
        let closed = conn.close().map_err(|(_, e)| VaultError::from(e));
        drop(key);
        closed
    }

    /// The open connection. Callers run their own SQL on it; the vault keeps it keyed.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The open connection, for transactions.
    pub fn connection_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    pub fn vault_id(&self) -> &str {
        &self.slots.vault_id
    }

    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    pub fn unlocker(&self) -> &Unlocker {
        &self.unlocker
    }

    /// The owners of user slots.
    pub fn slot_owners(&self) -> Vec<String> {
        self.slots
            .slots
            .iter()
            .filter(|s| s.kind == SlotKind::User)
            .map(|s| s.owner.clone())
            .collect()
    }

    /// Adds a slot so `owner` can unlock with `password`.
    pub fn add_user_slot(
        &mut self,
        owner: &str,
        password: &SecretString,
    ) -> Result<SlotKeys, VaultError> {
        validate_owner(owner)?;
        self.reload_slots()?;
        if self.slots.find(SlotKind::User, owner).is_some() {
            return Err(VaultError::SlotExists(owner.to_owned()));
        }
        let slot = self.new_slot(SlotKind::User, owner, password.expose_bytes())?;
        let keys = SlotKeys::of(&slot);
        let mut next = self.slots.clone();
        next.slots.push(slot);
        self.commit_slots(next)?;
        Ok(keys)
    }

    /// Gives `owner` a slot that opens with `password`: a new one in place of theirs, or a
    /// first one if they have none (an administrator's reset of a password that was lost, or
    /// of an account whose slot was removed). One reload, one write.
    pub fn set_user_slot(
        &mut self,
        owner: &str,
        password: &SecretString,
    ) -> Result<SlotKeys, VaultError> {
        validate_owner(owner)?;
        self.reload_slots()?;
        let slot = self.new_slot(SlotKind::User, owner, password.expose_bytes())?;
        let keys = SlotKeys::of(&slot);
        let mut next = self.slots.clone();
        match self.slot_index(SlotKind::User, owner) {
            Ok(index) => next.slots[index] = slot,
            Err(_) => next.slots.push(slot),
        }
        self.commit_slots(next)?;
        Ok(keys)
    }

    /// Gives `owner` a new password by replacing their slot: new salt, new parameters, a new
    /// key pair (so an old copy of the slot file with the old password opens nothing sealed
    /// after this). The other slots are untouched.
    pub fn change_password(
        &mut self,
        owner: &str,
        password: &SecretString,
    ) -> Result<SlotKeys, VaultError> {
        self.reload_slots()?;
        let index = self.slot_index(SlotKind::User, owner)?;
        let mut slot = self.new_slot(SlotKind::User, owner, password.expose_bytes())?;
        self.carry_compartments(self.slots.slots.get(index), &mut slot)?;
        // Their own change keeps their signing key, so what they signed stays theirs.
        if let (Some(key), Unlocker::User(me)) = (&self.signing, &self.unlocker) {
            if account_key(me) == account_key(owner) {
                slot.signing = Some(slot.seal_signing(&self.slots.vault_id, key)?);
            }
        }
        let keys = SlotKeys::of(&slot);
        let mut next = self.slots.clone();
        next.slots[index] = slot;
        self.commit_slots(next)?;
        if account_key(&self.own_public_owner()) == account_key(owner) {
            self.own_public = keys.slot_key.clone();
        }
        Ok(keys)
    }

    fn own_public_owner(&self) -> String {
        match &self.unlocker {
            Unlocker::User(me) => me.clone(),
            Unlocker::Recovery => String::new(),
        }
    }

    /// Removes `owner`'s slot, so their password no longer opens the vault. Pair with
    /// [`Vault::rekey`] when they may have kept a copy of the files.
    pub fn remove_user_slot(&mut self, owner: &str) -> Result<(), VaultError> {
        self.reload_slots()?;
        let index = self.slot_index(SlotKind::User, owner)?;
        if self
            .slots
            .slots
            .iter()
            .filter(|s| s.kind == SlotKind::User)
            .count()
            <= 1
        {
            return Err(VaultError::LastSlot);
        }
        let mut next = self.slots.clone();
        next.slots.remove(index);
        self.commit_slots(next)
    }

    /// Replaces the recovery key; the old one stops working. Returns the new key, to be shown once.
    /// A recovery slot that is missing (one the security log did not register, removed at
    /// an unlock) is made anew.
    pub fn replace_recovery_key(&mut self) -> Result<(RecoveryKey, SlotKeys), VaultError> {
        self.reload_slots()?;
        let index = self.slot_index(SlotKind::Recovery, RECOVERY_OWNER).ok();
        let recovery = RecoveryKey::generate();
        let mut slot = self.new_slot(SlotKind::Recovery, RECOVERY_OWNER, recovery.kdf_input())?;
        self.carry_compartments(index.and_then(|i| self.slots.slots.get(i)), &mut slot)?;
        // A holder seals the compartments it holds to the new recovery slot at once.
        for public in &self.slots.compartments {
            if slot.compartments.iter().any(|c| c.name == public.name) {
                continue;
            }
            if let Some((_, secret)) = self.compartment_secret(&public.name) {
                let sealed = slot.seal_compartment(&self.slots.vault_id, public, &secret)?;
                slot.compartments.push(sealed);
            }
        }
        let keys = SlotKeys::of(&slot);
        let mut next = self.slots.clone();
        match index {
            Some(index) => next.slots[index] = slot,
            None => next.slots.push(slot),
        }
        self.commit_slots(next)?;
        Ok((recovery, keys))
    }

    /// HMAC-SHA256 of `message` under a key only the unlocker's password (or recovery key)
    /// yields; none for a session that created the vault (it has no unlock to remember).
    pub fn own_mac(&self, message: &[u8]) -> Option<[u8; 32]> {
        let key = self.head_key.as_ref()?;
        // HKDF-Extract is HMAC(salt, ikm): the key as salt, the message as input.
        let (prk, _) = hkdf::Hkdf::<sha2::Sha256>::extract(Some(key.as_ref()), message);
        Some(prk.into())
    }

    /// `owner`'s user slot as the slot file last read has it.
    pub fn slot_backup(&self, owner: &str) -> Option<SlotBackup> {
        self.slots
            .find(SlotKind::User, owner)
            .cloned()
            .map(SlotBackup)
    }

    /// Puts `backup` back in place of its owner's slot (a change that did not commit).
    pub fn restore_slot(&mut self, backup: SlotBackup) -> Result<(), VaultError> {
        self.reload_slots()?;
        let mut next = self.slots.clone();
        let owner = backup.0.owner.clone();
        next.slots.retain(|s| {
            !(s.kind == SlotKind::User && account_key(&s.owner) == account_key(&owner))
        });
        next.slots.push(backup.0);
        self.commit_slots(next)
    }

    /// The security log's root key as the unlocker's slot names it (none for a slot made
    /// before the security log, until [`Vault::bind_root`]).
    pub fn root_key(&self) -> Option<[u8; 32]> {
        self.root
    }

    /// Names `root` in the unlocker's own slot (rewrapping its private key under the same
    /// password), for a slot made before the security log. Only the password's holder can do
    /// this, so nobody can change which root a colleague's slot trusts.
    pub fn bind_root(&mut self, root: [u8; 32]) -> Result<(), VaultError> {
        let Some(Rebind(kek, identity)) = self.rebind.take() else {
            return if self.root == Some(root) {
                Ok(())
            } else {
                Err(VaultError::InvalidInput(
                    "This key slot already names another root key.",
                ))
            };
        };
        self.reload_slots()?;
        let (kind, owner) = match &self.unlocker {
            Unlocker::User(me) => (SlotKind::User, me.clone()),
            Unlocker::Recovery => (SlotKind::Recovery, RECOVERY_OWNER.to_owned()),
        };
        let index = self.slot_index(kind, &owner)?;
        let mut next = self.slots.clone();
        if next.slots[index].public_key != self.own_public {
            return Err(VaultError::SlotFileInvalid(
                "the key slot was replaced while it was open",
            ));
        }
        next.slots[index].wrap_identity(&next.vault_id.clone(), &kek, &identity, Some(&root))?;
        self.commit_slots(next)?;
        self.root = Some(root);
        Ok(())
    }

    /// The public keys of every slot in the slot file as it is now on disk.
    /// The public keys of every slot, as the slot file stood when it was last read.
    pub fn loaded_slot_keys(&self) -> Vec<SlotKeys> {
        self.slots.slots.iter().map(SlotKeys::of).collect()
    }

    pub fn slot_keys(&mut self) -> Result<Vec<SlotKeys>, VaultError> {
        self.reload_slots()?;
        Ok(self.slots.slots.iter().map(SlotKeys::of).collect())
    }

    /// The unlocker's slot as it opened: its public key and signing public key.
    pub fn own_slot_keys(&self) -> SlotKeys {
        let (kind, owner) = match &self.unlocker {
            Unlocker::User(me) => (SlotKind::User, me.clone()),
            Unlocker::Recovery => (SlotKind::Recovery, RECOVERY_OWNER.to_owned()),
        };
        SlotKeys {
            kind,
            owner,
            slot_key: self.own_public.clone(),
            signing_key: self.signing.as_ref().map(|k| {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.encode(k.verifying_key().as_bytes())
            }),
        }
    }

    /// Removes the slot of `owner` whose public key is `slot_key` (one the security log did
    /// not register). Nothing happens if the slot file no longer has it.
    pub fn drop_slot(
        &mut self,
        kind: SlotKind,
        owner: &str,
        slot_key: &str,
    ) -> Result<bool, VaultError> {
        self.reload_slots()?;
        let mut next = self.slots.clone();
        let before = next.slots.len();
        next.slots.retain(|s| {
            !(s.kind == kind
                && account_key(&s.owner) == account_key(owner)
                && s.public_key == slot_key)
        });
        if next.slots.len() == before {
            return Ok(false);
        }
        self.commit_slots(next)?;
        Ok(true)
    }

    /// Makes the slot file list exactly `registered` as the compartments' public keys (name,
    /// epoch, base64 public key), as the security log says they are. Returns whether the
    /// file had to change.
    pub fn restore_compartment_publics(
        &mut self,
        registered: &[(String, u64, String)],
    ) -> Result<bool, VaultError> {
        self.reload_slots()?;
        let wanted: Vec<slots::CompartmentPublic> = registered
            .iter()
            .map(|(name, epoch, key)| slots::CompartmentPublic {
                name: name.clone(),
                epoch: *epoch,
                public_key: key.clone(),
            })
            .collect();
        let same = wanted.len() == self.slots.compartments.len()
            && wanted.iter().all(|w| {
                self.slots
                    .compartments
                    .iter()
                    .any(|c| c.name == w.name && c.epoch == w.epoch && c.public_key == w.public_key)
            });
        if same {
            return Ok(false);
        }
        let mut next = self.slots.clone();
        next.compartments = wanted.clone();
        self.commit_slots(next)?;
        self.compartments.retain(|h| {
            wanted.iter().any(|w| {
                w.name == h.public.name
                    && w.epoch == h.public.epoch
                    && w.public_key == h.public.public_key
            })
        });
        Ok(true)
    }

    /// Gives the slot of `owner` a personal signing key if it has none (a slot made before
    /// signatures, at the upgrade that starts the security log). Returns its public key.
    pub fn give_signing_key(
        &mut self,
        kind: SlotKind,
        owner: &str,
    ) -> Result<Option<String>, VaultError> {
        self.reload_slots()?;
        let index = self.slot_index(kind, owner)?;
        if let Some(s) = &self.slots.slots[index].signing {
            return Ok(Some(s.public_key.clone()));
        }
        let key = slots::new_signing_key();
        let mut next = self.slots.clone();
        let sealed = next.slots[index].seal_signing(&next.vault_id.clone(), &key)?;
        let public = sealed.public_key.clone();
        next.slots[index].signing = Some(sealed);
        self.commit_slots(next)?;
        Ok(Some(public))
    }

    /// The unlocker's personal Ed25519 signing key (none for the recovery key).
    pub fn signing_key(&self) -> Option<&ed25519_dalek::SigningKey> {
        self.signing.as_ref()
    }

    /// The current epoch and public key of compartment `name`, if the vault has one. Anyone
    /// signed in may seal to it.
    pub fn compartment_public(&self, name: &str) -> Option<(u64, [u8; 32])> {
        let c = self.slots.compartments.iter().find(|c| c.name == name)?;
        let public = slots::decode_key(&c.public_key).ok()?;
        Some((c.epoch, public))
    }

    /// Every compartment the slot file lists: (name, epoch, base64 public key).
    pub fn compartment_publics(&self) -> Vec<(String, u64, String)> {
        self.slots
            .compartments
            .iter()
            .map(|c| (c.name.clone(), c.epoch, c.public_key.clone()))
            .collect()
    }

    /// The private key of compartment `name`, if this session's slot holds it (a copy, which
    /// zeroizes itself when dropped).
    pub fn compartment_secret(&self, name: &str) -> Option<(u64, StaticSecret)> {
        let (epoch, _) = self.compartment_public(name)?;
        self.compartments
            .iter()
            .find(|h| h.public.name == name && h.public.epoch == epoch)
            .and_then(|h| h.secret.clone().map(|s| (epoch, s)))
    }

    /// Forgets this session's copy of compartment `name`'s private key (a session that made
    /// the compartment for others, and whose own role may not read it).
    pub fn forget_compartment_secret(&mut self, name: &str) {
        for held in &mut self.compartments {
            if held.public.name == name {
                held.secret = None;
            }
        }
    }

    /// The compartments `owner`'s slot holds at their current epoch.
    pub fn slot_compartments(&self, owner: &str) -> Vec<String> {
        let Some(slot) = self.slots.find(SlotKind::User, owner) else {
            return Vec::new();
        };
        self.slots
            .compartments
            .iter()
            .filter(|c| {
                slot.compartments
                    .iter()
                    .any(|s| s.name == c.name && s.epoch == c.epoch)
            })
            .map(|c| c.name.clone())
            .collect()
    }

    /// Makes compartment `name` (a new X25519 key pair, epoch 0) and seals its private key to
    /// the recovery slot and to each of `holders` that has a slot. The public key reaches the
    /// slot file in the same write, before anything can be sealed to it. The session that
    /// makes a compartment holds its private key until it locks (it just made it), so staff
    /// it adds meanwhile are sealed in at once; later sessions hold it only through a seal.
    pub fn create_compartment(&mut self, name: &str, holders: &[String]) -> Result<(), VaultError> {
        self.reload_slots()?;
        if self.slots.compartments.iter().any(|c| c.name == name) {
            return Err(VaultError::SlotExists(format!("The {name} key")));
        }
        self.install_compartment(name, 0, holders, None)
    }

    /// Makes a new key pair for compartment `name` at `epoch` (in place of any other), seals
    /// it to the recovery slot and to each of `holders` that has a slot, and writes the slot
    /// file once; seals of the other epochs go, except those of `keep_epoch`. This session
    /// holds the new private key.
    fn install_compartment(
        &mut self,
        name: &str,
        epoch: u64,
        holders: &[String],
        keep_epoch: Option<u64>,
    ) -> Result<(), VaultError> {
        let secret = StaticSecret::random_from_rng(rand_core::OsRng);
        let public = slots::CompartmentPublic {
            name: name.to_owned(),
            epoch,
            public_key: slots::encode_key(PublicKey::from(&secret).as_bytes()),
        };
        let mut next = self.slots.clone();
        next.compartments.retain(|c| c.name != name);
        next.compartments.push(public.clone());
        let vault_id = next.vault_id.clone();
        for slot in &mut next.slots {
            slot.compartments
                .retain(|c| c.name != name || Some(c.epoch) == keep_epoch);
            let holds = slot.kind == SlotKind::Recovery
                || holders
                    .iter()
                    .any(|h| account_key(h) == account_key(&slot.owner));
            if holds {
                let sealed = slot.seal_compartment(&vault_id, &public, &secret)?;
                slot.compartments.push(sealed);
            }
        }
        self.commit_slots(next)?;
        self.compartments.retain(|h| h.public.name != name);
        self.compartments.push(Held {
            public,
            secret: Some(secret),
        });
        Ok(())
    }

    /// Rotates compartment `name`: a new key pair at the next epoch, sealed to the recovery
    /// slot and each of `holders` that has a slot; every seal of the old key is removed and
    /// the new public key replaces the old one, in one write. Needs this session to hold the
    /// current private key, which it returns (for re-sealing what was written under it).
    pub fn rotate_compartment(
        &mut self,
        name: &str,
        holders: &[String],
    ) -> Result<StaticSecret, VaultError> {
        self.reload_slots()?;
        let (epoch, old) = self
            .compartment_secret(name)
            .ok_or(VaultError::InvalidInput(
                "Only someone who holds a key can rotate it.",
            ))?;
        // The current seal stays until the rotation has committed (see
        // `prune_compartment_seals`): a crash before then leaves the old key where it was.
        self.install_compartment(name, epoch + 1, holders, Some(epoch))?;
        Ok(old)
    }

    /// Removes every seal of compartment `name` at an epoch other than the current one (after
    /// a rotation has committed).
    pub fn prune_compartment_seals(&mut self, name: &str) -> Result<(), VaultError> {
        self.reload_slots()?;
        let Some((epoch, _)) = self.compartment_public(name) else {
            return Ok(());
        };
        let mut next = self.slots.clone();
        let mut changed = false;
        for slot in &mut next.slots {
            let before = slot.compartments.len();
            slot.compartments
                .retain(|c| c.name != name || c.epoch == epoch);
            changed |= slot.compartments.len() != before;
        }
        if changed {
            self.commit_slots(next)?;
        }
        Ok(())
    }

    /// Makes the slots holding compartment `name` be exactly the recovery slot and
    /// `holders`: removes the seal from every other slot, and seals it to each holder that
    /// lacks it when this session holds the compartment (otherwise they are `pending`).
    /// One reload, and one write when something changed.
    pub fn set_compartment_holders(
        &mut self,
        name: &str,
        holders: &[String],
    ) -> Result<HolderChanges, VaultError> {
        self.reload_slots()?;
        let mut changes = HolderChanges::default();
        let Some(public) = self
            .slots
            .compartments
            .iter()
            .find(|c| c.name == name)
            .cloned()
        else {
            return Ok(changes);
        };
        let secret = self.compartment_secret(name).map(|(_, s)| s);
        let mut next = self.slots.clone();
        let vault_id = next.vault_id.clone();
        for slot in &mut next.slots {
            let should = slot.kind == SlotKind::Recovery
                || holders
                    .iter()
                    .any(|h| account_key(h) == account_key(&slot.owner));
            let has = slot
                .compartments
                .iter()
                .any(|c| c.name == name && c.epoch == public.epoch);
            if should && !has {
                match &secret {
                    Some(secret) => {
                        slot.compartments.retain(|c| c.name != name);
                        slot.compartments
                            .push(slot.seal_compartment(&vault_id, &public, secret)?);
                        changes.granted.push(slot.owner.clone());
                    }
                    None => changes.pending.push(slot.owner.clone()),
                }
            } else if !should && slot.compartments.iter().any(|c| c.name == name) {
                slot.compartments.retain(|c| c.name != name);
                changes.revoked.push(slot.owner.clone());
            }
        }
        if !changes.granted.is_empty() || !changes.revoked.is_empty() {
            self.commit_slots(next)?;
        }
        Ok(changes)
    }

    /// Seals every compartment this session holds, and `old` held, to `slot` (a slot that
    /// replaces `old`: a password change keeps what the user could read).
    fn carry_compartments(&self, old: Option<&Slot>, slot: &mut Slot) -> Result<(), VaultError> {
        let Some(old) = old else { return Ok(()) };
        for public in &self.slots.compartments {
            let had = old
                .compartments
                .iter()
                .any(|c| c.name == public.name && c.epoch == public.epoch);
            if let (true, Some((_, secret))) = (had, self.compartment_secret(&public.name)) {
                let sealed = slot.seal_compartment(&self.slots.vault_id, public, &secret)?;
                slot.compartments.push(sealed);
            }
        }
        Ok(())
    }

    /// The raw data key as 64 hex digits, for standard SQLCipher tools
    /// (`PRAGMA key = "x'<hex>'"`). Whoever holds it reads every record: callers must
    /// restrict and audit this.
    pub fn export_key(&self) -> SecretString {
        self.key.to_hex()
    }

    /// Writes a complete, consistent copy of the vault into `target` (a new folder) while it
    /// stays open: SQLite's online backup of the encrypted database (the copy is encrypted
    /// with the same key, page by page, never decrypted to disk) and the current key slots.
    /// The copy is built in a temporary folder beside `target` and renamed into place, so an
    /// interrupted backup leaves no half-written vault under that name. The copy opens with
    /// the same passwords and recovery key as the vault at the time of the backup.
    pub fn backup_to(&self, target: &Path) -> Result<u64, VaultError> {
        if target.exists() {
            return Err(VaultError::InvalidInput(
                "The backup folder already exists; name a new folder.",
            ));
        }
        let parent = target
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !parent.is_dir() {
            return Err(VaultError::InvalidInput(
                "The folder to put the backup in does not exist.",
            ));
        }
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "vault".into());
        let staging = parent.join(format!(".{name}.partial-{}", std::process::id()));
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir(&staging)?;
        let result = (|| {
            files::private_dir(&staging)?;
            let dest_path = staging.join(DB_FILE_NAME);
            files::private_empty_file(&dest_path)?;
            let mut dest = db::open(&dest_path, &self.key, true)?;
            // The copy is a single file: no WAL beside it.
            dest.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))?;
            {
                let backup = rusqlite::backup::Backup::new(&self.conn, &mut dest)?;
                backup.run_to_completion(256, std::time::Duration::from_millis(5), None)?;
            }
            db::check_key(&dest)?;
            let ok: String = dest.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
            if ok != "ok" {
                return Err(VaultError::DatabaseDamaged);
            }
            dest.close().map_err(|(_, e)| VaultError::from(e))?;
            // The slot file as it is now, not as this session loaded it: a password changed
            // in another window since must open the backup too. One of another key epoch
            // (a rekey in between) does not belong with this copy: sign in again.
            let current = SlotFile::read(&self.config.dir)?;
            if current.vault_id != self.slots.vault_id || current.key_epoch != self.slots.key_epoch
            {
                return Err(VaultError::Busy);
            }
            current.write(&staging)?;
            let size = fs::metadata(&dest_path)?.len();
            fs::rename(&staging, target)?;
            if let Ok(dir) = fs::File::open(parent) {
                let _ = dir.sync_all();
            }
            Ok(size)
        })();
        if result.is_err() {
            let _ = fs::remove_dir_all(&staging);
        }
        result
    }

    /// Rotates the data key: the database is re-encrypted under a new random key with
    /// `PRAGMA rekey` and the new key is sealed to every slot. A crash at any point leaves a
    /// vault that opens (with the old key or the new), and the next unlock tidies up.
    pub fn rekey(&mut self) -> Result<(), VaultError> {
        self.rekey_until(None)
    }

    /// [`Vault::rekey`], stopping after `stop` as if the process died there.
    #[doc(hidden)]
    pub fn rekey_until(&mut self, stop: Option<RekeyStep>) -> Result<(), VaultError> {
        let next_key = DataKey::generate();
        let next_epoch = self.slots.key_epoch + 1;
        let mut prepared = self.slots.clone();
        for slot in &mut prepared.slots {
            slot.pending = Some(slot.seal(&prepared.vault_id, &next_key, next_epoch)?);
        }
        prepared.write(&self.config.dir)?;
        self.slots = prepared;
        if stop == Some(RekeyStep::SlotsPrepared) {
            return Ok(());
        }

        if let Err(e) = self.rekey_database(&next_key) {
            // Nothing reached the database; take the prepared key back out of the slots.
            let mut undone = self.slots.clone();
            for slot in &mut undone.slots {
                slot.pending = None;
            }
            undone.write(&self.config.dir)?;
            self.slots = undone;
            return Err(e);
        }
        self.key = next_key;
        if stop == Some(RekeyStep::DatabaseRekeyed) {
            return Ok(());
        }

        let mut done = self.slots.clone();
        promote_pending(&mut done)?;
        done.write(&self.config.dir)?;
        self.slots = done;
        Ok(())
    }

    fn rekey_database(&mut self, next_key: &DataKey) -> Result<(), VaultError> {
        // SQLCipher cannot rekey in WAL mode: move every frame into the database, rekey under
        // a rollback journal (one atomic transaction), then return to WAL.
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("delete") {
            return Err(VaultError::Busy);
        }
        let rekeyed = db::keyed(&self.conn, "rekey", next_key);
        let back: rusqlite::Result<String> =
            self.conn
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0));
        rekeyed?;
        back?;
        db::check_key(&self.conn)
    }

    fn new_slot(&self, kind: SlotKind, owner: &str, secret: &[u8]) -> Result<Slot, VaultError> {
        let params = self.config.kdf.params()?;
        Slot::create_signing(
            &self.slots.vault_id,
            kind,
            owner,
            secret,
            params,
            &self.key,
            self.slots.key_epoch,
            None,
            self.root.as_ref(),
        )
    }

    fn slot_index(&self, kind: SlotKind, owner: &str) -> Result<usize, VaultError> {
        self.slots
            .slots
            .iter()
            .position(|s| s.kind == kind && account_key(&s.owner) == account_key(owner))
            .ok_or_else(|| VaultError::NoSuchSlot(owner.to_owned()))
    }

    /// Re-reads the slot file before a change, so a change made meanwhile by another window
    /// or process (a user added from the command line) is kept rather than overwritten.
    /// Callers serialise slot changes across processes by holding the database's write lock.
    fn reload_slots(&mut self) -> Result<(), VaultError> {
        let fresh = SlotFile::read(&self.config.dir)?;
        if fresh.vault_id != self.slots.vault_id {
            return Err(VaultError::SlotsDoNotMatchDatabase);
        }
        if fresh.key_epoch != self.slots.key_epoch
            || fresh.slots.iter().any(|s| s.pending.is_some())
        {
            // Another process rekeyed (or is rekeying): the key this session holds is no
            // longer the one to seal into a new slot.
            return Err(VaultError::Busy);
        }
        self.slots = fresh;
        Ok(())
    }

    fn commit_slots(&mut self, next: SlotFile) -> Result<(), VaultError> {
        next.write(&self.config.dir)?;
        self.slots = next;
        Ok(())
    }
}

fn derive_head_key(vault_id: &str, identity: &StaticSecret) -> zeroize::Zeroizing<[u8; 32]> {
    let secret = zeroize::Zeroizing::new(identity.to_bytes());
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    hkdf::Hkdf::<sha2::Sha256>::new(None, secret.as_ref())
        .expand_multi_info(
            &[b"chartroom/own-mac/v1", vault_id.as_bytes()],
            key.as_mut(),
        )
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    key
}

fn promote_pending(slots: &mut SlotFile) -> Result<(), VaultError> {
    for slot in &mut slots.slots {
        slot.sealed = slot.pending.take().ok_or(VaultError::SlotFileInvalid(
            "a rekey left a key slot without the new key",
        ))?;
    }
    slots.key_epoch += 1;
    Ok(())
}

/// Reading a password's bytes for the KDF, named so each use is visible.
trait ExposeBytes {
    fn expose_bytes(&self) -> &[u8];
}

impl ExposeBytes for SecretString {
    fn expose_bytes(&self) -> &[u8] {
        use secrecy::ExposeSecret;
        self.expose_secret().as_bytes()
    }
}

#[cfg(test)]
mod tests;
