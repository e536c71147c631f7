//! Vault benchmarks: unlock cost split into KDF and the rest, and SQLCipher against plain
//! SQLite (the same bundled library, opened without a key) on a patient-like workload.
//!
//! Run with `cargo bench -p chartroom-vault`. Prints figures and ratios; asserts nothing.

use std::path::Path;
use std::time::{Duration, Instant};

use chartroom_vault::{configure_connection, Credential, KdfPolicy, Migration, Vault, VaultConfig};
use rusqlite::{params, Connection};
use secrecy::SecretString;

const ROWS: usize = 100_000;
const LOOKUPS: usize = 20_000;

const SCHEMA: &str = "
    CREATE TABLE patients (
        id         INTEGER PRIMARY KEY,
        mrn        TEXT NOT NULL UNIQUE,
        family     TEXT NOT NULL,
        given      TEXT NOT NULL,
        birth_date TEXT NOT NULL,
        phone      TEXT NOT NULL,
        address    TEXT NOT NULL
    );
    CREATE INDEX patients_family ON patients (family, given);
";

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "bench",
    sql: SCHEMA,
}];

const FAMILIES: &[&str] = &[
    "Okafor",
    "Nguyen",
    "Garcia",
    "Müller",
    "Kowalski",
    "Haddad",
    "Tanaka",
    "Silva",
    "Johansson",
    "Ivanova",
    "Mensah",
    "Patel",
    "Rossi",
    "Dubois",
    "Kim",
    "Novak",
    "Hernández",
    "Yilmaz",
    "O'Brien",
    "Andersen",
];
const GIVEN: &[&str] = &[
    "Ada", "Bao", "Chidi", "Dana", "Elif", "Farah", "Goran", "Hana", "Ines", "Jonas", "Kwame",
    "Lena", "Mateo", "Noor", "Olga", "Priya", "Quinn", "Rafael", "Sara", "Tomasz",
];

/// A small deterministic generator, so both databases get identical rows.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn family(i: usize) -> String {
    // Many distinct family names (as in a real clinic), from a few roots.
    format!(
        "{}{}",
        FAMILIES[i % FAMILIES.len()],
        i / FAMILIES.len() % 500
    )
}

