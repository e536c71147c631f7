//! The real collector process on loopback over TLS: enrollment, pushes that verify and are
//! idempotent, every refused batch, bad bodies, a kill in the middle of a push. Each test
//! runs against SQLite, and against PostgreSQL when CHARTROOM_TEST_POSTGRES names a server
//! (a URL like postgres://user:pw@127.0.0.1/db; each test uses a schema-free fresh database
//! by dropping its tables first).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chartroom_audit::sync::{EnrollRequest, EpochStart, PushAck, PushBatch};
use chartroom_audit::{Checkpoint, Record, SigningKey, GENESIS};
use serde_json::{json, Value};

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_chartroom-collector"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("binds")
        .local_addr()
        .expect("addr")
        .port()
}

struct Collector {
    dir: tempfile::TempDir,
    db: String,
    port: u16,
    child: Option<Child>,
    client: reqwest::blocking::Client,
    /// More arguments for `serve`.
    extra: Vec<String>,
}

impl Collector {
    fn start(db: &str) -> Collector {
        Collector::start_with(db, &[])
    }

    fn start_with(db: &str, extra: &[&str]) -> Collector {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = db.replace("{dir}", &dir.path().display().to_string());
        let ok = Command::new(bin())
            .args(["cert", "--out"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .status()
            .expect("runs");
        assert!(ok.success());
        let pem = std::fs::read(dir.path().join("collector.crt")).expect("cert");
        let client = reqwest::blocking::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("pem"))
            .tls_built_in_root_certs(false)
            .timeout(Duration::from_secs(30))
            // A refused oversized body closes its connection; never reuse one.
            .pool_max_idle_per_host(0)
            .build()
            .expect("client");
        let mut c = Collector {
            dir,
            db,
            port: free_port(),
            child: None,
            client,
            extra: extra.iter().map(|a| (*a).to_owned()).collect(),
        };
        c.serve();
        c
    }

    fn serve(&mut self) {
        let child = Command::new(bin())
            .args([
                "--db",
                &self.db,
                "serve",
                "--listen",
                &format!("127.0.0.1:{}", self.port),
            ])
            .arg("--cert")
            .arg(self.dir.path().join("collector.crt"))
            .arg("--key")
            .arg(self.dir.path().join("collector.key"))
            .args(&self.extra)
            .env("CHARTROOM_COLLECTOR_LOG", "warn")
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.log())
                    .expect("log file"),
            )
            .spawn()
            .expect("starts");
        self.child = Some(child);
        let started = Instant::now();
        while self.get("/health").is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "collector did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the collector wrote to its log (standard error).
    fn log(&self) -> PathBuf {
        self.dir.path().join("collector.log")
    }

