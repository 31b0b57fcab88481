// The npm package: compiled ESM + .d.ts for every subpath in package.json "exports".
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));

test("package: every export builds to ESM with types and loads under Node", async () => {
  execFileSync(process.execPath, [`${root}node_modules/typescript/bin/tsc`, "-p", "tsconfig.build.json"], {
    cwd: root,
    stdio: "inherit",
  });
  const pkg = JSON.parse(readFileSync(`${root}package.json`, "utf8"));
  const denoJson = JSON.parse(readFileSync(`${root}deno.json`, "utf8"));
  assert.deepEqual(
    Object.keys(pkg.exports).sort(),
    Object.keys(denoJson.exports).sort(),
    "same entries for Deno and npm",
  );
  for (
    const [subpath, target] of Object.entries(
      pkg.exports as Record<string, { types: string; default: string }>,
    )
  ) {
    assert.ok(existsSync(`${root}${target.types}`), `${subpath} types`);
    const module = await import(`${root}${target.default}`);
    assert.ok(Object.keys(module).length > 0, `${subpath} exports something`);
    if (
      subpath.startsWith("./") && !subpath.startsWith("./stores") && subpath !== "./testing" &&
      subpath !== "./core"
    ) {
      assert.equal(typeof module.session, "function", `${subpath} exports session()`);
      for (
        const name of [
          "SessionManager",
          "SessionStoreError",
          "SessionConflictError",
          "StoreContractError",
          "SessionTooLargeError",
        ]
      ) {
        assert.equal(typeof module[name], "function", `${subpath} exports ${name}`);
      }
    }
  }
  const root_ = await import(`${root}dist/mod.js`);
  for (
    const name of [
      "OakSession",
      "MemoryStore",
      "SqliteStore",
      "RedisStore",
      "WebdisStore",
      "CookieStore",
      "SessionManager",
      "SessionTooLargeError",
    ]
  ) {
    assert.equal(typeof root_[name], "function", name);
  }
});
