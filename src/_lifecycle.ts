// What adapters need of the core beyond the public lifecycle. Internal: not in the package's exports.
//
// Node's response methods (`writeHead`, `end`...) are synchronous, and Express calls them from the handler's
// own stack. The adapter commits at the first of them. When the store answers at once (MemoryStore,
// SqliteStore), the commit can finish before that call goes through, so the response is never held and the
// application sees exactly what Node would show it (`headersSent`, a second `end` ignored by Node itself).
// Only a store that answers with a promise makes the adapter hold the call.
//
// The fetch and Hono adapters use the same two calls for speed (issue 17): the public `load` and `commit`
// always answer with a promise, and awaiting it costs a microtask and a promise per call even when the store
// answered at once. On Deno, whose floor is about 10 µs a request, the two hops were about 0.2-0.3 µs of a
// read request (bench/results/2026-11-29-deno-steps.md). The lifecycle is the core's own either way.

import type { SessionManager } from "./core.ts";
import type { RequestFacts, ResponseFacts } from "./core.ts";
import type { Session, SessionData } from "./session.ts";
import type { MaybePromise } from "./store.ts";

/** Whether a value is a promise (or any thenable) rather than an answer: the one test the core and adapters share. */
export function isPromiseLike<R>(value: MaybePromise<R>): value is Promise<R> {
  return typeof (value as { then?: unknown } | null)?.then === "function";
}

type LoadNow = (manager: SessionManager, request: RequestFacts) => MaybePromise<Session>;

let loadNowImpl: LoadNow | undefined;

/** Called once by the core, when `SessionManager` is defined. */
export function registerLoadNow(implementation: LoadNow): void {
  loadNowImpl = implementation;
}

/**
 * `manager.load(request)`, answering with the session itself when the store
 * answered at once, and with a promise only when it did not. May throw
 * instead of rejecting.
 */
export function loadNow<T extends SessionData>(
  manager: SessionManager<T>,
  request: RequestFacts,
): MaybePromise<Session<T>> {
  return loadNowImpl!(manager as unknown as SessionManager, request) as MaybePromise<Session<T>>;
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
export function commitNow<T extends SessionData>(
  manager: SessionManager<T>,
  session: Session<T>,
  response: ResponseFacts | undefined,
): MaybePromise<string | undefined> {
  return commitNowImpl!(manager as unknown as SessionManager, session as Session, response);
}
