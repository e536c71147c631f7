import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { DUE_SLACK_MS, idleClock, KEEP_ALIVE_EVERY_MS, keepAliveEvery, timeLeftWords, warningLead, type IdleOptions } from "../src/lib/idle";

const MINUTE = 60_000;

function clock(timeoutMs: number, over: Partial<IdleOptions> = {}) {
  const seen = { keepAlives: 0, flushes: 0, warnings: [] as number[], clears: 0, dues: 0 };
  const c = idleClock({
    timeoutMs,
    keepAlive: async () => void (seen.keepAlives += 1),
    flush: async () => {
      seen.flushes += 1;
      return false;
    },
    onwarn: (lockAt) => seen.warnings.push(lockAt),
    onclear: () => (seen.clears += 1),
    ondue: () => (seen.dues += 1),
    ...over,
  });
  return { c, seen };
}

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(0);
});
afterEach(() => vi.useRealTimers());

describe("warningLead", () => {
  it("is a minute, or half a timeout too short for that", () => {
    expect(warningLead(10 * MINUTE)).toBe(MINUTE);
    expect(warningLead(2 * MINUTE)).toBe(MINUTE);
    expect(warningLead(1 * MINUTE)).toBe(30_000);
  });
});

describe("idleClock", () => {
  it("tells the backend at start, warns a minute before the lock, and looks at the lock when due", async () => {
    const { c, seen } = clock(10 * MINUTE);
    expect(seen.keepAlives).toBe(1);
    await vi.advanceTimersByTimeAsync(9 * MINUTE - 1);
    expect(seen.warnings).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(seen.flushes).toBe(1);
    expect(seen.warnings).toEqual([10 * MINUTE]);
    await vi.advanceTimersByTimeAsync(MINUTE + DUE_SLACK_MS);
    expect(seen.dues).toBe(1);
    c.stop();
  });

  it("warns halfway through a one-minute timeout", async () => {
    const { c, seen } = clock(MINUTE);
    await vi.advanceTimersByTimeAsync(30_000);
    expect(seen.warnings).toEqual([MINUTE]);
    c.stop();
  });

  it("tells activity at once after a quiet while, else when the throttle allows", async () => {
    const { c, seen } = clock(10 * MINUTE);
    expect(keepAliveEvery(10 * MINUTE)).toBe(KEEP_ALIVE_EVERY_MS);
    await vi.advanceTimersByTimeAsync(1_000);
    c.activity();
    c.activity();
    expect(seen.keepAlives).toBe(1);
    // The held-back activity is told 30 s after the last telling, once.
    await vi.advanceTimersByTimeAsync(KEEP_ALIVE_EVERY_MS - 1_001);
    expect(seen.keepAlives).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(seen.keepAlives).toBe(2);
    await vi.advanceTimersByTimeAsync(5 * KEEP_ALIVE_EVERY_MS);
    expect(seen.keepAlives).toBe(2);
    // After a quiet while, at once.
    c.activity();
    expect(seen.keepAlives).toBe(3);
    c.stop();
  });

  it("the backend is never far behind: the warning is timed from the held-back activity", async () => {
    const { c, seen } = clock(10 * MINUTE);
    await vi.advanceTimersByTimeAsync(10_000);
    c.activity(); // held back: 10 s after the last keep-alive; told at 30 s
    await vi.advanceTimersByTimeAsync(9 * MINUTE + 20_000 - 1);
    expect(seen.warnings).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(seen.warnings).toEqual([10 * MINUTE + 30_000]);
    expect(seen.keepAlives).toBe(2);
    c.stop();
  });

  it("a one-minute timeout tells activity every 15 seconds at most", async () => {
    expect(keepAliveEvery(MINUTE)).toBe(15_000);
    const { c, seen } = clock(MINUTE);
    await vi.advanceTimersByTimeAsync(2_000);
    c.activity();
    await vi.advanceTimersByTimeAsync(13_000);
    expect(seen.keepAlives).toBe(2);
    // Warned 30 s after that, for a lock a minute after it.
    await vi.advanceTimersByTimeAsync(30_000);
    expect(seen.warnings).toEqual([75_000]);
    c.stop();
  });

  it("takes the warning away on activity and tells the backend at once", async () => {
    const { c, seen } = clock(MINUTE);
    await vi.advanceTimersByTimeAsync(30_000);
    expect(seen.warnings.length).toBe(1);
    await vi.advanceTimersByTimeAsync(5_000);
    c.stay();
    expect(seen.clears).toBe(1);
    expect(seen.keepAlives).toBe(2);
    // The next warning is timed from the stay, and the lock is not looked at before.
    await vi.advanceTimersByTimeAsync(30_000 - 1);
    expect(seen.warnings.length).toBe(1);
    expect(seen.dues).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(seen.warnings).toEqual([MINUTE, 35_000 + MINUTE]);
    c.stop();
  });

  it("saves pending drafts before warning; a save counts as activity for the backend", async () => {
    let pending = true;
    const { c, seen } = clock(10 * MINUTE, {
      flush: async () => {
        const saved = pending;
        pending = false;
        return saved;
      },
    });
    await vi.advanceTimersByTimeAsync(9 * MINUTE);
    expect(seen.warnings).toEqual([]);
    await vi.advanceTimersByTimeAsync(9 * MINUTE);
    expect(seen.warnings).toEqual([19 * MINUTE]);
    c.stop();
  });

  it("does not warn when activity comes while drafts are saving", async () => {
    let release: (saved: boolean) => void = () => undefined;
    const { c, seen } = clock(MINUTE, { flush: () => new Promise<boolean>((r) => (release = r)) });
    await vi.advanceTimersByTimeAsync(30_000);
    c.activity();
    release(false);
    await vi.advanceTimersByTimeAsync(0);
    expect(seen.warnings).toEqual([]);
    expect(seen.keepAlives).toBe(2);
    c.stop();
  });

  it("does nothing once stopped", async () => {
    const { c, seen } = clock(MINUTE);
    c.stop();
    await vi.advanceTimersByTimeAsync(5 * MINUTE);
    c.activity();
    expect(seen).toEqual({ keepAlives: 1, flushes: 0, warnings: [], clears: 0, dues: 0 });
  });
});

describe("timeLeftWords", () => {
  it("says minutes and seconds in words", () => {
    expect(timeLeftWords(60_000)).toBe("1 minute");
    expect(timeLeftWords(41_200)).toBe("42 seconds");
    expect(timeLeftWords(1_000)).toBe("1 second");
    expect(timeLeftWords(-5)).toBe("0 seconds");
  });
});
