//! Import: a Chartroom export read back, checked whole, then written in one transaction.

use std::collections::{BTreeMap, HashMap, HashSet};

use chartroom_audit::format_time;
use chrono::NaiveDate;
use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;

use super::counts_words;
use super::fhir::{
    self, clip, count, invalid, number_of, valid_id, Counts, InAllergy, InEncounter,
    InImmunization, InLabReport, InLabResult, InMedication, InNote, InObservation, InProblem, Res,
    RESOURCE_TYPES,
};
use crate::access::CareTeamChanged;
use crate::audit::Op;
use crate::chart::allergy::{
    AllergyRecorded, AllergyResolved, NewAllergy, NoKnownAllergiesRecorded,
};
use crate::chart::appointment::{
    AppointmentBooked, AppointmentCancelled, AppointmentStatus, AppointmentStatusChanged,
};
use crate::chart::change::{self, apply, Change, RecordId, Stamp, Table};
use crate::chart::correction::{Corrected, EnteredInError};
use crate::chart::encounter::EncounterOpened;
use crate::chart::immunization::{
    ImmunizationEnteredInError, ImmunizationRecorded, NewImmunization,
};
use crate::chart::lab::{ReportAdded, ResultEnteredInError, ResultRecorded};
use crate::chart::medication::{MedicationStarted, MedicationStopped, NewMedication};
use crate::chart::note::{self, AddendumAdded, NoteDrafted, NoteKind, NoteSigned};
use crate::chart::patient::{self, Demographics, NewPatient, PatientRegistered};
use crate::chart::problem::{NewProblem, ProblemAdded, ProblemOutcome, ProblemResolved};
use crate::chart::vitals::VitalsRecorded;
use crate::ids::*;
use crate::roles::{Permission, Role};
use crate::{CoreError, Session};

/// One patient in an import report.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ImportedPatient {
    /// The patient's id in this vault.
    pub id: PatientId,
    pub mrn: String,
    /// The patient's id in the export.
    pub source_id: String,
    /// False when an earlier import already brought this patient in.
    pub new: bool,
    /// Resources added for this patient (the Patient itself included when new).
    pub added: u64,
}

/// What an import added, and what it found already here.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ImportReport {
    /// The vault the export came from.
    pub source: String,
    /// Whether the file carried the sending vault's signature (checked against its
    /// contents, and against the key pinned at the first import from that vault).
    pub signed: bool,
    /// The fingerprint of the key that signed it (`SHA256:…`).
    pub source_key: Option<String>,
    pub patients_added: u64,
    pub patients_already_here: u64,
    #[cfg_attr(feature = "ts", ts(type = "Record<string, number>"))]
    pub added: Counts,
    #[cfg_attr(feature = "ts", ts(type = "Record<string, number>"))]
    pub already_here: Counts,
    pub patients: Vec<ImportedPatient>,
    /// A dry run (`--dry-run`): what an import would do; nothing was written.
    pub dry_run: bool,
    /// Patients of the file joined, as asked, to a chart already here.
    pub patients_matched: u64,
    /// FHIR from another system (not a Chartroom export): there is no vault signature to
    /// check, and its items say they were recorded there.
    pub foreign: bool,
    /// What the file holds that Chartroom does not keep, per type and reason (a file from
    /// another system: Claim, Procedure, survey Observations…).
    pub skipped: Vec<Skipped>,
    /// What was left out of the records kept, in words (a race code not on Chartroom's
    /// list, a phone number in a shape it cannot keep).
    pub warnings: Vec<String>,
}

/// How an import treats a patient of the file who looks like one here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatientChoice {
    /// The same person: their records join this chart (a patient id here).
    Same(i64),
    /// Someone else: a chart of their own.
    New,
}

/// What an import is asked to do besides importing.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Check and count everything, write nothing.
    pub dry_run: bool,
    /// Per patient of the file (its id there, `p3`), what to do when they look like a
    /// patient here.
    pub matches: BTreeMap<String, PatientChoice>,
    /// The system a file from elsewhere comes from, when the file does not say (a URI);
    /// imports from it are recognised by it and each resource's id.
    pub source: Option<String>,
}

/// A patient of the file who looks like one or more patients here: the import stops until
/// each is matched or declared new.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PatientMatch {
    /// The patient's id in the file (what `--match` names).
    pub source_id: String,
    pub family: String,
    pub given: String,
    pub birth_date: String,
    pub sex: String,
    pub candidates: Vec<crate::chart::patient::DuplicateCandidate>,
}

#[derive(Default)]
pub(crate) struct InPatient {
    pub(super) src: String,
    pub(super) demographics: Option<(Demographics, bool)>,
    pub(super) encounters: Vec<(String, InEncounter)>,
    pub(super) observations: Vec<(String, InObservation, Option<String>)>,
    pub(super) problems: Vec<(String, InProblem)>,
    pub(super) none_known: Option<(String, String, String)>,
    pub(super) allergies: Vec<(String, InAllergy)>,
    /// (id, resource type: MedicationRequest, or MedicationStatement from older files).
    pub(super) medications: Vec<(String, String, InMedication)>,
    pub(super) immunizations: Vec<(String, InImmunization)>,
    pub(super) lab_reports: Vec<(String, InLabReport)>,
    pub(super) lab_results: Vec<(String, InLabResult)>,
    /// The id of the Observation the sexual orientation came from, when there was one.
    pub(super) sexual_orientation: Option<String>,
    /// Identifiers (system, value) from another system's file, kept to match the patient
    /// to a chart here the next time (government numbers are never among them).
    pub(super) identifiers: Vec<(String, String)>,
    /// Parents before their addenda.
    pub(super) notes: Vec<(String, InNote)>,
    /// With the encounter each started, when it was started.
    pub(super) appointments: Vec<(String, fhir::InAppointment, Option<String>)>,
}

/// A whole export, checked: every resource valid, every reference inside the file.
pub(crate) struct Parsed {
    pub source: String,
    /// The key that signed the file, checked against its contents; None for an unsigned
    /// file (made before exports were signed).
    pub signer: Option<[u8; 32]>,
    patients: Vec<InPatient>,
    /// The clinicians' books (Schedule) the file holds.
    schedules: u64,
    /// Who signed and wrote (Practitioner) and the clinic they acted for (Organization):
    /// checked and counted, their names kept with each item as always.
    context: Counts,
    /// From another system (not a Chartroom vault): no signature to check or pin.
    foreign: bool,
    /// What the file holds that Chartroom does not keep, and why.
    skipped: Vec<Skipped>,
    /// What was left out of records that were kept (a code Chartroom does not record).
    warnings: Vec<String>,
    /// The identifier system of this vault's MRNs (`urn:chartroom:vault:…:mrn`): a file
    /// naming a patient by it (a lab's) names a chart here.
    pub(super) own_mrn_system: String,
}

impl Parsed {
    pub(super) fn foreign(
        source: String,
        patients: Vec<InPatient>,
        skipped: Vec<Skipped>,
        warnings: Vec<String>,
    ) -> Parsed {
        Parsed {
            source,
            signer: None,
            patients,
            schedules: 0,
            context: Counts::new(),
            foreign: true,
            skipped,
            warnings,
            own_mrn_system: String::new(),
        }
    }
}

/// Resources of one type the import leaves out, for one reason.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Skipped {
    pub resource_type: String,
    pub reason: String,
    pub count: u64,
}

impl Parsed {
    #[cfg(any(test, feature = "fuzz"))]
    pub fn patient_count(&self) -> usize {
        self.patients.len()
    }

    /// The patients' ids in the file.
    #[cfg(test)]
    pub fn patient_source_ids(&self) -> Vec<&str> {
        self.patients.iter().map(|p| p.src.as_str()).collect()
    }
}

