import { test } from "node:test";
import assert from "node:assert/strict";
import { inspect } from "node:util";
import { SessionManager } from "./core.ts";
import type { SecurityEvent, SessionOptions } from "./core.ts";
import { CorruptRecordError, SessionConflictError, SessionStoreError, StoreContractError } from "./errors.ts";
import { storageKey } from "./_crypto.ts";
import { MemoryStore } from "./stores/memory.ts";
import { FaultyStore } from "./testing/faulty_store.ts";
import type { SessionRecord, Store } from "./store.ts";

const SECRET = "core-test-secret-0123456789abcdefghij";

function setup(options: SessionOptions = {}) {
  const clock = { now: 1_700_000_000_000 };
  const memory = new MemoryStore({ now: () => clock.now });
  const store = new FaultyStore(memory);
  const sessionOptions: SessionOptions = { store, secret: SECRET, now: () => clock.now, ...options };
  if (sessionOptions.secret === undefined) delete sessionOptions.secret; // setup({ secret: undefined }): unsigned
  const manager = new SessionManager(sessionOptions);
  return { clock, memory, store, manager };
}

const cookieOf = (setCookie: string | undefined) => setCookie!.split(";")[0];
const http = (cookie?: string) => ({ cookie, https: false });

test("the longest storeTimeout accepted really waits: a store answering after 30 ms is not timed out", async () => {
  const slow: Store = {
    get: (key) => new Promise((resolve) => setTimeout(() => resolve(memory.get(key)), 30)),
    set: (key, write) => new Promise((resolve) => setTimeout(() => resolve(memory.set(key, write)), 30)),
    delete: (key) => new Promise((resolve) => setTimeout(() => resolve(memory.delete(key)), 30)),
  };
  const memory = new MemoryStore();
  const manager = new SessionManager({ store: slow, secret: SECRET, storeTimeout: 2_147_483 });
  const session = await manager.load(http());
  session.set("user", "ada");
  const cookie = cookieOf(await manager.commit(session));
  assert.equal((await manager.load(http(cookie))).get("user"), "ada");
});

test("construction errors name the option", () => {
  const cases: [SessionOptions, RegExp][] = [
    [{ secret: "" }, /"secret"/],
    [{ secret: undefined }, /"secret": is undefined/],
    [{ secret: [] }, /"secret"/],
    [{ secret: "too short" }, /"secret": each secret must be at least 32 bytes/],
    [{ secret: [SECRET, "short"] }, /"secret"/],
    [{ secret: 42 as unknown as string }, /"secret"/],
    [
      { secret: [undefined, SECRET] },
      /"secret": its first entry is undefined \(an unset environment variable\?\)/,
    ],
    [{ secret: [undefined] }, /"secret": its first entry is undefined/],
    [{ idleTimeout: -1 }, /"idleTimeout"/],
    [{ absoluteTimeout: Number.NaN }, /"absoluteTimeout"/],
    [{ storeTimeout: 0 }, /"storeTimeout"/],
    // A timer's delay is a signed 32-bit number of milliseconds; a longer one fires after about 1 ms.
    [{ storeTimeout: Infinity }, /"storeTimeout": .*at most 2147483/],
    [{ storeTimeout: 2_147_484 }, /"storeTimeout": .*at most 2147483/],
    [{ store: {} as Store }, /"store"/],
    [{ cookie: { name: "__Host-sid", domain: "example.com" } }, /"cookie.domain"/],
    [{ cookie: { name: "__Host-sid", path: "/app" } }, /"cookie.path"/],
    [{ cookie: { name: "__Secure-sid", secure: false } }, /"cookie.secure"/],
    // Browsers match the prefixes in any case (RFC 6265bis, section 4.1.3).
    [{ cookie: { name: "__host-sid", domain: "example.com" } }, /"cookie.domain"/],
    [{ cookie: { name: "__HOST-sid", path: "/app" } }, /"cookie.path"/],
    [{ cookie: { name: "__secure-sid", secure: false } }, /"cookie.secure"/],
    [{ cookie: { sameSite: "None" } }, /"cookie.sameSite"/],
    [{ cookie: { sameSite: "Sideways" as "Lax" } }, /"cookie.sameSite"/],
    [{ cookie: { name: "sid;x" } }, /"cookie.name"/],
    [{ cookie: { name: "s\0id" } }, /"cookie.name"/],
    [{ cookie: { path: "/a;b" } }, /"cookie.path"/],
    [{ cookie: { path: "/a\r\nSet-Cookie: x=1" } }, /"cookie.path"/],
    [{ cookie: { domain: "example.com\n" } }, /"cookie.domain"/],
    [{ cookie: { domain: "exa mple.com" } }, /"cookie.domain"/],
    [{ cookie: { partitioned: true } }, /"cookie.partitioned"/],
  ];
  for (const [options, message] of cases) {
    assert.throws(
      () => new SessionManager({ store: new MemoryStore(), ...options }),
      message,
      JSON.stringify(options),
    );
  }
  assert.doesNotThrow(() =>
    new SessionManager({ cookie: { sameSite: "None", secure: true }, secret: SECRET })
  );
  assert.doesNotThrow(() => new SessionManager({ cookie: { name: "__Host-sid" }, secret: SECRET }));
});

