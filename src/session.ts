/**
 * The per-request session object handlers use. One is made for every request;
 * it is never shared between requests.
 *
 * @module
 */

import { generateId } from "./_crypto.ts";
import { durationMs } from "./_time.ts";
import { SessionConflictError } from "./errors.ts";
import type { SessionMeta } from "./store.ts";

/**
 * The constraint on session data types: any object type, so interfaces work
 * as well as type literals (`Session<{ userId: string }>`). Values must be
 * JSON data; `set` checks that at run time.
 */
export type SessionData = object;

/** What a session needs from the core while a handler runs. Internal. */
export interface SessionHost {
  /** Deletes the stored record under `key` now (for `regenerate()` and `destroy()`). */
  deleteRecord(key: string): Promise<void>;
  /** Deletes the record under `key`, answering whether it was still live just before (for `regenerate()`). */
  deleteLiveRecord(key: string): Promise<boolean>;
  /**
   * Reads the stored record of `state` again and puts its values in place of
   * the request's (for `reload()`); `false` when the record is gone.
   */
  reload(state: SessionInternals): Promise<boolean>;
  /** A new id for a session of `userId` (or of no user): grouped as the store needs. */
  newId(userId: string | undefined): string;
  /** `logIn()`: enforces the session limit and deletes the old record; the caller then gives the new id. */
  logIn(state: SessionInternals, userId: string): Promise<void>;
  /** The live sessions of the state's user, this one marked. */
  sessionsOfUser(state: SessionInternals): Promise<UserSessionInfo[]>;
  /**
   * Deletes the records of the state's user named by `handle`, or all of them for `null` (never this
   * session's). No string means "all": a handle comes from the client, and `"all"` must name nothing.
   */
  revokeOthers(state: SessionInternals, handle: string | null): Promise<number>;
  /** The handle of this session, once it has an id. */
  handleOf(state: SessionInternals): string | undefined;
}

/**
 * One live session of a user, as `sessionsOfUser()` lists it. Times are
 * milliseconds since the epoch.
 */
export interface UserSessionInfo {
  /**
   * Names the session to `revoke()`: `h1_` and 22 base64url characters
   * derived one-way from its storage key. Not the cookie value, and nothing
   * can turn it into one: safe to put in a page.
   */
  handle: string;
  /** When the session was created (its last login). */
  createdAt: number;
  /**
   * When the session was last seen, as precisely as the touch rule allows:
   * the idle deadline moves once half the idle timeout has passed, so this is
   * the last request that moved it (within half the idle timeout of the last
   * request). With no idle timeout it is `createdAt`.
   */
  lastSeenAt: number;
  /** When it expires unless used again (the earlier of its idle and absolute deadlines). */
  expiresAt: number;
  /** `true` for the session of the request that asked. */
  current: boolean;
  /** What the app recorded at login (`logIn(userId, { details })`), if anything. */
  details?: Record<string, unknown>;
}

/** Options of `Session.logIn()`. */
export interface LogInOptions {
  /**
   * JSON data to keep with this login and show in the user's list of
   * sessions (e.g. `{ device: "Firefox on Linux" }`). Nothing is recorded by
   * default.
   */
  details?: Record<string, unknown>;
}

/** A Node-style callback, as express-session's methods take. */
export type SessionCallback = (error?: unknown) => void;

/** Everything the core reads back at commit time. Internal: not exported from the package. */
export interface SessionInternals {
  /** The id of this session, once it has one. */
  id: string | undefined;
  /** The storage key of the stored record this session was loaded from, while it is still this session's. */
  key: string | undefined;
  /** A stored record under `key` was loaded and is still this session's. */
  stored: boolean;
  /** The client presented a cookie for a stored session (so there is a cookie to clear). */
  hadCookie: boolean;
  /** The cookie verified with an older secret and should be sent anew. */
  rotated: boolean;
  /** The request came over https (decides the `Secure` attribute); a function is asked when a cookie is written. */
  https: boolean | (() => boolean);
  data: Map<string, unknown>;
  incomingFlash: Map<string, unknown> | undefined;
  outgoingFlash: Map<string, unknown> | undefined;
  /** Keys set by this request; made on the first `set` (most requests set nothing). */
  set: Map<string, unknown> | undefined;
  /** Keys deleted by this request; made on the first `delete`. */
  deleted: Set<string> | undefined;
  cleared: boolean;
  /** Metadata of the loaded record; `undefined` for a session not stored yet. */
  meta: SessionMeta | undefined;
  /**
   * Object and array values that `get()` handed out, by key, as JSON text at
   * that moment: a value changed in place is saved as a set of its key.
   */
  read: Map<string, string> | undefined;
  /** This session's own lifetime in ms, `null` for a browser-session cookie, `undefined` for the configured one. */
  lifetimeMs: number | null | undefined;
  /** `setLifetime()` was called during this request. */
  lifetimeChanged: boolean;
  /** `touch()` was called during this request: the idle deadline slides now. */
  touched: boolean;
  /** The user this session is logged in as, if any. */
  userId: string | undefined;
  /** What the app recorded at login. */
  details: Record<string, unknown> | undefined;
}

