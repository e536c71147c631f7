//! Imports from other systems: FHIR R4 as Synthea and US Core-speaking EHRs write it
//! (transaction, batch, collection and searchset Bundles; Bulk Data NDJSON, one file or a tar
//! archive of them). Each resource Chartroom keeps is read into the same shapes a Chartroom
//! export is read into, with the same checks, and goes to the same writer; every other
//! resource is counted in the report with the reason it was left out. Nothing here touches
//! the vault.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;

use serde_json::Value;

use super::archive::Limits;
use super::fhir::{
    self, clip, invalid, valid_id, InAllergy, InEncounter, InImmunization, InLabReport,
    InLabResult, InMedication, InNote, InObservation, InProblem, Res, Stamp,
};
use super::import::{InPatient, Parsed, Skipped};
use crate::chart::encounter::EncounterKind;
use crate::chart::note::{NoteContent, NoteKind};
use crate::chart::problem::CodeSystem;
use crate::chart::vitals::Vital;
use crate::CoreError;

const LOINC: &str = "http://loinc.org";
const SNOMED: &str = "http://snomed.info/sct";
const CVX: &str = "http://hl7.org/fhir/sid/cvx";
const ICD10_CM: &str = "http://hl7.org/fhir/sid/icd-10-cm";
const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
const V2_0074: &str = "http://terminology.hl7.org/CodeSystem/v2-0074";
const INTERPRETATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";
/// Why an item marked entered in error there is so here (the file gives no reason).
fn marked_there() -> String {
    "Marked entered in error in the record it came from.".to_owned()
}

/// None for an item refuted there; else whether it was entered in error there (its
/// verification status in HL7's code system `system`).
fn verified(r: &Res<'_>, system: &str) -> Option<bool> {
    let status = code_of(
        r.at("verificationStatus"),
        &format!("http://terminology.hl7.org/CodeSystem/{system}"),
    );
    (status != Some("refuted")).then_some(status == Some("entered-in-error"))
}

/// What an item's author is when the file names nobody.
pub(crate) const UNNAMED: &str = "(not named in the file)";

/// One resource of the file as JSON text, with the `fullUrl` its Bundle entry gave it. It is
/// parsed each time it is read and dropped after, so an import holds the file's text, not
/// the whole file as parsed JSON (which takes many times as much).
pub(crate) struct Entry {
    pub full_url: Option<String>,
    pub text: String,
}

/// The resources of a decrypted (or plain) file from another system: a Bundle or a single
/// resource, NDJSON, or a tar archive of NDJSON files (a Bulk Data export; its manifest, if
/// there, is not needed).
pub(crate) fn entries(plain: &[u8], limits: Limits) -> Result<Vec<Entry>, CoreError> {
    let first = plain.iter().find(|b| !b.is_ascii_whitespace());
    let mut out = Vec::new();
    if first == Some(&b'{') {
        if plain.len() as u64 > limits.entry {
            return Err(too_big("The file", limits.entry));
        }
        let text =
            std::str::from_utf8(plain).map_err(|_| invalid("the file", "it is not UTF-8 text"))?;
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let one_per_line = lines
            .next()
            .is_some_and(|l| serde_json::from_str::<Value>(l).is_ok())
            && lines.next().is_some();
        if one_per_line {
            ndjson("the file", text, limits, &mut out)?;
        } else {
            super::archive::check_density("the file", plain)?;
            let doc: Value = serde_json::from_str(text)
                .map_err(|e| invalid("the file", format!("not valid JSON ({e})")))?;
            document(doc, limits, &mut out)?;
        }
    } else {
        let mut archive = tar::Archive::new(plain);
        let list = archive.entries().map_err(|_| not_fhir())?;
        let mut any = false;
        for entry in list {
            let mut entry = entry.map_err(|_| {
                if any {
                    invalid("the archive", "it is damaged (a tar entry cannot be read)")
                } else {
                    not_fhir()
                }
            })?;
            any = true;
            // Names are only compared, never used as paths.
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let shown: String = name.chars().take(60).collect();
            if entry.header().entry_type() == tar::EntryType::Directory {
                continue;
            }
            if entry.header().entry_type() != tar::EntryType::Regular {
                return Err(invalid(
                    &shown,
                    "a link or special file in the archive, where only plain files belong",
                ));
            }
            let size = entry.header().size().unwrap_or(u64::MAX);
            if size > limits.entry || entry.size() > limits.entry {
                return Err(too_big(&format!("The file {shown}"), limits.entry));
            }
            let base = name.rsplit('/').next().unwrap_or(&name);
            // A Bulk Data manifest (its output is what the archive holds) and hidden files
            // that archivers add are not resources.
            if base.ends_with(".json") || base.starts_with('.') {
                continue;
            }
            if !base.ends_with(".ndjson") {
                return Err(invalid(
                    &shown,
                    "an unexpected file in a Bulk Data archive (only .ndjson files are read)",
                ));
            }
            let mut bytes = Vec::new();
            (&mut entry)
                .take(limits.entry + 1)
                .read_to_end(&mut bytes)
                .map_err(|_| {
                    invalid("the archive", "it is damaged (a tar entry cannot be read)")
                })?;
            let text =
                String::from_utf8(bytes).map_err(|_| invalid(&shown, "it is not UTF-8 text"))?;
            ndjson(&shown, &text, limits, &mut out)?;
        }
        if !any {
            return Err(not_fhir());
        }
    }
    if out.is_empty() {
        return Err(invalid("the file", "it holds no resources"));
    }
    Ok(out)
}

fn not_fhir() -> CoreError {
    invalid(
        "the file",
        "it is neither a FHIR Bundle, FHIR NDJSON nor a Bulk Data archive",
    )
}

fn too_big(what: &str, limit: u64) -> CoreError {
    CoreError::InvalidFile(format!(
        "{what} is larger than Chartroom imports ({}). Nothing was imported.",
        super::archive::bytes_in_words(limit)
    ))
}

fn too_many(limits: Limits) -> CoreError {
    CoreError::InvalidFile(format!(
        "The file holds more than {} resources, more than Chartroom imports at once. Nothing was imported.",
        limits.resources
    ))
}

fn ndjson(name: &str, text: &str, limits: Limits, out: &mut Vec<Entry>) -> Result<(), CoreError> {
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        // Checked to be JSON here, naming the line; read again when it is imported.
        let label = format!("{name} line {}", i + 1);
        super::archive::check_density(&label, line.as_bytes())?;
        serde_json::from_str::<serde::de::IgnoredAny>(line).map_err(|e| {
            invalid(
                &format!("{name} line {}", i + 1),
                format!("not valid JSON ({e})"),
            )
        })?;
        if out.len() == limits.resources {
            return Err(too_many(limits));
        }
        out.push(Entry {
            full_url: None,
            text: line.to_owned(),
        });
    }
    Ok(())
}

/// A Bundle's entries, or a single resource.
fn document(doc: Value, limits: Limits, out: &mut Vec<Entry>) -> Result<(), CoreError> {
    if doc.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        if doc.get("resourceType").and_then(Value::as_str).is_none() {
            return Err(invalid("the file", "its JSON is not a FHIR resource"));
        }
        out.push(Entry {
            full_url: None,
            text: doc.to_string(),
        });
        return Ok(());
    }
    let kind = doc.get("type").and_then(Value::as_str).unwrap_or_default();
    if !matches!(
        kind,
        "transaction" | "batch" | "collection" | "searchset" | "document"
    ) {
        return Err(invalid(
            "the Bundle",
            format!(
                "a Bundle of type \"{}\" holds no records to import (transaction, batch, collection, searchset or document do)",
                clip(kind)
            ),
        ));
    }
    let Some(Value::Array(list)) = doc.get("entry") else {
        return Err(invalid("the Bundle", "it has no entries"));
    };
    if list.len() > limits.resources {
        return Err(too_many(limits));
    }
    let Value::Object(mut doc) = doc else {
        unreachable!("checked to be a resource above")
    };
    let Some(Value::Array(list)) = doc.remove("entry") else {
        unreachable!("checked above")
    };
    for (i, e) in list.into_iter().enumerate() {
        let Value::Object(mut e) = e else {
            return Err(invalid("the Bundle", format!("entry {i} is not an object")));
        };
        if let Some(method) = e.get("request").and_then(|r| r.get("method")) {
            let method = method.as_str().unwrap_or_default();
            if !matches!(method, "POST" | "PUT") {
                return Err(invalid(
                    &format!("the Bundle's entry {i}"),
                    format!(
                        "its request is {}: an import only adds records (POST or PUT)",
                        clip(method)
                    ),
                ));
            }
        }
        let value = e
            .remove("resource")
            .ok_or_else(|| invalid(&format!("the Bundle's entry {i}"), "it has no resource"))?;
        let full_url = match e.remove("fullUrl") {
            Some(Value::String(u)) => Some(u),
            _ => None,
        };
        out.push(Entry {
            full_url,
            text: value.to_string(),
        });
    }
    Ok(())
}

/// Where a reference inside the file leads: `urn:uuid:…` and other `fullUrl`s, `Type/id`,
/// and conditional references (`Type?identifier=s|v`).
#[derive(Default)]
struct Index {
    keys: HashMap<String, usize>,
    /// (type, identifier system, value) and (type, "", value).
    identifiers: HashMap<(String, String, String), usize>,
}

