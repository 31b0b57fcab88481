import { test } from "node:test";
import assert from "node:assert/strict";
import { MemoryStore } from "./memory.ts";
import { storeConformanceSuite } from "../testing/store_suite.ts";
import type { StoreWrite } from "../store.ts";

storeConformanceSuite(test, { name: "MemoryStore", createStore: () => new MemoryStore() });

function write(expiresAt: number): StoreWrite {
  const record = { data: { a: 1 }, meta: { createdAt: 0, expiresAt, absoluteExpiresAt: expiresAt } };
  return { kind: "create", record, set: record.data, deleted: [], cleared: false, flashChanged: false };
}

test("MemoryStore: drops the least recently written session beyond maxEntries", async () => {
  const store = new MemoryStore({ maxEntries: 3 });
  const far = Date.now() + 60_000;
  for (const id of ["a", "b", "c"]) await store.set(id.repeat(32), write(far));
  await store.set("a".repeat(32), write(far)); // rewriting a makes b the oldest
  await store.set("d".repeat(32), write(far));
  assert.equal(store.size, 3);
  assert.equal(await store.get("b".repeat(32)), undefined);
  assert.ok(await store.get("a".repeat(32)));
  assert.ok(await store.get("d".repeat(32)));
});

test("MemoryStore: sweeps expired sessions from the oldest end on writes, without a full scan", async () => {
  let now = 1_000;
  const store = new MemoryStore({ now: () => now });
  for (let i = 0; i < 10; i++) await store.set(`old${i}`.padEnd(32, "x"), write(2_000));
  await store.set("live".padEnd(32, "x"), write(100_000));
  now = 3_000;
  assert.equal(store.size, 11);
  await store.set("new1".padEnd(32, "x"), write(100_000));
  assert.equal(store.size, 8, "four expired removed by one write");
  await store.set("new2".padEnd(32, "x"), write(100_000));
  await store.set("new3".padEnd(32, "x"), write(100_000));
  assert.equal(store.size, 4, "all ten expired gone; live, new1, new2, new3 kept");
});

test("MemoryStore: rejects a bad maxEntries naming the option", () => {
  assert.throws(() => new MemoryStore({ maxEntries: 0 }), /"maxEntries"/);
});
