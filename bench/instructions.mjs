// Instructions per request of a Deno bench server, counted by valgrind's callgrind: a measure that does not
// move with the machine's load, unlike req/s and CPU time (issue 17). User-space instructions of the whole
// server process (all threads; V8 runs single-threaded here so its compiler and collector work counts on the
// same books every run); system calls and the kernel are not counted, so this measures what the JavaScript
// and Deno's Rust side execute, not time.
//
//   node bench/instructions.mjs                         the Deno.serve contenders × read, write, new
//   node bench/instructions.mjs --contenders=noop,ours-memory --scenarios=new --runs=2
//   node bench/instructions.mjs --server=bench/servers/hono_deno.ts --contenders=noop,cookie-floor,ours-memory \
//     --out=bench/results/hono-instructions.md
//
// Per contender and scenario: start the server under callgrind, send --warmup requests (V8 must reach its
// optimised code first: 2,000 left ours at 187k instructions a new session, 30,000 at 98k), zero the
// counters, send --requests more, dump, divide. Each run takes 1-3 minutes. Needs valgrind (apt-get install
// valgrind). Writes bench/results/<date>-instructions.md.

import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { flagArgs } from "./lib/args.mjs";
import { requireDeno } from "./lib/deno.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const args = flagArgs(process.argv.slice(2));
const server = args.server ?? "bench/servers/deno_serve.ts";
const contenders = (args.contenders ?? "noop,cookie-floor,steps-token,steps-store,ours-memory").split(",");
const scenarios = (args.scenarios ?? "read,write,new").split(",");
const warmup = Number(args.warmup ?? 30_000);
const requests = Number(args.requests ?? 2_000);
const runs = Number(args.runs ?? 1);
const deno = requireDeno(ROOT);
/** Contenders that keep sessions: their read/write pool is made of cookies they gave (as in bench/run.mjs). */
const sessionless = new Set(["none", "noop", "cookie-floor"]);

function log(message) {
  console.error(`[instructions ${new Date().toISOString().slice(11, 19)}] ${message}`);
}

/** Exactly `count` GET requests over 4 keep-alive connections, cookies round robin; rejects on a non-200. */
function load(port, path, count, cookies) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  let sent = 0;
  let done = 0;
  return new Promise((resolve, reject) => {
    const next = () => {
      if (sent >= count) return;
      const headers = cookies.length > 0 ? { cookie: cookies[sent % cookies.length] } : {};
      sent++;
      http.get({ host: "127.0.0.1", port, path, agent, headers }, (res) => {
        res.resume();
        res.on("end", () => {
          if (res.statusCode !== 200) reject(new Error(`${path} answered ${res.statusCode}`));
          else if (++done === count) resolve();
          else next();
        });
      }).on("error", reject);
    };
    for (let k = 0; k < 4; k++) next();
  }).finally(() => agent.destroy());
}

/** One session cookie from `path`, as `name=value`. */
function cookieFrom(port, path) {
  return new Promise((resolve, reject) => {
    http.get({ host: "127.0.0.1", port, path }, (res) => {
      res.resume();
      const setCookie = (res.headers["set-cookie"] ?? []).find((c) => c.startsWith("sid="));
      if (!setCookie) reject(new Error(`${path} set no session cookie`));
      else resolve(setCookie.slice(0, setCookie.indexOf(";")));
    }).on("error", reject);
  });
}

function run(command, argv) {
  return new Promise((resolve) => {
    const child = spawn(command, argv, { stdio: "ignore" });
    child.on("exit", (code) => resolve(code));
  });
}

async function measure(contender, scenario) {
  const dir = mkdtempSync(join(tmpdir(), "instructions-"));
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const child = spawn("valgrind", [
    "--tool=callgrind",
    `--callgrind-out-file=${join(dir, "cg.%p")}`,
    "--smc-check=all-non-file",
    deno,
    "run",
    "-A",
    "--v8-flags=--single-threaded",
    join(ROOT, server),
  ], {
    env: { ...process.env, BENCH_CONTENDER: contender, BENCH_PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  try {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${contender} did not start`)), 120_000);
      child.stdout.on("data", (chunk) => {
        if (String(chunk).includes("READY")) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.on("exit", () => reject(new Error(`${contender} exited`)));
    });
    let cookies = [];
    if (scenario !== "new" && !sessionless.has(contender)) {
      for (let i = 0; i < 100; i++) cookies.push(await cookieFrom(port, "/write"));
    } else if (scenario !== "new") {
      // Cookies of our format, as the harness gives the contenders that keep no session.
      cookies = Array.from({ length: 100 }, (_, i) => `sid=${String(i).padStart(32, "0")}.${"s".repeat(43)}`);
    }
    await load(port, `/${scenario}`, warmup, cookies);
    await run("callgrind_control", ["-z", String(child.pid)]);
    await load(port, `/${scenario}`, requests, cookies);
    await run("callgrind_control", ["-d", String(child.pid)]);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const dump = readdirSync(dir).filter((f) => /^cg\.\d+\.\d+$/.test(f)).sort().at(-1);
    if (!dump) throw new Error("callgrind wrote no dump");
    const text = readFileSync(join(dir, dump), "utf8");
    const total = Number(/^(?:summary|totals):\s*(\d+)/m.exec(text)?.[1]);
    return total / requests;
  } finally {
    child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
}

const results = {};
for (const scenario of scenarios) {
  for (const contender of contenders) {
    for (let r = 0; r < runs; r++) {
      const value = await measure(contender, scenario);
      log(`${contender} /${scenario}: ${Math.round(value)} instructions per request`);
      ((results[scenario] ??= {})[contender] ??= []).push(value);
    }
  }
}

const fmt = (n) => Math.round(n).toLocaleString("en-US");
const lines = [
  `# Instructions per request (callgrind), ${new Date().toISOString().slice(0, 10)}`,
  "",
  `\`node bench/instructions.mjs ${process.argv.slice(2).join(" ")}\`: ${server}, ${warmup} requests of`,
  `warm-up, then ${requests} counted; ${runs} run(s) each (every run listed). ÷ floor: noop's instructions ÷`,
  "the contender's (the throughput ratio if time followed instructions).",
  "",
  "| scenario | contender | instructions / request | ÷ floor |",
  "| --- | --- | ---: | ---: |",
];
for (const scenario of scenarios) {
  const floor = results[scenario]?.noop?.[0];
  for (const contender of contenders) {
    const values = results[scenario]?.[contender] ?? [];
    const ratio = floor ? (floor / values[0]).toFixed(2) : "–";
    lines.push(`| ${scenario} | ${contender} | ${values.map(fmt).join(" / ")} | ${ratio} |`);
  }
}
// resolve: an absolute --out is taken as it is, a relative one from the repository root.
const out = resolve(
  ROOT,
  args.out ?? join("bench", "results", `${new Date().toISOString().slice(0, 10)}-instructions.md`),
);
writeFileSync(out, lines.join("\n") + "\n");
log(`wrote ${out}`);
