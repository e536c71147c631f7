//! Exports and imports of records: FHIR R4 in the age format, each export accounted for as
//! a disclosure (HIPAA 164.528), each import validated whole and written in one transaction.

mod archive;
pub(crate) mod fhir;
mod foreign;
mod import;
mod signing;

use std::io::Write;
use std::path::{Path, PathBuf};

use chartroom_audit::format_time;
use rusqlite::{params, Connection};
use serde::Serialize;
use serde_json::{json, Value};

use crate::access::chart_access;
use crate::audit::Op;
use crate::chart::load_full_chart;
use crate::chart::patient as patients;
use crate::ids::*;
use crate::roles::Permission;
use crate::{CoreError, Session};

pub use archive::{Destination, ImportKey, KeyInfo};
pub use fhir::{Counts, RESOURCE_TYPES};
pub(crate) use import::origins;
pub use import::{
    ImportOptions, ImportOrigin, ImportReport, ImportedPatient, PatientChoice, PatientMatch,
    Skipped,
};

/// Which patients an export holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every patient of the clinic the exporter may see.
    All,
    /// These patients (one patient gives a FHIR Bundle, more a Bulk Data archive).
    Patients(Vec<i64>),
}

/// What to export, to whom and why.
#[derive(Debug)]
pub struct ExportRequest {
    pub selection: Selection,
    pub destination: Destination,
    /// Who receives it, in words ("Dr. Okafor, Riverside Cardiology").
    pub recipient_name: Option<String>,
    /// Why the records leave the clinic (required: it is part of the accounting).
    pub purpose: String,
}

/// A patient the export left out, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct LeftOut {
    pub patient_id: PatientId,
    pub reason: String,
}

/// What an export wrote.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ExportReport {
    /// Its number in the accounting of disclosures.
    pub disclosure_id: i64,
    /// `bundle` (one patient, a FHIR Bundle) or `bulk-ndjson` (a tar of NDJSON files).
    pub format: String,
    pub patients: u64,
    #[cfg_attr(feature = "ts", ts(type = "Record<string, number>"))]
    pub resources: Counts,
    /// Restricted patients the exporter may not see.
    pub left_out: Vec<LeftOut>,
    /// Unsigned drafts are not part of the record and are not exported.
    pub drafts_left_out: u64,
    /// True when the exporter's keys do not open clinical content (an administrator): the
    /// export then holds demographics only. A whole clinic with its clinical record takes a
    /// physician, a nurse or the recovery key.
    pub clinical_left_out: bool,
    pub recipient: String,
    pub keys: Vec<KeyInfo>,
    /// Size and SHA-256 of the encrypted file.
    pub bytes: u64,
    pub sha256: String,
}

/// One export as the accounting of disclosures lists it for a patient.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Disclosure {
    pub id: i64,
    pub time: String,
    pub by: String,
    pub role: Option<String>,
    pub recipient: String,
    pub keys: Vec<KeyInfo>,
    pub purpose: String,
    pub format: String,
    /// How many patients the same export held in all.
    pub patients_in_export: u64,
    /// This patient's resources in it, by type.
    #[cfg_attr(feature = "ts", ts(type = "Record<string, number>"))]
    pub resources: Counts,
    pub sha256: String,
}

/// Progress of a long export: patients written so far, of how many.
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

const NOT_NAMED: &str = "(recipient not named)";

