// Users and their sessions (issue 15), in the core: what the shared store suite's per-user index group does
// not reach — validation, the capability switches, id grouping, lastSeenAt, the store contract of listByUser.
import { test } from "node:test";
import assert from "node:assert/strict";
import { SessionManager } from "./core.ts";
import type { SessionOptions } from "./core.ts";
import { SessionConflictError, SessionLimitError, SessionStoreError, StoreContractError } from "./errors.ts";
import { generateId, generateIdInGroup, sessionHandle, storageKey, userKey } from "./_crypto.ts";
import { MemoryStore } from "./stores/memory.ts";
import { CookieStore } from "./stores/cookie.ts";
import { FaultyStore } from "./testing/faulty_store.ts";
import type { Store } from "./store.ts";

const SECRET = "users-test-secret-0123456789abcdefghij";
const MINUTE = 60_000;

function setup(options: SessionOptions = {}, wrap: (memory: MemoryStore) => Store = (memory) => memory) {
  const clock = { now: 1_700_000_000_000 };
  const memory = new MemoryStore({ now: () => clock.now });
  const store = wrap(memory);
  const manager = new SessionManager({ store, secret: SECRET, now: () => clock.now, ...options });
  /** One request: load with `cookie`, run `body`, commit; the cookie a browser would send next. */
  const request = async <R>(
    cookie: string | undefined,
    body: (session: Awaited<ReturnType<SessionManager["load"]>>) => R | Promise<R>,
  ) => {
    const session = await manager.load({ cookie, https: false });
    const value = await body(session);
    const setCookie = await manager.commit(session);
    return {
      value,
      cookie: setCookie === undefined ? cookie : setCookie.split(";", 1)[0],
      setCookie,
      session,
    };
  };
  return { clock, memory, store, manager, request };
}

test("generateIdInGroup: ids whose storage keys start with the group; a bad group is refused", () => {
  for (const group of ["AA", "Ab", "_-", "z9"]) {
    const id = generateIdInGroup(group);
    assert.match(id, /^[A-Za-z0-9_-]{32}$/);
    assert.equal(storageKey(id).slice(0, 5), `s1_${group}`);
  }
  const ids = new Set(Array.from({ length: 20 }, () => generateIdInGroup("Xy")));
  assert.equal(ids.size, 20, "still random");
  for (const bad of ["", "A", "ABC", "A*", "é1"]) assert.throws(() => generateIdInGroup(bad), TypeError);
});

test("sessionHandle and userKey: fixed shapes, one-way, distinct from the storage key and the id", () => {
  const id = generateId();
  const key = storageKey(id);
  const handle = sessionHandle(key);
  assert.match(handle, /^h1_[A-Za-z0-9_-]{22}$/);
  assert.equal(sessionHandle(key), handle, "deterministic");
  assert.notEqual(sessionHandle(storageKey(generateId())), handle);
  assert.ok(!key.includes(handle.slice(3)) && !id.includes(handle.slice(3)));
  assert.match(userKey("ada"), /^u1_[A-Za-z0-9_-]{43}$/);
  assert.notEqual(userKey("ada"), userKey("Ada"));
  assert.equal(userKey("{x}:*"), userKey("{x}:*"));
});

test("logIn refuses a bad user id or details with a TypeError and leaves the session as it was", async () => {
  const { request } = setup();
  const first = await request(undefined, (s) => s.set("n", 1));
  await request(first.cookie, async (s) => {
    const id = s.id;
    for (const bad of ["", "x".repeat(257), 42, null, undefined, "a\uD800", "\uDC00b", "a\uDBFFz"]) {
      await assert.rejects(s.logIn(bad as string), /Invalid userId for logIn\(\)/);
    }
    for (const details of [[1], "x", { f: () => 1 }, { n: Number.NaN }, { d: new Date() }]) {
      await assert.rejects(
        s.logIn("ada", { details: details as Record<string, unknown> }),
        /Invalid "details"/,
      );
    }
    await assert.rejects(
      s.logIn("ada", { details: { d: new Date() } }),
      { message: /^Invalid "details" for logIn\(\): the value at details\.d is Date, not JSON data/ },
      "the message names the part, not a session key",
    );
    await assert.rejects(
      s.logIn("ada", { details: { ua: "é".repeat(2100) } }),
      /Invalid "details" for logIn\(\): 4209 bytes of JSON, over the 4096 allowed/,
    );
    assert.equal(s.userId, undefined);
    assert.equal(s.id, id, "no new id");
    assert.equal(s.isNew, false);
  });
  await request(undefined, async (s) => {
    await s.logIn("ada", { details: { ua: "x".repeat(4087) } }); // 4,096 bytes of JSON: fine
    await s.logIn("x".repeat(256));
    assert.equal(s.userId, "x".repeat(256), "256 characters are fine");
    await s.logIn("\u{1F469}\u200D\u{1F680} \0 \uFFFD");
    assert.equal(s.userId, "\u{1F469}\u200D\u{1F680} \0 \uFFFD", "pairs, NUL and U+FFFD are fine");
  });
});

