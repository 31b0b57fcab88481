// The commit hook on a Node `http.ServerResponse` (Node, and Deno's node:http): Express 4 and 5, Connect,
// and a bare `http.createServer` handler. None of them has a hook that runs after the handler and before the
// response leaves, so the commit runs at the first call that would start the response: `writeHead`,
// `write`, `end` or `flushHeaders`.
//
// When the store answers at once (MemoryStore, SqliteStore) the commit is done inside that call, which then
// goes through: the application sees exactly what Node shows it. When the store answers with a promise, the
// call is held until the commit settles, and the held response behaves as Node's would after that call:
// `headersSent` (and after `end`, `writableEnded`) reads true, `setHeader`, `appendHeader`, `removeHeader`
// and a second `writeHead` throw Node's ERR_HTTP_HEADERS_SENT, a `write` or `end(chunk)` after `end` fails
// as Node fails it, and the status cannot change what was sent. So no second response can be written into
// a held one, and nothing held is ever replayed in a way Node would reject. When the commit fails, the held
// calls are dropped and the error goes to `next(error)` with the headers and status of before the handler.
//
// Our cookie must survive every way Node lets a handler set headers. Everything but `writeHead(status,
// headers)` changes the response before the commit and so before our cookie is appended; `writeHead`'s
// headers are merged in at the commit, and a `Set-Cookie` among them would replace ours. So `writeHead`'s
// headers are applied to the response first, by Node's own rules for them (an object sets each header; an
// array, of raw `[name, value, ...]` or of pairs, replaces each named header by all its values), and only
// then is the cookie appended and `writeHead(status[, message])` called.

import process from "node:process";
import { isPromiseLike } from "../_lifecycle.ts";
import type { MaybePromise } from "../store.ts";

/** A connect-style `next`: called with an error, it hands the request to the error handlers. */
export type ConnectNext = (error?: unknown) => void;

type HeaderValue = number | string | readonly string[];

/** Node's `ServerResponse`, as far as the hook uses it. */
export interface NodeResponse {
  statusCode: number;
  statusMessage: string;
  readonly headersSent: boolean;
  readonly writableEnded: boolean;
  finished: boolean;
  writableNeedDrain?: boolean;
  /** Node sets it to the request; the shared prototype wrappers find the hook through it. */
  req?: object;
  getHeader(name: string): HeaderValue | undefined;
  getHeaders(): Record<string, HeaderValue | undefined>;
  getHeaderNames(): string[];
  setHeader(name: string, value: HeaderValue): unknown;
  appendHeader?(name: string, value: HeaderValue): unknown;
  removeHeader(name: string): void;
  emit(event: string, ...args: unknown[]): boolean;
  writeHead(...args: unknown[]): unknown;
  write(...args: unknown[]): unknown;
  end(...args: unknown[]): unknown;
  flushHeaders(): void;
}

/** Runs the commit for a response that starts with `status`: the `Set-Cookie` value, if any. */
export type NodeCommit = (status: number) => MaybePromise<string | undefined>;

const SENDERS = ["writeHead", "write", "end", "flushHeaders"] as const;
type Sender = typeof SENDERS[number];
type Method = (this: unknown, ...args: unknown[]) => unknown;
type Senders = Record<Sender, Method>;

const OPEN = 0;
const HELD = 1;
const DONE = 2;
const FAILED = 3;

/** One response's commit. */
interface Hook {
  state: typeof OPEN | typeof HELD | typeof DONE | typeof FAILED;
  commit: NodeCommit;
  next: ConnectNext;
  /** The methods below the hook. */
  originals: Senders;
  /** Calls held while the commit runs, in order. */
  held: [Sender, unknown[]][];
  /** A held `end`: the response is finished as far as the application can tell. */
  ended: boolean;
  /** The status and message of the held response, as they were at its first call. */
  status: number;
  message: string;
  /** Headers and status before the handler ran: a failed commit puts them back for the error handler. */
  headersBefore: Record<string, HeaderValue | undefined>;
  statusBefore: number;
  /** Takes the held-response behaviour off the response again. */
  unshadow: (() => void) | undefined;
}

function newHook(res: NodeResponse, commit: NodeCommit, next: ConnectNext, originals: Senders): Hook {
  return {
    state: OPEN,
    commit,
    next,
    originals,
    held: [],
    ended: false,
    status: 0,
    message: "",
    headersBefore: res.getHeaders(),
    statusBefore: res.statusCode,
    unshadow: undefined,
  };
}

/**
 * Hooks one response with wrappers of its own. For any Node response: a bare
 * `http.createServer` handler, Connect, or an Express response the shared
 * wrappers (below) do not reach yet.
 */
