// Node 20 cannot run TypeScript by itself. Running the servers through a loader (tsx) would add a
// loader thread and ~50 MB to every Node server's RSS, so instead the library and the bench sources
// are transpiled once, file by file, to plain ES modules in a temporary tree that mirrors the repo
// (src/..., bench/...). It is TypeScript's own emit, as `npm run build` does for dist/.
// A symlinked node_modules and copies of package.json and deno.json make the tree resolve like the repo.
// The .ts sources are copied beside the .js files, and Deno runs those: others edit src/ while a run
// goes on, and every runtime must measure the same snapshot.
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import ts from "typescript";

function walk(dir, out = []) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path, out);
    else if (name.endsWith(".ts") && !name.endsWith("_test.ts") && !name.endsWith(".d.ts")) out.push(path);
  }
  return out;
}

const compilerOptions = {
  module: ts.ModuleKind.ESNext,
  target: ts.ScriptTarget.ES2022,
  rewriteRelativeImportExtensions: true,
  isolatedModules: true,
  verbatimModuleSyntax: false,
};

/**
 * Returns the root of the transpiled tree, with `patches` (bench/lib/experiments.mjs) applied to it,
 * and which of them applied.
 */
export function buildForNode(root, patches = []) {
  const out = mkdtempSync(join(tmpdir(), "bench-build-"));
  symlinkSync(join(root, "node_modules"), join(out, "node_modules"), "dir");
  for (const file of ["package.json", "deno.json"]) copyFileSync(join(root, file), join(out, file));
  const files = [
    ...walk(join(root, "src")),
    ...walk(join(root, "bench", "servers")),
    join(root, "bench", "micro.ts"),
    join(root, "bench", "scale.ts"),
  ];
  // Patches (bench/lib/experiments.mjs) edit the TypeScript source, so Node and Deno run the same change.
  const applied = [];
  const failed = [];
  const patched = new Map();
  for (const patch of patches) {
    const file = join(root, patch.file);
    let text;
    try {
      text = patch.apply(patched.get(file) ?? readFileSync(file, "utf8"));
    } catch {
      text = undefined;
    }
    if (text === undefined) failed.push(patch.id);
    else {
      patched.set(file, text);
      applied.push(patch.id);
    }
  }
  for (const file of files) {
    const text = patched.get(file) ?? readFileSync(file, "utf8");
    const { outputText } = ts.transpileModule(text, { fileName: file, compilerOptions });
    const source = join(out, relative(root, file));
    mkdirSync(dirname(source), { recursive: true });
    writeFileSync(source, text);
    writeFileSync(source.replace(/\.ts$/, ".js"), outputText);
  }
  return { root: out, applied, failed };
}