test("a prefixed cookie name in any case is Secure even over http, as browsers require", async () => {
  for (const name of ["__Host-sid", "__host-sid", "__HOST-sid", "__Secure-sid", "__secure-sid"]) {
    const manager = new SessionManager({ store: new MemoryStore(), cookie: { name }, secret: SECRET });
    const session = await manager.load(http());
    session.set("user", "ada");
    assert.match((await manager.commit(session))!, /; Secure; SameSite=Lax$/, name);
  }
});

test("unknown option names are refused with the nearest known name, or a hint for names from other libraries", () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ idleTimout: 60 }, /Unknown session option "idleTimout": did you mean "idleTimeout"\?/],
    [{ secrets: "x" }, /did you mean "secret"\?/],
    [
      { cookie: { maxAge: 1000 } },
      /Unknown session option "cookie.maxAge": the cookie lives as long as the session/,
    ],
    [{ cookie: { samesite: "Lax" } }, /did you mean "cookie.sameSite"\?/],
    [{ maxAge: 1000 }, /"maxAge": the session lifetime is "idleTimeout"/],
    [{ key: "koa.sess" }, /"key": the cookie name is "cookie.name"/],
    [{ zzzzzz: 1 }, /known options are store, secret, cookie/],
  ];
  for (const [options, message] of cases) {
    assert.throws(() => new SessionManager(options as SessionOptions), message);
  }
});

test("setLifetime: a session's own lifetime is kept across requests and honoured past the configured timeouts", async () => {
  let now = Date.UTC(2026, 0, 1);
  const clock = () => now;
  const store = new MemoryStore({ now: clock });
  const manager = new SessionManager({
    store,
    secret: SECRET,
    now: clock,
    idleTimeout: 3600,
    absoluteTimeout: 86400,
  });
  const first = await manager.load({ cookie: null, https: false });
  first.set("user", "ada").setLifetime(10 * 86400);
  assert.equal(first.lifetime, 10 * 86400);
  const setCookie = (await manager.commit(first))!;
  assert.match(setCookie, /Max-Age=864000/);
  const cookie = setCookie.split(";")[0];
  now += 5 * 86400_000; // past the one-hour idle and one-day absolute timeouts
  const later = await manager.load({ cookie, https: false });
  assert.equal(later.get("user"), "ada");
  assert.equal(later.lifetime, 10 * 86400, "the lifetime came back from the store");
  await later.regenerate();
  const regenerated = (await manager.commit(later))!;
  assert.match(regenerated, /Max-Age=864000/, "regenerate keeps the lifetime");
  now += 11 * 86400_000; // 11 days after the regenerate (a new record): past its own 10-day deadline
  assert.equal((await manager.load({ cookie: regenerated.split(";")[0], https: false })).isNew, true);

  const browser = await manager.load({ cookie: null, https: false });
  browser.set("user", "eve").setLifetime(null);
  const session = (await manager.commit(browser))!;
  assert.doesNotMatch(session, /Max-Age/);
  now += 1800_000;
  const touched = await manager.load({ cookie: session.split(";")[0], https: false });
  touched.touch();
  assert.doesNotMatch((await manager.commit(touched))!, /Max-Age/, "still a browser-session cookie");
  assert.throws(() => browser.setLifetime(0), /positive number of seconds, or null/);
  assert.throws(() => browser.setLifetime(Number.NaN), /positive number of seconds, or null/);
});

test("cookie.persistent: false sends browser-session cookies unless a session chose a lifetime", async () => {
  const manager = new SessionManager({ secret: SECRET, cookie: { persistent: false } });
  const plain = await manager.load({ cookie: null, https: false });
  plain.set("a", 1);
  assert.doesNotMatch((await manager.commit(plain))!, /Max-Age/);
  const remembered = await manager.load({ cookie: null, https: false });
  remembered.set("a", 1).setLifetime(60);
  assert.match((await manager.commit(remembered))!, /Max-Age=60/);
});

