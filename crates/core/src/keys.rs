//! Keys decide what a role can read: clinical fields are sealed field by field under content
//! keys, and a content key opens only with the clinical compartment's private key, which the
//! vault seals to physicians, nurses and the recovery key alone (docs/security.md).
//!
//! The keyring belongs to the connection: it is registered as two SQL functions,
//! `cr_seal(value, table, column, row uuid, patient uuid)` for the one writer of each table and
//! `cr_open(blob, table, column, row uuid, patient uuid)` for its readers, so a field is
//! sealed and opened where its SQL names it, and the keys go when the connection closes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use aes_gcm::Aes256Gcm;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use chartroom_vault::x25519_dalek::{PublicKey, StaticSecret};
use hkdf::Hkdf;
use rand_core::{OsRng, RngCore};
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::roles::Role;

/// The compartment of clinical content.
pub const CLINICAL: &str = "clinical";

const FIELD_FORMAT: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + 8 + NONCE_LEN;
const AD_FIELD: &[u8] = b"chartroom/field/v1";
const AD_CONTENT_KEY: &[u8] = b"chartroom/content-key/v1";
const AD_RETIRED_KEY: &[u8] = b"chartroom/retired-key/v1";
/// Random 96-bit nonces: a content key is retired well before a collision becomes likely.
const MAX_FIELDS_PER_KEY: u64 = 1 << 32;

/// The compartments a role's slot holds.
pub fn compartments_of(role: Role) -> &'static [&'static str] {
    match role {
        Role::Physician | Role::Nurse => &[CLINICAL],
        Role::Admin | Role::Auditor => &[AUDIT_TEXT],
        Role::FrontDesk => &[],
    }
}

/// Every compartment, in the order a sign-in settles them.
pub const COMPARTMENTS: [&str; 2] = [CLINICAL, AUDIT_TEXT];

pub use crate::audit_text::AUDIT_TEXT;

/// Why a field could not be sealed or opened. Carried out of SQLite as a user-function error
/// and turned into a [`crate::CoreError`] with these words.
#[derive(Debug, thiserror::Error)]
pub enum FieldError {
    #[error("Your key for clinical content has not been handed over yet: it is handed over the next time a physician or nurse signs in (or someone signs in with the recovery key).")]
    NotHandedOver,
    #[error("A clinical field ({0}) does not open: it was changed outside Chartroom, or moved from another record. Restore the vault from a backup and report it.")]
    Tampered(String),
    #[error("A clinical field ({0}) is stored without encryption. An administrator must sign in once to finish upgrading this vault.")]
    Clear(String),
    #[error("Clinical content cannot be written in this session: it holds no key to write with.")]
    NoWriteKey,
    #[error("The clinic has no key for the audit trail's reasons yet: an administrator must sign in once with this version of Chartroom.")]
    NoAuditTextKey,
    #[error("This restricted chart's key could not be found or opened in this session: someone on its care team must sign in once.")]
    NoPatientKey,
}

impl FieldError {
    /// The error a failing `cr_seal` or `cr_open` gave, recognised again from the message
    /// SQLite carries back out of the statement.
    pub(crate) fn from_message(message: &str) -> Option<FieldError> {
        if message == FieldError::NotHandedOver.to_string() {
            Some(FieldError::NotHandedOver)
        } else if message == FieldError::NoWriteKey.to_string() {
            Some(FieldError::NoWriteKey)
        } else if message == FieldError::NoAuditTextKey.to_string() {
            Some(FieldError::NoAuditTextKey)
        } else if message == FieldError::NoPatientKey.to_string() {
            Some(FieldError::NoPatientKey)
        } else if let Some(rest) = message.strip_prefix("A clinical field (") {
            let what = rest.split(')').next().unwrap_or_default().to_owned();
            Some(if message.contains("without encryption") {
                FieldError::Clear(what)
            } else {
                FieldError::Tampered(what)
            })
        } else {
            None
        }
    }
}

struct WriteKey {
    id: i64,
    /// Kept for copying the keyring onto a benchmark's raw connection.
    #[cfg_attr(not(feature = "bench"), allow(dead_code))]
    key: Zeroizing<[u8; 32]>,
    /// The key's AES-256-GCM schedule, made once.
    cipher: Aes256Gcm,
    uses: u64,
}

impl WriteKey {
    fn new(id: i64, key: Zeroizing<[u8; 32]>) -> WriteKey {
        let cipher = field_cipher(&key);
        WriteKey {
            id,
            key,
            cipher,
            uses: 0,
        }
    }
}

/// A field cipher: AES-256-GCM, whose key schedule is made once per content key.
fn field_cipher(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(aes_gcm::Key::<Aes256Gcm>::from_slice(key))
}

struct SealedKey {
    compartment: String,
    epoch: u64,
    ephemeral: [u8; 32],
    nonce: [u8; NONCE_LEN],
    sealed: Vec<u8>,
}

/// What this session can seal to and open.
pub(crate) struct Keyring {
    vault_id: String,
    /// The clinical compartment's epoch and public key, once the vault has one.
    public: Option<(u64, PublicKey)>,
    /// Its private key, if this session's slot holds it.
    secret: Option<StaticSecret>,
    /// Every content key row seen, still sealed.
    sealed: HashMap<i64, SealedKey>,
    /// Content keys opened so far, as their AES-256-GCM schedules.
    opened: HashMap<i64, Aes256Gcm>,
    /// The highest `content_keys.seq` loaded.
    loaded_through: i64,
    write: Option<WriteKey>,
    /// Who signs this session's security log entries, and with which key.
    signer: Option<(String, chartroom_vault::ed25519_dalek::SigningKey)>,
    /// The private keys of the compartment's earlier epochs, opened through the chain of
    /// retired keys (each sealed to the next epoch's public key), for fields a rotation has
    /// not re-sealed yet; None until loaded.
    retired: Option<HashMap<u64, StaticSecret>>,
    /// The security log's length and head as this session last verified it.
    pub(crate) verified_head: Option<(u64, [u8; 32])>,
    /// The audit trail's free text: sealed by anyone, opened by its holders.
    pub(crate) audit: crate::audit_text::Keys,
    /// Restricted patients' keys.
    pub(crate) patients: crate::patient_keys::PatientKeys,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("public", &self.public.as_ref().map(|(e, _)| e))
            .field("holds", &self.secret.is_some())
            .field("content_keys", &self.sealed.len())
            .finish_non_exhaustive()
    }
}

/// The keyring as the session and the SQL functions share it.
pub(crate) type SharedKeyring = Arc<Mutex<Keyring>>;

pub(crate) fn lock(keys: &SharedKeyring) -> MutexGuard<'_, Keyring> {
    // A panic while holding the lock leaves no half-made state worth refusing over.
    keys.lock().unwrap_or_else(|e| e.into_inner())
}

/// The clinical private key of `epoch` from a keyring's parts (borrowed apart from its
/// patient keys, which open through it).
fn self_clinical(
    public: &Option<(u64, PublicKey)>,
    secret: &Option<StaticSecret>,
    retired: &Option<HashMap<u64, StaticSecret>>,
    epoch: u64,
) -> Option<StaticSecret> {
    match public {
        Some((current, _)) if *current == epoch => secret.clone(),
        _ => retired.as_ref()?.get(&epoch).cloned(),
    }
}

/// Length-prefixed concatenation: no two different field lists give the same bytes.
fn ad(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

fn content_key_wrap(shared: &[u8], ephemeral: &[u8; 32], public: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(ephemeral);
    salt[32..].copy_from_slice(public);
    let mut key = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(&salt), shared)
        .expand(AD_CONTENT_KEY, key.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    key
}

fn retired_key_ad(vault_id: &str, compartment: &str, epoch: u64) -> Vec<u8> {
    ad(&[
        AD_RETIRED_KEY,
        vault_id.as_bytes(),
        compartment.as_bytes(),
        &epoch.to_be_bytes(),
    ])
}

/// A retired key as `retired_keys` stores it: (ephemeral, nonce, sealed).
type SealedRetired = ([u8; 32], [u8; NONCE_LEN], Vec<u8>);

/// Seals `secret` (the private key of `epoch`) to `public` (the next epoch's), for the
/// `retired_keys` table: (ephemeral, nonce, sealed).
fn seal_retired(
    vault_id: &str,
    compartment: &str,
    epoch: u64,
    secret: &StaticSecret,
    public: &PublicKey,
) -> Result<SealedRetired, FieldError> {
    let ephemeral = StaticSecret::random_from_rng(OsRng);
    let ephemeral_public = PublicKey::from(&ephemeral);
    let shared = ephemeral.diffie_hellman(public);
    let wrap = content_key_wrap(
        shared.as_bytes(),
        ephemeral_public.as_bytes(),
        public.as_bytes(),
    );
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let plain = Zeroizing::new(secret.to_bytes());
    let sealed = ChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(wrap.as_slice()))
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plain.as_ref(),
                aad: &retired_key_ad(vault_id, compartment, epoch),
            },
        )
        .map_err(|_| FieldError::NoWriteKey)?;
    Ok((*ephemeral_public.as_bytes(), nonce, sealed))
}