test("not logged in: no sessions to list, nothing to revoke", async () => {
  const { request } = setup();
  await request(undefined, async (s) => {
    assert.deepEqual(await s.sessionsOfUser(), []);
    assert.equal(await s.revoke("h1_AAAAAAAAAAAAAAAAAAAAAA"), false);
    assert.equal(await s.logOutEverywhere(), 0);
    assert.equal(s.userId, undefined);
  });
});

test("a login with no data is saved: the login is the session's content", async () => {
  const { request, manager } = setup();
  const login = await request(undefined, (s) => s.logIn("ada"));
  assert.ok(login.setCookie, "a cookie is sent");
  await request(login.cookie, (s) => {
    assert.equal(s.isNew, false);
    assert.equal(s.userId, "ada");
  });
  assert.equal((await manager.sessionsOfUser("ada")).length, 1);
});

test("regenerate keeps the user, regenerate(callback) and destroy drop it", async () => {
  const { request, manager } = setup();
  const login = await request(undefined, (s) => s.logIn("ada"));
  const kept = await request(login.cookie, async (s) => {
    await s.regenerate();
    assert.equal(s.userId, "ada");
  });
  assert.notEqual(kept.cookie, login.cookie);
  assert.equal((await manager.sessionsOfUser("ada")).length, 1, "the old record left the list");
  const dropped = await request(kept.cookie, async (s) => {
    await new Promise<void>((resolve, reject) => s.regenerate((error) => error ? reject(error) : resolve()));
    assert.equal(s.userId, undefined, "express-session's regenerate starts empty");
  });
  assert.equal(dropped.setCookie?.includes("Max-Age=0"), true, "nothing to save: the cookie is cleared");
  assert.deepEqual(await manager.sessionsOfUser("ada"), []);
  const again = await request(undefined, (s) => s.logIn("bob"));
  await request(again.cookie, (s) => s.logOut());
  assert.deepEqual(await manager.sessionsOfUser("bob"), []);
});

test("a store that groups a user's sessions gets ids in the user's group, at login and at regenerate", async () => {
  const { request, manager } = setup({}, (memory) => {
    const grouped = new FaultyStore(memory) as FaultyStore & { groupsUserSessions: boolean };
    Object.defineProperty(grouped, "groupsUserSessions", { value: true });
    return grouped;
  });
  const group = userKey("ada").slice(3, 5);
  const login = await request(undefined, (s) => s.logIn("ada"));
  assert.equal((await manager.sessionsOfUser("ada")).length, 1);
  const regenerated = await request(login.cookie, async (s) => {
    assert.equal(storageKey(s.id).slice(0, 5), `s1_${group}`);
    await s.regenerate();
    assert.equal(storageKey(s.id).slice(0, 5), `s1_${group}`);
  });
  assert.notEqual(regenerated.cookie, login.cookie);
  assert.equal(storageKey(login.cookie!.slice(4, 36)).slice(0, 5), `s1_${group}`);
  // An anonymous session is not ground: any group.
  await request(undefined, (s) => assert.match(storageKey(s.id), /^s1_/));
});