/// Whether a resource (its JSON text) says it comes from a Chartroom vault.
fn text_from_chartroom(text: &str) -> bool {
    serde_json::from_str::<super::archive::Head<'_>>(text)
        .ok()
        .and_then(|h| h.meta)
        .and_then(|m| m.source)
        .is_some_and(|s| fhir::is_source_uri(&s))
}

/// Reads and checks a decrypted file: a Chartroom export (its resources name the vault they
/// come from), or FHIR from another system. Nothing here touches the vault.
pub(crate) fn parse(
    plain: &[u8],
    today: chrono::NaiveDate,
    source: Option<&str>,
) -> Result<Parsed, CoreError> {
    let refused = match super::archive::contents(plain) {
        Ok(c) if c.resources.iter().any(|t| text_from_chartroom(t)) => {
            return parse_chartroom(c, today)
        }
        Ok(_) => None,
        Err(e) => Some(e),
    };
    let entries = match super::foreign::entries(plain, super::archive::Limits::IMPORT) {
        Ok(entries) => entries,
        Err(e) => return Err(refused.unwrap_or(e)),
    };
    if entries.iter().any(|e| text_from_chartroom(&e.text)) {
        // A Chartroom export the Chartroom reader refused: its reason stands.
        return Err(refused.unwrap_or_else(|| {
            invalid(
                "the file",
                "it mixes Chartroom records with records from elsewhere",
            )
        }));
    }
    super::foreign::parse(entries, today, source)
}

/// The positions of the resources of one type, from each resource's (type, id).
pub(super) fn indices_of<'h>(
    heads: &'h [(String, String)],
    kind: &'static str,
) -> impl Iterator<Item = usize> + 'h {
    heads
        .iter()
        .enumerate()
        .filter(move |(_, (k, _))| k == kind)
        .map(|(i, _)| i)
}

