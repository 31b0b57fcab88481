/**
 * Sessions for Opine 2.3.4 (the last release; Deno only): the original
 * module's `OpineSession`, and a plain `session()` middleware. Both serve
 * Express apps too, since Opine's API is a port of Express 4's.
 *
 * @module
 */

import { SessionManager } from "../core.ts";
import type { SessionOptions } from "../core.ts";
import type { Session } from "../session.ts";
import type { Store } from "../store.ts";
import { connectSession } from "./_connect.ts";
import type { ConnectMiddleware } from "./_connect.ts";

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
export type { ConnectMiddleware } from "./_connect.ts";

declare global {
  namespace Opine {
    // Opine's request type extends this open global interface, meant for declaration merging, so
    // `req.session` is typed in Opine apps without a declaration (and without importing Opine here).
    interface Request {
      /** The request's session, set by `OpineSession` or the `session()` middleware. */
      session: Session;
    }
  }
}

/** What `OpineSession` needs of an app: Opine's (or Express's) `app.use`. */
export interface OpineApp {
  /** Mounts a middleware. */
  use(middleware: ConnectMiddleware): unknown;
}

/**
 * Session middleware for Opine: `req.session` in every later middleware. The
 * store write and the cookie complete before the response leaves: the commit
 * is awaited in Opine's async `res.end` (where `send`, `json`, `redirect`,
 * `sendStatus` and `sendFile` end) and in `req.respond` (which Opine's own 404
 * and error pages call directly), once.
 *
 * Store failures go to Opine's error handlers through `next(err)` as a
 * `SessionStoreError` (`status` 503), with the response's headers as they
 * were before the handler, so no `Set-Cookie` goes out. A response that
 * starts with a 5xx status (what an error handler sends for a failed handler)
 * is a failed request and saves nothing: Opine tells middleware nothing else
 * about errors. A 4xx is not a failure.
 *
 * The cookie is `Secure` when the request URL is https (`req.proto`), not by
 * `req.secure`: Opine's `trust proxy` setting does not change it. Behind a
 * proxy that terminates TLS, set the `trustProxy` session option.
 *
 * @param options Session options (all optional; see the README's options table).
 * @returns The middleware.
 *
 * @example
 * ```ts ignore
 * import { opine } from "https://deno.land/x/opine@2.3.4/mod.ts";
 * import { session } from "./opine.ts";
 *
 * const app = opine();
 * app.use(session({ secret: "a-secret-of-at-least-32-bytes-long!" }));
 * app.get("/", (req, res) => {
 *   const visits = (req.session.get("visits") ?? 0) + 1;
 *   req.session.set("visits", visits);
 *   res.send(`visit ${visits}`);
 * });
 * app.listen(8000);
 * ```
 */
export function session(options: SessionOptions = {}): ConnectMiddleware {
  return connectSession(new SessionManager(options));
}

/**
 * The original module's API, kept as a drop-in: the constructor mounts the
 * session middleware on `app`, so construct it before mounting routes.
 * `req.session` holds the session, with async-compatible `get`/`set`. Unlike
 * the original, `options` is used: cookie attributes, secret, timeouts.
 *
 * @example The original README's example (with a `MemoryStore` here)
 * ```ts ignore
 * import { opine } from "https://deno.land/x/opine@2.3.4/mod.ts";
 * import { MemoryStore, OpineSession } from "./opine.ts";
 *
 * const app = opine();
 * const session = new OpineSession(app, {}, new MemoryStore());
 * app.use("/", async (req, res) => {
 *   if (await req.session.get("pageCount") !== undefined) {
 *     await req.session.set("pageCount", await req.session.get("pageCount") + 1);
 *   } else {
 *     await req.session.set("pageCount", 0);
 *   }
 *   res.setStatus(200).send(`Visited page ${await req.session.get("pageCount")} times`);
 * });
 * app.listen(8002);
 * console.log(session.manager.cookieName); // "sid"
 * ```
 */
export class OpineSession {
  /** The session manager behind the middleware (its `store`, `cookieName`...). */
  readonly manager: SessionManager;

  /**
   * @param app The Opine application; the middleware is mounted on it at once.
   * @param options Session options (`secret`, `cookie`, timeouts...).
   * @param store Where sessions live. Default: `options.store`, else a `MemoryStore`.
   */
  constructor(app: OpineApp, options: SessionOptions = {}, store: Store | null = null) {
    this.manager = new SessionManager({ ...options, store: store ?? options.store });
    app.use(connectSession(this.manager));
  }
}
