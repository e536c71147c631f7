//! The storage work of Chartroom's operations on a raw connection, without the Session's
//! gate or audit, for the benchmark that compares SQLCipher with plain SQLite on the same
//! workload. Only someone who already holds the database key can open such a connection;
//! the app and the CLI never do.

use chartroom_audit::format_time;
use chrono::Utc;
use rusqlite::Connection;

use crate::search::{self, NameDictionary, SearchHit};
use crate::vitals::VitalsInput;
use crate::CoreError;

/// The search's cached word dictionary, kept between benchmark queries as a session keeps it.
#[derive(Debug, Default)]
pub struct SearchCache(Option<NameDictionary>);

/// The search of `Session::search_patients`.
pub fn search(
    conn: &Connection,
    cache: &mut SearchCache,
    query: &str,
) -> Result<Vec<SearchHit>, CoreError> {
    search::search(conn, &mut cache.0, query, Utc::now().date_naive(), 50)
}

/// The inserts of `Session::record_vitals`, in one durable transaction.
pub fn record_vitals(
    conn: &Connection,
    patient_id: i64,
    input: &VitalsInput,
) -> Result<usize, CoreError> {
    let values = input.validate()?;
    let now = format_time(Utc::now());
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        for (vital, value) in &values {
            crate::record::insert_observation(
                conn, patient_id, None, *vital, *value, &now, "bench", &now,
            )?;
        }
        Ok::<_, CoreError>(values.len())
    })();
    match result {
        Ok(n) => {
            conn.execute_batch("COMMIT")?;
            Ok(n)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// How long one key derivation takes with `config`'s policy on this machine, so a benchmark
/// of unlocking can report the time that is not the KDF.
pub fn key_derivation_time(
    config: &chartroom_vault::VaultConfig,
) -> Result<std::time::Duration, CoreError> {
    Ok(chartroom_vault::kdf::time_derivation(
        &config.kdf.params()?,
    )?)
}
