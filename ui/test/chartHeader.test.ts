import { describe, expect, it } from "vitest";
import type { Allergy } from "../src/lib/api";
import { allergyLine, bornLine } from "../src/lib/chartHeader";

const allergy = (substance: string, over: Partial<Allergy> = {}): Allergy => ({
  id: 1, patient_id: 1, substance, reaction: null, severity: null, category: null, status: "active",
  recorded_by: "dr.lee", recorded_at: "2026-01-01T00:00:00Z", updated_by: "dr.lee", updated_at: "2026-01-01T00:00:00Z",
  ...over,
} as Allergy);

describe("the pinned chart header", () => {
  it("names active allergies, severe ones marked", () => {
    expect(allergyLine("recorded", [allergy("Penicillin", { severity: "severe" }), allergy("Latex", { severity: "mild" }),
      allergy("Peanut", { status: "resolved" })])).toEqual({ tone: "some", text: "Allergies: Penicillin (severe), Latex" });
  });

  it("says no known allergies, or that nobody has asked", () => {
    expect(allergyLine("no_known_allergies", [])).toEqual({ tone: "none", text: "No known allergies" });
    expect(allergyLine("unknown", undefined)).toEqual({ tone: "unknown", text: "Allergies unknown" });
  });

  it("says nothing of allergies to a role that is not sent them", () => {
    expect(allergyLine(undefined, undefined)).toBeNull();
  });

  it("writes the birth date unambiguously, with the age", () => {
    expect(bornLine("1961-04-23", 64)).toBe("born 23 Apr 1961 (64 y)");
  });
});