/**
 * The most `details` a login may record: 4,096 bytes of JSON (UTF-8). Every
 * session of the user carries its copy, and every store can keep this much
 * beside a record (Deno KV's own limit for the copy in its index is 16 KiB).
 */
export const MAX_DETAILS_BYTES = 4096;

/** What a user id must be, for error messages. */
export const USER_ID_RULE =
  "expected a non-empty string of at most 256 UTF-16 code units, well-formed Unicode " +
  "(no lone surrogate: stores could not keep two such ids apart)";

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Whether `value` is a user id `logIn()` accepts: a non-empty string of at
 * most 256 UTF-16 code units that is well-formed Unicode. A lone surrogate
 * has no UTF-8 form, so stores that keep text as UTF-8 (SQLite, PostgreSQL,
 * Redis through most clients) would turn different ids into the same one.
 */
export function isUserId(value: unknown): value is string {
  return typeof value === "string" && value.length > 0 && value.length <= 256 && !LONE_SURROGATE.test(value);
}

const FORBIDDEN_KEYS = new Set(["__proto__", "constructor", "prototype"]);

/** Whether a key may be used as a session key (`__proto__`, `constructor` and `prototype` may not). */
export function isAllowedKey(key: string): boolean {
  return !FORBIDDEN_KEYS.has(key);
}

function assertKey(key: unknown, method: string): asserts key is string {
  if (typeof key !== "string") {
    throw new TypeError(`Cannot ${method} session key: the key must be a string`);
  }
  if (FORBIDDEN_KEYS.has(key)) {
    throw new TypeError(
      `Cannot ${method} session key "${key}": the name is reserved to protect object prototypes`,
    );
  }
}

/**
 * How deep a value may nest. Deeper values are refused with a `TypeError`
 * rather than overflowing the stack here, in `JSON.stringify` or in a store.
 */
export const MAX_DEPTH = 1000;

function describe(value: unknown): string {
  if (value === undefined) return "undefined";
  if (typeof value === "number") return Object.is(value, -0) ? "-0" : String(value);
  if (typeof value !== "object" || value === null) return typeof value;
  return value.constructor?.name ?? "object";
}

function refuse(key: string, path: string, detail: string): TypeError {
  return new TypeError(`Cannot set session key "${key}": the value at ${path} ${detail}`);
}

/**
 * Throws a `TypeError` unless `value` survives a JSON round trip unchanged:
 * no `-0` (it comes back as `0`), no properties JSON drops (symbol keys,
 * non-enumerable ones, extra properties or holes in arrays), no cycles, and
 * at most {@linkcode MAX_DEPTH} levels of nesting.
 */
function assertJson(value: unknown, key: string, path: string, seen: unknown[] | undefined): void {
  switch (typeof value) {
    case "string":
    case "boolean":
      return;
    case "number":
      if (Number.isFinite(value) && !Object.is(value, -0)) return;
      break;
    case "object": {
      if (value === null) return;
      // The list of objects on the current path, for cycles: made only for values that have objects.
      seen ??= [];
      if (seen.length >= MAX_DEPTH) throw refuse(key, path, `is nested more than ${MAX_DEPTH} levels deep`);
      if (seen.includes(value)) throw refuse(key, path, "refers to itself");
      if (Array.isArray(value)) {
        // A subclass of Array may serialise as anything (its own toJSON) and comes back a plain array.
        if (Object.getPrototypeOf(value) !== Array.prototype) break;
        // Own keys of a plain, dense array: its indices and "length". Anything else JSON would drop.
        if (Reflect.ownKeys(value).length !== value.length + 1) {
          throw refuse(key, path, "is an array with holes or extra properties, which JSON drops");
        }
        seen.push(value);
        for (let i = 0; i < value.length; i++) assertJson(value[i], key, `${path}[${i}]`, seen);
        seen.pop();
        return;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) break;
      const keys = Object.keys(value);
      if (Reflect.ownKeys(value).length !== keys.length) {
        throw refuse(key, path, "has symbol keys or non-enumerable properties, which JSON drops");
      }
      seen.push(value);
      for (const child of keys) {
        if (child === "__proto__") throw refuse(key, path, 'has a "__proto__" key');
        assertJson((value as Record<string, unknown>)[child], key, `${path}.${child}`, seen);
      }
      seen.pop();
      return;
    }
  }
  throw refuse(
    key,
    path,
    `is ${
      describe(value)
    }, not JSON data (strings, finite numbers other than -0, booleans, null, arrays and plain objects)`,
  );
}

