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
  COOKIE_BUDGET,
  generateId,
  generateIdInGroup,
  maxCookieValueLength,
  sessionHandle,
  SignedToken,
  storageKey,
  UnsignedToken,
  USER_KEY_PREFIX,
  userKey,
} from "./_crypto.ts";
import { isPromiseLike, registerCommitNow, registerLoadNow } from "./_lifecycle.ts";
import { rejectUnknownOptions, withoutUnsetEntries } from "./_options.ts";
import type { CookieToken, Presented } from "./_crypto.ts";
import { SEALING } from "./_seal.ts";
import type { Opened, Sealer, SealingStore } from "./_seal.ts";
import {
  CorruptRecordError,
  SessionConflictError,
  SessionLimitError,
  SessionStoreError,
  SessionTooLargeError,
  StoreContractError,
} from "./errors.ts";
import type { StoreOperation } from "./errors.ts";
import {
  isAllowedKey,
  isUserId,
  newSession,
  Session,
  sessionInternals,
  settleChanges,
  USER_ID_RULE,
} from "./session.ts";
import type { SessionData, SessionHost, SessionInternals, UserSessionInfo } from "./session.ts";
import { isSessionRecord, NEVER } from "./store.ts";
import { after, durationMs } from "./_time.ts";
import type {
  MaybePromise,
  SessionMeta,
  SessionRecord,
  Store,
  StoreWrite,
  UserSessionEntry,
  WriteResult,
} from "./store.ts";
import { MemoryStore } from "./stores/memory.ts";

export type { CookieOptions, SameSite } from "./_cookie.ts";

/** Why the core ignored a presented cookie or a stored record. */
export type SecurityEventType =
  /** The cookie value is not a well-formed id (or signed id). */
  | "malformed-cookie"
  /** The signature did not verify with any secret. */
  | "bad-signature"
  /**
   * A correctly formed (and signed) id of which the store has no live record: never stored, deleted, or
   * expired (stores judge expiry at the time the core hands them, so an expired record usually reads so).
   */
  | "unknown-session"
  /** A record the store (or a sealed cookie) answered past its idle or absolute expiry: deleted. */
  | "expired-session"
  /** A stored record that cannot be parsed (the store threw `CorruptRecordError`): deleted. */
  | "corrupt-record"
  /** A stored record carrying a reserved key (`__proto__`, ...): the key was dropped. */
  | "forbidden-key"
  /** A cookie value longer than the 4096-byte budget: dropped without being read. */
  | "oversized-cookie"
  /** A sealed cookie (`CookieStore`) that the store's `isRevoked` check refused. */
  | "revoked-session";

/** A security-relevant event. Carries the session's storage key, never its id. */
export interface SecurityEvent {
  /** What happened. */
  type: SecurityEventType;
  /**
   * The session's storage key (`s1_` and the base64url SHA-256 of the id):
   * the same in every process and the key the store keeps the record under,
   * so events can be correlated across instances and with the store, yet it
   * cannot be turned back into a cookie. Absent when the cookie held no
   * usable id.
   */
  idHash?: string;
}

/**
 * Options shared by the core and every adapter. Durations are in seconds. A
 * deadline never passes the last time a `Date` can hold (the year 275760): a
 * longer timeout or lifetime counts as never ending, so every deadline stays
 * one a store can keep.
 */
export interface SessionOptions {
  /**
   * Where records live. Default: a {@linkcode MemoryStore} (one process only;
   * use a persistent store in production). A `CookieStore` keeps each record
   * sealed in the session cookie instead, with no `secret`.
   */
  store?: Store;
  /**
   * Secret(s) for signing the cookie with HMAC-SHA-256, each at least 32 bytes.
   * With a list, the first signs and all verify, so secrets can be rotated:
   * a cookie signed with an older secret is re-signed with the first.
   * Without a secret ids are not signed (still random, format-checked and
   * looked up strictly); a warning says so once. In a list, an entry after
   * the first may be `undefined` (an old secret's environment variable not
   * set) and is left out; an undefined first entry, or `secret: undefined`,
   * is refused.
   */
  secret?: string | readonly (string | undefined)[];
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
   * Believe `X-Forwarded-Proto` for deciding whether the request was https
   * (and so whether the cookie gets `Secure`). Only for apps behind a proxy
   * that sets it. Default `false`. This is the only proxy setting the
   * session middleware follows: the framework's own (Express's
   * `trust proxy`, Koa's `app.proxy`, Oak's `proxy`) does not change it.
   */
  trustProxy?: boolean;
  /**
   * Seconds a store call may take before it fails with a `SessionStoreError`
   * (503). Default 5, at most 2147483 (a timer's limit, about 24.8 days).
   * Each write carries the moment it runs out (`StoreWrite.deadline`):
   * stores that support it (`RedisStore`, `WebdisStore`, `SqliteStore`) make
   * their backend refuse the write after it, so a write answered 503 is not
   * applied later; with any other store the outcome of a timed-out write is
   * unknown, and its error says so.
   */
  storeTimeout?: number;
  /** The clock, in milliseconds since the epoch. Default `Date.now`. Inject one in tests. */
  now?: () => number;
  /**
   * Called for every {@linkcode SecurityEvent}. Errors it throws, and the
   * rejection of the promise an async hook returns, are ignored.
   */
  onSecurityEvent?: (event: SecurityEvent) => void;
  /**
   * The most live sessions one user may have at once (`Session.logIn()`), a
   * positive integer; default `null`, no limit. Needs a store with a
   * per-user index (`Store.listByUser`). Checked at each login: two logins
   * of one user at the very same moment may both pass, leaving one session
   * over the limit until the next login.
   */
  maxSessionsPerUser?: number | null;
  /**
   * What a login does when the user already has `maxSessionsPerUser`
   * sessions: `"revoke-oldest"` (default) ends the ones created longest ago,
   * `"refuse"` rejects the login with a `SessionLimitError` (409) and leaves
   * the session as it was.
   */
  onSessionLimit?: "revoke-oldest" | "refuse";
}

/** What an adapter knows about a request: facts, never decisions. */
export interface RequestFacts {
  /** The raw `Cookie` header, if any. */
  cookie: string | null | undefined;
  /**
   * Whether the connection to this server itself is TLS (not what a proxy
   * header or the framework's proxy setting says), or a function that tells:
   * it is called only when a cookie is written, so a getter that costs
   * something is not paid on requests that send no cookie.
   */
  https: boolean | (() => boolean);
  /** The raw `X-Forwarded-Proto` header; read by the core only with `trustProxy`. */
  forwardedProto?: string | null;
}

