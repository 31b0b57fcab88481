/**
 * The session core: a `Cookie` header in, a {@linkcode Session} out; a session
 * in, a `Set-Cookie` value (or nothing) out. It speaks only strings and Web
 * APIs, so every framework adapter is a thin layer that calls
 * {@linkcode SessionManager.load} before the handler and
 * {@linkcode SessionManager.commit} after it.
 *
 * @module
 */

import { CookieWriter } from "./_cookie.ts";
import type { CookieOptions } from "./_cookie.ts";
import { readCookieValues } from "./_cookie.ts";
import {
  hashForLog,
  isWellFormedHandle,
  isWellFormedId,
  MAX_COOKIE_VALUE_LENGTH,
  Signer,
} from "./_crypto.ts";
import { SessionConflictError, SessionStoreError } from "./errors.ts";
import type { StoreOperation } from "./errors.ts";
import { isAllowedKey, Session, sessionState } from "./session.ts";
import type { SessionData, SessionHost, SessionState } from "./session.ts";
import { NEVER } from "./store.ts";
import type { MaybePromise, SessionMeta, SessionRecord, Store, StoreWrite } from "./store.ts";
import { MemoryStore } from "./stores/memory.ts";

export type { CookieOptions, SameSite } from "./_cookie.ts";

/** Why the core ignored a presented cookie or a stored record. */
export type SecurityEventType =
  /** The cookie value is not a well-formed id (or signed id). */
  | "malformed-cookie"
  /** The signature did not verify with any secret. */
  | "bad-signature"
  /** A correctly formed (and signed) id that the store does not know. */
  | "unknown-session"
  /** A stored record past its idle or absolute expiry: deleted. */
  | "expired-session"
  /** A stored record that is not a valid session record: deleted. */
  | "corrupt-record"
  /** A stored record carrying a reserved key (`__proto__`, ...): the key was dropped. */
  | "forbidden-key";

/** A security-relevant event. Carries a salted hash of the id, never the id. */
export interface SecurityEvent {
  /** What happened. */
  type: SecurityEventType;
  /**
   * A per-process salted SHA-256 of the session id, for correlating events in
   * logs. Absent when the cookie held no usable id.
   */
  idHash?: string;
}

/** Options shared by the core and every adapter. Durations are in seconds. */
export interface SessionOptions {
  /**
   * Where records live. Default: a {@linkcode MemoryStore} (one process only;
   * use a persistent store in production).
   */
  store?: Store;
  /**
   * Secret(s) for signing the cookie with HMAC-SHA-256, each at least 32 bytes.
   * With a list, the first signs and all verify, so secrets can be rotated:
   * a cookie signed with an older secret is re-signed with the first.
   * Without a secret ids are not signed (still random, format-checked and
   * looked up strictly); a warning says so once.
   */
  secret?: string | string[];
  /** Cookie attributes. Defaults: `sid`, `Path=/`, `HttpOnly`, `SameSite=Lax`, `Secure` on https. */
  cookie?: CookieOptions;
  /**
   * Sliding lifetime: a session unused for this long expires. Default 86400
   * (24 hours). `null` turns it off.
   */
  idleTimeout?: number | null;
  /**
   * Absolute lifetime from creation (or the last `regenerate()`), however
   * active the session is. Default 604800 (7 days). `null` turns it off.
   */
  absoluteTimeout?: number | null;
  /**
   * Believe `X-Forwarded-Proto` for deciding whether the request was https.
   * Only for apps behind a proxy that sets it. Default `false`.
   */
  trustProxy?: boolean;
  /** Seconds a store call may take before it fails with a `SessionStoreError`. Default 5. */
  storeTimeout?: number;
  /** The clock, in milliseconds since the epoch. Default `Date.now`. Inject one in tests. */
  now?: () => number;
  /** Called for every {@linkcode SecurityEvent}. Errors it throws are ignored. */
  onSecurityEvent?: (event: SecurityEvent) => void;
}

