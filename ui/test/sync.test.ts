import { describe, expect, it } from "vitest";
import { syncWords } from "../src/lib/sync";

const base = { configured: true, url: "https://c:8443", acknowledged: 10, queued: 0, last_success: "2026-03-02T14:30:00.000000Z", last_attempt: null, last_error: null };

describe("the status bar's sync words", () => {
  it("says when nothing is set up", () => {
    expect(syncWords({ ...base, configured: false, url: undefined })).toEqual({ text: "Audit sync: not set up (working offline)", tone: "off" });
  });
  it("says up to date with the last time", () => {
    expect(syncWords(base).text).toMatch(/^Audit sync: up to date · last sent 02 Mar 2026/);
  });
  it("says what waits and why when the collector is unreachable", () => {
    const s = syncWords({ ...base, queued: 1234, last_error: "the collector cannot be reached (no connection)" });
    expect(s.tone).toBe("warn");
    expect(s.text).toBe("Audit sync: 1,234 waiting, collector unreachable");
    expect(s.detail).toBe("the collector cannot be reached (no connection)");
  });
});
