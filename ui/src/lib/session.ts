// One place that hears "the session is gone" (the idle timeout, a lock elsewhere), so any
// screen that gets `session_expired` from a command sends the window to the lock screen.
import { asAppError, type AppError } from "./api";

let expiredHandler: ((message: string) => void) | null = null;

export function onSessionExpired(handler: ((message: string) => void) | null): void {
  expiredHandler = handler;
}

/** Turns a failed command into a message for the screen; an expired session locks the window. */
export function failure(e: unknown): AppError {
  const err = asAppError(e);
  if (err.code === "session_expired" && expiredHandler) expiredHandler(err.message);
  return err;
}
