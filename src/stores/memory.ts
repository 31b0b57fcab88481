/**
 * A store that keeps sessions in this process's memory: the default store,
 * for development, tests and single-process apps that can lose sessions on
 * restart.
 *
 * @module
 */

import { rejectUnknownStoreOptions } from "../_options.ts";
import { applyChange, setOwn, storeTime } from "../store.ts";
import type {
  SessionMeta,
  SessionRecord,
  Store,
  StoreWrite,
  UserSessionEntry,
  WriteResult,
} from "../store.ts";

/** Options for {@linkcode MemoryStore}. */
export interface MemoryStoreOptions {
  /**
   * The most sessions kept at once. When a new session would exceed it, the
   * session closest to expiry is dropped. Default 100,000.
   */
  maxEntries?: number;
  /**
   * The clock, in milliseconds since the epoch. When given, it decides
   * expiry on every call; by default the store judges at the time the core
   * hands it (`Date.now()` for a call made outside the core; see
   * `storeTime`).
   */
  now?: () => number;
}

/** Every {@linkcode MemoryStoreOptions} name (the type checker keeps the list complete): others are refused. */
const OPTION_NAMES = Object.keys(
  { maxEntries: true, now: true } satisfies Record<keyof MemoryStoreOptions, true>,
);

/**
 * An object or array value, kept as JSON text: every read parses a fresh copy, so requests never share an
 * object. Strings, numbers, booleans and null are immutable and kept as they are.
 */
class JsonText {
  constructor(readonly text: string) {}
}

/** User keys (or flash keys) of one session, objects frozen as JSON text. */
type Values = Record<string, unknown>;

interface Entry {
  data: Values;
  flash: Values | undefined;
  // The metadata as fields of the entry rather than an object of its own: one object fewer per session for
  // the garbage collector to trace in a store of 100,000 sessions.
  createdAt: number;
  expiresAt: number;
  absoluteExpiresAt: number;
  lifetimeMs: number | null | undefined;
  /** The user the session is logged in as; its key is then in that user's index. */
  userId: string | undefined;
  /** What the app recorded at login, as JSON text. */
  details: JsonText | undefined;
  /** The expiry bucket this entry was last filed under. */
  bucket: number;
}

function freeze(value: unknown): unknown {
  return typeof value === "object" && value !== null ? new JsonText(JSON.stringify(value)) : value;
}

function thaw(value: unknown): unknown {
  return value instanceof JsonText ? JSON.parse(value.text) : value;
}

/** Copies values in, freezing objects. */
function freezeAll(target: Values, source: Record<string, unknown>): Values {
  for (const key of Object.keys(source)) setOwn(target, key, freeze(source[key]));
  return target;
}

/** A fresh plain object with fresh copies of every value. */
function thawAll(values: Values): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(values)) setOwn(out, key, thaw(values[key]));
  return out;
}

/**
 * The keys of sessions expiring in one minute, oldest first. A key whose session left the bucket (deleted,
 * evicted, expired, moved to another minute) stays in `keys` until the next compaction, counted in `dead`.
 */
interface Bucket {
  keys: string[];
  /** Keys before this index were drained. */
  head: number;
  /** Keys after `head` whose session is no longer filed here. */
  dead: number;
}

/** Width of an expiry bucket: sessions expiring in the same minute are swept together. */
const BUCKET_MS = 60_000;
/** Bucket references examined per read or write: cleanup is spread thin, never a pause. */
const SWEEP_PER_CALL = 8;

let warned = false;

/**
 * Keeps sessions in a `Map`. Object and array values are stored as JSON, so
 * no two requests ever share an object; an update touches only the keys it
 * changes.
 *
 * Expiry: `get` never returns an expired session. For cleanup, every session
 * is filed under the minute it expires in (a session deleted, evicted or
 * moved to another minute is taken out of it, in constant work on average,
 * so memory follows the sessions held); each read and each write removes up
 * to 8 sessions of
 * the minutes already past — no timers, no scans of live sessions, constant
 * work per request, and a read-mostly app reclaims expired sessions as fast
 * as one that writes. Beyond `maxEntries`, the session closest to expiry goes
 * first.
 *
 * One process only: sessions are lost on restart and not shared between
 * processes or workers. A warning says so once.
 *
 * @example
 * ```ts
 * import { MemoryStore } from "./memory.ts";
 * import { SessionManager } from "../core.ts";
 *
 * const sessions = new SessionManager({ store: new MemoryStore({ maxEntries: 10_000 }) });
 * const session = await sessions.load({ cookie: null, https: false });
 * session.set("user", "ada");
 * await sessions.commit(session);
 * console.log(sessions.store instanceof MemoryStore); // true
 * ```
 */
