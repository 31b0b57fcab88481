import { test } from "node:test";
import assert from "node:assert/strict";
import { CookieStore } from "./cookie.ts";
import { SessionManager } from "../core.ts";
import type { SecurityEvent, SessionOptions } from "../core.ts";
import { SessionStoreError, SessionTooLargeError } from "../errors.ts";
import { storageKey } from "../_crypto.ts";
import { decodeBase64Url, encodeBase64Url } from "../_base64url.ts";
import { MESSAGES_PER_KEY, Sealer, SEALING } from "../_seal.ts";
import type { SessionRecord } from "../store.ts";
import { createWrite, storeConformanceSuite } from "../testing/store_suite.ts";

const KEY = "cookie-test-key-0123456789abcdefghijklmnop";
const OLD_KEY = "cookie-test-old-key-9876543210zyxwvutsrqpon";

storeConformanceSuite(test, {
  name: "CookieStore",
  createStore: () => new CookieStore({ keys: [KEY] }),
  secret: null,
  lacks: {
    serverRecords: "a CookieStore keeps each record sealed in its cookie: nothing on a server to get, set, " +
      "delete or dump by storage key",
    perUserIndex: "a CookieStore keeps sessions in cookies: nothing on a server can list a user's sessions " +
      "or end one (logIn still binds a user; the isRevoked option is the remedy)",
  },
  dump: () => Promise.resolve(""),
});

function setup(options: SessionOptions & { keys?: string[]; purpose?: string } = {}) {
  const clock = { now: 1_700_000_000_000 };
  const events: SecurityEvent[] = [];
  const { keys = [KEY], purpose, ...rest } = options;
  const manager = new SessionManager({
    store: new CookieStore({ keys, purpose }),
    now: () => clock.now,
    onSecurityEvent: (event) => events.push(event),
    ...rest,
  });
  return { clock, events, manager };
}

const cookieOf = (setCookie: string | undefined) => setCookie!.split(";")[0];
const valueOf = (setCookie: string | undefined) =>
  cookieOf(setCookie).slice(cookieOf(setCookie).indexOf("=") + 1);
const http = (cookie?: string) => ({ cookie, https: false });

/** A session with `data`, committed: its cookie (`sid=...`) and Set-Cookie. */
async function sealedSession(manager: SessionManager, data: Record<string, unknown> = { user: "ada" }) {
  const session = await manager.load(http());
  for (const [key, value] of Object.entries(data)) session.set(key, value);
  const setCookie = await manager.commit(session);
  return { session, setCookie: setCookie!, cookie: cookieOf(setCookie) };
}

// The format as docs/stores.md describes it, written again from the description with Web Crypto alone: the
// library's values must open here, and values sealed here must open in the library.
const INFO = new TextEncoder().encode("deno-sessions sealed cookie v1");

async function referenceKey(master: string, salt: Uint8Array<ArrayBuffer>): Promise<CryptoKey> {
  const base = await crypto.subtle.importKey("raw", new TextEncoder().encode(master), "HKDF", false, [
    "deriveKey",
  ]);
  return crypto.subtle.deriveKey(
    { name: "HKDF", hash: "SHA-256", salt, info: INFO },
    base,
    { name: "AES-GCM", length: 256 },
    false,
    ["encrypt", "decrypt"],
  );
}

function aad(purpose: string, version = 1): Uint8Array<ArrayBuffer> {
  const bytes = new TextEncoder().encode(purpose);
  const out = new Uint8Array(1 + bytes.length);
  out[0] = version;
  out.set(bytes, 1);
  return out;
}

async function referenceOpen(value: string, master = KEY, purpose = "sid"): Promise<unknown> {
  const bytes = decodeBase64Url(value)!;
  assert.equal(bytes[0], 1, "version byte");
  const key = await referenceKey(master, bytes.slice(1, 17));
  const plaintext = await crypto.subtle.decrypt(
    { name: "AES-GCM", iv: bytes.slice(17, 29), additionalData: aad(purpose), tagLength: 128 },
    key,
    bytes.slice(29),
  );
  return JSON.parse(new TextDecoder().decode(plaintext));
}