/// Reads and checks a decrypted Chartroom export.
fn parse_chartroom(
    contents: super::archive::Contents,
    today: chrono::NaiveDate,
) -> Result<Parsed, CoreError> {
    // Read one resource at a time from its text, each time it is needed: the whole file as
    // parsed JSON would take many times its size.
    let texts = contents.resources;
    let at = |i: usize| super::archive::value_of(&texts[i]);
    let mut source: Option<String> = None;
    let mut seen = HashSet::new();
    // Each resource's type and id, in file order.
    let mut heads: Vec<(String, String)> = Vec::with_capacity(texts.len());
    let mut digest = contents
        .signature
        .as_ref()
        .map(|_| super::signing::ExportDigest::default());
    for i in 0..texts.len() {
        let v = at(i)?;
        let r = Res::new(&v)?;
        if !RESOURCE_TYPES.contains(&r.kind()) {
            return Err(r.err("Chartroom does not import this resource type"));
        }
        if !valid_id(r.id()) {
            return Err(r.err("its id is not a valid FHIR id"));
        }
        let from = r
            .opt_str("meta.source")?
            .filter(|s| fhir::is_source_uri(s))
            .ok_or_else(|| {
                r.err("it was not exported by Chartroom (meta.source names no Chartroom vault)")
            })?;
        match &source {
            None => source = Some(from.to_owned()),
            Some(s) if s == from => {}
            Some(_) => return Err(r.err("the file mixes records from several vaults")),
        }
        if !seen.insert((r.kind().to_owned(), r.id().to_owned())) {
            return Err(r.err("it appears twice in the file"));
        }
        if let Some(d) = &mut digest {
            d.add(&v);
        }
        heads.push((r.kind().to_owned(), r.id().to_owned()));
    }
    drop(seen);
    let source = source.ok_or_else(|| invalid("the file", "it holds no resources"))?;
    let signer = match (&contents.signature, digest) {
        (Some(signature), Some(digest)) => {
            Some(super::signing::verify(signature, &digest.message(&source))?)
        }
        _ => None,
    };
    let of_kind = |kind: &'static str| indices_of(&heads, kind);

    let mut patients: BTreeMap<String, InPatient> = BTreeMap::new();
    for i in of_kind("Patient") {
        let v = at(i)?;
        let r = &Res::new(&v)?;
        number_of(r.id(), "p").ok_or_else(|| r.err("not a Chartroom patient id"))?;
        let p = patients.entry(r.id().to_owned()).or_default();
        p.src = r.id().to_owned();
        p.demographics = Some(fhir::read_patient(r, today)?);
    }
    let owner = |r: &Res<'_>, path: &str| -> Result<String, CoreError> {
        let id = r
            .reference(path, "Patient")?
            .ok_or_else(|| r.err(format!("{path} is missing")))?;
        if !patients.contains_key(&id) {
            return Err(r.err(format!(
                "it refers to Patient/{}, which is not in the file",
                clip(&id)
            )));
        }
        Ok(id)
    };
    // Which patient each encounter and note belongs to, for checking references.
    let mut encounter_of: HashMap<String, String> = HashMap::new();
    let mut note_of: HashMap<String, String> = HashMap::new();
    let mut signatures: HashMap<String, String> = HashMap::new();
    let mut personal: HashMap<String, note::NoteSignature> = HashMap::new();
    let mut context = Counts::new();
    // (patient, resource) for each item, read again once every reference can be checked.
    let mut placed: Vec<(String, usize)> = Vec::new();
    // Which encounter each appointment's start opened (Encounter.appointment).
    let mut started: HashMap<String, String> = HashMap::new();
    let schedules: HashSet<&str> = of_kind("Schedule").map(|i| heads[i].1.as_str()).collect();
    let staff: HashSet<&str> = of_kind("Practitioner")
        .map(|i| heads[i].1.as_str())
        .collect();
    for i in (0..heads.len()).filter(|i| heads[*i].0 != "Patient") {
        let v = at(i)?;
        let r = &Res::new(&v)?;
        match r.kind() {
            "Encounter" => {
                let p = owner(r, "subject.reference")?;
                encounter_of.insert(r.id().to_owned(), p.clone());
                if let Some(a) = r.reference("appointment.0.reference", "Appointment")? {
                    if started.insert(a, r.id().to_owned()).is_some() {
                        return Err(r.err("two encounters claim to start one appointment"));
                    }
                }
                placed.push((p, i));
            }
            // A clinician's book and its busy slots: checked; the appointments they hold
            // come back through Appointment (working hours are the clinic's settings).
            "Schedule" => {
                r.str("actor.0.display")?;
            }
            "Practitioner" => {
                fhir::read_staff_name(r, "name.0.text")?;
                count(&mut context, "Practitioner");
            }
            "Organization" => {
                fhir::read_staff_name(r, "name")?;
                count(&mut context, "Organization");
            }
            "Slot" => {
                let schedule = r
                    .reference("schedule.reference", "Schedule")?
                    .ok_or_else(|| r.err("schedule is missing"))?;
                if !schedules.contains(schedule.as_str()) {
                    return Err(r.err(format!(
                        "it refers to Schedule/{}, which is not in the file",
                        clip(&schedule)
                    )));
                }
                if time(&fhir_time(r, "start")?)? >= time(&fhir_time(r, "end")?)? {
                    return Err(r.err("it ends before it starts"));
                }
            }
            "Appointment" => {
                let p = fhir::appointment_patient(r)?;
                if !patients.contains_key(&p) {
                    return Err(r.err(format!(
                        "it refers to Patient/{}, which is not in the file",
                        clip(&p)
                    )));
                }
                placed.push((p, i));
            }
            "DocumentReference" => {
                let p = owner(r, "subject.reference")?;
                note_of.insert(r.id().to_owned(), p.clone());
                placed.push((p, i));
            }
            "Provenance" => {
                if let Some(who) = r.reference("agent.0.who.reference", "Practitioner")? {
                    if !staff.contains(who.as_str()) {
                        return Err(r.err(format!(
                            "it refers to Practitioner/{}, which is not in the file",
                            clip(&who)
                        )));
                    }
                }
                let (target, digest) = fhir::read_provenance(r)?;
                if let Some(sig) = fhir::read_personal_signature(r)? {
                    personal.insert(target.clone(), sig);
                }
                if signatures.insert(target, digest).is_some() {
                    return Err(r.err("a note has two signatures"));
                }
            }
            "AllergyIntolerance" | "Immunization" => {
                placed.push((owner(r, "patient.reference")?, i));
            }
            _ => placed.push((owner(r, "subject.reference")?, i)),
        }
    }
    let same_patient =
        |r: &Res<'_>, what: &str, id: &str, map: &HashMap<String, String>, p: &str| match map
            .get(id)
        {
            None => Err(r.err(format!(
                "it refers to {what}/{}, which is not in the file",
                clip(id)
            ))),
            Some(q) if q != p => Err(r.err(format!(
                "it refers to {what}/{} of another patient",
                clip(id)
            ))),
            Some(_) => Ok(()),
        };
    for target in signatures.keys() {
        if !note_of.contains_key(target) {
            return Err(invalid(
                "Provenance",
                format!(
                    "it signs DocumentReference/{}, which is not in the file",
                    clip(target)
                ),
            ));
        }
    }
    for (p, i) in placed {
        let v = at(i)?;
        let r = &Res::new(&v)?;
        let entry = patients.get_mut(&p).expect("checked above");
        let id = r.id().to_owned();
        match r.kind() {
            "Encounter" => entry.encounters.push((id, fhir::read_encounter(r)?)),
            // Kept with the demographics, as the patient's.
            "Observation" if fhir::is_sexual_orientation(r) => {
                // Every reference resolves, even one Chartroom does not keep.
                if let Some(e) = r.reference("encounter.reference", "Encounter")? {
                    same_patient(r, "Encounter", &e, &encounter_of, &p)?;
                }
                let code = fhir::read_sexual_orientation(r)?;
                let d = &mut entry
                    .demographics
                    .as_mut()
                    .expect("every patient parsed has demographics")
                    .0;
                if d.sexual_orientation.replace(code).is_some() {
                    return Err(r.err("the patient has two sexual orientation observations"));
                }
                entry.sexual_orientation = Some(id);
            }
            "Observation" if fhir::is_lab(r)? => {
                entry.lab_results.push((id, fhir::read_lab_result(r)?));
            }
            "DiagnosticReport" => {
                let report = fhir::read_lab_report(r)?;
                if let Some(e) = &report.encounter {
                    same_patient(r, "Encounter", e, &encounter_of, &p)?;
                }
                entry.lab_reports.push((id, report));
            }
            "Observation" => {
                let enc = r.reference("encounter.reference", "Encounter")?;
                if let Some(e) = &enc {
                    same_patient(r, "Encounter", e, &encounter_of, &p)?;
                }
                entry
                    .observations
                    .push((id, fhir::read_observation(r)?, enc));
            }
            "Condition" => entry.problems.push((id, fhir::read_condition(r)?)),
            "AllergyIntolerance" => match fhir::read_allergy(r)? {
                InAllergy::NoneKnown { at, by } => {
                    if entry.none_known.replace((id, at, by)).is_some() {
                        return Err(r.err("the patient has two \"no known allergies\" statements"));
                    }
                }
                a => entry.allergies.push((id, a)),
            },
            "MedicationRequest" | "MedicationStatement" => {
                entry
                    .medications
                    .push((id, r.kind().to_owned(), fhir::read_medication(r)?))
            }
            "Immunization" => entry
                .immunizations
                .push((id, fhir::read_immunization(r, today)?)),
            "Appointment" => {
                let a = fhir::read_appointment(r)?;
                // The same years as typed times; a booking still to come no further ahead
                // than the desk may book.
                let start = time(&a.start)?;
                let year = chrono::Datelike::year(&start);
                if !(crate::zone::FIRST_YEAR..=crate::zone::LAST_YEAR).contains(&year)
                    || (a.status.holds_time()
                        && start.date_naive() > today + chrono::Duration::days(731))
                {
                    return Err(r.err("its start is out of range"));
                }
                let enc = started.get(&id).cloned();
                if let Some(e) = &enc {
                    same_patient(r, "Encounter", e, &encounter_of, &p)?;
                }
                if (a.status == crate::AppointmentStatus::Seen) != enc.is_some() {
                    return Err(r.err(
                        "a fulfilled appointment names the encounter it opened, and only it does",
                    ));
                }
                entry.appointments.push((id, a, enc));
            }
            "DocumentReference" => {
                let mut note = fhir::read_note(r)?;
                if let Some(e) = &note.encounter {
                    same_patient(r, "Encounter", e, &encounter_of, &p)?;
                }
                if let Some(parent) = &note.parent {
                    same_patient(r, "DocumentReference", parent, &note_of, &p)?;
                }
                let digest = signatures
                    .get(&id)
                    .ok_or_else(|| r.err("the note has no signature (Provenance)"))?;
                let num = |id: &str, prefix: &str| {
                    number_of(id, prefix).ok_or_else(|| r.err("not a Chartroom id"))
                };
                let expected = note::digest_of(
                    num(&p, "p")?,
                    note.encounter.as_deref().map(|e| num(e, "e")).transpose()?,
                    note.kind,
                    note.parent.as_deref().map(|n| num(n, "n")).transpose()?,
                    &note.content,
                );
                if &expected != digest {
                    return Err(CoreError::Integrity(format!(
                        "{}: the note's text does not match its signature. Nothing was imported.",
                        r.label
                    )));
                }
                // The signer's own signature travels with the note and is checked here, as
                // the writer checks it again.
                if let Some(sig) = personal.get(&id) {
                    let at = Stamp::parse(&note.signed_at, &note.signed_by)?.time();
                    let message =
                        note::signature_message(note.kind, &note.signed_by, &at, &note.content);
                    if !sig.verifies(&message) {
                        return Err(CoreError::Integrity(format!(
                            "{}: the note does not match its signer's signature. Nothing was imported.",
                            r.label
                        )));
                    }
                    note.signature = Some(sig.clone());
                }
                entry.notes.push((id, note));
            }
            _ => unreachable!("placed holds only the types matched above"),
        }
    }
    let mut list: Vec<InPatient> = patients.into_values().collect();
    for p in &mut list {
        p.notes = parents_first(std::mem::take(&mut p.notes))?;
        // A report's results are laboratory results of its own patient in the file, each
        // in one report.
        let results: HashSet<&str> = p.lab_results.iter().map(|(i, _)| i.as_str()).collect();
        let mut claimed = HashSet::new();
        for (id, report) in &p.lab_reports {
            for o in &report.results {
                let label = format!("DiagnosticReport/{}", clip(id));
                if !results.contains(o.as_str()) {
                    return Err(invalid(
                        &label,
                        format!(
                            "it refers to Observation/{}, which is not a laboratory result of its patient in the file",
                            clip(o)
                        ),
                    ));
                }
                if !claimed.insert(o.as_str()) {
                    return Err(invalid(
                        &label,
                        format!("Observation/{} is in two reports", clip(o)),
                    ));
                }
            }
        }
    }
    Ok(Parsed {
        source,
        signer,
        patients: list,
        schedules: schedules.len() as u64,
        context,
        foreign: false,
        skipped: Vec::new(),
        warnings: Vec::new(),
        own_mrn_system: String::new(),
    })
}

