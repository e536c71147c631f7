//! The key-slot file: the data key sealed once per user and once for the recovery key.
//!
//! Each slot has its own X25519 key pair. The private half is wrapped with
//! XChaCha20-Poly1305 under a key-encryption key derived from the slot's secret (password or
//! recovery key) with Argon2id; the data key is sealed to the public half. Sealing needs
//! only public keys, so a rekey can reseal the new data key for every user without knowing
//! their passwords, while someone who kept an old data key (or a removed user who kept an
//! old slot file) learns nothing about the new one.
//!
//! Associated data binds every ciphertext to the vault id, the slot's kind and owner and,
//! for the sealed data key, the key epoch: a slot copied to another user or vault, or an old
//! sealed key replayed, does not open.

use std::fs;
use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use chrono::{DateTime, Utc};
use hkdf::Hkdf;
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::kdf::{KdfParams, SALT_LEN};
use crate::secret::{DataKey, DATA_KEY_LEN};
use crate::VaultError;

/// File name of the key-slot file inside a vault folder.
pub const SLOT_FILE_NAME: &str = "keyslots.json";
/// The `format` field every slot file carries.
pub const SLOT_FILE_FORMAT: &str = "chartroom-keyslots";
/// The slot file layout this build writes. Version 2 added the compartments (their public
/// keys at the top, their private keys sealed into the slots of those who may read them);
/// version 1 files are read as having none, and are written back as version 2, which an
/// older Chartroom refuses instead of writing clear text into a vault that encrypts fields.
pub const SLOT_FILE_VERSION: u32 = 2;
const OLDEST_SLOT_FILE_VERSION: u32 = 1;
/// A slot file larger than this is not ours (one slot is well under 1 KiB).
const MAX_SLOT_FILE_BYTES: u64 = 4 * 1024 * 1024;
const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;
const AAD_IDENTITY: &[u8] = b"chartroom/slot-identity/v1";
/// The identity of a slot that names the security log's root key: the root is in the
/// associated data, so only someone who knows the slot's password can change it.
const AAD_IDENTITY_ROOTED: &[u8] = b"chartroom/slot-identity/v2";
const AAD_SEAL: &[u8] = b"chartroom/slot-seal/v1";
const AAD_COMPARTMENT: &[u8] = b"chartroom/slot-compartment/v1";
const AAD_SIGNING: &[u8] = b"chartroom/slot-signing/v1";
const HKDF_INFO_SEAL: &[u8] = b"chartroom/seal-key/v1";

/// Whose secret opens a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotKind {
    User,
    Recovery,
}

impl SlotKind {
    fn as_str(self) -> &'static str {
        match self {
            SlotKind::User => "user",
            SlotKind::Recovery => "recovery",
        }
    }
}

/// The whole key-slot file, as stored (JSON, binary fields in base64).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SlotFile {
    pub format: String,
    pub version: u32,
    pub vault_id: String,
    pub created_at: DateTime<Utc>,
    /// Increments at every rekey; sealed data keys are bound to it.
    pub key_epoch: u64,
    /// The compartments' public keys: anyone may seal to them, only holders open them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compartments: Vec<CompartmentPublic>,
    pub slots: Vec<Slot>,
}

/// A compartment's name, epoch and public key, as the slot file lists it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CompartmentPublic {
    pub name: String,
    pub epoch: u64,
    pub public_key: String,
}

/// A compartment's private key sealed to one slot.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SealedCompartment {
    pub name: String,
    pub epoch: u64,
    pub ephemeral: String,
    pub nonce: String,
    pub ciphertext: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Slot {
    pub kind: SlotKind,
    /// The user name for user slots, `recovery` for the recovery slot.
    pub owner: String,
    pub created_at: DateTime<Utc>,
    pub kdf: SlotKdf,
    pub public_key: String,
    /// The slot's X25519 private key, wrapped under the Argon2id-derived key.
    pub identity: Wrapped,
    /// The data key of `key_epoch`, sealed to `public_key`.
    pub sealed: Sealed,
    /// During a rekey: the next data key (epoch `key_epoch + 1`), sealed to `public_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Sealed>,
    /// The private keys of the compartments this slot's owner may read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compartments: Vec<SealedCompartment>,
    /// The owner's personal Ed25519 signing key, sealed to this slot (slots made before
    /// signatures get one at their owner's next unlock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing: Option<SealedSigning>,
    /// The security log's root key (Ed25519 public key) this slot's owner trusts, bound into
    /// the wrapping of `identity`. Slots made before the security log have none until their
    /// owner's next unlock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
}

