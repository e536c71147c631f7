//! Hash-chain throughput: sealing entries and verifying 1,000,000 of them.
//!
//! `cargo bench -p chartroom-audit` prints entries per second. The chain is built in memory, so
//! this measures the pure cost (canonical bytes, SHA-256, Ed25519 checkpoints); the database's
//! share is measured in chartroom-core's bench.

use std::time::Instant;

use chartroom_audit::{verify, Action, Checkpoint, Entry, Outcome, SigningKey, GENESIS};
use chrono::{TimeZone, Utc};

const ENTRIES: u64 = 1_000_000;
const CHECKPOINT_EVERY: u64 = 256;

fn main() {
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let device = "5f0c6a1e9b3d4c27a8e1f0b2c3d4e5f6";
    let start_time = Utc
        .with_ymd_and_hms(2026, 1, 5, 8, 0, 0)
        .single()
        .expect("valid time");

    let t = Instant::now();
    let mut records = Vec::with_capacity(ENTRIES as usize);
    let mut checkpoints = Vec::new();
    let mut prev = GENESIS;
    for seq in 1..=ENTRIES {
        let entry = Entry {
            seq,
            time: start_time + chrono::Duration::milliseconds(seq as i64 * 250),
            actor_id: Some(3 + (seq % 7) as i64),
            actor: format!("clinician{}", seq % 7),
            role: Some("physician".into()),
            device_id: device.into(),
            action: Action::Read,
            event: "chart.read".into(),
            outcome: Outcome::Success,
            patient_id: Some((seq % 100_000).to_string()),
            object_type: Some("Patient".into()),
            object_id: Some((seq % 100_000).to_string()),
            purpose: Some("TREAT".into()),
            reason: None,
            detail: None,
        };
        let rec = entry.seal(prev);
        prev = rec.hash;
        if seq % CHECKPOINT_EVERY == 0 {
            checkpoints.push(Checkpoint::sign(
                &key,
                device,
                seq,
                rec.hash,
                rec.entry.time,
            ));
        }
        records.push(rec);
    }
    let seal = t.elapsed();
    let bytes: usize = records
        .iter()
        .map(|r| r.entry.canonical_bytes().len())
        .sum();

    let vk = key.verifying_key();
    let t = Instant::now();
    let report = verify(device, &vk, records.iter().cloned(), checkpoints.clone());
    let verify_time = t.elapsed();
    assert!(report.ok, "the generated chain verifies");

    println!("audit chain, {ENTRIES} entries ({} bytes canonical on average), a checkpoint every {CHECKPOINT_EVERY}", bytes as u64 / ENTRIES);
    println!(
        "  seal (canonical bytes + SHA-256 + checkpoint signatures): {:>7.0} ms  {:>10.0} entries/s",
        seal.as_secs_f64() * 1e3,
        ENTRIES as f64 / seal.as_secs_f64()
    );
    println!(
        "  verify (hashes + {} signature checks):               {:>7.0} ms  {:>10.0} entries/s",
        report.checkpoints,
        verify_time.as_secs_f64() * 1e3,
        ENTRIES as f64 / verify_time.as_secs_f64()
    );
}
