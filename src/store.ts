/**
 * The store contract: the only module a store implementation imports.
 *
 * A store keeps session records under **storage keys** the core gives it. A
 * storage key is not the session id that travels in the cookie: it is a
 * versioned hash of it (`s1_` and 43 base64url characters; see
 * docs/stores.md), so a store never sees, keeps or logs anything that could
 * be replayed as a cookie. The cookie itself is the core's business: stores
 * never choose or return what it carries.
 *
 * A store never decides about expiry on its own terms: the core hands it
 * absolute deadlines and re-checks them on every load, because many backends
 * evict lazily. The core also hands it the time it judges them at (`now` on
 * `get`, `listByUser` and every write), so core and store agree on what has
 * expired and a store in memory reads no clock of its own on a request
 * ({@linkcode storeTime}).
 *
 * A write carries both the *change* a request made (keys set, keys deleted,
 * whether it cleared everything, whether it replaced the flash values) and the
 * *complete record* as that request sees it. Stores that can apply a change
 * per key (Redis hashes, SQL, a Map) apply the change, so two overlapping
 * requests of one user that touch different keys both persist. Stores that
 * must write a whole value take the record.
 *
 * @module
 */

import { CorruptRecordError } from "./errors.ts";

export { CorruptRecordError } from "./errors.ts";
export { userKey } from "./_crypto.ts";

/** Library metadata kept apart from user keys, all times in milliseconds since the epoch. */
export interface SessionMeta {
  /** When the session was created (reset by `regenerate()`). */
  createdAt: number;
  /**
   * When the record stops being valid: the earlier of the idle deadline and
   * the absolute deadline. Stores use it for the backend's native expiry.
   */
  expiresAt: number;
  /** The absolute deadline fixed at creation; `expiresAt` never slides past it. */
  absoluteExpiresAt: number;
  /**
   * This session's own lifetime, set by `Session.setLifetime()`: a number of
   * milliseconds is its own idle timeout (with a persistent cookie); `null`
   * means a browser-session cookie (no `Max-Age`) under the configured
   * timeouts. Absent for a session that never set one: stores must keep it
   * as they got it (absent, `null` or the number) and may store nothing for
   * "absent".
   */
  lifetimeMs?: number | null;
  /**
   * The user this session is logged in as (`Session.logIn()`); absent for a
   * session no user logged in to. Fixed when the record is created: an
   * update never changes it. Stores with a per-user index
   * ({@linkcode Store.listByUser}) list the record under it.
   */
  userId?: string;
  /**
   * What the app chose to record at login (`logIn(userId, { details })`,
   * e.g. a user-agent summary): JSON data, listed with the user's sessions.
   * Absent unless the app gave some; fixed at creation like `userId`.
   */
  details?: Record<string, unknown>;
}

/** A session as a store keeps it. User keys and library metadata never share a namespace. */
export interface SessionRecord {
  /** User keys and their JSON values. */
  data: Record<string, unknown>;
  /** Flash values for the next request only; absent when there are none. */
  flash?: Record<string, unknown>;
  /** Library metadata. */
  meta: SessionMeta;
}

/**
 * One write of one request.
 *
 * - `kind: "create"`: the key is new; write `record` as a whole (replacing
 *   anything stored under the key) and answer `"written"`.
 * - `kind: "update"`: apply the change to the existing record *only if it
 *   still exists* (and is not expired), and answer `"written"`. A record
 *   deleted by an overlapping request (logout, regenerate) or expired must not
 *   come back: write nothing and answer `"gone"`.
 *
 * Applying an update means, in this order: remove every user key when
 * `cleared`; remove the keys in `deleted`; write the keys in `set`; replace the
 * flash values with `record.flash` when `flashChanged` (none when absent);
 * replace `meta` with `record.meta`; leave every other key as it is.
 */
