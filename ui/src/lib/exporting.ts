// The export dialog's checks and its summary, kept out of the markup so they are tested.
import type { ExportForm, ExportReport } from "../gen/bindings";

export type ExportFields = {
  recipientName: string;
  purpose: string;
  method: "key" | "passphrase";
  keys: string;
  passphrase: string;
  again: string;
};

type Errors = Partial<Record<keyof ExportFields, string>>;

/** What the form asks of the user before anything is sent; Rust checks everything again. */
export function checkExportForm(f: ExportFields): { form: Omit<ExportForm, "patient_ids"> | null; errors: Errors } {
  const errors: Errors = {};
  const purpose = f.purpose.trim();
  if (!purpose) errors.purpose = "Say why the records are exported: it is part of the accounting of disclosures.";
  const keys = f.keys.split(/\s+/).map((k) => k.trim()).filter(Boolean);
  if (f.method === "key") {
    if (keys.length === 0) errors.keys = "Paste the recipient's age public key (it starts with age1).";
    else if (keys.some((k) => !k.startsWith("age1"))) errors.keys = "Each key starts with age1; one key per line.";
  } else {
    if ([...f.passphrase].length < 10) errors.passphrase = "Use at least 10 characters; a few random words are best.";
    else if (f.passphrase !== f.again) errors.again = "The two passphrases do not match.";
  }
  if (Object.keys(errors).length > 0) return { form: null, errors };
  return {
    form: {
      recipients: f.method === "key" ? keys : [],
      passphrase: f.method === "passphrase" ? f.passphrase : undefined,
      recipient_name: f.recipientName.trim() || undefined,
      purpose,
    },
    errors,
  };
}

const plural = (n: number, one: string, many = `${one}s`) => `${n.toLocaleString("en-GB")} ${n === 1 ? one : many}`;

/** The finished export in sentences: how much went, and what stayed home. */
export function exportSummary(r: ExportReport): { headline: string; lines: string[]; notes: string[] } {
  const counts = Object.entries(r.resources).sort(([a], [b]) => a.localeCompare(b));
  const total = counts.reduce((n, [, v]) => n + v, 0);
  const notes: string[] = [];
  if (r.left_out.length > 0) {
    notes.push(`${plural(r.left_out.length, "restricted patient")} you may not see ${r.left_out.length === 1 ? "was" : "were"} left out.`);
  }
  if (r.clinical_left_out) {
    notes.push("Demographics only: your role's keys do not open clinical content. An export with the clinical record takes a physician, a nurse or the recovery key.");
  }
  if (r.drafts_left_out > 0) {
    notes.push(`${plural(r.drafts_left_out, "unsigned draft")} ${r.drafts_left_out === 1 ? "is" : "are"} not part of the record and ${r.drafts_left_out === 1 ? "was" : "were"} not exported.`);
  }
  return {
    headline: `${plural(r.patients, "patient")}, ${plural(total, "record")} (${r.format === "bundle" ? "a FHIR Bundle" : "FHIR Bulk Data"}).`,
    lines: counts.map(([k, v]) => `${k}: ${v.toLocaleString("en-GB")}`),
    notes,
  };
}