test("a secret list's unset entries after the first (an old secret not set) are left out", async () => {
  const store = new MemoryStore();
  const unsetOld = new SessionManager({ store, secret: [SECRET, undefined] });
  const plain = new SessionManager({ store, secret: SECRET });
  assert.equal(unsetOld.signed, true);
  // The first secret signs: a cookie of either manager opens in the other.
  for (const [writer, reader] of [[unsetOld, plain], [plain, unsetOld]]) {
    const session = await writer.load({ cookie: null, https: false });
    session.set("a", 1);
    const cookie = (await writer.commit(session))!.split(";")[0];
    const reopened = await reader.load({ cookie, https: false });
    assert.equal(reopened.isNew, false);
    assert.equal(reopened.get("a"), 1);
  }
});

test("construction errors never contain the secret", () => {
  const secret = "short-but-very-recognisable";
  assert.throws(() => new SessionManager({ secret }), (error: Error) => !error.message.includes(secret));
});

test("ids are 32 base64url characters (192 bits), signed as id.signature", async () => {
  const { manager } = setup();
  const ids = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const session = await manager.load(http());
    session.set("n", i);
    const value = cookieOf(await manager.commit(session)).slice("sid=".length);
    const [id, signature] = value.split(".");
    assert.match(id, /^[A-Za-z0-9_-]{32}$/);
    assert.match(signature, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(id, session.id);
    ids.add(id);
  }
  assert.equal(ids.size, 200);
});

test("unsigned mode (the original module's default) still checks format and store", async () => {
  const { manager, store } = setup({ secret: undefined });
  const session = await manager.load(http());
  session.set("a", 1);
  const cookie = cookieOf(await manager.commit(session));
  assert.match(cookie, /^sid=[A-Za-z0-9_-]{32}$/);
  assert.equal((await manager.load(http(cookie))).get("a"), 1);
  store.resetCalls();
  for (const bad of ["' OR '1'='1", "../x", "a/b", "*", "%2F", "a\0b", "é".repeat(32), "short"]) {
    assert.equal((await manager.load(http(`sid=${bad}`))).isNew, true);
  }
  assert.equal(store.calls.get, 0, "malformed ids never reach the store");
});

test("a validly signed id the store does not know is not adopted", async () => {
  const { manager, memory } = setup();
  const first = await manager.load(http());
  first.set("a", 1);
  const cookie = cookieOf(await manager.commit(first));
  await memory.clear();
  const again = await manager.load(http(cookie));
  assert.equal(again.isNew, true);
  assert.equal(await manager.commit(again), undefined, "no write, no cookie");
  assert.equal(memory.size, 0);
  again.set("b", 2);
  const fresh = cookieOf(await manager.commit(again));
  assert.notEqual(fresh.split(".")[0], cookie.split(".")[0], "a fresh id when the handler writes");
});

test("expiry is decided from stored metadata, even if the store still returns the record", async () => {
  const { clock, manager, memory } = setup({ idleTimeout: 60, absoluteTimeout: 3600 });
  const session = await manager.load(http());
  session.set("a", 1);
  const cookie = cookieOf(await manager.commit(session));
  const record = (await memory.get(storageKey(session.id)))!;
  // A store that never evicts anything.
  const lazy: Store = {
    get: () => Promise.resolve(structuredClone(record)),
    set: () => Promise.resolve("written"),
    delete: () => Promise.resolve(),
  };
  const deleted: string[] = [];
  lazy.delete = (key) => (deleted.push(key), Promise.resolve());
  const lazyManager = new SessionManager({
    store: lazy,
    secret: SECRET,
    now: () => clock.now,
    idleTimeout: 60,
  });
  clock.now += 61_000;
  assert.equal((await lazyManager.load(http(cookie))).isNew, true);
  assert.deepEqual(deleted, [storageKey(session.id)], "the expired record is deleted");
});

test("a shorter absoluteTimeout takes effect on sessions created before the change", async () => {
  const { clock, store, manager } = setup({ idleTimeout: null, absoluteTimeout: 3600 });
  const session = await manager.load(http());
  session.set("a", 1);
  const cookie = cookieOf(await manager.commit(session));
  clock.now += 120_000;
  const stricter = new SessionManager({ store, secret: SECRET, now: () => clock.now, absoluteTimeout: 60 });
  assert.equal((await stricter.load(http(cookie))).isNew, true);
});