export interface StoreWrite {
  /** Whether the record is new or an update of an existing one. */
  kind: "create" | "update";
  /** The complete record as the writing request sees it. */
  record: SessionRecord;
  /**
   * Keys the request set, with their new values: an object that inherits no
   * property (no `Object.prototype`; its prototype, if any, is empty), so
   * `Object.keys` and `key in set` see only the request's keys.
   */
  set: Record<string, unknown>;
  /** Keys the request deleted. */
  deleted: string[];
  /** Whether the request called `clear()` before its other changes. */
  cleared: boolean;
  /** Whether the request replaced or consumed the flash values. */
  flashChanged: boolean;
  /**
   * When the core stops waiting for this write and answers the request with
   * a `SessionStoreError` (503), in milliseconds since the epoch by the real
   * clock (`Date.now()`, whatever `now` option the app injected). A store that
   * can should make its backend refuse the write once this time has passed,
   * so a write answered 503 is never applied later (see
   * {@linkcode Store.refusesLateWrites}). Absent when nobody waits with a
   * deadline (a store used on its own).
   */
  deadline?: number;
  /**
   * The time of this write by the core's clock (the app's `now` option,
   * `Date.now()` by default), in milliseconds since the epoch: an `update` of
   * a record expired at this time answers `"gone"`. Stores judge expiry with
   * {@linkcode storeTime}, so a clock the store was given itself still wins.
   * Absent in a write made outside the core; the store then reads its clock.
   */
  now?: number;
}

/** One entry of a per-user index: a live record of the user, by its storage key. */
export interface UserSessionEntry {
  /** The record's storage key. */
  key: string;
  /** The record's metadata as stored now (its `userId` is the user listed). */
  meta: SessionMeta;
}

/** A value, or a promise of it. */
export type MaybePromise<T> = T | Promise<T>;

/**
 * What a store answers to a write: `"written"`, or `"gone"` when an update
 * found no live record under the key (and wrote nothing).
 */
export type WriteResult = "written" | "gone";

/**
 * The contract every session store implements.
 *
 * Required: `get`, `set`, `delete`, each taking the storage key the core
 * gives (a string of at most 64 characters of `[A-Za-z0-9_-]`; stores may rely
 * on that shape, but the conformance suite also feeds them hostile keys).
 * Optional: `close`.
 *
 * Failures: a backend that is down or slow rejects (or throws) with its own
 * error; the core wraps it in a `SessionStoreError` (503) that reaches the
 * framework's error handler, and never turns it into an empty session. A
 * stored record that cannot be parsed is not a failure of the backend: `get`
 * throws a {@linkcode CorruptRecordError} for it. An answer outside this
 * contract (a write answered with anything but `"written"` or `"gone"`, a
 * create answered `"gone"`, a read that is not a record) is a bug in the
 * store: the core raises a `StoreContractError` (500).
 *
 * `get`, `set` and `delete` may answer with a value instead of a promise when
 * the backend answers at once (memory, an embedded database): the core then
 * skips the await and the timeout, which is most of a fast store's cost.
 *
 * @example A store that keeps nothing (for illustration only)
 * ```ts
 * import type { Store } from "./store.ts";
 *
 * const forgetful: Store = {
 *   get: () => undefined,
 *   set: (_key, write) => write.kind === "create" ? "written" : "gone",
 *   delete: () => {},
 * };
 * console.log(await forgetful.get("s1_x")); // undefined
 * console.log(await forgetful.set("s1_x", {
 *   kind: "update",
 *   record: { data: {}, meta: { createdAt: 1, expiresAt: 2, absoluteExpiresAt: 2 } },
 *   set: {},
 *   deleted: [],
 *   cleared: false,
 *   flashChanged: false,
 * })); // "gone"
 * ```
 */