/**
 * What an adapter knows about how the handler ended: facts, never decisions.
 * The core decides from them whether the request failed (see
 * {@linkcode SessionManager.commit}).
 */
export interface ResponseFacts {
  /** The handler threw, rejected, or passed an error on (`next(err)`, Hono's `c.error`). */
  threw?: boolean;
  /**
   * The response's HTTP status, when it is known. 500 or more, or 0 (a
   * network error: `Response.error()`), is a failed request.
   */
  status?: number;
}

/** Every `SessionOptions` name: any other is refused, with the nearest of these suggested. */
export const SESSION_OPTION_NAMES: readonly string[] = [
  "store",
  "secret",
  "cookie",
  "idleTimeout",
  "absoluteTimeout",
  "trustProxy",
  "storeTimeout",
  "now",
  "onSecurityEvent",
  "maxSessionsPerUser",
  "onSessionLimit",
];

/** What to say for option names users bring from other session libraries. */
const OPTION_HINTS: Readonly<Record<string, string>> = {
  maxAge: 'the session lifetime is "idleTimeout" and "absoluteTimeout" (seconds); one session\'s own is ' +
    "session.setLifetime(seconds)",
  ttl: 'use "idleTimeout" (seconds)',
  name: 'the cookie name is "cookie.name"',
  key: 'the cookie name is "cookie.name"',
  keys: 'use "secret" (a string or a list of strings)',
  proxy: 'use "trustProxy"',
  rolling: 'sessions slide by themselves ("idleTimeout"); session.touch() slides one now',
};

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
  return durationMs(value);
}

/**
 * The longest `storeTimeout`, in seconds: timers take a signed 32-bit number of milliseconds, and Node, Deno
 * and Bun run a longer one after about 1 ms, which would fail every store call that did not answer at once.
 */
const MAX_STORE_TIMEOUT = 2_147_483;

