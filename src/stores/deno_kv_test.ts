// DenoKvStore against a real Deno KV: Deno.openKv under Deno (--unstable-kv, from deno.json), the npm
// package @deno/kv (its SQLite-backed native build) under Node and Bun. Every store has its own temporary file.
import { test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { DenoKvStore, MAX_META_BYTES, MAX_RECORD_BYTES } from "./deno_kv.ts";
import type {
  DenoKv,
  DenoKvAtomicOperation,
  DenoKvEntry,
  DenoKvKeyPart,
  DenoKvStoreOptions,
} from "./deno_kv.ts";
import { storageKey, userKey } from "../_crypto.ts";
import { SessionManager } from "../core.ts";
import { SessionStoreError } from "../errors.ts";
import { NEVER } from "../store.ts";
import type { SessionRecord } from "../store.ts";
import { createWrite, storeConformanceSuite, updateWrite } from "../testing/store_suite.ts";
import { adapterConformanceSuite } from "../testing/adapter_suite.ts";
import { honoSuiteApp } from "../adapters/_test_hono_app.ts";
import { type HeldLock, holdSqliteLock } from "./_test_sqlite_lock.ts";

type DenoRuntime = { openKv(path?: string): Promise<DenoKv>; execPath(): string };
const deno = (globalThis as unknown as { Deno?: DenoRuntime }).Deno;
const runtime = deno !== undefined ? "Deno" : "Bun" in globalThis ? "Bun" : "Node";
/** The repository's root: child processes run there, so that Deno finds the npm packages in node_modules. */
const root = fileURLToPath(new URL("../..", import.meta.url));

/** A second handle on a KV file, with the same engine the store picks on this runtime. */
async function openHandle(path: string): Promise<DenoKv> {
  if (deno !== undefined) return await deno.openKv(path);
  const { makeLimitedV8Serializer, openKv } = await import("@deno/kv");
  // On Bun as the store does (src/stores/deno_kv.ts, openDatabase).
  return await openKv(path, runtime === "Bun" ? makeLimitedV8Serializer() : undefined) as unknown as DenoKv;
}

/** A fresh temporary directory and a KV file in it; `cleanup` removes both (and SQLite's -wal and -shm). */
function tempKv(): { path: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "deno-kv-store-test-"));
  return { path: join(dir, "sessions.kv"), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A store on its own temporary file, which `close()` removes. */
class TempKvStore extends DenoKvStore {
  readonly path: string;
  readonly prefix: readonly string[];
  #cleanup: () => void;
  constructor(options: Omit<DenoKvStoreOptions, "path" | "kv"> = {}) {
    const { path, cleanup } = tempKv();
    super({ ...options, path });
    this.path = path;
    this.prefix = (options.keyPrefix as string[] | undefined) ?? ["sessions"];
    this.#cleanup = cleanup;
  }
  override async close(): Promise<void> {
    await super.close();
    this.#cleanup();
  }
}

/** Runs `body` with a second handle on the store's file. */
async function withHandle<T>(path: string, body: (kv: DenoKv) => Promise<T>): Promise<T> {
  const kv = await openHandle(path);
  try {
    return await body(kv);
  } finally {
    kv.close();
  }
}

async function entries(kv: DenoKv, prefix: readonly DenoKvKeyPart[] = []): Promise<DenoKvEntry[]> {
  const out: DenoKvEntry[] = [];
  for await (const entry of kv.list({ prefix })) out.push(entry);
  return out;
}

const text = (value: unknown) => new TextDecoder().decode(value as Uint8Array);

/** The `kv` table of Deno KV's SQLite file, read behind the engine's back: key bytes and expiry. */
function sqliteRows(path: string): { k: Uint8Array; expiration_ms: number }[] {
  type Db = { prepare(sql: string): { all(): unknown[] }; close(): void };
  type Builtin = { DatabaseSync: new (path: string, options: { readOnly: boolean }) => Db };
  const builtin = process.getBuiltinModule?.("node:sqlite") as Builtin | undefined;
  const db = builtin
    ? new builtin.DatabaseSync(path, { readOnly: true })
    : new (createRequire(import.meta.url)("better-sqlite3") as new (path: string, o: object) => Db)(path, {
      readonly: true,
    });
  try {
    return db.prepare("SELECT k, expiration_ms FROM kv ORDER BY k").all() as {
      k: Uint8Array;
      expiration_ms: number;
    }[];
  } finally {
    db.close();
  }
}

/**
 * A real KV handle that counts round trips (lists and commits) and can run a competing write just before
 * a commit: fault injection around the real engine, never a replacement for it.
 */
class CountingKv implements DenoKv {
  lists = 0;
  commits = 0;
  beforeCommit: (() => Promise<void>) | undefined;
  constructor(readonly inner: DenoKv) {}
  list(selector: { prefix: readonly DenoKvKeyPart[] }, options?: { limit?: number; batchSize?: number }) {
    this.lists++;
    return this.inner.list(selector, options);
  }
  atomic(): DenoKvAtomicOperation {
    const operation = this.inner.atomic();
    const commit = operation.commit.bind(operation);
    operation.commit = async () => {
      this.commits++;
      const hook = this.beforeCommit;
      if (hook) await hook();
      return await commit();
    };
    return operation;
  }
  close(): void {
    this.inner.close();
  }
  reset(): void {
    this.lists = 0;
    this.commits = 0;
  }
}

const create = (data: Record<string, unknown>, lifetimeMs = 60_000) => createWrite(data, { lifetimeMs });
const update = (set: Record<string, unknown>, lifetimeMs = 60_000) =>
  updateWrite({}, { set }, { lifetimeMs });
const key = (n: number | string) => `s1_${String(n).padEnd(43, "k")}`;
/** A create of a record logged in as `userId`. */
const loggedIn = (userId: string, data: Record<string, unknown>, lifetimeMs = 60_000) => {
  const write = create(data, lifetimeMs);
  write.record.meta.userId = userId;
  return write;
};

storeConformanceSuite(test, {
  name: `DenoKvStore (${runtime})`,
  createStore: () => new TempKvStore(),
  maxRecordBytes: MAX_RECORD_BYTES,
  plantCorrupt: async (store, storageKey) => {
    await withHandle((store as TempKvStore).path, async (kv) => {
      const truncated = new TextEncoder().encode('{"meta":{"createdAt":1,"expiresAt":');
      await kv.atomic().set(["sessions", storageKey, 0], truncated).commit();
    });
  },
  dump: async (store) =>
    await withHandle((store as TempKvStore).path, async (kv) => {
      const all = await entries(kv);
      return JSON.stringify(all.map((entry) => [entry.key, text(entry.value)]));
    }),
});

// The adapter suite through Hono (a real framework on both runtimes), its sessions in Deno KV.

adapterConformanceSuite(test, {
  name: `hono on DenoKvStore (${runtime})`,
  createApp: honoSuiteApp,
  createStore: (now) => {
    const store = new TempKvStore({ now });
    return {
      store,
      count: () =>
        withHandle(store.path, async (kv) => {
          let live = 0;
          for (const entry of await entries(kv, ["sessions"])) {
            if (entry.key.at(-1) !== 0) continue;
            const { meta } = JSON.parse(text(entry.value)) as SessionRecord;
            if (meta.expiresAt > now() && meta.absoluteExpiresAt > now()) live++;
          }
          return live;
        }),
    };
  },
});

test("DenoKvStore: invalid options are TypeErrors naming the option", () => {
  const kv = { list() {}, atomic() {}, close() {} } as unknown as DenoKv;
  assert.throws(() => new DenoKvStore({ path: "a", kv }), {
    name: "TypeError",
    message: 'Invalid DenoKvStore options: pass "path" or "kv", not both',
  });
  assert.throws(() => new DenoKvStore({ path: "" }), /option "path": must be a non-empty string/);
  assert.throws(() => new DenoKvStore({ path: 1 as unknown as string }), /"path"/);
  assert.throws(() => new DenoKvStore({ kv: {} as DenoKv }), /option "kv": must be a Deno.Kv or a Kv of/);
  assert.throws(() => new DenoKvStore({ kv, keyPrefix: "sessions" as unknown as string[] }), /"keyPrefix"/);
  assert.throws(() => new DenoKvStore({ kv, keyPrefix: [{}] as unknown as string[] }), /"keyPrefix"/);
  for (const maxAttempts of [0, 1.5, -1, Number.NaN]) {
    assert.throws(
      () => new DenoKvStore({ kv, maxAttempts }),
      /option "maxAttempts": must be a positive integer/,
    );
  }
  assert.throws(() => new DenoKvStore({ kv, now: 5 as unknown as () => number }), /"now"/);
});

test("DenoKvStore: unknown option names are refused before anything opens, with the nearest known name or the known ones", () => {
  assert.throws(() => new DenoKvStore({ path: ":memory:", maxAttempt: 5 } as never), {
    name: "TypeError",
    message: 'Unknown DenoKvStore option "maxAttempt": did you mean "maxAttempts"?',
  });
  assert.throws(() => new DenoKvStore({ path: ":memory:", expireIn: 60_000 } as never), {
    name: "TypeError",
    message:
      'Unknown DenoKvStore option "expireIn": known options are path, kv, keyPrefix, maxAttempts, busyTimeoutMs, now',
  });
});

test("DenoKvStore: a small record is one KV value: its JSON in UTF-8 under [...keyPrefix, key, 0]", async () => {
  const store = new TempKvStore({ keyPrefix: ["app", "sess"] });
  try {
    const write = createWrite({ user: "ada", "é": "ü" }, { flash: { notice: "hi" } });
    await store.set(key(1), write);
    const all = await withHandle(store.path, (kv) => entries(kv));
    assert.deepEqual(all.map((entry) => entry.key), [["app", "sess", key(1), 0]]);
    assert.ok(all[0].value instanceof Uint8Array, "raw bytes, not a serialized JS value");
    assert.deepEqual(JSON.parse(text(all[0].value)), {
      meta: write.record.meta,
      data: write.record.data,
      flash: write.record.flash,
    });
  } finally {
    await store.close();
  }
});

test("DenoKvStore: a record over 64 KiB spans values of one commit; a smaller update removes the spare ones", async () => {
  const store = new TempKvStore();
  try {
    const big = "é".repeat(100_000); // 200,000 bytes of UTF-8, cut inside characters
    await store.set(key(1), create({ big, small: 1 }));
    let all = await withHandle(store.path, (kv) => entries(kv));
    assert.deepEqual(all.map((entry) => entry.key.at(-1)), [0, 1, 2, 3]);
    assert.equal(new Set(all.map((entry) => entry.versionstamp)).size, 1, "one versionstamp: one commit");
    assert.ok(all.slice(0, 3).every((entry) => (entry.value as Uint8Array).length === 65_536));
    assert.equal((await store.get(key(1)))?.data.big, big);

    assert.equal(await store.set(key(1), updateWrite({}, { deleted: ["big"] })), "written");
    all = await withHandle(store.path, (kv) => entries(kv));
    assert.deepEqual(all.map((entry) => entry.key.at(-1)), [0], "the spare values went in the same commit");
    assert.deepEqual((await store.get(key(1)))?.data, { small: 1 });

    await store.set(key(1), update({ big }));
    await store.delete(key(1));
    assert.deepEqual(await withHandle(store.path, (kv) => entries(kv)), [], "delete removes every value");
  } finally {
    await store.close();
  }
});

test("DenoKvStore: a create replaces a larger record under the same key, leaving no stale value", async () => {
  const store = new TempKvStore();
  try {
    await store.set(key(1), create({ big: "x".repeat(200_000) }));
    await store.set(key(1), create({ small: true }));
    const all = await withHandle(store.path, (kv) => entries(kv));
    assert.deepEqual(all.map((entry) => entry.key.at(-1)), [0]);
    assert.deepEqual((await store.get(key(1)))?.data, { small: true });
  } finally {
    await store.close();
  }
});

test("DenoKvStore: values without value 0 read as absent; a value 0 that is not bytes is corrupt", async () => {
  const store = new TempKvStore();
  try {
    await withHandle(store.path, async (kv) => {
      // What a record KV expired piece by piece may leave behind for a while.
      await kv.atomic().set(["sessions", key(1), 1], new TextEncoder().encode('"rest"}')).commit();
      await kv.atomic().set(["sessions", key(2), 0], "a string, not bytes").commit();
    });
    assert.equal(await store.get(key(1)), undefined);
    assert.equal(await store.set(key(1), update({ a: 1 })), "gone");
    assert.equal(await store.set(key(1), create({ fresh: true })), "written");
    assert.deepEqual((await store.get(key(1)))?.data, { fresh: true }, "the create replaced the leftover");
    await assert.rejects(store.get(key(2)), { name: "CorruptRecordError" });
  } finally {
    await store.close();
  }
});

test("DenoKvStore: the refusal of a record over 768 KiB names the size and the limit", async () => {
  const store = new TempKvStore();
  try {
    await assert.rejects(store.set(key(1), create({ big: "x".repeat(MAX_RECORD_BYTES) })), (error: Error) => {
      assert.match(
        error.message,
        /^DenoKvStore cannot keep a session record of \d+ bytes: the limit is 786432 bytes/,
      );
      return true;
    });
    const manager = new SessionManager({ store });
    const big = await manager.load({ cookie: null, https: false });
    big.set("big", "x".repeat(MAX_RECORD_BYTES));
    await assert.rejects(manager.commit(big), (error: unknown) => {
      assert.ok(error instanceof SessionStoreError);
      assert.equal(error.status, 503);
      assert.match(error.message, /^Cannot write session to store: DenoKvStore cannot keep a session record/);
      return true;
    });
  } finally {
    await store.close();
  }
});

test("DenoKvStore: native expiry (expireIn) follows the record's deadline; NEVER sets none", async () => {
  const store = new TempKvStore();
  try {
    const short = create({ a: 1 }, 90_000);
    await store.set(key(1), short);
    const big = create({ big: "x".repeat(150_000) }, 120_000);
    await store.set(key(2), big);
    const never = create({ c: 1 });
    never.record.meta = { createdAt: Date.now(), expiresAt: NEVER, absoluteExpiresAt: NEVER };
    await store.set(key(3), never);
    const rows = sqliteRows(store.path);
    assert.equal(rows.length, 1 + 3 + 1);
    const near = (actual: number, expected: number) =>
      assert.ok(Math.abs(actual - expected) < 1000, `expiration ${actual}, deadline ${expected}`);
    for (const row of rows.slice(0, 1)) near(row.expiration_ms, short.record.meta.expiresAt);
    for (const row of rows.slice(1, 4)) near(row.expiration_ms, big.record.meta.expiresAt);
    assert.equal(rows[4].expiration_ms, -1, "no expiry for a session with both timeouts off");

    const later = create({ a: 1 }, 90_000);
    later.record.meta.absoluteExpiresAt = later.record.meta.createdAt + 30_000; // the earlier deadline wins
    await store.set(key(1), later);
    near(sqliteRows(store.path)[0].expiration_ms, later.record.meta.absoluteExpiresAt);
    assert.equal(await store.set(key(1), update({ b: 2 }, 200_000)), "written");
    near(sqliteRows(store.path)[0].expiration_ms, Date.now() + 200_000);
  } finally {
    await store.close();
  }
});

test("DenoKvStore: a record KV still holds past its deadline is neither read nor updated (the clock decides)", async () => {
  const { path, cleanup } = tempKv();
  const writer = new DenoKvStore({ path });
  const later = new DenoKvStore({ path, now: () => Date.now() + 120_000 });
  try {
    await writer.set(key(1), create({ a: 1 }, 60_000));
    assert.equal(await later.get(key(1)), undefined);
    assert.equal(await later.set(key(1), update({ b: 2 })), "gone");
    assert.deepEqual((await writer.get(key(1)))?.data, { a: 1 }, "the refused update wrote nothing");
  } finally {
    await writer.close();
    await later.close();
    cleanup();
  }
});

test("DenoKvStore: a logged-in record's user entry and index entry (a copy of its meta) share its commits and expiry", async () => {
  const store = new TempKvStore({ keyPrefix: ["app", "sess"] });
  try {
    const user = userKey("ada");
    const write = loggedIn("ada", { a: 1 }, 90_000);
    write.record.meta.details = { device: "phone" };
    await store.set(key(1), write);
    const layout = async () => {
      const all = await withHandle(store.path, (kv) => entries(kv));
      assert.deepEqual(all.map((entry) => entry.key), [
        ["app", "sess", key(1), -1],
        ["app", "sess", key(1), 0],
        ["app", "sess", "users", user, key(1)],
      ]);
      assert.equal(text(all[0].value), user, "the user entry names the index entry");
      assert.equal(new Set(all.map((entry) => entry.versionstamp)).size, 1, "written by one commit");
      return JSON.parse(text(all[2].value));
    };
    const expiring = (deadline: number) => {
      for (const row of sqliteRows(store.path)) {
        assert.ok(
          Math.abs(row.expiration_ms - deadline) < 1000,
          `expiration ${row.expiration_ms}, deadline ${deadline}`,
        );
      }
    };
    assert.deepEqual(await layout(), write.record.meta);
    expiring(write.record.meta.expiresAt);

    const next = update({ b: 2 }, 200_000);
    next.record.meta.userId = "ada";
    next.record.meta.details = { device: "phone" };
    assert.equal(await store.set(key(1), next), "written");
    assert.deepEqual(await layout(), next.record.meta, "an update refreshes the copy");
    expiring(next.record.meta.expiresAt);

    await store.delete(key(1));
    assert.deepEqual(await withHandle(store.path, (kv) => entries(kv)), [], "delete removes all three");
  } finally {
    await store.close();
  }
});

test("DenoKvStore: an update never changes a record's user or login details, nor which list it is on", async () => {
  const store = new TempKvStore();
  try {
    const first = loggedIn("ada", {});
    first.record.meta.details = { n: 1 };
    await store.set(key(1), first);
    const next = update({ b: 1 });
    next.record.meta.userId = "eve";
    next.record.meta.details = { n: 2 };
    assert.equal(await store.set(key(1), next), "written");
    const { userId, details } = (await store.get(key(1)))!.meta;
    assert.deepEqual({ userId, details }, { userId: "ada", details: { n: 1 } });
    assert.deepEqual((await store.listByUser("ada")).map((entry) => entry.meta.details), [{ n: 1 }]);
    assert.deepEqual(await store.listByUser("eve"), []);

    await store.set(key(2), create({}));
    assert.equal(await store.set(key(2), next), "written");
    assert.equal((await store.get(key(2)))!.meta.userId, undefined, "an anonymous record stays anonymous");
    assert.deepEqual(await store.listByUser("eve"), []);
  } finally {
    await store.close();
  }
});

test("DenoKvStore: a create over a logged-in record takes it off its user's list in the same commit", async () => {
  const store = new TempKvStore();
  try {
    await store.set(key(1), loggedIn("ada", {}));
    assert.equal(await store.set(key(1), loggedIn("bob", {})), "written");
    assert.deepEqual(await store.listByUser("ada"), []);
    assert.deepEqual((await store.listByUser("bob")).map((entry) => entry.key), [key(1)]);
    assert.equal(await store.set(key(1), create({ anonymous: true })), "written");
    assert.deepEqual(await store.listByUser("bob"), []);
    const all = await withHandle(store.path, (kv) => entries(kv));
    assert.deepEqual(
      all.map((entry) => entry.key),
      [["sessions", key(1), 0]],
      "no user entry, no index entry",
    );
  } finally {
    await store.close();
  }
});

test("DenoKvStore: a delete losing to an overlapping write reads again and removes what that write listed", async () => {
  const { path, cleanup } = tempKv();
  const kv = new CountingKv(await openHandle(path));
  const store = new DenoKvStore({ kv });
  const other = new DenoKvStore({ path });
  try {
    await store.set(key(1), loggedIn("ada", {}));
    // Between the delete's read and its commit, another process puts a record of bob under the key.
    kv.beforeCommit = async () => {
      kv.beforeCommit = undefined;
      await other.set(key(1), loggedIn("bob", {}));
    };
    kv.reset();
    await store.delete(key(1));
    assert.deepEqual(
      { lists: kv.lists, commits: kv.commits },
      { lists: 2, commits: 2 },
      "one commit lost, one won",
    );
    assert.deepEqual(await store.listByUser("ada"), []);
    assert.deepEqual(await store.listByUser("bob"), [], "bob's entry went with the record");
    assert.deepEqual(await withHandle(path, (handle) => entries(handle)), []);
  } finally {
    await other.close();
    kv.close();
    cleanup();
  }
});

test("DenoKvStore: a user's list answers no entry past the store's clock and deletes those not rewritten meanwhile", async () => {
  const { path, cleanup } = tempKv();
  const kv = new CountingKv(await openHandle(path));
  let ahead = 0;
  const store = new DenoKvStore({ kv, now: () => Date.now() + ahead });
  const other = new DenoKvStore({ path });
  try {
    await store.set(key(1), loggedIn("ada", {}, 60_000));
    await store.set(key(2), loggedIn("ada", {}, 60_000));
    await store.set(key(3), loggedIn("ada", {}, 600_000));
    ahead = 120_000;
    // While the listing deletes the stale entries, a process whose clock says key 2 lives updates it.
    let touched: Promise<unknown> | undefined;
    kv.beforeCommit = async () => {
      touched ??= other.set(key(2), update({ seen: true }));
      await touched;
    };
    assert.deepEqual((await store.listByUser("ada")).map((entry) => entry.key), [key(3)]);
    const indexed = await withHandle(
      path,
      (handle) => entries(handle, ["sessions", "users", userKey("ada")]),
    );
    assert.deepEqual(indexed.map((entry) => entry.key.at(-1)), [key(2), key(3)], "key 1's entry is gone");
    assert.deepEqual((await other.listByUser("ada")).map((entry) => entry.key), [key(2), key(3)]);
  } finally {
    await other.close();
    kv.close();
    cleanup();
  }
});

test("DenoKvStore: an unreadable or foreign index entry is answered from its record, or deleted", async () => {
  const store = new TempKvStore();
  try {
    await store.set(key(1), loggedIn("ada", { a: 1 }));
    await store.set(key(3), loggedIn("bob", {}));
    const index = ["sessions", "users", userKey("ada")];
    const bytes = (value: string) => new TextEncoder().encode(value);
    const bobs = JSON.stringify((await store.get(key(3)))!.meta);
    await withHandle(store.path, async (kv) => {
      await kv.atomic()
        .set([...index, key(1)], bytes("{not json")) // a live record of ada
        .set([...index, key(2)], bytes("{}")) // no record
        .set([...index, key(3)], bytes(bobs)) // a record of bob
        .set([...index, key(5), "deeper"], bytes("x"))
        .commit();
    });
    const listed = await store.listByUser("ada");
    assert.deepEqual(listed.map((entry) => [entry.key, entry.meta.userId]), [[key(1), "ada"]]);
    assert.deepEqual(listed[0].meta, (await store.get(key(1)))!.meta, "answered from the record");
    const left = await withHandle(store.path, (kv) => entries(kv, index));
    assert.deepEqual(left.map((entry) => entry.key.slice(index.length)), [[key(1)], [key(5), "deeper"]]);
    assert.deepEqual((await store.listByUser("bob")).map((entry) => entry.key), [key(3)], "bob's own entry");
    await assert.rejects(store.listByUser(""), { name: "TypeError", message: /needs a user id/ });
    await assert.rejects(store.listByUser(1 as unknown as string), { name: "TypeError" });
  } finally {
    await store.close();
  }
});

test("DenoKvStore: metadata over 16 KiB is refused clearly and nothing is written; at both limits a record and its index entry fit one commit", async () => {
  const store = new TempKvStore();
  try {
    const big = loggedIn("ada", {});
    big.record.meta.details = { blob: "x".repeat(MAX_META_BYTES) };
    await assert.rejects(store.set(key(1), big), (error: Error) => {
      assert.match(
        error.message,
        /^DenoKvStore cannot keep the metadata of a logged-in session of \d+ bytes: the limit is 16384 bytes of JSON/,
      );
      return true;
    });
    assert.deepEqual(await withHandle(store.path, (kv) => entries(kv)), []);
    // Through the core, details that large never reach the store: logIn() refuses them first (4,096 bytes).
    const manager = new SessionManager({ store, secret: "a-secret-of-at-least-32-bytes-long!" });
    const session = await manager.load({ cookie: null, https: false });
    await assert.rejects(
      session.logIn("ada", { details: { blob: "x".repeat(MAX_META_BYTES) } }),
      /over the 4096 allowed/,
    );
    assert.equal(session.userId, undefined);

    // 768 KiB of record JSON and 16 KiB of metadata, for a user id of 256 characters.
    const userId = "u".repeat(256);
    const full = loggedIn(userId, {}, 600_000);
    full.record.meta.details = { blob: "" };
    full.record.meta.details.blob = "x".repeat(MAX_META_BYTES - JSON.stringify(full.record.meta).length);
    full.record.data = { big: "" };
    const json = () => JSON.stringify({ meta: full.record.meta, data: full.record.data });
    full.record.data.big = "y".repeat(MAX_RECORD_BYTES - json().length);
    assert.equal(JSON.stringify(full.record.meta).length, MAX_META_BYTES);
    assert.equal(json().length, MAX_RECORD_BYTES);
    assert.equal(await store.set(key(2), full), "written");
    const next = update({ n: 1 }, 600_000);
    next.record.meta = { ...full.record.meta };
    assert.equal(
      await store.set(key(2), Object.assign(next, { set: { big: full.record.data.big } })),
      "written",
    );
    assert.deepEqual((await store.listByUser(userId)).map((entry) => entry.meta), [next.record.meta]);
    await store.delete(key(2));
    assert.deepEqual(await withHandle(store.path, (kv) => entries(kv)), []);
  } finally {
    await store.close();
  }
});

test('DenoKvStore: records under the storage keys "users" and a user key stay apart from the index', async () => {
  const store = new TempKvStore();
  try {
    const keys = Array.from({ length: 20 }, (_, i) => key(i));
    for (const [i, each] of keys.entries()) await store.set(each, loggedIn("ada", { i }));
    const odd = ["users", userKey("ada")];
    for (const each of odd) {
      assert.equal(await store.set(each, loggedIn("ada", { each })), "written");
      assert.deepEqual((await store.get(each))?.data, { each }, each);
    }
    const listed = async () => (await store.listByUser("ada")).map((entry) => entry.key).sort();
    assert.deepEqual(await listed(), [...keys, ...odd].sort());
    for (const each of odd) await store.delete(each);
    assert.deepEqual(await listed(), [...keys].sort());
    assert.equal(await store.get("users"), undefined);
  } finally {
    await store.close();
  }
});

test("DenoKvStore: round trips — read 1 list, new session 1 commit, update and delete 1 list + 1 commit, a user's sessions 1 list", async () => {
  const { path, cleanup } = tempKv();
  const kv = new CountingKv(await openHandle(path));
  const store = new DenoKvStore({ kv });
  try {
    const trips = () => {
      const counted = { lists: kv.lists, commits: kv.commits };
      kv.reset();
      return counted;
    };
    await store.set(key(1), create({ a: 1 }));
    assert.deepEqual(trips(), { lists: 0, commits: 1 }, "create");
    await store.get(key(1));
    assert.deepEqual(trips(), { lists: 1, commits: 0 }, "get");
    await store.set(key(1), update({ b: "x".repeat(300_000) }));
    assert.deepEqual(trips(), { lists: 1, commits: 1 }, "update, even of a record spanning 5 values");
    await store.get(key(1));
    assert.deepEqual(trips(), { lists: 1, commits: 0 }, "get of a large record");
    await store.delete(key(1));
    assert.deepEqual(
      trips(),
      { lists: 1, commits: 1 },
      "delete: value 0 and the user entry read, then a commit",
    );
    assert.equal(await store.set(key(1), update({ c: 1 })), "gone");
    assert.deepEqual(trips(), { lists: 1, commits: 0 }, "an update of a missing record only reads");

    // Logged-in records: the index costs no round trip of its own, and a user's list is one.
    for (let i = 2; i < 12; i++) await store.set(key(i), loggedIn("ada", { i }));
    assert.deepEqual(trips(), { lists: 0, commits: 10 }, "a logged-in create: one commit");
    assert.equal((await store.listByUser("ada")).length, 10);
    assert.deepEqual(trips(), { lists: 1, commits: 0 }, "listByUser, 10 sessions");
    assert.equal(await store.set(key(2), update({ b: 1 })), "written");
    assert.deepEqual(trips(), { lists: 1, commits: 1 }, "a logged-in update");
    await store.delete(key(2));
    assert.deepEqual(trips(), { lists: 1, commits: 1 }, "a logged-in delete");

    // Through the core: a new session, then a request that reads and writes it.
    const manager = new SessionManager({ store, secret: "a-secret-of-at-least-32-bytes-long!" });
    const first = await manager.load({ cookie: null, https: false });
    first.set("user", "ada");
    const cookie = (await manager.commit(first))!.split(";")[0];
    assert.deepEqual(trips(), { lists: 0, commits: 1 }, "a new session: one commit");
    const next = await manager.load({ cookie, https: false });
    next.set("n", 1);
    await manager.commit(next);
    assert.deepEqual(
      trips(),
      { lists: 2, commits: 1 },
      "a request that changes its session: three round trips",
    );
    await store.close();
    assert.equal(
      (await kv.inner.atomic().set(["still", "open"], new Uint8Array([1])).commit()).ok,
      true,
      "close() left the kv open",
    );
  } finally {
    kv.close();
    cleanup();
  }
});

test("DenoKvStore: an update that loses to an overlapping commit reads again and keeps both changes", async () => {
  const { path, cleanup } = tempKv();
  const kv = new CountingKv(await openHandle(path));
  const store = new DenoKvStore({ kv });
  const other = new DenoKvStore({ path });
  try {
    await store.set(key(1), create({ x: 0 }));
    let competing = 2;
    kv.beforeCommit = async () => {
      if (competing-- > 0) await other.set(key(1), update({ [`other${competing}`]: true }));
    };
    kv.reset();
    assert.equal(await store.set(key(1), update({ mine: 1 })), "written");
    assert.deepEqual(kv.commits, 3, "two commits lost, the third won");
    assert.deepEqual((await store.get(key(1)))?.data, { x: 0, other1: true, other0: true, mine: 1 });

    // A logout between the read and the commit: the retry finds nothing and writes nothing.
    kv.beforeCommit = async () => {
      kv.beforeCommit = undefined;
      await other.delete(key(1));
    };
    assert.equal(await store.set(key(1), update({ cart: [1] })), "gone");
    assert.equal(await store.get(key(1)), undefined);
    assert.deepEqual(await withHandle(path, (handle) => entries(handle)), [], "nothing resurrected");
  } finally {
    await other.close();
    kv.close();
    cleanup();
  }
});

test("DenoKvStore: an update losing maxAttempts times fails clearly; through the core a SessionStoreError (503)", async () => {
  const { path, cleanup } = tempKv();
  const kv = new CountingKv(await openHandle(path));
  const store = new DenoKvStore({ kv, maxAttempts: 3 });
  const other = new DenoKvStore({ path });
  try {
    await store.set(key(1), create({ x: 0 }));
    let n = 0;
    kv.beforeCommit = async () => {
      await other.set(key(1), update({ [`other${n++}`]: true }));
    };
    kv.reset();
    await assert.rejects(store.set(key(1), update({ mine: 1 })), {
      message:
        'DenoKvStore gave up an update after 3 attempts: overlapping requests of the same session kept committing first (raise "maxAttempts" if this is expected)',
    });
    assert.equal(kv.commits, 3, "exactly maxAttempts commits");
    kv.beforeCommit = undefined;
    assert.deepEqual(
      (await store.get(key(1)))?.data,
      { x: 0, other0: true, other1: true, other2: true },
      "nothing of the failed update",
    );

    const secret = "a-secret-of-at-least-32-bytes-long!";
    const manager = new SessionManager({ store, secret });
    const first = await manager.load({ cookie: null, https: false });
    first.set("user", "ada");
    const cookie = (await manager.commit(first))!.split(";")[0];
    const request = await manager.load({ cookie, https: false });
    request.set("cart", [1]);
    kv.beforeCommit = async () => {
      await other.set(storageKey(first.id), update({ [`other${n++}`]: true }));
    };
    await assert.rejects(manager.commit(request), (error: unknown) => {
      assert.ok(error instanceof SessionStoreError);
      assert.equal(error.status, 503);
      assert.match(
        error.message,
        /^Cannot write session to store: DenoKvStore gave up an update after 3 attempts/,
      );
      return true;
    });
  } finally {
    await other.close();
    kv.close();
    cleanup();
  }
});

test("DenoKvStore: 50 overlapping updates of one session from two handles all persist", async () => {
  const { path, cleanup } = tempKv();
  const a = new DenoKvStore({ path });
  const b = new DenoKvStore({ path });
  try {
    await a.set(key(1), create({}));
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => (i % 2 ? a : b).set(key(1), update({ [`k${i}`]: i }))),
    );
    assert.ok(results.every((result) => result === "written"));
    assert.equal(Object.keys((await a.get(key(1)))!.data).length, 50);
  } finally {
    await a.close();
    await b.close();
    cleanup();
  }
});