async function referenceSeal(
  plaintext: string,
  { master = KEY, purpose = "sid", version = 1 }: { master?: string; purpose?: string; version?: number } =
    {},
): Promise<string> {
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const sealed = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: aad(purpose, version) },
      await referenceKey(master, salt),
      new TextEncoder().encode(plaintext),
    ),
  );
  const out = new Uint8Array(29 + sealed.length);
  out[0] = version;
  out.set(salt, 1);
  out.set(iv, 17);
  out.set(sealed, 29);
  return encodeBase64Url(out);
}

const id = () => encodeBase64Url(crypto.getRandomValues(new Uint8Array(24)));
const meta = (now: number, lifetime = 60_000) => ({
  createdAt: now,
  expiresAt: now + lifetime,
  absoluteExpiresAt: now + lifetime,
});

test("CookieStore: options are checked, naming the option", () => {
  const cases: [unknown, RegExp][] = [
    [undefined, /options/],
    [{}, /"keys"/],
    [{ keys: [] }, /"keys"/],
    [{ keys: "a-single-string-key-0123456789abcdef" }, /"keys"/],
    [{ keys: ["short"] }, /"keys": .*at least 32 random bytes/],
    [{ keys: [KEY, "short"] }, /"keys"/],
    [{ keys: [new Uint8Array(31)] }, /"keys"/],
    [{ keys: [42] }, /"keys"/],
    [{ keys: [undefined, KEY] }, /"keys": its first entry is undefined \(an unset environment variable\?\)/],
    [{ keys: [undefined] }, /"keys": its first entry is undefined/],
    [{ keys: [KEY], purpose: "" }, /"purpose"/],
    [{ keys: [KEY], isRevoked: true }, /"isRevoked"/],
  ];
  for (const [options, message] of cases) {
    assert.throws(() => new CookieStore(options as never), message, JSON.stringify(options));
  }
  assert.doesNotThrow(() => new CookieStore({ keys: [new Uint8Array(32), KEY] }));
  // An old key whose environment variable is not set: nothing to rotate from, left out.
  assert.doesNotThrow(() => new CookieStore({ keys: [KEY, undefined] }));
  assert.throws(
    () => new SessionManager({ store: new CookieStore({ keys: [KEY] }), secret: KEY }),
    /"secret": is not used with a CookieStore/,
  );
});

test("CookieStore: unknown option names are refused, with the nearest known name, a hint, or the known ones", () => {
  const cases: [unknown, string][] = [
    [{ keys: [KEY], purpse: "app" }, 'Unknown CookieStore option "purpse": did you mean "purpose"?'],
    [
      { keys: [KEY], ttl: 3600 },
      'Unknown CookieStore option "ttl": known options are keys, purpose, isRevoked',
    ],
    [
      { password: KEY },
      'Unknown CookieStore option "password": use "keys": a list of keys of 32 bytes or more; the first seals, every key opens',
    ],
  ];
  for (const [options, message] of cases) {
    assert.throws(() => new CookieStore(options as never), { name: "TypeError", message });
  }
});

test("CookieStore: keeps nothing itself; its store methods throw a clear TypeError", () => {
  const store = new CookieStore({ keys: [KEY] });
  assert.throws(() => store.get("s1_x"), /keeps nothing on the server/);
  assert.throws(() => store.set(), TypeError);
  assert.throws(() => store.delete("s1_x"), TypeError);
});

test("CookieStore: the cookie is the documented format: version 1, salt, nonce, AES-256-GCM of [id, record]", async () => {
  const { manager, clock } = setup();
  const { session, setCookie } = await sealedSession(manager, { user: "ada", cart: [1, 2] });
  const value = valueOf(setCookie);
  assert.match(value, /^[A-Za-z0-9_-]+$/);
  assert.equal(value.startsWith("A"), true, "the version byte 0x01 begins with base64url 'A'");
  const opened = await referenceOpen(value) as [string, SessionRecord];
  assert.equal(opened[0], session.id);
  assert.deepEqual(opened[1], {
    data: { user: "ada", cart: [1, 2] },
    meta: {
      createdAt: clock.now,
      expiresAt: clock.now + 86_400_000,
      absoluteExpiresAt: clock.now + 604_800_000,
    },
  });
  const plaintextBytes = new TextEncoder().encode(JSON.stringify(opened)).length;
  assert.equal(decodeBase64Url(value)!.length, 1 + 16 + 12 + plaintextBytes + 16, "45 bytes around the JSON");

  // And the other way: a value sealed from the description opens in the library.
  const planted = await referenceSeal(
    JSON.stringify([id(), { data: { user: "bob" }, meta: meta(clock.now) }]),
  );
  assert.equal((await manager.load(http(`sid=${planted}`))).get("user"), "bob");
});