export class MemoryStore implements Store {
  #entries = new Map<string, Entry>();
  /** User id → the storage keys of that user's sessions (the per-user index). */
  #users = new Map<string, Set<string>>();
  /**
   * Bucket number → the keys filed under it, oldest first. Removals are counted and buckets compacted, so what
   * the buckets hold stays within twice the sessions held (a bucket is otherwise kept until its minute is past,
   * a day by default).
   */
  #buckets = new Map<number, Bucket>();
  /** The bucket numbers in `#buckets`, ascending. */
  #bucketOrder: number[] = [];
  #maxEntries: number;
  /** The clock the app gave the store, if any (see `storeTime`). */
  #clock: (() => number) | undefined;

  /**
   * An empty store.
   *
   * @param options Size bound and clock.
   * @throws {TypeError} naming the option, when an option is invalid or unknown.
   */
  constructor(options: MemoryStoreOptions = {}) {
    rejectUnknownStoreOptions("MemoryStore", options, OPTION_NAMES);
    const maxEntries = options.maxEntries ?? 100_000;
    if (!Number.isInteger(maxEntries) || maxEntries < 1) {
      throw new TypeError('Invalid MemoryStore option "maxEntries": must be a positive integer');
    }
    this.#maxEntries = maxEntries;
    this.#clock = options.now;
    if (!warned) {
      warned = true;
      console.warn(
        "MemoryStore keeps sessions in this process only: they are lost on restart and not shared between processes; use a persistent store in production",
      );
    }
  }

  /** How many sessions are held, expired ones not yet swept included. */
  get size(): number {
    return this.#entries.size;
  }

