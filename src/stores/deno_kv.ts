/**
 * A store that keeps sessions in Deno KV: on Deno through `Deno.openKv`
 * (a local SQLite-backed file, Deno Deploy's database, or any KV Connect
 * URL), on Node and Bun through the npm package `@deno/kv` (an optional peer
 * dependency, loaded only when the store opens a database itself).
 *
 * @module
 */

import { rejectUnknownStoreOptions } from "../_options.ts";
import {
  applyChange,
  CorruptRecordError,
  isSessionRecord,
  NEVER,
  storedRecord,
  storeTime,
  userKey,
} from "../store.ts";
import type {
  SessionMeta,
  SessionRecord,
  Store,
  StoreWrite,
  UserSessionEntry,
  WriteResult,
} from "../store.ts";

/** One part of a Deno KV key. */
export type DenoKvKeyPart = Uint8Array | string | number | bigint | boolean;

/** One entry as a list answers it. */
export interface DenoKvEntry {
  /** The entry's key. */
  readonly key: readonly DenoKvKeyPart[];
  /** The entry's value. */
  readonly value: unknown;
  /** The versionstamp of the commit that wrote the entry. */
  readonly versionstamp: string;
}

/** The part of an atomic operation the store uses. */
export interface DenoKvAtomicOperation {
  /** Makes the commit fail unless `key` still has `versionstamp` (`null`: absent). */
  check(...checks: { key: readonly DenoKvKeyPart[]; versionstamp: string | null }[]): this;
  /** Sets `key` to `value`; `expireIn` in milliseconds. */
  set(key: readonly DenoKvKeyPart[], value: unknown, options?: { expireIn?: number }): this;
  /** Deletes `key`. */
  delete(key: readonly DenoKvKeyPart[]): this;
  /** Applies every mutation if every check holds; `ok: false` when a check failed. */
  commit(): Promise<{ ok: boolean }>;
}

/**
 * The part of a Deno KV handle the store uses: a `Deno.Kv` from
 * `Deno.openKv()`, or a `Kv` from `openKv()` of the npm package `@deno/kv`.
 */
export interface DenoKv {
  /** Lists entries in key order: those under `prefix`, or from `start` (included) to `end` (excluded). */
  list(
    selector: { prefix: readonly DenoKvKeyPart[] } | {
      start: readonly DenoKvKeyPart[];
      end: readonly DenoKvKeyPart[];
    },
    options?: { limit?: number; batchSize?: number },
  ): AsyncIterable<DenoKvEntry>;
  /** Starts an atomic operation. */
  atomic(): DenoKvAtomicOperation;
  /** Closes the handle. */
  close(): void;
}

/** Options for {@linkcode DenoKvStore}: `path`, `kv`, or neither on Deno. */
export interface DenoKvStoreOptions {
  /**
   * What to open: a file path (created if missing), `":memory:"` for a
   * private in-memory database, or a KV Connect URL such as
   * `https://api.deno.com/databases/<id>/connect` (the access token comes
   * from the environment variable `DENO_KV_ACCESS_TOKEN`). The store opens it
   * on first use (or in `init()`) and closes it in `close()`. On Deno it may
   * be left out for `Deno.openKv()`'s default database (Deno Deploy's, or a
   * local one per script); on Node and Bun it is required unless `kv` is
   * given.
   */
  path?: string;
  /**
   * A handle opened by the caller instead of `path`: a `Deno.Kv` or a `Kv` of
   * `@deno/kv`. The store uses it at once and never closes it.
   */
  kv?: DenoKv;
  /**
   * The key parts every session key starts with, so sessions can share a
   * database with other data. Default `["sessions"]`. The per-user index
   * lives under `[...keyPrefix, "users"]`.
   */
  keyPrefix?: readonly DenoKvKeyPart[];
  /**
   * The most times one update (or delete) is tried when overlapping
   * requests of the same session commit between its read and its commit
   * (each try re-reads the record and applies the change again). Default 20;
   * then the write fails, which the core reports as a `SessionStoreError`
   * (503).
   */
  maxAttempts?: number;
  /**
   * Milliseconds a write keeps trying again after the engine reports the
   * local SQLite-backed file locked ("database is locked"). Both engines wait
   * up to 5 s themselves for a lock another connection holds, but report at
   * once when two connections (two processes, or two handles on one file)
   * commit at the same moment; the store then tries again with short random
   * pauses until this much time has passed since the write began. Default
   * 5,000.
   */
  busyTimeoutMs?: number;
  /**
   * The clock for expiry checks and `expireIn`, in milliseconds since the
   * epoch. When given, it decides on every call; by default the store judges
   * at the time the core hands it (`Date.now()` for a call made outside the
   * core; see `storeTime`).
   */
  now?: () => number;
}

