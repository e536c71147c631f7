//! Restricted patients' keys: each restricted chart has an X25519 key pair of its own, under
//! which its demographics (names, birth date, contact details, their history) are sealed, so
//! that the database key, a front-desk, admin or auditor password opens none of them unless
//! that person is on the care team (docs/security.md, "Restricted patients' keys").
//!
//! A patient key is sealed to each member of the care team (to their slot's X25519 key), to
//! the recovery slot, and to the clinical compartment: the break-the-glass path, so that a
//! physician or nurse can open the chart offline after stating a reason. Rows of
//! `patient_keys` are those seals; the writers of `patients`, `patient_versions` and
//! `care_team` reach these keys through SQL functions registered on the session's connection
//! (`cr_pseal`, `cr_popen`, `cr_pkey`, `cr_pkey_grant`), as clinical fields reach theirs.

use std::collections::HashMap;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use chartroom_vault::x25519_dalek::{PublicKey, StaticSecret};
use rand_core::{OsRng, RngCore};
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::audit_text::{associated_data, open_with, seal_to, Kind};

/// A restricted patient's sealed text (demographics, a version of them).
pub(crate) const PATIENT_TEXT: Kind = Kind {
    prefix: "psealed:v1:",
    label: b"chartroom/patient-text/v1",
};
const AD_PATIENT_KEY: &[u8] = b"chartroom/patient-key/v1";
const NONCE_LEN: usize = 12;
/// Texts opened this session, kept so that a search or a list does not repeat the X25519
/// for each; a bound, past which texts are opened again.
const OPENED_MAX: usize = 50_000;

/// The holder every physician and nurse opens through: the clinical key of an epoch.
pub(crate) fn clinical_holder(epoch: u64) -> String {
    format!("clinical:{epoch}")
}

/// The holder a user's slot is.
pub(crate) fn user_holder(name: &str) -> String {
    format!("user:{}", chartroom_vault::account_key(name))
}

pub(crate) const RECOVERY_HOLDER: &str = "recovery";

/// One row of `patient_keys`: a patient key of an epoch, sealed to one holder.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SealRow {
    pub epoch: u64,
    /// The patient key's public half (base64).
    pub public_key: String,
    pub holder: String,
    /// The X25519 public key it is sealed to (base64).
    pub to_public: String,
    pub ephemeral: String,
    pub nonce: String,
    pub sealed: String,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn key_bytes(text: &str) -> Option<[u8; 32]> {
    b64().decode(text).ok()?.try_into().ok()
}

fn seal_ad(vault_id: &str, patient: &[u8], epoch: u64, public: &[u8], holder: &str) -> Vec<u8> {
    associated_data(
        AD_PATIENT_KEY,
        &[
            vault_id.as_bytes(),
            patient,
            &epoch.to_be_bytes(),
            public,
            holder.as_bytes(),
        ],
    )
}

fn wrap(shared: &[u8], ephemeral: &[u8; 32], to: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    crate::audit_text::wrap_key(AD_PATIENT_KEY, shared, ephemeral, to)
}

/// Seals patient key `secret` (of `epoch`) to `to` for `holder`.
fn seal_key(
    vault_id: &str,
    patient: &[u8],
    epoch: u64,
    secret: &StaticSecret,
    holder: &str,
    to: &[u8; 32],
) -> SealRow {
    let public = PublicKey::from(secret);
    let ephemeral = StaticSecret::random_from_rng(OsRng);
    let ephemeral_public = PublicKey::from(&ephemeral);
    let shared = ephemeral.diffie_hellman(&PublicKey::from(*to));
    let key = wrap(shared.as_bytes(), ephemeral_public.as_bytes(), to);
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let plain = Zeroizing::new(secret.to_bytes());
    let sealed = ChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(key.as_slice()))
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plain.as_ref(),
                aad: &seal_ad(vault_id, patient, epoch, public.as_bytes(), holder),
            },
        )
        .expect("ChaCha20-Poly1305 seals 32 bytes");
    SealRow {
        epoch,
        public_key: b64().encode(public.as_bytes()),
        holder: holder.to_owned(),
        to_public: b64().encode(to),
        ephemeral: b64().encode(ephemeral_public.as_bytes()),
        nonce: b64().encode(nonce),
        sealed: b64().encode(sealed),
    }
}