export interface Store {
  /**
   * Reads the record under `key`. Answers `undefined` when the key is unknown
   * or the record has expired at `now` (the core's time, in milliseconds
   * since the epoch; absent when the store is used on its own: see
   * {@linkcode storeTime}); throws {@linkcode CorruptRecordError} when the
   * stored form cannot be parsed. Must return fresh objects: the caller may
   * mutate them.
   */
  get(key: string, now?: number): MaybePromise<SessionRecord | undefined>;
  /** Writes a record (see {@linkcode StoreWrite}) and answers `"written"` or `"gone"`. */
  set(key: string, write: StoreWrite): MaybePromise<WriteResult>;
  /** Deletes the record under `key`. Deleting an unknown key is not an error. */
  delete(key: string): MaybePromise<void>;
  /** Releases connections or handles, if the store holds any. */
  close?(): Promise<void>;
  /**
   * `true` when the store makes its backend refuse a write once
   * `write.deadline` has passed (the Redis stores compare the server's clock
   * in their write script; `SqliteStore` stops retrying a locked database).
   * The core reads it once, when it is built: the error of a write that timed
   * out then says the write is not applied later; otherwise it says the
   * outcome is unknown.
   */
  readonly refusesLateWrites?: boolean;
  /**
   * The per-user index ("where am I logged in", "log out everywhere"):
   * optional, and present only on stores that keep one. Answers the live
   * records whose `meta.userId` is `userId`, in any order, each with its
   * current metadata.
   *
   * The index is kept atomically with the records: a `set` that creates a
   * record with a `userId` lists it in the same step; `delete` (and the
   * backend's own expiry) removes it in the same step, so a record is never
   * listed once it is gone and never missing while it lives. An entry whose
   * record expired is never answered and may be pruned lazily, during a
   * listing. Cost: O(records of that user), never a scan of all records.
   * `now` is the core's time, as for {@linkcode Store.get}.
   */
  listByUser?(userId: string, now?: number): MaybePromise<UserSessionEntry[]>;
  /**
   * `true` for a store that must keep every record of one user together (a
   * Redis Cluster: one hash slot, so one script can write a record and its
   * user's index). The core then gives every session bound to a user a
   * storage key whose two characters after `s1_` are those of
   * {@linkcode userKey}`(userId)` after `u1_`. Read once, when the core is built.
   */
  readonly groupsUserSessions?: boolean;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isTime(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value) && value > 0;
}

/**
 * Whether `value` has the shape of a {@linkcode SessionRecord}: `data` (and
 * `flash`, when present) plain objects, and `meta` with a non-negative
 * `createdAt` and positive, finite deadlines.
 *
 * @param value What a store decoded or answered.
 * @returns `true` for a record.
 *
 * @example
 * ```ts
 * import { isSessionRecord } from "./store.ts";
 *
 * console.log(isSessionRecord({ data: {}, meta: { createdAt: 1, expiresAt: 2, absoluteExpiresAt: 2 } })); // true
 * console.log(isSessionRecord({ data: {}, meta: { createdAt: 1, expiresAt: Number.NaN, absoluteExpiresAt: 2 } })); // false
 * ```
 */
export function isSessionRecord(value: unknown): value is SessionRecord {
  if (!isPlainObject(value)) return false;
  const { data, flash, meta } = value;
  return isPlainObject(data) && (flash === undefined || isPlainObject(flash)) &&
    isPlainObject(meta) && typeof meta.createdAt === "number" &&
    Number.isFinite(meta.createdAt) && meta.createdAt >= 0 &&
    isTime(meta.expiresAt) && isTime(meta.absoluteExpiresAt) &&
    (meta.lifetimeMs === undefined || meta.lifetimeMs === null ||
      (typeof meta.lifetimeMs === "number" && Number.isFinite(meta.lifetimeMs) && meta.lifetimeMs > 0)) &&
    (meta.userId === undefined || (typeof meta.userId === "string" && meta.userId.length > 0)) &&
    (meta.details === undefined || isPlainObject(meta.details));
}

