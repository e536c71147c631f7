//! The sync protocol between a desktop and the clinic's collector, and the collector's check
//! of a pushed batch. Pure: the collector stores, the desktop sends, both agree here on what
//! a valid batch is.
//!
//! A batch is a run of consecutive records from one device's chain and a checkpoint the
//! device signed over the batch's last record. The chain links every record to that head,
//! so one signature authenticates the whole batch.

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::{Checkpoint, Hash, Record, GENESIS};

/// The most records one push may carry; the desktop sends at most this many.
pub const MAX_BATCH: usize = 1000;

/// `POST /v1/enroll`: a device registers its public key with a one-time token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    pub token: String,
    pub device_id: String,
    /// The device's Ed25519 public key, 64 hex digits.
    pub public_key: String,
    /// What the clinic calls this computer ("front desk PC").
    #[serde(default)]
    pub label: Option<String>,
}

/// `POST /v1/push`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushBatch {
    pub device_id: String,
    pub records: Vec<Record>,
    /// The device's signed checkpoints within the batch, in order; the last one covers the
    /// batch's last record (the desktop signs one for the push when it has none there).
    pub checkpoints: Vec<Checkpoint>,
    /// The vault's security log head as the device has it: the collector refuses a log that
    /// is shorter than one it was shown before, or that differs where it overlaps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_log: Option<SecurityLogHead>,
    /// Sent once by a vault restored from a backup: its chain goes on from the backup's
    /// head, superseding what the collector holds after it (kept, not deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch_start: Option<EpochStart>,
}

/// A restored vault's signed statement that its trail goes on from an earlier point of its
/// own chain (the backup's head) rather than from the collector's head. The collector
/// accepts it only when `base` is an entry it holds from this device and `follows` is its
/// current head; what it holds after `base` becomes the closed epoch `epoch - 1`, kept and
/// still queried and verified, and an alert says "restored from backup".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochStart {
    /// The new epoch's number: one more than the collector's current one for the device.
    pub epoch: u64,
    /// The backup's head: the batch's first record follows it.
    pub base_seq: u64,
    pub base_hash: Hash,
    /// The collector's head this epoch supersedes, as the collector reported it.
    pub follows_seq: u64,
    pub follows_hash: Hash,
    /// When the device signed this statement (RFC 3339).
    pub time: String,
    /// The device's Ed25519 signature over [`EpochStart::message`], 128 hex digits.
    pub signature: String,
}

impl EpochStart {
    /// What the device signs: every field but the signature, and the device id.
    pub fn message(&self, device_id: &str) -> Vec<u8> {
        let mut m = b"chartroom epoch start v1\0".to_vec();
        for part in [
            device_id.to_owned(),
            self.epoch.to_string(),
            self.base_seq.to_string(),
            self.base_hash.to_hex(),
            self.follows_seq.to_string(),
            self.follows_hash.to_hex(),
            self.time.clone(),
        ] {
            m.extend_from_slice(part.as_bytes());
            m.push(0);
        }
        m
    }

    /// Signs a statement with the device's key.
    #[allow(clippy::too_many_arguments)]
    pub fn sign(
        key: &ed25519_dalek::SigningKey,
        device_id: &str,
        epoch: u64,
        base: (u64, Hash),
        follows: (u64, Hash),
        time: chrono::DateTime<chrono::Utc>,
    ) -> EpochStart {
        use ed25519_dalek::Signer;
        let mut start = EpochStart {
            epoch,
            base_seq: base.0,
            base_hash: base.1,
            follows_seq: follows.0,
            follows_hash: follows.1,
            time: crate::format_time(time),
            signature: String::new(),
        };
        start.signature = hex::encode(key.sign(&start.message(device_id)).to_bytes());
        start
    }

    /// Whether the device's key signed this statement.
    pub fn is_signed_by(&self, key: &VerifyingKey, device_id: &str) -> bool {
        let Some(sig) = hex::decode(&self.signature)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
        else {
            return false;
        };
        key.verify_strict(
            &self.message(device_id),
            &ed25519_dalek::Signature::from_bytes(&sig),
        )
        .is_ok()
    }
}