/// Opens compartment `name`'s earlier epochs' private keys from `retired_keys`, newest first
/// from `secret` (the key of `epoch`), each checked against the public key the security log
/// registered for its epoch (a planted row opens nothing).
fn retired_chain(
    conn: &Connection,
    vault_id: &str,
    name: &str,
    secret: StaticSecret,
    epoch: u64,
) -> rusqlite::Result<HashMap<u64, StaticSecret>> {
    let mut out = HashMap::new();
    let logged = crate::security_log::compartment_publics(conn, name).unwrap_or_default();
    let mut holder = secret;
    let mut e = epoch;
    while e > 0 {
        let row: Option<(Vec<u8>, Vec<u8>, Vec<u8>)> = conn
            .prepare_cached(
                "SELECT ephemeral, nonce, sealed FROM retired_keys WHERE compartment = ?1 AND epoch = ?2",
            )?
            .query_row(params![name, (e - 1) as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        let Some((ephemeral, nonce, sealed)) = row else {
            break;
        };
        let (Ok(ephemeral), Ok(nonce)) = (
            <[u8; 32]>::try_from(ephemeral),
            <[u8; NONCE_LEN]>::try_from(nonce),
        ) else {
            break;
        };
        let public = PublicKey::from(&holder);
        let shared = holder.diffie_hellman(&PublicKey::from(ephemeral));
        let wrap = content_key_wrap(shared.as_bytes(), &ephemeral, public.as_bytes());
        let Ok(plain) = ChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(wrap.as_slice()))
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &sealed,
                    aad: &retired_key_ad(vault_id, name, e - 1),
                },
            )
        else {
            break;
        };
        let plain = Zeroizing::new(plain);
        let Ok(bytes) = <[u8; 32]>::try_from(plain.as_slice()) else {
            break;
        };
        let old = StaticSecret::from(bytes);
        let registered = logged.get(&(e - 1)).and_then(|k| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.decode(k).ok()
        });
        if registered.as_deref() != Some(PublicKey::from(&old).as_bytes().as_slice()) {
            break;
        }
        out.insert(e - 1, old.clone());
        holder = old;
        e -= 1;
    }
    Ok(out)
}

fn content_key_ad(vault_id: &str, compartment: &str, epoch: u64, id: i64) -> Vec<u8> {
    ad(&[
        AD_CONTENT_KEY,
        vault_id.as_bytes(),
        compartment.as_bytes(),
        &epoch.to_be_bytes(),
        &(id as u64).to_be_bytes(),
    ])
}

/// A field's associated data, built on the stack (it is made for every field read).
struct FieldAd {
    buf: [u8; 192],
    len: usize,
}

impl std::ops::Deref for FieldAd {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

fn field_ad(table: &str, column: &str, row: &[u8], patient: &[u8], key_id: i64) -> FieldAd {
    let mut out = FieldAd {
        buf: [0; 192],
        len: 0,
    };
    for part in [
        AD_FIELD,
        table.as_bytes(),
        column.as_bytes(),
        row,
        patient,
        &(key_id as u64).to_be_bytes(),
    ] {
        // Table and column names are ours and short; the uuids are 16 bytes.
        let part = &part[..part.len().min(40)];
        out.buf[out.len..out.len + 4].copy_from_slice(&(part.len() as u32).to_be_bytes());
        out.buf[out.len + 4..out.len + 4 + part.len()].copy_from_slice(part);
        out.len += 4 + part.len();
    }
    out
}

impl Keyring {
    pub(crate) fn new(vault: &chartroom_vault::Vault) -> Keyring {
        let mut ring = Keyring {
            vault_id: vault.vault_id().to_owned(),
            public: None,
            secret: None,
            sealed: HashMap::new(),
            opened: HashMap::new(),
            loaded_through: 0,
            write: None,
            signer: None,
            retired: None,
            verified_head: None,
            audit: Default::default(),
            patients: Default::default(),
        };
        ring.patients.slots = crate::patient_keys::slot_publics(vault);
        ring.patients.own = vault.own_identity().map(|secret| {
            let holder = match vault.unlocker() {
                chartroom_vault::Unlocker::User(name) => crate::patient_keys::user_holder(name),
                chartroom_vault::Unlocker::Recovery => {
                    crate::patient_keys::RECOVERY_HOLDER.to_owned()
                }
            };
            (holder, secret)
        });
        ring.take_compartment(vault);
        if let Some(key) = vault.signing_key() {
            let name = match vault.unlocker() {
                chartroom_vault::Unlocker::User(name) => name.clone(),
                chartroom_vault::Unlocker::Recovery => {
                    crate::security_log::RECOVERY_SIGNER.to_owned()
                }
            };
            ring.signer = Some((name, key.clone()));
        }
        ring
    }

    /// Names the signer as the `users` table spells them (the unlock had it as typed).
    pub(crate) fn name_signer(&mut self, name: &str) {
        if let Some((n, _)) = &mut self.signer {
            name.clone_into(n);
        }
    }

    /// Takes the clinical compartment's keys from the vault (after it made or was handed one).
    pub(crate) fn take_compartment(&mut self, vault: &chartroom_vault::Vault) {
        self.public = vault
            .compartment_public(CLINICAL)
            .map(|(epoch, public)| (epoch, PublicKey::from(public)));
        self.secret = vault.compartment_secret(CLINICAL).map(|(_, s)| s);
        self.retired = None;
        self.audit.public = vault
            .compartment_public(AUDIT_TEXT)
            .map(|(epoch, public)| (epoch, PublicKey::from(public)));
        self.audit.secrets.clear();
        if let Some((epoch, secret)) = vault.compartment_secret(AUDIT_TEXT) {
            self.audit.secrets.insert(epoch, secret);
        }
        self.audit.retired_loaded = false;
    }

    /// Seals a free text of the audit trail (a break-the-glass reason, an export's purpose or
    /// recipient) to the audit-text compartment.
    pub(crate) fn seal_text(&mut self, plain: &str) -> Result<String, FieldError> {
        let vault_id = self.vault_id.clone();
        self.audit
            .seal(&vault_id, plain)
            .ok_or(FieldError::NoAuditTextKey)
    }

    /// `text` with its sealed parts opened where this session may, withheld where not.
    pub(crate) fn reveal(&self, text: &str) -> String {
        self.audit.reveal(&self.vault_id, text)
    }

    pub(crate) fn holds_audit_text(&self) -> bool {
        self.audit.holds()
    }

    /// Opens a restricted patient's text; None where this session holds no key for it.
    pub(crate) fn open_patient_text(
        &mut self,
        patient: &[u8; 16],
        what: &str,
        token: &str,
    ) -> Option<String> {
        let clinical = |e: u64| self_clinical(&self.public, &self.secret, &self.retired, e);
        self.patients
            .open(&self.vault_id, patient, what, token, &clinical)
    }

    /// A new key for a restricted patient (see [`crate::patient_keys::PatientKeys::make`]).
    pub(crate) fn make_patient_key(
        &mut self,
        patient: &[u8; 16],
        members: &[String],
    ) -> Vec<crate::patient_keys::SealRow> {
        let clinical = self.public.map(|(e, p)| (e, *p.as_bytes()));
        self.patients
            .make(&self.vault_id, patient, members, clinical)
    }

    /// The patient's current key sealed to `holder` (a member's slot, or the current clinical
    /// key when `holder` is None); None where there is nothing to add or nothing to add with.
    pub(crate) fn grant_patient_key(
        &mut self,
        patient: &[u8; 16],
        holder: Option<&str>,
    ) -> Option<crate::patient_keys::SealRow> {
        let (holder, to) = match holder {
            Some(h) => (h.to_owned(), None),
            None => {
                let (e, p) = self.public?;
                (crate::patient_keys::clinical_holder(e), Some(*p.as_bytes()))
            }
        };
        let clinical = |e: u64| self_clinical(&self.public, &self.secret, &self.retired, e);
        self.patients
            .grant(&self.vault_id, patient, &holder, to, &clinical)
    }

    /// Opens the clinical key's earlier epochs (see [`retired_chain`]).
    fn load_retired(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        let (Some(secret), Some((epoch, _))) = (self.secret.clone(), self.public) else {
            self.retired = Some(HashMap::new());
            return Ok(());
        };
        self.retired = Some(retired_chain(
            conn,
            &self.vault_id,
            CLINICAL,
            secret,
            epoch,
        )?);
        Ok(())
    }

    pub(crate) fn holds_clinical(&self) -> bool {
        self.secret.is_some()
    }

    pub(crate) fn has_compartment(&self) -> bool {
        self.public.is_some()
    }