/** What an adapter knows about a request. */
export interface RequestFacts {
  /** The raw `Cookie` header, if any. */
  cookie: string | null | undefined;
  /**
   * Whether the connection to this server is https, or a function that tells:
   * it is called only when a cookie is written, so a framework getter that
   * costs something is not paid on requests that send no cookie.
   */
  https: boolean | (() => boolean);
  /** The raw `X-Forwarded-Proto` header; used only with `trustProxy`. */
  forwardedProto?: string | null;
}

const DAY = 86_400;
/** Browsers cap cookie lifetimes at 400 days (RFC 6265bis). */
const MAX_COOKIE_AGE = 400 * DAY;
const MIN_SECRET_BYTES = 32;

let warnedUnsigned = false;

function optionError(option: string, detail: string): TypeError {
  return new TypeError(`Invalid session option "${option}": ${detail}`);
}

function readTimeout(
  value: number | null | undefined,
  fallback: number,
  option: string,
): number | null {
  if (value === null) return null;
  if (value === undefined) return fallback * 1000;
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw optionError(option, "must be a positive number of seconds, or null to turn it off");
  }
  return value * 1000;
}

function readSecrets(secret: unknown): string[] | undefined {
  if (secret === undefined) return undefined;
  const secrets = typeof secret === "string" ? [secret] : secret;
  if (!Array.isArray(secrets) || secrets.length === 0) {
    throw optionError("secret", "must be a string or a non-empty list of strings");
  }
  const encoder = new TextEncoder();
  for (const item of secrets) {
    if (typeof item !== "string") {
      throw optionError("secret", "must be a string or a non-empty list of strings");
    }
    if (encoder.encode(item).length < MIN_SECRET_BYTES) {
      throw optionError(
        "secret",
        `each secret must be at least ${MIN_SECRET_BYTES} bytes of random text`,
      );
    }
  }
  return secrets;
}

/**
 * A plain object of a session's values. Keys are session keys, which never
 * include `__proto__` (`Session` refuses it), so plain assignment is safe;
 * a loop is several times faster than `Object.fromEntries` on a `Map`.
 */
function toObject(values: Map<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of values) out[key] = value;
  return out;
}

type StoreCall<R> = (store: Store, id: string, write?: StoreWrite) => MaybePromise<R>;
const storeGet: StoreCall<SessionRecord | undefined> = (store, id) => store.get(id);
const storeSet: StoreCall<string | null> = (store, id, write) => store.set(id, write!);
const storeDelete: StoreCall<void> = (store, id) => store.delete(id);

/** Whether the request was https, asking the adapter's function once if it gave one. */
function isHttps(state: SessionState): boolean {
  if (typeof state.https === "function") state.https = state.https();
  return state.https;
}

/** Whether a store answered with a promise (or any thenable) rather than a value. */
function isPromiseLike<R>(value: R | Promise<R>): value is Promise<R> {
  return typeof (value as { then?: unknown } | null)?.then === "function";
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isTime(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value) && value > 0;
}

/** Whether a store returned something shaped like a session record. */
function isValidRecord(record: unknown): record is SessionRecord {
  if (!isPlainObject(record)) return false;
  const { data, flash, meta } = record;
  return isPlainObject(data) && (flash === undefined || isPlainObject(flash)) &&
    isPlainObject(meta) && typeof meta.createdAt === "number" &&
    Number.isFinite(meta.createdAt) && meta.createdAt >= 0 &&
    isTime(meta.expiresAt) && isTime(meta.absoluteExpiresAt);
}

