//! The clinical record as FHIR R4 resources, and back.
//!
//! Export maps a chart to standard resources (Patient, Encounter, Observation with LOINC
//! and UCUM, Condition, AllergyIntolerance, MedicationStatement, Immunization with CVX,
//! DocumentReference for signed notes, Provenance for their signatures). What FHIR has no
//! field for, but a receiving Chartroom needs to rebuild the chart exactly (who recorded an
//! item and when, who last changed it), travels in extensions a foreign reader may ignore.
//!
//! Import is the reverse, for exports made by Chartroom: every field is read strictly and
//! checked by the same rules as typing it in, so a file never stores what the forms refuse.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::chart::patient::{Demographics, PatientForm};
use crate::chart::uscdi;
use crate::chart::vitals::Vital;
use crate::chart::Chart;
use crate::CoreError;
use crate::{
    Allergy, AllergyCategory, Appointment, AppointmentStatus, CodeSystem, Encounter, EncounterKind,
    Immunization, Medication, NoteContent, NoteKind, Observation, Problem, Route, Severity, Site,
};
use crate::{LabReport, LabResult};

pub(crate) const EXT: &str = "https://chartroom.example/fhir/StructureDefinition/";
pub(crate) const CS: &str = "https://chartroom.example/fhir/CodeSystem/";
const LOINC: &str = "http://loinc.org";
const UCUM: &str = "http://unitsofmeasure.org";
const SNOMED: &str = "http://snomed.info/sct";
const CVX: &str = "http://hl7.org/fhir/sid/cvx";
const NKA_CODE: &str = "716186003";
const PROGRESS_NOTE: &str = "11506-3";

/// The resource types an export holds, in the order a reader needs them.
pub const RESOURCE_TYPES: [&str; 16] = [
    "Patient",
    "Encounter",
    "Observation",
    "DiagnosticReport",
    "Condition",
    "AllergyIntolerance",
    "MedicationRequest",
    "MedicationStatement",
    "Immunization",
    "Practitioner",
    "Organization",
    "DocumentReference",
    "Provenance",
    "Schedule",
    "Slot",
    "Appointment",
];

/// The `meta.source` of everything one vault exports: the vault's id as a URN.
pub(crate) fn source_uri(vault_id: &str) -> String {
    format!("urn:chartroom:vault:{vault_id}")
}

/// The base URL a vault's resources are named under in an export (`fullUrl`, the Bulk
/// manifest's file URLs): a reserved `.example` host, for no server answers there; an
/// export is a file, and the base only makes every name absolute and every relative
/// reference (`Patient/p1`) resolve inside it.
pub(crate) fn base_url(source: &str) -> String {
    let id = source
        .strip_prefix("urn:chartroom:vault:")
        .unwrap_or(source);
    format!("https://chartroom.example/fhir/vault/{id}")
}