test("DenoKvStore: sessions survive closing and reopening the file (a restart)", async () => {
  const { path, cleanup } = tempKv();
  try {
    const before = new DenoKvStore({ path });
    await before.set(key(1), create({ user: "ada" }));
    await before.close();
    const after = new DenoKvStore({ path });
    assert.deepEqual((await after.get(key(1)))?.data, { user: "ada" });
    await after.close();
  } finally {
    cleanup();
  }
});

test("DenoKvStore: opening fails clearly — an unusable path, a KV Connect URL with nothing listening", async () => {
  const bad = new DenoKvStore({ path: "/nonexistent-dir/for/sure/sessions.kv" });
  await assert.rejects(
    bad.init(),
    /^Error: Cannot open Deno KV at "\/nonexistent-dir\/for\/sure\/sessions\.kv": /,
  );
  await assert.rejects(
    bad.get(key(1)),
    /Cannot open Deno KV at/,
    "each use tries again and fails the same way",
  );
  await bad.close();
  await assert.rejects(bad.get(key(1)), { message: "DenoKvStore is closed" });

  const env = process.env.DENO_KV_ACCESS_TOKEN;
  process.env.DENO_KV_ACCESS_TOKEN = "test-token";
  try {
    const remote = new DenoKvStore({ path: "http://127.0.0.1:1/connect" });
    const started = Date.now();
    await assert.rejects(
      remote.init(),
      /^Error: Cannot open Deno KV at "http:\/\/127\.0\.0\.1:1\/connect": /,
    );
    assert.ok(Date.now() - started < 3000, `failed after ${Date.now() - started} ms`);
    await remote.close();
  } finally {
    if (env === undefined) delete process.env.DENO_KV_ACCESS_TOKEN;
    else process.env.DENO_KV_ACCESS_TOKEN = env;
  }
});

