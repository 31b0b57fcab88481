// The session middleware for connect-style frameworks, `(req, res, next)`: Express 4 and 5, and Opine 2,
// whose API is a port of Express 4's. Neither offers a hook that runs after the handler and before the
// response leaves, so the commit is hooked at the point every response passes through: for Express,
// Node's `res.writeHead`/`write`/`end`/`flushHeaders`, held until the commit settles; for Opine, the
// async `res.end` and `req.respond`, awaited. Each request picks its hook by the request's shape (only
// Opine requests have `respond`), so `session()` and `OpineSession` serve both frameworks.
//
// Like every adapter, it reports facts and decides nothing: the raw connection's TLS-ness, the raw
// `X-Forwarded-Proto` (only when the manager trusts a proxy), and the status the response starts with.
// Whether the request failed is the core's rule (`SessionManager.commit`).

import { commitNow, isPromiseLike } from "../_lifecycle.ts";
import type { SessionManager } from "../core.ts";
import type { Session, SessionData } from "../session.ts";

/** The parts of an Express or Opine request every request has. */
export interface ConnectRequest {
  /** A request header (Express and Opine both have `req.get`). */
  get(field: string): string | undefined;
}

/** A connect-style `next`: called with an error, it hands the request to the error handlers. */
export type ConnectNext = (error?: unknown) => void;

/** The connect-style middleware shape shared by Express and Opine. */
export type ConnectMiddleware = (req: ConnectRequest, res: object, next: ConnectNext) => void;

/** Node's `ServerResponse` as Express extends it. */
interface NodeResponse {
  statusCode: number;
  writableNeedDrain?: boolean;
  append(field: string, value: string): unknown;
  getHeaders(): Record<string, number | string | string[] | undefined>;
  getHeaderNames(): string[];
  removeHeader(name: string): void;
  setHeader(name: string, value: number | string | readonly string[]): unknown;
  emit(event: "drain"): boolean;
}

/** Opine's request and response, as far as the hook touches them. */
interface OpineRequest {
  /** Opine's `WrappedRequest` sets it from the full request URL: the scheme of the connection itself. */
  proto?: string;
  respond(response: unknown): Promise<void> | void;
}
interface OpineResponse {
  status: number;
  headers: Headers;
  append(field: string, value: string): unknown;
  end(body?: unknown): Promise<void>;
}

/** Why a commit did not happen: a store or conflict error, to be passed to `next`. */
type Outcome = { error: unknown } | undefined;

/** Whether a request is Opine's: only Opine requests have `respond`. */
function isOpine(req: ConnectRequest): req is ConnectRequest & OpineRequest {
  return typeof (req as Partial<OpineRequest>).respond === "function";
}

/**
 * Whether the connection to this server is TLS: the raw fact, never the
 * framework's proxy-aware answer (`req.secure` and `req.protocol` apply the
 * framework's "trust proxy" setting; the `trustProxy` session option is the
 * only proxy setting the middleware follows). Express: the socket; Opine: the
 * scheme of the full request URL, which Opine keeps as `req.proto`.
 */
function connectionIsHttps(req: ConnectRequest): boolean {
  if (isOpine(req)) return req.proto === "https:";
  return (req as { socket?: { encrypted?: boolean } }).socket?.encrypted === true;
}

/**
 * Builds the middleware. It loads the session into `req.session`, hooks the
 * response, and calls `next()`; when the response starts, the commit runs
 * first, and a commit that fails goes to `next(error)` instead of the response.
 */
export function connectSession<T extends SessionData>(manager: SessionManager<T>): ConnectMiddleware {
  return function sessionMiddleware(req, res, next) {
    manager.load({
      cookie: cookieHeader(req),
      // Asked only if a cookie is written.
      https: () => connectionIsHttps(req),
      forwardedProto: manager.trustProxy ? req.get("x-forwarded-proto") : undefined,
    }).then((current) => {
      // Anything `start` throws goes to the error handlers, never an unhandled rejection.
      try {
        start(manager, current, req, res, next);
      } catch (error) {
        next(error);
      }
    }, next);
  };
}

/**
 * The `Cookie` header. On Node, from the raw header list: `req.get` would
 * make Node build the object of every header, which nothing else on a
 * request may need.
 */
function cookieHeader(req: ConnectRequest): string | undefined {
  const raw = (req as { rawHeaders?: unknown }).rawHeaders;
  if (!Array.isArray(raw)) return req.get("cookie");
  let value: string | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i];
    // Several Cookie headers are joined with "; ", as Node does.
    if (name.length === 6 && name.toLowerCase() === "cookie") {
      value = value === undefined ? raw[i + 1] : `${value}; ${raw[i + 1]}`;
    }
  }
  return value;
}