/// A security log's length and last hash, and its hash at the length the collector holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityLogHead {
    pub entries: u64,
    /// The last entry's hash, 64 hex digits.
    pub hash: String,
    /// The hash (64 hex digits) of entry `known - 1`, where `known` is the length the
    /// collector said it holds (`Head::security_entries`); absent when it holds none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_known: Option<(u64, String)>,
}

/// What the collector holds for a device after a push (or on `GET /v1/devices/{id}/head`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub device_id: String,
    /// The highest sequence stored; 0 for none.
    pub seq: u64,
    pub hash: Hash,
    /// The length of the device's security log the collector holds; 0 for none.
    #[serde(default)]
    pub security_entries: u64,
    /// How many times the device's trail was restored from a backup (0 for never): the
    /// epoch its head belongs to.
    #[serde(default)]
    pub epoch: u64,
}

/// The collector's answer to a push.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushAck {
    pub head: Head,
    /// Records newly stored by this push.
    pub stored: u64,
    /// Records the collector already held, identical (a replay or a retry).
    pub duplicates: u64,
}

/// Why a batch is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("the batch is empty")]
    Empty,
    #[error("the batch holds {0} records; at most {MAX_BATCH} are accepted")]
    TooLarge(usize),
    #[error("a checkpoint is not signed by this device's key")]
    BadSignature,
    #[error(
        "the checkpoints do not match the batch's records (the last must cover its last record)"
    )]
    CheckpointMismatch,
    #[error("record {0} is not self-consistent (its hash does not match its content)")]
    BadRecord(u64),
    #[error("record {0} does not follow the one before it")]
    BrokenChain(u64),
    #[error("record {0} is for another device")]
    WrongDevice(u64),
    #[error("the batch starts at {first}, but the collector holds only up to {head}: records are missing")]
    Gap { first: u64, head: u64 },
    #[error("record {seq} differs from the one the collector already holds: the device's history was rewritten")]
    Fork { seq: u64 },
    #[error("the security log was cut back or rewritten: the collector holds {held} entries, and the device's log {offered}")]
    SecurityLog { held: u64, offered: String },
    #[error("the restore statement is refused: {0}")]
    EpochStart(&'static str),
}

/// The longest text an entry's fields may hold, in bytes: the collector refuses a record
/// past them before it is stored or logged, and the desktop clips to them when it writes.
pub mod limits {
    /// `detail`: a short, PHI-free detail (a count, what a repair undid).
    pub const DETAIL: usize = 16 * 1024;
    /// `reason`: a break-the-glass reason or an export's purpose.
    pub const REASON: usize = 4 * 1024;
    /// `actor` (a user name, or `unknown user (TAG)`).
    pub const ACTOR: usize = 256;
    /// Every other text field: `role`, `event`, `patient_id`, `object_type`, `object_id`,
    /// `purpose`.
    pub const SHORT: usize = 256;
    /// A device id: 1 to this many letters, digits, `-` or `_`.
    pub const DEVICE_ID: usize = 128;
    /// An enrollment token (48 hex digits as issued).
    pub const TOKEN: usize = 128;
    /// What the collector keeps of a device's label.
    pub const LABEL: usize = 100;
}

/// Text clipped to at most `max` bytes, at a character boundary.
pub fn clip(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Whether `id` is a device id: 1 to 128 letters, digits, `-` or `_`. Checked before a
/// device id is used for anything (a lookup, a lock, a log line).
pub fn valid_device_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= limits::DEVICE_ID
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|c| c.is_ascii_hexdigit())
}

/// Why a request body is refused before anything else looks at it; the message names the
/// field, never its content.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ShapeError(pub &'static str);

/// The header carrying the time a head request was signed at (RFC 3339).
pub const HEAD_TIME_HEADER: &str = "x-chartroom-time";
/// The header carrying the device's Ed25519 signature over [`head_request_message`], hex.
pub const HEAD_SIGNATURE_HEADER: &str = "x-chartroom-signature";
/// How far a signed head request's time may be from the collector's clock.
pub const HEAD_REQUEST_SKEW_SECONDS: i64 = 300;

/// What a device signs to ask for its own head (`GET /v1/devices/{id}/head`): only the
/// device learns how far the collector holds its trail.
pub fn head_request_message(device_id: &str, time: &str) -> Vec<u8> {
    let mut m = b"chartroom head request v1\0".to_vec();
    m.extend_from_slice(device_id.as_bytes());
    m.push(0);
    m.extend_from_slice(time.as_bytes());
    m
}