/**
 * Loads and commits sessions. Build one per app (it validates every option
 * at once and throws a `TypeError` naming the first bad one), then call
 * `load` before the handler and `commit` after it, for every request.
 *
 * @typeParam T The session data type.
 *
 * @example A minimal adapter for a fetch handler
 * ```ts
 * import { SessionManager } from "./core.ts";
 *
 * const sessions = new SessionManager({ secret: "a-secret-of-at-least-32-bytes-long!" });
 *
 * async function handle(request: Request): Promise<Response> {
 *   const session = await sessions.load({
 *     cookie: request.headers.get("cookie"),
 *     https: request.url.startsWith("https:"),
 *   });
 *   const visits = (session.get("visits") ?? 0) + 1;
 *   session.set("visits", visits);
 *   const response = new Response(`visit ${visits}`);
 *   const setCookie = await sessions.commit(session);
 *   if (setCookie) response.headers.append("set-cookie", setCookie);
 *   return response;
 * }
 *
 * const first = await handle(new Request("http://localhost/"));
 * console.log(await first.text()); // "visit 1"
 * ```
 */
// deno-lint-ignore no-explicit-any
export class SessionManager<T extends SessionData = Record<string, any>> {
  /** The store records are kept in. */
  readonly store: Store;
  #cookie: CookieWriter;
  #signer: Signer | undefined;
  #idleMs: number | null;
  #absoluteMs: number | null;
  #trustProxy: boolean;
  #timeoutMs: number;
  #now: () => number;
  #onSecurityEvent: ((event: SecurityEvent) => void) | undefined;
  #host: SessionHost;

