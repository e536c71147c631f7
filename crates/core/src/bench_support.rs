//! The storage work of Chartroom's operations on a raw connection, without the Session's
//! gate or audit, for the benchmark that compares SQLCipher with plain SQLite on the same
//! workload. Only someone who already holds the database key can open such a connection;
//! the app and the CLI never do.

use chrono::Utc;
use rusqlite::Connection;

use crate::chart::change::{self, Change, Stamp, Table};
use crate::chart::vitals::{VitalsInput, VitalsRecorded};
use crate::search::{self, NameDictionary, SearchHit};
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
    search::search(
        conn,
        &mut cache.0,
        query,
        Utc::now().date_naive(),
        50,
        crate::DateFormat::Ymd,
        &Default::default(),
        |_| Ok(true),
    )
}

/// The writes of `Session::record_vitals` (through the same change and writer), in one
/// durable transaction.
pub fn record_vitals(
    conn: &Connection,
    patient_id: i64,
    input: &VitalsInput,
) -> Result<usize, CoreError> {
    let values = input.validate()?;
    let now = Utc::now();
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        let set = crate::chart::vitals::with_bmi(conn, patient_id, values)?;
        let patient = change::id_of(conn, Table::Patients, patient_id)?;
        let recorded = VitalsRecorded::new(patient, None, now, &set, Stamp::new(now, "bench"));
        Ok::<_, CoreError>(
            change::apply(conn, &Change::VitalsRecorded(recorded))?
                .0
                .len(),
        )
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
