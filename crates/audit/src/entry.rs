//! The audit entry and its canonical bytes.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Separates entry hashes from every other SHA-256 use.
pub const ENTRY_DOMAIN: &[u8] = b"chartroom.audit.entry.v1\0";
/// The "previous hash" of the first entry.
pub const GENESIS: Hash = Hash([0u8; 32]);
/// Marks the layout of the canonical bytes; a new layout gets a new tag.
const LAYOUT_V1: &[u8; 4] = b"CRA1";

/// A SHA-256 value.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(text: &str) -> Option<Hash> {
        let bytes = hex::decode(text).ok()?;
        Self::from_slice(&bytes)
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Hash> {
        <[u8; 32]>::try_from(bytes).ok().map(Hash)
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Hash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Hash::from_hex(&text).ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
    }
}

/// What was done, as FHIR AuditEvent.action codes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    #[serde(rename = "C")]
    Create,
    #[serde(rename = "R")]
    Read,
    #[serde(rename = "U")]
    Update,
    #[serde(rename = "D")]
    Delete,
    #[serde(rename = "E")]
    Execute,
}

impl Action {
    pub fn code(self) -> &'static str {
        match self {
            Action::Create => "C",
            Action::Read => "R",
            Action::Update => "U",
            Action::Delete => "D",
            Action::Execute => "E",
        }
    }
}

impl FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "C" => Action::Create,
            "R" => Action::Read,
            "U" => Action::Update,
            "D" => Action::Delete,
            "E" => Action::Execute,
            other => return Err(format!("unknown audit action {other:?}")),
        })
    }
}

/// How it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    /// Refused by the gate: the role, a restriction, or an expired session.
    Denied,
    /// Attempted and failed: a wrong password, an error.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
        }
    }
}

impl FromStr for Outcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "success" => Outcome::Success,
            "denied" => Outcome::Denied,
            "failed" => Outcome::Failed,
            other => return Err(format!("unknown audit outcome {other:?}")),
        })
    }
}

/// One audited event, after FHIR R4 AuditEvent and IHE ATNA.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// 1, 2, 3, … per device, without gaps.
    pub seq: u64,
    /// When it happened (UTC, microseconds).
    pub time: DateTime<Utc>,
    /// The user's row id, when the actor is a known user.
    pub actor_id: Option<i64>,
    /// The user name as typed or stored; "recovery key" or "system" for those actors.
    pub actor: String,
    /// The actor's role at the time, when known.
    pub role: Option<String>,
    /// The device (vault) the entry was written on.
    pub device_id: String,
    pub action: Action,
    /// What happened, e.g. `chart.read`, `session.unlock`, `break_glass`.
    pub event: String,
    pub outcome: Outcome,
    /// The patient involved, if any.
    pub patient_id: Option<String>,
    /// The thing touched: its type (e.g. `Patient`, `User`) and id.
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    /// Purpose of use, as v3-ActReason codes (`TREAT`, `ETREAT`, `HOPERAT`).
    pub purpose: Option<String>,
    /// The stated reason, for break-the-glass.
    pub reason: Option<String>,
    /// A short, PHI-free detail: a result count, why something was denied.
    pub detail: Option<String>,
}

impl Entry {
    /// The canonical bytes: `CRA1`, the sequence (u64 BE), the time (i64 BE microseconds),
    /// then each field in declaration order as a presence byte (0 absent, 1 present) and, if
    /// present, a u32 BE length and the UTF-8 bytes (`actor_id` as i64 BE; action and
    /// outcome as their one-word codes). The same entry always gives the same bytes.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        out.extend_from_slice(LAYOUT_V1);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.time.timestamp_micros().to_be_bytes());
        match self.actor_id {
            Some(id) => {
                out.push(1);
                out.extend_from_slice(&id.to_be_bytes());
            }
            None => out.push(0),
        }
        put(&mut out, Some(&self.actor));
        put(&mut out, self.role.as_deref());
        put(&mut out, Some(&self.device_id));
        put(&mut out, Some(self.action.code()));
        put(&mut out, Some(&self.event));
        put(&mut out, Some(self.outcome.as_str()));
        put(&mut out, self.patient_id.as_deref());
        put(&mut out, self.object_type.as_deref());
        put(&mut out, self.object_id.as_deref());
        put(&mut out, self.purpose.as_deref());
        put(&mut out, self.reason.as_deref());
        put(&mut out, self.detail.as_deref());
        out
    }

    /// This entry's hash when it follows an entry whose hash is `prev`.
    pub fn chain_hash(&self, prev: &Hash) -> Hash {
        let mut h = Sha256::new();
        h.update(ENTRY_DOMAIN);
        h.update(prev.0);
        h.update(self.canonical_bytes());
        Hash(h.finalize().into())
    }

    /// Seals the entry onto a chain whose head hash is `prev`.
    pub fn seal(self, prev: Hash) -> Record {
        let hash = self.chain_hash(&prev);
        Record {
            entry: self,
            prev_hash: prev,
            hash,
        }
    }
}

fn put(out: &mut Vec<u8>, field: Option<&str>) {
    match field {
        Some(text) => {
            out.push(1);
            // Fields are short; a u32 length can only overflow on absurd input, which would
            // still be unambiguous because the bytes follow.
            out.extend_from_slice(&u32::try_from(text.len()).unwrap_or(u32::MAX).to_be_bytes());
            out.extend_from_slice(text.as_bytes());
        }
        None => out.push(0),
    }
}

/// An entry as stored: with the hash of its predecessor and its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    #[serde(flatten)]
    pub entry: Entry,
    pub prev_hash: Hash,
    pub hash: Hash,
}

impl Record {
    /// Whether the stored hash is the hash of the stored content.
    pub fn is_self_consistent(&self) -> bool {
        self.entry.chain_hash(&self.prev_hash) == self.hash
    }
}