/// Whether `source` is exactly a vault's URN: the prefix and 32 lower-case hex digits, as
/// `source_uri` writes it. Nothing else may name a source (a case change, a space or an
/// invisible character would otherwise make one vault look like a new one).
pub(crate) fn is_source_uri(source: &str) -> bool {
    source
        .strip_prefix("urn:chartroom:vault:")
        .is_some_and(|id| {
            id.len() == 32
                && id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({"system": system, "code": code, "display": display})
}

fn concept(system: &str, code: &str, display: &str) -> Value {
    json!({"coding": [coding(system, code, display)]})
}

fn ext_string(name: &str, value: &str) -> Value {
    json!({"url": format!("{EXT}{name}"), "valueString": value})
}

fn ext_time(name: &str, value: &str) -> Value {
    json!({"url": format!("{EXT}{name}"), "valueDateTime": value})
}

/// Who recorded an item and when, and who changed it last.
fn history(recorded_by: &str, recorded_at: &str, updated: Option<(&str, &str)>) -> Value {
    let mut ext = vec![
        ext_string("recorded-by", recorded_by),
        ext_time("recorded-at", recorded_at),
    ];
    if let Some((by, at)) = updated {
        ext.push(ext_string("updated-by", by));
        ext.push(ext_time("updated-at", at));
    }
    Value::Array(ext)
}

fn meta(source: &str) -> Value {
    json!({"source": source})
}

fn patient_ref(id: impl std::fmt::Display) -> Value {
    json!({"reference": format!("Patient/p{id}")})
}

/// The id of the Practitioner a staff member is in an export: stable for their user name
/// (so a Bulk export holds each once), and no part of the name itself.
pub(crate) fn practitioner_id(user: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(chartroom_vault::account_key(user).as_bytes());
    format!("pr{}", &hex::encode(digest)[..16])
}

fn practitioner_ref(user: &str) -> Value {
    json!({"reference": format!("Practitioner/{}", practitioner_id(user)), "display": user})
}

/// The clinic a vault's staff act for, as the Organization of each signature's agent.
pub(crate) const CLINIC_ID: &str = "clinic";

fn practitioner_resource(user: &str, source: &str) -> Value {
    json!({
        "resourceType": "Practitioner",
        "id": practitioner_id(user),
        "meta": meta(source),
        "identifier": [{"system": format!("{source}:user"), "value": user}],
        "active": true,
        "name": [{"text": user, "family": user}],
    })
}

fn organization_resource(source: &str) -> Value {
    json!({
        "resourceType": "Organization",
        "id": CLINIC_ID,
        "meta": meta(source),
        "identifier": [{"system": "urn:chartroom:vault", "value": source.strip_prefix("urn:chartroom:vault:").unwrap_or(source)}],
        "active": true,
        "name": "The clinic of this Chartroom vault",
    })
}

/// What the export of one chart adds besides the chart: the allergy state's provenance.
pub(crate) struct ChartExtras {
    pub allergy_state_at: Option<String>,
    pub allergy_state_by: Option<String>,
}

/// Every resource of one chart. Draft notes are not part of the legal record and stay home.
pub(crate) fn chart_resources(chart: &Chart, extras: &ChartExtras, source: &str) -> Vec<Value> {
    let p = &chart.patient;
    let mut out = vec![patient_resource(chart, source)];
    // An Observation: it travels with the clinical record, not in a demographics-only export.
    if chart.vitals.is_some() {
        out.extend(sexual_orientation_resource(chart, source));
    }
    let started: BTreeMap<i64, i64> = chart
        .appointments
        .iter()
        .flatten()
        .filter_map(|a| a.encounter_id.map(|e| (e.get(), a.id.get())))
        .collect();
    for e in chart.encounters.iter().flatten() {
        let mut r = encounter_resource(e, source);
        if let Some(a) = started.get(&e.id.get()) {
            r["appointment"] = json!([{"reference": format!("Appointment/a{a}")}]);
        }
        out.push(r);
    }
    let mut schedules = std::collections::BTreeSet::new();
    for a in chart.appointments.iter().flatten() {
        if schedules.insert(a.clinician.clone()) {
            out.push(schedule_resource(&a.clinician, source));
        }
        if a.status.holds_time() {
            out.push(slot_resource(a, source));
        }
        out.push(appointment_resource(a, source));
    }
    out.extend(observation_resources(
        chart.vitals.as_deref().unwrap_or_default(),
        source,
    ));
    for c in chart.problems.iter().flatten() {
        out.push(condition_resource(c, source));
    }
    if p.allergy_status.as_deref() == Some("no_known_allergies") {
        out.push(json!({
            "resourceType": "AllergyIntolerance",
            "id": format!("nka{}", p.id),
            "meta": meta(source),
            "clinicalStatus": concept("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active", "Active"),
            "verificationStatus": concept("http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "confirmed", "Confirmed"),
            "code": {"coding": [coding(SNOMED, NKA_CODE, "No known allergy")], "text": "No known allergies"},
            "patient": patient_ref(p.id),
            "recordedDate": extras.allergy_state_at,
            "recorder": {"display": extras.allergy_state_by},
        }));
    }
    for a in chart.allergies.iter().flatten() {
        out.push(allergy_resource(a, source));
    }
    for m in chart.medications.iter().flatten() {
        out.push(medication_resource(m, source));
    }
    for i in chart.immunizations.iter().flatten() {
        out.push(immunization_resource(i, source));
    }
    let mut staff = std::collections::BTreeSet::new();
    for result in chart.lab_results.iter().flatten() {
        staff.insert(result.recorded_by.clone());
        out.push(lab_result_resource(result, source));
    }
    for report in chart.lab_reports.iter().flatten() {
        staff.insert(report.recorded_by.clone());
        let issued = chart
            .lab_results
            .iter()
            .flatten()
            .filter(|r| r.report_id == Some(report.id))
            .map(|r| r.reported_at.as_str())
            .max()
            .unwrap_or(&report.recorded_at);
        out.push(lab_report_resource(report, issued, source));
    }
    // Oldest first, so an addendum follows what it appends to.
    let mut notes: Vec<_> = chart
        .notes
        .iter()
        .flatten()
        .filter(|n| n.status == "signed")
        .collect();
    notes.sort_by_key(|n| n.id);
    for n in notes {
        let signed_at = n.signed_at.clone().unwrap_or_default();
        let signed_by = n.signed_by.clone().unwrap_or_default();
        let b64 = base64::engine::general_purpose::STANDARD;
        let text = n.content.as_text();
        let structured = serde_json::to_string(&n.content).unwrap_or_default();
        let mut doc = json!({
            "resourceType": "DocumentReference",
            "id": format!("n{}", n.id),
            "meta": meta(source),
            "status": "current",
            "docStatus": "final",
            "type": {"coding": [coding(LOINC, PROGRESS_NOTE, "Progress note")]},
            "category": [concept(&format!("{CS}note-kind"), n.kind.as_str(), n.kind.as_str())],
            "subject": patient_ref(n.patient_id),
            "date": signed_at,
            "author": [practitioner_ref(&n.author)],
            "authenticator": practitioner_ref(&signed_by),
            "content": [
                {"attachment": {"contentType": "text/plain; charset=utf-8", "data": b64.encode(text.as_bytes())}},
                {"attachment": {"contentType": "application/json", "data": b64.encode(structured.as_bytes())}},
            ],
            "extension": [ext_time("created-at", &n.created_at)],
        });
        if let Some(parent) = n.parent_id {
            doc["relatesTo"] = json!([{"code": "appends", "target": {"reference": format!("DocumentReference/n{parent}")}}]);
        }
        if let Some(enc) = n.encounter_id {
            doc["context"] = json!({"encounter": [{"reference": format!("Encounter/e{enc}")}]});
        }
        out.push(doc);
        out.push(json!({
            "resourceType": "Provenance",
            "id": format!("s{}", n.id),
            "meta": meta(source),
            "target": [{"reference": format!("DocumentReference/n{}", n.id)}],
            "recorded": signed_at,
            "activity": concept("http://terminology.hl7.org/CodeSystem/v3-DocumentCompletion", "LA", "legally authenticated"),
            "agent": [{
                "type": concept("http://terminology.hl7.org/CodeSystem/provenance-participant-type", "author", "Author"),
                "who": practitioner_ref(&signed_by),
                "onBehalfOf": {"reference": format!("Organization/{CLINIC_ID}")},
            }],
            "signature": provenance_signatures(n, &signed_at, &signed_by),
        }));
        staff.insert(n.author.clone());
        staff.insert(signed_by);
    }
    // Who signed and wrote the notes and recorded the results, and the clinic they signed
    // for (US Core Provenance names a Practitioner and, for one, the Organization on whose
    // behalf).
    if !staff.is_empty() {
        out.extend(staff.iter().map(|u| practitioner_resource(u, source)));
        out.push(organization_resource(source));
    }
    out
}

/// The format of a note's personal signature in a Provenance (docs/security.md).
pub(crate) const ED25519_SIG_FORMAT: &str = "application/x-chartroom-ed25519";

/// A signed note's Provenance signatures: the digest a receiving Chartroom checks, and the
/// signer's own Ed25519 signature with their public key, which any Ed25519 library verifies
/// over [`crate::chart::note::signature_message`].
fn provenance_signatures(n: &crate::Note, signed_at: &str, signed_by: &str) -> Value {
    let b64 = base64::engine::general_purpose::STANDARD;
    let author = [coding(
        "urn:iso-astm:E1762-95:2013",
        "1.2.840.10065.1.12.1.1",
        "Author's Signature",
    )];
    let mut out = vec![json!({
        "type": author,
        "when": signed_at,
        "who": {"display": signed_by},
        "sigFormat": "text/plain",
        "data": b64.encode(format!("sha256:{}", n.content_sha256.clone().unwrap_or_default())),
    })];
    if let Some(sig) = &n.signature {
        out.push(json!({
            "type": author,
            "when": signed_at,
            "who": {"display": signed_by},
            "sigFormat": ED25519_SIG_FORMAT,
            "data": sig.signature,
            "extension": [{"url": format!("{EXT}signer-ed25519-key"), "valueBase64Binary": sig.key}],
        }));
    }
    Value::Array(out)
}

fn patient_resource(chart: &Chart, source: &str) -> Value {
    let p = &chart.patient;
    let d = &p.demographics;
    let mut r = json!({
        "resourceType": "Patient",
        "id": format!("p{}", p.id),
        "meta": meta(source),
        "identifier": [{
            "use": "usual",
            "type": concept("http://terminology.hl7.org/CodeSystem/v2-0203", "MR", "Medical record number"),
            "system": format!("{source}:mrn"),
            "value": p.mrn,
        }],
        "name": [{"use": "official", "family": d.family, "given": [d.given]}],
        "gender": d.sex.as_str(),
        "birthDate": d.birth_date.format("%Y-%m-%d").to_string(),
    });
    if p.restricted {
        r["meta"]["security"] = json!([coding(
            "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
            "R",
            "restricted"
        )]);
    }
    if let Some(preferred) = &d.preferred {
        r["name"]
            .as_array_mut()
            .expect("an array")
            .push(json!({"use": "usual", "given": [preferred]}));
    }
    let mut telecom = vec![];
    if let Some(phone) = &d.phone {
        telecom.push(json!({"system": "phone", "value": phone}));
    }
    if let Some(email) = &d.email {
        telecom.push(json!({"system": "email", "value": email}));
    }
    if !telecom.is_empty() {
        r["telecom"] = Value::Array(telecom);
    }
    if let Some(address) = &d.address {
        r["address"] = json!([{"text": address}]);
    }
    if let Some(c) = &d.emergency_contact {
        let mut contact = json!({
            "name": {"text": c.name},
            "telecom": [{"system": "phone", "value": c.phone}],
        });
        if let Some(rel) = &c.relationship {
            contact["relationship"] = json!([{"text": rel}]);
        }
        r["contact"] = json!([contact]);
    }
    let mut extension = uscdi_extensions(d);
    if let Some(gi) = &d.gender_identity {
        extension.push(ext_string("gender-identity", gi));
    }
    if !extension.is_empty() {
        r["extension"] = Value::Array(extension);
    }
    if let Some(code) = &d.language {
        let name = uscdi::language_name(code).unwrap_or(code);
        r["communication"] = json!([{
            "language": {"coding": [coding(BCP47, code, name)], "text": name},
            "preferred": true,
        }]);
    }
    r
}

/// BCP 47 language tags, as US Core names the system.
const BCP47: &str = "urn:ietf:bcp:47";

/// The display a race or ethnicity code has in its code system (the null flavours' own).
fn race_coding(x: uscdi::Coded) -> Value {
    match x.code {
        "ASKU" => coding(uscdi::NULL_FLAVOR_SYSTEM, "ASKU", "asked but no answer"),
        "UNK" => coding(uscdi::NULL_FLAVOR_SYSTEM, "UNK", "unknown"),
        code => coding(uscdi::CDC_RACE_SYSTEM, code, x.display),
    }
}

/// US Core's race or ethnicity extension: the OMB categories (a detailed code's own
/// category included), the detailed codes, and the words.
fn race_extension(name: &str, codes: &[String], lookup: fn(&str) -> Option<uscdi::Coded>) -> Value {
    let known: Vec<uscdi::Coded> = codes.iter().filter_map(|c| lookup(c)).collect();
    let mut parts = vec![];
    let mut categories: Vec<&str> = vec![];
    for x in &known {
        if !categories.contains(&x.category) {
            categories.push(x.category);
        }
    }
    for category in categories {
        if let Some(x) = lookup(category) {
            parts.push(json!({"url": "ombCategory", "valueCoding": race_coding(x)}));
        }
    }
    for x in known.iter().filter(|x| x.code != x.category) {
        parts.push(json!({"url": "detailed", "valueCoding": race_coding(*x)}));
    }
    parts.push(json!({"url": "text", "valueString": uscdi::coded_words(codes, lookup)}));
    json!({"url": format!("{US_CORE}{name}"), "extension": parts})
}

/// Race, ethnicity and birth sex as US Core's extensions, where recorded.
fn uscdi_extensions(d: &Demographics) -> Vec<Value> {
    let mut out = vec![];
    if !d.race.is_empty() {
        out.push(race_extension("us-core-race", &d.race, uscdi::race));
    }
    if !d.ethnicity.is_empty() {
        out.push(race_extension(
            "us-core-ethnicity",
            &d.ethnicity,
            uscdi::ethnicity,
        ));
    }
    if let Some(sex) = &d.birth_sex {
        out.push(json!({"url": format!("{US_CORE}us-core-birthsex"), "valueCode": sex}));
    }
    out
}

/// The sexual orientation as US Core's Observation, when recorded: as of the last change to
/// the demographics.
fn sexual_orientation_resource(chart: &Chart, source: &str) -> Option<Value> {
    let p = &chart.patient;
    let code = p.demographics.sexual_orientation.as_deref()?;
    let display = uscdi::sexual_orientation_display(code).unwrap_or(code);
    Some(json!({
        "resourceType": "Observation",
        "id": format!("so{}", p.id),
        "meta": profiled(source, "us-core-observation-sexual-orientation"),
        "status": "final",
        "category": [concept(OBSERVATION_CATEGORY, "social-history", "Social History")],
        "code": {"coding": [coding(LOINC, SEXUAL_ORIENTATION_LOINC, "Sexual orientation")], "text": "Sexual orientation"},
        "subject": patient_ref(p.id),
        "effectiveDateTime": p.updated_at,
        "valueCodeableConcept": {
            "coding": [coding(uscdi::sexual_orientation_system(code), code, display)],
            "text": uscdi::sexual_orientation_words(code).unwrap_or(display),
        },
    }))
}

/// LOINC's "Sexual orientation".
const SEXUAL_ORIENTATION_LOINC: &str = "76690-7";

/// Whether an Observation is a sexual orientation (LOINC 76690-7), which Chartroom keeps
/// with the demographics.
pub(crate) fn is_sexual_orientation(r: &Res<'_>) -> bool {
    r.value
        .get("code")
        .and_then(|c| c.get("coding"))
        .and_then(Value::as_array)
        .is_some_and(|list| {
            list.iter().any(|c| {
                c.get("system").and_then(Value::as_str) == Some(LOINC)
                    && c.get("code").and_then(Value::as_str) == Some(SEXUAL_ORIENTATION_LOINC)
            })
        })
}

/// The sexual orientation code of such an Observation, checked.
pub(crate) fn read_sexual_orientation(r: &Res<'_>) -> Result<String, CoreError> {
    let code = r
        .value
        .get("valueCodeableConcept")
        .and_then(|v| v.get("coding"))
        .and_then(Value::as_array)
        .and_then(|list| {
            list.iter()
                .find_map(|c| c.get("code").and_then(Value::as_str))
        })
        .ok_or_else(|| r.err("valueCodeableConcept.coding is missing"))?;
    uscdi::sexual_orientation(code).map_err(|e| r.err(e))
}

fn encounter_resource(e: &Encounter, source: &str) -> Value {
    let (class, class_display) = match e.kind {
        EncounterKind::Office => ("AMB", "ambulatory"),
        EncounterKind::Telephone | EncounterKind::Telehealth => ("VR", "virtual"),
        EncounterKind::Home => ("HH", "home health"),
    };
    json!({
        "resourceType": "Encounter",
        "id": format!("e{}", e.id),
        "meta": meta(source),
        "status": "finished",
        "class": coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", class, class_display),
        "type": [{"coding": [coding(&format!("{CS}encounter-kind"), e.kind.as_str(), e.kind.label())], "text": e.kind.label()}],
        "subject": patient_ref(e.patient_id),
        "participant": [{"individual": {"display": e.clinician}}],
        "period": {"start": e.start},
        "reasonCode": [{"text": e.reason}],
        "extension": history(&e.created_by, &e.created_at, None),
    })
}

/// A clinician's Schedule, named by a digest of their user name (a FHIR id allows no `_`).
pub(crate) fn schedule_id(clinician: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(clinician.to_lowercase().as_bytes());
    format!("sch-{}", &hex::encode(digest)[..16])
}

fn schedule_resource(clinician: &str, source: &str) -> Value {
    json!({
        "resourceType": "Schedule",
        "id": schedule_id(clinician),
        "meta": meta(source),
        "active": true,
        "actor": [{"display": clinician}],
        "comment": format!("The appointment book of {clinician}"),
    })
}

fn slot_resource(a: &Appointment, source: &str) -> Value {
    json!({
        "resourceType": "Slot",
        "id": format!("sl{}", a.id),
        "meta": meta(source),
        "schedule": {"reference": format!("Schedule/{}", schedule_id(&a.clinician))},
        "status": "busy",
        "start": a.start,
        "end": a.end,
        "overbooked": a.overbooked,
    })
}

fn appointment_resource(a: &Appointment, source: &str) -> Value {
    let mut ext = history(
        &a.created_by,
        &a.created_at,
        Some((&a.updated_by, &a.updated_at)),
    );
    if let Value::Array(list) = &mut ext {
        list.push(json!({"url": format!("{EXT}overbooked"), "valueBoolean": a.overbooked}));
    }
    let mut r = json!({
        "resourceType": "Appointment",
        "id": format!("a{}", a.id),
        "meta": meta(source),
        "status": a.status.fhir(),
        "start": a.start,
        "end": a.end,
        "minutesDuration": a.minutes,
        "created": a.created_at,
        "participant": [
            {"actor": patient_ref(a.patient_id), "required": "required", "status": "accepted"},
            {"actor": {"display": a.clinician}, "required": "required", "status": "accepted"},
        ],
        "extension": ext,
    });
    if let Some(t) = &a.kind {
        r["appointmentType"] = json!({"text": t});
    }
    if let Some(reason) = &a.reason {
        r["reasonCode"] = json!([{"text": reason}]);
    }
    if let Some(why) = &a.cancel_reason {
        r["cancelationReason"] = json!({"text": why});
    }
    if a.status.holds_time() {
        r["slot"] = json!([{"reference": format!("Slot/sl{}", a.id)}]);
    }
    r
}

/// The LOINC panel US Core's blood-pressure profile wants, with systolic and diastolic as
/// its components.
pub(crate) const BP_PANEL: &str = "85354-9";
/// The second coding US Core's pulse-oximetry profile wants beside 59408-5.
const SPO2_ARTERIAL: &str = "2708-6";

/// An interpretation flag as HL7's v3 ObservationInterpretation code system shows it.
fn interpretation(flag: crate::Flag) -> Value {
    let display = match flag {
        crate::Flag::N => "Normal",
        crate::Flag::L => "Low",
        crate::Flag::H => "High",
        crate::Flag::LL => "Critical low",
        crate::Flag::HH => "Critical high",
    };
    json!([concept(
        "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
        flag.as_str(),
        display
    )])
}

fn quantity(o: &Observation) -> Value {
    json!({"value": o.value, "unit": o.unit, "system": UCUM, "code": o.unit})
}

fn observation_resource(o: &Observation, source: &str) -> Value {
    let mut codes = vec![coding(LOINC, &o.code, &o.display)];
    if o.vital == crate::Vital::Spo2 {
        codes.push(coding(
            LOINC,
            SPO2_ARTERIAL,
            "Oxygen saturation in Arterial blood",
        ));
    }
    let mut r = json!({
        "resourceType": "Observation",
        "id": format!("o{}", o.id),
        "meta": meta(source),
        "status": "final",
        "category": [concept("http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs", "Vital Signs")],
        "code": {"coding": codes, "text": o.display},
        "subject": patient_ref(o.patient_id),
        "effectiveDateTime": o.effective,
        "issued": o.recorded_at,
        "performer": [{"display": o.recorded_by}],
        "valueQuantity": quantity(o),
        "interpretation": interpretation(o.flag),
    });
    mark_in_error(&mut r, o.correction.as_ref(), "status");
    if let Some(enc) = o.encounter_id {
        r["encounter"] = json!({"reference": format!("Encounter/e{enc}")});
    }
    r
}

/// A blood pressure taken as one: US Core's panel (85354-9) with the systolic and diastolic
/// as components, under the systolic's id.
fn blood_pressure_resource(sys: &Observation, dia: &Observation, source: &str) -> Value {
    let component = |o: &Observation| {
        json!({
            "code": {"coding": [coding(LOINC, &o.code, &o.display)], "text": o.display},
            "valueQuantity": quantity(o),
            "interpretation": interpretation(o.flag),
        })
    };
    let mut r = observation_resource(sys, source);
    r["code"] = json!({"coding": [coding(LOINC, BP_PANEL, "Blood pressure panel with all children optional")], "text": "Blood pressure"});
    if let Some(o) = r.as_object_mut() {
        o.remove("valueQuantity");
        o.remove("interpretation");
    }
    r["component"] = json!([component(sys), component(dia)]);
    r
}

/// The observations of a chart as resources: a systolic and the diastolic taken with it
/// (the same time, recording, encounter and status) travel as one blood-pressure panel.
fn observation_resources(vitals: &[Observation], source: &str) -> Vec<Value> {
    use crate::Vital;
    type Key = (String, String, String, Option<i64>);
    let key = |o: &Observation| -> Key {
        (
            o.effective.clone(),
            o.recorded_at.clone(),
            o.status.clone(),
            o.encounter_id.map(|e| e.get()),
        )
    };
    let mut diastolic: BTreeMap<Key, Vec<&Observation>> = BTreeMap::new();
    for o in vitals.iter().filter(|o| o.vital == Vital::Diastolic) {
        diastolic.entry(key(o)).or_default().push(o);
    }
    let mut paired = std::collections::BTreeSet::new();
    let mut out = Vec::with_capacity(vitals.len());
    for o in vitals {
        match o.vital {
            Vital::Systolic => {
                let partner = diastolic
                    .get_mut(&key(o))
                    .and_then(|list| (!list.is_empty()).then(|| list.remove(0)));
                match partner {
                    Some(d) => {
                        paired.insert(d.id.get());
                        out.push(blood_pressure_resource(o, d, source));
                    }
                    None => out.push(observation_resource(o, source)),
                }
            }
            Vital::Diastolic => {}
            _ => out.push(observation_resource(o, source)),
        }
    }
    // A diastolic without its systolic (never written by Chartroom, but possible in a file
    // imported from elsewhere) travels alone.
    for o in vitals
        .iter()
        .filter(|o| o.vital == Vital::Diastolic && !paired.contains(&o.id.get()))
    {
        out.push(observation_resource(o, source));
    }
    out
}

/// A status code as its code system shows it ("active" is "Active").
fn clinical_display(code: &str) -> String {
    let mut c = code.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn condition_resource(c: &Problem, source: &str) -> Value {
    let mut code = json!({"text": c.text});
    if let (Some(system), Some(value)) = (c.system, &c.code) {
        code["coding"] = json!([{"system": system.uri(), "code": value}]);
    }
    let mut r = json!({
        "resourceType": "Condition",
        "id": format!("c{}", c.id),
        "meta": meta(source),
        "clinicalStatus": concept("http://terminology.hl7.org/CodeSystem/condition-clinical", &c.status, &clinical_display(&c.status)),
        "verificationStatus": concept("http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed", "Confirmed"),
        "category": [concept("http://terminology.hl7.org/CodeSystem/condition-category", "problem-list-item", "Problem List Item")],
        "code": code,
        "subject": patient_ref(c.patient_id),
        "recordedDate": c.recorded_at,
        "recorder": {"display": c.recorded_by},
        "extension": history(&c.recorded_by, &c.recorded_at, Some((&c.updated_by, &c.updated_at))),
    });
    if let Some(onset) = &c.onset {
        r["onsetDateTime"] = json!(onset);
    }
    if let Some(resolved) = &c.resolved_on {
        r["abatementDateTime"] = json!(resolved);
    }
    mark_in_error(&mut r, c.correction.as_ref(), "condition-ver-status");
    r
}

/// A resource for an item marked entered in error: FHIR's status for it (a Condition's or
/// AllergyIntolerance's verification status, then without a clinical status, as con-5 and
/// ait-2 require; `status` elsewhere) and the reason as Chartroom's extension.
fn mark_in_error(
    r: &mut Value,
    correction: Option<&crate::chart::correction::Correction>,
    how: &str,
) {
    let Some(c) = correction else { return };
    match how {
        "status" => r["status"] = json!("entered-in-error"),
        system => {
            if let Some(o) = r.as_object_mut() {
                o.remove("clinicalStatus");
            }
            r["verificationStatus"] = concept(
                &format!("http://terminology.hl7.org/CodeSystem/{system}"),
                "entered-in-error",
                "Entered in Error",
            );
        }
    }
    let ext = json!({"url": format!("{EXT}entered-in-error"), "valueString": c.reason});
    match r.get_mut("extension").and_then(Value::as_array_mut) {
        Some(list) => list.push(ext),
        None => r["extension"] = json!([ext]),
    }
}

fn allergy_resource(a: &Allergy, source: &str) -> Value {
    let mut r = json!({
        "resourceType": "AllergyIntolerance",
        "id": format!("a{}", a.id),
        "meta": meta(source),
        "clinicalStatus": concept("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", &a.status, &clinical_display(&a.status)),
        "verificationStatus": concept("http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "confirmed", "Confirmed"),
        "code": {"text": a.substance},
        "patient": patient_ref(a.patient_id),
        "recordedDate": a.recorded_at,
        "recorder": {"display": a.recorded_by},
    });
    let mut ext = history(
        &a.recorded_by,
        &a.recorded_at,
        Some((&a.updated_by, &a.updated_at)),
    );
    if let Some(cat) = a.category {
        r["category"] = json!([cat.as_str()]);
    }
    match (&a.reaction, a.severity) {
        (Some(reaction), severity) => {
            let mut reaction = json!({"manifestation": [{"text": reaction}]});
            if let Some(s) = severity {
                reaction["severity"] = json!(s.as_str());
            }
            r["reaction"] = json!([reaction]);
        }
        (None, Some(s)) => {
            // FHIR puts severity on a reaction; with none recorded, it travels alone.
            if let Value::Array(list) = &mut ext {
                list.push(json!({"url": format!("{EXT}severity"), "valueCode": s.as_str()}));
            }
        }
        (None, None) => {}
    }
    if let (Some(why), Value::Array(list)) = (&a.allergy_override, &mut ext) {
        list.push(ext_string("allergy-override", why));
    }
    r["extension"] = ext;
    mark_in_error(
        &mut r,
        a.correction.as_ref(),
        "allergyintolerance-verification",
    );
    r
}

/// A medication on the list as US Core wants it: a MedicationRequest with intent `plan`
/// (what the patient is to take, as recorded here), its recorder as requester, the dose,
/// route and frequency as the dosage instruction, and the start and stop dates as the
/// instruction's bounds. (Files from before carry MedicationStatement; both import.)
fn medication_resource(m: &Medication, source: &str) -> Value {
    let mut r = json!({
        "resourceType": "MedicationRequest",
        "id": format!("m{}", m.id),
        "meta": meta(source),
        "status": m.status,
        "intent": "plan",
        "medicationCodeableConcept": {"text": m.name},
        "subject": patient_ref(m.patient_id),
        "authoredOn": m.recorded_at,
        "requester": {"display": m.recorded_by},
        "extension": history(&m.recorded_by, &m.recorded_at, Some((&m.updated_by, &m.updated_at))),
    });
    let mut dosage = Map::new();
    if let Some(d) = &m.dose {
        dosage.insert("text".into(), json!(d));
    }
    if let Some(route) = m.route {
        dosage.insert("route".into(), json!({"text": route.as_str()}));
    }
    let mut timing = Map::new();
    if let Some(f) = &m.frequency {
        timing.insert("code".into(), json!({"text": f}));
    }
    if m.start.is_some() || m.stop.is_some() {
        let mut period = Map::new();
        if let Some(s) = &m.start {
            period.insert("start".into(), json!(s));
        }
        if let Some(s) = &m.stop {
            period.insert("end".into(), json!(s));
        }
        timing.insert("repeat".into(), json!({"boundsPeriod": period}));
    }
    if !timing.is_empty() {
        dosage.insert("timing".into(), Value::Object(timing));
    }
    if !dosage.is_empty() {
        r["dosageInstruction"] = json!([dosage]);
    }
    if let (Some(why), Some(list)) = (
        &m.allergy_override,
        r.get_mut("extension").and_then(Value::as_array_mut),
    ) {
        list.push(ext_string("allergy-override", why));
    }
    mark_in_error(&mut r, m.correction.as_ref(), "status");
    r
}

fn immunization_resource(i: &Immunization, source: &str) -> Value {
    let mut r = json!({
        "resourceType": "Immunization",
        "id": format!("i{}", i.id),
        "meta": meta(source),
        "status": if i.status == "entered_in_error" { "entered-in-error" } else { "completed" },
        "vaccineCode": {"coding": [{"system": CVX, "code": i.cvx}], "text": i.vaccine},
        "patient": patient_ref(i.patient_id),
        "occurrenceDateTime": i.date,
        "recorded": i.recorded_at,
        "primarySource": true,
        "extension": history(&i.recorded_by, &i.recorded_at, Some((&i.updated_by, &i.updated_at))),
    });
    if let Some(lot) = &i.lot {
        r["lotNumber"] = json!(lot);
    }
    if let Some(site) = i.site {
        let (code, display) = site.act_site();
        r["site"] = json!({"coding": [coding("http://terminology.hl7.org/CodeSystem/v3-ActSite", code, display)], "text": site.as_str()});
    }
    mark_in_error(&mut r, i.correction.as_ref(), "status");
    r
}

const US_CORE: &str = "http://hl7.org/fhir/us/core/StructureDefinition/";
const V2_0074: &str = "http://terminology.hl7.org/CodeSystem/v2-0074";
const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";

fn profiled(source: &str, profile: &str) -> Value {
    json!({"source": source, "profile": [format!("{US_CORE}{profile}")]})
}

fn lab_quantity(value: f64, unit: Option<&str>) -> Value {
    match unit {
        Some(u) => json!({"value": value, "unit": u, "system": UCUM, "code": u}),
        None => json!({"value": value}),
    }
}

/// A lab result as US Core's laboratory Observation: its current version, with why it was
/// corrected when it was (the earlier values stay in this vault's chart).
fn lab_result_resource(x: &LabResult, source: &str) -> Value {
    let mut r = json!({
        "resourceType": "Observation",
        "id": format!("r{}", x.id),
        "meta": profiled(source, "us-core-observation-lab"),
        "status": x.status,
        "category": [concept(OBSERVATION_CATEGORY, "laboratory", "Laboratory")],
        "code": {"coding": [coding(LOINC, &x.loinc, &x.name)], "text": x.name},
        "subject": patient_ref(x.patient_id),
        "effectiveDateTime": x.collected_at,
        "issued": x.reported_at,
        "performer": [practitioner_ref(&x.recorded_by)],
        "extension": history(&x.recorded_by, &x.recorded_at, x.correction.as_ref().map(|c| (c.marked_by.as_str(), c.marked_at.as_str()))),
    });
    match (x.value_kind.as_str(), &x.value, &x.value_code) {
        ("quantity", Value::Number(n), _) => {
            r["valueQuantity"] = lab_quantity(n.as_f64().unwrap_or_default(), x.unit.as_deref());
        }
        ("coded", Value::String(display), Some(code)) => {
            r["valueCodeableConcept"] =
                json!({"coding": [coding(SNOMED, code, display)], "text": display});
        }
        (_, value, _) => r["valueString"] = json!(value.as_str().unwrap_or_default()),
    }
    if let Some(range) = &x.range {
        let mut rr = serde_json::Map::new();
        if let Some(low) = range.low {
            rr.insert("low".into(), lab_quantity(low, x.unit.as_deref()));
        }
        if let Some(high) = range.high {
            rr.insert("high".into(), lab_quantity(high, x.unit.as_deref()));
        }
        r["referenceRange"] = json!([rr]);
    }
    if let Some(flag) = x.flag {
        r["interpretation"] = json!([concept(
            "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
            flag.as_str(),
            flag.display()
        )]);
    }
    if let (Some(reason), Some(list)) = (&x.reason, r["extension"].as_array_mut()) {
        list.push(ext_string("correction-reason", reason));
    }
    mark_in_error(&mut r, x.correction.as_ref(), "status");
    r
}

/// A lab report as US Core's laboratory DiagnosticReport, naming its results.
fn lab_report_resource(x: &LabReport, issued: &str, source: &str) -> Value {
    let mut r = json!({
        "resourceType": "DiagnosticReport",
        "id": format!("dr{}", x.id),
        "meta": profiled(source, "us-core-diagnosticreport-lab"),
        "status": x.status,
        "category": [concept(V2_0074, "LAB", "Laboratory")],
        "code": {"coding": [coding(LOINC, &x.loinc, &x.name)], "text": x.name},
        "subject": patient_ref(x.patient_id),
        "effectiveDateTime": x.collected_at,
        "issued": issued,
        "performer": [practitioner_ref(&x.recorded_by)],
        "result": x.result_ids.iter().map(|id| json!({"reference": format!("Observation/r{id}")})).collect::<Vec<_>>(),
        "extension": history(&x.recorded_by, &x.recorded_at, None),
    });
    if let Some(enc) = x.encounter_id {
        r["encounter"] = json!({"reference": format!("Encounter/e{enc}")});
    }
    if x.result_ids.is_empty() {
        if let Some(o) = r.as_object_mut() {
            o.remove("result");
        }
    }
    r
}

// ----- reading back ------------------------------------------------------------------------

/// A problem found in a file: which resource, and what is wrong with it.
pub(crate) fn invalid(resource: &str, what: impl std::fmt::Display) -> CoreError {
    CoreError::InvalidFile(format!("{resource}: {what}"))
}

/// One resource, read strictly: missing or mistyped fields are errors that name the field.
pub(crate) struct Res<'a> {
    pub value: &'a Map<String, Value>,
    pub label: String,
}

impl<'a> Res<'a> {
    pub fn new(value: &'a Value) -> Result<Res<'a>, CoreError> {
        let map = value
            .as_object()
            .ok_or_else(|| invalid("the file", "a resource is not a JSON object"))?;
        let kind = map
            .get("resourceType")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("the file", "a resource has no resourceType"))?;
        let id = map
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(kind, "a resource has no id"))?;
        let label: String = format!("{kind}/{id}").chars().take(80).collect();
        Ok(Res { value: map, label })
    }

    pub fn kind(&self) -> &str {
        self.value["resourceType"].as_str().unwrap_or_default()
    }

    pub fn id(&self) -> &str {
        self.value["id"].as_str().unwrap_or_default()
    }

    pub fn err(&self, what: impl std::fmt::Display) -> CoreError {
        invalid(&self.label, what)
    }

    pub(crate) fn at(&self, path: &str) -> Option<&'a Value> {
        let mut v: &Value = self.value.get(path.split('.').next()?)?;
        for part in path.split('.').skip(1) {
            v = match part.parse::<usize>() {
                Ok(i) => v.get(i)?,
                Err(_) => v.get(part)?,
            };
        }
        (!v.is_null()).then_some(v)
    }

    pub fn opt_str(&self, path: &str) -> Result<Option<&'a str>, CoreError> {
        match self.at(path) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.err(format!("{path} is not text"))),
        }
    }

    pub fn str(&self, path: &str) -> Result<&'a str, CoreError> {
        self.opt_str(path)?
            .ok_or_else(|| self.err(format!("{path} is missing")))
    }

    pub fn f64(&self, path: &str) -> Result<f64, CoreError> {
        self.at(path)
            .and_then(Value::as_f64)
            .ok_or_else(|| self.err(format!("{path} is missing or not a number")))
    }

    /// The value of a Chartroom extension.
    pub fn ext(&self, name: &str) -> Result<Option<&'a str>, CoreError> {
        let url = format!("{EXT}{name}");
        let Some(list) = self.value.get("extension") else {
            return Ok(None);
        };
        let list = list
            .as_array()
            .ok_or_else(|| self.err("extension is not a list"))?;
        for e in list {
            if e.get("url").and_then(Value::as_str) == Some(url.as_str()) {
                for key in ["valueString", "valueDateTime", "valueCode"] {
                    if let Some(v) = e.get(key) {
                        return v
                            .as_str()
                            .map(Some)
                            .ok_or_else(|| self.err(format!("extension {name} is not text")));
                    }
                }
                return Err(self.err(format!("extension {name} has no value")));
            }
        }
        Ok(None)
    }

    pub fn req_ext(&self, name: &str) -> Result<&'a str, CoreError> {
        self.ext(name)?
            .ok_or_else(|| self.err(format!("the {name} extension is missing")))
    }

    /// The local id behind a reference like `Patient/p12`, checked against its type.
    pub fn reference(&self, path: &str, kind: &str) -> Result<Option<String>, CoreError> {
        let Some(text) = self.opt_str(path)? else {
            return Ok(None);
        };
        match text.split_once('/') {
            Some((k, id)) if k == kind && valid_id(id) => Ok(Some(id.to_owned())),
            _ => Err(self.err(format!("{path} should refer to a {kind}"))),
        }
    }

    /// The `code` of the first coding in a CodeableConcept with the given system.
    pub fn code_in(&self, path: &str, system: &str) -> Result<Option<&'a str>, CoreError> {
        let Some(list) = self.at(&format!("{path}.coding")) else {
            return Ok(None);
        };
        let list = list
            .as_array()
            .ok_or_else(|| self.err(format!("{path}.coding is not a list")))?;
        Ok(list
            .iter()
            .find(|c| c.get("system").and_then(Value::as_str) == Some(system))
            .and_then(|c| c.get("code"))
            .and_then(Value::as_str))
    }
}