/// Opens a seal with the private key it was sealed to; checks that the key inside is the
/// patient key the row names.
fn open_seal(
    vault_id: &str,
    patient: &[u8],
    row: &SealRow,
    with: &StaticSecret,
) -> Option<StaticSecret> {
    let to = key_bytes(&row.to_public)?;
    if PublicKey::from(with).as_bytes() != &to {
        return None;
    }
    let ephemeral = key_bytes(&row.ephemeral)?;
    let nonce: [u8; NONCE_LEN] = b64().decode(&row.nonce).ok()?.try_into().ok()?;
    let public = key_bytes(&row.public_key)?;
    let shared = with.diffie_hellman(&PublicKey::from(ephemeral));
    let key = wrap(shared.as_bytes(), &ephemeral, &to);
    let plain = Zeroizing::new(
        ChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(key.as_slice()))
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &b64().decode(&row.sealed).ok()?,
                    aad: &seal_ad(vault_id, patient, row.epoch, &public, &row.holder),
                },
            )
            .ok()?,
    );
    let bytes: [u8; 32] = plain.as_slice().try_into().ok()?;
    let secret = StaticSecret::from(bytes);
    (PublicKey::from(&secret).as_bytes() == &public).then_some(secret)
}

fn text_ad(vault_id: &str, patient: &[u8], epoch: u64, what: &str) -> Vec<u8> {
    associated_data(
        PATIENT_TEXT.label,
        &[
            vault_id.as_bytes(),
            patient,
            &epoch.to_be_bytes(),
            what.as_bytes(),
        ],
    )
}

#[derive(Default)]
struct Chart {
    /// The seals stored in `patient_keys` (as loaded; a row the session wrote in a
    /// transaction that rolled back is never here).
    seals: Vec<SealRow>,
    /// The public key of each epoch as the security log registers it.
    logged: std::collections::BTreeMap<u64, [u8; 32]>,
    /// Private keys opened or made, by (epoch, public key).
    secrets: HashMap<(u64, [u8; 32]), StaticSecret>,
}

impl Chart {
    /// The chart's current key: the newest the security log registers; for a vault whose log
    /// has not started, the newest stored.
    fn current(&self) -> Option<(u64, [u8; 32])> {
        if let Some((epoch, public)) = self.logged.iter().next_back() {
            return Some((*epoch, *public));
        }
        self.seals
            .iter()
            .max_by_key(|s| s.epoch)
            .and_then(|s| Some((s.epoch, key_bytes(&s.public_key)?)))
    }

    /// Whether a stored seal is of a key the log registers for its epoch (when the log
    /// registers any): a row planted with the database key is never used.
    fn genuine(&self, row: &SealRow) -> bool {
        self.logged.is_empty() || self.logged.get(&row.epoch).copied() == key_bytes(&row.public_key)
    }
}

/// The restricted patients' keys a session has seen, and those it opened.
#[derive(Default)]
pub(crate) struct PatientKeys {
    charts: HashMap<[u8; 16], Chart>,
    loaded_through: i64,
    log_loaded_through: i64,
    /// Keys made in the operation under way, by chart: used until the next refresh (the
    /// start of the next operation), when what committed is loaded from the tables.
    pending: HashMap<[u8; 16], (u64, [u8; 32])>,
    /// (patient, what, token) → text: a token moved to another patient or place is not found.
    opened: HashMap<([u8; 16], String, String), String>,
    /// This session's slot: its holder name and private key.
    pub(crate) own: Option<(String, StaticSecret)>,
    /// Every slot's public key by holder name, as the security log registers them.
    pub(crate) slots: HashMap<String, [u8; 32]>,
}

/// What opens a patient key besides this session's slot: the clinical private keys it holds,
/// by epoch.
pub(crate) type ClinicalSecrets<'a> = &'a dyn Fn(u64) -> Option<StaticSecret>;

