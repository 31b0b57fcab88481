/**
 * Sessions for Express 4 and 5, Connect and plain `node:http`, under Node,
 * Deno and Bun; a drop-in for express-session.
 *
 * `req.session` is typed by a declaration merged into Express's global
 * `Express.Request` interface, as express-session's types do. The npm
 * package's `./express` entry carries it; JSR does not allow a package to
 * change global types, so on JSR (and when importing this file directly) add
 * it to your app once:
 *
 * ```ts ignore
 * import type { ExpressSession } from "@sessions/sessions/express";
 * declare global {
 *   namespace Express {
 *     interface Request {
 *       session: ExpressSession;
 *       sessionID: string;
 *     }
 *   }
 * }
 * ```
 *
 * @module
 */

import { COOKIE_OPTION_NAMES } from "../_cookie.ts";
import { commitNow } from "../_lifecycle.ts";
import { after, durationMs } from "../_time.ts";
import { rejectUnknownOptions } from "../_options.ts";
import { PROXY_DATA_KEYS, sessionProperty, sessionPropertyHandler } from "../_session_proxy.ts";
import type { ExtraMember } from "../_session_proxy.ts";
import { SESSION_OPTION_NAMES, SessionManager } from "../core.ts";
import type { CookieOptions, SameSite, SessionOptions } from "../core.ts";
import { Session } from "../session.ts";
import type { Store } from "../store.ts";
import { connectSession } from "./_connect.ts";
import type { ConnectHook, ConnectMiddleware } from "./_connect.ts";
import { hookExpressResponse, isPrototypeOf } from "./_node_response.ts";
import type { NodeResponse } from "./_node_response.ts";

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
export type { ConnectMiddleware, ConnectRequest } from "./_connect.ts";
export type { ConnectNext } from "./_node_response.ts";

/**
 * express-session's per-session `req.session.cookie`, mapped onto this
 * library's per-session lifetime (`session.setLifetime`).
 */
export interface ExpressSessionCookie {
  /**
   * Milliseconds the session lives from now without a request, or `null` for
   * a browser-session cookie. Assigning sets this session's own lifetime
   * ("remember me"), honoured even past the configured timeouts.
   */
  maxAge: number | null;
  /** Alias of `maxAge`, as express-session has it. */
  originalMaxAge: number | null;
  /** When the session ends if unused, or `null` for a browser-session cookie; assignable like `maxAge`. */
  expires: Date | null;
  /** The configured cookie `Path` (read-only, like the attributes below: they are the same for every session). */
  readonly path: string;
  /** Whether the cookie is `HttpOnly`. */
  readonly httpOnly: boolean;
  /** Whether the cookie is `Secure`: always, never, or `"auto"` (on https requests). */
  readonly secure: boolean | "auto";
  /** The cookie's `SameSite` attribute. */
  readonly sameSite: SameSite;
  /** The cookie's `Domain`, or `undefined` for a host-only cookie. */
  readonly domain: string | undefined;
}

/**
 * `req.session` in Express: a {@linkcode Session} whose keys also read and
 * write as properties, plus express-session's `cookie`. `req.session.userId`
 * is the app's own key when it set one (express-session's habit), else the
 * user `logIn()` bound; assigning or deleting it changes the key.
 */
// deno-lint-ignore no-explicit-any
export type ExpressSession = Session & { cookie: ExpressSessionCookie; userId: any } & Record<string, any>;

/** express-session's `cookie` option, beside this library's cookie attributes. */
export interface ExpressCookieOptions extends Omit<CookieOptions, "sameSite"> {
  /**
   * Milliseconds a session lives without a request, and the cookie's
   * `Max-Age`. `null` (express-session's default) sends browser-session
   * cookies. Maps to `idleTimeout`; the absolute timeout is raised to it if
   * it is shorter.
   */
  maxAge?: number | null;
  /** `SameSite`: express-session's `true` is `"Strict"`, `false` is `"Lax"` (what browsers apply to cookies without it). */
  sameSite?: CookieOptions["sameSite"] | boolean;
}

/**
 * Options of the Express middleware: every `SessionOptions` name, and the
 * express-session names that have an equivalent here.
 */
export interface ExpressSessionOptions extends Omit<SessionOptions, "cookie"> {
  /** The cookie name (express-session's option). Default `"connect.sid"`, express-session's. */
  name?: string;
  /** Cookie attributes; see {@linkcode ExpressCookieOptions}. */
  cookie?: ExpressCookieOptions;
  /** Send the cookie, and slide the session's deadline, on every response. Default `false`. */
  rolling?: boolean;
  /** express-session's `proxy`: the same as `trustProxy`. */
  proxy?: boolean;
  /** Accepted as `false` only: an unchanged session is never rewritten here (it slides by itself). */
  resave?: false;
  /** Accepted as `false` only: an empty new session is never stored here. */
  saveUninitialized?: false;
}

