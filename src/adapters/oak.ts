/**
 * Sessions for Oak: the original module's `OakSession` and a plain
 * `session()` middleware, for Oak 17 (`jsr:@oak/oak`, Deno and Bun) and Oak 14
 * (the npm build `@oakserver/oak`, Node).
 *
 * The module names no type of Oak's: the context, middleware and application
 * types below are the parts of Oak's that the adapter uses, which Oak 14 and
 * 17 share. So it type-checks with either Oak, or with neither installed
 * (`mod.ts` re-exports `OakSession` to every app).
 *
 * @module
 */

import { SessionManager } from "../core.ts";
import type { SessionOptions } from "../core.ts";
import type { Session, SessionData } from "../session.ts";
import type { Store } from "../store.ts";

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

/** The state the middleware adds to `ctx.state`. */
// deno-lint-ignore no-explicit-any
export interface SessionState<T extends SessionData = Record<string, any>> {
  /** The request's session. */
  session: Session<T>;
}

/** The parts of Oak's `Context` (14 and 17) the middleware uses; Oak's own context fits it. */
export interface OakContext<S> {
  /** The request. */
  request: {
    /** The request headers (a `Headers`; only `get` is used, so every runtime's `Headers` type fits). */
    readonly headers: { get(name: string): string | null };
    /** The fetch `Request` behind it, when the server has one (Deno's, Bun's, `app.handle()`). */
    readonly source?: { readonly url: string };
    /** Whether the request came over https, as given to `listen()` (Node's server). */
    readonly secure: boolean;
  };
  /** The response being built. */
  response: {
    /** The status so far. */
    readonly status: number;
    /** The headers (a `Headers`); the middleware appends `Set-Cookie`. */
    readonly headers: { append(name: string, value: string): void };
  };
  /** Per-request state; the middleware sets `state.session`. */
  state: S;
}

/** An Oak middleware, `(ctx, next)`: what `app.use()` and `router.use()` take. */
export type OakMiddleware<S> = (ctx: OakContext<S>, next: () => Promise<unknown>) => Promise<void>;

/** What `OakSession` needs of an Oak `Application`: its `use`. */
export interface OakApplication {
  /** Mounts a middleware. */
  // deno-lint-ignore no-explicit-any
  use(middleware: OakMiddleware<any>): unknown;
}

/**
 * Session middleware for Oak: `ctx.state.session` in every later middleware.
 * Mount it on the app, or on a router for only its routes. The store write and
 * the cookie complete after the later middleware and before Oak sends the
 * response. A failed request (later middleware throws, or the response is a
 * 5xx) saves nothing and gets no session cookie; a thrown error goes on to
 * Oak's error handling, as store failures do (`SessionStoreError`, status 503).
 *
 * The cookie is `Secure` when the request itself is https, not by
 * `ctx.request.url`: Oak's `proxy` option does not change it. Behind a proxy
 * that terminates TLS, set the `trustProxy` session option.
 *
 * @param options Session options (all optional; see the README's options table).
 * @returns The middleware, for Oak's `app.use()` or `router.use()`.
 *
 * @example
 * ```ts
 * import { Application } from "@oakserver/oak";
 * import { session } from "./oak.ts";
 *
 * const app = new Application();
 * app.use(session({ secret: "a-secret-of-at-least-32-bytes-long!" }));
 * app.use((ctx) => {
 *   const visits = (ctx.state.session.get("visits") ?? 0) + 1;
 *   ctx.state.session.set("visits", visits);
 *   ctx.response.body = `visit ${visits}`;
 * });
 * // await app.listen({ port: 8000 });
 * ```
 */
// deno-lint-ignore no-explicit-any
export function session<T extends SessionData = Record<string, any>, S extends object = Record<string, any>>(
  options: SessionOptions = {},
): OakMiddleware<S & SessionState<T>> {
  return middlewareFor<T, S>(new SessionManager<T>(options));
}

// deno-lint-ignore no-explicit-any
function middlewareFor<T extends SessionData, S extends object = Record<string, any>>(
  manager: SessionManager<T>,
): OakMiddleware<S & SessionState<T>> {
  return async function sessionMiddleware(ctx, next) {
    const request = ctx.request;
    const headers = request.headers;
    const current = await manager.load({
      cookie: headers.get("cookie"),
      // The connection itself, never `request.url.protocol`, which believes X-Forwarded-Proto under Oak's
      // `proxy` option: the `trustProxy` session option is the only proxy setting the middleware follows.
      // The fetch Request's URL when Oak has one (Deno's server, `app.handle()`); otherwise (Node's server)
      // `secure`, which is what the app passed to `listen()`.
      https: () => {
        const source = request.source;
        return source ? source.url.startsWith("https:") : request.secure;
      },
      forwardedProto: manager.trustProxy ? headers.get("x-forwarded-proto") : undefined,
    });
    ctx.state.session = current;
    try {
      await next();
    } catch (error) {
      await manager.commit(current, { threw: true }); // a failed request: saves nothing
      throw error;
    }
    const setCookie = await manager.commit(current, { status: ctx.response.status });
    if (setCookie) ctx.response.headers.append("set-cookie", setCookie);
  };
}

/**
 * The original module's API, kept as a drop-in: the constructor mounts the
 * session middleware on `app`, so construct it before mounting routers.
 * `ctx.state.session` holds the session, with async-compatible `get`/`set`.
 *
 * @example
 * ```ts
 * import { Application, Router } from "@oakserver/oak";
 * import { OakSession } from "./oak.ts";
 *
 * const app = new Application();
 * const session = new OakSession(app); // MemoryStore by default
 * const router = new Router();
 * router.get("/", async (context) => {
 *   const count = await context.state.session.get("pageCount");
 *   await context.state.session.set("pageCount", count === undefined ? 0 : count + 1);
 *   context.response.body = `Visited page ${await context.state.session.get("pageCount")} times`;
 * });
 * app.use(router.routes());
 * console.log(session.manager.cookieName); // "sid"
 * ```
 */
export class OakSession {
  /** The session manager behind the middleware (its `store`, `cookieName`...). */
  readonly manager: SessionManager;

  /**
   * Mounts the session middleware on `app`.
   *
   * @param app The Oak application; the middleware is mounted on it at once.
   * @param store Where sessions live. Default: a `MemoryStore`.
   * @param options Further session options (`secret`, `cookie`, timeouts...).
   */
  constructor(app: OakApplication, store: Store | null = null, options: SessionOptions = {}) {
    this.manager = new SessionManager({ ...options, store: store ?? options.store });
    app.use(middlewareFor(this.manager));
  }
}
