#!/usr/bin/env node
// The benchmark harness: `npm run bench` (or `node bench/run.mjs --help`). See bench/README.md.
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath, pathToFileURL } from "node:url";
import { randomBytes } from "node:crypto";
import {
  BASE_SUFFIX,
  baselineTwin,
  GROUPS,
  hasTwin,
  SCENARIOS,
  seedsPool,
  select,
  sessionless,
} from "./lib/contenders.mjs";
import { describeMachine, sourceFingerprint } from "./lib/machine.mjs";
import {
  CLK_TCK,
  cpuTicks,
  freePort,
  pinning,
  rssBytes,
  run,
  sleep,
  startServer,
  stop,
  which,
} from "./lib/proc.mjs";
import { buildForNode, extractRevision, resolveRevision } from "./lib/build.mjs";
import { PATCHES } from "./lib/experiments.mjs";
import { analyzeProfile } from "./lib/profile.mjs";
import { commandStats, monitor, roundTrips, startRedis } from "./lib/redis.mjs";
import { preparePostgres, statementCount } from "./lib/postgres.mjs";
import { renderReport } from "./lib/report.mjs";
import { denoBinary } from "./lib/deno.mjs";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const LUA = join(ROOT, "bench", "wrk", "scenario.lua");
const PHASES = ["http", "profile", "micro", "scale"];

const HELP = `npm run bench -- [options]

  --quick                 3 rounds x 1 s, shorter micro/scale/profile: for iterating (~7 min)
  --only=SEL[,SEL...]     contenders to run: a group (express, hono-node, hono-deno, oak, deno-serve),
                          group/contender (hono-node/ours-memory), */contender or a contender name
  --skip=SEL[,SEL...]     contenders to leave out (same selectors)
  --scenarios=a,b         among ${SCENARIOS.join(", ")} (default: all)
  --phases=a,b            among ${PHASES.join(", ")} (default: all)
  --rounds=N              timed runs per contender and scenario; the median is reported (default 3)
  --duration=S            seconds per timed run (default 3)
  --warmup=S              seconds of untimed load before the first round (default 1)
  --connections=N         wrk connections (default 50)
  --pool=N                distinct sessions the read/write load cycles through (default 100)
  --profile-seconds=S     load per CPU profile (default 5)
  --sessions=N            MemoryStore scale test size (default 1000000)
  --out=FILE              report path (default bench/results/<date>[-quick|-partial].md)
  --profile=GROUP/C       the Node contender to profile (default hono-node/ours-memory;
                          e.g. hono-node/ours-memory+async, express/ours-memory, or with
                          --baseline a twin: hono-node/ours-memory@base)
  --experiments           also run the patched contenders of bench/lib/experiments.mjs
  --baseline=REV          also run every contender of ours (ours-memory, ours-redis, ...) on the src/ of
                          git revision REV (HEAD~1, a hash, a tag), as a twin named <name>@base: same
                          bench server, interleaved in the same rounds; the report adds a before -> after
                          table. Peers and floors run once. (--skip=*/ours-redis@base drops one twin.)
  --no-pin                do not pin processes to cores with taskset
  --no-install            never apt-get install missing tools
  --list                  print the contenders and exit
  --render=FILE.json      write FILE.md again from a run's saved results (nothing is measured)
`;

