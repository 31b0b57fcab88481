// The session middleware for connect-style frameworks, `(req, res, next)`: Express 4 and 5, and Opine 2,
// whose API is a port of Express 4's. Neither offers a hook that runs after the handler and before the
// response leaves, so the commit is hooked at the point every response passes through: for Express,
// Node's `res.writeHead`/`write`/`end`/`flushHeaders`, held until the commit settles; for Opine, the
// async `res.end` and `req.respond`, awaited. Each request picks its hook by the request's shape (only
// Opine requests have `respond`), so `session()` and `OpineSession` serve both frameworks.

import type { SessionManager } from "../core.ts";
import type { Session, SessionData } from "../session.ts";

/** The parts of an Express or Opine request the middleware reads. */
export interface ConnectRequest {
  /** A request header (Express and Opine both have `req.get`). */
  get(field: string): string | undefined;
  /** Whether the request came over https, by the framework's own "trust proxy" rules. */
  readonly secure: boolean;
}

/** A connect-style `next`: called with an error, it hands the request to the error handlers. */
export type ConnectNext = (error?: unknown) => void;

/** The connect-style middleware shape shared by Express and Opine. */
export type ConnectMiddleware = (req: ConnectRequest, res: object, next: ConnectNext) => Promise<void>;

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

/**
 * Builds the middleware. It loads the session into `req.session`, hooks the
 * response, and calls `next()`; when the response starts, the commit runs
 * first, and a commit that fails goes to `next(error)` instead of the response.
 */
export function connectSession<T extends SessionData>(manager: SessionManager<T>): ConnectMiddleware {
  return async function sessionMiddleware(req, res, next) {
    let current: Session<T>;
    try {
      current = await manager.load({
        cookie: req.get("cookie"),
        https: req.secure,
        forwardedProto: req.get("x-forwarded-proto"),
      });
    } catch (error) {
      next(error);
      return;
    }
    (req as { session?: Session<T> }).session = current;
    const commit = async (status: number, append: (value: string) => void): Promise<Outcome> => {
      // Express and Opine give middleware no sign that a handler failed: `next(err)` goes straight to the
      // error handlers. A 5xx response is how those answer a failure, so it saves nothing, as in the
      // other adapters, where a throwing handler saves nothing.
      if (status >= 500) return undefined;
      try {
        const setCookie = await manager.commit(current);
        if (setCookie) append(setCookie);
        return undefined;
      } catch (error) {
        return { error };
      }
    };
    if (typeof (req as Partial<OpineRequest>).respond === "function") {
      hookOpine(req as ConnectRequest & OpineRequest, res as OpineResponse, commit, next);
    } else {
      hookNode(res as NodeResponse, commit, next);
    }
    next();
  };
}

type Commit = (status: number, append: (value: string) => void) => Promise<Outcome>;

const NODE_SENDERS = ["writeHead", "write", "end", "flushHeaders"] as const;
type NodeSender = typeof NODE_SENDERS[number];
type Method = (this: unknown, ...args: unknown[]) => unknown;

/**
 * Holds the first call that would send headers (and every call after it)
 * until the commit settles, then puts the original methods back and replays
 * the calls, or drops them and calls `next(error)`.
 */
function hookNode(res: NodeResponse, commit: Commit, next: ConnectNext): void {
  const methods = res as unknown as Record<NodeSender, Method>;
  const headersBefore = res.getHeaders();
  const statusBefore = res.statusCode;
  const originals = new Map<NodeSender, { method: Method; own: boolean }>();
  const wrappers = new Map<NodeSender, Method>();
  const held: [NodeSender, unknown[]][] = [];
  let state: "open" | "committing" | "done" = "open";

  const settle = async (status: number) => {
    const outcome = await commit(status, (value) => res.append("Set-Cookie", value));
    state = "done";
    for (const [name, original] of originals) {
      // Middleware mounted later may have wrapped our wrapper; it stays, and passes calls through.
      if (methods[name] !== wrappers.get(name)) continue;
      if (original.own) methods[name] = original.method;
      else delete methods[name];
    }
    const calls = held.splice(0);
    if (outcome) {
      // The response never left: give the error handlers the headers and status it had before.
      for (const name of res.getHeaderNames()) res.removeHeader(name);
      for (const [name, value] of Object.entries(headersBefore)) {
        if (value !== undefined) res.setHeader(name, value);
      }
      res.statusCode = statusBefore;
      next(outcome.error);
      return;
    }
    // A replayed call that throws (a second writeHead, say) would have thrown to the handler; it can
    // only go to the error handlers now, as errors of handlers do.
    for (const [name, args] of calls) originals.get(name)!.method.apply(res, args);
    // Held writes answered `false`, so a piped stream waits for "drain"; give it one unless the
    // replayed writes filled the buffer, in which case the socket will.
    if (calls.some(([name]) => name === "write") && !res.writableNeedDrain) res.emit("drain");
  };

  for (const name of NODE_SENDERS) {
    const method = methods[name];
    if (typeof method !== "function") continue;
    originals.set(name, { method, own: Object.hasOwn(res, name) });
    const wrapper: Method = function (this: unknown, ...args: unknown[]) {
      if (state === "done") return method.apply(this, args);
      held.push([name, args]);
      if (state === "open") {
        state = "committing";
        settle(name === "writeHead" ? Number(args[0]) : res.statusCode).catch(next);
      }
      return name === "write" ? false : name === "flushHeaders" ? undefined : res;
    };
    wrappers.set(name, wrapper);
    methods[name] = wrapper;
  }
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