/// A personal Ed25519 signing key (its 32-byte seed) sealed to one slot, with its public key.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SealedSigning {
    pub public_key: String,
    pub ephemeral: String,
    pub nonce: String,
    pub ciphertext: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SlotKdf {
    pub algorithm: String,
    pub version: u32,
    #[serde(flatten)]
    pub params: KdfParams,
    pub salt: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Wrapped {
    pub nonce: String,
    pub ciphertext: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Sealed {
    pub epoch: u64,
    pub ephemeral: String,
    pub nonce: String,
    pub ciphertext: String,
}

/// Length-prefixed concatenation, so no two different field lists give the same bytes.
fn associated_data(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        let len = u32::try_from(part.len()).expect("associated data fields are short");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

fn decode<const N: usize>(text: &str) -> Result<[u8; N], VaultError> {
    let bytes = B64
        .decode(text)
        .map_err(|_| VaultError::SlotFileInvalid("a key slot is damaged"))?;
    bytes
        .try_into()
        .map_err(|_| VaultError::SlotFileInvalid("a key slot is damaged"))
}

pub(crate) fn decode_key(text: &str) -> Result<[u8; KEY_LEN], VaultError> {
    decode::<KEY_LEN>(text)
}

pub(crate) fn encode_key(key: &[u8; KEY_LEN]) -> String {
    B64.encode(key)
}

fn decode_vec(text: &str) -> Result<Vec<u8>, VaultError> {
    B64.decode(text)
        .map_err(|_| VaultError::SlotFileInvalid("a key slot is damaged"))
}

/// A new personal signing key from the operating system's CSPRNG.
pub(crate) fn new_signing_key() -> ed25519_dalek::SigningKey {
    let seed: Zeroizing<[u8; KEY_LEN]> = Zeroizing::new(random());
    ed25519_dalek::SigningKey::from_bytes(&seed)
}

fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    OsRng.fill_bytes(&mut out);
    out
}

impl Slot {
    /// Makes a slot for `owner` whose secret is `secret`, holding `data_key` of `epoch`.
    #[cfg(test)]
    pub fn create(
        vault_id: &str,
        kind: SlotKind,
        owner: &str,
        secret: &[u8],
        params: KdfParams,
        data_key: &DataKey,
        epoch: u64,
    ) -> Result<Slot, VaultError> {
        Self::create_signing(
            vault_id, kind, owner, secret, params, data_key, epoch, None, None,
        )
    }

    /// [`Slot::create`] holding the signing key `signing` (a fresh one when None).
    #[allow(clippy::too_many_arguments)]
    pub fn create_signing(
        vault_id: &str,
        kind: SlotKind,
        owner: &str,
        secret: &[u8],
        params: KdfParams,
        data_key: &DataKey,
        epoch: u64,
        signing: Option<&ed25519_dalek::SigningKey>,
        root: Option<&[u8; KEY_LEN]>,
    ) -> Result<Slot, VaultError> {
        let salt: [u8; SALT_LEN] = random();
        let kek = params.derive(secret, &salt)?;
        let identity = StaticSecret::random_from_rng(OsRng);
        let public = PublicKey::from(&identity);
        let mut slot = Slot {
            kind,
            owner: owner.to_owned(),
            created_at: Utc::now(),
            kdf: SlotKdf {
                algorithm: "argon2id".into(),
                version: 0x13,
                params,
                salt: B64.encode(salt),
            },
            public_key: B64.encode(public.as_bytes()),
            identity: Wrapped {
                nonce: String::new(),
                ciphertext: String::new(),
            },
            sealed: Sealed {
                epoch,
                ephemeral: String::new(),
                nonce: String::new(),
                ciphertext: String::new(),
            },
            pending: None,
            compartments: Vec::new(),
            signing: None,
            root: None,
        };
        slot.wrap_identity(vault_id, &kek, &identity, root)?;
        slot.sealed = slot.seal(vault_id, data_key, epoch)?;
        let fresh;
        let signing = match signing {
            Some(key) => key,
            None => {
                fresh = new_signing_key();
                &fresh
            }
        };
        slot.signing = Some(slot.seal_signing(vault_id, signing)?);
        Ok(slot)
    }

    /// Seals `data_key` of `epoch` to this slot's public key (ephemeral X25519, HKDF-SHA256,
    /// XChaCha20-Poly1305). Needs no secret of the slot's owner.
    pub fn seal(
        &self,
        vault_id: &str,
        data_key: &DataKey,
        epoch: u64,
    ) -> Result<Sealed, VaultError> {
        let (ephemeral, nonce, ciphertext) = self.seal_raw(data_key.as_bytes(), |eph| {
            self.seal_aad(vault_id, epoch, eph)
        })?;
        Ok(Sealed {
            epoch,
            ephemeral,
            nonce,
            ciphertext,
        })
    }

    /// Seals a compartment's private key to this slot. Only someone who holds the
    /// compartment can do this; the slot's owner opens it with their identity.
    pub fn seal_compartment(
        &self,
        vault_id: &str,
        compartment: &CompartmentPublic,
        secret: &StaticSecret,
    ) -> Result<SealedCompartment, VaultError> {
        let bytes = Zeroizing::new(secret.to_bytes());
        let (ephemeral, nonce, ciphertext) = self.seal_raw(bytes.as_ref(), |eph| {
            self.compartment_aad(vault_id, compartment, eph)
        })?;
        Ok(SealedCompartment {
            name: compartment.name.clone(),
            epoch: compartment.epoch,
            ephemeral,
            nonce,
            ciphertext,
        })
    }

    /// Opens this slot's seal of `compartment` and checks that the key inside is the one
    /// whose public half the slot file lists: a public key swapped in the file (so that
    /// writers would seal to someone else) is noticed by every holder at unlock.
    pub fn unseal_compartment(
        &self,
        vault_id: &str,
        identity: &StaticSecret,
        compartment: &CompartmentPublic,
    ) -> Result<Option<StaticSecret>, VaultError> {
        let Some(sealed) = self
            .compartments
            .iter()
            .find(|c| c.name == compartment.name && c.epoch == compartment.epoch)
        else {
            return Ok(None);
        };
        let damaged = || {
            VaultError::SlotFileInvalid(
                "a compartment key in the key slot file was changed or does not belong to this vault",
            )
        };
        let plain = self
            .unseal_raw(
                identity,
                &sealed.ephemeral,
                &sealed.nonce,
                &sealed.ciphertext,
                |eph| self.compartment_aad(vault_id, compartment, eph),
            )
            .map_err(|_| damaged())?;
        let bytes: Zeroizing<[u8; KEY_LEN]> =
            Zeroizing::new(plain.as_slice().try_into().map_err(|_| damaged())?);
        let secret = StaticSecret::from(*bytes);
        let public = decode::<KEY_LEN>(&compartment.public_key)?;
        if PublicKey::from(&secret).as_bytes() != &public {
            return Err(damaged());
        }
        Ok(Some(secret))
    }

    /// Seals `key` (the owner's signing key) to this slot.
    pub fn seal_signing(
        &self,
        vault_id: &str,
        key: &ed25519_dalek::SigningKey,
    ) -> Result<SealedSigning, VaultError> {
        let public_key = B64.encode(key.verifying_key().as_bytes());
        let seed = Zeroizing::new(key.to_bytes());
        let (ephemeral, nonce, ciphertext) = self.seal_raw(seed.as_ref(), |eph| {
            self.signing_aad(vault_id, &public_key, eph)
        })?;
        Ok(SealedSigning {
            public_key,
            ephemeral,
            nonce,
            ciphertext,
        })
    }

    /// Opens this slot's signing key and checks it against its public key.
    pub fn unseal_signing(
        &self,
        vault_id: &str,
        identity: &StaticSecret,
    ) -> Result<Option<ed25519_dalek::SigningKey>, VaultError> {
        let Some(sealed) = &self.signing else {
            return Ok(None);
        };
        let damaged =
            || VaultError::SlotFileInvalid("a signing key in the key slot file was changed");
        let plain = self
            .unseal_raw(
                identity,
                &sealed.ephemeral,
                &sealed.nonce,
                &sealed.ciphertext,
                |eph| self.signing_aad(vault_id, &sealed.public_key, eph),
            )
            .map_err(|_| damaged())?;
        let seed: Zeroizing<[u8; KEY_LEN]> =
            Zeroizing::new(plain.as_slice().try_into().map_err(|_| damaged())?);
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        if B64.encode(key.verifying_key().as_bytes()) != sealed.public_key {
            return Err(damaged());
        }
        Ok(Some(key))
    }

    fn signing_aad(&self, vault_id: &str, public_key: &str, ephemeral: &[u8]) -> Vec<u8> {
        let public = B64.decode(public_key).unwrap_or_default();
        associated_data(&[
            AAD_SIGNING,
            vault_id.as_bytes(),
            self.kind.as_str().as_bytes(),
            self.owner.as_bytes(),
            &public,
            self.public_key.as_bytes(),
            ephemeral,
        ])
    }

    fn seal_raw(
        &self,
        msg: &[u8],
        aad: impl Fn(&[u8]) -> Vec<u8>,
    ) -> Result<(String, String, String), VaultError> {
        let recipient = PublicKey::from(decode::<KEY_LEN>(&self.public_key)?);
        let ephemeral = StaticSecret::random_from_rng(OsRng);
        let ephemeral_public = PublicKey::from(&ephemeral);
        let shared = ephemeral.diffie_hellman(&recipient);
        if !shared.was_contributory() {
            return Err(VaultError::SlotFileInvalid(
                "a key slot has an invalid public key",
            ));
        }
        let key = seal_key(
            shared.as_bytes(),
            ephemeral_public.as_bytes(),
            recipient.as_bytes(),
        );
        let nonce: [u8; NONCE_LEN] = random();
        let aad = aad(ephemeral_public.as_bytes());
        let ciphertext = XChaCha20Poly1305::new(key.as_ref().into())
            .encrypt(XNonce::from_slice(&nonce), Payload { msg, aad: &aad })
            .map_err(|_| VaultError::Crypto)?;
        Ok((
            B64.encode(ephemeral_public.as_bytes()),
            B64.encode(nonce),
            B64.encode(ciphertext),
        ))
    }

    fn unseal_raw(
        &self,
        identity: &StaticSecret,
        ephemeral: &str,
        nonce: &str,
        ciphertext: &str,
        aad: impl Fn(&[u8]) -> Vec<u8>,
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let ephemeral = decode::<KEY_LEN>(ephemeral)?;
        let nonce = decode::<NONCE_LEN>(nonce)?;
        let ciphertext = decode_vec(ciphertext)?;
        let public = PublicKey::from(identity);
        let shared = identity.diffie_hellman(&PublicKey::from(ephemeral));
        if !shared.was_contributory() {
            return Err(VaultError::SlotFileInvalid("a key slot is damaged"));
        }
        let key = seal_key(shared.as_bytes(), &ephemeral, public.as_bytes());
        let aad = aad(&ephemeral);
        XChaCha20Poly1305::new(key.as_ref().into())
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| VaultError::SlotFileInvalid("a key slot is damaged"))
    }

    /// Runs the KDF over `secret` and unwraps the slot's private key. A wrong secret and a
    /// slot moved to another owner or vault fail alike, as [`VaultError::WrongCredential`].
    #[cfg(test)]
    pub fn open_identity(&self, vault_id: &str, secret: &[u8]) -> Result<StaticSecret, VaultError> {
        self.open_identity_kek(vault_id, secret).map(|(id, _)| id)
    }

    /// The associated data of the wrapped identity: with the root key when the slot names one.
    fn identity_aad(&self, vault_id: &str, public: &[u8], root: Option<&[u8]>) -> Vec<u8> {
        let mut parts: Vec<&[u8]> = vec![
            if root.is_some() {
                AAD_IDENTITY_ROOTED
            } else {
                AAD_IDENTITY
            },
            vault_id.as_bytes(),
            self.kind.as_str().as_bytes(),
            self.owner.as_bytes(),
            public,
        ];
        if let Some(root) = root {
            parts.push(root);
        }
        associated_data(&parts)
    }

    /// Wraps `identity` under `kek` (a fresh nonce), naming `root` when given.
    pub(crate) fn wrap_identity(
        &mut self,
        vault_id: &str,
        kek: &[u8; KEY_LEN],
        identity: &StaticSecret,
        root: Option<&[u8; KEY_LEN]>,
    ) -> Result<(), VaultError> {
        let public = PublicKey::from(identity);
        if B64.encode(public.as_bytes()) != self.public_key {
            return Err(VaultError::SlotFileInvalid("a key slot is damaged"));
        }
        let nonce: [u8; NONCE_LEN] = random();
        let aad = self.identity_aad(vault_id, public.as_bytes(), root.map(|r| r.as_slice()));
        let identity_bytes = Zeroizing::new(identity.to_bytes());
        let wrapped = XChaCha20Poly1305::new(kek.into())
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: identity_bytes.as_ref(),
                    aad: &aad,
                },
            )
            .map_err(|_| VaultError::Crypto)?;
        self.identity = Wrapped {
            nonce: B64.encode(nonce),
            ciphertext: B64.encode(wrapped),
        };
        self.root = root.map(|r| B64.encode(r));
        Ok(())
    }

    /// The security log root key this slot names, if any.
    pub fn root(&self) -> Result<Option<[u8; KEY_LEN]>, VaultError> {
        self.root.as_deref().map(decode::<KEY_LEN>).transpose()
    }

    /// [`Slot::open_identity`], also returning the key-encryption key (to rewrap the identity
    /// with a root key).
    pub(crate) fn open_identity_kek(
        &self,
        vault_id: &str,
        secret: &[u8],
    ) -> Result<(StaticSecret, Zeroizing<[u8; KEY_LEN]>), VaultError> {
        if self.kdf.algorithm != "argon2id" || self.kdf.version != 0x13 {
            return Err(VaultError::SlotFileInvalid(
                "a key slot uses an unknown KDF",
            ));
        }
        self.kdf.params.check_readable()?;
        let salt = decode_vec(&self.kdf.salt)?;
        if salt.len() < SALT_LEN {
            return Err(VaultError::SlotFileInvalid("a key slot is damaged"));
        }
        let public = decode::<KEY_LEN>(&self.public_key)?;
        let nonce = decode::<NONCE_LEN>(&self.identity.nonce)?;
        let wrapped = decode_vec(&self.identity.ciphertext)?;
        let root = self.root()?;
        let kek = self.kdf.params.derive(secret, &salt)?;
        let aad = self.identity_aad(vault_id, &public, root.as_ref().map(|r| r.as_slice()));
        let plain = Zeroizing::new(
            XChaCha20Poly1305::new(kek.as_ref().into())
                .decrypt(
                    XNonce::from_slice(&nonce),
                    Payload {
                        msg: &wrapped,
                        aad: &aad,
                    },
                )
                .map_err(|_| VaultError::WrongCredential(None))?,
        );
        let bytes: Zeroizing<[u8; KEY_LEN]> = Zeroizing::new(
            plain
                .as_slice()
                .try_into()
                .map_err(|_| VaultError::SlotFileInvalid("a key slot is damaged"))?,
        );
        let identity = StaticSecret::from(*bytes);
        if PublicKey::from(&identity).as_bytes() != &public {
            return Err(VaultError::SlotFileInvalid("a key slot is damaged"));
        }
        Ok((identity, kek))
    }

    /// Opens a sealed data key with the slot's unwrapped private key.
    pub fn unseal(
        &self,
        vault_id: &str,
        identity: &StaticSecret,
        sealed: &Sealed,
    ) -> Result<DataKey, VaultError> {
        let plain = self.unseal_raw(
            identity,
            &sealed.ephemeral,
            &sealed.nonce,
            &sealed.ciphertext,
            |eph| self.seal_aad(vault_id, sealed.epoch, eph),
        )?;
        let bytes: [u8; DATA_KEY_LEN] = plain
            .as_slice()
            .try_into()
            .map_err(|_| VaultError::SlotFileInvalid("a key slot is damaged"))?;
        Ok(DataKey::from_bytes(bytes))
    }

    fn seal_aad(&self, vault_id: &str, epoch: u64, ephemeral: &[u8]) -> Vec<u8> {
        associated_data(&[
            AAD_SEAL,
            vault_id.as_bytes(),
            self.kind.as_str().as_bytes(),
            self.owner.as_bytes(),
            &epoch.to_be_bytes(),
            self.public_key.as_bytes(),
            ephemeral,
        ])
    }
}

