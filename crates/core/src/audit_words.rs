//! The audit trail in a clinic's words: what each event name and purpose-of-use code means,
//! written down once, for the auditor's view, its event picker and the CLI.

use serde::Serialize;

/// One event name with the words it reads as, and the group it is listed under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct EventWords {
    /// As the trail stores it (`chart.read`).
    pub event: &'static str,
    /// As a person says it ("Opened a chart").
    pub words: &'static str,
    /// Where a list of events shows it ("Charts and patients").
    pub group: &'static str,
}

/// One purpose-of-use code (HL7 v3 ActReason) with the words it reads as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct PurposeWords {
    pub code: &'static str,
    pub words: &'static str,
}

const CHARTS: &str = "Charts and patients";
const CLINICAL: &str = "Clinical record";
const NOTES: &str = "Notes";
const BOOK: &str = "Appointments and schedules";
const SIGN_IN: &str = "Signing in";
const USERS: &str = "Users, keys and settings";
const SECURITY: &str = "Security checks";
const AUDIT: &str = "Audit trail and alerts";
const EXCHANGE: &str = "Exports and imports";
const VAULT: &str = "The vault and sync";
const DEMO: &str = "Demo clinic";

const fn ev(event: &'static str, words: &'static str, group: &'static str) -> EventWords {
    EventWords {
        event,
        words,
        group,
    }
}

