// What the numbers were measured on: hardware, runtimes, tools, package versions and the exact
// source that was benchmarked (others edit src/ while benchmarks run, so a fingerprint matters).
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { cpus, loadavg, release, totalmem } from "node:os";
import { join } from "node:path";
import process from "node:process";

function firstLine(argv) {
  const out = spawnSync(argv[0], argv.slice(1), { encoding: "utf8" });
  return `${out.stdout ?? ""}${out.stderr ?? ""}`.trim().split("\n")[0] ?? "";
}

function cpuModel() {
  try {
    const info = readFileSync("/proc/cpuinfo", "utf8");
    const name = /^model name\s*:\s*(.+)$/m.exec(info)?.[1];
    const mhz = /^cpu MHz\s*:\s*(.+)$/m.exec(info)?.[1];
    return mhz ? `${name} (${Math.round(Number(mhz))} MHz)` : name;
  } catch {
    return cpus()[0]?.model ?? "unknown";
  }
}

function packageVersion(root, name) {
  try {
    return JSON.parse(readFileSync(join(root, "node_modules", name, "package.json"), "utf8")).version;
  } catch {
    return "missing";
  }
}

function listFiles(dir, out = []) {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) listFiles(path, out);
    else if (name.endsWith(".ts") && !name.endsWith("_test.ts")) out.push(path);
  }
  return out;
}

/** A hash of every .ts file under src/, so a result can be tied to the code that produced it. */
export function sourceFingerprint(root) {
  const hash = createHash("sha256");
  for (const file of listFiles(join(root, "src"))) {
    hash.update(file.slice(root.length));
    hash.update(readFileSync(file));
  }
  return hash.digest("hex").slice(0, 12);
}

export function describeMachine({ root, sourceRoot = root, deno, wrk, redisServer }) {
  const git = (args) => firstLine(["git", "-C", root, ...args]);
  const dirty = spawnSync("git", ["-C", root, "status", "--porcelain", "src"], { encoding: "utf8" }).stdout
    ?.split("\n").filter(Boolean).length ?? 0;
  return {
    cpu: cpuModel(),
    cores: cpus().length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    loadAverage: loadavg().map((v) => v.toFixed(2)).join(" "),
    node: process.version,
    deno: deno && existsSync(deno) ? firstLine([deno, "--version"]) : "missing",
    wrk: wrk ? firstLine([wrk, "-v"]).replace(/ Copyright.*/, "") : "missing",
    redis: redisServer ? firstLine([redisServer, "--version"]).replace(/ sha=.*/, "") : "missing",
    commit: `${git(["rev-parse", "--short", "HEAD"])}${
      dirty ? ` + ${dirty} uncommitted change(s) in src/` : ""
    }`,
    source: sourceFingerprint(sourceRoot),
    packages: Object.fromEntries(
      [
        "express",
        "express-session",
        "connect-redis",
        "connect-pg-simple",
        "hono",
        "@hono/node-server",
        "hono-sessions",
        "@hono/session",
        "@oakserver/oak",
        "redis",
        "postgres",
        "pg",
        "mitata",
        "better-sqlite3",
        "tsx",
      ].map((name) => [name, packageVersion(root, name)]),
    ),
  };
}
