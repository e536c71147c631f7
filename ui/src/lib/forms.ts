// What was typed into a chart's forms and not yet saved, kept per chart while the session
// lasts: switching tabs or charts keeps it, locking or signing out forgets it. It lives in
// this window's memory only, never in web storage (a note's draft is saved in the vault).

const kept = new Map<string, Record<string, string>>();

/** The form's key: which form of which chart. */
export function formKey(form: string, patientId: number): string {
  return `${form}:${patientId}`;
}

/** What was typed into the form, or an empty form. */
export function recall(key: string): Record<string, string> {
  return { ...(kept.get(key) ?? {}) };
}

/** Keeps what is typed (a form with nothing in it is forgotten). */
export function keep(key: string, values: Record<string, string>): void {
  if (Object.values(values).some((v) => (v ?? "").trim() !== "")) kept.set(key, { ...values });
  else kept.delete(key);
}

export function forget(key: string): void {
  kept.delete(key);
}

/** Whether any form of any chart holds unsaved text. */
export function anyUnsaved(): boolean {
  return kept.size > 0;
}

/** On lock or sign-out: nothing typed outlives the session in the window. */
export function forgetAll(): void {
  kept.clear();
}
