//! Import: a Chartroom export read back, checked whole, then written in one transaction.

use std::collections::{BTreeMap, HashMap, HashSet};

use chartroom_audit::format_time;
use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;

use super::counts_words;
use super::fhir::{
    self, clip, count, invalid, number_of, valid_id, Counts, InAllergy, InEncounter,
    InImmunization, InMedication, InNote, InObservation, InProblem, Res, RESOURCE_TYPES,
};
use crate::audit::Op;
use crate::patients::{self, Demographics, NewPatient};
use crate::record::{self, NoteKind};
use crate::roles::Permission;
use crate::{CoreError, Session};

/// One patient in an import report.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ts_rs::TS)]
pub struct ImportedPatient {
    /// The patient's id in this vault.
    pub id: i64,
    pub mrn: String,
    /// The patient's id in the export.
    pub source_id: String,
    /// False when an earlier import already brought this patient in.
    pub new: bool,
    /// Resources added for this patient (the Patient itself included when new).
    pub added: u64,
}

/// What an import added, and what it found already here.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ts_rs::TS)]
pub struct ImportReport {
    /// The vault the export came from.
    pub source: String,
    pub patients_added: u64,
    pub patients_already_here: u64,
    #[ts(type = "Record<string, number>")]
    pub added: Counts,
    #[ts(type = "Record<string, number>")]
    pub already_here: Counts,
    pub patients: Vec<ImportedPatient>,
}

#[derive(Default)]
pub(crate) struct InPatient {
    src: String,
    demographics: Option<(Demographics, bool)>,
    encounters: Vec<(String, InEncounter)>,
    observations: Vec<(String, InObservation, Option<String>)>,
    problems: Vec<(String, InProblem)>,
    none_known: Option<(String, String, String)>,
    allergies: Vec<(String, InAllergy)>,
    medications: Vec<(String, InMedication)>,
    immunizations: Vec<(String, InImmunization)>,
    /// Parents before their addenda.
    notes: Vec<(String, InNote)>,
}

/// A whole export, checked: every resource valid, every reference inside the file.
pub(crate) struct Parsed {
    pub source: String,
    patients: Vec<InPatient>,
}

impl Parsed {
    pub fn patient_count(&self) -> usize {
        self.patients.len()
    }
}