test("lastSeenAt: when the idle deadline last moved (half an idle window), createdAt without idle timeout", async () => {
  const { request, manager, clock } = setup({ idleTimeout: 60 * 60 });
  const start = clock.now;
  const login = await request(undefined, (s) => s.logIn("ada"));
  clock.now += 10 * MINUTE;
  await request(login.cookie, (s) => s.get("x")); // under half the window: the deadline stays
  let [info] = await manager.sessionsOfUser("ada");
  assert.equal(info.lastSeenAt, start);
  assert.equal(info.createdAt, start);
  assert.equal(info.expiresAt, start + 60 * MINUTE);
  clock.now += 25 * MINUTE; // 35 minutes in: the deadline slides
  await request(login.cookie, (s) => s.get("x"));
  [info] = await manager.sessionsOfUser("ada");
  assert.equal(info.lastSeenAt, start + 35 * MINUTE);
  assert.equal(info.expiresAt, start + 95 * MINUTE);
  assert.equal(info.current, false);

  const noIdle = setup({ idleTimeout: null });
  const other = await noIdle.request(undefined, (s) => s.logIn("bob"));
  noIdle.clock.now += 5 * MINUTE;
  await noIdle.request(other.cookie, (s) => s.touch());
  const [bob] = await noIdle.manager.sessionsOfUser("bob");
  assert.equal(bob.lastSeenAt, bob.createdAt);
});

test("revoking by handle reaches only the user's own sessions", async () => {
  const { request, manager } = setup();
  await request(undefined, (s) => s.logIn("ada"));
  const bob = await request(undefined, (s) => s.logIn("bob"));
  const [adaSession] = await manager.sessionsOfUser("ada");
  await request(bob.cookie, async (s) => {
    assert.equal(await s.revoke(adaSession.handle), false, "bob cannot end ada's session");
  });
  assert.equal(await manager.revokeSession("bob", adaSession.handle), false);
  assert.equal((await manager.sessionsOfUser("ada")).length, 1);
  assert.equal(await manager.revokeSession("ada", adaSession.handle), true);
  assert.deepEqual(await manager.sessionsOfUser("ada"), []);
  await assert.rejects(manager.sessionsOfUser(""), TypeError);
  await assert.rejects(manager.revokeSession("a\uD800", adaSession.handle), /no lone surrogate/);
  await assert.rejects(manager.logOutEverywhere(7 as unknown as string), TypeError);
});

test('a handle of "all" names no session: revoke() and revokeSession() end nothing with it', async () => {
  // Handles come from the client (a form field): no string may stand for every session.
  const { request, manager } = setup();
  const first = await request(undefined, (s) => s.logIn("ada"));
  await request(undefined, (s) => s.logIn("ada"));
  await request(undefined, (s) => s.logIn("ada"));
  await request(first.cookie, async (s) => {
    assert.equal(await s.revoke("all"), false);
  });
  assert.equal(await manager.revokeSession("ada", "all"), false);
  assert.equal((await manager.sessionsOfUser("ada")).length, 3);
  assert.equal(await manager.logOutEverywhere("ada"), 3, "log out everywhere still ends them all");
});

test("revoke(own handle) is destroy: the record goes and the cookie is cleared", async () => {
  const { request, manager } = setup();
  const login = await request(undefined, (s) => s.logIn("ada"));
  const result = await request(login.cookie, async (s) => {
    const [mine] = await s.sessionsOfUser();
    assert.equal(mine.current, true);
    return await s.revoke(mine.handle);
  });
  assert.equal(result.value, true);
  assert.match(result.setCookie!, /Max-Age=0/);
  assert.deepEqual(await manager.sessionsOfUser("ada"), []);
});

test("options: maxSessionsPerUser and onSessionLimit are checked; both need a per-user index", () => {
  for (const max of [0, -1, 1.5, "2", Number.POSITIVE_INFINITY]) {
    assert.throws(
      () => new SessionManager({ maxSessionsPerUser: max as number }),
      /Invalid session option "maxSessionsPerUser": must be a positive integer/,
    );
  }
  assert.throws(
    () => new SessionManager({ onSessionLimit: "oldest" as "refuse" }),
    /Invalid session option "onSessionLimit": must be "revoke-oldest" or "refuse"/,
  );
  const plain: Store = { get: () => undefined, set: () => "written", delete: () => {} };
  assert.throws(
    () => new SessionManager({ store: plain, maxSessionsPerUser: 3 }),
    /"maxSessionsPerUser": needs a store with a per-user index/,
  );
  assert.throws(
    () => new SessionManager({ store: new CookieStore({ keys: [SECRET] }), maxSessionsPerUser: 3 }),
    /"maxSessionsPerUser": needs a store with a per-user index/,
  );
  assert.throws(() => new SessionManager({ maxSesionsPerUser: 3 } as SessionOptions), /maxSessionsPerUser/);
});

