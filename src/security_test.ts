// Security properties of the core that no adapter can observe: when HMAC runs, parsing cost, fuzzing.
// FUZZ_RUNS sets the number of generated inputs per property (`npm run fuzz` runs 100,000).
import { test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import fc from "fast-check";
import { readCookieValues } from "./_cookie.ts";
import { COOKIE_SHAPES } from "./testing/_cookie_shapes.ts";
import { generateId, maxCookieValueLength, SignedToken, storageKey } from "./_crypto.ts";
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