/// Reads and checks a decrypted export. Nothing here touches the vault.
pub(crate) fn parse(plain: &[u8], today: chrono::NaiveDate) -> Result<Parsed, CoreError> {
    let values = super::archive::resources(plain)?;
    let mut source: Option<String> = None;
    let mut seen = HashSet::new();
    let mut all: Vec<Res<'_>> = Vec::with_capacity(values.len());
    for v in &values {
        let r = Res::new(v)?;
        if !RESOURCE_TYPES.contains(&r.kind()) {
            return Err(r.err("Chartroom does not import this resource type"));
        }
        if !valid_id(r.id()) {
            return Err(r.err("its id is not a valid FHIR id"));
        }
        let from = r
            .opt_str("meta.source")?
            .filter(|s| s.starts_with("urn:chartroom:vault:"))
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
        all.push(r);
    }
    let source = source.ok_or_else(|| invalid("the file", "it holds no resources"))?;

    let mut patients: BTreeMap<String, InPatient> = BTreeMap::new();
    for r in all.iter().filter(|r| r.kind() == "Patient") {
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
    let mut placed: Vec<(String, &Res<'_>)> = Vec::new();
    for r in all.iter().filter(|r| r.kind() != "Patient") {
        match r.kind() {
            "Encounter" => {
                let p = owner(r, "subject.reference")?;
                encounter_of.insert(r.id().to_owned(), p.clone());
                placed.push((p, r));
            }
            "DocumentReference" => {
                let p = owner(r, "subject.reference")?;
                note_of.insert(r.id().to_owned(), p.clone());
                placed.push((p, r));
            }
            "Provenance" => {
                let (target, digest) = fhir::read_provenance(r)?;
                if signatures.insert(target, digest).is_some() {
                    return Err(r.err("a note has two signatures"));
                }
            }
            "AllergyIntolerance" | "Immunization" => {
                placed.push((owner(r, "patient.reference")?, r));
            }
            _ => placed.push((owner(r, "subject.reference")?, r)),
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
    for (p, r) in placed {
        let entry = patients.get_mut(&p).expect("checked above");
        let id = r.id().to_owned();
        match r.kind() {
            "Encounter" => entry.encounters.push((id, fhir::read_encounter(r)?)),
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
            "MedicationStatement" => entry.medications.push((id, fhir::read_medication(r)?)),
            "Immunization" => entry
                .immunizations
                .push((id, fhir::read_immunization(r, today)?)),
            "DocumentReference" => {
                let note = fhir::read_note(r)?;
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
                let expected = record::digest_of(
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
                entry.notes.push((id, note));
            }
            _ => unreachable!("placed holds only the types matched above"),
        }
    }
    let mut list: Vec<InPatient> = patients.into_values().collect();
    for p in &mut list {
        p.notes = parents_first(std::mem::take(&mut p.notes))?;
    }
    Ok(Parsed {
        source,
        patients: list,
    })
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

fn remember(
    tx: &Transaction<'_>,
    source: &str,
    kind: &str,
    id: &str,
    local: i64,
    now: &str,
) -> Result<(), CoreError> {
    tx.prepare_cached(
        "INSERT INTO imported_records (source, resource_type, source_id, local_id, imported_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![source, kind, id, local, now])?;
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
    now: &str,
    added: &mut Counts,
) -> Result<(), CoreError> {
    remember(tx, source, kind, id, local, now)?;
    count(added, kind);
    Ok(())
}

/// Writes a checked export in one transaction, skipping what earlier imports brought in.
pub(crate) fn write(session: &mut Session, parsed: Parsed) -> Result<ImportReport, CoreError> {
    let user_id = session.actor_user_id();
    session.run(
        Permission::ImportRecords,
        Op::create("records.import"),
        false,
        |tx, op, ctx| {
            let now = format_time(ctx.now);
            let by = ctx.actor.name.as_str();
            let source = parsed.source.as_str();
            let mut report = ImportReport {
                source: source.to_owned(),
                patients_added: 0,
                patients_already_here: 0,
                added: Counts::new(),
                already_here: Counts::new(),
                patients: Vec::new(),
            };
            for p in &parsed.patients {
                let mut added = Counts::new();
                let (local, new) = match known(tx, source, "Patient", &p.src)? {
                    Some(local) => {
                        count(&mut report.already_here, "Patient");
                        (local, false)
                    }
                    None => {
                        let (demographics, restricted) =
                            p.demographics.clone().expect("every patient parsed has demographics");
                        let new = NewPatient {
                            demographics,
                            restricted,
                        };
                        let made = patients::insert(tx, &new, &now, by)?;
                        remember(tx, source, "Patient", &p.src, made.id, &now)?;
                        // Someone must be able to open a restricted chart: the importer.
                        if restricted {
                            if let Some(uid) = user_id {
                                tx.execute(
                                    "INSERT OR IGNORE INTO care_team (patient_id, user_id, added_at, added_by) VALUES (?1, ?2, ?3, ?4)",
                                    params![made.id, uid, now, by],
                                )?;
                            }
                        }
                        count(&mut added, "Patient");
                        (made.id, true)
                    }
                };
                let mut encounters: HashMap<&str, i64> = HashMap::new();
                for (id, e) in &p.encounters {
                    let local_e = match known(tx, source, "Encounter", id)? {
                        Some(l) => {
                            count(&mut report.already_here, "Encounter");
                            l
                        }
                        None => {
                            tx.prepare_cached(
                                "INSERT INTO encounters (patient_id, start, kind, clinician_id, clinician, reason, created_at, created_by)
                                 VALUES (?1, ?2, ?3, NULL, ?4, ?5, ?6, ?7)",
                            )?
                            .execute(params![local, e.start, e.kind.as_str(), e.clinician, e.reason, e.stamp.recorded_at, e.stamp.recorded_by])?;
                            let l = tx.last_insert_rowid();
                            note_added(tx, source, "Encounter", id, l, &now, &mut added)?;
                            l
                        }
                    };
                    encounters.insert(id.as_str(), local_e);
                }
                // An encounter named by a new item but imported before (a later export).
                let encounter = |tx: &Transaction<'_>, id: &Option<String>| -> Result<Option<i64>, CoreError> {
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
                    let l = record::insert_observation(
                        tx,
                        local,
                        encounter(tx, enc)?,
                        o.vital,
                        o.value,
                        &o.effective,
                        &o.recorded_by,
                        &o.recorded_at,
                    )?;
                    note_added(tx, source, "Observation", id, l, &now, &mut added)?;
                }
                for (id, c) in &p.problems {
                    if held(tx, source, "Condition", id, &mut report)? {
                        continue;
                    }
                    tx.prepare_cached(
                        "INSERT INTO problems (patient_id, text, system, code, status, onset, resolved_on,
                            recorded_by, recorded_at, updated_by, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    )?
                    .execute(params![
                        local,
                        c.text,
                        c.coding.as_ref().map(|(s, _)| s.as_str()),
                        c.coding.as_ref().map(|(_, v)| v.as_str()),
                        c.status,
                        c.onset,
                        c.resolved_on,
                        c.stamp.recorded_by,
                        c.stamp.recorded_at,
                        c.stamp.updated_by,
                        c.stamp.updated_at
                    ])?;
                    note_added(tx, source, "Condition", id, tx.last_insert_rowid(), &now, &mut added)?;
                }
                if let Some((id, at, who)) = &p.none_known {
                    if !held(tx, source, "AllergyIntolerance", id, &mut report)? {
                        tx.execute(
                            "UPDATE patients SET allergy_state = 'no_known_allergies', allergy_state_at = ?2, allergy_state_by = ?3
                             WHERE id = ?1 AND allergy_state = 'unknown'",
                            params![local, at, who],
                        )?;
                        note_added(tx, source, "AllergyIntolerance", id, local, &now, &mut added)?;
                    }
                }
                let mut latest_allergy: Option<(String, String)> = None;
                for (id, a) in &p.allergies {
                    let InAllergy::Allergy { substance, reaction, severity, category, status, stamp } = a else {
                        continue;
                    };
                    if held(tx, source, "AllergyIntolerance", id, &mut report)? {
                        continue;
                    }
                    tx.prepare_cached(
                        "INSERT INTO allergies (patient_id, substance, reaction, severity, category, status,
                            recorded_by, recorded_at, updated_by, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    )?
                    .execute(params![
                        local,
                        substance,
                        reaction,
                        severity.map(|s| s.as_str()),
                        category.map(|c| c.as_str()),
                        status,
                        stamp.recorded_by,
                        stamp.recorded_at,
                        stamp.updated_by,
                        stamp.updated_at
                    ])?;
                    note_added(tx, source, "AllergyIntolerance", id, tx.last_insert_rowid(), &now, &mut added)?;
                    if latest_allergy.as_ref().is_none_or(|(at, _)| *at < stamp.recorded_at) {
                        latest_allergy = Some((stamp.recorded_at.clone(), stamp.recorded_by.clone()));
                    }
                }
                if let Some((at, who)) = latest_allergy {
                    tx.execute(
                        "UPDATE patients SET allergy_state = 'recorded', allergy_state_at = ?2, allergy_state_by = ?3 WHERE id = ?1",
                        params![local, at, who],
                    )?;
                }
                for (id, m) in &p.medications {
                    if held(tx, source, "MedicationStatement", id, &mut report)? {
                        continue;
                    }
                    tx.prepare_cached(
                        "INSERT INTO medications (patient_id, name, dose, route, frequency, start, stop, status,
                            recorded_by, recorded_at, updated_by, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                    )?
                    .execute(params![
                        local,
                        m.name,
                        m.dose,
                        m.route.map(|r| r.as_str()),
                        m.frequency,
                        m.start,
                        m.stop,
                        m.status,
                        m.stamp.recorded_by,
                        m.stamp.recorded_at,
                        m.stamp.updated_by,
                        m.stamp.updated_at
                    ])?;
                    note_added(tx, source, "MedicationStatement", id, tx.last_insert_rowid(), &now, &mut added)?;
                }
                for (id, i) in &p.immunizations {
                    if held(tx, source, "Immunization", id, &mut report)? {
                        continue;
                    }
                    tx.prepare_cached(
                        "INSERT INTO immunizations (patient_id, vaccine, cvx, date, lot, site, status,
                            recorded_by, recorded_at, updated_by, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    )?
                    .execute(params![
                        local,
                        i.vaccine,
                        i.cvx,
                        i.date,
                        i.lot,
                        i.site.map(|s| s.as_str()),
                        i.status,
                        i.stamp.recorded_by,
                        i.stamp.recorded_at,
                        i.stamp.updated_by,
                        i.stamp.updated_at
                    ])?;
                    note_added(tx, source, "Immunization", id, tx.last_insert_rowid(), &now, &mut added)?;
                }
                let mut notes: HashMap<&str, i64> = HashMap::new();
                for (id, n) in &p.notes {
                    if let Some(l) = known(tx, source, "DocumentReference", id)? {
                        count(&mut report.already_here, "DocumentReference");
                        count(&mut report.already_here, "Provenance");
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
                    let enc = encounter(tx, &n.encounter)?;
                    let digest = record::digest_of(local, enc, n.kind, parent, &n.content);
                    let (format, text, [s, o, a, pl]) = record::content_columns(&n.content);
                    tx.prepare_cached(
                        "INSERT INTO notes (patient_id, encounter_id, kind, parent_id, author_id, author, format, text,
                            subjective, objective, assessment, plan, status, created_at, updated_at,
                            signed_by, signed_at, content_sha256)
                         VALUES (?1, ?2, ?3, ?4, NULL, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'signed', ?12, ?13, ?14, ?13, ?15)",
                    )?
                    .execute(params![
                        local, enc, n.kind.as_str(), parent, n.author, format, text, s, o, a, pl,
                        n.created_at, n.signed_at, n.signed_by, digest
                    ])?;
                    let l = tx.last_insert_rowid();
                    notes.insert(id.as_str(), l);
                    note_added(tx, source, "DocumentReference", id, l, &now, &mut added)?;
                    count(&mut added, "Provenance");
                    debug_assert!(n.kind != NoteKind::Note || parent.is_none());
                }
                let total: u64 = added.values().sum();
                let mrn: String = tx.query_row("SELECT mrn FROM patients WHERE id = ?1", [local], |r| r.get(0))?;
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
                    id: local,
                    mrn,
                    source_id: p.src.clone(),
                    new,
                    added: total,
                });
            }
            op.detail = Some(format!(
                "from {source}: {} patients new, {} already here; added {}",
                report.patients_added,
                report.patients_already_here,
                counts_words(&report.added)
            ));
            Ok(report)
        },
    )
}