/** express-session names with no equivalent, and what to say about them. */
const REFUSED: Readonly<Record<string, (value: unknown) => string | undefined>> = {
  resave: (value) =>
    value === false ? undefined : "only false: this library writes a session only when it changed, " +
      "and slides its deadline by itself (idleTimeout); session.touch() slides one now",
  saveUninitialized: (value) =>
    value === false ? undefined : "only false: a new session is stored when it first holds a value " +
      "(store a value, e.g. req.session.consent = true, to keep one)",
  unset: () => "req.session cannot be unset or replaced here: call req.session.destroy() to end a session",
  genid: () =>
    "session ids are always 24 random bytes from the platform's CSPRNG (OWASP: at least 64 bits of " +
    "entropy), which a custom generator could weaken; leave genid out",
};

const EXPRESS_OPTION_NAMES = [
  ...SESSION_OPTION_NAMES,
  "name",
  "rolling",
  "proxy",
  "resave",
  "saveUninitialized",
  "unset",
  "genid",
];

const DAY_MS = 86_400_000;

/** What express-session's legacy names say. */
const EXPRESS_OPTION_HINTS: Readonly<Record<string, string>> = {
  key: 'express-session\'s old name for "name" (the cookie name): use "name"',
};

/** The cookie options express-session users may give: this library's, and express-session's `maxAge`. */
const EXPRESS_COOKIE_OPTION_NAMES = [...COOKIE_OPTION_NAMES, "maxAge"];
const EXPRESS_COOKIE_HINTS: Readonly<Record<string, string>> = {
  expires: 'use "cookie.maxAge" (milliseconds), as express-session advises too',
};

/**
 * Turns express-session options into `SessionOptions`, refusing what cannot
 * be honoured with an error that says what to use instead.
 */
function toSessionOptions(options: ExpressSessionOptions): { options: SessionOptions; rolling: boolean } {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("Invalid session options: expected an object");
  }
  rejectUnknownOptions(options, EXPRESS_OPTION_NAMES, "", EXPRESS_OPTION_HINTS);
  const input = options as ExpressSessionOptions & Record<string, unknown>;
  for (const [name, check] of Object.entries(REFUSED)) {
    if (!(name in input)) continue;
    const detail = check(input[name]);
    if (detail !== undefined) throw new TypeError(`Unsupported session option "${name}": ${detail}`);
  }
  const {
    name,
    cookie,
    rolling = false,
    proxy,
    resave: _resave,
    saveUninitialized: _saveUninitialized,
    ...rest
  } = options;
  if (typeof rolling !== "boolean") {
    throw new TypeError('Invalid session option "rolling": must be a boolean');
  }
  if (isConnectStore(rest.store)) {
    throw new TypeError(
      'Unsupported session option "store": this is an express-session (connect-style) store; use a store of ' +
        "this library with the same backend (RedisStore, SqliteStore, ... see docs/stores.md)",
    );
  }
  const mapped: SessionOptions = { ...rest };
  if (proxy !== undefined) {
    if (rest.trustProxy !== undefined) {
      throw new TypeError('Invalid session options: give "trustProxy" or "proxy", not both');
    }
    mapped.trustProxy = proxy;
  }
  if (typeof cookie === "object" && cookie !== null) {
    rejectUnknownOptions(cookie, EXPRESS_COOKIE_OPTION_NAMES, "cookie.", EXPRESS_COOKIE_HINTS);
  }
  const { maxAge, sameSite, ...attributes } = cookie ?? {};
  const cookieOptions: CookieOptions = { ...attributes, name: name ?? attributes.name ?? "connect.sid" };
  if (name !== undefined && attributes.name !== undefined) {
    throw new TypeError('Invalid session options: give "name" or "cookie.name", not both');
  }
  if (sameSite !== undefined) {
    cookieOptions.sameSite = sameSite === true ? "Strict" : sameSite === false ? "Lax" : sameSite;
  }
  if (maxAge === undefined || maxAge === null) {
    // express-session's default: a browser-session cookie.
    cookieOptions.persistent ??= false;
  } else {
    if (typeof maxAge !== "number" || !Number.isFinite(maxAge) || maxAge <= 0) {
      throw new TypeError(
        'Invalid session option "cookie.maxAge": must be a positive number of milliseconds, or null',
      );
    }
    if (rest.idleTimeout !== undefined) {
      throw new TypeError('Invalid session options: give "idleTimeout" or "cookie.maxAge", not both');
    }
    mapped.idleTimeout = maxAge / 1000;
    // express-session has no absolute timeout: a maxAge longer than the default one is not cut short.
    if (rest.absoluteTimeout === undefined) mapped.absoluteTimeout = Math.max(7 * DAY_MS, maxAge) / 1000;
  }
  mapped.cookie = cookieOptions;
  return { options: mapped, rolling };
}