    /// The collector process's resident memory, in KiB.
    fn rss_kib(&self) -> u64 {
        let pid = self.child.as_ref().expect("running").id();
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .expect("status")
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// A device's head, asked for as the device (signed by `key`).
    fn head(&self, device: &str, key: &SigningKey) -> (u16, Value) {
        use ed25519_dalek::Signer;
        let time = chartroom_audit::format_time(chrono::Utc::now());
        let sig = key.sign(&chartroom_audit::sync::head_request_message(device, &time));
        let r = self
            .client
            .get(self.url(&format!("/v1/devices/{device}/head")))
            .header(chartroom_audit::sync::HEAD_TIME_HEADER, time)
            .header(
                chartroom_audit::sync::HEAD_SIGNATURE_HEADER,
                hex::encode(sig.to_bytes()),
            )
            .send()
            .expect("sends");
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    fn alerts(&self) -> Vec<String> {
        let token = self.auditor_token();
        let r = self
            .client
            .get(self.url("/v1/alerts"))
            .bearer_auth(&token)
            .send()
            .expect("sends");
        let alerts: Value = r.json().expect("json");
        alerts["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .map(|a| a["summary"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    fn command(&self, args: &[&str]) -> std::process::Output {
        Command::new(bin())
            .args(["--db", &self.db])
            .args(args)
            .env("CHARTROOM_COLLECTOR_LOG", "warn")
            .output()
            .expect("runs")
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }

    fn get(&self, path: &str) -> reqwest::Result<reqwest::blocking::Response> {
        self.client.get(self.url(path)).send()
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .expect("sends");
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    fn raw_post(&self, path: &str, body: Vec<u8>) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .expect("sends");
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    fn token(&self) -> String {
        let out = Command::new(bin())
            .args(["--db", &self.db, "token"])
            .env("CHARTROOM_COLLECTOR_LOG", "warn")
            .output()
            .expect("runs");
        assert!(out.status.success());
        String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_owned()
    }

    fn auditor_token(&self) -> String {
        let out = Command::new(bin())
            .args(["--db", &self.db, "token", "--auditor"])
            .env("CHARTROOM_COLLECTOR_LOG", "warn")
            .output()
            .expect("runs");
        assert!(out.status.success());
        String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_owned()
    }

    fn audit(&self, token: &str, query: &str) -> (u16, String) {
        let r = self
            .client
            .get(self.url(&format!("/v1/audit?{query}")))
            .bearer_auth(token)
            .send()
            .expect("sends");
        (r.status().as_u16(), r.text().unwrap_or_default())
    }

    fn verify(&self) -> (bool, String) {
        let out = Command::new(bin())
            .args(["--db", &self.db, "verify"])
            .env("CHARTROOM_COLLECTOR_LOG", "warn")
            .output()
            .expect("runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A device: its key and its chain.
struct Device {
    id: String,
    key: SigningKey,
    records: Vec<Record>,
}

impl Device {
    fn new(id: &str, seed: u8) -> Device {
        Device {
            id: id.to_owned(),
            key: SigningKey::from_bytes(&[seed; 32]),
            records: Vec::new(),
        }
    }

    fn write(&mut self, n: u64, detail: &str) {
        let prev = self.records.last().map_or(GENESIS, |r| r.hash);
        let start = self.records.len() as u64 + 1;
        let entries = (start..start + n)
            .map(|seq| chartroom_audit::testing::chart_read(seq, &self.id, seq % 97, Some(detail)));
        self.records
            .extend(chartroom_audit::testing::seal_all(prev, entries));
    }

    fn batch(&self, from: u64, to: u64, signer: &SigningKey) -> Value {
        let records = self.records[(from - 1) as usize..to as usize].to_vec();
        // The device's own checkpoints (every 256 entries), and one over the batch's end.
        let mut checkpoints: Vec<Checkpoint> = records
            .iter()
            .filter(|r| r.entry.seq % 256 == 0)
            .map(|r| Checkpoint::sign(signer, &self.id, r.entry.seq, r.hash, r.entry.time))
            .collect();
        let last = records.last().expect("some");
        if checkpoints.last().is_none_or(|c| c.seq != last.entry.seq) {
            checkpoints.push(Checkpoint::sign(
                signer,
                &self.id,
                last.entry.seq,
                last.hash,
                last.entry.time,
            ));
        }
        serde_json::to_value(PushBatch {
            device_id: self.id.clone(),
            records,
            checkpoints,
            security_log: None,
            epoch_start: None,
        })
        .expect("json")
    }

    fn enroll(&self, c: &Collector, token: &str) -> (u16, Value) {
        let req = EnrollRequest {
            token: token.to_owned(),
            device_id: self.id.clone(),
            public_key: hex::encode(self.key.verifying_key().as_bytes()),
            label: Some("front desk PC".into()),
        };
        c.post("/v1/enroll", &serde_json::to_value(req).expect("json"))
    }

    /// Pushes everything from the collector's head on, in batches of 1,000.
    fn sync(&self, c: &Collector) -> u64 {
        let (status, head) = c.head(&self.id, &self.key);
        assert_eq!(status, 200, "{head}");
        let mut seq = head["seq"].as_u64().expect("seq");
        while seq < self.records.len() as u64 {
            let to = (seq + 1000).min(self.records.len() as u64);
            let (status, ack) = c.post("/v1/push", &self.batch(seq + 1, to, &self.key));
            assert_eq!(status, 200, "{ack}");
            let ack: PushAck = serde_json::from_value(ack).expect("ack");
            seq = ack.head.seq;
        }
        seq
    }
}

fn backends() -> Vec<String> {
    let mut list = vec!["sqlite://{dir}/collector.db".to_owned()];
    if let Ok(url) = std::env::var("CHARTROOM_TEST_POSTGRES") {
        list.push(url);
    }
    list
}

/// A fresh PostgreSQL database for each test: the tables are dropped first.
fn fresh(db: &str) {
    if !db.starts_with("postgres") {
        return;
    }
    let status = Command::new("psql")
        .arg(db)
        .args([
            "-q",
            "-c",
            "DROP TABLE IF EXISTS devices, tokens, entries, checkpoints, evidence, alerts, auditor_tokens, forwarded, security_heads, revoked_tokens, device_activity, epochs, superseded_entries, superseded_checkpoints",
        ])
        .stdout(Stdio::null())
        .status()
        .expect("psql");
    assert!(status.success());
}

fn each_backend(test: impl Fn(&str)) {
    for db in backends() {
        fresh(&db);
        test(&db);
    }
}

#[test]
fn ten_thousand_entries_arrive_verified_and_equal_to_the_desktops() {
    each_backend(|db| {
        let c = Collector::start(db);
        let mut d = Device::new("desk-1", 1);
        assert_eq!(d.enroll(&c, &c.token()).0, 201);
        d.write(10_000, "ok");
        assert_eq!(d.sync(&c), 10_000);
        let (ok, out) = c.verify();
        assert!(ok, "{out}");
        assert!(out.contains("desk-1: 10000 entries, intact"), "{out}");
        // A replay of the first batch is acknowledged and stores nothing.
        let (status, ack) = c.post("/v1/push", &d.batch(1, 1000, &d.key));
        assert_eq!(status, 200);
        assert_eq!(ack["stored"], 0);
        assert_eq!(ack["duplicates"], 1000);
        assert_eq!(ack["head"]["seq"], 10_000);
    });
}

#[test]
fn verify_names_the_first_stored_entry_that_was_altered() {
    let c = Collector::start("sqlite://{dir}/collector.db");
    let mut d = Device::new("desk-1", 1);
    assert_eq!(d.enroll(&c, &c.token()).0, 201);
    d.write(40, "ok");
    d.sync(&c);
    assert!(c.verify().0);
    // Someone with the database file edits entry 7.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&c.db).await.expect("opens");
        sqlx::query(
            "UPDATE entries SET record = replace(record, 'chart.read', 'chart.none') WHERE seq = 7",
        )
        .execute(&pool)
        .await
        .expect("updates");
        pool.close().await;
    });
    let (ok, out) = c.verify();
    assert!(!ok, "{out}");
    assert!(out.contains("desk-1: BROKEN at entry 7"), "{out}");
}

#[test]
fn a_configuration_file_sets_what_the_environment_does_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}/from-file.db", dir.path().display());
    let conf = dir.path().join("collector.env");
    std::fs::write(
        &conf,
        format!("# the clinic's collector\nCHARTROOM_COLLECTOR_DB={db}\n"),
    )
    .expect("writes");
    let out = Command::new(bin())
        .arg("--config")
        .arg(&conf)
        .arg("token")
        .env_remove("CHARTROOM_COLLECTOR_DB")
        .env("CHARTROOM_COLLECTOR_LOG", "warn")
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("from-file.db").exists());
    std::fs::write(&conf, "NOT_OURS=1\n").expect("writes");
    let out = Command::new(bin())
        .arg("--config")
        .arg(&conf)
        .arg("token")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown setting NOT_OURS"));
}

#[test]
fn enrollment_is_once_per_token_and_unknown_devices_and_forged_batches_are_refused() {
    each_backend(|db| {
        let c = Collector::start(db);
        let mut d = Device::new("desk-1", 1);
        d.write(20, "ok");
        let token = c.token();
        // Not enrolled yet: 401.
        let (status, body) = c.post("/v1/push", &d.batch(1, 10, &d.key));
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["code"], "unknown_device");
        assert_eq!(d.enroll(&c, "not-a-token").0, 401);
        assert_eq!(d.enroll(&c, &token).0, 201);
        // The token is spent.
        let other = Device::new("desk-2", 2);
        assert_eq!(other.enroll(&c, &token).0, 401);
        // Signed by another key: 403.
        let (status, body) = c.post(
            "/v1/push",
            &d.batch(1, 10, &SigningKey::from_bytes(&[9; 32])),
        );
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["error"]["code"], "bad_signature");
        // A gap: the collector holds nothing, the batch starts at 11.
        let (status, body) = c.post("/v1/push", &d.batch(11, 20, &d.key));
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["error"]["code"], "gap");
        assert_eq!(d.sync(&c), 20);
    });
}

