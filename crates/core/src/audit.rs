//! Writing and reading the audit trail. The entry, its hash and verification live in
//! chartroom-audit; this module stores them, in the same transaction as the change audited.

use chartroom_audit::{
    format_time, parse_time, Action, Checkpoint, Entry, Hash, Outcome, Record, Report, SigningKey,
    Verifier, VerifyingKey, GENESIS,
};
use chrono::{DateTime, Utc};
use rand_core::{OsRng, RngCore};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use zeroize::Zeroizing;

use std::io::Write;

use chartroom_vault::VaultError;

use crate::roles::{Permission, Role};
use crate::CoreError;

pub use chartroom_audit::CHECKPOINT_EVERY;

/// This vault's device identity: an id and the Ed25519 key that signs checkpoints.
pub(crate) struct Device {
    pub id: String,
    key: SigningKey,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Device {
    /// Loads the device key, making it on first use (at vault creation, or the first unlock
    /// of a vault made before the audit trail existed).
    pub fn load_or_create(conn: &Connection, now: DateTime<Utc>) -> Result<Device, CoreError> {
        let found = conn
            .query_row(
                "SELECT device_id, signing_key FROM device WHERE id = 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        Zeroizing::new(r.get::<_, Vec<u8>>(1)?),
                    ))
                },
            )
            .optional()?;
        if let Some((id, secret)) = found {
            let bytes: Zeroizing<[u8; 32]> =
                Zeroizing::new(secret.as_slice().try_into().map_err(|_| {
                    CoreError::Integrity("The device signing key is damaged.".into())
                })?);
            return Ok(Device {
                id,
                key: SigningKey::from_bytes(&bytes),
            });
        }
        let mut secret = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(secret.as_mut());
        let mut raw_id = [0u8; 16];
        OsRng.fill_bytes(&mut raw_id);
        let device = Device {
            id: hex::encode(raw_id),
            key: SigningKey::from_bytes(&secret),
        };
        conn.execute(
            "INSERT INTO device (id, device_id, signing_key, public_key, created_at) VALUES (1, ?1, ?2, ?3, ?4)",
            params![
                device.id,
                secret.as_slice(),
                device.key.verifying_key().as_bytes().as_slice(),
                format_time(now)
            ],
        )?;
        Ok(device)
    }

    pub fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The device's signing key: it signs the trail's checkpoints and what the vault exports.
    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// Signs a request for this device's head at the collector: (time, signature in hex).
    pub(crate) fn sign_head_request(&self, now: DateTime<Utc>) -> (String, String) {
        use chartroom_vault::ed25519_dalek::Signer as _;
        let time = format_time(now);
        let message = chartroom_audit::sync::head_request_message(&self.id, &time);
        let signature = hex::encode(self.key.sign(&message).to_bytes());
        (time, signature)
    }
}