/// The first signed file from a source pins that source's key; every later file naming the
/// source must be signed by it. An unsigned file is accepted only from a source never seen
/// before (an export made before exports were signed), and said so in the report.
fn check_source_key(
    tx: &Transaction<'_>,
    source: &str,
    signer: Option<[u8; 32]>,
    now: &str,
) -> Result<(), CoreError> {
    let pinned: Option<Vec<u8>> = tx
        .prepare_cached("SELECT public_key FROM import_sources WHERE source = ?1")?
        .query_row([source], |r| r.get(0))
        .optional()?;
    let seen: bool = tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM imported_records WHERE source = ?1)")?
        .query_row([source], |r| r.get(0))?;
    let forged = |why: &str| {
        CoreError::Integrity(format!(
            "This file says it comes from {source}, but {why}. It may have been made to look like that vault's export. Nothing was imported."
        ))
    };
    match (pinned, signer) {
        (Some(pinned), Some(key)) if pinned == key => Ok(()),
        (Some(_), Some(_)) => Err(forged(
            "it is signed by a different key than the earlier files from that vault",
        )),
        (Some(_), None) => Err(forged(
            "it is not signed, while the earlier files from that vault were",
        )),
        (None, Some(key)) => {
            tx.prepare_cached(
                "INSERT INTO import_sources (source, public_key, pinned_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![source, key.as_slice(), now])?;
            Ok(())
        }
        (None, None) if seen => Err(forged(
            "it is not signed, and records from that vault are already here",
        )),
        (None, None) => Ok(()),
    }
}

/// Orders notes so each comes after the note it appends to; refuses cycles.
fn parents_first(notes: Vec<(String, InNote)>) -> Result<Vec<(String, InNote)>, CoreError> {
    let mut done: HashSet<String> = HashSet::new();
    let mut pending = notes;
    let mut out = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let before = pending.len();
        let (ready, rest): (Vec<_>, Vec<_>) = pending
            .into_iter()
            .partition(|(_, n)| n.parent.as_ref().is_none_or(|p| done.contains(p)));
        for (id, n) in ready {
            done.insert(id.clone());
            out.push((id, n));
        }
        pending = rest;
        if pending.len() == before {
            return Err(invalid(
                "DocumentReference",
                "addenda refer to each other in a circle",
            ));
        }
    }
    Ok(out)
}

fn known(
    tx: &Transaction<'_>,
    source: &str,
    kind: &str,
    id: &str,
) -> Result<Option<i64>, CoreError> {
    Ok(tx
        .prepare_cached(
            "SELECT local_id FROM imported_records WHERE source = ?1 AND resource_type = ?2 AND source_id = ?3",
        )?
        .query_row(params![source, kind, id], |r| r.get(0))
        .optional()?)
}

/// When a file's records arrived, and the sending vault's key that signed it.
struct Arrival {
    at: String,
    signer: Option<[u8; 32]>,
}

fn remember(
    tx: &Transaction<'_>,
    source: &str,
    kind: &str,
    id: &str,
    local: i64,
    now: &Arrival,
) -> Result<(), CoreError> {
    tx.prepare_cached(
        "INSERT INTO imported_records (source, resource_type, source_id, local_id, imported_at, signer_key)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        source,
        kind,
        id,
        local,
        now.at,
        now.signer.as_ref().map(|k| k.as_slice())
    ])?;
    Ok(())
}

/// Whether `kind/id` came in with an earlier import from `source`; then it counts as
/// already here.
fn held(
    tx: &Transaction<'_>,
    source: &str,
    kind: &str,
    id: &str,
    report: &mut ImportReport,
) -> Result<bool, CoreError> {
    let held = known(tx, source, kind, id)?.is_some();
    if held {
        count(&mut report.already_here, kind);
    }
    Ok(held)
}

/// Remembers a resource just written, and counts it as added.
fn note_added(
    tx: &Transaction<'_>,
    source: &str,
    kind: &str,
    id: &str,
    local: i64,
    now: &Arrival,
    added: &mut Counts,
) -> Result<(), CoreError> {
    remember(tx, source, kind, id, local, now)?;
    count(added, kind);
    Ok(())
}

/// Writes a checked export in one transaction, skipping what earlier imports brought in. A
/// dry run makes every write and check inside a savepoint and rolls it back, so its report
/// is the one the import would give; only its audit entry stays.
pub(crate) fn write(
    session: &mut Session,
    parsed: Parsed,
    options: &ImportOptions,
) -> Result<ImportReport, CoreError> {
    let dry_run = options.dry_run;
    let user_id = session.actor_user_id();
    session.run(
        Permission::ImportRecords,
        Op::create("records.import"),
        false,
        |tx, op, ctx| {
            if dry_run {
                tx.execute_batch("SAVEPOINT import_dry_run")?;
            }
            let mut report = write_all(tx, op, ctx, &parsed, user_id, &options.matches)?;
            if dry_run {
                tx.execute_batch("ROLLBACK TO import_dry_run; RELEASE import_dry_run")?;
                report.dry_run = true;
                op.detail = op
                    .detail
                    .take()
                    .map(|d| format!("dry run, nothing written: {d}"));
            }
            Ok(report)
        },
    )
}