/// Every event the code writes to the trail, in the order a picker lists them. A test scans
/// the sources and fails for an event written without words here.
pub const EVENTS: &[EventWords] = &[
    ev("chart.read", "Opened a chart", CHARTS),
    ev("patient.search", "Searched for patients", CHARTS),
    ev("patient.create", "Registered a patient", CHARTS),
    ev("patient.update", "Changed a patient's details", CHARTS),
    ev("patient.history", "Read a patient's change history", CHARTS),
    ev("break_glass", "Broke the glass", CHARTS),
    ev("care_team.add", "Added someone to a care team", CHARTS),
    ev("care_team.remove", "Took someone off a care team", CHARTS),
    ev(
        "care_team.choices",
        "Listed who may be on a care team",
        CHARTS,
    ),
    ev(
        "disclosures.read",
        "Read a patient's accounting of disclosures",
        CHARTS,
    ),
    ev("vitals.create", "Recorded vitals", CLINICAL),
    ev("vitals.read", "Read vitals", CLINICAL),
    ev(
        "vitals.entered_in_error",
        "Marked vitals entered in error",
        CLINICAL,
    ),
    ev("problem.create", "Added a problem", CLINICAL),
    ev("problem.read", "Read the problem list", CLINICAL),
    ev("problem.resolve", "Resolved a problem", CLINICAL),
    ev(
        "problem.entered_in_error",
        "Marked a problem entered in error",
        CLINICAL,
    ),
    ev("allergy.create", "Recorded an allergy", CLINICAL),
    ev("allergy.none", "Recorded no known allergies", CLINICAL),
    ev("allergy.read", "Read the allergy list", CLINICAL),
    ev("allergy.resolve", "Resolved an allergy", CLINICAL),
    ev(
        "allergy.entered_in_error",
        "Marked an allergy entered in error",
        CLINICAL,
    ),
    ev("medication.create", "Added a medication", CLINICAL),
    ev("medication.read", "Read the medication list", CLINICAL),
    ev("medication.stop", "Stopped a medication", CLINICAL),
    ev(
        "medication.entered_in_error",
        "Marked a medication entered in error",
        CLINICAL,
    ),
    ev("immunization.create", "Recorded an immunization", CLINICAL),
    ev("immunization.read", "Read the immunizations", CLINICAL),
    ev(
        "immunization.entered_in_error",
        "Marked an immunization entered in error",
        CLINICAL,
    ),
    ev("report.create", "Added a lab report", CLINICAL),
    ev("report.read", "Read the lab reports", CLINICAL),
    ev("result.create", "Recorded a lab result", CLINICAL),
    ev("result.read", "Read the lab results", CLINICAL),
    ev("result.correct", "Corrected a lab result", CLINICAL),
    ev(
        "result.entered_in_error",
        "Marked a lab result entered in error",
        CLINICAL,
    ),
    ev("encounter.create", "Opened an encounter", CLINICAL),
    ev("encounter.read", "Read the encounters", CLINICAL),
    ev("record.update", "Changed a record", CLINICAL),
    ev("note.create", "Drafted a note", NOTES),
    ev("note.update", "Edited a draft note", NOTES),
    ev("note.sign", "Signed a note", NOTES),
    ev("note.addendum", "Added an addendum to a note", NOTES),
    ev("note.read", "Read notes", NOTES),
    ev("appointment.create", "Booked an appointment", BOOK),
    ev("appointment.move", "Moved an appointment", BOOK),
    ev("appointment.cancel", "Cancelled an appointment", BOOK),
    ev("appointment.no_show", "Marked a no-show", BOOK),
    ev("appointment.arrive", "Checked a patient in", BOOK),
    ev("appointment.room", "Put a patient in a room", BOOK),
    ev("appointment.start", "Started an appointment", BOOK),
    ev("appointment.list", "Read an appointment book", BOOK),
    ev("appointment_type.list", "Read the appointment types", BOOK),
    ev(
        "appointment_type.update",
        "Changed an appointment type",
        BOOK,
    ),
    ev("schedule.read", "Read a clinician's schedule", BOOK),
    ev("schedule.update", "Changed working hours", BOOK),
    ev("schedule.day_off", "Set a day off", BOOK),
    ev("schedule.free", "Looked for free slots", BOOK),
    ev("schedule.clinicians", "Listed the clinicians", BOOK),
    ev("session.unlock", "Signed in", SIGN_IN),
    ev("session.lock", "Locked the window", SIGN_IN),
    ev("session.idle_logoff", "Locked after being idle", SIGN_IN),
    ev(
        "session.recovery_unlock",
        "Opened the vault with the recovery key",
        SIGN_IN,
    ),
    ev("user.create", "Added a user", USERS),
    ev("user.list", "Listed the users", USERS),
    ev("user.disable", "Disabled a user", USERS),
    ev("user.enable", "Enabled a user", USERS),
    ev("user.role_change", "Changed a user's role", USERS),
    ev("user.password_change", "Changed their own password", USERS),
    ev("user.password_reset", "Reset a user's password", USERS),
    ev("key.grant", "Handed a key to a user", USERS),
    ev("key.revoke", "Took a key from a user", USERS),
    ev("key.rotate", "Rotated the clinical key", USERS),
    ev(
        "key.compartment_create",
        "Made a new key compartment",
        USERS,
    ),
    ev(
        "key.compartment_rotate",
        "Rotated a compartment's key",
        USERS,
    ),
    ev("key_slot.change_begun", "Began changing a key slot", USERS),
    ev("settings.update", "Changed a setting", USERS),
    ev("security.log_start", "Started the security log", SECURITY),
    ev("security.verify", "Verified the security log", SECURITY),
    ev(
        "security.log_broken",
        "Found the security log altered",
        SECURITY,
    ),
    ev(
        "security.slot_refused",
        "Refused a key slot the security log does not know",
        SECURITY,
    ),
    ev(
        "security.repair",
        "Undid changes made outside Chartroom",
        SECURITY,
    ),
    ev("audit.read", "Read the audit trail", AUDIT),
    ev("audit.export", "Exported the audit trail", AUDIT),
    ev("audit.verify", "Verified the audit trail", AUDIT),
    ev(
        "audit.protection_restored",
        "Restored the audit trail's protection",
        AUDIT,
    ),
    ev("alert.list", "Read the alerts", AUDIT),
    ev("alert.acknowledge", "Acknowledged an alert", AUDIT),
    ev("records.export", "Exported records", EXCHANGE),
    ev("patient.export", "Exported a patient's record", EXCHANGE),
    ev("records.import", "Imported records", EXCHANGE),
    ev("patient.import", "Imported a patient's record", EXCHANGE),
    ev("vault.create", "Created the vault", VAULT),
    ev("vault.backup", "Made a backup", VAULT),
    ev("vault.restore", "Put back a backup", VAULT),
    ev("vault.rekey", "Changed the database key", VAULT),
    ev("vault.rotate", "Rotated the vault's keys", VAULT),
    ev("vault.key_export", "Exported the database key", VAULT),
    ev(
        "vault.recovery_key_replace",
        "Replaced the recovery key",
        VAULT,
    ),
    ev("vault.upgrade", "Upgraded the vault", VAULT),
    ev("sync.configure", "Set up the audit collector", VAULT),
    ev(
        "sync.diverged",
        "Found the collector's copy different",
        VAULT,
    ),
    ev("demo.start", "Started the demo clinic", DEMO),
    ev("demo.generate", "Generated demo patients", DEMO),
    ev("demo.book", "Booked the demo appointments", DEMO),
];