/** A copy of a JSON value that shares no object with it. */
function copy(value: unknown): unknown {
  return isMutable(value) ? structuredClone(value) : value;
}

/** An object or array: a value that can change in place after `set()` or `get()`. */
function isMutable(value: unknown): value is object {
  return typeof value === "object" && value !== null;
}

let readInternals: (session: Session) => SessionInternals;
let makeSession: <T extends SessionData>(host: SessionHost, state: SessionInternals) => Session<T>;

/**
 * One request's view of a session. Reads are synchronous; `regenerate()` and
 * `destroy()` are asynchronous because they delete the stored record at once.
 * Changes reach the store when the middleware commits, after the handler and
 * before the response leaves.
 *
 * `get` and `set` may be awaited (as in the original module's API): awaiting a
 * plain value is harmless.
 *
 * @typeParam T The session data, e.g. `Session<{ userId: string }>`.
 *
 * @example
 * ```ts
 * import { SessionManager } from "./core.ts";
 * import { MemoryStore } from "./stores/memory.ts";
 *
 * const sessions = new SessionManager<{ count: number }>({ store: new MemoryStore() });
 * const session = await sessions.load({ cookie: null, https: false });
 * session.set("count", (session.get("count") ?? 0) + 1);
 * console.log(session.get("count")); // 1
 * const setCookie = await sessions.commit(session);
 * console.log(setCookie?.startsWith("sid=")); // true
 * ```
 */
// deno-lint-ignore no-explicit-any
export class Session<T extends SessionData = Record<string, any>> {
  #host: SessionHost;
  #state: SessionInternals;

  static {
    readInternals = (session) => session.#state;
    makeSession = <T extends SessionData>(host: SessionHost, state: SessionInternals) =>
      new Session<T>(host, state);
  }

  /** Sessions are made by the core; handlers receive them from the middleware. */
  private constructor(host: SessionHost, state: SessionInternals) {
    this.#host = host;
    this.#state = state;
  }

  /**
   * The session id. A session that is not stored yet gets its id on first
   * access; it reaches the client only if the handler writes something.
   * Treat it as a secret: it is the key to the session.
   */
  get id(): string {
    return this.#state.id ??= generateId();
  }

  /** The user this session is logged in as (`logIn()`), or `undefined`. */
  get userId(): string | undefined {
    return this.#state.userId;
  }