#[test]
fn a_device_that_rewrites_its_history_is_refused_and_the_evidence_kept() {
    each_backend(|db| {
        let c = Collector::start(db);
        let mut d = Device::new("desk-1", 1);
        assert_eq!(d.enroll(&c, &c.token()).0, 201);
        d.write(50, "ok");
        d.sync(&c);
        // The same key, the same sequences, other content: hashes recomputed, re-signed.
        let mut liar = Device::new("desk-1", 1);
        liar.write(60, "nothing to see here");
        let (status, body) = c.post("/v1/push", &liar.batch(41, 60, &liar.key));
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["error"]["code"], "fork");
        // Nothing changed: the collector still holds the original 50 and they verify.
        let (ok, out) = c.verify();
        assert!(ok && out.contains("50 entries, intact"), "{out}");
        // The auditor sees the tamper alert.
        let alerts = c.alerts();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert!(alerts[0].contains("rewritten"));
    });
}

#[test]
fn a_device_restored_from_a_backup_goes_on_as_a_new_epoch_and_its_old_copy_is_a_fork() {
    each_backend(|db| {
        let c = Collector::start(db);
        let mut d = Device::new("desk-1", 1);
        assert_eq!(d.enroll(&c, &c.token()).0, 201);
        d.write(50, "before");
        d.sync(&c);
        // The backup held 30 entries; the restored vault writes 25 more after them.
        let mut restored = Device::new("desk-1", 1);
        restored.records = d.records[..30].to_vec();
        restored.write(25, "after the restore");
        let statement = |epoch: u64, follows: (u64, chartroom_audit::Hash), key: &SigningKey| {
            EpochStart::sign(
                key,
                "desk-1",
                epoch,
                (30, restored.records[29].hash),
                follows,
                chrono::Utc::now(),
            )
        };
        let head = (50, d.records[49].hash);
        let with = |start: EpochStart| {
            let mut b = restored.batch(31, 55, &restored.key);
            b["epoch_start"] = serde_json::to_value(start).expect("json");
            b
        };
        // Without a statement, a statement by another key, or one that follows a head the
        // collector does not have: refused, nothing moved.
        let (status, body) = c.post("/v1/push", &restored.batch(31, 55, &restored.key));
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (409, Some("fork")),
            "{body}"
        );
        let (status, body) = c.post(
            "/v1/push",
            &with(statement(1, head, &SigningKey::from_bytes(&[9; 32]))),
        );
        assert_eq!(status, 409, "{body}");
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not signed")));
        let (status, body) = c.post(
            "/v1/push",
            &with(statement(1, (49, d.records[48].hash), &restored.key)),
        );
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (409, Some("epoch")),
            "{body}"
        );
        let (ok, out) = c.verify();
        assert!(ok && out.contains("50 entries, intact"), "{out}");

        // The signed statement that follows the collector's head: a new epoch.
        let (status, body) = c.post("/v1/push", &with(statement(1, head, &restored.key)));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["head"]["seq"], 55);
        assert_eq!(body["head"]["epoch"], 1);
        let (status, now_head) = c.head("desk-1", &restored.key);
        assert_eq!((status, now_head["epoch"].as_u64()), (200, Some(1)));
        let (ok, out) = c.verify();
        assert!(ok, "{out}");
        assert!(out.contains("55 entries, intact"), "{out}");
        assert!(out.contains("epoch 0 (closed when it was restored from a backup at entry 30): 20 entries, intact"), "{out}");
        // The auditor sees every entry ever sent: the 20 superseded ones too.
        let (status, all) = c.audit(&c.auditor_token(), "device=desk-1&format=ndjson&limit=1000");
        assert_eq!(status, 200);
        assert_eq!(all.lines().count(), 75);
        assert!(c
            .alerts()
            .iter()
            .any(|a| a.contains("restored from a backup")));

        // The old copy, still running, sends what follows its 50: a fork, kept as evidence.
        d.write(10, "the other computer");
        let (status, body) = c.post("/v1/push", &d.batch(51, 60, &d.key));
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (409, Some("fork")),
            "{body}"
        );
        assert!(
            c.alerts().iter().any(|a| a.contains("second computer")),
            "{:?}",
            c.alerts()
        );
        // A replayed statement opens nothing more.
        let (status, body) = c.post("/v1/push", &with(statement(1, head, &restored.key)));
        assert_eq!(status, 409, "{body}");
        let (ok, out) = c.verify();
        assert!(ok && out.contains("55 entries, intact"), "{out}");
    });
}

