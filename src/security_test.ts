// Security properties of the core that no adapter can observe: when HMAC runs, parsing cost, fuzzing.
// FUZZ_RUNS sets the number of generated inputs per property (`npm run fuzz` runs 100,000).
import { test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import fc from "fast-check";
import { readCookieValues } from "./_cookie.ts";
import { COOKIE_SHAPES } from "./testing/_cookie_shapes.ts";
import { generateId, maxCookieValueLength, SignedToken, storageKey, UnsignedToken } from "./_crypto.ts";
import { SessionManager } from "./core.ts";
import { MemoryStore } from "./stores/memory.ts";
import { FaultyStore } from "./testing/faulty_store.ts";

const SECRET = "security-test-secret-0123456789abcdef";
const RUNS = Number(process.env.FUZZ_RUNS ?? 300);

const MAX_COOKIE_VALUE_LENGTH = maxCookieValueLength("sid");

/** Counts HMAC computations (the signed token computes every one through `SignedToken.signature`). */
function countHmac(): { calls: number; restore(): void } {
  const original = SignedToken.prototype.signature;
  const counter = {
    calls: 0,
    restore: () => {
      SignedToken.prototype.signature = original;
    },
  };
  SignedToken.prototype.signature = function (this: SignedToken, index: number, id: string) {
    counter.calls++;
    return original.call(this, index, id);
  };
  return counter;
}

test("security: oversized and malformed cookies are dropped before any HMAC", async () => {
  const store = new FaultyStore(new MemoryStore());
  const manager = new SessionManager({ store, secret: SECRET });
  const signed = new SignedToken([SECRET]).write(generateId());
  const counter = countHmac();
  try {
    for (
      const cookie of [
        `sid=${"a".repeat(10_240)}`,
        `sid=${signed}${"a".repeat(10_240)}`,
        "sid=../x.abc",
        "sid=a\0b",
        `sid=${generateId()}`,
        `sid=${generateId()}.short`,
        `sid=${generateId()}.${"é".repeat(43)}`,
      ]
    ) {
      assert.equal((await manager.load({ cookie, https: false })).isNew, true, cookie.slice(0, 40));
    }
    assert.equal(counter.calls, 0, "no HMAC for values that cannot be signed ids");
    await manager.load({ cookie: `sid=${signed}`, https: false });
    assert.equal(counter.calls, 1, "a well-formed value is verified once per secret");
    await manager.load({ cookie: `sid=${signed}`, https: false });
    assert.equal(counter.calls, 1, "and remembered once it verified");
  } finally {
    counter.restore();
  }
  assert.equal(store.calls.get, 2, "only the verified value reached the store, once per load");
});

test("security: cookie parsing time is linear in the header size", () => {
  const header = (pairs: number) => Array.from({ length: pairs }, (_, i) => `a${i}=`).join("; ") + "; sid=x";
  const time = (text: string) => {
    const started = performance.now();
    for (let i = 0; i < 20; i++) readCookieValues(text, "sid", MAX_COOKIE_VALUE_LENGTH);
    return (performance.now() - started) / 20;
  };
  const small = header(3_000);
  const large = header(30_000);
  time(large); // warm up
  const smallTime = time(small);
  const largeTime = time(large);
  assert.ok(smallTime < 50, `3,000 pairs in ${smallTime.toFixed(2)} ms`);
  assert.ok(
    largeTime < Math.max(smallTime, 0.2) * 40,
    `10x the input took ${(largeTime / smallTime).toFixed(1)}x`,
  );
  assert.deepEqual(readCookieValues(small, "sid", MAX_COOKIE_VALUE_LENGTH), ["x"]);
});

test("security: cookie parsing is linear for every header shape (16 KB to 256 KB: 16x the size, < 64x the time)", () => {
  /** Milliseconds per parse: the fastest of 5 samples of `repeat` parses each (the least disturbed by load). */
  const perParse = (header: string, repeat: number) => {
    let best = Infinity;
    for (let sample = 0; sample < 5; sample++) {
      const started = performance.now();
      for (let i = 0; i < repeat; i++) readCookieValues(header, "sid", MAX_COOKIE_VALUE_LENGTH);
      best = Math.min(best, (performance.now() - started) / repeat);
    }
    return best;
  };
  const failures: string[] = [];
  for (const shape of COOKIE_SHAPES) {
    const small = shape.build(16 * 1024);
    const large = shape.build(256 * 1024);
    assert.ok(small.length <= 16 * 1024 && small.length > 15 * 1024, shape.name);
    assert.deepEqual(
      readCookieValues(large, "sid", MAX_COOKIE_VALUE_LENGTH).at(-1),
      shape.findsSession ? "x" : "y",
      shape.name,
    );
    perParse(large, 1); // warm up
    const smallTime = perParse(small, 16);
    const largeTime = perParse(large, 1);
    // A linear parser takes about 16x as long for 16x the input, a quadratic one about 256x. Below 0.05 ms
    // per 16 KB the clock's resolution decides, so that is the floor of the comparison.
    const ratio = largeTime / Math.max(smallTime, 0.05);
    if (ratio >= 64 || largeTime > 50) {
      failures.push(
        `${shape.name}: 16 KB in ${smallTime.toFixed(3)} ms, 256 KB in ${largeTime.toFixed(3)} ms`,
      );
    }
  }
  assert.deepEqual(failures, [], "every shape is parsed in linear time");
});

test("cookie parsing: every value of the name in order, at most 8, oversized ones skipped and not counted", () => {
  assert.deepEqual(readCookieValues(null, "sid", 10), []);
  assert.deepEqual(readCookieValues("", "sid", 10), []);
  assert.deepEqual(readCookieValues("a=1; b=2", "sid", 10), []);
  assert.deepEqual(readCookieValues("sid=one", "sid", 10), ["one"]);
  assert.deepEqual(readCookieValues(' a=1;  sid = "two" ;sid=three', "sid", 10), ["two", "three"]);
  // Empty values are not values; a name that only ends with the name is another cookie.
  assert.deepEqual(readCookieValues("sid=; xsid=1; sid=4", "sid", 10), ["4"]);
  const many = Array.from({ length: 12 }, (_, i) => `sid=v${i}`).join("; ");
  assert.deepEqual(readCookieValues(many, "sid", 10), ["v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7"]);
  let oversized = 0;
  const withLong = `sid=${"x".repeat(11)}; ${many}`;
  assert.deepEqual(
    readCookieValues(withLong, "sid", 10, () => oversized++),
    ["v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7"],
  );
  assert.equal(oversized, 1);
  // Each call answers its own array.
  const first = readCookieValues("sid=one", "sid", 10);
  first.push("changed");
  assert.deepEqual(readCookieValues("sid=one", "sid", 10), ["one"]);
});

test("fuzz: cookie parsing never throws and returns only bounded values", () => {
  fc.assert(
    fc.property(
      fc.string({ unit: "binary", maxLength: 600 }),
      fc.constantFrom("sid", "__Host-sid", "a"),
      (header, name) => {
        const values = readCookieValues(header, name, 64);
        assert.ok(values.length <= 8);
        for (const value of values) assert.ok(value.length > 0 && value.length <= 64);
      },
    ),
    { numRuns: RUNS },
  );
});

test("fuzz: loading any Cookie header never throws and never adopts an id", async () => {
  const store = new FaultyStore(new MemoryStore());
  const signedManager = new SessionManager({ store, secret: SECRET });
  const seed = await signedManager.load({ cookie: null, https: false });
  seed.set("user", "ada");
  const realCookie = (await signedManager.commit(seed))!.split(";")[0];
  store.resetCalls();
  const header = fc.oneof(
    fc.string({ unit: "binary", maxLength: 300 }),
    fc.string({ unit: "binary", maxLength: 100 }).map((s) => `sid=${s}`),
    fc.tuple(fc.nat(realCookie.length - 1), fc.string({ unit: "binary", minLength: 1, maxLength: 2 })).map(
      ([at, insert]) => realCookie.slice(0, at) + insert + realCookie.slice(at + 1),
    ),
  );
  await fc.assert(
    fc.asyncProperty(header, async (cookie) => {
      const session = await signedManager.load({ cookie, https: false });
      if (!session.isNew) assert.equal(session.get("user"), "ada", "only the real session loads");
      return true;
    }),
    { numRuns: RUNS },
  );
  assert.equal(store.calls.set, 0);
});

test("fuzz: signatures verify only unchanged; any other value is refused without throwing", () => {
  const token = new SignedToken([SECRET]);
  fc.assert(
    fc.property(fc.string({ maxLength: 200 }), (value) => {
      const result = token.read(value);
      assert.ok(result === "malformed" || result === "bad-signature");
    }),
    { numRuns: RUNS },
  );
  const id = generateId();
  const signed = token.write(id);
  fc.assert(
    fc.property(
      fc.nat(signed.length - 1),
      fc.constantFrom(..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."),
      (at, char) => {
        fc.pre(signed[at] !== char);
        const result = token.read(signed.slice(0, at) + char + signed.slice(at + 1));
        assert.equal(typeof result, "string", `changed position ${at}`);
      },
    ),
    { numRuns: Math.min(RUNS, 2_000) },
  );
  assert.deepEqual(token.read(signed), { id, key: storageKey(id), rotated: false });
});

test("remembered cookie values: names of Object.prototype, __proto__ and numbers are never found, before or after remembering", () => {
  // The tokens remember verified values in null-prototype dictionaries (src/_crypto.ts, Remembered): a lookup
  // by any other string must find nothing, not an inherited property, an array index or a prototype.
  const hostile = [
    "__proto__",
    "constructor",
    "prototype",
    "toString",
    "hasOwnProperty",
    "valueOf",
    "0",
    "4294967295",
    "-1",
    "length",
    "",
  ];
  for (const token of [new SignedToken([SECRET]), new UnsignedToken()]) {
    const before = hostile.map((value) => token.read(value));
    const id = generateId();
    const value = token.write(id);
    const expected = { id, key: storageKey(id), rotated: false };
    assert.deepEqual(token.read(value), expected);
    for (const [i, probe] of hostile.entries()) {
      assert.equal(before[i], "malformed", `${token.constructor.name} read ${JSON.stringify(probe)} before`);
      assert.equal(
        token.read(probe),
        "malformed",
        `${token.constructor.name} read ${JSON.stringify(probe)} after`,
      );
    }
    // The remembered answer is the same object each time, and a one-character change is not it.
    assert.equal(token.read(value), token.read(value));
    const changed = token.read(value.slice(0, -1) + (value.endsWith("A") ? "B" : "A"));
    // Signed: refused. Unsigned: another well-formed id, never this one's answer.
    if (token instanceof SignedToken) assert.equal(changed, "bad-signature");
    else assert.ok(typeof changed !== "string" && changed.id !== id && changed.key !== expected.key);
    assert.deepEqual(token.read(value), expected);
  }
});

test("remembered cookie values: more values than one generation holds still verify, and each answer is its own", () => {
  const token = new SignedToken([SECRET]);
  const ids = Array.from({ length: 20_000 }, () => generateId());
  const values = ids.map((id) => token.write(id));
  for (const [i, value] of values.entries()) {
    const presented = token.read(value);
    assert.ok(typeof presented !== "string" && presented.id === ids[i], `value ${i}`);
  }
  // The newest values are remembered: read again, none is verified anew; the oldest was forgotten and is.
  const hmac = countHmac();
  try {
    for (let i = values.length - 8_000; i < values.length; i++) {
      const presented = token.read(values[i]);
      assert.ok(typeof presented !== "string" && presented.id === ids[i], `value ${i} again`);
    }
    assert.equal(hmac.calls, 0);
    const oldest = token.read(values[0]);
    assert.ok(typeof oldest !== "string" && oldest.id === ids[0]);
    assert.equal(hmac.calls, 1);
  } finally {
    hmac.restore();
  }
});

const subtleBase64Url = (bytes: ArrayBuffer) =>
  btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(
    /=+$/,
    "",
  );

test("fuzz: signatures are Web Crypto's HMAC-SHA-256 of the id's UTF-8 bytes, for any secret", async () => {
  const encoder = new TextEncoder();
  await fc.assert(
    fc.asyncProperty(
      fc.string({ minLength: 32, maxLength: 80 }),
      fc.string({ maxLength: 40 }),
      async (secret, text) => {
        const key = await crypto.subtle.importKey(
          "raw",
          encoder.encode(secret),
          { name: "HMAC", hash: "SHA-256" },
          false,
          ["sign"],
        );
        const expected = subtleBase64Url(await crypto.subtle.sign("HMAC", key, encoder.encode(text)));
        assert.equal(new SignedToken([secret]).signature(0, text), expected);
      },
    ),
    { numRuns: Math.min(RUNS, 500) },
  );
  // The hand-written HMAC this replaced kept only the low byte of each character, so these two collided.
  const token = new SignedToken([SECRET]);
  assert.notEqual(token.signature(0, "\u0141" + "A".repeat(31)), token.signature(0, "A".repeat(32)));
});

test("storage keys are s1_ and Web Crypto's SHA-256 of the id, and never contain the id", async () => {
  for (let i = 0; i < 50; i++) {
    const id = generateId();
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(id));
    const key = storageKey(id);
    assert.equal(key, `s1_${subtleBase64Url(digest)}`);
    assert.equal(key.length, 46);
    assert.equal(key.includes(id), false);
  }
});

test("the 4096-byte budget: a cookie value filling it is looked at, one byte more is not", async () => {
  for (const name of ["sid", "__Host-session"]) {
    const events: string[] = [];
    const manager = new SessionManager({
      secret: SECRET,
      cookie: { name, secure: true },
      onSecurityEvent: (event) => events.push(event.type),
    });
    const limit = 4096 - name.length;
    assert.equal(maxCookieValueLength(name), limit);
    await manager.load({ cookie: `${name}=${"a".repeat(limit)}`, https: true });
    assert.deepEqual(events, ["malformed-cookie"], `${name}: a value of ${limit} bytes is read`);
    await manager.load({ cookie: `${name}=${"a".repeat(limit + 1)}`, https: true });
    assert.deepEqual(
      events,
      ["malformed-cookie", "oversized-cookie"],
      `${name}: a value of ${limit + 1} bytes is dropped unread, and reported`,
    );
  }
  // A name too long to leave room for a signed id is refused when the manager is built.
  assert.throws(
    () => new SessionManager({ secret: SECRET, cookie: { name: "n".repeat(4096 - 75) } }),
    /"cookie.name": is too long/,
  );
  new SessionManager({ secret: SECRET, cookie: { name: "n".repeat(4096 - 76) } });
});

test("security: an async onSecurityEvent hook that rejects is ignored, never an unhandled rejection", async () => {
  // Any client can raise an event (a malformed or forged cookie); an async logger whose service is down
  // rejected, unhandled, and an unhandled rejection ends a Node or Deno process.
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on("unhandledRejection", onUnhandled);
  try {
    const seen: string[] = [];
    const manager = new SessionManager({
      store: new MemoryStore(),
      secret: SECRET,
      onSecurityEvent: async (event) => {
        seen.push(event.type);
        await Promise.resolve();
        throw new Error(`log service down (${event.type})`);
      },
    });
    const forged = new SignedToken(["another-secret-0123456789abcdefghijkl"]).write(generateId());
    for (const cookie of ["sid=garbage", `sid=${forged}`]) {
      const session = await manager.load({ cookie, https: false });
      assert.equal(session.isNew, true);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(seen, ["malformed-cookie", "bad-signature"]);
    assert.deepEqual(unhandled, []);
  } finally {
    process.off("unhandledRejection", onUnhandled);
  }
});
