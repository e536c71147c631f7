//! Where the collector keeps what it receives: one trait, two backends chosen by URL
//! (`sqlite://…`, the embedded default, and `postgres://…`), both through sqlx's Any driver
//! and the same portable SQL, so one test suite covers both.

use chartroom_audit::sync::{
    check_batch, check_security_head, plan_batch, BatchError, EpochStart, Head, PushAck, PushBatch,
};
use chartroom_audit::{Checkpoint, Hash, Record, VerifyingKey, GENESIS};
use sha2::{Digest, Sha256};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Row};

/// What went wrong in the store, as the API reports it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("this device is not enrolled")]
    UnknownDevice,
    #[error("the enrollment token is unknown, used or expired")]
    BadToken,
    #[error("this device is already enrolled with another key")]
    KeyConflict,
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("storage: {0}")]
    Db(#[from] sqlx::Error),
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS devices (
        device_id   TEXT PRIMARY KEY,
        public_key  TEXT NOT NULL,
        label       TEXT,
        enrolled_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS tokens (
        token_hash  TEXT PRIMARY KEY,
        created_at  TEXT NOT NULL,
        expires_at  TEXT NOT NULL,
        used_at     TEXT,
        used_by     TEXT)",
    "CREATE TABLE IF NOT EXISTS entries (
        device_id   TEXT NOT NULL,
        seq         BIGINT NOT NULL,
        time        TEXT NOT NULL,
        actor       TEXT NOT NULL,
        event       TEXT NOT NULL,
        outcome     TEXT NOT NULL,
        patient_id  TEXT,
        record      TEXT NOT NULL,
        hash        TEXT NOT NULL,
        received_at TEXT NOT NULL,
        PRIMARY KEY (device_id, seq))",
    "CREATE INDEX IF NOT EXISTS entries_patient ON entries (patient_id)",
    "CREATE INDEX IF NOT EXISTS entries_actor ON entries (actor)",
    "CREATE INDEX IF NOT EXISTS entries_time ON entries (time)",
    "CREATE TABLE IF NOT EXISTS checkpoints (
        device_id   TEXT NOT NULL,
        seq         BIGINT NOT NULL,
        checkpoint  TEXT NOT NULL,
        PRIMARY KEY (device_id, seq))",
    "CREATE TABLE IF NOT EXISTS evidence (
        device_id   TEXT NOT NULL,
        seq         BIGINT NOT NULL,
        received_at TEXT NOT NULL,
        held_hash   TEXT,
        offered     TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS auditor_tokens (
        token_hash  TEXT PRIMARY KEY,
        created_at  TEXT NOT NULL,
        expires_at  TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS forwarded (
        device_id   TEXT PRIMARY KEY,
        seq         BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS security_heads (
        device_id   TEXT PRIMARY KEY,
        entries     BIGINT NOT NULL,
        hash        TEXT NOT NULL,
        updated_at  TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS alerts (
        time        TEXT NOT NULL,
        device_id   TEXT,
        kind        TEXT NOT NULL,
        summary     TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS revoked_tokens (
        token_hash  TEXT PRIMARY KEY,
        revoked_at  TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS device_activity (
        device_id       TEXT PRIMARY KEY,
        last_push_at    TEXT NOT NULL,
        silence_alerted BIGINT NOT NULL)",
    // A restored device's trail goes on from its backup's head: each restore is an epoch,
    // with the device's signed statement, and what the collector held after that head moves
    // to the superseded tables under the epoch it belonged to. Nothing is deleted.
    "CREATE TABLE IF NOT EXISTS epochs (
        device_id    TEXT NOT NULL,
        epoch        BIGINT NOT NULL,
        base_seq     BIGINT NOT NULL,
        base_hash    TEXT NOT NULL,
        follows_seq  BIGINT NOT NULL,
        follows_hash TEXT NOT NULL,
        statement    TEXT NOT NULL,
        received_at  TEXT NOT NULL,
        PRIMARY KEY (device_id, epoch))",
    "CREATE TABLE IF NOT EXISTS superseded_entries (
        device_id   TEXT NOT NULL,
        epoch       BIGINT NOT NULL,
        seq         BIGINT NOT NULL,
        time        TEXT NOT NULL,
        actor       TEXT NOT NULL,
        event       TEXT NOT NULL,
        outcome     TEXT NOT NULL,
        patient_id  TEXT,
        record      TEXT NOT NULL,
        hash        TEXT NOT NULL,
        received_at TEXT NOT NULL,
        PRIMARY KEY (device_id, epoch, seq))",
    "CREATE INDEX IF NOT EXISTS superseded_hash ON superseded_entries (device_id, hash)",
    "CREATE TABLE IF NOT EXISTS superseded_checkpoints (
        device_id   TEXT NOT NULL,
        epoch       BIGINT NOT NULL,
        seq         BIGINT NOT NULL,
        checkpoint  TEXT NOT NULL,
        PRIMARY KEY (device_id, epoch, seq))",
];

/// One closed epoch of a restored device, for `verify`.
#[derive(Debug)]
pub struct ClosedEpoch {
    /// The epoch the superseded records belonged to.
    pub epoch: u64,
    /// The statement that closed it (signed by the device).
    pub closed_by: EpochStart,
    pub records: Vec<Record>,
    pub checkpoints: Vec<Checkpoint>,
}

/// The most pushes kept as evidence of a fork per device: enough to show what a device
/// sent, not so many that one device can fill the disk.
pub const MAX_EVIDENCE: i64 = 20;

/// A token as `token list` shows it: never the token, only the start of its hash.
#[derive(Debug)]
pub struct TokenInfo {
    pub id: String,
    pub kind: &'static str,
    pub created_at: String,
    pub expires_at: String,
    /// `active`, `used by DEVICE`, `expired` or `revoked`.
    pub state: String,
}

fn now() -> String {
    chartroom_audit::format_time(chrono::Utc::now())
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

/// An auditor's query: every field optional; times are RFC 3339.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct Query {
    pub patient: Option<String>,
    pub user: Option<String>,
    pub device: Option<String>,
    pub event: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    #[serde(default = "default_limit")]
    pub limit: i64,
    /// `bundle` (default) or `ndjson`.
    pub format: Option<String>,
}

fn default_limit() -> i64 {
    10_000
}

/// The collector's storage.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
}