/** An express-session store (connect's Store): it has `load` and `createSession`, which stores here never have. */
function isConnectStore(store: Store | undefined): boolean {
  const value = store as { load?: unknown; createSession?: unknown } | undefined;
  return typeof value?.load === "function" && typeof value?.createSession === "function";
}

/** The per-session `cookie` object of express-session, over `setLifetime`. */
function cookieMember(now: () => number, cookie: CookieOptions, idleMs: number | null): ExtraMember {
  const lifetimeMs = (session: Session): number | null => {
    const own = session.lifetime;
    if (own === null) return null;
    if (own !== undefined) return durationMs(own);
    return cookie.persistent === false ? null : idleMs;
  };
  const setMaxAge = (session: Session, value: unknown, option: string) => {
    if (value === null || value === false) {
      session.setLifetime(null);
      return;
    }
    const ms = value instanceof Date ? value.getTime() - now() : value;
    if (typeof ms !== "number" || !Number.isFinite(ms) || ms <= 0) {
      throw new TypeError(
        `Invalid req.session.cookie.${option}: expected a ${
          option === "expires" ? "future Date" : "positive number of milliseconds"
        }, or null`,
      );
    }
    session.setLifetime(ms / 1000);
  };
  return {
    get(session) {
      const view = {
        path: cookie.path ?? "/",
        httpOnly: cookie.httpOnly ?? true,
        secure: cookie.secure ?? "auto",
        sameSite: cookie.sameSite ?? "Lax",
        domain: cookie.domain,
      };
      Object.defineProperties(view, {
        maxAge: {
          enumerable: true,
          get: () => lifetimeMs(session),
          set: (v) => setMaxAge(session, v, "maxAge"),
        },
        originalMaxAge: {
          enumerable: true,
          get: () => lifetimeMs(session),
          set: (v) => setMaxAge(session, v, "maxAge"),
        },
        expires: {
          enumerable: true,
          get: () => {
            const ms = lifetimeMs(session);
            return ms === null ? null : new Date(after(now(), ms));
          },
          set: (v) => setMaxAge(session, v, "expires"),
        },
      });
      return Object.freeze(view);
    },
  };
}

/**
 * Session middleware for Express 4 and 5, Connect and plain `node:http`:
 * `req.session` in every later handler, and a drop-in for express-session.
 * An app written for express-session runs with this import in place of
 * express-session's once its secret has at least 32 bytes and it drops the
 * options refused below (`resave: true`, `saveUninitialized: true`, `unset`,
 * `genid`, express-session stores), within the limits docs/migrating.md
 * lists:
 *
 * - `req.session.views = n`, `req.session.user`, `delete req.session.cart`
 *   and `Object.keys(req.session)` are `set`, `get`, `delete` and `keys`:
 *   checked as JSON, saved, and merged per key with overlapping requests.
 *   The session's own methods (`get`, `set`, `regenerate`...) stay methods;
 *   assigning to one of their names throws a `TypeError` naming the method to
 *   use instead.
 * - `regenerate(cb)`, `destroy(cb)`, `save(cb)`, `reload(cb)`, `touch()`,
 *   `req.sessionID`, and `req.session.cookie.maxAge` / `expires` for one
 *   session's lifetime ("remember me"; `null` for a browser-session cookie).
 * - express-session options with an equivalent are mapped (`name`, `secret`,
 *   `cookie.*`, `rolling`, `proxy`); `resave: false` and
 *   `saveUninitialized: false` are accepted as they describe what happens
 *   here anyway; `resave: true`, `saveUninitialized: true`, `unset`, `genid`
 *   and express-session stores throw a `TypeError` at once that says what to
 *   use instead. Unknown names throw too, with the nearest known one.
 *
 * Defaults follow express-session where it matters to an app: the cookie is
 * `connect.sid` (apps clear it by that name at logout) and, without
 * `cookie.maxAge`, a browser-session cookie. Every other default is this
 * library's: HttpOnly, SameSite=Lax, Secure on https, a 24-hour idle and
 * 7-day absolute timeout.
 *
 * The store write and the cookie complete before the response is sent,
 * whichever way it is sent (`res.send`, `json`, `redirect`, `sendFile`,
 * `end`, streaming with `write`, `writeHead` with headers of any form): the
 * first call that starts the response commits. With a store that answers
 * later, that call is held until the commit is done, and meanwhile the
 * response behaves as Node's does once sent (`headersSent` is true, header
 * changes throw `ERR_HTTP_HEADERS_SENT`), so a redirect cannot outrun the
 * save and no second response can be written into the first.
 *
 * Store failures go to Express's error handlers through `next(err)` as a
 * `SessionStoreError` (`status` 503), with the response's headers as they
 * were before the handler, so no `Set-Cookie` goes out. A response that
 * starts with a 5xx status is a failed request and saves nothing. A 4xx is
 * not a failure.
 *
 * The cookie is `Secure` when the connection itself is TLS
 * (`req.socket.encrypted`), not by `req.secure`: Express's `trust proxy`
 * setting does not change it. Behind a proxy that terminates TLS, set the
 * `trustProxy` (or `proxy`) option.
 *
 * @param options Session options: see {@linkcode ExpressSessionOptions}.
 * @returns The middleware, `(req, res, next)`: Express's `app.use` takes it
 *   as it is, and no type of Express's is needed to name it.
 * @throws {TypeError} for an unknown, invalid or unsupported option, naming it.
 *
 * @example
 * ```ts
 * import express from "express";
 * import session from "./express.ts";
 *
 * const app = express();
 * app.use(session({ secret: "a-secret-of-at-least-32-bytes-long!", resave: false, saveUninitialized: false }));
 * app.get("/", (req, res) => {
 *   req.session.views = (req.session.views ?? 0) + 1;
 *   res.send(`visit ${req.session.views}`);
 * });
 * app.post("/login", (req, res, next) => {
 *   req.session.regenerate((error) => {
 *     if (error) return next(error);
 *     req.session.user = "ada";
 *     req.session.cookie.maxAge = 14 * 24 * 3600 * 1000; // remember me
 *     res.redirect("/");
 *   });
 * });
 * // app.listen(8000);
 * ```
 */