impl Index {
    /// Adds resource `i` (its id already given) under the names a reference may use.
    fn add(&mut self, i: usize, value: &Value, full_url: Option<&str>) {
        let kind = value["resourceType"].as_str().unwrap_or_default();
        let id = value["id"].as_str().unwrap_or_default();
        self.keys.insert(format!("{kind}/{id}"), i);
        if let Some(u) = full_url {
            self.keys.insert(u.to_owned(), i);
        }
        for ident in value
            .get("identifier")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let system = ident.get("system").and_then(Value::as_str).unwrap_or("");
            if let Some(v) = ident.get("value").and_then(Value::as_str) {
                self.identifiers
                    .insert((kind.into(), system.into(), v.into()), i);
                self.identifiers
                    .insert((kind.into(), String::new(), v.into()), i);
            }
        }
    }

    fn find(&self, text: &str) -> Option<usize> {
        if let Some(i) = self.keys.get(text) {
            return Some(*i);
        }
        if let Some((kind, query)) = text.split_once('?') {
            let (system, value) = query
                .split('&')
                .find_map(|p| p.strip_prefix("identifier="))
                .map(|v| v.split_once('|').unwrap_or(("", v)))?;
            return self
                .identifiers
                .get(&(kind.into(), system.into(), value.into()))
                .copied();
        }
        let plain = text.split("/_history/").next().unwrap_or(text);
        // An absolute URL names a resource on that server: only a fullUrl of the file is it.
        if plain.contains(':') {
            return self.keys.get(plain).copied();
        }
        let mut parts = plain.rsplit('/');
        let id = parts.next()?;
        let kind = parts.next()?;
        self.keys.get(&format!("{kind}/{id}")).copied()
    }
}

/// What reading the file found besides the records it keeps.
#[derive(Default)]
struct Tally {
    skipped: BTreeMap<(String, String), u64>,
    warnings: Vec<String>,
}

impl Tally {
    fn skip(&mut self, kind: &str, why: impl Into<String>) {
        *self.skipped.entry((kind.into(), why.into())).or_default() += 1;
    }

    fn warn(&mut self, text: String) {
        if !self.warnings.contains(&text) && self.warnings.len() < 200 {
            self.warnings.push(text);
        }
    }
}

/// The patients and records of another system's file, checked.
pub(crate) fn parse(
    all: Vec<Entry>,
    today: chrono::NaiveDate,
    source: Option<&str>,
) -> Result<Parsed, CoreError> {
    // A first reading of every resource: its type and id (its own, or its fullUrl's
    // `urn:uuid:…`, which is how a second import of the same file recognises it), the names
    // references may use for it, and the few resources others are named by (people,
    // organizations, medications), kept parsed. Everything else is read again when it is
    // imported, one at a time.
    let mut seen = HashSet::new();
    let mut heads: Vec<(String, String)> = Vec::with_capacity(all.len());
    let mut index = Index::default();
    let mut named: HashMap<usize, Value> = HashMap::new();
    let mut meta_source: Option<String> = None;
    let mut patient_system: Option<String> = None;
    for (i, e) in all.iter().enumerate() {
        let mut v = super::archive::value_of(&e.text)?;
        let obj = v
            .as_object_mut()
            .ok_or_else(|| invalid("the file", "a resource is not a JSON object"))?;
        let kind = obj
            .get("resourceType")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("the file", "a resource has no resourceType"))?
            .to_owned();
        if obj.get("id").and_then(Value::as_str).is_none() {
            let id = id_from_url(e.full_url.as_deref()).ok_or_else(|| {
                invalid(
                    &kind,
                    "a resource has neither an id nor a fullUrl, so a second import could not recognise it",
                )
            })?;
            obj.insert("id".into(), Value::String(id.to_owned()));
        }
        let id = obj["id"].as_str().unwrap_or_default().to_owned();
        if !valid_id(&id) {
            return Err(invalid(
                &format!("{kind}/{}", clip(&id)),
                "its id is not a valid FHIR id",
            ));
        }
        if !seen.insert((kind.clone(), id.clone())) {
            return Err(invalid(
                &format!("{kind}/{id}"),
                "it appears twice in the file",
            ));
        }
        if meta_source.is_none() {
            meta_source = v
                .pointer("/meta/source")
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        if kind == "Patient" && patient_system.is_none() {
            // A patient's identifier in a Chartroom vault (a lab's file naming this clinic's
            // MRN) does not name the file's source.
            patient_system = v
                .pointer("/identifier/0/system")
                .and_then(Value::as_str)
                .filter(|s| !s.to_lowercase().contains("chartroom"))
                .map(str::to_owned);
        }
        index.add(i, &v, e.full_url.as_deref());
        if NAMED.contains(&kind.as_str()) {
            named.insert(i, v);
        }
        heads.push((kind, id));
    }
    drop(seen);
    let source = match source {
        Some(s) => s.to_owned(),
        None => source_of(meta_source, patient_system)?,
    };
    check_source(&source)?;
    // A resource read again, with the id the first reading gave it.
    let load = |i: usize| -> Result<Value, CoreError> {
        let mut v = super::archive::value_of(&all[i].text)?;
        if let Some(obj) = v.as_object_mut() {
            obj.insert("id".into(), Value::String(heads[i].1.clone()));
        }
        Ok(v)
    };
    let reader = Reader {
        heads: &heads,
        index: &index,
        named: &named,
    };
    let mut tally = Tally::default();

    let mut patients: BTreeMap<String, InPatient> = BTreeMap::new();
    let of_kind = |kind: &'static str| super::import::indices_of(&heads, kind);
    for i in of_kind("Patient") {
        let r = &Res::new(&named[&i])?;
        let (demographics, restricted) = reader.patient(r, today, &mut tally)?;
        let p = patients.entry(r.id().to_owned()).or_default();
        p.src = r.id().to_owned();
        p.demographics = Some((demographics, restricted));
        p.identifiers = identifiers(r);
    }
    // Each encounter's patient and clinician, for the items that cite it.
    let mut encounter_of: HashMap<&str, (String, String)> = HashMap::new();
    for i in of_kind("Encounter") {
        let v = load(i)?;
        let r = &Res::new(&v)?;
        let p = reader.owner(r, &["subject"], &patients)?;
        let clinician = reader
            .first_name(r, "participant", "individual")
            .unwrap_or_else(|| UNNAMED.into());
        encounter_of.insert(heads[i].1.as_str(), (p, clinician));
    }
    // An item's encounter: in the file, and the same patient's.
    let encounter = |r: &Res<'_>, path: &str, p: &str| -> Result<Option<String>, CoreError> {
        let Some(text) = r.opt_str(&format!("{path}.reference"))? else {
            return Ok(None);
        };
        let i = reader.resolve(r, path, text, &["Encounter"])?;
        let id = heads[i].1.as_str();
        match encounter_of.get(id) {
            Some((q, _)) if q == p => Ok(Some(id.to_owned())),
            _ => Err(r.err(format!("{path} refers to an encounter of another patient"))),
        }
    };
    let clinician_of = |enc: &Option<String>| -> Option<String> {
        enc.as_deref()
            .and_then(|e| encounter_of.get(e))
            .map(|(_, c)| c.clone())
            .filter(|c| c != UNNAMED)
    };
    // Laboratory Observations taken in, by id, with their patient.
    let mut labs: HashMap<String, String> = HashMap::new();
    let mut reports: Vec<(usize, String)> = Vec::new();
    for (i, (kind, _)) in heads.iter().enumerate() {
        let kind = kind.as_str();
        // Read only what is imported; the rest is counted by its type.
        if !IMPORTED.contains(&kind) {
            match kind {
                "Patient" => {}
                "Practitioner" | "PractitionerRole" | "Organization" | "Location"
                | "Medication" => {
                    tally.skip(
                        kind,
                        "kept as the names on the records that cite it, not as a record of its own",
                    );
                }
                _ => tally.skip(kind, "Chartroom has no place for this resource type"),
            }
            continue;
        }
        let v = load(i)?;
        let r = &Res::new(&v)?;
        match kind {
            "Encounter" => {
                let (p, clinician) = encounter_of[r.id()].clone();
                match reader.encounter(r, clinician)? {
                    Ok(e) => patient(&mut patients, &p)
                        .encounters
                        .push((r.id().to_owned(), e)),
                    Err(why) => tally.skip(kind, why),
                }
            }
            "Observation" => {
                let p = reader.owner(r, &["subject"], &patients)?;
                let enc = encounter(r, "encounter", &p)?;
                match reader.observation(r, clinician_of(&enc))? {
                    Observed::Vitals(o) => {
                        patient(&mut patients, &p)
                            .observations
                            .push((r.id().to_owned(), o, enc))
                    }
                    Observed::Lab(x) => {
                        labs.insert(r.id().to_owned(), p.clone());
                        patient(&mut patients, &p)
                            .lab_results
                            .push((r.id().to_owned(), *x));
                    }
                    Observed::SexualOrientation(code) => {
                        let entry = patient(&mut patients, &p);
                        let d = &mut entry
                            .demographics
                            .as_mut()
                            .expect("every patient parsed has demographics")
                            .0;
                        // The last answer in the file stands; earlier ones are left out, counted.
                        d.sexual_orientation = Some(code);
                        if entry
                            .sexual_orientation
                            .replace(r.id().to_owned())
                            .is_some()
                        {
                            tally.skip(kind, "an earlier sexual orientation answer");
                        }
                    }
                    Observed::Skip(why) => tally.skip(kind, why),
                }
            }
            "DiagnosticReport" => {
                let p = reader.owner(r, &["subject"], &patients)?;
                reports.push((i, p));
            }
            "Condition" => {
                let p = reader.owner(r, &["subject"], &patients)?;
                let enc = encounter(r, "encounter", &p)?;
                match reader.condition(r, clinician_of(&enc))? {
                    Ok(c) => patient(&mut patients, &p)
                        .problems
                        .push((r.id().to_owned(), c)),
                    Err(why) => tally.skip(kind, why),
                }
            }
            "AllergyIntolerance" => {
                let p = reader.owner(r, &["patient"], &patients)?;
                let enc = encounter(r, "encounter", &p)?;
                match reader.allergy(r, clinician_of(&enc))? {
                    Ok(InAllergy::NoneKnown { at, by }) => {
                        let entry = patient(&mut patients, &p);
                        if entry.none_known.is_some() {
                            tally.skip(kind, "a second \"no known allergies\" statement");
                        } else {
                            entry.none_known = Some((r.id().to_owned(), at, by));
                        }
                    }
                    Ok(a) => patient(&mut patients, &p)
                        .allergies
                        .push((r.id().to_owned(), a)),
                    Err(why) => tally.skip(kind, why),
                }
            }
            "MedicationRequest" | "MedicationStatement" => {
                let p = reader.owner(r, &["subject"], &patients)?;
                let path = if r.at("encounter").is_some() {
                    "encounter"
                } else {
                    "context"
                };
                let enc = encounter(r, path, &p)?;
                match reader.medication(r, clinician_of(&enc))? {
                    Ok(m) => patient(&mut patients, &p).medications.push((
                        r.id().to_owned(),
                        kind.to_owned(),
                        m,
                    )),
                    Err(why) => tally.skip(kind, why),
                }
            }
            "Immunization" => {
                let p = reader.owner(r, &["patient"], &patients)?;
                let enc = encounter(r, "encounter", &p)?;
                match reader.immunization(r, clinician_of(&enc), today)? {
                    Ok(i) => patient(&mut patients, &p)
                        .immunizations
                        .push((r.id().to_owned(), i)),
                    Err(why) => tally.skip(kind, why),
                }
            }
            "DocumentReference" => {
                let p = reader.owner(r, &["subject"], &patients)?;
                let enc = encounter(r, "context.encounter.0", &p)?;
                match reader.note(r, enc, &source)? {
                    Ok(n) => patient(&mut patients, &p)
                        .notes
                        .push((r.id().to_owned(), n)),
                    Err(why) => tally.skip(kind, why),
                }
            }
            _ => unreachable!("only the types imported are read here"),
        }
    }
    for (i, p) in reports {
        let v = load(i)?;
        let r = &Res::new(&v)?;
        let enc = encounter(r, "encounter", &p)?;
        match reader.report(r, clinician_of(&enc), enc, &p, &labs)? {
            Ok(rep) => patient(&mut patients, &p)
                .lab_reports
                .push((r.id().to_owned(), rep)),
            Err(why) => tally.skip("DiagnosticReport", why),
        }
    }
    let mut list: Vec<InPatient> = patients.into_values().collect();
    // A report's results each in one report.
    for p in &mut list {
        let mut claimed = HashSet::new();
        for (_, report) in &mut p.lab_reports {
            report.results.retain(|o| claimed.insert(o.clone()));
        }
        // Oldest first as written; the writer takes lists newest first (as a Chartroom export
        // gives them) and writes them in reverse.
        p.lab_reports
            .sort_by(|a, b| b.1.collected.cmp(&a.1.collected));
        p.lab_results
            .sort_by_key(|x| std::cmp::Reverse(x.1.item.collected));
    }
    if list.is_empty() {
        return Err(invalid("the file", "it holds no Patient"));
    }
    Ok(Parsed::foreign(
        source,
        list,
        tally
            .skipped
            .into_iter()
            .map(|((resource_type, reason), count)| Skipped {
                resource_type,
                reason,
                count,
            })
            .collect(),
        tally.warnings,
    ))
}

