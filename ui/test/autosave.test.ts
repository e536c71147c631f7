import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Note, NoteContent } from "../src/lib/api";
import {
  AUTOSAVE_AFTER_MS,
  Autosaver,
  draftFor,
  dropDraft,
  dropDrafts,
  editorFields,
  editorNote,
  findDraft,
  flushDrafts,
  NoteDraft,
  type DraftCalls,
} from "../src/lib/autosave";

beforeEach(() => vi.useFakeTimers());
afterEach(() => {
  dropDrafts();
  vi.useRealTimers();
});

/** A save that finishes when the test says so. */
function gated() {
  const calls: { value: string; finish: (ok?: boolean) => void }[] = [];
  const save = (value: string) =>
    new Promise<void>((resolve, reject) => calls.push({ value, finish: (ok = true) => (ok ? resolve() : reject(new Error("no"))) }));
  return { calls, save };
}

describe("Autosaver", () => {
  it("saves once, a short while after typing stops", async () => {
    const saved: string[] = [];
    const s = new Autosaver<string>(async (v) => void saved.push(v));
    s.change("a");
    await vi.advanceTimersByTimeAsync(AUTOSAVE_AFTER_MS - 500);
    s.change("ab");
    await vi.advanceTimersByTimeAsync(AUTOSAVE_AFTER_MS - 1);
    expect(saved).toEqual([]);
    expect(s.unsaved).toBe(true);
    await vi.advanceTimersByTimeAsync(1);
    expect(saved).toEqual(["ab"]);
    expect(s.unsaved).toBe(false);
    expect(s.status.savedAt).not.toBeNull();
  });

  it("saves one at a time: typing during a save is saved after it", async () => {
    const { calls, save } = gated();
    const s = new Autosaver<string>(save);
    s.change("a");
    await vi.advanceTimersByTimeAsync(AUTOSAVE_AFTER_MS);
    expect(calls.map((c) => c.value)).toEqual(["a"]);
    s.change("ab");
    const flushed = s.flush();
    await vi.advanceTimersByTimeAsync(AUTOSAVE_AFTER_MS);
    expect(calls.map((c) => c.value)).toEqual(["a"]);
    calls[0].finish();
    await vi.advanceTimersByTimeAsync(0);
    expect(calls.map((c) => c.value)).toEqual(["a", "ab"]);
    calls[1].finish();
    expect(await flushed).toBe("saved");
    expect(await s.flush()).toBe("clean");
  });

  it("typing back the text in the vault is no change, but not while another save is on its way", async () => {
    const { calls, save } = gated();
    const s = new Autosaver<string>(save, { saved: "seen" });
    s.change("seen");
    expect(s.unsaved).toBe(false);
    s.change("seen today");
    void s.flush();
    await vi.advanceTimersByTimeAsync(0);
    // "seen today" is on its way; going back to "seen" must be saved after it.
    s.change("seen");
    expect(s.unsaved).toBe(true);
    calls[0].finish();
    await vi.advanceTimersByTimeAsync(AUTOSAVE_AFTER_MS);
    expect(calls.map((c) => c.value)).toEqual(["seen today", "seen"]);
  });

  it("keeps a value whose save failed, and tries again on the next flush", async () => {
    const { calls, save } = gated();
    const s = new Autosaver<string>(save, { describe: () => "The vault said no." });
    s.change("a");
    const first = s.flush();
    await vi.advanceTimersByTimeAsync(0);
    calls[0].finish(false);
    expect(await first).toBe("failed");
    expect(s.unsaved).toBe(true);
    expect(s.status.error).toBe("The vault said no.");
    // No retry loop: nothing is saved until asked.
    await vi.advanceTimersByTimeAsync(10 * AUTOSAVE_AFTER_MS);
    expect(calls.length).toBe(1);
    const second = s.flush();
    await vi.advanceTimersByTimeAsync(0);
    calls[1].finish();
    expect(await second).toBe("saved");
    expect(s.status.error).toBeNull();
  });

  it("an empty value is nothing to save", async () => {
    const saved: string[] = [];
    const s = new Autosaver<string>(async (v) => void saved.push(v));
    s.change("a");
    s.change(null);
    await vi.advanceTimersByTimeAsync(AUTOSAVE_AFTER_MS);
    expect(saved).toEqual([]);
    expect(s.unsaved).toBe(false);
  });

  it("discarding drops what is pending and saves nothing more", async () => {
    const saved: string[] = [];
    const s = new Autosaver<string>(async (v) => void saved.push(v));
    s.change("a");
    s.discard();
    s.change("ab");
    await vi.advanceTimersByTimeAsync(AUTOSAVE_AFTER_MS);
    expect(await s.flush()).toBe("clean");
    expect(saved).toEqual([]);
  });

  it("tells its status to subscribers", async () => {
    const s = new Autosaver<string>(async () => undefined);
    const seen: string[] = [];
    const off = s.subscribe((st) => seen.push(st.saving ? "saving" : st.unsaved ? "unsaved" : st.savedAt ? "saved" : "idle"));
    s.change("a");
    await s.flush();
    off();
    s.change("ab");
    expect(seen).toEqual(["idle", "unsaved", "saving", "saved"]);
  });
});

