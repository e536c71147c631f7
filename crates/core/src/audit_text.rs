//! The audit trail's free text (break-the-glass reasons, export purposes and recipients),
//! sealed to the audit-text compartment: written by whoever states it, opened only by the
//! administrators, the auditors and the recovery key (docs/security.md, "Audit text").
//!
//! A sealed text is itself text, so it fits the columns and the hash-chained audit entries
//! that held the words before: `sealed:v1:EPOCH:BASE64URL`. Each one is sealed directly to
//! the compartment's public key with an ephemeral X25519 key (no content key in the
//! database), so the copy the collector keeps opens with the compartment's private key alone.

use std::collections::HashMap;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use chartroom_vault::x25519_dalek::{PublicKey, StaticSecret};
use hkdf::Hkdf;
use rand_core::{OsRng, RngCore};
use sha2::Sha256;
use zeroize::Zeroizing;

/// The compartment of the audit trail's free text.
pub const AUDIT_TEXT: &str = "audit_text";

/// What every sealed text starts with.
pub const PREFIX: &str = "sealed:v1:";
const AD_AUDIT_TEXT: &[u8] = b"chartroom/audit-text/v1";
const NONCE_LEN: usize = 12;
const KEY_LEN: usize = 32;
/// What a reader who cannot open a sealed text is shown in its place.
pub const WITHHELD: &str = "[sealed: only an auditor or administrator can read this]";
/// Texts this session sealed, kept to show them back to their writer; a bound, not a cache
/// policy: past it the oldest are shown as sealed, like anyone else's.
const MINE_MAX: usize = 1024;

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

/// The AEAD key for one sealed text: HKDF-SHA256 over the X25519 shared secret, salted with
/// both public keys, with the kind of text (`label`) as its info.
pub(crate) fn wrap_key(
    label: &[u8],
    shared: &[u8],
    ephemeral: &[u8; 32],
    public: &[u8; 32],
) -> Zeroizing<[u8; 32]> {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(ephemeral);
    salt[32..].copy_from_slice(public);
    let mut key = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(&salt), shared)
        .expand(label, key.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    key
}

/// Length-prefixed concatenation of `label` and `parts`.
pub(crate) fn associated_data(label: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in std::iter::once(label).chain(parts.iter().copied()) {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// The kind of a sealed text: its prefix, its HKDF info and the start of its associated data.
#[derive(Clone, Copy)]
pub(crate) struct Kind {
    pub prefix: &'static str,
    pub label: &'static [u8],
}

/// The audit trail's words.
pub(crate) const AUDIT: Kind = Kind {
    prefix: PREFIX,
    label: AD_AUDIT_TEXT,
};

fn audit_ad(vault_id: &str, epoch: u64) -> Vec<u8> {
    associated_data(AD_AUDIT_TEXT, &[vault_id.as_bytes(), &epoch.to_be_bytes()])
}

/// The audit-text keys a session holds: the public key anyone seals to, and the private keys
/// (the current epoch's and, through the retired-key chain, the earlier ones') of a holder.
#[derive(Default)]
pub(crate) struct Keys {
    pub(crate) public: Option<(u64, PublicKey)>,
    pub(crate) secrets: HashMap<u64, StaticSecret>,
    /// Whether the earlier epochs have been looked up since the keys were taken.
    pub(crate) retired_loaded: bool,
    mine: HashMap<String, String>,
}

impl Keys {
    /// Whether this session can open what is sealed under the current epoch.
    pub(crate) fn holds(&self) -> bool {
        self.public
            .is_some_and(|(epoch, _)| self.secrets.contains_key(&epoch))
    }

    /// Seals `plain` to the compartment's current public key. Fails only when the vault has
    /// no audit-text key yet.
    pub(crate) fn seal(&mut self, vault_id: &str, plain: &str) -> Option<String> {
        let (epoch, public) = self.public?;
        let sealed = seal_to(AUDIT, epoch, &public, &audit_ad(vault_id, epoch), plain);
        if self.mine.len() < MINE_MAX {
            self.mine.insert(sealed.clone(), plain.to_owned());
        }
        Some(sealed)
    }

    /// `text` with every sealed text in it opened, or shown as [`WITHHELD`] where this session
    /// cannot open it. Text written before the compartment existed is returned as it is.
    pub(crate) fn reveal(&self, vault_id: &str, text: &str) -> String {
        if !text.contains(PREFIX) {
            return text.to_owned();
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find(PREFIX) {
            out.push_str(&rest[..at]);
            let token_len = token_len(PREFIX, &rest[at..]);
            let token = &rest[at..at + token_len];
            match self.open(vault_id, token) {
                Some(plain) => out.push_str(&plain),
                None => out.push_str(WITHHELD),
            }
            rest = &rest[at + token_len..];
        }
        out.push_str(rest);
        out
    }

    fn open(&self, vault_id: &str, token: &str) -> Option<String> {
        if let Some(plain) = self.mine.get(token) {
            return Some(plain.clone());
        }
        let (epoch, _) = parse(AUDIT, token)?;
        open_with(AUDIT, self.secrets.get(&epoch)?, token, |e| {
            audit_ad(vault_id, e)
        })
    }
}

/// How long the sealed text at the start of `text` is: the prefix, the epoch, a colon and the
/// base64url body.
fn token_len(prefix: &str, text: &str) -> usize {
    let body = &text[prefix.len()..];
    let digits = body.bytes().take_while(u8::is_ascii_digit).count();
    if body.as_bytes().get(digits) != Some(&b':') {
        return prefix.len() + digits;
    }
    let b64 = body[digits + 1..]
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        .count();
    prefix.len() + digits + 1 + b64
}

/// The epoch and the sealed bytes of a whole token, if it is well formed.
pub(crate) fn parse(kind: Kind, token: &str) -> Option<(u64, Vec<u8>)> {
    let body = token.strip_prefix(kind.prefix)?;
    let (epoch, data) = body.split_once(':')?;
    let epoch: u64 = epoch.parse().ok()?;
    let bytes = b64().decode(data).ok()?;
    (bytes.len() > KEY_LEN + NONCE_LEN).then_some((epoch, bytes))
}

/// Seals `plain` to `public` (the key at `epoch`), bound to `ad` (which must name `epoch`).
pub(crate) fn seal_to(
    kind: Kind,
    epoch: u64,
    public: &PublicKey,
    ad: &[u8],
    plain: &str,
) -> String {
    let ephemeral = StaticSecret::random_from_rng(OsRng);
    let ephemeral_public = PublicKey::from(&ephemeral);
    let shared = ephemeral.diffie_hellman(public);
    let key = wrap_key(
        kind.label,
        shared.as_bytes(),
        ephemeral_public.as_bytes(),
        public.as_bytes(),
    );
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let sealed = ChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(key.as_slice()))
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plain.as_bytes(),
                aad: ad,
            },
        )
        .expect("ChaCha20-Poly1305 seals any text shorter than 256 GiB");
    let mut bytes = Vec::with_capacity(KEY_LEN + NONCE_LEN + sealed.len());
    bytes.extend_from_slice(ephemeral_public.as_bytes());
    bytes.extend_from_slice(&nonce);
    bytes.extend_from_slice(&sealed);
    format!("{}{epoch}:{}", kind.prefix, b64().encode(bytes))
}