/** Every {@linkcode DenoKvStoreOptions} name (the type checker keeps the list complete): others are refused. */
const OPTION_NAMES = Object.keys(
  {
    path: true,
    kv: true,
    keyPrefix: true,
    maxAttempts: true,
    busyTimeoutMs: true,
    now: true,
  } satisfies Record<keyof DenoKvStoreOptions, true>,
);

/** Bytes of one KV value: Deno KV refuses larger values. */
export const KV_VALUE_BYTES = 65_536;
/**
 * Values one record may span: 12 values of 64 KiB and their keys fit in one
 * atomic write, which Deno KV limits to 800 KiB (819,200 bytes) of keys and
 * values.
 */
const MAX_PARTS = 12;
/** The index of every value a record may span. */
const ALL_PARTS: readonly number[] = Array.from({ length: MAX_PARTS }, (_, index) => index);
/** The largest record the store keeps, in bytes of its JSON text (UTF-8): 768 KiB. */
export const MAX_RECORD_BYTES: number = KV_VALUE_BYTES * MAX_PARTS;
/**
 * The longest `expireIn` passed to KV (about 142,000 years): larger values
 * overflow the engine's date arithmetic. A deadline further away is kept by
 * the clock checks alone.
 */
const MAX_EXPIRE_IN = 2 ** 52;
/**
 * The largest metadata of a logged-in record (its login `details`
 * included), in bytes of its JSON text (UTF-8): 16 KiB. The per-user index
 * keeps a copy of it in one KV value, written by the same atomic write as
 * the record: a record of 768 KiB, this copy and the keys of both fit in
 * Deno KV's 800 KiB.
 */
export const MAX_META_BYTES = 16_384;
/** The key part, after a storage key, of a logged-in record's user entry (the `userKey` of its user). */
const USER_ENTRY = -1;
/** The key part, after the key prefix, that the per-user index lives under. */
const USERS = "users";
/** Index entries per round trip of a listing: `@deno/kv` answers at most 500 per batch. */
const INDEX_BATCH = 500;
const USER_KEY = /^u1_[A-Za-z0-9_-]{43}$/;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

function invalid(option: string, rule: string): TypeError {
  return new TypeError(`Invalid DenoKvStore option "${option}": ${rule}`);
}

function isKeyPart(part: unknown): part is DenoKvKeyPart {
  return typeof part === "string" || typeof part === "number" || typeof part === "bigint" ||
    typeof part === "boolean" || part instanceof Uint8Array;
}

