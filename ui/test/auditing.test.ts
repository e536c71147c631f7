import { describe, expect, it } from "vitest";
import { alertPatient, alertQuery, groupEvents, outcomeWords } from "../src/lib/auditing";

describe("the auditor's words", () => {
  it("groups events in the order Rust lists them", () => {
    const groups = groupEvents([
      { event: "chart.read", words: "Opened a chart", group: "Charts" },
      { event: "vitals.create", words: "Recorded vitals", group: "Clinical" },
      { event: "break_glass", words: "Broke the glass", group: "Charts" },
    ]);
    expect(groups.map((g) => g.group)).toEqual(["Charts", "Clinical"]);
    expect(groups[0].events.map((e) => e.event)).toEqual(["chart.read", "break_glass"]);
  });

  it("names an alert's patient by MRN, and by name only when it was sent", () => {
    expect(alertPatient({ mrn: "0000018", patient_name: null })).toBe("MRN 0000018");
    expect(alertPatient({ mrn: "0000018", patient_name: "Okafor, Chidi" })).toBe("MRN 0000018 (Okafor, Chidi)");
    expect(alertPatient({ mrn: null, patient_name: null })).toBeNull();
  });

  it("finds an alert's entries by its user, patient and time", () => {
    const q = alertQuery({ mrn: "0000026", user: "nurse.kim", entries_since: "2026-03-03T10:00:00Z", entries_until: "2026-03-03T11:00:00Z" });
    expect(q).toMatchObject({ patient: "0000026", user: "nurse.kim", since: "2026-03-03T10:00:00Z", until: "2026-03-03T11:00:00Z", event: null });
  });

  it("says outcomes plainly", () => {
    expect(outcomeWords("denied")).toBe("Refused");
    expect(outcomeWords("something new")).toBe("something new");
  });
});