/**
 * For stores that decode a stored form: returns `value` when it is a
 * {@linkcode SessionRecord}, and throws a {@linkcode CorruptRecordError}
 * otherwise.
 *
 * @param value The decoded record.
 * @returns The record.
 * @throws {CorruptRecordError} when `value` is not a record.
 *
 * @example
 * ```ts
 * import { CorruptRecordError, storedRecord } from "./store.ts";
 *
 * try {
 *   storedRecord({ data: {}, meta: null });
 * } catch (error) {
 *   console.log(error instanceof CorruptRecordError); // true
 * }
 * ```
 */
export function storedRecord(value: unknown): SessionRecord {
  if (!isSessionRecord(value)) throw new CorruptRecordError("not a session record (data and meta)");
  return value;
}

/**
 * The time a store judges expiry at, in milliseconds since the epoch: the
 * clock the app gave the store itself (its `now` option) when it gave one;
 * otherwise the time the core handed over with the call (`now` on `get` and
 * `listByUser`, `write.now`), so the store agrees with the core, which
 * checks the same deadlines on its own clock; otherwise `Date.now()`.
 *
 * Handing the time over is also cheaper: a read or a write of a store in
 * memory reads no clock of its own (a `Date.now()` is about 40 ns on Deno
 * and Node, a twentieth of a write's whole cost there; issue 17).
 *
 * @param clock The store's own clock option, or `undefined` when none was given.
 * @param given The time the core handed over, or `undefined` outside the core.
 * @returns The time to judge deadlines at.
 *
 * @example
 * ```ts
 * import { storeTime } from "./store.ts";
 *
 * console.log(storeTime(undefined, 1_000)); // 1000
 * console.log(storeTime(() => 5, 1_000)); // 5
 * console.log(storeTime(undefined, undefined) > 1_000); // true (Date.now())
 * ```
 */
export function storeTime(clock: (() => number) | undefined, given: number | undefined): number {
  return clock !== undefined ? clock() : given !== undefined ? given : Date.now();
}

/**
 * The `expiresAt` of a session with both timeouts disabled: the largest time a
 * `Date` can hold. Stores may pass it to native expiry as it is.
 */
export const NEVER = 8_640_000_000_000_000;

/**
 * Sets `key` as an own, enumerable data property of `target`. Plain
 * assignment for every key but `__proto__`, which is defined instead: it
 * stays an ordinary key and never replaces the object's prototype.
 *
 * @param target The object to write to.
 * @param key The key.
 * @param value The value.
 *
 * @example
 * ```ts
 * import { setOwn } from "./store.ts";
 *
 * const data: Record<string, unknown> = {};
 * setOwn(data, "__proto__", { admin: true });
 * console.log(Object.getPrototypeOf(data) === Object.prototype); // true
 * console.log(Object.keys(data)); // ["__proto__"]
 * ```
 */
export function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === "__proto__") {
    Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    target[key] = value;
  }
}

/**
 * Applies the change of an update to a record's user keys, in the order the
 * contract describes. Shared by stores that hold whole records in memory.
 *
 * @param current The user keys as stored now; it is modified in place.
 * @param write The write to apply.
 * @param prepare Turns each value set into the form the store keeps (default: as it is).
 * @returns `current`, for chaining.
 *
 * @example
 * ```ts
 * import { applyChange } from "./store.ts";
 *
 * const data: Record<string, unknown> = { a: 1, b: 2 };
 * applyChange(data, {
 *   kind: "update",
 *   record: { data: {}, meta: { createdAt: 0, expiresAt: 1, absoluteExpiresAt: 1 } },
 *   set: { c: 3 },
 *   deleted: ["a"],
 *   cleared: false,
 *   flashChanged: false,
 * });
 * console.log(data); // { b: 2, c: 3 }
 * ```
 */
export function applyChange(
  current: Record<string, unknown>,
  write: StoreWrite,
  prepare: (value: unknown) => unknown = (value) => value,
): Record<string, unknown> {
  if (write.cleared) {
    for (const key of Object.keys(current)) delete current[key];
  }
  for (const key of write.deleted) delete current[key];
  for (const key of Object.keys(write.set)) setOwn(current, key, prepare(write.set[key]));
  return current;
}
