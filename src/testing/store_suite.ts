/**
 * The conformance suite every session store passes. Third-party stores can
 * run it too: it takes the test runner's `test` function.
 *
 * @module
 */

import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { generateId, generateIdInGroup, SignedToken, storageKey, userKey } from "../_crypto.ts";
import { SessionManager } from "../core.ts";
import type { SecurityEvent, SessionOptions } from "../core.ts";
import { CorruptRecordError, NEVER } from "../store.ts";
import type { SessionMeta, SessionRecord, Store, StoreWrite } from "../store.ts";
import { SessionConflictError, SessionLimitError } from "../errors.ts";

/** A test registration function: `node:test`'s `test`, `Deno.test`, Bun's `test`... */
export type TestFunction = (name: string, fn: () => Promise<void>) => unknown;

/**
 * What a store may lack, unstorage-style: the cases that need it are
 * registered as skipped, with the reason the store gives, instead of failing
 * or disappearing.
 *
 * - `serverRecords`: keeping records on a server under the storage keys the
 *   core gives (`get`, `set` and `delete` by key, a dump of what is kept). A
 *   `CookieStore` lacks it: each record travels sealed in its cookie. The
 *   cases through the core run for every store.
 * - `perUserIndex`: `listByUser`, the index of each user's sessions behind
 *   `Session.logIn()`, `sessionsOfUser()`, `revoke()` and
 *   `logOutEverywhere()`.
 */
export type StoreCapability = "serverRecords" | "perUserIndex";

/** How to run the suite against one store. */
export interface StoreSuiteOptions {
  /** The store's name, used in test titles. */
  name: string;
  /** Makes a store for one test. It is closed (`close()`) after the test. */
  createStore: () => Store | Promise<Store>;
  /** Milliseconds a short-lived record lives in the expiry test. Default 300. */
  shortLifetime?: number;
  /**
   * Writes an unparsable record (truncated JSON) under the storage key `key`
   * behind the store's back, for the corrupt-record test. Without it that
   * test is not run.
   */
  plantCorrupt?: (store: Store, key: string) => Promise<void>;
  /**
   * Everything the store holds, keys and values, as text (read behind the
   * store's back where the engine allows: a table dump, `KEYS` and
   * `HGETALL`), for the test that no session id is kept at rest.
   */
  dump: (store: Store) => Promise<string>;
  /**
   * Capability switch for an engine that limits the size of a value: the
   * largest record the store keeps, in bytes of its JSON text in UTF-8
   * (`DenoKvStore`: 786,432). The large-value test then writes a value that
   * fits, and another test checks that a write over the limit rejects and
   * leaves the stored record as it was. Default: no limit (the large-value
   * test writes 1 MB).
   */
  maxRecordBytes?: number;
  /**
   * The secret the suite's session managers sign cookies with; `null` for a
   * store that protects the cookie itself and refuses one (`CookieStore`).
   * Default: a fixed test secret.
   */
  secret?: string | null;
  /** Capabilities the store lacks, each with the reason (see {@linkcode StoreCapability}). */
  lacks?: Partial<Record<StoreCapability, string>>;
}

/** When a built write expires: `lifetimeMs` from now (default one minute), or at `expiresAt`. */
export interface WriteTiming {
  /** Milliseconds from now. */
  lifetimeMs?: number;
  /** An absolute time instead, in milliseconds since the epoch. */
  expiresAt?: number;
}

function meta({ lifetimeMs = 60_000, expiresAt }: WriteTiming = {}): SessionMeta {
  const now = Date.now();
  const at = expiresAt ?? now + lifetimeMs;
  return { createdAt: now, expiresAt: at, absoluteExpiresAt: at };
}

/**
 * A create as the core sends it, for store tests.
 *
 * @example
 * ```ts
 * import { createWrite } from "./store_suite.ts";
 *
 * const write = createWrite({ user: "ada" }, { flash: { notice: "hi" } });
 * console.log(write.kind, write.record.flash); // "create" { notice: "hi" }
 * ```
 */
export function createWrite(
  data: Record<string, unknown>,
  options: WriteTiming & { flash?: Record<string, unknown> } = {},
): StoreWrite {
  const record: SessionRecord = { data, meta: meta(options) };
  if (options.flash) record.flash = options.flash;
  return {
    kind: "create",
    record,
    set: data,
    deleted: [],
    cleared: false,
    flashChanged: options.flash !== undefined,
  };
}

/**
 * An update as the core sends it, for store tests: the request's full view
 * of the data plus its change (`flash: null` consumes the flash values).
 *
 * @example
 * ```ts
 * import { updateWrite } from "./store_suite.ts";
 *
 * const write = updateWrite({ a: 1, b: 2 }, { set: { c: 3 }, deleted: ["a"] });
 * console.log(write.record.data); // { b: 2, c: 3 }
 * ```
 */
export function updateWrite(
  view: Record<string, unknown>,
  change: {
    set?: Record<string, unknown>;
    deleted?: string[];
    cleared?: boolean;
    flash?: Record<string, unknown> | null;
  } = {},
  timing: WriteTiming = {},
): StoreWrite {
  const data: Record<string, unknown> = change.cleared ? {} : { ...view };
  for (const key of change.deleted ?? []) delete data[key];
  Object.assign(data, change.set ?? {});
  const record: SessionRecord = { data, meta: meta(timing) };
  if (change.flash) record.flash = change.flash;
  return {
    kind: "update",
    record,
    set: Object.assign(Object.create(null), change.set ?? {}),
    deleted: change.deleted ?? [],
    cleared: change.cleared ?? false,
    flashChanged: change.flash !== undefined,
  };
}

