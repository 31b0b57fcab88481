// Security properties of the core that no adapter can observe: when HMAC runs, parsing cost, fuzzing.
// FUZZ_RUNS sets the number of generated inputs per property (`npm run fuzz` runs 100,000).
import { test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import fc from "fast-check";
import { readCookieValues } from "./_cookie.ts";
import { generateId, MAX_COOKIE_VALUE_LENGTH, Signer } from "./_crypto.ts";
import { HmacSha256 } from "./_hmac.ts";
import { SessionManager } from "./core.ts";
import { MemoryStore } from "./stores/memory.ts";
import { FaultyStore } from "./testing/faulty_store.ts";

const SECRET = "security-test-secret-0123456789abcdef";
const RUNS = Number(process.env.FUZZ_RUNS ?? 300);

/** Counts HMAC computations (the core's signer uses `HmacSha256.base64Url` for every sign and verify). */
function countHmac(): { calls: number; restore(): void } {
  const original = HmacSha256.prototype.base64Url;
  const counter = {
    calls: 0,
    restore: () => {
      HmacSha256.prototype.base64Url = original;
    },
  };
  HmacSha256.prototype.base64Url = function (this: HmacSha256, text: string) {
    counter.calls++;
    return original.call(this, text);
  };
  return counter;
}

test("security: oversized and malformed cookies are dropped before any HMAC", async () => {
  const store = new FaultyStore(new MemoryStore());
  const manager = new SessionManager({ store, secret: SECRET });
  const signed = new Signer([SECRET]).sign(generateId());
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
  const signer = new Signer([SECRET]);
  fc.assert(
    fc.property(fc.string({ maxLength: 200 }), (value) => {
      const result = signer.verify(value);
      assert.ok(result === "malformed" || result === "bad-signature");
    }),
    { numRuns: RUNS },
  );
  const id = generateId();
  const signed = signer.sign(id);
  fc.assert(
    fc.property(
      fc.nat(signed.length - 1),
      fc.constantFrom(..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."),
      (at, char) => {
        fc.pre(signed[at] !== char);
        const result = signer.verify(signed.slice(0, at) + char + signed.slice(at + 1));
        assert.equal(typeof result, "string", `changed position ${at}`);
      },
    ),
    { numRuns: Math.min(RUNS, 2_000) },
  );
  assert.deepEqual(signer.verify(signed), { handle: id, rotated: false });
});
