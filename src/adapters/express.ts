/**
 * Sessions for Express 4 and 5, under Node and Deno.
 *
 * @module
 */

import type { RequestHandler } from "express";
import { SessionManager } from "../core.ts";
import type { SessionOptions } from "../core.ts";
import type { Session } from "../session.ts";
import { connectSession } from "./_connect.ts";

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

declare global {
  namespace Express {
    // Express's own Request (express-serve-static-core) extends this global interface, the hook
    // express-session uses too, so `req.session` is typed in Express 4 and 5 apps without a declaration.
    interface Request {
      /** The request's session, set by the `session()` middleware. */
      session: Session;
    }
  }
}

/**
 * Session middleware for Express 4 and 5: `req.session` in every later
 * handler. The store write and the cookie complete before the response is
 * sent, whichever way it is sent (`res.send`, `json`, `redirect`, `sendFile`,
 * `end`, streaming with `write`): the first call that would send headers is
 * held until the commit is done, so a redirect cannot outrun the save.
 *
 * Store failures go to Express's error handlers through `next(err)` as a
 * `SessionStoreError` (`status` 503), with the response's headers as they
 * were before the handler, so no `Set-Cookie` goes out. A response that
 * starts with a 5xx status (what an error handler sends for a failed handler)
 * is a failed request and saves nothing: Express tells middleware nothing else
 * about errors. A 4xx is not a failure.
 *
 * The cookie is `Secure` when the connection itself is TLS
 * (`req.socket.encrypted`), not by `req.secure`: Express's `trust proxy`
 * setting does not change it. Behind a proxy that terminates TLS, set the
 * `trustProxy` session option.
 *
 * `req.session` is a `Session` with untyped values; for typed data, cast it:
 * `req.session as Session<{ userId: string }>`.
 *
 * @param options Session options (all optional; see the README's options table).
 * @returns The middleware.
 *
 * @example
 * ```ts
 * import express from "express";
 * import { session } from "./express.ts";
 *
 * const app = express();
 * app.use(session({ secret: "a-secret-of-at-least-32-bytes-long!" }));
 * app.get("/", (req, res) => {
 *   const visits = (req.session.get("visits") ?? 0) + 1;
 *   req.session.set("visits", visits);
 *   res.send(`visit ${visits}`);
 * });
 * // app.listen(8000);
 * ```
 */
export function session(options: SessionOptions = {}): RequestHandler {
  return connectSession(new SessionManager(options));
}
