/**
 * A store wrapper for tests: counts calls, fails or holds them on demand.
 * It injects faults into a real store; it never replaces one.
 *
 * @module
 */

import type {
  MaybePromise,
  SessionRecord,
  Store,
  StoreWrite,
  UserSessionEntry,
  WriteResult,
} from "../store.ts";

/** The store methods a fault can target. */
export type StoreMethod = "get" | "set" | "delete";

/**
 * Wraps a store. Every call is counted in {@linkcode FaultyStore.calls};
 * {@linkcode FaultyStore.failNext} makes calls reject, and
 * {@linkcode FaultyStore.hold} parks calls until released, so tests can force
 * an interleaving of overlapping requests deterministically.
 *
 * @example
 * ```ts
 * import { FaultyStore } from "./faulty_store.ts";
 * import { MemoryStore } from "../stores/memory.ts";
 *
 * const store = new FaultyStore(new MemoryStore());
 * store.failNext("get", new Error("connection refused"));
 * await Promise.resolve(store.get("x")).catch((error) => console.log(error.message)); // "connection refused"
 * console.log(store.calls.get); // 1
 * ```
 */
export class FaultyStore implements Store {
  /** The wrapped store. */
  readonly inner: Store;
  /** How many times each method was called. */
  readonly calls: Record<StoreMethod, number> = { get: 0, set: 0, delete: 0 };
  #failures: Record<StoreMethod, unknown[]> = { get: [], set: [], delete: [] };
  #gates: Record<StoreMethod, Promise<void> | undefined> = {
    get: undefined,
    set: undefined,
    delete: undefined,
  };
  #failAll: unknown;

  /** The wrapped store's per-user index, passed straight through; absent when it has none. */
  readonly listByUser?: (userId: string, now?: number) => MaybePromise<UserSessionEntry[]>;
  /** The wrapped store's `groupsUserSessions`. */
  readonly groupsUserSessions?: boolean;

  /**
   * Wraps `inner`; no fault is armed until one is asked for.
   *
   * @param inner The real store to wrap.
   */
  constructor(inner: Store) {
    this.inner = inner;
    if (typeof inner.listByUser === "function") {
      this.listByUser = (userId, now) => inner.listByUser!(userId, now);
    }
    if (inner.groupsUserSessions !== undefined) this.groupsUserSessions = inner.groupsUserSessions;
  }

  /** Makes the next call of `method` reject with `error` (once per call to this). */
  failNext(method: StoreMethod, error: unknown = new Error("injected failure")): void {
    this.#failures[method].push(error);
  }

  /** Makes every call reject with `error` until `failAll(undefined)`. */
  failAll(error: unknown): void {
    this.#failAll = error;
  }

  /**
   * Parks every call of `method` made from now on until the returned function
   * is called. Calls made before are not affected.
   */
  hold(method: StoreMethod): () => void {
    let release!: () => void;
    this.#gates[method] = new Promise<void>((resolve) => (release = resolve));
    return () => {
      this.#gates[method] = undefined;
      release();
    };
  }

  /** Sets all counters back to zero. */
  resetCalls(): void {
    this.calls.get = this.calls.set = this.calls.delete = 0;
  }

  /**
   * Counts the call; when a gate or failure is armed, the promise of getting
   * past them. Without one, calls go straight through, so a synchronous inner
   * store stays synchronous and tests see the path real apps take.
   */
  #before(method: StoreMethod): Promise<void> | undefined {
    this.calls[method]++;
    const gate = this.#gates[method];
    if (gate === undefined && this.#failAll === undefined && this.#failures[method].length === 0) {
      return undefined;
    }
    return (async () => {
      if (gate) await gate;
      if (this.#failAll !== undefined) throw this.#failAll;
      if (this.#failures[method].length > 0) throw this.#failures[method].shift();
    })();
  }

  /** Counts, maybe fails or waits, then reads from the wrapped store. */
  get(key: string, now?: number): MaybePromise<SessionRecord | undefined> {
    const pending = this.#before("get");
    return pending ? pending.then(() => this.inner.get(key, now)) : this.inner.get(key, now);
  }

  /** Counts, maybe fails or waits, then writes to the wrapped store. */
  set(key: string, write: StoreWrite): MaybePromise<WriteResult> {
    const pending = this.#before("set");
    return pending ? pending.then(() => this.inner.set(key, write)) : this.inner.set(key, write);
  }

  /** Counts, maybe fails or waits, then deletes from the wrapped store. */
  delete(key: string): MaybePromise<void> {
    const pending = this.#before("delete");
    return pending ? pending.then(() => this.inner.delete(key)) : this.inner.delete(key);
  }

  /** Closes the wrapped store. */
  async close(): Promise<void> {
    await this.inner.close?.();
  }
}