const create = (data: Record<string, unknown>, flash?: Record<string, unknown>, lifetimeMs?: number) =>
  createWrite(data, { flash, lifetimeMs });
const update = updateWrite;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Characters that broke stores in the past: path, query, glob, quote and line separators. */
export const HOSTILE_CHARACTERS = [
  "/",
  "?",
  "#",
  "%",
  "%2F",
  ".",
  ":",
  "*",
  "'",
  '"',
  ";",
  "\\",
  " ",
  "\r",
  "\n",
  "..",
  "/../../FLUSHALL",
  "$$",
  '";--',
  ".json",
];

/**
 * User ids that broke per-user indexes: NUL (PostgreSQL text refuses it;
 * Deno's `node:sqlite` cuts text it reads at it), lone surrogates (drivers
 * that encode UTF-8 turn both into U+FFFD, making two users one), U+FFFD
 * itself, an escape sequence spelled out, quotes and backslashes. Each must
 * be kept exactly and apart from every other.
 */
export const EDGE_USER_IDS: readonly string[] = [
  "a",
  "a\u0000",
  "a\u0000b",
  "a\\u0000",
  "a\uD800",
  "a\uDBFF",
  "a\uFFFD",
  "a\uD83D\uDE00",
  'a"',
  "a\\",
  "a'; DROP TABLE sessions; --",
  "ä",
  "A",
];

/** Login details with NUL, a lone surrogate, quotes and nesting, for the same tests. */
export const EDGE_DETAILS: Readonly<Record<string, unknown>> = {
  text: "x\u0000y\uD800",
  quote: "'\"\\",
  emoji: "😀",
  deep: { list: [null, 1.5, "\u0000"] },
};

/**
 * Registers the store conformance tests with `test`.
 *
 * @example Running it with node:test (also works under Deno)
 * ```ts ignore
 * import { test } from "node:test";
 * import { storeConformanceSuite } from "./store_suite.ts";
 * import { MemoryStore } from "../stores/memory.ts";
 *
 * storeConformanceSuite(test, { name: "MemoryStore", createStore: () => new MemoryStore() });
 * ```
 */
