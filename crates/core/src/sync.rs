//! The desktop side of audit sync: which collector (URL and pinned certificate), how far it
//! has acknowledged, and the worker that pushes what is unsent, in order and in batches,
//! backing off with jitter while the collector is unreachable.
//!
//! The database work is short, synchronous Session calls; the network work is async and
//! holds no lock, so charting never waits for the network.

use std::time::Duration;

use chartroom_audit::format_time;
use chartroom_audit::sync::{EnrollRequest, EpochStart, Head, PushAck, PushBatch, MAX_BATCH};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use crate::audit::{self, Op};
use crate::roles::Permission;
use crate::{CoreError, Session};

/// What the status bar and `chartroom sync status` show.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SyncStatus {
    /// False until an admin enrolls this computer with a collector.
    pub configured: bool,
    #[cfg_attr(feature = "ts", ts(optional))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The highest audit entry the collector has acknowledged.
    pub acknowledged: u64,
    /// Entries written here and not yet acknowledged.
    pub queued: u64,
    pub last_success: Option<String>,
    pub last_attempt: Option<String>,
    /// The last failure, in words; cleared by a success.
    pub last_error: Option<String>,
}

/// Where to push: the collector's URL, its pinned certificate (PEM), and who we are.
#[derive(Debug, Clone)]
pub struct SyncTarget {
    pub url: String,
    pub certificate: String,
    pub device_id: String,
}

