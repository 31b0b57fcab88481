/**
 * Sessions for Koa 2 and 3, under Node, Deno and Bun.
 *
 * @module
 */

import { PROXY_DATA_KEYS, sessionProperty, sessionPropertyHandler } from "../_session_proxy.ts";
import { SessionManager } from "../core.ts";
import type { SessionOptions } from "../core.ts";
import { Session } from "../session.ts";

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
 * `ctx.session` in Koa: a {@linkcode Session} whose keys also read and write
 * as properties (`ctx.session.views = 1`), as with koa-session, plus
 * koa-session's `maxAge`. `ctx.session.userId` is the app's own key when it
 * set one (koa-session's habit), else the user `logIn()` bound; assigning
 * or deleting it changes the key.
 */
export type KoaSession =
  & Session
  // deno-lint-ignore no-explicit-any
  & { maxAge: number | "session" | undefined; userId: any }
  // deno-lint-ignore no-explicit-any
  & Record<string, any>;

/**
 * What the middleware adds to Koa's context: `ctx.session`. Koa's
 * `app.use()` merges it into the app's context type, so
 * `new Koa().use(session())` types `ctx.session` in the middleware chained
 * after it; `new Koa<Koa.DefaultState, SessionContext>()` types it
 * everywhere. The npm package's `./koa` entry also merges it into every Koa
 * context (`declare module "koa"`), which JSR does not allow a package to
 * do; there, add it to your app once (docs/adapters.md).
 */
export interface SessionContext {
  /** The request's session, set by the `session()` middleware. */
  session: KoaSession;
}

/**
 * The parts of a Koa context the middleware uses; Koa's `ParameterizedContext`
 * fits it. Structural, so that this module needs no type of Koa's.
 */
export interface KoaContext extends SessionContext {
  /** A request header (`ctx.get`), `""` when absent. */
  get(field: string): string;
  /** Node's request. */
  req: { socket?: unknown };
  /** The response status. */
  status: number;
  /** Appends a response header (`ctx.append`). */
  append(field: string, value: string): void;
}

/** A Koa middleware that puts the session on `ctx.session`. */
export type KoaMiddleware = (ctx: KoaContext, next: () => Promise<unknown>) => Promise<void>;

/**
 * Property access, koa-session style. `maxAge` is koa-session's per-session
 * lifetime: milliseconds, or `"session"` for a browser-session cookie, mapped
 * onto `session.setLifetime`; it reads `undefined` while the configured
 * timeouts apply.
 */
const KOA_PROPERTIES = sessionPropertyHandler(Session, {
  maxAge: {
    get(session) {
      const lifetime = session.lifetime;
      return lifetime === null ? "session" : lifetime === undefined ? undefined : lifetime * 1000;
    },
    set(session, value) {
      if (value === "session" || value === null) {
        session.setLifetime(null);
        return;
      }
      if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
        throw new TypeError(
          'Invalid ctx.session.maxAge: expected a positive number of milliseconds, or "session"',
        );
      }
      session.setLifetime(value / 1000);
    },
  },
}, PROXY_DATA_KEYS);

/** `ctx.session`, which refuses koa-session's `ctx.session = null` (its logout) and `delete ctx.session`. */
const exposeSession = sessionProperty("ctx.session");

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
 * `ctx.session` is a `Session` whose keys are also properties, as with
 * koa-session: `ctx.session.views = n`, `delete ctx.session.cart` and
 * `Object.keys(ctx.session)` are `set`, `delete` and `keys` (checked, saved
 * and merged per key). The session's own methods stay methods; assigning to
 * one of their names throws a `TypeError` that names the method to use.
 * `ctx.session.maxAge` is the session's own lifetime in milliseconds, or
 * `"session"` for a browser-session cookie. For typed data, cast it:
 * `ctx.session as unknown as Session<{ userId: string }>`.
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
export function session(options: SessionOptions = {}): KoaMiddleware {
  const manager = new SessionManager(options);
  return async function sessionMiddleware(ctx, next) {
    const current = await manager.load({
      cookie: ctx.get("cookie"),
      // The connection itself, not `ctx.secure`, which believes X-Forwarded-Proto when `app.proxy` is set:
      // the `trustProxy` session option is the only proxy setting the middleware follows.
      https: () => (ctx.req.socket as { encrypted?: boolean } | undefined)?.encrypted === true,
      forwardedProto: manager.trustProxy ? ctx.get("x-forwarded-proto") : undefined,
    });
    exposeSession(ctx, new Proxy(current, KOA_PROPERTIES));
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
