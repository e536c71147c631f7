//! Export and import at the size of a practice moving: 1,000 charts from the synthetic demo
//! clinic (CHARTROOM_BENCH_PATIENTS changes it) to one age-encrypted FHIR Bulk Data archive
//! on disk, then imported into empty vaults. Each through the Session: gated, audited and
//! accounted for as a real export is.
//!
//! First, the import of other systems' FHIR: the 20 Synthea patient bundles of
//! `../shared/fhir/synthea-sample` (CHARTROOM_FHIR_FIXTURES changes the folder), each file
//! imported in turn into an empty vault.
//!
//! `cargo bench -p chartroom-core --bench export`. Prints figures (times, resources per
//! second, the peak memory an import adds); asserts nothing.

use std::time::{Duration, Instant};

use chartroom_core::{
    DemoOptions, Destination, ExportRequest, ImportKey, KdfPolicy, Selection, Session, VaultConfig,
};
use secrecy::SecretString;

fn pw(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

fn vault(dir: &std::path::Path) -> VaultConfig {
    VaultConfig {
        dir: dir.join("vault"),
        state_dir: dir.join("state"),
        kdf: KdfPolicy::insecure_fast_for_tests(),
    }
}

/// The process's peak resident memory since the last [`reset_peak`], in MiB (Linux's VmHWM;
/// None elsewhere).
fn peak_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// Starts the peak over from the memory in use now (Linux: `5` to clear_refs).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn mib(v: Option<f64>) -> String {
    v.map_or_else(|| "unknown".into(), |m| format!("{m:.0} MiB"))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The 20 Synthea bundles imported one after another into an empty vault, three times.
fn foreign_import(tmp: &std::path::Path) {
    let folder = std::env::var_os("CHARTROOM_FHIR_FIXTURES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/fhir/synthea-sample")
        });
    let mut files: Vec<_> = match std::fs::read_dir(&folder) {
        Ok(list) => list
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect(),
        Err(_) => {
            println!("foreign import: skipped ({} not found)", folder.display());
            return;
        }
    };
    files.sort();
    let bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .sum();
    let mut runs = Vec::new();
    let mut peaks = Vec::new();
    let (mut total, mut kept) = (0u64, 0u64);
    for i in 0..3 {
        let dir = tmp.join(format!("synthea{i}"));
        let (mut importer, _) =
            Session::create(vault(&dir), "admin", &pw("admin-password")).expect("creates");
        reset_peak();
        let resident = peak_mib();
        let t = Instant::now();
        (total, kept) = (0, 0);
        for f in &files {
            let report = importer
                .import_with(
                    std::io::BufReader::new(std::fs::File::open(f).expect("opens")),
                    &ImportKey::NotGiven,
                    &chartroom_core::ImportOptions::default(),
                )
                .expect("imports");
            let added: u64 = report.added.values().sum();
            let skipped: u64 = report.skipped.iter().map(|s| s.count).sum();
            kept += added;
            total += added + skipped;
        }
        runs.push(t.elapsed());
        peaks.push(peak_mib().zip(resident).map(|(p, r)| p - r));
        importer.lock().expect("locks");
    }
    let took = median(runs.clone());
    let peak = peaks
        .iter()
        .flatten()
        .copied()
        .fold(None, |m: Option<f64>, p| Some(m.map_or(p, |m| m.max(p))));
    println!(
        "foreign import: {} Synthea bundles ({:.1} MiB), {} resources, {} kept as records",
        files.len(),
        bytes as f64 / 1_048_576.0,
        total,
        kept
    );
    println!(
        "  median {:.0} ms of 3 (min {:.0}, max {:.0}) = {:.0} resources read/s, {:.0} records written/s; peak memory {} above the start",
        took.as_secs_f64() * 1e3,
        runs.iter().min().expect("runs").as_secs_f64() * 1e3,
        runs.iter().max().expect("runs").as_secs_f64() * 1e3,
        total as f64 / took.as_secs_f64(),
        kept as f64 / took.as_secs_f64(),
        mib(peak)
    );
}