test("CookieStore: one process seals under one derived key (one salt) per 65,536 cookies, each with its own nonce", async () => {
  const sealer = new CookieStore({ keys: [KEY] })[SEALING]("sid");
  const record = { data: { n: 1 }, meta: meta(Date.now()) };
  const salts = new Set<string>();
  const nonces = new Set<string>();
  const first = decodeBase64Url(await sealer.seal(id(), record))!;
  salts.add(String(first.slice(1, 17)));
  nonces.add(String(first.slice(17, 29)));
  let sealed = 1;
  while (sealed < MESSAGES_PER_KEY + 1) {
    const batch = Math.min(512, MESSAGES_PER_KEY + 1 - sealed);
    const values = await Promise.all(Array.from({ length: batch }, () => sealer.seal(id(), record)));
    for (const value of values) {
      const bytes = decodeBase64Url(value)!;
      salts.add(String(bytes.slice(1, 17)));
      nonces.add(String(bytes.slice(17, 29)));
    }
    sealed += batch;
  }
  assert.equal(salts.size, 2, "a new salt after 65,536 cookies, not before");
  assert.equal(nonces.size, MESSAGES_PER_KEY + 1, "no nonce twice");
  const other = decodeBase64Url(await new CookieStore({ keys: [KEY] })[SEALING]("sid").seal(id(), record))!;
  assert.equal(salts.has(String(other.slice(1, 17))), false, "another process draws its own salt");
});

test("CookieStore: the cookie name is authenticated: a value does not open under another name", async () => {
  const a = setup({ cookie: { name: "a" } });
  const b = setup({ cookie: { name: "b" } });
  const { setCookie } = await sealedSession(a.manager);
  const value = valueOf(setCookie);
  assert.equal((await a.manager.load(http(`a=${value}`))).get("user"), "ada");
  assert.equal((await b.manager.load(http(`b=${value}`))).isNew, true);
  assert.deepEqual(b.events, [{ type: "bad-signature" }]);
  // An explicit purpose shared by both binds them together instead.
  const c = setup({ cookie: { name: "c" }, purpose: "shared" });
  const d = setup({ cookie: { name: "d" }, purpose: "shared" });
  const shared = valueOf((await sealedSession(c.manager)).setCookie);
  assert.equal((await d.manager.load(http(`d=${shared}`))).get("user"), "ada");
});

test("CookieStore: every changed byte, every truncation, re-ordering, extension, another key or version: a fresh session and an event", async () => {
  const { manager, events } = setup();
  const { setCookie } = await sealedSession(manager);
  const value = valueOf(setCookie);
  const bytes = decodeBase64Url(value)!;
  const refused = async (candidate: string, label: string) => {
    const session = await manager.load(http(`sid=${candidate}`));
    assert.equal(session.isNew, true, label);
    assert.equal(session.get("user"), undefined, label);
  };
  for (let i = 0; i < bytes.length; i++) {
    const changed = bytes.slice();
    changed[i] ^= 1 << (i % 8);
    await refused(encodeBase64Url(changed), `byte ${i}`);
  }
  for (let length = 0; length < bytes.length; length++) {
    await refused(encodeBase64Url(bytes.slice(0, length)), `first ${length} bytes`);
  }
  await refused(encodeBase64Url(new Uint8Array([...bytes, 0])), "a byte added");
  const half = 29 + Math.floor((bytes.length - 29) / 32) * 16;
  const swapped = new Uint8Array([...bytes.slice(0, 29), ...bytes.slice(half), ...bytes.slice(29, half)]);
  await refused(encodeBase64Url(swapped), "ciphertext blocks re-ordered");
  const ivFirst = new Uint8Array([
    bytes[0],
    ...bytes.slice(17, 29),
    ...bytes.slice(1, 17),
    ...bytes.slice(29),
  ]);
  await refused(encodeBase64Url(ivFirst), "salt and nonce swapped");
  await refused(value.slice(0, -1), "a base64url character dropped");
  await refused(value + "A", "a character added");
  await refused(value.replace(/^./, "/"), "a character outside base64url");
  const version2 = bytes.slice();
  version2[0] = 2;
  await refused(encodeBase64Url(version2), "version byte 2");
  const plaintext = JSON.stringify([id(), { data: { user: "eve" }, meta: meta(Date.now()) }]);
  await refused(await referenceSeal(plaintext, { version: 2 }), "sealed as version 2");
  await refused(await referenceSeal(plaintext, { master: OLD_KEY }), "sealed under a key this app lacks");
  await refused(await referenceSeal(plaintext, { purpose: "other" }), "sealed for another cookie");
  const types = new Set(events.map((event) => event.type));
  assert.deepEqual([...types].sort(), ["bad-signature", "malformed-cookie"]);
  assert.equal(events.some((event) => event.idHash !== undefined), false, "no id is known for these");
  assert.equal(
    (await manager.load(http(cookieOf(setCookie)))).get("user"),
    "ada",
    "the real cookie still opens",
  );
});