function parseArgs(argv) {
  const opts = {
    quick: false,
    only: [],
    skip: [],
    scenarios: SCENARIOS,
    phases: PHASES,
    rounds: 3,
    duration: 3,
    warmup: 1,
    connections: 50,
    pool: 100,
    profileSeconds: 5,
    sessions: 1_000_000,
    sqliteWrites: 20_000,
    out: undefined,
    pin: true,
    install: true,
    experiments: false,
    baseline: undefined,
    profileTarget: "hono-node/ours-memory",
    list: false,
    render: undefined,
  };
  const explicit = new Set();
  for (const arg of argv) {
    const [key, value] = arg.replace(/^--/, "").split(/=(.*)/s);
    explicit.add(key);
    const list = () => (value ?? "").split(",").map((s) => s.trim()).filter(Boolean);
    const number = () => {
      const n = Number(value);
      if (!Number.isFinite(n) || n <= 0) throw new Error(`--${key} needs a positive number`);
      return n;
    };
    switch (key) {
      case "help":
      case "h":
        console.log(HELP);
        process.exit(0);
        break;
      case "quick":
        opts.quick = true;
        break;
      case "only":
        opts.only = list();
        break;
      case "skip":
        opts.skip = list();
        break;
      case "scenarios":
        opts.scenarios = list();
        for (const s of opts.scenarios) if (!SCENARIOS.includes(s)) throw new Error(`unknown scenario ${s}`);
        // Keep the canonical order: "new" fills stores, so it runs after "read" and "write".
        opts.scenarios = SCENARIOS.filter((s) => opts.scenarios.includes(s));
        break;
      case "phases":
        opts.phases = list();
        for (const p of opts.phases) if (!PHASES.includes(p)) throw new Error(`unknown phase ${p}`);
        break;
      case "rounds":
        opts.rounds = Math.round(number());
        break;
      case "duration":
        opts.duration = Math.round(number());
        break;
      case "warmup":
        opts.warmup = Math.round(number());
        break;
      case "connections":
        opts.connections = Math.round(number());
        break;
      case "pool":
        opts.pool = Math.round(number());
        break;
      case "profile-seconds":
        opts.profileSeconds = Math.round(number());
        break;
      case "sessions":
        opts.sessions = Math.round(number());
        break;
      case "out":
        opts.out = value;
        break;
      case "experiments":
        opts.experiments = true;
        break;
      case "baseline":
        if (!value) throw new Error("--baseline needs a git revision, e.g. --baseline=HEAD~1");
        opts.baseline = value;
        break;
      case "profile":
        opts.profileTarget = value;
        break;
      case "no-pin":
        opts.pin = false;
        break;
      case "no-install":
        opts.install = false;
        break;
      case "list":
        opts.list = true;
        break;
      case "render":
        if (!value?.endsWith(".json")) {
          throw new Error("--render needs a results file, e.g. --render=bench/results/x.json");
        }
        opts.render = value;
        break;
      default:
        throw new Error(`unknown option ${arg} (see --help)`);
    }
  }
  if (opts.quick) {
    if (!explicit.has("duration")) opts.duration = 1;
    if (!explicit.has("profile-seconds")) opts.profileSeconds = 2;
    if (!explicit.has("sessions")) opts.sessions = 100_000;
    opts.sqliteWrites = 2_000;
  }
  if (opts.rounds < 3) console.warn("note: fewer than 3 rounds; the report's medians are weak");
  return opts;
}

