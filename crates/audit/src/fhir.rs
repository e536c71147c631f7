//! FHIR R4 AuditEvent for an audit record, after IHE BALP (Basic Audit Log Patterns).

use serde_json::{json, Map, Value};

use crate::entry::{Action, Outcome, Record};

const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const AUDIT_EVENT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-event-type";
const RESTFUL_INTERACTION: &str = "http://hl7.org/fhir/restful-interaction";
const ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
const ENTITY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
const OBJECT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/object-role";
const SOURCE_TYPE: &str = "http://terminology.hl7.org/CodeSystem/security-source-type";
const PARTICIPATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
/// Identifies Chartroom's own codes and chain extension.
const CHARTROOM: &str = "urn:chartroom:audit";

fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({ "system": system, "code": code, "display": display })
}

/// The AuditEvent.type and subtype codings for an event name.
fn type_and_subtype(event: &str, action: Action) -> (Value, Vec<Value>) {
    let own = coding(CHARTROOM, event, event);
    match event {
        "session.unlock" | "session.recovery_unlock" => (
            coding(DCM, "110114", "User Authentication"),
            vec![coding(DCM, "110122", "Login"), own],
        ),
        "session.lock" | "session.idle_logoff" => (
            coding(DCM, "110114", "User Authentication"),
            vec![coding(DCM, "110123", "Logout"), own],
        ),
        "break_glass" => (
            coding(DCM, "110113", "Security Alert"),
            vec![coding(DCM, "110127", "Emergency Override Started"), own],
        ),
        e if e.starts_with("user.") || e.starts_with("care_team.") => {
            (coding(DCM, "110136", "Security Roles Changed"), vec![own])
        }
        e if e.starts_with("vault.") || e.starts_with("settings.") || e.starts_with("alert.") => {
            (coding(DCM, "110113", "Security Alert"), vec![own])
        }
        e if e.starts_with("audit.") => (coding(DCM, "110101", "Audit Log Used"), vec![own]),
        e if e.ends_with(".export") => (coding(DCM, "110106", "Export"), vec![own]),
        e if e.ends_with(".import") => (coding(DCM, "110107", "Import"), vec![own]),
        e if e.ends_with(".search") => (
            coding(AUDIT_EVENT_TYPE, "rest", "RESTful Operation"),
            vec![
                coding(RESTFUL_INTERACTION, "search-type", "search type"),
                own,
            ],
        ),
        _ => {
            let (code, display) = match action {
                Action::Create => ("create", "create"),
                Action::Read => ("read", "read"),
                Action::Update => ("update", "update"),
                Action::Delete => ("delete", "delete"),
                Action::Execute => ("operation", "operation"),
            };
            (
                coding(AUDIT_EVENT_TYPE, "rest", "RESTful Operation"),
                vec![coding(RESTFUL_INTERACTION, code, display), own],
            )
        }
    }
}

/// The record as a FHIR R4 AuditEvent resource. The chain position (sequence, previous
/// hash, hash) travels in an extension so the trail can be re-verified from the export.
pub fn to_fhir_audit_event(rec: &Record) -> Value {
    let e = &rec.entry;
    let (kind, subtypes) = type_and_subtype(&e.event, e.action);
    let outcome = match e.outcome {
        Outcome::Success => "0",
        Outcome::Denied => "4",
        Outcome::Failed => "8",
    };

    let mut agent = Map::new();
    agent.insert(
        "type".into(),
        json!({ "coding": [coding(PARTICIPATION, "IRCP", "information recipient")] }),
    );
    let mut who = Map::new();
    who.insert(
        "identifier".into(),
        json!({ "system": format!("{CHARTROOM}:user"), "value": e.actor }),
    );
    who.insert("display".into(), json!(e.actor));
    agent.insert("who".into(), Value::Object(who));
    if let Some(role) = &e.role {
        agent.insert(
            "role".into(),
            json!([{ "coding": [coding(&format!("{CHARTROOM}:role"), role, role)], "text": role }]),
        );
    }
    agent.insert("requestor".into(), json!(true));
    if let Some(purpose) = &e.purpose {
        agent.insert(
            "purposeOfUse".into(),
            json!([{ "coding": [{ "system": ACT_REASON, "code": purpose }] }]),
        );
    }

    let mut entities = Vec::new();
    if let Some(patient) = &e.patient_id {
        entities.push(json!({
            "what": { "reference": format!("Patient/{patient}") },
            "type": coding(ENTITY_TYPE, "1", "Person"),
            "role": coding(OBJECT_ROLE, "1", "Patient"),
        }));
    }
    if let (Some(ty), Some(id)) = (&e.object_type, &e.object_id) {
        let mut entity = Map::new();
        if ty != "Patient" || e.patient_id.as_deref() != Some(id.as_str()) {
            entity.insert(
                "what".into(),
                json!({ "identifier": { "system": format!("{CHARTROOM}:{ty}"), "value": id } }),
            );
            entity.insert("type".into(), coding(ENTITY_TYPE, "2", "System Object"));
            entity.insert("name".into(), json!(ty));
            entities.push(Value::Object(entity));
        }
    }
    if let Some(reason) = &e.reason {
        entities.push(json!({
            "type": coding(ENTITY_TYPE, "4", "Other"),
            "description": "Reason given for emergency access",
            "detail": [{ "type": "reason", "valueString": reason }],
        }));
    }

    let mut event = Map::new();
    event.insert("resourceType".into(), json!("AuditEvent"));
    event.insert("id".into(), json!(format!("{}-{}", e.device_id, e.seq)));
    event.insert(
        "extension".into(),
        json!([{
            "url": format!("{CHARTROOM}:chain"),
            "extension": [
                sequence_extension(e.seq),
                { "url": "previousHash", "valueString": rec.prev_hash.to_hex() },
                { "url": "hash", "valueString": rec.hash.to_hex() },
            ],
        }]),
    );
    event.insert("type".into(), kind);
    event.insert("subtype".into(), Value::Array(subtypes));
    event.insert("action".into(), json!(e.action.code()));
    event.insert("recorded".into(), json!(crate::format_time(e.time)));
    event.insert("outcome".into(), json!(outcome));
    if let Some(detail) = &e.detail {
        event.insert("outcomeDesc".into(), json!(detail));
    }
    if let Some(purpose) = &e.purpose {
        event.insert(
            "purposeOfEvent".into(),
            json!([{ "coding": [{ "system": ACT_REASON, "code": purpose }] }]),
        );
    }
    event.insert("agent".into(), json!([Value::Object(agent)]));
    event.insert(
        "source".into(),
        json!({
            "site": "Chartroom",
            "observer": { "identifier": { "system": format!("{CHARTROOM}:device"), "value": e.device_id }, "display": format!("Chartroom desktop {}", e.device_id) },
            "type": [coding(SOURCE_TYPE, "1", "User Device")],
        }),
    );
    if !entities.is_empty() {
        event.insert("entity".into(), Value::Array(entities));
    }
    Value::Object(event)
}

/// The sequence as an R4 `valueInteger` while it fits in 32 bits, else as text.
fn sequence_extension(seq: u64) -> Value {
    match i32::try_from(seq) {
        Ok(small) => json!({ "url": "sequence", "valueInteger": small }),
        Err(_) => json!({ "url": "sequence", "valueString": seq.to_string() }),
    }
}