    /// Loads the content keys written since the last look (by this or another process).
    pub(crate) fn refresh(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        if self.retired.is_none() && self.secret.is_some() {
            self.load_retired(conn)?;
        }
        if !self.audit.retired_loaded {
            if let Some((epoch, secret)) = self
                .audit
                .public
                .and_then(|(e, _)| Some((e, self.audit.secrets.get(&e)?.clone())))
            {
                let earlier = retired_chain(conn, &self.vault_id, AUDIT_TEXT, secret, epoch)?;
                self.audit.secrets.extend(earlier);
            }
            self.audit.retired_loaded = true;
        }
        self.patients.refresh(conn)?;
        let mut stmt = conn.prepare_cached(
            "SELECT seq, id, compartment, epoch, ephemeral, nonce, sealed FROM content_keys WHERE seq > ?1 ORDER BY seq",
        )?;
        let mut rows = stmt.query([self.loaded_through])?;
        while let Some(r) = rows.next()? {
            let seq: i64 = r.get(0)?;
            let ephemeral: Vec<u8> = r.get(4)?;
            let nonce: Vec<u8> = r.get(5)?;
            if let (Ok(ephemeral), Ok(nonce)) = (ephemeral.try_into(), nonce.try_into()) {
                self.sealed.insert(
                    r.get(1)?,
                    SealedKey {
                        compartment: r.get(2)?,
                        epoch: r.get::<_, i64>(3)? as u64,
                        ephemeral,
                        nonce,
                        sealed: r.get(6)?,
                    },
                );
            }
            self.loaded_through = self.loaded_through.max(seq);
        }
        Ok(())
    }

    /// Gets a content key to write with: for someone who holds the compartment, their own
    /// (made once, reused across sign-ins); otherwise one for this session only, sealed to
    /// the compartment's public key and never readable by this session's slot afterwards.
    /// Writes its row in its own statement: call it outside (before) the operation's
    /// transaction, so a rolled-back operation cannot take the key's row with it.
    pub(crate) fn prepare_write(
        &mut self,
        conn: &Connection,
        owner: Option<&str>,
        now: &str,
    ) -> Result<(), crate::CoreError> {
        if self
            .write
            .as_ref()
            .is_some_and(|w| w.uses < MAX_FIELDS_PER_KEY)
        {
            return Ok(());
        }
        let Some((epoch, public)) = self.public else {
            return Err(FieldError::NoWriteKey.into());
        };
        self.refresh(conn)?;
        if let (Some(owner), true, None) = (owner, self.secret.is_some(), &self.write) {
            let listed: Vec<i64> = conn
                .prepare_cached(
                    "SELECT id FROM content_keys WHERE compartment = ?1 AND epoch = ?2 AND owner = ?3 ORDER BY seq DESC",
                )?
                .query_map(params![CLINICAL, epoch as i64, owner], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            // A holder's own key is derived from the compartment's private key, so a row
            // planted under their name by someone who can only seal to the public key (which
            // anyone can) is recognised and never written with; the newest genuine one is.
            for id in listed {
                let derived = self.own_key(owner, epoch, id);
                if let (Ok(key), Some(derived)) = (self.unseal_content_key(id), derived) {
                    if key.as_slice() == derived.as_slice() {
                        self.opened.insert(id, field_cipher(&key));
                        self.write = Some(WriteKey::new(id, key));
                        return Ok(());
                    }
                }
            }
        }
        let id = (OsRng.next_u64() >> 1) as i64;
        let key = match owner.and_then(|o| self.own_key(o, epoch, id)) {
            Some(own) => own,
            None => {
                let mut key = Zeroizing::new([0u8; 32]);
                OsRng.fill_bytes(key.as_mut());
                key
            }
        };
        let ephemeral = StaticSecret::random_from_rng(OsRng);
        let ephemeral_public = PublicKey::from(&ephemeral);
        let shared = ephemeral.diffie_hellman(&public);
        let wrap = content_key_wrap(
            shared.as_bytes(),
            ephemeral_public.as_bytes(),
            public.as_bytes(),
        );
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let sealed = ChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(wrap.as_slice()))
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: key.as_ref(),
                    aad: &content_key_ad(&self.vault_id, CLINICAL, epoch, id),
                },
            )
            .map_err(|_| FieldError::NoWriteKey)?;
        let keep_owner = owner.filter(|_| self.secret.is_some());
        conn.execute(
            "INSERT INTO content_keys (id, compartment, epoch, owner, ephemeral, nonce, sealed, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                id,
                CLINICAL,
                epoch as i64,
                keep_owner,
                ephemeral_public.as_bytes().as_slice(),
                nonce.as_slice(),
                sealed,
                now
            ],
        )?;
        // What this session seals it may read back (it had the text a moment ago); what
        // others sealed opens only with the compartment's private key.
        self.opened.insert(id, field_cipher(&key));
        self.write = Some(WriteKey::new(id, key));
        Ok(())
    }

    /// A holder's own content key `id`: HKDF-SHA256 of the compartment's private key, bound to
    /// the vault, the owner, the epoch and the id. None without the private key.
    fn own_key(&self, owner: &str, epoch: u64, id: i64) -> Option<Zeroizing<[u8; 32]>> {
        let secret = self.secret.as_ref()?;
        let ikm = Zeroizing::new(secret.to_bytes());
        let mut key = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(None, ikm.as_ref())
            .expand(
                &ad(&[
                    b"chartroom/own-content-key/v1",
                    self.vault_id.as_bytes(),
                    chartroom_vault::account_key(owner).as_bytes(),
                    &epoch.to_be_bytes(),
                    &(id as u64).to_be_bytes(),
                ]),
                key.as_mut(),
            )
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Some(key)
    }

    /// Opens content key `id` with the compartment's private key.
    fn unseal_content_key(&self, id: i64) -> Result<Zeroizing<[u8; 32]>, FieldError> {
        let current_secret = self.secret.as_ref().ok_or(FieldError::NotHandedOver)?;
        let sealed = self
            .sealed
            .get(&id)
            .ok_or_else(|| FieldError::Tampered("its key is missing".into()))?;
        let current = self.public.map(|(e, _)| e);
        let secret = if sealed.compartment != CLINICAL {
            None
        } else if Some(sealed.epoch) == current {
            Some(current_secret)
        } else {
            self.retired.as_ref().and_then(|r| r.get(&sealed.epoch))
        };
        let Some(secret) = secret else {
            return Err(FieldError::Tampered(
                "its key is of another compartment".into(),
            ));
        };
        let public = PublicKey::from(secret);
        let shared = secret.diffie_hellman(&PublicKey::from(sealed.ephemeral));
        let wrap = content_key_wrap(shared.as_bytes(), &sealed.ephemeral, public.as_bytes());
        let plain = Zeroizing::new(
            ChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(wrap.as_slice()))
                .decrypt(
                    Nonce::from_slice(&sealed.nonce),
                    Payload {
                        msg: &sealed.sealed,
                        aad: &content_key_ad(&self.vault_id, &sealed.compartment, sealed.epoch, id),
                    },
                )
                .map_err(|_| FieldError::Tampered("its key was changed".into()))?,
        );
        let key: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| FieldError::Tampered("its key was changed".into()))?;
        Ok(Zeroizing::new(key))
    }

    fn seal(
        &mut self,
        table: &str,
        column: &str,
        row: &[u8],
        patient: &[u8],
        plain: &[u8],
    ) -> Result<Vec<u8>, FieldError> {
        let write = self.write.as_mut().ok_or(FieldError::NoWriteKey)?;
        if write.uses >= MAX_FIELDS_PER_KEY {
            return Err(FieldError::NoWriteKey);
        }
        write.uses += 1;
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let ciphertext = write
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: &field_ad(table, column, row, patient, write.id),
                },
            )
            .map_err(|_| FieldError::NoWriteKey)?;
        let mut out = Vec::with_capacity(HEADER_LEN + ciphertext.len());
        out.push(FIELD_FORMAT);
        out.extend_from_slice(&(write.id as u64).to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    fn open(
        &mut self,
        table: &str,
        column: &str,
        row: &[u8],
        patient: &[u8],
        blob: &[u8],
    ) -> Result<String, FieldError> {
        let what = || format!("{table}.{column}");
        if blob.len() < HEADER_LEN + TAG_LEN || blob[0] != FIELD_FORMAT {
            return Err(FieldError::Tampered(what()));
        }
        let id = u64::from_be_bytes(blob[1..9].try_into().expect("8 bytes")) as i64;
        if !self.opened.contains_key(&id) {
            let key = self.unseal_content_key(id)?;
            self.opened.insert(id, field_cipher(&key));
        }
        let cipher = self.opened.get(&id).ok_or(FieldError::NotHandedOver)?;
        let plain = cipher
            .decrypt(
                Nonce::from_slice(&blob[9..HEADER_LEN]),
                Payload {
                    msg: &blob[HEADER_LEN..],
                    aad: &field_ad(table, column, row, patient, id),
                },
            )
            .map_err(|_| FieldError::Tampered(what()))?;
        String::from_utf8(plain).map_err(|_| FieldError::Tampered(what()))
    }
}

/// For the benchmarks: this session's keys registered on another connection to the same
/// database (a raw connection, or its plain copy), so the charting benchmark reads and writes
/// sealed fields outside the Session as the Session does.
#[cfg(feature = "bench")]
pub fn install_copy(session: &crate::Session, conn: &Connection) -> rusqlite::Result<()> {
    let from = lock(&session.keys);
    let copy = Keyring {
        vault_id: from.vault_id.clone(),
        public: from.public,
        secret: from.secret.clone(),
        sealed: HashMap::new(),
        opened: from.opened.clone(),
        loaded_through: 0,
        write: from
            .write
            .as_ref()
            .map(|w| WriteKey::new(w.id, w.key.clone())),
        signer: None,
        retired: None,
        verified_head: None,
        audit: Default::default(),
        patients: Default::default(),
    };
    drop(from);
    let mut copy = copy;
    copy.refresh(conn)?;
    install(conn, &Arc::new(Mutex::new(copy)))
}