/// The stored public key and device id, for verification.
pub(crate) fn device_public(conn: &Connection) -> Result<(String, VerifyingKey), CoreError> {
    let (id, public): (String, Vec<u8>) = conn.query_row(
        "SELECT device_id, public_key FROM device WHERE id = 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let bytes: [u8; 32] = public
        .as_slice()
        .try_into()
        .map_err(|_| CoreError::Integrity("The device public key is damaged.".into()))?;
    let key = VerifyingKey::from_bytes(&bytes)
        .map_err(|_| CoreError::Integrity("The device public key is damaged.".into()))?;
    Ok((id, key))
}

/// Who an entry is about: the acting user, or the name someone tried to sign in as.
#[derive(Debug, Clone)]
pub(crate) struct ActorRef {
    pub id: Option<i64>,
    pub name: String,
    pub role: Option<Role>,
}

/// An event to audit, before it has a place in the chain.
#[derive(Debug, Clone)]
pub(crate) struct Op {
    pub action: Action,
    pub event: &'static str,
    pub outcome: Outcome,
    pub patient: Option<i64>,
    pub object: Option<(&'static str, String)>,
    pub purpose: Option<String>,
    pub reason: Option<String>,
    pub detail: Option<String>,
}

impl Op {
    pub fn new(action: Action, event: &'static str) -> Op {
        Op {
            action,
            event,
            outcome: Outcome::Success,
            patient: None,
            object: None,
            purpose: None,
            reason: None,
            detail: None,
        }
    }

    pub fn read(event: &'static str) -> Op {
        Op::new(Action::Read, event)
    }
    pub fn create(event: &'static str) -> Op {
        Op::new(Action::Create, event)
    }
    pub fn update(event: &'static str) -> Op {
        Op::new(Action::Update, event)
    }
    pub fn execute(event: &'static str) -> Op {
        Op::new(Action::Execute, event)
    }

    pub fn patient(mut self, id: impl Into<i64>) -> Op {
        let id: i64 = id.into();
        self.patient = Some(id);
        self.object = Some(("Patient", id.to_string()));
        self
    }

    pub fn object(mut self, kind: &'static str, id: impl ToString) -> Op {
        self.object = Some((kind, id.to_string()));
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Op {
        self.detail = Some(detail.into());
        self
    }

    pub fn outcome(mut self, outcome: Outcome) -> Op {
        self.outcome = outcome;
        self
    }
}

/// The current head of the chain: its sequence and hash.
pub(crate) fn head(conn: &Connection) -> Result<(u64, Hash), CoreError> {
    let row = conn
        .prepare_cached("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
        .optional()?;
    match row {
        None => Ok((0, GENESIS)),
        Some((seq, hash)) => Ok((
            u64::try_from(seq).unwrap_or(0),
            Hash::from_slice(&hash).unwrap_or(GENESIS),
        )),
    }
}

use chartroom_audit::sync::{clip, limits};

/// Appends one entry to the chain. Call inside the transaction of the change it records.
pub(crate) fn append(
    conn: &Connection,
    device: &Device,
    actor: &ActorRef,
    now: DateTime<Utc>,
    op: &Op,
) -> Result<Record, CoreError> {
    let (head_seq, head_hash) = head(conn)?;
    let entry = Entry {
        seq: head_seq + 1,
        time: chartroom_audit::truncate_to_micros(now),
        actor_id: actor.id,
        actor: clip(&actor.name, limits::ACTOR).to_owned(),
        role: actor.role.map(|r| r.as_str().to_owned()),
        device_id: device.id.clone(),
        action: op.action,
        event: op.event.to_owned(),
        outcome: op.outcome,
        patient_id: op.patient.map(|p| p.to_string()),
        object_type: op.object.as_ref().map(|(t, _)| (*t).to_owned()),
        object_id: op.object.as_ref().map(|(_, id)| id.clone()),
        purpose: op.purpose.clone(),
        // Clipped to what the collector accepts, so one long detail never stops sync.
        reason: op
            .reason
            .as_deref()
            .map(|t| clip(t, limits::REASON).to_owned()),
        detail: op
            .detail
            .as_deref()
            .map(|t| clip(t, limits::DETAIL).to_owned()),
    };
    let rec = entry.seal(head_hash);
    let e = &rec.entry;
    conn.prepare_cached(
        "INSERT INTO audit_log (seq, time, actor_id, actor, role, device_id, action, event, outcome,
                                patient_id, object_type, object_id, purpose, reason, detail, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    )?
    .execute(params![
        i64::try_from(e.seq).unwrap_or(i64::MAX),
        format_time(e.time),
        e.actor_id,
        e.actor,
        e.role,
        e.device_id,
        e.action.code(),
        e.event,
        e.outcome.as_str(),
        e.patient_id,
        e.object_type,
        e.object_id,
        e.purpose,
        e.reason,
        e.detail,
        rec.prev_hash.0.as_slice(),
        rec.hash.0.as_slice(),
    ])?;
    if chartroom_audit::requires_checkpoint(e) {
        sign_checkpoint(conn, device, e.seq, rec.hash, now)?;
    }
    Ok(rec)
}

fn sign_checkpoint(
    conn: &Connection,
    device: &Device,
    seq: u64,
    hash: Hash,
    now: DateTime<Utc>,
) -> Result<(), CoreError> {
    let cp = Checkpoint::sign(&device.key, &device.id, seq, hash, now);
    conn.prepare_cached(
        "INSERT OR IGNORE INTO audit_checkpoints (seq, hash, time, signature) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        i64::try_from(seq).unwrap_or(i64::MAX),
        cp.hash.0.as_slice(),
        format_time(cp.time),
        cp.signature.as_slice()
    ])?;
    Ok(())
}

/// Signs the current head, unless it is signed already. Called at lock and before sync.
pub(crate) fn checkpoint_head(
    conn: &Connection,
    device: &Device,
    now: DateTime<Utc>,
) -> Result<(), CoreError> {
    let (seq, hash) = head(conn)?;
    if seq > 0 {
        sign_checkpoint(conn, device, seq, hash, now)?;
    }
    Ok(())
}

const RECORD_COLUMNS: &str = "seq, time, actor_id, actor, role, device_id, action, event, outcome,
     patient_id, object_type, object_id, purpose, reason, detail, prev_hash, hash";

/// Reads a stored row back into a record. A row that cannot even be read (a bad time, an
/// unknown action) is returned as an error naming its sequence.
fn row_to_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Record, (i64, String)>> {
    let seq: i64 = r.get(0)?;
    let time: String = r.get(1)?;
    let action: String = r.get(6)?;
    let outcome: String = r.get(8)?;
    let prev: Vec<u8> = r.get(15)?;
    let hash: Vec<u8> = r.get(16)?;
    let parsed = (|| {
        Ok::<_, String>(Record {
            entry: Entry {
                seq: u64::try_from(seq).map_err(|_| "a negative sequence number".to_owned())?,
                time: parse_time(&time).ok_or("an unreadable time")?,
                actor_id: r.get(2).map_err(|e| e.to_string())?,
                actor: r.get(3).map_err(|e| e.to_string())?,
                role: r.get(4).map_err(|e| e.to_string())?,
                device_id: r.get(5).map_err(|e| e.to_string())?,
                action: action.parse()?,
                event: r.get(7).map_err(|e| e.to_string())?,
                outcome: outcome.parse()?,
                patient_id: r.get(9).map_err(|e| e.to_string())?,
                object_type: r.get(10).map_err(|e| e.to_string())?,
                object_id: r.get(11).map_err(|e| e.to_string())?,
                purpose: r.get(12).map_err(|e| e.to_string())?,
                reason: r.get(13).map_err(|e| e.to_string())?,
                detail: r.get(14).map_err(|e| e.to_string())?,
            },
            prev_hash: Hash::from_slice(&prev).ok_or("a damaged previous hash")?,
            hash: Hash::from_slice(&hash).ok_or("a damaged hash")?,
        })
    })();
    Ok(parsed.map_err(|why| (seq, why)))
}

/// The stored checkpoints with a sequence in `from..=to`.
fn load_checkpoints(
    conn: &Connection,
    from: u64,
    to: u64,
) -> Result<Result<Vec<Checkpoint>, (u64, String)>, CoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, hash, time, signature FROM audit_checkpoints WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq",
    )?;
    let bound = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![bound(from), bound(to)], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, Vec<u8>>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Vec<u8>>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, hash, time, sig) = row?;
        let seq_u = u64::try_from(seq).unwrap_or(0);
        let cp = (|| {
            Some(Checkpoint {
                seq: u64::try_from(seq).ok()?,
                hash: Hash::from_slice(&hash)?,
                time: parse_time(&time)?,
                signature: sig.as_slice().try_into().ok()?,
            })
        })();
        match cp {
            Some(cp) => out.push(cp),
            None => {
                return Ok(Err((
                    seq_u,
                    format!("the checkpoint at entry {seq_u} is damaged"),
                )))
            }
        }
    }
    Ok(Ok(out))
}