impl Slot {
    fn compartment_aad(
        &self,
        vault_id: &str,
        compartment: &CompartmentPublic,
        ephemeral: &[u8],
    ) -> Vec<u8> {
        let public = B64.decode(&compartment.public_key).unwrap_or_default();
        associated_data(&[
            AAD_COMPARTMENT,
            vault_id.as_bytes(),
            self.kind.as_str().as_bytes(),
            self.owner.as_bytes(),
            compartment.name.as_bytes(),
            &compartment.epoch.to_be_bytes(),
            &public,
            self.public_key.as_bytes(),
            ephemeral,
        ])
    }
}

fn seal_key(shared: &[u8], ephemeral: &[u8], recipient: &[u8]) -> Zeroizing<[u8; KEY_LEN]> {
    let mut salt = Vec::with_capacity(2 * KEY_LEN);
    salt.extend_from_slice(ephemeral);
    salt.extend_from_slice(recipient);
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    Hkdf::<Sha256>::new(Some(&salt), shared)
        .expand(HKDF_INFO_SEAL, key.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    key
}

impl SlotFile {
    pub fn new(vault_id: String) -> Self {
        SlotFile {
            format: SLOT_FILE_FORMAT.into(),
            version: SLOT_FILE_VERSION,
            vault_id,
            created_at: Utc::now(),
            key_epoch: 0,
            compartments: Vec::new(),
            slots: Vec::new(),
        }
    }

    /// Reads and checks the slot file in `dir`. A missing file means there is no vault.
    pub fn read(dir: &Path) -> Result<SlotFile, VaultError> {
        let path = dir.join(SLOT_FILE_NAME);
        let meta = match fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(VaultError::NoVault(dir.to_path_buf()))
            }
            Err(e) => return Err(VaultError::Io(e)),
        };
        if meta.len() > MAX_SLOT_FILE_BYTES {
            return Err(VaultError::SlotFileInvalid(
                "the key slot file is not a Chartroom key slot file",
            ));
        }
        SlotFile::parse(&fs::read(&path)?)
    }

    /// Checks a slot file's bytes: its JSON, format, version and vault id (what `read` does
    /// once the file is read; also the fuzz target's entry).
    pub fn parse(bytes: &[u8]) -> Result<SlotFile, VaultError> {
        if bytes.len() as u64 > MAX_SLOT_FILE_BYTES {
            return Err(VaultError::SlotFileInvalid(
                "the key slot file is not a Chartroom key slot file",
            ));
        }
        let file: SlotFile = serde_json::from_slice(bytes).map_err(|_| {
            VaultError::SlotFileInvalid("the key slot file is damaged or truncated")
        })?;
        if file.format != SLOT_FILE_FORMAT {
            return Err(VaultError::SlotFileInvalid(
                "the key slot file is not a Chartroom key slot file",
            ));
        }
        if !(OLDEST_SLOT_FILE_VERSION..=SLOT_FILE_VERSION).contains(&file.version) {
            return Err(VaultError::UnsupportedVersion {
                found: file.version,
                supported: SLOT_FILE_VERSION,
            });
        }
        if file.vault_id.len() != 32 || !file.vault_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(VaultError::SlotFileInvalid(
                "the key slot file is damaged or truncated",
            ));
        }
        Ok(file)
    }

    /// Replaces the slot file atomically: a reader sees the old file or the new, never a mix.
    pub fn write(&self, dir: &Path) -> Result<(), VaultError> {
        let mut file = self.clone();
        file.version = SLOT_FILE_VERSION;
        let mut json = serde_json::to_vec_pretty(&file).map_err(|_| VaultError::Crypto)?;
        json.push(b'\n');
        atomic_write(dir, SLOT_FILE_NAME, &json)
    }

    /// The slot of `owner`. Owner names are ASCII and compared without regard to case, as
    /// user names are: "Alice" and "alice" are one user.
    pub fn find(&self, kind: SlotKind, owner: &str) -> Option<&Slot> {
        self.slots
            .iter()
            .find(|s| s.kind == kind && crate::account_key(&s.owner) == crate::account_key(owner))
    }
}

