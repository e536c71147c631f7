//! The sync worker's pushes against the real collector process on loopback over TLS (the
//! `chartroom-collector` binary, built from crates/collector; CHARTROOM_COLLECTOR_BIN
//! names it, else target/collector/debug/chartroom-collector).

use std::cell::RefCell;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;
use crate::gate_tests::Clinic;
use crate::sync::push_pending;
use secrecy::SecretString;

fn collector_bin() -> PathBuf {
    let path = std::env::var_os("CHARTROOM_COLLECTOR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/collector/debug/chartroom-collector")
        });
    assert!(
        path.exists(),
        "{} is missing: build it with `cd crates/collector && CARGO_TARGET_DIR=../../target/collector cargo build` (scripts/test.sh does)",
        path.display()
    );
    path
}

struct Collector {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Collector {
    fn start() -> Collector {
        let dir = tempfile::tempdir().expect("tempdir");
        let ok = Command::new(collector_bin())
            .args(["cert", "--out"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .status()
            .expect("runs");
        assert!(ok.success());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("binds")
            .local_addr()
            .expect("addr")
            .port();
        let mut c = Collector {
            dir,
            port,
            child: None,
        };
        c.serve();
        c
    }

    fn db(&self) -> String {
        format!("sqlite://{}/collector.db", self.dir.path().display())
    }

    fn serve(&mut self) {
        let child = Command::new(collector_bin())
            .args([
                "--db",
                &self.db(),
                "serve",
                "--listen",
                &format!("127.0.0.1:{}", self.port),
            ])
            .arg("--cert")
            .arg(self.dir.path().join("collector.crt"))
            .arg("--key")
            .arg(self.dir.path().join("collector.key"))
            .env("CHARTROOM_COLLECTOR_LOG", "warn")
            .stderr(Stdio::null())
            .spawn()
            .expect("starts");
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "collector did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    fn cert(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("collector.crt")).expect("cert")
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new(collector_bin())
            .args(["--db", &self.db()])
            .args(args)
            .env("CHARTROOM_COLLECTOR_LOG", "warn")
            .output()
            .expect("runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_owned()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Cell<'a>(RefCell<&'a mut Session>);

impl SessionAccess for Cell<'_> {
    fn with<R>(
        &self,
        f: impl FnOnce(&mut Session) -> Result<R, CoreError>,
    ) -> Result<R, CoreError> {
        f(&mut self.0.borrow_mut())
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Enrolls the clinic's device with the collector as its admin.
fn enroll(clinic: &Clinic, c: &Collector) {
    let mut admin = clinic.as_role(Role::Admin);
    let client = CollectorClient::new(&c.url(), &c.cert()).expect("client");
    let token = c.run(&["token"]);
    runtime()
        .block_on(client.enroll(&token, admin.device_id(), &admin.device_public_key(), None))
        .expect("enrolls");
    admin
        .sync_configure(&c.url(), &c.cert())
        .expect("configures");
    admin.lock().expect("locks");
}

fn push(session: &mut Session) -> Result<u64, SyncError> {
    let target = session.sync_target().expect("reads").expect("configured");
    let client = CollectorClient::new(&target.url, &target.certificate).expect("client");
    runtime().block_on(push_pending(&Cell(RefCell::new(session)), &client, 1000))
}

/// The collector's copy of this device's trail, as FHIR AuditEvent NDJSON lines.
fn collector_copy(c: &Collector, device: &str) -> Vec<serde_json::Value> {
    let token = c.run(&["token", "--auditor"]);
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(c.cert().as_bytes()).expect("pem"))
        .tls_built_in_root_certs(false)
        .build()
        .expect("client");
    let body = client
        .get(format!(
            "{}/v1/audit?device={device}&format=ndjson&limit=1000000",
            c.url()
        ))
        .bearer_auth(token)
        .send()
        .expect("sends")
        .text()
        .expect("text");
    body.lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

#[test]
fn ten_thousand_entries_arrive_and_the_collectors_copy_equals_the_desktops() {
    let clinic = Clinic::new();
    let c = Collector::start();
    enroll(&clinic, &c);
    let mut doctor = clinic.as_role(Role::Physician);
    for i in 0..10_000 {
        doctor
            .search_patients(if i % 2 == 0 { "lee" } else { "mat" })
            .expect("searches");
    }
    let pushed = push(&mut doctor).expect("pushes");
    assert!(pushed >= 10_000, "{pushed}");
    let status = doctor.sync_status().expect("status");
    assert_eq!(status.queued, 0);
    assert!(status.last_error.is_none());
    let device = doctor.device_id().to_owned();
    doctor.lock().expect("locks");

    let verify = c.run(&["verify"]);
    assert!(verify.contains("intact"), "{verify}");
    // Entry by entry, the collector holds what the desktop wrote.
    let mine = clinic.entries(AuditFilter::default());
    let theirs = collector_copy(&c, &device);
    let acked = mine
        .iter()
        .filter(|r| r.entry.seq <= status.acknowledged)
        .map(chartroom_audit::to_fhir_audit_event)
        .collect::<Vec<_>>();
    assert_eq!(theirs.len(), acked.len());
    assert_eq!(theirs, acked);
}

#[test]
fn a_collector_killed_mid_push_converges_with_nothing_lost_or_doubled() {
    let clinic = Clinic::new();
    let mut c = Collector::start();
    enroll(&clinic, &c);
    let mut doctor = clinic.as_role(Role::Physician);
    for _ in 0..6_000 {
        doctor.search_patients("lee").expect("searches");
    }
    // Kill the collector while the push runs in this thread's runtime.
    let port = c.port;
    let killer = {
        let child = c.child.take().expect("running");
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        })
    };
    let first = push(&mut doctor);
    killer.join().expect("joins");
    let _ = port;
    if let Err(e) = &first {
        let status = doctor.sync_status().expect("status");
        assert!(
            status.queued > 0 && status.last_error.is_some(),
            "{e}: {status:?}"
        );
    }
    c.serve();
    push(&mut doctor).expect("pushes after the restart");
    let status = doctor.sync_status().expect("status");
    assert_eq!(status.queued, 0, "{status:?}");
    let device = doctor.device_id().to_owned();
    doctor.lock().expect("locks");
    let verify = c.run(&["verify"]);
    assert!(verify.contains("intact"), "{verify}");
    let theirs = collector_copy(&c, &device);
    let seqs: Vec<u64> = theirs
        .iter()
        .map(|e| {
            e["id"]
                .as_str()
                .expect("id")
                .rsplit('-')
                .next()
                .expect("seq")
                .parse()
                .expect("number")
        })
        .collect();
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), seqs.len(), "no duplicates");
    assert_eq!(
        sorted,
        (1..=status.acknowledged).collect::<Vec<_>>(),
        "nothing lost"
    );
}

#[test]
fn with_the_collector_down_charting_goes_on_the_queue_grows_and_all_arrives_later() {
    let clinic = Clinic::new();
    let mut c = Collector::start();
    enroll(&clinic, &c);
    c.kill();
    let mut doctor = clinic.as_role(Role::Physician);
    let before = doctor.sync_status().expect("status").queued;
    for i in 0..50 {
        doctor
            .register_new_person(
                &crate::NewPatient::new(
                    "Offline",
                    &format!("Patient{}", char::from(b'a' + (i % 26) as u8)),
                    "1990-01-01",
                    "female",
                    false,
                    chrono::NaiveDate::from_ymd_opt(2026, 3, 3).expect("date"),
                )
                .expect("valid"),
            )
            .expect("charting works offline");
    }
    let err = push(&mut doctor).expect_err("the collector is down");
    assert!(matches!(err, SyncError::Unreachable(_)), "{err}");
    let status = doctor.sync_status().expect("status");
    assert!(status.queued >= before + 50, "{status:?}");
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("cannot be reached")),
        "{status:?}"
    );
    c.serve();
    push(&mut doctor).expect("pushes once it is back");
    let status = doctor.sync_status().expect("status");
    assert_eq!(status.queued, 0);
    assert!(status.last_error.is_none());
    doctor.lock().expect("locks");
}

#[test]
fn only_an_admin_configures_sync_and_bad_settings_are_refused() {
    let clinic = Clinic::new();
    let mut nurse = clinic.as_role(Role::Nurse);
    crate::gate_tests::denied_by_role(
        nurse.sync_configure("https://collector:8443", ""),
        Permission::ManageSync,
    );
    // Everyone sees the state; nobody configured it yet.
    let status = nurse.sync_status().expect("status");
    assert!(!status.configured);
    nurse.lock().expect("locks");
    let mut admin = clinic.as_role(Role::Admin);
    assert_eq!(
        admin
            .sync_configure("http://collector:8443", "")
            .expect_err("plain http")
            .code(),
        "invalid_input"
    );
    assert_eq!(
        admin
            .sync_configure("https://collector:8443", "not a certificate")
            .expect_err("bad pem")
            .code(),
        "invalid_input"
    );
}

#[test]
fn a_vault_restored_from_a_backup_never_adopts_a_head_it_does_not_hold() {
    let clinic = Clinic::new();
    let c = Collector::start();
    enroll(&clinic, &c);
    let mut admin = clinic.as_role(Role::Admin);
    let backup = clinic.config.dir.with_file_name("backup-before");
    admin.backup(&backup).expect("backs up");
    admin.lock().expect("locks");
    let mut doctor = clinic.as_role(Role::Physician);
    for _ in 0..20 {
        doctor.search_patients("lee").expect("searches");
    }
    push(&mut doctor).expect("pushes");
    doctor.lock().expect("locks");

    // The backup goes back in place and is used: new entries under numbers the collector
    // already holds, with other content.
    std::fs::remove_dir_all(&clinic.config.dir).expect("removes");
    std::fs::rename(&backup, &clinic.config.dir).expect("restores");
    let mut doctor = clinic.as_role(Role::Physician);
    for _ in 0..40 {
        doctor.search_patients("mat").expect("searches");
    }
    let before = doctor.sync_status().expect("status");
    let err = push(&mut doctor).expect_err("refused");
    assert!(err.to_string().contains("restored from a backup"), "{err}");
    let after = doctor.sync_status().expect("status");
    assert_eq!(
        after.acknowledged, before.acknowledged,
        "nothing written since the restore is marked as sent"
    );
    assert!(after.queued > 0);
    doctor.lock().expect("locks");
    let diverged = clinic.entries(AuditFilter {
        event: Some("sync.diverged".into()),
        ..AuditFilter::default()
    });
    assert!(!diverged.is_empty(), "the refusal is in the trail");
}

/// The collector's alerts as the auditor reads them: their summaries.
fn collector_alerts(c: &Collector) -> Vec<String> {
    let token = c.run(&["token", "--auditor"]);
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(c.cert().as_bytes()).expect("pem"))
        .tls_built_in_root_certs(false)
        .build()
        .expect("client");
    let body: serde_json::Value = client
        .get(format!("{}/v1/alerts", c.url()))
        .bearer_auth(token)
        .send()
        .expect("sends")
        .json()
        .expect("json");
    body["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .map(|a| a["summary"].as_str().expect("summary").to_owned())
        .collect()
}

#[test]
fn a_vault_put_back_with_vault_restore_syncs_as_a_new_epoch_and_a_second_copy_is_a_fork() {
    let clinic = Clinic::new();
    let c = Collector::start();
    enroll(&clinic, &c);
    let mut admin = clinic.as_role(Role::Admin);
    let backup = clinic.config.dir.with_file_name("backup-before");
    admin.backup(&backup).expect("backs up");
    admin.lock().expect("locks");
    let mut doctor = clinic.as_role(Role::Physician);
    for _ in 0..20 {
        doctor.search_patients("lee").expect("searches");
    }
    push(&mut doctor).expect("pushes");
    let device = doctor.device_id().to_owned();
    doctor.lock().expect("locks");
    let before_restore = collector_copy(&c, &device);
    // The computer as it was, copied elsewhere before the restore: a second computer.
    let other = clinic.config.dir.with_file_name("other-computer");
    std::fs::create_dir_all(&other).expect("makes the folder");
    for name in ["chartroom.db", "keyslots.json"] {
        std::fs::copy(clinic.config.dir.join(name), other.join(name)).expect("copies");
    }

    // A restore refuses a vault in use, and a role that may not make backups.
    let busy = clinic.as_role(Role::Physician);
    let err = restore_vault(&clinic.config, &backup, |staged| {
        Session::unlock(
            staged,
            "admin",
            &SecretString::from("admin-password".to_owned()),
        )
    })
    .expect_err("refused while open");
    assert_eq!(err.code(), "conflict", "{err}");
    busy.lock().expect("locks");
    let (name, password) = crate::gate_tests::password_of(Role::Physician);
    let err = restore_vault(&clinic.config, &backup, |staged| {
        Session::unlock(staged, name, &SecretString::from(password.to_owned()))
    })
    .expect_err("a physician may not restore");
    assert_eq!(err.code(), "forbidden", "{err}");
    assert!(backup.join("chartroom.db").exists(), "the backup stays");

    let report = restore_vault(&clinic.config, &backup, |staged| {
        Session::unlock(
            staged,
            "admin",
            &SecretString::from("admin-password".to_owned()),
        )
    })
    .expect("restores");
    let replaced = report.replaced.clone().expect("the vault that was there");
    assert!(replaced.join("chartroom.db").exists(), "kept, not deleted");
    assert!(report.restore_entry > report.backup_head);
    let restores = clinic.entries(AuditFilter {
        event: Some("vault.restore".into()),
        ..AuditFilter::default()
    });
    assert_eq!(restores.len(), 1);

    // Used after the restore, then synced: a new epoch, nothing lost either side.
    let mut doctor = clinic.as_role(Role::Physician);
    for _ in 0..40 {
        doctor.search_patients("mat").expect("searches");
    }
    push(&mut doctor).expect("sync goes on after the restore");
    let status = doctor.sync_status().expect("status");
    assert_eq!(status.queued, 0, "{status:?}");
    assert!(status.last_error.is_none());
    doctor.lock().expect("locks");
    let after = collector_copy(&c, &device);
    let id_of = |e: &serde_json::Value| e["id"].as_str().expect("id").to_owned();
    let held: std::collections::HashSet<String> = after.iter().map(id_of).collect();
    for e in &before_restore {
        assert!(
            held.contains(&id_of(e)),
            "an entry sent before the restore is kept"
        );
    }
    let acknowledged = status.acknowledged as usize;
    let superseded = before_restore.len() - report.backup_head as usize;
    assert_eq!(after.len(), acknowledged + superseded);
    let alerts = collector_alerts(&c);
    assert!(
        alerts.iter().any(|a| a.contains("restored from a backup")),
        "{alerts:?}"
    );
    assert!(
        !alerts.iter().any(|a| a.contains("rewritten")),
        "a restore is not a tamper alarm: {alerts:?}"
    );
    let verified = c.run(&["verify"]);
    assert!(verified.contains("epoch 0"), "{verified}");

    // The copy from before the restore, still in use on another computer: a fork.
    let copy = VaultConfig {
        dir: other.clone(),
        ..clinic.config.clone()
    };
    let mut stray = Session::unlock(copy, name, &SecretString::from(password.to_owned()))
        .expect("the copy opens");
    for _ in 0..90 {
        stray.search_patients("lee").expect("searches");
    }
    // Its own sync stops before sending anything: the collector's head is not one it holds.
    let err = push(&mut stray).expect_err("refused");
    assert!(err.to_string().contains("restored from a backup"), "{err}");
    // Sent anyway (an old version, or by hand), the collector refuses it as a fork.
    let batch = stray
        .sync_next_batch(1000)
        .expect("reads")
        .expect("a batch");
    let target = stray.sync_target().expect("reads").expect("configured");
    stray.lock().expect("locks");
    let client = CollectorClient::new(&target.url, &target.certificate).expect("client");
    let err = runtime()
        .block_on(client.push(&batch))
        .expect_err("refused");
    assert!(
        err.to_string().contains("fork") || err.to_string().contains("rewritten"),
        "{err}"
    );
    let alerts = collector_alerts(&c);
    assert!(
        alerts.iter().any(|a| a.contains("second computer")),
        "{alerts:?}"
    );
    assert_eq!(collector_copy(&c, &device).len(), after.len());
}