  /** Validates `options`; throws a `TypeError` that names the first bad option. */
  constructor(options: SessionOptions = {}) {
    if (typeof options !== "object" || options === null) {
      throw new TypeError("Invalid session options: expected an object");
    }
    if ("secret" in options && options.secret === undefined) {
      // Fail closed: `secret: process.env.SESSION_SECRET` with the variable unset must not silently go unsigned.
      throw optionError(
        "secret",
        "is undefined (an unset environment variable?); leave the option out to run unsigned",
      );
    }
    const secrets = readSecrets(options.secret);
    this.#cookie = new CookieWriter(options.cookie);
    this.#idleMs = readTimeout(options.idleTimeout, DAY, "idleTimeout");
    this.#absoluteMs = readTimeout(options.absoluteTimeout, 7 * DAY, "absoluteTimeout");
    const timeout = options.storeTimeout ?? 5;
    if (typeof timeout !== "number" || !(timeout > 0)) {
      throw optionError("storeTimeout", "must be a positive number of seconds");
    }
    this.#timeoutMs = timeout * 1000;
    if (options.now !== undefined && typeof options.now !== "function") {
      throw optionError("now", "must be a function returning milliseconds since the epoch");
    }
    this.#now = options.now ?? Date.now;
    const store = options.store ?? new MemoryStore({ now: this.#now });
    if (
      typeof store !== "object" || store === null || typeof store.get !== "function" ||
      typeof store.set !== "function" || typeof store.delete !== "function"
    ) {
      throw optionError("store", "must implement get, set and delete (see docs/stores.md)");
    }
    this.store = store;
    this.#trustProxy = options.trustProxy ?? false;
    this.#onSecurityEvent = options.onSecurityEvent;
    this.#signer = secrets && new Signer(secrets);
    if (!secrets && !warnedUnsigned) {
      warnedUnsigned = true;
      console.warn(
        'Session ids are not signed: pass a "secret" option (32+ random bytes) to sign the session cookie',
      );
    }
    this.#host = { deleteRecord: (id) => this.#delete(id) };
  }

  /** Whether the session cookie is signed (a `secret` was given). */
  get signed(): boolean {
    return this.#signer !== undefined;
  }

  /** The session cookie's name. */
  get cookieName(): string {
    return this.#cookie.name;
  }

  /** Whether `X-Forwarded-Proto` is believed (the `trustProxy` option): adapters read it only then. */
  get trustProxy(): boolean {
    return this.#trustProxy;
  }

  /**
   * Finds the session a request presents. Cookies that are malformed, badly
   * signed, unknown to the store or expired give a fresh, empty session; they
   * never throw. A failing store does: with a `SessionStoreError`.
   */
  load(request: RequestFacts): Promise<Session<T>> {
    try {
      return Promise.resolve(this.loadEager(request));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * {@linkcode SessionManager.load}, answering with the session itself rather
   * than a promise when the store answered synchronously (as `MemoryStore`
   * and `SqliteStore` do). For adapters: it spares a microtask per request,
   * and lets a framework without an async response hook commit in place.
   * Store failures may throw synchronously.
   */
  loadEager(request: RequestFacts): Session<T> | Promise<Session<T>> {
    let https: boolean | (() => boolean) = request.https;
    if (this.#trustProxy && request.forwardedProto) {
      const first = request.forwardedProto.split(",", 1)[0].trim().toLowerCase();
      https = first === "https";
    }
    const values = readCookieValues(request.cookie, this.#cookie.name, MAX_COOKIE_VALUE_LENGTH);
    for (let i = 0; i < values.length; i++) {
      const presented = this.#verify(values[i]);
      if (presented === undefined) continue;
      const record = this.#call("read", storeGet, presented.handle);
      if (isPromiseLike(record)) return this.#loadLater(values, i + 1, https, record, presented);
      const opened = this.#open(presented.handle, record, https, presented.rotated);
      if (opened instanceof Session) return opened;
      if (opened !== undefined) return this.#loadLater(values, i + 1, https, opened);
    }
    return this.#fresh(https);
  }

  /**
   * The rest of a load once a store call returned a promise: `step` is the
   * pending read of `presented`, or (without it) a pending delete; then the
   * values from `next` on, as in `loadEager`.
   */
  async #loadLater(
    values: string[],
    next: number,
    https: boolean | (() => boolean),
    step: Promise<unknown>,
    presented?: { handle: string; rotated: boolean },
  ): Promise<Session<T>> {
    const answer = await step;
    if (presented) {
      const opened = this.#open(presented.handle, answer, https, presented.rotated);
      if (opened instanceof Session) return opened;
      if (opened !== undefined) await opened;
    }
    for (let i = next; i < values.length; i++) {
      const candidate = this.#verify(values[i]);
      if (candidate === undefined) continue;
      let record = this.#call("read", storeGet, candidate.handle);
      if (isPromiseLike(record)) record = await record;
      const opened = this.#open(candidate.handle, record, https, candidate.rotated);
      if (opened instanceof Session) return opened;
      if (opened !== undefined) await opened;
    }
    return this.#fresh(https);
  }

  /** The handle a cookie value carries, if it is well formed (and its signature verifies). */
  #verify(value: string): { handle: string; rotated: boolean } | undefined {
    if (this.#signer) {
      const verified = this.#signer.verify(value);
      if (typeof verified !== "string") return verified;
      this.#report(verified === "malformed" ? "malformed-cookie" : "bad-signature");
      return undefined;
    }
    if (isWellFormedId(value)) return { handle: value, rotated: false };
    this.#report("malformed-cookie");
    return undefined;
  }

  /**
   * Turns what the store answered into a session; `undefined` for an unknown
   * id, or the pending delete of a corrupt or expired record.
   */
  #open(
    id: string,
    record: unknown,
    https: boolean | (() => boolean),
    rotated: boolean,
  ): Session<T> | undefined | Promise<void> {
    if (record === undefined || record === null) {
      this.#report("unknown-session", id);
      return undefined;
    }
    if (!isValidRecord(record)) {
      this.#report("corrupt-record", id);
      return this.#delete(id);
    }
    const now = this.#now();
    const { meta } = record;
    if (
      now >= meta.expiresAt || now >= meta.absoluteExpiresAt ||
      (this.#absoluteMs !== null && now >= meta.createdAt + this.#absoluteMs)
    ) {
      this.#report("expired-session", id);
      return this.#delete(id);
    }
    const data = new Map<string, unknown>();
    for (const key of Object.keys(record.data)) {
      if (isAllowedKey(key)) data.set(key, record.data[key]);
      else this.#report("forbidden-key", id);
    }
    let incomingFlash: Map<string, unknown> | undefined;
    if (record.flash) {
      for (const key of Object.keys(record.flash)) {
        if (!isAllowedKey(key)) {
          this.#report("forbidden-key", id);
          continue;
        }
        (incomingFlash ??= new Map()).set(key, record.flash[key]);
      }
    }
    return new Session<T>(this.#host, {
      id,
      stored: true,
      hadCookie: true,
      rotated,
      https,
      data,
      incomingFlash,
      outgoingFlash: undefined,
      set: undefined,
      deleted: undefined,
      cleared: false,
      meta: {
        createdAt: meta.createdAt,
        expiresAt: meta.expiresAt,
        absoluteExpiresAt: meta.absoluteExpiresAt,
      },
    });
  }

  #fresh(https: boolean | (() => boolean)): Session<T> {
    return new Session<T>(this.#host, {
      id: undefined,
      stored: false,
      hadCookie: false,
      rotated: false,
      https,
      data: new Map(),
      incomingFlash: undefined,
      outgoingFlash: undefined,
      set: undefined,
      deleted: undefined,
      cleared: false,
      meta: undefined,
    });
  }

