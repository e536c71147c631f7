import { describe, expect, it } from "vitest";
import { checkExportForm, exportSummary, type ExportFields } from "../src/lib/exporting";

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
    expect(s.headline).toBe("1,200 patients, 35,200 records (FHIR Bulk Data).");
    expect(s.lines).toEqual(["Encounter: 4,000", "Observation: 30,000", "Patient: 1,200"]);
    expect(s.notes).toEqual([
      "1 restricted patient you may not see was left out.",
      "3 unsigned drafts are not part of the record and were not exported.",
    ]);
  });

  it("says a single chart is a Bundle", () => {
    const s = exportSummary({
      disclosure_id: 1, format: "bundle", patients: 1, resources: { Patient: 1 }, left_out: [], drafts_left_out: 0,
      clinical_left_out: false, recipient: "x", keys: [], bytes: 1, sha256: "00",
    });
    expect(s.headline).toBe("1 patient, 1 record (a FHIR Bundle).");
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