test("CookieStore: logIn binds the user in the sealed cookie; listing and revoking say why they cannot", async () => {
  const clock = { now: 1_700_000_000_000 };
  const manager = new SessionManager({ store: new CookieStore({ keys: [SECRET] }), now: () => clock.now });
  const session = await manager.load({ cookie: undefined, https: false });
  await session.logIn("ada", { details: { device: "phone" } });
  const cookie = (await manager.commit(session))!.split(";", 1)[0];
  const again = await manager.load({ cookie, https: false });
  assert.equal(again.userId, "ada");
  await assert.rejects(again.sessionsOfUser(), /a CookieStore keeps sessions in cookies/);
  await assert.rejects(again.logOutEverywhere({ keepCurrent: true }), TypeError);
  await assert.rejects(manager.sessionsOfUser("ada"), TypeError);
});

test("a store without an index: logIn binds, listing is a TypeError naming what is missing", async () => {
  const memory = new MemoryStore();
  const plain: Store = {
    get: (key) => memory.get(key),
    set: (key, write) => memory.set(key, write),
    delete: (key) => memory.delete(key),
  };
  const manager = new SessionManager({ store: plain, secret: SECRET });
  const session = await manager.load({ cookie: undefined, https: false });
  await session.logIn("ada");
  assert.equal(session.userId, "ada");
  await assert.rejects(session.sessionsOfUser(), /needs a store with a per-user index \(listByUser\)/);
});

test("listByUser outside its contract is a StoreContractError; a failing one a SessionStoreError (503)", async () => {
  const live = { createdAt: 1, expiresAt: Date.now() + MINUTE, absoluteExpiresAt: Date.now() + MINUTE };
  const answers: unknown[] = [
    "nope",
    [{ key: 1, meta: { ...live, userId: "ada" } }],
    [{ key: "s1_x", meta: { ...live, userId: "bob" } }],
    [{ key: "s1_x", meta: { createdAt: 1, userId: "ada" } }],
  ];
  for (const answer of answers) {
    const memory = new MemoryStore();
    const store: Store = {
      get: (key) => memory.get(key),
      set: (key, write) => memory.set(key, write),
      delete: (key) => memory.delete(key),
      listByUser: () => answer as [],
    };
    const manager = new SessionManager({ store, secret: SECRET });
    await assert.rejects(manager.sessionsOfUser("ada"), StoreContractError, JSON.stringify(answer));
  }
  const failing: Store = {
    get: () => undefined,
    set: () => "written",
    delete: () => {},
    listByUser: () => Promise.reject(new Error("connection refused")),
  };
  const manager = new SessionManager({ store: failing, secret: SECRET });
  await assert.rejects(
    manager.logOutEverywhere("ada"),
    (error) => error instanceof SessionStoreError && error.status === 503,
  );
});

test("expired entries a store still lists are not answered", async () => {
  const now = Date.now();
  const store: Store = {
    get: () => undefined,
    set: () => "written",
    delete: () => {},
    listByUser: (userId) => [
      {
        key: "s1_old",
        meta: { createdAt: now - 2 * MINUTE, expiresAt: now - MINUTE, absoluteExpiresAt: now, userId },
      },
      {
        key: "s1_new",
        meta: { createdAt: now, expiresAt: now + MINUTE, absoluteExpiresAt: now + MINUTE, userId },
      },
    ],
  };
  const manager = new SessionManager({ store, secret: SECRET });
  assert.deepEqual((await manager.sessionsOfUser("ada")).map((info) => info.handle), [
    sessionHandle("s1_new"),
  ]);
});