/// Checks a signed head request: the device's signature over its id and a time within
/// [`HEAD_REQUEST_SKEW_SECONDS`] of `now`.
pub fn check_head_request(
    device_id: &str,
    time: &str,
    signature_hex: &str,
    key: &VerifyingKey,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    let Some(at) = crate::parse_time(time) else {
        return false;
    };
    if (now - at).num_seconds().abs() > HEAD_REQUEST_SKEW_SECONDS {
        return false;
    }
    let Some(sig) = hex::decode(signature_hex)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
    else {
        return false;
    };
    key.verify_strict(
        &head_request_message(device_id, time),
        &ed25519_dalek::Signature::from_bytes(&sig),
    )
    .is_ok()
}

/// Checks every field of an enrollment's shape and size.
pub fn validate_enroll(req: &EnrollRequest) -> Result<(), ShapeError> {
    if !valid_device_id(&req.device_id) {
        return Err(ShapeError(
            "device_id must be 1 to 128 letters, digits, - or _",
        ));
    }
    if req.token.is_empty() || req.token.len() > limits::TOKEN {
        return Err(ShapeError("token must be 1 to 128 characters"));
    }
    if !is_hex(&req.public_key, 64) {
        return Err(ShapeError(
            "public_key must be an Ed25519 public key in 64 hex digits",
        ));
    }
    if req
        .label
        .as_ref()
        .is_some_and(|l| l.len() > 4 * limits::LABEL)
    {
        return Err(ShapeError("label must be at most 100 characters"));
    }
    Ok(())
}

/// Checks every field of a push's shape and size (not yet its signatures or its chain).
pub fn validate_push(batch: &PushBatch) -> Result<(), ShapeError> {
    if !valid_device_id(&batch.device_id) {
        return Err(ShapeError(
            "device_id must be 1 to 128 letters, digits, - or _",
        ));
    }
    if batch.records.len() > MAX_BATCH {
        return Err(ShapeError("a push holds at most 1000 records"));
    }
    if batch.checkpoints.len() > batch.records.len() + 1 {
        return Err(ShapeError("a push holds more checkpoints than records"));
    }
    for r in &batch.records {
        let e = &r.entry;
        let short = [
            e.role.as_deref(),
            Some(e.event.as_str()),
            e.patient_id.as_deref(),
            e.object_type.as_deref(),
            e.object_id.as_deref(),
            e.purpose.as_deref(),
        ];
        if e.actor.len() > limits::ACTOR
            || short.iter().flatten().any(|t| t.len() > limits::SHORT)
            || e.reason.as_ref().is_some_and(|t| t.len() > limits::REASON)
            || e.detail.as_ref().is_some_and(|t| t.len() > limits::DETAIL)
            || e.device_id.len() > limits::DEVICE_ID
        {
            return Err(ShapeError(
                "a record has a field longer than the collector accepts",
            ));
        }
    }
    if let Some(start) = &batch.epoch_start {
        if start.time.len() > 64 || !is_hex(&start.signature, 128) {
            return Err(ShapeError(
                "epoch_start needs a time and a signature in 128 hex digits",
            ));
        }
    }
    if let Some(head) = &batch.security_log {
        let at_known_ok = head.at_known.as_ref().is_none_or(|(_, h)| is_hex(h, 64));
        if !is_hex(&head.hash, 64) || !at_known_ok {
            return Err(ShapeError("security_log hashes must be 64 hex digits"));
        }
    }
    Ok(())
}

