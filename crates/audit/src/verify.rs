//! Verification: walks a chain in sequence order and names the first entry that is wrong.
//!
//! It is a streaming state machine ([`Verifier`]) so a million entries never sit in memory,
//! and the collector can feed it batch by batch. [`verify`] is the one-call form.

use ed25519_dalek::VerifyingKey;
use serde::Serialize;

use crate::checkpoint::Checkpoint;
use crate::entry::{Hash, Record, GENESIS};

/// Where and why verification failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The first sequence number that cannot be trusted.
    pub seq: u64,
    /// What is wrong there, in words.
    pub reason: String,
}

/// The result of verifying a chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub ok: bool,
    /// Entries read.
    pub entries: u64,
    /// The last sequence and hash read (0 and the genesis hash for an empty trail).
    pub head_seq: u64,
    pub head_hash: Hash,
    /// Checkpoints whose signature and hash were checked.
    pub checkpoints: u64,
    /// The newest checkpoint that verified, if any.
    pub last_checkpoint_seq: Option<u64>,
    /// Entries after the newest verified checkpoint: held by the hash chain, not yet by a
    /// signature.
    pub unsigned_tail: u64,
    pub failure: Option<Failure>,
}

/// A checkpoint is signed every this many entries, and at every lock and idle logoff.
pub const CHECKPOINT_EVERY: u64 = 256;

/// Whether the writer always signs a checkpoint at this entry, so its absence means one was
/// removed.
pub fn requires_checkpoint(entry: &crate::Entry) -> bool {
    entry.seq % CHECKPOINT_EVERY == 0
        || matches!(entry.event.as_str(), "session.lock" | "session.idle_logoff")
}

/// Verifies one device's chain entry by entry.
#[derive(Debug)]
pub struct Verifier<'k> {
    device_id: String,
    key: &'k VerifyingKey,
    checkpoints: Vec<Checkpoint>,
    next_checkpoint: usize,
    expected_seq: u64,
    prev_hash: Hash,
    /// The previous entry sits exactly at a checkpoint that verified, so it is proven.
    prev_proven: bool,
    last_good_checkpoint: Option<u64>,
    checked_checkpoints: u64,
    entries: u64,
    failure: Option<Failure>,
}

impl<'k> Verifier<'k> {
    /// Starts at the beginning of `device_id`'s chain. `checkpoints` may come in any order.
    pub fn new(device_id: &str, key: &'k VerifyingKey, mut checkpoints: Vec<Checkpoint>) -> Self {
        checkpoints.sort_by_key(|c| c.seq);
        Self {
            device_id: device_id.to_owned(),
            key,
            checkpoints,
            next_checkpoint: 0,
            expected_seq: 1,
            prev_hash: GENESIS,
            prev_proven: true,
            last_good_checkpoint: None,
            checked_checkpoints: 0,
            entries: 0,
            failure: None,
        }
    }

    /// Starts after entry `seq` whose hash is `hash`, proven elsewhere: a segment of a chain
    /// (a restored device's closed epoch, which goes on from an entry held before it).
    pub fn resume(
        device_id: &str,
        key: &'k VerifyingKey,
        checkpoints: Vec<Checkpoint>,
        seq: u64,
        hash: Hash,
    ) -> Self {
        let mut v = Self::new(device_id, key, checkpoints);
        v.expected_seq = seq + 1;
        v.prev_hash = hash;
        v.checkpoints.retain(|c| c.seq > seq);
        v
    }

    fn fail(&mut self, seq: u64, reason: String) -> bool {
        self.failure = Some(Failure { seq, reason });
        false
    }