/// A sync failure, in words a clinic's IT understands.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("the collector cannot be reached ({0})")]
    Unreachable(String),
    #[error("the collector refused: {0}")]
    Refused(String),
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl Session {
    /// The sync state: any signed-in user may see it (the status bar shows it to everyone).
    pub fn sync_status(&mut self) -> Result<SyncStatus, CoreError> {
        let conn = self.connection()?;
        let (head, _) = audit::head(conn)?;
        let row = conn
            .query_row(
                "SELECT url, acked_seq, last_success, last_attempt, last_error FROM sync_state WHERE id = 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, Option<String>>(4)?,
                    ))
                },
            )
            .optional()?;
        Ok(match row {
            None => SyncStatus {
                configured: false,
                url: None,
                acknowledged: 0,
                queued: head,
                last_success: None,
                last_attempt: None,
                last_error: None,
            },
            Some((url, acked, success, attempt, error)) => {
                let acked = u64::try_from(acked).unwrap_or(0);
                SyncStatus {
                    configured: true,
                    url: Some(url),
                    acknowledged: acked,
                    queued: head.saturating_sub(acked),
                    last_success: success,
                    last_attempt: attempt,
                    last_error: error,
                }
            }
        })
    }

    /// This device's signed request for its head at the collector: (time, signature). The
    /// computer's own clock, not the session's: the collector compares it with its clock.
    pub fn sync_head_proof(&self) -> (String, String) {
        self.device.sign_head_request(chrono::Utc::now())
    }

    /// The collector this computer pushes to, when one is configured.
    pub fn sync_target(&mut self) -> Result<Option<SyncTarget>, CoreError> {
        let device_id = self.device_id().to_owned();
        let conn = self.connection()?;
        Ok(conn
            .query_row(
                "SELECT url, certificate FROM sync_state WHERE id = 1",
                [],
                |r| {
                    Ok(SyncTarget {
                        url: r.get(0)?,
                        certificate: r.get(1)?,
                        device_id: device_id.clone(),
                    })
                },
            )
            .optional()?)
    }

    /// Records the collector (URL and pinned certificate, or "" for the usual public CAs)
    /// after a successful enrollment.
    /// Admin only (`manage_sync`), audited.
    pub fn sync_configure(&mut self, url: &str, certificate: &str) -> Result<(), CoreError> {
        let url = check_url(url)?;
        let certificate = if certificate.trim().is_empty() {
            String::new()
        } else {
            let pem = normalize_pem(certificate);
            if pem.is_empty() {
                return Err(CoreError::InvalidInput(
                    "The collector's certificate must be a PEM file (-----BEGIN CERTIFICATE-----)."
                        .into(),
                ));
            }
            pem
        };
        let detail = format!("collector {url}");
        self.run(
            Permission::ManageSync,
            Op::update("sync.configure").detail(detail),
            false,
            |tx, _, ctx| {
                tx.execute(
                    "INSERT INTO sync_state (id, url, certificate, enrolled_at, acked_seq)
                     VALUES (1, ?1, ?2, ?3, 0)
                     ON CONFLICT (id) DO UPDATE SET url = excluded.url, certificate = excluded.certificate,
                        enrolled_at = excluded.enrolled_at, acked_seq = 0, last_error = NULL",
                    params![url, certificate, format_time(ctx.now)],
                )?;
                Ok(())
            },
        )
    }

    /// The next batch to push (at most `max` records), after what the collector holds.
    pub fn sync_next_batch(&mut self, max: usize) -> Result<Option<PushBatch>, CoreError> {
        let conn = self.connection()?;
        // (acknowledged, epoch, the head a pending epoch supersedes)
        type State = (i64, i64, Option<i64>, Option<Vec<u8>>);
        let state: Option<State> = conn
            .query_row(
                "SELECT acked_seq, epoch, follows_seq, follows_hash FROM sync_state WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let (acked, epoch, follows_seq, follows_hash) = state.unwrap_or((0, 0, None, None));
        let acked = u64::try_from(acked).unwrap_or(0);
        let Some(mut batch) =
            audit::batch_after(conn, &self.device, acked, max.clamp(1, MAX_BATCH))?
        else {
            return Ok(None);
        };
        // The first batch after a restore says where it goes on from, signed.
        if let (Some(seq), Some(hash)) = (follows_seq, follows_hash) {
            let follows_hash = <[u8; 32]>::try_from(hash.as_slice())
                .map(chartroom_audit::Hash)
                .map_err(|_| CoreError::Integrity("The sync state is damaged.".into()))?;
            let base_hash = batch.records[0].prev_hash;
            batch.epoch_start = Some(EpochStart::sign(
                self.device.signing_key(),
                &self.device.id,
                u64::try_from(epoch).unwrap_or(0) + 1,
                (acked, base_hash),
                (u64::try_from(seq).unwrap_or(0), follows_hash),
                chrono::Utc::now(),
            ));
        }
        Ok(Some(batch))
    }

    /// Notes what the collector holds (after a push, or its head at start), once it is a
    /// point of this vault's own chain. A head this vault does not hold (the collector has
    /// more entries than it, or a different one at that sequence: a vault restored from a
    /// backup, or copied) is never adopted: adopting it by number would mark entries
    /// written since as delivered without sending them. That is refused, audited, and
    /// nothing is marked.
    pub fn sync_acknowledged(&mut self, head: &Head) -> Result<(), CoreError> {
        let now = format_time(self.clock.now());
        let conn = self.connection()?;
        if head.seq > 0 {
            let own: Option<Vec<u8>> = conn
                .query_row(
                    "SELECT hash FROM audit_log WHERE seq = ?1",
                    [i64::try_from(head.seq).unwrap_or(i64::MAX)],
                    |r| r.get(0),
                )
                .optional()?;
            if own.as_deref() != Some(head.hash.0.as_slice()) {
                // A vault put back with `vault restore` goes on from the backup's head as a
                // new epoch, once the collector holds more than that head.
                if let Some(base) = pending_restore(conn)?.filter(|b| *b < head.seq) {
                    conn.execute(
                        "UPDATE sync_state SET acked_seq = ?1, epoch = ?2, follows_seq = ?3, follows_hash = ?4,
                                last_attempt = ?5, last_error = NULL WHERE id = 1",
                        params![
                            i64::try_from(base).unwrap_or(i64::MAX),
                            i64::try_from(head.epoch).unwrap_or(i64::MAX),
                            i64::try_from(head.seq).unwrap_or(i64::MAX),
                            head.hash.0.as_slice(),
                            now
                        ],
                    )?;
                    return Ok(());
                }
                let (mine, _) = audit::head(conn)?;
                let why = if own.is_none() {
                    format!(
                        "the collector holds {} audit entries from this computer, more than the {mine} this vault has",
                        head.seq
                    )
                } else {
                    format!(
                        "the collector holds a different audit entry {} from this computer than this vault does",
                        head.seq
                    )
                };
                let op = Op::execute("sync.diverged")
                    .outcome(chartroom_audit::Outcome::Failed)
                    .detail(why.clone());
                let _ = self.record(&op);
                return Err(CoreError::Conflict(format!(
                    "Sync stopped: {why}. This vault was restored from a backup or copied from another computer without `chartroom vault restore`; nothing was marked as sent. Ask the clinic's administrator (README, \"Recovering data\")."
                )));
            }
        }
        let conn = self.connection()?;
        conn.execute(
            "UPDATE sync_state SET acked_seq = ?1, last_success = ?2, last_attempt = ?2, last_error = NULL,
                    security_entries = ?3, epoch = ?4, follows_seq = NULL, follows_hash = NULL WHERE id = 1",
            params![
                i64::try_from(head.seq).unwrap_or(i64::MAX),
                now,
                i64::try_from(head.security_entries).unwrap_or(i64::MAX),
                i64::try_from(head.epoch).unwrap_or(i64::MAX)
            ],
        )?;
        Ok(())
    }

    /// Notes a failed attempt, in words.
    pub fn sync_failed(&mut self, error: &str) -> Result<(), CoreError> {
        let now = format_time(self.clock.now());
        let conn = self.connection()?;
        conn.execute(
            "UPDATE sync_state SET last_attempt = ?1, last_error = ?2 WHERE id = 1",
            params![now, error.chars().take(300).collect::<String>()],
        )?;
        Ok(())
    }
}