/// A FHIR id: 1 to 64 of letters, digits, `-` and `.`.
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// The number in one of our own ids (`p12` → 12), which the note signatures cover.
pub(crate) fn number_of(id: &str, prefix: &str) -> Option<i64> {
    id.strip_prefix(prefix)?.parse().ok().filter(|n| *n > 0)
}

/// A patient's demographics from their Patient resource, checked like the registration form.
pub(crate) fn read_patient(
    r: &Res<'_>,
    today: chrono::NaiveDate,
) -> Result<(Demographics, bool), CoreError> {
    let demographics = patient_form(r)?.validate(today).map_err(|e| r.err(e))?;
    Ok((demographics, is_restricted(r)))
}

/// Whether a Patient carries the restricted (R) or very restricted (V) confidentiality
/// label: either keeps the chart to its care team here.
pub(crate) fn is_restricted(r: &Res<'_>) -> bool {
    r.value
        .get("meta")
        .and_then(|m| m.get("security"))
        .and_then(Value::as_array)
        .is_some_and(|list| {
            list.iter()
                .any(|c| matches!(c.get("code").and_then(Value::as_str), Some("R" | "V")))
        })
}

/// A Patient as the registration form would hold it, not yet checked.
pub(crate) fn patient_form(r: &Res<'_>) -> Result<PatientForm, CoreError> {
    let names = r
        .value
        .get("name")
        .and_then(Value::as_array)
        .ok_or_else(|| r.err("name is missing"))?;
    let official = names
        .iter()
        .find(|n| n.get("use").and_then(Value::as_str) == Some("official"))
        .or_else(|| names.first())
        .ok_or_else(|| r.err("name is empty"))?;
    let family = official
        .get("family")
        .and_then(Value::as_str)
        .ok_or_else(|| r.err("name.family is missing"))?;
    let given = official
        .get("given")
        .and_then(|g| g.get(0))
        .and_then(Value::as_str)
        .ok_or_else(|| r.err("name.given is missing"))?;
    let preferred = names
        .iter()
        .find(|n| n.get("use").and_then(Value::as_str) == Some("usual"))
        .and_then(|n| n.get("given")?.get(0)?.as_str());
    let telecom = |system: &str| -> Option<String> {
        r.value
            .get("telecom")?
            .as_array()?
            .iter()
            .find(|t| t.get("system").and_then(Value::as_str) == Some(system))?
            .get("value")?
            .as_str()
            .map(str::to_owned)
    };
    let contact = r.value.get("contact").and_then(|c| c.get(0));
    let contact_str = |path: &[&str]| -> Option<String> {
        let mut v = contact?;
        for p in path {
            v = match p.parse::<usize>() {
                Ok(i) => v.get(i)?,
                Err(_) => v.get(*p)?,
            };
        }
        v.as_str().map(str::to_owned)
    };
    Ok(PatientForm {
        family: family.to_owned(),
        given: given.to_owned(),
        preferred: preferred.map(str::to_owned),
        birth_date: r.str("birthDate")?.to_owned(),
        sex: r.str("gender")?.to_owned(),
        gender_identity: r.ext("gender-identity")?.map(str::to_owned),
        phone: telecom("phone"),
        email: telecom("email"),
        address: r.opt_str("address.0.text")?.map(str::to_owned),
        emergency_name: contact_str(&["name", "text"]),
        emergency_phone: contact_str(&["telecom", "0", "value"]),
        emergency_relationship: contact_str(&["relationship", "0", "text"]),
        race: race_codes(r, "us-core-race", uscdi::race)?,
        ethnicity: race_codes(r, "us-core-ethnicity", uscdi::ethnicity)?,
        language: preferred_language(r),
        birth_sex: r
            .value
            .get("extension")
            .and_then(Value::as_array)
            .and_then(|list| {
                list.iter().find(|e| {
                    e.get("url").and_then(Value::as_str)
                        == Some(&format!("{US_CORE}us-core-birthsex"))
                })
            })
            .and_then(|e| e.get("valueCode"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        // Read from its own Observation, when the file has one.
        sexual_orientation: None,
    })
}

/// The codes of US Core's race or ethnicity extension (categories and detailed), as a
/// form's text; None when the patient has none.
fn race_codes(
    r: &Res<'_>,
    name: &str,
    lookup: fn(&str) -> Option<uscdi::Coded>,
) -> Result<Option<String>, CoreError> {
    let url = format!("{US_CORE}{name}");
    let Some(ext) = r
        .value
        .get("extension")
        .and_then(Value::as_array)
        .and_then(|list| {
            list.iter()
                .find(|e| e.get("url").and_then(Value::as_str) == Some(url.as_str()))
        })
    else {
        return Ok(None);
    };
    let parts = ext
        .get("extension")
        .and_then(Value::as_array)
        .ok_or_else(|| r.err(format!("extension {name} has no parts")))?;
    let part = |name: &str| -> Vec<&str> {
        parts
            .iter()
            .filter(|x| x.get("url").and_then(Value::as_str) == Some(name))
            .filter_map(|x| x.get("valueCoding")?.get("code")?.as_str())
            .collect()
    };
    let detailed = part("detailed");
    // A category that only rolls up a detailed code here is that code's, not the patient's
    // own answer.
    let covered: Vec<&str> = detailed
        .iter()
        .filter_map(|c| lookup(c).map(|x| x.category))
        .collect();
    let codes: Vec<&str> = part("ombCategory")
        .into_iter()
        .filter(|c| !covered.contains(c))
        .chain(detailed)
        .collect();
    Ok((!codes.is_empty()).then(|| codes.join(",")))
}

/// The preferred language's code (its primary subtag: `en` of `en-US`), or the first one.
fn preferred_language(r: &Res<'_>) -> Option<String> {
    let list = r.value.get("communication")?.as_array()?;
    let c = list
        .iter()
        .find(|c| c.get("preferred").and_then(Value::as_bool) == Some(true))
        .or_else(|| list.first())?;
    let code = c
        .get("language")?
        .get("coding")?
        .as_array()?
        .iter()
        .find_map(|x| x.get("code")?.as_str())?;
    Some(code.split('-').next().unwrap_or(code).to_owned())
}

/// An item's history: who recorded it and when, who changed it last and when.
pub(crate) struct Stamp {
    pub recorded_by: String,
    pub recorded_at: String,
    pub updated_by: String,
    pub updated_at: String,
}

fn time(r: &Res<'_>, label: &str, text: &str) -> Result<String, CoreError> {
    chartroom_audit::parse_time(text)
        .map(chartroom_audit::format_time)
        .ok_or_else(|| r.err(format!("{label} is not a date and time: {}", clip(text))))
}

pub(crate) fn clip(text: &str) -> String {
    text.chars().take(40).collect()
}

fn who(r: &Res<'_>, label: &str, text: &str) -> Result<String, CoreError> {
    crate::chart::input::bounded_text(label, text, 200).map_err(|e| r.err(e))
}

pub(crate) fn read_stamp(r: &Res<'_>, updates: bool) -> Result<Stamp, CoreError> {
    let recorded_by = who(r, "recorded-by", r.req_ext("recorded-by")?)?;
    let recorded_at = time(r, "recorded-at", r.req_ext("recorded-at")?)?;
    let (updated_by, updated_at) = if updates {
        (
            who(r, "updated-by", r.req_ext("updated-by")?)?,
            time(r, "updated-at", r.req_ext("updated-at")?)?,
        )
    } else {
        (recorded_by.clone(), recorded_at.clone())
    };
    Ok(Stamp {
        recorded_by,
        recorded_at,
        updated_by,
        updated_at,
    })
}

/// A date (`YYYY-MM-DD`) field, checked.
fn date(r: &Res<'_>, label: &str, text: Option<&str>) -> Result<Option<String>, CoreError> {
    text.map(|t| {
        chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
            .map(|d| d.format("%Y-%m-%d").to_string())
            .map_err(|_| r.err(format!("{label} is not a date: {}", clip(t))))
    })
    .transpose()
}

pub(crate) struct InEncounter {
    pub kind: EncounterKind,
    pub start: String,
    pub clinician: String,
    pub reason: String,
    pub stamp: Stamp,
}

pub(crate) struct InAppointment {
    pub clinician: String,
    pub start: String,
    pub end: String,
    pub kind: Option<String>,
    pub reason: Option<String>,
    pub status: AppointmentStatus,
    pub cancel_reason: Option<String>,
    pub overbooked: bool,
    pub stamp: Stamp,
}

/// The Patient an Appointment is for: the participant whose actor is a Patient.
pub(crate) fn appointment_patient(r: &Res<'_>) -> Result<String, CoreError> {
    let count = r
        .value
        .get("participant")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let mut found = None;
    for i in 0..count.min(16) {
        if let Some(p) = r.reference(&format!("participant.{i}.actor.reference"), "Patient")? {
            if found.replace(p).is_some() {
                return Err(r.err("it names more than one Patient"));
            }
        }
    }
    found.ok_or_else(|| r.err("it names no Patient among its participants"))
}

pub(crate) fn read_appointment(r: &Res<'_>) -> Result<InAppointment, CoreError> {
    let count = r
        .value
        .get("participant")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let mut clinician = None;
    for i in 0..count.min(16) {
        if let Some(name) = r.opt_str(&format!("participant.{i}.actor.display"))? {
            if r.opt_str(&format!("participant.{i}.actor.reference"))?
                .is_none()
            {
                clinician = Some(who(r, "clinician", name)?);
                break;
            }
        }
    }
    let status = r.str("status")?;
    let status = AppointmentStatus::from_fhir(status).ok_or_else(|| {
        r.err(format!(
            "its status \"{}\" is not one Chartroom keeps",
            clip(status)
        ))
    })?;
    let optional = |path: &str, label: &str, max: usize| -> Result<Option<String>, CoreError> {
        r.opt_str(path)?
            .map(|t| crate::chart::input::bounded_text(label, t, max).map_err(|e| r.err(e)))
            .transpose()
    };
    let overbooked = r
        .value
        .get("extension")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|e| e["url"] == format!("{EXT}overbooked") && e["valueBoolean"] == true);
    Ok(InAppointment {
        clinician: clinician.ok_or_else(|| r.err("it names no clinician"))?,
        start: time(r, "start", r.str("start")?)?,
        end: time(r, "end", r.str("end")?)?,
        kind: optional("appointmentType.text", "appointment type", 60)?,
        reason: optional("reasonCode.0.text", "reason for the appointment", 500)?,
        cancel_reason: optional("cancelationReason.text", "reason for cancelling", 500)?,
        status,
        overbooked,
        stamp: read_stamp(r, true)?,
    })
}

pub(crate) fn read_encounter(r: &Res<'_>) -> Result<InEncounter, CoreError> {
    let kind = r
        .code_in("type.0", &format!("{CS}encounter-kind"))?
        .ok_or_else(|| r.err("type has no Chartroom encounter kind"))?;
    let kind = EncounterKind::parse(kind).map_err(|e| r.err(e))?;
    let reason = crate::chart::input::bounded_text("reason", r.str("reasonCode.0.text")?, 500)
        .map_err(|e| r.err(e))?;
    Ok(InEncounter {
        kind,
        start: time(r, "period.start", r.str("period.start")?)?,
        clinician: who(r, "clinician", r.str("participant.0.individual.display")?)?,
        reason,
        stamp: read_stamp(r, false)?,
    })
}

pub(crate) struct InObservation {
    /// One value, or the systolic and diastolic of a blood-pressure panel.
    pub values: Vec<(Vital, f64)>,
    pub effective: String,
    pub recorded_by: String,
    pub recorded_at: String,
    /// Marked entered in error there, with the reason given.
    pub entered_in_error: Option<String>,
}

/// The reason an item marked entered in error was, as the file says (or that it says no
/// more than the status).
pub(crate) fn error_reason(r: &Res<'_>, marked: bool) -> Result<Option<String>, CoreError> {
    if !marked {
        return Ok(None);
    }
    let reason = r
        .ext("entered-in-error")?
        .unwrap_or("Marked entered in error in the record it came from.");
    Ok(Some(
        crate::chart::correction::check_reason(reason).map_err(|e| r.err(e))?,
    ))
}

/// A vital's value at `at` (`valueQuantity`, or a component's): its LOINC code, unit and
/// possible range checked.
fn vital_value(r: &Res<'_>, at: &str) -> Result<(Vital, f64), CoreError> {
    let code = r
        .code_in(&format!("{at}code"), LOINC)?
        .ok_or_else(|| r.err(format!("{at}code has no LOINC coding")))?;
    let vital = Vital::from_loinc(code).ok_or_else(|| {
        r.err(format!(
            "LOINC {} is not a vital sign Chartroom records",
            clip(code)
        ))
    })?;
    let unit = r.str(&format!("{at}valueQuantity.code"))?;
    if unit != vital.unit() {
        return Err(r.err(format!(
            "the unit {} is not {} for {}",
            clip(unit),
            vital.unit(),
            vital.display()
        )));
    }
    let value = vital
        .validate(r.f64(&format!("{at}valueQuantity.value"))?)
        .map_err(|e| r.err(e))?;
    Ok((vital, value))
}

pub(crate) fn read_observation(r: &Res<'_>) -> Result<InObservation, CoreError> {
    let values = if r.code_in("code", LOINC)? == Some(BP_PANEL) {
        let pair = [
            vital_value(r, "component.0.")?,
            vital_value(r, "component.1.")?,
        ];
        match pair {
            [(Vital::Systolic, s), (Vital::Diastolic, d)] | [(Vital::Diastolic, d), (Vital::Systolic, s)] => {
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
    } else {
        vec![vital_value(r, "")?]
    };
    let entered_in_error = match r.str("status")? {
        "final" | "amended" | "corrected" | "preliminary" => None,
        "entered-in-error" => error_reason(r, true)?,
        other => return Err(r.err(format!("status {} is not one Chartroom keeps", clip(other)))),
    };
    Ok(InObservation {
        entered_in_error,
        values,
        effective: time(r, "effectiveDateTime", r.str("effectiveDateTime")?)?,
        recorded_by: who(r, "performer", r.str("performer.0.display")?)?,
        recorded_at: time(r, "issued", r.str("issued")?)?,
    })
}

pub(crate) struct InProblem {
    pub entered_in_error: Option<String>,
    pub text: String,
    pub coding: Option<(CodeSystem, String)>,
    pub status: String,
    pub onset: Option<String>,
    pub resolved_on: Option<String>,
    pub stamp: Stamp,
}

pub(crate) fn read_condition(r: &Res<'_>) -> Result<InProblem, CoreError> {
    let text = crate::chart::input::bounded_text("problem", r.str("code.text")?, 200)
        .map_err(|e| r.err(e))?;
    let mut coding = None;
    for system in [CodeSystem::Icd10, CodeSystem::Snomed] {
        if let Some(code) = r.code_in("code", system.uri())? {
            coding = Some((system, system.check(code).map_err(|e| r.err(e))?));
        }
    }
    let in_error = r.code_in(
        "verificationStatus",
        "http://terminology.hl7.org/CodeSystem/condition-ver-status",
    )? == Some("entered-in-error");
    let status = match r.code_in(
        "clinicalStatus",
        "http://terminology.hl7.org/CodeSystem/condition-clinical",
    )? {
        Some(s) => s,
        None if in_error => "active",
        None => return Err(r.err("clinicalStatus is missing")),
    };
    if !matches!(status, "active" | "resolved" | "inactive") {
        return Err(r.err(format!(
            "clinicalStatus {} is not active, resolved or inactive",
            clip(status)
        )));
    }
    Ok(InProblem {
        entered_in_error: error_reason(r, in_error)?,
        text,
        coding,
        status: status.to_owned(),
        onset: date(r, "onsetDateTime", r.opt_str("onsetDateTime")?)?,
        resolved_on: date(r, "abatementDateTime", r.opt_str("abatementDateTime")?)?,
        stamp: read_stamp(r, true)?,
    })
}

pub(crate) enum InAllergy {
    /// The "no known allergies" statement: when and by whom.
    NoneKnown { at: String, by: String },
    Allergy {
        substance: String,
        reaction: Option<String>,
        severity: Option<Severity>,
        category: Option<AllergyCategory>,
        status: String,
        stamp: Stamp,
        entered_in_error: Option<String>,
        allergy_override: Option<String>,
    },
}

pub(crate) fn read_allergy(r: &Res<'_>) -> Result<InAllergy, CoreError> {
    if r.code_in("code", SNOMED)? == Some(NKA_CODE) {
        return Ok(InAllergy::NoneKnown {
            at: time(r, "recordedDate", r.str("recordedDate")?)?,
            by: who(r, "recorder", r.str("recorder.display")?)?,
        });
    }
    let reaction = r.opt_str("reaction.0.manifestation.0.text")?;
    let severity = r.opt_str("reaction.0.severity")?.or(r.ext("severity")?);
    let category = r.opt_str("category.0")?;
    let checked =
        crate::chart::allergy::NewAllergy::new(r.str("code.text")?, reaction, severity, category)
            .map_err(|e| r.err(e))?;
    let in_error = r.code_in(
        "verificationStatus",
        "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
    )? == Some("entered-in-error");
    let status = match r.code_in(
        "clinicalStatus",
        "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
    )? {
        Some(s) => s,
        None if in_error => "active",
        None => return Err(r.err("clinicalStatus is missing")),
    };
    if !matches!(status, "active" | "resolved") {
        return Err(r.err(format!(
            "clinicalStatus {} is not active or resolved",
            clip(status)
        )));
    }
    Ok(InAllergy::Allergy {
        substance: checked.substance,
        reaction: checked.reaction,
        severity: checked.severity,
        category: checked.category,
        status: status.to_owned(),
        stamp: read_stamp(r, true)?,
        entered_in_error: error_reason(r, in_error)?,
        allergy_override: override_reason(r)?,
    })
}

pub(crate) struct InMedication {
    pub name: String,
    pub dose: Option<String>,
    pub route: Option<Route>,
    pub frequency: Option<String>,
    pub start: Option<String>,
    pub stop: Option<String>,
    pub status: String,
    pub stamp: Stamp,
    pub entered_in_error: Option<String>,
    /// Why it was saved although an active allergy matched.
    pub allergy_override: Option<String>,
}

/// The reason an item was saved despite the allergy check, as the file gives it.
fn override_reason(r: &Res<'_>) -> Result<Option<String>, CoreError> {
    r.ext("allergy-override")?
        .map(|t| crate::chart::input::bounded_text("reason for going ahead", t, 500))
        .transpose()
        .map_err(|e| r.err(e))
}

pub(crate) fn read_medication(r: &Res<'_>) -> Result<InMedication, CoreError> {
    let in_error = r.str("status")? == "entered-in-error";
    let status = if in_error { "active" } else { r.str("status")? };
    if !matches!(status, "active" | "stopped") {
        return Err(r.err(format!("status {} is not active or stopped", clip(status))));
    }
    let name = crate::chart::input::bounded_text(
        "medication",
        r.str("medicationCodeableConcept.text")?,
        200,
    )
    .map_err(|e| r.err(e))?;
    // A MedicationRequest (as exported now) or a MedicationStatement (as before).
    let (dosage, start, end) = if r.kind() == "MedicationRequest" {
        (
            "dosageInstruction.0",
            "dosageInstruction.0.timing.repeat.boundsPeriod.start",
            "dosageInstruction.0.timing.repeat.boundsPeriod.end",
        )
    } else {
        ("dosage.0", "effectivePeriod.start", "effectivePeriod.end")
    };
    let dose =
        crate::chart::input::optional_text("dose", r.opt_str(&format!("{dosage}.text"))?, 100)
            .map_err(|e| r.err(e))?;
    let frequency = crate::chart::input::optional_text(
        "frequency",
        r.opt_str(&format!("{dosage}.timing.code.text"))?,
        100,
    )
    .map_err(|e| r.err(e))?;
    let route = r
        .opt_str(&format!("{dosage}.route.text"))?
        .map(Route::parse)
        .transpose()
        .map_err(|e| r.err(e))?;
    Ok(InMedication {
        name,
        dose,
        route,
        frequency,
        start: date(r, start, r.opt_str(start)?)?,
        stop: date(r, end, r.opt_str(end)?)?,
        status: status.to_owned(),
        stamp: read_stamp(r, true)?,
        entered_in_error: error_reason(r, in_error)?,
        allergy_override: override_reason(r)?,
    })
}

pub(crate) struct InImmunization {
    pub vaccine: String,
    pub cvx: String,
    pub date: String,
    pub lot: Option<String>,
    pub site: Option<Site>,
    pub status: String,
    pub stamp: Stamp,
    /// The reason it was marked entered in error, where the file gives one.
    pub entered_in_error: Option<String>,
}

pub(crate) fn read_immunization(
    r: &Res<'_>,
    today: chrono::NaiveDate,
) -> Result<InImmunization, CoreError> {
    let status = match r.str("status")? {
        "completed" => "completed",
        "entered-in-error" => "entered_in_error",
        other => {
            return Err(r.err(format!(
                "status {} is not completed or entered-in-error",
                clip(other)
            )))
        }
    };
    let cvx = r
        .code_in("vaccineCode", CVX)?
        .ok_or_else(|| r.err("vaccineCode has no CVX coding"))?;
    let checked = crate::chart::immunization::NewImmunization::new(
        r.str("vaccineCode.text")?,
        cvx,
        r.str("occurrenceDateTime")?,
        r.opt_str("lotNumber")?,
        r.opt_str("site.text")?,
        today,
    )
    .map_err(|e| r.err(e))?;
    let entered_in_error = error_reason(
        r,
        status == "entered_in_error" && r.ext("entered-in-error")?.is_some(),
    )?;
    Ok(InImmunization {
        entered_in_error,
        vaccine: checked.vaccine,
        cvx: checked.cvx,
        date: checked.date.format("%Y-%m-%d").to_string(),
        lot: checked.lot,
        site: checked.site,
        status: status.to_owned(),
        stamp: read_stamp(r, true)?,
    })
}

/// Whether an Observation is a laboratory result (its category says so).
pub(crate) fn is_lab(r: &Res<'_>) -> Result<bool, CoreError> {
    let Some(list) = r.value.get("category") else {
        return Ok(false);
    };
    let list = list
        .as_array()
        .ok_or_else(|| r.err("category is not a list"))?;
    Ok(list.iter().any(|c| {
        c.get("coding")
            .and_then(Value::as_array)
            .is_some_and(|codings| {
                codings.iter().any(|x| {
                    x.get("system").and_then(Value::as_str) == Some(OBSERVATION_CATEGORY)
                        && x.get("code").and_then(Value::as_str) == Some("laboratory")
                })
            })
    }))
}

pub(crate) struct InLabResult {
    pub item: crate::chart::lab::NewResult,
    pub reported: String,
    /// Why it was corrected there, where the file says.
    pub reason: Option<String>,
    pub stamp: Stamp,
    pub entered_in_error: Option<String>,
}

/// The name of a coded test: the concept's text, or the LOINC coding's display.
fn test_name(r: &Res<'_>, loinc: &str) -> Result<String, CoreError> {
    let name = match r.opt_str("code.text")? {
        Some(t) => Some(t.to_owned()),
        None => r
            .value
            .get("code")
            .and_then(|c| c.get("coding"))
            .and_then(Value::as_array)
            .and_then(|list| {
                list.iter()
                    .find(|c| c.get("code").and_then(Value::as_str) == Some(loinc))
            })
            .and_then(|c| c.get("display"))
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    name.or_else(|| crate::chart::lab::lab_test(loinc).map(|t| t.name.to_owned()))
        .ok_or_else(|| r.err("code has no text or display to name the test"))
}

/// A coded result Chartroom knows by its SNOMED CT code (`not detected`, `positive`, …).
pub(crate) fn known_finding(code: &str) -> Option<crate::chart::lab::ResultValue> {
    crate::chart::lab::FINDINGS
        .iter()
        .find(|(_, k, _)| *k == code)
        .map(|(_, k, d)| crate::chart::lab::ResultValue::Coded {
            code: (*k).into(),
            display: (*d).into(),
        })
}

/// A laboratory Observation's first reference range, when it gives either end.
pub(crate) fn reference_range(r: &Res<'_>) -> Result<Option<crate::chart::lab::Range>, CoreError> {
    let bound = |end: &str| -> Result<Option<f64>, CoreError> {
        match r.at(&format!("referenceRange.0.{end}")) {
            None => Ok(None),
            Some(_) => r.f64(&format!("referenceRange.0.{end}.value")).map(Some),
        }
    };
    let (low, high) = (bound("low")?, bound("high")?);
    Ok((low.is_some() || high.is_some()).then_some(crate::chart::lab::Range { low, high }))
}

pub(crate) fn read_lab_result(r: &Res<'_>) -> Result<InLabResult, CoreError> {
    use crate::chart::lab::{check_loinc, EntryStatus, NewResult, ResultFlag, ResultValue};
    let loinc = r
        .code_in("code", LOINC)?
        .ok_or_else(|| r.err("code has no LOINC coding"))?;
    let loinc = check_loinc(loinc).map_err(|e| r.err(e))?;
    let name = test_name(r, &loinc)?;
    let (status, marked) = match r.str("status")? {
        "preliminary" => (EntryStatus::Preliminary, false),
        "final" | "amended" => (EntryStatus::Final, false),
        "corrected" => (EntryStatus::Corrected, false),
        "entered-in-error" => (EntryStatus::Final, true),
        other => return Err(r.err(format!("status {} is not one Chartroom keeps", clip(other)))),
    };
    let (value, unit) = if r.value.contains_key("valueQuantity") {
        let unit = match r.opt_str("valueQuantity.system")? {
            Some(UCUM) | None => r
                .opt_str("valueQuantity.code")?
                .or(r.opt_str("valueQuantity.unit")?),
            Some(_) => r.opt_str("valueQuantity.unit")?,
        };
        (
            ResultValue::Quantity(r.f64("valueQuantity.value")?),
            unit.map(str::to_owned),
        )
    } else if r.value.contains_key("valueCodeableConcept") {
        let code = r.code_in("valueCodeableConcept", SNOMED)?;
        let known = code.and_then(known_finding);
        let value = match known {
            Some(v) => v,
            None => ResultValue::Text(
                r.opt_str("valueCodeableConcept.text")?
                    .or(r.opt_str("valueCodeableConcept.coding.0.display")?)
                    .ok_or_else(|| r.err("valueCodeableConcept has no text or display"))?
                    .to_owned(),
            ),
        };
        (value, None)
    } else if let Some(text) = r.opt_str("valueString")? {
        (ResultValue::Text(text.to_owned()), None)
    } else {
        return Err(r.err("it has no value (valueQuantity, valueCodeableConcept or valueString)"));
    };
    let range = reference_range(r)?;
    let flag = r
        .code_in(
            "interpretation.0",
            "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
        )?
        .map(|f| ResultFlag::parse(f).map_err(|e| r.err(e)))
        .transpose()?;
    let collected = time(r, "effectiveDateTime", r.str("effectiveDateTime")?)?;
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
    let stamp = read_stamp(r, marked)?;
    let reported = match r.opt_str("issued")? {
        Some(t) => time(r, "issued", t)?,
        None => stamp.recorded_at.clone(),
    };
    let reason = r
        .ext("correction-reason")?
        .map(|t| crate::chart::input::bounded_text("reason for the correction", t, 500))
        .transpose()
        .map_err(|e| r.err(e))?;
    Ok(InLabResult {
        entered_in_error: error_reason(r, marked)?,
        item,
        reported,
        reason,
        stamp,
    })
}

pub(crate) struct InLabReport {
    pub encounter: Option<String>,
    pub loinc: String,
    pub name: String,
    pub collected: String,
    /// The ids of its results (Observations) in the file.
    pub results: Vec<String>,
    pub stamp: Stamp,
}

pub(crate) fn read_lab_report(r: &Res<'_>) -> Result<InLabReport, CoreError> {
    let loinc = r
        .code_in("code", LOINC)?
        .ok_or_else(|| r.err("code has no LOINC coding"))?;
    let loinc = crate::chart::lab::check_loinc(loinc).map_err(|e| r.err(e))?;
    let name = test_name(r, &loinc)?;
    crate::chart::input::bounded_text("report name", &name, 200).map_err(|e| r.err(e))?;
    let mut results = Vec::new();
    if let Some(list) = r.value.get("result") {
        let list = list
            .as_array()
            .ok_or_else(|| r.err("result is not a list"))?;
        for (i, _) in list.iter().enumerate() {
            let id = r
                .reference(&format!("result.{i}.reference"), "Observation")?
                .ok_or_else(|| r.err(format!("result.{i} has no reference")))?;
            results.push(id);
        }
    }
    Ok(InLabReport {
        encounter: r.reference("encounter.reference", "Encounter")?,
        collected: time(r, "effectiveDateTime", r.str("effectiveDateTime")?)?,
        loinc,
        name,
        results,
        stamp: read_stamp(r, false)?,
    })
}

pub(crate) struct InNote {
    pub kind: NoteKind,
    pub author: String,
    pub content: NoteContent,
    pub created_at: String,
    pub signed_by: String,
    pub signed_at: String,
    pub parent: Option<String>,
    pub encounter: Option<String>,
    /// The signer's personal signature, from the note's Provenance, once checked.
    pub signature: Option<crate::chart::note::NoteSignature>,
}

pub(crate) fn read_note(r: &Res<'_>) -> Result<InNote, CoreError> {
    let kind = match r.code_in("category.0", &format!("{CS}note-kind"))? {
        Some("note") => NoteKind::Note,
        Some("addendum") => NoteKind::Addendum,
        Some("amendment") => NoteKind::Amendment,
        _ => return Err(r.err("category has no Chartroom note kind")),
    };
    let contents = r
        .value
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| r.err("content is missing"))?;
    let structured = contents
        .iter()
        .find(|c| {
            c.pointer("/attachment/contentType").and_then(Value::as_str) == Some("application/json")
        })
        .and_then(|c| c.pointer("/attachment/data"))
        .and_then(Value::as_str)
        .ok_or_else(|| r.err("the note's structured content is missing"))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(structured)
        .map_err(|_| r.err("the note's content is not base64"))?;
    let content: NoteContent = serde_json::from_slice(&bytes)
        .map_err(|_| r.err("the note's structured content is not a Chartroom note"))?;
    let content = content.validated().map_err(|e| r.err(e))?;
    let parent = r
        .value
        .get("relatesTo")
        .map(|_| r.reference("relatesTo.0.target.reference", "DocumentReference"))
        .transpose()?
        .flatten();
    if (kind == NoteKind::Note) != parent.is_none() {
        return Err(r.err("an addendum or amendment must append to a note, and a note to nothing"));
    }
    Ok(InNote {
        kind,
        author: who(r, "author", r.str("author.0.display")?)?,
        content,
        created_at: time(r, "created-at", r.req_ext("created-at")?)?,
        signed_by: who(r, "authenticator", r.str("authenticator.display")?)?,
        signed_at: time(r, "date", r.str("date")?)?,
        parent,
        encounter: r.reference("context.encounter.0.reference", "Encounter")?,
        signature: None,
    })
}

/// The signer's personal signature from a Provenance, if it carries one.
pub(crate) fn read_personal_signature(
    r: &Res<'_>,
) -> Result<Option<crate::chart::note::NoteSignature>, CoreError> {
    let Some(list) = r.value.get("signature").and_then(Value::as_array) else {
        return Ok(None);
    };
    for sig in list {
        if sig.get("sigFormat").and_then(Value::as_str) != Some(ED25519_SIG_FORMAT) {
            continue;
        }
        let signature = sig.get("data").and_then(Value::as_str);
        let key = sig
            .get("extension")
            .and_then(Value::as_array)
            .and_then(|e| {
                e.iter().find(|x| {
                    x.get("url").and_then(Value::as_str)
                        == Some(format!("{EXT}signer-ed25519-key").as_str())
                })
            })
            .and_then(|x| x.get("valueBase64Binary"))
            .and_then(Value::as_str);
        return match (signature, key) {
            (Some(signature), Some(key)) if signature.len() <= 100 && key.len() <= 60 => {
                Ok(Some(crate::chart::note::NoteSignature {
                    key: key.to_owned(),
                    signature: signature.to_owned(),
                }))
            }
            _ => Err(r.err("the signer's signature has no key or no data")),
        };
    }
    Ok(None)
}

/// The signature's digest from a Provenance, and the note it signs.
/// A Practitioner's or Organization's name: text, as any other name in the file.
pub(crate) fn read_staff_name(r: &Res<'_>, path: &str) -> Result<String, CoreError> {
    crate::chart::input::bounded_text("name", r.str(path)?, 200).map_err(|e| r.err(e))
}

pub(crate) fn read_provenance(r: &Res<'_>) -> Result<(String, String), CoreError> {
    let target = r
        .reference("target.0.reference", "DocumentReference")?
        .ok_or_else(|| r.err("target is missing"))?;
    let data = r.str("signature.0.data")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|_| r.err("signature.data is not base64"))?;
    let text = String::from_utf8(bytes).map_err(|_| r.err("signature.data is not a digest"))?;
    let digest = text
        .strip_prefix("sha256:")
        .filter(|d| d.len() == 64 && d.chars().all(|c| c.is_ascii_hexdigit()))
        .ok_or_else(|| r.err("signature.data is not a SHA-256 digest"))?;
    Ok((target, digest.to_owned()))
}

/// How many resources of each type, for reports and the accounting of disclosures.
pub type Counts = BTreeMap<String, u64>;

pub(crate) fn count(counts: &mut Counts, kind: &str) {
    *counts.entry(kind.to_owned()).or_default() += 1;
}