const log = (...args) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}]`, ...args);

/** wrk and redis-server from Debian when missing: only here, never from npm test. */
async function ensureTools(opts) {
  const wanted = [["wrk", "wrk"], ["redis-server", "redis-server"], ["taskset", "util-linux"]];
  const missing = wanted.filter(([bin]) => !which(bin));
  if (missing.length > 0 && opts.install) {
    const packages = [...new Set(missing.map(([, pkg]) => pkg))];
    if (process.getuid?.() !== 0) {
      log(
        `missing ${missing.map(([b]) => b).join(", ")}; run: sudo apt-get install -y ${packages.join(" ")}`,
      );
    } else {
      log(`installing ${packages.join(", ")} with apt-get`);
      await run(["apt-get", "update"], { echo: true, env: { DEBIAN_FRONTEND: "noninteractive" } });
      await run(["apt-get", "install", "-y", "--no-install-recommends", ...packages], {
        echo: true,
        env: { DEBIAN_FRONTEND: "noninteractive" },
      });
    }
  }
  return {
    wrk: which("wrk"),
    redisServer: which("redis-server"),
    deno: denoBinary(ROOT),
  };
}

/**
 * The transpiled tree for a set of patches, built on first use; with `base`, its src/ is the --baseline
 * revision's and the rest (bench servers, package.json, node_modules) the run's snapshot.
 */
function tree(ctx, patches = [], base = false) {
  const key = `${base ? BASE_SUFFIX : ""}${patches.join("+")}`;
  if (!ctx.builds.has(key)) {
    // Every other tree starts from the run's snapshot, never from the repository as it is by then.
    const source = key === "" ? ROOT : tree(ctx).root;
    const srcRoot = base ? ctx.baseline.dir : source;
    ctx.builds.set(key, buildForNode(source, patches.map((id) => PATCHES[id]), { srcRoot }));
  }
  return ctx.builds.get(key);
}

/** The tree a contender runs: patched for an experiment, the baseline's for an @base twin. */
function treeOf(ctx, contender) {
  return tree(ctx, contender?.patches ?? [], contender?.base === true);
}

function compiled(ctx, file, contender) {
  return join(treeOf(ctx, contender).root, file.replace(/\.ts$/, ".js"));
}

function serverCommand(ctx, group, contender, extraNodeFlags = []) {
  if (group.runtime === "deno") {
    const entry = join(treeOf(ctx, contender).root, group.entry);
    return { command: ctx.tools.deno, args: ["run", "-A", "--no-prompt", entry] };
  }
  return {
    command: process.execPath,
    args: [...extraNodeFlags, compiled(ctx, group.entry, contender)],
  };
}

async function request(base, path, cookie) {
  const response = await fetch(base + path, { headers: cookie ? { cookie } : {} });
  const text = await response.text();
  // The last one, as a browser keeps it: hono-sessions' CookieStore sends an empty session first, then the real one.
  const setCookie = response.headers.getSetCookie().findLast((value) => value.startsWith("sid="));
  const pair = setCookie?.slice(0, setCookie.indexOf(";") < 0 ? undefined : setCookie.indexOf(";"));
  return { status: response.status, text, setCookie, cookie: pair && pair !== "sid=" ? pair : undefined };
}

/** Correctness before timing: the same checks for every contender, stricter for ours. */
async function check(base, contender) {
  const problems = [];
  const notes = [];
  const hasSession = !sessionless(contender);
  const bare = await request(base, "/bare");
  if (bare.status !== 200 || bare.text !== "ok") {
    problems.push(`/bare answered ${bare.status} "${bare.text}"`);
  }
  if (bare.setCookie) {
    (contender.kind === "ours" || contender.kind === "experiment" ? problems : notes).push(
      "sends a session cookie on a request that never used the session",
    );
  }
  const created = await request(base, "/new");
  if (created.status !== 200 || created.text !== "n=1") {
    problems.push(`/new answered ${created.status} "${created.text}"`);
  }
  if (!hasSession) {
    const read = await request(base, "/read");
    const write = await request(base, "/write");
    if (read.text !== "n=0" || write.text !== "n=1") {
      problems.push("baseline routes answer unexpected bodies");
    }
    return { ok: problems.length === 0, problems, notes };
  }
  if (!created.cookie) problems.push("/new set no session cookie");
  let jar;
  for (let i = 1; i <= 10; i++) {
    const r = await request(base, "/write", jar);
    if (r.text !== `n=${i}`) {
      problems.push(`write #${i} answered "${r.text}"`);
      break;
    }
    if (r.cookie) jar = r.cookie;
  }
  const read = await request(base, "/read", jar);
  if (read.text !== "n=10") problems.push(`a counter written 10 times reads "${read.text}"`);
  else notes.push("counter written 10 times reads 10");
  if (read.setCookie) {
    (contender.kind === "ours" || contender.kind === "experiment" ? problems : notes).push(
      "re-sends the cookie on a read-only request",
    );
  }
  notes.push(`cookie value ${jar ? jar.length - 4 : "?"} bytes`);
  return { ok: problems.length === 0, problems, notes };
}

/** Distinct live sessions for the read/write load, created through the server itself. */
async function seedPool(base, size) {
  const cookies = [];
  for (let i = 0; i < size; i += 10) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(10, size - i) }, () => request(base, "/write")),
    );
    for (const r of batch) {
      if (!r.cookie) throw new Error("seeding a session gave no cookie");
      cookies.push(r.cookie);
    }
  }
  return cookies;
}

/** Baselines get cookies of our format, so every contender parses the same request bytes. */
function syntheticPool(size) {
  return Array.from(
    { length: size },
    () => `sid=${randomBytes(24).toString("base64url")}.${randomBytes(32).toString("base64url")}`,
  );
}