/// The next run of records after `after` (at most `max`) with the device's checkpoints in
/// it, and a fresh checkpoint over its last record when none is stored there: a batch for
/// the collector. None when nothing is unsent.
pub(crate) fn batch_after(
    conn: &Connection,
    device: &Device,
    after: u64,
    max: usize,
) -> Result<Option<chartroom_audit::sync::PushBatch>, CoreError> {
    let after_i = i64::try_from(after).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {RECORD_COLUMNS} FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT ?2"
    ))?;
    let mut rows = stmt.query(params![after_i, max as i64])?;
    let mut records = Vec::new();
    while let Some(row) = rows.next()? {
        match row_to_record(row)? {
            Ok(rec) => records.push(rec),
            Err((seq, why)) => {
                return Err(CoreError::Integrity(format!(
                    "Audit entry {seq} cannot be read ({why}); run `chartroom audit verify`."
                )))
            }
        }
    }
    let Some(last) = records.last() else {
        return Ok(None);
    };
    let (first_seq, last_seq, last_hash) = (records[0].entry.seq, last.entry.seq, last.hash);
    let mut checkpoints = match load_checkpoints(conn, first_seq, last_seq)? {
        Ok(in_batch) => in_batch,
        Err((_, why)) => return Err(CoreError::Integrity(why)),
    };
    if checkpoints.last().is_none_or(|c| c.seq != last_seq) {
        checkpoints.push(Checkpoint::sign(
            &device.key,
            &device.id,
            last_seq,
            last_hash,
            chrono::Utc::now(),
        ));
    }
    Ok(Some(chartroom_audit::sync::PushBatch {
        device_id: device.id.clone(),
        records,
        checkpoints,
        security_log: crate::security_log::push_head(conn)?,
        epoch_start: None,
    }))
}

