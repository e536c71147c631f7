//! `chartroom audit`, `chartroom alerts` and `chartroom settings`.

use std::io::Write;
use std::path::PathBuf;

use chartroom_core::{
    format_time, AuditFilter, AuditLine, CoreError, Outcome, PatientNamed, Session, SETTING_KEYS,
};
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Value};

use crate::{exit, Failure, Output};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain and every signed checkpoint. Exits 0 when intact, 65 (with the
    /// first bad sequence) when not.
    Verify,
    /// List entries, oldest first.
    List(FilterArgs),
    /// Write entries as FHIR R4 AuditEvent resources, one JSON per line (NDJSON).
    Export {
        /// The output format.
        #[arg(long, value_enum, default_value_t = Format::Fhir)]
        format: Format,
        /// Write to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        filter: FilterArgs,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// FHIR R4 AuditEvent, NDJSON.
    Fhir,
}

#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Only entries about this patient: an MRN as written on the chart (seven digits,
    /// leading zeros kept: 0000018) when one is on record, otherwise a patient id.
    #[arg(long, value_name = "MRN|ID")]
    patient: Option<String>,
    /// Only entries by this user.
    #[arg(long = "by", alias = "actor", value_name = "NAME")]
    by: Option<String>,
    /// Only this event type (e.g. chart.read, session.unlock, break_glass).
    #[arg(long, value_name = "TYPE")]
    event: Option<String>,
    /// Only this outcome: success, denied or failed.
    #[arg(long, value_name = "OUTCOME")]
    outcome: Option<String>,
    /// From this time on (RFC 3339, or a date: YYYY-MM-DD).
    #[arg(long, alias = "from", value_name = "TIME")]
    since: Option<String>,
    /// Before this time (RFC 3339, or a date: YYYY-MM-DD, meaning its start).
    #[arg(long, alias = "to", value_name = "TIME")]
    until: Option<String>,
    /// At most this many, the newest.
    #[arg(long, value_name = "N")]
    limit: Option<u32>,
}

fn parse_when(flag: &str, text: &str) -> Result<DateTime<Utc>, Failure> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        if let Some(t) = d.and_hms_opt(0, 0, 0) {
            return Ok(t.and_utc());
        }
    }
    Err(Failure::from(CoreError::InvalidInput(format!(
        "--{flag} takes a date (2026-03-02) or an RFC 3339 time (2026-03-02T14:00:00Z)."
    ))))
}

impl FilterArgs {
    fn to_filter(&self) -> Result<AuditFilter, Failure> {
        let outcome = match self.outcome.as_deref() {
            None => None,
            Some(o) => Some(o.parse::<Outcome>().map_err(|_| {
                Failure::from(CoreError::InvalidInput(
                    "--outcome is one of: success, denied, failed.".into(),
                ))
            })?),
        };
        Ok(AuditFilter {
            patient: None,
            named: self.patient.clone().map(PatientNamed::MrnOrId),
            user: self.by.clone(),
            event: self.event.clone(),
            outcome,
            since: self
                .since
                .as_deref()
                .map(|t| parse_when("since", t))
                .transpose()?,
            until: self
                .until
                .as_deref()
                .map(|t| parse_when("until", t))
                .transpose()?,
            limit: self.limit,
        })
    }
}

fn line_json(line: &AuditLine) -> Value {
    let r = &line.record;
    let e = &r.entry;
    json!({
        "seq": e.seq,
        "time": format_time(e.time),
        "actor": e.actor,
        "actor_id": e.actor_id,
        "role": e.role,
        "device_id": e.device_id,
        "action": e.action.code(),
        "event": e.event,
        "outcome": e.outcome.as_str(),
        "patient_id": e.patient_id,
        "mrn": line.mrn,
        "object_type": e.object_type,
        "object_id": e.object_id,
        "purpose": e.purpose,
        "reason": e.reason,
        "detail": e.detail,
        "prev_hash": r.prev_hash.to_hex(),
        "hash": r.hash.to_hex(),
    })
}

