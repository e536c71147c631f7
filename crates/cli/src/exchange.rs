//! Records leaving and arriving: `export`, `import` and `disclosures`. Parsing and printing
//! only; core gates, encrypts, checks and accounts.

use std::path::PathBuf;

use chartroom_core::{
    Counts, Destination, ExportRequest, ImportKey, ImportOptions, PatientChoice, Selection, Session,
};
use clap::Args;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::secrets::Inputs;
use crate::{exit, Failure, Output};

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A patient to export (repeat for several; one patient gives a FHIR Bundle).
    #[arg(
        long = "patient",
        value_name = "ID",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    patients: Vec<i64>,
    /// Every patient you may see, as FHIR Bulk Data NDJSON in one archive.
    #[arg(long)]
    all: bool,
    /// Encrypt to this age public key (age1…, from `age-keygen`); repeat for several.
    #[arg(
        long = "recipient",
        value_name = "AGE1…",
        required_unless_present = "passphrase",
        conflicts_with = "passphrase"
    )]
    recipients: Vec<String>,
    /// Encrypt to a passphrase instead: given here, or from CHARTROOM_EXPORT_PASSPHRASE,
    /// standard input (with --password-stdin, the line after the password) or a prompt.
    #[arg(long, value_name = "PASSPHRASE", num_args = 0..=1, default_missing_value = "")]
    passphrase: Option<String>,
    /// Why the records leave the clinic (recorded in the accounting of disclosures).
    #[arg(long)]
    purpose: String,
    /// Who receives them, in words ("Dr. Okafor, Riverside Cardiology").
    #[arg(long, value_name = "NAME")]
    to: Option<String>,
    /// The file to write (it must not exist yet).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file to import: a Chartroom export (.age), or FHIR R4 from another system (a
    /// Bundle, NDJSON or a Bulk Data tar archive), plain or age-encrypted.
    file: PathBuf,
    /// The age identity file whose key the export was encrypted to (from `age-keygen`).
    /// Not needed for a plain FHIR file.
    #[arg(long, value_name = "KEYFILE", conflicts_with = "passphrase")]
    identity: Option<PathBuf>,
    /// The export's passphrase: given here, or from CHARTROOM_EXPORT_PASSPHRASE, standard
    /// input (with --password-stdin) or a prompt.
    #[arg(long, value_name = "PASSPHRASE", num_args = 0..=1, default_missing_value = "")]
    passphrase: Option<String>,
    /// Check the whole file and print what the import would add and what is already here,
    /// per resource type; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// For a patient of the file who looks like a patient here (the import stops and names
    /// them): `ID=PATIENT_ID`, the same person, their records join that chart; `ID=new`,
    /// someone else. ID is the patient's id in the file (`p3`). Repeat for several.
    #[arg(long = "match", value_name = "ID=PATIENT_ID|new")]
    matches: Vec<String>,
    /// For a file from another system that does not say where it comes from (no
    /// meta.source, no identifier system on its patients): that system, as a URI
    /// (`https://ehr.example.org`). A second import of its records adds nothing.
    #[arg(long, value_name = "URI")]
    source: Option<String>,
}

/// `--match p3=12` or `--match p3=new`.
fn parse_matches(given: &[String]) -> Result<ImportOptions, Failure> {
    let mut options = ImportOptions::default();
    for m in given {
        let (id, choice) = m.split_once('=').ok_or_else(|| {
            Failure::usage(format!(
                "--match takes ID=PATIENT_ID or ID=new (for example p3=12), not \"{m}\"."
            ))
        })?;
        let choice = match choice.trim() {
            c if c.eq_ignore_ascii_case("new") => PatientChoice::New,
            c => PatientChoice::Same(c.parse().map_err(|_| {
                Failure::usage(format!(
                    "--match {id}=… takes a patient id here or \"new\", not \"{c}\"."
                ))
            })?),
        };
        if options
            .matches
            .insert(id.trim().to_owned(), choice)
            .is_some()
        {
            return Err(Failure::usage(format!("--match names {id} twice.")));
        }
    }
    Ok(options)
}

fn passphrase(inputs: &mut Inputs, given: &str, confirm: bool) -> Result<SecretString, Failure> {
    if !given.is_empty() {
        crate::secrets::warn_visible("passphrase", crate::secrets::ENV_EXPORT_PASSPHRASE);
        return Ok(SecretString::from(given.to_owned()));
    }
    inputs.export_passphrase(confirm)
}

