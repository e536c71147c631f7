//! Push throughput: the real collector process on loopback over TLS.
//!
//! - 100,000 entries from one desktop in batches of 1,000, each verified (signatures, chain,
//!   continuity) and stored durably, with SQLite and (when CHARTROOM_TEST_POSTGRES names a
//!   server) PostgreSQL;
//! - 10 desktops pushing 10,000 entries each at once.
//!
//! `cd crates/collector && cargo bench`. Prints figures; asserts nothing.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chartroom_audit::sync::{EnrollRequest, PushBatch};
use chartroom_audit::{Checkpoint, Record, SigningKey};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_chartroom-collector")
}

struct Server {
    child: Child,
    url: String,
    db: String,
    client: reqwest::blocking::Client,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(db: &str) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = db.replace("{dir}", &dir.path().display().to_string());
    Command::new(bin())
        .args(["cert", "--out"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .status()
        .expect("cert");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let child = Command::new(bin())
        .args([
            "--db",
            &db,
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("--cert")
        .arg(dir.path().join("collector.crt"))
        .arg("--key")
        .arg(dir.path().join("collector.key"))
        .env("CHARTROOM_COLLECTOR_LOG", "error")
        .spawn()
        .expect("serve");
    let pem = std::fs::read(dir.path().join("collector.crt")).expect("pem");
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("pem"))
        .tls_built_in_root_certs(false)
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client");
    let url = format!("https://localhost:{port}");
    let started = Instant::now();
    while client.get(format!("{url}/health")).send().is_err() {
        assert!(started.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(50));
    }
    Server {
        child,
        url,
        db,
        client,
        _dir: dir,
    }
}

fn token(s: &Server) -> String {
    let out = Command::new(bin())
        .args(["--db", &s.db, "token"])
        .env("CHARTROOM_COLLECTOR_LOG", "error")
        .output()
        .expect("token");
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_owned()
}

fn chain(device: &str, n: u64) -> Vec<Record> {
    chartroom_audit::testing::chain(device, n, 5000, Some("demographics, clinical, notes"))
}

/// Enrolls a device and returns its batches (1,000 records, a checkpoint every 256 and one
/// at each batch's end), made before the clock starts.
fn device(s: &Server, id: &str, seed: u8, n: u64) -> Vec<Vec<u8>> {
    let key = SigningKey::from_bytes(&[seed; 32]);
    let req = EnrollRequest {
        token: token(s),
        device_id: id.into(),
        public_key: hex::encode(key.verifying_key().as_bytes()),
        label: None,
    };
    let r = s
        .client
        .post(format!("{}/v1/enroll", s.url))
        .json(&req)
        .send()
        .expect("enroll");
    assert!(r.status().is_success());
    chain(id, n)
        .chunks(1000)
        .map(|records| {
            let mut checkpoints: Vec<Checkpoint> = records
                .iter()
                .filter(|r| r.entry.seq % 256 == 0)
                .map(|r| Checkpoint::sign(&key, id, r.entry.seq, r.hash, r.entry.time))
                .collect();
            let last = records.last().expect("some");
            if checkpoints.last().is_none_or(|c| c.seq != last.entry.seq) {
                checkpoints.push(Checkpoint::sign(
                    &key,
                    id,
                    last.entry.seq,
                    last.hash,
                    last.entry.time,
                ));
            }
            serde_json::to_vec(&PushBatch {
                device_id: id.into(),
                records: records.to_vec(),
                checkpoints,
                security_log: None,
                epoch_start: None,
            })
            .expect("json")
        })
        .collect()
}

fn push_all(s: &Server, batches: &[Vec<u8>]) {
    for b in batches {
        let r = s
            .client
            .post(format!("{}/v1/push", s.url))
            .header("content-type", "application/json")
            .body(b.clone())
            .send()
            .expect("push");
        assert!(r.status().is_success(), "{}", r.text().unwrap_or_default());
    }
}

fn run(label: &str, db: &str) {
    let s = start(db);
    let batches = device(&s, "desk-1", 1, 100_000);
    let bytes: usize = batches.iter().map(Vec::len).sum();
    let t = Instant::now();
    push_all(&s, &batches);
    let one = t.elapsed();
    println!(
        "{label}: 100,000 entries ({:.1} MiB of JSON) pushed, verified and stored in {:.2} s = {:.0} entries/s",
        bytes as f64 / 1_048_576.0,
        one.as_secs_f64(),
        100_000.0 / one.as_secs_f64()
    );
    let t = Instant::now();
    let out = Command::new(bin())
        .args(["--db", &s.db, "verify"])
        .env("CHARTROOM_COLLECTOR_LOG", "error")
        .output()
        .expect("verify");
    assert!(out.status.success());
    println!(
        "{label}: chartroom-collector verify of 100,000 entries: {:.2} s",
        t.elapsed().as_secs_f64()
    );

    let devices: Vec<Vec<Vec<u8>>> = (0..10)
        .map(|i| device(&s, &format!("desk-{}", i + 2), 10 + i as u8, 10_000))
        .collect();
    let t = Instant::now();
    std::thread::scope(|scope| {
        for batches in &devices {
            let s = &s;
            scope.spawn(move || push_all(s, batches));
        }
    });
    let ten = t.elapsed();
    println!(
        "{label}: 10 desktops x 10,000 entries at once: {:.2} s = {:.0} entries/s in all",
        ten.as_secs_f64(),
        100_000.0 / ten.as_secs_f64()
    );
}

fn main() {
    run("SQLite", "sqlite://{dir}/collector.db");
    match std::env::var("CHARTROOM_TEST_POSTGRES") {
        Ok(url) => {
            let _ = Command::new("psql")
                .arg(&url)
                .args(["-q", "-c", "DROP TABLE IF EXISTS devices, tokens, entries, checkpoints, evidence, alerts, auditor_tokens, forwarded"])
                .status();
            run("PostgreSQL", &url);
        }
        Err(_) => println!("PostgreSQL: skipped (set CHARTROOM_TEST_POSTGRES to a server's URL)"),
    }
}
