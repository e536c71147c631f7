//! The SQLCipher connection: keying, the settings every connection gets, and migrations.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::secret::DataKey;
use crate::VaultError;

/// File name of the encrypted database inside a vault folder.
pub const DB_FILE_NAME: &str = "chartroom.db";

/// Page cache per connection, in KiB. SQLCipher decrypts (and checks the HMAC of) every page it
/// reads from disk, so pages that fall out of the cache cost a decryption each time; with a
/// 2 MiB default cache an indexed patient search measured 2.5x slower than with 64 MiB.
pub const CACHE_KIB: i64 = 64 * 1024;

/// One schema change, applied once, in order, at unlock.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Strictly increasing from 1.
    pub version: u32,
    /// A short description, kept in the `vault_migrations` table.
    pub name: &'static str,
    /// The SQL to run (several statements allowed).
    pub sql: &'static str,
}

/// Opens the database file with `key`. With `create` false a missing file is an error rather
/// than a new empty database.
/// `PRAGMA key` or `PRAGMA rekey` with the raw key, the statement built in memory that is
/// wiped afterwards (rusqlite's own pragma helper would leave a copy in a plain String).
pub(crate) fn keyed(conn: &Connection, verb: &str, key: &DataKey) -> rusqlite::Result<()> {
    let value = key.pragma_value();
    let mut sql = zeroize::Zeroizing::new(String::with_capacity(value.len() + 24));
    sql.push_str("PRAGMA ");
    sql.push_str(verb);
    sql.push_str(" = \"");
    sql.push_str(&value);
    sql.push_str("\";");
    conn.execute_batch(&sql)
}

pub(crate) fn open(path: &Path, key: &DataKey, create: bool) -> Result<Connection, VaultError> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    } else if !path.exists() {
        return Err(VaultError::DatabaseMissing);
    }
    let conn = Connection::open_with_flags(path, flags).map_err(VaultError::from_open)?;
    // Raw-key mode: the 256-bit key is used as is, so opening runs no PBKDF2.
    keyed(&conn, "key", key).map_err(VaultError::from_open)?;
    check_key(&conn)?;
    configure(&conn)?;
    Ok(conn)
}

/// SQLCipher only notices a wrong key when it first reads page 1.
pub(crate) fn check_key(conn: &Connection) -> Result<(), VaultError> {
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|_| ())
    .map_err(|e| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => VaultError::KeyDoesNotOpenDatabase,
        _ => VaultError::from_open(e),
    })
}

pub(crate) fn configure(conn: &Connection) -> Result<(), VaultError> {
    // WAL: readers never block the writer, and a commit is one append; crash-safe.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(VaultError::Sqlite(format!(
            "the database refused WAL mode ({mode})"
        )));
    }
    // FULL: a commit is on disk before it is reported done. NORMAL could lose the last
    // transactions on power loss; for health records durability comes before speed.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Deleted content is overwritten, not left in free pages.
    conn.pragma_update(None, "secure_delete", "ON")?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    // Sorts and temporary tables stay in memory, never in a temporary file.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(())
}

/// Schema bookkeeping kept by the vault itself.
const BOOKKEEPING: &str = "
    CREATE TABLE IF NOT EXISTS vault_meta (
        key   TEXT PRIMARY KEY NOT NULL,
        value TEXT NOT NULL
    ) STRICT;
    CREATE TABLE IF NOT EXISTS vault_migrations (
        version    INTEGER PRIMARY KEY NOT NULL,
        name       TEXT NOT NULL,
        applied_at TEXT NOT NULL
    ) STRICT;
";

/// Applies the migrations not yet applied, all in one transaction: either the schema moves to
/// the newest version or it stays as it was.
pub(crate) fn migrate(conn: &mut Connection, migrations: &[Migration]) -> Result<u32, VaultError> {
    for pair in migrations.windows(2) {
        assert!(
            pair[0].version < pair[1].version,
            "migrations must be listed in increasing order"
        );
    }
    let tx = conn.transaction()?;
    tx.execute_batch(BOOKKEEPING)?;
    let current: u32 = tx.query_row(
        "SELECT coalesce(max(version), 0) FROM vault_migrations",
        [],
        |r| r.get(0),
    )?;
    let newest = migrations.last().map_or(0, |m| m.version);
    if current > newest {
        return Err(VaultError::NewerSchema {
            found: current,
            supported: newest,
        });
    }
    let now = chrono::Utc::now().to_rfc3339();
    for m in migrations.iter().filter(|m| m.version > current) {
        tx.execute_batch(m.sql)?;
        tx.execute(
            "INSERT INTO vault_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            rusqlite::params![m.version, m.name, now],
        )?;
    }
    tx.commit()?;
    Ok(newest.max(current))
}