/// Verifies the stored chain with the stored device key, streaming the rows.
pub(crate) fn verify_stored(conn: &Connection) -> Result<Report, CoreError> {
    let (device_id, key) = device_public(conn)?;
    let checkpoints = match load_checkpoints(conn, 0, u64::MAX)? {
        Ok(cps) => cps,
        Err((seq, reason)) => return Ok(failed_report(seq, reason)),
    };
    let mut verifier = Verifier::new(&device_id, &key, checkpoints);
    let mut stmt = conn.prepare(&format!(
        "SELECT {RECORD_COLUMNS} FROM audit_log ORDER BY seq"
    ))?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        match row_to_record(row)? {
            Ok(rec) => {
                if !verifier.push(&rec) {
                    break;
                }
            }
            Err((seq, why)) => {
                let seq = u64::try_from(seq).unwrap_or(0);
                return Ok(failed_report(
                    seq,
                    format!("entry {seq} was changed after it was written: it holds {why}"),
                ));
            }
        }
    }
    Ok(verifier.finish())
}

fn failed_report(seq: u64, reason: String) -> Report {
    Report {
        ok: false,
        entries: 0,
        head_seq: 0,
        head_hash: GENESIS,
        checkpoints: 0,
        last_checkpoint_seq: None,
        unsigned_tail: 0,
        failure: Some(chartroom_audit::Failure { seq, reason }),
    }
}

/// How a filter names a patient in a clinic's words; core resolves it to the patient ids the
/// trail stores, within what the reader may see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum PatientNamed {
    /// An MRN, exactly as written (`0000018`), or else a name, matched as patient search
    /// matches names. A name never finds a restricted patient the reader may not open.
    MrnOrName(String),
    /// An MRN when one is on record as written (seven digits, leading zeros kept), else a
    /// patient id: the CLI's `--patient`, which took ids before it took MRNs.
    MrnOrId(String),
}

/// At most this many patients may a name in an audit filter mean.
pub const MAX_PATIENTS_NAMED: usize = 200;

/// How many digits an MRN has: six of serial and a check digit.
const MRN_DIGITS: usize = 7;

fn mrn_shaped(text: &str) -> bool {
    text.len() == MRN_DIGITS && text.bytes().all(|b| b.is_ascii_digit())
}

fn patient_with_mrn(conn: &Connection, mrn: &str) -> Result<Option<i64>, CoreError> {
    Ok(conn
        .prepare_cached("SELECT id FROM patients WHERE mrn = ?1")?
        .query_row([mrn], |r| r.get(0))
        .optional()?)
}

/// The patient ids (as the trail stores them) that `named` means; None when it names
/// nobody in particular (blank). Restricted patients the session may not open are found by
/// their MRN only, never by name, so a filter no more confirms who is a patient here than
/// a search does.
fn resolve_named(
    tx: &Connection,
    ctx: &crate::session::Ctx<'_>,
    dictionary: &mut Option<crate::search::NameDictionary>,
    named: &PatientNamed,
) -> Result<Option<Vec<String>>, CoreError> {
    match named {
        PatientNamed::MrnOrId(text) => {
            let text = text.trim();
            if text.is_empty() {
                return Ok(None);
            }
            if mrn_shaped(text) {
                if let Some(id) = patient_with_mrn(tx, text)? {
                    return Ok(Some(vec![id.to_string()]));
                }
            }
            Ok(Some(vec![text.to_owned()]))
        }
        PatientNamed::MrnOrName(text) => {
            let text = text.trim();
            if text.is_empty() {
                return Ok(None);
            }
            if text.bytes().all(|b| b.is_ascii_digit()) {
                if !mrn_shaped(text) {
                    return Err(CoreError::InvalidInput(
                        "An MRN has seven digits, leading zeros too (like 0000018).".into(),
                    ));
                }
                return Ok(Some(
                    patient_with_mrn(tx, text)?
                        .map(|id| id.to_string())
                        .into_iter()
                        .collect(),
                ));
            }
            if crate::chart::patient::name_words(text).is_empty() {
                return Err(CoreError::InvalidInput(
                    "Name the patient by MRN (like 0000018) or by name.".into(),
                ));
            }
            let openable = crate::search::openable_restricted(tx, ctx)?;
            let ids =
                crate::search::patients_named(tx, dictionary, text, &openable, MAX_PATIENTS_NAMED)?;
            if ids.len() > MAX_PATIENTS_NAMED {
                return Err(CoreError::InvalidInput(format!(
                    "That name matches more than {MAX_PATIENTS_NAMED} patients: type more of it, or the MRN."
                )));
            }
            Ok(Some(ids.into_iter().map(|id| id.to_string()).collect()))
        }
    }
}

