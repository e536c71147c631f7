// Keyboard and pointer activity keeps the session alive, told to the backend at most every
// 30 seconds; and the small helpers the search box needs.

/** Returns a function that calls `fn` at most once per `ms` (the first call goes through). */
export function throttle(fn: () => void, ms: number, now: () => number = Date.now): () => void {
  let last = -Infinity;
  return () => {
    const t = now();
    if (t - last >= ms) {
      last = t;
      fn();
    }
  };
}

/** Whether a key press is typing into a form field (list shortcuts leave it alone). */
export function typingInField(target: EventTarget | null): boolean {
  const tag = (target as { tagName?: unknown } | null)?.tagName;
  return typeof tag === "string" && ["INPUT", "SELECT", "TEXTAREA"].includes(tag);
}

/** The index after pressing a key in a list of `length` items; -1 is "none selected". */
export function moveSelection(current: number, key: string, length: number): number {
  if (length === 0) return -1;
  switch (key) {
    case "ArrowDown":
      return current < 0 ? 0 : Math.min(current + 1, length - 1);
    case "ArrowUp":
      return current <= 0 ? 0 : current - 1;
    case "Home":
      return 0;
    case "End":
      return length - 1;
    case "PageDown":
      return Math.min(Math.max(current, 0) + 10, length - 1);
    case "PageUp":
      return Math.max(current - 10, 0);
    default:
      return current;
  }
}

/**
 * Runs queries one after another and keeps only the newest answer: a slow answer to "smi"
 * never replaces the answer to "smith" that the user typed after it.
 */
export function latestOnly<T>(run: (q: string) => Promise<T>, onResult: (q: string, r: T) => void, onError: (e: unknown) => void) {
  let generation = 0;
  return (q: string) => {
    const mine = ++generation;
    run(q).then(
      (r) => {
        if (mine === generation) onResult(q, r);
      },
      (e) => {
        if (mine === generation) onError(e);
      },
    );
  };
}