test("DenoKvStore: a closed store refuses work; close() twice is fine", async () => {
  const store = new TempKvStore();
  await store.set(key(1), create({ a: 1 }));
  await store.close();
  await assert.rejects(store.get(key(1)), { message: "DenoKvStore is closed" });
  await assert.rejects(store.set(key(1), update({ b: 1 })), { message: "DenoKvStore is closed" });
  await assert.rejects(store.delete(key(1)), { message: "DenoKvStore is closed" });
  await store.close();
});

test("DenoKvStore: a write waits while another process holds the file's write lock, then succeeds", async () => {
  const store = new TempKvStore();
  let holder: HeldLock | undefined;
  try {
    await store.set(key(1), create({ a: 1 }));
    holder = await holdSqliteLock(store.path, "IMMEDIATE", 400);
    const { released } = holder;
    const started = Date.now();
    assert.deepEqual((await store.get(key(1)))?.data, { a: 1 }, "reads go on meanwhile");
    assert.equal(await store.set(key(1), update({ b: 2 })), "written");
    assert.equal(await store.set(key(2), create({ c: 3 })), "written");
    assert.ok(Date.now() - started >= 300, `the writes waited for the lock (${Date.now() - started} ms)`);
    await released;
    assert.deepEqual((await store.get(key(1)))?.data, { a: 1, b: 2 });
  } finally {
    holder?.kill();
    await store.close();
  }
});