fn patient<'p>(patients: &'p mut BTreeMap<String, InPatient>, id: &str) -> &'p mut InPatient {
    patients
        .get_mut(id)
        .expect("owners are patients of the file")
}

/// The types read into the chart (the others are counted with why they were left out).
const IMPORTED: [&str; 9] = [
    "Encounter",
    "Observation",
    "DiagnosticReport",
    "Condition",
    "AllergyIntolerance",
    "MedicationRequest",
    "MedicationStatement",
    "Immunization",
    "DocumentReference",
];

/// The types other resources are named by, kept parsed while a file is read.
const NAMED: [&str; 7] = [
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Location",
    "Medication",
    "RelatedPerson",
];

/// The id a resource without one takes from its Bundle entry's fullUrl.
fn id_from_url(url: Option<&str>) -> Option<&str> {
    url.and_then(|u| {
        u.strip_prefix("urn:uuid:")
            .or_else(|| u.strip_prefix("urn:oid:"))
            .or_else(|| u.rsplit('/').next())
    })
}

/// A patient's identifiers (system, value) that match them to a chart here: record numbers
/// and the like. Government numbers (social security, driver's licence, passport, tax) are
/// never kept: matching does not need them and a chart must not hold them.
fn identifiers(r: &Res<'_>) -> Vec<(String, String)> {
    const PRIVATE_TYPES: [&str; 6] = ["SS", "SB", "DL", "PPN", "TAX", "NIIP"];
    let mut out = Vec::new();
    for ident in r
        .value
        .get("identifier")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .take(20)
    {
        let (Some(system), Some(value)) = (
            ident.get("system").and_then(Value::as_str),
            ident.get("value").and_then(Value::as_str),
        ) else {
            continue;
        };
        let private = system == "http://hl7.org/fhir/sid/us-ssn"
            || system.starts_with("http://hl7.org/fhir/sid/passport")
            || system.starts_with("urn:oid:2.16.840.1.113883.4.3.")
            || system == "urn:oid:2.16.840.1.113883.4.1"
            || PRIVATE_TYPES.iter().any(|t| {
                has_code(
                    ident.get("type"),
                    "http://terminology.hl7.org/CodeSystem/v2-0203",
                    t,
                )
            });
        let plain =
            |t: &str| !t.is_empty() && t.chars().count() <= 200 && !t.chars().any(char::is_control);
        if !private && plain(system) && plain(value) {
            out.push((system.to_owned(), value.trim().to_owned()));
        }
    }
    out
}

/// The system a file comes from: what its resources' `meta.source` says, or else the
/// system of its patients' first identifier (Synthea names itself there).
fn source_of(
    meta_source: Option<String>,
    patient_system: Option<String>,
) -> Result<String, CoreError> {
    meta_source
        .or(patient_system)
        .map(|s| s.split('#').next().unwrap_or(&s).to_owned())
        .ok_or_else(|| {
            CoreError::InvalidFile(
                "The file does not say which system it comes from (no meta.source, and no identifier system on its patients). Name it with --source. Nothing was imported."
                    .into(),
            )
        })
}

/// A source is a URI of sensible length; never a Chartroom vault's, whose files must carry
/// that vault's signature and go through the Chartroom reader.
fn check_source(source: &str) -> Result<(), CoreError> {
    if source.is_empty()
        || !source.is_ascii()
        || source.chars().count() > 200
        || source.chars().any(|c| c.is_control() || c.is_whitespace())
        || !source.contains(':')
    {
        return Err(CoreError::InvalidFile(format!(
            "\"{}\" is not a URI naming the system the file comes from. Nothing was imported.",
            clip(source)
        )));
    }
    // Any spelling of a Chartroom vault's name (a case change, a malformed id), not only
    // the exact one, which the Chartroom reader takes.
    if fhir::is_source_uri(source) || source.to_lowercase().contains("chartroom") {
        return Err(CoreError::InvalidFile(format!(
            "\"{}\" names a Chartroom vault in a form no vault writes, and only a vault's own export may name one. Nothing was imported.",
            clip(source)
        )));
    }
    Ok(())
}

/// A time as the trail writes it, from a FHIR dateTime, date, year-month or year.
fn instant(text: &str) -> Option<String> {
    if let Some(t) = chartroom_audit::parse_time(text) {
        let year = chrono::Datelike::year(&t);
        return (crate::zone::FIRST_YEAR..=crate::zone::LAST_YEAR)
            .contains(&year)
            .then(|| chartroom_audit::format_time(t));
    }
    let d = day(text)?;
    chartroom_audit::parse_time(&format!("{d}T00:00:00Z")).map(chartroom_audit::format_time)
}

/// The date (`YYYY-MM-DD`) of a FHIR dateTime or (partial) date.
fn day(text: &str) -> Option<String> {
    let d = match text.len() {
        4 => format!("{text}-01-01"),
        7 => format!("{text}-01"),
        _ => text.get(..10)?.to_owned(),
    };
    let parsed = chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok()?;
    let year = chrono::Datelike::year(&parsed);
    (crate::zone::FIRST_YEAR..=crate::zone::LAST_YEAR)
        .contains(&year)
        .then(|| parsed.format("%Y-%m-%d").to_string())
}

/// A name as Chartroom keeps names of people: plain text, no control characters, clipped.
fn name_text(text: &str) -> Option<String> {
    let t: String = visible(text)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let t: String = t.chars().take(200).collect();
    (!t.is_empty()).then_some(t)
}

/// Text without the invisible characters that make two spellings of one name look the same
/// or different (zero-width spaces and joiners, soft hyphens, direction marks and embeddings,
/// word joiners, byte-order marks).
fn visible(text: &str) -> String {
    text.chars()
        .filter(|c| {
            !matches!(c,
                '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}' | '\u{FEFF}')
        })
        .collect()
}

/// A HumanName's words: its text, or prefix, given and family names.
fn human_name(names: Option<&Value>) -> Option<String> {
    let list = names?.as_array()?;
    let n = list
        .iter()
        .find(|n| n.get("use").and_then(Value::as_str) == Some("official"))
        .or_else(|| list.first())?;
    if let Some(t) = n.get("text").and_then(Value::as_str) {
        return name_text(t);
    }
    let mut words: Vec<&str> = Vec::new();
    for part in ["prefix", "given"] {
        for w in n.get(part).and_then(Value::as_array).into_iter().flatten() {
            words.extend(w.as_str());
        }
    }
    words.extend(n.get("family").and_then(Value::as_str));
    name_text(&words.join(" "))
}

