//! Exports signed by the sending vault: an Ed25519 signature by the vault's device key over
//! a digest of every resource the file holds and the source it names. The first import
//! from a source pins that source's key; later files from it must carry the same key.
//!
//! The digest is the same for a Bundle and a Bulk Data archive: per resource type (in
//! `RESOURCE_TYPES` order), SHA-256 over each resource's JSON, length-prefixed, in file
//! order; then SHA-256 over the domain, and each type's name and digest.

use std::collections::BTreeMap;

use base64::Engine;
use chartroom_vault::ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use super::fhir::{ED25519_SIG_FORMAT, RESOURCE_TYPES};
use crate::CoreError;

const DOMAIN: &[u8] = b"chartroom export signature v1\0";
/// Where a signature's key is named (`Signature.who.identifier.system`).
pub(crate) const KEY_SYSTEM: &str = "urn:chartroom:vault-key";

/// The digest of an export's resources, built as they are written or read.
#[derive(Default)]
pub(crate) struct ExportDigest {
    per_type: BTreeMap<String, Sha256>,
}

impl ExportDigest {
    pub fn add(&mut self, resource: &Value) {
        let kind = resource["resourceType"].as_str().unwrap_or_default();
        let bytes = serde_json::to_vec(resource).unwrap_or_default();
        let h = self.per_type.entry(kind.to_owned()).or_default();
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(&bytes);
    }

    /// The message signed: the domain, the source, then each type's digest.
    pub fn message(self, source: &str) -> Vec<u8> {
        let mut outer = Sha256::new();
        outer.update(DOMAIN);
        outer.update((source.len() as u64).to_be_bytes());
        outer.update(source.as_bytes());
        let mut per_type = self.per_type;
        // Known types in their order, then any other (an import refuses those anyway).
        let mut order: Vec<String> = RESOURCE_TYPES.iter().map(|t| (*t).to_owned()).collect();
        order.extend(
            per_type
                .keys()
                .filter(|k| !RESOURCE_TYPES.contains(&k.as_str()))
                .cloned(),
        );
        for kind in order {
            if let Some(h) = per_type.remove(&kind) {
                outer.update((kind.len() as u64).to_be_bytes());
                outer.update(kind.as_bytes());
                outer.update(h.finalize());
            }
        }
        outer.finalize().to_vec()
    }
}

/// The FHIR `Signature` an export carries (Bundle.signature, or the Bulk manifest's
/// Chartroom extension): the vault's key as `who`, the Ed25519 signature as `data`.
pub(crate) fn signature_element(key: &SigningKey, message: &[u8], when: &str) -> Value {
    let sig = key.sign(message);
    json!({
        "type": [{
            "system": "urn:iso-astm:E1762-95:2013",
            "code": "1.2.840.10065.1.12.1.14",
            "display": "Source Signature",
        }],
        "when": when,
        "who": {"identifier": {"system": KEY_SYSTEM, "value": hex::encode(key.verifying_key().as_bytes())}},
        "sigFormat": ED25519_SIG_FORMAT,
        "data": base64::engine::general_purpose::STANDARD.encode(sig.to_bytes()),
    })
}

/// Checks an export's signature against its contents; returns the signing key.
pub(crate) fn verify(signature: &Value, message: &[u8]) -> Result<[u8; 32], CoreError> {
    let damaged = |why: &str| {
        CoreError::Integrity(format!(
            "The export's signature {why}: the file was changed after the sending vault signed it. Nothing was imported."
        ))
    };
    if signature["sigFormat"].as_str() != Some(ED25519_SIG_FORMAT)
        || signature["who"]["identifier"]["system"].as_str() != Some(KEY_SYSTEM)
    {
        return Err(damaged("is not one Chartroom makes"));
    }
    let key: [u8; 32] = signature["who"]["identifier"]["value"]
        .as_str()
        .and_then(|k| hex::decode(k).ok())
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| damaged("names no key"))?;
    let sig: [u8; 64] = signature["data"]
        .as_str()
        .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| damaged("is damaged"))?;
    let public = VerifyingKey::from_bytes(&key).map_err(|_| damaged("names no key"))?;
    public
        .verify_strict(message, &Signature::from_bytes(&sig))
        .map_err(|_| damaged("does not match its contents"))?;
    Ok(key)
}

/// A key as people compare it: `SHA256:` and the first 16 bytes of its digest, in hex.
pub(crate) fn fingerprint(key: &[u8; 32]) -> String {
    format!("SHA256:{}", hex::encode(&Sha256::digest(key)[..16]))
}
