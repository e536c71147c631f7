//! Charting at clinic scale: a 100,000-patient synthetic clinic (one patient in 1,000 with a
//! long history of 200 encounters and ~2,000 observations), then
//!
//! - search latencies through the Session (MRN, name prefix, fuzzy: substring and one typo),
//! - opening a full chart (long and typical) and recording a set of vitals, through the Session,
//! - the same storage work on raw connections, SQLCipher against the same database exported
//!   to plain SQLite, as a ratio.
//!
//! `cargo bench -p chartroom-core --bench charting` (CHARTROOM_BENCH_PATIENTS changes the
//! size). Prints figures; asserts nothing.

use std::time::{Duration, Instant};

use chartroom_core::bench_support::{self, SearchCache};
// The demo's seeded generator, for picking queries the same way every run.
use chartroom_core::SeededRng as Rng;
use chartroom_core::{DemoOptions, KdfPolicy, Role, Session, VaultConfig, VitalsInput};
use rusqlite::Connection;
use secrecy::{ExposeSecret, SecretString};

fn pw(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

struct Stats(Vec<Duration>);
impl Stats {
    fn pct(&self, p: f64) -> f64 {
        let mut v = self.0.clone();
        v.sort();
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v[i].as_secs_f64() * 1e3
    }
    fn line(&self, label: &str) {
        println!(
            "  {label:<44} p50 {:>7.3} ms   p99 {:>7.3} ms   max {:>7.3} ms   (n={})",
            self.pct(0.5),
            self.pct(0.99),
            self.pct(1.0),
            self.0.len()
        );
    }
}

fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed())
}

/// A typo: drop, double, swap or replace one letter.
fn typo(word: &str, rng: &mut Rng) -> String {
    let mut c: Vec<char> = word.chars().collect();
    if c.len() < 4 {
        return format!("{word}e");
    }
    let i = 1 + rng.below((c.len() - 2) as u64) as usize;
    match rng.below(4) {
        0 => {
            c.remove(i);
        }
        1 => c.insert(i, c[i]),
        2 => c.swap(i, i + 1),
        _ => c[i] = if c[i] == 'e' { 'a' } else { 'e' },
    }
    c.into_iter().collect()
}

struct Queries {
    mrns: Vec<String>,
    prefixes: Vec<String>,
    fuzzy: Vec<String>,
}