/// A concept's words: its text, or the display of its first coding that has one.
fn concept_text(v: Option<&Value>) -> Option<String> {
    let v = v?;
    if let Some(t) = v.get("text").and_then(Value::as_str) {
        return name_text(t);
    }
    v.get("coding")?
        .as_array()?
        .iter()
        .find_map(|c| c.get("display").and_then(Value::as_str))
        .and_then(name_text)
}

fn code_of<'v>(v: Option<&'v Value>, system: &str) -> Option<&'v str> {
    v?.get("coding")?
        .as_array()?
        .iter()
        .find(|c| c.get("system").and_then(Value::as_str) == Some(system))?
        .get("code")?
        .as_str()
}

fn has_code(v: Option<&Value>, system: &str, code: &str) -> bool {
    v.and_then(|v| v.get("coding"))
        .and_then(Value::as_array)
        .is_some_and(|list| {
            list.iter().any(|c| {
                c.get("system").and_then(Value::as_str) == Some(system)
                    && c.get("code").and_then(Value::as_str) == Some(code)
            })
        })
}

fn stamp(at: String, by: String) -> Stamp {
    Stamp {
        recorded_by: by.clone(),
        recorded_at: at.clone(),
        updated_by: by,
        updated_at: at,
    }
}

/// What an Observation of another system becomes here.
enum Observed {
    Vitals(InObservation),
    Lab(Box<InLabResult>),
    SexualOrientation(String),
    Skip(String),
}

/// Reads resources of the file, resolving the references between them.
struct Reader<'f> {
    /// Each resource's type and id.
    heads: &'f [(String, String)],
    index: &'f Index,
    /// The resources others are named by, parsed.
    named: &'f HashMap<usize, Value>,
}

