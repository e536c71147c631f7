// The chart's pinned header in words: who this is and how their allergy list stands, short
// enough for one line above a long chart. Plain strings only; the markup shows them as text.
import type { Allergy } from "../gen/bindings";
import { formatDate } from "./format";

export type AllergyTone = "some" | "none" | "unknown";

/**
 * The allergy banner's state in one line: "Allergies: Penicillin (severe), Latex",
 * "No known allergies" or "Allergies unknown"; null when the role is not sent the list.
 */
export function allergyLine(
  status: string | undefined,
  allergies: readonly Allergy[] | undefined,
): { tone: AllergyTone; text: string } | null {
  if (status === undefined) return null;
  const active = (allergies ?? []).filter((a) => a.status === "active");
  if (active.length > 0) {
    const names = active.map((a) => `${a.substance}${a.severity === "severe" ? " (severe)" : ""}`);
    return { tone: "some", text: `Allergies: ${names.join(", ")}` };
  }
  if (status === "no_known_allergies") return { tone: "none", text: "No known allergies" };
  return { tone: "unknown", text: "Allergies unknown" };
}

/** "born 23 Apr 1961 (63 y)" */
export function bornLine(birthDate: string, age: number): string {
  return `born ${formatDate(birthDate)} (${age} y)`;
}