/** The first line of an engine error: `@deno/kv` appends a native stack trace to its messages. */
function reason(error: unknown): string {
  const message = error instanceof Error ? error.message || error.name : String(error);
  return message.split("\n", 1)[0].trim();
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface DenoGlobal {
  version?: { deno?: string };
  openKv?: (path?: string) => Promise<DenoKv>;
}

/** Opens a database with the runtime's own KV on Deno, with `@deno/kv` elsewhere. */
async function openDatabase(path: string | undefined): Promise<DenoKv> {
  const deno = (globalThis as { Deno?: DenoGlobal }).Deno;
  if (typeof deno?.version?.deno === "string") {
    if (typeof deno.openKv !== "function") {
      throw new Error(
        'DenoKvStore needs Deno.openKv, which Deno 2 keeps behind a flag: run with --unstable-kv (or add "unstable": ["kv"] to deno.json), or pass a "kv" handle',
      );
    }
    return await deno.openKv(path);
  }
  if (path === undefined) {
    throw new Error('DenoKvStore needs a "path" (or a "kv" handle) outside Deno');
  }
  let driver: { openKv(path?: string, options?: object): Promise<DenoKv>; makeLimitedV8Serializer(): object };
  try {
    driver = await import("@deno/kv") as unknown as typeof driver;
  } catch (cause) {
    throw new Error(
      'DenoKvStore needs the npm package "@deno/kv" on Node and Bun: install it with `npm install @deno/kv`',
      { cause },
    );
  }
  // @deno/kv refuses Bun's node:v8 (it writes JavaScriptCore's format, not V8's) unless it is given a V8
  // serializer. This store writes nothing but bytes, which @deno/kv stores as they are, so its own limited
  // serializer (strings, null, booleans) is all it needs, and the file stays one Deno reads. The same test
  // for Bun as @deno/kv's own, so that the two agree.
  return await driver.openKv(path, "Bun" in globalThis ? driver.makeLimitedV8Serializer() : undefined);
}

/** A record's JSON text in UTF-8, cut into KV values. */
function encodeRecord(record: SessionRecord): Uint8Array[] {
  const stored: SessionRecord = { meta: record.meta, data: record.data };
  if (record.flash !== undefined) stored.flash = record.flash;
  const bytes = encoder.encode(JSON.stringify(stored));
  if (bytes.length > MAX_RECORD_BYTES) {
    throw new Error(
      `DenoKvStore cannot keep a session record of ${bytes.length} bytes: the limit is ${MAX_RECORD_BYTES} bytes of JSON (Deno KV allows 800 KiB per atomic write); keep large data outside the session`,
    );
  }
  const parts: Uint8Array[] = [];
  for (let at = 0; at === 0 || at < bytes.length; at += KV_VALUE_BYTES) {
    parts.push(bytes.subarray(at, at + KV_VALUE_BYTES));
  }
  return parts;
}

/** The JSON text in UTF-8 of a logged-in record's metadata, for its index entry. */
function encodeMeta(meta: SessionMeta): Uint8Array {
  const bytes = encoder.encode(JSON.stringify(meta));
  if (bytes.length > MAX_META_BYTES) {
    throw new Error(
      `DenoKvStore cannot keep the metadata of a logged-in session of ${bytes.length} bytes: the limit is ${MAX_META_BYTES} bytes of JSON (the per-user index keeps a copy of it, in the same atomic write as the record); keep less in the login details`,
    );
  }
  return bytes;
}

/** The metadata in an index entry when it is the metadata of a record of `userId`; `undefined` otherwise. */
function indexedMeta(value: unknown, userId: string): SessionMeta | undefined {
  if (!(value instanceof Uint8Array)) return undefined;
  let meta: unknown;
  try {
    meta = JSON.parse(decoder.decode(value));
  } catch {
    return undefined;
  }
  const record = { data: {}, meta };
  return isSessionRecord(record) && record.meta.userId === userId ? record.meta : undefined;
}

/** The user key in a user entry; `undefined` for anything else. */
function userKeyIn(value: unknown): string | undefined {
  if (!(value instanceof Uint8Array)) return undefined;
  const text = new TextDecoder().decode(value);
  return USER_KEY.test(text) ? text : undefined;
}

/** `meta` with the user and login details of the stored record's `stored`: an update never changes them. */
function withStoredUser(meta: SessionMeta, stored: SessionMeta): SessionMeta {
  const kept: SessionMeta = { ...meta };
  delete kept.userId;
  delete kept.details;
  if (stored.userId !== undefined) kept.userId = stored.userId;
  if (stored.details !== undefined) kept.details = stored.details;
  return kept;
}

/** What a read found under one storage key. */
interface Stored {
  /** The versionstamp of value 0, the commit that wrote the record; `null` when there is no value 0. */
  versionstamp: string | null;
  /** The record's parts, in order. */
  parts: Uint8Array[];
  /** The index of every value found (stale ones included), for a write to delete what it no longer uses. */
  indexes: number[];
  /** The user key in the record's user entry: whose index lists the record. */
  user: string | undefined;
}

function decodeRecord(parts: Uint8Array[]): SessionRecord {
  let text: string;
  if (parts.length === 1) {
    text = decoder.decode(parts[0]);
  } else {
    const bytes = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
    let at = 0;
    for (const part of parts) {
      bytes.set(part, at);
      at += part.length;
    }
    text = decoder.decode(bytes);
  }
  return storedRecord(JSON.parse(text));
}

function isLive(meta: SessionMeta, now: number): boolean {
  return meta.expiresAt > now && meta.absoluteExpiresAt > now;
}

/**
 * Keeps each session as the JSON text of its record under
 * `[...keyPrefix, storageKey, 0]`, split over `[…, 1]`, `[…, 2]`… when it is
 * larger than one KV value (64 KiB), all written by one atomic operation. A
 * record over 768 KiB of JSON is refused with an error: Deno KV limits one
 * atomic write to 800 KiB.
 *
 * The per-user index ({@linkcode DenoKvStore.listByUser}): a record with a
 * `meta.userId` also has a user entry `[...keyPrefix, storageKey, -1]`
 * (its user's `userKey`) and an index entry
 * `[...keyPrefix, "users", userKey, storageKey]` holding a copy of its
 * metadata, written, refreshed and deleted by the same atomic operations as
 * the record. Its metadata (login details included) may take up to 16 KiB
 * of JSON.
 *
 * Every write sets KV's native expiry (`expireIn`) from the record's
 * deadline, and reads re-check the deadline, because KV removes expired keys
 * lazily.
 *
 * Round trips: a read is one `list` of the session's keys, a new session one
 * atomic commit, a delete one `list` and one atomic commit, a user's
 * sessions one `list` per 500. An update reads the record and commits the
 * request's change with a check that the record's versionstamp is
 * unchanged; when an overlapping request committed in between, it reads and
 * applies the change again, at most `maxAttempts` times, with a short random
 * pause between tries (a delete does the same). A record deleted meanwhile
 * (logout, regenerate) is never written back: the update answers `"gone"`.
 *
 * @example
 * ```ts
 * import { DenoKvStore } from "./deno_kv.ts";
 * import { SessionManager } from "../core.ts";
 *
 * // Deno (--unstable-kv): Deno.openKv; Node and Bun: the npm package @deno/kv.
 * const store = new DenoKvStore({ path: ":memory:", keyPrefix: ["app", "sessions"] });
 * await store.init(); // optional: otherwise the database opens on first use
 * const sessions = new SessionManager({ store, secret: "a-secret-of-at-least-32-bytes-long!" });
 * const session = await sessions.load({ cookie: null, https: false });
 * session.set("user", "ada");
 * const cookie = (await sessions.commit(session))!.split(";")[0];
 * console.log((await sessions.load({ cookie, https: false })).get("user")); // "ada"
 * await store.close();
 * ```
 *
 * @example A handle opened by the caller, left open by `close()`
 * ```ts ignore
 * import { openKv } from "@deno/kv"; // on Deno: const kv = await Deno.openKv();
 * import { DenoKvStore } from "./deno_kv.ts";
 *
 * const kv = await openKv("https://kv.example/connect", { accessToken: "..." });
 * const store = new DenoKvStore({ kv, maxAttempts: 40 });
 * ```
 */
export class DenoKvStore implements Store {
  #path: string | undefined;
  #kv: DenoKv | undefined;
  #opening: Promise<DenoKv> | undefined;
  #owned: boolean;
  #closed = false;
  #prefix: readonly DenoKvKeyPart[];
  #maxAttempts: number;
  #busyTimeout: number;
  /** The clock the app gave the store, if any (see `storeTime`). */
  #clock: (() => number) | undefined;

  /**
   * Checks the options. The database opens on first use or in `init()`.
   *
   * @param options `path` or `kv`, the key prefix, retries and clock.
   * @throws {TypeError} When an option is invalid or unknown.
   */
  constructor(options: DenoKvStoreOptions = {}) {
    rejectUnknownStoreOptions("DenoKvStore", options, OPTION_NAMES);
    const { path, kv } = options;
    if (path !== undefined && kv !== undefined) {
      throw new TypeError('Invalid DenoKvStore options: pass "path" or "kv", not both');
    }
    if (path !== undefined && (typeof path !== "string" || path === "")) {
      throw invalid("path", 'must be a non-empty string (a file, ":memory:" or a KV Connect URL)');
    }
    if (
      kv !== undefined &&
      (typeof kv?.list !== "function" || typeof kv.atomic !== "function" || typeof kv.close !== "function")
    ) {
      throw invalid("kv", "must be a Deno.Kv or a Kv of the npm package @deno/kv");
    }
    const prefix = options.keyPrefix ?? ["sessions"];
    if (!Array.isArray(prefix) || !prefix.every(isKeyPart)) {
      throw invalid(
        "keyPrefix",
        "must be an array of KV key parts (strings, numbers, bigints, booleans, Uint8Arrays)",
      );
    }
    const maxAttempts = options.maxAttempts ?? 20;
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
      throw invalid("maxAttempts", "must be a positive integer");
    }
    const busyTimeout = options.busyTimeoutMs ?? 5_000;
    if (typeof busyTimeout !== "number" || !(busyTimeout >= 0) || busyTimeout === Infinity) {
      throw invalid("busyTimeoutMs", "must be a non-negative, finite number of milliseconds");
    }
    if (options.now !== undefined && typeof options.now !== "function") {
      throw invalid("now", "must be a function");
    }
    this.#busyTimeout = busyTimeout;
    this.#path = path;
    this.#kv = kv;
    this.#owned = kv === undefined;
    this.#prefix = [...prefix];
    this.#maxAttempts = maxAttempts;
    this.#clock = options.now;
  }

  /**
   * Opens the database now rather than on first use, so that a wrong path, a
   * missing flag or package, or an unreachable KV Connect server shows at
   * startup. Rejects when it cannot be opened; a later call tries again.
   */
  async init(): Promise<void> {
    await this.#database();
  }

  #database(): Promise<DenoKv> | DenoKv {
    if (this.#closed) throw new Error("DenoKvStore is closed");
    if (this.#kv !== undefined) return this.#kv;
    this.#opening ??= openDatabase(this.#path).then(
      (kv) => {
        if (this.#closed) {
          kv.close();
          throw new Error("DenoKvStore was closed while opening");
        }
        this.#kv = kv;
        return kv;
      },
      (error) => {
        this.#opening = undefined;
        const where = this.#path === undefined ? "the default database" : `"${this.#path}"`;
        throw new Error(`Cannot open Deno KV at ${where}: ${reason(error)}`, { cause: error });
      },
    );
    return this.#opening;
  }

  #key(key: string, index: number): DenoKvKeyPart[] {
    return [...this.#prefix, key, index];
  }

  /** The key of a record's entry in its user's index. */
  #indexKey(user: string, key: string): DenoKvKeyPart[] {
    return [...this.#prefix, USERS, user, key];
  }

  /**
   * Reads the entries of one session in one list (one round trip, one consistent snapshot): its user entry
   * and its values up to index `through` (excluded; 1 for value 0 alone).
   */
  async #read(kv: DenoKv, key: string, through = MAX_PARTS): Promise<Stored> {
    const entries: DenoKvEntry[] = [];
    try {
      // A range of numbers after the storage key: no index entry (a string there) falls in it, whatever the key.
      const listing = kv.list({ start: this.#key(key, USER_ENTRY), end: this.#key(key, through) }, {
        limit: through + 1,
        batchSize: through + 1,
      });
      for await (const entry of listing) entries.push(entry);
    } catch (error) {
      throw new Error(`Deno KV list failed: ${reason(error)}`, { cause: error });
    }
    // Entries of the form [...prefix, key, index]: the user entry (-1) and the values of a record (0, 1...).
    const depth = this.#prefix.length + 2;
    const indexOf = (entry: DenoKvEntry) => {
      const index = entry.key[depth - 1];
      return entry.key.length === depth && Number.isInteger(index) ? index as number : undefined;
    };
    let user: string | undefined;
    let head: DenoKvEntry | undefined;
    const indexes: number[] = [];
    for (const entry of entries) {
      const index = indexOf(entry);
      if (index === USER_ENTRY) user = userKeyIn(entry.value);
      else if (index !== undefined) indexes.push(index);
      if (index === 0) head = entry;
    }
    // No value 0: nothing stored, or the leftovers of a record KV is expiring piece by piece.
    if (head === undefined) return { versionstamp: null, parts: [], indexes, user };
    // The parts of the head's record are the ones its commit wrote: 0, 1, 2... with its versionstamp.
    const parts: Uint8Array[] = [];
    for (const entry of entries) {
      if (indexOf(entry) !== parts.length || entry.versionstamp !== head.versionstamp) continue;
      if (!(entry.value instanceof Uint8Array)) {
        throw new CorruptRecordError("a stored value is not the bytes of a record");
      }
      parts.push(entry.value);
    }
    return { versionstamp: head.versionstamp, parts, indexes, user };
  }

  /**
   * Commits: `"ok"`, `"conflict"` when a check failed, `"busy"` when another connection held the file's write
   * lock and `busyTimeoutMs` has not passed since `started`. A failed commit wrote nothing.
   */
  async #commit(operation: DenoKvAtomicOperation, started: number): Promise<"ok" | "conflict" | "busy"> {
    try {
      return (await operation.commit()).ok ? "ok" : "conflict";
    } catch (error) {
      if (reason(error) === "database is locked" && Date.now() - started < this.#busyTimeout) return "busy";
      throw new Error(`Deno KV atomic write failed: ${reason(error)}`, { cause: error });
    }
  }

  /**
   * Runs `attempt` until it answers; pauses a random, growing while after each `"conflict"` or `"busy"`.
   * `what` names the write in the error after `maxAttempts` conflicts ("an update").
   */
  async #retrying<T>(
    what: string,
    attempt: (started: number) => Promise<T | "conflict" | "busy">,
  ): Promise<T> {
    const started = Date.now();
    let conflicts = 0;
    for (let pause = 2;; pause = Math.min(2 * pause, 100)) {
      const outcome = await attempt(started);
      if (outcome === "conflict") {
        if (++conflicts >= this.#maxAttempts) {
          throw new Error(
            `DenoKvStore gave up ${what} after ${conflicts} attempts: overlapping requests of the same session kept committing first (raise "maxAttempts" if this is expected)`,
          );
        }
      } else if (outcome !== "busy") {
        return outcome;
      }
      // Spread the next try out so that overlapping writers stop colliding.
      await sleep(Math.random() * pause);
    }
  }

  /**
   * Adds to `operation` the sets of a record's values and, for a logged-in record, of its user entry and
   * its index entry (a copy of its metadata), all with native expiry from its deadline (`now` is the
   * write's time); and the deletes of
   * what is no longer used: values of indexes in `stale` past the record's, and the user and index entries
   * of the record replaced (`previous`: the user key of its user entry).
   *
   * @throws {Error} when the record's JSON is over 768 KiB, or its metadata's over 16 KiB for a logged-in one.
   */
  #writeRecord(
    operation: DenoKvAtomicOperation,
    key: string,
    record: SessionRecord,
    stale: Iterable<number>,
    previous: string | undefined,
    now: number,
  ): void {
    const parts = encodeRecord(record);
    const user = record.meta.userId === undefined ? undefined : userKey(record.meta.userId);
    const meta = user === undefined ? undefined : encodeMeta(record.meta);
    const deadline = Math.min(record.meta.expiresAt, record.meta.absoluteExpiresAt);
    const options = deadline >= NEVER
      ? undefined
      : { expireIn: Math.min(MAX_EXPIRE_IN, Math.max(1, Math.ceil(deadline - now))) };
    parts.forEach((part, index) => operation.set(this.#key(key, index), part, options));
    for (const index of stale) {
      if (index >= parts.length) operation.delete(this.#key(key, index));
    }
    if (user !== undefined) {
      operation.set(this.#key(key, USER_ENTRY), encoder.encode(user), options);
      operation.set(this.#indexKey(user, key), meta!, options);
    } else if (previous !== undefined) {
      operation.delete(this.#key(key, USER_ENTRY));
    }
    if (previous !== undefined && previous !== user) operation.delete(this.#indexKey(previous, key));
  }

  /**
   * Reads a fresh copy of a record; `undefined` when unknown or expired at
   * `now` (the core's time; see `storeTime`). One `list`. Throws
   * `CorruptRecordError` for a record whose JSON cannot be parsed.
   */
  async get(key: string, now?: number): Promise<SessionRecord | undefined> {
    const at = storeTime(this.#clock, now);
    const kv = await this.#database();
    const stored = await this.#read(kv, key);
    if (stored.versionstamp === null) return undefined;
    const record = this.#decode(stored);
    return isLive(record.meta, at) ? record : undefined;
  }

  #decode(stored: Stored): SessionRecord {
    try {
      return decodeRecord(stored.parts);
    } catch (error) {
      if (error instanceof CorruptRecordError) throw error;
      throw new CorruptRecordError("the stored JSON cannot be parsed", { cause: error });
    }
  }

  /**
   * Creates a record, or applies an update to a live one (a read and a
   * commit checked against the record's versionstamp, tried again when an
   * overlapping request committed first): `"gone"` when it is gone or
   * expired. A record with `meta.userId` is listed in its user's index by
   * the same commit; an update refreshes that entry and keeps the record's
   * user and login details as they were created.
   *
   * A create is one commit that checks that nothing is stored under the key;
   * when something is, it reads what is there and replaces it, removing its
   * index entry in the same commit.
   *
   * @throws {Error} (rejects) when the record's JSON is over 768 KiB, the
   * metadata of a logged-in record over 16 KiB, or a write lost to
   * overlapping commits `maxAttempts` times in a row.
   */
  async set(key: string, write: StoreWrite): Promise<WriteResult> {
    const now = storeTime(this.#clock, write.now);
    const kv = await this.#database();
    if (write.kind === "create") {
      let replaced: Stored | undefined;
      return await this.#retrying("a create", async (started) => {
        const operation = kv.atomic().check({
          key: this.#key(key, 0),
          versionstamp: replaced?.versionstamp ?? null,
        });
        // Replaces anything under the key, parts of a larger earlier record included.
        this.#writeRecord(operation, key, write.record, ALL_PARTS, replaced?.user, now);
        const outcome = await this.#commit(operation, started);
        if (outcome === "conflict") replaced = await this.#read(kv, key, 1);
        return outcome === "ok" ? "written" : outcome;
      });
    }
    return await this.#retrying("an update", async (started) => {
      const stored = await this.#read(kv, key);
      if (stored.versionstamp === null) return "gone";
      const current = this.#decode(stored);
      if (!isLive(current.meta, now)) return "gone";
      const record: SessionRecord = {
        data: applyChange(current.data, write),
        meta: withStoredUser(write.record.meta, current.meta),
      };
      const flash = write.flashChanged ? write.record.flash : current.flash;
      if (flash !== undefined) record.flash = flash;
      const operation = kv.atomic().check({ key: this.#key(key, 0), versionstamp: stored.versionstamp });
      this.#writeRecord(operation, key, record, stored.indexes, stored.user, now);
      const outcome = await this.#commit(operation, started);
      return outcome === "ok" ? "written" : outcome;
    });
  }

  /**
   * Deletes a record, every part of it and its entry in its user's index:
   * one `list` (of value 0 and the user entry, which names the index entry)
   * and one atomic commit checked against the versionstamp read, tried again
   * when a write of the record committed in between.
   */
  async delete(key: string): Promise<void> {
    const kv = await this.#database();
    await this.#retrying("a delete", async (started) => {
      const stored = await this.#read(kv, key, 1);
      const operation = kv.atomic().check({ key: this.#key(key, 0), versionstamp: stored.versionstamp });
      for (const index of ALL_PARTS) operation.delete(this.#key(key, index));
      operation.delete(this.#key(key, USER_ENTRY));
      if (stored.user !== undefined) operation.delete(this.#indexKey(stored.user, key));
      const outcome = await this.#commit(operation, started);
      return outcome === "ok" ? undefined : outcome;
    });
  }

  /**
   * The live records of `userId`, each with its metadata: one `list` of the
   * user's index entries (a round trip per 500), so O(sessions of that
   * user). Entries KV has not yet expired are never answered (deadlines
   * are checked at `now`, the core's time) and are deleted on the way, each by a commit
   * that checks it was not rewritten meanwhile. An entry that is not the
   * metadata of a record of this user (written behind the store's back) is
   * answered from the record itself, or deleted when that is not a live
   * record of the user.
   *
   * @throws {TypeError} when `userId` is not a non-empty string.
   */
  async listByUser(userId: string, now?: number): Promise<UserSessionEntry[]> {
    if (typeof userId !== "string" || userId === "") {
      throw new TypeError("DenoKvStore.listByUser needs a user id: a non-empty string");
    }
    const kv = await this.#database();
    const prefix = [...this.#prefix, USERS, userKey(userId)];
    const found: DenoKvEntry[] = [];
    try {
      for await (const entry of kv.list({ prefix }, { batchSize: INDEX_BATCH })) found.push(entry);
    } catch (error) {
      throw new Error(`Deno KV list failed: ${reason(error)}`, { cause: error });
    }
    const at = storeTime(this.#clock, now);
    const listed: UserSessionEntry[] = [];
    const stale: DenoKvEntry[] = [];
    for (const entry of found) {
      const key = entry.key[prefix.length];
      if (entry.key.length !== prefix.length + 1 || typeof key !== "string") continue;
      const meta = indexedMeta(entry.value, userId) ?? await this.#metaOf(key, userId, at);
      if (meta !== undefined && isLive(meta, at)) listed.push({ key, meta });
      else stale.push(entry);
    }
    await Promise.all(stale.map((entry) => this.#prune(kv, entry)));
    return listed;
  }

  /** The metadata of the live record under `key` when it is a record of `userId`. */
  async #metaOf(key: string, userId: string, now: number): Promise<SessionMeta | undefined> {
    let record: SessionRecord | undefined;
    try {
      record = await this.get(key, now);
    } catch (error) {
      if (!(error instanceof CorruptRecordError)) throw error;
    }
    return record?.meta.userId === userId ? record.meta : undefined;
  }

  /** Deletes a stale index entry unless a write replaced it meanwhile; a failure leaves it to a later listing. */
  async #prune(kv: DenoKv, entry: DenoKvEntry): Promise<void> {
    try {
      await kv.atomic().check({ key: entry.key, versionstamp: entry.versionstamp }).delete(entry.key)
        .commit();
    } catch {
      // Left for a later listing, or for KV's own expiry.
    }
  }

  /**
   * Closes the database if the store opened it (`path`); a handle passed as
   * `kv` stays open. Later calls reject.
   */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    const kv = this.#kv;
    this.#kv = undefined;
    if (this.#owned && kv !== undefined) {
      try {
        kv.close();
      } catch (error) {
        return Promise.reject(error);
      }
    }
    return Promise.resolve();
  }
}