fn insert(conn: &Connection) -> Duration {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let started = Instant::now();
    conn.execute_batch("BEGIN").expect("begins");
    {
        let mut stmt = conn
            .prepare("INSERT INTO patients (mrn, family, given, birth_date, phone, address) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
            .expect("prepares");
        for i in 0..ROWS {
            let r = rng.next();
            stmt.execute(params![
                format!("MRN{i:08}"),
                family(i),
                GIVEN[rng.below(GIVEN.len())],
                format!("{}-{:02}-{:02}", 1930 + r % 90, 1 + r % 12, 1 + r % 28),
                format!("+1 555 {:07}", r % 10_000_000),
                format!("{} Harbour Road, Unit {}", r % 9000, r % 40),
            ])
            .expect("inserts");
        }
    }
    conn.execute_batch("COMMIT").expect("commits");
    started.elapsed()
}

/// Random MRN lookups and family-name prefix searches through the indexes.
fn indexed_reads(conn: &Connection) -> Duration {
    let mut rng = Rng(42);
    let mut by_mrn = conn
        .prepare_cached("SELECT id, family, given FROM patients WHERE mrn = ?1")
        .expect("prepares");
    let mut by_family = conn
        .prepare_cached(
            "SELECT id, family, given FROM patients WHERE family >= ?1 AND family < ?2 ORDER BY family, given LIMIT 20",
        )
        .expect("prepares");
    let started = Instant::now();
    let mut found = 0usize;
    for _ in 0..LOOKUPS {
        let i = rng.below(ROWS);
        found += by_mrn
            .query_map([format!("MRN{i:08}")], |_| Ok(()))
            .expect("queries")
            .count();
        let prefix = family(rng.below(ROWS));
        let end = format!("{prefix}\u{10FFFF}");
        found += by_family
            .query_map([&prefix, &end], |_| Ok(()))
            .expect("queries")
            .count();
    }
    assert!(found >= LOOKUPS, "lookups found rows");
    started.elapsed()
}

fn per_op(d: Duration, n: usize) -> String {
    format!("{:.2} µs/op", d.as_secs_f64() * 1e6 / n as f64)
}

fn plain_connection(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("opens");
    configure_connection(&conn).expect("configures");
    conn.execute_batch(SCHEMA).expect("schema");
    conn
}

fn main() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let password = SecretString::from("benchmark-password".to_owned());
    let config = VaultConfig {
        dir: tmp.path().join("vault"),
        state_dir: tmp.path().join("state"),
        kdf: KdfPolicy::default(),
    };

    println!(
        "== Unlock (production KDF policy: calibrated to ~0.5 s, never below RFC 9106 option 2)"
    );
    let params = config.kdf.params().expect("calibrates");
    let (vault, _recovery) =
        Vault::create(config.clone(), "bench", &password, MIGRATIONS).expect("creates");
    vault.lock().expect("locks");
    let runs = 3;
    let mut total = Duration::ZERO;
    for _ in 0..runs {
        let started = Instant::now();
        let v = Vault::unlock(
            config.clone(),
            Credential::Password {
                user: "bench",
                password: &password,
            },
            MIGRATIONS,
        )
        .expect("unlocks");
        total += started.elapsed();
        v.lock().expect("locks");
    }
    let unlock = total / runs;
    let mut kdf = Duration::ZERO;
    for _ in 0..runs {
        kdf += chartroom_vault::kdf::time_derivation(&params).expect("derives");
    }
    let kdf = kdf / runs;
    println!(
        "  Argon2id m={} MiB t={} p={}",
        params.memory_kib / 1024,
        params.iterations,
        params.parallelism
    );
    println!("  unlock total      {:>8.1} ms", unlock.as_secs_f64() * 1e3);
    println!("  of which KDF      {:>8.1} ms", kdf.as_secs_f64() * 1e3);
    println!(
        "  the rest          {:>8.1} ms  (unseal, open, key check, migrations)",
        unlock.saturating_sub(kdf).as_secs_f64() * 1e3
    );
    let floor =
        chartroom_vault::kdf::time_derivation(&chartroom_vault::KdfParams::FLOOR).expect("derives");
    println!(
        "  KDF at the floor  {:>8.1} ms  (m=64 MiB t=3 p=4)",
        floor.as_secs_f64() * 1e3
    );

    println!("\n== {ROWS} patient-like rows, same bundled SQLCipher, same settings (WAL, synchronous=FULL, 64 MiB cache)");
    let vault = Vault::unlock(
        config.clone(),
        Credential::Password {
            user: "bench",
            password: &password,
        },
        MIGRATIONS,
    )
    .expect("unlocks");
    let enc_insert = insert(vault.connection());
    let enc_read = indexed_reads(vault.connection());
    let plain = plain_connection(&tmp.path().join("plain.db"));
    let plain_insert = insert(&plain);
    let plain_read = indexed_reads(&plain);
    println!(
        "  {:<28} {:>12} {:>12} {:>8}",
        "", "SQLCipher", "plain", "ratio"
    );
    println!(
        "  {:<28} {:>9.0} ms {:>9.0} ms {:>7.2}x",
        format!("insert {ROWS} (1 tx)"),
        enc_insert.as_secs_f64() * 1e3,
        plain_insert.as_secs_f64() * 1e3,
        enc_insert.as_secs_f64() / plain_insert.as_secs_f64()
    );
    println!(
        "  {:<28} {:>9.0} ms {:>9.0} ms {:>7.2}x",
        format!("{LOOKUPS} MRN + {LOOKUPS} prefix"),
        enc_read.as_secs_f64() * 1e3,
        plain_read.as_secs_f64() * 1e3,
        enc_read.as_secs_f64() / plain_read.as_secs_f64()
    );
    println!(
        "  per lookup pair: SQLCipher {}, plain {}",
        per_op(enc_read, LOOKUPS),
        per_op(plain_read, LOOKUPS)
    );

    println!("\n== Page cache: the same encrypted reads with SQLite's default 2 MiB cache");
    vault
        .connection()
        .pragma_update(None, "cache_size", -2048)
        .expect("sets cache");
    vault
        .connection()
        .execute_batch("PRAGMA shrink_memory")
        .expect("shrinks");
    let small = indexed_reads(vault.connection());
    vault
        .connection()
        .pragma_update(None, "cache_size", -chartroom_vault::CACHE_KIB)
        .expect("sets cache");
    indexed_reads(vault.connection());
    let big = indexed_reads(vault.connection());
    println!(
        "  2 MiB cache {:>7.0} ms, 64 MiB cache {:>7.0} ms: the small cache is {:.2}x slower",
        small.as_secs_f64() * 1e3,
        big.as_secs_f64() * 1e3,
        small.as_secs_f64() / big.as_secs_f64()
    );
    vault.lock().expect("locks");
}
