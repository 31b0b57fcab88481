/**
 * Sessions for any `(request) => Response` handler: `Deno.serve`, `Bun.serve`,
 * Cloudflare Workers, or a framework that speaks fetch.
 *
 * @module
 */

import { SessionManager } from "../core.ts";
import type { SessionOptions } from "../core.ts";
import type { Session, SessionData } from "../session.ts";
import { SessionConflictError, SessionStoreError } from "../errors.ts";
import { commitNow, isPromiseLike, loadNow } from "../_lifecycle.ts";
import { requestFacts, withSetCookie } from "./_response.ts";

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

/** A fetch handler that also receives its session. Extra arguments (Deno's `info`, a Worker's `env`) pass through. */
export type SessionHandler<T extends SessionData, A extends unknown[]> = (
  request: Request,
  session: Session<T>,
  ...rest: A
) => Response | Promise<Response>;

/** The response of a store outage or a conflict; any other error is thrown on. */
function sessionErrorResponse(error: unknown): Response {
  if (error instanceof SessionStoreError || error instanceof SessionConflictError) return error.getResponse();
  throw error;
}

/**
 * Makes a wrapper that gives a fetch handler its session and adds the session
 * cookie to the response it returns. The store write completes before the
 * response is returned. A failed request (the handler throws, or returns a
 * 5xx response) saves nothing and gets no session cookie; the handler's error
 * propagates to the server's error handling (`Deno.serve`'s `onError`).
 *
 * The session's own failures are answered here, with their `getResponse()`: a
 * store outage (`SessionStoreError`) with 503, a write to a session another
 * request deleted (`SessionConflictError`) with 409. `Deno.serve`, `Bun.serve`
 * and Fresh answer every error they do not know with 500, so leaving these to
 * them would turn an outage into a server error. A store that breaks its
 * contract (`StoreContractError`, a bug) propagates like the handler's errors.
 *
 * @param options Session options (all optional; see the README's options table).
 * @returns A function that wraps a {@linkcode SessionHandler} into a plain fetch handler.
 *
 * @example
 * ```ts
 * import { session } from "./fetch.ts";
 *
 * const withSession = session({ secret: "a-secret-of-at-least-32-bytes-long!" });
 * const handler = withSession((_request, session) => {
 *   const visits = (session.get("visits") ?? 0) + 1;
 *   session.set("visits", visits);
 *   return new Response(`visit ${visits}`);
 * });
 * // Deno.serve(handler);
 * const response = await handler(new Request("http://localhost/"));
 * console.log(await response.text()); // "visit 1"
 * ```
 */
// deno-lint-ignore no-explicit-any
export function session<T extends SessionData = Record<string, any>>(
  options: SessionOptions = {},
): <A extends unknown[]>(
  handler: SessionHandler<T, A>,
) => (request: Request, ...rest: A) => Promise<Response> {
  const manager = new SessionManager<T>(options);
  return function withSession<A extends unknown[]>(handler: SessionHandler<T, A>) {
    return async function handleWithSession(request: Request, ...rest: A): Promise<Response> {
      let current: Session<T>;
      try {
        // loadNow and commitNow: no promise to await when the store answered at once (src/_lifecycle.ts).
        const loaded = loadNow(manager, requestFacts(request, manager.trustProxy));
        current = isPromiseLike(loaded) ? await loaded : loaded;
      } catch (error) {
        return sessionErrorResponse(error);
      }
      let response: Response;
      try {
        response = await handler(request, current, ...rest);
      } catch (error) {
        await manager.commit(current, { threw: true }); // a failed request: saves nothing
        throw error;
      }
      let setCookie: string | undefined;
      try {
        const committed = commitNow(manager, current, { status: response.status });
        setCookie = isPromiseLike(committed) ? await committed : committed;
      } catch (error) {
        return sessionErrorResponse(error);
      }
      return setCookie ? withSetCookie(response, setCookie) : response;
    };
  };
}