  /**
   * Saves what the handler changed and returns the `Set-Cookie` value the
   * response needs, or `undefined` when it needs none. Writes only when
   * needed: nothing for an untouched new session, nothing for an unchanged
   * session unless its idle deadline has slid by half a window or more. The
   * deadline moves only then (on writes too), and the cookie is sent only
   * when its value or deadline changes.
   *
   * @throws {SessionStoreError} when the store fails or times out.
   * @throws {SessionConflictError} when an overlapping request deleted the
   * session this one is updating (it is not recreated).
   */
  commit(session: Session<T>): Promise<string | undefined> {
    try {
      return Promise.resolve(this.commitEager(session));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * {@linkcode SessionManager.commit}, answering with the `Set-Cookie` value
   * (or `undefined`) itself rather than a promise when the store answered
   * synchronously. Failures may throw synchronously.
   */
  commitEager(session: Session<T>): string | undefined | Promise<string | undefined> {
    const state = sessionState(session);
    const now = this.#now();
    if (state.stored) return this.#commitStored(state, now);

    const hasContent = state.data.size > 0 || (state.outgoingFlash?.size ?? 0) > 0;
    if (!hasContent) {
      // The client's cookie named a session this request destroyed or regenerated: clear it.
      return state.hadCookie ? this.#cookie.clear(isHttps(state)) : undefined;
    }
    const absoluteExpiresAt = this.#absoluteMs === null ? NEVER : now + this.#absoluteMs;
    const meta: SessionMeta = {
      createdAt: now,
      expiresAt: this.#idleMs === null ? absoluteExpiresAt : Math.min(now + this.#idleMs, absoluteExpiresAt),
      absoluteExpiresAt,
    };
    const record: SessionRecord = { data: toObject(state.data), meta };
    if (state.outgoingFlash?.size) record.flash = toObject(state.outgoingFlash);
    const id = session.id;
    const handle = this.#write(id, {
      kind: "create",
      record,
      set: record.data,
      deleted: [],
      cleared: false,
      flashChanged: record.flash !== undefined,
    });
    const created = (answer: string | null) => {
      if (answer === null) {
        throw new SessionStoreError("write", new Error("the store refused to create a record"));
      }
      return this.#setCookie(answer, meta.expiresAt, now, isHttps(state));
    };
    return isPromiseLike(handle) ? handle.then(created) : created(handle);
  }