function readSecrets(secret: unknown): string[] | undefined {
  if (secret === undefined) return undefined;
  if (!Array.isArray(secret) && typeof secret !== "string") {
    throw optionError("secret", "must be a string or a non-empty list of strings");
  }
  const secrets = typeof secret === "string" ? [secret] : withoutUnsetEntries<unknown>(
    secret,
    (detail) => optionError("secret", detail),
  );
  if (secrets.length === 0) throw optionError("secret", "must be a string or a non-empty list of strings");
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
  return secrets as string[];
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

/**
 * What a store call does, as a function of its own, so no closure is made per request. `arg` is the call's
 * other argument: the core's time for a read, the write for a write.
 */
type StoreCall<R, A> = (store: Store, key: string, arg: A) => MaybePromise<R>;
const storeGet: StoreCall<SessionRecord | undefined, number> = (store, key, now) => store.get(key, now);
const storeSet: StoreCall<WriteResult, StoreWrite> = (store, key, write) => store.set(key, write);
const storeDelete: StoreCall<void, undefined> = (store, key) => store.delete(key);
const storeListByUser: StoreCall<UserSessionEntry[], number> = (store, userId, now) =>
  store.listByUser!(userId, now);

/**
 * The prototype of every update's `write.set`: an empty, frozen object that inherits nothing, so `set`
 * inherits no key, as the store contract says. `Object.create(null)` would give the same guarantee, but V8
 * keeps such objects in dictionary mode: making `set` this way and applying it in a store took 22–24 ns
 * against 66–72 ns (in process, Deno, issue 17).
 */
const ChangedValues = function () {} as unknown as new () => Record<string, unknown>;
ChangedValues.prototype = Object.freeze(Object.create(null));

/**
 * The records of sessions sealed into the cookie (a `CookieStore`): nothing on
 * the server. Writes succeed at once and deletes have nothing to delete; the
 * cookie itself is written (or cleared) by the core.
 */
const SEALED_RECORDS: Store = {
  get: () => undefined,
  set: () => "written",
  delete: () => {},
};

/** Whether the request was https: a boolean, or the adapter's function that tells. */
type Https = boolean | (() => boolean);

/** What the core makes of a read that threw {@linkcode CorruptRecordError}. */
const CORRUPT: unique symbol = Symbol("corrupt record");
type ReadAnswer = SessionRecord | undefined | null | typeof CORRUPT;

/** Whether the request was https, asking the adapter's function once if it gave one. */
function isHttps(state: SessionInternals): boolean {
  if (typeof state.https === "function") state.https = state.https();
  return state.https;
}

/** A promise of a value that may be one already: the public calls are async whatever the store does. */
function settled<R>(run: () => MaybePromise<R>): Promise<R> {
  try {
    const result = run();
    return isPromiseLike(result) ? result : Promise.resolve(result);
  } catch (error) {
    return Promise.reject(error);
  }
}

/**
 * A session's state with no values and nothing pending: for the record a
 * presented cookie names (filled in by the caller), or for a fresh session.
 * One literal, so every state has the same shape.
 */
function blankState(
  https: boolean | (() => boolean),
  presented: Presented | undefined,
  data: Map<string, unknown> = new Map(),
): SessionInternals {
  return {
    id: presented?.id,
    key: presented?.key,
    stored: presented !== undefined,
    hadCookie: presented !== undefined,
    rotated: presented?.rotated ?? false,
    https,
    data,
    incomingFlash: undefined,
    outgoingFlash: undefined,
    set: undefined,
    deleted: undefined,
    cleared: false,
    meta: undefined,
    read: undefined,
    lifetimeMs: undefined,
    lifetimeChanged: false,
    touched: false,
    userId: undefined,
    details: undefined,
  };
}

/** `userId` when it is one `logIn()` accepts; a `TypeError` otherwise. */
function checkedUserId(userId: unknown): string {
  if (!isUserId(userId)) throw new TypeError(`Invalid userId: ${USER_ID_RULE}`);
  return userId;
}

/** Puts the session's user (and the details of its login) into a record's metadata. */
function withUser(meta: SessionMeta, state: SessionInternals): void {
  if (state.userId === undefined) return;
  meta.userId = state.userId;
  if (state.details !== undefined) meta.details = state.details;
}

/** A short description of a value a store answered, for contract errors (never the value itself). */
function shape(value: unknown): string {
  return value === null
    ? "null"
    : Array.isArray(value)
    ? "an array"
    : typeof value === "string"
    ? `a string of ${value.length} characters`
    : typeof value;
}

/**
 * Whether a request failed, from what its adapter reports: the handler threw
 * (or passed an error on), or the response is a server error (5xx) or a
 * network error (status 0, `Response.error()`). The one rule for every
 * framework; docs/adapters.md states it.
 */
function failed(response: ResponseFacts | undefined): boolean {
  if (response === undefined) return false;
  const status = response.status;
  return response.threw === true || status === 0 || (status !== undefined && status >= 500);
}

/** Drops a rejection on purpose (an async security-event hook's). */
function ignore(): void {}

/**
 * Loads and commits sessions. Build one per app (it validates every option
 * at once and throws a `TypeError` naming the first bad one), then call
 * `load` before the handler and `commit` after it, for every request.
 *
 * The manager owns the session cookie: what it carries (the id, signed with
 * the first secret; or, with a `CookieStore`, the whole record sealed with
 * AES-256-GCM, chosen once here), its 4096-byte budget, and every policy:
 * what a failed request is, when to write, when to send a cookie. Stores only
 * see storage keys derived from ids (see {@linkcode Store}).
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
 *   let response: Response;
 *   try {
 *     const visits = (session.get("visits") ?? 0) + 1;
 *     session.set("visits", visits);
 *     response = new Response(`visit ${visits}`);
 *   } catch (error) {
 *     await sessions.commit(session, { threw: true }); // saves nothing
 *     throw error;
 *   }
 *   const setCookie = await sessions.commit(session, { status: response.status });
 *   if (setCookie) response.headers.append("set-cookie", setCookie);
 *   return response;
 * }
 *
 * const first = await handle(new Request("http://localhost/"));
 * console.log(await first.text()); // "visit 1"
 * const cookie = first.headers.get("set-cookie")!.split(";")[0];
 * const second = await handle(new Request("http://localhost/", { headers: { cookie } }));
 * console.log(await second.text()); // "visit 2"
 * ```
 */
// deno-lint-ignore no-explicit-any
export class SessionManager<T extends SessionData = Record<string, any>> {
  /** The store sessions are kept in. */
  readonly store: Store;
  #cookie: CookieWriter;
  /** How the cookie carries an id: signed or not. Unused when records are sealed into the cookie. */
  #token: CookieToken | undefined;
  /** Where the core reads and writes records: `store`, or nothing at all when they are sealed into the cookie. */
  #records: Store;
  // The two steps that differ when the record travels sealed in the cookie (a `CookieStore`): chosen once in
  // the constructor, so no request asks which kind of store it has.
  /** Finds the session the cookie values present. */
  #find: (values: string[], https: Https) => MaybePromise<Session<T>>;
  /** The `Set-Cookie` value after a write; `resend`: the cookie's deadline moved or its key rotated. */
  #written: (
    state: SessionInternals,
    record: SessionRecord,
    now: number,
    resend: boolean,
  ) => MaybePromise<string | undefined>;
  /** Reads the record of a loaded session again (`reload()`): from the store, or from its sealed cookie. */
  #reread: (state: SessionInternals, key: string, now: number) => MaybePromise<ReadAnswer>;
  #reportOversized: () => void;
  /** The sealed cookie value each loaded session came from (`CookieStore` only), for `reload()`. */
  #sealedValues = new WeakMap<SessionInternals, string>();
  #maxValueLength: number;
  #idleMs: number | null;
  #absoluteMs: number | null;
  #trustProxy: boolean;
  #timeoutMs: number;
  /** What a timed-out write's error says about its outcome, from the store's `refusesLateWrites`. */
  #lateWriteOutcome: string;
  #now: () => number;
  /** Whether `#now` is the real clock (`Date.now`), so a time it gave can stand for `Date.now()`. */
  #realClock: boolean;
  #onSecurityEvent: ((event: SecurityEvent) => void) | undefined;
  #host: SessionHost;
  /** Whether the store keeps a per-user index (`listByUser`). */
  #indexesUsers: boolean;
  /** Whether ids of a user's sessions must share a storage key group (`groupsUserSessions`). */
  #groupsUsers: boolean;
  #maxSessionsPerUser: number | null;
  #refuseOverLimit: boolean;

  static {
    // The load and commit that answer without a promise when the store does (src/_lifecycle.ts): the same lifecycle.
    registerCommitNow((manager, session, response) => manager.#commit(session, response));
    registerLoadNow((manager, request) => manager.#load(request));
  }

  /** Validates `options`; throws a `TypeError` that names the first bad option. */
  constructor(options: SessionOptions = {}) {
    if (typeof options !== "object" || options === null) {
      throw new TypeError("Invalid session options: expected an object");
    }
    rejectUnknownOptions(options, SESSION_OPTION_NAMES, "", OPTION_HINTS);
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
    if (typeof timeout !== "number" || !(timeout > 0) || timeout > MAX_STORE_TIMEOUT) {
      throw optionError(
        "storeTimeout",
        `must be a positive number of seconds, at most ${MAX_STORE_TIMEOUT} (about 24.8 days: a timer's limit)`,
      );
    }
    this.#timeoutMs = timeout * 1000;
    if (options.now !== undefined && typeof options.now !== "function") {
      throw optionError("now", "must be a function returning milliseconds since the epoch");
    }
    this.#now = options.now ?? Date.now;
    this.#realClock = this.#now === Date.now;
    // No clock for the default store: the core hands it its time on every call (storeTime).
    const store: Store = options.store ?? new MemoryStore();
    if (
      typeof store !== "object" || store === null || typeof store.get !== "function" ||
      typeof store.set !== "function" || typeof store.delete !== "function"
    ) {
      throw optionError("store", "must implement get, set and delete (see docs/stores.md)");
    }
    this.store = store;
    this.#lateWriteOutcome = store.refusesLateWrites === true
      ? "the store refuses the write once this deadline has passed: it is not applied later"
      : "the write's outcome is unknown: the store may still apply it later";
    this.#trustProxy = options.trustProxy ?? false;
    this.#onSecurityEvent = options.onSecurityEvent;
    this.#maxValueLength = maxCookieValueLength(this.#cookie.name);
    this.#reportOversized = () => this.#report("oversized-cookie");
    // The kind of cookie is chosen here, once: no request asks which kind it has.
    const sealing = (store as Partial<SealingStore>)[SEALING];
    if (typeof sealing === "function") {
      if (secrets) {
        throw optionError("secret", "is not used with a CookieStore: its keys seal the cookie; leave it out");
      }
      const sealer = sealing.call(store, this.#cookie.name);
      this.#records = SEALED_RECORDS;
      this.#find = (values, https) =>
        values.length === 0 ? this.#fresh(https) : this.#openSealed(sealer, values, https);
      this.#written = (state, record, now) => this.#sealed(sealer, state, record, now);
      this.#reread = (state, key) => this.#reopen(sealer, state, key);
    } else {
      const token = secrets ? new SignedToken(secrets) : new UnsignedToken();
      if (token.maxLength > this.#maxValueLength) {
        throw optionError(
          "cookie.name",
          `is too long: a cookie's name and value must fit in 4096 bytes (RFC 6265bis, section 5.6)`,
        );
      }
      this.#token = token;
      this.#records = store;
      this.#find = (values, https) => this.#loadFrom(values, 0, https);
      this.#reread = (_state, key, now) => this.#get(key, now);
      this.#written = (state, record, now, resend) =>
        resend ? this.#setCookie(token.write(state.id!), record.meta, now, isHttps(state)) : undefined;
    }
    if (!secrets && !warnedUnsigned && this.#token !== undefined) {
      warnedUnsigned = true;
      console.warn(
        'Session ids are not signed: pass a "secret" option (32+ random bytes) to sign the session cookie',
      );
    }
    this.#indexesUsers = this.#records === store && typeof store.listByUser === "function";
    this.#groupsUsers = this.#indexesUsers && store.groupsUserSessions === true;
    const max = options.maxSessionsPerUser ?? null;
    if (max !== null && (typeof max !== "number" || !Number.isInteger(max) || max < 1)) {
      throw optionError("maxSessionsPerUser", "must be a positive integer, or null for no limit");
    }
    if (max !== null && !this.#indexesUsers) {
      throw optionError(
        "maxSessionsPerUser",
        "needs a store with a per-user index (listByUser); this store keeps none (docs/stores.md)",
      );
    }
    this.#maxSessionsPerUser = max;
    const onLimit = options.onSessionLimit ?? "revoke-oldest";
    if (onLimit !== "revoke-oldest" && onLimit !== "refuse") {
      throw optionError("onSessionLimit", 'must be "revoke-oldest" or "refuse"');
    }
    this.#refuseOverLimit = onLimit === "refuse";
    this.#host = {
      deleteRecord: (key) => settled(() => this.#delete(key)),
      deleteLiveRecord: (key) => this.#deleteLive(key),
      reload: (state) => this.#reload(state),
      newId: (userId) =>
        userId !== undefined && this.#groupsUsers
          ? generateIdInGroup(userKey(userId).slice(USER_KEY_PREFIX.length, USER_KEY_PREFIX.length + 2))
          : generateId(),
      logIn: (state, userId) => this.#logIn(state, userId),
      sessionsOfUser: (state) => this.#sessionsOf(state.userId, state),
      revokeOthers: (state, which) => this.#revoke(state.userId!, which, state),
      handleOf: (state) => state.id === undefined ? undefined : sessionHandle(storageKey(state.id)),
    };
  }

  /**
   * The live sessions of `userId` (see `Session.sessionsOfUser()`), for code
   * outside a request: an admin panel, a support tool. None is `current`.
   *
   * @param userId The user, as given to `Session.logIn()`.
   * @throws {TypeError} (rejects) when the store keeps no per-user index.
   * @throws {SessionStoreError} (rejects) when the store fails.
   */
  sessionsOfUser(userId: string): Promise<UserSessionInfo[]> {
    return settled(() => this.#sessionsOf(checkedUserId(userId), undefined));
  }

  /**
   * Ends the session of `userId` named by `handle` (from
   * {@linkcode sessionsOfUser}), for code outside a request.
   *
   * @returns `true` when a live session of that user had that handle.
   * @throws {TypeError} (rejects) when the store keeps no per-user index.
   * @throws {SessionStoreError} (rejects) when the store fails.
   */
  async revokeSession(userId: string, handle: string): Promise<boolean> {
    return (await this.#revoke(checkedUserId(userId), typeof handle === "string" ? handle : "", undefined)) >
      0;
  }

  /**
   * Ends every session of `userId` (after a password reset, or when an
   * account is closed), for code outside a request. Each ended session's
   * next request is a fresh, logged-out session.
   *
   * @returns How many sessions were ended.
   * @throws {TypeError} (rejects) when the store keeps no per-user index.
   * @throws {SessionStoreError} (rejects) when the store fails.
   */
  logOutEverywhere(userId: string): Promise<number> {
    return settled(() => this.#revoke(checkedUserId(userId), null, undefined));
  }

  /** Whether the session cookie is signed (a `secret` was given; not with a `CookieStore`, which seals it). */
  get signed(): boolean {
    return this.#token instanceof SignedToken;
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
   * signed, unknown to the store or expired give a fresh, empty session (and
   * a {@linkcode SecurityEvent}); they never throw. Several cookies of the
   * session's name are tried in order.
   *
   * @param request What the adapter knows about the request.
   * @returns The session.
   * @throws {SessionStoreError} (rejects) when the store fails or times out.
   * @throws {StoreContractError} (rejects) when the store answers outside its contract.
   */
  load(request: RequestFacts): Promise<Session<T>> {
    return settled(() => this.#load(request));
  }

  /**
   * Saves what the handler changed and returns the `Set-Cookie` value the
   * response needs, or `undefined` when it needs none.
   *
   * A failed request saves nothing and sends no session cookie. A request
   * failed when its handler threw or passed an error on (`response.threw`),
   * or its response is a server error (`response.status` 500 or more): the
   * same rule for every framework. A client error (4xx) is not a failure.
   *
   * Otherwise it writes only when needed: nothing for an untouched new
   * session, nothing for an unchanged session unless its idle deadline has
   * slid by half a window or more. The deadline moves only then (on writes
   * too), and the cookie is sent only when its value or deadline changes.
   * Object values changed in place after `get()` or `set()` are saved as they
   * are now, checked as `set()` checks.
   *
   * @param session The session `load` gave for this request.
   * @param response How the handler ended; omitted, the request succeeded.
   * @returns The `Set-Cookie` value, or `undefined`.
   * @throws {SessionStoreError} (rejects) when the store fails or times out.
   * @throws {SessionConflictError} (rejects) when an overlapping request
   * deleted the session this one is updating (it is not recreated).
   * @throws {StoreContractError} (rejects) when the store answers outside its contract.
   * @throws {TypeError} (rejects) when a value was changed in place into something that is not JSON data.
   * @throws {SessionTooLargeError} (rejects) when a session sealed into its cookie (`CookieStore`) would
   * make a `Set-Cookie` value over 4096 bytes (RFC 6265, section 6.1); nothing is sent.
   */
  commit(session: Session<T>, response?: ResponseFacts): Promise<string | undefined> {
    return settled(() => this.#commit(session, response));
  }

  // The lifecycle below is written once, for stores that answer at once and stores that answer with a
  // promise alike: each step takes a value or a promise (`MaybePromise`) and goes on synchronously when it
  // has a value. A MemoryStore request then costs no microtask and no timer inside the core.

  #load(request: RequestFacts): MaybePromise<Session<T>> {
    let https: boolean | (() => boolean) = request.https;
    if (this.#trustProxy && request.forwardedProto) {
      https = request.forwardedProto.split(",", 1)[0].trim().toLowerCase() === "https";
    }
    const values = readCookieValues(
      request.cookie,
      this.#cookie.name,
      this.#maxValueLength,
      this.#reportOversized,
    );
    return this.#find(values, https);
  }

  /** Tries the cookie values from `index` on; a fresh session when none opens. */
  #loadFrom(values: string[], index: number, https: boolean | (() => boolean)): MaybePromise<Session<T>> {
    for (let i = index; i < values.length; i++) {
      const presented = this.#read(values[i]);
      if (presented === undefined) continue;
      // One clock read per load: the store judges expiry at the time the core checks it at.
      const now = this.#now();
      const answer = this.#get(presented.key, now);
      const next = i + 1;
      if (isPromiseLike(answer)) {
        return answer.then((record) => this.#opened(values, next, https, presented, record, now));
      }
      return this.#opened(values, next, https, presented, answer, now);
    }
    return this.#fresh(https);
  }

  /** The session of a store's answer, or (after deleting what was stale) the next cookie value's. */
  #opened(
    values: string[],
    next: number,
    https: boolean | (() => boolean),
    presented: Presented,
    answer: ReadAnswer,
    now: number,
  ): MaybePromise<Session<T>> {
    const opened = this.#open(presented, answer, https, now);
    if (opened instanceof Session) return opened;
    if (opened === undefined) return this.#loadFrom(values, next, https);
    return opened.then(() => this.#loadFrom(values, next, https));
  }

  /** Reads a record as of `now`: what the store answered, or `CORRUPT` for a record it could not parse. */
  #get(key: string, now: number): MaybePromise<ReadAnswer> {
    let answer: MaybePromise<ReadAnswer>;
    try {
      answer = this.#call("read", storeGet, key, now);
    } catch (error) {
      return corruptOrThrow(error);
    }
    return isPromiseLike(answer) ? answer.then(undefined, corruptOrThrow) : answer;
  }

  /** The cookie value's id and storage key, if it is well formed (and its signature verifies). */
  #read(value: string): Presented | undefined {
    const presented = this.#token!.read(value);
    if (typeof presented !== "string") return presented;
    this.#report(presented === "malformed" ? "malformed-cookie" : "bad-signature");
    return undefined;
  }

  /**
   * Turns what the store answered into a session; `undefined` for an unknown
   * key or a stale record deleted at once, or the pending delete of one.
   */
  #open(
    presented: Presented,
    answer: ReadAnswer,
    https: boolean | (() => boolean),
    now: number,
  ): Session<T> | undefined | Promise<void> {
    const { key } = presented;
    if (answer === undefined || answer === null) {
      this.#report("unknown-session", key);
      return undefined;
    }
    if (answer === CORRUPT) {
      this.#report("corrupt-record", key);
      return this.#deleteStale(key);
    }
    if (!isSessionRecord(answer)) {
      throw new StoreContractError("read", `answered ${shape(answer)}, not a session record or undefined`);
    }
    if (this.#expired(answer.meta, now)) {
      this.#report("expired-session", key);
      return this.#deleteStale(key);
    }
    // The state is made with the record's values: a blank one's empty map would be dropped at once.
    const data = this.#values(answer, presented.key);
    const state = blankState(https, presented, data);
    this.#fill(state, answer, data);
    return newSession<T>(this.#host, state);
  }

  /**
   * Whether a stored record is past its deadlines, or past the configured
   * absolute timeout (so shortening it applies to records already stored),
   * unless the session chose its own lifetime.
   */
  #expired(meta: SessionMeta, now: number): boolean {
    return now >= meta.expiresAt || now >= meta.absoluteExpiresAt ||
      (this.#absoluteMs !== null && typeof meta.lifetimeMs !== "number" &&
        now >= meta.createdAt + this.#absoluteMs);
  }

  /** A stored record's values, as a session holds them; a reserved key is reported and left out. */
  #values(record: SessionRecord, key: string | undefined): Map<string, unknown> {
    const data = new Map<string, unknown>();
    for (const name of Object.keys(record.data)) {
      if (isAllowedKey(name)) data.set(name, record.data[name]);
      else this.#report("forbidden-key", key);
    }
    return data;
  }

  /** Puts a stored record's values (`data`, made by `#values`), flash values and metadata into `state`, with no change pending. */
  #fill(state: SessionInternals, record: SessionRecord, data = this.#values(record, state.key)): void {
    const key = state.key;
    let incomingFlash: Map<string, unknown> | undefined;
    if (record.flash) {
      for (const name of Object.keys(record.flash)) {
        if (!isAllowedKey(name)) {
          this.#report("forbidden-key", key);
          continue;
        }
        (incomingFlash ??= new Map()).set(name, record.flash[name]);
      }
    }
    const { meta } = record;
    state.data = data;
    state.incomingFlash = incomingFlash;
    state.outgoingFlash = undefined;
    state.set = undefined;
    state.deleted = undefined;
    state.cleared = false;
    state.read = undefined;
    state.meta = {
      createdAt: meta.createdAt,
      expiresAt: meta.expiresAt,
      absoluteExpiresAt: meta.absoluteExpiresAt,
    };
    state.lifetimeMs = meta.lifetimeMs;
    state.lifetimeChanged = false;
    state.touched = false;
    state.userId = meta.userId;
    state.details = meta.details;
  }

  /** `Session.reload()`: reads the record of `state` again; `false` when it is gone or expired. */
  async #reload(state: SessionInternals): Promise<boolean> {
    const key = state.key!;
    const now = this.#now();
    const answer = await this.#reread(state, key, now);
    if (answer === undefined || answer === null) return false;
    if (answer === CORRUPT) {
      this.#report("corrupt-record", key);
      await this.#delete(key);
      return false;
    }
    if (!isSessionRecord(answer)) {
      throw new StoreContractError("read", `answered ${shape(answer)}, not a session record or undefined`);
    }
    if (this.#expired(answer.meta, now)) return false;
    // A regenerate or destroy while the read was pending made the record someone else's business.
    if (state.key !== key) return false;
    this.#fill(state, answer);
    return true;
  }

  /**
   * Deletes the record under `key`, answering whether it was live just before (`regenerate()`): a record
   * another request deleted, or one that expired, must not be carried into a new one.
   */
  async #deleteLive(key: string): Promise<boolean> {
    // A sealed cookie (CookieStore) is its own record: nothing on a server to find gone.
    if (this.#records !== this.store) return true;
    const now = this.#now();
    const answer = await this.#get(key, now);
    const live = answer !== undefined && answer !== null && answer !== CORRUPT && isSessionRecord(answer) &&
      !this.#expired(answer.meta, now);
    await this.#delete(key);
    return live;
  }

  /** Deletes an expired or corrupt record: `undefined` when done at once, else the pending delete. */
  #deleteStale(key: string): Promise<void> | undefined {
    const done = this.#delete(key);
    return isPromiseLike(done) ? done : undefined;
  }

  #fresh(https: boolean | (() => boolean)): Session<T> {
    return newSession<T>(this.#host, blankState(https, undefined));
  }

  #commit(session: Session<T>, response: ResponseFacts | undefined): MaybePromise<string | undefined> {
    if (failed(response)) return undefined;
    const state = sessionInternals(session);
    settleChanges(state);
    const now = this.#now();
    if (state.stored) return this.#commitStored(state, now);

    // A logged-in session is stored even with no values: the login is its content.
    const hasContent = state.data.size > 0 || (state.outgoingFlash?.size ?? 0) > 0 ||
      state.userId !== undefined;
    if (!hasContent) {
      // The client's cookie named a session this request destroyed or regenerated: clear it.
      return state.hadCookie ? this.#cookie.clear(isHttps(state)) : undefined;
    }
    const meta = this.#freshMeta(state, now);
    const record: SessionRecord = { data: toObject(state.data), meta };
    if (state.outgoingFlash?.size) record.flash = toObject(state.outgoingFlash);
    const id = session.id;
    const answer = this.#call("write", storeSet, storageKey(id), {
      kind: "create",
      record,
      set: record.data,
      deleted: [],
      cleared: false,
      flashChanged: record.flash !== undefined,
      deadline: this.#deadline(now),
      now,
    });
    const created = (result: WriteResult) => {
      if (result !== "written") {
        throw new StoreContractError(
          "write",
          result === "gone" ? 'a create was answered "gone"' : `answered ${shape(result)}, not "written"`,
        );
      }
      return this.#written(state, record, now, true);
    };
    return isPromiseLike(answer) ? answer.then(created) : created(answer);
  }

  /** The metadata of a session saved for the first time at `now`: its deadlines, lifetime and user. */
  #freshMeta(state: SessionInternals, now: number): SessionMeta {
    const lifetime = state.lifetimeMs;
    const idleMs = this.#idleOf(lifetime);
    let absoluteExpiresAt = this.#absoluteMs === null ? NEVER : after(now, this.#absoluteMs);
    // A lifetime the app chose for this session is honoured even past the configured absolute timeout.
    if (typeof lifetime === "number") absoluteExpiresAt = Math.max(absoluteExpiresAt, after(now, lifetime));
    const meta: SessionMeta = {
      createdAt: now,
      expiresAt: idleMs === null ? absoluteExpiresAt : Math.min(after(now, idleMs), absoluteExpiresAt),
      absoluteExpiresAt,
    };
    if (lifetime !== undefined) meta.lifetimeMs = lifetime;
    withUser(meta, state);
    return meta;
  }

  /**
   * A write's `deadline`: the store timeout from now by the real clock. With the default clock the commit's
   * own `now` is that time: one clock read less per write (≈ 40 ns on Deno and Node, a tenth of a write's
   * own cost; issue 17).
   */
  #deadline(now: number): number {
    return (this.#realClock ? now : Date.now()) + this.#timeoutMs;
  }

  /** The idle timeout of a session: its own lifetime (`setLifetime`), else the configured one; `null`: none. */
  #idleOf(lifetimeMs: number | null | undefined): number | null {
    return typeof lifetimeMs === "number" ? lifetimeMs : this.#idleMs;
  }

  #commitStored(state: SessionInternals, now: number): MaybePromise<string | undefined> {
    const loaded = state.meta!;
    const flashChanged = state.outgoingFlash !== undefined || state.incomingFlash !== undefined;
    const changed = (state.set?.size ?? 0) > 0 || (state.deleted?.size ?? 0) > 0 || state.cleared ||
      flashChanged || state.lifetimeChanged;
    const lifetime = state.lifetimeMs;
    const idleMs = this.#idleOf(lifetime);
    const absoluteExpiresAt = state.lifetimeChanged && typeof lifetime === "number"
      ? Math.max(loaded.absoluteExpiresAt, after(now, lifetime))
      : loaded.absoluteExpiresAt;
    const slid = idleMs === null ? loaded.expiresAt : Math.min(after(now, idleMs), absoluteExpiresAt);
    // A new lifetime or an explicit touch() moves the deadline now; otherwise it moves once half an idle
    // window has passed, so a busy session is not rewritten on every request.
    const touch = state.lifetimeChanged || state.touched ||
      (idleMs !== null && slid - loaded.expiresAt >= idleMs / 2);
    // Most requests only read: nothing to write and no cookie to send, so no record is built.
    if (!changed && !touch && !state.rotated) return undefined;
    const meta: SessionMeta = {
      createdAt: loaded.createdAt,
      expiresAt: touch ? slid : loaded.expiresAt,
      absoluteExpiresAt,
    };
    if (lifetime !== undefined) meta.lifetimeMs = lifetime;
    withUser(meta, state);
    // Rotated: nothing changed, but the cookie is signed anew.
    if (!changed && !touch) return this.#written(state, { data: toObject(state.data), meta }, now, true);
    // The deadline moves only with a touch, on writes as on reads: the browser's copy of the cookie
    // expires when the record does, so a write that keeps the deadline needs no Set-Cookie (unless the
    // cookie carries the record itself: #written decides, as chosen in the constructor).
    const record: SessionRecord = { data: toObject(state.data), meta };
    if (state.outgoingFlash?.size) record.flash = toObject(state.outgoingFlash);
    const set = new ChangedValues();
    if (state.set) { for (const [key, value] of state.set) set[key] = value; }
    const answer = this.#call("write", storeSet, state.key!, {
      kind: "update",
      record,
      set,
      deleted: state.deleted ? [...state.deleted] : [],
      cleared: state.cleared,
      flashChanged,
      deadline: this.#deadline(now),
      now,
    });
    const updated = (result: WriteResult) => {
      if (result === "gone") throw new SessionConflictError();
      if (result !== "written") {
        throw new StoreContractError("write", `answered ${shape(result)}, not "written" or "gone"`);
      }
      return this.#written(state, record, now, touch || state.rotated);
    };
    return isPromiseLike(answer) ? answer.then(updated) : updated(answer);
  }

  #delete(key: string): MaybePromise<void> {
    return this.#call("delete", storeDelete, key, undefined);
  }

  /** Deletes the records of `entries`, all at once. */
  async #deleteAll(entries: UserSessionEntry[]): Promise<void> {
    await Promise.all(entries.map((entry) => settled(() => this.#delete(entry.key))));
  }

  /** The live records of `userId`, checked as reads are: deadlines, and the store's answer shape. */
  async #listUser(userId: string): Promise<UserSessionEntry[]> {
    if (!this.#indexesUsers) {
      throw new TypeError(
        "Listing or revoking a user's sessions needs a store with a per-user index (listByUser): " +
          (this.#records === this.store
            ? "this store keeps none (docs/stores.md)"
            : "a CookieStore keeps sessions in cookies, where nothing on the server can find them"),
      );
    }
    const now = this.#now();
    const entries = await this.#call("read", storeListByUser, userId, now);
    if (!Array.isArray(entries)) {
      throw new StoreContractError("read", `listByUser answered ${shape(entries)}, not an array`);
    }
    const live: UserSessionEntry[] = [];
    for (const entry of entries) {
      if (
        typeof entry !== "object" || entry === null || typeof entry.key !== "string" ||
        !isSessionRecord({ data: {}, meta: entry.meta }) || entry.meta.userId !== userId
      ) {
        throw new StoreContractError(
          "read",
          "listByUser answered an entry that is not a record of that user",
        );
      }
      if (!this.#expired(entry.meta, now)) live.push(entry);
    }
    return live;
  }

  /** A user's sessions as the app sees them: the current one (of `state`) marked and first, then the most recent. */
  async #sessionsOf(
    userId: string | undefined,
    state: SessionInternals | undefined,
  ): Promise<UserSessionInfo[]> {
    if (userId === undefined) return [];
    const entries = await this.#listUser(userId);
    const now = this.#now();
    const currentKey = state?.stored ? state.key : undefined;
    const list = entries.map((entry) => this.#describe(entry.key, entry.meta, entry.key === currentKey, now));
    if (state !== undefined && !state.stored && state.id !== undefined) {
      // Logged in during this request: listed as the record it will be once saved (its details a copy, so
      // changing the list changes nothing that is saved).
      const info = this.#describe(storageKey(state.id), this.#freshMeta(state, now), true, now);
      if (info.details !== undefined) info.details = structuredClone(info.details);
      list.push(info);
    }
    return list.sort((a, b) => Number(b.current) - Number(a.current) || b.lastSeenAt - a.lastSeenAt);
  }

  /**
   * One listed session. `lastSeenAt` is when its idle deadline last moved,
   * which the touch rule does once half the idle timeout has passed: the
   * deadline minus the idle timeout, never before creation nor after now.
   */
  #describe(key: string, meta: SessionMeta, current: boolean, now: number): UserSessionInfo {
    const idleMs = this.#idleOf(meta.lifetimeMs);
    const lastSeenAt = idleMs === null
      ? meta.createdAt
      : Math.min(now, Math.max(meta.createdAt, meta.expiresAt - idleMs));
    const info: UserSessionInfo = {
      handle: sessionHandle(key),
      createdAt: meta.createdAt,
      lastSeenAt,
      expiresAt: meta.expiresAt,
      current,
    };
    if (meta.details !== undefined) info.details = meta.details;
    return info;
  }

  /**
   * Deletes the records of `userId` named by `which` (a handle, or `null` for all of them),
   * never the one of `state` (the caller ends that one itself). Answers how
   * many it deleted.
   */
  async #revoke(userId: string, which: string | null, state: SessionInternals | undefined): Promise<number> {
    const entries = await this.#listUser(userId);
    const currentKey = state?.stored ? state.key : undefined;
    const doomed = entries.filter((entry) =>
      entry.key !== currentKey && (which === null || sessionHandle(entry.key) === which)
    );
    await this.#deleteAll(doomed);
    return doomed.length;
  }

  /**
   * The store side of `Session.logIn()`: makes room under `maxSessionsPerUser`
   * (or refuses), then deletes the session's old record, as `regenerate()` does.
   */
  async #logIn(state: SessionInternals, userId: string): Promise<void> {
    const max = this.#maxSessionsPerUser;
    if (max !== null) {
      // The session logging in replaces its own record, so it does not count.
      const others = (await this.#listUser(userId)).filter((entry) =>
        !(state.stored && entry.key === state.key)
      );
      if (others.length >= max) {
        if (this.#refuseOverLimit) throw new SessionLimitError(max);
        others.sort((a, b) => a.meta.createdAt - b.meta.createdAt);
        const oldest = others.slice(0, others.length - max + 1);
        await this.#deleteAll(oldest);
      }
    }
    if (state.stored && state.key !== undefined) await settled(() => this.#delete(state.key!));
  }

  /**
   * The cookie carrying `value` for a record: it expires when the record
   * does, or with the browser session (`lifetimeMs: null`, or
   * `cookie.persistent: false` for a session without a lifetime of its own).
   */
  #setCookie(value: string, meta: SessionMeta, now: number, https: boolean): string {
    const persistent = meta.lifetimeMs === undefined ? this.#cookie.persistent : meta.lifetimeMs !== null;
    const maxAge = !persistent
      ? undefined
      : Math.max(0, Math.min(MAX_COOKIE_AGE, Math.floor((meta.expiresAt - now) / 1000)));
    return this.#cookie.set(value, maxAge, https);
  }

  /**
   * Opens sealed cookie values in order (a `CookieStore`): the session of the
   * first that opens, is not revoked and has not expired, else a fresh one.
   */
  async #openSealed(sealer: Sealer, values: string[], https: Https): Promise<Session<T>> {
    for (const value of values) {
      const opened = await sealer.open(value);
      if (typeof opened === "string") {
        this.#report(
          opened === "malformed"
            ? "malformed-cookie"
            : opened === "corrupt"
            ? "corrupt-record"
            : "bad-signature",
        );
        continue;
      }
      if (sealer.isRevoked !== undefined && await this.#revoked(sealer, opened)) {
        this.#report("revoked-session", opened.key);
        continue;
      }
      // Deadlines, reserved keys and flash values as for a stored record; an expired one is reported.
      const session = this.#open(opened, opened.record, https, this.#now());
      if (session instanceof Session) {
        this.#sealedValues.set(sessionInternals(session), value);
        return session;
      }
      await session;
    }
    return this.#fresh(https);
  }

  /**
   * The record in the sealed cookie a session was loaded from, opened again (`reload()`): a fresh copy of
   * what the request brought, or `undefined` when the session no longer is that cookie's (regenerated,
   * destroyed, new) or the app's revocation check now refuses it. A sealed record lives in the cookie, so
   * reading it again is opening the cookie again.
   */
  async #reopen(sealer: Sealer, state: SessionInternals, key: string): Promise<SessionRecord | undefined> {
    const value = this.#sealedValues.get(state);
    if (value === undefined) return undefined;
    const opened = await sealer.open(value);
    if (typeof opened === "string" || opened.key !== key) return undefined;
    if (sealer.isRevoked !== undefined && await this.#revoked(sealer, opened)) {
      this.#report("revoked-session", opened.key);
      return undefined;
    }
    return opened.record;
  }

  /** Asks the app's revocation check, as a store read: its failures and slowness are `SessionStoreError`s. */
  #revoked(sealer: Sealer, opened: Opened): MaybePromise<boolean> {
    const { id, record } = opened;
    return this.#call(
      "read",
      () =>
        sealer.isRevoked!({
          id,
          createdAt: record.meta.createdAt,
          userId: record.meta.userId,
          data: record.data,
        }),
      "",
      undefined,
    );
  }

  /**
   * Seals `record` into the cookie (a `CookieStore`): every write sends it.
   * The whole `Set-Cookie` value is measured against the cookie budget first.
   *
   * @throws {SessionTooLargeError} (rejects) when it would not fit.
   */
  async #sealed(
    sealer: Sealer,
    state: SessionInternals,
    record: SessionRecord,
    now: number,
  ): Promise<string> {
    const https = isHttps(state);
    const value = await sealer.seal(state.id!, record);
    const setCookie = this.#setCookie(value, record.meta, now, https);
    if (setCookie.length > COOKIE_BUDGET) throw new SessionTooLargeError(setCookie.length, COOKIE_BUDGET);
    return setCookie;
  }

  /**
   * Runs a store call (one of the functions above). A store that answers
   * synchronously (from memory, or an embedded database) is not awaited at
   * all; a promise gets the timeout. Every failure, thrown or rejected,
   * becomes a `SessionStoreError`, except a read's `CorruptRecordError`,
   * which is bad data rather than a failure and passes as it is.
   */
  #call<R, A>(operation: StoreOperation, run: StoreCall<R, A>, key: string, arg: A): MaybePromise<R> {
    let result: MaybePromise<R>;
    try {
      result = run(this.#records, key, arg);
    } catch (error) {
      throw storeFailure(operation, error);
    }
    return isPromiseLike(result) ? this.#timed(operation, result) : result;
  }

  async #timed<R>(operation: StoreOperation, pending: Promise<R>): Promise<R> {
    let done = false;
    // Promise.resolve: a store may answer with any thenable, which need not have `finally`.
    const result = Promise.resolve(pending).finally(() => (done = true));
    // A store that answers from memory settles within a microtask: arming and clearing a timer would cost
    // more than the call itself (about 1 µs on Node, 2 µs on Deno), so the timer is armed only for a call
    // still pending after that.
    await undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      if (done) return await result;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const late = `no answer within ${this.#timeoutMs / 1000} s`;
          reject(new Error(operation === "write" ? `${late} (${this.#lateWriteOutcome})` : late));
        }, this.#timeoutMs);
      });
      return await Promise.race([result, timeout]);
    } catch (error) {
      throw storeFailure(operation, error);
    } finally {
      clearTimeout(timer);
    }
  }

  #report(type: SecurityEventType, key?: string): void {
    const hook = this.#onSecurityEvent;
    if (!hook) return;
    try {
      const result: unknown = hook(key === undefined ? { type } : { type, idHash: key });
      // An async logger's rejection is dropped too: left unhandled, it would end the process (Node and Deno
      // do on an unhandled rejection), and any client can trigger the event with a malformed cookie.
      if (isPromiseLike(result as MaybePromise<unknown>)) {
        (result as Promise<unknown>).then(undefined, ignore);
      }
    } catch {
      // A failing logger must not break the request.
    }
  }
}

/** The error a failed store call becomes: a `SessionStoreError`, but a read's `CorruptRecordError` as it is. */
function storeFailure(operation: StoreOperation, error: unknown): Error {
  return operation === "read" && isCorruptRecordError(error)
    ? error
    : new SessionStoreError(operation, error);
}

/** `CORRUPT` for a {@linkcode CorruptRecordError}; any other error is thrown on. */
function corruptOrThrow(error: unknown): typeof CORRUPT {
  if (isCorruptRecordError(error)) return CORRUPT;
  throw error;
}

/**
 * Whether a store threw a {@linkcode CorruptRecordError}: by class, or by name
 * for a store that brings its own copy of this package.
 */
function isCorruptRecordError(error: unknown): error is Error {
  return error instanceof CorruptRecordError || (error as Error | null)?.name === "CorruptRecordError";
}