impl PatientKeys {
    /// Loads the seals and the log's chart keys written since the last look, and forgets the
    /// keys the previous operation made (committed, they are in what was just loaded).
    pub(crate) fn refresh(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        self.pending.clear();
        let mut stmt = conn.prepare_cached(
            "SELECT k.seq, p.uuid, k.epoch, k.public_key, k.holder, k.to_public, k.ephemeral, k.nonce, k.sealed
               FROM patient_keys k JOIN patients p ON p.id = k.patient_id
              WHERE k.seq > ?1 ORDER BY k.seq",
        )?;
        let mut rows = stmt.query([self.loaded_through])?;
        while let Some(r) = rows.next()? {
            let seq: i64 = r.get(0)?;
            self.loaded_through = self.loaded_through.max(seq);
            let Some(uuid) = r
                .get::<_, Option<Vec<u8>>>(1)?
                .and_then(|u| <[u8; 16]>::try_from(u).ok())
            else {
                continue;
            };
            let text = |i: usize| -> rusqlite::Result<String> {
                Ok(b64().encode(r.get::<_, Vec<u8>>(i)?))
            };
            let row = SealRow {
                epoch: r.get::<_, i64>(2)?.max(0) as u64,
                public_key: text(3)?,
                holder: r.get(4)?,
                to_public: text(5)?,
                ephemeral: text(6)?,
                nonce: text(7)?,
                sealed: text(8)?,
            };
            self.charts.entry(uuid).or_default().seals.push(row);
        }
        drop(rows);
        // The chart keys the security log registers (an unlock verified the log; entries
        // after it are read as they stand, as the care teams are).
        // By sequence (the table's rowid): usually nothing new, whatever the log's length.
        let top: i64 = conn
            .prepare_cached("SELECT coalesce(max(seq), 0) FROM security_log")?
            .query_row([], |r| r.get(0))?;
        let mut stmt = conn.prepare_cached(
            "SELECT seq, kind, entry FROM security_log
              WHERE seq > ?1 AND seq <= ?2 AND instr(entry, '\"kind\":\"chart_key\"') > 0
              ORDER BY seq",
        )?;
        let mut rows = stmt.query([self.log_loaded_through, top])?;
        while let Some(r) = rows.next()? {
            if r.get_ref(1)?.as_str().ok() != Some("patient") {
                continue;
            }
            let entry: String = r.get(2)?;
            let Ok(e) = serde_json::from_str::<crate::security_log::Entry>(&entry) else {
                continue;
            };
            if let crate::security_log::Fact::ChartKey {
                patient,
                epoch,
                public_key,
            } = e.fact
            {
                let uuid = hex::decode(&patient)
                    .ok()
                    .and_then(|u| <[u8; 16]>::try_from(u).ok());
                if let (Some(uuid), Some(public)) = (uuid, key_bytes(&public_key)) {
                    self.charts
                        .entry(uuid)
                        .or_default()
                        .logged
                        .insert(epoch, public);
                }
            }
        }
        drop(rows);
        self.log_loaded_through = top;
        Ok(())
    }

    /// The private key of `patient`'s key at `epoch` (`public`), opened through this session's
    /// slot or a clinical key it holds.
    fn secret(
        &mut self,
        vault_id: &str,
        patient: &[u8; 16],
        epoch: u64,
        public: Option<[u8; 32]>,
        clinical: ClinicalSecrets<'_>,
    ) -> Option<StaticSecret> {
        let chart = self.charts.get_mut(patient)?;
        if let Some(public) = public {
            if let Some(secret) = chart.secrets.get(&(epoch, public)) {
                return Some(secret.clone());
            }
        }
        let found = chart
            .seals
            .iter()
            .filter(|s| s.epoch == epoch && chart.genuine(s))
            .filter(|s| public.is_none() || key_bytes(&s.public_key) == public)
            .find_map(|row| {
                let with = match (&self.own, row.holder.strip_prefix("clinical:")) {
                    (Some((own, secret)), _) if *own == row.holder => Some(secret.clone()),
                    (_, Some(e)) => e.parse().ok().and_then(clinical),
                    _ => None,
                }?;
                open_seal(vault_id, patient, row, &with)
            })?;
        chart
            .secrets
            .insert((epoch, *PublicKey::from(&found).as_bytes()), found.clone());
        Some(found)
    }

    /// The current epoch of `patient`'s key and its public key.
    pub(crate) fn current(&self, patient: &[u8; 16]) -> Option<(u64, [u8; 32])> {
        if let Some(made) = self.pending.get(patient) {
            return Some(*made);
        }
        self.charts.get(patient)?.current()
    }