/// For the benchmarks' baseline: a `cr_open` that returns its (clear) value as it is, and a
/// `cr_seal` that stores it as it is, on a copy whose sealed columns were opened once, so the
/// same SQL runs without any field decryption.
#[cfg(feature = "bench")]
pub fn install_clear(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DIRECTONLY;
    // A restricted chart's sealed demographics stay shut on the baseline (its placeholders
    // are read): the same SQL runs, with nothing to open.
    conn.create_scalar_function("cr_popen", 3, flags, |_| Ok(None::<String>))?;
    for name in ["cr_open", "cr_seal"] {
        conn.create_scalar_function(name, 5, flags, |ctx| {
            Ok(match ctx.get_raw(0) {
                ValueRef::Null => None,
                ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Real(f) => Some(f.to_string()),
                ValueRef::Integer(i) => Some(i.to_string()),
                ValueRef::Blob(_) => None,
            })
        })?;
    }
    Ok(())
}

/// For the benchmarks' baseline: replaces every sealed field of `conn` (which has this
/// session's keys, see [`install_copy`]) by its text.
#[cfg(feature = "bench")]
pub fn open_every_field(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch("DROP TRIGGER IF EXISTS notes_signed_are_final")?;
    for (table, columns) in crate::schema::SEALED_COLUMNS {
        let sets = columns
            .iter()
            .map(|c| format!("{c} = {}", open_sql(table, c)))
            .collect::<Vec<_>>()
            .join(", ");
        conn.execute_batch(&format!("UPDATE {table} SET {sets}"))?;
    }
    Ok(())
}

/// What opening one field costs, in µs, without SQLite around it: a whole field open, and
/// the two AEADs alone on a vital sign's value (why fields use AES-256-GCM).
#[cfg(feature = "bench")]
pub fn field_open_costs() -> (f64, f64, f64) {
    const N: u32 = 10_000;
    let per_call = |mut f: Box<dyn FnMut() + '_>| {
        let t = std::time::Instant::now();
        (0..N).for_each(|_| f());
        t.elapsed().as_secs_f64() * 1e6 / f64::from(N)
    };
    let secret = StaticSecret::random_from_rng(OsRng);
    let public = PublicKey::from(&secret);
    let db = Connection::open_in_memory().expect("opens");
    db.execute_batch(crate::schema::CONTENT_KEYS_SQL)
        .expect("table");
    db.execute_batch(crate::schema::PATIENT_KEYS_FOR_TESTS_SQL)
        .expect("tables");
    let mut ring = Keyring {
        vault_id: "bench".into(),
        public: Some((0, public)),
        secret: Some(secret),
        sealed: HashMap::new(),
        opened: HashMap::new(),
        loaded_through: 0,
        write: None,
        signer: None,
        retired: None,
        verified_head: None,
        audit: Default::default(),
        patients: Default::default(),
    };
    ring.prepare_write(&db, Some("dr"), "now").expect("key");
    let (row, patient) = ([1; 16], [2; 16]);
    let blob = ring
        .seal("observations", "value", &row, &patient, b"72.5")
        .expect("seals");
    let field = per_call(Box::new(|| {
        ring.open("observations", "value", &row, &patient, &blob)
            .expect("opens");
    }));
    let key = [7u8; 32];
    let aad = field_ad("observations", "value", &row, &patient, 5);
    let nonce = Nonce::from_slice(&[0; 12]);
    let payload = |msg| Payload { msg, aad: &aad };
    let chacha = ChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(&key));
    let sealed = chacha.encrypt(nonce, payload(b"72.5")).expect("seals");
    let chacha_open = per_call(Box::new(|| {
        ChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(&key))
            .decrypt(nonce, payload(&sealed))
            .expect("opens");
    }));
    let aes = field_cipher(&key);
    let sealed = aes.encrypt(nonce, payload(b"72.5")).expect("seals");
    let aes_open = per_call(Box::new(|| {
        aes.decrypt(nonce, payload(&sealed)).expect("opens");
    }));
    (field, chacha_open, aes_open)
}

/// A keyring for `vault`'s session, registered on its connection.
pub(crate) fn install_for(vault: &chartroom_vault::Vault) -> rusqlite::Result<SharedKeyring> {
    let keys = Arc::new(Mutex::new(Keyring::new(vault)));
    install(vault.connection(), &keys)?;
    Ok(keys)
}

fn text_arg<'a>(ctx: &'a Context<'_>, i: usize) -> rusqlite::Result<&'a str> {
    ctx.get_raw(i)
        .as_str()
        .map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))
}

fn uuid_arg<'a>(ctx: &'a Context<'_>, i: usize, what: &str) -> rusqlite::Result<&'a [u8]> {
    match ctx.get_raw(i) {
        ValueRef::Blob(b) if b.len() == 16 => Ok(b),
        _ => Err(user_error(FieldError::Tampered(format!(
            "{what} has no global id"
        )))),
    }
}

fn patient_arg(ctx: &Context<'_>, i: usize) -> rusqlite::Result<[u8; 16]> {
    match ctx.get_raw(i) {
        ValueRef::Blob(b) => <[u8; 16]>::try_from(b)
            .map_err(|_| user_error(FieldError::Tampered("the patient has no global id".into()))),
        _ => Err(user_error(FieldError::Tampered(
            "the patient has no global id".into(),
        ))),
    }
}

fn user_error(e: FieldError) -> rusqlite::Error {
    rusqlite::Error::UserFunctionError(Box::new(e))
}

/// Registers `cr_seal` and `cr_open` on `conn`, holding `keys` until the connection closes.
/// Direct-only: no trigger or view can call them.
pub(crate) fn install(conn: &Connection, keys: &SharedKeyring) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DIRECTONLY;
    let ring = Arc::clone(keys);
    conn.create_scalar_function("cr_seal", 5, flags, move |ctx| {
        let plain: Zeroizing<Vec<u8>> = Zeroizing::new(match ctx.get_raw(0) {
            ValueRef::Null => return Ok(None),
            ValueRef::Text(t) => t.to_vec(),
            ValueRef::Real(f) => f.to_string().into_bytes(),
            ValueRef::Integer(i) => i.to_string().into_bytes(),
            ValueRef::Blob(_) => return Err(user_error(FieldError::NoWriteKey)),
        });
        let table = text_arg(ctx, 1)?;
        let column = text_arg(ctx, 2)?;
        let row = uuid_arg(ctx, 3, "the record")?;
        let patient = uuid_arg(ctx, 4, "the patient")?;
        lock(&ring)
            .seal(table, column, row, patient, &plain)
            .map(Some)
            .map_err(user_error)
    })?;
    let ring = Arc::clone(keys);
    conn.create_scalar_function("cr_open", 5, flags, move |ctx| {
        let table = text_arg(ctx, 1)?;
        let column = text_arg(ctx, 2)?;
        match ctx.get_raw(0) {
            ValueRef::Null => Ok(None),
            ValueRef::Blob(blob) => {
                let row = uuid_arg(ctx, 3, "the record")?;
                let patient = uuid_arg(ctx, 4, "the patient")?;
                lock(&ring)
                    .open(table, column, row, patient, blob)
                    .map(Some)
                    .map_err(user_error)
            }
            _ => Err(user_error(FieldError::Clear(format!("{table}.{column}")))),
        }
    })?;
    // Restricted patients' texts and keys (crate::patient_keys).
    let ring = Arc::clone(keys);
    conn.create_scalar_function("cr_pseal", 3, flags, move |ctx| {
        let patient = patient_arg(ctx, 0)?;
        let what = text_arg(ctx, 1)?;
        let plain = match ctx.get_raw(2) {
            ValueRef::Null => return Ok(None),
            ValueRef::Text(t) => Zeroizing::new(String::from_utf8_lossy(t).into_owned()),
            _ => return Err(user_error(FieldError::NoWriteKey)),
        };
        let keys = lock(&ring);
        keys.patients
            .seal(&keys.vault_id, &patient, what, &plain)
            .map(Some)
            .ok_or_else(|| user_error(FieldError::NoPatientKey))
    })?;
    let ring = Arc::clone(keys);
    conn.create_scalar_function("cr_popen", 3, flags, move |ctx| {
        // Anything but a sealed text (NULL, the clear history of an open chart) opens to NULL.
        let token = match ctx.get_raw(2) {
            ValueRef::Text(t)
                if t.starts_with(crate::patient_keys::PATIENT_TEXT.prefix.as_bytes()) =>
            {
                String::from_utf8_lossy(t).into_owned()
            }
            _ => return Ok(None),
        };
        let patient = patient_arg(ctx, 0)?;
        let what = text_arg(ctx, 1)?;
        Ok(lock(&ring).open_patient_text(&patient, what, &token))
    })?;
    let ring = Arc::clone(keys);
    conn.create_scalar_function("cr_pkey", 2, flags, move |ctx| {
        let patient = patient_arg(ctx, 0)?;
        let members: Vec<String> = serde_json::from_str(text_arg(ctx, 1)?)
            .map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))?;
        let rows = lock(&ring).make_patient_key(&patient, &members);
        serde_json::to_string(&rows).map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))
    })?;
    let ring = Arc::clone(keys);
    conn.create_scalar_function("cr_pkey_grant", 2, flags, move |ctx| {
        let patient = patient_arg(ctx, 0)?;
        let holder = match ctx.get_raw(1) {
            ValueRef::Text(t) => Some(crate::patient_keys::user_holder(&String::from_utf8_lossy(
                t,
            ))),
            _ => None,
        };
        let rows: Vec<_> = lock(&ring)
            .grant_patient_key(&patient, holder.as_deref())
            .into_iter()
            .collect();
        serde_json::to_string(&rows).map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))
    })?;
    // The security log's signer: the session's own key, never leaving the keyring.
    let ring = Arc::clone(keys);
    conn.create_scalar_function("cr_sign", 1, flags, move |ctx| {
        let message = match ctx.get_raw(0) {
            ValueRef::Blob(b) => b.to_vec(),
            _ => return Err(user_error(FieldError::NoWriteKey)),
        };
        let keys = lock(&ring);
        let (_, key) = keys
            .signer
            .as_ref()
            .ok_or_else(|| user_error(FieldError::NoWriteKey))?;
        use chartroom_vault::ed25519_dalek::Signer as _;
        Ok(key.sign(&message).to_bytes().to_vec())
    })?;
    let ring = Arc::clone(keys);
    conn.create_scalar_function("cr_signer_name", 0, flags, move |_| {
        let keys = lock(&ring);
        let (name, _) = keys
            .signer
            .as_ref()
            .ok_or_else(|| user_error(FieldError::NoWriteKey))?;
        Ok(name.clone())
    })?;
    let ring = Arc::clone(keys);
    conn.create_scalar_function("cr_signer_key", 0, flags, move |_| {
        let keys = lock(&ring);
        let (_, key) = keys
            .signer
            .as_ref()
            .ok_or_else(|| user_error(FieldError::NoWriteKey))?;
        use base64::Engine as _;
        Ok(base64::engine::general_purpose::STANDARD.encode(key.verifying_key().as_bytes()))
    })?;
    Ok(())
}

