import { test } from "node:test";
import assert from "node:assert/strict";
import v8 from "node:v8";
import vm from "node:vm";
import process from "node:process";
import { MemoryStore } from "./memory.ts";
import { createWrite, storeConformanceSuite } from "../testing/store_suite.ts";

storeConformanceSuite(test, {
  name: "MemoryStore",
  createStore: () => new MemoryStore(),
  dump: (store) => {
    const memory = store as MemoryStore;
    return Promise.resolve(
      [...memory.keys()].map((key) => `${key} ${JSON.stringify(memory.get(key))}`).join("\n"),
    );
  },
});

const write = (expiresAt: number) => createWrite({ a: 1 }, { expiresAt });

test("MemoryStore: beyond maxEntries the session closest to expiry goes first", async () => {
  const store = new MemoryStore({ maxEntries: 3 });
  const far = Date.now() + 3_600_000;
  await store.set("a".repeat(32), write(far));
  await store.set("b".repeat(32), write(far + 120_000));
  await store.set("c".repeat(32), write(far + 240_000));
  await store.set("a".repeat(32), write(far + 360_000)); // a slides past the others
  await store.set("d".repeat(32), write(far + 480_000));
  assert.equal(store.size, 3);
  assert.equal(await store.get("b".repeat(32)), undefined, "b expired soonest");
  for (const id of ["a", "c", "d"]) assert.ok(await store.get(id.repeat(32)), id);
});

test("MemoryStore: sweeps expired sessions a few per write, without touching live ones", async () => {
  let now = 1_000;
  const store = new MemoryStore({ now: () => now });
  for (let i = 0; i < 20; i++) await store.set(`old${i}`.padEnd(32, "x"), write(2_000));
  await store.set("live".padEnd(32, "x"), write(10_000_000));
  now = 61_000; // the minute the old ones expired in is entirely past
  assert.equal(store.size, 21);
  await store.set("new1".padEnd(32, "x"), write(10_000_000));
  assert.equal(store.size, 14, "eight expired removed by one write");
  await store.set("new2".padEnd(32, "x"), write(10_000_000));
  await store.set("new3".padEnd(32, "x"), write(10_000_000));
  assert.equal(store.size, 4, "all twenty expired gone; live, new1, new2, new3 kept");
  await store.set("new4".padEnd(32, "x"), write(10_000_000));
  assert.equal(store.size, 5, "live sessions are never swept");
});

test("MemoryStore: reads sweep expired sessions too, eight per read, never a live one", async () => {
  let now = 1_000;
  const store = new MemoryStore({ now: () => now });
  for (let i = 0; i < 200; i++) await store.set(`old${i}`.padEnd(32, "x"), write(2_000));
  await store.set("live".padEnd(32, "x"), write(10_000_000));
  now = 61_000; // the minute the old ones expired in is entirely past
  assert.equal(store.size, 201);
  // A read-mostly app: reads of live and unknown sessions only, no write at all.
  assert.ok(await store.get("live".padEnd(32, "x")));
  assert.equal(store.size, 193, "eight expired removed by one read");
  const sizes: number[] = [];
  for (let i = 0; i < 30; i++) {
    await store.get(`unknown${i}`.padEnd(32, "x"));
    sizes.push(store.size);
  }
  const removed = sizes.map((size, i) => (i === 0 ? 193 : sizes[i - 1]) - size);
  assert.ok(removed.every((n) => n <= 8), `at most eight per read: ${removed.join()}`);
  assert.equal(store.size, 1, "every expired session reclaimed by reads alone");
  assert.ok(await store.get("live".padEnd(32, "x")), "the live session is kept");
});

test("MemoryStore: a session rewritten many times leaves no extra work behind", async () => {
  let now = 1_000;
  const store = new MemoryStore({ now: () => now });
  for (let i = 0; i < 1000; i++) {
    now += 1000;
    await store.set("hot".padEnd(32, "x"), write(now + 60_000));
  }
  assert.equal(store.size, 1);
  assert.ok(await store.get("hot".padEnd(32, "x")));
});

/** The heap in use after a full garbage collection: V8's (Node and Deno expose `gc` this way), or Bun's. */
function heapAfterGc(): number {
  const bun = (globalThis as { Bun?: { gc(force: boolean): void } }).Bun;
  if (bun !== undefined) {
    bun.gc(true);
    return process.memoryUsage().heapUsed;
  }
  v8.setFlagsFromString("--expose-gc");
  const gc = vm.runInNewContext("gc") as () => void;
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** A storage-key-shaped string held by nothing but the store once written. */
const freshKey = (i: number) => "s1_" + String(i).padStart(43, "0");

test("MemoryStore: memory stays bounded by the sessions held, whatever was evicted, deleted or moved", async (t) => {
  // Every session is filed under the minute it expires in until that minute is past (a day, by default):
  // what leaves the store early (evicted, deleted, refiled by a write that moved its expiry) must not stay
  // referenced there. Each case writes 100,000 keys of 64 bytes through a store that holds at most a few
  // hundred: kept references would be ~7 MB, what is held is ~0.1 MB.
  const now = 1_000_000;
  const far = now + 86_400_000;
  const cases: Record<string, (store: MemoryStore, i: number) => Promise<unknown>> = {
    evicted: (store, i) => Promise.resolve(store.set(freshKey(i), write(far))),
    deleted: async (store, i) => {
      await store.set(freshKey(i), write(far));
      await store.delete(freshKey(i));
    },
    // 100 sessions written 1,000 times each, every write moving the expiry to a later minute.
    moved: (store, i) => Promise.resolve(store.set(freshKey(i % 100), write(far + i * 60_000))),
  };
  for (const [name, step] of Object.entries(cases)) {
    await t.test(name, async () => {
      const store = new MemoryStore({ maxEntries: 200, now: () => now });
      for (let i = 0; i < 1000; i++) await step(store, i); // the store's own structures, at full size
      const before = heapAfterGc();
      for (let i = 1000; i < 100_000; i++) await step(store, i);
      const grown = heapAfterGc() - before;
      assert.ok(store.size <= 200, `${store.size} sessions held`);
      assert.ok(grown < 2_000_000, `${name}: the heap grew by ${(grown / 1e6).toFixed(1)} MB`);
      // Still correct: the newest sessions are there, and the expiry sweep still removes them on time.
      const last = name === "moved" ? freshKey(99_999 % 100) : freshKey(99_999);
      if (name !== "deleted") assert.ok(await store.get(last));
    });
  }
});

test("MemoryStore: rejects a bad maxEntries naming the option", () => {
  assert.throws(() => new MemoryStore({ maxEntries: 0 }), /"maxEntries"/);
});

test("MemoryStore: unknown option names are refused, with the nearest known name or the known ones", () => {
  assert.throws(() => new MemoryStore({ maxEntry: 10 } as never), {
    name: "TypeError",
    message: 'Unknown MemoryStore option "maxEntry": did you mean "maxEntries"?',
  });
  assert.throws(() => new MemoryStore({ foo: 1 } as never), {
    name: "TypeError",
    message: 'Unknown MemoryStore option "foo": known options are maxEntries, now',
  });
  new MemoryStore({ maxEntries: 10, now: Date.now });
});
