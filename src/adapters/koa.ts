/**
 * Sessions for Koa 2 and 3, under Node and Deno.
 *
 * @module
 */

import type { Middleware } from "koa";
import { SessionManager } from "../core.ts";
import type { SessionOptions } from "../core.ts";
import type { Session } from "../session.ts";

export { SessionManager } from "../core.ts";
export type { SecurityEvent, SessionOptions } from "../core.ts";
export { Session } from "../session.ts";
export type { SessionData } from "../session.ts";
export { SessionConflictError, SessionStoreError } from "../errors.ts";
export { MemoryStore } from "../stores/memory.ts";

declare module "koa" {
  interface ExtendableContext {
    /** The request's session, set by the `session()` middleware. */
    session: Session;
  }
}

/**
 * Session middleware for Koa 2 and 3: `ctx.session` in every later
 * middleware, where koa-session users expect it. The store write and the
 * cookie complete after the later middleware and before Koa sends the
 * response. When later middleware throws, nothing is saved and the error goes
 * on to Koa's error handling, as store failures do: a `SessionStoreError`
 * (`status` 503) or `SessionConflictError` (`status` 409), statuses Koa's own
 * error handler answers with.
 *
 * `ctx.session` is a `Session` with untyped values; for typed data, cast it:
 * `ctx.session as Session<{ userId: string }>`.
 *
 * @param options Session options (all optional; see the README's options table).
 * @returns The middleware.
 *
 * @example
 * ```ts
 * import Koa from "koa";
 * import { session } from "./koa.ts";
 *
 * const app = new Koa();
 * app.use(session({ secret: "a-secret-of-at-least-32-bytes-long!" }));
 * app.use((ctx) => {
 *   const visits = (ctx.session.get("visits") ?? 0) + 1;
 *   ctx.session.set("visits", visits);
 *   ctx.body = `visit ${visits}`;
 * });
 * // app.listen(8000);
 * ```
 */
export function session(options: SessionOptions = {}): Middleware {
  const manager = new SessionManager(options);
  return async function sessionMiddleware(ctx, next) {
    // The eager forms answer without a promise when the store does: no microtask for a MemoryStore.
    const loading = manager.loadEager({
      cookie: ctx.get("cookie"),
      // Koa's own flag: it honours X-Forwarded-Proto when the app sets `app.proxy = true`.
      https: () => ctx.secure,
      forwardedProto: manager.trustProxy ? ctx.get("x-forwarded-proto") : undefined,
    });
    const current = loading instanceof Promise ? await loading : loading;
    ctx.session = current;
    await next();
    const saving = manager.commitEager(current);
    const setCookie = saving instanceof Promise ? await saving : saving;
    if (setCookie) ctx.append("Set-Cookie", setCookie);
  };
}