/** Gives the request its session, hooks the response, and hands on. */
function start<T extends SessionData>(
  manager: SessionManager<T>,
  current: Session<T>,
  req: ConnectRequest,
  res: object,
  next: ConnectNext,
): void {
  (req as { session?: Session<T> }).session = current;
  if (isOpine(req)) {
    // The status is the only fact these frameworks give middleware about a failure: `next(err)` goes
    // straight to the error handlers, which answer with a 5xx status. The core decides from it.
    const commit = async (status: number, append: (value: string) => void): Promise<Outcome> => {
      try {
        const setCookie = await manager.commit(current, { status });
        if (setCookie) append(setCookie);
        return undefined;
      } catch (error) {
        return { error };
      }
    };
    hookOpine(req, res as OpineResponse, commit, next);
  } else {
    hookNode(res as HookedResponse, manager as SessionManager, current as Session, next);
  }
  next();
}

type Commit = (status: number, append: (value: string) => void) => Promise<Outcome>;

const NODE_SENDERS = ["writeHead", "write", "end", "flushHeaders"] as const;
type NodeSender = typeof NODE_SENDERS[number];
type Method = (this: unknown, ...args: unknown[]) => unknown;
type Senders = Record<NodeSender, Method>;

/** One response's commit. */
interface NodeHook {
  state: "open" | "committing" | "done";
  manager: SessionManager;
  session: Session;
  next: ConnectNext;
  /** The methods below the hook, called once the commit is done. */
  originals: Senders;
  /** Calls held while the commit runs. */
  held: [NodeSender, unknown[]][] | undefined;
  headersBefore: Record<string, number | string | string[] | undefined>;
  statusBefore: number;
}

type HookedResponse = NodeResponse & Senders & { req?: object };

// Express gives every response its app's prototype (`app.response`, the object Express documents for
// extending responses). Adding own properties to a response costs several microseconds each there (V8
// builds a new hidden class for every add on those objects, and collects it again), so after the first
// request the senders are wrapped once on that prototype, and each request is found by its `req`. A
// mounted sub-app's `response` inherits its parent's (Express links them on "mount"), so a response a
// sub-app sends still passes through these wrappers.
/** Prototypes whose senders are wrapped, with the methods they had before. */
const wrappedPrototypes = new WeakMap<object, Senders>();
/** The hook of each request whose response passes through the prototype's wrappers. */
const hooksByRequest = new WeakMap<object, NodeHook>();

/**
 * Hooks one response: through its prototype's shared wrappers when they are
 * in place, otherwise through wrappers of its own (and wraps the prototype
 * for the requests to come).
 */
function hookNode(res: HookedResponse, manager: SessionManager, session: Session, next: ConnectNext): void {
  const hook: NodeHook = {
    state: "open",
    manager,
    session,
    next,
    originals: undefined as unknown as Senders,
    held: undefined,
    headersBefore: res.getHeaders(),
    statusBefore: res.statusCode,
  };
  const proto: object | null = Object.getPrototypeOf(res);
  const req = res.req;
  const shared = proto === null ? undefined : wrappedPrototypes.get(proto);
  if (shared !== undefined && req !== undefined && !hooksByRequest.has(req)) {
    hook.originals = shared;
    hooksByRequest.set(req, hook);
    return;
  }
  // Middleware that ran before this one may already hold the senders it found on the response: this
  // request is hooked on the response itself, whatever happens to the prototype.
  hook.originals = {
    writeHead: res.writeHead,
    write: res.write,
    end: res.end,
    flushHeaders: res.flushHeaders,
  };
  res.writeHead = function (...args) {
    return hookedCall(this as HookedResponse, hook, "writeHead", args);
  };
  res.write = function (...args) {
    return hookedCall(this as HookedResponse, hook, "write", args);
  };
  res.end = function (...args) {
    return hookedCall(this as HookedResponse, hook, "end", args);
  };
  res.flushHeaders = function (...args) {
    return hookedCall(this as HookedResponse, hook, "flushHeaders", args);
  };
  if (proto !== null && shared === undefined && isAppPrototype(proto)) wrapPrototype(proto);
}

/**
 * An Express app's response prototype: it inherits the senders rather than
 * defining them (Node's own `ServerResponse.prototype` defines `writeHead`
 * and is never wrapped).
 */
function isAppPrototype(proto: object): boolean {
  return !Object.hasOwn(proto, "writeHead") &&
    NODE_SENDERS.every((name) => typeof (proto as Senders)[name] === "function");
}

function wrapPrototype(proto: object): void {
  const target = proto as Senders;
  const originals = {} as Senders;
  for (const name of NODE_SENDERS) {
    const original = target[name];
    originals[name] = original;
    Object.defineProperty(target, name, {
      configurable: true,
      writable: true,
      value: function (this: unknown, ...args: unknown[]) {
        const req = (this as HookedResponse).req;
        const hook = req === undefined ? undefined : hooksByRequest.get(req);
        // Requests the session middleware never saw (routes mounted before it) pass straight through.
        if (hook === undefined || hook.state === "done") return original.apply(this, args);
        return hookedCall(this as HookedResponse, hook, name, args);
      },
    });
  }
  wrappedPrototypes.set(proto, originals);
}