/// Writes `bytes` to `dir/name` by writing a temporary file beside it, syncing it, renaming it
/// over the old one and syncing the folder, so a crash leaves the old or the new content.
pub fn atomic_write(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), VaultError> {
    let suffix: [u8; 8] = random();
    let tmp = dir.join(format!(".{name}.{}.tmp", hex::encode(suffix)));
    let result = (|| {
        let mut file = crate::files::private_file_options().open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, dir.join(name))?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(VaultError::Io)
}

/// A new random vault id: 128 bits as 32 hex digits.
pub(crate) fn new_vault_id() -> String {
    hex::encode(random::<16>())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: KdfParams = KdfParams {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
    };

    fn slot(vault: &str, owner: &str, secret: &[u8], key: &DataKey) -> Slot {
        Slot::create(vault, SlotKind::User, owner, secret, CHEAP, key, 0).expect("creates")
    }

    #[test]
    fn a_slot_opens_with_its_secret_only() {
        let key = DataKey::generate();
        let s = slot("v1", "alice", b"right", &key);
        let id = s.open_identity("v1", b"right").expect("opens");
        assert_eq!(s.unseal("v1", &id, &s.sealed).expect("unseals"), key);
        assert!(matches!(
            s.open_identity("v1", b"wrong"),
            Err(VaultError::WrongCredential(_))
        ));
    }

    #[test]
    fn a_slot_moved_to_another_owner_or_vault_does_not_open() {
        let key = DataKey::generate();
        let mut s = slot("v1", "alice", b"pw", &key);
        assert!(matches!(
            s.open_identity("v2", b"pw"),
            Err(VaultError::WrongCredential(_))
        ));
        s.owner = "mallory".into();
        assert!(matches!(
            s.open_identity("v1", b"pw"),
            Err(VaultError::WrongCredential(_))
        ));
    }

    #[test]
    fn a_sealed_key_replayed_under_another_epoch_does_not_open() {
        let key = DataKey::generate();
        let s = slot("v1", "alice", b"pw", &key);
        let id = s.open_identity("v1", b"pw").expect("opens");
        let mut replayed = s.sealed.clone();
        replayed.epoch = 1;
        assert!(s.unseal("v1", &id, &replayed).is_err());
    }

    #[test]
    fn resealing_needs_no_secret_and_opens_with_the_owners_secret() {
        let key = DataKey::generate();
        let s = slot("v1", "alice", b"pw", &key);
        let next = DataKey::generate();
        let sealed = s.seal("v1", &next, 1).expect("seals");
        let id = s.open_identity("v1", b"pw").expect("opens");
        assert_eq!(s.unseal("v1", &id, &sealed).expect("unseals"), next);
    }
}
