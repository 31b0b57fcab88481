/**
 * Sessions for Hono, on every runtime Hono runs on.
 *
 * @module
 */

import type { Context, MiddlewareHandler } from "hono";
import { SessionManager } from "../core.ts";
import type { SessionOptions } from "../core.ts";
import type { Session, SessionData } from "../session.ts";
import { requestFacts } from "./_response.ts";
import { commitNow, isPromiseLike, loadNow } from "../_lifecycle.ts";

export { SessionManager } from "../core.ts";
export type { RequestFacts, ResponseFacts, SecurityEvent, SessionOptions } from "../core.ts";
export { Session } from "../session.ts";
export type { LogInOptions, SessionData, UserSessionInfo } from "../session.ts";
export {
  SessionConflictError,
  SessionLimitError,
  SessionStoreError,
  SessionTooLargeError,
  StoreContractError,
} from "../errors.ts";
export { MemoryStore } from "../stores/memory.ts";

/**
 * The Hono environment the middleware adds: `c.get("session")`. Hono's
 * `app.use()` merges it when chained (`new Hono().use(session())`);
 * `new Hono<SessionEnv>()` types it in every handler. The npm package's
 * `./hono` entry also adds `session` to Hono's `ContextVariableMap`, which
 * types it in every app without either; JSR does not allow a package to
 * change another module's types, so on JSR use `SessionEnv`.
 */
// deno-lint-ignore no-explicit-any
export interface SessionEnv<T extends SessionData = Record<string, any>> {
  /** Hono's per-request variables. */
  Variables: {
    /** The request's session, set by the `session()` middleware. */
    session: Session<T>;
  };
}

/**
 * Session middleware for Hono: `c.get("session")` in every later handler.
 * The store write and the cookie complete before the response is returned.
 * A failed request (a handler threw, Hono's `c.error`, or the response is a
 * 5xx) saves nothing and gets no session cookie. Store failures reach
 * `app.onError` as a `SessionStoreError` (its `status` is 503), a write to a
 * session another request deleted as a `SessionConflictError` (409). Without
 * an `app.onError`, Hono's default handler answers both with their
 * `getResponse()`: 503 and 409, not 500.
 *
 * @param options Session options (all optional; see the README's options table).
 * @returns The middleware.
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { session } from "./hono.ts";
 * import type { SessionEnv } from "./hono.ts";
 *
 * const app = new Hono<SessionEnv>(); // or new Hono().use(session(...)).get(...), chained
 * app.use(session({ secret: "a-secret-of-at-least-32-bytes-long!" }));
 * app.get("/", (c) => {
 *   const s = c.get("session");
 *   const visits = (s.get("visits") ?? 0) + 1;
 *   s.set("visits", visits);
 *   return c.text(`visit ${visits}`);
 * });
 * const response = await app.request("/");
 * console.log(await response.text()); // "visit 1"
 * ```
 */
// deno-lint-ignore no-explicit-any
export function session<T extends SessionData = Record<string, any>>(
  options: SessionOptions = {},
): MiddlewareHandler<SessionEnv<T>> {
  const manager = new SessionManager<T>(options);
  return async function sessionMiddleware(c, next) {
    // loadNow and commitNow: no promise to await when the store answered at once (src/_lifecycle.ts).
    const loaded = loadNow(manager, requestFacts(c.req.raw, manager.trustProxy));
    const current = isPromiseLike(loaded) ? await loaded : loaded;
    c.set("session", current);
    await next();
    // When a handler threw, Hono has already answered through `onError` and set `c.error`.
    const committed = commitNow(manager, current, { threw: c.error !== undefined, status: c.res.status });
    const setCookie = isPromiseLike(committed) ? await committed : committed;
    if (setCookie) appendSetCookie(c, setCookie);
  };
}

/**
 * Appends the session's `Set-Cookie` to Hono's response. A response with
 * immutable headers (`Response.redirect()`, a proxied `fetch()` response)
 * is replaced by a copy that carries all its headers, and the cookie goes on
 * the copy. `c.res` is emptied before the copy is assigned, so Hono's setter
 * merges nothing: from Hono 4.6 it puts the old response's `Set-Cookie`
 * headers in place of the new one's (a cookie appended before would be
 * dropped when the old response had one of its own), and before 4.6 it
 * deleted the old response's `Content-Type`, which throws on immutable
 * headers.
 */
function appendSetCookie(c: Context, setCookie: string): void {
  try {
    c.res.headers.append("set-cookie", setCookie);
  } catch {
    const copy = new Response(c.res.body, c.res);
    copy.headers.append("set-cookie", setCookie);
    c.res = undefined;
    c.res = copy;
  }
}