test("a read answered outside the contract is a StoreContractError (500), not an empty session", async () => {
  for (
    const answer of [
      [],
      "text",
      42,
      { data: [] },
      { data: {}, meta: {} },
      { data: {}, meta: { createdAt: 1, expiresAt: Number.NaN, absoluteExpiresAt: 2 } },
      { data: {}, meta: { createdAt: 1, expiresAt: -5, absoluteExpiresAt: 2 } },
      { data: {}, meta: { createdAt: 1, absoluteExpiresAt: 2 } },
    ]
  ) {
    for (const sync of [true, false]) {
      const store: Store = {
        get: () => (sync ? answer : Promise.resolve(answer)) as SessionRecord,
        set: () => "written",
        delete: () => {},
      };
      const manager = new SessionManager({ store });
      await assert.rejects(manager.load(http(`sid=${"A".repeat(32)}`)), (error: unknown) => {
        assert.ok(error instanceof StoreContractError, JSON.stringify(answer));
        assert.equal(error.status, 500);
        assert.equal(error.operation, "read");
        assert.ok(!error.message.includes("A".repeat(32)));
        return true;
      });
    }
  }
});

test("a record the store cannot parse (CorruptRecordError) gives a fresh session, is deleted and reported by key", async () => {
  for (const sync of [true, false]) {
    const events: SecurityEvent[] = [];
    const deleted: string[] = [];
    const store: Store = {
      get: () => {
        const error = new CorruptRecordError("meta is not JSON");
        if (sync) throw error;
        return Promise.reject(error);
      },
      set: () => "written",
      delete: (key) => void deleted.push(key),
    };
    const manager = new SessionManager({ store, onSecurityEvent: (event) => events.push(event) });
    const id = "A".repeat(32);
    const session = await manager.load(http(`sid=${id}`));
    assert.equal(session.isNew, true);
    assert.deepEqual(deleted, [storageKey(id)]);
    assert.deepEqual(events, [{ type: "corrupt-record", idHash: storageKey(id) }]);
  }
});

test("a store answering null reads as an unknown session", async () => {
  const events: SecurityEvent[] = [];
  const store: Store = {
    get: () => null as unknown as undefined,
    set: () => "written",
    delete: () => {},
  };
  const manager = new SessionManager({ store, onSecurityEvent: (event) => events.push(event) });
  assert.equal((await manager.load(http(`sid=${"A".repeat(32)}`))).isNew, true);
  assert.deepEqual(events.map((e) => e.type), ["unknown-session"]);
});

test("security events carry the storage key, the same in every process, never the id", async () => {
  const eventsA: SecurityEvent[] = [];
  const eventsB: SecurityEvent[] = [];
  const id = "B".repeat(32);
  // Two managers (as two processes would) see an unknown session: both log the same value.
  const a = new SessionManager({ onSecurityEvent: (event) => eventsA.push(event) });
  const b = new SessionManager({ onSecurityEvent: (event) => eventsB.push(event) });
  await a.load(http(`sid=${id}`));
  await b.load(http(`sid=${id}`));
  assert.equal(eventsA[0].idHash, storageKey(id));
  assert.deepEqual(eventsA, eventsB);
  assert.match(eventsA[0].idHash!, /^s1_[A-Za-z0-9_-]{43}$/);
  assert.ok(!JSON.stringify(eventsA).includes(id));
});

test("write answers outside the contract are StoreContractErrors; an update answered gone is a conflict", async () => {
  const seedStore = new MemoryStore();
  const seeding = new SessionManager({ store: seedStore, secret: SECRET });
  const seed = await seeding.load(http());
  seed.set("a", 1);
  const cookie = cookieOf(await seeding.commit(seed));
  for (
    const [answer, kind, expected] of [
      ["gone", "create", StoreContractError],
      [null, "create", StoreContractError],
      [seed.id, "create", StoreContractError],
      [42, "update", StoreContractError],
      [undefined, "update", StoreContractError],
      ["gone", "update", SessionConflictError],
    ] as const
  ) {
    const store: Store = {
      get: (key) => seedStore.get(key),
      set: () => Promise.resolve(answer as unknown as "written"),
      delete: () => {},
    };
    const manager = new SessionManager({ store, secret: SECRET });
    const session = await manager.load(http(kind === "update" ? cookie : undefined));
    session.set("b", 2);
    await assert.rejects(manager.commit(session), (error: unknown) => {
      assert.ok(error instanceof expected, `${kind} answered ${String(answer)}`);
      assert.equal((error as { status: number }).status, expected === StoreContractError ? 500 : 409);
      assert.ok(!(error as Error).message.includes(seed.id), "no id in the message");
      return true;
    });
  }
});