test("CookieStore: an authentic value that holds no record is a corrupt-record event, and reserved keys are dropped", async () => {
  const { manager, events, clock } = setup();
  for (
    const plaintext of [
      "not json",
      "[]",
      JSON.stringify(["not-an-id", { data: {}, meta: meta(clock.now) }]),
      JSON.stringify([id(), { data: [], meta: meta(clock.now) }]),
      JSON.stringify([id(), { data: {}, meta: { createdAt: 1 } }]),
      JSON.stringify([id(), { data: {}, meta: meta(clock.now) }, "extra"]),
    ]
  ) {
    events.length = 0;
    assert.equal((await manager.load(http(`sid=${await referenceSeal(plaintext)}`))).isNew, true, plaintext);
    assert.deepEqual(events, [{ type: "corrupt-record" }], plaintext);
  }
  events.length = 0;
  const sessionId = id();
  const planted = await referenceSeal(
    `["${sessionId}",{"data":{"__proto__":{"admin":true},"user":"ada"},"meta":${
      JSON.stringify(meta(clock.now))
    }}]`,
  );
  const session = await manager.load(http(`sid=${planted}`));
  assert.deepEqual({ ...session.toJSON() }, { user: "ada" });
  assert.deepEqual(events, [{ type: "forbidden-key", idHash: storageKey(sessionId) }]);
});

test("CookieStore: keys rotate: an old-key cookie opens and is sealed anew with the first key; a dropped key ends it", async () => {
  const before = setup({ keys: [OLD_KEY] });
  const { cookie } = await sealedSession(before.manager);
  const both = setup({ keys: [KEY, OLD_KEY] });
  both.clock.now = before.clock.now + 1000;
  const rotated = await both.manager.load(http(cookie));
  assert.equal(rotated.get("user"), "ada");
  const resealed = await both.manager.commit(rotated);
  assert.ok(resealed, "an unchanged session is sealed anew when an older key opened it");
  assert.equal(await referenceOpen(valueOf(resealed)).then(() => true), true, "under the first key");
  const after = setup({ keys: [KEY] });
  assert.equal((await after.manager.load(http(cookieOf(resealed)))).get("user"), "ada");
  assert.equal((await after.manager.load(http(cookie))).isNew, true, "the old key no longer opens anything");
  assert.deepEqual(after.events, [{ type: "bad-signature" }]);
  // A session opened with the first key is not sealed again by a read.
  assert.equal(await both.manager.commit(await both.manager.load(http(cookieOf(resealed)))), undefined);
});