pub fn audit(session: &mut Session, cmd: &AuditCommand, json: bool) -> Result<Output, Failure> {
    match cmd {
        AuditCommand::Verify => {
            let v = session.verify_audit()?;
            if v.ok {
                let mut text = format!(
                    "The audit trail is intact: {} entries, {} signed checkpoints.",
                    v.entries, v.checkpoints
                );
                if v.unsigned_tail > 0 {
                    text.push_str(&format!(
                        "\n{} after the last signed checkpoint {} held by the hash chain alone.",
                        if v.unsigned_tail == 1 {
                            "1 entry".to_owned()
                        } else {
                            format!("{} entries", v.unsigned_tail)
                        },
                        if v.unsigned_tail == 1 { "is" } else { "are" }
                    ));
                }
                Ok(Output::new(
                    json!({
                        "ok": true,
                        "entries": v.entries,
                        "head_seq": v.head_seq,
                        "checkpoints": v.checkpoints,
                        "unsigned_tail": v.unsigned_tail,
                    }),
                    text,
                ))
            } else {
                let seq = v.first_bad_seq.unwrap_or(0);
                let reason = v.reason.unwrap_or_default();
                Ok(Output {
                    json: json!({"ok": false, "first_bad_seq": seq, "reason": reason}),
                    text: format!(
                        "THE AUDIT TRAIL HAS BEEN ALTERED. First bad entry: {seq}.\n{reason}.\n\
                         Keep this vault as it is and tell the clinic's compliance officer; the collector's copy shows the original."
                    ),
                    exit: exit::DATA,
                })
            }
        }
        AuditCommand::List(args) => {
            // Streamed: a trail of a million entries never sits in memory.
            let filter = args.to_filter()?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let io = |e: std::io::Error| CoreError::Vault(chartroom_core::VaultError::Io(e));
            if json {
                write!(out, "{{\"entries\":[").map_err(io)?;
            } else {
                writeln!(
                    out,
                    "{:>7}  {:<27} {:<16} {:<11} {:<26} {:<8} {:<8} DETAIL",
                    "SEQ", "TIME", "USER", "ROLE", "EVENT", "OUTCOME", "PATIENT"
                )
                .map_err(io)?;
            }
            let mut first = true;
            session.audit_lines_each(&filter, |line| {
                if json {
                    if !first {
                        write!(out, ",").map_err(io)?;
                    }
                    write!(out, "{}", line_json(&line)).map_err(io)?;
                } else {
                    let e = &line.record.entry;
                    writeln!(
                        out,
                        "{:>7}  {:<27} {:<16} {:<11} {:<26} {:<8} {:<8} {}{}",
                        e.seq,
                        crate::records::clinic_zone().rfc3339(e.time),
                        e.actor,
                        e.role.as_deref().unwrap_or("-"),
                        e.event,
                        e.outcome.as_str(),
                        // The MRN, as the clinic names the patient; the id if none is on record.
                        line.mrn
                            .as_deref()
                            .or(e.patient_id.as_deref())
                            .unwrap_or("-"),
                        e.detail.as_deref().unwrap_or(""),
                        e.reason
                            .as_deref()
                            .map(|r| format!(" (reason: {r})"))
                            .unwrap_or_default(),
                    )
                    .map_err(io)?;
                }
                first = false;
                Ok(())
            })?;
            if json {
                writeln!(out, "]}}").map_err(io)?;
            }
            out.flush().map_err(io)?;
            Ok(Output::new(Value::Null, ""))
        }
        AuditCommand::Export {
            format: Format::Fhir,
            out,
            filter,
        } => {
            let filter = filter.to_filter()?;
            match out {
                None => {
                    let stdout = std::io::stdout();
                    let mut lock = stdout.lock();
                    session.export_audit_fhir(&filter, &mut lock)?;
                    lock.flush().ok();
                    Ok(Output::new(Value::Null, ""))
                }
                Some(path) => {
                    // Written beside the target and renamed into place, so a crash or a full
                    // disk never leaves half a file under the requested name.
                    let dir = path
                        .parent()
                        .filter(|p| !p.as_os_str().is_empty())
                        .map_or_else(|| PathBuf::from("."), PathBuf::from);
                    let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io_failure)?;
                    let n = {
                        let mut w = std::io::BufWriter::new(tmp.as_file_mut());
                        let n = session.export_audit_fhir(&filter, &mut w)?;
                        w.flush().map_err(io_failure)?;
                        n
                    };
                    tmp.as_file().sync_all().map_err(io_failure)?;
                    tmp.persist(path).map_err(|e| io_failure(e.error))?;
                    Ok(Output::new(
                        json!({"written": n, "out": path, "format": "fhir-r4-auditevent-ndjson"}),
                        format!("Wrote {n} AuditEvent resources to {}.", path.display()),
                    ))
                }
            }
        }
    }
}