impl Session {
    /// Exports records, encrypted, to `out`, and records the disclosure. The accounting and
    /// the audit entries (one for the export, one per patient) commit only once the whole
    /// file has been written; a failure leaves no disclosure behind.
    pub fn export_records(
        &mut self,
        request: &ExportRequest,
        out: &mut dyn Write,
        progress: Progress<'_>,
    ) -> Result<ExportReport, CoreError> {
        let purpose = crate::chart::input::bounded_text("purpose of the export", &request.purpose, 500)
            .map_err(|_| {
                CoreError::InvalidInput(
                    "Say why the records are exported (for example \"continuing care at Riverside Cardiology\"): the purpose is part of the accounting of disclosures."
                        .into(),
                )
            })?;
        let recipient = match request.recipient_name.as_deref().map(str::trim) {
            Some(name) if !name.is_empty() => {
                crate::chart::input::bounded_text("recipient", name, 200)?
            }
            _ => NOT_NAMED.to_owned(),
        };
        let source = fhir::source_uri(&self.vault_id()?);
        let (encryptor, keys) = archive::encryptor(&request.destination)?;
        let role = self.role();
        // An export carries what the exporter's keys open; reading is never delegated.
        // And what the role reads: a session that made the clinical key for others keeps
        // no copy, and this check stands even if it did.
        let reads = self.signed_in().recovery || self.can(Permission::ReadClinical);
        let clinical = reads && crate::keys::lock(&self.keys).holds_clinical();
        // Why and to whom are the audit trail's free text: sealed to the auditors and
        // administrators in the accounting and in every entry (the file itself carries the
        // purpose in clear, to its recipient).
        let (sealed_purpose, sealed_recipient) = if self.can(Permission::ExportRecords) {
            let mut keys = crate::keys::lock(&self.keys);
            (keys.seal_text(&purpose)?, keys.seal_text(&recipient)?)
        } else {
            Default::default()
        };
        let mut op = Op::execute("records.export");
        op.reason = (!sealed_purpose.is_empty()).then(|| sealed_purpose.clone());
        // The vault's own key signs what leaves it, so a receiving clinic can tell this
        // vault's files from ones made to look like them.
        let signer = self.device.signing_key().clone();
        self.run(Permission::ExportRecords, op, false, |tx, op, ctx| {
            let wanted: Vec<i64> = match &request.selection {
                Selection::All => tx
                    .prepare("SELECT id FROM patients ORDER BY id")?
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<_, _>>()?,
                Selection::Patients(ids) => {
                    // Each patient once, in the order asked, however often named.
                    let mut seen = std::collections::HashSet::new();
                    ids.iter().copied().filter(|id| seen.insert(*id)).collect()
                }
            };
            if wanted.is_empty() {
                return Err(CoreError::InvalidInput(
                    "There are no patients to export.".into(),
                ));
            }
            let mut included = Vec::new();
            let mut left_out = Vec::new();
            for id in wanted {
                let patient = patients::get(tx, id)?;
                if chart_access(tx, &patient, ctx.actor, ctx.now)?.is_some() {
                    included.push(patient);
                } else {
                    left_out.push(LeftOut {
                        patient_id: PatientId(id),
                        reason: "restricted to their care team".into(),
                    });
                }
            }
            if included.is_empty() {
                return Err(CoreError::Forbidden(crate::error::Denial::Restricted {
                    can_break_glass: role.allows(Permission::BreakGlass),
                }));
            }
            let single = matches!(request.selection, Selection::Patients(_)) && included.len() == 1;
            let total = included.len() as u64;
            let mut tally = archive::Tally::new(&mut *out);
            let mut stream = encryptor.wrap_output(&mut tally)?;
            let mut counts = Counts::new();
            let mut per_patient = Vec::new();
            let mut drafts = 0u64;
            if single {
                let patient = included.remove(0);
                let (resources, d) = chart_export(tx, patient, &source, ctx, clinical)?;
                drafts += d;
                let mut mine = Counts::new();
                for r in &resources {
                    fhir::count(&mut mine, r["resourceType"].as_str().unwrap_or_default());
                }
                let mut digest = signing::ExportDigest::default();
                for r in &resources {
                    digest.add(r);
                }
                let signature = signing::signature_element(
                    &signer,
                    &digest.message(&source),
                    &format_time(ctx.now),
                );
                let bundle = json!({
                    "resourceType": "Bundle",
                    "meta": {"source": source},
                    "type": "collection",
                    "timestamp": format_time(ctx.now),
                    "entry": resources.into_iter().map(|r| {
                        let url = format!(
                            "{}/{}/{}",
                            fhir::base_url(&source),
                            r["resourceType"].as_str().unwrap_or_default(),
                            r["id"].as_str().unwrap_or_default()
                        );
                        json!({"fullUrl": url, "resource": r})
                    }).collect::<Vec<_>>(),
                    "signature": signature,
                });
                serde_json::to_writer(&mut stream, &bundle)
                    .map_err(|e| CoreError::from(std::io::Error::other(e)))?;
                progress(1, 1);
                merge(&mut counts, &mine);
                per_patient.push((bundle_patient_id(&bundle), mine));
            } else {
                let mut bulk = archive::Bulk::new(&mut stream, ctx.now.timestamp().max(0) as u64)
                    .with_base(fhir::base_url(&source));
                let mut digest = signing::ExportDigest::default();
                // A clinician's Schedule, a signer's Practitioner and the clinic's Organization
                // are shared by every patient who names them: each goes in once.
                let mut shared = std::collections::HashSet::new();
                for (done, patient) in included.into_iter().enumerate() {
                    let id = patient.id;
                    let (resources, d) = chart_export(tx, patient, &source, ctx, clinical)?;
                    drafts += d;
                    let mut mine = Counts::new();
                    for r in &resources {
                        // A clinician's Schedule is shared by every patient booked with them.
                        let kind = r["resourceType"].as_str().unwrap_or_default();
                        if matches!(kind, "Schedule" | "Practitioner" | "Organization")
                            && !shared.insert(format!(
                                "{kind}/{}",
                                r["id"].as_str().unwrap_or_default()
                            ))
                        {
                            continue;
                        }
                        fhir::count(&mut mine, r["resourceType"].as_str().unwrap_or_default());
                        digest.add(r);
                        bulk.push(r)?;
                    }
                    merge(&mut counts, &mine);
                    per_patient.push((id.get(), mine));
                    progress(done as u64 + 1, total);
                }
                bulk.finish(json!({
                    "transactionTime": format_time(ctx.now),
                    "request": format!("{source}:export"),
                    "requiresAccessToken": false,
                    "error": [],
                    "extension": {"chartroom": {
                        "source": source,
                        "purpose": purpose,
                        "signature": signing::signature_element(
                            &signer,
                            &digest.message(&source),
                            &format_time(ctx.now),
                        ),
                    }},
                }))?;
            }
            stream.finish()?;
            let (_, bytes, sha256) = tally.finish();
            out.flush()?;

            let format = if single { "bundle" } else { "bulk-ndjson" };
            tx.execute(
                "INSERT INTO disclosures (time, actor, role, recipient, keys, purpose, format, patients,
                    resources, left_out, bytes, sha256)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    format_time(ctx.now),
                    ctx.actor.name,
                    ctx.actor.role.map(|r| r.as_str()),
                    sealed_recipient,
                    serde_json::to_string(&keys).unwrap_or_default(),
                    sealed_purpose,
                    format,
                    per_patient.len() as i64,
                    serde_json::to_string(&counts).unwrap_or_default(),
                    left_out.len() as i64,
                    bytes as i64,
                    sha256,
                ],
            )?;
            let disclosure_id = tx.last_insert_rowid();
            let key_words = key_words(&keys);
            for (patient_id, mine) in &per_patient {
                tx.execute(
                    "INSERT INTO disclosure_patients (disclosure_id, patient_id, resources) VALUES (?1, ?2, ?3)",
                    params![disclosure_id, patient_id, serde_json::to_string(mine).unwrap_or_default()],
                )?;
                let mut each = Op::read("patient.export")
                    .patient(*patient_id)
                    .detail(format!(
                        "disclosure {disclosure_id} to {sealed_recipient} ({key_words}): {}",
                        counts_words(mine)
                    ));
                each.purpose = ctx.actor.role.map(|r| r.purpose_of_use().to_owned());
                each.reason = Some(sealed_purpose.clone());
                ctx.also(each);
            }
            *op = op.clone().object("Disclosure", disclosure_id);
            op.detail = Some(format!(
                "{format} to {sealed_recipient} ({key_words}): {} patients, {} left out (restricted); {}",
                per_patient.len(),
                left_out.len(),
                counts_words(&counts)
            ));
            Ok(ExportReport {
                disclosure_id,
                format: format.into(),
                patients: per_patient.len() as u64,
                resources: counts,
                left_out,
                drafts_left_out: drafts,
                clinical_left_out: !clinical,
                recipient: recipient.clone(),
                keys: keys.clone(),
                bytes,
                sha256,
            })
        })
    }

    /// [`Session::export_records`] into a new file at `path`. The file appears under its
    /// name only once it is complete and accounted for; until then it is written, already
    /// encrypted, under a hidden temporary name in the same folder and removed on failure.
    pub fn export_to_file(
        &mut self,
        request: &ExportRequest,
        path: &Path,
        progress: Progress<'_>,
    ) -> Result<ExportReport, CoreError> {
        if path.exists() {
            return Err(CoreError::Conflict(format!(
                "{} already exists; choose another file name.",
                path.display()
            )));
        }
        let partial = partial_path(path)?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(&partial)?;
        let mut writer = std::io::BufWriter::new(file);
        let result = self
            .export_records(request, &mut writer, progress)
            .and_then(|report| {
                let file = writer
                    .into_inner()
                    .map_err(|e| CoreError::from(e.into_error()))?;
                file.sync_all()?;
                Ok(report)
            });
        match result {
            Ok(report) => {
                // Accounted for already: a failed rename leaves the file under its
                // temporary name, and the error says where.
                std::fs::rename(&partial, path).map_err(|e| {
                    CoreError::InvalidInput(format!(
                        "The export was made and recorded, but could not be renamed to {} ({e}); it is at {}.",
                        path.display(),
                        partial.display()
                    ))
                })?;
                Ok(report)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                Err(e)
            }
        }
    }

    /// Imports an export from another Chartroom vault. The whole file is decrypted and
    /// checked before anything is written; then everything is written in one transaction.
    /// Resources already imported from the same source are skipped, so a second import of
    /// the same file adds nothing.
    pub fn import_records(
        &mut self,
        input: impl std::io::Read,
        key: &ImportKey,
    ) -> Result<ImportReport, CoreError> {
        self.import_with(input, key, &ImportOptions::default())
    }

    /// What importing the file would do, per resource type (added, already here), with
    /// every check a real import makes; nothing is written (the trail records the dry run).
    pub fn preview_import(
        &mut self,
        input: impl std::io::Read,
        key: &ImportKey,
    ) -> Result<ImportReport, CoreError> {
        self.import_with(
            input,
            key,
            &ImportOptions {
                dry_run: true,
                ..ImportOptions::default()
            },
        )
    }

    /// An import with its options: a dry run, and what to do with patients who look like
    /// patients here (without a choice for each, such an import stops and names them).
    pub fn import_with(
        &mut self,
        input: impl std::io::Read,
        key: &ImportKey,
        options: &ImportOptions,
    ) -> Result<ImportReport, CoreError> {
        // The role is checked before the file is even opened.
        self.require_for(Permission::ImportRecords, Op::create("records.import"))?;
        self.touch()?;
        // Written without being readable: sealed to the clinical compartment's public key.
        self.prepare_clinical_writes()?;
        let own = fhir::source_uri(&self.vault_id()?);
        let today = self.clock.now().date_naive();
        let checked = archive::open(input, key)
            .and_then(|plain| import::parse(&plain, today, options.source.as_deref()))
            .and_then(|parsed| {
                if parsed.source == own {
                    Err(CoreError::InvalidFile(
                        "This export was made by this same vault; importing it here would copy its charts. Nothing was imported."
                            .into(),
                    ))
                } else {
                    Ok(parsed)
                }
            });
        let parsed = match checked {
            Ok(parsed) => parsed,
            Err(e) => {
                // Refused before anything was written; the attempt is still on record.
                let failed = Op::create("records.import")
                    .outcome(chartroom_audit::Outcome::Failed)
                    .detail(format!("refused: {}", e.code()));
                let _ = self.record(&failed);
                return Err(e);
            }
        };
        let mut parsed = parsed;
        parsed.own_mrn_system = format!("{own}:mrn");
        import::write(self, parsed, options)
    }

    /// The accounting of disclosures for one patient: every export that held their record.
    /// A restricted chart's disclosures (whose purposes and recipients say much about it)
    /// are closed as the chart is, except to the admin and the auditor, whose work the
    /// accounting is.
    pub fn disclosures(
        &mut self,
        patient_id: impl Into<PatientId>,
    ) -> Result<Vec<Disclosure>, CoreError> {
        let patient_id = patient_id.into().get();
        let oversight = matches!(self.role(), crate::Role::Admin | crate::Role::Auditor);
        self.run(
            Permission::ReadDisclosures,
            Op::read("disclosures.read").patient(patient_id),
            !oversight,
            |tx, op, _| {
                let list = disclosures_of(tx, patient_id)?;
                op.detail = Some(format!("{} disclosures", list.len()));
                Ok(list)
            },
        )
        .map(|mut list| {
            let keys = crate::keys::lock(&self.keys);
            for d in &mut list {
                d.purpose = keys.reveal(&d.purpose);
                d.recipient = keys.reveal(&d.recipient);
            }
            list
        })
    }
}

