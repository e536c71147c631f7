//! The appointment book at clinic scale: the demo clinic (100,000 patients by default) with 8
//! clinicians and a year of appointments (about 25,000: 12 a working day each, half a year
//! back and half ahead), then through the Session (gated, audited, each call its own durable
//! transaction):
//!
//! - the front desk's day view (every clinician's appointments of a day) and week view (one
//!   clinician's week), each listed patient audited;
//! - the next free slot of a clinician from a random moment;
//! - booking into a free slot.
//!
//! `cargo bench -p chartroom-core --bench appointments` (CHARTROOM_BENCH_PATIENTS changes
//! the clinic's size). Prints figures and the targets; asserts nothing.

use std::time::{Duration, Instant};

use chartroom_core::SeededRng as Rng;
use chartroom_core::{
    AppointmentQuery, Booking, DemoBook, DemoOptions, KdfPolicy, Role, Session, VaultConfig,
};
use chrono::{Datelike, NaiveDate};
use secrecy::SecretString;

fn pw(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

struct Stats(Vec<Duration>);
impl Stats {
    fn pct(&self, p: f64) -> f64 {
        let mut v = self.0.clone();
        v.sort();
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v[i].as_secs_f64() * 1000.0
    }
    fn line(&self, what: &str, target_ms: f64, at: &str) -> String {
        let p = if at == "p99" {
            self.pct(0.99)
        } else {
            self.pct(0.5)
        };
        format!(
            "  {what:<44} median {:>6.2} ms · p99 {:>6.2} ms   (target {at} < {target_ms} ms: {})",
            self.pct(0.5),
            self.pct(0.99),
            if p < target_ms { "met" } else { "MISSED" }
        )
    }
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed())
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
        .set_setting("clinic_time_zone", "America/Chicago")
        .expect("zone");
    let clinicians: Vec<String> = (1..=8).map(|i| format!("dr.book{i}")).collect();
    for c in &clinicians {
        admin
            .add_user(c, Role::Physician, None, &pw("physician-password"))
            .expect("adds");
    }
    admin
        .add_user(
            "desk.bench",
            Role::FrontDesk,
            None,
            &pw("front-desk-password"),
        )
        .expect("adds");
    let today = chrono::Utc::now().date_naive();
    let (_, took) = timed(|| {
        admin
            .generate_demo(
                &DemoOptions {
                    patients,
                    seed: 2026,
                    as_of: today,
                    long_chart_every: 0,
                },
                |_| {},
            )
            .expect("generates")
    });
    let (booked, took_book) = timed(|| {
        admin
            .generate_demo_appointments(&DemoBook {
                clinicians: clinicians.clone(),
                as_of: today,
                days_before: 182,
                days_after: 182,
                per_day: 12,
                seed: 2026,
            })
            .expect("books")
    });
    admin.lock().expect("locks");
    println!(
        "demo clinic: {patients} patients in {:.1} s; {booked} appointments for {} clinicians in {:.1} s",
        took.as_secs_f64(),
        clinicians.len(),
        took_book.as_secs_f64()
    );

    let mut desk =
        Session::unlock(config.clone(), "desk.bench", &pw("front-desk-password")).expect("unlocks");
    let mut rng = Rng::new(11);
    let weekday = |rng: &mut Rng| loop {
        let d = today - chrono::Duration::days(150) + chrono::Duration::days(rng.below(300) as i64);
        if d.weekday().num_days_from_monday() < 5 {
            return d;
        }
    };
    let runs = 200;

    let mut day = Vec::new();
    let mut listed = 0usize;
    for _ in 0..runs {
        let d = weekday(&mut rng);
        let (list, t) = timed(|| {
            desk.appointments(&AppointmentQuery {
                day: Some(d.to_string()),
                ..AppointmentQuery::default()
            })
            .expect("day")
        });
        listed += list.len();
        day.push(t);
    }
    let mut week = Vec::new();
    for i in 0..runs {
        let d = weekday(&mut rng);
        let monday: NaiveDate =
            d - chrono::Duration::days(i64::from(d.weekday().num_days_from_monday()));
        let (_, t) = timed(|| {
            desk.appointments(&AppointmentQuery {
                day: Some(monday.to_string()),
                days: Some(7),
                clinician: Some(clinicians[i % clinicians.len()].clone()),
                ..AppointmentQuery::default()
            })
            .expect("week")
        });
        week.push(t);
    }
    let mut free = Vec::new();
    let mut slots = Vec::new();
    for i in 0..runs {
        let d = today + chrono::Duration::days(rng.below(150) as i64);
        let from = format!("{d} {:02}:{:02}", 7 + rng.below(10), rng.below(12) * 5);
        let (s, t) = timed(|| {
            desk.free_slots(
                &clinicians[i % clinicians.len()],
                Some(&from),
                None,
                Some(20),
                1,
            )
            .expect("free")
        });
        free.push(t);
        if let Some(s) = s.into_iter().next() {
            slots.push(s);
        }
    }
    let mut book = Vec::new();
    let mut refused = 0;
    for s in slots.iter().take(500) {
        let (r, t) = timed(|| {
            desk.book_appointment(
                1 + rng.below(u64::from(patients)) as i64,
                &Booking {
                    clinician: s.clinician.clone(),
                    at: s.start.clone(),
                    minutes: Some(20),
                    reason: Some("Benchmark booking".into()),
                    ..Booking::default()
                },
            )
        });
        match r {
            Ok(_) => book.push(t),
            Err(_) => refused += 1,
        }
    }
    println!(
        "\nthrough the Session, as the front desk (each call gated, audited, its own transaction):"
    );
    println!(
        "{}",
        Stats(day).line(
            &format!("day view, all clinicians (~{} appts)", listed / runs),
            20.0,
            "median"
        )
    );
    println!(
        "{}",
        Stats(week).line("week view, one clinician", 50.0, "median")
    );
    println!(
        "{}",
        Stats(free).line("next free slot (20 min)", 10.0, "median")
    );
    println!(
        "{}",
        Stats(book).line(
            &format!("booking into a free slot ({refused} refused)"),
            5.0,
            "p99"
        )
    );
}