export function storeConformanceSuite(test: TestFunction, options: StoreSuiteOptions): void {
  const shortLifetime = options.shortLifetime ?? 300;
  const secret = options.secret === undefined ? "store-suite-secret-0123456789abcdefgh" : options.secret;
  const signing: SessionOptions = secret === null ? {} : { secret };
  const skip = skipper(test);
  const withStore = (title: string, body: (store: Store) => Promise<void>, needs?: StoreCapability) => {
    const reason = needs === undefined ? undefined : options.lacks?.[needs];
    if (reason !== undefined) return skip(`${options.name}: ${title}`, reason);
    return test(`${options.name}: ${title}`, async () => {
      const store = await options.createStore();
      try {
        await body(store);
      } finally {
        await store.close?.();
      }
    });
  };
  /** A case of the store contract itself: the store's own get, set and delete under storage keys. */
  const withRecords = (title: string, body: (store: Store) => Promise<void>) =>
    withStore(title, body, "serverRecords");

  withRecords("an unknown id reads as undefined", async (store) => {
    equal(await store.get(generateId()), undefined);
  });

  withRecords('create answers "written" and the record reads back exactly', async (store) => {
    const id = generateId();
    const write = create({ n: 1, s: "x" }, { notice: "hi" });
    equal(await store.set(id, write), "written");
    deepEqual(await store.get(id), write.record);
  });

  withRecords("nested JSON, unicode and empty values round-trip", async (store) => {
    const id = generateId();
    const data = {
      nested: { list: [1, -2.5, 1e21, true, false, null, { deep: [[], {}] }], empty: {} },
      emoji: "👩‍🚀🚀",
      separators: "line\u2028para\u2029end",
      nul: "a\u0000b",
      controls: "\t\r\n\b\f\u001f",
      quotes: `'"\`\\`,
      "": "empty key",
      "d:x": "looks like a store-internal field",
      "meta": "a user key named meta",
      "_expire": 0,
      emptyString: "",
      zero: 0,
      emptyList: [],
    };
    await store.set(id, create(data));
    deepEqual((await store.get(id))?.data, data);
  });

  withRecords("records read back as fresh copies", async (store) => {
    const id = generateId();
    await store.set(id, create({ list: [1] }));
    const first = await store.get(id);
    (first!.data.list as number[]).push(2);
    first!.data.added = true;
    deepEqual((await store.get(id))?.data, { list: [1] });
  });

  withRecords("an update sets, deletes and keeps keys, and replaces meta", async (store) => {
    const id = generateId();
    await store.set(id, create({ keep: 1, drop: 2, change: 3 }));
    const write = update({ keep: 1, drop: 2, change: 3 }, {
      set: { change: 4, added: [5] },
      deleted: ["drop"],
    });
    equal(await store.set(id, write), "written");
    const record = await store.get(id);
    deepEqual(record?.data, { keep: 1, change: 4, added: [5] });
    deepEqual(record?.meta, write.record.meta);
  });

  withRecords(
    "a session's own lifetime (meta.lifetimeMs: a number or null) is kept by creates and updates",
    async (store) => {
      const id = generateId();
      const write = create({ a: 1 });
      write.record.meta.lifetimeMs = 14 * 86_400_000;
      await store.set(id, write);
      deepEqual((await store.get(id))?.meta, write.record.meta);
      const browserSession = update({ a: 1 }, { set: { b: 2 } });
      browserSession.record.meta.lifetimeMs = null;
      equal(await store.set(id, browserSession), "written");
      deepEqual((await store.get(id))?.meta, browserSession.record.meta);
      const configured = update({ a: 1, b: 2 });
      equal(await store.set(id, configured), "written");
      const meta = (await store.get(id))?.meta;
      deepEqual(meta, configured.record.meta);
      ok(meta !== undefined && !("lifetimeMs" in meta), "no lifetime of its own reads back as absent");
    },
  );

  withRecords("an update with cleared removes every key first", async (store) => {
    const id = generateId();
    await store.set(id, create({ a: 1, b: 2 }));
    await store.set(id, update({ a: 1, b: 2 }, { cleared: true, set: { c: 3 } }));
    deepEqual((await store.get(id))?.data, { c: 3 });
  });

  withRecords("flash values are kept, replaced or removed as the write says", async (store) => {
    const id = generateId();
    await store.set(id, create({ a: 1 }, { notice: "saved" }));
    await store.set(id, update({ a: 1 }, { set: { b: 2 } }));
    deepEqual((await store.get(id))?.flash, { notice: "saved" }, "untouched flash stays");
    await store.set(id, update({ a: 1, b: 2 }, { flash: { notice: "again" } }));
    deepEqual((await store.get(id))?.flash, { notice: "again" }, "replaced flash");
    await store.set(id, update({ a: 1, b: 2 }, { flash: null }));
    equal((await store.get(id))?.flash, undefined, "consumed flash is gone");
  });

  withRecords('an update of an unknown key answers "gone" and creates nothing', async (store) => {
    const id = generateId();
    equal(await store.set(id, update({}, { set: { a: 1 } })), "gone");
    equal(await store.get(id), undefined);
  });

  withRecords("delete removes a record; deleting an unknown id is fine", async (store) => {
    const id = generateId();
    await store.set(id, create({ a: 1 }));
    await store.delete(id);
    equal(await store.get(id), undefined);
    await store.delete(generateId());
  });

  withRecords(
    "no lost updates: overlapping writes of different keys both persist, in either order",
    async (store) => {
      for (const order of ["a-first", "b-first"]) {
        const id = generateId();
        await store.set(id, create({ x: 0 }));
        const view = { x: 0 }; // both requests loaded this
        const writeA = update(view, { set: { a: 1 } });
        const writeB = update(view, { set: { b: 2 } });
        if (order === "a-first") {
          await store.set(id, writeA);
          await store.set(id, writeB);
        } else {
          await store.set(id, writeB);
          await store.set(id, writeA);
        }
        deepEqual((await store.get(id))?.data, { x: 0, a: 1, b: 2 }, order);
      }
    },
  );

  withRecords("a key deleted by one request stays deleted when another commits later", async (store) => {
    const id = generateId();
    await store.set(id, create({ x: 1, y: 2 }));
    const view = { x: 1, y: 2 };
    await store.set(id, update(view, { deleted: ["x"] }));
    await store.set(id, update(view, { set: { z: 3 } }));
    deepEqual((await store.get(id))?.data, { y: 2, z: 3 });
  });

  withRecords('no resurrection: an update after delete (logout) answers "gone"', async (store) => {
    const id = generateId();
    await store.set(id, create({ user: "ada" }));
    await store.delete(id);
    equal(await store.set(id, update({ user: "ada" }, { set: { cart: [1] } })), "gone");
    equal(await store.get(id), undefined);
  });

  withRecords("no resurrection: the old id of a regenerated session stays gone", async (store) => {
    const oldId = generateId();
    const newId = generateId();
    await store.set(oldId, create({ user: "ada" }));
    await store.set(newId, create({ user: "ada", role: "admin" }));
    await store.delete(oldId);
    equal(await store.set(oldId, update({ user: "ada" }, { set: { x: 1 } })), "gone");
    equal(await store.get(oldId), undefined);
    deepEqual((await store.get(newId))?.data, { user: "ada", role: "admin" });
  });

  withRecords("a record past its expiry is never returned nor updated", async (store) => {
    const id = generateId();
    await store.set(id, create({ a: 1 }, undefined, shortLifetime));
    deepEqual((await store.get(id))?.data, { a: 1 });
    await sleep(shortLifetime + 150);
    equal(await store.get(id), undefined);
    equal(await store.set(id, update({ a: 1 }, { set: { b: 2 } })), "gone");
    equal(await store.get(id), undefined);
  });

  withRecords(
    "a read and an update judge expiry at the time the core hands over, not the store's clock",
    async (store) => {
      // Times only move forward, as the core's do: a store may sweep what expired by the latest time it saw.
      const [read, late] = [generateId(), generateId()];
      for (const id of [read, late]) await store.set(id, create({ a: 1 })); // a minute to live
      const onTime = update({ a: 1 }, { set: { c: 3 } });
      onTime.now = Date.now();
      equal(await store.set(read, onTime), "written", "an update at the core's time now");
      deepEqual((await store.get(read, Date.now()))?.data, { a: 1, c: 3 }, "live at the core's time now");
      const later = Date.now() + 120_000;
      equal(await store.get(read, later), undefined, "expired at a later time the core hands over");
      const lateWrite = update({ a: 1 }, { set: { b: 2 } });
      lateWrite.now = later;
      equal(await store.set(late, lateWrite), "gone", "an update at a later time finds the record expired");
    },
  );

  withRecords("a session with expiry turned off (NEVER) is kept", async (store) => {
    const id = generateId();
    const now = Date.now();
    const write = create({ a: 1 });
    write.record.meta = { createdAt: now, expiresAt: NEVER, absoluteExpiresAt: NEVER };
    await store.set(id, write);
    deepEqual((await store.get(id))?.meta, write.record.meta);
  });

  withRecords("hostile ids and values round-trip and never reach another key", async (store) => {
    const base = generateId();
    await store.set(base, create({ who: "base" }));
    const ids = HOSTILE_CHARACTERS.map((chars, i) => `${base}${chars}${i}`);
    ids.push(`${base}/..`, `../${base}`, `${base}/../${base}`);
    for (const [i, id] of ids.entries()) {
      const value = `v${i}${HOSTILE_CHARACTERS.join("")}`;
      equal(
        await store.set(id, create({ value, [`k${HOSTILE_CHARACTERS[i % HOSTILE_CHARACTERS.length]}`]: i })),
        "written",
      );
    }
    for (const [i, id] of ids.entries()) {
      const record = await store.get(id);
      equal(record?.data.value, `v${i}${HOSTILE_CHARACTERS.join("")}`, JSON.stringify(id));
    }
    deepEqual((await store.get(base))?.data, { who: "base" }, "the plain id is untouched");
    for (const id of ids) await store.delete(id);
    deepEqual((await store.get(base))?.data, { who: "base" }, "deleting hostile ids left the plain one");
  });

  withRecords("a user key named __proto__ is an ordinary key, on create and on update", async (store) => {
    const id = generateId();
    // JSON.parse makes "__proto__" an own key, as a store reading stored JSON would.
    await store.set(id, create(JSON.parse('{"__proto__": {"admin": true}, "a": 1}')));
    const created = (await store.get(id))!.data;
    equal(Object.getPrototypeOf(created), Object.prototype, "the prototype is untouched");
    deepEqual(Object.keys(created).sort(), ["__proto__", "a"]);
    deepEqual(Object.getOwnPropertyDescriptor(created, "__proto__")?.value, { admin: true });
    await store.set(id, update({ a: 1 }, { set: JSON.parse('{"__proto__": 2}') }));
    const updated = (await store.get(id))!.data;
    equal(Object.getPrototypeOf(updated), Object.prototype);
    equal(Object.getOwnPropertyDescriptor(updated, "__proto__")?.value, 2);
    equal(updated.a, 1);
  });

  const limit = options.maxRecordBytes;
  const bigLength = limit === undefined ? 1024 * 1024 : limit - 1024;
  withRecords(`a large value (${bigLength} bytes) round-trips`, async (store) => {
    const id = generateId();
    const big = "x".repeat(bigLength - 3) + "end";
    await store.set(id, create({ big }));
    equal((await store.get(id))?.data.big, big);
  });

  if (limit !== undefined) {
    withRecords(
      `a record over the store's limit (${limit} bytes) is refused and nothing is written`,
      async (store) => {
        const id = generateId();
        const over = "é".repeat(Math.ceil(limit / 2)); // two bytes each in UTF-8
        await rejects(async () => await store.set(id, create({ over })), Error, "a create over the limit");
        equal(await store.get(id), undefined, "the refused create wrote nothing");
        await store.set(id, create({ small: 1 }));
        await rejects(
          async () => await store.set(id, update({ small: 1 }, { set: { over } })),
          Error,
          "an update over the limit",
        );
        deepEqual((await store.get(id))?.data, { small: 1 }, "the refused update left the record as it was");
      },
    );
  }

  withRecords("50 sessions written and read in parallel stay apart", async (store) => {
    const ids = Array.from({ length: 50 }, generateId);
    await Promise.all(ids.map((id, i) => store.set(id, create({ owner: i }))));
    const records = await Promise.all(ids.map((id) => store.get(id)));
    records.forEach((record, i) => equal(record?.data.owner, i));
  });

  const cookieOf = (setCookie: string | undefined) => setCookie?.split(";")[0];

  withRecords("through the core, unsigned: a session is created, read back and updated", async (store) => {
    const manager = new SessionManager({ store });
    const first = await manager.load({ cookie: null, https: false });
    first.set("user", "ada");
    const cookie = cookieOf(await manager.commit(first));
    equal(cookie, `sid=${first.id}`, "the unsigned cookie carries the id itself");
    const second = await manager.load({ cookie, https: false });
    equal(second.isNew, false);
    equal(second.get("user"), "ada");
    second.set("n", 1);
    await manager.commit(second);
    deepEqual({ ...(await manager.load({ cookie, https: false })).toJSON() }, { user: "ada", n: 1 });
  });

  withRecords(
    "through the core, a lifetime past the end of time is kept as never ending and read back",
    async (store) => {
      // express-session's "never expire" idiom (cookie.maxAge: Number.MAX_SAFE_INTEGER) and setLifetime(1e306):
      // the core caps every deadline at NEVER, so each store keeps the record and reads it back.
      for (const lifetime of [Number.MAX_SAFE_INTEGER / 1000, Number.MAX_SAFE_INTEGER, 1e306]) {
        const manager = new SessionManager({
          store,
          ...signing,
          idleTimeout: lifetime,
          absoluteTimeout: lifetime,
        });
        const first = await manager.load({ cookie: null, https: false });
        first.set("user", "ada").setLifetime(lifetime);
        const cookie = cookieOf(await manager.commit(first));
        for (let i = 0; i < 2; i++) {
          const again = await manager.load({ cookie, https: false });
          equal(again.isNew, false, `lifetime ${lifetime}: read back`);
          equal(again.get("user"), "ada");
          again.set("n", i).touch();
          await manager.commit(again);
        }
        const record = await store.get(storageKey(first.id));
        ok(record !== undefined, `lifetime ${lifetime}: stored`);
        ok(
          record.meta.expiresAt <= NEVER && record.meta.absoluteExpiresAt <= NEVER,
          "deadlines within NEVER",
        );
        ok(Number.isSafeInteger(record.meta.expiresAt) && Number.isFinite(record.meta.lifetimeMs!));
        await manager.store.delete(storageKey(first.id));
      }
    },
  );

  withRecords("no session id is kept at rest: only storage keys derived from ids", async (store) => {
    const manager = new SessionManager({ store, ...signing });
    const ids: string[] = [];
    // A run of requests: create, update, flash, regenerate (login), and a second user who logs out.
    const ada = await manager.load({ cookie: null, https: false });
    ada.set("user", "ada");
    let cookie = cookieOf(await manager.commit(ada));
    ids.push(ada.id);
    const update = await manager.load({ cookie, https: false });
    update.set("cart", [1, 2]);
    update.flash("notice", "saved");
    await manager.commit(update);
    const login = await manager.load({ cookie, https: false });
    await login.regenerate();
    login.set("role", "admin");
    cookie = cookieOf(await manager.commit(login));
    ids.push(login.id);
    const bob = await manager.load({ cookie: null, https: false });
    bob.set("user", "bob");
    const bobCookie = cookieOf(await manager.commit(bob));
    ids.push(bob.id);
    const logout = await manager.load({ cookie: bobCookie, https: false });
    await logout.destroy();
    await manager.commit(logout);
    const carol = await manager.load({ cookie: null, https: false });
    carol.set("user", "carol");
    await manager.commit(carol);
    ids.push(carol.id);

    equal((await manager.load({ cookie, https: false })).get("role"), "admin", "the run really stored data");
    const dump = await options.dump(store);
    ok(
      dump.includes(storageKey(carol.id)),
      "the dump shows what is stored (the storage key of a live session)",
    );
    for (const id of ids) {
      equal(dump.includes(id), false, "a session id appears in the store's keys or values");
      equal(dump.includes(id.slice(0, 16)), false, "part of a session id appears in the store");
    }
  });

  // Through the core: what every store, whatever it keeps where, gives an app.
  const http = (cookie?: string) => ({ cookie, https: false });

  withStore(
    "through the core: set, delete, clear and flash values persist from request to request",
    async (store) => {
      const manager = new SessionManager({ store, ...signing });
      const first = await manager.load(http());
      first.set("keep", 1).set("drop", 2).set("list", [1]);
      first.flash("notice", "saved");
      let cookie = cookieOf(await manager.commit(first));
      const second = await manager.load(http(cookie));
      equal(second.isNew, false);
      equal(second.get("notice"), "saved");
      second.delete("drop");
      (second.get("list") as number[]).push(2);
      cookie = cookieOf(await manager.commit(second)) ?? cookie;
      const third = await manager.load(http(cookie));
      deepEqual({ ...third.toJSON() }, { keep: 1, list: [1, 2] }, "the flash value was read once");
      third.clear();
      third.set("after", true);
      cookie = cookieOf(await manager.commit(third)) ?? cookie;
      deepEqual({ ...(await manager.load(http(cookie))).toJSON() }, { after: true });
    },
  );

  withStore("through the core: nested JSON, unicode and hostile text round-trip", async (store) => {
    const manager = new SessionManager({ store, ...signing });
    const data = {
      nested: { list: [1, -2.5, 1e21, true, false, null, { deep: [[], {}] }], empty: {} },
      emoji: "👩‍🚀🚀",
      separators: "line\u2028para\u2029end",
      nul: "a\u0000b",
      hostile: HOSTILE_CHARACTERS.join(""),
      "": "empty key",
      "d:x": "looks like a store-internal field",
      meta: "a user key named meta",
    };
    const session = await manager.load(http());
    for (const [key, value] of Object.entries(data)) session.set(key as never, value as never);
    const cookie = cookieOf(await manager.commit(session));
    deepEqual({ ...(await manager.load(http(cookie))).toJSON() }, data);
  });

  withStore("through the core: a session past its deadline opens as a fresh one", async (store) => {
    const clock = { now: Date.now() };
    const events: SecurityEvent[] = [];
    const manager = new SessionManager({
      store,
      ...signing,
      idleTimeout: 60,
      now: () => clock.now,
      onSecurityEvent: (event) => events.push(event),
    });
    const session = await manager.load(http());
    session.set("user", "ada");
    const cookie = cookieOf(await manager.commit(session));
    clock.now += 59_000;
    equal((await manager.load(http(cookie))).get("user"), "ada");
    clock.now += 2_000;
    equal((await manager.load(http(cookie))).isNew, true);
    // A store judges expiry at the core's time, so it answers no record: the id reads as unknown. A sealed
    // cookie is opened by the core itself, which finds its record expired.
    const type = options.lacks?.serverRecords === undefined ? "unknown-session" : "expired-session";
    deepEqual(events, [{ type, idHash: storageKey(session.id) }]);
  });

  withStore(
    "through the core: regenerate keeps the data under a new cookie; destroy clears it",
    async (store) => {
      const manager = new SessionManager({ store, ...signing });
      const first = await manager.load(http());
      first.set("user", "ada");
      const before = cookieOf(await manager.commit(first));
      const login = await manager.load(http(before));
      const oldId = login.id;
      await login.regenerate();
      const after = cookieOf(await manager.commit(login));
      ok(after !== undefined && after !== before, "a new cookie");
      const loaded = await manager.load(http(after));
      ok(loaded.id !== oldId, "a new id");
      equal(loaded.get("user"), "ada");
      await loaded.destroy();
      ok((await manager.commit(loaded))?.startsWith("sid=; Max-Age=0"), "the cookie is cleared");
    },
  );

  withStore("through the core: 50 sessions written and read in parallel stay apart", async (store) => {
    const manager = new SessionManager({ store, ...signing });
    const cookies = await Promise.all(Array.from({ length: 50 }, async (_, i) => {
      const session = await manager.load(http());
      session.set("owner", i);
      return cookieOf(await manager.commit(session));
    }));
    const owners = await Promise.all(
      cookies.map(async (cookie) => (await manager.load(http(cookie))).get("owner")),
    );
    deepEqual(owners, Array.from({ length: 50 }, (_, i) => i));
  });

  withRecords(
    "write deadlines: a store that refuses late writes applies none whose deadline has passed; others ignore it",
    async (store) => {
      const flag = store.refusesLateWrites;
      ok(flag === undefined || typeof flag === "boolean", "refusesLateWrites is a boolean when present");
      const id = generateId();
      const future = Date.now() + 60_000;
      equal(
        await store.set(id, { ...create({ n: 1 }), deadline: future }),
        "written",
        "a deadline ahead is fine",
      );
      equal(await store.set(id, { ...update({}, { set: { n: 2 } }), deadline: future }), "written");
      const late = { ...update({}, { set: { n: 3 } }), deadline: Date.now() - 1 };
      if (flag === true) {
        await rejects(async () => await store.set(id, late), "a write past its deadline is refused");
        deepEqual((await store.get(id))?.data, { n: 2 }, "and nothing of it was applied");
        const other = generateId();
        await rejects(async () => await store.set(other, { ...create({ n: 1 }), deadline: Date.now() - 1 }));
        equal(await store.get(other), undefined, "a create past its deadline creates nothing");
      } else {
        // A store without deadlines writes whatever the deadline says: the core then calls the outcome of a
        // timed-out write unknown.
        equal(await store.set(id, late), "written");
        deepEqual((await store.get(id))?.data, { n: 3 });
      }
    },
  );

  withRecords("a record's user and login details round-trip with its metadata", async (store) => {
    // A key as the core gives a session of that user: a store that groups a user's sessions may refuse others.
    const key = userSessionKey(store, "user:ünï/{x}");
    const write = create({ n: 1 });
    write.record.meta.userId = "user:ünï/{x}";
    write.record.meta.details = { device: "Firefox on Linux", at: [1, 2], nested: { ok: true } };
    equal(await store.set(key, write), "written");
    deepEqual((await store.get(key))?.meta, write.record.meta);
    const next = update({ n: 1 }, { set: { n: 2 } });
    next.record.meta.userId = write.record.meta.userId;
    next.record.meta.details = write.record.meta.details;
    equal(await store.set(key, next), "written");
    deepEqual((await store.get(key))?.meta, next.record.meta, "an update keeps them");
  });

  // The per-user index, through the store contract and through the core.
  // Records of earlier cases may share the backend (one table, one key prefix): each case has users of its own.
  const withIndex = (
    title: string,
    body: (store: Store, user: (name: string) => string) => Promise<void>,
  ) => {
    const run = generateId().slice(0, 8);
    return withStore(
      `per-user index: ${title}`,
      (store) => body(store, (name) => `${name}-${run}`),
      "perUserIndex",
    );
  };

  withIndex(
    "a user's records are listed with their metadata; other users' and anonymous ones are not",
    async (store, user) => {
      const ada = [
        userSessionKey(store, user("ada")),
        userSessionKey(store, user("ada")),
        userSessionKey(store, user("ada")),
      ];
      const bob = userSessionKey(store, user("bob"));
      const anonymous = storageKey(generateId());
      const writes = new Map<string, StoreWrite>();
      for (const key of ada) writes.set(key, loggedIn(user("ada"), { n: 1 }, { device: key.slice(0, 8) }));
      writes.set(bob, loggedIn(user("bob"), {}));
      writes.set(anonymous, create({ n: 1 }));
      for (const [key, write] of writes) equal(await store.set(key, write), "written");
      const listed = await store.listByUser!(user("ada"));
      deepEqual(
        sortByKey(listed),
        sortByKey(ada.map((key) => ({ key, meta: writes.get(key)!.record.meta }))),
      );
      deepEqual(await store.listByUser!(user("bob")), [{ key: bob, meta: writes.get(bob)!.record.meta }]);
      deepEqual(await store.listByUser!(user("carol")), [], "a user with no sessions");
    },
  );

  withIndex("an update keeps a record listed, with its new metadata", async (store, user) => {
    const key = userSessionKey(store, user("ada"));
    equal(await store.set(key, loggedIn(user("ada"), { n: 1 })), "written");
    const next = update({ n: 1 }, { set: { n: 2 } }, { lifetimeMs: 120_000 });
    next.record.meta.userId = user("ada");
    equal(await store.set(key, next), "written");
    deepEqual(await store.listByUser!(user("ada")), [{ key, meta: next.record.meta }]);
  });

  withIndex("delete takes a record off its user's list in the same step", async (store, user) => {
    const [a, b] = [userSessionKey(store, user("ada")), userSessionKey(store, user("ada"))];
    await store.set(a, loggedIn(user("ada"), {}));
    await store.set(b, loggedIn(user("ada"), {}));
    await store.delete(a);
    deepEqual((await store.listByUser!(user("ada"))).map((entry) => entry.key), [b]);
    await store.delete(b);
    deepEqual(await store.listByUser!(user("ada")), []);
    const gone = update({}, { set: { n: 1 } });
    gone.record.meta.userId = user("ada");
    equal(await store.set(a, gone), "gone", "a deleted record is not recreated by a late update");
    deepEqual(await store.listByUser!(user("ada")), [], "nor listed again");
  });

  withIndex("an expired record is never listed", async (store, user) => {
    const [short, long] = [userSessionKey(store, user("ada")), userSessionKey(store, user("ada"))];
    await store.set(short, loggedIn(user("ada"), {}, undefined, shortLifetime));
    await store.set(long, loggedIn(user("ada"), {}));
    await sleep(shortLifetime + 100);
    deepEqual((await store.listByUser!(user("ada"))).map((entry) => entry.key), [long]);
    equal(await store.get(short), undefined);
  });

  withIndex("a listing judges expiry at the time the core hands over", async (store, user) => {
    const key = userSessionKey(store, user("ada"));
    await store.set(key, loggedIn(user("ada"), {})); // a minute to live
    deepEqual((await store.listByUser!(user("ada"), Date.now())).map((entry) => entry.key), [key]);
    deepEqual(await store.listByUser!(user("ada"), Date.now() + 120_000), [], "expired at the later time");
  });

  withIndex("user ids with hostile characters are kept apart", async (store, user) => {
    const users = [
      ...HOSTILE_CHARACTERS.map((chars) => user(`u${chars}`)),
      user("ü"),
      user("u"),
      user("U"),
      user("{u}"),
      user("u}"),
      user("x").padEnd(256, "x"),
    ];
    const keys = new Map<string, string>();
    for (const user of users) {
      const key = userSessionKey(store, user);
      keys.set(user, key);
      equal(await store.set(key, loggedIn(user, {})), "written");
    }
    for (const user of users) {
      deepEqual((await store.listByUser!(user)).map((entry) => entry.key), [keys.get(user)], user);
    }
  });

  withIndex("a user with 200 sessions lists exactly them", async (store, user) => {
    const keys: string[] = [];
    for (let i = 0; i < 200; i++) keys.push(userSessionKey(store, user("busy")));
    await Promise.all(keys.map((key, i) => store.set(key, loggedIn(user("busy"), { i }))));
    deepEqual((await store.listByUser!(user("busy"))).map((entry) => entry.key).sort(), [...keys].sort());
  });

  withIndex(
    "through the core: logIn, sessionsOfUser, revoke, logOutEverywhere; a revoked session starts afresh and its late write gets 409",
    async (store, user) => {
      const events: SecurityEvent[] = [];
      const manager = new SessionManager({
        store,
        ...signing,
        onSecurityEvent: (event) => events.push(event),
      });
      const client = cookieJar(manager);
      // Two browsers of ada, one of bob.
      const phone = await client.request((session) => {
        session.set("cart", [1]);
      });
      const before = phone.cookie;
      const phoneLogin = await client.request(async (session) => {
        await session.logIn(user("ada"), { details: { device: "phone" } });
        equal(session.userId, user("ada"));
        deepEqual(session.get("cart"), [1], "logIn keeps the data");
        const listed = await session.sessionsOfUser();
        equal(listed.length, 1, "the session logging in is listed before it is saved");
        equal(listed[0].current, true);
      }, before);
      ok(phoneLogin.cookie !== before, "logIn gives a new id");
      const laptop = await client.request((session) =>
        session.logIn(user("ada"), { details: { device: "laptop" } })
      );
      await client.request((session) => session.logIn(user("bob")));

      const seen = await client.request(async (session) => {
        const list = await session.sessionsOfUser();
        equal(list.length, 2);
        deepEqual(list.map((info) => info.current), [true, false], "this one first, marked");
        deepEqual(list.map((info) => info.details), [{ device: "laptop" }, { device: "phone" }]);
        for (const info of list) {
          ok(/^h1_[A-Za-z0-9_-]{22}$/.test(info.handle));
          ok(!laptop.cookie!.includes(info.handle) && !phoneLogin.cookie!.includes(info.handle));
          ok(
            info.createdAt <= info.lastSeenAt && info.lastSeenAt <= Date.now() && info.expiresAt > Date.now(),
          );
        }
        return list;
      }, laptop.cookie);
      const phoneHandle = seen.value![1].handle;
      deepEqual(
        (await manager.sessionsOfUser(user("ada"))).map((info) => [info.handle, info.current]).sort(),
        seen.value!.map((info) => [info.handle, false]).sort(),
        "the manager lists the same, none current",
      );

      // A slow request of the phone is running when the laptop revokes it.
      const slow = await manager.load({ cookie: phoneLogin.cookie, https: false });
      equal(slow.userId, user("ada"));
      await client.request(async (session) => {
        equal(await session.revoke("h1_" + "A".repeat(22)), false, "an unknown handle");
        equal(await session.revoke(phoneHandle), true);
      }, laptop.cookie);
      slow.set("cart", [1, 2]);
      await rejects(manager.commit(slow), SessionConflictError, "no resurrection");
      events.length = 0;
      await client.request((session) => {
        equal(session.isNew, true, "the revoked session starts afresh");
        equal(session.userId, undefined);
        equal(session.get("cart"), undefined);
      }, phoneLogin.cookie);
      equal(events[0]?.type, "unknown-session");
      deepEqual((await manager.sessionsOfUser(user("ada"))).length, 1);

      // Log out everywhere else, then everywhere from outside a request.
      const tablet = await client.request((session) => session.logIn(user("ada")));
      const ended = await client.request(
        (session) => session.logOutEverywhere({ keepCurrent: true }),
        tablet.cookie,
      );
      equal(ended.value, 1, "the laptop");
      await client.request((session) => {
        equal(session.userId, user("ada"), "kept");
      }, tablet.cookie);
      equal(await manager.logOutEverywhere(user("bob")), 1);
      deepEqual(await manager.sessionsOfUser(user("bob")), []);
      const all = await client.request((session) => session.logOutEverywhere(), tablet.cookie);
      equal(all.value, 1, "this one");
      ok(all.setCookie?.includes("Max-Age=0"), "its cookie is cleared");
      deepEqual(await manager.sessionsOfUser(user("ada")), []);
    },
  );

  withIndex("maxSessionsPerUser: the oldest session goes, or the login is refused", async (store, user) => {
    const oldest = new SessionManager({ store, ...signing, maxSessionsPerUser: 2 });
    const client = cookieJar(oldest);
    const first = await client.request((session) => session.logIn(user("ada"), { details: { n: 1 } }));
    await sleep(5);
    await client.request((session) => session.logIn(user("ada"), { details: { n: 2 } }));
    await sleep(5);
    await client.request((session) => session.logIn(user("ada"), { details: { n: 3 } }));
    deepEqual((await oldest.sessionsOfUser(user("ada"))).map((info) => info.details?.n).sort(), [2, 3]);
    await client.request((session) => {
      equal(session.isNew, true, "the oldest was revoked");
    }, first.cookie);
    // Logging in again from a session of the same user replaces it: no revocation.
    const again = await client.request((session) => session.logIn(user("bob")));
    await client.request((session) => session.logIn(user("bob")), again.cookie);
    equal((await oldest.sessionsOfUser(user("bob"))).length, 1);

    const refusing = new SessionManager({
      store,
      ...signing,
      maxSessionsPerUser: 2,
      onSessionLimit: "refuse",
    });
    const strict = cookieJar(refusing);
    await rejects(
      strict.request((session) => session.logIn(user("ada"))),
      (error) => error instanceof SessionLimitError && error.status === 409,
    );
    equal((await refusing.sessionsOfUser(user("ada"))).length, 2, "nothing was revoked");
  });
  const plantCorrupt = options.plantCorrupt;
  if (plantCorrupt) {
    withRecords(
      "an unparsable record makes get throw CorruptRecordError; the core deletes it and starts afresh",
      async (store) => {
        const id = generateId();
        const key = storageKey(id);
        await plantCorrupt(store, key);
        await rejects(async () => await store.get(key), CorruptRecordError);
        const events: SecurityEvent[] = [];
        const manager = new SessionManager({
          store,
          ...signing,
          onSecurityEvent: (event) => events.push(event),
        });
        const cookie = `sid=${secret === null ? id : new SignedToken([secret]).write(id)}`;
        const session = await manager.load({ cookie, https: false });
        equal(session.isNew, true);
        deepEqual(events, [{ type: "corrupt-record", idHash: key }]);
        equal(await store.get(key), undefined, "the corrupt record was deleted");
      },
    );
  }
}

