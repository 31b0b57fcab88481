// package.json's optional peers against the releases the tests run on: the package itself and every npm alias
// of it in devDependencies (express4, koa2, hono40, redis5, better-sqlite3-13).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
  devDependencies: Record<string, string>;
  peerDependencies: Record<string, string>;
};
const semver = createRequire(import.meta.url)("semver") as {
  satisfies(version: string, range: string, options: { includePrerelease: boolean }): boolean;
};

/** The package a devDependency installs: its own name, or the one its npm alias names. */
function packageOf(name: string, spec: string): string {
  if (!spec.startsWith("npm:")) return name;
  // npm:name, npm:name@range, npm:@scope/name, npm:@scope/name@range
  const alias = /^npm:((?:@[^/@]+\/)?[^/@]+)(?:@|$)/.exec(spec);
  if (alias === null) throw new Error(`${name}: cannot read the package of "${spec}"`);
  return alias[1];
}

test("peers: packageOf reads plain names and every form of npm alias", () => {
  assert.equal(packageOf("hono", "^4.13.19"), "hono");
  assert.equal(packageOf("hono40", "npm:hono@~4.0.10"), "hono");
  assert.equal(packageOf("x", "npm:hono"), "hono");
  assert.equal(packageOf("y", "npm:@deno/kv@^0.14.0"), "@deno/kv");
  assert.equal(packageOf("z", "npm:@deno/kv"), "@deno/kv");
  assert.throws(() => packageOf("w", "npm:@deno"), /cannot read the package/);
});

test("peers: every optional peer's range admits each release the tests run on", () => {
  // A range that leaves out a tested release makes npm refuse to install the package beside it (ERESOLVE);
  // a peer with no release installed is a promise no test keeps.
  const tested = new Map<string, string[]>();
  for (const [name, spec] of Object.entries(pkg.devDependencies)) {
    const real = packageOf(name, spec);
    if (!(real in pkg.peerDependencies)) continue;
    const { version } = JSON.parse(readFileSync(join(root, "node_modules", name, "package.json"), "utf8"));
    tested.set(real, [...(tested.get(real) ?? []), version]);
  }
  for (const [name, range] of Object.entries(pkg.peerDependencies)) {
    const versions = tested.get(name) ?? [];
    assert.ok(versions.length > 0, `${name}: no release of it is installed for the tests`);
    for (const version of versions) {
      assert.ok(
        semver.satisfies(version, range, { includePrerelease: true }),
        `${name} ${version} is tested, outside peerDependencies "${range}"`,
      );
    }
  }
});
