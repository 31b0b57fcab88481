/**
 * The store contract: the only module a store implementation imports.
 *
 * A store keeps session records under ids chosen by the core. It never decides
 * about expiry on its own terms: the core hands it absolute deadlines and
 * re-checks them on every load, because many backends evict lazily.
 *
 * A write carries both the *change* a request made (keys set, keys deleted,
 * whether it cleared everything, whether it replaced the flash values) and the
 * *complete record* as that request sees it. Stores that can apply a change
 * per key (Redis hashes, SQL, a Map) apply the change, so two overlapping
 * requests of one user that touch different keys both persist. Stores that
 * must write a whole value (an encrypted cookie) take the record.
 *
 * @module
 */

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
 * - `kind: "create"`: `id` is new; write `record` as a whole.
 * - `kind: "update"`: apply the change to the existing record *only if it
 *   still exists* (and is not expired). A record deleted by an overlapping
 *   request (logout, regenerate) must not come back: answer `null`.
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
  /** Keys the request set, with their new values (a null-prototype object). */
  set: Record<string, unknown>;
  /** Keys the request deleted. */
  deleted: string[];
  /** Whether the request called `clear()` before its other changes. */
  cleared: boolean;
  /** Whether the request replaced or consumed the flash values. */
  flashChanged: boolean;
}

/** A value, or a promise of it. */
export type MaybePromise<T> = T | Promise<T>;

/**
 * The contract every session store implements.
 *
 * Required: `get`, `set`, `delete`. Optional: `close`. Every method may
 * reject (or throw); the core wraps the failure in a {@linkcode SessionStoreError}
 * that reaches the framework's error handler, and never turns it into an
 * empty session.
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
 *   get: () => Promise.resolve(undefined),
 *   set: (id, write) => Promise.resolve(write.kind === "create" ? id : null),
 *   delete: () => Promise.resolve(),
 * };
 * console.log(await forgetful.get("x")); // undefined
 * ```
 */
export interface Store {
  /**
   * Reads a record. Resolves to `undefined` when the id is unknown or the
   * record has expired, and to {@linkcode CORRUPT_RECORD} when the stored form
   * cannot be parsed (truncated JSON...): that is bad data, not a backend
   * failure, so it must not reject. Must return fresh objects: the caller may
   * mutate them.
   */
  get(id: string): MaybePromise<SessionRecord | undefined>;
  /**
   * Writes a record (see {@linkcode StoreWrite}). Resolves to the value the
   * session cookie should carry — the `id` itself for every store that keeps
   * data on a server — or to `null` when an update found no record.
   */
  set(id: string, write: StoreWrite): MaybePromise<string | null>;
  /** Deletes a record. Deleting an unknown id is not an error. */
  delete(id: string): MaybePromise<void>;
  /** Releases connections or handles, if the store holds any. */
  close?(): Promise<void>;
}

/**
 * What {@linkcode Store.get} answers for a stored record it cannot parse. Its
 * metadata is invalid on purpose: the core deletes such a record, reports a
 * `corrupt-record` security event and carries on with a fresh session (no
 * error page).
 */
export const CORRUPT_RECORD: SessionRecord = Object.freeze({
  data: Object.freeze({}),
  meta: Object.freeze({ createdAt: Number.NaN, expiresAt: Number.NaN, absoluteExpiresAt: Number.NaN }),
}) as SessionRecord;

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