/// The SQL that opens `table.column` in a statement over a patient-owned `table` (the
/// runtime twin of [`open_field!`], for code that walks [`crate::schema::SEALED_COLUMNS`]).
#[cfg(any(test, feature = "bench"))]
pub(crate) fn open_sql(table: &str, column: &str) -> String {
    field_sql("cr_open", table, column)
}

/// The SQL that seals the clear value of `table.column` in place.
pub(crate) fn seal_sql(table: &str, column: &str) -> String {
    field_sql("cr_seal", table, column)
}

fn field_sql(function: &str, table: &str, column: &str) -> String {
    format!(
        "{function}({table}.{column}, '{table}', '{column}', {table}.uuid, (SELECT p.uuid FROM patients p WHERE p.id = {table}.patient_id))"
    )
}

/// The SQL that opens `$table.$column` in a `SELECT … FROM $table` of a patient-owned table.
macro_rules! open_field {
    ($table:literal, $column:literal) => {
        concat!(
            "cr_open(",
            $table,
            ".",
            $column,
            ", '",
            $table,
            "', '",
            $column,
            "', ",
            $table,
            ".uuid, (SELECT p.uuid FROM patients p WHERE p.id = ",
            $table,
            ".patient_id))"
        )
    };
}
pub(crate) use open_field;

#[cfg(test)]
mod tests {
    use super::*;

    fn ring_with(secret: Option<StaticSecret>, public: PublicKey) -> Keyring {
        Keyring {
            vault_id: "v".into(),
            public: Some((0, public)),
            secret,
            sealed: HashMap::new(),
            opened: HashMap::new(),
            loaded_through: 0,
            write: None,
            signer: None,
            retired: None,
            verified_head: None,
            audit: Default::default(),
            patients: Default::default(),
        }
    }

    fn conn() -> Connection {
        let conn = Connection::open_in_memory().expect("opens");
        conn.execute_batch(crate::schema::CONTENT_KEYS_SQL)
            .expect("table");
        conn.execute_batch(crate::schema::PATIENT_KEYS_FOR_TESTS_SQL)
            .expect("tables");
        conn
    }

    #[test]
    fn a_field_opens_only_in_its_own_place_and_only_for_a_holder() {
        let secret = StaticSecret::random_from_rng(OsRng);
        let public = PublicKey::from(&secret);
        let db = conn();
        // A writer without the private key (an import) seals to the public key.
        let mut writer = ring_with(None, public);
        writer
            .prepare_write(&db, Some("admin"), "t")
            .expect("write key");
        let blob = writer
            .seal("notes", "text", &[1; 16], &[2; 16], b"HIV positive")
            .expect("seals");
        assert!(!blob.windows(3).any(|w| w == b"HIV"));
        // It reads back what it wrote this session, nothing else.
        assert!(writer
            .open("notes", "text", &[1; 16], &[2; 16], &blob)
            .is_ok());
        let mut next_session = ring_with(None, public);
        next_session.refresh(&db).expect("loads");
        assert!(matches!(
            next_session.open("notes", "text", &[1; 16], &[2; 16], &blob),
            Err(FieldError::NotHandedOver)
        ));

        let mut reader = ring_with(Some(secret), public);
        reader.refresh(&db).expect("loads");
        assert_eq!(
            reader
                .open("notes", "text", &[1; 16], &[2; 16], &blob)
                .expect("opens"),
            "HIV positive"
        );
        for (table, column, row, patient) in [
            ("notes", "plan", [1; 16], [2; 16]),
            ("problems", "text", [1; 16], [2; 16]),
            ("notes", "text", [9; 16], [2; 16]),
            ("notes", "text", [1; 16], [9; 16]),
        ] {
            assert!(
                matches!(
                    reader.open(table, column, &row, &patient, &blob),
                    Err(FieldError::Tampered(_))
                ),
                "{table}.{column} moved"
            );
        }
        let mut flipped = blob.clone();
        *flipped.last_mut().expect("bytes") ^= 1;
        assert!(reader
            .open("notes", "text", &[1; 16], &[2; 16], &flipped)
            .is_err());

        // Someone else's key pair opens nothing.
        let other = StaticSecret::random_from_rng(OsRng);
        let mut outsider = ring_with(Some(other), public);
        outsider.refresh(&db).expect("loads");
        assert!(outsider
            .open("notes", "text", &[1; 16], &[2; 16], &blob)
            .is_err());
    }

    #[test]
    fn a_holder_reuses_their_own_content_key_and_a_writer_without_the_key_gets_a_new_one() {
        let secret = StaticSecret::random_from_rng(OsRng);
        let public = PublicKey::from(&secret);
        let db = conn();
        let count = |db: &Connection| -> i64 {
            db.query_row("SELECT count(*) FROM content_keys", [], |r| r.get(0))
                .expect("counts")
        };
        for _ in 0..3 {
            let mut ring = ring_with(Some(secret.clone()), public);
            ring.refresh(&db).expect("loads");
            ring.prepare_write(&db, Some("dr.lee"), "t")
                .expect("write key");
        }
        assert_eq!(count(&db), 1, "one key per holder");
        for _ in 0..2 {
            let mut ring = ring_with(None, public);
            ring.prepare_write(&db, Some("admin"), "t")
                .expect("write key");
        }
        assert_eq!(
            count(&db),
            3,
            "one per session for a writer who cannot read"
        );
    }
}

#[cfg(test)]
thread_local! {
    /// Rows per batch and batches before stopping, for tests that stop the upgrade as a
    /// crash would.
    pub(crate) static UPGRADE_STEPS: std::cell::Cell<Option<(i64, Option<usize>)>> =
        const { std::cell::Cell::new(None) };
}

/// The enabled users whose role holds compartment `name`.
///
/// With the security log started, a holder must also hold the role in the log as this
/// session verified it: a role written into the table (or by a trigger, or a row forged into
/// the log after the unlock) hands nobody a key.
fn holders(
    conn: &Connection,
    state: Option<&crate::security_log::State>,
    name: &str,
) -> Result<Vec<String>, crate::CoreError> {
    let table = holders_in_table(conn, name)?;
    let Some(state) = state.filter(|s| s.root.is_some()) else {
        return Ok(table);
    };
    Ok(table
        .into_iter()
        .filter(|user| {
            state.user(user).is_some_and(|u| {
                u.enabled && compartments_of(u.role).contains(&name) && u.slot_key.is_some()
            })
        })
        .collect())
}

fn holders_in_table(conn: &Connection, name: &str) -> Result<Vec<String>, crate::CoreError> {
    // Account names compare trimmed and without case (as slots do): an account holds the key
    // only when every row that names it has a role that holds it, so a second row "dr.x "
    // added by hand cannot lend its role to the slot of "dr.x".
    let mut by_account: std::collections::BTreeMap<String, (String, bool)> = Default::default();
    for (user, role, enabled) in crate::users::user_rows(conn)? {
        let holds = enabled
            && role
                .parse::<Role>()
                .is_ok_and(|role| compartments_of(role).contains(&name));
        by_account
            .entry(chartroom_vault::account_key(&user))
            .or_insert((user, true))
            .1 &= holds;
    }
    Ok(by_account
        .into_values()
        .filter(|(_, holds)| *holds)
        .map(|(user, _)| user)
        .collect())
}