/// The checks an import makes before writing, for the fuzz targets.
#[cfg(any(test, feature = "fuzz"))]
pub(crate) fn parse_for_fuzzing(
    plain: &[u8],
    today: chrono::NaiveDate,
) -> Result<usize, CoreError> {
    import::parse(plain, today, None).map(|p| p.patient_count())
}

fn bundle_patient_id(bundle: &Value) -> i64 {
    bundle["entry"][0]["resource"]["id"]
        .as_str()
        .and_then(|id| fhir::number_of(id, "p"))
        .unwrap_or_default()
}

fn merge(total: &mut Counts, part: &Counts) {
    for (k, v) in part {
        *total.entry(k.clone()).or_default() += v;
    }
}

pub(crate) fn counts_words(counts: &Counts) -> String {
    if counts.is_empty() {
        return "no resources".into();
    }
    counts
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn key_words(keys: &[KeyInfo]) -> String {
    keys.iter()
        .map(|k| match &k.fingerprint {
            Some(f) => format!("age key {f}"),
            None => "passphrase".into(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One chart's resources and how many drafts were left out.
fn chart_export(
    conn: &Connection,
    patient: crate::Patient,
    source: &str,
    ctx: &crate::session::Ctx<'_>,
    clinical: bool,
) -> Result<(Vec<Value>, u64), CoreError> {
    let now = ctx.now;
    let patient_id = patient.id.get();
    let (at, by): (Option<String>, Option<String>) = conn
        .prepare_cached("SELECT allergy_state_at, allergy_state_by FROM patients WHERE id = ?1")?
        .query_row([patient.id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let mut chart = load_full_chart(conn, patient, now.date_naive(), clinical)?;
    // Appointments travel with the clinical record (their reasons are patient data).
    if clinical {
        chart.appointments = Some(crate::chart::appointment::for_export(
            conn, ctx.actor, now, patient_id,
        )?);
    }
    let drafts = chart
        .notes
        .iter()
        .flatten()
        .filter(|n| n.status != "signed")
        .count() as u64;
    let extras = fhir::ChartExtras {
        allergy_state_at: at,
        allergy_state_by: by,
    };
    Ok((fhir::chart_resources(&chart, &extras, source), drafts))
}

fn disclosures_of(conn: &Connection, patient_id: i64) -> Result<Vec<Disclosure>, CoreError> {
    let mut stmt = conn.prepare(
        "SELECT d.id, d.time, d.actor, d.role, d.recipient, d.keys, d.purpose, d.format, d.patients,
                p.resources, d.sha256
         FROM disclosure_patients p JOIN disclosures d ON d.id = p.disclosure_id
         WHERE p.patient_id = ?1 ORDER BY d.id",
    )?;
    let rows = stmt.query_map([patient_id], |r| {
        let keys: String = r.get(5)?;
        let resources: String = r.get(9)?;
        Ok(Disclosure {
            id: r.get(0)?,
            time: r.get(1)?,
            by: r.get(2)?,
            role: r.get(3)?,
            recipient: r.get(4)?,
            keys: serde_json::from_str(&keys).unwrap_or_default(),
            purpose: r.get(6)?,
            format: r.get(7)?,
            patients_in_export: r.get::<_, i64>(8)?.max(0) as u64,
            resources: serde_json::from_str(&resources).unwrap_or_default(),
            sha256: r.get(10)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Where an export is written until it is complete: hidden, next to the target.
fn partial_path(path: &Path) -> Result<PathBuf, CoreError> {
    let name = path.file_name().ok_or_else(|| {
        CoreError::InvalidInput(format!("{} is not a file name.", path.display()))
    })?;
    let mut hidden = std::ffi::OsString::from(".");
    hidden.push(name);
    hidden.push(".partial");
    Ok(path.with_file_name(hidden))
}

#[cfg(test)]
mod tests;
