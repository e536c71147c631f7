// Note drafts save themselves: a short while after typing stops, on leaving the tab or the
// chart, and before the lock. A note is a draft in the vault from its first save (the
// window keeps nothing in web storage). Saves run one at a time, so the first save has
// created the draft before the next one edits it: two quick saves never make two drafts.
// Drafts live for the session, keyed like forms (lib/forms.ts), so a panel opened again finds
// the draft it left, with the note its first save created.
import type { Note, NoteContent } from "../gen/bindings";
import { clinicParts } from "./format";

/** A draft is saved this long after typing stops. */
export const AUTOSAVE_AFTER_MS = 2_000;
/** Locking waits at most this long for drafts to save; a save that hangs never keeps the vault open. */
export const FLUSH_LIMIT_MS = 5_000;

export type SaveStatus = {
  /** Typed text not yet in the vault (waiting for typing to stop, or its save failed). */
  unsaved: boolean;
  saving: boolean;
  savedAt: Date | null;
  error: string | null;
};

/** What a flush did: saved something, found nothing to save, or failed. */
export type Flushed = "saved" | "clean" | "failed";

type Options<T> = {
  delayMs?: number;
  /** The value already in the vault (an existing draft's content): typing it back is no change. */
  saved?: T | null;
  /** A failed save in words. */
  describe?: (e: unknown) => string;
};

/** Saves the latest value a short while after the last change, one save at a time. */
export class Autosaver<T> {
  private readonly delayMs: number;
  private readonly describe: (e: unknown) => string;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private pending: { value: T } | null = null;
  /** The value the vault holds, or will once the save in flight lands. */
  private sent: string | null;
  /** The value the vault is known to hold. */
  private stored: string | null;
  private queue: Promise<unknown> = Promise.resolve();
  private stopped = false;
  private current: SaveStatus = { unsaved: false, saving: false, savedAt: null, error: null };
  private readonly listeners = new Set<(s: SaveStatus) => void>();

  constructor(
    private readonly save: (value: T) => Promise<void>,
    { delayMs = AUTOSAVE_AFTER_MS, saved = null, describe = () => "The draft could not be saved." }: Options<T> = {},
  ) {
    this.delayMs = delayMs;
    this.describe = describe;
    this.sent = this.stored = saved === null ? null : JSON.stringify(saved);
  }

  get status(): SaveStatus {
    return this.current;
  }

  /** Whether there is typed text that is not (yet) in the vault. */
  get unsaved(): boolean {
    return this.pending !== null;
  }

  /** Calls `fn` with the status now and on every change; returns the way to stop. */
  subscribe(fn: (s: SaveStatus) => void): () => void {
    this.listeners.add(fn);
    fn(this.current);
    return () => void this.listeners.delete(fn);
  }

  /** The value changed (null: nothing worth saving, like an empty note). */
  change(value: T | null): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    if (value === null || JSON.stringify(value) === this.sent) {
      this.pending = null;
      this.set({ unsaved: false, error: null });
      return;
    }
    this.pending = { value };
    this.set({ unsaved: true });
    this.timer = setTimeout(() => void this.flush(), this.delayMs);
  }

  /** Saves what is pending now, after any save in flight. */
  flush(): Promise<Flushed> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const run = this.queue.then(() => this.saveOnce());
    this.queue = run;
    return run;
  }

  /** Drops what is pending and saves nothing more (a save in flight still lands). */
  discard(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.pending = null;
    this.set({ unsaved: false });
  }

  private async saveOnce(): Promise<Flushed> {
    const pending = this.pending;
    if (!pending || this.stopped) return "clean";
    this.pending = null;
    const json = JSON.stringify(pending.value);
    this.sent = json;
    this.set({ saving: true });
    try {
      await this.save(pending.value);
      this.stored = json;
      this.set({ saving: false, savedAt: new Date(), error: null, unsaved: this.pending !== null });
      return "saved";
    } catch (e) {
      this.sent = this.stored;
      // Kept for the next try, unless newer typing replaced it.
      if (!this.pending && !this.stopped) this.pending = pending;
      this.set({ saving: false, error: this.describe(e), unsaved: this.pending !== null });
      return "failed";
    }
  }

  private set(change: Partial<SaveStatus>): void {
    this.current = { ...this.current, ...change };
    for (const fn of this.listeners) fn(this.current);
  }
}