/// An audit entry as a clinic reads it.
#[derive(Debug, Clone)]
pub struct AuditLine {
    pub record: Record,
    /// The MRN of the patient the entry is about, when it names one on record.
    pub mrn: Option<String>,
}

impl AuditLine {
    /// The event in words ("Opened a chart"); None for a name this release does not write.
    pub fn event_words(&self) -> Option<&'static str> {
        crate::audit_words::event_words(&self.record.entry.event)
    }

    /// The purpose of use in words ("treatment").
    pub fn purpose_words(&self) -> Option<&'static str> {
        self.record
            .entry
            .purpose
            .as_deref()
            .and_then(crate::audit_words::purpose_words)
    }
}

/// What a listing found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditCount {
    pub entries: u64,
    /// How many patients the filter's MRN or name meant, when it named one.
    pub patients_named: Option<usize>,
}

/// Which entries to list.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditFilter {
    /// Only entries about this patient id, as the trail stores it.
    pub patient: Option<String>,
    /// Only entries about the patients this names (an MRN, a name, or an MRN or id).
    pub named: Option<PatientNamed>,
    pub user: Option<String>,
    pub event: Option<String>,
    pub outcome: Option<Outcome>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// At most this many, newest last; none means all.
    pub limit: Option<u32>,
}

/// Entries matching `filter` (and about one of `patients`, when given), in sequence order,
/// each with the MRN of the patient it names. Values are bound, never spliced into SQL.
pub(crate) fn list(
    conn: &Connection,
    filter: &AuditFilter,
    patients: Option<&[String]>,
    mut each: impl FnMut(Record, Option<String>) -> Result<(), CoreError>,
) -> Result<u64, CoreError> {
    if patients.is_some_and(<[String]>::is_empty) {
        return Ok(0);
    }
    let mut sql = format!(
        "SELECT {RECORD_COLUMNS}, (SELECT p.mrn FROM patients p WHERE p.id = audit_log.patient_id)
           FROM audit_log WHERE 1 = 1"
    );
    let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
    if let Some(p) = &filter.patient {
        sql.push_str(" AND patient_id = ?");
        args.push(Box::new(p.clone()));
    }
    if let Some(ids) = patients {
        sql.push_str(" AND patient_id IN (");
        sql.push_str(&vec!["?"; ids.len()].join(", "));
        sql.push(')');
        for id in ids {
            args.push(Box::new(id.clone()));
        }
    }
    if let Some(u) = &filter.user {
        sql.push_str(" AND actor = ? COLLATE NOCASE");
        args.push(Box::new(u.clone()));
    }
    if let Some(e) = &filter.event {
        sql.push_str(" AND event = ?");
        args.push(Box::new(e.clone()));
    }
    if let Some(o) = filter.outcome {
        sql.push_str(" AND outcome = ?");
        args.push(Box::new(o.as_str()));
    }
    if let Some(t) = filter.since {
        sql.push_str(" AND time >= ?");
        args.push(Box::new(format_time(t)));
    }
    if let Some(t) = filter.until {
        sql.push_str(" AND time < ?");
        args.push(Box::new(format_time(t)));
    }
    sql.push_str(" ORDER BY seq");
    if let Some(limit) = filter.limit {
        // The newest `limit`, still in ascending order.
        sql = format!("SELECT * FROM ({sql} DESC LIMIT {limit}) ORDER BY seq");
    }
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(args.iter().map(|b| b.as_ref())))?;
    let mut count = 0;
    while let Some(row) = rows.next()? {
        match row_to_record(row)? {
            Ok(rec) => each(rec, row.get(17)?)?,
            Err((seq, why)) => {
                return Err(CoreError::Integrity(format!(
                    "Audit entry {seq} cannot be read ({why}). Run `chartroom audit verify`."
                )))
            }
        }
        count += 1;
    }
    Ok(count)
}
/// What verifying the audit trail found.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Verification {
    pub ok: bool,
    pub entries: u64,
    pub head_seq: u64,
    pub checkpoints: u64,
    pub unsigned_tail: u64,
    pub first_bad_seq: Option<u64>,
    pub reason: Option<String>,
}