test("maxSessionsPerUser with revoke-oldest ends the sessions created longest ago; refuse leaves the session as it was", async () => {
  const { request, manager, clock } = setup({ maxSessionsPerUser: 2 });
  const first = await request(undefined, (s) => s.logIn("ada", { details: { n: 1 } }));
  clock.now += 1000;
  await request(undefined, (s) => s.logIn("ada", { details: { n: 2 } }));
  clock.now += 1000;
  await request(undefined, (s) => s.logIn("ada", { details: { n: 3 } }));
  assert.deepEqual((await manager.sessionsOfUser("ada")).map((info) => info.details?.n).sort(), [2, 3]);
  await request(first.cookie, (s) => assert.equal(s.userId, undefined));

  const strict = setup({ maxSessionsPerUser: 1, onSessionLimit: "refuse" });
  await strict.request(undefined, (s) => s.logIn("ada"));
  const visitor = await strict.request(undefined, (s) => s.set("cart", [1]));
  await strict.request(visitor.cookie, async (s) => {
    const id = s.id;
    await assert.rejects(s.logIn("ada"), (error) => error instanceof SessionLimitError && error.limit === 1);
    assert.equal(s.userId, undefined);
    assert.equal(s.id, id);
    assert.deepEqual(s.get("cart"), [1]);
  });
});

test("a request of a session ended elsewhere cannot bring it back through regenerate(): 409, logged out", async () => {
  const { request, manager } = setup();
  const login = await request(undefined, (s) => s.logIn("ada"));
  // A slow request of that browser is running when the user logs out everywhere (a password change).
  const slow = await manager.load({ cookie: login.cookie, https: false });
  assert.equal(await manager.logOutEverywhere("ada"), 1);
  await assert.rejects(slow.regenerate(), SessionConflictError);
  assert.equal(slow.userId, undefined, "forgotten, not carried over");
  assert.match((await manager.commit(slow))!, /^sid=; Max-Age=0;/, "nothing saved, the cookie cleared");
  assert.deepEqual(await manager.sessionsOfUser("ada"), [], "not listed again");
  // The same for an anonymous session destroyed by another request, and for one that expired.
  const visitor = await request(undefined, (s) => s.set("cart", [1]));
  const late = await manager.load({ cookie: visitor.cookie, https: false });
  await request(visitor.cookie, (s) => s.destroy());
  await assert.rejects(late.regenerate(), SessionConflictError);
  assert.equal(late.get("cart"), undefined);
  // A live one regenerates as before.
  const live = await request(undefined, (s) => s.logIn("bob"));
  const renewed = await request(live.cookie, (s) => s.regenerate());
  assert.notEqual(renewed.cookie, live.cookie);
  assert.equal((await manager.sessionsOfUser("bob")).length, 1);
});

test("maxSessionsPerUser is checked at login: logins racing each other can each pass", async () => {
  // Documented, not prevented: each login lists the user's saved sessions, and none of the racing ones is saved.
  const { manager } = setup({ maxSessionsPerUser: 1, onSessionLimit: "refuse" });
  const racing = await Promise.all([1, 2, 3].map(() => manager.load({ cookie: undefined, https: false })));
  await Promise.all(racing.map((s) => s.logIn("ada")));
  await Promise.all(racing.map((s) => manager.commit(s)));
  assert.equal((await manager.sessionsOfUser("ada")).length, 3);
  const next = await manager.load({ cookie: undefined, https: false });
  await assert.rejects(next.logIn("ada"), SessionLimitError, "the next login sees them all");
});

test("the session logging in is listed with the deadlines it is saved with, its own lifetime included", async () => {
  const { request, manager, clock } = setup({ idleTimeout: 3600, absoluteTimeout: 3600 });
  const month = 30 * 24 * 60 * MINUTE;
  const saved = await request(undefined, async (s) => {
    s.setLifetime(month / 1000); // "remember me": honoured past the configured absolute timeout
    await s.logIn("ada");
    const [listed] = await s.sessionsOfUser();
    assert.equal(listed.current, true);
    assert.equal(listed.expiresAt, clock.now + month);
    assert.equal(listed.lastSeenAt, clock.now);
    return listed;
  });
  const [stored] = await manager.sessionsOfUser("ada");
  assert.equal(stored.expiresAt, saved.value!.expiresAt, "as the store then has it");
  assert.equal(stored.handle, saved.value!.handle);
});
