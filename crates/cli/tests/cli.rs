//! The `chartroom` binary as scripts use it: real processes on real vault folders.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_chartroom");

struct Clinic {
    tmp: tempfile::TempDir,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    fn error(&self) -> Value {
        serde_json::from_str::<Value>(self.stderr.trim())
            .unwrap_or_else(|e| panic!("stderr not JSON ({e}): {}", self.stderr))["error"]
            .clone()
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Clinic {
    fn new() -> Self {
        Clinic {
            tmp: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn dir(&self) -> PathBuf {
        self.tmp.path().join("vault")
    }

    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("--vault").arg(self.dir()).args(args);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.tmp.path())
            .env("CHARTROOM_STATE_DIR", self.tmp.path().join("state"))
            // Calibrate to the floor: RFC 9106's minimum, never less.
            .env("CHARTROOM_KDF_TARGET_MS", "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        self.command(args, env)
            .output()
            .expect("runs chartroom")
            .into()
    }

    fn as_user(&self, user: &str, password: &str, args: &[&str]) -> Run {
        let mut all = vec!["--user", user, "--json"];
        all.extend_from_slice(args);
        self.run(&all, &[("CHARTROOM_PASSWORD", password)])
    }

    fn init(&self) -> String {
        let run = self.run(
            &["vault", "init", "--admin", "admin", "--json"],
            &[("CHARTROOM_PASSWORD", "admin-password")],
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        run.json()["recovery_key"]
            .as_str()
            .expect("recovery_key")
            .to_owned()
    }

    fn add_user(&self, name: &str, role: &str, password: &str) {
        let run = self.run(
            &[
                "--user", "admin", "--json", "user", "add", name, "--role", role,
            ],
            &[
                ("CHARTROOM_PASSWORD", "admin-password"),
                ("CHARTROOM_NEW_PASSWORD", password),
            ],
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
    }

    fn key(&self) -> String {
        let run = self.as_user("admin", "admin-password", &["vault", "export-key"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        run.json()["key"].as_str().expect("key").to_owned()
    }
}

fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .expect("reads dir")
        .map(|e| {
            let e = e.expect("entry");
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).expect("reads"),
            )
        })
        .collect()
}

#[test]
fn init_prints_a_grouped_recovery_key_and_info_needs_no_password() {
    let c = Clinic::new();
    let key = c.init();
    assert_eq!(key.len(), 39);
    assert!(key
        .split('-')
        .all(|g| g.len() == 4 && g.chars().all(|ch| ch.is_ascii_alphanumeric())));
    let info = c.run(&["vault", "info", "--json"], &[]);
    assert_eq!(info.code, 0, "{}", info.stderr);
    let doc = info.json();
    assert_eq!(doc["format_version"], 2, "the slot file with compartments");
    assert_eq!(doc["users"], serde_json::json!(["admin"]));
    let slot = &doc["slots"][0]["kdf"];
    assert!(slot["memory_kib"].as_u64().expect("m") >= 65536);
    assert!(slot["iterations"].as_u64().expect("t") >= 3);
    assert!(slot["parallelism"].as_u64().expect("p") >= 4);
    assert!(!info.stdout.contains("admin-password"));

    let again = c.run(
        &["vault", "init", "--admin", "x", "--json"],
        &[("CHARTROOM_PASSWORD", "admin-password")],
    );
    assert_eq!(again.code, 65);
    assert_eq!(again.error()["code"], "vault_exists");
}

#[test]
fn exit_codes_follow_sysexits() {
    let c = Clinic::new();
    let missing = c.run(&["vault", "info", "--json"], &[]);
    assert_eq!(missing.code, 66);
    assert_eq!(missing.error()["code"], "no_vault");
    assert_eq!(c.run(&["vault", "frobnicate"], &[]).code, 64);
    let usage = c.run(&["--json", "user", "add", "x"], &[]);
    assert_eq!(usage.code, 64);
    assert_eq!(usage.error()["code"], "usage");
    c.init();
    let no_user = c.run(
        &["--json", "user", "list"],
        &[("CHARTROOM_PASSWORD", "admin-password")],
    );
    assert_eq!(no_user.code, 64, "{}", no_user.stderr);
    let bad_role = c.run(
        &[
            "--user", "admin", "--json", "user", "add", "x", "--role", "wizard",
        ],
        &[
            ("CHARTROOM_PASSWORD", "admin-password"),
            ("CHARTROOM_NEW_PASSWORD", "x-password"),
        ],
    );
    assert_eq!(bad_role.code, 65);
    assert!(bad_role.error()["message"]
        .as_str()
        .expect("message")
        .contains("Unknown role"));
}

#[test]
fn wrong_password_is_refused_and_changes_no_file() {
    let c = Clinic::new();
    c.init();
    let before = snapshot(&c.dir());
    let run = c.as_user("admin", "not-the-password", &["user", "list"]);
    assert_eq!(run.code, 77);
    assert_eq!(run.error()["code"], "auth_failed");
    assert!(!run.stderr.contains("not-the-password"));
    // Only the failure count, kept in the vault folder, changes.
    let mut after = snapshot(&c.dir());
    let failures = after
        .remove("unlock-failures.json")
        .expect("the failure is counted in the vault folder");
    assert!(!String::from_utf8_lossy(&failures).contains("not-the-password"));
    assert_eq!(after, before);
    // Pointing the state folder elsewhere does not switch the count off.
    for _ in 0..5 {
        let _ = c.run(
            &["--user", "admin", "--json", "user", "list"],
            &[
                ("CHARTROOM_PASSWORD", "not-the-password"),
                ("CHARTROOM_STATE_DIR", "/nonexistent/elsewhere"),
            ],
        );
    }
    let paused = c.as_user("admin", "admin-password", &["user", "list"]);
    assert_eq!(paused.error()["code"], "locked_out", "{}", paused.stderr);
}

#[test]
fn repeated_failures_pause_sign_in_with_exit_75() {
    let c = Clinic::new();
    c.init();
    for _ in 0..5 {
        assert_eq!(
            c.as_user("admin", "guessing-password", &["user", "list"])
                .code,
            77
        );
    }
    let paused = c.as_user("admin", "admin-password", &["user", "list"]);
    assert_eq!(paused.code, 75, "{}", paused.stderr);
    assert_eq!(paused.error()["code"], "locked_out");
    assert!(paused.error()["message"]
        .as_str()
        .expect("message")
        .contains("try again in"));
}

#[test]
fn users_are_added_listed_changed_and_disabled() {
    let c = Clinic::new();
    c.init();
    c.add_user("nurse1", "nurse", "nurse-password");
    let list = c.as_user("admin", "admin-password", &["user", "list"]);
    let users = list.json()["users"].as_array().expect("users").clone();
    assert_eq!(users.len(), 2);
    assert!(users
        .iter()
        .any(|u| u["name"] == "nurse1" && u["role"] == "nurse" && u["disabled"] == false));

    // A nurse may not add users: 77, and nothing was added.
    let denied = c.run(
        &[
            "--user", "nurse1", "--json", "user", "add", "x", "--role", "admin",
        ],
        &[
            ("CHARTROOM_PASSWORD", "nurse-password"),
            ("CHARTROOM_NEW_PASSWORD", "x-password"),
        ],
    );
    assert_eq!(denied.code, 77);
    assert_eq!(denied.error()["code"], "forbidden");

    // Own password change.
    let passwd = c.run(
        &["--user", "nurse1", "--json", "user", "passwd"],
        &[
            ("CHARTROOM_PASSWORD", "nurse-password"),
            ("CHARTROOM_NEW_PASSWORD", "nurse-password-2"),
        ],
    );
    assert_eq!(passwd.code, 0, "{}", passwd.stderr);
    assert_eq!(
        c.as_user("nurse1", "nurse-password", &["vault", "export-key"])
            .code,
        77
    );
    let forbidden = c.as_user("nurse1", "nurse-password-2", &["vault", "export-key"]);
    assert_eq!(forbidden.code, 77);
    assert_eq!(forbidden.error()["code"], "forbidden");

    let disabled = c.as_user("admin", "admin-password", &["user", "disable", "nurse1"]);
    assert_eq!(disabled.code, 0, "{}", disabled.stderr);
    assert_eq!(
        c.as_user("nurse1", "nurse-password-2", &["user", "list"])
            .code,
        77
    );
    let info = c.run(&["vault", "info", "--json"], &[]).json();
    assert_eq!(info["users"], serde_json::json!(["admin"]));

    // Enabled again, with a new password set by the admin; the old one stays useless.
    let enabled = c.run(
        &["--user", "admin", "--json", "user", "enable", "nurse1"],
        &[
            ("CHARTROOM_PASSWORD", "admin-password"),
            ("CHARTROOM_NEW_PASSWORD", "nurse-password-3"),
        ],
    );
    assert_eq!(enabled.code, 0, "{}", enabled.stderr);
    assert_eq!(enabled.json()["disabled"], false);
    assert_eq!(
        c.as_user("nurse1", "nurse-password-2", &["patient", "search", "x"])
            .code,
        77
    );
    let back = c.as_user("nurse1", "nurse-password-3", &["patient", "search", "x"]);
    assert_eq!(back.code, 0, "{}", back.stderr);
}

#[test]
fn passwords_come_from_stdin_too() {
    let c = Clinic::new();
    c.init();
    let mut child = c
        .command(
            &[
                "--user",
                "admin",
                "--password-stdin",
                "--json",
                "user",
                "add",
                "fd1",
                "--role",
                "front_desk",
            ],
            &[],
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawns");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"admin-password\nfront-desk-password\n")
        .expect("writes");
    let run: Run = child.wait_with_output().expect("waits").into();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["user"]["role"], "front_desk");
}

#[test]
fn the_recovery_key_exports_the_same_key_and_resets_a_lost_password() {
    let c = Clinic::new();
    let recovery = c.init();
    let key = c.key();
    assert_eq!(key.len(), 64);
    assert!(key.chars().all(|ch| ch.is_ascii_hexdigit()));
    let via_recovery = c.run(
        &[
            "--json",
            "vault",
            "export-key",
            "--recovery-key",
            &recovery.to_lowercase(),
        ],
        &[],
    );
    assert_eq!(via_recovery.code, 0, "{}", via_recovery.stderr);
    assert_eq!(via_recovery.json()["key"], key);
    let from_env = c.run(
        &["--json", "vault", "export-key", "--recovery-key"],
        &[("CHARTROOM_RECOVERY_KEY", &recovery)],
    );
    assert_eq!(from_env.json()["key"], key);

    let typo = c.run(
        &[
            "--json",
            "vault",
            "export-key",
            "--recovery-key",
            &recovery.replace('-', "").replacen(|_: char| true, "U", 1),
        ],
        &[],
    );
    assert_ne!(typo.code, 0);

    let reset = c.run(
        &[
            "--json",
            "user",
            "passwd",
            "admin",
            "--recovery-key",
            &recovery,
        ],
        &[("CHARTROOM_NEW_PASSWORD", "brand-new-admin-pw")],
    );
    assert_eq!(reset.code, 0, "{}", reset.stderr);
    assert_eq!(
        c.as_user("admin", "brand-new-admin-pw", &["user", "list"])
            .code,
        0
    );
}

#[test]
fn damaged_slots_and_a_missing_database_are_clear_errors_that_change_nothing() {
    let c = Clinic::new();
    c.init();
    let slots = c.dir().join("keyslots.json");
    let good = fs::read(&slots).expect("reads");
    fs::write(&slots, &good[..good.len() - 40]).expect("truncates");
    let before = snapshot(&c.dir());
    let run = c.as_user("admin", "admin-password", &["user", "list"]);
    assert_eq!(run.code, 65);
    assert_eq!(run.error()["code"], "keyslots_invalid");
    assert!(run.error()["message"]
        .as_str()
        .expect("message")
        .contains("damaged or truncated"));
    assert_eq!(snapshot(&c.dir()), before);

    fs::write(&slots, &good).expect("restores");
    fs::rename(c.dir().join("chartroom.db"), c.tmp.path().join("moved.db")).expect("moves");
    let before = snapshot(&c.dir());
    let run = c.as_user("admin", "admin-password", &["user", "list"]);
    assert_eq!(run.code, 66);
    assert_eq!(run.error()["code"], "database_missing");
    assert_eq!(snapshot(&c.dir()), before);
}

fn fill(dir: &Path, key: &str, rows: usize) {
    let conn = rusqlite::Connection::open(dir.join("chartroom.db")).expect("opens");
    conn.pragma_update(None, "key", format!("x'{key}'"))
        .expect("keys");
    conn.execute_batch("CREATE TABLE filler (id INTEGER PRIMARY KEY, body TEXT NOT NULL); BEGIN;")
        .expect("creates");
    let body = "x".repeat(900);
    for i in 0..rows {
        conn.execute(
            "INSERT INTO filler (body) VALUES (?1)",
            [format!("{i}{body}")],
        )
        .expect("inserts");
    }
    conn.execute_batch("COMMIT; PRAGMA wal_checkpoint(TRUNCATE);")
        .expect("commits");
}

fn rows(dir: &Path, key: &str) -> rusqlite::Result<i64> {
    let conn = rusqlite::Connection::open(dir.join("chartroom.db"))?;
    conn.pragma_update(None, "key", format!("x'{key}'"))?;
    conn.query_row("SELECT count(*) FROM filler", [], |r| r.get(0))
}

#[test]
fn rekey_keeps_every_password_and_retires_the_old_key() {
    let c = Clinic::new();
    let recovery = c.init();
    c.add_user("doc", "physician", "doctor-password");
    let old = c.key();
    fill(&c.dir(), &old, 100);
    let run = c.as_user("admin", "admin-password", &["vault", "rekey"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["key_epoch"], 1);
    let new = c.key();
    assert_ne!(new, old);
    assert!(
        rows(&c.dir(), &old).is_err(),
        "the old key no longer opens the database"
    );
    assert_eq!(rows(&c.dir(), &new).expect("new key opens"), 100);
    assert_eq!(
        c.as_user("doc", "doctor-password", &["vault", "info"]).code,
        0
    );
    let via_recovery = c.run(
        &["--json", "vault", "export-key", "--recovery-key", &recovery],
        &[],
    );
    assert_eq!(via_recovery.json()["key"], new);
}

/// Kills `vault rekey` at several moments, as a power cut would, and checks that every
/// time the vault opens with one key or the other and no row is lost.
#[test]
fn rekey_killed_at_any_moment_leaves_an_openable_vault() {
    let c = Clinic::new();
    c.init();
    let mut key = c.key();
    const ROWS: usize = 40_000;
    fill(&c.dir(), &key, ROWS);
    let mut interrupted = 0;
    for delay_ms in [5, 60, 120, 200, 300, 450, 700, 1000] {
        let mut child = c
            .command(
                &["--user", "admin", "vault", "rekey"],
                &[("CHARTROOM_PASSWORD", "admin-password")],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawns");
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let pending = c.run(&["--json", "vault", "info"], &[]).json()["rekey_pending"] == true;
        interrupted += usize::from(pending);
        let now = c.key();
        assert_eq!(
            rows(&c.dir(), &now).expect("opens after a kill"),
            ROWS as i64,
            "killed after {delay_ms} ms"
        );
        let info = c.run(&["--json", "vault", "info"], &[]).json();
        assert_eq!(info["rekey_pending"], false, "the next unlock tidied up");
        if now != key {
            assert!(
                rows(&c.dir(), &key).is_err(),
                "a finished rekey retired the old key"
            );
            key = now;
        }
    }
    assert!(
        interrupted > 0,
        "no kill landed inside a rekey, so this test proved nothing"
    );
}

#[test]
fn restricted_charts_break_the_glass_alerts_and_settings_through_the_cli() {
    let c = Clinic::new();
    c.init();
    c.add_user("dr.ito", "physician", "physician-password");
    c.add_user("nurse.ana", "nurse", "nurse-password");
    c.add_user("desk.bo", "front_desk", "frontdesk-password");
    c.add_user("aud.ray", "auditor", "auditor-password");

    let added = c.as_user(
        "dr.ito",
        "physician-password",
        &[
            "patient",
            "add",
            "--family",
            "Varga",
            "--given",
            "Eszter",
            "--birth-date",
            "1958-04-30",
            "--sex",
            "female",
            "--restricted",
        ],
    );
    assert_eq!(added.code, 0, "{}", added.stderr);
    let patient = added.json();
    assert!(patient["mrn"].as_str().is_some_and(|m| m.len() == 7));
    let id = patient["id"].as_i64().expect("id").to_string();

    // Bad input: a birth date in the future is 65 and registers nothing.
    let bad = c.as_user(
        "desk.bo",
        "frontdesk-password",
        &[
            "patient",
            "add",
            "--family",
            "X",
            "--given",
            "Y",
            "--birth-date",
            "2999-01-01",
        ],
    );
    assert_eq!(bad.code, 65);
    assert_eq!(bad.error()["code"], "invalid_input");

    // The nurse is not on the care team: 77 with a message that says how to get in.
    let refused = c.as_user("nurse.ana", "nurse-password", &["patient", "show", &id]);
    assert_eq!(refused.code, 77);
    assert!(refused.error()["message"]
        .as_str()
        .is_some_and(|m| m.contains("break the glass")));
    let no_reason = c.as_user(
        "nurse.ana",
        "nurse-password",
        &["patient", "break-glass", &id, "--reason", " "],
    );
    assert_eq!(no_reason.code, 65);
    let grant = c.as_user(
        "nurse.ana",
        "nurse-password",
        &[
            "patient",
            "break-glass",
            &id,
            "--reason",
            "Chest pain, doctor unreachable",
        ],
    );
    assert_eq!(grant.code, 0, "{}", grant.stderr);
    assert_eq!(grant.json()["minutes"], 60);
    let opened = c.as_user("nurse.ana", "nurse-password", &["patient", "show", &id]);
    assert_eq!(opened.code, 0, "{}", opened.stderr);
    assert_eq!(opened.json()["access"]["via"], "break_glass");

    // Front desk sees demographics of unrestricted patients only, and never notes.
    let desk = c.as_user("desk.bo", "frontdesk-password", &["patient", "show", &id]);
    assert_eq!(desk.code, 77);
    // Her name finds nothing for the front desk; her exact MRN finds her, masked.
    let search = c.as_user(
        "desk.bo",
        "frontdesk-password",
        &["patient", "search", "varga"],
    );
    assert_eq!(search.json()["patients"], serde_json::json!([]));
    let mrn = patient["mrn"].as_str().expect("mrn");
    let search = c.as_user("desk.bo", "frontdesk-password", &["patient", "search", mrn]);
    assert_eq!(search.json()["patients"][0]["restricted"], true);
    assert_eq!(search.json()["patients"][0]["masked"], true);

    // The auditor sees the break-the-glass alert and acknowledges it with a note.
    let alerts = c.as_user("aud.ray", "auditor-password", &["alerts", "list"]);
    assert_eq!(alerts.code, 0, "{}", alerts.stderr);
    let list = alerts.json()["alerts"].as_array().expect("alerts").clone();
    let glass = list
        .iter()
        .find(|a| a["rule"] == "break_glass")
        .expect("a break-the-glass alert");
    let alert_id = glass["id"].as_i64().expect("id").to_string();
    let ack = c.as_user(
        "aud.ray",
        "auditor-password",
        &[
            "alerts",
            "ack",
            &alert_id,
            "--note",
            "Confirmed with Dr Ito: emergency.",
        ],
    );
    assert_eq!(ack.code, 0, "{}", ack.stderr);
    let open = c
        .as_user("aud.ray", "auditor-password", &["alerts", "list"])
        .json();
    assert!(open["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .all(|a| a["id"].as_i64() != glass["id"].as_i64()));

    // Settings: the admin changes them, bad values are 65, others are 77.
    let set = c.as_user(
        "admin",
        "admin-password",
        &["settings", "set", "idle_timeout_minutes", "5"],
    );
    assert_eq!(set.code, 0, "{}", set.stderr);
    assert_eq!(set.json()["settings"]["idle_timeout_minutes"], 5);
    assert_eq!(
        c.as_user(
            "admin",
            "admin-password",
            &["settings", "set", "idle_timeout_minutes", "0"]
        )
        .code,
        65
    );
    assert_eq!(
        c.as_user(
            "dr.ito",
            "physician-password",
            &["settings", "set", "break_glass_minutes", "600"]
        )
        .code,
        77
    );

    // The whole story is in the trail, and the trail verifies.
    let trail = c.as_user(
        "aud.ray",
        "auditor-password",
        &["audit", "list", "--patient", &id],
    );
    let events: Vec<(String, String)> = trail.json()["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap_or("").to_owned(),
                e["outcome"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    for expected in [
        ("patient.create", "success"),
        ("chart.read", "denied"),
        ("break_glass", "denied"),
        ("break_glass", "success"),
        ("chart.read", "success"),
    ] {
        assert!(
            events.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} in {events:?}"
        );
    }
    let verify = c.as_user("aud.ray", "auditor-password", &["audit", "verify"]);
    assert_eq!(verify.code, 0, "{}", verify.stdout);
    assert_eq!(verify.json()["ok"], true);
    // Nobody else reads the trail.
    assert_eq!(
        c.as_user("dr.ito", "physician-password", &["audit", "list"])
            .code,
        77
    );
}

#[test]
fn a_charting_session_through_the_cli() {
    let c = Clinic::new();
    c.init();
    c.add_user("dr.ito", "physician", "physician-password");
    c.add_user("nurse.ana", "nurse", "nurse-password");
    c.add_user("desk.bo", "front_desk", "frontdesk-password");
    let doctor = |args: &[&str]| c.as_user("dr.ito", "physician-password", args);
    let nurse = |args: &[&str]| c.as_user("nurse.ana", "nurse-password", args);
    let desk = |args: &[&str]| c.as_user("desk.bo", "frontdesk-password", args);

    let p = desk(&[
        "patient",
        "add",
        "--family",
        "Müller",
        "--given",
        "Jürgen",
        "--birth-date",
        "1961-07-15",
        "--sex",
        "male",
        "--phone",
        "+49 30 5550 1987",
    ]);
    assert_eq!(p.code, 0, "{}", p.stderr);
    let id = p.json()["id"].as_i64().expect("id").to_string();
    let found = desk(&["patient", "search", "muller"]).json();
    assert_eq!(
        found["patients"][0]["id"].as_i64().map(|i| i.to_string()),
        Some(id.clone())
    );
    assert_eq!(
        found["patients"][0]["age"].as_u64().map(|a| a > 60),
        Some(true)
    );
    // The same person again: exit 65, `possible_duplicate`, with the candidates; nothing
    // written until `--new-person` says this is someone else.
    let twice = [
        "patient",
        "add",
        "--family",
        "Muller",
        "--given",
        "Jurgen",
        "--birth-date",
        "1961-07-15",
        "--sex",
        "male",
    ];
    let dup = desk(&twice);
    assert_eq!(dup.code, 65, "{}", dup.stderr);
    let error = dup.error();
    assert_eq!(error["code"], "possible_duplicate");
    assert_eq!(
        error["candidates"][0]["id"].as_i64().map(|i| i.to_string()),
        Some(id.clone())
    );
    assert_eq!(error["candidates"][0]["matched"], "name_and_birth_date");
    assert!(error["candidates"][0]["mrn"].is_string());
    let mut anyway = twice.to_vec();
    anyway.push("--new-person");
    let second = desk(&anyway);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_ne!(
        second.json()["id"].as_i64().map(|i| i.to_string()),
        Some(id.clone())
    );
    // A caller's number without the country code, and a name with a birth date.
    for query in [
        "30 5550 1987",
        "305550 1987",
        "jurgen 1961-07-15",
        "Müller 15.07.1961",
    ] {
        let hit = desk(&["patient", "search", query]).json();
        assert_eq!(
            hit["patients"][0]["id"].as_i64().map(|i| i.to_string()),
            Some(id.clone()),
            "{query}"
        );
        assert_eq!(hit["patients"][0]["phone"], "+49 30 5550 1987");
    }

    let upd = desk(&["patient", "update", &id, "--email", "jm@example.org"]);
    assert_eq!(upd.code, 0, "{}", upd.stderr);
    assert_eq!(upd.json()["version"], 2);
    assert_eq!(
        desk(&["patient", "update", &id, "--email", "nope"]).code,
        65
    );
    let history = desk(&["patient", "history", &id]).json();
    assert_eq!(history["versions"].as_array().map(Vec::len), Some(2));

    let enc = nurse(&[
        "encounter",
        "add",
        "--patient",
        &id,
        "--type",
        "office",
        "--reason",
        "Blood pressure check",
    ]);
    assert_eq!(enc.code, 0, "{}", enc.stderr);
    let enc_id = enc.json()["id"].as_i64().expect("id").to_string();
    let v = nurse(&[
        "vitals",
        "add",
        "--patient",
        &id,
        "--encounter",
        &enc_id,
        "--systolic",
        "162",
        "--diastolic",
        "98",
        "--heart-rate",
        "74",
        "--weight",
        "88.5",
        "--height",
        "180",
    ]);
    assert_eq!(v.code, 0, "{}", v.stderr);
    let obs = v.json()["observations"]
        .as_array()
        .expect("observations")
        .clone();
    assert_eq!(obs.len(), 6, "five values and the derived BMI");
    let sys = obs
        .iter()
        .find(|o| o["code"] == "8480-6")
        .expect("systolic");
    assert_eq!(
        (sys["unit"].as_str(), sys["flag"].as_str()),
        (Some("mm[Hg]"), Some("H"))
    );
    let bad = nurse(&["vitals", "add", "--patient", &id, "--heart-rate", "400"]);
    assert_eq!(bad.code, 65);
    assert!(bad.error()["message"]
        .as_str()
        .is_some_and(|m| m.contains("Heart rate")));

    assert_eq!(nurse(&["allergy", "none", "--patient", &id]).code, 0);
    let allergies = nurse(&["allergy", "list", "--patient", &id]).json();
    assert_eq!(allergies["allergy_status"], "no_known_allergies");
    let note = nurse(&[
        "note",
        "draft",
        "--patient",
        &id,
        "--encounter",
        &enc_id,
        "--subjective",
        "Headache",
        "--objective",
        "BP 162/98",
    ]);
    assert_eq!(note.code, 0, "{}", note.stderr);
    let note_id = note.json()["id"].as_i64().expect("id").to_string();
    assert_eq!(nurse(&["note", "sign", &note_id]).code, 77);
    assert_eq!(doctor(&["note", "sign", &note_id]).code, 0);
    assert_eq!(doctor(&["note", "sign", &note_id]).code, 65);
    assert_eq!(
        doctor(&["note", "edit", &note_id, "--text", "rewritten"]).code,
        65
    );
    let add = doctor(&[
        "note",
        "addendum",
        &note_id,
        "--text",
        "Repeat BP 150/92.",
        "--sign",
    ]);
    assert_eq!(add.code, 0, "{}", add.stderr);
    assert_eq!(
        add.json()["parent_id"].as_i64().map(|p| p.to_string()),
        Some(note_id.clone())
    );
    assert_eq!(add.json()["status"], "signed");

    let prob = doctor(&[
        "problem",
        "add",
        "--patient",
        &id,
        "--text",
        "Essential hypertension",
        "--system",
        "icd10",
        "--code",
        "I10",
    ]);
    assert_eq!(prob.code, 0, "{}", prob.stderr);
    assert_eq!(
        doctor(&[
            "problem",
            "add",
            "--patient",
            &id,
            "--text",
            "X",
            "--code",
            "not-a-code"
        ])
        .code,
        65
    );
    let med = doctor(&[
        "medication",
        "add",
        "--patient",
        &id,
        "--name",
        "Amlodipine",
        "--dose",
        "5 mg",
        "--route",
        "oral",
        "--frequency",
        "once daily",
    ]);
    assert_eq!(med.code, 0, "{}", med.stderr);
    let med_id = med.json()["id"].as_i64().expect("id").to_string();
    assert_eq!(
        doctor(&["medication", "resolve", &med_id]).json()["status"],
        "stopped"
    );
    let imm = nurse(&[
        "immunization",
        "add",
        "--patient",
        &id,
        "--vaccine",
        "Influenza",
        "--cvx",
        "141",
        "--date",
        "2025-10-01",
        "--site",
        "left_arm",
    ]);
    assert_eq!(imm.code, 0, "{}", imm.stderr);

    let chart = doctor(&["patient", "show", &id]).json();
    for key in [
        "allergies",
        "problems",
        "medications",
        "immunizations",
        "encounters",
        "vitals",
        "notes",
    ] {
        assert!(chart[key].is_array(), "{key} in the physician's chart");
    }
    assert_eq!(chart["notes"].as_array().map(Vec::len), Some(2));
    let desk_chart = desk(&["patient", "show", &id]).json();
    for key in [
        "allergies",
        "problems",
        "medications",
        "immunizations",
        "encounters",
        "vitals",
        "notes",
    ] {
        assert!(
            desk_chart.get(key).is_none(),
            "{key} hidden from the front desk"
        );
    }
    assert_eq!(desk_chart["mrn"], chart["mrn"]);
    assert_eq!(desk(&["vitals", "list", "--patient", &id]).code, 77);
    assert_eq!(desk(&["note", "list", "--patient", &id]).code, 77);
    // A drug against a recorded allergy: exit 65 `allergy_conflict` naming the allergy and
    // the class; `--override-allergy REASON` saves it with the reason.
    let doc = |args: &[&str]| c.as_user("dr.ito", "physician-password", args);
    let allergy = doc(&[
        "allergy",
        "add",
        "--patient",
        &id,
        "--substance",
        "Penicillin",
        "--severity",
        "severe",
    ]);
    assert_eq!(allergy.code, 0, "{}", allergy.stderr);
    let amox = [
        "medication",
        "add",
        "--patient",
        &id,
        "--name",
        "Amoxicillin",
    ];
    let refused = doc(&amox);
    assert_eq!(refused.code, 65, "{}", refused.stderr);
    let error = refused.error();
    assert_eq!(error["code"], "allergy_conflict");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("Penicillin")
            && message.contains("severe")
            && message.contains("penicillins"),
        "{message}"
    );
    let mut anyway = amox.to_vec();
    anyway.extend(["--override-allergy", "Tolerated a graded challenge"]);
    let saved = doc(&anyway);
    assert_eq!(saved.code, 0, "{}", saved.stderr);
    assert_eq!(
        saved.json()["allergy_override"],
        "Tolerated a graded challenge"
    );
    let aspirin = doc(&["medication", "add", "--patient", &id, "--name", "Ibuprofen"]);
    assert_eq!(aspirin.code, 0, "{}", aspirin.stderr);
    let reverse = doc(&["allergy", "add", "--patient", &id, "--substance", "Aspirin"]);
    assert_eq!(reverse.code, 65, "{}", reverse.stderr);
    assert_eq!(reverse.error()["code"], "allergy_conflict");
}

#[test]
fn demo_makes_a_clinic_and_a_vault_when_there_is_none() {
    let c = Clinic::new();
    let run = c.run(
        &[
            "--user",
            "boss",
            "--json",
            "demo",
            "--patients",
            "40",
            "--seed",
            "9",
            "--long-chart-every",
            "0",
        ],
        &[("CHARTROOM_PASSWORD", "boss-password")],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let doc = run.json();
    assert_eq!(doc["patients"], 40);
    assert!(
        doc["recovery_key"].is_string(),
        "a new vault shows its recovery key"
    );
    let again = c.as_user(
        "boss",
        "boss-password",
        &["demo", "--patients", "10", "--seed", "9"],
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.json().get("recovery_key").is_none());
    assert_eq!(
        c.as_user("boss", "boss-password", &["demo", "--patients", "0"])
            .code,
        65
    );
}

#[test]
fn a_backup_opens_like_the_vault() {
    let c = Clinic::new();
    c.init();
    c.add_user("nurse1", "nurse", "nurse-password");
    let target = c.tmp.path().join("backup-2026-11-24");
    let target_s = target.to_string_lossy().into_owned();
    let run = c.as_user(
        "admin",
        "admin-password",
        &["vault", "backup", "--out", &target_s],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.json()["bytes"].as_u64().is_some_and(|b| b > 0));
    assert_eq!(
        c.as_user(
            "admin",
            "admin-password",
            &["vault", "backup", "--out", &target_s]
        )
        .code,
        65,
        "never over an existing folder"
    );
    assert_eq!(
        c.as_user(
            "nurse1",
            "nurse-password",
            &["vault", "backup", "--out", &format!("{target_s}-2")]
        )
        .code,
        77
    );
    let on_copy = |user: &str, password: &str| -> Run {
        Command::new(BIN)
            .args([
                "--vault", &target_s, "--user", user, "--json", "user", "list",
            ])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", c.tmp.path())
            .env("CHARTROOM_STATE_DIR", c.tmp.path().join("state-copy"))
            .env("CHARTROOM_PASSWORD", password)
            .stdin(Stdio::null())
            .output()
            .expect("runs")
            .into()
    };
    let copy = on_copy("nurse1", "nurse-password");
    assert_eq!(
        copy.code, 77,
        "the copy opens for the nurse, who may not list users: {}",
        copy.stderr
    );
    assert_eq!(copy.error()["code"], "forbidden");
    let listed = on_copy("admin", "admin-password");
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert_eq!(listed.json()["users"].as_array().map(Vec::len), Some(2));
}

#[test]
fn a_day_at_the_front_desk_through_the_cli() {
    let c = Clinic::new();
    c.init();
    c.add_user("dr.ito", "physician", "physician-password");
    c.add_user("nurse.ana", "nurse", "nurse-password");
    c.add_user("desk.bo", "front_desk", "frontdesk-password");
    let admin = |args: &[&str]| c.as_user("admin", "admin-password", args);
    let doctor = |args: &[&str]| c.as_user("dr.ito", "physician-password", args);
    let nurse = |args: &[&str]| c.as_user("nurse.ana", "nurse-password", args);
    let desk = |args: &[&str]| c.as_user("desk.bo", "frontdesk-password", args);
    // A week from now, in the clinic's zone.
    let day = (chrono::Utc::now() + chrono::Duration::days(7))
        .format("%Y-%m-%d")
        .to_string();
    let at = |hm: &str| format!("{day} {hm}");

    let zone = admin(&["settings", "set", "clinic_time_zone", "europe/berlin"]);
    assert_eq!(zone.code, 0, "{}", zone.stderr);
    assert_eq!(zone.json()["settings"]["clinic_time_zone"], "Europe/Berlin");
    assert_eq!(
        admin(&["settings", "set", "clinic_time_zone", "Mars/Olympus"]).code,
        65
    );
    let set = admin(&[
        "schedule",
        "set",
        "dr.ito",
        "--day",
        "mon-sun",
        "--hours",
        "08:00-12:00,13:00-17:00",
    ]);
    assert_eq!(set.code, 0, "{}", set.stderr);
    assert_eq!(set.json()["hours"]["wed"], "08:00-12:00,13:00-17:00");
    assert_eq!(
        admin(&[
            "schedule",
            "set",
            "desk.bo",
            "--day",
            "mon",
            "--hours",
            "08:00-12:00"
        ])
        .code,
        65,
        "only clinicians have a book"
    );
    assert_eq!(
        desk(&["schedule", "set", "dr.ito", "--day", "mon", "--hours", "off"]).code,
        77
    );
    let t = admin(&["appointment-type", "add", "New patient", "--minutes", "30"]);
    assert_eq!(t.code, 0, "{}", t.stderr);
    assert_eq!(
        t.json(),
        serde_json::json!({"name": "New patient", "minutes": 30})
    );
    admin(&["appointment-type", "add", "Follow-up", "--minutes", "15"]);
    let types = desk(&["appointment-type", "list"]).json();
    assert_eq!(types["appointment_types"].as_array().map(Vec::len), Some(2));

    let p = desk(&[
        "patient",
        "add",
        "--family",
        "Okoye",
        "--given",
        "Ada",
        "--birth-date",
        "1980-05-01",
        "--sex",
        "female",
    ]);
    assert_eq!(p.code, 0, "{}", p.stderr);
    let patient = p.json()["id"].as_i64().expect("id").to_string();

    let book = |extra: &[&str]| {
        let mut args = vec![
            "appointment",
            "book",
            "--patient",
            &patient,
            "--with",
            "dr.ito",
        ];
        args.extend_from_slice(extra);
        desk(&args)
    };
    let first = book(&[
        "--at",
        &at("09:00"),
        "--type",
        "new patient",
        "--reason",
        "Knee pain",
    ]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let a = first.json();
    for field in [
        "id",
        "patient_id",
        "clinician",
        "start",
        "end",
        "type",
        "reason",
        "status",
        "overbooked",
    ] {
        assert!(a.get(field).is_some(), "{field} missing: {a}");
    }
    assert!(a["start"]
        .as_str()
        .expect("start")
        .starts_with(&format!("{day}T09:00:00+0")));
    assert!(a["end"]
        .as_str()
        .expect("end")
        .starts_with(&format!("{day}T09:30:00+0")));
    assert_eq!(a["type"], "New patient");
    assert_eq!(a["status"], "booked");
    assert_eq!(a["overbooked"], false);
    assert_eq!(a["clinician"], "dr.ito");
    let id = a["id"].as_i64().expect("id").to_string();

    // A clash is exit 65 `conflict`; overbooking on purpose is marked.
    let clash = book(&["--at", &at("09:15")]);
    assert_eq!(clash.code, 65, "{}", clash.stderr);
    assert_eq!(clash.error()["code"], "conflict");
    let over = book(&["--at", &at("09:15"), "--overbook"]);
    assert_eq!(over.code, 0, "{}", over.stderr);
    assert_eq!(over.json()["overbooked"], true);
    let over_id = over.json()["id"].as_i64().expect("id").to_string();
    // Outside working hours: booked, with a warning.
    let late = book(&["--at", &at("18:00"), "--minutes", "20"]);
    assert_eq!(late.code, 0, "{}", late.stderr);
    assert!(late.json()["warnings"][0]
        .as_str()
        .unwrap_or_default()
        .contains("outside"));
    let late_id = late.json()["id"].as_i64().expect("id").to_string();
    // Bad input: exit 65, in words.
    let bad = book(&["--at", "the thirteenth"]);
    assert_eq!(bad.code, 65);
    assert_eq!(bad.error()["code"], "invalid_input");

    let free = desk(&[
        "appointment",
        "free",
        "--with",
        "dr.ito",
        "--from",
        &at("08:00"),
        "--type",
        "Follow-up",
        "--count",
        "3",
    ]);
    assert_eq!(free.code, 0, "{}", free.stderr);
    let slots: Vec<String> = free.json()["slots"]
        .as_array()
        .expect("slots")
        .iter()
        .map(|s| s["start"].as_str().unwrap_or_default()[11..16].to_owned())
        .collect();
    assert_eq!(slots, ["08:00", "08:15", "08:30"]);

    let moved = desk(&["appointment", "move", &id, "--at", &at("10:00")]);
    assert_eq!(moved.code, 0, "{}", moved.stderr);
    assert!(moved.json()["start"]
        .as_str()
        .unwrap_or_default()
        .starts_with(&format!("{day}T10:00")));
    let cancelled = desk(&[
        "appointment",
        "cancel",
        &over_id,
        "--reason",
        "Double booked",
    ]);
    assert_eq!(cancelled.json()["status"], "cancelled");
    assert_eq!(
        desk(&["appointment", "cancel", &over_id, "--reason", "again"]).code,
        65
    );
    let listed = desk(&["appointment", "list", "--day", &day]).json();
    assert_eq!(listed["appointments"].as_array().map(Vec::len), Some(3));
    let mine = doctor(&["appointment", "list", "--day", &day, "--with", "dr.ito"]).json();
    let knee = mine["appointments"]
        .as_array()
        .expect("list")
        .iter()
        .find(|a| a["id"].as_i64().map(|n| n.to_string()).as_deref() == Some(id.as_str()))
        .expect("the first booking")
        .clone();
    assert_eq!(knee["reason"], "Knee pain");
    assert_eq!(
        mine["appointments"][0]["status"], "cancelled",
        "by time, cancelled too"
    );

    // The patient arrives, is roomed, and the doctor starts the visit.
    assert_eq!(
        desk(&["appointment", "arrive", &id]).json()["status"],
        "arrived"
    );
    assert_eq!(
        nurse(&["appointment", "room", &id]).json()["status"],
        "in_room"
    );
    assert_eq!(
        doctor(&[
            "appointment",
            "book",
            "--patient",
            &patient,
            "--with",
            "dr.ito",
            "--at",
            &at("11:00")
        ])
        .code,
        77
    );
    assert_eq!(desk(&["appointment", "start", &id]).code, 77);
    assert_eq!(
        nurse(&["appointment", "start", &id]).code,
        77,
        "not the nurse's"
    );
    let started = doctor(&["appointment", "start", &id]);
    assert_eq!(started.code, 0, "{}", started.stderr);
    let s = started.json();
    assert_eq!(s["appointment"]["status"], "seen");
    assert_eq!(s["appointment"]["encounter_id"], s["id"]);
    assert_eq!(s["reason"], "Knee pain", "{s}");
    let encounters = doctor(&["encounter", "list", "--patient", &patient]).json();
    assert_eq!(encounters["encounters"][0]["id"], s["id"]);
    assert_eq!(
        desk(&["appointment", "no-show", &late_id]).code,
        65,
        "not yet"
    );
    let auditor_list = {
        c.add_user("audit.kim", "auditor", "auditor-password");
        c.as_user("audit.kim", "auditor-password", &["appointment", "list"])
    };
    assert_eq!(auditor_list.code, 77);

    let week = desk(&["schedule", "show", "dr.ito", "--week", &day]).json();
    assert_eq!(week["days"].as_array().map(Vec::len), Some(7));
    let off = admin(&["schedule", "off", "dr.ito", "--date", &day]);
    assert_eq!(off.code, 0, "{}", off.stderr);
    assert_eq!(off.json()["days_off"][0], day.as_str());

    // Two processes racing for one slot: one books, the other is told it was taken.
    let slot = at("15:00");
    let racers: Vec<_> = (0..2)
        .map(|_| {
            c.command(
                &[
                    "--user",
                    "desk.bo",
                    "--json",
                    "appointment",
                    "book",
                    "--patient",
                    &patient,
                    "--with",
                    "dr.ito",
                    "--at",
                    &slot,
                ],
                &[("CHARTROOM_PASSWORD", "frontdesk-password")],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawns")
        })
        .collect();
    let mut codes: Vec<i32> = racers
        .into_iter()
        .map(|child| Run::from(child.wait_with_output().expect("waits")).code)
        .collect();
    codes.sort_unstable();
    assert_eq!(codes, [0, 65]);
}

#[test]
fn wrong_values_are_corrected_and_units_are_read_as_typed_through_the_cli() {
    let c = Clinic::new();
    c.init();
    c.add_user("dr.ito", "physician", "physician-password");
    c.add_user("nurse.ana", "nurse", "nurse-password");
    let doctor = |args: &[&str]| c.as_user("dr.ito", "physician-password", args);
    let nurse = |args: &[&str]| c.as_user("nurse.ana", "nurse-password", args);
    let p = doctor(&[
        "patient",
        "add",
        "--family",
        "Lindqvist",
        "--given",
        "Anna",
        "--birth-date",
        "1978-12-18",
        "--sex",
        "female",
    ]);
    assert_eq!(p.code, 0, "{}", p.stderr);
    let id = p.json()["id"].as_i64().expect("id").to_string();
    let first = nurse(&[
        "vitals",
        "add",
        "--patient",
        &id,
        "--weight",
        "55.5",
        "--height",
        "162",
    ]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    // Pounds typed as kilograms: saved from the command line, with the question beside it.
    let heavy = nurse(&["vitals", "add", "--patient", &id, "--weight", "180"]);
    assert_eq!(heavy.code, 0, "{}", heavy.stderr);
    let heavy = heavy.json();
    let question = heavy["questions"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(question.contains("Did you mean 180 lb"), "{question}");
    assert_eq!(heavy["questions"][0]["suggestion"], "180lb");
    let observations = heavy["observations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let weight = observations
        .iter()
        .find(|o| o["vital"] == "weight")
        .expect("the weight");
    assert!(observations
        .iter()
        .any(|o| o["vital"] == "bmi" && o["flag"] == "HH"));
    let weight_id = weight["id"].as_i64().expect("id").to_string();
    // A reason is needed, and the desk's role may not.
    let no_reason = nurse(&["vitals", "entered-in-error", &weight_id, "--reason", " "]);
    assert_eq!(no_reason.code, 65, "{}", no_reason.stderr);
    let marked = nurse(&[
        "vitals",
        "entered-in-error",
        &weight_id,
        "--reason",
        "Pounds typed as kilograms",
    ]);
    assert_eq!(marked.code, 0, "{}", marked.stderr);
    // The weight and the BMI made from it.
    assert_eq!(
        marked.json()["observations"].as_array().map(Vec::len),
        Some(2)
    );
    let again = nurse(&[
        "vitals",
        "entered-in-error",
        &weight_id,
        "--reason",
        "twice",
    ]);
    assert_eq!(again.code, 65, "{}", again.stderr);
    assert_eq!(again.error()["code"], "conflict");
    let list = nurse(&["vitals", "list", "--patient", &id]).json();
    let entries = list["observations"].as_array().cloned().unwrap_or_default();
    let struck = entries
        .iter()
        .find(|o| o["id"].as_i64().map(|i| i.to_string()) == Some(weight_id.clone()))
        .expect("still listed");
    assert_eq!(struck["status"], "entered-in-error");
    assert_eq!(struck["correction"]["reason"], "Pounds typed as kilograms");
    assert_eq!(struck["correction"]["marked_by"], "nurse.ana");
    assert!(entries
        .iter()
        .filter(|o| o["status"] == "final")
        .all(|o| o["flag"] != "HH"));
    // The audit trail has the marking, without the reason.
    c.add_user("aud.ray", "auditor", "auditor-password");
    let trail = c.as_user("aud.ray", "auditor-password", &["audit", "list"]);
    assert!(
        trail.stdout.contains("vitals.entered_in_error"),
        "{}",
        trail.stdout
    );
    assert!(
        !trail.stdout.contains("Pounds typed"),
        "the reason stays sealed"
    );

    // Units: typed with the unit, or in the clinic's units.
    let typed = nurse(&[
        "vitals",
        "add",
        "--patient",
        &id,
        "--weight",
        "150lb",
        "--temp",
        "98.6F",
        "--height",
        "65in",
    ]);
    assert_eq!(typed.code, 0, "{}", typed.stderr);
    let typed = typed.json();
    let value = |vital: &str| {
        typed["observations"]
            .as_array()
            .and_then(|a| a.iter().find(|o| o["vital"] == vital))
            .and_then(|o| o["value"].as_f64())
    };
    assert_eq!(value("weight"), Some(68.04));
    assert_eq!(value("temperature"), Some(37.0));
    assert_eq!(value("height"), Some(165.1));
    // 98.6 where °C is read: refused in words, every field at once, nothing written.
    let before = nurse(&["vitals", "list", "--patient", &id]).json();
    let wrong = nurse(&[
        "vitals",
        "add",
        "--patient",
        &id,
        "--temp",
        "98.6",
        "--heart-rate",
        "fast",
    ]);
    assert_eq!(wrong.code, 65, "{}", wrong.stderr);
    let error = wrong.error();
    assert_eq!(error["code"], "invalid_input");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("°C") && !message.contains("Cel"),
        "{message}"
    );
    assert_eq!(error["fields"].as_array().map(Vec::len), Some(2));
    let temperature = error["fields"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["field"] == "temperature"))
        .expect("the temperature's own error");
    assert_eq!(temperature["suggestion"], "98.6F", "{error}");
    assert_eq!(nurse(&["vitals", "list", "--patient", &id]).json(), before);
    let set = doctor(&["settings", "set", "units", "us"]);
    assert_eq!(set.code, 77, "only an admin sets units: {}", set.stderr);
    let admin = c.as_user(
        "admin",
        "admin-password",
        &["settings", "set", "units", "us"],
    );
    assert_eq!(admin.code, 0, "{}", admin.stderr);
    let us = nurse(&["vitals", "add", "--patient", &id, "--temp", "98.6"]);
    assert_eq!(us.code, 0, "{}", us.stderr);
    let shown = c
        .run(
            &["--user", "nurse.ana", "vitals", "list", "--patient", &id],
            &[("CHARTROOM_PASSWORD", "nurse-password")],
        )
        .stdout;
    assert!(
        shown.contains("98.6 °F") && shown.contains("150 lb"),
        "{shown}"
    );

    // The other list items: entered in error with a reason, kept and marked.
    let problem = doctor(&["problem", "add", "--patient", &id, "--text", "Asthma"]).json();
    let pid = problem["id"].as_i64().expect("id").to_string();
    let marked = doctor(&[
        "problem",
        "entered-in-error",
        &pid,
        "--reason",
        "Wrong patient",
    ]);
    assert_eq!(marked.code, 0, "{}", marked.stderr);
    assert_eq!(marked.json()["status"], "entered-in-error");
    let resolve = doctor(&["problem", "resolve", &pid]);
    assert_eq!(resolve.code, 65, "a struck-out problem is not resolved");
    let allergy = doctor(&[
        "allergy",
        "add",
        "--patient",
        &id,
        "--substance",
        "Penicillin",
    ])
    .json();
    let aid = allergy["id"].as_i64().expect("id").to_string();
    let marked = doctor(&[
        "allergy",
        "entered-in-error",
        &aid,
        "--reason",
        "Was her sister",
    ]);
    assert_eq!(marked.code, 0, "{}", marked.stderr);
    // A struck-out allergy no longer blocks a medication.
    let amox = doctor(&[
        "medication",
        "add",
        "--patient",
        &id,
        "--name",
        "Amoxicillin",
    ]);
    assert_eq!(amox.code, 0, "{}", amox.stderr);
    let mid = amox.json()["id"].as_i64().expect("id").to_string();
    let marked = doctor(&[
        "medication",
        "entered-in-error",
        &mid,
        "--reason",
        "Duplicate",
    ]);
    assert_eq!(marked.json()["status"], "entered-in-error");
    let shot = doctor(&[
        "immunization",
        "add",
        "--patient",
        &id,
        "--vaccine",
        "Influenza",
        "--cvx",
        "141",
        "--date",
        "2025-10-01",
    ]);
    let iid = shot.json()["id"].as_i64().expect("id").to_string();
    let marked = doctor(&[
        "immunization",
        "entered-in-error",
        &iid,
        "--reason",
        "Not given",
    ]);
    assert_eq!(marked.code, 0, "{}", marked.stderr);
    assert_eq!(marked.json()["correction"]["reason"], "Not given");
}

#[test]
fn audit_list_takes_a_patient_by_mrn_or_by_id_and_shows_the_mrn() {
    let c = Clinic::new();
    c.init();
    c.add_user("dr.ito", "physician", "physician-password");
    c.add_user("aud.ray", "auditor", "auditor-password");
    let doc = |args: &[&str]| c.as_user("dr.ito", "physician-password", args);
    let mut patients = Vec::new();
    for (family, given) in [("Okafor", "Chidi"), ("Varga", "Eszter")] {
        let added = doc(&[
            "patient",
            "add",
            "--family",
            family,
            "--given",
            given,
            "--birth-date",
            "1961-04-23",
        ]);
        assert_eq!(added.code, 0, "{}", added.stderr);
        let p = added.json();
        let id = p["id"].as_i64().expect("id").to_string();
        let mrn = p["mrn"].as_str().expect("mrn").to_owned();
        assert_eq!(doc(&["patient", "show", &id]).code, 0);
        patients.push((id, mrn));
    }
    let (varga_id, varga_mrn) = &patients[1];
    assert_eq!(varga_mrn.len(), 7);
    assert!(varga_mrn.starts_with("00000"), "leading zeros: {varga_mrn}");

    let list = |patient: &str| {
        let run = c.as_user(
            "aud.ray",
            "auditor-password",
            &["audit", "list", "--patient", patient],
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        run.json()["entries"].as_array().expect("entries").clone()
    };
    // By MRN: her entries only, each with her MRN beside the id.
    let by_mrn = list(varga_mrn);
    let events: Vec<&str> = by_mrn.iter().filter_map(|e| e["event"].as_str()).collect();
    assert!(
        events.contains(&"patient.create") && events.contains(&"chart.read"),
        "{events:?}"
    );
    for e in &by_mrn {
        assert_eq!(e["patient_id"].as_str(), Some(varga_id.as_str()));
        assert_eq!(e["mrn"].as_str(), Some(varga_mrn.as_str()));
    }
    // By id, as before: the same entries.
    assert_eq!(list(varga_id), by_mrn);
    // Seven digits that are no patient's MRN are an id, which no entry has.
    assert!(list("0000000").is_empty());

    // The table a person reads names the patient by MRN.
    let text = c.run(
        &["--user", "aud.ray", "audit", "list", "--patient", varga_mrn],
        &[("CHARTROOM_PASSWORD", "auditor-password")],
    );
    assert_eq!(text.code, 0, "{}", text.stderr);
    let chart_read = text
        .stdout
        .lines()
        .find(|l| l.contains("chart.read"))
        .expect("a chart.read line");
    assert!(chart_read.contains(varga_mrn.as_str()), "{chart_read}");
}

#[test]
fn the_desk_names_a_restricted_charts_care_team_at_registration() {
    let c = Clinic::new();
    c.init();
    c.add_user("dr.ito", "physician", "physician-password");
    c.add_user("desk.bo", "front_desk", "frontdesk-password");
    let desk = |args: &[&str]| c.as_user("desk.bo", "frontdesk-password", args);
    let mut add = vec![
        "patient",
        "add",
        "--family",
        "Quist",
        "--given",
        "Mara",
        "--birth-date",
        "1982-02-03",
        "--restricted",
        "--care-team",
    ];
    add.push("desk.bo");
    let refused = desk(&add);
    assert_eq!(refused.code, 65, "no clinician named: {}", refused.stderr);
    assert!(refused.error()["message"]
        .as_str()
        .unwrap_or_default()
        .contains("physician or nurse"));
    add.pop();
    add.push("dr.ito");
    let saved = desk(&add);
    assert_eq!(saved.code, 0, "{}", saved.stderr);
    let id = saved.json()["id"].as_i64().expect("id").to_string();
    let chart = c
        .as_user("dr.ito", "physician-password", &["patient", "show", &id])
        .json();
    assert_eq!(chart["access"]["via"], "care_team");
    let mut team: Vec<String> = chart["care_team"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    team.sort();
    assert_eq!(team, ["desk.bo", "dr.ito"]);
}

#[test]
fn lab_results_are_added_flagged_listed_by_test_corrected_and_struck_out_through_the_cli() {
    let c = Clinic::new();
    c.init();
    c.add_user("dr.ito", "physician", "physician-password");
    c.add_user("desk.kai", "front_desk", "desk-password-1");
    let doctor = |args: &[&str]| c.as_user("dr.ito", "physician-password", args);
    let p = doctor(&[
        "patient",
        "add",
        "--family",
        "Lindqvist",
        "--given",
        "Anna",
        "--birth-date",
        "1978-12-18",
        "--sex",
        "female",
    ]);
    assert_eq!(p.code, 0, "{}", p.stderr);
    let id = p.json()["id"].as_i64().expect("id").to_string();
    let report = doctor(&[
        "report",
        "add",
        "--patient",
        &id,
        "--loinc",
        "57698-3",
        "--at",
        "2026-03-02T08:10:00Z",
    ]);
    assert_eq!(report.code, 0, "{}", report.stderr);
    let report = report.json();
    assert_eq!(report["status"], "registered");
    let report_id = report["id"].as_i64().expect("id").to_string();
    let ldl = doctor(&[
        "result",
        "add",
        "--patient",
        &id,
        "--loinc",
        "18262-6",
        "--value",
        "162",
        "--range",
        "<130",
        "--report",
        &report_id,
    ]);
    assert_eq!(ldl.code, 0, "{}", ldl.stderr);
    let ldl = ldl.json();
    assert_eq!(ldl["flag"], "H");
    assert_eq!(ldl["unit"], "mg/dL");
    assert_eq!(ldl["value"], 162.0);
    assert_eq!(ldl["collected_at"], "2026-03-02T08:10:00.000000Z");
    let ldl_id = ldl["id"].as_i64().expect("id").to_string();
    // A negative range's low end and a unit typed the lab's way.
    let wbc = doctor(&[
        "result",
        "add",
        "--patient",
        &id,
        "--loinc",
        "6690-2",
        "--value",
        "3.1",
        "--unit",
        "10^3/uL",
        "--range",
        "4.0-11.0",
    ]);
    assert_eq!(wbc.code, 0, "{}", wbc.stderr);
    assert_eq!(wbc.json()["unit"], "10*3/uL");
    assert_eq!(wbc.json()["flag"], "L");
    // Every wrong field named at once; nothing written.
    let bad = doctor(&[
        "result",
        "add",
        "--patient",
        &id,
        "--loinc",
        "2345-8",
        "--value",
        "",
        "--range",
        "9-3",
    ]);
    assert_eq!(bad.code, 65, "{}", bad.stderr);
    let fields: Vec<String> = bad.error()["fields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|f| f["field"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(fields, ["loinc", "value", "range"]);
    // Corrected: the new value, the old one kept.
    let fixed = doctor(&[
        "result",
        "correct",
        &ldl_id,
        "--value",
        "126",
        "--reason",
        "Corrected report",
    ]);
    assert_eq!(fixed.code, 0, "{}", fixed.stderr);
    let fixed = fixed.json();
    assert_eq!(fixed["status"], "corrected");
    assert_eq!(fixed["earlier"][0]["value"], 162.0);
    assert_eq!(fixed["flag"], "N");
    let trend = doctor(&["result", "list", "--patient", &id, "--loinc", "18262-6"]);
    assert_eq!(trend.code, 0, "{}", trend.stderr);
    let trend = trend.json();
    assert_eq!(trend["results"].as_array().map(Vec::len), Some(1));
    let text = c.run(
        &["--user", "dr.ito", "result", "list", "--patient", &id],
        &[("CHARTROOM_PASSWORD", "physician-password")],
    );
    assert!(text.stdout.contains("(was 162)"), "{}", text.stdout);
    let fixed_id = fixed["id"].as_i64().expect("id").to_string();
    let struck = doctor(&[
        "result",
        "entered-in-error",
        &fixed_id,
        "--reason",
        "Another patient's sample",
    ]);
    assert_eq!(struck.code, 0, "{}", struck.stderr);
    assert_eq!(struck.json()["status"], "entered-in-error");
    let listed = doctor(&["report", "list", "--patient", &id]);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert_eq!(
        listed.json()["reports"][0]["result_ids"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    // The front desk neither reads nor writes results.
    let desk = |args: &[&str]| c.as_user("desk.kai", "desk-password-1", args);
    let denied = desk(&["result", "list", "--patient", &id]);
    assert_eq!(denied.code, 77, "{}", denied.stderr);
    let denied = desk(&[
        "result",
        "add",
        "--patient",
        &id,
        "--loinc",
        "2345-7",
        "--value",
        "98",
    ]);
    assert_eq!(denied.code, 77, "{}", denied.stderr);
}

#[test]
fn uscdi_demographics_are_registered_in_words_or_codes_shown_changed_and_cleared() {
    let c = Clinic::new();
    c.init();
    c.add_user("desk.kai", "front_desk", "desk-password-1");
    let desk = |args: &[&str]| c.as_user("desk.kai", "desk-password-1", args);
    let p = desk(&[
        "patient",
        "add",
        "--family",
        "Nguyen",
        "--given",
        "Linh",
        "--birth-date",
        "1969-05-04",
        "--sex",
        "female",
        "--race",
        "vietnamese, White",
        "--ethnicity",
        "not hispanic or latino",
        "--language",
        "Vietnamese",
        "--birth-sex",
        "F",
        "--sexual-orientation",
        "straight",
    ]);
    assert_eq!(p.code, 0, "{}", p.stderr);
    let p = p.json();
    assert_eq!(p["race"], serde_json::json!(["2106-3", "2047-9"]));
    assert_eq!(p["ethnicity"], serde_json::json!(["2186-5"]));
    assert_eq!(p["language"], "vi");
    assert_eq!(p["birth_sex"], "F");
    assert_eq!(p["sexual_orientation"], "20430005");
    let id = p["id"].as_i64().expect("id").to_string();
    let text = c.run(
        &["--user", "desk.kai", "patient", "show", &id],
        &[("CHARTROOM_PASSWORD", "desk-password-1")],
    );
    assert_eq!(text.code, 0, "{}", text.stderr);
    for line in [
        "Race: White, Vietnamese",
        "Ethnicity: Not Hispanic or Latino",
        "Preferred language: Vietnamese",
        "Sex assigned at birth: Female",
        "Sexual orientation: Straight or heterosexual",
    ] {
        assert!(text.stdout.contains(line), "{line}: {}", text.stdout);
    }
    // A wrong answer is named and changes nothing.
    let bad = desk(&["patient", "update", &id, "--race", "Martian"]);
    assert_eq!(bad.code, 65, "{}", bad.stderr);
    assert!(bad.stderr.contains("Martian"), "{}", bad.stderr);
    let bad = desk(&[
        "patient",
        "update",
        &id,
        "--ethnicity",
        "Cuban, not hispanic or latino",
    ]);
    assert_eq!(bad.code, 65, "{}", bad.stderr);
    // Declined, and a field cleared; the earlier answers stay in the history.
    let changed = desk(&[
        "patient",
        "update",
        &id,
        "--race",
        "chose not to answer",
        "--sexual-orientation",
        "",
    ]);
    assert_eq!(changed.code, 0, "{}", changed.stderr);
    let changed = changed.json();
    assert_eq!(changed["race"], serde_json::json!(["ASKU"]));
    assert!(changed.get("sexual_orientation").is_none(), "{changed}");
    assert_eq!(changed["language"], "vi", "left as it was");
    let history = desk(&["patient", "history", &id]).json();
    assert_eq!(
        history["versions"][0]["demographics"]["race"],
        serde_json::json!(["2106-3", "2047-9"])
    );
}
