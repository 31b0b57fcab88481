// Durations and deadlines, bounded by the range a `Date` can hold: internal, not in the package's exports.

import { NEVER } from "./store.ts";

/**
 * A duration of `seconds` in milliseconds, at most the whole range a `Date` can hold (`NEVER`):
 * longer is the same as never. Unbounded, `1e306` seconds would overflow to `Infinity` and a deadline past
 * `Number.MAX_SAFE_INTEGER` would be stored by SQLite as an integer it cannot read back, locking the session
 * into a store error on every request (express-session's "never expire" idiom, `maxAge:
 * Number.MAX_SAFE_INTEGER`, reached it).
 */
export function durationMs(seconds: number): number {
  return Math.min(seconds * 1000, NEVER);
}

/** `now` plus a duration, never past `NEVER`: every deadline the core writes is one a store can keep. */
export function after(now: number, ms: number): number {
  return Math.min(now + ms, NEVER);
}
