/**
 * A store that keeps sessions in this process's memory: the default store,
 * for development, tests and single-process apps that can lose sessions on
 * restart.
 *
 * @module
 */

import { applyChange } from "../store.ts";
import type { SessionMeta, SessionRecord, Store, StoreWrite } from "../store.ts";

/** Options for {@linkcode MemoryStore}. */
export interface MemoryStoreOptions {
  /**
   * The most sessions kept at once. When a new session would exceed it, the
   * session written least recently is dropped. Default 100,000.
   */
  maxEntries?: number;
  /** The clock, in milliseconds since the epoch. Default `Date.now`. */
  now?: () => number;
}

interface Entry {
  /** `{ data, flash }` as JSON: every read parses a fresh copy, so requests never share objects. */
  body: string;
  meta: SessionMeta;
}

/** Expired entries removed from the front of the write order per write: amortised cleanup. */
const SWEEP_PER_WRITE = 4;

let warned = false;

/**
 * Keeps sessions in a `Map`, ordered by last write. Values are stored as JSON,
 * so no two requests ever share an object. Expired sessions are never
 * returned; they are removed a few at a time from the oldest end on each
 * write (no full scans), and the size is bounded by `maxEntries`.
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
  #maxEntries: number;
  #now: () => number;

  /** @param options Size bound and clock. */
  constructor(options: MemoryStoreOptions = {}) {
    const maxEntries = options.maxEntries ?? 100_000;
    if (!Number.isInteger(maxEntries) || maxEntries < 1) {
      throw new TypeError('Invalid MemoryStore option "maxEntries": must be a positive integer');
    }
    this.#maxEntries = maxEntries;
    this.#now = options.now ?? Date.now;
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

  #live(id: string): Entry | undefined {
    const entry = this.#entries.get(id);
    if (entry === undefined) return undefined;
    if (entry.meta.expiresAt <= this.#now() || entry.meta.absoluteExpiresAt <= this.#now()) {
      this.#entries.delete(id);
      return undefined;
    }
    return entry;
  }

  /** Reads a fresh copy of a record; `undefined` when unknown or expired. */
  get(id: string): Promise<SessionRecord | undefined> {
    const entry = this.#live(id);
    if (entry === undefined) return Promise.resolve(undefined);
    const body = JSON.parse(entry.body);
    const record: SessionRecord = { data: body.data, meta: { ...entry.meta } };
    if (body.flash !== undefined) record.flash = body.flash;
    return Promise.resolve(record);
  }

  /** Creates a record, or applies an update to a live one (`null` when it is gone). */
  set(id: string, write: StoreWrite): Promise<string | null> {
    this.#sweep();
    let body: { data: Record<string, unknown>; flash?: Record<string, unknown> };
    if (write.kind === "create") {
      body = { data: write.record.data, flash: write.record.flash };
    } else {
      const entry = this.#live(id);
      if (entry === undefined) return Promise.resolve(null);
      body = JSON.parse(entry.body);
      applyChange(body.data, write);
      if (write.flashChanged) body.flash = write.record.flash;
    }
    // Re-inserting moves the entry to the newest end of the write order.
    this.#entries.delete(id);
    this.#entries.set(id, { body: JSON.stringify(body), meta: { ...write.record.meta } });
    if (this.#entries.size > this.#maxEntries) {
      this.#entries.delete(this.#entries.keys().next().value!);
    }
    return Promise.resolve(id);
  }

  /** Deletes a record. */
  delete(id: string): Promise<void> {
    this.#entries.delete(id);
    return Promise.resolve();
  }

  /** Drops every session. */
  clear(): Promise<void> {
    this.#entries.clear();
    return Promise.resolve();
  }

  /** Removes expired entries from the oldest end, a few per write. */
  #sweep(): void {
    const now = this.#now();
    let budget = SWEEP_PER_WRITE;
    for (const [id, entry] of this.#entries) {
      if (budget-- === 0 || entry.meta.expiresAt > now) return;
      this.#entries.delete(id);
    }
  }
}