fn write_all(
    tx: &Transaction<'_>,
    op: &mut Op,
    ctx: &crate::session::Ctx<'_>,
    parsed: &Parsed,
    user_id: Option<i64>,
    matches: &BTreeMap<String, PatientChoice>,
) -> Result<ImportReport, CoreError> {
    change::bulk(|| {
        let now = Arrival {
            at: format_time(ctx.now),
            signer: parsed.signer,
        };
        let source = parsed.source.as_str();
        if !parsed.foreign {
            check_source_key(tx, source, parsed.signer, &now.at)?;
        }
        check_matches(tx, ctx, source, parsed, matches)?;
        let mut report = ImportReport {
            source: source.to_owned(),
            signed: parsed.signer.is_some(),
            source_key: parsed.signer.as_ref().map(super::signing::fingerprint),
            patients_added: 0,
            patients_already_here: 0,
            added: Counts::new(),
            already_here: Counts::new(),
            patients: Vec::new(),
            dry_run: false,
            patients_matched: 0,
            foreign: parsed.foreign,
            skipped: parsed.skipped.clone(),
            warnings: parsed.warnings.clone(),
        };
        for p in &parsed.patients {
            let mut added = Counts::new();
            let here = known(tx, source, "Patient", &p.src)?;
            // Matched to a chart here: remembered as that chart; the records join it and its
            // demographics stay, as for a patient imported before.
            if let (None, Some(PatientChoice::Same(local))) = (here, matches.get(&p.src)) {
                remember(tx, source, "Patient", &p.src, *local, &now)?;
                report.patients_matched += 1;
            }
            let here = here.or(match matches.get(&p.src) {
                Some(PatientChoice::Same(local)) => Some(*local),
                _ => None,
            });
            let (local, new) = match here {
                Some(local) => {
                    count(&mut report.already_here, "Patient");
                    if p.sexual_orientation.is_some() {
                        count(&mut report.already_here, "Observation");
                    }
                    (local, false)
                }
                None => {
                    let (demographics, restricted) = p
                        .demographics
                        .clone()
                        .expect("every patient parsed has demographics");
                    let new = NewPatient {
                        demographics,
                        restricted,
                    };
                    let registered = ctx.stamp();
                    let uuid = RecordId::new(ctx.now);
                    let made = apply(
                        tx,
                        &Change::PatientRegistered(PatientRegistered {
                            patient: uuid,
                            mrn: patient::new_mrn(tx)?,
                            new,
                            registered: registered.clone(),
                        }),
                    )?
                    .row();
                    remember(tx, source, "Patient", &p.src, made, &now)?;
                    // Someone must be able to open a restricted chart: the importer.
                    if restricted {
                        if let Some(uid) = user_id {
                            let joined = CareTeamChanged::joined(uuid, uid, registered);
                            apply(tx, &Change::CareTeamChanged(joined))?;
                        }
                    }
                    count(&mut added, "Patient");
                    if let Some(so) = &p.sexual_orientation {
                        remember(tx, source, "Observation:sexual-orientation", so, made, &now)?;
                        count(&mut added, "Observation");
                    }
                    (made, true)
                }
            };
            remember_identifiers(tx, p, local, &now)?;
            let patient_uuid = change::id_of(tx, Table::Patients, local)?;
            let mut encounters: HashMap<&str, i64> = HashMap::new();
            for (id, e) in &p.encounters {
                let local_e = match known(tx, source, "Encounter", id)? {
                    Some(l) => {
                        count(&mut report.already_here, "Encounter");
                        l
                    }
                    None => {
                        let opened = recorded(&e.stamp)?;
                        let l = apply(
                            tx,
                            &Change::EncounterOpened(EncounterOpened {
                                encounter: RecordId::new(ctx.now),
                                patient: patient_uuid,
                                kind: e.kind,
                                start: time(&e.start)?,
                                reason: e.reason.clone(),
                                clinician_id: None,
                                clinician: e.clinician.clone(),
                                opened,
                            }),
                        )?
                        .row();
                        note_added(tx, source, "Encounter", id, l, &now, &mut added)?;
                        l
                    }
                };
                encounters.insert(id.as_str(), local_e);
            }
            // An encounter named by a new item but imported before (a later export).
            let encounter =
                |tx: &Transaction<'_>, id: &Option<String>| -> Result<Option<i64>, CoreError> {
                    match id {
                        None => Ok(None),
                        Some(id) => match encounters.get(id.as_str()) {
                            Some(l) => Ok(Some(*l)),
                            None => known(tx, source, "Encounter", id),
                        },
                    }
                };
            for (id, o, enc) in &p.observations {
                if held(tx, source, "Observation", id, &mut report)? {
                    continue;
                }
                let mut set = VitalsRecorded::new(
                    patient_uuid,
                    encounter(tx, enc)?
                        .map(|e| change::id_of(tx, Table::Encounters, e))
                        .transpose()?,
                    time(&o.effective)?,
                    &o.values,
                    Stamp::parse(&o.recorded_at, &o.recorded_by)?,
                );
                // Ids are made now (as every id here is), not at the time recorded.
                for v in &mut set.values {
                    v.observation = RecordId::new(ctx.now);
                }
                let records: Vec<RecordId> = set.values.iter().map(|v| v.observation).collect();
                let rows = apply(tx, &Change::VitalsRecorded(set))?.0;
                let l = rows.first().copied().unwrap_or(0);
                // A blood-pressure panel: its diastolic is remembered too, so the
                // chart says where it came from.
                if let Some(second) = rows.get(1) {
                    // Kept apart from the file's own ids, which may end in "-2" too (files
                    // before this version used "{id}-2" as an Observation's id here).
                    remember(tx, source, DIASTOLIC, id, *second, &now)?;
                }
                if let Some(reason) = &o.entered_in_error {
                    mark(tx, Corrected::Observation, records, reason, ctx.stamp())?;
                }
                note_added(tx, source, "Observation", id, l, &now, &mut added)?;
            }
            // Reports before their results, which name them; each oldest first (an
            // export lists them newest first), so they keep the order they were
            // recorded in.
            let mut reports_here: HashMap<&str, RecordId> = HashMap::new();
            for (id, rep) in p.lab_reports.iter().rev() {
                if let Some(l) = known(tx, source, "DiagnosticReport", id)? {
                    count(&mut report.already_here, "DiagnosticReport");
                    reports_here.insert(id, change::id_of(tx, Table::LabReports, l)?);
                    continue;
                }
                let made = RecordId::new(ctx.now);
                let l = apply(
                    tx,
                    &Change::ReportAdded(ReportAdded {
                        report: made,
                        patient: patient_uuid,
                        encounter: encounter(tx, &rep.encounter)?
                            .map(|e| change::id_of(tx, Table::Encounters, e))
                            .transpose()?,
                        loinc: rep.loinc.clone(),
                        name: rep.name.clone(),
                        collected: time(&rep.collected)?,
                        recorded: recorded(&rep.stamp)?,
                    }),
                )?
                .row();
                reports_here.insert(id, made);
                note_added(tx, source, "DiagnosticReport", id, l, &now, &mut added)?;
            }
            let report_of: HashMap<&str, &str> = p
                .lab_reports
                .iter()
                .flat_map(|(rid, rep)| rep.results.iter().map(move |o| (o.as_str(), rid.as_str())))
                .collect();
            for (id, x) in p.lab_results.iter().rev() {
                if known(tx, source, LAB_RESULT, id)?.is_some() {
                    count(&mut report.already_here, "Observation");
                    continue;
                }
                let result = RecordId::new(ctx.now);
                let l = apply(
                    tx,
                    &Change::ResultRecorded(ResultRecorded {
                        result,
                        patient: patient_uuid,
                        report: report_of
                            .get(id.as_str())
                            .and_then(|r| reports_here.get(r))
                            .copied(),
                        item: x.item.clone(),
                        reported: time(&x.reported)?,
                        reason: x.reason.clone(),
                        recorded: recorded(&x.stamp)?,
                    }),
                )?
                .row();
                if let Some(reason) = &x.entered_in_error {
                    apply(
                        tx,
                        &Change::ResultEnteredInError(ResultEnteredInError {
                            result,
                            reason: reason.clone(),
                            marked: updated(&x.stamp)?,
                        }),
                    )?;
                }
                remember(tx, source, LAB_RESULT, id, l, &now)?;
                count(&mut added, "Observation");
            }
            for (id, c) in &p.problems {
                if held(tx, source, "Condition", id, &mut report)? {
                    continue;
                }
                let stamp = recorded(&c.stamp)?;
                let problem = RecordId::new(ctx.now);
                let l = apply(
                    tx,
                    &Change::ProblemAdded(ProblemAdded {
                        problem,
                        patient: patient_uuid,
                        item: NewProblem {
                            text: c.text.clone(),
                            coding: c.coding.clone(),
                            onset: date(c.onset.as_deref())?,
                        },
                        recorded: stamp,
                    }),
                )?
                .row();
                if c.status != "active" {
                    let outcome = if c.status == "inactive" {
                        ProblemOutcome::Inactive
                    } else {
                        ProblemOutcome::Resolved
                    };
                    apply(
                        tx,
                        &Change::ProblemResolved(ProblemResolved {
                            problem,
                            outcome,
                            on: date(c.resolved_on.as_deref())?,
                            resolved: updated(&c.stamp)?,
                        }),
                    )?;
                }
                if let Some(reason) = &c.entered_in_error {
                    mark(
                        tx,
                        Corrected::Problem,
                        vec![problem],
                        reason,
                        updated(&c.stamp)?,
                    )?;
                }
                note_added(tx, source, "Condition", id, l, &now, &mut added)?;
            }
            if let Some((id, at, who)) = &p.none_known {
                let kind = if parsed.foreign {
                    NONE_KNOWN
                } else {
                    "AllergyIntolerance"
                };
                if known(tx, source, kind, id)?.is_some() {
                    count(&mut report.already_here, "AllergyIntolerance");
                } else {
                    // Only where nobody has asked yet: an allergy recorded here stands.
                    if patient::get(tx, local)?.allergy_status.as_deref() == Some("unknown") {
                        apply(
                            tx,
                            &Change::NoKnownAllergiesRecorded(NoKnownAllergiesRecorded {
                                patient: patient_uuid,
                                recorded: Stamp::parse(at, who)?,
                            }),
                        )?;
                    }
                    remember(tx, source, kind, id, local, &now)?;
                    count(&mut added, "AllergyIntolerance");
                }
            }
            for (id, a) in &p.allergies {
                let InAllergy::Allergy {
                    substance,
                    reaction,
                    severity,
                    category,
                    status,
                    stamp,
                    entered_in_error,
                    allergy_override,
                } = a
                else {
                    continue;
                };
                if held(tx, source, "AllergyIntolerance", id, &mut report)? {
                    continue;
                }
                let at = recorded(stamp)?;
                let allergy = RecordId::new(ctx.now);
                let l = apply(
                    tx,
                    &Change::AllergyRecorded(AllergyRecorded {
                        allergy,
                        patient: patient_uuid,
                        item: NewAllergy {
                            substance: substance.clone(),
                            reaction: reaction.clone(),
                            severity: *severity,
                            category: *category,
                        },
                        recorded: at,
                        allergy_override: allergy_override.clone(),
                    }),
                )?
                .row();
                if status != "active" {
                    apply(
                        tx,
                        &Change::AllergyResolved(AllergyResolved {
                            allergy,
                            resolved: updated(stamp)?,
                        }),
                    )?;
                }
                if let Some(reason) = entered_in_error {
                    mark(
                        tx,
                        Corrected::Allergy,
                        vec![allergy],
                        reason,
                        updated(stamp)?,
                    )?;
                }
                note_added(tx, source, "AllergyIntolerance", id, l, &now, &mut added)?;
            }
            for (id, kind, m) in &p.medications {
                if held(tx, source, kind, id, &mut report)? {
                    continue;
                }
                let at = recorded(&m.stamp)?;
                let medication = RecordId::new(ctx.now);
                let l = apply(
                    tx,
                    &Change::MedicationStarted(MedicationStarted {
                        medication,
                        patient: patient_uuid,
                        item: NewMedication {
                            name: m.name.clone(),
                            dose: m.dose.clone(),
                            route: m.route,
                            frequency: m.frequency.clone(),
                            start: date(m.start.as_deref())?,
                        },
                        recorded: at,
                        allergy_override: m.allergy_override.clone(),
                    }),
                )?
                .row();
                if m.status != "active" {
                    apply(
                        tx,
                        &Change::MedicationStopped(MedicationStopped {
                            medication,
                            on: date(m.stop.as_deref())?,
                            stopped: updated(&m.stamp)?,
                        }),
                    )?;
                }
                if let Some(reason) = &m.entered_in_error {
                    mark(
                        tx,
                        Corrected::Medication,
                        vec![medication],
                        reason,
                        updated(&m.stamp)?,
                    )?;
                }
                note_added(tx, source, kind, id, l, &now, &mut added)?;
            }
            for (id, i) in &p.immunizations {
                if held(tx, source, "Immunization", id, &mut report)? {
                    continue;
                }
                let at = recorded(&i.stamp)?;
                let immunization = RecordId::new(ctx.now);
                let l = apply(
                    tx,
                    &Change::ImmunizationRecorded(ImmunizationRecorded {
                        immunization,
                        patient: patient_uuid,
                        item: NewImmunization {
                            vaccine: i.vaccine.clone(),
                            cvx: i.cvx.clone(),
                            date: date(Some(&i.date))?.unwrap_or_default(),
                            lot: i.lot.clone(),
                            site: i.site,
                        },
                        recorded: at,
                    }),
                )?
                .row();
                if let Some(reason) = &i.entered_in_error {
                    mark(
                        tx,
                        Corrected::Immunization,
                        vec![immunization],
                        reason,
                        updated(&i.stamp)?,
                    )?;
                } else if i.status != "completed" {
                    apply(
                        tx,
                        &Change::ImmunizationEnteredInError(ImmunizationEnteredInError {
                            immunization,
                            marked: updated(&i.stamp)?,
                        }),
                    )?;
                }
                note_added(tx, source, "Immunization", id, l, &now, &mut added)?;
            }
            let mut notes: HashMap<&str, i64> = HashMap::new();
            for (id, n) in &p.notes {
                if let Some(l) = known(tx, source, "DocumentReference", id)? {
                    count(&mut report.already_here, "DocumentReference");
                    // A Chartroom note travels with its signature (Provenance).
                    if !parsed.foreign {
                        count(&mut report.already_here, "Provenance");
                    }
                    notes.insert(id.as_str(), l);
                    continue;
                }
                let parent = match &n.parent {
                    None => None,
                    Some(pid) => match notes.get(pid.as_str()) {
                        Some(l) => Some(*l),
                        None => known(tx, source, "DocumentReference", pid)?,
                    },
                };
                let enc = encounter(tx, &n.encounter)?
                    .map(|e| change::id_of(tx, Table::Encounters, e))
                    .transpose()?;
                let drafted = Stamp::parse(&n.created_at, &n.author)?;
                let uuid = RecordId::new(ctx.now);
                let draft = match parent {
                    None => Change::NoteDrafted(NoteDrafted {
                        note: uuid,
                        patient: patient_uuid,
                        encounter: enc,
                        author_id: None,
                        content: n.content.clone(),
                        drafted,
                    }),
                    Some(parent) => Change::AddendumAdded(AddendumAdded {
                        note: uuid,
                        parent: change::id_of(tx, Table::Notes, parent)?,
                        amendment: n.kind == NoteKind::Amendment,
                        encounter: enc,
                        author_id: None,
                        content: n.content.clone(),
                        drafted,
                    }),
                };
                let l = apply(tx, &draft)?.row();
                let signed = Stamp::parse(&n.signed_at, &n.signed_by)?;
                apply(
                    tx,
                    &Change::NoteSigned(NoteSigned {
                        note: uuid,
                        signed,
                        signature: n.signature.clone(),
                    }),
                )?;
                // The signature covers what was checked against the file's Provenance.
                debug_assert_eq!(
                    note::note_digest(&note::note(tx, l)?),
                    note::digest_of(
                        local,
                        encounter(tx, &n.encounter)?,
                        n.kind,
                        parent,
                        &n.content
                    )
                );
                notes.insert(id.as_str(), l);
                note_added(tx, source, "DocumentReference", id, l, &now, &mut added)?;
                if !parsed.foreign {
                    count(&mut added, "Provenance");
                }
                debug_assert!(n.kind != NoteKind::Note || parent.is_none());
            }
            for (id, a, enc) in &p.appointments {
                if held(tx, source, "Appointment", id, &mut report)? {
                    if a.status.holds_time() {
                        count(&mut report.already_here, "Slot");
                    }
                    continue;
                }
                let appointment = RecordId::new(ctx.now);
                // A clinician who is a user here is named as this vault names them,
                // and must be one who keeps a book; a name no user here has stays as
                // the sending clinic's history.
                let clinician = match crate::users::find_user(tx, &a.clinician)? {
                    Some((_, u)) if matches!(u.role, Role::Physician | Role::Nurse) => {
                        u.name.as_str().to_owned()
                    }
                    Some(_) => {
                        return Err(invalid(
                            &format!("Appointment/{}", clip(id)),
                            format!(
                            "its clinician \"{}\" is a user here who is not a physician or nurse",
                            clip(&a.clinician)
                        ),
                        ))
                    }
                    None => a.clinician.clone(),
                };
                let (start, end) = (time(&a.start)?, time(&a.end)?);
                // Brought in over a booking here: kept, and marked as overbooked.
                let over = a.status.holds_time()
                    && crate::chart::appointment::clashes(tx, &clinician, start, end)?;
                let l = apply(
                    tx,
                    &Change::AppointmentBooked(AppointmentBooked {
                        appointment,
                        patient: patient_uuid,
                        clinician,
                        start,
                        end,
                        appointment_type: a.kind.clone(),
                        reason: a.reason.clone(),
                        overbooked: a.overbooked || over,
                        booked: recorded(&a.stamp)?,
                    }),
                )?
                .row();
                let changed = updated(&a.stamp)?;
                match a.status {
                    AppointmentStatus::Booked => {}
                    AppointmentStatus::Cancelled => {
                        apply(
                            tx,
                            &Change::AppointmentCancelled(AppointmentCancelled {
                                appointment,
                                reason: a
                                    .cancel_reason
                                    .clone()
                                    .unwrap_or_else(|| "Cancelled".into()),
                                cancelled: changed,
                            }),
                        )?;
                    }
                    status => {
                        let encounter = encounter(tx, enc)?
                            .map(|e| change::id_of(tx, Table::Encounters, e))
                            .transpose()?;
                        apply(
                            tx,
                            &Change::AppointmentStatusChanged(AppointmentStatusChanged {
                                appointment,
                                status,
                                encounter,
                                changed,
                            }),
                        )?;
                    }
                }
                note_added(tx, source, "Appointment", id, l, &now, &mut added)?;
                if a.status.holds_time() {
                    count(&mut added, "Slot");
                }
            }
            let total: u64 = added.values().sum();
            let mrn: String =
                tx.query_row("SELECT mrn FROM patients WHERE id = ?1", [local], |r| {
                    r.get(0)
                })?;
            let mut each = Op::create("patient.import").patient(local).detail(format!(
                "from {source} ({}): {}",
                p.src,
                counts_words(&added)
            ));
            each.purpose = ctx.actor.role.map(|r| r.purpose_of_use().to_owned());
            ctx.also(each);
            if new {
                report.patients_added += 1;
            } else {
                report.patients_already_here += 1;
            }
            for (k, v) in &added {
                *report.added.entry(k.clone()).or_default() += v;
            }
            report.patients.push(ImportedPatient {
                id: PatientId(local),
                mrn,
                source_id: p.src.clone(),
                new,
                added: total,
            });
        }
        // The clinicians' books come with the appointments they hold.
        if parsed.schedules > 0 {
            let into = if report.added.contains_key("Appointment") {
                &mut report.added
            } else {
                &mut report.already_here
            };
            *into.entry("Schedule".into()).or_default() += parsed.schedules;
        }
        // So do the signers and their clinic with the notes they signed.
        for (kind, n) in &parsed.context {
            let into = if report.added.contains_key("Provenance") {
                &mut report.added
            } else {
                &mut report.already_here
            };
            *into.entry(kind.clone()).or_default() += n;
        }
        op.detail = Some(format!(
            "from {source}: {} patients new, {} already here; added {}",
            report.patients_added,
            report.patients_already_here,
            counts_words(&report.added)
        ));
        Ok(report)
    })
}

