import { describe, expect, it } from "vitest";
import type { Encounter, Note } from "../src/lib/api";
import {
  addendaWords,
  childrenByParent,
  entryMatches,
  isFiltered,
  NO_FILTER,
  noteAuthors,
  noteEncounters,
  notePreview,
} from "../src/lib/notes";

let nextId = 1;
function note(over: Partial<Note> = {}): Note {
  return {
    id: nextId++, patient_id: 1, encounter_id: null, kind: "note", parent_id: null, author: "dr.lee", status: "signed",
    created_at: "2026-03-02T09:00:00Z", updated_at: "2026-03-02T09:00:00Z", signed_by: null, signed_at: null,
    content_sha256: null, signature: null, format: "free", text: "Seen today.",
    ...over,
  } as Note;
}
const encounter = (id: number, start: string): Encounter => ({
  id, patient_id: 1, start, kind: "office", clinician: "dr.lee", reason: "Review", created_at: start, created_by: "dr.lee",
});

describe("the notes filters", () => {
  const inVisit = note({ encounter_id: 7 });
  const addendum = note({ parent_id: inVisit.id, kind: "addendum", author: "nurse.kim", created_at: "2026-03-03T09:00:00Z" });
  const draft = note({ status: "draft", author: "nurse.kim" });
  const amended = note({ encounter_id: 8 });
  const amendment = note({ parent_id: amended.id, kind: "amendment", status: "draft" });
  const kids = childrenByParent([inVisit, addendum, draft, amended, amendment]);
  const pick = (f: Partial<typeof NO_FILTER>) =>
    [inVisit, draft, amended].filter((n) => entryMatches(n, kids.get(n.id) ?? [], { ...NO_FILTER, ...f })).map((n) => n.id);

  it("shows everything with no filter set", () => {
    expect(isFiltered(NO_FILTER)).toBe(false);
    expect(pick({})).toEqual([inVisit.id, draft.id, amended.id]);
  });

  it("filters by encounter, or by having none", () => {
    expect(pick({ encounter: "7" })).toEqual([inVisit.id]);
    expect(pick({ encounter: "none" })).toEqual([draft.id]);
  });

  it("finds an author's notes and the notes they added to", () => {
    expect(pick({ author: "nurse.kim" })).toEqual([inVisit.id, draft.id]);
    expect(pick({ author: "dr.lee" })).toEqual([inVisit.id, amended.id]);
  });

  it("filters by kind: unsigned work, signed notes, addenda and amendments", () => {
    expect(pick({ kind: "draft" })).toEqual([draft.id, amended.id]);
    expect(pick({ kind: "signed" })).toEqual([inVisit.id, amended.id]);
    expect(pick({ kind: "addendum" })).toEqual([inVisit.id]);
    expect(pick({ kind: "amendment" })).toEqual([amended.id]);
  });

  it("combines filters", () => {
    expect(isFiltered({ ...NO_FILTER, kind: "draft" })).toBe(true);
    expect(pick({ kind: "draft", author: "nurse.kim" })).toEqual([draft.id]);
    expect(pick({ kind: "addendum", encounter: "8" })).toEqual([]);
  });

  it("offers the authors and the encounters that notes have, newest first", () => {
    expect(noteAuthors([inVisit, addendum, draft])).toEqual(["dr.lee", "nurse.kim"]);
    const listed = noteEncounters([inVisit, amended], [encounter(7, "2026-01-05T09:00:00Z"), encounter(8, "2026-02-01T09:00:00Z"), encounter(9, "2026-03-01T09:00:00Z")]);
    expect(listed.encounters.map((e) => e.id)).toEqual([8, 7]);
    expect(listed.withoutEncounter).toBe(false);
    expect(noteEncounters([draft], []).withoutEncounter).toBe(true);
  });
});

describe("a folded note", () => {
  it("keeps one line of its text", () => {
    expect(notePreview(note({ text: "  Knee pain\n\nsince Tuesday.  " }))).toBe("Knee pain since Tuesday.");
    const long = notePreview(note({ text: "word ".repeat(60) }), 20);
    expect(long.length).toBeLessThanOrEqual(20);
    expect(long.endsWith("…")).toBe(true);
    const soap = note({ format: "soap", subjective: "Cough", objective: null, assessment: "Viral URTI", plan: "Fluids" } as Partial<Note>);
    expect(notePreview(soap)).toBe("Cough · Viral URTI · Fluids");
  });

  it("says what lies beneath it", () => {
    const parent = note();
    const a = note({ parent_id: parent.id, kind: "addendum" });
    const b = note({ parent_id: parent.id, kind: "addendum" });
    const c = note({ parent_id: parent.id, kind: "amendment" });
    expect(addendaWords([a])).toBe("1 addendum");
    expect(addendaWords([a, b, c])).toBe("2 addenda, 1 amendment");
    expect(addendaWords([])).toBe("");
  });

  it("lists addenda oldest first under their note", () => {
    const parent = note();
    const later = note({ parent_id: parent.id, created_at: "2026-03-05T00:00:00Z" });
    const sooner = note({ parent_id: parent.id, created_at: "2026-03-04T00:00:00Z" });
    expect(childrenByParent([parent, later, sooner]).get(parent.id)?.map((n) => n.id)).toEqual([sooner.id, later.id]);
  });
});
