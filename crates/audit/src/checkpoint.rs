//! Signed checkpoints: the device's Ed25519 signature over (sequence, head hash).
//!
//! Like a Certificate Transparency signed tree head: the chain proves order and integrity
//! between checkpoints by hashing alone, and a checkpoint pins the chain to the device key.

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::entry::Hash;

/// Separates checkpoint signatures from anything else the key might sign.
pub const CHECKPOINT_DOMAIN: &[u8] = b"chartroom.audit.checkpoint.v1\0";

/// The head of a device's chain at `seq`, signed by the device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: u64,
    pub hash: Hash,
    pub time: DateTime<Utc>,
    #[serde(with = "sig_hex")]
    pub signature: [u8; 64],
}

impl Checkpoint {
    /// The bytes the device signs.
    pub fn message(device_id: &str, seq: u64, hash: &Hash, time: DateTime<Utc>) -> Vec<u8> {
        let mut m = Vec::with_capacity(CHECKPOINT_DOMAIN.len() + device_id.len() + 52);
        m.extend_from_slice(CHECKPOINT_DOMAIN);
        m.extend_from_slice(
            &u32::try_from(device_id.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        m.extend_from_slice(device_id.as_bytes());
        m.extend_from_slice(&seq.to_be_bytes());
        m.extend_from_slice(&hash.0);
        m.extend_from_slice(&time.timestamp_micros().to_be_bytes());
        m
    }

    /// Signs the head `(seq, hash)` of `device_id`'s chain.
    pub fn sign(
        key: &SigningKey,
        device_id: &str,
        seq: u64,
        hash: Hash,
        time: DateTime<Utc>,
    ) -> Checkpoint {
        let time = crate::truncate_to_micros(time);
        let signature = key.sign(&Self::message(device_id, seq, &hash, time));
        Checkpoint {
            seq,
            hash,
            time,
            signature: signature.to_bytes(),
        }
    }

    /// Whether the signature is `key`'s over this checkpoint for `device_id`.
    pub fn is_signed_by(&self, key: &VerifyingKey, device_id: &str) -> bool {
        let message = Self::message(device_id, self.seq, &self.hash, self.time);
        key.verify(&message, &Signature::from_bytes(&self.signature))
            .is_ok()
    }
}

mod sig_hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(sig: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(sig))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        let text = String::deserialize(d)?;
        let bytes = hex::decode(text).map_err(serde::de::Error::custom)?;
        <[u8; 64]>::try_from(bytes.as_slice())
            .map_err(|_| serde::de::Error::custom("a signature is 64 bytes"))
    }
}