/// Stops an import that would give a patient already here a second chart: every patient of
/// the file not imported before, and not matched or declared new, who looks like a patient
/// here (the registration's rules: the same names and birth date, the same birth date and
/// phone, the same names and phone) is named with their candidates. A match must name a
/// patient of the file and a chart here this session may open.
fn check_matches(
    tx: &Transaction<'_>,
    ctx: &crate::session::Ctx<'_>,
    source: &str,
    parsed: &Parsed,
    matches: &BTreeMap<String, PatientChoice>,
) -> Result<(), CoreError> {
    for (id, choice) in matches {
        if !parsed.patients.iter().any(|p| &p.src == id) {
            return Err(CoreError::InvalidInput(format!(
                "The match names {}, which is not a patient in this file.",
                clip(id)
            )));
        }
        if let PatientChoice::Same(local) = choice {
            let here = crate::chart::patient::get(tx, *local)?;
            // A chart restricted there keeps its records to a care team: joining them to an
            // open chart here would show them to everyone who may open that one.
            let restricted_there = parsed
                .patients
                .iter()
                .find(|p| &p.src == id)
                .and_then(|p| p.demographics.as_ref())
                .is_some_and(|(_, r)| *r);
            if restricted_there && !here.restricted {
                return Err(CoreError::InvalidInput(format!(
                    "{} is a restricted chart in this file and patient {local} here is not: restrict patient {local} first, or import them as new.",
                    clip(id)
                )));
            }
            if here.restricted
                && !crate::search::openable_restricted(tx, ctx)?
                    .iter()
                    .any(|(id, _)| *id == *local)
            {
                return Err(CoreError::InvalidInput(format!(
                    "Patient {local} is a restricted chart you may not open; records cannot be joined to it."
                )));
            }
        }
    }
    let mut stops = Vec::new();
    for p in &parsed.patients {
        if let Some(local) = known(tx, source, "Patient", &p.src)? {
            if parsed.foreign {
                still_the_same(tx, ctx, parsed, p, local, matches)?;
            }
            continue;
        }
        if matches.contains_key(&p.src) {
            continue;
        }
        let (d, _) = p
            .demographics
            .as_ref()
            .expect("every patient parsed has demographics");
        let mut candidates = identified(tx, ctx, parsed, p)?;
        for c in crate::chart::patient::possible_duplicates(tx, ctx, d)? {
            if !candidates.iter().any(|x| x.id == c.id) {
                candidates.push(c);
            }
        }
        if !candidates.is_empty() {
            stops.push(PatientMatch {
                source_id: p.src.clone(),
                family: d.family.clone(),
                given: d.given.clone(),
                birth_date: d.birth_date.format("%Y-%m-%d").to_string(),
                sex: d.sex.as_str().to_owned(),
                candidates,
            });
        }
    }
    if stops.is_empty() {
        Ok(())
    } else {
        Err(CoreError::ImportMatches(stops))
    }
}