  /**
   * Logs the user in: gives the session a new id (so an id planted before
   * login is worthless: OWASP Session Management Cheat Sheet, "Renew the
   * Session ID After Any Privilege Level Change"), deletes the old record,
   * keeps the data, and binds the session to `userId`, so it appears in
   * `sessionsOfUser()` and can be revoked from elsewhere. Logging in again
   * (as the same or another user) does the same.
   *
   * Works on every store. Listing and ending the user's sessions elsewhere
   * (`sessionsOfUser()`, `revoke()`, `logOutEverywhere()`) need a store with
   * a per-user index: every store of this package but `CookieStore`. With
   * `maxSessionsPerUser`, a user at the limit either loses their oldest
   * session or is refused (`onSessionLimit`).
   *
   * @param userId The user's id: a non-empty string of at most 256 UTF-16 code units, well-formed Unicode (use your own stable id, not an email address that can change).
   * @param options `details`: what to show about this login in the list of sessions: JSON data of at most {@linkcode MAX_DETAILS_BYTES} bytes.
   * @throws {TypeError} (rejects) for a bad `userId` or `details`.
   * @throws {SessionLimitError} (rejects) when the user is at `maxSessionsPerUser` and the limit refuses logins.
   * @throws {SessionStoreError} (rejects) when the store fails.
   */
  async logIn(userId: string, options: LogInOptions = {}): Promise<void> {
    if (!isUserId(userId)) throw new TypeError(`Invalid userId for logIn(): ${USER_ID_RULE}`);
    const details = options?.details;
    let json: string | undefined;
    if (details !== undefined) {
      if (typeof details !== "object" || details === null || Array.isArray(details)) {
        throw new TypeError('Invalid "details" for logIn(): expected a plain object of JSON data');
      }
      try {
        assertJson(details, "details", "details", undefined);
      } catch (error) {
        const why = (error as Error).message.replace(/^Cannot set session key "details": /, "");
        throw new TypeError(`Invalid "details" for logIn(): ${why}`);
      }
      json = JSON.stringify(details);
      const bytes = new TextEncoder().encode(json).length;
      if (bytes > MAX_DETAILS_BYTES) {
        throw new TypeError(
          `Invalid "details" for logIn(): ${bytes} bytes of JSON, over the ${MAX_DETAILS_BYTES} allowed ` +
            "(every session of the user carries its own copy; keep a short summary)",
        );
      }
    }
    const state = this.#state;
    await this.#host.logIn(state, userId);
    state.stored = false;
    state.key = undefined;
    state.meta = undefined;
    state.userId = userId;
    state.details = json === undefined ? undefined : JSON.parse(json);
    state.id = this.#host.newId(userId);
  }

  /** Logs out: the same as `destroy()` (the session leaves its user's list at once). */
  logOut(callback?: SessionCallback): Promise<void> {
    return this.destroy(callback);
  }

  /**
   * The live sessions of the user this session is logged in as, this one
   * marked `current` (listed even before its record is saved); `[]` when no
   * user is logged in. Costs one store call, O(sessions of that user).
   *
   * @throws {TypeError} (rejects) when the store keeps no per-user index (`CookieStore`, or a store without `listByUser`).
   * @throws {SessionStoreError} (rejects) when the store fails.
   */
  sessionsOfUser(): Promise<UserSessionInfo[]> {
    return this.#host.sessionsOfUser(this.#state);
  }