    /// Seals `plain` (a restricted patient's text) to the patient's current key, bound to the
    /// patient and to `what` it is (`patients`, `patient_versions`).
    pub(crate) fn seal(
        &self,
        vault_id: &str,
        patient: &[u8; 16],
        what: &str,
        plain: &str,
    ) -> Option<String> {
        let (epoch, public) = self.current(patient)?;
        Some(seal_to(
            PATIENT_TEXT,
            epoch,
            &PublicKey::from(public),
            &text_ad(vault_id, patient, epoch, what),
            plain,
        ))
    }

    /// Opens a restricted patient's text; None where this session holds no key that opens it.
    pub(crate) fn open(
        &mut self,
        vault_id: &str,
        patient: &[u8; 16],
        what: &str,
        token: &str,
        clinical: ClinicalSecrets<'_>,
    ) -> Option<String> {
        let cached = (*patient, what.to_owned(), token.to_owned());
        if let Some(plain) = self.opened.get(&cached) {
            return Some(plain.clone());
        }
        let (epoch, _) = crate::audit_text::parse(PATIENT_TEXT, token)?;
        let mut candidates: Vec<Option<[u8; 32]>> = vec![None];
        if let Some((e, public)) = self.current(patient) {
            if e == epoch {
                candidates.insert(0, Some(public));
            }
        }
        let plain = candidates.into_iter().find_map(|public| {
            let secret = self.secret(vault_id, patient, epoch, public, clinical)?;
            open_with(PATIENT_TEXT, &secret, token, |e| {
                text_ad(vault_id, patient, e, what)
            })
        })?;
        if self.opened.len() < OPENED_MAX {
            self.opened.insert(cached, plain.clone());
        }
        Some(plain)
    }

    /// A new key for `patient` at the next epoch (0 for a chart restricted now), sealed to
    /// `members`, the recovery slot and the current clinical key: the rows to store. The
    /// session keeps the private key (it made it) and seals to it until the operation ends.
    /// A member without a registered slot is left out.
    pub(crate) fn make(
        &mut self,
        vault_id: &str,
        patient: &[u8; 16],
        members: &[String],
        clinical: Option<(u64, [u8; 32])>,
    ) -> Vec<SealRow> {
        let epoch = self.current(patient).map_or(0, |(e, _)| e + 1);
        let secret = StaticSecret::random_from_rng(OsRng);
        let public = *PublicKey::from(&secret).as_bytes();
        let mut holders: Vec<(String, [u8; 32])> = Vec::new();
        for member in members {
            let holder = user_holder(member);
            if let Some(to) = self.slots.get(&holder) {
                holders.push((holder, *to));
            }
        }
        if let Some(to) = self.slots.get(RECOVERY_HOLDER) {
            holders.push((RECOVERY_HOLDER.to_owned(), *to));
        }
        if let Some((e, to)) = clinical {
            holders.push((clinical_holder(e), to));
        }
        holders.sort();
        holders.dedup_by(|a, b| a.0 == b.0);
        let rows: Vec<SealRow> = holders
            .iter()
            .map(|(holder, to)| seal_key(vault_id, patient, epoch, &secret, holder, to))
            .collect();
        let chart = self.charts.entry(*patient).or_default();
        chart.secrets.insert((epoch, public), secret);
        self.pending.insert(*patient, (epoch, public));
        rows
    }

    /// The current key of `patient` sealed to one more holder (a member who joins the care
    /// team, the clinical key of a new epoch); None where this session does not open it, the
    /// holder has no registered slot, or the seal is there already.
    pub(crate) fn grant(
        &mut self,
        vault_id: &str,
        patient: &[u8; 16],
        holder: &str,
        to: Option<[u8; 32]>,
        clinical: ClinicalSecrets<'_>,
    ) -> Option<SealRow> {
        let to = match to {
            Some(to) => to,
            None => *self.slots.get(holder)?,
        };
        let (epoch, public) = self.current(patient)?;
        let exists = self.charts.get(patient).is_some_and(|c| {
            c.seals.iter().any(|s| {
                s.epoch == epoch
                    && s.holder == holder
                    && key_bytes(&s.to_public) == Some(to)
                    && key_bytes(&s.public_key) == Some(public)
            })
        });
        if exists {
            return None;
        }
        let secret = self.secret(vault_id, patient, epoch, Some(public), clinical)?;
        Some(seal_key(vault_id, patient, epoch, &secret, holder, &to))
    }