/// A patient of another system's file imported before adds to the chart it became only
/// while the file still describes that person: nothing proves where such a file comes
/// from, so a file naming the same source and id for someone else (or for a restricted
/// chart, or a chart restricted here the importer may not open) is refused. A chart whose
/// name changed here since is confirmed with `--match ID=PATIENT_ID`.
fn still_the_same(
    tx: &Transaction<'_>,
    ctx: &crate::session::Ctx<'_>,
    parsed: &Parsed,
    p: &InPatient,
    local: i64,
    matches: &BTreeMap<String, PatientChoice>,
) -> Result<(), CoreError> {
    let here = crate::chart::patient::get(tx, local)?;
    let (d, restricted_there) = p
        .demographics
        .as_ref()
        .expect("every patient parsed has demographics");
    let id = clip(&p.src);
    if *restricted_there && !here.restricted {
        return Err(CoreError::InvalidInput(format!(
            "{id} is a restricted chart in this file and patient {local} here, imported from it before, is not: restrict patient {local} first."
        )));
    }
    if here.restricted
        && !crate::search::openable_restricted(tx, ctx)?
            .iter()
            .any(|(o, _)| *o == local)
    {
        return Err(CoreError::InvalidInput(format!(
            "Patient {local} is a restricted chart you may not open; records cannot be added to it."
        )));
    }
    if matches.get(&p.src) == Some(&PatientChoice::Same(local)) {
        return Ok(());
    }
    let same = identified(tx, ctx, parsed, p)?
        .iter()
        .any(|c| c.id.0 == local)
        || crate::chart::patient::possible_duplicates(tx, ctx, d)?
            .iter()
            .any(|c| c.id.0 == local);
    if same {
        Ok(())
    } else {
        Err(CoreError::InvalidFile(format!(
            "{id}: this patient of the file was imported before as patient {local}, but the file now gives another name or birth date. Nothing was imported. If it is the same person, say so with --match {id}={local}."
        )))
    }
}

/// How the diastolic row of an imported blood-pressure panel is remembered (the panel's id,
/// whose systolic row is remembered as the Observation).
const DIASTOLIC: &str = "Observation:diastolic";

/// How another system's "no known allergies" statement is remembered (the patient as the
/// local id); a Chartroom export's is an AllergyIntolerance whose id starts `nka`.
const NONE_KNOWN: &str = "AllergyIntolerance:none-known";

/// How a patient's identifier from another system's file is remembered: the identifier's
/// system as the source, its value as the id, the chart here as the local id.
const PATIENT_IDENTIFIER: &str = "Patient:identifier";