/// Records that the database key must rotate (a user was disabled, or their password reset),
/// in the transaction of the change that calls for it.
pub(crate) fn owe_rotation(
    conn: &Connection,
    reason: &str,
    at: &str,
    by: &str,
) -> Result<(), crate::CoreError> {
    conn.execute(
        "INSERT INTO key_rotation (id, reason, requested_at, requested_by) VALUES (1, ?1, ?2, ?3)
         ON CONFLICT (id) DO UPDATE SET reason = key_rotation.reason || '; ' || excluded.reason",
        params![reason, at, by],
    )?;
    Ok(())
}

/// Records that compartment `name` must rotate (someone who held it was disabled, lost the
/// role that reads it, or had their password reset), in the transaction of that change. A
/// rotation already under way is asked for again: the new one re-seals what is left too.
pub(crate) fn owe_compartment_rotation(
    conn: &Connection,
    name: &str,
    reason: &str,
    at: &str,
    by: &str,
) -> Result<(), crate::CoreError> {
    conn.execute(
        "INSERT INTO compartment_rotation (compartment, reason, requested_at, requested_by) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (compartment) DO UPDATE SET reason = compartment_rotation.reason || '; ' || excluded.reason,
             rotated_to = NULL",
        params![name, reason, at, by],
    )?;
    Ok(())
}

/// Signs compartment `name`'s current epoch and public key (just made) into the security log,
/// in the slot change's transaction.
fn log_compartment_public(
    vault: &chartroom_vault::Vault,
    name: &str,
    at: &str,
) -> Result<(u64, [u8; 32]), crate::CoreError> {
    let (epoch, public) = vault
        .compartment_public(name)
        .ok_or(FieldError::NoWriteKey)?;
    use base64::Engine as _;
    crate::security_log::append(
        vault.connection(),
        at,
        crate::security_log::Fact::Compartment {
            name: name.to_owned(),
            epoch,
            public_key: base64::engine::general_purpose::STANDARD.encode(public),
        },
    )?;
    Ok((epoch, public))
}

/// Whether compartment `name`'s public key is in the security log.
pub(crate) fn compartment_exists(conn: &Connection, name: &str) -> Result<bool, crate::CoreError> {
    Ok(conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM security_log WHERE kind = 'compartment' AND subject = ?1)",
        [name],
        |r| r.get(0),
    )?)
}

/// Whether the vault has a clinical compartment yet (its public key is in the security log
/// or in content keys written under it).
pub(crate) fn clinical_compartment_exists(conn: &Connection) -> Result<bool, crate::CoreError> {
    Ok(conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM security_log WHERE kind = 'compartment' AND subject = 'clinical')
             OR EXISTS (SELECT 1 FROM content_keys WHERE compartment = 'clinical')",
        [],
        |r| r.get(0),
    )?)
}

/// Whether the clinical key's rotation is owed, and the epoch made for it if any.
pub(crate) fn clinical_rotation_owed(
    conn: &Connection,
) -> Result<Option<(String, Option<u64>)>, crate::CoreError> {
    Ok(conn
        .query_row(
            "SELECT reason, rotated_to FROM compartment_rotation WHERE compartment = 'clinical'",
            [],
            |r| Ok((r.get(0)?, r.get::<_, Option<i64>>(1)?.map(|e| e as u64))),
        )
        .optional()?)
}

fn rotation_owed(conn: &Connection) -> Result<Option<String>, crate::CoreError> {
    Ok(conn
        .query_row("SELECT reason FROM key_rotation WHERE id = 1", [], |r| {
            r.get(0)
        })
        .optional()?)
}

fn upgrade_pending(conn: &Connection) -> Result<bool, crate::CoreError> {
    Ok(conn
        .query_row(
            "SELECT done_at IS NULL FROM field_encryption WHERE id = 1",
            [],
            |r| r.get::<_, bool>(0),
        )
        .optional()?
        .unwrap_or(false))
}

/// Whether compartment `name`'s rotation is owed, and the epoch made for it if any.
fn rotation_owed_for(
    conn: &Connection,
    name: &str,
) -> Result<Option<(String, Option<u64>)>, crate::CoreError> {
    Ok(conn
        .query_row(
            "SELECT reason, rotated_to FROM compartment_rotation WHERE compartment = ?1",
            [name],
            |r| Ok((r.get(0)?, r.get::<_, Option<i64>>(1)?.map(|e| e as u64))),
        )
        .optional()?)
}

impl crate::Session {
    /// Whether this session reads compartment `name` by its role (or is the recovery key).
    fn reads(&self, name: &str) -> bool {
        matches!(self.actor, crate::session::Actor::Recovery)
            || compartments_of(self.role()).contains(&name)
    }

    /// After an unlock: makes the clinical compartment when the vault has none and this
    /// session needs it, hands keys over (or takes them back) as the users' roles say, gets a
    /// key to write with, and seals what an earlier version left in clear.
    pub(crate) fn settle_keys(&mut self) -> Result<(), crate::CoreError> {
        let role = self.role();
        let recovery = matches!(self.actor, crate::session::Actor::Recovery);
        let conn = self.connection()?;
        let pending = upgrade_pending(conn)?;
        let holder = !recovery && compartments_of(role).contains(&CLINICAL);
        if pending && !(recovery || role == Role::Admin) {
            return Err(crate::CoreError::Conflict(
                "This vault was made by an earlier version of Chartroom. An administrator must sign in once to finish upgrading it; then sign in again.".into(),
            ));
        }
        if !lock(&self.keys).has_compartment() && (holder || recovery || pending) {
            self.make_compartment(CLINICAL)?;
        }
        // The audit trail's words are sealed from the first sign-in of anyone who may write
        // or read them (the front desk writes none).
        if lock(&self.keys).audit.public.is_none() && (recovery || role != Role::FrontDesk) {
            self.make_compartment(AUDIT_TEXT)?;
        }
        self.settle_key_holders()?;
        let name = self.signed_in().user;
        let now = crate::format_time(self.clock.now());
        let conn = self.connection()?;
        {
            let mut keys = lock(&self.keys);
            keys.refresh(conn)?;
            // Their own key when they hold the compartment; one for this session when it
            // has not reached them yet (they write what they may, and read it once handed over).
            if (holder || recovery) && keys.has_compartment() {
                keys.prepare_write(conn, (!recovery).then_some(name.as_str()), &now)?;
            }
        }
        if pending {
            self.seal_what_was_clear(None)?;
        }
        self.seal_clear_audit_text()?;
        self.settle_patient_keys()?;
        // A rotation owed (or cut short) is done by the next session holding the key.
        self.rotate_clinical_if_owed(None)?;
        self.rotate_audit_text_if_owed()?;
        // A rotation a crash cut short is finished by the next session that may rotate.
        if self.role().allows(crate::Permission::ManageKeys) {
            // Best effort: another window holding the vault open makes it wait again.
            let _ = self.rotate_if_owed();
        }
        Ok(())
    }

    /// Rotates the database key if a disable or a password reset asked for it: afterwards an
    /// old copy of the slot file with the old password opens nothing current. The rekey is
    /// crash-safe on its own (docs/security.md); the owed rotation stays recorded until it
    /// is done, so a `kill -9` in between is finished at the next administrator sign-in.
    pub(crate) fn rotate_if_owed(&mut self) -> Result<bool, crate::CoreError> {
        let Some(reason) = rotation_owed(self.connection()?)? else {
            return Ok(false);
        };
        self.rekey_because(&reason)?;
        self.connection()?
            .execute("DELETE FROM key_rotation WHERE id = 1", [])?;
        Ok(true)
    }