test("a failed request saves nothing and sends no cookie: the handler threw, or the status is 5xx", async () => {
  const { manager, memory, store } = setup();
  const seed = await manager.load(http());
  seed.set("n", 1);
  const cookie = cookieOf(await manager.commit(seed, { status: 200 }));
  for (const response of [{ threw: true }, { status: 500 }, { status: 503 }, { threw: true, status: 200 }]) {
    store.resetCalls();
    const fresh = await manager.load(http());
    fresh.set("n", 1);
    assert.equal(await manager.commit(fresh, response), undefined, JSON.stringify(response));
    const loaded = await manager.load(http(cookie));
    loaded.set("n", 2);
    assert.equal(await manager.commit(loaded, response), undefined, JSON.stringify(response));
    assert.equal(store.calls.set, 0, `${JSON.stringify(response)}: nothing written`);
  }
  assert.equal(memory.size, 1);
  assert.equal((await manager.load(http(cookie))).get("n"), 1);
  // Client errors are not failures: a 404 or 400 page after a login still saves.
  for (const status of [400, 404, 302, 200]) {
    const loaded = await manager.load(http(cookie));
    loaded.set("status", status);
    await manager.commit(loaded, { status, threw: false });
    assert.equal((await manager.load(http(cookie))).get("status"), status);
  }
});

test("reserved keys in stored data are dropped, never reach prototypes, and are reported", async () => {
  const events: SecurityEvent[] = [];
  const stored = JSON.parse(
    '{"data":{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},"ok":1},' +
      `"meta":{"createdAt":${Date.now()},"expiresAt":9e15,"absoluteExpiresAt":9e15}}`,
  );
  const store: Store = {
    get: () => Promise.resolve(stored),
    set: () => Promise.resolve("written"),
    delete: () => Promise.resolve(),
  };
  const manager = new SessionManager({ store, onSecurityEvent: (e) => events.push(e) });
  const session = await manager.load(http(`sid=${"B".repeat(32)}`));
  assert.deepEqual(session.keys(), ["ok"]);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(events.some((e) => e.type === "forbidden-key"));
});

test("library metadata is apart from user keys", async () => {
  const { clock, manager } = setup({ idleTimeout: 60 });
  const session = await manager.load(http());
  session.set("_expire", 0).set("meta", { expiresAt: 9e15 }).set("createdAt", 0);
  const cookie = cookieOf(await manager.commit(session));
  clock.now += 61_000;
  assert.equal((await manager.load(http(cookie))).isNew, true, "user keys do not extend the session");
});

test("no lost update: load A, load B, A commits, B commits keeps both writes", async () => {
  const { manager, memory } = setup();
  const first = await manager.load(http());
  first.set("start", 0);
  const cookie = cookieOf(await manager.commit(first));
  const a = await manager.load(http(cookie));
  const b = await manager.load(http(cookie));
  a.set("a", 1);
  b.set("b", 2);
  b.delete("start");
  await manager.commit(a);
  await manager.commit(b);
  assert.deepEqual((await memory.get(storageKey(first.id)))?.data, { a: 1, b: 2 });
});

test("no resurrection: a commit after an overlapping destroy fails with a conflict", async () => {
  const { manager, memory } = setup();
  const first = await manager.load(http());
  first.set("user", "ada");
  const cookie = cookieOf(await manager.commit(first));
  const slow = await manager.load(http(cookie));
  const logout = await manager.load(http(cookie));
  await logout.destroy();
  assert.match((await manager.commit(logout))!, /^sid=; Max-Age=0/);
  slow.set("cart", [1]);
  await assert.rejects(manager.commit(slow), SessionConflictError);
  assert.equal(memory.size, 0);
});