    /// Whether `patient`'s current key is sealed to `holder`'s slot as it is now.
    pub(crate) fn sealed_to(&self, patient: &[u8; 16], holder: &str) -> bool {
        let (Some(chart), Some(to)) = (self.charts.get(patient), self.slots.get(holder)) else {
            return false;
        };
        let Some((epoch, public)) = chart.current() else {
            return false;
        };
        chart.seals.iter().any(|s| {
            s.epoch == epoch
                && s.holder == holder
                && key_bytes(&s.to_public) == Some(*to)
                && key_bytes(&s.public_key) == Some(public)
        })
    }

    /// The restricted patients whose current key has no seal to `holder`: those a new
    /// clinical epoch, a password reset or a key made before the clinical key existed left
    /// without one.
    pub(crate) fn lacking(&self, holder: &str) -> Vec<[u8; 16]> {
        self.charts
            .iter()
            .filter(|(_, c)| {
                c.current().is_some_and(|(epoch, public)| {
                    !c.seals.iter().any(|s| {
                        s.epoch == epoch
                            && s.holder == holder
                            && key_bytes(&s.public_key) == Some(public)
                    })
                })
            })
            .map(|(p, _)| *p)
            .collect()
    }
}

/// Stores the rows [`PatientKeys::make`] or [`PatientKeys::grant`] gave, for patient `id`.
pub(crate) fn store(
    conn: &Connection,
    id: i64,
    rows: &[SealRow],
    at: &str,
) -> rusqlite::Result<()> {
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO patient_keys (patient_id, epoch, public_key, holder, to_public, ephemeral, nonce, sealed, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    let bytes = |t: &str| b64().decode(t).unwrap_or_default();
    for row in rows {
        insert.execute(params![
            id,
            row.epoch as i64,
            bytes(&row.public_key),
            row.holder,
            bytes(&row.to_public),
            bytes(&row.ephemeral),
            bytes(&row.nonce),
            bytes(&row.sealed),
            at
        ])?;
    }
    Ok(())
}

fn json_error(e: serde_json::Error) -> crate::CoreError {
    crate::CoreError::Integrity(format!("A restricted chart's key could not be stored: {e}"))
}

/// Makes a new key for restricted patient `id` (`patient` its global id): epoch 0, or the
/// next one, which takes over from the old (see [`PatientKeys::make`]), and signs its public
/// half into the security log. In the writer's transaction, after the log's entry that
/// restricts the chart (when this operation makes one).
pub(crate) fn make_for(
    conn: &Connection,
    id: i64,
    patient: &[u8; 16],
    members: &[String],
    at: &str,
) -> Result<(), crate::CoreError> {
    let members = serde_json::to_string(members).map_err(json_error)?;
    let rows: String = conn.query_row(
        "SELECT cr_pkey(?1, ?2)",
        params![patient.as_slice(), members],
        |r| r.get(0),
    )?;
    let rows: Vec<SealRow> = serde_json::from_str(&rows).map_err(json_error)?;
    store(conn, id, &rows, at)?;
    if let Some(row) = rows.first() {
        crate::security_log::append(
            conn,
            at,
            crate::security_log::Fact::ChartKey {
                patient: crate::security_log::patient_hex(patient),
                epoch: row.epoch,
                public_key: row.public_key.clone(),
            },
        )?;
    }
    Ok(())
}

/// Seals restricted patient `id`'s current key to `member` (None: the current clinical
/// key), where this session opens it and the seal is not there yet. Returns whether it did.
pub(crate) fn grant_for(
    conn: &Connection,
    id: i64,
    patient: &[u8; 16],
    member: Option<&str>,
    at: &str,
) -> Result<bool, crate::CoreError> {
    let rows: String = conn.query_row(
        "SELECT cr_pkey_grant(?1, ?2)",
        params![patient.as_slice(), member],
        |r| r.get(0),
    )?;
    let rows: Vec<SealRow> = serde_json::from_str(&rows).map_err(json_error)?;
    store(conn, id, &rows, at)?;
    Ok(!rows.is_empty())
}

/// Removes the seals of restricted patient `id`'s earlier keys once everything of the chart
/// is sealed under its current one: they protect nothing any more.
pub(crate) fn prune_earlier(conn: &Connection, id: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "DELETE FROM patient_keys WHERE patient_id = ?1
           AND epoch < (SELECT max(epoch) FROM patient_keys WHERE patient_id = ?1)",
    )?
    .execute([id])?;
    Ok(())
}