/// The backup head of a `vault restore` whose new epoch the collector has not accepted yet:
/// the latest restore recorded after what the collector last acknowledged.
fn pending_restore(conn: &rusqlite::Connection) -> Result<Option<u64>, CoreError> {
    let acked: i64 = conn
        .query_row("SELECT acked_seq FROM sync_state WHERE id = 1", [], |r| {
            r.get(0)
        })
        .optional()?
        .unwrap_or(0);
    let base: Option<i64> = conn
        .query_row(
            "SELECT base_seq FROM vault_restores WHERE restore_seq > ?1 ORDER BY restore_seq DESC LIMIT 1",
            [acked],
            |r| r.get(0),
        )
        .optional()?;
    Ok(base.and_then(|b| u64::try_from(b).ok()))
}

/// A pasted certificate made readable again: each PEM block's base64 re-wrapped at 64
/// characters, whatever happened to its line breaks on the way (an email, a text field).
pub fn normalize_pem(text: &str) -> String {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let after = &rest[start + BEGIN.len()..];
        let Some(end) = after.find(END) else { break };
        let body: String = after[..end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        out.push_str(BEGIN);
        out.push('\n');
        for chunk in body.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(chunk));
            out.push('\n');
        }
        out.push_str(END);
        out.push('\n');
        rest = &after[end + END.len()..];
    }
    out
}

fn check_url(url: &str) -> Result<String, CoreError> {
    let url = url.trim().trim_end_matches('/');
    if !url.starts_with("https://")
        || url.len() < 10
        || url.len() > 300
        || url.contains(char::is_whitespace)
    {
        return Err(CoreError::InvalidInput(
            "The collector's address must be an https:// URL, e.g. https://collector.clinic.lan:8443.".into(),
        ));
    }
    Ok(url.to_owned())
}

/// An HTTPS client that trusts only the collector's pinned certificate (or CA).
#[derive(Debug, Clone)]
pub struct CollectorClient {
    http: reqwest::Client,
    base: String,
}