/// The charts here a patient of the file names by identifier: this vault's own MRN (a
/// lab's file), or an identifier an earlier import from another system brought in. A
/// restricted chart counts only for someone who may open it, as in the registration's check.
fn identified(
    tx: &Transaction<'_>,
    ctx: &crate::session::Ctx<'_>,
    parsed: &Parsed,
    p: &InPatient,
) -> Result<Vec<crate::chart::patient::DuplicateCandidate>, CoreError> {
    let mut ids: Vec<i64> = Vec::new();
    for (system, value) in &p.identifiers {
        if *system == parsed.own_mrn_system {
            ids.extend(
                tx.prepare_cached("SELECT id FROM patients WHERE mrn = ?1")?
                    .query_row([value], |r| r.get::<_, i64>(0))
                    .optional()?,
            );
        }
        ids.extend(known(tx, system, PATIENT_IDENTIFIER, value)?);
    }
    ids.sort_unstable();
    ids.dedup();
    let mut out = Vec::new();
    let mut openable = None;
    for id in ids {
        let here = crate::chart::patient::get(tx, id)?;
        if here.restricted {
            if openable.is_none() {
                openable = Some(crate::search::openable_restricted(tx, ctx)?);
            }
            if !openable
                .as_ref()
                .is_some_and(|list| list.iter().any(|(o, _)| *o == id))
            {
                continue;
            }
        }
        let d = &here.demographics;
        out.push(crate::chart::patient::DuplicateCandidate {
            id: here.id,
            mrn: here.mrn.clone(),
            family: d.family.clone(),
            given: d.given.clone(),
            birth_date: d.birth_date.format("%Y-%m-%d").to_string(),
            phone: d.phone.clone(),
            matched: "identifier",
        });
    }
    Ok(out)
}

/// Remembers a patient's identifiers from another system against their chart here, for the
/// next file that names them; an identifier already naming a chart keeps it.
fn remember_identifiers(
    tx: &Transaction<'_>,
    p: &InPatient,
    local: i64,
    now: &Arrival,
) -> Result<(), CoreError> {
    // A restricted chart's demographics are sealed; its numbers elsewhere are not left in
    // clear beside it.
    if p.identifiers.is_empty() || crate::chart::patient::get(tx, local)?.restricted {
        return Ok(());
    }
    for (system, value) in &p.identifiers {
        tx.prepare_cached(
            "INSERT OR IGNORE INTO imported_records (source, resource_type, source_id, local_id, imported_at, signer_key)
             VALUES (?1, ?2, ?3, ?4, ?5, NULL)",
        )?
        .execute(params![system, PATIENT_IDENTIFIER, value, local, now.at])?;
    }
    Ok(())
}

/// How an imported laboratory Observation is remembered (apart from vital signs, which
/// live in another table); it counts as an Observation in the report.
const LAB_RESULT: &str = "Observation:laboratory";

/// Who recorded an imported item and when.
fn recorded(stamp: &fhir::Stamp) -> Result<Stamp, CoreError> {
    Stamp::parse(&stamp.recorded_at, &stamp.recorded_by)
}

/// Who last changed an imported item and when.
/// Marks items imported as entered in error there, with the reason the file gives.
fn mark(
    tx: &Transaction<'_>,
    item: Corrected,
    records: Vec<RecordId>,
    reason: &str,
    marked: Stamp,
) -> Result<(), CoreError> {
    apply(
        tx,
        &Change::EnteredInError(EnteredInError {
            item,
            records,
            reason: reason.to_owned(),
            marked,
        }),
    )
    .map(drop)
}

fn updated(stamp: &fhir::Stamp) -> Result<Stamp, CoreError> {
    Stamp::parse(&stamp.updated_at, &stamp.updated_by)
}

/// A required time field of a resource, as written.
fn fhir_time(r: &Res<'_>, path: &str) -> Result<String, CoreError> {
    Ok(r.str(path)?.to_owned())
}

fn time(text: &str) -> Result<chrono::DateTime<chrono::Utc>, CoreError> {
    chartroom_audit::parse_time(text)
        .ok_or_else(|| invalid("a time in the file", "it is not a date and time"))
}

fn date(text: Option<&str>) -> Result<Option<NaiveDate>, CoreError> {
    text.map(|t| {
        NaiveDate::parse_from_str(t, "%Y-%m-%d")
            .map_err(|_| invalid("a date in the file", "it is not a date"))
    })
    .transpose()
}

/// Where an item in a chart came from, when an import brought it in.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ImportOrigin {
    /// The item's kind as the chart's sections name it: `patient`, `encounter`, `vitals`,
    /// `problem`, `allergy`, `no_known_allergies`, `medication`, `immunization`,
    /// `lab_result`, `lab_report` or `note`.
    pub item: String,
    /// The item's id in this vault (the patient's id for `patient` and
    /// `no_known_allergies`).
    pub id: i64,
    /// The vault it came from (`urn:chartroom:vault:…`).
    pub source: String,
    /// The fingerprint (`SHA256:…`) of the sending vault's key that signed the file it came
    /// in with; absent for a file made before exports were signed.
    pub signed_by: Option<String>,
    pub imported_at: String,
    /// From another system's FHIR (not a Chartroom vault): recorded and signed there, with
    /// no vault signature to check.
    pub foreign: bool,
}

/// The imported items of one patient's chart, oldest import first: the patient, and the
/// clinical items or notes when `clinical` / `notes` (what the reader may see).
pub(crate) fn origins(
    conn: &rusqlite::Connection,
    patient_id: i64,
    clinical: bool,
    notes: bool,
) -> Result<Vec<ImportOrigin>, CoreError> {
    // (resource type in the file, chart item, table of this vault's items)
    const KINDS: [(&str, &str, &str); 11] = [
        ("Encounter", "encounter", "encounters"),
        ("Observation", "vitals", "observations"),
        (DIASTOLIC, "vitals", "observations"),
        ("Condition", "problem", "problems"),
        ("AllergyIntolerance", "allergy", "allergies"),
        ("MedicationRequest", "medication", "medications"),
        ("MedicationStatement", "medication", "medications"),
        ("Immunization", "immunization", "immunizations"),
        (LAB_RESULT, "lab_result", "lab_results"),
        ("DiagnosticReport", "lab_report", "lab_reports"),
        ("DocumentReference", "note", "notes"),
    ];
    let mut out = Vec::new();
    let mut read = |sql: &str, item: &str| -> Result<(), CoreError> {
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt.query_map([patient_id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<Vec<u8>>>(3)?,
            ))
        })?;
        for row in rows {
            let (id, source, imported_at, key) = row?;
            let signed_by = key
                .and_then(|k| <[u8; 32]>::try_from(k).ok())
                .map(|k| super::signing::fingerprint(&k));
            out.push(ImportOrigin {
                item: item.to_owned(),
                id,
                foreign: !fhir::is_source_uri(&source),
                source,
                signed_by,
                imported_at,
            });
        }
        Ok(())
    };
    read(
        "SELECT local_id, source, imported_at, signer_key FROM imported_records
          WHERE resource_type = 'Patient' AND local_id = ?1",
        "patient",
    )?;
    if clinical {
        // A "no known allergies" statement is kept against the patient (its id in the file
        // is `nka…`), an allergy against its own row.
        read(
            "SELECT local_id, source, imported_at, signer_key FROM imported_records
              WHERE local_id = ?1
                AND ((resource_type = 'AllergyIntolerance' AND source LIKE 'urn:chartroom:vault:%'
                      AND source_id LIKE 'nka%')
                     OR resource_type = 'AllergyIntolerance:none-known')",
            "no_known_allergies",
        )?;
    }
    for (resource, item, table) in KINDS {
        let shown = if table == "notes" { notes } else { clinical };
        if !shown {
            continue;
        }
        let nka = if resource == "AllergyIntolerance" {
            " AND NOT (source LIKE 'urn:chartroom:vault:%' AND source_id LIKE 'nka%')"
        } else {
            ""
        };
        read(
            &format!(
                "SELECT local_id, source, imported_at, signer_key FROM imported_records
                  WHERE resource_type = '{resource}'{nka}
                    AND local_id IN (SELECT id FROM {table} WHERE patient_id = ?1)"
            ),
            item,
        )?;
    }
    out.sort_by(|a, b| a.imported_at.cmp(&b.imported_at));
    Ok(out)
}
