#!/usr/bin/env node
// Builds the npm package into dist/: ESM JavaScript and declarations from the same sources Deno and JSR use.
//   node scripts/build.mjs
// Runs on `npm pack` and `npm publish` through package.json's "prepack".
//
// One step beyond `tsc`: relative imports in the declarations end in `.ts` as in the sources; they are
// rewritten to `.js`, which every `moduleResolution` (node16, nodenext, bundler) and every TypeScript since
// 4.7 resolves.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const dist = join(root, "dist");
const require = (await import("node:module")).createRequire(import.meta.url);

rmSync(dist, { recursive: true, force: true });
execFileSync(process.execPath, [require.resolve("typescript/bin/tsc"), "-p", "tsconfig.build.json"], {
  cwd: root,
  stdio: ["ignore", 2, 2], // stdout stays clean for `npm pack --json`
});

function* files(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* files(path);
    else yield path;
  }
}

// `from "./x.ts"`, `import("./x.ts")`: relative specifiers only; a `.d.ts` never imports a package with `.ts`.
const RELATIVE_TS = /((?:from|import)\s*\(?\s*["'])(\.{1,2}\/[^"']*?)\.ts(["'])/g;
let declarations = 0;
for (const path of files(dist)) {
  if (!path.endsWith(".d.ts")) continue;
  const text = readFileSync(path, "utf8");
  const rewritten = text.replace(RELATIVE_TS, "$1$2.js$3");
  if (/from\s*["']\.{1,2}\/[^"']*\.ts["']/.test(rewritten)) throw new Error(`${path}: a .ts import is left`);
  if (rewritten !== text) writeFileSync(path, rewritten);
  declarations++;
}

console.error(`dist/: ${declarations} declaration files`);
