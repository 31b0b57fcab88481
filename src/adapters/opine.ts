/**
 * Sessions for Opine 2.3.4 (the last release; Deno only): the original
 * module's `OpineSession`, and a plain `session()` middleware. For Express,
 * import `<package>/express`.
 *
 * Opine's `Request` extends its open global `Opine.Request` interface, meant
 * for declaration merging. JSR does not allow a package to change global
 * types, so to type `req.session` add this to your app once:
 *
 * ```ts ignore
 * import type { Session } from "@sessions/sessions";
 * declare global {
 *   namespace Opine {
 *     interface Request {
 *       session: Session;
 *     }
 *   }
 * }
 * ```
 *
 * @module
 */

import { SessionManager } from "../core.ts";
import type { SessionOptions } from "../core.ts";
import type { Session } from "../session.ts";
import type { Store } from "../store.ts";
import { connectSession } from "./_connect.ts";
import type { ConnectHook, ConnectMiddleware, ConnectNext, ConnectRequest } from "./_connect.ts";

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
export type { ConnectMiddleware } from "./_connect.ts";

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
 * app.listen({ hostname: "127.0.0.1", port: 8000 }); // Deno 2 refuses app.listen(8000)
 * ```
 */
export function session(options: SessionOptions = {}): ConnectMiddleware {
  return connectSession(new SessionManager(options), OPINE_HOOK);
}

/**
 * The original module's API, kept as a drop-in: the constructor mounts the
 * session middleware on `app`, so construct it before mounting routes.
 * `req.session` holds the session, with async-compatible `get`/`set`. Unlike
 * the original, `options` is used: cookie attributes, secret, timeouts.
 *
 * @example The original README's example (with a `MemoryStore`, and a hostname for Deno 2, here)
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
 * app.listen({ hostname: "127.0.0.1", port: 8002 });
 * console.log(session.manager.cookieName); // "sid"
 * ```
 */
export class OpineSession {
  /** The session manager behind the middleware (its `store`, `cookieName`...). */
  readonly manager: SessionManager;

  /**
   * Mounts the session middleware on `app`.
   *
   * @param app The Opine application; the middleware is mounted on it at once.
   * @param options Session options (`secret`, `cookie`, timeouts...).
   * @param store Where sessions live. Default: `options.store`, else a `MemoryStore`.
   */
  constructor(app: OpineApp, options: SessionOptions = {}, store: Store | null = null) {
    this.manager = new SessionManager({ ...options, store: store ?? options.store });
    app.use(connectSession(this.manager, OPINE_HOOK));
  }
}

/** Opine's request and response, as far as the hook touches them. */
interface OpineRequest extends ConnectRequest {
  /** Opine's `WrappedRequest` sets it from the full request URL: the scheme of the connection itself. */
  proto?: string;
  respond(response: unknown): Promise<void> | void;
}
interface OpineResponse {
  status: number;
  headers: Headers;
  body?: unknown;
  written?: boolean;
  end(body?: unknown): Promise<void>;
}

/**
 * Opine's hook: the commit is awaited in Opine's async `res.end` (which
 * `send`, `json`, `redirect`, `sendStatus` and `sendFile` end in) and in
 * `req.respond` (which `res.end` calls, and Opine's own 404 and error pages
 * call directly). The first of them commits; both are put back then.
 *
 * While the commit runs, the response reads as Opine's would once `end` was
 * called (`res.written` is true), and what it sends is what it was at that
 * call: the status, headers and body are kept then and put back before the
 * response goes out, so a change made meanwhile (a second `send` after the
 * first was not awaited) cannot alter it. A second `end` waits for the first
 * and then goes to Opine as it is, where Opine answers it as it would without
 * the middleware.
 */
const OPINE_HOOK: ConnectHook = {
  // The scheme of the request URL, not `req.secure`: Opine's `trust proxy` setting does not change it.
  https: (req) => (req as OpineRequest).proto === "https:",
  attach(req, res, manager, current, next) {
    hookOpine(req as OpineRequest, res as OpineResponse, manager, current, next);
  },
};

function hookOpine(
  req: OpineRequest,
  res: OpineResponse,
  manager: SessionManager,
  current: Session,
  next: ConnectNext,
): void {
  const end = res.end;
  const respond = req.respond;
  const endWasOwn = Object.hasOwn(res, "end");
  const respondWasOwn = Object.hasOwn(req, "respond");
  const headersBefore = new Headers(res.headers);
  const statusBefore = res.status;
  let settled: Promise<boolean> | undefined;

  const putBack = () => {
    if (endWasOwn) res.end = end;
    else delete (res as Partial<OpineResponse>).end;
    if (respondWasOwn) req.respond = respond;
    else delete (req as Partial<OpineRequest>).respond;
  };
  /** Commits once; `true` when the response may go out. */
  const settle = (): Promise<boolean> => {
    if (settled !== undefined) return settled;
    // What the response is now is what goes out: kept before the first await.
    const status = res.status;
    const headers = new Headers(res.headers);
    const body = res.body;
    res.written = true;
    settled = manager.commit(current, { status }).then((setCookie) => {
      putBack();
      res.status = status;
      replaceHeaders(res.headers, headers);
      res.body = body;
      if (setCookie) res.headers.append("Set-Cookie", setCookie);
      return true;
    }, (error) => {
      putBack();
      replaceHeaders(res.headers, headersBefore);
      res.status = statusBefore;
      res.written = false;
      next(error);
      return false;
    });
    return settled;
  };

  res.end = async function (this: unknown, body?: unknown) {
    const first = settled === undefined;
    // Opine's own `end` keeps the body before anything else: so does the hook, so it is part of what is kept.
    if (first && body) res.body = body;
    if (!(await settle())) return;
    return await end.call(this, first ? undefined : body);
  };
  req.respond = async function (this: unknown, response: unknown) {
    if (!(await settle())) return;
    return await respond.call(this, response);
  };
}

function replaceHeaders(target: Headers, source: Headers): void {
  for (const name of [...target.keys()]) target.delete(name);
  for (const [name, value] of source) target.append(name, value);
}