fn total(counts: &Counts) -> u64 {
    counts.values().sum()
}

fn counts_text(counts: &Counts) -> String {
    counts
        .iter()
        .map(|(k, v)| format!("  {k:<22} {v:>8}"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn export(
    session: &mut Session,
    args: &ExportArgs,
    inputs: &mut Inputs,
    quiet: bool,
) -> Result<Output, Failure> {
    let destination = match &args.passphrase {
        Some(given) => Destination::Passphrase(passphrase(inputs, given, true)?),
        None => Destination::Recipients(args.recipients.clone()),
    };
    let request = ExportRequest {
        selection: if args.all {
            Selection::All
        } else {
            Selection::Patients(args.patients.clone())
        },
        destination,
        recipient_name: args.to.clone(),
        purpose: args.purpose.clone(),
    };
    let mut shown = false;
    // Progress only for a person at a terminal, never into a script's log.
    let quiet = quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr());
    let report = session.export_to_file(&request, &args.out, &mut |done, all| {
        if !quiet && all > 1 {
            eprint!("\rExporting: {done} of {all} patients");
            shown = true;
        }
    })?;
    if shown {
        eprintln!();
    }
    let mut doc = serde_json::to_value(&report).unwrap_or(Value::Null);
    doc["out"] = json!(args.out);
    let keys = report
        .keys
        .iter()
        .map(|k| match &k.fingerprint {
            Some(f) => format!("age key {f}"),
            None => "a passphrase".into(),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let mut text = format!(
        "Exported {} patient{} ({} resources, {}) to {}.\nEncrypted to {keys}.\nRecorded as disclosure {} to {}.\n\n{}",
        report.patients,
        if report.patients == 1 { "" } else { "s" },
        total(&report.resources),
        if report.format == "bundle" { "a FHIR R4 Bundle" } else { "FHIR Bulk Data NDJSON in a tar" },
        args.out.display(),
        report.disclosure_id,
        report.recipient,
        counts_text(&report.resources),
    );
    if !report.left_out.is_empty() {
        let ids: Vec<String> = report
            .left_out
            .iter()
            .map(|l| l.patient_id.to_string())
            .collect();
        text.push_str(&format!(
            "\n\nLeft out: {} restricted patient{} you are not allowed to see (id {}).",
            ids.len(),
            if ids.len() == 1 { "" } else { "s" },
            ids.join(", ")
        ));
    }
    if report.drafts_left_out > 0 {
        text.push_str(&format!(
            "\nUnsigned drafts are not part of the record and were not exported ({}).",
            report.drafts_left_out
        ));
    }
    if report.clinical_left_out {
        text.push_str(
            "\nDemographics only: your role's keys do not open clinical content. An export with the clinical record takes a physician, a nurse or the recovery key (--recovery-key).",
        );
    }
    Ok(Output::new(doc, text))
}

pub fn import(
    session: &mut Session,
    args: &ImportArgs,
    inputs: &mut Inputs,
) -> Result<Output, Failure> {
    let key = match (&args.identity, &args.passphrase) {
        (_, Some(given)) => ImportKey::Passphrase(passphrase(inputs, given, false)?),
        (Some(path), None) => {
            let text = std::fs::read_to_string(path).map_err(|e| Failure {
                code: "no_input",
                message: format!("Cannot read the identity file {}: {e}.", path.display()),
                exit: exit::NO_INPUT,
                detail: None,
            })?;
            ImportKey::Identities(SecretString::from(text))
        }
        // A plain FHIR file needs no key; an encrypted one is refused with what to give.
        (None, None) => ImportKey::NotGiven,
    };
    let file = std::fs::File::open(&args.file).map_err(|e| Failure {
        code: "no_input",
        message: format!("Cannot open {}: {e}.", args.file.display()),
        exit: exit::NO_INPUT,
        detail: None,
    })?;
    // An encrypted file without its key is a usage mistake (64), as it always was.
    if matches!(key, ImportKey::NotGiven) {
        let mut head = [0u8; 32];
        let n = std::io::Read::read(&mut &file, &mut head).unwrap_or(0);
        if head[..n].starts_with(b"age-encryption.org/") || head[..n].starts_with(b"-----BEGIN AGE")
        {
            return Err(Failure::usage(
                "This file is encrypted: give the key it was encrypted to (--identity KEYFILE) or its passphrase (--passphrase).",
            ));
        }
        std::io::Seek::rewind(&mut &file).map_err(|e| Failure {
            code: "no_input",
            message: format!("Cannot read {}: {e}.", args.file.display()),
            exit: exit::NO_INPUT,
            detail: None,
        })?;
    }
    let mut options = parse_matches(&args.matches)?;
    options.dry_run = args.dry_run;
    options.source = args.source.clone();
    let report = session.import_with(file, &key, &options)?;
    let doc = serde_json::to_value(&report).unwrap_or(Value::Null);
    let mut text = format!(
        "{} from {}: {} new patient{}, {} already here.\n",
        if report.dry_run {
            "Dry run, nothing written. Importing would bring"
        } else {
            "Imported"
        },
        report.source,
        report.patients_added,
        if report.patients_added == 1 { "" } else { "s" },
        report.patients_already_here,
    );
    text.push_str(&match &report.source_key {
        None if report.foreign => {
            "FHIR from another system: its items are marked as recorded there.\n".to_owned()
        }
        Some(key) => {
            format!("Signed there by the vault key {key}, the one this vault knows it by.\n")
        }
        None => {
            "Not signed (made before exports were signed): its source is as it says, unchecked.\n"
                .to_owned()
        }
    });
    if report.added.is_empty() {
        text.push_str("Nothing new: everything in this file was imported before.\n");
    } else {
        text.push_str(&format!(
            "{}:\n{}\n",
            if report.dry_run { "Would add" } else { "Added" },
            counts_text(&report.added)
        ));
    }
    if !report.already_here.is_empty() {
        text.push_str(&format!(
            "Already here (skipped): {} resources.\n",
            total(&report.already_here)
        ));
    }
    if report.patients_matched > 0 {
        text.push_str(&format!(
            "Joined to charts here, as matched: {} patient{}.\n",
            report.patients_matched,
            if report.patients_matched == 1 {
                ""
            } else {
                "s"
            }
        ));
    }
    if !report.skipped.is_empty() {
        text.push_str(&format!(
            "{} (Chartroom has no place for them):\n",
            if report.dry_run {
                "Would leave out"
            } else {
                "Left out"
            }
        ));
        for s in &report.skipped {
            text.push_str(&format!(
                "  {} {}: {}\n",
                s.count, s.resource_type, s.reason
            ));
        }
    }
    if !report.warnings.is_empty() {
        text.push_str("Left out of records that were kept:\n");
        for w in &report.warnings {
            text.push_str(&format!("  {w}\n"));
        }
    }
    for p in &report.patients {
        text.push_str(&if report.dry_run && p.new {
            format!("  {}: a new patient, {} resources\n", p.source_id, p.added)
        } else if report.dry_run {
            format!(
                "  {}: already here as patient {} (MRN {}), {} resources to add\n",
                p.source_id, p.id, p.mrn, p.added
            )
        } else {
            format!(
                "  patient {} (MRN {}) from {}: {}{} resources added\n",
                p.id,
                p.mrn,
                p.source_id,
                if p.new { "new, " } else { "" },
                p.added
            )
        });
    }
    Ok(Output::new(doc, text))
}

pub fn disclosures(session: &mut Session, patient: i64) -> Result<Output, Failure> {
    let list = session.disclosures(patient)?;
    let doc = json!({"patient": patient, "disclosures": list});
    let mut text = if list.is_empty() {
        format!("No disclosures: patient {patient}'s record has not been exported.")
    } else {
        format!("Accounting of disclosures for patient {patient}:\n")
    };
    for d in &list {
        let keys = d
            .keys
            .iter()
            .map(|k| k.fingerprint.clone().unwrap_or_else(|| "passphrase".into()))
            .collect::<Vec<_>>()
            .join(", ");
        text.push_str(&format!(
            "\n#{}  {}  by {}\n  to:      {} ({keys})\n  purpose: {}\n  records: {}\n",
            d.id,
            d.time,
            d.by,
            d.recipient,
            d.purpose,
            d.resources
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(Output::new(doc, text))
}
