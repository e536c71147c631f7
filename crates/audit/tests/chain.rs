//! Verification names the first bad sequence for each way a trail can be tampered with.

mod common;

use chartroom_audit::testing::chart_read;
use chartroom_audit::{verify, Checkpoint, Entry, Record, Report, SigningKey, GENESIS};

const DEVICE: &str = "d3v1c3";

/// Entry `seq` of the chains here: a chart read, the patient one of nine.
fn entry(seq: u64, device: &str) -> Entry {
    chart_read(seq, device, seq % 9, None)
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&[0x42; 32])
}

/// A chain of `n` entries with a checkpoint every `every` and one at the head.
fn chain(n: u64, every: u64) -> (Vec<Record>, Vec<Checkpoint>) {
    let key = key();
    let records =
        chartroom_audit::testing::seal_all(GENESIS, (1..=n).map(|seq| entry(seq, DEVICE)));
    let mut cps = Vec::new();
    for rec in &records {
        let seq = rec.entry.seq;
        if seq % every == 0 || seq == n {
            cps.push(Checkpoint::sign(
                &key,
                DEVICE,
                seq,
                rec.hash,
                rec.entry.time,
            ));
        }
    }
    (records, cps)
}

fn check(records: Vec<Record>, cps: Vec<Checkpoint>) -> Report {
    verify(DEVICE, &key().verifying_key(), records, cps)
}

fn first_bad(report: &Report) -> u64 {
    report.failure.as_ref().expect("verification fails").seq
}

#[test]
fn an_intact_chain_verifies() {
    let (records, cps) = chain(100, 16);
    let report = check(records, cps);
    assert!(report.ok, "{report:?}");
    assert_eq!(report.entries, 100);
    assert_eq!(report.head_seq, 100);
    assert_eq!(report.checkpoints, 7);
    assert_eq!(report.unsigned_tail, 0);
}

#[test]
fn an_empty_trail_verifies() {
    let report = check(Vec::new(), Vec::new());
    assert!(report.ok);
    assert_eq!(report.head_seq, 0);
}

#[test]
fn a_changed_field_is_named() {
    let (mut records, cps) = chain(50, 16);
    records[36].entry.patient_id = Some("999".into());
    let report = check(records, cps);
    assert_eq!(first_bad(&report), 37);
}

#[test]
fn a_changed_entry_with_a_recomputed_hash_is_named_by_its_successor() {
    let (mut records, cps) = chain(50, 16);
    records[20].entry.actor = "someone.else".into();
    records[20].hash = records[20].entry.chain_hash(&records[20].prev_hash);
    let report = check(records, cps);
    assert_eq!(first_bad(&report), 21, "{report:?}");
}

#[test]
fn a_deleted_entry_is_named() {
    let (mut records, cps) = chain(50, 16);
    records.remove(9);
    assert_eq!(first_bad(&check(records, cps)), 10);
}

#[test]
fn entries_deleted_from_the_end_are_caught_by_the_checkpoint() {
    let (mut records, cps) = chain(50, 16);
    records.truncate(45);
    let report = check(records, cps);
    assert_eq!(first_bad(&report), 46, "{report:?}");
}

#[test]
fn an_inserted_and_renumbered_entry_is_named() {
    let (records, cps) = chain(30, 16);
    // Insert a forged entry at 12 and shift the rest up by one, keeping their content.
    let mut forged: Vec<Record> = records[..11].to_vec();
    let fake = entry(12, DEVICE);
    forged.push(fake.seal(records[10].hash));
    for r in &records[11..] {
        let mut r = r.clone();
        r.entry.seq += 1;
        forged.push(r);
    }
    assert_eq!(
        first_bad(&check(forged, cps)),
        13,
        "the forged entry links, the next does not"
    );
}

#[test]
fn an_entry_that_skips_ahead_is_named() {
    let (mut records, cps) = chain(10, 100);
    // Append an entry claiming seq 20 that links straight onto 10.
    let mut e = entry(20, DEVICE);
    e.seq = 20;
    let head = records[9].hash;
    records.push(e.seal(head));
    assert_eq!(first_bad(&check(records, cps)), 20);
}

#[test]
fn a_forged_checkpoint_signature_is_named() {
    let (records, mut cps) = chain(64, 16);
    cps[1].signature[0] ^= 1;
    assert_eq!(first_bad(&check(records, cps)), 32);
}

#[test]
fn a_whole_rewritten_segment_is_caught_by_the_next_checkpoint() {
    let (records, cps) = chain(64, 16);
    // Rewrite entries 20.. with recomputed hashes; the checkpoint at 32 no longer matches.
    let mut rewritten = records[..19].to_vec();
    let mut prev = records[18].hash;
    for r in &records[19..] {
        let mut e = r.entry.clone();
        e.detail = Some("rewritten".into());
        let rec = e.seal(prev);
        prev = rec.hash;
        rewritten.push(rec);
    }
    let report = check(rewritten, cps);
    assert_eq!(first_bad(&report), 17, "{report:?}");
}

#[test]
fn a_chain_signed_by_another_key_fails() {
    let (records, cps) = chain(20, 8);
    let other = SigningKey::from_bytes(&[0x43; 32]);
    let report = verify(DEVICE, &other.verifying_key(), records, cps);
    assert_eq!(first_bad(&report), 8);
}

#[test]
fn entries_after_the_last_checkpoint_are_reported_as_unsigned() {
    let (mut records, mut cps) = chain(40, 16);
    cps.retain(|c| c.seq <= 32);
    records.truncate(40);
    let report = check(records, cps);
    assert!(report.ok);
    assert_eq!(report.unsigned_tail, 8);
}

#[test]
fn fhir_audit_events_carry_the_chain_and_the_break_glass_codes() {
    let rec = common::full_entry().seal(GENESIS);
    let ev = chartroom_audit::to_fhir_audit_event(&rec);
    assert_eq!(ev["resourceType"], "AuditEvent");
    assert_eq!(ev["type"]["code"], "110113");
    assert_eq!(ev["subtype"][0]["code"], "110127");
    assert_eq!(ev["purposeOfEvent"][0]["coding"][0]["code"], "ETREAT");
    assert_eq!(ev["entity"][0]["what"]["reference"], "Patient/1042");
    assert_eq!(
        ev["extension"][0]["extension"][2]["valueString"],
        rec.hash.to_hex()
    );
}

#[test]
fn a_removed_checkpoint_is_missed_where_the_writer_always_signs_one() {
    let key = key();
    let mut prev = GENESIS;
    let mut records = Vec::new();
    let mut cps = Vec::new();
    for seq in 1..=20 {
        let mut e = entry(seq, DEVICE);
        if seq == 7 || seq == 15 {
            e.event = "session.lock".into();
        }
        let rec = e.seal(prev);
        prev = rec.hash;
        if seq == 7 || seq == 15 {
            cps.push(Checkpoint::sign(
                &key,
                DEVICE,
                seq,
                rec.hash,
                rec.entry.time,
            ));
        }
        records.push(rec);
    }
    assert!(check(records.clone(), cps.clone()).ok);
    cps.remove(0);
    let report = check(records, cps);
    assert_eq!(first_bad(&report), 7, "{report:?}");
}
