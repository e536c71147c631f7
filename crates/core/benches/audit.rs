//! What the audit trail costs: an audited chart read against the same read without its audit
//! write, audited operations per second, and verifying 1,000,000 stored entries.
//!
//! Run with `cargo bench -p chartroom-core`. Prints figures and ratios; asserts nothing.

use std::time::{Duration, Instant};

use chartroom_audit::{format_time, Action, Checkpoint, Entry, Hash, Outcome, SigningKey};
use chartroom_core::{KdfPolicy, NewPatient, NoteContent, Role, Session, VaultConfig};
use rusqlite::{params, Connection};
use secrecy::{ExposeSecret, SecretString};

const PATIENTS: i64 = 1_000;
const READS: i64 = 2_000;
/// Patients with a long chart: this many notes of about 700 characters each.
const LONG_CHARTS: i64 = 20;
const LONG_CHART_NOTES: usize = 150;
const VERIFY_ENTRIES: u64 = 1_000_000;

fn pw(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

fn per_op(d: Duration, n: i64) -> f64 {
    d.as_secs_f64() * 1e6 / n as f64
}

/// The same chart read as `Session::open_chart`, on a second connection, with no audit write.
fn unaudited_read(
    conn: &Connection,
    id: impl Into<i64>,
) -> Result<usize, chartroom_core::CoreError> {
    let chart = chartroom_core::read_chart_for_benchmarks(conn, id.into())?;
    Ok(chart.notes.map_or(0, |n| n.len()))
}

fn main() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = VaultConfig {
        dir: tmp.path().join("vault"),
        state_dir: tmp.path().join("state"),
        kdf: KdfPolicy::insecure_fast_for_tests(),
    };
    let (mut admin, _) =
        Session::create(config.clone(), "admin", &pw("admin-password")).expect("creates");
    admin
        .add_user("dr.bench", Role::Physician, None, &pw("physician-password"))
        .expect("adds");
    admin
        .add_user("aud.bench", Role::Auditor, None, &pw("auditor-password"))
        .expect("adds");
    let key = admin.export_key().expect("exports");
    admin.lock().expect("locks");

    let mut doctor =
        Session::unlock(config.clone(), "dr.bench", &pw("physician-password")).expect("unlocks");
    let today = chrono::Utc::now().date_naive();
    for i in 0..PATIENTS {
        let p = doctor
            .register_patient(
                &NewPatient::new(
                    "Benchmark",
                    &format!("Patient{i}"),
                    "1970-01-01",
                    "unknown",
                    false,
                    today,
                )
                .expect("valid"),
            )
            .expect("registers");
        if i % 10 == 0 {
            doctor
                .draft_note(
                    p.id,
                    None,
                    &NoteContent::free("Subjective: routine review. Plan: continue.")
                        .expect("valid"),
                )
                .expect("drafts");
        }
    }

    let long_text =
        "Subjective: follow-up of type 2 diabetes and hypertension; reports good adherence, \
        occasional morning dizziness, no chest pain. Objective: alert, well perfused, chest clear, \
        heart sounds normal, no oedema; foot exam intact to monofilament. Assessment: glycaemic \
        control improving on current regimen; blood pressure above target at home. Plan: continue \
        metformin, increase amlodipine, home BP diary, renal function and HbA1c in three months, \
        retinal screening referral, dietitian follow-up, return sooner if dizziness worsens. \
        Discussed hypoglycaemia awareness and sick-day rules.";
    let mut long_ids = Vec::new();
    for i in 0..LONG_CHARTS {
        let p = doctor
            .register_patient(
                &NewPatient::new(
                    "Longchart",
                    &format!("Patient{i}"),
                    "1950-01-01",
                    "unknown",
                    false,
                    today,
                )
                .expect("valid"),
            )
            .expect("registers");
        for _ in 0..LONG_CHART_NOTES {
            doctor
                .draft_note(p.id, None, &NoteContent::free(long_text).expect("valid"))
                .expect("drafts");
        }
        long_ids.push(p.id);
    }

    let raw = Connection::open(config.dir.join("chartroom.db")).expect("opens");
    raw.execute_batch(&format!("PRAGMA key = \"x'{}'\";", key.expose_secret()))
        .expect("keys");
    chartroom_vault::configure_connection(&raw).expect("configures");

    // Warm both paths.
    for id in 1..=100 {
        doctor.open_chart(id).expect("reads");
        unaudited_read(&raw, id).expect("reads");
    }
    let t = Instant::now();
    for i in 0..READS {
        doctor.open_chart(1 + i % PATIENTS).expect("reads");
    }
    let audited = t.elapsed();
    let t = Instant::now();
    for i in 0..READS {
        unaudited_read(&raw, 1 + i % PATIENTS).expect("reads");
    }
    let plain = t.elapsed();

    let long_reads = 400;
    let t = Instant::now();
    for i in 0..long_reads {
        doctor
            .open_chart(long_ids[i % long_ids.len()])
            .expect("reads");
    }
    let long_audited = t.elapsed();
    let t = Instant::now();
    for i in 0..long_reads {
        unaudited_read(&raw, long_ids[i % long_ids.len()]).expect("reads");
    }
    let long_plain = t.elapsed();
    doctor.lock().expect("locks");

    // What one durable commit costs on this disk (WAL, synchronous=FULL: one fsync).
    raw.execute_batch("CREATE TABLE IF NOT EXISTS bench_scratch (x INTEGER)")
        .expect("creates");
    let commits = 500;
    let t = Instant::now();
    for i in 0..commits {
        raw.execute("INSERT INTO bench_scratch VALUES (?1)", [i])
            .expect("commits");
    }
    let commit_cost = t.elapsed();

    println!(
        "audited chart read ({READS} reads over {PATIENTS} patients, each its own transaction):"
    );
    println!(
        "  audited (read + audit entry + commit): {:>8.1} µs/read  {:>8.0} audited reads/s",
        per_op(audited, READS),
        READS as f64 / audited.as_secs_f64()
    );
    println!(
        "  the same read without the audit write: {:>8.1} µs/read",
        per_op(plain, READS)
    );
    println!(
        "  ratio audited / unaudited:             {:>8.2}x",
        audited.as_secs_f64() / plain.as_secs_f64()
    );
    println!(
        "  of which one durable commit (fsync):   {:>8.1} µs",
        per_op(commit_cost, commits)
    );
    println!("long charts ({LONG_CHART_NOTES} notes of ~700 characters each, {long_reads} reads):");
    println!(
        "  audited: {:>8.1} µs/read   unaudited: {:>8.1} µs/read   ratio {:.2}x",
        per_op(long_audited, long_reads as i64),
        per_op(long_plain, long_reads as i64),
        long_audited.as_secs_f64() / long_plain.as_secs_f64()
    );

    // Grow the trail to a million entries: a valid chain continued with the device's own key,
    // written in bulk through the raw connection, then verified through the Session.
    let (device_id, secret): (String, Vec<u8>) = raw
        .query_row("SELECT device_id, signing_key FROM device", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("device");
    let signing = SigningKey::from_bytes(&secret.as_slice().try_into().expect("32 bytes"));
    let (head, head_hash): (i64, Vec<u8>) = raw
        .query_row(
            "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("head");
    let mut prev = Hash::from_slice(&head_hash).expect("hash");
    let start = u64::try_from(head).expect("positive") + 1;
    let t = Instant::now();
    raw.execute_batch("BEGIN").expect("begins");
    {
        let mut insert = raw
            .prepare(
                "INSERT INTO audit_log (seq, time, actor_id, actor, role, device_id, action, event, outcome,
                    patient_id, object_type, object_id, purpose, reason, detail, prev_hash, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            )
            .expect("prepares");
        let mut checkpoint = raw
            .prepare("INSERT INTO audit_checkpoints (seq, hash, time, signature) VALUES (?1, ?2, ?3, ?4)")
            .expect("prepares");
        let now = chartroom_audit::truncate_to_micros(chrono::Utc::now());
        let last = start + VERIFY_ENTRIES - 1;
        for seq in start..=last {
            let patient = (seq % PATIENTS as u64 + 1).to_string();
            let rec = Entry {
                seq,
                time: now,
                actor_id: Some(2),
                actor: "dr.bench".into(),
                role: Some("physician".into()),
                device_id: device_id.clone(),
                action: Action::Read,
                event: "chart.read".into(),
                outcome: Outcome::Success,
                patient_id: Some(patient.clone()),
                object_type: Some("Patient".into()),
                object_id: Some(patient),
                purpose: Some("TREAT".into()),
                reason: None,
                detail: None,
            }
            .seal(prev);
            prev = rec.hash;
            let e = &rec.entry;
            insert
                .execute(params![
                    seq as i64,
                    format_time(e.time),
                    e.actor_id,
                    e.actor,
                    e.role,
                    e.device_id,
                    e.action.code(),
                    e.event,
                    e.outcome.as_str(),
                    e.patient_id,
                    e.object_type,
                    e.object_id,
                    e.purpose,
                    e.reason,
                    e.detail,
                    rec.prev_hash.0.as_slice(),
                    rec.hash.0.as_slice()
                ])
                .expect("inserts");
            if seq % 256 == 0 || seq == last {
                let cp = Checkpoint::sign(&signing, &device_id, seq, rec.hash, now);
                checkpoint
                    .execute(params![
                        seq as i64,
                        cp.hash.0.as_slice(),
                        format_time(cp.time),
                        cp.signature.as_slice()
                    ])
                    .expect("checkpoints");
            }
        }
    }
    raw.execute_batch("COMMIT").expect("commits");
    let fill = t.elapsed();
    drop(raw);
    println!(
        "\nappending {VERIFY_ENTRIES} entries in one transaction (seal + insert): {:>7.0} ms  {:>9.0} entries/s",
        fill.as_secs_f64() * 1e3,
        VERIFY_ENTRIES as f64 / fill.as_secs_f64()
    );

    let mut auditor =
        Session::unlock(config.clone(), "aud.bench", &pw("auditor-password")).expect("unlocks");
    let t = Instant::now();
    let v = auditor.verify_audit().expect("verifies");
    let took = t.elapsed();
    assert!(v.ok, "{v:?}");
    println!(
        "verifying the stored trail ({} entries, {} checkpoints) through Session::verify_audit: {:>7.0} ms  {:>9.0} entries/s",
        v.entries,
        v.checkpoints,
        took.as_secs_f64() * 1e3,
        v.entries as f64 / took.as_secs_f64()
    );
    auditor.lock().expect("locks");
}