/// Checks that a batch is well formed and signed, before it is compared with what is stored.
pub fn check_batch(batch: &PushBatch, key: &VerifyingKey) -> Result<(), BatchError> {
    let (first, last) = match (batch.records.first(), batch.records.last()) {
        (Some(f), Some(l)) => (f, l),
        _ => return Err(BatchError::Empty),
    };
    if batch.records.len() > MAX_BATCH {
        return Err(BatchError::TooLarge(batch.records.len()));
    }
    let mut prev: Option<&Record> = None;
    for rec in &batch.records {
        if rec.entry.device_id != batch.device_id {
            return Err(BatchError::WrongDevice(rec.entry.seq));
        }
        if !rec.is_self_consistent() {
            return Err(BatchError::BadRecord(rec.entry.seq));
        }
        if let Some(p) = prev {
            if rec.entry.seq != p.entry.seq + 1 || rec.prev_hash != p.hash {
                return Err(BatchError::BrokenChain(rec.entry.seq));
            }
        }
        prev = Some(rec);
    }
    let Some(final_checkpoint) = batch.checkpoints.last() else {
        return Err(BatchError::CheckpointMismatch);
    };
    if final_checkpoint.seq != last.entry.seq || final_checkpoint.hash != last.hash {
        return Err(BatchError::CheckpointMismatch);
    }
    let first_seq = first.entry.seq;
    let mut previous = 0;
    for cp in &batch.checkpoints {
        if !cp.is_signed_by(key, &batch.device_id) {
            return Err(BatchError::BadSignature);
        }
        let in_batch = cp
            .seq
            .checked_sub(first_seq)
            .and_then(|i| batch.records.get(i as usize));
        if cp.seq <= previous || in_batch.is_none_or(|r| r.entry.seq != cp.seq || r.hash != cp.hash)
        {
            return Err(BatchError::CheckpointMismatch);
        }
        previous = cp.seq;
    }
    if first.entry.seq == 1 && first.prev_hash != GENESIS {
        return Err(BatchError::BrokenChain(1));
    }
    if let Some(start) = &batch.epoch_start {
        if !start.is_signed_by(key, &batch.device_id) || crate::parse_time(&start.time).is_none() {
            return Err(BatchError::EpochStart(
                "it is not signed by this device's key",
            ));
        }
        if start.epoch == 0 || start.base_seq >= start.follows_seq {
            return Err(BatchError::EpochStart(
                "it must follow a head past the backup's",
            ));
        }
        if first.entry.seq != start.base_seq + 1 || first.prev_hash != start.base_hash {
            return Err(BatchError::EpochStart(
                "the batch does not start right after the backup's head",
            ));
        }
    }
    Ok(())
}

/// How a checked batch meets what the collector holds for the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Index in `records` of the first record to store (those before are already held).
    pub store_from: usize,
}

/// Compares a checked batch with the stored chain. `stored_hash(seq)` gives the hash held
/// for a sequence (None when not held); `head` is the highest held.
pub fn plan_batch(
    batch: &PushBatch,
    head: u64,
    stored_hash: impl Fn(u64) -> Option<Hash>,
) -> Result<Plan, BatchError> {
    let first = batch.records.first().ok_or(BatchError::Empty)?.entry.seq;
    if first > head + 1 {
        return Err(BatchError::Gap { first, head });
    }
    // What the batch holds that the collector has: it must be identical.
    let mut store_from = batch.records.len();
    for (i, rec) in batch.records.iter().enumerate() {
        let seq = rec.entry.seq;
        if seq > head {
            store_from = i;
            break;
        }
        if stored_hash(seq) != Some(rec.hash) {
            return Err(BatchError::Fork { seq });
        }
    }
    // The first new record must continue the stored head.
    if let Some(rec) = batch.records.get(store_from) {
        let expected = if rec.entry.seq == 1 {
            Some(GENESIS)
        } else {
            stored_hash(rec.entry.seq - 1)
        };
        if expected != Some(rec.prev_hash) {
            return Err(BatchError::Fork {
                seq: rec.entry.seq - 1,
            });
        }
    }
    Ok(Plan { store_from })
}