impl From<Report> for Verification {
    fn from(r: Report) -> Self {
        Verification {
            ok: r.ok,
            entries: r.entries,
            head_seq: r.head_seq,
            checkpoints: r.checkpoints,
            unsigned_tail: r.unsigned_tail,
            first_bad_seq: r.failure.as_ref().map(|f| f.seq),
            reason: r.failure.map(|f| f.reason),
        }
    }
}

/// An entry as the reader is shown it: its sealed free text (a break-the-glass reason, an
/// export's purpose and recipient) opened where the reader's keys open it, withheld where
/// not. Its hashes are the stored ones; `audit verify` checks the stored entry.
fn revealed(keys: &crate::keys::SharedKeyring, mut r: Record) -> Record {
    let keys = crate::keys::lock(keys);
    if let Some(reason) = &mut r.entry.reason {
        *reason = keys.reveal(reason);
    }
    if let Some(detail) = &mut r.entry.detail {
        *detail = keys.reveal(detail);
    }
    r
}

impl crate::Session {
    /// Verifies the whole trail: the hash chain and every signed checkpoint.
    pub fn verify_audit(&mut self) -> Result<Verification, CoreError> {
        self.run(
            Permission::VerifyAudit,
            Op::execute("audit.verify"),
            false,
            |tx, op, _| {
                let v = Verification::from(verify_stored(tx)?);
                if !v.ok {
                    op.outcome = Outcome::Failed;
                }
                op.detail = Some(match v.first_bad_seq {
                    Some(seq) => format!("chain broken at entry {seq}"),
                    None => format!("{} entries intact", v.entries),
                });
                Ok(v)
            },
        )
    }

    /// Audit entries matching `filter`, oldest first.
    pub fn audit_entries(&mut self, filter: &AuditFilter) -> Result<Vec<Record>, CoreError> {
        let mut out = Vec::new();
        self.audit_entries_each(filter, |r| {
            out.push(r);
            Ok(())
        })?;
        Ok(out)
    }

    /// Hands each audit entry matching `filter` to `each`, oldest first, without holding
    /// them all in memory. Returns how many there were.
    pub fn audit_entries_each(
        &mut self,
        filter: &AuditFilter,
        mut each: impl FnMut(Record) -> Result<(), CoreError>,
    ) -> Result<u64, CoreError> {
        self.audit_lines_each(filter, |line| each(line.record))
            .map(|count| count.entries)
    }

    /// Audit entries matching `filter`, oldest first, as a clinic reads them.
    pub fn audit_lines(
        &mut self,
        filter: &AuditFilter,
    ) -> Result<(Vec<AuditLine>, AuditCount), CoreError> {
        let mut out = Vec::new();
        let count = self.audit_lines_each(filter, |line| {
            out.push(line);
            Ok(())
        })?;
        Ok((out, count))
    }

    /// Hands each audit entry matching `filter` to `each`, oldest first, with the MRN of the
    /// patient it names, without holding them all in memory. The filter's MRN or name is
    /// resolved here, in the same transaction; the entry this read leaves says how many
    /// patients it meant, never what was typed.
    pub fn audit_lines_each(
        &mut self,
        filter: &AuditFilter,
        mut each: impl FnMut(AuditLine) -> Result<(), CoreError>,
    ) -> Result<AuditCount, CoreError> {
        let keys = std::sync::Arc::clone(&self.keys);
        let mut dictionary = self.search_dictionary.take();
        let result = self.run(
            Permission::ReadAudit,
            Op::read("audit.read"),
            false,
            |tx, op, ctx| {
                let patients = match &filter.named {
                    Some(named) => resolve_named(tx, ctx, &mut dictionary, named)?,
                    None => None,
                };
                let entries = list(tx, filter, patients.as_deref(), |r, mrn| {
                    each(AuditLine {
                        record: revealed(&keys, r),
                        mrn,
                    })
                })?;
                let patients_named = patients.as_ref().map(Vec::len);
                op.detail = Some(match patients_named {
                    Some(m) => format!("{entries} entries about {m} patients named by MRN or name"),
                    None => format!("{entries} entries"),
                });
                Ok(AuditCount {
                    entries,
                    patients_named,
                })
            },
        );
        self.search_dictionary = dictionary;
        result
    }

