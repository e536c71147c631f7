import { describe, expect, it } from "vitest";
import { latestOnly, moveSelection, throttle, typingInField } from "../src/lib/activity";

describe("throttle", () => {
  it("lets the first call through, then one per interval", () => {
    let t = 0;
    let calls = 0;
    const f = throttle(() => (calls += 1), 30_000, () => t);
    f();
    f();
    t = 29_999;
    f();
    expect(calls).toBe(1);
    t = 30_000;
    f();
    expect(calls).toBe(2);
  });
});

describe("keyboard selection in the search list", () => {
  it("moves within bounds", () => {
    expect(moveSelection(-1, "ArrowDown", 3)).toBe(0);
    expect(moveSelection(2, "ArrowDown", 3)).toBe(2);
    expect(moveSelection(0, "ArrowUp", 3)).toBe(0);
    expect(moveSelection(2, "ArrowUp", 3)).toBe(1);
    expect(moveSelection(1, "End", 3)).toBe(2);
    expect(moveSelection(1, "Home", 3)).toBe(0);
    expect(moveSelection(0, "PageDown", 25)).toBe(10);
    expect(moveSelection(5, "PageUp", 25)).toBe(0);
    expect(moveSelection(1, "x", 3)).toBe(1);
    expect(moveSelection(1, "ArrowDown", 0)).toBe(-1);
  });
});

describe("latestOnly", () => {
  it("drops an answer that arrives after a newer query was sent", async () => {
    const pending = new Map<string, (v: string) => void>();
    const seen: string[] = [];
    const run = latestOnly(
      (q) => new Promise<string>((resolve) => pending.set(q, resolve)),
      (q, r) => seen.push(`${q}=${r}`),
      () => seen.push("error"),
    );
    run("smi");
    run("smith");
    pending.get("smith")!("2 hits");
    pending.get("smi")!("40 hits");
    await new Promise((r) => setTimeout(r, 0));
    expect(seen).toEqual(["smith=2 hits"]);
  });
});

describe("list shortcuts and form fields", () => {
  it("leave keys typed into a field alone", () => {
    for (const tagName of ["INPUT", "SELECT", "TEXTAREA"]) expect(typingInField({ tagName } as unknown as EventTarget)).toBe(true);
    for (const tagName of ["LI", "BUTTON", "ARTICLE"]) expect(typingInField({ tagName } as unknown as EventTarget)).toBe(false);
    expect(typingInField(null)).toBe(false);
  });
});
