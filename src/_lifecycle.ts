// What the connect adapter (Express, Opine) needs of the core beyond the public lifecycle. Internal: not in
// the package's exports.
//
// Node's response methods (`writeHead`, `end`...) are synchronous, and Express calls them from the handler's
// own stack. The adapter commits at the first of them. When the store answers at once (MemoryStore,
// SqliteStore), the commit can finish before that call goes through, so the response is never held and the
// application sees exactly what Node would show it (`headersSent`, a second `end` ignored by Node itself).
// Only a store that answers with a promise makes the adapter hold the call. Every other adapter has an async
// hook after the handler and uses the public `commit`.

import type { SessionManager } from "./core.ts";
import type { ResponseFacts } from "./core.ts";
import type { Session } from "./session.ts";
import type { MaybePromise } from "./store.ts";

/** Whether a value is a promise (or any thenable) rather than an answer: the one test the core and adapters share. */
export function isPromiseLike<R>(value: MaybePromise<R>): value is Promise<R> {
  return typeof (value as { then?: unknown } | null)?.then === "function";
}

type CommitNow = (
  manager: SessionManager,
  session: Session,
  response: ResponseFacts | undefined,
) => MaybePromise<string | undefined>;

let commitNowImpl: CommitNow | undefined;

/** Called once by the core, when `SessionManager` is defined. */
export function registerCommitNow(implementation: CommitNow): void {
  commitNowImpl = implementation;
}

/**
 * `manager.commit(session, response)`, answering with the `Set-Cookie` value
 * itself when the store answered at once, and with a promise only when it did
 * not. May throw instead of rejecting.
 */
export function commitNow(
  manager: SessionManager,
  session: Session,
  response: ResponseFacts | undefined,
): MaybePromise<string | undefined> {
  return commitNowImpl!(manager, session, response);
}