  /**
   * Ends one session of this user, named by the `handle` a list gave. Ending
   * this very session is `destroy()`. The ended session's next request is a
   * fresh, logged-out session; a request of it still running fails to save
   * with a `SessionConflictError` (409), as after any logout.
   *
   * @returns `true` when a live session of this user had that handle.
   * @throws {TypeError} (rejects) when the store keeps no per-user index (`CookieStore`, or a store without `listByUser`).
   * @throws {SessionStoreError} (rejects) when the store fails.
   */
  async revoke(handle: string): Promise<boolean> {
    if (typeof handle !== "string") return false;
    const state = this.#state;
    if (state.userId === undefined) return false;
    if (state.id !== undefined && handle === this.#host.handleOf(state)) {
      await this.destroy();
      return true;
    }
    return (await this.#host.revokeOthers(state, handle)) > 0;
  }

  /**
   * Logs this user out of every session: the others at once, and this one
   * too unless `keepCurrent` (e.g. after a password change: "log out
   * everywhere else").
   *
   * @param options `keepCurrent`: keep this session logged in (default `false`).
   * @returns How many sessions were ended, this one included.
   * @throws {TypeError} (rejects) when the store keeps no per-user index (`CookieStore`, or a store without `listByUser`).
   * @throws {SessionStoreError} (rejects) when the store fails.
   */
  async logOutEverywhere(options: { keepCurrent?: boolean } = {}): Promise<number> {
    const state = this.#state;
    if (state.userId === undefined) return 0;
    let ended = await this.#host.revokeOthers(state, null);
    if (options?.keepCurrent !== true) {
      await this.destroy();
      ended++;
    }
    return ended;
  }

  /** True until the session has a stored record that the client presented. */
  get isNew(): boolean {
    return !this.#state.stored;
  }

  /**
   * Returns the value of `key`, or `undefined`. Flash values set by the
   * previous request are readable here too (data keys of the same name win).
   *
   * An object or array stored under a data key and returned here may be
   * changed in place: the change is saved when the request ends, as if
   * `set(key, value)` had been called then (and the value is checked then, as
   * `set` checks it). Flash values are read-only: they are gone after this
   * request whatever happens to them.
   */
  get<K extends keyof T & string>(key: K): T[K] | undefined {
    const state = this.#state;
    // Values are never undefined in `data` (setting undefined deletes), so one lookup answers both questions.
    const value = state.data.get(key);
    if (value === undefined) return state.incomingFlash?.get(key) as T[K] | undefined;
    if (isMutable(value) && !state.read?.has(key) && !state.set?.has(key)) {
      (state.read ??= new Map()).set(key, JSON.stringify(value));
    }
    return value as T[K];
  }

  /**
   * Sets `key` to a JSON value (setting `undefined` deletes the key). What is
   * saved is the value as it is when the request ends: an object changed
   * after `set` is saved with its changes, and checked again then.
   *
   * @throws {TypeError} for a reserved key (`__proto__`, `constructor`,
   * `prototype`) or a value that does not survive a JSON round trip unchanged:
   * `undefined` inside objects, functions, class instances (`Date`, `Map`),
   * `NaN`, `Infinity`, `-0`, symbol keys, arrays with holes or extra
   * properties, cycles, or nesting deeper than {@linkcode MAX_DEPTH}.
   */
  set<K extends keyof T & string>(key: K, value: T[K]): this {
    assertKey(key, "set");
    if (value === undefined) {
      this.delete(key);
      return this;
    }
    assertJson(value, key, key, undefined);
    const state = this.#state;
    state.data.set(key, value);
    (state.set ??= new Map()).set(key, value);
    state.deleted?.delete(key);
    return this;
  }

  /** Whether `key` has a value (including a flash value from the previous request). */
  has(key: keyof T & string): boolean {
    return this.#state.data.has(key) || (this.#state.incomingFlash?.has(key) ?? false);
  }

  /** Deletes `key`. Returns whether it had a value. */
  delete(key: keyof T & string): boolean {
    const state = this.#state;
    if (!state.data.delete(key)) return false;
    state.set?.delete(key);
    (state.deleted ??= new Set()).add(key);
    return true;
  }

  /** Deletes every key. The session (and its id) stays. */
  clear(): void {
    const state = this.#state;
    state.data.clear();
    state.set = undefined;
    state.deleted = undefined;
    state.cleared = true;
  }

  /** The keys that have values, flash values included. */
  keys(): string[] {
    const keys = [...this.#state.data.keys()];
    for (const key of this.#state.incomingFlash?.keys() ?? []) {
      if (!this.#state.data.has(key)) keys.push(key);
    }
    return keys;
  }

  /**
   * Sets a value that the *next* request can read with `get(key)`, and no
   * request after it. It survives a redirect: the typical "Saved!" message.
   */
  flash<K extends keyof T & string>(key: K, value: T[K]): this {
    assertKey(key, "flash");
    assertJson(value, key, key, undefined);
    (this.#state.outgoingFlash ??= new Map()).set(key, value);
    return this;
  }

  /**
   * This session's own lifetime, as `setLifetime()` set it: seconds, `null`
   * for a browser-session cookie, or `undefined` when it follows the
   * configured `idleTimeout` and `absoluteTimeout`.
   */
  get lifetime(): number | null | undefined {
    const ms = this.#state.lifetimeMs;
    return typeof ms === "number" ? ms / 1000 : ms;
  }

  /**
   * Gives this session a lifetime of its own, kept with it for its later
   * requests (a "remember me" choice at login).
   *
   * - A number of seconds: the session expires after that long without a
   *   request (its own idle timeout), and its cookie persists that long. The
   *   lifetime is honoured even where it exceeds the configured timeouts: the
   *   absolute deadline moves out to at least `seconds` from now, never
   *   silently capped (only a lifetime longer than a `Date` can count,
   *   8,640,000,000,000 seconds, is kept as that longest one: never ending).
   *   It still ends at that deadline however active the session is (OWASP
   *   Session Management Cheat Sheet, "Absolute Timeout").
   * - `null`: a browser-session cookie, sent without `Max-Age`, which the
   *   browser drops when it closes (RFC 6265bis, section 5.6.2); the
   *   configured timeouts still end the session on the server.
   *
   * @param seconds The lifetime in seconds (a positive number), or `null`.
   * @returns The session.
   * @throws {TypeError} for anything else.
   *
   * @example Remember me for 30 days
   * ```ts
   * import { SessionManager } from "./core.ts";
   *
   * const sessions = new SessionManager({ secret: "a-secret-of-at-least-32-bytes-long!" });
   * const session = await sessions.load({ cookie: null, https: true });
   * session.set("user", "ada").setLifetime(30 * 86_400);
   * const setCookie = await sessions.commit(session);
   * console.log(setCookie?.includes("Max-Age=2592000")); // true
   * ```
   */
  setLifetime(seconds: number | null): this {
    if (seconds !== null && (typeof seconds !== "number" || !Number.isFinite(seconds) || seconds <= 0)) {
      throw new TypeError("Invalid session lifetime: expected a positive number of seconds, or null");
    }
    const state = this.#state;
    state.lifetimeMs = seconds === null ? null : durationMs(seconds);
    state.lifetimeChanged = true;
    return this;
  }

  /**
   * Slides the idle deadline now: the record is rewritten with a fresh
   * deadline and the cookie sent again when the request ends, even if the
   * touch rule (half an idle window) would not yet do it.
   */
  touch(): this {
    this.#state.touched = true;
    return this;
  }

  /**
   * Checks the values changed in place so far, as `set()` would. There is no
   * early write: every change is written when the response starts, before any
   * byte of it leaves, which is what express-session apps call `save()` for
   * (a redirect that cannot outrun the write). For express-session code:
   * `save(callback)` calls back after the check, with its error if any.
   *
   * @param callback Optional, for express-session code; given, errors go to it rather than to the returned promise.
   * @throws {TypeError} (rejects) when a value was changed into something that is not JSON data.
   */
  save(callback?: SessionCallback): Promise<void> {
    const state = this.#state;
    return withCallback(Promise.resolve().then(() => settleChanges(state)), callback);
  }

  /**
   * Reads the stored record again, dropping this request's changes. A new
   * session just drops its changes.
   *
   * @param callback Optional, for express-session code; given, errors go to it rather than to the returned promise.
   * @throws {Error} (rejects) when the record was deleted or has expired meanwhile.
   * @throws {SessionStoreError} (rejects) when the store fails.
   */
  reload(callback?: SessionCallback): Promise<void> {
    const state = this.#state;
    const run = async () => {
      if (state.stored && state.key !== undefined) {
        if (!(await this.#host.reload(state))) {
          throw new Error("Cannot reload the session: its record was deleted or has expired");
        }
        return;
      }
      state.data.clear();
      state.set = undefined;
      state.deleted = undefined;
      state.cleared = false;
      state.outgoingFlash = undefined;
      state.read = undefined;
    };
    return withCallback(run(), callback);
  }

  /**
   * Gives the session a new id, keeps its data, and deletes the old record at
   * once. Call it when the user logs in or gains privileges, so an id planted
   * before login (session fixation) is worthless (OWASP Session Management
   * Cheat Sheet, "Renew the Session ID After Any Privilege Level Change").
   * Its lifetime (`setLifetime()`) stays with it.
   *
   * With a callback, it is express-session's `regenerate(callback)`, and
   * does what that does: the new session starts empty (apps written for
   * express-session rely on it, e.g. to log out, and Passport copies back
   * what it keeps).
   *
   * @param callback Optional, for express-session code; given, errors go to it rather than to the returned promise.
   * @throws {SessionStoreError} (rejects) when the store fails to delete the old record.
   * @throws {SessionConflictError} (rejects; the promise form) when another request ended the session
   * (logout, `revoke()`, `logOutEverywhere()`) or it expired while this one ran: the session is then
   * forgotten (logged out), never brought back under a new id. The check reads the record once more
   * (so an end that lands between that read and the delete is not seen: docs/lifecycle.md).
   */
  regenerate(callback?: SessionCallback): Promise<void> {
    const state = this.#state;
    const run = async () => {
      if (state.stored && state.key !== undefined) {
        if (callback !== undefined) {
          await this.#host.deleteRecord(state.key);
        } else if (!(await this.#host.deleteLiveRecord(state.key))) {
          // Ended by another request (logout, revoke, log out everywhere) or expired while this one ran:
          // carrying its values (and its user) into a new record would bring it back.
          this.#forget();
          throw new SessionConflictError();
        }
      }
      state.stored = false;
      state.key = undefined;
      state.meta = undefined;
      if (callback !== undefined) {
        this.clear();
        state.userId = undefined;
        state.details = undefined;
      }
      state.id = this.#host.newId(state.userId);
    };
    return withCallback(run(), callback);
  }

  /**
   * Deletes the stored record at once, forgets every value, and clears the
   * cookie when the response is sent. Writing afterwards starts a new session
   * with a new id.
   *
   * @param callback Optional, for express-session code; given, errors go to it rather than to the returned promise.
   * @throws {SessionStoreError} (rejects) when the store fails to delete the record.
   */
  destroy(callback?: SessionCallback): Promise<void> {
    return withCallback(this.#destroy(), callback);
  }

  async #destroy(): Promise<void> {
    const state = this.#state;
    if (state.stored && state.key !== undefined) await this.#host.deleteRecord(state.key);
    this.#forget();
  }

  /** Forgets everything of this session: no record, no id, no values, no user. */
  #forget(): void {
    const state = this.#state;
    state.stored = false;
    state.key = undefined;
    state.meta = undefined;
    state.id = undefined;
    state.data.clear();
    state.set = undefined;
    state.deleted = undefined;
    state.cleared = false;
    state.incomingFlash = undefined;
    state.outgoingFlash = undefined;
    state.read = undefined;
    state.lifetimeMs = undefined;
    state.lifetimeChanged = false;
    state.touched = false;
    state.userId = undefined;
    state.details = undefined;
  }

  /**
   * The data as a plain object (no id: the id is a secret and stays out of
   * logs). Object and array values are copies: changing them changes nothing
   * in the session (change values through `get()` or `set()`).
   */
  toJSON(): Partial<T> {
    const out = Object.create(null);
    for (const [key, value] of this.#state.incomingFlash ?? []) out[key] = copy(value);
    for (const [key, value] of this.#state.data) out[key] = copy(value);
    return out;
  }

  /** Keeps the id out of `console.log` under Node and Deno. */
  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return `Session { keys: ${JSON.stringify(this.keys())} }`;
  }

  /** Keeps the id out of `console.log` under Deno. */
  [Symbol.for("Deno.customInspect")](): string {
    return `Session { keys: ${JSON.stringify(this.keys())} }`;
  }
}

/**
 * `run`, or, with a Node-style callback, `run` reported to the callback (and a
 * promise that never rejects, so an app that only passes a callback never
 * sees an unhandled rejection). An error the callback itself throws is the
 * app's: it is thrown again outside the promise, as an uncaught exception,
 * which is what express-session's callbacks (called from the store's own
 * callbacks) do.
 */
function withCallback(run: Promise<void>, callback: SessionCallback | undefined): Promise<void> {
  if (callback === undefined) return run;
  if (typeof callback !== "function") {
    run.catch(() => {});
    throw new TypeError("Invalid session callback: expected a function");
  }
  return run.then(() => callback(), (error) => callback(error)).then(undefined, throwUncaught);
}

/** Throws `error` from a task of its own: an uncaught exception, not a rejection. */
function throwUncaught(error: unknown): void {
  queueMicrotask(() => {
    throw error;
  });
}

/** The core's view of a session. Internal: not exported from the package. */
export function sessionInternals(session: Session): SessionInternals {
  return readInternals(session);
}

/** Makes a session; only the core does. Internal: not exported from the package. */
export function newSession<T extends SessionData>(host: SessionHost, state: SessionInternals): Session<T> {
  return makeSession<T>(host, state);
}

/**
 * Brings the change a request made up to date before it is saved: values
 * that `get()` handed out and that were changed in place become sets of
 * their keys, and every object value about to be stored (set, changed in
 * place, or flashed) is checked again, so what is stored is always what
 * passed the check.
 *
 * @throws {TypeError} when a value was changed into something that is not JSON data.
 */
export function settleChanges(state: SessionInternals): void {
  if (state.read !== undefined) {
    for (const [key, text] of state.read) {
      if (state.set?.has(key)) continue;
      const value = state.data.get(key);
      // Deleted or cleared since it was read: the deletion is the change.
      if (value === undefined) continue;
      // Checked before it is serialised: a value changed into a cycle or a 20,000-deep nest gets the
      // TypeError that set() gives, not JSON.stringify's own errors.
      assertJson(value, key, key, undefined);
      if (JSON.stringify(value) !== text) (state.set ??= new Map()).set(key, value);
    }
  }
  if (state.set !== undefined) {
    for (const [key, value] of state.set) if (isMutable(value)) assertJson(value, key, key, undefined);
  }
  if (state.outgoingFlash !== undefined) {
    for (const [key, value] of state.outgoingFlash) {
      if (isMutable(value)) assertJson(value, key, key, undefined);
    }
  }
}