test("CookieStore: deadlines inside the cookie are enforced on open, whatever Max-Age said", async () => {
  for (
    const [options, advance] of [
      [{ idleTimeout: 60 }, 61_000],
      [{ idleTimeout: 3600, absoluteTimeout: 120 }, 121_000],
    ] as const
  ) {
    const { manager, events, clock } = setup(options);
    const { session, cookie } = await sealedSession(manager);
    clock.now += advance - 2000;
    assert.equal((await manager.load(http(cookie))).get("user"), "ada", "alive just before");
    clock.now += 2000;
    assert.equal((await manager.load(http(cookie))).isNew, true, "expired");
    assert.deepEqual(events, [{ type: "expired-session", idHash: storageKey(session.id) }]);
  }
  // A shorter absoluteTimeout than the one the cookie was sealed with applies too.
  const long = setup({ absoluteTimeout: 3600 });
  const { cookie } = await sealedSession(long.manager);
  const short = setup({ absoluteTimeout: 60 });
  short.clock.now = long.clock.now + 61_000;
  assert.equal((await short.manager.load(http(cookie))).isNew, true);
});

test("CookieStore: a read sends nothing and seals nothing; a write, a touch and a regenerate seal anew", async () => {
  const { manager, clock } = setup({ idleTimeout: 60 });
  const { cookie, session: first } = await sealedSession(manager);
  clock.now += 20_000;
  assert.equal(await manager.commit(await manager.load(http(cookie))), undefined, "read");
  const write = await manager.load(http(cookie));
  write.set("n", 1);
  const written = await manager.commit(write);
  assert.ok(written, "every write sends the cookie: it carries the data");
  assert.notEqual(cookieOf(written), cookie);
  assert.equal(Number(/Max-Age=(\d+)/.exec(written!)![1]), 40, "a write keeps the deadline");
  clock.now += 15_000; // 35 s: more than half the idle window since the deadline was set
  const touched = await manager.commit(await manager.load(http(cookieOf(written))));
  assert.ok(touched, "an unchanged session is sealed anew when its deadline slides");
  assert.equal(/Max-Age=(\d+)/.exec(touched!)![1], "60");
  const login = await manager.load(http(cookieOf(touched)));
  await login.regenerate();
  const regenerated = await manager.commit(login);
  const [newId, record] = await referenceOpen(valueOf(regenerated)) as [string, SessionRecord];
  assert.notEqual(newId, first.id, "a new id");
  assert.deepEqual(record.data, { user: "ada", n: 1 });
  assert.equal(record.meta.createdAt, clock.now, "created anew");
});

test("CookieStore: destroy clears the cookie; the old value stays valid until its deadline (the documented limit)", async () => {
  const { manager } = setup({ cookie: { domain: "example.com", sameSite: "Strict" } });
  const { cookie, setCookie } = await sealedSession(manager);
  const logout = await manager.load(http(cookie));
  await logout.destroy();
  const cleared = await manager.commit(logout);
  assert.match(cleared!, /^sid=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT/);
  assert.equal(
    cleared!.split("; ").slice(3).join("; "),
    setCookie.split("; ").slice(2).join("; "),
    "attributes",
  );
  assert.equal(
    (await manager.load(http(cookie))).get("user"),
    "ada",
    "a copy of the old cookie still opens: stateless cookies cannot forget (use isRevoked)",
  );
});

test("CookieStore: flash values ride in the cookie and are read once", async () => {
  const { manager } = setup();
  const session = await manager.load(http());
  session.flash("notice", "saved");
  const first = cookieOf(await manager.commit(session));
  const next = await manager.load(http(first));
  assert.equal(next.get("notice"), "saved");
  const second = cookieOf(await manager.commit(next));
  assert.equal((await manager.load(http(second))).get("notice"), undefined);
});

test("CookieStore: the 4096-byte budget is measured on the whole Set-Cookie at commit: a 500 naming size and limit", async () => {
  for (const https of [false, true]) {
    const { manager } = setup({ cookie: { domain: "example.com" } });
    const sizeWith = async (length: number) => {
      const session = await manager.load({ cookie: null, https });
      session.set("text", "x".repeat(length));
      return await manager.commit(session);
    };
    // The largest value that fits, by bisection; one character more must fail.
    let low = 0;
    let high = 4096;
    while (low < high) {
      const middle = Math.ceil((low + high) / 2);
      try {
        await sizeWith(middle);
        low = middle;
      } catch (error) {
        assert.ok(error instanceof SessionTooLargeError);
        high = middle - 1;
      }
    }
    const largest = await sizeWith(low);
    assert.ok(largest!.length <= 4096 && largest!.length > 4090, `${largest!.length} bytes, https ${https}`);
    const error = await sizeWith(low + 3).then(() => undefined, (error) => error);
    assert.ok(error instanceof SessionTooLargeError);
    assert.equal(error.status, 500);
    assert.equal(error.limit, 4096);
    assert.ok(error.size > 4096);
    assert.match(error.message, new RegExp(`${error.size} bytes of Set-Cookie, over the 4096-byte limit`));
    assert.equal(error.message.includes("xxxx"), false, "no session content in the message");
  }
});