/// Every slot's public key by holder name as the security log registers them (enabled
/// users and the recovery slot): a slot added to the slot file outside Chartroom is never
/// sealed to, whatever name it carries.
pub(crate) fn slot_publics_from_log(
    state: &crate::security_log::State,
) -> HashMap<String, [u8; 32]> {
    let mut out: HashMap<String, [u8; 32]> = state
        .users
        .values()
        .filter(|u| u.enabled)
        .filter_map(|u| Some((user_holder(&u.name), key_bytes(u.slot_key.as_deref()?)?)))
        .collect();
    if let Some((Some(slot), _)) = &state.recovery {
        if let Some(key) = key_bytes(slot) {
            out.insert(RECOVERY_HOLDER.to_owned(), key);
        }
    }
    out
}

/// Every slot's public key by holder name as the slot file lists them: for a vault whose
/// security log has not started (the previous release's, until its upgrade).
pub(crate) fn slot_publics(vault: &chartroom_vault::Vault) -> HashMap<String, [u8; 32]> {
    vault
        .loaded_slot_keys()
        .into_iter()
        .filter_map(|k| {
            let holder = match k.kind {
                chartroom_vault::SlotKind::Recovery => RECOVERY_HOLDER.to_owned(),
                chartroom_vault::SlotKind::User => user_holder(&k.owner),
            };
            Some((holder, key_bytes(&k.slot_key)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patient_key_opens_for_its_holders_only_and_its_texts_only_for_their_patient() {
        let member = StaticSecret::random_from_rng(OsRng);
        let outsider = StaticSecret::random_from_rng(OsRng);
        let clinical = StaticSecret::random_from_rng(OsRng);
        let clinical_public = *PublicKey::from(&clinical).as_bytes();
        let (a, b) = ([1u8; 16], [2u8; 16]);
        let mut maker = PatientKeys::default();
        maker.slots.insert(
            user_holder("Desk.Kim"),
            *PublicKey::from(&member).as_bytes(),
        );
        let rows = maker.make("v", &a, &["desk.kim".into()], Some((4, clinical_public)));
        assert_eq!(
            rows.iter().map(|r| r.holder.as_str()).collect::<Vec<_>>(),
            ["clinical:4", "user:desk.kim"]
        );
        let token = maker
            .seal("v", &a, "patients", "{\"family\":\"Vip\"}")
            .expect("a key");
        assert!(!token.contains("Vip"));

        let reader = |own: Option<&StaticSecret>, clinical: Option<StaticSecret>| {
            let mut keys = PatientKeys {
                own: own.map(|s| (user_holder("desk.kim"), s.clone())),
                ..PatientKeys::default()
            };
            keys.charts.entry(a).or_default().seals = rows.clone();
            let opened = keys.open("v", &a, "patients", &token, &move |e| {
                (e == 4).then(|| clinical.clone()).flatten()
            });
            (keys, opened)
        };
        let want = Some("{\"family\":\"Vip\"}".to_owned());
        assert_eq!(reader(Some(&member), None).1, want, "the member");
        assert_eq!(
            reader(None, Some(clinical.clone())).1,
            want,
            "break the glass"
        );
        assert_eq!(
            reader(Some(&outsider), None).1,
            None,
            "a slot it is not sealed to"
        );
        // Moved to another patient or another column, it does not open.
        let (mut keys, _) = reader(Some(&member), None);
        keys.charts.entry(b).or_default().seals = rows.clone();
        assert_eq!(keys.open("v", &b, "patients", &token, &|_| None), None);
        assert_eq!(
            keys.open("v", &a, "patient_versions", &token, &|_| None),
            None
        );
    }
}