    /// Writes entries matching `filter` as FHIR R4 AuditEvent resources, one JSON per line.
    /// Returns how many were written.
    pub fn export_audit_fhir(
        &mut self,
        filter: &AuditFilter,
        out: &mut dyn Write,
    ) -> Result<u64, CoreError> {
        let keys = std::sync::Arc::clone(&self.keys);
        let mut dictionary = self.search_dictionary.take();
        let result = self.run(
            Permission::ReadAudit,
            Op::execute("audit.export"),
            false,
            |tx, op, ctx| {
                let patients = match &filter.named {
                    Some(named) => resolve_named(tx, ctx, &mut dictionary, named)?,
                    None => None,
                };
                let n = list(tx, filter, patients.as_deref(), |r, _| {
                    let r = revealed(&keys, r);
                    let line = serde_json::to_string(&chartroom_audit::to_fhir_audit_event(&r))
                        .map_err(|e| CoreError::Integrity(e.to_string()))?;
                    writeln!(out, "{line}").map_err(|e| CoreError::Vault(VaultError::Io(e)))
                })?;
                out.flush()
                    .map_err(|e| CoreError::Vault(VaultError::Io(e)))?;
                op.detail = Some(format!("{n} entries as FHIR AuditEvent"));
                Ok(n)
            },
        );
        self.search_dictionary = dictionary;
        result
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::gate_tests::Clinic;
    use crate::{mrn_for, Demographics, Role};

    fn named(text: &str) -> AuditFilter {
        AuditFilter {
            named: Some(PatientNamed::MrnOrName(text.into())),
            ..AuditFilter::default()
        }
    }

    fn lines_for(clinic: &Clinic, filter: AuditFilter) -> (Vec<AuditLine>, AuditCount) {
        clinic
            .as_role(Role::Auditor)
            .audit_lines(&filter)
            .expect("the auditor reads the trail")
    }

    #[test]
    fn the_auditor_finds_a_patients_entries_by_mrn_or_name_each_with_its_mrn() {
        let clinic = Clinic::new();
        let mut doctor = clinic.as_role(Role::Physician);
        doctor.open_chart(1).expect("opens Grace Lee");
        doctor
            .open_chart(2)
            .expect("opens the restricted chart, on its care team");
        doctor.lock().expect("locks");
        let grace = mrn_for(1);

        // By MRN, exactly as written: every entry about patient 1, with her MRN.
        let (by_mrn, count) = lines_for(&clinic, named(&grace));
        assert_eq!(count.patients_named, Some(1));
        assert!(by_mrn.iter().any(|l| l.record.entry.event == "chart.read"));
        assert!(by_mrn
            .iter()
            .any(|l| l.record.entry.event == "patient.create"));
        for line in &by_mrn {
            assert_eq!(line.record.entry.patient_id.as_deref(), Some("1"));
            assert_eq!(line.mrn.as_deref(), Some(grace.as_str()));
        }
        let chart_read = by_mrn
            .iter()
            .find(|l| l.record.entry.event == "chart.read")
            .expect("a chart read");
        assert_eq!(chart_read.event_words(), Some("Opened a chart"));
        assert_eq!(chart_read.purpose_words(), Some("treatment"));

        // By name, as search matches names: the whole name, the family name, a typo.
        for name in ["Grace Lee", "lee", "Leee grace"] {
            let (by_name, count) = lines_for(&clinic, named(name));
            assert_eq!(count.patients_named, Some(1), "{name}");
            let seqs = |ls: &[AuditLine]| ls.iter().map(|l| l.record.entry.seq).collect::<Vec<_>>();
            // The auditor's own reads in between are not about her, so the lists agree.
            assert_eq!(seqs(&by_name), seqs(&by_mrn), "{name}");
        }

        // A name nobody has, and an MRN nobody has: nothing, and no error.
        let (none, count) = lines_for(&clinic, named("Nobody-here"));
        assert!(none.is_empty());
        assert_eq!(count.patients_named, Some(0));
        let (none, _) = lines_for(&clinic, named("0000000"));
        assert!(none.is_empty());

        // Digits that cannot be an MRN, and text with no name in it, are refused plainly.
        let mut auditor = clinic.as_role(Role::Auditor);
        for bad in ["18", "00000018", "!!!"] {
            let err = auditor.audit_lines(&named(bad)).expect_err(bad);
            assert!(matches!(err, CoreError::InvalidInput(_)), "{bad}: {err}");
        }
        auditor.lock().expect("locks");

        // The unfiltered listing carries MRNs too, and nothing else names a patient.
        let (all, _) = lines_for(&clinic, AuditFilter::default());
        for line in &all {
            match line.record.entry.patient_id.as_deref() {
                Some(id) => assert_eq!(
                    line.mrn.as_deref(),
                    Some(mrn_for(id.parse().expect("an id")).as_str())
                ),
                None => assert_eq!(line.mrn, None),
            }
        }
    }

    #[test]
    fn a_restricted_patient_is_found_by_mrn_but_never_by_a_name_the_reader_may_not_see() {
        let clinic = Clinic::new();
        let mut doctor = clinic.as_role(Role::Physician);
        let opened = doctor
            .open_chart(2)
            .expect("on the care team")
            .patient
            .demographics;
        doctor.lock().expect("locks");
        assert_eq!(opened.family, "Castellanos");
        let mateo = mrn_for(2);

        // Her name finds nothing for the auditor, exactly as for someone not a patient here.
        for name in [
            "Castellanos",
            "Mateo Castellanos",
            "castelanos",
            "Restricted patient",
        ] {
            let (lines, count) = lines_for(&clinic, named(name));
            assert!(lines.is_empty(), "{name} found {} entries", lines.len());
            assert_eq!(count.patients_named, Some(0), "{name}");
        }
        // Her MRN finds her entries, which name her by MRN alone.
        let (lines, count) = lines_for(&clinic, named(&mateo));
        assert_eq!(count.patients_named, Some(1));
        assert!(lines.iter().any(|l| l.record.entry.event == "chart.read"));
        assert!(lines
            .iter()
            .all(|l| l.mrn.as_deref() == Some(mateo.as_str())));
        let shown = format!("{lines:?}");
        assert!(!shown.contains("Castellanos") && !shown.contains("Mateo"));

        // What the search was for is not written down: the count of patients only.
        let reads = clinic.entries(AuditFilter {
            event: Some("audit.read".into()),
            ..AuditFilter::default()
        });
        let details: Vec<&str> = reads
            .iter()
            .filter_map(|r| r.entry.detail.as_deref())
            .collect();
        assert!(details.iter().any(|d| d.contains("about 0 patients named")));
        assert!(details.iter().all(|d| !d.contains("astel")), "{details:?}");

        // Someone who may open her chart is matched by her name: the sealed words are
        // matched in memory, from what the session opened.
        let raw = clinic.raw();
        let openable: HashMap<i64, Demographics> = HashMap::from([(2, opened)]);
        let mut dictionary = None;
        let found =
            crate::search::patients_named(&raw, &mut dictionary, "castellanos", &openable, 10)
                .expect("matches");
        assert_eq!(found, vec![2]);
        let hidden = crate::search::patients_named(
            &raw,
            &mut dictionary,
            "castellanos",
            &HashMap::new(),
            10,
        )
        .expect("matches");
        assert!(hidden.is_empty());
    }

    #[test]
    fn the_clis_patient_takes_an_mrn_on_record_or_else_an_id() {
        let clinic = Clinic::new();
        let about = |text: &str| {
            let (lines, _) = lines_for(
                &clinic,
                AuditFilter {
                    named: Some(PatientNamed::MrnOrId(text.into())),
                    ..AuditFilter::default()
                },
            );
            let mut ids: Vec<String> = lines
                .into_iter()
                .filter_map(|l| l.record.entry.patient_id)
                .collect();
            ids.dedup();
            ids
        };
        assert_eq!(about("1"), vec!["1".to_owned()]);
        assert_eq!(about(&mrn_for(1)), vec!["1".to_owned()]);
        assert_eq!(about(&mrn_for(2)), vec!["2".to_owned()]);
        // Seven digits no patient has as an MRN are an id (none here).
        assert!(about("0000000").is_empty());
        assert!(
            about("Lee").is_empty(),
            "the CLI's --patient takes no names"
        );
    }
}