#[test]
fn bad_bodies_get_a_clear_4xx_and_change_nothing() {
    each_backend(|db| {
        let c = Collector::start(db);
        let mut d = Device::new("desk-1", 1);
        assert_eq!(d.enroll(&c, &c.token()).0, 201);
        d.write(5, "ok");
        let cases: Vec<(&str, Vec<u8>, u16)> = vec![
            ("malformed JSON", b"{\"device_id\": ".to_vec(), 400),
            ("wrong types", br#"{"device_id": 5, "records": "no", "checkpoints": 1}"#.to_vec(), 422),
            ("missing fields", br#"{"device_id": "desk-1"}"#.to_vec(), 422),
            ("empty batch", serde_json::to_vec(&json!({"device_id": "desk-1", "records": [], "checkpoints": d.batch(1, 5, &d.key)["checkpoints"]})).expect("json"), 422),
            ("oversized", vec![b' '; 5 << 20], 413),
        ];
        for (what, body, want) in cases {
            let (status, reply) = c.raw_post("/v1/push", body);
            assert_eq!(status, want, "{what}: {reply}");
        }
        let (status, _) = c.raw_post("/v1/enroll", b"[]".to_vec());
        assert_eq!(status, 422);
        let (_, head) = c.head("desk-1", &d.key);
        assert_eq!(head["seq"], 0);
    });
}

#[test]
fn a_collector_killed_mid_push_converges_after_restart() {
    each_backend(|db| {
        let mut c = Collector::start(db);
        let mut d = Device::new("desk-1", 1);
        assert_eq!(d.enroll(&c, &c.token()).0, 201);
        d.write(5_000, "ok");
        // Push in a thread and kill the collector while it runs.
        let batches: Vec<Value> = (0..5)
            .map(|i| d.batch(i * 1000 + 1, (i + 1) * 1000, &d.key))
            .collect();
        let url = c.url("/v1/push");
        let client = c.client.clone();
        let pusher = std::thread::spawn(move || {
            for b in batches {
                if client.post(&url).json(&b).send().is_err() {
                    break;
                }
            }
        });
        std::thread::sleep(Duration::from_millis(150));
        c.kill();
        let _ = pusher.join();
        c.serve();
        assert_eq!(d.sync(&c), 5_000);
        let (ok, out) = c.verify();
        assert!(ok && out.contains("5000 entries, intact"), "{out}");
    });
}

#[test]
fn auditors_query_by_patient_user_device_event_and_time_as_fhir() {
    each_backend(|db| {
        let c = Collector::start(db);
        let mut d = Device::new("desk-1", 1);
        assert_eq!(d.enroll(&c, &c.token()).0, 201);
        d.write(500, "ok");
        d.sync(&c);
        // Without a token: 401, and nothing is said about the records.
        let (status, body) = c.audit("wrong", "patient=5");
        assert_eq!(status, 401, "{body}");
        let token = c.auditor_token();
        let (status, body) = c.audit(&token, "patient=5");
        assert_eq!(status, 200, "{body}");
        let bundle: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(bundle["resourceType"], "Bundle");
        let expected = d
            .records
            .iter()
            .filter(|r| r.entry.patient_id.as_deref() == Some("5"))
            .count();
        assert_eq!(bundle["total"], expected);
        assert!(bundle["entry"]
            .as_array()
            .expect("entries")
            .iter()
            .all(|e| e["resource"]["resourceType"] == "AuditEvent"));
        // NDJSON, filtered by time: entries 101..=200 by their times.
        let since = chartroom_audit::format_time(d.records[100].entry.time);
        let until = chartroom_audit::format_time(d.records[200].entry.time);
        let (status, body) = c.audit(&token, &format!("format=ndjson&user=dr.okafor&device=desk-1&event=chart.read&since={since}&until={until}"));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body.lines().count(), 100);
        let (status, _) = c.audit(&token, "since=yesterday");
        assert_eq!(status, 400);
    });
}

/// Debian's rsyslog with rsyslog-gnutls, receiving RFC 5425 on loopback.
#[test]
fn every_stored_entry_is_forwarded_to_rsyslog_over_tls() {
    let rsyslogd = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("rsyslog is installed (scripts/setup.sh installs rsyslog and rsyslog-gnutls)");
    let dir = tempfile::tempdir().expect("tempdir");
    let ok = Command::new(bin())
        .args(["cert", "--host", "localhost", "--out"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .status()
        .expect("runs");
    assert!(ok.success());
    let port = free_port();
    let out = dir.path().join("received.log");
    let d = dir.path().display();
    let conf = format!(
        r#"global(workDirectory="{d}"
  DefaultNetstreamDriver="gtls"
  DefaultNetstreamDriverCAFile="{d}/collector.crt"
  DefaultNetstreamDriverCertFile="{d}/collector.crt"
  DefaultNetstreamDriverKeyFile="{d}/collector.key")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
input(type="imtcp" port="{port}" address="127.0.0.1")
template(name="raw" type="string" string="%rawmsg%\n")
action(type="omfile" file="{out}" template="raw")
"#,
        out = out.display()
    );
    std::fs::write(dir.path().join("rsyslog.conf"), conf).expect("writes");
    let mut receiver = Command::new(rsyslogd)
        .args(["-n", "-f"])
        .arg(dir.path().join("rsyslog.conf"))
        .arg("-i")
        .arg(dir.path().join("rsyslog.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rsyslogd starts");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "rsyslogd did not listen"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let mut c = Collector::start("sqlite://{dir}/collector.db");
    // Restart the collector with forwarding on.
    c.kill();
    let child = Command::new(bin())
        .args([
            "--db",
            &c.db,
            "serve",
            "--listen",
            &format!("127.0.0.1:{}", c.port),
        ])
        .arg("--cert")
        .arg(c.dir.path().join("collector.crt"))
        .arg("--key")
        .arg(c.dir.path().join("collector.key"))
        .args(["--syslog", &format!("localhost:{port}")])
        .arg("--syslog-ca")
        .arg(dir.path().join("collector.crt"))
        .env("CHARTROOM_COLLECTOR_LOG", "warn")
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    c.child = Some(child);
    let started = Instant::now();
    while c.get("/health").is_err() {
        assert!(started.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut dev = Device::new("desk-1", 1);
    assert_eq!(dev.enroll(&c, &c.token()).0, 201);
    dev.write(300, "ok");
    dev.sync(&c);
    let started = Instant::now();
    let lines = loop {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() >= 300 || started.elapsed() > Duration::from_secs(30) {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = receiver.kill();
    let _ = receiver.wait();
    assert_eq!(lines.len(), 300, "{:?}", lines.first());
    let first = &lines[0];
    assert!(first.starts_with("<86>1 "), "{first}");
    assert!(
        first.contains("chartroom - chart.read [chartroom@32473 device=\"desk-1\" seq=\"1\""),
        "{first}"
    );
    let json_start = first
        .find("] {")
        .expect("structured data, then the message")
        + 2;
    let event: Value = serde_json::from_str(&first[json_start..]).expect("json");
    assert_eq!(event["resourceType"], "AuditEvent");
}

#[test]
fn a_stranger_with_huge_device_ids_costs_no_lasting_memory_and_no_log() {
    each_backend(|db| {
        let c = Collector::start(db);
        let before = c.rss_kib();
        let huge = "A".repeat(4_000_000);
        let body =
            serde_json::to_vec(&json!({"device_id": huge, "records": [], "checkpoints": []}))
                .expect("json");
        for _ in 0..60 {
            let (status, reply) = c.raw_post("/v1/push", body.clone());
            assert_eq!(status, 422, "{reply}");
            assert_eq!(reply["error"]["code"], "invalid");
            assert!(
                !reply.to_string().contains("AAAA"),
                "the reply does not echo it"
            );
        }
        // A made-up id of a valid shape is refused as unknown and takes no lock either.
        for i in 0..200 {
            let (status, _) = c.post(
                "/v1/push",
                &json!({"device_id": format!("stranger-{i}"), "records": [], "checkpoints": []}),
            );
            assert!(status == 401 || status == 429, "{status}");
        }
        let grown = c.rss_kib().saturating_sub(before);
        assert!(
            grown < 64 * 1024,
            "the collector grew by {grown} KiB and kept it"
        );
        let log = std::fs::read_to_string(c.log()).unwrap_or_default();
        assert!(log.len() < 256 * 1024, "{} bytes of log", log.len());
        assert!(
            !log.contains("AAAAAAAA"),
            "unvalidated input reached the log"
        );
    });
}

#[test]
fn a_record_with_an_oversized_field_is_refused_whole() {
    each_backend(|db| {
        let c = Collector::start(db);
        let mut d = Device::new("desk-1", 1);
        assert_eq!(d.enroll(&c, &c.token()).0, 201);
        d.write(3, &"x".repeat(chartroom_audit::sync::limits::DETAIL + 1));
        let (status, reply) = c.post("/v1/push", &d.batch(1, 3, &d.key));
        assert_eq!(status, 422, "{reply}");
        assert_eq!(c.head("desk-1", &d.key).1["seq"], 0);
    });
}

#[test]
fn a_devices_head_is_told_only_to_the_device() {
    each_backend(|db| {
        let c = Collector::start(db);
        let mut d = Device::new("desk-1", 1);
        assert_eq!(d.enroll(&c, &c.token()).0, 201);
        d.write(10, "ok");
        d.sync(&c);
        assert_eq!(c.head("desk-1", &d.key), (200, c.head("desk-1", &d.key).1));
        assert_eq!(c.head("desk-1", &d.key).1["seq"], 10);
        // Unsigned, signed by another key, or signed long ago: refused.
        let r = c.get("/v1/devices/desk-1/head").expect("sends");
        assert_eq!(r.status().as_u16(), 401);
        let stranger = SigningKey::from_bytes(&[9; 32]);
        assert_eq!(c.head("desk-1", &stranger).0, 401);
        use ed25519_dalek::Signer;
        let old = chartroom_audit::format_time(chrono::Utc::now() - chrono::Duration::hours(1));
        let sig = d
            .key
            .sign(&chartroom_audit::sync::head_request_message("desk-1", &old));
        let r = c
            .client
            .get(c.url("/v1/devices/desk-1/head"))
            .header(chartroom_audit::sync::HEAD_TIME_HEADER, old)
            .header(
                chartroom_audit::sync::HEAD_SIGNATURE_HEADER,
                hex::encode(sig.to_bytes()),
            )
            .send()
            .expect("sends");
        assert_eq!(r.status().as_u16(), 401, "a replayed signature");
    });
}

#[test]
fn one_client_is_slowed_past_its_rate() {
    let c = Collector::start_with(
        "sqlite://{dir}/collector.db",
        &["--rate", "2", "--burst", "10"],
    );
    let statuses: Vec<u16> = (0..30)
        .map(|_| c.get("/health").expect("answers").status().as_u16())
        .collect();
    // The burst (less what starting the collector asked) is served at once.
    assert!(statuses[..5].iter().all(|s| *s == 200), "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        c.get("/health").expect("answers").status().as_u16(),
        200,
        "it recovers"
    );
}

#[test]
fn tokens_are_listed_and_revoked_and_one_token_enrolls_one_device_even_in_a_race() {
    each_backend(|db| {
        let c = Collector::start(db);
        let auditor = c.auditor_token();
        assert_eq!(c.audit(&auditor, "limit=1").0, 200);
        let list = String::from_utf8(c.command(&["token", "list"]).stdout).expect("utf8");
        assert!(!list.contains(&auditor), "the token itself is never shown");
        let line = list
            .lines()
            .find(|l| l.contains("auditor") && l.contains("active"))
            .expect("listed");
        let id = line.split_whitespace().next().expect("id");
        let out = c.command(&["token", "revoke", id]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            c.audit(&auditor, "limit=1").0,
            401,
            "a revoked token opens nothing"
        );
        let list = String::from_utf8(c.command(&["token", "list"]).stdout).expect("utf8");
        assert!(
            list.lines()
                .any(|l| l.starts_with(id) && l.contains("revoked")),
            "{list}"
        );
        assert!(!c
            .command(&["token", "revoke", "0000000000"])
            .status
            .success());

        // Two computers enrolling at the same moment with one token: one gets in.
        let token = c.token();
        let results: Vec<u16> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|i| {
                    let token = token.clone();
                    let c = &c;
                    scope
                        .spawn(move || Device::new(&format!("desk-{i}"), i + 1).enroll(c, &token).0)
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("joins"))
                .collect()
        });
        assert_eq!(
            results.iter().filter(|s| **s == 201).count(),
            1,
            "{results:?}"
        );
        assert!(
            results.iter().all(|s| *s == 201 || *s == 401),
            "{results:?}"
        );
    });
}

#[test]
fn fork_evidence_is_capped_per_device() {
    let c = Collector::start("sqlite://{dir}/collector.db");
    let mut d = Device::new("desk-1", 1);
    assert_eq!(d.enroll(&c, &c.token()).0, 201);
    d.write(5, "ok");
    d.sync(&c);
    for i in 0..30 {
        let mut liar = Device::new("desk-1", 1);
        liar.write(5, &format!("rewritten {i}"));
        let (status, _) = c.post("/v1/push", &liar.batch(1, 5, &liar.key));
        assert_eq!(status, 409);
    }
    let alerts = c.alerts();
    assert_eq!(
        alerts.len(),
        21,
        "20 forks kept, then one alert that no more are: {alerts:?}"
    );
    assert!(alerts
        .last()
        .expect("one")
        .contains("further ones are refused and not kept"));
}

#[test]
fn a_device_that_goes_quiet_raises_an_alert_once() {
    let c = Collector::start_with("sqlite://{dir}/collector.db", &["--alert-silence", "2s"]);
    let mut d = Device::new("desk-1", 1);
    assert_eq!(d.enroll(&c, &c.token()).0, 201);
    d.write(5, "ok");
    d.sync(&c);
    let started = Instant::now();
    let alerts = loop {
        let alerts = c.alerts();
        if !alerts.is_empty() || started.elapsed() > Duration::from_secs(20) {
            break alerts;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(
        alerts[0].contains("desk-1 has sent nothing since"),
        "{alerts:?}"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(c.alerts().len(), 1, "raised once, not again and again");
}