/// Every purpose of use the code records (a role's ordinary purpose, and ETREAT for
/// break-the-glass).
pub const PURPOSES: &[PurposeWords] = &[
    PurposeWords {
        code: "TREAT",
        words: "treatment",
    },
    PurposeWords {
        code: "ETREAT",
        words: "emergency treatment (break the glass)",
    },
    PurposeWords {
        code: "HOPERAT",
        words: "clinic operations",
    },
    PurposeWords {
        code: "HSYSADMIN",
        words: "system administration",
    },
    PurposeWords {
        code: "HCOMPL",
        words: "compliance review",
    },
];

/// The words for `event`; None for a name this release does not write (an older or newer
/// one), which a reader then shows as it is.
pub fn event_words(event: &str) -> Option<&'static str> {
    EVENTS.iter().find(|e| e.event == event).map(|e| e.words)
}

/// The words for a purpose-of-use code; None for a code this release does not write.
pub fn purpose_words(code: &str) -> Option<&'static str> {
    PURPOSES.iter().find(|p| p.code == code).map(|p| p.words)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::roles::Role;

    fn is_test_code(path: &Path) -> bool {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        name == "tests.rs"
            || name.ends_with("_tests.rs")
            || path.components().any(|c| c.as_os_str() == "tests")
    }

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs")
                && !is_test_code(&path)
                && path.file_name().is_some_and(|n| n != "audit_words.rs")
            {
                out.push(path);
            }
        }
    }

    /// The non-test sources of every crate that writes to the trail or names its events, but
    /// this table's own.
    fn sources() -> Vec<(PathBuf, String)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut files = Vec::new();
        for dir in ["crates/core/src", "crates/cli/src", "src-tauri/src"] {
            rust_files(&root.join(dir), &mut files);
        }
        assert!(files.len() > 20, "found the sources ({})", files.len());
        files
            .into_iter()
            .map(|p| {
                let text = std::fs::read_to_string(&p).expect("reads a source file");
                (p, text)
            })
            .collect()
    }

    /// The string literals in `source`, each with where it starts: a small lexer that knows
    /// escapes, raw strings, character literals and line comments, which is all these
    /// sources need.
    fn literals(source: &str) -> Vec<(usize, &str)> {
        let b = source.as_bytes();
        let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'/' if b.get(i + 1) == Some(&b'/') => {
                    i += source[i..].find('\n').unwrap_or(b.len() - i);
                }
                b'\'' => {
                    if b.get(i + 1) == Some(&b'\\') {
                        // '\n', '\'', '\"'
                        i += 2 + source[i + 2..].find('\'').map_or(0, |n| n + 1);
                    } else if b.get(i + 2) == Some(&b'\'') {
                        i += 3;
                    } else {
                        i += 1; // a lifetime
                    }
                }
                b'r' if (i == 0 || !ident(b[i - 1]))
                    && matches!(b.get(i + 1), Some(b'"') | Some(b'#')) =>
                {
                    let hashes = b[i + 1..].iter().take_while(|c| **c == b'#').count();
                    let open = i + 1 + hashes;
                    if b.get(open) != Some(&b'"') {
                        i += 1;
                        continue;
                    }
                    let close = format!("\"{}", "#".repeat(hashes));
                    let end = source[open + 1..]
                        .find(&close)
                        .map_or(b.len(), |n| open + 1 + n);
                    out.push((open + 1, &source[open + 1..end]));
                    i = end + close.len();
                }
                b'"' => {
                    let start = i + 1;
                    let mut j = start;
                    while j < b.len() && b[j] != b'"' {
                        j += if b[j] == b'\\' { 2 } else { 1 };
                    }
                    out.push((start, &source[start..j.min(b.len())]));
                    i = j + 1;
                }
                _ => i += 1,
            }
        }
        out
    }

    /// Whether `text` is shaped like an event name: lower-case words joined by one dot.
    fn event_shaped(text: &str) -> bool {
        let mut parts = text.split('.');
        let ok = |p: &str| {
            p.starts_with(|c: char| c.is_ascii_lowercase())
                && p.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        };
        matches!((parts.next(), parts.next(), parts.next()), (Some(a), Some(b), None) if ok(a) && ok(b))
    }

    /// Literals shaped like event names that are not events: users of the demo clinic and
    /// the tests, files, and FHIR element paths.
    const NOT_EVENTS: &[&str] = &[
        "ada.example.org",
        "authenticator.display",
        "class.code",
        "code.text",
        "period.end",
        "demo.admin",
        "audit.demo",
        "desk.demo",
        "desk.kim",
        "dr.bob",
        "dr.bobby",
        "dr.demo",
        "dr.lee",
        "dr.lin",
        "dr.okafor",
        "dr.x",
        "nurse.demo",
        "encounter.reference",
        "meta.source",
        "patient.reference",
        "period.start",
        "recorder.display",
        "schedule.reference",
        "site.text",
        "subject.reference",
    ];

    const FILE_ENDINGS: &[&str] = &["rs", "json", "png", "db", "toml", "txt", "org"];

    #[test]
    fn every_event_the_code_writes_has_words() {
        let mut found = BTreeSet::new();
        let mut missing = Vec::new();
        for (path, text) in sources() {
            // Every literal an audit Op is built from, dotted or not (`break_glass`).
            for at in text.match_indices("Op::").map(|(i, _)| i) {
                let rest = &text[at..];
                let Some(open) = rest.find('(') else { continue };
                let call = &rest[open + 1..];
                if let Some(lit) = call.trim_start().strip_prefix('"') {
                    let event = &lit[..lit.find('"').unwrap_or(0)];
                    found.insert(event.to_owned());
                    if event_words(event).is_none() {
                        missing.push(format!("{}: {event}", path.display()));
                    }
                }
            }
            // Events reach an Op through variables too (a helper's `event` argument, a
            // match on the kind of item), so every literal shaped like one counts.
            for (_, lit) in literals(&text) {
                let is_file = lit
                    .rsplit('.')
                    .next()
                    .is_some_and(|end| FILE_ENDINGS.contains(&end));
                if !event_shaped(lit) || is_file || NOT_EVENTS.contains(&lit) {
                    continue;
                }
                found.insert(lit.to_owned());
                if event_words(lit).is_none() {
                    missing.push(format!("{}: {lit}", path.display()));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "events written without words in audit_words::EVENTS (or literals to add to \
             NOT_EVENTS): {missing:#?}"
        );
        // Words for an event nothing writes any more stay: older entries in the trail still
        // read in words. The scan must at least see the everyday ones.
        for needed in [
            "chart.read",
            "vitals.create",
            "break_glass",
            "session.unlock",
        ] {
            assert!(found.contains(needed), "the scan sees {needed}");
        }
    }

    #[test]
    fn each_event_and_purpose_has_one_entry_and_plain_words() {
        let mut seen = BTreeSet::new();
        for e in EVENTS {
            assert!(seen.insert(e.event), "{} listed twice", e.event);
            assert!(
                e.words.starts_with(|c: char| c.is_ascii_uppercase()) && !e.words.contains('.'),
                "{}: {}",
                e.event,
                e.words
            );
        }
        let mut words = BTreeSet::new();
        for e in EVENTS {
            assert!(words.insert(e.words), "two events read as {}", e.words);
        }
        assert_eq!(event_words("chart.read"), Some("Opened a chart"));
        assert_eq!(event_words("vitals.create"), Some("Recorded vitals"));
        assert_eq!(event_words("no.such_event"), None);
    }

    #[test]
    fn every_purpose_the_code_records_has_words() {
        for role in Role::ALL {
            assert!(
                purpose_words(role.purpose_of_use()).is_some(),
                "{role}: {}",
                role.purpose_of_use()
            );
        }
        // Codes written as literals beside the word "purpose" (ETREAT, HOPERAT as a fallback).
        for (path, text) in sources() {
            for (at, lit) in literals(&text) {
                let line_start = text[..at].rfind('\n').map_or(0, |n| n + 1);
                let line_end = text[at..].find('\n').map_or(text.len(), |n| at + n);
                let code_shaped =
                    (4..=10).contains(&lit.len()) && lit.chars().all(|c| c.is_ascii_uppercase());
                if code_shaped && text[line_start..line_end].contains("purpose") {
                    assert!(
                        purpose_words(lit).is_some(),
                        "{}: purpose {lit} has no words",
                        path.display()
                    );
                }
            }
        }
        assert_eq!(
            purpose_words("ETREAT"),
            Some("emergency treatment (break the glass)")
        );
        assert_eq!(purpose_words("TREAT"), Some("treatment"));
        assert_eq!(purpose_words("HOPERAT"), Some("clinic operations"));
    }
}