    /// Checks the next record. Returns false once the chain has failed; later records are
    /// then ignored.
    pub fn push(&mut self, rec: &Record) -> bool {
        if self.failure.is_some() {
            return false;
        }
        let seq = rec.entry.seq;
        let consistent = rec.is_self_consistent();
        let linked = rec.prev_hash == self.prev_hash;

        if seq != self.expected_seq {
            let expected = self.expected_seq;
            if seq < expected {
                return self.fail(
                    seq,
                    format!(
                        "entry {seq} appears again or out of order after entry {}",
                        expected - 1
                    ),
                );
            }
            if consistent && linked {
                return self.fail(
                    seq,
                    format!(
                        "entry {seq} claims to follow entry {} directly: it was inserted or renumbered",
                        expected - 1
                    ),
                );
            }
            let reason = if seq - expected == 1 {
                format!("entry {expected} is missing")
            } else {
                format!("entries {expected} to {} are missing", seq - 1)
            };
            return self.fail(expected, reason);
        }

        if !consistent {
            return self.fail(
                seq,
                format!("entry {seq} was changed after it was written: its content does not match its hash"),
            );
        }
        if !linked {
            if self.prev_proven || seq == 1 {
                return self.fail(
                    seq,
                    format!("entry {seq} does not link to the entry before it"),
                );
            }
            return self.fail(
                seq - 1,
                format!(
                    "entry {} was changed after it was written: entry {seq} recorded a different hash for it",
                    seq - 1
                ),
            );
        }

        self.prev_proven = false;
        let mut checkpointed = false;
        while let Some(cp) = self.checkpoints.get(self.next_checkpoint) {
            if cp.seq > seq {
                break;
            }
            self.next_checkpoint += 1;
            // cp.seq == seq here: a checkpoint below it would have been met at its own entry.
            if !cp.is_signed_by(self.key, &self.device_id) {
                return self.fail(
                    cp.seq,
                    format!(
                        "the checkpoint at entry {} does not carry this device's signature",
                        cp.seq
                    ),
                );
            }
            if cp.hash != rec.hash {
                let from = self.last_good_checkpoint.map_or(1, |s| s + 1);
                return self.fail(
                    from,
                    format!(
                        "entries from {from} to {seq} were rewritten: the chain no longer matches the checkpoint the device signed at entry {seq}"
                    ),
                );
            }
            self.checked_checkpoints += 1;
            self.last_good_checkpoint = Some(seq);
            self.prev_proven = true;
            checkpointed = true;
        }
        if !checkpointed && requires_checkpoint(&rec.entry) {
            return self.fail(
                seq,
                format!(
                    "the signed checkpoint of entry {seq} is missing: checkpoints were removed"
                ),
            );
        }

        self.prev_hash = rec.hash;
        self.expected_seq = seq + 1;
        self.entries += 1;
        true
    }

    /// Ends the walk: checkpoints beyond the last entry mean entries were removed from the end.
    pub fn finish(mut self) -> Report {
        let head_seq = self.expected_seq - 1;
        if self.failure.is_none() {
            if let Some(cp) = self.checkpoints.get(self.next_checkpoint).cloned() {
                if cp.is_signed_by(self.key, &self.device_id) {
                    self.fail(
                        head_seq + 1,
                        format!(
                            "entries {} to {} are missing: the device signed a checkpoint at entry {}",
                            head_seq + 1,
                            cp.seq,
                            cp.seq
                        ),
                    );
                } else {
                    self.fail(
                        cp.seq,
                        format!(
                            "the checkpoint at entry {} does not carry this device's signature",
                            cp.seq
                        ),
                    );
                }
            }
        }
        Report {
            ok: self.failure.is_none(),
            entries: self.entries,
            head_seq,
            head_hash: self.prev_hash,
            checkpoints: self.checked_checkpoints,
            last_checkpoint_seq: self.last_good_checkpoint,
            unsigned_tail: head_seq - self.last_good_checkpoint.unwrap_or(0),
            failure: self.failure,
        }
    }
}

/// Verifies a whole chain: `records` in sequence order, the device's `checkpoints`, its
/// public `key`. Returns the first sequence that fails and why, or ok.
pub fn verify<I>(
    device_id: &str,
    key: &VerifyingKey,
    records: I,
    checkpoints: Vec<Checkpoint>,
) -> Report
where
    I: IntoIterator<Item = Record>,
{
    let mut v = Verifier::new(device_id, key, checkpoints);
    for rec in records {
        if !v.push(&rec) {
            break;
        }
    }
    v.finish()
}