test("CookieStore: an oversized cookie is dropped unread with an event; the first value that opens wins", async () => {
  const { manager, events } = setup();
  const ada = await sealedSession(manager);
  const bob = await sealedSession(manager, { user: "bob" });
  assert.equal((await manager.load(http(`sid=${"A".repeat(4094)}`))).isNew, true);
  assert.deepEqual(events, [{ type: "oversized-cookie" }]);
  events.length = 0;
  const forged = valueOf(ada.setCookie).replace(/.$/, (c) => c === "A" ? "Q" : "A");
  for (
    const [header, user] of [
      [`sid=${forged}; ${bob.cookie}`, "bob"],
      [`${ada.cookie}; ${bob.cookie}`, "ada"],
      [`${bob.cookie}; ${ada.cookie}`, "bob"],
      [`sid=garbage; ${ada.cookie}`, "ada"],
    ]
  ) {
    assert.equal((await manager.load(http(header))).get("user"), user, header);
  }
});

test("CookieStore: records open as fresh copies, also for a value opened before", async () => {
  const { manager } = setup();
  const { cookie } = await sealedSession(manager, { list: [1] });
  const first = await manager.load(http(cookie));
  (first.get("list") as number[]).push(2);
  assert.deepEqual((await manager.load(http(cookie))).get("list"), [1]);
});

test("CookieStore: unicode, separators and nested values round-trip", async () => {
  const { manager } = setup();
  const data = {
    nested: { list: [1, -2.5, 1e21, true, false, null, { deep: [[], {}] }], empty: {} },
    emoji: "👩‍🚀🚀",
    separators: 'line\u2028para\u2029end; x=1, "quoted" \\',
    nul: "a\u0000b",
    "": "empty key",
  };
  const { cookie } = await sealedSession(manager, data);
  assert.deepEqual({ ...(await manager.load(http(cookie))).toJSON() }, data);
});

test("CookieStore: isRevoked refuses a session (revoked-session); its failures and slowness are store failures", async () => {
  const revoked = new Set<string>();
  let fail: Error | undefined;
  let hang = false;
  const seen: unknown[] = [];
  const clock = { now: 1_700_000_000_000 };
  const events: SecurityEvent[] = [];
  const manager = new SessionManager({
    store: new CookieStore({
      keys: [KEY],
      isRevoked: (session) => {
        seen.push(session);
        if (fail) throw fail;
        if (hang) return new Promise<boolean>(() => {});
        return Promise.resolve(revoked.has(session.id));
      },
    }),
    now: () => clock.now,
    storeTimeout: 0.2,
    onSecurityEvent: (event) => events.push(event),
  });
  const { session, cookie } = await sealedSession(manager);
  assert.equal((await manager.load(http(cookie))).get("user"), "ada");
  assert.deepEqual(seen, [{
    id: session.id,
    createdAt: clock.now,
    userId: undefined,
    data: { user: "ada" },
  }]);
  revoked.add(session.id);
  assert.equal((await manager.load(http(cookie))).isNew, true);
  assert.deepEqual(events, [{ type: "revoked-session", idHash: storageKey(session.id) }]);
  fail = new Error("revocation list unreachable");
  await assert.rejects(manager.load(http(cookie)), (error: unknown) => {
    assert.ok(error instanceof SessionStoreError);
    assert.equal(error.status, 503);
    assert.match(error.message, /revocation list unreachable/);
    return true;
  });
  fail = undefined;
  hang = true;
  const started = Date.now();
  await assert.rejects(manager.load(http(cookie)), SessionStoreError);
  assert.ok(Date.now() - started < 2000, "the storeTimeout applies");
  // A request without a cookie never asks.
  seen.length = 0;
  await manager.load(http());
  assert.deepEqual(seen, []);
});