/**
 * A call of a sender on a hooked response. The first call that would send
 * headers commits: in place when the store answered at once (the call then
 * goes through as if there were no hook), otherwise holding that call, and
 * every call after it, until the commit settles; then the held calls are
 * replayed in order (or dropped, if the commit failed).
 */
function hookedCall(res: HookedResponse, hook: NodeHook, name: NodeSender, args: unknown[]): unknown {
  if (hook.state === "done") return hook.originals[name].apply(res, args);
  if (hook.state === "committing") {
    hook.held!.push([name, args]);
    return heldAnswer(name, res);
  }
  // The status the response starts with: the only fact Express gives middleware about a failed handler
  // (its error handlers answer with a 5xx status). The core decides from it.
  const status = name === "writeHead" ? Number(args[0]) : res.statusCode;
  let saving: string | undefined | Promise<string | undefined>;
  try {
    saving = commitNow(hook.manager, hook.session, { status });
  } catch (error) {
    fail(res, hook, error);
    return heldAnswer(name, res);
  }
  if (!isPromiseLike(saving)) {
    hook.state = "done";
    if (saving) res.append("Set-Cookie", saving);
    return hook.originals[name].apply(res, args);
  }
  hook.state = "committing";
  hook.held = [[name, args]];
  saving.then(
    (setCookie) => replay(res, hook, setCookie),
    (error) => fail(res, hook, error),
  ).catch(hook.next);
  return heldAnswer(name, res);
}

/** What a held call answers: `write` says "wait for drain", the others what Node's methods return. */
function heldAnswer(name: NodeSender, res: NodeResponse): unknown {
  return name === "write" ? false : name === "flushHeaders" ? undefined : res;
}

/** Sends the held calls, after adding the cookie. */
function replay(res: HookedResponse, hook: NodeHook, setCookie: string | undefined): void {
  hook.state = "done";
  if (setCookie) res.append("Set-Cookie", setCookie);
  const calls = hook.held ?? [];
  hook.held = undefined;
  // A replayed call that throws (a second writeHead, say) would have thrown to the handler; it can only go
  // to the error handlers now, as errors of handlers do.
  for (const [name, args] of calls) hook.originals[name].apply(res, args);
  // Held writes answered `false`, so a piped stream waits for "drain"; give it one unless the replayed
  // writes filled the buffer, in which case the socket will.
  if (calls.some(([name]) => name === "write") && !res.writableNeedDrain) res.emit("drain");
}

/** Drops the held calls and hands the error to the error handlers, with the headers and status of before. */
function fail(res: HookedResponse, hook: NodeHook, error: unknown): void {
  hook.state = "done";
  hook.held = undefined;
  for (const name of res.getHeaderNames()) res.removeHeader(name);
  for (const [name, value] of Object.entries(hook.headersBefore)) {
    if (value !== undefined) res.setHeader(name, value);
  }
  res.statusCode = hook.statusBefore;
  hook.next(error);
}

/**
 * Awaits the commit in Opine's async `res.end` (which `send`, `json`,
 * `redirect`, `sendStatus` and `sendFile` end in) and in `req.respond` (which
 * `res.end` calls, and Opine's own 404 and error pages call directly). The
 * first to run commits; both are put back then.
 */
function hookOpine(req: OpineRequest, res: OpineResponse, commit: Commit, next: ConnectNext): void {
  const end = res.end;
  const respond = req.respond;
  const endWasOwn = Object.hasOwn(res, "end");
  const respondWasOwn = Object.hasOwn(req, "respond");
  const headersBefore = new Headers(res.headers);
  const statusBefore = res.status;
  let settled: Promise<Outcome> | undefined;

  const settle = () => {
    settled ??= commit(res.status, (value) => res.append("Set-Cookie", value)).then((outcome) => {
      if (endWasOwn) res.end = end;
      else delete (res as Partial<OpineResponse>).end;
      if (respondWasOwn) req.respond = respond;
      else delete (req as Partial<OpineRequest>).respond;
      if (outcome) {
        for (const name of [...res.headers.keys()]) res.headers.delete(name);
        for (const [name, value] of headersBefore) res.headers.append(name, value);
        res.status = statusBefore;
        next(outcome.error);
      }
      return outcome;
    });
    return settled;
  };

  res.end = async function (this: unknown, body?: unknown) {
    if (await settle()) return;
    return await end.call(this, body);
  };
  req.respond = async function (this: unknown, response: unknown) {
    if (await settle()) return;
    return await respond.call(this, response);
  };
}