fn io_failure(e: std::io::Error) -> Failure {
    Failure {
        code: if e.raw_os_error() == Some(28) {
            "disk_full"
        } else {
            "io"
        },
        message: format!("Could not write the export: {e}."),
        exit: exit::IO,
        detail: None,
    }
}

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// List open alerts, newest first (with --all, acknowledged ones too).
    List {
        #[arg(long)]
        all: bool,
    },
    /// Acknowledge an alert with a note saying what was found.
    Ack {
        id: i64,
        #[arg(long, value_name = "TEXT")]
        note: String,
    },
}

pub fn alerts(session: &mut Session, cmd: &AlertsCommand) -> Result<Output, Failure> {
    match cmd {
        AlertsCommand::List { all } => {
            let list = session.alerts(*all)?;
            let mut text = String::new();
            if list.is_empty() {
                text.push_str(if *all {
                    "No alerts."
                } else {
                    "No open alerts."
                });
            }
            for a in &list {
                text.push_str(&format!(
                    "#{:<5} {}  {:<17} {}{}\n",
                    a.id,
                    a.time,
                    a.rule,
                    a.summary,
                    match (&a.acknowledged_by, &a.note) {
                        (Some(by), Some(note)) => format!("\n       acknowledged by {by}: {note}"),
                        _ => String::new(),
                    }
                ));
            }
            Ok(Output::new(json!({"alerts": list}), text))
        }
        AlertsCommand::Ack { id, note } => {
            session.acknowledge_alert(*id, note)?;
            Ok(Output::new(
                json!({"alert": id, "acknowledged": true}),
                format!("Alert {id} acknowledged."),
            ))
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum SettingsCommand {
    /// Show the clinic's settings.
    Show,
    /// Change one setting.
    Set {
        /// idle_timeout_minutes, break_glass_minutes, alert_chart_burst_count,
        /// alert_chart_burst_minutes, alert_failed_unlocks, clinic_hours (07:30-18:00 or off),
        /// clinic_days (mon-fri), clinic_time_zone (an IANA name such as Europe/Berlin, or
        /// local), clinic_utc_offset (+01:00 or local; superseded by clinic_time_zone).
        key: String,
        value: String,
    },
}

pub fn settings(session: &mut Session, cmd: &SettingsCommand) -> Result<Output, Failure> {
    let settings = match cmd {
        SettingsCommand::Show => session.settings().clone(),
        SettingsCommand::Set { key, value } => session.set_setting(key, value)?,
    };
    let doc = serde_json::to_value(&settings).unwrap_or(Value::Null);
    let mut text = String::new();
    for key in SETTING_KEYS {
        let shown = match key {
            "clinic_utc_offset" => match settings.clinic_utc_offset_minutes {
                None => "local".to_owned(),
                Some(m) => format!(
                    "{}{:02}:{:02}",
                    if m < 0 { '-' } else { '+' },
                    m.abs() / 60,
                    m.abs() % 60
                ),
            },
            k => doc
                .get(k)
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .unwrap_or_default(),
        };
        text.push_str(&format!("{key:<26} {shown}\n"));
    }
    Ok(Output::new(json!({"settings": doc}), text))
}
