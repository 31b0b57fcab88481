import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeBase64Url, encodeBase64Url } from "./_base64url.ts";

/** The reference: the platform's base64 (btoa), made URL-safe and unpadded. */
function reference(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

test("encodeBase64Url agrees with btoa at every length up to 200, and reuses no output", () => {
  const seen = new Set<string>();
  for (let length = 0; length <= 200; length++) {
    const bytes = crypto.getRandomValues(new Uint8Array(length));
    const encoded = encodeBase64Url(bytes);
    assert.equal(encoded, reference(bytes), `length ${length}`);
    seen.add(encoded);
  }
  assert.equal(encodeBase64Url(new Uint8Array([0xfb, 0xff])), "-_8", "the URL-safe characters");
  assert.equal(seen.size, 201, "every call returns its own string");
});

test("decodeBase64Url inverts encodeBase64Url at every length up to 200", () => {
  for (let length = 0; length <= 200; length++) {
    const bytes = crypto.getRandomValues(new Uint8Array(length));
    assert.deepEqual(decodeBase64Url(encodeBase64Url(bytes)), bytes, `length ${length}`);
  }
});

test("decodeBase64Url accepts only the canonical spelling", () => {
  for (
    const bad of [
      "A", // no encoding is 4n + 1 characters long
      "AAAAA",
      "AB", // unused bits set: "AA" is the spelling of one zero byte
      "AAB", // likewise for two bytes ("AAA")
      "AA==", // padding
      "AA+A", // the standard alphabet's characters
      "AA/A",
      "AA A",
      "AA\nA",
      "AA.A",
      "AAé",
      "AA\u0100A",
    ]
  ) {
    assert.equal(decodeBase64Url(bad), undefined, JSON.stringify(bad));
  }
  assert.deepEqual(decodeBase64Url(""), new Uint8Array(0));
  assert.deepEqual(decodeBase64Url("-_8"), new Uint8Array([0xfb, 0xff]));
});