/// Opens a whole sealed text with the private key of its epoch (`ad` gives the associated
/// data for the token's epoch); None if it does not open.
pub(crate) fn open_with(
    kind: Kind,
    secret: &StaticSecret,
    token: &str,
    ad: impl FnOnce(u64) -> Vec<u8>,
) -> Option<String> {
    let (epoch, bytes) = parse(kind, token)?;
    let ephemeral: [u8; 32] = bytes[..KEY_LEN].try_into().ok()?;
    let nonce = &bytes[KEY_LEN..KEY_LEN + NONCE_LEN];
    let public = PublicKey::from(secret);
    let shared = secret.diffie_hellman(&PublicKey::from(ephemeral));
    let key = wrap_key(kind.label, shared.as_bytes(), &ephemeral, public.as_bytes());
    let plain = ChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(key.as_slice()))
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: &bytes[KEY_LEN + NONCE_LEN..],
                aad: &ad(epoch),
            },
        )
        .ok()?;
    String::from_utf8(plain).ok()
}

/// Whether `text` is (or holds) a sealed text.
pub(crate) fn is_sealed(text: &str) -> bool {
    text.contains(PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder() -> (Keys, StaticSecret) {
        let secret = StaticSecret::random_from_rng(OsRng);
        let keys = Keys {
            public: Some((3, PublicKey::from(&secret))),
            ..Keys::default()
        };
        (keys, secret)
    }

    #[test]
    fn a_sealed_text_opens_only_with_its_key_and_vault_and_shows_withheld_otherwise() {
        let (mut writer, secret) = holder();
        let sealed = writer
            .seal("vault-a", "patient unconscious, ER")
            .expect("a key");
        assert!(sealed.starts_with("sealed:v1:3:"));
        assert!(!sealed.contains("unconscious"));
        // The writer sees their own words back in this session.
        assert_eq!(
            writer.reveal("vault-a", &format!("reason: \"{sealed}\".")),
            "reason: \"patient unconscious, ER\"."
        );
        // A holder of the private key opens it; a session without it sees it withheld.
        let mut reader = Keys {
            public: writer.public,
            ..Keys::default()
        };
        assert_eq!(reader.reveal("vault-a", &sealed), WITHHELD);
        reader.secrets.insert(3, secret.clone());
        assert_eq!(reader.reveal("vault-a", &sealed), "patient unconscious, ER");
        // Another vault, another epoch, a changed byte: nothing opens.
        let open =
            |vault: &str, token: &str| open_with(AUDIT, &secret, token, |e| audit_ad(vault, e));
        assert_eq!(open("vault-b", &sealed), None);
        let other_epoch = sealed.replacen(":3:", ":4:", 1);
        assert_eq!(open("vault-a", &other_epoch), None);
        let mut bytes = sealed.clone().into_bytes();
        let last = bytes.len() - 3;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let changed = String::from_utf8(bytes).expect("ascii");
        assert_eq!(open("vault-a", &changed), None);
        // Text from before the compartment is shown as it is.
        assert_eq!(
            reader.reveal("vault-a", "a clear old reason"),
            "a clear old reason"
        );
        assert!(is_sealed(&sealed) && !is_sealed("sealed: no"));
    }

    #[test]
    fn malformed_tokens_are_withheld_without_panicking() {
        let (keys, _) = holder();
        for text in [
            "sealed:v1:",
            "sealed:v1:12",
            "sealed:v1:x:abc",
            "sealed:v1:1:",
            "sealed:v1:1:!!!",
            "sealed:v1:99999999999999999999999:AAAA",
            "xx sealed:v1:1:AAAA yy",
        ] {
            let shown = keys.reveal("v", text);
            assert!(shown.contains(WITHHELD), "{text} gave {shown}");
        }
    }
}
