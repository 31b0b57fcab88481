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

/** An object nested `depth` levels deep: `{ a: { a: ... } }`. */
function deep(depth: number): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  let at = root;
  for (let i = 1; i < depth; i++) at = (at.a = {}) as Record<string, unknown>;
  return root;
}

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
    [-0, /value at when is -0, not JSON data/],
    [{ list: [1, -0] }, /value at when\.list\[1\] is -0/],
    [Object.assign([1, 2], { extra: true }), /value at when is an array with holes or extra properties/],
    // deno-lint-ignore no-sparse-arrays
    [[1, , 3], /array with holes or extra properties/],
    [{ [Symbol("s")]: 1, a: 1 }, /has symbol keys or non-enumerable properties/],
    [Object.defineProperty({ a: 1 }, "hidden", { value: 2, enumerable: false }), /non-enumerable/],
    [deep(20_000), /is nested more than 1000 levels deep/],
    [new (class List extends Array {})(), /is List, not JSON data/],
    [{ list: Object.setPrototypeOf([1], null) }, /value at when\.list is object, not JSON data/],
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

test("1,000 levels of nesting are fine; 1,001 are refused with a TypeError, never a RangeError", async () => {
  const session = await fresh();
  session.set("ok", deep(1000));
  assert.throws(() => session.set("deep", deep(1001)), TypeError);
  assert.throws(() => session.set("deeper", [deep(50_000)]), TypeError);
});

/** A manager, a saved session with `value` under "v", and a way to read it back as the next request. */
async function saved(value: unknown) {
  const manager = new SessionManager({ store: new MemoryStore() });
  const first = await manager.load({ cookie: null, https: false });
  first.set("v", value);
  const cookie = (await manager.commit(first))!.split(";")[0];
  const load = () => manager.load({ cookie, https: false });
  return { manager, load };
}

test("an object read with get() and changed in place is saved as it is when the request ends", async () => {
  const { manager, load } = await saved({ cart: [1] });
  const second = await load();
  (second.get("v") as { cart: number[] }).cart.push(2);
  await manager.commit(second);
  assert.deepEqual((await load()).get("v"), { cart: [1, 2] });

  // Read but unchanged: nothing to write for that key.
  const third = await load();
  third.get("v");
  third.set("other", 1);
  await manager.commit(third);
  assert.deepEqual(
    (await load()).toJSON(),
    Object.assign(Object.create(null), { v: { cart: [1, 2] }, other: 1 }),
  );
});

test("an object changed after set() is saved with its changes, and checked again", async () => {
  const { manager, load } = await saved({ items: [] });
  const second = await load();
  const value = { items: [1] };
  second.set("v", value);
  value.items.push(2);
  await manager.commit(second);
  assert.deepEqual((await load()).get("v"), { items: [1, 2] });

  // A Date pushed in after set() is refused at commit, as set() would refuse it: nothing is stored.
  const third = await load();
  const list = third.get("v") as { items: unknown[] };
  list.items.push(new Date(0));
  await assert.rejects(manager.commit(third), /value at v\.items\[2\] is Date, not JSON data/);
  assert.deepEqual((await load()).get("v"), { items: [1, 2] }, "the stored value is unchanged");

  const fourth = await load();
  const flashed = { n: 1 };
  fourth.flash("notice", flashed);
  (flashed as Record<string, unknown>).when = -0;
  await assert.rejects(manager.commit(fourth), /is -0/);

  const fifth = await load();
  (fifth.get("v") as Record<string, unknown>).self = fifth.get("v");
  await assert.rejects(manager.commit(fifth), /refers to itself/);
});

test("a value read then deleted or cleared stays deleted, whatever happened to the object", async () => {
  const { manager, load } = await saved({ a: 1 });
  const second = await load();
  const value = second.get("v") as Record<string, unknown>;
  second.delete("v");
  value.a = 2;
  second.set("keep", true);
  await manager.commit(second);
  assert.equal((await load()).get("v"), undefined);
});