/** How a note draft reaches the vault: the first save creates it, later ones edit it. */
export type DraftCalls = {
  create: (encounterId: number | null, content: NoteContent) => Promise<Note>;
  edit: (noteId: number, content: NoteContent) => Promise<Note>;
};

/** A note being written: its saver and, once the first save created it, its id in the vault. */
export class NoteDraft {
  noteId: number | null;
  /** The encounter a new note is filed under (fixed by its first save). */
  encounterId: number | null;
  /** The note as the last save returned it. */
  lastSaved: Note | null = null;
  readonly saver: Autosaver<NoteContent>;
  private readonly onsaved = new Set<(n: Note) => void>();

  constructor(
    private readonly calls: DraftCalls,
    start: { noteId?: number | null; encounterId?: number | null; saved?: NoteContent | null; delayMs?: number; describe?: (e: unknown) => string } = {},
  ) {
    this.noteId = start.noteId ?? null;
    this.encounterId = start.encounterId ?? null;
    this.saver = new Autosaver<NoteContent>((content) => this.write(content), {
      delayMs: start.delayMs,
      saved: start.saved ?? null,
      describe: start.describe,
    });
  }

  /** Calls `fn` with the note after every save; returns the way to stop. */
  saved(fn: (n: Note) => void): () => void {
    this.onsaved.add(fn);
    return () => void this.onsaved.delete(fn);
  }

  private async write(content: NoteContent): Promise<void> {
    const n = this.noteId === null ? await this.calls.create(this.encounterId, content) : await this.calls.edit(this.noteId, content);
    this.noteId = n.id;
    this.lastSaved = n;
    for (const fn of this.onsaved) fn(n);
  }
}

const drafts = new Map<string, NoteDraft>();

/** The draft kept under `key`, made by `make` if there is none. */
export function draftFor(key: string, make: () => NoteDraft): NoteDraft {
  let d = drafts.get(key);
  if (!d) {
    d = make();
    drafts.set(key, d);
  }
  return d;
}

export function findDraft(key: string): NoteDraft | undefined {
  return drafts.get(key);
}

/** The note is finished with (saved by hand, or its typing discarded). */
export function dropDraft(key: string): void {
  drafts.delete(key);
}

/** Saves every pending draft, waiting at most `limitMs`; true when something was saved. */
export async function flushDrafts(limitMs: number = FLUSH_LIMIT_MS): Promise<boolean> {
  if (drafts.size === 0) return false;
  let limit: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => (limit = setTimeout(() => resolve("late"), limitMs)));
  try {
    const done = await Promise.race([Promise.all([...drafts.values()].map((d) => d.saver.flush())), late]);
    return done !== "late" && done.includes("saved");
  } finally {
    clearTimeout(limit);
  }
}

/** On lock or sign-out: nothing more is saved, and no draft is kept in the window. */
export function dropDrafts(): void {
  for (const d of drafts.values()) d.saver.discard();
  drafts.clear();
}

/** A moment's clock time in the clinic: "10:42". */
export function clockWords(at: Date): string {
  const p = clinicParts(at);
  return `${String(p.hh).padStart(2, "0")}:${String(p.mm).padStart(2, "0")}`;
}

/** "Draft saved 10:42", in the clinic's time. */
export function savedWords(at: Date): string {
  return `Draft saved ${clockWords(at)}`;
}

/** A note editor's fields as the note they make, or null when nothing is written. */
export function editorNote(values: Record<string, string>): NoteContent | null {
  const blank = (x: string | undefined) => ((x ?? "").trim() ? (x as string) : null);
  if (values.format === "soap") {
    const note = {
      format: "soap" as const,
      subjective: blank(values.subjective),
      objective: blank(values.objective),
      assessment: blank(values.assessment),
      plan: blank(values.plan),
    };
    return note.subjective || note.objective || note.assessment || note.plan ? note : null;
  }
  return blank(values.text) === null ? null : { format: "free", text: values.text ?? "" };
}

/** A note's content as an editor's fields. */
export function editorFields(note: NoteContent | null | undefined): Record<string, string> {
  if (!note) return { format: "free", text: "" };
  return note.format === "free"
    ? { format: "free", text: note.text }
    : {
        format: "soap",
        subjective: note.subjective ?? "",
        objective: note.objective ?? "",
        assessment: note.assessment ?? "",
        plan: note.plan ?? "",
      };
}
