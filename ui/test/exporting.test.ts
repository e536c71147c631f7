import { describe, expect, it } from "vitest";
import { checkExportForm, countsInWords, exportSummary, formatCount, resourceWord, type ExportFields } from "../src/lib/exporting";

const base: ExportFields = { recipientName: " Harbour Clinic ", purpose: " Referral ", method: "key", keys: "", passphrase: "", again: "" };
const key = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

describe("the export form", () => {
  it("needs a purpose and a key that looks like an age key", () => {
    const r = checkExportForm({ ...base, purpose: "  " });
    expect(r.form).toBeNull();
    expect(r.errors.purpose).toMatch(/accounting of disclosures/);
    expect(r.errors.keys).toMatch(/age1/);
    expect(checkExportForm({ ...base, keys: "ssh-ed25519 AAAA" }).errors.keys).toMatch(/starts with age1/);
  });

  it("sends trimmed keys, one per line, and no passphrase", () => {
    const r = checkExportForm({ ...base, keys: `  ${key}\n\n${key}  `, passphrase: "leftover-secret" });
    expect(r.form).toEqual({ recipients: [key, key], passphrase: undefined, recipient_name: "Harbour Clinic", purpose: "Referral" });
  });

  it("asks for a long passphrase typed twice the same, and sends no keys with it", () => {
    const pass = { ...base, method: "passphrase" as const, keys: key };
    expect(checkExportForm({ ...pass, passphrase: "short", again: "short" }).errors.passphrase).toMatch(/10 characters/);
    expect(checkExportForm({ ...pass, passphrase: "tulip anchor velvet", again: "tulip anchor" }).errors.again).toMatch(/do not match/);
    const ok = checkExportForm({ ...pass, passphrase: "tulip anchor velvet", again: "tulip anchor velvet", recipientName: "" });
    expect(ok.form).toEqual({ recipients: [], passphrase: "tulip anchor velvet", recipient_name: undefined, purpose: "Referral" });
  });
});

describe("the export summary", () => {
  it("counts what went and says what stayed home", () => {
    const s = exportSummary({
      disclosure_id: 4,
      format: "bulk-ndjson",
      patients: 1200,
      resources: { Patient: 1200, Observation: 30000, Encounter: 4000 },
      left_out: [{ patient_id: 2, reason: "restricted to their care team" }],
      drafts_left_out: 3,
      clinical_left_out: false,
      recipient: "Harbour Clinic",
      keys: [{ type: "passphrase" }],
      bytes: 1,
      sha256: "00",
    });
    expect(s.headline).toBe("1,200 patients, 35,200 records.");
    expect(s.counts).toBe("patients 1,200, visits 4,000, vitals 30,000");
    expect(s.lines).toEqual(["Encounter: 4,000", "Observation: 30,000", "Patient: 1,200"]);
    expect(s.notes).toEqual([
      "1 restricted patient you may not see was left out.",
      "3 unsigned drafts are not part of the record and were not exported.",
    ]);
  });

  it("tells IT a single chart is a Bundle", () => {
    const s = exportSummary({
      disclosure_id: 1, format: "bundle", patients: 1, resources: { Patient: 1 }, left_out: [], drafts_left_out: 0,
      clinical_left_out: false, recipient: "x", keys: [], bytes: 1, sha256: "00",
    });
    expect(s.headline).toBe("1 patient, 1 record.");
    expect(s.format).toMatch(/^FHIR R4 Bundle/);
    expect(s.notes).toEqual([]);
  });

  it("says when the exporter's keys left the clinical record out", () => {
    const s = exportSummary({
      disclosure_id: 2, format: "bulk-ndjson", patients: 40, resources: { Patient: 40 }, left_out: [], drafts_left_out: 0,
      clinical_left_out: true, recipient: "x", keys: [], bytes: 1, sha256: "00",
    });
    expect(s.notes).toEqual([
      "Demographics only: your role's keys do not open clinical content. An export with the clinical record takes a physician, a nurse or the recovery key.",
    ]);
  });
});

describe("export counts in a clinic's words", () => {
  it("names FHIR resource types as the chart's sections do", () => {
    expect(resourceWord("DocumentReference")).toBe("notes");
    expect(resourceWord("Observation")).toBe("vitals");
    expect(resourceWord("Condition")).toBe("problems");
    expect(resourceWord("AllergyIntolerance")).toBe("allergies");
    expect(resourceWord("MedicationStatement")).toBe("medications");
    expect(resourceWord("MedicationRequest")).toBe("medications");
    expect(resourceWord("Immunization")).toBe("immunizations");
    expect(resourceWord("Encounter")).toBe("visits");
    expect(resourceWord("Patient")).toBe("patients");
    expect(resourceWord("Appointment")).toBe("appointments");
    expect(resourceWord("Provenance")).toBe("signatures");
    expect(resourceWord("QuestionnaireResponse")).toBe("other records");
  });

  it("writes counts with thousands separators", () => {
    expect(formatCount(0)).toBe("0");
    expect(formatCount(999)).toBe("999");
    expect(formatCount(1024)).toBe("1,024");
    expect(formatCount(1234567)).toBe("1,234,567");
  });

  it("lists counts in a fixed order, adds up shared words and leaves out zeros", () => {
    expect(countsInWords({ Condition: 3, Observation: 1024, DocumentReference: 211 })).toBe("notes 211, vitals 1,024, problems 3");
    expect(countsInWords({ MedicationStatement: 2, MedicationRequest: 1, Immunization: 0 })).toBe("medications 3");
    expect(countsInWords({ Basic: 1, Flag: 2, Patient: 1 })).toBe("patients 1, other records 3");
    expect(countsInWords({})).toBe("");
  });

  it("never names a FHIR resource type in the plain summary", () => {
    const s = exportSummary({
      disclosure_id: 7, format: "bundle", patients: 1,
      resources: { Patient: 1, DocumentReference: 211, Observation: 1024, Condition: 3, Provenance: 211 },
      left_out: [], drafts_left_out: 0, clinical_left_out: false, recipient: "x", keys: [{ type: "passphrase" }],
      bytes: 1, sha256: "00",
    }, "/home/clinic/exports/chart-export 2026.age");
    const plain = [s.headline, s.counts, ...s.notes].join(" ");
    expect(plain).toBe("1 patient, 1,450 records. patients 1, notes 211, vitals 1,024, problems 3, signatures 211");
    expect(plain).not.toMatch(/DocumentReference|Observation|FHIR|\bage\b/);
    expect(s.lines).toContain("DocumentReference: 211");
  });

  it("gives IT the age command for the file it names", () => {
    const base = {
      disclosure_id: 7, patients: 1, resources: { Patient: 1 }, left_out: [], drafts_left_out: 0,
      clinical_left_out: false, recipient: "x", bytes: 1, sha256: "00",
    };
    const pass = exportSummary({ ...base, format: "bundle", keys: [{ type: "passphrase" }] }, "/exports/a1b2.age");
    expect(pass.command).toBe("age -d -o records.json a1b2.age");
    expect(pass.encryption).toMatch(/passphrase/);
    const key = exportSummary(
      { ...base, format: "bulk-ndjson", keys: [{ type: "age-x25519", recipient: "age1xyz" }] },
      "C:\\Exports\\clinic export.age",
    );
    expect(key.command).toBe("age -d -i their-key.txt -o records.tar 'clinic export.age'");
    expect(key.encryption).toMatch(/1 X25519 recipient$/);
  });
});
