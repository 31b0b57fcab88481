// The synchronous HMAC-SHA-256 must agree with Web Crypto's on every input.
import { test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import fc from "fast-check";
import { HmacSha256, sha256 } from "./_hmac.ts";
import { encodeBase64Url } from "./_crypto.ts";

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);

async function webCryptoHmac(key: Uint8Array, message: Uint8Array): Promise<Uint8Array> {
  const imported = await crypto.subtle.importKey(
    "raw",
    new Uint8Array(key),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return new Uint8Array(await crypto.subtle.sign("HMAC", imported, new Uint8Array(message)));
}

test("sha256 matches Web Crypto at every length around the block boundaries", async () => {
  for (let length = 0; length <= 200; length++) {
    const message = new Uint8Array(length).map((_, i) => (i * 31 + length) & 255);
    const expected = new Uint8Array(await crypto.subtle.digest("SHA-256", message));
    assert.deepEqual(sha256(message), expected, `length ${length}`);
  }
});

test("sha256 of the FIPS 180-2 test vector", () => {
  const hex = (bytes: Uint8Array) => [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  assert.equal(
    hex(sha256(new TextEncoder().encode("abc"))),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
});

test("HMAC-SHA-256 matches Web Crypto for random keys and messages", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.uint8Array({ minLength: 1, maxLength: 200 }), // Web Crypto refuses empty HMAC keys
      fc.uint8Array({ minLength: 0, maxLength: 300 }),
      async (key, message) => {
        assert.deepEqual(new HmacSha256(key).digest(message), await webCryptoHmac(key, message));
      },
    ),
    { numRuns: RUNS },
  );
});

test("one HmacSha256 gives the same MAC however often it is used", async () => {
  const key = new TextEncoder().encode("a-secret-of-at-least-32-bytes-long!");
  const hmac = new HmacSha256(key);
  const message = new TextEncoder().encode("x".repeat(32));
  const first = hmac.digest(message);
  hmac.digest(new Uint8Array(500));
  assert.deepEqual(hmac.digest(message), first);
  assert.deepEqual(first, await webCryptoHmac(key, message));
});

test("base64Url matches Web Crypto for ASCII texts on both sides of the one-block limit", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.uint8Array({ minLength: 1, maxLength: 100 }),
      fc.oneof(
        fc.string({
          unit: fc.integer({ min: 0, max: 127 }).map((c) => String.fromCharCode(c)),
          maxLength: 60,
        }),
        fc.string({
          unit: fc.integer({ min: 0, max: 127 }).map((c) => String.fromCharCode(c)),
          maxLength: 200,
        }),
      ),
      async (key, text) => {
        const bytes = Uint8Array.from(text, (char) => char.charCodeAt(0));
        assert.equal(new HmacSha256(key).base64Url(text), encodeBase64Url(await webCryptoHmac(key, bytes)));
      },
    ),
    { numRuns: RUNS },
  );
  const key = new TextEncoder().encode("a-secret-of-at-least-32-bytes-long!");
  for (let length = 0; length <= 130; length++) {
    const text = "abcdefghijklmnopqrstuvwxyz0123456789".repeat(4).slice(0, length);
    const expected = encodeBase64Url(await webCryptoHmac(key, new TextEncoder().encode(text)));
    assert.equal(new HmacSha256(key).base64Url(text), expected, `length ${length}`);
  }
});