/** A storage key for a new session of `userId`, in the group the store keeps that user's sessions in. */
function userSessionKey(store: Store, userId: string): string {
  return storageKey(
    store.groupsUserSessions === true ? generateIdInGroup(userKey(userId).slice(3, 5)) : generateId(),
  );
}

/** A create of a record logged in as `userId`. */
function loggedIn(
  userId: string,
  data: Record<string, unknown>,
  details?: Record<string, unknown>,
  lifetimeMs?: number,
): StoreWrite {
  const write = createWrite(data, { lifetimeMs });
  write.record.meta.userId = userId;
  if (details !== undefined) write.record.meta.details = details;
  return write;
}

function sortByKey<T extends { key: string }>(entries: T[]): T[] {
  return [...entries].sort((a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
}

/** One request through the core: its `Set-Cookie`, the cookie a browser would then send, and what `body` returned. */
interface Exchange<R> {
  setCookie: string | undefined;
  cookie: string | undefined;
  value: R | undefined;
}

/** Requests through `manager` as a browser makes them: `request(body, cookie)` loads, runs `body`, commits. */
function cookieJar(manager: SessionManager) {
  return {
    async request<R>(
      body: (session: Awaited<ReturnType<SessionManager["load"]>>) => R | Promise<R>,
      cookie?: string,
    ): Promise<Exchange<R>> {
      const session = await manager.load({ cookie, https: false });
      const value = await body(session);
      const setCookie = await manager.commit(session);
      const sent = setCookie?.split(";", 1)[0];
      return { setCookie, cookie: setCookie === undefined ? cookie : sent, value };
    },
  };
}

/**
 * Registers a test as skipped with its reason where the runner can
 * (`node:test` and Bun's `test.skip`, `Deno.test.ignore`); elsewhere it says
 * so on the console. Never silently.
 */
export function skipper(test: TestFunction): (title: string, reason: string) => unknown {
  const runner = test as TestFunction & { skip?: TestFunction; ignore?: TestFunction };
  const skip = runner.skip ?? runner.ignore;
  return (title, reason) => {
    const name = `${title} (not applicable: ${reason})`;
    if (skip) return skip.call(runner, name, () => Promise.resolve());
    console.log(`skipped: ${name}`);
  };
}