    /// The security log as it stands, verified from the head this session verified before
    /// (signatures of newer entries only); None while the log has not started. A log that no
    /// longer verifies stops whatever asked (and the next unlock says why).
    pub(crate) fn verified_state(
        &mut self,
    ) -> Result<Option<crate::security_log::State>, crate::CoreError> {
        let root = self.vault()?.root_key().map(|r| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(r)
        });
        let trusted = lock(&self.keys).verified_head;
        let conn = self.connection()?;
        if crate::security_log::head(conn)?.is_none() && root.is_none() {
            return Ok(None);
        }
        let state =
            crate::security_log::verify_from(conn, root.as_deref(), trusted).map_err(|b| {
                crate::CoreError::Integrity(format!(
                    "The clinic's security log does not verify ({b}); sign in again to see why."
                ))
            })?;
        {
            let mut ring = lock(&self.keys);
            ring.verified_head = Some((state.len, state.head));
            ring.patients.slots = crate::patient_keys::slot_publics_from_log(&state);
        }
        Ok(Some(state))
    }

    /// Rotates the clinical key if a rotation is owed and this session holds it: a new key
    /// pair (sealed to the physicians, nurses and recovery key, the old one's seals removed,
    /// its public key in the security log, the old private key kept sealed to the new one),
    /// then every field under an older key re-sealed a batch at a time. Resumable: killed
    /// part-way, the next holder's sign-in goes on. Returns whether it finished a rotation.
    pub(crate) fn rotate_clinical_if_owed(
        &mut self,
        stop_after: Option<usize>,
    ) -> Result<bool, crate::CoreError> {
        let Some((reason, rotated_to)) = clinical_rotation_owed(self.connection()?)? else {
            return Ok(false);
        };
        if !lock(&self.keys).holds_clinical() {
            return Ok(false);
        }
        let name = self.signed_in().user;
        let recovery = matches!(self.actor, crate::session::Actor::Recovery);
        let owner = (!recovery).then_some(name.clone());
        let epoch = match rotated_to {
            Some(epoch) => epoch,
            None => self.new_epoch(CLINICAL, &reason)?,
        };
        let now = crate::format_time(self.clock.now());
        {
            let conn = self.connection()?;
            let mut keys = lock(&self.keys);
            keys.refresh(conn)?;
            keys.prepare_write(conn, owner.as_deref(), &now)?;
        }
        #[cfg(test)]
        let (batch, stop_after) = UPGRADE_STEPS
            .with(|s| s.get())
            .unwrap_or((20_000, stop_after));
        #[cfg(not(test))]
        let batch = 20_000;
        let expired = self.expired();
        let vault = self.vault.as_mut().ok_or(expired)?;
        let Some(fields) =
            crate::schema::reseal_old_fields(vault.connection_mut(), epoch, batch, stop_after)?
        else {
            return Ok(false);
        };
        // The restricted charts' keys were sealed to the old clinical key too: each gets a
        // new one, in the transaction that ends the rotation.
        let at = crate::format_time(self.clock.now());
        let keys = Arc::clone(&self.keys);
        let expired = self.expired();
        let vault = self.vault.as_mut().ok_or(expired)?;
        let tx = vault
            .connection_mut()
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        lock(&keys).refresh(&tx)?;
        let charts = crate::chart::patient::rekey_restricted_charts(&tx, &at)?;
        let done = tx.execute(
            "DELETE FROM compartment_rotation WHERE compartment = 'clinical' AND rotated_to = ?1",
            [epoch as i64],
        )?;
        tx.commit()?;
        self.record(
            &crate::audit::Op::execute("key.rotate")
                .object("Compartment", CLINICAL)
                .detail(format!(
                    "clinical key rotated to epoch {epoch}: {fields} fields re-sealed, {charts} restricted charts given new keys ({reason})"
                )),
        )?;
        Ok(done > 0)
    }

    /// Rotates the audit-text key if a rotation is owed and this session holds it. Nothing is
    /// re-sealed: the words already written stay under the epoch they were sealed to (the
    /// audit entries that carry them are hash-chained and cannot change), and the holders
    /// open them through the retired keys; what is written from now on is sealed to a key
    /// that whoever lost their trust never held. Returns whether it rotated.
    pub(crate) fn rotate_audit_text_if_owed(&mut self) -> Result<bool, crate::CoreError> {
        let Some((reason, rotated_to)) = rotation_owed_for(self.connection()?, AUDIT_TEXT)? else {
            return Ok(false);
        };
        if !lock(&self.keys).holds_audit_text() {
            return Ok(false);
        }
        let epoch = match rotated_to {
            Some(epoch) => epoch,
            None => self.new_epoch(AUDIT_TEXT, &reason)?,
        };
        let conn = self.connection()?;
        let done = conn.execute(
            "DELETE FROM compartment_rotation WHERE compartment = ?1 AND rotated_to = ?2",
            params![AUDIT_TEXT, epoch as i64],
        )?;
        self.record(
            &crate::audit::Op::execute("key.rotate")
                .object("Compartment", AUDIT_TEXT)
                .detail(format!(
                    "audit text key rotated to epoch {epoch} ({reason})"
                )),
        )?;
        Ok(done > 0)
    }

    /// Makes compartment `name`'s next epoch: a new key pair sealed to its holders and the
    /// recovery key, its public key signed into the log, the old private key sealed to the
    /// new public key in `retired_keys`; the old seals go once this has committed.
    fn new_epoch(&mut self, name: &'static str, reason: &str) -> Result<u64, crate::CoreError> {
        let state = self.verified_state()?;
        let holders = holders(self.connection()?, state.as_ref(), name)?;
        let at = crate::format_time(self.clock.now());
        let keys = Arc::clone(&self.keys);
        let vault_id = self.vault()?.vault_id().to_owned();
        let ((), epoch) = self.with_slot_change(
            None,
            crate::audit::Op::execute("key.compartment_rotate")
                .object("Compartment", name)
                .detail(format!("a new {name} key, because {reason}")),
            |_, _| Ok(()),
            move |vault| {
                let old = vault.rotate_compartment(name, &holders)?;
                let (epoch, public) = log_compartment_public(vault, name, &at)?;
                let (ephemeral, nonce, sealed) =
                    seal_retired(&vault_id, name, epoch - 1, &old, &PublicKey::from(public))?;
                vault.connection().execute(
                    "INSERT OR REPLACE INTO retired_keys (compartment, epoch, ephemeral, nonce, sealed, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![name, (epoch - 1) as i64, ephemeral.as_slice(), nonce.as_slice(), sealed, at],
                )?;
                vault.connection().execute(
                    "UPDATE compartment_rotation SET rotated_to = ?1 WHERE compartment = ?2",
                    params![epoch as i64, name],
                )?;
                let mut ring = lock(&keys);
                ring.take_compartment(vault);
                if name == CLINICAL {
                    ring.write = None;
                }
                Ok(epoch)
            },
            |_| {},
        )?;
        // Committed: the old key's seals can go (a crash before this leaves them, unused).
        if let Some(vault) = self.vault.as_mut() {
            let _ = vault.prune_compartment_seals(name);
        }
        Ok(epoch)
    }

    /// Makes compartment `name` (epoch 0), sealed to its holders and the recovery key, its
    /// public key signed into the security log.
    fn make_compartment(&mut self, name: &'static str) -> Result<(), crate::CoreError> {
        let state = self.verified_state()?;
        let holders = holders(self.connection()?, state.as_ref(), name)?;
        let detail = format!(
            "{name} key made, sealed to the recovery key and {}",
            if holders.is_empty() {
                "no one else yet".to_owned()
            } else {
                holders.join(", ")
            }
        );
        let keys = Arc::clone(&self.keys);
        // Made for others by a role that may not read it (an import, the demo, an upgrade,
        // a clinician's first sign-in for the audit text): the private key is sealed and
        // then forgotten at once.
        let reads = self.reads(name);
        let at = crate::format_time(self.clock.now());
        self.with_slot_change(
            None,
            crate::audit::Op::execute("key.compartment_create")
                .object("Compartment", name)
                .detail(detail),
            |_, _| Ok(()),
            move |vault| {
                vault.create_compartment(name, &holders)?;
                log_compartment_public(vault, name, &at)?;
                if !reads {
                    vault.forget_compartment_secret(name);
                }
                lock(&keys).take_compartment(vault);
                Ok(())
            },
            |_| {},
        )?;
        Ok(())
    }

    /// Seals each compartment to every enabled user whose role reads it and who lacks it
    /// (when this session holds it) and takes it from every slot whose user may no longer
    /// read it; each hand-over and removal is an audit entry. Run at every unlock and after
    /// every change of users, roles or slots.
    pub(crate) fn settle_key_holders(&mut self) -> Result<(), crate::CoreError> {
        let state = self.verified_state()?;
        for name in COMPARTMENTS {
            let exists = {
                let keys = lock(&self.keys);
                if name == CLINICAL {
                    keys.has_compartment()
                } else {
                    keys.audit.public.is_some()
                }
            };
            if exists {
                self.settle_holders_of(name, state.as_ref())?;
            }
        }
        Ok(())
    }

    fn settle_holders_of(
        &mut self,
        name: &'static str,
        state: Option<&crate::security_log::State>,
    ) -> Result<(), crate::CoreError> {
        let holders = holders(self.connection()?, state, name)?;
        let now = self.clock.now();
        let actor = crate::session::actor_ref(&self.actor);
        let expired = self.expired();
        let keys = Arc::clone(&self.keys);
        let device = &self.device;
        let vault = self.vault.as_mut().ok_or(expired)?;
        vault.connection().execute_batch("BEGIN IMMEDIATE")?;
        let result = (|| {
            let changes = vault.set_compartment_holders(name, &holders)?;
            let conn = vault.connection();
            for (event, users) in [
                ("key.grant", &changes.granted),
                ("key.revoke", &changes.revoked),
            ] {
                for user in users {
                    crate::audit::append(
                        conn,
                        device,
                        &actor,
                        now,
                        &crate::audit::Op::execute(event)
                            .object("User", user)
                            .detail(name),
                    )?;
                }
            }
            lock(&keys).take_compartment(vault);
            Ok(changes)
        })();
        let changes = crate::session::finish_manual_tx(vault, result, |_| {})?;
        // What the window says about hand-overs is about the clinical key, the one a
        // clinician waits for.
        if name == CLINICAL {
            self.handed_over.granted.extend(changes.granted);
            self.handed_over.revoked.extend(changes.revoked);
            self.handed_over.pending = changes.pending;
        }
        Ok(())
    }

    /// Restricted charts an earlier version kept in clear get keys of their own and are
    /// sealed; a chart key with no seal to the current clinical key (made before there was
    /// one, or before the clinical key rotated) gets one where this session opens it, so that
    /// break-the-glass keeps working. One transaction; nothing to do is one query.
    pub(crate) fn settle_patient_keys(&mut self) -> Result<(), crate::CoreError> {
        let now = self.clock.now();
        let at = crate::format_time(now);
        let actor = crate::session::actor_ref(&self.actor);
        // A chart's new key is signed into the security log, by a role the log lets make it
        // (not the front desk's, which waits for the next such sign-in).
        let may_key = matches!(self.actor, crate::session::Actor::Recovery)
            || matches!(self.role(), Role::Admin | Role::Physician | Role::Nurse);
        let keys = Arc::clone(&self.keys);
        let expired = self.expired();
        let device = &self.device;
        let vault = self.vault.as_mut().ok_or(expired)?;
        let clear: bool = may_key
            && vault.connection().query_row(
                "SELECT EXISTS (SELECT 1 FROM patients INDEXED BY patients_restricted
                             WHERE restricted = 1 AND sealed IS NULL AND uuid IS NOT NULL)",
                [],
                |r| r.get(0),
            )?;
        let tx = vault
            .connection_mut()
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        lock(&keys).refresh(&tx)?;
        let sealed = if clear {
            crate::chart::patient::seal_restricted_in_clear(&tx, &at)?
        } else {
            0
        };
        let lacking = {
            let keys = lock(&keys);
            match keys.public {
                Some((epoch, _)) => keys
                    .patients
                    .lacking(&crate::patient_keys::clinical_holder(epoch)),
                None => Vec::new(),
            }
        };
        for uuid in lacking {
            let id: Option<i64> = tx
                .query_row(
                    "SELECT id FROM patients WHERE uuid = ?1",
                    [uuid.as_slice()],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(id) = id {
                crate::patient_keys::grant_for(&tx, id, &uuid, None, &at)?;
            }
        }
        // A member whose slot changed (a password reset) is sealed in again by any session
        // that opens the chart's key; one that has their seal already costs nothing.
        if lock(&keys).holds_clinical() {
            let members: Vec<(i64, Vec<u8>, i64, String)> = tx
                .prepare(
                    "SELECT p.id, p.uuid, u.id, u.name
                       FROM patients p INDEXED BY patients_restricted
                       CROSS JOIN care_team c ON c.patient_id = p.id
                       JOIN users u ON u.id = c.user_id
                      WHERE p.restricted = 1 AND p.sealed IS NOT NULL",
                )?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect::<Result<_, _>>()?;
            for (id, uuid, user_id, name) in members {
                let Ok(uuid) = <[u8; 16]>::try_from(uuid) else {
                    continue;
                };
                let holder = crate::patient_keys::user_holder(&name);
                // Only a member with a registered slot and no seal to it yet costs a look at
                // the security log.
                let settled = {
                    let keys = lock(&keys);
                    !keys.patients.slots.contains_key(&holder)
                        || keys.patients.sealed_to(&uuid, &holder)
                };
                if settled || !crate::access::on_care_team(&tx, id, user_id)? {
                    continue;
                }
                crate::patient_keys::grant_for(&tx, id, &uuid, Some(&name), &at)?;
            }
        }
        if sealed > 0 {
            crate::audit::append(
                &tx,
                device,
                &actor,
                now,
                &crate::audit::Op::execute("vault.upgrade").detail(format!(
                    "{sealed} restricted charts sealed under keys of their own"
                )),
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Seals what earlier versions kept in clear of the audit trail's free text outside the
    /// trail itself: break-the-glass reasons in `access_grants`, export purposes and
    /// recipients in `disclosures`, and the reasons quoted in break-the-glass alerts. The
    /// audit entries written before stay as they were: they are hash-chained, and changing
    /// them would break the chain (docs/security.md says so). One transaction; small tables.
    pub(crate) fn seal_clear_audit_text(&mut self) -> Result<(), crate::CoreError> {
        if lock(&self.keys).audit.public.is_none() {
            return Ok(());
        }
        let like = format!("{}%", crate::audit_text::PREFIX);
        let conn = self.connection()?;
        let clear: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM access_grants WHERE reason NOT LIKE ?1)
                 OR EXISTS (SELECT 1 FROM disclosures WHERE purpose NOT LIKE ?1 OR recipient NOT LIKE ?1)
                 OR EXISTS (SELECT 1 FROM alerts WHERE rule = 'break_glass' AND summary LIKE '%: \"%' AND summary NOT LIKE ?2)",
            params![like, format!("%{}%", crate::audit_text::PREFIX)],
            |r| r.get(0),
        )?;
        if !clear {
            return Ok(());
        }
        let keys = Arc::clone(&self.keys);
        let expired = self.expired();
        let vault = self.vault.as_mut().ok_or(expired)?;
        let tx = vault
            .connection_mut()
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut keys = lock(&keys);
        let grants: Vec<(i64, String)> = tx
            .prepare("SELECT id, reason FROM access_grants WHERE reason NOT LIKE ?1")?
            .query_map([&like], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (id, reason) in grants {
            tx.execute(
                "UPDATE access_grants SET reason = ?1 WHERE id = ?2",
                params![keys.seal_text(&reason)?, id],
            )?;
        }
        let disclosures: Vec<(i64, String, String)> = tx
            .prepare(
                "SELECT id, purpose, recipient FROM disclosures WHERE purpose NOT LIKE ?1 OR recipient NOT LIKE ?1",
            )?
            .query_map([&like], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        if !disclosures.is_empty() {
            // The accounting is append-only to the app; sealing it in place is the one
            // change it takes, and the trigger is back before the transaction commits.
            tx.execute_batch("DROP TRIGGER disclosures_no_update")?;
            for (id, purpose, recipient) in disclosures {
                let seal = |keys: &mut Keyring, t: String| {
                    if crate::audit_text::is_sealed(&t) {
                        Ok(t)
                    } else {
                        keys.seal_text(&t)
                    }
                };
                let purpose = seal(&mut keys, purpose)?;
                let recipient = seal(&mut keys, recipient)?;
                tx.execute(
                    "UPDATE disclosures SET purpose = ?1, recipient = ?2 WHERE id = ?3",
                    params![purpose, recipient, id],
                )?;
            }
            tx.execute_batch(crate::schema::DISCLOSURES_NO_UPDATE_SQL)?;
        }
        let alerts: Vec<(i64, String)> = tx
            .prepare(
                "SELECT id, summary FROM alerts WHERE rule = 'break_glass' AND summary NOT LIKE ?1",
            )?
            .query_map([format!("%{}%", crate::audit_text::PREFIX)], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<Result<_, _>>()?;
        for (id, summary) in alerts {
            // "… restricted patient N: \"REASON\"": the quoted reason is sealed in place.
            if let Some((head, quoted)) = summary.split_once(": \"") {
                let reason = quoted.strip_suffix('"').unwrap_or(quoted);
                tx.execute(
                    "UPDATE alerts SET summary = ?1 WHERE id = ?2",
                    params![format!("{head}: \"{}\"", keys.seal_text(reason)?), id],
                )?;
            }
        }
        drop(keys);
        tx.commit()?;
        Ok(())
    }

    /// The key hand-overs (and removals) this session has made, and who still waits.
    pub fn key_hand_over(&self) -> &chartroom_vault::HolderChanges {
        &self.handed_over
    }

    /// Gets a key to write clinical content with for a role that may not read it (an import,
    /// the demo clinic), making the clinical compartment first if the vault has none.
    pub(crate) fn prepare_clinical_writes(&mut self) -> Result<(), crate::CoreError> {
        if !lock(&self.keys).has_compartment() {
            self.make_compartment(CLINICAL)?;
        }
        let now = crate::format_time(self.clock.now());
        let name = self.signed_in().user;
        let conn = self.connection()?;
        lock(&self.keys).prepare_write(conn, Some(&name), &now)
    }

    /// Seals the clinical columns an earlier version wrote in clear, a batch at a time, each
    /// batch its own transaction: killed part-way, the next administrator sign-in goes on
    /// where it stopped. `stop_after` batches is for tests that stop it as a crash would.
    #[doc(hidden)]
    pub fn seal_what_was_clear(
        &mut self,
        stop_after: Option<usize>,
    ) -> Result<(), crate::CoreError> {
        self.prepare_clinical_writes()?;
        #[cfg(test)]
        let (batch, stop_after) = UPGRADE_STEPS
            .with(|s| s.get())
            .unwrap_or((2_000, stop_after));
        #[cfg(not(test))]
        let batch = 2_000;
        let now = crate::format_time(self.clock.now());
        let actor = crate::session::actor_ref(&self.actor);
        let expired = self.expired();
        let device = &self.device;
        let vault = self.vault.as_mut().ok_or(expired)?;
        let sealed = crate::schema::seal_clear_fields(vault.connection_mut(), batch, stop_after)?;
        if let Some(rows) = sealed {
            let tx = vault
                .connection_mut()
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute(
                "UPDATE field_encryption SET done_at = ?1 WHERE id = 1",
                [&now],
            )?;
            crate::audit::append(
                &tx,
                device,
                &actor,
                chrono::Utc::now(),
                &crate::audit::Op::execute("vault.upgrade")
                    .detail(format!("clinical fields of {rows} rows sealed")),
            )?;
            tx.commit()?;
            // The clear pages leave the write-ahead log for the database file, where
            // secure_delete has already overwritten them.
            vault
                .connection()
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        Ok(())
    }
}
