import { test } from "node:test";
import assert from "node:assert/strict";
import { encodeBase64Url } from "./_base64url.ts";

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