export function hookResponse(res: NodeResponse, commit: NodeCommit, next: ConnectNext): void {
  // Middleware that ran before may hold the senders it found: wrap what is there now.
  const hook = newHook(res, commit, next, {
    writeHead: res.writeHead,
    write: res.write,
    end: res.end,
    flushHeaders: res.flushHeaders,
  });
  res.writeHead = function (...args) {
    return hookedCall(this as NodeResponse, hook, "writeHead", args);
  };
  res.write = function (...args) {
    return hookedCall(this as NodeResponse, hook, "write", args);
  };
  res.end = function (...args) {
    return hookedCall(this as NodeResponse, hook, "end", args);
  };
  res.flushHeaders = function (...args) {
    return hookedCall(this as NodeResponse, hook, "flushHeaders", args);
  };
}

/** The hooks of requests whose responses pass through an Express app's shared wrappers. */
const hooksByRequest = new WeakMap<object, Hook>();
/** Express `app.response` objects whose senders are wrapped, with the methods they had before. */
const wrappedPrototypes = new WeakMap<object, Senders>();

/** What the Express hook needs of an Express request: its app. */
interface ExpressRequest {
  app?: { response?: object; parent?: unknown };
}

/**
 * Hooks an Express response through its app's shared wrappers.
 *
 * Why not {@linkcode hookResponse} on every request: adding own properties to
 * an Express response costs several microseconds each (Express gives every
 * response its app's prototype, and V8 builds and then collects a new hidden
 * class for every property added to such an object). Four wrappers were most
 * of the adapter's cost per request (bench/results/2026-11-29-vs-c1a05fc.md).
 * So the senders are wrapped once, on `app.response` of the root app: the
 * object Express documents for extending responses, which every response of
 * the app and of its mounted sub-apps inherits from. A response whose request
 * the middleware never saw (a route mounted before it) passes straight
 * through. The first request of an app is hooked on its own response, since
 * middleware before ours may already hold the senders it found.
 */
export function hookExpressResponse(
  req: ExpressRequest,
  res: NodeResponse,
  commit: NodeCommit,
  next: ConnectNext,
): void {
  let app = req.app;
  // A mounted sub-app's `response` inherits from its parent's (Express links them on mount): the root's
  // wrappers serve the whole tree, even after a sub-app hands the request back to its parent.
  while (app !== undefined && isExpressApp(app.parent)) app = app.parent;
  const proto = app?.response;
  const shared = proto === undefined ? undefined : wrappedPrototypes.get(proto);
  if (shared !== undefined && !hooksByRequest.has(req) && isPrototypeOf(proto!, res)) {
    hooksByRequest.set(req, newHook(res, commit, next, shared));
    return;
  }
  hookResponse(res, commit, next);
  if (proto !== undefined && shared === undefined && isPrototypeOf(proto, res)) wrapPrototype(proto);
}

/** Whether `proto` is on the prototype chain of `object`. */
export function isPrototypeOf(proto: object, object: object): boolean {
  return Object.prototype.isPrototypeOf.call(proto, object);
}

function isExpressApp(value: unknown): value is NonNullable<ExpressRequest["app"]> {
  return typeof value === "function" && typeof (value as { response?: unknown }).response === "object";
}

function wrapPrototype(proto: object): void {
  const target = proto as Senders;
  const originals = {} as Senders;
  for (const name of SENDERS) {
    const original = target[name];
    originals[name] = original;
    Object.defineProperty(target, name, {
      configurable: true,
      writable: true,
      value: function (this: NodeResponse, ...args: unknown[]) {
        const req = this.req;
        const hook = req === undefined ? undefined : hooksByRequest.get(req);
        if (hook === undefined || hook.state === DONE) return original.apply(this, args);
        return hookedCall(this, hook, name, args);
      },
    });
  }
  wrappedPrototypes.set(proto, originals);
}

/** A call of a sender on a hooked response. */
function hookedCall(res: NodeResponse, hook: Hook, name: Sender, args: unknown[]): unknown {
  switch (hook.state) {
    case DONE:
      return hook.originals[name].apply(res, args);
    case HELD:
      return heldCall(res, hook, name, args);
    case FAILED:
      return afterFailure(res, hook, name, args);
  }
  // The first call: it starts the response, so the commit runs now.
  let status = res.statusCode;
  if (name === "writeHead") {
    // Checked as Node checks them, so a bad call throws to the handler before anything is committed.
    status = checkStatus(args[0]);
    args = applyWriteHeadHeaders(res, args);
  } else if (name === "write" || name === "end") {
    checkChunk(name, args[0]);
  }
  let saving: MaybePromise<string | undefined>;
  try {
    saving = hook.commit(status);
  } catch (error) {
    fail(res, hook, error);
    return name === "write" ? false : name === "flushHeaders" ? undefined : res;
  }
  if (!isPromiseLike(saving)) {
    hook.state = DONE;
    if (saving) appendSetCookie(res, saving);
    return hook.originals[name].apply(res, args);
  }
  hook.state = HELD;
  hook.status = res.statusCode;
  hook.message = res.statusMessage;
  shadow(res, hook);
  const answer = heldCall(res, hook, name, args);
  saving.then(
    (setCookie) => replay(res, hook, setCookie),
    (error) => fail(res, hook, error),
  ).catch(hook.next);
  return answer;
}

