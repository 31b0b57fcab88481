// Node 20 cannot run TypeScript by itself. Running the servers through a loader (tsx) would add a
// loader thread and ~50 MB to every Node server's RSS, so instead the library and the bench sources
// are transpiled once, file by file, to plain ES modules in a temporary tree that mirrors the repo
// (src/..., bench/...). It is TypeScript's own emit, as `npm run build` does for dist/.
// A symlinked node_modules and copies of package.json and deno.json make the tree resolve like the repo.
// The .ts sources are copied beside the .js files, and Deno runs those: others edit src/ while a run
// goes on, and every runtime must measure the same snapshot.
// With --baseline=REV a second tree takes its src/ from a commit (git archive) and everything else from
// the first tree, so one run can serve the same bench server against the old and the new library.
import { spawnSync } from "node:child_process";
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
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
 * Makes the tree at `dir` resolve packages as the repository at `root` does: a symlinked node_modules and
 * copies of package.json and deno.json (Deno's import map).
 */
export function linkLikeRepo(root, dir) {
  symlinkSync(join(root, "node_modules"), join(dir, "node_modules"), "dir");
  for (const file of ["package.json", "deno.json"]) copyFileSync(join(root, file), join(dir, file));
}

/**
 * Returns the root of the transpiled tree, with `patches` (bench/lib/experiments.mjs) applied to it,
 * and which of them applied. `srcRoot` (default `root`) is where `src/` comes from: `--baseline` builds a
 * tree whose bench servers, package.json and node_modules are the run's, and whose `src/` is an older
 * revision's (see extractRevision).
 */
export function buildForNode(root, patches = [], { srcRoot = root } = {}) {
  const out = mkdtempSync(join(tmpdir(), "bench-build-"));
  linkLikeRepo(root, out);
  // Paths relative to the tree: src/... from srcRoot, everything else from root.
  const input = (file) => join(file.startsWith("src/") ? srcRoot : root, file);
  const files = [
    ...walk(join(srcRoot, "src")).map((path) => relative(srcRoot, path)),
    ...walk(join(root, "bench", "servers")).map((path) => relative(root, path)),
    "bench/micro.ts",
    "bench/scale.ts",
  ];
  // Patches (bench/lib/experiments.mjs) edit the TypeScript source, so Node and Deno run the same change.
  const applied = [];
  const failed = [];
  const patched = new Map();
  for (const patch of patches) {
    let text;
    try {
      text = patch.apply(patched.get(patch.file) ?? readFileSync(input(patch.file), "utf8"));
    } catch {
      text = undefined;
    }
    if (text === undefined) failed.push(patch.id);
    else {
      patched.set(patch.file, text);
      applied.push(patch.id);
    }
  }
  for (const file of files) {
    const text = patched.get(file) ?? readFileSync(input(file), "utf8");
    const { outputText } = ts.transpileModule(text, { fileName: input(file), compilerOptions });
    const source = join(out, file);
    mkdirSync(dirname(source), { recursive: true });
    writeFileSync(source, text);
    writeFileSync(source.replace(/\.ts$/, ".js"), outputText);
  }
  return { root: out, applied, failed };
}

function git(repo, args) {
  const out = spawnSync("git", ["-C", repo, ...args], { encoding: "utf8", maxBuffer: 1 << 26 });
  if (out.status !== 0) {
    throw new Error(`git ${args.join(" ")}: ${(out.stderr || out.stdout || `exit ${out.status}`).trim()}`);
  }
  return out.stdout.trim();
}

/** A revision (`HEAD~1`, a hash, a tag) as a commit: full and short hash, subject, date. */
export function resolveRevision(repo, rev) {
  if (!rev || rev.startsWith("-")) throw new Error(`--baseline needs a git revision, got "${rev ?? ""}"`);
  let hash;
  try {
    hash = git(repo, ["rev-parse", "--verify", "--quiet", `${rev}^{commit}`]);
  } catch {
    throw new Error(`--baseline=${rev}: not a commit in ${repo}`);
  }
  const [short, date, subject] = git(repo, ["show", "-s", "--format=%h%x00%cs%x00%s", hash]).split("\0");
  return { rev, hash, short, date, subject };
}

/**
 * Writes the committed `src/` of `hash` (git archive: the commit's tree, whatever the working tree holds)
 * under a new directory in `parent`, and returns that directory.
 */
export function extractRevision(repo, hash, parent) {
  const dir = mkdtempSync(join(parent, `base-${hash.slice(0, 12)}-`));
  const tar = join(dir, "src.tar");
  git(repo, ["archive", "--format=tar", "-o", tar, hash, "--", "src"]);
  const out = spawnSync("tar", ["-xf", tar, "-C", dir], { encoding: "utf8" });
  if (out.status !== 0) throw new Error(`tar -xf ${tar}: ${out.stderr || `exit ${out.status}`}`);
  rmSync(tar);
  return dir;
}