test("a hanging store call times out with a SessionStoreError", async () => {
  const hanging: Store = {
    get: () => new Promise(() => {}),
    set: () => new Promise(() => {}),
    delete: () => new Promise(() => {}),
  };
  const manager = new SessionManager({ store: hanging, secret: SECRET, storeTimeout: 0.05 });
  const started = Date.now();
  const session = await manager.load(http());
  session.set("a", 1);
  await assert.rejects(manager.commit(session), (error: Error) => {
    assert.ok(error instanceof SessionStoreError);
    assert.match(
      error.message,
      /^Cannot write session to store: no answer within 0.05 s \(the write.s outcome is unknown/,
    );
    return true;
  });
  assert.ok(Date.now() - started < 1000);
});

test("store errors are wrapped, keep their cause, and never mention the id", async () => {
  const { manager, store } = setup();
  const first = await manager.load(http());
  first.set("a", 1);
  const cookie = cookieOf(await manager.commit(first));
  const cause = new Error("connection refused");
  store.failNext("get", cause);
  await assert.rejects(manager.load(http(cookie)), (error: SessionStoreError) => {
    assert.equal(error.message, "Cannot read session from store: connection refused");
    assert.equal(error.cause, cause);
    assert.equal(error.operation, "read");
    assert.ok(!error.message.includes(first.id));
    return true;
  });
});

test("with both timeouts off the session never expires and the cookie lives 400 days", async () => {
  const { clock, manager } = setup({ idleTimeout: null, absoluteTimeout: null });
  const session = await manager.load(http());
  session.set("a", 1);
  const setCookie = (await manager.commit(session))!;
  assert.match(setCookie, /Max-Age=34560000;/);
  clock.now += 10 * 365 * 86_400_000;
  assert.equal((await manager.load(http(cookieOf(setCookie)))).get("a"), 1);
});

test("the cookie's Max-Age never outlives the absolute deadline", async () => {
  const { clock, manager } = setup({ idleTimeout: 3600, absoluteTimeout: 5400 });
  const session = await manager.load(http());
  session.set("a", 1);
  const cookie = cookieOf(await manager.commit(session));
  clock.now += 3000_000;
  const later = await manager.load(http(cookie));
  later.set("b", 2);
  assert.match((await manager.commit(later))!, /Max-Age=2400;/);
});

test("a session's id stays out of JSON.stringify and inspect", async () => {
  const { manager } = setup();
  const session = await manager.load(http());
  session.set("user", "ada");
  const id = session.id;
  assert.equal(JSON.stringify(session), '{"user":"ada"}');
  assert.ok(!inspect(session).includes(id));
  assert.ok(!inspect(session, { showHidden: true }).includes(id));
});

test("https requests get Secure cookies; trustProxy reads only the first X-Forwarded-Proto", async () => {
  const { manager } = setup();
  const secure = await manager.load({ cookie: null, https: true });
  secure.set("a", 1);
  assert.match((await manager.commit(secure))!, /; HttpOnly; Secure; SameSite=Lax$/);
  const proxied = setup({ trustProxy: true }).manager;
  const viaProxy = await proxied.load({ cookie: null, https: false, forwardedProto: "https, http" });
  viaProxy.set("a", 1);
  assert.match((await proxied.commit(viaProxy))!, /; Secure;/);
});

test("flash values are not visible to the request that sets them", async () => {
  const { manager } = setup();
  const session = await manager.load(http());
  session.flash("notice", "saved");
  assert.equal(session.get("notice"), undefined);
  const cookie = cookieOf(await manager.commit(session));
  const next = await manager.load(http(cookie));
  assert.equal(next.get("notice"), "saved");
  assert.equal(next.has("notice"), true);
  await manager.commit(next);
  assert.equal((await manager.load(http(cookie))).get("notice"), undefined);
});

test("a session that is set then emptied in one request stores nothing", async () => {
  const { manager, memory } = setup();
  const session = await manager.load(http());
  session.set("a", 1);
  session.delete("a");
  assert.equal(await manager.commit(session), undefined);
  assert.equal(memory.size, 0);
});

test("a store that answers synchronously costs no await inside the core; one that answers with promises is awaited", async () => {
  const memory = new MemoryStore();
  const manager = new SessionManager({ store: memory, secret: SECRET });
  // Settled within one microtask: the public call is a promise of a value the core had at once.
  const within = async <R>(pending: Promise<R>, ticks: number) => {
    let done = false;
    pending.then(() => (done = true));
    for (let i = 0; i < ticks; i++) await null;
    return done;
  };
  const fresh = manager.load(http());
  assert.ok(await within(fresh, 1), "a fresh session");
  const session = await fresh;
  session.set("n", 1);
  const committing = manager.commit(session);
  assert.ok(await within(committing, 1), "a create");
  const cookie = cookieOf(await committing);
  const loading = manager.load(http(cookie));
  assert.ok(await within(loading, 1), "a read");
  assert.equal((await loading).get("n"), 1);

  const slow = new FaultyStore(memory);
  const release = slow.hold("get");
  const awaiting = new SessionManager({ store: slow, secret: SECRET }).load(http(cookie));
  assert.equal(await within(awaiting, 5), false, "a pending read keeps the load pending");
  release();
  assert.equal((await awaiting).get("n"), 1);
});

test("a store that throws synchronously fails with a SessionStoreError, never a crash or an empty session", async () => {
  const failing: Store = {
    get() {
      throw new Error("disk I/O error");
    },
    set() {
      throw new Error("database is locked");
    },
    delete() {
      throw new Error("database is locked");
    },
  };
  const manager = new SessionManager({ store: failing, secret: SECRET });
  const seeding = new SessionManager({ secret: SECRET });
  const seed = await seeding.load(http());
  seed.set("a", 1);
  const signed = cookieOf(await seeding.commit(seed));
  await assert.rejects(manager.load(http(signed)), (error: unknown) => {
    assert.ok(error instanceof SessionStoreError);
    assert.equal(error.operation, "read");
    assert.match(String((error.cause as Error).message), /disk I\/O error/);
    return true;
  });
  const session = await manager.load(http());
  session.set("a", 1);
  await assert.rejects(manager.commit(session), (error: unknown) => error instanceof SessionStoreError);
});

test("the kind of cookie (signed id or sealed record) is chosen once: requests never look at the store's kind", async () => {
  const { SEALING } = await import("./_seal.ts");
  const { CookieStore } = await import("./stores/cookie.ts");
  for (const inner of [new MemoryStore(), new CookieStore({ keys: [SECRET] })]) {
    const reads: PropertyKey[] = [];
    const store = new Proxy(inner, {
      get(target, property) {
        reads.push(property);
        const value = Reflect.get(target, property, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const sealed = inner instanceof CookieStore;
    const manager = new SessionManager({ store, ...(sealed ? {} : { secret: SECRET }) });
    assert.equal(reads.filter((property) => property === SEALING).length, 1, "looked at once, when built");
    reads.length = 0;
    for (let i = 0; i < 5; i++) {
      const session = await manager.load(http());
      session.set("n", i);
      const cookie = cookieOf(await manager.commit(session));
      const next = await manager.load(http(cookie));
      assert.equal(next.get("n"), i);
      next.set("n", i + 1);
      await manager.commit(next);
    }
    assert.equal(reads.includes(SEALING), false, "no request asks");
    assert.deepEqual(
      [...new Set(reads)].sort(),
      sealed ? [] : ["get", "set"],
      sealed ? "a CookieStore is never called" : "a store of records is called for its records only",
    );
  }
});

test("a write's deadline is by the real clock, whatever clock the app injected", async () => {
  const memory = new MemoryStore({ now: () => 1_000_000 });
  const deadlines: (number | undefined)[] = [];
  const recording: Store = {
    get: (key) => memory.get(key),
    set: (key, write) => {
      deadlines.push(write.deadline);
      return memory.set(key, write);
    },
    delete: (key) => memory.delete(key),
  };
  for (const now of [() => 1_000_000, () => Date.now() + 3_600_000, undefined]) {
    deadlines.length = 0;
    const manager = new SessionManager({ store: recording, secret: SECRET, storeTimeout: 2, now });
    const before = Date.now();
    const session = await manager.load(http());
    session.set("n", 1);
    const cookie = cookieOf(await manager.commit(session)); // a create
    const again = await manager.load(http(cookie));
    again.set("n", 2);
    await manager.commit(again); // an update
    const after = Date.now();
    assert.equal(deadlines.length, 2);
    for (const deadline of deadlines) {
      assert.ok(
        deadline !== undefined && deadline >= before + 2_000 && deadline <= after + 2_000,
        `deadline ${deadline === undefined ? "missing" : deadline - before} ms ahead (clock ${
          now?.() ?? "default"
        })`,
      );
    }
  }
});

test("every write carries the core's deadline, and a timed-out write's error says whether it may still land", async () => {
  const memory = new MemoryStore();
  const deadlines: (number | undefined)[] = [];
  /** Holds every write for 300 ms, then applies it: a backend answering too late. */
  const late = (refusesLateWrites: boolean): Store => ({
    refusesLateWrites,
    get: (key) => memory.get(key),
    set: async (key, write) => {
      deadlines.push(write.deadline);
      await new Promise((resolve) => setTimeout(resolve, 300));
      return memory.set(key, write);
    },
    delete: (key) => memory.delete(key),
  });
  for (
    const [refuses, outcome] of [
      [true, /\(the store refuses the write once this deadline has passed: it is not applied later\)$/],
      [false, /\(the write's outcome is unknown: the store may still apply it later\)$/],
    ] as const
  ) {
    const manager = new SessionManager({ store: late(refuses), secret: SECRET, storeTimeout: 0.05 });
    const session = await manager.load(http());
    session.set("n", 1);
    const before = Date.now();
    await assert.rejects(manager.commit(session), (error: unknown) => {
      assert.ok(error instanceof SessionStoreError);
      assert.equal(error.operation, "write");
      assert.match(error.message, /^Cannot write session to store: no answer within 0\.05 s /);
      assert.match(error.message, outcome);
      return true;
    });
    const deadline = deadlines.at(-1)!;
    assert.ok(
      deadline >= before + 50 && deadline <= Date.now() + 50,
      `deadline ${deadline - before} ms ahead`,
    );
  }
  // A read that times out says nothing about writes.
  const holding = new FaultyStore(memory);
  const manager = new SessionManager({ store: holding, secret: SECRET, storeTimeout: 0.05 });
  const seed = await manager.load(http());
  seed.set("n", 1);
  const cookie = cookieOf(await manager.commit(seed));
  const release = holding.hold("get");
  await assert.rejects(manager.load(http(cookie)), {
    name: "SessionStoreError",
    message: "Cannot read session from store: no answer within 0.05 s",
  });
  release();
});

test("the core hands its time to the store: every read and write carries the app's clock", async () => {
  const clock = { now: 1_700_000_000_000 };
  const memory = new MemoryStore();
  const reads: (number | undefined)[] = [];
  const writes: (number | undefined)[] = [];
  const lists: (number | undefined)[] = [];
  const recording: Store = {
    get: (key, now) => {
      reads.push(now);
      return memory.get(key, now);
    },
    set: (key, write) => {
      writes.push(write.now);
      return memory.set(key, write);
    },
    delete: (key) => memory.delete(key),
    listByUser: (userId, now) => {
      lists.push(now);
      return memory.listByUser(userId, now);
    },
  };
  const manager = new SessionManager({ store: recording, secret: SECRET, now: () => clock.now });
  const session = await manager.load(http());
  await session.logIn("ada");
  session.set("n", 1);
  const cookie = cookieOf(await manager.commit(session)); // a create
  clock.now += 1_000;
  const again = await manager.load(http(cookie));
  again.set("n", 2);
  await manager.commit(again); // an update
  clock.now += 1_000;
  assert.equal((await manager.sessionsOfUser("ada")).length, 1);
  assert.deepEqual(writes, [1_700_000_000_000, 1_700_000_001_000]);
  assert.deepEqual(reads, [1_700_000_001_000]);
  assert.deepEqual(lists, [1_700_000_002_000]);
});

test("a store with no clock of its own judges expiry on the app's clock, not the real one", async () => {
  // The app's clock is two days behind: by the real clock every deadline it sets has passed (idle timeout one
  // day). The store used to judge them by the real clock and lost every session at once.
  const clock = { now: Date.now() - 2 * 86_400_000 };
  for (const store of [new MemoryStore(), undefined]) {
    const manager = new SessionManager({ store, secret: SECRET, now: () => clock.now, idleTimeout: 86_400 });
    const session = await manager.load(http());
    session.set("user", "ada");
    const cookie = cookieOf(await manager.commit(session));
    const again = await manager.load(http(cookie));
    assert.equal(again.get("user"), "ada", store ? "an explicit MemoryStore" : "the default store");
    again.set("visits", 1);
    await manager.commit(again); // an update: the store finds the record live at the app's time
    clock.now += 86_400_000 + 1; // past the idle deadline by the app's clock
    const expired = await manager.load(http(cookie));
    assert.equal(expired.get("user"), undefined);
  }
});

test("a store's own clock still wins over the time the core hands it", async () => {
  const storeClock = { now: 1_700_000_000_000 };
  const memory = new MemoryStore({ now: () => storeClock.now });
  const manager = new SessionManager({ store: memory, secret: SECRET, now: () => 1_700_000_000_000 });
  const session = await manager.load(http());
  session.set("user", "ada");
  const cookie = cookieOf(await manager.commit(session));
  storeClock.now += 2 * 86_400_000; // the store's clock says the session expired; the core's does not
  const again = await manager.load(http(cookie));
  assert.equal(again.get("user"), undefined, "the store judged it expired by its own clock");
});

test("an update's write.set inherits no key, whatever the session set", async () => {
  const sets: Record<string, unknown>[] = [];
  const memory = new MemoryStore();
  const recording: Store = {
    get: (key, now) => memory.get(key, now),
    set: (key, write) => {
      if (write.kind === "update") sets.push(write.set);
      return memory.set(key, write);
    },
    delete: (key) => memory.delete(key),
  };
  const manager = new SessionManager({ store: recording, secret: SECRET });
  const session = await manager.load(http());
  session.set("a", 1);
  const cookie = cookieOf(await manager.commit(session));
  const again = await manager.load(http(cookie));
  again.set("toString", "t");
  again.set("valueOf", "v");
  await manager.commit(again);
  const third = await manager.load(http(cookie));
  third.set("b", 2);
  await manager.commit(third);
  assert.equal(sets.length, 2);
  assert.deepEqual(Object.keys(sets[0]).sort(), ["toString", "valueOf"]);
  assert.deepEqual(Object.keys(sets[1]), ["b"]);
  for (const name of ["hasOwnProperty", "toString", "constructor", "__proto__", "a"]) {
    assert.equal(name in sets[1], false, `${name} is not inherited`);
  }
  let inherited = 0;
  for (const _ in sets[1]) inherited++;
  assert.equal(inherited, 1, "for…in sees the request's key only");
  for (let proto = Object.getPrototypeOf(sets[1]); proto !== null; proto = Object.getPrototypeOf(proto)) {
    assert.deepEqual(Reflect.ownKeys(proto), [], "every prototype in the chain is empty");
  }
  const last = await manager.load(http(cookie));
  assert.deepEqual([last.get("toString"), last.get("valueOf"), last.get("b")], ["t", "v", 2]);
});