impl Store {
    /// Opens (creating if needed) the store at `url`: `sqlite://PATH` or `postgres://…`.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let url = if let Some(path) = url.strip_prefix("sqlite://") {
            if path.contains('?') {
                url.to_owned()
            } else {
                format!("sqlite://{path}?mode=rwc")
            }
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            url.to_owned()
        } else {
            return Err(StoreError::Invalid(
                "The database URL must start with sqlite:// or postgres://.".into(),
            ));
        };
        // SQLite takes one writer at a time; a single connection keeps pushes in order.
        let max = if url.starts_with("sqlite:") { 1 } else { 8 };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .connect(&url)
            .await?;
        if url.starts_with("sqlite:") {
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
            sqlx::query("PRAGMA synchronous = FULL")
                .execute(&pool)
                .await?;
        }
        for statement in SCHEMA {
            sqlx::query(statement).execute(&pool).await?;
        }
        Ok(Store { pool })
    }

    /// Issues a one-time enrollment token, valid for `hours`.
    pub async fn issue_token(&self, hours: i64) -> Result<String, StoreError> {
        let expires = chrono::Utc::now() + chrono::Duration::hours(hours.clamp(1, 24 * 30));
        self.issue("tokens", expires).await
    }

    /// Issues an access token for an auditor's queries, valid for `days`.
    pub async fn issue_auditor_token(&self, days: i64) -> Result<String, StoreError> {
        let expires = chrono::Utc::now() + chrono::Duration::days(days.clamp(1, 366));
        self.issue("auditor_tokens", expires).await
    }

    /// A new random token, kept only as its hash in `table`.
    async fn issue(
        &self,
        table: &'static str,
        expires: chrono::DateTime<chrono::Utc>,
    ) -> Result<String, StoreError> {
        let mut bytes = [0u8; 24];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
        let token = hex::encode(bytes);
        sqlx::query(&format!(
            "INSERT INTO {table} (token_hash, created_at, expires_at) VALUES ($1, $2, $3)"
        ))
        .bind(token_hash(&token))
        .bind(now())
        .bind(chartroom_audit::format_time(expires))
        .execute(&self.pool)
        .await?;
        Ok(token)
    }

    /// Whether `token` is a valid auditor token: known, not expired, not revoked.
    pub async fn auditor_allowed(&self, token: &str) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT a.expires_at, r.revoked_at FROM auditor_tokens a
               LEFT JOIN revoked_tokens r ON r.token_hash = a.token_hash WHERE a.token_hash = $1",
        )
        .bind(token_hash(token))
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => {
                r.try_get::<String, _>(0)? > now() && r.try_get::<Option<String>, _>(1)?.is_none()
            }
            None => false,
        })
    }

    /// Every token issued, enrollment and auditor, newest first.
    pub async fn tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        let mut out = Vec::new();
        let now = now();
        for (table, kind) in [("tokens", "enrollment"), ("auditor_tokens", "auditor")] {
            let used = if table == "tokens" {
                "t.used_by"
            } else {
                "NULL"
            };
            let rows = sqlx::query(&format!(
                "SELECT t.token_hash, t.created_at, t.expires_at, {used}, r.revoked_at FROM {table} t
                   LEFT JOIN revoked_tokens r ON r.token_hash = t.token_hash"
            ))
            .fetch_all(&self.pool)
            .await?;
            for r in rows {
                let hash: String = r.try_get(0)?;
                let expires_at: String = r.try_get(2)?;
                let used_by: Option<String> = r.try_get(3)?;
                let revoked: Option<String> = r.try_get(4)?;
                let state = if revoked.is_some() {
                    "revoked".to_owned()
                } else if let Some(device) = used_by {
                    format!("used by {device}")
                } else if expires_at <= now {
                    "expired".to_owned()
                } else {
                    "active".to_owned()
                };
                out.push(TokenInfo {
                    id: hash[..12.min(hash.len())].to_owned(),
                    kind,
                    created_at: r.try_get(1)?,
                    expires_at,
                    state,
                });
            }
        }
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        Ok(out)
    }

    /// Revokes the token whose id (`token list`: the start of its hash, at least 8 hex
    /// digits) is `id`. Returns whether one was found; an ambiguous id is refused.
    pub async fn revoke_token(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.trim().to_ascii_lowercase();
        if id.len() < 8 || id.len() > 64 || !id.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(StoreError::Invalid(
                "A token id is 8 to 64 hex digits, as `token list` shows it.".into(),
            ));
        }
        let mut found = Vec::new();
        for table in ["tokens", "auditor_tokens"] {
            let rows = sqlx::query(&format!(
                "SELECT token_hash FROM {table} WHERE token_hash LIKE $1"
            ))
            // Hex digits only (checked above): nothing in it is a LIKE wildcard.
            .bind(format!("{id}%"))
            .fetch_all(&self.pool)
            .await?;
            for r in rows {
                found.push(r.try_get::<String, _>(0)?);
            }
        }
        match found.as_slice() {
            [] => Ok(false),
            [hash] => {
                sqlx::query(
                    "INSERT INTO revoked_tokens (token_hash, revoked_at) VALUES ($1, $2)
                     ON CONFLICT (token_hash) DO NOTHING",
                )
                .bind(hash)
                .bind(now())
                .execute(&self.pool)
                .await?;
                Ok(true)
            }
            _ => Err(StoreError::Invalid(
                "More than one token starts with that id; give more of it.".into(),
            )),
        }
    }

    /// Raises an alert, once, for every device that has not pushed for `silence`; a device
    /// that pushes again is watched afresh. Returns the devices alerted.
    pub async fn alert_silent_devices(
        &self,
        silence: std::time::Duration,
    ) -> Result<Vec<String>, StoreError> {
        let cutoff = chartroom_audit::format_time(
            chrono::Utc::now() - chrono::Duration::from_std(silence).unwrap_or_default(),
        );
        let rows = sqlx::query(
            "SELECT device_id, last_push_at FROM device_activity WHERE last_push_at < $1 AND silence_alerted = 0",
        )
        .bind(&cutoff)
        .fetch_all(&self.pool)
        .await?;
        let mut alerted = Vec::new();
        for r in rows {
            let device: String = r.try_get(0)?;
            let last: String = r.try_get(1)?;
            self.alert(
                &device,
                "silent",
                &format!(
                    "Device {device} has sent nothing since {last}: it may be off, offline, or kept from syncing."
                ),
            )
            .await?;
            sqlx::query("UPDATE device_activity SET silence_alerted = 1 WHERE device_id = $1")
                .bind(&device)
                .execute(&self.pool)
                .await?;
            tracing::warn!(device = %device, since = %last, "device silent");
            alerted.push(device);
        }
        Ok(alerted)
    }

    /// Records matching an auditor's query, oldest first (at most `limit`).
    pub async fn query(&self, q: &Query) -> Result<Vec<Record>, StoreError> {
        // The current trail and what restores superseded: an auditor sees both.
        let mut sql = String::from(
            "SELECT record FROM (
               SELECT record, patient_id, actor, device_id, event, time, seq FROM entries
               UNION ALL
               SELECT record, patient_id, actor, device_id, event, time, seq FROM superseded_entries
             ) e WHERE 1 = 1",
        );
        let mut args: Vec<String> = Vec::new();
        let mut add = |column: &str, op: &str, value: &Option<String>| {
            if let Some(v) = value {
                args.push(v.clone());
                sql.push_str(&format!(" AND {column} {op} ${}", args.len()));
            }
        };
        add("patient_id", "=", &q.patient);
        add("actor", "=", &q.user);
        add("device_id", "=", &q.device);
        add("event", "=", &q.event);
        // Stored times are RFC 3339 UTC with six digits; compare like with like.
        let norm = |t: &Option<String>| {
            t.as_deref()
                .and_then(chartroom_audit::parse_time)
                .map(chartroom_audit::format_time)
        };
        add("time", ">=", &norm(&q.since));
        add("time", "<", &norm(&q.until));
        sql.push_str(&format!(
            " ORDER BY time, device_id, seq LIMIT {}",
            q.limit.clamp(1, 1_000_000)
        ));
        let mut query = sqlx::query(&sql);
        for a in &args {
            query = query.bind(a);
        }
        let rows = query.fetch_all(&self.pool).await?;
        from_json_column(rows, || "a stored record is damaged".into())
    }

    /// Records stored after what has been forwarded (for the syslog output), up to `limit`.
    pub async fn unforwarded(&self, limit: i64) -> Result<Vec<Record>, StoreError> {
        let rows = sqlx::query(
            "SELECT e.record FROM entries e LEFT JOIN forwarded f ON f.device_id = e.device_id
             WHERE e.seq > COALESCE(f.seq, 0) ORDER BY e.device_id, e.seq LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        from_json_column(rows, || "a stored record is damaged".into())
    }

    /// Notes that a device's records up to `seq` were forwarded.
    pub async fn mark_forwarded(&self, device_id: &str, seq: u64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO forwarded (device_id, seq) VALUES ($1, $2)
             ON CONFLICT (device_id) DO UPDATE SET seq = excluded.seq",
        )
        .bind(device_id)
        .bind(seq as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Enrolls a device with a token (used once) and its public key.
    pub async fn enroll(
        &self,
        token: &str,
        device_id: &str,
        public_key: &VerifyingKey,
        label: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("SELECT expires_at, used_at FROM tokens WHERE token_hash = $1")
            .bind(token_hash(token))
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Err(StoreError::BadToken);
        };
        let expires: String = row.try_get(0)?;
        let used: Option<String> = row.try_get(1)?;
        let revoked = sqlx::query("SELECT 1 FROM revoked_tokens WHERE token_hash = $1")
            .bind(token_hash(token))
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if used.is_some() || revoked || expires < now() {
            return Err(StoreError::BadToken);
        }
        let key_hex = hex::encode(public_key.as_bytes());
        let existing = sqlx::query("SELECT public_key FROM devices WHERE device_id = $1")
            .bind(device_id)
            .fetch_optional(&mut *tx)
            .await?;
        match existing {
            Some(r) if r.try_get::<String, _>(0)? != key_hex => {
                return Err(StoreError::KeyConflict)
            }
            Some(_) => {}
            None => {
                sqlx::query(
                    "INSERT INTO devices (device_id, public_key, label, enrolled_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(device_id)
                .bind(&key_hex)
                .bind(label)
                .bind(now())
                .execute(&mut *tx)
                .await?;
            }
        }
        // Spent only if nobody spent it meanwhile: of two enrollments racing with one token
        // (on PostgreSQL both can read it unused), exactly one changes the row.
        let spent = sqlx::query(
            "UPDATE tokens SET used_at = $1, used_by = $2 WHERE token_hash = $3 AND used_at IS NULL",
        )
        .bind(now())
        .bind(device_id)
        .bind(token_hash(token))
        .execute(&mut *tx)
        .await?;
        if spent.rows_affected() != 1 {
            return Err(StoreError::BadToken);
        }
        sqlx::query(
            "INSERT INTO device_activity (device_id, last_push_at, silence_alerted) VALUES ($1, $2, 0)
             ON CONFLICT (device_id) DO NOTHING",
        )
        .bind(device_id)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn device_key(&self, device_id: &str) -> Result<VerifyingKey, StoreError> {
        let row = sqlx::query("SELECT public_key FROM devices WHERE device_id = $1")
            .bind(device_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::UnknownDevice)?;
        parse_key(&row.try_get::<String, _>(0)?)
    }

    /// The highest sequence held for a device (0 and the genesis hash for none).
    pub async fn head(&self, device_id: &str) -> Result<Head, StoreError> {
        self.device_key(device_id).await?;
        let row = sqlx::query(
            "SELECT seq, hash FROM entries WHERE device_id = $1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(device_id)
        .fetch_optional(&self.pool)
        .await?;
        let epoch = self.epoch(device_id).await?;
        Ok(match row {
            None => Head {
                device_id: device_id.to_owned(),
                seq: 0,
                hash: GENESIS,
                security_entries: 0,
                epoch,
            },
            Some(r) => Head {
                device_id: device_id.to_owned(),
                seq: r.try_get::<i64, _>(0)?.max(0) as u64,
                hash: Hash::from_hex(&r.try_get::<String, _>(1)?).unwrap_or(GENESIS),
                security_entries: self.security_head(device_id).await?.map_or(0, |(n, _)| n),
                epoch,
            },
        })
    }

    /// The device's current epoch: how many times its trail was restored from a backup.
    async fn epoch(&self, device_id: &str) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT MAX(epoch) FROM epochs WHERE device_id = $1")
            .bind(device_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<Option<i64>, _>(0)?.unwrap_or(0).max(0) as u64)
    }

    /// Opens a new epoch for a restored device inside `tx`: checks the signed statement
    /// against what is held (the backup's head must be an entry held from this device, the
    /// statement must follow the current head and epoch), moves what is held after the
    /// backup's head to the superseded tables, and raises a "restored" alert. Returns the
    /// alert's words.
    async fn begin_epoch(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        batch: &PushBatch,
        start: &EpochStart,
        security_note: Option<String>,
    ) -> Result<String, StoreError> {
        let device = batch.device_id.as_str();
        let current: i64 = sqlx::query("SELECT MAX(epoch) FROM epochs WHERE device_id = $1")
            .bind(device)
            .fetch_one(&mut **tx)
            .await?
            .try_get::<Option<i64>, _>(0)?
            .unwrap_or(0);
        if start.epoch != current.max(0) as u64 + 1 {
            return Err(BatchError::EpochStart("it names another epoch than the next").into());
        }
        let head = sqlx::query(
            "SELECT seq, hash FROM entries WHERE device_id = $1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(device)
        .fetch_optional(&mut **tx)
        .await?;
        let head = match head {
            Some(r) => (
                r.try_get::<i64, _>(0)?.max(0) as u64,
                Hash::from_hex(&r.try_get::<String, _>(1)?).unwrap_or(GENESIS),
            ),
            None => (0, GENESIS),
        };
        if head != (start.follows_seq, start.follows_hash) {
            return Err(BatchError::EpochStart(
                "the collector's head has moved since the device asked for it",
            )
            .into());
        }
        let base: Option<String> =
            sqlx::query("SELECT hash FROM entries WHERE device_id = $1 AND seq = $2")
                .bind(device)
                .bind(start.base_seq as i64)
                .fetch_optional(&mut **tx)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
        if base.as_deref().and_then(Hash::from_hex) != Some(start.base_hash) {
            return Err(BatchError::EpochStart(
                "the backup's head is not an entry the collector holds from this device",
            )
            .into());
        }
        let closed = current.max(0);
        let moved = sqlx::query(
            "INSERT INTO superseded_entries (device_id, epoch, seq, time, actor, event, outcome, patient_id, record, hash, received_at)
             SELECT device_id, $2, seq, time, actor, event, outcome, patient_id, record, hash, received_at
               FROM entries WHERE device_id = $1 AND seq > $3",
        )
        .bind(device)
        .bind(closed)
        .bind(start.base_seq as i64)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        sqlx::query("DELETE FROM entries WHERE device_id = $1 AND seq > $2")
            .bind(device)
            .bind(start.base_seq as i64)
            .execute(&mut **tx)
            .await?;
        sqlx::query(
            "INSERT INTO superseded_checkpoints (device_id, epoch, seq, checkpoint)
             SELECT device_id, $2, seq, checkpoint FROM checkpoints WHERE device_id = $1 AND seq > $3",
        )
        .bind(device)
        .bind(closed)
        .bind(start.base_seq as i64)
        .execute(&mut **tx)
        .await?;
        sqlx::query("DELETE FROM checkpoints WHERE device_id = $1 AND seq > $2")
            .bind(device)
            .bind(start.base_seq as i64)
            .execute(&mut **tx)
            .await?;
        // The SIEM gets the new epoch's entries from the backup's head on.
        sqlx::query("UPDATE forwarded SET seq = $2 WHERE device_id = $1 AND seq > $2")
            .bind(device)
            .bind(start.base_seq as i64)
            .execute(&mut **tx)
            .await?;
        sqlx::query(
            "INSERT INTO epochs (device_id, epoch, base_seq, base_hash, follows_seq, follows_hash, statement, received_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(device)
        .bind(start.epoch as i64)
        .bind(start.base_seq as i64)
        .bind(start.base_hash.to_hex())
        .bind(start.follows_seq as i64)
        .bind(start.follows_hash.to_hex())
        .bind(serde_json::to_string(start).unwrap_or_default())
        .bind(now())
        .execute(&mut **tx)
        .await?;
        let mut summary = format!(
            "Device {device} was restored from a backup: its trail goes on from entry {} (epoch {}). The {moved} entries it had sent after that (up to entry {}) are kept as epoch {closed} and still searchable; nothing written since the restore is lost.",
            start.base_seq, start.epoch, start.follows_seq
        );
        if let Some(note) = security_note {
            summary.push_str(&format!(
                " Its security log went back to the backup's ({note}): user and role changes made after the backup are undone there."
            ));
        }
        sqlx::query("INSERT INTO alerts (time, device_id, kind, summary) VALUES ($1, $2, $3, $4)")
            .bind(now())
            .bind(device)
            .bind("restored")
            .bind(&summary)
            .execute(&mut **tx)
            .await?;
        Ok(summary)
    }

    /// Whether `hash` is an entry of a closed epoch of the device: a push that follows it
    /// comes from a copy of the vault still running as it was before the restore.
    async fn follows_closed_epoch(&self, device_id: &str, hash: &Hash) -> Result<bool, StoreError> {
        Ok(
            sqlx::query("SELECT 1 FROM superseded_entries WHERE device_id = $1 AND hash = $2")
                .bind(device_id)
                .bind(hash.to_hex())
                .fetch_optional(&self.pool)
                .await?
                .is_some(),
        )
    }

    /// The closed epochs of a device, each with the statement that closed it.
    pub async fn closed_epochs(&self, device_id: &str) -> Result<Vec<ClosedEpoch>, StoreError> {
        let rows =
            sqlx::query("SELECT epoch, statement FROM epochs WHERE device_id = $1 ORDER BY epoch")
                .bind(device_id)
                .fetch_all(&self.pool)
                .await?;
        let mut out = Vec::new();
        for r in rows {
            let epoch: i64 = r.try_get(0)?;
            let statement: String = r.try_get(1)?;
            let closed_by: EpochStart = serde_json::from_str(&statement).map_err(|_| {
                StoreError::Invalid(format!(
                    "a stored restore statement of {device_id} is damaged"
                ))
            })?;
            let closed = epoch - 1;
            let records = sqlx::query(
                "SELECT record FROM superseded_entries WHERE device_id = $1 AND epoch = $2 ORDER BY seq",
            )
            .bind(device_id)
            .bind(closed)
            .fetch_all(&self.pool)
            .await?;
            let checkpoints = sqlx::query(
                "SELECT checkpoint FROM superseded_checkpoints WHERE device_id = $1 AND epoch = $2 ORDER BY seq",
            )
            .bind(device_id)
            .bind(closed)
            .fetch_all(&self.pool)
            .await?;
            out.push(ClosedEpoch {
                epoch: closed.max(0) as u64,
                closed_by,
                records: from_json_column(records, || {
                    format!("a superseded record of {device_id} is damaged")
                })?,
                checkpoints: from_json_column(checkpoints, || {
                    format!("a superseded checkpoint of {device_id} is damaged")
                })?,
            });
        }
        Ok(out)
    }

    /// The security log length and last hash a device last showed.
    async fn security_head(&self, device_id: &str) -> Result<Option<(u64, String)>, StoreError> {
        let row = sqlx::query("SELECT entries, hash FROM security_heads WHERE device_id = $1")
            .bind(device_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some((r.try_get::<i64, _>(0)?.max(0) as u64, r.try_get(1)?)),
            None => None,
        })
    }

    /// Verifies and stores a batch. Idempotent on (device, sequence); a record that differs
    /// from the one held is refused, kept as evidence and raised as a tamper alert.
    pub async fn push(&self, batch: &PushBatch) -> Result<PushAck, StoreError> {
        let key = self.device_key(&batch.device_id).await?;
        check_batch(batch, &key)?;
        let held_log = self.security_head(&batch.device_id).await?;
        let log_check = check_security_head(
            batch.security_log.as_ref(),
            held_log.as_ref().map(|(n, h)| (*n, h.as_str())),
        );
        // A restored vault's security log is the backup's: shorter than the one held is
        // expected then, and said in the restore's alert rather than refused.
        let mut security_note = None;
        let log_check = match (log_check, &batch.epoch_start) {
            (Err(_), Some(_)) => {
                security_note = Some(format!(
                    "{} entries, where the collector had seen {}",
                    batch.security_log.as_ref().map_or(0, |l| l.entries),
                    held_log.as_ref().map_or(0, |(n, _)| *n)
                ));
                Ok(())
            }
            (other, _) => other,
        };
        if let Err(e) = log_check {
            self.alert(
                &batch.device_id,
                "security_log",
                &format!(
                    "Device {} sent a security log that was cut back or rewritten ({e}): who may do what in that vault was changed outside Chartroom.",
                    batch.device_id
                ),
            )
            .await?;
            tracing::warn!(device = %batch.device_id, "security log cut back or rewritten");
            return Err(e.into());
        }
        let mut tx = self.pool.begin().await?;
        let restored = match &batch.epoch_start {
            Some(start) => match Self::begin_epoch(&mut tx, batch, start, security_note).await {
                Ok(summary) => Some(summary),
                Err(e) => {
                    drop(tx);
                    if let StoreError::Batch(BatchError::EpochStart(why)) = &e {
                        self.alert(
                            &batch.device_id,
                            "tamper",
                            &format!(
                                "Device {} asked to go on from a backup, refused: {why}.",
                                batch.device_id
                            ),
                        )
                        .await?;
                    }
                    return Err(e);
                }
            },
            None => None,
        };
        let first = batch.records[0].entry.seq;
        let from = first.saturating_sub(1).max(1) as i64;
        let to = batch.records.last().map_or(0, |r| r.entry.seq) as i64;
        let rows = sqlx::query(
            "SELECT seq, hash FROM entries WHERE device_id = $1 AND seq >= $2 AND seq <= $3",
        )
        .bind(&batch.device_id)
        .bind(from)
        .bind(to)
        .fetch_all(&mut *tx)
        .await?;
        let mut held = std::collections::HashMap::new();
        for r in rows {
            let seq: i64 = r.try_get(0)?;
            let hash: String = r.try_get(1)?;
            held.insert(seq as u64, Hash::from_hex(&hash).unwrap_or(GENESIS));
        }
        let head_row = sqlx::query("SELECT MAX(seq) FROM entries WHERE device_id = $1")
            .bind(&batch.device_id)
            .fetch_one(&mut *tx)
            .await?;
        let head = head_row.try_get::<Option<i64>, _>(0)?.unwrap_or(0).max(0) as u64;
        let plan = match plan_batch(batch, head, |seq| held.get(&seq).copied()) {
            Ok(plan) => plan,
            Err(e @ (BatchError::Fork { .. } | BatchError::Gap { .. })) => {
                drop(tx);
                // Records that go on from a closed epoch: a copy of the vault as it was before
                // the restore is still in use. Two computers running one vault is a fork.
                let prev = batch.records[0].prev_hash;
                let stray = self.follows_closed_epoch(&batch.device_id, &prev).await?;
                let seq = match e {
                    BatchError::Fork { seq } => seq,
                    BatchError::Gap { first, .. } if stray => first.saturating_sub(1),
                    _ => return Err(e.into()),
                };
                let why = stray.then(|| format!(
                    "Device {} sent entries that go on from its trail as it was before it was restored from a backup: a second computer is running a copy of that vault.",
                    batch.device_id
                ));
                self.keep_evidence(batch, seq, held.get(&seq).copied(), why)
                    .await?;
                return Err(BatchError::Fork { seq }.into());
            }
            Err(e) => return Err(e.into()),
        };
        let received = now();
        let new = &batch.records[plan.store_from..];
        // Many rows per statement: a batch is a handful of round trips to the database.
        for chunk in new.chunks(100) {
            insert_records(&mut tx, chunk, &received).await?;
        }
        if let Some(log) = &batch.security_log {
            sqlx::query(
                "INSERT INTO security_heads (device_id, entries, hash, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (device_id) DO UPDATE SET entries = excluded.entries, hash = excluded.hash, updated_at = excluded.updated_at",
            )
            .bind(&batch.device_id)
            .bind(log.entries as i64)
            .bind(&log.hash)
            .bind(now())
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO device_activity (device_id, last_push_at, silence_alerted) VALUES ($1, $2, 0)
             ON CONFLICT (device_id) DO UPDATE SET last_push_at = excluded.last_push_at, silence_alerted = 0",
        )
        .bind(&batch.device_id)
        .bind(&received)
        .execute(&mut *tx)
        .await?;
        for cp in &batch.checkpoints {
            sqlx::query(
                "INSERT INTO checkpoints (device_id, seq, checkpoint) VALUES ($1, $2, $3)
                 ON CONFLICT (device_id, seq) DO NOTHING",
            )
            .bind(&batch.device_id)
            .bind(cp.seq as i64)
            .bind(serde_json::to_string(cp).unwrap_or_default())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        if let Some(summary) = restored {
            tracing::warn!(device = %batch.device_id, "restored from a backup: {summary}");
        }
        let last = batch.records.last().expect("checked: not empty");
        let head = if last.entry.seq >= head {
            Head {
                device_id: batch.device_id.clone(),
                seq: last.entry.seq,
                hash: last.hash,
                security_entries: batch.security_log.as_ref().map_or(0, |l| l.entries),
                epoch: self.epoch(&batch.device_id).await?,
            }
        } else {
            self.head(&batch.device_id).await?
        };
        Ok(PushAck {
            head,
            stored: new.len() as u64,
            duplicates: plan.store_from as u64,
        })
    }

    async fn keep_evidence(
        &self,
        batch: &PushBatch,
        seq: u64,
        held: Option<Hash>,
        why: Option<String>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let kept: i64 = sqlx::query("SELECT COUNT(*) FROM evidence WHERE device_id = $1")
            .bind(&batch.device_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        // Up to MAX_EVIDENCE pushes are kept whole; after that, one alert says so, and each
        // further fork is refused without filling the disk or the alert list.
        if kept < MAX_EVIDENCE {
            sqlx::query(
                "INSERT INTO evidence (device_id, seq, received_at, held_hash, offered) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&batch.device_id)
            .bind(seq as i64)
            .bind(now())
            .bind(held.map(|h| h.to_hex()))
            .bind(serde_json::to_string(batch).unwrap_or_default())
            .execute(&mut *tx)
            .await?;
        }
        if kept <= MAX_EVIDENCE {
            let summary = if kept < MAX_EVIDENCE {
                why.unwrap_or_else(|| format!(
                    "Device {} sent a different record {seq} from the one already held: its audit history was rewritten.",
                    batch.device_id
                ))
            } else {
                // Recorded as a row so that this alert is raised only once.
                sqlx::query(
                    "INSERT INTO evidence (device_id, seq, received_at, held_hash, offered) VALUES ($1, $2, $3, NULL, '')",
                )
                .bind(&batch.device_id)
                .bind(seq as i64)
                .bind(now())
                .execute(&mut *tx)
                .await?;
                format!(
                    "Device {} keeps sending rewritten history ({MAX_EVIDENCE} pushes kept as evidence); further ones are refused and not kept.",
                    batch.device_id
                )
            };
            sqlx::query(
                "INSERT INTO alerts (time, device_id, kind, summary) VALUES ($1, $2, $3, $4)",
            )
            .bind(now())
            .bind(&batch.device_id)
            .bind("tamper")
            .bind(summary)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        tracing::warn!(device = %batch.device_id, seq, "fork: a device rewrote its audit history; evidence kept");
        Ok(())
    }

    async fn alert(&self, device_id: &str, kind: &str, summary: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO alerts (time, device_id, kind, summary) VALUES ($1, $2, $3, $4)")
            .bind(now())
            .bind(device_id)
            .bind(kind)
            .bind(summary)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Tamper alerts raised so far: (time, device, summary).
    pub async fn alerts(&self) -> Result<Vec<(String, Option<String>, String)>, StoreError> {
        let rows = sqlx::query("SELECT time, device_id, summary FROM alerts ORDER BY time")
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    /// Every record held for a device, in sequence order.
    pub async fn records(&self, device_id: &str) -> Result<Vec<Record>, StoreError> {
        let rows = sqlx::query("SELECT record FROM entries WHERE device_id = $1 ORDER BY seq")
            .bind(device_id)
            .fetch_all(&self.pool)
            .await?;
        from_json_column(rows, || {
            format!("a stored record of {device_id} is damaged")
        })
    }

    /// Every enrolled device with its key.
    pub async fn devices(&self) -> Result<Vec<(String, VerifyingKey)>, StoreError> {
        let rows = sqlx::query("SELECT device_id, public_key FROM devices ORDER BY device_id")
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|r| Ok((r.try_get(0)?, parse_key(&r.try_get::<String, _>(1)?)?)))
            .collect()
    }

    /// The checkpoints held for a device.
    pub async fn checkpoints(&self, device_id: &str) -> Result<Vec<Checkpoint>, StoreError> {
        let rows =
            sqlx::query("SELECT checkpoint FROM checkpoints WHERE device_id = $1 ORDER BY seq")
                .bind(device_id)
                .fetch_all(&self.pool)
                .await?;
        from_json_column(rows, || {
            format!("a stored checkpoint of {device_id} is damaged")
        })
    }
}

fn parse_key(hex_key: &str) -> Result<VerifyingKey, StoreError> {
    let damaged = || StoreError::Invalid("a stored device key is damaged".into());
    let bytes: [u8; 32] = hex::decode(hex_key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(damaged)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| damaged())
}

/// Rows whose first column is JSON (a record or a checkpoint), read back.
fn from_json_column<T: serde::de::DeserializeOwned>(
    rows: Vec<sqlx::any::AnyRow>,
    damaged: impl Fn() -> String,
) -> Result<Vec<T>, StoreError> {
    rows.into_iter()
        .map(|r| {
            let text: String = r.try_get(0)?;
            serde_json::from_str(&text).map_err(|_| StoreError::Invalid(damaged()))
        })
        .collect()
}

async fn insert_records(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    records: &[Record],
    received: &str,
) -> Result<(), StoreError> {
    let mut sql = String::from(
        "INSERT INTO entries (device_id, seq, time, actor, event, outcome, patient_id, record, hash, received_at) VALUES ",
    );
    for i in 0..records.len() {
        let b = i * 10;
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
            b + 1,
            b + 2,
            b + 3,
            b + 4,
            b + 5,
            b + 6,
            b + 7,
            b + 8,
            b + 9,
            b + 10
        ));
    }
    let mut query = sqlx::query(&sql);
    for rec in records {
        let e = &rec.entry;
        query = query
            .bind(e.device_id.clone())
            .bind(e.seq as i64)
            .bind(chartroom_audit::format_time(e.time))
            .bind(e.actor.clone())
            .bind(e.event.clone())
            .bind(e.outcome.as_str())
            .bind(e.patient_id.clone())
            .bind(serde_json::to_string(rec).unwrap_or_default())
            .bind(rec.hash.to_hex())
            .bind(received.to_owned());
    }
    query.execute(&mut **tx).await?;
    Ok(())
}
