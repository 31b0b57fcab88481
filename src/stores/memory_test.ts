import { test } from "node:test";
import assert from "node:assert/strict";
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

test("MemoryStore: rejects a bad maxEntries naming the option", () => {
  assert.throws(() => new MemoryStore({ maxEntries: 0 }), /"maxEntries"/);
});