  #commitStored(state: SessionState, now: number): string | undefined | Promise<string | undefined> {
    const loaded = state.meta!;
    const flashChanged = state.outgoingFlash !== undefined || state.incomingFlash !== undefined;
    const changed = (state.set?.size ?? 0) > 0 || (state.deleted?.size ?? 0) > 0 || state.cleared ||
      flashChanged;
    const slid = this.#idleMs === null
      ? loaded.expiresAt
      : Math.min(now + this.#idleMs, loaded.absoluteExpiresAt);
    const touch = this.#idleMs !== null && slid - loaded.expiresAt >= this.#idleMs / 2;
    const id = state.id!;
    if (!changed && !touch) {
      return state.rotated ? this.#setCookie(id, loaded.expiresAt, now, isHttps(state)) : undefined;
    }
    // The deadline moves only with a touch, on writes as on reads: the browser's copy of the cookie
    // expires when the record does, so a write that keeps the deadline needs no Set-Cookie.
    const meta: SessionMeta = {
      createdAt: loaded.createdAt,
      expiresAt: touch ? slid : loaded.expiresAt,
      absoluteExpiresAt: loaded.absoluteExpiresAt,
    };
    const record: SessionRecord = { data: toObject(state.data), meta };
    if (state.outgoingFlash?.size) record.flash = toObject(state.outgoingFlash);
    const set = Object.create(null);
    if (state.set) { for (const [key, value] of state.set) set[key] = value; }
    const handle = this.#write(id, {
      kind: "update",
      record,
      set,
      deleted: state.deleted ? [...state.deleted] : [],
      cleared: state.cleared,
      flashChanged,
    });
    const updated = (answer: string | null) => {
      if (answer === null) throw new SessionConflictError();
      // A store whose handle changes with every write (a sealed cookie) needs the new value sent.
      if (!touch && !state.rotated && answer === id) return undefined;
      return this.#setCookie(answer, meta.expiresAt, now, isHttps(state));
    };
    return isPromiseLike(handle) ? handle.then(updated) : updated(handle);
  }

  #write(id: string, write: StoreWrite): string | null | Promise<string | null> {
    const handle = this.#call("write", storeSet, id, write);
    return isPromiseLike(handle)
      ? handle.then((answer) => this.#checkHandle(id, answer))
      : this.#checkHandle(id, handle);
  }

  #checkHandle(id: string, handle: string | null): string | null {
    if (handle !== null && handle !== id && (typeof handle !== "string" || !isWellFormedHandle(handle))) {
      throw new SessionStoreError("write", new Error("the store returned a malformed cookie handle"));
    }
    return handle;
  }

  #delete(id: string): Promise<void> {
    const done = this.#call("delete", storeDelete, id);
    return isPromiseLike(done) ? done : Promise.resolve();
  }

  #setCookie(handle: string, expiresAt: number, now: number, https: boolean): string {
    const value = this.#signer ? this.#signer.sign(handle) : handle;
    const maxAge = Math.max(0, Math.min(MAX_COOKIE_AGE, Math.floor((expiresAt - now) / 1000)));
    return this.#cookie.set(value, maxAge, https);
  }

  /**
   * Runs a store call (one of the functions below, so no closure is made per
   * request). A store that answers synchronously (from memory, or an embedded
   * database) is not awaited at all; a promise gets the timeout. Every
   * failure, thrown or rejected, becomes a `SessionStoreError`.
   */
  #call<R>(operation: StoreOperation, run: StoreCall<R>, id: string, write?: StoreWrite): MaybePromise<R> {
    let result: MaybePromise<R>;
    try {
      result = run(this.store, id, write);
    } catch (error) {
      throw new SessionStoreError(operation, error);
    }
    return isPromiseLike(result) ? this.#timed(operation, result) : result;
  }

  async #timed<R>(operation: StoreOperation, pending: Promise<R>): Promise<R> {
    let settled = false;
    const result = pending.finally(() => (settled = true));
    // A store that answers from memory settles within a microtask: arming and clearing a timer would cost
    // more than the call itself (about 1 µs on Node, 2 µs on Deno), so the timer is armed only for a call
    // still pending after that.
    await undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      if (settled) return await result;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer within ${this.#timeoutMs / 1000} s`)),
          this.#timeoutMs,
        );
      });
      return await Promise.race([result, timeout]);
    } catch (error) {
      throw new SessionStoreError(operation, error);
    } finally {
      clearTimeout(timer);
    }
  }

  #report(type: SecurityEventType, id?: string): void {
    const hook = this.#onSecurityEvent;
    if (!hook) return;
    try {
      hook(id === undefined ? { type } : { type, idHash: hashForLog(id) });
    } catch {
      // A failing logger must not break the request.
    }
  }
}