/** A call while the commit runs: held, or refused as Node refuses it once the response has started. */
function heldCall(res: NodeResponse, hook: Hook, name: Sender, args: unknown[]): unknown {
  const started = hook.held.length > 0;
  switch (name) {
    case "writeHead":
      if (started) throw headersSent("write");
      break;
    case "flushHeaders":
      // Once the response has started, Node has nothing more to flush.
      if (started) return undefined;
      break;
    case "write":
      if (hook.ended) {
        failLate(res, args, "ERR_STREAM_WRITE_AFTER_END", "write after end", true);
        return false;
      }
      checkChunk(name, args[0]);
      break;
    case "end":
      if (hook.ended) {
        const chunk = typeof args[0] === "function" ? undefined : args[0];
        if (chunk !== undefined && chunk !== null && chunk !== "") {
          failLate(res, args, "ERR_STREAM_WRITE_AFTER_END", "write after end", true);
        } else {
          failLate(
            res,
            args,
            "ERR_STREAM_ALREADY_FINISHED",
            "Cannot call end after a stream was finished",
            false,
          );
        }
        return res;
      }
      checkChunk(name, args[0]);
      hook.ended = true;
      break;
  }
  hook.held.push([name, args]);
  // A held write says "wait for drain": a piped stream pauses until the replay gives it one.
  return name === "write" ? false : name === "flushHeaders" ? undefined : res;
}

/** Sends the held calls, after the cookie. */
function replay(res: NodeResponse, hook: Hook, setCookie: string | undefined): void {
  hook.state = DONE;
  hook.unshadow?.();
  hook.unshadow = undefined;
  res.statusCode = hook.status;
  res.statusMessage = hook.message;
  if (setCookie) appendSetCookie(res, setCookie);
  const calls = hook.held;
  hook.held = [];
  for (const [name, args] of calls) hook.originals[name].apply(res, args);
  if (calls.some(([name]) => name === "write") && !res.writableNeedDrain) res.emit("drain");
}

/** Drops the held calls and hands the error on, with the headers and status of before the handler. */
function fail(res: NodeResponse, hook: Hook, error: unknown): void {
  hook.state = FAILED;
  hook.unshadow?.();
  hook.unshadow = undefined;
  hook.held = [];
  for (const name of res.getHeaderNames()) res.removeHeader(name);
  for (const [name, value] of Object.entries(hook.headersBefore)) {
    if (value !== undefined) res.setHeader(name, value);
  }
  res.statusCode = hook.statusBefore;
  hook.next(error);
}

/**
 * A call after a failed commit. The error handler's response goes through;
 * once it has ended, what the handler still sends goes nowhere, as if its
 * connection had closed (the handler was told its response was on its way).
 */
function afterFailure(res: NodeResponse, hook: Hook, name: Sender, args: unknown[]): unknown {
  if (!res.writableEnded || name === "writeHead" || name === "flushHeaders") {
    return hook.originals[name].apply(res, args);
  }
  const callback = args.findLast((arg) => typeof arg === "function") as ((error: Error) => void) | undefined;
  if (callback) {
    process.nextTick(
      callback,
      nodeError("ERR_STREAM_DESTROYED", `Cannot call ${name} after a stream was destroyed`),
    );
  }
  return name === "write" ? false : res;
}

/**
 * Makes the response read and refuse as Node's does once the response has
 * started, while the first call is held: own properties over the
 * prototype's, taken off again (restoring any own ones) when the commit
 * settles.
 */
function shadow(res: NodeResponse, hook: Hook): void {
  const saved = new Map<string, PropertyDescriptor | undefined>();
  const define = (name: string, descriptor: PropertyDescriptor) => {
    saved.set(name, Object.getOwnPropertyDescriptor(res, name));
    Object.defineProperty(res, name, { configurable: true, ...descriptor });
  };
  define("headersSent", { get: () => true });
  define("writableEnded", { get: () => hook.ended });
  define("finished", { get: () => hook.ended, set: () => {} });
  define("setHeader", {
    writable: true,
    value: () => {
      throw headersSent("set");
    },
  });
  define("appendHeader", {
    writable: true,
    value: () => {
      throw headersSent("append");
    },
  });
  define("removeHeader", {
    writable: true,
    value: () => {
      throw headersSent("remove");
    },
  });
  hook.unshadow = () => {
    for (const [name, descriptor] of saved) {
      if (descriptor === undefined) delete (res as unknown as Record<string, unknown>)[name];
      else Object.defineProperty(res, name, descriptor);
    }
  };
}