fn queries(conn: &Connection, patients: i64, rng: &mut Rng) -> Queries {
    let name = |id: i64| -> (String, String, String) {
        conn.query_row(
            "SELECT mrn, family, given FROM patients WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("patient")
    };
    let mut q = Queries {
        mrns: Vec::new(),
        prefixes: Vec::new(),
        fuzzy: Vec::new(),
    };
    for _ in 0..1000 {
        let (mrn, family, given) = name(1 + rng.below(patients as u64) as i64);
        q.mrns.push(mrn);
        let family_words = chartroom_core::name_words(&family);
        let f = family_words.last().cloned().unwrap_or_default();
        let n = 3 + rng.below(3) as usize;
        q.prefixes.push(f.chars().take(n).collect());
        let g = chartroom_core::name_words(&given)
            .first()
            .cloned()
            .unwrap_or_default();
        q.fuzzy
            .push(if f.chars().count() >= 5 && rng.below(2) == 0 {
                format!("{} {}", typo(&f, rng), g)
            } else if f.chars().count() >= 6 {
                f.chars().skip(1).take(4).collect()
            } else {
                format!("{g} {}", typo(&f, rng).trim())
            });
    }
    q
}

fn main() {
    let patients: u32 = std::env::var("CHARTROOM_BENCH_PATIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
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
        .add_user(
            "desk.bench",
            Role::FrontDesk,
            None,
            &pw("front-desk-password"),
        )
        .expect("adds");
    let (summary, took) = time(|| {
        admin
            .generate_demo(
                &DemoOptions {
                    patients,
                    seed: 2026,
                    as_of: chrono::Utc::now().date_naive(),
                    long_chart_every: 1000,
                },
                |_| {},
            )
            .expect("generates")
    });
    let key = admin.export_key().expect("exports");
    admin.lock().expect("locks");
    let db_path = config.dir.join("chartroom.db");
    let size = std::fs::metadata(&db_path).map(|m| m.len()).unwrap_or(0);
    println!(
        "demo clinic: {} patients, {} encounters, {} notes, {} observations in {:.1} s; database {:.0} MiB",
        summary.patients,
        summary.encounters,
        summary.notes,
        summary.observations,
        took.as_secs_f64(),
        size as f64 / 1048576.0
    );

    let raw = Connection::open(&db_path).expect("opens");
    raw.execute_batch(&format!("PRAGMA key = \"x'{}'\";", key.expose_secret()))
        .expect("keys");
    chartroom_vault::configure_connection(&raw).expect("configures");
    let mut rng = Rng::new(7);
    let q = queries(&raw, i64::from(patients), &mut rng);

    // ----- through the Session: gate, search or read, audit entry, commit ---------------
    let mut doctor =
        Session::unlock(config.clone(), "dr.bench", &pw("physician-password")).expect("unlocks");
    let (_, first) = time(|| doctor.search_patients("garcia").expect("searches"));
    println!("\nthrough the Session (each call gated and audited in its own durable transaction):");
    println!(
        "  first name search (loads the word dictionary): {:.1} ms",
        first.as_secs_f64() * 1e3
    );
    let run = |label: &str, list: &[String], doctor: &mut Session| {
        let mut s = Stats(Vec::new());
        let mut found = 0usize;
        for query in list {
            let (hits, d) = time(|| doctor.search_patients(query).expect("searches"));
            found += usize::from(!hits.is_empty());
            s.0.push(d);
        }
        s.line(&format!("{label} ({}% found)", found * 100 / list.len()));
    };
    run("search by MRN", &q.mrns, &mut doctor);
    run(
        "search by name prefix (3-5 letters)",
        &q.prefixes,
        &mut doctor,
    );
    run(
        "search fuzzy (one typo, or a substring)",
        &q.fuzzy,
        &mut doctor,
    );

    let mut long = Stats(Vec::new());
    let mut observations = 0;
    for i in 0..100 {
        let id = summary.long_charts[i % summary.long_charts.len()];
        match time(|| doctor.open_chart(id)) {
            (Ok(chart), d) => {
                observations = chart.vitals.as_ref().map_or(0, Vec::len);
                long.0.push(d);
            }
            (Err(_), _) => {} // a restricted chart
        }
    }
    long.line(&format!("open a long chart ({observations} observations)"));
    let mut typical = Stats(Vec::new());
    for _ in 0..500 {
        let id = 1 + rng.below(u64::from(patients)) as i64;
        if let (Ok(_), d) = time(|| doctor.open_chart(id)) {
            typical.0.push(d);
        }
    }
    typical.line("open a typical chart");
    let mut vitals = Stats(Vec::new());
    let input = VitalsInput {
        systolic: Some(128.0),
        diastolic: Some(82.0),
        heart_rate: Some(71.0),
        temperature: Some(36.8),
        spo2: Some(98.0),
        weight: Some(74.2),
        ..VitalsInput::default()
    };
    for _ in 0..300 {
        let id = 1 + rng.below(u64::from(patients)) as i64;
        if let (Ok(_), d) = time(|| doctor.record_vitals(id, &input, None, None)) {
            vitals.0.push(d);
        }
    }
    vitals.line("record a set of vitals (6 values + BMI)");

    // Unlock, with the KDF at its test cost: what is left is the unlock's own work. A
    // physician's includes the clinical key (unsealed from the slot) and their content key;
    // the front desk's has neither.
    let unlock_as = |user: &str, password: &str| -> Stats {
        let mut s = Stats(Vec::new());
        for _ in 0..20 {
            let (session, d) =
                time(|| Session::unlock(config.clone(), user, &pw(password)).expect("unlocks"));
            session.lock().expect("locks");
            s.0.push(d);
        }
        s
    };
    println!("\nunlock (the KDF at its test cost, so this is the rest of the unlock):");
    let physician_unlock = unlock_as("dr.bench", "physician-password");
    physician_unlock.line("unlock as a physician (clinical key, content key)");
    let desk_unlock = unlock_as("desk.bench", "front-desk-password");
    desk_unlock.line("unlock as the front desk (no compartment)");
    println!(
        "  the keys' share of a physician's unlock: {:+.2} ms at p50",
        physician_unlock.pct(0.5) - desk_unlock.pct(0.5)
    );
    // The security log, verified whole at every unlock: grown to 1,000 entries by role
    // changes (each a signed entry), then the same unlock again.
    let mut admin =
        Session::unlock(config.clone(), "admin", &pw("admin-password")).expect("unlocks");
    admin
        .add_user(
            "temp.bench",
            Role::FrontDesk,
            None,
            &pw("temporary-password"),
        )
        .expect("adds");
    let log_before = admin.verify_vault().expect("verifies").security_log.entries;
    let mut grow = Stats(Vec::new());
    for i in log_before..=1_000 {
        let role = if i % 2 == 0 {
            Role::Auditor
        } else {
            Role::FrontDesk
        };
        let (r, d) = time(|| admin.change_role("temp.bench", role));
        r.expect("changes the role");
        grow.0.push(d);
    }
    let entries = admin.verify_vault().expect("verifies").security_log.entries;
    admin.lock().expect("locks");
    grow.line("a role change through the Session (one signed log entry)");
    let desk_unlock_log = unlock_as("desk.bench", "front-desk-password");
    desk_unlock_log.line(&format!(
        "unlock as the front desk, security log of {entries} entries"
    ));
    println!(
        "  a {entries}-entry security log against one of {log_before}: {:+.2} ms at p50",
        desk_unlock_log.pct(0.5) - desk_unlock.pct(0.5)
    );

    // ----- the same storage work, SQLCipher against plain SQLite -------------------------
    let plain_path = tmp.path().join("plain.db");
    let (_, export) = time(|| {
        raw.execute_batch(&format!(
            "ATTACH DATABASE '{}' AS plain KEY ''; SELECT sqlcipher_export('plain'); DETACH DATABASE plain;",
            plain_path.display()
        ))
        .expect("exports")
    });
    drop(raw);
    // Fresh connections for both, configured the same way.
    let raw = Connection::open(&db_path).expect("opens");
    raw.execute_batch(&format!("PRAGMA key = \"x'{}'\";", key.expose_secret()))
        .expect("keys");
    chartroom_vault::configure_connection(&raw).expect("configures");
    chartroom_core::keys::install_copy(&doctor, &raw).expect("keys the raw connection");
    // A third copy with every sealed field opened, read by the same SQL with a `cr_open` that
    // does nothing: the same work without field decryption.
    let clear_path = tmp.path().join("clear.db");
    std::fs::copy(&plain_path, &clear_path).expect("copies");
    {
        let clear = Connection::open(&clear_path).expect("opens");
        chartroom_core::keys::install_copy(&doctor, &clear).expect("keys");
        let (_, d) = time(|| chartroom_core::keys::open_every_field(&clear).expect("opens fields"));
        println!(
            "  (a copy with every field opened, for the baseline, made in {:.1} s)",
            d.as_secs_f64()
        );
    }
    let plain = Connection::open(&plain_path).expect("opens");
    chartroom_vault::configure_connection(&plain).expect("configures");
    chartroom_core::keys::install_copy(&doctor, &plain).expect("keys the plain copy");
    let clear = Connection::open(&clear_path).expect("opens");
    chartroom_vault::configure_connection(&clear).expect("configures");
    chartroom_core::keys::install_clear(&clear).expect("clear functions");
    doctor.lock().expect("locks");
    println!(
        "\nthe same work on raw connections (plain copy exported in {:.1} s):",
        export.as_secs_f64()
    );
    let mix = |conn: &Connection, seed: u64| -> Duration {
        let mut rng = Rng::new(seed);
        let mut cache = SearchCache::default();
        bench_support::search(conn, &mut cache, "garcia").expect("warms");
        let t = Instant::now();
        for i in 0..1500usize {
            bench_support::search(conn, &mut cache, &q.mrns[i % q.mrns.len()]).expect("searches");
            bench_support::search(conn, &mut cache, &q.prefixes[i % q.prefixes.len()])
                .expect("searches");
            bench_support::search(conn, &mut cache, &q.fuzzy[i % q.fuzzy.len()]).expect("searches");
            let id = 1 + rng.below(u64::from(patients)) as i64;
            chartroom_core::read_chart_for_benchmarks(conn, id).expect("reads");
            if i % 10 == 0 {
                let long = summary.long_charts[(i / 10) % summary.long_charts.len()];
                chartroom_core::read_chart_for_benchmarks(conn, long).expect("reads");
            }
            if i % 5 == 0 {
                bench_support::record_vitals(conn, id, &input).expect("records");
            }
        }
        t.elapsed()
    };
    // Each side warms its own cache with one mix, then is measured over two; the encrypted
    // side runs to the end before the plain connection does anything, because work on one
    // connection in a process evicts the other's cached pages (SQLite's page caches share
    // one pool when memory management is compiled in), which would charge SQLCipher for
    // decrypting them again.
    let long_id = summary.long_charts[0];
    let long_read = |conn: &Connection| -> f64 {
        let reps = 50;
        let (_, d) = time(|| {
            (0..reps).for_each(|_| {
                // A failing read would time an error: every read must succeed.
                chartroom_core::read_chart_for_benchmarks(conn, long_id).expect("reads");
            })
        });
        d.as_secs_f64() * 1e3 / f64::from(reps)
    };
    let _ = mix(&raw, 1);
    let enc = mix(&raw, 2) + mix(&raw, 3);
    let enc_long = long_read(&raw);
    drop(raw);
    let _ = mix(&plain, 1);
    let pln = mix(&plain, 2) + mix(&plain, 3);
    let pln_long = long_read(&plain);
    drop(plain);
    let _ = long_read(&clear);
    let clear_long = long_read(&clear);
    let typical_read = |conn: &Connection| -> f64 {
        let mut rng = Rng::new(11);
        let (_, d) = time(|| {
            for _ in 0..2000 {
                let id = 1 + rng.below(u64::from(patients)) as i64;
                drop(chartroom_core::read_chart_for_benchmarks(conn, id).expect("reads"));
            }
        });
        d.as_secs_f64() * 1e3 / 2000.0
    };
    println!(
        "  mix of 3,000 x (MRN + prefix + fuzzy search, open a chart), 300 long charts, 600 vitals sets:"
    );
    println!(
        "  SQLCipher {:>8.0} ms   plain SQLite {:>8.0} ms   ratio {:.2}x",
        enc.as_secs_f64() * 1e3,
        pln.as_secs_f64() * 1e3,
        enc.as_secs_f64() / pln.as_secs_f64()
    );
    println!(
        "  long chart read alone: SQLCipher {enc_long:.2} ms   plain {pln_long:.2} ms   ratio {:.2}x",
        enc_long / pln_long
    );
    let clear_typical = typical_read(&clear);
    drop(clear);
    let plain = Connection::open(&plain_path).expect("opens");
    chartroom_vault::configure_connection(&plain).expect("configures");
    {
        let doctor = Session::unlock(config.clone(), "dr.bench", &pw("physician-password"))
            .expect("unlocks");
        chartroom_core::keys::install_copy(&doctor, &plain).expect("keys");
        doctor.lock().expect("locks");
    }
    let _ = long_read(&plain);
    let sealed_long = long_read(&plain);
    let sealed_typical = typical_read(&plain);
    let (field, chacha, aes) = chartroom_core::keys::field_open_costs();
    println!(
        "\nopening one field alone: {field:.3} µs (the AEAD alone on a short value: AES-256-GCM {aes:.3} µs, ChaCha20-Poly1305 {chacha:.3} µs)"
    );
    println!(
        "field decryption (both plain SQLite, the same SQL; sealed fields against opened ones):"
    );
    println!(
        "  long chart: sealed {sealed_long:.2} ms   opened {clear_long:.2} ms   ratio {:.2}x",
        sealed_long / clear_long
    );
    println!(
        "  typical chart: sealed {sealed_typical:.3} ms   opened {clear_typical:.3} ms   ratio {:.2}x",
        sealed_typical / clear_typical
    );

    // Rotating the clinical key: owed by an administrator (who cannot hold it), done by the
    // next physician's sign-in, every clinical field re-sealed a batch at a time.
    let mut admin =
        Session::unlock(config.clone(), "admin", &pw("admin-password")).expect("unlocks");
    admin.rotate_keys("benchmark").expect("owes the rotation");
    admin.lock().expect("locks");
    let (doctor, took) = time(|| {
        Session::unlock(config.clone(), "dr.bench", &pw("physician-password")).expect("unlocks")
    });
    doctor.lock().expect("locks");
    let secs = took.as_secs_f64();
    println!(
        "\nrotating the clinical key of {patients} patients (inside a physician's sign-in): {secs:.1} s; at this rate 100,000 patients take about {:.0} s",
        secs * 100_000.0 / f64::from(patients)
    );
}
