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
export type { RequestFacts, ResponseFacts, SecurityEvent, SessionOptions } from "../core.ts";
export { Session } from "../session.ts";
export type { SessionData } from "../session.ts";
export {
  SessionConflictError,
  SessionStoreError,
  SessionTooLargeError,
  StoreContractError,
} from "../errors.ts";
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
 * response. A failed request (later middleware throws, or the response is a
 * 5xx) saves nothing and gets no session cookie; a thrown error goes on to
 * Koa's error handling, as store failures do: a `SessionStoreError`
 * (`status` 503) or `SessionConflictError` (`status` 409), statuses Koa's own
 * error handler answers with.
 *
 * The cookie is `Secure` when the connection itself is TLS, not by
 * `ctx.secure`: Koa's `app.proxy` does not change it. Behind a proxy that
 * terminates TLS, set the `trustProxy` session option.
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
    const current = await manager.load({
      cookie: ctx.get("cookie"),
      // The connection itself, not `ctx.secure`, which believes X-Forwarded-Proto when `app.proxy` is set:
      // the `trustProxy` session option is the only proxy setting the middleware follows.
      https: () => (ctx.req.socket as { encrypted?: boolean } | undefined)?.encrypted === true,
      forwardedProto: manager.trustProxy ? ctx.get("x-forwarded-proto") : undefined,
    });
    ctx.session = current;
    try {
      await next();
    } catch (error) {
      await manager.commit(current, { threw: true }); // a failed request: saves nothing
      throw error;
    }
    const setCookie = await manager.commit(current, { status: ctx.status });
    if (setCookie) ctx.append("Set-Cookie", setCookie);
  };
}