fn main() {
    let tmp = tempfile::tempdir().expect("tempdir");
    foreign_import(tmp.path());
    let patients: u32 = std::env::var("CHARTROOM_BENCH_PATIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let (mut admin, recovery) =
        Session::create(vault(&tmp.path().join("a")), "admin", &pw("admin-password"))
            .expect("creates");
    let t = Instant::now();
    let summary = admin
        .generate_demo(
            &DemoOptions {
                patients,
                seed: 1,
                as_of: chrono::Utc::now().date_naive(),
                long_chart_every: 250,
            },
            |_| {},
        )
        .expect("demo");
    println!(
        "demo clinic: {} patients, {} encounters, {} notes, {} observations (made in {:.1} s)",
        summary.patients,
        summary.encounters,
        summary.notes,
        summary.observations,
        t.elapsed().as_secs_f64()
    );

    // A whole clinic with its clinical record takes keys that open it: the recovery key's (an
    // administrator's export holds demographics only).
    admin.lock().expect("locks");
    let mut admin = Session::unlock_with_recovery_key(vault(&tmp.path().join("a")), &recovery)
        .expect("the recovery key opens it");
    let identity = age::x25519::Identity::generate();
    let identity_file = {
        use age::secrecy::ExposeSecret;
        identity.to_string().expose_secret().to_owned()
    };
    let recipient = identity.to_public().to_string();
    let mut runs = Vec::new();
    let mut last = None;
    for i in 0..3 {
        let path = tmp.path().join(format!("clinic-{i}.age"));
        let request = ExportRequest {
            selection: Selection::All,
            destination: Destination::Recipients(vec![recipient.clone()]),
            recipient_name: Some("Benchmark Clinic".into()),
            purpose: "Benchmark".into(),
        };
        let t = Instant::now();
        let report = admin
            .export_to_file(&request, &path, &mut |_, _| {})
            .expect("exports");
        runs.push(t.elapsed());
        last = Some((path, report));
    }
    let (path, report) = last.expect("ran");
    let export = median(runs.clone());
    let resources: u64 = report.resources.values().sum();
    println!(
        "export --all: {} patients ({} left out), {} resources, {:.1} MiB encrypted",
        report.patients,
        report.left_out.len(),
        resources,
        report.bytes as f64 / 1_048_576.0
    );
    println!(
        "  median {:.0} ms of 3 (min {:.0}, max {:.0}) = {:.0} resources/s, {:.1} MiB/s",
        export.as_secs_f64() * 1e3,
        runs.iter().min().expect("runs").as_secs_f64() * 1e3,
        runs.iter().max().expect("runs").as_secs_f64() * 1e3,
        resources as f64 / export.as_secs_f64(),
        report.bytes as f64 / 1_048_576.0 / export.as_secs_f64()
    );
    admin.lock().expect("locks");

    let mut runs = Vec::new();
    let mut peaks = Vec::new();
    let before = peak_mib();
    for i in 0..3 {
        let dir = tmp.path().join(format!("b{i}"));
        let (mut importer, _) =
            Session::create(vault(&dir), "admin", &pw("admin-password")).expect("creates");
        let file = std::fs::File::open(&path).expect("opens");
        reset_peak();
        let resident = peak_mib();
        let t = Instant::now();
        let imported = importer
            .import_records(
                std::io::BufReader::new(file),
                &ImportKey::Identities(SecretString::from(identity_file.clone())),
            )
            .expect("imports");
        runs.push(t.elapsed());
        peaks.push(peak_mib().zip(resident).map(|(p, r)| p - r));
        assert_eq!(imported.patients_added, report.patients);
        importer.lock().expect("locks");
    }
    let import = median(runs.clone());
    println!(
        "import into an empty vault: median {:.0} ms of 3 (min {:.0}, max {:.0}) = {:.0} resources/s",
        import.as_secs_f64() * 1e3,
        runs.iter().min().expect("runs").as_secs_f64() * 1e3,
        runs.iter().max().expect("runs").as_secs_f64() * 1e3,
        resources as f64 / import.as_secs_f64()
    );
    let grew = peaks
        .iter()
        .flatten()
        .copied()
        .fold(None, |m: Option<f64>, p| Some(m.map_or(p, |m| m.max(p))));
    println!(
        "  peak memory of an import: {} above what was resident when it started (the process \
         peaked at {} before, making the demo and the exports); the encrypted file is {:.1} MiB",
        mib(grew),
        mib(before),
        report.bytes as f64 / 1_048_576.0
    );
}