test("DenoKvStore: a lock held past the engine's 5 s wait fails the write clearly; nothing is written", async () => {
  const store = new TempKvStore();
  let holder: HeldLock | undefined;
  try {
    await store.set(key(1), create({ a: 1 }));
    holder = await holdSqliteLock(store.path, "IMMEDIATE", 7000);
    const { released } = holder;
    const started = Date.now();
    await assert.rejects(store.set(key(1), update({ b: 2 })), {
      message: "Deno KV atomic write failed: database is locked",
    });
    const took = Date.now() - started;
    assert.ok(took >= 4900 && took < 6900, `failed after ${took} ms`);
    await released;
    assert.deepEqual((await store.get(key(1)))?.data, { a: 1 });
  } finally {
    holder?.kill();
    await store.close();
  }
});

/** Runs a script file with this runtime (`deno run` on Deno), answering its exit code and output. */
function runScript(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, {
      cwd: root,
      env: { ...process.env, ...env, NO_COLOR: "1" },
    });
    let output = "";
    child.stdout.on("data", (chunk) => (output += chunk));
    child.stderr.on("data", (chunk) => (output += chunk));
    child.on("close", (code) => resolve({ code: code ?? 1, output }));
  });
}

const storeModule = fileURLToPath(new URL("./deno_kv.ts", import.meta.url));