function median(values) {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

async function wrk(ctx, live, scenario, seconds) {
  const cookieFile = scenario === "read" || scenario === "write" ? live.cookieFile : "";
  const argv = [
    ...ctx.pin.client,
    ctx.tools.wrk,
    "-t1",
    `-c${ctx.opts.connections}`,
    `-d${seconds}s`,
    "--timeout",
    "10s",
    "-s",
    LUA,
    `http://127.0.0.1:${live.port}`,
    "--",
    `/${scenario}`,
    cookieFile,
  ];
  const out = await run(argv, { timeoutMs: (seconds + 30) * 1000 });
  const line = /^BENCH_JSON (.*)$/m.exec(out.stdout)?.[1];
  if (!line) throw new Error(`wrk gave no result (${out.code}): ${out.stderr || out.stdout}`);
  return JSON.parse(line);
}

async function measure(ctx, live, scenario) {
  const redis = live.contender.store === "redis" ? ctx.redis : undefined;
  const statsBefore = redis ? await commandStats(redis.port) : undefined;
  const pg = live.contender.store === "postgres";
  const statementsBefore = pg ? await statementCount(live.port) : undefined;
  const ticksBefore = cpuTicks(live.pid);
  const started = performance.now();
  const result = await wrk(ctx, live, scenario, ctx.opts.duration);
  const wallS = (performance.now() - started) / 1000;
  const ticks = cpuTicks(live.pid) - ticksBefore;
  const statsAfter = redis ? await commandStats(redis.port) : undefined;
  const statementsAfter = pg ? await statementCount(live.port) : undefined;
  const errors = Object.values(result.errors).reduce((a, b) => a + b, 0);
  const requests = result.requests;
  return {
    rps: requests / (result.duration_us / 1e6),
    requests,
    p50Ms: result.latency_us.p50 / 1000,
    p90Ms: result.latency_us.p90 / 1000,
    p99Ms: result.latency_us.p99 / 1000,
    errors,
    errorDetail: result.errors,
    cpuUsPerRequest: ((ticks / CLK_TCK) * 1e6) / Math.max(1, requests),
    cpuShare: ticks / CLK_TCK / wallS,
    rssMB: rssBytes(live.pid) / 2 ** 20,
    redisPerRequest: redis ? roundTrips(statsBefore, statsAfter, requests).total : undefined,
    pgPerRequest: pg ? (statementsAfter - statementsBefore) / Math.max(1, requests) : undefined,
  };
}

/**
 * Exact store round trips per request: a counted, sequential probe. MONITOR counts what clients sent
 * (round trips); INFO commandstats also counts what Lua scripts ran inside Redis (work, not trips).
 */
async function redisProbe(ctx, live, count = 100) {
  const base = `http://127.0.0.1:${live.port}`;
  const out = {};
  for (const scenario of ctx.opts.scenarios) {
    const before = await commandStats(ctx.redis.port);
    const watch = monitor(ctx.redis.port);
    await watch.ready;
    for (let i = 0; i < count; i++) {
      const cookie = scenario === "read" || scenario === "write"
        ? live.pool[i % live.pool.length]
        : undefined;
      const r = await request(base, `/${scenario}`, cookie);
      if (r.status !== 200) throw new Error(`${scenario} probe answered ${r.status}`);
    }
    const sent = await watch.stop();
    const executed = roundTrips(before, await commandStats(ctx.redis.port), count);
    out[scenario] = {
      total: sent.total / count,
      perCommand: Object.fromEntries(Object.entries(sent.commands).map(([k, v]) => [k, v / count])),
      executed,
    };
  }
  return out;
}

/**
 * PostgreSQL statements per request: 100 sequential requests per scenario between two reads of the
 * server's own count of the statements its client sent (each is one round trip once prepared).
 */
async function postgresProbe(ctx, live, count = 100) {
  const base = `http://127.0.0.1:${live.port}`;
  const out = {};
  for (const scenario of ctx.opts.scenarios) {
    const before = await statementCount(live.port);
    for (let i = 0; i < count; i++) {
      const cookie = scenario === "read" || scenario === "write"
        ? live.pool[i % live.pool.length]
        : undefined;
      const r = await request(base, `/${scenario}`, cookie);
      if (r.status !== 200) throw new Error(`${scenario} probe answered ${r.status}`);
    }
    out[scenario] = { total: (await statementCount(live.port) - before) / count };
  }
  return out;
}

/**
 * Runs `load` on `one` while every other server of the group is paused (SIGSTOP), then resumes them. A server
 * that has just taken load goes on collecting garbage for a while after it, on the core the next contender is
 * measured on: issue 17's samples of /proc showed idle Deno servers taking up to 13% of that core in a second.
 * Paused, a server does that work when it runs again, inside its own measurement.
 */
async function alone(live, one, load) {
  const others = live.filter((l) => l !== one);
  // ChildProcess.kill answers false, without throwing, for a server that has already exited.
  for (const l of others) l.child.kill("SIGSTOP");
  try {
    return await load();
  } finally {
    for (const l of others) l.child.kill("SIGCONT");
  }
}

function rotate(list, by) {
  const k = by % list.length;
  return [...list.slice(k), ...list.slice(0, k)];
}

async function startContender(ctx, group, contender, extraNodeFlags) {
  const port = await freePort();
  const { command, args } = serverCommand(ctx, group, contender, extraNodeFlags);
  const env = { BENCH_CONTENDER: contender.runs ?? contender.name, BENCH_PORT: String(port), NO_COLOR: "1" };
  if (ctx.redis) env.BENCH_REDIS_PORT = String(ctx.redis.port);
  if (ctx.postgres) {
    env.BENCH_POSTGRES_URL = ctx.postgres.url;
    env.BENCH_POSTGRES_SCHEMA = ctx.postgres.schema;
  }
  // Deno finds deno.json and node_modules from its working directory: the snapshot's root.
  const cwd = treeOf(ctx, contender).root;
  const started = await startServer({ command, args, env, cwd, prefix: ctx.pin.server });
  if (started.ok) ctx.children.add(started.child);
  return started;
}

async function httpPhase(ctx) {
  const { opts } = ctx;
  const chosen = select(opts.only, opts.skip, opts.experiments, ctx.baseline);
  ctx.results.http = {};
  for (const group of GROUPS) {
    const contenders = chosen.filter((c) => c.group === group).map((c) => c.contender);
    if (contenders.length === 0) continue;
    const groupResult = { label: group.label, runtime: group.runtime, contenders: {}, skipped: [] };
    ctx.results.http[group.id] = groupResult;
    if (group.runtime === "deno" && !ctx.tools.deno) {
      groupResult.skipped.push({ name: "*", reason: "Deno is not installed (npm ci installs it)" });
      continue;
    }
    log(`${group.label}: starting ${contenders.map((c) => c.name).join(", ")}`);
    const live = [];
    for (const contender of contenders) {
      const skip = (reason) => {
        groupResult.skipped.push({ name: contender.name, reason });
        log(`  skip ${contender.name}: ${reason}`);
      };
      if (contender.base) {
        if (contender.requires && !existsSync(join(ctx.baseline.dir, contender.requires))) {
          skip(`${contender.requires} does not exist at ${ctx.baseline.short}`);
          continue;
        }
      } else if (contender.requires && !existsSync(join(ROOT, contender.requires))) {
        skip(`${contender.requires} does not exist yet`);
        continue;
      }
      if (contender.requires && !existsSync(join(treeOf(ctx, contender).root, contender.requires))) {
        skip(`${contender.requires} appeared after this run started`);
        continue;
      }
      if (contender.patches) {
        const { failed } = treeOf(ctx, contender);
        if (failed.length > 0) {
          skip(`patch ${failed.join(", ")} no longer applies to src/`);
          continue;
        }
      }
      if (contender.store === "redis" && !ctx.redis) {
        skip("no redis-server available");
        continue;
      }
      if (contender.store === "postgres" && !ctx.postgres) {
        skip(ctx.postgresUnavailable ?? "no PostgreSQL available");
        continue;
      }
      const started = await startContender(ctx, group, contender);
      if (!started.ok) {
        skip(`${started.reason}${started.stderr ? `: ${String(started.stderr).trim().slice(-400)}` : ""}`);
        continue;
      }
      const base = `http://127.0.0.1:${started.port}`;
      let verdict;
      try {
        verdict = await check(base, contender);
      } catch (error) {
        verdict = { ok: false, problems: [String(error)], notes: [] };
      }
      if (!verdict.ok) {
        skip(`failed the correctness check: ${verdict.problems.join("; ")}`);
        groupResult.contenders[contender.name] = { contender, check: verdict, scenarios: {} };
        await stop(started.child);
        ctx.children.delete(started.child);
        continue;
      }
      const pool = seedsPool(contender) ? await seedPool(base, opts.pool) : syntheticPool(opts.pool);
      const cookieFile = join(ctx.tmp, `${group.id}-${contender.name}.cookies`);
      writeFileSync(cookieFile, pool.join("\n") + "\n");
      const entry = { contender, check: verdict, scenarios: {}, pid: started.pid };
      groupResult.contenders[contender.name] = entry;
      live.push({
        contender,
        entry,
        child: started.child,
        pid: started.pid,
        port: started.port,
        pool,
        cookieFile,
      });
    }

    for (const l of live.filter((l) => l.contender.store === "redis")) {
      try {
        l.entry.redisProbe = await redisProbe(ctx, l);
      } catch (error) {
        l.entry.redisProbe = { error: String(error) };
      }
    }
    for (const l of live.filter((l) => l.contender.store === "postgres")) {
      try {
        l.entry.postgresProbe = await postgresProbe(ctx, l);
      } catch (error) {
        l.entry.postgresProbe = { error: String(error) };
      }
    }

    // Before "new" fills the stores (a bounded store may then evict older sessions, as it should).
    const checkPool = async () => {
      for (const l of live.filter((l) => !sessionless(l.contender))) {
        try {
          const r = await request(`http://127.0.0.1:${l.port}`, "/read", l.pool[0]);
          const n = Number(r.text.slice(2));
          l.entry.poolAfterLoad = n >= 1
            ? `intact after read/write (a pooled session reads n=${n})`
            : `LOST during read/write (reads "${r.text}")`;
        } catch (error) {
          l.entry.poolAfterLoad = `unknown: ${error}`;
        }
      }
    };
    for (const scenario of opts.scenarios) {
      if (scenario === "new") await checkPool();
      // The first scenario also warms the JIT and the heap for the whole server: give it longer.
      const warmup = scenario === opts.scenarios[0] ? opts.warmup * 2 : opts.warmup;
      for (const l of live) {
        await alone(live, l, () => wrk(ctx, l, scenario, warmup));
        l.entry.scenarios[scenario] = { rounds: [] };
      }
      for (let round = 0; round < opts.rounds; round++) {
        // Rotating the order spreads drift on a shared machine evenly over the contenders.
        for (const l of rotate(live, round)) {
          const m = await alone(live, l, () => measure(ctx, l, scenario));
          m.round = round;
          l.entry.scenarios[scenario].rounds.push(m);
        }
        log(
          `  ${scenario} round ${round + 1}/${opts.rounds}: ` +
            live.map((l) =>
              `${l.contender.name} ${Math.round(l.entry.scenarios[scenario].rounds.at(-1).rps)}`
            )
              .join(", "),
        );
      }
      for (const l of live) {
        const rounds = l.entry.scenarios[scenario].rounds;
        // Rounds are stored in round order, whatever order the contenders ran in.
        rounds.sort((a, b) => a.round - b.round);
        l.entry.scenarios[scenario].median = {
          rps: median(rounds.map((r) => r.rps)),
          p50Ms: median(rounds.map((r) => r.p50Ms)),
          p99Ms: median(rounds.map((r) => r.p99Ms)),
          cpuUsPerRequest: median(rounds.map((r) => r.cpuUsPerRequest)),
          cpuShare: median(rounds.map((r) => r.cpuShare)),
          rssMB: rounds.at(-1).rssMB,
          errors: rounds.reduce((a, r) => a + r.errors, 0),
          redisPerRequest: l.contender.store === "redis"
            ? median(rounds.map((r) => r.redisPerRequest))
            : undefined,
          pgPerRequest: l.contender.store === "postgres"
            ? median(rounds.map((r) => r.pgPerRequest))
            : undefined,
          minRps: Math.min(...rounds.map((r) => r.rps)),
          maxRps: Math.max(...rounds.map((r) => r.rps)),
        };
      }
    }

    if (!opts.scenarios.includes("new")) await checkPool();
    for (const l of live) {
      await stop(l.child);
      ctx.children.delete(l.child);
    }
  }
}

async function profilePhase(ctx) {
  const [groupId, name] = ctx.opts.profileTarget.split("/");
  const group = GROUPS.find((g) => g.id === groupId && g.runtime === "node");
  // An @base twin (--baseline) profiles the same server on the baseline's src/.
  const twinOf = ctx.baseline && name?.endsWith(BASE_SUFFIX) ? name.slice(0, -BASE_SUFFIX.length) : undefined;
  const found = group?.contenders.find((c) => c.name === (twinOf ?? name));
  const contender = twinOf && found && hasTwin(found)
    ? baselineTwin(found, ctx.baseline)
    : twinOf
    ? undefined
    : found;
  if (!contender) throw new Error(`--profile=${ctx.opts.profileTarget}: not a Node group/contender`);
  const scenarios = ["read", "write", "new"].filter((s) => ctx.opts.scenarios.includes(s));
  const dir = join(ROOT, "bench", "results", "profiles");
  mkdirSync(dir, { recursive: true });
  ctx.results.profile = { target: `${group.label}, ${contender.label}`, scenarios: {} };
  for (const scenario of scenarios) {
    const profileDir = mkdtempSync(join(ctx.tmp, "prof-"));
    const spawnedAt = performance.now();
    const started = await startContender(ctx, group, contender, ["--cpu-prof", "--cpu-prof-dir", profileDir]);
    if (!started.ok) {
      ctx.results.profile.scenarios[scenario] = { error: started.reason };
      continue;
    }
    const live = { contender, pid: started.pid, port: started.port };
    live.pool = !seedsPool(contender)
      ? syntheticPool(ctx.opts.pool)
      : await seedPool(`http://127.0.0.1:${started.port}`, ctx.opts.pool);
    live.cookieFile = join(profileDir, "cookies");
    writeFileSync(live.cookieFile, live.pool.join("\n") + "\n");
    await wrk(ctx, live, scenario, ctx.opts.warmup);
    const fromMs = performance.now() - spawnedAt;
    const load = await wrk(ctx, live, scenario, ctx.opts.profileSeconds);
    const toMs = performance.now() - spawnedAt;
    await stop(started.child);
    ctx.children.delete(started.child);
    const file = readdirSync(profileDir).find((f) => f.endsWith(".cpuprofile"));
    if (!file) {
      ctx.results.profile.scenarios[scenario] = { error: "no .cpuprofile written" };
      continue;
    }
    const kept = join(dir, `${ctx.stamp}-${group.id}-${contender.name}-${scenario}.cpuprofile`);
    copyFileSync(join(profileDir, file), kept);
    // Node starts profiling a few ms after spawn: a margin keeps warm-up samples out of the window.
    const analysis = analyzeProfile(kept, {
      root: pathToFileURL(treeOf(ctx, contender).root).href + "/",
      fromMs: fromMs + 300,
      toMs: toMs - 100,
    });
    ctx.results.profile.scenarios[scenario] = {
      file: kept.slice(ROOT.length),
      rps: load.requests / (load.duration_us / 1e6),
      ...analysis,
    };
    log(`  profile ${scenario}: ${analysis.topOurs.slice(0, 3).map((r) => r.function).join(", ")}`);
  }
}

async function microPhase(ctx) {
  ctx.results.micro = [];
  const flags = ctx.opts.quick ? ["--quick"] : [];
  const runs = [[process.execPath, compiled(ctx, "bench/micro.ts"), ...flags]];
  if (ctx.tools.deno) {
    runs.push([ctx.tools.deno, "run", "-A", "--no-prompt", join(tree(ctx).root, "bench/micro.ts"), ...flags]);
  }
  for (const argv of runs) {
    log(`micro: ${argv[0].split("/").pop()}`);
    const out = await run([...ctx.pin.server, ...argv], { cwd: tree(ctx).root, env: { NO_COLOR: "1" } });
    const line = /^MICRO_JSON (.*)$/m.exec(out.stdout)?.[1];
    if (line) ctx.results.micro.push(JSON.parse(line));
    else ctx.results.micro.push({ runtime: argv[0], error: (out.stderr || out.stdout).slice(-1000) });
  }
}

async function scalePhase(ctx) {
  log(`scale: MemoryStore with ${ctx.opts.sessions.toLocaleString("en")} sessions, SqliteStore WAL`);
  const argv = [
    process.execPath,
    "--expose-gc",
    "--max-old-space-size=6144",
    compiled(ctx, "bench/scale.ts"),
    `--sessions=${ctx.opts.sessions}`,
    `--sqlite-writes=${ctx.opts.sqliteWrites}`,
    `--drain-budget-ms=${ctx.opts.quick ? 20_000 : 120_000}`,
  ];
  const out = await run([...ctx.pin.server, ...argv], { cwd: tree(ctx).root, env: { NO_COLOR: "1" } });
  const line = /^SCALE_JSON (.*)$/m.exec(out.stdout)?.[1];
  ctx.results.scale = line ? JSON.parse(line) : { error: (out.stderr || out.stdout).slice(-1500) };
}

function estimateMinutes(opts, baseline) {
  const cells = select(opts.only, opts.skip, opts.experiments, baseline).length * opts.scenarios.length;
  let seconds = 0;
  if (opts.phases.includes("http")) seconds += cells * (opts.warmup + opts.rounds * opts.duration + 0.3) + 60;
  if (opts.phases.includes("profile")) seconds += 3 * (opts.profileSeconds + opts.warmup + 4);
  if (opts.phases.includes("micro")) seconds += opts.quick ? 30 : 70;
  if (opts.phases.includes("scale")) seconds += opts.quick ? 15 : 100;
  return seconds / 60;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.render) {
    // The report again from a run's saved numbers, with this checkout's report code: nothing is measured.
    const out = opts.render.replace(/\.json$/, ".md");
    writeFileSync(out, renderReport(JSON.parse(readFileSync(opts.render, "utf8"))));
    log(`wrote ${relative(ROOT, resolve(out))}`);
    return;
  }
  // Resolved before anything starts, so a typo fails at once; the same commit for the whole run.
  const baseline = opts.baseline === undefined ? undefined : resolveRevision(ROOT, opts.baseline);
  if (opts.list) {
    if (baseline) console.log(`# baseline ${baseline.short} (${baseline.date}) ${baseline.subject}`);
    for (const { group, contender } of select(opts.only, opts.skip, opts.experiments, baseline)) {
      console.log(`${group.id}/${contender.name}\t${contender.label}`);
    }
    return;
  }
  const tools = await ensureTools(opts);
  if (opts.phases.includes("http") || opts.phases.includes("profile")) {
    if (!tools.wrk) throw new Error("wrk is required (apt-get install wrk)");
  }
  const pin = pinning(cpus().length, opts.pin);
  const stamp = new Date().toISOString().slice(0, 10);
  const partial = opts.only.length > 0 || opts.skip.length > 0 || opts.scenarios.length < SCENARIOS.length ||
    opts.phases.length < PHASES.length;
  // A run with a baseline holds twins the dated report does not: it never overwrites that report.
  const suffix = `${opts.quick ? "-quick" : partial ? "-partial" : ""}${
    baseline ? `-vs-${baseline.short}` : ""
  }`;
  const out = opts.out ?? join(ROOT, "bench", "results", `${stamp}${suffix}.md`);
  const ctx = {
    opts,
    tools,
    pin,
    stamp,
    tmp: mkdtempSync(join(tmpdir(), "bench-")),
    builds: new Map(),
    baseline: undefined,
    children: new Set(),
    redis: undefined,
    postgres: undefined,
    results: {
      startedAt: new Date().toISOString(),
      options: { ...opts, partial },
      pinning: pin.note,
    },
  };
  // One snapshot of src/ for the whole run, whatever others commit meanwhile.
  const repoSourceAtStart = sourceFingerprint(ROOT);
  ctx.results.machine = describeMachine({ root: ROOT, sourceRoot: tree(ctx).root, ...tools });
  log(
    `estimated ${estimateMinutes(opts, baseline).toFixed(0)} min; ${pin.note}; report -> ${
      relative(ROOT, out)
    }`,
  );

  const cleanup = async () => {
    for (const child of ctx.children) await stop(child, 3000);
    await ctx.redis?.stop();
    await ctx.postgres?.stop();
    rmSync(ctx.tmp, { recursive: true, force: true });
    for (const { root } of ctx.builds.values()) {
      // The tree holds a symlink to the repo's node_modules: unlink it first so nothing can follow it.
      rmSync(join(root, "node_modules"), { force: true });
      rmSync(root, { recursive: true, force: true });
    }
  };
  process.once("SIGINT", () => cleanup().then(() => process.exit(130)));

  try {
    if (baseline) {
      // The commit's src/ (not the working tree's), served by this run's bench servers.
      ctx.baseline = { ...baseline, dir: extractRevision(ROOT, baseline.hash, ctx.tmp) };
      ctx.baseline.fingerprint = sourceFingerprint(ctx.baseline.dir);
      const { dir: _dir, ...recorded } = ctx.baseline;
      ctx.results.baseline = recorded;
      log(`baseline ${baseline.short} (${baseline.subject}): src/ fingerprint ${ctx.baseline.fingerprint}`);
    }
    const needsRedis = opts.phases.includes("http") &&
      select(opts.only, opts.skip, opts.experiments).some(({ contender }) => contender.store === "redis");
    if (needsRedis && tools.redisServer) {
      ctx.redis = await startRedis({ binary: tools.redisServer, prefix: pin.client });
      log(`redis-server ${ctx.redis.version} on port ${ctx.redis.port}`);
    }
    const needsPostgres = opts.phases.includes("http") &&
      select(opts.only, opts.skip, opts.experiments).some(({ contender }) => contender.store === "postgres");
    if (needsPostgres) {
      const prepared = await preparePostgres();
      if (prepared.unavailable) {
        ctx.postgresUnavailable = prepared.unavailable;
        log(prepared.unavailable);
      } else {
        ctx.postgres = prepared;
        ctx.results.machine.postgres = prepared.version;
        log(`${prepared.version} at ${new URL(prepared.url).host}, schema ${prepared.schema}`);
      }
    }
    const started = performance.now();
    for (const phase of PHASES) {
      if (!opts.phases.includes(phase)) continue;
      const phaseStart = performance.now();
      if (phase === "http") await httpPhase(ctx);
      if (phase === "profile") await profilePhase(ctx);
      if (phase === "micro") await microPhase(ctx);
      if (phase === "scale") await scalePhase(ctx);
      log(`${phase} done in ${((performance.now() - phaseStart) / 60000).toFixed(1)} min`);
    }
    ctx.results.elapsedMinutes = (performance.now() - started) / 60000;
    ctx.results.machine.loadAverageEnd = loadavg().map((v) => v.toFixed(2)).join(" ");
    // Compared with the repository's own src/ at the start: the snapshot tree's files are not byte-identical.
    const now = sourceFingerprint(ROOT);
    if (now !== repoSourceAtStart) ctx.results.machine.sourceAfter = now;
    mkdirSync(join(ROOT, "bench", "results"), { recursive: true });
    writeFileSync(out.replace(/\.md$/, "") + ".json", JSON.stringify(ctx.results, null, 2) + "\n");
    writeFileSync(out, renderReport(ctx.results));
    log(`wrote ${relative(ROOT, out)} and .json`);
  } finally {
    await cleanup();
  }
  await sleep(0);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