test("toJSON gives copies: changing them changes nothing in the session", async () => {
  const { manager, load } = await saved({ cart: [1] });
  const second = await load();
  const shown = second.toJSON() as { v: { cart: (number | Date)[] } };
  shown.v.cart.push(2, new Date(0));
  second.set("other", 1);
  await manager.commit(second);
  assert.deepEqual((await load()).get("v"), { cart: [1] });
});

test("under Bun, in a Bun process of its own: an error thrown by a callback is an uncaught exception", {
  // The test below, outside `bun test` (whose runner fails a test on any uncaught error, listeners or not).
  skip: "Bun" in globalThis ? false : "not applicable: Node and Deno run the test below in process",
}, async () => {
  const { spawnSync } = await import("node:child_process");
  const { default: process } = await import("node:process");
  const { fileURLToPath } = await import("node:url");
  const src = (name: string) => JSON.stringify(fileURLToPath(new URL(name, import.meta.url)));
  const script = `
    import { SessionManager } from ${src("./core.ts")};
    import { MemoryStore } from ${src("./stores/memory.ts")};
    const uncaught = [], unhandled = [];
    process.on("uncaughtException", (error) => uncaught.push(error.message));
    process.on("unhandledRejection", (reason) => unhandled.push(String(reason)));
    const session = await new SessionManager({ store: new MemoryStore() }).load({ cookie: null, https: false });
    session.set("a", 1);
    const results = await Promise.allSettled([
      session.save(() => { throw new Error("save"); }),
      session.regenerate(() => { throw new Error("regenerate"); }),
    ]);
    results.push(...await Promise.allSettled([session.destroy(() => { throw new Error("destroy"); })]));
    await new Promise((resolve) => setTimeout(resolve, 20));
    console.log(JSON.stringify({ results: results.map((r) => r.status), uncaught: uncaught.sort(), unhandled }));`;
  const child = spawnSync(process.execPath, ["-e", script], { encoding: "utf8" });
  assert.equal(child.status, 0, child.stderr);
  assert.deepEqual(JSON.parse(child.stdout.trim().split("\n").at(-1)!), {
    results: ["fulfilled", "fulfilled", "fulfilled"],
    uncaught: ["destroy", "regenerate", "save"],
    unhandled: [],
  });
});

test(
  "an error thrown by a callback (save, regenerate, destroy) is an uncaught exception, never a rejection",
  {
    // `bun test` fails the running test on any uncaught error, whatever the process's listeners; a Bun process
    // outside it hands such an error to its "uncaughtException" listeners as Node and Deno do.
    skip: "Bun" in globalThis
      ? "not applicable: bun test fails a test on any uncaught error, listeners or not"
      : false,
  },
  async () => {
    // As with express-session, whose callbacks run from the store's own: the app's error is not swallowed,
    // and the promise an app that only passes a callback ignores never rejects.
    const { default: process } = await import("node:process");
    const uncaught: unknown[] = [];
    const unhandled: unknown[] = [];
    const onUncaught = (error: unknown) => uncaught.push(error);
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    // Node's test runner listens too, and counts any uncaught exception as the file's failure: its listeners
    // are set aside while this test expects three.
    const runnerListeners = process.listeners("uncaughtException");
    process.removeAllListeners("uncaughtException");
    process.on("uncaughtException", onUncaught);
    process.on("unhandledRejection", onUnhandled);
    try {
      const session = await fresh();
      session.set("a", 1);
      const errors = ["save", "regenerate", "destroy"].map((name) =>
        new Error(`thrown by the ${name} callback`)
      );
      const results = await Promise.allSettled([
        session.save(() => {
          throw errors[0];
        }),
        session.regenerate(() => {
          throw errors[1];
        }),
      ]);
      results.push(
        ...await Promise.allSettled([session.destroy(() => {
          throw errors[2];
        })]),
      );
      assert.deepEqual(results.map((r) => r.status), ["fulfilled", "fulfilled", "fulfilled"]);
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.deepEqual(unhandled, []);
      assert.equal(uncaught.length, 3);
      assert.deepEqual(new Set(uncaught), new Set(errors));
    } finally {
      process.off("uncaughtException", onUncaught);
      process.off("unhandledRejection", onUnhandled);
      for (const listener of runnerListeners) process.on("uncaughtException", listener);
    }
  },
);
