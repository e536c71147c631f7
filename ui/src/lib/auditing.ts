// The auditor's views in a clinic's words: the event picker's groups, how an alert names its
// patient, and the audit filter an alert's entries are found with. The words themselves come
// from Rust (audit_vocabulary); nothing here decides who may see what.
import type { Alert, AuditQuery, EventWords } from "../gen/bindings";

/** The events under their groups, in the order Rust lists them. */
export function groupEvents(events: EventWords[]): { group: string; events: EventWords[] }[] {
  const groups: { group: string; events: EventWords[] }[] = [];
  for (const e of events) {
    let g = groups.find((x) => x.group === e.group);
    if (!g) {
      g = { group: e.group, events: [] };
      groups.push(g);
    }
    g.events.push(e);
  }
  return groups;
}

/** "MRN 0000018 (Okafor, Chidi)", the name only when Rust sent it; null with no patient. */
export function alertPatient(a: Pick<Alert, "mrn" | "patient_name">): string | null {
  if (!a.mrn) return null;
  return a.patient_name ? `MRN ${a.mrn} (${a.patient_name})` : `MRN ${a.mrn}`;
}

/** The audit filter for what an alert is about: its user and patient, in its stretch of time. */
export function alertQuery(a: Pick<Alert, "mrn" | "user" | "entries_since" | "entries_until">): AuditQuery {
  return {
    patient: a.mrn,
    user: a.user,
    event: null,
    outcome: null,
    since: a.entries_since,
    until: a.entries_until,
    limit: 500,
  };
}

/** An outcome as the table says it. */
export function outcomeWords(outcome: string): string {
  return { success: "Succeeded", denied: "Refused", failed: "Failed" }[outcome] ?? outcome;
}
