/**
 * Sessions for Fresh 2 (`@fresh/core`, Deno): a middleware that puts the
 * session on `ctx.state.session`.
 *
 * @module
 */

import type { SessionOptions } from "../core.ts";
import type { Session, SessionData } from "../session.ts";
import { session as fetchSession } from "./fetch.ts";

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

/** The state the middleware adds to `ctx.state`: make it part of your app's `State`. */
// deno-lint-ignore no-explicit-any
export interface SessionState<T extends SessionData = Record<string, any>> {
  /** The request's session. */
  session: Session<T>;
}

/**
 * The parts of Fresh 2's `Context` the middleware uses; Fresh's own
 * `Context<State>` fits it when `State` includes {@linkcode SessionState}.
 */
export interface FreshContext<S> {
  /** The incoming request. */
  req: Request;
  /** Per-request state shared with later middleware and routes. */
  state: S;
  /** Runs the later middleware and the route; rejects with what they throw. */
  next(): Promise<Response>;
}

/**
 * Session middleware for Fresh 2: `ctx.state.session` in every later
 * middleware and route. The store write completes and the cookie is added to
 * the response from `ctx.next()` before it is returned (responses with
 * immutable headers, such as `Response.redirect()`'s, are copied). A failed
 * request (`ctx.next()` throws, or answers with a 5xx) saves nothing and gets
 * no session cookie; a thrown error propagates to Fresh's error handling. The
 * session's own failures are answered by the middleware with their
 * `getResponse()`: a store outage (`SessionStoreError`) with 503, a conflict
 * (`SessionConflictError`) with 409, because Fresh answers every error that is
 * not its own `HttpError` with 500.
 *
 * @typeParam T The session data, e.g. `session<{ userId: string }>()`.
 * @param options Session options (all optional; see the README's options table).
 * @returns The middleware, for `app.use()`.
 *
 * @example With Fresh
 * ```ts ignore
 * import { App } from "jsr:@fresh/core@^2";
 * import { session } from "./fresh.ts";
 * import type { SessionState } from "./fresh.ts";
 *
 * const app = new App<SessionState>()
 *   .use(session({ secret: "a-secret-of-at-least-32-bytes-long!" }))
 *   .get("/", (ctx) => {
 *     const visits = (ctx.state.session.get("visits") ?? 0) + 1;
 *     ctx.state.session.set("visits", visits);
 *     return new Response(`visit ${visits}`);
 *   });
 * await app.listen();
 * ```
 *
 * @example Driven by hand, with a context of Fresh's shape
 * ```ts
 * import { session } from "./fresh.ts";
 * import type { SessionState } from "./fresh.ts";
 *
 * const middleware = session({ secret: "a-secret-of-at-least-32-bytes-long!" });
 * const req = new Request("http://localhost/");
 * const state = {} as SessionState;
 * const response = await middleware({
 *   req,
 *   state,
 *   next() {
 *     state.session.set("visits", 1);
 *     return Promise.resolve(new Response("visit 1"));
 *   },
 * });
 * console.log(response.headers.getSetCookie().length); // 1
 * ```
 */
// deno-lint-ignore no-explicit-any
export function session<T extends SessionData = Record<string, any>>(
  options: SessionOptions = {},
): (ctx: FreshContext<SessionState<T>>) => Promise<Response> {
  const handle = fetchSession<T>(options)((_req, current, ctx: FreshContext<SessionState<T>>) => {
    ctx.state.session = current;
    return ctx.next();
  });
  return function sessionMiddleware(ctx) {
    return handle(ctx.req, ctx);
  };
}