/** Node's error for changing headers after they were sent, with Node's code and message. */
function headersSent(verb: "set" | "append" | "remove" | "write"): Error {
  return nodeError("ERR_HTTP_HEADERS_SENT", `Cannot ${verb} headers after they are sent to the client`);
}

function nodeError(code: string, message: string, Type: ErrorConstructor = Error): Error {
  const error = new Type(message);
  (error as Error & { code: string }).code = code;
  return error;
}

/**
 * A write or end after `end`, answered as Node answers it: the callback gets
 * the error on the next tick, and for a write (or an end with data) the
 * response emits it as an `error` event, which Node does too.
 */
function failLate(res: NodeResponse, args: unknown[], code: string, message: string, emit: boolean): void {
  const error = nodeError(code, message);
  const callback = args.findLast((arg) => typeof arg === "function") as ((error: Error) => void) | undefined;
  process.nextTick(() => {
    callback?.(error);
    if (emit) res.emit("error", error);
  });
}

/** Node's check of a `writeHead` status: an integer from 100 to 999 after `| 0`. */
function checkStatus(value: unknown): number {
  const status = (value as number) | 0;
  if (status < 100 || status > 999) {
    throw nodeError("ERR_HTTP_INVALID_STATUS_CODE", `Invalid status code: ${String(value)}`, RangeError);
  }
  return status;
}

/** Node's check of a chunk: a string or bytes (or nothing, for `end`). */
function checkChunk(name: "write" | "end", chunk: unknown): void {
  if (typeof chunk === "string" || chunk instanceof Uint8Array) return;
  if (name === "end" && (chunk === undefined || chunk === null || typeof chunk === "function")) return;
  if (name === "write" && chunk === null) {
    throw nodeError("ERR_STREAM_NULL_VALUES", "May not write null values to stream", TypeError);
  }
  throw nodeError(
    "ERR_INVALID_ARG_TYPE",
    `The "chunk" argument must be of type string or an instance of Buffer or Uint8Array`,
    TypeError,
  );
}

/**
 * Applies the headers of `writeHead(status[, message][, headers])` to the
 * response by Node's rules for headers passed there, and returns the call
 * without them. An object sets each of its headers (replacing a header of the
 * same name); an array of `[name, value, ...]` or of `[name, value]` pairs
 * replaces each header it names by all of the values it gives.
 */
function applyWriteHeadHeaders(res: NodeResponse, args: unknown[]): unknown[] {
  const [status, second, third] = args;
  const message = typeof second === "string" ? second : undefined;
  const headers = typeof second === "string" ? third : second;
  if (headers === undefined || headers === null) return args;
  if (Array.isArray(headers)) {
    const pairs: [string, HeaderValue][] = [];
    if (headers.length > 0 && Array.isArray(headers[0])) {
      for (const pair of headers) pairs.push([pair[0], pair[1]]);
    } else {
      if (headers.length % 2 !== 0) {
        throw nodeError(
          "ERR_INVALID_ARG_VALUE",
          "The argument 'headers' is invalid: it must have an even number of entries",
          TypeError,
        );
      }
      for (let i = 0; i < headers.length; i += 2) pairs.push([headers[i], headers[i + 1]]);
    }
    for (const [name] of pairs) if (name) res.removeHeader(name);
    for (const [name, value] of pairs) if (name) appendHeader(res, name, value);
  } else if (typeof headers === "object") {
    for (const name of Object.keys(headers)) {
      if (name) res.setHeader(name, (headers as Record<string, HeaderValue>)[name]);
    }
  }
  return message === undefined ? [status] : [status, message];
}

/** `res.appendHeader` where Node has it (18.3+), else the same through `getHeader` and `setHeader`. */
function appendHeader(res: NodeResponse, name: string, value: HeaderValue): void {
  if (typeof res.appendHeader === "function") {
    res.appendHeader(name, value);
    return;
  }
  const previous = res.getHeader(name);
  if (previous === undefined) {
    res.setHeader(name, value);
    return;
  }
  const list = (Array.isArray(previous) ? previous : [String(previous)]) as string[];
  res.setHeader(name, [...list, ...(Array.isArray(value) ? value : [String(value)])]);
}

/** Adds the session cookie beside any the application set. */
function appendSetCookie(res: NodeResponse, value: string): void {
  appendHeader(res, "Set-Cookie", value);
}
