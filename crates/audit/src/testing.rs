//! Test support (feature `test-support`): plausible audit chains for the tests and
//! benchmarks of this crate and of the collector, built one way in one place. Not for
//! production code: these entries describe no real access.

use chrono::{TimeZone, Utc};

use crate::{Action, Entry, Hash, Outcome, Record, GENESIS};

/// The time of entry 0 of every chain made here (2025-10-09T08:53:20Z); entry `seq` is
/// `seq` seconds later.
pub const CHAIN_START: i64 = 1_760_000_000;

/// A physician's chart read, entry `seq` on `device`, of `patient`, with `detail`.
pub fn chart_read(seq: u64, device: &str, patient: u64, detail: Option<&str>) -> Entry {
    Entry {
        seq,
        time: Utc
            .timestamp_opt(CHAIN_START + seq as i64, 0)
            .single()
            .expect("a time within chrono's range"),
        actor_id: Some(2),
        actor: "dr.okafor".into(),
        role: Some("physician".into()),
        device_id: device.into(),
        action: Action::Read,
        event: "chart.read".into(),
        outcome: Outcome::Success,
        patient_id: Some(patient.to_string()),
        object_type: Some("Patient".into()),
        object_id: Some(patient.to_string()),
        purpose: Some("TREAT".into()),
        reason: None,
        detail: detail.map(str::to_owned),
    }
}

/// Seals `entries`, in order, into a chain that continues from `prev`.
pub fn seal_all(prev: Hash, entries: impl IntoIterator<Item = Entry>) -> Vec<Record> {
    let mut prev = prev;
    entries
        .into_iter()
        .map(|entry| {
            let rec = entry.seal(prev);
            prev = rec.hash;
            rec
        })
        .collect()
}

/// A chain of chart reads `1..=n` on `device`, the patient cycling through `patients`
/// (patient `seq % patients`), every entry with `detail`.
pub fn chain(device: &str, n: u64, patients: u64, detail: Option<&str>) -> Vec<Record> {
    seal_all(
        GENESIS,
        (1..=n).map(|seq| chart_read(seq, device, seq % patients.max(1), detail)),
    )
}