  #live(key: string, now: number): Entry | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= now || entry.absoluteExpiresAt <= now) {
      this.#remove(key, entry);
      return undefined;
    }
    return entry;
  }

  /** Removes a record and, in the same step, its key from its user's index. Every removal goes through here. */
  #remove(key: string, entry: Entry, unfile = true): void {
    this.#entries.delete(key);
    if (unfile) this.#unfile(key, entry.bucket);
    if (entry.userId === undefined) return;
    const keys = this.#users.get(entry.userId);
    keys?.delete(key);
    if (keys?.size === 0) this.#users.delete(entry.userId);
  }

  /** The metadata of an entry, as a fresh object. */
  #meta(entry: Entry): SessionMeta {
    const meta: SessionMeta = {
      createdAt: entry.createdAt,
      expiresAt: entry.expiresAt,
      absoluteExpiresAt: entry.absoluteExpiresAt,
    };
    if (entry.lifetimeMs !== undefined) meta.lifetimeMs = entry.lifetimeMs;
    if (entry.userId !== undefined) meta.userId = entry.userId;
    if (entry.details !== undefined) meta.details = thaw(entry.details) as Record<string, unknown>;
    return meta;
  }

  /**
   * The live sessions of `userId`, from an index of that user's keys kept in
   * step with every write and removal: O(sessions of that user). Expired
   * ones are removed on the way.
   */
  listByUser(userId: string, now?: number): UserSessionEntry[] {
    const keys = this.#users.get(userId);
    if (keys === undefined) return [];
    const at = storeTime(this.#clock, now);
    const out: UserSessionEntry[] = [];
    for (const key of [...keys]) {
      const entry = this.#live(key, at);
      if (entry !== undefined) out.push({ key, meta: this.#meta(entry) });
    }
    return out;
  }

  /**
   * Reads a fresh copy of a record; `undefined` when unknown or expired at
   * `now` (the core's time; see `storeTime`). Synchronous, as every method here. Like a write, it first removes a few
   * expired sessions, so a store that is mostly read still gives back the
   * memory of sessions that expired.
   */
  get(key: string, now?: number): SessionRecord | undefined {
    const at = storeTime(this.#clock, now);
    this.#sweep(at);
    const entry = this.#live(key, at);
    if (entry === undefined) return undefined;
    const record: SessionRecord = { data: thawAll(entry.data), meta: this.#meta(entry) };
    if (entry.flash !== undefined) record.flash = thawAll(entry.flash);
    return record;
  }

  /**
   * Creates a record, or applies an update to a live one (`"gone"` when there
   * is none). Updates touch only the keys they change.
   */
  set(key: string, write: StoreWrite): WriteResult {
    const now = storeTime(this.#clock, write.now);
    this.#sweep(now);
    const { record } = write;
    let entry: Entry | undefined;
    if (write.kind === "create") {
      const previous = this.#entries.get(key);
      if (previous !== undefined) this.#remove(key, previous);
      else if (this.#entries.size >= this.#maxEntries) this.#evictOne();
      const userId = record.meta.userId;
      entry = {
        data: freezeAll({}, record.data),
        flash: record.flash && freezeAll({}, record.flash),
        createdAt: record.meta.createdAt,
        expiresAt: record.meta.expiresAt,
        absoluteExpiresAt: record.meta.absoluteExpiresAt,
        lifetimeMs: record.meta.lifetimeMs,
        userId,
        details: record.meta.details === undefined
          ? undefined
          : new JsonText(JSON.stringify(record.meta.details)),
        bucket: Number.NaN,
      };
      this.#entries.set(key, entry);
      if (userId !== undefined) {
        let keys = this.#users.get(userId);
        if (keys === undefined) this.#users.set(userId, keys = new Set());
        keys.add(key);
      }
    } else {
      entry = this.#live(key, now);
      if (entry === undefined) return "gone";
      applyChange(entry.data, write, freeze);
      if (write.flashChanged) entry.flash = record.flash && freezeAll({}, record.flash);
      entry.createdAt = record.meta.createdAt;
      entry.expiresAt = record.meta.expiresAt;
      entry.absoluteExpiresAt = record.meta.absoluteExpiresAt;
      entry.lifetimeMs = record.meta.lifetimeMs;
    }
    const bucket = Math.floor(Math.min(entry.expiresAt, entry.absoluteExpiresAt) / BUCKET_MS);
    if (entry.bucket !== bucket) {
      this.#unfile(key, entry.bucket);
      entry.bucket = bucket;
      this.#file(key, bucket);
    }
    return "written";
  }

  /** The storage keys held, expired ones not yet swept included. */
  keys(): IterableIterator<string> {
    return this.#entries.keys();
  }

  /** Deletes a record. */
  delete(key: string): void {
    const entry = this.#entries.get(key);
    if (entry !== undefined) this.#remove(key, entry);
  }

  /** Drops every session. */
  clear(): Promise<void> {
    this.#entries.clear();
    this.#users.clear();
    this.#buckets.clear();
    this.#bucketOrder = [];
    return Promise.resolve();
  }

  #file(key: string, bucket: number): void {
    let filed = this.#buckets.get(bucket);
    if (filed === undefined) {
      filed = { keys: [], head: 0, dead: 0 };
      this.#buckets.set(bucket, filed);
      this.#bucketOrder.splice(this.#position(bucket), 0, bucket);
    }
    filed.keys.push(key);
  }

  /**
   * Notes that `key` left `bucket`. Once half of what the bucket still holds is dead, it is compacted to its
   * live keys (or dropped when none is left): linear in its size, after at least half as many removals, so
   * constant work per removal, and a bucket never holds more than twice its live keys plus the drained
   * prefix, itself dropped once it is half the list.
   */
  #unfile(key: string, bucket: number): void {
    const filed = this.#buckets.get(bucket);
    if (filed === undefined) return;
    filed.dead++;
    if (filed.dead * 2 < filed.keys.length - filed.head) return;
    const live: string[] = [];
    for (let i = filed.head; i < filed.keys.length; i++) {
      const k = filed.keys[i];
      // A key moved out and back in is in the list twice: keep it once.
      if (k !== key && this.#entries.get(k)?.bucket === bucket) live.push(k);
    }
    filed.keys = [...new Set(live)];
    filed.head = 0;
    filed.dead = 0;
    if (filed.keys.length > 0) return;
    this.#buckets.delete(bucket);
    const at = this.#position(bucket);
    if (this.#bucketOrder[at] === bucket) this.#bucketOrder.splice(at, 1);
  }

  /** Where `bucket` is, or would go, in the ascending `#bucketOrder`: a binary search. */
  #position(bucket: number): number {
    const order = this.#bucketOrder;
    let low = 0;
    let high = order.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (order[middle] < bucket) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  /**
   * Walks the keys of the soonest buckets, oldest first, deleting the
   * sessions still filed there. With `now`, only buckets entirely in the past
   * and at most `budget` keys (a sweep); without, until one session is
   * deleted whatever its expiry (an eviction).
   */
  #drain(budget: number, now?: number): void {
    while (budget > 0 && this.#bucketOrder.length > 0) {
      const bucket = this.#bucketOrder[0];
      if (now !== undefined && (bucket + 1) * BUCKET_MS > now) return;
      const filed = this.#buckets.get(bucket)!;
      while (budget > 0 && filed.head < filed.keys.length) {
        budget--;
        const key = filed.keys[filed.head++];
        const entry = this.#entries.get(key);
        if (entry === undefined || entry.bucket !== bucket) {
          if (filed.dead > 0) filed.dead--; // a dead key drained: no longer among those after `head`
          continue;
        }
        this.#remove(key, entry, false);
        if (now === undefined) budget = 0;
      }
      if (filed.head === filed.keys.length) {
        this.#buckets.delete(bucket);
        this.#bucketOrder.shift();
      } else if (filed.head >= 64 && filed.head * 2 >= filed.keys.length) {
        // Drop the drained prefix once it is half the list: linear in what is left, after as many drained.
        filed.keys = filed.keys.slice(filed.head);
        filed.head = 0;
      }
    }
  }

  /** Removes a few expired sessions: the ones filed under minutes already past. */
  #sweep(now: number): void {
    this.#drain(SWEEP_PER_CALL, now);
  }

  /** Drops the session closest to expiry. */
  #evictOne(): void {
    this.#drain(Number.POSITIVE_INFINITY);
  }
}
