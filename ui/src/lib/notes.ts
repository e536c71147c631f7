// The notes timeline's filters and previews, kept out of the markup so they are tested. A
// timeline entry is a note with its addenda and amendments; filters pick whole entries.
import type { Encounter, Note } from "../gen/bindings";

/** "" means any. `encounter` is an encounter id, or "none" for notes outside any encounter. */
export type NoteFilter = { encounter: string; author: string; kind: string };

export const NO_FILTER: NoteFilter = { encounter: "", author: "", kind: "" };

/** The kind filter's choices, by what a clinician looks for. */
export const NOTE_KINDS: readonly { value: string; label: string }[] = [
  { value: "draft", label: "Unsigned (drafts)" },
  { value: "signed", label: "Signed notes" },
  { value: "addendum", label: "With an addendum" },
  { value: "amendment", label: "With an amendment" },
];

export const isFiltered = (f: NoteFilter) => Boolean(f.encounter || f.author || f.kind);

/** Whether an entry (a note and the addenda under it) passes every filter set. */
export function entryMatches(note: Note, children: readonly Note[], f: NoteFilter): boolean {
  if (f.encounter === "none" ? note.encounter_id !== null : f.encounter && String(note.encounter_id) !== f.encounter) {
    return false;
  }
  if (f.author && note.author !== f.author && !children.some((c) => c.author === f.author)) return false;
  switch (f.kind) {
    case "draft":
      return note.status === "draft" || children.some((c) => c.status === "draft");
    case "signed":
      return note.status === "signed";
    case "addendum":
    case "amendment":
      return children.some((c) => c.kind === f.kind);
    default:
      return true;
  }
}

/** Each note's addenda and amendments, oldest first, by the id of the note they belong to. */
export function childrenByParent(notes: readonly Note[]): Map<number, Note[]> {
  const map = new Map<number, Note[]>();
  for (const n of notes) {
    if (n.parent_id !== null) map.set(n.parent_id, [...(map.get(n.parent_id) ?? []), n]);
  }
  for (const list of map.values()) list.sort((a, b) => a.created_at.localeCompare(b.created_at));
  return map;
}

/** Everyone who wrote a note or an addendum, in order. */
export function noteAuthors(notes: readonly Note[]): string[] {
  return [...new Set(notes.map((n) => n.author))].sort((a, b) => a.localeCompare(b));
}

/** The encounters that notes belong to, newest first, and whether any note has none. */
export function noteEncounters(
  roots: readonly Note[],
  encounters: readonly Encounter[],
): { encounters: Encounter[]; withoutEncounter: boolean } {
  const ids = new Set(roots.map((n) => n.encounter_id));
  return {
    encounters: encounters.filter((e) => ids.has(e.id)).sort((a, b) => b.start.localeCompare(a.start)),
    withoutEncounter: ids.has(null),
  };
}

/** What a folded entry holds beneath it: "1 addendum", "2 addenda, 1 amendment". */
export function addendaWords(children: readonly Note[]): string {
  const count = (kind: string) => children.filter((c) => c.kind === kind).length;
  const addenda = count("addendum");
  const amendments = count("amendment");
  return [
    addenda ? `${addenda} ${addenda === 1 ? "addendum" : "addenda"}` : "",
    amendments ? `${amendments} ${amendments === 1 ? "amendment" : "amendments"}` : "",
  ]
    .filter(Boolean)
    .join(", ");
}

/** The start of a note's text for its collapsed line, on one line. */
export function notePreview(note: Note, max = 120): string {
  const text =
    note.format === "free"
      ? note.text
      : [note.subjective, note.objective, note.assessment, note.plan].filter(Boolean).join(" · ");
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > max ? `${line.slice(0, max - 1).trimEnd()}…` : line;
}
