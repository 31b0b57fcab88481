import { test } from "node:test";
import assert from "node:assert/strict";
import { SessionManager } from "./core.ts";
import { MemoryStore } from "./stores/memory.ts";
import type { Session } from "./session.ts";

async function fresh<T extends Record<string, unknown> = Record<string, unknown>>(): Promise<Session<T>> {
  const manager = new SessionManager<T>({ store: new MemoryStore() });
  return await manager.load({ cookie: null, https: false });
}

test("get, set, has, delete, clear and keys", async () => {
  const session = await fresh();
  assert.equal(session.get("missing"), undefined);
  assert.equal(await session.get("missing"), undefined, "awaiting get works like the original async API");
  assert.equal(session.set("a", 1), session, "set chains");
  await session.set("b", { nested: [1, "two", null, true] });
  assert.equal(session.has("a"), true);
  assert.deepEqual(session.keys(), ["a", "b"]);
  assert.equal(session.delete("a"), true);
  assert.equal(session.delete("a"), false);
  assert.equal(session.has("a"), false);
  session.clear();
  assert.deepEqual(session.keys(), []);
  assert.equal(session.isNew, true);
});

test("setting undefined deletes the key", async () => {
  const session = await fresh();
  session.set("a", 1);
  session.set("a", undefined);
  assert.equal(session.has("a"), false);
});

test("reserved keys are refused with a clear error", async () => {
  const session = await fresh();
  for (const key of ["__proto__", "constructor", "prototype"]) {
    assert.throws(
      () => session.set(key, 1),
      new RegExp(`Cannot set session key "${key}": the name is reserved`),
    );
    assert.throws(() => session.flash(key, 1), /Cannot flash session key/);
  }
  assert.throws(() => session.set(42 as unknown as string, 1), /the key must be a string/);
  assert.equal(Object.prototype.hasOwnProperty.call(Object.prototype, "polluted"), false);
});

test("values must be JSON data, with the path to the bad part in the error", async () => {
  const session = await fresh();
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  const cases: [unknown, RegExp][] = [
    [new Date(0), /value at when is Date, not JSON data/],
    [{ at: new Map() }, /value at when\.at is Map/],
    [[1, () => 1], /value at when\[1\] is function/],
    [Number.NaN, /value at when is NaN/],
    [Infinity, /is Infinity/],
    [10n, /is bigint/],
    [{ a: undefined }, /value at when\.a is undefined/],
    [cyclic, /refers to itself/],
    [JSON.parse('{"__proto__": {"x": 1}}'), /has a "__proto__" key/],
    [new (class Point {})(), /is Point/],
  ];
  for (const [value, message] of cases) assert.throws(() => session.set("when", value), message);
  assert.equal(session.has("when"), false, "nothing was stored");
  const shared = { x: 1 };
  session.set("twice", [shared, shared]);
  assert.deepEqual(session.get("twice"), [{ x: 1 }, { x: 1 }], "a repeated (non-cyclic) object is fine");
});

test("typed session data through the generic", async () => {
  const session = await fresh<{ userId: string; visits: number }>();
  session.set("userId", "u1");
  session.set("visits", 2);
  const userId: string | undefined = session.get("userId");
  assert.equal(userId, "u1");
  // @ts-expect-error: visits is a number
  assert.throws(() => session.set("visits", () => 1));
});

test("regenerate gives a new id and keeps data; destroy forgets everything", async () => {
  const session = await fresh();
  session.set("a", 1);
  const before = session.id;
  await session.regenerate();
  assert.notEqual(session.id, before);
  assert.equal(session.get("a"), 1);
  await session.destroy();
  assert.deepEqual(session.keys(), []);
});