test("CookieStore: isRevoked sees the user logIn() bound, so it can refuse a user's older cookies", async () => {
  // docs/stores.md's example: refuse every cookie of a user created before the user's "logged out" time.
  const loggedOutAt = new Map<string, number>();
  const seen: unknown[] = [];
  const clock = { now: 1_700_000_000_000 };
  const manager = new SessionManager({
    store: new CookieStore({
      keys: [KEY],
      isRevoked: ({ userId, createdAt }) => {
        seen.push(userId);
        return userId !== undefined && createdAt <= (loggedOutAt.get(userId) ?? -Infinity);
      },
    }),
    now: () => clock.now,
  });
  const login = await manager.load(http());
  await login.logIn("ada");
  login.set("cart", 1);
  const cookie = cookieOf(await manager.commit(login));
  assert.equal((await manager.load(http(cookie))).userId, "ada");
  assert.deepEqual(seen, ["ada"]);
  clock.now += 1000;
  loggedOutAt.set("ada", clock.now);
  assert.equal((await manager.load(http(cookie))).isNew, true, "the old cookie is refused");
  clock.now += 1000;
  const again = await manager.load(http());
  await again.logIn("ada");
  const newCookie = cookieOf(await manager.commit(again));
  assert.equal((await manager.load(http(newCookie))).userId, "ada", "a login after the cut-off passes");
  const anonymous = await sealedSession(manager);
  await manager.load(http(anonymous.cookie));
  assert.deepEqual(seen, ["ada", "ada", "ada", undefined]);
});

test("CookieStore: reload() reads the session again from its cookie, dropping this request's changes", async () => {
  const revoked = new Set<string>();
  const clock = { now: 1_700_000_000_000 };
  const events: SecurityEvent[] = [];
  const manager = new SessionManager({
    store: new CookieStore({ keys: [KEY], isRevoked: ({ id }) => revoked.has(id) }),
    now: () => clock.now,
    onSecurityEvent: (event) => events.push(event),
  });
  const { cookie } = await sealedSession(manager, { user: "ada", items: [1] });
  const session = await manager.load(http(cookie));
  session.set("user", "bob");
  (session.get("items") as number[]).push(2);
  session.delete("items");
  session.flash("notice", "x");
  await session.reload();
  assert.deepEqual(
    { ...session.toJSON() },
    { user: "ada", items: [1] },
    "a fresh copy of what the cookie holds",
  );
  assert.equal(await manager.commit(session), undefined, "nothing changed after the reload: nothing to send");
  // The callback form, as express-session code calls it.
  await new Promise<void>((resolve, reject) => session.reload((error) => error ? reject(error) : resolve()));
  // Revoked since the load: as a record deleted meanwhile.
  revoked.add(session.id);
  await assert.rejects(session.reload(), /deleted or has expired/);
  assert.deepEqual(
    events,
    [{ type: "revoked-session", idHash: storageKey(session.id) }],
    "reported as on a load",
  );
  revoked.clear();
  // Expired since the load.
  const later = await manager.load(http(cookie));
  clock.now += 8 * 86_400_000;
  await assert.rejects(later.reload(), /deleted or has expired/);
});

test("CookieStore: Sealer.open never rejects, whatever the value", async () => {
  const sealer = new Sealer([new TextEncoder().encode(KEY)], "sid");
  for (
    const value of ["", "A", "AQ", "A".repeat(60), "_".repeat(100), "é", "AQ".repeat(2000), "\u0000", "A=="]
  ) {
    const opened = await sealer.open(value);
    assert.equal(typeof opened, "string", JSON.stringify(value));
  }
  assert.ok(await sealer.seal(id(), createWrite({ a: 1 }).record));
});

test("CookieStore: with both timeouts turned off a session stays open (the cookie lives the 400 days browsers allow)", async () => {
  const { manager, clock } = setup({ idleTimeout: null, absoluteTimeout: null });
  const { setCookie, cookie } = await sealedSession(manager);
  assert.match(setCookie, /Max-Age=34560000;/);
  clock.now += 10 * 365 * 86_400_000;
  assert.equal((await manager.load(http(cookie))).get("user"), "ada");
});
