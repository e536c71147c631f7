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

/** A count as people write it: 1,024. */
export const formatCount = (n: number) => n.toLocaleString("en-GB");

const plural = (n: number, one: string, many = `${one}s`) => `${formatCount(n)} ${n === 1 ? one : many}`;

/** FHIR resource types in the words a clinic uses, in the order a summary lists them. Types
 *  that share a word (two kinds of medication resource) are counted together. */
const RESOURCE_WORDS: readonly [string, string][] = [
  ["Patient", "patients"],
  ["Encounter", "visits"],
  ["DocumentReference", "notes"],
  ["Observation", "vitals"],
  ["Condition", "problems"],
  ["MedicationStatement", "medications"],
  ["MedicationRequest", "medications"],
  ["AllergyIntolerance", "allergies"],
  ["Immunization", "immunizations"],
  ["Appointment", "appointments"],
  ["Provenance", "signatures"],
  ["Practitioner", "staff named"],
];
const OTHER = "other records";

/** What one FHIR resource type is called on screen: `DocumentReference` is "notes". */
export function resourceWord(type: string): string {
  return RESOURCE_WORDS.find(([t]) => t === type)?.[1] ?? OTHER;
}

/** Resource counts in plain words, in a fixed order: "notes 211, vitals 1,024, problems 3". */
export function countsInWords(resources: Record<string, number>): string {
  const order = [...new Set([...RESOURCE_WORDS.map(([, w]) => w), OTHER])];
  const byWord = new Map<string, number>();
  for (const [type, n] of Object.entries(resources)) {
    if (n > 0) byWord.set(resourceWord(type), (byWord.get(resourceWord(type)) ?? 0) + n);
  }
  return order
    .filter((w) => byWord.has(w))
    .map((w) => `${w} ${formatCount(byWord.get(w) ?? 0)}`)
    .join(", ");
}

/** The finished export in sentences for the person who made it, and the detail IT asks for. */
export type ExportSummary = {
  headline: string;
  /** "notes 211, vitals 1,024, …"; empty when nothing was counted. */
  counts: string;
  notes: string[];
  /** Per FHIR resource type, for the technical details: "DocumentReference: 211". */
  lines: string[];
  format: string;
  encryption: string;
  /** The command IT staff type to open the file with the standard age tool. */
  command: string;
};

const fileName = (path: string) => path.split(/[\\/]/).pop() || path;

/** Wraps an argument for a POSIX shell, so a name with spaces is pasted as one. */
const shellWord = (s: string) => (/^[\w./:@+-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`);

/** The finished export in sentences: how much went, what stayed home, and how it opens. */
export function exportSummary(r: ExportReport, path = "export.age"): ExportSummary {
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
  const bundle = r.format === "bundle";
  const passphrase = r.keys.some((k) => k.type === "passphrase");
  const recipients = r.keys.filter((k) => k.type !== "passphrase");
  const out = bundle ? "records.json" : "records.tar";
  const file = shellWord(fileName(path));
  return {
    headline: `${plural(r.patients, "patient")}, ${plural(total, "record")}.`,
    counts: countsInWords(r.resources),
    notes,
    lines: counts.map(([k, v]) => `${k}: ${formatCount(v)}`),
    format: bundle
      ? "FHIR R4 Bundle (one JSON document)"
      : "FHIR R4 Bulk Data (a tar archive of NDJSON files by resource type, with a manifest)",
    encryption: passphrase
      ? "age (age-encryption.org v1), locked with a passphrase (scrypt)"
      : `age (age-encryption.org v1), to ${plural(recipients.length, "X25519 recipient")}`,
    command: passphrase ? `age -d -o ${out} ${file}` : `age -d -i their-key.txt -o ${out} ${file}`,
  };
}
