//! Forwarding to the clinic's audit repository or SIEM: every stored entry as an RFC 5424
//! syslog message over TLS (RFC 5425, the transport IHE ATNA uses), with the FHIR
//! AuditEvent as the message. Reliable: what was forwarded is remembered per device, so a
//! restart or an unreachable receiver loses nothing (it may repeat the last few entries).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chartroom_audit::{Outcome, Record};
use tokio::io::AsyncWriteExt;

use crate::store::Store;

/// Where to forward: `host:port` and the CA (PEM) that signed the receiver's certificate.
#[derive(Clone, Debug)]
pub struct Target {
    pub address: String,
    pub ca: PathBuf,
}

/// What the SIEM is sent in place of text a person typed.
pub const WITHHELD: &str = "withheld (kept at the collector)";

/// The entry as the SIEM gets it: codes and ids only. Text a person typed (a
/// break-the-glass reason, an export's purpose, whom it went to) stays at the collector,
/// which holds the entry whole (its hash covers that text) and shows it only to auditors.
pub fn for_siem(rec: &Record) -> Record {
    let mut out = rec.clone();
    let e = &mut out.entry;
    if e.reason.is_some() {
        e.reason = Some(WITHHELD.to_owned());
    }
    // An export's detail names its recipient; an import's, its source.
    if e.event.ends_with(".export") || e.event.ends_with(".import") {
        e.detail = e.detail.as_ref().map(|_| WITHHELD.to_owned());
    }
    out
}

/// RFC 5424: facility 10 (security/authorization, authpriv), severity by outcome. The
/// message is the entry as [`for_siem`] gives it.
pub fn format(rec: &Record, hostname: &str) -> String {
    let rec = &for_siem(rec);
    let e = &rec.entry;
    let severity = match e.outcome {
        Outcome::Success => 6,
        _ => 4,
    };
    let pri = 10 * 8 + severity;
    let msgid: String = e
        .event
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(32)
        .collect();
    let sd_escape = |v: &str| {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace(']', "\\]")
    };
    format!(
        "<{pri}>1 {} {} chartroom - {} [chartroom@32473 device=\"{}\" seq=\"{}\" hash=\"{}\"] {}",
        chartroom_audit::format_time(e.time),
        hostname,
        if msgid.is_empty() { "-".into() } else { msgid },
        sd_escape(&e.device_id),
        e.seq,
        rec.hash.to_hex(),
        chartroom_audit::to_fhir_audit_event(rec)
    )
}

/// RFC 5425 framing: the message length in octets, a space, the message.
pub fn frame(message: &str) -> Vec<u8> {
    let mut out = format!("{} ", message.len()).into_bytes();
    out.extend_from_slice(message.as_bytes());
    out
}

fn client_config(ca: &PathBuf) -> Result<Arc<rustls::ClientConfig>, String> {
    let pem = std::fs::read(ca)
        .map_err(|e| format!("cannot read the syslog CA {}: {e}", ca.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("the syslog CA is not PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("the syslog CA cannot be used: {e}"))?;
    }
    Ok(Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// Runs until the process ends: forwards what is stored, then waits for more.
pub async fn run(store: Store, target: Target) {
    let hostname = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty() && h.is_ascii())
        .unwrap_or_else(|| "chartroom-collector".into());
    let mut backoff = Duration::from_millis(500);
    loop {
        match forward_once(&store, &target, &hostname).await {
            Ok(()) => backoff = Duration::from_millis(500),
            Err(e) => {
                tracing::warn!(error = %e, target = %target.address, "syslog forwarding failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    }
}

/// Connects and forwards until an error; idles while there is nothing new.
async fn forward_once(store: &Store, target: &Target, hostname: &str) -> Result<(), String> {
    let config = client_config(&target.ca)?;
    let host = target
        .address
        .rsplit_once(':')
        .map(|(h, _)| h.trim_matches(['[', ']']).to_owned())
        .ok_or("the syslog address must be host:port")?;
    let name = rustls::pki_types::ServerName::try_from(host)
        .map_err(|_| "the syslog host name is not valid".to_string())?;
    let tcp = tokio::net::TcpStream::connect(&target.address)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    tracing::info!(target = %target.address, "syslog forwarding connected");
    loop {
        let records = store.unforwarded(500).await.map_err(|e| e.to_string())?;
        if records.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        let mut last: std::collections::BTreeMap<String, u64> = Default::default();
        for rec in &records {
            tls.write_all(&frame(&format(rec, hostname)))
                .await
                .map_err(|e| format!("write: {e}"))?;
            last.insert(rec.entry.device_id.clone(), rec.entry.seq);
        }
        tls.flush().await.map_err(|e| format!("flush: {e}"))?;
        for (device, seq) in last {
            store
                .mark_forwarded(&device, seq)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chartroom_audit::testing::{chart_read, seal_all};
    use chartroom_audit::GENESIS;

    #[test]
    fn the_siem_gets_codes_and_ids_never_text_a_person_typed() {
        let mut glass = chart_read(1, "desk-1", 7, Some("60 minutes"));
        glass.event = "break_glass".into();
        glass.purpose = Some("ETREAT".into());
        glass.reason = Some("Patient HIV positive, collapsed".into());
        let mut export = chart_read(
            2,
            "desk-1",
            7,
            Some("disclosure 4 to Dr Osei, Harbour Cardiology"),
        );
        export.event = "patient.export".into();
        export.reason = Some("Referral re psychiatric care".into());
        let records = seal_all(GENESIS, [glass, export]);
        for rec in &records {
            let line = format(rec, "collector-host");
            for typed in ["HIV", "collapsed", "Osei", "Harbour", "psychiatric"] {
                assert!(!line.contains(typed), "{typed} reached the SIEM: {line}");
            }
            assert!(line.contains(WITHHELD), "{line}");
            assert!(
                line.contains("\"7\"") || line.contains("Patient/7"),
                "the patient id goes: {line}"
            );
            assert!(
                line.contains(&rec.hash.to_hex()),
                "the hash ties it to the collector's copy"
            );
        }
        assert!(format(&records[0], "h").contains("ETREAT"), "codes go");
        // The ordinary detail of other events is kept.
        let read = seal_all(GENESIS, [chart_read(1, "desk-1", 7, Some("3 results"))]);
        assert!(format(&read[0], "h").contains("3 results"));
    }
}
