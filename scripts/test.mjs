#!/usr/bin/env node
// Runs the whole check: format, lint, type check, then the suite under Node and under Deno.
//   node scripts/test.mjs            everything
//   node scripts/test.mjs check      format, lint and type check only
//   node scripts/test.mjs node       the suite under Node only
//   node scripts/test.mjs deno       the suite under Deno only
// Test files: *_test.ts run on both runtimes, *_node_test.ts on Node only, *_deno_test.ts on Deno only.
// Extra arguments after the mode filter test files by substring.
import { spawn } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const bin = (name) => join(root, "node_modules", ".bin", name);
const [mode = "all", ...filters] = process.argv.slice(2);

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

const totals = { passed: 0, failed: 0 };
let failures = 0;

async function check() {
  const steps = [
    [bin("deno"), ["fmt", "--check"]],
    [bin("deno"), ["lint"]],
    // --doc also type-checks the example in every JSDoc comment.
    [bin("deno"), [
      "check",
      "--doc",
      ...["mod.ts", "src", "tests", "examples", "bench", "scripts"].filter((p) => existsSync(join(root, p))),
    ]],
    [bin("tsc"), ["-p", "tsconfig.json", "--noEmit"]],
  ];
  for (const [command, args] of steps) {
    const { code } = await run(command, args);
    if (code !== 0) failures++;
  }
}

async function node() {
  if (nodeTests.length === 0) return;
  const { code, output } = await run(process.execPath, [
    "--import",
    "tsx",
    "--test",
    "--test-reporter=spec",
    "--test-concurrency=1",
    ...nodeTests,
  ], { capture: true });
  const pass = Number(/^ℹ pass (\d+)/m.exec(output)?.[1] ?? 0);
  const fail = Number(/^ℹ fail (\d+)/m.exec(output)?.[1] ?? 0);
  console.log(`node: ${pass} passed, ${fail} failed`);
  totals.passed += pass;
  totals.failed += fail;
  if (code !== 0) failures++;
}

async function deno() {
  if (denoTests.length === 0) return;
  const { code, output } = await run(bin("deno"), ["test", "-A", "--no-prompt", ...denoTests], {
    capture: true,
  });
  const match = /(\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed/.exec(output);
  const pass = Number(match?.[1] ?? 0);
  const fail = Number(match?.[2] ?? 0);
  console.log(`deno: ${pass} passed, ${fail} failed`);
  totals.passed += pass;
  totals.failed += fail;
  if (code !== 0) failures++;
}

if (mode === "all" || mode === "check") await check();
if (mode === "all" || mode === "node") await node();
if (mode === "all" || mode === "deno") await deno();
if (mode !== "check") console.log(`\n${totals.passed} passed, ${totals.failed} failed`);
if (failures > 0) {
  console.error(`${failures} step(s) failed`);
  process.exit(1);
}
