//! Secret types: the data key and the recovery key, zeroized on drop and never printed.

use std::fmt;

use rand_core::{OsRng, RngCore};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::VaultError;

/// Length in bytes of the SQLCipher data key (AES-256).
pub const DATA_KEY_LEN: usize = 32;

/// The random 256-bit key SQLCipher encrypts the database with.
///
/// It only ever exists in memory while a vault is unlocked, or inside a key slot sealed to a
/// user. `Debug` never prints it; reading it out is an explicit, named call.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct DataKey([u8; DATA_KEY_LEN]);

impl DataKey {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut key = [0u8; DATA_KEY_LEN];
        OsRng.fill_bytes(&mut key);
        Self(key)
    }

    pub(crate) fn from_bytes(bytes: [u8; DATA_KEY_LEN]) -> Self {
        Self(bytes)
    }

    pub(crate) fn as_bytes(&self) -> &[u8; DATA_KEY_LEN] {
        &self.0
    }

    /// The key as 64 lowercase hex digits, as standard SQLCipher tools take it
    /// (`PRAGMA key = "x'…'"`). Handing this out gives full access to every record.
    pub fn to_hex(&self) -> SecretString {
        SecretString::from(hex::encode(self.0))
    }

    /// The `PRAGMA key` / `PRAGMA rekey` value for raw-key mode, which skips SQLCipher's PBKDF2.
    pub(crate) fn pragma_value(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("x'{}'", hex::encode(self.0)))
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(****)")
    }
}

/// Crockford's base32 alphabet: no I, L, O or U, so a key copied by hand is hard to misread.
const RECOVERY_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Random characters in a recovery key: 30 × 5 bits = 150 bits of entropy.
const RECOVERY_DATA_CHARS: usize = 30;
/// Check characters appended so a typo is reported as a typo, not as a wrong key.
const RECOVERY_CHECK_CHARS: usize = 2;
const RECOVERY_GROUP: usize = 4;

/// The clinic's recovery key: opens the vault when every admin password is lost.
///
/// Shown once at vault creation as eight groups of four characters
/// (`7KQ2-M9XD-…`); it is never stored anywhere in clear.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct RecoveryKey(String);

impl RecoveryKey {
    pub(crate) fn generate() -> Self {
        let mut chars = String::with_capacity(RECOVERY_DATA_CHARS + RECOVERY_CHECK_CHARS);
        let mut random = Zeroizing::new([0u8; RECOVERY_DATA_CHARS]);
        OsRng.fill_bytes(random.as_mut());
        for byte in random.iter() {
            chars.push(RECOVERY_ALPHABET[usize::from(byte & 0x1f)] as char);
        }
        let check = recovery_check(&chars);
        chars.push_str(&check);
        Self(chars)
    }

    /// Parses a key as a person typed it: case, spaces and dashes do not matter, and the
    /// letters O, I and L are read as the digits 0, 1 and 1.
    pub fn parse(text: &str) -> Result<Self, VaultError> {
        let mut chars = String::with_capacity(RECOVERY_DATA_CHARS + RECOVERY_CHECK_CHARS);
        for c in text.chars() {
            let c = match c.to_ascii_uppercase() {
                '-' | ' ' | '\t' | '\n' | '\r' => continue,
                'O' => '0',
                'I' | 'L' => '1',
                c => c,
            };
            if !c.is_ascii() || !RECOVERY_ALPHABET.contains(&(c as u8)) {
                return Err(VaultError::RecoveryKeyFormat);
            }
            chars.push(c);
        }
        if chars.len() != RECOVERY_DATA_CHARS + RECOVERY_CHECK_CHARS {
            return Err(VaultError::RecoveryKeyFormat);
        }
        let (data, check) = chars.split_at(RECOVERY_DATA_CHARS);
        if recovery_check(data) != check {
            return Err(VaultError::RecoveryKeyTypo);
        }
        Ok(Self(chars))
    }

    /// The key grouped for a person to copy down, e.g. `7KQ2-M9XD-…`.
    pub fn display_grouped(&self) -> SecretString {
        let grouped: Vec<&str> = self
            .0
            .as_bytes()
            .chunks(RECOVERY_GROUP)
            .map(|c| std::str::from_utf8(c).expect("recovery keys are ASCII by construction"))
            .collect();
        SecretString::from(grouped.join("-"))
    }

    /// The canonical form the key-slot KDF runs over.
    pub(crate) fn kdf_input(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for RecoveryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryKey(****)")
    }
}

fn recovery_check(data: &str) -> String {
    let digest = Sha256::digest(data.as_bytes());
    (0..RECOVERY_CHECK_CHARS)
        .map(|i| RECOVERY_ALPHABET[usize::from(digest[i] & 0x1f)] as char)
        .collect()
}

/// What opens a key slot: a user's password or the clinic's recovery key.
#[derive(Debug)]
pub enum Credential<'a> {
    Password {
        user: &'a str,
        password: &'a SecretString,
    },
    Recovery(&'a RecoveryKey),
}

impl Credential<'_> {
    pub(crate) fn secret_bytes(&self) -> &[u8] {
        match self {
            Credential::Password { password, .. } => password.expose_secret().as_bytes(),
            Credential::Recovery(key) => key.kdf_input(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_key_round_trips_through_its_grouped_form() {
        let key = RecoveryKey::generate();
        let shown = key.display_grouped();
        let shown = shown.expose_secret();
        assert_eq!(shown.len(), 32 + 7);
        assert_eq!(shown.split('-').count(), 8);
        let parsed = RecoveryKey::parse(&shown.to_lowercase()).expect("parses");
        assert_eq!(parsed.0, key.0);
    }

    #[test]
    fn recovery_key_typo_is_reported_as_a_typo() {
        let key = RecoveryKey::generate();
        let mut chars: Vec<char> = key.0.chars().collect();
        chars[3] = if chars[3] == 'A' { 'B' } else { 'A' };
        let typo: String = chars.into_iter().collect();
        assert!(matches!(
            RecoveryKey::parse(&typo),
            Err(VaultError::RecoveryKeyTypo)
        ));
        assert!(matches!(
            RecoveryKey::parse("short"),
            Err(VaultError::RecoveryKeyFormat)
        ));
        assert!(matches!(
            RecoveryKey::parse(&"U".repeat(32)),
            Err(VaultError::RecoveryKeyFormat)
        ));
    }

    #[test]
    fn debug_never_prints_key_material() {
        let key = DataKey::from_bytes([0xAB; DATA_KEY_LEN]);
        assert_eq!(format!("{key:?}"), "DataKey(****)");
        let rk = RecoveryKey::generate();
        assert!(!format!("{rk:?}").contains(&rk.0));
    }
}
