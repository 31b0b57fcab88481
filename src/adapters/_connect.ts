// The session middleware for connect-style servers, `(req, res, next)`: Express 4 and 5, Connect, a bare
// `http.createServer` handler, and Opine 2. What differs between them is passed in, never detected: each
// entry point gives its own `ConnectHook` (how to read the connection's TLS-ness, and how to run the commit
// before the response leaves).
//
// Like every adapter, it reports facts and decides nothing: the raw connection's TLS-ness, the raw
// `X-Forwarded-Proto` (only when the manager trusts a proxy), and the status the response starts with.
// Whether the request failed is the core's rule (`SessionManager.commit`).

import type { SessionManager } from "../core.ts";
import type { Session, SessionData } from "../session.ts";
import type { ConnectNext } from "./_node_response.ts";

export type { ConnectNext } from "./_node_response.ts";

/** The parts of a connect-style request the middleware reads: Node's raw headers, or a `get`. */
export interface ConnectRequest {
  /** A request header (Express and Opine). */
  get?(field: string): string | undefined;
  /** Node's request headers, lower-cased names. */
  headers?: unknown;
  /** Node's raw header list, `[name, value, ...]`. */
  rawHeaders?: unknown;
}

/** The connect-style middleware shape shared by Express, Connect, node:http and Opine. */
export type ConnectMiddleware = (req: ConnectRequest, res: object, next: ConnectNext) => void;

/** What one framework's entry point gives the shared middleware. */
export interface ConnectHook<Req = ConnectRequest, Res = object> {
  /** Whether the connection to this server itself is TLS (never a proxy header). */
  https(req: Req): boolean;
  /**
   * Hooks the response so that `commit(status)` runs before it leaves, and a
   * commit that fails goes to `next(error)` instead of the response.
   */
  attach(req: Req, res: Res, manager: SessionManager, session: Session, next: ConnectNext): void;
  /** Puts the session on the request (default: `req.session = session`). */
  expose?(req: Req, session: Session): void;
}

/**
 * Builds the middleware. It loads the session, puts it on the request, hooks
 * the response, and calls `next()`.
 */
export function connectSession<T extends SessionData>(
  manager: SessionManager<T>,
  hook: ConnectHook,
): ConnectMiddleware {
  const trustProxy = manager.trustProxy;
  return function sessionMiddleware(req, res, next) {
    manager.load({
      cookie: header(req, "cookie"),
      // Asked only if a cookie is written.
      https: () => hook.https(req),
      forwardedProto: trustProxy ? header(req, "x-forwarded-proto") : undefined,
    }).then((current) => {
      // Anything that throws here goes to the error handlers, never an unhandled rejection.
      try {
        if (hook.expose) hook.expose(req, current as Session);
        else (req as { session?: Session }).session = current as Session;
        hook.attach(req, res, manager as SessionManager, current as Session, next);
      } catch (error) {
        next(error);
        return;
      }
      next();
    }, next);
  };
}

/**
 * A request header. On Node, from the raw header list: `req.get` or
 * `req.headers` would make Node build the object of every header, which
 * nothing else on a request may need. Repeated headers are joined as Node
 * joins them: `Cookie` with "; ", others with ", ".
 */
function header(req: ConnectRequest, name: string): string | undefined {
  const raw = req.rawHeaders;
  if (Array.isArray(raw)) {
    const separator = name === "cookie" ? "; " : ", ";
    let value: string | undefined;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const field = raw[i];
      if (field.length === name.length && field.toLowerCase() === name) {
        value = value === undefined ? raw[i + 1] : value + separator + raw[i + 1];
      }
    }
    return value;
  }
  if (typeof req.get === "function") return req.get(name) ?? undefined;
  const value = (req.headers as Record<string, unknown> | undefined)?.[name];
  return typeof value === "string" ? value : undefined;
}