export function session(options: ExpressSessionOptions = {}): ConnectMiddleware {
  const { options: mapped, rolling } = toSessionOptions(options);
  const manager = new SessionManager(mapped);
  const idle = mapped.idleTimeout === undefined
    ? 86_400_000
    : mapped.idleTimeout === null
    ? null
    : durationMs(mapped.idleTimeout);
  const handler = sessionPropertyHandler(Session, {
    cookie: cookieMember(mapped.now ?? Date.now, mapped.cookie ?? {}, idle),
  }, PROXY_DATA_KEYS);
  return connectSession(manager, expressHook(handler, rolling));
}

export default session;

/** The request as the Express hook reads it. */
interface ExpressRequest {
  socket?: { encrypted?: boolean };
  app?: { request?: object; response?: object; parent?: unknown };
  session?: unknown;
  sessionID?: string;
}

/** `req.session`, which refuses `req.session = null` and `delete req.session` (see `sessionProperty`). */
const exposeSession = sessionProperty("req.session");

/**
 * The Express (and Connect, and `node:http`) hook: the commit runs at the
 * first call that starts the Node response (see `_node_response.ts`).
 */
function expressHook(handler: ProxyHandler<Session>, rolling: boolean): ConnectHook {
  return {
    // The socket, not `req.secure`: Express's `trust proxy` setting does not decide it.
    https: (req) => (req as ExpressRequest).socket?.encrypted === true,
    expose(req, current) {
      if (rolling && !current.isNew) current.touch();
      const request = req as ExpressRequest;
      exposeSession(request, new Proxy(current, handler));
      defineSessionId(request);
    },
    attach(req, res, manager, current, next) {
      hookExpressResponse(
        req as ExpressRequest,
        res as NodeResponse,
        (status) => commitNow(manager, current, { status }),
        next,
      );
    },
  };
}

/** Requests objects (Express's `app.request`, or one request) that have the `sessionID` getter. */
const withSessionId = new WeakSet<object>();

/**
 * `req.sessionID`, as express-session has it: a getter, so it follows
 * `regenerate()`. Defined once on the root app's `app.request` (the object
 * Express documents for extending requests, which every request of the app
 * inherits from), or on the request itself outside Express.
 */
function defineSessionId(req: ExpressRequest): void {
  let app = req.app;
  while (app !== undefined && typeof app.parent === "function") app = app.parent as ExpressRequest["app"];
  const target = app?.request !== undefined && isPrototypeOf(app.request, req) ? app.request : req;
  if (withSessionId.has(target)) return;
  withSessionId.add(target);
  Object.defineProperty(target, "sessionID", {
    configurable: true,
    enumerable: false,
    get(this: ExpressRequest) {
      return (this.session as Session | undefined)?.id;
    },
  });
}