let nextId = 1;
function fakeCalls() {
  const made: { encounter: number | null; content: NoteContent }[] = [];
  const edits: { id: number; content: NoteContent }[] = [];
  const gates: (() => void)[] = [];
  const note = (id: number, content: NoteContent): Note =>
    ({
      id, patient_id: 1, encounter_id: null, kind: "note", parent_id: null, author: "dr.lee", status: "draft",
      created_at: "2026-03-02T09:00:00Z", updated_at: "2026-03-02T09:00:00Z", signed_by: null, signed_at: null,
      content_sha256: null, signature: null, ...content,
    }) as Note;
  const calls: DraftCalls = {
    create: (encounter, content) =>
      new Promise((resolve) => {
        made.push({ encounter, content });
        gates.push(() => resolve(note(nextId++, content)));
      }),
    edit: (id, content) =>
      new Promise((resolve) => {
        edits.push({ id, content });
        gates.push(() => resolve(note(id, content)));
      }),
  };
  return { calls, made, edits, gates };
}

const free = (text: string): NoteContent => ({ format: "free", text });

describe("NoteDraft", () => {
  it("two quick saves make one draft: the first creates it, the second edits it", async () => {
    const { calls, made, edits, gates } = fakeCalls();
    const d = new NoteDraft(calls, { encounterId: 7 });
    const notes: Note[] = [];
    d.saved((n) => notes.push(n));
    d.saver.change(free("Half"));
    const first = d.saver.flush();
    await vi.advanceTimersByTimeAsync(0);
    // The first save is on its way (the draft not yet made) when more is typed and saved.
    d.saver.change(free("Half-written"));
    const second = d.saver.flush();
    await vi.advanceTimersByTimeAsync(0);
    expect(made.length).toBe(1);
    expect(edits.length).toBe(0);
    gates[0]();
    await first;
    await vi.advanceTimersByTimeAsync(0);
    expect(edits).toEqual([{ id: d.noteId, content: free("Half-written") }]);
    gates[1]();
    expect(await second).toBe("saved");
    expect(made).toEqual([{ encounter: 7, content: free("Half") }]);
    expect(notes.map((n) => n.id)).toEqual([d.noteId, d.noteId]);
    expect(d.lastSaved?.id).toBe(d.noteId);
  });

  it("an existing draft is edited, never created again", async () => {
    const { calls, made, edits, gates } = fakeCalls();
    const d = new NoteDraft(calls, { noteId: 41, saved: free("Seen.") });
    d.saver.change(free("Seen."));
    expect(d.saver.unsaved).toBe(false);
    d.saver.change(free("Seen today."));
    await vi.advanceTimersByTimeAsync(AUTOSAVE_AFTER_MS);
    gates[0]();
    await vi.advanceTimersByTimeAsync(0);
    expect(made).toEqual([]);
    expect(edits).toEqual([{ id: 41, content: free("Seen today.") }]);
  });
});

describe("the session's drafts", () => {
  it("are found again by key, flushed together, and dropped at the lock", async () => {
    const { calls, made, gates } = fakeCalls();
    const a = draftFor("note:1", () => new NoteDraft(calls));
    expect(draftFor("note:1", () => new NoteDraft(calls))).toBe(a);
    expect(await flushDrafts()).toBe(false);
    a.saver.change(free("Pending"));
    const flushed = flushDrafts();
    await vi.advanceTimersByTimeAsync(0);
    gates[0]();
    expect(await flushed).toBe(true);
    expect(made.length).toBe(1);
    dropDraft("note:1");
    expect(findDraft("note:1")).toBeUndefined();
    const b = draftFor("note:2", () => new NoteDraft(calls));
    b.saver.change(free("Typed"));
    dropDrafts();
    await vi.advanceTimersByTimeAsync(AUTOSAVE_AFTER_MS);
    expect(made.length).toBe(1);
    expect(findDraft("note:2")).toBeUndefined();
  });

  it("a save that hangs does not hold the lock up for more than the limit", async () => {
    const { calls } = fakeCalls();
    draftFor("note:3", () => new NoteDraft(calls)).saver.change(free("Stuck"));
    const flushed = flushDrafts(1_000);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(await flushed).toBe(false);
  });
});

describe("editor fields", () => {
  it("make a note only when something is written", () => {
    expect(editorNote({ format: "free", text: "  " })).toBeNull();
    expect(editorNote({ format: "free", text: "Seen." })).toEqual(free("Seen."));
    expect(editorNote({ format: "soap", subjective: " ", plan: "" })).toBeNull();
    expect(editorNote({ format: "soap", subjective: "Cough", objective: "", assessment: "", plan: "" })).toEqual({
      format: "soap", subjective: "Cough", objective: null, assessment: null, plan: null,
    });
  });

  it("round-trip a note's content", () => {
    const soap: NoteContent = { format: "soap", subjective: "Cough", objective: null, assessment: "URI", plan: null };
    expect(editorNote(editorFields(soap))).toEqual(soap);
    expect(editorNote(editorFields(free("Seen.")))).toEqual(free("Seen."));
    expect(editorFields(null)).toEqual({ format: "free", text: "" });
  });
});