if (deno !== undefined) {
  test("DenoKvStore (Deno): without --unstable-kv the error names the flag and the deno.json setting", async () => {
    const dir = mkdtempSync(join(tmpdir(), "deno-kv-flag-"));
    try {
      const script = join(dir, "main.ts");
      writeFileSync(
        script,
        `import { DenoKvStore } from ${JSON.stringify(storeModule)};
        await new DenoKvStore({ path: ${
          JSON.stringify(join(dir, "x.kv"))
        } }).init().catch((e) => console.log(e.message));`,
      );
      // Without deno.json (which turns KV on), its npm imports resolved from node_modules.
      const { output } = await runScript(["run", "-A", "--no-config", "--node-modules-dir=manual", script]);
      assert.match(
        output,
        /Cannot open Deno KV at ".*": DenoKvStore needs Deno\.openKv, which Deno 2 keeps behind a flag: run with --unstable-kv \(or add "unstable": \["kv"\] to deno\.json\)/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
} else {
  test(`DenoKvStore (${runtime}): a path is required outside Deno`, async () => {
    const store = new DenoKvStore();
    await assert.rejects(store.init(), /DenoKvStore needs a "path" \(or a "kv" handle\) outside Deno/);
  });

  test(`DenoKvStore (${runtime}): a file written through @deno/kv is read by Deno.openKv, and back, its user index too`, async () => {
    const { path, cleanup } = tempKv();
    const dir = mkdtempSync(join(tmpdir(), "deno-kv-interop-"));
    try {
      const store = new DenoKvStore({ path });
      const write = createWrite({ from: runtime, big: "x".repeat(100_000) });
      write.record.meta.userId = "ada";
      write.record.meta.details = { device: "node" };
      await store.set(key(1), write);
      await store.close();
      const script = join(dir, "main.ts");
      writeFileSync(
        script,
        `import { DenoKvStore } from ${JSON.stringify(storeModule)};
        const store = new DenoKvStore({ path: ${JSON.stringify(path)} });
        const record = await store.get(${JSON.stringify(key(1))});
        console.log(JSON.stringify({ from: record?.data.from, big: (record?.data.big as string)?.length }));
        const now = Date.now();
        const meta = { createdAt: now, expiresAt: now + 60_000, absoluteExpiresAt: now + 60_000 };
        const write = { kind: "update", record: { data: {}, meta }, set: { also: "deno" }, deleted: [], cleared: false, flashChanged: false };
        console.log(await store.set(${JSON.stringify(key(1))}, write));
        console.log(JSON.stringify((await store.listByUser("ada")).map((entry) => [entry.key, entry.meta.details])));
        await store.close();`,
      );
      const denoBin = fileURLToPath(new URL("../../node_modules/.bin/deno", import.meta.url));
      const output = await new Promise<string>((resolve) => {
        const args = ["run", "-A", "--no-config", "--node-modules-dir=manual", "--unstable-kv", script];
        const child = spawn(denoBin, args, {
          cwd: root,
          env: { ...process.env, NO_COLOR: "1" },
        });
        let out = "";
        child.stdout.on("data", (chunk) => (out += chunk));
        child.stderr.on("data", (chunk) => (out += chunk));
        child.on("close", () => resolve(out));
      });
      assert.equal(
        output.trim(),
        `{"from":"${runtime}","big":100000}\nwritten\n${JSON.stringify([[key(1), { device: "node" }]])}`,
      );
      const again = new DenoKvStore({ path });
      assert.deepEqual(Object.keys((await again.get(key(1)))!.data), ["from", "big", "also"]);
      const listed = await again.listByUser("ada");
      assert.deepEqual(listed.map((entry) => [entry.key, entry.meta.details]), [[key(1), {
        device: "node",
      }]]);
      await again.delete(key(1));
      assert.deepEqual(await again.listByUser("ada"), []);
      await again.close();
    } finally {
      cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
