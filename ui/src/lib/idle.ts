// The idle lock as the window sees it. The backend locks a session that has heard of no
// activity for the clinic's idle timeout; this clock tells it of keyboard and pointer
// activity, saves pending note drafts and warns before the lock strikes, so "Stay signed in"
// can still keep the session, and a draft never dies with it.
//
// Activity is told at once when the backend last heard of some a while ago, else at the end
// of that while (every 30 seconds at most, a quarter of a shorter timeout): the backend is
// never more than that behind, so the lock strikes between the timeout and the timeout plus
// that while after the last key press. The warning comes a minute before the lock, or
// halfway through a timeout too short for that: with the shortest timeout (1 minute) it shows
// 30 seconds after the backend last heard of activity and leaves 30 seconds to answer. The
// clock measures from the last time it told the backend, when the backend's own timer
// started, so the warning is never late.

/** Activity is told to the backend at most this often (a quarter of a shorter timeout). */
export const KEEP_ALIVE_EVERY_MS = 30_000;
/** How long before the lock the warning shows, when the timeout leaves room for it. */
export const WARNING_LEAD_MS = 60_000;
/** After the lock falls due, how long until the window asks whether it happened. */
export const DUE_SLACK_MS = 1_000;

/** How often activity is told: every 30 seconds at most, a quarter of a shorter timeout. */
export function keepAliveEvery(timeoutMs: number): number {
  return Math.min(KEEP_ALIVE_EVERY_MS, Math.floor(timeoutMs / 4));
}

/** How long before the lock the warning shows: a minute, or half a shorter timeout. */
export function warningLead(timeoutMs: number): number {
  return Math.min(WARNING_LEAD_MS, Math.floor(timeoutMs / 2));
}

export type IdleClock = {
  /** A key press or a click: someone is at the window. */
  activity(): void;
  /** "Stay signed in": activity, told to the backend at once. */
  stay(): void;
  /** The window is leaving (locked or signed out): no more timers. */
  stop(): void;
};

export type IdleOptions = {
  timeoutMs: number;
  /** Tells the backend of activity (it restarts its idle timer). */
  keepAlive: () => Promise<unknown>;
  /** Saves pending drafts; true when something was saved (which the backend counts as activity). */
  flush: () => Promise<boolean>;
  /** The warning is due; the lock will strike at `lockAt` (ms since the epoch). */
  onwarn: (lockAt: number) => void;
  /** Activity came after the warning: take it away. */
  onclear: () => void;
  /** The lock is due: see whether the backend has locked. */
  ondue: () => void;
  now?: () => number;
};

export function idleClock(o: IdleOptions): IdleClock {
  const now = o.now ?? Date.now;
  const lead = warningLead(o.timeoutMs);
  const every = keepAliveEvery(o.timeoutMs);
  let told = now();
  let tells = 0;
  let active = told;
  let warned = false;
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let trailing: ReturnType<typeof setTimeout> | undefined;

  function tell(): void {
    clearTimeout(trailing);
    trailing = undefined;
    told = now();
    tells += 1;
    void o.keepAlive().catch(() => undefined);
  }

  function schedule(): void {
    clearTimeout(timer);
    if (stopped) return;
    const at = warned ? told + o.timeoutMs + DUE_SLACK_MS : told + o.timeoutMs - lead;
    timer = setTimeout(warned ? due : () => void check(), Math.max(0, at - now()));
  }

  function due(): void {
    if (!stopped) o.ondue();
  }

  async function check(): Promise<void> {
    if (stopped) return;
    if (active > told) {
      tell();
      schedule();
      return;
    }
    // Drafts are saved before the warning, not at the lock: a save counts as activity for
    // the backend, so a save at the last moment would put the lock off by a whole timeout.
    const since = tells;
    let saved = false;
    try {
      saved = await o.flush();
    } catch {
      saved = false;
    }
    // Activity told meanwhile has already set the next check.
    if (stopped || tells !== since) return;
    if (active > told) {
      tell();
    } else if (saved) {
      told = now();
    } else {
      warned = true;
      o.onwarn(told + o.timeoutMs);
    }
    schedule();
  }

  function activity(force: boolean): void {
    if (stopped) return;
    active = now();
    if (warned) {
      warned = false;
      o.onclear();
      tell();
      schedule();
    } else if (force || active - told >= every) {
      tell();
      schedule();
    } else if (trailing === undefined) {
      // Held back by the throttle: told when it allows, so the backend is never far behind.
      trailing = setTimeout(() => {
        trailing = undefined;
        if (!stopped && active > told) {
          tell();
          schedule();
        }
      }, told + every - active);
    }
  }

  tell();
  schedule();
  return {
    activity: () => activity(false),
    stay: () => activity(true),
    stop: () => {
      stopped = true;
      clearTimeout(timer);
      clearTimeout(trailing);
    },
  };
}

/** The time left before the lock, in words: "1 minute", "42 seconds", "1 second". */
export function timeLeftWords(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000));
  if (s >= 60) {
    const m = Math.round(s / 60);
    return m === 1 ? "1 minute" : `${m} minutes`;
  }
  return s === 1 ? "1 second" : `${s} seconds`;
}