/// Whether a push's security log head continues the one the collector holds (`held`: its
/// length and last hash). A log shorter than before, a different hash at the same length, a
/// longer log whose hash at the held length differs, or a head no longer sent at all: the
/// log was cut back or rewritten.
pub fn check_security_head(
    offered: Option<&SecurityLogHead>,
    held: Option<(u64, &str)>,
) -> Result<(), BatchError> {
    let Some((m, held_hash)) = held.filter(|(m, _)| *m > 0) else {
        return Ok(());
    };
    let refuse = |offered: String| BatchError::SecurityLog { held: m, offered };
    let Some(o) = offered else {
        return Err(refuse("is not sent any more".into()));
    };
    if o.entries < m {
        return Err(refuse(format!("has {}", o.entries)));
    }
    let at_m = if o.entries == m {
        Some(o.hash.as_str())
    } else {
        o.at_known
            .as_ref()
            .filter(|(k, _)| *k == m)
            .map(|(_, h)| h.as_str())
    };
    if at_m.is_some_and(|h| h.eq_ignore_ascii_case(held_hash)) {
        Ok(())
    } else {
        Err(refuse(format!(
            "has {} with other entries where they overlap",
            o.entries
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SigningKey;

    #[test]
    fn a_security_log_cut_back_or_rewritten_is_refused() {
        let head = |n: u64, h: &str, known: Option<(u64, &str)>| SecurityLogHead {
            entries: n,
            hash: h.into(),
            at_known: known.map(|(k, h)| (k, h.to_owned())),
        };
        assert!(check_security_head(Some(&head(3, "aa", None)), None).is_ok());
        assert!(check_security_head(Some(&head(3, "aa", None)), Some((3, "aa"))).is_ok());
        assert!(
            check_security_head(Some(&head(5, "cc", Some((3, "aa")))), Some((3, "aa"))).is_ok()
        );
        for bad in [
            head(2, "bb", None),
            head(3, "ab", None),
            head(5, "cc", Some((3, "ab"))),
            head(5, "cc", None),
        ] {
            assert!(
                matches!(
                    check_security_head(Some(&bad), Some((3, "aa"))),
                    Err(BatchError::SecurityLog { held: 3, .. })
                ),
                "{bad:?}"
            );
        }
        assert!(check_security_head(None, Some((3, "aa"))).is_err());
    }

    const DEVICE: &str = "device-a";

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn chain(n: u64, detail: &str) -> Vec<Record> {
        crate::testing::chain(DEVICE, n, u64::MAX, Some(detail))
    }

    fn batch(records: &[Record], signer: &SigningKey) -> PushBatch {
        let last = records.last().expect("records");
        PushBatch {
            security_log: None,
            epoch_start: None,
            device_id: DEVICE.into(),
            records: records.to_vec(),
            checkpoints: vec![Checkpoint::sign(
                signer,
                DEVICE,
                last.entry.seq,
                last.hash,
                last.entry.time,
            )],
        }
    }

    #[test]
    fn a_signed_run_continuing_the_head_is_stored_from_where_the_collector_stops() {
        let k = key(1);
        let all = chain(10, "x");
        let b = batch(&all[3..10], &k);
        check_batch(&b, &k.verifying_key()).expect("valid");
        let held = |seq: u64| (seq <= 6).then(|| all[seq as usize - 1].hash);
        assert_eq!(plan_batch(&b, 6, held), Ok(Plan { store_from: 3 }));
        // A replay of what is all held stores nothing.
        let replay = batch(&all[0..6], &k);
        assert_eq!(plan_batch(&replay, 6, held), Ok(Plan { store_from: 6 }));
    }

    #[test]
    fn forged_gapped_and_rewritten_batches_are_refused() {
        let k = key(1);
        let all = chain(10, "x");
        let vk = k.verifying_key();
        assert_eq!(
            check_batch(&batch(&all, &key(2)), &vk),
            Err(BatchError::BadSignature)
        );
        let mut broken = batch(&all, &k);
        broken.records.remove(4);
        assert_eq!(check_batch(&broken, &vk), Err(BatchError::BrokenChain(6)));
        let mut altered = batch(&all, &k);
        altered.records[2].entry.detail = Some("changed".into());
        assert_eq!(check_batch(&altered, &vk), Err(BatchError::BadRecord(3)));
        // A gap: the collector holds 3, the batch starts at 6.
        let held = |seq: u64| (seq <= 3).then(|| all[seq as usize - 1].hash);
        assert_eq!(
            plan_batch(&batch(&all[5..], &k), 3, held),
            Err(BatchError::Gap { first: 6, head: 3 })
        );
        // History rewritten, hashes recomputed and the checkpoint re-signed with the real key.
        let rewritten = chain(10, "rewritten");
        let b = batch(&rewritten[2..], &k);
        check_batch(&b, &vk).expect("well formed on its own");
        let held = |seq: u64| (seq <= 5).then(|| all[seq as usize - 1].hash);
        assert_eq!(plan_batch(&b, 5, held), Err(BatchError::Fork { seq: 3 }));
        // Rewritten past the head only: the new records do not continue the held head.
        let b = batch(&rewritten[5..], &k);
        assert_eq!(plan_batch(&b, 5, held), Err(BatchError::Fork { seq: 5 }));
    }
}
