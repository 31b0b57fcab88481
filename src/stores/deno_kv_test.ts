// DenoKvStore against a real Deno KV: Deno.openKv under Deno, the npm package @deno/kv under Node (the cases
// are in _test_deno_kv_cases.ts). Under Bun, @deno/kv cannot run (it needs V8's serializer): the store says
// so when asked to open a path, and that is all there is to test.
import { test } from "node:test";
import assert from "node:assert/strict";
import { DenoKvStore } from "./deno_kv.ts";

if ("Bun" in globalThis) {
  test("DenoKvStore on Bun: opening a path fails with what to use instead", async () => {
    const store = new DenoKvStore({ path: "/tmp/never-created.kv" });
    await assert.rejects(store.init(), (error: Error) => {
      assert.match(error.message, /^Cannot open Deno KV at .*: DenoKvStore cannot open a path on Bun/);
      assert.match(error.message, /Use SqliteStore or RedisStore on Bun/);
      assert.match(error.message, /pass it as "kv"/);
      return true;
    });
    await store.close();
  });
} else {
  await import("./_test_deno_kv_cases.ts");
}
