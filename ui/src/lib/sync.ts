// The status bar's words for the audit sync state.
import type { SyncStatus } from "../gen/bindings";
import { formatDateTime } from "./format";

/** Short words for the status bar; the full reason goes in its tooltip. */
export function syncWords(s: SyncStatus | null): { text: string; tone: "ok" | "warn" | "off"; detail?: string } {
  if (!s) return { text: "Audit sync: …", tone: "off" };
  if (!s.configured) return { text: "Audit sync: not set up (working offline)", tone: "off" };
  const queued = s.queued.toLocaleString("en-GB");
  if (s.last_error) {
    const why = s.last_error.includes("cannot be reached") ? "collector unreachable" : "collector refused";
    return { text: `Audit sync: ${queued} waiting, ${why}`, tone: "warn", detail: s.last_error };
  }
  if (s.queued > 0 && !s.last_success) return { text: `Audit sync: ${queued} waiting`, tone: "warn" };
  const when = s.last_success ? ` · last sent ${formatDateTime(s.last_success)}` : "";
  return { text: s.queued > 0 ? `Audit sync: ${queued} waiting${when}` : `Audit sync: up to date${when}`, tone: "ok" };
}
