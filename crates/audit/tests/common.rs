//! Entries shared by the golden-vector and chain tests.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use chartroom_audit::{Action, Entry, Outcome};
use chrono::{TimeZone, Utc};

/// A fixed entry with every optional field present.
pub fn full_entry() -> Entry {
    Entry {
        seq: 42,
        time: Utc
            .with_ymd_and_hms(2026, 3, 2, 14, 5, 9)
            .single()
            .expect("valid time")
            + chrono::Duration::microseconds(123_456),
        actor_id: Some(7),
        actor: "dr.okafor".into(),
        role: Some("physician".into()),
        device_id: "0123456789abcdef0123456789abcdef".into(),
        action: Action::Execute,
        event: "break_glass".into(),
        outcome: Outcome::Success,
        patient_id: Some("1042".into()),
        object_type: Some("Patient".into()),
        object_id: Some("1042".into()),
        purpose: Some("ETREAT".into()),
        reason: Some("Unconscious in the waiting room; Müller's chart needed now".into()),
        detail: Some("60 minutes".into()),
    }
}

/// A fixed entry with every optional field absent.
pub fn sparse_entry() -> Entry {
    Entry {
        seq: 1,
        time: Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("valid time"),
        actor_id: None,
        actor: "nobody".into(),
        role: None,
        device_id: "0123456789abcdef0123456789abcdef".into(),
        action: Action::Execute,
        event: "session.unlock".into(),
        outcome: Outcome::Failed,
        patient_id: None,
        object_type: None,
        object_id: None,
        purpose: None,
        reason: None,
        detail: None,
    }
}