impl Reader<'_> {
    /// The resource a reference leads to; a reference out of the file, or to another type
    /// than expected, is an error that names the resource and the field.
    fn resolve(
        &self,
        r: &Res<'_>,
        path: &str,
        text: &str,
        kinds: &[&str],
    ) -> Result<usize, CoreError> {
        let i = self.index.find(text).ok_or_else(|| {
            r.err(format!(
                "{path} refers to {}, which is not in the file",
                clip(text)
            ))
        })?;
        let kind = self.heads[i].0.as_str();
        if !kinds.contains(&kind) {
            return Err(r.err(format!(
                "{path} should refer to a {}, not a {kind}",
                kinds.join(" or ")
            )));
        }
        Ok(i)
    }

    /// The patient an item belongs to (its `subject` or `patient`), a Patient of the file.
    fn owner(
        &self,
        r: &Res<'_>,
        paths: &[&str],
        patients: &BTreeMap<String, InPatient>,
    ) -> Result<String, CoreError> {
        for path in paths {
            if let Some(text) = r.opt_str(&format!("{path}.reference"))? {
                let i = self.resolve(r, path, text, &["Patient"])?;
                let id = self.heads[i].1.as_str();
                debug_assert!(patients.contains_key(id));
                return Ok(id.to_owned());
            }
        }
        Err(r.err(format!("{}.reference is missing", paths[0])))
    }

    /// The name of whoever a Reference at `path` names: the resource it leads to in the
    /// file, else its display, else the identifier a conditional reference gives.
    fn who(&self, r: &Res<'_>, path: &str) -> Option<String> {
        let v = r.at(path)?;
        if let Some(text) = v.get("reference").and_then(Value::as_str) {
            let name = match text.strip_prefix('#') {
                Some(id) => contained(r, id).and_then(resource_name),
                None => self.index.find(text).and_then(|i| self.name_of(i, 0)),
            };
            if name.is_some() {
                return name;
            }
        }
        if let Some(d) = v.get("display").and_then(Value::as_str) {
            return name_text(d);
        }
        let text = v.get("reference").and_then(Value::as_str)?;
        let (kind, query) = text.split_once('?')?;
        let value = query.rsplit('|').next()?;
        name_text(&format!("{kind} {value}"))
    }

    /// The name of a resource of the file: a person's, an organization's, or a role's
    /// practitioner's.
    fn name_of(&self, i: usize, depth: u8) -> Option<String> {
        let target = self.named.get(&i)?;
        match self.heads[i].0.as_str() {
            "PractitionerRole" if depth == 0 => target
                .get("practitioner")
                .and_then(|p| p.get("reference"))
                .and_then(Value::as_str)
                .and_then(|t| self.index.find(t))
                .and_then(|j| self.name_of(j, 1))
                .or_else(|| {
                    target
                        .get("practitioner")
                        .and_then(|p| p.get("display"))
                        .and_then(Value::as_str)
                        .and_then(name_text)
                }),
            "Organization" | "Location" => target
                .get("name")
                .and_then(Value::as_str)
                .and_then(name_text),
            "Practitioner" | "Patient" | "RelatedPerson" => human_name(target.get("name")),
            _ => None,
        }
    }

    /// The first named person of a list (`participant.N.individual`, `performer.N`…).
    fn first_name(&self, r: &Res<'_>, list: &str, inner: &str) -> Option<String> {
        let n = r.at(list)?.as_array()?.len().min(16);
        (0..n).find_map(|i| {
            let path = if inner.is_empty() {
                format!("{list}.{i}")
            } else {
                format!("{list}.{i}.{inner}")
            };
            self.who(r, &path)
        })
    }

    fn patient(
        &self,
        r: &Res<'_>,
        today: chrono::NaiveDate,
        tally: &mut Tally,
    ) -> Result<(crate::chart::patient::Demographics, bool), CoreError> {
        let mut form = fhir::patient_form(r)?;
        // The duplicate check compares names as people read them.
        form.family = visible(&form.family);
        form.given = visible(&form.given);
        form.preferred = form.preferred.as_deref().map(visible);
        // Names as other systems write them: a family name and the first given name.
        if form.address.is_none() {
            if let Some(a) = r.at("address.0") {
                let mut parts: Vec<String> = a
                    .get("line")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|l| l.as_str().map(str::to_owned))
                    .collect();
                let city_line: Vec<&str> = ["city", "state", "postalCode"]
                    .iter()
                    .filter_map(|k| a.get(*k).and_then(Value::as_str))
                    .collect();
                if !city_line.is_empty() {
                    parts.push(city_line.join(" "));
                }
                if let Some(c) = a.get("country").and_then(Value::as_str) {
                    parts.push(c.to_owned());
                }
                form.address = name_text(&parts.join(", "));
            }
        }
        // Codes outside Chartroom's lists are named and left out, never guessed at.
        let label = r.label.clone();
        let mut keep =
            |text: Option<String>, known: &dyn Fn(&str) -> bool, what: &str| -> Option<String> {
                let text = text?;
                let (ok, dropped): (Vec<&str>, Vec<&str>) = text.split(',').partition(|c| known(c));
                for d in dropped {
                    tally.warn(format!(
                        "{label}: the {what} code {} is not one Chartroom records; left out",
                        clip(d)
                    ));
                }
                (!ok.is_empty()).then(|| ok.join(","))
            };
        form.race = keep(
            form.race.take(),
            &|c| crate::chart::uscdi::race(c).is_some() || matches!(c, "ASKU" | "UNK"),
            "race",
        );
        form.ethnicity = keep(
            form.ethnicity.take(),
            &|c| crate::chart::uscdi::ethnicity(c).is_some() || matches!(c, "ASKU" | "UNK"),
            "ethnicity",
        );
        form.language = keep(
            form.language.take(),
            &|c| crate::chart::uscdi::language(c).is_ok(),
            "language",
        );
        form.birth_sex = keep(
            form.birth_sex.take(),
            &|c| crate::chart::uscdi::birth_sex(c).is_ok(),
            "birth sex",
        );
        // A phone in a shape the registration does not take is left out, with a word.
        for (field, what) in [
            (&mut form.phone, "phone number"),
            (&mut form.email, "email"),
        ] {
            if let Some(v) = field.as_deref() {
                let ok = if what == "email" {
                    crate::chart::input::optional_text("email", Some(v), 200).is_ok()
                        && v.contains('@')
                } else {
                    crate::chart::patient::phone("phone number", v).is_ok()
                };
                if !ok {
                    tally.warn(format!(
                        "{}: its {what} is not one Chartroom can keep; left out",
                        r.label
                    ));
                    *field = None;
                }
            }
        }
        if r.at("deceasedDateTime").is_some() || r.at("deceasedBoolean") == Some(&Value::Bool(true))
        {
            tally.warn(format!(
                "{}: the patient died, by the file; Chartroom does not record a date of death, so check the chart",
                r.label
            ));
        }
        let demographics = form.validate(today).map_err(|e| r.err(e))?;
        Ok((demographics, fhir::is_restricted(r)))
    }

    fn encounter(
        &self,
        r: &Res<'_>,
        clinician: String,
    ) -> Result<Result<InEncounter, String>, CoreError> {
        let status = r.opt_str("status")?.unwrap_or("finished");
        if matches!(status, "entered-in-error" | "cancelled" | "planned") {
            return Ok(Err(format!("status {status}: no visit took place")));
        }
        let start = r
            .opt_str("period.start")?
            .or(r.opt_str("period.end")?)
            .ok_or_else(|| r.err("period.start is missing"))?;
        let start = instant(start).ok_or_else(|| {
            r.err(format!(
                "period.start is not a date and time: {}",
                clip(start)
            ))
        })?;
        let class = r.opt_str("class.code")?.unwrap_or("AMB");
        let kind = match class {
            "VR" => EncounterKind::Telehealth,
            "HH" => EncounterKind::Home,
            _ => EncounterKind::Office,
        };
        let what = concept_text(r.at("reasonCode.0"))
            .or_else(|| concept_text(r.at("type.0")))
            .unwrap_or_else(|| "Visit".into());
        let setting = match class {
            "EMER" => " (emergency)",
            "IMP" | "ACUTE" | "NONAC" => " (inpatient)",
            "OBSENC" => " (observation)",
            _ => "",
        };
        let reason: String = format!("{what}{setting}").chars().take(500).collect();
        Ok(Ok(InEncounter {
            kind,
            start: start.clone(),
            clinician: clinician.clone(),
            reason,
            stamp: stamp(start, clinician),
        }))
    }

    fn observation(&self, r: &Res<'_>, clinician: Option<String>) -> Result<Observed, CoreError> {
        let status = r.str("status")?;
        let in_error = status == "entered-in-error";
        if !in_error && !matches!(status, "final" | "amended" | "corrected" | "preliminary") {
            return Ok(Observed::Skip(format!(
                "status {}: not a result",
                clip(status)
            )));
        }
        let code = r.at("code");
        let loinc = code_of(code, LOINC);
        if loinc == Some("76690-7") {
            if in_error {
                return Ok(Observed::Skip("entered in error there".into()));
            }
            return fhir::read_sexual_orientation(r).map(Observed::SexualOrientation);
        }
        let category = |c: &str| {
            r.at("category")
                .and_then(Value::as_array)
                .is_some_and(|l| l.iter().any(|x| has_code(Some(x), OBSERVATION_CATEGORY, c)))
        };
        let vital = loinc.and_then(vital_of);
        let effective = r
            .opt_str("effectiveDateTime")?
            .or(r.opt_str("effectivePeriod.start")?)
            .or(r.opt_str("effectiveInstant")?);
        let by = self
            .first_name(r, "performer", "")
            .or(clinician)
            .unwrap_or_else(|| UNNAMED.into());
        if category("vital-signs") || vital.is_some() {
            let Some(loinc) = loinc else {
                return Err(r.err("code has no LOINC coding, which a vital sign needs"));
            };
            let values = match vital {
                Some(VitalCode::Pressure) => {
                    let part = |want: &str| -> Result<Option<f64>, CoreError> {
                        let list = r.at("component").and_then(Value::as_array);
                        for (i, c) in list.into_iter().flatten().enumerate() {
                            if has_code(c.get("code"), LOINC, want) {
                                let v = if want == "8480-6" {
                                    Vital::Systolic
                                } else {
                                    Vital::Diastolic
                                };
                                let x = self.quantity(r, &format!("component.{i}."), v)?;
                                return v.validate(x).map_err(|e| r.err(e)).map(Some);
                            }
                        }
                        Ok(None)
                    };
                    match (part("8480-6")?, part("8462-4")?) {
                        (Some(s), Some(d)) => {
                            crate::VitalsInput {
                                systolic: Some(s),
                                diastolic: Some(d),
                                ..Default::default()
                            }
                            .validate()
                            .map_err(|e| r.err(e))?;
                            vec![(Vital::Systolic, s), (Vital::Diastolic, d)]
                        }
                        _ => {
                            return Err(r.err(
                                "a blood-pressure panel needs a systolic (8480-6) and a diastolic (8462-4) component",
                            ))
                        }
                    }
                }
                Some(VitalCode::One(v)) => {
                    if r.at("valueQuantity").is_none() {
                        return Ok(Observed::Skip("a vital sign with no value".into()));
                    }
                    let x = self.quantity(r, "", v)?;
                    vec![(v, v.validate(x).map_err(|e| r.err(e))?)]
                }
                None => {
                    return Ok(Observed::Skip(format!(
                        "a measurement Chartroom does not chart (LOINC {})",
                        clip(loinc)
                    )))
                }
            };
            let effective = effective.ok_or_else(|| r.err("effectiveDateTime is missing"))?;
            let effective = instant(effective).ok_or_else(|| {
                r.err(format!(
                    "effectiveDateTime is not a date and time: {}",
                    clip(effective)
                ))
            })?;
            let recorded_at = match r.opt_str("issued")? {
                Some(t) => instant(t).ok_or_else(|| r.err("issued is not a date and time"))?,
                None => effective.clone(),
            };
            return Ok(Observed::Vitals(InObservation {
                values,
                effective,
                recorded_by: by,
                recorded_at,
                entered_in_error: in_error.then(marked_there),
            }));
        }
        if category("laboratory") {
            return self.lab(r, by, in_error, effective).map(|x| match x {
                Ok(x) => Observed::Lab(Box::new(x)),
                Err(why) => Observed::Skip(why),
            });
        }
        let what = r
            .at("category.0.coding.0.code")
            .and_then(Value::as_str)
            .map(|c| format!("an observation of category {}", clip(c)))
            .unwrap_or_else(|| "an observation with no category".into());
        Ok(Observed::Skip(format!(
            "{what}: Chartroom charts vital signs and laboratory results"
        )))
    }

    /// A vital's value at `at`, in the unit Chartroom keeps it in (pounds, inches and
    /// degrees Fahrenheit converted).
    fn quantity(&self, r: &Res<'_>, at: &str, v: Vital) -> Result<f64, CoreError> {
        let x = r.f64(&format!("{at}valueQuantity.value"))?;
        let unit = r
            .opt_str(&format!("{at}valueQuantity.code"))?
            .or(r.opt_str(&format!("{at}valueQuantity.unit"))?)
            .unwrap_or_default();
        let converted = match (v.unit(), unit) {
            (want, got) if want == got => Some(x),
            ("mm[Hg]", "mmHg")
            | ("/min", "{beats}/min" | "beats/min" | "{breaths}/min" | "breaths/min") => Some(x),
            ("Cel", "[degF]" | "degF") => Some((x - 32.0) * 5.0 / 9.0),
            ("Cel", "C" | "degC") => Some(x),
            ("kg", "[lb_av]" | "lb" | "lbs") => Some(x * 0.453_592_37),
            ("kg", "g") => Some(x / 1000.0),
            ("cm", "[in_i]" | "in") => Some(x * 2.54),
            ("cm", "m") => Some(x * 100.0),
            ("kg/m2", "kg/m^2") => Some(x),
            _ => None,
        };
        converted.ok_or_else(|| {
            r.err(format!(
                "the unit {} is not one Chartroom can read for {}",
                clip(unit),
                v.display()
            ))
        })
    }

    fn lab(
        &self,
        r: &Res<'_>,
        by: String,
        in_error: bool,
        effective: Option<&str>,
    ) -> Result<Result<InLabResult, String>, CoreError> {
        use crate::chart::lab::{check_loinc, EntryStatus, NewResult, ResultFlag, ResultValue};
        let loinc = code_of(r.at("code"), LOINC)
            .ok_or_else(|| r.err("code has no LOINC coding, which a laboratory result needs"))?;
        let loinc = check_loinc(loinc).map_err(|e| r.err(e))?;
        let name = concept_text(r.at("code"))
            .or_else(|| crate::chart::lab::lab_test(&loinc).map(|t| t.name.to_owned()))
            .ok_or_else(|| r.err("code has no text or display to name the test"))?;
        let status = match r.str("status")? {
            "preliminary" => EntryStatus::Preliminary,
            "corrected" => EntryStatus::Corrected,
            _ => EntryStatus::Final,
        };
        let (value, unit) = if r.at("valueQuantity").is_some() {
            let unit = r
                .opt_str("valueQuantity.code")?
                .or(r.opt_str("valueQuantity.unit")?)
                .map(str::to_owned);
            (ResultValue::Quantity(r.f64("valueQuantity.value")?), unit)
        } else if let Some(v) = r.at("valueCodeableConcept") {
            let known = code_of(Some(v), SNOMED).and_then(fhir::known_finding);
            let value = match known {
                Some(v) => v,
                None => ResultValue::Text(
                    concept_text(Some(v))
                        .ok_or_else(|| r.err("valueCodeableConcept has no text or display"))?,
                ),
            };
            (value, None)
        } else if let Some(t) = r.opt_str("valueString")? {
            (ResultValue::Text(t.to_owned()), None)
        } else if let Some(n) = r.at("valueInteger").and_then(Value::as_f64) {
            (ResultValue::Quantity(n), None)
        } else {
            return Ok(Err("a laboratory result with no value".into()));
        };
        let range = fhir::reference_range(r)?;
        let flag = code_of(r.at("interpretation.0"), INTERPRETATION)
            .and_then(|f| ResultFlag::parse(f).ok());
        let effective = effective.ok_or_else(|| r.err("effectiveDateTime is missing"))?;
        let collected = instant(effective).ok_or_else(|| {
            r.err(format!(
                "effectiveDateTime is not a date and time: {}",
                clip(effective)
            ))
        })?;
        let reported = match r.opt_str("issued")? {
            Some(t) => instant(t).ok_or_else(|| r.err("issued is not a date and time"))?,
            None => collected.clone(),
        };
        let item = NewResult {
            loinc,
            name,
            value,
            unit,
            range,
            flag,
            status,
            collected: chartroom_audit::parse_time(&collected)
                .ok_or_else(|| r.err("effectiveDateTime is not a date and time"))?,
        }
        .checked()
        .map_err(|e| r.err(e))?;
        Ok(Ok(InLabResult {
            item,
            reported: reported.clone(),
            reason: None,
            stamp: stamp(reported, by),
            entered_in_error: in_error.then(marked_there),
        }))
    }

    fn report(
        &self,
        r: &Res<'_>,
        clinician: Option<String>,
        encounter: Option<String>,
        patient: &str,
        labs: &HashMap<String, String>,
    ) -> Result<Result<InLabReport, String>, CoreError> {
        let lab = r
            .at("category")
            .and_then(Value::as_array)
            .is_some_and(|l| l.iter().any(|c| has_code(Some(c), V2_0074, "LAB")));
        // Every result resolves, whatever the report.
        let mut results = Vec::new();
        let n = r.at("result").and_then(Value::as_array).map_or(0, Vec::len);
        for i in 0..n {
            let path = format!("result.{i}");
            let text = r.str(&format!("{path}.reference"))?;
            let j = self.resolve(r, &path, text, &["Observation"])?;
            let id = self.heads[j].1.as_str();
            match labs.get(id) {
                Some(p) if p == patient => results.push(id.to_owned()),
                Some(_) => {
                    return Err(r.err(format!("{path} refers to a result of another patient")))
                }
                None => {}
            }
        }
        if !lab {
            return Ok(Err("not a laboratory report".into()));
        }
        if !matches!(
            r.str("status")?,
            "final" | "amended" | "corrected" | "preliminary" | "appended"
        ) {
            return Ok(Err("not a result yet, or entered in error there".into()));
        }
        let loinc = code_of(r.at("code"), LOINC)
            .ok_or_else(|| r.err("code has no LOINC coding, which a laboratory report needs"))?;
        let loinc = crate::chart::lab::check_loinc(loinc).map_err(|e| r.err(e))?;
        let name = concept_text(r.at("code"))
            .or_else(|| crate::chart::lab::lab_test(&loinc).map(|t| t.name.to_owned()))
            .ok_or_else(|| r.err("code has no text or display to name the report"))?;
        let collected = r
            .opt_str("effectiveDateTime")?
            .or(r.opt_str("effectivePeriod.start")?)
            .or(r.opt_str("issued")?)
            .ok_or_else(|| r.err("effectiveDateTime is missing"))?;
        let collected =
            instant(collected).ok_or_else(|| r.err("effectiveDateTime is not a date and time"))?;
        let at = match r.opt_str("issued")? {
            Some(t) => instant(t).ok_or_else(|| r.err("issued is not a date and time"))?,
            None => collected.clone(),
        };
        let by = self
            .first_name(r, "performer", "")
            .or(clinician)
            .unwrap_or_else(|| UNNAMED.into());
        Ok(Ok(InLabReport {
            encounter,
            loinc,
            name,
            collected,
            results,
            stamp: stamp(at, by),
        }))
    }

    /// When a problem or allergy was recorded there (its recorded date, else its onset or
    /// the resource's last update) and by whom (recorder, asserter, else the encounter's
    /// clinician).
    fn recorded(
        &self,
        r: &Res<'_>,
        clinician: Option<String>,
    ) -> Result<(String, String), CoreError> {
        let at = r
            .opt_str("recordedDate")?
            .or(r.opt_str("onsetDateTime")?)
            .or(r.opt_str("meta.lastUpdated")?)
            .and_then(instant)
            .ok_or_else(|| r.err("recordedDate is missing"))?;
        let by = self
            .who(r, "recorder")
            .or_else(|| self.who(r, "asserter"))
            .or(clinician)
            .unwrap_or_else(|| UNNAMED.into());
        Ok((at, by))
    }

    fn condition(
        &self,
        r: &Res<'_>,
        clinician: Option<String>,
    ) -> Result<Result<InProblem, String>, CoreError> {
        let Some(in_error) = verified(r, "condition-ver-status") else {
            return Ok(Err("refuted there".into()));
        };
        let text =
            concept_text(r.at("code")).ok_or_else(|| r.err("code has no text or display"))?;
        let text =
            crate::chart::input::bounded_text("problem", &text, 200).map_err(|e| r.err(e))?;
        let mut coding = None;
        for (system, uris) in [
            (CodeSystem::Icd10, [ICD10_CM, CodeSystem::Icd10.uri()]),
            (CodeSystem::Snomed, [SNOMED, SNOMED]),
        ] {
            for uri in uris {
                if let Some(code) = code_of(r.at("code"), uri) {
                    if coding.is_none() {
                        coding = Some((system, system.check(code).map_err(|e| r.err(e))?));
                    }
                }
            }
        }
        let status = match code_of(
            r.at("clinicalStatus"),
            "http://terminology.hl7.org/CodeSystem/condition-clinical",
        ) {
            Some("inactive") => "inactive",
            Some("resolved" | "remission") => "resolved",
            _ => "active",
        };
        let onset = r
            .opt_str("onsetDateTime")?
            .or(r.opt_str("onsetPeriod.start")?)
            .and_then(day);
        let resolved_on = r
            .opt_str("abatementDateTime")?
            .or(r.opt_str("abatementPeriod.end")?)
            .and_then(day)
            .filter(|_| status != "active");
        let (at, by) = self.recorded(r, clinician)?;
        Ok(Ok(InProblem {
            entered_in_error: in_error.then(marked_there),
            text,
            coding,
            status: status.into(),
            onset,
            resolved_on,
            stamp: stamp(at, by),
        }))
    }

    fn allergy(
        &self,
        r: &Res<'_>,
        clinician: Option<String>,
    ) -> Result<Result<InAllergy, String>, CoreError> {
        let Some(in_error) = verified(r, "allergyintolerance-verification") else {
            return Ok(Err("refuted there".into()));
        };
        let (at, by) = self.recorded(r, clinician)?;
        if has_code(r.at("code"), SNOMED, "716186003") {
            if in_error {
                return Ok(Err("entered in error there".into()));
            }
            return Ok(Ok(InAllergy::NoneKnown { at, by }));
        }
        let substance =
            concept_text(r.at("code")).ok_or_else(|| r.err("code has no text or display"))?;
        let reaction = concept_text(r.at("reaction.0.manifestation.0"));
        let severity = r.opt_str("reaction.0.severity")?;
        let category = r.opt_str("category.0")?;
        let checked = crate::chart::allergy::NewAllergy::new(
            &substance,
            reaction.as_deref(),
            severity,
            category,
        )
        .map_err(|e| r.err(e))?;
        let status = match code_of(
            r.at("clinicalStatus"),
            "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
        ) {
            Some("inactive" | "resolved") => "resolved",
            _ => "active",
        };
        Ok(Ok(InAllergy::Allergy {
            substance: checked.substance,
            reaction: checked.reaction,
            severity: checked.severity,
            category: checked.category,
            status: status.into(),
            stamp: stamp(at, by),
            entered_in_error: in_error.then(marked_there),
            allergy_override: None,
        }))
    }

    fn medication(
        &self,
        r: &Res<'_>,
        clinician: Option<String>,
    ) -> Result<Result<InMedication, String>, CoreError> {
        let status = r.str("status")?;
        let in_error = status == "entered-in-error";
        let status = match status {
            "active" | "on-hold" | "intended" | "unknown" | "entered-in-error" => "active",
            "stopped" | "completed" => "stopped",
            "cancelled" | "draft" | "not-taken" => {
                return Ok(Err(format!("status {status}: never taken")))
            }
            other => {
                return Err(r.err(format!("status {} is not a medication status", clip(other))))
            }
        };
        let name = match r.at("medicationCodeableConcept") {
            Some(c) => concept_text(Some(c)),
            None => {
                let text = r.str("medicationReference.reference")?;
                let code = if let Some(id) = text.strip_prefix('#') {
                    contained(r, id)
                        .ok_or_else(|| {
                            r.err(format!(
                                "medicationReference refers to {}, which is not in the resource",
                                clip(text)
                            ))
                        })?
                        .get("code")
                } else {
                    let i = self.resolve(r, "medicationReference", text, &["Medication"])?;
                    self.named.get(&i).and_then(|v| v.get("code"))
                };
                concept_text(code).or_else(|| {
                    r.opt_str("medicationReference.display")
                        .ok()
                        .flatten()
                        .and_then(name_text)
                })
            }
        }
        .ok_or_else(|| r.err("the medication has no name (text or display)"))?;
        let name =
            crate::chart::input::bounded_text("medication", &name, 200).map_err(|e| r.err(e))?;
        let dosage = if r.kind() == "MedicationRequest" {
            "dosageInstruction.0"
        } else {
            "dosage.0"
        };
        let dose = r
            .opt_str(&format!("{dosage}.text"))?
            .and_then(name_text)
            .or_else(|| {
                let q = r.at(&format!("{dosage}.doseAndRate.0.doseQuantity"))?;
                let v = q.get("value")?.as_f64()?;
                let u = q
                    .get("unit")
                    .or(q.get("code"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                name_text(&format!("{} {u}", crate::chart::vitals::trim_number(v)))
            });
        let dose: Option<String> = dose.map(|d| d.chars().take(100).collect());
        let frequency: Option<String> = r
            .opt_str(&format!("{dosage}.timing.code.text"))?
            .and_then(name_text)
            .or_else(|| {
                let rep = r.at(&format!("{dosage}.timing.repeat"))?;
                let f = rep.get("frequency")?.as_u64()?;
                let p = rep.get("period")?.as_f64()?;
                let u = rep.get("periodUnit")?.as_str().and_then(name_text)?;
                let u = u.as_str();
                let unit = match u {
                    "h" => "hour",
                    "d" => "day",
                    "wk" => "week",
                    "mo" => "month",
                    _ => u,
                };
                Some(if p == 1.0 {
                    format!("{f} times a {unit}")
                } else {
                    format!(
                        "{f} times every {} {unit}s",
                        crate::chart::vitals::trim_number(p)
                    )
                })
            })
            .map(|f| f.chars().take(100).collect());
        let route = concept_text(r.at(&format!("{dosage}.route")))
            .and_then(|t| crate::chart::medication::Route::parse(&t).ok());
        let (start_path, end_path) = if r.kind() == "MedicationRequest" {
            (
                "dosageInstruction.0.timing.repeat.boundsPeriod.start",
                "dosageInstruction.0.timing.repeat.boundsPeriod.end",
            )
        } else {
            ("effectivePeriod.start", "effectivePeriod.end")
        };
        let written = r
            .opt_str("authoredOn")?
            .or(r.opt_str("dateAsserted")?)
            .or(r.opt_str("effectiveDateTime")?)
            .or(r.opt_str(start_path)?);
        let start = r.opt_str(start_path)?.or(written).and_then(day);
        let stop = r
            .opt_str(end_path)?
            .and_then(day)
            .filter(|_| status == "stopped");
        let at = written
            .or(r.opt_str("meta.lastUpdated")?)
            .and_then(instant)
            .ok_or_else(|| r.err("authoredOn is missing"))?;
        let by = self
            .who(r, "requester")
            .or_else(|| self.who(r, "informationSource"))
            .or(clinician)
            .unwrap_or_else(|| UNNAMED.into());
        Ok(Ok(InMedication {
            name,
            dose,
            route,
            frequency,
            start,
            stop,
            status: status.into(),
            stamp: stamp(at, by),
            entered_in_error: in_error.then(marked_there),
            allergy_override: None,
        }))
    }

    fn immunization(
        &self,
        r: &Res<'_>,
        clinician: Option<String>,
        today: chrono::NaiveDate,
    ) -> Result<Result<InImmunization, String>, CoreError> {
        let status = r.str("status")?;
        if status == "not-done" {
            return Ok(Err("not given (status not-done)".into()));
        }
        if !matches!(status, "completed" | "entered-in-error") {
            return Err(r.err(format!(
                "status {} is not an immunization status",
                clip(status)
            )));
        }
        let cvx = code_of(r.at("vaccineCode"), CVX)
            .ok_or_else(|| r.err("vaccineCode has no CVX coding, which an immunization needs"))?;
        let vaccine = concept_text(r.at("vaccineCode"))
            .ok_or_else(|| r.err("vaccineCode has no text or display"))?;
        let given = r
            .opt_str("occurrenceDateTime")?
            .ok_or_else(|| r.err("occurrenceDateTime is missing"))?;
        let date = day(given)
            .ok_or_else(|| r.err(format!("occurrenceDateTime is not a date: {}", clip(given))))?;
        let site = concept_text(r.at("site"))
            .filter(|s| crate::chart::immunization::Site::parse(s).is_ok());
        let lot = r
            .opt_str("lotNumber")?
            .filter(|l| l.len() <= 40 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        let checked = crate::chart::immunization::NewImmunization::new(
            &vaccine,
            cvx,
            &date,
            lot,
            site.as_deref(),
            today,
        )
        .map_err(|e| r.err(e))?;
        let at = r
            .opt_str("recorded")?
            .or(Some(given))
            .and_then(instant)
            .ok_or_else(|| r.err("occurrenceDateTime is not a date and time"))?;
        let by = self
            .first_name(r, "performer", "actor")
            .or(clinician)
            .unwrap_or_else(|| UNNAMED.into());
        Ok(Ok(InImmunization {
            vaccine: checked.vaccine,
            cvx: checked.cvx,
            date: checked.date.format("%Y-%m-%d").to_string(),
            lot: checked.lot,
            site: checked.site,
            status: if status == "completed" {
                "completed".into()
            } else {
                "entered_in_error".into()
            },
            stamp: stamp(at, by),
            entered_in_error: (status == "entered-in-error").then(marked_there),
        }))
    }

    /// A clinical note: a text attachment becomes a note signed elsewhere, by its
    /// authenticator (or author) at its date.
    fn note(
        &self,
        r: &Res<'_>,
        encounter: Option<String>,
        source: &str,
    ) -> Result<Result<InNote, String>, CoreError> {
        use base64::Engine as _;
        match r.opt_str("status")?.unwrap_or("current") {
            "current" => {}
            "superseded" => return Ok(Err("superseded there by a later version".into())),
            _ => return Ok(Err("entered in error there".into())),
        }
        if matches!(r.opt_str("docStatus")?, Some("preliminary")) {
            return Ok(Err("a draft there, not signed".into()));
        }
        let n = r
            .at("content")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let mut text = None;
        for i in 0..n {
            let kind = r
                .opt_str(&format!("content.{i}.attachment.contentType"))?
                .unwrap_or("");
            if !kind
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("text/plain")
            {
                continue;
            }
            if let Some(data) = r.opt_str(&format!("content.{i}.attachment.data"))? {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(data.trim())
                    .map_err(|_| r.err(format!("content.{i}.attachment.data is not base64")))?;
                let t = String::from_utf8(bytes)
                    .map_err(|_| r.err(format!("content.{i}.attachment.data is not UTF-8 text")))?;
                text = Some(t);
                break;
            }
        }
        let Some(text) = text else {
            return Ok(Err(
                "no plain-text attachment in the file (a PDF, HTML or a link is not imported)"
                    .into(),
            ));
        };
        let content = NoteContent::free(&text).map_err(|e| r.err(e))?;
        let date = r
            .opt_str("date")?
            .or(r.opt_str("context.period.start")?)
            .or(r.opt_str("meta.lastUpdated")?)
            .ok_or_else(|| r.err("date is missing"))?;
        let at = instant(date)
            .ok_or_else(|| r.err(format!("date is not a date and time: {}", clip(date))))?;
        let author = self
            .first_name(r, "author", "")
            .unwrap_or_else(|| UNNAMED.into());
        // Signed there, and said so: a name in the file is never taken for a user here.
        let signer = self
            .who(r, "authenticator")
            .unwrap_or_else(|| author.clone());
        let signer: String = format!(
            "{}, in {}",
            signer.chars().take(120).collect::<String>(),
            source.chars().take(70).collect::<String>()
        );
        Ok(Ok(InNote {
            kind: NoteKind::Note,
            author,
            content,
            created_at: at.clone(),
            signed_by: signer,
            signed_at: at,
            parent: None,
            encounter,
            signature: None,
        }))
    }
}

/// A name for a contained resource (a Practitioner, an Organization, a Medication).
fn resource_name(v: &Value) -> Option<String> {
    v.get("name")
        .and_then(Value::as_str)
        .and_then(name_text)
        .or_else(|| human_name(v.get("name")))
        .or_else(|| concept_text(v.get("code")))
}

/// A resource contained in `r` (`#id`).
fn contained<'v>(r: &Res<'v>, id: &str) -> Option<&'v Value> {
    r.value
        .get("contained")?
        .as_array()?
        .iter()
        .find(|c| c.get("id").and_then(Value::as_str) == Some(id))
}