impl CollectorClient {
    /// `certificate_pem` pins the collector's certificate or CA; empty trusts the usual
    /// public CAs (a collector with a certificate from one).
    pub fn new(url: &str, certificate_pem: &str) -> Result<CollectorClient, CoreError> {
        let url = check_url(url)?;
        let mut builder = reqwest::Client::builder();
        let pinned = !certificate_pem.trim().is_empty();
        if pinned {
            let cert =
                reqwest::Certificate::from_pem(certificate_pem.as_bytes()).map_err(|_| {
                    CoreError::InvalidInput(
                        "The collector's certificate is not a PEM certificate.".into(),
                    )
                })?;
            builder = builder
                .add_root_certificate(cert)
                .tls_built_in_root_certs(false);
        }
        let http = builder
            .https_only(true)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|_| {
                CoreError::InvalidInput(if pinned {
                    "The collector's certificate cannot be used: paste the whole PEM file, from -----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----.".into()
                } else {
                    "The HTTPS client cannot start.".into()
                })
            })?;
        Ok(CollectorClient { http, base: url })
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, SyncError> {
        let response = request.send().await.map_err(|e| {
            SyncError::Unreachable(if e.is_connect() {
                "no connection".into()
            } else if e.is_timeout() {
                "timed out".into()
            } else {
                "the connection failed; check the certificate and address".into()
            })
        })?;
        let status = response.status();
        if status.is_success() {
            return response
                .json()
                .await
                .map_err(|_| SyncError::Refused("an unreadable answer".into()));
        }
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let message = body["error"]["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("HTTP {status}"));
        if status.is_server_error() {
            Err(SyncError::Unreachable(message))
        } else {
            Err(SyncError::Refused(message))
        }
    }

    /// Registers this device's public key with a one-time token.
    pub async fn enroll(
        &self,
        token: &str,
        device_id: &str,
        public_key_hex: &str,
        label: Option<String>,
    ) -> Result<(), SyncError> {
        let req = EnrollRequest {
            token: token.trim().to_owned(),
            device_id: device_id.to_owned(),
            public_key: public_key_hex.to_owned(),
            label,
        };
        let _: serde_json::Value = self
            .send(
                self.http
                    .post(format!("{}/v1/enroll", self.base))
                    .json(&req),
            )
            .await?;
        Ok(())
    }

    /// What the collector holds for this device; `proof` is the device's signed request
    /// ([`Session::sync_head_proof`]): the collector tells only the device itself.
    pub async fn head(&self, device_id: &str, proof: &(String, String)) -> Result<Head, SyncError> {
        self.send(
            self.http
                .get(format!("{}/v1/devices/{device_id}/head", self.base))
                .header(chartroom_audit::sync::HEAD_TIME_HEADER, &proof.0)
                .header(chartroom_audit::sync::HEAD_SIGNATURE_HEADER, &proof.1),
        )
        .await
    }

    pub async fn push(&self, batch: &PushBatch) -> Result<PushAck, SyncError> {
        self.send(self.http.post(format!("{}/v1/push", self.base)).json(batch))
            .await
    }
}

/// How the worker reaches the session: briefly, once per step, never across the network.
pub trait SessionAccess {
    fn with<R>(&self, f: impl FnOnce(&mut Session) -> Result<R, CoreError>)
        -> Result<R, CoreError>;
}

/// Pushes everything unsent, from the collector's own head: batches of up to `batch`
/// records, one in memory at a time. Returns how many records were stored.
pub async fn push_pending<A: SessionAccess>(
    access: &A,
    client: &CollectorClient,
    batch: usize,
) -> Result<u64, SyncError> {
    let device = access.with(|s| Ok(s.device_id().to_owned()))?;
    let outcome = async {
        // Resume from what the collector holds (it may have restarted, or been restored).
        let proof = access.with(|s| Ok(s.sync_head_proof()))?;
        let head = client.head(&device, &proof).await?;
        access.with(|s| s.sync_acknowledged(&head))?;
        let mut stored = 0;
        while let Some(next) = access.with(|s| s.sync_next_batch(batch))? {
            let ack = client.push(&next).await?;
            stored += ack.stored;
            access.with(|s| s.sync_acknowledged(&ack.head))?;
        }
        Ok::<u64, SyncError>(stored)
    }
    .await;
    if let Err(e) = &outcome {
        let words = e.to_string();
        let _ = access.with(|s| s.sync_failed(&words));
    }
    outcome
}

/// The wait before the next attempt after `failures` failures in a row: exponential from
/// 2 s to 5 minutes, with ±50 % jitter so a clinic's computers do not retry in step.
pub fn backoff(failures: u32) -> Duration {
    let base = 2u64.saturating_pow(failures.min(8)).min(300);
    let mut byte = [0u8; 1];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut byte);
    let jitter = 0.5 + f64::from(byte[0]) / 255.0;
    Duration::from_secs_f64(base as f64 * jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_five_minutes_with_jitter() {
        for f in 0..20 {
            let d = backoff(f).as_secs_f64();
            let base = 2f64.powi(f.min(8) as i32).min(300.0);
            assert!(d >= base * 0.5 - 1e-9 && d <= base * 1.5 + 1e-9, "{f}: {d}");
        }
    }

    #[test]
    fn a_pasted_certificate_gets_its_line_breaks_back() {
        let pem = "-----BEGIN CERTIFICATE-----\nAAAABBBB\n-----END CERTIFICATE-----\n";
        assert_eq!(
            normalize_pem("  -----BEGIN CERTIFICATE-----AAAA BB\r\nBB-----END CERTIFICATE-----"),
            pem
        );
        assert_eq!(normalize_pem("no certificate here"), "");
    }

    #[test]
    fn only_https_urls_are_accepted() {
        assert!(check_url("http://collector:8443").is_err());
        assert!(check_url("https://collector.clinic.lan:8443/").is_ok());
        assert!(check_url("https://a b").is_err());
    }
}