enum VitalCode {
    Pressure,
    One(Vital),
}

/// The vital sign a LOINC code is, including the older and more specific codes other
/// systems send (55284-4 blood pressure, 8331-1 oral temperature, 2708-6 oxygen saturation).
fn vital_of(loinc: &str) -> Option<VitalCode> {
    Some(match loinc {
        "85354-9" | "55284-4" | "35094-2" => VitalCode::Pressure,
        "8310-5" | "8331-1" | "8332-9" | "8333-7" | "8328-7" | "8334-5" => {
            VitalCode::One(Vital::Temperature)
        }
        "59408-5" | "2708-6" | "2710-2" => VitalCode::One(Vital::Spo2),
        "29463-7" | "3141-9" => VitalCode::One(Vital::Weight),
        "8302-2" | "8306-3" | "8308-9" => VitalCode::One(Vital::Height),
        other => VitalCode::One(
            Vital::from_loinc(other)
                .filter(|v| !matches!(v, Vital::Systolic | Vital::Diastolic))?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LIMITS: Limits = Limits::IMPORT;

    fn today() -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(2026, 12, 7).expect("date")
    }

    fn patient(id: &str) -> Value {
        json!({
            "resourceType": "Patient", "id": id,
            "identifier": [{"system": "https://ehr.example.org/mrn", "value": "A-1"}],
            "name": [{"family": "Rivera", "given": ["Lucia"]}],
            "gender": "female", "birthDate": "1980-02-03"
        })
    }

    fn bundle(kind: &str, entries: Vec<(Option<&str>, Value)>) -> Vec<u8> {
        let entry: Vec<Value> = entries
            .into_iter()
            .map(|(url, r)| match url {
                Some(u) => json!({"fullUrl": u, "resource": r}),
                None => json!({"resource": r}),
            })
            .collect();
        serde_json::to_vec(&json!({"resourceType": "Bundle", "type": kind, "entry": entry}))
            .expect("json")
    }

    fn read(plain: &[u8]) -> Result<Parsed, CoreError> {
        parse(entries(plain, LIMITS)?, today(), None)
    }

    fn message(e: CoreError) -> String {
        e.to_string()
    }

    #[test]
    fn bundles_of_every_kind_that_holds_records_ndjson_and_tar_archives_are_read() {
        for kind in [
            "transaction",
            "batch",
            "collection",
            "searchset",
            "document",
        ] {
            let file = bundle(kind, vec![(None, patient("a"))]);
            assert_eq!(entries(&file, LIMITS).expect(kind).len(), 1, "{kind}");
        }
        for kind in ["history", "transaction-response", "batch-response", ""] {
            let file = bundle(kind, vec![(None, patient("a"))]);
            let e = entries(&file, LIMITS).err().expect("refused");
            assert!(message(e).contains("holds no records to import"), "{kind}");
        }
        // One resource alone, and NDJSON.
        let one = serde_json::to_vec(&patient("a")).expect("json");
        assert_eq!(entries(&one, LIMITS).expect("one").len(), 1);
        let lines = format!("{}\n\n{}\n", patient("a"), patient("b"));
        assert_eq!(entries(lines.as_bytes(), LIMITS).expect("ndjson").len(), 2);
        // A Bulk Data archive: its manifest, folders and hidden files are not resources.
        let mut tar = tar::Builder::new(Vec::new());
        let mut add = |name: &str, body: &[u8], kind: tar::EntryType| {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_entry_type(kind);
            h.set_mode(0o644);
            h.set_cksum();
            tar.append_data(&mut h, name, body).expect("appends");
        };
        add("export/", b"", tar::EntryType::Directory);
        add("export/manifest.json", b"{}", tar::EntryType::Regular);
        add("export/._Patient.ndjson", b"\0\0", tar::EntryType::Regular);
        add(
            "export/Patient.000.ndjson",
            lines.as_bytes(),
            tar::EntryType::Regular,
        );
        let archive = tar.into_inner().expect("tar");
        assert_eq!(entries(&archive, LIMITS).expect("tar").len(), 2);
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_cksum();
        tar.append_link(&mut h, "Patient.ndjson", "/etc/passwd")
            .expect("appends");
        let linked = tar.into_inner().expect("tar");
        assert!(message(entries(&linked, LIMITS).err().expect("refused")).contains("link"));
        // Anything else is named for what it is not.
        let e = entries(b"hello, world", LIMITS).err().expect("refused");
        assert!(message(e).contains("neither a FHIR Bundle"));
    }

    #[test]
    fn json_of_tiny_nested_values_is_refused_before_it_is_parsed() {
        let mut hostile = b"{\"resourceType\":\"Patient\",\"x\":[".to_vec();
        for _ in 0..100_000 {
            hostile.extend_from_slice(b"[],");
        }
        hostile.extend_from_slice(b"[]]}");
        let e = entries(&hostile, LIMITS).err().expect("refused");
        assert!(message(e).contains("far more JSON objects and lists"));
        let lines = format!("{}\n{}\n", patient("a"), String::from_utf8_lossy(&hostile));
        let e = entries(lines.as_bytes(), LIMITS).err().expect("refused");
        assert!(message(e).contains("line 2"));
        // Brackets inside text are text.
        let mut p = patient("a");
        p["text"] = json!({"div": "[".repeat(50_000)});
        assert!(entries(p.to_string().as_bytes(), LIMITS).is_ok());
        // Every fixture bundle passes, at about 8 per KiB.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/fhir/synthea-sample");
        for f in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let bytes = std::fs::read(f.path()).expect("reads");
            super::super::archive::check_density("fixture", &bytes).expect("a real bundle");
        }
    }

    #[test]
    fn a_transaction_that_deletes_or_fetches_is_refused() {
        let mut doc = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": patient("a"), "request": {"method": "DELETE", "url": "Patient/a"}}]});
        let e = entries(doc.to_string().as_bytes(), LIMITS)
            .err()
            .expect("refused");
        assert!(message(e).contains("DELETE"));
        doc["entry"][0]["request"]["method"] = json!("PUT");
        assert!(entries(doc.to_string().as_bytes(), LIMITS).is_ok());
    }

    #[test]
    fn references_resolve_by_full_url_type_and_id_absolute_url_and_identifier() {
        let mut index = Index::default();
        index.add(
            0,
            &json!({"resourceType": "Patient", "id": "p-1"}),
            Some("urn:uuid:1111"),
        );
        index.add(
            1,
            &json!({"resourceType": "Practitioner", "id": "dr", "identifier": [
                {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}]}),
            Some("https://ehr.example.org/fhir/Practitioner/dr"),
        );
        assert_eq!(index.find("urn:uuid:1111"), Some(0));
        assert_eq!(index.find("Patient/p-1"), Some(0));
        // An absolute URL is that server's resource: only a fullUrl of the file is it.
        assert_eq!(
            index.find("https://elsewhere.example/fhir/Patient/p-1"),
            None
        );
        assert_eq!(
            index.find("https://ehr.example.org/fhir/Practitioner/dr/_history/3"),
            Some(1)
        );
        assert_eq!(index.find("Practitioner/dr"), Some(1));
        assert_eq!(
            index.find("Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|1234567893"),
            Some(1)
        );
        assert_eq!(index.find("Practitioner?identifier=1234567893"), Some(1));
        assert_eq!(index.find("Practitioner?identifier=other|1234567893"), None);
        assert_eq!(index.find("Patient/p-2"), None);
        assert_eq!(index.find("Patient?name=x"), None);
    }

    #[test]
    fn times_and_dates_are_read_whole_or_partial_within_the_years_kept() {
        assert_eq!(
            instant("2011-08-18T04:10:16+02:00").as_deref(),
            Some("2011-08-18T02:10:16.000000Z")
        );
        assert_eq!(
            instant("2011-08-18").as_deref(),
            Some("2011-08-18T00:00:00.000000Z")
        );
        assert_eq!(day("2011-08").as_deref(), Some("2011-08-01"));
        assert_eq!(day("2011").as_deref(), Some("2011-01-01"));
        assert_eq!(day("1850-01-01"), None);
        assert_eq!(day("2011-13-01"), None);
        assert_eq!(day("yesterday"), None);
        assert_eq!(
            name_text("  Dr.\u{0}  Ann\n Lee "),
            Some("Dr. Ann Lee".into())
        );
        assert_eq!(name_text("\u{7}"), None);
        assert_eq!(name_text("dr.\u{200b}lin\u{ad}"), Some("dr.lin".into()));
        assert_eq!(instant("1850-01-01T00:00:00Z"), None);
    }

    #[test]
    fn the_source_comes_from_the_file_or_the_importer_and_never_names_a_vault() {
        let file = bundle("collection", vec![(None, patient("a"))]);
        assert_eq!(
            read(&file).expect("reads").source,
            "https://ehr.example.org/mrn"
        );
        let mut p = patient("a");
        p["meta"] = json!({"source": "https://ehr.example.org/fhir#node-2"});
        let file = bundle("collection", vec![(None, p)]);
        assert_eq!(
            read(&file).expect("reads").source,
            "https://ehr.example.org/fhir"
        );
        let mut p = patient("a");
        p.as_object_mut().expect("object").remove("identifier");
        let file = bundle("collection", vec![(None, p)]);
        assert!(message(read(&file).err().expect("no source")).contains("--source"));
        let given = parse(
            entries(&file, LIMITS).expect("reads"),
            today(),
            Some("https://old.example"),
        );
        assert_eq!(given.expect("reads").source, "https://old.example");
        for forged in [
            "urn:chartroom:vault:0123456789abcdef0123456789abcdef",
            "URN:CHARTROOM:VAULT:0123456789ABCDEF0123456789ABCDEF",
            "urn:chartroom:vault:x",
            "urn:chart\u{ad}room:vault:0123456789abcdef0123456789abcdef",
            "urn:chart\u{200b}room:vault:0123456789abcdef0123456789abcdef",
            "https://ehr.ex\u{430}mple.org",
            "has space:x",
            "",
        ] {
            let e = parse(
                entries(&file, LIMITS).expect("reads"),
                today(),
                Some(forged),
            );
            assert_eq!(
                e.err().expect("refused").code(),
                "invalid_file",
                "{forged:?}"
            );
        }
    }

    #[test]
    fn ids_come_from_the_resource_or_its_full_url_and_appear_once() {
        let mut p = patient("x");
        p.as_object_mut().expect("object").remove("id");
        let file = bundle(
            "transaction",
            vec![(
                Some("urn:uuid:9a8b7c6d-0000-4000-8000-000000000001"),
                p.clone(),
            )],
        );
        let parsed = read(&file).expect("reads");
        assert_eq!(
            parsed.patient_source_ids(),
            ["9a8b7c6d-0000-4000-8000-000000000001"]
        );
        let file = bundle("collection", vec![(None, p)]);
        assert!(
            message(read(&file).err().expect("refused")).contains("neither an id nor a fullUrl")
        );
        let file = bundle(
            "collection",
            vec![(None, patient("a")), (None, patient("a"))],
        );
        assert!(message(read(&file).err().expect("refused")).contains("appears twice"));
    }

    #[test]
    fn an_item_of_a_patient_not_in_the_file_or_on_another_patients_encounter_is_refused() {
        let encounter = |id: &str, who: &str| {
            json!({"resourceType": "Encounter", "id": id, "status": "finished",
                   "class": {"code": "AMB"}, "subject": {"reference": format!("Patient/{who}")},
                   "period": {"start": "2026-01-02T10:00:00Z"}})
        };
        let condition = |who: &str, enc: &str| {
            json!({"resourceType": "Condition", "id": format!("c-{who}"),
                   "code": {"text": "Asthma"}, "subject": {"reference": format!("Patient/{who}")},
                   "encounter": {"reference": format!("Encounter/{enc}")},
                   "recordedDate": "2026-01-02"})
        };
        let file = bundle(
            "collection",
            vec![
                (None, patient("a")),
                (None, patient("b")),
                (None, encounter("e1", "a")),
                (None, condition("b", "e1")),
            ],
        );
        assert!(
            message(read(&file).err().expect("refused")).contains("encounter of another patient")
        );
        let file = bundle(
            "collection",
            vec![(None, patient("a")), (None, condition("z", "e1"))],
        );
        assert!(message(read(&file).err().expect("refused"))
            .contains("Patient/z, which is not in the file"));
        let file = bundle(
            "collection",
            vec![
                (None, patient("a")),
                (None, encounter("e1", "a")),
                (None, condition("a", "e1")),
            ],
        );
        let parsed = read(&file).expect("reads");
        assert_eq!(parsed.patient_source_ids(), ["a"]);
    }

    /// Random damage to a real Synthea bundle (when the shared fixtures are beside the
    /// repository): every outcome is a value, never a panic.
    #[test]
    fn the_foreign_reader_survives_mutated_files() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/fhir/synthea-sample");
        let Some(seed) = std::fs::read_dir(&dir)
            .ok()
            .and_then(|mut list| list.next())
            .and_then(|e| e.ok())
            .and_then(|e| std::fs::read(e.path()).ok())
        else {
            eprintln!("skipped: {} is not there", dir.display());
            return;
        };
        assert!(read(&seed).is_ok());
        for data in super::super::tests::mutated(&seed, 200, 0xF0E1) {
            let _ = read(&data);
        }
    }
}
